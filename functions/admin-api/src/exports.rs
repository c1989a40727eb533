//! Export endpoints of the admin API (right of access and portability), and the public
//! download of an export file through its signed, short-lived link.
//!
//! - `POST /admin/tenants/{id}/exports`  `{"scope": "tenant"}` or `{"scope": "contact",
//!   "channel", "account_id", "customer"}` → 202, the export is queued
//! - `GET  /admin/tenants/{id}/exports`, `GET /admin/tenants/{id}/exports/{export_id}`
//! - `POST /admin/tenants/{id}/exports/{export_id}/links`  `{"file": "messages.csv",
//!   "ttl_seconds": 900}` → 201 `{url, expires_at}`
//! - `GET  /exports/download/{token}` (no admin token: the link is the credential)

use std::time::Duration;

use lambda_http::http::{header, Response, StatusCode};
use lambda_http::Body;
use serde::Deserialize;
use wappline::edge::{self, ApiError};
use wappline::export::{ExportError, ExportFile, ExportId, ExportRequests, ExportScope, Exports};
use wappline::ids::TenantId;
use wappline::meta::{AccountRef, CustomerId};

use crate::routing::{Call, Handled};

/// The path prefix of download links.
pub const DOWNLOAD_PREFIX: &str = "/exports/download/";

/// The export services the admin API uses.
#[derive(Clone)]
pub struct ExportsApi {
    pub exports: Exports,
    /// Requests are recorded and queued in one step.
    pub requests: ExportRequests,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    scope: String,
    channel: Option<String>,
    account_id: Option<String>,
    customer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkRequest {
    file: String,
    ttl_seconds: Option<u64>,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

fn map(e: ExportError) -> ApiError {
    match e {
        ExportError::NotFound => ApiError::not_found("no such export"),
        ExportError::NotReady => ApiError::conflict("the export is not completed yet"),
        ExportError::Link(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the link is invalid or has expired",
        ),
        ExportError::Invalid(m) => bad(m),
        ExportError::Queue(detail) => {
            tracing::error!(error = %detail, "export job not queued");
            ApiError::unavailable()
        }
        other => {
            tracing::error!(error = %other, "export request failed");
            ApiError::unavailable()
        }
    }
}

pub(crate) fn scope_of(r: &ExportRequest) -> Result<ExportScope, ApiError> {
    match r.scope.as_str() {
        "tenant" => {
            if r.channel.is_some() || r.account_id.is_some() || r.customer.is_some() {
                return Err(bad(
                    "a tenant export takes no channel, account_id or customer",
                ));
            }
            Ok(ExportScope::Tenant)
        }
        "contact" => {
            let (Some(channel), Some(account), Some(customer)) =
                (&r.channel, &r.account_id, &r.customer)
            else {
                return Err(bad(
                    "a contact export needs channel, account_id and customer",
                ));
            };
            let account = AccountRef::parse(channel, account).map_err(|e| bad(e.to_string()))?;
            let customer = CustomerId::parse_for(&account, customer)
                .map_err(|e| bad(format!("customer: {e}")))?;
            Ok(ExportScope::Contact { account, customer })
        }
        _ => Err(bad("scope: must be tenant or contact")),
    }
}

fn export_id(id: &str) -> Result<ExportId, ApiError> {
    ExportId::parse(id).map_err(|_| ApiError::not_found("no such export"))
}

pub(crate) async fn request(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services
        .exports
        .request(scope.tenant(), c.body, c.actor())
        .await
}

pub(crate) async fn list(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services.exports.list(scope.tenant()).await
}

pub(crate) async fn get(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services
        .exports
        .get(scope.tenant(), c.param("export_id"))
        .await
}

pub(crate) async fn link(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    c.services
        .exports
        .link(scope.tenant(), c.param("export_id"), c.body)
        .await
}

impl ExportsApi {
    async fn request(
        &self,
        tenant: &TenantId,
        body: &[u8],
        actor: &str,
    ) -> Result<Response<String>, ApiError> {
        let r: ExportRequest = edge::parse_json(body)?;
        let scope = scope_of(&r)?;
        let record = self
            .requests
            .request(tenant, scope, actor)
            .await
            .map_err(map)?;
        Ok(edge::json(StatusCode::ACCEPTED, &record))
    }

    async fn list(&self, tenant: &TenantId) -> Result<Response<String>, ApiError> {
        let records = self.exports.list(tenant).await.map_err(map)?;
        Ok(edge::json(
            StatusCode::OK,
            &serde_json::json!({ "exports": records }),
        ))
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Response<String>, ApiError> {
        let record = self
            .exports
            .get(tenant, &export_id(id)?)
            .await
            .map_err(map)?
            .ok_or_else(|| ApiError::not_found("no such export"))?;
        Ok(edge::json(StatusCode::OK, &record))
    }

    async fn link(
        &self,
        tenant: &TenantId,
        id: &str,
        body: &[u8],
    ) -> Result<Response<String>, ApiError> {
        let r: LinkRequest = edge::parse_json(body)?;
        let file = ExportFile::from_name(&r.file).ok_or_else(|| {
            bad("file: one of export.json, contacts.csv, conversations.csv, messages.csv, settings.json")
        })?;
        if r.ttl_seconds.is_some_and(|t| t == 0 || t > 86_400) {
            return Err(bad("ttl_seconds: 1 to 86400"));
        }
        let link = self
            .exports
            .link(
                tenant,
                &export_id(id)?,
                file,
                r.ttl_seconds.map(Duration::from_secs),
            )
            .await
            .map_err(map)?;
        Ok(edge::json(StatusCode::CREATED, &link))
    }

    /// `GET /exports/download/{token}`: a redirect to the object store's own short-lived
    /// link where it has one (S3: Lambda responses are too small for exports), else the file.
    pub async fn download(&self, path: &str) -> Response<Body> {
        let token = path.rsplit('/').next().unwrap_or_default();
        let result = async {
            if let Some(url) = self.exports.redirect(token).await.map_err(map)? {
                return Ok(Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, url)
                    .header(header::CACHE_CONTROL, "no-store")
                    .header("Referrer-Policy", "no-referrer")
                    .body(Body::Empty)
                    .expect("static response parts"));
            }
            let download = self.exports.open(token).await.map_err(map)?;
            let bytes = download.body.read_all().await.map_err(|e| {
                tracing::error!(error = %e, "export file unreadable");
                ApiError::unavailable()
            })?;
            Ok::<_, ApiError>(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, download.content_type)
                    .header(
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}\"", download.filename),
                    )
                    .header(header::CACHE_CONTROL, "no-store")
                    .header("Referrer-Policy", "no-referrer")
                    .header("X-Content-Type-Options", "nosniff")
                    .body(Body::from(bytes))
                    .expect("static response parts"),
            )
        }
        .await;
        match result {
            Ok(r) => r,
            Err(e) => e.into_response().map(Body::from),
        }
    }
}
