//! erasure-worker's scheduled run, shared by its `main.rs` and the sample events' test: the
//! tenant-erasure sweep for requests whose grace period is over.

use wappline::app::runtime::Error;
use wappline::erasure::tenant::TenantErasure;

/// Items deleted per scheduled invocation (well inside the function's timeout).
pub const SWEEP_BUDGET: usize = 5_000;

/// One scheduled run; whether more work is left is the invocation's answer.
pub async fn scheduled(sweep: &TenantErasure) -> Result<serde_json::Value, Error> {
    let report = sweep.run_due(SWEEP_BUDGET).await?;
    tracing::info!(
        tenants_completed = report.tenants_completed,
        items_deleted = report.items_deleted,
        more_work = report.more_work,
        "tenant erasure sweep"
    );
    Ok(serde_json::json!({ "more_work": report.more_work }))
}
