//! A tenant's users, managed by its owners and admins (and the platform admin, who invites
//! a new tenant's first owner):
//!
//! - `GET    /admin/tenants/{id}/users`            the users (never password hashes)
//! - `POST   /admin/tenants/{id}/invitations`      `{email, role}`: a single-use invitation,
//!   valid 7 days, emailed when a mailer is configured; its token is shown once
//! - `GET    /admin/tenants/{id}/invitations`      the pending ones (never their tokens)
//! - `DELETE /admin/tenants/{id}/invitations/{invitation_id}` withdraws one
//! - `PATCH  /admin/tenants/{id}/users/{user_id}`  `{role}`
//! - `DELETE /admin/tenants/{id}/users/{user_id}`  the user and every session of theirs go
//!
//! Only owners give or take the owner role, and a tenant always keeps one owner.

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::accounts::{Accounts, Email, Principal, Role, UserId};
use wappline::edge::{self, ApiError};
use wappline::ids::TenantId;

use crate::auth::account_error;

type Response = lambda_http::http::Response<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    email: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleRequest {
    role: String,
}

pub async fn list(accounts: &Accounts, tenant: &TenantId) -> Result<Response, ApiError> {
    let users = accounts.list_users(tenant).await.map_err(account_error)?;
    Ok(edge::json(
        StatusCode::OK,
        &serde_json::json!({ "users": users }),
    ))
}

/// Returns the response and the audit details.
pub async fn invite(
    accounts: &Accounts,
    tenant: &TenantId,
    actor: &Principal,
    body: &[u8],
) -> Result<(Response, String), ApiError> {
    let r: InviteRequest = edge::parse_json(body)?;
    let email = Email::parse(&r.email).map_err(account_error)?;
    let role = Role::parse(&r.role).map_err(account_error)?;
    let invitation = accounts
        .invite(tenant, actor, email, role)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %tenant, role = role.name(), emailed = invitation.emailed, "user invited");
    Ok((
        edge::json(StatusCode::CREATED, &invitation),
        role.name().to_owned(),
    ))
}

pub async fn set_role(
    accounts: &Accounts,
    tenant: &TenantId,
    actor: &Principal,
    user: &str,
    body: &[u8],
) -> Result<(Response, (Role, Role)), ApiError> {
    let user = UserId::parse(user).map_err(|_| ApiError::not_found("no such user"))?;
    let r: RoleRequest = edge::parse_json(body)?;
    let role = Role::parse(&r.role).map_err(account_error)?;
    let change = accounts
        .set_role(tenant, actor, &user, role)
        .await
        .map_err(account_error)?;
    let info = accounts
        .user(tenant, &user)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    tracing::info!(tenant = %tenant, user = %user, from = change.from.name(), to = role.name(), "user role changed");
    Ok((edge::json(StatusCode::OK, &info), (change.from, role)))
}

pub async fn remove(
    accounts: &Accounts,
    tenant: &TenantId,
    actor: &Principal,
    user: &str,
) -> Result<Response, ApiError> {
    let user = UserId::parse(user).map_err(|_| ApiError::not_found("no such user"))?;
    accounts
        .remove_user(tenant, actor, &user)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %tenant, user = %user, "user removed");
    Ok(edge::empty(StatusCode::NO_CONTENT))
}

pub async fn pending_invitations(
    accounts: &Accounts,
    tenant: &TenantId,
) -> Result<Response, ApiError> {
    let pending = accounts
        .pending_invitations(tenant)
        .await
        .map_err(account_error)?;
    Ok(edge::json(
        StatusCode::OK,
        &serde_json::json!({ "invitations": pending }),
    ))
}

/// Returns the response and the withdrawn invitation's role, for the audit log.
pub async fn withdraw_invitation(
    accounts: &Accounts,
    tenant: &TenantId,
    actor: &Principal,
    id: &str,
) -> Result<(Response, String), ApiError> {
    let withdrawn = accounts
        .withdraw_invitation(tenant, actor, id)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %tenant, invitation = id, "invitation withdrawn");
    Ok((
        edge::empty(StatusCode::NO_CONTENT),
        withdrawn.role.name().to_owned(),
    ))
}
