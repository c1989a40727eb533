//! Bitrix24's answers to the `imconnector.*` methods: yes/no answers, the per-message
//! results of `send.messages` / `update.messages`, and `SUCCESS` answers. The same readers
//! serve a method called alone and one command of a `batch`.

use std::fmt;

use serde_json::Value;

use crate::bitrix::error::BitrixError;

/// Parses an answer that only says yes or no: `true`, `{"result": true}`,
/// `{"SUCCESS": true}`; `false` or `{"result": false, "error": ...}` is
/// [`BitrixError::Rejected`].
pub fn parse_true(method: &str, result: &Value) -> Result<(), BitrixError> {
    let strict = |v: Option<&Value>| match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        Value::String(s) => match s.as_str() {
            "Y" | "y" | "true" | "1" => Some(true),
            "N" | "n" | "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    };
    let verdict = match result {
        Value::Object(o) => strict(o.get("result").or_else(|| o.get("SUCCESS"))),
        other => strict(Some(other)),
    };
    match verdict {
        Some(true) => Ok(()),
        Some(false) => {
            let code = result
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("RESULT_FALSE")
                .to_owned();
            let description = result
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(BitrixError::Rejected {
                status: 200,
                code,
                description: format!("{method}: {description}"),
            })
        }
        None => Err(BitrixError::Protocol(format!(
            "{method}: result is neither true nor false"
        ))),
    }
}

/// One element of `DATA.RESULT` of `send.messages` (or `update.messages`).
#[derive(Clone, PartialEq)]
pub struct SentCrmMessage {
    /// The element's `SUCCESS`.
    pub success: bool,
    /// The element's `ERRORS` (when `success` is false).
    pub errors: Vec<String>,
    /// Bitrix24's internal id of the customer's user (`user`).
    pub bitrix_user_id: Option<String>,
    /// Our message id, echoed (`message.id`).
    pub external_message_id: Option<String>,
    /// Our chat id, echoed (`chat.id`).
    pub external_chat_id: Option<String>,
    /// The open line session (`session.ID`).
    pub session_id: Option<String>,
    /// Bitrix24's chat id (`session.CHAT_ID`).
    pub chat_id: Option<String>,
    /// The `url` of each entry of the echoed `message.files` (None for an entry without
    /// one), or None when the answer has no such list. The reference's response example
    /// lists there only the files the portal kept: a request with one file answered
    /// `"files": []` (api-reference/imopenlines/imconnector/imconnector-send-messages.md).
    pub kept_files: Option<Vec<Option<String>>>,
    /// The element as received (it echoes the message text: do not log it).
    pub raw: Value,
}

impl fmt::Debug for SentCrmMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentCrmMessage")
            .field("success", &self.success)
            .field("errors", &self.errors)
            .field("bitrix_user_id", &self.bitrix_user_id)
            .field("external_message_id", &self.external_message_id)
            .field("external_chat_id", &self.external_chat_id)
            .field("session_id", &self.session_id)
            .field("chat_id", &self.chat_id)
            .field("kept_files", &self.kept_files.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// An id that Bitrix24 may send as a string or a number.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(matches!(s.as_str(), "Y" | "y" | "true" | "1")),
        Value::Number(n) => Some(n.as_u64() != Some(0)),
        _ => None,
    }
}

fn errors_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

impl SentCrmMessage {
    fn from_value(v: &Value) -> Self {
        let session = v.get("session");
        SentCrmMessage {
            success: truthy(v.get("SUCCESS")).unwrap_or(false),
            errors: errors_of(v.get("ERRORS")),
            bitrix_user_id: id_of(v.get("user")),
            external_message_id: id_of(v.get("message").and_then(|m| m.get("id"))),
            external_chat_id: id_of(v.get("chat").and_then(|c| c.get("id"))),
            session_id: id_of(session.and_then(|s| s.get("ID"))),
            chat_id: id_of(session.and_then(|s| s.get("CHAT_ID"))),
            kept_files: match v.get("message").and_then(|m| m.get("files")) {
                Some(Value::Array(files)) => Some(
                    files
                        .iter()
                        .map(|f| f.get("url").and_then(Value::as_str).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            },
            raw: v.clone(),
        }
    }
}

/// Refuses a `result` whose top-level `SUCCESS` is false.
fn check_success(method: &str, result: &Value) -> Result<(), BitrixError> {
    if truthy(result.get("SUCCESS")) == Some(false) {
        let errors = errors_of(result.get("ERRORS").or_else(|| result.get("errors")));
        return Err(BitrixError::Rejected {
            status: 200,
            code: "SUCCESS_FALSE".into(),
            description: format!("{method}: {}", errors.join("; ")),
        });
    }
    Ok(())
}

/// Parses the `result` of `send.messages` / `update.messages`: one element per message sent,
/// in order.
pub fn parse_sent_messages(
    method: &str,
    result: &Value,
) -> Result<Vec<SentCrmMessage>, BitrixError> {
    check_success(method, result)?;
    match result.get("DATA").and_then(|d| d.get("RESULT")) {
        Some(Value::Array(items)) => Ok(items.iter().map(SentCrmMessage::from_value).collect()),
        Some(_) => Err(BitrixError::Protocol(format!(
            "{method}: DATA.RESULT is not an array"
        ))),
        None => Ok(Vec::new()),
    }
}

/// Parses a `result` that carries only `SUCCESS` (status and delete methods).
pub fn parse_success(method: &str, result: &Value) -> Result<(), BitrixError> {
    match result {
        Value::Object(_) => check_success(method, result),
        Value::Bool(true) => Ok(()),
        Value::Bool(false) => Err(BitrixError::Rejected {
            status: 200,
            code: "SUCCESS_FALSE".into(),
            description: method.to_owned(),
        }),
        _ => Err(BitrixError::Protocol(format!(
            "{method}: result is neither an object nor a boolean"
        ))),
    }
}
