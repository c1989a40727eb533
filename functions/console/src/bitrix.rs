//! The Bitrix24 connection: the connected portal (its domain, line and whether the CRM sync
//! reaches it, decision 0025), and an install link for a portal to connect (the admin API's
//! `/bitrix24/connection-codes`: a code stored only as a hash, shown once), and the Open Line
//! of each WhatsApp number and Instagram account, attached and detached here (decision 0072,
//! [`crate::lines`]).

use askama::Template;
use lambda_http::http::StatusCode;
use wappline::accounts::Permission;
use wappline::bitrix::OpenLineId;
use wappline::tenant::ChannelKind;

use crate::i18n::Text;
use crate::lines::{LineRow, LinesText, Outcome};
use crate::web::{when, Chrome, Ctx, Fail, Reply};

struct PortalRow {
    member: String,
    domain: String,
    line: String,
    reachable: bool,
    since: String,
}

#[derive(Template)]
#[template(path = "bitrix24.html")]
struct BitrixPage {
    c: Chrome,
    portals: Vec<PortalRow>,
    may_manage: bool,
    /// A link just issued, and until when it works: shown this once.
    install: Option<(String, String)>,
    /// The WhatsApp numbers and Instagram accounts with their Open Lines.
    lines: Vec<LineRow>,
    lt: &'static LinesText,
    /// What an Open Line change just did.
    line_notice: Option<&'static str>,
    line_error: Option<String>,
}

pub(crate) async fn page(
    ctx: &Ctx<'_>,
    status: StatusCode,
    error: Option<fn(&Text) -> &'static str>,
    install: Option<(String, String)>,
) -> Result<Reply, Fail> {
    render(ctx, status, error, install, None).await
}

/// The page after an Open Line change (`crate::lines`).
pub(crate) async fn page_after(ctx: &Ctx<'_>, outcome: Outcome) -> Result<Reply, Fail> {
    render(ctx, outcome.status, None, None, Some(outcome)).await
}

async fn render(
    ctx: &Ctx<'_>,
    status: StatusCode,
    error: Option<fn(&Text) -> &'static str>,
    install: Option<(String, String)>,
    outcome: Option<Outcome>,
) -> Result<Reply, Fail> {
    let summaries = ctx.scope.channels().await.map_err(Fail::from_tenant)?;
    let lines = crate::lines::rows(ctx, &summaries).await;
    let portals = summaries
        .into_iter()
        .filter(|c| c.kind == ChannelKind::Bitrix24)
        .map(|c| PortalRow {
            member: c.id.clone(),
            domain: c.details.get("domain").cloned().unwrap_or_default(),
            line: c.details.get("line_id").cloned().unwrap_or_default(),
            reachable: !c.crm_link.as_ref().is_some_and(|l| l.is_unreachable()),
            since: when(c.connected_at),
        })
        .collect();
    let mut c = ctx.chrome("/app/bitrix24");
    c.error = error.map(|e| e(ctx.t));
    let (line_notice, line_error) = outcome.map_or((None, None), |o| (o.notice, o.error));
    let page = BitrixPage {
        c,
        portals,
        may_manage: ctx.may(Permission::ManageChannels),
        install,
        lines,
        lt: crate::lines::text(ctx.lang),
        line_notice,
        line_error,
    };
    Reply::html(status, &page)
}

pub(crate) async fn issue(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let Some(line) = ctx
        .field("line_id")
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|l| OpenLineId::new(l).ok())
    else {
        return page(
            ctx,
            StatusCode::BAD_REQUEST,
            Some(|t| t.bitrix_line_invalid),
            None,
        )
        .await;
    };
    let (codes, public_base) = &ctx.s.bitrix_codes;
    let issued = codes
        .issue(&ctx.user.tenant, line)
        .await
        .map_err(|e| Fail::log("connection code", e))?;
    tracing::info!(tenant = %ctx.user.tenant, line = %line, "bitrix24 connection code issued from the console");
    // Rendered here, not after a redirect: the code must not travel in a URL.
    let install = (issued.install_url(public_base), when(issued.expires_at));
    page(ctx, StatusCode::CREATED, None, Some(install)).await
}
