//! Bitrix24's errors, typed by what the caller should do about them.
//!
//! Bitrix24 answers an error with an HTTP status and a body `{"error": "<code>",
//! "error_description": "<text>"}` (apidocs "Returned Error Information"). The system errors
//! any method can return (apidocs "Statuses and System Error Codes"):
//!
//! | status | code | here |
//! |---|---|---|
//! | 401 | `expired_token` ("The access token provided has expired") | [`BitrixError::ExpiredToken`] |
//! | 401 | `NO_AUTH_FOUND`, `INVALID_REQUEST`, `OVERLOAD_LIMIT`, `ACCESS_DENIED`, `INVALID_CREDENTIALS`, `insufficient_scope`, `user_access_error`, and `invalid_token` | [`BitrixError::Unauthorized`] |
//! | 403 | `PORTAL_DELETED`, `WRONG_AUTH_TYPE` | [`BitrixError::Unauthorized`] |
//! | 503 | `QUERY_LIMIT_EXCEEDED` (request intensity limit) | [`BitrixError::RateLimited`] |
//! | 429 | `OPERATION_TIME_LIMIT` (method blocked by resource limit) | [`BitrixError::RateLimited`] |
//! | 500 | `INTERNAL_SERVER_ERROR`, `ERROR_UNEXPECTED_ANSWER` | [`BitrixError::Unavailable`] (ambiguous) |
//! | 404 | `ERROR_METHOD_NOT_FOUND` | [`BitrixError::Rejected`] |
//!
//! The OAuth server's codes (apidocs "Error Codes" of OAuth): `invalid_grant` (bad or used
//! refresh token), `invalid_client`, `invalid_request`, `invalid_scope`/`insufficient_scope`,
//! and `PAYMENT_REQUIRED` are all [`BitrixError::Unauthorized`]: the portal must be
//! reconnected, retrying cannot help.
//!
//! **Ambiguous outcomes** ([`BitrixError::is_ambiguous`]): when a request was sent but no usable
//! answer came back, Bitrix24 may have executed it. That is the case for a timeout, a
//! connection closed or reset while waiting for the answer, an HTTP 5xx other than the two
//! documented limit errors (`503 QUERY_LIMIT_EXCEEDED` and `429 OPERATION_TIME_LIMIT` are
//! refusals: nothing was executed), and a 2xx answer whose body could not be read. A caller
//! that must not post twice asks Bitrix24 what arrived before it repeats such a call. A
//! connection that could not be opened, a 4xx refusal, a rate limit, and an expired or
//! refused token are not ambiguous: Bitrix24 did not execute the request.

use std::time::Duration;

/// Wait suggested after `QUERY_LIMIT_EXCEEDED` when the answer names none: the time the
/// portal's counter needs to drop by one at the documented 2 requests/s.
pub const QUERY_LIMIT_RETRY_AFTER: Duration = Duration::from_millis(500);
/// Wait suggested after `OPERATION_TIME_LIMIT` when the answer names none. The block lifts
/// once the method's execution time summed over 10 minutes is under 480 s again.
pub const OPERATION_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(60);

const MAX_DESCRIPTION: usize = 300;

/// What went wrong with a Bitrix24 call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitrixError {
    /// `401 expired_token`: refresh the pair, store it, call again (once).
    #[error("Bitrix24 access token expired")]
    ExpiredToken,
    /// The portal or the OAuth server refused our credentials for good (revoked or unknown
    /// token, used refresh token, app removed or unpaid, scope missing). Not retried: the
    /// portal needs to be reconnected.
    #[error("Bitrix24 refused the credentials: {code}: {description}")]
    Unauthorized { code: String, description: String },
    /// Over a Bitrix24 limit, or over our own pacing: try again after `retry_after`, through
    /// the queue, not in a loop.
    #[error("Bitrix24 rate limit ({code}); retry after {retry_after:?}")]
    RateLimited { code: String, retry_after: Duration },
    /// Bitrix24 could not be reached or failed on its side (network, timeout, 5xx): retry.
    /// `status` is the HTTP status when an answer came. `maybe_executed` is false only when
    /// the request certainly did not reach Bitrix24 (the connection could not be opened);
    /// see [`BitrixError::is_ambiguous`].
    #[error("Bitrix24 unavailable: {detail}")]
    Unavailable {
        status: Option<u16>,
        detail: String,
        maybe_executed: bool,
    },
    /// Bitrix24 refused the request itself (bad argument, inactive line, unknown method...).
    /// Permanent: the same request would be refused again.
    #[error("Bitrix24 rejected the request (HTTP {status}): {code}: {description}")]
    Rejected {
        status: u16,
        code: String,
        description: String,
    },
    /// We refused to send the request (bad method name, message without text or files...).
    #[error("invalid Bitrix24 request: {0}")]
    InvalidRequest(String),
    /// The answer was not what Bitrix24 documents.
    #[error("unexpected answer from Bitrix24: {0}")]
    Protocol(String),
    /// A refreshed token pair could not be stored; the call was not retried.
    #[error("could not store the refreshed Bitrix24 tokens: {0}")]
    TokenStore(String),
}

impl BitrixError {
    /// True when the same call may succeed later (through the queue's redelivery).
    pub fn is_retryable(&self) -> bool {
        match self {
            BitrixError::ExpiredToken
            | BitrixError::RateLimited { .. }
            | BitrixError::Unavailable { .. }
            | BitrixError::TokenStore(_) => true,
            BitrixError::Unauthorized { .. }
            | BitrixError::Rejected { .. }
            | BitrixError::InvalidRequest(_)
            | BitrixError::Protocol(_) => false,
        }
    }

    /// True when Bitrix24 may have executed the request although no usable answer came back
    /// (timeout or connection lost after sending, a 5xx that is not a documented limit
    /// error, an unreadable 2xx body). The same request may then have taken effect already:
    /// a caller that must act once looks first, then repeats. Always retryable.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            BitrixError::Unavailable {
                maybe_executed: true,
                ..
            }
        )
    }

    /// The wait Bitrix24 (or our pacing) asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BitrixError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Bitrix24's error code, when the answer carried one.
    pub fn code(&self) -> Option<&str> {
        match self {
            BitrixError::ExpiredToken => Some("expired_token"),
            BitrixError::Unauthorized { code, .. }
            | BitrixError::RateLimited { code, .. }
            | BitrixError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A short name of the variant for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BitrixError::ExpiredToken => "expired_token",
            BitrixError::Unauthorized { .. } => "unauthorized",
            BitrixError::RateLimited { .. } => "rate_limited",
            BitrixError::Unavailable { .. } => "unavailable",
            BitrixError::Rejected { .. } => "rejected",
            BitrixError::InvalidRequest(_) => "invalid_request",
            BitrixError::Protocol(_) => "protocol",
            BitrixError::TokenStore(_) => "token_store",
        }
    }
}

/// Codes that mean "these credentials will not work", whatever the HTTP status.
const AUTH_CODES: &[&str] = &[
    "invalid_token",
    "NO_AUTH_FOUND",
    "INVALID_CREDENTIALS",
    "WRONG_AUTH_TYPE",
    "insufficient_scope",
    "invalid_scope",
    "user_access_error",
    "PORTAL_DELETED",
    "OVERLOAD_LIMIT",
    "PAYMENT_REQUIRED",
    "invalid_grant",
    "invalid_client",
    "authorization_error",
    "APPLICATION_NOT_FOUND",
];

fn is(code: &str, expected: &str) -> bool {
    code.eq_ignore_ascii_case(expected)
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_DESCRIPTION).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Maps an error answer to a [`BitrixError`]. `body` is the parsed JSON when the answer was
/// JSON; `retry_after` is a `Retry-After` header in seconds, if any.
pub(crate) fn classify(
    status: u16,
    body: Option<&serde_json::Value>,
    retry_after: Option<Duration>,
) -> BitrixError {
    let field = |k: &str| {
        body.and_then(|b| b.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
    };
    let code = field("error");
    let description = truncate(field("error_description"));

    if is(code, "expired_token") {
        return BitrixError::ExpiredToken;
    }
    if is(code, "QUERY_LIMIT_EXCEEDED") {
        return BitrixError::RateLimited {
            code: code.to_owned(),
            retry_after: retry_after.unwrap_or(QUERY_LIMIT_RETRY_AFTER),
        };
    }
    if is(code, "OPERATION_TIME_LIMIT") || status == 429 {
        return BitrixError::RateLimited {
            code: if code.is_empty() {
                "HTTP_429".to_owned()
            } else {
                code.to_owned()
            },
            retry_after: retry_after.unwrap_or(OPERATION_LIMIT_RETRY_AFTER),
        };
    }
    if AUTH_CODES.iter().any(|c| is(code, c)) || (status == 401 && body.is_some()) {
        return BitrixError::Unauthorized {
            code: if code.is_empty() {
                format!("HTTP_{status}")
            } else {
                code.to_owned()
            },
            description,
        };
    }
    if status >= 500 || is(code, "INTERNAL_SERVER_ERROR") || is(code, "ERROR_UNEXPECTED_ANSWER") {
        let detail = if code.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} {code}: {description}")
        };
        // Whatever failed, it failed after the request reached the portal.
        return BitrixError::Unavailable {
            status: Some(status),
            detail,
            maybe_executed: true,
        };
    }
    match body {
        Some(_) if !code.is_empty() || status >= 400 => BitrixError::Rejected {
            status,
            code: if code.is_empty() {
                format!("HTTP_{status}")
            } else {
                code.to_owned()
            },
            description,
        },
        Some(_) => BitrixError::Protocol(format!("HTTP {status} without \"result\" or \"error\"")),
        // A success status with a body we cannot read (cut off, a proxy's page): the request
        // was executed or not, we cannot tell.
        None if (200..300).contains(&status) => BitrixError::Unavailable {
            status: Some(status),
            detail: format!("HTTP {status} with a body that is not JSON"),
            maybe_executed: true,
        },
        None => BitrixError::Protocol(format!("HTTP {status} with a body that is not JSON")),
    }
}

/// Maps the error of one command of a `batch` (an element of `result_error`: `{"error":
/// code, "error_description": text}`, apidocs "How to Execute Batch Requests") as a
/// top-level error answer would be. A command has no HTTP status of its own: the batch's
/// 200 stands in (so a refusal is `Rejected { status: 200, .. }`).
pub(crate) fn classify_command(error: &serde_json::Value) -> BitrixError {
    let has_code = error
        .get("error")
        .and_then(|c| c.as_str())
        .is_some_and(|c| !c.is_empty());
    if !has_code {
        return BitrixError::Protocol("batch: a command's error has no code".into());
    }
    classify(200, Some(error), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(status: u16, body: serde_json::Value) -> BitrixError {
        classify(status, Some(&body), None)
    }

    #[test]
    fn documented_system_errors() {
        assert_eq!(
            c(
                401,
                json!({"error": "expired_token", "error_description": "The access token provided has expired."})
            ),
            BitrixError::ExpiredToken
        );
        let e = c(
            503,
            json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
        );
        assert_eq!(e.retry_after(), Some(QUERY_LIMIT_RETRY_AFTER));
        assert!(e.is_retryable());
        let e = classify(
            429,
            Some(
                &json!({"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}),
            ),
            Some(Duration::from_secs(7)),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        for (status, code) in [
            (401, "NO_AUTH_FOUND"),
            (401, "invalid_token"),
            (401, "insufficient_scope"),
            (401, "ACCESS_DENIED"),
            (403, "WRONG_AUTH_TYPE"),
            (403, "PORTAL_DELETED"),
            (400, "invalid_grant"),
            (401, "invalid_client"),
        ] {
            let e = c(status, json!({"error": code, "error_description": "x"}));
            assert!(
                matches!(e, BitrixError::Unauthorized { .. }),
                "{code}: {e:?}"
            );
            assert!(!e.is_retryable());
        }
        let e = c(
            500,
            json!({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}),
        );
        assert!(matches!(e, BitrixError::Unavailable { .. }) && e.is_retryable());
        let e = c(
            404,
            json!({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}),
        );
        assert!(matches!(e, BitrixError::Rejected { status: 404, .. }) && !e.is_retryable());
        let e = c(
            400,
            json!({"error": "NOT_ACTIVE_LINE", "error_description": "The line with this ID is inactive or does not exist"}),
        );
        assert_eq!(e.code(), Some("NOT_ACTIVE_LINE"));
        assert!(!e.is_retryable());
    }

    #[test]
    fn bodies_that_are_not_json() {
        assert!(matches!(
            classify(503, None, None),
            BitrixError::Unavailable {
                status: Some(503),
                ..
            }
        ));
        assert!(matches!(
            classify(502, None, None),
            BitrixError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(429, None, None),
            BitrixError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(400, None, None),
            BitrixError::Protocol(_)
        ));
    }

    #[test]
    fn ambiguous_outcomes() {
        // Sent, no usable answer: Bitrix24 may have executed it.
        for e in [
            c(
                500,
                json!({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}),
            ),
            classify(503, None, None),
            classify(502, None, None),
            classify(504, Some(&json!({})), None),
            classify(200, None, None),
            classify_command(&json!({"error": "INTERNAL_SERVER_ERROR", "error_description": ""})),
        ] {
            assert!(e.is_ambiguous(), "{e:?}");
            assert!(e.is_retryable(), "{e:?}");
            assert_eq!(e.kind(), "unavailable");
        }
        // Refused or never executed.
        for e in [
            c(
                503,
                json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
            ),
            c(
                429,
                json!({"error": "OPERATION_TIME_LIMIT", "error_description": "blocked"}),
            ),
            c(
                401,
                json!({"error": "expired_token", "error_description": "expired"}),
            ),
            c(
                401,
                json!({"error": "invalid_token", "error_description": ""}),
            ),
            c(
                400,
                json!({"error": "ERROR_ARGUMENT", "error_description": ""}),
            ),
            classify(400, None, None),
            BitrixError::Unavailable {
                status: None,
                detail: "connection failed".into(),
                maybe_executed: false,
            },
            BitrixError::InvalidRequest("x".into()),
        ] {
            assert!(!e.is_ambiguous(), "{e:?}");
        }
        // A 2xx with an unreadable body used to be a protocol error; it is retryable now.
        assert!(matches!(
            classify(200, None, None),
            BitrixError::Unavailable {
                status: Some(200),
                ..
            }
        ));
        assert!(matches!(
            classify(200, Some(&json!({"x": 1})), None),
            BitrixError::Protocol(_)
        ));
    }

    #[test]
    fn batch_command_errors_map_like_top_level_ones() {
        assert_eq!(
            classify_command(&json!({"error": "expired_token", "error_description": ""})),
            BitrixError::ExpiredToken
        );
        let e = classify_command(&json!({"error": "insufficient_scope", "error_description": ""}));
        assert!(matches!(e, BitrixError::Unauthorized { .. }), "{e:?}");
        let e = classify_command(
            &json!({"error": "ERROR_ARGUMENT", "error_description": "Argument 'LINE' is null or empty"}),
        );
        assert!(
            matches!(&e, BitrixError::Rejected { status: 200, code, description }
                if code == "ERROR_ARGUMENT" && description.contains("LINE")),
            "{e:?}"
        );
        let e =
            classify_command(&json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": ""}));
        assert!(matches!(e, BitrixError::RateLimited { .. }), "{e:?}");
        assert!(matches!(
            classify_command(&json!({"error_description": "no code"})),
            BitrixError::Protocol(_)
        ));
        assert!(matches!(
            classify_command(&json!("text")),
            BitrixError::Protocol(_)
        ));
    }

    #[test]
    fn long_descriptions_are_cut() {
        let long = "x".repeat(5000);
        let e = c(400, json!({"error": "E", "error_description": long}));
        match e {
            BitrixError::Rejected { description, .. } => {
                assert!(description.chars().count() <= MAX_DESCRIPTION + 1)
            }
            other => panic!("{other:?}"),
        }
    }
}
