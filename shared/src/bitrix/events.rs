//! Bitrix24's event deliveries, parsed.
//!
//! apidocs "Event Handler" (api-reference/events/index): Bitrix24 POSTs each event to the
//! handler bound with `event.bind`, `Content-Type: application/x-www-form-urlencoded`, with the
//! keys `event` (name), `event_handler_id`, `data` (depends on the event), `ts` (Unix seconds)
//! and `auth` (the portal and, for most events, an access token). Nested values use PHP's
//! bracket syntax: `data[MESSAGES][0][im][chat_id]=1807`. The application installation
//! callback (local application "uses only API", apidocs "Installation Callback") has the
//! same shape with `event=ONAPPINSTALL`.
//!
//! `auth` (apidocs, per event): `access_token`, `expires` (Unix seconds), `expires_in`,
//! `scope`, `domain` (the portal), `server_endpoint` (the OAuth server), `status` (the
//! application's status), `client_endpoint` (the portal's REST root), `member_id` (the
//! portal, stable across renames), `user_id`, `refresh_token` (install events), and
//! `application_token`, the secret Bitrix24 gives the application per portal so that it can
//! tell Bitrix24's calls from forgeries (apidocs "Security in Handlers"). `OnAppUninstall`
//! carries no tokens at all, only `application_token`.
//!
//! Events handled here (apidocs api-reference/imopenlines/imconnector/events/*,
//! api-reference/common/events/*):
//! - `ONIMCONNECTORMESSAGEADD`: `data[CONNECTOR]`, `data[LINE]`, `data[MESSAGES][n]` of
//!   `{im {chat_id, message_id}, message {user_id, text}, chat {id}}`. Files are not in the
//!   documented element; connectors in the wild read `message[files][n]` with `name`,
//!   `link`, `downloadLink`, `type`, `mime`, `size` (undocumented: read leniently).
//! - `ONIMCONNECTORMESSAGEUPDATE`: the same, with `message {id: [external ids], text}`.
//! - `ONIMCONNECTORMESSAGEDELETE`: the same, with `message {id: external id}`.
//!   Older pages name the list `DATA` instead of `MESSAGES`; Bitrix24's own REST layer renames
//!   `DATA` to `MESSAGES` before sending, and both are accepted here.
//! - `ONIMCONNECTORSTATUSDELETE`: `data[connector]`, `data[line]` (lower case keys).
//! - `ONIMCONNECTORLINEDELETE`: `data` is the deleted line's id itself (`data=107`).
//! - `ONAPPINSTALL`: `data[VERSION]`, `data[ACTIVE]`, `data[INSTALLED]`, `data[LANGUAGE_ID]`.
//! - `ONAPPUNINSTALL`: `data[LANGUAGE_ID]`, `data[CLEAN]` (1 when the admin chose to delete
//!   the application's data).
//!
//! The parser is strict about size (body, number of fields, nesting, key length) and lenient
//! about content (numbers as strings, unknown keys kept). A JSON body is accepted too.

use std::fmt;

use serde_json::{Map, Value};

use crate::secret::Secret;

use super::imconnector::ImRef;

/// Largest event body read. Bitrix24 posts operator messages, not files; 256 KiB leaves
/// room for long texts and many file entries.
pub const MAX_EVENT_BODY: usize = 256 * 1024;
/// Most `key=value` pairs read from one body.
pub const MAX_FIELDS: usize = 4096;
/// Deepest bracket nesting read (`data[MESSAGES][0][message][files][0][name]` is 6).
pub const MAX_DEPTH: usize = 12;
/// Longest key read, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// Highest list index accepted (`[n]` beyond it is refused rather than allocated).
pub const MAX_INDEX: usize = 1000;

/// A body that could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("body exceeds {MAX_EVENT_BODY} bytes")]
    TooLarge,
    #[error("body has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("{0}")]
    Malformed(String),
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte; a `%`
/// not followed by two hex digits is kept. Invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `data[MESSAGES][0][im]` into `["data", "MESSAGES", "0", "im"]`. PHP's rules: the
/// base name ends at the first `[`; each `[...]` is one segment (`[]` appends); anything
/// after an unclosed `[` is part of the last segment as written.
fn key_path(key: &str) -> Result<Vec<String>, FormError> {
    if key.len() > MAX_KEY_LEN {
        return Err(FormError::Malformed(format!(
            "a key is longer than {MAX_KEY_LEN} bytes"
        )));
    }
    let (base, mut rest) = match key.find('[') {
        Some(0) => return Err(FormError::Malformed("a key starts with '['".into())),
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let mut path = vec![base.to_owned()];
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find(']') {
            Some(end) => {
                path.push(stripped[..end].to_owned());
                rest = &stripped[end + 1..];
            }
            None => {
                // PHP keeps `a[b` as the literal key `a_b`-ish; we keep the text.
                let last = path.last_mut().expect("base");
                last.push('[');
                last.push_str(stripped);
                rest = "";
            }
        }
        if path.len() > MAX_DEPTH {
            return Err(FormError::Malformed(format!(
                "a key nests deeper than {MAX_DEPTH} levels"
            )));
        }
    }
    Ok(path)
}

fn insert(
    target: &mut Map<String, Value>,
    path: &[String],
    value: String,
) -> Result<(), FormError> {
    let (head, rest) = path.split_first().expect("non-empty path");
    let key = if head.is_empty() {
        // `a[]=x`: the next index.
        let next = target
            .keys()
            .filter_map(|k| k.parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        next.to_string()
    } else {
        head.clone()
    };
    if let Ok(n) = key.parse::<usize>() {
        if n > MAX_INDEX {
            return Err(FormError::Malformed(format!(
                "a list index is larger than {MAX_INDEX}"
            )));
        }
    }
    if rest.is_empty() {
        target.insert(key, Value::String(value));
        return Ok(());
    }
    let child = target
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        // `a=1&a[b]=2`: the later, nested form wins (as in PHP).
        *child = Value::Object(Map::new());
    }
    match child {
        Value::Object(map) => insert(map, rest, value),
        _ => unreachable!("made an object above"),
    }
}

/// Objects whose keys are exactly `0..n` become arrays, recursively.
fn lists(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let n = map.len();
            let is_list = n > 0 && (0..n).all(|i| map.contains_key(&i.to_string()));
            if is_list {
                let mut map = map;
                Value::Array(
                    (0..n)
                        .map(|i| lists(map.remove(&i.to_string()).unwrap_or(Value::Null)))
                        .collect(),
                )
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, lists(v))).collect())
            }
        }
        other => other,
    }
}

/// Parses a form-encoded body with PHP-style nested keys into a JSON object tree (all leaf
/// values are strings; `0..n` keyed objects become arrays). A body that starts with `{` is
/// read as JSON instead.
pub fn parse_form(body: &[u8]) -> Result<Value, FormError> {
    if body.len() > MAX_EVENT_BODY {
        return Err(FormError::TooLarge);
    }
    let text =
        std::str::from_utf8(body).map_err(|_| FormError::Malformed("body is not UTF-8".into()))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(FormError::Malformed("body is not a JSON object".into())),
        };
    }
    let mut root = Map::new();
    let mut fields = 0usize;
    for pair in text.trim_end_matches(['\r', '\n']).split('&') {
        if pair.is_empty() {
            continue;
        }
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k);
        if key.is_empty() {
            continue;
        }
        let path = key_path(&key)?;
        insert(&mut root, &path, percent_decode(v))?;
    }
    Ok(lists(Value::Object(root)))
}

// ---------------------------------------------------------------------------------------
// Typed events

/// A string or number value as text.
pub fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-negative integer given as a number or a string.
pub fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn i64_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The value at the first of `keys` present (for `MESSAGES`/`DATA`, `connector`/`CONNECTOR`).
fn any_of<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(*k))
}

/// Items of a list given as an array, or as one object (Bitrix24 sends one element as an
/// object in some places: "provide for a single value").
fn items(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) if !o.is_empty() => {
            // `{"5": {...}}` after a gap in indices: keep the values in key order.
            if o.keys().all(|k| k.parse::<usize>().is_ok()) {
                let mut pairs: Vec<(usize, &Value)> = o
                    .iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                    .collect();
                pairs.sort_by_key(|(k, _)| *k);
                pairs.into_iter().map(|(_, v)| v).collect()
            } else {
                vec![v.expect("matched Some")]
            }
        }
        _ => Vec::new(),
    }
}

/// `auth[...]` of an event. `Debug` shows no token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EventAuth {
    pub domain: Option<String>,
    pub member_id: Option<String>,
    pub application_token: Option<Secret>,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    pub status: Option<String>,
    pub client_endpoint: Option<String>,
    pub server_endpoint: Option<String>,
    pub user_id: Option<u64>,
}

impl fmt::Debug for EventAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventAuth")
            .field("domain", &self.domain)
            .field("member_id", &self.member_id)
            .field("application_token", &self.application_token.is_some())
            .field("access_token", &self.access_token.is_some())
            .field("refresh_token", &self.refresh_token.is_some())
            .field("status", &self.status)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

fn secret_of(v: Option<&Value>, name: &str) -> Option<Secret> {
    text_of(v).and_then(|s| Secret::parse(name, &s).ok())
}

impl EventAuth {
    /// `auth[...]` read from a parsed form (events and the message provider's calls).
    pub fn from_value(v: Option<&Value>) -> Self {
        let Some(v) = v else {
            return EventAuth::default();
        };
        let get = |k: &str| v.get(k);
        EventAuth {
            domain: text_of(get("domain")).map(|d| d.to_ascii_lowercase()),
            member_id: text_of(get("member_id")),
            application_token: secret_of(get("application_token"), "application_token"),
            access_token: secret_of(get("access_token"), "access_token"),
            refresh_token: secret_of(get("refresh_token"), "refresh_token"),
            expires_in: u64_of(get("expires_in")),
            scope: text_of(get("scope")),
            status: text_of(get("status")),
            client_endpoint: text_of(get("client_endpoint")),
            server_endpoint: text_of(get("server_endpoint")),
            user_id: u64_of(get("user_id")),
        }
    }
}

/// A file attached to an operator message (undocumented fields, read leniently).
#[derive(Clone, PartialEq, Eq)]
pub struct EventFile {
    /// Where to download it: `downloadLink`, else `link`, else `url`.
    pub url: String,
    pub name: Option<String>,
    /// `mime` when given (e.g. `image/jpeg`).
    pub mime_type: Option<String>,
    /// `type` (e.g. `image`, `file`).
    pub kind: Option<String>,
    pub size: Option<u64>,
}

impl fmt::Debug for EventFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFile")
            .field("mime_type", &self.mime_type)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl EventFile {
    fn from_value(v: &Value) -> Option<Self> {
        let url = text_of(v.get("downloadLink"))
            .or_else(|| text_of(v.get("link")))
            .or_else(|| text_of(v.get("url")))?;
        Some(EventFile {
            url,
            name: text_of(v.get("name")),
            mime_type: text_of(v.get("mime")).or_else(|| text_of(v.get("mime_type"))),
            kind: text_of(v.get("type")),
            size: u64_of(v.get("size")),
        })
    }
}

/// One element of `MESSAGES`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorMessage {
    /// Bitrix24's ids (`im`); None when either is missing or not a number.
    pub im: Option<ImRef>,
    /// Our chat id (`chat.id`), as we gave it in `imconnector.send.messages`.
    pub chat_id: Option<String>,
    /// The Bitrix24 user who wrote it (`message.user_id`).
    pub user_id: Option<u64>,
    /// The text as written (BB-code).
    pub text: Option<String>,
    pub files: Vec<EventFile>,
    /// External message ids (`message.id`; one value or a list).
    pub message_ids: Vec<String>,
    /// `message.date` when given (Unix seconds).
    pub date: Option<i64>,
}

/// Message text is personal data: `Debug` shows ids and sizes only.
impl fmt::Debug for ConnectorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorMessage")
            .field("im", &self.im)
            .field("chat_id", &self.chat_id)
            .field("user_id", &self.user_id)
            .field("text_chars", &self.text.as_ref().map(|t| t.chars().count()))
            .field("files", &self.files.len())
            .field("message_ids", &self.message_ids)
            .finish_non_exhaustive()
    }
}

impl ConnectorMessage {
    fn from_value(v: &Value) -> Self {
        let im = v.get("im");
        let message = v.get("message");
        let im_ref = match (
            u64_of(im.and_then(|i| i.get("chat_id"))),
            u64_of(im.and_then(|i| i.get("message_id"))),
        ) {
            (Some(chat_id), Some(message_id)) if message_id > 0 => Some(ImRef {
                chat_id,
                message_id,
            }),
            _ => None,
        };
        let message_ids = match message.and_then(|m| m.get("id")) {
            Some(Value::Array(a)) => a.iter().filter_map(|x| text_of(Some(x))).collect(),
            Some(Value::Object(o)) => o.values().filter_map(|x| text_of(Some(x))).collect(),
            other => text_of(other).into_iter().collect(),
        };
        let text = message
            .and_then(|m| m.get("text"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned);
        ConnectorMessage {
            im: im_ref,
            chat_id: text_of(v.get("chat").and_then(|c| c.get("id"))),
            user_id: u64_of(message.and_then(|m| m.get("user_id"))),
            text,
            files: items(message.and_then(|m| m.get("files")))
                .into_iter()
                .filter_map(EventFile::from_value)
                .collect(),
            message_ids,
            date: i64_of(message.and_then(|m| m.get("date"))),
        }
    }
}

/// `data` of the three message events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorMessages {
    pub connector: Option<String>,
    pub line: Option<u64>,
    pub messages: Vec<ConnectorMessage>,
}

impl ConnectorMessages {
    fn from_value(data: &Value) -> Self {
        ConnectorMessages {
            connector: text_of(any_of(data, &["CONNECTOR", "connector"])),
            line: u64_of(any_of(data, &["LINE", "line"])),
            messages: items(any_of(data, &["MESSAGES", "DATA", "messages"]))
                .into_iter()
                .map(ConnectorMessage::from_value)
                .collect(),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    AppInstall {
        version: Option<String>,
        language: Option<String>,
    },
    AppUninstall {
        /// The admin chose to delete the application's data (`CLEAN=1`).
        clean: bool,
    },
    MessageAdd(ConnectorMessages),
    MessageUpdate(ConnectorMessages),
    MessageDelete(ConnectorMessages),
    StatusDelete {
        connector: Option<String>,
        line: Option<u64>,
    },
    LineDelete {
        line: Option<u64>,
    },
    /// An event we do not act on (its upper-case name).
    Other(String),
}

/// One delivery from Bitrix24.
#[derive(Clone, Debug)]
pub struct BitrixEvent {
    /// The event name, upper case (`ONIMCONNECTORMESSAGEADD`).
    pub name: String,
    pub kind: EventKind,
    pub auth: EventAuth,
    /// `ts`, Unix seconds.
    pub ts: Option<i64>,
    pub handler_id: Option<u64>,
}

/// A body that is not a Bitrix24 event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("no event name")]
    NoEventName,
}

impl BitrixEvent {
    /// Parses a delivery body.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let tree = parse_form(body)?;
        Self::from_tree(&tree)
    }

    /// Reads an event out of a parsed form.
    pub fn from_tree(tree: &Value) -> Result<Self, EventError> {
        let name = text_of(any_of(tree, &["event", "EVENT"]))
            .map(|n| n.to_ascii_uppercase())
            .ok_or(EventError::NoEventName)?;
        let data = any_of(tree, &["data", "DATA"])
            .cloned()
            .unwrap_or(Value::Null);
        let kind = match name.as_str() {
            "ONAPPINSTALL" => EventKind::AppInstall {
                version: text_of(data.get("VERSION")),
                language: text_of(data.get("LANGUAGE_ID")),
            },
            "ONAPPUNINSTALL" => EventKind::AppUninstall {
                clean: matches!(
                    text_of(data.get("CLEAN")).as_deref(),
                    Some("1") | Some("Y") | Some("true")
                ),
            },
            "ONIMCONNECTORMESSAGEADD" => {
                EventKind::MessageAdd(ConnectorMessages::from_value(&data))
            }
            "ONIMCONNECTORMESSAGEUPDATE" => {
                EventKind::MessageUpdate(ConnectorMessages::from_value(&data))
            }
            "ONIMCONNECTORMESSAGEDELETE" => {
                EventKind::MessageDelete(ConnectorMessages::from_value(&data))
            }
            "ONIMCONNECTORSTATUSDELETE" => EventKind::StatusDelete {
                connector: text_of(any_of(&data, &["connector", "CONNECTOR"])),
                line: u64_of(any_of(&data, &["line", "LINE"])),
            },
            "ONIMCONNECTORLINEDELETE" => EventKind::LineDelete {
                // `data` is the line id itself; older shapes may nest it.
                line: u64_of(Some(&data))
                    .or_else(|| u64_of(any_of(&data, &["LINE", "line", "LINE_ID"]))),
            },
            other => EventKind::Other(other.to_owned()),
        };
        Ok(BitrixEvent {
            kind,
            auth: EventAuth::from_value(tree.get("auth")),
            ts: i64_of(tree.get("ts")),
            handler_id: u64_of(tree.get("event_handler_id")),
            name,
        })
    }
}

/// Percent-encodes a form component (RFC 3986 unreserved characters stay).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Flattens a JSON object into PHP-style form pairs (`data[MESSAGES][0][im][chat_id]`), as
/// Bitrix24 sends them: the inverse of [`parse_form`], for fixtures and fakes.
pub fn to_form(v: &Value) -> String {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}[{k}]")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Null => {}
            Value::String(s) => out.push(format!("{}={}", form_encode(prefix), form_encode(s))),
            Value::Bool(b) => out.push(format!("{}={}", form_encode(prefix), u8::from(*b))),
            Value::Number(n) => out.push(format!("{}={}", form_encode(prefix), n)),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.join("&")
}

#[cfg(test)]
mod tests;
