//! One webhook delivery → every canonical event in it.
//!
//! Meta batches: one POST can hold several entries, each with several changes (WhatsApp) or
//! messaging items (Instagram), each change with several messages, echoes and statuses.
//! Everything is returned, in delivery order (entries in order; within a WhatsApp change:
//! messages, then echoes, then statuses, then account errors). Duplicates are kept:
//! deduplication is the worker's job, by `provider_event_id`.
//!
//! The body is read straight into borrowed typed structs, once for nearly every delivery;
//! when an item does not fit, a lenient pass reads each item on its own (see `item`), so one
//! odd item is counted and skipped (or kept as `Unsupported`), never an error for the batch.
//! Items that are not ours to relay are counted in [`Ignored`] under these reasons, for the
//! caller's log:
//!
//! - `whatsapp:field:<field>`: a webhook field other than `messages`, `smb_message_echoes`,
//!   `history`, `smb_app_state_sync`, `standby`, `messaging_handovers` and the account
//!   fields (`user_preferences`, …);
//! - `whatsapp:malformed_<account field>`: an account or number event without a valid WABA
//!   id or `event` (the events themselves are in [`WebhookBatch::account_updates`]);
//! - `whatsapp:malformed_history`, `whatsapp:malformed_history_message`,
//!   `whatsapp:history_message:<type>` (reactions, edits, revokes of the past),
//!   `whatsapp:malformed_state_sync`, `whatsapp:state_sync:<type>`,
//!   `whatsapp:state_sync_action:<action>`: Coexistence items not turned into events;
//! - `whatsapp:standby_status`: a status of a message of the holder of a conversation
//!   (Conversation Routing `standby`, decision 0065); `whatsapp:malformed_standby`,
//!   `whatsapp:malformed_handover`, `whatsapp:handover:<type>` (a notification type we do
//!   not know), `whatsapp:handover_without_customer` (Meta may omit `sender`);
//! - `whatsapp:missing_phone_number_id`: a change without a valid `metadata.phone_number_id`
//!   (counted once per item it held, at least once): without it nothing can be routed;
//! - `whatsapp:group_message`: a message in a group chat (Open Lines are one-to-one);
//! - `whatsapp:status:<status>`: a status other than sent/delivered/read/played/failed;
//! - `whatsapp:unidentified_customer` / `instagram:unidentified_customer`: neither a valid
//!   BSUID nor phone (WhatsApp), or no valid IGSID (Instagram);
//! - `whatsapp:malformed_<entry|change|message|echo|status>`, `instagram:malformed_<…>`:
//!   unreadable, or without a valid message id;
//! - `instagram:field:<field>`: `changes[]` items other than comments (mentions…);
//! - `instagram:malformed_comment`: a comment without a valid id or commenter;
//!   `instagram:own_comment`: the business's own comment;
//! - `instagram:missing_account`: no valid account id in `entry[].id` nor on the business side;
//! - `instagram:read_by_business`: the business read a customer's message;
//! - `instagram:<key>`: a messaging item of another kind (`referral` alone, `optin`, …);
//! - `object:<name>`: in a top-level array, an element of an unsupported `object`.
//!
//! Messages kept as `Unsupported` because they did not parse are not ignored, but counted in
//! [`WebhookBatch::malformed`] as `whatsapp:message:<type>`, `instagram:messaging:malformed`,
//! for a warning in the caller's log.
//!
//! The whole delivery is refused (an error, nothing relayed) when it is not JSON, not a
//! webhook, gives a known field twice (`{"object": "a", "object": "b"}` at any depth we
//! read: answered 400 rather than read by its last key), or holds more than
//! [`MAX_EVENTS`] events or [`MAX_ITEMS`] array elements (413).
//!
//! The common part (the batch, the ignored counts, the errors and the top-level dispatch)
//! is here; [`whatsapp`] reads WhatsApp Cloud API entries and [`instagram`] Instagram
//! Messaging entries.

mod coexistence;
mod comments;
mod instagram;
mod routing;
mod whatsapp;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::event::{AccountRef, EventKind, InboundEvent, MetaError, EVENT_SCHEMA_VERSION};
use super::ids::MessageId;
use super::instagram as ig;
use super::item::{self, Abort, Item};
pub use super::item::{MAX_EVENTS, MAX_ITEMS};
use super::lenient::{self, event_text, label};
use super::whatsapp as wa;
use crate::ids::{BodyText, Text};
use instagram::instagram_entry;
use whatsapp::whatsapp_entry;

/// `object` of WhatsApp Cloud API webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// `object` of Instagram Messaging webhooks.
pub const INSTAGRAM_OBJECT: &str = "instagram";

/// Every event of one delivery, and what was left out.
///
/// `S` is the events' text: owned (`String`, from [`split_webhook`]) or borrowed from the
/// body (`Cow<str>`, from [`split_webhook_borrowed`]); both serialise to the same bytes.
#[derive(Clone, Default, PartialEq)]
pub struct WebhookBatch<S: Text = String> {
    pub events: Vec<InboundEvent<S>>,
    pub ignored: Ignored,
    /// Events kept as `Unsupported` because their item did not parse (they are in
    /// `events`), by product, item and type: for a warning, never silently relayed.
    pub malformed: Ignored,
    /// WhatsApp account and number events, on their WABA: the intake routes each to the
    /// WABA's connected numbers (see `super::account`).
    pub account_updates: Vec<super::account::WabaUpdate>,
}

// By hand: the account updates are shown only when there are some, so the pinned
// snapshots of deliveries without them read as before.
impl<S: Text> fmt::Debug for WebhookBatch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("WebhookBatch");
        d.field("events", &self.events)
            .field("ignored", &self.ignored)
            .field("malformed", &self.malformed);
        if !self.account_updates.is_empty() {
            d.field("account_updates", &self.account_updates);
        }
        d.finish()
    }
}

/// 2009-01-01: no WhatsApp nor Instagram event is older.
const EARLIEST_EVENT_TIME: i64 = 1_230_768_000;
/// How far ahead of our clock an event time may be (clock skew, time zones mistaken).
const FUTURE_TOLERANCE_SECS: i64 = 86_400;

impl<S: Text> WebhookBatch<S> {
    /// Replaces event times that cannot be true (negative, before 2009, or more than a day
    /// after `now`) by `now`, the receipt time, logging the event kind (no ids, no content).
    /// Returns how many were replaced.
    pub fn clamp_timestamps(&mut self, now: i64) -> usize {
        let mut n = 0;
        for ev in &mut self.events {
            if let Some(t) = ev.timestamp {
                if !(EARLIEST_EVENT_TIME..=now.saturating_add(FUTURE_TOLERANCE_SECS)).contains(&t) {
                    tracing::warn!(
                        event = ev.kind.name(),
                        "webhook event time out of range; receipt time used"
                    );
                    ev.timestamp = Some(now);
                    n += 1;
                }
            }
        }
        n
    }
}

/// Counts of items not turned into events, by reason (see the module documentation). The
/// reasons are fixed words and Meta field names, never ids or message content: safe to log.
/// A fixed reason is kept as the `&'static str` it is written as, so counting it allocates
/// nothing; only reasons naming a field or type are built as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Ignored(BTreeMap<Cow<'static, str>, u32>);

impl Ignored {
    fn add(&mut self, reason: impl Into<Cow<'static, str>>) {
        self.add_n(reason, 1);
    }

    fn add_n(&mut self, reason: impl Into<Cow<'static, str>>, n: u32) {
        *self.0.entry(reason.into()).or_default() += n;
    }

    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, reason: &str) -> u32 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), *v))
    }
}

/// Why a body could not be split. Messages never quote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookParseError {
    /// Not JSON at all: answer 400 (the signature was valid, so log it: Meta sent junk).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not shaped like a Meta webhook (no `object`, no `entry` array): answer 400.
    #[error("not a Meta webhook: {0}")]
    NotAWebhook(&'static str),
    /// A known field given twice (at any depth we read): answer 400 rather than pick one.
    #[error("duplicate JSON key: {0}")]
    DuplicateKey(String),
    /// More than [`MAX_EVENTS`] events or [`MAX_ITEMS`] array elements: answer 413.
    #[error("{0}")]
    TooManyItems(&'static str),
    /// A well-formed webhook for a product we do not relay (`page`, `user`, …): answer 200 so
    /// Meta does not retry, and ignore it. The name is sanitised.
    #[error("unsupported webhook object {0:?}")]
    UnsupportedObject(String),
}

impl WebhookParseError {
    /// True when the caller should acknowledge (200) and drop, rather than reject (400).
    pub fn is_ignorable(&self) -> bool {
        matches!(self, WebhookParseError::UnsupportedObject(_))
    }
}

/// Parses a (signature-verified) webhook body and returns every event of every entry,
/// change, message, status and echo in it. A body may be one webhook object or, tolerated,
/// an array of them.
pub fn split_webhook(raw_body: &[u8]) -> Result<WebhookBatch, WebhookParseError> {
    split(raw_body)
}

/// As [`split_webhook`], with every string of the events borrowed from `raw_body` (copied
/// only where the JSON string had an escape, or the text is built): what the intake seals
/// into queue jobs, which serialise to the same bytes as the owned events (decision 0103).
pub fn split_webhook_borrowed(
    raw_body: &[u8],
) -> Result<WebhookBatch<Cow<'_, str>>, WebhookParseError> {
    split(raw_body)
}

fn split<'a, S: BodyText<'a>>(raw_body: &'a [u8]) -> Result<WebhookBatch<S>, WebhookParseError> {
    let (body, event_items) = match item::parse::<Body>(raw_body, false) {
        Ok(read) => read,
        Err((e, abort)) => {
            refused(&e, abort)?;
            // Something did not fit its type: read again, item by item.
            item::parse::<Body>(raw_body, true).or_else(|(e, abort)| {
                refused(&e, abort)?;
                Err(WebhookParseError::NotAWebhook("body is not a JSON object"))
            })?
        }
    };
    // Sized for every event item read: most give one event each, and a vector grown from
    // empty would reserve four events at once (about 2 KB, past glibc's thread cache).
    let mut batch = WebhookBatch {
        events: Vec::with_capacity(event_items),
        ..WebhookBatch::default()
    };
    match body {
        Body::One(root) => split_object(Some(&root), &mut batch)?,
        Body::Many(items) => {
            if items.is_empty() {
                return Err(WebhookParseError::NotAWebhook("empty array"));
            }
            let mut supported = false;
            let mut first_unsupported = None;
            for item in &items {
                match split_object(item.ok(), &mut batch) {
                    Ok(()) => supported = true,
                    Err(WebhookParseError::UnsupportedObject(name)) => {
                        batch.ignored.add(format!("object:{name}"));
                        first_unsupported.get_or_insert(name);
                    }
                    Err(e) => return Err(e),
                }
            }
            if !supported {
                return Err(WebhookParseError::UnsupportedObject(
                    first_unsupported.unwrap_or_default(),
                ));
            }
        }
        Body::Other => {
            return Err(WebhookParseError::NotAWebhook("body is not a JSON object"));
        }
    }
    Ok(batch)
}

/// The error that refuses the whole delivery, if `e` is one (else the lenient pass runs).
fn refused(e: &serde_json::Error, abort: Option<Abort>) -> Result<(), WebhookParseError> {
    match abort {
        Some(Abort::DuplicateKey) => Err(WebhookParseError::DuplicateKey(format!(
            "error at line {} column {}",
            e.line(),
            e.column()
        ))),
        Some(Abort::TooManyEvents) => Err(WebhookParseError::TooManyItems(
            "more than 1000 events in one delivery",
        )),
        Some(Abort::TooManyItems) => Err(WebhookParseError::TooManyItems(
            "more than 20000 array elements in one delivery",
        )),
        None if e.is_syntax() || e.is_eof() => Err(WebhookParseError::MalformedJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))),
        None => Ok(()),
    }
}

/// The body: one webhook object, an array of them (tolerated), or other JSON.
enum Body<'a> {
    One(Root<'a>),
    Many(Vec<Item<'a, Root<'a>>>),
    Other,
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a webhook")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body<'de>, A::Error> {
                Root::from_map(map).map(Body::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element()? {
                    item::spend(false).map_err(de::Error::custom)?;
                    item::push(&mut items, v);
                }
                Ok(Body::Many(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Body<'de>, E> {
                Ok(Body::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Body<'de>, E> {
                Ok(Body::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Body<'de>, E> {
                Ok(Body::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Body<'de>, E> {
                Ok(Body::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Body<'de>, E> {
                Ok(Body::Other)
            }
            fn visit_unit<E>(self) -> Result<Body<'de>, E> {
                Ok(Body::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A webhook object: `object` names the product; `entry` is read whatever the order of the
/// two keys, as entries that serve either product.
struct Root<'a> {
    object: Option<Cow<'a, str>>,
    /// None when absent or not an array.
    entry: Option<Vec<Item<'a, Entry<'a>>>>,
}

impl<'de> Root<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut root = Root {
            object: None,
            entry: None,
        };
        let (mut seen_object, mut seen_entry) = (false, false);
        // Borrowed: serde reads a bare `Cow<str>` key as an owned `String`.
        while let Some(ig::Key(key)) = map.next_key::<ig::Key<'de>>()? {
            match &*key {
                "object" => {
                    if std::mem::replace(&mut seen_object, true) {
                        return Err(de::Error::duplicate_field("object"));
                    }
                    root.object = map.next_value::<Str>()?.0;
                }
                "entry" => {
                    if std::mem::replace(&mut seen_entry, true) {
                        return Err(de::Error::duplicate_field("entry"));
                    }
                    root.entry = map.next_value::<Entries>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(root)
    }
}

impl<'de> Deserialize<'de> for Root<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Root<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a webhook object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Root<'de>, A::Error> {
                Root::from_map(map)
            }
        }
        d.deserialize_map(V)
    }
}

/// A string value, or None for any other JSON.
struct Str<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::string(d).map(Str)
    }
}

/// `entry`: Some when it is an array.
struct Entries<'a>(Option<Vec<Item<'a, Entry<'a>>>>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element()? {
                    item::spend(false).map_err(de::Error::custom)?;
                    item::push(&mut items, v);
                }
                Ok(Entries(Some(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Entries(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Entries<'de>, E> {
                Ok(Entries(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Entries<'de>, E> {
                Ok(Entries(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Entries<'de>, E> {
                Ok(Entries(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Entries<'de>, E> {
                Ok(Entries(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Entries<'de>, E> {
                Ok(Entries(None))
            }
            fn visit_unit<E>(self) -> Result<Entries<'de>, E> {
                Ok(Entries(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `entry[]`, for either product: a WhatsApp Business Account (`id`, `changes`) or an
/// Instagram professional account (`id`, `time` in milliseconds, `messaging`, `standby`,
/// and `changes` for comments and mentions).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Entry<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    time: Option<i64>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    changes: Vec<Item<'a, wa::Change<'a>>>,
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    messaging: Vec<Item<'a, ig::Messaging<'a>>>,
    /// Events of conversations another app controls (Handover Protocol: Meta's agent or
    /// another app answers): the same items as `messaging`, relayed like them.
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    standby: Vec<Item<'a, ig::Messaging<'a>>>,
}

fn split_object<'a, S: BodyText<'a>>(
    root: Option<&Root<'a>>,
    batch: &mut WebhookBatch<S>,
) -> Result<(), WebhookParseError> {
    let root = root.ok_or(WebhookParseError::NotAWebhook("body is not a JSON object"))?;
    let object = root
        .object
        .as_deref()
        .ok_or(WebhookParseError::NotAWebhook("missing \"object\" string"))?;
    if object != WHATSAPP_OBJECT && object != INSTAGRAM_OBJECT {
        return Err(WebhookParseError::UnsupportedObject(label(object)));
    }
    let entries = root
        .entry
        .as_ref()
        .ok_or(WebhookParseError::NotAWebhook("missing \"entry\" array"))?;
    for entry in entries {
        if object == WHATSAPP_OBJECT {
            whatsapp_entry(entry, batch);
        } else {
            instagram_entry(entry, batch);
        }
    }
    Ok(())
}

fn event<S: Text>(
    account: &AccountRef<S>,
    provider_event_id: S,
    timestamp: Option<i64>,
    kind: EventKind<S>,
) -> InboundEvent<S> {
    InboundEvent {
        schema: EVENT_SCHEMA_VERSION,
        account: account.clone(),
        provider_event_id,
        timestamp,
        kind,
    }
}

fn message_id<'a, S: BodyText<'a>>(s: Option<&Cow<'a, str>>) -> Option<MessageId<S>> {
    s.and_then(MessageId::from_body)
}

fn non_empty<'a, S: BodyText<'a>>(s: &Option<Cow<'a, str>>) -> Option<S> {
    s.as_ref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| S::from_cow(s.clone()))
}

fn meta_errors<'a, S: BodyText<'a>>(errors: &[Item<'a, wa::ErrorObject<'a>>]) -> Vec<MetaError<S>> {
    errors
        .iter()
        .filter_map(Item::ok)
        .map(|e| MetaError {
            code: e.code,
            title: event_text(&e.title),
            message: event_text(&e.message),
            details: e.error_data.as_ref().and_then(|d| event_text(&d.details)),
            href: event_text(&e.href),
        })
        .collect()
}
