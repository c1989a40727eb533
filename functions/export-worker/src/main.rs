//! export-worker Lambda (SQS `exports`): builds the clients once at cold start, then runs
//! each queued export into the S3 bucket and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use wappline::app::{aws_sdk_config, exports_from_env, Platform};
use wappline::export::ExportWorker;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;
use wappline::sqs_lambda::handle_sqs_event;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let exports = exports_from_env(&sdk, &platform)?;
    let name = platform::name(platform::EXPORTS);
    let queue = Arc::new(SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        std::slice::from_ref(&name),
    )?);
    let worker = Arc::new(ExportWorker::new(exports));
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (worker, queue, name) = (worker.clone(), queue.clone(), name.clone());
        async move {
            Ok::<SqsBatchResponse, Error>(
                handle_sqs_event(worker.as_ref(), queue.as_ref(), &name, event.payload).await,
            )
        }
    }))
    .await
}
