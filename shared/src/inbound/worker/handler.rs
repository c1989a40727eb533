//! The inbound worker as its queue's handler: opens the sealed job (poison goes to the
//! dead-letter queue at once, a shredded tenant's job is dropped), runs it acting for its
//! tenant with the step's correlation ids, classes its failures for the metrics, and counts
//! each job's failed attempts, dead-lettering it after the last (decision 0069) or once it
//! has killed its worker every time it ran (decision 0081).

use super::*;

#[async_trait]
impl RecordHandler for InboundWorker {
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        match crate::inbound::job::tenant_of(&record.body) {
            // Guarded against a job that kills its worker every time (decision 0081).
            Some(tenant) => {
                let run = self.own.guarded(&tenant, record, self.handle_job(record));
                crate::acting::acting_for(&tenant, run).await
            }
            // Unreadable: failed below without touching any tenant's data.
            None => self.handle_job(record).await,
        }
    }
}

impl InboundWorker {
    async fn handle_job(&self, record: &QueueRecord) -> Outcome {
        let job = match InboundJob::open(&self.envelope, &self.inbound, &record.body).await {
            Ok(job) => job,
            // The tenant's keys are shredded (an erased tenant): nothing left to relay, and
            // nothing readable to keep.
            Err(JobError::Crypto(CryptoError::KeyGone(_))) => {
                tracing::info!(message_id = %record.message_id, "inbound job of a tenant whose keys are gone; dropped");
                return Outcome::Done;
            }
            // Poison (tampered, moved from another queue or job, or not a job): it would fail
            // every time, so it goes to the dead-letter queue now, unchanged.
            Err(
                e @ (JobError::Unreadable(_)
                | JobError::Crypto(CryptoError::Undecryptable | CryptoError::ForeignItem)),
            ) => {
                self.metrics.failure("inbound", "unreadable");
                tracing::error!(message_id = %record.message_id, error = %e, "unreadable inbound job");
                let tenant = crate::inbound::job::tenant_of(&record.body);
                return self.own.dead_letter(tenant.as_ref(), record).await;
            }
            // The vault or the keys table is unavailable: retried.
            Err(e) => {
                self.metrics.failure("inbound", "keys_unavailable");
                tracing::warn!(message_id = %record.message_id, error = %e, "inbound job could not be opened; will be retried");
                return match crate::inbound::job::tenant_of(&record.body) {
                    Some(tenant) => self.attempt_failed(&tenant, record).await,
                    None => Outcome::Failed,
                };
            }
        };
        let received_ms = InboundJob::received_ms(&record.body);
        // The step's correlation ids on every line it logs (decision 0038); the conversation
        // and our message id are recorded once known.
        let span = tracing::info_span!(
            "inbound",
            tenant = %job.tenant_id,
            queue_message = %record.message_id,
            provider_ref = tracing::field::Empty,
            conversation = tracing::field::Empty,
            message = tracing::field::Empty,
        );
        if let Some(id) = job.event.message_id() {
            span.record("provider_ref", crate::logging::provider_ref(id));
        }
        match self
            .process_received(&job, received_ms)
            .instrument(span.clone())
            .await
        {
            Ok(outcome) => {
                if outcome.is_done() {
                    self.own.succeeded(&job.tenant_id, record).await;
                }
                outcome
            }
            Err(e) => {
                let class = match &e {
                    InboundError::Queue(_) => "queue",
                    InboundError::Count(_) => "usage",
                    InboundError::Tenant(_) => "tenant",
                    InboundError::LineStatus(_) => "bitrix24",
                    // Answered as a wait by `process_received`; never seen here.
                    InboundError::SubjectBeingErased => "erasure",
                    InboundError::Conversation(_)
                    | InboundError::Store(_)
                    | InboundError::Attempt(_) => "store",
                };
                self.metrics.failure("inbound", class);
                // In the job's span: which event failed is what tracing a loss starts from.
                // Entered only around the line itself and attached to the await below, never
                // held across it: a span left entered while the job waits stays the current
                // span of the thread, and the other jobs it runs meanwhile would log under
                // this job's ids (another tenant's, often).
                span.in_scope(|| {
                    tracing::warn!(
                        message_id = %record.message_id,
                        receive_count = record.receive_count,
                        error = %e,
                        "inbound job failed"
                    )
                });
                self.attempt_failed(&job.tenant_id, record)
                    .instrument(span)
                    .await
            }
        }
    }

    /// Counts a failed attempt: retried after the visibility timeout, or dead-lettered after
    /// the last.
    async fn attempt_failed(&self, tenant: &TenantId, record: &QueueRecord) -> Outcome {
        match self.own.failed(tenant, record).await {
            Failure::Retry { .. } | Failure::Uncounted => Outcome::Failed,
            Failure::Exhausted { attempts } => {
                tracing::error!(message_id = %record.message_id, attempts, "inbound job exhausted its attempts");
                self.own.dead_letter(Some(tenant), record).await
            }
        }
    }
}
