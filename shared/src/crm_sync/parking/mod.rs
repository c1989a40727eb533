//! Parking the CRM sync work of a Bitrix24 portal that stays unreachable (decision 0025).
//!
//! A sync job whose own attempts are exhausted (decision 0022) because of the portal (down,
//! 5xx, timeouts, rate limits, refused credentials, no portal connected) is not
//! dead-lettered: the portal is *parked*. The job is stored here and acknowledged, and every
//! later job of the tenant is stored too, without calling Bitrix24, until a probe
//! ([`super::PortalProbe`]) reaches the portal again. The parked jobs then go back to the
//! sync queue, each conversation's in the order they were parked.
//!
//! - `routes` `PARKED` / `<tenant>`: the global index of parked portals (the probe queries
//!   this one partition): `tenant_id`, `state` (`parked`: hold everything; `releasing`: the
//!   portal answers again and the held jobs are on their way), `parks` (a counter every
//!   park adds to, so the entry is removed only if nothing was parked since it was read),
//!   `since` and `error` (ms; the failure kind that parked it), `probed_at` and
//!   `probe_error` (the last failed probe).
//! - `data` `T#<tenant>#PARKED` / `<conversation>#<µs, 16 digits>#<8 hex>`: one parked job:
//!   `payload` (B, encrypted with the tenant's envelope: the queue body, a `SyncJob` of ids
//!   only), `group_id` (its FIFO group), `parked_at` (ms), and `released_at` (ms) while a
//!   copy is on the sync queue. In the tenant's own partition, so erasing the tenant
//!   removes them; no TTL, because a parked job holds only ids and the message it points to
//!   expires with the tenant's retention (the job is then dropped as "message gone").
//!
//! Order within a conversation: a released copy carries its item's sort key in the body
//! (field [`MARKER`]). While releasing, a job runs only if nothing older of its
//! conversation is still parked: a released copy only if it is the oldest item of its
//! conversation, any other job only if its conversation has no item; otherwise it is parked
//! behind. A conversation's items are released together and only when none of them is on
//! the queue, so the queue never holds them out of order. Each released copy is settled
//! (its item deleted) once it is done or dead-lettered, which releases what was parked
//! behind it; the index entry goes when the partition is empty. A copy delivered twice is
//! harmless: the sync worker's idempotency record makes the second a no-op.
//!
//! Here: the index, the gate and parking; [`release`]: sending parked jobs back and settling
//! them; [`link`]: the tenant's CRM link and its audit entries.

mod link;
mod release;

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::SyncJob;
use crate::audit::AuditLog;
use crate::clock::now_millis;
use crate::consumer::{Outcome, QueueRecord};
use crate::crypto::{random_bytes, CryptoError, Envelope, FieldRef};
use crate::ids::TenantId;
use crate::queue::{platform, Queue, QueueError, QueueName};
use crate::store::{
    Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp, SK,
};
use crate::tenant::{TenantError, PROFILE_SK};

/// Partition of the global index of parked portals (routes table); sort key: the tenant id.
pub const PARKED_INDEX_PK: &str = "PARKED";
/// The tenant's sub-partition of parked jobs, `T#<tenant>#PARKED`.
pub const PARKED_SUFFIX: &str = "PARKED";
/// Field of a released copy's queue body: the sort key of its parked item.
pub const MARKER: &str = "parked";
/// The audit log's actor for what the CRM sync decides on its own.
pub const ACTOR: &str = "system";

const PAYLOAD: &str = "payload";
const GROUP: &str = "group_id";
const PARKED_AT: &str = "parked_at";
const RELEASED_AT: &str = "released_at";
const STATE: &str = "state";
const PARKS: &str = "parks";
const SINCE: &str = "since";
const ERROR: &str = "error";
const PROBED_AT: &str = "probed_at";
const PROBE_ERROR: &str = "probe_error";
/// A copy released longer ago than this cannot still be on the sync queue (it keeps
/// messages 14 days): its item counts as not released.
const RELEASE_STALE_MS: i64 = 15 * 86_400_000;
/// How long a job waits when the store could not tell whether its portal is parked.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// Conditional writes tried again after a concurrent change, at most.
const TRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("the sync queue refused released jobs: {0}")]
    Queue(#[from] QueueError),
    #[error("parked job unreadable: {0}")]
    Unreadable(String),
}

/// Whether a parked portal holds its work or is handing it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParkState {
    /// Unreachable: every job of the tenant is parked.
    Parked,
    /// A probe reached it: parked jobs go back to the queue, conversation by conversation.
    Releasing,
}

/// A portal's entry in the index of parked portals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedPortal {
    pub tenant: TenantId,
    pub state: ParkState,
    /// Parks so far (only compared, never shown).
    pub parks: i64,
    /// Unix milliseconds: when it was parked.
    pub since_ms: i64,
    /// The failure kind that parked it.
    pub error: String,
    /// Unix milliseconds: the last failed probe.
    pub probed_at_ms: Option<i64>,
    pub probe_error: Option<String>,
}

impl ParkedPortal {
    fn from_item(item: &Item) -> Option<Self> {
        Some(ParkedPortal {
            tenant: TenantId::parse(item.get_s("tenant_id")?).ok()?,
            state: match item.get_s(STATE)? {
                "releasing" => ParkState::Releasing,
                _ => ParkState::Parked,
            },
            parks: item.get_n(PARKS).unwrap_or(0),
            since_ms: item.get_n(SINCE).unwrap_or(0),
            error: item.get_s(ERROR).unwrap_or_default().to_owned(),
            probed_at_ms: item.get_n(PROBED_AT),
            probe_error: item.get_s(PROBE_ERROR).map(str::to_owned),
        })
    }
}

/// A job that runs from a parked item: [`Parking::settle`] it once it is done or
/// dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    tenant: TenantId,
    key: Key,
}

/// What [`Parking::gate`] decided for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Run it (settle the parked item afterwards, when there is one).
    Run(Option<Released>),
    /// Do not run it: parked (acknowledge it) or to be tried again later.
    Held(Outcome),
}

/// True for failure kinds that are the portal's, not the message's: the portal is down or
/// failing (`unavailable`: 5xx, timeouts, connection errors), limiting us (`rate_limited`),
/// refusing our credentials (`unauthorized`, `expired_token`), or there is no usable portal
/// (`not_connected`). Bitrix24 refusing the message itself (`rejected`), a request we would
/// not send (`invalid_request`), an answer we cannot read (`protocol`) and our own
/// failures are not.
pub fn is_portal_failure(kind: &str) -> bool {
    matches!(
        kind,
        "unavailable" | "rate_limited" | "unauthorized" | "expired_token" | "not_connected"
    )
}

/// The parked work of unreachable portals: the sync worker's gate, parking and settling,
/// and the release the probe triggers.
#[derive(Clone)]
pub struct Parking {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    queue: Arc<dyn Queue>,
    sync_queue: QueueName,
    audit: AuditLog,
    metrics: Metrics,
}

/// The tenant's entry in the routes table's `PARKED` index.
pub fn index_key(tenant: &TenantId) -> Key {
    Key::new(PARKED_INDEX_PK, tenant.as_str())
}

fn partition(tenant: &TenantId) -> String {
    tenant.sub_partition(PARKED_SUFFIX)
}

fn profile_key(tenant: &TenantId) -> Key {
    Key::new(tenant.partition(), PROFILE_SK)
}

/// The sort key a released copy names, when its body has one.
fn marker(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.get(MARKER)?.as_str().map(str::to_owned)
}

/// The conversation a parked item's sort key belongs to.
fn conversation_of(sk: &str) -> Option<&str> {
    sk.split_once('#').map(|(c, _)| c)
}

fn is_released(item: &Item, now_ms: i64) -> bool {
    item.get_n(RELEASED_AT)
        .is_some_and(|at| now_ms.saturating_sub(at) < RELEASE_STALE_MS)
}

fn unrelease_op(key: &Key) -> WriteOp {
    WriteOp::Update {
        table: Table::Data,
        key: key.clone(),
        update: Update::new().remove(RELEASED_AT),
        condition: Some(Condition::Exists),
    }
}

impl Parking {
    /// `queue` must reach the sync queue (released jobs go back to it).
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>, queue: Arc<dyn Queue>) -> Self {
        Parking {
            audit: AuditLog::new(store.clone()),
            store,
            envelope,
            queue,
            sync_queue: platform::name(platform::SYNC),
            metrics: Metrics::off(),
        }
    }

    /// Counts portals parked, and the parked portals the probe finds, in `metrics`
    /// (decision 0038).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The tenant's entry in the index of parked portals, if its portal is parked.
    pub async fn portal(&self, tenant: &TenantId) -> Result<Option<ParkedPortal>, StoreError> {
        Ok(self
            .store
            .get(Table::Routes, &index_key(tenant))
            .await?
            .as_ref()
            .and_then(ParkedPortal::from_item))
    }

    /// Every parked portal (one query per 1000 entries of the index).
    pub async fn parked_portals(&self) -> Result<Vec<ParkedPortal>, StoreError> {
        let mut out = Vec::new();
        let mut query = Query::partition(PARKED_INDEX_PK).limit(1000);
        loop {
            let page = self.store.query(Table::Routes, &query).await?;
            out.extend(page.items.iter().filter_map(ParkedPortal::from_item));
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(out),
            }
        }
    }

    /// How many jobs the tenant has parked (released copies included until settled).
    pub async fn parked_jobs(&self, tenant: &TenantId) -> Result<usize, StoreError> {
        let mut n = 0;
        let mut query = Query::partition(partition(tenant)).limit(1000);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            n += page.items.len();
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(n),
            }
        }
    }

    /// The conversation's parked items, oldest first (`limit` of them, or all).
    async fn items(
        &self,
        tenant: &TenantId,
        conversation: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut query = Query::partition(partition(tenant))
            .begins_with(format!("{conversation}#"))
            .limit(limit.unwrap_or(1000));
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            out.extend(page.items);
            match (page.next, limit) {
                (Some(next), None) => query = query.start_after(Some(next)),
                _ => return Ok(out),
            }
        }
    }

    /// Decides whether the sync worker may run `job` now: yes when the tenant's portal is
    /// not parked; while it is parked, the job is parked without calling Bitrix24; while it
    /// is being released, the job runs only if nothing older of its conversation is parked.
    pub async fn gate(&self, job: &SyncJob, record: &QueueRecord) -> Gate {
        for _ in 0..TRIES {
            match self.try_gate(job, record).await {
                Ok(Some(gate)) => return gate,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(tenant = %job.tenant_id, error = %e, "could not check whether the portal is parked");
                    return Gate::Held(Outcome::RetryAfter(STORE_RETRY));
                }
            }
        }
        Gate::Held(Outcome::RetryAfter(STORE_RETRY))
    }

    /// None: the index changed while we looked; look again.
    async fn try_gate(
        &self,
        job: &SyncJob,
        record: &QueueRecord,
    ) -> Result<Option<Gate>, ParkingError> {
        let tenant = &job.tenant_id;
        let Some(portal) = self.portal(tenant).await? else {
            return Ok(Some(Gate::Run(None)));
        };
        let conversation = job.conversation.as_str();
        let released = self.released_item(tenant, conversation, record).await?;
        match (portal.state, released) {
            // Down again: the copy goes back to its place, behind nothing new.
            (ParkState::Parked, Some(key)) => {
                self.unrelease(&key).await?;
                Ok(Some(Gate::Held(Outcome::Done)))
            }
            (ParkState::Releasing, Some(key)) => {
                let head = self.items(tenant, conversation, Some(1)).await?;
                if head.first().and_then(Item::key).as_ref() == Some(&key) {
                    return Ok(Some(Gate::Run(Some(Released {
                        tenant: tenant.clone(),
                        key,
                    }))));
                }
                // Something older of its conversation was parked again: wait behind it.
                self.unrelease(&key).await?;
                self.release_quietly(tenant, conversation).await;
                Ok(Some(Gate::Held(Outcome::Done)))
            }
            (state, None) => {
                if state == ParkState::Releasing
                    && self.items(tenant, conversation, Some(1)).await?.is_empty()
                {
                    return Ok(Some(Gate::Run(None)));
                }
                match self.park(job, record, Some(&portal), None, None).await? {
                    Parked::Done { .. } => {}
                    Parked::Contended => return Ok(None),
                    Parked::TenantGone => return Ok(Some(Gate::Run(None))),
                }
                tracing::info!(tenant = %tenant, conversation = %job.conversation, "sync job parked: the portal is parked");
                if state == ParkState::Releasing {
                    self.release_quietly(tenant, conversation).await;
                }
                Ok(Some(Gate::Held(Outcome::Done)))
            }
        }
    }

    /// The parked item a released copy names, if it still exists.
    async fn released_item(
        &self,
        tenant: &TenantId,
        conversation: &str,
        record: &QueueRecord,
    ) -> Result<Option<Key>, StoreError> {
        let Some(sk) = marker(&record.body) else {
            return Ok(None);
        };
        if conversation_of(&sk) != Some(conversation) {
            return Ok(None);
        }
        let key = Key::new(partition(tenant), sk);
        Ok(self.store.get(Table::Data, &key).await?.map(|_| key))
    }

    async fn unrelease(&self, key: &Key) -> Result<(), StoreError> {
        let update = Update::new().remove(RELEASED_AT);
        match self
            .store
            .update(Table::Data, key, update, Some(Condition::Exists))
            .await
        {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A job whose own attempts are exhausted by a failure of the portal (`error`, see
    /// [`is_portal_failure`]): parks it (a released copy keeps its item and place) and the
    /// portal, marking the tenant's CRM link unreachable and auditing it when the portal
    /// was not parked already. Acknowledge the record on `Done`.
    pub async fn park_exhausted(
        &self,
        job: &SyncJob,
        record: &QueueRecord,
        released: Option<&Released>,
        error: &str,
    ) -> Outcome {
        let tenant = &job.tenant_id;
        let mut released = released.map(|r| r.key.clone());
        for _ in 0..TRIES {
            let portal = match self.portal(tenant).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "could not read the parked state");
                    return Outcome::RetryAfter(STORE_RETRY);
                }
            };
            match self
                .park(job, record, portal.as_ref(), Some(error), released.as_ref())
                .await
            {
                Ok(Parked::Done { transition }) => {
                    if transition {
                        self.metrics.portal_parked();
                        self.mark_unreachable(tenant, error).await;
                    }
                    tracing::warn!(tenant = %tenant, conversation = %job.conversation, kind = error, "sync job exhausted by the portal: parked");
                    return Outcome::Done;
                }
                Ok(Parked::TenantGone) => return Outcome::Done,
                Ok(Parked::Contended) => {
                    // The copy's item may have been settled meanwhile: park it anew then.
                    if let Some(key) = &released {
                        if matches!(self.store.get(Table::Data, key).await, Ok(None)) {
                            released = None;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "could not park a sync job");
                    return Outcome::RetryAfter(STORE_RETRY);
                }
            }
        }
        Outcome::RetryAfter(STORE_RETRY)
    }

    /// One transaction: the job's item (a new one, or the released copy's item made
    /// unreleased), the index entry as read in `portal` counted up (created as parked when
    /// absent; turned back to parked from releasing when `error` is given), and a check
    /// that the tenant still exists.
    async fn park(
        &self,
        job: &SyncJob,
        record: &QueueRecord,
        portal: Option<&ParkedPortal>,
        error: Option<&str>,
        released: Option<&Key>,
    ) -> Result<Parked, ParkingError> {
        let tenant = &job.tenant_id;
        let item_op = match released {
            Some(key) => unrelease_op(key),
            None => WriteOp::Put {
                table: Table::Data,
                item: self.seal(job, record).await?,
                condition: Some(Condition::NotExists),
            },
        };
        let now = now_millis();
        let (index_op, transition) = match (portal, error) {
            (None, None) => return Ok(Parked::Contended),
            (None, Some(error)) => (
                WriteOp::Put {
                    table: Table::Routes,
                    item: Item::new(&index_key(tenant))
                        .with("tenant_id", tenant.as_str())
                        .with(STATE, "parked")
                        .with(PARKS, 1)
                        .with(SINCE, now)
                        .with(ERROR, error),
                    condition: Some(Condition::NotExists),
                },
                true,
            ),
            (Some(p), error) => {
                let was = match p.state {
                    ParkState::Parked => "parked",
                    ParkState::Releasing => "releasing",
                };
                let mut update = Update::new().add(PARKS, 1);
                let transition = p.state == ParkState::Releasing && error.is_some();
                if let (true, Some(error)) = (transition, error) {
                    update = update
                        .set(STATE, "parked")
                        .set(SINCE, now)
                        .set(ERROR, error);
                }
                (
                    WriteOp::Update {
                        table: Table::Routes,
                        key: index_key(tenant),
                        update,
                        condition: Some(Condition::Equals(STATE.into(), was.into())),
                    },
                    transition,
                )
            }
        };
        let ops = vec![
            item_op,
            index_op,
            WriteOp::ConditionCheck {
                table: Table::Data,
                key: profile_key(tenant),
                condition: Condition::Exists,
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(Parked::Done { transition }),
            Err(StoreError::ConditionFailed { .. }) => {
                if self
                    .store
                    .get(Table::Data, &profile_key(tenant))
                    .await?
                    .is_none()
                {
                    return Ok(Parked::TenantGone);
                }
                Ok(Parked::Contended)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new parked item for the record: after every item of its conversation (the sort
    /// key never goes back, whatever the clocks of the writers), its body without a
    /// marker, encrypted.
    async fn seal(&self, job: &SyncJob, record: &QueueRecord) -> Result<Item, ParkingError> {
        let tenant = &job.tenant_id;
        let conversation = job.conversation.as_str();
        let pk = partition(tenant);
        let last = self
            .store
            .query(
                Table::Data,
                &Query::partition(pk.clone())
                    .begins_with(format!("{conversation}#"))
                    .descending()
                    .limit(1),
            )
            .await?;
        let last_micros = last
            .items
            .first()
            .and_then(|i| i.get_s(SK))
            .and_then(|sk| sk.split('#').nth(1))
            .and_then(|m| m.parse::<i64>().ok())
            .unwrap_or(0);
        let micros = crate::hold::next_micros().max(last_micros + 1);
        let mut suffix = [0u8; 4];
        random_bytes(&mut suffix)?;
        let key = Key::new(
            pk,
            format!("{conversation}#{micros:016}#{}", hex::encode(suffix)),
        );
        let mut body: Value = serde_json::from_str(&record.body)
            .map_err(|e| ParkingError::Unreadable(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.remove(MARKER);
        }
        let body =
            serde_json::to_vec(&body).map_err(|e| ParkingError::Unreadable(e.to_string()))?;
        let blob = self
            .envelope
            .encrypt(FieldRef::new(tenant, Table::Data, &key, PAYLOAD), &body)
            .await?;
        let group = record
            .group_id
            .clone()
            .or_else(|| job.to_message().group_id)
            .unwrap_or_default();
        Ok(Item::new(&key)
            .with(PAYLOAD, blob)
            .with(GROUP, group)
            .with(PARKED_AT, now_millis()))
    }
}

/// What [`Parking::park`] did.
enum Parked {
    Done {
        /// The portal went from reachable (or releasing) to parked.
        transition: bool,
    },
    /// The index entry changed since it was read: read again.
    Contended,
    /// The tenant no longer exists: nothing to park for.
    TenantGone,
}
