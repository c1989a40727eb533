//! An operator's Open Line chat, with the operator's own token (`AUTH_ID` of a chat
//! placement): which chat it is, and writing in it as the operator.
//!
//! - `imopenlines.dialog.get` (apidocs api-reference/imopenlines/openlines/sessions/
//!   imopenlines-dialog-get.md, scope `imopenlines`): one of `CHAT_ID`, `DIALOG_ID`
//!   (`chat<ID>`), `SESSION_ID`, `USER_CODE`. Answers the chat: `id` (the chat's id),
//!   `entity_type` (`LINES` for an Open Line chat), `entity_id` (`<connector>|<line>|<the
//!   connector's chat id>|<user>`, as `livechat|1|1363|203`), `name`, ... `ACCESS_ERROR` when
//!   the user may not see the dialog, `DIALOG_ID_EMPTY` without an id.
//! - `im.message.add` (api-reference/chats/messages/im-message-add.md, scope `im`):
//!   `DIALOG_ID`, `MESSAGE` (required), `SYSTEM`, `URL_PREVIEW`, ...; answers the new
//!   message's id. `ACCESS_ERROR` when the user may not write there, `MESSAGE_EMPTY`.
//!   Written in an Open Line chat by an operator, the message goes to the connector like a
//!   typed one (`ONIMCONNECTORMESSAGEADD`).

use std::fmt;

use serde_json::{json, Value};

use super::client::BitrixClient;
use super::error::BitrixError;
use crate::ids::BitrixDomain;
use crate::secret::Secret;

pub const IMOPENLINES_DIALOG_GET: &str = "imopenlines.dialog.get";
pub const IM_MESSAGE_ADD: &str = "im.message.add";

/// An Open Line chat as `imopenlines.dialog.get` names it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenLineDialog {
    /// Bitrix24's chat id.
    pub chat_id: u64,
    /// The connector's code (`entity_id`'s first part).
    pub connector: String,
    pub line: u64,
    /// The chat id the connector gave (`chat.id` of `imconnector.send.messages`).
    pub external_chat: String,
}

impl fmt::Debug for OpenLineDialog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenLineDialog")
            .field("chat_id", &self.chat_id)
            .field("connector", &self.connector)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// `DIALOG_ID` of a chat placement: `chat<digits>` (a private dialog, a user id, is no Open
/// Line chat).
pub fn chat_dialog_id(dialog_id: &str) -> Option<u64> {
    let digits = dialog_id.strip_prefix("chat")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|id| *id > 0)
}

/// The answer of `imopenlines.dialog.get`; None when it is not an Open Line chat.
pub fn parse_open_line_dialog(result: &Value) -> Result<Option<OpenLineDialog>, BitrixError> {
    let bad = |what: &str| BitrixError::Protocol(format!("imopenlines.dialog.get: {what}"));
    let chat_id = match &result["id"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("no chat id"))?;
    let is_lines = result["entity_type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("LINES"));
    let Some(entity) = result["entity_id"].as_str().filter(|_| is_lines) else {
        return Ok(None);
    };
    let parts: Vec<&str> = entity.split('|').collect();
    let (Some(connector), Some(line), Some(chat)) = (parts.first(), parts.get(1), parts.get(2))
    else {
        return Ok(None);
    };
    let Ok(line) = line.parse() else {
        return Ok(None);
    };
    Ok(Some(OpenLineDialog {
        chat_id,
        connector: (*connector).to_owned(),
        line,
        external_chat: (*chat).to_owned(),
    }))
}

impl BitrixClient {
    /// `imopenlines.dialog.get` of `DIALOG_ID` `chat<chat_id>` with the user's `token`.
    pub async fn open_line_dialog(
        &self,
        portal: &BitrixDomain,
        token: &Secret,
        chat_id: u64,
    ) -> Result<Option<OpenLineDialog>, BitrixError> {
        let params = json!({ "DIALOG_ID": format!("chat{chat_id}") });
        let result = self
            .call(portal, token, IMOPENLINES_DIALOG_GET, params)
            .await?;
        parse_open_line_dialog(&result)
    }

    /// `im.message.add` of `text` in chat `chat_id`, as the user whose `token` it is; the new
    /// message's id.
    pub async fn add_message_as_user(
        &self,
        portal: &BitrixDomain,
        token: &Secret,
        chat_id: u64,
        text: &str,
    ) -> Result<u64, BitrixError> {
        let params = json!({
            "DIALOG_ID": format!("chat{chat_id}"),
            "MESSAGE": text,
            "URL_PREVIEW": "N",
        });
        let result = self.call(portal, token, IM_MESSAGE_ADD, params).await?;
        match &result {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| BitrixError::Protocol("im.message.add: no message id".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_answer_names_the_connector_line_and_chat() {
        // imopenlines-dialog-get.md, "Successful Response".
        let d = parse_open_line_dialog(&json!({
            "avatar": "", "color": "#4ba984", "date_create": "2020-05-12T17:40:55+02:00",
            "dialog_id": null, "entity_data_1": "N|NONE|0|N|N|0|1591872180|1|0|",
            "entity_id": "livechat|1|1363|203", "entity_type": "LINES", "extranet": false,
            "id": 1364, "manager_list": [], "message_type": "L",
            "name": "Eugene Perekopsky - Priority Support", "owner": 0, "type": "lines"
        }))
        .unwrap()
        .unwrap();
        assert_eq!(d.chat_id, 1364);
        assert_eq!(d.connector, "livechat");
        assert_eq!(d.line, 1);
        assert_eq!(d.external_chat, "1363");
        let group = parse_open_line_dialog(&json!({"id": 5, "entity_type": "", "entity_id": ""}));
        assert_eq!(group.unwrap(), None);
    }

    #[test]
    fn only_chats_are_open_line_dialogs() {
        assert_eq!(chat_dialog_id("chat1364"), Some(1364));
        assert_eq!(chat_dialog_id("256"), None);
        assert_eq!(chat_dialog_id("chat"), None);
        assert_eq!(chat_dialog_id("chat12a"), None);
        assert_eq!(chat_dialog_id("chat0"), None);
    }
}
