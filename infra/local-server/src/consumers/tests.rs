use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::Notify;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{OutgoingMessage, QueueSpec};

use super::*;

/// Long enough that a loaded machine still looks at a failed or panicked record before it
/// comes back; the tests that wait for it to come back wait this long.
const VISIBILITY: Duration = Duration::from_secs(5);

struct Fixture {
    _dir: tempfile::TempDir,
    queue: Arc<dyn Queue>,
    name: QueueName,
}

fn fifo_queue() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = QueueName::parse("work.fifo").expect("valid name");
    let queue = EmbeddedQueue::open(
        dir.path(),
        vec![QueueSpec::new(name.clone(), 10, VISIBILITY)],
    )
    .expect("open");
    Fixture {
        _dir: dir,
        queue: Arc::new(queue),
        name,
    }
}

/// "group/n" bodies, each its own dedup id.
fn message(group: &str, n: usize) -> OutgoingMessage {
    let body = format!("{group}/{n}");
    OutgoingMessage::new(body.clone()).grouped(group, body)
}

fn consumer(f: &Fixture, handler: Arc<dyn RecordHandler>) -> Consumer {
    Consumer {
        queue: f.name.clone(),
        visibility: VISIBILITY,
        handler,
        meter: None,
    }
}

/// Runs `loops` consumer loops until `done` says so (or 20 s pass), then stops them and
/// waits for them to return.
async fn consume(
    f: &Fixture,
    handler: Arc<dyn RecordHandler>,
    loops: usize,
    done: impl Fn() -> bool,
) {
    let (stop, rx) = watch::channel(false);
    let tasks: Vec<_> = (0..loops)
        .map(|_| {
            tokio::spawn(run(
                f.queue.clone(),
                consumer(f, handler.clone()),
                rx.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).expect("loops listening");
    for t in tasks {
        t.await.expect("loop ended");
    }
}

/// Records each body it is handed, in order; `outcome` decides each attempt's outcome from
/// the body and how many times it was seen before.
struct Recorder<F> {
    seen: Mutex<Vec<String>>,
    outcome: F,
}

impl<F> Recorder<F> {
    fn new(outcome: F) -> Arc<Self> {
        Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            outcome,
        })
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl<F> RecordHandler for Recorder<F>
where
    F: Fn(&str, usize) -> Outcome + Send + Sync + 'static,
{
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        let before = {
            let mut seen = self.seen.lock().expect("not poisoned");
            let before = seen.iter().filter(|b| **b == record.body).count();
            seen.push(record.body.clone());
            before
        };
        // Groups finish at different times, as real handlers do.
        let n: usize = record.body.bytes().map(usize::from).sum();
        tokio::time::sleep(Duration::from_micros((n * 37 % 7 * 300) as u64)).await;
        (self.outcome)(&record.body, before)
    }
}

/// Several loops, each settling its groups as they finish, still hand each group's messages
/// over one at a time in the order they were sent, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_is_handled_in_order_and_once() {
    let f = fifo_queue();
    let groups = ["a", "b", "c", "d", "e"];
    let per_group = 20;
    for n in 0..per_group {
        let batch = groups.iter().map(|g| message(g, n)).collect();
        f.queue.send_batch(&f.name, batch).await.expect("send");
    }
    let handler = Recorder::new(|_: &str, _| Outcome::Done);
    let total = groups.len() * per_group;
    consume(&f, handler.clone(), 4, || handler.seen().len() >= total).await;
    let seen = handler.seen();
    assert_eq!(seen.len(), total, "{seen:?}");
    for g in groups {
        let of_group: Vec<String> = seen
            .iter()
            .filter(|b| b.starts_with(&format!("{g}/")))
            .cloned()
            .collect();
        let sent: Vec<String> = (0..per_group).map(|n| format!("{g}/{n}")).collect();
        assert_eq!(of_group, sent, "group {g}");
    }
    let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    assert_eq!(depth.total(), 0, "every handled message acknowledged");
}

/// A record that fails stays in the queue (not acknowledged) until its visibility timeout;
/// the records after it in its group are not tried, and come back behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_record_stays_and_its_group_comes_back_behind_it() {
    let f = fifo_queue();
    let batch = vec![
        message("a", 0),
        message("a", 1),
        message("a", 2),
        message("b", 0),
    ];
    f.queue.send_batch(&f.name, batch).await.expect("send");
    let handler = Recorder::new(|body: &str, before| {
        if body == "a/0" && before == 0 {
            Outcome::Failed
        } else {
            Outcome::Done
        }
    });
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(run(f.queue.clone(), consumer(&f, handler.clone()), rx));
    // Well inside the visibility timeout: the first attempt has failed and settled.
    let settled_by = Instant::now() + VISIBILITY / 2;
    let mut depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    while (handler.seen().len() < 2 || depth.in_flight != 1) && Instant::now() < settled_by {
        tokio::time::sleep(Duration::from_millis(10)).await;
        depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    }
    let mut first = handler.seen();
    first.sort();
    assert_eq!(first, ["a/0", "b/0"], "a/1 and a/2 not tried");
    assert_eq!(depth.total(), 3, "a/0 not acknowledged: {depth:?}");
    assert_eq!(
        depth.in_flight, 1,
        "a/1 and a/2 released at once: {depth:?}"
    );
    let deadline = Instant::now() + VISIBILITY * 4;
    while handler.seen().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).expect("loop listening");
    task.await.expect("loop ended");
    let seen = handler.seen();
    let of_a: Vec<&String> = seen.iter().filter(|b| b.starts_with("a/")).collect();
    assert_eq!(of_a, ["a/0", "a/0", "a/1", "a/2"], "{seen:?}");
    assert_eq!(seen.len(), 5, "b/0 handled once: {seen:?}");
    let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    assert_eq!(depth.total(), 0, "{depth:?}");
}

/// Group "a"'s message waits until group "b"'s second message has been handled; "b/1" is
/// sent only once "b/0" is being handled, so it can be received only after "b/0" is
/// acknowledged. With the whole batch acknowledged at its end, "b" would stay blocked behind
/// "a" and neither would finish.
struct WaitsForTheOtherGroup {
    queue: Arc<dyn Queue>,
    name: QueueName,
    b_done: Notify,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl RecordHandler for WaitsForTheOtherGroup {
    async fn handle(&self, record: &QueueRecord) -> Outcome {
        self.seen
            .lock()
            .expect("not poisoned")
            .push(record.body.clone());
        match record.body.as_str() {
            "a/0" => self.b_done.notified().await,
            "b/0" => {
                let next = vec![message("b", 1)];
                if self.queue.send_batch(&self.name, next).await.is_err() {
                    return Outcome::Failed;
                }
            }
            _ => self.b_done.notify_one(),
        }
        Outcome::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_group_is_received_again_while_a_slow_one_runs() {
    let f = fifo_queue();
    let batch = vec![message("a", 0), message("b", 0)];
    f.queue.send_batch(&f.name, batch).await.expect("send");
    let handler = Arc::new(WaitsForTheOtherGroup {
        queue: f.queue.clone(),
        name: f.name.clone(),
        b_done: Notify::new(),
        seen: Mutex::new(Vec::new()),
    });
    let (stop, rx) = watch::channel(false);
    // One loop: the next receive has to come from the loop whose batch is still running.
    let task = tokio::spawn(run(f.queue.clone(), consumer(&f, handler.clone()), rx));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
        let seen = handler.seen.lock().expect("not poisoned").len();
        if (seen == 3 && depth.total() == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = handler.seen.lock().expect("not poisoned").clone();
    // Released before stopping, whatever happened, so the loop can end.
    handler.b_done.notify_one();
    stop.send(true).expect("loop listening");
    task.await.expect("loop ended");
    assert_eq!(seen.len(), 3, "b/1 never handled while a/0 ran: {seen:?}");
    assert_eq!(seen[2], "b/1", "{seen:?}");
}

/// Ten records whose handling panics fill a loop's room; their tasks' ends must give it back,
/// or the loop would never receive again. The panicked records stay in flight and come back
/// after the visibility timeout, as failed ones do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_panics_gives_its_room_back_and_its_records_come_back() {
    let f = fifo_queue();
    let panicking: Vec<OutgoingMessage> = (0..MAX_BATCH)
        .map(|g| message(&format!("p{g}"), 0))
        .collect();
    f.queue.send_batch(&f.name, panicking).await.expect("send");
    let handler = Recorder::new(|body: &str, before| {
        if body.starts_with('p') && before == 0 {
            panic!("a handler's bug");
        }
        Outcome::Done
    });
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(run(f.queue.clone(), consumer(&f, handler.clone()), rx));
    let deadline = Instant::now() + Duration::from_secs(5);
    while handler.seen().len() < MAX_BATCH && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    assert_eq!(
        depth.in_flight, MAX_BATCH as u64,
        "left in flight: {depth:?}"
    );
    f.queue
        .send_batch(&f.name, vec![message("ok", 0)])
        .await
        .expect("send");
    let deadline = Instant::now() + VISIBILITY * 4;
    while handler.seen().len() < 2 * MAX_BATCH + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).expect("loop listening");
    task.await.expect("loop ended");
    let seen = handler.seen();
    assert!(
        seen.contains(&"ok/0".to_owned()),
        "received again: {seen:?}"
    );
    assert_eq!(
        seen.len(),
        2 * MAX_BATCH + 1,
        "each panicked record once more: {seen:?}"
    );
    let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    assert_eq!(depth.total(), 0, "{depth:?}");
}

/// Counts the runs of its records, and the most that ran at once; each run takes `takes`.
struct SlowRuns {
    takes: Duration,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    runs: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl RecordHandler for SlowRuns {
    async fn handle(&self, _record: &QueueRecord) -> Outcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.takes).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Outcome::Done
    }
}

/// A run that outlasts its visibility timeout keeps its record hidden: the record is not
/// received again and run a second time beside it (two runs of one erasure at once deleted a
/// person's new conversation, decision 0102), and it is acknowledged once, when the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_its_visibility_timeout_is_not_run_again_beside_itself() {
    let f = fifo_queue();
    f.queue
        .send_batch(&f.name, vec![message("slow", 0)])
        .await
        .expect("send");
    let visibility = Duration::from_millis(300);
    let handler = Arc::new(SlowRuns {
        takes: visibility * 5,
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        runs: AtomicUsize::new(0),
    });
    let (stop, rx) = watch::channel(false);
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let consumer = Consumer {
                visibility,
                ..consumer(&f, handler.clone())
            };
            tokio::spawn(run(f.queue.clone(), consumer, rx.clone()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
        if depth.total() == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A little longer, for a second run that would start late.
    tokio::time::sleep(visibility * 2).await;
    stop.send(true).expect("loops listening");
    for l in loops {
        l.await.expect("loop ended");
    }
    assert_eq!(handler.most.load(Ordering::SeqCst), 1, "ran beside itself");
    assert_eq!(handler.runs.load(Ordering::SeqCst), 1, "run again");
    let depth = f.queue.approximate_depth(&f.name).await.expect("depth");
    assert_eq!(
        depth.total(),
        0,
        "acknowledged when the run ended: {depth:?}"
    );
}
