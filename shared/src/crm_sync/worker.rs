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
//! client, through [`PortalTokens`]); rate limits and outages are retried later through the
//! queue with a growing delay ([`RetryPolicy`]), never in a loop; permanent refusals fail the
//! job, which reaches the dead-letter queue after the queue's receive limit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{SyncAction, SyncJob};
use crate::bitrix::{
    BitrixClient, BitrixError, ConnectorId, CrmChat, CrmFile, CrmUser, DeleteCrmMessage,
    OpenLineId, OutgoingCrmMessage, PortalSession, StatusUpdate,
};
use crate::consumer::{Outcome, QueueRecord, RecordHandler};
use crate::conversation::{
    ConversationError, ConversationMeta, Conversations, MessageRef, MessageStatus, Origin,
    StoredMessage,
};
use crate::crypto::Envelope;
use crate::idempotency::{Guarded, Idempotency};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content, Media};
use crate::portal::{Connectors, Portal, PortalError, PortalTokens};
use crate::queue::platform;
use crate::store::TableStore;
use crate::tenant::{ChannelKind, TenantDirectory, TenantError, TenantScope};

/// Makes a URL Bitrix24 can fetch a message's media from (see the media module); None when
/// the media cannot be linked.
#[async_trait]
pub trait MediaLinker: Send + Sync {
    async fn link(&self, tenant: &TenantId, account: &AccountRef, media: &Media)
        -> Option<CrmFile>;
}

/// How long to wait before retrying a job that failed for a passing reason: `base` doubled
/// per earlier receive, at most `max`. With the queue's 5 receives and the defaults (30 s,
/// 1 h) a portal may be down for about an hour before jobs reach the dead-letter queue.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, receive_count: u32) -> Duration {
        let exp = receive_count.saturating_sub(1).min(20);
        self.base
            .saturating_mul(4u32.saturating_pow(exp))
            .min(self.max)
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
            store,
            envelope,
            tenants,
            client,
            connectors: Connectors::default(),
            retry: RetryPolicy::default(),
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

    /// Runs one job; the outcome tells the queue what to do with it.
    pub async fn process(&self, job: &SyncJob, receive_count: u32) -> Outcome {
        match self.try_process(job).await {
            Ok(outcome) => outcome,
            Err(e) => {
                let outcome = match &e {
                    SyncError::Bitrix(b) => match b.retry_after() {
                        Some(after) => Outcome::RetryAfter(after.max(self.retry.base)),
                        None if b.is_retryable() => {
                            Outcome::RetryAfter(self.retry.delay(receive_count))
                        }
                        None => Outcome::Failed,
                    },
                    SyncError::NotConnected(_) => Outcome::Failed,
                    _ => Outcome::RetryAfter(self.retry.delay(receive_count)),
                };
                let kind = match &e {
                    SyncError::Bitrix(b) => b.kind(),
                    SyncError::NotConnected(_) => "not_connected",
                    _ => "internal",
                };
                tracing::warn!(
                    tenant = %job.tenant_id,
                    conversation = %job.conversation,
                    kind,
                    error = %e,
                    receive_count,
                    retry = !matches!(outcome, Outcome::Failed),
                    "CRM sync job did not complete"
                );
                outcome
            }
        }
    }

    async fn try_process(&self, job: &SyncJob) -> Result<Outcome, SyncError> {
        let Some(scope) = self.tenants.scope(&job.tenant_id).await? else {
            tracing::info!(tenant = %job.tenant_id, "tenant gone; sync job dropped");
            return Ok(Outcome::Done);
        };
        let conversations = Conversations::new(
            job.tenant_id.clone(),
            self.store.clone(),
            self.envelope.clone(),
        );
        let Some(meta) = conversations.meta(&job.conversation).await? else {
            tracing::info!("conversation gone (erased or expired); sync job dropped");
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
            Ok(job) => self.process(&job, record.receive_count).await,
            Err(e) => {
                tracing::error!(message_id = %record.message_id, line = e.line(), column = e.column(), "unreadable sync job");
                Outcome::Failed
            }
        }
    }
}
