//! The console's public routes: its static files, the language switch, and sign-in.
//!
//! The sign-in form is protected against login forgery by a signed double-submit token: the
//! form's GET sets a random nonce cookie and puts `HMAC(nonce)` in the form; the POST must
//! carry both (decision 0039). Sign-in itself is the accounts service's, with its throttle.

use askama::Template;
use lambda_http::http::{Method, StatusCode};
use lambda_http::Request;
use wappline::accounts::{AccountError, FormBinding};

use crate::i18n::Lang;
use crate::web::{self, Chrome, Fail, Form, Reply};
use crate::Console;

const CSS: &str = include_str!("../static/console.css");
const JS: &str = include_str!("../static/console.js");
/// The connect flows' script (the channels page only; decision 0046).
const CONNECT_JS: &str = include_str!("../static/connect.js");
/// The nonce cookie of the sign-in form lives as long as a page is reasonably left open.
const VISITOR_MAX_AGE: i64 = 2 * 3600;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    c: Chrome,
    /// The "Forgot your password?" link (decision 0073).
    a: &'static crate::account_text::AccountText,
    account_id: String,
    email: String,
}

/// Serves a public route, or `None` when the path is not one.
pub(crate) async fn public(
    console: &Console,
    req: &Request,
    lang: Lang,
) -> Option<Result<Reply, Fail>> {
    let path = req.uri().path();
    let get = req.method() == Method::GET;
    Some(match path {
        "/app/static/console.css" if get => Ok(Reply::asset("text/css; charset=utf-8", CSS)),
        "/app/static/console.js" if get => Ok(Reply::asset("text/javascript; charset=utf-8", JS)),
        "/app/static/connect.js" if get => {
            Ok(Reply::asset("text/javascript; charset=utf-8", CONNECT_JS))
        }
        "/app/lang/en" | "/app/lang/ru" if get => Ok(switch_language(console, req, path)),
        "/app/sign-in" if get => form(console, req, lang, StatusCode::OK, None, "", ""),
        "/app/sign-in" if req.method() == Method::POST => sign_in(console, req, lang).await,
        "/app/sign-in" | "/app/lang/en" | "/app/lang/ru" => Err(Fail::method_not_allowed()),
        p if p.starts_with("/app/static/") => Err(Fail::not_found()),
        _ => return None,
    })
}

/// Sets the preference cookie and goes back to the page (only console paths).
fn switch_language(console: &Console, req: &Request, path: &str) -> Reply {
    let lang = Lang::parse(&path["/app/lang/".len()..]).unwrap_or(Lang::En);
    let next = web::query(req, "next")
        .filter(|n| {
            n.starts_with("/app/")
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'/' || b == b'-')
        })
        .unwrap_or("/app/channels");
    Reply::redirect(next).with_cookie(web::lang_cookie(console.services.secure_cookies, lang))
}

/// The sign-in form, with a fresh nonce cookie and its token.
fn form(
    console: &Console,
    req: &Request,
    lang: Lang,
    status: StatusCode,
    error: Option<fn(&crate::i18n::Text) -> &'static str>,
    account_id: &str,
    email: &str,
) -> Result<Reply, Fail> {
    let mut nonce = [0u8; 16];
    wappline::crypto::random_bytes(&mut nonce).map_err(|e| Fail::log("random nonce", e))?;
    let nonce = hex::encode(nonce);
    let mut c = Chrome::public(lang, "/app/sign-in");
    c.t = lang.text();
    c.csrf = console
        .services
        .accounts
        .form_token(&FormBinding::Visitor(&nonce));
    c.error = error.map(|e| e(c.t));
    c.notice = web::query(req, "done").and_then(|d| crate::pages::notice(c.t, d));
    let page = SignInPage {
        c,
        a: crate::account_text::AccountText::of(lang),
        account_id: account_id.to_owned(),
        email: email.to_owned(),
    };
    Ok(Reply::html(status, &page)?.with_cookie(web::set_cookie(
        console.services.secure_cookies,
        web::VISITOR_COOKIE,
        &nonce,
        VISITOR_MAX_AGE,
    )))
}

async fn sign_in(console: &Console, req: &Request, lang: Lang) -> Result<Reply, Fail> {
    let s = &console.services;
    let f = Form::parse(req.body().as_ref())?;
    let nonce = web::cookie(req, web::VISITOR_COOKIE).unwrap_or_default();
    if nonce.is_empty()
        || !s
            .accounts
            .verify_form_token(&FormBinding::Visitor(nonce), f.get("csrf"))
    {
        tracing::warn!("console sign-in without a valid anti-forgery token");
        return Err(Fail::csrf());
    }
    let source = web::source_ip(req);
    let (account_id, email) = (f.get("account_id").trim(), f.get("email").trim());
    match s
        .accounts
        .sign_in_from(
            account_id,
            email,
            f.get("password"),
            wappline::accounts::SignInDevice {
                source: source.as_deref(),
                user_agent: req
                    .headers()
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok()),
            },
        )
        .await
    {
        Ok(signed) => {
            tracing::info!(tenant = %signed.tenant_id, user = %signed.user.id, "signed in to the console");
            Ok(web::signed_in(s.secure_cookies, &signed))
        }
        Err(e) => {
            tracing::info!(reason = %e, "console sign-in refused");
            let (status, message): (StatusCode, fn(&crate::i18n::Text) -> &'static str) = match e {
                AccountError::BadCredentials | AccountError::Invalid(_) => {
                    (StatusCode::UNAUTHORIZED, |t| t.bad_credentials)
                }
                AccountError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, |t| t.throttled),
                AccountError::Suspended => (StatusCode::FORBIDDEN, |t| t.suspended),
                other => return Err(Fail::from_account(other)),
            };
            form(console, req, lang, status, Some(message), account_id, email)
        }
    }
}

/// `POST /app/sign-out`: the session ends (its refresh token too), the cookies go.
pub(crate) async fn sign_out(ctx: &crate::web::Ctx<'_>) -> Result<Reply, Fail> {
    ctx.s
        .accounts
        .sign_out(&ctx.user)
        .await
        .map_err(Fail::from_account)?;
    tracing::info!(tenant = %ctx.user.tenant, user = %ctx.user.user, "signed out of the console");
    let mut reply = Reply::redirect("/app/sign-in?done=signed_out");
    reply.cookies = web::clear_session_cookies(ctx.s.secure_cookies);
    Ok(reply)
}
