//! Erased subjects (issue 13): a contact erasure leaves a marker per erased conversation, so
//! work for that person still in flight — a Meta retry of an old delivery (Meta retries for
//! up to 7 days), a dead-letter redrive, a held event released when the tenant resumes — is
//! dropped instead of storing the person again.
//!
//! The marker names no one: its sort key is an HMAC-SHA256 of the conversation id under a
//! per-tenant secret (32 random bytes, stored encrypted with the tenant's data key in the
//! same partition, so it is destroyed with the tenant). It keeps the erasure time: only
//! events from before the erasure are dropped; a message the person writes afterwards is a
//! new conversation. It lives [`MARKER_LIFETIME`]: longer than Meta's 7 days of retries
//! plus a dead-letter queue's 14 days of retention.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ConversationId;
use crate::clock::now_secs;
use crate::crypto::{random_bytes, CryptoError, Envelope, FieldRef};
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, StoreError, Table, TableStore};

/// How long a marker is kept: 7 days of Meta retries + 14 days of DLQ retention + a day.
pub const MARKER_LIFETIME: Duration = Duration::from_secs(22 * 86_400);

/// The tenant sub-partition of the markers and their secret.
pub const PARTITION: &str = "ERASED";
const SECRET_SK: &str = "~secret";
const SECRET: &str = "secret";
const ERASED_AT_MS: &str = "erased_at_ms";

#[derive(Debug, thiserror::Error)]
pub enum ErasedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The tenant's erased-subject markers.
#[derive(Clone)]
pub struct ErasedSubjects {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
}

impl ErasedSubjects {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        ErasedSubjects { store, envelope }
    }

    /// Records that `conversation`'s subject was erased at `erased_at_ms` (kept if an
    /// earlier erasure of the same subject was recorded later).
    pub async fn mark(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        erased_at_ms: i64,
    ) -> Result<(), ErasedError> {
        let key = self.marker_key(tenant, conversation).await?;
        let item = Item::new(&key).with(ERASED_AT_MS, erased_at_ms).with(
            crate::store::TTL_ATTR,
            now_secs() + MARKER_LIFETIME.as_secs() as i64,
        );
        Ok(self.store.put(Table::Data, item, None).await?)
    }

    /// When `conversation`'s subject was erased, if it was within the marker's lifetime.
    pub async fn erased_at(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Option<i64>, ErasedError> {
        // No secret yet: nobody of this tenant was ever erased.
        let Some(secret) = self.secret(tenant, false).await? else {
            return Ok(None);
        };
        let key = marker_key(tenant, &secret, conversation);
        Ok(self
            .store
            .get(Table::Data, &key)
            .await?
            .and_then(|i| i.get_n(ERASED_AT_MS)))
    }

    async fn marker_key(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Key, ErasedError> {
        let secret = self
            .secret(tenant, true)
            .await?
            .expect("created when asked to");
        Ok(marker_key(tenant, &secret, conversation))
    }

    /// The tenant's marker secret; created on first use when `create`.
    async fn secret(
        &self,
        tenant: &TenantId,
        create: bool,
    ) -> Result<Option<Vec<u8>>, ErasedError> {
        let key = Key::new(tenant.sub_partition(PARTITION), SECRET_SK);
        let field = FieldRef::new(tenant, Table::Data, &key, SECRET);
        for _ in 0..2 {
            if let Some(item) = self.store.get(Table::Data, &key).await? {
                let blob = item.get_b(SECRET).ok_or(CryptoError::Undecryptable)?;
                return Ok(Some(self.envelope.decrypt(field, blob).await?));
            }
            if !create {
                return Ok(None);
            }
            let mut secret = vec![0u8; 32];
            random_bytes(&mut secret)?;
            let sealed = self.envelope.encrypt(field, &secret).await?;
            let item = Item::new(&key).with(SECRET, sealed);
            match self
                .store
                .put(Table::Data, item, Some(Condition::NotExists))
                .await
            {
                Ok(()) => return Ok(Some(secret)),
                // Another process created it first: read theirs.
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ErasedError::Store(StoreError::ConditionFailed {
            op_index: None,
        }))
    }
}

fn marker_key(tenant: &TenantId, secret: &[u8], conversation: &ConversationId) -> Key {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(conversation.as_str().as_bytes());
    Key::new(
        tenant.sub_partition(PARTITION),
        format!("m#{}", hex::encode(mac.finalize().into_bytes())),
    )
}
