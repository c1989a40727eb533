//! The embedded queue's send log (decision 0090): a send is answered once it is in a file of
//! our own, flushed by a thread of its own, not once redb's next durable commit has finished.
//!
//! Why: redb runs one write transaction at a time, and its durable commit (the flush of
//! decision 0054) is one. A webhook's send waited for the writer thread to finish the batch it
//! was running (the worker's receives, sync-job sends and acknowledgements of the same file)
//! and its flush, then for its own commit and the next flush. Here a send waits for an append
//! and a `fdatasync` of a small file that nothing else writes.
//!
//! How it stays durable, exactly once:
//! - The log thread takes every send waiting, gives each the next log sequence number, writes
//!   them as checksummed frames, and `fdatasync`s. Only then does it queue one write to redb's
//!   writer thread that applies them (non-durably, as every write there is committed) and
//!   records the last applied log number in the same transaction, and only then answers the
//!   senders. A later operation of theirs (a receive) is queued behind that write, so it sees
//!   the message; nothing can see a message before its send is on disk.
//! - On open, every logged send numbered above the applied number that redb holds durably is
//!   applied again, in order, in one durable commit; then appending starts again at the
//!   beginning of the first file, over what is applied. A send applied
//!   and made durable before a kill is not applied twice; one logged but not applied (or
//!   applied but not yet durable in redb) is applied once. A torn frame at a file's end (a
//!   kill during an append, whose sender was never answered) ends the replay of that file.
//! - Two files of 1 MiB, written with zeros when made, take turns: once appending has reached the
//!   end of one and everything in the other is durably applied, appending starts again at the
//!   other's beginning. So the log stays small under steady load without waiting for a moment
//!   when nothing is in flight, and an append overwrites allocated bytes: its `fdatasync`
//!   writes no file-system metadata.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

use super::QueueError;
use crate::group_commit::Submitter;

/// The two files of the log, in a data directory beside `queues.redb`.
pub const FILE_NAMES: [&str; 2] = ["queues.log.0", "queues.log.1"];

/// Each file's size, written with zeros when the file is made: an append overwrites bytes that
/// are already allocated and initialised, so its `fdatasync` writes data only, not the file
/// system's journal (a growing file's new size and blocks are metadata). Once appending has
/// reached it, appending moves to the other file if that one is durably applied (else the file
/// grows past it).
const SEGMENT_BYTES: u64 = 1 << 20;
/// A frame longer than this is not one we wrote: a torn or foreign tail.
const MAX_FRAME: usize = 64 << 20;
/// Frame header: payload length (u32 LE), then the first 8 bytes of the SHA-256 of the
/// length and the payload.
const HEADER: usize = 12;

/// One `send_batch`, as logged and applied.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct LoggedSend {
    pub queue: String,
    /// When it was accepted (ms): its messages' send time and the start of its dedup window.
    pub at: i64,
    pub messages: Vec<LoggedMessage>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct LoggedMessage {
    pub message_id: String,
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// Applies logged sends, in log order, inside one redb write transaction, and records the last
/// one's number there (`records` is never empty).
pub(super) type Apply =
    Arc<dyn Fn(&WriteTransaction, &[(u64, LoggedSend)]) -> Result<(), QueueError> + Send + Sync>;

fn checksum(payload: &[u8]) -> [u8; 8] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(payload.len() as u32).to_le_bytes());
    ctx.update(payload);
    let digest = ctx.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

fn frame(seq: u64, send: &LoggedSend, out: &mut Vec<u8>) -> Result<(), QueueError> {
    let mut payload = seq.to_le_bytes().to_vec();
    serde_json::to_writer(&mut payload, send)
        .map_err(|e| QueueError::Backend(format!("encoding a logged send: {e}")))?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_FRAME)
        .ok_or_else(|| QueueError::Invalid("send too large for the queue log".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(&payload));
    out.extend_from_slice(&payload);
    Ok(())
}

/// The whole frames at the start of `bytes`, and the length they take; reading stops at the
/// first frame that is short, too long or fails its checksum.
pub(super) fn frames(bytes: &[u8]) -> (Vec<(u64, LoggedSend)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if !(8..=MAX_FRAME).contains(&len) || checksum(payload)[..] != bytes[at + 4..at + HEADER] {
            break;
        }
        let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        let Ok(send) = serde_json::from_slice::<LoggedSend>(&payload[8..]) else {
            break;
        };
        out.push((seq, send));
        at += HEADER + len;
    }
    (out, at)
}

fn io_err(what: &str, e: std::io::Error) -> QueueError {
    QueueError::Backend(format!("embedded queue log: {what}: {e}"))
}

struct LogFile {
    file: File,
    len: u64,
    /// The highest log number in the file; 0 when it holds none.
    last: u64,
}

impl LogFile {
    /// Appending starts again at the file's beginning. What it held is durably applied, so a
    /// replay skips it, and stops at the first frame that the new appends have cut.
    fn empty(&mut self) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.len = 0;
        self.last = 0;
        Ok(())
    }
}

struct Waiting {
    send: LoggedSend,
    answer: tokio::sync::oneshot::Sender<Result<(), QueueError>>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Waiting>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// The highest log number applied by a redb commit that is durable.
    durable: AtomicU64,
    /// An apply failed: later ones would record a number past sends that redb lacks, so none
    /// runs, every new send fails, and the next open replays them from the log.
    poisoned: AtomicBool,
    /// Frames written and flushed, and moves to the other file (for tests).
    #[cfg(test)]
    flushes: AtomicU64,
    #[cfg(test)]
    turns: AtomicU64,
}

/// The log and its thread. Dropping it writes and applies what waits, then stops the thread;
/// drop it before the redb writer it feeds.
pub(super) struct SendLog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn open_file(path: &Path) -> Result<File, QueueError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_err(&format!("opening {}", path.display()), e))
}

/// What the files hold above `applied`, in log order, and the highest number they hold.
pub(super) fn read_unapplied(
    dir: &Path,
    applied: u64,
) -> Result<(Vec<(u64, LoggedSend)>, u64), QueueError> {
    let mut all = Vec::new();
    let mut highest = applied;
    for name in FILE_NAMES {
        let mut bytes = Vec::new();
        match File::open(dir.join(name)) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(|e| io_err("reading the log", e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("opening the log", e)),
        }
        let (records, _) = frames(&bytes);
        for (seq, send) in records {
            highest = highest.max(seq);
            if seq > applied {
                all.push((seq, send));
            }
        }
    }
    all.sort_by_key(|(seq, _)| *seq);
    all.dedup_by_key(|(seq, _)| *seq);
    Ok((all, highest))
}

impl SendLog {
    /// Opens the log in `dir`, appending from the start of the first file: the caller has
    /// replayed what the files held
    /// (above `applied`, the number redb holds durably) and made that durable. `highest` is the
    /// last number used, so numbering goes on past it.
    pub(super) fn start(
        dir: &Path,
        highest: u64,
        applied: u64,
        apply: Apply,
        writer: Submitter,
    ) -> Result<Self, QueueError> {
        let mut files = Vec::new();
        for name in FILE_NAMES {
            let mut f = LogFile {
                file: open_file(&dir.join(name))?,
                len: 0,
                last: 0,
            };
            let size = f
                .file
                .metadata()
                .map_err(|e| io_err("reading the log's size", e))?
                .len();
            if size < SEGMENT_BYTES {
                f.file
                    .seek(SeekFrom::Start(size))
                    .and_then(|_| {
                        f.file
                            .write_all(&vec![0u8; (SEGMENT_BYTES - size) as usize])
                    })
                    .and_then(|()| f.file.sync_all())
                    .map_err(|e| io_err("allocating the log", e))?;
            }
            f.empty().map_err(|e| io_err("emptying the log", e))?;
            files.push(f);
        }
        let files: [LogFile; 2] = files.try_into().map_err(|_| ()).expect("two files");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            durable: AtomicU64::new(applied),
            poisoned: AtomicBool::new(false),
            #[cfg(test)]
            flushes: AtomicU64::new(0),
            #[cfg(test)]
            turns: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            let run = Appender {
                shared: shared.clone(),
                files,
                current: 0,
                next: highest + 1,
                apply,
                writer,
            };
            std::thread::Builder::new()
                .name("queue-log".into())
                .spawn(move || run.run())
                .map_err(|e| io_err("starting the log thread", e))?
        };
        Ok(SendLog {
            shared,
            thread: Some(thread),
        })
    }

    /// Logs one send and answers once it is on disk (and queued to be applied).
    pub(super) async fn append(&self, send: LoggedSend) -> Result<(), QueueError> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(QueueError::Backend(
                "embedded queue log: an earlier apply failed; reopen to replay".into(),
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut s = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.stop {
                return Err(QueueError::Backend("the embedded queue is closing".into()));
            }
            s.waiting.push(Waiting { send, answer: tx });
        }
        self.shared.wake.notify_one();
        rx.await
            .map_err(|_| QueueError::Backend("the embedded queue log stopped".into()))?
    }

    #[cfg(test)]
    pub(super) fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn turns(&self) -> u64 {
        self.shared.turns.load(Ordering::Relaxed)
    }
}

impl Drop for SendLog {
    fn drop(&mut self) {
        {
            let mut s = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            s.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The log thread's own state.
struct Appender {
    shared: Arc<Shared>,
    files: [LogFile; 2],
    current: usize,
    next: u64,
    apply: Apply,
    writer: Submitter,
}

impl Appender {
    fn run(mut self) {
        loop {
            let batch = {
                let mut s = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
                while s.waiting.is_empty() && !s.stop {
                    s = self.shared.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                if s.waiting.is_empty() {
                    return;
                }
                std::mem::take(&mut s.waiting)
            };
            self.take_turn();
            let (sends, answers): (Vec<LoggedSend>, Vec<_>) =
                batch.into_iter().map(|w| (w.send, w.answer)).unzip();
            let outcome = self.write(sends);
            match outcome {
                Ok(records) => {
                    self.queue_apply(records);
                    for a in answers {
                        let _ = a.send(Ok(()));
                    }
                }
                Err(e) => {
                    for a in answers {
                        let _ = a.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Moves appending to the other file once the current one is large and everything in the
    /// other is durably applied.
    fn take_turn(&mut self) {
        let other = 1 - self.current;
        if self.files[self.current].len < SEGMENT_BYTES
            || self.files[other].last > self.shared.durable.load(Ordering::Acquire)
        {
            return;
        }
        match self.files[other].empty() {
            Ok(()) => {
                self.current = other;
                #[cfg(test)]
                self.shared.turns.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "embedded queue log: emptying a file failed"),
        }
    }

    /// Numbers, frames, writes and flushes `sends`; on failure the next append starts where
    /// this one did, so no whole frame ever follows a torn one.
    fn write(&mut self, sends: Vec<LoggedSend>) -> Result<Vec<(u64, LoggedSend)>, QueueError> {
        let mut bytes = Vec::new();
        let mut records = Vec::with_capacity(sends.len());
        let mut seq = self.next;
        for send in sends {
            frame(seq, &send, &mut bytes)?;
            records.push((seq, send));
            seq += 1;
        }
        let file = &mut self.files[self.current];
        let written = file
            .file
            .write_all(&bytes)
            .and_then(|()| file.file.sync_data());
        if let Err(e) = written {
            tracing::error!(error = %e, "embedded queue log: append failed");
            // The next append overwrites what this one left; a replay stops at what is left
            // after it (a torn frame), never reading past it.
            let restored = file.file.seek(SeekFrom::Start(file.len)).map(|_| ());
            if let Err(e2) = restored {
                tracing::error!(error = %e2, "embedded queue log: cutting a failed append failed");
                self.shared.poisoned.store(true, Ordering::Release);
            }
            return Err(io_err("append", e));
        }
        file.len += bytes.len() as u64;
        file.last = seq - 1;
        self.next = seq;
        #[cfg(test)]
        self.shared.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(records)
    }

    /// Queues the redb write that applies `records`; once redb's flush after it has finished,
    /// their numbers count as durably applied.
    fn queue_apply(&self, records: Vec<(u64, LoggedSend)>) {
        let last = records.last().map(|(seq, _)| *seq).unwrap_or(0);
        let (apply, poisoned) = (self.apply.clone(), self.shared.clone());
        let shared = self.shared.clone();
        let queued = self.writer.write_detached(
            move |txn| {
                if poisoned.poisoned.load(Ordering::Acquire) {
                    return Err("an earlier apply failed".into());
                }
                apply(txn, &records).map_err(|e| e.to_string())
            },
            move |flushed| match flushed {
                Ok(()) => {
                    shared.durable.fetch_max(last, Ordering::AcqRel);
                }
                Err(e) => {
                    tracing::error!(error = %e, "embedded queue log: applying logged sends failed");
                    shared.poisoned.store(true, Ordering::Release);
                }
            },
        );
        if !queued {
            // The redb file is closing before the log: the next open replays these.
            self.shared.poisoned.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::queue::embedded::EmbeddedQueue;
    use crate::queue::{OutgoingMessage, Queue, QueueName, QueueSpec};

    fn work() -> QueueName {
        QueueName::parse("work").expect("valid name")
    }

    fn open(dir: &Path) -> EmbeddedQueue {
        EmbeddedQueue::open(
            dir,
            vec![QueueSpec::new(work(), 3, Duration::from_secs(30))],
        )
        .expect("open")
    }

    fn logged(body: &str) -> LoggedSend {
        LoggedSend {
            queue: "work".into(),
            at: crate::clock::now_millis(),
            messages: vec![LoggedMessage {
                message_id: format!("id-{body}"),
                body: body.into(),
                group_id: None,
                dedup_id: None,
            }],
        }
    }

    /// Frames as the log thread writes them.
    fn framed(records: &[(u64, LoggedSend)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (seq, send) in records {
            frame(*seq, send, &mut bytes).expect("frame");
        }
        bytes
    }

    async fn bodies(queue: &EmbeddedQueue) -> Vec<String> {
        let mut out: Vec<String> = queue
            .receive(&work(), 10, Duration::from_secs(30))
            .await
            .expect("receive")
            .into_iter()
            .map(|m| m.body)
            .collect();
        out.sort();
        out
    }

    /// A kill after the append's flush and before the writer applied it: the send was
    /// answered, so the next open must enqueue it, once, even if opened again.
    #[tokio::test]
    async fn a_logged_send_not_applied_is_applied_once_on_open_and_not_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(open(dir.path()));
        let records = vec![(1, logged("a")), (2, logged("b"))];
        std::fs::write(dir.path().join(FILE_NAMES[0]), framed(&records)).expect("write log");

        let queue = open(dir.path());
        assert_eq!(bodies(&queue).await, ["a", "b"]);
        drop(queue);
        // The same frames again (as if emptying the log had not reached the disk): applied
        // already, durably, so not enqueued a second time.
        std::fs::write(dir.path().join(FILE_NAMES[0]), framed(&records)).expect("write log");
        let queue = open(dir.path());
        assert_eq!(queue.depth(&work()).await.expect("depth"), 2);
        // Numbering goes on past the replayed sends: a new one is applied, not taken as old.
        queue
            .send_batch(&work(), vec![OutgoingMessage::new("c")])
            .await
            .expect("send");
        drop(queue);
        let queue = open(dir.path());
        assert_eq!(queue.depth(&work()).await.expect("depth"), 3);
    }

    /// A kill during an append leaves a torn frame at the end: its sender was never answered;
    /// the whole frames before it are applied, and sends after the reopen are kept.
    #[tokio::test]
    async fn a_torn_tail_ends_the_replay_and_later_sends_survive() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(open(dir.path()));
        let mut bytes = framed(&[(1, logged("a")), (2, logged("b"))]);
        let third = framed(&[(3, logged("c"))]);
        bytes.extend_from_slice(&third[..third.len() - 5]);
        std::fs::write(dir.path().join(FILE_NAMES[1]), &bytes).expect("write log");
        // A frame whose bytes were changed fails its checksum: not applied either.
        let mut flipped = framed(&[(4, logged("d"))]);
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(dir.path().join(FILE_NAMES[0]), &flipped).expect("write log");

        let queue = open(dir.path());
        assert_eq!(bodies(&queue).await, ["a", "b"]);
        queue
            .send_batch(&work(), vec![OutgoingMessage::new("e")])
            .await
            .expect("send");
        drop(queue);
        let queue = open(dir.path());
        assert_eq!(queue.depth(&work()).await.expect("depth"), 3);
        assert_eq!(bodies(&queue).await, ["e"], "a and b are in flight");
    }

    /// The point of the log: a send is answered while the redb writer is busy (a long batch,
    /// a flush), and a receive queued after the answer still sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_is_answered_while_the_redb_writer_is_busy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let queue = open(dir.path());
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (started, writer_busy) = std::sync::mpsc::channel::<()>();
        assert!(queue.writer_for_tests().write_detached(
            move |_| {
                let _ = started.send(());
                let _ = held.recv_timeout(Duration::from_secs(10));
                Ok(())
            },
            |_| {}
        ));
        writer_busy
            .recv_timeout(Duration::from_secs(5))
            .expect("the writer runs the holding write");
        let sent = tokio::time::timeout(
            Duration::from_secs(3),
            queue.send_batch(&work(), vec![OutgoingMessage::new("x")]),
        )
        .await;
        assert!(
            matches!(sent, Ok(Ok(()))),
            "the send waited for the redb writer: {sent:?}"
        );
        hold.send(()).expect("release the writer");
        assert_eq!(bodies(&queue).await, ["x"]);
    }

    /// Set in the child process of `acknowledged_sends_survive_a_kill`: the data directory.
    const KILL_CHILD_DIR: &str = "WAPPLINE_QUEUE_LOG_KILL_CHILD";

    /// The child of `acknowledged_sends_survive_a_kill` (returns at once in any other process):
    /// eight senders at once, each acknowledged send printed as it is answered, until killed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_child_sends_until_killed() {
        let Ok(dir) = std::env::var(KILL_CHILD_DIR) else {
            return;
        };
        let queue = open(Path::new(&dir));
        let mut senders = tokio::task::JoinSet::new();
        for c in 0..8 {
            let queue = queue.clone();
            senders.spawn(async move {
                for i in 0.. {
                    let body = format!("{c}-{i}");
                    queue
                        .send_batch(&work(), vec![OutgoingMessage::new(body.clone())])
                        .await
                        .expect("send");
                    println!("acked {body}");
                }
            });
        }
        while senders.join_next().await.is_some() {}
    }

    /// The promise, with a real kill: a process sends from eight tasks and is killed (SIGKILL)
    /// at an arbitrary point; every send it had acknowledged is in the queue once reopened, and
    /// no message is there twice.
    #[tokio::test]
    async fn acknowledged_sends_survive_a_kill() {
        use std::collections::HashSet;
        let dir = tempfile::tempdir().expect("temp dir");
        let acked = crate::kill_child::acknowledged_before_a_kill(
            "queue::embedded_log::tests::kill_child_sends_until_killed",
            (KILL_CHILD_DIR, dir.path().as_os_str()),
            500,
        );

        let queue = open(dir.path());
        let mut seen = HashSet::new();
        loop {
            let got = queue
                .receive(&work(), 10, Duration::from_secs(300))
                .await
                .expect("receive");
            if got.is_empty() {
                break;
            }
            for m in got {
                assert!(seen.insert(m.body.clone()), "{} enqueued twice", m.body);
            }
        }
        let lost: Vec<&String> = acked.iter().filter(|b| !seen.contains(*b)).collect();
        assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    }

    /// The log does not grow without bound under steady load: once a file is large and the
    /// other is durably applied, appending moves over and starts the other again.
    #[tokio::test]
    async fn the_two_files_take_turns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let queue = open(dir.path());
        let body = "x".repeat(200 * 1024);
        let sizes = || FILE_NAMES.map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len());
        for _ in 0..60 {
            queue
                .send_batch(&work(), vec![OutgoingMessage::new(body.clone())])
                .await
                .expect("send");
            // A receive waits for a redb flush after the sends' apply: durably applied.
            let got = queue.receive(&work(), 10, Duration::from_secs(30)).await;
            let receipts: Vec<String> = got
                .expect("receive")
                .into_iter()
                .map(|m| m.receipt)
                .collect();
            for r in queue.ack_batch(&work(), &receipts).await {
                r.expect("ack");
            }
            let [a, b] = sizes();
            assert!(
                a + b <= 2 * SEGMENT_BYTES + 2 * 1024 * 1024,
                "log grew to {a} + {b}"
            );
        }
        // 60 frames of 200 KiB fill a file of 1 MiB a dozen times.
        let (flushes, turns) = queue.log_counts_for_tests();
        assert!(flushes >= 60, "{flushes} log flushes");
        assert!(turns >= 4, "appending moved {turns} times");
    }
}
