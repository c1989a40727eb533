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
//! Errors: an expired token is refreshed once and the new pair stored encrypted (by the
//! client, through [`PortalTokens`]); every other failure is retried later through the queue
//! with a jittered, growing delay ([`RetryPolicy`]), never in a loop. The job's own attempts
//! are counted in the dedupe table; once they are exhausted (N attempts over at least 24 h,
//! decision 0022) the worker moves the job to the sync dead-letter queue itself, unless the
//! failure is the portal's: then the portal and its work are parked until a probe reaches
//! it again (decision 0025, [`super::parking`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::parking::{is_portal_failure, Gate, Parking};
use super::{SyncAction, SyncJob};
use crate::bitrix::{
    BitrixClient, BitrixError, ConnectorId, CrmChat, CrmFile, CrmUser, DeleteCrmMessage,
    OpenLineId, OutgoingCrmMessage, PortalSession, StatusUpdate,
};
use crate::clock::now_millis;
use crate::consumer::{Outcome, QueueRecord, RecordHandler};
use crate::conversation::{
    ConversationError, ConversationMeta, Conversations, JobTarget, MessageRef, MessageStatus,
    Origin, StoredMessage,
};
use crate::crypto::Envelope;
use crate::idempotency::{AttemptRecord, Attempts, Guarded, Idempotency};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content, Media};
use crate::portal::{Connectors, Portal, PortalError, PortalTokens};
use crate::queue::{platform, OutgoingMessage, Queue};
use crate::store::TableStore;
use crate::tenant::{ChannelKind, TenantDirectory, TenantError, TenantScope};

/// Makes a URL Bitrix24 can fetch a message's media from (see the media module); None when
/// the media cannot be linked.
#[async_trait]
pub trait MediaLinker: Send + Sync {
    async fn link(&self, tenant: &TenantId, account: &AccountRef, media: &Media)
        -> Option<CrmFile>;
}

/// Retries and dead-lettering of sync jobs (decision 0022). Every failed attempt of a job,
/// whatever the error (rate limits included), waits an exponential backoff with full jitter:
/// a uniform delay up to `base` doubled per earlier attempt, at most `max` (and never under
/// `min(base, 1 s)`, so there is no hot loop); a rate limit's own `retry_after` is a floor.
/// The job goes to the dead-letter queue only when it has failed `attempts` times of its own
/// AND its first failure is at least `min_span` ago. Defaults: 30 s, 1 h, 40 attempts, 24 h.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub attempts: u32,
    pub min_span: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            attempts: 40,
            min_span: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The longest delay after the `attempt`th failure (1-based): `base·2^(attempt-1)`, at
    /// most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The delay after the `attempt`th failure: full jitter, uniform in `[0, ceiling]` (floored
    /// at `min(base, 1 s)`). The jitter is drawn from SHA-256 of `seed` and the attempt, so it
    /// differs between jobs and attempts but a test can reproduce it.
    pub fn delay(&self, attempt: u32, seed: &str) -> Duration {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update(attempt.to_be_bytes());
        let d = h.finalize();
        let r = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64;
        self.ceiling(attempt)
            .mul_f64(fraction)
            .max(self.base.min(Duration::from_secs(1)))
    }

    /// Whether a job with this record of failures is to be dead-lettered.
    pub fn exhausted(&self, record: &AttemptRecord, now_ms: i64) -> bool {
        let span = u128::try_from(now_ms.saturating_sub(record.first_at_ms)).unwrap_or(0);
        record.count >= self.attempts && span >= self.min_span.as_millis()
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
}

impl SyncWorker {
    pub fn new(
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        tenants: TenantDirectory,
        client: BitrixClient,
    ) -> Self {
        SyncWorker {
            idempotency: Idempotency::new(store.clone(), "SYNC", platform::VISIBILITY),
            attempts: Attempts::new(store.clone(), "SYNCTRY"),
            store,
            envelope,
            tenants,
            client,
            connectors: Connectors::default(),
            retry: RetryPolicy::default(),
            dead_letter: None,
            parking: None,
            media: None,
        }
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_connectors(mut self, connectors: Connectors) -> Self {
        self.connectors = connectors;
        self
    }

    pub fn with_media_links(mut self, media: Arc<dyn MediaLinker>) -> Self {
        self.media = Some(media);
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
            Err(e) => e,
        };
        let kind = match &e {
            SyncError::Bitrix(b) => b.kind(),
            SyncError::NotConnected(_) => "not_connected",
            _ => "internal",
        };
        let now = now_millis();
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
            let outcome = self.move_to_dead_letter(record).await;
            if let (true, Some(p), Some(r)) = (outcome.is_done(), &self.parking, &released) {
                p.settle(r).await;
            }
            return outcome;
        }
        let backoff = self.retry.delay(attempt.count, &job.effect);
        let delay = match &e {
            SyncError::Bitrix(b) => b.retry_after().map_or(backoff, |after| after.max(backoff)),
            _ => backoff,
        };
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

    /// Sends the record to the sync dead-letter queue, then lets it be acknowledged. Without a
    /// dead-letter queue (or when the send fails) the record fails back to the queue, whose own
    /// redrive is the last resort.
    async fn move_to_dead_letter(&self, record: &QueueRecord) -> Outcome {
        let Some(queue) = &self.dead_letter else {
            return Outcome::Failed;
        };
        let dlq = platform::name(platform::SYNC).dead_letter();
        let group = record
            .group_id
            .clone()
            .unwrap_or_else(|| record.message_id.clone());
        let message = OutgoingMessage::new(record.body.clone()).grouped(group, &record.message_id);
        match queue.send_batch(&dlq, vec![message]).await {
            Ok(()) => {
                tracing::warn!(message_id = %record.message_id, dead_letter_queue = %dlq, "sync job dead-lettered");
                if let Ok(job) = serde_json::from_str::<SyncJob>(&record.body) {
                    if let Err(e) = self.attempts.clear(&job.tenant_id, &job.effect).await {
                        tracing::warn!(error = %e, "could not clear a sync job's attempts");
                    }
                }
                Outcome::Done
            }
            Err(e) => {
                tracing::error!(error = %e, "could not dead-letter a sync job");
                Outcome::Failed
            }
        }
    }

    async fn try_process(&self, job: &SyncJob) -> Result<Outcome, SyncError> {
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
        let guarded = self
            .idempotency
            .guard(&job.tenant_id, &job.effect, || {
                self.run(job, &scope, &conversations, &meta)
            })
            .await?;
        Ok(match guarded {
            Guarded::Ran(()) | Guarded::AlreadyDone => Outcome::Done,
            Guarded::InProgress { retry_after } => Outcome::RetryAfter(retry_after),
        })
    }

    async fn run(
        &self,
        job: &SyncJob,
        scope: &TenantScope,
        conversations: &Conversations,
        meta: &ConversationMeta,
    ) -> Result<(), SyncError> {
        let sk = match &job.action {
            SyncAction::PushMessage { message_sk }
            | SyncAction::Status { message_sk, .. }
            | SyncAction::Reaction { message_sk, .. }
            | SyncAction::Edited { message_sk }
            | SyncAction::Deleted { message_sk } => message_sk,
        };
        let at = MessageRef {
            conversation: job.conversation.clone(),
            sk: sk.clone(),
        };
        let Some(message) = conversations.message(&at).await? else {
            tracing::info!("message gone (erased or expired); sync job dropped");
            return Ok(());
        };
        let mut portal = Portal::load(scope).await?;
        let tokens_store = PortalTokens::new(scope.clone(), portal.channel.clone());
        let connector = self.connectors.for_account(&meta.account).clone();
        let line = portal.line;
        let domain = portal.domain.clone();
        let mut session = self
            .client
            .session(&domain, &mut portal.tokens, &tokens_store);
        match &job.action {
            SyncAction::PushMessage { .. } => {
                if !message.crm_message_ids.is_empty() {
                    return Ok(()); // synced by an earlier delivery of this job
                }
                let crm = self
                    .crm_message(
                        &job.tenant_id,
                        meta,
                        &message,
                        message.content.as_ref(),
                        None,
                    )
                    .await;
                let sent = session.send_messages(&connector, line, &[crm]).await?;
                self.record_sent(conversations, meta, &at, &message, &sent)
                    .await
            }
            SyncAction::Edited { .. } => {
                let crm = self
                    .crm_message(
                        &job.tenant_id,
                        meta,
                        &message,
                        message.content.as_ref(),
                        None,
                    )
                    .await;
                session.update_messages(&connector, line, &[crm]).await?;
                Ok(())
            }
            SyncAction::Deleted { .. } => {
                let delete = DeleteCrmMessage {
                    user_id: crm_user_id(meta),
                    chat_id: meta.id.as_str().to_owned(),
                    message_id: message.provider_message_id.clone(),
                };
                session.delete_messages(&connector, line, &[delete]).await?;
                Ok(())
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
                self.post_note(
                    &mut session,
                    &connector,
                    line,
                    &job.tenant_id,
                    meta,
                    &job.effect,
                    note,
                )
                .await
            }
            SyncAction::Status {
                status, failure, ..
            } => {
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
                    return self
                        .post_note(
                            &mut session,
                            &connector,
                            line,
                            &job.tenant_id,
                            meta,
                            &job.effect,
                            note,
                        )
                        .await;
                }
                let Some(im) = message.crm_im else {
                    // Only operator messages have Bitrix24 ids to report a status for.
                    return Ok(());
                };
                let update = StatusUpdate {
                    im,
                    message_ids: vec![message.provider_message_id.clone()],
                    chat_id: meta.id.as_str().to_owned(),
                    date: Some(crate::clock::now_secs()),
                };
                match status {
                    MessageStatus::Read => {
                        session
                            .send_status_reading(&connector, line, &[update])
                            .await?
                    }
                    _ => {
                        session
                            .send_status_delivery(&connector, line, &[update])
                            .await?
                    }
                }
                Ok(())
            }
        }
    }

    /// The Bitrix24 message for a stored message.
    async fn crm_message(
        &self,
        tenant: &TenantId,
        meta: &ConversationMeta,
        message: &StoredMessage,
        content: Option<&Content>,
        text_override: Option<String>,
    ) -> OutgoingCrmMessage {
        let mut files = Vec::new();
        if let (Some(linker), Some(content)) = (&self.media, content) {
            for media in media_of(content) {
                if let Some(file) = linker.link(tenant, &meta.account, media).await {
                    files.push(file);
                }
            }
        }
        let mut text = text_override.unwrap_or_else(|| {
            content
                .map(Content::text_for_crm)
                .unwrap_or_else(|| "[message deleted]".into())
        });
        if message.origin == Origin::BusinessApp {
            let app = match meta.account.channel() {
                ChannelKind::Instagram => "the Instagram app",
                _ => "the WhatsApp Business app",
            };
            text = format!("[sent by the business from {app}] {text}");
        }
        OutgoingCrmMessage {
            user: crm_user(meta),
            chat: CrmChat {
                id: meta.id.as_str().to_owned(),
                name: Some(chat_name(meta)),
                url: None,
            },
            message_id: message.provider_message_id.clone(),
            date: message.at_ms / 1000,
            text: (!text.is_empty()).then_some(text),
            files,
            disable_crm: false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn post_note(
        &self,
        session: &mut PortalSession<'_>,
        connector: &ConnectorId,
        line: OpenLineId,
        _tenant: &TenantId,
        meta: &ConversationMeta,
        effect: &str,
        note: String,
    ) -> Result<(), SyncError> {
        let crm = OutgoingCrmMessage {
            user: crm_user(meta),
            chat: CrmChat {
                id: meta.id.as_str().to_owned(),
                name: Some(chat_name(meta)),
                url: None,
            },
            // Stable per effect, so Bitrix24 sees the same note id on a redelivery.
            message_id: format!("note.{}", &effect[..32.min(effect.len())]),
            date: crate::clock::now_secs(),
            text: Some(note),
            files: Vec::new(),
            disable_crm: true,
        };
        session.send_messages(connector, line, &[crm]).await?;
        Ok(())
    }

    async fn record_sent(
        &self,
        conversations: &Conversations,
        meta: &ConversationMeta,
        at: &MessageRef,
        message: &StoredMessage,
        sent: &[crate::bitrix::SentCrmMessage],
    ) -> Result<(), SyncError> {
        let first = sent.first().ok_or_else(|| {
            BitrixError::Protocol("send.messages answered without a result".into())
        })?;
        if !first.success {
            return Err(BitrixError::Rejected {
                status: 200,
                code: "SEND_FAILED".into(),
                description: first.errors.join("; "),
            }
            .into());
        }
        if let Some(chat) = &first.chat_id {
            if meta.crm_chat_id.as_deref() != Some(chat.as_str()) {
                conversations.set_crm_chat(&meta.id, chat).await?;
            }
        }
        let ids = vec![first
            .external_message_id
            .clone()
            .unwrap_or_else(|| message.provider_message_id.clone())];
        conversations.set_crm_message_ids(at, &ids).await?;
        Ok(())
    }
}

fn media_of(content: &Content) -> Vec<&Media> {
    match content {
        Content::Media(m) => vec![m],
        Content::Multiple { parts } => parts.iter().flat_map(media_of).collect(),
        _ => Vec::new(),
    }
}

/// The customer's stable external user id in Bitrix24: the conversation id (one customer on
/// one account), never a phone number.
fn crm_user_id(meta: &ConversationMeta) -> String {
    format!("u_{}", &meta.id.as_str()[2..])
}

fn crm_user(meta: &ConversationMeta) -> CrmUser {
    let (name, last_name) = match meta.customer.name.as_deref().map(str::trim) {
        Some(full) if !full.is_empty() => match full.split_once(' ') {
            Some((first, rest)) => (Some(first.to_owned()), Some(rest.trim().to_owned())),
            None => (Some(full.to_owned()), None),
        },
        _ => (
            meta.customer
                .username
                .clone()
                .or_else(|| Some(channel_label(&meta.account).to_owned())),
            None,
        ),
    };
    CrmUser {
        id: crm_user_id(meta),
        name,
        last_name,
        phone: meta
            .customer
            .phone
            .as_ref()
            .map(|p| format!("+{}", p.as_str().trim_start_matches('+'))),
        ..CrmUser::default()
    }
}

fn channel_label(account: &AccountRef) -> &'static str {
    match account.channel() {
        ChannelKind::Instagram => "Instagram",
        _ => "WhatsApp",
    }
}

fn chat_name(meta: &ConversationMeta) -> String {
    let who = meta
        .customer
        .name
        .clone()
        .or_else(|| meta.customer.username.clone())
        .or_else(|| meta.customer.phone.as_ref().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| "customer".into());
    format!("{}: {who}", channel_label(&meta.account))
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[async_trait]
impl RecordHandler for SyncWorker {
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        match serde_json::from_str::<SyncJob>(&record.body) {
            Ok(job) => self.process(&job, record).await,
            Err(e) => {
                // No retry can make it readable: straight to the dead-letter queue.
                tracing::error!(message_id = %record.message_id, line = e.line(), column = e.column(), "unreadable sync job");
                self.move_to_dead_letter(record).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a job that fails every attempt in simulated time, each retry waiting the worker's
    /// delay (at least `floor`, a rate limit's retry_after), until `stop_ms` or until the policy
    /// dead-letters it. Returns (attempts, simulated ms at the last attempt, dead-lettered).
    fn simulate(policy: &RetryPolicy, floor: Duration, stop_ms: i64) -> (u32, i64, bool) {
        let mut now: i64 = 0;
        let mut record = AttemptRecord {
            count: 0,
            first_at_ms: 0,
        };
        while now <= stop_ms {
            record.count += 1;
            if policy.exhausted(&record, now) {
                return (record.count, now, true);
            }
            let delay = policy.delay(record.count, "effect-1").max(floor);
            now += delay.as_millis() as i64;
        }
        (record.count, now, false)
    }

    #[test]
    fn backoff_grows_for_every_error_class_with_full_jitter_under_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_secs(30));
        assert_eq!(p.ceiling(2), Duration::from_secs(60));
        assert_eq!(p.ceiling(8), Duration::from_secs(3600));
        assert_eq!(p.ceiling(1000), Duration::from_secs(3600));
        let delays: Vec<Duration> = (1..=200).map(|a| p.delay(a, "job")).collect();
        assert!(delays
            .iter()
            .enumerate()
            .all(|(i, d)| *d >= Duration::from_secs(1) && *d <= p.ceiling(i as u32 + 1)));
        // Jittered: different jobs do not retry in lockstep.
        assert_ne!(p.delay(5, "job-a"), p.delay(5, "job-b"));
    }

    #[test]
    fn a_minute_of_rate_limits_never_dead_letters() {
        // QUERY_LIMIT_EXCEEDED asks for 0.5 s; a 60 s burst is far from exhausting a job.
        let p = RetryPolicy::default();
        let (_, _, dead) = simulate(&p, Duration::from_millis(500), 60_000);
        assert!(!dead);
        // Nor does a 23-hour outage.
        let (_, _, dead) = simulate(&p, Duration::from_millis(500), 23 * 3_600_000);
        assert!(!dead);
    }

    #[test]
    fn a_job_is_dead_lettered_after_its_own_attempts_over_at_least_a_day() {
        let p = RetryPolicy::default();
        let (attempts, at, dead) = simulate(&p, Duration::from_millis(500), 10 * 24 * 3_600_000);
        assert!(dead);
        assert!(attempts >= p.attempts);
        assert!(at >= 24 * 3_600_000);
        // The queue's receive limit outlasts the attempts (decision 0022: the 24 h take about
        // 50-60 attempts; the limit leaves room for records skipped behind a failing head).
        assert!(
            attempts * 10 < platform::SYNC_MAX_RECEIVES * 2,
            "{attempts}"
        );
    }
}
