//! The Graph API client: generic JSON calls and the WhatsApp Cloud API media endpoints.
//!
//! WhatsApp media (Meta, "Cloud API > Media"): `GET /{version}/{media-id}` with the business's
//! access token (`Authorization: Bearer`) answers
//! `{"messaging_product": "whatsapp", "url": "<URL>", "mime_type": "<MIME_TYPE>",
//! "sha256": "<HASH>", "file_size": "<FILE_SIZE>", "id": "<MEDIA_ID>"}`; the optional
//! `phone_number_id` query parameter makes Meta check that the media belongs to that number.
//! The `url` (on `lookaside.fbsbx.com`) is valid for 5 minutes and must itself be fetched with
//! the same token; without it Meta does not return the media. Received media ids stay
//! retrievable for a limited time (30 days is what Meta states for uploads).

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use hyper::body::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::classify;
use super::{GraphConfig, GraphConfigError, GraphError, HostPolicy};
use crate::http_client::{
    bearer, HttpAnswer, HttpClient, HttpClientConfig, HttpError, RedirectError,
};
use crate::ids::PhoneNumberId;
use crate::secret::Secret;

/// Largest JSON answer read from the Graph API.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;
pub use crate::http_client::MAX_REDIRECTS;
const MAX_MEDIA_ID: usize = 128;

/// What `GET /{media-id}` answers. `Debug` hides the URL (with the token it is a capability).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct MediaInfo {
    pub id: String,
    /// Where the bytes are, for 5 minutes, with the same token.
    pub url: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Bytes; Meta sends it as a string or a number.
    #[serde(default, deserialize_with = "size_from_string_or_number")]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub messaging_product: Option<String>,
}

impl fmt::Debug for MediaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaInfo")
            .field("id", &self.id)
            .field("mime_type", &self.mime_type)
            .field("file_size", &self.file_size)
            .finish_non_exhaustive()
    }
}

fn size_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        N(u64),
        S(String),
    }
    Ok(match Option::<Size>::deserialize(d)? {
        Some(Size::N(n)) => Some(n),
        Some(Size::S(s)) => s.trim().parse().ok(),
        None => None,
    })
}

/// Downloaded media: the answer's `Content-Type` (as sent; callers decide what to trust) and
/// the bytes. `Debug` shows the size only.
#[derive(Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl fmt::Debug for Downloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Downloaded")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The Graph API client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct GraphClient {
    http: HttpClient,
    config: Arc<GraphConfig>,
    hosts: HostPolicy,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("config", &self.config)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

fn http_error(e: HttpError) -> GraphError {
    match e {
        HttpError::Refused(why) => GraphError::Refused(why.to_owned()),
        HttpError::TooLarge { limit } => GraphError::TooLarge { limit },
        other => GraphError::Unavailable {
            status: None,
            detail: other.to_string(),
        },
    }
}

/// A path below the version: segments of ASCII letters, digits, `_` and `-`.
fn check_path(path: &str) -> Result<(), GraphError> {
    let ok = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(GraphError::Refused(
            "Graph API path segments must be letters, digits, '_' or '-'".into(),
        ))
    }
}

/// `url` with `query` appended, each part percent-encoded.
fn with_query(mut url: String, query: &[(&str, &str)]) -> String {
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    url
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl GraphClient {
    /// A client for `config`; media hosts are Meta's CDNs, plus loopback when the Graph API
    /// itself is a loopback fake.
    pub fn new(config: GraphConfig) -> Result<Self, GraphConfigError> {
        let loopback = config.is_loopback();
        let http = HttpClient::new(&HttpClientConfig {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_body: MAX_JSON_BYTES,
            allow_missing_trust_store: loopback,
            ..HttpClientConfig::default()
        })
        .map_err(|e| GraphConfigError::Tls(e.to_string()))?;
        Ok(GraphClient {
            http,
            config: Arc::new(config),
            hosts: HostPolicy::meta().with_loopback(loopback),
        })
    }

    /// Replaces the media host policy.
    pub fn with_hosts(mut self, hosts: HostPolicy) -> Self {
        self.hosts = hosts;
        self
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// Where media may be fetched from.
    pub fn hosts(&self) -> &HostPolicy {
        &self.hosts
    }

    fn headers(
        access_token: Option<&Secret>,
        accept: &'static str,
    ) -> Result<HeaderMap, GraphError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(token) = access_token {
            headers.insert(AUTHORIZATION, bearer(token.expose()).map_err(http_error)?);
        }
        Ok(headers)
    }

    fn json_answer<T: DeserializeOwned>(answer: HttpAnswer) -> Result<T, GraphError> {
        if !answer.is_success() {
            return Err(classify(answer.status, &answer.body, answer.retry_after()));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            GraphError::Protocol(format!(
                "HTTP {} with an unreadable body: {e}",
                answer.status
            ))
        })
    }

    /// `GET /{version}/{path}?{query}` with the token as a Bearer header; the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        access_token: &Secret,
    ) -> Result<T, GraphError> {
        check_path(path)?;
        let url = with_query(self.config.url(path), query);
        self.get_url(&url, Some(access_token)).await
    }

    /// `GET {base}/{path}?{query}` without a version and without a Bearer header: the OAuth
    /// endpoints that take their credentials in the query (Instagram's `access_token` and
    /// `refresh_access_token` on `graph.instagram.com`). `versioned` puts the version in
    /// front of the path (`/{version}/oauth/access_token` on `graph.facebook.com`).
    pub async fn get_json_unauthenticated<T: DeserializeOwned>(
        &self,
        path: &str,
        versioned: bool,
        query: &[(&str, &str)],
    ) -> Result<T, GraphError> {
        check_path(path)?;
        let url = if versioned {
            self.config.url(path)
        } else {
            self.config.root_url(path)
        };
        self.get_url(&with_query(url, query), None).await
    }

    async fn get_url<T: DeserializeOwned>(
        &self,
        url: &str,
        access_token: Option<&Secret>,
    ) -> Result<T, GraphError> {
        let headers = Self::headers(access_token, "application/json")?;
        let answer = self
            .http
            .get(url, headers, MAX_JSON_BYTES)
            .await
            .map_err(http_error)?;
        Self::json_answer(answer)
    }

    /// `POST {base}/{path}` (no version) with an `application/x-www-form-urlencoded` body and
    /// no Bearer header: `api.instagram.com/oauth/access_token`, whose credentials are form
    /// fields.
    pub async fn post_form_unauthenticated<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, GraphError> {
        check_path(path)?;
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = http::Request::post(self.config.root_url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| GraphError::Refused("not a valid request".into()))?;
        request
            .headers_mut()
            .extend(Self::headers(None, "application/json")?);
        let answer = self.http.send(request).await.map_err(http_error)?;
        Self::json_answer(answer)
    }

    /// `POST /{version}/{path}?{query}` without a body, the token as a Bearer header (e.g.
    /// `me/subscribed_apps?subscribed_fields=messages`); the JSON answer.
    pub async fn post_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        access_token: &Secret,
    ) -> Result<T, GraphError> {
        check_path(path)?;
        let url = with_query(self.config.url(path), query);
        let mut request = http::Request::post(url)
            .body(Full::new(Bytes::new()))
            .map_err(|_| GraphError::Refused("not a valid request".into()))?;
        request
            .headers_mut()
            .extend(Self::headers(Some(access_token), "application/json")?);
        let answer = self.http.send(request).await.map_err(http_error)?;
        Self::json_answer(answer)
    }

    /// `POST /{version}/{path}` with a JSON body and the token as a Bearer header; the JSON
    /// answer. (For the send path: `/{phone-number-id}/messages`, `/{ig-id}/messages`.)
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        access_token: &Secret,
    ) -> Result<T, GraphError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| GraphError::Refused(format!("body not serialisable: {e}")))?;
        self.post_body(path, "application/json", Bytes::from(body), access_token)
            .await
    }

    /// `POST /{version}/{path}` with a body already encoded as `content_type` (e.g. the
    /// `multipart/form-data` of a media upload) and the token as a Bearer header; the JSON
    /// answer.
    pub async fn post_body<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
        access_token: &Secret,
    ) -> Result<T, GraphError> {
        check_path(path)?;
        let mut request = http::Request::post(self.config.url(path))
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|_| GraphError::Refused("not a valid request".into()))?;
        request
            .headers_mut()
            .extend(Self::headers(Some(access_token), "application/json")?);
        let answer = self.http.send(request).await.map_err(http_error)?;
        Self::json_answer(answer)
    }

    /// `DELETE /{version}/{path}` with the token as a Bearer header; the JSON answer (e.g.
    /// `{"success": true}` for `/{waba-id}/subscribed_apps`).
    pub async fn delete_json<T: DeserializeOwned>(
        &self,
        path: &str,
        access_token: &Secret,
    ) -> Result<T, GraphError> {
        check_path(path)?;
        let mut request = http::Request::delete(self.config.url(path))
            .body(Full::new(Bytes::new()))
            .map_err(|_| GraphError::Refused("not a valid request".into()))?;
        request
            .headers_mut()
            .extend(Self::headers(Some(access_token), "application/json")?);
        let answer = self.http.send(request).await.map_err(http_error)?;
        Self::json_answer(answer)
    }

    /// WhatsApp: the download URL and details of `media_id`. With `phone_number_id`, Meta
    /// refuses media that does not belong to that number.
    pub async fn media_info(
        &self,
        media_id: &str,
        access_token: &Secret,
        phone_number_id: Option<&PhoneNumberId>,
    ) -> Result<MediaInfo, GraphError> {
        if media_id.is_empty() || media_id.len() > MAX_MEDIA_ID {
            return Err(GraphError::Refused("media id of unexpected length".into()));
        }
        let query: Vec<(&str, &str)> = phone_number_id
            .map(|p| ("phone_number_id", p.as_str()))
            .into_iter()
            .collect();
        let info: MediaInfo = self.get_json(media_id, &query, access_token).await?;
        if info.url.is_empty() {
            return Err(GraphError::Protocol("media answer without a url".into()));
        }
        Ok(info)
    }

    /// WhatsApp: the bytes behind a [`MediaInfo::url`], fetched with the same token. The URL
    /// (and every redirect) must pass the [`HostPolicy`], so the token only goes to Meta.
    pub async fn download(
        &self,
        url: &str,
        access_token: &Secret,
        max_bytes: usize,
    ) -> Result<Downloaded, GraphError> {
        self.fetch_media(url, Some(access_token), max_bytes).await
    }

    /// A Meta CDN URL that needs no token (Instagram attachments), under the same
    /// [`HostPolicy`]. An expired signed CDN URL (403) counts as gone ([`GraphError::NotFound`]).
    pub async fn download_public(
        &self,
        url: &str,
        max_bytes: usize,
    ) -> Result<Downloaded, GraphError> {
        self.fetch_media(url, None, max_bytes).await
    }

    async fn fetch_media(
        &self,
        url: &str,
        access_token: Option<&Secret>,
        max_bytes: usize,
    ) -> Result<Downloaded, GraphError> {
        let headers = Self::headers(access_token, "*/*")?;
        let answer = self
            .http
            .get_following_redirects(url, &headers, max_bytes, |u| self.hosts.check(u))
            .await
            .map_err(|e| match e {
                RedirectError::Http(e) => http_error(e),
                RedirectError::Refused(e) => e,
                RedirectError::NoLocation => {
                    GraphError::Protocol("redirect without a usable Location".into())
                }
                RedirectError::TooMany => {
                    GraphError::Protocol(format!("more than {MAX_REDIRECTS} redirects"))
                }
            })?;
        match answer.status {
            200..=299 => Ok(Downloaded {
                content_type: answer.content_type().map(str::to_owned),
                bytes: answer.body,
            }),
            status => {
                let error = classify(status, &answer.body, answer.retry_after());
                Err(match error {
                    GraphError::Unauthorized(e) | GraphError::Rejected(e)
                        if access_token.is_none() && matches!(status, 401 | 403) =>
                    {
                        GraphError::NotFound(e)
                    }
                    other => other,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_info_reads_the_documented_answer() {
        for size in [r#""303833""#, "303833"] {
            let body = format!(
                r#"{{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3","mime_type":"image/jpeg","sha256":"81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3","file_size":{size},"id":"2621233374848975"}}"#
            );
            let info: MediaInfo = serde_json::from_str(&body).unwrap();
            assert_eq!(info.file_size, Some(303833));
            assert_eq!(info.id, "2621233374848975");
            assert_eq!(info.mime_type.as_deref(), Some("image/jpeg"));
            assert!(!format!("{info:?}").contains("lookaside"));
        }
    }

    #[test]
    fn paths_and_queries() {
        assert!(check_path("123456").is_ok());
        assert!(check_path("106540352242922/messages").is_ok());
        for bad in ["", "../x", "a/../b", "a?b", "a b", "a//b", "x%2F"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
