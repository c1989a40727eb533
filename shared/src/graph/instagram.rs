//! Instagram Send API.
//!
//! Two documented ways in, by how the account was connected (Meta, "Instagram Platform >
//! Instagram API with Instagram Login > Send Messages", and "Messenger Platform > Instagram >
//! Send a Message"):
//! - Instagram Login: `POST https://graph.instagram.com/{version}/me/messages` (or
//!   `/{ig-id}/messages`) with the Instagram User access token
//!   ([`InstagramSender::Me`]);
//! - Facebook Login (an account linked to a Facebook Page): `POST
//!   https://graph.facebook.com/{version}/{page-id}/messages` with the Page access token
//!   ([`InstagramSender::Page`]).
//!
//! Body: `{"recipient": {"id": "<IGSID>"}, "messaging_type": "RESPONSE", "message": {"text":
//! "..."}}`, or `"message": {"attachment": {"type": "image" | "audio" | "video" | "file",
//! "payload": {"url": "<URL>"}}}` (Meta fetches the URL: images PNG/JPEG/GIF up to 8 MB, audio
//! and video up to 25 MB). Text is UTF-8, at most 1000 bytes.
//!
//! Windows: a reply is allowed within 24 hours of the customer's last message
//! (`messaging_type: "RESPONSE"`); a human agent may answer up to 7 days after it with
//! `"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"` (never for automated messages).
//!
//! A reply to one of the customer's messages adds `"reply_to": {"mid": "<MID>"}` beside
//! `recipient`, not inside `message` (Graph API reference, "Page Messages"
//! (developers.facebook.com/docs/graph-api/reference/page/messages): `reply_to` is an object
//! parameter of the messages edge, next to `recipient`, `message` and `messaging_type`; the
//! `mid` is the one the incoming `message.reply_to.mid` names a customer's reply by). The
//! Instagram Login guides document no other shape; the fake Graph API refuses any other.
//!
//! Answer: `{"recipient_id": "<IGSID>", "message_id": "<MID>"}`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{GraphClient, GraphError};
use crate::ids::InstagramAccountId;
use crate::meta::InstagramUserId;
use crate::secret::Secret;

/// Longest text the Send API accepts (UTF-8 bytes).
pub const INSTAGRAM_TEXT_MAX_BYTES: usize = 1000;

/// Whose endpoint sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstagramSender {
    /// `me/messages` with an Instagram User access token (on `graph.instagram.com`).
    Me,
    /// `{page-id}/messages` with a Page access token (on `graph.facebook.com`).
    Page(InstagramAccountId),
}

impl InstagramSender {
    pub fn path(&self) -> String {
        match self {
            InstagramSender::Me => "me/messages".to_owned(),
            InstagramSender::Page(id) => format!("{}/messages", id.as_str()),
        }
    }
}

/// Which window the message is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstagramTiming {
    /// Within 24 hours of the customer's last message.
    Response,
    /// A human agent's reply up to 7 days after it.
    HumanAgent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstagramAttachmentType {
    Image,
    Audio,
    Video,
    File,
}

impl InstagramAttachmentType {
    pub fn name(self) -> &'static str {
        match self {
            InstagramAttachmentType::Image => "image",
            InstagramAttachmentType::Audio => "audio",
            InstagramAttachmentType::Video => "video",
            InstagramAttachmentType::File => "file",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum InstagramContent {
    Text(String),
    Attachment {
        kind: InstagramAttachmentType,
        url: String,
    },
}

impl std::fmt::Debug for InstagramContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstagramContent::Text(_) => f.write_str("Text(..)"),
            InstagramContent::Attachment { kind, .. } => write!(f, "Attachment({})", kind.name()),
        }
    }
}

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstagramMessage {
    pub recipient: InstagramUserId,
    pub timing: InstagramTiming,
    pub content: InstagramContent,
    /// The `mid` of the message this one answers: sent as `reply_to: {mid}`, which the
    /// customer's app shows as a reply to that message.
    pub reply_to: Option<String>,
}

impl InstagramMessage {
    /// The request body, as the Send API documents it.
    pub fn to_json(&self) -> Value {
        let message = match &self.content {
            InstagramContent::Text(text) => json!({ "text": text }),
            InstagramContent::Attachment { kind, url } => json!({
                "attachment": { "type": kind.name(), "payload": { "url": url } }
            }),
        };
        let mut body = json!({
            "recipient": { "id": self.recipient.as_str() },
            "message": message,
        });
        if let Some(mid) = self.reply_to.as_deref().filter(|m| !m.is_empty()) {
            body["reply_to"] = json!({ "mid": mid });
        }
        match self.timing {
            InstagramTiming::Response => body["messaging_type"] = json!("RESPONSE"),
            InstagramTiming::HumanAgent => {
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!("HUMAN_AGENT");
            }
        }
        body
    }
}

/// The Send API's answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InstagramSent {
    #[serde(default)]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub message_id: String,
}

impl GraphClient {
    /// Sends `message` through `sender`'s endpoint. Call it on a client whose base URL fits
    /// the sender: `graph.instagram.com` for [`InstagramSender::Me`], `graph.facebook.com` for
    /// [`InstagramSender::Page`].
    pub async fn send_instagram(
        &self,
        sender: &InstagramSender,
        message: &InstagramMessage,
        access_token: &Secret,
    ) -> Result<InstagramSent, GraphError> {
        let sent: InstagramSent = self
            .post_json(&sender.path(), &message.to_json(), access_token)
            .await?;
        if sent.message_id.is_empty() {
            return Err(GraphError::Protocol(
                "send answered without a message id".into(),
            ));
        }
        Ok(sent)
    }
}

/// A user's profile from the User Profile API (Meta, "Instagram API with Instagram Login >
/// Messaging > User Profile"): `GET /{IGSID}?fields=name,username,profile_pic` with the
/// account's token (on `graph.instagram.com` for Instagram Login, `graph.facebook.com` for a
/// Page-linked account). Only for a user who has messaged the account (otherwise error 230,
/// "User consent is required"); `profile_pic` is a CDN URL that expires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct InstagramUserProfile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub profile_pic: Option<String>,
}

/// The fields asked of the User Profile API.
pub const PROFILE_FIELDS: &str = "name,username,profile_pic";

impl GraphClient {
    /// The profile of `user` as `access_token`'s account may see it. Call it on the client
    /// whose host fits the account (see [`GraphClient::send_instagram`]).
    pub async fn instagram_user_profile(
        &self,
        user: &InstagramUserId,
        access_token: &Secret,
    ) -> Result<InstagramUserProfile, GraphError> {
        self.get_json(user.as_str(), &[("fields", PROFILE_FIELDS)], access_token)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn igsid() -> InstagramUserId {
        InstagramUserId::parse("1254459154682919").unwrap()
    }

    #[test]
    fn a_reply_names_the_message_it_answers() {
        let m = InstagramMessage {
            recipient: igsid(),
            timing: InstagramTiming::Response,
            content: InstagramContent::Text("yes, in red".into()),
            reply_to: Some("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx".into()),
        };
        assert_eq!(
            m.to_json(),
            json!({
                "recipient": {"id": "1254459154682919"},
                "messaging_type": "RESPONSE",
                "reply_to": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx"},
                "message": {"text": "yes, in red"}
            })
        );
    }

    #[test]
    fn text_within_the_window() {
        let m = InstagramMessage {
            recipient: igsid(),
            timing: InstagramTiming::Response,
            content: InstagramContent::Text("hello".into()),
            reply_to: None,
        };
        assert_eq!(
            m.to_json(),
            json!({
                "recipient": {"id": "1254459154682919"},
                "messaging_type": "RESPONSE",
                "message": {"text": "hello"}
            })
        );
    }

    #[test]
    fn human_agent_attachment() {
        let m = InstagramMessage {
            recipient: igsid(),
            timing: InstagramTiming::HumanAgent,
            content: InstagramContent::Attachment {
                kind: InstagramAttachmentType::Image,
                url: "https://example.bitrix24.com/f.jpg".into(),
            },
            reply_to: None,
        };
        assert_eq!(
            m.to_json(),
            json!({
                "recipient": {"id": "1254459154682919"},
                "messaging_type": "MESSAGE_TAG",
                "tag": "HUMAN_AGENT",
                "message": {"attachment": {"type": "image", "payload": {"url": "https://example.bitrix24.com/f.jpg"}}}
            })
        );
    }

    #[test]
    fn paths_and_answer() {
        assert_eq!(InstagramSender::Me.path(), "me/messages");
        let page = InstagramAccountId::parse("104102228512371").unwrap();
        assert_eq!(
            InstagramSender::Page(page).path(),
            "104102228512371/messages"
        );
        let a: InstagramSent = serde_json::from_str(
            r#"{"recipient_id":"1254459154682919","message_id":"aWdfZAG1faXRlbTox"}"#,
        )
        .unwrap();
        assert_eq!(a.message_id, "aWdfZAG1faXRlbTox");
    }
}
