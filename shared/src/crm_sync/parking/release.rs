//! Sending parked jobs back to the sync queue, settling released copies, and removing a
//! portal's index entry once its work is delivered.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    conversation_of, index_key, is_released, partition, ParkState, Parking, ParkingError, Released,
};
use super::{GROUP, MARKER, PARKS, PAYLOAD, RELEASED_AT, STATE};
use crate::clock::now_millis;
use crate::crypto::{CryptoError, FieldRef};
use crate::ids::TenantId;
use crate::queue::{OutgoingMessage, MAX_BATCH};
use crate::store::{Condition, Item, Key, Query, StoreError, Table, Update, SK};

impl Parking {
    /// The queue message that releases a parked item: its body with the marker, its group,
    /// a fresh deduplication id (the original one may still be within the queue's window).
    async fn open(&self, tenant: &TenantId, item: &Item) -> Result<OutgoingMessage, ParkingError> {
        let key = item
            .key()
            .ok_or_else(|| ParkingError::Unreadable("parked item without a key".into()))?;
        let blob = item
            .get_b(PAYLOAD)
            .ok_or(ParkingError::Crypto(CryptoError::Undecryptable))?;
        let plain = self
            .envelope
            .decrypt(FieldRef::new(tenant, Table::Data, &key, PAYLOAD), blob)
            .await?;
        let mut body: Value = serde_json::from_slice(&plain)
            .map_err(|e| ParkingError::Unreadable(format!("{}: {e}", key.sk)))?;
        let Some(o) = body.as_object_mut() else {
            return Err(ParkingError::Unreadable(format!(
                "{}: not an object",
                key.sk
            )));
        };
        o.insert(MARKER.into(), Value::String(key.sk.clone()));
        let body =
            serde_json::to_string(&body).map_err(|e| ParkingError::Unreadable(e.to_string()))?;
        let mut h = Sha256::new();
        h.update(key.sk.as_bytes());
        h.update(now_millis().to_be_bytes());
        let dedup = format!("parked-{}", &hex::encode(h.finalize())[..48]);
        let group = item.get_s(GROUP).unwrap_or_default().to_owned();
        Ok(OutgoingMessage::new(body).grouped(group, dedup))
    }

    /// Sends the conversation's parked items back to the sync queue, in order, if none of
    /// them is there already (a copy is settled first, so the queue never holds them out
    /// of order). Each is marked released only once the queue accepted it: a crash in
    /// between sends it again later, which the worker's idempotency makes harmless.
    pub async fn release_conversation(
        &self,
        tenant: &TenantId,
        conversation: &str,
    ) -> Result<usize, ParkingError> {
        let items = self.items(tenant, conversation, None).await?;
        let now = now_millis();
        if items.is_empty() || items.iter().any(|i| is_released(i, now)) {
            return Ok(0);
        }
        let mut sent = 0;
        for chunk in items.chunks(MAX_BATCH) {
            let mut messages = Vec::with_capacity(chunk.len());
            let mut keys = Vec::with_capacity(chunk.len());
            for item in chunk {
                let Some(key) = item.key() else { continue };
                match self.open(tenant, item).await {
                    Ok(message) => {
                        messages.push(message);
                        keys.push(key);
                    }
                    // Tampered, or the tenant's keys are gone: it can never be sent, and
                    // keeping it would hold its conversation for good.
                    Err(ParkingError::Crypto(
                        CryptoError::Undecryptable | CryptoError::KeyGone(_),
                    )) => {
                        tracing::error!(%tenant, parked = %key.sk, "parked job cannot be decrypted; discarded");
                        self.store.delete(Table::Data, &key, None).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            if messages.is_empty() {
                continue;
            }
            self.queue.send_batch(&self.sync_queue, messages).await?;
            for key in keys {
                let update = Update::new().set(RELEASED_AT, now_millis());
                match self
                    .store
                    .update(Table::Data, &key, update, Some(Condition::Exists))
                    .await
                {
                    Ok(_) => sent += 1,
                    // Settled already (its copy ran before we got here).
                    Err(StoreError::ConditionFailed { .. }) => sent += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(sent)
    }

    pub(super) async fn release_quietly(&self, tenant: &TenantId, conversation: &str) {
        if let Err(e) = self.release_conversation(tenant, conversation).await {
            tracing::warn!(%tenant, error = %e, "parked jobs not released yet; the probe will");
        }
    }

    /// Releases every conversation of the tenant that has nothing on the queue; returns how
    /// many jobs went back to the queue.
    pub async fn release_all(&self, tenant: &TenantId) -> Result<usize, ParkingError> {
        let pk = partition(tenant);
        let mut released = 0;
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .store
                .query(
                    Table::Data,
                    &Query::partition(pk.clone()).limit(1).start_after(after),
                )
                .await?;
            let Some(conversation) = page
                .items
                .first()
                .and_then(|i| i.get_s(SK))
                .and_then(conversation_of)
                .map(str::to_owned)
            else {
                return Ok(released);
            };
            released += self.release_conversation(tenant, &conversation).await?;
            // Past every sort key of this conversation ('~' sorts after the digits).
            after = Some(Key::new(pk.clone(), format!("{conversation}#~")));
        }
    }

    /// A released copy is done (or dead-lettered): its item goes, what was parked behind it
    /// in its conversation is released, and the portal's index entry goes once nothing is
    /// parked. Failures are logged: the probe finishes the work.
    pub async fn settle(&self, released: &Released) {
        let tenant = &released.tenant;
        if let Err(e) = self.store.delete(Table::Data, &released.key, None).await {
            tracing::warn!(%tenant, error = %e, "could not settle a released job");
            return;
        }
        if let Some(conversation) = conversation_of(&released.key.sk) {
            self.release_quietly(tenant, conversation).await;
        }
        if let Err(e) = self.finish(tenant).await {
            tracing::warn!(%tenant, error = %e, "could not finish a released portal");
        }
    }

    /// Removes the index entry of a releasing portal with nothing parked left; true when
    /// it did. Conditional on the entry as read, so a job parked in between keeps it.
    pub async fn finish(&self, tenant: &TenantId) -> Result<bool, ParkingError> {
        let Some(portal) = self.portal(tenant).await? else {
            return Ok(false);
        };
        if portal.state != ParkState::Releasing {
            return Ok(false);
        }
        let left = self
            .store
            .query(Table::Data, &Query::partition(partition(tenant)).limit(1))
            .await?;
        if !left.items.is_empty() {
            return Ok(false);
        }
        let unchanged = Condition::And(vec![
            Condition::Equals(STATE.into(), "releasing".into()),
            Condition::Equals(PARKS.into(), portal.parks.into()),
        ]);
        match self
            .store
            .delete(Table::Routes, &index_key(tenant), Some(unchanged))
            .await
        {
            Ok(()) => {
                tracing::info!(%tenant, "the portal's parked work is delivered");
                Ok(true)
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
