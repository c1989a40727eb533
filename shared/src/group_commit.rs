//! Group commit for the embedded redb files (decision 0054): many writers' transactions made
//! durable by one fsync.
//!
//! Each write runs in its own redb write transaction (redb serialises them, so conditions and
//! writes stay atomic) and commits with `Durability::None`: visible to later transactions, not
//! yet on disk. The writer then waits for the next durable flush, which one thread runs as an
//! empty `Durability::Immediate` commit whenever writers wait. redb's durable commit persists
//! every non-durable commit before it, so one fsync covers everything committed while the
//! previous one ran. A writer is answered only after the flush that started after its commit
//! has finished: an acknowledged write survives a kill exactly as with one fsync per write.
//! A kill before that flush loses the write atomically, and its caller was never answered.
//!
//! Readers may see a commit that is not durable yet. Its writer has not been answered, and any
//! write that depends on what such a reader saw commits after it, so the flush that makes the
//! dependent write durable makes it durable too.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::watch;

/// The outcome of the latest durable flush.
#[derive(Clone, Debug, Default)]
struct Flushed {
    /// Flushes finished so far (the generation of the latest).
    generation: u64,
    /// Why the latest flush failed, if it did.
    error: Option<String>,
}

#[derive(Default)]
struct Requests {
    /// Flushes started so far.
    started: u64,
    /// The highest flush generation a writer waits for.
    wanted: u64,
    stop: bool,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    flushed: watch::Sender<Flushed>,
}

impl Shared {
    /// Registers a writer whose transaction has just committed: it needs the next flush to
    /// start, since only a flush that begins after its commit is sure to include it.
    fn request(&self) -> u64 {
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let target = r.started + 1;
        r.wanted = r.wanted.max(target);
        self.wake.notify_one();
        target
    }
}

/// One redb database with its flusher thread; dropping it flushes what waits and stops the
/// thread, so the file can be opened again at once (the crash/restart tests reopen it).
pub(crate) struct GroupCommit {
    db: Arc<Database>,
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
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

fn run_flusher(db: Arc<Database>, shared: Arc<Shared>) {
    // Each pass: wait for a writer, then one durable commit for everyone committed so far.
    loop {
        let generation = {
            let mut r = shared.requests.lock().unwrap_or_else(|p| p.into_inner());
            while r.wanted <= r.started && !r.stop {
                r = shared.wake.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            if r.wanted <= r.started {
                // Stopping, and nobody waits.
                return;
            }
            r.started += 1;
            r.started
        };
        let error = flush(&db).err();
        if let Some(e) = &error {
            tracing::error!(error = %e, "embedded database: durable flush failed");
        }
        shared.flushed.send_replace(Flushed { generation, error });
    }
}

impl GroupCommit {
    pub(crate) fn new(db: Database) -> Self {
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            flushed: watch::Sender::new(Flushed::default()),
        });
        let flusher = {
            let (db, shared) = (db.clone(), shared.clone());
            std::thread::Builder::new()
                .name("redb-flush".into())
                .spawn(move || run_flusher(db, shared))
                .expect("spawning the embedded database's flush thread")
        };
        GroupCommit {
            db,
            shared,
            flusher: Some(flusher),
        }
    }

    /// The database, for reads (which see committed writes, durable or about to be).
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// Runs `f` in one write transaction on a blocking thread and commits it if `f` returns Ok
    /// (an error drops the transaction: all or nothing), then waits until that commit is
    /// durable. `backend` turns a database failure into the caller's error type.
    pub(crate) async fn write<T, E, F>(&self, backend: fn(CommitFailure) -> E, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let db = self.db.clone();
        let shared = self.shared.clone();
        let mut flushed = self.shared.flushed.subscribe();
        let (out, target) = tokio::task::spawn_blocking(move || {
            let fail = |e: String| backend(CommitFailure(e));
            let mut txn = db.begin_write().map_err(|e| fail(e.to_string()))?;
            txn.set_durability(Durability::None)
                .map_err(|e| fail(e.to_string()))?;
            let out = f(&txn)?;
            txn.commit().map_err(|e| fail(e.to_string()))?;
            Ok::<_, E>((out, shared.request()))
        })
        .await
        .map_err(|e| backend(CommitFailure(format!("database task failed: {e}"))))??;
        let done = flushed
            .wait_for(|f| f.generation >= target)
            .await
            .map_err(|_| backend(CommitFailure("the flush thread stopped".into())))?;
        match &done.error {
            None => Ok(out),
            Some(e) => Err(backend(CommitFailure(format!("durable flush failed: {e}")))),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        {
            let mut r = self
                .shared
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            r.stop = true;
            self.shared.wake.notify_one();
        }
        if let Some(t) = self.flusher.take() {
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
                gc.shared.flushed.borrow().generation
            });
        }
        let mut answered_at = Vec::new();
        while let Some(generation) = tasks.join_next().await {
            answered_at.push(generation.unwrap());
        }
        assert!(answered_at.iter().all(|g| *g >= 1));
        let flushes = gc.shared.flushed.borrow().generation;
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
        assert_eq!(gc.shared.flushed.borrow().generation, flushes);
        // Dropping flushes and closes: the file opens again with every answered write.
        drop(Arc::into_inner(gc).expect("sole owner"));
        let db = Database::open(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        assert_eq!(t.len().unwrap(), writers);
        assert!(t.get(1000).unwrap().is_none());
    }
}
