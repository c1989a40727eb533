//! Tenants, for the platform admin:
//!
//! - `GET  /admin/tenants[?after=tn_...&limit=50]` a page of tenants
//! - `POST /admin/tenants` `{name, retention_days}` → 201, the new tenant
//!
//! Log events keep the target they had before the handlers moved here (`admin_api`).

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::edge::{self, ApiError};
use wappline::ids::TenantId;
use wappline::tenant::{RetentionDays, TenantName};

use crate::routing::{Call, Handled};
use crate::{map_err, parse_limit, DEFAULT_PAGE};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenantRequest {
    name: String,
    retention_days: Option<u32>,
}

pub(crate) async fn list(c: &Call<'_>) -> Handled {
    let mut after = None;
    let mut limit = DEFAULT_PAGE;
    for (k, v) in c
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        match k {
            "after" => {
                after = Some(
                    TenantId::parse(v).map_err(|e| ApiError::bad_request(format!("after: {e}")))?,
                )
            }
            "limit" => limit = parse_limit(v)?,
            _ => {}
        }
    }
    let page = c
        .services
        .tenants
        .list(after.as_ref(), limit)
        .await
        .map_err(map_err)?;
    Ok(edge::json(StatusCode::OK, &page))
}

pub(crate) async fn create(c: &Call<'_>) -> Handled {
    let req: CreateTenantRequest = edge::parse_json(c.body)?;
    let name = TenantName::parse(&req.name).map_err(map_err)?;
    let retention = match req.retention_days {
        Some(d) => RetentionDays::new(d).map_err(map_err)?,
        None => RetentionDays::default(),
    };
    let profile = c
        .services
        .tenants
        .create(name, retention)
        .await
        .map_err(map_err)?;
    tracing::info!(target: "admin_api", tenant = %profile.id, "tenant created");
    Ok(edge::json(StatusCode::CREATED, &profile))
}
