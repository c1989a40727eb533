//! Retention re-stamping: when a tenant's retention changes, the items it already stored are
//! brought to the new period (decision 0015).
//!
//! New items are stamped at write time (`expires_at = now + retention_days`, see
//! [`crate::conversation`]). A change of retention ([`crate::tenant::TenantScope::set_retention`])
//! bumps the profile's `retention_version`; [`RetentionRun::run_once`], run on a schedule,
//! finds tenants whose items do not carry their current version yet and, tenant by tenant,
//! walks the conversation list (`T#<t>#CONVS`), each conversation's messages, its provider-id
//! index items (`T#<t>#MID#...`) and its `META`, and sets every `expires_at` to
//! **the item's own time + the new retention**:
//!
//! - a message: when we stored it (`created_at`, the time its first stamp counted from; its
//!   `at_ms` when that is missing), so every message expires `retention_days` after it
//!   reached us whichever retention was in force then;
//! - its index items: the same expiry as their message;
//! - the conversation (`META`): its last activity (`updated_at`) + retention, and never before
//!   the latest of its messages; the aliases of its customer's other identities (listed in
//!   `META`, decision 0049): the same;
//! - the list entry (`CONVS`): never before its conversation or any of its messages.
//!
//! An item whose new expiry is already past is deleted (reads treat it as gone anyway); items
//! that had already expired are not revived by a longer retention.
//!
//! The walk is resumable: a cursor item `T#<t>` / `RETENTION_CURSOR` holds the version being
//! applied, the last conversation done, and within the current conversation the last message
//! done. It is saved after every page, so a run can stop at any point (budget, time, crash)
//! and the next one continues; every write is a pure function of the item and the retention,
//! so repeating a page is harmless. A finished tenant records `applied_version` and a
//! `retention_applied` audit entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audit::{AuditAction, AuditLog};
use crate::clock::now_secs;
use crate::conversation::{ALIASES_ATTR, ALIAS_SK, ALIAS_TARGET, INDEX_PK, MID_SK, SENT_INDEX_PK};
use crate::ids::TenantId;
use crate::meta::AccountRef;
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, Update, TTL_ATTR,
};
use crate::tenant::{TenantDirectory, TenantError, DEFAULT_RETENTION_DAYS, RETENTION_VERSION_ATTR};

/// Sort key of the re-stamp cursor in the tenant's own partition `T#<t>`.
pub const CURSOR_SK: &str = "RETENTION_CURSOR";
const PROFILE_SK: &str = "PROFILE";
const META_SK: &str = "META";
const MSG_PREFIX: &str = "MSG#";
const SECS_PER_DAY: i64 = 86_400;
/// Conversations read per page of the conversation list.
const CONVS_PAGE: usize = 25;
/// Messages read per page at most (smaller when the budget is nearly used).
const MESSAGES_PAGE: usize = 100;
/// Tenants read per page of the directory.
const TENANTS_PAGE: usize = 100;
/// Who the audit log names for the re-stamper's entries.
pub const ACTOR: &str = "system:retention";

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

/// How much one run may do: a number of items (each message, index item, conversation and
/// list entry counts one) and/or a deadline. A run always makes progress (at least one
/// message or conversation) before it stops.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    max_items: Option<u64>,
    deadline: Option<Instant>,
    used: u64,
}

impl Budget {
    /// At most about `n` items (a page in progress is finished).
    pub fn items(n: u64) -> Self {
        Budget {
            max_items: Some(n.max(1)),
            deadline: None,
            used: 0,
        }
    }

    /// Until `d` from now.
    pub fn time(d: Duration) -> Self {
        Budget {
            max_items: None,
            deadline: Some(Instant::now() + d),
            used: 0,
        }
    }

    /// Also stop at `deadline`.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    fn spend(&mut self, n: u64) {
        self.used += n;
    }

    fn exhausted(&self) -> bool {
        self.max_items.is_some_and(|m| self.used >= m)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Items left, clamped to a page size (at least 1).
    fn page(&self, max: usize) -> usize {
        match self.max_items {
            Some(m) => usize::try_from(m.saturating_sub(self.used))
                .unwrap_or(max)
                .clamp(1, max),
            None => max,
        }
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Tenants whose items now all carry their current retention.
    pub tenants_done: u64,
    /// Items whose `expires_at` was rewritten.
    pub items_restamped: u64,
    /// Items deleted because the new retention had already passed for them.
    pub items_expired: u64,
    /// Tenants skipped after an error (logged; retried by the next run).
    pub tenants_failed: u64,
    /// True when a tenant still has items to re-stamp: run again.
    pub more_work: bool,
}

pub use crate::conversation::message_index_key;

/// `from` (Unix seconds) plus `days` of retention.
pub fn expiry_after(from: i64, days: u32) -> i64 {
    from.saturating_add(i64::from(days) * SECS_PER_DAY)
}

/// A message's own time (Unix seconds): when we stored it, which its write-time expiry
/// counted from; the provider's send time (`at_ms`) only when that is missing. (The send
/// time is not used otherwise: a redelivered or replayed old event would then vanish on any
/// retention change, even a longer one.)
pub fn message_time(item: &Item) -> Option<i64> {
    item.get_n("created_at")
        .filter(|t| *t > 0)
        .or_else(|| item.get_n("at_ms").filter(|t| *t > 0).map(|ms| ms / 1000))
}

/// Where a tenant's re-stamp stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Cursor {
    /// The last retention version whose re-stamp finished.
    applied_version: i64,
    /// The version being applied.
    target_version: i64,
    retention_days: u32,
    /// Last conversation list entry done.
    convs_after: Option<String>,
    /// The conversation in progress and its last message done.
    current: Option<String>,
    msg_after: Option<String>,
    /// The latest expiry among the current conversation's messages so far.
    conv_max: Option<i64>,
    /// Items rewritten or deleted for this version so far.
    items: i64,
}

impl Cursor {
    fn key(tenant: &TenantId) -> Key {
        Key::new(tenant.partition(), CURSOR_SK)
    }

    fn from_item(item: &Item) -> Self {
        let s = |n: &str| item.get_s(n).map(str::to_owned);
        Cursor {
            applied_version: item.get_n("applied_version").unwrap_or(0),
            target_version: item.get_n("target_version").unwrap_or(0),
            retention_days: item
                .get_n("retention_days")
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(0),
            convs_after: s("convs_after"),
            current: s("current"),
            msg_after: s("msg_after"),
            conv_max: item.get_n("conv_max"),
            items: item.get_n("items").unwrap_or(0),
        }
    }

    fn to_item(&self, tenant: &TenantId) -> Item {
        let mut item = Item::new(&Self::key(tenant))
            .with("applied_version", self.applied_version)
            .with("target_version", self.target_version)
            .with("retention_days", i64::from(self.retention_days))
            .with("items", self.items)
            .with("updated_at", now_secs());
        for (name, value) in [
            ("convs_after", &self.convs_after),
            ("current", &self.current),
            ("msg_after", &self.msg_after),
        ] {
            if let Some(v) = value {
                item.set(name, v.as_str());
            }
        }
        if let Some(m) = self.conv_max {
            item.set("conv_max", m);
        }
        item
    }
}

/// The result of rewriting one item's expiry.
enum Stamp {
    Restamped,
    Expired,
    /// Gone already (or no longer the item we meant): nothing written.
    Missing,
    /// Already carried this expiry.
    Unchanged,
}

enum TenantOutcome {
    NothingToDo,
    Done,
    Paused,
}

/// The scheduled re-stamper.
#[derive(Clone)]
pub struct RetentionRun {
    store: Arc<dyn TableStore>,
    tenants: TenantDirectory,
    audit: AuditLog,
}

impl RetentionRun {
    pub fn new(store: Arc<dyn TableStore>, tenants: TenantDirectory) -> Self {
        RetentionRun {
            audit: AuditLog::new(store.clone()),
            store,
            tenants,
        }
    }

    /// Re-stamps tenants in directory order until every tenant carries its current retention
    /// or the budget is used. `more_work` tells whether another run is needed.
    pub async fn run_once(&self, mut budget: Budget) -> Result<Report, RetentionError> {
        let mut report = Report::default();
        let mut after: Option<TenantId> = None;
        loop {
            let page = self.tenants.list(after.as_ref(), TENANTS_PAGE).await?;
            for entry in &page.tenants {
                if budget.exhausted() {
                    // Only look: is anything left for a later run?
                    match self.pending(&entry.id).await {
                        Ok(None) => continue,
                        Ok(Some(_)) | Err(_) => {
                            report.more_work = true;
                            return Ok(report);
                        }
                    }
                }
                match self.tenant(&entry.id, &mut budget, &mut report).await {
                    Ok(TenantOutcome::NothingToDo) => {}
                    Ok(TenantOutcome::Done) => report.tenants_done += 1,
                    Ok(TenantOutcome::Paused) => {
                        report.more_work = true;
                        return Ok(report);
                    }
                    Err(e) => {
                        tracing::error!(tenant = %entry.id, error = %e, "retention re-stamp failed");
                        report.tenants_failed += 1;
                        report.more_work = true;
                    }
                }
            }
            match page.next.and_then(|n| TenantId::parse(&n).ok()) {
                Some(n) => after = Some(n),
                None => return Ok(report),
            }
        }
    }

    /// The tenant's target (version, days) when its items do not carry it yet.
    async fn pending(&self, tenant: &TenantId) -> Result<Option<(i64, u32)>, RetentionError> {
        let Some(profile) = self
            .store
            .get(Table::Data, &Key::new(tenant.partition(), PROFILE_SK))
            .await?
        else {
            return Ok(None);
        };
        let version = profile.get_n(RETENTION_VERSION_ATTR).unwrap_or(0);
        if version == 0 {
            // Never changed since creation: items carry it from their write.
            return Ok(None);
        }
        let days = profile
            .get_n("retention_days")
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        let applied = self
            .store
            .get(Table::Data, &Cursor::key(tenant))
            .await?
            .map(|c| Cursor::from_item(&c).applied_version)
            .unwrap_or(0);
        Ok((applied < version).then_some((version, days)))
    }

    async fn tenant(
        &self,
        tenant: &TenantId,
        budget: &mut Budget,
        report: &mut Report,
    ) -> Result<TenantOutcome, RetentionError> {
        let Some((version, days)) = self.pending(tenant).await? else {
            return Ok(TenantOutcome::NothingToDo);
        };
        let stored = self.store.get(Table::Data, &Cursor::key(tenant)).await?;
        let mut cursor = stored.as_ref().map(Cursor::from_item).unwrap_or_default();
        if cursor.target_version != version || cursor.retention_days != days {
            // A new target (or a change during a walk): start over with it.
            cursor = Cursor {
                applied_version: cursor.applied_version,
                target_version: version,
                retention_days: days,
                ..Cursor::default()
            };
            self.save(tenant, &cursor).await?;
            tracing::info!(%tenant, version, retention_days = days, "retention re-stamp started");
        }
        let list_pk = tenant.sub_partition("CONVS");
        loop {
            let page = self
                .store
                .query(
                    Table::Data,
                    &Query::partition(list_pk.clone())
                        .limit(CONVS_PAGE)
                        .start_after(
                            cursor
                                .convs_after
                                .as_ref()
                                .map(|c| Key::new(list_pk.clone(), c.as_str())),
                        ),
                )
                .await?;
            for entry in &page.items {
                if budget.exhausted() {
                    self.save(tenant, &cursor).await?;
                    return Ok(TenantOutcome::Paused);
                }
                if !self
                    .conversation(tenant, entry, &mut cursor, budget, report)
                    .await?
                {
                    return Ok(TenantOutcome::Paused);
                }
            }
            if page.next.is_none() {
                break;
            }
        }
        // Finished: record it once, even when two runs overlap.
        cursor.applied_version = version;
        cursor.current = None;
        cursor.msg_after = None;
        cursor.conv_max = None;
        let finished = self
            .store
            .put(
                Table::Data,
                cursor.to_item(tenant),
                Some(Condition::Or(vec![
                    Condition::AttrNotExists("applied_version".into()),
                    Condition::LessThan("applied_version".into(), AttrValue::N(version)),
                ])),
            )
            .await;
        match finished {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => return Ok(TenantOutcome::NothingToDo),
            Err(e) => return Err(e.into()),
        }
        let (d, v, n) = (
            days.to_string(),
            version.to_string(),
            cursor.items.to_string(),
        );
        self.audit
            .record(
                tenant,
                AuditAction::RetentionApplied,
                ACTOR,
                &[
                    ("retention_days", &d),
                    ("retention_version", &v),
                    ("items", &n),
                ],
            )
            .await?;
        tracing::info!(%tenant, version, retention_days = days, items = cursor.items, "retention re-stamp finished");
        Ok(TenantOutcome::Done)
    }

    /// Re-stamps one conversation: its messages (and their index items) page by page, then
    /// its `META` and its list entry. False when the budget ran out part-way (the cursor is
    /// saved).
    async fn conversation(
        &self,
        tenant: &TenantId,
        entry: &Item,
        cursor: &mut Cursor,
        budget: &mut Budget,
        report: &mut Report,
    ) -> Result<bool, RetentionError> {
        let Some(entry_key) = entry.key() else {
            return Ok(true);
        };
        let conv = entry_key.sk.clone();
        if cursor.current.as_deref() != Some(conv.as_str()) {
            cursor.current = Some(conv.clone());
            cursor.msg_after = None;
            cursor.conv_max = None;
        }
        let days = cursor.retention_days;
        let pk = tenant.sub_partition(&format!("CONV#{conv}"));
        let meta_key = Key::new(pk.clone(), META_SK);
        let meta = self.store.get(Table::Data, &meta_key).await?;
        let account = meta
            .as_ref()
            .and_then(|m| m.get("account"))
            .and_then(account_from_attr);
        loop {
            if budget.exhausted() {
                self.save(tenant, cursor).await?;
                return Ok(false);
            }
            let page = self
                .store
                .query(
                    Table::Data,
                    &Query::partition(pk.clone())
                        .begins_with(MSG_PREFIX)
                        .limit(budget.page(MESSAGES_PAGE))
                        .start_after(
                            cursor
                                .msg_after
                                .as_ref()
                                .map(|sk| Key::new(pk.clone(), sk.as_str())),
                        ),
                )
                .await?;
            for message in &page.items {
                let Some(key) = message.key() else { continue };
                let expiry = expiry_after(message_time(message).unwrap_or_else(now_secs), days);
                let outcome = self.stamp(&key, Some(message), expiry, None).await?;
                self.count(outcome, cursor, report);
                budget.spend(1);
                if expiry > now_secs() {
                    cursor.conv_max = Some(cursor.conv_max.map_or(expiry, |m| m.max(expiry)));
                }
                if let Some(account) = &account {
                    // The index items' keys: stored beside the encrypted provider ids, or
                    // (messages written before issue 13) derived from the ids in clear.
                    let indexes = [
                        (INDEX_PK, "provider_message_id"),
                        (SENT_INDEX_PK, "sent_provider_id"),
                    ]
                    .into_iter()
                    .filter_map(|(pointer, legacy)| match message.get_s(pointer) {
                        Some(pk) => Some(Key::new(pk, MID_SK)),
                        None => message
                            .get_s(legacy)
                            .map(|id| message_index_key(tenant, account, id)),
                    })
                    .collect::<Vec<_>>();
                    for index in indexes {
                        let ours = Condition::And(vec![
                            Condition::Equals("conversation".into(), conv.as_str().into()),
                            Condition::Equals("message_sk".into(), key.sk.as_str().into()),
                        ]);
                        let outcome = self.stamp(&index, None, expiry, Some(ours)).await?;
                        self.count(outcome, cursor, report);
                        budget.spend(1);
                    }
                }
                cursor.msg_after = Some(key.sk);
            }
            if page.next.is_none() {
                break;
            }
            self.save(tenant, cursor).await?;
        }
        let now = now_secs();
        let latest = cursor.conv_max;
        let mut list_expiry = latest;
        if let Some(meta) = &meta {
            let since = meta
                .get_n("updated_at")
                .or_else(|| meta.get_n("created_at"))
                .unwrap_or(now);
            let expiry = expiry_after(since, days).max(latest.unwrap_or(i64::MIN));
            let outcome = self.stamp(&meta_key, Some(meta), expiry, None).await?;
            self.count(outcome, cursor, report);
            // The customer's other identities' aliases live as long as the conversation
            // (decision 0049); only those still pointing here.
            let aliases = meta.get_s(ALIASES_ATTR).unwrap_or_default();
            for pk in aliases.split(',').filter(|p| !p.is_empty()) {
                let ours = Condition::Equals(ALIAS_TARGET.into(), conv.as_str().into());
                let alias = Key::new(pk, ALIAS_SK);
                let outcome = self.stamp(&alias, None, expiry, Some(ours)).await?;
                self.count(outcome, cursor, report);
                budget.spend(1);
            }
            list_expiry = Some(list_expiry.map_or(expiry, |l| l.max(expiry)));
        }
        let listed = expiry_after(entry.get_n("created_at").unwrap_or(now), days);
        let list_expiry = list_expiry.map_or(listed, |l| l.max(listed));
        let outcome = self
            .stamp(&entry_key, Some(entry), list_expiry, None)
            .await?;
        self.count(outcome, cursor, report);
        budget.spend(2);
        cursor.convs_after = Some(conv);
        cursor.current = None;
        cursor.msg_after = None;
        cursor.conv_max = None;
        self.save(tenant, cursor).await?;
        Ok(true)
    }

    /// Sets an item's expiry, or deletes it when the expiry has passed. Only a live item (and
    /// with `extra`, only the item we mean) is touched: an expired item is never revived.
    async fn stamp(
        &self,
        key: &Key,
        current: Option<&Item>,
        expiry: i64,
        extra: Option<Condition>,
    ) -> Result<Stamp, RetentionError> {
        if current.is_some_and(|i| i.get_n(TTL_ATTR) == Some(expiry)) {
            return Ok(Stamp::Unchanged);
        }
        let condition = match extra {
            Some(c) => Condition::And(vec![Condition::Exists, c]),
            None => Condition::Exists,
        };
        let result = if expiry <= now_secs() {
            self.store
                .delete(Table::Data, key, Some(condition))
                .await
                .map(|()| Stamp::Expired)
        } else {
            self.store
                .update(
                    Table::Data,
                    key,
                    Update::new().set(TTL_ATTR, expiry),
                    Some(condition),
                )
                .await
                .map(|_| Stamp::Restamped)
        };
        match result {
            Ok(s) => Ok(s),
            Err(StoreError::ConditionFailed { .. }) => Ok(Stamp::Missing),
            Err(e) => Err(e.into()),
        }
    }

    fn count(&self, outcome: Stamp, cursor: &mut Cursor, report: &mut Report) {
        match outcome {
            Stamp::Restamped => report.items_restamped += 1,
            Stamp::Expired => report.items_expired += 1,
            Stamp::Missing | Stamp::Unchanged => return,
        }
        cursor.items += 1;
    }

    async fn save(&self, tenant: &TenantId, cursor: &Cursor) -> Result<(), RetentionError> {
        self.store
            .put(Table::Data, cursor.to_item(tenant), None)
            .await?;
        Ok(())
    }
}

fn account_from_attr(v: &AttrValue) -> Option<AccountRef> {
    let AttrValue::M(m) = v else { return None };
    let channel = m.get("channel")?.as_s()?;
    let id = m.get("id")?.as_s()?;
    serde_json::from_value(serde_json::json!({ "channel": channel, "id": id })).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_time_is_when_it_was_stored() {
        let item = Item::default()
            .with("created_at", 2_000)
            .with("at_ms", 1_500_000);
        assert_eq!(message_time(&item), Some(2_000));
        let item = Item::default()
            .with("created_at", 0)
            .with("at_ms", 1_500_000);
        assert_eq!(message_time(&item), Some(1_500));
        assert_eq!(message_time(&Item::default()), None);
    }

    #[test]
    fn budgets_bound_pages_and_stop() {
        let mut b = Budget::items(3);
        assert_eq!(b.page(100), 3);
        b.spend(2);
        assert_eq!(b.page(100), 1);
        assert!(!b.exhausted());
        b.spend(5);
        assert!(b.exhausted());
        assert_eq!(b.page(100), 1);
        assert!(Budget::time(Duration::ZERO).exhausted());
        assert!(!Budget::time(Duration::from_secs(60)).exhausted());
    }
}
