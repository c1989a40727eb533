//! One outbound HTTP(S) client for every API Wappline calls (Bitrix24, the Graph API, Meta's
//! media CDNs): a pooled hyper client, TLS by rustls on aws-lc-rs (the crypto library the
//! workspace already links; no `ring`) with the operating system's trust store.
//!
//! Rules every request follows:
//! - `https`, or plain `http` only to a loopback host (`127.0.0.0/8`, `::1`, `localhost`: the
//!   local server's fakes). Checked on every request, not only on configured base URLs, so a
//!   URL that arrives in an API answer cannot downgrade to plain http elsewhere.
//! - No user info in URLs.
//! - A connect timeout and a whole-request timeout (sending to the last byte of the answer).
//! - A limit on the answer body; a larger answer is an error, not a truncation.
//! - Errors carry no URL (an OAuth refresh has the client secret in its query string; a media
//!   URL is a bearer capability) and no header value. Authorization headers made with
//!   [`bearer`] are marked sensitive.
//! - Redirects are not followed (a caller that wants them checks each hop itself).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

use crate::public_resolver::Resolver;

/// Settings of one [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpClientConfig {
    /// Limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on a whole request, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Largest answer body read by [`HttpClient::send`].
    pub max_body: usize,
    /// When true, a machine without a usable trust store still gets a client (that can then
    /// reach only plain-http loopback hosts). Set it only when every endpoint is loopback.
    pub allow_missing_trust_store: bool,
    /// Idle pooled connections kept per host.
    pub max_idle_per_host: usize,
    /// How host names are resolved, and which addresses may be connected to.
    pub resolver: Resolver,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_body: 8 * 1024 * 1024,
            allow_missing_trust_store: false,
            max_idle_per_host: 8,
            resolver: Resolver::default(),
        }
    }
}

/// The client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpClientError {
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// Why nothing usable came back. Never includes the URL or a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request was refused before sending: not https (or http on loopback), user info,
    /// no host, or a value that cannot be a header.
    #[error("request refused: {0}")]
    Refused(&'static str),
    /// The whole-request timeout passed; the request may have been sent.
    #[error("request timed out")]
    Timeout,
    /// No connection could be opened (DNS, TCP, TLS handshake): nothing was sent.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The answer body is larger than the limit (by `Content-Length` or while reading).
    #[error("answer larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Failed after the connection was opened (reset, closed before the answer was
    /// complete, unreadable body): the request may have been sent.
    #[error("{0}")]
    Other(String),
}

impl HttpError {
    /// True when the same request may succeed later (timeouts, connection and read failures).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::Timeout | HttpError::Connect(_) | HttpError::Other(_)
        )
    }
}

/// What came back: status, headers and the whole body.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpAnswer {
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Content-Type` header, when present and readable.
    pub fn content_type(&self) -> Option<&str> {
        self.header(http::header::CONTENT_TYPE)
    }

    /// A `Retry-After` given in seconds (the HTTP-date form is ignored).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header(http::header::RETRY_AFTER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    /// The `Location` header of a redirect.
    pub fn location(&self) -> Option<&str> {
        self.header(http::header::LOCATION)
    }

    fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The system trust store, read and parsed once per process: every HTTP client of a function
/// shares it. Reading it is most of an HTTP client's construction cost (a few hundred
/// certificate files on a Debian machine), and a function builds several clients at cold
/// start (issue 17: the send worker read it four times).
fn system_roots() -> &'static Result<Arc<rustls::RootCertStore>, String> {
    static ROOTS: std::sync::OnceLock<Result<Arc<rustls::RootCertStore>, String>> =
        std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            let why = loaded
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "none found".to_owned());
            return Err(format!(
                "no usable CA certificates in the system trust store: {why}"
            ));
        }
        Ok(Arc::new(roots))
    })
}

/// The client's HTTPS connector, built at its first connection instead of with the client.
///
/// Building it means the process's trust store ([`system_roots`], read once) and a rustls
/// configuration. A function builds its Graph API and Bitrix24 clients at cold start, but
/// many first events call neither (a webhook delivery, a media link that does not verify, a
/// queue job for an erased tenant), and a function may never call one of them at all: so the
/// cost moves to the first connection that needs it, out of every cold start (issue 17).
/// A missing trust store is then reported by the first connection (a connect error naming
/// it) instead of by the constructor.
#[derive(Clone)]
pub struct LazyHttps {
    http: HttpConnector<Resolver>,
    allow_missing_trust_store: bool,
    built: Arc<OnceLock<Result<HttpsConnector<HttpConnector<Resolver>>, HttpClientError>>>,
}

impl LazyHttps {
    fn connector(&self) -> Result<HttpsConnector<HttpConnector<Resolver>>, HttpClientError> {
        self.built
            .get_or_init(|| tls_connector(self.http.clone(), self.allow_missing_trust_store))
            .clone()
    }
}

/// rustls on aws-lc-rs with the process's trust store, over `http`.
fn tls_connector(
    http: HttpConnector<Resolver>,
    allow_missing_trust_store: bool,
) -> Result<HttpsConnector<HttpConnector<Resolver>>, HttpClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = match system_roots() {
        Ok(roots) => roots.clone(),
        // No trust store is needed when every endpoint is plain-http loopback (a test
        // machine without CA certificates); anywhere else it is a configuration error.
        Err(_) if allow_missing_trust_store => Arc::new(rustls::RootCertStore::empty()),
        Err(e) => return Err(HttpClientError::Tls(e.clone())),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

impl tower_service::Service<http::Uri> for LazyHttps {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The plain connector is always ready; the TLS part is built in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        match self.connector() {
            Ok(mut connector) => connector.call(uri),
            Err(e) => Box::pin(std::future::ready(Err(e.into()))),
        }
    }
}

/// A pooled HTTPS client. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<LazyHttps, Full<Bytes>>,
    request_timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("request_timeout", &self.request_timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client. The TLS set-up (the trust store, the rustls configuration) is
    /// deferred to the first connection: see [`LazyHttps`].
    pub fn new(config: &HttpClientConfig) -> Result<Self, HttpClientError> {
        let mut http = HttpConnector::new_with_resolver(config.resolver.clone());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = LazyHttps {
            http,
            allow_missing_trust_store: config.allow_missing_trust_store,
            built: Arc::new(OnceLock::new()),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(config.max_idle_per_host)
            .build(https);
        Ok(HttpClient {
            client,
            request_timeout: config.request_timeout,
            max_body: config.max_body,
        })
    }

    /// The configured body limit.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Sends `request` and reads the whole answer (at most the configured body limit),
    /// within the request timeout.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> Result<HttpAnswer, HttpError> {
        self.send_limited(request, self.max_body).await
    }

    /// As [`HttpClient::send`] with another body limit (e.g. a media download).
    pub async fn send_limited(
        &self,
        request: http::Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<HttpAnswer, HttpError> {
        check_target(request.uri())?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() && crate::public_resolver::is_refusal(&e) {
                    HttpError::Refused("the host resolves to an internal network address")
                } else if e.is_connect() {
                    HttpError::Connect(source_chain(&e))
                } else {
                    HttpError::Other(source_chain(&e))
                }
            })?;
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_body as u64) {
                return Err(HttpError::TooLarge { limit: max_body });
            }
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        HttpError::TooLarge { limit: max_body }
                    } else {
                        HttpError::Other(format!("reading the answer: {e}"))
                    }
                })?
                .to_bytes();
            Ok(HttpAnswer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }

    /// `GET url` with `headers`, the answer limited to `max_body` bytes.
    pub async fn get(
        &self,
        url: &str,
        headers: HeaderMap,
        max_body: usize,
    ) -> Result<HttpAnswer, HttpError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| HttpError::Refused("not an absolute URL"))?;
        let mut request = http::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|_| HttpError::Refused("not a valid request"))?;
        *request.headers_mut() = headers;
        self.send_limited(request, max_body).await
    }
}

/// Redirects a download follows at most.
pub const MAX_REDIRECTS: usize = 3;

/// Why a GET that follows redirects stopped before a final answer.
#[derive(Debug)]
pub enum RedirectError<E> {
    Http(HttpError),
    /// The URL, or a redirect's target, was refused by the caller's check.
    Refused(E),
    /// A redirect without a usable `Location`.
    NoLocation,
    /// More than [`MAX_REDIRECTS`] redirects.
    TooMany,
}

impl HttpClient {
    /// `GET url`, following up to [`MAX_REDIRECTS`] redirects. The URL and every redirect's
    /// target must pass `check` (the caller's host policy) before anything is sent to it, so
    /// a redirect cannot lead a token or a request where the first URL could not. Returns the
    /// first answer that is not a redirect, whatever its status.
    pub async fn get_following_redirects<E>(
        &self,
        url: &str,
        headers: &HeaderMap,
        max_body: usize,
        check: impl Fn(&str) -> Result<http::Uri, E>,
    ) -> Result<HttpAnswer, RedirectError<E>> {
        let mut uri = check(url).map_err(RedirectError::Refused)?;
        for _ in 0..=MAX_REDIRECTS {
            let answer = self
                .get(&uri.to_string(), headers.clone(), max_body)
                .await
                .map_err(RedirectError::Http)?;
            if !matches!(answer.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(answer);
            }
            let next = answer
                .location()
                .and_then(|l| resolve_location(&uri, l))
                .ok_or(RedirectError::NoLocation)?;
            uri = check(&next).map_err(RedirectError::Refused)?;
        }
        Err(RedirectError::TooMany)
    }
}

/// `location` (absolute, scheme-relative or absolute-path) against `base`.
pub fn resolve_location(base: &http::Uri, location: &str) -> Option<String> {
    let location = location.trim();
    if location.starts_with("https://") || location.starts_with("http://") {
        return Some(location.to_owned());
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{}{location}", base.authority()?));
    }
    None
}

/// An `Authorization: Bearer <token>` value, marked sensitive (never printed by `Debug`).
pub fn bearer(token: &str) -> Result<HeaderValue, HttpError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| HttpError::Refused("the token cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A request timeout written as a positive number of milliseconds (`"1500"`), as the
/// clients' `*_TIMEOUT_MS` settings take it; `None` for anything else. The rule's wording
/// for an error message is [`TIMEOUT_MS_RULE`].
pub fn timeout_ms(value: &str) -> Option<std::time::Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis)
}

/// What [`timeout_ms`] accepts, for the error naming the setting.
pub const TIMEOUT_MS_RULE: &str = "must be a positive number of milliseconds";

/// `localhost`, or an IPv4/IPv6 loopback address (IPv6 with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The rule every request follows: `https` anywhere, `http` only to a loopback host; a host
/// is named; no user info.
pub fn check_target(uri: &http::Uri) -> Result<(), HttpError> {
    let authority = uri
        .authority()
        .ok_or(HttpError::Refused("the URL names no host"))?;
    if authority.as_str().contains('@') {
        return Err(HttpError::Refused("the URL carries user info"));
    }
    if authority.host().is_empty() {
        return Err(HttpError::Refused("the URL names no host"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback_host(authority.host()) => Ok(()),
        Some("http") => Err(HttpError::Refused(
            "plain http is accepted only for loopback hosts",
        )),
        _ => Err(HttpError::Refused("the scheme must be https")),
    }
}

/// The error and its causes, e.g. "client error (Connect): tcp connect error: Connection
/// refused". hyper's errors do not contain the request URL.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_location() {
        let base: http::Uri = "https://lookaside.fbsbx.com/a/b?x=1".parse().unwrap();
        assert_eq!(
            resolve_location(&base, "/c?d=1").as_deref(),
            Some("https://lookaside.fbsbx.com/c?d=1")
        );
        assert_eq!(
            resolve_location(&base, "//scontent.xx.fbcdn.net/v/1.jpg").as_deref(),
            Some("https://scontent.xx.fbcdn.net/v/1.jpg")
        );
        assert_eq!(resolve_location(&base, "relative"), None);
    }

    fn target(s: &str) -> Result<(), HttpError> {
        check_target(&s.parse::<http::Uri>().unwrap())
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://graph.facebook.com/v23.0/123",
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
            "http://127.0.0.1:8099/x",
            "http://127.0.0.2:1/",
            "http://localhost:8080/fake",
            "http://[::1]:9000/",
        ] {
            assert_eq!(target(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1.nip.io/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "/relative/path",
        ] {
            assert!(
                matches!(target(bad), Err(HttpError::Refused(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn bearer_is_sensitive_and_refuses_line_breaks() {
        let v = bearer("abc").unwrap();
        assert!(v.is_sensitive());
        assert_eq!(v.to_str().unwrap(), "Bearer abc");
        assert!(bearer("a\r\nX-Evil: 1").is_err());
    }

    #[test]
    fn errors_say_nothing_of_the_url() {
        let e = target("http://secret-host.example/?client_secret=s3cr3t").unwrap_err();
        let text = e.to_string();
        assert!(
            !text.contains("s3cr3t") && !text.contains("secret-host"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn refused_before_any_connection() {
        let client = HttpClient::new(&HttpClientConfig {
            allow_missing_trust_store: true,
            ..HttpClientConfig::default()
        })
        .unwrap();
        let e = client
            .get("http://192.0.2.1/x", HeaderMap::new(), 10)
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Refused(_)));
    }
}
