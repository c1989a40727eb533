//! HTTP for the Bitrix24 client: the shared [`HttpClient`](crate::http_client::HttpClient)
//! (pooled, rustls on aws-lc-rs with the system trust store, https or loopback http only)
//! with Bitrix24's timeouts and body limit.
//!
//! Errors carry no URL: the OAuth refresh request has the client secret and the refresh token
//! in its query string, so no error, log line or panic message may print it.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;

use super::config::{BitrixConfig, BitrixConfigError};
use crate::http_client::{HttpClient, HttpClientConfig, HttpClientError, HttpError};
use crate::public_resolver::{AddressRule, Resolver};

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
    /// The whole-request timeout passed (the request may have been sent).
    Timeout,
    /// No connection could be opened (DNS, TCP, TLS): nothing was sent.
    Connect(String),
    /// Refused before sending (not https, no host...): nothing was sent.
    Refused(String),
    /// Anything after the connection was opened: a reset, a connection closed before the
    /// answer was complete, an unreadable or oversized body. The request may have been
    /// executed.
    Other(String),
}

impl TransportError {
    /// False only when the request certainly did not reach the server.
    pub(crate) fn maybe_sent(&self) -> bool {
        !matches!(
            self,
            TransportError::Connect(_) | TransportError::Refused(_)
        )
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Timeout => f.write_str("request timed out"),
            TransportError::Connect(e) => write!(f, "connection failed: {e}"),
            TransportError::Refused(e) | TransportError::Other(e) => f.write_str(e),
        }
    }
}

impl From<HttpError> for TransportError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout => TransportError::Timeout,
            HttpError::Connect(e) => TransportError::Connect(e),
            e @ HttpError::Refused(_) => TransportError::Refused(e.to_string()),
            e @ (HttpError::TooLarge { .. } | HttpError::Other(_)) => {
                TransportError::Other(e.to_string())
            }
        }
    }
}

#[derive(Clone)]
pub(crate) struct Transport {
    http: HttpClient,
}

impl Transport {
    pub(crate) fn new(config: &BitrixConfig) -> Result<Self, BitrixConfigError> {
        let http = HttpClient::new(&HttpClientConfig {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_body: MAX_BODY,
            allow_missing_trust_store: config.loopback_only(),
            // A portal's domain comes from its install: it must not lead our requests (and
            // the portal's tokens) into our own network.
            resolver: Resolver::new(AddressRule::PublicOnly {
                allow_loopback: config.loopback_only(),
            }),
            ..HttpClientConfig::default()
        })
        .map_err(|HttpClientError::Tls(e)| BitrixConfigError::Tls(e))?;
        Ok(Transport { http })
    }

    /// Sends `request` and reads the whole answer, within the request timeout.
    pub(crate) async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<HttpAnswer, TransportError> {
        let answer = self.http.send(request).await?;
        Ok(HttpAnswer {
            status: answer.status,
            retry_after: answer.retry_after(),
            body: answer.body,
        })
    }
}
