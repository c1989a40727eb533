//! The deliveries the soak posts as Meta would: WhatsApp Cloud API and Instagram messaging
//! webhooks, in the shapes of the samples under `events/meta-webhook/`.

use serde_json::json;

use super::world::SoakTenant;
use crate::fake_graph::SentMessage;

/// A WhatsApp text delivery, in the Cloud API's webhook shape (the sample
/// `events/meta-webhook/whatsapp-text.json`).
pub fn text_delivery(t: &SoakTenant, phone: &str, wamid: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": t.waba, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": t.number},
            "contacts": [{"profile": {"name": "Soak Customer"}, "wa_id": phone}],
            "messages": [{"from": phone, "id": wamid,
                "timestamp": wappline::clock::now_secs().to_string(),
                "type": "text", "text": {"body": body}}]
        }}]}]
    }))
    .expect("json")
}

/// A status delivery (the sample `whatsapp-status-delivered.json`) of the send `sent`: with
/// the send's `biz_opaque_callback_data`, which Meta returns in every status of that message
/// (sent, delivered, read, failed; decision 0055), as the Graph API fake's own statuses do.
pub(super) fn status_delivery(
    t: &SoakTenant,
    phone: &str,
    sent: &SentMessage,
    status: &str,
) -> Vec<u8> {
    let mut object = json!({"id": sent.id, "status": status,
        "timestamp": wappline::clock::now_secs().to_string(),
        "recipient_id": phone});
    if let Some(tag) = sent.body.get("biz_opaque_callback_data") {
        object["biz_opaque_callback_data"] = tag.clone();
    }
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": t.waba, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": t.number},
            "statuses": [object]
        }}]}]
    }))
    .expect("json")
}

/// An Instagram text delivery (the sample `events/meta-webhook/instagram-text.json`).
pub(super) fn instagram_text_delivery(
    account: &str,
    igsid: &str,
    mid: &str,
    text: &str,
) -> Vec<u8> {
    instagram_delivery(account, igsid, "message", json!({"mid": mid, "text": text}))
}

/// An Instagram read receipt of the send `sent` (the sample `instagram-read.json`: `read`
/// names the message's `mid`). Instagram reports no delivery of a message, only its read.
pub(super) fn instagram_read_delivery(account: &str, igsid: &str, sent: &SentMessage) -> Vec<u8> {
    instagram_delivery(account, igsid, "read", json!({"mid": sent.id}))
}

/// One `messaging` item from the customer's Instagram-scoped id to the tenant's account,
/// carrying `what` (`message`, `read`), its times in milliseconds as Instagram sends them.
fn instagram_delivery(account: &str, igsid: &str, what: &str, value: serde_json::Value) -> Vec<u8> {
    let now_ms = wappline::clock::now_secs() * 1000;
    let mut item = json!({
        "sender": {"id": igsid},
        "recipient": {"id": account},
        "timestamp": now_ms,
    });
    item[what] = value;
    serde_json::to_vec(&json!({
        "object": "instagram",
        "entry": [{"time": now_ms, "id": account, "messaging": [item]}]
    }))
    .expect("json")
}
