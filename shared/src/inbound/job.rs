//! The inbound queue's message: one Meta webhook event, routed to its tenant by the intake.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::TenantId;
use crate::meta::InboundEvent;
use crate::queue::OutgoingMessage;

/// Version of the [`InboundJob`] JSON shape.
pub const INBOUND_JOB_VERSION: u32 = 1;

/// The inbound queue's message body: one event, routed to its tenant by the webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundJob {
    pub v: u32,
    pub tenant_id: TenantId,
    pub event: InboundEvent,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl InboundJob {
    pub fn new(tenant_id: TenantId, event: InboundEvent) -> Self {
        InboundJob {
            v: INBOUND_JOB_VERSION,
            tenant_id,
            event,
        }
    }

    /// The event's idempotency key: account plus the provider's event id (unique per effect
    /// and stable across Meta's redeliveries).
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.event.account.channel().code(),
            self.event.account.id(),
            self.event.provider_event_id
        )
    }

    /// The queue message: grouped per tenant + account + customer, so one conversation's
    /// events are processed in order; deduplicated by the idempotency key (a redelivered
    /// webhook within the queue's 5-minute window is not even enqueued twice).
    pub fn to_message(&self) -> Result<OutgoingMessage, serde_json::Error> {
        let body = serde_json::to_string(self)?;
        let customer = self
            .event
            .customer()
            .map(|c| c.id.key())
            .unwrap_or_default();
        let group = digest(&[
            self.tenant_id.as_str(),
            self.event.account.channel().code(),
            self.event.account.id(),
            &customer,
        ]);
        let dedup = digest(&[self.tenant_id.as_str(), &self.idempotency_key()]);
        Ok(OutgoingMessage::new(body).grouped(&group[..40], dedup))
    }
}
