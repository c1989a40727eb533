//! Which inbound events skip the job's idempotency hold (decision 0096): a message whose own
//! transaction already refuses a second store, found again by its index item before anything
//! is written.

use crate::conversation::IdentityChange;
use crate::meta::{EventKind, InboundEvent};

/// How far Meta's clock may run ahead of ours for [`message_is_its_own_record`].
const META_CLOCK_MARGIN_SECS: i64 = 3_600;

/// How long after Meta stamped a message its index item is sure to be there if the message
/// was stored: a message lives at least a day (the shortest retention a tenant can set; the
/// retention re-stamp counts from when we stored it, never from Meta's stamp), less the
/// margin for Meta's clock.
const INDEX_SURELY_KEPT_SECS: i64 = 86_400 - META_CLOCK_MARGIN_SECS;

/// Whether the event is a message whose own transaction can stand in for the job's
/// idempotency hold (decision 0096): a customer's message or postback (not a change of
/// identity, which moves a conversation before it stores anything) stamped recently enough
/// that, had it been stored, its index item would still say so. Anything else, or a stamp
/// out of that window (a late redelivery, a stamp too far ahead of our clock), takes the
/// hold as before.
pub(super) fn message_is_its_own_record(event: &InboundEvent, now: i64) -> bool {
    let Some(stamped) = event.timestamp else {
        return false;
    };
    if stamped > now + META_CLOCK_MARGIN_SECS || now - stamped >= INDEX_SURELY_KEPT_SECS {
        return false;
    }
    match &event.kind {
        EventKind::CustomerMessage {
            customer, content, ..
        } => IdentityChange::from_notice(customer, content).is_none(),
        EventKind::Postback { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::split_webhook;

    const NOW: i64 = 1_796_000_000;

    fn text_at(stamped: i64) -> InboundEvent {
        let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100001", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Ann"}, "wa_id": "16505551234"}],
                "messages": [{"from": "16505551234", "id": "wamid.own-record", "timestamp": stamped.to_string(),
                    "type": "text", "text": {"body": "hello"}}]}}]}]});
        let mut batch = split_webhook(&serde_json::to_vec(&body).unwrap()).unwrap();
        batch.events.remove(0)
    }

    #[test]
    fn a_message_stamped_within_the_window_is_its_own_record() {
        assert!(message_is_its_own_record(&text_at(NOW), NOW));
        assert!(message_is_its_own_record(
            &text_at(NOW - INDEX_SURELY_KEPT_SECS + 1),
            NOW
        ));
        assert!(message_is_its_own_record(
            &text_at(NOW + META_CLOCK_MARGIN_SECS),
            NOW
        ));
    }

    #[test]
    fn a_message_stamped_out_of_the_window_takes_the_hold() {
        // Late: its index item may be gone with a short retention.
        assert!(!message_is_its_own_record(
            &text_at(NOW - INDEX_SURELY_KEPT_SECS),
            NOW
        ));
        assert!(!message_is_its_own_record(&text_at(NOW - 8 * 86_400), NOW));
        // Ahead of our clock by more than the margin: when we stored it is not bounded by it.
        assert!(!message_is_its_own_record(
            &text_at(NOW + META_CLOCK_MARGIN_SECS + 1),
            NOW
        ));
        let mut unstamped = text_at(NOW);
        unstamped.timestamp = None;
        assert!(!message_is_its_own_record(&unstamped, NOW));
    }

    #[test]
    fn a_status_takes_the_hold() {
        let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100001", "phone_number_id": "106540352242922"},
                "statuses": [{"id": "wamid.own-record", "status": "read", "timestamp": NOW.to_string(),
                    "recipient_id": "16505551234"}]}}]}]});
        let status = split_webhook(&serde_json::to_vec(&body).unwrap())
            .unwrap()
            .events
            .remove(0);
        assert!(matches!(status.kind, EventKind::Status { .. }));
        assert!(!message_is_its_own_record(&status, NOW));
    }
}
