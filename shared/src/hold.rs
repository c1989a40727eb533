//! Suspension holds: what a suspended tenant's webhooks would have queued, kept until the
//! tenant is resumed (docs/decisions/0018-suspension-holds-webhooks.md).
//!
//! The webhooks still acknowledge a suspended tenant's deliveries (Meta retries and finally
//! disables a webhook that keeps failing; Bitrix24 never resends an event), but instead of
//! enqueueing the job they write it here:
//!
//! - `data` `T#<tenant>` / `HELD#<µs, 16 digits>#<8 hex>`: `queue` (the queue it was meant
//!   for), `payload` (B, encrypted with the tenant's envelope: the queue message's body,
//!   group and deduplication ids), `held_at` (ms), `expires_at` (the tenant's retention: a
//!   held event does not outlive what the tenant agreed to keep).
//!
//! Sort keys follow arrival (a per-process monotonic clock, so one delivery's events keep
//! their order), and a hold is written only while the profile still says `suspended` (a
//! condition check in the same transaction), so nothing is held after a resume has flipped
//! the status.
//!
//! [`HeldEvents::release`] sends them to their queues in that order, page by page, and deletes
//! each only after its queue accepted it. A crash in between sends it again on the next
//! release. That is harmless because every consumer is idempotent per effect:
//! - inbound jobs: the queue message keeps its deduplication id (tenant + account + provider
//!   event id), and the inbound worker guards each event with an `IN` idempotency record (8
//!   days) on top of conditional puts of the message and its provider-id index, so the event
//!   is stored and synced to Bitrix24 once;
//! - outbound jobs (operator replies from the Bitrix24 webhook): the reply is stored once
//!   under its Bitrix24 ids (`b24:<chat>:<message>`, a conditional put), the job's `effect` is
//!   its deduplication id, and the send worker's `OUT` record keeps it from being sent twice.
//!
//! [`Suspension`] is the platform admin's operation: suspend, and resume = release what is
//! held, flip to active, release what arrived in between.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::{now_millis, now_secs};
use crate::crypto::{random_bytes, CryptoError, Envelope, FieldRef};
use crate::ids::TenantId;
use crate::queue::{OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage};
use crate::store::{
    Condition, Item, Key, Query, SortKeyCondition, StoreError, Table, TableStore, WriteOp,
    MAX_TRANSACTION_ITEMS, SK, TTL_ATTR,
};
use crate::tenant::{StatusChange, TenantDirectory, TenantError, TenantProfile, STATUS_ATTR};

/// Sort-key prefix of held events in the tenant's partition.
pub const HELD_PREFIX: &str = "HELD#";
const PAYLOAD_ATTR: &str = "payload";
const QUEUE_ATTR: &str = "queue";
const HELD_AT_ATTR: &str = "held_at";
/// Version of the encrypted payload's JSON shape.
const PAYLOAD_VERSION: u32 = 1;
/// Held events released per page (each is a decrypt and a delete).
pub const DEFAULT_RELEASE_PAGE: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The tenant is not (or no longer) suspended: the first `held` messages were held, the
    /// rest must be enqueued as usual.
    #[error("tenant is not suspended")]
    NotSuspended { held: usize },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("queue refused held events: {0}")]
    Queue(#[from] QueueError),
    /// A held item this build cannot read (a newer payload version): left in place.
    #[error("held event unreadable: {0}")]
    Unreadable(String),
}

/// The encrypted part of a held item.
#[derive(Serialize, Deserialize)]
struct Payload {
    v: u32,
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dedup_id: Option<String>,
}

/// One held event, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldEvent {
    pub key: Key,
    pub queue: QueueName,
    pub message: OutgoingMessage,
    /// Unix milliseconds.
    pub held_at: i64,
}

/// What one [`HeldEvents::release_page`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleasePage {
    /// Sent to their queues and deleted.
    pub released: usize,
    /// Undecryptable (tampered, or the tenant's keys are gone): deleted, never sendable.
    pub discarded: usize,
    /// More held events may follow: pass as `after` to release the next page.
    pub next: Option<Key>,
}

/// Microseconds since the epoch, strictly increasing within the process, so events held in
/// one call (or in quick succession) keep their arrival order in the sort key.
pub(crate) fn next_micros() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

fn held_sk(micros: i64, suffix: &[u8]) -> String {
    format!("{HELD_PREFIX}{micros:016}#{}", hex::encode(suffix))
}

/// The upper bound of events held up to now (every later hold sorts after it).
fn cutoff_now() -> String {
    format!("{HELD_PREFIX}{:016}", next_micros())
}

/// A suspended tenant's held queue messages.
#[derive(Clone)]
pub struct HeldEvents {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
}

impl HeldEvents {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        HeldEvents { store, envelope }
    }

    /// The held events kept beside the tenant directory's own items.
    pub fn of(tenants: &TenantDirectory) -> Self {
        Self::new(tenants.store().clone(), tenants.envelope().clone())
    }

    /// Holds `messages` (meant for `queue`), in order, while the tenant's profile says
    /// `suspended`. Each transaction writes up to 99 events with a check of the profile, so
    /// a resume that flipped the status in the meantime makes the rest fail with
    /// [`HoldError::NotSuspended`] (how many were held before is in it).
    pub async fn hold(
        &self,
        tenant: &TenantId,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
        retention_days: u32,
    ) -> Result<usize, HoldError> {
        let profile = Key::new(tenant.partition(), crate::tenant::PROFILE_SK);
        let expires_at = now_secs().saturating_add(i64::from(retention_days) * 86_400);
        let mut held = 0;
        for chunk in messages.chunks(MAX_TRANSACTION_ITEMS - 1) {
            let mut ops = Vec::with_capacity(chunk.len() + 1);
            for message in chunk {
                let item = self.seal(tenant, queue, message, expires_at).await?;
                ops.push(WriteOp::Put {
                    table: Table::Data,
                    item,
                    condition: Some(Condition::NotExists),
                });
            }
            ops.push(WriteOp::ConditionCheck {
                table: Table::Data,
                key: profile.clone(),
                condition: Condition::Equals(STATUS_ATTR.into(), "suspended".into()),
            });
            match self.store.transact_write(ops).await {
                Ok(()) => held += chunk.len(),
                Err(StoreError::ConditionFailed { .. }) => {
                    return Err(HoldError::NotSuspended { held })
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(held)
    }

    async fn seal(
        &self,
        tenant: &TenantId,
        queue: &QueueName,
        message: &OutgoingMessage,
        expires_at: i64,
    ) -> Result<Item, HoldError> {
        let mut suffix = [0u8; 4];
        random_bytes(&mut suffix)?;
        let key = Key::new(tenant.partition(), held_sk(next_micros(), &suffix));
        let payload = serde_json::to_vec(&Payload {
            v: PAYLOAD_VERSION,
            body: message.body.clone(),
            group_id: message.group_id.clone(),
            dedup_id: message.dedup_id.clone(),
        })
        .map_err(|e| HoldError::Unreadable(e.to_string()))?;
        let blob = self
            .envelope
            .encrypt(
                FieldRef::new(tenant, Table::Data, &key, PAYLOAD_ATTR),
                &payload,
            )
            .await?;
        Ok(Item::new(&key)
            .with(QUEUE_ATTR, queue.as_str())
            .with(PAYLOAD_ATTR, blob)
            .with(HELD_AT_ATTR, now_millis())
            .with(TTL_ATTR, expires_at))
    }

    async fn open(&self, tenant: &TenantId, item: &Item) -> Result<HeldEvent, HoldError> {
        let key = item
            .key()
            .ok_or_else(|| HoldError::Unreadable("held item without a key".into()))?;
        let queue = item
            .get_s(QUEUE_ATTR)
            .and_then(|q| QueueName::parse(q).ok())
            .ok_or_else(|| HoldError::Unreadable(format!("{}: no queue", key.sk)))?;
        let blob = item
            .get_b(PAYLOAD_ATTR)
            .ok_or(HoldError::Crypto(CryptoError::Undecryptable))?;
        let plain = self
            .envelope
            .decrypt(FieldRef::new(tenant, Table::Data, &key, PAYLOAD_ATTR), blob)
            .await?;
        let payload: Payload = serde_json::from_slice(&plain)
            .map_err(|e| HoldError::Unreadable(format!("{}: {e}", key.sk)))?;
        if payload.v != PAYLOAD_VERSION {
            return Err(HoldError::Unreadable(format!(
                "{}: payload version {}",
                key.sk, payload.v
            )));
        }
        Ok(HeldEvent {
            key,
            queue,
            message: OutgoingMessage {
                body: payload.body,
                group_id: payload.group_id,
                dedup_id: payload.dedup_id,
            },
            held_at: item.get_n(HELD_AT_ATTR).unwrap_or(0),
        })
    }

    fn query(tenant: &TenantId, until: Option<&str>, limit: usize) -> Query {
        let range = match until {
            Some(cutoff) => SortKeyCondition::Between(HELD_PREFIX.into(), cutoff.into()),
            None => SortKeyCondition::BeginsWith(HELD_PREFIX.into()),
        };
        Query::partition(tenant.partition())
            .sort_key(range)
            .limit(limit)
    }

    /// The tenant's held events in arrival order, decrypted: `limit` per page, after `after`
    /// (a previous page's last key).
    pub async fn list(
        &self,
        tenant: &TenantId,
        after: Option<Key>,
        limit: usize,
    ) -> Result<(Vec<HeldEvent>, Option<Key>), HoldError> {
        let page = self
            .store
            .query(
                Table::Data,
                &Self::query(tenant, None, limit).start_after(after),
            )
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in &page.items {
            out.push(self.open(tenant, item).await?);
        }
        Ok((out, page.next))
    }

    /// Releases one page (`limit` events after `after`, sort keys up to `until` when given):
    /// each run of consecutive events for one queue is sent in order, then its items are
    /// deleted. Stops at the first queue failure with nothing after it deleted, so starting
    /// again from the oldest resumes where it stopped (re-sending at most what the queue took
    /// before failing).
    pub async fn release_page(
        &self,
        tenant: &TenantId,
        queue: &dyn Queue,
        until: Option<&str>,
        after: Option<Key>,
        limit: usize,
    ) -> Result<ReleasePage, HoldError> {
        let page = self
            .store
            .query(
                Table::Data,
                &Self::query(tenant, until, limit).start_after(after),
            )
            .await?;
        let mut report = ReleasePage {
            next: page.next.clone(),
            ..ReleasePage::default()
        };
        let mut events = Vec::with_capacity(page.items.len());
        for item in &page.items {
            match self.open(tenant, item).await {
                Ok(event) => events.push(event),
                // Tampered, or the tenant's data keys are gone: it can never be sent, and
                // keeping it would block every later release.
                Err(HoldError::Crypto(CryptoError::Undecryptable | CryptoError::KeyGone(_))) => {
                    let sk = item.get_s(SK).unwrap_or_default();
                    tracing::error!(%tenant, held = sk, "held event cannot be decrypted; discarded");
                    if let Some(key) = item.key() {
                        self.store.delete(Table::Data, &key, None).await?;
                    }
                    report.discarded += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let mut rest = events.as_slice();
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|e| e.queue == first.queue).count();
            let (now, later) = rest.split_at(run);
            queue
                .send_batch(
                    &first.queue,
                    now.iter().map(|e| e.message.clone()).collect(),
                )
                .await?;
            for event in now {
                self.store.delete(Table::Data, &event.key, None).await?;
                report.released += 1;
            }
            rest = later;
        }
        Ok(report)
    }

    /// Releases every held event (up to `until` when given), page by page; returns how many
    /// were sent. Resumable: an error leaves the unsent ones held, in order.
    pub async fn release(
        &self,
        tenant: &TenantId,
        queue: &dyn Queue,
        until: Option<&str>,
    ) -> Result<usize, HoldError> {
        let mut released = 0;
        // Paged by key, not "oldest again": a page may come back short or empty while more
        // follow (expired items are skipped by the store, and left for its TTL deletion).
        let mut after = None;
        loop {
            let page = self
                .release_page(tenant, queue, until, after, DEFAULT_RELEASE_PAGE)
                .await?;
            released += page.released;
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(released),
            }
        }
    }

    /// How many events the tenant has held (counted page by page; for status and tests).
    pub async fn count(&self, tenant: &TenantId) -> Result<usize, HoldError> {
        let mut n = 0;
        let mut query = Self::query(tenant, None, 500);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            n += page.items.len();
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(n),
            }
        }
    }
}

/// A [`Queue`] that holds what is sent to it for one suspended tenant: hands a suspended
/// tenant's jobs to code that only knows how to enqueue (the outbound intake). If the tenant
/// was resumed in the meantime the rest are still held, unconditionally, and logged: the
/// next [`Suspension::resume`] (which releases leftovers of an active tenant too) sends them.
pub struct HoldingQueue {
    held: HeldEvents,
    tenant: TenantId,
    retention_days: u32,
}

impl HoldingQueue {
    pub fn new(held: HeldEvents, tenant: TenantId, retention_days: u32) -> Self {
        HoldingQueue {
            held,
            tenant,
            retention_days,
        }
    }
}

fn hold_failed(e: HoldError) -> QueueError {
    QueueError::Unavailable(format!("holding for a suspended tenant: {e}"))
}

#[async_trait]
impl Queue for HoldingQueue {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        crate::queue::validate_batch(queue, &messages)?;
        let total = messages.len();
        match self
            .held
            .hold(&self.tenant, queue, messages.clone(), self.retention_days)
            .await
        {
            Ok(_) => Ok(()),
            Err(HoldError::NotSuspended { held }) => {
                tracing::warn!(tenant = %self.tenant, queue = %queue, left = total - held,
                    "tenant resumed while holding; the rest is held until the next resume");
                let expires_at = now_secs().saturating_add(i64::from(self.retention_days) * 86_400);
                for message in &messages[held..] {
                    let item = self
                        .held
                        .seal(&self.tenant, queue, message, expires_at)
                        .await
                        .map_err(hold_failed)?;
                    self.held
                        .store
                        .put(Table::Data, item, Some(Condition::NotExists))
                        .await
                        .map_err(|e| hold_failed(e.into()))?;
                }
                Ok(())
            }
            Err(e) => Err(hold_failed(e)),
        }
    }

    async fn receive(
        &self,
        queue: &QueueName,
        _max: usize,
        _visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        Err(QueueError::Invalid(format!(
            "{queue}: a hold only takes messages"
        )))
    }

    async fn ack(&self, queue: &QueueName, _receipt: &str) -> Result<(), QueueError> {
        Err(QueueError::Invalid(format!(
            "{queue}: a hold only takes messages"
        )))
    }

    async fn change_visibility(
        &self,
        queue: &QueueName,
        _receipt: &str,
        _visibility: Duration,
    ) -> Result<(), QueueError> {
        Err(QueueError::Invalid(format!(
            "{queue}: a hold only takes messages"
        )))
    }

    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        Err(QueueError::Invalid(format!(
            "{queue}: a hold only takes messages"
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuspensionError {
    /// No such tenant (404).
    #[error("tenant not found")]
    TenantNotFound,
    /// A bad reason (400).
    #[error("{0}")]
    Invalid(String),
    /// Storage, keys or queues failed (503); calling again continues where it stopped.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl From<TenantError> for SuspensionError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::TenantNotFound => SuspensionError::TenantNotFound,
            TenantError::Invalid(m) => SuspensionError::Invalid(m),
            other => SuspensionError::Unavailable(other.to_string()),
        }
    }
}

impl From<HoldError> for SuspensionError {
    fn from(e: HoldError) -> Self {
        SuspensionError::Unavailable(e.to_string())
    }
}

/// What [`Suspension::resume`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resumed {
    pub profile: TenantProfile,
    /// False when the tenant was already active (then only leftovers were released).
    pub changed: bool,
    /// Held events sent to their queues by this call.
    pub released: usize,
}

/// The platform admin's suspension operations (`POST` / `DELETE
/// /admin/tenants/{id}/suspension`). Its queue must reach every queue the webhooks hold
/// for: `inbound.fifo` and `outbound.fifo`.
#[derive(Clone)]
pub struct Suspension {
    tenants: TenantDirectory,
    held: HeldEvents,
    queue: Arc<dyn Queue>,
}

impl Suspension {
    pub fn new(tenants: TenantDirectory, queue: Arc<dyn Queue>) -> Self {
        Suspension {
            held: HeldEvents::of(&tenants),
            tenants,
            queue,
        }
    }

    /// Suspends the tenant: from now on its webhooks are acknowledged and held. Idempotent
    /// (suspending a suspended tenant keeps its first date and reason, `changed: false`).
    pub async fn suspend(
        &self,
        tenant: &TenantId,
        reason: &str,
        actor: &str,
    ) -> Result<StatusChange, SuspensionError> {
        Ok(self.tenants.suspend(tenant, reason, actor).await?)
    }

    /// Resumes the tenant: releases what is held while it is still suspended (so held events
    /// go before new ones), flips it to active, then releases what was held in between.
    /// Idempotent and resumable: a failure leaves the tenant suspended (or its leftovers
    /// held) and calling again continues; on an active tenant it releases leftovers only.
    pub async fn resume(&self, tenant: &TenantId, actor: &str) -> Result<Resumed, SuspensionError> {
        let profile = self
            .tenants
            .profile(tenant)
            .await?
            .ok_or(SuspensionError::TenantNotFound)?;
        let mut released = 0;
        if profile.is_suspended() {
            // Bounded by a cutoff: webhooks keep holding while this runs; what they hold after
            // it is released after the flip, when nothing new is held any more.
            let cutoff = cutoff_now();
            released += self
                .held
                .release(tenant, self.queue.as_ref(), Some(&cutoff))
                .await?;
        }
        let change = self.tenants.resume(tenant, actor).await?;
        released += self.held.release(tenant, self.queue.as_ref(), None).await?;
        tracing::info!(%tenant, changed = change.changed, released, "tenant resumed");
        Ok(Resumed {
            profile: change.profile,
            changed: change.changed,
            released,
        })
    }

    /// How many events the tenant has held.
    pub async fn held_count(&self, tenant: &TenantId) -> Result<usize, SuspensionError> {
        Ok(self.held.count(tenant).await?)
    }
}

#[cfg(test)]
mod tests;
