//! What disconnecting a tenant's channels revoked at the providers (decision 0036):
//!
//! - `GET  /admin/tenants/{id}/revocations`: every record, with each provider step's state
//!   (`pending`, `done`, `skipped`, `failed`), the attempts and whether we still hold the
//!   tokens; never a token
//! - `POST /admin/tenants/{id}/revocations/retry`: attempts the pending ones now (once the
//!   provider is back), without waiting for the schedule; answers the records it attempted

use lambda_http::http::StatusCode;
use serde::Serialize;
use wappline::edge::{self, ApiError};
use wappline::revocation::{Revocation, RevocationError};

use crate::routing::{Call, Handled};

#[derive(Serialize)]
struct List<'a> {
    revocations: &'a [Revocation],
}

pub(crate) async fn list(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let revocations = c
        .services
        .revocations
        .list(scope.tenant())
        .await
        .map_err(|e| map_err(e.into()))?;
    Ok(edge::json(
        StatusCode::OK,
        &List {
            revocations: &revocations,
        },
    ))
}

pub(crate) async fn retry(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let attempted = c
        .services
        .revocations
        .retry_tenant(scope.tenant(), c.actor())
        .await
        .map_err(map_err)?;
    Ok(edge::json(
        StatusCode::OK,
        &List {
            revocations: &attempted,
        },
    ))
}

pub(crate) fn map_err(e: RevocationError) -> ApiError {
    match e {
        RevocationError::Tenant(e) => crate::map_err(e),
        RevocationError::Store(e) => crate::map_err(e.into()),
        RevocationError::Crypto(e) => {
            tracing::error!(error = %e, "revocation record unreadable");
            ApiError::internal()
        }
    }
}
