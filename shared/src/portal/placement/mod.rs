//! The connector's settings page inside the portal (`SETTING_CONNECTOR`, the
//! `PLACEMENT_HANDLER` of our connectors; decision 0043): a portal admin attaches one of the
//! tenant's WhatsApp numbers or Instagram accounts to the Open Line the page was opened for,
//! or detaches it.
//!
//! 1. **Open** ([`PlacementConsole::open`]): Bitrix24 posts the page's form
//!    ([`PlacementRequest`]). Nothing in it is believed: `member_id` must be a portal linked
//!    to a tenant, `DOMAIN` the domain we linked for it, and the posted `AUTH_ID` must work on
//!    that domain (we call it there, through the client's public-only resolver, never at an
//!    address the form names): `user.current` names the user, `app.info` proves an
//!    application's token of an installed application, `user.admin` must be true. A forged
//!    or stale token (`401 invalid_token` / `expired_token`), an unknown `member_id`, another
//!    domain or a user who is not an admin get an error and change nothing. The page then
//!    holds a short-lived signed token ([`token`]) bound to tenant, portal, line, connector
//!    and user.
//! 2. **Attach / detach** ([`PlacementConsole::attach`], [`PlacementConsole::detach`]): the
//!    page's form sends the token back; every change verifies it again. Attaching claims the
//!    line for the channel (one channel per line), then `imconnector.activate` (ACTIVE=1) and
//!    `imconnector.connector.data.set` (the number or account) with the portal's own tokens,
//!    so the Contact Center tile turns green and names it; if Bitrix24 refuses, the claim is
//!    undone and the error shown. Detaching turns the connector off on that line only
//!    (ACTIVE=0; never on the portal's own line, which the other channels use) and frees it.
//!    The change itself is [`super::line_change::OpenLines`], which the web console calls too
//!    (decision 0072).

pub mod picker;
mod request;
pub mod token;

use std::time::Duration;

use crate::audit::AuditLog;
use crate::bitrix::{BitrixClient, BitrixError, ConnectorId, OpenLineId};
use crate::clock::now_secs;
use crate::ids::{BitrixDomain, BitrixMemberId, TenantId};
use crate::tenant::{
    ChannelKind, ChannelRef, ChannelSummary, LineError, TenantDirectory, TenantScope,
};

pub use request::{
    lang_of, ConnectorStatus, PlacementOptions, PlacementRequest, SETTING_CONNECTOR,
};
pub use token::{PageClaims, PageTokenError, PageTokenKey, PAGE_TOKEN_TTL};

use super::install::PortalSetup;
use super::line_change::{LineChangeError, OpenLines};
use super::line_status::channel_label;
use super::{Portal, PortalError};

/// Why the page cannot be shown or a change was not made. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// 400: the form is not what Bitrix24 sends.
    #[error("{0}")]
    Malformed(String),
    /// 400: the page was opened for a connector that is not ours.
    #[error("connector {0} is not one of ours")]
    NotOurConnector(String),
    /// 403: `member_id` names no portal linked here.
    #[error("this Bitrix24 portal is not connected")]
    UnknownPortal,
    /// 403: `DOMAIN` is not the domain linked for `member_id`.
    #[error("the portal's address does not match the connected portal")]
    DomainMismatch,
    /// 401: the portal refused `AUTH_ID` (forged, expired, another portal's), or it is no
    /// application's token.
    #[error("Bitrix24 did not confirm who opened this page")]
    NotAuthenticated,
    /// 403: the user is not an administrator of the portal.
    #[error("only Bitrix24 administrators may change these settings")]
    NotAdmin,
    /// 401: the page token is not ours.
    #[error("{0}")]
    PageToken(PageTokenError),
    /// 409: the tenant's portal is no longer the one the page was opened on.
    #[error("the page's portal is no longer connected")]
    PortalChanged,
    /// 400: the channel field does not name a channel.
    #[error("{0}")]
    BadChannel(String),
    /// 404 / 409: the line change was refused.
    #[error(transparent)]
    Line(LineError),
    /// 502: Bitrix24 refused or failed a call; nothing changed on our side.
    #[error("Bitrix24 refused {method}: {error}")]
    Bitrix {
        method: &'static str,
        error: BitrixError,
    },
    /// 503: our store or the portal could not be asked; try again.
    #[error("{0}")]
    Unavailable(String),
}

/// A failure and, when known, the origin of the portal that may frame its page.
#[derive(Debug)]
pub struct PlacementFailure {
    pub error: PlacementError,
    pub portal_origin: Option<String>,
}

impl From<PlacementError> for PlacementFailure {
    fn from(error: PlacementError) -> Self {
        PlacementFailure {
            error,
            portal_origin: None,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> PlacementError {
    PlacementError::Unavailable(e.to_string())
}

impl From<LineChangeError> for PlacementError {
    fn from(e: LineChangeError) -> Self {
        match e {
            LineChangeError::Line(e) => PlacementError::Line(e),
            LineChangeError::Bitrix { method, error } => PlacementError::Bitrix { method, error },
            LineChangeError::Unavailable(e) => PlacementError::Unavailable(e),
        }
    }
}

/// One of the tenant's channels as the page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRow {
    pub kind: ChannelKind,
    pub id: String,
    /// The number or `@account` when known, else the id.
    pub label: String,
    /// The Open Line it is attached to on this portal (None: the portal's own line).
    pub line: Option<u64>,
}

impl ChannelRow {
    /// `whatsapp:<id>`: what the page's forms send back.
    pub fn value(&self) -> String {
        format!("{}:{}", self.kind.name(), self.id)
    }
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Attached(String),
    Detached(String),
}

/// Which change a page's form asks for.
#[derive(Clone, Copy)]
enum LineAction {
    Attach,
    Detach,
}

/// What the page shows.
#[derive(Clone, Debug)]
pub struct PlacementPage {
    /// `scheme://host[:port]` of the portal: the only origin allowed to frame the page.
    pub portal_origin: String,
    pub domain: String,
    pub connector: ConnectorId,
    pub kind: ChannelKind,
    pub line: u64,
    /// The portal's own line, where channels without a line of their own go.
    pub portal_line: u64,
    /// The flags of `PLACEMENT_OPTIONS` (when the page was opened by Bitrix24).
    pub status: Option<ConnectorStatus>,
    /// The tenant's channels of the connector's kind.
    pub channels: Vec<ChannelRow>,
    /// The page token the forms send back.
    pub token: String,
    pub change: Option<Change>,
}

impl PlacementPage {
    /// The channel attached to this page's line, if any.
    pub fn attached_here(&self) -> Option<&ChannelRow> {
        self.channels.iter().find(|c| c.line == Some(self.line))
    }
}

/// `scheme://host[:port]` of a REST root like `https://x.bitrix24.com/rest/`.
pub fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_owned(),
        None => url.to_owned(),
    }
}

/// The settings page's use cases. Build once per process.
#[derive(Clone)]
pub struct PlacementConsole {
    tenants: TenantDirectory,
    client: BitrixClient,
    setup: PortalSetup,
    /// The changes themselves, shared with the web console.
    lines: OpenLines,
    key: PageTokenKey,
    ttl: Duration,
}

/// The verified context of a change: the tenant, its portal, the page's claims.
struct Context {
    scope: TenantScope,
    portal: Portal,
    claims: PageClaims,
    kind: ChannelKind,
    line: OpenLineId,
}

impl PlacementConsole {
    pub fn new(
        tenants: TenantDirectory,
        client: BitrixClient,
        setup: PortalSetup,
        key: PageTokenKey,
    ) -> Self {
        let lines = OpenLines::new(
            client.clone(),
            setup.clone(),
            AuditLog::new(tenants.store().clone()),
        );
        PlacementConsole {
            tenants,
            client,
            setup,
            lines,
            key,
            ttl: PAGE_TOKEN_TTL,
        }
    }

    /// Page tokens live `ttl` (tests shorten it).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The origin of `domain` as this deployment reaches it.
    pub fn portal_origin(&self, domain: &BitrixDomain) -> String {
        origin_of(&self.client.config().rest_root(domain))
    }

    fn kind_of(&self, connector: &ConnectorId) -> Option<ChannelKind> {
        if connector == &self.setup.connectors.whatsapp {
            Some(ChannelKind::WhatsApp)
        } else if connector == &self.setup.connectors.instagram {
            Some(ChannelKind::Instagram)
        } else {
            None
        }
    }

    /// Bitrix24 opened the page: verify the portal and the user (module documentation).
    pub async fn open(&self, request: PlacementRequest) -> Result<PlacementPage, PlacementFailure> {
        let origin = Some(self.portal_origin(&request.domain));
        let fail = |error| PlacementFailure {
            error,
            portal_origin: origin.clone(),
        };
        let kind = self.kind_of(&request.options.connector).ok_or_else(|| {
            fail(PlacementError::NotOurConnector(
                request.options.connector.to_string(),
            ))
        })?;
        let channel = ChannelRef::Bitrix24(request.member_id.clone());
        let tenant = self
            .tenants
            .resolve(&channel)
            .await
            .map_err(|e| fail(unavailable(e)))?
            .ok_or_else(|| {
                tracing::warn!(member_id = %request.member_id, "placement refused: portal not linked");
                fail(PlacementError::UnknownPortal)
            })?;
        let scope = self.scope(&tenant).await.map_err(fail)?;
        let portal = self.portal(&scope).await.map_err(fail)?;
        if portal.channel != channel {
            return Err(fail(PlacementError::UnknownPortal));
        }
        if portal.domain != request.domain {
            tracing::warn!(%tenant, member_id = %request.member_id,
                "placement refused: the posted domain is not the linked portal's");
            return Err(fail(PlacementError::DomainMismatch));
        }
        let user = self
            .verify_user(&tenant, &portal.domain, &request)
            .await
            .map_err(fail)?;
        let claims = PageClaims {
            tenant: tenant.to_string(),
            member_id: request.member_id.as_str().to_owned(),
            line: request.options.line.get(),
            connector: request.options.connector.as_str().to_owned(),
            user,
            expires_at: now_secs() + self.ttl.as_secs() as i64,
        };
        tracing::info!(%tenant, member_id = %request.member_id, line = claims.line, user,
            "connector settings page opened by a portal admin");
        let mut page = self
            .page(&scope, &portal, &claims, kind)
            .await
            .map_err(fail)?;
        page.status = Some(request.options.status);
        Ok(page)
    }

    /// `AUTH_ID` on the portal itself: who, an application's token, an admin. The user id.
    async fn verify_user(
        &self,
        tenant: &TenantId,
        domain: &BitrixDomain,
        request: &PlacementRequest,
    ) -> Result<u64, PlacementError> {
        let refused = |method: &'static str| {
            move |e: BitrixError| match e {
                BitrixError::ExpiredToken | BitrixError::Unauthorized { .. } => {
                    tracing::warn!(%tenant, method, code = e.code().unwrap_or(""),
                        "placement refused: the portal did not accept AUTH_ID");
                    PlacementError::NotAuthenticated
                }
                e if e.is_retryable() => unavailable(e),
                error => PlacementError::Bitrix { method, error },
            }
        };
        let user = self
            .client
            .current_user(domain, &request.auth_id)
            .await
            .map_err(refused(crate::bitrix::USER_CURRENT))?;
        let app = self
            .client
            .app_info(domain, &request.auth_id)
            .await
            .map_err(refused(crate::bitrix::APP_INFO))?;
        if !app.installed {
            tracing::warn!(%tenant, "placement refused: the application is not installed");
            return Err(PlacementError::NotAuthenticated);
        }
        let admin = self
            .client
            .is_admin(domain, &request.auth_id)
            .await
            .map_err(refused(crate::bitrix::USER_ADMIN))?;
        if !admin {
            tracing::warn!(%tenant, user = user.id, "placement refused: the user is not a portal admin");
            return Err(PlacementError::NotAdmin);
        }
        Ok(user.id)
    }

    async fn scope(&self, tenant: &TenantId) -> Result<TenantScope, PlacementError> {
        self.tenants
            .scope(tenant)
            .await
            .map_err(unavailable)?
            .ok_or(PlacementError::UnknownPortal)
    }

    async fn portal(&self, scope: &TenantScope) -> Result<Portal, PlacementError> {
        match Portal::load(scope).await {
            Ok(p) => Ok(p),
            Err(PortalError::NotConnected(_)) => Err(PlacementError::UnknownPortal),
            Err(PortalError::Tenant(e)) => Err(unavailable(e)),
        }
    }

    /// Lists the channels and signs a fresh token for `claims` (a new lifetime).
    async fn page(
        &self,
        scope: &TenantScope,
        portal: &Portal,
        claims: &PageClaims,
        kind: ChannelKind,
    ) -> Result<PlacementPage, PlacementError> {
        let channels = scope.channels().await.map_err(unavailable)?;
        let rows = channels
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| ChannelRow {
                kind: c.kind,
                id: c.id.clone(),
                label: channel_label(c),
                line: c
                    .open_line
                    .as_ref()
                    .filter(|a| a.member_id == portal.channel.external_id())
                    .map(|a| a.line),
            })
            .collect();
        let mut fresh = claims.clone();
        fresh.expires_at = now_secs() + self.ttl.as_secs() as i64;
        Ok(PlacementPage {
            portal_origin: self.portal_origin(&portal.domain),
            domain: portal.domain.to_string(),
            connector: ConnectorId::parse(&claims.connector)
                .map_err(|e| PlacementError::Malformed(e.to_string()))?,
            kind,
            line: claims.line,
            portal_line: portal.line.get(),
            status: None,
            channels: rows,
            token: self.key.sign(&fresh),
            change: None,
        })
    }

    /// Verifies a page token and loads what it names.
    async fn context(&self, token: &str) -> Result<Context, PlacementFailure> {
        let claims = match self.key.verify(token, now_secs()) {
            Ok(c) => c,
            Err(e) => {
                // An expired token is authentic: its portal may still frame the answer.
                let origin = match &e {
                    PageTokenError::Expired(c) => self.origin_of_claims(c).await,
                    PageTokenError::Invalid => None,
                };
                tracing::warn!(error = %e, "placement change refused: page token");
                return Err(PlacementFailure {
                    error: PlacementError::PageToken(e),
                    portal_origin: origin,
                });
            }
        };
        let invalid = || PlacementError::PageToken(PageTokenError::Invalid);
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| invalid())?;
        let member = BitrixMemberId::parse(&claims.member_id).map_err(|_| invalid())?;
        let connector = ConnectorId::parse(&claims.connector).map_err(|_| invalid())?;
        let line = OpenLineId::new(claims.line).map_err(|_| invalid())?;
        let kind = self.kind_of(&connector).ok_or_else(invalid)?;
        let scope = self.scope(&tenant).await?;
        let portal = self.portal(&scope).await?;
        let origin = Some(self.portal_origin(&portal.domain));
        if portal.channel.external_id() != member.as_str() {
            return Err(PlacementFailure {
                error: PlacementError::PortalChanged,
                portal_origin: origin,
            });
        }
        Ok(Context {
            scope,
            portal,
            claims,
            kind,
            line,
        })
    }

    async fn origin_of_claims(&self, claims: &PageClaims) -> Option<String> {
        let tenant = TenantId::parse(&claims.tenant).ok()?;
        let scope = self.tenants.scope(&tenant).await.ok()??;
        let portal = Portal::load(&scope).await.ok()?;
        (portal.channel.external_id() == claims.member_id)
            .then(|| self.portal_origin(&portal.domain))
    }

    /// The tenant's channel of the page's kind that `value` (`whatsapp:<id>`) names.
    async fn channel(&self, ctx: &Context, value: &str) -> Result<ChannelSummary, PlacementError> {
        let bad = || PlacementError::BadChannel("choose one of the listed channels".into());
        let (kind, id) = value.split_once(':').ok_or_else(bad)?;
        if kind != ctx.kind.name() {
            return Err(bad());
        }
        let channel = ChannelRef::parse(ctx.kind, id).map_err(|_| bad())?;
        ctx.scope
            .channels()
            .await
            .map_err(unavailable)?
            .into_iter()
            .find(|c| c.kind == channel.kind() && c.id == channel.external_id())
            .ok_or_else(|| PlacementError::Line(LineError::ChannelNotFound(value.to_owned())))
    }

    /// Attaches the channel `value` names to the page's line (module documentation).
    pub async fn attach(
        &self,
        token: &str,
        value: &str,
    ) -> Result<PlacementPage, PlacementFailure> {
        self.change_line(token, value, LineAction::Attach).await
    }

    /// Detaches the channel `value` names from the page's line (module documentation).
    pub async fn detach(
        &self,
        token: &str,
        value: &str,
    ) -> Result<PlacementPage, PlacementFailure> {
        self.change_line(token, value, LineAction::Detach).await
    }

    /// Attaches or detaches, then shows the page as it now is, naming the change.
    async fn change_line(
        &self,
        token: &str,
        value: &str,
        action: LineAction,
    ) -> Result<PlacementPage, PlacementFailure> {
        let mut ctx = self.context(token).await?;
        let origin = Some(self.portal_origin(&ctx.portal.domain));
        let fail = |error| PlacementFailure {
            error,
            portal_origin: origin.clone(),
        };
        let summary = self.channel(&ctx, value).await.map_err(fail)?;
        let actor = format!("bitrix24_user:{}", ctx.claims.user);
        let changed = match action {
            LineAction::Attach => {
                self.lines
                    .attach(&ctx.scope, &mut ctx.portal, &summary, ctx.line, &actor)
                    .await
            }
            LineAction::Detach => {
                self.lines
                    .detach(&ctx.scope, &mut ctx.portal, &summary, ctx.line, &actor)
                    .await
            }
        };
        changed.map_err(|e| fail(e.into()))?;
        let mut page = self
            .page(
                &ctx.scope,
                &ctx.portal.reload(&ctx.scope).await.map_err(fail)?,
                &ctx.claims,
                ctx.kind,
            )
            .await
            .map_err(fail)?;
        let label = channel_label(&summary);
        page.change = Some(match action {
            LineAction::Attach => Change::Attached(label),
            LineAction::Detach => Change::Detached(label),
        });
        Ok(page)
    }
}

impl Portal {
    /// The portal again, after a change of its channels' lines.
    async fn reload(&self, scope: &TenantScope) -> Result<Portal, PlacementError> {
        Portal::load(scope).await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://x.bitrix24.com/rest/"),
            "https://x.bitrix24.com"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:4000/x.bitrix24.com/rest/"),
            "http://127.0.0.1:4000"
        );
    }
}
