//! A loopback HTTP proxy between the server's Graph API or Bitrix24 client and its fake: the
//! seeded decorator of those two HTTP transports in the soak (decision 0053). Each request
//! meets the [`FaultPlan`]'s decision for its site (`http.graph`, `http.bitrix`):
//!
//! - error: refused before the fake sees it, with the provider's own server error;
//! - throttle: refused before the fake sees it, with the provider's own rate-limit answer;
//! - timeout: Bitrix24 REST: the fake runs the call, then the connection closes without an
//!   answer (the ambiguous case decision 0023 looks up before posting again). Graph API and
//!   OAuth: the connection closes before the request is forwarded. A Cloud API send has no
//!   idempotency key, so a send Meta ran but whose answer was lost cannot be told from one it
//!   never saw: the worker's retry would send it twice, and the soak could not tell a bug from
//!   that limit. An OAuth refresh whose answer is lost rotates the tokens out from under us.
//! - slow: forwarded after the plan's delay.
//!
//! While the plan says the process crashed, requests are dropped: a dead process sends
//! nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use wappline::faults::{Fault, FaultPlan};

/// Which provider the proxy stands in front of (its answers differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    Graph,
    Bitrix,
}

impl Upstream {
    fn site(self) -> &'static str {
        match self {
            Upstream::Graph => "http.graph",
            Upstream::Bitrix => "http.bitrix",
        }
    }
}

/// The proxy's error: hyper closes the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

pub struct FaultProxy {
    addr: SocketAddr,
    /// Bodies of the POSTs forwarded to the fake, with the instance that sent them.
    posts: Arc<std::sync::Mutex<Vec<(u64, Bytes)>>>,
    /// Bodies of the POSTs the fake answered, with the time from their arrival at the proxy
    /// to the fake's answer: a client whose timeout is shorter gave up before it.
    answer_times: Arc<std::sync::Mutex<Vec<(Bytes, Duration)>>>,
    /// Bodies of the POSTs the fake ran whose answer the proxy then dropped.
    lost_answers: Arc<std::sync::Mutex<Vec<Bytes>>>,
    /// Requests forwarded to the fake.
    forwarded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    /// The proxy's own base URL: links to the fake in its answers (Bitrix24's
    /// `client_endpoint`) are rewritten to it, as the provider names itself.
    own: String,
    kind: Upstream,
    plan: Arc<FaultPlan>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    forwarded: Arc<AtomicU64>,
    posts: Arc<std::sync::Mutex<Vec<(u64, Bytes)>>>,
    answer_times: Arc<std::sync::Mutex<Vec<(Bytes, Duration)>>>,
    lost_answers: Arc<std::sync::Mutex<Vec<Bytes>>>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:<port>`) on a free loopback port.
    pub async fn start(upstream: String, kind: Upstream, plan: Arc<FaultPlan>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let forwarded = Arc::new(AtomicU64::new(0));
        let posts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let answer_times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let lost_answers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            own: format!("http://{addr}"),
            kind,
            plan,
            client: Client::builder(TokioExecutor::new()).build_http(),
            forwarded: forwarded.clone(),
            posts: posts.clone(),
            answer_times: answer_times.clone(),
            lost_answers: lost_answers.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { handle(&shared, req).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            posts,
            answer_times,
            lost_answers,
            forwarded,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: give it to the client instead of the fake's.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The POST bodies forwarded so far, each with the process instance that sent it.
    pub fn posts(&self) -> Vec<(u64, Bytes)> {
        self.posts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The POST bodies the fake answered, each with the time from its arrival at the proxy to
    /// the fake's answer.
    pub fn answer_times(&self) -> Vec<(Bytes, Duration)> {
        self.answer_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The POST bodies the fake ran and whose answer was then dropped.
    pub fn lost_answers(&self) -> Vec<Bytes> {
        self.lost_answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests forwarded to the fake so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }
}

fn json_answer(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// The provider's server error. Bitrix24: `500 INTERNAL_SERVER_ERROR` (REST API "Errors",
/// the same answer as the fake's `FailKind::InternalError`); Graph API: `500` with
/// `is_transient: true` (Graph API "Handling Errors", as the fake's
/// `GraphFailure::ServerError`).
fn server_error(kind: Upstream) -> Response<Full<Bytes>> {
    match kind {
        Upstream::Bitrix => json_answer(
            500,
            json!({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}),
        ),
        Upstream::Graph => json_answer(
            500,
            json!({"error": {"message": "An unexpected error has occurred. Please retry your request later.",
                "type": "OAuthException", "code": 1, "is_transient": true,
                "fbtrace_id": "AbCdEfGhIjK"}}),
        ),
    }
}

/// The provider's rate-limit answer. Bitrix24: `503 QUERY_LIMIT_EXCEEDED` (REST API
/// "Limits"); Graph API: code 80007, the WhatsApp Business Account's rate limit (WhatsApp
/// Cloud API "Error codes"), as the fake's `GraphFailure::RateLimit`.
fn throttled(kind: Upstream) -> Response<Full<Bytes>> {
    match kind {
        Upstream::Bitrix => json_answer(
            503,
            json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
        ),
        Upstream::Graph => json_answer(
            400,
            json!({"error": {"message": "(#80007) There have been too many calls to this WhatsApp Business account. Wait a bit and try again.",
                "type": "OAuthException", "code": 80007, "fbtrace_id": "AbCdEfGhIjK"}}),
        ),
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    if shared.plan.crashed() {
        return Err(Dropped);
    }
    let oauth = parts.uri.path().starts_with("/oauth/");
    let rates = shared.plan.http_rates().without_crashes();
    let fault = shared.plan.decide_with(shared.kind.site(), &rates);
    let lose_answer = match fault {
        Some(Fault::Error) => return Ok(server_error(shared.kind)),
        Some(Fault::Throttle) => return Ok(throttled(shared.kind)),
        Some(Fault::Timeout) if shared.kind == Upstream::Graph || oauth => return Err(Dropped),
        Some(Fault::Timeout) => true,
        Some(Fault::Slow) => {
            tokio::time::sleep(shared.plan.slow_by()).await;
            false
        }
        Some(Fault::Crash) | None => false,
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut forward = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            forward = forward.header(name, value);
        }
    }
    if parts.method == hyper::Method::POST {
        shared
            .posts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((shared.plan.instance(), body.clone()));
    }
    let sent = body.clone();
    let forward = forward.body(Full::new(body)).map_err(|_| Dropped)?;
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let answer = shared.client.request(forward).await.map_err(|_| Dropped)?;
    let (mut parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    if parts.status.is_success() {
        shared
            .answer_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sent.clone(), arrived.elapsed()));
    }
    if lose_answer {
        shared
            .lost_answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sent);
        return Err(Dropped);
    }
    let body = match std::str::from_utf8(&body) {
        Ok(text) if text.contains(&shared.upstream) => {
            Bytes::from(text.replace(&shared.upstream, &shared.own))
        }
        _ => body,
    };
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Full::new(body)))
}
