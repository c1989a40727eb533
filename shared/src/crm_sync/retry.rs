//! Retries and dead-lettering of sync jobs (decision 0022).

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::idempotency::AttemptRecord;

/// Retries and dead-lettering of sync jobs (decision 0022). Every failed attempt of a job,
/// whatever the error (rate limits included), waits an exponential backoff with full jitter:
/// a uniform delay up to `base` doubled per earlier attempt, at most `max` (and never under
/// `min(base, 1 s)`, so there is no hot loop); a rate limit's own `retry_after` is a floor.
/// The job goes to the dead-letter queue only when it has failed `attempts` times of its own
/// AND its first failure is at least `min_span` ago. Defaults: 30 s, 1 h, 40 attempts, 24 h.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub attempts: u32,
    pub min_span: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            attempts: 40,
            min_span: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The longest delay after the `attempt`th failure (1-based): `base·2^(attempt-1)`, at
    /// most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The delay after the `attempt`th failure: full jitter, uniform in `[0, ceiling]` (floored
    /// at `min(base, 1 s)`). The jitter is drawn from SHA-256 of `seed` and the attempt, so it
    /// differs between jobs and attempts but a test can reproduce it.
    pub fn delay(&self, attempt: u32, seed: &str) -> Duration {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update(attempt.to_be_bytes());
        let d = h.finalize();
        let r = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64;
        self.ceiling(attempt)
            .mul_f64(fraction)
            .max(self.base.min(Duration::from_secs(1)))
    }

    /// Whether a job with this record of failures is to be dead-lettered.
    pub fn exhausted(&self, record: &AttemptRecord, now_ms: i64) -> bool {
        let span = u128::try_from(now_ms.saturating_sub(record.first_at_ms)).unwrap_or(0);
        record.count >= self.attempts && span >= self.min_span.as_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::platform;

    /// Runs a job that fails every attempt in simulated time, each retry waiting the worker's
    /// delay (at least `floor`, a rate limit's retry_after), until `stop_ms` or until the policy
    /// dead-letters it. Returns (attempts, simulated ms at the last attempt, dead-lettered).
    fn simulate(policy: &RetryPolicy, floor: Duration, stop_ms: i64) -> (u32, i64, bool) {
        let mut now: i64 = 0;
        let mut record = AttemptRecord {
            count: 0,
            first_at_ms: 0,
        };
        while now <= stop_ms {
            record.count += 1;
            if policy.exhausted(&record, now) {
                return (record.count, now, true);
            }
            let delay = policy.delay(record.count, "effect-1").max(floor);
            now += delay.as_millis() as i64;
        }
        (record.count, now, false)
    }

    #[test]
    fn backoff_grows_for_every_error_class_with_full_jitter_under_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_secs(30));
        assert_eq!(p.ceiling(2), Duration::from_secs(60));
        assert_eq!(p.ceiling(8), Duration::from_secs(3600));
        assert_eq!(p.ceiling(1000), Duration::from_secs(3600));
        let delays: Vec<Duration> = (1..=200).map(|a| p.delay(a, "job")).collect();
        assert!(delays
            .iter()
            .enumerate()
            .all(|(i, d)| *d >= Duration::from_secs(1) && *d <= p.ceiling(i as u32 + 1)));
        // Jittered: different jobs do not retry in lockstep.
        assert_ne!(p.delay(5, "job-a"), p.delay(5, "job-b"));
    }

    #[test]
    fn a_minute_of_rate_limits_never_dead_letters() {
        // QUERY_LIMIT_EXCEEDED asks for 0.5 s; a 60 s burst is far from exhausting a job.
        let p = RetryPolicy::default();
        let (_, _, dead) = simulate(&p, Duration::from_millis(500), 60_000);
        assert!(!dead);
        // Nor does a 23-hour outage.
        let (_, _, dead) = simulate(&p, Duration::from_millis(500), 23 * 3_600_000);
        assert!(!dead);
    }

    #[test]
    fn a_job_is_dead_lettered_after_its_own_attempts_over_at_least_a_day() {
        let p = RetryPolicy::default();
        let (attempts, at, dead) = simulate(&p, Duration::from_millis(500), 10 * 24 * 3_600_000);
        assert!(dead);
        assert!(attempts >= p.attempts);
        assert!(at >= 24 * 3_600_000);
        // The queue's receive limit outlasts the attempts (decision 0022: the 24 h take about
        // 50-60 attempts; the limit leaves room for records skipped behind a failing head).
        assert!(
            attempts * 10 < platform::RELAY_MAX_RECEIVES * 2,
            "{attempts}"
        );
    }
}
