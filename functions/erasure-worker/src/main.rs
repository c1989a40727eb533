//! erasure-worker Lambda (SQS `erasure`): builds the clients once at cold start, then hands
//! each batch to the domain's erasure worker and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use wappline::app::{aws_sdk_config, Platform};
use wappline::erasure::{ContactErasure, ErasureWorker};
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
    let worker = Arc::new(ErasureWorker::new(ContactErasure::new(
        platform.store.clone(),
        platform.envelope.clone(),
        queue.clone(),
    )));
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (worker, queue, erasure) = (worker.clone(), queue.clone(), erasure.clone());
        async move {
            Ok::<SqsBatchResponse, Error>(
                handle_sqs_event(worker.as_ref(), queue.as_ref(), &erasure, event.payload).await,
            )
        }
    }))
    .await
}
