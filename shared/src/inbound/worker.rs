//! The inbound worker: one queue job per Meta event. Stores the message (content encrypted,
//! TTL from the tenant's retention), updates the conversation, and enqueues the CRM sync job,
//! exactly once per provider event id however often the job is delivered.
//!
//! Exactly-once is layered: an idempotency record per event (released on failure, so a
//! retry redoes the work), a conditional put per message and its provider-id index, and a
//! deterministic deduplication id on the sync job, whose own worker is idempotent too.
//!
//! New customer messages and postbacks are counted in the tenant's monthly usage
//! ([`crate::usage`]) in the transaction that stores them, so a redelivery never counts
//! twice. They are never dropped for quota: over the inbound limit they are relayed and
//! flagged. Echoes of the business's own sends, statuses, reactions and edits do not count.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use super::{InboundJob, JobError};
use crate::clock::now_secs;
use crate::consumer::{Outcome, QueueRecord, RecordHandler};
use crate::conversation::erased::{ErasedSubjects, Verdict};
use crate::conversation::{
    identities, ConversationError, ConversationId, Conversations, Direction, IdentityChange,
    MessageRef, MessageStatus, NewMessage, Origin,
};
use crate::crm_sync::{SyncAction, SyncJob};
use crate::crypto::{CryptoError, Envelope};
use crate::idempotency::{Guarded, Idempotency};
use crate::ids::TenantId;
use crate::meta::{
    AccountRef, Content, CustomerRef, DeliveryStatus, EventKind, InboundEvent, MetaError, Party,
    ReplyTo,
};
use crate::metrics::Metrics;
use crate::own_attempts::{Failure, OwnAttempts};
use crate::queue::{platform, Queue, QueueName};
use crate::store::{StoreError, TableStore};
use crate::tenant::{ChannelRef, TenantDirectory, TenantError};
use crate::usage::{CountError, Usage};

mod handler;
mod own_record;
mod statuses;
// Storing an event's message once and queueing its push, and the erasure's second read
// (decision 0128).
mod stored;

/// How long an event of a subject whose erasure is still running waits before it is tried
/// again (decision 0057). A contact erasure deletes in batches and finishes in seconds. The
/// wait is not a failed attempt (decision 0069): only the queue's backstop of 1,000 receives
/// bounds it, about four hours.
const ERASURE_RUNNING_RETRY: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("enqueueing sync job: {0}")]
    Queue(String),
    /// Storing a counted message failed (the store, or reading the tenant's plan).
    #[error(transparent)]
    Count(#[from] CountError),
    /// Showing a number's Meta status on its Open Line failed for now (decision 0061).
    #[error(transparent)]
    LineStatus(#[from] crate::portal::line_status::LineStatusError),
    /// Recording Meta's confirmation of a send attempt (decision 0055).
    #[error(transparent)]
    Attempt(#[from] crate::outbound::ProgressError),
    /// The person's erasure is under way: seen before the event was stored, or once it was
    /// stored, and its message removed again (decision 0128). The job waits for the
    /// erasure's cut (`process_received` answers it as a retry, not a failure).
    #[error("the person's erasure is under way")]
    SubjectBeingErased,
}

/// The inbound worker's handler. Build once per process.
#[derive(Clone)]
pub struct InboundWorker {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    tenants: TenantDirectory,
    queue: Arc<dyn Queue>,
    /// The queue its jobs are sealed for (they open only for it).
    inbound: QueueName,
    sync: QueueName,
    idempotency: Idempotency,
    usage: Usage,
    erased: ErasedSubjects,
    metrics: Metrics,
    /// Alerts owners of a Meta ban or restriction (decision 0051); none: the console tells.
    mailer: Option<Arc<dyn crate::accounts::Mailer>>,
    /// Our Meta app ids: a conversation passed to one of them is the operators' again.
    app_ids: Vec<String>,
    /// Shows a number's Meta status on its own Open Line (decision 0061); none: not shown.
    line_status: Option<crate::portal::line_status::LineStatus>,
    /// Reads Instagram mentions (decision 0067); none: shown by their ids.
    mentions: Option<super::mention::MentionReader>,
    /// Each job's failed attempts, and the move to the dead-letter queue (decision 0069).
    own: OwnAttempts,
}

impl InboundWorker {
    pub fn new(
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        tenants: TenantDirectory,
        queue: Arc<dyn Queue>,
    ) -> Self {
        InboundWorker {
            idempotency: Idempotency::new(store.clone(), "IN", platform::VISIBILITY),
            own: OwnAttempts::new(store.clone(), platform::INBOUND, "INTRY", "INRUN"),
            usage: Usage::new(store.clone()),
            erased: ErasedSubjects::new(store.clone()),
            store,
            envelope,
            tenants,
            queue,
            inbound: platform::name(platform::INBOUND),
            sync: platform::name(platform::SYNC),
            metrics: Metrics::off(),
            mailer: None,
            app_ids: Vec::new(),
            line_status: None,
            mentions: None,
        }
    }

    /// Reads what an Instagram mention says from the Graph API.
    pub fn with_mentions(mut self, reader: super::mention::MentionReader) -> Self {
        self.mentions = Some(reader);
        self
    }

    /// Shows a number's ban, restriction or removed app on its own Open Line.
    pub fn with_line_status(mut self, s: Option<crate::portal::line_status::LineStatus>) -> Self {
        self.line_status = s;
        self
    }

    /// Our Meta app ids (the Meta app, the Instagram app), for the Handover Protocol.
    pub fn with_app_ids(mut self, app_ids: Vec<String>) -> Self {
        self.app_ids = app_ids;
        self
    }

    /// Emails owners and admins when Meta bans or restricts a number, or lifts it.
    pub fn with_mailer(mut self, mailer: Option<Arc<dyn crate::accounts::Mailer>>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Holds a job's idempotency key for `lease` (the queue's visibility timeout) instead of
    /// the platform's 180 s (decision 0053).
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.idempotency = self.idempotency.with_lease(lease);
        self
    }

    /// Counts suppressed duplicates in `metrics` (decision 0038).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.own = self.own.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Where jobs go once their own attempts are exhausted, and poison at once: the inbound
    /// queue's dead-letter twin, through `queue` (decision 0069). Without it they are left
    /// to the queue's own redrive.
    pub fn with_dead_letter_queue(mut self, queue: Option<Arc<dyn Queue>>) -> Self {
        if let Some(queue) = queue {
            self.own = self.own.with_dead_letter_queue(queue);
        }
        self
    }

    /// Processes one job; the error cases are retried by the queue.
    pub async fn process(&self, job: &InboundJob) -> Result<Outcome, InboundError> {
        self.process_received(job, None).await
    }

    /// Processes one job whose webhook reached us at `received_ms` (carried to the CRM sync
    /// for the latency metric).
    pub async fn process_received(
        &self,
        job: &InboundJob,
        received_ms: Option<i64>,
    ) -> Result<Outcome, InboundError> {
        match self.process_once(job, received_ms).await {
            Err(InboundError::SubjectBeingErased) => {
                tracing::info!("event of a subject being erased: retried later");
                Ok(Outcome::RetryAfter(ERASURE_RUNNING_RETRY))
            }
            other => other,
        }
    }

    async fn process_once(
        &self,
        job: &InboundJob,
        received_ms: Option<i64>,
    ) -> Result<Outcome, InboundError> {
        let account = &job.event.account;
        // The route decides, again: a channel disconnected since the webhook stops at once.
        let owner = self.tenants.resolve(&ChannelRef::of(account)).await?;
        if owner.as_ref() != Some(&job.tenant_id) {
            tracing::info!(
                channel = account.channel().name(),
                account = account.id(),
                "account no longer connected to the job's tenant; event dropped"
            );
            return Ok(Outcome::Done);
        }
        // The profile is read once for the job (decision 0058): the retention below is
        // served from this scope.
        let Some(scope) = self.tenants.scope_for_invocation(&job.tenant_id).await? else {
            tracing::info!(tenant = %job.tenant_id, "tenant gone; event dropped");
            return Ok(Outcome::Done);
        };
        // Erasure wins against work in flight (issue 13): an event from before its subject's
        // erasure (a Meta retry, a redrive, a released hold) is dropped.
        // Every identity the event names: an erasure marks what each of the erased
        // customer's identities derives to (decision 0049).
        for identity in job.event.customer().map(identities).unwrap_or_default() {
            let conversation =
                ConversationId::derive(&self.envelope, &job.tenant_id, account, &identity)
                    .await
                    .map_err(ConversationError::from)?;
            // The boundary is a whole second, judged on Meta's stamp (decision 0057).
            let erasure = self.erased.erasure(&job.tenant_id, &conversation).await?;
            match erasure.map(|e| e.event(job.event.timestamp)) {
                Some(Verdict::Erased) => {
                    self.remove_left_behind(job).await?;
                    tracing::info!("event of an erased subject dropped");
                    return Ok(Outcome::Done);
                }
                // Its cut is not known until the erasure has deleted everything: retried
                // later (`process_received`, as after the second read of decision 0128).
                Some(Verdict::Wait) => return Err(InboundError::SubjectBeingErased),
                Some(Verdict::New) | None => {}
            }
        }
        let retention = scope
            .profile()
            .await?
            .map(|p| p.retention_days)
            .unwrap_or(crate::tenant::DEFAULT_RETENTION_DAYS);

        if own_record::message_is_its_own_record(&job.event, now_secs()) {
            // Its message transaction is the guard (decision 0096): a redelivery finds the
            // message by its index item, before anything is written, and queues its sync
            // job again. The completion is still recorded, for a redelivery too late to be
            // sure the index item is still there.
            self.apply(job, retention, received_ms).await?;
            self.idempotency
                .mark_done(&job.tenant_id, &job.idempotency_key())
                .await?;
            return Ok(Outcome::Done);
        }
        let guarded = self
            .idempotency
            .guard(&job.tenant_id, &job.idempotency_key(), || {
                self.apply(job, retention, received_ms)
            })
            .await?;
        Ok(match guarded {
            Guarded::Ran(()) => Outcome::Done,
            Guarded::AlreadyDone => {
                self.metrics.duplicate("inbound");
                tracing::debug!("duplicate inbound event skipped");
                Outcome::Done
            }
            Guarded::InProgress { retry_after } => Outcome::RetryAfter(retry_after),
        })
    }

    async fn enqueue(
        &self,
        job: &InboundJob,
        conversation: ConversationId,
        action: SyncAction,
    ) -> Result<(), InboundError> {
        self.enqueue_received(job, conversation, action, None).await
    }

    async fn enqueue_received(
        &self,
        job: &InboundJob,
        conversation: ConversationId,
        action: SyncAction,
        received_ms: Option<i64>,
    ) -> Result<(), InboundError> {
        let sync = SyncJob::new(
            job.tenant_id.clone(),
            conversation,
            action,
            &job.event.provider_event_id,
        )
        .received_at(received_ms);
        self.queue
            .send_batch(&self.sync, vec![sync.to_message()])
            .await
            .map_err(|e| InboundError::Queue(e.to_string()))
    }

    async fn apply(
        &self,
        job: &InboundJob,
        retention: u32,
        received_ms: Option<i64>,
    ) -> Result<(), InboundError> {
        let conversations = Conversations::new(
            job.tenant_id.clone(),
            self.store.clone(),
            self.envelope.clone(),
        );
        let event: &InboundEvent = &job.event;
        let account = &event.account;
        let at = event.timestamp.unwrap_or_else(now_secs);
        match &event.kind {
            EventKind::CustomerMessage {
                customer,
                message_id,
                content,
                reply_to,
                ..
            } => {
                // A change of number or BSUID moves the customer's conversation (and so the
                // Bitrix24 chat) to the new identities before the notice is stored in it.
                let moved;
                let customer = match IdentityChange::from_notice(customer, content) {
                    Some(change) => {
                        moved = match conversations.rekey(account, &change).await? {
                            Some((_, now)) => now,
                            None => change.new_customer(customer),
                        };
                        tracing::info!("customer identity changed; conversation kept");
                        &moved
                    }
                    None => customer,
                };
                let message = NewMessage::from_provider(
                    message_id.as_str(),
                    Direction::Inbound,
                    Origin::Customer,
                    content.clone(),
                    at,
                    quoted(reply_to.as_ref()),
                );
                // A comment on a post does not open Instagram's messaging window; it can be
                // answered once, privately (decision 0062).
                let opens_window = !matches!(content, Content::Comment { .. });
                self.store_and_push(
                    job,
                    &conversations,
                    customer,
                    opens_window.then_some(at),
                    message,
                    (retention, received_ms),
                    true,
                )
                .await
            }
            EventKind::Postback {
                customer,
                message_id,
                title,
                payload,
            } => {
                let provider_id = message_id
                    .as_ref()
                    .map_or(event.provider_event_id.as_str(), |m| m.as_str());
                let content = Content::Button {
                    payload: payload.clone(),
                    text: title.clone(),
                };
                let message = NewMessage::from_provider(
                    provider_id,
                    Direction::Inbound,
                    Origin::Customer,
                    content,
                    at,
                    None,
                );
                self.store_and_push(
                    job,
                    &conversations,
                    customer,
                    Some(at),
                    message,
                    (retention, received_ms),
                    true,
                )
                .await
            }
            EventKind::BusinessEcho {
                customer,
                message_id,
                content,
                reply_to,
                from_agent,
                ..
            } => {
                // Instagram echoes our own sends back: those are stored already, by us.
                if let Some(known) = conversations
                    .find_message(account, message_id.as_str())
                    .await?
                {
                    if let Some(m) = conversations.message(&known).await? {
                        if matches!(m.origin, Origin::Operator | Origin::Api) {
                            tracing::debug!("echo of our own send ignored");
                            return Ok(());
                        }
                    }
                }
                let message = NewMessage::from_provider(
                    message_id.as_str(),
                    Direction::Outbound,
                    if *from_agent {
                        Origin::Agent
                    } else {
                        Origin::BusinessApp
                    },
                    content.clone(),
                    at,
                    quoted(reply_to.as_ref()),
                );
                // Not counted: the business sent it from Meta's own apps, not through us.
                self.store_and_push(
                    job,
                    &conversations,
                    customer,
                    None,
                    message,
                    (retention, received_ms),
                    false,
                )
                .await
            }
            EventKind::Edited {
                message_id,
                content,
                ..
            } => {
                let Some(target) = conversations
                    .find_message(account, message_id.as_str())
                    .await?
                else {
                    tracing::info!("edit of a message we do not hold; ignored");
                    return Ok(());
                };
                if conversations.edit_content(&target, content).await? {
                    self.enqueue(
                        job,
                        target.conversation,
                        SyncAction::Edited {
                            message_sk: target.sk,
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            EventKind::Deleted { message_id, .. } => {
                let Some(target) = conversations
                    .find_message(account, message_id.as_str())
                    .await?
                else {
                    tracing::info!("deletion of a message we do not hold; ignored");
                    return Ok(());
                };
                if conversations.mark_deleted(&target).await? {
                    self.enqueue(
                        job,
                        target.conversation,
                        SyncAction::Deleted {
                            message_sk: target.sk,
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            EventKind::Reaction {
                message_id, emoji, ..
            } => {
                let Some(target) = conversations
                    .find_message(account, message_id.as_str())
                    .await?
                else {
                    tracing::info!("reaction to a message we do not hold; ignored");
                    return Ok(());
                };
                if conversations
                    .set_reaction(&target, emoji.as_deref())
                    .await?
                {
                    self.enqueue(
                        job,
                        target.conversation,
                        SyncAction::Reaction {
                            message_sk: target.sk,
                            emoji: emoji.clone(),
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            EventKind::Status {
                message_id,
                status,
                callback,
                ..
            } => {
                let (status, failure) = match status {
                    DeliveryStatus::Sent => (MessageStatus::Sent, None),
                    DeliveryStatus::Delivered => (MessageStatus::Delivered, None),
                    DeliveryStatus::Read | DeliveryStatus::Played => (MessageStatus::Read, None),
                    DeliveryStatus::Failed { errors } => {
                        (MessageStatus::Failed, Some(describe_errors(errors)))
                    }
                };
                let message_id = message_id.as_str();
                let mut target = conversations
                    .find_message(&job.event.account, message_id)
                    .await?;
                if let (None, Some(tag)) = (&target, callback) {
                    target = self
                        .hold_early_status(job, &conversations, tag, message_id, status, &failure)
                        .await?;
                }
                self.forward_status_to(job, &conversations, target, status, failure)
                    .await
            }
            EventKind::Read {
                message_id,
                watermark,
                ..
            } => {
                let mid = message_id.as_ref().map(|m| m.as_str());
                self.forward_read(job, &conversations, mid, *watermark)
                    .await
            }
            EventKind::AccountUpdate { update } => {
                let crate::meta::AccountRef::WhatsApp(number) = account else {
                    return Ok(());
                };
                let Some(scope) = self.tenants.scope(&job.tenant_id).await? else {
                    return Ok(());
                };
                super::account::record(
                    &scope,
                    &self.store,
                    self.mailer.as_ref(),
                    number,
                    update,
                    at,
                )
                .await?;
                super::account::show_on_line(self.line_status.as_ref(), &scope, number, update)
                    .await?;
                Ok(())
            }
            EventKind::Handover {
                customer,
                action,
                new_owner_app_id,
                ours,
                ..
            } => {
                let ours = ours.unwrap_or_else(|| {
                    new_owner_app_id
                        .as_deref()
                        .is_some_and(|a| self.app_ids.iter().any(|ours| ours == a))
                });
                let Some(note) = super::account::handover(
                    &self.store,
                    &conversations,
                    job,
                    customer,
                    action,
                    new_owner_app_id.as_deref(),
                    ours,
                    (at, retention),
                )
                .await?
                else {
                    return Ok(());
                };
                self.store_and_push(
                    job,
                    &conversations,
                    customer,
                    None,
                    note,
                    (retention, received_ms),
                    false,
                )
                .await
            }
            EventKind::HistoryMessage {
                customer,
                message_id,
                content,
                by,
            } => {
                let message = NewMessage::from_provider(
                    message_id.as_str(),
                    match by {
                        Party::Business => Direction::Outbound,
                        Party::Customer => Direction::Inbound,
                    },
                    match by {
                        Party::Business => Origin::BusinessApp,
                        Party::Customer => Origin::Customer,
                    },
                    content.clone(),
                    at,
                    None,
                );
                self.import_history(job, &conversations, customer, message, retention)
                    .await
            }
            EventKind::HistoryProgress {
                phase,
                progress,
                declined,
                ..
            } => {
                if let AccountRef::WhatsApp(number) = account {
                    self.coexistence()
                        .record_progress(&job.tenant_id, number, *phase, *progress, *declined)
                        .await?;
                }
                Ok(())
            }
            EventKind::ContactSync { customer, name } => {
                let Some(phone) = &customer.phone else {
                    return Ok(());
                };
                // Only customers we talk to: the business's address book is not ours to copy.
                match conversations.conversation_of_phone(account, phone).await? {
                    Some(id) => {
                        conversations.set_saved_name(&id, name.as_deref()).await?;
                        tracing::info!(conversation = %id, "saved contact name updated");
                    }
                    None => tracing::debug!("contact of a customer we never talked to; ignored"),
                }
                Ok(())
            }
            EventKind::Mention {
                media_id,
                comment_id,
            } => {
                let AccountRef::Instagram(ig) = account else {
                    return Ok(());
                };
                let Some(customer) = crate::conversation::mentions_customer(ig) else {
                    return Ok(());
                };
                let scope = self.tenants.scope(&job.tenant_id).await?;
                let reader = self.mentions.as_ref();
                let content =
                    super::mention::content(reader, scope.as_ref(), ig, media_id, comment_id).await;
                let id = event.provider_event_id.trim_start_matches("ig:");
                let (inbound, origin) = (Direction::Inbound, Origin::Customer);
                let message = NewMessage::from_provider(id, inbound, origin, content, at, None);
                // A mention opens no messaging window: nobody can be written to from it.
                let limits = (retention, received_ms);
                self.store_and_push(job, &conversations, &customer, None, message, limits, true)
                    .await
            }
            EventKind::AccountError { errors } => {
                let codes: Vec<String> = errors
                    .iter()
                    .map(|e| e.code.map(|c| c.to_string()).unwrap_or_default())
                    .collect();
                tracing::warn!(
                    channel = account.channel().name(),
                    account = account.id(),
                    codes = codes.join(","),
                    "Meta reported account errors"
                );
                Ok(())
            }
        }
    }
}

fn quoted(reply_to: Option<&ReplyTo>) -> Option<String> {
    match reply_to {
        Some(ReplyTo::Message { message_id }) => Some(message_id.as_str().to_owned()),
        _ => None,
    }
}

/// Provider error codes and titles, for the operator's note.
fn describe_errors(errors: &[MetaError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match (e.code, e.title.as_deref()) {
            (Some(c), Some(t)) => format!("{c}: {t}"),
            (Some(c), None) => c.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "unknown error".to_owned(),
        })
        .collect();
    if parts.is_empty() {
        "failed without an error code".into()
    } else {
        parts.join("; ")
    }
}
