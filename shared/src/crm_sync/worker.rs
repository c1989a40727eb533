//! The sync-worker worker: runs [`SyncJob`]s against the tenant's Bitrix24 portal.
//!
//! - Customer messages (and echoes of the business's own app) go to the Open Line with
//!   `imconnector.send.messages`: the customer is a stable external user (the conversation
//!   id), the conversation a stable external chat, the provider's message id the external
//!   message id. The Bitrix24 chat id is stored on the conversation, and the sync on the
//!   message, so a redelivered job never posts twice.
//! - Edits and deletions use `imconnector.update.messages` / `delete.messages`; reactions and
//!   failed deliveries become a visible note in the chat.
//! - Delivery and read statuses of operator messages go out with
//!   `imconnector.send.status.delivery` / `.reading` once the send path has recorded the
//!   Bitrix24 ids of the operator message (`crm_im_chat_id`, `crm_im_message_id`).
//!
//! Every one of these becomes one operation staged in the portal's outbox; whichever process
//! holds the portal's lease posts all staged operations in one `batch` request at the pace
//! the portal allows, and the job waits for its operation's outcome (decision 0023).
//!
//! Errors: an expired token is refreshed once and the new pair stored encrypted (by the
//! client, through `PortalTokens`); every other failure is retried later through the queue
//! with a jittered, growing delay ([`RetryPolicy`]), never in a loop. The job's own attempts
//! are counted in the dedupe table; once they are exhausted (N attempts over at least 24 h,
//! decision 0022) the worker moves the job to the sync dead-letter queue itself, unless the
//! failure is the portal's: then the portal and its work are parked until a probe reaches
//! it again (decision 0025, [`super::parking`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tracing::Instrument;

use super::chat::{crm_user_id, excerpt, failure_class, note_message, reply_quote};
use super::flush::{Clock, FlushConfig, FlushError, PortalFlusher};
use super::outbox::{CrmOp, OpState, Outbox, OutboxError, PostLookup, KILLED_ITS_WORKER};
use super::parking::{is_portal_failure, Gate, Parking};
use super::profile::CustomerProfiles;
use super::retry::RetryPolicy;
use super::{SyncAction, SyncJob};
use crate::acting::acting_for;
use crate::bitrix::{
    imconnector, BitrixClient, BitrixError, ConnectorId, CrmFile, DeleteCrmMessage, OpenLineId,
    StatusUpdate,
};
use crate::clock::now_millis;
use crate::consumer::{Outcome, QueueRecord, RecordHandler};
use crate::conversation::erased::ErasedSubjects;
use crate::conversation::{
    ConversationError, ConversationMeta, Conversations, JobTarget, MessageRef, MessageStatus,
    Origin, StoredMessage,
};
use crate::crypto::Envelope;
use crate::idempotency::{Attempts, Idempotency};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Media};
use crate::metrics::{direction, Metrics};
use crate::portal::providers;
use crate::portal::{Connectors, Portal, PortalError};
use crate::queue::{platform, Queue};
use crate::store::{Key, TableStore};
use crate::tenant::{ChannelRef, TenantDirectory, TenantError, TenantScope};

mod dead_letter;
mod message;
mod outcome;
mod provider_failed;
mod push_hold;
use push_hold::HeldPush;

/// Makes a URL Bitrix24 can fetch a message's media from (see the media module); None when
/// the media cannot be linked.
#[async_trait]
pub trait MediaLinker: Send + Sync {
    async fn link(&self, tenant: &TenantId, account: &AccountRef, media: &Media)
        -> Option<CrmFile>;

    /// A link for media of `conversation`, refused once its subject is erased.
    async fn link_in(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        conversation: &str,
        media: &Media,
    ) -> Option<CrmFile> {
        let _ = conversation;
        self.link(tenant, account, media).await
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Bitrix(#[from] BitrixError),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The tenant's Bitrix24 connection is missing or incomplete.
    #[error("{0}")]
    NotConnected(String),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The staged operation failed (stored kinds and codes only).
    #[error("Bitrix24 operation failed: {kind} {code:?}")]
    Operation {
        kind: String,
        code: Option<String>,
        retry_after: Option<Duration>,
        operation_level: bool,
    },
    /// Not tried yet (the portal's flusher is busy elsewhere): come back soon, no attempt
    /// counted.
    #[error("waiting for the portal's flusher")]
    Waiting(Duration),
    /// The message's push hold was taken over by another delivery while this one worked
    /// (decision 0105): that delivery finishes it.
    #[error("push taken over by another delivery")]
    TakenOver,
}

impl From<FlushError> for SyncError {
    fn from(e: FlushError) -> Self {
        match e {
            FlushError::Outbox(e) => SyncError::Outbox(e),
            FlushError::Store(e) => SyncError::Store(e),
            FlushError::Portal(e) => e.into(),
        }
    }
}

/// A waiting job tries to take the portal's lease every this many `WaitConfig::poll`s; its
/// looks at an operation another process posts slow down to the same period.
const FLUSH_EVERY_POLLS: u32 = 10;

/// How long a job waits for its staged operation before giving its record back to the queue
/// (no attempt counted), and how soon it first looks at it when this process's flusher has
/// not settled it (decision 0084: later looks back off to one per flush attempt).
#[derive(Clone, Copy, Debug)]
pub struct WaitConfig {
    pub poll: Duration,
    pub max_wait: Duration,
}

impl Default for WaitConfig {
    fn default() -> Self {
        WaitConfig {
            poll: Duration::from_millis(100),
            max_wait: Duration::from_secs(20),
        }
    }
}

impl From<PortalError> for SyncError {
    fn from(e: PortalError) -> Self {
        match e {
            PortalError::NotConnected(reason) => SyncError::NotConnected(reason),
            PortalError::Tenant(e) => SyncError::Tenant(e),
        }
    }
}

/// The sync-worker handler. Build once per process.
#[derive(Clone)]
pub struct SyncWorker {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    tenants: TenantDirectory,
    client: BitrixClient,
    idempotency: Idempotency,
    connectors: Connectors,
    retry: RetryPolicy,
    attempts: Attempts,
    dead_letter: Option<Arc<dyn Queue>>,
    parking: Option<Parking>,
    media: Option<Arc<dyn MediaLinker>>,
    profiles: Option<CustomerProfiles>,
    outbox: Outbox,
    flusher: PortalFlusher,
    wait: WaitConfig,
    clock: Clock,
    metrics: Metrics,
    /// How long a delivery holds a message's push (decision 0105): the `SYNC` record's lease.
    hold_lease: Duration,
}

impl SyncWorker {
    pub fn new(
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        tenants: TenantDirectory,
        client: BitrixClient,
    ) -> Self {
        let clock: Clock = Arc::new(now_millis);
        let outbox = Outbox::new(store.clone(), envelope.clone());
        let flusher = PortalFlusher::new(
            outbox.clone(),
            store.clone(),
            client.clone(),
            FlushConfig::default(),
            clock.clone(),
        );
        SyncWorker {
            idempotency: Idempotency::new(store.clone(), "SYNC", platform::VISIBILITY),
            attempts: Attempts::new(store.clone(), "SYNCTRY"),
            outbox,
            flusher,
            wait: WaitConfig::default(),
            clock,
            store,
            envelope,
            tenants,
            client,
            connectors: Connectors::default(),
            retry: RetryPolicy::default(),
            dead_letter: None,
            parking: None,
            media: None,
            profiles: None,
            metrics: Metrics::off(),
            hold_lease: platform::VISIBILITY,
        }
    }

    /// Holds a job's idempotency key for `lease` (the queue's visibility timeout) instead of
    /// the platform's 180 s (decision 0053).
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.idempotency = self.idempotency.with_lease(lease);
        self.hold_lease = lease;
        self
    }

    /// Counts relayed messages, their latency, failures, duplicates and dead-lettered jobs in
    /// `metrics` (decision 0038).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Batching and pacing into portals.
    pub fn with_flush_config(mut self, config: FlushConfig) -> Self {
        self.flusher = PortalFlusher::new(
            self.outbox.clone(),
            self.store.clone(),
            self.client.clone(),
            config,
            self.clock.clone(),
        )
        .with_media_links(self.media.clone());
        self
    }

    pub fn with_wait(mut self, wait: WaitConfig) -> Self {
        self.wait = wait;
        self
    }

    /// The clock attempts, claims and the limiter read (tests simulate hours with it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        let config = *self.flusher.config();
        let secs = clock.clone();
        self.idempotency = self.idempotency.with_clock(Arc::new(move || secs() / 1000));
        self.clock = clock;
        self.with_flush_config(config)
    }

    pub fn with_connectors(mut self, connectors: Connectors) -> Self {
        self.connectors = connectors;
        self
    }

    /// Links media for Bitrix24: the flusher makes the links just before each post
    /// (decision 0048).
    pub fn with_media_links(mut self, media: Arc<dyn MediaLinker>) -> Self {
        self.media = Some(media);
        let config = *self.flusher.config();
        self.with_flush_config(config)
    }

    /// Shows Instagram customers with the name and picture of their profile (issue 16 item
    /// 12).
    pub fn with_profiles(mut self, profiles: CustomerProfiles) -> Self {
        self.profiles = Some(profiles);
        self
    }

    /// Where exhausted jobs go: the sync queue's dead-letter twin, through `queue`.
    pub fn with_dead_letter_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.dead_letter = Some(queue);
        self
    }

    /// Parks the work of a portal that stays unreachable instead of dead-lettering it
    /// (decision 0025).
    pub fn with_parking(mut self, parking: Parking) -> Self {
        self.parking = Some(parking);
        self
    }

    /// Runs one job; the outcome tells the queue what to do with it. A failure counts as one
    /// attempt of the job's own (decision 0022): retried after a jittered backoff, or moved to
    /// the dead-letter queue once the policy's attempts and span are exhausted (parked with
    /// its portal instead when the portal failed it, decision 0025).
    pub async fn process(&self, job: &SyncJob, record: &QueueRecord) -> Outcome {
        // A parked portal's jobs are parked without calling Bitrix24 (decision 0025).
        let released = match &self.parking {
            Some(parking) => match parking.gate(job, record).await {
                Gate::Run(released) => released,
                Gate::Held(outcome) => return outcome,
            },
            None => None,
        };
        let e = match self.try_process(job).await {
            Ok(outcome) => {
                if let (true, Some(p), Some(r)) = (outcome.is_done(), &self.parking, &released) {
                    p.settle(r).await;
                }
                // A first delivery cannot have failed before: spare it the write.
                if outcome.is_done() && record.receive_count > 1 {
                    if let Err(e) = self.attempts.clear(&job.tenant_id, &job.effect).await {
                        tracing::warn!(error = %e, "could not clear a sync job's attempts");
                    }
                }
                return outcome;
            }
            // Not tried: no attempt counted (decision 0023).
            Err(SyncError::Waiting(delay)) => return Outcome::RetryAfter(delay),
            // Another delivery finishes it (decision 0105): not a failure of this one.
            Err(SyncError::TakenOver) => return Outcome::RetryAfter(Duration::from_secs(1)),
            Err(e) => e,
        };
        let kind = match &e {
            SyncError::Bitrix(b) => b.kind(),
            SyncError::Operation { kind, .. } => kind.as_str(),
            SyncError::NotConnected(_) => "not_connected",
            _ => "internal",
        };
        self.metrics.failure("sync", failure_class(kind));
        if kind == KILLED_ITS_WORKER {
            // Every retry would stage it again and kill more flushers: the job ends now,
            // where an exhausted one ends (decision 0091).
            tracing::error!(
                tenant = %job.tenant_id,
                conversation = %job.conversation,
                kind,
                "CRM sync job's operation killed every flusher that posted it; dead-lettered"
            );
            return self.dead_letter_job(job, record, released.as_ref()).await;
        }
        let now = (self.clock)();
        let attempt = match self.attempts.failed(&job.tenant_id, &job.effect, now).await {
            Ok(a) => a,
            Err(store) => {
                tracing::warn!(error = %store, "could not record a sync job's attempt");
                return Outcome::RetryAfter(self.retry.delay(record.receive_count, &job.effect));
            }
        };
        if self.retry.exhausted(&attempt, now) {
            tracing::error!(
                tenant = %job.tenant_id,
                conversation = %job.conversation,
                kind,
                error = %e,
                attempts = attempt.count,
                "CRM sync job exhausted its attempts"
            );
            if let Some(parking) = self.parking.as_ref().filter(|_| is_portal_failure(kind)) {
                // The staged operation stays (failed, with its ambiguity) for the resumed job.
                let outcome = parking
                    .park_exhausted(job, record, released.as_ref(), kind)
                    .await;
                if outcome.is_done() {
                    if let Err(e) = self.attempts.clear(&job.tenant_id, &job.effect).await {
                        tracing::warn!(error = %e, "could not clear a sync job's attempts");
                    }
                }
                return outcome;
            }
            return self.dead_letter_job(job, record, released.as_ref()).await;
        }
        let backoff = self.retry.delay(attempt.count, &job.effect);
        let floor = match &e {
            SyncError::Bitrix(b) => b.retry_after(),
            SyncError::Operation { retry_after, .. } => *retry_after,
            _ => None,
        };
        let delay = floor.map_or(backoff, |after| after.max(backoff));
        tracing::warn!(
            tenant = %job.tenant_id,
            conversation = %job.conversation,
            kind,
            error = %e,
            attempts = attempt.count,
            retry_in_ms = delay.as_millis() as u64,
            "CRM sync job did not complete"
        );
        Outcome::RetryAfter(delay)
    }

    async fn try_process(&self, job: &SyncJob) -> Result<Outcome, SyncError> {
        if let SyncAction::ProviderFailed {
            provider_message_id,
        } = &job.action
        {
            // About no stored message nor conversation: loaded apart (decision 0135).
            let Some(scope) = self.tenants.scope_for_invocation(&job.tenant_id).await? else {
                tracing::info!("tenant gone; sync job dropped");
                return Ok(Outcome::Done);
            };
            let post = self.post_provider_failed(job, &scope, provider_message_id);
            return self.under_hold(job, post).await;
        }
        let Some(JobTarget {
            scope,
            conversations,
            meta,
        }) = JobTarget::load::<SyncError>(
            &self.tenants,
            &self.store,
            &self.envelope,
            &job.tenant_id,
            &job.conversation,
            "sync",
        )
        .await?
        else {
            return Ok(Outcome::Done);
        };
        // A customer's message is held on its own item when that is small (decision 0105).
        let mut read = None;
        if let SyncAction::PushMessage { message_sk } = &job.action {
            match self
                .push_held(job, &scope, &conversations, &meta, message_sk)
                .await?
            {
                HeldPush::Finished(outcome) => return Ok(outcome),
                HeldPush::TooLarge(message) => read = Some(*message),
            }
        }
        let run = self.run(job, &scope, &conversations, &meta, read, None);
        self.under_hold(job, run).await
    }

    /// Runs the job up to its outcome; returns the keys of the operations it staged, to be
    /// dropped once the job is recorded done.
    /// `read`: the message, when the caller read it already (a customer's message's push,
    /// decision 0105); `holder`: the holder of its push hold, None when the job holds its
    /// `SYNC` record.
    async fn run(
        &self,
        job: &SyncJob,
        scope: &TenantScope,
        conversations: &Conversations,
        meta: &ConversationMeta,
        read: Option<StoredMessage>,
        holder: Option<&str>,
    ) -> Result<Vec<Key>, SyncError> {
        let sk = match &job.action {
            SyncAction::PushMessage { message_sk }
            | SyncAction::Status { message_sk, .. }
            | SyncAction::Reaction { message_sk, .. }
            | SyncAction::Edited { message_sk }
            | SyncAction::Deleted { message_sk } => message_sk,
            SyncAction::ProviderFailed { .. } => return Ok(Vec::new()),
        };
        let at = MessageRef {
            conversation: job.conversation.clone(),
            sk: sk.clone(),
        };
        let message = match read {
            Some(message) => message,
            None => match conversations.message(&at).await? {
                Some(message) => message,
                None => {
                    tracing::info!("message gone (erased or expired); sync job dropped");
                    return Ok(Vec::new());
                }
            },
        };
        let span = tracing::Span::current();
        // A message we sent is known to the provider by the id it gave us.
        let provider_id = message
            .sent_provider_id
            .as_deref()
            .unwrap_or(&message.provider_message_id);
        span.record("provider_ref", crate::logging::provider_ref(provider_id));
        if let Some(chat) = &meta.crm_chat_id {
            span.record("crm_chat", chat.as_str());
        }
        if let Some(im) = &message.crm_im {
            span.record("crm_message", im.message_id);
        }
        if matches!(job.action, SyncAction::PushMessage { .. })
            && !message.crm_message_ids.is_empty()
        {
            self.metrics.duplicate("sync");
            // Synced by an earlier delivery of this job, which may have left its operations.
            return Ok(outcome::staged_keys(job));
        }
        // Instagram customers' names and pictures (issue 16 item 12).
        let refreshed;
        let meta = match (&self.profiles, &job.action) {
            (Some(p), SyncAction::PushMessage { .. } | SyncAction::Edited { .. }) => {
                refreshed = p.refreshed(scope, conversations, meta).await;
                &refreshed
            }
            _ => meta,
        };
        let portal = Portal::load(scope).await?;
        let connector = self.connectors.for_account(&meta.account).clone();
        // The channel's own Open Line if it has one, else the portal's (decision 0043).
        let line = portal.line_for(&ChannelRef::of(&meta.account));
        let quote = reply_quote(conversations, meta, &message).await;
        let Some(op) = self
            .operation(job, meta, &message, &connector, line, quote)
            .await?
        else {
            return Ok(Vec::new());
        };
        let key = Outbox::key(&job.tenant_id, job.conversation.as_str(), &job.effect);
        let mut heard = self.watch_outcome(&key);
        let state = self
            .outbox
            .stage(&job.tenant_id, &key, &op, (self.clock)())
            .await?;
        // Written, then read (decision 0129): the job's check of the person's erasure came
        // at its load, and an erasure that began since may have deleted the conversation's
        // staged operations already, before this one was staged. Read again now that it is:
        // one no flusher has claimed yet is withdrawn, and nothing of the person is posted.
        if matches!(state, OpState::Pending)
            && ErasedSubjects::new(self.store.clone())
                .covers(&job.tenant_id, &job.conversation, meta.created_at_ms)
                .await?
            && self.outbox.withdraw(&key).await?
        {
            tracing::info!("operation of a subject being erased withdrawn before its post");
            return Ok(Vec::new());
        }
        let Some(sent) = self.outcome_of(scope, &key, &mut heard, state).await? else {
            // Removed under us (a contact erasure): nothing left to do.
            return Ok(Vec::new());
        };
        // Only a chat the conversation did not know yet: a field recorded twice shows twice in
        // the text log.
        if let Some(chat) = sent
            .crm_chat_id
            .as_ref()
            .filter(|chat| meta.crm_chat_id.as_ref() != Some(*chat))
        {
            span.record("crm_chat", chat.as_str());
        }
        let mut note = None;
        if matches!(job.action, SyncAction::PushMessage { .. }) {
            // Before the post is recorded synced: a redelivery must still find it to note.
            if !sent.missing.is_none() {
                let chat = sent
                    .crm_chat_id
                    .clone()
                    .or_else(|| meta.crm_chat_id.clone());
                note = Some(
                    self.note_missing_files(
                        job,
                        scope,
                        meta,
                        &message,
                        &connector,
                        line,
                        chat,
                        &sent.missing,
                    )
                    .await?,
                );
            }
            if message.origin == Origin::Customer {
                let channel = meta.account.channel().name();
                self.metrics.relayed(direction::INBOUND, channel);
                if let Some(received) = job.received_ms {
                    let elapsed = crate::clock::now_millis() - received;
                    self.metrics.webhook_to_bitrix24(channel, elapsed);
                }
            }
            self.record_sent(conversations, meta, &at, &message, sent.crm_chat_id, holder)
                .await?;
        }
        tracing::info!(method = %op.method, "posted to Bitrix24");
        Ok([Some(key), note].into_iter().flatten().collect())
    }

    /// The one Bitrix24 call the job needs, or None when there is nothing to tell.
    async fn operation(
        &self,
        job: &SyncJob,
        meta: &ConversationMeta,
        message: &StoredMessage,
        connector: &ConnectorId,
        line: OpenLineId,
        quote: Option<String>,
    ) -> Result<Option<CrmOp>, SyncError> {
        let post = |method: &str,
                    entry: Value,
                    lookup: Option<PostLookup>|
         -> Result<Option<CrmOp>, SyncError> {
            Ok(Some(CrmOp {
                method: method.to_owned(),
                params: imconnector::messages_params(connector, line, vec![entry])?,
                lookup,
                files: Vec::new(),
            }))
        };
        let lookup = |external_id: String| {
            Some(PostLookup {
                external_id,
                crm_chat_id: meta.crm_chat_id.clone(),
            })
        };
        match &job.action {
            SyncAction::PushMessage { .. } => {
                let crm = self
                    .crm_message(
                        &job.tenant_id,
                        meta,
                        message,
                        message.content.as_ref(),
                        quote,
                    )
                    .await;
                let id = crm.message_id.clone();
                let param = self
                    .as_echo_author(job, meta, message, crm.to_param()?)
                    .await?;
                let op = post(imconnector::SEND_MESSAGES, param, lookup(id))?;
                Ok(op.map(|op| CrmOp {
                    files: self.files_to_link(meta, message.content.as_ref()),
                    ..op
                }))
            }
            SyncAction::Edited { .. } => {
                let crm = self
                    .crm_message(
                        &job.tenant_id,
                        meta,
                        message,
                        message.content.as_ref(),
                        quote,
                    )
                    .await;
                let param = self
                    .as_echo_author(job, meta, message, crm.to_param()?)
                    .await?;
                let op = post(imconnector::UPDATE_MESSAGES, param, None)?;
                Ok(op.map(|op| CrmOp {
                    files: self.files_to_link(meta, message.content.as_ref()),
                    ..op
                }))
            }
            SyncAction::Deleted { .. } => {
                let delete = DeleteCrmMessage {
                    user_id: crm_user_id(meta),
                    chat_id: meta.id.as_str().to_owned(),
                    message_id: message.provider_message_id.clone(),
                };
                post(imconnector::DELETE_MESSAGES, delete.to_param()?, None)
            }
            SyncAction::Reaction { emoji, .. } => {
                let quoted = message
                    .content
                    .as_ref()
                    .map(|c| excerpt(&c.text_for_crm()))
                    .unwrap_or_default();
                let note = match emoji {
                    Some(e) => format!("[reaction {e} to: \u{201c}{quoted}\u{201d}]"),
                    None => format!("[reaction removed from: \u{201c}{quoted}\u{201d}]"),
                };
                let crm = note_message(meta, &job.effect, note);
                let id = crm.message_id.clone();
                post(imconnector::SEND_MESSAGES, crm.to_param()?, lookup(id))
            }
            SyncAction::Status {
                status, failure, ..
            } => {
                // A message a CRM robot sent through our message provider: its status goes
                // to the provider's message, not to an Open Line chat (decision 0050).
                if let Some((code, id)) = providers::provider_ref(&message.provider_message_id) {
                    let status = match status {
                        MessageStatus::Sent => "sent",
                        MessageStatus::Failed => "failed",
                        MessageStatus::Delivered | MessageStatus::Read => "delivered",
                    };
                    return Ok(Some(CrmOp {
                        method: providers::STATUS_UPDATE.to_owned(),
                        params: providers::status_params(code, id, status),
                        lookup: None,
                        files: Vec::new(),
                    }));
                }
                if *status == MessageStatus::Failed {
                    let reason = failure.clone().unwrap_or_else(|| "no reason given".into());
                    let quoted = message
                        .content
                        .as_ref()
                        .map(|c| excerpt(&c.text_for_crm()))
                        .unwrap_or_default();
                    let note = format!(
                        "[not delivered to the customer: \u{201c}{quoted}\u{201d}; reason: {reason}]"
                    );
                    let crm = note_message(meta, &job.effect, note);
                    let id = crm.message_id.clone();
                    return post(imconnector::SEND_MESSAGES, crm.to_param()?, lookup(id));
                }
                let Some(im) = message.crm_im else {
                    // Only operator messages have Bitrix24 ids to report a status for.
                    return Ok(None);
                };
                let update = StatusUpdate {
                    im,
                    message_ids: vec![message.provider_message_id.clone()],
                    chat_id: meta.id.as_str().to_owned(),
                    date: Some(crate::clock::now_secs()),
                };
                let method = match status {
                    MessageStatus::Read => imconnector::SEND_STATUS_READING,
                    _ => imconnector::SEND_STATUS_DELIVERY,
                };
                post(method, update.to_param()?, None)
            }
            // Posted by its own path, without a stored message (decision 0135).
            SyncAction::ProviderFailed { .. } => Ok(None),
        }
    }
}

#[async_trait]
impl RecordHandler for SyncWorker {
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        match serde_json::from_str::<SyncJob>(&record.body) {
            Ok(job) => {
                // The step's correlation ids on every line it logs (decision 0038).
                let span = tracing::info_span!(
                    "sync",
                    tenant = %job.tenant_id,
                    conversation = %job.conversation,
                    message = job.message_sk(),
                    provider_ref = tracing::field::Empty,
                    crm_chat = tracing::field::Empty,
                    crm_message = tracing::field::Empty,
                );
                // The job's work runs with the tenant's scoped credentials (decision 0037).
                acting_for(&job.tenant_id.clone(), self.process(&job, record))
                    .instrument(span)
                    .await
            }
            Err(e) => {
                // No retry can make it readable: straight to the dead-letter queue.
                tracing::error!(message_id = %record.message_id, line = e.line(), column = e.column(), "unreadable sync job");
                self.move_to_dead_letter(record).await
            }
        }
    }
}
