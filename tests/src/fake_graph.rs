//! A loopback fake of Meta's Graph API media endpoints and CDN, answering in the formats Meta
//! documents:
//!
//! - `GET /{version}/{media-id}[?phone_number_id=…]` with `Authorization: Bearer <token>`:
//!   `{"messaging_product": "whatsapp", "url", "mime_type", "sha256", "file_size", "id"}`,
//!   the `url` pointing at this fake's `/lookaside/whatsapp_business/attachments/?mid=…&ext=…&hash=…`
//!   (valid for 5 minutes, like Meta's). A missing or unknown token is `401` code 190; a
//!   media id that does not exist (or is gone, or belongs to another number, or is not
//!   readable with that token) is `400` code 100 subcode 33, as Meta answers.
//! - `GET` of that lookaside URL with the same Bearer token: the bytes with their
//!   `Content-Type`; without a token `401`; expired or unknown `404`.
//! - `GET /cdn/{name}` (no token): public CDN bytes, for Instagram attachment URLs;
//!   `GET /cdn-redirect/{name}` answers `302` to `/cdn/{name}`.
//! - `POST /{version}/{phone-number-id}/messages` (WhatsApp Cloud API send): the JSON body
//!   must carry `messaging_product: "whatsapp"`, `recipient_type: "individual"`, exactly one
//!   of `to` (phone) / `recipient` (BSUID), a `type` and its object; media objects must name
//!   a media id uploaded for that number (else `400` code 131053). Answers
//!   `{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id" | "user_id"}],
//!   "messages": [{"id": "wamid.…", "message_status": "accepted"}]}`.
//! - `POST /{version}/{phone-number-id}/media` (`multipart/form-data` with
//!   `messaging_product=whatsapp`, `type`, `file`): stores the file (readable afterwards through
//!   the media endpoints) and answers `{"id": "<MEDIA_ID>"}`.
//! - `POST /{version}/me/messages` or `/{version}/{ig-or-page-id}/messages` without
//!   `messaging_product` (Instagram Send API): `recipient.id`, `message.text` or
//!   `message.attachment {type, payload.url}`, `messaging_type` (`MESSAGE_TAG` needs `tag`),
//!   an optional `reply_to: {mid}` beside `recipient`. Answers `{"recipient_id",
//!   "message_id"}`. With `recipient.comment_id`: a private reply (comments.rs).
//! - Tokens: [`FakeGraph::add_token`] (WhatsApp number), [`FakeGraph::add_instagram_token`]
//!   (Instagram account, optionally its Page). Unknown token: `401` code 190.
//! - Revocation: `DELETE /{version}/{waba-or-page-id}/subscribed_apps` answers
//!   `{"success": true}` for a known token, and a WABA's `GET …/subscribed_apps` lists our app
//!   no more until the next `POST`; `DELETE /{version}/me/permissions` answers `true`
//!   for a known Instagram token and forgets it. Both are in [`FakeGraph::calls`].
//! - Ownership (ownership.rs): `GET /{version}/debug_token`, `/{waba-id}/phone_numbers`,
//!   `/me?fields=user_id,username` and `/{page-id}?fields=instagram_business_account`, from
//!   what [`FakeGraph::add_business_token`], [`FakeGraph::add_waba`] and
//!   [`FakeGraph::add_instagram_token`] registered.
//! - Sign-up (onboarding.rs): Embedded Signup's code exchange, `subscribed_apps` and
//!   `register`; Instagram Login's authorization window, code exchange, long-lived and
//!   refreshed tokens and webhook subscription, with one-time expiring codes.
//! - Meta's JavaScript SDK and Embedded Signup's window (sdk.rs), for browser tests.
//! - Templates (templates.rs): `GET /{version}/{waba-id}/message_templates`, paged, from
//!   [`FakeGraph::set_templates`]; `POST /{version}/{phone-number-id}/marketing_messages`
//!   for the WABA's MARKETING templates, recorded with the sends.
//! - Programmable: [`FakeGraph::set_gone`], [`FakeGraph::fail_next`],
//!   [`FakeGraph::fail_downloads`] and [`FakeGraph::fail_sends`] (5xx, rate limits, Meta
//!   error codes).
//! - Records every request ([`FakeGraph::calls`]), every accepted send
//!   ([`FakeGraph::sent`]) and upload ([`FakeGraph::uploads`]).

use std::collections::{HashMap, VecDeque};
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

mod comments;
mod media;
mod mentions;
mod onboarding;
mod ownership;
mod profiles;
mod sdk;
mod sender_actions;
mod sends;
mod statuses;
mod subscriptions;
mod templates;
use media::*;
pub use onboarding::{OnboardingLog, CODE_SECS, FAKE_IG_APP_ID, FAKE_IG_APP_SECRET};
pub use ownership::{instagram_app_scoped_id, BusinessToken, FAKE_APP_ID, FAKE_APP_SECRET};
pub use profiles::FakeProfile;
pub use sdk::{FAKE_BUSINESS_ID, FAKE_ES_CONFIG_ID};
pub use sender_actions::SenderAction;
use sends::*;
pub use subscriptions::HeldCall;
pub use templates::template;

/// Turns on self-service onboarding (Embedded Signup and Instagram Login, decision 0040) on a
/// local server whose Graph API is this fake (`graph_api_base_url` already set): the fake's
/// configuration id and Instagram app, and its Instagram OAuth endpoints.
pub fn wire_self_service(c: &mut local_server::LocalConfig) {
    let graph = c.graph_api_base_url.clone();
    c.meta_es_config_id = Some(FAKE_ES_CONFIG_ID.into());
    c.instagram_app_id = Some(FAKE_IG_APP_ID.into());
    c.instagram_app_secret = Some(FAKE_IG_APP_SECRET.into());
    c.instagram_oauth_base_url = Some(graph.clone());
    c.instagram_authorize_url = Some(format!("{graph}/oauth/authorize"));
}

/// How the next requests fail ([`FakeGraph::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFailure {
    /// `500 {"error": {"code": 1, "is_transient": true, ...}}`.
    ServerError,
    /// `503` with an HTML body, as a load balancer in front of a service that is down.
    Down,
    /// `400 {"error": {"code": 80007, ...}}`: the WhatsApp Business Account's rate limit.
    RateLimit,
    /// Any Meta error code, with the HTTP status and title Meta uses for it (e.g. 130429
    /// throughput, 131056 pair rate, 131047 re-engagement, 131026 undeliverable, 190 token).
    Code(i64),
}

/// HTTP status, error type and message Meta sends with `code`.
fn code_answer(code: i64) -> Answer {
    let (status, kind, message) = match code {
        130429 => (400, "OAuthException", "(#130429) Rate limit hit"),
        131056 => (
            400,
            "OAuthException",
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        ),
        131047 => (400, "OAuthException", "(#131047) Re-engagement message"),
        131026 => (400, "OAuthException", "(#131026) Message undeliverable"),
        131051 => (400, "OAuthException", "(#131051) Unsupported message type"),
        131053 => (400, "OAuthException", "(#131053) Media upload error"),
        131062 => (
            400,
            "OAuthException",
            "(#131062) Business-scoped User ID recipients are not supported for this message",
        ),
        190 => (401, "OAuthException", "Error validating access token"),
        10 => (
            403,
            "OAuthException",
            "(#10) Application does not have permission",
        ),
        100 => (400, "OAuthException", "(#100) Invalid parameter"),
        4 => (
            400,
            "OAuthException",
            "(#4) Application request limit reached",
        ),
        613 => (
            400,
            "OAuthException",
            "(#613) Calls to this api have exceeded the rate limit",
        ),
        131000 => (500, "OAuthException", "(#131000) Something went wrong"),
        _ => (400, "OAuthException", "(#0) Fake error"),
    };
    meta_error(status, code, None, kind, message)
}

/// An accepted send, as the fake recorded it.
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// `whatsapp` or `instagram`.
    pub product: &'static str,
    /// The path it was posted to (`/v26.0/106540352242922/messages`).
    pub path: String,
    pub bearer: Option<String>,
    /// The JSON body as sent.
    pub body: Value,
    /// The message id the fake answered with.
    pub id: String,
}

/// An accepted media upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub phone_number_id: String,
    pub media_id: String,
    /// The `type` field.
    pub mime_type: String,
    /// The file part's `filename` and `Content-Type`.
    pub filename: Option<String>,
    pub part_content_type: Option<String>,
    pub bytes: Vec<u8>,
    pub messaging_product: Option<String>,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct GraphCall {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The bearer token sent, if any.
    pub bearer: Option<String>,
    pub status: u16,
    /// The request body, as text (lossy).
    pub body: String,
}

#[derive(Clone)]
struct FakeMedia {
    phone_number_id: String,
    mime_type: String,
    bytes: Vec<u8>,
    gone: bool,
}

#[derive(Default)]
struct State {
    base_url: String,
    /// token → the phone_number_ids it may read media of.
    tokens: HashMap<String, Vec<String>>,
    media: HashMap<String, FakeMedia>,
    cdn: HashMap<String, (String, Vec<u8>)>,
    /// hash → (media id, expiry).
    lookaside: HashMap<String, (String, u64)>,
    failures: VecDeque<GraphFailure>,
    download_failures: VecDeque<GraphFailure>,
    /// `None`: let that send through.
    send_failures: VecDeque<Option<GraphFailure>>,
    /// Instagram token → (account id, page id).
    instagram_tokens: HashMap<String, (String, Option<String>)>,
    /// What `debug_token` and `phone_numbers` know (ownership.rs).
    ownership: ownership::Ownership,
    /// Embedded Signup and Instagram Login (onboarding.rs).
    onboarding: onboarding::Onboarding,
    /// The JavaScript SDK and the sign-up window (sdk.rs).
    sdk: sdk::Sdk,
    /// Webhook subscriptions Meta dropped (subscriptions.rs).
    dropped_subscriptions: subscriptions::Dropped,
    /// A hold for the next `DELETE …/subscribed_apps` (subscriptions.rs).
    unsubscribe_hold: Option<Arc<subscriptions::HeldCall>>,
    calls: Vec<GraphCall>,
    sent: Vec<SentMessage>,
    actions: Vec<SenderAction>,
    uploads: Vec<Upload>,
    seq: u64,
    /// Instagram user profiles by IGSID, and how many reads were answered (profiles.rs).
    profiles: HashMap<String, profiles::FakeProfile>,
    profile_reads: usize,
    /// WABA → its message templates (templates.rs).
    templates: HashMap<String, Vec<Value>>,
    /// Where Meta's `sent` status webhooks of WhatsApp sends go, when asked (statuses.rs).
    status_webhook: Option<statuses::StatusWebhook>,
    /// Instagram comments by id, which take one private reply each (comments.rs).
    comments: HashMap<String, comments::FakeComment>,
    /// What each Instagram account may read of its @mentions (mentions.rs).
    mentions: mentions::Mentions,
}

/// The running fake. Clones share it; it stops accepting connections when the last clone
/// is dropped.
#[derive(Clone)]
pub struct FakeGraph {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _task: Arc<TaskGuard>,
}

/// Aborts the accept loop when dropped.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Answer = Response<Full<Bytes>>;

fn json_answer(status: u16, body: &Value) -> Answer {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn meta_error(status: u16, code: i64, subcode: Option<i64>, kind: &str, message: &str) -> Answer {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "AfakeTraceId0123456789"
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    json_answer(status, &json!({ "error": error }))
}

fn invalid_token() -> Answer {
    meta_error(
        401,
        190,
        None,
        "OAuthException",
        "Invalid OAuth access token - Cannot parse access token",
    )
}

fn no_such_object(id: &str) -> Answer {
    meta_error(
        400,
        100,
        Some(33),
        "GraphMethodException",
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due \
             to missing permissions, or does not support this operation. Please read the Graph \
             API documentation at https://developers.facebook.com/docs/graph-api"
        ),
    )
}

fn bytes_answer(status: u16, content_type: &str, bytes: Vec<u8>) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A stand-in for the SHA-256 Meta reports (64 hex digits, deterministic per content).
fn fake_sha256(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}").repeat(4)
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        })
}

impl FakeGraph {
    /// Starts the fake on `127.0.0.1` (a free port).
    pub async fn start() -> FakeGraph {
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
        FakeGraph {
            addr,
            state,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake graph state")
    }

    /// `http://127.0.0.1:<port>`: the Graph API base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `token` read the media of `phone_number_id` (a WhatsApp access token).
    pub fn add_token(&self, token: &str, phone_number_id: &str) {
        self.state()
            .tokens
            .entry(token.to_owned())
            .or_default()
            .push(phone_number_id.to_owned());
    }

    /// A media received on `phone_number_id`.
    pub fn add_media(&self, media_id: &str, phone_number_id: &str, mime_type: &str, bytes: &[u8]) {
        self.state().media.insert(
            media_id.to_owned(),
            FakeMedia {
                phone_number_id: phone_number_id.to_owned(),
                mime_type: mime_type.to_owned(),
                bytes: bytes.to_vec(),
                gone: false,
            },
        );
    }

    /// From now on `media_id` does not exist any more (Meta deleted it).
    pub fn set_gone(&self, media_id: &str) {
        if let Some(m) = self.state().media.get_mut(media_id) {
            m.gone = true;
        }
    }

    /// A public CDN object; returns its URL (`{base}/cdn/{name}`).
    pub fn add_cdn(&self, name: &str, content_type: &str, bytes: &[u8]) -> String {
        self.state()
            .cdn
            .insert(name.to_owned(), (content_type.to_owned(), bytes.to_vec()));
        format!("{}/cdn/{name}", self.base_url())
    }

    /// The next `n` requests fail with `kind`.
    pub fn fail_next(&self, n: usize, kind: GraphFailure) {
        let mut s = self.state();
        for _ in 0..n {
            s.failures.push_back(kind);
        }
    }

    /// The next `n` media downloads (lookaside URLs) fail with `kind`; the media URL
    /// requests before them succeed.
    pub fn fail_downloads(&self, n: usize, kind: GraphFailure) {
        let mut s = self.state();
        for _ in 0..n {
            s.download_failures.push_back(kind);
        }
    }

    /// The next `n` sends (`POST …/messages`) fail with `kind`; other requests succeed.
    pub fn fail_sends(&self, n: usize, kind: GraphFailure) {
        let mut s = self.state();
        for _ in 0..n {
            s.send_failures.push_back(Some(kind));
        }
    }

    /// The next `n` sends go through before failures queued after this call apply (to fail
    /// the second part of a message, say).
    pub fn pass_sends(&self, n: usize) {
        let mut s = self.state();
        for _ in 0..n {
            s.send_failures.push_back(None);
        }
    }

    /// Lets `token` send as the Instagram account `account_id` (Instagram Login: through
    /// `me/messages` or `{account_id}/messages`; with `page_id`, also through
    /// `{page_id}/messages`, as a Page token).
    pub fn add_instagram_token(&self, token: &str, account_id: &str, page_id: Option<&str>) {
        self.state().instagram_tokens.insert(
            token.to_owned(),
            (account_id.to_owned(), page_id.map(str::to_owned)),
        );
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<GraphCall> {
        self.state().calls.clone()
    }

    /// Every send the fake accepted, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.state().sent.clone()
    }

    /// Every upload the fake accepted, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.state().uploads.clone()
    }
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    if parts.method == hyper::Method::DELETE && parts.uri.path().ends_with("/subscribed_apps") {
        let hold = state
            .lock()
            .expect("fake graph state")
            .unsubscribe_hold
            .take();
        if let Some(hold) = hold {
            hold.hold().await;
        }
    }
    let mut s = state.lock().expect("fake graph state");
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = ReadRequest {
        method: parts.method.as_str(),
        path: &path,
        query: query.as_deref(),
        bearer: bearer.as_deref(),
        content_type: content_type.as_deref(),
        body: &body,
    };
    let answer = route(&mut s, &request);
    s.calls.push(GraphCall {
        method: parts.method.to_string(),
        path,
        query,
        bearer,
        status: answer.status().as_u16(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    answer
}

/// One request, read whole.
struct ReadRequest<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    bearer: Option<&'a str>,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

fn route(s: &mut State, r: &ReadRequest<'_>) -> Answer {
    let (method, path, query, bearer) = (r.method, r.path, r.query, r.bearer);
    let is_download = path.starts_with("/lookaside/");
    let is_send = method == "POST"
        && path.ends_with("/messages")
        && !sender_actions::is_sender_action(r.body);
    let failure = match s.failures.pop_front() {
        Some(kind) => Some(kind),
        None if is_download => s.download_failures.pop_front(),
        None if is_send => s.send_failures.pop_front().flatten(),
        None => None,
    };
    if let Some(kind) = failure {
        return match kind {
            GraphFailure::ServerError => json_answer(
                500,
                &json!({"error": {
                    "message": "An unknown error has occurred.",
                    "type": "OAuthException",
                    "code": 1,
                    "is_transient": true,
                    "fbtrace_id": "AfakeTraceId0123456789"
                }}),
            ),
            GraphFailure::Down => bytes_answer(
                503,
                "text/html",
                b"<html><body>Service Unavailable</body></html>".to_vec(),
            ),
            GraphFailure::RateLimit => meta_error(
                400,
                80007,
                None,
                "OAuthException",
                "(#80007) There have been too many calls to this WhatsApp Business account.",
            ),
            GraphFailure::Code(code) => code_answer(code),
        };
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(answer) = sdk::route(s, r, &segments) {
        return answer;
    }
    if let Some(answer) = onboarding::route(s, r, &segments) {
        return answer;
    }
    if let Some(answer) = subscriptions::route(s, r, &segments) {
        return answer;
    }
    if method == "POST" {
        return match segments.as_slice() {
            [version, owner, "messages"] if is_version(version) => {
                send_message(s, path, owner, bearer, r.body)
            }
            [version, owner, "media"] if is_version(version) => {
                upload_media(s, owner, bearer, r.content_type, r.body)
            }
            [version, owner, "marketing_messages"] if is_version(version) => {
                match serde_json::from_slice::<Value>(r.body) {
                    Ok(body) => match templates::check_marketing(s, owner, &body) {
                        None => send_whatsapp(s, path, owner, bearer, body),
                        Some(refused) => refused,
                    },
                    Err(_) => invalid_parameter("the body is not JSON"),
                }
            }
            _ => meta_error(
                400,
                100,
                None,
                "GraphMethodException",
                "Unsupported post request",
            ),
        };
    }
    if method == "DELETE" {
        return match segments.as_slice() {
            // Unsubscribing our app from a WhatsApp Business Account's or a Page's webhooks.
            [version, owner, "subscribed_apps"] if is_version(version) => {
                if bearer
                    .is_some_and(|t| s.tokens.contains_key(t) || s.instagram_tokens.contains_key(t))
                {
                    subscriptions::unsubscribed(s, owner);
                    json_answer(200, &json!({"success": true}))
                } else {
                    meta_error(
                        401,
                        190,
                        None,
                        "OAuthException",
                        "Invalid OAuth access token.",
                    )
                }
            }
            // Revoking every permission the token's user granted the app ("User permissions",
            // Revoking Permissions: answers `true`); the token stops working.
            [version, "me", "permissions"] if is_version(version) => {
                match bearer.filter(|t| s.instagram_tokens.contains_key(*t)) {
                    Some(t) => {
                        let t = t.to_owned();
                        s.instagram_tokens.remove(&t);
                        json_answer(200, &json!(true))
                    }
                    None => invalid_token(),
                }
            }
            _ => meta_error(
                400,
                100,
                None,
                "GraphMethodException",
                "Unsupported delete request",
            ),
        };
    }
    if method != "GET" {
        return meta_error(
            400,
            100,
            None,
            "GraphMethodException",
            "Unsupported request",
        );
    }
    if let Some(answer) = mentions::route(s, &segments, query, bearer) {
        return answer;
    }
    if let Some(answer) = ownership::route(s, &segments, query, bearer) {
        return answer;
    }
    if let Some(answer) = templates::route_get(s, &segments, query, bearer) {
        return answer;
    }
    match segments.as_slice() {
        [version, id] if is_version(version) => match profiles::route(s, id, query, bearer) {
            Some(answer) => answer,
            None => media_info(s, id, query, bearer),
        },
        ["lookaside", "whatsapp_business", "attachments", ""] => lookaside(s, query, bearer),
        ["cdn", name] => match s.cdn.get(*name) {
            Some((ct, bytes)) => bytes_answer(200, ct, bytes.clone()),
            None => bytes_answer(404, "text/plain", b"Not Found".to_vec()),
        },
        ["cdn-redirect", name] => Response::builder()
            .status(302)
            .header("location", format!("/cdn/{name}"))
            .body(Full::new(Bytes::new()))
            .expect("valid response"),
        _ => meta_error(
            400,
            100,
            None,
            "GraphMethodException",
            "Unknown path components",
        ),
    }
}
