//! The account pages a person reaches without a session, from an email or the sign-in page,
//! and the password change of a signed-in user (decision 0073):
//!
//! - `/app/invitations/accept?token=…`: the invitation's link. The page shows the company, the
//!   address and the role, and asks for a name and a password; accepting creates the user and
//!   signs them in (the accounts service's `accept_invitation_named`).
//! - `/app/password-reset`: "Forgot your password?". Answers the same whether the account and
//!   address exist or not, as the API does.
//! - `/app/password-reset/confirm?token=…`: the reset link. Setting the password ends every
//!   session of the user and mails them (the service's reset).
//! - `/app/account/password` (signed in): the current password, then the new one; the other
//!   sessions end, this browser gets a new one, the user is mailed.
//!
//! The public forms carry the sign-in form's signed double-submit token (a nonce cookie and
//! its HMAC in the form): the emailed token alone would let another site post a victim's
//! browser into an account of the attacker's choosing (its own invitation). A GET never
//! changes anything, so a mail scanner that follows links uses nothing up. Tokens travel in
//! the query and the form only: the console logs paths, never queries or form fields.

use askama::Template;
use lambda_http::http::{Method, StatusCode};
use lambda_http::Request;
use wappline::accounts::invitations::{InvitationPreview, INVITATION_PATH};
use wappline::accounts::password_reset::RESET_PATH;
use wappline::accounts::{AccountError, FormBinding, Password};

use crate::account_text::AccountText;
use crate::i18n::Lang;
use crate::web::{self, Chrome, Ctx, Fail, Form, Reply};
use crate::Console;

/// The request form for a reset link.
const RESET_REQUEST_PATH: &str = "/app/password-reset";
/// The nonce cookie lives as long as a page is reasonably left open (as the sign-in form's).
const VISITOR_MAX_AGE: i64 = 2 * 3600;
/// Longest token offered back in a form; ours are about 90 characters.
const MAX_TOKEN_CHARS: usize = 200;

/// What the invitation page shows of an invitation.
struct Shown {
    company: String,
    email: String,
    role: &'static str,
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    c: Chrome,
    a: &'static AccountText,
    invitation: Option<Shown>,
    token: String,
    name: String,
}

#[derive(Template)]
#[template(path = "password_reset.html")]
struct ResetRequestPage {
    c: Chrome,
    a: &'static AccountText,
    account_id: String,
    email: String,
}

#[derive(Template)]
#[template(path = "password_reset_confirm.html")]
struct ResetConfirmPage {
    c: Chrome,
    a: &'static AccountText,
    token: String,
}

#[derive(Template)]
#[template(path = "password_change.html")]
struct ChangePage {
    c: Chrome,
    a: &'static AccountText,
}

/// Serves a public account page, or `None` when the path is another.
pub(crate) async fn public(
    console: &Console,
    req: &Request,
    lang: Lang,
) -> Option<Result<Reply, Fail>> {
    let get = req.method() == Method::GET;
    let post = req.method() == Method::POST;
    Some(match req.uri().path() {
        INVITATION_PATH if get => invitation_page(console, req, lang).await,
        INVITATION_PATH if post => accept_invitation(console, req, lang).await,
        RESET_REQUEST_PATH if get => {
            let sent = web::query(req, "done") == Some("sent");
            reset_request_form(console, lang, StatusCode::OK, sent, None, "", "")
        }
        RESET_REQUEST_PATH if post => request_reset(console, req, lang).await,
        RESET_PATH if get => reset_page(console, req, lang).await,
        RESET_PATH if post => confirm_reset(console, req, lang).await,
        INVITATION_PATH | RESET_REQUEST_PATH | RESET_PATH => Err(Fail::method_not_allowed()),
        _ => return None,
    })
}

/// A token of our shape (`prefix.tenant.secret`, URL-safe), else empty: nothing else is
/// offered back in a page.
fn token_of(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or_default();
    if raw.len() <= MAX_TOKEN_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        raw.to_owned()
    } else {
        String::new()
    }
}

/// A fresh nonce: its cookie, and the token the form carries.
fn visitor(console: &Console) -> Result<(String, String), Fail> {
    let mut nonce = [0u8; 16];
    wappline::crypto::random_bytes(&mut nonce).map_err(|e| Fail::log("random nonce", e))?;
    let nonce = hex::encode(nonce);
    let csrf = console
        .services
        .accounts
        .form_token(&FormBinding::Visitor(&nonce));
    let cookie = web::set_cookie(
        console.services.secure_cookies,
        web::VISITOR_COOKIE,
        &nonce,
        VISITOR_MAX_AGE,
    );
    Ok((cookie, csrf))
}

/// The chrome of a public page with a fresh form token; the cookie goes on the reply.
fn chrome(console: &Console, lang: Lang) -> Result<(Chrome, String), Fail> {
    let (cookie, csrf) = visitor(console)?;
    // The language links come back to sign-in: a token never goes into another URL.
    let mut c = Chrome::public(lang, "/app/sign-in");
    c.csrf = csrf;
    Ok((c, cookie))
}

/// The posted form, refused (403, nothing read or written) without the token of the
/// caller's own nonce cookie.
fn checked_form(console: &Console, req: &Request) -> Result<Form, Fail> {
    let form = Form::parse(req.body().as_ref())?;
    let nonce = web::cookie(req, web::VISITOR_COOKIE).unwrap_or_default();
    if nonce.is_empty()
        || !console
            .services
            .accounts
            .verify_form_token(&FormBinding::Visitor(nonce), form.get("csrf"))
    {
        tracing::warn!(
            path = req.uri().path(),
            "account page posted without a valid anti-forgery token"
        );
        return Err(Fail::csrf());
    }
    Ok(form)
}

/// The new password of a form (`password`, repeated in `password2`), by the API's rules.
fn new_password(form: &Form) -> Result<Password, fn(&AccountText) -> &'static str> {
    let (first, second) = (form.get("password"), form.get("password2"));
    if first != second {
        return Err(|a| a.password_mismatch);
    }
    match Password::new(first) {
        Ok(p) => Ok(p),
        Err(_) => Err(|a| a.password_short),
    }
}

async fn invitation_page(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let token = token_of(web::query(req, "token"));
    let found = console.services.accounts.invitation(&token).await;
    invitation_reply(console, lang, &token, found, None, "")
}

/// The invitation page: its form when the invitation can be accepted, else why not.
fn invitation_reply(
    console: &Console,
    lang: Lang,
    token: &str,
    found: Result<InvitationPreview, AccountError>,
    error: Option<fn(&AccountText) -> &'static str>,
    name: &str,
) -> Result<Reply, Fail> {
    let a = AccountText::of(lang);
    let (mut c, cookie) = chrome(console, lang)?;
    let (status, invitation) = match found {
        Ok(inv) => (
            if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            },
            Some(Shown {
                company: inv.company,
                email: inv.email.as_str().to_owned(),
                role: web::role_name(c.t, inv.role),
            }),
        ),
        Err(AccountError::InvalidToken) => {
            c.error = Some(a.invitation_invalid);
            (StatusCode::BAD_REQUEST, None)
        }
        Err(AccountError::Suspended) => {
            c.error = Some(c.t.suspended);
            (StatusCode::FORBIDDEN, None)
        }
        Err(e) => return Err(Fail::from_account(e)),
    };
    if let Some(e) = error {
        c.error = Some(e(a));
    }
    let page = InvitationPage {
        c,
        a,
        invitation,
        token: token.to_owned(),
        name: name.to_owned(),
    };
    Ok(Reply::html(status, &page)?.with_cookie(cookie))
}

async fn accept_invitation(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let s = &console.services;
    let form = checked_form(console, req)?;
    let token = token_of(Some(form.get("token")));
    let name = form.get("name");
    let password = match new_password(&form) {
        Ok(p) => p,
        Err(message) => {
            let found = s.accounts.invitation(&token).await;
            return invitation_reply(console, lang, &token, found, Some(message), name);
        }
    };
    match s
        .accounts
        .accept_invitation_named(&token, &password, name)
        .await
    {
        Ok(signed) => {
            tracing::info!(tenant = %signed.tenant_id, user = %signed.user.id, "invitation accepted in the console");
            Ok(web::signed_in(s.secure_cookies, &signed))
        }
        Err(AccountError::Invalid(_)) => {
            let found = s.accounts.invitation(&token).await;
            invitation_reply(console, lang, &token, found, Some(|a| a.name_invalid), name)
        }
        Err(AccountError::Conflict(_)) => {
            // The address got a user meanwhile: the invitation cannot be used.
            let a = AccountText::of(lang);
            let (mut c, cookie) = chrome(console, lang)?;
            c.error = Some(a.email_taken);
            let page = InvitationPage {
                c,
                a,
                invitation: None,
                token: String::new(),
                name: String::new(),
            };
            Ok(Reply::html(StatusCode::CONFLICT, &page)?.with_cookie(cookie))
        }
        Err(e @ (AccountError::InvalidToken | AccountError::Suspended)) => {
            tracing::info!(reason = %e, "console invitation refused");
            invitation_reply(console, lang, "", Err(e), None, "")
        }
        Err(e) => Err(Fail::from_account(e)),
    }
}

fn reset_request_form(
    console: &Console,
    lang: Lang,
    status: StatusCode,
    sent: bool,
    error: Option<fn(&AccountText) -> &'static str>,
    account_id: &str,
    email: &str,
) -> Result<Reply, Fail> {
    let a = AccountText::of(lang);
    let (mut c, cookie) = chrome(console, lang)?;
    c.notice = sent.then_some(a.reset_sent);
    c.error = error.map(|e| e(a));
    let page = ResetRequestPage {
        c,
        a,
        account_id: account_id.to_owned(),
        email: email.to_owned(),
    };
    Ok(Reply::html(status, &page)?.with_cookie(cookie))
}

async fn request_reset(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let form = checked_form(console, req)?;
    let (account_id, email) = (form.get("account_id").trim(), form.get("email").trim());
    let source = web::source_ip(req);
    match console
        .services
        .accounts
        .request_password_reset(account_id, email, source.as_deref())
        .await
    {
        // The same answer whether or not the account and address exist.
        Ok(()) => Ok(Reply::redirect(format!("{RESET_REQUEST_PATH}?done=sent"))),
        Err(AccountError::Invalid(_)) => reset_request_form(
            console,
            lang,
            StatusCode::BAD_REQUEST,
            false,
            Some(|a| a.email_invalid),
            account_id,
            email,
        ),
        Err(AccountError::Throttled { .. }) => reset_request_form(
            console,
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            false,
            Some(|a| a.throttled),
            account_id,
            email,
        ),
        Err(AccountError::MailNotConfigured) => Err(Fail::unavailable()),
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// The reset link's page: the form while the link works, else why not (and a way to ask
/// again).
fn reset_reply(
    console: &Console,
    lang: Lang,
    token: &str,
    status: StatusCode,
    error: Option<fn(&AccountText) -> &'static str>,
) -> Result<Reply, Fail> {
    let a = AccountText::of(lang);
    let (mut c, cookie) = chrome(console, lang)?;
    c.error = error.map(|e| e(a));
    let page = ResetConfirmPage {
        c,
        a,
        token: token.to_owned(),
    };
    Ok(Reply::html(status, &page)?.with_cookie(cookie))
}

/// A reset link that is forged, expired or used: why, and a way to ask again.
fn reset_link_invalid(console: &Console, lang: Lang) -> Result<Reply, Fail> {
    reset_reply(
        console,
        lang,
        "",
        StatusCode::BAD_REQUEST,
        Some(|a| a.reset_invalid),
    )
}

async fn reset_page(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let token = token_of(web::query(req, "token"));
    match console.services.accounts.check_password_reset(&token).await {
        Ok(()) => reset_reply(console, lang, &token, StatusCode::OK, None),
        Err(AccountError::InvalidToken) => reset_link_invalid(console, lang),
        Err(e) => Err(Fail::from_account(e)),
    }
}

async fn confirm_reset(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let s = &console.services;
    let form = checked_form(console, req)?;
    let token = token_of(Some(form.get("token")));
    // Checked before the link is used up: a too-short password leaves it working.
    let password = match new_password(&form) {
        Ok(p) => p,
        Err(message) => {
            return reset_reply(
                console,
                lang,
                &token,
                StatusCode::BAD_REQUEST,
                Some(message),
            )
        }
    };
    match s.accounts.confirm_password_reset(&token, &password).await {
        Ok(()) => {
            tracing::info!("password reset through the console");
            // Whatever session this browser had ended with the others.
            let mut reply = Reply::redirect("/app/sign-in?done=password_reset");
            reply.cookies = web::clear_session_cookies(s.secure_cookies);
            reply
                .cookies
                .push(web::clear_visitor_cookie(s.secure_cookies));
            Ok(reply)
        }
        Err(AccountError::InvalidToken) => reset_link_invalid(console, lang),
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// `GET /app/account/password`: the form.
pub(crate) fn change_page(
    ctx: &Ctx<'_>,
    status: StatusCode,
    error: Option<fn(&AccountText) -> &'static str>,
) -> Result<Reply, Fail> {
    let a = AccountText::of(ctx.lang);
    let mut c = ctx.chrome("/app/account/password");
    c.error = error.map(|e| e(a));
    Reply::html(status, &ChangePage { c, a })
}

/// `POST /app/account/password`: the current password, then the new one. Every session of
/// the user ends and this browser gets a new one; the user is mailed (decision 0047).
pub(crate) async fn change_password(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let form = ctx.form.as_ref().ok_or_else(Fail::csrf)?;
    let new = match new_password(form) {
        Ok(p) => p,
        Err(message) => return change_page(ctx, StatusCode::BAD_REQUEST, Some(message)),
    };
    let source = web::source_ip(ctx.req);
    match ctx
        .s
        .accounts
        .change_password_and_sign_in(&ctx.user, ctx.field("current"), &new, source.as_deref())
        .await
    {
        Ok(signed) => {
            tracing::info!(tenant = %ctx.user.tenant, user = %ctx.user.user, "password changed in the console");
            let mut reply = Reply::redirect("/app/account?done=password_changed");
            reply.cookies = web::session_cookies(ctx.s.secure_cookies, &signed);
            Ok(reply)
        }
        Err(AccountError::BadCredentials) => {
            change_page(ctx, StatusCode::BAD_REQUEST, Some(|a| a.wrong_current))
        }
        Err(AccountError::Throttled { .. }) => {
            change_page(ctx, StatusCode::TOO_MANY_REQUESTS, Some(|a| a.throttled))
        }
        Err(e) => Err(Fail::from_account(e)),
    }
}
