//! erasure-worker Lambda: SQS `erasure` batches go to the erasure worker (partial batch
//! failures reported); the scheduled EventBridge event runs the tenant-erasure sweep for
//! requests whose grace period is over, then renews the Instagram Login tokens that are due
//! (decision 0040: the account-maintenance schedule; its role already reads the channels,
//! their keys and sends account email). Built once at cold start (`Services`).

use std::sync::Arc;

use lambda_runtime::Error;
use wappline::app::{run_sqs_or_schedule, Services};
use wappline::queue::platform;

/// Items deleted per scheduled invocation (well inside the function's timeout).
const SWEEP_BUDGET: usize = 5_000;
/// Tokens renewed per scheduled invocation (each is one call to Instagram).
const REFRESH_BUDGET: usize = 200;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let sweep = Arc::new(services.tenant_erasure()?);
    let refresh = Arc::new(services.token_refresh()?);
    let worker = services.erasure_worker()?;
    run_sqs_or_schedule(worker, &services, platform::ERASURE, move || {
        let (sweep, refresh) = (sweep.clone(), refresh.clone());
        async move {
            let report = sweep.run_due(SWEEP_BUDGET).await?;
            tracing::info!(
                tenants_completed = report.tenants_completed,
                items_deleted = report.items_deleted,
                more_work = report.more_work,
                "tenant erasure sweep"
            );
            let tokens = refresh
                .run_due(wappline::clock::now_secs(), REFRESH_BUDGET)
                .await?;
            tracing::info!(
                checked = tokens.checked,
                refreshed = tokens.refreshed,
                failed = tokens.failed,
                "token refresh"
            );
            Ok(serde_json::json!({ "more_work": report.more_work, "tokens": tokens }))
        }
    })
    .await
}
