//! The signed-in pages: channels (with what disconnecting revoked), retention, exports,
//! contact erasure and the account's deletion. Each handler calls the shared service the
//! admin API's matching route calls; a change ends in a redirect to its page with a notice
//! (`?done=`), bad input in the page again with a 4xx and the error.

use std::time::Duration;

use askama::Template;
use lambda_http::http::StatusCode;
use wappline::accounts::Permission;
use wappline::coexistence::Coexistence;
use wappline::erasure::tenant::DEFAULT_GRACE;
use wappline::erasure::ErasureError;
use wappline::export::{ExportError, ExportFile, ExportId, ExportRecord, ExportScope, ExportState};
use wappline::ids::PhoneNumberId;
use wappline::meta::{AccountRef, CustomerId};
use wappline::revocation::{Revocation, StepKind, StepState};
use wappline::tenant::{
    ChannelHealth, ChannelKind, ChannelRef, RetentionDays, TenantError, TenantName,
};

use crate::i18n::Text;
use crate::web::{self, when, Chrome, Ctx, Fail, Reply};
use crate::Action;

/// How long a download link made for the console works: long enough to start the download.
const DOWNLOAD_LINK: Duration = Duration::from_secs(300);

/// The notice a `?done=` code names (a fixed set: no text comes from the URL).
pub(crate) fn notice(t: &Text, code: &str) -> Option<&'static str> {
    Some(match code {
        "signed_out" => t.signed_out,
        "disconnected" => t.disconnected,
        "history" => t.history_import_changed,
        "retention_saved" => t.retention_saved,
        "export_requested" => t.export_requested,
        "deletion_requested" => t.deletion_requested,
        "deletion_cancelled" => t.deletion_cancelled,
        "company_saved" => t.company_saved,
        "user_changed" => t.user_changed,
        "user_removed" => t.user_removed,
        "invitation_withdrawn" => t.invitation_withdrawn,
        "api_key_revoked" => t.api_key_revoked,
        "name_saved" => t.name_saved,
        "email_link_sent" => t.email_link_sent,
        "email_changed" => t.email_changed,
        "policy_acknowledged" => t.policy_acknowledged,
        "password_changed" => t.password_changed,
        "password_reset" => t.password_reset_done,
        _ => return None,
    })
}

pub(crate) async fn serve(ctx: &Ctx<'_>, action: Action) -> Result<Reply, Fail> {
    use Action::*;
    match action {
        Home => Ok(Reply::redirect("/app/channels")),
        Channels => channels(ctx).await,
        Disconnect => disconnect(ctx).await,
        SetHistoryImport => set_history_import(ctx).await,
        Retention => retention(ctx, StatusCode::OK, None).await,
        SetRetention => set_retention(ctx).await,
        Exports => exports(ctx).await,
        RequestExport => request_export(ctx).await,
        DownloadExport => download(ctx).await,
        Erasure => erasure(ctx, StatusCode::OK, None).await,
        EraseContact => erase_contact(ctx).await,
        Account => account(ctx, StatusCode::OK, None).await,
        Rename => rename(ctx).await,
        DeleteAccount => delete_account(ctx).await,
        CancelDeletion => cancel_deletion(ctx).await,
        SignOut => crate::sign_in::sign_out(ctx).await,
        Users => crate::team::users(ctx, StatusCode::OK, None, None).await,
        Invite => crate::team::invite(ctx).await,
        SetRole => crate::team::set_role(ctx).await,
        RemoveUser => crate::team::remove_user(ctx).await,
        WithdrawInvitation => crate::team::withdraw_invitation(ctx).await,
        ApiKeys => crate::team::api_keys(ctx, None).await,
        CreateApiKey => crate::team::create_api_key(ctx).await,
        RevokeApiKey => crate::team::revoke_api_key(ctx).await,
        Audit => crate::team::audit(ctx).await,
        Usage => crate::usage::usage(ctx).await,
        Bitrix24 => crate::bitrix::page(ctx, StatusCode::OK, None, None).await,
        IssueConnectionCode => crate::bitrix::issue(ctx).await,
        AttachLine => crate::lines::change(ctx, true).await,
        DetachLine => crate::lines::change(ctx, false).await,
        ConnectWhatsApp => crate::connect::whatsapp(ctx).await,
        StartInstagram => crate::connect::instagram_start(ctx).await,
        InstagramCallback => crate::connect::instagram_callback(ctx).await,
        SetDisplayName => crate::profile::set_display_name(ctx).await,
        RequestEmailChange => crate::profile::request_email_change(ctx).await,
        AcknowledgePolicy => crate::profile::acknowledge_policy(ctx).await,
        PasswordPage => crate::account_pages::change_page(ctx, StatusCode::OK, None),
        ChangePassword => crate::account_pages::change_password(ctx).await,
    }
}

fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::WhatsApp => "WhatsApp",
        ChannelKind::Instagram => "Instagram",
        ChannelKind::Bitrix24 => "Bitrix24",
    }
}

// ---- Channels ------------------------------------------------------------------------

struct ChannelRow {
    kind: &'static str,
    kind_code: &'static str,
    id: String,
    /// The display number, username or portal domain, when known.
    name: String,
    status: &'static str,
    /// `ok` or `warn`: the status's style.
    tone: &'static str,
    connected: String,
    /// WhatsApp numbers: whether their Coexistence history is imported (decision 0052).
    history_import: Option<bool>,
    /// WhatsApp numbers and Instagram accounts: their Open Line (decision 0072).
    line: String,
}

struct StepRow {
    step: &'static str,
    state: &'static str,
}

struct RevocationRow {
    kind: &'static str,
    channel: String,
    state: &'static str,
    created: String,
    steps: Vec<StepRow>,
    tokens: &'static str,
}

#[derive(Template)]
#[template(path = "channels.html")]
struct ChannelsPage {
    c: Chrome,
    lt: &'static crate::lines::LinesText,
    channels: Vec<ChannelRow>,
    revocations: Vec<RevocationRow>,
    may_manage: bool,
    /// Connect WhatsApp and Instagram, for those who may (decision 0046).
    connect: Option<crate::connect::ConnectSection>,
}

fn step_state(t: &Text, s: StepState) -> &'static str {
    match s {
        StepState::Pending => t.rv_pending,
        StepState::Done => t.rv_done,
        StepState::Skipped => t.rv_skipped,
        StepState::Failed => t.rv_failed,
    }
}

fn step_name(t: &Text, s: StepKind) -> &'static str {
    match s {
        StepKind::WhatsAppSubscription => t.step_whatsapp_subscription,
        StepKind::InstagramPageSubscription => t.step_instagram_page_subscription,
        StepKind::InstagramPermissions => t.step_instagram_permissions,
        StepKind::Bitrix24Connectors => t.step_bitrix24_connectors,
        StepKind::Bitrix24Events => t.step_bitrix24_events,
        StepKind::Bitrix24MessageProvider => t.step_bitrix24_message_provider,
    }
}

fn revocation_row(t: &Text, r: &Revocation) -> RevocationRow {
    let state = match r.revocation {
        "pending" => t.rv_pending,
        "failed" => t.rv_failed,
        _ => t.rv_done,
    };
    RevocationRow {
        kind: kind_label(r.kind),
        channel: r.channel.clone(),
        state,
        created: when(r.created_at),
        steps: r
            .steps
            .iter()
            .map(|s| StepRow {
                step: step_name(t, s.step),
                state: step_state(t, s.state),
            })
            .collect(),
        tokens: if r.tokens_held {
            t.yes
        } else {
            t.tokens_deleted
        },
    }
}

async fn channels(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let t = ctx.t;
    let now = wappline::clock::now_secs();
    let summaries = ctx.scope.channels().await.map_err(Fail::from_tenant)?;
    let mut channels = summaries
        .iter()
        .map(|c| {
            let (status, tone) = match c.health(now) {
                ChannelHealth::Connected => (t.st_connected, "ok"),
                ChannelHealth::TokenExpiring => (t.st_token_expiring, "warn"),
                ChannelHealth::TokenRenewalFailed => (t.st_token_renewal_failed, "bad"),
                ChannelHealth::TokenExpired => (t.st_token_expired, "bad"),
                ChannelHealth::MetaRestricted => (t.st_meta_restricted, "bad"),
                ChannelHealth::Bitrix24Unreachable => (t.st_bitrix_unreachable, "bad"),
            };
            let mut name = ["display_phone_number", "username", "domain"]
                .iter()
                .find_map(|k| c.details.get(*k))
                .cloned()
                .unwrap_or_default();
            // A WhatsApp number's verified business name, recorded at connect (decision 0062).
            if let Some(verified) = c.details.get(wappline::ownership::VERIFIED_NAME_DETAIL) {
                name = if name.is_empty() {
                    verified.clone()
                } else {
                    format!("{name} · {verified}")
                };
            }
            ChannelRow {
                kind: kind_label(c.kind),
                kind_code: c.kind.name(),
                id: c.id.clone(),
                name,
                status,
                tone,
                connected: when(c.connected_at),
                history_import: None,
                line: String::new(),
            }
        })
        .collect::<Vec<ChannelRow>>();
    for l in crate::lines::rows(ctx, &summaries).await {
        if let Some(row) = channels
            .iter_mut()
            .find(|r| r.kind_code == l.kind_code && r.id == l.id)
        {
            row.line = l.line_text;
        }
    }
    let coexistence = Coexistence::new(ctx.s.tenants.store().clone());
    for row in channels.iter_mut().filter(|r| r.kind_code == "whatsapp") {
        if let Ok(number) = PhoneNumberId::parse(&row.id) {
            let settings = coexistence
                .settings(&ctx.user.tenant, &number)
                .await
                .map_err(|e| Fail::log("coexistence settings", e))?;
            row.history_import = Some(settings.history_import);
        }
    }
    let may_manage = ctx.may(Permission::ManageChannels);
    // The revocation records are shown to those who may disconnect (the admin API's
    // `/revocations` needs the same permission).
    let revocations = if may_manage {
        let mut all = ctx
            .s
            .revocations
            .list(&ctx.user.tenant)
            .await
            .map_err(|e| Fail::log("revocation list", e))?;
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        all.iter().map(|r| revocation_row(t, r)).collect()
    } else {
        Vec::new()
    };
    let (connect, csp) = if may_manage {
        let (section, csp) = ctx.s.onboarding.section(crate::connect::text::of(ctx.lang));
        (Some(section), csp)
    } else {
        (None, None)
    };
    let page = ChannelsPage {
        c: ctx.chrome("/app/channels"),
        lt: crate::lines::text(ctx.lang),
        channels,
        revocations,
        may_manage,
        connect,
    };
    Ok(Reply::html(StatusCode::OK, &page)?.with_csp(csp))
}

async fn disconnect(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let kind = ChannelKind::from_name(ctx.field("kind")).ok_or_else(Fail::not_found)?;
    let channel = ChannelRef::parse(kind, ctx.field("id")).map_err(|_| Fail::not_found())?;
    let actor = ctx.actor();
    match ctx
        .s
        .revocations
        .disconnect_by(&ctx.scope, &channel, &actor)
        .await
    {
        Ok(r) => {
            tracing::info!(tenant = %ctx.user.tenant, %kind, channel = %channel.external_id(), revocation = r.revocation, "channel disconnected from the console");
            Ok(Reply::redirect("/app/channels?done=disconnected"))
        }
        Err(wappline::revocation::RevocationError::Tenant(e)) => Err(Fail::from_tenant(e)),
        Err(e) => Err(Fail::log("disconnect", e)),
    }
}

/// Turns a WhatsApp number's Coexistence history import on or off (decision 0052).
async fn set_history_import(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let number = PhoneNumberId::parse(ctx.field("id")).map_err(|_| Fail::not_found())?;
    let on = match ctx.field("import") {
        "on" => true,
        "off" => false,
        _ => return Err(Fail::not_found()),
    };
    let channel = ChannelRef::WhatsApp(number.clone());
    if ctx
        .scope
        .channel(&channel)
        .await
        .map_err(Fail::from_tenant)?
        .is_none()
    {
        return Err(Fail::not_found());
    }
    let coexistence = Coexistence::new(ctx.s.tenants.store().clone());
    let mut settings = coexistence
        .settings(&ctx.user.tenant, &number)
        .await
        .map_err(|e| Fail::log("coexistence settings", e))?;
    settings.history_import = on;
    coexistence
        .set(&ctx.user.tenant, &number, settings, &ctx.actor())
        .await
        .map_err(|e| Fail::log("coexistence settings", e))?;
    tracing::info!(tenant = %ctx.user.tenant, channel = %number, history_import = on, "history import changed from the console");
    Ok(Reply::redirect("/app/channels?done=history"))
}

// ---- Retention -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "retention.html")]
struct RetentionPage {
    c: Chrome,
    days: String,
    max: u32,
    may_change: bool,
}

async fn retention(
    ctx: &Ctx<'_>,
    status: StatusCode,
    error: Option<fn(&Text) -> &'static str>,
) -> Result<Reply, Fail> {
    let profile = ctx
        .scope
        .profile()
        .await
        .map_err(Fail::from_tenant)?
        .ok_or_else(Fail::not_found)?;
    let mut c = ctx.chrome("/app/retention");
    c.error = error.map(|e| e(ctx.t));
    let days = if error.is_some() {
        ctx.field("retention_days").to_owned()
    } else {
        profile.retention_days.to_string()
    };
    let page = RetentionPage {
        c,
        days,
        max: wappline::tenant::MAX_RETENTION_DAYS,
        may_change: ctx.may(Permission::ChangeSettings),
    };
    Reply::html(status, &page)
}

async fn set_retention(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let invalid: fn(&Text) -> &'static str = |t| t.retention_invalid;
    let Some(days) = ctx
        .field("retention_days")
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|d| RetentionDays::new(d).ok())
    else {
        return retention(ctx, StatusCode::BAD_REQUEST, Some(invalid)).await;
    };
    let change = match ctx.scope.set_retention(days, &ctx.actor()).await {
        Ok(change) => change,
        Err(TenantError::Invalid(_)) => {
            return retention(ctx, StatusCode::BAD_REQUEST, Some(invalid)).await
        }
        Err(e) => return Err(Fail::from_tenant(e)),
    };
    if change.changed {
        tracing::info!(tenant = %ctx.user.tenant, from = change.previous_days, to = change.retention_days, "retention changed from the console");
    }
    Ok(Reply::redirect("/app/retention?done=retention_saved"))
}

// ---- Exports -------------------------------------------------------------------------

struct FileLink {
    name: &'static str,
    href: String,
}

struct ExportRow {
    id: String,
    state: &'static str,
    requested: String,
    files: Vec<FileLink>,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    c: Chrome,
    exports: Vec<ExportRow>,
    /// An export is still being written: the page refreshes itself.
    running: bool,
}

fn export_row(t: &Text, r: &ExportRecord) -> ExportRow {
    let state = match r.state {
        ExportState::Requested => t.ex_requested,
        ExportState::Running => t.ex_running,
        ExportState::Completed => t.ex_completed,
    };
    let files = if r.state == ExportState::Completed {
        r.files
            .iter()
            .map(|f| FileLink {
                name: f.name,
                href: format!("/app/exports/download?id={}&file={}", r.id.as_str(), f.name),
            })
            .collect()
    } else {
        Vec::new()
    };
    ExportRow {
        id: r.id.as_str().to_owned(),
        state,
        requested: when(r.requested_at),
        files,
    }
}

async fn exports(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let mut records = ctx
        .s
        .exports
        .exports
        .list(&ctx.user.tenant)
        .await
        .map_err(|e| Fail::log("export list", e))?;
    records.sort_by_key(|r| std::cmp::Reverse(r.requested_at));
    let page = ExportsPage {
        c: ctx.chrome("/app/exports"),
        running: records.iter().any(|r| r.state != ExportState::Completed),
        exports: records.iter().map(|r| export_row(ctx.t, r)).collect(),
    };
    Reply::html(StatusCode::OK, &page)
}

async fn request_export(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let record = ctx
        .s
        .exports
        .request(&ctx.user.tenant, ExportScope::Tenant, &ctx.actor())
        .await
        .map_err(|e| Fail::log("export request", e))?;
    tracing::info!(tenant = %ctx.user.tenant, export = record.id.as_str(), "export requested from the console");
    Ok(Reply::redirect("/app/exports?done=export_requested"))
}

/// A completed export's file: a short-lived signed link, and the browser is sent to it.
async fn download(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let id = web::query(ctx.req, "id")
        .and_then(|v| ExportId::parse(v).ok())
        .ok_or_else(Fail::not_found)?;
    let file = web::query(ctx.req, "file")
        .and_then(ExportFile::from_name)
        .ok_or_else(Fail::not_found)?;
    match ctx
        .s
        .exports
        .exports
        .link(&ctx.user.tenant, &id, file, Some(DOWNLOAD_LINK))
        .await
    {
        Ok(link) => Ok(Reply::redirect(link.url)),
        Err(ExportError::NotFound) => Err(Fail::not_found()),
        Err(ExportError::NotReady) => Err(Fail::new(StatusCode::CONFLICT, "not_ready", |t| {
            t.export_requested
        })),
        Err(e) => Err(Fail::log("export link", e)),
    }
}

// ---- Contact erasure -----------------------------------------------------------------

struct ChannelOption {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "erasure.html")]
struct ErasurePage {
    c: Chrome,
    channels: Vec<ChannelOption>,
    /// The request just made and its state.
    request: Option<(String, String)>,
}

async fn erasure(
    ctx: &Ctx<'_>,
    status: StatusCode,
    error: Option<fn(&Text) -> &'static str>,
) -> Result<Reply, Fail> {
    let channels = ctx
        .scope
        .channels()
        .await
        .map_err(Fail::from_tenant)?
        .into_iter()
        .filter(|c| c.kind != ChannelKind::Bitrix24)
        .map(|c| ChannelOption {
            value: format!("{}:{}", c.kind.name(), c.id),
            label: format!(
                "{} {}",
                kind_label(c.kind),
                ["display_phone_number", "username"]
                    .iter()
                    .find_map(|k| c.details.get(*k))
                    .unwrap_or(&c.id)
            ),
        })
        .collect();
    // The request named in the URL is read in this tenant's own partition only.
    let request = match web::query(ctx.req, "request")
        .filter(|r| r.starts_with("er_") && r.len() == 27 && r.is_ascii())
    {
        Some(id) => match ctx.s.contacts.status(&ctx.user.tenant, id).await {
            Ok(s) => Some((s.request_id, s.state)),
            Err(ErasureError::NotFound) => return Err(Fail::not_found()),
            Err(e) => return Err(Fail::log("erasure status", e)),
        },
        None => None,
    };
    let mut c = ctx.chrome("/app/erasure");
    c.error = error.map(|e| e(ctx.t));
    let page = ErasurePage {
        c,
        channels,
        request,
    };
    Reply::html(status, &page)
}

async fn erase_contact(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let invalid: fn(&Text) -> &'static str = |t| t.erasure_invalid;
    // The channel must be one of this tenant's (the form offers only those).
    let owned = ctx.scope.channels().await.map_err(Fail::from_tenant)?;
    let subject = ctx
        .field("channel")
        .split_once(':')
        .filter(|(kind, id)| {
            owned
                .iter()
                .any(|c| c.kind.name() == *kind && c.id == *id && c.kind != ChannelKind::Bitrix24)
        })
        .and_then(|(kind, id)| AccountRef::parse(kind, id).ok())
        .and_then(|account| {
            // People write numbers with spaces, dashes and brackets.
            let customer: String = ctx
                .field("customer")
                .chars()
                .filter(|ch| !matches!(ch, ' ' | '-' | '(' | ')'))
                .collect();
            CustomerId::parse_for(&account, &customer)
                .ok()
                .map(|c| (account, c))
        });
    let Some((account, customer)) = subject else {
        return erasure(ctx, StatusCode::BAD_REQUEST, Some(invalid)).await;
    };
    let id = ctx
        .s
        .contacts
        .request(&ctx.user.tenant, account, customer, &ctx.actor())
        .await
        .map_err(|e| Fail::log("contact erasure request", e))?;
    tracing::info!(tenant = %ctx.user.tenant, request = %id, "contact erasure requested from the console");
    Ok(Reply::redirect(format!("/app/erasure?request={id}")))
}

// ---- Account deletion ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    c: Chrome,
    company: String,
    may_rename: bool,
    /// `none`, `pending` or `started`.
    deletion: &'static str,
    not_before: String,
    may_delete: bool,
    grace_days: u64,
    my_name: String,
    my_email: String,
    new_email: String,
    /// The privacy-policy version the user acknowledged, in words when none.
    policy_seen: String,
}

pub(crate) async fn account(
    ctx: &Ctx<'_>,
    code: StatusCode,
    error: Option<fn(&Text) -> &'static str>,
) -> Result<Reply, Fail> {
    let profile = ctx
        .scope
        .profile()
        .await
        .map_err(Fail::from_tenant)?
        .ok_or_else(Fail::not_found)?;
    let status = ctx
        .s
        .tenant_erasure
        .status(&ctx.user.tenant)
        .await
        .map_err(|e| Fail::log("account erasure status", e))?;
    let (deletion, not_before) = match &status {
        Some(s) if s.state == "pending" => ("pending", when(s.not_before)),
        Some(s) if s.state == "cancelled" => ("none", String::new()),
        Some(_) => ("started", String::new()),
        None => ("none", String::new()),
    };
    let mut c = ctx.chrome("/app/account");
    c.error = error.map(|e| e(ctx.t));
    // A refused form shows what was typed in its own field only.
    let company = if error.is_some() && ctx.action == crate::Action::Rename {
        ctx.field("name").to_owned()
    } else {
        profile.name
    };
    let my_name = if error.is_some() && ctx.action == crate::Action::SetDisplayName {
        ctx.field("name").to_owned()
    } else {
        ctx.name.clone()
    };
    let page = AccountPage {
        c,
        company,
        may_rename: ctx.may(Permission::ChangeSettings),
        deletion,
        not_before,
        may_delete: ctx.may(Permission::EraseAccount),
        grace_days: DEFAULT_GRACE.as_secs() / 86_400,
        my_name,
        my_email: ctx.email.clone(),
        new_email: ctx.field("email").to_owned(),
        policy_seen: ctx
            .policy_seen
            .clone()
            .unwrap_or_else(|| ctx.t.policy_not_seen.to_owned()),
    };
    Reply::html(code, &page)
}

/// Corrects the company name (the tenant's name).
async fn rename(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let invalid: fn(&Text) -> &'static str = |t| t.company_invalid;
    let Ok(name) = TenantName::parse(ctx.field("name").trim()) else {
        return account(ctx, StatusCode::BAD_REQUEST, Some(invalid)).await;
    };
    match ctx.scope.rename(&name, &ctx.actor()).await {
        Ok(changed) => {
            tracing::info!(tenant = %ctx.user.tenant, changed, "company name corrected from the console");
            Ok(Reply::redirect("/app/account?done=company_saved"))
        }
        Err(TenantError::Invalid(_)) => account(ctx, StatusCode::BAD_REQUEST, Some(invalid)).await,
        Err(e) => Err(Fail::from_tenant(e)),
    }
}

async fn delete_account(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let status = ctx
        .s
        .tenant_erasure
        .request(&ctx.user.tenant, DEFAULT_GRACE, &ctx.actor())
        .await
        .map_err(|e| Fail::log("account erasure request", e))?;
    tracing::info!(tenant = %ctx.user.tenant, not_before = status.not_before, "account deletion requested from the console");
    Ok(Reply::redirect("/app/account?done=deletion_requested"))
}

async fn cancel_deletion(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    match ctx
        .s
        .tenant_erasure
        .cancel(&ctx.user.tenant, &ctx.actor())
        .await
    {
        Ok(()) => {
            tracing::info!(tenant = %ctx.user.tenant, "account deletion cancelled from the console");
            Ok(Reply::redirect("/app/account?done=deletion_cancelled"))
        }
        Err(ErasureError::NotFound) => {
            Err(Fail::new(StatusCode::CONFLICT, "nothing_to_cancel", |t| {
                t.deletion_started
            }))
        }
        Err(e) => Err(Fail::log("account erasure cancel", e)),
    }
}
