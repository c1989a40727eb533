//! A customer's message pushed under a hold on its own item (decision 0105) instead of the
//! job's `SYNC` idempotency record: the hold is one conditional update of the message, and the
//! update that stores the CRM's ids (which the push wrote anyway) records it done, only while
//! the hold is still this delivery's. One write unit a message fewer, when the message item is
//! small enough that an update of it bills one unit ([`HOLD_ON_MESSAGE_MAX_BYTES`]).
//!
//! The order of decision 0080 stays: the push is recorded done before its staged operations
//! are dropped, and a delivery whose hold was taken over records nothing and drops nothing,
//! so a delivery still running the job finds the operation and takes its outcome instead of
//! staging it afresh. A delivery that finds the message pushed drops what an earlier one may
//! have left; a hold can only be taken on a message not pushed yet.

use std::time::Duration;

use super::{outcome, SyncError, SyncWorker};
use crate::consumer::Outcome;
use crate::conversation::{
    ConversationMeta, Conversations, MessageRef, PushHold, StoredMessage, HOLD_ON_MESSAGE_MAX_BYTES,
};
use crate::crm_sync::SyncJob;
use crate::idempotency::holder_token;
use crate::tenant::TenantScope;

/// What [`SyncWorker::push_held`] did with a message's push.
pub(super) enum HeldPush {
    /// Run (or found done, busy or gone): the job's outcome.
    Finished(Outcome),
    /// Not held: the message's item is too large for the hold to save anything. The caller
    /// holds the job's `SYNC` record instead and runs the push with this message, read here
    /// (read before the record's hold: a push recorded meanwhile by a delivery that has not
    /// recorded its job done leaves its operation staged and `sent`, whose outcome the run
    /// takes instead of posting again, decision 0080).
    TooLarge(Box<StoredMessage>),
}

impl SyncWorker {
    /// Runs a message's push under the hold on its item, unless the item is too large.
    pub(super) async fn push_held(
        &self,
        job: &SyncJob,
        scope: &TenantScope,
        conversations: &Conversations,
        meta: &ConversationMeta,
        message_sk: &str,
    ) -> Result<HeldPush, SyncError> {
        let at = MessageRef {
            conversation: job.conversation.clone(),
            sk: message_sk.to_owned(),
        };
        let Some((message, bytes)) = conversations.message_sized(&at).await? else {
            tracing::info!("message gone (erased or expired); sync job dropped");
            return Ok(HeldPush::Finished(Outcome::Done));
        };
        if !message.crm_message_ids.is_empty() {
            return Ok(HeldPush::Finished(self.pushed_before(job).await));
        }
        if bytes > HOLD_ON_MESSAGE_MAX_BYTES {
            return Ok(HeldPush::TooLarge(Box::new(message)));
        }
        let holder = holder_token();
        let now = (self.clock)() / 1000;
        let lease = i64::try_from(self.hold_lease.as_secs()).unwrap_or(i64::MAX / 2);
        match conversations.hold_push(&at, &holder, now, lease).await? {
            PushHold::Held => {}
            PushHold::Pushed => return Ok(HeldPush::Finished(self.pushed_before(job).await)),
            PushHold::Busy { retry_after } => {
                return Ok(HeldPush::Finished(Outcome::RetryAfter(retry_after)))
            }
            PushHold::Gone => {
                tracing::info!("message gone (erased or expired); sync job dropped");
                return Ok(HeldPush::Finished(Outcome::Done));
            }
        }
        let outcome = match self
            .run(
                job,
                scope,
                conversations,
                meta,
                Some(message),
                Some(&holder),
            )
            .await
        {
            // Recorded done: what it staged can go.
            Ok(staged) if !staged.is_empty() => self.drop_staged(&staged).await,
            // Nothing was posted (its operation removed by an erasure): nothing recorded.
            Ok(_) => {
                conversations.release_push(&at, &holder).await;
                Outcome::Done
            }
            Err(SyncError::TakenOver) => {
                // Another delivery took the hold while this one worked: it finishes the push.
                tracing::info!("sync job taken over by another delivery; left to it");
                Outcome::RetryAfter(Duration::from_secs(1))
            }
            Err(e) => {
                conversations.release_push(&at, &holder).await;
                return Err(e);
            }
        };
        Ok(HeldPush::Finished(outcome))
    }

    /// A message pushed by an earlier delivery, which may have stopped before dropping its
    /// staged operations.
    async fn pushed_before(&self, job: &SyncJob) -> Outcome {
        self.metrics.duplicate("sync");
        self.drop_staged(&outcome::staged_keys(job)).await
    }

    /// Stores the Bitrix24 chat of the conversation (when new) and the CRM's ids of the
    /// message, which records its push done: under the hold when `holder` is given
    /// ([`SyncError::TakenOver`] when it is no longer this delivery's).
    pub(super) async fn record_sent(
        &self,
        conversations: &Conversations,
        meta: &ConversationMeta,
        at: &MessageRef,
        message: &StoredMessage,
        crm_chat_id: Option<String>,
        holder: Option<&str>,
    ) -> Result<(), SyncError> {
        if let Some(chat) = &crm_chat_id {
            if meta.crm_chat_id.as_deref() != Some(chat.as_str()) {
                conversations.set_crm_chat(&meta.id, chat).await?;
            }
        }
        // The post's external id is the provider's message id (`SyncWorker::operation`):
        // what Bitrix24 keeps as the chat message's `CONNECTOR_MID`.
        let ids = vec![message.provider_message_id.clone()];
        match holder {
            Some(holder) => {
                if !conversations.record_pushed_held(at, &ids, holder).await? {
                    return Err(SyncError::TakenOver);
                }
            }
            None => {
                conversations.set_crm_message_ids(at, &ids).await?;
            }
        }
        Ok(())
    }
}
