//! The portals' REST methods: auth, the imconnector and set-up methods, `batch`, and
//! `im.dialog.messages.get` over the messages the fake keeps.

use serde_json::{json, Map, Value};

use super::form::form_to_json;
use super::{
    answer, text_of, time_block, Answer, ReceivedMessage, RecordedCall, State, INSTALLER_USER_ID,
};

/// What a method answers: its `result`, or an error with its HTTP status.
pub(super) enum Reply {
    Ok(Value),
    Err {
        status: u16,
        code: String,
        description: String,
    },
}

impl Reply {
    pub(super) fn status(&self) -> u16 {
        match self {
            Reply::Ok(_) => 200,
            Reply::Err { status, .. } => *status,
        }
    }

    /// The answer of a call alone: `{"result": ..., "time": ...}` or `{"error": ...,
    /// "error_description": ...}`.
    pub(super) fn into_answer(self) -> Answer {
        match self {
            Reply::Ok(result) => answer(200, &json!({ "result": result, "time": time_block() })),
            Reply::Err {
                status,
                code,
                description,
            } => answer(
                status,
                &json!({ "error": code, "error_description": description }),
            ),
        }
    }
}

fn ok(result: Value) -> Reply {
    Reply::Ok(result)
}

fn error(status: u16, code: &str, description: &str) -> Reply {
    Reply::Err {
        status,
        code: code.to_owned(),
        description: description.to_owned(),
    }
}

/// The most commands a batch takes (apidocs "How to Execute Batch Requests").
const MAX_BATCH: usize = 50;

/// A map as PHP's `json_encode` writes an array: `[]` when empty.
fn php_map(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => matches!(s.as_str(), "1" | "Y" | "y" | "true"),
        _ => false,
    }
}

/// `batch` (apidocs "How to Execute Batch Requests"): `cmd` maps keys to `method?query`
/// (the query PHP-style, as a call's URL would carry it); each command runs with the
/// batch's `auth` through the same methods as a call alone, one after the other (a list in
/// its order, an object in the order serde_json keeps its keys: sorted); `halt` stops at
/// the first error. Empty parts of the answer are `[]`, as PHP writes them. More than 50 commands is
/// `400 ERROR_BATCH_LENGTH_EXCEEDED`, a nested batch `ERROR_BATCH_METHOD_NOT_ALLOWED`
/// (codes of Bitrix24's rest module; the page says only that both are not allowed).
/// `$result[...]` references are not substituted.
fn batch(s: &mut State, domain: &str, params: &Value, auth: &str) -> Reply {
    let commands: Vec<(String, String)> = match params.get("cmd") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), text_of(Some(v)).unwrap_or_default()))
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), text_of(Some(v)).unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    };
    if commands.len() > MAX_BATCH {
        return error(
            400,
            "ERROR_BATCH_LENGTH_EXCEEDED",
            "Max batch length exceeded",
        );
    }
    let halt = truthy(params.get("halt"));
    let (mut results, mut errors, mut times) = (Map::new(), Map::new(), Map::new());
    for (key, command) in commands {
        let (method, query) = command.split_once('?').unwrap_or((command.as_str(), ""));
        let method = method.trim().trim_end_matches(".json").to_owned();
        let mut sub = form_to_json(query);
        if let Some(m) = sub.as_object_mut() {
            m.remove("auth");
        }
        let reply = dispatch(s, domain, &method, &sub, Some(auth), true);
        s.ran += 1;
        let order = s.ran;
        s.batch_commands.push(RecordedCall {
            order,
            domain: domain.to_owned(),
            method,
            params: sub,
            auth: Some(auth.to_owned()),
            form: true,
            status: reply.status(),
            batch_key: Some(key.clone()),
        });
        match reply {
            Reply::Ok(result) => {
                results.insert(key.clone(), result);
                times.insert(key, time_block());
            }
            Reply::Err {
                code, description, ..
            } => {
                errors.insert(
                    key,
                    json!({ "error": code, "error_description": description }),
                );
                if halt {
                    break;
                }
            }
        }
    }
    ok(json!({
        "result": php_map(results),
        "result_error": php_map(errors),
        "result_total": [],
        "result_next": [],
        "result_time": php_map(times),
    }))
}

/// `im.dialog.messages.get` (apidocs "Get the list of recent messages"): `DIALOG_ID`
/// `chat<ID>` of a chat of this portal; the messages the fake received in it, each with
/// `params.CONNECTOR_MID = [<external message id>]`, newest first. `LIMIT` defaults to 20
/// (at most 50 here); `LAST_ID` selects the messages before that id, `FIRST_ID` those after
/// it (the oldest `LIMIT` of them; `FIRST_ID` wins when both are given). A missing
/// `DIALOG_ID` is `DIALOG_ID_EMPTY`, a dialog the portal does not have `ACCESS_ERROR`.
fn dialog_messages(s: &mut State, domain: &str, params: &Value) -> Reply {
    let Some(dialog) = text_of(params.get("DIALOG_ID")) else {
        return error(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty");
    };
    let portal = s.portals.get(domain).expect("checked by auth");
    let chat_id = dialog
        .strip_prefix("chat")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|id| portal.chats.values().any(|(_, chat)| chat == id));
    let Some(chat_id) = chat_id else {
        return error(
            400,
            "ACCESS_ERROR",
            "You do not have access to the specified dialog",
        );
    };
    let number = |k: &str| text_of(params.get(k)).and_then(|v| v.parse::<u64>().ok());
    let limit = number("LIMIT").filter(|l| *l > 0).unwrap_or(20).min(50) as usize;
    let in_chat = s
        .messages
        .iter()
        .filter(|m| m.domain == domain && m.chat_id == chat_id);
    let mut picked: Vec<&ReceivedMessage> = match (number("FIRST_ID"), number("LAST_ID")) {
        (Some(first), _) => {
            let mut newer: Vec<_> = in_chat.filter(|m| m.message_id > first).collect();
            newer.sort_by_key(|m| m.message_id);
            newer.truncate(limit);
            newer
        }
        (None, last) => {
            let mut older: Vec<_> = in_chat
                .filter(|m| last.is_none_or(|l| m.message_id < l))
                .collect();
            older.sort_by_key(|m| std::cmp::Reverse(m.message_id));
            older.truncate(limit);
            older
        }
    };
    picked.sort_by_key(|m| std::cmp::Reverse(m.message_id));
    let mut users: Vec<u64> = picked.iter().map(|m| m.bitrix_user_id).collect();
    users.sort_unstable();
    users.dedup();
    let messages: Vec<Value> = picked
        .iter()
        .map(|m| {
            json!({
                "id": m.message_id,
                "chat_id": m.chat_id,
                // A message posted on a manager's behalf is that manager's.
                "author_id": manager_of(&m.raw).unwrap_or(m.bitrix_user_id),
                "date": "2026-03-11T13:53:13+00:00",
                "text": m.text.clone().unwrap_or_default(),
                "params": if m.external_message_id.is_empty() {
                    Value::Null
                } else {
                    json!({ "CONNECTOR_MID": [m.external_message_id] })
                },
            })
        })
        .collect();
    let users: Vec<Value> = users
        .iter()
        .map(|id| json!({ "id": id, "name": "Guest", "connector": true, "bot": false }))
        .collect();
    ok(json!({ "messages": messages, "users": users, "files": [], "chat_id": chat_id }))
}

const OK_TRUE_METHODS: &[&str] = &[
    "imconnector.register",
    "imconnector.unregister",
    "imconnector.activate",
    "imconnector.deactivate",
    "imconnector.connector.data.set",
    "event.bind",
    "event.unbind",
];

/// Runs one REST method for `domain` (auth, then the method), as a call alone or as a
/// command of a batch (`in_batch`: no nested batch).
pub(super) fn dispatch(
    s: &mut State,
    domain: &str,
    method: &str,
    params: &Value,
    auth: Option<&str>,
    in_batch: bool,
) -> Reply {
    let Some(auth) = auth.filter(|a| !a.is_empty()) else {
        return error(401, "NO_AUTH_FOUND", "Wrong authorization data");
    };
    let Some(portal) = s.portals.get(domain) else {
        return error(
            401,
            "invalid_token",
            "The access token provided is invalid.",
        );
    };
    // Who calls: the installing admin (the application's own tokens) or a user whose page
    // token this is.
    let caller: (u64, String, bool);
    if auth == portal.access {
        if portal.access_expired {
            return error(
                401,
                "expired_token",
                "The access token provided has expired.",
            );
        }
        caller = (INSTALLER_USER_ID, "Admin Installer".into(), true);
    } else if let Some(user) = portal.user_tokens.get(auth) {
        if user.expired {
            return error(
                401,
                "expired_token",
                "The access token provided has expired.",
            );
        }
        caller = (user.id, user.name.clone(), user.admin);
    } else if portal.retired_access.iter().any(|t| t == auth) {
        return error(
            401,
            "expired_token",
            "The access token provided has expired.",
        );
    } else {
        return error(
            401,
            "invalid_token",
            "The access token provided is invalid.",
        );
    }

    let needs_messages = method.starts_with("imconnector.send.")
        || method == "imconnector.update.messages"
        || method == "imconnector.delete.messages";
    if needs_messages {
        for arg in ["CONNECTOR", "LINE", "MESSAGES"] {
            let present = match params.get(arg) {
                None | Some(Value::Null) => false,
                Some(Value::String(v)) => !v.is_empty(),
                Some(_) => true,
            };
            if !present {
                return error(
                    400,
                    "ERROR_ARGUMENT",
                    &format!("Argument '{arg}' is null or empty"),
                );
            }
        }
        if !params["MESSAGES"].is_array() {
            return error(
                400,
                "ERROR_ARGUMENT",
                "The value of an argument 'MESSAGES' must be of type array",
            );
        }
    }
    if let Some(reply) = super::messageservice::call(s, domain, method, params) {
        return reply;
    }
    if let Some(reply) = super::open_lines::call(s, domain, method, params) {
        return reply;
    }
    if let Some(reply) =
        super::chat_placements::call(s, domain, method, params, (caller.0, caller.2))
    {
        return reply;
    }
    match method {
        "imconnector.register" => register(s, domain, params),
        "imconnector.activate" => activate(s, domain, params),
        "imconnector.connector.data.set" => connector_data(s, domain, params),
        "event.bind" => bind(s, domain, params),
        // imconnector.unregister: the connector `ID` is gone from the portal.
        "imconnector.unregister" => {
            let id = text_of(params.get("ID"))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let portal = s.portals.get_mut(domain).expect("checked by auth");
            portal.connectors.remove(&id);
            ok(json!(true))
        }
        "event.unbind" => {
            let event = text_of(params.get("event"))
                .unwrap_or_default()
                .to_ascii_uppercase();
            let handler = text_of(params.get("handler")).unwrap_or_default();
            let portal = s.portals.get_mut(domain).expect("checked by auth");
            let before = portal.bindings.len();
            portal
                .bindings
                .retain(|(e, h)| !(e == &event && h == &handler));
            ok(json!({ "count": before - portal.bindings.len() }))
        }
        // user.current (api-reference/user/user-current.md): the token's user, `ID` a
        // string.
        "user.current" => {
            let (id, name, _) = &caller;
            let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
            ok(json!({
                "ID": id.to_string(), "ACTIVE": true, "NAME": first, "LAST_NAME": last,
                "EMAIL": "", "IS_ONLINE": "Y", "UF_DEPARTMENT": [1]
            }))
        }
        // user.admin (api-reference/common/users/user-admin.md): a boolean.
        "user.admin" => ok(json!(caller.2)),
        "app.info" => ok(json!({
            "ID": 17,
            "CODE": "local.5f0c0a1b2c3d4e.12345678",
            "VERSION": 1,
            "STATUS": "L",
            "INSTALLED": true,
            "PAYMENT_EXPIRED": "N",
            "DAYS": null,
            "LANGUAGE_ID": "en",
            "LICENSE": "en_project"
        })),
        "imconnector.send.messages" => send_messages(s, domain, params),
        "im.dialog.messages.get" => dialog_messages(s, domain, params),
        "batch" if in_batch => error(
            400,
            "ERROR_BATCH_METHOD_NOT_ALLOWED",
            "Method is not allowed for batch usage",
        ),
        "batch" => batch(s, domain, params, auth),
        "imconnector.send.status.delivery" | "imconnector.send.status.reading" => {
            ok(json!({ "SUCCESS": true, "DATA": [] }))
        }
        "imconnector.update.messages" | "imconnector.delete.messages" => {
            let results: Vec<Value> = params["MESSAGES"]
                .as_array()
                .map(|a| a.iter().map(|_| json!({ "SUCCESS": true })).collect())
                .unwrap_or_default();
            ok(json!({ "SUCCESS": true, "DATA": { "RESULT": results } }))
        }
        m if OK_TRUE_METHODS.contains(&m) => ok(json!(true)),
        _ => error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
    }
}

fn register(s: &mut State, domain: &str, params: &Value) -> Reply {
    let id = text_of(params.get("ID")).unwrap_or_default();
    if id.is_empty() {
        return ok(json!({"result": false, "error": "CONNECTOR_ID_REQUIRED",
            "error_description": "Connector ID is required"}));
    }
    if id.contains('.') {
        return ok(json!({"result": false, "error": "REGISTRATION_ERROR_POINT",
            "error_description": "The connector ID must not contain a point"}));
    }
    let icon = params
        .get("ICON")
        .and_then(|i| text_of(i.get("DATA_IMAGE")));
    let name = text_of(params.get("NAME"));
    let handler = text_of(params.get("PLACEMENT_HANDLER"));
    if name.is_none() || icon.is_none() || handler.is_none() {
        return ok(json!({"result": false, "error": "REGISTRATION_ERROR",
            "error_description": "NAME, ICON[DATA_IMAGE] and PLACEMENT_HANDLER are required"}));
    }
    let portal = s.portals.get_mut(domain).expect("checked by auth");
    portal
        .connectors
        .entry(id.to_ascii_lowercase())
        .or_default()
        .registration = params.clone();
    ok(json!({ "result": true }))
}

fn activate(s: &mut State, domain: &str, params: &Value) -> Reply {
    let (Some(id), Some(line)) = (
        text_of(params.get("CONNECTOR")),
        text_of(params.get("LINE")),
    ) else {
        return error(
            400,
            "ERROR_ARGUMENT",
            "Argument 'CONNECTOR' or 'LINE' is null or empty",
        );
    };
    // imconnector-activate.md: `ACTIVE` is "1 or 0"; `LINE` an open line id.
    let active = match text_of(params.get("ACTIVE")).as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => return error(400, "ERROR_ARGUMENT", "Argument 'ACTIVE' must be 1 or 0"),
    };
    if line.parse::<u64>().map_or(true, |l| l == 0) {
        return error(
            400,
            "ERROR_ARGUMENT",
            "Argument 'LINE' is not an open line id",
        );
    }
    let portal = s.portals.get_mut(domain).expect("checked by auth");
    let Some(connector) = portal.connectors.get_mut(&id) else {
        return error(
            400,
            "CONNECTOR_NOT_FOUND",
            "The connector is not registered",
        );
    };
    connector.active_lines.retain(|l| l != &line);
    if active {
        connector.active_lines.push(line);
    }
    ok(json!(true))
}

fn connector_data(s: &mut State, domain: &str, params: &Value) -> Reply {
    let (Some(id), Some(line)) = (
        text_of(params.get("CONNECTOR")),
        text_of(params.get("LINE")),
    ) else {
        return error(
            400,
            "ERROR_ARGUMENT",
            "Argument 'CONNECTOR' or 'LINE' is null or empty",
        );
    };
    // imconnector-connector-data-set.md: `DATA` an object, written as a whole; `LINE` an
    // integer.
    let Some(data) = params.get("DATA").filter(|d| d.is_object()) else {
        return error(400, "ERROR_ARGUMENT", "Argument 'DATA' is null or empty");
    };
    if line.parse::<u64>().map_or(true, |l| l == 0) {
        return error(
            400,
            "ERROR_ARGUMENT",
            "Argument 'LINE' is not an open line id",
        );
    }
    let portal = s.portals.get_mut(domain).expect("checked by auth");
    let Some(connector) = portal.connectors.get_mut(&id) else {
        return error(
            400,
            "CONNECTOR_NOT_FOUND",
            "The connector is not registered",
        );
    };
    connector.data.insert(line, data.clone());
    ok(json!(true))
}

fn bind(s: &mut State, domain: &str, params: &Value) -> Reply {
    let event = text_of(params.get("event"))
        .or_else(|| text_of(params.get("EVENT")))
        .unwrap_or_default()
        .to_ascii_uppercase();
    let handler = text_of(params.get("handler"))
        .or_else(|| text_of(params.get("HANDLER")))
        .unwrap_or_default();
    if event.is_empty() || handler.is_empty() {
        return error(400, "ERROR_ARGUMENT", "event and handler are required");
    }
    let portal = s.portals.get_mut(domain).expect("checked by auth");
    if portal
        .bindings
        .iter()
        .any(|(e, h)| e == &event && h == &handler)
    {
        return error(400, "ERROR_CORE", "Handler already binded");
    }
    portal.bindings.push((event, handler));
    ok(json!(true))
}

/// The manager a `MESSAGES` element is posted as (`message.user_id`), when it names one.
pub fn manager_of(element: &Value) -> Option<u64> {
    match &element["message"]["user_id"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

fn send_messages(s: &mut State, domain: &str, params: &Value) -> Reply {
    let connector = text_of(params.get("CONNECTOR")).unwrap_or_default();
    let line = text_of(params.get("LINE")).unwrap_or_default();
    let messages = params["MESSAGES"].as_array().cloned().unwrap_or_default();
    if messages.iter().any(|m| {
        !(m.get("user").is_some_and(Value::is_object)
            && m.get("message").is_some_and(Value::is_object)
            && m.get("chat").is_some_and(Value::is_object))
    }) {
        return error(
            400,
            "ERROR_ARGUMENT",
            "The incorrect structure of a message inside MESSAGES parameter",
        );
    }
    let mut results = Vec::new();
    for m in messages {
        let user_id = text_of(m["user"].get("id"));
        let chat_ext = text_of(m["chat"].get("id"));
        let message_ext = text_of(m["message"].get("id"));
        let text = text_of(m["message"].get("text"));
        let files = m["message"]
            .get("files")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (Some(user_id), Some(chat_ext)) = (user_id, chat_ext) else {
            results.push(json!({
                "SUCCESS": false,
                "ERRORS": ["Not all required data was provided"]
            }));
            continue;
        };
        // `message.user_id`: "the ID of the manager in Bitrix24" (an integer; a string of
        // digits inside a form-encoded `batch`); the message is then posted on that manager's
        // behalf (imconnector-send-messages.md).
        if m["message"].get("user_id").is_some() && manager_of(&m).is_none() {
            return error(400, "ERROR_ARGUMENT", "message.user_id must be an integer");
        }
        if text.is_none() && files.is_empty() {
            results.push(json!({
                "user": user_id,
                "SUCCESS": false,
                "ERRORS": ["Not all required data was provided"]
            }));
            continue;
        }
        let known_user = s.portals[domain].users.get(&user_id).copied();
        let bitrix_user = match known_user {
            Some(u) => u,
            None => {
                let u = s.next();
                let portal = s.portals.get_mut(domain).expect("checked by auth");
                portal.users.insert(user_id.clone(), u);
                u
            }
        };
        // Bitrix24's own code (decision 0068): Open Lines keys the dialog by its user code
        // `connector|line|chat.id|<Bitrix24 user>` (imopenlines `Connector::getUserCode`) and
        // posts every incoming message with `Im::addMessage` before tagging it with
        // `CONNECTOR_MID`, with no check of `message.id`. So a repeated post lands in the
        // chat the first one opened, as a second message. The relay gives each conversation
        // its own external user and chat id, so line and chat id are the same key here.
        let key = (line.clone(), chat_ext.clone());
        let known_chat = s.portals[domain].chats.get(&key).copied();
        let (session_id, chat_id) = match known_chat {
            Some(ids) => ids,
            None => {
                let ids = (s.next(), s.next());
                let portal = s.portals.get_mut(domain).expect("checked by auth");
                portal.chats.insert(key, ids);
                ids
            }
        };
        let message_id = s.next();
        s.messages.push(ReceivedMessage {
            domain: domain.to_owned(),
            connector: connector.clone(),
            line: line.clone(),
            external_user_id: user_id.clone(),
            external_chat_id: chat_ext.clone(),
            external_message_id: message_ext.clone().unwrap_or_default(),
            text: text.clone(),
            files: files.clone(),
            bitrix_user_id: bitrix_user,
            session_id,
            chat_id,
            message_id,
            raw: m.clone(),
        });
        let mut chat = json!({ "id": chat_ext });
        if let Some(name) = text_of(m["chat"].get("name")) {
            chat["name"] = Value::String(name);
        }
        if let Some(url) = text_of(m["chat"].get("url")) {
            chat["description"] = Value::String(format!("Link to the original post: {url}"));
        }
        let mut extra = Map::new();
        if m["user"].get("skip_phone_validate").and_then(Value::as_str) == Some("Y") {
            extra.insert("skip_phone_validate".into(), json!("Y"));
        }
        if m["message"].get("disable_crm").and_then(Value::as_str) == Some("Y") {
            extra.insert("disable_tracker".into(), json!("Y"));
        }
        results.push(json!({
            "user": bitrix_user.to_string(),
            "message": {
                "id": message_ext,
                "date": {},
                "text": text.unwrap_or_default(),
                "files": files
            },
            "chat": chat,
            "extra": extra,
            "SUCCESS": true,
            "session": { "ID": session_id.to_string(), "CHAT_ID": chat_id.to_string() }
        }));
    }
    ok(json!({ "SUCCESS": true, "DATA": { "RESULT": results } }))
}
