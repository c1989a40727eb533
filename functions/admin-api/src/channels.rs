//! A tenant's channels:
//!
//! - `POST   /admin/tenants/{id}/channels/{whatsapp|instagram|bitrix24}` connects one (201, or
//!   200 when it was connected already) once the supplied token proves ownership (decision
//!   0032): 422 `ownership_not_proven` when it does not, 503/502 when the provider cannot
//!   tell, 409 `cannot_connect` when another tenant holds the id; none of them stores
//!   anything, each is audited as `channel_connect_refused`
//! - `DELETE /admin/tenants/{id}/channels/{kind}/{channel_id}` disconnects it at once and
//!   revokes our access at the provider (decision 0036; the state is under `/revocations`)
//!
//! Connect bodies are validated into domain types; unknown fields are rejected so a typo in a
//! field name is a 400, not a silently ignored setting. Log events keep the target they had
//! before the handlers moved here (`admin_api`).

use std::collections::BTreeMap;

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::audit::AuditAction;
use wappline::edge::{self, parse_json, ApiError};
use wappline::ids::TenantId;
use wappline::ids::{
    BitrixDomain, BitrixMemberId, InstagramAccountId, MetaUserId, PhoneNumberId, WabaId,
};
use wappline::ownership::ProofError;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, Secret, TenantError};

use crate::map_err;
use crate::routing::{Call, Handled};

pub(crate) async fn connect(c: &Call<'_>) -> Handled {
    let kind = parse_kind(c.param("kind"))?;
    let scope = c.scope().await?;
    let mut connection = parse_connection(kind, c.body)?;
    let channel = connection.channel.external_id().to_owned();
    // Proof first, before anything is read or written for the id: a caller who cannot prove
    // ownership learns nothing about who holds it (decision 0032).
    if let Err(e) = c.services.ownership.prove(&mut connection).await {
        tracing::warn!(target: "admin_api", tenant = %scope.tenant(), %kind, channel = %channel, reason = e.kind(), "channel claim refused: ownership not proven");
        refused(c, scope.tenant(), kind, &channel, e.kind()).await;
        return Err(proof_error(kind, e));
    }
    let (summary, created) = match scope.connect(connection).await {
        Ok(done) => done,
        Err(TenantError::ChannelTaken(_)) => {
            tracing::warn!(target: "admin_api", tenant = %scope.tenant(), %kind, channel = %channel, reason = HELD, "channel claim refused: held by another tenant");
            refused(c, scope.tenant(), kind, &channel, HELD).await;
            return Err(cannot_connect(kind));
        }
        Err(e) => return Err(map_err(e)),
    };
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), kind = %summary.kind, channel = %summary.id, created, "channel connected");
    if let Ok(channel) = ChannelRef::parse(kind, &summary.id) {
        c.services.templates.after_connect(scope, &channel).await;
        if let Some(providers) = &c.services.providers {
            providers.after_connect(scope, &channel).await;
        }
    }
    c.record(
        scope.tenant(),
        AuditAction::ChannelConnected,
        &[("kind", summary.kind.name()), ("channel", &summary.id)],
    )
    .await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(edge::json(status, &summary))
}

/// Audit reason of a claim on an id another tenant holds.
const HELD: &str = "held_by_another_tenant";

/// The refusal in the tenant's audit log: kind, id and reason, never the token.
async fn refused(c: &Call<'_>, tenant: &TenantId, kind: ChannelKind, channel: &str, reason: &str) {
    c.record(
        tenant,
        AuditAction::ChannelConnectRefused,
        &[
            ("kind", kind.name()),
            ("channel", channel),
            ("reason", reason),
        ],
    )
    .await;
}

fn what(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::WhatsApp => "this WhatsApp number",
        ChannelKind::Instagram => "this Instagram account",
        ChannelKind::Bitrix24 => "this Bitrix24 portal",
    }
}

/// 409 for an id another tenant holds: it says only that the id cannot be connected.
pub(crate) fn cannot_connect(kind: ChannelKind) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "cannot_connect",
        format!("{} cannot be connected", what(kind)),
    )
}

/// A failed proof: 422 with what is wrong with the supplied token, 503/502 when the provider
/// could not be asked or answered oddly (nothing was stored either way).
fn proof_error(kind: ChannelKind, e: ProofError) -> ApiError {
    match e {
        ProofError::NotProven(refusal) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ownership_not_proven",
            format!("{} cannot be connected: {refusal}", what(kind)),
        ),
        ProofError::Unavailable { provider, .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_unavailable",
            format!(
                "{provider} could not be reached to verify the access token; nothing was stored, retry later"
            ),
        ),
        ProofError::BadAnswer { provider, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            format!(
                "{provider} answered unexpectedly while verifying the access token; nothing was stored, retry later"
            ),
        ),
        ProofError::Incomplete(field) => {
            ApiError::bad_request(format!("{field}: required to prove ownership"))
        }
        ProofError::NotConfigured(setting) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            format!("{} cannot be connected on this deployment: {setting} is not configured", what(kind)),
        ),
    }
}

pub(crate) async fn disconnect(c: &Call<'_>) -> Handled {
    let kind = parse_kind(c.param("kind"))?;
    let id = c.param("id");
    let channel = ChannelRef::parse(kind, id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let scope = c.scope().await?;
    // The route goes at once; the provider steps are recorded and attempted (decision 0036),
    // the admin sees their state under `/revocations`.
    let revocation = c
        .services
        .revocations
        .disconnect_by(scope, &channel, c.actor())
        .await
        .map_err(crate::revocations::map_err)?;
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), %kind, channel = %id, revocation = revocation.revocation, "channel disconnected");
    Ok(edge::empty(StatusCode::NO_CONTENT))
}

fn parse_kind(kind: &str) -> Result<ChannelKind, ApiError> {
    ChannelKind::from_name(kind).ok_or_else(|| {
        ApiError::not_found("unknown channel kind: use whatsapp, instagram or bitrix24")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatsAppRequest {
    phone_number_id: String,
    waba_id: String,
    access_token: String,
    display_phone_number: Option<String>,
    authorized_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstagramRequest {
    account_id: String,
    access_token: String,
    page_id: Option<String>,
    username: Option<String>,
    authorized_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bitrix24Request {
    member_id: String,
    domain: String,
    access_token: String,
    refresh_token: String,
    application_token: Option<String>,
    line_id: Option<u32>,
}

fn field<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::bad_request(e.to_string()))
}

fn secret(name: &str, value: &str) -> Result<Secret, ApiError> {
    Secret::parse(name, value).map_err(ApiError::bad_request)
}

fn short_text(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name}: must be 1 to {max} characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

fn meta_user(v: Option<String>) -> Result<Option<MetaUserId>, ApiError> {
    v.map(|u| field(MetaUserId::parse(&u))).transpose()
}

/// Parses and validates a connect body for the given channel kind.
pub(crate) fn parse_connection(kind: ChannelKind, body: &[u8]) -> Result<Connection, ApiError> {
    let mut details = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let (channel, authorized_by) = match kind {
        ChannelKind::WhatsApp => {
            let r: WhatsAppRequest = parse_json(body)?;
            let id = field(PhoneNumberId::parse(&r.phone_number_id))?;
            details.insert(
                "waba_id".into(),
                field(WabaId::parse(&r.waba_id))?.to_string(),
            );
            if let Some(p) = r.display_phone_number {
                details.insert(
                    "display_phone_number".into(),
                    short_text("display_phone_number", &p, 32)?,
                );
            }
            secrets.insert("access_token", secret("access_token", &r.access_token)?);
            (ChannelRef::WhatsApp(id), meta_user(r.authorized_by)?)
        }
        ChannelKind::Instagram => {
            let r: InstagramRequest = parse_json(body)?;
            let id = field(InstagramAccountId::parse(&r.account_id))?;
            if let Some(p) = r.page_id {
                // Page ids share the numeric id format.
                details.insert(
                    "page_id".into(),
                    field(InstagramAccountId::parse(&p).map_err(|_| "page_id: must be digits"))?
                        .to_string(),
                );
            }
            if let Some(u) = r.username {
                details.insert("username".into(), short_text("username", &u, 64)?);
            }
            secrets.insert("access_token", secret("access_token", &r.access_token)?);
            (ChannelRef::Instagram(id), meta_user(r.authorized_by)?)
        }
        ChannelKind::Bitrix24 => {
            let r: Bitrix24Request = parse_json(body)?;
            let id = field(BitrixMemberId::parse(&r.member_id))?;
            details.insert(
                "domain".into(),
                field(BitrixDomain::parse(&r.domain))?.to_string(),
            );
            if let Some(line) = r.line_id {
                details.insert("line_id".into(), line.to_string());
            }
            secrets.insert("access_token", secret("access_token", &r.access_token)?);
            secrets.insert("refresh_token", secret("refresh_token", &r.refresh_token)?);
            if let Some(t) = r.application_token {
                secrets.insert("application_token", secret("application_token", &t)?);
            }
            (ChannelRef::Bitrix24(id), None)
        }
    };
    Ok(Connection {
        channel,
        details,
        secrets,
        authorized_by,
    })
}
