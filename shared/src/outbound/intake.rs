//! The outbound intake: an operator's reply in a Bitrix24 Open Line (or a send through the
//! public API) is stored encrypted as an outbound message of its conversation and queued as
//! an [`OutboundJob`].
//!
//! Every accepted message is counted against the tenant's monthly outbound quota
//! ([`crate::usage`]) in the transaction that stores it: a redelivery never counts twice, and
//! a send over the quota is refused ([`OutboundError::QuotaExceeded`]). An operator's reply
//! over the quota is kept as a failed message and the operator is told why in the chat, the
//! same way as for a message the channel refused.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bitrix::ImRef;
use crate::conversation::erased::{Erased, ErasedSubjects};
use crate::conversation::{
    ConversationError, ConversationId, Conversations, Direction, MessageRef, MessageStatus,
    NewMessage, Origin, TemplateMessage, WrittenWith,
};
use crate::crm_sync::SyncJob;
use crate::crypto::Envelope;
use crate::ids::TenantId;
use crate::meta::{AccountRef, CustomerId, CustomerRef};
use crate::meta::{Content, Media, MediaKind};
use crate::metrics::Metrics;
use crate::queue::{platform, Queue, QueueName};
use crate::store::TableStore;
use crate::tenant::{ChannelRef, TenantDirectory, TenantStatus};
use crate::usage::{CountError, QuotaExceeded, Usage, UsageError, Written};

use super::OutboundJob;

/// A file an operator attached: Bitrix24 gives a URL we download it from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorFile {
    pub url: String,
    pub name: Option<String>,
    pub mime_type: Option<String>,
}

/// An operator's reply as Bitrix24 sent it (`OnImConnectorMessageAdd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorMessage {
    /// Bitrix24's ids of the message (`im.chat_id`, `im.message_id`): its identity, and what
    /// delivery statuses are reported against.
    pub im: ImRef,
    /// The text as the operator wrote it (Bitrix24 BB-code; converted per channel on send).
    pub text: Option<String>,
    pub files: Vec<OperatorFile>,
    /// When Bitrix24 says it was written (Unix seconds).
    pub at: i64,
}

impl OperatorMessage {
    /// Our stable id for it: a redelivered Bitrix24 event maps to the same stored message.
    pub fn provider_message_id(&self) -> String {
        format!("b24:{}:{}", self.im.chat_id, self.im.message_id)
    }

    fn content(&self) -> Content {
        let mut parts = Vec::new();
        if let Some(text) = self.text.as_ref().filter(|t| !t.trim().is_empty()) {
            parts.push(Content::Text { body: text.clone() });
        }
        for file in &self.files {
            let kind = match file.mime_type.as_deref().unwrap_or_default() {
                m if m.starts_with("image/") => MediaKind::Image,
                m if m.starts_with("video/") => MediaKind::Video,
                m if m.starts_with("audio/") => MediaKind::Audio,
                _ => MediaKind::Document,
            };
            let mut media = Media::new(kind);
            media.url = Some(file.url.clone());
            media.filename = file.name.clone();
            media.mime_type = file.mime_type.clone();
            parts.push(Content::Media(media));
        }
        match parts.len() {
            1 => parts.remove(0),
            _ => Content::Multiple { parts },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// The conversation does not exist for this tenant (an unknown or foreign chat id).
    #[error("no such conversation")]
    UnknownConversation,
    /// The person of the conversation asked to be erased, and the erasure is under way
    /// (decisions 0124, 0125): nothing is kept or sent.
    #[error("the conversation's person is being erased")]
    SubjectErased,
    /// Nothing to send.
    #[error("the message has neither text nor files")]
    Empty,
    #[error("queue unavailable: {0}")]
    Queue(String),
    /// The account is not connected to this tenant (answer 404: never say whose it is).
    #[error("no such connected account")]
    UnknownAccount,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tenant(#[from] crate::tenant::TenantError),
    /// The tenant's monthly quota is used up: nothing was queued (answer 429).
    #[error(transparent)]
    QuotaExceeded(#[from] QuotaExceeded),
    /// The tenant is suspended: it may not send (answer 403).
    #[error("the tenant is suspended")]
    TenantSuspended,
    #[error(transparent)]
    Usage(#[from] UsageError),
}

impl From<CountError> for OutboundError {
    fn from(e: CountError) -> Self {
        match e {
            CountError::Quota(q) => OutboundError::QuotaExceeded(q),
            CountError::Conversation(c) => OutboundError::Conversation(c),
            CountError::Usage(u) => OutboundError::Usage(u),
        }
    }
}

/// What a tenant's own system asks to send through the public API.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiMessage {
    Text(String),
    Template(TemplateMessage),
}

/// What accepting a reply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub message: MessageRef,
    /// The same reply was stored before (a redelivered event). Its job is queued again with
    /// the same deduplication id, in case the queue did not take it the first time; the send
    /// worker's idempotency keeps it from going out twice.
    pub duplicate: bool,
}

/// Stores operator replies and queues them for sending. Build once per process.
#[derive(Clone)]
pub struct OutboundIntake {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    queue: Arc<dyn Queue>,
    outbound: QueueName,
    sync: QueueName,
    usage: Usage,
    metrics: Metrics,
}

impl OutboundIntake {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>, queue: Arc<dyn Queue>) -> Self {
        OutboundIntake {
            usage: Usage::new(store.clone()),
            store,
            envelope,
            queue,
            outbound: platform::name(platform::OUTBOUND),
            sync: platform::name(platform::SYNC),
            metrics: Metrics::off(),
        }
    }

    /// Counts quota refusals in `metrics` (decision 0038).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts a refusal for quota, and a duplicate.
    fn metered(&self, result: Result<Accepted, OutboundError>) -> Result<Accepted, OutboundError> {
        match &result {
            Err(OutboundError::QuotaExceeded(q)) => self.metrics.quota_refusal(q.quota),
            // A redelivered event or a retried request: stored before, not stored again.
            Ok(accepted) if accepted.duplicate => self.metrics.duplicate("outbound_intake"),
            _ => {}
        }
        result
    }

    /// An operator's reply refused for quota: kept as a failed message (not counted), and the
    /// operator is told why in the chat by the CRM sync, as for any send that failed for
    /// good. Deterministic ids: a retry neither stores nor notes it twice.
    async fn refuse_operator_message(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        conversation: &ConversationId,
        new: NewMessage,
        retention_days: u32,
        quota: &QuotaExceeded,
    ) -> Result<(), OutboundError> {
        let tenant = conversations.tenant();
        tracing::warn!(%tenant, quota = quota.quota, limit = quota.limit, resets_at = quota.resets_at,
            "operator reply refused: monthly outbound quota used up");
        let (at, _) = conversations
            .store_message(account, conversation, new, retention_days)
            .await?;
        let effect = OutboundJob::new(tenant.clone(), &at).effect;
        let note = SyncJob::status(
            tenant.clone(),
            &at,
            MessageStatus::Failed,
            Some(quota.to_string()),
            &format!("quota:{effect}"),
        );
        conversations
            .advance_status(&at, MessageStatus::Failed, &note.effect)
            .await?;
        self.queue
            .send_batch(&self.sync, vec![note.to_message()])
            .await
            .map_err(|e| OutboundError::Queue(e.to_string()))
    }

    /// Stores the reply (content encrypted, TTL from `retention_days`) in its conversation and
    /// queues the send. Ok only once the job is queued (Bitrix24 does not retry its events).
    /// Over the tenant's outbound quota it is `QuotaExceeded`: nothing is queued, the reply is
    /// kept as failed and the operator is told in the chat.
    pub async fn accept_operator_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: OperatorMessage,
        retention_days: u32,
    ) -> Result<Accepted, OutboundError> {
        let result = self
            .operator_message(tenant, conversation, message, retention_days)
            .await;
        self.metered(result)
    }

    async fn operator_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: OperatorMessage,
        retention_days: u32,
    ) -> Result<Accepted, OutboundError> {
        if message.text.as_ref().is_none_or(|t| t.trim().is_empty()) && message.files.is_empty() {
            return Err(OutboundError::Empty);
        }
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        let meta = conversations
            .meta(conversation)
            .await?
            .ok_or(OutboundError::UnknownConversation)?;
        // A quoted message becomes the send's reply context (issue 16 item 11).
        let mut message = message;
        let mut reply_to = None;
        if let Some(text) = message.text.as_deref() {
            if let Some((id, rest)) =
                super::quote::quoted_message(&conversations, conversation, text).await?
            {
                reply_to = Some(id);
                message.text = Some(rest).filter(|t| !t.is_empty());
            }
        }
        let new = NewMessage {
            provider_message_id: message.provider_message_id(),
            direction: Direction::Outbound,
            origin: Origin::Operator,
            content: message.content(),
            at_ms: message.at.saturating_mul(1000),
            reply_to,
            crm_im: Some(message.im),
            template: None,
            written_with: Default::default(),
        };
        let counted = self
            .usage
            .store_outbound(
                &conversations,
                &meta.account,
                conversation,
                new.clone(),
                retention_days,
                crate::clock::now_secs(),
            )
            .await;
        let (at, counted) = match counted {
            Ok(stored) => stored,
            Err(CountError::Quota(quota)) => {
                self.refuse_operator_message(
                    &conversations,
                    &meta.account,
                    conversation,
                    new,
                    retention_days,
                    &quota,
                )
                .await?;
                return Err(OutboundError::QuotaExceeded(quota));
            }
            Err(e) => return Err(e.into()),
        };
        // Written, then read: a contact erasure writes its marker before it queries the
        // conversation's items to delete them, so one that began before this reply was
        // stored is seen here (and the reply removed again), and one that begins after
        // finds the reply and deletes it. Read once the reply is stored, not before, or
        // one stored after the erasure's query would stay until its retention ran out.
        // Only a reply this delivery stored: one stored before was read by its own delivery.
        // Removed with its count taken back: a reply never sent uses none of the quota
        // (decision 0130).
        if let Some(count) = &counted {
            if ErasedSubjects::new(self.store.clone())
                .covers(tenant, conversation, meta.created_at_ms)
                .await
                .map_err(ConversationError::from)?
            {
                let written = Written {
                    stored: &at,
                    provider_message_id: &new.provider_message_id,
                    count: Some(count),
                    opened: None,
                };
                self.usage
                    .remove_written(&conversations, &meta.account, written)
                    .await?;
                return Err(OutboundError::SubjectErased);
            }
        }
        let job = OutboundJob::new(tenant.clone(), &at);
        self.queue
            .send_batch(&self.outbound, vec![job.to_message()])
            .await
            .map_err(|e| OutboundError::Queue(e.to_string()))?;
        Ok(Accepted {
            message: at,
            duplicate: counted.is_none(),
        })
    }

    /// A message a Bitrix24 message provider was asked to send and refused before sending
    /// (unknown template, bad parameters, over quota, tenant suspended; decision 0066): kept
    /// as a failed message of its conversation (not counted, never sent), and its `failed`
    /// status queued for the CRM sync, which reports it to the portal
    /// (`messageservice.message.status.update`) with the sync's retries. `label` is what the
    /// stored message says (the command as the robot wrote it), `reason` why it was refused.
    /// A request stored before is left as it is (accepted before: its own statuses follow;
    /// refused before: its status job is queued again under the same deduplication id).
    /// `account` must be connected to `tenant`.
    #[allow(clippy::too_many_arguments)]
    pub async fn refuse_api_message(
        &self,
        tenants: &TenantDirectory,
        tenant: &TenantId,
        account: &AccountRef,
        to: CustomerId,
        label: String,
        request_id: &str,
        reason: String,
    ) -> Result<(), OutboundError> {
        if tenants.resolve(&ChannelRef::of(account)).await?.as_ref() != Some(tenant) {
            return Err(OutboundError::UnknownAccount);
        }
        let retention = match tenants.scope(tenant).await? {
            Some(scope) => scope
                .profile()
                .await?
                .map(|p| p.retention_days)
                .unwrap_or(crate::tenant::DEFAULT_RETENTION_DAYS),
            None => return Err(OutboundError::UnknownAccount),
        };
        let provider_message_id = format!("api:{request_id}");
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        // The status job that tells the portal, keyed by the message: built before the
        // status write, which records it (decision 0064), so a retry queues the same job.
        let status_job = |at: &MessageRef| {
            let effect = OutboundJob::new(tenant.clone(), at).effect;
            SyncJob::status(
                tenant.clone(),
                at,
                MessageStatus::Failed,
                Some(reason.clone()),
                &format!("refused:{effect}"),
            )
        };
        let status = match conversations
            .find_message(account, &provider_message_id)
            .await?
        {
            Some(at) => {
                let status = status_job(&at);
                match conversations.message(&at).await?.map(|m| m.status) {
                    Some(Some(MessageStatus::Failed)) => {}
                    // An earlier try stored the message and stopped before its status.
                    Some(None) => {
                        conversations
                            .advance_status(&at, MessageStatus::Failed, &status.effect)
                            .await?;
                    }
                    _ => return Ok(()),
                }
                status
            }
            None => {
                let conversation = conversations
                    .record_customer(account, &CustomerRef::new(to), None, retention)
                    .await?;
                let new = NewMessage {
                    provider_message_id,
                    direction: Direction::Outbound,
                    origin: Origin::Api,
                    content: Content::Text { body: label },
                    at_ms: crate::clock::now_millis(),
                    reply_to: None,
                    crm_im: None,
                    template: None,
                    written_with: Default::default(),
                };
                let (at, _) = conversations
                    .store_message(account, &conversation, new, retention)
                    .await?;
                let status = status_job(&at);
                conversations
                    .advance_status(&at, MessageStatus::Failed, &status.effect)
                    .await?;
                status
            }
        };
        self.queue
            .send_batch(&self.sync, vec![status.to_message()])
            .await
            .map_err(|e| OutboundError::Queue(e.to_string()))
    }

    /// A message a Bitrix24 message provider was asked to send to a person whose erasure is
    /// under way ([`OutboundError::SubjectErased`]): nothing of the person is stored, and the
    /// portal's message is told `failed` by a CRM sync job that names only the portal's own
    /// message id (decision 0135). The job's deduplication id is the request's, so the
    /// portal asking again is told once.
    pub async fn report_unstored_failure(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        to: &CustomerId,
        request_id: &str,
    ) -> Result<(), OutboundError> {
        // Queued in the group of the person's conversation, as their other jobs are.
        let conversation = ConversationId::derive(&self.envelope, tenant, account, to)
            .await
            .map_err(ConversationError::from)?;
        let job =
            SyncJob::provider_failed(tenant.clone(), conversation, format!("api:{request_id}"));
        self.queue
            .send_batch(&self.sync, vec![job.to_message()])
            .await
            .map_err(|e| OutboundError::Queue(e.to_string()))
    }

    /// A send through the public API: to `to` on `account`, which must be connected to
    /// `tenant` (anything else is `UnknownAccount`). Opens the conversation if it is new
    /// (business-initiated templates); window and rate rules are applied when sending. A
    /// suspended tenant is refused (`TenantSuspended`), and a send over the tenant's monthly
    /// outbound quota is refused (`QuotaExceeded`) with nothing stored or queued.
    pub async fn accept_api_message(
        &self,
        tenants: &TenantDirectory,
        tenant: &TenantId,
        account: &AccountRef,
        to: CustomerId,
        message: ApiMessage,
        request_id: &str,
    ) -> Result<Accepted, OutboundError> {
        let result = self
            .api_message(tenants, tenant, account, to, message, request_id)
            .await;
        self.metered(result)
    }

    /// Whether an erasure of `conversation`'s person covers the conversation as it stands
    /// now: under way, or sealed with the conversation begun before its cut (or deleted by
    /// it). The conversation is read only in the second case.
    async fn erased_meanwhile(
        &self,
        erased: &ErasedSubjects,
        conversations: &Conversations,
        conversation: &ConversationId,
    ) -> Result<bool, OutboundError> {
        let erasure = erased
            .erasure(conversations.tenant(), conversation)
            .await
            .map_err(ConversationError::from)?;
        Ok(match erasure {
            None => false,
            Some(Erased::InProgress) => true,
            Some(sealed) => conversations
                .meta(conversation)
                .await?
                .is_none_or(|meta| sealed.covers_conversation(meta.created_at_ms)),
        })
    }

    async fn api_message(
        &self,
        tenants: &TenantDirectory,
        tenant: &TenantId,
        account: &AccountRef,
        to: CustomerId,
        message: ApiMessage,
        request_id: &str,
    ) -> Result<Accepted, OutboundError> {
        if tenants.resolve(&ChannelRef::of(account)).await?.as_ref() != Some(tenant) {
            return Err(OutboundError::UnknownAccount);
        }
        let profile = match tenants.scope(tenant).await? {
            Some(scope) => scope.profile().await?,
            None => return Err(OutboundError::UnknownAccount),
        };
        if profile
            .as_ref()
            .is_some_and(|p| p.status == TenantStatus::Suspended)
        {
            return Err(OutboundError::TenantSuspended);
        }
        let retention = profile
            .map(|p| p.retention_days)
            .unwrap_or(crate::tenant::DEFAULT_RETENTION_DAYS);
        let (content, template) = match message {
            ApiMessage::Text(body) => {
                if body.trim().is_empty() || body.chars().count() > 4096 {
                    return Err(OutboundError::Invalid(
                        "text: must be 1 to 4096 characters".into(),
                    ));
                }
                (Content::Text { body }, None)
            }
            ApiMessage::Template(t) => {
                if account.channel() != crate::tenant::ChannelKind::WhatsApp {
                    return Err(OutboundError::Invalid(
                        "template: only WhatsApp has message templates".into(),
                    ));
                }
                (
                    Content::Text {
                        body: format!("[template {} ({})]", t.name, t.language),
                    },
                    Some(t),
                )
            }
        };
        let now = crate::clock::now_secs();
        let provider_message_id = format!("api:{request_id}");
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        // Refused before a conversation is opened for a send that cannot go (the counted
        // store below decides under concurrency); a retry of a request accepted before is
        // answered as the duplicate it is.
        let earlier = conversations
            .find_message(account, &provider_message_id)
            .await?;
        if earlier.is_none() {
            self.usage.check_outbound(tenant, now).await?;
        }
        // A person whose erasure is under way is not written again (decision 0125): the
        // erasure marks what their identity derives to before it deletes anything, so this
        // read keeps the send from bringing their conversation back while it runs. Once
        // sealed, a send opens a new conversation, as a message they write would.
        let erased = ErasedSubjects::new(self.store.clone());
        let derived = ConversationId::derive(&self.envelope, tenant, account, &to)
            .await
            .map_err(ConversationError::from)?;
        let customer = CustomerRef::new(to);
        let erasure = erased
            .erasure(tenant, &derived)
            .await
            .map_err(ConversationError::from)?;
        // A retry of a request whose message an earlier try stored and then failed to
        // remove again (its removal after the second read below, decision 0125): the
        // message is of the erased period, and this retry finishes the removal, with the
        // count and conversation that try wrote (decision 0134; a message that went out
        // keeps its count). Only for a request met before: one read of the marker.
        if let Some(at) = &earlier {
            if self
                .erased_meanwhile(&erased, &conversations, &at.conversation)
                .await?
            {
                self.usage
                    .remove_left(&conversations, account, at, &provider_message_id, &customer)
                    .await?;
                tracing::info!("send an earlier try left of an erased subject removed");
                return Err(OutboundError::SubjectErased);
            }
        }
        if erasure == Some(Erased::InProgress) {
            return Err(OutboundError::SubjectErased);
        }
        let (conversation, opened) = conversations
            .open_customer(account, &customer, None, retention)
            .await?;
        let new = NewMessage {
            provider_message_id: provider_message_id.clone(),
            direction: Direction::Outbound,
            origin: Origin::Api,
            content,
            at_ms: crate::clock::now_millis(),
            reply_to: None,
            crm_im: None,
            template,
            written_with: WrittenWith {
                opened,
                ..WrittenWith::default()
            },
        };
        let (at, counted) = self
            .usage
            .store_outbound(&conversations, account, &conversation, new, retention, now)
            .await?;
        // Written, then read, as for an operator's reply (decision 0124): an erasure that
        // began after the read above is seen here, and the message removed again, its
        // count taken back (decision 0130).
        if let Some(count) = &counted {
            if self
                .erased_meanwhile(&erased, &conversations, &conversation)
                .await?
            {
                // A conversation this send opened, after the erasure had emptied it, goes
                // too (decision 0131).
                let written = Written {
                    stored: &at,
                    provider_message_id: &provider_message_id,
                    count: Some(count),
                    opened: opened.as_ref().map(|o| (o, &customer)),
                };
                self.usage
                    .remove_written(&conversations, account, written)
                    .await?;
                return Err(OutboundError::SubjectErased);
            }
        }
        let job = OutboundJob::new(tenant.clone(), &at);
        self.queue
            .send_batch(&self.outbound, vec![job.to_message()])
            .await
            .map_err(|e| OutboundError::Queue(e.to_string()))?;
        Ok(Accepted {
            message: at,
            duplicate: counted.is_none(),
        })
    }
}
