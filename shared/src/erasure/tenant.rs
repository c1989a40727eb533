//! Tenant account erasure: after a grace period the owner can cancel, every item of the tenant
//! in every table goes, its routes are freed (its numbers can be connected again elsewhere),
//! its owners are told by email, and finally its wrapped data keys are deleted, so any copy
//! of its data that remains anywhere, backups included, can no longer be decrypted
//! (crypto-shredding).
//!
//! The request lives in the routes table (`TERASE#<tenant>` / `REQUEST`), outside the tenant's
//! own partitions, so it survives the erasure as the platform's record of it; a directory
//! entry (`TERASURES` / `<tenant>`) lets the scheduled run find due requests with one query.
//!
//! The sweep reads by key only (`Query` on a partition, `GetItem`, `DeleteItem`; never a
//! table `Scan`, which the erasure role is not granted and whose cost would grow with every
//! tenant's data): it derives each of the tenant's partitions from what the tenant owns
//! (decision 0027). Phases, each resumable because it deletes what it finds and queries again:
//!
//! 0. the owners' addresses are kept (encrypted) for the completion email; channels are
//!    disconnected (routes, `AUTHBY` entries) and our access revoked at the providers
//!    (decision 0036), and the sweep waits, run after run, until no revocation is pending:
//!    shredding the keys would destroy the tokens the steps need (decision 0047); the steps'
//!    outcome, without channel ids, is kept in the request; export files go;
//! 1. conversations, from the `CONVS` list: messages, provider-id index items, the
//!    idempotency and send-progress records derived from each message, staged CRM
//!    operations, the partition and its list entry;
//! 2. the fixed sub-partitions ([`FIXED_SUB_PARTITIONS`]), API key routes with their list;
//! 3. the root partition (profile, users, sessions, invitations, usage, held events, ...),
//!    with the Bitrix24 connection codes its pointers name;
//! 4. the platform index entries that name the tenant (`TENANTS`, `PARKED`);
//! 5. the completion email, then the keys, then the request is marked completed.
//!
//! The phase reached is saved in the request, so a run that used up its budget continues
//! there. Dedupe records that cannot be derived (CRM-sync records, inbound records of events
//! of no stored message, sign-in throttling) hold no personal data and expire within 8 days.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::ErasureError;
use crate::accounts::Mailer;
use crate::clock::now_secs;
use crate::conversation::{ConversationId, Conversations};
use crate::crypto::Envelope;
use crate::crypto::FieldRef;
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update};
use crate::tenant::{ChannelRef, TenantDirectory};

/// Default time the owner has to change their mind.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 86_400);
const DIRECTORY_PK: &str = "TERASURES";
/// The request's attributes: the sweep's phase, the owners' addresses (encrypted) kept for
/// the completion email, and when that email was sent.
const PHASE_ATTR: &str = "sweep_phase";
const NOTIFY_ATTR: &str = "notify_to";
/// The request's summary of the provider revocations (`step=state:count`, no channel ids),
/// kept after the tenant is gone as the platform's record of what was revoked.
const REVOCATIONS_ATTR: &str = "revocations";
/// The actor of the revocations an account erasure makes, in the tenant's audit log.
pub const ERASURE_ACTOR: &str = "account_erasure";
use super::mail::NOTIFIED_ATTR;

/// The tenant's sub-partitions with fixed names (`T#<t>#<suffix>`), drained whole by the
/// sweep. Conversations (`CONV#<c>`, `MID#<hash>`) are found through `CONVS`, API keys
/// through `APIKEYS` (both handled apart). A new kind of tenant partition must be listed here
/// or derived in the sweep; the erasure tests create every kind and fail on any survivor.
pub const FIXED_SUB_PARTITIONS: [&str; 8] = [
    crate::crm_sync::outbox::PARTITION,
    crate::coexistence::SETTINGS_SUFFIX,
    crate::conversation::erased::PARTITION,
    crate::crm_sync::parking::PARKED_SUFFIX,
    crate::export::EXPORTS_SUFFIX,
    super::REQUESTS_SUFFIX,
    crate::audit::AUDIT_SUFFIX,
    crate::revocation::record::REVOKE_SUFFIX,
];

fn request_key(tenant: &TenantId) -> Key {
    Key::new(format!("TERASE#{tenant}"), "REQUEST")
}

/// Where the kept addresses are bound (the envelope's AAD): a location of the tenant's own,
/// since its keys only encrypt what the tenant owns; the ciphertext itself sits in the
/// request (routes table), which outlives the keys.
fn notify_location(tenant: &TenantId) -> Key {
    Key::new(tenant.partition(), "ERASURE_NOTIFY")
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
    /// The provider revocations: `pending` while the sweep waits on them, then the steps'
    /// states (`whatsapp_subscription=done:1,...`; empty when there was no channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocations: Option<String>,
}

/// What one scheduled run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub tenants_completed: usize,
    pub items_deleted: usize,
    /// Work remains (budget used up): run again.
    pub more_work: bool,
    /// Tenants whose erasure waits on pending provider revocations (a later run continues).
    pub tenants_waiting: usize,
}

/// How one tenant's sweep stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Swept {
    Completed,
    /// The budget was used up.
    Budget,
    /// Provider revocations are pending: nothing more until they settle.
    Waiting,
}

#[derive(Clone)]
pub struct TenantErasure {
    exports: Option<crate::export::Exports>,
    mailer: Option<Arc<dyn Mailer>>,
    revocations: Option<crate::revocation::Revocations>,
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
            mailer: None,
            revocations: None,
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

    /// The tenant's owners are emailed when the erasure completes.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// The tenant's channels are disconnected with their revocation at the providers
    /// (decision 0036), and the keys are shredded only once no revocation is pending. Without
    /// it the channels' tokens and routes are only deleted.
    pub fn with_revocations(mut self, revocations: crate::revocation::Revocations) -> Self {
        self.revocations = Some(revocations);
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
                revocations: i.get_s(REVOCATIONS_ATTR).map(str::to_owned),
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
                // One tenant's erasure: its scoped credentials (decision 0037).
                let sweep = self.sweep(&tenant, left);
                let (deleted, swept) = crate::acting::acting_for(&tenant, sweep).await?;
                report.items_deleted += deleted;
                match swept {
                    Swept::Completed => report.tenants_completed += 1,
                    // The next scheduled run looks again; the others need not wait.
                    Swept::Waiting => report.tenants_waiting += 1,
                    Swept::Budget => {
                        report.more_work = true;
                        return Ok(report);
                    }
                }
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(report),
            }
        }
    }

    /// Erases one due tenant, at most about `budget` items this call.
    async fn sweep(
        &self,
        tenant: &TenantId,
        budget: usize,
    ) -> Result<(usize, Swept), ErasureError> {
        let key = request_key(tenant);
        let Some(request) = self.store.get(Table::Routes, &key).await? else {
            return Ok((0, Swept::Completed));
        };
        match request.get_s("state") {
            Some("pending") | Some("in_progress") => {}
            _ => return Ok((0, Swept::Completed)),
        }
        if request.get_n("not_before").unwrap_or(i64::MAX) > now_secs() {
            return Ok((0, Swept::Completed));
        }
        let mut phase = request.get_n(PHASE_ATTR).unwrap_or(0);
        let mut deleted = 0;
        if phase == 0 {
            self.store
                .update(
                    Table::Routes,
                    &key,
                    Update::new().set("state", "in_progress"),
                    None,
                )
                .await?;
            if request.get(NOTIFY_ATTR).is_none() {
                self.keep_owners(tenant, &key).await?;
            }
            self.disconnect_all(tenant).await?;
            if !self.revocations_settled(tenant, &key).await? {
                return Ok((0, Swept::Waiting));
            }
            // Its export files in the object store.
            if let Some(exports) = &self.exports {
                exports
                    .delete_all(tenant)
                    .await
                    .map_err(|e| ErasureError::Corrupt(format!("deleting exports: {e}")))?;
            }
            phase = self.next_phase(&key, 1).await?;
        }
        if phase == 1 {
            deleted += self.conversations(tenant, budget).await?;
            if deleted >= budget {
                return Ok((deleted, Swept::Budget));
            }
            phase = self.next_phase(&key, 2).await?;
        }
        if phase == 2 {
            for suffix in FIXED_SUB_PARTITIONS {
                let pk = tenant.sub_partition(suffix);
                deleted += self
                    .drain(Table::Data, &pk, budget - deleted.min(budget))
                    .await?;
                if deleted >= budget {
                    return Ok((deleted, Swept::Budget));
                }
            }
            deleted += self.api_keys(tenant).await?;
            phase = self.next_phase(&key, 3).await?;
        }
        if phase == 3 {
            deleted += self.root_partition(tenant, budget).await?;
            if deleted >= budget {
                return Ok((deleted, Swept::Budget));
            }
            phase = self.next_phase(&key, 4).await?;
        }
        if phase == 4 {
            for index in [
                Key::new("TENANTS", tenant.as_str()),
                crate::crm_sync::parking::index_key(tenant),
            ] {
                self.store.delete(Table::Routes, &index, None).await?;
                deleted += 1;
            }
            self.next_phase(&key, 5).await?;
        }

        // Everything but the keys is gone: tell the owners (once), then shred.
        let completed_at = now_secs();
        self.notify_owners(tenant, &key, completed_at).await?;

        // Crypto-shredding, last: from here on no copy of its data can be decrypted.
        deleted += self.envelope.shred(tenant).await?;

        self.store
            .update(
                Table::Routes,
                &key,
                Update::new()
                    .set("state", "completed")
                    .set("completed_at", completed_at)
                    .remove(NOTIFY_ATTR),
                None,
            )
            .await?;
        self.store
            .delete(Table::Routes, &directory_key(tenant), None)
            .await?;
        tracing::info!(tenant = %tenant, items = deleted, "tenant erased");
        Ok((deleted, Swept::Completed))
    }

    async fn next_phase(&self, key: &Key, phase: i64) -> Result<i64, ErasureError> {
        self.store
            .update(
                Table::Routes,
                key,
                Update::new().set(PHASE_ATTR, phase),
                None,
            )
            .await?;
        Ok(phase)
    }

    /// Routes freed, so the numbers can be connected elsewhere; with revocations, our access
    /// is revoked at the providers (the tokens held by the records until then), else the
    /// tokens are deleted at once.
    async fn disconnect_all(&self, tenant: &TenantId) -> Result<(), ErasureError> {
        let Some(scope) = self.tenants.scope(tenant).await.map_err(tenant_err)? else {
            return Ok(());
        };
        let channels = scope.channels().await.map_err(tenant_err)?;
        // A number's Coexistence history backlog and its import index entry (decision 0052).
        for channel in &channels {
            if let Ok(ChannelRef::WhatsApp(number)) = ChannelRef::parse(channel.kind, &channel.id) {
                crate::coexistence::Coexistence::new(self.store.clone())
                    .clear_backlog(tenant, &number)
                    .await?;
            }
        }
        if let Some(revocations) = &self.revocations {
            revocations
                .disconnect_all(&scope, ERASURE_ACTOR)
                .await
                .map_err(revocation_err)?;
            return Ok(());
        }
        for channel in channels {
            if let Ok(r) = ChannelRef::parse(channel.kind, &channel.id) {
                match scope.disconnect(&r).await {
                    Ok(()) | Err(crate::tenant::TenantError::ChannelNotFound(_)) => {}
                    Err(e) => return Err(tenant_err(e)),
                }
            }
        }
        Ok(())
    }

    /// Attempts the tenant's due revocations; true when none is pending any more. The steps'
    /// outcome goes into the request either way (`pending` while waiting), so the platform's
    /// record of the erasure says what was revoked after the tenant's audit log is gone.
    async fn revocations_settled(
        &self,
        tenant: &TenantId,
        key: &Key,
    ) -> Result<bool, ErasureError> {
        let Some(revocations) = &self.revocations else {
            return Ok(true);
        };
        let settled = revocations
            .settle_tenant(tenant, now_secs(), ERASURE_ACTOR)
            .await
            .map_err(revocation_err)?;
        let summary = if settled.pending > 0 {
            "pending".to_owned()
        } else {
            settled.summary()
        };
        self.store
            .update(
                Table::Routes,
                key,
                Update::new().set(REVOCATIONS_ATTR, summary.as_str()),
                None,
            )
            .await?;
        if settled.pending > 0 {
            tracing::info!(tenant = %tenant, pending = settled.pending, "account erasure waits on provider revocations");
        }
        Ok(settled.pending == 0)
    }

    /// Every conversation on the tenant's `CONVS` list, until about `budget` items went.
    async fn conversations(&self, tenant: &TenantId, budget: usize) -> Result<usize, ErasureError> {
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        let list = Query::partition(tenant.sub_partition("CONVS")).limit(100);
        let mut deleted = 0;
        loop {
            let page = self.store.query(Table::Data, &list).await?;
            if page.items.is_empty() {
                return Ok(deleted);
            }
            for entry in &page.items {
                let Some(sk) = entry.get_s(crate::store::SK) else {
                    continue;
                };
                match ConversationId::parse(sk) {
                    Ok(id) => {
                        let account = conversations.meta(&id).await?.map(|m| m.account);
                        deleted += super::erase_conversation(
                            &self.store,
                            &conversations,
                            account.as_ref(),
                            &id,
                            None,
                        )
                        .await?;
                    }
                    // Not a conversation id: nothing to derive from it, the entry goes.
                    Err(_) => {
                        if let Some(k) = entry.key() {
                            self.store.delete(Table::Data, &k, None).await?;
                            deleted += 1;
                        }
                    }
                }
                if deleted >= budget {
                    return Ok(deleted);
                }
            }
        }
    }

    /// Deletes a partition's items page by page, stopping once about `budget` went.
    async fn drain(&self, table: Table, pk: &str, budget: usize) -> Result<usize, ErasureError> {
        let query = Query::partition(pk).limit(100);
        let mut deleted = 0;
        while deleted < budget.max(1) {
            let page = self.store.query(table, &query).await?;
            if page.items.is_empty() {
                break;
            }
            for item in &page.items {
                if let Some(k) = item.key() {
                    self.store.delete(table, &k, None).await?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    /// The API keys' routes (`APIKEY#<id>`), found through the tenant's list of them.
    async fn api_keys(&self, tenant: &TenantId) -> Result<usize, ErasureError> {
        let query = Query::partition(tenant.sub_partition(crate::api_keys::LIST_SUFFIX)).limit(100);
        let mut deleted = 0;
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            if page.items.is_empty() {
                return Ok(deleted);
            }
            for item in &page.items {
                let Some(k) = item.key() else { continue };
                self.store
                    .delete(Table::Routes, &crate::api_keys::route_key(&k.sk), None)
                    .await?;
                self.store.delete(Table::Data, &k, None).await?;
                deleted += 2;
            }
        }
    }

    /// The root partition `T#<t>`; a Bitrix24 connection code's pointer there takes the
    /// code's route with it.
    async fn root_partition(
        &self,
        tenant: &TenantId,
        budget: usize,
    ) -> Result<usize, ErasureError> {
        let query = Query::partition(tenant.partition()).limit(100);
        let mut deleted = 0;
        while deleted < budget.max(1) {
            let page = self.store.query(Table::Data, &query).await?;
            if page.items.is_empty() {
                break;
            }
            for item in &page.items {
                let Some(k) = item.key() else { continue };
                if let Some(route) = crate::portal::install::code_route_of_pointer(&k.sk) {
                    self.store.delete(Table::Routes, &route, None).await?;
                    deleted += 1;
                }
                self.store.delete(Table::Data, &k, None).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Keeps the owners' addresses in the request, encrypted under the tenant's key (which
    /// is shredded after they were written to), for the completion email.
    async fn keep_owners(&self, tenant: &TenantId, key: &Key) -> Result<(), ErasureError> {
        let owners: Vec<String> = crate::accounts::users::list_users(self.store.as_ref(), tenant)
            .await
            .map_err(|e| ErasureError::Corrupt(format!("reading the owners: {e}")))?
            .into_iter()
            .filter(|u| u.role == crate::accounts::Role::Owner)
            .map(|u| u.email.as_str().to_owned())
            .collect();
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&owners).map_err(|e| ErasureError::Corrupt(e.to_string()))?,
        );
        let blob = self
            .envelope
            .encrypt(
                FieldRef::new(tenant, Table::Data, &notify_location(tenant), NOTIFY_ATTR),
                &plain,
            )
            .await?;
        self.store
            .update(
                Table::Routes,
                key,
                Update::new().set(NOTIFY_ATTR, blob),
                None,
            )
            .await?;
        Ok(())
    }

    /// Emails the kept owners that the account was erased, at most once per request: the
    /// request is marked before sending (a failed send unmarks it, so the next run retries).
    async fn notify_owners(
        &self,
        tenant: &TenantId,
        key: &Key,
        completed_at: i64,
    ) -> Result<(), ErasureError> {
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        let Some(request) = self.store.get(Table::Routes, key).await? else {
            return Ok(());
        };
        // Checked before decrypting: once notified, the keys may already be shredded.
        if request.get(NOTIFIED_ATTR).is_some() {
            return Ok(());
        }
        let Some(blob) = request.get_b(NOTIFY_ATTR) else {
            return Ok(());
        };
        let plain = zeroize::Zeroizing::new(
            self.envelope
                .decrypt(
                    FieldRef::new(tenant, Table::Data, &notify_location(tenant), NOTIFY_ATTR),
                    blob,
                )
                .await?,
        );
        let owners: Vec<String> =
            serde_json::from_slice(&plain).map_err(|e| ErasureError::Corrupt(e.to_string()))?;
        let mail = super::mail::tenant_erased(tenant, completed_at);
        let mails: Vec<_> = owners
            .iter()
            .filter_map(|owner| crate::accounts::Email::parse(owner).ok())
            .map(|to| mail.to(to))
            .collect();
        if super::mail::send_once(
            self.store.as_ref(),
            Table::Routes,
            key,
            mailer.as_ref(),
            &mails,
        )
        .await?
        {
            tracing::info!(recipients = owners.len(), "account erasure email sent");
        }
        Ok(())
    }
}

fn revocation_err(e: crate::revocation::RevocationError) -> ErasureError {
    match e {
        crate::revocation::RevocationError::Tenant(t) => tenant_err(t),
        crate::revocation::RevocationError::Store(s) => ErasureError::Store(s),
        crate::revocation::RevocationError::Crypto(c) => ErasureError::Crypto(c),
    }
}

fn tenant_err(e: crate::tenant::TenantError) -> ErasureError {
    match e {
        crate::tenant::TenantError::Store(s) => ErasureError::Store(s),
        crate::tenant::TenantError::Crypto(c) => ErasureError::Crypto(c),
        other => ErasureError::Corrupt(other.to_string()),
    }
}
