//! The scheduled check that our app is still subscribed to each connected account's webhooks
//! (decision 0051). A subscription can go missing without us hearing of it (the business
//! removed the app in its settings, Meta dropped it after a long outage); until it is back,
//! the conversation silently stops reaching Bitrix24.
//!
//! Each WhatsApp number and Instagram account has an entry in the routes table's
//! `WEBHOOKSUBS` partition (written with its connection, `due_at` a day later). A run takes
//! the due entries, reads the subscription with the channel's own token and subscribes again
//! when it is missing:
//! - WhatsApp: `GET /{waba-id}/subscribed_apps` must list our app (`META_APP_ID`), else
//!   `POST /{waba-id}/subscribed_apps` (once per WABA per run);
//! - Instagram (Instagram Login): `GET /me/subscribed_apps` must hold every field of
//!   `graph::subscriptions::INSTAGRAM_WEBHOOK_FIELDS` (the comment fields only when it holds
//!   `comments`), else `POST /me/subscribed_apps` with all of them. Accounts connected through a Facebook Page are subscribed on the Page and are
//!   not checked here.
//!
//! A check that fails (Meta unavailable, the token refused) is retried an hour later; the
//! channel's token status already tells the tenant about a refused token.

use std::collections::HashSet;

use crate::graph::subscriptions::{
    instagram_fields, INSTAGRAM_COMMENTS_FIELD, INSTAGRAM_COMMENT_PERMISSION_FIELDS,
    INSTAGRAM_WEBHOOK_FIELDS,
};
use crate::graph::{GraphClient, GraphError};
use crate::ids::{MetaAppId, TenantId, WabaId};
use crate::store::{Condition, Query, StoreError, Table, TableStore};
use crate::tenant::meta_account::{
    subscription_index_entry, subscription_index_key, SUBSCRIPTION_CHECK_SECS, SUBSCRIPTION_INDEX,
    WABA_ID_DETAIL,
};
use crate::tenant::{ChannelRef, TenantDirectory, TenantError};

/// When a check that failed is tried again.
const RETRY_SECS: i64 = 3_600;

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SubscriptionReport {
    pub checked: usize,
    pub resubscribed: usize,
    pub failed: usize,
    pub removed: usize,
    /// Index entries written for channels connected before the indexes existed (decision
    /// 0062), and whether that backfill is complete.
    pub backfilled: usize,
    pub backfill_done: bool,
}

/// Tenants whose channels the index backfill looks at per run.
pub const BACKFILL_TENANTS_PER_RUN: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

/// The scheduled check. Build once per process.
#[derive(Clone)]
pub struct SubscriptionCheck {
    tenants: TenantDirectory,
    /// graph.facebook.com (WhatsApp).
    graph: GraphClient,
    /// graph.instagram.com (Instagram Login).
    instagram: GraphClient,
    /// Our app, as `subscribed_apps` lists it; without it WhatsApp is not checked.
    app_id: Option<MetaAppId>,
}

enum Checked {
    Subscribed,
    Resubscribed,
    Failed,
    Removed,
}

impl SubscriptionCheck {
    pub fn new(
        tenants: TenantDirectory,
        graph: GraphClient,
        instagram: GraphClient,
        app_id: Option<MetaAppId>,
    ) -> Self {
        SubscriptionCheck {
            tenants,
            graph,
            instagram,
            app_id,
        }
    }

    fn store(&self) -> &std::sync::Arc<dyn TableStore> {
        self.tenants.store()
    }

    /// Checks every channel due at `now`, at most `budget` of them.
    pub async fn run_due(
        &self,
        now: i64,
        budget: usize,
    ) -> Result<SubscriptionReport, SubscriptionError> {
        // Channels connected before decision 0051 get their entries first, so they are
        // checked in this run (decision 0062).
        let backfill = self
            .tenants
            .backfill_meta_indexes(now, BACKFILL_TENANTS_PER_RUN)
            .await?;
        let mut due = Vec::new();
        let mut query = Query::partition(SUBSCRIPTION_INDEX).limit(100);
        loop {
            let page = self.store().query(Table::Routes, &query).await?;
            for item in &page.items {
                if item.get_n("due_at").unwrap_or(0) > now {
                    continue;
                }
                let due_at = item.get_n("due_at");
                let parsed = item.get_s(crate::store::SK).and_then(|sk| {
                    let (t, ch) = sk.split_once('#')?;
                    Some((
                        TenantId::parse(t).ok()?,
                        ChannelRef::from_channel_sk(ch)?,
                        due_at,
                    ))
                });
                due.extend(parsed);
            }
            match page.next {
                Some(next) if due.len() < budget => query = query.start_after(Some(next)),
                _ => break,
            }
        }
        let mut report = SubscriptionReport {
            backfilled: backfill.written,
            backfill_done: backfill.done,
            ..SubscriptionReport::default()
        };
        // A WABA shared by several numbers is read (and subscribed) once per run.
        let mut wabas_done: HashSet<WabaId> = HashSet::new();
        for (tenant, channel, due_at) in due.into_iter().take(budget) {
            report.checked += 1;
            let next = match self.check(&tenant, &channel, &mut wabas_done).await? {
                Checked::Removed => {
                    // Only the entry that was read: the channel connected again since the
                    // check found it gone wrote a new one (due a day after that connect),
                    // which is its only way to be checked (decision 0119).
                    let seen = Condition::number_unchanged("due_at", due_at);
                    match self
                        .store()
                        .delete(
                            Table::Routes,
                            &subscription_index_key(&tenant, &channel),
                            Some(seen),
                        )
                        .await
                    {
                        Err(e) if !e.is_condition_failed() => return Err(e.into()),
                        _ => {}
                    }
                    report.removed += 1;
                    continue;
                }
                Checked::Failed => {
                    report.failed += 1;
                    now + RETRY_SECS
                }
                Checked::Resubscribed => {
                    report.resubscribed += 1;
                    now + SUBSCRIPTION_CHECK_SECS
                }
                Checked::Subscribed => now + SUBSCRIPTION_CHECK_SECS,
            };
            self.store()
                .put(
                    Table::Routes,
                    subscription_index_entry(&tenant, &channel, next),
                    None,
                )
                .await?;
        }
        Ok(report)
    }

    async fn check(
        &self,
        tenant: &TenantId,
        channel: &ChannelRef,
        wabas_done: &mut HashSet<WabaId>,
    ) -> Result<Checked, SubscriptionError> {
        let Some(scope) = self.tenants.scope(tenant).await? else {
            return Ok(Checked::Removed);
        };
        let Some(summary) = scope.channel(channel).await? else {
            return Ok(Checked::Removed);
        };
        let token = match scope.channel_secret(channel, "access_token").await {
            Ok(t) => t,
            Err(TenantError::ChannelNotFound(_)) => return Ok(Checked::Removed),
            Err(e) => return Err(e.into()),
        };
        let result: Result<bool, GraphError> = match channel {
            ChannelRef::WhatsApp(_) => {
                let (Some(app), Some(waba)) = (
                    self.app_id.as_ref(),
                    summary
                        .details
                        .get(WABA_ID_DETAIL)
                        .and_then(|w| WabaId::parse(w).ok()),
                ) else {
                    return Ok(Checked::Subscribed);
                };
                if !wabas_done.insert(waba.clone()) {
                    return Ok(Checked::Subscribed);
                }
                match self.graph.waba_subscribes(&waba, app, &token).await {
                    Ok(true) => Ok(false),
                    Ok(false) => self.graph.subscribe_app(&waba, &token).await.map(|()| true),
                    Err(e) => Err(e),
                }
            }
            ChannelRef::Instagram(_) if summary.details.contains_key("page_id") => {
                return Ok(Checked::Removed);
            }
            ChannelRef::Instagram(_) => {
                match self.instagram.instagram_subscribed_fields(&token).await {
                    Ok(fields)
                        if {
                            // The comment fields only of an account that has the permission.
                            let permitted = fields.iter().any(|g| g == INSTAGRAM_COMMENTS_FIELD);
                            INSTAGRAM_WEBHOOK_FIELDS
                                .iter()
                                .filter(|f| {
                                    permitted || !INSTAGRAM_COMMENT_PERMISSION_FIELDS.contains(f)
                                })
                                .all(|f| fields.iter().any(|g| g == f))
                        } =>
                    {
                        Ok(false)
                    }
                    Ok(_) => self
                        .instagram
                        .instagram_subscribe(&token, &instagram_fields())
                        .await
                        .map(|()| true),
                    Err(e) => Err(e),
                }
            }
            ChannelRef::Bitrix24(_) => return Ok(Checked::Removed),
        };
        Ok(match result {
            Ok(true) => {
                tracing::info!(%tenant, channel = %channel.external_id(), "webhook subscription was missing; subscribed again");
                Checked::Resubscribed
            }
            Ok(false) => Checked::Subscribed,
            Err(e) => {
                tracing::warn!(%tenant, channel = %channel.external_id(), error = e.kind(), "webhook subscription check failed; retried later");
                Checked::Failed
            }
        })
    }
}
