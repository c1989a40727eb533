//! outbound-worker Lambda (SQS `outbound.fifo`): builds the clients once at cold start, then hands
//! each batch to the domain's send worker and reports partial batch failures. Status jobs for
//! Bitrix24 go to `sync.fifo`.
//!
//! Environment: the platform's tables and key (`DATA_TABLE`, ..., `KMS_KEY_ID`), the queue
//! URLs (`QUEUE_URL_OUTBOUND`, `QUEUE_URL_SYNC`), `GRAPH_API_BASE_URL` and
//! `GRAPH_API_VERSION` (optional), `INSTAGRAM_API_BASE_URL` (optional, default
//! `https://graph.instagram.com`), `WHATSAPP_MESSAGES_PER_SECOND` (optional, default 80) and
//! `SEND_MAX_FILE_BYTES` (optional, default 100 MiB).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use wappline::app::{aws_sdk_config, Platform};
use wappline::outbound::{OutboundClients, OutboundConfig, OutboundWorker};
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;
use wappline::sqs_lambda::handle_sqs_event;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let env = |k: &str| std::env::var(k).ok();
    let clients = OutboundClients::from_lookup(env)?;
    let config = OutboundConfig::from_lookup(env)?;
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let outbound = platform::name(platform::OUTBOUND);
    let sync = platform::name(platform::SYNC);
    let queue = Arc::new(SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        &[outbound.clone(), sync],
    )?);
    let worker = Arc::new(
        OutboundWorker::new(
            platform.store.clone(),
            platform.envelope.clone(),
            platform.tenants.clone(),
            queue.clone(),
            clients,
        )
        .with_config(config),
    );
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (worker, queue, outbound) = (worker.clone(), queue.clone(), outbound.clone());
        async move {
            Ok::<SqsBatchResponse, Error>(
                handle_sqs_event(worker.as_ref(), queue.as_ref(), &outbound, event.payload).await,
            )
        }
    }))
    .await
}
