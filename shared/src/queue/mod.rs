//! The queue port: SQS-shaped, at-least-once delivery.
//!
//! Messages are sent in batches, received with a visibility timeout, acknowledged (deleted)
//! when processed, redelivered when the timeout lapses without an ack, and moved to the
//! queue's dead-letter queue once they have been received `max_receives` times without an
//! ack. FIFO queues (names ending in `.fifo`) keep order within a message group: while one
//! message of a group is in flight, no later message of that group is delivered.
//!
//! Adapters: [`sqs::SqsQueue`] (aws-sdk-sqs; redrive is SQS's own, set up in template.yaml)
//! and [`embedded::EmbeddedQueue`] (redb file under a data directory). One conformance suite
//! (`shared/tests/`) runs against both. [`redrive`] puts dead-lettered messages back, through
//! this port, on either adapter.

pub mod embedded;
mod embedded_index;
mod embedded_log;
mod embedded_record;
pub mod redrive;
pub mod sqs;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// SQS's limit on messages per send batch and per receive.
pub const MAX_BATCH: usize = 10;
/// SQS's limit on one message body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A queue's name, as SQS allows it: 1-80 characters of `[A-Za-z0-9_-]`, FIFO queues ending
/// in `.fifo`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(name: &str) -> Result<Self, QueueError> {
        let base = name.strip_suffix(".fifo").unwrap_or(name);
        let ok = !base.is_empty()
            && name.len() <= 80
            && base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(QueueName(name.to_owned()))
        } else {
            Err(QueueError::Invalid(format!("invalid queue name {name:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_fifo(&self) -> bool {
        self.0.ends_with(".fifo")
    }

    /// The conventional name of this queue's dead-letter queue (`x.fifo` → `x-dlq.fifo`).
    pub fn dead_letter(&self) -> QueueName {
        match self.0.strip_suffix(".fifo") {
            Some(base) => QueueName(format!("{base}-dlq.fifo")),
            None => QueueName(format!("{}-dlq", self.0)),
        }
    }
}

impl TryFrom<String> for QueueName {
    type Error = QueueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        QueueName::parse(&s)
    }
}
impl From<QueueName> for String {
    fn from(q: QueueName) -> String {
        q.0
    }
}
impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a queue is set up: whether it dead-letters, and after how many receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: QueueName,
    /// Receives without an ack before the message moves to the dead-letter queue.
    pub max_receives: u32,
    /// Default visibility timeout when a receive does not give one.
    pub visibility_timeout: Duration,
}

impl QueueSpec {
    pub fn new(name: QueueName, max_receives: u32, visibility_timeout: Duration) -> Self {
        QueueSpec {
            name,
            max_receives,
            visibility_timeout,
        }
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    /// FIFO queues: ordering group (required there, ignored elsewhere).
    pub group_id: Option<String>,
    /// FIFO queues: a repeated id within 5 minutes is accepted but not enqueued again.
    pub dedup_id: Option<String>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage {
            body: body.into(),
            group_id: None,
            dedup_id: None,
        }
    }
    pub fn grouped(mut self, group_id: impl Into<String>, dedup_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self.dedup_id = Some(dedup_id.into());
        self
    }
}

/// A received message; `receipt` acknowledges it or changes its visibility.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub body: String,
    pub receipt: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    pub group_id: Option<String>,
}

/// How many messages a queue holds, as SQS approximates it (`ApproximateNumberOfMessages` and
/// `ApproximateNumberOfMessagesNotVisible`; the platform sends nothing with a delay).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Waiting to be received (on a FIFO queue, also those behind a group in flight).
    pub visible: u64,
    /// Received and not yet acknowledged or released.
    pub in_flight: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible.saturating_add(self.in_flight)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum QueueError {
    #[error("invalid queue request: {0}")]
    Invalid(String),
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    /// Some messages of a batch were not accepted; the caller must treat the batch as failed
    /// (retrying the whole batch is safe on FIFO queues thanks to dedup ids).
    #[error("queue rejected {failed} of {total} messages: {reason}")]
    PartialFailure {
        failed: usize,
        total: usize,
        reason: String,
    },
    #[error("queue temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("queue backend error: {0}")]
    Backend(String),
}

/// Checks a batch before sending, the same way in both adapters.
pub fn validate_batch(queue: &QueueName, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    for m in messages {
        if m.body.is_empty() || m.body.len() > MAX_BODY_BYTES {
            return Err(QueueError::Invalid(format!(
                "message body must be 1..={MAX_BODY_BYTES} bytes"
            )));
        }
        if queue.is_fifo() && (m.group_id.is_none() || m.dedup_id.is_none()) {
            return Err(QueueError::Invalid(
                "FIFO queue messages need a group id and a dedup id".into(),
            ));
        }
    }
    Ok(())
}

/// The queue port.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Sends the messages (any number; adapters split into batches of [`MAX_BATCH`]).
    /// Ok means every message was accepted.
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError>;

    /// Receives up to `max` (1..=[`MAX_BATCH`]) visible messages, hiding them for
    /// `visibility`. Returns at once with what is there (possibly nothing).
    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes a received message. Acknowledging an already-deleted message is not an error.
    async fn ack(&self, queue: &QueueName, receipt: &str) -> Result<(), QueueError>;

    /// Deletes several received messages, as SQS's `DeleteMessageBatch` does: one result per
    /// receipt, in the same order, each as [`Queue::ack`] would answer it; one failing entry
    /// (a malformed receipt) does not fail the others. An adapter that can delete them in one
    /// write does (the embedded queue: one transaction, one flush, instead of one per message);
    /// this default acknowledges them one by one, so a wrapper that counts or injects faults
    /// per `ack` keeps doing so.
    async fn ack_batch(
        &self,
        queue: &QueueName,
        receipts: &[String],
    ) -> Vec<Result<(), QueueError>> {
        let mut out = Vec::with_capacity(receipts.len());
        for receipt in receipts {
            out.push(self.ack(queue, receipt).await);
        }
        out
    }

    /// Makes a received message visible again after `visibility` (zero: at once). This is how
    /// "retry later" works without a hot loop and without breaking FIFO order.
    async fn change_visibility(
        &self,
        queue: &QueueName,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;

    /// How many messages the queue holds, visible and in flight. SQS's numbers are
    /// approximate (they lag by up to a minute); an empty receive does not prove a standard
    /// queue empty (SQS samples a subset of its servers), this count is how a caller tells.
    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError>;
}

/// The platform's queues, as template.yaml declares them (each with a `-dlq` twin).
pub mod platform {
    use std::time::Duration;

    use super::{QueueName, QueueSpec};

    /// Meta webhook events → inbound-worker (FIFO per tenant + conversation).
    pub const INBOUND: &str = "inbound.fifo";
    /// CRM sync jobs → sync-worker (FIFO per tenant + line + customer).
    pub const SYNC: &str = "sync.fifo";
    /// Operator replies → outbound-worker (FIFO per tenant + conversation).
    pub const OUTBOUND: &str = "outbound.fifo";
    /// Erasure jobs → erasure-worker.
    pub const ERASURE: &str = "erasure";
    /// Export jobs → export-worker.
    pub const EXPORTS: &str = "exports";

    /// Receives before a message is dead-lettered (template.yaml: maxReceiveCount), on the
    /// queues whose workers do not count their own attempts (erasure, exports).
    pub const MAX_RECEIVES: u32 = 5;
    /// The relay queues' (inbound, sync, outbound): their workers count each job's own
    /// attempts and dead-letter it themselves (decisions 0022, 0069). This backstop only has
    /// to outlast that count plus the receives that are no attempt (records skipped behind a
    /// failing head of their group, our own pacing, lost receives, crashes). SQS's upper
    /// limit.
    pub const RELAY_MAX_RECEIVES: u32 = 1000;
    /// Source-queue visibility timeout (template.yaml: ≥ 6× the consumer's timeout).
    pub const VISIBILITY: Duration = Duration::from_secs(180);

    pub fn name(name: &str) -> QueueName {
        QueueName::parse(name).expect("platform queue names are valid")
    }

    /// Receives before the platform queue `name` dead-letters a message.
    pub fn max_receives(name: &str) -> u32 {
        if [INBOUND, SYNC, OUTBOUND].contains(&name) {
            RELAY_MAX_RECEIVES
        } else {
            MAX_RECEIVES
        }
    }

    /// Every platform queue's spec.
    pub fn specs() -> Vec<QueueSpec> {
        [INBOUND, SYNC, OUTBOUND, ERASURE, EXPORTS]
            .into_iter()
            .map(|n| QueueSpec::new(name(n), max_receives(n), VISIBILITY))
            .collect()
    }
}
