//! Downloading an operator's file from the URL Bitrix24 gave for it, before it is uploaded to
//! the WhatsApp Cloud API.
//!
//! The URL comes from a Bitrix24 event, so it is fetched under rules: `https` (plain `http`
//! only to loopback, and loopback at all only when allowed: tests and the local server); no
//! user info; no host in private, link-local or otherwise internal ranges, whether named by
//! an IP literal or by a name that resolves there (every resolved address is checked when
//! connecting, [`crate::public_resolver`]); at most
//! [`MAX_REDIRECTS`] redirects, each checked the same way; a size limit, checked against
//! `Content-Length` and while reading. Errors never carry the URL (it may hold a token).

use std::net::IpAddr;

use crate::graph::{InstagramAttachmentType, WhatsAppMediaType};
use crate::meta::MediaKind;
use crate::public_resolver::{is_internal, AddressRule, Resolver};
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
        Self::with_resolver(
            allow_loopback,
            Resolver::new(AddressRule::PublicOnly { allow_loopback }),
        )
    }

    /// As [`FileFetcher::new`], resolving names with `resolver` (its rule should be
    /// [`AddressRule::PublicOnly`]; a fixed table of names lets tests name internal hosts).
    pub fn with_resolver(
        allow_loopback: bool,
        resolver: Resolver,
    ) -> Result<Self, HttpClientError> {
        let http = HttpClient::new(&HttpClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_body: 1024 * 1024,
            allow_missing_trust_store: allow_loopback,
            max_idle_per_host: 4,
            resolver,
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

// What the outbound worker sends a file as: its MIME type and the providers' media kinds.

/// The MIME type of a file by its name's extension, for the types Meta lists.
pub(super) fn mime_from_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "amr" => "audio/amr",
        "ogg" | "opus" => "audio/ogg",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => return None,
    })
}

pub(super) fn usable_mime(m: Option<&str>) -> Option<String> {
    m.map(|m| {
        m.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
    .filter(|m| m.contains('/') && m != "application/octet-stream")
}

pub(super) fn whatsapp_kind(kind: MediaKind) -> WhatsAppMediaType {
    match kind {
        MediaKind::Image => WhatsAppMediaType::Image,
        MediaKind::Audio => WhatsAppMediaType::Audio,
        MediaKind::Video => WhatsAppMediaType::Video,
        MediaKind::Sticker => WhatsAppMediaType::Sticker,
        MediaKind::Document | MediaKind::File => WhatsAppMediaType::Document,
    }
}

pub(super) fn instagram_kind(kind: MediaKind) -> InstagramAttachmentType {
    match kind {
        MediaKind::Image | MediaKind::Sticker => InstagramAttachmentType::Image,
        MediaKind::Audio => InstagramAttachmentType::Audio,
        MediaKind::Video => InstagramAttachmentType::Video,
        MediaKind::Document | MediaKind::File => InstagramAttachmentType::File,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_by_name() {
        assert_eq!(mime_from_name("Invoice.PDF"), Some("application/pdf"));
        assert_eq!(mime_from_name("photo.jpeg"), Some("image/jpeg"));
        assert_eq!(mime_from_name("noext"), None);
        assert_eq!(
            usable_mime(Some("Image/PNG; x=1")),
            Some("image/png".into())
        );
        assert_eq!(usable_mime(Some("application/octet-stream")), None);
    }

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

    /// A server on loopback that answers every request with a redirect to `location`.
    async fn redirecting_to(location: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    fn names(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, Vec<IpAddr>> {
        pairs
            .iter()
            .map(|(n, ip)| ((*n).to_owned(), vec![ip.parse().unwrap()]))
            .collect()
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_an_internal_address_is_refused() {
        let internal = "internal network address";
        for (ip, loopback_allowed) in [
            ("169.254.169.254", false),
            ("10.0.0.5", false),
            ("127.0.0.1", false),
            // Loopback allowed (tests, the local server) still keeps the rest out.
            ("192.168.1.10", true),
        ] {
            let resolver = Resolver::new(AddressRule::PublicOnly {
                allow_loopback: loopback_allowed,
            })
            .with_fixed_names(names(&[("files.example.test", ip)]));
            let fetcher = FileFetcher::with_resolver(true, resolver)
                .unwrap()
                .with_loopback(loopback_allowed);
            // The URL's text passes the host check: only its resolution is internal.
            assert!(fetcher.check("https://files.example.test/f.jpg").is_ok());
            let e = fetcher
                .fetch("https://files.example.test/f.jpg", 1024)
                .await
                .unwrap_err();
            assert!(
                matches!(&e, FileError::Refused(why) if why.contains(internal)),
                "{ip}: {e:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_redirect_to_a_name_that_resolves_inside_is_refused() {
        let origin = redirecting_to("https://internal.example.test/latest/meta-data").await;
        let resolver = Resolver::new(AddressRule::PublicOnly {
            allow_loopback: true,
        })
        .with_fixed_names(names(&[("internal.example.test", "169.254.169.254")]));
        let fetcher = FileFetcher::with_resolver(true, resolver).unwrap();
        let e = fetcher
            .fetch(
                &format!("http://127.0.0.1:{}/file.jpg", origin.port()),
                1024,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FileError::Refused(why) if why.contains("internal network address")),
            "{e:?}"
        );
    }
}
