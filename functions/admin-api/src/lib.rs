//! admin-api: the admin HTTP API of the platform admin and of tenants' users, and `/auth`
//! (sign-in, sessions, passwords). Routing, authentication, the per-route permission check
//! and the mapping of domain outcomes to HTTP live here; the work is done by the domain crate.
//!
//! Every `/admin` route names what it needs in [`need`]: the platform token, or a tenant
//! permission that the caller's role must have (docs/access.md has the matrix). Routes, all
//! documented in docs/openapi.yaml:
//! - `/admin/tenants` (list, create), `/plan`, `/suspension`: platform admin only
//! - `/admin/tenants/{id}`: settings; `/settings`; `/channels/...`;
//!   `/bitrix24/connection-codes`; `/api-keys...`; `/audit`; `/usage`;
//!   `/users...`, `/invitations...` (users.rs); `/exports...` (exports.rs);
//!   `/erasure...` (erasure.rs)
//! - `/auth/...` (auth.rs) and the public `/exports/download/{token}`

pub mod auth;
mod erasure;
mod exports;
mod plans;
mod requests;
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
use wappline::api_keys::{ApiKeyError, ApiKeyScope, ApiKeys};
use wappline::audit::{AuditAction, AuditLog};
use wappline::bitrix::{EndpointUrl, OpenLineId};
use wappline::edge::{self, ApiError};
use wappline::hold::Suspension;
use wappline::ids::TenantId;
use wappline::portal::install::ConnectionCodes;
use wappline::tenant::release::ChannelRelease;
use wappline::tenant::{
    ChannelKind, ChannelRef, RetentionDays, TenantDirectory, TenantError, TenantName, TenantStatus,
};
use wappline::usage::Usage;

use requests::{ConnectRequest, ConnectionCodeRequest, CreateTenantRequest, SettingsRequest};

/// Largest request body the admin API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// The platform admin bearer token, held only as its SHA-256 so the token itself never sits
/// in the function's configuration.
#[derive(Clone)]
pub struct AdminToken {
    sha256: [u8; 32],
}

impl AdminToken {
    pub fn from_sha256_hex(hex_digest: &str) -> Result<Self, String> {
        let bytes = hex::decode(hex_digest.trim())
            .map_err(|_| "ADMIN_TOKEN_SHA256 must be 64 hex digits".to_owned())?;
        let sha256 = bytes
            .try_into()
            .map_err(|_| "ADMIN_TOKEN_SHA256 must be 64 hex digits".to_owned())?;
        Ok(AdminToken { sha256 })
    }

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

pub struct AdminApi {
    tenants: TenantDirectory,
    token: AdminToken,
    bitrix_codes: Option<(ConnectionCodes, EndpointUrl)>,
    api_keys: Option<ApiKeys>,
    audit: Option<AuditLog>,
    erasure: Option<erasure::Erasure>,
    release: ChannelRelease,
    exports: Option<exports::ExportsApi>,
    accounts: Option<Accounts>,
    usage: Option<Usage>,
    suspension: Option<Suspension>,
}

/// What a route needs from the caller.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// The platform admin's token.
    Platform,
    /// The platform admin, or a user of the tenant named in the path whose role has the
    /// permission.
    Tenant(Permission),
}

/// The access rule of every `/admin` route, by path (methods share a path's rule). Routes
/// not listed here do not exist (404 after authentication).
fn need(segments: &[&str]) -> Option<Need> {
    use Permission::*;
    let rule = match segments {
        ["admin", "tenants"] => Need::Platform,
        ["admin", "tenants", _, "suspension"] | ["admin", "tenants", _, "plan"] => Need::Platform,
        ["admin", "tenants", _] => Need::Tenant(ReadSettings),
        ["admin", "tenants", _, "settings"] => Need::Tenant(ChangeSettings),
        ["admin", "tenants", _, "exports", ..] => Need::Tenant(Export),
        ["admin", "tenants", _, "erasure", "contacts", ..] => Need::Tenant(EraseContact),
        ["admin", "tenants", _, "erasure"] => Need::Tenant(EraseAccount),
        ["admin", "tenants", _, "audit"] => Need::Tenant(ReadAudit),
        ["admin", "tenants", _, "channels", ..] => Need::Tenant(ManageChannels),
        ["admin", "tenants", _, "bitrix24", "connection-codes"] => Need::Tenant(ManageChannels),
        ["admin", "tenants", _, "api-keys", ..] => Need::Tenant(ManageApiKeys),
        ["admin", "tenants", _, "users", ..] | ["admin", "tenants", _, "invitations", ..] => {
            Need::Tenant(ManageUsers)
        }
        ["admin", "tenants", _, "usage"] => Need::Tenant(ReadUsage),
        _ => return None,
    };
    Some(rule)
}

impl AdminApi {
    pub fn new(tenants: TenantDirectory, token: AdminToken) -> Self {
        AdminApi {
            tenants,
            token,
            bitrix_codes: None,
            api_keys: None,
            audit: None,
            erasure: None,
            release: ChannelRelease::new(None),
            exports: None,
            accounts: None,
            usage: None,
            suspension: None,
        }
    }

    /// Enables `/usage` and `/plan`.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Enables `/suspension` (its queue must reach the inbound and outbound queues, where
    /// held events are released to).
    pub fn with_suspension(mut self, suspension: Suspension) -> Self {
        self.suspension = Some(suspension);
        self
    }

    fn usage_of(&self) -> Result<&Usage, ApiError> {
        self.usage.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "usage is not configured",
            )
        })
    }

    fn suspension_of(&self) -> Result<&Suspension, ApiError> {
        self.suspension.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "suspension is not configured",
            )
        })
    }

    /// Enables tenant users: `/auth/*`, user management, and user access tokens on `/admin`.
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    fn accounts_of(&self) -> Result<&Accounts, ApiError> {
        self.accounts.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "user accounts are not configured",
            )
        })
    }

    /// Enables `GET /admin/tenants/{id}/audit` (the tenant's audit log). Settings changes are
    /// audited by the domain whether or not this is enabled.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Disconnects also unsubscribe our app from the provider's webhooks where possible.
    pub fn with_channel_release(mut self, release: ChannelRelease) -> Self {
        self.release = release;
        self
    }

    /// Enables the export endpoints and downloads.
    pub fn with_exports(mut self, exports: exports::ExportsApi) -> Self {
        self.exports = Some(exports);
        self
    }

    fn exports_of(&self) -> Result<&exports::ExportsApi, ApiError> {
        self.exports.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "exports are not configured",
            )
        })
    }

    /// Serves `GET /exports/download/{token}` (public: the signed link is the credential).
    pub async fn download(&self, req: Request) -> Response<Body> {
        if req.method() != Method::GET {
            return ApiError::method_not_allowed()
                .into_response()
                .map(Body::from);
        }
        match &self.exports {
            Some(e) => e.download(req.uri().path()).await,
            None => ApiError::not_found("no such route")
                .into_response()
                .map(Body::from),
        }
    }

    /// Enables the erasure endpoints (`/admin/tenants/{id}/erasure...`).
    pub fn with_erasure(mut self, erasure: erasure::Erasure) -> Self {
        self.erasure = Some(erasure);
        self
    }

    fn erasure_of(&self) -> Result<&erasure::Erasure, ApiError> {
        self.erasure.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "erasure is not configured",
            )
        })
    }

    /// Enables the tenant API key endpoints (`/admin/tenants/{id}/api-keys`).
    pub fn with_api_keys(mut self, keys: ApiKeys) -> Self {
        self.api_keys = Some(keys);
        self
    }

    /// Enables `POST /admin/tenants/{id}/bitrix24/connection-codes`: codes are kept in
    /// `codes`, install URLs start with `public_base` (where `/bitrix/install` is served).
    pub fn with_bitrix_connection_codes(
        mut self,
        codes: ConnectionCodes,
        public_base: EndpointUrl,
    ) -> Self {
        self.bitrix_codes = Some((codes, public_base));
        self
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let result = self.route(req).await;
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

    async fn route(&self, req: Request) -> Result<lambda_http::http::Response<String>, ApiError> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
        }
        if req.uri().path().starts_with(auth::AUTH_PREFIX) {
            return auth::route(self.accounts_of()?, &req, body).await;
        }
        let principal = self.principal(&req).await?;
        let path = req.uri().path().trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        self.authorize(&principal, &segments).await?;
        let actor = principal.actor();
        let actor = actor.as_str();
        let method = req.method();
        match segments.as_slice() {
            ["admin", "tenants"] => match *method {
                Method::GET => self.list_tenants(req.uri().query()).await,
                Method::POST => self.create_tenant(body).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant] => match *method {
                Method::GET => self.tenant_settings(tenant).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "settings"] => match *method {
                Method::PATCH => self.update_settings(tenant, body, actor).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "exports"] => {
                let scope = self.scope(tenant).await?;
                match *method {
                    Method::POST => {
                        self.exports_of()?
                            .request(scope.tenant(), body, actor)
                            .await
                    }
                    Method::GET => self.exports_of()?.list(scope.tenant()).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            }
            ["admin", "tenants", tenant, "exports", export_id] => match *method {
                Method::GET => {
                    let scope = self.scope(tenant).await?;
                    self.exports_of()?.get(scope.tenant(), export_id).await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "exports", export_id, "links"] => match *method {
                Method::POST => {
                    let scope = self.scope(tenant).await?;
                    self.exports_of()?
                        .link(scope.tenant(), export_id, body)
                        .await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "erasure", "contacts"] => match *method {
                Method::POST => {
                    let scope = self.scope(tenant).await?;
                    self.erasure_of()?
                        .request_contact(scope.tenant(), body, actor)
                        .await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "erasure", "contacts", request_id] => match *method {
                Method::GET => {
                    let scope = self.scope(tenant).await?;
                    self.erasure_of()?
                        .contact_status(scope.tenant(), request_id)
                        .await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "erasure"] => {
                let id =
                    TenantId::parse(tenant).map_err(|e| ApiError::bad_request(e.to_string()))?;
                match *method {
                    Method::POST => {
                        let scope = self.scope(tenant).await?;
                        self.erasure_of()?
                            .request_tenant(scope.tenant(), body, actor)
                            .await
                    }
                    // After the erasure the tenant is gone, but its erasure record is not.
                    Method::GET => self.erasure_of()?.tenant_status(&id).await,
                    Method::DELETE => self.erasure_of()?.cancel_tenant(&id, actor).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            }
            ["admin", "tenants", tenant, "audit"] => match *method {
                Method::GET => self.audit_log(tenant, req.uri().query()).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "channels", kind] => match *method {
                Method::POST => self.connect(tenant, kind, body, actor).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "bitrix24", "connection-codes"] => match *method {
                Method::POST => self.connection_code(tenant, body).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "api-keys"] => match *method {
                Method::POST => self.create_api_key(tenant, body, actor).await,
                Method::GET => self.list_api_keys(tenant).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "api-keys", key_id] => match *method {
                Method::DELETE => self.revoke_api_key(tenant, key_id, actor).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "usage"] => match *method {
                Method::GET => {
                    let scope = self.scope(tenant).await?;
                    plans::usage(self.usage_of()?, scope.tenant(), req.uri().query()).await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "plan"] => {
                let scope = self.scope(tenant).await?;
                let usage = self.usage_of()?;
                let resp = match *method {
                    Method::PUT => plans::set_plan(usage, scope.tenant(), body).await?,
                    Method::DELETE => plans::clear_plan(usage, scope.tenant()).await?,
                    _ => return Err(ApiError::method_not_allowed()),
                };
                self.record(actor, scope.tenant(), AuditAction::PlanChanged, &[])
                    .await;
                Ok(resp)
            }
            ["admin", "tenants", tenant, "suspension"] => {
                let scope = self.scope(tenant).await?;
                let suspension = self.suspension_of()?;
                match *method {
                    Method::POST => plans::suspend(suspension, scope.tenant(), body, actor).await,
                    Method::DELETE => plans::resume(suspension, scope.tenant(), actor).await,
                    _ => Err(ApiError::method_not_allowed()),
                }
            }
            ["admin", "tenants", tenant, "users"] => match *method {
                Method::GET => {
                    let scope = self.scope(tenant).await?;
                    users::list(self.accounts_of()?, scope.tenant()).await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "invitations"] => match *method {
                Method::GET => {
                    let scope = self.scope(tenant).await?;
                    users::pending_invitations(self.accounts_of()?, scope.tenant()).await
                }
                Method::POST => {
                    let scope = self.scope(tenant).await?;
                    let (resp, role) =
                        users::invite(self.accounts_of()?, scope.tenant(), &principal, body)
                            .await?;
                    self.record(
                        actor,
                        scope.tenant(),
                        AuditAction::UserInvited,
                        &[("role", &role)],
                    )
                    .await;
                    Ok(resp)
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "invitations", invitation] => match *method {
                Method::DELETE => {
                    let scope = self.scope(tenant).await?;
                    let (resp, role) = users::withdraw_invitation(
                        self.accounts_of()?,
                        scope.tenant(),
                        &principal,
                        invitation,
                    )
                    .await?;
                    self.record(
                        actor,
                        scope.tenant(),
                        AuditAction::InvitationWithdrawn,
                        &[("invitation_id", invitation), ("role", &role)],
                    )
                    .await;
                    Ok(resp)
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            ["admin", "tenants", tenant, "users", user] => {
                let scope = self.scope(tenant).await?;
                let accounts = self.accounts_of()?;
                match *method {
                    Method::PATCH => {
                        let (resp, (from, to)) =
                            users::set_role(accounts, scope.tenant(), &principal, user, body)
                                .await?;
                        self.record(
                            actor,
                            scope.tenant(),
                            AuditAction::UserRoleChanged,
                            &[("user_id", user), ("from", from.name()), ("to", to.name())],
                        )
                        .await;
                        Ok(resp)
                    }
                    Method::DELETE => {
                        let resp =
                            users::remove(accounts, scope.tenant(), &principal, user).await?;
                        self.record(
                            actor,
                            scope.tenant(),
                            AuditAction::UserRemoved,
                            &[("user_id", user)],
                        )
                        .await;
                        Ok(resp)
                    }
                    _ => Err(ApiError::method_not_allowed()),
                }
            }
            ["admin", "tenants", tenant, "channels", kind, id] => match *method {
                Method::DELETE => self.disconnect(tenant, kind, id, actor).await,
                _ => Err(ApiError::method_not_allowed()),
            },
            _ => Err(ApiError::not_found("no such route")),
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
            let accounts = self.accounts.as_ref().ok_or_else(ApiError::unauthorized)?;
            return match accounts.authenticate(presented).await {
                Ok(user) => Ok(Principal::User(user)),
                Err(wappline::accounts::AccountError::InvalidToken) => {
                    Err(ApiError::unauthorized())
                }
                Err(e) => Err(auth::account_error(e)),
            };
        }
        if self.token.verify(presented) {
            Ok(Principal::Platform)
        } else {
            Err(ApiError::unauthorized())
        }
    }

    /// Applies the route's rule. A user naming another tenant gets the same 404 as a tenant
    /// that does not exist (and the attempt is logged); within their own tenant, a role
    /// without the permission gets 403.
    async fn authorize(&self, principal: &Principal, segments: &[&str]) -> Result<(), ApiError> {
        let Principal::User(user) = principal else {
            return Ok(());
        };
        let Some(rule) = need(segments) else {
            return Ok(());
        };
        if let ["admin", "tenants", tenant, ..] = segments {
            if *tenant != user.tenant.as_str() {
                tracing::warn!(tenant = %user.tenant, user = %user.user, "cross-tenant request refused");
                return Err(ApiError::not_found("tenant not found"));
            }
        }
        let permission = match rule {
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

    async fn list_tenants(
        &self,
        query: Option<&str>,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let mut after = None;
        let mut limit = DEFAULT_PAGE;
        for (k, v) in query
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            match k {
                "after" => {
                    after = Some(
                        TenantId::parse(v)
                            .map_err(|e| ApiError::bad_request(format!("after: {e}")))?,
                    )
                }
                "limit" => {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!("limit: must be 1 to {MAX_PAGE}"))
                        })?
                }
                _ => {}
            }
        }
        let page = self
            .tenants
            .list(after.as_ref(), limit)
            .await
            .map_err(map_err)?;
        Ok(edge::json(StatusCode::OK, &page))
    }

    async fn create_tenant(
        &self,
        body: &[u8],
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let req: CreateTenantRequest = edge::parse_json(body)?;
        let name = TenantName::parse(&req.name).map_err(map_err)?;
        let retention = match req.retention_days {
            Some(d) => RetentionDays::new(d).map_err(map_err)?,
            None => RetentionDays::default(),
        };
        let profile = self
            .tenants
            .create(name, retention)
            .await
            .map_err(map_err)?;
        tracing::info!(tenant = %profile.id, "tenant created");
        Ok(edge::json(StatusCode::CREATED, &profile))
    }

    async fn tenant_settings(
        &self,
        tenant: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let scope = self.scope(tenant).await?;
        let settings = scope.settings().await.map_err(map_err)?;
        Ok(edge::json(StatusCode::OK, &settings))
    }

    async fn update_settings(
        &self,
        tenant: &str,
        body: &[u8],
        actor: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let scope = self.scope(tenant).await?;
        // An object only (serde would also take a JSON array for a struct).
        let object: serde_json::Map<String, serde_json::Value> = edge::parse_json(body)?;
        let req: SettingsRequest = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
        let Some(days) = req.retention_days else {
            return Err(ApiError::bad_request(
                "nothing to change: give retention_days",
            ));
        };
        let days = RetentionDays::new(days).map_err(map_err)?;
        let change = scope.set_retention(days, actor).await.map_err(map_err)?;
        if change.changed {
            tracing::info!(
                tenant = %scope.tenant(),
                from = change.previous_days,
                to = change.retention_days,
                version = change.retention_version,
                "retention changed"
            );
        }
        let settings = scope.settings().await.map_err(map_err)?;
        let mut body = serde_json::to_value(&settings).map_err(|_| ApiError::internal())?;
        body["retention_version"] = change.retention_version.into();
        Ok(edge::json(StatusCode::OK, &body))
    }

    async fn audit_log(
        &self,
        tenant: &str,
        query: Option<&str>,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let Some(audit) = &self.audit else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "the audit log is not configured",
            ));
        };
        let scope = self.scope(tenant).await?;
        let mut before = None;
        let mut limit = DEFAULT_PAGE;
        for (k, v) in query
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            match k {
                "before" => before = Some(parse_audit_cursor(v)?),
                "limit" => limit = parse_limit(v)?,
                _ => {}
            }
        }
        let mut page = audit
            .read(scope.tenant(), before.as_deref(), limit)
            .await
            .map_err(|e| map_err(TenantError::Store(e)))?;
        // The cursor is handed out without `#`, so it survives a URL unencoded.
        page.next = page.next.map(|n| n.replace('#', "."));
        Ok(edge::json(StatusCode::OK, &page))
    }

    async fn connect(
        &self,
        tenant: &str,
        kind: &str,
        body: &[u8],
        actor: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let kind = parse_kind(kind)?;
        let scope = self.scope(tenant).await?;
        let connection = ConnectRequest::parse(kind, body)?;
        let (summary, created) = scope.connect(connection).await.map_err(map_err)?;
        tracing::info!(tenant = %scope.tenant(), kind = %summary.kind, channel = %summary.id, created, "channel connected");
        self.record(
            actor,
            scope.tenant(),
            AuditAction::ChannelConnected,
            &[("kind", summary.kind.name()), ("channel", &summary.id)],
        )
        .await;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(edge::json(status, &summary))
    }

    async fn disconnect(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        actor: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let kind = parse_kind(kind)?;
        let channel =
            ChannelRef::parse(kind, id).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let scope = self.scope(tenant).await?;
        let unsubscribe = self
            .release
            .disconnect(&scope, &channel)
            .await
            .map_err(map_err)?;
        tracing::info!(tenant = %scope.tenant(), %kind, channel = %id, ?unsubscribe, "channel disconnected");
        self.record(
            actor,
            scope.tenant(),
            AuditAction::ChannelDisconnected,
            &[("kind", kind.name()), ("channel", id)],
        )
        .await;
        Ok(edge::empty(StatusCode::NO_CONTENT))
    }

    async fn connection_code(
        &self,
        tenant: &str,
        body: &[u8],
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let Some((codes, public_base)) = &self.bitrix_codes else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "Bitrix24 installation is not configured (PUBLIC_BASE_URL)",
            ));
        };
        let scope = self.scope(tenant).await?;
        let req: ConnectionCodeRequest = edge::parse_json(body)?;
        let line = OpenLineId::new(req.line_id)
            .map_err(|_| ApiError::bad_request("line_id: must be a positive integer"))?;
        let issued = codes
            .issue(scope.tenant(), line)
            .await
            .map_err(|e| map_err(wappline::tenant::TenantError::Store(e)))?;
        tracing::info!(tenant = %scope.tenant(), line = %line, "bitrix24 connection code issued");
        Ok(edge::json(
            StatusCode::CREATED,
            &serde_json::json!({
                "code": issued.code.expose(),
                "tenant_id": issued.tenant,
                "line_id": issued.line,
                "expires_at": issued.expires_at,
                "install_url": issued.install_url(public_base),
            }),
        ))
    }

    fn keys(&self) -> Result<&ApiKeys, ApiError> {
        self.api_keys.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "API keys are not configured",
            )
        })
    }

    async fn create_api_key(
        &self,
        tenant: &str,
        body: &[u8],
        actor: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let keys = self.keys()?;
        let scope = self.scope(tenant).await?;
        let req: CreateApiKeyRequest = edge::parse_json(body)?;
        let key_scope = ApiKeyScope::parse(req.scope.as_deref().unwrap_or("send"))
            .ok_or_else(|| ApiError::bad_request("scope: must be send"))?;
        let issued = keys
            .create(scope.tenant(), &req.name, key_scope, req.expires_at)
            .await
            .map_err(api_key_error)?;
        tracing::info!(tenant = %scope.tenant(), key = issued.info.id, "API key created");
        self.record(
            actor,
            scope.tenant(),
            AuditAction::ApiKeyCreated,
            &[("key_id", &issued.info.id)],
        )
        .await;
        let mut body = serde_json::to_value(&issued.info).map_err(|_| ApiError::internal())?;
        body["key"] = serde_json::Value::String(issued.key);
        Ok(edge::json(StatusCode::CREATED, &body))
    }

    async fn list_api_keys(
        &self,
        tenant: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let keys = self.keys()?;
        let scope = self.scope(tenant).await?;
        let listed = keys.list(scope.tenant()).await.map_err(api_key_error)?;
        Ok(edge::json(
            StatusCode::OK,
            &serde_json::json!({ "api_keys": listed }),
        ))
    }

    async fn revoke_api_key(
        &self,
        tenant: &str,
        key_id: &str,
        actor: &str,
    ) -> Result<lambda_http::http::Response<String>, ApiError> {
        let keys = self.keys()?;
        let scope = self.scope(tenant).await?;
        keys.revoke(scope.tenant(), key_id)
            .await
            .map_err(api_key_error)?;
        tracing::info!(tenant = %scope.tenant(), key = key_id, "API key revoked");
        self.record(
            actor,
            scope.tenant(),
            AuditAction::ApiKeyRevoked,
            &[("key_id", key_id)],
        )
        .await;
        Ok(edge::empty(StatusCode::NO_CONTENT))
    }

    /// Records a change in the tenant's audit log. The change has happened: a failure to
    /// record it is logged loudly rather than turned into an error for the caller.
    async fn record(
        &self,
        actor: &str,
        tenant: &TenantId,
        action: AuditAction,
        details: &[(&str, &str)],
    ) {
        if let Some(audit) = &self.audit {
            if let Err(e) = audit.record(tenant, action, actor, details).await {
                tracing::error!(tenant = %tenant, action = action.name(), error = %e, "audit entry not written");
            }
        }
    }

    async fn scope(&self, tenant: &str) -> Result<wappline::tenant::TenantScope, ApiError> {
        let id = TenantId::parse(tenant).map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.tenants
            .scope(&id)
            .await
            .map_err(map_err)?
            .ok_or_else(|| ApiError::not_found("tenant not found"))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApiKeyRequest {
    name: String,
    scope: Option<String>,
    expires_at: Option<i64>,
}

fn api_key_error(e: ApiKeyError) -> ApiError {
    match e {
        ApiKeyError::BadRequest(m) => ApiError::bad_request(m),
        ApiKeyError::NotFound | ApiKeyError::Invalid => ApiError::not_found("no such API key"),
        ApiKeyError::Store(e) => map_err(wappline::tenant::TenantError::Store(e)),
    }
}

fn parse_limit(v: &str) -> Result<usize, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| ApiError::bad_request(format!("limit: must be 1 to {MAX_PAGE}")))
}

/// An audit page cursor as handed out (`<13 digits>.<8 hex>`), or with `#` (percent-encoded
/// as `%23`), into the log's sort key.
fn parse_audit_cursor(v: &str) -> Result<String, ApiError> {
    let v = v.replace("%23", "#").replace('.', "#");
    let ok = v.len() == 22
        && v.as_bytes()[13] == b'#'
        && v[..13].bytes().all(|b| b.is_ascii_digit())
        && v[14..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(v)
    } else {
        Err(ApiError::bad_request(
            "before: must be a next value from a previous page",
        ))
    }
}

fn parse_kind(kind: &str) -> Result<ChannelKind, ApiError> {
    ChannelKind::from_name(kind).ok_or_else(|| {
        ApiError::not_found("unknown channel kind: use whatsapp, instagram or bitrix24")
    })
}

/// The one mapping from domain errors to HTTP.
fn map_err(e: TenantError) -> ApiError {
    match e {
        TenantError::TenantNotFound => ApiError::not_found("tenant not found"),
        TenantError::ChannelNotFound(what) => {
            ApiError::not_found(format!("{what} is not connected to this tenant"))
        }
        TenantError::ChannelTaken(what) => {
            ApiError::conflict(format!("{what} is already connected to another tenant"))
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
