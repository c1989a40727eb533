//! The embedded queue's receive index (decision 0054) against a model of SQS's rules: random
//! sends, receives, acks and visibility changes over FIFO groups and a standard queue, with the
//! dead-letter rule and reopening the file between steps. The model is the scan the index
//! replaced (a group with a message in flight delivers nothing; otherwise the first `max`
//! visible messages in send order), so any message the index offers too early, too late, twice
//! or never shows up as a difference. Also: a file written before the index existed gets it
//! built when opened.

use std::collections::HashSet;

use tempfile::TempDir;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{OutgoingMessage, Queue, QueueName, QueueSpec};

use crate::queue::{fifo, standard, LONG};

const MAX_RECEIVES: u32 = 2;

fn open(dir: &TempDir) -> EmbeddedQueue {
    EmbeddedQueue::open(
        dir.path(),
        vec![
            QueueSpec::new(standard(), MAX_RECEIVES, LONG),
            QueueSpec::new(fifo(), MAX_RECEIVES, LONG),
        ],
    )
    .expect("open embedded queue")
}

/// A small deterministic generator (xorshift64), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Modelled {
    body: String,
    group: Option<String>,
    in_flight: bool,
    receives: u32,
    receipt: Option<String>,
}

/// SQS's rules, by scanning everything (what the embedded queue did before its index).
#[derive(Default)]
struct Model {
    messages: Vec<Modelled>,
    dead: Vec<String>,
}

impl Model {
    /// The bodies a receive of `max` returns, marking them in flight; dead-letters on the way.
    fn receive(&mut self, max: usize) -> Vec<String> {
        let blocked: HashSet<String> = self
            .messages
            .iter()
            .filter(|m| m.in_flight)
            .filter_map(|m| m.group.clone())
            .collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.messages.len() && out.len() < max {
            let m = &mut self.messages[i];
            let free = !m.in_flight && m.group.as_ref().is_none_or(|g| !blocked.contains(g));
            if !free {
                i += 1;
                continue;
            }
            if m.receives >= MAX_RECEIVES {
                let m = self.messages.remove(i);
                self.dead.push(m.body);
                continue;
            }
            m.in_flight = true;
            m.receives += 1;
            out.push(m.body.clone());
            i += 1;
        }
        out
    }
}

async fn run(seed: u64, queue_name: QueueName, grouped: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut queue = open(&dir);
    let mut model = Model::default();
    let mut rng = Rng(seed);
    let mut sent = 0;
    for step in 0..1500 {
        match rng.below(10) {
            0..=3 => {
                let n = 1 + rng.below(3) as usize;
                let mut batch = Vec::new();
                for _ in 0..n {
                    sent += 1;
                    let body = format!("m{sent}");
                    let group = grouped.then(|| format!("g{}", rng.below(6)));
                    let mut out = OutgoingMessage::new(body.clone());
                    if let Some(g) = &group {
                        out = out.grouped(g.clone(), body.clone());
                    }
                    batch.push(out);
                    model.messages.push(Modelled {
                        body,
                        group,
                        in_flight: false,
                        receives: 0,
                        receipt: None,
                    });
                }
                queue.send_batch(&queue_name, batch).await.expect("send");
            }
            4..=6 => {
                let max = 1 + rng.below(4) as usize;
                let got = queue
                    .receive(&queue_name, max, LONG)
                    .await
                    .expect("receive");
                let bodies: Vec<String> = got.iter().map(|m| m.body.clone()).collect();
                assert_eq!(bodies, model.receive(max), "seed {seed}, step {step}");
                for m in got {
                    let modelled = model
                        .messages
                        .iter_mut()
                        .find(|x| x.body == m.body)
                        .expect("modelled");
                    assert_eq!(m.receive_count, modelled.receives);
                    modelled.receipt = Some(m.receipt);
                }
            }
            7 | 8 => {
                // Settle one message in flight: ack it, or make it visible again at once.
                let in_flight: Vec<usize> = (0..model.messages.len())
                    .filter(|&i| model.messages[i].in_flight)
                    .collect();
                if in_flight.is_empty() {
                    continue;
                }
                let i = in_flight[rng.below(in_flight.len() as u64) as usize];
                let receipt = model.messages[i].receipt.clone().expect("received");
                if rng.below(2) == 0 {
                    queue.ack(&queue_name, &receipt).await.expect("ack");
                    model.messages.remove(i);
                } else {
                    queue
                        .change_visibility(&queue_name, &receipt, std::time::Duration::ZERO)
                        .await
                        .expect("change visibility");
                    model.messages[i].in_flight = false;
                }
            }
            _ => {
                // Reopen: the index is on disk with the messages.
                drop(queue);
                queue = open(&dir);
            }
        }
        let depth = queue.approximate_depth(&queue_name).await.expect("depth");
        let in_flight = model.messages.iter().filter(|m| m.in_flight).count();
        assert_eq!(
            (depth.visible, depth.in_flight),
            ((model.messages.len() - in_flight) as u64, in_flight as u64),
            "seed {seed}, step {step}"
        );
    }
    assert!(sent > 300, "the run exercised sends: {sent}");
    assert!(!model.dead.is_empty(), "the run exercised dead-lettering");
    let dlq = queue_name.dead_letter();
    let mut dead = Vec::new();
    loop {
        let got = queue.receive(&dlq, 10, LONG).await.expect("receive DLQ");
        if got.is_empty() {
            break;
        }
        for m in got {
            // Acked, so its FIFO group does not block the rest of the drain.
            queue.ack(&dlq, &m.receipt).await.expect("ack DLQ");
            dead.push(m.body);
        }
    }
    // A FIFO DLQ keeps the groups, so its order is per group; compare as sets there.
    if grouped {
        dead.sort();
        model.dead.sort();
    }
    assert_eq!(dead, model.dead, "seed {seed}: the dead-letter queue");
}

#[tokio::test]
async fn fifo_receives_match_the_rules_over_random_operations() {
    for seed in [0x9e37_79b9_7f4a_7c15, 0x2545_f491_4f6c_dd1d, 7] {
        run(seed, fifo(), true).await;
    }
}

#[tokio::test]
async fn standard_receives_match_the_rules_over_random_operations() {
    run(0x5851_f42d_4c95_7f2d, standard(), false).await;
}

#[tokio::test]
async fn a_file_written_before_the_index_gets_it_built_when_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let queue = open(&dir);
    let batch = ["a1", "b1", "a2", "b2", "c1"]
        .iter()
        .map(|b| OutgoingMessage::new(*b).grouped(&b[..1], *b))
        .collect();
    queue.send_batch(&fifo(), batch).await.expect("send");
    let first = queue.receive(&fifo(), 1, LONG).await.expect("receive");
    assert_eq!(first[0].body, "a1");
    drop(queue);

    // Strip the index, as a file from before it looks.
    {
        let db = redb::Database::open(dir.path().join("queues.redb")).expect("open file");
        let txn = db.begin_write().expect("write");
        txn.delete_table(redb::TableDefinition::<(&str, u64), ()>::new("queue_ready"))
            .expect("drop ready");
        txn.delete_table(redb::TableDefinition::<(&str, i64, u64), ()>::new(
            "queue_in_flight",
        ))
        .expect("drop in flight");
        txn.delete_table(redb::TableDefinition::<(&str, &str, u64), ()>::new(
            "queue_groups",
        ))
        .expect("drop groups");
        txn.delete_table(redb::TableDefinition::<(&str, &str), u64>::new(
            "queue_group_busy",
        ))
        .expect("drop busy");
        txn.delete_table(redb::TableDefinition::<&str, u64>::new("queue_depth"))
            .expect("drop depth");
        txn.open_table(redb::TableDefinition::<&str, u64>::new("queue_counters"))
            .expect("counters")
            .remove("index_version")
            .expect("remove version");
        txn.commit().expect("commit");
    }

    let queue = open(&dir);
    let depth = queue.approximate_depth(&fifo()).await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (4, 1));
    // Group a is still blocked by a1 in flight; b and c are offered in send order.
    let got = queue.receive(&fifo(), 10, LONG).await.expect("receive");
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["b1", "b2", "c1"]);
    queue.ack(&fifo(), &first[0].receipt).await.expect("ack a1");
    let got = queue.receive(&fifo(), 10, LONG).await.expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "a2");
}
