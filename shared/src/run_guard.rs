//! Jobs that kill their worker (decision 0081).
//!
//! A job that kills its worker every time it runs (it runs the instance out of memory or
//! time, a panic aborts the invocation, a dependency hangs past the function's timeout)
//! never returns a failure for the worker to count. Only the queue's backstop
//! (`maxReceiveCount` 1000) stopped it, while its FIFO group waited behind it.
//!
//! Once a job has been received more than [`TRUSTED_RECEIVES`] times, each run is counted
//! before it starts and taken back when it returns, whatever it returned: the count is of
//! runs that died with their instance. A job with more than [`UNRETURNED_LIMIT`] such runs
//! is moved to its dead-letter queue at its next receive without running again. A job
//! received fewer times, nearly every job, costs nothing more.

use std::future::Future;
use std::sync::Arc;

use crate::consumer::{Outcome, QueueRecord};
use crate::idempotency::Attempts;
use crate::ids::TenantId;
use crate::metrics::Metrics;
use crate::store::TableStore;

/// Receives of a job that are not guarded against a run that never returns: up to here a
/// receive may well have been no run at all (skipped behind its group's head, paced, lost,
/// or in an instance that died on another job), and guarding every run would cost two
/// writes per job.
pub const TRUSTED_RECEIVES: u32 = 10;

/// Guarded runs that never returned before the job is taken for one that kills its worker.
pub const UNRETURNED_LIMIT: u32 = 3;

/// Counts the guarded runs of a platform queue's jobs that never returned.
#[derive(Clone)]
pub struct RunGuard {
    /// Guarded runs that started and have not returned, per job (by queue message id, under
    /// the tenant's prefix, as the attempts).
    unreturned: Attempts,
    queue: &'static str,
    metrics: Metrics,
}

impl RunGuard {
    /// `scope` keys the records apart from other kinds in the dedupe table.
    pub fn new(store: Arc<dyn TableStore>, queue: &'static str, scope: &'static str) -> Self {
        RunGuard {
            unreturned: Attempts::new(store, scope),
            queue,
            metrics: Metrics::off(),
        }
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs `run`, `record`'s job for `tenant`, guarded against a job that kills its worker;
    /// such a job goes through `dead_letter` instead, without running.
    ///
    /// Past [`TRUSTED_RECEIVES`] receives the run is counted before it starts and taken back
    /// once it returns. Taken back, not cleared: a run that returns at once (another delivery
    /// still holds the job's key after the one that died, or its pace) must not hide the
    /// deaths before it. A `Done` clears the count. When the count cannot be written (the
    /// store is down) the job runs unguarded: the queue's backstop still bounds it.
    pub async fn guarded<D, F>(
        &self,
        tenant: &TenantId,
        record: &QueueRecord,
        run: impl Future<Output = Outcome>,
        dead_letter: D,
    ) -> Outcome
    where
        D: FnOnce() -> F,
        F: Future<Output = Outcome>,
    {
        if record.receive_count <= TRUSTED_RECEIVES {
            return run.await;
        }
        let now = crate::clock::now_millis();
        let guarded = match self
            .unreturned
            .failed(tenant, &record.message_id, now)
            .await
        {
            // This run is counted too: the ones before it never returned.
            Ok(runs) if runs.count > UNRETURNED_LIMIT => {
                // The stage as the workers name it in their own failures: `inbound`, ...
                let stage = self.queue.trim_end_matches(".fifo");
                self.metrics.failure(stage, "killed_its_worker");
                tracing::error!(
                    message_id = %record.message_id,
                    receive_count = record.receive_count,
                    unreturned_runs = runs.count - 1,
                    queue = self.queue,
                    "job killed its worker every time it ran; dead-lettered without running"
                );
                let moved = dead_letter().await;
                if moved.is_done() {
                    self.forget(tenant, record).await;
                }
                return moved;
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, queue = self.queue, "could not record a job's run; it runs unguarded");
                false
            }
        };
        let outcome = run.await;
        if guarded {
            if outcome.is_done() {
                // Finished (or moved): nothing of the job is left to guard.
                self.forget(tenant, record).await;
            } else if let Err(e) = self.unreturned.uncount(tenant, &record.message_id).await {
                tracing::warn!(error = %e, queue = self.queue, "could not take back a job's returned run");
            }
        }
        outcome
    }

    async fn forget(&self, tenant: &TenantId, record: &QueueRecord) {
        if let Err(e) = self.unreturned.clear(tenant, &record.message_id).await {
            tracing::warn!(error = %e, queue = self.queue, "could not clear a job's runs");
        }
    }
}
