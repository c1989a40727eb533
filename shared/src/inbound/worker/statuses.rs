//! A customer's history and statuses: the Coexistence chat history put on its backlog
//! (decision 0052), a Meta status moved forward and carried to the CRM (decision 0064), and
//! one that came before the send worker recorded its send, held for it (decision 0074).
//! Split from the worker's module.

use super::*;
use crate::conversation::read_bound_at;
use crate::outbound::attempt::{Confirmation, EarlierCopy};
use crate::usage::Written;

impl InboundWorker {
    pub(super) fn coexistence(&self) -> crate::coexistence::Coexistence {
        crate::coexistence::Coexistence::new(self.store.clone())
    }

    /// A past message of the Coexistence chat history: stored (not counted: the business
    /// exchanged it before it came to us; no window opened) and put on its channel's
    /// backlog, which the scheduled import posts at its own pace (decision 0052). Dropped
    /// when the tenant does not import the channel's history (turned off since the
    /// webhook).
    pub(super) async fn import_history(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        customer: &CustomerRef,
        mut message: NewMessage,
        retention: u32,
    ) -> Result<(), InboundError> {
        let account = &job.event.account;
        let AccountRef::WhatsApp(number) = account else {
            return Ok(());
        };
        let coexistence = self.coexistence();
        if !coexistence
            .settings(&job.tenant_id, number)
            .await?
            .history_import
        {
            tracing::info!("chat history not imported (not opted in); dropped");
            return Ok(());
        }
        let at = message.at_ms / 1000;
        let (id, opened) = conversations
            .open_customer(account, customer, None, retention)
            .await?;
        let provider_message_id = message.provider_message_id.clone();
        message.written_with.opened = opened;
        let (stored, created) = conversations
            .store_message(account, &id, message, retention)
            .await?;
        // As for a message the customer writes now (decision 0128).
        if created
            && !self
                .kept_after_erasure_read(
                    job,
                    conversations,
                    Written {
                        stored: &stored,
                        provider_message_id: &provider_message_id,
                        count: None,
                        opened: opened.as_ref().map(|o| (o, customer)),
                    },
                )
                .await?
        {
            return Ok(());
        }
        coexistence
            .queue_history(&job.tenant_id, number, at, &id, &stored.sk)
            .await?;
        Ok(())
    }

    /// A status whose message we cannot find, carrying our send's tag: the send worker has
    /// not recorded that send (yet, or it failed to, or it crashed first). The tag tells
    /// which attempt reached Meta (decision 0055), and the status is kept with it for the
    /// send worker to apply once it records the send (decision 0074). The message is then
    /// looked up once more: the send worker may have recorded it between our lookup and the
    /// hold, after its last read of the progress; the status goes on from here then (the
    /// status's rank keeps the two from both posting it). The message, when found.
    pub(super) async fn hold_early_status(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        tag: &str,
        provider_message_id: &str,
        status: MessageStatus,
        failure: &Option<String>,
    ) -> Result<Option<MessageRef>, InboundError> {
        let early = crate::outbound::attempt::EarlyStatus {
            status,
            failure: failure.clone(),
        };
        let confirmation = self
            .progress()
            .confirm_attempt(&job.tenant_id, tag, provider_message_id, &early)
            .await?;
        tracing::info!(
            confirmation = ?confirmation,
            status = status.code(),
            "status of a send not recorded yet"
        );
        match confirmation {
            Confirmation::NotOnRecord => {
                return self
                    .earlier_copy(job, conversations, tag, provider_message_id, status)
                    .await
            }
            Confirmation::Held => self.metrics.early_status("held"),
            Confirmation::Confirmed => {}
        }
        Ok(conversations
            .find_message(&job.event.account, provider_message_id)
            .await?)
    }

    /// The send progress records, where statuses of sends not recorded yet are kept.
    fn progress(&self) -> crate::outbound::SendProgress {
        crate::outbound::SendProgress::new(self.store.clone(), self.envelope.clone())
    }

    /// A status whose tag is not the attempt on record: when it is an earlier attempt of a
    /// part sent again (its send reached Meta after all, so the customer has two copies), a
    /// delivered or read is kept for the send worker, and the part's message looked for
    /// through the provider id the progress records for it (decision 0111), as
    /// [`Self::hold_early_status`] does. The message, when found.
    async fn earlier_copy(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        tag: &str,
        provider_message_id: &str,
        status: MessageStatus,
    ) -> Result<Option<MessageRef>, InboundError> {
        let progress = self.progress();
        let recorded = match progress
            .keep_earlier_copy(&job.tenant_id, tag, provider_message_id, status)
            .await?
        {
            EarlierCopy::Ignored => {
                tracing::info!(
                    status = status.code(),
                    "status of a send that is not on record; ignored"
                );
                return Ok(None);
            }
            // The part's provider id never changes once recorded: no second read for it.
            EarlierCopy::Kept { recorded: Some(id) } => Some(id),
            EarlierCopy::Kept { recorded: None } => {
                progress.recorded_part(&job.tenant_id, tag).await?
            }
        };
        self.metrics.early_status("held");
        tracing::info!(
            status = status.code(),
            recorded = recorded.is_some(),
            "status of an earlier copy of a part sent again"
        );
        let Some(id) = recorded else {
            return Ok(None);
        };
        Ok(conversations.find_message(&job.event.account, &id).await?)
    }

    /// A customer's read (Instagram's `read.mid`, or Messenger's `read.watermark`): the
    /// message it names, then every message of ours before it in the thread (decision
    /// 0116).
    ///
    /// When no message holds the named id yet, the send worker has not recorded the send:
    /// the read is kept for it, and the message looked for once more, since the send worker
    /// may have recorded it (and looked for a kept read) between the first lookup and the
    /// hold. Each side writes, then reads the other's, so one of them always applies the
    /// read (decision 0114). The thread is then read up to the time of the read.
    pub(super) async fn forward_read(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        provider_message_id: Option<&str>,
        watermark: Option<i64>,
    ) -> Result<(), InboundError> {
        let account = &job.event.account;
        let mut target = None;
        if let Some(mid) = provider_message_id {
            target = conversations.find_message(account, mid).await?;
            if target.is_none() {
                conversations.hold_early_read(account, mid).await?;
                target = conversations.find_message(account, mid).await?;
                tracing::info!(
                    found = target.is_some(),
                    "read of a send not recorded yet; kept for the send worker"
                );
                self.metrics.early_status("held");
            }
            self.forward_status_to(
                job,
                conversations,
                target.clone(),
                MessageStatus::Read,
                None,
            )
            .await?;
        }
        let (conversation, before) = match target {
            Some(read) => (read.conversation, read.sk),
            None => {
                // Messenger's watermark is in milliseconds; the event's time in seconds.
                let at_ms = watermark.or(job.event.timestamp.map(|s| s.saturating_mul(1000)));
                let (Some(customer), Some(at_ms)) = (job.event.customer(), at_ms) else {
                    return Ok(());
                };
                let Some(conversation) =
                    conversations.conversation_of(account, &customer.id).await?
                else {
                    return Ok(());
                };
                (conversation, read_bound_at(at_ms))
            }
        };
        // A message this read moved before (a redelivery) is walked past and queued again.
        let job_of = |sk: &str| {
            let at = MessageRef {
                conversation: conversation.clone(),
                sk: sk.to_owned(),
            };
            status_job(job, &at, MessageStatus::Read, None).effect
        };
        let earlier = conversations
            .unread_before(&conversation, &before, job_of)
            .await?;
        if !earlier.is_empty() {
            tracing::info!(
                messages = earlier.len(),
                "earlier messages read with the thread"
            );
        }
        for message in earlier {
            let sync = status_job(job, &message, MessageStatus::Read, None);
            if conversations.read_by_thread(&message, &sync.effect).await? {
                self.queue_status(sync).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn forward_status_to(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        target: Option<MessageRef>,
        status: MessageStatus,
        failure: Option<String>,
    ) -> Result<(), InboundError> {
        let Some(target) = target else {
            tracing::debug!("status of a message we do not hold; ignored");
            return Ok(());
        };
        let sync = status_job(job, &target, status, failure);
        // Also when an earlier delivery of this job moved the status and stopped before the
        // sync job was queued: the same job again (its deduplication id and the sync
        // worker's idempotency keep it from reaching the portal twice).
        if conversations
            .advance_status(&target, status, &sync.effect)
            .await?
        {
            self.queue_status(sync).await?;
        }
        Ok(())
    }

    async fn queue_status(&self, sync: SyncJob) -> Result<(), InboundError> {
        self.queue
            .send_batch(&self.sync, vec![sync.to_message()])
            .await
            .map_err(|e| InboundError::Queue(e.to_string()))
    }
}

/// The sync job carrying `status` of `target` to Bitrix24, its effect owed to this event.
fn status_job(
    job: &InboundJob,
    target: &MessageRef,
    status: MessageStatus,
    failure: Option<String>,
) -> SyncJob {
    SyncJob::status(
        job.tenant_id.clone(),
        target,
        status,
        failure,
        &job.event.provider_event_id,
    )
}
