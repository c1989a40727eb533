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

// ---------------------------------------------------------------------------------------
// Connection codes

/// A freshly issued code: shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub code: Secret,
    pub tenant: TenantId,
    pub line: OpenLineId,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("tenant", &self.tenant)
            .field("line", &self.line)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl IssuedCode {
    /// `<base>/bitrix/install?code=<code>`.
    pub fn install_url(&self, public_base: &EndpointUrl) -> String {
        format!(
            "{}{INSTALL_PATH}?code={}",
            public_base.base(),
            self.code.expose()
        )
    }
}

/// A code that was found valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    pub tenant: TenantId,
    pub line: OpenLineId,
    pub expires_at: i64,
}

/// Single-use, expiring connection codes in the routes table, keyed by their SHA-256.
#[derive(Clone)]
pub struct ConnectionCodes {
    store: Arc<dyn TableStore>,
    ttl: Duration,
}

/// Accepts only what [`ConnectionCodes::issue`] makes: the prefix and 40 lowercase hex
/// digits. Anything else is refused without a store read.
fn well_formed(code: &str) -> bool {
    code.strip_prefix(CODE_PREFIX).is_some_and(|hex| {
        hex.len() == CODE_RANDOM_BYTES * 2
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn code_key(code: &str) -> Key {
    let digest = hex::encode(Sha256::digest(code.as_bytes()));
    Key::new(format!("B24CODE#{digest}"), CODE_SK)
}

/// Prefix of a code's pointer in its tenant's root partition (`T#<t>` / `B24CODE#<digest>`),
/// written with the code so the account erasure finds the code's route by key.
const POINTER_PREFIX: &str = "B24CODE#";

/// The route of the code a pointer's sort key names, if `sk` is such a pointer.
pub fn code_route_of_pointer(sk: &str) -> Option<Key> {
    let digest = sk.strip_prefix(POINTER_PREFIX)?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Key::new(format!("B24CODE#{digest}"), CODE_SK))
}

impl ConnectionCodes {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        ConnectionCodes {
            store,
            ttl: CODE_TTL,
        }
    }

    /// Changes the validity (tests).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Issues a code for `tenant` (which the caller has checked exists) and `line`.
    pub async fn issue(
        &self,
        tenant: &TenantId,
        line: OpenLineId,
    ) -> Result<IssuedCode, StoreError> {
        let mut bytes = [0u8; CODE_RANDOM_BYTES];
        crate::crypto::random_bytes(&mut bytes)
            .map_err(|e| StoreError::Backend(format!("random source: {e}")))?;
        let code = format!("{CODE_PREFIX}{}", hex::encode(bytes));
        let now = now_secs();
        let expires_at = now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let route = code_key(&code);
        // The pointer first: a code whose route exists always has one (a pointer without its
        // route, after a failed put, only expires).
        let pointer = Key::new(
            tenant.partition(),
            format!(
                "{POINTER_PREFIX}{}",
                route.pk.trim_start_matches("B24CODE#")
            ),
        );
        self.store
            .put(
                Table::Data,
                Item::new(&pointer).with(TTL_ATTR, expires_at),
                None,
            )
            .await?;
        let item = Item::new(&route)
            .with("tenant_id", tenant.as_str())
            .with("line_id", i64::try_from(line.get()).unwrap_or(i64::MAX))
            .with("created_at", now)
            .with(TTL_ATTR, expires_at);
        self.store
            .put(Table::Routes, item, Some(Condition::NotExists))
            .await?;
        Ok(IssuedCode {
            code: Secret::from_decrypted(code),
            tenant: tenant.clone(),
            line,
            expires_at,
        })
    }

    /// The code's tenant and line, if it is valid now (expired counts as absent).
    pub async fn peek(&self, code: &str) -> Result<Option<PendingCode>, StoreError> {
        if !well_formed(code) {
            return Ok(None);
        }
        let Some(item) = self.store.get(Table::Routes, &code_key(code)).await? else {
            return Ok(None);
        };
        let tenant = item
            .get_s("tenant_id")
            .and_then(|t| TenantId::parse(t).ok());
        let line = item
            .get_n("line_id")
            .and_then(|l| u64::try_from(l).ok())
            .and_then(|l| OpenLineId::new(l).ok());
        Ok(match (tenant, line) {
            (Some(tenant), Some(line)) => Some(PendingCode {
                tenant,
                line,
                expires_at: item.get_n(TTL_ATTR).unwrap_or(0),
            }),
            _ => None,
        })
    }

    /// Uses the code up: a delete conditioned on the live item still naming `tenant`, so of
    /// two concurrent consumers exactly one gets `true`.
    pub async fn consume(&self, code: &str, tenant: &TenantId) -> Result<bool, StoreError> {
        if !well_formed(code) {
            return Ok(false);
        }
        match self
            .store
            .delete(
                Table::Routes,
                &code_key(code),
                Some(Condition::And(vec![
                    Condition::Exists,
                    Condition::Equals("tenant_id".into(), tenant.as_str().into()),
                ])),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_well_formed_or_refused() {
        assert!(well_formed(&format!("{CODE_PREFIX}{}", "ab".repeat(20))));
        for bad in [
            "",
            "wlb24_",
            &format!("{CODE_PREFIX}{}", "AB".repeat(20)),
            &format!("{CODE_PREFIX}{}", "ab".repeat(21)),
            &format!("xx{}", "ab".repeat(22)),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
        // Different codes, different keys; the key never contains the code.
        let a = code_key(&format!("{CODE_PREFIX}{}", "ab".repeat(20)));
        assert!(a.pk.starts_with("B24CODE#"));
        assert!(!a.pk.contains("abab"));
    }

    #[test]
    fn wizard_request() {
        let form = json!({
            "DOMAIN": "Example.Bitrix24.com", "PROTOCOL": "1", "LANG": "en",
            "APP_SID": "dd8cec11e347088fe87c44870a9f1dba",
            "AUTH_ID": "ahodg4h37n89vo17gbkgq0x1l825nnb5", "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "2lg086mxijlpvwh0h7r4nl19udm4try5",
            "member_id": "a223c6b3710f85df22e9377d6c4f7553", "status": "L"
        });
        let r = InstallRequest::from_form(&form).unwrap();
        assert_eq!(r.flow, InstallFlow::Wizard);
        assert_eq!(r.domain.as_str(), "example.bitrix24.com");
        assert_eq!(r.member_id.as_str(), "a223c6b3710f85df22e9377d6c4f7553");
        assert_eq!(r.access_token.expose(), "ahodg4h37n89vo17gbkgq0x1l825nnb5");
        assert!(r.application_token.is_none());
        assert!(!format!("{r:?}").contains("ahodg4h3"));
        let mut missing = form.clone();
        missing.as_object_mut().unwrap().remove("REFRESH_ID");
        assert!(matches!(
            InstallRequest::from_form(&missing),
            Err(InstallError::Malformed(_))
        ));
    }

    #[test]
    fn callback_request() {
        let form = json!({
            "event": "ONAPPINSTALL",
            "data": {"VERSION": "1", "LANGUAGE_ID": "en"},
            "ts": "1466439714",
            "auth": {
                "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv", "expires_in": "3600",
                "scope": "imconnector,imopenlines", "domain": "example.bitrix24.com",
                "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "L",
                "client_endpoint": "https://example.bitrix24.com/rest/",
                "member_id": "a223c6b3710f85df22e9377d6c4f7553",
                "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8",
                "application_token": "51856fefc120afa4b628cc82d3935cce"
            }
        });
        let r = InstallRequest::from_form(&form).unwrap();
        assert_eq!(r.flow, InstallFlow::Callback);
        assert_eq!(
            r.application_token.as_ref().map(|t| t.expose()),
            Some("51856fefc120afa4b628cc82d3935cce")
        );
        assert_eq!(r.language.as_deref(), Some("en"));
        let mut other = form.clone();
        other["event"] = json!("ONAPPUNINSTALL");
        assert!(InstallRequest::from_form(&other).is_err());
        let mut bad_domain = form;
        bad_domain["auth"]["domain"] = json!("not a host/x");
        assert!(InstallRequest::from_form(&bad_domain).is_err());
    }

    #[test]
    fn registrations_follow_the_documented_rules() {
        let setup = PortalSetup::new(public_base_url("https://w.example/").unwrap());
        assert_eq!(setup.events_url(), "https://w.example/bitrix/events");
        let regs = setup.registrations();
        assert_eq!(regs.len(), 2);
        for (_, _, r) in regs {
            let p = r.to_params().unwrap();
            assert!(p["ICON"]["DATA_IMAGE"]
                .as_str()
                .unwrap()
                .starts_with("data:image/svg+xml;charset=US-ASCII,%3Csvg"));
            assert_eq!(
                p["PLACEMENT_HANDLER"],
                json!("https://w.example/bitrix/placement")
            );
            assert_eq!(p["CHAT_GROUP"], json!("N"));
        }
        assert!(public_base_url("http://example.com").is_err());
    }
}
