//! Changes to stored messages and conversations: the delivery status (forward only), the
//! customer's reaction, an edit, a deletion, and the Bitrix24 chat and message ids.

use super::model::{ConversationId, MessageRef, MessageStatus};
use super::{ConversationError, Conversations};
use crate::clock::now_secs;
use crate::meta::Content;
use crate::store::{AttrValue, Condition, StoreError, Table, Update};

/// The message attribute naming the sync job its last status move is owed to (a hash: the
/// job's effect key, no personal data).
pub(super) const STATUS_JOB: &str = "status_job";

impl Conversations {
    /// Moves a message's delivery status forward and records `job` (the effect key of the
    /// sync job that carries the status to Bitrix24) as the one it is owed to. True when
    /// this call moved it, or an earlier attempt of the same `job` did: that attempt may have
    /// stopped before its sync job was queued (the queue refused it, the write's answer was
    /// lost, the process died), and the retry must queue it, or the status never reaches
    /// the portal. False when the message is already there or beyond by another job (a
    /// repeat adds nothing) or is gone.
    pub async fn advance_status(
        &self,
        at: &MessageRef,
        status: MessageStatus,
        job: &str,
    ) -> Result<bool, ConversationError> {
        let below = Condition::Or(vec![
            Condition::AttrNotExists("status_rank".into()),
            Condition::LessThan("status_rank".into(), AttrValue::N(status.rank())),
        ]);
        self.move_status(at, status, job, below).await
    }

    /// Moves a message to `read` because the customer read their thread after it (decision
    /// 0116): only from `sent` or `delivered` (a message that failed, or was not sent yet,
    /// was not read), or again for the same `job`. True as for [`Self::advance_status`].
    pub async fn read_by_thread(
        &self,
        at: &MessageRef,
        job: &str,
    ) -> Result<bool, ConversationError> {
        let readable = Condition::Or(
            [MessageStatus::Sent, MessageStatus::Delivered]
                .iter()
                .map(|s| Condition::Equals("status_rank".into(), AttrValue::N(s.rank())))
                .collect(),
        );
        self.move_status(at, MessageStatus::Read, job, readable)
            .await
    }

    /// Sets `status` on the message when it is in a state `from` allows, or when `job` moved
    /// it last (its retry).
    async fn move_status(
        &self,
        at: &MessageRef,
        status: MessageStatus,
        job: &str,
        from: Condition,
    ) -> Result<bool, ConversationError> {
        let forward = Condition::And(vec![
            Condition::Exists,
            Condition::Or(vec![
                from,
                Condition::Equals(STATUS_JOB.into(), AttrValue::S(job.to_owned())),
            ]),
        ]);
        let update = Update::new()
            .set("status", status.code())
            .set("status_rank", status.rank())
            .set("status_at", now_secs())
            .set(STATUS_JOB, job);
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
