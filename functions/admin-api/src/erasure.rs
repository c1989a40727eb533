//! Erasure endpoints of the admin API: a contact's erasure (right to be forgotten) and the
//! tenant account's erasure after a grace period the owner can cancel.
//!
//! - `POST   /admin/tenants/{id}/erasure/contacts`  `{"channel", "account_id", "customer"}` → 202
//! - `GET    /admin/tenants/{id}/erasure/contacts/{request_id}` → the request's state
//! - `POST   /admin/tenants/{id}/erasure`  `{"grace_days": 7}` → 202, the schedule
//! - `GET    /admin/tenants/{id}/erasure` → state
//! - `DELETE /admin/tenants/{id}/erasure` → 204, cancelled (only before it started)

use std::time::Duration;

use lambda_http::http::{Response, StatusCode};
use serde::Deserialize;
use wappline::edge::{self, ApiError};
use wappline::erasure::tenant::{TenantErasure, DEFAULT_GRACE};
use wappline::erasure::{ContactErasure, ErasureError};
use wappline::ids::TenantId;
use wappline::meta::{AccountRef, CustomerId};

use crate::routing::{Call, Handled};

/// The erasure services the admin API uses.
#[derive(Clone)]
pub struct Erasure {
    pub contacts: ContactErasure,
    pub tenants: TenantErasure,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactRequest {
    channel: String,
    account_id: String,
    customer: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantRequest {
    grace_days: Option<u32>,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

fn map(e: ErasureError) -> ApiError {
    match e {
        ErasureError::NotFound => ApiError::not_found("no such erasure request"),
        other => {
            tracing::error!(error = %other, "erasure request failed");
            ApiError::unavailable()
        }
    }
}

/// The subject of a contact erasure, validated.
pub(crate) fn subject(r: &ContactRequest) -> Result<(AccountRef, CustomerId), ApiError> {
    let account = AccountRef::parse(&r.channel, &r.account_id).map_err(|e| bad(e.to_string()))?;
    let customer =
        CustomerId::parse_for(&account, &r.customer).map_err(|e| bad(format!("customer: {e}")))?;
    Ok((account, customer))
}

pub(crate) async fn request_contact(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services
        .erasure
        .request_contact(scope.tenant(), c.body, c.actor())
        .await
}

pub(crate) async fn contact_status(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services
        .erasure
        .contact_status(scope.tenant(), c.param("request_id"))
        .await
}

pub(crate) async fn request_tenant(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services
        .erasure
        .request_tenant(scope.tenant(), c.body, c.actor())
        .await
}

/// After the erasure the tenant is gone, but its erasure record is not: by id, not scope.
pub(crate) async fn tenant_status(c: &Call<'_>) -> Handled {
    c.services.erasure.tenant_status(&c.tenant_id()?).await
}

pub(crate) async fn cancel_tenant(c: &Call<'_>) -> Handled {
    c.services
        .erasure
        .cancel_tenant(&c.tenant_id()?, c.actor())
        .await
}

impl Erasure {
    async fn request_contact(
        &self,
        tenant: &TenantId,
        body: &[u8],
        actor: &str,
    ) -> Result<Response<String>, ApiError> {
        let r: ContactRequest = edge::parse_json(body)?;
        let (account, customer) = subject(&r)?;
        let id = self
            .contacts
            .request(tenant, account, customer, actor)
            .await
            .map_err(map)?;
        let status = self.contacts.status(tenant, &id).await.map_err(map)?;
        Ok(edge::json(StatusCode::ACCEPTED, &status))
    }

    async fn contact_status(
        &self,
        tenant: &TenantId,
        request_id: &str,
    ) -> Result<Response<String>, ApiError> {
        let ok = request_id.starts_with("er_") && request_id.len() == 27;
        if !ok {
            return Err(ApiError::not_found("no such erasure request"));
        }
        let status = self
            .contacts
            .status(tenant, request_id)
            .await
            .map_err(map)?;
        Ok(edge::json(StatusCode::OK, &status))
    }

    async fn request_tenant(
        &self,
        tenant: &TenantId,
        body: &[u8],
        actor: &str,
    ) -> Result<Response<String>, ApiError> {
        let r: TenantRequest = if body.is_empty() {
            TenantRequest::default()
        } else {
            edge::parse_json(body)?
        };
        let grace = match r.grace_days {
            Some(d) if d > 30 => {
                return Err(bad("grace_days: at most 30 (erasure within 30 days)"))
            }
            Some(d) => Duration::from_secs(u64::from(d) * 86_400),
            None => DEFAULT_GRACE,
        };
        let status = self
            .tenants
            .request(tenant, grace, actor)
            .await
            .map_err(map)?;
        Ok(edge::json(StatusCode::ACCEPTED, &status))
    }

    async fn tenant_status(&self, tenant: &TenantId) -> Result<Response<String>, ApiError> {
        match self.tenants.status(tenant).await.map_err(map)? {
            Some(status) => Ok(edge::json(StatusCode::OK, &status)),
            None => Err(ApiError::not_found("no erasure requested for this tenant")),
        }
    }

    async fn cancel_tenant(
        &self,
        tenant: &TenantId,
        actor: &str,
    ) -> Result<Response<String>, ApiError> {
        match self.tenants.cancel(tenant, actor).await {
            Ok(()) => Ok(edge::empty(StatusCode::NO_CONTENT)),
            Err(ErasureError::NotFound) => Err(ApiError::conflict(
                "no pending erasure to cancel (none requested, or already started)",
            )),
            Err(e) => Err(map(e)),
        }
    }
}
