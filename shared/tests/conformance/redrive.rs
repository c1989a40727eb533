//! Redrive conformance: the same cases against the embedded queue and SQS (moto). Each puts
//! messages in a dead-letter queue, runs `redrive` and looks at both queues through the port:
//! the messages must be back on the source queue, each group in order, with the same bodies
//! and group ids, and gone from the dead-letter queue; a dry run and a failing send must leave
//! them where they were.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wappline::queue::redrive::{redrive, RedriveOptions};
use wappline::queue::{
    OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage, MAX_BATCH,
};

use crate::queue::{assert_empty, bodies, fifo, grouped, receive, standard, LAPSE, LONG, SHORT};

/// Receives everything the queue has, acking batch by batch (so a FIFO queue goes on to each
/// group's next messages), in receive order.
async fn drain(q: &dyn Queue, name: &QueueName) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let batch = receive(q, name, MAX_BATCH, LONG).await;
        if batch.is_empty() {
            return all;
        }
        for m in &batch {
            q.ack(name, &m.receipt).await.expect("ack");
        }
        all.extend(batch);
    }
}

/// Bodies per group id, each group in receive order.
fn by_group(messages: &[ReceivedMessage]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in messages {
        let group = m.group_id.clone().expect("FIFO messages have a group");
        groups.entry(group).or_default().push(m.body.clone());
    }
    groups
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn depth(q: &dyn Queue, name: &QueueName) -> QueueDepth {
    q.approximate_depth(name).await.expect("depth")
}

/// Sends `name`'s message `body` (group `group`) and receives it until the queue's own
/// redrive policy dead-letters it, as a crashing worker would.
async fn dead_letter_by_receives(q: &dyn Queue, name: &QueueName, body: &str, group: &str) {
    q.send_batch(name, vec![grouped(body, group)])
        .await
        .expect("send");
    loop {
        let got = receive(q, name, MAX_BATCH, SHORT).await;
        if got.is_empty() {
            break;
        }
        assert_eq!(bodies(&got), [body]);
        tokio::time::sleep(LAPSE).await;
    }
    assert_eq!(
        depth(q, &name.dead_letter()).await.visible,
        1,
        "dead-lettered"
    );
}

// ---- cases, written once against the port ----

/// Several groups, one longer than a receive batch, interleaved in the dead-letter queue,
/// plus one message SQS dead-lettered itself seconds after it was sent (its original
/// deduplication id is still inside the source queue's 5-minute window).
async fn fifo_redrive_keeps_each_group_in_order(q: Arc<dyn Queue>) {
    let q = &*q;
    let name = fifo();
    let dlq = name.dead_letter();
    dead_letter_by_receives(q, &name, "n1", "n").await;

    let a: Vec<String> = (1..=12).map(|i| format!("a{i}")).collect();
    let b = strings(&["b1", "b2", "b3"]);
    let mut sent = Vec::new();
    for (i, body) in a.iter().enumerate() {
        sent.push(grouped(body, "a"));
        if let Some(body) = b.get(i) {
            sent.push(grouped(body, "b"));
        }
    }
    // As the sync worker dead-letters a job: straight into the dead-letter queue.
    q.send_batch(&dlq, sent)
        .await
        .expect("send to the dead-letter queue");

    let report = redrive(q, &name, &RedriveOptions::default())
        .await
        .expect("redrive");
    assert_eq!(report.moved(), 16);
    assert_eq!(
        (report.source.clone(), report.dead_letter.clone()),
        (name.clone(), dlq.clone())
    );
    let reported: BTreeMap<&str, usize> =
        report.messages.iter().fold(BTreeMap::new(), |mut n, m| {
            *n.entry(m.group_id.as_deref().expect("group")).or_default() += 1;
            n
        });
    assert_eq!(reported, BTreeMap::from([("a", 12), ("b", 3), ("n", 1)]));

    let back = drain(q, &name).await;
    let expected = BTreeMap::from([
        ("a".to_string(), a),
        ("b".to_string(), b),
        ("n".to_string(), strings(&["n1"])),
    ]);
    assert_eq!(by_group(&back), expected, "same bodies, groups and order");
    assert_empty(q, &dlq, "every message left the dead-letter queue").await;
    assert_eq!(depth(q, &dlq).await.total(), 0);
}

async fn standard_redrive_moves_every_message(q: Arc<dyn Queue>) {
    let q = &*q;
    let name = standard();
    let dlq = name.dead_letter();
    let sent: Vec<String> = (0..13).map(|i| format!("job-{i:02}")).collect();
    q.send_batch(&dlq, sent.iter().map(OutgoingMessage::new).collect())
        .await
        .expect("send to the dead-letter queue");

    let report = redrive(q, &name, &RedriveOptions::default())
        .await
        .expect("redrive");
    assert_eq!(report.moved(), 13);
    assert!(report.messages.iter().all(|m| m.group_id.is_none()));

    let back = drain(q, &name).await;
    let mut got: Vec<String> = back.iter().map(|m| m.body.clone()).collect();
    got.sort();
    assert_eq!(got, sent);
    assert!(back.iter().all(|m| m.receive_count == 1), "new messages");
    assert_empty(q, &dlq, "every message left the dead-letter queue").await;
}

async fn dry_run_lists_and_moves_nothing(q: Arc<dyn Queue>) {
    let q = &*q;
    let name = fifo();
    let dlq = name.dead_letter();
    q.send_batch(
        &dlq,
        vec![grouped("a1", "a"), grouped("b1", "b"), grouped("a2", "a")],
    )
    .await
    .expect("send to the dead-letter queue");

    let options = RedriveOptions {
        max: None,
        dry_run: true,
    };
    let report = redrive(q, &name, &options).await.expect("dry run");
    assert_eq!(report.moved(), 0);
    assert_empty(q, &name, "a dry run sends nothing").await;

    // Everything is still there, visible at once (released), in its order.
    let left = receive(q, &dlq, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&left), ["a1", "b1", "a2"]);
    let listed: Vec<(&str, Option<&str>)> = report
        .messages
        .iter()
        .map(|m| (m.message_id.as_str(), m.group_id.as_deref()))
        .collect();
    let there: Vec<(&str, Option<&str>)> = left
        .iter()
        .map(|m| (m.message_id.as_str(), m.group_id.as_deref()))
        .collect();
    assert_eq!(listed, there, "the listed ids and groups are the queue's");
}

async fn max_moves_only_that_many(q: Arc<dyn Queue>) {
    let q = &*q;
    let name = fifo();
    let dlq = name.dead_letter();
    let sent = ["m1", "m2", "m3", "m4", "m5"];
    q.send_batch(&dlq, sent.iter().map(|b| grouped(b, "g")).collect())
        .await
        .expect("send to the dead-letter queue");

    let options = RedriveOptions {
        max: Some(2),
        dry_run: false,
    };
    let report = redrive(q, &name, &options).await.expect("redrive");
    assert_eq!(report.moved(), 2);
    assert_eq!(bodies(&drain(q, &name).await), ["m1", "m2"]);
    assert_eq!(bodies(&drain(q, &dlq).await), ["m3", "m4", "m5"]);
}

/// Delegates to a real adapter; sends succeed `sends` times, then fail; the first `bad_acks`
/// acks fail.
struct Faulty {
    inner: Arc<dyn Queue>,
    sends: Mutex<usize>,
    bad_acks: Mutex<usize>,
}

impl Faulty {
    fn new(inner: Arc<dyn Queue>, sends: usize, bad_acks: usize) -> Self {
        Faulty {
            inner,
            sends: Mutex::new(sends),
            bad_acks: Mutex::new(bad_acks),
        }
    }
}

#[async_trait]
impl Queue for Faulty {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        {
            let mut sends = self.sends.lock().unwrap();
            if *sends == 0 {
                return Err(QueueError::Unavailable("send refused by the test".into()));
            }
            *sends -= 1;
        }
        self.inner.send_batch(queue, messages).await
    }
    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(queue, max, visibility).await
    }
    async fn ack(&self, queue: &QueueName, receipt: &str) -> Result<(), QueueError> {
        {
            let mut bad = self.bad_acks.lock().unwrap();
            if *bad > 0 {
                *bad -= 1;
                return Err(QueueError::Unavailable("delete refused by the test".into()));
            }
        }
        self.inner.ack(queue, receipt).await
    }
    async fn change_visibility(
        &self,
        queue: &QueueName,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner
            .change_visibility(queue, receipt, visibility)
            .await
    }
    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        self.inner.approximate_depth(queue).await
    }
}

async fn a_failing_send_leaves_the_message_in_the_dead_letter_queue(q: Arc<dyn Queue>) {
    let name = fifo();
    let dlq = name.dead_letter();
    q.send_batch(
        &dlq,
        vec![
            grouped("a1", "a"),
            grouped("a2", "a"),
            grouped("b1", "b"),
            grouped("a3", "a"),
        ],
    )
    .await
    .expect("send to the dead-letter queue");

    let faulty = Faulty::new(q.clone(), 2, 0);
    let err = redrive(&faulty, &name, &RedriveOptions::default())
        .await
        .expect_err("the third send fails");
    assert_eq!(err.done.moved(), 2);
    assert!(!err.sent);
    assert!(matches!(err.cause, QueueError::Unavailable(_)), "{err}");

    let q = &*q;
    assert_eq!(
        bodies(&receive(q, &name, MAX_BATCH, LONG).await),
        ["a1", "a2"]
    );
    // b1 and what follows it are still in the dead-letter queue, visible at once.
    let left = receive(q, &dlq, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&left), ["b1", "a3"]);
    assert_eq!(err.message_id.as_deref(), Some(left[0].message_id.as_str()));
}

/// A message sent but not deleted (a crash, a failed delete) is in both queues; running the
/// redrive again within SQS's deduplication window does not enqueue it twice.
async fn fifo_rerun_after_a_failed_delete_enqueues_once(q: Arc<dyn Queue>) {
    let name = fifo();
    let dlq = name.dead_letter();
    q.send_batch(&dlq, vec![grouped("c1", "c"), grouped("c2", "c")])
        .await
        .expect("send to the dead-letter queue");

    let faulty = Faulty::new(q.clone(), usize::MAX, 1);
    let err = redrive(&faulty, &name, &RedriveOptions::default())
        .await
        .expect_err("the first delete fails");
    assert!(err.sent, "{err}");
    assert_eq!(err.done.moved(), 0);

    let q = &*q;
    assert_eq!(
        depth(q, &dlq).await.visible,
        2,
        "c1 is still there, released"
    );
    let report = redrive(q, &name, &RedriveOptions::default())
        .await
        .expect("second run");
    assert_eq!(report.moved(), 2);
    assert_eq!(bodies(&drain(q, &name).await), ["c1", "c2"], "c1 once");
    assert_empty(q, &dlq, "both left the dead-letter queue").await;
}

// ---- both adapters run every case ----

macro_rules! both_adapters {
    ($($case:ident),* $(,)?) => {
        mod embedded_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let (queue, _dir) = crate::queue::embedded();
                    super::$case(std::sync::Arc::new(queue)).await;
                }
            )*
        }
        mod sqs_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let queue = crate::queue::sqs().await;
                    super::$case(std::sync::Arc::new(queue)).await;
                }
            )*
        }
    };
}

both_adapters!(
    fifo_redrive_keeps_each_group_in_order,
    standard_redrive_moves_every_message,
    dry_run_lists_and_moves_nothing,
    max_moves_only_that_many,
    a_failing_send_leaves_the_message_in_the_dead_letter_queue,
    fifo_rerun_after_a_failed_delete_enqueues_once,
);
