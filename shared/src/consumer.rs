//! Queue consumers: the per-record contract shared by the Lambda SQS functions and the local
//! server's in-process consumers.
//!
//! A handler decides each record's [`Outcome`]. [`process_batch`] runs a batch in order and
//! keeps FIFO semantics: once a record of a message group does not succeed, the later records
//! of that group in the batch are not processed and are reported as not done, so they are
//! redelivered after it, in order. Lambda reports not-done records as SQS partial batch
//! failures; the local server leaves them for redelivery.
//!
//! A [`Outcome::Skipped`] record was not tried, so it must not wait or pay for its group's
//! head: both runners make it visible again at once (visibility zero). FIFO order still holds,
//! because a group with a message in flight (the head, hidden for its retry delay) delivers
//! nothing, so the skipped records come back together with the head, behind it. Their receive
//! count still grows on SQS; workers that keep their own attempt count (the CRM sync worker,
//! decision 0022) run on a queue whose `max_receives` is high enough for that. Records that keep
//! failing otherwise reach the dead-letter queue after the queue's `max_receives`.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

/// One queue message, as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRecord {
    pub message_id: String,
    pub body: String,
    /// Deliveries so far, this one included.
    pub receive_count: u32,
    pub group_id: Option<String>,
}

/// What became of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Processed (or a duplicate of something processed): delete it.
    Done,
    /// A transient condition (rate limit, peer down): deliver again after the delay, without
    /// a hot loop.
    RetryAfter(Duration),
    /// Failed: deliver again after the visibility timeout; dead-lettered after
    /// `max_receives`.
    Failed,
    /// Not attempted because an earlier record of its FIFO group did not succeed: released
    /// at once (visibility zero), to come back behind that record.
    Skipped,
}

impl Outcome {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done)
    }
}

#[async_trait]
pub trait RecordHandler: Send + Sync + 'static {
    async fn handle(&self, record: &QueueRecord) -> Outcome;
}

/// Runs the batch in order and returns one outcome per record, in the same order.
pub async fn process_batch(handler: &dyn RecordHandler, records: &[QueueRecord]) -> Vec<Outcome> {
    let mut blocked_groups: HashSet<&str> = HashSet::new();
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        if let Some(group) = record.group_id.as_deref() {
            if blocked_groups.contains(group) {
                outcomes.push(Outcome::Skipped);
                continue;
            }
        }
        let outcome = handler.handle(record).await;
        if !outcome.is_done() {
            if let Some(group) = record.group_id.as_deref() {
                blocked_groups.insert(group);
            }
        }
        outcomes.push(outcome);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct FailOn {
        fail: &'static str,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl RecordHandler for FailOn {
        async fn handle(&self, r: &QueueRecord) -> Outcome {
            self.seen.lock().unwrap().push(r.message_id.clone());
            if r.body == self.fail {
                Outcome::Failed
            } else {
                Outcome::Done
            }
        }
    }

    fn rec(id: &str, group: Option<&str>, body: &str) -> QueueRecord {
        QueueRecord {
            message_id: id.into(),
            body: body.into(),
            receive_count: 1,
            group_id: group.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn a_failure_holds_back_the_rest_of_its_group_only() {
        let handler = FailOn {
            fail: "bad",
            seen: Mutex::new(Vec::new()),
        };
        let batch = [
            rec("1", Some("a"), "ok"),
            rec("2", Some("a"), "bad"),
            rec("3", Some("b"), "ok"),
            rec("4", Some("a"), "ok"),
            rec("5", Some("b"), "ok"),
        ];
        let out = process_batch(&handler, &batch).await;
        assert_eq!(
            out,
            vec![
                Outcome::Done,
                Outcome::Failed,
                Outcome::Done,
                Outcome::Skipped,
                Outcome::Done
            ]
        );
        assert_eq!(*handler.seen.lock().unwrap(), vec!["1", "2", "3", "5"]);
    }

    #[tokio::test]
    async fn standard_queue_records_are_independent() {
        let handler = FailOn {
            fail: "bad",
            seen: Mutex::new(Vec::new()),
        };
        let batch = [rec("1", None, "bad"), rec("2", None, "ok")];
        let out = process_batch(&handler, &batch).await;
        assert_eq!(out, vec![Outcome::Failed, Outcome::Done]);
    }
}
