//! Bitrix24 connection codes:
//!
//! - `POST /admin/tenants/{id}/bitrix24/connection-codes` `{line_id}` → 201, a code shown
//!   once (stored only as a hash) and the install URL that carries it
//!
//! Log events keep the target they had before the handler moved here (`admin_api`).

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::bitrix::OpenLineId;
use wappline::edge::{self, ApiError};
use wappline::tenant::TenantError;

use crate::map_err;
use crate::routing::{Call, Handled};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionCodeRequest {
    /// The Open Line the portal's conversations go to.
    line_id: u64,
}

pub(crate) async fn issue(c: &Call<'_>) -> Handled {
    let (codes, public_base) = &c.services.bitrix_codes;
    let scope = c.scope().await?;
    let req: ConnectionCodeRequest = edge::parse_json(c.body)?;
    let line = OpenLineId::new(req.line_id)
        .map_err(|_| ApiError::bad_request("line_id: must be a positive integer"))?;
    let issued = codes
        .issue(scope.tenant(), line)
        .await
        .map_err(|e| map_err(TenantError::Store(e)))?;
    tracing::info!(target: "admin_api", tenant = %scope.tenant(), line = %line, "bitrix24 connection code issued");
    Ok(edge::json(
        StatusCode::CREATED,
        &serde_json::json!({
            "code": issued.code.expose(),
            "tenant_id": issued.tenant,
            "line_id": issued.line,
            "expires_at": issued.expires_at,
            "install_url": issued.install_url(public_base),
        }),
    ))
}
