//! Linking a Bitrix24 portal to a tenant through the application's installation.
//!
//! 1. A platform admin issues a **connection code** for a tenant and an Open Line
//!    ([`ConnectionCodes::issue`]): 160 random bits, shown once, stored only as its SHA-256 in
//!    the routes table with the tenant, the line and a 24-hour TTL. The install URL carries
//!    it: `<public base>/bitrix/install?code=...`.
//! 2. The portal's admin installs our application with that URL as its install path.
//!    Bitrix24 POSTs to it (form-encoded), in one of two documented shapes:
//!    - **installation wizard** (application with a UI; apidocs "Simplified Method for
//!      Obtaining OAuth 2.0 Tokens", "Installation Wizard for Local Application"): the page
//!      opens in a frame with `DOMAIN`, `PROTOCOL`, `LANG`, `APP_SID`, `AUTH_ID`,
//!      `AUTH_EXPIRES`, `REFRESH_ID`, `member_id`, `status` (and `PLACEMENT`,
//!      `PLACEMENT_OPTIONS`). No `application_token` here: it comes with the `ONAPPINSTALL`
//!      event, which we bind to our events handler. The page must call
//!      `BX24.installFinish()`, or Bitrix24 sends no events at all (apidocs "Completing
//!      Application Installation").
//!    - **installation callback** (application "uses only API"; apidocs "Installation
//!      Callback"): Bitrix24's backend POSTs the `ONAPPINSTALL` event shape, `event`,
//!      `data[...]`, `ts`, `auth[access_token]`, `auth[refresh_token]`, `auth[domain]`,
//!      `auth[member_id]`, `auth[application_token]`... Installation completes by itself.
//! 3. [`BitrixInstaller::install`] checks the code (exists, not expired), that the portal
//!    belongs to no other tenant and the tenant to no other portal, and **verifies the
//!    portal** by exchanging the refresh token at the OAuth server: the answer's `member_id`
//!    must be the one posted and its `client_endpoint` the posted domain's REST root, so a
//!    code holder cannot claim someone else's `member_id`. It then stores the fresh pair
//!    encrypted on the tenant ([`TenantScope::connect`]: the route's conditional write makes
//!    one portal one tenant), registers our two connectors (`imconnector.register`),
//!    activates them on the line (`imconnector.activate`), sets their data
//!    (`imconnector.connector.data.set`), binds our events (`event.bind`, handler
//!    `<public base>/bitrix/events`), and only then consumes the code with a conditional
//!    delete. A failed set-up leaves the code usable, so reinstalling the application
//!    retries; two installs racing with one code leave one linked portal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Connectors, PortalTokens};
use crate::clock::now_secs;
use crate::ids::{BitrixDomain, BitrixMemberId, InvalidId, TenantId};
use crate::store::{Condition, Item, Key, StoreError, Table, TableStore, Update, TTL_ATTR};
use crate::tenant::{ChannelKind, ChannelRef, Connection, Secret, TenantDirectory, TenantError};

use crate::bitrix::events::text_of;
use crate::bitrix::imconnector::{ConnectorData, ConnectorId, ConnectorRegistration, OpenLineId};
use crate::bitrix::BitrixClient;
use crate::bitrix::BitrixError;
use crate::bitrix::EndpointUrl;
use crate::bitrix::{TokenPair, TokenStore};

/// How long a connection code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Prefix of every connection code.
pub const CODE_PREFIX: &str = "wlb24_";
const CODE_RANDOM_BYTES: usize = 20;
const CODE_SK: &str = "CODE";

/// Path of the install handler, as template.yaml routes it.
pub const INSTALL_PATH: &str = "/bitrix/install";
/// Path of the events handler bound with `event.bind`.
pub const EVENTS_PATH: &str = "/bitrix/events";
/// Path of the connector settings page (`PLACEMENT_HANDLER`).
pub const PLACEMENT_PATH: &str = "/bitrix/placement";
/// The console's channels page, where WhatsApp and Instagram are connected (decision 0046);
/// the settings page links to it when a line has nothing to attach (decision 0073).
pub const CONSOLE_CHANNELS_PATH: &str = "/app/channels";
/// The template picker in the chat (`IM_TEXTAREA`, decision 0061).
pub const PICKER_PATH: &str = "/bitrix/templates";
/// The chat placement of the template picker: the panel above the message field.
pub const IM_TEXTAREA: &str = "IM_TEXTAREA";
/// Environment variable holding the public base URL of the deployment.
pub const ENV_PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";

/// The events we bind (apidocs names), besides `OnAppInstall` while the application token
/// is not yet known.
pub const BOUND_EVENTS: &[&str] = &[
    "OnImConnectorMessageAdd",
    "OnImConnectorMessageUpdate",
    "OnImConnectorMessageDelete",
    "OnImConnectorStatusDelete",
    "OnImConnectorLineDelete",
    "OnAppUninstall",
];
/// `OnAppInstall`: brings the `application_token` after the installation wizard.
pub const APP_INSTALL_EVENT: &str = "OnAppInstall";

/// Parses the public base URL (`https://...`, or plain http on loopback; no query).
pub fn public_base_url(s: &str) -> Result<EndpointUrl, crate::bitrix::BitrixConfigError> {
    EndpointUrl::parse(ENV_PUBLIC_BASE_URL, s)
}

// Connection codes: codes.rs.
mod codes;
pub use codes::{code_route_of_pointer, ConnectionCodes, IssuedCode, PendingCode};

// ---------------------------------------------------------------------------------------
// The install request

/// Which of the two documented install requests arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallFlow {
    /// The installation wizard page (a browser frame): answer with a page that calls
    /// `BX24.installFinish()`.
    Wizard,
    /// The backend installation callback (`ONAPPINSTALL` shape).
    Callback,
}

/// What Bitrix24 posted to the install handler. `Debug` shows no token.
#[derive(Clone)]
pub struct InstallRequest {
    pub flow: InstallFlow,
    pub member_id: BitrixMemberId,
    pub domain: BitrixDomain,
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub application_token: Option<Secret>,
    pub language: Option<String>,
}

impl std::fmt::Debug for InstallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallRequest")
            .field("flow", &self.flow)
            .field("member_id", &self.member_id)
            .field("domain", &self.domain)
            .field("application_token", &self.application_token.is_some())
            .finish_non_exhaustive()
    }
}

fn domain_of(raw: &str) -> Result<BitrixDomain, InstallError> {
    let host = raw
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    BitrixDomain::parse(&host).map_err(|e: InvalidId| InstallError::Malformed(e.to_string()))
}

fn required_secret(v: Option<&Value>, name: &str) -> Result<Secret, InstallError> {
    let raw = text_of(v).ok_or_else(|| InstallError::Malformed(format!("{name} is missing")))?;
    Secret::parse(name, &raw).map_err(InstallError::Malformed)
}

impl InstallRequest {
    /// Reads either documented shape from a parsed form ([`crate::bitrix::events::parse_form`]).
    pub fn from_form(form: &Value) -> Result<Self, InstallError> {
        let member = |raw: Option<String>| -> Result<BitrixMemberId, InstallError> {
            let raw = raw.ok_or_else(|| InstallError::Malformed("member_id is missing".into()))?;
            BitrixMemberId::parse(&raw).map_err(|e| InstallError::Malformed(e.to_string()))
        };
        if let Some(auth) = form.get("auth").filter(|a| a.is_object()) {
            let event = text_of(form.get("event")).map(|e| e.to_ascii_uppercase());
            if event.as_deref().is_some_and(|e| e != "ONAPPINSTALL") {
                return Err(InstallError::Malformed(
                    "the install handler takes ONAPPINSTALL only".into(),
                ));
            }
            let domain = text_of(auth.get("domain"))
                .ok_or_else(|| InstallError::Malformed("auth[domain] is missing".into()))?;
            return Ok(InstallRequest {
                flow: InstallFlow::Callback,
                member_id: member(text_of(auth.get("member_id")))?,
                domain: domain_of(&domain)?,
                access_token: required_secret(auth.get("access_token"), "access_token")?,
                refresh_token: required_secret(auth.get("refresh_token"), "refresh_token")?,
                application_token: text_of(auth.get("application_token"))
                    .and_then(|t| Secret::parse("application_token", &t).ok()),
                language: form.get("data").and_then(|d| text_of(d.get("LANGUAGE_ID"))),
            });
        }
        let domain = text_of(form.get("DOMAIN"))
            .ok_or_else(|| InstallError::Malformed("DOMAIN is missing".into()))?;
        Ok(InstallRequest {
            flow: InstallFlow::Wizard,
            member_id: member(text_of(form.get("member_id")))?,
            domain: domain_of(&domain)?,
            access_token: required_secret(form.get("AUTH_ID"), "AUTH_ID")?,
            refresh_token: required_secret(form.get("REFRESH_ID"), "REFRESH_ID")?,
            application_token: None,
            language: text_of(form.get("LANG")),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Errors and outcomes

/// Why an installation did not link the portal.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Unknown, malformed, expired or already used connection code.
    #[error("the connection code is not valid (unknown, expired or already used)")]
    InvalidCode,
    #[error("the installation request is incomplete: {0}")]
    Malformed(String),
    /// The portal is linked to another tenant.
    #[error("this Bitrix24 portal is already connected to another account")]
    PortalTaken,
    /// The tenant already has another portal; it must be disconnected first.
    #[error(
        "this account already has another Bitrix24 portal connected ({0}); disconnect it first"
    )]
    TenantHasOtherPortal(String),
    /// The OAuth server did not confirm the portal.
    #[error("the portal could not be verified with Bitrix24: {0}")]
    NotVerified(String),
    /// The portal is linked but setting it up failed (reinstalling retries).
    #[error("the portal is connected, but setting up the Open Line failed at {stage}: {error}")]
    Setup {
        stage: &'static str,
        error: BitrixError,
    },
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A linked and set-up portal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub tenant: TenantId,
    pub member_id: BitrixMemberId,
    pub domain: BitrixDomain,
    pub line: OpenLineId,
    pub flow: InstallFlow,
    /// The application token is stored (callback flow); otherwise `ONAPPINSTALL` brings it.
    pub application_token_stored: bool,
    /// The portal was already linked to this tenant (a reinstall).
    pub reinstalled: bool,
}

/// Adds `name` to the channel item's list of stored secrets (shown to admins), after
/// [`TenantScope::replace_secrets`] stored a secret the connection did not have.
pub(crate) async fn list_secret(
    store: &dyn TableStore,
    tenant: &TenantId,
    channel: &ChannelRef,
    names: &[String],
) -> Result<(), StoreError> {
    let list = crate::store::AttrValue::L(
        names
            .iter()
            .map(|n| crate::store::AttrValue::S(n.clone()))
            .collect(),
    );
    match store
        .update(
            Table::Data,
            &channel.channel_key(tenant),
            Update::new().set("secrets", list),
            Some(Condition::Exists),
        )
        .await
    {
        Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Set-up

/// How our connectors present themselves and where Bitrix24 reaches us.
#[derive(Clone, Debug)]
pub struct PortalSetup {
    pub connectors: Connectors,
    /// `https://...` of this deployment; events go to `<base>/bitrix/events`.
    pub public_base: EndpointUrl,
    /// Shown in the Open Line's connector list, before the channel name.
    pub product_name: String,
}

/// A small round icon with a letter, as an SVG data URI (`ICON.DATA_IMAGE`).
fn icon(color: &str, letter: char) -> String {
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 70 70\">\
         <circle cx=\"35\" cy=\"35\" r=\"33\" fill=\"{color}\"/>\
         <text x=\"35\" y=\"47\" font-size=\"34\" text-anchor=\"middle\" fill=\"#ffffff\" \
         font-family=\"Arial,sans-serif\">{letter}</text></svg>"
    );
    format!(
        "data:image/svg+xml;charset=US-ASCII,{}",
        crate::bitrix::events::form_encode(&svg)
    )
}

impl PortalSetup {
    pub fn new(public_base: EndpointUrl) -> Self {
        PortalSetup {
            connectors: Connectors::default(),
            public_base,
            product_name: "Wappline".into(),
        }
    }

    pub fn events_url(&self) -> String {
        format!("{}{EVENTS_PATH}", self.public_base.base())
    }

    pub fn placement_url(&self) -> String {
        format!("{}{PLACEMENT_PATH}", self.public_base.base())
    }

    pub fn console_channels_url(&self) -> String {
        format!("{}{CONSOLE_CHANNELS_PATH}", self.public_base.base())
    }

    pub fn picker_url(&self) -> String {
        format!("{}{PICKER_PATH}", self.public_base.base())
    }

    /// `placement.bind` of the template picker (decision 0061): `IM_TEXTAREA` in Open Line
    /// chats only, for every user (operators are not admins). The `OPTIONS` are those
    /// Bitrix24's im module checks at bind time (`iconName` required, at most 50 characters;
    /// `context` `ALL`, `USER`, `CHAT`, `LINES`, `CRM`; `role` `USER` or `ADMIN`; `extranet`
    /// `Y`/`N`; `width`, `height` not negative).
    pub fn picker_binding(&self) -> serde_json::Value {
        serde_json::json!({
            "PLACEMENT": IM_TEXTAREA,
            "HANDLER": self.picker_url(),
            "TITLE": "WhatsApp templates",
            "DESCRIPTION": "Send an approved WhatsApp template to this customer",
            "LANG_ALL": {
                "en": {"TITLE": "WhatsApp templates"},
                "ru": {"TITLE": "Шаблоны WhatsApp"}
            },
            "OPTIONS": {
                "iconName": "fa-whatsapp",
                "context": "LINES",
                "role": "USER",
                "extranet": "N",
                "width": 520,
                "height": 420
            }
        })
    }

    /// Our connectors: (id, channel name, registration).
    pub fn registrations(&self) -> Vec<(ConnectorId, &'static str, ConnectorRegistration)> {
        [
            (&self.connectors.whatsapp, "WhatsApp", "#25D366", 'W'),
            (&self.connectors.instagram, "Instagram", "#C13584", 'I'),
        ]
        .into_iter()
        .map(|(id, channel, color, letter)| {
            (
                id.clone(),
                channel,
                ConnectorRegistration {
                    id: id.clone(),
                    name: format!("{channel} ({})", self.product_name),
                    icon_data_image: icon(color, letter),
                    icon_color: Some(color.into()),
                    placement_handler: self.placement_url(),
                    // Neither the WhatsApp Cloud API nor the Instagram Send API can edit or
                    // delete a message once sent: do not offer it to operators.
                    edit_internal_messages: false,
                    delete_internal_messages: false,
                    // One customer per chat: leads are created (a group chat creates none).
                    chat_group: false,
                    comment: Some(format!(
                        "Customers' {channel} conversations, relayed by {}.",
                        self.product_name
                    )),
                },
            )
        })
        .collect()
    }

    /// The connector's data on a line that carries no channel of its own: the product,
    /// keyed by connector and line as apidocs advises when there is no external id.
    pub fn default_data(&self, id: &ConnectorId, line: OpenLineId) -> ConnectorData {
        let channel = if id == &self.connectors.instagram {
            "Instagram"
        } else {
            "WhatsApp"
        };
        ConnectorData {
            id: format!("{}_line{}", id.as_str(), line.get()),
            url: Some(self.public_base.base().to_owned()),
            url_im: None,
            name: Some(format!("{channel} ({})", self.product_name)),
        }
    }

    /// Registers and activates our connectors on `line`, sets their data, binds our events
    /// (and `OnAppInstall` when `bind_install_event`). Idempotent: a reinstall repeats it.
    pub async fn run(
        &self,
        client: &BitrixClient,
        domain: &BitrixDomain,
        tokens: &mut TokenPair,
        store: &dyn TokenStore,
        line: OpenLineId,
        bind_install_event: bool,
    ) -> Result<(), InstallError> {
        let mut session = client.session(domain, tokens, store);
        let setup =
            |stage: &'static str| move |error: BitrixError| InstallError::Setup { stage, error };
        for (id, _, registration) in self.registrations() {
            session
                .register_connector(&registration)
                .await
                .map_err(setup("imconnector.register"))?;
            session
                .activate_connector(&id, line, true)
                .await
                .map_err(setup("imconnector.activate"))?;
            let data = self.default_data(&id, line);
            session
                .set_connector_data(&id, line, &data)
                .await
                .map_err(setup("imconnector.connector.data.set"))?;
        }
        let handler = self.events_url();
        let mut events: Vec<&str> = BOUND_EVENTS.to_vec();
        if bind_install_event {
            events.push(APP_INSTALL_EVENT);
        }
        for event in events {
            session
                .bind_event(event, &handler)
                .await
                .map_err(setup("event.bind"))?;
        }
        // The template picker: unbound first, so a reinstall replaces it instead of adding
        // a second button.
        session
            .unbind_placement(IM_TEXTAREA, &self.picker_url())
            .await
            .map_err(setup("placement.unbind"))?;
        session
            .bind_placement(self.picker_binding())
            .await
            .map_err(setup("placement.bind"))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The installer

/// Links portals to tenants (see the module documentation). Build once per process.
#[derive(Clone)]
pub struct BitrixInstaller {
    tenants: TenantDirectory,
    codes: ConnectionCodes,
    client: BitrixClient,
    setup: PortalSetup,
}

impl BitrixInstaller {
    pub fn new(
        tenants: TenantDirectory,
        store: Arc<dyn TableStore>,
        client: BitrixClient,
        setup: PortalSetup,
    ) -> Self {
        BitrixInstaller {
            codes: ConnectionCodes::new(store),
            tenants,
            client,
            setup,
        }
    }

    pub fn with_codes(mut self, codes: ConnectionCodes) -> Self {
        self.codes = codes;
        self
    }

    pub fn codes(&self) -> &ConnectionCodes {
        &self.codes
    }

    pub fn setup(&self) -> &PortalSetup {
        &self.setup
    }

    /// Asks the OAuth server to confirm the portal ([`super::verify::verify_portal`]).
    /// Returns the fresh pair (the posted one is retired by the exchange).
    async fn verify(&self, request: &InstallRequest) -> Result<TokenPair, InstallError> {
        super::verify::verify_portal(
            &self.client,
            &request.domain,
            &request.member_id,
            &request.refresh_token,
        )
        .await
        .map_err(|e| match e {
            super::verify::PortalProofError::Refused(e)
            | super::verify::PortalProofError::Unavailable(e) => {
                InstallError::NotVerified(e.to_string())
            }
            other => InstallError::NotVerified(other.to_string()),
        })
    }

    /// Links the posted portal to the code's tenant and sets it up (module documentation).
    pub async fn install(
        &self,
        code: &str,
        request: InstallRequest,
    ) -> Result<Installed, InstallError> {
        let pending = self
            .codes
            .peek(code)
            .await?
            .ok_or(InstallError::InvalidCode)?;
        let scope = self
            .tenants
            .scope(&pending.tenant)
            .await?
            .ok_or(InstallError::InvalidCode)?;
        let channel = ChannelRef::Bitrix24(request.member_id.clone());
        match self.tenants.resolve(&channel).await? {
            Some(owner) if owner != pending.tenant => {
                tracing::warn!(tenant = %pending.tenant, member_id = %request.member_id,
                    "install refused: portal connected to another tenant");
                return Err(InstallError::PortalTaken);
            }
            _ => {}
        }
        let channels = scope.channels().await?;
        if let Some(other) = channels
            .iter()
            .find(|c| c.kind == ChannelKind::Bitrix24 && c.id != request.member_id.as_str())
        {
            return Err(InstallError::TenantHasOtherPortal(
                other
                    .details
                    .get("domain")
                    .cloned()
                    .unwrap_or_else(|| other.id.clone()),
            ));
        }
        let reinstalled = channels
            .iter()
            .any(|c| c.kind == ChannelKind::Bitrix24 && c.id == request.member_id.as_str());

        let mut tokens = self.verify(&request).await?;

        // A reinstall keeps an application token the portal gave before, unless a new one
        // came with this request.
        let application_token = match &request.application_token {
            Some(t) => Some(t.clone()),
            None if reinstalled => scope
                .channel_secret(&channel, "application_token")
                .await
                .ok(),
            None => None,
        };
        let mut details = BTreeMap::new();
        details.insert("domain".to_owned(), request.domain.to_string());
        details.insert("line_id".to_owned(), pending.line.to_string());
        details.insert("linked_via".to_owned(), "install".to_owned());
        let mut secrets = BTreeMap::new();
        secrets.insert("access_token", tokens.access_token.clone());
        secrets.insert("refresh_token", tokens.refresh_token.clone());
        if let Some(t) = &application_token {
            secrets.insert("application_token", t.clone());
        }
        match scope
            .connect(Connection {
                channel: channel.clone(),
                details,
                secrets,
                authorized_by: None,
            })
            .await
        {
            Ok(_) => {}
            Err(TenantError::ChannelTaken(_)) => return Err(InstallError::PortalTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(tenant = %pending.tenant, member_id = %request.member_id,
            domain = %request.domain, reinstalled, "bitrix24 portal linked");

        let store = PortalTokens::new(scope.clone(), channel.clone());
        self.setup
            .run(
                &self.client,
                &request.domain,
                &mut tokens,
                &store,
                pending.line,
                application_token.is_none(),
            )
            .await
            .inspect_err(|e| {
                tracing::error!(tenant = %pending.tenant, member_id = %request.member_id,
                    error = %e, "bitrix24 portal linked but its set-up failed");
            })?;
        // The WhatsApp numbers connected before the portal, as message providers for CRM
        // robots (decision 0050); a failure leaves the install done (a reinstall retries).
        let numbers = channels
            .iter()
            .filter(|c| c.kind == ChannelKind::WhatsApp)
            .filter_map(|c| crate::ids::PhoneNumberId::parse(&c.id).ok());
        let mut session = self.client.session(&request.domain, &mut tokens, &store);
        for phone in numbers {
            if let Err(e) = self.setup.register_provider(&mut session, &phone).await {
                tracing::warn!(tenant = %pending.tenant, error = %e,
                    "WhatsApp number not registered as a Bitrix24 message provider");
            }
        }

        if !self.codes.consume(code, &pending.tenant).await? {
            // Another installation used the code meanwhile: undo ours (unless the portal
            // was linked here before).
            tracing::warn!(tenant = %pending.tenant, member_id = %request.member_id,
                "connection code used concurrently; this installation is undone");
            if !reinstalled {
                if let Err(e) = scope.disconnect(&channel).await {
                    tracing::error!(error = %e, "undoing a raced installation failed");
                }
            }
            return Err(InstallError::InvalidCode);
        }
        Ok(Installed {
            tenant: pending.tenant,
            member_id: request.member_id,
            domain: request.domain,
            line: pending.line,
            flow: request.flow,
            application_token_stored: application_token.is_some(),
            reinstalled,
        })
    }
}

#[cfg(test)]
mod tests;
