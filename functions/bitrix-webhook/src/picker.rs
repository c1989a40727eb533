//! The template picker in the Bitrix24 chat (`IM_TEXTAREA`, decision 0061):
//!
//! - `POST /bitrix/templates`: Bitrix24 opens it above an Open Line chat's message field;
//!   the work is [`TemplatePicker::open`].
//! - `POST /bitrix/templates/send`: one template's form, with the page token, the user's
//!   `AUTH_ID` and the parameters `p1`, `p2`, ...; [`TemplatePicker::send`].
//!
//! Server-rendered, no script, the settings page's CSP: only the portal may frame it, forms
//! post only to us.

use askama::Template;
use lambda_http::http::{Response, StatusCode};
use lambda_http::Body;
use wappline::bitrix::events::{parse_form, text_of, FormError};
use wappline::portal::placement::origin_of;
use wappline::portal::placement::picker::{PickerError, PickerPage, PickerRequest, TemplatePicker};
use wappline::secret::Secret;

use crate::placement::{respond, CSS};

/// Serves the picker's two routes. `picker_url` is the handler bound with `placement.bind`.
pub struct PickerPages {
    pub picker: TemplatePicker,
    pub picker_url: String,
}

struct Param {
    name: String,
    id: String,
    label: String,
}

struct Choice {
    name: String,
    language: String,
    category: String,
    value: String,
    parameters: Vec<Param>,
}

struct View {
    action: String,
    token: String,
    auth: String,
    templates: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "picker.html")]
struct Page<'a> {
    title: &'a str,
    css: &'a str,
    error: Option<String>,
    sent: Option<String>,
    view: Option<View>,
}

const TITLE: &str = "WhatsApp templates";

fn render(page: Option<(&PickerPage, &str)>, action: &str, error: Option<String>) -> String {
    let view = page.map(|(p, auth)| View {
        action: action.to_owned(),
        token: p.token.clone(),
        auth: auth.to_owned(),
        templates: p
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| Choice {
                name: t.name.clone(),
                language: t.language.clone(),
                category: t.category.clone(),
                value: t.value.clone(),
                parameters: t
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(j, label)| Param {
                        name: format!("p{}", j + 1),
                        id: format!("t{}-p{}", i + 1, j + 1),
                        label: format!("{}. {label}", j + 1),
                    })
                    .collect(),
            })
            .collect(),
    });
    Page {
        title: TITLE,
        css: CSS,
        error,
        sent: page.and_then(|(p, _)| p.sent.clone()),
        view,
    }
    .render()
    .expect("the picker template renders owned strings")
}

fn status_of(e: &PickerError) -> StatusCode {
    match e {
        PickerError::Malformed(_) | PickerError::NotWhatsAppChat => StatusCode::BAD_REQUEST,
        PickerError::NotAuthenticated | PickerError::PageToken(_) => StatusCode::UNAUTHORIZED,
        PickerError::UnknownPortal | PickerError::NoAccess => StatusCode::FORBIDDEN,
        PickerError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        PickerError::Bitrix { .. } => StatusCode::BAD_GATEWAY,
        PickerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn message_of(e: &PickerError) -> String {
    match e {
        PickerError::PageToken(_) => {
            "This page has expired or is not valid: open the templates again from the chat.".into()
        }
        PickerError::Unavailable(_) => "The service is busy; try again in a moment.".into(),
        PickerError::Refused(why) => format!("Not sent: {why}."),
        other => other.to_string(),
    }
}

impl PickerPages {
    /// Serves one request; `send`: the form of one template.
    pub async fn handle(&self, send: bool, body: &[u8]) -> Response<Body> {
        let own = origin_of(&self.picker_url);
        let action = format!("{}/send", self.picker_url);
        let form = match parse_form(body) {
            Ok(f) => f,
            Err(e) => {
                let status = match e {
                    FormError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                let html = render(None, &action, Some("The form could not be read.".into()));
                return respond(status, html, None, &own);
            }
        };
        let result = if send {
            let token = text_of(form.get("token")).unwrap_or_default();
            let choice = text_of(form.get("template")).unwrap_or_default();
            let params: Vec<String> = (1..)
                .map_while(|i| text_of(form.get(format!("p{i}").as_str())))
                .take(20)
                .collect();
            match text_of(form.get("auth")).map(|a| Secret::parse("AUTH_ID", &a)) {
                Some(Ok(auth)) => self
                    .picker
                    .send(&token, &auth, &choice, &params)
                    .await
                    .map(|p| (p, auth)),
                _ => Err((PickerError::NotAuthenticated, None)),
            }
        } else {
            match PickerRequest::from_form(&form) {
                Ok(request) => {
                    let auth = request.auth_id.clone();
                    // A refusal may be framed by the portal the form names (it shows only
                    // our message).
                    let origin = Some(self.picker.portal_origin(&request.domain));
                    self.picker
                        .open(request)
                        .await
                        .map(|p| (p, auth))
                        .map_err(|e| (e, origin))
                }
                Err(m) => Err((PickerError::Malformed(m), None)),
            }
        };
        match result {
            Ok((page, auth)) => {
                let html = render(Some((&page, auth.expose())), &action, None);
                respond(StatusCode::OK, html, Some(&page.portal_origin), &own)
            }
            Err((e, origin)) => {
                let status = status_of(&e);
                if status.is_server_error() {
                    tracing::error!(error = %e, status = status.as_u16(), "template picker failed");
                } else {
                    tracing::warn!(error = %e, status = status.as_u16(), "template picker refused");
                }
                let html = render(None, &action, Some(message_of(&e)));
                respond(status, html, origin.as_deref(), &own)
            }
        }
    }
}
