//! Running a [`RecordHandler`] as an SQS-triggered Lambda: each record's body is parsed by the
//! handler itself (one bad record never fails the batch), FIFO order is kept by
//! [`process_batch`], and records that did not succeed are reported as partial batch failures
//! (`ReportBatchItemFailures` in template.yaml), so only they are delivered again.
//! `RetryAfter` first hides the record for its delay, so a rate-limited record is retried
//! later instead of at once; a `Skipped` record (not tried) is made visible at once, so it
//! comes back with its group's head instead of after the visibility timeout.

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
        let delay = match &outcome {
            Outcome::RetryAfter(delay) => Some((*delay).min(MAX_VISIBILITY)),
            Outcome::Skipped => Some(Duration::ZERO),
            _ => None,
        };
        if let (Some(delay), Some(receipt)) = (delay, receipt) {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use aws_lambda_events::event::sqs::SqsMessage;

    use super::*;
    use crate::queue::{OutgoingMessage, QueueError, ReceivedMessage};

    /// Records visibility changes; nothing else is used by the adapter.
    #[derive(Default)]
    struct RecordingQueue {
        delayed: Mutex<Vec<(String, Duration)>>,
    }

    #[async_trait]
    impl Queue for RecordingQueue {
        async fn send_batch(
            &self,
            _: &QueueName,
            _: Vec<OutgoingMessage>,
        ) -> Result<(), QueueError> {
            unreachable!("not used")
        }
        async fn receive(
            &self,
            _: &QueueName,
            _: usize,
            _: Duration,
        ) -> Result<Vec<ReceivedMessage>, QueueError> {
            unreachable!("not used")
        }
        async fn ack(&self, _: &QueueName, _: &str) -> Result<(), QueueError> {
            unreachable!("Lambda deletes successful records itself")
        }
        async fn change_visibility(
            &self,
            _: &QueueName,
            receipt: &str,
            delay: Duration,
        ) -> Result<(), QueueError> {
            self.delayed
                .lock()
                .unwrap()
                .push((receipt.to_owned(), delay));
            Ok(())
        }
        async fn approximate_depth(
            &self,
            _: &QueueName,
        ) -> Result<crate::queue::QueueDepth, QueueError> {
            unreachable!("not used")
        }
    }

    /// Outcome by body: "ok", "fail", "later".
    struct ByBody;

    #[async_trait]
    impl RecordHandler for ByBody {
        async fn handle(&self, record: &QueueRecord) -> Outcome {
            match record.body.as_str() {
                "ok" => Outcome::Done,
                "later" => Outcome::RetryAfter(Duration::from_secs(30)),
                _ => Outcome::Failed,
            }
        }
    }

    fn message(id: &str, body: &str, group: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.receipt_handle = Some(format!("receipt-{id}"));
        m.body = Some(body.into());
        let mut attributes =
            HashMap::from([("ApproximateReceiveCount".to_owned(), "2".to_owned())]);
        if let Some(g) = group {
            attributes.insert("MessageGroupId".into(), g.into());
        }
        m.attributes = attributes;
        m
    }

    fn event(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = messages;
        e
    }

    fn failed_ids(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn only_records_that_did_not_succeed_are_reported() {
        let queue = RecordingQueue::default();
        let name = QueueName::parse("work").unwrap();
        let response = handle_sqs_event(
            &ByBody,
            &queue,
            &name,
            event(vec![
                message("a", "ok", None),
                message("b", "fail", None),
                message("c", "ok", None),
                message("d", "later", None),
            ]),
        )
        .await;
        assert_eq!(failed_ids(&response), ["b", "d"]);
        // The rate-limited record waits its delay instead of the visibility timeout.
        assert_eq!(
            *queue.delayed.lock().unwrap(),
            [("receipt-d".to_owned(), Duration::from_secs(30))]
        );
    }

    #[tokio::test]
    async fn a_failed_fifo_record_holds_back_the_rest_of_its_group_only() {
        let queue = RecordingQueue::default();
        let name = QueueName::parse("work.fifo").unwrap();
        let response = handle_sqs_event(
            &ByBody,
            &queue,
            &name,
            event(vec![
                message("a", "fail", Some("g1")),
                message("b", "ok", Some("g1")),
                message("c", "ok", Some("g2")),
            ]),
        )
        .await;
        assert_eq!(failed_ids(&response), ["a", "b"]);
        // The skipped record was not tried: released at once, not after the visibility
        // timeout (FIFO keeps it behind "a").
        assert_eq!(
            *queue.delayed.lock().unwrap(),
            [("receipt-b".to_owned(), Duration::ZERO)]
        );
    }
}
