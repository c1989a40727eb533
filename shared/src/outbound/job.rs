//! The outbound queue's message: one stored message to send to a customer. It carries only
//! keys; the worker reads the message back and decrypts it, so no content sits in the queue.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::conversation::{ConversationId, MessageRef};
use crate::ids::TenantId;
use crate::queue::OutgoingMessage;

/// Version of the [`OutboundJob`] JSON shape.
pub const OUTBOUND_JOB_VERSION: u32 = 1;

/// One message to send to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundJob {
    pub v: u32,
    pub tenant_id: TenantId,
    pub conversation: ConversationId,
    pub message_sk: String,
    /// Unique per message: the queue's deduplication id and the send worker's idempotency
    /// key, so a redelivered job never sends twice.
    pub effect: String,
}

impl OutboundJob {
    pub fn new(tenant_id: TenantId, at: &MessageRef) -> Self {
        let mut h = Sha256::new();
        for part in [tenant_id.as_str(), at.conversation.as_str(), &at.sk] {
            h.update((part.len() as u32).to_be_bytes());
            h.update(part.as_bytes());
        }
        OutboundJob {
            v: OUTBOUND_JOB_VERSION,
            tenant_id,
            conversation: at.conversation.clone(),
            message_sk: at.sk.clone(),
            effect: hex::encode(h.finalize()),
        }
    }

    pub fn message_ref(&self) -> MessageRef {
        MessageRef {
            conversation: self.conversation.clone(),
            sk: self.message_sk.clone(),
        }
    }

    /// Grouped per tenant + conversation: one customer's replies go out in order.
    pub fn to_message(&self) -> OutgoingMessage {
        let body = serde_json::to_string(self).expect("outbound jobs serialise");
        OutgoingMessage::new(body).grouped(
            format!("{}.{}", self.tenant_id.as_str(), self.conversation.as_str()),
            self.effect.clone(),
        )
    }
}
