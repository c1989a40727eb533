//! WhatsApp Conversation Routing samples (decision 0065): Meta's Business Agent holds a
//! conversation (`standby`) and passes or loses it (`messaging_handovers`).

use super::*;

const WAMID_STANDBY: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwQTk4NkNGMUZCMDZERTREMAA=";
const WAMID_AGENT: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNCMEQ0RTdGMjU4QzZBMUIA";

fn handover(ev: &InboundEvent) -> (&CustomerRef, &str, Option<bool>) {
    match &ev.kind {
        EventKind::Handover {
            customer,
            action,
            ours,
            ..
        } => (customer, action, *ours),
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_standby_message(b: &WebhookBatch) {
    // Another responder holds the conversation (recorded first), then the message itself,
    // exactly as on the `messages` field.
    assert_eq!(kinds(b), ["handover", "message"]);
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
    for ev in &b.events {
        wa_account(ev);
    }
    let (customer, action, ours) = handover(&b.events[0]);
    assert_eq!((action, ours), ("standby", Some(false)));
    assert_eq!(customer.id.key(), format!("bsuid:{BSUID}"));
    assert_eq!(
        b.events[0].provider_event_id,
        format!("wa:standby:{WAMID_STANDBY}")
    );
    assert_eq!(
        b.events[1].provider_event_id,
        format!("wa:msg:{WAMID_STANDBY}")
    );
    let m = incoming(&b.events[1]);
    assert_eq!(text(m.content), "Is my order shipped yet?");
    assert_eq!(m.customer.name.as_deref(), Some(NAME));
    assert_eq!(m.customer.phone.as_ref().unwrap().as_str(), PHONE);
    assert_eq!(b.events[1].timestamp, Some(TS));
}

pub(super) fn wa_standby_echo(b: &WebhookBatch) {
    // The agent's reply is the business's echo; the status of it is the agent's business.
    assert_eq!(kinds(b), ["echo"]);
    assert_eq!(b.ignored.get("whatsapp:standby_status"), 1);
    assert_eq!(b.ignored.total(), 1);
    let ev = &b.events[0];
    wa_account(ev);
    assert_eq!(ev.provider_event_id, format!("wa:echo:{WAMID_AGENT}"));
    assert_eq!(ev.timestamp, Some(TS + 5));
    match &ev.kind {
        EventKind::BusinessEcho {
            customer,
            content,
            reply_to,
            app_id,
            from_agent,
            ..
        } => {
            assert!(from_agent, "the holder's reply, not the business's");
            assert_eq!(customer.id.key(), format!("phone:{PHONE}"));
            assert_eq!(text(content), "Hello! Your order #12345 has shipped.");
            // The Send API names the replied-to message `context.message_id`.
            assert_eq!(
                reply_to,
                &Some(ReplyTo::Message {
                    message_id: MessageId::parse(WAMID_STANDBY).unwrap()
                })
            );
            assert_eq!(app_id, &None);
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_handover_passed(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["handover"]);
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
    let ev = &b.events[0];
    wa_account(ev);
    let (customer, action, ours) = handover(ev);
    // Delivered to the new owner: the operators hold the conversation now.
    assert_eq!((action, ours), ("control_passed", Some(true)));
    assert_eq!(customer.id.key(), format!("phone:{PHONE}"));
    assert_eq!(
        ev.provider_event_id,
        format!("wa:handover:control_passed:{PHONE}:{}", TS + 10)
    );
    match &ev.kind {
        EventKind::Handover {
            previous_owner_app_id,
            new_owner_app_id,
            ..
        } => {
            assert_eq!(previous_owner_app_id.as_deref(), Some("1066355071287456"));
            assert_eq!(new_owner_app_id, &None);
        }
        _ => unreachable!(),
    }
}

pub(super) fn wa_handover_taken(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["handover"]);
    let (customer, action, ours) = handover(&b.events[0]);
    // Delivered to the previous owner: the escalation partner took it from us.
    assert_eq!((action, ours), ("control_taken", Some(false)));
    assert_eq!(customer.id.key(), format!("phone:{PHONE}"));
    assert_eq!(b.events[0].timestamp, Some(TS + 20));
}
