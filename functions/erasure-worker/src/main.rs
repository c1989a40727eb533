//! erasure-worker Lambda: SQS `erasure` batches go to the erasure worker (partial batch
//! failures reported); the scheduled EventBridge event runs the tenant-erasure sweep for
//! requests whose grace period is over, then renews the Instagram Login tokens that are due
//! (decision 0040: the account-maintenance schedule; its role already reads the channels,
//! their keys and sends account email), and checks the webhook subscriptions that are due
//! (decision 0051). All are in [`erasure_worker::scheduled`]. Built once at
//! cold start (`Services`).

use std::sync::Arc;

use lambda_runtime::Error;
use wappline::app::{run_sqs_or_schedule, Services};
use wappline::queue::platform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let sweep = Arc::new(services.tenant_erasure()?);
    let refresh = Arc::new(services.token_refresh()?);
    let policy = Arc::new(services.policy_mailing());
    let templates = Arc::new(services.template_sync()?);
    let subscriptions = Arc::new(services.subscription_check()?);
    let worker = services.erasure_worker()?;
    run_sqs_or_schedule(worker, &services, platform::ERASURE, move || {
        let (sweep, refresh, policy, templates, subscriptions) = (
            sweep.clone(),
            refresh.clone(),
            policy.clone(),
            templates.clone(),
            subscriptions.clone(),
        );
        async move {
            erasure_worker::scheduled(&sweep, &refresh, &policy, &templates, &subscriptions).await
        }
    })
    .await
}
