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
//! - Programmable: [`FakeGraph::set_gone`], [`FakeGraph::fail_next`] and
//!   [`FakeGraph::fail_downloads`] (5xx, rate limit).
//! - Records every request ([`FakeGraph::calls`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the next requests fail ([`FakeGraph::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFailure {
    /// `500 {"error": {"code": 1, "is_transient": true, ...}}`.
    ServerError,
    /// `503` with an HTML body, as a load balancer in front of a service that is down.
    Down,
    /// `400 {"error": {"code": 80007, ...}}`: the WhatsApp Business Account's rate limit.
    RateLimit,
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
    calls: Vec<GraphCall>,
    seq: u64,
}

/// The running fake. Stops accepting connections when dropped.
pub struct FakeGraph {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
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
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeGraph { addr, state, task }
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

    /// Every request so far.
    pub fn calls(&self) -> Vec<GraphCall> {
        self.state().calls.clone()
    }
}

fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Answer {
    let mut s = state.lock().expect("fake graph state");
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let answer = route(
        &mut s,
        req.method().as_str(),
        &path,
        query.as_deref(),
        bearer.as_deref(),
    );
    s.calls.push(GraphCall {
        method: req.method().to_string(),
        path,
        query,
        bearer,
        status: answer.status().as_u16(),
    });
    answer
}

fn route(
    s: &mut State,
    method: &str,
    path: &str,
    query: Option<&str>,
    bearer: Option<&str>,
) -> Answer {
    let is_download = path.starts_with("/lookaside/");
    let failure = match s.failures.pop_front() {
        Some(kind) => Some(kind),
        None if is_download => s.download_failures.pop_front(),
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
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [version, media_id] if is_version(version) => media_info(s, media_id, query, bearer),
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

fn media_info(s: &mut State, media_id: &str, query: Option<&str>, bearer: Option<&str>) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)).cloned() else {
        return invalid_token();
    };
    let Some(media) = s.media.get(media_id).cloned() else {
        return no_such_object(media_id);
    };
    let pairs = query_pairs(query);
    let wrong_number = pairs
        .get("phone_number_id")
        .is_some_and(|p| *p != media.phone_number_id);
    if media.gone || wrong_number || !numbers.contains(&media.phone_number_id) {
        return no_such_object(media_id);
    }
    s.seq += 1;
    let hash = format!("h{:08}", s.seq);
    let expires = now_secs() + 300;
    s.lookaside
        .insert(hash.clone(), (media_id.to_owned(), expires));
    json_answer(
        200,
        &json!({
            "messaging_product": "whatsapp",
            "url": format!(
                "{}/lookaside/whatsapp_business/attachments/?mid={media_id}&ext={expires}&hash={hash}",
                s.base_url
            ),
            "mime_type": media.mime_type,
            "sha256": fake_sha256(&media.bytes),
            "file_size": media.bytes.len().to_string(),
            "id": media_id
        }),
    )
}

fn lookaside(s: &mut State, query: Option<&str>, bearer: Option<&str>) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)).cloned() else {
        return invalid_token();
    };
    let pairs = query_pairs(query);
    let found = pairs
        .get("hash")
        .and_then(|h| s.lookaside.get(h))
        .filter(|(mid, exp)| Some(mid) == pairs.get("mid") && *exp >= now_secs())
        .and_then(|(mid, _)| s.media.get(mid))
        .filter(|m| !m.gone && numbers.contains(&m.phone_number_id));
    match found {
        Some(m) => bytes_answer(200, &m.mime_type, m.bytes.clone()),
        None => bytes_answer(404, "text/plain", b"Not Found".to_vec()),
    }
}
