//! Read receipts and sender actions, posted to the same `…/messages` endpoints as sends but
//! not sends (no message id, not counted by [`FakeGraph::sent`], and never taking a failure
//! scheduled for the next send):
//!
//! - WhatsApp ("Mark messages as read", "Typing indicators"): `{"messaging_product":
//!   "whatsapp", "status": "read", "message_id": "<WAMID>"}` with an optional
//!   `"typing_indicator": {"type": "text"}`; answer `{"success": true}`. A message id that
//!   is not a wamid is refused with code 100.
//! - Instagram ("Sender Actions"): `{"recipient": {"id": "<IGSID>"}, "sender_action":
//!   "mark_seen" | "typing_on" | "typing_off"}` and nothing else; answer
//!   `{"recipient_id": "<IGSID>"}`.

use serde_json::{json, Value};

use super::{
    invalid_parameter, invalid_token, json_answer, no_such_object, Answer, FakeGraph, State,
};

/// A read receipt or sender action the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAction {
    /// `whatsapp` or `instagram`.
    pub product: &'static str,
    /// The path it was posted to.
    pub path: String,
    /// WhatsApp: `read` or `read+typing`; Instagram: the `sender_action`.
    pub action: String,
    /// WhatsApp: the message marked read; Instagram: the recipient.
    pub target: String,
}

/// True for a body that is a read receipt or sender action rather than a message.
pub(super) fn is_sender_action(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|b| b.get("status").is_some() || b.get("sender_action").is_some())
}

pub(super) fn whatsapp_read(
    s: &mut State,
    path: &str,
    number: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)) else {
        return invalid_token();
    };
    if !numbers.iter().any(|n| n == number) {
        return no_such_object(number);
    }
    if body["messaging_product"] != "whatsapp" || body["status"] != "read" {
        return invalid_parameter("status must be read, with messaging_product whatsapp");
    }
    let Some(id) = body["message_id"]
        .as_str()
        .filter(|id| id.starts_with("wamid."))
    else {
        return invalid_parameter("message_id must be the wamid of a received message");
    };
    let action = match body.get("typing_indicator") {
        None => "read",
        Some(t) if t == &json!({"type": "text"}) => "read+typing",
        Some(_) => return invalid_parameter("typing_indicator.type must be text"),
    };
    s.actions.push(SenderAction {
        product: "whatsapp",
        path: path.to_owned(),
        action: action.to_owned(),
        target: id.to_owned(),
    });
    json_answer(200, &json!({"success": true}))
}

pub(super) fn instagram_action(
    s: &mut State,
    path: &str,
    owner: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Answer {
    let Some((account, page)) = bearer.and_then(|t| s.instagram_tokens.get(t)) else {
        return invalid_token();
    };
    if !(owner == "me" || owner == account || page.as_deref() == Some(owner)) {
        return no_such_object(owner);
    }
    let Some(recipient) = body["recipient"]["id"].as_str().map(str::to_owned) else {
        return invalid_parameter("recipient.id is required");
    };
    if body.get("message").is_some() {
        return invalid_parameter("sender_action cannot be sent with a message");
    }
    let Some(action) = body["sender_action"]
        .as_str()
        .filter(|a| ["mark_seen", "typing_on", "typing_off"].contains(a))
    else {
        return invalid_parameter("sender_action must be mark_seen, typing_on or typing_off");
    };
    s.actions.push(SenderAction {
        product: "instagram",
        path: path.to_owned(),
        action: action.to_owned(),
        target: recipient.clone(),
    });
    json_answer(200, &json!({"recipient_id": recipient}))
}

impl FakeGraph {
    /// Every read receipt and sender action the fake accepted, in order.
    pub fn sender_actions(&self) -> Vec<SenderAction> {
        self.state().actions.clone()
    }
}
