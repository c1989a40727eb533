//! The bitrix-webhook's domain: Bitrix24's events for a linked portal, checked and acted on.
//!
//! Every event is checked before anything is read or written for it:
//! 1. `auth[member_id]` names the portal; its tenant is one exact route lookup
//!    ([`ChannelRef::Bitrix24`]). An unknown portal is refused.
//! 2. `auth[domain]` must be the domain stored for the portal.
//! 3. `auth[application_token]` must equal the stored one (compared in constant time, over
//!    SHA-256 digests so lengths do not show). A portal without a stored token is refused,
//!    with one exception: `ONAPPINSTALL`, which is how the token arrives after the
//!    installation wizard. It is stored only when verified: its `auth[access_token]` works on
//!    the portal's stored domain (`app.info`, as apidocs "Security in Handlers" advises).
//!    Being recent is no proof (issue 15): whoever knows a portal's `member_id` could
//!    otherwise plant their own token in the first hour, then forge uninstalls and operator
//!    messages while the real portal is refused. An install without an access token brings
//!    its token through the code-verified install exchange instead ([`crate::portal`]). A
//!    *different* token replaces a stored one only when verified and the portal was linked
//!    within [`DEFAULT_INSTALL_WINDOW`] (a reinstall after an uninstall we missed).
//!
//! Then, by event:
//! - `ONIMCONNECTORMESSAGEADD` (our connectors only): each message's `chat.id` is our
//!   conversation id; the reply is stored encrypted in that conversation of *this* tenant and
//!   queued ([`OutboundIntake::accept_operator_message`]). An unknown or malformed chat id is
//!   skipped and logged. The answer is given only after every message is queued, because
//!   Bitrix24 does not retry events; a failure is a 5xx. A redelivered event maps to the
//!   same stored message and the same queue deduplication id (the intake's `duplicate`).
//! - `ONIMCONNECTORMESSAGEUPDATE` / `ONIMCONNECTORMESSAGEDELETE`: neither the WhatsApp Cloud
//!   API nor the Instagram Send API can edit or delete a message once sent (our connectors
//!   are registered with `EDIT_INTERNAL_MESSAGES` / `DEL_INTERNAL_MESSAGES` off). A reply
//!   not sent yet is edited or deleted in place, so the send worker sends the edit or
//!   nothing; a reply already sent is left as the customer has it, and the event is
//!   answered 200 without effect.
//! - `ONIMCONNECTORSTATUSDELETE` (our connector on the portal's line),
//!   `ONIMCONNECTORLINEDELETE` (the portal's line), `ONAPPUNINSTALL`: the portal is
//!   disconnected ([`TenantScope::disconnect`]: its tokens are deleted and its route freed).
//! - Anything else: answered 200, ignored.
//!
//! A suspended tenant's operator replies are stored as usual but their send jobs are held
//! ([`crate::hold`]) and answered as accepted; resuming the tenant queues them in order.
//! Edits and deletions only change stored replies (a held one is sent as edited, or not at
//! all), and disconnections and `ONAPPINSTALL` are processed: they produce no queued work,
//! and Bitrix24 would never send them again.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use crate::clock::now_secs;
use crate::conversation::{ConversationId, Conversations, MessageRef};
use crate::crypto::Envelope;
use crate::hold::HoldingQueue;
use crate::ids::{BitrixDomain, BitrixMemberId, TenantId};
use crate::meta::Content;
use crate::outbound::{OperatorFile, OperatorMessage, OutboundError, OutboundIntake};
use crate::portal::Connectors;
use crate::store::TableStore;
use crate::tenant::{
    ChannelKind, ChannelRef, Secret, TenantDirectory, TenantError, TenantScope,
    DEFAULT_RETENTION_DAYS,
};

use crate::bitrix::events::{
    BitrixEvent, ConnectorMessage, ConnectorMessages, EventError, EventKind, FormError,
};
use crate::bitrix::imconnector::{ImRef, OpenLineId};
use crate::bitrix::{BitrixClient, APP_INFO};

/// How long after linking a verified `ONAPPINSTALL` may still replace a stored application
/// token.
pub const DEFAULT_INSTALL_WINDOW: Duration = Duration::from_secs(3600);

/// Why an event was refused or not processed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Malformed(String),
    #[error("event body too large")]
    TooLarge,
    /// The event did not prove it comes from the portal's Bitrix24 (401).
    #[error("event not authenticated: {0}")]
    Unauthorized(&'static str),
    /// A message event for a connector that is not ours.
    #[error("unknown connector {0:?}")]
    UnknownConnector(String),
    /// Something on our side failed; nothing or only part was done (5xx).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl From<EventError> for WebhookError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Form(FormError::TooLarge) => WebhookError::TooLarge,
            other => WebhookError::Malformed(other.to_string()),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> WebhookError {
    WebhookError::Unavailable(e.to_string())
}

/// What an accepted event did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EventOutcome {
    /// Operator replies stored and queued.
    Queued {
        accepted: usize,
        duplicates: usize,
        skipped: usize,
    },
    /// Edits or deletions: applied to replies not sent yet; not possible for sent ones.
    Recorded {
        applied: usize,
        not_possible: usize,
        skipped: usize,
    },
    /// The portal was disconnected (tokens deleted, route freed).
    Disconnected,
    /// The channel attached to the line went back to the portal's own line; the portal
    /// stays connected (decision 0043).
    Detached { line: u64 },
    /// `ONAPPINSTALL` stored the portal's application token.
    ApplicationTokenStored,
    /// Nothing to do.
    Ignored { reason: &'static str },
}

/// A portal linked to a tenant, as stored.
struct Linked {
    scope: TenantScope,
    channel: ChannelRef,
    domain: String,
    line: Option<OpenLineId>,
    connected_at: i64,
    secrets_stored: Vec<String>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Constant-time equality of two secrets.
fn same_secret(a: &Secret, b: &Secret) -> bool {
    digest(a.expose()).ct_eq(&digest(b.expose())).into()
}

/// The Bitrix24 events handler. Build once per process.
/// Why a portal is disconnected after `ONAPPUNINSTALL`: nothing is called on the portal then.
const APP_UNINSTALLED: &str = "application uninstalled";

#[derive(Clone)]
pub struct PortalEvents {
    tenants: TenantDirectory,
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    intake: OutboundIntake,
    client: BitrixClient,
    connectors: Connectors,
    install_window: Duration,
    /// When set, a portal disconnect also revokes our access on the portal (decision 0036).
    revocations: Option<crate::revocation::Revocations>,
}

impl PortalEvents {
    pub fn new(
        tenants: TenantDirectory,
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        intake: OutboundIntake,
        client: BitrixClient,
    ) -> Self {
        PortalEvents {
            tenants,
            store,
            envelope,
            intake,
            client,
            connectors: Connectors::default(),
            install_window: DEFAULT_INSTALL_WINDOW,
            revocations: None,
        }
    }

    /// Portal disconnects go through `revocations`: our connectors are unregistered and our
    /// events unbound (except after an uninstall, when the portal already dropped both),
    /// then the tokens are deleted.
    pub fn with_revocations(mut self, revocations: crate::revocation::Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    pub fn with_connectors(mut self, connectors: Connectors) -> Self {
        self.connectors = connectors;
        self
    }

    pub fn with_install_window(mut self, window: Duration) -> Self {
        self.install_window = window;
        self
    }

    fn is_ours(&self, connector: Option<&str>) -> bool {
        connector.is_some_and(|c| {
            c.eq_ignore_ascii_case(self.connectors.whatsapp.as_str())
                || c.eq_ignore_ascii_case(self.connectors.instagram.as_str())
        })
    }

    async fn linked(&self, member: &BitrixMemberId) -> Result<Option<Linked>, WebhookError> {
        let channel = ChannelRef::Bitrix24(member.clone());
        let Some(tenant) = self.tenants.resolve(&channel).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let Some(scope) = self.tenants.scope(&tenant).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let summary = scope
            .channels()
            .await
            .map_err(unavailable)?
            .into_iter()
            .find(|c| c.kind == ChannelKind::Bitrix24 && c.id == member.as_str());
        let Some(summary) = summary else {
            return Ok(None);
        };
        Ok(Some(Linked {
            domain: summary
                .details
                .get("domain")
                .map(|d| d.to_ascii_lowercase())
                .unwrap_or_default(),
            line: summary
                .details
                .get("line_id")
                .and_then(|l| OpenLineId::parse(l).ok()),
            connected_at: summary.connected_at,
            secrets_stored: summary.secrets_stored,
            scope,
            channel,
        }))
    }

    async fn stored_application_token(
        &self,
        linked: &Linked,
    ) -> Result<Option<Secret>, WebhookError> {
        match linked
            .scope
            .channel_secret(&linked.channel, "application_token")
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(TenantError::Invalid(_)) => Ok(None),
            Err(TenantError::ChannelNotFound(_)) => {
                Err(WebhookError::Unauthorized("unknown portal"))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Parses, authenticates and processes one delivery.
    pub async fn handle(&self, body: &[u8]) -> Result<EventOutcome, WebhookError> {
        let event = BitrixEvent::parse(body)?;
        let member = event
            .auth
            .member_id
            .as_deref()
            .and_then(|m| BitrixMemberId::parse(m).ok())
            .ok_or(WebhookError::Unauthorized("no member_id"))?;
        let linked = match self.linked(&member).await? {
            Some(l) => l,
            None => {
                tracing::warn!(event = %event.name, member_id = %member, "event from a portal that is not linked refused");
                return Err(WebhookError::Unauthorized("unknown portal"));
            }
        };
        let tenant = linked.scope.tenant().clone();
        if event.auth.domain.as_deref() != Some(linked.domain.as_str()) {
            tracing::warn!(event = %event.name, %tenant, member_id = %member,
                "event refused: its domain is not the portal's stored domain (renamed portal? reconnect it)");
            return Err(WebhookError::Unauthorized(
                "domain does not match the portal",
            ));
        }
        let stored = self.stored_application_token(&linked).await?;
        if let EventKind::AppInstall { .. } = &event.kind {
            return self.app_install(&event, &linked, stored).await;
        }
        let verified = match (&stored, &event.auth.application_token) {
            (Some(s), Some(p)) => same_secret(s, p),
            _ => false,
        };
        if !verified {
            tracing::warn!(event = %event.name, %tenant, member_id = %member,
                stored = stored.is_some(), presented = event.auth.application_token.is_some(),
                "event refused: application_token missing or wrong");
            return Err(WebhookError::Unauthorized(
                "application_token missing or wrong",
            ));
        }
        let outcome = match &event.kind {
            EventKind::MessageAdd(m) => match self.suspended_retention(&linked).await? {
                Some(days) => {
                    tracing::info!(%tenant, "tenant suspended: operator replies stored, their sends held");
                    self.holding(&tenant, days)
                        .message_add(&event, &linked, m)
                        .await?
                }
                None => self.message_add(&event, &linked, m).await?,
            },
            EventKind::MessageUpdate(m) => self.message_change(&linked, m, true).await?,
            EventKind::MessageDelete(m) => self.message_change(&linked, m, false).await?,
            EventKind::StatusDelete { connector, line } => {
                if !self.is_ours(connector.as_deref()) {
                    EventOutcome::Ignored {
                        reason: "not our connector",
                    }
                } else if let Some(outcome) = self
                    .detach_line(&linked, &member, *line, connector.as_deref())
                    .await?
                {
                    outcome
                } else if line.is_some() && *line != linked.line.map(OpenLineId::get) {
                    EventOutcome::Ignored {
                        reason: "another line",
                    }
                } else {
                    self.disconnect(&linked, "connector disabled on the line")
                        .await?
                }
            }
            EventKind::LineDelete { line } => {
                if line.is_some() && *line == linked.line.map(OpenLineId::get) {
                    // The portal's own line is gone: as before, the portal is disconnected
                    // (its channels' attachments go with it).
                    self.disconnect(&linked, "open line deleted").await?
                } else if let Some(outcome) =
                    self.detach_line(&linked, &member, *line, None).await?
                {
                    outcome
                } else {
                    EventOutcome::Ignored {
                        reason: "another line",
                    }
                }
            }
            EventKind::AppUninstall { clean } => {
                tracing::info!(%tenant, member_id = %member, clean, "application uninstalled from the portal");
                self.disconnect(&linked, APP_UNINSTALLED).await?
            }
            EventKind::AppInstall { .. } => unreachable!("handled above"),
            EventKind::Other(_) => EventOutcome::Ignored {
                reason: "event not handled",
            },
        };
        tracing::info!(event = %event.name, %tenant, member_id = %member, outcome = ?outcome, "bitrix event processed");
        Ok(outcome)
    }

    async fn app_install(
        &self,
        event: &BitrixEvent,
        linked: &Linked,
        stored: Option<Secret>,
    ) -> Result<EventOutcome, WebhookError> {
        let tenant = linked.scope.tenant();
        let Some(presented) = &event.auth.application_token else {
            return Err(WebhookError::Unauthorized("no application_token"));
        };
        if stored.as_ref().is_some_and(|s| same_secret(s, presented)) {
            return Ok(EventOutcome::Ignored {
                reason: "application token already stored",
            });
        }
        let age = now_secs().saturating_sub(linked.connected_at);
        let recent = age >= 0 && (age as u64) <= self.install_window.as_secs();
        let verified = match (&event.auth.access_token, BitrixDomain::parse(&linked.domain)) {
            (Some(token), Ok(domain)) => self
                .client
                .call(&domain, token, APP_INFO, Value::Null)
                .await
                .inspect_err(|e| tracing::warn!(%tenant, error = %e, "ONAPPINSTALL access token did not work on the portal"))
                .is_ok(),
            _ => false,
        };
        let allowed = match stored {
            None => verified,
            Some(_) => verified && recent,
        };
        if !allowed {
            tracing::warn!(%tenant, verified, recent, replacing = stored.is_some(),
                "ONAPPINSTALL refused: its application_token cannot be trusted");
            return Err(WebhookError::Unauthorized(
                "application_token cannot be verified",
            ));
        }
        linked
            .scope
            .replace_secrets(&linked.channel, &[("application_token", presented)])
            .await
            .map_err(|e| match e {
                TenantError::ChannelNotFound(_) => WebhookError::Unauthorized("unknown portal"),
                other => unavailable(other),
            })?;
        if !linked
            .secrets_stored
            .iter()
            .any(|s| s == "application_token")
        {
            let mut names = linked.secrets_stored.clone();
            names.push("application_token".into());
            crate::portal::install::list_secret(
                self.store.as_ref(),
                tenant,
                &linked.channel,
                &names,
            )
            .await
            .map_err(unavailable)?;
        }
        tracing::info!(%tenant, verified, "bitrix24 application token stored");
        Ok(EventOutcome::ApplicationTokenStored)
    }

    /// When a channel is attached to `line` (of `connector`'s kind, when named), detaches
    /// it: turning a connector off on a line, or deleting the line, affects only the channel
    /// on it (decision 0043). `None` when no channel is attached there.
    async fn detach_line(
        &self,
        linked: &Linked,
        member: &BitrixMemberId,
        line: Option<u64>,
        connector: Option<&str>,
    ) -> Result<Option<EventOutcome>, WebhookError> {
        let Some(line) = line else {
            return Ok(None);
        };
        let Some(channel) = linked
            .scope
            .channel_on_line(member, line)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let kind_matches = match connector {
            None => true,
            Some(c) => {
                let c = c.to_ascii_lowercase();
                match channel.kind() {
                    ChannelKind::WhatsApp => c == self.connectors.whatsapp.as_str(),
                    ChannelKind::Instagram => c == self.connectors.instagram.as_str(),
                    ChannelKind::Bitrix24 => false,
                }
            }
        };
        if !kind_matches {
            return Ok(None);
        }
        match linked.scope.detach_from_line(&channel, member, line).await {
            Ok(()) | Err(crate::tenant::LineError::NotAttached(_)) => {}
            Err(e) => return Err(unavailable(e)),
        }
        tracing::info!(tenant = %linked.scope.tenant(), line, kind = channel.kind().name(),
            "channel detached from its Open Line by the portal");
        Ok(Some(EventOutcome::Detached { line }))
    }

    async fn disconnect(
        &self,
        linked: &Linked,
        why: &'static str,
    ) -> Result<EventOutcome, WebhookError> {
        let result = match &self.revocations {
            Some(revocations) => {
                let uninstalled = why == APP_UNINSTALLED;
                match revocations
                    .disconnect(&linked.scope, &linked.channel, "bitrix24", uninstalled)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(crate::revocation::RevocationError::Tenant(e)) => Err(e),
                    Err(crate::revocation::RevocationError::Store(e)) => Err(e.into()),
                    Err(e) => Err(TenantError::Invalid(e.to_string())),
                }
            }
            None => linked.scope.disconnect(&linked.channel).await,
        };
        match result {
            Ok(()) | Err(TenantError::ChannelNotFound(_)) => {
                tracing::info!(tenant = %linked.scope.tenant(), member_id = %linked.channel.external_id(),
                    why, "bitrix24 portal disconnected; its tokens are deleted");
                Ok(EventOutcome::Disconnected)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn check_connector(&self, m: &ConnectorMessages) -> Result<(), WebhookError> {
        if self.is_ours(m.connector.as_deref()) {
            Ok(())
        } else {
            Err(WebhookError::UnknownConnector(
                m.connector.clone().unwrap_or_default(),
            ))
        }
    }

    /// A file link as Bitrix24 gave it, made absolute on the portal when it is a path.
    fn file_url(&self, linked: &Linked, url: &str) -> String {
        if !url.starts_with('/') {
            return url.to_owned();
        }
        match BitrixDomain::parse(&linked.domain) {
            Ok(domain) => {
                let root = self.client.config().rest_root(&domain);
                let origin = root
                    .trim_end_matches('/')
                    .trim_end_matches("rest")
                    .trim_end_matches('/');
                format!("{origin}{url}")
            }
            Err(_) => url.to_owned(),
        }
    }

    async fn retention(&self, linked: &Linked) -> Result<u32, WebhookError> {
        Ok(linked
            .scope
            .profile()
            .await
            .map_err(unavailable)?
            .map(|p| p.retention_days)
            .unwrap_or(DEFAULT_RETENTION_DAYS))
    }

    async fn message_add(
        &self,
        event: &BitrixEvent,
        linked: &Linked,
        m: &ConnectorMessages,
    ) -> Result<EventOutcome, WebhookError> {
        self.check_connector(m)?;
        let tenant = linked.scope.tenant().clone();
        if m.line.is_some() && m.line != linked.line.map(OpenLineId::get) {
            tracing::info!(%tenant, line = m.line, "operator reply from a line other than the portal's");
        }
        let retention = self.retention(linked).await?;
        let (mut accepted, mut duplicates, mut skipped) = (0, 0, 0);
        for (index, msg) in m.messages.iter().enumerate() {
            let Some((im, conversation)) = ids(msg) else {
                tracing::warn!(%tenant, index, "operator reply without Bitrix24 ids or chat id skipped");
                skipped += 1;
                continue;
            };
            if self.is_echo_back(&tenant, msg.user_id).await? {
                tracing::info!(%tenant, im_message = im.message_id,
                    "message by the echo author (a WhatsApp Business app echo) not sent out");
                skipped += 1;
                continue;
            }
            let reply = OperatorMessage {
                im,
                text: msg.text.clone(),
                files: msg
                    .files
                    .iter()
                    .map(|f| OperatorFile {
                        url: self.file_url(linked, &f.url),
                        name: f.name.clone(),
                        mime_type: f.mime_type.clone(),
                    })
                    .collect(),
                at: msg.date.or(event.ts).unwrap_or_else(now_secs),
            };
            // The step's correlation ids on every line it logs (decision 0038).
            let span = tracing::info_span!(
                "operator_reply",
                tenant = %tenant,
                conversation = %conversation,
                crm_chat = im.chat_id,
                crm_message = im.message_id,
            );
            match self
                .intake
                .accept_operator_message(&tenant, &conversation, reply, retention)
                .instrument(span)
                .await
            {
                Ok(a) if a.duplicate => duplicates += 1,
                Ok(_) => accepted += 1,
                Err(OutboundError::UnknownConversation) => {
                    tracing::warn!(%tenant, conversation = %conversation, im_chat = im.chat_id,
                        "operator reply for a conversation this tenant does not have; skipped");
                    skipped += 1;
                }
                Err(OutboundError::SubjectErased) => {
                    tracing::info!(%tenant, conversation = %conversation,
                        "operator reply to a person being erased; not kept, not sent");
                    skipped += 1;
                }
                Err(OutboundError::Empty) => {
                    tracing::info!(%tenant, im_message = im.message_id, "operator reply without text or files skipped");
                    skipped += 1;
                }
                // Handled, not an error: a retry would be refused the same way. The intake
                // kept the reply as failed and queued the note that tells the operator why.
                Err(OutboundError::QuotaExceeded(q)) => {
                    tracing::info!(%tenant, im_message = im.message_id, quota = q.quota, limit = q.limit,
                        "operator reply over quota; not sent, the operator is told in the chat");
                    skipped += 1;
                }
                Err(e) => {
                    tracing::error!(%tenant, im_chat = im.chat_id, im_message = im.message_id, error = %e,
                        "operator reply NOT queued; Bitrix24 will not resend it");
                    return Err(unavailable(e));
                }
            }
        }
        Ok(EventOutcome::Queued {
            accepted,
            duplicates,
            skipped,
        })
    }

    /// Whether a message Bitrix24 reports as written by `user_id` is one of the WhatsApp
    /// Business app echoes we posted as the tenant's echo author (decision 0052).
    async fn is_echo_back(
        &self,
        tenant: &TenantId,
        user_id: Option<u64>,
    ) -> Result<bool, WebhookError> {
        let Some(user_id) = user_id else {
            return Ok(false);
        };
        crate::coexistence::Coexistence::new(self.store.clone())
            .is_echo_author(tenant, user_id)
            .await
            .map_err(unavailable)
    }

    async fn message_change(
        &self,
        linked: &Linked,
        m: &ConnectorMessages,
        is_update: bool,
    ) -> Result<EventOutcome, WebhookError> {
        self.check_connector(m)?;
        let tenant = linked.scope.tenant().clone();
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        let (mut applied, mut not_possible, mut skipped) = (0, 0, 0);
        for msg in &m.messages {
            let Some((im, conversation)) = ids(msg) else {
                skipped += 1;
                continue;
            };
            let Some(at) = self
                .find_reply(&conversations, &conversation, im)
                .await
                .map_err(unavailable)?
            else {
                skipped += 1;
                continue;
            };
            let Some(stored) = conversations.message(&at).await.map_err(unavailable)? else {
                skipped += 1;
                continue;
            };
            if stored.sent_provider_id.is_some() || stored.deleted {
                tracing::info!(%tenant, im_message = im.message_id, update = is_update,
                    "operator edited or deleted a reply already sent; the channel cannot follow");
                not_possible += 1;
                continue;
            }
            let done = if is_update {
                let Some(text) = msg.text.clone() else {
                    skipped += 1;
                    continue;
                };
                let content = edited_content(stored.content.as_ref(), text);
                conversations.edit_content(&at, &content).await
            } else {
                conversations.mark_deleted(&at).await
            }
            .map_err(unavailable)?;
            if done {
                applied += 1;
            } else {
                skipped += 1;
            }
        }
        Ok(EventOutcome::Recorded {
            applied,
            not_possible,
            skipped,
        })
    }

    async fn find_reply(
        &self,
        conversations: &Conversations,
        conversation: &ConversationId,
        im: ImRef,
    ) -> Result<Option<MessageRef>, crate::conversation::ConversationError> {
        let Some(meta) = conversations.meta(conversation).await? else {
            return Ok(None);
        };
        let provider_id = OperatorMessage {
            im,
            text: None,
            files: Vec::new(),
            at: 0,
        }
        .provider_message_id();
        conversations
            .find_message(&meta.account, &provider_id)
            .await
    }
}

impl PortalEvents {
    /// Some(retention days) when the linked portal's tenant is suspended.
    async fn suspended_retention(&self, linked: &Linked) -> Result<Option<u32>, WebhookError> {
        Ok(linked
            .scope
            .profile()
            .await
            .map_err(unavailable)?
            .filter(|p| p.is_suspended())
            .map(|p| p.retention_days))
    }

    /// This handler with its send jobs held for the suspended `tenant` instead of queued: the
    /// same intake (storage, quota) over a queue that holds (released on resume).
    fn holding(&self, tenant: &TenantId, retention_days: u32) -> PortalEvents {
        let hold = HoldingQueue::new(
            crate::hold::HeldEvents::of(&self.tenants),
            tenant.clone(),
            retention_days,
        );
        PortalEvents {
            intake: OutboundIntake::new(self.store.clone(), self.envelope.clone(), Arc::new(hold)),
            ..self.clone()
        }
    }
}

/// The message's Bitrix24 ids and our conversation, when both are there and well-formed.
fn ids(msg: &ConnectorMessage) -> Option<(ImRef, ConversationId)> {
    let im = msg.im?;
    let conversation = ConversationId::parse(msg.chat_id.as_deref()?).ok()?;
    Some((im, conversation))
}

/// The reply's content with its text replaced (attached media kept).
fn edited_content(old: Option<&Content>, text: String) -> Content {
    let new_text = Content::Text { body: text };
    match old {
        Some(Content::Multiple { parts }) => {
            let mut parts: Vec<Content> = parts
                .iter()
                .filter(|p| !matches!(p, Content::Text { .. }))
                .cloned()
                .collect();
            parts.insert(0, new_text);
            Content::Multiple { parts }
        }
        Some(media @ Content::Media(_)) => Content::Multiple {
            parts: vec![new_text, media.clone()],
        },
        _ => new_text,
    }
}

#[cfg(test)]
mod tests;
