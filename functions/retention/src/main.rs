//! retention Lambda (EventBridge schedule): builds the clients once at cold start, then on
//! each scheduled event re-stamps tenants until the invocation's time (less a margin) or
//! `RETENTION_MAX_ITEMS` is used. The event's content is not used.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use wappline::app::{aws_sdk_config, Platform};
use wappline::retention::{Report, RetentionRun};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let platform = Platform::from_aws_env(&aws_sdk_config().await).await?;
    let max_items = retention::max_items_from(std::env::var(retention::ENV_MAX_ITEMS).ok())?;
    let restamper = Arc::new(RetentionRun::new(
        platform.store.clone(),
        platform.tenants.clone(),
    ));
    run(service_fn(move |event: LambdaEvent<Value>| {
        let restamper = restamper.clone();
        async move {
            let budget = retention::budget(event.context.deadline(), max_items);
            let report: Report = retention::handle(&restamper, budget).await?;
            Ok::<Report, Error>(report)
        }
    }))
    .await
}
