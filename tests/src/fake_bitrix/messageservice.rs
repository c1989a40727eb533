//! The portals' message providers (api-reference/messageservice/):
//!
//! - `messageservice.sender.add`: `CODE` (`a-z A-Z 0-9 . - _`), `TYPE` (`SMS` only),
//!   `HANDLER`, `NAME` required; `ERROR_SENDER_VALIDATION_FAILURE` ("Empty sender code!",
//!   "Wrong sender code!", "Empty sender NAME!", "Empty sender message TYPE!", "Unknown sender
//!   message TYPE!"), `ERROR_SENDER_ALREADY_INSTALLED` for a code registered before; `true`.
//! - `messageservice.sender.delete`: `CODE`; `ERROR_SENDER_NOT_FOUND`; `true`.
//! - `messageservice.sender.list`: the codes.
//! - `messageservice.message.status.update`: `CODE`, `MESSAGE_ID`, `STATUS` (`queued`, `sent`,
//!   `delivered`, `undelivered`, `failed`); `ERROR_MESSAGE_NOT_FOUND` for a message the portal
//!   never handed to the provider, `ERROR_MESSAGE_STATUS_INCORRECT`; `true`.
//!
//! [`FakeBitrix::provider_call`] builds what the portal posts to a provider's `HANDLER`
//! ("What Comes to the Handler") and remembers the message id it handed out.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::form::php_form;
use super::rest::Reply;
use super::{now_secs, text_of, FakeBitrix, State};

/// The providers and their messages, of every portal.
#[derive(Default)]
pub(super) struct Providers {
    /// (domain, code) → the `sender.add` parameters.
    registered: HashMap<(String, String), Value>,
    /// message id → (domain, code, statuses reported, in order).
    messages: HashMap<String, (String, String, Vec<String>)>,
}

const STATUSES: &[&str] = &["queued", "sent", "delivered", "undelivered", "failed"];

fn err(code: &str, description: &str) -> Reply {
    Reply::Err {
        status: 400,
        code: code.to_owned(),
        description: description.to_owned(),
    }
}

/// A `messageservice.*` method, or None for other methods.
pub(super) fn call(s: &mut State, domain: &str, method: &str, params: &Value) -> Option<Reply> {
    let code = text_of(params.get("CODE")).unwrap_or_default();
    let key = (domain.to_owned(), code.clone());
    let p = &mut s.providers;
    Some(match method {
        "messageservice.sender.add" => {
            if code.is_empty() {
                return Some(err("ERROR_SENDER_VALIDATION_FAILURE", "Empty sender code!"));
            }
            let valid = code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !valid {
                return Some(err("ERROR_SENDER_VALIDATION_FAILURE", "Wrong sender code!"));
            }
            if text_of(params.get("NAME")).is_none() {
                return Some(err("ERROR_SENDER_VALIDATION_FAILURE", "Empty sender NAME!"));
            }
            match text_of(params.get("TYPE")).as_deref() {
                None => {
                    return Some(err(
                        "ERROR_SENDER_VALIDATION_FAILURE",
                        "Empty sender message TYPE!",
                    ))
                }
                Some("SMS") => {}
                Some(_) => {
                    return Some(err(
                        "ERROR_SENDER_VALIDATION_FAILURE",
                        "Unknown sender message TYPE!",
                    ))
                }
            }
            if text_of(params.get("HANDLER")).is_none() {
                return Some(err("ERROR_SENDER_VALIDATION_FAILURE", "Empty data!"));
            }
            if p.registered.contains_key(&key) {
                return Some(err(
                    "ERROR_SENDER_ALREADY_INSTALLED",
                    "Sender already installed!",
                ));
            }
            p.registered.insert(key, params.clone());
            Reply::Ok(json!(true))
        }
        "messageservice.sender.delete" => {
            if p.registered.remove(&key).is_none() {
                return Some(err("ERROR_SENDER_NOT_FOUND", "Sender not found!"));
            }
            Reply::Ok(json!(true))
        }
        "messageservice.sender.list" => {
            let mut codes: Vec<&String> = p
                .registered
                .keys()
                .filter(|(d, _)| d == domain)
                .map(|(_, c)| c)
                .collect();
            codes.sort();
            Reply::Ok(json!(codes))
        }
        "messageservice.message.status.update" => {
            let id = text_of(params.get("MESSAGE_ID")).unwrap_or_default();
            let status = text_of(params.get("STATUS")).unwrap_or_default();
            if !STATUSES.contains(&status.as_str()) {
                return Some(err(
                    "ERROR_MESSAGE_STATUS_INCORRECT",
                    "Message status incorrect!",
                ));
            }
            match p.messages.get_mut(&id) {
                Some((d, c, statuses)) if *d == domain && *c == code => {
                    statuses.push(status);
                    Reply::Ok(json!(true))
                }
                _ => err("ERROR_MESSAGE_NOT_FOUND", "Message not found!"),
            }
        }
        _ => return None,
    })
}

impl FakeBitrix {
    /// The providers registered on `domain`: code → `sender.add` parameters.
    pub fn providers(&self, domain: &str) -> HashMap<String, Value> {
        self.state()
            .providers
            .registered
            .iter()
            .filter(|((d, _), _)| d == domain)
            .map(|((_, c), v)| (c.clone(), v.clone()))
            .collect()
    }

    /// The statuses reported for the provider message `message_id`, in order.
    pub fn provider_statuses(&self, message_id: &str) -> Vec<String> {
        self.state()
            .providers
            .messages
            .get(message_id)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_default()
    }

    /// What `domain` posts to provider `code`'s handler for a CRM robot's message `body` to
    /// `to` (with `application_token`); the message id the portal gave it and the form body.
    pub fn provider_call(
        &self,
        domain: &str,
        code: &str,
        to: &str,
        body: &str,
        application_token: &str,
    ) -> (String, String) {
        let tokens = self.valid_tokens_for(domain);
        let id = {
            let mut s = self.state();
            let n = s.next();
            let id = format!(
                "{:032x}",
                0x6557_5980_fa53_1ac2_84c2_ee68_0000_0000u128 + n as u128
            );
            s.providers
                .messages
                .insert(id.clone(), (domain.to_owned(), code.to_owned(), Vec::new()));
            id
        };
        let ts = now_secs() as i64;
        let form = php_form(&json!({
            "workflow_id": "63a1f0b6a0d2e5.12345678",
            "document_id": ["crm", "CCrmDocumentDeal", "DEAL_42"],
            "document_type": ["crm", "CCrmDocumentDeal", "DEAL"],
            "module_id": "bizproc",
            "properties": {"phone_number": to, "message_text": body},
            "type": "SMS",
            "code": code,
            "message_id": id,
            "message_to": to,
            "message_body": body,
            "ts": ts,
            "auth": {
                "access_token": tokens.access_token,
                "expires": ts + 3600,
                "expires_in": 3600,
                "scope": "imconnector,imopenlines,messageservice",
                "domain": domain,
                "server_endpoint": "https://oauth.bitrix.info/rest/",
                "status": "L",
                "client_endpoint": format!("https://{domain}/rest/"),
                "member_id": tokens.member_id,
                "user_id": 1,
                "application_token": application_token
            }
        }));
        (id, form)
    }
}
