//! Disconnecting a channel on the admin's request: processing stops at once (the route and
//! the tokens go first, in one transaction), then, where the provider allows and nothing else
//! of ours still needs it, our app is unsubscribed from the account's webhooks with the token
//! we held (kept in memory only for that call).
//!
//! - WhatsApp: `DELETE /{waba-id}/subscribed_apps`, unless another of the tenant's numbers is
//!   on the same WhatsApp Business Account.
//! - Instagram: `DELETE /{page-id}/subscribed_apps` when the account came with its Page;
//!   Instagram-login accounts have no documented per-account unsubscribe, nothing is called.
//! - Bitrix24: nothing is called; the portal owner removes the app (its uninstall event
//!   disconnects too), and without tokens we no longer act on the portal.
//!
//! The unsubscribe is best effort: a failure is logged and reported, never undoes the
//! disconnect.

use serde::Deserialize;

use super::{ChannelKind, ChannelRef, TenantError, TenantScope};
use crate::graph::GraphClient;

/// What a disconnect did beyond deleting our data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsubscribe {
    /// The provider confirmed our app no longer receives the account's webhooks.
    Done,
    /// Not called: not available for this channel, or still needed by another channel.
    NotApplicable,
    /// Called and failed (logged); the route is gone anyway, so no event is processed.
    Failed(String),
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    success: bool,
}

/// Disconnects channels and unsubscribes where possible. Build once per process.
#[derive(Clone)]
pub struct ChannelRelease {
    graph: Option<GraphClient>,
}

impl ChannelRelease {
    /// Without a Graph client nothing is unsubscribed (the local server without Meta).
    pub fn new(graph: Option<GraphClient>) -> Self {
        ChannelRelease { graph }
    }

    pub async fn disconnect(
        &self,
        scope: &TenantScope,
        channel: &ChannelRef,
    ) -> Result<Unsubscribe, TenantError> {
        let channels = scope.channels().await?;
        let details = channels
            .iter()
            .find(|c| c.kind == channel.kind() && c.id == channel.external_id())
            .map(|c| c.details.clone())
            .unwrap_or_default();
        let token = match channel.kind() {
            ChannelKind::Bitrix24 => None,
            _ => scope.channel_secret(channel, "access_token").await.ok(),
        };
        // Stop first: from here no event for the account is processed.
        scope.disconnect(channel).await?;

        let (Some(graph), Some(token)) = (&self.graph, token) else {
            return Ok(Unsubscribe::NotApplicable);
        };
        let owner = match channel.kind() {
            ChannelKind::WhatsApp => {
                let Some(waba) = details.get("waba_id") else {
                    return Ok(Unsubscribe::NotApplicable);
                };
                let shared = channels.iter().any(|c| {
                    c.kind == ChannelKind::WhatsApp
                        && c.id != channel.external_id()
                        && c.details.get("waba_id") == Some(waba)
                });
                if shared {
                    return Ok(Unsubscribe::NotApplicable);
                }
                waba.clone()
            }
            ChannelKind::Instagram => match details.get("page_id") {
                Some(page) => page.clone(),
                None => return Ok(Unsubscribe::NotApplicable),
            },
            ChannelKind::Bitrix24 => return Ok(Unsubscribe::NotApplicable),
        };
        match graph
            .delete_json::<Success>(&format!("{owner}/subscribed_apps"), &token)
            .await
        {
            Ok(s) if s.success => Ok(Unsubscribe::Done),
            Ok(_) => Ok(Unsubscribe::Failed("the provider did not confirm".into())),
            Err(e) => {
                tracing::warn!(kind = %channel.kind(), error = %e, "unsubscribing from webhooks failed");
                Ok(Unsubscribe::Failed(e.to_string()))
            }
        }
    }
}
