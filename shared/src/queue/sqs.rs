//! SQS queue adapter (aws-sdk-sqs). Redrive to the dead-letter queue is SQS's own, set up on
//! the queue (template.yaml in AWS, [`provision_queues`] for tests and emulators).
//!
//! Behaviour worth knowing, as SQS and moto report it:
//! - `DeleteMessage` with the receipt of an already-deleted message succeeds in both, so
//!   `ack` needs no special case; `ReceiptHandleIsInvalid` means a receipt SQS never issued
//!   (or malformed) and maps to `QueueError::Invalid`.
//! - `ChangeMessageVisibility` on a deleted or no-longer-in-flight message fails
//!   (`ReceiptHandleIsInvalid` / `MessageNotInflight` / `InvalidParameterValue`): `Invalid`.
//! - Throttling, 5xx and transport failures (after the SDK's own retries) are `Unavailable`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use super::{
    validate_batch, OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, QueueSpec,
    ReceivedMessage, MAX_BATCH,
};

/// Total body bytes per SendMessageBatch call (SQS's batch payload limit).
const MAX_BATCH_PAYLOAD: usize = 256 * 1024;
/// Source queues keep messages 4 days (SQS's default); their dead-letter queues 14 days (the
/// maximum), so a message cannot expire in the DLQ before it would have in the source.
const SOURCE_RETENTION_SECS: u32 = 4 * 24 * 3600;
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;
/// Pause before the one retry of failed batch entries.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// SQS's request limits, mirrored by the embedded adapter so both refuse the same requests.
pub(super) mod limits {
    use std::time::Duration;

    use super::super::{OutgoingMessage, QueueError, MAX_BATCH};

    /// SQS's maximum visibility timeout (12 hours).
    pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

    pub fn check_receive(max: usize, visibility: Duration) -> Result<(), QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(QueueError::Invalid(format!(
                "receive max must be 1..={MAX_BATCH}, got {max}"
            )));
        }
        check_visibility(visibility)
    }

    pub fn check_visibility(visibility: Duration) -> Result<(), QueueError> {
        if visibility > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!(
                "visibility timeout must be at most {}s",
                MAX_VISIBILITY.as_secs()
            )));
        }
        Ok(())
    }

    /// SQS accepts only these characters in a body (#x9 | #xA | #xD | #x20-#xD7FF |
    /// #xE000-#xFFFD | #x10000-#x10FFFF); checked up front so a bad body fails the whole
    /// batch as `Invalid` on both adapters instead of one SQS entry failing.
    pub fn check_bodies(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let allowed = |c: char| {
            matches!(c, '\t' | '\n' | '\r')
                || ('\u{20}'..='\u{D7FF}').contains(&c)
                || ('\u{E000}'..='\u{FFFD}').contains(&c)
                || c >= '\u{10000}'
        };
        if messages.iter().any(|m| !m.body.chars().all(allowed)) {
            return Err(QueueError::Invalid(
                "message body contains characters SQS does not accept".into(),
            ));
        }
        Ok(())
    }
}

/// The SQS adapter: a client and the URL of each queue it may use.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    urls: Arc<HashMap<QueueName, String>>,
}

impl SqsQueue {
    pub fn new(client: Client, urls: HashMap<QueueName, String>) -> Self {
        SqsQueue {
            client,
            urls: Arc::new(urls),
        }
    }

    /// The environment variable holding a queue's URL: `inbound.fifo` → `QUEUE_URL_INBOUND`,
    /// `inbound-dlq.fifo` → `QUEUE_URL_INBOUND_DLQ`.
    pub fn url_env_var(name: &QueueName) -> String {
        let base = name.as_str().strip_suffix(".fifo").unwrap_or(name.as_str());
        format!("QUEUE_URL_{}", base.to_ascii_uppercase().replace('-', "_"))
    }

    fn url(&self, queue: &QueueName) -> Result<&str, QueueError> {
        self.urls
            .get(queue)
            .map(String::as_str)
            .ok_or_else(|| QueueError::UnknownQueue(queue.to_string()))
    }

    /// One SendMessageBatch call for the messages at `indexes`; returns the entries SQS
    /// refused as (index, code, sender fault).
    async fn send_entries(
        &self,
        url: &str,
        fifo: bool,
        messages: &[OutgoingMessage],
        indexes: &[usize],
    ) -> Result<Vec<(usize, String, bool)>, QueueError> {
        let mut entries = Vec::with_capacity(indexes.len());
        for &i in indexes {
            let m = &messages[i];
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body);
            if fifo {
                entry = entry
                    .set_message_group_id(m.group_id.clone())
                    .set_message_deduplication_id(m.dedup_id.clone());
            }
            entries.push(
                entry
                    .build()
                    .map_err(|e| QueueError::Backend(format!("building batch entry: {e}")))?,
            );
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(map_err)?;
        out.failed()
            .iter()
            .map(|f| {
                let index = f
                    .id()
                    .parse::<usize>()
                    .ok()
                    .filter(|i| indexes.contains(i))
                    .ok_or_else(|| {
                        QueueError::Backend(format!(
                            "SQS reported unknown batch entry {:?}",
                            f.id()
                        ))
                    })?;
                Ok((index, f.code().to_owned(), f.sender_fault()))
            })
            .collect()
    }
}

/// Splits messages into SendMessageBatch calls: at most [`MAX_BATCH`] entries and
/// [`MAX_BATCH_PAYLOAD`] body bytes each (one message alone always fits: bodies are checked
/// against `MAX_BODY_BYTES`).
fn chunks(messages: &[OutgoingMessage]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let full =
            i - start == MAX_BATCH || (i > start && bytes + m.body.len() > MAX_BATCH_PAYLOAD);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += m.body.len();
    }
    if start < messages.len() {
        out.push(start..messages.len());
    }
    out
}

/// Whole seconds for SQS, rounded up so a message is never visible earlier than asked.
fn secs_ceil(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// Maps an SQS failure to the port's error, by error code, then HTTP status.
fn map_err<E>(err: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let message = err.message().unwrap_or_default().to_owned();
    let detail = format!("{code}: {message}");
    match code.as_str() {
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => {
            QueueError::UnknownQueue(detail)
        }
        "ReceiptHandleIsInvalid"
        | "InvalidParameterValue"
        | "MissingParameter"
        | "InvalidMessageContents"
        | "MessageNotInflight"
        | "AWS.SimpleQueueService.MessageNotInflight"
        | "TooManyEntriesInBatchRequest"
        | "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
        | "BatchRequestTooLong"
        | "AWS.SimpleQueueService.BatchRequestTooLong"
        | "BatchEntryIdsNotDistinct"
        | "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
        | "EmptyBatchRequest"
        | "AWS.SimpleQueueService.EmptyBatchRequest"
        | "InvalidBatchEntryId"
        | "AWS.SimpleQueueService.InvalidBatchEntryId"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "ValidationError" => QueueError::Invalid(detail),
        "ThrottlingException"
        | "RequestThrottled"
        | "AWS.SimpleQueueService.RequestThrottled"
        | "OverLimit"
        | "ServiceUnavailable"
        | "InternalError"
        | "InternalFailure"
        | "KmsThrottled"
        | "KmsUnavailable" => QueueError::Unavailable(detail),
        _ => match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                QueueError::Unavailable(format!("{err}"))
            }
            _ if err
                .raw_response()
                .is_some_and(|r| r.status().is_server_error()) =>
            {
                QueueError::Unavailable(detail)
            }
            _ if code.is_empty() => QueueError::Backend(format!("{err}")),
            _ => QueueError::Backend(detail),
        },
    }
}

fn received(m: aws_sdk_sqs::types::Message) -> Result<ReceivedMessage, QueueError> {
    let missing =
        |what: &str| QueueError::Backend(format!("SQS returned a message without {what}"));
    let attrs = m.attributes();
    let receive_count = attrs
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or_else(|| missing("a receive count"))?;
    let group_id = attrs
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    Ok(ReceivedMessage {
        message_id: m.message_id.ok_or_else(|| missing("an id"))?,
        body: m.body.ok_or_else(|| missing("a body"))?,
        receipt: m
            .receipt_handle
            .ok_or_else(|| missing("a receipt handle"))?,
        receive_count,
        group_id,
    })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        validate_batch(queue, &messages)?;
        limits::check_bodies(&messages)?;
        let fifo = queue.is_fifo();
        let total = messages.len();
        let mut failures: Vec<(usize, String)> = Vec::new();
        // An error of a whole call returns at once; earlier calls stay sent. The caller treats
        // the batch as failed and resends it (FIFO dedup ids absorb the repeats).
        for range in chunks(&messages) {
            let indexes: Vec<usize> = range.collect();
            let failed = self.send_entries(url, fifo, &messages, &indexes).await?;
            // Sender faults would fail again; retry only what SQS failed on its side.
            let (retry, permanent): (Vec<_>, Vec<_>) = failed
                .into_iter()
                .partition(|(_, _, sender_fault)| !sender_fault);
            failures.extend(permanent.into_iter().map(|(i, code, _)| (i, code)));
            if !retry.is_empty() {
                tokio::time::sleep(RETRY_PAUSE).await;
                let again: Vec<usize> = retry.iter().map(|(i, _, _)| *i).collect();
                let still = self.send_entries(url, fifo, &messages, &again).await?;
                failures.extend(still.into_iter().map(|(i, code, _)| (i, code)));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        failures.sort();
        let reason = failures
            .iter()
            .map(|(i, code)| format!("entry {i}: {code}"))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(queue = %queue, failed = failures.len(), total, %reason, "SQS refused part of a batch");
        Err(QueueError::PartialFailure {
            failed: failures.len(),
            total,
            reason,
        })
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let url = self.url(queue)?;
        limits::check_receive(max, visibility)?;
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(MAX_BATCH as i32))
            .visibility_timeout(secs_ceil(visibility))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(map_err)?;
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(received)
            .collect()
    }

    async fn ack(&self, queue: &QueueName, receipt: &str) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        if receipt.is_empty() {
            return Err(QueueError::Invalid("empty receipt".into()));
        }
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue: &QueueName,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        limits::check_visibility(visibility)?;
        if receipt.is_empty() {
            return Err(QueueError::Invalid("empty receipt".into()));
        }
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(secs_ceil(visibility))
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        let url = self.url(queue)?;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(map_err)?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| QueueError::Backend(format!("SQS returned no {name} for {queue}")))
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        })
    }
}

fn prefixed(prefix: &str, name: &QueueName) -> Result<QueueName, QueueError> {
    QueueName::parse(&format!("{prefix}-{name}"))
}

async fn create_queue(
    client: &Client,
    name: &QueueName,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, QueueError> {
    let out = client
        .create_queue()
        .queue_name(name.as_str())
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(map_err)?;
    out.queue_url
        .ok_or_else(|| QueueError::Backend(format!("CreateQueue {name} returned no URL")))
}

async fn queue_arn(client: &Client, url: &str) -> Result<String, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(map_err)?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Backend(format!("no QueueArn for {url}")))
}

/// Creates each queue and its dead-letter queue, named `{prefix}-{name}`, with redrive after
/// `max_receives`. Returns the URLs of both, keyed by the unprefixed names. For tests and
/// emulator bootstrap (in AWS, template.yaml declares the queues). Idempotent while the
/// attributes are unchanged (SQS's CreateQueue is).
pub async fn provision_queues(
    client: &Client,
    prefix: &str,
    specs: &[QueueSpec],
) -> Result<HashMap<QueueName, String>, QueueError> {
    let mut urls = HashMap::new();
    for spec in specs {
        if spec.max_receives == 0 {
            return Err(QueueError::Invalid(format!(
                "queue {}: max_receives must be at least 1",
                spec.name
            )));
        }
        limits::check_visibility(spec.visibility_timeout)?;
        let fifo = spec.name.is_fifo();
        let dlq = spec.name.dead_letter();

        // The DLQ first: the source's redrive policy names its ARN.
        let mut dlq_attrs = HashMap::new();
        if fifo {
            dlq_attrs.insert(QueueAttributeName::FifoQueue, "true".to_owned());
        }
        dlq_attrs.insert(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        );
        let dlq_url = create_queue(client, &prefixed(prefix, &dlq)?, dlq_attrs).await?;
        let dlq_arn = queue_arn(client, &dlq_url).await?;

        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": spec.max_receives,
        });
        let mut attrs = HashMap::new();
        if fifo {
            attrs.insert(QueueAttributeName::FifoQueue, "true".to_owned());
        }
        attrs.insert(
            QueueAttributeName::VisibilityTimeout,
            secs_ceil(spec.visibility_timeout).to_string(),
        );
        attrs.insert(
            QueueAttributeName::MessageRetentionPeriod,
            SOURCE_RETENTION_SECS.to_string(),
        );
        attrs.insert(QueueAttributeName::RedrivePolicy, redrive.to_string());
        let url = create_queue(client, &prefixed(prefix, &spec.name)?, attrs).await?;

        urls.insert(dlq, dlq_url);
        urls.insert(spec.name.clone(), url);
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> QueueName {
        QueueName::parse(s).expect("valid test queue name")
    }

    #[test]
    fn env_var_names_follow_the_queue_name() {
        assert_eq!(
            SqsQueue::url_env_var(&name("inbound.fifo")),
            "QUEUE_URL_INBOUND"
        );
        assert_eq!(SqsQueue::url_env_var(&name("sync.fifo")), "QUEUE_URL_SYNC");
        assert_eq!(SqsQueue::url_env_var(&name("erasure")), "QUEUE_URL_ERASURE");
        assert_eq!(
            SqsQueue::url_env_var(&name("inbound.fifo").dead_letter()),
            "QUEUE_URL_INBOUND_DLQ"
        );
    }

    #[test]
    fn chunks_respect_count_and_payload_limits() {
        let small: Vec<_> = (0..25)
            .map(|i| OutgoingMessage::new(format!("m{i}")))
            .collect();
        assert_eq!(chunks(&small), vec![0..10, 10..20, 20..25]);

        let big = "x".repeat(100 * 1024);
        let large: Vec<_> = (0..5).map(|_| OutgoingMessage::new(big.clone())).collect();
        assert_eq!(chunks(&large), vec![0..2, 2..4, 4..5]);

        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn visibility_rounds_up_to_whole_seconds() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_millis(1)), 1);
        assert_eq!(secs_ceil(Duration::from_secs(2)), 2);
        assert_eq!(secs_ceil(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn bodies_outside_the_sqs_charset_are_refused() {
        let ok = [OutgoingMessage::new("tab\t newline\n émoji 🎉")];
        assert!(limits::check_bodies(&ok).is_ok());
        for bad in ["nul\u{0}", "bell\u{7}", "nonchar\u{FFFE}"] {
            let err = limits::check_bodies(&[OutgoingMessage::new(bad)]);
            assert!(matches!(err, Err(QueueError::Invalid(_))), "{bad:?}");
        }
    }
}
