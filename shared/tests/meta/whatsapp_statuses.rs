//! The expectations of the samples: WhatsApp statuses, errors, echoes, batches.

use super::*;

pub(super) fn wa_status_sent(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    let (id, recipient, status, billing) = status_of(ev);
    assert_eq!(id, WAMID_OUT);
    sheena(recipient.unwrap());
    assert_eq!(status, &DeliveryStatus::Sent);
    let billing = billing.unwrap();
    assert_eq!(billing.billable, Some(true));
    assert_eq!(billing.pricing_model.as_deref(), Some("PMP"));
    assert_eq!(billing.category.as_deref(), Some("utility"));
    assert_eq!(
        billing.conversation_id.as_deref(),
        Some("a75d17ad06104c51166f948319b03c6a")
    );
    assert_eq!(billing.conversation_origin.as_deref(), Some("utility"));
    assert_eq!(billing.conversation_expires_at, Some(TS + 86400));
    assert_eq!(ev.provider_event_id, format!("wa:status:{WAMID_OUT}:sent"));
}

pub(super) fn wa_status_delivered(b: &WebhookBatch) {
    let ev = one(b);
    let (id, recipient, status, billing) = status_of(ev);
    assert_eq!(id, WAMID_OUT);
    sheena(recipient.unwrap());
    assert_eq!(status, &DeliveryStatus::Delivered);
    assert!(billing.unwrap().conversation_id.is_none());
    assert_eq!(
        ev.provider_event_id,
        format!("wa:status:{WAMID_OUT}:delivered")
    );
    assert_eq!(ev.timestamp, Some(TS + 12));
}

pub(super) fn wa_status_read(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    let (id, _, status, billing) = status_of(&b.events[0]);
    assert_eq!((id, status), (WAMID_OUT, &DeliveryStatus::Read));
    assert!(billing.is_none());
    assert_eq!(status_of(&b.events[1]).2, &DeliveryStatus::Played);
}

pub(super) fn wa_status_failed(b: &WebhookBatch) {
    let ev = one(b);
    let (_, recipient, status, _) = status_of(ev);
    // Failed statuses have no contacts array; the phone is the only identity.
    let r = recipient.unwrap();
    assert_eq!(r.id.key(), format!("phone:{PHONE}"));
    assert_eq!(r.name, None);
    match status {
        DeliveryStatus::Failed { errors } => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].code, Some(131049));
            assert!(errors[0]
                .details
                .as_deref()
                .unwrap()
                .contains("healthy ecosystem"));
            assert!(errors[0].href.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(ev.provider_event_id.ends_with(":failed"));
}

pub(super) fn wa_status_bsuid_only(b: &WebhookBatch) {
    let ev = one(b);
    let (_, recipient, status, _) = status_of(ev);
    let r = recipient.unwrap();
    assert_eq!(r.id.key(), format!("bsuid:{BSUID}"));
    assert_eq!(r.phone, None);
    assert_eq!(r.parent_user_id.as_ref().unwrap().as_str(), PARENT);
    assert_eq!(r.username.as_deref(), Some("@realsheenanelson"));
    assert_eq!(status, &DeliveryStatus::Delivered);
}

pub(super) fn wa_account_errors(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    assert_eq!(ev.timestamp, None);
    assert!(ev.customer().is_none());
    match &ev.kind {
        EventKind::AccountError { errors } => {
            assert_eq!(errors[0].code, Some(131000));
            assert_eq!(errors[0].title.as_deref(), Some("Something went wrong"));
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_echo(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["echo", "echo", "deleted"]);
    assert!(b.ignored.is_empty());
    for ev in &b.events {
        wa_account(ev);
        assert!(ev.provider_event_id.starts_with("wa:echo:wamid."));
        let c = ev.customer().unwrap();
        // The customer is `to`, completed from contacts; the business is never the customer.
        assert_eq!(c.id.key(), format!("bsuid:{BSUID}"));
        assert_eq!(c.phone.as_ref().unwrap().as_str(), PHONE);
        assert_eq!(c.username.as_deref(), Some("@realsheenanelson"));
    }
    match &b.events[0].kind {
        EventKind::BusinessEcho { content, .. } => {
            assert!(text(content).starts_with("Here's the info you requested!"))
        }
        other => panic!("{other:?}"),
    }
    match &b.events[1].kind {
        EventKind::BusinessEcho { content, .. } => {
            assert_eq!(media(content).caption.as_deref(), Some("Our catalog"))
        }
        other => panic!("{other:?}"),
    }
    match &b.events[2].kind {
        EventKind::Deleted { by, message_id, .. } => {
            assert_eq!(*by, Party::Business);
            let echoed = match &b.events[0].kind {
                EventKind::BusinessEcho { message_id, .. } => message_id,
                _ => unreachable!(),
            };
            assert_eq!(message_id, echoed);
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_batch(b: &WebhookBatch) {
    assert!(b.ignored.is_empty());
    assert_eq!(
        kinds(b),
        ["message", "message", "message", "status", "status", "message", "message", "status"]
    );
    let accounts: Vec<&str> = b.events.iter().map(|e| e.account.id()).collect();
    assert_eq!(
        accounts,
        [PNID, PNID, PNID, PNID, PNID, PNID2, PNID2, PNID2],
        "each event carries its own entry's phone_number_id"
    );
    let ts: Vec<i64> = b.events.iter().map(|e| e.timestamp.unwrap() - TS).collect();
    assert_eq!(ts, [1, 2, 3, 4, 5, 6, 7, 8], "delivery order kept");
    let who: Vec<&str> = b
        .events
        .iter()
        .map(|e| e.customer().unwrap().id.as_str())
        .collect();
    assert_eq!(
        who,
        [BSUID, BSUID2, BSUID, BSUID, BSUID, BSUID2, BSUID2, BSUID2]
    );
    assert_eq!(
        b.events[1].customer().unwrap().name.as_deref(),
        Some("Pablo Morales")
    );
    assert_eq!(
        b.events[7]
            .customer()
            .unwrap()
            .phone
            .as_ref()
            .unwrap()
            .as_str(),
        PHONE2
    );
}

pub(super) fn wa_ignored_fields(b: &WebhookBatch) {
    // The empty history chunk is read (Coexistence): only its progress.
    assert_eq!(kinds(b), ["history_progress", "message"]);
    assert_eq!(text(incoming(&b.events[1]).content), "This one is relayed");
    assert_eq!(b.ignored.get("whatsapp:field:user_preferences"), 1);
    assert_eq!(b.ignored.total(), 1);
    // The account event beside them is the intake's to route, to the number it names.
    let [u] = &b.account_updates[..] else {
        panic!("{:?}", b.account_updates)
    };
    assert_eq!(u.number.as_deref(), Some("15550783881"));
    assert_eq!(
        u.update,
        account::AccountUpdate::Other {
            event: "VERIFIED_ACCOUNT".into()
        }
    );
}
