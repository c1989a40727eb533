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
use wappline::accounts::{Email, Role, UserId};
use wappline::audit::AuditAction;
use wappline::edge::{self, ApiError};

use crate::auth::account_error;
use crate::routing::{Call, Handled};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteRequest {
    email: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleRequest {
    role: String,
}

pub(crate) async fn list(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let users = c
        .services
        .accounts
        .list_users(scope.tenant())
        .await
        .map_err(account_error)?;
    Ok(edge::json(
        StatusCode::OK,
        &serde_json::json!({ "users": users }),
    ))
}

pub(crate) async fn invite(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let r: InviteRequest = edge::parse_json(c.body)?;
    let email = Email::parse(&r.email).map_err(account_error)?;
    let role = Role::parse(&r.role).map_err(account_error)?;
    let invitation = c
        .services
        .accounts
        .invite(tenant, c.principal()?, email, role)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %tenant, role = role.name(), emailed = invitation.emailed, "user invited");
    let resp = edge::json(StatusCode::CREATED, &invitation);
    c.record(tenant, AuditAction::UserInvited, &[("role", role.name())])
        .await;
    Ok(resp)
}

pub(crate) async fn set_role(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let accounts = &c.services.accounts;
    let user_param = c.param("user");
    let user = UserId::parse(user_param).map_err(|_| ApiError::not_found("no such user"))?;
    let r: RoleRequest = edge::parse_json(c.body)?;
    let role = Role::parse(&r.role).map_err(account_error)?;
    let change = accounts
        .set_role(tenant, c.principal()?, &user, role)
        .await
        .map_err(account_error)?;
    let info = accounts
        .user(tenant, &user)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    tracing::info!(tenant = %tenant, user = %user, from = change.from.name(), to = role.name(), "user role changed");
    let resp = edge::json(StatusCode::OK, &info);
    c.record(
        tenant,
        AuditAction::UserRoleChanged,
        &[
            ("user_id", user_param),
            ("from", change.from.name()),
            ("to", role.name()),
        ],
    )
    .await;
    Ok(resp)
}

pub(crate) async fn remove(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let user_param = c.param("user");
    let user = UserId::parse(user_param).map_err(|_| ApiError::not_found("no such user"))?;
    c.services
        .accounts
        .remove_user(tenant, c.principal()?, &user)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %tenant, user = %user, "user removed");
    c.record(tenant, AuditAction::UserRemoved, &[("user_id", user_param)])
        .await;
    Ok(edge::empty(StatusCode::NO_CONTENT))
}

pub(crate) async fn pending_invitations(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let pending = c
        .services
        .accounts
        .pending_invitations(scope.tenant())
        .await
        .map_err(account_error)?;
    Ok(edge::json(
        StatusCode::OK,
        &serde_json::json!({ "invitations": pending }),
    ))
}

pub(crate) async fn withdraw_invitation(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let id = c.param("invitation");
    let withdrawn = c
        .services
        .accounts
        .withdraw_invitation(tenant, c.principal()?, id)
        .await
        .map_err(account_error)?;
    tracing::info!(tenant = %tenant, invitation = id, "invitation withdrawn");
    c.record(
        tenant,
        AuditAction::InvitationWithdrawn,
        &[("invitation_id", id), ("role", withdrawn.role.name())],
    )
    .await;
    Ok(edge::empty(StatusCode::NO_CONTENT))
}
