//! What a relay job (CRM sync, outbound send) works on, loaded the same way by both workers:
//! the tenant's scope, its conversations and the job's conversation. A tenant or conversation
//! that is gone (erased, or expired under its retention) drops the job: there is nothing
//! left to relay, and retrying would not bring it back. So does a conversation whose subject
//! was erased after it began (decision 0029): between the erasure's marker and the deletion
//! of the conversation, no post to Bitrix24 and no send to the person starts.

use std::sync::Arc;

use super::erased::ErasedSubjects;
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
        // One read of the profile and channels for the whole job (decision 0058).
        let Some(scope) = tenants.scope_for_invocation(tenant).await? else {
            tracing::info!(%tenant, stage, "tenant gone; job dropped");
            return Ok(None);
        };
        let conversations = Conversations::new(tenant.clone(), store.clone(), envelope.clone());
        let Some(meta) = conversations.meta(conversation).await? else {
            tracing::info!(stage, "conversation gone (erased or expired); job dropped");
            return Ok(None);
        };
        // A conversation the person began again after the erasure's cut is a new one:
        // relayed (decision 0057).
        if ErasedSubjects::new(store.clone())
            .covers(tenant, conversation, meta.created_at_ms)
            .await
            .map_err(ConversationError::from)?
        {
            tracing::info!(stage, "work of an erased subject dropped");
            return Ok(None);
        }
        Ok(Some(JobTarget {
            scope,
            conversations,
            meta,
        }))
    }
}
