//! Each connected WhatsApp number as a Bitrix24 message provider (decision 0050), so CRM
//! robots, workflows and the CRM card can send the number's approved templates.
//!
//! - Registration (Bitrix24 REST, `messageservice.sender.add`, api-reference/messageservice/
//!   messageservice-sender-add.md): `CODE` (`a-z A-Z 0-9 . - _`), `TYPE: "SMS"` (the only
//!   supported type), `HANDLER` (our URL the portal posts each message to), `NAME`,
//!   `DESCRIPTION`; answers `true`, or `ERROR_SENDER_ALREADY_INSTALLED` for a code the app
//!   registered before (taken as done: registering is repeated on every install).
//! - Removal (`messageservice.sender.delete`, `CODE`): `ERROR_SENDER_NOT_FOUND` is taken as
//!   done.
//! - Statuses (`messageservice.message.status.update`): `CODE`, `MESSAGE_ID` (the portal's id
//!   from the handler call), `STATUS`: `queued`, `sent`, `delivered`, `undelivered`, `failed`.
//!
//! The code names the number (`wappline_wa_<phone_number_id>`): the handler finds the sending
//! number in it, and it is stable across reinstalls.

use serde_json::{json, Value};

use super::install::PortalSetup;
use super::{Portal, PortalError, PortalTokens};
use crate::bitrix::{BitrixClient, BitrixError, PortalSession};
use crate::ids::PhoneNumberId;
use crate::tenant::{ChannelKind, ChannelRef, TenantScope};

/// Where Bitrix24 posts the messages our providers are asked to send.
pub const PROVIDER_PATH: &str = "/bitrix/messageservice";
pub const SENDER_ADD: &str = "messageservice.sender.add";
pub const SENDER_DELETE: &str = "messageservice.sender.delete";
pub const STATUS_UPDATE: &str = "messageservice.message.status.update";
const CODE_PREFIX: &str = "wappline_wa_";

/// The provider code of a WhatsApp number.
pub fn provider_code(phone: &PhoneNumberId) -> String {
    format!("{CODE_PREFIX}{}", phone.as_str())
}

/// The WhatsApp number a provider code names.
pub fn provider_number(code: &str) -> Option<PhoneNumberId> {
    PhoneNumberId::parse(code.strip_prefix(CODE_PREFIX)?).ok()
}

/// The stored id (`provider_message_id`) of a message a portal asked a provider to send:
/// `api:ms:<code>:<portal message id>` (the public API's `api:` prefix, with the portal's
/// ids as the request id).
pub fn request_id(code: &str, message_id: &str) -> String {
    format!("ms:{code}:{message_id}")
}

/// The provider code and the portal's message id of a stored provider message.
pub fn provider_ref(provider_message_id: &str) -> Option<(&str, &str)> {
    let rest = provider_message_id.strip_prefix("api:ms:")?;
    let (code, id) = rest.split_once(':')?;
    provider_number(code)?;
    (!id.is_empty()).then_some((code, id))
}

/// The `messageservice.message.status.update` parameters.
pub fn status_params(code: &str, message_id: &str, status: &str) -> Value {
    json!({"CODE": code, "MESSAGE_ID": message_id, "STATUS": status})
}

impl PortalSetup {
    pub fn provider_url(&self) -> String {
        format!("{}{PROVIDER_PATH}", self.public_base.base())
    }

    /// Registers `phone` as a message provider on the session's portal (again: harmless).
    pub async fn register_provider(
        &self,
        session: &mut PortalSession<'_>,
        phone: &PhoneNumberId,
    ) -> Result<(), BitrixError> {
        let params = json!({
            "CODE": provider_code(phone),
            "TYPE": "SMS",
            "HANDLER": self.provider_url(),
            "NAME": format!("WhatsApp {} ({})", phone.as_str(), self.product_name),
            "DESCRIPTION": format!(
                "Approved WhatsApp templates, sent by {}. Message text: <template>[@<language>] <parameter 1> | <parameter 2> | ...",
                self.product_name
            ),
        });
        match session.call(SENDER_ADD, params).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ERROR_SENDER_ALREADY_INSTALLED") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Removes `phone`'s provider from the session's portal (gone already: done).
pub async fn unregister_provider(
    session: &mut PortalSession<'_>,
    phone: &PhoneNumberId,
) -> Result<(), BitrixError> {
    match session
        .call(SENDER_DELETE, json!({"CODE": provider_code(phone)}))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ERROR_SENDER_NOT_FOUND") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Registers a tenant's WhatsApp numbers on its portal. Cheap to clone.
#[derive(Clone)]
pub struct MessageProviders {
    client: BitrixClient,
    setup: PortalSetup,
}

impl MessageProviders {
    pub fn new(client: BitrixClient, setup: PortalSetup) -> Self {
        MessageProviders { client, setup }
    }

    /// Registers every WhatsApp number of the tenant (or only `only`) on its portal; the
    /// number registered. No portal connected: nothing to do (the install registers them).
    pub async fn register(
        &self,
        scope: &TenantScope,
        only: Option<&PhoneNumberId>,
    ) -> Result<usize, String> {
        let mut portal = match Portal::load(scope).await {
            Ok(p) => p,
            Err(PortalError::NotConnected(_)) => return Ok(0),
            Err(e) => return Err(e.to_string()),
        };
        let numbers: Vec<PhoneNumberId> = scope
            .channels()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| c.kind == ChannelKind::WhatsApp)
            .filter_map(|c| PhoneNumberId::parse(&c.id).ok())
            .filter(|p| only.is_none_or(|o| o == p))
            .collect();
        let store = PortalTokens::new(scope.clone(), portal.channel.clone());
        let mut session = self
            .client
            .session(&portal.domain, &mut portal.tokens, &store);
        for phone in &numbers {
            self.setup
                .register_provider(&mut session, phone)
                .await
                .map_err(|e| format!("{SENDER_ADD}: {e}"))?;
        }
        Ok(numbers.len())
    }

    /// [`MessageProviders::register`] for a channel just connected, logging a failure: the
    /// number is connected either way, and a reinstall of the app registers it again.
    pub async fn after_connect(&self, scope: &TenantScope, channel: &ChannelRef) {
        let ChannelRef::WhatsApp(phone) = channel else {
            return;
        };
        if let Err(e) = self.register(scope, Some(phone)).await {
            tracing::warn!(tenant = %scope.tenant(), error = %e, "WhatsApp number not registered as a Bitrix24 message provider");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_the_number() {
        let p = PhoneNumberId::parse("106540352242922").unwrap();
        let code = provider_code(&p);
        assert_eq!(code, "wappline_wa_106540352242922");
        assert!(code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
        assert_eq!(provider_number(&code), Some(p));
        assert_eq!(provider_number("other_106540352242922"), None);
        assert_eq!(provider_number("wappline_wa_../x"), None);
        let stored = format!(
            "api:{}",
            request_id(&code, "65575980fa531ac284c2ee68f81ebebd")
        );
        assert_eq!(
            provider_ref(&stored),
            Some((code.as_str(), "65575980fa531ac284c2ee68f81ebebd"))
        );
        assert_eq!(provider_ref("api:req-1"), None);
        assert_eq!(provider_ref("b24:1:2"), None);
    }
}
