//! A tenant's channels:
//!
//! - `POST   /admin/tenants/{id}/channels/{whatsapp|instagram|bitrix24}` connects one (201, or
//!   200 when it was connected already)
//! - `DELETE /admin/tenants/{id}/channels/{kind}/{channel_id}` disconnects it, unsubscribing
//!   our app from the provider's webhooks where possible
//!
//! Connect bodies are validated into domain types; unknown fields are rejected so a typo in a
//! field name is a 400, not a silently ignored setting. Log events keep the target they had
//! before the handlers moved here (`admin_api`).

use std::collections::BTreeMap;

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::audit::AuditAction;
use wappline::edge::{self, parse_json, ApiError};
use wappline::ids::{
    BitrixDomain, BitrixMemberId, InstagramAccountId, MetaUserId, PhoneNumberId, WabaId,
};
use wappline::tenant::{ChannelKind, ChannelRef, Connection, Secret};

use crate::map_err;
use crate::routing::{Call, Handled};

pub(crate) async fn connect(c: &Call<'_>) -> Handled {
    let kind = parse_kind(c.param("kind"))?;
    let scope = c.scope().await?;
    let connection = parse_connection(kind, c.body)?;
    let (summary, created) = scope.connect(connection).await.map_err(map_err)?;
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), kind = %summary.kind, channel = %summary.id, created, "channel connected");
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

pub(crate) async fn disconnect(c: &Call<'_>) -> Handled {
    let kind = parse_kind(c.param("kind"))?;
    let id = c.param("id");
    let channel = ChannelRef::parse(kind, id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let scope = c.scope().await?;
    let unsubscribe = c
        .services
        .release
        .disconnect(scope, &channel)
        .await
        .map_err(map_err)?;
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), %kind, channel = %id, ?unsubscribe, "channel disconnected");
    c.record(
        scope.tenant(),
        AuditAction::ChannelDisconnected,
        &[("kind", kind.name()), ("channel", id)],
    )
    .await;
    Ok(edge::empty(StatusCode::NO_CONTENT))
}

fn parse_kind(kind: &str) -> Result<ChannelKind, ApiError> {
    ChannelKind::from_name(kind).ok_or_else(|| {
        ApiError::not_found("unknown channel kind: use whatsapp, instagram or bitrix24")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhatsAppRequest {
    phone_number_id: String,
    waba_id: String,
    access_token: String,
    display_phone_number: Option<String>,
    authorized_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstagramRequest {
    account_id: String,
    access_token: String,
    page_id: Option<String>,
    username: Option<String>,
    authorized_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bitrix24Request {
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
fn parse_connection(kind: ChannelKind, body: &[u8]) -> Result<Connection, ApiError> {
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
