//! [`MediaProxy`]: serves a media link. HTTP-agnostic: the media-proxy function (and the local
//! server through it) maps [`MediaError`] to a status.
//!
//! Nothing of the media is stored: each request fetches from Meta and hands the bytes back.
//!
//! Size: at most [`DEFAULT_MAX_BYTES`] (16 MiB, WhatsApp's limit for audio and video; images
//! are at most 5 MB, documents up to 100 MB are refused) unless set otherwise. Note that a
//! Lambda function's *buffered* response is limited to 6 MB, and a binary body travels
//! base64-encoded (4/3 larger) through API Gateway, so behind a buffered Lambda only about
//! 4.4 MiB of media fit: the media-proxy function lowers the limit accordingly unless it runs
//! with response streaming (Lambda function URL in `RESPONSE_STREAM` mode, or an API Gateway
//! REST API integration with `responseTransferMode: STREAM`; up to 200 MB).

use crate::conversation::erased::ErasedSubjects;
use crate::conversation::ConversationId;
use hyper::body::Bytes;

use super::links::MediaLinks;
use super::names::safe_content_type;
use super::token::{LinkError, MediaClaims, MediaRef};
use crate::graph::{GraphClient, GraphError};
use crate::meta::AccountRef;
use crate::tenant::{ChannelRef, Secret, TenantDirectory, TenantError};

/// Largest media served by default.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The media, ready to send: a safe content type ([`safe_content_type`]), the bytes, and the
/// file name from the link.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaResponse {
    pub content_type: String,
    pub bytes: Bytes,
    pub filename: Option<String>,
}

impl std::fmt::Debug for MediaResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaResponse")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Why the media could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Forged, altered, truncated or expired link (→ 403).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The link's account is no longer connected to the link's tenant (→ 403).
    #[error("the channel of this link is no longer connected")]
    NotConnected,
    /// The link points outside the hosts media may come from (→ 403).
    #[error("{0}")]
    Refused(String),
    /// Meta says the media does not exist any more (→ 404).
    #[error("the media is no longer available from the provider")]
    Gone,
    /// Larger than the limit (→ 502).
    #[error("the media is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The channel is connected without an access token (→ 502).
    #[error("the channel has no access token")]
    NoCredentials,
    /// Meta failed or refused (→ 503 when [`GraphError::is_retryable`], else 502).
    #[error("provider: {0}")]
    Provider(GraphError),
    /// Our own storage or decryption failed (→ 503).
    #[error("internal: {0}")]
    Internal(String),
}

impl MediaError {
    /// True when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            MediaError::Provider(e) => e.is_retryable(),
            MediaError::Internal(_) => true,
            _ => false,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            MediaError::Link(LinkError::Expired) => "link_expired",
            MediaError::Link(_) => "link_invalid",
            MediaError::NotConnected => "not_connected",
            MediaError::Refused(_) => "refused",
            MediaError::Gone => "gone",
            MediaError::TooLarge { .. } => "too_large",
            MediaError::NoCredentials => "no_credentials",
            MediaError::Provider(_) => "provider",
            MediaError::Internal(_) => "internal",
        }
    }
}

fn provider(e: GraphError) -> MediaError {
    match e {
        GraphError::NotFound(_) => MediaError::Gone,
        GraphError::TooLarge { limit } => MediaError::TooLarge { limit },
        GraphError::Refused(why) => MediaError::Refused(why),
        other => MediaError::Provider(other),
    }
}

/// Verifies media links and fetches what they name from Meta. Cheap to clone.
#[derive(Clone)]
pub struct MediaProxy {
    links: MediaLinks,
    tenants: TenantDirectory,
    graph: GraphClient,
    max_bytes: usize,
    erased: Option<ErasedSubjects>,
}

impl MediaProxy {
    pub fn new(links: MediaLinks, tenants: TenantDirectory, graph: GraphClient) -> Self {
        MediaProxy {
            links,
            tenants,
            graph,
            max_bytes: DEFAULT_MAX_BYTES,
            erased: None,
        }
    }

    /// Refuses links of conversations whose subject was erased (decision 0029).
    pub fn with_erased_subjects(mut self, erased: ErasedSubjects) -> Self {
        self.erased = Some(erased);
        self
    }

    /// Largest media served (see the module documentation for Lambda's limits).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Verifies `token`, checks that its tenant still owns its account, and fetches the media:
    /// WhatsApp through the Graph API with the channel's access token, Instagram from Meta's
    /// CDN.
    pub async fn fetch(&self, token: &str) -> Result<MediaResponse, MediaError> {
        let claims = self.links.verify(token)?;
        // The verified link names its tenant: every read of that tenant's items and data keys
        // runs with credentials scoped to it (decision 0037); the route lookup, a global
        // index, stays with the function's own role.
        let tenant = claims.tenant.clone();
        crate::acting::acting_for(&tenant, self.fetch_for_tenant(claims)).await
    }

    async fn fetch_for_tenant(&self, claims: MediaClaims) -> Result<MediaResponse, MediaError> {
        if let (Some(erased), Some(conversation)) = (&self.erased, &claims.conversation) {
            let erased_at = match ConversationId::parse(conversation) {
                Ok(id) => erased
                    .erasure(&claims.tenant, &id)
                    .await
                    .map_err(|e| MediaError::Internal(e.to_string()))?,
                Err(_) => None,
            };
            if erased_at.is_some() {
                tracing::info!(tenant = %claims.tenant, "media of an erased subject refused");
                return Err(MediaError::Gone);
            }
        }
        let result = self.fetch_verified(&claims).await;
        match &result {
            Ok(media) => tracing::info!(
                tenant = %claims.tenant,
                channel = %claims.account.channel(),
                bytes = media.bytes.len(),
                "media served"
            ),
            Err(e) => tracing::warn!(
                tenant = %claims.tenant,
                channel = %claims.account.channel(),
                kind = e.kind(),
                error = %e,
                "media not served"
            ),
        }
        result
    }

    async fn fetch_verified(&self, claims: &MediaClaims) -> Result<MediaResponse, MediaError> {
        let channel = ChannelRef::of(&claims.account);
        match self.tenants.resolve(&channel).await {
            Ok(Some(owner)) if owner == claims.tenant => {}
            Ok(_) => return Err(MediaError::NotConnected),
            Err(e) => return Err(MediaError::Internal(e.to_string())),
        }
        let downloaded = match (&claims.media, &claims.account) {
            (MediaRef::WhatsAppMedia(media_id), AccountRef::WhatsApp(phone_number_id)) => {
                let token = self.access_token(claims).await?;
                let info = self
                    .graph
                    .media_info(media_id, &token, Some(phone_number_id))
                    .await
                    .map_err(provider)?;
                if info.file_size.is_some_and(|n| n > self.max_bytes as u64) {
                    return Err(MediaError::TooLarge {
                        limit: self.max_bytes,
                    });
                }
                let mut d = self
                    .graph
                    .download(&info.url, &token, self.max_bytes)
                    .await
                    .map_err(provider)?;
                if d.content_type.is_none() {
                    d.content_type = info.mime_type;
                }
                d
            }
            (MediaRef::InstagramUrl(url), AccountRef::Instagram(_)) => self
                .graph
                .download_public(url, self.max_bytes)
                .await
                .map_err(provider)?,
            _ => return Err(MediaError::Link(LinkError::Invalid)),
        };
        let content_type = downloaded
            .content_type
            .as_deref()
            .filter(|t| !t.trim().is_empty() && !t.starts_with("application/octet-stream"))
            .or(claims.mime_type.as_deref());
        Ok(MediaResponse {
            content_type: safe_content_type(content_type),
            bytes: downloaded.bytes,
            filename: claims.filename.clone(),
        })
    }

    async fn access_token(&self, claims: &MediaClaims) -> Result<Secret, MediaError> {
        let scope = self
            .tenants
            .scope(&claims.tenant)
            .await
            .map_err(|e| MediaError::Internal(e.to_string()))?
            .ok_or(MediaError::NotConnected)?;
        scope
            .channel_secret(&ChannelRef::of(&claims.account), "access_token")
            .await
            .map_err(|e| match e {
                TenantError::ChannelNotFound(_) | TenantError::TenantNotFound => {
                    MediaError::NotConnected
                }
                TenantError::Invalid(_) => MediaError::NoCredentials,
                other => MediaError::Internal(other.to_string()),
            })
    }
}
