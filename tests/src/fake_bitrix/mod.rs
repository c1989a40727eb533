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
//! - `batch` (`cmd` of `method?query` commands, `halt`; JSON or form body): each command runs
//!   through the same methods with the batch's `auth`; the answer has the documented `result`,
//!   `result_error`, `result_total`, `result_next`, `result_time`. A batch is one request for
//!   the rate limit, the faults and [`FakeBitrix::calls`]; its commands are in
//!   [`FakeBitrix::batch_commands`], its messages in [`FakeBitrix::messages_received`].
//! - `im.dialog.messages.get` over the chats the fake keeps: each message received has
//!   `params.CONNECTOR_MID = [<external message id>]`, newest first, `LIMIT`, `LAST_ID`,
//!   `FIRST_ID` (see `rest::dialog_messages`).
//! - The OAuth endpoint exchanges the current refresh token for a new pair (the old pair stops
//!   working) and answers `invalid_grant` for any other refresh token.
//! - Programmable: [`FakeBitrix::expire_token`], [`FakeBitrix::revoke_refresh_token`], and
//!   per portal the faults of real portals (see `faults`): [`FakeBitrix::fail_next`] (any
//!   portal), [`FakeBitrix::outage`] / [`FakeBitrix::end_outage`] (`QUERY_LIMIT_EXCEEDED`,
//!   `OPERATION_TIME_LIMIT`, a 503 down page, 500), [`FakeBitrix::limit_rate`] (the
//!   documented leaky bucket, off by default; [`FakeBitrix::rate_limited_count`]),
//!   [`FakeBitrix::lose_answers`] (the call is executed, then the connection is closed
//!   without an answer), [`FakeBitrix::delay_portal`] (a slow portal: the call waits, then
//!   runs) and [`FakeBitrix::hang`] (the call runs at once, its answer waits).
//! - Records every REST request ([`FakeBitrix::calls`]; `auth` kept apart from the
//!   parameters), every command of a batch, every OAuth request, and every message received;
//!   [`FakeBitrix::duplicate_posts`] counts messages posted twice,
//!   [`FakeBitrix::messages_in_chat`] gives a conversation's arrival order.
//! - The application set-up methods: `imconnector.register` (answers `{"result": true}` as
//!   the method's result, as Bitrix24's code does; refuses an `ID` with `.`, and a missing
//!   `NAME`, `ICON[DATA_IMAGE]` or `PLACEMENT_HANDLER`), `imconnector.activate`,
//!   `imconnector.connector.data.set` (`true`), `event.bind` (`true`; the same event and
//!   handler again is `400 ERROR_CORE` "Handler already binded", as Bitrix24 answers),
//!   `event.unbind`, `app.info`; `imconnector.activate` wants `ACTIVE` 1 or 0 and a line id,
//!   `connector.data.set` a `DATA` object (kept per line, as a whole). The portal's state is
//!   readable: [`FakeBitrix::connectors`],
//!   [`FakeBitrix::bindings`].
//! - Users who open an application page: [`FakeBitrix::user_token`] issues the `AUTH_ID`
//!   Bitrix24 posts to a placement, valid for the REST API as that user; `user.current`
//!   names the caller (the application's own tokens act as the installing admin, user 1),
//!   `user.admin` says whether they are an administrator; [`FakeBitrix::expire_user_token`].
//! - Builds the bodies Bitrix24 posts to an application ([`EventBody`]): the install
//!   wizard's form, the install callback and the events (`ONAPPINSTALL`,
//!   `ONIMCONNECTORMESSAGEADD`, ...), form-encoded with PHP-style keys like
//!   `http_build_query`.

pub mod chat_placements;
mod events;
mod faults;
mod files;
mod form;
mod messageservice;
mod open_lines;
mod rest;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use events::{EventBody, EventMessage};
pub use files::FileDownload;
pub use form::{form_to_json, parse_pairs, php_form};
pub use rest::manager_of;

pub use faults::BucketClock;
use faults::{AnswerLost, Faults};
use rest::{dispatch, Reply};

/// The portal every fake starts with.
pub const FAKE_DOMAIN: &str = "example.bitrix24.com";
/// Its `member_id`.
pub const FAKE_MEMBER_ID: &str = "a223c6b3710f85df22e9377d6c4f7553";
/// The application credentials the fake OAuth server accepts.
pub const FAKE_CLIENT_ID: &str = "local.5f0c0a1b2c3d4e.12345678";

pub const FAKE_CLIENT_SECRET: &str = "FakeClientSecret0123456789abcdefghijklmnopqrstuv";

/// How REST calls fail ([`FakeBitrix::fail_next`], [`FakeBitrix::outage`]).
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
    /// The HTTP status the fake answered (for a command of a batch: its own, 200 when it
    /// succeeded).
    pub status: u16,
    /// For a command of a batch ([`FakeBitrix::batch_commands`]): its key. `None` for a
    /// request ([`FakeBitrix::calls`]).
    pub batch_key: Option<String>,
    /// When the portal ran it, among all requests and commands (1, 2, ...).
    pub order: u64,
}

/// One OAuth request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedOauth {
    pub params: HashMap<String, String>,
    pub status: u16,
}

/// One message accepted by `imconnector.send.messages` (alone or in a batch).
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
    /// Tokens Bitrix24 issued to users who opened an application page (`AUTH_ID`), by token.
    user_tokens: HashMap<String, FakeUser>,
    /// `placement.bind` parameters in force (chat_placements.rs).
    placements: Vec<Value>,
    /// (user, chat id) pairs of users who may see a chat besides the installer.
    dialog_members: HashSet<(u64, u64)>,
}

/// A portal user holding an `AUTH_ID` ([`FakeBitrix::user_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub id: u64,
    pub name: String,
    pub admin: bool,
    /// Expired tokens answer `401 expired_token`.
    pub expired: bool,
}

/// The user the application's own (install) tokens act as: the admin who installed it.
pub const INSTALLER_USER_ID: u64 = 1;

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
    /// Requests and batch commands run so far ([`RecordedCall::order`]).
    ran: u64,
    calls: Vec<RecordedCall>,
    batch_commands: Vec<RecordedCall>,
    oauth: Vec<RecordedOauth>,
    messages: Vec<ReceivedMessage>,
    faults: Faults,
    /// Every token pair issued, in order (access, refresh).
    issued: Vec<(String, String)>,
    /// Files of posted messages, downloaded while the call ran (see `files`).
    downloads: Vec<FileDownload>,
    /// Message providers and their messages (messageservice.rs).
    providers: messageservice::Providers,
    /// Messages users wrote with `im.message.add` (chat_placements.rs).
    posted: Vec<chat_placements::PostedMessage>,
    /// Names of Open Lines (open_lines.rs).
    line_names: open_lines::LineNames,
}

impl State {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn new_pair(&mut self) -> (String, String) {
        let n = self.next();
        let pair = (format!("fakeaccess{n:08}x"), format!("fakerefresh{n:08}y"));
        self.issued.push(pair.clone());
        pair
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
                    // An `Err` from the service makes hyper close the connection without
                    // an answer (a lost answer, see `lose_answers`).
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { handle(&state, req).await }
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

    /// Points a local server's Bitrix24 application at this fake: its client id and secret,
    /// its OAuth endpoint, and every portal reached here.
    pub fn wire_into(&self, c: &mut local_server::LocalConfig) {
        c.bitrix_client_id = Some(FAKE_CLIENT_ID.into());
        c.bitrix_client_secret = Some(FAKE_CLIENT_SECRET.into());
        c.bitrix_oauth_url = Some(self.oauth_url());
        c.bitrix_portal_base_url = Some(self.base_url());
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
                user_tokens: HashMap::new(),
                placements: Vec::new(),
                dialog_members: HashSet::new(),
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

    /// A user of `domain` opens an application page: the `AUTH_ID` Bitrix24 posts with it,
    /// good for the REST API as that user (`user.current` names them, `user.admin` says
    /// whether they are an administrator).
    pub fn user_token(&self, domain: &str, user_id: u64, name: &str, admin: bool) -> String {
        let mut s = self.state();
        let n = s.next();
        let token = format!("fakeuserauth{n:08}{user_id:04}z");
        let p = s.portals.get_mut(domain).expect("unknown fake portal");
        p.user_tokens.insert(
            token.clone(),
            FakeUser {
                id: user_id,
                name: name.to_owned(),
                admin,
                expired: false,
            },
        );
        token
    }

    /// `user_id` becomes a member of chat `chat_id` (an operator of that dialog).
    pub fn grant_dialog(&self, domain: &str, user_id: u64, chat_id: u64) {
        let mut s = self.state();
        let p = s.portals.get_mut(domain).expect("unknown fake portal");
        p.dialog_members.insert((user_id, chat_id));
    }

    /// The `placement.bind` parameters in force on `domain`.
    pub fn placements(&self, domain: &str) -> Vec<Value> {
        self.state().portals[domain].placements.clone()
    }

    /// Messages users wrote with `im.message.add`, in order.
    pub fn posted_messages(&self) -> Vec<chat_placements::PostedMessage> {
        self.state().posted.clone()
    }

    /// The user's `AUTH_ID` expires (`AUTH_EXPIRES` passed).
    pub fn expire_user_token(&self, domain: &str, token: &str) {
        if let Some(u) = self
            .state()
            .portals
            .get_mut(domain)
            .and_then(|p| p.user_tokens.get_mut(token))
        {
            u.expired = true;
        }
    }

    /// Every token, access and refresh, the fake has issued to any portal (at the start and
    /// by refreshing), retired ones included.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state()
            .issued
            .iter()
            .flat_map(|(access, refresh)| [access.clone(), refresh.clone()])
            .collect()
    }

    /// Every REST request so far (a batch is one, whatever it carries), refused ones
    /// included.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state().calls.clone()
    }

    /// The calls of `method`: requests of their own and commands of batches, in the order
    /// the portal ran them (`calls_to("batch")`: the batch requests themselves).
    pub fn calls_to(&self, method: &str) -> Vec<RecordedCall> {
        let s = self.state();
        let mut out: Vec<RecordedCall> = s
            .calls
            .iter()
            .chain(s.batch_commands.iter())
            .filter(|c| c.method == method)
            .cloned()
            .collect();
        out.sort_by_key(|c| c.order);
        out
    }

    /// Every OAuth request so far.
    pub fn oauth_requests(&self) -> Vec<RecordedOauth> {
        self.state().oauth.clone()
    }

    /// The commands run inside batches, in order, each with its `batch_key` (not in
    /// [`FakeBitrix::calls`]).
    pub fn batch_commands(&self) -> Vec<RecordedCall> {
        self.state().batch_commands.clone()
    }

    /// Every message accepted by `imconnector.send.messages` (alone or in a batch), in order.
    pub fn messages_received(&self) -> Vec<ReceivedMessage> {
        self.state().messages.clone()
    }

    /// How many times `domain` accepted a message with our message id `external_message_id`
    /// (`MESSAGES[].message.id`): 1 for a message posted once.
    pub fn posts_of(&self, domain: &str, external_message_id: &str) -> usize {
        self.state()
            .messages
            .iter()
            .filter(|m| m.domain == domain && m.external_message_id == external_message_id)
            .count()
    }

    /// How many messages received repeat one received before: same portal, line, external
    /// chat id and external message id (a message posted twice).
    pub fn duplicate_posts(&self) -> usize {
        let s = self.state();
        let mut seen = HashSet::new();
        s.messages
            .iter()
            .filter(|m| {
                !seen.insert((
                    &m.domain,
                    &m.line,
                    &m.external_chat_id,
                    &m.external_message_id,
                ))
            })
            .count()
    }

    /// The external message ids received on `domain` for the conversation
    /// `external_chat_id`, in arrival order (repeats included).
    pub fn messages_in_chat(&self, domain: &str, external_chat_id: &str) -> Vec<String> {
        self.state()
            .messages
            .iter()
            .filter(|m| m.domain == domain && m.external_chat_id == external_chat_id)
            .map(|m| m.external_message_id.clone())
            .collect()
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

    /// The files of posted messages as the portal downloaded them, in order: one download per
    /// `message.files[].url`, made while the call that carried it ran.
    pub fn file_downloads(&self) -> Vec<FileDownload> {
        self.state().downloads.clone()
    }

    /// Forgets calls, batch commands, OAuth requests, messages, downloads and the count of
    /// rate-limit refusals (portals, tokens and programmed faults stay).
    pub fn clear_records(&self) {
        let mut s = self.state();
        s.downloads.clear();
        s.calls.clear();
        s.batch_commands.clear();
        s.oauth.clear();
        s.messages.clear();
        s.faults.rate_limited = 0;
    }
}

async fn handle(state: &Mutex<State>, req: Request<Incoming>) -> Result<Answer, AnswerLost> {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(400, "INVALID_REQUEST", "body could not be read")),
    };
    if path == "/oauth/token/" || path == "/oauth/token" {
        let mut params: HashMap<String, String> = parse_pairs(&query).into_iter().collect();
        params.extend(parse_pairs(&String::from_utf8_lossy(&body)));
        return Ok(oauth(&mut lock(), params));
    }
    let Some((domain, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once("/rest/"))
        .map(|(d, m)| (d.to_owned(), m.trim_end_matches(".json").to_owned()))
    else {
        return Ok(error(404, "NOT_FOUND", "no such path on the fake"));
    };
    // A slow portal: nothing happens until the delay has passed.
    let delay = lock().faults.delays.get(&domain).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let (params, form) = if is_json {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => (Value::Object(m), false),
            _ => return Ok(error(400, "INVALID_REQUEST", "body is not a JSON object")),
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

    let request_ms = files::now_ms();
    let file_urls = files::posted_file_urls(&method, &params);
    let (reply, lose, hang, ran) = {
        let mut s = lock();
        let (reply, ran) = match s.faults.refusal(&domain) {
            Some(kind) => (Err(faults::fault_answer(kind)), false),
            None => (
                Ok(dispatch(
                    &mut s,
                    &domain,
                    &method,
                    &params,
                    auth.as_deref(),
                    false,
                )),
                true,
            ),
        };
        let status = match &reply {
            Ok(r) => r.status(),
            Err(a) => a.status().as_u16(),
        };
        s.ran += 1;
        let order = s.ran;
        s.calls.push(RecordedCall {
            order,
            status,
            domain: domain.clone(),
            method,
            params,
            auth,
            form,
            batch_key: None,
        });
        let lose = ran && s.faults.lose_this(&domain);
        (reply, lose, s.faults.hangs.get(&domain).copied(), ran)
    };
    let mut reply = reply;
    // The files of the messages it ran, downloaded before the answer (see `files`); a file
    // the portal could not download is not kept with its message, nor listed in the
    // answer's `message.files` (see `files::drop_undownloaded`).
    if ran && matches!(&reply, Ok(r) if r.status() < 300) {
        let mut failed = HashSet::new();
        for url in file_urls {
            let got = files::download(&url, request_ms).await;
            if !got.status.is_some_and(|s| (200..300).contains(&s)) {
                failed.insert(url.clone());
            }
            lock().downloads.push(got);
        }
        if !failed.is_empty() {
            if let Ok(Reply::Ok(result)) = &mut reply {
                files::drop_undownloaded(result, &failed);
            }
            for m in lock().messages.iter_mut() {
                m.files.retain(|f| {
                    f.get("url")
                        .and_then(Value::as_str)
                        .is_none_or(|u| !failed.contains(u))
                });
            }
        }
    }
    let response = match reply {
        Ok(r) => r.into_answer(),
        Err(answer) => answer,
    };
    // A hanging portal: the call has run, its answer waits.
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    if lose {
        return Err(AnswerLost);
    }
    Ok(response)
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
