//! In-process schedules: what EventBridge rules do in AWS (template.yaml), done by a timer
//! per job here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A scheduled job's body: one run, Ok or a message for the log.
pub type Job =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// One scheduled job: a name for the logs, how often, and what to run.
#[derive(Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub every: Duration,
    pub run: Job,
}

/// Runs `schedule` every `every` until `stop` turns true; a failed run is logged and the next
/// one happens on time.
pub async fn run(schedule: Schedule, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(schedule.every) => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = (schedule.run)().await {
            tracing::warn!(schedule = schedule.name, error = %e, "scheduled job failed");
        }
    }
}
