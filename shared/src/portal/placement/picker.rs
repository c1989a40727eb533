//! The template picker inside the Bitrix24 chat (decision 0061): a button above the message
//! field of an Open Line chat (`IM_TEXTAREA`, bound with `placement.bind` at install) opens
//! our page, which lists the approved templates of the chat's WhatsApp number with their
//! parameters; the operator fills them in, we check them, and the template goes out as the
//! operator's own `/template` message in that chat (`im.message.add` with the operator's
//! token), so it takes exactly the path a typed command takes (decision 0050).
//!
//! 1. **Open** ([`TemplatePicker::open`]): Bitrix24 posts the standard widget data
//!    (api-reference/widgets/im/textarea.md and widgets/_includes/widget_data.md: `DOMAIN`,
//!    `AUTH_ID`, `member_id`, `PLACEMENT`, `PLACEMENT_OPTIONS`). The reference pages of the
//!    chat placements do not list `PLACEMENT_OPTIONS` yet; Bitrix24's im module passes the
//!    chat as `dialogId` (`chat<ID>`). Nothing is believed: `member_id` must be a linked
//!    portal, `DOMAIN` its domain, `AUTH_ID` must work there (`user.current`), and the user
//!    must have access to the chat (`imopenlines.dialog.get`, `ACCESS_ERROR` otherwise).
//!    Unlike the connector settings page, no admin is needed: the picker is for operators
//!    (`role` `USER`). The chat must be one of our WhatsApp connector's.
//! 2. **Send** ([`TemplatePicker::send`]): the page's form comes back with a signed token
//!    (tenant, portal, chat, conversation, user; 5 minutes), the posted `AUTH_ID` (which must
//!    still be that user's) and the choice. The parameters are checked against the stored
//!    definition as the send worker will check them; a refusal changes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::token::{PageTokenError, PageTokenKey, PAGE_TOKEN_TTL};
use crate::bitrix::dialogs::chat_dialog_id;
use crate::bitrix::events::text_of;
use crate::bitrix::{BitrixClient, BitrixError};
use crate::clock::now_secs;
use crate::conversation::{ConversationId, Conversations};
use crate::crypto::Envelope;
use crate::ids::{BitrixDomain, BitrixMemberId, TenantId};
use crate::meta::AccountRef;
use crate::portal::install::IM_TEXTAREA;
use crate::portal::{Connectors, Portal};
use crate::secret::Secret;
use crate::templates::{command, sync::WABA_DETAIL, Template, TemplateBook};
use crate::tenant::{ChannelRef, TenantDirectory, TenantScope};

/// Separates the picker's page tokens from the settings page's.
const KEY_LABEL: &[u8] = b"wappline/template-picker/v1";

/// Why the picker cannot be shown or a template was not sent. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum PickerError {
    /// 400: the form is not what Bitrix24 sends.
    #[error("{0}")]
    Malformed(String),
    /// 403: `member_id` names no linked portal, or `DOMAIN` is not its domain.
    #[error("this Bitrix24 portal is not connected")]
    UnknownPortal,
    /// 401: the portal refused `AUTH_ID`, or it is another user's than the page's.
    #[error("Bitrix24 did not confirm who opened this page")]
    NotAuthenticated,
    /// 403: the user has no access to this chat.
    #[error("you have no access to this chat")]
    NoAccess,
    /// 400: not an Open Line chat of our WhatsApp connector.
    #[error("templates can be sent from WhatsApp chats of this application only")]
    NotWhatsAppChat,
    /// 401: the page token is not ours or has expired.
    #[error("{0}")]
    PageToken(PageTokenError),
    /// 422: the choice or its parameters are refused; nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// 502: Bitrix24 refused a call.
    #[error("Bitrix24 refused {method}: {error}")]
    Bitrix {
        method: &'static str,
        error: BitrixError,
    },
    /// 503: our store or the portal could not be asked; try again.
    #[error("{0}")]
    Unavailable(String),
}

fn unavailable(e: impl std::fmt::Display) -> PickerError {
    PickerError::Unavailable(e.to_string())
}

/// The picker as Bitrix24 opened it.
pub struct PickerRequest {
    pub domain: BitrixDomain,
    pub member_id: BitrixMemberId,
    /// The user's token; checked on the portal, posted back by the page, never stored.
    pub auth_id: Secret,
    /// Bitrix24's chat id (`dialogId` `chat<ID>`).
    pub chat_id: u64,
    pub lang: Option<String>,
}

impl PickerRequest {
    /// Reads the form. `Err` names what is missing or malformed, for a 400.
    pub fn from_form(form: &Value) -> Result<Self, String> {
        let placement = text_of(form.get("PLACEMENT")).ok_or("PLACEMENT is missing")?;
        if placement != IM_TEXTAREA {
            return Err(format!("this page serves the {IM_TEXTAREA} placement only"));
        }
        let domain = text_of(form.get("DOMAIN"))
            .ok_or("DOMAIN is missing")
            .and_then(|d| BitrixDomain::parse(&d).map_err(|_| "DOMAIN is not a portal address"))?;
        let member_id = text_of(form.get("member_id"))
            .ok_or("member_id is missing")
            .and_then(|m| BitrixMemberId::parse(&m).map_err(|_| "member_id is malformed"))?;
        let auth_id = text_of(form.get("AUTH_ID")).ok_or("AUTH_ID is missing")?;
        let auth_id = Secret::parse("AUTH_ID", &auth_id)?;
        let raw = text_of(form.get("PLACEMENT_OPTIONS")).ok_or("PLACEMENT_OPTIONS is missing")?;
        let options: Value =
            serde_json::from_str(&raw).map_err(|_| "PLACEMENT_OPTIONS is not JSON")?;
        let chat_id = text_of(options.get("dialogId"))
            .as_deref()
            .and_then(chat_dialog_id)
            .ok_or("PLACEMENT_OPTIONS names no chat (dialogId chat<ID>)")?;
        Ok(PickerRequest {
            domain,
            member_id,
            auth_id,
            chat_id,
            lang: super::lang_of(form),
        })
    }
}

/// What a picker token stands for: this user, on this portal of this tenant, may send a
/// template in this chat of this conversation until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickerClaims {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "m")]
    pub member_id: String,
    #[serde(rename = "ch")]
    pub chat_id: u64,
    #[serde(rename = "cv")]
    pub conversation: String,
    #[serde(rename = "u")]
    pub user: u64,
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// One approved template as the picker lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateChoice {
    pub name: String,
    pub language: String,
    pub category: String,
    /// What each parameter fills, in order (named in the page's language by the page).
    pub parameters: Vec<command::Slot>,
    /// `<name>@<language>`: what the form sends back.
    pub value: String,
}

/// What the picker shows.
#[derive(Clone, Debug)]
pub struct PickerPage {
    /// The only origin allowed to frame the page.
    pub portal_origin: String,
    pub templates: Vec<TemplateChoice>,
    /// The page token the form sends back.
    pub token: String,
    /// `<name>@<language>` of a template just sent.
    pub sent: Option<String>,
}

/// The picker's use cases. Build once per process.
#[derive(Clone)]
pub struct TemplatePicker {
    tenants: TenantDirectory,
    envelope: Arc<Envelope>,
    client: BitrixClient,
    connectors: Connectors,
    key: PageTokenKey,
    ttl: Duration,
}

impl TemplatePicker {
    /// `key`: the settings page's key; the picker signs with a key derived from it.
    pub fn new(
        tenants: TenantDirectory,
        envelope: Arc<Envelope>,
        client: BitrixClient,
        key: &PageTokenKey,
    ) -> Self {
        TemplatePicker {
            tenants,
            envelope,
            client,
            connectors: Connectors::default(),
            key: key.derive_for(KEY_LABEL),
            ttl: PAGE_TOKEN_TTL,
        }
    }

    /// The origin of `domain` as this deployment reaches it.
    pub fn portal_origin(&self, domain: &BitrixDomain) -> String {
        super::origin_of(&self.client.config().rest_root(domain))
    }

    async fn linked(
        &self,
        member: &BitrixMemberId,
        domain: &BitrixDomain,
    ) -> Result<(TenantScope, Portal), PickerError> {
        let tenant = self
            .tenants
            .resolve(&ChannelRef::Bitrix24(member.clone()))
            .await
            .map_err(unavailable)?
            .ok_or(PickerError::UnknownPortal)?;
        let scope = self
            .tenants
            .scope(&tenant)
            .await
            .map_err(unavailable)?
            .ok_or(PickerError::UnknownPortal)?;
        let portal = Portal::load(&scope)
            .await
            .map_err(|_| PickerError::UnknownPortal)?;
        if portal.channel.external_id() != member.as_str() || &portal.domain != domain {
            tracing::warn!(%tenant, "template picker refused: not the linked portal");
            return Err(PickerError::UnknownPortal);
        }
        Ok((scope, portal))
    }

    /// The user `AUTH_ID` belongs to on the portal.
    async fn user(&self, domain: &BitrixDomain, auth: &Secret) -> Result<u64, PickerError> {
        match self.client.current_user(domain, auth).await {
            Ok(u) => Ok(u.id),
            Err(BitrixError::ExpiredToken | BitrixError::Unauthorized { .. }) => {
                Err(PickerError::NotAuthenticated)
            }
            Err(e) if e.is_retryable() => Err(unavailable(e)),
            Err(error) => Err(PickerError::Bitrix {
                method: crate::bitrix::USER_CURRENT,
                error,
            }),
        }
    }

    /// Bitrix24 opened the picker in a chat (module documentation).
    pub async fn open(&self, request: PickerRequest) -> Result<PickerPage, PickerError> {
        let (scope, portal) = self.linked(&request.member_id, &request.domain).await?;
        let user = self.user(&portal.domain, &request.auth_id).await?;
        let dialog = match self
            .client
            .open_line_dialog(&portal.domain, &request.auth_id, request.chat_id)
            .await
        {
            Ok(d) => d,
            Err(BitrixError::Rejected { code, .. }) if code == "ACCESS_ERROR" => {
                tracing::warn!(tenant = %scope.tenant(), user, "template picker refused: no access to the chat");
                return Err(PickerError::NoAccess);
            }
            Err(e) if e.is_retryable() => return Err(unavailable(e)),
            Err(error) => {
                return Err(PickerError::Bitrix {
                    method: crate::bitrix::dialogs::IMOPENLINES_DIALOG_GET,
                    error,
                })
            }
        };
        let dialog = dialog
            .filter(|d| d.connector == self.connectors.whatsapp.as_str())
            .ok_or(PickerError::NotWhatsAppChat)?;
        let conversation = ConversationId::parse(&dialog.external_chat)
            .map_err(|_| PickerError::NotWhatsAppChat)?;
        let approved = self.approved(&scope, &conversation).await?;
        let claims = PickerClaims {
            tenant: scope.tenant().to_string(),
            member_id: request.member_id.as_str().to_owned(),
            chat_id: dialog.chat_id,
            conversation: conversation.as_str().to_owned(),
            user,
            expires_at: now_secs() + self.ttl.as_secs() as i64,
        };
        tracing::info!(tenant = %scope.tenant(), user, templates = approved.len(),
            "template picker opened");
        Ok(self.page(&portal, &claims, &approved, None))
    }

    /// The approved templates of the conversation's WhatsApp number.
    async fn approved(
        &self,
        scope: &TenantScope,
        conversation: &ConversationId,
    ) -> Result<Vec<Template>, PickerError> {
        let tenant = scope.tenant().clone();
        let meta = Conversations::new(
            tenant.clone(),
            self.tenants.store().clone(),
            self.envelope.clone(),
        )
        .meta(conversation)
        .await
        .map_err(unavailable)?
        .ok_or(PickerError::NotWhatsAppChat)?;
        let AccountRef::WhatsApp(number) = &meta.account else {
            return Err(PickerError::NotWhatsAppChat);
        };
        let waba = scope
            .channels()
            .await
            .map_err(unavailable)?
            .into_iter()
            .find(|c| c.id == number.as_str())
            .and_then(|c| c.details.get(WABA_DETAIL).cloned())
            .ok_or(PickerError::NotWhatsAppChat)?;
        TemplateBook::new(self.tenants.store().clone())
            .approved(&tenant, &waba)
            .await
            .map_err(unavailable)
    }

    fn page(
        &self,
        portal: &Portal,
        claims: &PickerClaims,
        approved: &[Template],
        sent: Option<String>,
    ) -> PickerPage {
        let mut templates: Vec<TemplateChoice> = approved
            .iter()
            .filter_map(|t| {
                // A template whose header cannot be filled from the chat is not offered.
                let parameters = command::parameter_slots(t).ok()?;
                Some(TemplateChoice {
                    name: t.name.clone(),
                    language: t.language.clone(),
                    category: t.category.clone(),
                    parameters,
                    value: format!("{}@{}", t.name, t.language),
                })
            })
            .collect();
        templates.sort_by(|a, b| a.value.cmp(&b.value));
        let mut fresh = claims.clone();
        fresh.expires_at = now_secs() + self.ttl.as_secs() as i64;
        PickerPage {
            portal_origin: self.portal_origin(&portal.domain),
            templates,
            token: self.key.sign_json(&fresh),
            sent,
        }
    }

    fn verify(&self, token: &str) -> Result<PickerClaims, PickerError> {
        let invalid = || PickerError::PageToken(PageTokenError::Invalid);
        let payload = self.key.open_json(token).map_err(PickerError::PageToken)?;
        let claims: PickerClaims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if claims.expires_at <= now_secs() {
            return Err(PickerError::PageToken(PageTokenError::Invalid));
        }
        Ok(claims)
    }

    /// Sends `choice` (`<name>@<language>`) with `params` in the token's chat, as the
    /// operator (module documentation). The portal's origin comes back with a refusal once
    /// the token was authentic.
    pub async fn send(
        &self,
        token: &str,
        auth_id: &Secret,
        choice: &str,
        params: &[String],
    ) -> Result<PickerPage, (PickerError, Option<String>)> {
        let claims = self.verify(token).map_err(|e| (e, None))?;
        let invalid = || (PickerError::PageToken(PageTokenError::Invalid), None);
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| invalid())?;
        let member = BitrixMemberId::parse(&claims.member_id).map_err(|_| invalid())?;
        let conversation = ConversationId::parse(&claims.conversation).map_err(|_| invalid())?;
        let scope = self
            .tenants
            .scope(&tenant)
            .await
            .map_err(|e| (unavailable(e), None))?
            .ok_or((PickerError::UnknownPortal, None))?;
        let portal = Portal::load(&scope)
            .await
            .map_err(|_| (PickerError::UnknownPortal, None))?;
        if portal.channel.external_id() != member.as_str() {
            return Err((PickerError::UnknownPortal, None));
        }
        let origin = Some(self.portal_origin(&portal.domain));
        let fail = |e| (e, origin.clone());
        // The posted token must still be the page's user's.
        let user = self.user(&portal.domain, auth_id).await.map_err(fail)?;
        if user != claims.user {
            tracing::warn!(%tenant, "template picker refused: AUTH_ID of another user");
            return Err(fail(PickerError::NotAuthenticated));
        }
        let approved = self.approved(&scope, &conversation).await.map_err(fail)?;
        let (name, language) = choice
            .split_once('@')
            .filter(|(n, l)| !n.is_empty() && !l.is_empty())
            .ok_or_else(|| {
                fail(PickerError::Refused(
                    "choose one of the listed templates".into(),
                ))
            })?;
        let cmd = command::Command {
            name: name.to_owned(),
            language: Some(language.to_owned()),
            params: params.iter().map(|p| p.trim().to_owned()).collect(),
        };
        // The send worker's own checks, before anything reaches the chat.
        let text = command::choose(&approved, &cmd)
            .and_then(|t| command::build(t, &cmd).map(|_| t))
            .and_then(|t| command::command_text(&t.name, &t.language, &cmd.params))
            .map_err(|why| fail(PickerError::Refused(why)))?;
        match self
            .client
            .add_message_as_user(&portal.domain, auth_id, claims.chat_id, &text)
            .await
        {
            Ok(_) => {}
            Err(BitrixError::ExpiredToken | BitrixError::Unauthorized { .. }) => {
                return Err(fail(PickerError::NotAuthenticated))
            }
            Err(BitrixError::Rejected { code, .. }) if code == "ACCESS_ERROR" => {
                return Err(fail(PickerError::NoAccess))
            }
            Err(e) if e.is_retryable() => return Err(fail(unavailable(e))),
            Err(error) => {
                return Err(fail(PickerError::Bitrix {
                    method: crate::bitrix::dialogs::IM_MESSAGE_ADD,
                    error,
                }))
            }
        }
        tracing::info!(%tenant, user, "template sent from the picker as the operator's message");
        Ok(self.page(&portal, &claims, &approved, Some(choice.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(placement: &str, options: &str) -> Value {
        json!({
            "DOMAIN": "acme.bitrix24.com", "PROTOCOL": "1", "LANG": "en",
            "AUTH_ID": "6061e72600631fcd00005a4b00000001f0f1076700000000f69dd5fc643d9ce2fdbc1",
            "member_id": "da45a03b265edd8787f8a258d793cc5d", "status": "L",
            "PLACEMENT": placement, "PLACEMENT_OPTIONS": options
        })
    }

    #[test]
    fn the_form_names_the_chat() {
        let r = PickerRequest::from_form(&form(IM_TEXTAREA, r#"{"dialogId":"chat1364"}"#)).unwrap();
        assert_eq!(r.chat_id, 1364);
        assert_eq!(r.domain.as_str(), "acme.bitrix24.com");
        for (placement, options) in [
            ("IM_SIDEBAR", r#"{"dialogId":"chat1364"}"#),
            (IM_TEXTAREA, r#"{"dialogId":"256"}"#),
            (IM_TEXTAREA, r#"{"ID":"3443"}"#),
            (IM_TEXTAREA, "not json"),
        ] {
            assert!(
                PickerRequest::from_form(&form(placement, options)).is_err(),
                "{placement} {options}"
            );
        }
    }

    #[test]
    fn a_settings_page_token_is_no_picker_token() {
        let key = PageTokenKey::from_bytes([7; 32]);
        let picker = key.derive_for(KEY_LABEL);
        let claims = PickerClaims {
            tenant: "t_0123456789abcdef".into(),
            member_id: "da45a03b265edd8787f8a258d793cc5d".into(),
            chat_id: 1364,
            conversation: "c".into(),
            user: 7,
            expires_at: i64::MAX,
        };
        let token = picker.sign_json(&claims);
        assert!(picker.open_json(&token).is_ok());
        assert!(key.open_json(&token).is_err(), "another key");
    }
}
