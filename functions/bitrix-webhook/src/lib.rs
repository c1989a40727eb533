//! bitrix-webhook: what Bitrix24 calls on us.
//!
//! - `POST /bitrix/events`: the events bound with `event.bind` (form-encoded, PHP-style
//!   nested keys). Authenticated by the portal's `application_token`; wrong or missing →
//!   401 and nothing done. 200 only once every operator reply is stored and queued
//!   (Bitrix24 does not retry events); a failure on our side → 503. The work is
//!   [`wappline::portal_events::PortalEvents`].
//! - `POST /bitrix/install?code=...`: the application's install handler (installation
//!   wizard page or installation callback). Links the portal to the code's tenant and sets
//!   up the Open Line ([`wappline::portal::install::BitrixInstaller`]); answers a small HTML
//!   page that says it worked or why not, and on the wizard page completes the
//!   installation with `BX24.installFinish()`.
//! - `POST /bitrix/placement` (and its forms, `/attach`, `/detach`): the connector's
//!   settings page (`PLACEMENT_HANDLER`), where a portal admin attaches a WhatsApp number or
//!   Instagram account to the Open Line the page was opened for ([`placement`], decision
//!   0043).
//! - `POST /bitrix/messageservice`: the handler of our message providers: a CRM robot sends
//!   an approved WhatsApp template ([`wappline::message_provider::MessageProvider`], decision
//!   0050). 200 once queued; 401, 400 or 422 with nothing stored.

pub mod picker;
pub mod placement;

use askama::Template;
use lambda_http::http::{header, Method, Response, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use wappline::app::{HttpFunction, Services, ServicesError};
use wappline::bitrix::events::{parse_form, FormError, MAX_EVENT_BODY};
use wappline::edge::{self, ApiError};
use wappline::message_provider::{MessageProvider, ProviderError};
use wappline::outbound::OutboundError;
use wappline::portal::install::{
    BitrixInstaller, InstallError, InstallFlow, InstallRequest, Installed, EVENTS_PATH,
    INSTALL_PATH, PICKER_PATH, PLACEMENT_PATH,
};
use wappline::portal::placement::PlacementConsole;
use wappline::portal::providers::PROVIDER_PATH;
use wappline::portal_events::{PortalEvents, WebhookError};

use picker::PickerPages;
use placement::{Action, PlacementPages};

/// The route prefix, as template.yaml declares it (`/bitrix/{proxy+}`).
pub const PREFIX: &str = "/bitrix/";

pub struct BitrixWebhook {
    events: PortalEvents,
    installer: BitrixInstaller,
    placement: Option<PlacementPages>,
    picker: Option<PickerPages>,
    provider: Option<MessageProvider>,
}

/// The settings page's form targets.
pub const ATTACH_PATH: &str = "/bitrix/placement/attach";
pub const DETACH_PATH: &str = "/bitrix/placement/detach";
/// The template picker's form (decision 0061).
pub const PICKER_SEND_PATH: &str = "/bitrix/templates/send";

/// True for paths this function serves.
pub fn serves(path: &str) -> bool {
    path.starts_with(PREFIX)
}

impl BitrixWebhook {
    pub fn new(events: PortalEvents, installer: BitrixInstaller) -> Self {
        BitrixWebhook {
            events,
            installer,
            placement: None,
            picker: None,
            provider: None,
        }
    }

    /// Serves our message providers' handler with `provider`.
    pub fn with_provider(mut self, provider: MessageProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    async fn provider_call(&self, req: &Request) -> Response<Body> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_EVENT_BODY {
            return error_response(ApiError::payload_too_large(MAX_EVENT_BODY));
        }
        let Some(provider) = &self.provider else {
            return error_response(ApiError::unavailable());
        };
        match provider.accept(body).await {
            Ok(accepted) => edge::json(
                StatusCode::OK,
                &serde_json::json!({"ok": true, "duplicate": accepted.duplicate}),
            )
            .map(Body::from),
            Err(ProviderError::Unauthorized(reason)) => error_response(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("call not accepted: {reason}"),
            )),
            Err(ProviderError::Malformed(m)) => error_response(ApiError::bad_request(m)),
            Err(ProviderError::Refused(why)) => error_response(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "template_refused",
                why,
            )),
            Err(ProviderError::Outbound(OutboundError::QuotaExceeded(q))) => {
                error_response(ApiError::quota_exceeded(&q, wappline::clock::now_secs()))
            }
            Err(ProviderError::Outbound(OutboundError::TenantSuspended)) => {
                error_response(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "tenant_suspended",
                    "this tenant is suspended and may not send messages",
                ))
            }
            // Nothing is kept of the person, so no failed message is stored to tell the
            // portal (decision 0125).
            Err(ProviderError::Outbound(OutboundError::SubjectErased)) => {
                tracing::info!("message provider call refused: the person is being erased");
                error_response(ApiError::subject_being_erased())
            }
            Err(ProviderError::Outbound(OutboundError::Invalid(m))) => {
                error_response(ApiError::bad_request(m))
            }
            Err(ProviderError::Outbound(e)) => {
                tracing::error!(error = %e, "message provider call not queued; answered 503");
                error_response(ApiError::unavailable())
            }
            Err(ProviderError::Unavailable(detail)) => {
                tracing::error!(detail, "message provider call not processed; answered 503");
                error_response(ApiError::unavailable())
            }
        }
    }

    /// Serves the connector settings page with `console`.
    pub fn with_placement(mut self, console: PlacementConsole) -> Self {
        self.placement = Some(PlacementPages {
            console,
            placement_url: self.installer.setup().placement_url(),
            console_url: self.installer.setup().console_channels_url(),
        });
        self
    }

    /// Serves the template picker in the chat with `picker`.
    pub fn with_picker(
        mut self,
        picker: wappline::portal::placement::picker::TemplatePicker,
    ) -> Self {
        self.picker = Some(PickerPages {
            picker,
            picker_url: self.installer.setup().picker_url(),
        });
        self
    }

    async fn picker(&self, req: &Request, send: bool) -> Response<Body> {
        match &self.picker {
            Some(pages) => pages.handle(send, req.body().as_ref()).await,
            None => error_response(ApiError::unavailable()),
        }
    }

    async fn placement(&self, req: &Request, action: Action) -> Response<Body> {
        let body: &[u8] = req.body().as_ref();
        // A browser frame asks for HTML; a client that asks for JSON only gets JSON errors.
        let wants_json = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
        match &self.placement {
            Some(pages) => pages.handle(action, body, wants_json).await,
            None => error_response(ApiError::unavailable()),
        }
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let method = req.method().clone();
        match (path.as_str(), method) {
            (EVENTS_PATH, Method::POST) => self.event(&req).await,
            (INSTALL_PATH, Method::POST) => self.install(&req).await,
            (PLACEMENT_PATH, Method::POST) => self.placement(&req, Action::Open).await,
            (ATTACH_PATH, Method::POST) => self.placement(&req, Action::Attach).await,
            (DETACH_PATH, Method::POST) => self.placement(&req, Action::Detach).await,
            (PROVIDER_PATH, Method::POST) => self.provider_call(&req).await,
            (PICKER_PATH, Method::POST) => self.picker(&req, false).await,
            (PICKER_SEND_PATH, Method::POST) => self.picker(&req, true).await,
            (
                EVENTS_PATH | INSTALL_PATH | PLACEMENT_PATH | ATTACH_PATH | DETACH_PATH
                | PROVIDER_PATH | PICKER_PATH | PICKER_SEND_PATH,
                _,
            ) => error_response(ApiError::method_not_allowed()),
            _ => error_response(ApiError::not_found("no such route")),
        }
    }

    async fn event(&self, req: &Request) -> Response<Body> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_EVENT_BODY {
            return error_response(ApiError::payload_too_large(MAX_EVENT_BODY));
        }
        match self.events.handle(body).await {
            Ok(outcome) => {
                let mut json = serde_json::to_value(&outcome).unwrap_or_default();
                if let Some(o) = json.as_object_mut() {
                    o.insert("ok".into(), true.into());
                }
                edge::json(StatusCode::OK, &json).map(Body::from)
            }
            Err(WebhookError::Unauthorized(reason)) => error_response(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("event not accepted: {reason}"),
            )),
            Err(WebhookError::TooLarge) => {
                error_response(ApiError::payload_too_large(MAX_EVENT_BODY))
            }
            Err(WebhookError::Malformed(m)) => error_response(ApiError::bad_request(m)),
            Err(WebhookError::UnknownConnector(c)) => error_response(ApiError::bad_request(
                format!("connector {c:?} is not handled here"),
            )),
            Err(WebhookError::Unavailable(detail)) => {
                tracing::error!(detail, "bitrix event not processed; answered 503");
                error_response(ApiError::unavailable())
            }
        }
    }

    async fn install(&self, req: &Request) -> Response<Body> {
        let params = req.query_string_parameters();
        let code = params.first("code").unwrap_or_default().trim().to_owned();
        let body: &[u8] = req.body().as_ref();
        let result = match parse_form(body) {
            Ok(form) => match InstallRequest::from_form(&form) {
                Ok(request) => self.installer.install(&code, request).await,
                Err(e) => Err(e),
            },
            Err(FormError::TooLarge) => {
                return html(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    page("Installation failed", "The request was too large.", false),
                )
            }
            Err(e) => Err(InstallError::Malformed(e.to_string())),
        };
        match result {
            Ok(installed) => {
                tracing::info!(tenant = %installed.tenant, member_id = %installed.member_id,
                    reinstalled = installed.reinstalled, "bitrix24 install completed");
                html(StatusCode::OK, success_page(&installed))
            }
            Err(e) => {
                let status = install_status(&e);
                if status.is_server_error() {
                    tracing::error!(error = %e, status = status.as_u16(), "bitrix24 install failed");
                } else {
                    tracing::warn!(error = %e, status = status.as_u16(), "bitrix24 install refused");
                }
                html(
                    status,
                    page("Installation failed", &install_message(&e), false),
                )
            }
        }
    }
}

fn install_status(e: &InstallError) -> StatusCode {
    match e {
        InstallError::InvalidCode | InstallError::NotVerified(_) => StatusCode::FORBIDDEN,
        InstallError::Malformed(_) => StatusCode::BAD_REQUEST,
        InstallError::PortalTaken | InstallError::TenantHasOtherPortal(_) => StatusCode::CONFLICT,
        InstallError::Setup { .. } => StatusCode::BAD_GATEWAY,
        InstallError::Store(wappline::store::StoreError::Unavailable(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        InstallError::Tenant(_) | InstallError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What the installing admin reads: the cause and what to do, never a secret.
fn install_message(e: &InstallError) -> String {
    match e {
        InstallError::InvalidCode => {
            "The connection code in this application's address is not valid: it is \
             unknown, expired (codes last 24 hours) or already used. Ask for a new connection \
             code and install again with the new address."
                .into()
        }
        InstallError::Malformed(m) => {
            format!("Bitrix24 did not send what installation needs ({m}).")
        }
        InstallError::PortalTaken => {
            "This Bitrix24 portal is already connected to another account.".into()
        }
        InstallError::TenantHasOtherPortal(_) => e.to_string(),
        InstallError::NotVerified(m) => {
            format!("The portal could not be verified with Bitrix24: {m}.")
        }
        InstallError::Setup { stage, .. } => format!(
            "The portal is connected, but setting up the Open Line failed ({stage}). \
             Reinstall the application to try again."
        ),
        _ => "Something failed on our side. Try again in a few minutes.".into(),
    }
}

fn success_page(installed: &Installed) -> String {
    let mut text = format!(
        "Your Bitrix24 portal {} is connected. WhatsApp and Instagram conversations will \
         appear in Open Line {}.",
        installed.domain, installed.line
    );
    if !installed.application_token_stored {
        text.push_str(" Bitrix24 completes the installation now.");
    }
    // The wizard flow loads the Bitrix24 JS library and calls BX24.installFinish().
    page("Installed", &text, installed.flow == InstallFlow::Wizard)
}

/// The install result pages (templates/page.html, auto-escaped).
#[derive(Template)]
#[template(path = "page.html")]
struct Page<'a> {
    title: &'a str,
    text: &'a str,
    /// Adds the script that ends the Bitrix24 install wizard.
    install_finish: bool,
}

fn page(title: &str, text: &str, install_finish: bool) -> String {
    Page {
        title,
        text,
        install_finish,
    }
    .render()
    .expect("the page template only formats &str and bool")
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        // The install URL carries the connection code: never send it on as a referrer.
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Body::from(body))
        .expect("static response parts")
}

fn error_response(e: ApiError) -> Response<Body> {
    e.into_response().map(Body::from)
}

impl BitrixWebhook {
    /// Built by the composition root, the same way for the Lambda and the local server.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        Ok(
            Self::new(services.portal_events()?, services.bitrix_installer()?)
                .with_placement(services.placement_console()?)
                .with_picker(services.template_picker()?)
                .with_provider(MessageProvider::new(
                    services.platform.tenants.clone(),
                    services.outbound_intake()?,
                )),
        )
    }
}

#[async_trait::async_trait]
impl HttpFunction for BitrixWebhook {
    async fn handle(&self, req: Request) -> Response<Body> {
        BitrixWebhook::handle(self, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_say_why() {
        let p = page("T<", "a & <b>", false);
        // askama escapes with numeric character references (&#38; for &amp;, and so on).
        assert!(p.contains("<p>a &#38; &#60;b&#62;</p>"));
        assert!(p.contains("<title>T&#60;</title>"));
        assert!(!p.contains("<b>"));
        assert!(!p.contains("<script"));
        assert_eq!(
            install_status(&InstallError::InvalidCode),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            install_status(&InstallError::PortalTaken),
            StatusCode::CONFLICT
        );
        assert!(install_message(&InstallError::InvalidCode).contains("expired"));
        assert!(serves("/bitrix/events"));
        assert!(!serves("/admin/tenants"));
    }
}
