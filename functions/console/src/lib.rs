//! console: the tenant web console under `/app`, for owners, admins, agents and viewers who
//! sign in with email and password. Pages are server-rendered askama templates (checked when
//! the crate compiles, every value escaped); one small script of ours asks before destructive
//! forms and refreshes a page while an export runs. Decision 0039 records the choices.
//!
//! It calls the same services the admin API calls, with the same permissions (`Permission`,
//! `Role::allows`): viewers see, admins change, owners delete the account. The tenant is
//! always the signed-in user's own; no route names a tenant.
//!
//! A request is answered in this order:
//! 1. a body over [`MAX_BODY_BYTES`]: 413;
//! 2. public routes (static files, language, sign-in): served;
//! 3. an unknown path or method: 404 / 405;
//! 4. the session cookie (renewed with the refresh cookie when its access token ran out): a
//!    page without one redirects to sign-in, a form post is 401;
//! 5. a form post without the session's anti-forgery token: 403, nothing changes;
//! 6. a role without the route's permission, or a suspended tenant: 403;
//! 7. the page or the change.
//!
//! Steps 6 and 7 act for the session's tenant (`acting_for`, decision 0037): the ports
//! refuse any key outside its partitions and, on AWS, sign with its session of the
//! tenant-data role. Sign-in, the session check and the email-change link run before a
//! tenant is authenticated and keep the function's role (decision 0039 lists them).
//!
//! Cookies: the session (access and refresh token, HttpOnly, SameSite=Lax, `Secure` when the
//! console is served over https, path `/app`), the sign-in form's nonce, and the language
//! preference. Nothing else is stored in the browser.

mod account_pages;
mod account_text;
mod bitrix;
mod connect;
mod i18n;
mod lines;
mod pages;
mod profile;
mod sign_in;
mod team;
mod usage;
mod web;
mod wiring;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use wappline::accounts::{Accounts, Permission, UserPrincipal};
use wappline::acting::acting_for;
use wappline::api_keys::ApiKeys;
use wappline::audit::AuditLog;
use wappline::bitrix::EndpointUrl;
use wappline::erasure::tenant::TenantErasure;
use wappline::erasure::ContactErasure;
use wappline::export::ExportRequests;
use wappline::portal::install::ConnectionCodes;
use wappline::revocation::Revocations;
use wappline::tenant::{TenantDirectory, TenantStatus};
use wappline::usage::Usage;

pub use connect::ConsoleOnboarding;
pub use i18n::Lang;
use web::{Ctx, Fail, Reply};

/// Where the console is served.
pub const PREFIX: &str = "/app";
/// Largest request body accepted (forms are small).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything the console works with.
pub struct ConsoleServices {
    pub tenants: TenantDirectory,
    pub accounts: Accounts,
    pub api_keys: ApiKeys,
    pub usage: Usage,
    /// Connection codes are kept in the first; install URLs start with the second.
    pub bitrix_codes: (ConnectionCodes, EndpointUrl),
    /// The entries of the changes made on the users and API-keys pages (the other services
    /// write their own).
    pub audit: AuditLog,
    /// Disconnecting revokes our access at the provider (decision 0036).
    pub revocations: Revocations,
    pub exports: ExportRequests,
    pub contacts: ContactErasure,
    pub tenant_erasure: TenantErasure,
    /// Connecting WhatsApp (Embedded Signup) and Instagram (Instagram Login): decision 0046.
    pub onboarding: ConsoleOnboarding,
    /// Attaching channels to the portal's Open Lines (decision 0072); `None` without a
    /// Bitrix24 application.
    pub open_lines: Option<wappline::portal::line_change::OpenLines>,
    /// `Secure` on cookies: the console is served over https.
    pub secure_cookies: bool,
}

pub struct Console {
    services: ConsoleServices,
}

/// What a request asks for. Each signed-in action names the one permission it needs, the
/// same one the admin API's matching route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Home,
    Channels,
    Disconnect,
    Retention,
    SetRetention,
    Exports,
    RequestExport,
    DownloadExport,
    Erasure,
    EraseContact,
    Account,
    DeleteAccount,
    CancelDeletion,
    SignOut,
    Users,
    Invite,
    SetRole,
    RemoveUser,
    WithdrawInvitation,
    ApiKeys,
    CreateApiKey,
    RevokeApiKey,
    Audit,
    Usage,
    Bitrix24,
    IssueConnectionCode,
    Rename,
    ConnectWhatsApp,
    StartInstagram,
    InstagramCallback,
    SetDisplayName,
    RequestEmailChange,
    AcknowledgePolicy,
    SetHistoryImport,
    PasswordPage,
    ChangePassword,
    AttachLine,
    DetachLine,
}

impl Action {
    fn of(method: &Method, path: &str) -> Result<Action, Fail> {
        use Action::*;
        let get = method == Method::GET;
        let post = method == Method::POST;
        let (on_get, on_post) = match path.strip_prefix(PREFIX).unwrap_or(path) {
            "" | "/" => (Some(Home), None),
            "/channels" => (Some(Channels), None),
            "/channels/disconnect" => (None, Some(Disconnect)),
            "/channels/history" => (None, Some(SetHistoryImport)),
            "/retention" => (Some(Retention), Some(SetRetention)),
            "/exports" => (Some(Exports), Some(RequestExport)),
            "/exports/download" => (Some(DownloadExport), None),
            "/erasure" => (Some(Erasure), Some(EraseContact)),
            "/account" => (Some(Account), None),
            "/account/deletion" => (None, Some(DeleteAccount)),
            "/account/name" => (None, Some(Rename)),
            "/account/profile" => (None, Some(SetDisplayName)),
            "/account/email" => (None, Some(RequestEmailChange)),
            "/account/password" => (Some(PasswordPage), Some(ChangePassword)),
            "/policy/acknowledge" => (None, Some(AcknowledgePolicy)),
            "/account/deletion/cancel" => (None, Some(CancelDeletion)),
            "/sign-out" => (None, Some(SignOut)),
            "/users" => (Some(Users), None),
            "/users/invite" => (None, Some(Invite)),
            "/users/role" => (None, Some(SetRole)),
            "/users/remove" => (None, Some(RemoveUser)),
            "/users/withdraw" => (None, Some(WithdrawInvitation)),
            "/api-keys" => (Some(ApiKeys), Some(CreateApiKey)),
            "/api-keys/revoke" => (None, Some(RevokeApiKey)),
            "/audit" => (Some(Audit), None),
            "/usage" => (Some(Usage), None),
            "/bitrix24" => (Some(Bitrix24), Some(IssueConnectionCode)),
            "/bitrix24/lines/attach" => (None, Some(AttachLine)),
            "/bitrix24/lines/detach" => (None, Some(DetachLine)),
            "/onboarding/whatsapp" => (None, Some(ConnectWhatsApp)),
            "/onboarding/instagram" => (None, Some(StartInstagram)),
            "/onboarding/instagram/callback" => (Some(InstagramCallback), None),
            _ => return Err(Fail::not_found()),
        };
        match (get, post, on_get, on_post) {
            (true, _, Some(a), _) | (_, true, _, Some(a)) => Ok(a),
            _ => Err(Fail::method_not_allowed()),
        }
    }

    /// The permission the caller's role must have; `None`: any signed-in user.
    pub(crate) fn need(self) -> Option<Permission> {
        use Action::*;
        match self {
            // One's own data: every signed-in user may correct it (decision 0047).
            Home | SignOut | SetDisplayName | RequestEmailChange | AcknowledgePolicy => None,
            // One's own password (decision 0073).
            PasswordPage | ChangePassword => None,
            Channels | Retention | Account => Some(Permission::ReadSettings),
            Disconnect | SetHistoryImport => Some(Permission::ManageChannels),
            Rename => Some(Permission::ChangeSettings),
            SetRetention => Some(Permission::ChangeSettings),
            Exports | RequestExport | DownloadExport => Some(Permission::Export),
            Erasure | EraseContact => Some(Permission::EraseContact),
            DeleteAccount | CancelDeletion => Some(Permission::EraseAccount),
            Users | Invite | SetRole | RemoveUser | WithdrawInvitation => {
                Some(Permission::ManageUsers)
            }
            ApiKeys | CreateApiKey | RevokeApiKey => Some(Permission::ManageApiKeys),
            Audit => Some(Permission::ReadAudit),
            Usage => Some(Permission::ReadUsage),
            Bitrix24 => Some(Permission::ReadSettings),
            IssueConnectionCode => Some(Permission::ManageChannels),
            // The settings page inside the portal needs a portal admin; here, the same
            // permission as disconnecting.
            AttachLine | DetachLine => Some(Permission::ManageChannels),
            // The admin API's `/onboarding/...` routes need the same.
            ConnectWhatsApp | StartInstagram | InstagramCallback => {
                Some(Permission::ManageChannels)
            }
        }
    }
}

impl Console {
    pub fn new(services: ConsoleServices) -> Self {
        Console { services }
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let lang = web::lang_of(&req);
        let reply = match self.route(&req, lang).await {
            Ok(r) => r,
            Err(f) => {
                if f.status.is_server_error() {
                    tracing::error!(
                        path = req.uri().path(),
                        status = f.status.as_u16(),
                        code = f.code,
                        "console request failed"
                    );
                } else {
                    tracing::info!(
                        path = req.uri().path(),
                        status = f.status.as_u16(),
                        code = f.code,
                        "console request refused"
                    );
                }
                web::error_page(&req, lang, f)
            }
        };
        reply.into_response()
    }

    async fn route(&self, req: &Request, lang: Lang) -> Result<Reply, Fail> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(Fail::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                |t| t.err_bad_request,
            ));
        }
        let path = req.uri().path();
        let method = req.method();
        if let Some(public) = sign_in::public(self, req, lang).await {
            return public;
        }
        if let Some(public) = profile::public(self, req, lang).await {
            return public;
        }
        if let Some(public) = account_pages::public(self, req, lang).await {
            return public;
        }
        let action = Action::of(method, path)?;
        let (principal, renewed) = match web::authenticate(&self.services, req).await? {
            Some(found) => found,
            None if method == Method::GET => return Ok(Reply::redirect("/app/sign-in")),
            None => return Err(Fail::unauthorized()),
        };
        let form = if method == Method::POST {
            let form = web::Form::parse(body)?;
            // Before anything else: a forged post learns nothing, changes nothing.
            if !self.services.accounts.verify_form_token(
                &wappline::accounts::FormBinding::Session(&principal),
                form.get("csrf"),
            ) {
                tracing::warn!(tenant = %principal.tenant, user = %principal.user, "console form without a valid anti-forgery token");
                return Err(Fail::csrf());
            }
            Some(form)
        } else {
            None
        };
        // From here on the work is the session's tenant's and only its, as on the admin API's
        // tenant routes: the ports refuse a key of another tenant and, on AWS, sign with this
        // tenant's session of the tenant-data role (decision 0037). What came before (the
        // session check, the form token) and the public routes keep the function's role.
        // A password change checks a password: its failures count on the sign-in throttle,
        // which like sign-in's stays on the function's role.
        let tenant = principal.tenant.clone();
        let work = async {
            self.authorize(&principal, action).await?;
            let ctx = Ctx::new(&self.services, req, lang, principal, form, action).await?;
            pages::serve(&ctx, action).await
        };
        let mut reply = if action == Action::ChangePassword {
            work.await?
        } else {
            acting_for(&tenant, work).await?
        };
        // A page that set the session itself (a password change opens a new one, sign-out
        // clears it) keeps its own: the renewed one belongs to the session it replaced.
        let sets_session = reply
            .cookies
            .iter()
            .any(|c| c.starts_with(&format!("{}=", web::SESSION_COOKIE)));
        if !sets_session {
            reply.cookies.extend(renewed);
        }
        Ok(reply)
    }

    /// The role's permission (the admin API's matrix), and a tenant that is not suspended.
    async fn authorize(&self, user: &UserPrincipal, action: Action) -> Result<(), Fail> {
        let Some(permission) = action.need() else {
            return Ok(());
        };
        if !user.role.allows(permission) {
            return Err(Fail::forbidden());
        }
        let profile = self
            .services
            .tenants
            .profile(&user.tenant)
            .await
            .map_err(Fail::from_tenant)?
            .ok_or_else(Fail::not_found)?;
        if profile.status == TenantStatus::Suspended {
            return Err(Fail::new(StatusCode::FORBIDDEN, "tenant_suspended", |t| {
                t.suspended
            }));
        }
        Ok(())
    }
}
