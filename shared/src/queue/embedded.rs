//! Embedded queue: SQS semantics over one redb file (`queues.redb`) in a data directory, for
//! the local server and tests. No network, survives restarts.
//!
//! Layout (all keys start with the queue name, so one queue's messages are contiguous):
//! - `queue_messages`: (queue, seq) → message metadata (JSON). `seq` comes from one global
//!   counter, so a range scan returns a queue's messages in send order.
//! - `queue_bodies`: (queue, seq) → body, kept apart so scans never read bodies.
//! - `queue_dedup`: (queue, dedup id) → expiry (ms); `queue_dedup_expiry` indexes the same
//!   entries by expiry so pruning costs only what expired.
//!
//! - the receive index (`embedded_index`): what a receive may take, so it never scans.
//!
//! Every operation runs on the file's writer thread, one after the other, all or nothing, so
//! concurrent receivers (threads or tasks) never get the same message in one visibility window.
//! An operation is answered once its writes are on disk; concurrent operations share one redb
//! transaction and one fsync ([`crate::group_commit`], decisions 0054 and 0092). A send is the
//! exception in how, not in when: it is answered once it is in the queue's own log
//! (`queues.log.*`, [`super::embedded_log`], decision 0090), and applied to redb by the writer
//! thread from there.
//!
//! Receipts ([`super::embedded_record`]) are `{seq:x}.{nonce}` with a fresh nonce per receive.
//! A receipt from an earlier receive of a message that has since been received again is stale:
//! `ack` with it is an Ok no-op (as SQS documents for stale handles), `change_visibility` with
//! it, or with the receipt of a deleted message, is `QueueError::Invalid` (as SQS and moto
//! refuse it). A malformed receipt is `Invalid` for both.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::embedded_index as index;
use super::embedded_log::{self as log, LoggedMessage, LoggedSend, SendLog};
use super::embedded_record::{
    decode, encode, new_message_id, new_nonce, parse_receipt, receipt, Meta,
};
use super::sqs::limits;
use super::{
    validate_batch, OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, QueueSpec,
    ReceivedMessage,
};
use crate::clock::now_millis;
use crate::group_commit::{CommitFailure, GroupCommit};

/// The file in a data directory that holds the queues (an ops tool checks that it exists
/// before opening a directory, so a mistyped path is not taken for an empty new one).
pub const FILE_NAME: &str = "queues.redb";

const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue_messages");
const BODIES: TableDefinition<(&str, u64), &str> = TableDefinition::new("queue_bodies");
const DEDUP: TableDefinition<(&str, &str), i64> = TableDefinition::new("queue_dedup");
const DEDUP_EXPIRY: TableDefinition<(i64, &str, &str), ()> =
    TableDefinition::new("queue_dedup_expiry");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("queue_counters");
const NEXT_SEQ: &str = "next_seq";
/// Which receive index the file holds; an older file gets it built when opened.
const INDEX_VERSION: &str = "index_version";
const CURRENT_INDEX: u64 = 1;
/// The number of the last logged send applied (decision 0090); durable with what it applied.
const LOG_APPLIED: &str = "log_applied";

/// SQS's FIFO deduplication window.
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Bound on dedup entries pruned per send, so one send never pays for a long idle period.
const DEDUP_PRUNE_LIMIT: usize = 1000;

#[derive(Clone, Debug)]
struct QueueConfig {
    fifo: bool,
    /// (max receives, dead-letter queue); `None` for dead-letter queues themselves.
    redrive: Option<(u32, QueueName)>,
}

struct Inner {
    /// Declared before `db` so it drops first: its last sends are applied by `db`'s writer,
    /// which then flushes them as it closes.
    log: SendLog,
    db: GroupCommit,
    queues: HashMap<QueueName, QueueConfig>,
}

/// The embedded queue adapter; cheap to clone (one shared database).
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.inner.queues.keys().map(QueueName::as_str).collect();
        names.sort_unstable();
        f.debug_struct("EmbeddedQueue")
            .field("queues", &names)
            .finish()
    }
}

fn backend_failure(CommitFailure(e): CommitFailure) -> QueueError {
    QueueError::Backend(format!("embedded queue store: {e}"))
}

fn db_err(e: impl Into<redb::Error>) -> QueueError {
    QueueError::Backend(format!("embedded queue store: {}", e.into()))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn next_seq(txn: &WriteTransaction) -> Result<u64, QueueError> {
    let mut counters = txn.open_table(COUNTERS).map_err(db_err)?;
    let seq = counters
        .get(NEXT_SEQ)
        .map_err(db_err)?
        .map(|g| g.value())
        .unwrap_or(1);
    counters.insert(NEXT_SEQ, seq + 1).map_err(db_err)?;
    Ok(seq)
}

/// Appends a message to a queue (new sequence number, so it goes to the back).
fn append(txn: &WriteTransaction, queue: &str, meta: &Meta, body: &str) -> Result<(), QueueError> {
    let seq = next_seq(txn)?;
    index::added(txn, queue, seq, meta.group_id.as_deref())?;
    let encoded = encode(meta)?;
    txn.open_table(MESSAGES)
        .map_err(db_err)?
        .insert((queue, seq), encoded.as_slice())
        .map_err(db_err)?;
    txn.open_table(BODIES)
        .map_err(db_err)?
        .insert((queue, seq), body)
        .map_err(db_err)?;
    Ok(())
}

/// Drops dedup entries whose window has passed (any queue), a bounded number per call.
fn prune_dedup(txn: &WriteTransaction, now: i64) -> Result<(), QueueError> {
    let mut expiry = txn.open_table(DEDUP_EXPIRY).map_err(db_err)?;
    let mut dedup = txn.open_table(DEDUP).map_err(db_err)?;
    let mut expired: Vec<(i64, String, String)> = Vec::new();
    for entry in expiry.range::<(i64, &str, &str)>(..).map_err(db_err)? {
        let (key, _) = entry.map_err(db_err)?;
        let (at, queue, id) = key.value();
        if at > now || expired.len() >= DEDUP_PRUNE_LIMIT {
            break;
        }
        expired.push((at, queue.to_owned(), id.to_owned()));
    }
    for (at, queue, id) in &expired {
        expiry
            .remove((*at, queue.as_str(), id.as_str()))
            .map_err(db_err)?;
        // Only if it still points at this expiry (a later send may have renewed it).
        let current = dedup
            .get((queue.as_str(), id.as_str()))
            .map_err(db_err)?
            .map(|g| g.value());
        if current == Some(*at) {
            dedup
                .remove((queue.as_str(), id.as_str()))
                .map_err(db_err)?;
        }
    }
    Ok(())
}

/// Records a FIFO dedup id; false if it was already seen within the window.
fn claim_dedup(
    txn: &WriteTransaction,
    queue: &str,
    dedup_id: &str,
    now: i64,
) -> Result<bool, QueueError> {
    let mut dedup = txn.open_table(DEDUP).map_err(db_err)?;
    let existing = dedup
        .get((queue, dedup_id))
        .map_err(db_err)?
        .map(|g| g.value());
    if let Some(expires) = existing {
        if expires > now {
            return Ok(false);
        }
    }
    let expires = now.saturating_add(DEDUP_WINDOW_MS);
    dedup.insert((queue, dedup_id), expires).map_err(db_err)?;
    txn.open_table(DEDUP_EXPIRY)
        .map_err(db_err)?
        .insert((expires, queue, dedup_id), ())
        .map_err(db_err)?;
    Ok(true)
}

fn meta_of(txn: &WriteTransaction, queue: &str, seq: u64) -> Result<Meta, QueueError> {
    let table = txn.open_table(MESSAGES).map_err(db_err)?;
    let value = table.get((queue, seq)).map_err(db_err)?;
    let value =
        value.ok_or_else(|| QueueError::Backend(format!("message {seq} of {queue} is missing")))?;
    decode(value.value())
}

/// Deletes a message (its index entries with it).
fn remove(txn: &WriteTransaction, queue: &str, seq: u64, meta: &Meta) -> Result<(), QueueError> {
    index::removed(txn, queue, seq, meta.visible_at, meta.group_id.as_deref())?;
    txn.open_table(MESSAGES)
        .map_err(db_err)?
        .remove((queue, seq))
        .map_err(db_err)?;
    txn.open_table(BODIES)
        .map_err(db_err)?
        .remove((queue, seq))
        .map_err(db_err)?;
    Ok(())
}

fn body_of(txn: &WriteTransaction, queue: &str, seq: u64) -> Result<String, QueueError> {
    txn.open_table(BODIES)
        .map_err(db_err)?
        .get((queue, seq))
        .map_err(db_err)?
        .map(|g| g.value().to_owned())
        .ok_or_else(|| QueueError::Backend(format!("message {seq} of {queue} has no body")))
}

/// The message a receipt names, if that receipt is still the current one.
fn current(
    txn: &WriteTransaction,
    queue: &str,
    seq: u64,
    nonce: &str,
) -> Result<Option<Meta>, QueueError> {
    let table = txn.open_table(MESSAGES).map_err(db_err)?;
    let meta = match table.get((queue, seq)).map_err(db_err)? {
        Some(value) => decode(value.value())?,
        None => return Ok(None),
    };
    Ok((meta.receipt_nonce.as_deref() == Some(nonce)).then_some(meta))
}

fn put_meta(txn: &WriteTransaction, queue: &str, seq: u64, meta: &Meta) -> Result<(), QueueError> {
    let encoded = encode(meta)?;
    txn.open_table(MESSAGES)
        .map_err(db_err)?
        .insert((queue, seq), encoded.as_slice())
        .map_err(db_err)?;
    Ok(())
}

/// Builds the receive index of a file written before it existed (or by an older layout).
fn build_index(txn: &WriteTransaction) -> Result<(), QueueError> {
    let version = txn
        .open_table(COUNTERS)
        .map_err(db_err)?
        .get(INDEX_VERSION)
        .map_err(db_err)?
        .map(|g| g.value());
    if version == Some(CURRENT_INDEX) {
        return Ok(());
    }
    let mut messages: Vec<(String, u64, i64, Option<String>)> = Vec::new();
    for entry in txn
        .open_table(MESSAGES)
        .map_err(db_err)?
        .iter()
        .map_err(db_err)?
    {
        let (key, value) = entry.map_err(db_err)?;
        let (queue, seq) = key.value();
        let meta = decode(value.value())?;
        messages.push((queue.to_owned(), seq, meta.visible_at, meta.group_id));
    }
    index::rebuild(
        txn,
        messages
            .iter()
            .map(|(q, seq, at, g)| (q.as_str(), *seq, *at, g.as_deref())),
    )?;
    txn.open_table(COUNTERS)
        .map_err(db_err)?
        .insert(INDEX_VERSION, CURRENT_INDEX)
        .map_err(db_err)?;
    Ok(())
}

/// Applies logged sends in log order (decision 0090) and records the last one's number, all in
/// `txn`. A FIFO send whose dedup id was seen within the window of its acceptance is accepted
/// and not enqueued again, as before the log.
fn apply_sends(
    txn: &WriteTransaction,
    queues: &HashMap<String, QueueConfig>,
    records: &[(u64, LoggedSend)],
) -> Result<(), QueueError> {
    let Some((last, _)) = records.last() else {
        return Ok(());
    };
    let fifo_of = |queue: &str| {
        queues.get(queue).map(|c| c.fifo).unwrap_or_else(|| {
            // Logged for a queue this server no longer declares: kept, not dropped.
            QueueName::parse(queue).is_ok_and(|n| n.is_fifo())
        })
    };
    if records.iter().any(|(_, send)| fifo_of(&send.queue)) {
        prune_dedup(txn, now_millis())?;
    }
    for (_, send) in records {
        let fifo = fifo_of(&send.queue);
        for message in &send.messages {
            if fifo {
                if let Some(dedup_id) = message.dedup_id.as_deref() {
                    if !claim_dedup(txn, &send.queue, dedup_id, send.at)? {
                        // Accepted, not enqueued again: SQS's FIFO deduplication.
                        continue;
                    }
                }
            }
            let meta = Meta {
                message_id: message.message_id.clone(),
                group_id: message.group_id.clone().filter(|_| fifo),
                dedup_id: message.dedup_id.clone().filter(|_| fifo),
                receive_count: 0,
                visible_at: send.at,
                sent_at: send.at,
                receipt_nonce: None,
            };
            append(txn, &send.queue, &meta, &message.body)?;
        }
    }
    txn.open_table(COUNTERS)
        .map_err(db_err)?
        .insert(LOG_APPLIED, *last)
        .map_err(db_err)?;
    Ok(())
}

impl EmbeddedQueue {
    /// Opens (or creates) `dir/queues.redb` serving the given queues and their dead-letter
    /// queues. Blocking: call it at startup, not on a hot async path.
    pub fn open(dir: &Path, specs: Vec<QueueSpec>) -> Result<Self, QueueError> {
        let mut queues: HashMap<QueueName, QueueConfig> = HashMap::new();
        for spec in &specs {
            if spec.max_receives == 0 {
                return Err(QueueError::Invalid(format!(
                    "queue {}: max_receives must be at least 1",
                    spec.name
                )));
            }
            let dlq = spec.name.dead_letter();
            // A dead-letter queue does not dead-letter itself, unless a spec says so.
            queues.entry(dlq.clone()).or_insert(QueueConfig {
                fifo: dlq.is_fifo(),
                redrive: None,
            });
        }
        for spec in specs {
            let dlq = spec.name.dead_letter();
            queues.insert(
                spec.name.clone(),
                QueueConfig {
                    fifo: spec.name.is_fifo(),
                    redrive: Some((spec.max_receives, dlq)),
                },
            );
        }

        std::fs::create_dir_all(dir).map_err(|e| {
            QueueError::Backend(format!("creating queue directory {}: {e}", dir.display()))
        })?;
        let db = Database::create(dir.join(FILE_NAME)).map_err(db_err)?;
        // Create the tables up front so read-only paths (depth) never meet a missing table.
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(MESSAGES).map_err(db_err)?;
        txn.open_table(BODIES).map_err(db_err)?;
        txn.open_table(DEDUP).map_err(db_err)?;
        txn.open_table(DEDUP_EXPIRY).map_err(db_err)?;
        txn.open_table(COUNTERS).map_err(db_err)?;
        index::create(&txn)?;
        build_index(&txn)?;
        // Sends logged and answered before the last stop but not durably applied: applied now,
        // once, in this durable commit; then the log starts empty.
        let configs: Arc<HashMap<String, QueueConfig>> = Arc::new(
            queues
                .iter()
                .map(|(name, config)| (name.as_str().to_owned(), config.clone()))
                .collect(),
        );
        let applied = txn
            .open_table(COUNTERS)
            .map_err(db_err)?
            .get(LOG_APPLIED)
            .map_err(db_err)?
            .map(|g| g.value())
            .unwrap_or(0);
        let (unapplied, highest) = log::read_unapplied(dir, applied)?;
        let applied = unapplied.last().map_or(applied, |(seq, _)| *seq);
        if !unapplied.is_empty() {
            tracing::info!(
                sends = unapplied.len(),
                "embedded queue: applying logged sends after a stop"
            );
            apply_sends(&txn, &configs, &unapplied)?;
        }
        txn.commit().map_err(db_err)?;

        let db = GroupCommit::new(db);
        let apply: log::Apply = Arc::new(move |txn: &WriteTransaction, records: &[_]| {
            apply_sends(txn, &configs, records)
        });
        let log = SendLog::start(dir, highest, applied, apply, db.submitter())?;
        Ok(EmbeddedQueue {
            inner: Arc::new(Inner { log, db, queues }),
        })
    }

    fn config(&self, queue: &QueueName) -> Result<QueueConfig, QueueError> {
        self.inner
            .queues
            .get(queue)
            .cloned()
            .ok_or_else(|| QueueError::UnknownQueue(queue.to_string()))
    }

    /// Runs `f` in its batch's write transaction on the file's writer thread; keeps its writes
    /// if it returns Ok, and answers once they are durable. `f` may run more than once (see
    /// [`crate::group_commit`]). Generic over `f`'s error so that a caller can end its write
    /// without keeping anything for a reason of its own (as `receive` does when nothing
    /// changed); a store failure reaches it as a [`QueueError`].
    async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<QueueError> + Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        self.inner
            .db
            .write(|failure| backend_failure(failure).into(), f)
            .await
    }

    /// Messages in the queue, visible and in flight (SQS's ApproximateNumberOfMessages plus
    /// ApproximateNumberOfMessagesNotVisible). For ops and tests.
    pub async fn depth(&self, queue: &QueueName) -> Result<usize, QueueError> {
        self.config(queue)?;
        let name = queue.as_str().to_owned();
        // On the writer thread, so it counts every send answered before it (decision 0090).
        self.inner
            .db
            .read_in_order(backend_failure, move |db| {
                let txn = db.begin_read().map_err(db_err)?;
                let (total, _) = index::depth(&txn, &name, now_millis())?;
                Ok(usize::try_from(total).unwrap_or(usize::MAX))
            })
            .await
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        self.config(queue)?;
        validate_batch(queue, &messages)?;
        limits::check_bodies(&messages)?;
        if messages.is_empty() {
            return Ok(());
        }
        // Ids before the append: the random source is the only other thing that can fail.
        let messages = messages
            .into_iter()
            .map(|m| {
                Ok(LoggedMessage {
                    message_id: new_message_id()?,
                    body: m.body,
                    group_id: m.group_id,
                    dedup_id: m.dedup_id,
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        // Answered once on disk in the log; the writer thread applies it (dedup included)
        // before anything queued after this answer (decision 0090).
        self.inner
            .log
            .append(LoggedSend {
                queue: queue.as_str().to_owned(),
                at: now_millis(),
                messages,
            })
            .await
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let config = self.config(queue)?;
        limits::check_receive(max, visibility)?;
        let name = queue.as_str().to_owned();
        let received = self
            .inner
            .db
            .write_declining(
                |failure| backend_failure(failure).into(),
                |e| matches!(e, Unchanged::Nothing),
                move |txn| {
                    let now = now_millis();
                    let hidden_until = now.saturating_add(millis(visibility));
                    let group_of = |seq: u64| Ok(meta_of(txn, &name, seq)?.group_id);
                    let settled = index::settle_expired(txn, &name, now, group_of)?;
                    let mut dead_lettered = false;
                    let mut out = Vec::new();
                    index::walk(txn, &name, max, group_of, |seq| {
                        let mut meta = meta_of(txn, &name, seq)?;
                        if let Some((max_receives, dlq)) = &config.redrive {
                            if meta.receive_count >= *max_receives {
                                // Received max_receives times without an ack: dead-letter it on this
                                // receive attempt, as SQS does. Id and count carry over, as in SQS.
                                let body = body_of(txn, &name, seq)?;
                                remove(txn, &name, seq, &meta)?;
                                meta.visible_at = now;
                                meta.receipt_nonce = None;
                                append(txn, dlq.as_str(), &meta, &body)?;
                                dead_lettered = true;
                                tracing::warn!(
                                    queue = %name,
                                    dead_letter_queue = %dlq,
                                    message_id = %meta.message_id,
                                    receive_count = meta.receive_count,
                                    "message moved to the dead-letter queue"
                                );
                                return Ok(false);
                            }
                        }
                        let nonce = new_nonce()?;
                        index::hidden(
                            txn,
                            &name,
                            seq,
                            meta.visible_at,
                            hidden_until,
                            meta.group_id.as_deref(),
                        )?;
                        meta.receive_count = meta.receive_count.saturating_add(1);
                        meta.visible_at = hidden_until;
                        meta.receipt_nonce = Some(nonce.clone());
                        put_meta(txn, &name, seq, &meta)?;
                        out.push(ReceivedMessage {
                            message_id: meta.message_id,
                            body: body_of(txn, &name, seq)?,
                            receipt: receipt(seq, &nonce),
                            receive_count: meta.receive_count,
                            group_id: meta.group_id,
                        });
                        Ok(true)
                    })?;
                    if out.is_empty() && !settled && !dead_lettered {
                        // Nothing changed (nothing written, as `write_declining` is promised):
                        // kept out of the batch's commit, so an idle consumer's poll, alone in its
                        // batch, costs no commit and no fsync, and in a busy batch rolls nothing
                        // back (the local server polls each queue from several loops every 50 ms).
                        return Err(Unchanged::Nothing);
                    }
                    Ok(out)
                },
            )
            .await;
        match received {
            Ok(out) => Ok(out),
            Err(Unchanged::Nothing) => Ok(Vec::new()),
            Err(Unchanged::Failed(e)) => Err(e),
        }
    }

    async fn ack(&self, queue: &QueueName, receipt: &str) -> Result<(), QueueError> {
        self.config(queue)?;
        let (seq, nonce) = parse_receipt(receipt)?;
        let nonce = nonce.to_owned();
        let name = queue.as_str().to_owned();
        self.write(move |txn| {
            // Deleted already, or received again since (stale receipt): nothing to do.
            if let Some(meta) = current(txn, &name, seq, &nonce)? {
                remove(txn, &name, seq, &meta)?;
            }
            Ok(())
        })
        .await
    }

    /// One transaction (so one flush) for the whole batch: a consumer settling a batch of ten
    /// paid ten durable commits before (decision 0059). Each entry is what `ack` would answer.
    async fn ack_batch(
        &self,
        queue: &QueueName,
        receipts: &[String],
    ) -> Vec<Result<(), QueueError>> {
        if let Err(e) = self.config(queue) {
            return receipts.iter().map(|_| Err(e.clone())).collect();
        }
        let parsed: Vec<Result<(u64, String), QueueError>> = receipts
            .iter()
            .map(|r| parse_receipt(r).map(|(seq, nonce)| (seq, nonce.to_owned())))
            .collect();
        let valid: Vec<(u64, String)> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
        if valid.is_empty() {
            return parsed.into_iter().map(|p| p.map(|_| ())).collect();
        }
        let name = queue.as_str().to_owned();
        let written = self
            .write(move |txn| {
                for (seq, nonce) in &valid {
                    // Deleted already (also by an earlier entry of this batch), or received
                    // again since: nothing to do, as for `ack`.
                    if let Some(meta) = current(txn, &name, *seq, nonce)? {
                        remove(txn, &name, *seq, &meta)?;
                    }
                }
                Ok(())
            })
            .await;
        parsed
            .into_iter()
            .map(|p| p.and_then(|_| written.clone()))
            .collect()
    }

    async fn change_visibility(
        &self,
        queue: &QueueName,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.config(queue)?;
        limits::check_visibility(visibility)?;
        let (seq, nonce) = parse_receipt(receipt)?;
        let nonce = nonce.to_owned();
        let name = queue.as_str().to_owned();
        self.write(move |txn| {
            let Some(mut meta) = current(txn, &name, seq, &nonce)? else {
                return Err(QueueError::Invalid(
                    "receipt is stale: the message was deleted or received again".into(),
                ));
            };
            let until = now_millis().saturating_add(millis(visibility));
            index::hidden(
                txn,
                &name,
                seq,
                meta.visible_at,
                until,
                meta.group_id.as_deref(),
            )?;
            meta.visible_at = until;
            put_meta(txn, &name, seq, &meta)
        })
        .await
    }

    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        self.config(queue)?;
        let name = queue.as_str().to_owned();
        // On the writer thread, so it counts every send answered before it (decision 0090).
        self.inner
            .db
            .read_in_order(backend_failure, move |db| {
                let txn = db.begin_read().map_err(db_err)?;
                let (total, in_flight) = index::depth(&txn, &name, now_millis())?;
                Ok(QueueDepth {
                    visible: total.saturating_sub(in_flight),
                    in_flight,
                })
            })
            .await
    }
}

/// How a receive's transaction ends without a commit: it changed nothing, or it failed.
enum Unchanged {
    Nothing,
    Failed(QueueError),
}

impl From<QueueError> for Unchanged {
    fn from(e: QueueError) -> Self {
        Unchanged::Failed(e)
    }
}

#[cfg(test)]
impl EmbeddedQueue {
    pub(super) fn writer_for_tests(&self) -> crate::group_commit::Submitter {
        self.inner.db.submitter()
    }

    /// The send log's flushes and moves from one file to the other.
    pub(super) fn log_counts_for_tests(&self) -> (u64, u64) {
        (self.inner.log.flushes(), self.inner.log.turns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle consumer polls every 50 ms from several loops: a receive that finds nothing
    /// must not cost a commit and a flush. One that takes a message flushes as before.
    #[tokio::test]
    async fn an_empty_receive_commits_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = QueueName::parse("work").expect("valid name");
        let spec = QueueSpec::new(name.clone(), 3, Duration::from_secs(30));
        let queue = EmbeddedQueue::open(dir.path(), vec![spec]).expect("open");
        let flushes = || queue.inner.db.flushes();
        let before = flushes();
        for _ in 0..5 {
            let got = queue.receive(&name, 10, Duration::from_secs(30)).await;
            assert!(got.expect("receive").is_empty());
        }
        assert_eq!(flushes(), before, "empty receives flushed");
        queue
            .send_batch(&name, vec![OutgoingMessage::new("hello")])
            .await
            .expect("send");
        let after_send = flushes();
        let got = queue.receive(&name, 10, Duration::from_secs(30)).await;
        assert_eq!(got.expect("receive").len(), 1);
        assert!(
            flushes() > after_send,
            "a receive that takes a message is made durable"
        );
    }
}
