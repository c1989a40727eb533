//! The tenant's Bitrix24 portal as our application sees it: installing the app and linking a
//! portal to a tenant ([`install`]), our Open Lines connectors, the connected portal's
//! settings and the store of its refreshed tokens. The REST client itself (`crate::bitrix`)
//! knows nothing of tenants; this module is where the two meet. What the portal sends us
//! (operator replies, connector and app removal) is handled one layer up, in
//! `portal_events`, because it feeds the outbound flow.

pub mod install;
pub mod line_change;
pub mod line_status;
pub mod placement;
pub mod providers;
pub mod restriction_ends;
pub mod verify;

use std::collections::HashMap;

use async_trait::async_trait;

use crate::bitrix::{ConnectorId, OpenLineId, TokenPair, TokenStore, TokenStoreError};
use crate::ids::BitrixDomain;
use crate::meta::AccountRef;
use crate::tenant::{ChannelKind, ChannelRef, TenantError, TenantScope};

/// Our Open Lines connector codes, one per channel (registered with `imconnector.register`).
#[derive(Clone, Debug)]
pub struct Connectors {
    pub whatsapp: ConnectorId,
    pub instagram: ConnectorId,
}

impl Default for Connectors {
    fn default() -> Self {
        Connectors {
            whatsapp: ConnectorId::parse("wappline_whatsapp").expect("valid"),
            instagram: ConnectorId::parse("wappline_instagram").expect("valid"),
        }
    }
}

impl Connectors {
    pub fn for_account(&self, account: &AccountRef) -> &ConnectorId {
        match account.channel() {
            ChannelKind::Instagram => &self.instagram,
            _ => &self.whatsapp,
        }
    }
}

/// The tenant's Bitrix24 portal, as connected through the admin API or the app install.
pub struct Portal {
    pub channel: ChannelRef,
    pub domain: BitrixDomain,
    /// The portal's own line (chosen at install): where channels without an Open Line of
    /// their own go.
    pub line: OpenLineId,
    pub tokens: TokenPair,
    /// Channels attached to an Open Line of this portal (decision 0043).
    pub attached: HashMap<ChannelRef, OpenLineId>,
}

/// Why the tenant's portal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The tenant's Bitrix24 connection is missing or incomplete.
    #[error("{0}")]
    NotConnected(String),
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

impl Portal {
    /// Reads the connected portal: its domain, the chosen Open Line and the token pair.
    pub async fn load(scope: &TenantScope) -> Result<Self, PortalError> {
        let channels = scope.channels().await?;
        let summary = channels
            .iter()
            .find(|c| c.kind == ChannelKind::Bitrix24)
            .cloned()
            .ok_or_else(|| PortalError::NotConnected("no Bitrix24 portal connected".into()))?;
        let channel = ChannelRef::parse(ChannelKind::Bitrix24, &summary.id)
            .map_err(|e| PortalError::NotConnected(e.to_string()))?;
        let domain = summary
            .details
            .get("domain")
            .and_then(|d| BitrixDomain::parse(d).ok())
            .ok_or_else(|| PortalError::NotConnected("Bitrix24 portal without a domain".into()))?;
        let line = summary
            .details
            .get("line_id")
            .and_then(|l| OpenLineId::parse(l).ok())
            .ok_or_else(|| {
                PortalError::NotConnected("no Open Line chosen for the Bitrix24 portal".into())
            })?;
        let tokens = TokenPair::new(
            scope.channel_secret(&channel, "access_token").await?,
            scope.channel_secret(&channel, "refresh_token").await?,
        );
        // Attachments name their portal: those of a portal connected before are ignored.
        let attached = channels
            .iter()
            .filter_map(|c| {
                let a = c.open_line.as_ref()?;
                if a.member_id != channel.external_id() {
                    return None;
                }
                Some((
                    ChannelRef::parse(c.kind, &c.id).ok()?,
                    OpenLineId::new(a.line).ok()?,
                ))
            })
            .collect();
        Ok(Portal {
            channel,
            domain,
            line,
            tokens,
            attached,
        })
    }

    /// The Open Line `channel`'s conversations go to: its own, or the portal's.
    pub fn line_for(&self, channel: &ChannelRef) -> OpenLineId {
        self.attached.get(channel).copied().unwrap_or(self.line)
    }
}

/// Stores a refreshed pair on the tenant's Bitrix24 channel, encrypted.
pub struct PortalTokens {
    scope: TenantScope,
    channel: ChannelRef,
}

impl PortalTokens {
    pub fn new(scope: TenantScope, channel: ChannelRef) -> Self {
        PortalTokens { scope, channel }
    }
}

#[async_trait]
impl TokenStore for PortalTokens {
    async fn save(
        &self,
        _portal: &BitrixDomain,
        tokens: &TokenPair,
    ) -> Result<(), TokenStoreError> {
        self.scope
            .replace_secrets(
                &self.channel,
                &[
                    ("access_token", &tokens.access_token),
                    ("refresh_token", &tokens.refresh_token),
                ],
            )
            .await
            .map_err(|e| TokenStoreError(e.to_string()))
    }

    async fn latest(&self, _portal: &BitrixDomain) -> Result<Option<TokenPair>, TokenStoreError> {
        // What the store holds now, not what this invocation read at its start: another
        // process may have refreshed the pair meanwhile (decision 0058).
        let scope = self.scope.fresh();
        let read = |name: &'static str| scope.channel_secret(&self.channel, name);
        match (read("access_token").await, read("refresh_token").await) {
            (Ok(a), Ok(r)) => Ok(Some(TokenPair::new(a, r))),
            (Err(e), _) | (_, Err(e)) => Err(TokenStoreError(e.to_string())),
        }
    }
}
