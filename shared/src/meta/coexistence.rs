//! Serde models of the two Coexistence webhooks that are not messages (checked 2026 against
//! Meta's references: developers.facebook.com/documentation/business-messaging/whatsapp/
//! webhooks/reference/history/ and .../reference/smb_app_state_sync/). They ride in the same
//! `changes[].value` as messages (see [`super::whatsapp::ChangeValue`]); tolerant like the
//! rest: unknown fields are ignored, everything may be absent.
//!
//! - `history`: after a WhatsApp Business app number is onboarded and the business agreed to
//!   share its chat history, Meta sends up to 180 days of past messages in three phases
//!   (0: day 0–1, 1: day 1–90, 2: day 90–180), each in chunks (`chunk_order`), with the
//!   overall `progress` (100: complete). A declined share arrives as `errors` (code
//!   2593109) instead of threads. One chunk may hold thousands of messages: its messages
//!   count against the delivery's item cap, not its event cap.
//! - `smb_app_state_sync`: the business's app contacts (`action` `add` for added or edited,
//!   `remove`), with the name the business saved for the contact.

use std::borrow::Cow;

use serde::Deserialize;

use super::item::Item;
use super::lenient;
use super::whatsapp::{ErrorObject, Message};

/// `value.history[]`: one chunk of the chat history.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryChunk<'a> {
    #[serde(default)]
    pub metadata: Option<HistoryProgress>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub threads: Vec<Item<'a, HistoryThread<'a>>>,
    /// The business declined to share its history (code 2593109).
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub errors: Vec<Item<'a, ErrorObject<'a>>>,
}

/// `history[].metadata`: where the sync stands.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct HistoryProgress {
    #[serde(default, deserialize_with = "lenient::int")]
    pub phase: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub chunk_order: Option<i64>,
    /// Overall progress in percent; 100 when the history is complete.
    #[serde(default, deserialize_with = "lenient::int")]
    pub progress: Option<i64>,
}

/// `history[].threads[]`: one customer's chat; `id` is the customer's phone.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryThread<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    /// Messages in the shape of `value.messages[]`; `from` is the business's number for the
    /// business's own messages (which then carry `to`, the customer).
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub messages: Vec<Item<'a, Message<'a>>>,
}

/// `value.state_sync[]`: one change of the business's app contacts.
#[derive(Debug, Default, Deserialize)]
pub struct StateSync<'a> {
    /// `contact` (the only type documented).
    #[serde(default, borrow, rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub contact: Option<SyncedContact<'a>>,
    /// `add` (added or edited) or `remove`.
    #[serde(default, borrow, deserialize_with = "lenient::string")]
    pub action: Option<Cow<'a, str>>,
    #[serde(default)]
    pub metadata: Option<StateSyncMeta>,
}

/// `state_sync[].contact`: names are absent on `remove`.
#[derive(Debug, Default, Deserialize)]
pub struct SyncedContact<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::string")]
    pub full_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::string")]
    pub first_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub phone_number: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct StateSyncMeta {
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
}
