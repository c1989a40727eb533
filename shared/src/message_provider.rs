//! The handler of our Bitrix24 message providers (decision 0050): a CRM robot, a workflow or
//! the CRM card sends a WhatsApp template through a connected number.
//!
//! Bitrix24 posts each message to the provider's `HANDLER` (api-reference/messageservice/
//! messageservice-sender-add.md, "What Comes to the Handler"), form-encoded like its events:
//! `module_id`, `bindings` or `workflow_id`/`document_id`/`document_type`, `properties`
//! (`phone_number`, `message_text`), `type`, `code`, `message_id`, `message_to`,
//! `message_body`, `ts` and `auth` (with `member_id`, `domain` and `application_token`).
//!
//! The call is checked like an event ([`crate::portal_events`]): the portal (`auth[member_id]`)
//! must be linked, `auth[domain]` its stored domain, `auth[application_token]` the stored one
//! (constant time), and the provider `code` a WhatsApp number connected to the same tenant.
//! The text is a template command without `/template` (`<name>[@<language>] <parameter> |
//! ...`, [`crate::templates::command`]), checked against the stored definition. A call that
//! is not the portal's, or names no provider and message of ours, is answered 4xx with
//! nothing stored. An accepted one becomes a public-API-like send
//! (`api:ms:<code>:<message_id>`), so window, quota, suspension and retries are the outbound
//! relay's; its statuses go back with `messageservice.message.status.update` (CRM sync),
//! `failed` when Meta or the send path refuses it. A call of the portal refused for good (bad
//! template or parameters, quota, suspension) is answered 4xx too, but Bitrix24 reads
//! nothing of that answer: the message is kept as failed and its `failed` status goes the
//! same way (decision 0066). A call for a person whose erasure is under way keeps nothing of
//! them, not even a failed message: its `failed` status goes by a job that names only the
//! portal's message (decision 0135).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bitrix::events::{parse_form, text_of, EventAuth, FormError};
use crate::ids::{BitrixMemberId, PhoneNumberId, TenantId};
use crate::meta::{AccountRef, CustomerId, WhatsAppPhone};
use crate::outbound::{Accepted, ApiMessage, OutboundError, OutboundIntake};
use crate::portal::providers::{provider_number, request_id};
use crate::secret::Secret;
use crate::templates::{command, sync::WABA_DETAIL, TemplateBook};
use crate::tenant::{ChannelKind, ChannelRef, TenantDirectory, TenantError, TenantScope};

/// Longest portal message id accepted (Bitrix24's are 32 hex digits).
const MAX_MESSAGE_ID: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 401: not a call of a linked portal.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 400: unreadable or incomplete.
    #[error("{0}")]
    Malformed(String),
    /// 422: readable, but the template or its parameters cannot be sent.
    #[error("{0}")]
    Refused(String),
    /// 403 / 429 and the intake's other refusals.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// 503.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl ProviderError {
    /// A refusal that asking again would not change (not our outage): the portal is told
    /// the message failed.
    fn is_for_good(&self) -> bool {
        match self {
            ProviderError::Malformed(_) | ProviderError::Refused(_) => true,
            ProviderError::Outbound(e) => matches!(
                e,
                OutboundError::QuotaExceeded(_)
                    | OutboundError::TenantSuspended
                    | OutboundError::Invalid(_)
                    | OutboundError::Empty
            ),
            ProviderError::Unauthorized(_) | ProviderError::Unavailable(_) => false,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(e.to_string())
}

fn same_secret(a: &Secret, b: &Secret) -> bool {
    let d = |s: &Secret| -> [u8; 32] { Sha256::digest(s.expose().as_bytes()).into() };
    d(a).ct_eq(&d(b)).into()
}

/// The providers' handler. Build once per process.
#[derive(Clone)]
pub struct MessageProvider {
    tenants: TenantDirectory,
    intake: OutboundIntake,
    book: TemplateBook,
}

impl MessageProvider {
    pub fn new(tenants: TenantDirectory, intake: OutboundIntake) -> Self {
        MessageProvider {
            book: TemplateBook::new(tenants.store().clone()),
            tenants,
            intake,
        }
    }

    /// Checks one handler call and queues its template message.
    pub async fn accept(&self, body: &[u8]) -> Result<Accepted, ProviderError> {
        let tree = parse_form(body).map_err(|e| match e {
            FormError::TooLarge => ProviderError::Malformed("the call is too large".into()),
            other => ProviderError::Malformed(other.to_string()),
        })?;
        let auth = EventAuth::from_value(tree.get("auth"));
        let member = auth
            .member_id
            .as_deref()
            .and_then(|m| BitrixMemberId::parse(m).ok())
            .ok_or(ProviderError::Unauthorized("no member_id"))?;
        let portal = ChannelRef::Bitrix24(member);
        let tenant = self
            .tenants
            .resolve(&portal)
            .await
            .map_err(unavailable)?
            .ok_or(ProviderError::Unauthorized("unknown portal"))?;
        let scope = self
            .tenants
            .scope(&tenant)
            .await
            .map_err(unavailable)?
            .ok_or(ProviderError::Unauthorized("unknown portal"))?;
        let domain = scope
            .channel(&portal)
            .await
            .map_err(unavailable)?
            .and_then(|c| c.details.get("domain").map(|d| d.to_ascii_lowercase()))
            .ok_or(ProviderError::Unauthorized("unknown portal"))?;
        if auth.domain.as_deref() != Some(domain.as_str()) {
            return Err(ProviderError::Unauthorized(
                "domain does not match the portal",
            ));
        }
        let stored = match scope.channel_secret(&portal, "application_token").await {
            Ok(s) => Some(s),
            Err(TenantError::Invalid(_) | TenantError::ChannelNotFound(_)) => None,
            Err(e) => return Err(unavailable(e)),
        };
        let verified = match (&stored, &auth.application_token) {
            (Some(s), Some(p)) => same_secret(s, p),
            _ => false,
        };
        if !verified {
            tracing::warn!(%tenant, "message provider call refused: application_token missing or wrong");
            return Err(ProviderError::Unauthorized(
                "application_token missing or wrong",
            ));
        }

        let field = |k: &str, alt: &str| {
            text_of(tree.get(k))
                .or_else(|| text_of(tree.get("properties").and_then(|p| p.get(alt))))
        };
        let code = text_of(tree.get("code")).ok_or_else(|| malformed("code is required"))?;
        let phone: PhoneNumberId =
            provider_number(&code).ok_or_else(|| malformed("code is not one of our providers"))?;
        let channel = ChannelRef::WhatsApp(phone.clone());
        if self.tenants.resolve(&channel).await.map_err(unavailable)? != Some(tenant.clone()) {
            return Err(ProviderError::Refused(
                "this WhatsApp number is no longer connected".into(),
            ));
        }
        let message_id = text_of(tree.get("message_id"))
            .filter(|m| {
                m.len() <= MAX_MESSAGE_ID
                    && m.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
            .ok_or_else(|| malformed("message_id is required (letters, digits, - _ .)"))?;
        let to = field("message_to", "phone_number")
            .and_then(|t| WhatsAppPhone::parse(&t).ok())
            .ok_or_else(|| malformed("message_to must be a phone number"))?;
        let text = field("message_body", "message_text");
        let account = AccountRef::WhatsApp(phone);
        let request = request_id(&code, &message_id);
        let refused = match self
            .send(&scope, &tenant, &account, &to, text.as_deref(), &request)
            .await
        {
            Ok(accepted) => {
                tracing::info!(%tenant, duplicate = accepted.duplicate, "message provider call queued");
                return Ok(accepted);
            }
            Err(e) => e,
        };
        let to = CustomerId::WhatsAppPhone(to);
        // A person being erased: nothing of them may be kept, not even a failed message, so
        // the portal is told without one (decision 0135).
        if matches!(
            refused,
            ProviderError::Outbound(OutboundError::SubjectErased)
        ) {
            if let Err(e) = self
                .intake
                .report_unstored_failure(&tenant, &account, &to, &request)
                .await
            {
                tracing::warn!(%tenant, error = %e, "failed status of a refused provider message not queued");
                return Err(unavailable(e));
            }
            tracing::info!(%tenant, "message provider call for a person being erased refused; failed status queued");
            return Err(refused);
        }
        // Bitrix24 reads nothing of our answer: the portal hears of a refusal for good only
        // as the message's `failed` status (decision 0066).
        if refused.is_for_good() {
            let label = text.unwrap_or_default();
            if let Err(e) = self
                .intake
                .refuse_api_message(
                    &self.tenants,
                    &tenant,
                    &account,
                    to,
                    label,
                    &request,
                    refused.to_string(),
                )
                .await
            {
                tracing::warn!(%tenant, error = %e, "refused provider message not recorded as failed");
                return Err(unavailable(e));
            }
            tracing::info!(%tenant, "message provider call refused; failed status queued");
        }
        Err(refused)
    }

    /// The checks of the message itself, then the send queued.
    async fn send(
        &self,
        scope: &TenantScope,
        tenant: &TenantId,
        account: &AccountRef,
        to: &WhatsAppPhone,
        text: Option<&str>,
        request: &str,
    ) -> Result<Accepted, ProviderError> {
        let text = text.ok_or_else(|| malformed("message_body names the template to send"))?;
        let text = if text.starts_with(command::PREFIX) {
            text.to_owned()
        } else {
            format!("{} {text}", command::PREFIX)
        };
        let cmd = match command::parse(&text) {
            Some(Ok(c)) => c,
            Some(Err(why)) => return Err(ProviderError::Refused(why)),
            None => return Err(malformed("message_body names the template to send")),
        };
        let channel = ChannelRef::of(account);
        let waba = scope
            .channel(&channel)
            .await
            .map_err(unavailable)?
            .filter(|c| c.kind == ChannelKind::WhatsApp)
            .and_then(|c| c.details.get(WABA_DETAIL).cloned())
            .ok_or_else(|| ProviderError::Refused("the number has no business account".into()))?;
        let approved = self
            .book
            .approved(tenant, &waba)
            .await
            .map_err(unavailable)?;
        let template = command::choose(&approved, &cmd)
            .and_then(|t| command::build(t, &cmd))
            .map_err(ProviderError::Refused)?;
        let accepted = self
            .intake
            .accept_api_message(
                &self.tenants,
                tenant,
                account,
                CustomerId::WhatsAppPhone(to.clone()),
                ApiMessage::Template(template),
                request,
            )
            .await?;
        Ok(accepted)
    }
}

fn malformed(m: &str) -> ProviderError {
    ProviderError::Malformed(m.to_owned())
}
