//! Jobs that count their own attempts and dead-letter themselves (decisions 0022 and 0069).
//!
//! A queue's receive count is not a count of attempts. SQS counts a receive when:
//! - a record is handed back unprocessed because an earlier record of its FIFO group failed
//!   in the same batch ([`crate::consumer::Outcome::Skipped`]);
//! - a send is put off by our own pacing;
//! - a receive's answer is lost;
//! - the instance dies with the batch in flight.
//!
//! A job behind a struggling head of its group could reach the dead-letter queue without a
//! single failed attempt of its own. The fault soak found exactly that: a send that never
//! failed was dead-lettered after two crashes, a throttle and two lost receives (issue 17).
//!
//! So the relay workers count failed attempts themselves, in the dedupe table under the
//! tenant's prefix, keyed by the queue message id (the same across its receives, new after a
//! redrive), and move a job to its dead-letter queue themselves once [`MAX_ATTEMPTS`] have
//! failed. The queue's own redrive stays as a backstop (`maxReceiveCount` 1000).
//!
//! A job that kills its worker never returns a failure to count: [`crate::run_guard`] bounds
//! it (decision 0081).

use std::future::Future;
use std::sync::Arc;

use crate::consumer::{Outcome, QueueRecord};
use crate::idempotency::Attempts;
use crate::ids::TenantId;
use crate::metrics::Metrics;
use crate::queue::{platform, OutgoingMessage, Queue, QueueError, QueueName};
use crate::run_guard::RunGuard;
use crate::store::TableStore;

/// Failed attempts before a relay job is dead-lettered: the limit the queues' receive count
/// used to give.
pub const MAX_ATTEMPTS: u32 = 5;

/// What counting a failed attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the job has attempts left. `attempts` includes this one.
    Retry { attempts: u32 },
    /// Counted, and it was the last: the caller dead-letters the job.
    Exhausted { attempts: u32 },
    /// The count could not be written (the store is down): retry without counting, as the
    /// queue's backstop still bounds the receives.
    Uncounted,
}

/// A relay worker's own attempt count and dead-letter move, for jobs of the platform queue
/// `queue`.
#[derive(Clone)]
pub struct OwnAttempts {
    attempts: Attempts,
    guard: RunGuard,
    queue: &'static str,
    limit: u32,
    dead_letter: Option<Arc<dyn Queue>>,
    metrics: Metrics,
}

impl OwnAttempts {
    /// `scope` and `runs_scope` key the failed attempts and the unreturned runs apart from
    /// other kinds in the dedupe table.
    pub fn new(
        store: Arc<dyn TableStore>,
        queue: &'static str,
        scope: &'static str,
        runs_scope: &'static str,
    ) -> Self {
        OwnAttempts {
            attempts: Attempts::new(store.clone(), scope),
            guard: RunGuard::new(store, queue, runs_scope),
            queue,
            limit: MAX_ATTEMPTS,
            dead_letter: None,
            metrics: Metrics::off(),
        }
    }

    /// Where exhausted jobs go: the queue's dead-letter twin, through `queue`. Without it an
    /// exhausted job is left to the queue's backstop.
    pub fn with_dead_letter_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.dead_letter = Some(queue);
        self
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.guard = self.guard.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit.max(1);
        self
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one failed attempt of `record`'s job for `tenant`.
    pub async fn failed(&self, tenant: &TenantId, record: &QueueRecord) -> Failure {
        match self
            .attempts
            .failed(tenant, &record.message_id, crate::clock::now_millis())
            .await
        {
            Ok(a) if a.count >= self.limit => Failure::Exhausted { attempts: a.count },
            Ok(a) => Failure::Retry { attempts: a.count },
            Err(e) => {
                tracing::warn!(error = %e, queue = self.queue, "could not count a job's attempt");
                Failure::Uncounted
            }
        }
    }

    /// The job succeeded: its failed attempts, if any, are forgotten. A first receive cannot
    /// have failed before, so it is spared the write.
    pub async fn succeeded(&self, tenant: &TenantId, record: &QueueRecord) {
        if record.receive_count > 1 {
            if let Err(e) = self.attempts.clear(tenant, &record.message_id).await {
                tracing::debug!(error = %e, queue = self.queue, "could not clear a job's attempts");
            }
        }
    }

    /// Runs `run`, `record`'s job for `tenant`, guarded against a job that kills its worker
    /// (decision 0081): such a job is moved to the dead-letter queue without running.
    pub async fn guarded(
        &self,
        tenant: &TenantId,
        record: &QueueRecord,
        run: impl Future<Output = Outcome>,
    ) -> Outcome {
        self.guard
            .guarded(tenant, record, run, || {
                self.dead_letter(Some(tenant), record)
            })
            .await
    }

    /// Moves `record` unchanged to its queue's dead-letter queue: `Done` once moved (and its
    /// count forgotten), `Failed` when it could not be (the queue's backstop then moves it).
    pub async fn dead_letter(&self, tenant: Option<&TenantId>, record: &QueueRecord) -> Outcome {
        let Some(queue) = &self.dead_letter else {
            return Outcome::Failed;
        };
        match move_to_dead_letter(queue.as_ref(), self.queue, record).await {
            Ok(dlq) => {
                self.metrics.dlq_arrival(self.queue);
                tracing::warn!(message_id = %record.message_id, dead_letter_queue = %dlq, "job dead-lettered by its worker");
                if let Some(tenant) = tenant {
                    if let Err(e) = self.attempts.clear(tenant, &record.message_id).await {
                        tracing::debug!(error = %e, "could not clear a dead-lettered job's attempts");
                    }
                }
                Outcome::Done
            }
            Err(e) => {
                tracing::error!(error = %e, queue = self.queue, "could not dead-letter a job");
                Outcome::Failed
            }
        }
    }
}

/// Sends `record`'s body unchanged to the dead-letter queue of the platform queue `source`,
/// in its own message group, deduplicated by its message id (so a retried move is one
/// message). Returns the dead-letter queue's name.
pub async fn move_to_dead_letter(
    queue: &dyn Queue,
    source: &str,
    record: &QueueRecord,
) -> Result<QueueName, QueueError> {
    let dlq = platform::name(source).dead_letter();
    let group = record
        .group_id
        .clone()
        .unwrap_or_else(|| record.message_id.clone());
    let message = OutgoingMessage::new(record.body.clone()).grouped(group, &record.message_id);
    queue.send_batch(&dlq, vec![message]).await?;
    Ok(dlq)
}
