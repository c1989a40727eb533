//! The `imconnector` methods a custom Open Lines connector uses, with the request and answer
//! shapes apidocs.bitrix24.com documents (api-reference/imopenlines/imconnector/).
//!
//! - `imconnector.send.messages`: `CONNECTOR` (string code given to `imconnector.register`),
//!   `LINE` (open line id, integer), `MESSAGES[]` of `{user, message, chat}`:
//!   `user {id*, last_name, name, picture {url}, url, gender, email, phone,
//!   skip_phone_validate: "Y"}`, `message {id, date (Unix seconds), text, files [{url, name}],
//!   disable_crm: "Y", user_id}`, `chat {id*, name, url}`. Text or files must be given.
//!   `name` and `last_name` may hold letters, spaces, hyphens and apostrophes, at most 25
//!   characters. The answer is `{"SUCCESS": true, "DATA": {"RESULT": [...]}}` with one element
//!   per message: `user` (Bitrix24's internal user id, a string), `message` (the external id
//!   echoed), `chat` (external id, name, description), `SUCCESS`, `ERRORS` (when false), and
//!   `session {ID, CHAT_ID}` (the open line session and Bitrix24's chat id). Bitrix24's own
//!   message ids are not part of the documented answer.
//! - `imconnector.send.status.delivery`: for operator messages Bitrix24 sent us
//!   (`OnImConnectorMessageAdd`), `MESSAGES[]` of `{im {chat_id, message_id}, message {id:
//!   [external ids], date}, chat {id}}`. `im.message_id` (from the event) is what Bitrix24
//!   matches on; `message.id` is an array even for one id. Delivered also marks the message
//!   read. The answer is `{"SUCCESS": true, "DATA": []}` and says nothing per message
//!   (elements Bitrix24 cannot match are skipped without an error).
//! - `imconnector.send.status.reading`: same shape; Bitrix24 accepts it but (per the Russian
//!   reference, 2026) records nothing. Delivery is what marks a message read.
//! - `imconnector.register` (application context only): `ID` (lower-case letters, digits and
//!   `_`; Bitrix24 lowercases it and refuses a `.`), `NAME`, `ICON {DATA_IMAGE (an SVG data
//!   URI), COLOR, SIZE, POSITION}`, `PLACEMENT_HANDLER` (the settings page Bitrix24 opens in
//!   a slider), and optional flags `ICON_DISABLED`, `DEL_EXTERNAL_MESSAGES`,
//!   `EDIT_INTERNAL_MESSAGES`, `DEL_INTERNAL_MESSAGES`, `NEWSLETTER`, `NEED_SYSTEM_MESSAGES`,
//!   `NEED_SIGNATURE`, `CHAT_GROUP` (older pages: `Y`/`N`; newer: booleans; the default of
//!   `CHAT_GROUP` is a group chat, in which "leads and other CRM entities are not created"),
//!   `COMMENT`. Bitrix24's own code answers `{"result": true}` as the method's result, or
//!   `{"result": false, "error": ..., "error_description": ...}`.
//! - `imconnector.activate`: `CONNECTOR`, `LINE`, `ACTIVE` (1 or 0). The answer is not
//!   documented beyond success; parsed leniently.
//! - `imconnector.connector.data.set` (application context only): `CONNECTOR`, `LINE`,
//!   `DATA {ID, URL, URL_IM, NAME}` (written as a whole). Answers `true`.
//! - `imconnector.update.messages`: the `send.messages` shape with the same `message.id` and
//!   `chat.id` as when sent. `imconnector.delete.messages`: `{user {id}, message {id},
//!   chat {id}}`. Their answers are not documented beyond `SUCCESS`; they are parsed leniently.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::ids::InvalidId;

use super::error::BitrixError;

mod answers;

pub use answers::{parse_sent_messages, parse_success, parse_true, SentCrmMessage};

pub const REGISTER: &str = "imconnector.register";
pub const ACTIVATE: &str = "imconnector.activate";
pub const CONNECTOR_DATA_SET: &str = "imconnector.connector.data.set";
pub const SEND_MESSAGES: &str = "imconnector.send.messages";
pub const UPDATE_MESSAGES: &str = "imconnector.update.messages";
pub const DELETE_MESSAGES: &str = "imconnector.delete.messages";
pub const SEND_STATUS_DELIVERY: &str = "imconnector.send.status.delivery";
pub const SEND_STATUS_READING: &str = "imconnector.send.status.reading";

/// Longest `name` / `last_name` Bitrix24 accepts.
pub const MAX_NAME_CHARS: usize = 25;

/// Our connector's string code, as given to `imconnector.register` (`ID`): 1 to 64 ASCII
/// letters, digits, `_`, `-` or `.`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectorId(String);

impl ConnectorId {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(InvalidId {
                kind: "Bitrix24 connector id",
                reason: "must be 1 to 64 ASCII letters, digits, '_', '-' or '.'".into(),
            });
        }
        Ok(ConnectorId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConnectorId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        ConnectorId::parse(&s)
    }
}

impl From<ConnectorId> for String {
    fn from(v: ConnectorId) -> String {
        v.0
    }
}

impl fmt::Display for ConnectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectorId({})", self.0)
    }
}

/// An open line id (`LINE`): a positive integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u64", into = "u64")]
pub struct OpenLineId(u64);

impl OpenLineId {
    pub fn new(id: u64) -> Result<Self, InvalidId> {
        if id == 0 {
            return Err(InvalidId {
                kind: "Bitrix24 open line id",
                reason: "must be a positive integer".into(),
            });
        }
        Ok(OpenLineId(id))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let n = s
            .parse::<u64>()
            .ok()
            .filter(|_| !s.starts_with('+'))
            .ok_or_else(|| InvalidId {
                kind: "Bitrix24 open line id",
                reason: "must be a positive integer".into(),
            })?;
        OpenLineId::new(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for OpenLineId {
    type Error = InvalidId;
    fn try_from(v: u64) -> Result<Self, InvalidId> {
        OpenLineId::new(v)
    }
}

impl From<OpenLineId> for u64 {
    fn from(v: OpenLineId) -> u64 {
        v.0
    }
}

impl fmt::Display for OpenLineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The customer as the CRM should see them. `id` must stay the same for the same customer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CrmUser {
    /// External user id (ours), stable per customer.
    pub id: String,
    pub name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    /// A public avatar URL.
    pub picture_url: Option<String>,
    /// A link to the customer's profile.
    pub profile_url: Option<String>,
    /// Sends `skip_phone_validate: "Y"` (Bitrix24 advises it only when its validator refuses a
    /// real number).
    pub skip_phone_validate: bool,
}

/// A file Bitrix24 downloads from `url` (it must be reachable from the portal).
#[derive(Clone, PartialEq, Eq)]
pub struct CrmFile {
    pub url: String,
    pub name: Option<String>,
}

/// The conversation on our side. `id` must stay the same for the same conversation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CrmChat {
    pub id: String,
    pub name: Option<String>,
    pub url: Option<String>,
}

/// One message to put into the open line (`send.messages` / `update.messages`).
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingCrmMessage {
    pub user: CrmUser,
    pub chat: CrmChat,
    /// External message id (ours), the key for later updates and deletes.
    pub message_id: String,
    /// When the customer sent it, Unix seconds.
    pub date: i64,
    pub text: Option<String>,
    pub files: Vec<CrmFile>,
    /// Sends `disable_crm: "Y"`: no CRM tracker for this message.
    pub disable_crm: bool,
}

/// Message text, names and phone are personal data: `Debug` shows ids and sizes only.
impl fmt::Debug for OutgoingCrmMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingCrmMessage")
            .field("user_id", &self.user.id)
            .field("chat_id", &self.chat.id)
            .field("message_id", &self.message_id)
            .field("date", &self.date)
            .field("text_chars", &self.text.as_ref().map(|t| t.chars().count()))
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CrmUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmUser")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CrmChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmChat")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CrmFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmFile").finish_non_exhaustive()
    }
}

/// A name as Bitrix24 accepts it: letters, spaces, hyphens and apostrophes, at most 25
/// characters; anything else (digits, emoji...) is dropped. `None` when nothing is left.
pub fn crm_name(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '’'))
        .collect();
    let collapsed = kept
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let cut: String = collapsed.chars().take(MAX_NAME_CHARS).collect();
    let cut = cut.trim().to_owned();
    (!cut.is_empty()).then_some(cut)
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        m.insert(k.to_owned(), Value::String(v.to_owned()));
    }
}

fn require_id(what: &str, id: &str) -> Result<(), BitrixError> {
    if id.trim().is_empty() {
        return Err(BitrixError::InvalidRequest(format!("{what} is empty")));
    }
    Ok(())
}

impl OutgoingCrmMessage {
    /// The element of `MESSAGES` Bitrix24 documents for `send.messages`.
    pub fn to_param(&self) -> Result<Value, BitrixError> {
        require_id("user.id", &self.user.id)?;
        require_id("chat.id", &self.chat.id)?;
        require_id("message.id", &self.message_id)?;
        let text = self.text.as_deref().filter(|t| !t.is_empty());
        if text.is_none() && self.files.is_empty() {
            return Err(BitrixError::InvalidRequest(
                "a message needs text or files".into(),
            ));
        }

        let mut user = Map::new();
        user.insert("id".into(), Value::String(self.user.id.clone()));
        put(
            &mut user,
            "name",
            self.user.name.as_deref().and_then(crm_name).as_deref(),
        );
        put(
            &mut user,
            "last_name",
            self.user.last_name.as_deref().and_then(crm_name).as_deref(),
        );
        put(&mut user, "phone", self.user.phone.as_deref());
        if let Some(url) = self.user.picture_url.as_deref().filter(|u| !u.is_empty()) {
            user.insert("picture".into(), json!({ "url": url }));
        }
        put(&mut user, "url", self.user.profile_url.as_deref());
        if self.user.skip_phone_validate {
            user.insert("skip_phone_validate".into(), Value::String("Y".into()));
        }

        let mut message = Map::new();
        message.insert("id".into(), Value::String(self.message_id.clone()));
        message.insert("date".into(), Value::from(self.date));
        put(&mut message, "text", text);
        if !self.files.is_empty() {
            message.insert("files".into(), files_param(&self.files));
        }
        if self.disable_crm {
            message.insert("disable_crm".into(), Value::String("Y".into()));
        }

        let mut chat = Map::new();
        chat.insert("id".into(), Value::String(self.chat.id.clone()));
        put(&mut chat, "name", self.chat.name.as_deref());
        put(&mut chat, "url", self.chat.url.as_deref());

        Ok(json!({ "user": user, "message": message, "chat": chat }))
    }
}

/// `message.files`: `[{url, name}]`.
fn files_param(files: &[CrmFile]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|f| {
                let mut o = Map::new();
                o.insert("url".into(), Value::String(f.url.clone()));
                put(&mut o, "name", f.name.as_deref());
                Value::Object(o)
            })
            .collect(),
    )
}

/// Puts `files` into `message.files` of every element of `params.MESSAGES` (the parameters
/// of a `send.messages` or `update.messages` call), for files whose link is made only when
/// the call goes out. Nothing changes when `files` is empty.
pub fn set_message_files(params: &mut Value, files: &[CrmFile]) {
    if files.is_empty() {
        return;
    }
    if let Some(messages) = params.get_mut("MESSAGES").and_then(Value::as_array_mut) {
        for entry in messages {
            if let Some(message) = entry.get_mut("message").and_then(Value::as_object_mut) {
                message.insert("files".into(), files_param(files));
            }
        }
    }
}

/// Posts a `MESSAGES` element (of `send.messages` or `update.messages`) on behalf of the
/// Bitrix24 manager `user_id`: the documented `message.user_id` field ("the ID of the
/// manager in Bitrix24; if you pass `user_id`, the message will be sent on behalf of this
/// manager", api-reference/imopenlines/imconnector/imconnector-send-messages.md). The
/// message then shows on the operator's side of the chat.
pub fn post_as_manager(element: &mut Value, user_id: u64) {
    if let Some(message) = element.get_mut("message").and_then(Value::as_object_mut) {
        message.insert("user_id".into(), Value::from(user_id));
    }
}

/// Bitrix24's internal ids of an operator message, from `OnImConnectorMessageAdd`'s `im`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImRef {
    pub chat_id: u64,
    pub message_id: u64,
}

/// A delivery or read status for an operator message (`send.status.delivery/reading`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// `im` from the event: `message_id` is what Bitrix24 matches on.
    pub im: ImRef,
    /// The external ids of the message (ours / the channel's); sent as an array.
    pub message_ids: Vec<String>,
    /// The external chat id, as in `send.messages`.
    pub chat_id: String,
    /// When it was delivered (or read), Unix seconds.
    pub date: Option<i64>,
}

impl StatusUpdate {
    /// The documented `MESSAGES` element.
    pub fn to_param(&self) -> Result<Value, BitrixError> {
        if self.im.message_id == 0 {
            return Err(BitrixError::InvalidRequest("im.message_id is 0".into()));
        }
        require_id("chat.id", &self.chat_id)?;
        let mut message = Map::new();
        message.insert("id".into(), json!(self.message_ids));
        if let Some(date) = self.date {
            message.insert("date".into(), Value::from(date));
        }
        Ok(json!({
            "im": { "chat_id": self.im.chat_id, "message_id": self.im.message_id },
            "message": message,
            "chat": { "id": self.chat_id },
        }))
    }
}

/// A message to remove from the open line (`delete.messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteCrmMessage {
    pub user_id: String,
    pub chat_id: String,
    pub message_id: String,
}

impl DeleteCrmMessage {
    pub fn to_param(&self) -> Result<Value, BitrixError> {
        require_id("user.id", &self.user_id)?;
        require_id("chat.id", &self.chat_id)?;
        require_id("message.id", &self.message_id)?;
        Ok(json!({
            "user": { "id": self.user_id },
            "message": { "id": self.message_id },
            "chat": { "id": self.chat_id },
        }))
    }
}

/// How a connector presents itself (`imconnector.register`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorRegistration {
    pub id: ConnectorId,
    pub name: String,
    /// An SVG icon as a data URI (`data:image/svg+xml;...`).
    pub icon_data_image: String,
    pub icon_color: Option<String>,
    /// The settings page Bitrix24 opens in a slider (`PLACEMENT_HANDLER`).
    pub placement_handler: String,
    /// Operators may edit their sent messages (`EDIT_INTERNAL_MESSAGES`).
    pub edit_internal_messages: bool,
    /// Operators may delete their sent messages (`DEL_INTERNAL_MESSAGES`).
    pub delete_internal_messages: bool,
    /// The external chat is a group (`CHAT_GROUP`).
    pub chat_group: bool,
    pub comment: Option<String>,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Y"
    } else {
        "N"
    }
}

impl ConnectorRegistration {
    /// The documented parameters. Flags are sent as `Y`/`N` (the form older pages document;
    /// Bitrix24's code copies them as given).
    pub fn to_params(&self) -> Result<Value, BitrixError> {
        let id = self.id.as_str();
        if id.contains('.') || id.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(BitrixError::InvalidRequest(
                "connector ID must be lower case without '.'".into(),
            ));
        }
        require_id("NAME", &self.name)?;
        require_id("ICON.DATA_IMAGE", &self.icon_data_image)?;
        require_id("PLACEMENT_HANDLER", &self.placement_handler)?;
        let mut icon = Map::new();
        icon.insert(
            "DATA_IMAGE".into(),
            Value::String(self.icon_data_image.clone()),
        );
        put(&mut icon, "COLOR", self.icon_color.as_deref());
        let mut params = Map::new();
        params.insert("ID".into(), Value::String(id.to_owned()));
        params.insert("NAME".into(), Value::String(self.name.clone()));
        params.insert("ICON".into(), Value::Object(icon));
        params.insert(
            "PLACEMENT_HANDLER".into(),
            Value::String(self.placement_handler.clone()),
        );
        params.insert(
            "EDIT_INTERNAL_MESSAGES".into(),
            Value::String(yes_no(self.edit_internal_messages).into()),
        );
        params.insert(
            "DEL_INTERNAL_MESSAGES".into(),
            Value::String(yes_no(self.delete_internal_messages).into()),
        );
        params.insert(
            "CHAT_GROUP".into(),
            Value::String(yes_no(self.chat_group).into()),
        );
        put(&mut params, "COMMENT", self.comment.as_deref());
        Ok(Value::Object(params))
    }
}

/// `imconnector.activate` parameters.
pub fn activate_params(connector: &ConnectorId, line: OpenLineId, active: bool) -> Value {
    json!({ "CONNECTOR": connector.as_str(), "LINE": line.get(), "ACTIVE": u8::from(active) })
}

/// The channel's settings as the Open Line shows them (`imconnector.connector.data.set`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorData {
    /// The channel's id in the external system.
    pub id: String,
    pub url: Option<String>,
    pub url_im: Option<String>,
    pub name: Option<String>,
}

impl ConnectorData {
    pub fn to_params(
        &self,
        connector: &ConnectorId,
        line: OpenLineId,
    ) -> Result<Value, BitrixError> {
        require_id("DATA.ID", &self.id)?;
        let mut data = Map::new();
        data.insert("ID".into(), Value::String(self.id.clone()));
        put(&mut data, "URL", self.url.as_deref());
        put(&mut data, "URL_IM", self.url_im.as_deref());
        put(&mut data, "NAME", self.name.as_deref());
        Ok(json!({ "CONNECTOR": connector.as_str(), "LINE": line.get(), "DATA": data }))
    }
}

/// `{CONNECTOR, LINE, MESSAGES}`, the parameters every imconnector message method takes.
pub fn messages_params(
    connector: &ConnectorId,
    line: OpenLineId,
    messages: Vec<Value>,
) -> Result<Value, BitrixError> {
    if messages.is_empty() {
        return Err(BitrixError::InvalidRequest("MESSAGES is empty".into()));
    }
    Ok(json!({
        "CONNECTOR": connector.as_str(),
        "LINE": line.get(),
        "MESSAGES": messages,
    }))
}

/// A REST call built but not sent: the method and its parameters, to call alone
/// ([`PortalSession::call`](super::PortalSession::call)) or as one command of a `batch`
/// ([`BatchCommand::from_call`](super::BatchCommand::from_call)). `Debug` shows the method
/// only (the parameters hold message text and names).
///
/// Which parser reads the method's `result` (the same value alone or in a batch):
///
/// | method | built by | result read by |
/// |---|---|---|
/// | `imconnector.send.messages` | [`send_messages_call`] | [`parse_sent_messages`]: one element per message, in order |
/// | `imconnector.update.messages` | [`update_messages_call`] | [`parse_sent_messages`] (elements may carry only `SUCCESS`) |
/// | `imconnector.delete.messages` | [`delete_messages_call`] | [`parse_success`] |
/// | `imconnector.send.status.delivery` | [`status_delivery_call`] | [`parse_success`] |
/// | `imconnector.send.status.reading` | [`status_reading_call`] | [`parse_success`] |
/// | `imconnector.register`, `.activate`, `.connector.data.set`, `event.bind` | | [`parse_true`] |
/// | `im.dialog.messages.get` | [`recent_messages_call`](super::im::recent_messages_call) | [`parse_recent_messages`](super::im::parse_recent_messages) |
#[derive(Clone, PartialEq)]
pub struct MethodCall {
    pub method: &'static str,
    pub params: Value,
}

impl fmt::Debug for MethodCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodCall")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

fn message_call<T>(
    method: &'static str,
    connector: &ConnectorId,
    line: OpenLineId,
    items: &[T],
    to_param: impl Fn(&T) -> Result<Value, BitrixError>,
) -> Result<MethodCall, BitrixError> {
    let items = items.iter().map(to_param).collect::<Result<Vec<_>, _>>()?;
    Ok(MethodCall {
        method,
        params: messages_params(connector, line, items)?,
    })
}

/// `imconnector.send.messages` for `messages` (refused when empty or a message is invalid).
pub fn send_messages_call(
    connector: &ConnectorId,
    line: OpenLineId,
    messages: &[OutgoingCrmMessage],
) -> Result<MethodCall, BitrixError> {
    message_call(
        SEND_MESSAGES,
        connector,
        line,
        messages,
        OutgoingCrmMessage::to_param,
    )
}

/// `imconnector.update.messages` (same message and chat ids as when sent).
pub fn update_messages_call(
    connector: &ConnectorId,
    line: OpenLineId,
    messages: &[OutgoingCrmMessage],
) -> Result<MethodCall, BitrixError> {
    message_call(
        UPDATE_MESSAGES,
        connector,
        line,
        messages,
        OutgoingCrmMessage::to_param,
    )
}

/// `imconnector.delete.messages`.
pub fn delete_messages_call(
    connector: &ConnectorId,
    line: OpenLineId,
    messages: &[DeleteCrmMessage],
) -> Result<MethodCall, BitrixError> {
    message_call(
        DELETE_MESSAGES,
        connector,
        line,
        messages,
        DeleteCrmMessage::to_param,
    )
}

/// `imconnector.send.status.delivery` (also marks the messages read).
pub fn status_delivery_call(
    connector: &ConnectorId,
    line: OpenLineId,
    statuses: &[StatusUpdate],
) -> Result<MethodCall, BitrixError> {
    message_call(
        SEND_STATUS_DELIVERY,
        connector,
        line,
        statuses,
        StatusUpdate::to_param,
    )
}

/// `imconnector.send.status.reading`.
pub fn status_reading_call(
    connector: &ConnectorId,
    line: OpenLineId,
    statuses: &[StatusUpdate],
) -> Result<MethodCall, BitrixError> {
    message_call(
        SEND_STATUS_READING,
        connector,
        line,
        statuses,
        StatusUpdate::to_param,
    )
}

#[cfg(test)]
mod tests;
