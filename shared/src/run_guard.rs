//! Jobs that kill their worker (decision 0081).
//!
//! A job that kills its worker every time it runs (it runs the instance out of memory or
//! time, a panic aborts the invocation, a dependency hangs past the function's timeout)
//! never returns a failure for the worker to count. Only the queue's backstop
//! (`maxReceiveCount` 1000) stopped it, while its FIFO group waited behind it.
//!
//! Once a job has been received more than [`TRUSTED_RECEIVES`] times, each run is counted
//! before it starts and taken back when it returns, whatever it returned: the count is of
//! runs that died with their instance. A job with more than [`UNRETURNED_LIMIT`] such runs
//! is moved to its dead-letter queue at its next receive without running again. A job
//! received fewer times, nearly every job, costs nothing more.
//!
//! A run still going in this process has not died, though its job came again: a process
//! starved past its lease (the fault soak's 2 s leases, decision 0111's notes) receives a
//! job again while earlier runs of it still run. Only one run of a job is counted per
//! process at a time (decision 0113): the others going beside it share its fate, since
//! they die with the same process, so one death of the process is one death of the job,
//! however many of its runs it held. A counted run that has gone for longer than any run of
//! ours may ([`ALIVE_FOR_AT_MOST`]) is taken for one that hangs: the next run is counted
//! too, so one that hangs for ever in the local server still counts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::consumer::{Outcome, QueueRecord};
use crate::idempotency::Attempts;
use crate::ids::TenantId;
use crate::metrics::Metrics;
use crate::store::TableStore;

/// Receives of a job that are not guarded against a run that never returns: up to here a
/// receive may well have been no run at all (skipped behind its group's head, paced, lost,
/// or in an instance that died on another job), and guarding every run would cost two
/// writes per job.
pub const TRUSTED_RECEIVES: u32 = 10;

/// Guarded runs that never returned before the job is taken for one that kills its worker.
pub const UNRETURNED_LIMIT: u32 = 3;

/// A guarded run alive in this process for longer than this is taken for one that hangs:
/// no run of ours may outlive Lambda's 15-minute limit.
pub const ALIVE_FOR_AT_MOST: Duration = Duration::from_secs(15 * 60);

/// Counts the guarded runs of a platform queue's jobs that never returned.
#[derive(Clone)]
pub struct RunGuard {
    /// Guarded runs that started and have not returned, per job (by queue message id, under
    /// the tenant's prefix, as the attempts).
    unreturned: Attempts,
    /// Guarded runs going in this process (every clone of the guard, so every loop of the
    /// queue's consumer), per job.
    running: Running,
    queue: &'static str,
    metrics: Metrics,
}

/// Per queue message id, each run's token and start.
type RunsByJob = HashMap<String, Vec<(u64, Instant)>>;

/// The guarded runs going in this process.
#[derive(Clone)]
struct Running {
    runs: Arc<Mutex<RunsByJob>>,
    next: Arc<AtomicU64>,
    /// [`ALIVE_FOR_AT_MOST`] (shorter in tests).
    alive_for: Duration,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            runs: Arc::default(),
            next: Arc::default(),
            alive_for: ALIVE_FOR_AT_MOST,
        }
    }
}

/// One run registered in [`Running`], until it is dropped (returned, panicked or cancelled).
struct Alive {
    running: Running,
    message_id: String,
    token: u64,
}

impl Running {
    /// Whether a run started `at` is still taken for alive (not for one that hangs).
    fn alive_since(&self, at: &Instant) -> bool {
        at.elapsed() < self.alive_for
    }

    /// Counted runs of `message_id` going here that have not run for longer than any run
    /// may (0 or 1; the tests read it).
    #[cfg(test)]
    fn alive(&self, message_id: &str) -> u32 {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.get(message_id).map_or(0, |r| {
            r.iter().filter(|(_, at)| self.alive_since(at)).count() as u32
        })
    }

    /// Registers a run of `message_id` unless a counted one is going here already (one that
    /// has not run for longer than any run may): checked and registered under one lock, so
    /// two runs received at once are never both counted.
    fn start_first(&self, message_id: &str) -> Option<Alive> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let going = runs.entry(message_id.to_owned()).or_default();
        if going.iter().any(|(_, at)| self.alive_since(at)) {
            return None;
        }
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        going.push((token, Instant::now()));
        Some(Alive {
            running: self.clone(),
            message_id: message_id.to_owned(),
            token,
        })
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        let mut runs = self.running.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = runs.get_mut(&self.message_id) {
            r.retain(|(t, _)| *t != self.token);
            if r.is_empty() {
                runs.remove(&self.message_id);
            }
        }
    }
}

impl RunGuard {
    /// `scope` keys the records apart from other kinds in the dedupe table.
    pub fn new(store: Arc<dyn TableStore>, queue: &'static str, scope: &'static str) -> Self {
        RunGuard {
            unreturned: Attempts::new(store, scope),
            running: Running::default(),
            queue,
            metrics: Metrics::off(),
        }
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs `run`, `record`'s job for `tenant`, guarded against a job that kills its worker;
    /// such a job goes through `dead_letter` instead, without running.
    ///
    /// Past [`TRUSTED_RECEIVES`] receives the run is counted before it starts and taken back
    /// once it returns, unless a counted run of the job is going in this process already
    /// (then it runs uncounted: decision 0113). Taken back, not cleared: a run that returns at once (another delivery
    /// still holds the job's key after the one that died, or its pace) must not hide the
    /// deaths before it. A `Done` clears the count. When the count cannot be written (the
    /// store is down) the job runs unguarded: the queue's backstop still bounds it.
    pub async fn guarded<D, F>(
        &self,
        tenant: &TenantId,
        record: &QueueRecord,
        run: impl Future<Output = Outcome>,
        dead_letter: D,
    ) -> Outcome
    where
        D: FnOnce() -> F,
        F: Future<Output = Outcome>,
    {
        if record.receive_count <= TRUSTED_RECEIVES {
            return run.await;
        }
        // A counted run of the job is going here: this one dies only with it, so it is not
        // counted on its own (decision 0113). Should the counted one return first, a death
        // of the process with this one still going is not counted: one fewer, never more.
        let Some(registered) = self.running.start_first(&record.message_id) else {
            return run.await;
        };
        let now = crate::clock::now_millis();
        let guarded = match self
            .unreturned
            .failed(tenant, &record.message_id, now)
            .await
        {
            // This run is counted too: the ones before it never returned, each in a process
            // of its own (or it hung, or its task died).
            Ok(runs) if runs.count > UNRETURNED_LIMIT => {
                drop(registered);
                // The stage as the workers name it in their own failures: `inbound`, ...
                let stage = self.queue.trim_end_matches(".fifo");
                self.metrics.failure(stage, "killed_its_worker");
                tracing::error!(
                    message_id = %record.message_id,
                    receive_count = record.receive_count,
                    unreturned_runs = runs.count - 1,
                    queue = self.queue,
                    "job killed its worker every time it ran; dead-lettered without running"
                );
                let moved = dead_letter().await;
                if moved.is_done() {
                    self.forget(tenant, record).await;
                }
                return moved;
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, queue = self.queue, "could not record a job's run; it runs unguarded");
                false
            }
        };
        let outcome = run.await;
        drop(registered);
        if guarded {
            if outcome.is_done() {
                // Finished (or moved): nothing of the job is left to guard.
                self.forget(tenant, record).await;
            } else if let Err(e) = self.unreturned.uncount(tenant, &record.message_id).await {
                tracing::warn!(error = %e, queue = self.queue, "could not take back a job's returned run");
            }
        }
        outcome
    }

    async fn forget(&self, tenant: &TenantId, record: &QueueRecord) {
        if let Err(e) = self.unreturned.clear(tenant, &record.message_id).await {
            tracing::warn!(error = %e, queue = self.queue, "could not clear a job's runs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn record(receive_count: u32) -> QueueRecord {
        QueueRecord {
            message_id: "m-1".into(),
            body: String::new(),
            receive_count,
            group_id: None,
        }
    }

    fn guard(dir: &std::path::Path) -> RunGuard {
        RunGuard::new(
            Arc::new(EmbeddedStore::open(dir).unwrap()),
            "inbound.fifo",
            "INRUN",
        )
    }

    /// Whether the guard ran the job (`Retry`) or dead-lettered it (`Done`, from the move).
    async fn receive(guard: &RunGuard, tenant: &TenantId, receive_count: u32) -> Outcome {
        guard
            .guarded(
                tenant,
                &record(receive_count),
                async { Outcome::RetryAfter(Duration::ZERO) },
                || async { Outcome::Done },
            )
            .await
    }

    /// Runs of the job that never return, each its own task, still going here (a process
    /// starved past its lease receives the job again while they run). The returned count
    /// rises as each run's own work begins, which is after the guard has counted it.
    fn start_runs_that_never_return(
        guard: &RunGuard,
        tenant: &TenantId,
        from: u32,
        n: u32,
    ) -> (Vec<tokio::task::JoinHandle<Outcome>>, Arc<AtomicU64>) {
        let begun = Arc::new(AtomicU64::new(0));
        let runs = (from..from + n)
            .map(|receive_count| {
                let (guard, tenant, begun) = (guard.clone(), tenant.clone(), begun.clone());
                tokio::spawn(async move {
                    let run = async move {
                        begun.fetch_add(1, Ordering::SeqCst);
                        std::future::pending().await
                    };
                    guard
                        .guarded(&tenant, &record(receive_count), run, || async {
                            Outcome::Done
                        })
                        .await
                })
            })
            .collect();
        (runs, begun)
    }

    /// Waits until `n` runs have begun their own work.
    async fn until_begun(begun: &AtomicU64, n: u64) {
        let started = async {
            while begun.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), started)
            .await
            .expect("the runs began");
    }

    /// Kills the runs (their task dies: a panic, a cancelled run, or their process).
    async fn kill(runs: Vec<tokio::task::JoinHandle<Outcome>>) {
        for run in runs {
            run.abort();
            let _ = run.await;
        }
    }

    #[tokio::test]
    async fn runs_still_going_here_are_not_taken_for_deaths() {
        let dir = tempfile::tempdir().unwrap();
        let (g, tenant) = (guard(dir.path()), TenantId::generate());
        let first = TRUSTED_RECEIVES + 1;
        let (going, begun) = start_runs_that_never_return(&g, &tenant, first, UNRETURNED_LIMIT);
        until_begun(&begun, UNRETURNED_LIMIT.into()).await;
        let next = first + UNRETURNED_LIMIT;
        assert!(
            matches!(receive(&g, &tenant, next).await, Outcome::RetryAfter(_)),
            "run, not dead-lettered: the runs before it are alive"
        );
        kill(going).await;
    }

    /// Guards over one store, each its own registry of runs: separate processes.
    fn processes(dir: &std::path::Path, n: usize) -> Vec<RunGuard> {
        let store: Arc<dyn TableStore> = Arc::new(EmbeddedStore::open(dir).unwrap());
        (0..n)
            .map(|_| RunGuard::new(store.clone(), "inbound.fifo", "INRUN"))
            .collect()
    }

    #[tokio::test]
    async fn runs_of_one_process_that_die_together_are_one_death() {
        let dir = tempfile::tempdir().unwrap();
        let (p, tenant) = (processes(dir.path(), 2), TenantId::generate());
        let first = TRUSTED_RECEIVES + 1;
        // A process starved past its lease holds several runs of one job, then dies: each
        // run with it, as the fault soak's crashes do (decision 0113).
        let held = UNRETURNED_LIMIT + 1;
        let (going, begun) = start_runs_that_never_return(&p[0], &tenant, first, held);
        until_begun(&begun, held.into()).await;
        kill(going).await;
        assert!(
            matches!(
                receive(&p[1], &tenant, first + held).await,
                Outcome::RetryAfter(_)
            ),
            "run in the next process: one death so far, not {held}"
        );
    }

    #[tokio::test]
    async fn a_job_that_killed_a_process_each_time_is_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let limit = UNRETURNED_LIMIT as usize;
        let (p, tenant) = (processes(dir.path(), limit + 1), TenantId::generate());
        let first = TRUSTED_RECEIVES + 1;
        for (i, process) in (0..).zip(&p[..limit]) {
            let (going, begun) = start_runs_that_never_return(process, &tenant, first + i, 1);
            until_begun(&begun, 1).await;
            kill(going).await;
        }
        let next = first + UNRETURNED_LIMIT;
        assert_eq!(receive(&p[limit], &tenant, next).await, Outcome::Done);
    }

    #[tokio::test]
    async fn runs_that_died_with_their_task_are_counted_and_the_job_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let (g, tenant) = (guard(dir.path()), TenantId::generate());
        let first = TRUSTED_RECEIVES + 1;
        // Each dies with its task (a panic, or a cancelled run) before the next comes: no
        // longer going here, so the next is counted as well.
        for i in 0..UNRETURNED_LIMIT {
            let (going, begun) = start_runs_that_never_return(&g, &tenant, first + i, 1);
            until_begun(&begun, 1).await;
            kill(going).await;
            assert_eq!(g.running.alive("m-1"), 0);
        }
        let next = first + UNRETURNED_LIMIT;
        assert_eq!(receive(&g, &tenant, next).await, Outcome::Done);
    }

    #[tokio::test]
    async fn a_run_going_for_longer_than_any_run_may_counts_as_dead() {
        let dir = tempfile::tempdir().unwrap();
        let (mut g, tenant) = (guard(dir.path()), TenantId::generate());
        let first = TRUSTED_RECEIVES + 1;
        // The bound, shortened: each run below outlives it, as a run that hangs would, so
        // the next one is counted beside it.
        g.running.alive_for = Duration::from_millis(1);
        let mut going = Vec::new();
        for i in 0..UNRETURNED_LIMIT {
            let (runs, begun) = start_runs_that_never_return(&g, &tenant, first + i, 1);
            until_begun(&begun, 1).await;
            going.extend(runs);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(g.running.alive("m-1"), 0);
        let next = first + UNRETURNED_LIMIT;
        assert_eq!(receive(&g, &tenant, next).await, Outcome::Done);
        kill(going).await;
    }
}
