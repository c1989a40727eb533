//! HTTP for the Bitrix24 client: one pooled hyper client, TLS by rustls on aws-lc-rs (the
//! crypto library the workspace already links) with the operating system's trust store.
//!
//! Errors carry no URL: the OAuth refresh request has the client secret and the refresh token
//! in its query string, so no error, log line or panic message may print it.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::config::{BitrixConfig, BitrixConfigError};

/// Largest answer body read (Bitrix24 answers are a few kB; batch answers more).
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// What came back.
pub(crate) struct HttpAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

/// Why nothing usable came back. Never includes the URL.
#[derive(Debug)]
pub(crate) enum TransportError {
    Timeout,
    Connect(String),
    Other(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Timeout => f.write_str("request timed out"),
            TransportError::Connect(e) => write!(f, "connection failed: {e}"),
            TransportError::Other(e) => f.write_str(e),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Transport {
    pub(crate) fn new(config: &BitrixConfig) -> Result<Self, BitrixConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(b) => b,
            // No trust store is needed when every endpoint is plain-http loopback (a test
            // machine without CA certificates); anywhere else it is a configuration error.
            Err(_) if config.loopback_only() => {
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| BitrixConfigError::Tls(e.to_string()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
            }
            Err(e) => {
                return Err(BitrixConfigError::Tls(format!(
                    "no usable CA certificates in the system trust store: {e}"
                )))
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(8)
            .build(https);
        Ok(Transport {
            client,
            timeout: config.request_timeout,
        })
    }

    /// Sends `request` and reads the whole answer, within the request timeout.
    pub(crate) async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<HttpAnswer, TransportError> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    TransportError::Connect(source_chain(&e))
                } else {
                    TransportError::Other(source_chain(&e))
                }
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| TransportError::Other(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(HttpAnswer {
                status,
                retry_after,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout)?
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
