//! A loopback fake of Bitrix24: portals' REST APIs at `/{domain}/rest/{method}` and the
//! OAuth server at `/oauth/token/`, answering in the formats apidocs.bitrix24.com documents.
//!
//! - Accepts JSON bodies and form bodies (PHP-style `MESSAGES[0][user][id]=...`, as Bitrix24's
//!   own SDKs send), and parameters in the query string.
//! - Checks `auth` against the portal's current access token: a missing token is `401
//!   NO_AUTH_FOUND`, an expired or superseded one `401 expired_token`, anything else `401
//!   invalid_token`.
//! - `imconnector.send.messages` assigns Bitrix24 user ids per external user id, one open line
//!   session and chat id per (line, external chat id) and a message id per message, and
//!   answers `{"SUCCESS": true, "DATA": {"RESULT": [...]}}` as documented.
//! - The OAuth endpoint exchanges the current refresh token for a new pair (the old pair stops
//!   working) and answers `invalid_grant` for any other refresh token.
//! - Programmable: [`FakeBitrix::expire_token`], [`FakeBitrix::revoke_refresh_token`],
//!   [`FakeBitrix::fail_next`] (`QUERY_LIMIT_EXCEEDED`, `OPERATION_TIME_LIMIT`, down, 500).
//! - Records every REST call ([`FakeBitrix::calls`]; `auth` kept apart from the parameters),
//!   every OAuth request, and every message received.
//! - The application set-up methods: `imconnector.register` (answers `{"result": true}` as
//!   the method's result, as Bitrix24's code does; refuses an `ID` with `.`, and a missing
//!   `NAME`, `ICON[DATA_IMAGE]` or `PLACEMENT_HANDLER`), `imconnector.activate`,
//!   `imconnector.connector.data.set` (`true`), `event.bind` (`true`; the same event and
//!   handler again is `400 ERROR_CORE` "Handler already binded", as Bitrix24 answers),
//!   `event.unbind`, `app.info`. The portal's state is readable: [`FakeBitrix::connectors`],
//!   [`FakeBitrix::bindings`].
//! - Builds the bodies Bitrix24 posts to an application ([`EventBody`]): the install
//!   wizard's form, the install callback and the events (`ONAPPINSTALL`,
//!   `ONIMCONNECTORMESSAGEADD`, ...), form-encoded with PHP-style keys like
//!   `http_build_query`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The portal every fake starts with.
pub const FAKE_DOMAIN: &str = "example.bitrix24.com";
/// Its `member_id`.
pub const FAKE_MEMBER_ID: &str = "a223c6b3710f85df22e9377d6c4f7553";
/// The application credentials the fake OAuth server accepts.
pub const FAKE_CLIENT_ID: &str = "local.5f0c0a1b2c3d4e.12345678";
pub const FAKE_CLIENT_SECRET: &str = "FakeClientSecret0123456789abcdefghijklmnopqrstuv";

/// How the next REST calls fail ([`FakeBitrix::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// `503 {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}`.
    QueryLimit,
    /// `429 {"error": "OPERATION_TIME_LIMIT", ...}`.
    OperationTimeLimit,
    /// `503` with an HTML body, as a load balancer in front of a portal that is down.
    Down,
    /// `500 {"error": "INTERNAL_SERVER_ERROR", ...}`.
    InternalError,
    /// `400 {"error": "ERROR_ARGUMENT", ...}`: Bitrix24 refuses this request itself (the
    /// portal is fine; the same message would be refused again).
    ArgumentError,
}

/// One REST call as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub domain: String,
    pub method: String,
    /// The parameters, without `auth`.
    pub params: Value,
    /// The `auth` parameter.
    pub auth: Option<String>,
    /// True when the body was form-encoded rather than JSON.
    pub form: bool,
    /// The HTTP status the fake answered.
    pub status: u16,
}

/// One OAuth request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedOauth {
    pub params: HashMap<String, String>,
    pub status: u16,
}

/// One message accepted by `imconnector.send.messages`.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub domain: String,
    pub connector: String,
    pub line: String,
    pub external_user_id: String,
    pub external_chat_id: String,
    pub external_message_id: String,
    pub text: Option<String>,
    pub files: Vec<Value>,
    pub bitrix_user_id: u64,
    pub session_id: u64,
    pub chat_id: u64,
    pub message_id: u64,
    /// The `MESSAGES` element as received.
    pub raw: Value,
}

/// A portal's current tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub member_id: String,
}

struct Portal {
    member_id: String,
    access: String,
    access_expired: bool,
    refresh: Option<String>,
    retired_access: Vec<String>,
    users: HashMap<String, u64>,
    chats: HashMap<(String, String), (u64, u64)>,
    connectors: HashMap<String, FakeConnector>,
    bindings: Vec<(String, String)>,
}

/// A connector registered on a fake portal, and where it is active.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeConnector {
    /// The `imconnector.register` parameters.
    pub registration: Value,
    /// Lines it is active on.
    pub active_lines: Vec<String>,
    /// `imconnector.connector.data.set` `DATA` per line.
    pub data: HashMap<String, Value>,
}

#[derive(Default)]
struct State {
    base_url: String,
    portals: HashMap<String, Portal>,
    seq: u64,
    failures: VecDeque<FailKind>,
    calls: Vec<RecordedCall>,
    oauth: Vec<RecordedOauth>,
    messages: Vec<ReceivedMessage>,
    /// Portals that answer REST calls only after this long (a hanging portal).
    delays: HashMap<String, std::time::Duration>,
    /// Portals that are down: every REST call answers 503 until they are back.
    down: HashSet<String>,
}

impl State {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn new_pair(&mut self) -> (String, String) {
        let n = self.next();
        (format!("fakeaccess{n:08}x"), format!("fakerefresh{n:08}y"))
    }
}

/// The running fake. Stops accepting connections when dropped.
pub struct FakeBitrix {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeBitrix {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, body: &Value) -> Answer {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn error(status: u16, code: &str, description: &str) -> Answer {
    answer(
        status,
        &json!({ "error": code, "error_description": description }),
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn time_block() -> Value {
    let start = now_secs();
    json!({
        "start": start,
        "finish": start + 0.01,
        "duration": 0.01,
        "processing": 0.005,
        "date_start": "2026-03-11T13:53:13+00:00",
        "date_finish": "2026-03-11T13:53:13+00:00",
        "operating_reset_at": start as u64 + 600,
        "operating": 0.005
    })
}

fn ok(result: Value) -> Answer {
    answer(200, &json!({ "result": result, "time": time_block() }))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
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

/// `a=1&b=2` into pairs, decoded.
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// PHP-style form fields (`MESSAGES[0][user][id]=x`, `a[]=1`) into a JSON object. Objects
/// whose keys are 0..n become arrays.
pub fn form_to_json(body: &str) -> Value {
    fn insert(target: &mut Value, path: &[String], value: String) {
        let Value::Object(map) = target else { return };
        let (head, rest) = match path.split_first() {
            Some(x) => x,
            None => return,
        };
        let key = if head.is_empty() {
            map.len().to_string()
        } else {
            head.clone()
        };
        if rest.is_empty() {
            map.insert(key, Value::String(value));
            return;
        }
        let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        insert(child, rest, value);
    }
    fn arrays(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let n = map.len();
                let is_list = n > 0 && (0..n).all(|i| map.contains_key(&i.to_string()));
                if is_list {
                    let mut map = map;
                    Value::Array(
                        (0..n)
                            .map(|i| arrays(map.remove(&i.to_string()).unwrap_or(Value::Null)))
                            .collect(),
                    )
                } else {
                    Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
                }
            }
            other => other,
        }
    }
    let mut root = Value::Object(Map::new());
    for (k, v) in parse_pairs(body) {
        let (base, mut rest) = match k.find('[') {
            Some(i) => (k[..i].to_owned(), &k[i..]),
            None => (k.clone(), ""),
        };
        let mut path = vec![base];
        while let Some(stripped) = rest.strip_prefix('[') {
            match stripped.find(']') {
                Some(end) => {
                    path.push(stripped[..end].to_owned());
                    rest = &stripped[end + 1..];
                }
                None => break,
            }
        }
        insert(&mut root, &path, v);
    }
    arrays(root)
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl FakeBitrix {
    /// Starts the fake on `127.0.0.1` (a free port) with the portal [`FAKE_DOMAIN`].
    pub async fn start() -> FakeBitrix {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            base_url: format!("http://{addr}"),
            ..State::default()
        }));
        let fake_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = fake_state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let fake = FakeBitrix { addr, state, task };
        fake.add_portal(FAKE_DOMAIN, FAKE_MEMBER_ID);
        fake
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:<port>`: the client's `portal_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fake OAuth token endpoint: the client's `oauth_url`.
    pub fn oauth_url(&self) -> String {
        format!("http://{}/oauth/token/", self.addr)
    }

    /// Adds a portal (or resets one) and returns its first token pair.
    pub fn add_portal(&self, domain: &str, member_id: &str) -> FakeTokens {
        let mut s = self.state();
        let (access, refresh) = s.new_pair();
        s.portals.insert(
            domain.to_owned(),
            Portal {
                member_id: member_id.to_owned(),
                access: access.clone(),
                access_expired: false,
                refresh: Some(refresh.clone()),
                retired_access: Vec::new(),
                users: HashMap::new(),
                chats: HashMap::new(),
                connectors: HashMap::new(),
                bindings: Vec::new(),
            },
        );
        FakeTokens {
            access_token: access,
            refresh_token: refresh,
            member_id: member_id.to_owned(),
        }
    }

    /// The current pair of [`FAKE_DOMAIN`].
    pub fn valid_tokens(&self) -> FakeTokens {
        self.valid_tokens_for(FAKE_DOMAIN)
    }

    /// The current pair of `domain`.
    pub fn valid_tokens_for(&self, domain: &str) -> FakeTokens {
        let s = self.state();
        let p = s.portals.get(domain).expect("unknown fake portal");
        FakeTokens {
            access_token: p.access.clone(),
            refresh_token: p.refresh.clone().unwrap_or_default(),
            member_id: p.member_id.clone(),
        }
    }

    /// [`FAKE_DOMAIN`]'s access token expires: calls answer `401 expired_token` until the
    /// pair is refreshed.
    pub fn expire_token(&self) {
        self.expire_token_for(FAKE_DOMAIN)
    }

    pub fn expire_token_for(&self, domain: &str) {
        if let Some(p) = self.state().portals.get_mut(domain) {
            p.access_expired = true;
        }
    }

    /// [`FAKE_DOMAIN`]'s refresh token stops working (app removed, token used elsewhere):
    /// refreshing answers `invalid_grant`.
    pub fn revoke_refresh_token(&self) {
        if let Some(p) = self.state().portals.get_mut(FAKE_DOMAIN) {
            p.refresh = None;
        }
    }

    /// REST calls to `domain` are answered only after `delay` (a hanging portal); zero ends it.
    pub fn delay_portal(&self, domain: &str, delay: std::time::Duration) {
        self.state().delays.insert(domain.to_owned(), delay);
    }

    /// `domain` goes down (`true`: every REST call to it answers a 503 page, as
    /// [`FailKind::Down`], until it comes back with `false`).
    pub fn set_down(&self, domain: &str, down: bool) {
        let mut s = self.state();
        if down {
            s.down.insert(domain.to_owned());
        } else {
            s.down.remove(domain);
        }
    }

    /// The next `n` REST calls (to any portal) fail as `kind`.
    pub fn fail_next(&self, n: usize, kind: FailKind) {
        let mut s = self.state();
        for _ in 0..n {
            s.failures.push_back(kind);
        }
    }

    /// Every REST call so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state().calls.clone()
    }

    /// The REST calls of `method`.
    pub fn calls_to(&self, method: &str) -> Vec<RecordedCall> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Every OAuth request so far.
    pub fn oauth_requests(&self) -> Vec<RecordedOauth> {
        self.state().oauth.clone()
    }

    /// Every message accepted by `imconnector.send.messages`, in order.
    pub fn messages_received(&self) -> Vec<ReceivedMessage> {
        self.state().messages.clone()
    }

    /// Connectors registered on `domain`, by id.
    pub fn connectors(&self, domain: &str) -> HashMap<String, FakeConnector> {
        self.state()
            .portals
            .get(domain)
            .map(|p| p.connectors.clone())
            .unwrap_or_default()
    }

    /// Event handlers bound on `domain`: (event name, upper case; handler URL).
    pub fn bindings(&self, domain: &str) -> Vec<(String, String)> {
        self.state()
            .portals
            .get(domain)
            .map(|p| p.bindings.clone())
            .unwrap_or_default()
    }

    /// Forgets calls, OAuth requests and messages (portals and tokens stay).
    pub fn clear_records(&self) {
        let mut s = self.state();
        s.calls.clear();
        s.oauth.clear();
        s.messages.clear();
    }
}

async fn handle(state: &Mutex<State>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "INVALID_REQUEST", "body could not be read"),
    };
    let delay = path
        .strip_prefix('/')
        .and_then(|p| p.split_once("/rest/"))
        .and_then(|(d, _)| {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.delays.get(d).copied()
        });
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    if path == "/oauth/token/" || path == "/oauth/token" {
        let mut params: HashMap<String, String> = parse_pairs(&query).into_iter().collect();
        params.extend(parse_pairs(&String::from_utf8_lossy(&body)));
        return oauth(&mut s, params);
    }
    let Some((domain, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once("/rest/"))
        .map(|(d, m)| (d.to_owned(), m.trim_end_matches(".json").to_owned()))
    else {
        return error(404, "NOT_FOUND", "no such path on the fake");
    };
    let (params, form) = if is_json {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => (Value::Object(m), false),
            _ => return error(400, "INVALID_REQUEST", "body is not a JSON object"),
        }
    } else {
        let mut v = form_to_json(&query);
        if let (Value::Object(target), Value::Object(extra)) =
            (&mut v, form_to_json(&String::from_utf8_lossy(&body)))
        {
            target.extend(extra);
        }
        (v, true)
    };
    let mut params = params;
    let auth = params
        .as_object_mut()
        .and_then(|m| m.remove("auth"))
        .and_then(|a| a.as_str().map(str::to_owned));
    let response = rest(&mut s, &domain, &method, &params, auth.as_deref());
    let status = response.status().as_u16();
    s.calls.push(RecordedCall {
        domain,
        method,
        params,
        auth,
        form,
        status,
    });
    response
}

fn oauth(s: &mut State, params: HashMap<String, String>) -> Answer {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let response = if get("grant_type") != "refresh_token" {
        error(400, "invalid_request", "grant_type must be refresh_token")
    } else if get("client_id") != FAKE_CLIENT_ID || get("client_secret") != FAKE_CLIENT_SECRET {
        error(401, "invalid_client", "Invalid client credentials")
    } else {
        let refresh = get("refresh_token").to_owned();
        let found = s
            .portals
            .iter()
            .find(|(_, p)| p.refresh.as_deref() == Some(refresh.as_str()) && !refresh.is_empty())
            .map(|(d, _)| d.clone());
        match found {
            None => error(400, "invalid_grant", "Invalid refresh token"),
            Some(domain) => {
                let (access, new_refresh) = s.new_pair();
                let base = s.base_url.clone();
                let p = s.portals.get_mut(&domain).expect("found above");
                let old = std::mem::replace(&mut p.access, access.clone());
                p.retired_access.push(old);
                p.access_expired = false;
                p.refresh = Some(new_refresh.clone());
                answer(
                    200,
                    &json!({
                        "access_token": access,
                        "client_endpoint": format!("{base}/{domain}/rest/"),
                        "domain": "oauth.bitrix.info",
                        "expires_in": 3600,
                        "member_id": p.member_id,
                        "refresh_token": new_refresh,
                        "scope": "imopenlines,imconnector",
                        "server_endpoint": format!("{base}/rest/"),
                        "status": "L"
                    }),
                )
            }
        }
    };
    s.oauth.push(RecordedOauth {
        params,
        status: response.status().as_u16(),
    });
    response
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

fn rest(s: &mut State, domain: &str, method: &str, params: &Value, auth: Option<&str>) -> Answer {
    let down = s.down.contains(domain).then_some(FailKind::Down);
    if let Some(kind) = down.or_else(|| s.failures.pop_front()) {
        return match kind {
            FailKind::QueryLimit => error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
            FailKind::OperationTimeLimit => error(
                429,
                "OPERATION_TIME_LIMIT",
                "Method is blocked due to operation time limit.",
            ),
            FailKind::Down => Response::builder()
                .status(503)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(
                    b"<html><body>503 Service Temporarily Unavailable</body></html>",
                )))
                .expect("valid response"),
            FailKind::InternalError => error(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            FailKind::ArgumentError => error(
                400,
                "ERROR_ARGUMENT",
                "The incorrect structure of a message inside MESSAGES parameter",
            ),
        };
    }
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
    if auth == portal.access {
        if portal.access_expired {
            return error(
                401,
                "expired_token",
                "The access token provided has expired.",
            );
        }
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
    match method {
        "imconnector.register" => register(s, domain, params),
        "imconnector.activate" => activate(s, domain, params),
        "imconnector.connector.data.set" => connector_data(s, domain, params),
        "event.bind" => bind(s, domain, params),
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

fn register(s: &mut State, domain: &str, params: &Value) -> Answer {
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

fn activate(s: &mut State, domain: &str, params: &Value) -> Answer {
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
    let active = text_of(params.get("ACTIVE")).as_deref() != Some("0");
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

fn connector_data(s: &mut State, domain: &str, params: &Value) -> Answer {
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
    let Some(data) = params.get("DATA").filter(|d| d.is_object()) else {
        return error(400, "ERROR_ARGUMENT", "Argument 'DATA' is null or empty");
    };
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

fn bind(s: &mut State, domain: &str, params: &Value) -> Answer {
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

fn send_messages(s: &mut State, domain: &str, params: &Value) -> Answer {
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

/// Percent-encodes like PHP's `http_build_query` (RFC 3986 unreserved characters stay).
fn php_encode(s: &str) -> String {
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

/// A JSON object as PHP's `http_build_query` writes it: `data[MESSAGES][0][im][chat_id]=1`,
/// brackets encoded, booleans as 1/0, nulls left out.
pub fn php_form(v: &Value) -> String {
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
            Value::Bool(b) => out.push(format!("{}={}", php_encode(prefix), u8::from(*b))),
            Value::Number(n) => out.push(format!("{}={}", php_encode(prefix), n)),
            Value::String(t) => out.push(format!("{}={}", php_encode(prefix), php_encode(t))),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.join("&")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_style_forms() {
        let v = form_to_json(
            "CONNECTOR=wa&LINE=7&MESSAGES%5B0%5D%5Buser%5D%5Bid%5D=u1\
             &MESSAGES[0][message][text]=hi+there%21&MESSAGES[1][chat][id]=c2&tags[]=a&tags[]=b",
        );
        assert_eq!(
            v,
            json!({
                "CONNECTOR": "wa",
                "LINE": "7",
                "MESSAGES": [
                    {"user": {"id": "u1"}, "message": {"text": "hi there!"}},
                    {"chat": {"id": "c2"}}
                ],
                "tags": ["a", "b"]
            })
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
