//! What a relay job (CRM sync, outbound send) works on, loaded the same way by both workers:
//! the tenant's scope, its conversations and the job's conversation. A tenant or conversation
//! that is gone (erased, or expired under its retention) drops the job: there is nothing
//! left to relay, and retrying would not bring it back.

use std::sync::Arc;

use super::{ConversationError, ConversationId, ConversationMeta, Conversations};
use crate::crypto::Envelope;
use crate::ids::TenantId;
use crate::store::TableStore;
use crate::tenant::{TenantDirectory, TenantError, TenantScope};

/// A job's tenant and conversation, both present.
pub struct JobTarget {
    pub scope: TenantScope,
    pub conversations: Conversations,
    pub meta: ConversationMeta,
}

impl JobTarget {
    /// The target of a job of `stage` (for the log); `None` when the tenant or the
    /// conversation is gone.
    pub async fn load<E>(
        tenants: &TenantDirectory,
        store: &Arc<dyn TableStore>,
        envelope: &Arc<Envelope>,
        tenant: &TenantId,
        conversation: &ConversationId,
        stage: &'static str,
    ) -> Result<Option<Self>, E>
    where
        E: From<TenantError> + From<ConversationError>,
    {
        let Some(scope) = tenants.scope(tenant).await? else {
            tracing::info!(%tenant, stage, "tenant gone; job dropped");
            return Ok(None);
        };
        let conversations = Conversations::new(tenant.clone(), store.clone(), envelope.clone());
        let Some(meta) = conversations.meta(conversation).await? else {
            tracing::info!(stage, "conversation gone (erased or expired); job dropped");
            return Ok(None);
        };
        Ok(Some(JobTarget {
            scope,
            conversations,
            meta,
        }))
    }
}
