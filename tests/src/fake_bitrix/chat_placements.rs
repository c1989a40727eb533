//! The chat's placements and an operator's chat, as the template picker uses them:
//!
//! - `placement.bind` (api-reference/widgets/placement-bind.md): administrators only;
//!   `PLACEMENT`, `HANDLER` required (`ERROR_ARGUMENT`); for the chat placements
//!   Bitrix24's im module checks `OPTIONS` at bind time (`iconName` required for
//!   `IM_TEXTAREA` / `IM_SIDEBAR`, at most 50 characters; `extranet` `Y`/`N`; `context` among
//!   `ALL`, `USER`, `CHAT`, `LINES`, `CRM`, `;`-separated; `role` `USER` or `ADMIN`; `color`
//!   one of its colours; `width`/`height` not negative). A handler bound twice for one
//!   placement is refused. Answers `true`.
//! - `placement.unbind`: `PLACEMENT` required, `HANDLER` optional; answers `{"count": n}`.
//! - `imopenlines.dialog.get` (api-reference/imopenlines/openlines/sessions/
//!   imopenlines-dialog-get.md): `DIALOG_ID` `chat<ID>`; `DIALOG_ID_EMPTY`, `ACCESS_ERROR`
//!   for a user who is not in the chat; the chat with `entity_type` `LINES` and `entity_id`
//!   `<connector>|<line>|<external chat>|<user>`.
//! - `im.message.add` (api-reference/chats/messages/im-message-add.md): `DIALOG_ID`,
//!   `MESSAGE` required (`CHAT_ID_EMPTY`, `MESSAGE_EMPTY`), `ACCESS_ERROR`; the new message's
//!   id. Recorded: the test then delivers the `ONIMCONNECTORMESSAGEADD` Bitrix24 sends.

use serde_json::{json, Value};

use super::rest::Reply;
use super::{text_of, State, INSTALLER_USER_ID};

/// A message a user wrote with `im.message.add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    pub domain: String,
    pub user: u64,
    pub chat_id: u64,
    pub message_id: u64,
    pub text: String,
}

fn err(status: u16, code: &str, description: &str) -> Reply {
    Reply::Err {
        status,
        code: code.to_owned(),
        description: description.to_owned(),
    }
}

const CONTEXTS: &[&str] = &["ALL", "USER", "CHAT", "LINES", "CRM"];
const ROLES: &[&str] = &["USER", "ADMIN"];
const COLORS: &[&str] = &[
    "RED",
    "GREEN",
    "MINT",
    "LIGHT_BLUE",
    "DARK_BLUE",
    "PURPLE",
    "AQUA",
    "PINK",
    "LIME",
    "BROWN",
    "AZURE",
    "KHAKI",
    "SAND",
    "MARENGO",
    "GRAY",
    "GRAPHITE",
];

fn check_chat_options(placement: &str, o: &Value) -> Result<(), Reply> {
    let s = |k: &str| text_of(o.get(k));
    if matches!(placement, "IM_TEXTAREA" | "IM_SIDEBAR") {
        let Some(icon) = s("iconName") else {
            return Err(err(
                400,
                "EMPTY_ERROR_ICON_NAME",
                "Field iconName is empty.",
            ));
        };
        if icon.chars().count() > 50 || !icon.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(err(
                400,
                "INVALID_ERROR_ICON_NAME",
                "Field iconName is invalid.",
            ));
        }
    }
    if !matches!(s("extranet").as_deref(), None | Some("Y") | Some("N")) {
        return Err(err(
            400,
            "INVALID_ERROR_EXTRANET",
            "Field extranet is invalid.",
        ));
    }
    if let Some(context) = s("context") {
        if !context.trim().split(';').all(|c| CONTEXTS.contains(&c)) {
            return Err(err(
                400,
                "INVALID_ERROR_CONTEXT",
                "Field context is invalid.",
            ));
        }
    }
    if !s("role").is_none_or(|r| ROLES.contains(&r.as_str())) {
        return Err(err(400, "INVALID_ERROR_ROLE", "Field role is invalid."));
    }
    if !s("color").is_none_or(|c| c.is_empty() || COLORS.contains(&c.as_str())) {
        return Err(err(400, "INVALID_ERROR_COLOR", "Field color is invalid."));
    }
    for k in ["width", "height"] {
        if o.get(k)
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .is_some_and(|n| n < 0)
        {
            return Err(err(
                400,
                "INVALID_ERROR_WIDTH",
                "Field width or height is invalid.",
            ));
        }
    }
    Ok(())
}

/// The Open Line chat `chat_id` of `domain`: (connector, line, external chat id).
fn open_line_chat(s: &State, domain: &str, chat_id: u64) -> Option<(String, String, String)> {
    s.messages
        .iter()
        .find(|m| m.domain == domain && m.chat_id == chat_id)
        .map(|m| {
            (
                m.connector.clone(),
                m.line.clone(),
                m.external_chat_id.clone(),
            )
        })
}

fn chat_of(params: &Value) -> Option<u64> {
    text_of(params.get("DIALOG_ID"))?
        .strip_prefix("chat")?
        .parse()
        .ok()
}

/// A chat placement or chat method, or None for other methods. `caller`: (user id, admin).
pub(super) fn call(
    s: &mut State,
    domain: &str,
    method: &str,
    params: &Value,
    caller: (u64, bool),
) -> Option<Reply> {
    let may_see = |s: &State, chat: u64| {
        caller.0 == INSTALLER_USER_ID
            || s.portals[domain].dialog_members.contains(&(caller.0, chat))
    };
    Some(match method {
        "placement.bind" => {
            if !caller.1 {
                return Some(err(
                    403,
                    "ACCESS_DENIED",
                    "Access denied! Administrator only",
                ));
            }
            let (Some(placement), Some(handler)) = (
                text_of(params.get("PLACEMENT")),
                text_of(params.get("HANDLER")),
            ) else {
                return Some(err(
                    400,
                    "ERROR_ARGUMENT",
                    "Argument 'PLACEMENT' or 'HANDLER' is null or empty",
                ));
            };
            if let Err(reply) =
                check_chat_options(&placement, params.get("OPTIONS").unwrap_or(&Value::Null))
            {
                return Some(reply);
            }
            let portal = s.portals.get_mut(domain).expect("checked by auth");
            if portal
                .placements
                .iter()
                .any(|p| p["PLACEMENT"] == placement.as_str() && p["HANDLER"] == handler.as_str())
            {
                return Some(err(
                    400,
                    "ERROR_PLACEMENT_HANDLER_ALREADY_REGISTERED",
                    "Handler already binded",
                ));
            }
            portal.placements.push(params.clone());
            Reply::Ok(json!(true))
        }
        "placement.unbind" => {
            let Some(placement) = text_of(params.get("PLACEMENT")) else {
                return Some(err(
                    400,
                    "ERROR_ARGUMENT",
                    "Argument 'PLACEMENT' is null or empty",
                ));
            };
            let handler = text_of(params.get("HANDLER"));
            let portal = s.portals.get_mut(domain).expect("checked by auth");
            let before = portal.placements.len();
            portal.placements.retain(|p| {
                !(p["PLACEMENT"] == placement.as_str()
                    && handler.as_ref().is_none_or(|h| p["HANDLER"] == h.as_str()))
            });
            Reply::Ok(json!({ "count": before - portal.placements.len() }))
        }
        "imopenlines.dialog.get" => {
            let Some(chat) = chat_of(params) else {
                return Some(err(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty"));
            };
            let Some((connector, line, external)) = open_line_chat(s, domain, chat) else {
                return Some(err(
                    400,
                    "ACCESS_ERROR",
                    "You do not have access to the specified dialog",
                ));
            };
            if !may_see(s, chat) {
                return Some(err(
                    400,
                    "ACCESS_ERROR",
                    "You do not have access to the specified dialog",
                ));
            }
            Reply::Ok(json!({
                "avatar": "", "color": "#4ba984", "date_create": "2026-12-04T10:00:00+00:00",
                "dialog_id": null, "entity_data_1": "", "entity_data_2": "", "entity_data_3": "",
                "entity_id": format!("{connector}|{line}|{external}|{}", caller.0),
                "entity_type": "LINES", "extranet": false, "id": chat, "manager_list": [],
                "message_type": "L", "name": "Customer - WhatsApp", "owner": 0, "type": "lines"
            }))
        }
        "im.message.add" => {
            let Some(chat) = chat_of(params) else {
                return Some(err(
                    400,
                    "CHAT_ID_EMPTY",
                    "Recipient chat identifier is not specified",
                ));
            };
            let Some(text) = text_of(params.get("MESSAGE")).filter(|t| !t.is_empty()) else {
                return Some(err(400, "MESSAGE_EMPTY", "Message text is not provided"));
            };
            if open_line_chat(s, domain, chat).is_none() || !may_see(s, chat) {
                return Some(err(
                    400,
                    "ACCESS_ERROR",
                    "Insufficient permissions to send a message",
                ));
            }
            let message_id = s.next();
            s.posted.push(PostedMessage {
                domain: domain.to_owned(),
                user: caller.0,
                chat_id: chat,
                message_id,
                text,
            });
            Reply::Ok(json!(message_id))
        }
        _ => return None,
    })
}
