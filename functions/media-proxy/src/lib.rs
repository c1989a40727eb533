//! media-proxy: serves the signed media links Bitrix24 downloads message media from
//! (`GET /media/{token}`, also `HEAD`).
//!
//! - 200: the media, with a safe `Content-Type`, `Content-Disposition: attachment` with a safe
//!   file name, `Cache-Control: private, no-store`, `X-Content-Type-Options: nosniff` and a
//!   sandboxing `Content-Security-Policy` (served from our domain, it must never run as a page).
//! - 403: forged, altered, truncated or expired link, a channel no longer connected to the
//!   link's tenant, or a source outside Meta's CDNs.
//! - 404: Meta no longer has the media.
//! - 502: Meta refused for good (revoked token...), media too large, channel without token.
//! - 503: Meta or our storage failed for now; a retry may succeed.
//!
//! The work is [`wappline::media::MediaProxy`]; this crate maps HTTP to it.
//!
//! Size: a buffered Lambda response is at most 6 MB and a binary body is base64-encoded on
//! the way through API Gateway, so buffered the function serves at most
//! [`BUFFERED_MAX_BYTES`] (4 MiB). With response streaming (a function URL in
//! `RESPONSE_STREAM` mode, or an API Gateway REST API with `responseTransferMode: STREAM`),
//! [`wappline::media::DEFAULT_MAX_BYTES`] (16 MiB) applies.

use lambda_http::http::{header, HeaderValue, Method, Response, StatusCode};
use lambda_http::{Body, Request};
use wappline::app::{HttpFunction, Services, ServicesError};
use wappline::edge::ApiError;
use wappline::media::{content_disposition, LinkError, MediaError, MediaProxy, MEDIA_PATH_PREFIX};

/// The route, as template.yaml declares it: `GET /media/{token}`.
pub const ROUTE: &str = "/media/{token}";
/// The path prefix the token follows.
pub const PATH_PREFIX: &str = MEDIA_PATH_PREFIX;
/// Largest media served by a buffered Lambda response (6 MB after base64).
pub const BUFFERED_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Environment: `stream` selects Lambda response streaming (see the crate documentation).
pub const ENV_RESPONSE_MODE: &str = "MEDIA_PROXY_RESPONSE_MODE";
/// Environment: the size limit in bytes, overriding the mode's default.
pub const ENV_MAX_BYTES: &str = "MEDIA_MAX_BYTES";

pub struct MediaProxyFunction {
    proxy: MediaProxy,
}

impl MediaProxyFunction {
    pub fn new(proxy: MediaProxy) -> Self {
        MediaProxyFunction { proxy }
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return error(ApiError::method_not_allowed()),
        };
        let Some(token) = token_of(req.uri().path()) else {
            return error(ApiError::not_found("no such media link"));
        };
        match self.proxy.fetch(token).await {
            Ok(media) => {
                let length = media.bytes.len();
                let body = if head {
                    Body::Empty
                } else {
                    Body::Binary(media.bytes.to_vec())
                };
                let fallback = media.content_type.split('/').next().unwrap_or("file");
                Response::builder()
                    .status(StatusCode::OK)
                    .header(
                        header::CONTENT_TYPE,
                        HeaderValue::from_str(&media.content_type)
                            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                    )
                    .header(header::CONTENT_LENGTH, length)
                    .header(
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&content_disposition(
                            media.filename.as_deref(),
                            fallback,
                        ))
                        .unwrap_or(HeaderValue::from_static("attachment")),
                    )
                    .header(header::CACHE_CONTROL, "private, no-store")
                    .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                    .header(
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; sandbox",
                    )
                    .header(header::REFERRER_POLICY, "no-referrer")
                    .body(body)
                    .expect("static response parts")
            }
            Err(e) => error(api_error(&e)),
        }
    }
}

/// The token in `/media/{token}` (after any stage prefix): base64url characters and one dot.
pub fn token_of(path: &str) -> Option<&str> {
    let start = path.rfind(PATH_PREFIX)? + PATH_PREFIX.len();
    let token = &path[start..];
    let valid = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then_some(token)
}

/// The one mapping from media outcomes to HTTP.
pub fn api_error(e: &MediaError) -> ApiError {
    match e {
        MediaError::Link(LinkError::Expired) => ApiError::new(
            StatusCode::FORBIDDEN,
            "link_expired",
            "this media link has expired",
        ),
        MediaError::Link(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", "invalid media link")
        }
        MediaError::NotConnected => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this media link is no longer valid",
        ),
        MediaError::Refused(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the media source is not allowed",
        ),
        MediaError::Gone => ApiError::not_found("the media is no longer available"),
        MediaError::TooLarge { limit } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "media_too_large",
            format!("the media is larger than {limit} bytes"),
        ),
        e if e.is_retryable() => ApiError::unavailable(),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "the media provider refused the request",
        ),
    }
}

fn error(e: ApiError) -> Response<Body> {
    e.into_response().map(Body::from)
}

impl MediaProxyFunction {
    /// Built by the composition root, the same way for the Lambda and the local server.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        Ok(Self::new(services.media_proxy()?))
    }
}

#[async_trait::async_trait]
impl HttpFunction for MediaProxyFunction {
    async fn handle(&self, req: Request) -> Response<Body> {
        MediaProxyFunction::handle(self, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wappline::graph::{GraphApiError, GraphError};

    #[test]
    fn tokens_from_paths() {
        assert_eq!(token_of("/media/abc.DEF-_9"), Some("abc.DEF-_9"));
        assert_eq!(token_of("/prod/media/abc.def"), Some("abc.def"));
        assert_eq!(token_of("/media/"), None);
        assert_eq!(token_of("/media/a/b"), None);
        assert_eq!(token_of("/media/a%2Fb"), None);
        assert_eq!(token_of("/other"), None);
    }

    #[test]
    fn statuses() {
        let api = GraphApiError {
            status: 401,
            code: Some(190),
            subcode: None,
            error_type: None,
            message: String::new(),
            fbtrace_id: None,
            is_transient: false,
        };
        for (e, status) in [
            (MediaError::Link(LinkError::Expired), 403),
            (MediaError::Link(LinkError::BadSignature), 403),
            (MediaError::Link(LinkError::Malformed), 403),
            (MediaError::NotConnected, 403),
            (MediaError::Refused("x".into()), 403),
            (MediaError::Gone, 404),
            (MediaError::TooLarge { limit: 1 }, 502),
            (MediaError::NoCredentials, 502),
            (
                MediaError::Provider(GraphError::Unauthorized(Box::new(api))),
                502,
            ),
            (
                MediaError::Provider(GraphError::Unavailable {
                    status: Some(500),
                    detail: String::new(),
                }),
                503,
            ),
            (MediaError::Internal("store".into()), 503),
        ] {
            assert_eq!(api_error(&e).status.as_u16(), status, "{e:?}");
        }
    }
}
