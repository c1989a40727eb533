//! Keeping Instagram Login's long-lived tokens alive (they run 60 days; "Reference > Refresh
//! Access Token": a token at least 24 hours old and not expired gets a fresh 60 days).
//!
//! Every channel with an expiring token has an entry in the routes table's
//! [`INDEX_PARTITION`] (sort key `<tenant>#<channel sk>`, attribute `due_at`), so the
//! schedule finds them without scanning tenants. A run refreshes each token due, that is
//! within [`REFRESH_WITHIN_SECS`] of its expiry (30 days before: a month of retries before
//! it runs out), stores the new token encrypted with its expiry, and audits. When a refresh
//! fails the channel's token health says so (the console shows "refresh failed", then
//! "expired"), the tenant's owners and admins get an email, the failure is audited, and the
//! next attempt is a day later. An entry whose channel is gone is removed.

use std::sync::Arc;

use crate::accounts::{Mail, Mailer, Role};
use crate::audit::{AuditAction, AuditLog};
use crate::clock::rfc3339;
use crate::graph::{GraphClient, GraphError};
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore};
use crate::tenant::{ChannelRef, TenantDirectory, TenantError, TenantScope, TokenHealth};

/// Routes-table partition of the channels whose tokens the job renews.
pub const INDEX_PARTITION: &str = "TOKENREFRESH";
/// A token is renewed once it expires within this (30 days).
pub const REFRESH_WITHIN_SECS: i64 = 30 * 86_400;
/// After a failed refresh, the next attempt (a day).
pub const RETRY_AFTER_SECS: i64 = 86_400;
/// Meta refuses to refresh a token younger than this (24 hours).
pub const MIN_AGE_SECS: i64 = 86_400;
/// Actor of the job's audit entries.
pub const ACTOR: &str = "system";

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefreshReport {
    pub checked: usize,
    pub refreshed: usize,
    pub failed: usize,
    pub removed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

fn index_key(tenant: &TenantId, channel: &ChannelRef) -> Key {
    Key::new(
        INDEX_PARTITION,
        format!("{}#{}", tenant.as_str(), channel.channel_sk()),
    )
}

fn index_entry(tenant: &TenantId, channel: &ChannelRef, due_at: i64) -> Item {
    Item::new(&index_key(tenant, channel))
        .with("tenant_id", tenant.as_str())
        .with("due_at", due_at)
}

#[derive(askama::Template)]
#[template(path = "token_refresh_failed.txt")]
struct RefreshFailedMail<'a> {
    tenant_id: &'a str,
    account: &'a str,
    expires: String,
}

/// The scheduled refresh. Build once per process.
#[derive(Clone)]
pub struct TokenRefresh {
    tenants: TenantDirectory,
    /// `graph.instagram.com`.
    instagram: GraphClient,
    audit: AuditLog,
    mailer: Option<Arc<dyn Mailer>>,
}

impl TokenRefresh {
    pub fn new(
        tenants: TenantDirectory,
        instagram: GraphClient,
        mailer: Option<Arc<dyn Mailer>>,
    ) -> Self {
        TokenRefresh {
            audit: AuditLog::new(tenants.store().clone()),
            tenants,
            instagram,
            mailer,
        }
    }

    fn store(&self) -> &Arc<dyn TableStore> {
        self.tenants.store()
    }

    /// Records a stored token's expiry on its channel and enters the channel in the index
    /// (at connection time; the channel must exist).
    pub async fn track(
        scope: &TenantScope,
        channel: &ChannelRef,
        expires_at: i64,
        now: i64,
    ) -> Result<(), TenantError> {
        scope.set_token_expiry(channel, expires_at, now).await?;
        let due = (expires_at - REFRESH_WITHIN_SECS).max(now + MIN_AGE_SECS);
        scope
            .store()
            .put(
                Table::Routes,
                index_entry(scope.tenant(), channel, due),
                None,
            )
            .await?;
        Ok(())
    }

    /// Refreshes every token due at `now`, at most `budget` of them.
    pub async fn run_due(&self, now: i64, budget: usize) -> Result<RefreshReport, RefreshError> {
        let mut report = RefreshReport::default();
        let mut query = Query::partition(INDEX_PARTITION).limit(100);
        let mut due = Vec::new();
        loop {
            let page = self.store().query(Table::Routes, &query).await?;
            for item in &page.items {
                let Some(sk) = item.get_s(crate::store::SK) else {
                    continue;
                };
                if item.get_n("due_at").unwrap_or(0) > now {
                    continue;
                }
                let due_at = item.get_n("due_at");
                let parsed = sk.split_once('#').and_then(|(t, ch)| {
                    Some((
                        TenantId::parse(t).ok()?,
                        ChannelRef::from_channel_sk(ch)?,
                        due_at,
                    ))
                });
                if let Some(entry) = parsed {
                    due.push(entry);
                }
            }
            match page.next {
                Some(next) if due.len() < budget => query = query.start_after(Some(next)),
                _ => break,
            }
        }
        for (tenant, channel, due_at) in due.into_iter().take(budget) {
            report.checked += 1;
            match self.refresh_one(&tenant, &channel, due_at, now).await? {
                Done::Refreshed => report.refreshed += 1,
                Done::Failed => report.failed += 1,
                Done::Removed => report.removed += 1,
                Done::NotDue => {}
            }
        }
        Ok(report)
    }

    /// Deletes the index entry read with `due_at`, and only that one: a channel connected
    /// again since it was read wrote a new one (decision 0119), its only way to be renewed.
    async fn remove_entry(&self, key: &Key, due_at: Option<i64>) -> Result<(), RefreshError> {
        let seen = Condition::number_unchanged("due_at", due_at);
        match self.store().delete(Table::Routes, key, Some(seen)).await {
            Err(e) if !e.is_condition_failed() => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn refresh_one(
        &self,
        tenant: &TenantId,
        channel: &ChannelRef,
        due_at: Option<i64>,
        now: i64,
    ) -> Result<Done, RefreshError> {
        let key = index_key(tenant, channel);
        let scope = match self.tenants.scope(tenant).await? {
            Some(s) => s,
            None => {
                self.remove_entry(&key, due_at).await?;
                return Ok(Done::Removed);
            }
        };
        let Some(health) = scope.channel(channel).await?.and_then(|c| c.token) else {
            // Disconnected (or never tracked): nothing to renew any more.
            self.remove_entry(&key, due_at).await?;
            return Ok(Done::Removed);
        };
        if health.expires_at - now > REFRESH_WITHIN_SECS {
            let due = health.expires_at - REFRESH_WITHIN_SECS;
            self.store()
                .put(Table::Routes, index_entry(tenant, channel, due), None)
                .await?;
            return Ok(Done::NotDue);
        }
        // What is written after the call is written over this token only: the account
        // connected again meanwhile keeps its new token and its health (decision 0119).
        let token = scope.read_token(channel).await?;
        // The fresh token with its expiry, or why there is none.
        let outcome = if health.expires_at <= now {
            // Meta refreshes only unexpired tokens: the account must sign in again.
            Err("expired".to_owned())
        } else {
            self.instagram
                .instagram_refresh(&token.secret)
                .await
                .map(|fresh| {
                    let lifetime = fresh.expires_in.filter(|s| *s > 0);
                    let lifetime = lifetime.unwrap_or(super::instagram::LONG_LIVED_SECS);
                    (fresh.access_token, now + lifetime)
                })
                .map_err(|e| failure_kind(&e))
        };
        let written = match &outcome {
            Ok((fresh, expires_at)) => {
                scope
                    .replace_token(channel, &token, fresh, *expires_at, now)
                    .await
            }
            Err(kind) => {
                scope
                    .set_token_refresh_failed(channel, &token, &health, kind, now)
                    .await
            }
        };
        match written {
            Ok(()) => {}
            Err(TenantError::ChannelNotFound(_)) => {
                self.remove_entry(&key, due_at).await?;
                return Ok(Done::Removed);
            }
            Err(e) => return Err(e.into()),
        }
        let next_due = match &outcome {
            Ok((_, expires_at)) => expires_at - REFRESH_WITHIN_SECS,
            Err(_) => now + RETRY_AFTER_SECS,
        };
        self.store()
            .put(Table::Routes, index_entry(tenant, channel, next_due), None)
            .await?;
        match outcome {
            Ok(_) => {
                self.record(tenant, AuditAction::ChannelTokenRefreshed, channel, None)
                    .await;
                tracing::info!(%tenant, channel = %channel.external_id(), "token refreshed");
                Ok(Done::Refreshed)
            }
            Err(kind) => {
                self.record(
                    tenant,
                    AuditAction::ChannelTokenRefreshFailed,
                    channel,
                    Some(&kind),
                )
                .await;
                tracing::warn!(%tenant, channel = %channel.external_id(), reason = %kind, "token refresh failed");
                self.alert(tenant, channel, &health).await;
                Ok(Done::Failed)
            }
        }
    }

    async fn record(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        channel: &ChannelRef,
        reason: Option<&str>,
    ) {
        let mut details = vec![
            ("kind", channel.kind().name()),
            ("channel", channel.external_id()),
        ];
        if let Some(r) = reason {
            details.push(("reason", r));
        }
        if let Err(e) = self.audit.record(tenant, action, ACTOR, &details).await {
            tracing::warn!(%tenant, error = %e, "audit entry not written");
        }
    }

    /// Emails the tenant's owners and admins; a delivery failure is logged (the console
    /// shows the status either way, and the next day's attempt alerts again).
    async fn alert(&self, tenant: &TenantId, channel: &ChannelRef, health: &TokenHealth) {
        let Some(mailer) = &self.mailer else {
            return;
        };
        let users = match crate::accounts::users::list_users(self.store().as_ref(), tenant).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "token alert: users not read");
                return;
            }
        };
        let text = askama::Template::render(&RefreshFailedMail {
            tenant_id: tenant.as_str(),
            account: channel.external_id(),
            expires: rfc3339(health.expires_at),
        })
        .expect("the template only formats strings");
        for user in users
            .into_iter()
            .filter(|u| matches!(u.role, Role::Owner | Role::Admin))
        {
            let mail = Mail {
                to: user.email,
                subject: "Action needed: your Instagram connection".into(),
                text: text.clone(),
            };
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(%tenant, error = %e, "token alert not delivered");
            }
        }
    }
}

enum Done {
    Refreshed,
    Failed,
    Removed,
    NotDue,
}

/// A refresh failure as a kind for the channel, logs and audit (never Meta's message).
fn failure_kind(e: &GraphError) -> String {
    if e.is_retryable() {
        "provider_unavailable".to_owned()
    } else {
        match e {
            GraphError::Unauthorized(_) => "token_refused".to_owned(),
            other => other.kind().to_owned(),
        }
    }
}
