//! erasure-worker Lambda: SQS `erasure` batches go to the domain's erasure worker (partial
//! batch failures reported); the scheduled EventBridge event runs the tenant-erasure sweep
//! for requests whose grace period is over. One binary, two triggers, told apart by shape.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use wappline::app::{aws_sdk_config, exports_from_env, Platform};
use wappline::erasure::tenant::TenantErasure;
use wappline::erasure::{ContactErasure, ErasureWorker};
use wappline::meta_deletion::MetaUserErasure;

/// Items deleted per scheduled invocation (well inside the function's timeout).
const SWEEP_BUDGET: usize = 5_000;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;
use wappline::sqs_lambda::handle_sqs_event;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let erasure = platform::name(platform::ERASURE);
    let queue = Arc::new(SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        std::slice::from_ref(&erasure),
    )?);
    let exports = exports_from_env(&sdk, &platform)?;
    let worker = Arc::new(
        ErasureWorker::new(
            ContactErasure::new(
                platform.store.clone(),
                platform.envelope.clone(),
                queue.clone(),
            )
            .with_exports(exports.clone()),
        )
        .with_meta_users(Arc::new(MetaUserErasure::new(
            platform.store.clone(),
            platform.tenants.clone(),
        ))),
    );
    let tenants = Arc::new(
        TenantErasure::new(
            platform.store.clone(),
            platform.envelope.clone(),
            platform.tenants.clone(),
        )
        .with_exports(exports),
    );
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (worker, queue, erasure, tenants) = (
            worker.clone(),
            queue.clone(),
            erasure.clone(),
            tenants.clone(),
        );
        async move {
            if event.payload.get("Records").is_some() {
                let sqs: SqsEvent = serde_json::from_value(event.payload)?;
                let response: SqsBatchResponse =
                    handle_sqs_event(worker.as_ref(), queue.as_ref(), &erasure, sqs).await;
                return Ok::<serde_json::Value, Error>(serde_json::to_value(response)?);
            }
            // The schedule: as much of the due tenant erasures as fits one invocation.
            let report = tenants.run_due(SWEEP_BUDGET).await?;
            tracing::info!(
                tenants_completed = report.tenants_completed,
                items_deleted = report.items_deleted,
                more_work = report.more_work,
                "tenant erasure sweep"
            );
            Ok(serde_json::json!({ "more_work": report.more_work }))
        }
    }))
    .await
}
