//! Usage, plans and suspension:
//!
//! - `GET    /admin/tenants/{id}/usage[?month=yyyy-mm]` the month's counters (default: this
//!   month so far), the plan's quotas and when they reset (owner, admin, viewer)
//! - `PUT    /admin/tenants/{id}/plan` `{monthly_outbound, monthly_inbound}` (null: unlimited)
//!   and `DELETE` (back to the default plan): platform admin only
//! - `POST   /admin/tenants/{id}/suspension` `{reason}`: the tenant's webhooks are
//!   acknowledged and held, its users and API keys refused: platform admin only
//! - `DELETE /admin/tenants/{id}/suspension`: resumes, releasing what was held in order

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::edge::{self, ApiError};
use wappline::hold::{Suspension, SuspensionError};
use wappline::ids::TenantId;
use wappline::usage::{Plan, Usage, UsageError, UsageMonth};

type Response = lambda_http::http::Response<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendRequest {
    reason: String,
}

fn usage_error(e: UsageError) -> ApiError {
    match e {
        UsageError::Invalid(m) => ApiError::bad_request(m),
        UsageError::Store(e) => crate::map_err(wappline::tenant::TenantError::Store(e)),
    }
}

fn suspension_error(e: SuspensionError) -> ApiError {
    match e {
        SuspensionError::TenantNotFound => ApiError::not_found("tenant not found"),
        SuspensionError::Invalid(m) => ApiError::bad_request(m),
        SuspensionError::Unavailable(detail) => {
            tracing::warn!(%detail, "suspension step failed; retry continues it");
            ApiError::unavailable()
        }
    }
}

pub async fn usage(
    usage: &Usage,
    tenant: &TenantId,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let mut month = UsageMonth::current(wappline::clock::now_secs());
    for (k, v) in query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        if k == "month" {
            month = UsageMonth::parse(v).map_err(usage_error)?;
        }
    }
    let report = usage.report(tenant, month).await.map_err(usage_error)?;
    Ok(edge::json(StatusCode::OK, &report))
}

pub async fn set_plan(usage: &Usage, tenant: &TenantId, body: &[u8]) -> Result<Response, ApiError> {
    // An object with both fields, so a typo never sets "unlimited" by omission.
    let object: serde_json::Map<String, serde_json::Value> = edge::parse_json(body)?;
    for field in ["monthly_outbound", "monthly_inbound"] {
        if !object.contains_key(field) {
            return Err(ApiError::bad_request(format!(
                "{field}: required (a number, or null for unlimited)"
            )));
        }
    }
    let plan: Plan = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    plan.validate().map_err(usage_error)?;
    usage.set_plan(tenant, plan).await.map_err(usage_error)?;
    tracing::info!(tenant = %tenant, outbound = ?plan.monthly_outbound, inbound = ?plan.monthly_inbound, "plan set");
    Ok(edge::json(StatusCode::OK, &plan))
}

pub async fn clear_plan(usage: &Usage, tenant: &TenantId) -> Result<Response, ApiError> {
    usage.clear_plan(tenant).await.map_err(usage_error)?;
    let plan = usage.plan(tenant).await.map_err(usage_error)?;
    Ok(edge::json(StatusCode::OK, &plan))
}

pub async fn suspend(
    suspension: &Suspension,
    tenant: &TenantId,
    body: &[u8],
    actor: &str,
) -> Result<Response, ApiError> {
    let r: SuspendRequest = edge::parse_json(body)?;
    let change = suspension
        .suspend(tenant, &r.reason, actor)
        .await
        .map_err(suspension_error)?;
    tracing::info!(tenant = %tenant, changed = change.changed, "tenant suspended");
    let mut body = serde_json::to_value(&change.profile).map_err(|_| ApiError::internal())?;
    body["changed"] = change.changed.into();
    Ok(edge::json(StatusCode::OK, &body))
}

pub async fn resume(
    suspension: &Suspension,
    tenant: &TenantId,
    actor: &str,
) -> Result<Response, ApiError> {
    let resumed = suspension
        .resume(tenant, actor)
        .await
        .map_err(suspension_error)?;
    Ok(edge::json(StatusCode::OK, &resumed))
}
