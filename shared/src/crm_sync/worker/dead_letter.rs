//! Jobs that failed for good: to the sync dead-letter queue, their staged operation dropped.

use super::SyncWorker;
use crate::consumer::{Outcome, QueueRecord};
use crate::crm_sync::outbox::Outbox;
use crate::crm_sync::parking::Released;
use crate::crm_sync::SyncJob;
use crate::queue::platform;

impl SyncWorker {
    /// Moves a job that failed for good to the dead-letter queue, then drops its staged
    /// operation (a redrive stages it afresh) and settles its released parking.
    pub(super) async fn dead_letter_job(
        &self,
        job: &SyncJob,
        record: &QueueRecord,
        released: Option<&Released>,
    ) -> Outcome {
        let outcome = self.move_to_dead_letter(record).await;
        if outcome.is_done() {
            let key = Outbox::key(&job.tenant_id, job.outbox_scope(), &job.effect);
            if let Err(e) = self.outbox.remove(&key).await {
                tracing::warn!(error = %e, "could not drop a dead-lettered job's operation");
            }
            if let (Some(p), Some(r)) = (&self.parking, released) {
                p.settle(r).await;
            }
        }
        outcome
    }

    /// Sends the record to the sync dead-letter queue, then lets it be acknowledged. Without a
    /// dead-letter queue (or when the send fails) the record fails back to the queue, whose own
    /// redrive is the last resort.
    pub(super) async fn move_to_dead_letter(&self, record: &QueueRecord) -> Outcome {
        let Some(queue) = &self.dead_letter else {
            return Outcome::Failed;
        };
        match crate::own_attempts::move_to_dead_letter(queue.as_ref(), platform::SYNC, record).await
        {
            Ok(dlq) => {
                self.metrics.dlq_arrival(platform::SYNC);
                tracing::warn!(message_id = %record.message_id, dead_letter_queue = %dlq, "sync job dead-lettered");
                if let Ok(job) = serde_json::from_str::<SyncJob>(&record.body) {
                    if let Err(e) = self.attempts.clear(&job.tenant_id, &job.effect).await {
                        tracing::warn!(error = %e, "could not clear a sync job's attempts");
                    }
                }
                Outcome::Done
            }
            Err(e) => {
                tracing::error!(error = %e, "could not dead-letter a sync job");
                Outcome::Failed
            }
        }
    }
}
