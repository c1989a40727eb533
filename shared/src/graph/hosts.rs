//! The hosts media is fetched from. A WhatsApp media URL is fetched with the channel's
//! access token, and an Instagram attachment URL arrives in a webhook: both must reach
//! Meta's CDNs and nothing else, so a token cannot leak and the media proxy cannot be used to
//! fetch arbitrary URLs (no open proxy, no requests into our own network).

use crate::http_client::is_loopback_host;

use super::GraphError;

/// Meta's media hosts, matched as the domain itself or any subdomain: `lookaside.fbsbx.com`
/// (WhatsApp media URLs, Instagram `ig_messaging_cdn` attachment URLs), `*.fbcdn.net` and
/// `*.cdninstagram.com` (Facebook and Instagram CDNs).
pub const META_MEDIA_DOMAINS: &[&str] = &["fbsbx.com", "fbcdn.net", "cdninstagram.com"];

/// Which URLs media may be fetched from: `https` on the default port to one of the allowed
/// domains, or (only when allowed, for the local server and tests) any loopback host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    domains: Vec<String>,
    allow_loopback: bool,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy::meta()
    }
}

impl HostPolicy {
    /// Meta's media domains ([`META_MEDIA_DOMAINS`]), no loopback.
    pub fn meta() -> Self {
        HostPolicy {
            domains: META_MEDIA_DOMAINS.iter().map(|d| (*d).to_owned()).collect(),
            allow_loopback: false,
        }
    }

    /// Also allows loopback hosts (http or https): for loopback fakes only.
    pub fn with_loopback(mut self, allow: bool) -> Self {
        self.allow_loopback = allow;
        self
    }

    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// True when `host` is one of the domains or a subdomain of one.
    fn allows_domain(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1)
        })
    }

    /// The parsed URL when it may be fetched; otherwise [`GraphError::Refused`] (which names
    /// no part of the URL).
    pub fn check(&self, url: &str) -> Result<http::Uri, GraphError> {
        let refused = |why: &str| GraphError::Refused(format!("media URL {why}"));
        let uri: http::Uri = url
            .trim()
            .parse()
            .map_err(|_| refused("is not an absolute URL"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| refused("is not an absolute URL"))?;
        if authority.as_str().contains('@') {
            return Err(refused("carries user info"));
        }
        let host = authority.host();
        if self.allow_loopback && is_loopback_host(host) {
            return match uri.scheme_str() {
                Some("http") | Some("https") => Ok(uri),
                _ => Err(refused("must be https")),
            };
        }
        if uri.scheme_str() != Some("https") {
            return Err(refused("must be https"));
        }
        if authority.port_u16().is_some_and(|p| p != 443) {
            return Err(refused("must use the default https port"));
        }
        if !self.allows_domain(host) {
            return Err(refused("is not on an allowed Meta media host"));
        }
        Ok(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_cdns_only() {
        let p = HostPolicy::meta();
        for ok in [
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3",
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=x",
            "https://cdn.fbsbx.com/v/t59.2708-21/file.pdf",
            "https://scontent-iad3-1.xx.fbcdn.net/v/t1.15752-9/1.jpg?oh=1&oe=2",
            "https://scontent.cdninstagram.com/v/t51.2885-15/1.jpg",
            "https://LOOKASIDE.FBSBX.COM/x",
            "https://fbcdn.net:443/x",
        ] {
            assert!(p.check(ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "http://lookaside.fbsbx.com/x",
            "https://evilfbsbx.com/x",
            "https://fbsbx.com.evil.example/x",
            "https://evil.example/fbcdn.net",
            "https://lookaside.fbsbx.com:8443/x",
            "https://user@lookaside.fbsbx.com/x",
            "https://.fbcdn.net/x",
            "http://127.0.0.1:9/x",
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "lookaside.fbsbx.com/x",
        ] {
            assert!(
                matches!(p.check(bad), Err(GraphError::Refused(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn loopback_only_when_allowed() {
        let p = HostPolicy::meta().with_loopback(true);
        assert!(p.check("http://127.0.0.1:9/lookaside/1").is_ok());
        assert!(p.check("http://[::1]:9/x").is_ok());
        assert!(p.check("http://10.0.0.1/x").is_err());
        assert!(p.check("http://lookaside.fbsbx.com/x").is_err());
        let text = HostPolicy::meta()
            .check("https://secret.example/?sig=abc")
            .unwrap_err()
            .to_string();
        assert!(!text.contains("secret") && !text.contains("abc"), "{text}");
    }
}
