//! A message's push to the CRM held on the message item itself (decision 0105): the hold is a
//! conditional update of the message, and the push recorded done by the update that stores
//! its CRM ids, conditional on the hold being still this delivery's. It stands in for the sync
//! job's idempotency record (`SYNC`, a hold and a completion) when the message item is small
//! enough that an update of it bills one write unit.

use std::time::Duration;

use super::messages::readable;
use super::model::{MessageRef, StoredMessage};
use super::{ConversationError, Conversations};
use crate::clock::now_secs;
use crate::store::{AttrValue, Condition, StoreError, Table, Update};

/// The holder of a message's push: a token of one delivery of the sync job.
const SYNC_HOLDER: &str = "sync_holder";
/// Until when (Unix seconds) the holder's lease runs.
const SYNC_HOLD_UNTIL: &str = "sync_hold_until";
/// What a push recorded done stores: the CRM's ids of the message.
const CRM_MESSAGE_IDS: &str = "crm_message_ids";

/// The largest message item (as DynamoDB counts it) whose push is held on it: with the hold's
/// two attributes (about 60 bytes) an update of it still bills one write unit (1 KB). A larger
/// item would bill two or more for the hold and as many again for the record, more than the
/// `SYNC` record's two small writes.
pub const HOLD_ON_MESSAGE_MAX_BYTES: usize = 1024 - 96;

/// What taking a message's push hold found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushHold {
    /// Held by this delivery until its lease runs out.
    Held,
    /// Already pushed: its CRM ids are stored.
    Pushed,
    /// Another delivery holds it; try again after this long.
    Busy { retry_after: Duration },
    /// The message is gone (erased or expired).
    Gone,
}

impl Conversations {
    /// The message, and its item's size as DynamoDB bills it (to choose where its push is
    /// held).
    pub async fn message_sized(
        &self,
        at: &MessageRef,
    ) -> Result<Option<(StoredMessage, usize)>, ConversationError> {
        let key = self.message_key(at);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(None);
        };
        let bytes = crate::costs::item_bytes(&item);
        let message = readable(self.decode_message(at.clone(), &key, &item).await)?;
        Ok(message.map(|m| (m, bytes)))
    }

    /// Takes the hold of the message's push for `holder` until `now + lease` (seconds): only
    /// on a message that exists, is not pushed yet, and is not held by a live lease.
    pub async fn hold_push(
        &self,
        at: &MessageRef,
        holder: &str,
        now: i64,
        lease: i64,
    ) -> Result<PushHold, ConversationError> {
        let key = self.message_key(at);
        let free = Condition::And(vec![
            Condition::Exists,
            Condition::AttrNotExists(CRM_MESSAGE_IDS.into()),
            Condition::Or(vec![
                Condition::AttrNotExists(SYNC_HOLDER.into()),
                Condition::LessThan(SYNC_HOLD_UNTIL.into(), AttrValue::N(now)),
            ]),
        ]);
        let take = Update::new()
            .set(SYNC_HOLDER, holder)
            .set(SYNC_HOLD_UNTIL, now.saturating_add(lease));
        match self.store.update(Table::Data, &key, take, Some(free)).await {
            Ok(_) => Ok(PushHold::Held),
            Err(StoreError::ConditionFailed { .. }) => {
                let Some(item) = self.store.get(Table::Data, &key).await? else {
                    return Ok(PushHold::Gone);
                };
                if item.get(CRM_MESSAGE_IDS).is_some() {
                    return Ok(PushHold::Pushed);
                }
                let until = item.get_n(SYNC_HOLD_UNTIL).unwrap_or(now);
                Ok(PushHold::Busy {
                    // Released between the two calls: soon.
                    retry_after: Duration::from_secs((until - now).clamp(1, lease.max(1)) as u64),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the push done (the CRM's ids of the message) and lets go of the hold, only
    /// while `holder` still holds it: false when another delivery took it over (this one's
    /// lease ran out) or the message is gone. That delivery finishes the push; this one must
    /// leave the staged operation in place (decision 0080).
    pub async fn record_pushed_held(
        &self,
        at: &MessageRef,
        ids: &[String],
        holder: &str,
    ) -> Result<bool, ConversationError> {
        // The CRM's external ids are the provider's ids: encrypted like them (issue 13).
        let key = self.message_key(at);
        let list = self.encrypt_json(&key, CRM_MESSAGE_IDS, &ids).await?;
        let done = Update::new()
            .set(CRM_MESSAGE_IDS, list)
            .set("crm_synced_at", now_secs())
            .remove(SYNC_HOLDER)
            .remove(SYNC_HOLD_UNTIL);
        let ours = Condition::Equals(SYNC_HOLDER.into(), AttrValue::S(holder.to_owned()));
        match self.store.update(Table::Data, &key, done, Some(ours)).await {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the hold back after a failure, so a retry pushes again; a hold another delivery
    /// took over is left to it. A release that fails is only logged: the lease runs out.
    pub async fn release_push(&self, at: &MessageRef, holder: &str) {
        let key = self.message_key(at);
        let release = Update::new().remove(SYNC_HOLDER).remove(SYNC_HOLD_UNTIL);
        let ours = Condition::Equals(SYNC_HOLDER.into(), AttrValue::S(holder.to_owned()));
        match self
            .store
            .update(Table::Data, &key, release, Some(ours))
            .await
        {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "releasing a message's push hold failed"),
        }
    }
}
