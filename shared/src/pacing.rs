//! Client-side pacing: token buckets, and buckets keyed by anything (the Bitrix24 client
//! keys them by portal; the send path's limits per WhatsApp phone
//! number, per Instagram account and per recipient).
//!
//! A request either takes a token now, or reserves the next one and waits for it once (never
//! longer than the config's `max_wait`), or is refused at once with the time after which to
//! try again, so the caller can put its job back on the queue. Nothing polls or spins, and
//! nothing sleeps long: a handler that would have to wait returns "retry later" instead.
//!
//! The buckets are per process. Several Lambda instances each hold their own, so the
//! provider's own rate-limit answers stay the real limit; when one comes,
//! [`KeyedPacer::penalize`] empties the bucket so this process backs off too.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pacing settings. The defaults follow Bitrix24's documented ordinary-plan limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingConfig {
    /// Tokens added per second (Bitrix24's "counter decrease rate" Y).
    pub rate_per_sec: f64,
    /// Bucket size (Bitrix24's "limit before blocking" X).
    pub burst: f64,
    /// Longest wait for a token inside one call; beyond it the call is refused with
    /// `RateLimited` instead.
    pub max_wait: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            rate_per_sec: 2.0,
            burst: 50.0,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// One portal's bucket. Time is passed in, so the arithmetic is tested without sleeping.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(config: &PacingConfig, now: Instant) -> Self {
        TokenBucket {
            tokens: config.burst,
            updated: now,
        }
    }

    fn refill(&mut self, config: &PacingConfig, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * config.rate_per_sec).min(config.burst);
        self.updated = self.updated.max(now);
    }

    /// Tokens available at `now` (negative while reservations are outstanding).
    pub fn available(&mut self, config: &PacingConfig, now: Instant) -> f64 {
        self.refill(config, now);
        self.tokens
    }

    /// Takes one token. `Ok(wait)`: taken; send after `wait` (zero when one was free).
    /// `Err(retry_after)`: nothing taken, because the wait would exceed `max_wait`.
    pub fn reserve(&mut self, config: &PacingConfig, now: Instant) -> Result<Duration, Duration> {
        self.refill(config, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(Duration::ZERO);
        }
        let wait = secs((1.0 - self.tokens) / config.rate_per_sec);
        if wait > config.max_wait {
            return Err(wait);
        }
        self.tokens -= 1.0;
        Ok(wait)
    }

    /// The portal said it is over its limit: our view was optimistic, start from empty.
    pub fn drain(&mut self, config: &PacingConfig, now: Instant) {
        self.refill(config, now);
        self.tokens = self.tokens.min(0.0);
    }

    pub(crate) fn is_full(&mut self, config: &PacingConfig, now: Instant) -> bool {
        self.refill(config, now);
        self.tokens >= config.burst
    }
}

fn secs(s: f64) -> Duration {
    if s.is_finite() && s >= 0.0 {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    } else {
        Duration::MAX
    }
}

/// Buckets kept before idle full ones are dropped.
pub(crate) const PRUNE_ABOVE: usize = 4096;

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// One token bucket per key, all with the same [`PacingConfig`].
pub struct KeyedPacer<K> {
    config: PacingConfig,
    buckets: Mutex<HashMap<K, TokenBucket>>,
    clock: Clock,
}

impl<K: Hash + Eq + Clone> KeyedPacer<K> {
    pub fn new(config: PacingConfig) -> Self {
        KeyedPacer::with_clock(config, Arc::new(Instant::now))
    }

    /// A pacer reading time from `clock` (tests pass a fake one).
    pub fn with_clock(config: PacingConfig, clock: Clock) -> Self {
        KeyedPacer {
            config,
            buckets: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn config(&self) -> &PacingConfig {
        &self.config
    }

    fn with_bucket<T>(&self, key: &K, f: impl FnOnce(&mut TokenBucket, Instant) -> T) -> T {
        let now = (self.clock)();
        let config = self.config;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.available(&config, now) < config.burst);
        }
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(&config, now));
        f(bucket, now)
    }

    /// Takes one token. `Ok(wait)`: taken; go after `wait` (zero when one was free).
    /// `Err(retry_after)`: nothing taken, because the wait would exceed `max_wait`.
    pub fn reserve(&self, key: &K) -> Result<Duration, Duration> {
        let config = self.config;
        self.with_bucket(key, |b, now| b.reserve(&config, now))
    }

    /// Takes a token for `key`, waiting once for at most `max_wait`; `Err(retry_after)` when
    /// that is not enough.
    pub async fn acquire(&self, key: &K) -> Result<(), Duration> {
        let wait = self.reserve(key)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Empties the key's bucket (after the provider said we are over its limit).
    pub fn penalize(&self, key: &K) {
        let config = self.config;
        self.with_bucket(key, |b, now| b.drain(&config, now));
    }

    /// Tokens the key has now (negative while reservations are outstanding).
    pub fn available(&self, key: &K) -> f64 {
        let config = self.config;
        self.with_bucket(key, |b, now| b.available(&config, now))
    }
}

impl<K> std::fmt::Debug for KeyedPacer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedPacer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn keys_have_their_own_buckets_and_refusals_take_nothing() {
        let base = Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let o = offset.clone();
        let pacer: KeyedPacer<String> = KeyedPacer::with_clock(
            PacingConfig {
                rate_per_sec: 1.0 / 6.0,
                burst: 2.0,
                max_wait: Duration::ZERO,
            },
            Arc::new(move || base + Duration::from_millis(o.load(Ordering::SeqCst))),
        );
        let a = "a".to_owned();
        let b = "b".to_owned();
        assert_eq!(pacer.reserve(&a), Ok(Duration::ZERO));
        assert_eq!(pacer.reserve(&a), Ok(Duration::ZERO));
        assert_eq!(pacer.reserve(&a), Err(Duration::from_secs(6)));
        assert_eq!(pacer.reserve(&a), Err(Duration::from_secs(6)));
        assert_eq!(pacer.reserve(&b), Ok(Duration::ZERO));
        offset.store(6000, Ordering::SeqCst);
        assert_eq!(pacer.reserve(&a), Ok(Duration::ZERO));
        pacer.penalize(&b);
        assert!(pacer.available(&b) <= 0.0);
        assert!(pacer.reserve(&b).is_err());
    }

    #[tokio::test]
    async fn acquire_waits_briefly_within_max_wait() {
        let pacer: KeyedPacer<u8> = KeyedPacer::new(PacingConfig {
            rate_per_sec: 100.0,
            burst: 1.0,
            max_wait: Duration::from_millis(50),
        });
        assert!(pacer.acquire(&1).await.is_ok());
        let t = Instant::now();
        assert!(pacer.acquire(&1).await.is_ok());
        assert!(t.elapsed() >= Duration::from_millis(5));
    }
}
