//! Tenant account erasure: after a grace period the owner can cancel, every item of the tenant
//! in every table goes, its routes are freed (its numbers can be connected again elsewhere),
//! and finally its wrapped data keys are deleted, so any copy of its data that remains
//! anywhere, backups included, can no longer be decrypted (crypto-shredding).
//!
//! The request lives in the routes table (`TERASE#<tenant>` / `REQUEST`), outside the tenant's
//! own partitions, so it survives the erasure as the platform's record of it; a directory
//! entry (`TERASURES` / `<tenant>`) lets the scheduled run find due requests with one query.
//!
//! The work is a resumable sweep: channels are disconnected, then each table is scanned page
//! by page for the tenant's items (its partitions, and routes that name it), deleting them and
//! saving the scan position in the request after every page; the keys go last. A crash at any
//! point is finished by the next run. Scanning is proportional to the table's size; account
//! erasure is rare, and the sweep is bounded per run.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::ErasureError;
use crate::clock::now_secs;
use crate::crypto::Envelope;
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update};
use crate::tenant::{ChannelRef, TenantDirectory};

/// Default time the owner has to change their mind.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 86_400);
const DIRECTORY_PK: &str = "TERASURES";

fn request_key(tenant: &TenantId) -> Key {
    Key::new(format!("TERASE#{tenant}"), "REQUEST")
}

fn directory_key(tenant: &TenantId) -> Key {
    Key::new(DIRECTORY_PK, tenant.as_str())
}

/// A tenant erasure request as the platform sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantErasureStatus {
    pub tenant_id: TenantId,
    pub state: String,
    pub requested_at: i64,
    /// When the erasure may start (end of the grace period).
    pub not_before: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
}

/// What one scheduled run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub tenants_completed: usize,
    pub items_deleted: usize,
    /// Work remains (budget used up): run again.
    pub more_work: bool,
}

#[derive(Clone)]
pub struct TenantErasure {
    exports: Option<crate::export::Exports>,
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    tenants: TenantDirectory,
}

impl TenantErasure {
    pub fn new(
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        tenants: TenantDirectory,
    ) -> Self {
        TenantErasure {
            exports: None,
            store,
            envelope,
            tenants,
        }
    }

    /// The tenant's exports (objects and records) are deleted with it.
    pub fn with_exports(mut self, exports: crate::export::Exports) -> Self {
        self.exports = Some(exports);
        self
    }

    /// Schedules the erasure of `tenant` after `grace`. Asking again while one is pending
    /// keeps the first request.
    pub async fn request(
        &self,
        tenant: &TenantId,
        grace: Duration,
        actor: &str,
    ) -> Result<TenantErasureStatus, ErasureError> {
        if self
            .tenants
            .scope(tenant)
            .await
            .map_err(tenant_err)?
            .is_none()
        {
            return Err(ErasureError::NotFound);
        }
        let now = now_secs();
        let not_before = now + i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
        let item = Item::new(&request_key(tenant))
            .with("tenant_id", tenant.as_str())
            .with("state", "pending")
            .with("requested_at", now)
            .with("not_before", not_before)
            .with("requested_by", actor);
        let open = Condition::Or(vec![
            Condition::NotExists,
            Condition::Equals("state".into(), "cancelled".into()),
        ]);
        match self.store.put(Table::Routes, item, Some(open)).await {
            Ok(()) => {
                self.store
                    .put(
                        Table::Routes,
                        Item::new(&directory_key(tenant)).with("not_before", not_before),
                        None,
                    )
                    .await?;
                crate::audit::AuditLog::new(self.store.clone())
                    .record(
                        tenant,
                        crate::audit::AuditAction::ErasureRequested,
                        actor,
                        &[("kind", "tenant"), ("not_before", &not_before.to_string())],
                    )
                    .await?;
            }
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.status(tenant).await?.ok_or(ErasureError::NotFound)
    }

    /// Cancels a pending request (only within the grace period, before work started).
    pub async fn cancel(&self, tenant: &TenantId, actor: &str) -> Result<(), ErasureError> {
        let pending = Condition::Equals("state".into(), "pending".into());
        match self
            .store
            .update(
                Table::Routes,
                &request_key(tenant),
                Update::new()
                    .set("state", "cancelled")
                    .set("cancelled_at", now_secs()),
                Some(pending),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::ConditionFailed { .. }) => return Err(ErasureError::NotFound),
            Err(e) => return Err(e.into()),
        }
        self.store
            .delete(Table::Routes, &directory_key(tenant), None)
            .await?;
        crate::audit::AuditLog::new(self.store.clone())
            .record(
                tenant,
                crate::audit::AuditAction::ErasureCancelled,
                actor,
                &[("kind", "tenant")],
            )
            .await?;
        Ok(())
    }

    pub async fn status(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<TenantErasureStatus>, ErasureError> {
        Ok(self
            .store
            .get(Table::Routes, &request_key(tenant))
            .await?
            .map(|i| TenantErasureStatus {
                tenant_id: tenant.clone(),
                state: i.get_s("state").unwrap_or_default().to_owned(),
                requested_at: i.get_n("requested_at").unwrap_or(0),
                not_before: i.get_n("not_before").unwrap_or(0),
                completed_at: i.get_n("completed_at"),
            }))
    }

    /// Works on due requests until about `budget` items were deleted.
    pub async fn run_due(&self, budget: usize) -> Result<SweepReport, ErasureError> {
        let mut report = SweepReport::default();
        let now = now_secs();
        let mut query = Query::partition(DIRECTORY_PK).limit(100);
        loop {
            let page = self.store.query(Table::Routes, &query).await?;
            for entry in &page.items {
                let Some(tenant) = entry.get_s("sk").and_then(|t| TenantId::parse(t).ok()) else {
                    continue;
                };
                if entry.get_n("not_before").unwrap_or(i64::MAX) > now {
                    continue;
                }
                let left = budget.saturating_sub(report.items_deleted);
                if left == 0 {
                    report.more_work = true;
                    return Ok(report);
                }
                let (deleted, done) = self.sweep(&tenant, left).await?;
                report.items_deleted += deleted;
                if done {
                    report.tenants_completed += 1;
                } else {
                    report.more_work = true;
                    return Ok(report);
                }
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(report),
            }
        }
    }

    /// Erases one due tenant, at most `budget` items this call; true when finished.
    async fn sweep(&self, tenant: &TenantId, budget: usize) -> Result<(usize, bool), ErasureError> {
        let key = request_key(tenant);
        let Some(request) = self.store.get(Table::Routes, &key).await? else {
            return Ok((0, true));
        };
        match request.get_s("state") {
            Some("pending") | Some("in_progress") => {}
            _ => return Ok((0, true)),
        }
        if request.get_n("not_before").unwrap_or(i64::MAX) > now_secs() {
            return Ok((0, true));
        }
        self.store
            .update(
                Table::Routes,
                &key,
                Update::new().set("state", "in_progress"),
                None,
            )
            .await?;

        // 1. Channels: tokens deleted, routes freed, so the numbers can be connected elsewhere.
        if let Some(scope) = self.tenants.scope(tenant).await.map_err(tenant_err)? {
            for channel in scope.channels().await.map_err(tenant_err)? {
                if let Ok(r) = ChannelRef::parse(channel.kind, &channel.id) {
                    match scope.disconnect(&r).await {
                        Ok(()) | Err(crate::tenant::TenantError::ChannelNotFound(_)) => {}
                        Err(e) => return Err(tenant_err(e)),
                    }
                }
            }
        }

        // Its export files in the object store.
        if let Some(exports) = &self.exports {
            exports
                .delete_all(tenant)
                .await
                .map_err(|e| ErasureError::Corrupt(format!("deleting exports: {e}")))?;
        }

        // 2. Every item of the tenant, table by table, resuming where the last run stopped.
        let mut deleted = 0;
        let tables = [Table::Data, Table::Dedupe, Table::Routes];
        let mut table_index = request.get_n("sweep_table").unwrap_or(0) as usize;
        let mut cursor = match (request.get_s("sweep_pk"), request.get_s("sweep_sk")) {
            (Some(pk), Some(sk)) => Some(Key::new(pk, sk)),
            _ => None,
        };
        while table_index < tables.len() {
            let table = tables[table_index];
            let page = self.store.scan(table, cursor.as_ref(), 100).await?;
            for item in &page.items {
                let Some(k) = item.key() else { continue };
                let ours = tenant.owns_partition(&k.pk)
                    || (table == Table::Routes
                        && item.get_s("tenant_id") == Some(tenant.as_str())
                        && k != key);
                if ours {
                    self.store.delete(table, &k, None).await?;
                    deleted += 1;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => {
                    table_index += 1;
                    cursor = None;
                }
            }
            let mut save = Update::new().set("sweep_table", table_index as i64);
            save = match &cursor {
                Some(c) => save
                    .set("sweep_pk", c.pk.as_str())
                    .set("sweep_sk", c.sk.as_str()),
                None => save.remove("sweep_pk").remove("sweep_sk"),
            };
            self.store.update(Table::Routes, &key, save, None).await?;
            if deleted >= budget && table_index < tables.len() {
                return Ok((deleted, false));
            }
        }
        // The directory entry is the tenant's too (the `TENANTS` partition names it by sk).
        self.store
            .delete(Table::Routes, &Key::new("TENANTS", tenant.as_str()), None)
            .await?;

        // 3. Crypto-shredding, last: from here on no copy of its data can be decrypted.
        deleted += self.envelope.shred(tenant).await?;

        self.store
            .update(
                Table::Routes,
                &key,
                Update::new()
                    .set("state", "completed")
                    .set("completed_at", now_secs()),
                None,
            )
            .await?;
        self.store
            .delete(Table::Routes, &directory_key(tenant), None)
            .await?;
        tracing::info!(tenant = %tenant, items = deleted, "tenant erased");
        Ok((deleted, true))
    }
}

fn tenant_err(e: crate::tenant::TenantError) -> ErasureError {
    match e {
        crate::tenant::TenantError::Store(s) => ErasureError::Store(s),
        crate::tenant::TenantError::Crypto(c) => ErasureError::Crypto(c),
        other => ErasureError::Corrupt(other.to_string()),
    }
}
