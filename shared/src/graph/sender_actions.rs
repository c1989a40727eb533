//! Read receipts and typing indicators: what the customer sees while a business answers.
//!
//! - WhatsApp (Meta, "Typing indicators" and "Mark messages as read"): `POST
//!   /{version}/{phone-number-id}/messages` with `{"messaging_product": "whatsapp", "status":
//!   "read", "message_id": "<WAMID>"}`, plus `"typing_indicator": {"type": "text"}` to show
//!   the business typing until it answers or for 25 seconds. Marking one message read marks
//!   the earlier ones read too. Answer: `{"success": true}`.
//! - Instagram (Meta, "Sender Actions", for Instagram Login and for Page-linked accounts): the
//!   same endpoint as sending, with `{"recipient": {"id": "<IGSID>"}, "sender_action":
//!   "mark_seen" | "typing_on" | "typing_off"}`. `mark_seen` marks the most recent message.
//!   Answer: `{"recipient_id": "<IGSID>"}`.

use serde::Deserialize;
use serde_json::json;

use super::instagram::InstagramSender;
use super::{GraphClient, GraphError};
use crate::ids::PhoneNumberId;
use crate::meta::InstagramUserId;
use crate::secret::Secret;

/// An Instagram sender action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstagramSenderAction {
    MarkSeen,
    TypingOn,
    TypingOff,
}

impl InstagramSenderAction {
    pub fn name(self) -> &'static str {
        match self {
            InstagramSenderAction::MarkSeen => "mark_seen",
            InstagramSenderAction::TypingOn => "typing_on",
            InstagramSenderAction::TypingOff => "typing_off",
        }
    }
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    success: bool,
}

#[derive(Deserialize)]
struct ActionAnswer {
    #[serde(default)]
    recipient_id: Option<String>,
}

impl GraphClient {
    /// Marks the customer's message `message_id` (and every earlier one) read, and with
    /// `typing` shows the business typing.
    pub async fn mark_whatsapp_read(
        &self,
        from: &PhoneNumberId,
        message_id: &str,
        typing: bool,
        access_token: &Secret,
    ) -> Result<(), GraphError> {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        });
        if typing {
            body["typing_indicator"] = json!({ "type": "text" });
        }
        let path = format!("{}/messages", from.as_str());
        let answer: Success = self.post_json(&path, &body, access_token).await?;
        if !answer.success {
            return Err(GraphError::Protocol(
                "mark as read answered without success".into(),
            ));
        }
        Ok(())
    }

    /// Sends `action` to `recipient` through `sender`'s endpoint (the client must fit the
    /// sender, as for [`GraphClient::send_instagram`]).
    pub async fn instagram_sender_action(
        &self,
        sender: &InstagramSender,
        recipient: &InstagramUserId,
        action: InstagramSenderAction,
        access_token: &Secret,
    ) -> Result<(), GraphError> {
        let body = json!({
            "recipient": { "id": recipient.as_str() },
            "sender_action": action.name(),
        });
        let answer: ActionAnswer = self.post_json(&sender.path(), &body, access_token).await?;
        if answer.recipient_id.is_none() {
            return Err(GraphError::Protocol(
                "sender action answered without a recipient".into(),
            ));
        }
        Ok(())
    }
}
