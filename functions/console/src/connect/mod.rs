//! Connecting a channel from the console (issue 14, items 1 and 2; decisions 0040, 0046).
//!
//! - **WhatsApp**: the channels page loads Meta's JavaScript SDK (only that page, only from
//!   the configured SDK origin) and our `static/connect.js`, which launches Embedded Signup
//!   v4 (`FB.login` with the `config_id`), listens for the `WA_EMBEDDED_SIGNUP` session-info
//!   message from the configured Facebook origins only, and submits what it got as a form
//!   with the session's anti-forgery token to `POST /app/onboarding/whatsapp`. That calls the
//!   same flow the admin API's `/onboarding/whatsapp` calls ([`EmbeddedSignup::complete`]),
//!   for the session's tenant, and answers a page with each step's outcome.
//! - **Instagram**: `POST /app/onboarding/instagram` sends the browser to Instagram's
//!   authorization window with a signed state bound to this tenant and user; Instagram sends
//!   it back to `GET /app/onboarding/instagram/callback?code&state`, which completes the flow
//!   ([`InstagramLogin::complete`]) and answers the same kind of page.
//!
//! The flows' own sentences are English; the page says each outcome and step in the user's
//! language, keyed on the flows' stable step names and failure kinds, and shows the flow's
//! sentence as the detail.

pub(crate) mod text;

use askama::Template;
use lambda_http::http::{StatusCode, Uri};
use wappline::clock::now_secs;
use wappline::onboarding::report::{self, StepStatus};
use wappline::onboarding::{
    Connected, EmbeddedSignup, Failure, FailureKind, InstagramLogin, PageSettings, SignupForm,
    SignupOutcome,
};

use crate::web::{self, Chrome, Ctx, Fail, Reply};
use text::ConnectText;

/// The connect flows and what the channels page needs to launch them (nothing secret).
pub struct ConsoleOnboarding {
    pub signup: EmbeddedSignup,
    pub instagram: InstagramLogin,
    pub page: PageSettings,
    /// Where Embedded Signup's session-info messages may come from.
    pub login_origins: Vec<String>,
    /// `FB.init`'s `version`: the Graph API version our client calls.
    pub graph_version: String,
    /// Instagram's authorization window (the channels page's form is sent there).
    pub authorize_url: String,
}

/// What `FB.init` and `FB.login` are called with.
pub(crate) struct Launch {
    pub app_id: String,
    pub config_id: String,
    pub sdk_url: String,
    pub version: String,
    /// Space-separated origins the page's listener accepts.
    pub origins: String,
}

/// The channels page's connect section.
pub(crate) struct ConnectSection {
    pub ct: &'static ConnectText,
    pub whatsapp: Option<Launch>,
    pub instagram: bool,
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

impl ConsoleOnboarding {
    fn launch(&self) -> Option<Launch> {
        Some(Launch {
            app_id: self.page.meta_app_id.clone()?,
            config_id: self.page.es_config_id.clone()?,
            sdk_url: self.page.sdk_url.clone(),
            version: self.graph_version.clone(),
            origins: self.login_origins.join(" "),
        })
    }

    /// The channels page's section for a user who may connect channels, and that page's
    /// policy: the console's own, plus exactly the SDK's origin for scripts, the Facebook
    /// origins for the SDK's frames and requests, and Instagram's authorization window as a
    /// form target. Each is added only when its flow is configured.
    pub(crate) fn section(&self, ct: &'static ConnectText) -> (ConnectSection, Option<String>) {
        let whatsapp = self.launch();
        let instagram = self.page.instagram_login;
        let sdk = whatsapp.as_ref().and_then(|l| origin_of(&l.sdk_url));
        let authorize = origin_of(&self.authorize_url).filter(|_| instagram);
        let csp = (sdk.is_some() || authorize.is_some()).then(|| {
            let meta = match &sdk {
                Some(sdk) => {
                    let fb = self.login_origins.join(" ");
                    format!("script-src 'self' {sdk}; connect-src 'self' {fb}; frame-src {fb}")
                }
                None => "script-src 'self'".to_owned(),
            };
            let form = authorize.map_or_else(String::new, |a| format!(" {a}"));
            format!("default-src 'self'; {meta}; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'{form}; frame-ancestors 'none'")
        });
        (
            ConnectSection {
                ct,
                whatsapp,
                instagram,
            },
            csp,
        )
    }
}

// ---- The result page -------------------------------------------------------------------

struct StepLine {
    code: &'static str,
    label: &'static str,
    status_code: &'static str,
    status: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "connect_result.html")]
struct ResultPage {
    c: Chrome,
    ct: &'static ConnectText,
    title: &'static str,
    /// `connected`, `cancelled` or `failed`.
    outcome: &'static str,
    headline: &'static str,
    /// The channel connected: kind, id and name.
    channel: Option<String>,
    /// The flow's sentence (English), or where the user left the sign-up.
    detail: Option<String>,
    steps: Vec<StepLine>,
}

enum Outcome {
    Connected(Box<Connected>),
    Cancelled(Option<String>),
    Denied,
    Failed(Failure),
}

#[derive(Clone, Copy)]
enum Flow {
    WhatsApp,
    Instagram,
}

fn step_label(ct: &ConnectText, step: &str) -> &'static str {
    match step {
        report::EXCHANGE => ct.step_exchange,
        report::LONG_LIVED => ct.step_long_lived,
        report::VERIFY => ct.step_verify,
        report::CLAIM => ct.step_claim,
        report::RECORD_EXPIRY => ct.step_expiry,
        report::SUBSCRIBE => ct.step_subscribe,
        report::REGISTER => ct.step_register,
        _ => ct.step_roll_back,
    }
}

fn failure_headline(ct: &ConnectText, kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Invalid => ct.f_invalid,
        FailureKind::StateRejected => ct.f_state,
        FailureKind::CodeRejected => ct.f_code,
        FailureKind::SignupError => ct.f_signup,
        FailureKind::NotProven => ct.f_not_proven,
        FailureKind::CannotConnect => ct.f_cannot_connect,
        FailureKind::StepFailed => ct.f_step_failed,
        FailureKind::Unavailable => ct.f_unavailable,
        FailureKind::ProviderError => ct.f_provider,
        FailureKind::NotConfigured => ct.f_not_configured,
        FailureKind::Internal => ct.f_internal,
    }
}

fn step_lines(ct: &ConnectText, steps: &[report::Step]) -> Vec<StepLine> {
    steps
        .iter()
        .map(|s| {
            let (status_code, status) = match s.status {
                StepStatus::Ok => ("ok", ct.ok),
                StepStatus::Failed => ("failed", ct.failed),
                StepStatus::Skipped => ("skipped", ct.skipped),
            };
            StepLine {
                code: s.step,
                label: step_label(ct, s.step),
                status_code,
                status,
                message: s.message.clone(),
            }
        })
        .collect()
}

fn result_page(ctx: &Ctx<'_>, flow: Flow, outcome: Outcome) -> Result<Reply, Fail> {
    let ct = text::of(ctx.lang);
    let title = match flow {
        Flow::WhatsApp => ct.title_whatsapp,
        Flow::Instagram => ct.title_instagram,
    };
    let (status, outcome, headline, channel, detail, steps) = match outcome {
        Outcome::Connected(done) => {
            let c = &done.channel;
            let name = ["display_phone_number", "username"]
                .iter()
                .find_map(|k| c.details.get(*k))
                .map_or_else(String::new, |n| format!(" ({n})"));
            let kind = match flow {
                Flow::WhatsApp => "WhatsApp",
                Flow::Instagram => "Instagram",
            };
            (
                if done.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                "connected",
                if done.created {
                    ct.connected
                } else {
                    ct.reconnected
                },
                Some(format!("{kind} {}{name}", c.id)),
                None,
                step_lines(ct, &done.steps),
            )
        }
        Outcome::Cancelled(step) => (
            StatusCode::OK,
            "cancelled",
            ct.cancelled,
            None,
            step.map(|s| format!("{} {s}", ct.left_at)),
            Vec::new(),
        ),
        Outcome::Denied => (
            StatusCode::OK,
            "cancelled",
            ct.instagram_denied,
            None,
            None,
            Vec::new(),
        ),
        Outcome::Failed(f) => (
            StatusCode::from_u16(f.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "failed",
            failure_headline(ct, f.kind),
            None,
            Some(f.message.clone()),
            step_lines(ct, &f.steps),
        ),
    };
    tracing::info!(tenant = %ctx.user.tenant, outcome, status = status.as_u16(), "console connect finished");
    let page = ResultPage {
        c: ctx.chrome("/app/channels"),
        ct,
        title,
        outcome,
        headline,
        channel,
        detail,
        steps,
    };
    Reply::html(status, &page)
}

// ---- The handlers ----------------------------------------------------------------------

/// `POST /app/onboarding/whatsapp`: the session-info event the page's script submitted.
pub(crate) async fn whatsapp(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let field = |name: &str| {
        let v = ctx.field(name).trim();
        (!v.is_empty()).then(|| v.to_owned())
    };
    let form = SignupForm {
        event: ctx.field("event").trim().to_owned(),
        code: field("code"),
        waba_id: field("waba_id"),
        phone_number_id: field("phone_number_id"),
        pin: field("pin"),
        current_step: field("current_step"),
        error_message: field("error_message"),
    };
    let outcome = match form.validate() {
        Err(f) => Outcome::Failed(f),
        Ok(event) => match ctx
            .s
            .onboarding
            .signup
            .complete(&ctx.scope, &ctx.actor(), event)
            .await
        {
            Ok(SignupOutcome::Connected(done)) => Outcome::Connected(done),
            Ok(SignupOutcome::Cancelled { current_step }) => Outcome::Cancelled(current_step),
            Err(f) => Outcome::Failed(f),
        },
    };
    result_page(ctx, Flow::WhatsApp, outcome)
}

/// `POST /app/onboarding/instagram`: off to Instagram's authorization window.
pub(crate) async fn instagram_start(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    match ctx
        .s
        .onboarding
        .instagram
        .authorize(&ctx.user.tenant, &ctx.actor(), now_secs())
    {
        Ok(a) => Ok(Reply::redirect(a.authorize_url)),
        Err(f) => result_page(ctx, Flow::Instagram, Outcome::Failed(f)),
    }
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /app/onboarding/instagram/callback`: where Instagram sends the user back, with
/// `code` and `state`, or with `error` when they declined (Instagram API with Instagram
/// Login, "Business Login for Instagram": a cancelled authorization redirects with
/// `error=access_denied&error_reason=user_denied`).
pub(crate) async fn instagram_callback(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    if web::query(ctx.req, "error").is_some() {
        tracing::info!(tenant = %ctx.user.tenant, "instagram login declined at instagram");
        return result_page(ctx, Flow::Instagram, Outcome::Denied);
    }
    let value = |name: &str| web::query(ctx.req, name).map(decode).unwrap_or_default();
    // Instagram appends `#_` to the redirect; a browser keeps it as the fragment, but a
    // copied address may carry it in the value.
    let code = value("code");
    let code = code.trim_end_matches("#_");
    let state = value("state");
    if code.is_empty() || state.is_empty() {
        let f = Failure::invalid("the redirect from Instagram carried no code or state");
        return result_page(ctx, Flow::Instagram, Outcome::Failed(f));
    }
    let outcome = match ctx
        .s
        .onboarding
        .instagram
        .complete(&ctx.scope, &ctx.actor(), code, &state, now_secs())
        .await
    {
        Ok(done) => Outcome::Connected(Box::new(done)),
        Err(f) => Outcome::Failed(f),
    };
    result_page(ctx, Flow::Instagram, outcome)
}
