//! The portal outbox (decision 0023): Bitrix24 operations staged in the store, per tenant, so
//! that whichever process holds the portal's lease posts everybody's staged operations in one
//! `batch` request. The sync worker stages its job's operation and waits for its outcome; the
//! queue keeps each conversation's order (one staged operation per conversation at a time).
//!
//! Items live in the tenant's `CRMOUT` partition of the data table (tenant erasure removes
//! them; contact erasure removes a conversation's items by the sort-key prefix). The operation
//! (message text, names, a phone number) is encrypted with the tenant's data key; the state,
//! attempt marks and outcome hold ids and error kinds only.
//!
//! States: `pending` (staged, to post) → `in_flight` (claimed by a flusher for one attempt,
//! written *before* the call) → `sent` (with Bitrix24's ids) or `failed` (with the error
//! kind). An `in_flight` item whose claim ran out (the flusher crashed or hung) and a `failed`
//! item whose error was ambiguous carry `ambiguous`: before it is posted again, the flusher
//! asks Bitrix24 whether it already arrived.
//!
//! A claim that takes over one that ran out counts a death on the item (`deaths`, in the
//! same update): the flusher that held it died or hung with it (decision 0091). An operation
//! with a death on record is posted alone ([`super::deaths`]); one that reaches
//! [`super::deaths::DEATH_LIMIT`] is settled `failed` as [`KILLED_ITS_WORKER`] instead of
//! being posted again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_secs;
use crate::consumer::join_all;
use crate::crypto::{Envelope, FieldRef};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Media};
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, Update, TTL_ATTR,
};

/// The tenant sub-partition of staged operations, the lease and the limiter.
pub const PARTITION: &str = "CRMOUT";
const ITEM_PREFIX: &str = "op#";
/// Staged operations outlive the sync queue's 14-day retention.
const ITEM_TTL_SECS: i64 = 15 * 24 * 3600;

const STATE: &str = "state";
const OP: &str = "op";
const ATTEMPT: &str = "attempt";
const UNTIL_MS: &str = "until_ms";
const AMBIGUOUS: &str = "ambiguous";
const OUTCOME: &str = "outcome";
const STAGED_MS: &str = "staged_ms";
/// Claims of the operation that ran out unsettled (decision 0091); absent while none did.
const DEATHS: &str = "deaths";

/// The failure kind of an operation that killed every flusher that posted it, up to
/// [`super::deaths::DEATH_LIMIT`] (decision 0091): never staged again by its job's retry.
pub const KILLED_ITS_WORKER: &str = "killed_its_worker";

/// One Bitrix24 call for one job: the method and its whole parameters (`CONNECTOR`, `LINE`,
/// `MESSAGES` with the job's one entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrmOp {
    pub method: String,
    pub params: Value,
    /// Set for posts (`imconnector.send.messages`), the only calls that duplicate when
    /// repeated: how to recognise the message in the chat after an ambiguous outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<PostLookup>,
    /// The files of the post's message, linked by the flusher just before each attempt
    /// (decision 0048): the staged operation never holds a media link, so a post that waits
    /// in the outbox still gets a link of the short lifetime when it goes out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileToLink>,
}

/// What a media link of a staged post will name: the media of a conversation's message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileToLink {
    pub account: AccountRef,
    pub conversation: String,
    pub media: Media,
}

/// The external message id Bitrix24 keeps as the chat message's `CONNECTOR_MID`, and the
/// Bitrix24 chat it goes to when known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostLookup {
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_chat_id: Option<String>,
}

/// What became of a posted operation: Bitrix24's chat id, file indexes and error kinds
/// only, stored unencrypted. Not the post's external message id that Bitrix24 answers
/// with: that is the provider's message id (a wamid holds the customer's phone number),
/// kept only encrypted (decision 0120); the job that staged the post knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OpOutcome {
    Sent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        crm_chat_id: Option<String>,
        /// Files of the post Bitrix24 answered it did not keep (decision 0066).
        #[serde(default, skip_serializing_if = "MissingFiles::is_none")]
        missing: MissingFiles,
    },
    Failed {
        /// `BitrixError::kind()`.
        kind: String,
        /// The Bitrix24 error code, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// Bitrix24 refused this operation itself (not the portal being down or busy).
        #[serde(default)]
        operation_level: bool,
    },
}

/// The files of a post that Bitrix24's answer does not list as kept (decision 0066): how
/// many, and which of the operation's [`CrmOp::files`] (by index) they are. When the answer's
/// links cannot tell which (Bitrix24 answered other links than ours), `of` names every file
/// sent and `count` is the shortfall. Indexes only: the outcome is stored unencrypted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingFiles {
    pub count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub of: Vec<u32>,
}

impl MissingFiles {
    pub fn is_none(&self) -> bool {
        self.count == 0
    }
}

/// Where a staged operation is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpState {
    Pending,
    InFlight { attempt: String, until_ms: i64 },
    Done(OpOutcome),
}

/// A staged operation as the flusher reads it.
#[derive(Clone, Debug)]
pub struct StagedOp {
    pub key: Key,
    pub op: CrmOp,
    pub ambiguous: bool,
    pub staged_ms: i64,
    /// Flushes that claimed it and never settled it, on record (decision 0091).
    pub deaths: u32,
    /// Read in flight with its claim run out: that claim's attempt, whose flusher died (or
    /// hung past the claim). Claiming it counts one more death.
    pub ran_out: Option<String>,
    /// The run-out claim's attempt ended in this process, alive (decision 0117): taking it
    /// over counts no death.
    pub ran_out_alive: bool,
}

impl StagedOp {
    /// Whether claiming it counts a death: its claim ran out, and not under an attempt
    /// that ended here with the process alive.
    pub fn counts_a_death(&self) -> bool {
        self.ran_out.is_some() && !self.ran_out_alive
    }

    /// Its deaths once this read's claim is written: a run-out claim is one more.
    pub fn deaths_when_claimed(&self) -> u32 {
        self.deaths + u32::from(self.counts_a_death())
    }

    /// The conversation it belongs to.
    pub fn conversation(&self) -> &str {
        conversation_of(&self.key)
    }

    /// The condition that the operation is still as it was read: pending, or in flight
    /// under the run-out claim read (a claim renewed meanwhile, or taken over, refuses).
    fn as_read(&self, now_ms: i64) -> Condition {
        match &self.ran_out {
            None => Condition::Equals(STATE.into(), AttrValue::S("pending".into())),
            Some(attempt) => Condition::And(vec![
                Condition::Equals(STATE.into(), AttrValue::S("in_flight".into())),
                claimed_by(attempt),
                Condition::LessThan(UNTIL_MS.into(), AttrValue::N(now_ms)),
            ]),
        }
    }
}

/// What [`Outbox::settle`] wrote.
#[derive(Debug, Default)]
pub struct Settled {
    /// The outcomes written, in the order given.
    pub written: Vec<(Key, OpOutcome)>,
    /// The outcomes the store failed to write, to write again: a write may have landed
    /// although its answer was lost, and its condition refuses the repeat.
    pub unwritten: Vec<(Key, OpOutcome, bool)>,
    /// The failure: a non-transient one if any was, else the first.
    pub error: Option<StoreError>,
}

/// The store side of the outbox.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("staged operation unreadable: {0}")]
    Unreadable(String),
    /// The operation kept changing under three attempts to stage it.
    #[error("staged operation kept changing")]
    Contended,
}

impl Outbox {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        Outbox { store, envelope }
    }

    pub fn partition(tenant: &TenantId) -> String {
        tenant.sub_partition(PARTITION)
    }

    /// The key of a job's staged operation: by conversation first, so a contact's erasure
    /// finds them by prefix.
    pub fn key(tenant: &TenantId, conversation: &str, effect: &str) -> Key {
        Key::new(
            Self::partition(tenant),
            format!("{ITEM_PREFIX}{conversation}#{effect}"),
        )
    }

    /// The sort-key prefix of one conversation's staged operations.
    pub fn conversation_prefix(conversation: &str) -> String {
        format!("{ITEM_PREFIX}{conversation}#")
    }

    /// Stages `op` unless an earlier delivery of the job did: a pending or in-flight
    /// operation is left alone, a sent one is reported, a failed one is staged again (with a
    /// fresh operation, its ambiguity kept). Returns the state after staging.
    pub async fn stage(
        &self,
        tenant: &TenantId,
        key: &Key,
        op: &CrmOp,
        now_ms: i64,
    ) -> Result<OpState, OutboxError> {
        // A first delivery finds nothing staged: write without reading first (decision
        // 0058); only a refused condition reads what an earlier delivery left.
        let fresh = self.staged_item(tenant, key, op, false, now_ms).await?;
        match self
            .store
            .put(Table::Data, fresh, Some(Condition::NotExists))
            .await
        {
            Ok(()) => return Ok(OpState::Pending),
            Err(e) if e.is_condition_failed() => {}
            Err(e) => return Err(e.into()),
        }
        for _ in 0..3 {
            let live = self.store.get(Table::Data, key).await?;
            let condition = match live.as_ref().map(read_state).transpose()? {
                None => Condition::NotExists,
                // It would kill the flushers that post it again (decision 0091): the job
                // ends on it instead.
                Some(state @ OpState::Done(OpOutcome::Failed { .. })) if is_killer(&state) => {
                    return Ok(state)
                }
                Some(OpState::Done(OpOutcome::Failed { .. })) => {
                    Condition::Equals(STATE.into(), AttrValue::S("failed".into()))
                }
                Some(state) => return Ok(state),
            };
            let ambiguous = live
                .as_ref()
                .and_then(|i| i.get_bool(AMBIGUOUS))
                .unwrap_or(false);
            let item = self.staged_item(tenant, key, op, ambiguous, now_ms).await?;
            match self.store.put(Table::Data, item, Some(condition)).await {
                Ok(()) => return Ok(OpState::Pending),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(OutboxError::Contended)
    }

    /// The item of a freshly staged (pending) operation.
    async fn staged_item(
        &self,
        tenant: &TenantId,
        key: &Key,
        op: &CrmOp,
        ambiguous: bool,
        now_ms: i64,
    ) -> Result<Item, OutboxError> {
        let blob = self.seal(tenant, key, op).await?;
        Ok(Item::new(key)
            .with(STATE, "pending")
            .with(OP, blob)
            .with(AMBIGUOUS, ambiguous)
            .with(STAGED_MS, now_ms)
            .with(TTL_ATTR, now_secs() + ITEM_TTL_SECS))
    }

    /// The state of a staged operation (None: not staged).
    pub async fn state(&self, key: &Key) -> Result<Option<OpState>, OutboxError> {
        match self.store.get(Table::Data, key).await? {
            Some(item) => Ok(Some(read_state(&item)?)),
            None => Ok(None),
        }
    }

    /// Every operation staged for `tenant`, whatever its state, decrypted, with when it was
    /// staged (Unix ms): what the outbox holds, for diagnostics and tests.
    pub async fn staged_ops(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(Key, CrmOp, i64)>, OutboxError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .store
                .query(
                    Table::Data,
                    &Query::partition(Self::partition(tenant))
                        .begins_with(ITEM_PREFIX)
                        .limit(200)
                        .start_after(start),
                )
                .await?;
            for item in &page.items {
                let key = item
                    .key()
                    .ok_or_else(|| OutboxError::Unreadable("no key".into()))?;
                let blob = item
                    .get_b(OP)
                    .ok_or_else(|| OutboxError::Unreadable("no operation".into()))?;
                let op = self.open(tenant, &key, blob).await?;
                out.push((key, op, item.get_n(STAGED_MS).unwrap_or(0)));
            }
            start = page.next;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Forgets a staged operation once its job is recorded done (decision 0080): until
    /// then a delivery that still runs the job must find it, or it would stage and post it
    /// again.
    pub async fn remove(&self, key: &Key) -> Result<(), OutboxError> {
        Ok(self.store.delete(Table::Data, key, None).await?)
    }

    /// Withdraws a staged operation that no flusher has claimed yet (still pending): the
    /// job that staged it learned it must not be posted (its person's erasure began,
    /// decision 0129). False when it was claimed, settled or gone meanwhile.
    pub async fn withdraw(&self, key: &Key) -> Result<bool, OutboxError> {
        let pending = Condition::Equals(STATE.into(), AttrValue::S("pending".into()));
        match self.store.delete(Table::Data, key, Some(pending)).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `limit` operations to post now: pending ones, and in-flight ones whose claim ran
    /// out (their flusher died: ambiguous). Oldest staged first. An operation staged after
    /// one of its conversation that another attempt holds (claimed, its claim running) waits
    /// until that one is settled: one given back behind it ([`Outbox::claim`]) must not
    /// overtake it.
    pub async fn ready(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<StagedOp>, OutboxError> {
        let mut out = Vec::new();
        // Per conversation, when its oldest operation held by a running claim was staged.
        let mut held_since: HashMap<String, i64> = HashMap::new();
        let mut start = None;
        loop {
            let page = self
                .store
                .query(
                    Table::Data,
                    &Query::partition(Self::partition(tenant))
                        .begins_with(ITEM_PREFIX)
                        .limit(200)
                        .start_after(start),
                )
                .await?;
            for item in &page.items {
                let key = item
                    .key()
                    .ok_or_else(|| OutboxError::Unreadable("no key".into()))?;
                let staged_ms = item.get_n(STAGED_MS).unwrap_or(0);
                let (ready, ran_out) = match read_state(item)? {
                    OpState::Pending => (true, None),
                    OpState::InFlight { attempt, until_ms } if until_ms < now_ms => {
                        (true, Some(attempt))
                    }
                    OpState::InFlight { .. } => {
                        let since = held_since
                            .entry(conversation_of(&key).to_owned())
                            .or_insert(staged_ms);
                        *since = (*since).min(staged_ms);
                        (false, None)
                    }
                    OpState::Done(_) => (false, None),
                };
                if !ready {
                    continue;
                }
                let blob = item
                    .get_b(OP)
                    .ok_or_else(|| OutboxError::Unreadable("no operation".into()))?;
                let op = self.open(tenant, &key, blob).await?;
                out.push(StagedOp {
                    key,
                    op,
                    ambiguous: ran_out.is_some() || item.get_bool(AMBIGUOUS).unwrap_or(false),
                    staged_ms,
                    deaths: u32::try_from(item.get_n(DEATHS).unwrap_or(0)).unwrap_or(0),
                    ran_out,
                    ran_out_alive: false,
                });
            }
            start = page.next;
            if start.is_none() {
                break;
            }
        }
        out.retain(|o| {
            held_since
                .get(conversation_of(&o.key))
                .is_none_or(|&held| o.staged_ms < held)
        });
        out.sort_by_key(|s| s.staged_ms);
        out.truncate(limit);
        Ok(out)
    }

    /// Claims `ops` (oldest first, as [`Outbox::ready`] returns them) for one attempt,
    /// before the call, so that a crash mid-call leaves them marked in flight, hence
    /// ambiguous. One conditional update per operation, all sent at once (decision 0086).
    /// Returns the keys to post, oldest first. An operation that changed since it was read
    /// (another flusher holds it: a stale lease) is left out, and so is every later one of
    /// its conversation: those this attempt claimed are given back, so that nobody posts
    /// them before it. Taking over a claim that ran out counts its death in the same update
    /// (decision 0091).
    pub async fn claim(
        &self,
        ops: &[StagedOp],
        attempt: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Key>, OutboxError> {
        let claims = ops.iter().map(|op| {
            let mut update = Update::new()
                .set(STATE, "in_flight")
                .set(ATTEMPT, attempt)
                .set(UNTIL_MS, until_ms);
            if op.counts_a_death() {
                update = update.add(DEATHS, 1);
            }
            self.store
                .update(Table::Data, &op.key, update, Some(op.as_read(now_ms)))
        });
        let answers = join_all(claims.collect()).await;
        self.keep_in_order(ops, answers, attempt).await
    }

    /// Settles `op`, read with its claim run out, as [`KILLED_ITS_WORKER`] instead of taking
    /// it over (decision 0091): the run-out claim is one more death, and the operation is
    /// not posted again. One conditional update, as a claim would be; false when it changed
    /// since it was read (a slow flusher renewed its claim, or another took it over).
    /// Ambiguous: the dead flushers may have posted it before they died.
    pub async fn retire(&self, op: &StagedOp, now_ms: i64) -> Result<bool, OutboxError> {
        let update = Update::new()
            .set(STATE, "failed")
            .set(
                OUTCOME,
                serde_json::to_string(&killed_outcome()).expect("outcomes serialise"),
            )
            .set(AMBIGUOUS, true)
            .add(DEATHS, 1)
            .remove(ATTEMPT)
            .remove(UNTIL_MS);
        match self
            .store
            .update(Table::Data, &op.key, update, Some(op.as_read(now_ms)))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Extends one attempt's claim on `ops` to `until_ms`, before a further request of the
    /// attempt (decision 0056): a lookup and the budget wait before the post must not eat
    /// the time the claim gives the post and the writing of its answer. One conditional
    /// update per operation, all at once. Returns the keys still claimed by the attempt; one
    /// another flusher took (our claim ran out) is left out and must not be posted by us,
    /// nor, as in [`Outbox::claim`], any later one of its conversation (given back).
    pub async fn extend(
        &self,
        ops: &[StagedOp],
        attempt: &str,
        until_ms: i64,
    ) -> Result<Vec<Key>, OutboxError> {
        let extensions = ops.iter().map(|op| {
            let update = Update::new().set(UNTIL_MS, until_ms);
            self.store
                .update(Table::Data, &op.key, update, Some(claimed_by(attempt)))
        });
        let answers = join_all(extensions.collect()).await;
        self.keep_in_order(ops, answers, attempt).await
    }

    /// What an attempt keeps of the operations it claimed (`answers`, one per operation of
    /// `ops`): per conversation, those before its first operation refused; the rest it
    /// claimed are given back. A store failure gives back everything claimed and is
    /// returned: nothing of this attempt is posted, so nothing needs to turn ambiguous.
    async fn keep_in_order(
        &self,
        ops: &[StagedOp],
        answers: Vec<Result<Item, StoreError>>,
        attempt: &str,
    ) -> Result<Vec<Key>, OutboxError> {
        let mut stopped: HashSet<&str> = HashSet::new();
        let mut kept: Vec<&StagedOp> = Vec::new();
        let mut given_back: Vec<&StagedOp> = Vec::new();
        let mut failure = None;
        for (op, answer) in ops.iter().zip(answers) {
            let conversation = conversation_of(&op.key);
            match answer {
                Ok(_) if stopped.contains(conversation) => given_back.push(op),
                Ok(_) => kept.push(op),
                Err(e) => {
                    stopped.insert(conversation);
                    if !e.is_condition_failed() {
                        // It may have landed although its answer was lost: the give-back,
                        // conditional on this attempt, frees it if so.
                        given_back.push(op);
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = failure {
            given_back.append(&mut kept);
            self.give_back(&given_back, attempt).await;
            return Err(e.into());
        }
        self.give_back(&given_back, attempt).await;
        Ok(kept.into_iter().map(|o| o.key.clone()).collect())
    }

    /// Gives back `ops`, claimed by `attempt` and not posted, as [`Outbox::give_back`] does.
    pub async fn release(&self, ops: &[StagedOp], attempt: &str) {
        let ops: Vec<&StagedOp> = ops.iter().collect();
        self.give_back(&ops, attempt).await;
    }

    /// Returns operations this attempt claimed but does not post to `pending`, as they were
    /// read (their ambiguity kept: the attempt sent nothing of them). One that cannot be
    /// given back stays claimed until its claim runs out, then comes back ambiguous and is
    /// looked up before it is posted: later, never out of order.
    async fn give_back(&self, ops: &[&StagedOp], attempt: &str) {
        let writes = ops.iter().map(|op| {
            let update = Update::new()
                .set(STATE, "pending")
                .set(AMBIGUOUS, op.ambiguous)
                .remove(ATTEMPT)
                .remove(UNTIL_MS);
            self.store
                .update(Table::Data, &op.key, update, Some(claimed_by(attempt)))
        });
        for answer in join_all(writes.collect()).await {
            match answer {
                Ok(_) => {}
                Err(e) if e.is_condition_failed() => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not give back a claimed operation; it waits for its claim to run out"
                ),
            }
        }
    }

    /// Records the outcomes of one attempt, each only if the operation is still claimed by
    /// it: one conditional update per outcome, all at once (decision 0086). `ambiguous`
    /// marks failures after which the operation may have arrived. An outcome whose
    /// operation another attempt claimed meanwhile is not written (theirs decides); one the
    /// store failed to write is returned to write again.
    pub async fn settle(&self, attempt: &str, outcomes: Vec<(Key, OpOutcome, bool)>) -> Settled {
        let writes = outcomes.iter().map(|(key, outcome, ambiguous)| {
            let state = match outcome {
                OpOutcome::Sent { .. } => "sent",
                OpOutcome::Failed { .. } => "failed",
            };
            let update = Update::new()
                .set(STATE, state)
                .set(
                    OUTCOME,
                    serde_json::to_string(outcome).expect("outcomes serialise"),
                )
                .set(AMBIGUOUS, *ambiguous)
                .remove(ATTEMPT)
                .remove(UNTIL_MS);
            self.store
                .update(Table::Data, key, update, Some(claimed_by(attempt)))
        });
        let answers = join_all(writes.collect()).await;
        let mut settled = Settled::default();
        for ((key, outcome, ambiguous), answer) in outcomes.into_iter().zip(answers) {
            match answer {
                Ok(_) => settled.written.push((key, outcome)),
                Err(e) if e.is_condition_failed() => {}
                Err(e) => {
                    settled.unwritten.push((key, outcome, ambiguous));
                    // A failure worth retrying only decides when every failure is one.
                    let replaces = match &settled.error {
                        None => true,
                        Some(StoreError::Unavailable(_)) => {
                            !matches!(e, StoreError::Unavailable(_))
                        }
                        Some(_) => false,
                    };
                    if replaces {
                        settled.error = Some(e);
                    }
                }
            }
        }
        settled
    }

    async fn seal(&self, tenant: &TenantId, key: &Key, op: &CrmOp) -> Result<Vec<u8>, OutboxError> {
        let json = serde_json::to_vec(op).expect("operations serialise");
        self.envelope
            .encrypt(FieldRef::new(tenant, Table::Data, key, OP), &json)
            .await
            .map_err(|e| OutboxError::Unreadable(e.to_string()))
    }

    async fn open(&self, tenant: &TenantId, key: &Key, blob: &[u8]) -> Result<CrmOp, OutboxError> {
        let json = self
            .envelope
            .decrypt(FieldRef::new(tenant, Table::Data, key, OP), blob)
            .await
            .map_err(|e| OutboxError::Unreadable(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| OutboxError::Unreadable(e.to_string()))
    }
}

/// The outcome of an operation that killed its flushers (decision 0091): refused for good,
/// as an operation-level failure is.
pub fn killed_outcome() -> OpOutcome {
    OpOutcome::Failed {
        kind: KILLED_ITS_WORKER.to_owned(),
        code: None,
        retry_after_ms: None,
        operation_level: true,
    }
}

/// Whether `state` is the outcome of an operation that killed its flushers.
fn is_killer(state: &OpState) -> bool {
    matches!(state, OpState::Done(OpOutcome::Failed { kind, .. }) if kind == KILLED_ITS_WORKER)
}

/// The condition that an operation is still claimed by `attempt`.
fn claimed_by(attempt: &str) -> Condition {
    Condition::Equals(ATTEMPT.into(), AttrValue::S(attempt.to_owned()))
}

/// The conversation of a staged operation's key (`op#<conversation>#<effect>`; conversation
/// ids hold no `#`).
fn conversation_of(key: &Key) -> &str {
    key.sk
        .strip_prefix(ITEM_PREFIX)
        .and_then(|rest| rest.split_once('#'))
        .map_or(key.sk.as_str(), |(conversation, _)| conversation)
}

fn read_state(item: &Item) -> Result<OpState, OutboxError> {
    match item.get_s(STATE) {
        Some("pending") => Ok(OpState::Pending),
        Some("in_flight") => Ok(OpState::InFlight {
            attempt: item.get_s(ATTEMPT).unwrap_or_default().to_owned(),
            until_ms: item.get_n(UNTIL_MS).unwrap_or(0),
        }),
        Some("sent") | Some("failed") => {
            let outcome = item
                .get_s(OUTCOME)
                .and_then(|s| serde_json::from_str(s).ok())
                .ok_or_else(|| OutboxError::Unreadable("outcome".into()))?;
            Ok(OpState::Done(outcome))
        }
        other => Err(OutboxError::Unreadable(format!("state {other:?}"))),
    }
}
