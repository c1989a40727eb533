//! Where the Graph API is and how long to wait for it.

use std::time::Duration;

use crate::http_client::{is_loopback_host, timeout_ms, TIMEOUT_MS_RULE};

/// Meta's Graph API.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version called by default. Meta's changelog (checked 2026-11) lists v26.0
/// (introduced 2026-07-29, no end date yet) as the newest version with months in service;
/// each version works for at least two years after its successor ships. Override with
/// [`ENV_VERSION`] to move to a newer one.
pub const DEFAULT_VERSION: &str = "v26.0";

/// Environment variables read by [`GraphConfig::from_lookup`].
pub const ENV_BASE_URL: &str = "GRAPH_API_BASE_URL";
pub const ENV_VERSION: &str = "GRAPH_API_VERSION";
/// Limit on a whole Graph API request, in milliseconds (default 20,000). A shorter lease
/// (`LEASE_SECS`) does not shorten it: the send worker's reconcile window is lengthened to
/// outlast it instead (decision 0110).
pub const ENV_TIMEOUT_MS: &str = "GRAPH_API_TIMEOUT_MS";

/// A configuration value was refused. The message names the setting and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphConfigError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// Everything the client needs to reach the Graph API.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    base_url: String,
    version: String,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on a whole request, from sending to the last byte of the answer (a media
    /// download included).
    pub request_timeout: Duration,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: DEFAULT_VERSION.to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
        }
    }
}

impl GraphConfig {
    /// Replaces the base URL: `https://host[:port][/path]`, or `http://` on a loopback host.
    /// No user info, query or fragment; trailing slashes are dropped.
    pub fn with_base_url(mut self, url: &str) -> Result<Self, GraphConfigError> {
        let bad = |reason: &str| GraphConfigError::Invalid {
            field: ENV_BASE_URL,
            reason: reason.to_owned(),
        };
        let url = url.trim().trim_end_matches('/');
        if url.contains('?') || url.contains('#') {
            return Err(bad("must not carry a query or fragment"));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|_| bad("must be an absolute URL like https://graph.facebook.com"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| bad("must be an absolute URL like https://graph.facebook.com"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry user info"));
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback_host(authority.host()) => {}
            Some("http") => {
                return Err(bad(
                    "plain http is accepted only for loopback hosts (127.0.0.1, ::1, localhost); use https",
                ))
            }
            _ => return Err(bad("scheme must be https (or http for loopback)")),
        }
        self.base_url = url.to_owned();
        Ok(self)
    }

    /// Replaces the version: `v<major>.<minor>`, e.g. `v26.0`.
    pub fn with_version(mut self, version: &str) -> Result<Self, GraphConfigError> {
        let v = version.trim();
        let ok = v
            .strip_prefix('v')
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major.len() <= 3
                    && minor.len() <= 3
                    && major
                        .bytes()
                        .chain(minor.bytes())
                        .all(|b| b.is_ascii_digit())
            });
        if !ok {
            return Err(GraphConfigError::Invalid {
                field: ENV_VERSION,
                reason: "must look like v26.0".into(),
            });
        }
        self.version = v.to_owned();
        Ok(self)
    }

    /// Reads [`ENV_BASE_URL`], [`ENV_VERSION`] and [`ENV_TIMEOUT_MS`] through `lookup` (e.g.
    /// `std::env::var`); all are optional.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, GraphConfigError> {
        let non_empty = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut config = GraphConfig::default();
        if let Some(url) = non_empty(ENV_BASE_URL) {
            config = config.with_base_url(&url)?;
        }
        if let Some(v) = non_empty(ENV_VERSION) {
            config = config.with_version(&v)?;
        }
        if let Some(ms) = non_empty(ENV_TIMEOUT_MS) {
            config.request_timeout = timeout_ms(&ms).ok_or(GraphConfigError::Invalid {
                field: ENV_TIMEOUT_MS,
                reason: TIMEOUT_MS_RULE.into(),
            })?;
        }
        Ok(config)
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// True when the Graph API is a plain-http loopback fake (then loopback media hosts are
    /// allowed too, and no TLS trust store is needed).
    pub fn is_loopback(&self) -> bool {
        self.base_url.starts_with("http://")
    }

    /// `{base}/{path}`, without the version (OAuth endpoints Meta documents unversioned).
    pub(crate) fn root_url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// `{base}/{version}/{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base_url,
            self.version,
            path.trim_start_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = GraphConfig::default();
        assert_eq!(c.base_url(), "https://graph.facebook.com");
        assert_eq!(
            c.url("123"),
            format!("https://graph.facebook.com/{DEFAULT_VERSION}/123")
        );
        let c = GraphConfig::from_lookup(|k| match k {
            ENV_BASE_URL => Some("http://127.0.0.1:4000/graph/".into()),
            ENV_VERSION => Some("v24.0".into()),
            ENV_TIMEOUT_MS => Some("1500".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(1_500));
        assert_eq!(
            c.url("/9/media"),
            "http://127.0.0.1:4000/graph/v24.0/9/media"
        );
        assert!(c.is_loopback());
    }

    #[test]
    fn refuses_insecure_and_odd_values() {
        for bad in [
            "http://graph.facebook.com",
            "http://10.1.2.3",
            "ftp://x",
            "graph.facebook.com",
            "https://u:p@graph.facebook.com",
            "https://graph.facebook.com/?x=1",
        ] {
            assert!(GraphConfig::default().with_base_url(bad).is_err(), "{bad}");
        }
        for bad in ["23.0", "v23", "vx.0", "v23.0/../x", ""] {
            assert!(GraphConfig::default().with_version(bad).is_err(), "{bad}");
        }
        for bad in ["0", "-5", "2s", "1.5"] {
            let read = GraphConfig::from_lookup(|k| (k == ENV_TIMEOUT_MS).then(|| bad.into()));
            assert!(
                matches!(
                    read,
                    Err(GraphConfigError::Invalid {
                        field: ENV_TIMEOUT_MS,
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
