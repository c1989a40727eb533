//! A WhatsApp number's Coexistence settings (decision 0052):
//!
//! - `GET /admin/tenants/{id}/channels/whatsapp/{phone_number_id}/coexistence`: the settings
//!   and where the chat history import stands;
//! - `PUT` the same path, `{"history_import": bool, "echo_author_id": <Bitrix24 user id> |
//!   null}`: both fields required. Turning the import off drops what waits for it.

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::coexistence::{Coexistence, CoexistenceSettings};
use wappline::edge::{self, ApiError};
use wappline::ids::PhoneNumberId;
use wappline::tenant::ChannelRef;

use crate::map_err;
use crate::routing::{Call, Handled};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoexistenceRequest {
    history_import: bool,
    echo_author_id: Option<u64>,
}

/// Reads and checks a settings body.
pub(crate) fn read_settings(body: &[u8]) -> Result<CoexistenceSettings, ApiError> {
    let object: serde_json::Map<String, serde_json::Value> = edge::parse_json(body)?;
    // Both fields must be given: a missing `echo_author_id` must not clear it by accident.
    for field in ["history_import", "echo_author_id"] {
        if !object.contains_key(field) {
            return Err(ApiError::bad_request(format!("{field} is required")));
        }
    }
    let req: CoexistenceRequest = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    if req.echo_author_id == Some(0) || req.echo_author_id.is_some_and(|id| id > i64::MAX as u64) {
        return Err(ApiError::bad_request(
            "echo_author_id must be a Bitrix24 user id (a positive integer) or null",
        ));
    }
    Ok(CoexistenceSettings {
        history_import: req.history_import,
        echo_author_id: req.echo_author_id,
    })
}

/// The number in the path, connected to the tenant (404 otherwise).
async fn number(c: &Call<'_>) -> Result<PhoneNumberId, ApiError> {
    if c.param("kind") != "whatsapp" {
        return Err(ApiError::not_found(
            "Coexistence settings exist for WhatsApp numbers only",
        ));
    }
    let number = PhoneNumberId::parse(c.param("id"))
        .map_err(|e| ApiError::bad_request(format!("phone number id: {e}")))?;
    let scope = c.scope().await?;
    if scope
        .channel(&ChannelRef::WhatsApp(number.clone()))
        .await
        .map_err(map_err)?
        .is_none()
    {
        return Err(ApiError::not_found("no such WhatsApp number connected"));
    }
    Ok(number)
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(target: "admin_api", error = %e, "coexistence settings unavailable");
    ApiError::internal()
}

pub(crate) async fn get(c: &Call<'_>) -> Handled {
    let number = number(c).await?;
    let tenant = c.tenant_id()?;
    let view = Coexistence::new(c.services.tenants.store().clone())
        .view(&tenant, &number)
        .await
        .map_err(unavailable)?;
    Ok(edge::json(StatusCode::OK, &view))
}

pub(crate) async fn put(c: &Call<'_>) -> Handled {
    let number = number(c).await?;
    let settings = read_settings(c.body)?;
    let tenant = c.tenant_id()?;
    let coexistence = Coexistence::new(c.services.tenants.store().clone());
    coexistence
        .set(&tenant, &number, settings, c.actor())
        .await
        .map_err(unavailable)?;
    tracing::info!(target: "admin_api", %tenant, channel = %number,
        history_import = settings.history_import,
        echo_author = settings.echo_author_id.is_some(),
        "coexistence settings changed");
    let view = coexistence
        .view(&tenant, &number)
        .await
        .map_err(unavailable)?;
    Ok(edge::json(StatusCode::OK, &view))
}
