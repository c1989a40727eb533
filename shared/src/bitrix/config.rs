//! Where the client connects: the OAuth server and the portals' REST roots.
//!
//! A portal's REST root is `https://{domain}/rest/` (the `client_endpoint` Bitrix24 returns with
//! every token pair). For the local server and tests, `portal_base_url` redirects every portal
//! to `{portal_base_url}/{domain}/rest/`, so one loopback fake can play many portals. Plain
//! `http` is accepted only for loopback hosts; anything else must be `https`.

use std::fmt;
use std::time::Duration;

use crate::ids::BitrixDomain;
use crate::secret::Secret;

use super::pacing::PacingConfig;

/// Bitrix24's OAuth server. All operations that use the application's `client_secret` go
/// there, never to a portal (apidocs "Full OAuth 2.0 Authorization Protocol").
pub const DEFAULT_OAUTH_URL: &str = "https://oauth.bitrix.info/oauth/token/";

/// Environment variables read by [`BitrixConfig::from_lookup`].
pub const ENV_CLIENT_ID: &str = "WAPPLINE_BITRIX_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "WAPPLINE_BITRIX_CLIENT_SECRET";
pub const ENV_OAUTH_URL: &str = "WAPPLINE_BITRIX_OAUTH_URL";
pub const ENV_PORTAL_BASE_URL: &str = "WAPPLINE_BITRIX_PORTAL_BASE_URL";
/// Optional: the limit on one whole REST call, in milliseconds (default 20 s).
pub const ENV_TIMEOUT_MS: &str = "WAPPLINE_BITRIX_TIMEOUT_MS";

/// A configuration value was refused. The message names the setting and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitrixConfigError {
    #[error("{field}: {reason}")]
    InvalidUrl { field: &'static str, reason: String },
    #[error(
        "{field}: plain http is accepted only for loopback hosts (127.0.0.1, ::1, localhost), \
         not {host:?}; use https"
    )]
    InsecureUrl { field: &'static str, host: String },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{field} is not set")]
    Missing { field: &'static str },
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// An absolute `https` URL, or an `http` URL whose host is loopback. No user info, query or
/// fragment. Kept as written (the OAuth endpoint's trailing slash matters).
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    url: String,
    plain_http: bool,
}

impl EndpointUrl {
    /// Parses `s` for the setting `field` (named in the error).
    pub fn parse(field: &'static str, s: &str) -> Result<Self, BitrixConfigError> {
        let bad = |reason: &str| BitrixConfigError::InvalidUrl {
            field,
            reason: reason.to_owned(),
        };
        let s = s.trim();
        if s.contains('#') || s.contains('?') {
            return Err(bad("must not carry a query or fragment"));
        }
        let uri: http::Uri = s
            .parse()
            .map_err(|_| bad("must be an absolute URL like https://host/path"))?;
        let plain_http = match uri.scheme_str() {
            Some("https") => false,
            Some("http") => true,
            Some(_) => return Err(bad("scheme must be https (or http for loopback)")),
            None => return Err(bad("must be an absolute URL like https://host/path")),
        };
        let authority = uri.authority().ok_or_else(|| bad("must name a host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry user info"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("must name a host"));
        }
        if plain_http && !is_loopback_host(host) {
            return Err(BitrixConfigError::InsecureUrl {
                field,
                host: host.to_owned(),
            });
        }
        Ok(EndpointUrl {
            url: s.to_owned(),
            plain_http,
        })
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL without trailing slashes, ready to have a path appended.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// True for an `http` (loopback) URL.
    pub fn is_plain_http(&self) -> bool {
        self.plain_http
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointUrl({})", self.url)
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

pub use crate::http_client::is_loopback_host;

/// Everything the client needs to reach Bitrix24. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct BitrixConfig {
    /// The application's `client_id` (partner area or the portal's local application card).
    pub client_id: String,
    /// The application's `client_secret`; sent only to the OAuth server.
    pub client_secret: Secret,
    /// The OAuth token endpoint, default [`DEFAULT_OAUTH_URL`].
    pub oauth_url: EndpointUrl,
    /// When set, portal `d` is reached at `{portal_base_url}/{d}/rest/` instead of
    /// `https://{d}/rest/` (local server, tests).
    pub portal_base_url: Option<EndpointUrl>,
    /// Client-side pacing per portal.
    pub pacing: PacingConfig,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on a whole request, from sending to the last byte of the answer.
    pub request_timeout: Duration,
}

impl BitrixConfig {
    /// A configuration for the real Bitrix24 (default OAuth server, portals over https).
    pub fn new(client_id: &str, client_secret: Secret) -> Result<Self, BitrixConfigError> {
        let client_id = client_id.trim();
        if client_id.is_empty()
            || client_id.len() > 256
            || !client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(BitrixConfigError::Invalid {
                field: "client_id",
                reason: "must be 1 to 256 visible ASCII characters".into(),
            });
        }
        Ok(BitrixConfig {
            client_id: client_id.to_owned(),
            client_secret,
            oauth_url: EndpointUrl::parse("oauth_url", DEFAULT_OAUTH_URL)?,
            portal_base_url: None,
            pacing: PacingConfig::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
        })
    }

    /// Replaces the OAuth token endpoint.
    pub fn with_oauth_url(mut self, url: &str) -> Result<Self, BitrixConfigError> {
        self.oauth_url = EndpointUrl::parse("oauth_url", url)?;
        Ok(self)
    }

    /// Routes every portal through `url` (see [`BitrixConfig::portal_base_url`]).
    pub fn with_portal_base_url(mut self, url: &str) -> Result<Self, BitrixConfigError> {
        self.portal_base_url = Some(EndpointUrl::parse("portal_base_url", url)?);
        Ok(self)
    }

    /// Reads `WAPPLINE_BITRIX_CLIENT_ID`, `WAPPLINE_BITRIX_CLIENT_SECRET` and the optional
    /// `WAPPLINE_BITRIX_OAUTH_URL`, `WAPPLINE_BITRIX_PORTAL_BASE_URL` and
    /// `WAPPLINE_BITRIX_TIMEOUT_MS` through `get`
    /// (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, BitrixConfigError> {
        let non_empty = |k: &'static str| get(k).filter(|v| !v.trim().is_empty());
        let id = non_empty(ENV_CLIENT_ID).ok_or(BitrixConfigError::Missing {
            field: ENV_CLIENT_ID,
        })?;
        let secret = non_empty(ENV_CLIENT_SECRET).ok_or(BitrixConfigError::Missing {
            field: ENV_CLIENT_SECRET,
        })?;
        let secret = Secret::parse("client_secret", secret.trim()).map_err(|reason| {
            BitrixConfigError::Invalid {
                field: ENV_CLIENT_SECRET,
                reason,
            }
        })?;
        let mut config = BitrixConfig::new(&id, secret)?;
        if let Some(url) = non_empty(ENV_OAUTH_URL) {
            config = config.with_oauth_url(&url)?;
        }
        if let Some(url) = non_empty(ENV_PORTAL_BASE_URL) {
            config = config.with_portal_base_url(&url)?;
        }
        if let Some(ms) = non_empty(ENV_TIMEOUT_MS) {
            config.request_timeout =
                crate::http_client::timeout_ms(&ms).ok_or(BitrixConfigError::Invalid {
                    field: ENV_TIMEOUT_MS,
                    reason: crate::http_client::TIMEOUT_MS_RULE.into(),
                })?;
        }
        Ok(config)
    }

    /// The portal's REST root, ending in `/rest/`.
    pub fn rest_root(&self, portal: &BitrixDomain) -> String {
        match &self.portal_base_url {
            Some(base) => format!("{}/{}/rest/", base.base(), portal.as_str()),
            None => format!("https://{}/rest/", portal.as_str()),
        }
    }

    /// True when every configured endpoint is plain-http loopback (then no TLS trust store is
    /// needed).
    pub(crate) fn loopback_only(&self) -> bool {
        self.oauth_url.is_plain_http()
            && self
                .portal_base_url
                .as_ref()
                .is_some_and(EndpointUrl::is_plain_http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::parse("client_secret", "s3cr3t-value-for-tests").unwrap()
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://oauth.bitrix.info/oauth/token/",
            "https://example.com",
            "http://127.0.0.1:8099",
            "http://127.0.0.2:1/x/",
            "http://localhost:8080/fake",
            "http://LOCALHOST",
            "http://[::1]:9000/",
        ] {
            assert!(EndpointUrl::parse("u", ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1:80",
            "http://169.254.169.254/",
            "http://[::2]:80",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(
                matches!(
                    EndpointUrl::parse("u", bad),
                    Err(BitrixConfigError::InsecureUrl { .. })
                ),
                "{bad} accepted"
            );
        }
        for bad in [
            "ftp://example.com",
            "example.com",
            "/rest/",
            "https://user:pw@example.com",
            "https://example.com/?a=b",
            "https://example.com/#x",
            "",
        ] {
            assert!(
                matches!(
                    EndpointUrl::parse("u", bad),
                    Err(BitrixConfigError::InvalidUrl { .. })
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn rest_root_normal_and_redirected() {
        let d = BitrixDomain::parse("example.bitrix24.com").unwrap();
        let c = BitrixConfig::new("app.1", secret()).unwrap();
        assert_eq!(c.rest_root(&d), "https://example.bitrix24.com/rest/");
        let c = c.with_portal_base_url("http://127.0.0.1:9/fake/").unwrap();
        assert_eq!(
            c.rest_root(&d),
            "http://127.0.0.1:9/fake/example.bitrix24.com/rest/"
        );
    }

    #[test]
    fn from_lookup_reads_the_environment_names() {
        let env = |k: &str| match k {
            ENV_CLIENT_ID => Some("local.abc.123".to_owned()),
            ENV_CLIENT_SECRET => Some("topsecret".to_owned()),
            ENV_PORTAL_BASE_URL => Some("http://127.0.0.1:4000".to_owned()),
            _ => None,
        };
        let c = BitrixConfig::from_lookup(env).unwrap();
        assert_eq!(c.client_id, "local.abc.123");
        assert_eq!(
            c.oauth_url.as_str(),
            "https://oauth.bitrix.info/oauth/token/"
        );
        assert!(c.portal_base_url.is_some());
        assert!(!format!("{c:?}").contains("topsecret"));
        assert_eq!(c.request_timeout, Duration::from_secs(20));
        let timeout = |v: &'static str| {
            BitrixConfig::from_lookup(move |k| match k {
                ENV_TIMEOUT_MS => Some(v.to_owned()),
                _ => env(k),
            })
        };
        assert_eq!(
            timeout("1500").unwrap().request_timeout,
            Duration::from_millis(1500)
        );
        assert!(timeout("0").is_err() && timeout("soon").is_err());
        let missing = BitrixConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(
            missing,
            BitrixConfigError::Missing {
                field: ENV_CLIENT_ID
            }
        );
    }
}
