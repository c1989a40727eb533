//! In-process queue consumers: what Lambda's SQS event source mapping does in AWS, done by
//! a polling loop per queue on the embedded queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wappline::consumer::{process_batch, Outcome, QueueRecord, RecordHandler};
use wappline::queue::{Queue, QueueName, MAX_BATCH};

/// Pause between polls of an empty queue.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Pause after the queue itself failed.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A queue and the function that consumes it.
#[derive(Clone)]
pub struct Consumer {
    pub queue: QueueName,
    /// Like the Lambda event source's visibility timeout: how long a batch stays hidden.
    pub visibility: Duration,
    pub handler: Arc<dyn RecordHandler>,
    /// Counts each batch as one invocation of the function, with its duration (the cost
    /// model, decision 0053).
    pub meter: Option<Arc<wappline::costs::Meter>>,
}

/// Polls the queue until `stop` turns true, handing batches to the handler: done records are
/// acknowledged, `RetryAfter` ones hidden for their delay, skipped ones (not tried: an earlier
/// record of their group did not succeed) released at once to come back behind it, failed ones
/// left to reappear after the visibility timeout (the relay workers dead-letter a job
/// themselves after its own attempts, decision 0069; other queues' messages reach it after
/// `max_receives`). The message groups of a batch run concurrently ([`process_batch`]), so one
/// slow group (a hanging portal) does not hold back the others of its batch; run several loops
/// per queue so it does not hold back the next batches either.
pub async fn run(queue: Arc<dyn Queue>, consumer: Consumer, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let pause = match poll_once(queue.as_ref(), &consumer).await {
            Ok(0) => IDLE_POLL,
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(queue = %consumer.queue, error = %e, "queue poll failed");
                ERROR_BACKOFF
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// One receive-process-acknowledge round; returns how many records it received.
pub async fn poll_once(queue: &dyn Queue, consumer: &Consumer) -> Result<usize, String> {
    let messages = queue
        .receive(&consumer.queue, MAX_BATCH, consumer.visibility)
        .await
        .map_err(|e| e.to_string())?;
    if messages.is_empty() {
        return Ok(0);
    }
    let records: Vec<QueueRecord> = messages.iter().map(QueueRecord::from).collect();
    let started = std::time::Instant::now();
    let outcomes = process_batch(consumer.handler.as_ref(), &records).await;
    if let Some(meter) = &consumer.meter {
        meter.invocation(function_of(&consumer.queue), started.elapsed());
    }
    // The done records are deleted first and in one call (one commit on the embedded queue),
    // as Lambda's event source mapping deletes a batch's successes with `DeleteMessageBatch`.
    let (done, rest): (Vec<_>, Vec<_>) = messages
        .iter()
        .zip(outcomes)
        .partition(|(_, outcome)| outcome.is_done());
    if !done.is_empty() {
        let receipts: Vec<String> = done.iter().map(|(m, _)| m.receipt.clone()).collect();
        let results = queue.ack_batch(&consumer.queue, &receipts).await;
        for ((message, _), result) in done.iter().zip(results) {
            if let Err(e) = result {
                // Left in flight: it comes back after the visibility timeout, and the
                // handlers are idempotent (decision 0009).
                tracing::warn!(queue = %consumer.queue, message_id = %message.message_id, error = %e, "could not acknowledge message");
            }
        }
    }
    for (message, outcome) in rest {
        let result = match outcome {
            Outcome::Done | Outcome::Failed => Ok(()),
            Outcome::RetryAfter(delay) => {
                queue
                    .change_visibility(&consumer.queue, &message.receipt, delay)
                    .await
            }
            Outcome::Skipped => {
                queue
                    .change_visibility(&consumer.queue, &message.receipt, Duration::ZERO)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(queue = %consumer.queue, message_id = %message.message_id, error = %e, "could not settle message");
        }
    }
    Ok(messages.len())
}

/// The function that consumes `queue` in template.yaml.
fn function_of(queue: &QueueName) -> &'static str {
    match queue.as_str() {
        wappline::queue::platform::INBOUND => "inbound-worker",
        wappline::queue::platform::SYNC => "sync-worker",
        wappline::queue::platform::OUTBOUND => "outbound-worker",
        wappline::queue::platform::ERASURE => "erasure-worker",
        wappline::queue::platform::EXPORTS => "export-worker",
        _ => "other",
    }
}
