//! One webhook delivery → every canonical event in it.
//!
//! Meta batches: one POST can hold several entries, each with several changes (WhatsApp) or
//! messaging items (Instagram), each change with several messages, echoes and statuses.
//! Everything is returned, in delivery order (entries in order; within a WhatsApp change:
//! messages, then echoes, then statuses, then account errors). Duplicates are kept:
//! deduplication is the worker's job, by `provider_event_id`.
//!
//! The JSON is parsed once; each item is then read on its own, so one odd item is counted
//! and skipped (or kept as `Unsupported`), never an error for the batch. Items that are not
//! ours to relay are counted in [`Ignored`] under these reasons, for the caller's log:
//!
//! - `whatsapp:field:<field>`: a webhook field other than `messages` / `smb_message_echoes`
//!   (`history`, `smb_app_state_sync`, `user_preferences`, `account_update`, …);
//! - `whatsapp:missing_phone_number_id`: a change without a valid `metadata.phone_number_id`
//!   (counted once per item it held, at least once): without it nothing can be routed;
//! - `whatsapp:group_message`: a message in a group chat (Open Lines are one-to-one);
//! - `whatsapp:status:<status>`: a status other than sent/delivered/read/played/failed;
//! - `whatsapp:unidentified_customer` / `instagram:unidentified_customer`: neither a valid
//!   BSUID nor phone (WhatsApp), or no valid IGSID (Instagram);
//! - `whatsapp:malformed_<entry|change|message|echo|status>`, `instagram:malformed_<…>`:
//!   unreadable, or without a valid message id;
//! - `instagram:standby`: events of conversations another app controls (handover);
//! - `instagram:field:<field>`: `changes[]` items (comments, mentions…);
//! - `instagram:missing_account`: no valid account id in `entry[].id` nor on the business side;
//! - `instagram:read_by_business`: the business read a customer's message;
//! - `instagram:<key>`: a messaging item of another kind (`referral` alone, `optin`, …);
//! - `object:<name>`: in a top-level array, an element of an unsupported `object`.
//!
//! The common part (the batch, the ignored counts, the errors and the top-level dispatch)
//! is here; [`whatsapp`] reads WhatsApp Cloud API entries and [`instagram`] Instagram
//! Messaging entries.

mod instagram;
mod whatsapp;

use std::collections::BTreeMap;

use serde_json::Value;

use super::event::{AccountRef, EventKind, InboundEvent, MetaError, EVENT_SCHEMA_VERSION};
use super::ids::MessageId;
use super::lenient::label;
use super::whatsapp as wa;
use instagram::instagram_entry;
use whatsapp::whatsapp_entry;

/// `object` of WhatsApp Cloud API webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// `object` of Instagram Messaging webhooks.
pub const INSTAGRAM_OBJECT: &str = "instagram";

/// Every event of one delivery, and what was left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookBatch {
    pub events: Vec<InboundEvent>,
    pub ignored: Ignored,
}

/// Counts of items not turned into events, by reason (see the module documentation). The
/// reasons are fixed words and Meta field names, never ids or message content: safe to log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Ignored(BTreeMap<String, u32>);

impl Ignored {
    fn add(&mut self, reason: impl Into<String>) {
        self.add_n(reason, 1);
    }

    fn add_n(&mut self, reason: impl Into<String>, n: u32) {
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
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
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

/// Parses a (signature-verified) webhook body once and returns every event of every entry,
/// change, message, status and echo in it. A body may be one webhook object or, tolerated,
/// an array of them.
pub fn split_webhook(raw_body: &[u8]) -> Result<WebhookBatch, WebhookParseError> {
    let root: Value = serde_json::from_slice(raw_body).map_err(|e| {
        WebhookParseError::MalformedJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let mut batch = WebhookBatch::default();
    match &root {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(WebhookParseError::NotAWebhook("empty array"));
            }
            let mut supported = false;
            let mut first_unsupported = None;
            for item in items {
                match split_object(item, &mut batch) {
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
        other => split_object(other, &mut batch)?,
    }
    Ok(batch)
}

fn split_object(v: &Value, batch: &mut WebhookBatch) -> Result<(), WebhookParseError> {
    let obj = v
        .as_object()
        .ok_or(WebhookParseError::NotAWebhook("body is not a JSON object"))?;
    let object = obj
        .get("object")
        .and_then(Value::as_str)
        .ok_or(WebhookParseError::NotAWebhook("missing \"object\" string"))?;
    if object != WHATSAPP_OBJECT && object != INSTAGRAM_OBJECT {
        return Err(WebhookParseError::UnsupportedObject(label(object)));
    }
    let entries = obj
        .get("entry")
        .and_then(Value::as_array)
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

fn event(
    account: &AccountRef,
    provider_event_id: String,
    timestamp: Option<i64>,
    kind: EventKind,
) -> InboundEvent {
    InboundEvent {
        schema: EVENT_SCHEMA_VERSION,
        account: account.clone(),
        provider_event_id,
        timestamp,
        kind,
    }
}

fn message_id(s: Option<&str>) -> Option<MessageId> {
    s.and_then(|s| MessageId::parse(s).ok())
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

fn meta_errors(errors: &[wa::ErrorObject]) -> Vec<MetaError> {
    errors
        .iter()
        .map(|e| MetaError {
            code: e.code,
            title: e.title.clone(),
            message: e.message.clone(),
            details: e.error_data.as_ref().and_then(|d| d.details.clone()),
            href: e.href.clone(),
        })
        .collect()
}
