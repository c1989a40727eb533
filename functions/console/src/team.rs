//! Users and invitations, API keys and the audit log: the same services and audit entries as
//! the admin API's `/users`, `/invitations`, `/api-keys` and `/audit`.

use askama::Template;
use lambda_http::http::StatusCode;
use wappline::accounts::{AccountError, Email, Principal, Role, UserId};
use wappline::api_keys::{ApiKeyError, ApiKeyScope};
use wappline::audit::AuditAction;

use crate::i18n::Text;
use crate::web::{self, role_name, when, Chrome, Ctx, Fail, Reply};

/// Audit entries per page.
const AUDIT_PAGE: usize = 50;

impl Ctx<'_> {
    fn principal(&self) -> Principal {
        Principal::User(self.user.clone())
    }

    /// The change happened: a failure to record it is logged loudly, not shown.
    async fn record(&self, action: AuditAction, details: &[(&str, &str)]) {
        if let Err(e) = self
            .s
            .audit
            .record(&self.user.tenant, action, &self.actor(), details)
            .await
        {
            tracing::error!(tenant = %self.user.tenant, action = action.name(), error = %e, "audit entry not written");
        }
    }
}

/// Refusals of the accounts service a person can act on, in their words.
fn account_refusal(e: AccountError) -> Result<fn(&Text) -> &'static str, Fail> {
    match e {
        AccountError::Invalid(_) => Ok(|t| t.err_bad_request),
        AccountError::Conflict(_) => Ok(|t| t.user_conflict),
        AccountError::Forbidden(_) => Ok(|t| t.err_forbidden),
        AccountError::UserNotFound | AccountError::NotFound(_) => Err(Fail::not_found()),
        other => Err(Fail::from_account(other)),
    }
}

// ---- Users and invitations -----------------------------------------------------------

struct UserRow {
    id: String,
    email: String,
    role: &'static str,
    role_code: &'static str,
    since: String,
    /// The privacy-policy version the user acknowledged, in words when none.
    policy: String,
    is_me: bool,
}

struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    expires: String,
}

struct RoleOption {
    code: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    users: Vec<UserRow>,
    invitations: Vec<InvitationRow>,
    roles: Vec<RoleOption>,
    /// An invitation that could not be emailed: its link token, shown this once.
    token: Option<String>,
}

pub(crate) async fn users(
    ctx: &Ctx<'_>,
    status: StatusCode,
    error: Option<fn(&Text) -> &'static str>,
    token: Option<String>,
) -> Result<Reply, Fail> {
    let t = ctx.t;
    let tenant = &ctx.user.tenant;
    let accounts = &ctx.s.accounts;
    let users = accounts
        .list_users(tenant)
        .await
        .map_err(Fail::from_account)?
        .into_iter()
        .map(|u| UserRow {
            is_me: u.id == ctx.user.user,
            id: u.id.to_string(),
            email: u.email.as_str().to_owned(),
            role: role_name(t, u.role),
            role_code: u.role.name(),
            since: when(u.created_at),
            policy: u
                .policy_seen
                .unwrap_or_else(|| t.policy_not_seen.to_owned()),
        })
        .collect();
    let invitations = accounts
        .pending_invitations(tenant)
        .await
        .map_err(Fail::from_account)?
        .into_iter()
        .map(|i| InvitationRow {
            id: i.id,
            email: i.email.as_str().to_owned(),
            role: role_name(t, i.role),
            expires: when(i.expires_at),
        })
        .collect();
    let roles = Role::ALL
        .into_iter()
        .filter(|r| ctx.user.role.may_assign(*r))
        .map(|r| RoleOption {
            code: r.name(),
            label: role_name(t, r),
        })
        .collect();
    let mut c = ctx.chrome("/app/users");
    c.error = error.map(|e| e(t));
    let page = UsersPage {
        c,
        users,
        invitations,
        roles,
        token,
    };
    Reply::html(status, &page)
}

pub(crate) async fn invite(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let (Ok(email), Ok(role)) = (
        Email::parse(ctx.field("email")),
        Role::parse(ctx.field("role")),
    ) else {
        return users(
            ctx,
            StatusCode::BAD_REQUEST,
            Some(|t| t.err_bad_request),
            None,
        )
        .await;
    };
    let invitation = match ctx
        .s
        .accounts
        .invite(&ctx.user.tenant, &ctx.principal(), email, role)
        .await
    {
        Ok(i) => i,
        Err(e) => {
            let message = account_refusal(e)?;
            return users(ctx, StatusCode::BAD_REQUEST, Some(message), None).await;
        }
    };
    tracing::info!(tenant = %ctx.user.tenant, role = role.name(), emailed = invitation.emailed, "user invited from the console");
    ctx.record(AuditAction::UserInvited, &[("role", role.name())])
        .await;
    // Without email the inviter passes the token on; it is shown this once.
    let token = (!invitation.emailed).then_some(invitation.token);
    users(ctx, StatusCode::CREATED, None, token).await
}

pub(crate) async fn set_role(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let user = UserId::parse(ctx.field("user")).map_err(|_| Fail::not_found())?;
    let Ok(role) = Role::parse(ctx.field("role")) else {
        return users(
            ctx,
            StatusCode::BAD_REQUEST,
            Some(|t| t.err_bad_request),
            None,
        )
        .await;
    };
    match ctx
        .s
        .accounts
        .set_role(&ctx.user.tenant, &ctx.principal(), &user, role)
        .await
    {
        Ok(change) => {
            ctx.record(
                AuditAction::UserRoleChanged,
                &[
                    ("user_id", user.as_str()),
                    ("from", change.from.name()),
                    ("to", role.name()),
                ],
            )
            .await;
            Ok(Reply::redirect("/app/users?done=user_changed"))
        }
        Err(e) => {
            let message = account_refusal(e)?;
            users(ctx, StatusCode::CONFLICT, Some(message), None).await
        }
    }
}

pub(crate) async fn remove_user(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let user = UserId::parse(ctx.field("user")).map_err(|_| Fail::not_found())?;
    match ctx
        .s
        .accounts
        .remove_user(&ctx.user.tenant, &ctx.principal(), &user)
        .await
    {
        Ok(_) => {
            ctx.record(AuditAction::UserRemoved, &[("user_id", user.as_str())])
                .await;
            Ok(Reply::redirect("/app/users?done=user_removed"))
        }
        Err(e) => {
            let message = account_refusal(e)?;
            users(ctx, StatusCode::CONFLICT, Some(message), None).await
        }
    }
}

pub(crate) async fn withdraw_invitation(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let id = ctx.field("invitation");
    match ctx
        .s
        .accounts
        .withdraw_invitation(&ctx.user.tenant, &ctx.principal(), id)
        .await
    {
        Ok(withdrawn) => {
            ctx.record(
                AuditAction::InvitationWithdrawn,
                &[("invitation_id", id), ("role", withdrawn.role.name())],
            )
            .await;
            Ok(Reply::redirect("/app/users?done=invitation_withdrawn"))
        }
        Err(e) => {
            let message = account_refusal(e)?;
            users(ctx, StatusCode::CONFLICT, Some(message), None).await
        }
    }
}

// ---- API keys ------------------------------------------------------------------------

struct KeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    c: Chrome,
    keys: Vec<KeyRow>,
    /// A key just created: shown this once, never again.
    new_key: Option<String>,
}

fn key_error(e: ApiKeyError) -> Fail {
    match e {
        ApiKeyError::BadRequest(_) => Fail::bad_request(|t| t.api_key_name_invalid),
        ApiKeyError::NotFound | ApiKeyError::Invalid => Fail::not_found(),
        ApiKeyError::Store(e) => Fail::log("API keys", e),
    }
}

pub(crate) async fn api_keys(ctx: &Ctx<'_>, new_key: Option<String>) -> Result<Reply, Fail> {
    let t = ctx.t;
    let keys = ctx
        .s
        .api_keys
        .list(&ctx.user.tenant)
        .await
        .map_err(key_error)?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            created: when(k.created_at),
            last_used: k
                .last_used_at
                .map(when)
                .unwrap_or_else(|| t.never.to_owned()),
            revoked: k.revoked,
        })
        .collect();
    let status = if new_key.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let page = ApiKeysPage {
        c: ctx.chrome("/app/api-keys"),
        keys,
        new_key,
    };
    Reply::html(status, &page)
}

pub(crate) async fn create_api_key(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let issued = ctx
        .s
        .api_keys
        .create(&ctx.user.tenant, ctx.field("name"), ApiKeyScope::Send, None)
        .await
        .map_err(key_error)?;
    tracing::info!(tenant = %ctx.user.tenant, key = issued.info.id, "API key created from the console");
    ctx.record(AuditAction::ApiKeyCreated, &[("key_id", &issued.info.id)])
        .await;
    // Rendered here, not after a redirect: the key must not travel in a URL or be stored.
    api_keys(ctx, Some(issued.key)).await
}

pub(crate) async fn revoke_api_key(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let id = ctx.field("key");
    ctx.s
        .api_keys
        .revoke(&ctx.user.tenant, id)
        .await
        .map_err(key_error)?;
    tracing::info!(tenant = %ctx.user.tenant, key = id, "API key revoked from the console");
    ctx.record(AuditAction::ApiKeyRevoked, &[("key_id", id)])
        .await;
    Ok(Reply::redirect("/app/api-keys?done=api_key_revoked"))
}

// ---- Audit log -----------------------------------------------------------------------

struct AuditRow {
    at: String,
    action: String,
    actor: String,
    details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    entries: Vec<AuditRow>,
    /// The cursor of the next (older) page.
    older: Option<String>,
}

pub(crate) async fn audit(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    // A cursor as handed out below: `<13 digits>.<8 hex>`.
    let before = match web::query(ctx.req, "before") {
        Some(v) => {
            let ok = v.len() == 22
                && v.as_bytes()[13] == b'.'
                && v[..13].bytes().all(|b| b.is_ascii_digit())
                && v[14..]
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !ok {
                return Err(Fail::bad_request(|t| t.err_bad_request));
            }
            Some(v.replace('.', "#"))
        }
        None => None,
    };
    let page = ctx
        .s
        .audit
        .read(&ctx.user.tenant, before.as_deref(), AUDIT_PAGE)
        .await
        .map_err(|e| Fail::log("audit read", e))?;
    let entries = page
        .entries
        .into_iter()
        .map(|e| AuditRow {
            at: when(e.at / 1000),
            action: e.action,
            actor: e.actor,
            details: e
                .details
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let page = AuditPage {
        c: ctx.chrome("/app/audit"),
        entries,
        older: page.next.map(|n| n.replace('#', ".")),
    };
    Reply::html(StatusCode::OK, &page)
}
