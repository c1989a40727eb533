//! Client-side pacing per portal.
//!
//! Bitrix24 limits request intensity per portal with a leaky bucket: each request raises a
//! counter, the counter drains by Y per second, and past X the portal answers `503
//! QUERY_LIMIT_EXCEEDED` (apidocs "REST API Limits": X = 50, Y = 2 per second on ordinary
//! plans; 250 and 5 on Enterprise). We keep the mirror image, a token bucket of `burst`
//! tokens refilled at `rate_per_sec`, keyed by portal domain.
//!
//! A request either takes a token now, or reserves the next one and waits for it once (never
//! longer than `max_wait`), or is refused at once with the time after which to try again, so
//! the caller can put the job back on its queue. Nothing here polls or spins.
//!
//! The bucket is per process. Several Lambda instances each hold their own, so the portal's
//! own 503 stays the real limit; when it comes, [`Pacer::penalize`] empties our bucket so this
//! process backs off too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ids::BitrixDomain;

use crate::pacing::PRUNE_ABOVE;
pub use crate::pacing::{PacingConfig, TokenBucket};

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The buckets of all portals this process talks to.
pub struct Pacer {
    config: PacingConfig,
    buckets: Mutex<HashMap<BitrixDomain, TokenBucket>>,
    clock: Clock,
}

impl Pacer {
    pub fn new(config: PacingConfig) -> Self {
        Pacer::with_clock(config, Arc::new(Instant::now))
    }

    /// A pacer reading time from `clock` (tests pass a fake one).
    pub fn with_clock(config: PacingConfig, clock: Arc<dyn Fn() -> Instant + Send + Sync>) -> Self {
        Pacer {
            config,
            buckets: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn config(&self) -> &PacingConfig {
        &self.config
    }

    fn with_bucket<T>(
        &self,
        portal: &BitrixDomain,
        f: impl FnOnce(&mut TokenBucket, Instant) -> T,
    ) -> T {
        let now = (self.clock)();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE && !buckets.contains_key(portal) {
            let config = self.config;
            buckets.retain(|_, b| !b.is_full(&config, now));
        }
        let bucket = buckets
            .entry(portal.clone())
            .or_insert_with(|| TokenBucket::new(&self.config, now));
        f(bucket, now)
    }

    /// See [`TokenBucket::reserve`].
    pub fn reserve(&self, portal: &BitrixDomain) -> Result<Duration, Duration> {
        let config = self.config;
        self.with_bucket(portal, |b, now| b.reserve(&config, now))
    }

    /// Takes a token for `portal`, waiting once for at most `max_wait`; `Err(retry_after)`
    /// when that is not enough.
    pub async fn acquire(&self, portal: &BitrixDomain) -> Result<(), Duration> {
        let wait = self.reserve(portal)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Empties the portal's bucket (after the portal answered `QUERY_LIMIT_EXCEEDED`).
    pub fn penalize(&self, portal: &BitrixDomain) {
        let config = self.config;
        self.with_bucket(portal, |b, now| b.drain(&config, now));
    }

    /// Tokens the portal has now.
    pub fn available(&self, portal: &BitrixDomain) -> f64 {
        let config = self.config;
        self.with_bucket(portal, |b, now| b.available(&config, now))
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const CFG: PacingConfig = PacingConfig {
        rate_per_sec: 2.0,
        burst: 50.0,
        max_wait: Duration::from_secs(2),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_paced() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&CFG, t0);
        for _ in 0..50 {
            assert_eq!(b.reserve(&CFG, t0), Ok(Duration::ZERO));
        }
        // The 51st at the same instant waits half a second for the next token.
        assert_eq!(b.reserve(&CFG, t0), Ok(ms(500)));
        // Then one second, two... until the wait would exceed max_wait (2 s): refused,
        // without taking anything.
        assert_eq!(b.reserve(&CFG, t0), Ok(ms(1000)));
        assert_eq!(b.reserve(&CFG, t0), Ok(ms(1500)));
        assert_eq!(b.reserve(&CFG, t0), Ok(ms(2000)));
        assert_eq!(b.reserve(&CFG, t0), Err(ms(2500)));
        assert_eq!(b.reserve(&CFG, t0), Err(ms(2500)));
        // Two seconds later four tokens have come back, all four already promised.
        assert_eq!(b.available(&CFG, t0 + ms(2000)), 0.0);
        assert_eq!(b.reserve(&CFG, t0 + ms(2000)), Ok(ms(500)));
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&CFG, t0);
        assert_eq!(b.reserve(&CFG, t0), Ok(Duration::ZERO));
        assert_eq!(b.available(&CFG, t0 + Duration::from_secs(3600)), 50.0);
    }

    #[test]
    fn drain_after_query_limit() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&CFG, t0);
        b.drain(&CFG, t0);
        assert_eq!(b.available(&CFG, t0), 0.0);
        assert_eq!(b.reserve(&CFG, t0 + ms(250)), Ok(ms(250)));
    }

    #[test]
    fn zero_max_wait_never_sleeps() {
        let cfg = PacingConfig {
            rate_per_sec: 2.0,
            burst: 1.0,
            max_wait: Duration::ZERO,
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&cfg, t0);
        assert_eq!(b.reserve(&cfg, t0), Ok(Duration::ZERO));
        assert_eq!(b.reserve(&cfg, t0), Err(ms(500)));
        assert_eq!(b.reserve(&cfg, t0 + ms(500)), Ok(Duration::ZERO));
    }

    #[test]
    fn pacer_keys_by_portal_with_a_fake_clock() {
        let base = Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let o = offset.clone();
        let pacer = Pacer::with_clock(
            PacingConfig {
                rate_per_sec: 1.0,
                burst: 2.0,
                max_wait: Duration::ZERO,
            },
            Arc::new(move || base + Duration::from_millis(o.load(Ordering::SeqCst))),
        );
        let a = BitrixDomain::parse("a.bitrix24.com").unwrap();
        let b = BitrixDomain::parse("b.bitrix24.com").unwrap();
        assert!(pacer.reserve(&a).is_ok());
        assert!(pacer.reserve(&a).is_ok());
        assert_eq!(pacer.reserve(&a), Err(Duration::from_secs(1)));
        // Another portal has its own bucket.
        assert!(pacer.reserve(&b).is_ok());
        offset.store(1000, Ordering::SeqCst);
        assert!(pacer.reserve(&a).is_ok());
        pacer.penalize(&b);
        assert_eq!(pacer.available(&b), 0.0);
    }
}
