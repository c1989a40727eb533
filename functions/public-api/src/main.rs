//! public-api Lambda: builds the clients once at cold start, then serves requests.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error, Request};
use public_api::PublicApi;
use wappline::api_keys::ApiKeys;
use wappline::app::{aws_sdk_config, Platform};
use wappline::outbound::OutboundIntake;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let queue = SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        &[platform::name(platform::OUTBOUND)],
    )?;
    let api = Arc::new(PublicApi::new(
        ApiKeys::new(platform.store.clone()),
        platform.tenants.clone(),
        OutboundIntake::new(
            platform.store.clone(),
            platform.envelope.clone(),
            Arc::new(queue),
        ),
    ));
    run(service_fn(move |req: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(req).await) }
    }))
    .await
}
