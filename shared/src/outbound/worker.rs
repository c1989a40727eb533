//! The send worker: one [`OutboundJob`] at a time, from the outbound queue to Meta.

use std::sync::Arc;
use std::time::Duration;

use super::attempt::{Attempt, EarlyStatus};
use super::config::{OutboundClients, OutboundConfig};
use super::plan::never_send;
use super::plan::plan;
use super::private_reply::{self, CommentRoute};
use super::progress::{SendProgress, SendState};
use super::reasons::Disposition;
use super::window::{self, Allowed};
use crate::clock::now_secs;
use crate::consumer::{Outcome, QueueRecord};
use crate::conversation::{
    ConversationError, ConversationMeta, Conversations, JobTarget, MessageRef, MessageStatus,
    Origin, StoredMessage,
};
use crate::crm_sync::SyncJob;
use crate::crypto::Envelope;
use crate::graph::{InstagramSender, WhatsAppRecipient};
use crate::idempotency::{Begin, Idempotency};
use crate::ids::{InstagramAccountId, PhoneNumberId};
use crate::meta::{AccountRef, CustomerId, CustomerRef};
use crate::metrics::Metrics;
use crate::outbound::OutboundJob;
use crate::own_attempts::{Failure, OwnAttempts};
use crate::pacing::KeyedPacer;
use crate::queue::{platform, Queue, QueueName};
use crate::store::{StoreError, TableStore};
use crate::tenant::{ChannelKind, ChannelRef, Secret, TenantDirectory, TenantError, TenantScope};

// Send attempts, recording what went out, and reconciling unknown outcomes (decision 0055).
mod reconcile;
// Turning one planned part into a WhatsApp or Instagram send.
mod sends;
use reconcile::Recording;
// An attempt an earlier delivery made, settled before the checks (decision 0127).
mod in_doubt;
use in_doubt::InDoubt;
// Operators' template commands, marketing routing, the window note's template list.
mod templated;
// A part that could not go out now: retried, or given up on after the job's last attempt.
mod stopped;
// The worker as its queue's handler: the job read, its span, the tenant's credentials.
mod handler;

/// Failures of our own side (store, keys, queue): retried through the queue.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("enqueueing a sync job: {0}")]
    Queue(String),
    #[error(transparent)]
    Progress(#[from] super::progress::ProgressError),
    #[error(transparent)]
    Templates(#[from] crate::templates::TemplateError),
    #[error("another delivery of the job recorded a send attempt meanwhile")]
    AttemptTaken,
}

/// The outcome of one part's send.
enum PartResult {
    /// Meta took it: its provider id, and the attempt recorded for it (none for a private
    /// reply, or when an earlier attempt's status settled it).
    Sent(String, Option<Attempt>),
    /// Nothing went out: Meta was not asked (pacing, a file that cannot go), or it answered
    /// with an error (the attempt is dropped then).
    Stop(Disposition),
    /// Meta was asked and its answer was lost: the send may have gone out. The attempt stays
    /// on record for the next delivery to reconcile (decision 0055).
    Unknown(Disposition),
    /// Our own failure before Meta was asked (recording the attempt): nothing went out.
    Ours(SendError),
    /// The person's erasure began before Meta was asked: nothing went out, and nothing will.
    Erased,
}

/// The operator's note for a message written in an Instagram account's mentions chat.
pub const MENTIONS_CHAT: &str = "this chat collects the Instagram account's @mentions: \
     nobody can be written to from it; answer a mention on Instagram";

/// Tries of the write that records a part's provider id after Meta took it, in place: a
/// failure there would otherwise send the part again from the next delivery.
const RECORD_TRIES: u32 = 5;
/// The first pause between those tries (doubled each time).
const RECORD_PAUSE: Duration = Duration::from_millis(25);

/// The token buckets of this process.
struct Pacers {
    whatsapp: KeyedPacer<PhoneNumberId>,
    whatsapp_coexistence: KeyedPacer<PhoneNumberId>,
    instagram: KeyedPacer<InstagramAccountId>,
    instagram_media: KeyedPacer<InstagramAccountId>,
    recipient: KeyedPacer<String>,
}

impl Pacers {
    fn new(config: &OutboundConfig) -> Self {
        Pacers {
            whatsapp: KeyedPacer::new(config.pacing.whatsapp_number),
            whatsapp_coexistence: KeyedPacer::new(config.pacing.whatsapp_coexistence),
            instagram: KeyedPacer::new(config.pacing.instagram_account),
            instagram_media: KeyedPacer::new(config.pacing.instagram_media),
            recipient: KeyedPacer::new(config.pacing.recipient),
        }
    }
}

/// Everything one job's sends need.
struct Context<'a> {
    job: &'a OutboundJob,
    meta: &'a ConversationMeta,
    message: &'a StoredMessage,
    token: Secret,
    timing: Allowed,
    instagram_sender: InstagramSender,
    /// A WhatsApp number shared with the WhatsApp Business app (Coexistence): paced at
    /// [`super::COEXISTENCE_MPS`].
    coexistence: bool,
    /// A marketing template: sent through the Marketing Messages API (decision 0050).
    marketing: bool,
    /// Whether it answers an Instagram comment (decision 0062).
    comment: CommentRoute,
    /// How many parts the message goes out in.
    parts: usize,
}

/// The outbound-worker handler. Build once per process (the pacing buckets live in it).
#[derive(Clone)]
pub struct OutboundWorker {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    tenants: TenantDirectory,
    queue: Arc<dyn Queue>,
    sync: QueueName,
    clients: OutboundClients,
    idempotency: Idempotency,
    progress: SendProgress,
    pacers: Arc<Pacers>,
    config: OutboundConfig,
    metrics: Metrics,
    /// How long a redelivery waits for Meta's status of an attempt whose outcome is unknown
    /// before it decides (decision 0055): the queue's visibility timeout.
    reconcile: Duration,
    /// Each job's failed attempts, and the move to the dead-letter queue (decision 0069).
    own: OwnAttempts,
}

fn recipient_key(meta: &ConversationMeta) -> String {
    // The conversation id stands for (tenant, account, customer): one recipient.
    meta.id.as_str().to_owned()
}

fn whatsapp_recipient(customer: &CustomerRef) -> Option<WhatsAppRecipient> {
    // Meta recommends the phone number whenever there is one; the BSUID otherwise.
    if let Some(phone) = &customer.phone {
        return Some(WhatsAppRecipient::Phone(phone.clone()));
    }
    match &customer.id {
        CustomerId::WhatsAppPhone(p) => Some(WhatsAppRecipient::Phone(p.clone())),
        CustomerId::WhatsAppUser(u) => Some(WhatsAppRecipient::User(u.clone())),
        CustomerId::Instagram(_) => None,
    }
}

impl OutboundWorker {
    pub fn new(
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        tenants: TenantDirectory,
        queue: Arc<dyn Queue>,
        clients: OutboundClients,
    ) -> Self {
        let config = OutboundConfig::default();
        OutboundWorker {
            idempotency: Idempotency::new(store.clone(), "OUT", platform::VISIBILITY),
            own: OwnAttempts::new(store.clone(), platform::OUTBOUND, "OUTTRY", "OUTRUN")
                .with_limit(config.retry.max_attempts),
            progress: SendProgress::new(store.clone(), envelope.clone()),
            pacers: Arc::new(Pacers::new(&config)),
            store,
            envelope,
            tenants,
            queue,
            sync: platform::name(platform::SYNC),
            clients,
            config,
            metrics: Metrics::off(),
            reconcile: platform::VISIBILITY,
        }
    }

    /// Holds a job's idempotency key for `lease` (the queue's visibility timeout) instead of
    /// the platform's 180 s (decision 0053).
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.idempotency = self.idempotency.with_lease(lease);
        self.reconcile = lease;
        self
    }

    /// How long a redelivery waits for Meta's status of a send whose outcome is unknown
    /// (by default the queue's visibility timeout; [`OutboundWorker::with_lease`] sets both).
    /// Never less than a Graph API call can last, whatever is set here (decision 0110).
    pub fn with_reconcile_window(mut self, window: Duration) -> Self {
        self.reconcile = window;
        self
    }

    /// Counts sends, their failures by cause and suppressed duplicates in `metrics`
    /// (decision 0038).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.own = self.own.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Where jobs go once their own attempts are exhausted, and poison at once: the outbound
    /// queue's dead-letter twin, through `queue` (decision 0069). Without it they are left
    /// to the queue's own redrive.
    pub fn with_dead_letter_queue(mut self, queue: Option<Arc<dyn Queue>>) -> Self {
        if let Some(queue) = queue {
            self.own = self.own.with_dead_letter_queue(queue);
        }
        self
    }

    /// Replaces the settings (and with them the pacing buckets).
    pub fn with_config(mut self, config: OutboundConfig) -> Self {
        self.own = self.own.with_limit(config.retry.max_attempts);
        self.pacers = Arc::new(Pacers::new(&config));
        self.config = config;
        self
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Runs one job; the outcome tells the queue what to do with it. A failure counts as one
    /// of the job's own attempts (decision 0069); after the last the operator is told and the
    /// worker moves the job to the dead-letter queue itself.
    pub async fn process(&self, job: &OutboundJob, record: &QueueRecord) -> Outcome {
        match self.try_process(job, record).await {
            Ok(Outcome::Done) => {
                self.own.succeeded(&job.tenant_id, record).await;
                Outcome::Done
            }
            // Its attempts ran out and the operator was told (`stopped`).
            Ok(Outcome::Failed) => self.own.dead_letter(Some(&job.tenant_id), record).await,
            Ok(other) => other,
            Err(e) => {
                self.metrics.failure("outbound", "internal");
                tracing::warn!(
                    tenant = %job.tenant_id,
                    conversation = %job.conversation,
                    receive_count = record.receive_count,
                    error = %e,
                    "send job failed on our side"
                );
                match self.own.failed(&job.tenant_id, record).await {
                    Failure::Retry { attempts } => {
                        Outcome::RetryAfter(self.config.retry.transient(attempts))
                    }
                    Failure::Uncounted => {
                        Outcome::RetryAfter(self.config.retry.transient(record.receive_count))
                    }
                    Failure::Exhausted { attempts } => {
                        tracing::error!(attempts, "send job exhausted its attempts");
                        self.own.dead_letter(Some(&job.tenant_id), record).await
                    }
                }
            }
        }
    }

    async fn try_process(
        &self,
        job: &OutboundJob,
        record: &QueueRecord,
    ) -> Result<Outcome, SendError> {
        let Some(JobTarget {
            scope,
            conversations,
            meta,
        }) = JobTarget::load::<SendError>(
            &self.tenants,
            &self.store,
            &self.envelope,
            &job.tenant_id,
            &job.conversation,
            "outbound",
        )
        .await?
        else {
            return Ok(Outcome::Done);
        };
        let held = match self.idempotency.begin(&job.tenant_id, &job.effect).await? {
            Begin::Started(held) => held,
            Begin::AlreadyDone => {
                self.metrics.duplicate("outbound");
                tracing::debug!("send job done before; skipped");
                return Ok(Outcome::Done);
            }
            Begin::InProgress { retry_after } => return Ok(Outcome::RetryAfter(retry_after)),
        };
        let result = self.run(job, record, &scope, &conversations, &meta).await;
        match result {
            Ok(Outcome::Done) => {
                self.idempotency.complete(&held).await?;
                Ok(Outcome::Done)
            }
            other => {
                // Not done (retry later, or an error of ours): the next delivery redoes it.
                self.idempotency.release(&held).await;
                other
            }
        }
    }

    /// The sync job that tells Bitrix24 of the message's new status.
    fn status_job(
        job: &OutboundJob,
        status: MessageStatus,
        failure: Option<String>,
        occurrence: &str,
    ) -> SyncJob {
        SyncJob::status(
            job.tenant_id.clone(),
            &job.message_ref(),
            status,
            failure,
            &format!("{occurrence}:{}", job.effect),
        )
    }

    async fn enqueue_status(
        &self,
        job: &OutboundJob,
        status: MessageStatus,
        failure: Option<String>,
        occurrence: &str,
    ) -> Result<(), SendError> {
        let sync = Self::status_job(job, status, failure, occurrence);
        self.queue
            .send_batch(&self.sync, vec![sync.to_message()])
            .await
            .map_err(|e| SendError::Queue(e.to_string()))
    }

    /// Moves the message's status and queues its sync job, also when an earlier delivery
    /// of this job moved it and stopped before queueing: the same sync job again (its
    /// deduplication id and the sync worker's idempotency post it once). True when it moved
    /// (false: the message is there or beyond by another job's move).
    async fn advance_and_enqueue(
        &self,
        conversations: &Conversations,
        job: &OutboundJob,
        status: MessageStatus,
        failure: Option<String>,
        occurrence: &str,
    ) -> Result<bool, SendError> {
        let sync = Self::status_job(job, status, failure, occurrence);
        let moved = conversations
            .advance_status(&job.message_ref(), status, &sync.effect)
            .await?;
        if moved {
            self.queue
                .send_batch(&self.sync, vec![sync.to_message()])
                .await
                .map_err(|e| SendError::Queue(e.to_string()))?;
        }
        Ok(moved)
    }

    /// Marks the message failed (once) and tells the operator why. The job is done.
    async fn fail(
        &self,
        job: &OutboundJob,
        conversations: &Conversations,
        reason: String,
    ) -> Result<Outcome, SendError> {
        tracing::info!(
            tenant = %job.tenant_id,
            conversation = %job.conversation,
            reason = %reason,
            "message not sent"
        );
        // Kept first: a delivery that stops after the move below and before its sync job is
        // queued leaves the message failed, and only the reason lets the redelivery queue
        // that job again (decision 0078).
        self.progress
            .record_failure(&job.tenant_id, &job.effect, &reason)
            .await?;
        self.enqueue_failure(conversations, job, reason).await?;
        Ok(Outcome::Done)
    }

    /// The status move of our own `failed` and the operator's note with `reason`: a stable
    /// occurrence, so a redelivery that runs it again queues the same sync job.
    ///
    /// The move is refused when Meta's status of an earlier part is there already
    /// (`delivered` or `read` outrank `failed`; or its own `failed`): the text of a reply
    /// delivered while its file could not go. The message keeps that status, and the
    /// operator is still told why this part did not go out, by the same sync job (posted
    /// once). Not for a message that is gone (erased meanwhile): nothing to tell about.
    async fn enqueue_failure(
        &self,
        conversations: &Conversations,
        job: &OutboundJob,
        reason: String,
    ) -> Result<(), SendError> {
        let moved = self
            .advance_and_enqueue(
                conversations,
                job,
                MessageStatus::Failed,
                Some(reason.clone()),
                "send-failed",
            )
            .await?;
        if !moved && conversations.message(&job.message_ref()).await?.is_some() {
            self.enqueue_status(job, MessageStatus::Failed, Some(reason), "send-failed")
                .await?;
        }
        Ok(())
    }

    /// Everything went out: the message is `Sent`, and Bitrix24 hears of it (operator
    /// messages show as delivered through `imconnector.send.status.delivery`); then the
    /// status Meta reported before a send was recorded, if any (decision 0074).
    async fn finish(
        &self,
        job: &OutboundJob,
        conversations: &Conversations,
        early: Option<EarlyStatus>,
    ) -> Result<Outcome, SendError> {
        self.advance_and_enqueue(conversations, job, MessageStatus::Sent, None, "send")
            .await?;
        self.apply_early(conversations, job, early).await?;
        Ok(Outcome::Done)
    }

    async fn run(
        &self,
        job: &OutboundJob,
        record: &QueueRecord,
        scope: &TenantScope,
        conversations: &Conversations,
        meta: &ConversationMeta,
    ) -> Result<Outcome, SendError> {
        let at: MessageRef = job.message_ref();
        let Some(message) = conversations.message(&at).await? else {
            tracing::info!("message gone (erased or expired); send job dropped");
            return Ok(Outcome::Done);
        };
        let span = tracing::Span::current();
        if let Some(im) = &message.crm_im {
            span.record("crm_chat", im.chat_id);
            span.record("crm_message", im.message_id);
        }
        if let Some(sent) = &message.sent_provider_id {
            span.record("provider_ref", crate::logging::provider_ref(sent));
        }
        if let Some(why) = never_send(&message) {
            tracing::info!(why, "message is never sent; job dropped");
            return Ok(Outcome::Done);
        }
        let SendState {
            parts: mut sent_parts,
            attempt: mut prior,
            mut early,
            failure: own_failure,
        } = self
            .progress
            .load_state(&job.tenant_id, &job.effect)
            .await?;
        // Failed by Meta, or by this job (its reason kept): a later part of a reply whose
        // earlier part Meta delivered keeps `delivered`, and is not tried again either.
        if message.status == Some(MessageStatus::Failed) || own_failure.is_some() {
            tracing::info!("message failed before; not retried");
            // Our own failure, moved by an earlier delivery that stopped before its sync job
            // was queued (decision 0078): queued again. The move's condition passes only for
            // this job's own move, as it did then.
            if let Some(reason) = own_failure {
                self.enqueue_failure(conversations, job, reason).await?;
            }
            // Meta's `failed` of a send recorded late, applied by an earlier delivery that
            // stopped before its sync job was queued (decision 0074): queued again.
            let failed = early.filter(|e| e.status == MessageStatus::Failed);
            self.apply_early(conversations, job, failed).await?;
            return Ok(Outcome::Done);
        }
        if let (Some(sent), true) = (&message.sent_provider_id, sent_parts.is_empty()) {
            // Sent by an earlier delivery that stopped before acknowledging.
            let early = self
                .with_early_read(conversations, &meta.account, sent, early)
                .await?;
            return self.finish(job, conversations, early).await;
        }

        let account = &meta.account;
        let retention = scope
            .profile()
            .await?
            .map(|p| p.retention_days)
            .unwrap_or(crate::tenant::DEFAULT_RETENTION_DAYS);
        let recording = Recording {
            job,
            account,
            conversations,
            retention,
        };
        // An attempt Meta may have taken is settled before the checks below run again
        // (decision 0127): they decide whether to send, and must not fail a part that went
        // out because something changed since (the window closed, the number was
        // restricted, the template paused).
        match self
            .settle_in_doubt(
                &recording,
                (&mut sent_parts, message.sent_provider_id.as_deref()),
                prior.as_ref(),
                &mut early,
            )
            .await?
        {
            InDoubt::None => {}
            InDoubt::Wait(wait) => return Ok(Outcome::RetryAfter(wait)),
            InDoubt::AllSent => {
                self.relayed(job, meta, &message).await?;
                return self.finish(job, conversations, early).await;
            }
        }
        let channel_ref = ChannelRef::of(account);
        if self.tenants.resolve(&channel_ref).await?.as_ref() != Some(&job.tenant_id) {
            return self
                .fail(
                    job,
                    conversations,
                    "the channel is no longer connected to this account".into(),
                )
                .await;
        }
        let token = match scope.channel_secret(&channel_ref, "access_token").await {
            Ok(t) => t,
            Err(TenantError::ChannelNotFound(_)) | Err(TenantError::Invalid(_)) => {
                return self
                    .fail(
                        job,
                        conversations,
                        "the channel has no access token: reconnect it".into(),
                    )
                    .await
            }
            Err(e) => return Err(e.into()),
        };
        // The account's mentions chat names nobody to write to (decision 0067).
        if crate::conversation::is_mentions_chat(account, &meta.customer.id) {
            return self.fail(job, conversations, MENTIONS_CHAT.into()).await;
        }
        // A number Meta banned or restricted: stopped here with the reason, not sent to
        // fail one by one; sends go again once the status is lifted (decision 0051).
        if let Some(block) = super::blocked(scope, &channel_ref, message.template.is_some()).await?
        {
            return self.fail(job, conversations, block.reason()).await;
        }
        let channel = account.channel();
        let resolved = match self.resolve_template(scope, account, &message).await? {
            Ok(r) => r,
            Err(reason) => return self.fail(job, conversations, reason).await,
        };
        let decided = window::decide(
            channel,
            message.origin,
            resolved.template.is_some(),
            meta.last_inbound_at,
            now_secs(),
        );
        let timing = match decided {
            Ok(t) => t,
            // An Instagram comment may still take a private reply (decided below).
            Err(_) if matches!(account, AccountRef::Instagram(_)) => Allowed::Standard,
            Err(reason) => {
                let note = self.outside_window_note(scope, account, reason).await?;
                return self.fail(job, conversations, note).await;
            }
        };
        let content = message.content.as_ref().expect("checked by never_send");
        let parts = match plan(channel, message.origin, content, resolved.template.as_ref()) {
            Ok(p) => p,
            Err(reason) => return self.fail(job, conversations, reason).await,
        };
        // Instagram comments are answered once, by private reply (decision 0062).
        let comment = match account {
            AccountRef::Instagram(_) => {
                let window = decided.map(|_| ());
                match private_reply::route(conversations, &message, &parts, window, now_secs())
                    .await?
                {
                    Ok(route) => route,
                    Err(note) => return self.fail(job, conversations, note).await,
                }
            }
            AccountRef::WhatsApp(_) => CommentRoute::Direct,
        };
        if let CommentRoute::PrivateReply(c) = &comment {
            if !conversations
                .claim_private_reply(&c.at, &message.at.sk)
                .await?
            {
                let note = private_reply::ALREADY_ANSWERED.to_owned();
                return self.fail(job, conversations, note).await;
            }
        }
        let (instagram_sender, coexistence) = match account {
            AccountRef::Instagram(_) => (self.instagram_sender(scope, account).await?, false),
            AccountRef::WhatsApp(n) => (
                InstagramSender::Me,
                scope
                    .channel(&ChannelRef::WhatsApp(n.clone()))
                    .await?
                    .is_some_and(|c| {
                        c.details
                            .get(crate::tenant::channel::COEXISTENCE_DETAIL)
                            .is_some_and(|v| v == "true")
                    }),
            ),
        };
        let cx = Context {
            job,
            meta,
            message: &message,
            token,
            timing,
            instagram_sender,
            coexistence,
            marketing: resolved.marketing,
            comment,
            parts: parts.len(),
        };
        // Meta's agent (or another app) holds the Instagram conversation: take it back
        // before the operator's reply (decision 0051).
        if matches!(account, AccountRef::Instagram(_))
            && matches!(message.origin, Origin::Operator | Origin::Api)
            && sent_parts.iter().all(Option::is_none)
        {
            super::handover::take_back(
                &self.store,
                &self.clients,
                meta,
                &job.tenant_id,
                &cx.instagram_sender,
                &cx.token,
            )
            .await?;
        }
        // The operator answered: the customer sees their messages read and the business
        // typing, before the reply's first part (again if that part is retried, which only
        // refreshes the typing bubble; not once a part went out).
        if message.origin == Origin::Operator && sent_parts.iter().all(Option::is_none) {
            super::acknowledge::acknowledge(
                &self.clients,
                conversations,
                meta,
                &cx.token,
                &cx.instagram_sender,
            )
            .await;
        }
        sent_parts.resize(parts.len().max(sent_parts.len()), None);
        let mut sent_now = false;
        for (i, part) in parts.iter().enumerate() {
            if sent_parts[i].is_some() {
                continue;
            }
            self.before_resend(&cx, prior.as_ref(), i).await?;
            let result = match account {
                AccountRef::WhatsApp(number) => {
                    self.send_whatsapp(&cx, number, part, i, prior.as_ref())
                        .await
                }
                AccountRef::Instagram(_) => self.send_instagram(&cx, part, i, prior.as_ref()).await,
            };
            match result {
                PartResult::Sent(provider_id, attempt) => {
                    sent_now = true;
                    span.record("provider_ref", crate::logging::provider_ref(&provider_id));
                    sent_parts[i] = Some(provider_id.clone());
                    // Before anything else, and retried in place: a redelivery must find it
                    // sent, and Meta's statuses must find the message.
                    // Sent by a later attempt of the part (decision 0111).
                    let again = attempt
                        .as_ref()
                        .or(prior.as_ref().filter(|p| p.part == i))
                        .is_some_and(|a| a.number > 1);
                    early = self
                        .part_sent(&recording, again, &sent_parts, i, early)
                        .await?;
                    // The attempt stays on the progress item (its tag names its part): the
                    // next part's attempt is recorded over it.
                    if attempt.is_some() {
                        prior = attempt;
                    }
                    tracing::info!(
                        tenant = %job.tenant_id,
                        conversation = %job.conversation,
                        channel = channel.name(),
                        part = i,
                        "sent"
                    );
                }
                PartResult::Stop(d) => {
                    return self
                        .stopped(&cx, conversations, record, d, i, parts.len())
                        .await
                }
                PartResult::Unknown(d) => {
                    // Not before Meta's status of this attempt had its time to come.
                    let outcome = self
                        .stopped(&cx, conversations, record, d, i, parts.len())
                        .await?;
                    return Ok(match outcome {
                        Outcome::RetryAfter(wait) => {
                            Outcome::RetryAfter(wait.max(self.reconcile_window()))
                        }
                        other => other,
                    });
                }
                PartResult::Ours(e) => return Err(e),
                PartResult::Erased => {
                    tracing::info!("work of an erased subject dropped before its send");
                    return Ok(Outcome::Done);
                }
            }
        }
        if sent_now {
            self.relayed(job, meta, &message).await?;
        }
        self.finish(job, conversations, early).await
    }

    /// Instagram accounts connected through a Facebook Page send from the Page's endpoint on
    /// graph.facebook.com; those connected with Instagram Login from `me` on
    /// graph.instagram.com.
    async fn instagram_sender(
        &self,
        scope: &TenantScope,
        account: &AccountRef,
    ) -> Result<InstagramSender, SendError> {
        let page = scope
            .channels()
            .await?
            .into_iter()
            .find(|c| c.kind == ChannelKind::Instagram && c.id == account.id())
            .and_then(|c| c.details.get("page_id").cloned())
            .and_then(|p| InstagramAccountId::parse(&p).ok());
        Ok(page.map_or(InstagramSender::Me, InstagramSender::Page))
    }

    /// Takes the pacing tokens for one send; `Err(wait)` when it must wait longer than the
    /// handler may.
    async fn pace(
        &self,
        account: &AccountRef,
        meta: &ConversationMeta,
        media: bool,
        coexistence: bool,
    ) -> Result<(), Duration> {
        self.pacers.recipient.acquire(&recipient_key(meta)).await?;
        match account {
            AccountRef::WhatsApp(n) if coexistence => {
                self.pacers.whatsapp_coexistence.acquire(n).await
            }
            AccountRef::WhatsApp(n) => self.pacers.whatsapp.acquire(n).await,
            AccountRef::Instagram(a) => {
                if media {
                    self.pacers.instagram_media.acquire(a).await?;
                }
                self.pacers.instagram.acquire(a).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
