//! admin-api: the admin HTTP API of the platform admin and of tenants' users, and `/auth`
//! (sign-in, sessions, passwords). Routing, authentication, the per-route permission check
//! and the mapping of domain outcomes to HTTP live here; the work is done by the domain crate.
//!
//! Every route is one row of the route table, `routes()`: its path, what it needs from the caller (nothing on
//! `/auth`, the platform token, or a tenant permission the caller's role must have:
//! docs/access.md has the matrix) and its handler for each method. All are documented in
//! docs/openapi.yaml; the handlers live with their resource (tenants.rs, settings.rs,
//! channels.rs, connection_codes.rs, api_keys.rs, audit.rs, usage.rs, plans.rs,
//! suspension.rs, users.rs, exports.rs, erasure.rs, revocations.rs, auth.rs).
//!
//! A request is answered in this order:
//! 1. a body over [`MAX_BODY_BYTES`]: 413;
//! 2. `/auth/...` is public: an unknown path there is 404 at once;
//! 3. every other path authenticates the caller first (401), then an unknown one is 404;
//! 4. the route's rule: a user naming another tenant gets the same 404 as a tenant that does
//!    not exist, a role without the permission or a platform route 403, a suspended tenant
//!    403;
//! 5. a method the route does not serve: 405 (some routes read the tenant first).
//!
//! The public `/exports/download/{token}` is served by [`AdminApi::download`], which callers
//! route to themselves.

pub mod auth;
pub mod bodies;
mod routing;

mod api_keys;
mod audit;
mod channels;
mod coexistence;
mod connection_codes;
mod erasure;
mod exports;
mod onboarding;
mod plans;
mod revocations;
mod settings;
mod suspension;
mod tenants;
mod usage;
mod users;
mod wiring;

pub use erasure::Erasure;
pub use exports::{ExportsApi, DOWNLOAD_PREFIX};

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wappline::accounts::token::looks_like_access_token;
use wappline::accounts::{Accounts, Permission, Principal};
use wappline::acting::acting_for;
use wappline::api_keys::ApiKeys;
use wappline::audit::AuditLog;
use wappline::bitrix::EndpointUrl;
use wappline::edge::ApiError;
use wappline::hold::Suspension;
use wappline::ownership::OwnershipProof;
use wappline::portal::install::ConnectionCodes;
use wappline::revocation::Revocations;
use wappline::tenant::{TenantDirectory, TenantError, TenantStatus};
use wappline::usage::Usage;

use routing::{handler as h, route, Call, First, Handled, Need, Route};

/// Largest request body the admin API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// A path under `/admin/tenants/{tenant}`.
macro_rules! t {
    ($rest:literal) => {
        concat!("/admin/tenants/{tenant}", $rest)
    };
}

/// The route table. A [`Route::below`] row is no endpoint: paths under a resource that match
/// none of its routes are checked with the resource's rule, then answer 404.
fn routes() -> Vec<Route> {
    use Need::{Platform, Public, Tenant};
    use Permission::*;
    vec![
        // Sign-in, sessions and passwords: public (auth.rs).
        route("/auth/sign-in", Public).post(h!(auth::sign_in)),
        route("/auth/refresh", Public).post(h!(auth::refresh)),
        route("/auth/sign-out", Public).post(h!(auth::sign_out)),
        route("/auth/invitations/accept", Public).post(h!(auth::accept_invitation)),
        route("/auth/me", Public).get(h!(auth::me)),
        route("/auth/password", Public).put(h!(auth::change_password)),
        route("/auth/password-reset", Public).post(h!(auth::request_password_reset)),
        route("/auth/password-reset/confirm", Public).post(h!(auth::confirm_password_reset)),
        // Tenants.
        route("/admin/tenants", Platform)
            .get(h!(tenants::list))
            .post(h!(tenants::create)),
        route(t!(""), Tenant(ReadSettings)).get(h!(settings::get)),
        route(t!("/settings"), Tenant(ChangeSettings)).patch(h!(settings::update)),
        route(t!("/plan"), Platform)
            .tenant_first()
            .put(h!(plans::set))
            .delete(h!(plans::clear)),
        route(t!("/suspension"), Platform)
            .tenant_first()
            .post(h!(suspension::suspend))
            .delete(h!(suspension::resume)),
        route(t!("/usage"), Tenant(ReadUsage)).get(h!(usage::report)),
        route(t!("/audit"), Tenant(ReadAudit)).get(h!(audit::read)),
        // Channels.
        Route::below(t!("/channels"), Tenant(ManageChannels)),
        route(t!("/channels/{kind}"), Tenant(ManageChannels)).post(h!(channels::connect)),
        route(t!("/channels/{kind}/{id}"), Tenant(ManageChannels)).delete(h!(channels::disconnect)),
        route(
            t!("/channels/{kind}/{id}/coexistence"),
            Tenant(ManageChannels),
        )
        .get(h!(coexistence::get))
        .put(h!(coexistence::put)),
        Route::below(t!("/channels/{kind}/{id}/{*rest}"), Tenant(ManageChannels)),
        route(t!("/revocations"), Tenant(ManageChannels)).get(h!(revocations::list)),
        // Self-service onboarding (decision 0040).
        route(t!("/onboarding"), Tenant(ManageChannels)).get(h!(onboarding::page)),
        route(t!("/onboarding/whatsapp"), Tenant(ManageChannels)).post(h!(onboarding::whatsapp)),
        route(
            t!("/onboarding/instagram/authorize"),
            Tenant(ManageChannels),
        )
        .post(h!(onboarding::instagram_authorize)),
        route(t!("/onboarding/instagram/complete"), Tenant(ManageChannels))
            .post(h!(onboarding::instagram_complete)),
        route(t!("/revocations/retry"), Tenant(ManageChannels)).post(h!(revocations::retry)),
        route(t!("/bitrix24/connection-codes"), Tenant(ManageChannels))
            .post(h!(connection_codes::issue)),
        // API keys.
        route(t!("/api-keys"), Tenant(ManageApiKeys))
            .post(h!(api_keys::create))
            .get(h!(api_keys::list)),
        route(t!("/api-keys/{key_id}"), Tenant(ManageApiKeys)).delete(h!(api_keys::revoke)),
        Route::below(t!("/api-keys/{key_id}/{*rest}"), Tenant(ManageApiKeys)),
        // Users and invitations.
        route(t!("/users"), Tenant(ManageUsers)).get(h!(users::list)),
        route(t!("/users/{user}"), Tenant(ManageUsers))
            .tenant_first()
            .patch(h!(users::set_role))
            .delete(h!(users::remove)),
        Route::below(t!("/users/{user}/{*rest}"), Tenant(ManageUsers)),
        route(t!("/invitations"), Tenant(ManageUsers))
            .get(h!(users::pending_invitations))
            .post(h!(users::invite)),
        route(t!("/invitations/{invitation}"), Tenant(ManageUsers))
            .delete(h!(users::withdraw_invitation)),
        Route::below(t!("/invitations/{invitation}/{*rest}"), Tenant(ManageUsers)),
        // Exports.
        route(t!("/exports"), Tenant(Export))
            .tenant_first()
            .post(h!(exports::request))
            .get(h!(exports::list)),
        route(t!("/exports/{export_id}"), Tenant(Export)).get(h!(exports::get)),
        route(t!("/exports/{export_id}/links"), Tenant(Export)).post(h!(exports::link)),
        Route::below(t!("/exports/{export_id}/{*rest}"), Tenant(Export)),
        // Erasure.
        route(t!("/erasure"), Tenant(EraseAccount))
            .tenant_id_first()
            .post(h!(erasure::request_tenant))
            .get(h!(erasure::tenant_status))
            .delete(h!(erasure::cancel_tenant)),
        route(t!("/erasure/contacts"), Tenant(EraseContact)).post(h!(erasure::request_contact)),
        route(t!("/erasure/contacts/{request_id}"), Tenant(EraseContact))
            .get(h!(erasure::contact_status)),
        Route::below(
            t!("/erasure/contacts/{request_id}/{*rest}"),
            Tenant(EraseContact),
        ),
    ]
}

/// The platform admin bearer token, held only as its SHA-256 so the token itself never sits
/// in the function's configuration.
#[derive(Clone)]
pub struct AdminToken {
    sha256: [u8; 32],
}

impl AdminToken {
    pub fn from_plaintext(token: &str) -> Self {
        AdminToken {
            sha256: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Constant-time check of a presented token.
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.sha256).into()
    }
}

/// Everything the admin API works with, all required.
pub struct AdminServices {
    pub tenants: TenantDirectory,
    /// The platform admin's token.
    pub token: AdminToken,
    /// Tenant users: `/auth/*`, user management, and user access tokens on `/admin`.
    pub accounts: Accounts,
    /// `/usage` and `/plan`.
    pub usage: Usage,
    /// `/suspension` (its queue must reach the inbound and outbound queues, where held
    /// events are released to).
    pub suspension: Suspension,
    /// `/api-keys`.
    pub api_keys: ApiKeys,
    /// `/audit`, and the entries the admin API writes for the changes it makes.
    pub audit: AuditLog,
    /// Disconnects revoke our access at the provider (decision 0036); `/revocations`.
    pub revocations: Revocations,
    /// Connects are claimed only after the supplied token proves ownership.
    pub ownership: OwnershipProof,
    /// A connected WhatsApp number's message templates are read at once (decision 0050).
    pub templates: wappline::templates::sync::TemplateSync,
    /// A connected WhatsApp number becomes a message provider on the tenant's portal, when
    /// the deployment has the Bitrix24 application (decision 0050).
    pub providers: Option<wappline::portal::providers::MessageProviders>,
    /// `/onboarding...`: Embedded Signup and Instagram Login (decision 0040).
    pub onboarding: Onboarding,
    /// `/exports...` and the public download of export files.
    pub exports: ExportsApi,
    /// `/erasure...`.
    pub erasure: Erasure,
    /// `/bitrix24/connection-codes`: codes are kept in the first, install URLs start with
    /// the second (the public address where `/bitrix/install` is served).
    pub bitrix_codes: (ConnectionCodes, EndpointUrl),
}

/// The self-service connect flows and what their page needs.
pub struct Onboarding {
    pub signup: wappline::onboarding::EmbeddedSignup,
    pub instagram: wappline::onboarding::InstagramLogin,
    pub page: wappline::onboarding::PageSettings,
}

pub struct AdminApi {
    services: AdminServices,
    routes: Vec<Route>,
    /// Path pattern to its index in `routes`.
    router: matchit::Router<usize>,
}

impl AdminApi {
    pub fn new(services: AdminServices) -> Self {
        let routes = routes();
        let mut router = matchit::Router::new();
        for (i, r) in routes.iter().enumerate() {
            if let Err(e) = router.insert(r.path, i) {
                panic!("route table: {}: {e}", r.path);
            }
        }
        AdminApi {
            services,
            routes,
            router,
        }
    }

    /// Serves `GET /exports/download/{token}` (public: the signed link is the credential).
    pub async fn download(&self, req: Request) -> Response<Body> {
        if req.method() != Method::GET {
            return ApiError::method_not_allowed()
                .into_response()
                .map(Body::from);
        }
        self.services.exports.download(req.uri().path()).await
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let result = self.route(&req).await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::error!(%method, %path, status = e.status.as_u16(), code = e.code, "admin request failed");
                } else {
                    tracing::info!(%method, %path, status = e.status.as_u16(), code = e.code, "admin request rejected");
                }
                e.into_response()
            }
        };
        response.map(Body::from)
    }

    async fn route(&self, req: &Request) -> Handled {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
        }
        let key = routing::match_key(req.uri().path());
        let found = self.router.at(&key).ok();
        let route = found.as_ref().map(|m| &self.routes[*m.value]);
        let principal = match route {
            Some(r) if r.need == Need::Public => None,
            // Everything under /auth/ is public, what does not exist there too.
            None if req.uri().path().starts_with(auth::AUTH_PREFIX) => {
                return Err(ApiError::not_found("no such route"))
            }
            _ => Some(self.principal(req).await?),
        };
        let (Some(route), Some(found)) = (route, found) else {
            return Err(ApiError::not_found("no such route"));
        };
        let call = Call::new(&self.services, req, body, found.params, principal);
        if let Ok(Principal::User(_)) = call.principal() {
            self.authorize(&call, route.need).await?;
        }
        // A tenant's route works for that tenant only: with its scoped credentials
        // (decision 0037). The platform's routes (tenants, plans, suspension) span tenants
        // and keep the function's role.
        match route.need {
            Need::Tenant(_) => {
                let tenant = call.tenant_id()?;
                acting_for(&tenant, Self::dispatch(&call, route, req)).await
            }
            Need::Platform | Need::Public => Self::dispatch(&call, route, req).await,
        }
    }

    async fn dispatch(call: &Call<'_>, route: &Route, req: &Request) -> Handled {
        match route.first {
            First::Nothing => {}
            First::TenantId => {
                call.tenant_id()?;
            }
            First::Tenant => {
                call.scope().await?;
            }
        }
        match route.handler(req.method()) {
            Some(handler) => handler(call).await,
            None if route.methods.is_empty() => Err(ApiError::not_found("no such route")),
            None => Err(ApiError::method_not_allowed()),
        }
    }

    /// The platform token, or a user's access token (checked against its live session).
    async fn principal(&self, req: &Request) -> Result<Principal, ApiError> {
        let presented = req
            .headers()
            .get(lambda_http::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        if looks_like_access_token(presented) {
            return match self.services.accounts.authenticate(presented).await {
                Ok(user) => Ok(Principal::User(user)),
                Err(wappline::accounts::AccountError::InvalidToken) => {
                    Err(ApiError::unauthorized())
                }
                Err(e) => Err(auth::account_error(e)),
            };
        }
        if self.services.token.verify(presented) {
            Ok(Principal::Platform)
        } else {
            Err(ApiError::unauthorized())
        }
    }

    /// Applies the route's rule to a user (the platform admin may do everything). A user
    /// naming another tenant gets the same 404 as a tenant that does not exist (and the
    /// attempt is logged); within their own tenant, a role without the permission gets 403.
    async fn authorize(&self, call: &Call<'_>, need: Need) -> Result<(), ApiError> {
        let Ok(Principal::User(user)) = call.principal() else {
            return Ok(());
        };
        if let Some(tenant) = call.tenant_param() {
            if tenant != user.tenant.as_str() {
                tracing::warn!(tenant = %user.tenant, user = %user.user, "cross-tenant request refused");
                return Err(ApiError::not_found("tenant not found"));
            }
        }
        let permission = match need {
            Need::Public => return Ok(()),
            Need::Platform => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "only the platform admin may do this",
                ))
            }
            Need::Tenant(permission) => permission,
        };
        if !user.role.allows(permission) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the {} role may not {}",
                    user.role.name(),
                    permission.name().replace('_', " ")
                ),
            ));
        }
        let profile = self
            .services
            .tenants
            .profile(&user.tenant)
            .await
            .map_err(map_err)?
            .ok_or_else(|| ApiError::not_found("tenant not found"))?;
        if profile.status == TenantStatus::Suspended {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tenant_suspended",
                "this account is suspended; contact support",
            ));
        }
        Ok(())
    }
}

/// A `limit` query parameter: 1 to [`MAX_PAGE`].
fn parse_limit(v: &str) -> Result<usize, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| ApiError::bad_request(format!("limit: must be 1 to {MAX_PAGE}")))
}

/// The one mapping from domain errors to HTTP.
fn map_err(e: TenantError) -> ApiError {
    match e {
        TenantError::TenantNotFound => ApiError::not_found("tenant not found"),
        TenantError::ChannelNotFound(what) => {
            ApiError::not_found(format!("{what} is not connected to this tenant"))
        }
        TenantError::ChannelTaken(what) => {
            // Never says that another tenant holds the id (decision 0032).
            tracing::warn!(channel = %what, "id held by another tenant");
            ApiError::new(
                StatusCode::CONFLICT,
                "cannot_connect",
                format!("{what} cannot be connected"),
            )
        }
        TenantError::Invalid(msg) => ApiError::bad_request(msg),
        TenantError::Store(wappline::store::StoreError::Unavailable(detail)) => {
            tracing::warn!(%detail, "store unavailable");
            ApiError::unavailable()
        }
        other => {
            tracing::error!(error = %other, "admin operation failed");
            ApiError::internal()
        }
    }
}
