//! The backfill of the index entries decision 0051 added for channels connected before it
//! (decision 0062): the WABA index entry of each WhatsApp number (`WABA#<waba>` /
//! `<number>`, which routes account events) and the webhook-subscription entry of each
//! WhatsApp number and Instagram Login account (`WEBHOOKSUBS` / `<tenant>#<channel sk>`).
//! Without them a channel's account events were dropped as unrouted and its subscription was
//! never checked, until it was connected again.
//!
//! It runs with the scheduled subscription check, a few tenants per run, in tenant-id order;
//! where it got to is kept in the routes table (`BACKFILL` / [`INDEX_BACKFILL_SK`]: the last
//! tenant done, and `done` once the directory was walked), so a run that stops resumes where
//! the last one left off, and once done a run costs one read. Each entry is written only if
//! it is missing and only while its channel is still connected (one transaction: the put
//! under `attribute_not_exists`, and a condition check on the channel item), so a backfill
//! never resets an entry a connect wrote, never brings back the entry of a channel
//! disconnected meanwhile, and a second run writes nothing.

use super::channel::{ChannelKind, ChannelRef};
use super::meta_account::{
    subscription_index_entry, waba_index_key, DISPLAY_NUMBER_DETAIL, WABA_ID_DETAIL,
};
use super::{TenantDirectory, TenantError};
use crate::ids::{TenantId, WabaId};
use crate::store::{Condition, Item, Key, Table, WriteOp};

/// Partition (routes table) of one-off backfills' progress.
pub const BACKFILL_PK: &str = "BACKFILL";
/// The progress item of this backfill.
pub const INDEX_BACKFILL_SK: &str = "meta-indexes";

/// What one backfill run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexBackfillReport {
    /// Tenants whose channels were looked at.
    pub tenants: usize,
    /// Index entries written (missing before).
    pub written: usize,
    /// Whether every tenant has been looked at (now or by an earlier run).
    pub done: bool,
}

impl TenantDirectory {
    /// Writes the missing index entries of up to `budget` tenants' channels, after the last
    /// tenant an earlier run did. `now`: the subscription entries are due at once (their
    /// subscription was never checked).
    pub async fn backfill_meta_indexes(
        &self,
        now: i64,
        budget: usize,
    ) -> Result<IndexBackfillReport, TenantError> {
        let progress_key = Key::new(BACKFILL_PK, INDEX_BACKFILL_SK);
        let progress = self.store().get(Table::Routes, &progress_key).await?;
        if progress
            .as_ref()
            .and_then(|p| p.get("done"))
            .is_some_and(|d| d.as_bool() == Some(true))
        {
            return Ok(IndexBackfillReport {
                done: true,
                ..IndexBackfillReport::default()
            });
        }
        let after = progress
            .as_ref()
            .and_then(|p| p.get_s("after"))
            .and_then(|t| TenantId::parse(t).ok());
        let page = self.list(after.as_ref(), budget.max(1)).await?;
        let mut report = IndexBackfillReport::default();
        let mut last = after;
        for entry in &page.tenants {
            if let Some(scope) = self.scope(&entry.id).await? {
                for channel in scope.channels().await? {
                    report.written += self.backfill_channel(&entry.id, &channel, now).await?;
                }
            }
            report.tenants += 1;
            last = Some(entry.id.clone());
        }
        report.done = page.next.is_none();
        let mut item = Item::new(&progress_key).with("done", report.done);
        if let Some(t) = &last {
            item.set("after", t.as_str());
        }
        self.store().put(Table::Routes, item, None).await?;
        Ok(report)
    }

    /// The channel's missing entries; how many were written.
    async fn backfill_channel(
        &self,
        tenant: &TenantId,
        channel: &super::ChannelSummary,
        now: i64,
    ) -> Result<usize, TenantError> {
        let Ok(channel_ref) = ChannelRef::parse(channel.kind, &channel.id) else {
            return Ok(0);
        };
        let mut entries = Vec::new();
        match channel.kind {
            ChannelKind::WhatsApp => {
                entries.push(subscription_index_entry(tenant, &channel_ref, now));
                let waba = channel
                    .details
                    .get(WABA_ID_DETAIL)
                    .and_then(|w| WabaId::parse(w).ok());
                if let (Some(waba), ChannelRef::WhatsApp(number)) = (waba, &channel_ref) {
                    let mut item = Item::new(&waba_index_key(&waba, number))
                        .with("tenant_id", tenant.as_str());
                    if let Some(d) = channel.details.get(DISPLAY_NUMBER_DETAIL) {
                        let digits: String = d.chars().filter(char::is_ascii_digit).collect();
                        item.set("display_digits", digits);
                    }
                    entries.push(item);
                }
            }
            // Accounts linked to a Facebook Page are subscribed on the Page, not checked.
            ChannelKind::Instagram if !channel.details.contains_key("page_id") => {
                entries.push(subscription_index_entry(tenant, &channel_ref, now));
            }
            _ => {}
        }
        let mut written = 0;
        for item in entries {
            let ops = vec![
                WriteOp::Put {
                    table: Table::Routes,
                    item,
                    condition: Some(Condition::NotExists),
                },
                WriteOp::ConditionCheck {
                    table: Table::Data,
                    key: channel_ref.channel_key(tenant),
                    condition: Condition::Exists,
                },
            ];
            match self.store().transact_write(ops).await {
                Ok(()) => written += 1,
                // There already, or the channel was disconnected meanwhile.
                Err(e) if e.is_condition_failed() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(written)
    }
}
