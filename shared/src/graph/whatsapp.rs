//! WhatsApp Cloud API: sending messages (`POST /{version}/{phone-number-id}/messages`).
//!
//! Request (Meta, "Cloud API > Reference > Messages"; the business-scoped user id guide for
//! `recipient`):
//!
//! ```json
//! {"messaging_product": "whatsapp", "recipient_type": "individual",
//!  "to": "<PHONE>" | "recipient": "<BSUID>",
//!  "context": {"message_id": "<WAMID replied to>"},
//!  "biz_opaque_callback_data": "<our tag>",
//!  "type": "text", "text": {"body": "...", "preview_url": true}}
//! ```
//!
//! - `to` takes a phone number; since 2026 `recipient` takes a business-scoped user id (BSUID,
//!   `US.13491208655302741918`) or a parent BSUID, for customers who adopted a username and
//!   whose phone number we do not know. When both are present `to` wins, and Meta recommends
//!   the phone number when there is one (so phone fields keep appearing in webhooks), so we
//!   send exactly one of them. Some messages cannot go to a BSUID: Meta answers 131062.
//! - Media (`image`, `audio`, `video`, `document`, `sticker`) by the `id` of an upload to
//!   `/{phone-number-id}/media` ([`GraphClient::upload_whatsapp_media`]); `caption` on image,
//!   video and document, `filename` on document.
//! - `reaction: {"message_id", "emoji"}` (an empty emoji removes the reaction).
//! - `template: {"name", "language": {"code"}, "components"}`.
//! - `biz_opaque_callback_data`: an arbitrary string of at most 512 characters that the Cloud
//!   API does not process and returns in the `statuses` objects of the `messages` webhooks of
//!   that message (sent, delivered, read, failed).
//!
//! Answer: `{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id" | "user_id"}],
//! "messages": [{"id": "wamid....", "message_status": "accepted"}]}`; `message_status` is
//! optional (`held_for_quality_assessment` for paced marketing templates).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{GraphClient, GraphError};
use crate::ids::PhoneNumberId;
use crate::meta::{WhatsAppPhone, WhatsAppUserId};
use crate::secret::Secret;

/// Longest text body the Cloud API accepts (characters).
pub const WHATSAPP_TEXT_MAX_CHARS: usize = 4096;
/// Longest media caption (characters).
pub const WHATSAPP_CAPTION_MAX_CHARS: usize = 1024;

/// Who a message goes to.
#[derive(Clone, PartialEq, Eq)]
pub enum WhatsAppRecipient {
    /// `to`: a phone number (digits).
    Phone(WhatsAppPhone),
    /// `recipient`: a business-scoped user id or parent BSUID.
    User(WhatsAppUserId),
}

impl fmt::Debug for WhatsAppRecipient {
    /// Which kind only: the value is personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhatsAppRecipient::Phone(_) => f.write_str("Phone(..)"),
            WhatsAppRecipient::User(_) => f.write_str("User(..)"),
        }
    }
}

/// The Cloud API's media message types, with their documented limits ("Supported media
/// types": image JPEG/PNG 5 MB; audio AAC/AMR/MP3/M4A/OGG-Opus 16 MB; video MP4/3GP 16 MB;
/// documents 100 MB; stickers WebP 500 KB animated, 100 KB static).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhatsAppMediaType {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

const MB: usize = 1024 * 1024;

impl WhatsAppMediaType {
    /// The message `type` and the key of its object.
    pub fn name(self) -> &'static str {
        match self {
            WhatsAppMediaType::Image => "image",
            WhatsAppMediaType::Audio => "audio",
            WhatsAppMediaType::Video => "video",
            WhatsAppMediaType::Document => "document",
            WhatsAppMediaType::Sticker => "sticker",
        }
    }

    /// Largest file Meta accepts for this type.
    pub fn max_bytes(self) -> usize {
        match self {
            WhatsAppMediaType::Image => 5 * MB,
            WhatsAppMediaType::Audio | WhatsAppMediaType::Video => 16 * MB,
            WhatsAppMediaType::Document => 100 * MB,
            WhatsAppMediaType::Sticker => 500 * 1024,
        }
    }

    /// True when Meta lists `mime` (parameters ignored) for this type.
    pub fn accepts(self, mime: &str) -> bool {
        let mime = mime
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let allowed: &[&str] = match self {
            WhatsAppMediaType::Image => &["image/jpeg", "image/png"],
            WhatsAppMediaType::Audio => &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
            ],
            WhatsAppMediaType::Video => &["video/mp4", "video/3gp", "video/3gpp"],
            WhatsAppMediaType::Sticker => &["image/webp"],
            // Meta lists text, PDF and Office types; other documents are refused by Meta
            // itself, with an error the operator then sees.
            WhatsAppMediaType::Document => return !mime.is_empty(),
        };
        allowed.contains(&mime.as_str())
    }

    /// Whether the type carries a `caption`.
    pub fn takes_caption(self) -> bool {
        matches!(
            self,
            WhatsAppMediaType::Image | WhatsAppMediaType::Video | WhatsAppMediaType::Document
        )
    }
}

/// An approved WhatsApp template to send (business-initiated messages, or replies outside
/// the 24-hour window): name, language and the Cloud API's `components` as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub name: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub components: serde_json::Value,
    /// The template's category when the sender knows it (`AUTHENTICATION`, `MARKETING`,
    /// `UTILITY`, as Meta names them on template objects). Not part of the send request: Meta
    /// knows its templates; it lets a send Meta would refuse be refused before the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl TemplateMessage {
    /// An authentication (one-time password) template: Meta does not deliver these to a
    /// business-scoped user id (error 131062, "Business-scoped user IDs").
    pub fn is_authentication(&self) -> bool {
        self.category
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("AUTHENTICATION"))
    }
}

/// What a message says.
#[derive(Clone, PartialEq)]
pub enum WhatsAppContent {
    Text {
        body: String,
        /// Render a preview of the first URL in the body.
        preview_url: bool,
    },
    /// Media already uploaded to the Cloud API.
    Media {
        kind: WhatsAppMediaType,
        id: String,
        caption: Option<String>,
        /// Shown for documents.
        filename: Option<String>,
    },
    Reaction {
        message_id: String,
        /// Empty removes the reaction.
        emoji: String,
    },
    Template(TemplateMessage),
}

impl fmt::Debug for WhatsAppContent {
    /// The kind only: bodies are message content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhatsAppContent::Text { .. } => f.write_str("Text(..)"),
            WhatsAppContent::Media { kind, .. } => write!(f, "Media({})", kind.name()),
            WhatsAppContent::Reaction { .. } => f.write_str("Reaction(..)"),
            WhatsAppContent::Template(t) => write!(f, "Template({})", t.name),
        }
    }
}

/// One message to send.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatsAppMessage {
    pub to: WhatsAppRecipient,
    /// The `wamid` of the message this one replies to (`context.message_id`).
    pub reply_to: Option<String>,
    pub content: WhatsAppContent,
    /// `biz_opaque_callback_data`: echoed back in the message's status webhooks (at most
    /// 512 characters; longer is not sent).
    pub callback: Option<String>,
}

/// The Cloud API's limit on `biz_opaque_callback_data`.
pub const MAX_CALLBACK_DATA: usize = 512;

impl WhatsAppMessage {
    /// The request body, exactly as the Cloud API documents it.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("messaging_product".into(), json!("whatsapp"));
        body.insert("recipient_type".into(), json!("individual"));
        match &self.to {
            WhatsAppRecipient::Phone(p) => body.insert("to".into(), json!(p.as_str())),
            WhatsAppRecipient::User(u) => body.insert("recipient".into(), json!(u.as_str())),
        };
        if let Some(id) = &self.reply_to {
            // A reaction names its message itself.
            if !matches!(self.content, WhatsAppContent::Reaction { .. }) {
                body.insert("context".into(), json!({ "message_id": id }));
            }
        }
        let (kind, object) = match &self.content {
            WhatsAppContent::Text { body, preview_url } => {
                ("text", json!({ "preview_url": preview_url, "body": body }))
            }
            WhatsAppContent::Media {
                kind,
                id,
                caption,
                filename,
            } => {
                let mut m = Map::new();
                m.insert("id".into(), json!(id));
                if let Some(c) = caption.as_ref().filter(|c| !c.is_empty()) {
                    if kind.takes_caption() {
                        m.insert("caption".into(), json!(c));
                    }
                }
                if let Some(f) = filename.as_ref().filter(|f| !f.is_empty()) {
                    if *kind == WhatsAppMediaType::Document {
                        m.insert("filename".into(), json!(f));
                    }
                }
                (kind.name(), Value::Object(m))
            }
            WhatsAppContent::Reaction { message_id, emoji } => (
                "reaction",
                json!({ "message_id": message_id, "emoji": emoji }),
            ),
            WhatsAppContent::Template(t) => {
                let mut m = Map::new();
                m.insert("name".into(), json!(t.name));
                m.insert("language".into(), json!({ "code": t.language }));
                if !t.components.is_null() {
                    m.insert("components".into(), t.components.clone());
                }
                ("template", Value::Object(m))
            }
        };
        if let Some(tag) = self
            .callback
            .as_ref()
            .filter(|t| !t.is_empty() && t.len() <= MAX_CALLBACK_DATA)
        {
            body.insert("biz_opaque_callback_data".into(), json!(tag));
        }
        body.insert("type".into(), json!(kind));
        body.insert(kind.into(), object);
        Value::Object(body)
    }
}

/// `contacts[]` of the answer: what was sent to, and who that is.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct SentContact {
    #[serde(default)]
    pub input: Option<String>,
    /// Set when the send used a phone number.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Set when the send used a BSUID.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `messages[]` of the answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub id: String,
    #[serde(default)]
    pub message_status: Option<String>,
}

/// The Cloud API's answer to a send. `Debug` leaves out the contacts (phone numbers).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct WhatsAppSent {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub contacts: Vec<SentContact>,
    #[serde(default)]
    pub messages: Vec<SentMessage>,
}

impl fmt::Debug for WhatsAppSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppSent")
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl WhatsAppSent {
    /// The `wamid` of the message sent.
    pub fn message_id(&self) -> Option<&str> {
        self.messages
            .first()
            .map(|m| m.id.as_str())
            .filter(|id| !id.is_empty())
    }
}

impl GraphClient {
    /// Sends `message` from the business number `from` with the number's access token.
    /// The answer must name the sent message's id, or it is a [`GraphError::Protocol`].
    pub async fn send_whatsapp(
        &self,
        from: &PhoneNumberId,
        message: &WhatsAppMessage,
        access_token: &Secret,
    ) -> Result<WhatsAppSent, GraphError> {
        let path = format!("{}/messages", from.as_str());
        let sent: WhatsAppSent = self
            .post_json(&path, &message.to_json(), access_token)
            .await?;
        if sent.message_id().is_none() {
            return Err(GraphError::Protocol(
                "send answered without a message id".into(),
            ));
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> WhatsAppRecipient {
        WhatsAppRecipient::Phone(WhatsAppPhone::parse("+16505551234").unwrap())
    }

    #[test]
    fn text_reply_to_a_phone() {
        let m = WhatsAppMessage {
            to: phone(),
            reply_to: Some("wamid.ABC".into()),
            callback: None,
            content: WhatsAppContent::Text {
                body: "see https://example.com".into(),
                preview_url: true,
            },
        };
        assert_eq!(
            m.to_json(),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "16505551234",
                "context": {"message_id": "wamid.ABC"},
                "type": "text",
                "text": {"preview_url": true, "body": "see https://example.com"}
            })
        );
    }

    #[test]
    fn the_callback_tag_goes_as_biz_opaque_callback_data_up_to_its_limit() {
        let mut m = WhatsAppMessage {
            to: phone(),
            reply_to: None,
            callback: Some("wl1.abc.0.1".into()),
            content: WhatsAppContent::Text {
                body: "hi".into(),
                preview_url: false,
            },
        };
        assert_eq!(m.to_json()["biz_opaque_callback_data"], "wl1.abc.0.1");
        m.callback = Some("x".repeat(MAX_CALLBACK_DATA + 1));
        assert!(m.to_json().get("biz_opaque_callback_data").is_none());
    }

    #[test]
    fn media_to_a_bsuid() {
        let m = WhatsAppMessage {
            to: WhatsAppRecipient::User(WhatsAppUserId::parse("US.13491208655302741918").unwrap()),
            reply_to: None,
            callback: None,
            content: WhatsAppContent::Media {
                kind: WhatsAppMediaType::Document,
                id: "1013859600285441".into(),
                caption: Some("the invoice".into()),
                filename: Some("invoice.pdf".into()),
            },
        };
        let v = m.to_json();
        assert_eq!(v["recipient"], "US.13491208655302741918");
        assert!(v.get("to").is_none());
        assert_eq!(v["type"], "document");
        assert_eq!(
            v["document"],
            json!({"id": "1013859600285441", "caption": "the invoice", "filename": "invoice.pdf"})
        );
        // Audio takes neither caption nor filename.
        let m = WhatsAppMessage {
            content: WhatsAppContent::Media {
                kind: WhatsAppMediaType::Audio,
                id: "1".into(),
                caption: Some("x".into()),
                filename: Some("a.ogg".into()),
            },
            ..m
        };
        assert_eq!(m.to_json()["audio"], json!({"id": "1"}));
    }

    #[test]
    fn reactions_and_templates() {
        let m = WhatsAppMessage {
            to: phone(),
            reply_to: Some("wamid.X".into()),
            callback: None,
            content: WhatsAppContent::Reaction {
                message_id: "wamid.X".into(),
                emoji: "\u{1f600}".into(),
            },
        };
        let v = m.to_json();
        assert!(v.get("context").is_none());
        assert_eq!(
            v["reaction"],
            json!({"message_id": "wamid.X", "emoji": "\u{1f600}"})
        );

        let m = WhatsAppMessage {
            to: phone(),
            reply_to: None,
            callback: None,
            content: WhatsAppContent::Template(TemplateMessage {
                name: "order_update".into(),
                language: "en_US".into(),
                components: json!([{"type": "body", "parameters": [{"type": "text", "text": "A1"}]}]),
                category: Some("UTILITY".into()),
            }),
        };
        let v = m.to_json();
        assert_eq!(v["type"], "template");
        // The category is ours, not part of the send request.
        assert!(v["template"].get("category").is_none(), "{v}");
        assert_eq!(v["template"]["name"], "order_update");
        assert_eq!(v["template"]["language"], json!({"code": "en_US"}));
        assert_eq!(v["template"]["components"][0]["type"], "body");
    }

    #[test]
    fn answers_with_and_without_status() {
        let a: WhatsAppSent = serde_json::from_str(
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgL","message_status":"accepted"}]}"#,
        )
        .unwrap();
        assert_eq!(a.message_id(), Some("wamid.HBgL"));
        assert!(!format!("{a:?}").contains("16505551234"));
        let b: WhatsAppSent = serde_json::from_str(
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"US.1","user_id":"US.1"}],"messages":[{"id":"wamid.Q"}]}"#,
        )
        .unwrap();
        assert_eq!(b.messages[0].message_status, None);
        assert_eq!(b.contacts[0].user_id.as_deref(), Some("US.1"));
        let c: WhatsAppSent = serde_json::from_str(r#"{"messages":[]}"#).unwrap();
        assert_eq!(c.message_id(), None);
    }

    #[test]
    fn mime_types_per_kind() {
        assert!(WhatsAppMediaType::Image.accepts("image/jpeg"));
        assert!(WhatsAppMediaType::Image.accepts("IMAGE/PNG; charset=binary"));
        assert!(!WhatsAppMediaType::Image.accepts("image/gif"));
        assert!(WhatsAppMediaType::Audio.accepts("audio/ogg"));
        assert!(!WhatsAppMediaType::Video.accepts("video/quicktime"));
        assert!(WhatsAppMediaType::Document.accepts("application/zip"));
        assert_eq!(WhatsAppMediaType::Image.max_bytes(), 5 * 1024 * 1024);
    }
}
