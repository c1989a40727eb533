//! The generic Lambda runners: one for HTTP functions (API Gateway), one for SQS consumers.
//! Each function's `main.rs` builds its handler from [`super::Services`] and hands it to one
//! of these; the local server serves the same handlers through [`HttpFunction`] and its own
//! in-process consumers.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;

use super::Services;
use crate::consumer::{Metered, RecordHandler};
use crate::queue::platform;
use crate::sqs_lambda::handle_sqs_event;

/// What the runtimes hand a function's handler or the Lambda runtime.
pub type Error = lambda_http::Error;

/// An HTTP function: one request in, one response out. Failures are answers (4xx/5xx with a
/// JSON error), never errors of the runtime.
#[async_trait]
pub trait HttpFunction: Send + Sync + 'static {
    async fn handle(&self, req: Request) -> Response<Body>;
}

/// Serves `function` behind API Gateway (buffered responses). The metrics the request
/// recorded are written after it (decision 0038).
pub async fn run_http(function: impl HttpFunction, services: &Services) -> Result<(), Error> {
    let function = Arc::new(function);
    let metrics = services.metrics.clone();
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let (function, metrics) = (function.clone(), metrics.clone());
        async move {
            let response = function.handle(req).await;
            metrics.flush();
            Ok::<_, Error>(response)
        }
    }))
    .await
}

/// Serves `function` with Lambda response streaming (large bodies).
pub async fn run_http_streaming(
    function: impl HttpFunction,
    services: &Services,
) -> Result<(), Error> {
    let function = Arc::new(function);
    let metrics = services.metrics.clone();
    lambda_http::run_with_streaming_response(lambda_http::service_fn(move |req: Request| {
        // The answer is about to be streamed over the connection that brought this event:
        // without TCP_NODELAY it would wait ~40 ms for a delayed ACK (see runtime_socket).
        // Checked at every event, as the runtime may have opened a new connection.
        super::runtime_socket::runtime_api_nodelay();
        let (function, metrics) = (function.clone(), metrics.clone());
        async move {
            let response = function.handle(req).await;
            metrics.flush();
            Ok::<_, Error>(response)
        }
    }))
    .await
}

/// `handler` with its records counted (decision 0038), as the runners and the local server's
/// consumers run it. The relay workers count their failures by cause themselves.
pub fn metered<H: RecordHandler>(
    handler: H,
    services: &Services,
    queue: &'static str,
) -> Metered<H> {
    let metered = Metered::new(
        handler,
        services.metrics.clone(),
        queue,
        platform::max_receives(queue),
    );
    if [platform::INBOUND, platform::SYNC, platform::OUTBOUND].contains(&queue) {
        metered.failures_counted_by_handler()
    } else {
        metered
    }
}

/// Consumes the platform queue `queue` (an SQS event source): each batch goes to `handler`,
/// and records that did not succeed are reported as partial batch failures. The batch's
/// metrics are written after it.
pub async fn run_sqs(
    handler: impl RecordHandler,
    services: &Services,
    queue: &'static str,
) -> Result<(), Error> {
    let handler = Arc::new(metered(handler, services, queue));
    let queue_client = services.queue.clone();
    let metrics = services.metrics.clone();
    let queue = platform::name(queue);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| {
            let (handler, queue_client, queue, metrics) = (
                handler.clone(),
                queue_client.clone(),
                queue.clone(),
                metrics.clone(),
            );
            async move {
                let answer = handle_sqs_event(
                    handler.as_ref(),
                    queue_client.as_ref(),
                    &queue,
                    event.payload,
                )
                .await;
                metrics.flush();
                Ok::<SqsBatchResponse, Error>(answer)
            }
        },
    ))
    .await
}

/// Consumes the platform queue `queue` like [`run_sqs`], and runs `scheduled` for any other
/// event (an EventBridge schedule): one function, two triggers, told apart by shape.
pub async fn run_sqs_or_schedule<F, Fut>(
    handler: impl RecordHandler,
    services: &Services,
    queue: &'static str,
    scheduled: F,
) -> Result<(), Error>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<serde_json::Value, Error>> + Send,
{
    let handler = Arc::new(metered(handler, services, queue));
    let scheduled = Arc::new(scheduled);
    let queue_client = services.queue.clone();
    let metrics = services.metrics.clone();
    let queue = platform::name(queue);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<serde_json::Value>| {
            let (handler, scheduled, queue_client, queue, metrics) = (
                handler.clone(),
                scheduled.clone(),
                queue_client.clone(),
                queue.clone(),
                metrics.clone(),
            );
            async move {
                let answer = handle_sqs_or_schedule(
                    handler.as_ref(),
                    queue_client.as_ref(),
                    &queue,
                    event.payload,
                    scheduled.as_ref(),
                )
                .await;
                metrics.flush();
                answer
            }
        },
    ))
    .await
}

/// One invocation of a function with two triggers: an SQS batch (`Records`) goes to
/// `handler`, any other event (an EventBridge schedule) runs `scheduled`. What
/// [`run_sqs_or_schedule`] does per invocation; the sample events' tests call it directly.
pub async fn handle_sqs_or_schedule<F, Fut>(
    handler: &dyn RecordHandler,
    queue_client: &dyn crate::queue::Queue,
    queue: &crate::queue::QueueName,
    payload: serde_json::Value,
    scheduled: &F,
) -> Result<serde_json::Value, Error>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<serde_json::Value, Error>> + Send,
{
    if payload.get("Records").is_none() {
        return scheduled().await;
    }
    let records: SqsEvent = serde_json::from_value(payload)?;
    let answer = handle_sqs_event(handler, queue_client, queue, records).await;
    Ok(serde_json::to_value(answer)?)
}
