//! A restriction that ends by itself (decision 0066): Meta's `ACCOUNT_RESTRICTION` carries an
//! `expiration` per restriction (`restriction_info[].expiration`, decision 0051) and sends no
//! event when it passes. The console and the send path already stop counting it then; the
//! name on the number's own Open Line (decision 0061) is only written on events, so without
//! this it would say "restricted" until Meta's next account event.
//!
//! When the line shows a restriction that has an expiry, the channel goes on an index in the
//! routes table (`RESTRICTIONENDS` / `<tenant>#<channel sk>`, `due_at` the earliest expiry in
//! force). The sync worker's schedule (every 5 minutes; a timer on the local server) takes
//! the due entries and shows the channel's status again as of its run: the plain name once
//! nothing is in force, or the restrictions still in force (and the entry again for the next
//! expiry). An entry goes once its channel is shown, gone, or has no line of its own. A
//! retryable Bitrix24 failure leaves the entry for the next run.

use crate::acting::acting_for;
use crate::ids::TenantId;
use crate::store::{AttrValue, Condition, Item, Key, Query, StoreError, Table, SK};
use crate::tenant::{ChannelRef, TenantDirectory, TenantError, TenantScope};

use super::line_status::{LineStatus, LineStatusError, Shown};

/// Partition (routes table) of the channels whose shown restriction ends at `due_at`.
pub const RESTRICTION_ENDS: &str = "RESTRICTIONENDS";

fn key(tenant: &TenantId, channel: &ChannelRef) -> Key {
    Key::new(
        RESTRICTION_ENDS,
        format!("{}#{}", tenant.as_str(), channel.channel_sk()),
    )
}

/// Puts `channel` on the index, due at `at` (Unix seconds).
pub(super) async fn due_at(
    scope: &TenantScope,
    channel: &ChannelRef,
    at: i64,
) -> Result<(), TenantError> {
    let item = Item::new(&key(scope.tenant(), channel))
        .with("tenant_id", scope.tenant().as_str())
        .with("due_at", at);
    scope.store().put(Table::Routes, item, None).await?;
    Ok(())
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestrictionEndReport {
    /// Due channels whose status was shown again.
    pub shown: usize,
    /// Entries dropped: the tenant or channel is gone, or it has no line of its own.
    pub dropped: usize,
    /// Left for the next run (Bitrix24 or the store unavailable).
    pub failed: usize,
}

/// The scheduled run. Build once per process.
#[derive(Clone)]
pub struct RestrictionEnds {
    tenants: TenantDirectory,
    line_status: LineStatus,
}

impl RestrictionEnds {
    pub fn new(tenants: TenantDirectory, line_status: LineStatus) -> Self {
        RestrictionEnds {
            tenants,
            line_status,
        }
    }

    /// Shows again every channel due at `now`, at most `budget` of them.
    pub async fn run_due(
        &self,
        now: i64,
        budget: usize,
    ) -> Result<RestrictionEndReport, StoreError> {
        let store = self.tenants.store();
        let mut due = Vec::new();
        let mut query = Query::partition(RESTRICTION_ENDS).limit(100);
        loop {
            let page = store.query(Table::Routes, &query).await?;
            for item in &page.items {
                if item.get_n("due_at").unwrap_or(i64::MAX) > now {
                    continue;
                }
                let parsed = item.get_s(SK).and_then(|sk| {
                    let (t, ch) = sk.split_once('#')?;
                    Some((TenantId::parse(t).ok()?, ChannelRef::from_channel_sk(ch)?))
                });
                match parsed {
                    Some(p) => due.push(p),
                    None => {
                        // Not an entry of ours: it would be read on every run.
                        if let Some(sk) = item.get_s(SK) {
                            store
                                .delete(Table::Routes, &Key::new(RESTRICTION_ENDS, sk), None)
                                .await?;
                        }
                    }
                }
            }
            match page.next {
                Some(next) if due.len() < budget => query = query.start_after(Some(next)),
                _ => break,
            }
        }
        let mut report = RestrictionEndReport::default();
        for (tenant, channel) in due.into_iter().take(budget) {
            let entry = key(&tenant, &channel);
            let shown = acting_for(&tenant, self.show(&tenant, &channel, now)).await;
            match shown {
                Ok(shown) => {
                    if matches!(shown, Shown::OnLine { .. }) {
                        report.shown += 1;
                    } else {
                        report.dropped += 1;
                    }
                    // Gone, unless the show (or an event meanwhile) put it again for a
                    // restriction still to end.
                    let passed = Condition::LessThan("due_at".into(), AttrValue::N(now + 1));
                    match store.delete(Table::Routes, &entry, Some(passed)).await {
                        Ok(()) => {}
                        Err(e) if e.is_condition_failed() => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(%tenant, error = %e, "restriction end not shown; next run retries");
                }
            }
        }
        if report != RestrictionEndReport::default() {
            tracing::info!(
                shown = report.shown,
                dropped = report.dropped,
                failed = report.failed,
                "ended restrictions shown on their Open Lines"
            );
        }
        Ok(report)
    }

    async fn show(
        &self,
        tenant: &TenantId,
        channel: &ChannelRef,
        now: i64,
    ) -> Result<Shown, LineStatusError> {
        let Some(scope) = self.tenants.scope(tenant).await? else {
            return Ok(Shown::ChannelGone);
        };
        self.line_status.show_at(&scope, channel, now).await
    }
}
