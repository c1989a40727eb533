//! Suspension, for the platform admin:
//!
//! - `POST   /admin/tenants/{id}/suspension` `{reason}`: the tenant's webhooks are
//!   acknowledged and held, its users and API keys refused
//! - `DELETE /admin/tenants/{id}/suspension`: resumes, releasing what was held in order
//!
//! Log events keep the target they had before the handlers moved here (`admin_api::plans`).

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::edge::{self, ApiError};
use wappline::hold::SuspensionError;

use crate::routing::{Call, Handled};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuspendRequest {
    reason: String,
}

fn suspension_error(e: SuspensionError) -> ApiError {
    match e {
        SuspensionError::TenantNotFound => ApiError::not_found("tenant not found"),
        SuspensionError::Invalid(m) => ApiError::bad_request(m),
        SuspensionError::Unavailable(detail) => {
            tracing::warn!(target: "admin_api::plans", %detail, "suspension step failed; retry continues it");
            ApiError::unavailable()
        }
    }
}

pub(crate) async fn suspend(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let r: SuspendRequest = edge::parse_json(c.body)?;
    let change = c
        .services
        .suspension
        .suspend(tenant, &r.reason, c.actor())
        .await
        .map_err(suspension_error)?;
    tracing::info!(target: "admin_api::plans", tenant = %tenant, changed = change.changed, "tenant suspended");
    let mut body = serde_json::to_value(&change.profile).map_err(|_| ApiError::internal())?;
    body["changed"] = change.changed.into();
    Ok(edge::json(StatusCode::OK, &body))
}

pub(crate) async fn resume(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let resumed = c
        .services
        .suspension
        .resume(scope.tenant(), c.actor())
        .await
        .map_err(suspension_error)?;
    Ok(edge::json(StatusCode::OK, &resumed))
}
