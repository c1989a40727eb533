//! What every console page shares: the answer ([`Reply`]) with its security headers and
//! cookies, refusals ([`Fail`]), form bodies, the session cookies, the language, and the
//! chrome every page template renders ([`Chrome`]).

use askama::Template;
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use wappline::accounts::{AccountError, FormBinding, Permission, Role, UserPrincipal};
use wappline::edge::ApiError;
use wappline::tenant::{TenantError, TenantScope};

use crate::i18n::{Lang, Text};
use crate::{Action, ConsoleServices};

/// Only our own origin, no inline script or style, no framing: no third party can run or
/// load anything on a console page.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) const SESSION_COOKIE: &str = "wappline_session";
pub(crate) const REFRESH_COOKIE: &str = "wappline_refresh";
pub(crate) const VISITOR_COOKIE: &str = "wappline_visitor";
pub(crate) const LANG_COOKIE: &str = "wappline_lang";
/// The language preference is kept a year.
const LANG_MAX_AGE: i64 = 365 * 86_400;

/// A console answer before it becomes a response.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub location: Option<String>,
    /// `Set-Cookie` values.
    pub cookies: Vec<String>,
    /// Static files may be cached; pages never are (they show account data).
    pub cacheable: bool,
    /// This page's policy when it differs from [`CSP`] (the channels page, which loads
    /// Meta's SDK: decision 0046).
    pub csp: Option<String>,
}

impl Reply {
    pub fn html(status: StatusCode, page: &impl Template) -> Result<Reply, Fail> {
        let body = page.render().map_err(|e| {
            tracing::error!(error = %e, "console template failed");
            Fail::internal()
        })?;
        Ok(Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            location: None,
            cookies: Vec::new(),
            cacheable: false,
            csp: None,
        })
    }

    /// 303 See Other: after a form, the browser gets the page (no re-post on reload).
    pub fn redirect(to: impl Into<String>) -> Reply {
        Reply {
            status: StatusCode::SEE_OTHER,
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
            location: Some(to.into()),
            cookies: Vec::new(),
            cacheable: false,
            csp: None,
        }
    }

    pub fn asset(content_type: &'static str, body: &'static str) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type,
            body: body.as_bytes().to_vec(),
            location: None,
            cookies: Vec::new(),
            cacheable: true,
            csp: None,
        }
    }

    pub fn with_csp(mut self, csp: Option<String>) -> Reply {
        self.csp = csp;
        self
    }

    pub fn with_cookie(mut self, cookie: String) -> Reply {
        self.cookies.push(cookie);
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let mut b = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, self.content_type)
            .header(
                "Content-Security-Policy",
                self.csp.as_deref().unwrap_or(CSP),
            )
            .header("X-Content-Type-Options", "nosniff")
            .header("X-Frame-Options", "DENY")
            .header("Referrer-Policy", "same-origin")
            .header(
                header::CACHE_CONTROL,
                if self.cacheable {
                    "public, max-age=3600"
                } else {
                    "no-store"
                },
            );
        if let Some(to) = &self.location {
            b = b.header(header::LOCATION, to.as_str());
        }
        let mut resp = b
            .body(Body::from(self.body))
            .expect("static response parts");
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        resp
    }
}

/// A refusal or failure: its status, a stable code (for JSON clients and logs) and the
/// sentence shown to the user in their language.
#[derive(Debug)]
pub(crate) struct Fail {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: fn(&Text) -> &'static str,
}

impl Fail {
    pub fn new(status: StatusCode, code: &'static str, message: fn(&Text) -> &'static str) -> Self {
        Fail {
            status,
            code,
            message,
        }
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", |t| t.err_not_found)
    }
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", |t| {
            t.err_bad_request
        })
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", |t| t.err_csrf)
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", |t| t.err_forbidden)
    }
    pub fn csrf() -> Self {
        Self::new(StatusCode::FORBIDDEN, "invalid_form_token", |t| t.err_csrf)
    }
    pub fn bad_request(message: fn(&Text) -> &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", |t| {
            t.err_unavailable
        })
    }
    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", |t| {
            t.err_unavailable
        })
    }
    pub fn from_tenant(e: TenantError) -> Self {
        match e {
            TenantError::TenantNotFound | TenantError::ChannelNotFound(_) => Self::not_found(),
            TenantError::Invalid(_) => Self::bad_request(|t| t.err_bad_request),
            other => {
                tracing::error!(error = %other, "console: tenant operation failed");
                Self::unavailable()
            }
        }
    }
    pub fn from_account(e: AccountError) -> Self {
        match e {
            AccountError::InvalidToken => Self::unauthorized(),
            AccountError::Suspended => {
                Self::new(StatusCode::FORBIDDEN, "tenant_suspended", |t| t.suspended)
            }
            other => {
                tracing::error!(error = %other, "console: account operation failed");
                Self::unavailable()
            }
        }
    }
    /// Any other domain failure: logged, shown as unavailable.
    pub fn log(what: &'static str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "console: {what} failed");
        Self::unavailable()
    }
}

/// The error page, or the JSON error for a client that asks for JSON.
pub(crate) fn error_page(req: &Request, lang: Lang, f: Fail) -> Reply {
    let t = lang.text();
    let message = (f.message)(t);
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let resp = ApiError::new(f.status, f.code, message).into_response();
        let (parts, body) = resp.into_parts();
        return Reply {
            status: parts.status,
            content_type: "application/json",
            body: body.into_bytes(),
            location: None,
            cookies: Vec::new(),
            cacheable: false,
            csp: None,
        };
    }
    let page = ErrorPage {
        c: Chrome::public(lang, "/app/channels"),
        message,
    };
    Reply::html(f.status, &page).unwrap_or_else(|_| Reply {
        status: f.status,
        content_type: "text/plain; charset=utf-8",
        body: message.as_bytes().to_vec(),
        location: None,
        cookies: Vec::new(),
        cacheable: false,
        csp: None,
    })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    message: &'static str,
}

/// A posted form (`application/x-www-form-urlencoded`).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, Fail> {
        serde_urlencoded::from_bytes(body)
            .map(Form)
            .map_err(|_| Fail::bad_request(|t| t.err_bad_request))
    }

    /// A field's value; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// A query parameter's value.
pub(crate) fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A cookie's value.
pub(crate) fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value under `/app`. `max_age` 0 removes the cookie.
pub(crate) fn set_cookie(secure: bool, name: &str, value: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path=/app; Max-Age={}; HttpOnly; SameSite=Lax{}",
        max_age.max(0),
        if secure { "; Secure" } else { "" }
    )
}

pub(crate) fn lang_cookie(secure: bool, lang: Lang) -> String {
    set_cookie(secure, LANG_COOKIE, lang.code(), LANG_MAX_AGE)
}

/// The preference cookie, else the browser's first choice when it is Russian, else English.
pub(crate) fn lang_of(req: &Request) -> Lang {
    if let Some(lang) = cookie(req, LANG_COOKIE).and_then(Lang::parse) {
        return lang;
    }
    let first = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if first.starts_with("ru") {
        Lang::Ru
    } else {
        Lang::En
    }
}

/// The caller's address as API Gateway saw it (the local server fills the same field); the
/// sign-in throttle counts failures per address.
pub(crate) fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The session cookies of a sign-in or a refresh.
pub(crate) fn session_cookies(secure: bool, s: &wappline::accounts::SignedIn) -> Vec<String> {
    let max_age = s.session_expires_at - wappline::clock::now_secs();
    vec![
        set_cookie(secure, SESSION_COOKIE, &s.access_token, max_age),
        set_cookie(secure, REFRESH_COOKIE, &s.refresh_token, max_age),
    ]
}

/// The reply to a successful sign-in, from the form or by accepting an invitation: on to the
/// channels with the session cookies; the visitor nonce has done its job and is cleared.
pub(crate) fn signed_in(secure: bool, s: &wappline::accounts::SignedIn) -> Reply {
    let mut reply = Reply::redirect("/app/channels");
    reply.cookies = session_cookies(secure, s);
    reply.cookies.push(clear_visitor_cookie(secure));
    reply
}

/// Clears the visitor nonce of the public forms once it is used.
pub(crate) fn clear_visitor_cookie(secure: bool) -> String {
    set_cookie(secure, VISITOR_COOKIE, "", 0)
}

pub(crate) fn clear_session_cookies(secure: bool) -> Vec<String> {
    vec![
        set_cookie(secure, SESSION_COOKIE, "", 0),
        set_cookie(secure, REFRESH_COOKIE, "", 0),
    ]
}

/// The signed-in user from the session cookie, checked against the live session (so signing
/// out or a password change takes effect at once). An access token that ran out is renewed
/// with the refresh cookie; the new cookies are returned to be set. `None`: not signed in.
pub(crate) async fn authenticate(
    s: &ConsoleServices,
    req: &Request,
) -> Result<Option<(UserPrincipal, Vec<String>)>, Fail> {
    if let Some(access) = cookie(req, SESSION_COOKIE) {
        match s.accounts.authenticate(access).await {
            Ok(p) => return Ok(Some((p, Vec::new()))),
            Err(AccountError::InvalidToken) => {}
            Err(e) => return Err(Fail::from_account(e)),
        }
    }
    let Some(refresh) = cookie(req, REFRESH_COOKIE) else {
        return Ok(None);
    };
    let renewed = match s.accounts.refresh(refresh).await {
        Ok(r) => r,
        Err(AccountError::InvalidToken) => return Ok(None),
        Err(e) => return Err(Fail::from_account(e)),
    };
    match s.accounts.authenticate(&renewed.access_token).await {
        Ok(p) => Ok(Some((p, session_cookies(s.secure_cookies, &renewed)))),
        Err(AccountError::InvalidToken) => Ok(None),
        Err(e) => Err(Fail::from_account(e)),
    }
}

/// A date and time for people: `2026-12-04 15:49 UTC`.
pub(crate) fn when(secs: i64) -> String {
    let iso = wappline::clock::rfc3339(secs);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// One link of the navigation.
pub(crate) struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The signed-in user as the header shows them.
pub(crate) struct Who {
    pub email: String,
    pub role: &'static str,
}

/// What the layout renders around every page.
pub(crate) struct Chrome {
    pub t: &'static Text,
    pub lang: &'static str,
    /// This page's path, for the language links to come back to.
    pub path: &'static str,
    pub user: Option<Who>,
    pub nav: Vec<NavItem>,
    /// The anti-forgery token every form of the page carries.
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
    /// The privacy-policy version the user has yet to acknowledge (decision 0047).
    pub policy: Option<String>,
}

impl Chrome {
    pub fn public(lang: Lang, path: &'static str) -> Chrome {
        Chrome {
            t: lang.text(),
            lang: lang.code(),
            path,
            user: None,
            nav: Vec::new(),
            csrf: String::new(),
            notice: None,
            error: None,
            policy: None,
        }
    }
}

pub(crate) fn role_name(t: &Text, role: Role) -> &'static str {
    match role {
        Role::Owner => t.role_owner,
        Role::Admin => t.role_admin,
        Role::Agent => t.role_agent,
        Role::Viewer => t.role_viewer,
    }
}

/// A signed-in request as a page handler sees it.
pub(crate) struct Ctx<'a> {
    pub s: &'a ConsoleServices,
    pub req: &'a Request,
    pub lang: Lang,
    pub t: &'static Text,
    pub user: UserPrincipal,
    pub form: Option<Form>,
    pub scope: TenantScope,
    pub email: String,
    /// The user's own display name (empty when none).
    pub name: String,
    /// The privacy-policy version to acknowledge, when the user has not (decision 0047).
    policy: Option<String>,
    /// The privacy-policy version the user last acknowledged, if any.
    pub policy_seen: Option<String>,
    pub action: Action,
}

impl<'a> Ctx<'a> {
    pub async fn new(
        s: &'a ConsoleServices,
        req: &'a Request,
        lang: Lang,
        user: UserPrincipal,
        form: Option<Form>,
        action: Action,
    ) -> Result<Ctx<'a>, Fail> {
        let scope = s
            .tenants
            .scope(&user.tenant)
            .await
            .map_err(Fail::from_tenant)?
            .ok_or_else(Fail::not_found)?;
        let me = s
            .accounts
            .user(&user.tenant, &user.user)
            .await
            .map_err(Fail::from_account)?;
        let email = me
            .as_ref()
            .map(|u| u.email.as_str().to_owned())
            .unwrap_or_default();
        let name = me.as_ref().and_then(|u| u.name.clone()).unwrap_or_default();
        // Shown on every page until acknowledged: the next sign-in after a change sees it.
        let policy = s.accounts.config().policy_version.clone().filter(|v| {
            me.as_ref()
                .is_some_and(|u| u.policy_seen.as_ref() != Some(v))
        });
        Ok(Ctx {
            s,
            req,
            lang,
            t: lang.text(),
            user,
            form,
            scope,
            email,
            name,
            policy,
            policy_seen: me.and_then(|u| u.policy_seen),
            action,
        })
    }

    pub fn may(&self, p: Permission) -> bool {
        self.user.role.allows(p)
    }

    pub fn actor(&self) -> String {
        format!("user:{}", self.user.user)
    }

    pub fn field(&self, name: &str) -> &str {
        self.form.as_ref().map(|f| f.get(name)).unwrap_or_default()
    }

    /// The chrome of a page at `path`, with the notice named by `?done=` if any.
    pub fn chrome(&self, path: &'static str) -> Chrome {
        use Action::*;
        let t = self.t;
        use Permission as P;
        let items: [(&'static str, &'static str, P, Action); 10] = [
            ("/app/channels", t.nav_channels, P::ReadSettings, Channels),
            (
                "/app/retention",
                t.nav_retention,
                P::ReadSettings,
                Retention,
            ),
            ("/app/exports", t.nav_exports, P::Export, Exports),
            ("/app/erasure", t.nav_erasure, P::EraseContact, Erasure),
            ("/app/bitrix24", t.nav_bitrix24, P::ReadSettings, Bitrix24),
            ("/app/users", t.nav_users, P::ManageUsers, Users),
            ("/app/api-keys", t.nav_api_keys, P::ManageApiKeys, ApiKeys),
            ("/app/usage", t.nav_usage, P::ReadUsage, Usage),
            ("/app/audit", t.nav_audit, P::ReadAudit, Audit),
            ("/app/account", t.nav_account, P::ReadSettings, Account),
        ];
        let nav = items
            .into_iter()
            .filter(|(_, _, p, _)| self.may(*p))
            .map(|(href, label, _, on)| NavItem {
                href,
                label,
                current: on == self.action,
            })
            .collect();
        Chrome {
            t,
            lang: self.lang.code(),
            path,
            user: Some(Who {
                email: self.email.clone(),
                role: role_name(t, self.user.role),
            }),
            nav,
            csrf: self
                .s
                .accounts
                .form_token(&FormBinding::Session(&self.user)),
            notice: query(self.req, "done").and_then(|d| crate::pages::notice(t, d)),
            error: None,
            policy: self.policy.clone(),
        }
    }
}
