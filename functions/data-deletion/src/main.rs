//! data-deletion Lambda: builds the clients once at cold start, then serves requests.
//!
//! Environment: `META_APP_SECRET` (+ `META_APP_SECRET_PREVIOUS` during a rotation),
//! `PUBLIC_BASE_URL` (where the status page is served), `QUEUE_URL_ERASURE`, and the table
//! names (`DATA_TABLE`, ...).

use std::sync::Arc;

use data_deletion::DataDeletion;
use lambda_http::{run, service_fn, Error, Request};
use wappline::app::aws_sdk_config;
use wappline::meta::AppSecret;
use wappline::meta_deletion::MetaDeletion;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;
use wappline::store::dynamo::{DynamoStore, TableNames};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let secrets = app_secrets()?;
    let base_url = std::env::var("PUBLIC_BASE_URL")?;
    let sdk = aws_sdk_config().await;
    let names = TableNames::from_env().map_err(|e| e.to_string())?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), names);
    let erasure = platform::name(platform::ERASURE);
    let queue = SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        std::slice::from_ref(&erasure),
    )?;
    let deletion = MetaDeletion::new(
        secrets,
        Arc::new(store),
        Arc::new(queue),
        erasure,
        &base_url,
    )?;
    let function = Arc::new(DataDeletion::new(deletion));
    run(service_fn(move |req: Request| {
        let function = function.clone();
        async move { Ok::<_, Error>(function.handle(req).await) }
    }))
    .await
}

/// `META_APP_SECRET`, plus `META_APP_SECRET_PREVIOUS` while a secret is being rotated.
fn app_secrets() -> Result<Vec<AppSecret>, Error> {
    let mut secrets = vec![AppSecret::new(&std::env::var("META_APP_SECRET")?)?];
    if let Ok(previous) = std::env::var("META_APP_SECRET_PREVIOUS") {
        if !previous.is_empty() {
            secrets.push(AppSecret::new(&previous)?);
        }
    }
    Ok(secrets)
}
