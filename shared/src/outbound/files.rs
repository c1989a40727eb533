//! Downloading an operator's file from the URL Bitrix24 gave for it, before it is uploaded to
//! the WhatsApp Cloud API.
//!
//! The URL comes from a Bitrix24 event, so it is fetched under rules: `https` (plain `http`
//! only to loopback, and loopback at all only when allowed: tests and the local server); no
//! user info; no IP-literal host in private, link-local or otherwise internal ranges; at most
//! [`MAX_REDIRECTS`] redirects, each checked the same way; a size limit, checked against
//! `Content-Length` and while reading. Errors never carry the URL (it may hold a token).

use std::net::IpAddr;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, ACCEPT};
use hyper::body::Bytes;

use crate::http_client::{
    check_target, is_loopback_host, HttpClient, HttpClientConfig, HttpClientError, HttpError,
    RedirectError,
};

/// Redirects followed, each hop checked like the first URL.
pub use crate::http_client::MAX_REDIRECTS;

/// What went wrong with a download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The URL breaks a rule; fetching it again would not help.
    #[error("file URL refused: {0}")]
    Refused(String),
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Bitrix24 answered with a client error (the link expired, the file was deleted).
    #[error("the file could not be downloaded (HTTP {status})")]
    Gone { status: u16 },
    /// Network trouble or a server error: try again later.
    #[error("the file host is unavailable: {0}")]
    Unavailable(String),
}

impl FileError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, FileError::Unavailable(_))
    }
}

/// A downloaded file: the bytes and the `Content-Type` the host sent. `Debug` shows the size.
#[derive(Clone)]
pub struct FetchedFile {
    pub bytes: Bytes,
    pub content_type: Option<String>,
}

impl std::fmt::Debug for FetchedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedFile")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Fetches operator files. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FileFetcher {
    http: HttpClient,
    allow_loopback: bool,
}

/// True for addresses that are not on the public internet.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

fn http_error(e: HttpError) -> FileError {
    match e {
        HttpError::Refused(why) => FileError::Refused(why.to_owned()),
        HttpError::TooLarge { limit } => FileError::TooLarge { limit },
        other => FileError::Unavailable(other.to_string()),
    }
}

impl FileFetcher {
    /// `allow_loopback`: whether loopback hosts (plain http included) may be fetched.
    pub fn new(allow_loopback: bool) -> Result<Self, HttpClientError> {
        let http = HttpClient::new(&HttpClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_body: 1024 * 1024,
            allow_missing_trust_store: allow_loopback,
            max_idle_per_host: 4,
        })?;
        Ok(FileFetcher {
            http,
            allow_loopback,
        })
    }

    pub fn with_loopback(mut self, allow: bool) -> Self {
        self.allow_loopback = allow;
        self
    }

    /// The URL, if it may be fetched.
    pub fn check(&self, url: &str) -> Result<http::Uri, FileError> {
        let uri: http::Uri = url
            .trim()
            .parse()
            .map_err(|_| FileError::Refused("not an absolute URL".into()))?;
        check_target(&uri).map_err(http_error)?;
        let host = uri.host().unwrap_or_default();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if is_loopback_host(host) {
            if !self.allow_loopback {
                return Err(FileError::Refused("loopback hosts are not allowed".into()));
            }
        } else if bare.parse::<IpAddr>().is_ok_and(is_internal) {
            return Err(FileError::Refused(
                "internal network addresses are not allowed".into(),
            ));
        }
        Ok(uri)
    }

    /// Downloads `url`, at most `max_bytes`.
    pub async fn fetch(&self, url: &str, max_bytes: usize) -> Result<FetchedFile, FileError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let answer = self
            .http
            .get_following_redirects(url, &headers, max_bytes, |u| self.check(u))
            .await
            .map_err(|e| match e {
                RedirectError::Http(e) => http_error(e),
                RedirectError::Refused(e) => e,
                RedirectError::NoLocation => {
                    FileError::Refused("redirect without a usable Location".into())
                }
                RedirectError::TooMany => {
                    FileError::Refused(format!("more than {MAX_REDIRECTS} redirects"))
                }
            })?;
        match answer.status {
            200..=299 => Ok(FetchedFile {
                content_type: answer.content_type().map(str::to_owned),
                bytes: answer.body,
            }),
            408 | 425 | 429 | 500..=599 => {
                Err(FileError::Unavailable(format!("HTTP {}", answer.status)))
            }
            status => Err(FileError::Gone { status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_unless_loopback_is_allowed() {
        let strict = FileFetcher::new(true).unwrap().with_loopback(false);
        let local = FileFetcher::new(true).unwrap();
        for ok in [
            "https://example.bitrix24.com/disk/file.jpg?token=1",
            "https://8.8.8.8/x",
            "https://[2001:4860::1]/x",
        ] {
            assert!(strict.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.bitrix24.com/f",
            "https://10.0.0.1/f",
            "https://169.254.169.254/latest/meta-data",
            "https://192.168.1.1/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "http://127.0.0.1:8080/f",
            "https://localhost/f",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
        ] {
            assert!(strict.check(bad).is_err(), "{bad}");
        }
        assert!(local.check("http://127.0.0.1:8080/f").is_ok());
        assert!(local.check("http://10.0.0.1/f").is_err());
    }

    #[test]
    fn errors_do_not_carry_the_url() {
        let strict = FileFetcher::new(true).unwrap().with_loopback(false);
        let e = strict
            .check("https://10.1.2.3/file?auth=s3cr3t")
            .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
