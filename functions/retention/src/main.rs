//! retention Lambda (schedule): brings stored items to each tenant's current retention after
//! a change, within the invocation's time (and `RETENTION_MAX_ITEMS`, when set).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use wappline::app::Services;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let (restamper, max_items) = (services.retention(), services.settings.retention_max_items);
    run(service_fn(move |event: LambdaEvent<Value>| {
        let restamper = restamper.clone();
        async move {
            let budget = retention::budget(event.context.deadline(), max_items);
            Ok::<_, Error>(retention::handle(&restamper, budget).await?)
        }
    }))
    .await
}
