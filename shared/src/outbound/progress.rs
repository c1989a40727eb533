//! Which parts of a multi-part message went out already (text then files, or a long text
//! split in pieces), so a retry after a failure part-way sends only the rest.
//!
//! One item per job in the dedupe table, keyed by tenant and the job's effect, holding the
//! provider id of each part sent (empty while not sent), encrypted with the tenant's data key
//! (a wamid holds the recipient's number; decision 0030), kept as long as idempotency records.
//! It is written after each part's send and before the job is acknowledged. The same item
//! holds the part's send attempt, recorded before the call ([`super::attempt`], decision
//! 0055): a redelivery that finds an attempt without an outcome waits for Meta's status of
//! its tag instead of sending again at once (Meta's send endpoints take no idempotency key).
//! And the status such a webhook brought before the send was recorded (decision 0074), and
//! the reason the send worker gave the message up with, kept before it marks the message
//! failed so that a redelivery can still tell the operator why (decision 0078).

use std::sync::Arc;

use crate::clock::now_secs;
use crate::crypto::{CryptoError, Envelope, FieldRef};
use crate::idempotency::RETENTION;
use crate::ids::TenantId;
use crate::store::{AttrValue, Item, Key, StoreError, Table, TableStore, Update, TTL_ATTR};

use super::attempt::{Attempt, EarlyStatus};

const SCOPE: &str = "OUTP";
const PARTS: &str = "parts";
/// Why the send worker gave the message up (encrypted: Meta's error text may quote the
/// customer; decision 0030).
const FAILURE: &str = "fail_why";

/// What a job's progress item holds, from one read.
#[derive(Debug, Default)]
pub struct SendState {
    /// The provider id of each part sent, by part index (`None`: not sent).
    pub parts: Vec<Option<String>>,
    /// The last attempt recorded.
    pub attempt: Option<Attempt>,
    /// A status Meta reported before a send of the job was recorded.
    pub early: Option<EarlyStatus>,
    /// The reason the send worker marked the message failed with (decision 0078).
    pub failure: Option<String>,
}

/// The progress records.
#[derive(Clone)]
pub struct SendProgress {
    pub(super) store: Arc<dyn TableStore>,
    pub(super) envelope: Arc<Envelope>,
}

/// Why progress could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("send progress unreadable")]
    Unreadable,
}

/// The progress record of a send job's `effect` (erasure derives it from a stored message).
pub fn key(tenant: &TenantId, effect: &str) -> Key {
    // The effect is already a SHA-256 in hex; bounded here in case it is not.
    let effect: String = effect
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    Key::new(tenant.sub_partition(&format!("{SCOPE}#{effect}")), SCOPE)
}

impl SendProgress {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        SendProgress { store, envelope }
    }

    /// Provider ids of the parts sent so far, by part index (`None`: not sent). Empty when
    /// nothing was recorded.
    pub async fn load(
        &self,
        tenant: &TenantId,
        effect: &str,
    ) -> Result<Vec<Option<String>>, ProgressError> {
        Ok(self.load_state(tenant, effect).await?.parts)
    }

    /// The parts sent so far (as [`SendProgress::load`]), the last attempt recorded
    /// ([`super::attempt`]), the early status held (decision 0074) and the send worker's own
    /// reason for giving the message up (decision 0078), from one read.
    pub async fn load_state(
        &self,
        tenant: &TenantId,
        effect: &str,
    ) -> Result<SendState, ProgressError> {
        let key = key(tenant, effect);
        let item = self.store.get(Table::Dedupe, &key).await?;
        let (attempt, early, failure) = match &item {
            Some(i) => (
                self.attempt_in(tenant, effect, i).await?,
                self.early_in(tenant, effect, i).await?,
                self.sealed_text(tenant, &key, i, FAILURE).await?,
            ),
            None => (None, None, None),
        };
        Ok(SendState {
            parts: self.parts_in(tenant, &key, item.as_ref()).await?,
            attempt,
            early,
            failure,
        })
    }

    /// The text sealed in `item`'s attribute `name` (of the progress item `key`), if any.
    pub(super) async fn sealed_text(
        &self,
        tenant: &TenantId,
        key: &Key,
        item: &Item,
        name: &str,
    ) -> Result<Option<String>, ProgressError> {
        let Some(blob) = item.get_b(name) else {
            return Ok(None);
        };
        let plain = self
            .envelope
            .decrypt(FieldRef::new(tenant, Table::Dedupe, key, name), blob)
            .await?;
        Ok(Some(
            String::from_utf8(plain).map_err(|_| ProgressError::Unreadable)?,
        ))
    }

    /// Keeps `reason`, the send worker's own reason to give the message up, before the
    /// message is marked failed: a delivery that stops between that move and the queueing of
    /// the operator's note leaves a failed message, and its redelivery queues the note again
    /// from here (decision 0078). An update of that attribute alone (the rest of the item
    /// stays), written on the way to failing only.
    pub async fn record_failure(
        &self,
        tenant: &TenantId,
        effect: &str,
        reason: &str,
    ) -> Result<(), ProgressError> {
        self.set_sealed(tenant, effect, FAILURE, reason.as_bytes())
            .await
    }

    async fn parts_in(
        &self,
        tenant: &TenantId,
        key: &Key,
        item: Option<&Item>,
    ) -> Result<Vec<Option<String>>, ProgressError> {
        Ok(match item.and_then(|i| i.get(PARTS)) {
            Some(AttrValue::B(blob)) => {
                let json = self
                    .envelope
                    .decrypt(FieldRef::new(tenant, Table::Dedupe, key, PARTS), blob)
                    .await?;
                serde_json::from_slice(&json).map_err(|_| ProgressError::Unreadable)?
            }
            // Written before decision 0030: in clear.
            Some(AttrValue::L(list)) => list
                .iter()
                .map(|v| v.as_s().filter(|s| !s.is_empty()).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Records the parts sent so far. An update of those alone: the attempt and an early
    /// status on the item stay (a status may still come for the part just sent, before its
    /// provider id is written; decision 0074).
    pub async fn save(
        &self,
        tenant: &TenantId,
        effect: &str,
        parts: &[Option<String>],
    ) -> Result<(), ProgressError> {
        let json = serde_json::to_vec(parts).map_err(|_| ProgressError::Unreadable)?;
        self.set_sealed(tenant, effect, PARTS, &json).await
    }

    /// Seals `plain` with the tenant's data key into attribute `name` of the progress item
    /// of `effect`, renewing the item's expiry: an update of that attribute alone, so the
    /// rest of the item (parts, attempt, early status, failure reason) stays.
    async fn set_sealed(
        &self,
        tenant: &TenantId,
        effect: &str,
        name: &str,
        plain: &[u8],
    ) -> Result<(), ProgressError> {
        let key = key(tenant, effect);
        let sealed = self
            .envelope
            .encrypt(FieldRef::new(tenant, Table::Dedupe, &key, name), plain)
            .await?;
        let update = Update::new()
            .set(name, sealed)
            .set(TTL_ATTR, now_secs() + RETENTION.as_secs() as i64);
        self.store.update(Table::Dedupe, &key, update, None).await?;
        Ok(())
    }
}
