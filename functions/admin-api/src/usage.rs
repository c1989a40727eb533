//! A tenant's usage:
//!
//! - `GET /admin/tenants/{id}/usage[?month=yyyy-mm]` the month's counters (default: this
//!   month so far), the plan's quotas and when they reset (owner, admin, viewer)

use lambda_http::http::StatusCode;
use wappline::edge::{self, ApiError};
use wappline::tenant::TenantError;
use wappline::usage::{UsageError, UsageMonth};

use crate::map_err;
use crate::routing::{Call, Handled};

/// The one mapping of usage and plan errors to HTTP.
pub(crate) fn usage_error(e: UsageError) -> ApiError {
    match e {
        UsageError::Invalid(m) => ApiError::bad_request(m),
        UsageError::Store(e) => map_err(TenantError::Store(e)),
    }
}

pub(crate) async fn report(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let mut month = UsageMonth::current(wappline::clock::now_secs());
    for (k, v) in c
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        if k == "month" {
            month = UsageMonth::parse(v).map_err(usage_error)?;
        }
    }
    let report = c
        .services
        .usage
        .report(scope.tenant(), month)
        .await
        .map_err(usage_error)?;
    Ok(edge::json(StatusCode::OK, &report))
}
