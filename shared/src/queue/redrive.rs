//! Redrive: puts a queue's dead-lettered messages back on it, through the [`Queue`] port, so
//! one piece of code serves SQS and the embedded queue (decision 0024).
//!
//! Per message: send it to the source queue, then delete it from the dead-letter queue, never
//! the other way round, so nothing is deleted that was not sent. A crash or a failed delete in
//! between leaves the message in both queues: on a FIFO queue a new run within SQS's 5-minute
//! deduplication window enqueues it once more for nothing (its deduplication id comes from
//! its dead-letter message id, see [`redriven_dedup_id`]); later, or on a standard queue, the
//! job is queued twice and the workers' idempotency records absorb the second one.
//!
//! FIFO order: the dead-letter queue delivers a group's messages in order, and each received
//! message is sent and deleted before the next; the group's following messages are received
//! only after that. A redriven message keeps its group id, and lands behind whatever its group
//! has on the source queue by then.
//!
//! What it reports is message ids, group ids (tenant + pseudonymous conversation, or a digest)
//! and counts, never a body: bodies hold personal data identifiers.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::{OutgoingMessage, Queue, QueueError, QueueName, ReceivedMessage, MAX_BATCH};

/// How long a message being moved stays hidden in the dead-letter queue: enough for one send
/// and one delete per message of a batch; after a crash the messages reappear this soon.
const MOVE_VISIBILITY: Duration = Duration::from_secs(60);
/// How long a dry run hides what it lists (it releases them at the end; this bounds a crash).
const LIST_VISIBILITY: Duration = Duration::from_secs(120);
/// Empty receives tolerated while the queue's count says messages are waiting: an SQS
/// receive without long polling samples a subset of its servers and may come back empty.
const EMPTY_RECEIVES: u32 = 3;
const EMPTY_PAUSE: Duration = Duration::from_secs(1);

/// What to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedriveOptions {
    /// Move (in a dry run: list) at most this many messages; all when `None`.
    pub max: Option<usize>,
    /// List what would move, without moving it.
    pub dry_run: bool,
}

/// A dead-lettered message, as it may be shown: no body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter queue.
    pub message_id: String,
    pub group_id: Option<String>,
    /// Receives so far, in the source queue (SQS carries the count over when it dead-letters
    /// a message) and in the dead-letter queue, this one included.
    pub receive_count: u32,
}

impl DeadLetter {
    fn of(m: &ReceivedMessage) -> Self {
        DeadLetter {
            message_id: m.message_id.clone(),
            group_id: m.group_id.clone(),
            receive_count: m.receive_count,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedriveReport {
    pub source: QueueName,
    pub dead_letter: QueueName,
    pub dry_run: bool,
    /// Moved messages (a dry run: listed ones), in the order they were received.
    pub messages: Vec<DeadLetter>,
}

impl RedriveReport {
    fn new(source: &QueueName, dry_run: bool) -> Self {
        RedriveReport {
            source: source.clone(),
            dead_letter: source.dead_letter(),
            dry_run,
            messages: Vec::new(),
        }
    }

    /// Messages sent to the source queue and deleted from the dead-letter queue.
    pub fn moved(&self) -> usize {
        if self.dry_run {
            0
        } else {
            self.messages.len()
        }
    }
}

/// A run that stopped early. What it moved before is in `done`; the message it stopped at and
/// every later one are still in the dead-letter queue, released to be received at once when
/// the queue allowed it.
#[derive(Debug, thiserror::Error)]
pub struct RedriveError {
    pub done: RedriveReport,
    /// The message being moved when it stopped (none when a receive failed).
    pub message_id: Option<String>,
    /// That message was sent to the source queue but not deleted from the dead-letter queue.
    pub sent: bool,
    pub cause: QueueError,
}

impl fmt::Display for RedriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = &self.done;
        write!(
            f,
            "redrive of {} to {} stopped after {} message(s)",
            done.dead_letter,
            done.source,
            done.messages.len()
        )?;
        if let Some(id) = &self.message_id {
            if self.sent {
                write!(
                    f,
                    ", at {id} (sent to {}, still in {})",
                    done.source, done.dead_letter
                )?;
            } else {
                write!(f, ", at {id} (still in {} only)", done.dead_letter)?;
            }
        }
        write!(f, ": {}", self.cause)
    }
}

/// The deduplication id of a redriven message on a FIFO source queue: new to that queue (SQS
/// forgets the original's within 5 minutes anyway, and replaces it when it dead-letters a
/// message), and the same for the same dead-letter message, so a run repeated after a crash
/// between send and delete does not enqueue it twice within the window. A message that
/// comes back to the dead-letter queue later has a new message id there, so its next redrive
/// is not swallowed.
pub fn redriven_dedup_id(dead_letter_message_id: &str) -> String {
    format!("redrive-{dead_letter_message_id}")
}

/// Moves up to `options.max` messages from `source`'s dead-letter queue back to `source`
/// (or, dry run, lists them and leaves them where they are, visible again).
pub async fn redrive(
    queue: &dyn Queue,
    source: &QueueName,
    options: &RedriveOptions,
) -> Result<RedriveReport, RedriveError> {
    let run = Run {
        queue,
        source,
        dead_letter: source.dead_letter(),
        max: options.max.unwrap_or(usize::MAX),
    };
    if options.dry_run {
        run.list().await
    } else {
        run.move_all().await
    }
}

struct Run<'a> {
    queue: &'a dyn Queue,
    source: &'a QueueName,
    dead_letter: QueueName,
    max: usize,
}

impl Run<'_> {
    /// The next messages of the dead-letter queue, at most `max`; empty when it has no more
    /// to give (on a FIFO queue: none whose group is not in flight).
    async fn next_batch(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let mut empty = 0;
        loop {
            let batch = self
                .queue
                .receive(&self.dead_letter, max, visibility)
                .await?;
            if !batch.is_empty() || empty == EMPTY_RECEIVES {
                return Ok(batch);
            }
            if self
                .queue
                .approximate_depth(&self.dead_letter)
                .await?
                .visible
                == 0
            {
                return Ok(batch);
            }
            empty += 1;
            tokio::time::sleep(EMPTY_PAUSE).await;
        }
    }

    /// The message to send to the source queue for a dead-lettered one.
    fn redriven(&self, m: &ReceivedMessage) -> Result<OutgoingMessage, QueueError> {
        let message = OutgoingMessage::new(m.body.clone());
        if !self.source.is_fifo() {
            return Ok(message);
        }
        let group = m.group_id.as_deref().ok_or_else(|| {
            QueueError::Invalid(format!(
                "{} has no group id, which {} needs",
                m.message_id, self.source
            ))
        })?;
        Ok(message.grouped(group, redriven_dedup_id(&m.message_id)))
    }

    /// Sends one message to the source queue, then deletes it from the dead-letter queue.
    /// On failure, whether it was sent.
    async fn move_one(&self, m: &ReceivedMessage) -> Result<(), (bool, QueueError)> {
        let message = self.redriven(m).map_err(|e| (false, e))?;
        self.queue
            .send_batch(self.source, vec![message])
            .await
            .map_err(|e| (false, e))?;
        self.queue
            .ack(&self.dead_letter, &m.receipt)
            .await
            .map_err(|e| (true, e))
    }

    /// One message per send, each deleted before the next is sent: a batch send that fails
    /// part-way cannot say which of a group's messages got in, and a retry would then put a
    /// later message ahead of an earlier one.
    async fn move_all(&self) -> Result<RedriveReport, RedriveError> {
        let mut done = RedriveReport::new(self.source, false);
        while done.messages.len() < self.max {
            let want = (self.max - done.messages.len()).min(MAX_BATCH);
            let batch = match self.next_batch(want, MOVE_VISIBILITY).await {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => batch,
                Err(cause) => {
                    return Err(RedriveError {
                        done,
                        message_id: None,
                        sent: false,
                        cause,
                    })
                }
            };
            for (i, m) in batch.iter().enumerate() {
                if let Err((sent, cause)) = self.move_one(m).await {
                    // The rest of the batch (this one included) becomes visible again at once,
                    // in its place: a group's order in the dead-letter queue is unchanged.
                    self.release(batch[i..].iter().map(|m| (&m.message_id, &m.receipt)))
                        .await;
                    return Err(RedriveError {
                        done,
                        message_id: Some(m.message_id.clone()),
                        sent,
                        cause,
                    });
                }
                done.messages.push(DeadLetter::of(m));
            }
        }
        Ok(done)
    }

    /// Receives (hiding) up to `max` messages, then makes them all visible again. On a FIFO
    /// queue, a group's messages behind the ones received stay out of reach until then, so
    /// the list shows each group's first ones only; the queue's count tells the rest.
    async fn list(&self) -> Result<RedriveReport, RedriveError> {
        let mut done = RedriveReport::new(self.source, true);
        let mut receipts: Vec<String> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut failure = None;
        'listing: while done.messages.len() < self.max {
            let want = (self.max - done.messages.len()).min(MAX_BATCH);
            let batch = match self.next_batch(want, LIST_VISIBILITY).await {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => batch,
                Err(cause) => {
                    failure = Some(cause);
                    break;
                }
            };
            let mut repeated = false;
            for m in batch {
                match seen.get(&m.message_id) {
                    // Its visibility lapsed while listing and it came round again: listing on
                    // would never end. Keep the newer receipt, the one that can release it.
                    Some(&i) => {
                        receipts[i] = m.receipt;
                        repeated = true;
                    }
                    None => {
                        seen.insert(m.message_id.clone(), done.messages.len());
                        done.messages.push(DeadLetter::of(&m));
                        receipts.push(m.receipt);
                    }
                }
            }
            if repeated {
                break 'listing;
            }
        }
        self.release(
            done.messages
                .iter()
                .map(|m| &m.message_id)
                .zip(receipts.iter()),
        )
        .await;
        match failure {
            None => Ok(done),
            Some(cause) => Err(RedriveError {
                done,
                message_id: None,
                sent: false,
                cause,
            }),
        }
    }

    /// Makes received messages visible again at once. Best effort: one that cannot be
    /// released reappears when its visibility timeout lapses.
    async fn release<'m>(&self, messages: impl Iterator<Item = (&'m String, &'m String)>) {
        for (message_id, receipt) in messages {
            if let Err(e) = self
                .queue
                .change_visibility(&self.dead_letter, receipt, Duration::ZERO)
                .await
            {
                tracing::warn!(
                    queue = %self.dead_letter,
                    %message_id,
                    error = %e,
                    "could not release a dead-lettered message; it reappears when its visibility timeout lapses"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_ids_are_per_dead_letter_message_and_fit_sqs() {
        let id = "0b6f3a4e-6f2c-4a39-9d0e-5b3f4c2a1e7d";
        assert_eq!(redriven_dedup_id(id), redriven_dedup_id(id));
        assert_ne!(
            redriven_dedup_id(id),
            redriven_dedup_id("1b6f3a4e-6f2c-4a39-9d0e-5b3f4c2a1e7d")
        );
        // SQS: at most 128 characters of alphanumerics and punctuation.
        let dedup = redriven_dedup_id(id);
        assert!(dedup.len() <= 128 && dedup.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn a_stopped_run_says_where_the_message_is() {
        let source = QueueName::parse("sync.fifo").unwrap();
        let mut done = RedriveReport::new(&source, false);
        done.messages.push(DeadLetter {
            message_id: "m1".into(),
            group_id: Some("g".into()),
            receive_count: 1,
        });
        let error = |sent| RedriveError {
            done: done.clone(),
            message_id: Some("m2".into()),
            sent,
            cause: QueueError::Unavailable("down".into()),
        };
        assert_eq!(
            error(false).to_string(),
            "redrive of sync-dlq.fifo to sync.fifo stopped after 1 message(s), at m2 \
             (still in sync-dlq.fifo only): queue temporarily unavailable: down"
        );
        assert!(error(true)
            .to_string()
            .contains("at m2 (sent to sync.fifo, still in sync-dlq.fifo)"));
        assert_eq!(done.moved(), 1);
    }
}
