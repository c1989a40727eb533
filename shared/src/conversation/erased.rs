//! Erased subjects (issue 13): a contact erasure leaves a marker per erased conversation, so
//! work for that person still in flight — a Meta retry of an old delivery (Meta retries for
//! up to 7 days), a dead-letter redrive, a held event released when the tenant resumes — is
//! dropped instead of storing the person again.
//!
//! The marker names no one: it is keyed by the conversation id, itself a keyed hash under
//! the tenant's key (decision 0033), so it cannot be tied to a phone number and dies with
//! the tenant's keys. It keeps the erasure time: only events from before the erasure are
//! dropped; a message the person writes afterwards is a new conversation. It lives
//! [`MARKER_LIFETIME`]: longer than Meta's 7 days of retries plus a dead-letter queue's 14
//! days of retention.

use std::sync::Arc;
use std::time::Duration;

use super::ConversationId;
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{Item, Key, StoreError, Table, TableStore};

/// How long a marker is kept: 7 days of Meta retries + 14 days of DLQ retention + a day.
pub const MARKER_LIFETIME: Duration = Duration::from_secs(22 * 86_400);

/// The tenant sub-partition of the markers.
pub const PARTITION: &str = "ERASED";
const ERASED_AT_MS: &str = "erased_at_ms";

/// The tenant's erased-subject markers.
#[derive(Clone)]
pub struct ErasedSubjects {
    store: Arc<dyn TableStore>,
}

impl ErasedSubjects {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        ErasedSubjects { store }
    }

    /// Records that `conversation`'s subject was erased at `erased_at_ms`.
    pub async fn mark(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        erased_at_ms: i64,
    ) -> Result<(), StoreError> {
        let item = Item::new(&marker_key(tenant, conversation))
            .with(ERASED_AT_MS, erased_at_ms)
            .with(
                crate::store::TTL_ATTR,
                now_secs() + MARKER_LIFETIME.as_secs() as i64,
            );
        self.store.put(Table::Data, item, None).await
    }

    /// When `conversation`'s subject was erased, if it was within the marker's lifetime.
    pub async fn erased_at(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .store
            .get(Table::Data, &marker_key(tenant, conversation))
            .await?
            .and_then(|i| i.get_n(ERASED_AT_MS)))
    }
}

fn marker_key(tenant: &TenantId, conversation: &ConversationId) -> Key {
    Key::new(
        tenant.sub_partition(PARTITION),
        format!("m#{}", conversation.as_str()),
    )
}
