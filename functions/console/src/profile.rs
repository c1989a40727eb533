//! The account's own data on the Account page (decision 0047): the user's display name, their
//! email address (changed through a link mailed to the new address), and the acknowledgement
//! of a changed privacy policy. Each is the signed-in user's own: no permission beyond being
//! signed in, and never another user's.
//!
//! The email link leads to a public page (the person may open it in another browser, without
//! a session): its GET only shows a button, so a mail scanner that follows links changes
//! nothing; the button's POST carries the link's token, which is the credential (a forged post
//! would need the token, so it needs no session-bound form token).

use askama::Template;
use lambda_http::http::{Method, StatusCode};
use lambda_http::Request;
use wappline::accounts::profile::EMAIL_CONFIRM_PATH;
use wappline::accounts::AccountError;
use wappline::audit::{AuditAction, AuditLog};
use wappline::ids::TenantId;

use crate::i18n::{Lang, Text};
use crate::web::{self, Chrome, Ctx, Fail, Form, Reply};
use crate::Console;

#[derive(Template)]
#[template(path = "email_confirm.html")]
struct ConfirmPage {
    c: Chrome,
    token: String,
}

/// Serves the email-change link's page, or `None` when the path is another.
pub(crate) async fn public(
    console: &Console,
    req: &Request,
    lang: Lang,
) -> Option<Result<Reply, Fail>> {
    if req.uri().path() != EMAIL_CONFIRM_PATH {
        return None;
    }
    Some(match *req.method() {
        Method::GET => {
            let token = web::query(req, "token").unwrap_or_default();
            page(lang, StatusCode::OK, token, None)
        }
        Method::POST => confirm(console, req, lang).await,
        _ => Err(Fail::method_not_allowed()),
    })
}

fn page(
    lang: Lang,
    status: StatusCode,
    token: &str,
    error: Option<fn(&Text) -> &'static str>,
) -> Result<Reply, Fail> {
    let mut c = Chrome::public(lang, "/app/sign-in");
    c.error = error.map(|e| e(c.t));
    // A token of another shape is not offered back.
    let token = if token.len() <= 200
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        token.to_owned()
    } else {
        String::new()
    };
    Reply::html(status, &ConfirmPage { c, token })
}

async fn confirm(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let form = Form::parse(req.body().as_ref())?;
    match console
        .services
        .accounts
        .confirm_email_change(form.get("token"))
        .await
    {
        Ok(changed) => {
            tracing::info!(tenant = %changed.tenant, user = %changed.user, "email address changed from the console");
            let actor = format!("user:{}", changed.user);
            // The link's token named and proved the tenant: its audit entry is written
            // with that tenant's credentials (decision 0037), not the function's.
            let entry = audit(
                &console.services.audit,
                &changed.tenant,
                &actor,
                "user_email",
            );
            wappline::acting::acting_for(&changed.tenant, entry).await;
            Ok(Reply::redirect("/app/sign-in?done=email_changed"))
        }
        Err(AccountError::InvalidToken) => page(
            lang,
            StatusCode::BAD_REQUEST,
            "",
            Some(|t| t.email_link_invalid),
        ),
        Err(AccountError::Conflict(_)) => {
            page(lang, StatusCode::CONFLICT, "", Some(|t| t.email_taken))
        }
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// `POST /app/account/profile`: the caller's display name.
pub(crate) async fn set_display_name(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    match ctx
        .s
        .accounts
        .set_display_name(&ctx.user, ctx.field("name"))
        .await
    {
        Ok(()) => {
            audit(&ctx.s.audit, &ctx.user.tenant, &ctx.actor(), "user_name").await;
            Ok(Reply::redirect("/app/account?done=name_saved"))
        }
        Err(AccountError::Invalid(_)) => {
            crate::pages::account(ctx, StatusCode::BAD_REQUEST, Some(|t| t.name_invalid)).await
        }
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// `POST /app/account/email`: mails the confirmation link to the new address.
pub(crate) async fn request_email_change(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    match ctx
        .s
        .accounts
        .request_email_change(&ctx.user, ctx.field("email"))
        .await
    {
        Ok(()) => {
            tracing::info!(tenant = %ctx.user.tenant, user = %ctx.user.user, "email change link sent");
            let what = "user_email_change_requested";
            audit(&ctx.s.audit, &ctx.user.tenant, &ctx.actor(), what).await;
            Ok(Reply::redirect("/app/account?done=email_link_sent"))
        }
        Err(AccountError::Invalid(_)) => {
            crate::pages::account(ctx, StatusCode::BAD_REQUEST, Some(|t| t.email_invalid)).await
        }
        Err(AccountError::Conflict(_)) => {
            crate::pages::account(ctx, StatusCode::CONFLICT, Some(|t| t.email_taken)).await
        }
        Err(AccountError::MailNotConfigured) => Err(Fail::unavailable()),
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// `POST /app/policy/acknowledge`: records the current policy version as seen.
pub(crate) async fn acknowledge_policy(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    match ctx
        .s
        .accounts
        .acknowledge_policy(&ctx.user, ctx.field("version"))
        .await
    {
        Ok(()) => {
            tracing::info!(tenant = %ctx.user.tenant, user = %ctx.user.user, "privacy policy acknowledged");
            Ok(Reply::redirect("/app/account?done=policy_acknowledged"))
        }
        Err(AccountError::Invalid(_)) => Err(Fail::bad_request(|t| t.err_bad_request)),
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// A correction of one's own data in the tenant's audit log: which setting, by whom; never
/// the name or the addresses. The change stands if the entry cannot be written.
async fn audit(log: &AuditLog, tenant: &TenantId, actor: &str, setting: &str) {
    let details = [("setting", setting)];
    if let Err(e) = log
        .record(tenant, AuditAction::SettingsChanged, actor, &details)
        .await
    {
        tracing::error!(tenant = %tenant, error = %e, "audit entry not written");
    }
}
