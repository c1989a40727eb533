//! Queue consumers: the per-record contract shared by the Lambda SQS functions and the local
//! server's in-process consumers.
//!
//! A handler decides each record's [`Outcome`]. [`process_batch`] keeps FIFO semantics: the
//! records of a message group run in order, and once one does not succeed, the later records
//! of that group in the batch are not processed and are reported as not done, so they are
//! redelivered after it, in order. Different groups of a batch run concurrently. Lambda reports not-done records as SQS partial batch
//! failures; the local server leaves them for redelivery.
//!
//! A [`Outcome::Skipped`] record was not tried, so it must not wait or pay for its group's
//! head: both runners make it visible again at once (visibility zero). FIFO order still holds,
//! because a group with a message in flight (the head, hidden for its retry delay) delivers
//! nothing, so the skipped records come back together with the head, behind it. Their receive
//! count still grows on SQS; workers that keep their own attempt count (the CRM sync worker,
//! decision 0022) run on a queue whose `max_receives` is high enough for that. Records that keep
//! failing otherwise reach the dead-letter queue after the queue's `max_receives`.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
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

/// A message as the queue port received it (the local server's consumers and the tests, which
/// receive from the embedded queue or SQS themselves rather than through a Lambda event).
impl From<&crate::queue::ReceivedMessage> for QueueRecord {
    fn from(m: &crate::queue::ReceivedMessage) -> Self {
        QueueRecord {
            message_id: m.message_id.clone(),
            body: m.body.clone(),
            receive_count: m.receive_count,
            group_id: m.group_id.clone(),
        }
    }
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

/// A handler whose records are counted (decision 0038): redeliveries as retries, records
/// that failed their queue's last receive as dead-letter arrivals (SQS moves them at the next
/// receive, and counts them in none of its own metrics; records the sync worker dead-letters
/// itself are counted there), and records that did not succeed as failures of class
/// `retry_later` or `failed`, unless the handler counts its failures by their cause itself
/// ([`Metered::failures_counted_by_handler`]).
pub struct Metered<H> {
    inner: H,
    metrics: crate::metrics::Metrics,
    queue: &'static str,
    stage: &'static str,
    max_receives: u32,
    count_failures: bool,
}

impl<H: RecordHandler> Metered<H> {
    /// `queue` is a platform queue's name (`crate::queue::platform`); its stage is the name
    /// without `.fifo`.
    pub fn new(
        inner: H,
        metrics: crate::metrics::Metrics,
        queue: &'static str,
        max_receives: u32,
    ) -> Self {
        let stage = queue.strip_suffix(".fifo").unwrap_or(queue);
        Metered {
            inner,
            metrics,
            queue,
            stage,
            max_receives,
            count_failures: true,
        }
    }

    /// The handler counts each failure with its cause (the relay workers): not counted again
    /// here.
    pub fn failures_counted_by_handler(mut self) -> Self {
        self.count_failures = false;
        self
    }
}

#[async_trait]
impl<H: RecordHandler> RecordHandler for Metered<H> {
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        if record.receive_count > 1 {
            self.metrics.retry(self.stage);
        }
        let outcome = self.inner.handle(record).await;
        let class = match &outcome {
            Outcome::Done | Outcome::Skipped => return outcome,
            Outcome::RetryAfter(_) => "retry_later",
            Outcome::Failed => "failed",
        };
        if self.count_failures {
            self.metrics.failure(self.stage, class);
        }
        if record.receive_count >= self.max_receives {
            self.metrics.dlq_arrival(self.queue);
        }
        outcome
    }
}

/// The batch's records by message group: each group's indexes into `records`, in batch order,
/// the groups in the order of their first record; a record without a group is a group of its
/// own.
pub fn groups_of(records: &[QueueRecord]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let same = record.group_id.as_deref().and_then(|g| {
            groups
                .iter_mut()
                .find(|idx| records[idx[0]].group_id.as_deref() == Some(g))
        });
        match same {
            Some(idx) => idx.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// Runs one message group's records (in their order) and returns their outcomes: once one
/// does not succeed, the records after it are [`Outcome::Skipped`], not tried.
pub async fn run_group(handler: &dyn RecordHandler, records: &[&QueueRecord]) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(records.len());
    let mut blocked = false;
    for record in records {
        if blocked {
            outcomes.push(Outcome::Skipped);
            continue;
        }
        let outcome = handler.handle(record).await;
        blocked = !outcome.is_done();
        outcomes.push(outcome);
    }
    outcomes
}

/// Runs the batch and returns one outcome per record, in the same order. The records of one
/// message group run in order, one after the other ([`run_group`]); different groups (and
/// records without a group) run concurrently, so a slow group (a hanging portal) does not hold
/// back the others of its batch, and a batch takes about as long as its slowest group.
pub async fn process_batch(handler: &dyn RecordHandler, records: &[QueueRecord]) -> Vec<Outcome> {
    let runs = groups_of(records).into_iter().map(|indexes| async move {
        let group: Vec<&QueueRecord> = indexes.iter().map(|&i| &records[i]).collect();
        let outcomes = run_group(handler, &group).await;
        (indexes, outcomes)
    });
    let mut out = vec![Outcome::Skipped; records.len()];
    for (indexes, outcomes) in join_all(runs.collect()).await {
        for (i, o) in indexes.into_iter().zip(outcomes) {
            out[i] = o;
        }
    }
    out
}

/// Runs the futures concurrently on the current task; their outputs in the same order.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, slot) in pending.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
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

    /// Group "a" waits for group "b", which comes later in the batch: run one group after the
    /// other, the batch would never finish.
    struct AWaitsForB {
        b_ran: tokio::sync::Notify,
    }

    #[async_trait]
    impl RecordHandler for AWaitsForB {
        async fn handle(&self, r: &QueueRecord) -> Outcome {
            if r.group_id.as_deref() == Some("a") {
                self.b_ran.notified().await;
            } else {
                self.b_ran.notify_one();
            }
            Outcome::Done
        }
    }

    #[tokio::test]
    async fn a_slow_group_does_not_hold_back_the_other_groups_of_its_batch() {
        let handler = AWaitsForB {
            b_ran: tokio::sync::Notify::new(),
        };
        let batch = [rec("1", Some("a"), "ok"), rec("2", Some("b"), "ok")];
        let out = tokio::time::timeout(Duration::from_secs(5), process_batch(&handler, &batch))
            .await
            .expect("groups run concurrently");
        assert_eq!(out, vec![Outcome::Done, Outcome::Done]);
    }

    #[tokio::test]
    async fn metered_records_count_retries_failures_and_dead_letter_arrivals() {
        let (metrics, _) = crate::metrics::Metrics::in_memory("Test");
        let handler = Metered::new(
            FailOn {
                fail: "bad",
                seen: Mutex::new(Vec::new()),
            },
            metrics.clone(),
            "inbound.fifo",
            5,
        );
        let mut last = rec("1", Some("a"), "bad");
        last.receive_count = 5;
        let mut again = rec("2", Some("b"), "ok");
        again.receive_count = 2;
        let out = process_batch(&handler, &[rec("0", Some("c"), "bad"), last, again]).await;
        assert_eq!(out, vec![Outcome::Failed, Outcome::Failed, Outcome::Done]);
        let docs: Vec<serde_json::Value> = metrics
            .drain()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let find = |name: &str| {
            docs.iter()
                .find(|d| d.get(name).is_some())
                .unwrap_or_else(|| panic!("{name} in {docs:?}"))
        };
        assert_eq!(find("Failures")["Failures"], 2.0);
        assert_eq!(find("Failures")["Stage"], "inbound");
        assert_eq!(find("Failures")["Class"], "failed");
        assert_eq!(find("Retries")["Retries"], 2.0);
        assert_eq!(find("DlqArrivals")["DlqArrivals"], 1.0);
        assert_eq!(find("DlqArrivals")["Queue"], "inbound.fifo");
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
