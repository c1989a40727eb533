//! Reading a WABA's templates into the tenant's copy: when a WhatsApp number connects, and
//! again on the account-maintenance schedule (every [`RESYNC_SECS`] per WABA), so a
//! webhook that was missed (or arrived before the number was connected) is caught up.

use crate::graph::{GraphClient, GraphError};
use crate::ids::{TenantId, WabaId};
use crate::tenant::{ChannelKind, ChannelRef, TenantDirectory, TenantError, TenantScope};

use super::{Template, TemplateBook, TemplateError};

/// How long a WABA's copy is trusted before it is read again (webhooks update it meanwhile).
pub const RESYNC_SECS: i64 = 6 * 3600;
/// After a failed read, the next attempt.
pub const RETRY_SECS: i64 = 3600;
/// The channel detail naming a WhatsApp number's business account.
pub const WABA_DETAIL: &str = "waba_id";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("Meta: {0}")]
    Graph(#[from] GraphError),
    #[error("the channel has no WhatsApp Business Account id")]
    NoWaba,
}

/// What one scheduled run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub synced: usize,
    pub failed: usize,
    pub removed: usize,
}

/// Template sync. Build once per process.
#[derive(Clone)]
pub struct TemplateSync {
    tenants: TenantDirectory,
    graph: GraphClient,
    book: TemplateBook,
}

impl TemplateSync {
    pub fn new(tenants: TenantDirectory, graph: GraphClient) -> Self {
        TemplateSync {
            book: TemplateBook::new(tenants.store().clone()),
            tenants,
            graph,
        }
    }

    pub fn book(&self) -> &TemplateBook {
        &self.book
    }

    /// Reads the templates of the business account of the connected WhatsApp number
    /// `channel` into the tenant's copy; the number of templates read.
    pub async fn sync_channel(
        &self,
        scope: &TenantScope,
        channel: &ChannelRef,
        now: i64,
    ) -> Result<usize, SyncError> {
        sync_channel(&self.graph, scope, channel, now).await
    }

    /// Syncs after a connect (see [`after_connect`]).
    pub async fn after_connect(&self, scope: &TenantScope, channel: &ChannelRef) {
        after_connect(&self.graph, scope, channel).await
    }

    /// Syncs every (tenant, WABA) due at `now`, at most `budget` of them.
    pub async fn run_due(&self, now: i64, budget: usize) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        let due: Vec<(TenantId, WabaId, i64)> = self
            .book
            .tracked(None)
            .await?
            .into_iter()
            .filter(|(_, _, at)| *at <= now)
            .take(budget)
            .collect();
        for (tenant, waba, due_at) in due {
            let channel = match self.tenants.scope(&tenant).await? {
                Some(scope) => scope
                    .channels()
                    .await?
                    .into_iter()
                    .find(|c| {
                        c.kind == ChannelKind::WhatsApp
                            && c.details.get(WABA_DETAIL).map(String::as_str) == Some(waba.as_str())
                    })
                    .and_then(|c| ChannelRef::parse(ChannelKind::WhatsApp, &c.id).ok())
                    .map(|c| (scope, c)),
                None => None,
            };
            let Some((scope, channel)) = channel else {
                // No number of the WABA is connected any more: its copy goes.
                self.book.replace(&tenant, &waba, Vec::new()).await?;
                if !self.book.untrack(&tenant, waba.as_str(), due_at).await? {
                    // A number of the WABA was connected meanwhile and its sync entered it
                    // again, perhaps before the copy was emptied here: read it again at the
                    // next run.
                    self.book.track(&tenant, &waba, now).await?;
                }
                report.removed += 1;
                continue;
            };
            match crate::acting::acting_for(&tenant, self.sync_channel(&scope, &channel, now)).await
            {
                Ok(_) => report.synced += 1,
                Err(SyncError::Graph(e)) => {
                    tracing::warn!(%tenant, kind = e.kind(), code = ?e.code(), "message templates not synced");
                    report.failed += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// Reads the templates of the business account of the connected WhatsApp number `channel`
/// into the tenant's copy and enters the account in the schedule's index; the number of
/// templates read. A failed read makes the account due again after [`RETRY_SECS`].
pub async fn sync_channel(
    graph: &GraphClient,
    scope: &TenantScope,
    channel: &ChannelRef,
    now: i64,
) -> Result<usize, SyncError> {
    let book = TemplateBook::new(scope.store().clone());
    let summary = scope
        .channel(channel)
        .await?
        .ok_or_else(|| TenantError::ChannelNotFound(channel.external_id().to_owned()))?;
    let waba = summary
        .details
        .get(WABA_DETAIL)
        .and_then(|w| WabaId::parse(w).ok())
        .ok_or(SyncError::NoWaba)?;
    let token = scope.channel_secret(channel, "access_token").await?;
    let tenant = scope.tenant();
    let read = match graph.message_templates(&waba, &token).await {
        Ok(r) => r,
        Err(e) => {
            book.track(tenant, &waba, now + RETRY_SECS).await?;
            return Err(e.into());
        }
    };
    let fresh: Vec<Template> = read
        .into_iter()
        .map(|t| Template::from_graph(&waba, t))
        .collect();
    let n = fresh.len();
    book.replace(tenant, &waba, fresh).await?;
    book.track(tenant, &waba, now + RESYNC_SECS).await?;
    tracing::info!(%tenant, templates = n, "message templates synced");
    Ok(n)
}

/// Syncs a WhatsApp number's templates right after it connected. A failure is logged, not
/// returned: the number is connected, and the schedule tries again.
pub async fn after_connect(graph: &GraphClient, scope: &TenantScope, channel: &ChannelRef) {
    if channel.kind() != ChannelKind::WhatsApp {
        return;
    }
    match sync_channel(graph, scope, channel, crate::clock::now_secs()).await {
        Ok(_) => {}
        // Meta's message may name the account: its kind and code only.
        Err(SyncError::Graph(e)) => {
            tracing::warn!(tenant = %scope.tenant(), kind = e.kind(), code = ?e.code(), "message templates not synced on connect; the schedule retries")
        }
        Err(e) => {
            tracing::warn!(tenant = %scope.tenant(), error = %e, "message templates not synced on connect; the schedule retries")
        }
    }
}
