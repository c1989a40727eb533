//! Idempotency records in the dedupe table, with the semantics AWS Lambda Powertools documents
//! (there is no Powertools for Rust): a record per idempotency key, `in_progress` while a
//! worker holds it (with a lease, so a crashed worker does not block the key forever), then
//! `completed`. A failure part-way releases the record, so the retry runs the work again
//! instead of skipping it; the work's own effects must therefore be idempotent too (conditional
//! puts, deterministic queue deduplication ids).
//!
//! Records live at least [`RETENTION`] (Meta retries webhooks for up to 7 days), keyed by the
//! SHA-256 of the key, under the tenant's prefix.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{AttrValue, Condition, Item, Key, StoreError, Table, TableStore, TTL_ATTR};

/// How long a completed record is kept: longer than Meta's 7 days of webhook retries.
pub const RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

const STATUS: &str = "status";
const LEASE_UNTIL: &str = "lease_until";
/// Which delivery holds an `in_progress` record: a random token per [`Idempotency::begin`].
const HOLDER: &str = "holder";
const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

/// What [`Idempotency::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The caller holds the key now: do the work, then `complete` (or `release` on failure).
    Started(IdempotencyKey),
    /// The work was done before: do nothing.
    AlreadyDone,
    /// Another worker holds the key: try again after this long.
    InProgress { retry_after: Duration },
}

/// What [`Idempotency::guard`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<T> {
    /// The work ran (and its record is now completed).
    Ran(T),
    /// It had run before: nothing was done.
    AlreadyDone,
    /// Another worker holds the key: try again after this long.
    InProgress { retry_after: Duration },
}

/// A held idempotency key, and the token of this hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: Key,
    holder: String,
}

impl IdempotencyKey {
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// This hold's own record: in progress, and not taken over since.
    fn still_held(&self) -> Condition {
        Condition::And(vec![
            Condition::Equals(STATUS.into(), IN_PROGRESS.into()),
            Condition::Equals(HOLDER.into(), AttrValue::S(self.holder.clone())),
        ])
    }
}

/// Idempotency records of one kind (`scope`, e.g. `IN` for inbound events, `SYNC` for CRM
/// sync jobs).
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn TableStore>,
    scope: &'static str,
    lease: Duration,
    /// Unix seconds; a test may run it ahead to let a crashed holder's lease run out.
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Idempotency {
    /// `lease`: how long a holder may take before another worker may take over; use the
    /// queue's visibility timeout.
    pub fn new(store: Arc<dyn TableStore>, scope: &'static str, lease: Duration) -> Self {
        Idempotency {
            store,
            scope,
            lease,
            clock: Arc::new(now_secs),
        }
    }

    /// Holds keys for `lease` instead of the lease given to [`Idempotency::new`].
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Reads leases against this clock (Unix seconds) instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// The record's key: tenant-prefixed, the idempotency key hashed (it may hold ids that
    /// are nobody's business in a key).
    pub fn key_for(&self, tenant: &TenantId, idempotency_key: &str) -> Key {
        let digest = hex::encode(Sha256::digest(idempotency_key.as_bytes()));
        Key::new(
            tenant.sub_partition(&format!("{}#{digest}", self.scope)),
            self.scope,
        )
    }

    /// Takes the key unless it is completed or held by a live lease.
    pub async fn begin(
        &self,
        tenant: &TenantId,
        idempotency_key: &str,
    ) -> Result<Begin, StoreError> {
        let key = self.key_for(tenant, idempotency_key);
        let now = (self.clock)();
        let lease = i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX / 2);
        let holder = holder_token();
        let item = Item::new(&key)
            .with(STATUS, IN_PROGRESS)
            .with(HOLDER, holder.as_str())
            .with(LEASE_UNTIL, now + lease)
            .with(TTL_ATTR, now + RETENTION.as_secs() as i64);
        let free = Condition::Or(vec![
            Condition::NotExists,
            Condition::And(vec![
                Condition::Equals(STATUS.into(), IN_PROGRESS.into()),
                Condition::LessThan(LEASE_UNTIL.into(), AttrValue::N(now)),
            ]),
        ]);
        match self.store.put(Table::Dedupe, item, Some(free)).await {
            Ok(()) => Ok(Begin::Started(IdempotencyKey { key, holder })),
            Err(StoreError::ConditionFailed { .. }) => {
                let current = self.store.get(Table::Dedupe, &key).await?;
                Ok(match current {
                    Some(i) if i.get_s(STATUS) == Some(COMPLETED) => Begin::AlreadyDone,
                    Some(i) => {
                        let until = i.get_n(LEASE_UNTIL).unwrap_or(now);
                        Begin::InProgress {
                            retry_after: Duration::from_secs((until - now).clamp(1, lease) as u64),
                        }
                    }
                    // Released or expired between the two calls: let the caller retry soon.
                    None => Begin::InProgress {
                        retry_after: Duration::from_secs(1),
                    },
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Marks the work done: later `begin`s with the same key answer `AlreadyDone`.
    pub async fn complete(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.store
            .put(Table::Dedupe, self.completed(key), None)
            .await
    }

    /// Marks the work done only if this hold is still the record's: false when another
    /// delivery took the key over (this one's lease ran out while it worked) or it was
    /// released meanwhile. That delivery finishes the work and completes the record; this
    /// one must leave what the work left for it in place (decision 0080).
    pub async fn complete_held(&self, key: &IdempotencyKey) -> Result<bool, StoreError> {
        match self
            .store
            .put(Table::Dedupe, self.completed(key), Some(key.still_held()))
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records work done that ran without taking its key first, because its own effect is a
    /// conditional write that already refuses a second run (decision 0096): later `begin`s
    /// with the same key answer `AlreadyDone`. Overwrites a hold another delivery may have
    /// taken meanwhile; that delivery's `complete` writes the same, its `release` is refused.
    pub async fn mark_done(
        &self,
        tenant: &TenantId,
        idempotency_key: &str,
    ) -> Result<(), StoreError> {
        let key = self.key_for(tenant, idempotency_key);
        self.store
            .put(Table::Dedupe, self.completed_at(&key), None)
            .await
    }

    fn completed(&self, key: &IdempotencyKey) -> Item {
        self.completed_at(&key.key)
    }

    fn completed_at(&self, key: &Key) -> Item {
        let now = (self.clock)();
        Item::new(key)
            .with(STATUS, COMPLETED)
            .with("completed_at", now)
            .with(TTL_ATTR, now + RETENTION.as_secs() as i64)
    }

    /// Gives the key back after a failure, so a retry does the work again; a hold another
    /// delivery has taken over since is left to it. A release that fails is only logged: the
    /// lease runs out on its own, and the retry waits for it.
    pub async fn release(&self, key: &IdempotencyKey) {
        match self
            .store
            .delete(Table::Dedupe, &key.key, Some(key.still_held()))
            .await
        {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "releasing idempotency record failed"),
        }
    }

    /// Runs `work` at most once per key: takes the key, runs the work, completes the record;
    /// on failure releases the key (so a retry runs the work again) and returns the error.
    pub async fn guard<T, E, Fut>(
        &self,
        tenant: &TenantId,
        idempotency_key: &str,
        work: impl FnOnce() -> Fut,
    ) -> Result<Guarded<T>, E>
    where
        E: From<StoreError>,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let held = match self.begin(tenant, idempotency_key).await? {
            Begin::Started(held) => held,
            Begin::AlreadyDone => return Ok(Guarded::AlreadyDone),
            Begin::InProgress { retry_after } => return Ok(Guarded::InProgress { retry_after }),
        };
        match work().await {
            Ok(out) => {
                self.complete(&held).await?;
                Ok(Guarded::Ran(out))
            }
            Err(e) => {
                self.release(&held).await;
                Err(e)
            }
        }
    }
}

/// A random token naming one hold of a key (or one attempt of a flush).
pub(crate) fn holder_token() -> String {
    let mut b = [0u8; 12];
    if crate::crypto::random_bytes(&mut b).is_err() {
        // Only has to differ between holds of one key; the clock does that too.
        return format!("t{}", crate::clock::now_millis());
    }
    hex::encode(b)
}

const COUNT: &str = "count";
const FIRST_AT_MS: &str = "first_at_ms";

/// A job's own failed attempts so far (decision 0022): counted only when the job was tried,
/// never when the queue merely delivered it behind a failed head of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Failed attempts, the one just recorded included.
    pub count: u32,
    /// When the first failed attempt was recorded (Unix milliseconds).
    pub first_at_ms: i64,
}

/// Per-job attempt records in the dedupe table, keyed like [`Idempotency`] records (tenant
/// prefix, SHA-256 of the job's effect id) under their own scope.
#[derive(Clone)]
pub struct Attempts {
    records: Idempotency,
}

/// What [`Attempts::recount`] writes, and what it then returns.
enum Recount<T> {
    Nothing(T),
    Put(Item, Condition, T),
    Delete(Condition, T),
}

impl Attempts {
    pub fn new(store: Arc<dyn TableStore>, scope: &'static str) -> Self {
        Attempts {
            records: Idempotency::new(store, scope, Duration::ZERO),
        }
    }

    /// Records one failed attempt at `now_ms` and returns the record. One job of a FIFO group
    /// runs at a time, but the write is conditional on the count read, so two writers cannot
    /// lose an attempt (the loser reads again).
    pub async fn failed(
        &self,
        tenant: &TenantId,
        key: &str,
        now_ms: i64,
    ) -> Result<AttemptRecord, StoreError> {
        self.recount(tenant, key, |current, key| {
            let (next, condition) = match current {
                Some(item) => {
                    let count = item.get_n(COUNT).unwrap_or(0);
                    let first = item.get_n(FIRST_AT_MS).unwrap_or(now_ms);
                    (
                        AttemptRecord {
                            count: u32::try_from(count + 1).unwrap_or(u32::MAX),
                            first_at_ms: first,
                        },
                        Condition::Equals(COUNT.into(), AttrValue::N(count)),
                    )
                }
                None => (
                    AttemptRecord {
                        count: 1,
                        first_at_ms: now_ms,
                    },
                    Condition::NotExists,
                ),
            };
            let item = Item::new(key)
                .with(COUNT, i64::from(next.count))
                .with(FIRST_AT_MS, next.first_at_ms)
                .with(TTL_ATTR, now_secs() + RETENTION.as_secs() as i64);
            Recount::Put(item, condition, next)
        })
        .await
    }

    /// Takes one back: the count falls by one, and the record goes at zero. Conditional on
    /// the count read, as [`Attempts::failed`].
    pub async fn uncount(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        self.recount(tenant, key, |current, _| {
            let Some(item) = current else {
                return Recount::Nothing(());
            };
            let count = item.get_n(COUNT).unwrap_or(0);
            let condition = Condition::Equals(COUNT.into(), AttrValue::N(count));
            if count <= 1 {
                Recount::Delete(condition, ())
            } else {
                Recount::Put(item.with(COUNT, count - 1), condition, ())
            }
        })
        .await
    }

    /// Reads the job's record, writes what `next` makes of it (a write conditional on the
    /// count read), and reads again when another writer counted in between (a few times at
    /// most).
    async fn recount<T>(
        &self,
        tenant: &TenantId,
        key: &str,
        mut next: impl FnMut(Option<Item>, &Key) -> Recount<T>,
    ) -> Result<T, StoreError> {
        let store = &self.records.store;
        let key = self.records.key_for(tenant, key);
        let mut tries = 0;
        loop {
            tries += 1;
            let current = store.get(Table::Dedupe, &key).await?;
            let (written, out) = match next(current, &key) {
                Recount::Nothing(out) => return Ok(out),
                Recount::Put(item, condition, out) => {
                    (store.put(Table::Dedupe, item, Some(condition)).await, out)
                }
                Recount::Delete(condition, out) => (
                    store.delete(Table::Dedupe, &key, Some(condition)).await,
                    out,
                ),
            };
            match written {
                Ok(()) => return Ok(out),
                Err(StoreError::ConditionFailed { .. }) if tries < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets the job's attempts (it succeeded, or it was dead-lettered).
    pub async fn clear(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let key = self.records.key_for(tenant, key);
        self.records.store.delete(Table::Dedupe, &key, None).await
    }
}
