//! The sync queue's message body.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::conversation::{ConversationId, MessageRef, MessageStatus};
use crate::ids::TenantId;
use crate::queue::OutgoingMessage;

/// Where provider messages' `failed` statuses are staged in a portal's outbox
/// ([`SyncJob::outbox_scope`]); conversation ids are `c_` and hex digits, never this.
pub const PROVIDER_OPS: &str = "providers";

/// Version of the [`SyncJob`] JSON shape.
pub const SYNC_JOB_VERSION: u32 = 1;

/// One thing to tell the tenant's Bitrix24 portal about one conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    pub v: u32,
    pub tenant_id: TenantId,
    pub conversation: ConversationId,
    pub action: SyncAction,
    /// Unique per effect: the queue's deduplication id and the sync worker's idempotency key.
    pub effect: String,
    /// When the webhook that brought the message reached us (Unix ms), for the
    /// webhook-to-Bitrix24 latency metric (decision 0038). Not part of the effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncAction {
    /// Post a stored message (from the customer, or an echo of the business app) to the chat.
    PushMessage { message_sk: String },
    /// A delivery status of an outbound message moved forward.
    Status {
        message_sk: String,
        status: MessageStatus,
        /// Why it failed (provider error codes and titles; never message content).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// The customer reacted to a message (`emoji: None`: took the reaction back).
    Reaction {
        message_sk: String,
        emoji: Option<String>,
    },
    /// A message was edited: update it in the chat.
    Edited { message_sk: String },
    /// A message was deleted (revoked, unsent): remove it from the chat.
    Deleted { message_sk: String },
    /// A message the portal's message provider asked us to send, refused without being
    /// stored (its person's erasure is under way, decision 0135): the portal's message is
    /// told `failed`. The job names only the portal's provider message
    /// (`api:ms:<code>:<message id>`), nothing of the person.
    ProviderFailed { provider_message_id: String },
}

impl SyncAction {
    fn tag(&self) -> (&'static str, &str, &str) {
        match self {
            SyncAction::PushMessage { message_sk } => ("push", message_sk, ""),
            SyncAction::Status {
                message_sk, status, ..
            } => ("status", message_sk, status.code()),
            SyncAction::Reaction { message_sk, emoji } => {
                ("reaction", message_sk, emoji.as_deref().unwrap_or("-"))
            }
            SyncAction::Edited { message_sk } => ("edited", message_sk, ""),
            SyncAction::Deleted { message_sk } => ("deleted", message_sk, ""),
            SyncAction::ProviderFailed {
                provider_message_id,
            } => ("provider_failed", provider_message_id, ""),
        }
    }
}

impl SyncJob {
    /// `occurrence` tells apart effects that repeat on purpose (a reaction set, removed and
    /// set again): the provider event id that caused the job.
    pub fn new(
        tenant_id: TenantId,
        conversation: ConversationId,
        action: SyncAction,
        occurrence: &str,
    ) -> Self {
        let effect = effect_key(&tenant_id, &conversation, &action, occurrence);
        SyncJob {
            v: SYNC_JOB_VERSION,
            tenant_id,
            conversation,
            action,
            effect,
            received_ms: None,
        }
    }

    /// The job carrying `status` of the message at `at` (with Meta's or our reason when it
    /// failed) to Bitrix24, its effect owed to `occurrence`.
    pub fn status(
        tenant_id: TenantId,
        at: &MessageRef,
        status: MessageStatus,
        failure: Option<String>,
        occurrence: &str,
    ) -> Self {
        let action = SyncAction::Status {
            message_sk: at.sk.clone(),
            status,
            failure,
        };
        SyncJob::new(tenant_id, at.conversation.clone(), action, occurrence)
    }

    /// The `failed` status of the provider message `provider_message_id`, refused without
    /// being stored (decision 0135), queued in the group of the person's conversation.
    pub fn provider_failed(
        tenant_id: TenantId,
        conversation: ConversationId,
        provider_message_id: String,
    ) -> Self {
        let action = SyncAction::ProviderFailed {
            provider_message_id,
        };
        SyncJob::new(tenant_id, conversation, action, "refused")
    }

    /// Our id of the stored message the job is about (its sort key, no personal data):
    /// `None` for a job about no stored message.
    pub fn message_sk(&self) -> Option<&str> {
        match &self.action {
            SyncAction::PushMessage { message_sk }
            | SyncAction::Status { message_sk, .. }
            | SyncAction::Reaction { message_sk, .. }
            | SyncAction::Edited { message_sk }
            | SyncAction::Deleted { message_sk } => Some(message_sk),
            SyncAction::ProviderFailed { .. } => None,
        }
    }

    /// What the job's operation is staged under in the portal's outbox, in the place of a
    /// conversation: the job's conversation, or for a provider message's `failed` status
    /// [`PROVIDER_OPS`], out of the reach of the person's erasure, which deletes their
    /// conversation's staged operations while it runs (decision 0135).
    pub fn outbox_scope(&self) -> &str {
        match &self.action {
            SyncAction::ProviderFailed { .. } => PROVIDER_OPS,
            _ => self.conversation.as_str(),
        }
    }

    /// The job, with the time its webhook reached us.
    pub fn received_at(mut self, received_ms: Option<i64>) -> Self {
        self.received_ms = received_ms;
        self
    }

    /// The queue message: grouped per tenant + conversation (one customer on one line), so
    /// a conversation's jobs run in order and never concurrently (concurrent first messages
    /// would otherwise open two Bitrix24 chats).
    pub fn to_message(&self) -> OutgoingMessage {
        let body = serde_json::to_string(self).expect("sync jobs serialise");
        OutgoingMessage::new(body).grouped(
            format!("{}.{}", self.tenant_id.as_str(), self.conversation.as_str()),
            self.effect.clone(),
        )
    }
}

fn effect_key(
    tenant: &TenantId,
    conversation: &ConversationId,
    action: &SyncAction,
    occurrence: &str,
) -> String {
    let (kind, sk, detail) = action.tag();
    let mut h = Sha256::new();
    for part in [
        tenant.as_str(),
        conversation.as_str(),
        kind,
        sk,
        detail,
        occurrence,
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}
