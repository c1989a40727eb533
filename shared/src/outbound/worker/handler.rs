//! The send worker as its queue's handler: reads the job (poison goes to the dead-letter
//! queue at once), and runs it in its span with the step's correlation ids, acting for its
//! tenant, guarded against a job that kills its worker (decision 0081).

use async_trait::async_trait;
use tracing::Instrument;

use super::OutboundWorker;
use crate::acting::acting_for;
use crate::consumer::{Outcome, QueueRecord, RecordHandler};
use crate::outbound::OutboundJob;

#[async_trait]
impl RecordHandler for OutboundWorker {
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        match serde_json::from_str::<OutboundJob>(&record.body) {
            Ok(job) => {
                // The step's correlation ids on every line it logs (decision 0038).
                let span = tracing::info_span!(
                    "outbound",
                    tenant = %job.tenant_id,
                    conversation = %job.conversation,
                    message = %job.message_sk,
                    crm_chat = tracing::field::Empty,
                    crm_message = tracing::field::Empty,
                    provider_ref = tracing::field::Empty,
                );
                // The job's work runs with the tenant's scoped credentials (decision 0037).
                // Guarded against a job that kills its worker every time (decision 0081).
                let run = self
                    .own
                    .guarded(&job.tenant_id, record, self.process(&job, record));
                acting_for(&job.tenant_id.clone(), run)
                    .instrument(span)
                    .await
            }
            Err(e) => {
                // Poison: it would fail every time, so it goes to the dead-letter queue now.
                tracing::error!(
                    message_id = %record.message_id,
                    line = e.line(),
                    column = e.column(),
                    "unreadable outbound job"
                );
                self.own.dead_letter(None, record).await
            }
        }
    }
}
