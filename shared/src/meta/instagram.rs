//! Serde models of Instagram Messaging webhook payloads (`object: "instagram"`), as Meta's
//! Instagram Platform and Messenger Platform references document them. Tolerant like the
//! WhatsApp models: unknown fields ignored, everything optional, items parsed one by one.
//!
//! Who is who: `entry[].id` is the business's Instagram professional account. For a
//! customer's message `sender` is the customer (IGSID) and `recipient` the business; for an
//! echo (`message.is_echo`, sent by the business from the Instagram app or the API) it is the
//! other way round. Timestamps are milliseconds.

use serde::Deserialize;
use serde_json::Value;

use super::lenient;

/// `entry[]`: one Instagram professional account.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Entry {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// When Meta sent the notification (milliseconds).
    #[serde(default, deserialize_with = "lenient::int")]
    pub time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub messaging: Vec<Value>,
    /// Events for conversations another app controls (handover protocol): not ours to relay.
    #[serde(default, deserialize_with = "lenient::items")]
    pub standby: Vec<Value>,
    /// Comments, mentions and other non-messaging fields.
    #[serde(default, deserialize_with = "lenient::items")]
    pub changes: Vec<Value>,
}

/// `entry[].messaging[]`: exactly one of `message`, `message_edit`, `reaction`, `read`,
/// `postback` (or a field we do not relay, such as `referral` alone).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Messaging {
    #[serde(default)]
    pub sender: Option<Party>,
    #[serde(default)]
    pub recipient: Option<Party>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub message_edit: Option<MessageEdit>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    #[serde(default)]
    pub read: Option<Read>,
    #[serde(default)]
    pub postback: Option<Postback>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Party {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
}

/// `messaging[].message`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
    #[serde(default)]
    pub quick_reply: Option<QuickReply>,
    #[serde(default)]
    pub referral: Option<Referral>,
    /// Sent by the business (Instagram app, or any app using the API).
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_echo: bool,
    /// The sender unsent (deleted) the message `mid`.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_deleted: bool,
    /// A message type the API does not deliver.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_unsupported: bool,
    /// On echoes of API sends: the sending app (Messenger documents it; kept when present).
    #[serde(default, deserialize_with = "lenient::text")]
    pub app_id: Option<String>,
}

/// `attachments[]`: `type` is `image`, `video`, `audio`, `file`, `share`, `story_mention`,
/// `ig_reel`, `reel`, `ig_post` or `fallback`; `payload.url` is a CDN URL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Attachment {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Option<AttachmentPayload>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AttachmentPayload {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// Set on the "like" heart and other stickers sent as images.
    #[serde(default, deserialize_with = "lenient::text")]
    pub sticker_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub reel_video_id: Option<String>,
}

/// A reply to one of our messages (`mid`) or to the business's story (`story`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplyTo {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub story: Option<Story>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Story {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct QuickReply {
    #[serde(default)]
    pub payload: Option<String>,
}

/// Click-to-Instagram-Direct ad or ig.me link attribution.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Referral {
    #[serde(default, rename = "ref")]
    pub ref_param: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub ad_id: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub ads_context_data: Option<AdsContext>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdsContext {
    #[serde(default)]
    pub ad_title: Option<String>,
    #[serde(default)]
    pub photo_url: Option<String>,
    #[serde(default)]
    pub video_url: Option<String>,
}

/// `message_edit`: `mid` now reads `text`; `num_edit` counts edits so far.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageEdit {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "lenient::uint")]
    pub num_edit: Option<u64>,
}

/// `reaction` (field `message_reactions`): `action` is `react` or `unreact`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    /// A name: `love`, `like`, `laugh`, `wow`, `sad`, `angry`, `other`.
    #[serde(default)]
    pub reaction: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
}

/// `read` (field `messaging_seen`): the customer saw our message `mid`; older payloads carry
/// a `watermark` (everything sent before it was seen) instead.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Read {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub watermark: Option<i64>,
}

/// `postback` (field `messaging_postbacks`): an icebreaker or template button was tapped.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Postback {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
}
