//! retention: the scheduled function that brings stored items to each tenant's current
//! retention after a change (see `wappline::retention` and decision 0015). The schedule's
//! event carries nothing we need; each invocation works until its budget or its time is
//! used, and the next one continues where it stopped.

use std::time::{Duration, Instant, SystemTime};

use wappline::retention::{Budget, Report, RetentionError, RetentionRun};

/// Time kept back from the invocation's deadline, for the last page and the cursor write.
pub const MARGIN: Duration = Duration::from_secs(30);
/// The budget of one invocation: the time left before `deadline` less [`MARGIN`], and at
/// most `max_items` items when given.
pub fn budget(deadline: SystemTime, max_items: Option<u64>) -> Budget {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(MARGIN);
    let until = Instant::now() + left;
    match max_items {
        Some(n) => Budget::items(n).until(until),
        None => Budget::time(left),
    }
}

/// One scheduled invocation: runs the re-stamper within `budget` and logs what it did.
pub async fn handle(run: &RetentionRun, budget: Budget) -> Result<Report, RetentionError> {
    let started = Instant::now();
    let report = run.run_once(budget).await?;
    tracing::info!(
        tenants_done = report.tenants_done,
        items_restamped = report.items_restamped,
        items_expired = report.items_expired,
        tenants_failed = report.tenants_failed,
        more_work = report.more_work,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "retention run"
    );
    Ok(report)
}
