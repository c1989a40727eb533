use std::future::Future;
use std::path::Path;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use super::*;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

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
            // Answered: the durable commit holding this write has finished.
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
        "{flushes} durable commits for {writers} concurrent writers: no grouping"
    );
    // A failed closure commits nothing and costs no durable commit.
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
    // Dropping commits and closes: the file opens again with every answered write.
    drop(Arc::into_inner(gc).expect("sole owner"));
    let db = Database::open(dir.path().join("t.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(T).unwrap();
    assert_eq!(t.len().unwrap(), writers);
    assert!(t.get(1000).unwrap().is_none());
}

/// Polls `f` once, so that a write is queued (in this order) before the next is.
async fn queue<F: Future>(f: Pin<&mut F>) {
    let mut f = f;
    std::future::poll_fn(|cx| {
        assert!(
            f.as_mut().poll(cx).is_pending(),
            "answered before its batch ran"
        );
        Poll::Ready(())
    })
    .await;
}

fn insert(txn: &WriteTransaction, key: u64, value: u64) -> Result<(), String> {
    txn.open_table(T)
        .map_err(|e| e.to_string())?
        .insert(key, value)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn read(txn: &WriteTransaction, key: u64) -> Result<Option<u64>, String> {
    let t = txn.open_table(T).map_err(|e| e.to_string())?;
    let found = t.get(key).map_err(|e| e.to_string())?;
    Ok(found.map(|v| v.value()))
}

fn stored(path: &Path) -> Vec<(u64, u64)> {
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(T).unwrap();
    t.iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value(), v.value())
        })
        .collect()
}

/// Holds the writer thread (a read queued in order) until the returned sender is dropped or
/// sends, so that what is queued meanwhile forms one batch; the task ends once the read is
/// answered.
async fn hold_writer(
    gc: &Arc<GroupCommit>,
) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, writer_held) = tokio::sync::oneshot::channel::<()>();
    let holder = gc.clone();
    let task = tokio::spawn(async move {
        holder
            .read_in_order(
                |CommitFailure(e)| e,
                move |_| {
                    let _ = started.send(());
                    let _ = released.recv_timeout(Duration::from_secs(10));
                    Ok(())
                },
            )
            .await
            .expect("the holding read");
    });
    writer_held.await.expect("the writer runs the holding read");
    (release, task)
}

/// One batch, one transaction: a write that fails after writing and one that panics after
/// writing, between good ones, leave nothing; the good ones commit, durably, in one commit;
/// a write sees the writes before it in its batch and none of the failed ones'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_write_leaves_nothing_and_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let gc = Arc::new(GroupCommit::new(Database::create(&path).unwrap()));
    let (release, holder) = hold_writer(&gc).await;
    let (flushes, rollbacks) = (gc.flushes(), gc.rollbacks());

    let backend = |CommitFailure(e): CommitFailure| e;
    {
        let mut good = pin!(gc.write(backend, |txn| insert(txn, 1, 10)));
        queue(good.as_mut()).await;
        let mut refused = pin!(gc.write(backend, |txn| {
            insert(txn, 2, 20)?;
            Err::<(), _>("refused".to_string())
        }));
        queue(refused.as_mut()).await;
        let mut panicked = pin!(gc.write(backend, |txn| -> Result<(), String> {
            insert(txn, 3, 30)?;
            panic!("a write that panics after writing");
        }));
        queue(panicked.as_mut()).await;
        let (detached_tx, detached) = std::sync::mpsc::channel();
        assert!(gc.submitter().write_detached(
            |txn| {
                insert(txn, 5, 50)?;
                Err("refused too".into())
            },
            move |outcome| detached_tx.send(outcome).unwrap(),
        ));
        let mut later = pin!(gc.write(backend, |txn| {
            let seen = (read(txn, 1)?, read(txn, 2)?, read(txn, 3)?, read(txn, 5)?);
            insert(txn, 4, seen.0.unwrap_or(0) + 1)?;
            Ok(seen)
        }));
        queue(later.as_mut()).await;
        release.send(()).unwrap();

        assert_eq!(good.await, Ok(()));
        assert_eq!(refused.await, Err("refused".to_string()));
        assert_eq!(panicked.await, Err("the write panicked".to_string()));
        assert_eq!(
            detached.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err("refused too".to_string())
        );
        assert_eq!(later.await, Ok((Some(10), None, None, None)));
    }
    assert_eq!(
        gc.flushes(),
        flushes + 1,
        "one durable commit for the batch"
    );
    assert!(
        gc.rollbacks() > rollbacks,
        "the failed writes were rolled back"
    );
    holder.await.unwrap();
    drop(Arc::into_inner(gc).expect("sole owner"));
    assert_eq!(stored(&path), [(1, 10), (4, 11)]);
}

/// A read in order sees the writes queued before it in its batch, and those are still
/// answered only once durable, with the writes after the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_order_sees_the_writes_before_it_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let gc = Arc::new(GroupCommit::new(Database::create(&path).unwrap()));
    let (release, holder) = hold_writer(&gc).await;
    let flushes = gc.flushes();
    let backend = |CommitFailure(e): CommitFailure| e;
    {
        let mut before = pin!(gc.write(backend, |txn| insert(txn, 1, 10)));
        queue(before.as_mut()).await;
        let mut count = pin!(gc.read_in_order(backend, |db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let t = txn.open_table(T).map_err(|e| e.to_string())?;
            t.len().map_err(|e| e.to_string())
        }));
        queue(count.as_mut()).await;
        let mut after = pin!(gc.write(backend, |txn| insert(txn, 2, 20)));
        queue(after.as_mut()).await;
        release.send(()).unwrap();
        assert_eq!(count.await, Ok(1));
        assert_eq!(before.await, Ok(()));
        assert_eq!(after.await, Ok(()));
    }
    assert_eq!(
        gc.flushes(),
        flushes + 1,
        "one durable commit for the batch"
    );
    holder.await.unwrap();
    drop(Arc::into_inner(gc).expect("sole owner"));
    assert_eq!(stored(&path), [(1, 10), (2, 20)]);
}

/// A write that fails with an error its caller declared to mean "wrote nothing" (an empty
/// receive) is answered with it and rolls nothing back: the writes around it run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_write_is_answered_and_rolls_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let gc = Arc::new(GroupCommit::new(Database::create(&path).unwrap()));
    let (release, holder) = hold_writer(&gc).await;
    let rollbacks = gc.rollbacks();
    let runs = Arc::new(AtomicU64::new(0));
    let backend = |CommitFailure(e): CommitFailure| e;
    let counted = |key: u64, runs: &Arc<AtomicU64>| {
        let runs = runs.clone();
        move |txn: &WriteTransaction| {
            runs.fetch_add(1, Ordering::Relaxed);
            insert(txn, key, key * 10)
        }
    };
    {
        let mut first = pin!(gc.write(backend, counted(1, &runs)));
        queue(first.as_mut()).await;
        let mut empty = pin!(gc.write_declining(
            backend,
            |e| e == "nothing to take",
            |txn| {
                read(txn, 1)?;
                Err::<(), _>("nothing to take".to_string())
            }
        ));
        queue(empty.as_mut()).await;
        let mut second = pin!(gc.write(backend, counted(2, &runs)));
        queue(second.as_mut()).await;
        release.send(()).unwrap();
        assert_eq!(first.await, Ok(()));
        assert_eq!(empty.await, Err("nothing to take".to_string()));
        assert_eq!(second.await, Ok(()));
    }
    assert_eq!(
        gc.rollbacks(),
        rollbacks,
        "a declined write rolled back its batch"
    );
    assert_eq!(runs.load(Ordering::Relaxed), 2, "a write ran again");
    holder.await.unwrap();
    drop(Arc::into_inner(gc).expect("sole owner"));
    assert_eq!(stored(&path), [(1, 10), (2, 20)]);
}

/// A failure at the end of a large batch runs again at most the writes of its segment, not
/// the whole batch's: the batch is committed (without an fsync) every few dozen writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_a_large_batch_runs_again_only_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let gc = Arc::new(GroupCommit::new(Database::create(&path).unwrap()));
    let (release, holder) = hold_writer(&gc).await;
    let flushes = gc.flushes();
    let runs = Arc::new(AtomicU64::new(0));
    let backend = |CommitFailure(e): CommitFailure| e;
    let writes = 4 * MAX_SEGMENT_WRITES as u64;
    let mut good = Vec::new();
    for key in 0..writes {
        let runs = runs.clone();
        let mut write = Box::pin(gc.write(backend, move |txn| {
            runs.fetch_add(1, Ordering::Relaxed);
            insert(txn, key, key)
        }));
        queue(write.as_mut()).await;
        good.push(write);
    }
    let mut refused = Box::pin(gc.write(backend, |txn| {
        insert(txn, 1_000, 1)?;
        Err::<(), _>("refused".to_string())
    }));
    queue(refused.as_mut()).await;
    release.send(()).unwrap();
    for write in good {
        assert_eq!(write.await, Ok(()));
    }
    assert_eq!(refused.await, Err("refused".to_string()));
    let again = runs.load(Ordering::Relaxed) - writes;
    assert!(
        again <= MAX_SEGMENT_WRITES as u64,
        "{again} writes ran again for one failure"
    );
    assert_eq!(
        gc.flushes(),
        flushes + 1,
        "one durable commit for the batch"
    );
    holder.await.unwrap();
    drop(Arc::into_inner(gc).expect("sole owner"));
    assert_eq!(
        stored(&path),
        (0..writes).map(|k| (k, k)).collect::<Vec<_>>()
    );
}

/// Set in the child process of `acknowledged_writes_survive_a_kill`: the database's path.
const KILL_CHILD_PATH: &str = "WAPPLINE_GROUP_COMMIT_KILL_CHILD";

/// The child of `acknowledged_writes_survive_a_kill` (returns at once in any other process):
/// eight writers at once, each alternating a good write (printed once answered) and one that
/// writes then fails, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_child_writes_until_killed() {
    let Ok(path) = std::env::var(KILL_CHILD_PATH) else {
        return;
    };
    let gc = Arc::new(GroupCommit::new(Database::create(path).unwrap()));
    let mut writers = tokio::task::JoinSet::new();
    for c in 0..8u64 {
        let gc = gc.clone();
        writers.spawn(async move {
            for i in 0u64.. {
                let key = (c << 32) | (2 * i);
                gc.write(|CommitFailure(e)| e, move |txn| insert(txn, key, i))
                    .await
                    .expect("write");
                println!("acked {key}");
                let failed: Result<(), String> = gc
                    .write(
                        |CommitFailure(e)| e,
                        move |txn| {
                            insert(txn, key + 1, i)?;
                            Err("refused".into())
                        },
                    )
                    .await;
                assert_eq!(failed, Err("refused".to_string()));
            }
        });
    }
    while writers.join_next().await.is_some() {}
}

/// The promise, with a real kill: a process writes from eight tasks, half of its writes
/// failing after they wrote, and is killed (SIGKILL) at an arbitrary point; every write it
/// had acknowledged is in the file once reopened, and nothing of a failed one.
#[test]
fn acknowledged_writes_survive_a_kill() {
    use std::collections::HashSet;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let acked: HashSet<u64> = crate::kill_child::acknowledged_before_a_kill(
        "group_commit::tests::kill_child_writes_until_killed",
        (KILL_CHILD_PATH, path.as_os_str()),
        500,
    )
    .iter()
    .map(|key| key.parse().expect("key"))
    .collect();

    let stored: HashSet<u64> = stored(&path).into_iter().map(|(k, _)| k).collect();
    let lost: Vec<&u64> = acked.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    let failed: Vec<&u64> = stored.iter().filter(|k| *k % 2 == 1).collect();
    assert!(failed.is_empty(), "failed writes left: {failed:?}");
}
