//! Open Lines in the console (decision 0072): the Open Line each WhatsApp number and Instagram
//! account sits on (its id and, read from the portal with `imopenlines.config.get`, its
//! name), and, for those who may manage channels, attaching a channel to a line of the
//! tenant's portal or detaching it. The change is the one the connector settings page inside
//! the portal makes ([`wappline::portal::line_change::OpenLines`], decision 0043): the same
//! one-channel-per-line claim, the same `imconnector` calls, the same audit entries; only the
//! actor differs (`user:<id>`).

use std::collections::HashMap;

use lambda_http::http::StatusCode;
use wappline::bitrix::OpenLineId;
use wappline::portal::line_change::LineChangeError;
use wappline::portal::line_status::channel_label;
use wappline::portal::{Portal, PortalError};
use wappline::tenant::{ChannelKind, ChannelSummary, LineError};

use crate::i18n::Lang;
use crate::web::{Ctx, Fail, Reply};

/// The words of the lines section, per language (kept apart from the shared texts).
pub(crate) struct LinesText {
    pub title: &'static str,
    pub help: &'static str,
    pub line: &'static str,
    /// After the line of a channel without a line of its own.
    pub portal_line: &'static str,
    pub attach: &'static str,
    pub detach: &'static str,
    pub line_number: &'static str,
    pub attached: &'static str,
    pub detached: &'static str,
    pub no_portal: &'static str,
    pub not_configured: &'static str,
    pub line_invalid: &'static str,
    pub channel_not_found: &'static str,
    pub not_attachable: &'static str,
    /// `{line}`: the line the channel is on.
    pub attached_elsewhere: &'static str,
    /// `{line}`, `{holder}`.
    pub line_taken: &'static str,
    /// `{line}`.
    pub not_attached: &'static str,
    /// Followed by the method and Bitrix24's error code.
    pub bitrix_refused: &'static str,
    pub unavailable: &'static str,
}

static EN: LinesText = LinesText {
    title: "Open Lines",
    help: "Each WhatsApp number or Instagram account can have an Open Line of its own in your portal, one channel per line. A channel without a line of its own uses the portal's line.",
    line: "Open Line",
    portal_line: "(the portal's line)",
    attach: "Attach",
    detach: "Detach",
    line_number: "Open Line number",
    attached: "The channel is attached to the Open Line; Bitrix24 shows it in the Contact Center.",
    detached: "The channel is detached from the Open Line; it uses the portal's line again.",
    no_portal: "No Bitrix24 portal is connected: connect one first.",
    not_configured: "This installation has no Bitrix24 application, so Open Lines cannot be changed here.",
    line_invalid: "Enter the Open Line's number (a whole number from 1).",
    channel_not_found: "That channel is not connected to this account.",
    not_attachable: "Only WhatsApp numbers and Instagram accounts go to Open Lines.",
    attached_elsewhere: "The channel is attached to Open Line {line}; detach it there first.",
    line_taken: "Open Line {line} already carries {holder}; detach it first.",
    not_attached: "The channel is not attached to Open Line {line}.",
    bitrix_refused: "Bitrix24 refused the change, nothing changed:",
    unavailable: "The change could not be made just now; nothing changed. Try again.",
};

static RU: LinesText = LinesText {
    title: "Открытые линии",
    help: "У каждого номера WhatsApp и аккаунта Instagram может быть своя открытая линия на вашем портале, по одному каналу на линию. Канал без своей линии использует линию портала.",
    line: "Открытая линия",
    portal_line: "(линия портала)",
    attach: "Подключить",
    detach: "Отключить",
    line_number: "Номер открытой линии",
    attached: "Канал подключён к открытой линии; Битрикс24 показывает его в Контакт-центре.",
    detached: "Канал отключён от открытой линии; он снова использует линию портала.",
    no_portal: "Портал Битрикс24 не подключён: сначала подключите его.",
    not_configured: "В этой установке нет приложения Битрикс24, поэтому открытые линии здесь не меняются.",
    line_invalid: "Введите номер открытой линии (целое число от 1).",
    channel_not_found: "Этот канал не подключён к этому аккаунту.",
    not_attachable: "К открытым линиям подключаются только номера WhatsApp и аккаунты Instagram.",
    attached_elsewhere: "Канал подключён к открытой линии {line}; сначала отключите его там.",
    line_taken: "К открытой линии {line} уже подключён {holder}; сначала отключите его.",
    not_attached: "Канал не подключён к открытой линии {line}.",
    bitrix_refused: "Битрикс24 отклонил изменение, ничего не изменилось:",
    unavailable: "Изменение сейчас не удалось; ничего не изменилось. Попробуйте ещё раз.",
};

pub(crate) fn text(lang: Lang) -> &'static LinesText {
    match lang {
        Lang::Ru => &RU,
        _ => &EN,
    }
}

/// One channel and its line, as both pages show it.
pub(crate) struct LineRow {
    pub kind: &'static str,
    pub kind_code: &'static str,
    pub id: String,
    pub label: String,
    /// The line it is attached to on the tenant's portal (None: the portal's own line).
    pub line: Option<u64>,
    /// `2 · Sales`, or `1 · Main (the portal's line)`; empty without a portal.
    pub line_text: String,
}

/// What a change did, shown on the Bitrix24 page.
pub(crate) struct Outcome {
    pub status: StatusCode,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::WhatsApp => "WhatsApp",
        ChannelKind::Instagram => "Instagram",
        ChannelKind::Bitrix24 => "Bitrix24",
    }
}

fn line_text(line: u64, names: &HashMap<u64, String>) -> String {
    match names.get(&line) {
        Some(name) => format!("{line} · {name}"),
        None => line.to_string(),
    }
}

/// The tenant's WhatsApp numbers and Instagram accounts with their lines: from what we store,
/// the names from the portal when it answers.
pub(crate) async fn rows(ctx: &Ctx<'_>, summaries: &[ChannelSummary]) -> Vec<LineRow> {
    let tx = text(ctx.lang);
    let portal = Portal::load(&ctx.scope).await.ok();
    let member = portal.as_ref().map(|p| p.channel.external_id().to_owned());
    let attached_to = |c: &ChannelSummary| {
        c.open_line
            .as_ref()
            .filter(|a| Some(&a.member_id) == member.as_ref())
            .map(|a| a.line)
    };
    let channels: Vec<&ChannelSummary> = summaries
        .iter()
        .filter(|c| c.kind != ChannelKind::Bitrix24)
        .collect();
    let mut names = HashMap::new();
    if let (Some(mut portal), Some(lines)) = (portal, ctx.s.open_lines.as_ref()) {
        let mut wanted: Vec<OpenLineId> = vec![portal.line];
        wanted.extend(
            channels
                .iter()
                .filter_map(|c| attached_to(c))
                .filter_map(|l| OpenLineId::new(l).ok()),
        );
        let portal_line = portal.line.get();
        names.extend(lines.line_names(&ctx.scope, &mut portal, &wanted).await);
        return channels
            .iter()
            .map(|c| {
                let line = attached_to(c);
                let line_text = match line {
                    Some(l) => line_text(l, &names),
                    None => format!("{} {}", line_text(portal_line, &names), tx.portal_line),
                };
                row(c, line, line_text)
            })
            .collect();
    }
    channels
        .iter()
        .map(|c| row(c, attached_to(c), String::new()))
        .collect()
}

fn row(c: &ChannelSummary, line: Option<u64>, line_text: String) -> LineRow {
    LineRow {
        kind: kind_label(c.kind),
        kind_code: c.kind.name(),
        id: c.id.clone(),
        label: channel_label(c),
        line,
        line_text,
    }
}

fn refused(status: StatusCode, message: String) -> Outcome {
    Outcome {
        status,
        notice: None,
        error: Some(message),
    }
}

/// The error in words, and its status. Nothing changed in any case.
fn explain(ctx: &Ctx<'_>, e: LineChangeError) -> Outcome {
    let tx = text(ctx.lang);
    let with_line = |s: &str, line: u64| s.replace("{line}", &line.to_string());
    match e {
        LineChangeError::Line(LineError::ChannelNotFound(_)) => {
            refused(StatusCode::NOT_FOUND, tx.channel_not_found.into())
        }
        LineChangeError::Line(LineError::NotAttachable(_)) => {
            refused(StatusCode::BAD_REQUEST, tx.not_attachable.into())
        }
        LineChangeError::Line(LineError::AttachedElsewhere(line)) => {
            refused(StatusCode::CONFLICT, with_line(tx.attached_elsewhere, line))
        }
        LineChangeError::Line(LineError::LineTaken { line, holder }) => refused(
            StatusCode::CONFLICT,
            with_line(tx.line_taken, line).replace("{holder}", &holder),
        ),
        LineChangeError::Line(LineError::NotAttached(line)) => {
            refused(StatusCode::CONFLICT, with_line(tx.not_attached, line))
        }
        LineChangeError::Bitrix { method, error } => {
            tracing::warn!(tenant = %ctx.user.tenant, method, code = error.code().unwrap_or(""),
                "Bitrix24 refused an Open Line change from the console");
            let code = error.code().unwrap_or(error.kind()).to_owned();
            refused(
                StatusCode::BAD_GATEWAY,
                format!("{} {method}: {code}", tx.bitrix_refused),
            )
        }
        LineChangeError::Line(e) => {
            tracing::error!(tenant = %ctx.user.tenant, error = %e, "open line change failed");
            refused(StatusCode::SERVICE_UNAVAILABLE, tx.unavailable.into())
        }
        LineChangeError::Unavailable(e) => {
            tracing::error!(tenant = %ctx.user.tenant, error = %e, "open line change failed");
            refused(StatusCode::SERVICE_UNAVAILABLE, tx.unavailable.into())
        }
    }
}

/// Attaches (`attach`) or detaches the channel the form names to or from the line it names.
pub(crate) async fn change(ctx: &Ctx<'_>, attach: bool) -> Result<Reply, Fail> {
    let outcome = match apply(ctx, attach).await {
        Ok(()) => Outcome {
            status: StatusCode::OK,
            notice: Some(if attach {
                text(ctx.lang).attached
            } else {
                text(ctx.lang).detached
            }),
            error: None,
        },
        Err(o) => o,
    };
    crate::bitrix::page_after(ctx, outcome).await
}

async fn apply(ctx: &Ctx<'_>, attach: bool) -> Result<(), Outcome> {
    let tx = text(ctx.lang);
    let Some(lines) = ctx.s.open_lines.as_ref() else {
        return Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            tx.not_configured.into(),
        ));
    };
    let line = ctx
        .field("line")
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|l| OpenLineId::new(l).ok())
        .ok_or_else(|| refused(StatusCode::BAD_REQUEST, tx.line_invalid.into()))?;
    let kind = ChannelKind::from_name(ctx.field("kind"));
    let id = ctx.field("id");
    // Only the tenant's own channels are found: the scope is the signed-in user's tenant.
    let summaries = ctx.scope.channels().await.map_err(|e| {
        tracing::error!(tenant = %ctx.user.tenant, error = %e, "channels not read");
        refused(StatusCode::SERVICE_UNAVAILABLE, tx.unavailable.into())
    })?;
    let summary = summaries
        .into_iter()
        .find(|c| Some(c.kind) == kind && c.id == id)
        .ok_or_else(|| refused(StatusCode::NOT_FOUND, tx.channel_not_found.into()))?;
    let mut portal = match Portal::load(&ctx.scope).await {
        Ok(p) => p,
        Err(PortalError::NotConnected(_)) => {
            return Err(refused(StatusCode::CONFLICT, tx.no_portal.into()))
        }
        Err(PortalError::Tenant(e)) => {
            tracing::error!(tenant = %ctx.user.tenant, error = %e, "portal not read");
            return Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                tx.unavailable.into(),
            ));
        }
    };
    let actor = ctx.actor();
    let done = if attach {
        lines
            .attach(&ctx.scope, &mut portal, &summary, line, &actor)
            .await
    } else {
        lines
            .detach(&ctx.scope, &mut portal, &summary, line, &actor)
            .await
    };
    done.map_err(|e| explain(ctx, e))
}
