//! Asking for an export: the record (audited) and the job on the exports queue, as one step.
//! The admin API and the console both ask through this, so neither can record an export that
//! is never run.

use std::sync::Arc;

use super::model::{ExportError, ExportJob, ExportRecord, ExportScope};
use super::service::Exports;
use crate::ids::TenantId;
use crate::queue::{OutgoingMessage, Queue, QueueName};

/// Records export requests and queues their jobs.
#[derive(Clone)]
pub struct ExportRequests {
    pub exports: Exports,
    queue: Arc<dyn Queue>,
    queue_name: QueueName,
}

impl ExportRequests {
    pub fn new(exports: Exports, queue: Arc<dyn Queue>, queue_name: QueueName) -> Self {
        ExportRequests {
            exports,
            queue,
            queue_name,
        }
    }

    /// Records the request, queues its job and answers the record as it now stands. A queue
    /// that cannot be reached is [`ExportError::Queue`]: the record stays `requested` (and
    /// expires with the others), the caller is told to retry.
    pub async fn request(
        &self,
        tenant: &TenantId,
        scope: ExportScope,
        actor: &str,
    ) -> Result<ExportRecord, ExportError> {
        let id = self.exports.request(tenant, scope, actor).await?;
        let job = ExportJob {
            tenant: tenant.clone(),
            export_id: id.clone(),
        };
        self.queue
            .send_batch(&self.queue_name, vec![OutgoingMessage::new(job.to_body())])
            .await
            .map_err(|e| ExportError::Queue(e.to_string()))?;
        self.exports
            .get(tenant, &id)
            .await?
            .ok_or(ExportError::NotFound)
    }
}
