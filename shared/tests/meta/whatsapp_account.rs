//! The expectations of the samples: WhatsApp account and number events (on the WABA; routed by the intake).

use super::*;

const WABA: &str = "102290129340398";

/// The only account update of `b` (and no events): on the sample WABA, at [`TS`].
pub(super) fn one_update(b: &WebhookBatch) -> &account::WabaUpdate {
    assert!(b.events.is_empty(), "{:?}", b.events);
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
    let [u] = &b.account_updates[..] else {
        panic!("{:?}", b.account_updates)
    };
    assert_eq!(u.waba.as_str(), WABA);
    u
}

pub(super) fn wa_account_restriction(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.time, Some(TS));
    assert_eq!(u.number, None, "the whole WABA");
    let restriction = |kind: &str| account::Restriction {
        restriction_type: kind.into(),
        expiration: Some("2026-01-31T10:00:00+0000".into()),
    };
    assert_eq!(
        u.update,
        account::AccountUpdate::Restricted {
            restrictions: vec![
                restriction("RESTRICTED_BIZ_INITIATED_MESSAGING"),
                restriction("RESTRICTED_CUSTOMER_INITIATED_MESSAGING"),
            ]
        }
    );
}

pub(super) fn wa_account_disabled(b: &WebhookBatch) {
    assert!(b.events.is_empty());
    let updates: Vec<_> = b.account_updates.iter().map(|u| u.update.clone()).collect();
    assert_eq!(
        updates,
        [
            account::AccountUpdate::BanState {
                state: "DISABLE".into(),
                date: Some("January 1, 2026".into())
            },
            account::AccountUpdate::Violation {
                violation_type: Some("SCAM".into())
            }
        ]
    );
}

pub(super) fn wa_account_reinstated(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.time, Some(TS + 3600));
    assert!(matches!(
        &u.update,
        account::AccountUpdate::BanState { state, .. } if state == "REINSTATE"
    ));
}

pub(super) fn wa_account_partner_app(b: &WebhookBatch) {
    assert_eq!(
        one_update(b).update,
        account::AccountUpdate::PartnerApp {
            installed: false,
            app_id: Some("1234567890123456".into())
        }
    );
}

pub(super) fn wa_number_quality(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.number.as_deref(), Some("15550783881"));
    assert_eq!(
        u.update,
        account::AccountUpdate::Quality {
            event: Some("FLAGGED".into()),
            old_limit: None,
            limit: Some("TIER_2K".into())
        }
    );
}

pub(super) fn wa_number_name(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.number.as_deref(), Some("15550783881"));
    assert_eq!(
        u.update,
        account::AccountUpdate::Name {
            decision: Some("APPROVED".into()),
            requested_name: Some("Lucky Shrub".into()),
            rejection_reason: None
        }
    );
}

pub(super) fn wa_business_capability(b: &WebhookBatch) {
    assert_eq!(
        one_update(b).update,
        account::AccountUpdate::Capability {
            messaging_limit: Some("TIER_10K".into()),
            max_numbers_per_business: None,
            max_numbers_per_waba: Some(25)
        }
    );
}

/// Template webhooks relay nothing to Bitrix24 (the intake applies them to the tenants'
/// template copies: `wappline::templates::webhook`); the split counts their field.
pub(super) fn wa_template_update(b: &WebhookBatch) {
    assert!(b.events.is_empty());
    assert_eq!(b.ignored.total(), 1);
    let field = b.ignored.iter().next().unwrap().0.to_owned();
    assert!(
        field.starts_with("whatsapp:field:") && field.contains("template"),
        "{field}"
    );
}

// Coexistence: `history` (one event per past message, then the chunk's progress) and
// `smb_app_state_sync` (the business's saved contact names).
pub(super) fn wa_history(b: &WebhookBatch) {
    assert_eq!(
        kinds(b),
        [
            "history_message",
            "history_message",
            "history_message",
            "history_message",
            "history_progress"
        ]
    );
    assert!(b.ignored.is_empty());
    let past: Vec<(String, Party, String, i64)> = b.events[..4]
        .iter()
        .map(|ev| match &ev.kind {
            EventKind::HistoryMessage {
                customer,
                message_id,
                content,
                by,
            } => {
                wa_account(ev);
                assert!(ev.provider_event_id.starts_with("wa:hist:wamid."));
                assert_eq!(message_id.as_str(), &ev.provider_event_id[8..]);
                (
                    customer.phone.as_ref().unwrap().as_str().to_owned(),
                    *by,
                    content.text_for_crm(),
                    ev.timestamp.unwrap(),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        past,
        [
            (
                PHONE.to_owned(),
                Party::Customer,
                "Do you still have the linen shirt in blue?".to_owned(),
                1758000000
            ),
            // `to` marks the business's own message; the customer is `to`, not `from`.
            (
                PHONE.to_owned(),
                Party::Business,
                "Yes, sizes S to XL.".to_owned(),
                1758000060
            ),
            (
                PHONE.to_owned(),
                Party::Customer,
                "[unsupported: media_placeholder]".to_owned(),
                1758000120
            ),
            (
                PHONE2.to_owned(),
                Party::Customer,
                "Is the shop open on Sunday?".to_owned(),
                1758100000
            ),
        ]
    );
    for ev in &b.events[..4] {
        // Phone only in history: the conversation is found through the phone alias.
        assert_eq!(
            ev.customer().unwrap().id.key(),
            format!(
                "phone:{}",
                ev.customer().unwrap().phone.as_ref().unwrap().as_str()
            )
        );
    }
    match &b.events[4].kind {
        EventKind::HistoryProgress {
            phase,
            chunk_order,
            progress,
            declined,
        } => {
            assert_eq!(
                (*phase, *chunk_order, *progress),
                (Some(2), Some(1), Some(100))
            );
            assert!(!declined);
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_history_declined(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    assert!(ev.customer().is_none());
    assert!(matches!(
        ev.kind,
        EventKind::HistoryProgress {
            declined: true,
            progress: None,
            ..
        }
    ));
}

pub(super) fn wa_state_sync(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["contact_sync", "contact_sync"]);
    let names: Vec<(String, Option<String>)> = b
        .events
        .iter()
        .map(|ev| match &ev.kind {
            EventKind::ContactSync { customer, name } => {
                wa_account(ev);
                assert!(ev.provider_event_id.starts_with("wa:contact:"));
                // The key holds neither the phone nor the name.
                assert!(!ev
                    .provider_event_id
                    .contains(customer.phone.as_ref().unwrap().as_str()));
                (
                    customer.phone.as_ref().unwrap().as_str().to_owned(),
                    name.clone(),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            (PHONE.to_owned(), Some("Sheena Nelson Boutique".to_owned())),
            (PHONE2.to_owned(), None),
        ]
    );
    assert_eq!(b.events[0].timestamp, Some(1767261900));
}
