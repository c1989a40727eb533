//! Group commit for the embedded redb files (decision 0054): many writers' transactions made
//! durable by one fsync.
//!
//! Each write runs in its own redb write transaction (redb serialises them, so conditions and
//! writes stay atomic) and commits with `Durability::None`: visible to later transactions, not
//! yet on disk. The writer then waits for the next durable flush, an empty
//! `Durability::Immediate` commit that the file's writer thread runs after each batch of
//! writes it ran (decision 0059; a separate flusher thread before). redb's durable commit persists
//! every non-durable commit before it, so one fsync covers everything committed while the
//! previous one ran. A writer is answered only after the flush that started after its commit
//! has finished: an acknowledged write survives a kill exactly as with one fsync per write.
//! A kill before that flush loses the write atomically, and its caller was never answered.
//!
//! Readers may see a commit that is not durable yet. Its writer has not been answered, and any
//! write that depends on what such a reader saw commits after it, so the flush that makes the
//! dependent write durable makes it durable too.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};

/// What a committed write does once the flush after it has finished (or failed).
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One write: runs its transaction on the writer thread; if it committed, how to answer it.
type Job = Box<dyn FnOnce(&Database) -> Option<Answer> + Send>;

#[derive(Default)]
struct Jobs {
    waiting: Vec<Job>,
    stop: bool,
}

struct Shared {
    jobs: Mutex<Jobs>,
    wake: Condvar,
    /// Durable flushes finished (for tests and diagnostics).
    flushes: AtomicU64,
}

/// One redb database with its writer thread; dropping it runs and flushes what waits and
/// stops the thread, so the file can be opened again at once (the crash/restart tests reopen
/// it).
///
/// One thread runs every write transaction of the file, one after the other, then one
/// durable flush for all that it ran (decision 0059). redb serialises writers anyway (one
/// write lock, held through a durable commit's fsync); a thread of the blocking pool per
/// write, as before, only added a hand-off per write, contention on that lock, and a flusher
/// thread whose every flush woke every waiting writer. While it flushes, new writes queue up
/// and form the next batch: the batch size adapts by itself, as before.
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

fn flush(db: &Database) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())
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
        // Each write in its own transaction, committed without an fsync; answered only after
        // the flush below, which starts after every one of these commits.
        let answers: Vec<Answer> = jobs.into_iter().filter_map(|job| job(&db)).collect();
        if answers.is_empty() {
            continue;
        }
        let flushed = flush(&db);
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "embedded database: durable flush failed");
        }
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        for answer in answers {
            answer(flushed.clone());
        }
    }
}

impl GroupCommit {
    pub(crate) fn new(db: Database) -> Self {
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Jobs::default()),
            wake: Condvar::new(),
            flushes: AtomicU64::new(0),
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

    /// The database, for reads (which see committed writes, durable or about to be).
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// Durable flushes so far.
    #[cfg(test)]
    pub(crate) fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Runs `f` in one write transaction on the writer thread and commits it if `f` returns
    /// Ok (an error drops the transaction: all or nothing, answered at once), then answers
    /// once that commit is durable. `backend` turns a database failure into the caller's
    /// error type.
    pub(crate) async fn write<T, E, F>(&self, backend: fn(CommitFailure) -> E, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |db: &Database| {
            let fail = |e: String| backend(CommitFailure(e));
            let run = || {
                let mut txn = db.begin_write().map_err(|e| fail(e.to_string()))?;
                txn.set_durability(Durability::None)
                    .map_err(|e| fail(e.to_string()))?;
                let out = f(&txn)?;
                txn.commit().map_err(|e| fail(e.to_string()))?;
                Ok(out)
            };
            // A panicking closure fails its own write, not the thread every write runs on.
            match std::panic::catch_unwind(AssertUnwindSafe(run)) {
                Ok(Ok(out)) => Some(Box::new(move |flushed: Result<(), String>| {
                    let _ = tx.send(match flushed {
                        Ok(()) => Ok(out),
                        Err(e) => Err(backend(CommitFailure(format!("durable flush failed: {e}")))),
                    });
                }) as Answer),
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e));
                    None
                }
                Err(_) => {
                    let _ = tx.send(Err(backend(CommitFailure("the write panicked".into()))));
                    None
                }
            }
        });
        {
            let mut j = self.shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if j.stop {
                return Err(backend(CommitFailure("the database is closing".into())));
            }
            j.waiting.push(job);
        }
        self.shared.wake.notify_one();
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

    /// Queues `f` as one write transaction, committed if it returns Ok and made durable by
    /// the writer's next flush, after which `then` hears the flush's outcome. Nobody waits
    /// for it. `then` hears an error at once if `f` failed or panicked (nothing committed),
    /// and this returns false, running nothing, if the database is closing.
    pub(crate) fn write_detached<F, A>(&self, f: F, then: A) -> bool
    where
        F: FnOnce(&WriteTransaction) -> Result<(), String> + Send + 'static,
        A: FnOnce(Result<(), String>) + Send + 'static,
    {
        self.push(Box::new(move |db: &Database| {
            let run = || {
                let mut txn = db.begin_write().map_err(|e| e.to_string())?;
                txn.set_durability(Durability::None)
                    .map_err(|e| e.to_string())?;
                f(&txn)?;
                txn.commit().map_err(|e| e.to_string())
            };
            match std::panic::catch_unwind(AssertUnwindSafe(run)) {
                Ok(Ok(())) => Some(Box::new(then) as Answer),
                Ok(Err(e)) => {
                    then(Err(e));
                    None
                }
                Err(_) => {
                    then(Err("the write panicked".into()));
                    None
                }
            }
        }))
    }
}

impl GroupCommit {
    /// A handle for queueing writes from a thread that cannot wait for them.
    pub(crate) fn submitter(&self) -> Submitter {
        Submitter {
            shared: self.shared.clone(),
        }
    }

    /// Runs `f` on the writer thread, in order with the writes queued before it, and answers
    /// at once (no commit, no flush). A read that must see every write queued before it was
    /// called, including the send log's writes (decision 0090), which are answered to their
    /// caller before the writer has run them.
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
        let job: Job = Box::new(move |db: &Database| {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(db)))
                .unwrap_or_else(|_| Err(backend(CommitFailure("the read panicked".into()))));
            let _ = tx.send(out);
            None
        });
        if !self.submitter().push(job) {
            return Err(backend(CommitFailure("the database is closing".into())));
        }
        rx.await
            .map_err(|_| backend(CommitFailure("the writer thread stopped".into())))?
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
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes_and_are_answered_after_one() {
        let dir = tempfile::tempdir().unwrap();
        let gc = Arc::new(GroupCommit::new(
            Database::create(dir.path().join("t.redb")).unwrap(),
        ));
        let writers = 64u64;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..writers {
            let gc = gc.clone();
            tasks.spawn(async move {
                gc.write(
                    |CommitFailure(e)| e,
                    move |txn| {
                        txn.open_table(T)
                            .map_err(|e| e.to_string())?
                            .insert(i, i)
                            .map_err(|e| e.to_string())?;
                        Ok(())
                    },
                )
                .await
                .unwrap();
                // Answered: a flush that started after this commit has finished.
                gc.flushes()
            });
        }
        let mut answered_at = Vec::new();
        while let Some(generation) = tasks.join_next().await {
            answered_at.push(generation.unwrap());
        }
        assert!(answered_at.iter().all(|g| *g >= 1));
        let flushes = gc.flushes();
        assert!(
            flushes < writers,
            "{flushes} flushes for {writers} concurrent writers: no grouping"
        );
        // A failed closure commits nothing and costs no flush.
        let failed: Result<(), String> = gc
            .write(
                |CommitFailure(e)| e,
                |txn| {
                    txn.open_table(T)
                        .map_err(|e| e.to_string())?
                        .insert(1000, 1)
                        .map_err(|e| e.to_string())?;
                    Err("refused".to_string())
                },
            )
            .await;
        assert_eq!(failed, Err("refused".to_string()));
        assert_eq!(gc.flushes(), flushes);
        // Dropping flushes and closes: the file opens again with every answered write.
        drop(Arc::into_inner(gc).expect("sole owner"));
        let db = Database::open(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        assert_eq!(t.len().unwrap(), writers);
        assert!(t.get(1000).unwrap().is_none());
    }
}
