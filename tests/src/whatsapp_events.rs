//! Bodies of the WhatsApp Cloud API's webhook for the sample number ([`WA_NUMBER`] of
//! [`WABA`]), as Meta posts them: one entry, one `messages` change.

use serde_json::{json, Value};

use crate::harness::{WABA, WA_NUMBER};

/// One delivery whose change carries `value` (`contacts` and `messages`, or `statuses`)
/// besides the product and the number's metadata.
pub fn delivery(mut value: Value) -> Vec<u8> {
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "15550783881", "phone_number_id": WA_NUMBER});
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]
    }))
    .unwrap()
}

/// The `messages` of customer `from` (profile name `name`) in one delivery.
pub fn from_customer(from: &str, name: &str, messages: Vec<Value>) -> Vec<u8> {
    delivery(json!({
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": messages,
    }))
}

/// A text message `id` from `from`, stamped by Meta at `timestamp` (Unix seconds).
pub fn text_message(from: &str, id: &str, timestamp: i64, body: &str) -> Value {
    json!({
        "from": from,
        "id": id,
        "timestamp": timestamp.to_string(),
        "type": "text",
        "text": {"body": body}
    })
}

/// A delivery of one text message (see [`text_message`]) from customer `from`, named `name`.
pub fn text(from: &str, name: &str, id: &str, timestamp: i64, body: &str) -> Vec<u8> {
    from_customer(from, name, vec![text_message(from, id, timestamp, body)])
}

/// The sample `whatsapp-text.json` with `texts` as consecutive messages of its customer: the
/// message ids made unique by `tag` and the order, stamped a second apart from `first_at`.
pub fn sample_texts(tag: &str, first_at: i64, texts: &[&str]) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&crate::harness::sample("whatsapp-text.json")).unwrap();
    let value = &mut v["entry"][0]["changes"][0]["value"];
    let template = value["messages"][0].clone();
    let original = template["id"].as_str().unwrap().to_owned();
    let messages: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut m = template.clone();
            m["id"] = json!(original.replace("MwA=", &format!("{tag}M{i}A=")));
            m["timestamp"] = json!((first_at + i as i64).to_string());
            m["text"]["body"] = json!(text);
            m
        })
        .collect();
    value["messages"] = json!(messages);
    serde_json::to_vec(&v).unwrap()
}
