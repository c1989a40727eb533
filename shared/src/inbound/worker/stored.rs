//! Storing an event's message once and queueing its push to the CRM, a child of the inbound
//! worker: the conversation opened or refreshed, the message stored (counted when it is the
//! customer's), and the person's erasure read again once it is stored (decision 0128): what
//! the delivery wrote removed again when the erasure began meanwhile (decisions 0130, 0131),
//! and what an earlier delivery failed to remove removed by its redelivery (decision 0132),
//! with what that delivery wrote besides, as its message says (decision 0133).

use super::{InboundError, InboundJob, InboundWorker};
use crate::clock::now_secs;
use crate::conversation::erased::Verdict;
use crate::conversation::{Conversations, IndexLookup, NewMessage};
use crate::crm_sync::SyncAction;
use crate::meta::{CustomerRef, EventKind};
use crate::usage::Written;

impl InboundWorker {
    /// Opens or refreshes the customer's conversation, stores the message once (counted in
    /// the tenant's inbound usage when `counted`), and queues its push to the CRM.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_and_push(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        customer: &CustomerRef,
        inbound_at: Option<i64>,
        mut message: NewMessage,
        (retention, received_ms): (u32, Option<i64>),
        counted: bool,
    ) -> Result<(), InboundError> {
        let account = &job.event.account;
        let span = tracing::Span::current();
        // A message stored before (a redelivery) is only queued again: its conversation is
        // not rewritten with what the event said then, and nothing is counted twice.
        if let Some(stored) = conversations
            .find_message(account, &message.provider_message_id)
            .await?
        {
            self.metrics.duplicate("inbound");
            span.record("conversation", stored.conversation.as_str());
            span.record("message", stored.sk.as_str());
            let action = SyncAction::PushMessage {
                message_sk: stored.sk,
            };
            self.enqueue_received(job, stored.conversation, action, received_ms)
                .await?;
            tracing::info!("message stored before; CRM sync queued again");
            return Ok(());
        }
        let (id, opened) = conversations
            .open_customer(account, customer, inbound_at, retention)
            .await?;
        span.record("conversation", id.as_str());
        let provider_message_id = message.provider_message_id.clone();
        message.written_with.opened = opened;
        let (stored, created, count) = if counted {
            // Counted in the month it is stored (not the provider's timestamp): a late
            // redelivery finds the message stored and counts nothing, whatever the month.
            let lookup = IndexLookup::AlreadyDone;
            self.usage
                .store_inbound(
                    conversations,
                    account,
                    &id,
                    message,
                    retention,
                    now_secs(),
                    lookup,
                )
                .await
                .map(|(stored, count)| (stored, count.is_some(), count))?
        } else {
            let (stored, created) = conversations
                .store_message_after(account, &id, message, retention, IndexLookup::AlreadyDone)
                .await?;
            (stored, created, None)
        };
        span.record("message", stored.sk.as_str());
        // Written, then read (decision 0128): the job's check of the person's erasure came
        // before this write, and an erasure that marked them since may have deleted their
        // conversation already, before this message was in it. Its marker is read again now
        // that the message is stored; a message of the erased period is removed again, and
        // one that must wait for the erasure's cut waits for it, as the check does.
        if created
            && !self
                .kept_after_erasure_read(
                    job,
                    conversations,
                    Written {
                        stored: &stored,
                        provider_message_id: &provider_message_id,
                        count: count.as_ref(),
                        opened: opened.as_ref().map(|o| (o, customer)),
                    },
                )
                .await?
        {
            return Ok(());
        }
        self.enqueue_received(
            job,
            id,
            SyncAction::PushMessage {
                message_sk: stored.sk,
            },
            received_ms,
        )
        .await?;
        // One line per relayed message, with the step's correlation ids (decision 0038).
        tracing::info!("message stored; CRM sync queued");
        Ok(())
    }

    /// Reads the person's erasure again once this delivery stored `written.stored`
    /// (decision 0128): the job's check came before the write, and an erasure that marked
    /// the person since may have deleted their conversation before the message was in it.
    /// True: kept. False: of the erased period, removed again (see [`Written`]), the event
    /// is done. `SubjectBeingErased`: the erasure is under way, removed again, the job waits
    /// for it.
    pub(super) async fn kept_after_erasure_read(
        &self,
        job: &InboundJob,
        conversations: &Conversations,
        written: Written<'_>,
    ) -> Result<bool, InboundError> {
        let erasure = self
            .erased
            .erasure(&job.tenant_id, &written.stored.conversation)
            .await?;
        let verdict = erasure.map(|e| e.event(job.event.timestamp));
        if matches!(verdict, Some(Verdict::New) | None) {
            return Ok(true);
        }
        self.usage
            .remove_written(conversations, &job.event.account, written)
            .await?;
        if verdict == Some(Verdict::Wait) {
            return Err(InboundError::SubjectBeingErased);
        }
        tracing::info!("event of a subject erased while it was stored: removed");
        Ok(false)
    }
}

impl InboundWorker {
    /// Removes the message an earlier delivery of this event (of a person now erased, the
    /// job's check has just found) stored and did not remove again: its removal after the
    /// second read (decision 0128) failed, and the job's retry stops at the first check,
    /// before it would meet the message again (decision 0132). Every event this worker
    /// stores a message for keeps it under the event's message id (a postback without one,
    /// under the event's id); the erasure has sealed its marker, so whatever still answers
    /// to that id is left over. What that delivery wrote besides goes with it: its count
    /// and the conversation it opened, as the message says (decision 0133).
    pub(super) async fn remove_left_behind(&self, job: &InboundJob) -> Result<(), InboundError> {
        let event = &job.event;
        let (provider_id, customer) = match &event.kind {
            EventKind::CustomerMessage {
                message_id,
                customer,
                ..
            }
            | EventKind::HistoryMessage {
                message_id,
                customer,
                ..
            }
            | EventKind::BusinessEcho {
                message_id,
                customer,
                ..
            } => (message_id.as_str(), customer),
            EventKind::Postback {
                message_id,
                customer,
                ..
            } => (
                message_id
                    .as_ref()
                    .map_or(event.provider_event_id.as_str(), |m| m.as_str()),
                customer,
            ),
            _ => return Ok(()),
        };
        let account = &event.account;
        let conversations = Conversations::new(
            job.tenant_id.clone(),
            self.store.clone(),
            self.envelope.clone(),
        );
        if let Some(at) = conversations.find_message(account, provider_id).await? {
            self.usage
                .remove_left(&conversations, account, &at, provider_id, customer)
                .await?;
            tracing::info!("message an earlier delivery left of an erased subject removed");
        }
        Ok(())
    }
}
