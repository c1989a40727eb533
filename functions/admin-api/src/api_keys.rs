//! A tenant's API keys (for the public send API):
//!
//! - `POST   /admin/tenants/{id}/api-keys` `{name, scope, expires_at}` → 201, the key shown once
//! - `GET    /admin/tenants/{id}/api-keys` the keys (never the keys themselves)
//! - `DELETE /admin/tenants/{id}/api-keys/{key_id}` revokes one
//!
//! Log events keep the target they had before the handlers moved here (`admin_api`).

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::api_keys::{ApiKeyError, ApiKeyScope};
use wappline::audit::AuditAction;
use wappline::edge::{self, ApiError};
use wappline::tenant::TenantError;

use crate::map_err;
use crate::routing::{Call, Handled};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKeyRequest {
    name: String,
    scope: Option<String>,
    expires_at: Option<i64>,
}

fn api_key_error(e: ApiKeyError) -> ApiError {
    match e {
        ApiKeyError::BadRequest(m) => ApiError::bad_request(m),
        ApiKeyError::NotFound | ApiKeyError::Invalid => ApiError::not_found("no such API key"),
        ApiKeyError::Store(e) => map_err(TenantError::Store(e)),
    }
}

pub(crate) async fn create(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let req: CreateApiKeyRequest = edge::parse_json(c.body)?;
    let key_scope = ApiKeyScope::parse(req.scope.as_deref().unwrap_or("send"))
        .ok_or_else(|| ApiError::bad_request("scope: must be send"))?;
    let issued = c
        .services
        .api_keys
        .create(scope.tenant(), &req.name, key_scope, req.expires_at)
        .await
        .map_err(api_key_error)?;
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), key = issued.info.id, "API key created");
    c.record(
        scope.tenant(),
        AuditAction::ApiKeyCreated,
        &[("key_id", &issued.info.id)],
    )
    .await;
    let mut body = serde_json::to_value(&issued.info).map_err(|_| ApiError::internal())?;
    body["key"] = serde_json::Value::String(issued.key);
    Ok(edge::json(StatusCode::CREATED, &body))
}

pub(crate) async fn list(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let listed = c
        .services
        .api_keys
        .list(scope.tenant())
        .await
        .map_err(api_key_error)?;
    Ok(edge::json(
        StatusCode::OK,
        &serde_json::json!({ "api_keys": listed }),
    ))
}

pub(crate) async fn revoke(c: &Call<'_>) -> Handled {
    let key_id = c.param("key_id");
    let scope = c.scope().await?;
    c.services
        .api_keys
        .revoke(scope.tenant(), key_id)
        .await
        .map_err(api_key_error)?;
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), key = key_id, "API key revoked");
    c.record(
        scope.tenant(),
        AuditAction::ApiKeyRevoked,
        &[("key_id", key_id)],
    )
    .await;
    Ok(edge::empty(StatusCode::NO_CONTENT))
}
