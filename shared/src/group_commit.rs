//! Group commit for the embedded redb files (decisions 0054, 0059, 0092): many writers' writes
//! made durable by one commit and one fsync.
//!
//! The file's writer thread takes every write waiting when it is free (a batch) and runs them
//! one after the other inside ONE redb write transaction, then commits that transaction
//! durably (`Durability::Immediate`) and only then answers them. Each B-tree page a batch
//! touches is copied and written once per batch, not once per write, and redb's per-commit
//! work (allocator state, checksums, header) is done once (decision 0092; before it, one
//! transaction per write committed with `Durability::None`, then one empty durable commit).
//! A writer is answered only after the commit that holds its write is durable: an
//! acknowledged write survives a kill exactly as with one fsync per write. A kill before that
//! commit loses the whole batch atomically, and none of its writers was answered. A failed
//! commit fails every write of the batch.
//!
//! Each write stays all or nothing, and isolated from the others of its batch: a write whose
//! closure returns an error or panics may already have written in the shared transaction,
//! and redb offers no savepoint once a transaction has opened a table. So the writer aborts
//! the transaction, begins another, and runs again, in order, the writes of the batch that
//! succeeded before the failed one; the failed one is not run again. It is answered with its
//! error after the batch's commit, like the others: whatever made it fail (a condition on
//! what the writes before it wrote, a quota counted by them) is then visible to what its
//! caller reads next, as it was when each write committed on its own. That is why a write's
//! closure is `Fn`: it may run more than once, always against the state it would have seen
//! the first time (the writes before it in the batch, in the same order), and only its last
//! run's result is answered. A closure has no effect outside its transaction that matters if
//! it is repeated. Failures are rare on the hot path (a failed condition); a failure as the
//! first write since the transaction began costs only the abort. Two things keep the runs
//! again bounded: a failure its caller declared to write nothing (a receive that found
//! nothing to take, which an idle consumer's poll is) rolls nothing back
//! ([`GroupCommit::write_declining`]), and a batch's transaction is committed without an
//! fsync every [`MAX_SEGMENT_WRITES`] writes, so a failure runs again at most that many.
//!
//! A write sees the writes before it in its batch (same transaction). Readers outside the
//! writer thread see a batch once it commits, which is when it is durable; a read that must
//! see every write queued before it runs on the writer thread ([`GroupCommit::read_in_order`]),
//! which commits what the batch wrote so far (`Durability::None`, made durable by the batch's
//! last commit, which persists every commit before it) before running the read.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};

/// How one run of a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// It succeeded: its writes stay in the transaction, its result is kept (replacing that
    /// of an earlier run).
    Kept,
    /// It failed or panicked: it keeps its failure to answer, is not run again, and the
    /// transaction may hold part of its writes (so the batch's transaction is rolled back).
    Failed,
    /// It failed with an error its caller declared to mean "wrote nothing" (an empty
    /// receive): answered like a failure, with nothing to roll back.
    Declined,
}

/// Most writes a segment runs before it is committed (without an fsync) and a new one
/// begins: a failed write makes the writer run again only the writes of its segment, so a
/// burst of failures in a large batch costs at most this many runs again per failure, not
/// the whole batch's.
const MAX_SEGMENT_WRITES: usize = 32;

/// One write of a batch, run against the batch's transaction, perhaps more than once (see the
/// module's documentation).
trait BatchWrite: Send {
    /// Runs the write in `txn`.
    fn run(&mut self, txn: &WriteTransaction) -> Ran;
    /// Answers the caller once the batch's commit has finished (or failed): a failed write
    /// with its own failure, a kept one with the commit's outcome.
    fn answer(self: Box<Self>, committed: Result<(), String>);
}

/// What the writer thread does for one caller.
enum Job {
    Write(Box<dyn BatchWrite>),
    /// A read run on the writer thread, after every write queued before it is committed.
    Read(Box<dyn FnOnce(&Database) + Send>),
}

#[derive(Default)]
struct Jobs {
    waiting: Vec<Job>,
    stop: bool,
}

struct Shared {
    jobs: Mutex<Jobs>,
    wake: Condvar,
    /// Durable commits finished (for tests and diagnostics).
    flushes: AtomicU64,
    /// Transactions aborted because a write failed after a write before it in its batch
    /// succeeded, or itself might have written (for tests and diagnostics).
    rollbacks: AtomicU64,
}

/// One redb database with its writer thread; dropping it runs and commits what waits and
/// stops the thread, so the file can be opened again at once (the crash/restart tests reopen
/// it).
///
/// One thread runs every write of the file (decision 0059). redb serialises writers anyway
/// (one write lock, held through a durable commit's fsync); a thread of the blocking pool per
/// write, as before, only added a hand-off per write and contention on that lock. While it
/// commits, new writes queue up and form the next batch: the batch size adapts by itself.
pub(crate) struct GroupCommit {
    db: Arc<Database>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

/// Why a group-committed write failed before its closure's own error type could say it.
#[derive(Debug)]
pub(crate) struct CommitFailure(pub String);

fn begin(db: &Database) -> Result<WriteTransaction, String> {
    db.begin_write()
        .map_err(|e| format!("beginning a write transaction: {e}"))
}

fn commit(mut txn: WriteTransaction, durability: Durability) -> Result<(), String> {
    txn.set_durability(durability)
        .map_err(|e| format!("commit failed: {e}"))?;
    txn.commit().map_err(|e| format!("commit failed: {e}"))
}

/// The writes of a batch since its transaction began (or since a read committed them).
struct Segment<'a> {
    db: &'a Database,
    shared: &'a Shared,
    txn: Option<WriteTransaction>,
    /// The writes that succeeded in `txn`, in order.
    done: Vec<Box<dyn BatchWrite>>,
    /// The writes that failed, answered after the commit.
    failed: Vec<Box<dyn BatchWrite>>,
}

impl<'a> Segment<'a> {
    fn new(db: &'a Database, shared: &'a Shared) -> Self {
        Segment {
            db,
            shared,
            txn: None,
            done: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Runs `write` after the segment's writes; keeps it if it succeeded, else leaves the
    /// transaction as if it had never run.
    fn run(&mut self, mut write: Box<dyn BatchWrite>) {
        if self.txn.is_none() {
            match begin(self.db) {
                Ok(txn) => self.txn = Some(txn),
                Err(e) => return write.answer(Err(e)),
            }
        }
        let txn = self.txn.as_ref().expect("begun above");
        match write.run(txn) {
            Ran::Kept => self.done.push(write),
            Ran::Declined => self.failed.push(write),
            Ran::Failed => {
                self.failed.push(write);
                self.roll_back();
            }
        }
    }

    /// Aborts the transaction, whatever a failed write left in it, and runs again in a new
    /// one the writes that had succeeded (any of which that fails now is dropped in turn).
    fn roll_back(&mut self) {
        if let Some(txn) = self.txn.take() {
            if let Err(e) = txn.abort() {
                tracing::warn!(error = %e, "embedded database: aborting a batch's transaction failed");
            }
        }
        if self.done.is_empty() {
            return;
        }
        self.shared.rollbacks.fetch_add(1, Ordering::Relaxed);
        for write in std::mem::take(&mut self.done) {
            self.run(write);
        }
    }

    /// Commits the segment's transaction; returns its writes to be answered with the outcome
    /// of the batch's durable commit (or, if this commit failed, with that failure), and
    /// those that failed.
    fn commit(mut self, durability: Durability) -> Committed {
        let done = std::mem::take(&mut self.done);
        let outcome = match self.txn.take() {
            Some(txn) if !done.is_empty() => commit(txn, durability),
            Some(txn) => txn.abort().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        Committed {
            done,
            failed: std::mem::take(&mut self.failed),
            outcome,
        }
    }
}

/// What a segment's commit leaves to answer.
struct Committed {
    done: Vec<Box<dyn BatchWrite>>,
    failed: Vec<Box<dyn BatchWrite>>,
    outcome: Result<(), String>,
}

/// Commits `segment` without an fsync (the batch's last commit makes it durable): its writes
/// join `committed`, to be answered with that last commit, or, if this commit failed, `failed`.
fn end_segment(
    segment: Segment<'_>,
    committed: &mut Vec<Box<dyn BatchWrite>>,
    failed: &mut Vec<Box<dyn BatchWrite>>,
) {
    let mut ended = segment.commit(Durability::None);
    failed.append(&mut ended.failed);
    match ended.outcome {
        Ok(()) => committed.append(&mut ended.done),
        Err(e) => {
            tracing::error!(error = %e, "embedded database: commit failed");
            failed.extend(ended.done.into_iter().map(|w| Failed::boxed(w, e.clone())));
        }
    }
}

/// Runs one batch: every write in one transaction (split where a read must see the writes
/// before it, and every [`MAX_SEGMENT_WRITES`] writes), the last commit durable, then the
/// answers.
fn run_batch(db: &Database, shared: &Shared, jobs: Vec<Job>) {
    // Writes committed without an fsync before a read, answered with the durable commit.
    let mut committed: Vec<Box<dyn BatchWrite>> = Vec::new();
    let mut failed: Vec<Box<dyn BatchWrite>> = Vec::new();
    let mut segment = Segment::new(db, shared);
    for job in jobs {
        match job {
            Job::Write(write) => {
                if segment.done.len() >= MAX_SEGMENT_WRITES {
                    end_segment(segment, &mut committed, &mut failed);
                    segment = Segment::new(db, shared);
                }
                segment.run(write)
            }
            Job::Read(read) => {
                end_segment(segment, &mut committed, &mut failed);
                read(db);
                segment = Segment::new(db, shared);
            }
        }
    }
    let mut last = segment.commit(Durability::Immediate);
    failed.append(&mut last.failed);
    let mut outcome = last.outcome;
    if outcome.is_ok() && last.done.is_empty() && !committed.is_empty() {
        // The writes before the last read are committed but not durable yet.
        outcome = begin(db).and_then(|txn| commit(txn, Durability::Immediate));
    }
    committed.append(&mut last.done);
    if !committed.is_empty() {
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "embedded database: durable commit failed");
        }
        shared.flushes.fetch_add(1, Ordering::Relaxed);
    }
    for write in committed {
        write.answer(outcome.clone());
    }
    for write in failed {
        write.answer(Ok(()));
    }
}

/// A write whose own commit failed, answered with that failure whatever comes after.
struct Failed {
    write: Box<dyn BatchWrite>,
    failure: String,
}

impl Failed {
    fn boxed(write: Box<dyn BatchWrite>, failure: String) -> Box<dyn BatchWrite> {
        Box::new(Failed { write, failure })
    }
}

impl BatchWrite for Failed {
    fn run(&mut self, _: &WriteTransaction) -> Ran {
        Ran::Failed
    }

    fn answer(self: Box<Self>, _: Result<(), String>) {
        self.write.answer(Err(self.failure));
    }
}

fn run_writer(db: Arc<Database>, shared: Arc<Shared>) {
    loop {
        let jobs = {
            let mut j = shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
            while j.waiting.is_empty() && !j.stop {
                j = shared.wake.wait(j).unwrap_or_else(|p| p.into_inner());
            }
            if j.waiting.is_empty() {
                // Stopping, and nothing waits.
                return;
            }
            std::mem::take(&mut j.waiting)
        };
        run_batch(&db, &shared, jobs);
    }
}

/// A write whose caller awaits its answer ([`GroupCommit::write`]).
struct AwaitedWrite<F, T, E> {
    f: F,
    backend: fn(CommitFailure) -> E,
    /// Whether a failure of `f` means it wrote nothing ([`Ran::Declined`]).
    declined: fn(&E) -> bool,
    /// The last run's result, answered once the commit holding it is durable.
    out: Option<T>,
    /// Its failure, answered after the batch's commit.
    failure: Option<E>,
    reply: Option<tokio::sync::oneshot::Sender<Result<T, E>>>,
}

impl<F, T, E> AwaitedWrite<F, T, E> {
    fn reply(&mut self, answer: Result<T, E>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(answer);
        }
    }
}

impl<F, T, E> BatchWrite for AwaitedWrite<F, T, E>
where
    F: Fn(&WriteTransaction) -> Result<T, E> + Send,
    T: Send,
    E: Send,
{
    fn run(&mut self, txn: &WriteTransaction) -> Ran {
        // A panicking closure fails its own write, not the thread every write runs on.
        match std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(txn))) {
            Ok(Ok(out)) => {
                self.out = Some(out);
                Ran::Kept
            }
            Ok(Err(e)) => {
                let ran = if (self.declined)(&e) {
                    Ran::Declined
                } else {
                    Ran::Failed
                };
                self.failure = Some(e);
                ran
            }
            Err(_) => {
                self.failure = Some((self.backend)(CommitFailure("the write panicked".into())));
                Ran::Failed
            }
        }
    }

    fn answer(mut self: Box<Self>, committed: Result<(), String>) {
        let answer = match (committed, self.out.take()) {
            _ if self.failure.is_some() => Err(self.failure.take().expect("checked")),
            (Ok(()), Some(out)) => Ok(out),
            (Err(e), _) => Err((self.backend)(CommitFailure(e))),
            (Ok(()), None) => Err((self.backend)(CommitFailure("the write never ran".into()))),
        };
        self.reply(answer);
    }
}

/// A write nobody awaits ([`Submitter::write_detached`]).
struct DetachedWrite<F, A> {
    f: F,
    /// Its failure, heard after the batch's commit.
    failure: Option<String>,
    then: Option<A>,
}

impl<F, A> DetachedWrite<F, A>
where
    A: FnOnce(Result<(), String>),
{
    fn then(&mut self, outcome: Result<(), String>) {
        if let Some(then) = self.then.take() {
            then(outcome);
        }
    }
}

impl<F, A> BatchWrite for DetachedWrite<F, A>
where
    F: Fn(&WriteTransaction) -> Result<(), String> + Send,
    A: FnOnce(Result<(), String>) + Send,
{
    fn run(&mut self, txn: &WriteTransaction) -> Ran {
        match std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(txn))) {
            Ok(Ok(())) => Ran::Kept,
            Ok(Err(e)) => {
                self.failure = Some(e);
                Ran::Failed
            }
            Err(_) => {
                self.failure = Some("the write panicked".into());
                Ran::Failed
            }
        }
    }

    fn answer(mut self: Box<Self>, committed: Result<(), String>) {
        let outcome = match self.failure.take() {
            Some(failure) => Err(failure),
            None => committed,
        };
        self.then(outcome);
    }
}

impl GroupCommit {
    pub(crate) fn new(db: Database) -> Self {
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Jobs::default()),
            wake: Condvar::new(),
            flushes: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
        });
        let writer = {
            let (db, shared) = (db.clone(), shared.clone());
            std::thread::Builder::new()
                .name("redb-writer".into())
                .spawn(move || run_writer(db, shared))
                .expect("spawning the embedded database's writer thread")
        };
        GroupCommit {
            db,
            shared,
            writer: Some(writer),
        }
    }

    /// The database, for reads (which see committed batches, which are durable).
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// Durable commits so far.
    #[cfg(test)]
    pub(crate) fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Batch transactions aborted and run again without a failed write.
    #[cfg(test)]
    pub(crate) fn rollbacks(&self) -> u64 {
        self.shared.rollbacks.load(Ordering::Relaxed)
    }

    /// Runs `f` on the writer thread in the transaction of its batch; keeps its writes if it
    /// returns Ok (an error or a panic leaves nothing of them), and answers once the batch's
    /// commit is durable (a failure, once the batch has committed). `f` may run more than once (see the module's
    /// documentation); the last run's result is answered. `backend` turns a database failure
    /// into the caller's error type.
    pub(crate) async fn write<T, E, F>(&self, backend: fn(CommitFailure) -> E, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        self.write_declining(backend, |_| false, f).await
    }

    /// [`GroupCommit::write`], where an error for which `declined` is true promises that `f`
    /// wrote nothing before returning it (such as a receive that found nothing to take): it
    /// is answered as a failure, but the batch's transaction is not rolled back for it, so
    /// the writes before it in the batch are not run again.
    pub(crate) async fn write_declining<T, E, F>(
        &self,
        backend: fn(CommitFailure) -> E,
        declined: fn(&E) -> bool,
        f: F,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let write = AwaitedWrite {
            f,
            backend,
            declined,
            out: None,
            failure: None,
            reply: Some(tx),
        };
        self.submit(Job::Write(Box::new(write)), rx, backend).await
    }

    /// Queues `job` on the writer thread and waits for the answer it sends on `rx`.
    async fn submit<T, E>(
        &self,
        job: Job,
        rx: tokio::sync::oneshot::Receiver<Result<T, E>>,
        backend: fn(CommitFailure) -> E,
    ) -> Result<T, E> {
        if !self.submitter().push(job) {
            return Err(backend(CommitFailure("the database is closing".into())));
        }
        rx.await
            .map_err(|_| backend(CommitFailure("the writer thread stopped".into())))?
    }
}

/// A handle that queues work on a file's writer thread without waiting for it: the embedded
/// queue's send log (decision 0090) hands its logged sends to the writer from its own thread.
#[derive(Clone)]
pub(crate) struct Submitter {
    shared: Arc<Shared>,
}

impl Submitter {
    fn push(&self, job: Job) -> bool {
        {
            let mut j = self.shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if j.stop {
                return false;
            }
            j.waiting.push(job);
        }
        self.shared.wake.notify_one();
        true
    }

    /// Queues `f` as a write of the writer's next batch, kept if it returns Ok, after which
    /// `then` hears the outcome of the durable commit that holds it. Nobody waits for it.
    /// `then` hears an error, after the batch's commit, if `f` failed or panicked (nothing of
    /// it committed), and
    /// this returns false, running nothing, if the database is closing. `f` may run more than
    /// once, as for [`GroupCommit::write`].
    pub(crate) fn write_detached<F, A>(&self, f: F, then: A) -> bool
    where
        F: Fn(&WriteTransaction) -> Result<(), String> + Send + 'static,
        A: FnOnce(Result<(), String>) + Send + 'static,
    {
        self.push(Job::Write(Box::new(DetachedWrite {
            f,
            failure: None,
            then: Some(then),
        })))
    }
}

impl GroupCommit {
    /// A handle for queueing writes from a thread that cannot wait for them.
    pub(crate) fn submitter(&self) -> Submitter {
        Submitter {
            shared: self.shared.clone(),
        }
    }

    /// Runs `f` on the writer thread, after every write queued before it has committed (not
    /// necessarily durably yet), and answers at once. A read that must see every write queued
    /// before it was called, including the send log's writes (decision 0090), which are
    /// answered to their caller before the writer has run them.
    pub(crate) async fn read_in_order<T, E, F>(
        &self,
        backend: fn(CommitFailure) -> E,
        f: F,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Database) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let read = Box::new(move |db: &Database| {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(db)))
                .unwrap_or_else(|_| Err(backend(CommitFailure("the read panicked".into()))));
            let _ = tx.send(out);
        });
        self.submit(Job::Read(read), rx, backend).await
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        {
            let mut j = self.shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
            j.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.writer.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
