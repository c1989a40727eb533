//! The export worker: the queue handler that runs requested exports.

use super::model::{ExportError, ExportJob};
use super::service::Exports;

/// The export-worker handler: runs queued exports; a failure is retried by the queue (files
/// already written are kept and skipped), dead-lettered after the receive limit.
#[derive(Clone)]
pub struct ExportWorker {
    exports: Exports,
}

impl ExportWorker {
    pub fn new(exports: Exports) -> Self {
        ExportWorker { exports }
    }
}

#[async_trait::async_trait]
impl crate::consumer::RecordHandler for ExportWorker {
    async fn handle(&self, record: &crate::consumer::QueueRecord) -> crate::consumer::Outcome {
        use crate::consumer::Outcome;
        let job = match ExportJob::parse(&record.body) {
            Ok(job) => job,
            Err(_) => {
                tracing::error!(message_id = %record.message_id, "unreadable export job");
                return Outcome::Failed;
            }
        };
        // The export runs with the tenant's scoped credentials (decision 0037).
        let run = self.exports.run(&job.tenant, &job.export_id);
        match crate::acting::acting_for(&job.tenant, run).await {
            Ok(_) | Err(ExportError::NotFound) => Outcome::Done,
            Err(e) => {
                tracing::warn!(message_id = %record.message_id, error = %e, "export failed; will be retried");
                Outcome::Failed
            }
        }
    }
}
