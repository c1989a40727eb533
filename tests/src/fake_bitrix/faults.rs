//! The ways real portals fail, on command, per portal.
//!
//! A REST request (a batch is one) meets them in this order: a slow portal's delay
//! ([`FakeBitrix::delay_portal`], before anything runs); then a refusal instead of the
//! method: the portal's outage, then the next of [`FakeBitrix::fail_next`], then the rate
//! limit; then the method runs; then the answer may hang ([`FakeBitrix::hang`]) and may be
//! lost ([`FakeBitrix::lose_answers`]). Refused requests are recorded in `calls()` with their
//! status, like any other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Response;

use super::{error, Answer, FailKind, FakeBitrix};

/// The service's error when an answer is to be lost: hyper then closes the connection
/// without writing a response, and the client sees the connection end before a complete
/// answer.
#[derive(Debug)]
pub(super) struct AnswerLost;

impl std::fmt::Display for AnswerLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer lost on purpose")
    }
}

impl std::error::Error for AnswerLost {}

/// Bitrix24's request counter (apidocs "REST API Limits", leaky bucket): each request adds
/// one, the counter drains by `per_second`, and a request that finds it at `burst` is refused
/// with `503 QUERY_LIMIT_EXCEEDED` (and adds nothing). So `burst` requests pass at once and
/// `per_second` per second after that; the documented values are 2 per second and 50 (5 and
/// 250 on Enterprise).
pub(super) struct LeakyBucket {
    per_second: f64,
    burst: f64,
    level: f64,
    /// The clock the counter drains by, and its reading at the last request (ms).
    clock: BucketClock,
    at_ms: i64,
}

/// Milliseconds on the clock a [`LeakyBucket`] drains by: real time, or a test's simulated
/// clock (so a test that moves time by hand sees the portal's counter drain with it).
pub type BucketClock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl LeakyBucket {
    fn admit(&mut self) -> bool {
        let now = (self.clock)();
        let drained = (now - self.at_ms).max(0) as f64 / 1000.0 * self.per_second;
        self.level = (self.level - drained).max(0.0);
        self.at_ms = now.max(self.at_ms);
        if self.level + 1.0 > self.burst {
            return false;
        }
        self.level += 1.0;
        true
    }
}

/// Every `every_nth` call the portal runs loses its answer.
pub(super) struct LoseEvery {
    every_nth: usize,
    count: usize,
}

#[derive(Default)]
pub(super) struct Faults {
    /// Refusals for the next requests to any portal.
    pub failures: VecDeque<FailKind>,
    /// Portals down until ended.
    pub outages: HashMap<String, FailKind>,
    pub buckets: HashMap<String, LeakyBucket>,
    /// Requests refused by a bucket.
    pub rate_limited: usize,
    pub lose: HashMap<String, LoseEvery>,
    /// Answers lost on purpose.
    pub lost: usize,
    /// Wait before a request runs.
    pub delays: HashMap<String, Duration>,
    /// Wait after a request ran, before its answer.
    pub hangs: HashMap<String, Duration>,
}

impl Faults {
    /// What answers instead of the portal's method, if anything.
    pub(super) fn refusal(&mut self, domain: &str) -> Option<FailKind> {
        if let Some(kind) = self.outages.get(domain) {
            return Some(*kind);
        }
        if let Some(kind) = self.failures.pop_front() {
            return Some(kind);
        }
        let bucket = self.buckets.get_mut(domain)?;
        if bucket.admit() {
            return None;
        }
        self.rate_limited += 1;
        Some(FailKind::QueryLimit)
    }

    /// Counts a call the portal ran; true when its answer is to be lost.
    pub(super) fn lose_this(&mut self, domain: &str) -> bool {
        match self.lose.get_mut(domain) {
            Some(l) => {
                l.count += 1;
                let lose = l.count % l.every_nth == 0;
                self.lost += usize::from(lose);
                lose
            }
            None => false,
        }
    }
}

/// The answer of a refusal.
pub(super) fn fault_answer(kind: FailKind) -> Answer {
    match kind {
        FailKind::QueryLimit => error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        FailKind::OperationTimeLimit => error(
            429,
            "OPERATION_TIME_LIMIT",
            "Method is blocked due to operation time limit.",
        ),
        FailKind::Down => Response::builder()
            .status(503)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(
                b"<html><body>503 Service Temporarily Unavailable</body></html>",
            )))
            .expect("valid response"),
        FailKind::InternalError => error(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
        FailKind::ArgumentError => error(
            400,
            "ERROR_ARGUMENT",
            "The incorrect structure of a message inside MESSAGES parameter",
        ),
    }
}

impl FakeBitrix {
    /// A slow portal: every REST request to `domain` waits `delay` BEFORE it runs (nothing
    /// happens on the portal until then; a client that gave up meanwhile may still find the
    /// call executed once the delay passed, if the connection was not closed by then). Zero
    /// ends it.
    pub fn delay_portal(&self, domain: &str, delay: Duration) {
        let mut s = self.state();
        if delay.is_zero() {
            s.faults.delays.remove(domain);
        } else {
            s.faults.delays.insert(domain.to_owned(), delay);
        }
    }

    /// A hanging portal: every REST request to `domain` runs at once (messages are
    /// recorded) and its answer is held back for `d` AFTER that. A client whose timeout is
    /// shorter sees a timeout although the call took effect. Zero ends it.
    pub fn hang(&self, domain: &str, d: Duration) {
        let mut s = self.state();
        if d.is_zero() {
            s.faults.hangs.remove(domain);
        } else {
            s.faults.hangs.insert(domain.to_owned(), d);
        }
    }

    /// The next `n` REST requests (to any portal) fail as `kind`, without running.
    pub fn fail_next(&self, n: usize, kind: FailKind) {
        let mut s = self.state();
        for _ in 0..n {
            s.faults.failures.push_back(kind);
        }
    }

    /// Every REST request to `domain` fails as `kind`, without running, until
    /// [`FakeBitrix::end_outage`].
    pub fn outage(&self, domain: &str, kind: FailKind) {
        self.state().faults.outages.insert(domain.to_owned(), kind);
    }

    pub fn end_outage(&self, domain: &str) {
        self.state().faults.outages.remove(domain);
    }

    /// Limits `domain`'s request rate like Bitrix24's leaky bucket (see `LeakyBucket`):
    /// `burst` requests at once, then `per_second`; beyond that `503 QUERY_LIMIT_EXCEEDED`
    /// "Too many requests". A batch counts once. Off unless set; the counter starts empty.
    pub fn limit_rate(&self, domain: &str, per_second: f64, burst: u32) {
        let start = Instant::now();
        let real: BucketClock = Arc::new(move || start.elapsed().as_millis() as i64);
        self.limit_rate_on(domain, per_second, burst, real);
    }

    /// [`FakeBitrix::limit_rate`], the counter draining by `clock` (ms) instead of real time.
    pub fn limit_rate_on(&self, domain: &str, per_second: f64, burst: u32, clock: BucketClock) {
        let at_ms = clock();
        self.state().faults.buckets.insert(
            domain.to_owned(),
            LeakyBucket {
                per_second,
                burst: f64::from(burst),
                level: 0.0,
                clock,
                at_ms,
            },
        );
    }

    /// Lifts [`FakeBitrix::limit_rate`] from `domain`.
    pub fn end_rate_limit(&self, domain: &str) {
        self.state().faults.buckets.remove(domain);
    }

    /// Requests refused by [`FakeBitrix::limit_rate`] so far (all portals).
    pub fn rate_limited_count(&self) -> usize {
        self.state().faults.rate_limited
    }

    /// `domain` goes down (`true`: every REST call to it answers a 503 page, as
    /// [`FailKind::Down`], until it comes back with `false`).
    pub fn set_down(&self, domain: &str, down: bool) {
        if down {
            self.outage(domain, FailKind::Down);
        } else {
            self.end_outage(domain);
        }
    }

    /// Answers lost so far ([`FakeBitrix::lose_answers`]).
    pub fn lost_answer_count(&self) -> usize {
        self.state().faults.lost
    }

    /// Of the REST requests `domain` runs from now on (refusals do not count), every
    /// `every_nth` loses its answer: the call takes effect (messages are recorded, the call
    /// is in `calls()`), then the connection is closed without an answer. 1 loses every
    /// answer, 0 ends it.
    pub fn lose_answers(&self, domain: &str, every_nth: usize) {
        let mut s = self.state();
        if every_nth == 0 {
            s.faults.lose.remove(domain);
        } else {
            s.faults.lose.insert(
                domain.to_owned(),
                LoseEvery {
                    every_nth,
                    count: 0,
                },
            );
        }
    }
}
