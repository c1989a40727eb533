//! Queue conformance: the same cases against the embedded queue (redb in a temp dir) and SQS
//! (moto, fresh queues per test). Each case fails if an adapter ignores a visibility timeout,
//! an ack, the dead-letter rule or FIFO group order. Sleeps only let 1 s visibility timeouts
//! lapse; nothing here measures speed.

use std::collections::HashSet;
use std::time::Duration;

use tempfile::TempDir;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::sqs::{provision_queues, SqsQueue};
use wappline::queue::{
    OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, QueueSpec, ReceivedMessage,
    MAX_BATCH, MAX_BODY_BYTES,
};

use crate::support::{aws_config, unique};

/// Receives before dead-lettering, on every test queue.
const MAX_RECEIVES: u32 = 2;
/// A visibility timeout the tests wait out.
pub(crate) const SHORT: Duration = Duration::from_secs(1);
/// A visibility timeout that does not lapse during a test.
pub(crate) const LONG: Duration = Duration::from_secs(60);
/// Long enough for SHORT to have lapsed (SQS works in whole seconds; a margin for moto).
pub(crate) const LAPSE: Duration = Duration::from_millis(1200);

pub(crate) fn standard() -> QueueName {
    QueueName::parse("work").expect("valid name")
}

pub(crate) fn fifo() -> QueueName {
    QueueName::parse("ordered.fifo").expect("valid name")
}

fn specs() -> Vec<QueueSpec> {
    vec![
        QueueSpec::new(standard(), MAX_RECEIVES, LONG),
        QueueSpec::new(fifo(), MAX_RECEIVES, LONG),
    ]
}

fn open_embedded(dir: &TempDir) -> EmbeddedQueue {
    EmbeddedQueue::open(dir.path(), specs()).expect("open embedded queue")
}

pub(crate) fn embedded() -> (EmbeddedQueue, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (open_embedded(&dir), dir)
}

/// Fresh, uniquely prefixed queues (and DLQs) on moto.
pub(crate) async fn sqs() -> SqsQueue {
    let config = aws_config().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let urls = provision_queues(&client, &unique("q"), &specs())
        .await
        .expect("provision queues on moto");
    assert_eq!(urls.len(), 4, "each queue and its DLQ: {urls:?}");
    SqsQueue::new(client, urls)
}

pub(crate) fn grouped(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage::new(body).grouped(group, body)
}

pub(crate) fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

pub(crate) async fn receive(
    q: &dyn Queue,
    name: &QueueName,
    max: usize,
    visibility: Duration,
) -> Vec<ReceivedMessage> {
    q.receive(name, max, visibility).await.expect("receive")
}

pub(crate) async fn ack_all(q: &dyn Queue, name: &QueueName, messages: &[ReceivedMessage]) {
    for m in messages {
        q.ack(name, &m.receipt).await.expect("ack");
    }
}

pub(crate) async fn assert_empty(q: &dyn Queue, name: &QueueName, why: &str) {
    let got = receive(q, name, MAX_BATCH, LONG).await;
    assert!(got.is_empty(), "{why}: got {:?}", bodies(&got));
}

// ---- cases, written once against the port ----

async fn batch_is_received_exactly_once(q: &dyn Queue) {
    let name = standard();
    let sent: Vec<String> = (0..25).map(|i| format!("msg-{i:02}")).collect();
    q.send_batch(&name, sent.iter().map(OutgoingMessage::new).collect())
        .await
        .expect("send 25");

    let mut got = Vec::new();
    loop {
        let batch = receive(q, &name, MAX_BATCH, LONG).await;
        assert!(batch.len() <= MAX_BATCH);
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
        assert!(
            got.len() <= sent.len(),
            "more messages than sent: {}",
            got.len()
        );
    }
    let mut got_bodies: Vec<&str> = bodies(&got);
    got_bodies.sort_unstable();
    assert_eq!(
        got_bodies,
        sent.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|m| m.receive_count == 1));
    let ids: HashSet<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    let receipts: HashSet<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
    assert_eq!((ids.len(), receipts.len()), (25, 25));

    ack_all(q, &name, &got).await;
    // Acking again (already deleted) is not an error.
    ack_all(q, &name, &got).await;
    assert_empty(q, &name, "all acked").await;
}

async fn hidden_until_visibility_lapses(q: &dyn Queue) {
    let name = standard();
    q.send_batch(&name, vec![OutgoingMessage::new("once")])
        .await
        .expect("send");
    let first = receive(q, &name, MAX_BATCH, SHORT).await;
    assert_eq!(bodies(&first), ["once"]);
    assert_eq!(first[0].receive_count, 1);
    assert!(first[0].group_id.is_none());

    let during = receive(q, &name, MAX_BATCH, SHORT).await;
    assert!(
        during.is_empty(),
        "in flight, must be hidden: {:?}",
        bodies(&during)
    );

    tokio::time::sleep(LAPSE).await;
    let again = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&again), ["once"], "redelivered after the timeout");
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(
        again[0].receipt, first[0].receipt,
        "a new receipt per receive"
    );

    q.ack(&name, &again[0].receipt).await.expect("ack");
    assert_empty(q, &name, "acked").await;
}

async fn ack_prevents_redelivery(q: &dyn Queue) {
    let name = standard();
    q.send_batch(&name, vec![OutgoingMessage::new("done")])
        .await
        .expect("send");
    let got = receive(q, &name, MAX_BATCH, SHORT).await;
    assert_eq!(bodies(&got), ["done"]);
    q.ack(&name, &got[0].receipt).await.expect("ack");
    q.ack(&name, &got[0].receipt)
        .await
        .expect("second ack is Ok");

    tokio::time::sleep(LAPSE).await;
    assert_empty(q, &name, "acked message must not come back").await;

    // The message is gone: its receipt cannot reschedule it.
    let err = q
        .change_visibility(&name, &got[0].receipt, Duration::ZERO)
        .await
        .expect_err("deleted message");
    assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
}

/// `ack_batch`, as SQS's `DeleteMessageBatch`: every entry deleted, one Ok per entry, in order;
/// an entry repeated in the batch or already deleted is Ok; a message left out comes back.
async fn ack_batch_deletes_each_entry(q: &dyn Queue) {
    let name = standard();
    q.send_batch(
        &name,
        ["a", "b", "c", "d"].map(OutgoingMessage::new).to_vec(),
    )
    .await
    .expect("send");
    let mut got = Vec::new();
    while got.len() < 4 {
        let batch = receive(q, &name, MAX_BATCH, SHORT).await;
        assert!(!batch.is_empty(), "all four are visible");
        got.extend(batch);
    }
    got.sort_by(|x, y| x.body.cmp(&y.body));
    let receipts =
        |ms: &[&ReceivedMessage]| -> Vec<String> { ms.iter().map(|m| m.receipt.clone()).collect() };
    let batch = receipts(&[&got[0], &got[1], &got[2], &got[0]]);
    let results = q.ack_batch(&name, &batch).await;
    assert_eq!(results, vec![Ok(()); 4]);
    assert!(q.ack_batch(&name, &[]).await.is_empty());

    tokio::time::sleep(LAPSE).await;
    let back = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&back), ["d"], "only the message left out comes back");
    let mut last = receipts(&[&got[0], &got[1]]);
    last.push(back[0].receipt.clone());
    assert_eq!(q.ack_batch(&name, &last).await, vec![Ok(()); 3]);
    assert_empty(q, &name, "every entry deleted").await;
}

async fn change_visibility_reschedules(q: &dyn Queue) {
    let name = standard();
    q.send_batch(&name, vec![OutgoingMessage::new("later")])
        .await
        .expect("send");
    let first = receive(q, &name, MAX_BATCH, SHORT).await;
    assert_eq!(bodies(&first), ["later"]);

    // Extending the timeout keeps it hidden past the original one...
    q.change_visibility(&name, &first[0].receipt, LONG)
        .await
        .expect("extend");
    tokio::time::sleep(LAPSE).await;
    assert_empty(q, &name, "visibility was extended").await;

    // ...and zero makes it visible at once.
    q.change_visibility(&name, &first[0].receipt, Duration::ZERO)
        .await
        .expect("release");
    let again = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&again), ["later"]);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
    q.ack(&name, &again[0].receipt).await.expect("ack");
}

/// Receives `name`'s head message MAX_RECEIVES times without acking; the next receive must
/// dead-letter it. On FIFO, the message behind it in the group then flows.
async fn dead_letter_flow(q: &dyn Queue, name: QueueName) {
    let mut sent = vec![grouped("poison", "g")];
    if name.is_fifo() {
        sent.push(grouped("next", "g"));
    }
    q.send_batch(&name, sent).await.expect("send");

    let mut message_id = String::new();
    for count in 1..=MAX_RECEIVES {
        let got = receive(q, &name, 1, SHORT).await;
        assert_eq!(bodies(&got), ["poison"], "receive {count} of {name}");
        assert_eq!(got[0].receive_count, count);
        message_id = got[0].message_id.clone();
        tokio::time::sleep(LAPSE).await;
    }

    let after = receive(q, &name, MAX_BATCH, LONG).await;
    let expected: &[&str] = if name.is_fifo() { &["next"] } else { &[] };
    assert_eq!(
        bodies(&after),
        expected,
        "{name}: poison must have left the queue"
    );
    ack_all(q, &name, &after).await;

    let dlq = name.dead_letter();
    let dead = receive(q, &dlq, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&dead), ["poison"], "{dlq} holds the message");
    assert_eq!(dead[0].message_id, message_id, "same message, not a copy");
    ack_all(q, &dlq, &dead).await;
    assert_empty(q, &dlq, "dead letter acked").await;
    assert_empty(q, &name, "source stays empty").await;
}

async fn dead_letters_after_max_receives(q: &dyn Queue) {
    tokio::join!(dead_letter_flow(q, standard()), dead_letter_flow(q, fifo()));
}

async fn fifo_keeps_group_order_and_blocks_groups_in_flight(q: &dyn Queue) {
    let name = fifo();
    let sent = [
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("a3", "a"),
        ("b2", "b"),
        ("a4", "a"),
        ("b3", "b"),
        ("a5", "a"),
    ];
    q.send_batch(&name, sent.iter().map(|(b, g)| grouped(b, g)).collect())
        .await
        .expect("send");

    let a12 = receive(q, &name, 2, LONG).await;
    assert_eq!(bodies(&a12), ["a1", "a2"]);
    assert!(a12.iter().all(|m| m.group_id.as_deref() == Some("a")));

    // Group a is in flight; group b flows.
    let b12 = receive(q, &name, 2, LONG).await;
    assert_eq!(bodies(&b12), ["b1", "b2"]);
    assert!(b12.iter().all(|m| m.group_id.as_deref() == Some("b")));
    assert_empty(q, &name, "both groups in flight").await;

    // One message of a group still in flight blocks the whole group.
    ack_all(q, &name, &a12[..1]).await;
    assert_empty(q, &name, "a2 still in flight").await;
    ack_all(q, &name, &a12[1..]).await;

    let a34 = receive(q, &name, 2, LONG).await;
    assert_eq!(bodies(&a34), ["a3", "a4"]);
    ack_all(q, &name, &b12).await;
    let b3 = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&b3), ["b3"], "a is blocked by a3/a4");

    ack_all(q, &name, &a34).await;
    ack_all(q, &name, &b3).await;
    let a5 = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&a5), ["a5"]);
    ack_all(q, &name, &a5).await;
    assert_empty(q, &name, "all acked").await;
}

async fn fifo_redelivery_keeps_order(q: &dyn Queue) {
    let name = fifo();
    q.send_batch(
        &name,
        vec![grouped("c1", "g"), grouped("c2", "g"), grouped("c3", "g")],
    )
    .await
    .expect("send");
    let first = receive(q, &name, 1, SHORT).await;
    assert_eq!(bodies(&first), ["c1"]);
    assert_empty(q, &name, "c1 in flight blocks c2 and c3").await;

    tokio::time::sleep(LAPSE).await;
    let again = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(
        bodies(&again),
        ["c1", "c2", "c3"],
        "the unacked head comes first"
    );
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[1].receive_count, 1);

    // Released c2 (change_visibility 0) waits while c3 of its group is still in flight.
    ack_all(q, &name, &again[..1]).await;
    q.change_visibility(&name, &again[1].receipt, Duration::ZERO)
        .await
        .expect("release c2");
    assert_empty(q, &name, "c3 in flight blocks the released c2").await;
    ack_all(q, &name, &again[2..]).await;
    let c2 = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&c2), ["c2"]);
    assert_eq!(c2[0].receive_count, 2);
    ack_all(q, &name, &c2).await;
    assert_empty(q, &name, "all acked").await;
}

/// A batch settled as the local server's consumers and Lambda's event source settle it: the
/// done records deleted first in one `ack_batch`, the group's head put off for a retry delay
/// (a sync job waiting for its portal returns `RetryAfter`), the records behind it released
/// at once. Until the delay has passed the group offers nothing, not even a message sent to
/// it meanwhile; then it comes back whole, in order, the head first.
async fn fifo_a_head_put_off_keeps_its_group_blocked_through_the_settle(q: &dyn Queue) {
    let name = fifo();
    let sent = [
        ("r1", "r"),
        ("h1", "h"),
        ("r2", "r"),
        ("h2", "h"),
        ("r3", "r"),
    ];
    q.send_batch(&name, sent.iter().map(|(b, g)| grouped(b, g)).collect())
        .await
        .expect("send");
    let batch = receive(q, &name, MAX_BATCH, LONG).await;
    let of_group = |g: &str| -> Vec<&str> {
        batch
            .iter()
            .filter(|m| m.group_id.as_deref() == Some(g))
            .map(|m| m.body.as_str())
            .collect()
    };
    assert_eq!(of_group("r"), ["r1", "r2", "r3"]);
    assert_eq!(of_group("h"), ["h1", "h2"]);
    let by_body = |b: &str| batch.iter().find(|m| m.body == b).expect("received");

    let done = vec![by_body("h1").receipt.clone(), by_body("h2").receipt.clone()];
    assert_eq!(q.ack_batch(&name, &done).await, vec![Ok(()); 2]);
    q.change_visibility(&name, &by_body("r1").receipt, SHORT)
        .await
        .expect("put the head off");
    for skipped in ["r2", "r3"] {
        q.change_visibility(&name, &by_body(skipped).receipt, Duration::ZERO)
            .await
            .expect("release the records behind it");
    }
    assert_empty(q, &name, "r1 is put off: r2 and r3 wait behind it").await;
    q.send_batch(&name, vec![grouped("r4", "r")])
        .await
        .expect("send");
    assert_empty(q, &name, "a message sent meanwhile waits too").await;

    tokio::time::sleep(LAPSE).await;
    let again = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&again), ["r1", "r2", "r3", "r4"]);
    assert_eq!(again[0].receive_count, 2);
    ack_all(q, &name, &again).await;
    assert_empty(q, &name, "all acked").await;
}

/// A consumer may move a message to the dead-letter twin itself (the sync worker does once a
/// job's own attempts are exhausted, decision 0022): send it there, then ack the original.
async fn a_message_can_be_moved_to_the_dead_letter_queue(q: &dyn Queue) {
    let name = fifo();
    let dlq = name.dead_letter();
    q.send_batch(&name, vec![grouped("d1", "g"), grouped("d2", "g")])
        .await
        .expect("send");
    let head = receive(q, &name, 1, LONG).await;
    assert_eq!(bodies(&head), ["d1"]);
    q.send_batch(
        &dlq,
        vec![OutgoingMessage::new(head[0].body.clone()).grouped("g", &head[0].message_id)],
    )
    .await
    .expect("send to the dead-letter queue");
    ack_all(q, &name, &head).await;
    let rest = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&rest), ["d2"], "the group goes on behind it");
    ack_all(q, &name, &rest).await;
    let dead = receive(q, &dlq, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&dead), ["d1"]);
    ack_all(q, &dlq, &dead).await;
}

/// The depth counts visible and in-flight messages apart, per queue (the redrive relies on it
/// to tell an empty queue from an empty receive).
async fn approximate_depth_counts_visible_and_in_flight(q: &dyn Queue) {
    let name = standard();
    let dlq = name.dead_letter();
    let depth = |name: QueueName| async move { q.approximate_depth(&name).await.expect("depth") };
    assert_eq!(depth(name.clone()).await, QueueDepth::default());
    q.send_batch(&name, ["d1", "d2", "d3"].map(OutgoingMessage::new).to_vec())
        .await
        .expect("send");
    q.send_batch(&dlq, vec![OutgoingMessage::new("dead")])
        .await
        .expect("send to the dead-letter queue");
    let counts = depth(name.clone()).await;
    assert_eq!((counts.visible, counts.in_flight), (3, 0));

    let got = receive(q, &name, 1, LONG).await;
    assert_eq!(got.len(), 1);
    let counts = depth(name.clone()).await;
    assert_eq!(
        (counts.visible, counts.in_flight, counts.total()),
        (2, 1, 3)
    );

    ack_all(q, &name, &got).await;
    let counts = depth(name.clone()).await;
    assert_eq!((counts.visible, counts.in_flight), (2, 0));
    let counts = depth(dlq).await;
    assert_eq!(
        (counts.visible, counts.in_flight),
        (1, 0),
        "each queue its own"
    );

    let r = q
        .approximate_depth(&QueueName::parse("nowhere").expect("valid name"))
        .await;
    assert!(matches!(r, Err(QueueError::UnknownQueue(_))), "{r:?}");
}

async fn fifo_dedup_id_is_not_enqueued_twice(q: &dyn Queue) {
    let name = fifo();
    q.send_batch(
        &name,
        vec![
            OutgoingMessage::new("first").grouped("g", "d1"),
            OutgoingMessage::new("second").grouped("g", "d2"),
        ],
    )
    .await
    .expect("send");
    // A retry of d1 with another body, and a duplicate inside one batch: accepted, dropped.
    q.send_batch(
        &name,
        vec![OutgoingMessage::new("retry").grouped("g", "d1")],
    )
    .await
    .expect("duplicate is accepted");
    q.send_batch(
        &name,
        vec![
            OutgoingMessage::new("third").grouped("h", "d3"),
            OutgoingMessage::new("third-again").grouped("h", "d3"),
        ],
    )
    .await
    .expect("in-batch duplicate is accepted");

    let got = receive(q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&got), ["first", "second", "third"]);
    ack_all(q, &name, &got).await;
    assert_empty(q, &name, "duplicates were never enqueued").await;
}

async fn invalid_requests_enqueue_nothing(q: &dyn Queue) {
    let invalid = |r: Result<(), QueueError>, what: &str| {
        assert!(matches!(r, Err(QueueError::Invalid(_))), "{what}: {r:?}");
    };
    let std_q = standard();
    let fifo_q = fifo();
    let ok = || OutgoingMessage::new("fine");

    invalid(
        q.send_batch(&std_q, vec![ok(), OutgoingMessage::new("")])
            .await,
        "empty body",
    );
    invalid(
        q.send_batch(
            &std_q,
            vec![ok(), OutgoingMessage::new("x".repeat(MAX_BODY_BYTES + 1))],
        )
        .await,
        "oversized body",
    );
    invalid(
        q.send_batch(&std_q, vec![ok(), OutgoingMessage::new("nul\u{0}")])
            .await,
        "character SQS refuses",
    );
    invalid(
        q.send_batch(
            &fifo_q,
            vec![grouped("fine", "g"), OutgoingMessage::new("no group")],
        )
        .await,
        "FIFO without group",
    );
    let mut no_dedup = grouped("no dedup", "g");
    no_dedup.dedup_id = None;
    invalid(
        q.send_batch(&fifo_q, vec![grouped("fine", "g"), no_dedup])
            .await,
        "FIFO without dedup id",
    );

    for (max, visibility) in [
        (0, LONG),
        (MAX_BATCH + 1, LONG),
        (1, Duration::from_secs(13 * 3600)),
    ] {
        let r = q.receive(&std_q, max, visibility).await;
        assert!(matches!(r, Err(QueueError::Invalid(_))), "max {max}: {r:?}");
    }

    let unknown = QueueName::parse("nowhere").expect("valid name");
    let r = q.send_batch(&unknown, vec![ok()]).await;
    assert!(matches!(r, Err(QueueError::UnknownQueue(_))), "{r:?}");
    let r = q.receive(&unknown, 1, LONG).await;
    assert!(matches!(r, Err(QueueError::UnknownQueue(_))), "{r:?}");

    q.send_batch(&std_q, Vec::new())
        .await
        .expect("empty batch is a no-op");
    assert_empty(q, &std_q, "invalid batches enqueue nothing").await;
    assert_empty(q, &fifo_q, "invalid batches enqueue nothing").await;
}

// ---- both adapters run every case ----

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let (queue, _dir) = super::embedded();
                    super::$case(&queue).await;
                }
            )*
        }
        mod sqs_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let queue = super::sqs().await;
                    super::$case(&queue).await;
                }
            )*
        }
    };
}

conformance!(
    batch_is_received_exactly_once,
    hidden_until_visibility_lapses,
    ack_prevents_redelivery,
    ack_batch_deletes_each_entry,
    change_visibility_reschedules,
    dead_letters_after_max_receives,
    fifo_keeps_group_order_and_blocks_groups_in_flight,
    fifo_redelivery_keeps_order,
    fifo_a_head_put_off_keeps_its_group_blocked_through_the_settle,
    fifo_dedup_id_is_not_enqueued_twice,
    invalid_requests_enqueue_nothing,
    a_message_can_be_moved_to_the_dead_letter_queue,
    approximate_depth_counts_visible_and_in_flight,
);

// ---- embedded only: persistence, receipts, concurrency ----

#[tokio::test]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (std_q, fifo_q) = (standard(), fifo());
    let (in_flight, held) = {
        let q = open_embedded(&dir);
        q.send_batch(
            &std_q,
            vec![OutgoingMessage::new("a"), OutgoingMessage::new("b")],
        )
        .await
        .expect("send");
        q.send_batch(&fifo_q, vec![grouped("f1", "g")])
            .await
            .expect("send fifo");
        let a = receive(&q, &std_q, 1, SHORT).await;
        assert_eq!(bodies(&a), ["a"]);
        let f1 = receive(&q, &fifo_q, 1, LONG).await;
        assert_eq!(bodies(&f1), ["f1"]);
        (a[0].clone(), f1[0].clone())
    };

    let q = open_embedded(&dir);
    assert_eq!(q.depth(&std_q).await.expect("depth"), 2);
    let b = receive(&q, &std_q, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&b), ["b"], "a is still in flight after the reopen");

    tokio::time::sleep(LAPSE).await;
    let a = receive(&q, &std_q, MAX_BATCH, LONG).await;
    assert_eq!(
        bodies(&a),
        ["a"],
        "in-flight message reappears after its timeout"
    );
    assert_eq!(a[0].message_id, in_flight.message_id);
    assert_eq!(a[0].receive_count, 2);
    ack_all(&q, &std_q, &a).await;
    ack_all(&q, &std_q, &b).await;
    assert_eq!(q.depth(&std_q).await.expect("depth"), 0);

    // A receipt from before the reopen still acks; the dedup window survives too.
    q.ack(&fifo_q, &held.receipt).await.expect("ack");
    assert_eq!(q.depth(&fifo_q).await.expect("depth"), 0);
    q.send_batch(&fifo_q, vec![grouped("f1", "g")])
        .await
        .expect("duplicate accepted");
    assert_eq!(q.depth(&fifo_q).await.expect("depth"), 0, "deduplicated");
}

#[tokio::test]
async fn embedded_stale_receipts_do_not_touch_a_redelivered_message() {
    let (q, _dir) = embedded();
    let name = standard();
    q.send_batch(&name, vec![OutgoingMessage::new("m")])
        .await
        .expect("send");
    let old = receive(&q, &name, 1, SHORT).await;
    tokio::time::sleep(LAPSE).await;
    let new = receive(&q, &name, 1, LONG).await;
    assert_eq!(bodies(&new), ["m"]);

    // Stale ack: Ok, no effect. Stale change_visibility: Invalid, no effect.
    q.ack(&name, &old[0].receipt)
        .await
        .expect("stale ack is Ok");
    assert_eq!(q.depth(&name).await.expect("depth"), 1);
    let err = q
        .change_visibility(&name, &old[0].receipt, Duration::ZERO)
        .await
        .expect_err("stale receipt");
    assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
    assert_empty(&q, &name, "still in flight under the new receipt").await;

    let err = q.ack(&name, "not-a-receipt").await.expect_err("malformed");
    assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
    let err = q.depth(&QueueName::parse("nowhere").expect("name")).await;
    assert!(matches!(err, Err(QueueError::UnknownQueue(_))), "{err:?}");

    q.ack(&name, &new[0].receipt).await.expect("ack");
    assert_eq!(q.depth(&name).await.expect("depth"), 0);
}

#[tokio::test]
async fn embedded_concurrent_receivers_never_share_a_message() {
    let (q, _dir) = embedded();
    let name = standard();
    let sent: Vec<OutgoingMessage> = (0..60)
        .map(|i| OutgoingMessage::new(format!("c{i}")))
        .collect();
    q.send_batch(&name, sent).await.expect("send");

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (q, name) = (q.clone(), name.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = q.receive(&name, 3, LONG).await.expect("receive");
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|m| m.body));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (60, 60),
        "each message exactly once"
    );
}

/// The embedded queue's `ack_batch` is one transaction, yet each entry is answered on its own,
/// as SQS's `DeleteMessageBatch` answers: a malformed receipt fails its entry only, a stale one
/// is Ok and leaves the redelivered message alone, an unknown queue fails every entry.
#[tokio::test]
async fn embedded_ack_batch_answers_each_entry() {
    let (q, _dir) = embedded();
    let name = standard();
    q.send_batch(&name, ["x", "y", "z"].map(OutgoingMessage::new).to_vec())
        .await
        .expect("send");
    let x_old = receive(&q, &name, 1, SHORT).await;
    assert_eq!(bodies(&x_old), ["x"], "send order");
    tokio::time::sleep(LAPSE).await;
    let got = receive(&q, &name, MAX_BATCH, LONG).await;
    assert_eq!(bodies(&got), ["x", "y", "z"]);
    let batch = vec![
        got[1].receipt.clone(),
        "not-a-receipt".to_owned(),
        x_old[0].receipt.clone(), // stale: x was received again since
        got[2].receipt.clone(),
    ];
    let results = q.ack_batch(&name, &batch).await;
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], Ok(()));
    assert!(
        matches!(results[1], Err(QueueError::Invalid(_))),
        "{results:?}"
    );
    assert_eq!(results[2], Ok(()), "a stale receipt is Ok, as for ack");
    assert_eq!(results[3], Ok(()));
    assert_eq!(q.depth(&name).await.expect("depth"), 1, "x is still there");

    let nowhere = QueueName::parse("nowhere").expect("name");
    let results = q.ack_batch(&nowhere, &[got[0].receipt.clone()]).await;
    assert!(
        matches!(results[..], [Err(QueueError::UnknownQueue(_))]),
        "{results:?}"
    );
    assert_eq!(
        q.ack_batch(&name, &[got[0].receipt.clone()]).await,
        vec![Ok(())]
    );
    assert_eq!(q.depth(&name).await.expect("depth"), 0);
}
