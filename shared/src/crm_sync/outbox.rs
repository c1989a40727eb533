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

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_secs;
use crate::crypto::{Envelope, FieldRef};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Media};
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp,
    MAX_TRANSACTION_ITEMS, TTL_ATTR,
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

/// What became of a posted operation (ids and error kinds only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OpOutcome {
    Sent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        crm_chat_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_message_id: Option<String>,
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

    /// Up to `limit` operations to post now: pending ones, and in-flight ones whose claim ran
    /// out (their flusher died: ambiguous). Oldest staged first.
    pub async fn ready(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<StagedOp>, OutboxError> {
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
                let (ready, stale) = match read_state(item)? {
                    OpState::Pending => (true, false),
                    OpState::InFlight { until_ms, .. } => (until_ms < now_ms, true),
                    OpState::Done(_) => (false, false),
                };
                if !ready {
                    continue;
                }
                let key = item
                    .key()
                    .ok_or_else(|| OutboxError::Unreadable("no key".into()))?;
                let blob = item
                    .get_b(OP)
                    .ok_or_else(|| OutboxError::Unreadable("no operation".into()))?;
                let op = self.open(tenant, &key, blob).await?;
                out.push(StagedOp {
                    key,
                    op,
                    ambiguous: stale || item.get_bool(AMBIGUOUS).unwrap_or(false),
                    staged_ms: item.get_n(STAGED_MS).unwrap_or(0),
                });
            }
            start = page.next;
            if start.is_none() {
                break;
            }
        }
        out.sort_by_key(|s| s.staged_ms);
        out.truncate(limit);
        Ok(out)
    }

    /// Claims the operations for one attempt, before the call (so a crash mid-call leaves
    /// them marked in flight, hence ambiguous). Returns the keys actually claimed: one that
    /// changed since it was read (another flusher, a stale lease) is left out.
    pub async fn claim(
        &self,
        ops: &[StagedOp],
        attempt: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Key>, OutboxError> {
        let writes = |op: &StagedOp| WriteOp::Update {
            table: Table::Data,
            key: op.key.clone(),
            update: Update::new()
                .set(STATE, "in_flight")
                .set(ATTEMPT, attempt)
                .set(UNTIL_MS, until_ms),
            condition: Some(Condition::Or(vec![
                Condition::Equals(STATE.into(), AttrValue::S("pending".into())),
                Condition::And(vec![
                    Condition::Equals(STATE.into(), AttrValue::S("in_flight".into())),
                    Condition::LessThan(UNTIL_MS.into(), AttrValue::N(now_ms)),
                ]),
            ])),
        };
        let mut claimed = Vec::new();
        for chunk in ops.chunks(MAX_TRANSACTION_ITEMS) {
            // One operation: a conditional update is the same claim at half the units of a
            // one-item transaction (decision 0058).
            let all = match chunk {
                [_] => Err(StoreError::ConditionFailed { op_index: None }),
                _ => {
                    self.store
                        .transact_write(chunk.iter().map(writes).collect())
                        .await
                }
            };
            match all {
                Ok(()) => claimed.extend(chunk.iter().map(|o| o.key.clone())),
                Err(e) if e.is_condition_failed() => {
                    // One of them moved (or there is only one): claim one by one.
                    for op in chunk {
                        let WriteOp::Update {
                            key,
                            update,
                            condition,
                            ..
                        } = writes(op)
                        else {
                            unreachable!("claims are updates")
                        };
                        match self
                            .store
                            .update(Table::Data, &key, update, condition)
                            .await
                        {
                            Ok(_) => claimed.push(key),
                            Err(e) if e.is_condition_failed() => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(claimed)
    }

    /// Extends one attempt's claim on `keys` to `until_ms`, before a further request of the
    /// attempt (decision 0056): a lookup and the budget wait before the post must not eat
    /// the time the claim gives the post and the writing of its answer. Returns the keys
    /// still claimed by the attempt; one another flusher took (our claim ran out) is left
    /// out, and must not be posted by us.
    pub async fn extend(
        &self,
        keys: &[Key],
        attempt: &str,
        until_ms: i64,
    ) -> Result<Vec<Key>, OutboxError> {
        let write = |key: &Key| WriteOp::Update {
            table: Table::Data,
            key: key.clone(),
            update: Update::new().set(UNTIL_MS, until_ms),
            condition: Some(Condition::Equals(
                ATTEMPT.into(),
                AttrValue::S(attempt.to_owned()),
            )),
        };
        let mut kept = Vec::new();
        for chunk in keys.chunks(MAX_TRANSACTION_ITEMS) {
            match self
                .store
                .transact_write(chunk.iter().map(write).collect())
                .await
            {
                Ok(()) => kept.extend(chunk.iter().cloned()),
                Err(e) if e.is_condition_failed() => {
                    for key in chunk {
                        let update = Update::new().set(UNTIL_MS, until_ms);
                        let ours =
                            Condition::Equals(ATTEMPT.into(), AttrValue::S(attempt.to_owned()));
                        match self
                            .store
                            .update(Table::Data, key, update, Some(ours))
                            .await
                        {
                            Ok(_) => kept.push(key.clone()),
                            Err(e) if e.is_condition_failed() => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(kept)
    }

    /// Records the outcomes of one attempt, each only if the operation is still claimed by
    /// it. `ambiguous` marks failures after which the operation may have arrived. Returns
    /// the outcomes written (one whose operation another attempt claimed meanwhile is not).
    pub async fn settle(
        &self,
        attempt: &str,
        outcomes: Vec<(Key, OpOutcome, bool)>,
    ) -> Result<Vec<(Key, OpOutcome)>, OutboxError> {
        let write = |(key, outcome, ambiguous): (Key, OpOutcome, bool)| {
            let state = match outcome {
                OpOutcome::Sent { .. } => "sent",
                OpOutcome::Failed { .. } => "failed",
            };
            WriteOp::Update {
                table: Table::Data,
                key,
                update: Update::new()
                    .set(STATE, state)
                    .set(
                        OUTCOME,
                        serde_json::to_string(&outcome).expect("outcomes serialise"),
                    )
                    .set(AMBIGUOUS, ambiguous)
                    .remove(ATTEMPT)
                    .remove(UNTIL_MS),
                condition: Some(Condition::Equals(
                    ATTEMPT.into(),
                    AttrValue::S(attempt.to_owned()),
                )),
            }
        };
        let mut written = Vec::with_capacity(outcomes.len());
        let mut rest = outcomes;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_TRANSACTION_ITEMS));
            let chunk = std::mem::replace(&mut rest, tail);
            let ops: Vec<WriteOp> = chunk.clone().into_iter().map(write).collect();
            // One outcome: a conditional update, not a one-item transaction (half the
            // units, decision 0058).
            let all = match ops.len() {
                1 => Err(StoreError::ConditionFailed { op_index: None }),
                _ => self.store.transact_write(ops).await,
            };
            match all {
                Ok(()) => written.extend(chunk.into_iter().map(|(k, o, _)| (k, o))),
                Err(e) if e.is_condition_failed() => {
                    for one in chunk {
                        let outcome = one.1.clone();
                        let WriteOp::Update {
                            key,
                            update,
                            condition,
                            ..
                        } = write(one)
                        else {
                            unreachable!("outcomes are updates")
                        };
                        match self
                            .store
                            .update(Table::Data, &key, update, condition)
                            .await
                        {
                            Ok(_) => written.push((key, outcome)),
                            // Claimed again meanwhile (our claim ran out): theirs decides.
                            Err(e) if e.is_condition_failed() => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(written)
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
