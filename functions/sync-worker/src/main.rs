//! sync-worker Lambda (SQS `sync.fifo`): builds the clients once at cold start, then hands
//! each batch to the domain's CRM sync and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use wappline::app::{aws_sdk_config, Platform};
use wappline::bitrix::{BitrixClient, BitrixConfig};
use wappline::crm_sync::SyncWorker;
use wappline::media::MediaLinks;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;
use wappline::sqs_lambda::handle_sqs_event;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let bitrix = BitrixClient::new(BitrixConfig::from_lookup(|k| std::env::var(k).ok())?)?;
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let sync = platform::name(platform::SYNC);
    let queue = Arc::new(SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        std::slice::from_ref(&sync),
    )?);
    let mut crm = SyncWorker::new(
        platform.store.clone(),
        platform.envelope.clone(),
        platform.tenants.clone(),
        bitrix,
    );
    // Files reach Bitrix24 as signed links to the media proxy (MEDIA_LINK_KEY,
    // PUBLIC_BASE_URL); without them messages carry a text label for their media.
    if env("MEDIA_LINK_KEY").is_some() {
        crm = crm.with_media_links(Arc::new(MediaLinks::from_lookup(env)?));
    }
    let worker = Arc::new(crm);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (worker, queue, sync) = (worker.clone(), queue.clone(), sync.clone());
        async move {
            Ok::<SqsBatchResponse, Error>(
                handle_sqs_event(worker.as_ref(), queue.as_ref(), &sync, event.payload).await,
            )
        }
    }))
    .await
}
