//! The bodies Bitrix24 posts to an application: the install wizard's form, the install
//! callback and the events, form-encoded like PHP's `http_build_query`.

use serde_json::{json, Value};

use super::form::php_form;
use super::{now_secs, FakeBitrix};

/// One operator message of an `ONIMCONNECTORMESSAGE*` event.
#[derive(Debug, Clone, Default)]
pub struct EventMessage {
    pub im_chat_id: u64,
    pub im_message_id: u64,
    /// Our chat id (the conversation id).
    pub chat_id: String,
    pub user_id: u64,
    pub text: Option<String>,
    /// `(name, link)` per file.
    pub files: Vec<(String, String)>,
    /// External ids (`message[id]`) for updates and deletes.
    pub external_ids: Vec<String>,
}

/// The bodies Bitrix24 posts to an application, for a portal (apidocs shapes; see each
/// method). `auth` carries the portal's `domain`, `member_id`, current access token and the
/// given application token.
#[derive(Debug, Clone)]
pub struct EventBody {
    pub domain: String,
    pub member_id: String,
    pub access_token: Option<String>,
    pub application_token: Option<String>,
    pub ts: i64,
}

impl EventBody {
    /// For `domain`'s current tokens in `fake`.
    pub fn for_portal(fake: &FakeBitrix, domain: &str, application_token: Option<&str>) -> Self {
        let tokens = fake.valid_tokens_for(domain);
        EventBody {
            domain: domain.to_owned(),
            member_id: tokens.member_id,
            access_token: Some(tokens.access_token),
            application_token: application_token.map(str::to_owned),
            ts: now_secs() as i64,
        }
    }

    fn auth(&self, with_tokens: bool) -> Value {
        let mut auth = json!({
            "domain": self.domain,
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": format!("https://{}/rest/", self.domain),
            "member_id": self.member_id,
        });
        if with_tokens {
            if let Some(t) = &self.access_token {
                auth["access_token"] = json!(t);
                auth["expires"] = json!(self.ts + 3600);
                auth["expires_in"] = json!(3600);
                auth["scope"] = json!("imconnector,imopenlines");
                auth["user_id"] = json!(1);
            }
        }
        if let Some(t) = &self.application_token {
            auth["application_token"] = json!(t);
        }
        auth
    }

    fn event(&self, name: &str, data: Value, with_tokens: bool) -> String {
        php_form(&json!({
            "event": name,
            "event_handler_id": 555,
            "data": data,
            "ts": self.ts,
            "auth": self.auth(with_tokens),
        }))
    }

    /// The installation wizard's POST (apidocs "Simplified Method for Obtaining OAuth 2.0
    /// Tokens"): `DOMAIN`, `PROTOCOL`, `LANG`, `APP_SID`, `AUTH_ID`, `AUTH_EXPIRES`,
    /// `REFRESH_ID`, `member_id`, `status`.
    pub fn install_wizard(fake: &FakeBitrix, domain: &str) -> String {
        let t = fake.valid_tokens_for(domain);
        php_form(&json!({
            "DOMAIN": domain,
            "PROTOCOL": "1",
            "LANG": "en",
            "APP_SID": "dd8cec11e347088fe87c44870a9f1dba",
            "AUTH_ID": t.access_token,
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": t.refresh_token,
            "member_id": t.member_id,
            "status": "L",
            "PLACEMENT": "DEFAULT",
            "PLACEMENT_OPTIONS": "{\"any\":\"1/\"}"
        }))
    }

    /// The connector settings page as Bitrix24 opens it (apidocs
    /// api-reference/widgets/setting-connector.md, "What the Handler Receives"): the standard
    /// widget data with the user's `AUTH_ID`, `PLACEMENT=SETTING_CONNECTOR` and
    /// `PLACEMENT_OPTIONS` as a JSON string (`LINE` a string, the flags booleans).
    pub fn setting_connector(
        domain: &str,
        member_id: &str,
        auth_id: &str,
        connector: &str,
        line: u64,
        lang: &str,
    ) -> String {
        let options = json!({
            "CONNECTOR": connector,
            "LINE": line.to_string(),
            "STATUS": false,
            "ACTIVE_STATUS": true,
            "CONNECTION_STATUS": false,
            "REGISTER_STATUS": false,
            "ERROR_STATUS": false,
            "URI": format!("/contact_center/connector/?ID={connector}&IFRAME=Y&IFRAME_TYPE=SIDE_SLIDER"),
        });
        php_form(&json!({
            "DOMAIN": domain,
            "PROTOCOL": "1",
            "LANG": lang,
            "APP_SID": "0123456789abcdef0123456789abcdef",
            "AUTH_ID": auth_id,
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "50e00aa340631fcd00005a4b00000001f0f1071111116580a5b83c2de639ef28c12",
            "SERVER_ENDPOINT": "https://oauth.bitrix.info/rest/",
            "member_id": member_id,
            "status": "L",
            "PLACEMENT": "SETTING_CONNECTOR",
            "PLACEMENT_OPTIONS": options.to_string(),
        }))
    }

    /// What a chat placement's handler receives (api-reference/widgets/im/textarea.md: the
    /// standard widget data, `PLACEMENT=IM_TEXTAREA`; `PLACEMENT_OPTIONS` names the chat as
    /// Bitrix24's im module does, `dialogId` `chat<ID>`).
    pub fn im_textarea(domain: &str, member_id: &str, auth_id: &str, chat_id: u64) -> String {
        php_form(&json!({
            "DOMAIN": domain,
            "PROTOCOL": "1",
            "LANG": "en",
            "APP_SID": "99c80eff6378726287350416ee5fef0",
            "AUTH_ID": auth_id,
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "50e00aa340631fcd00005a4b00000001f0f1071111116580a5b83c2de639ef28c12",
            "member_id": member_id,
            "status": "L",
            "PLACEMENT": "IM_TEXTAREA",
            "PLACEMENT_OPTIONS": json!({"dialogId": format!("chat{chat_id}")}).to_string(),
        }))
    }

    /// The installation callback (application "uses only API"): the `ONAPPINSTALL` shape
    /// with both tokens and the application token.
    pub fn install_callback(fake: &FakeBitrix, domain: &str, application_token: &str) -> String {
        let t = fake.valid_tokens_for(domain);
        let body = EventBody::for_portal(fake, domain, Some(application_token));
        let mut auth = body.auth(true);
        auth["refresh_token"] = json!(t.refresh_token);
        php_form(&json!({
            "event": "ONAPPINSTALL",
            "data": {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
            "ts": body.ts,
            "auth": auth,
        }))
    }

    /// `ONAPPINSTALL` (apidocs OnAppInstall): `data[VERSION]`, `data[ACTIVE]`,
    /// `data[INSTALLED]`, `data[LANGUAGE_ID]`; `auth` with the access token when this body
    /// has one.
    pub fn app_install(&self) -> String {
        self.event(
            "ONAPPINSTALL",
            json!({"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"}),
            true,
        )
    }

    /// `ONAPPUNINSTALL` (apidocs): `data[LANGUAGE_ID]`, `data[CLEAN]`; `auth` without tokens.
    pub fn app_uninstall(&self, clean: bool) -> String {
        self.event(
            "ONAPPUNINSTALL",
            json!({"LANGUAGE_ID": "en", "CLEAN": u8::from(clean)}),
            false,
        )
    }

    fn messages(messages: &[EventMessage], with_ids: bool) -> Value {
        Value::Array(
            messages
                .iter()
                .map(|m| {
                    let mut message = json!({ "user_id": m.user_id });
                    if let Some(t) = &m.text {
                        message["text"] = json!(t);
                    }
                    if !m.files.is_empty() {
                        message["files"] = Value::Array(
                            m.files
                                .iter()
                                .map(|(name, link)| json!({"name": name, "link": link, "type": "file"}))
                                .collect(),
                        );
                    }
                    if with_ids {
                        message["id"] = json!(m.external_ids);
                    }
                    json!({
                        "im": {"chat_id": m.im_chat_id, "message_id": m.im_message_id},
                        "message": message,
                        "chat": {"id": m.chat_id},
                    })
                })
                .collect(),
        )
    }

    /// `ONIMCONNECTORMESSAGEADD` (apidocs): `data[CONNECTOR]`, `data[LINE]`,
    /// `data[MESSAGES][n][im|message|chat]`.
    pub fn message_add(&self, connector: &str, line: u64, messages: &[EventMessage]) -> String {
        self.event(
            "ONIMCONNECTORMESSAGEADD",
            json!({"CONNECTOR": connector, "LINE": line, "MESSAGES": Self::messages(messages, false)}),
            true,
        )
    }

    /// `ONIMCONNECTORMESSAGEUPDATE`: as add, with `message[id]` a list of external ids.
    pub fn message_update(&self, connector: &str, line: u64, messages: &[EventMessage]) -> String {
        self.event(
            "ONIMCONNECTORMESSAGEUPDATE",
            json!({"CONNECTOR": connector, "LINE": line, "MESSAGES": Self::messages(messages, true)}),
            true,
        )
    }

    /// `ONIMCONNECTORMESSAGEDELETE`: `message[id]` the external id.
    pub fn message_delete(&self, connector: &str, line: u64, messages: &[EventMessage]) -> String {
        let list: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "im": {"chat_id": m.im_chat_id, "message_id": m.im_message_id},
                    "message": {"id": m.external_ids.first().cloned().unwrap_or_default()},
                    "chat": {"id": m.chat_id},
                })
            })
            .collect();
        self.event(
            "ONIMCONNECTORMESSAGEDELETE",
            json!({"CONNECTOR": connector, "LINE": line, "MESSAGES": list}),
            true,
        )
    }

    /// `ONIMCONNECTORSTATUSDELETE` (apidocs): `data[connector]`, `data[line]`.
    pub fn status_delete(&self, connector: &str, line: u64) -> String {
        self.event(
            "ONIMCONNECTORSTATUSDELETE",
            json!({"connector": connector, "line": line}),
            true,
        )
    }

    /// `ONIMCONNECTORLINEDELETE` (apidocs): `data` is the line id.
    pub fn line_delete(&self, line: u64) -> String {
        self.event("ONIMCONNECTORLINEDELETE", json!(line), true)
    }
}
