//! Who holds an Instagram conversation under Meta's Handover Protocol (decision 0051): when
//! the tenant turns on Meta's agent (or another app), `messaging_handovers` events pass the
//! conversation to it and back. The inbound worker records the last change here; the
//! outbound worker takes control back before an operator's reply while another app holds it.
//!
//! One item per conversation in the tenant's partition (`HANDOVER#<conversation id>`): the
//! owner's app id and whether it is one of ours. App ids only, never a message or a person.

use std::sync::Arc;

use super::ConversationId;
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, StoreError, Table, TableStore};

/// Tries of a record written over what another writer wrote since it was read.
const RECORD_TRIES: usize = 5;

/// The last control change of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadOwner {
    /// The app that holds the conversation, when Meta named one (none: idle).
    pub app_id: Option<String>,
    /// True when that app is ours: operators answer.
    pub ours: bool,
    /// Unix seconds.
    pub since: i64,
}

/// The tenant's handover records.
#[derive(Clone)]
pub struct Handovers {
    tenant: TenantId,
    store: Arc<dyn TableStore>,
}

impl Handovers {
    pub fn new(tenant: TenantId, store: Arc<dyn TableStore>) -> Self {
        Handovers { tenant, store }
    }

    fn key(&self, conversation: &ConversationId) -> Key {
        Key::new(
            self.tenant.partition(),
            format!("HANDOVER#{}", conversation.as_str()),
        )
    }

    pub async fn owner(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<ThreadOwner>, StoreError> {
        Ok(self
            .store
            .get(Table::Data, &self.key(conversation))
            .await?
            .map(|i| ThreadOwner {
                app_id: i.get_s("app_id").map(str::to_owned),
                ours: i.get_bool("ours").unwrap_or(true),
                since: i.get_n("since").unwrap_or(0),
            }))
    }

    /// Records `owner` unless a later change is recorded already; returns whether who
    /// answers (ours or not) changed. Meta does not promise the order of its webhooks, and an
    /// operator's reply takes the conversation back while the inbound worker records Meta's
    /// events: the latest change by its time is kept (one in the same second as the recorded
    /// one is taken as later), written over exactly the record that was read.
    pub async fn record(
        &self,
        conversation: &ConversationId,
        owner: &ThreadOwner,
    ) -> Result<bool, StoreError> {
        let mut item = Item::new(&self.key(conversation))
            .with("ours", owner.ours)
            .with("since", owner.since);
        if let Some(app) = &owner.app_id {
            item.set("app_id", app.as_str());
        }
        for _ in 0..RECORD_TRIES {
            let before = self.owner(conversation).await?;
            if before.as_ref().is_some_and(|b| b.since > owner.since) {
                tracing::info!("a change of control older than the one recorded; ignored");
                return Ok(false);
            }
            let read = Condition::number_unchanged("since", before.as_ref().map(|b| b.since));
            match self.store.put(Table::Data, item.clone(), Some(read)).await {
                // Without a record, operators answered.
                Ok(()) => return Ok(before.is_none_or(|b| b.ours) != owner.ours),
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the conversation's control kept changing while it was recorded".into(),
        ))
    }

    /// Removes the conversation's record, with the conversation (a contact's erasure).
    pub async fn forget(&self, conversation: &ConversationId) -> Result<(), StoreError> {
        self.store
            .delete(Table::Data, &self.key(conversation), None)
            .await
    }
}
