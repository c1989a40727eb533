//! The `failed` status of a message the portal's message provider asked us to send and we
//! refused without storing it, because its person's erasure is under way (decision 0135).
//!
//! Bitrix24 reads nothing of the handler's answer: the portal learns what became of a
//! robot's message only from `messageservice.message.status.update`. A refusal for good is
//! otherwise kept as a failed message whose status job tells the portal (decision 0066); a
//! person being erased cannot have a message kept, so this job carries the portal's own
//! message id instead and loads no conversation. It is staged like every other operation
//! (the portal's pace, its retries, its parking), under [`crate::crm_sync::job::PROVIDER_OPS`]
//! rather than the person's conversation, whose staged operations the erasure deletes.

use super::{SyncError, SyncWorker};
use crate::crm_sync::outbox::{CrmOp, Outbox};
use crate::crm_sync::SyncJob;
use crate::portal::providers;
use crate::store::Key;
use crate::tenant::TenantScope;

impl SyncWorker {
    /// Stages the status and waits for its post; returns the key staged, to be dropped once
    /// the job is recorded done.
    pub(super) async fn post_provider_failed(
        &self,
        job: &SyncJob,
        scope: &TenantScope,
        provider_message_id: &str,
    ) -> Result<Vec<Key>, SyncError> {
        let Some((code, message_id)) = providers::provider_ref(provider_message_id) else {
            // Only the message provider's handler queues this job, with an id it built.
            tracing::error!("provider status job without a provider message id; dropped");
            return Ok(Vec::new());
        };
        let op = CrmOp {
            method: providers::STATUS_UPDATE.to_owned(),
            params: providers::status_params(code, message_id, "failed"),
            lookup: None,
            files: Vec::new(),
        };
        let key = Outbox::key(&job.tenant_id, job.outbox_scope(), &job.effect);
        let mut heard = self.watch_outcome(&key);
        let state = self
            .outbox
            .stage(&job.tenant_id, &key, &op, (self.clock)())
            .await?;
        if self
            .outcome_of(scope, &key, &mut heard, state)
            .await?
            .is_some()
        {
            tracing::info!(method = %op.method, "posted to Bitrix24");
        }
        Ok(vec![key])
    }
}
