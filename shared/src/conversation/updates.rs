//! Changes to stored messages and conversations: the delivery status (forward only), the
//! customer's reaction, an edit, a deletion, and the Bitrix24 chat and message ids.

use super::model::{ConversationId, MessageRef, MessageStatus};
use super::{ConversationError, Conversations};
use crate::clock::now_secs;
use crate::meta::Content;
use crate::store::{AttrValue, Condition, StoreError, Table, Update};

impl Conversations {
    /// Moves a message's delivery status forward; false when it was already there or beyond
    /// (or the message is gone).
    pub async fn advance_status(
        &self,
        at: &MessageRef,
        status: MessageStatus,
    ) -> Result<bool, ConversationError> {
        let rank = status.rank();
        let forward = Condition::And(vec![
            Condition::Exists,
            Condition::Or(vec![
                Condition::AttrNotExists("status_rank".into()),
                Condition::LessThan("status_rank".into(), AttrValue::N(rank)),
            ]),
        ]);
        let update = Update::new()
            .set("status", status.code())
            .set("status_rank", rank)
            .set("status_at", now_secs());
        match self
            .store
            .update(Table::Data, &self.message_key(at), update, Some(forward))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets (or with `None` removes) the customer's reaction on a message.
    pub async fn set_reaction(
        &self,
        at: &MessageRef,
        emoji: Option<&str>,
    ) -> Result<bool, ConversationError> {
        let key = self.message_key(at);
        let update = match emoji {
            Some(e) => Update::new().set(
                "reaction",
                self.encrypt_json(&key, "reaction", &e.to_owned()).await?,
            ),
            None => Update::new().remove("reaction"),
        };
        self.update_existing(&key, update).await
    }

    /// Replaces a message's content after an edit.
    pub async fn edit_content(
        &self,
        at: &MessageRef,
        content: &Content,
    ) -> Result<bool, ConversationError> {
        let key = self.message_key(at);
        let update = Update::new()
            .set(
                "content",
                self.encrypt_json(&key, "content", content).await?,
            )
            .set("edited", true)
            .set("edited_at", now_secs());
        self.update_existing(&key, update).await
    }

    /// Marks a message deleted and erases its content and reaction.
    pub async fn mark_deleted(&self, at: &MessageRef) -> Result<bool, ConversationError> {
        let update = Update::new()
            .set("deleted", true)
            .set("deleted_at", now_secs())
            .remove("content")
            .remove("reaction");
        self.update_existing(&self.message_key(at), update).await
    }

    /// Remembers the Bitrix24 chat of a conversation.
    pub async fn set_crm_chat(
        &self,
        id: &ConversationId,
        chat_id: &str,
    ) -> Result<bool, ConversationError> {
        self.update_existing(
            &self.meta_key(id),
            Update::new().set("crm_chat_id", chat_id),
        )
        .await
    }

    /// Remembers the Bitrix24 message ids of a message (its sync is then done).
    pub async fn set_crm_message_ids(
        &self,
        at: &MessageRef,
        ids: &[String],
    ) -> Result<bool, ConversationError> {
        // The CRM's external ids are the provider's ids: encrypted like them (issue 13).
        let key = self.message_key(at);
        let list = self.encrypt_json(&key, "crm_message_ids", &ids).await?;
        self.update_existing(
            &key,
            Update::new()
                .set("crm_message_ids", list)
                .set("crm_synced_at", now_secs()),
        )
        .await
    }
}
