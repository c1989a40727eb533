//! Reading an Open Line's chat back: which of our messages Bitrix24 has.
//!
//! `im.dialog.messages.get` (apidocs "Get the list of recent messages im.dialog.messages.get",
//! scope `im`): `DIALOG_ID` (`chat<ID>` for a chat), `LIMIT` (20 when not given), and
//! optionally `LAST_ID` (messages older than that id) or `FIRST_ID` (messages newer than that
//! id; 0 for the first messages of the chat). The answer is `{"messages": [{"id", "chat_id",
//! "author_id", "date", "text", "params": {...} | null}], "users": [...], "files": [...],
//! "chat_id"}`, newest first. The method has no standard pagination.
//!
//! A message that came in through `imconnector.send.messages` keeps the external id we gave
//! it (`MESSAGES[n][message][id]`) in its params as `CONNECTOR_MID`, an array (Bitrix24's
//! imconnector module writes it so; the English reference pages do not list this param).
//! Looking for our id among a chat's recent messages tells whether a send whose answer was
//! lost has arrived.
//!
//! The token's user must be allowed to read the chat (else `ACCESS_ERROR`), and the
//! application needs the `im` scope (else `insufficient_scope`).

use serde_json::{json, Value};

use super::error::BitrixError;
use super::imconnector::MethodCall;

/// `im.dialog.messages.get`.
pub const IM_DIALOG_MESSAGES_GET: &str = "im.dialog.messages.get";
/// The most messages asked for in one call. The reference names no maximum; a lookup needs
/// only a chat's last messages, and asking for more than a list method's usual 50 is not
/// relied on.
pub const MAX_RECENT_MESSAGES: u32 = 50;

/// One message of a chat, reduced to what a lookup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Bitrix24's message id.
    pub id: u64,
    /// The external ids given by a connector (`params.CONNECTOR_MID`); empty for operator
    /// and system messages.
    pub connector_mids: Vec<String>,
}

/// `DIALOG_ID` for Bitrix24's chat id (`session.CHAT_ID` of a `send.messages` answer).
/// A value that already reads `chat<ID>` is kept.
fn dialog_id(chat_id: &str) -> String {
    let id = chat_id.trim();
    if id.starts_with("chat") {
        id.to_owned()
    } else {
        format!("chat{id}")
    }
}

/// The parameters for the `limit` newest messages of chat `chat_id` (Bitrix24's chat id, as
/// `session.CHAT_ID` gives it). `limit` is kept within 1..=[`MAX_RECENT_MESSAGES`].
pub fn recent_messages_params(chat_id: &str, limit: u32) -> Value {
    json!({
        "DIALOG_ID": dialog_id(chat_id),
        "LIMIT": limit.clamp(1, MAX_RECENT_MESSAGES),
    })
}

/// [`recent_messages_params`] with its method, for a batch.
pub fn recent_messages_call(chat_id: &str, limit: u32) -> MethodCall {
    MethodCall {
        method: IM_DIALOG_MESSAGES_GET,
        params: recent_messages_params(chat_id, limit),
    }
}

fn id_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `CONNECTOR_MID` as an array of strings or numbers, or a single value; absent, null or
/// an empty PHP array (`[]`) for params that carry none.
fn connector_mids(params: Option<&Value>) -> Vec<String> {
    match params.and_then(|p| p.get("CONNECTOR_MID")) {
        Some(Value::Array(items)) => items.iter().filter_map(text_of).collect(),
        Some(Value::Object(items)) => items.values().filter_map(text_of).collect(),
        Some(single) => text_of(single).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Parses the `result` of `im.dialog.messages.get`: the messages in the order given
/// (newest first). A message without a numeric `id`, or a result without `messages`, is not
/// what the method documents: [`BitrixError::Protocol`].
pub fn parse_recent_messages(result: &Value) -> Result<Vec<ChatMessage>, BitrixError> {
    let messages = match result.get("messages") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(BitrixError::Protocol(format!(
                "{IM_DIALOG_MESSAGES_GET}: result has no \"messages\" array"
            )))
        }
    };
    messages
        .iter()
        .map(|m| {
            let id = id_of(m.get("id")).ok_or_else(|| {
                BitrixError::Protocol(format!(
                    "{IM_DIALOG_MESSAGES_GET}: a message without a numeric id"
                ))
            })?;
            Ok(ChatMessage {
                id,
                connector_mids: connector_mids(m.get("params")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        assert_eq!(
            recent_messages_params("29", 20),
            json!({"DIALOG_ID": "chat29", "LIMIT": 20})
        );
        assert_eq!(
            recent_messages_params("chat29", 500),
            json!({"DIALOG_ID": "chat29", "LIMIT": 50})
        );
        assert_eq!(recent_messages_params("7", 0)["LIMIT"], json!(1));
        let call = recent_messages_call("1767", 50);
        assert_eq!(call.method, "im.dialog.messages.get");
        assert_eq!(call.params["DIALOG_ID"], json!("chat1767"));
    }

    #[test]
    fn parses_the_documented_answer() {
        // apidocs im.dialog.messages.get, "Successful response" (users and files cut short),
        // with a connector message added first.
        let result = json!({
            "messages": [
                {
                    "id": 28561625,
                    "chat_id": 29,
                    "author_id": 585,
                    "date": "2018-01-29T17:00:00+02:00",
                    "text": "hello",
                    "params": {"CONNECTOR_MID": ["wamid.HBgL"]}
                },
                {
                    "id": 28561624,
                    "chat_id": 29,
                    "author_id": 1,
                    "date": "2018-01-29T16:58:47+02:00",
                    "text": "https://my-domain.com",
                    "params": {"URL_ID": [5], "URL_ONLY": "Y", "ATTACH": [{"ID": "5", "COLOR": "transparent"}]}
                },
                {
                    "id": 28561623,
                    "chat_id": 29,
                    "author_id": 28,
                    "date": "2018-01-29T16:43:38+02:00",
                    "text": "",
                    "params": {"FILE_ID": [540]}
                },
                {
                    "id": "28561622",
                    "chat_id": 29,
                    "author_id": 1,
                    "date": "2018-01-29T16:43:12+02:00",
                    "text": "It's working yes :) :)",
                    "params": {"IS_EDITED": "Y", "CONNECTOR_MID": 77}
                },
                {
                    "id": 28561618,
                    "chat_id": 29,
                    "author_id": 0,
                    "date": "2018-01-25T15:15:22+02:00",
                    "text": "Eugene Shelenkov changed the chat topic to \"Big chat\"",
                    "params": null
                },
                {"id": 28561617, "chat_id": 29, "params": []}
            ],
            "users": [{"id": 1, "name": "Eugene Shelenkov"}],
            "files": [{"id": 540, "chatId": 29, "type": "image"}],
            "chat_id": 29
        });
        let messages = parse_recent_messages(&result).unwrap();
        let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            [28561625, 28561624, 28561623, 28561622, 28561618, 28561617]
        );
        assert_eq!(messages[0].connector_mids, ["wamid.HBgL"]);
        assert!(messages[1].connector_mids.is_empty());
        assert!(messages[2].connector_mids.is_empty());
        assert_eq!(messages[3].connector_mids, ["77"]);
        assert!(messages[4].connector_mids.is_empty());
        assert!(messages[5].connector_mids.is_empty());

        assert_eq!(
            parse_recent_messages(&json!({"messages": [], "users": [], "files": [], "chat_id": 3}))
                .unwrap(),
            []
        );
        assert!(matches!(
            parse_recent_messages(&json!({"chat_id": 3})),
            Err(BitrixError::Protocol(_))
        ));
        assert!(matches!(
            parse_recent_messages(&json!({"messages": [{"text": "no id"}]})),
            Err(BitrixError::Protocol(_))
        ));
    }
}
