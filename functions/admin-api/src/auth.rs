//! `/auth/*`: how a tenant's users sign in and manage their own sessions and password.
//!
//! - `POST /auth/sign-in` `{account_id, email, password}`: access + refresh token
//! - `POST /auth/refresh` `{refresh_token}` (or the refresh cookie): rotated tokens
//! - `POST /auth/sign-out`: the bearer's session, or the refresh token's, ends
//! - `POST /auth/invitations/accept` `{token, password}`: creates the user, signed in
//! - `GET  /auth/me`: who the bearer is, with the role's permissions
//! - `PUT  /auth/password` `{current_password, new_password}`: every session ends
//! - `POST /auth/password-reset` `{account_id, email}`: a reset link by email (202 always)
//! - `POST /auth/password-reset/confirm` `{token, new_password}`: every session ends
//!
//! The refresh token is also set as a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict,
//! Path=/) for browser clients, which then never need to hold it in script.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::Deserialize;
use wappline::accounts::service::SignedIn;
use wappline::accounts::{AccountError, Password, Permission, UserPrincipal};
use wappline::edge::{self, ApiError};

use crate::routing::{Call, Handled};

pub const AUTH_PREFIX: &str = "/auth/";
/// The refresh-token cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const REFRESH_COOKIE: &str = "__Host-wappline_refresh";

type Response = lambda_http::http::Response<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInRequest {
    account_id: String,
    email: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptRequest {
    token: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    account_id: String,
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirmRequest {
    token: String,
    new_password: String,
}

/// The caller's address as API Gateway saw it (the local server fills the same field).
pub fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The refresh token from the body (`{"refresh_token": ...}`, optional) or else the cookie.
fn presented_refresh_token(req: &Request, body: &[u8]) -> Result<Option<String>, ApiError> {
    let r: RefreshRequest = if body.is_empty() {
        RefreshRequest::default()
    } else {
        edge::parse_json(body)?
    };
    Ok(r.refresh_token.or_else(|| {
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == REFRESH_COOKIE)
            .map(|(_, value)| value.to_owned())
    }))
}

fn with_cookie(mut resp: Response, value: &str, max_age: i64) -> Response {
    let cookie = format!(
        "{REFRESH_COOKIE}={value}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        max_age.max(0)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn signed_in(status: StatusCode, s: &SignedIn) -> Response {
    let max_age = s.session_expires_at - wappline::clock::now_secs();
    with_cookie(edge::json(status, s), &s.refresh_token, max_age)
}

/// The one mapping of account errors to HTTP.
pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(m) => ApiError::bad_request(m),
        AccountError::BadCredentials => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid email or password",
        ),
        AccountError::InvalidToken => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "invalid or expired token",
        ),
        AccountError::Throttled { retry_after_secs } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed attempts; retry after {retry_after_secs} seconds"),
        ),
        AccountError::Suspended => ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant_suspended",
            "this account is suspended; contact support",
        ),
        AccountError::UserNotFound => ApiError::not_found("no such user"),
        AccountError::NotFound(m) => ApiError::not_found(m),
        AccountError::Conflict(m) => ApiError::conflict(m),
        AccountError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
        AccountError::MailNotConfigured => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "email is not configured on this deployment; ask an admin of your account",
        ),
        AccountError::Store(e) => crate::map_err(wappline::tenant::TenantError::Store(e)),
        e @ (AccountError::Mail(_) | AccountError::Crypto(_)) => {
            tracing::error!(error = %e, "account operation failed");
            ApiError::internal()
        }
    }
}

/// A 429 for a throttled attempt carries `Retry-After`.
fn throttled_response(e: AccountError) -> Result<Response, ApiError> {
    if let AccountError::Throttled { retry_after_secs } = e {
        let mut resp = account_error(e).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        return Ok(resp);
    }
    Err(account_error(e))
}

pub fn permissions_of(user: &UserPrincipal) -> Vec<&'static str> {
    Permission::ALL
        .into_iter()
        .filter(|p| user.role.allows(*p))
        .map(Permission::name)
        .collect()
}

pub(crate) async fn sign_in(c: &Call<'_>) -> Handled {
    let r: SignInRequest = edge::parse_json(c.body)?;
    let source = source_ip(c.req);
    match c
        .services
        .accounts
        .sign_in_from(
            &r.account_id,
            &r.email,
            &r.password,
            wappline::accounts::SignInDevice {
                source: source.as_deref(),
                user_agent: user_agent(c.req),
            },
        )
        .await
    {
        Ok(s) => {
            tracing::info!(tenant = %s.tenant_id, user = %s.user.id, "signed in");
            Ok(signed_in(StatusCode::OK, &s))
        }
        Err(e) => {
            tracing::info!(reason = %e, "sign-in refused");
            throttled_response(e)
        }
    }
}

pub(crate) async fn refresh(c: &Call<'_>) -> Handled {
    let token = presented_refresh_token(c.req, c.body)?
        .ok_or_else(|| ApiError::bad_request("give refresh_token (or the cookie)"))?;
    let s = c
        .services
        .accounts
        .refresh(&token)
        .await
        .map_err(account_error)?;
    Ok(signed_in(StatusCode::OK, &s))
}

pub(crate) async fn sign_out(c: &Call<'_>) -> Handled {
    let accounts = &c.services.accounts;
    if let Some(token) = bearer(c.req) {
        let p = accounts.authenticate(token).await.map_err(account_error)?;
        accounts.sign_out(&p).await.map_err(account_error)?;
        tracing::info!(tenant = %p.tenant, user = %p.user, "signed out");
    } else {
        let token = presented_refresh_token(c.req, c.body)?.ok_or_else(ApiError::unauthorized)?;
        accounts
            .sign_out_refresh(&token)
            .await
            .map_err(account_error)?;
    }
    Ok(with_cookie(edge::empty(StatusCode::NO_CONTENT), "", 0))
}

pub(crate) async fn accept_invitation(c: &Call<'_>) -> Handled {
    let r: AcceptRequest = edge::parse_json(c.body)?;
    let password = Password::new(&r.password).map_err(account_error)?;
    let s = c
        .services
        .accounts
        .accept_invitation(&r.token, &password)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %s.tenant_id, user = %s.user.id, role = s.user.role.name(), "invitation accepted");
    Ok(signed_in(StatusCode::CREATED, &s))
}

pub(crate) async fn me(c: &Call<'_>) -> Handled {
    let accounts = &c.services.accounts;
    let token = bearer(c.req).ok_or_else(ApiError::unauthorized)?;
    let p = accounts.authenticate(token).await.map_err(account_error)?;
    let user = accounts
        .user(&p.tenant, &p.user)
        .await
        .map_err(account_error)?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(edge::json(
        StatusCode::OK,
        &serde_json::json!({
            "tenant_id": p.tenant,
            "user": user,
            "permissions": permissions_of(&p),
        }),
    ))
}

pub(crate) async fn change_password(c: &Call<'_>) -> Handled {
    let accounts = &c.services.accounts;
    let token = bearer(c.req).ok_or_else(ApiError::unauthorized)?;
    let p = accounts.authenticate(token).await.map_err(account_error)?;
    let r: ChangePasswordRequest = edge::parse_json(c.body)?;
    let new = Password::new(&r.new_password).map_err(account_error)?;
    let source = source_ip(c.req);
    match accounts
        .change_password(&p, &r.current_password, &new, source.as_deref())
        .await
    {
        Ok(()) => {}
        // Not 401: the caller's token is fine, the password they typed is not.
        Err(AccountError::BadCredentials) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "current_password is not the account's password",
            ))
        }
        Err(e) => return throttled_response(e),
    }
    tracing::info!(tenant = %p.tenant, user = %p.user, "password changed; sessions revoked");
    Ok(with_cookie(edge::empty(StatusCode::NO_CONTENT), "", 0))
}

pub(crate) async fn request_password_reset(c: &Call<'_>) -> Handled {
    let r: ResetRequest = edge::parse_json(c.body)?;
    let source = source_ip(c.req);
    if let Err(e) = c
        .services
        .accounts
        .request_password_reset(&r.account_id, &r.email, source.as_deref())
        .await
    {
        return throttled_response(e);
    }
    Ok(edge::json(
        StatusCode::ACCEPTED,
        &serde_json::json!({
            "status": "if the address has a user in that account, a reset link was sent to it"
        }),
    ))
}

pub(crate) async fn confirm_password_reset(c: &Call<'_>) -> Handled {
    let r: ResetConfirmRequest = edge::parse_json(c.body)?;
    let new = Password::new(&r.new_password).map_err(account_error)?;
    c.services
        .accounts
        .confirm_password_reset(&r.token, &new)
        .await
        .map_err(account_error)?;
    Ok(with_cookie(edge::empty(StatusCode::NO_CONTENT), "", 0))
}

/// The caller's User-Agent, for recognising a known device at sign-in (decision 0047: only
/// a keyed hash of it is stored).
fn user_agent(req: &Request) -> Option<&str> {
    req.headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
}
