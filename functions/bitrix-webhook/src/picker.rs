//! The template picker in the Bitrix24 chat (`IM_TEXTAREA`, decision 0061):
//!
//! - `POST /bitrix/templates`: Bitrix24 opens it above an Open Line chat's message field;
//!   the work is [`TemplatePicker::open`].
//! - `POST /bitrix/templates/send`: one template's form, with the page token, the user's
//!   `AUTH_ID` and the parameters `p1`, `p2`, ...; [`TemplatePicker::send`].
//!
//! Server-rendered, no script, the settings page's CSP: only the portal may frame it, forms
//! post only to us. In the portal's language as the settings page is (Russian for `LANG`
//! `ru`, `by`, `kz`; English otherwise): Bitrix24 posts `LANG` with the placement
//! (api-reference/widgets/_includes/widget_data.md), and the page's forms send it back as
//! `lang`. The reasons of a refused choice come from the checks shared with the `/template`
//! command and stay in English.

use askama::Template;
use lambda_http::http::{Response, StatusCode};
use lambda_http::Body;
use wappline::bitrix::events::{parse_form, text_of, FormError};
use wappline::portal::placement::picker::{PickerError, PickerPage, PickerRequest, TemplatePicker};
use wappline::portal::placement::{lang_of, origin_of};
use wappline::secret::Secret;
use wappline::templates::command::Slot;

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

/// What the page says, per language.
pub struct Texts {
    pub lang: &'static str,
    title: &'static str,
    /// `{name}`: the template's `<name>@<language>`.
    sent: &'static str,
    none: &'static str,
    send: &'static str,
    hint: &'static str,
    header_text: &'static str,
    header_media: &'static str,
    body: &'static str,
    button: &'static str,
    image: &'static str,
    video: &'static str,
    document: &'static str,
    e_form: &'static str,
    e_malformed: &'static str,
    e_unknown_portal: &'static str,
    e_not_authenticated: &'static str,
    e_no_access: &'static str,
    e_not_whatsapp: &'static str,
    e_page: &'static str,
    e_refused: &'static str,
    e_bitrix: &'static str,
    e_unavailable: &'static str,
}

pub static EN: Texts = Texts {
    lang: "en",
    title: "WhatsApp templates",
    sent: "Template {name} was sent as your message in this chat.",
    none: "This WhatsApp number has no approved templates.",
    send: "Send",
    hint: "Outside the 24-hour window only approved templates reach the customer. The page expires after 5 minutes: open it again from the chat.",
    header_text: "header {{{n}}}",
    header_media: "header {kind} link (https://...)",
    body: "body {{{n}}}",
    button: "button {n} link suffix",
    image: "image",
    video: "video",
    document: "document",
    e_form: "The form could not be read.",
    e_malformed: "Bitrix24 did not send what this page needs ({detail}).",
    e_unknown_portal: "This Bitrix24 portal is not connected.",
    e_not_authenticated: "Bitrix24 did not confirm who opened this page.",
    e_no_access: "You have no access to this chat.",
    e_not_whatsapp: "Templates can be sent from WhatsApp chats of this application only.",
    e_page: "This page has expired or is not valid: open the templates again from the chat.",
    e_refused: "Not sent: {detail}.",
    e_bitrix: "Bitrix24 refused the message ({detail}). Nothing was sent; try again.",
    e_unavailable: "The service is busy; try again in a moment.",
};

pub static RU: Texts = Texts {
    lang: "ru",
    title: "Шаблоны WhatsApp",
    sent: "Шаблон {name} отправлен в этот чат от вашего имени.",
    none: "У этого номера WhatsApp нет одобренных шаблонов.",
    send: "Отправить",
    hint: "Вне 24-часового окна клиенту доходят только одобренные шаблоны. Страница действует 5 минут: затем откройте её снова из чата.",
    header_text: "заголовок {{{n}}}",
    header_media: "ссылка на {kind} в заголовке (https://...)",
    body: "текст {{{n}}}",
    button: "окончание ссылки кнопки {n}",
    image: "изображение",
    video: "видео",
    document: "документ",
    e_form: "Не удалось прочитать форму.",
    e_malformed: "Битрикс24 не передал нужные этой странице данные ({detail}).",
    e_unknown_portal: "Этот портал Битрикс24 не подключён.",
    e_not_authenticated: "Битрикс24 не подтвердил, кто открыл эту страницу.",
    e_no_access: "У вас нет доступа к этому чату.",
    e_not_whatsapp: "Шаблоны можно отправлять только из чатов WhatsApp этого приложения.",
    e_page: "Страница устарела или недействительна: откройте шаблоны снова из чата.",
    e_refused: "Не отправлено: {detail}.",
    e_bitrix: "Битрикс24 не принял сообщение ({detail}). Ничего не отправлено; попробуйте ещё раз.",
    e_unavailable: "Сервис занят; попробуйте ещё раз через минуту.",
};

/// Russian for the portals whose interface is Russian (as the settings page); English
/// otherwise.
pub fn texts(lang: Option<&str>) -> &'static Texts {
    match lang {
        Some("ru" | "by" | "kz") => &RU,
        _ => &EN,
    }
}

fn fill(text: &str, key: &str, value: &str) -> String {
    text.replace(&format!("{{{key}}}"), value)
}

/// The label of one parameter slot in `t`'s language.
fn slot_label(t: &Texts, slot: &Slot) -> String {
    match slot {
        Slot::HeaderText(n) => fill(t.header_text, "n", n),
        Slot::HeaderMedia(kind) => {
            let kind = match *kind {
                "image" => t.image,
                "video" => t.video,
                _ => t.document,
            };
            fill(t.header_media, "kind", kind)
        }
        Slot::Body(n) => fill(t.body, "n", n),
        Slot::UrlButton(i) => fill(t.button, "n", &(i + 1).to_string()),
    }
}

#[derive(Template)]
#[template(path = "picker.html")]
struct Page<'a> {
    t: &'a Texts,
    css: &'a str,
    error: Option<String>,
    sent: Option<String>,
    view: Option<View>,
}

fn render(
    texts: &Texts,
    page: Option<(&PickerPage, &str)>,
    action: &str,
    error: Option<String>,
) -> String {
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
                    .map(|(j, slot)| Param {
                        name: format!("p{}", j + 1),
                        id: format!("t{}-p{}", i + 1, j + 1),
                        label: format!("{}. {}", j + 1, slot_label(texts, slot)),
                    })
                    .collect(),
            })
            .collect(),
    });
    Page {
        t: texts,
        css: CSS,
        error,
        sent: page.and_then(|(p, _)| p.sent.as_deref().map(|n| fill(texts.sent, "name", n))),
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

fn message_of(t: &Texts, e: &PickerError) -> String {
    match e {
        PickerError::Malformed(m) => fill(t.e_malformed, "detail", m),
        PickerError::UnknownPortal => t.e_unknown_portal.into(),
        PickerError::NotAuthenticated => t.e_not_authenticated.into(),
        PickerError::NoAccess => t.e_no_access.into(),
        PickerError::NotWhatsAppChat => t.e_not_whatsapp.into(),
        PickerError::PageToken(_) => t.e_page.into(),
        PickerError::Refused(why) => fill(t.e_refused, "detail", why),
        PickerError::Bitrix { method, error } => {
            fill(t.e_bitrix, "detail", &format!("{method}: {error}"))
        }
        PickerError::Unavailable(_) => t.e_unavailable.into(),
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
                let html = render(&EN, None, &action, Some(EN.e_form.into()));
                return respond(status, html, None, &own);
            }
        };
        // `LANG` when Bitrix24 opens the page, `lang` when its own form comes back.
        let t = texts(
            lang_of(&form)
                .or_else(|| text_of(form.get("lang")))
                .as_deref(),
        );
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
                let html = render(t, Some((&page, auth.expose())), &action, None);
                respond(StatusCode::OK, html, Some(&page.portal_origin), &own)
            }
            Err((e, origin)) => {
                let status = status_of(&e);
                if status.is_server_error() {
                    tracing::error!(error = %e, status = status.as_u16(), "template picker failed");
                } else {
                    tracing::warn!(error = %e, status = status.as_u16(), "template picker refused");
                }
                let html = render(t, None, &action, Some(message_of(t, &e)));
                respond(status, html, origin.as_deref(), &own)
            }
        }
    }
}
