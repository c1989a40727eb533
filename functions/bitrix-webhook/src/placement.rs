//! The connector settings page (`SETTING_CONNECTOR`, decision 0043), in the portal's frame:
//!
//! - `POST /bitrix/placement`: Bitrix24 opens the page with its form; the work is
//!   [`PlacementConsole::open`].
//! - `POST /bitrix/placement/attach` and `/detach`: the page's own forms, with the page
//!   token (no cookie); [`PlacementConsole::attach`] / [`PlacementConsole::detach`].
//!
//! Every answer is a server-rendered page in the portal's language (English, or Russian when
//! `LANG` is `ru`, `by` or `kz`), with a strict CSP: nothing loads, the one stylesheet is
//! allowed by its hash, forms post only to us, and only the portal's origin may frame it.

use askama::Template;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lambda_http::http::{header, Response, StatusCode};
use lambda_http::Body;
use sha2::{Digest, Sha256};
use wappline::bitrix::events::{parse_form, text_of, FormError};
use wappline::edge::ApiError;
use wappline::portal::placement::{
    lang_of, origin_of, Change, ChannelRow, PageTokenError, PlacementConsole, PlacementError,
    PlacementFailure, PlacementPage, PlacementRequest,
};
use wappline::tenant::{ChannelKind, LineError};

/// The page's only style, allowed by its hash in the CSP.
pub(crate) const CSS: &str =
    "body{font-family:system-ui,sans-serif;max-width:48em;margin:1.5em auto;\
padding:0 1em;line-height:1.5}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.4em;border-bottom:1px solid #ccc}\
.error{color:#a00;font-weight:bold}.notice{color:#060;font-weight:bold}.hint{color:#555}\
button{font:inherit;padding:.3em .8em}button:focus,a:focus{outline:3px solid #1a73e8}";

/// What the page says, per language.
pub struct Texts {
    pub lang: &'static str,
    title: &'static str,
    title_error: &'static str,
    col_channel: &'static str,
    col_goes_to: &'static str,
    col_action: &'static str,
    attach: &'static str,
    detach: &'static str,
    this_line: &'static str,
    line_n: &'static str,
    portal_line: &'static str,
    here_none: &'static str,
    here_some: &'static str,
    default_hint: &'static str,
    channels_whatsapp: &'static str,
    channels_instagram: &'static str,
    no_channels: &'static str,
    /// The link to the console's channels page (`{kind}`), opened in a new tab.
    connect_link: &'static str,
    attached: &'static str,
    detached: &'static str,
    status: &'static str,
    yes: &'static str,
    no: &'static str,
    expiry: &'static str,
    e_malformed: &'static str,
    e_connector: &'static str,
    e_unknown_portal: &'static str,
    e_domain: &'static str,
    e_not_authenticated: &'static str,
    e_not_admin: &'static str,
    e_expired: &'static str,
    e_token: &'static str,
    e_portal_changed: &'static str,
    e_channel: &'static str,
    e_elsewhere: &'static str,
    e_taken: &'static str,
    e_not_attached: &'static str,
    e_bitrix: &'static str,
    e_unavailable: &'static str,
}

pub static EN: Texts = Texts {
    lang: "en",
    title: "{kind} on Open Line {line}",
    title_error: "Wappline connector",
    col_channel: "Channel",
    col_goes_to: "Conversations go to",
    col_action: "Action",
    attach: "Attach to this line",
    detach: "Detach",
    this_line: "this line",
    line_n: "Open Line {line}",
    portal_line: "Open Line {line} (the portal's line)",
    here_none: "No channel is attached to this line.",
    here_some: "This line carries {channel}.",
    default_hint: "Channels without a line of their own go to Open Line {line}, the line chosen when Wappline was installed. A line carries at most one channel.",
    channels_whatsapp: "Your WhatsApp numbers",
    channels_instagram: "Your Instagram accounts",
    no_channels: "No channel of this kind is connected to your Wappline account yet. Connect it in the Wappline console, then open this page again.",
    connect_link: "Connect {kind} in the Wappline console (opens in a new tab)",
    attached: "{channel} is attached to this line: new conversations on it arrive here.",
    detached: "{channel} is detached: its conversations go to Open Line {line} again.",
    status: "Bitrix24 reports the connector on this line as: active {active}, connected {connection}, error {error}.",
    yes: "yes",
    no: "no",
    expiry: "This page stays usable for a few minutes; after that, close it and open the connector settings again.",
    e_malformed: "Bitrix24 did not send what this page needs ({detail}). Open it from the Contact Center.",
    e_connector: "This page serves the Wappline connectors only.",
    e_unknown_portal: "This Bitrix24 portal is not connected to a Wappline account. Install the Wappline application with your connection code first.",
    e_domain: "This portal's address is not the one connected to Wappline. If the portal was renamed, reinstall the application.",
    e_not_authenticated: "Bitrix24 did not confirm who opened this page. Close it and open the connector settings again.",
    e_not_admin: "Only Bitrix24 administrators can change these settings. Ask an administrator of your portal.",
    e_expired: "This page has expired. Close it and open the connector settings again.",
    e_token: "This request did not come from a valid settings page. Open the connector settings again.",
    e_portal_changed: "The portal connected to your Wappline account has changed. Open the connector settings again.",
    e_channel: "Choose one of the listed channels.",
    e_elsewhere: "This channel is attached to Open Line {line}. Detach it there first.",
    e_taken: "This line already carries {channel}. Detach it first: a line carries one channel.",
    e_not_attached: "This channel is not attached to this line.",
    e_bitrix: "Bitrix24 refused the change ({detail}). Nothing was changed; try again.",
    e_unavailable: "Wappline could not complete this just now. Nothing was changed; try again in a minute.",
};

pub static RU: Texts = Texts {
    lang: "ru",
    title: "{kind} в открытой линии {line}",
    title_error: "Коннектор Wappline",
    col_channel: "Канал",
    col_goes_to: "Куда приходят диалоги",
    col_action: "Действие",
    attach: "Подключить к этой линии",
    detach: "Отключить",
    this_line: "эта линия",
    line_n: "Открытая линия {line}",
    portal_line: "Открытая линия {line} (линия портала)",
    here_none: "К этой линии не подключён ни один канал.",
    here_some: "Эта линия обслуживает {channel}.",
    default_hint: "Каналы без собственной линии попадают в открытую линию {line}, выбранную при установке Wappline. К линии подключается не больше одного канала.",
    channels_whatsapp: "Ваши номера WhatsApp",
    channels_instagram: "Ваши аккаунты Instagram",
    no_channels: "В вашем аккаунте Wappline ещё нет каналов этого типа. Подключите канал в консоли Wappline, затем откройте эту страницу снова.",
    connect_link: "Подключить {kind} в консоли Wappline (откроется в новой вкладке)",
    attached: "{channel} подключён к этой линии: новые диалоги приходят сюда.",
    detached: "{channel} отключён: его диалоги снова приходят в открытую линию {line}.",
    status: "Состояние коннектора в этой линии по данным Битрикс24: активен — {active}, подключён — {connection}, ошибка — {error}.",
    yes: "да",
    no: "нет",
    expiry: "Страница действует несколько минут; после этого закройте её и снова откройте настройки коннектора.",
    e_malformed: "Битрикс24 не передал нужные данные ({detail}). Откройте страницу из контакт-центра.",
    e_connector: "Эта страница обслуживает только коннекторы Wappline.",
    e_unknown_portal: "Этот портал Битрикс24 не подключён к аккаунту Wappline. Сначала установите приложение Wappline по коду подключения.",
    e_domain: "Адрес портала не совпадает с подключённым к Wappline. Если портал переименован, переустановите приложение.",
    e_not_authenticated: "Битрикс24 не подтвердил, кто открыл страницу. Закройте её и снова откройте настройки коннектора.",
    e_not_admin: "Изменять эти настройки могут только администраторы Битрикс24. Обратитесь к администратору портала.",
    e_expired: "Срок действия страницы истёк. Закройте её и снова откройте настройки коннектора.",
    e_token: "Запрос пришёл не со страницы настроек. Снова откройте настройки коннектора.",
    e_portal_changed: "Портал, подключённый к вашему аккаунту Wappline, изменился. Снова откройте настройки коннектора.",
    e_channel: "Выберите один из перечисленных каналов.",
    e_elsewhere: "Этот канал подключён к открытой линии {line}. Сначала отключите его там.",
    e_taken: "Эта линия уже обслуживает {channel}. Сначала отключите его: к линии подключается один канал.",
    e_not_attached: "Этот канал не подключён к этой линии.",
    e_bitrix: "Битрикс24 отклонил изменение ({detail}). Ничего не изменено; попробуйте ещё раз.",
    e_unavailable: "Wappline не удалось выполнить это сейчас. Ничего не изменено; попробуйте через минуту.",
};

/// Russian for the portals whose interface is Russian; English otherwise.
pub fn texts(lang: Option<&str>) -> &'static Texts {
    match lang {
        Some("ru" | "by" | "kz") => &RU,
        _ => &EN,
    }
}

struct Row {
    label: String,
    goes_to: String,
    value: String,
    action: String,
    button: &'static str,
    button_label: String,
}

struct View {
    here: String,
    default_hint: String,
    channels_heading: &'static str,
    no_channels: &'static str,
    connect_url: String,
    connect_label: String,
    rows: Vec<Row>,
    token: String,
}

#[derive(Template)]
#[template(path = "placement.html")]
struct Page<'a> {
    t: &'a Texts,
    title: String,
    css: &'a str,
    error: Option<String>,
    change: Option<String>,
    status: Option<String>,
    view: Option<View>,
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(template.to_owned(), |s, (k, v)| {
        s.replace(&format!("{{{k}}}"), v)
    })
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Instagram => "Instagram",
        _ => "WhatsApp",
    }
}

fn render_page(t: &Texts, page: &PlacementPage, placement_url: &str, console_url: &str) -> String {
    let line = page.line.to_string();
    let portal_line = page.portal_line.to_string();
    let goes_to = |row: &ChannelRow| match row.line {
        Some(l) if l == page.line => t.this_line.to_owned(),
        Some(l) => fill(t.line_n, &[("line", &l.to_string())]),
        None if page.portal_line == page.line => t.this_line.to_owned(),
        None => fill(t.portal_line, &[("line", &portal_line)]),
    };
    let rows = page
        .channels
        .iter()
        .map(|row| {
            let here = row.line == Some(page.line);
            let (path, button) = if here {
                ("detach", t.detach)
            } else {
                ("attach", t.attach)
            };
            Row {
                label: row.label.clone(),
                goes_to: goes_to(row),
                value: row.value(),
                action: format!("{placement_url}/{path}"),
                button,
                button_label: format!("{button}: {}", row.label),
            }
        })
        .collect();
    let here = match page.attached_here() {
        Some(row) => fill(t.here_some, &[("channel", &row.label)]),
        None => t.here_none.to_owned(),
    };
    let yes_no = |b: Option<bool>| match b {
        Some(true) => t.yes,
        Some(false) => t.no,
        None => "?",
    };
    let status = page.status.as_ref().map(|s| {
        fill(
            t.status,
            &[
                ("active", yes_no(s.active)),
                ("connection", yes_no(s.connection)),
                ("error", yes_no(s.error)),
            ],
        )
    });
    let change = page.change.as_ref().map(|c| match c {
        Change::Attached(label) => fill(t.attached, &[("channel", label)]),
        Change::Detached(label) => fill(t.detached, &[("channel", label), ("line", &portal_line)]),
    });
    Page {
        t,
        title: fill(t.title, &[("kind", kind_name(page.kind)), ("line", &line)]),
        css: CSS,
        error: None,
        change,
        status,
        view: Some(View {
            here,
            default_hint: fill(t.default_hint, &[("line", &portal_line)]),
            channels_heading: match page.kind {
                ChannelKind::Instagram => t.channels_instagram,
                _ => t.channels_whatsapp,
            },
            no_channels: t.no_channels,
            connect_url: console_url.to_owned(),
            connect_label: fill(t.connect_link, &[("kind", kind_name(page.kind))]),
            rows,
            token: page.token.clone(),
        }),
    }
    .render()
    .expect("the placement template renders owned strings")
}

/// A stable code per failure, for the JSON form of an error.
fn code(e: &PlacementError) -> &'static str {
    match e {
        PlacementError::Malformed(_) => "malformed",
        PlacementError::NotOurConnector(_) => "not_our_connector",
        PlacementError::UnknownPortal => "unknown_portal",
        PlacementError::DomainMismatch => "domain_mismatch",
        PlacementError::NotAuthenticated => "not_authenticated",
        PlacementError::NotAdmin => "not_admin",
        PlacementError::PageToken(PageTokenError::Expired(_)) => "page_expired",
        PlacementError::PageToken(PageTokenError::Invalid) => "page_token_invalid",
        PlacementError::PortalChanged => "portal_changed",
        PlacementError::BadChannel(_) | PlacementError::Line(LineError::NotAttachable(_)) => {
            "bad_channel"
        }
        PlacementError::Line(LineError::ChannelNotFound(_)) => "channel_not_found",
        PlacementError::Line(LineError::AttachedElsewhere(_)) => "attached_elsewhere",
        PlacementError::Line(LineError::LineTaken { .. }) => "line_taken",
        PlacementError::Line(LineError::NotAttached(_)) => "not_attached",
        PlacementError::Bitrix { .. } => "bitrix24_refused",
        PlacementError::Line(LineError::Tenant(_)) | PlacementError::Unavailable(_) => {
            "unavailable"
        }
    }
}

/// The status and the words for a failure; never a secret.
fn failure(t: &Texts, e: &PlacementError) -> (StatusCode, String) {
    match e {
        PlacementError::Malformed(m) => (
            StatusCode::BAD_REQUEST,
            fill(t.e_malformed, &[("detail", m)]),
        ),
        PlacementError::NotOurConnector(_) => (StatusCode::BAD_REQUEST, t.e_connector.into()),
        PlacementError::UnknownPortal => (StatusCode::FORBIDDEN, t.e_unknown_portal.into()),
        PlacementError::DomainMismatch => (StatusCode::FORBIDDEN, t.e_domain.into()),
        PlacementError::NotAuthenticated => {
            (StatusCode::UNAUTHORIZED, t.e_not_authenticated.into())
        }
        PlacementError::NotAdmin => (StatusCode::FORBIDDEN, t.e_not_admin.into()),
        PlacementError::PageToken(PageTokenError::Expired(_)) => {
            (StatusCode::UNAUTHORIZED, t.e_expired.into())
        }
        PlacementError::PageToken(PageTokenError::Invalid) => {
            (StatusCode::UNAUTHORIZED, t.e_token.into())
        }
        PlacementError::PortalChanged => (StatusCode::CONFLICT, t.e_portal_changed.into()),
        PlacementError::BadChannel(_) => (StatusCode::BAD_REQUEST, t.e_channel.into()),
        PlacementError::Line(LineError::ChannelNotFound(_)) => {
            (StatusCode::NOT_FOUND, t.e_channel.into())
        }
        PlacementError::Line(LineError::AttachedElsewhere(line)) => (
            StatusCode::CONFLICT,
            fill(t.e_elsewhere, &[("line", &line.to_string())]),
        ),
        PlacementError::Line(LineError::LineTaken { holder, .. }) => (
            StatusCode::CONFLICT,
            fill(t.e_taken, &[("channel", holder)]),
        ),
        PlacementError::Line(LineError::NotAttached(_)) => {
            (StatusCode::CONFLICT, t.e_not_attached.into())
        }
        PlacementError::Line(LineError::NotAttachable(_)) => {
            (StatusCode::BAD_REQUEST, t.e_channel.into())
        }
        PlacementError::Bitrix { method, error } => {
            let detail = match error.code() {
                Some(code) => format!("{method}: {code}"),
                None => format!("{method}: {}", error.kind()),
            };
            (
                StatusCode::BAD_GATEWAY,
                fill(t.e_bitrix, &[("detail", &detail)]),
            )
        }
        PlacementError::Line(LineError::Tenant(_)) | PlacementError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, t.e_unavailable.into())
        }
    }
}

fn error_page(t: &Texts, message: String) -> String {
    Page {
        t,
        title: t.title_error.to_owned(),
        css: CSS,
        error: Some(message),
        change: None,
        status: None,
        view: None,
    }
    .render()
    .expect("the placement template renders owned strings")
}

/// `'sha256-...'` of the stylesheet, for the CSP.
fn style_hash() -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(CSS.as_bytes()))
    )
}

/// Only `portal_origin` may frame the page (none when unknown); forms post only to us.
pub(crate) fn respond(
    status: StatusCode,
    body: String,
    portal_origin: Option<&str>,
    own_origin: &str,
) -> Response<Body> {
    let ancestors = portal_origin.unwrap_or("'none'");
    let csp = format!(
        "default-src 'none'; style-src {}; form-action {own_origin}; frame-ancestors {ancestors}; \
         base-uri 'none'",
        style_hash()
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, csp)
        .body(Body::from(body))
        .expect("static response parts")
}

/// Serves the page's three routes. `placement_url` is our `PLACEMENT_HANDLER`.
pub struct PlacementPages {
    pub console: PlacementConsole,
    pub placement_url: String,
    /// The console's channels page, linked when a line has nothing to attach.
    pub console_url: String,
}

/// Which of the page's routes.
#[derive(Clone, Copy)]
pub enum Action {
    Open,
    Attach,
    Detach,
}

impl PlacementPages {
    /// Serves one request; `wants_json`: the caller accepts JSON only (errors are then
    /// `{"error": {"code", "message"}}`, the page itself stays HTML).
    pub async fn handle(&self, action: Action, body: &[u8], wants_json: bool) -> Response<Body> {
        let own = origin_of(&self.placement_url);
        let form = match parse_form(body) {
            Ok(f) => f,
            Err(e) => {
                let t = texts(None);
                let status = match e {
                    FormError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                let msg = fill(t.e_malformed, &[("detail", "unreadable form")]);
                return respond(status, error_page(t, msg), None, &own);
            }
        };
        let t = texts(
            lang_of(&form)
                .or_else(|| text_of(form.get("lang")))
                .as_deref(),
        );
        let result = match action {
            Action::Open => match PlacementRequest::from_form(&form) {
                Ok(request) => self.console.open(request).await,
                Err(m) => Err(PlacementFailure::from(PlacementError::Malformed(m))),
            },
            Action::Attach | Action::Detach => {
                let token = text_of(form.get("token")).unwrap_or_default();
                let channel = text_of(form.get("channel")).unwrap_or_default();
                if matches!(action, Action::Attach) {
                    self.console.attach(&token, &channel).await
                } else {
                    self.console.detach(&token, &channel).await
                }
            }
        };
        match result {
            Ok(page) => {
                let body = render_page(t, &page, &self.placement_url, &self.console_url);
                respond(StatusCode::OK, body, Some(&page.portal_origin), &own)
            }
            Err(f) => {
                let (status, message) = failure(t, &f.error);
                if status.is_server_error() {
                    tracing::error!(error = %f.error, status = status.as_u16(), "placement page failed");
                } else {
                    tracing::warn!(error = %f.error, status = status.as_u16(), "placement page refused");
                }
                if wants_json {
                    return ApiError::new(status, code(&f.error), message)
                        .into_response()
                        .map(Body::from);
                }
                respond(
                    status,
                    error_page(t, message),
                    f.portal_origin.as_deref(),
                    &own,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wappline::bitrix::ConnectorId;

    fn page() -> PlacementPage {
        PlacementPage {
            portal_origin: "https://x.bitrix24.com".into(),
            domain: "x.bitrix24.com".into(),
            connector: ConnectorId::parse("wappline_whatsapp").unwrap(),
            kind: ChannelKind::WhatsApp,
            line: 2,
            portal_line: 1,
            status: None,
            channels: vec![
                ChannelRow {
                    kind: ChannelKind::WhatsApp,
                    id: "111".into(),
                    label: "+1 555 <b>".into(),
                    line: Some(2),
                },
                ChannelRow {
                    kind: ChannelKind::WhatsApp,
                    id: "222".into(),
                    label: "222".into(),
                    line: None,
                },
            ],
            token: "v1.abc.def".into(),
            change: Some(Change::Attached("+1 555 <b>".into())),
        }
    }

    #[test]
    fn the_page_is_escaped_labelled_and_in_both_languages() {
        let html = render_page(&EN, &page(), "https://w.example/bitrix/placement", CONSOLE);
        assert!(html.contains("<html lang=\"en\">"));
        assert!(!html.contains("<b>"), "labels are escaped");
        assert!(html.contains("action=\"https://w.example/bitrix/placement/detach\""));
        assert!(html.contains("action=\"https://w.example/bitrix/placement/attach\""));
        assert!(html.contains("name=\"token\" value=\"v1.abc.def\""));
        assert!(html.contains("aria-label=\"Attach to this line: 222\""));
        assert!(html.contains("role=\"status\""));
        assert!(!html.contains("<script"));
        let ru = render_page(&RU, &page(), "https://w.example/bitrix/placement", CONSOLE);
        assert!(ru.contains("<html lang=\"ru\">"));
        assert!(ru.contains("WhatsApp в открытой линии 2"));
        assert!(ru.contains("Подключить к этой линии"));
        assert!(std::ptr::eq(texts(Some("ru")), &RU));
        assert!(std::ptr::eq(texts(Some("de")), &EN));
    }

    const CONSOLE: &str = "https://w.example/app/channels";

    #[test]
    fn a_line_with_nothing_to_attach_links_to_the_console_in_a_new_tab() {
        let link = "<a href=\"https://w.example/app/channels\" target=\"_blank\" rel=\"noopener\"";
        let mut empty = page();
        empty.channels.clear();
        empty.kind = ChannelKind::Instagram;
        let url = "https://w.example/bitrix/placement";
        let html = render_page(&EN, &empty, url, CONSOLE);
        assert!(html.contains(link), "{html}");
        assert!(html.contains("Connect Instagram in the Wappline console (opens in a new tab)"));
        let ru = render_page(&RU, &empty, url, CONSOLE);
        assert!(ru.contains(link));
        assert!(ru.contains("Подключить Instagram в консоли Wappline (откроется в новой вкладке)"));
        // With channels to attach, the table, not the link.
        assert!(!render_page(&EN, &page(), url, CONSOLE).contains(link));
    }

    #[test]
    fn the_csp_allows_the_portal_frame_and_our_style_only() {
        let r = respond(
            StatusCode::OK,
            String::new(),
            Some("https://x.bitrix24.com"),
            "https://w.example",
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("frame-ancestors https://x.bitrix24.com;"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("form-action https://w.example;"));
        assert!(csp.contains(&style_hash()));
        assert!(!csp.contains("unsafe"));
        let r = respond(
            StatusCode::FORBIDDEN,
            String::new(),
            None,
            "https://w.example",
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
