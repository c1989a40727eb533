//! The one mapping from outcomes to HTTP at the edge: JSON bodies, error shape, limits.
//! Every HTTP function answers errors as `{"error": {"code": "...", "message": "..."}}`.

use http::{header, Response, StatusCode};
use serde::Serialize;

/// A client-facing error: status, a stable machine code, and a message saying what is wrong.
/// Messages never contain secrets or message bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Machine-readable facts beside `code` and `message` in the error object (e.g. which
    /// quota, its limit, when it resets).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: serde_json::Map::new(),
            retry_after: None,
        }
    }
    /// 429: the tenant's monthly quota is used up. Says which quota, its limit, what is used,
    /// and when it resets (ISO-8601 UTC and Unix seconds); `Retry-After` counts down to it.
    pub fn quota_exceeded(q: &crate::usage::QuotaExceeded, now: i64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            q.to_string(),
        );
        e.details = serde_json::json!({
            "quota": q.quota,
            "limit": q.limit,
            "used": q.used,
            "resets_at": q.resets_at_iso(),
            "resets_at_unix": q.resets_at,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        e.retry_after = Some(q.retry_after_secs(now));
        e
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        )
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 409: the person the send is for asked to be erased and the erasure is under way
    /// (decision 0125). Nothing was kept or sent. No `Retry-After`: whether to write to the
    /// person again once it has completed is the business's choice, not a retry's.
    pub fn subject_being_erased() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "subject_being_erased",
            "this person's data is being erased; nothing was kept or sent",
        )
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }
    /// A failure on our side; the detail goes to the log, not to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; retry later",
        )
    }
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "temporarily unavailable; retry later",
        )
    }

    pub fn into_response(self) -> Response<String> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(flatten)]
            details: &'a serde_json::Map<String, serde_json::Value>,
        }
        let mut resp = json(
            self.status,
            &Body {
                error: Inner {
                    code: self.code,
                    message: &self.message,
                    details: &self.details,
                },
            },
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        }
        resp
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<String> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(text)
        .expect("static response parts")
}

/// An empty response (e.g. 204).
pub fn empty(status: StatusCode) -> Response<String> {
    Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, "no-store")
        .body(String::new())
        .expect("static response parts")
}

/// Parses a JSON object body, turning serde's message into a 400 that says what is wrong.
/// Anything but an object is refused first: serde would otherwise read a JSON array as a
/// struct's fields in order, so `["x"]` could pass for `{"reason": "x"}`.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let not_object = || ApiError::bad_request("request body must be a JSON object");
    if body.is_empty() {
        return Err(not_object());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(not_object());
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{QuotaExceeded, OUTBOUND_QUOTA};

    #[test]
    fn quota_errors_are_429_with_facts_and_retry_after() {
        let q = QuotaExceeded {
            quota: OUTBOUND_QUOTA,
            limit: 2,
            used: 2,
            resets_at: 1_796_083_200, // 2026-12-01T00:00:00Z
        };
        let resp = ApiError::quota_exceeded(&q, 1_796_083_200 - 3600).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3600");
        let body: serde_json::Value = serde_json::from_str(resp.body()).unwrap();
        let e = &body["error"];
        assert_eq!(e["code"], "quota_exceeded");
        assert_eq!(e["quota"], "monthly_outbound_messages");
        assert_eq!(e["limit"], 2);
        assert_eq!(e["used"], 2);
        assert_eq!(e["resets_at"], "2026-12-01T00:00:00Z");
        assert_eq!(e["resets_at_unix"], 1_796_083_200);
        assert!(e["message"]
            .as_str()
            .unwrap()
            .contains("2026-12-01T00:00:00Z"));
        // Other errors keep the plain shape.
        let plain: serde_json::Value =
            serde_json::from_str(ApiError::not_found("x").into_response().body()).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"error": {"code": "not_found", "message": "x"}})
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct One {
        reason: String,
    }

    #[test]
    fn only_json_objects_are_bodies() {
        assert!(parse_json::<One>(br#"{"reason": "x"}"#).is_ok());
        for bad in [&br#"["x"]"#[..], b"", b"null", b"\"x\"", b"{"] {
            let e = parse_json::<One>(bad).unwrap_err();
            assert_eq!(
                e.status,
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
