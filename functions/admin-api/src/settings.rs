//! A tenant's settings:
//!
//! - `GET   /admin/tenants/{id}` the tenant's profile, settings and channels (no secrets)
//! - `PATCH /admin/tenants/{id}/settings` `{retention_days}`: only the settings given change
//!
//! Log events keep the target they had before the handlers moved here (`admin_api`).

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::edge::{self, ApiError};
use wappline::tenant::RetentionDays;

use crate::map_err;
use crate::routing::{Call, Handled};

/// `PATCH /admin/tenants/{id}/settings`: only the settings given change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsRequest {
    retention_days: Option<u32>,
}

pub(crate) async fn get(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let settings = scope.settings().await.map_err(map_err)?;
    Ok(edge::json(StatusCode::OK, &settings))
}

/// Reads and checks a settings body: the retention to set.
pub(crate) fn read_settings(body: &[u8]) -> Result<RetentionDays, ApiError> {
    // An object only (serde would also take a JSON array for a struct).
    let object: serde_json::Map<String, serde_json::Value> = edge::parse_json(body)?;
    let req: SettingsRequest = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let Some(days) = req.retention_days else {
        return Err(ApiError::bad_request(
            "nothing to change: give retention_days",
        ));
    };
    RetentionDays::new(days).map_err(map_err)
}

pub(crate) async fn update(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let days = read_settings(c.body)?;
    let change = scope
        .set_retention(days, c.actor())
        .await
        .map_err(map_err)?;
    if change.changed {
        tracing::info!(
            target: "admin_api",
            tenant = %scope.tenant(),
            from = change.previous_days,
            to = change.retention_days,
            version = change.retention_version,
            "retention changed"
        );
    }
    let settings = scope.settings().await.map_err(map_err)?;
    let mut body = serde_json::to_value(&settings).map_err(|_| ApiError::internal())?;
    body["retention_version"] = change.retention_version.into();
    Ok(edge::json(StatusCode::OK, &body))
}
