//! Running a [`RecordHandler`] as an SQS-triggered Lambda: each record's body is parsed by the
//! handler itself (one bad record never fails the batch), FIFO order is kept by
//! [`process_batch`], and records that did not succeed are reported as partial batch failures
//! (`ReportBatchItemFailures` in template.yaml), so only they are delivered again.
//! `RetryAfter` first hides the record for its delay, so a rate-limited record is retried
//! later instead of at once.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::consumer::{process_batch, Outcome, QueueRecord, RecordHandler};
use crate::queue::{Queue, QueueName};

/// The longest delay SQS accepts for a visibility change (12 hours).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Handles one SQS event and answers which records to deliver again.
pub async fn handle_sqs_event(
    handler: &dyn RecordHandler,
    queue: &dyn Queue,
    queue_name: &QueueName,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut records = Vec::with_capacity(event.records.len());
    let mut receipts = Vec::with_capacity(event.records.len());
    for m in event.records {
        records.push(QueueRecord {
            message_id: m.message_id.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            group_id: m.attributes.get("MessageGroupId").cloned(),
        });
        receipts.push(m.receipt_handle);
    }
    let outcomes = process_batch(handler, &records).await;
    let mut response = SqsBatchResponse::default();
    for ((record, receipt), outcome) in records.iter().zip(&receipts).zip(outcomes) {
        if outcome.is_done() {
            continue;
        }
        if let (Outcome::RetryAfter(delay), Some(receipt)) = (&outcome, receipt) {
            let delay = (*delay).min(MAX_VISIBILITY);
            if let Err(e) = queue.change_visibility(queue_name, receipt, delay).await {
                // The record still comes back, after the queue's visibility timeout.
                tracing::warn!(error = %e, "could not delay a record's retry");
            }
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = record.message_id.clone();
        response.batch_item_failures.push(failure);
    }
    response
}
