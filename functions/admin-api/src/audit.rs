//! A tenant's audit log:
//!
//! - `GET /admin/tenants/{id}/audit[?before=<next>&limit=50]` entries, newest first
//!
//! and how handlers record the changes they make. Log events keep the target they had before
//! this code moved here (`admin_api`).

use lambda_http::http::StatusCode;
use wappline::audit::AuditAction;
use wappline::edge::{self, ApiError};
use wappline::ids::TenantId;
use wappline::tenant::TenantError;

use crate::routing::{Call, Handled};
use crate::{map_err, parse_limit, DEFAULT_PAGE};

pub(crate) async fn read(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let mut before = None;
    let mut limit = DEFAULT_PAGE;
    for (k, v) in c
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        match k {
            "before" => before = Some(parse_audit_cursor(v)?),
            "limit" => limit = parse_limit(v)?,
            _ => {}
        }
    }
    let mut page = c
        .services
        .audit
        .read(scope.tenant(), before.as_deref(), limit)
        .await
        .map_err(|e| map_err(TenantError::Store(e)))?;
    // The cursor is handed out without `#`, so it survives a URL unencoded.
    page.next = page.next.map(|n| n.replace('#', "."));
    Ok(edge::json(StatusCode::OK, &page))
}

/// An audit page cursor as handed out (`<13 digits>.<8 hex>`), or with `#` (percent-encoded
/// as `%23`), into the log's sort key.
fn parse_audit_cursor(v: &str) -> Result<String, ApiError> {
    let v = v.replace("%23", "#").replace('.', "#");
    let ok = v.len() == 22
        && v.as_bytes()[13] == b'#'
        && v[..13].bytes().all(|b| b.is_ascii_digit())
        && v[14..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(v)
    } else {
        Err(ApiError::bad_request(
            "before: must be a next value from a previous page",
        ))
    }
}

impl Call<'_> {
    /// Records a change in the tenant's audit log, by the caller. The change has happened: a
    /// failure to record it is logged loudly rather than turned into an error for the caller.
    pub(crate) async fn record(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        details: &[(&str, &str)],
    ) {
        if let Err(e) = self
            .services
            .audit
            .record(tenant, action, self.actor(), details)
            .await
        {
            tracing::error!(target: "admin_api", tenant = %tenant, action = action.name(), error = %e, "audit entry not written");
        }
    }
}
