//! data-deletion: Meta's Data Deletion Callback and its public status page.
//!
//! - `POST /data-deletion`: the form-encoded `signed_request` Meta sends when a user asks for
//!   their data to be deleted. Verified (HMAC-SHA256 with the app secret, constant-time),
//!   recorded, queued for the erasure worker; answers
//!   `{"url": "<PUBLIC_BASE_URL>/data-deletion/status?code=<code>", "confirmation_code": "<code>"}`.
//!   A forged or malformed request gets a 4xx JSON error and records nothing.
//! - `GET /data-deletion/status?code=<code>` (or `/data-deletion/status/<code>`): the request's
//!   state and dates, as HTML, or as JSON with `Accept: application/json`. Unknown code: 404.
//!
//! The work is [`wappline::meta_deletion::MetaDeletion`]; this crate maps HTTP to it.

use lambda_http::http::{header, HeaderValue, Method, Response, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use wappline::app::{HttpFunction, Services, ServicesError};
use wappline::edge::{self, ApiError};
use wappline::meta_deletion::{
    render_not_found_html, render_status_html, signed_request, status_json, CallbackError,
    MetaDeletion, SignedRequestError, CALLBACK_PATH, STATUS_PATH,
};

pub use wappline::meta_deletion::{CALLBACK_PATH as PATH, STATUS_PATH as STATUS};

pub struct DataDeletion {
    deletion: MetaDeletion,
}

impl DataDeletion {
    pub fn new(deletion: MetaDeletion) -> Self {
        DataDeletion { deletion }
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let result = if path == CALLBACK_PATH {
            match *req.method() {
                Method::POST => self.callback(&req).await,
                _ => Err(ApiError::method_not_allowed()),
            }
        } else if path == STATUS_PATH || path.starts_with(&format!("{STATUS_PATH}/")) {
            match *req.method() {
                Method::GET | Method::HEAD => Ok(self.status(&req, &path).await),
                _ => Err(ApiError::method_not_allowed()),
            }
        } else {
            Err(ApiError::not_found("no such route"))
        };
        match result {
            Ok(resp) => resp,
            Err(e) => e.into_response().map(Body::from),
        }
    }

    async fn callback(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        match self.deletion.accept(req.body().as_ref()).await {
            Ok(answer) => Ok(edge::json(StatusCode::OK, &answer).map(Body::from)),
            Err(CallbackError::Rejected(e)) => {
                tracing::warn!(reason = %e, "data deletion callback refused");
                Err(rejection(e))
            }
            Err(CallbackError::Unavailable(detail)) => {
                tracing::error!(detail, "data deletion request not recorded");
                Err(ApiError::unavailable())
            }
        }
    }

    async fn status(&self, req: &Request, path: &str) -> Response<Body> {
        let code = match path.strip_prefix(&format!("{STATUS_PATH}/")) {
            Some(code) => Some(code.to_owned()),
            None => req
                .query_string_parameters()
                .first("code")
                .map(str::to_owned),
        };
        let wants_json = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let status = match code {
            Some(code) => match self.deletion.status(&code).await {
                Ok(status) => status,
                Err(e) => {
                    tracing::error!(error = %e, "data deletion status unreadable");
                    return ApiError::unavailable().into_response().map(Body::from);
                }
            },
            None => None,
        };
        match (status, wants_json) {
            (Some(s), true) => edge::json(StatusCode::OK, &status_json(&s)).map(Body::from),
            (Some(s), false) => html(StatusCode::OK, render_status_html(&s)),
            (None, true) => ApiError::not_found("unknown confirmation code")
                .into_response()
                .map(Body::from),
            (None, false) => html(StatusCode::NOT_FOUND, render_not_found_html()),
        }
    }
}

/// The 4xx for a refused signed request.
fn rejection(e: SignedRequestError) -> ApiError {
    match e {
        SignedRequestError::TooLarge => ApiError::payload_too_large(signed_request::MAX_BODY_BYTES),
        SignedRequestError::BadSignature => {
            ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", e.to_string())
        }
        SignedRequestError::UnsupportedAlgorithm => ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_algorithm",
            e.to_string(),
        ),
        SignedRequestError::Expired => {
            ApiError::new(StatusCode::BAD_REQUEST, "expired", e.to_string())
        }
        SignedRequestError::Missing
        | SignedRequestError::Malformed(_)
        | SignedRequestError::InvalidPayload(_) => ApiError::bad_request(e.to_string()),
    }
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body))
        .expect("static response parts");
    let headers = resp.headers_mut();
    // The code is in the URL: no referrer, no indexing, nothing loaded from elsewhere.
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'"),
    );
    resp
}

impl DataDeletion {
    /// Built by the composition root, the same way for the Lambda and the local server.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        Ok(Self::new(services.meta_deletion()?))
    }
}

#[async_trait::async_trait]
impl HttpFunction for DataDeletion {
    async fn handle(&self, req: Request) -> Response<Body> {
        DataDeletion::handle(self, req).await
    }
}
