//! [`MediaLinks`]: makes and checks the signed links Bitrix24 downloads media from, and is the
//! CRM sync's [`MediaLinker`].

use std::time::Duration;

use async_trait::async_trait;

use super::names::{extension_for, safe_filename};
use super::token::{self, KeyError, LinkError, MediaClaims, MediaLinkKey, MediaRef};
use crate::bitrix::CrmFile;
use crate::clock::now_secs;
use crate::crm_sync::MediaLinker;
use crate::graph::HostPolicy;
use crate::http_client::is_loopback_host;
use crate::ids::TenantId;
use crate::meta::{AccountRef, Media, MediaKind};

/// Environment variables read by [`MediaLinks::from_lookup`].
pub const ENV_KEY: &str = "MEDIA_LINK_KEY";
pub const ENV_PREVIOUS_KEY: &str = "MEDIA_LINK_KEY_PREVIOUS";
pub const ENV_PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";
pub const ENV_TTL_SECS: &str = "MEDIA_LINK_TTL_SECS";

/// How long a link works by default (decision 0048). Links are made by the CRM sync's
/// flusher just before the `imconnector.send.messages` request that carries them (and again
/// for each retry of it), and Bitrix24 downloads a message's files while it runs that call,
/// so a link has to outlive one request: at most the Bitrix24 client's 20 s timeout, plus a
/// portal that starts a request late and clock skew between functions. Five minutes is fifteen
/// times that; `MEDIA_LINK_TTL_SECS` lengthens it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest TTL taken from the environment: 30 days, which is also about how long Meta keeps
/// received WhatsApp media.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The path prefix media links are served under: `{public_base_url}/media/{token}`.
pub const MEDIA_PATH_PREFIX: &str = "/media/";

/// A media-links setting was refused. The message names the setting and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkConfigError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{field} is not set")]
    Missing { field: &'static str },
    #[error("{field}: {source}")]
    Key {
        field: &'static str,
        source: KeyError,
    },
}

/// Makes and verifies media links. Cheap to clone. `Debug` shows no key.
#[derive(Clone, Debug)]
pub struct MediaLinks {
    key: MediaLinkKey,
    previous: Vec<MediaLinkKey>,
    public_base_url: String,
    ttl: Duration,
    hosts: HostPolicy,
}

impl MediaLinks {
    /// Links served at `{public_base_url}/media/{token}`: `https`, or `http` on loopback; no
    /// query or fragment. TTL [`DEFAULT_TTL`]; Instagram URLs linked only on Meta's CDN hosts.
    pub fn new(key: MediaLinkKey, public_base_url: &str) -> Result<Self, LinkConfigError> {
        let bad = |reason: &str| LinkConfigError::Invalid {
            field: ENV_PUBLIC_BASE_URL,
            reason: reason.to_owned(),
        };
        let url = public_base_url.trim().trim_end_matches('/');
        if url.contains('?') || url.contains('#') {
            return Err(bad("must not carry a query or fragment"));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|_| bad("must be an absolute URL like https://api.example.com"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| bad("must be an absolute URL like https://api.example.com"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry user info"));
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback_host(authority.host()) => {}
            _ => return Err(bad("must be https (plain http only on loopback)")),
        }
        Ok(MediaLinks {
            key,
            previous: Vec::new(),
            public_base_url: url.to_owned(),
            ttl: DEFAULT_TTL,
            hosts: HostPolicy::meta(),
        })
    }

    /// Links made from now on work for `ttl` (zero makes links that are already expired).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Also accepts links signed with `key` (while rotating keys: keep the old key here for
    /// one TTL).
    pub fn with_previous_key(mut self, key: MediaLinkKey) -> Self {
        self.previous.push(key);
        self
    }

    /// Which Instagram CDN URLs are linked (the media proxy applies its own policy again).
    pub fn with_hosts(mut self, hosts: HostPolicy) -> Self {
        self.hosts = hosts;
        self
    }

    /// Reads [`ENV_KEY`] (hex, at least 32 bytes), [`ENV_PUBLIC_BASE_URL`], and optionally
    /// [`ENV_PREVIOUS_KEY`] and [`ENV_TTL_SECS`] (1 s to 30 days) through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LinkConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let key_of = |field: &'static str, v: &str| {
            MediaLinkKey::from_hex(v).map_err(|source| LinkConfigError::Key { field, source })
        };
        let key = key_of(
            ENV_KEY,
            &get(ENV_KEY).ok_or(LinkConfigError::Missing { field: ENV_KEY })?,
        )?;
        let base = get(ENV_PUBLIC_BASE_URL).ok_or(LinkConfigError::Missing {
            field: ENV_PUBLIC_BASE_URL,
        })?;
        let mut links = MediaLinks::new(key, &base)?;
        if let Some(previous) = get(ENV_PREVIOUS_KEY) {
            links = links.with_previous_key(key_of(ENV_PREVIOUS_KEY, &previous)?);
        }
        if let Some(ttl) = get(ENV_TTL_SECS) {
            let secs: u64 = ttl.trim().parse().map_err(|_| LinkConfigError::Invalid {
                field: ENV_TTL_SECS,
                reason: "must be a number of seconds".into(),
            })?;
            if secs == 0 || secs > MAX_TTL.as_secs() {
                return Err(LinkConfigError::Invalid {
                    field: ENV_TTL_SECS,
                    reason: format!("must be 1 to {} seconds", MAX_TTL.as_secs()),
                });
            }
            links = links.with_ttl(Duration::from_secs(secs));
        }
        Ok(links)
    }

    pub fn public_base_url(&self) -> &str {
        &self.public_base_url
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The claims a link to `media` carries, expiring `ttl` after `now`. None when the media
    /// has no reference this account's product can fetch (a WhatsApp media without an id,
    /// an Instagram attachment without a URL or on a host outside the policy).
    pub fn claims_for(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        media: &Media,
        now: i64,
    ) -> Option<MediaClaims> {
        let reference = match account {
            AccountRef::WhatsApp(_) => {
                MediaRef::WhatsAppMedia(media.media_id.clone().filter(|id| !id.is_empty())?)
            }
            AccountRef::Instagram(_) => {
                let url = media.url.clone()?;
                self.hosts.check(&url).ok()?;
                MediaRef::InstagramUrl(url)
            }
        };
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        Some(MediaClaims {
            tenant: tenant.clone(),
            account: account.clone(),
            media: reference,
            mime_type: media.mime_type.clone(),
            filename: Some(display_name(media)),
            expires_at: now.saturating_add(ttl),
            conversation: None,
        })
    }

    /// The token of `claims`, signed with the current key (None if it would be too long).
    pub fn sign(&self, claims: &MediaClaims) -> Option<String> {
        token::sign(&self.key, claims)
    }

    /// `{public_base_url}/media/{token}`.
    pub fn url_for_token(&self, token: &str) -> String {
        format!("{}{MEDIA_PATH_PREFIX}{token}", self.public_base_url)
    }

    /// The file Bitrix24 gets for `media`, linked until `now + ttl`.
    pub fn file_at(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        media: &Media,
        now: i64,
    ) -> Option<CrmFile> {
        self.file_in_at(tenant, account, None, media, now)
    }

    /// [`MediaLinks::file_at`] for media of `conversation`: the link stops working once the
    /// conversation's subject is erased (decision 0029).
    pub fn file_in_at(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        conversation: Option<&str>,
        media: &Media,
        now: i64,
    ) -> Option<CrmFile> {
        let Some(mut claims) = self.claims_for(tenant, account, media, now) else {
            tracing::warn!(
                tenant = %tenant,
                channel = %account.channel(),
                kind = media.kind.name(),
                "media without a fetchable reference: not linked"
            );
            return None;
        };
        claims.conversation = conversation.map(str::to_owned);
        let Some(token) = self.sign(&claims) else {
            tracing::warn!(tenant = %tenant, channel = %account.channel(),
                "media link would be too long: not linked");
            return None;
        };
        Some(CrmFile {
            url: self.url_for_token(&token),
            name: claims.filename,
        })
    }

    /// Verifies a token now.
    pub fn verify(&self, token: &str) -> Result<MediaClaims, LinkError> {
        self.verify_at(token, now_secs())
    }

    /// Verifies a token against the current and previous keys, and its expiry against `now`.
    pub fn verify_at(&self, token: &str, now: i64) -> Result<MediaClaims, LinkError> {
        let keys: Vec<&MediaLinkKey> = std::iter::once(&self.key)
            .chain(self.previous.iter())
            .collect();
        token::verify(&keys, token, now)
    }
}

#[async_trait]
impl MediaLinker for MediaLinks {
    async fn link(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        media: &Media,
    ) -> Option<CrmFile> {
        self.file_at(tenant, account, media, now_secs())
    }

    async fn link_in(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        conversation: &str,
        media: &Media,
    ) -> Option<CrmFile> {
        self.file_in_at(tenant, account, Some(conversation), media, now_secs())
    }
}

/// The file name shown in Bitrix24 and sent back in `Content-Disposition`: the sender's file
/// name when there is one, else the kind with an extension from the type (`image.jpg`,
/// `voice.ogg`).
pub fn display_name(media: &Media) -> String {
    if let Some(name) = media.filename.as_deref().and_then(safe_filename) {
        return name;
    }
    let stem = if media.voice {
        "voice"
    } else {
        media.kind.name()
    };
    let ext = media
        .mime_type
        .as_deref()
        .and_then(extension_for)
        .or(match media.kind {
            MediaKind::Image => Some(".jpg"),
            MediaKind::Video => Some(".mp4"),
            _ => None,
        })
        .unwrap_or("");
    format!("{stem}{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{InstagramAccountId, PhoneNumberId};

    fn links() -> MediaLinks {
        MediaLinks::new(
            MediaLinkKey::from_bytes(&[7; 32]).unwrap(),
            "https://api.example.com/",
        )
        .unwrap()
    }

    fn tenant() -> TenantId {
        TenantId::parse("tn_0123456789abcdef01234567").unwrap()
    }

    fn wa() -> AccountRef {
        AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
    }

    fn ig() -> AccountRef {
        AccountRef::Instagram(InstagramAccountId::parse("17841405822304914").unwrap())
    }

    #[test]
    fn whatsapp_media_gets_a_signed_url_and_a_name() {
        let mut media = Media::new(MediaKind::Audio);
        media.media_id = Some("1037543291543636".into());
        media.mime_type = Some("audio/ogg; codecs=opus".into());
        media.voice = true;
        let file = links().file_at(&tenant(), &wa(), &media, 1_000).unwrap();
        assert!(
            file.url.starts_with("https://api.example.com/media/"),
            "{}",
            file.url
        );
        assert_eq!(file.name.as_deref(), Some("voice.ogg"));
        let token = file.url.rsplit('/').next().unwrap();
        let claims = links().verify_at(token, 1_000).unwrap();
        assert_eq!(claims.expires_at, 1_000 + DEFAULT_TTL.as_secs() as i64);
        assert_eq!(
            claims.media,
            MediaRef::WhatsAppMedia("1037543291543636".into())
        );
        assert_eq!(claims.tenant, tenant());
        assert_eq!(
            links().verify_at(token, claims.expires_at),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn unfetchable_media_is_not_linked() {
        let media = Media::new(MediaKind::Image);
        assert!(links().file_at(&tenant(), &wa(), &media, 0).is_none());
        let mut media = Media::new(MediaKind::Image);
        media.url = Some("https://evil.example/x.jpg".into());
        assert!(links().file_at(&tenant(), &ig(), &media, 0).is_none());
        media.url =
            Some("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=s".into());
        let file = links().file_at(&tenant(), &ig(), &media, 0).unwrap();
        assert_eq!(file.name.as_deref(), Some("image.jpg"));
    }

    #[test]
    fn configuration_from_the_environment() {
        let key = "11".repeat(32);
        let env = |k: &str| match k {
            ENV_KEY => Some(key.clone()),
            ENV_PUBLIC_BASE_URL => Some("http://127.0.0.1:8080".into()),
            ENV_TTL_SECS => Some("600".into()),
            _ => None,
        };
        let l = MediaLinks::from_lookup(env).unwrap();
        assert_eq!(l.ttl(), Duration::from_secs(600));
        assert_eq!(l.url_for_token("t"), "http://127.0.0.1:8080/media/t");
        assert!(!format!("{l:?}").contains(&key));
        assert_eq!(
            MediaLinks::from_lookup(|_| None).unwrap_err(),
            LinkConfigError::Missing { field: ENV_KEY }
        );
        assert!(MediaLinks::new(
            MediaLinkKey::from_bytes(&[1; 32]).unwrap(),
            "http://api.example.com"
        )
        .is_err());
        let short = |k: &str| match k {
            ENV_KEY => Some("ab".repeat(16)),
            ENV_PUBLIC_BASE_URL => Some("https://x.example".into()),
            _ => None,
        };
        assert!(matches!(
            MediaLinks::from_lookup(short),
            Err(LinkConfigError::Key { .. })
        ));
    }
}
