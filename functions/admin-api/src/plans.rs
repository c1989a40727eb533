//! A tenant's plan, for the platform admin:
//!
//! - `PUT    /admin/tenants/{id}/plan` `{monthly_outbound, monthly_inbound}` (null: unlimited)
//! - `DELETE /admin/tenants/{id}/plan` back to the default plan

use lambda_http::http::StatusCode;
use wappline::audit::AuditAction;
use wappline::edge::{self, ApiError};
use wappline::usage::Plan;

use crate::routing::{Call, Handled};
use crate::usage::usage_error;

pub(crate) async fn set(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let plan = read_plan(c.body)?;
    c.services
        .usage
        .set_plan(tenant, plan)
        .await
        .map_err(usage_error)?;
    tracing::info!(tenant = %tenant, outbound = ?plan.monthly_outbound, inbound = ?plan.monthly_inbound, "plan set");
    c.record(tenant, AuditAction::PlanChanged, &[]).await;
    Ok(edge::json(StatusCode::OK, &plan))
}

/// Reads and checks a plan body. An object with both fields, so a typo never sets
/// "unlimited" by omission.
pub(crate) fn read_plan(body: &[u8]) -> Result<Plan, ApiError> {
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
    Ok(plan)
}

pub(crate) async fn clear(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let tenant = scope.tenant();
    let usage = &c.services.usage;
    usage.clear_plan(tenant).await.map_err(usage_error)?;
    let plan = usage.plan(tenant).await.map_err(usage_error)?;
    c.record(tenant, AuditAction::PlanChanged, &[]).await;
    Ok(edge::json(StatusCode::OK, &plan))
}
