//! The Graph API's errors, typed by what the caller should do about them.
//!
//! Meta answers an error with an HTTP status and a body
//! `{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}`
//! (Graph API "Handling Errors"; WhatsApp Cloud API "Error codes", which advise building on
//! `code`, not on the HTTP status or the deprecated subcode). Grouped here:
//!
//! | code | meaning | here |
//! |---|---|---|
//! | 4, 17, 32, 613, 80001–80014 (80007 = WhatsApp Business Account), 130429 (Cloud API throughput), 131056 (pair rate limit), or HTTP 429 | throttled | [`GraphError::RateLimited`]: retry later |
//! | 0, 102, 190 (access token expired or invalid), 10, 200–299 (permission) | credentials | [`GraphError::Unauthorized`]: the channel must be reconnected |
//! | 100 with subcode 33 ("object does not exist"), or HTTP 404/410 | gone | [`GraphError::NotFound`] |
//! | 1, 2 (temporary), 131000, 131016, `is_transient: true`, or HTTP 5xx | Meta's side | [`GraphError::Unavailable`]: retry later |
//! | anything else | the request | [`GraphError::Rejected`]: permanent |

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Codes that mean "too many calls, try again later".
pub const RATE_LIMIT_CODES: &[i64] = &[4, 17, 32, 613, 80007, 130429, 131056];
const BUSINESS_USE_CASE_LIMITS: std::ops::RangeInclusive<i64> = 80001..=80014;
const AUTH_CODES: &[i64] = &[0, 102, 190, 10];
const PERMISSION_CODES: std::ops::RangeInclusive<i64> = 200..=299;
const TRANSIENT_CODES: &[i64] = &[1, 2, 131000, 131016];

const MAX_MESSAGE: usize = 300;

/// Meta's error object, as far as it was given. `message` is cut to 300 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphApiError {
    pub status: u16,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub error_type: Option<String>,
    pub message: String,
    pub fbtrace_id: Option<String>,
    pub is_transient: bool,
}

impl fmt::Display for GraphApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = self.code {
            write!(f, " code {code}")?;
            if let Some(sub) = self.subcode {
                write!(f, "/{sub}")?;
            }
        }
        if let Some(t) = &self.error_type {
            write!(f, " ({t})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(trace) = &self.fbtrace_id {
            write!(f, " [fbtrace_id {trace}]")?;
        }
        Ok(())
    }
}

/// What went wrong with a Graph API call or a media download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Over a Meta rate limit: try again later, through a queue or the caller's retry, not in
    /// a loop.
    #[error("Graph API rate limit: {error}")]
    RateLimited {
        error: Box<GraphApiError>,
        retry_after: Option<Duration>,
    },
    /// The access token is expired, revoked or lacks a permission. Not retried: the channel
    /// must be reconnected.
    #[error("Graph API refused the credentials: {0}")]
    Unauthorized(Box<GraphApiError>),
    /// The object (a media id, a CDN URL) does not exist (any more).
    #[error("not found: {0}")]
    NotFound(Box<GraphApiError>),
    /// Meta could not be reached or failed on its side (network, timeout, 5xx, temporary
    /// codes): retry.
    #[error("Graph API unavailable: {detail}")]
    Unavailable { status: Option<u16>, detail: String },
    /// Meta refused the request itself; the same request would be refused again.
    #[error("Graph API rejected the request: {0}")]
    Rejected(Box<GraphApiError>),
    /// The answer is larger than the limit the caller set.
    #[error("answer larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// We refused to send the request (a URL outside the allowed hosts, an invalid id...).
    #[error("request refused: {0}")]
    Refused(String),
    /// The answer was not what Meta documents.
    #[error("unexpected answer from the Graph API: {0}")]
    Protocol(String),
}

impl GraphError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GraphError::RateLimited { .. } | GraphError::Unavailable { .. }
        )
    }

    /// The wait Meta asked for, if any (Graph rarely sends `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Meta's error object, when the answer carried one.
    pub fn api_error(&self) -> Option<&GraphApiError> {
        match self {
            GraphError::RateLimited { error, .. }
            | GraphError::Unauthorized(error)
            | GraphError::NotFound(error)
            | GraphError::Rejected(error) => Some(error.as_ref()),
            _ => None,
        }
    }

    /// Meta's error code, when the answer carried one.
    pub fn code(&self) -> Option<i64> {
        self.api_error().and_then(|e| e.code)
    }

    /// A short name of the variant for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GraphError::RateLimited { .. } => "rate_limited",
            GraphError::Unauthorized(_) => "unauthorized",
            GraphError::NotFound(_) => "not_found",
            GraphError::Unavailable { .. } => "unavailable",
            GraphError::Rejected(_) => "rejected",
            GraphError::TooLarge { .. } => "too_large",
            GraphError::Refused(_) => "refused",
            GraphError::Protocol(_) => "protocol",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    error_type: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    fbtrace_id: Option<String>,
    #[serde(default)]
    is_transient: Option<bool>,
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_MESSAGE).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Meta's error object in `body`, if it is one.
pub(crate) fn parse_api_error(status: u16, body: &[u8]) -> Option<GraphApiError> {
    let env: Envelope = serde_json::from_slice(body).ok()?;
    let b = env.error;
    Some(GraphApiError {
        status,
        code: b.code,
        subcode: b.error_subcode,
        error_type: b.error_type.map(|t| truncate(&t)),
        message: truncate(b.message.as_deref().unwrap_or("")),
        fbtrace_id: b.fbtrace_id.map(|t| truncate(&t)),
        is_transient: b.is_transient.unwrap_or(false),
    })
}

/// Maps an error answer (status not 2xx) to a [`GraphError`].
pub(crate) fn classify(status: u16, body: &[u8], retry_after: Option<Duration>) -> GraphError {
    let parsed = parse_api_error(status, body);
    let has_body = parsed.is_some();
    let error = Box::new(parsed.unwrap_or_else(|| GraphApiError {
        status,
        code: None,
        subcode: None,
        error_type: None,
        message: String::new(),
        fbtrace_id: None,
        is_transient: false,
    }));
    let code = error.code;
    let is_code = |set: &[i64]| code.is_some_and(|c| set.contains(&c));
    if is_code(RATE_LIMIT_CODES)
        || code.is_some_and(|c| BUSINESS_USE_CASE_LIMITS.contains(&c))
        || status == 429
    {
        return GraphError::RateLimited { error, retry_after };
    }
    if is_code(AUTH_CODES)
        || code.is_some_and(|c| PERMISSION_CODES.contains(&c))
        || (status == 401 && code.is_none())
    {
        return GraphError::Unauthorized(error);
    }
    if (code == Some(100) && error.subcode == Some(33))
        || (code.is_none() && matches!(status, 404 | 410))
        || (status == 404 && code == Some(100))
    {
        return GraphError::NotFound(error);
    }
    if is_code(TRANSIENT_CODES) || error.is_transient || status >= 500 {
        return GraphError::Unavailable {
            status: Some(status),
            detail: error.to_string(),
        };
    }
    if !has_body && !(400..500).contains(&status) {
        return GraphError::Protocol(format!("HTTP {status} without an error object"));
    }
    GraphError::Rejected(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(status: u16, body: serde_json::Value) -> GraphError {
        classify(status, body.to_string().as_bytes(), None)
    }

    fn meta(code: i64, subcode: Option<i64>) -> serde_json::Value {
        let mut e = json!({
            "message": "(#x) something",
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbCdEf123"
        });
        if let Some(s) = subcode {
            e["error_subcode"] = json!(s);
        }
        json!({ "error": e })
    }

    #[test]
    fn rate_limits_are_retryable() {
        for code in [4, 17, 32, 613, 80007, 130429, 131056, 80002] {
            let e = c(400, meta(code, None));
            assert!(matches!(e, GraphError::RateLimited { .. }), "{code}: {e:?}");
            assert!(e.is_retryable());
            assert_eq!(e.code(), Some(code));
        }
        let e = classify(429, b"", Some(Duration::from_secs(9)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
    }

    #[test]
    fn credentials_are_permanent() {
        for (code, sub) in [
            (190, Some(463)),
            (190, None),
            (10, None),
            (200, None),
            (102, None),
        ] {
            let e = c(401, meta(code, sub));
            assert!(matches!(e, GraphError::Unauthorized(_)), "{code}: {e:?}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn missing_objects_are_not_found() {
        let e = c(400, meta(100, Some(33)));
        assert!(matches!(e, GraphError::NotFound(_)), "{e:?}");
        assert!(!e.is_retryable());
        assert!(matches!(
            classify(404, b"<html>", None),
            GraphError::NotFound(_)
        ));
        assert!(matches!(classify(410, b"", None), GraphError::NotFound(_)));
        // Code 100 without subcode 33 is a bad parameter, not a missing object.
        assert!(matches!(c(400, meta(100, None)), GraphError::Rejected(_)));
    }

    #[test]
    fn meta_side_failures_are_retryable() {
        for e in [
            c(500, meta(1, None)),
            c(503, meta(2, None)),
            c(400, meta(131000, None)),
            classify(502, b"<html>bad gateway</html>", None),
            c(
                400,
                json!({"error": {"message": "x", "code": 9999, "is_transient": true}}),
            ),
        ] {
            assert!(matches!(e, GraphError::Unavailable { .. }), "{e:?}");
            assert!(e.is_retryable());
        }
    }

    #[test]
    fn display_names_code_and_trace_but_is_bounded() {
        let long = "y".repeat(2000);
        let e = c(
            400,
            json!({"error": {"message": long, "code": 131009, "error_subcode": 2494010, "type": "OAuthException", "fbtrace_id": "T1"}}),
        );
        let text = e.to_string();
        assert!(
            text.contains("code 131009/2494010") && text.contains("fbtrace_id T1"),
            "{text}"
        );
        assert!(text.len() < 500);
        assert!(!e.is_retryable());
    }
}
