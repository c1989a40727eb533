//! Seeded fault injection for the soak of the whole pipeline (issue 17, decision 0053).
//!
//! A [`FaultPlan`] decides, for every call a decorated port makes (and every request the
//! soak's HTTP fault proxy forwards to the Graph API and Bitrix24 fakes), whether it meets a
//! fault: an error, throttling, a timeout (for a write: the write happened, the answer was
//! lost), a slow answer, or a crash (the process dies right after this step; every later call
//! of the same instance fails until the soak restarts it on the same data).
//!
//! The decision is a pure function of the seed, the call's site (`"store.put"`,
//! `"queue.ack"`, `"http.bitrix"`, ...) and how many calls that site made before, so one seed
//! always gives the same fault schedule: the n-th `store.put` of a run meets the same fault
//! in every run with that seed. (Which step of the pipeline is the n-th put depends on how
//! the concurrent consumers interleave; the soak's figures, lost, duplicated, dead-lettered
//! and out of order, do not.)
//!
//! The decorators ([`ports`]) wrap the raw adapters under the tenant fence, as the AWS SDK's
//! own failures would reach them. Nothing here is built on AWS: the composition root takes
//! a [`crate::app::services::PortLayer`] only from the local server's configuration.

pub mod hooked;
pub mod ports;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The backend refuses with a server error; nothing happened.
    Error,
    /// The backend throttles (DynamoDB `ProvisionedThroughputExceeded`, SQS and KMS
    /// `ThrottlingException`, Bitrix24 `QUERY_LIMIT_EXCEEDED`, Graph code 80007); nothing
    /// happened.
    Throttle,
    /// The answer does not come back in time. A write took effect before its answer was lost;
    /// a read did nothing.
    Timeout,
    /// The answer comes back, late.
    Slow,
    /// The process dies right after this step: a write took effect, then nothing more runs.
    Crash,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Error,
        Fault::Throttle,
        Fault::Timeout,
        Fault::Slow,
        Fault::Crash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Error => "error",
            Fault::Throttle => "throttle",
            Fault::Timeout => "timeout",
            Fault::Slow => "slow",
            Fault::Crash => "crash",
        }
    }
}

/// How often each fault is injected, in calls per 100,000 of a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRates {
    pub error: u32,
    pub throttle: u32,
    pub timeout: u32,
    pub slow: u32,
    pub crash: u32,
    /// How long a slow answer is held.
    pub slow_by: Duration,
}

impl FaultRates {
    /// No faults.
    pub const NONE: FaultRates = FaultRates {
        error: 0,
        throttle: 0,
        timeout: 0,
        slow: 0,
        crash: 0,
        slow_by: Duration::ZERO,
    };

    /// The soak's default on the ports: 0.25 % of the calls of every site fail, 0.3 % are
    /// slow, one in 20,000 crashes the process. These are the failures left after the AWS
    /// SDK's own retries (three attempts for throttling and server errors), which the
    /// adapters do not see.
    pub const SOAK: FaultRates = FaultRates {
        error: 100,
        throttle: 100,
        timeout: 50,
        slow: 300,
        crash: 5,
        slow_by: Duration::from_millis(20),
    };

    /// The soak's default on the Graph API and Bitrix24 transports, which our code retries
    /// itself: 3 % of the requests fail, 1 % are slow.
    pub const SOAK_HTTP: FaultRates = FaultRates {
        error: 1000,
        throttle: 1000,
        timeout: 1000,
        slow: 1000,
        crash: 0,
        slow_by: Duration::from_millis(50),
    };

    /// `self` with no crashes (the HTTP fakes: a crash is a process's, not a peer's).
    pub fn without_crashes(mut self) -> Self {
        self.crash = 0;
        self
    }

    fn pick(&self, draw: u32) -> Option<Fault> {
        let mut edge = 0;
        for (fault, rate) in [
            (Fault::Crash, self.crash),
            (Fault::Error, self.error),
            (Fault::Throttle, self.throttle),
            (Fault::Timeout, self.timeout),
            (Fault::Slow, self.slow),
        ] {
            edge += rate;
            if draw < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// The seeded schedule of one soak, shared by every decorated port of the running instance
/// and by the HTTP fault proxy.
pub struct FaultPlan {
    seed: u64,
    rates: FaultRates,
    http_rates: FaultRates,
    /// Calls seen per site (the schedule's clock).
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// Faults injected per site and kind.
    injected: Mutex<BTreeMap<(&'static str, Fault), u64>>,
    /// Faults are injected only while armed (the soak's set-up runs without).
    armed: AtomicBool,
    /// The instance died: every call fails until [`FaultPlan::restarted`].
    crashed: AtomicBool,
    /// Restarts so far: which instance of the process is running.
    instance: AtomicU64,
}

impl FaultPlan {
    pub fn new(seed: u64, rates: FaultRates) -> Self {
        FaultPlan {
            seed,
            rates,
            http_rates: rates,
            calls: Mutex::new(BTreeMap::new()),
            injected: Mutex::new(BTreeMap::new()),
            armed: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            instance: AtomicU64::new(0),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn rates(&self) -> FaultRates {
        self.rates
    }

    /// Other rates for the HTTP transports (by default the ports' own).
    pub fn with_http_rates(mut self, rates: FaultRates) -> Self {
        self.http_rates = rates;
        self
    }

    /// The rates of the HTTP transports.
    pub fn http_rates(&self) -> FaultRates {
        self.http_rates
    }

    /// Starts (true) or stops injecting.
    pub fn arm(&self, armed: bool) {
        self.armed.store(armed, Ordering::SeqCst);
    }

    /// The fault the next call of `site` meets, if any, with `rates` instead of the plan's.
    pub fn decide_with(&self, site: &'static str, rates: &FaultRates) -> Option<Fault> {
        if !self.armed.load(Ordering::SeqCst) {
            return None;
        }
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let n = calls.entry(site).or_insert(0);
            *n += 1;
            *n
        };
        let draw = (mix(self.seed ^ mix(fnv1a(site.as_bytes())) ^ mix(n)) % 100_000) as u32;
        let fault = rates.pick(draw)?;
        *self
            .injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((site, fault))
            .or_insert(0) += 1;
        if fault == Fault::Crash {
            self.crashed.store(true, Ordering::SeqCst);
        }
        Some(fault)
    }

    /// The fault the next call of `site` meets, if any.
    pub fn decide(&self, site: &'static str) -> Option<Fault> {
        let rates = self.rates;
        self.decide_with(site, &rates)
    }

    /// True once a crash was injected and until the soak restarted the instance.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// The soak restarted the instance on the same data: calls run again.
    pub fn restarted(&self) {
        self.instance.fetch_add(1, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// Which instance of the process runs (0 until the first restart).
    pub fn instance(&self) -> u64 {
        self.instance.load(Ordering::SeqCst)
    }

    /// How long a slow answer is held.
    pub fn slow_by(&self) -> Duration {
        self.rates.slow_by
    }

    /// Faults injected so far, by kind.
    pub fn injected_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((_, fault), n) in self
            .injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            *out.entry(fault.name()).or_insert(0) += n;
        }
        out
    }

    /// Faults injected so far, by site and kind.
    pub fn injected(&self) -> BTreeMap<(&'static str, Fault), u64> {
        self.injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls seen so far, all sites.
    pub fn calls(&self) -> u64 {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

/// SplitMix64's finaliser: a well-spread 64-bit hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A small seeded generator for the soak's workload (SplitMix64), so the same seed makes
/// the same items.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(seed: u64) -> Vec<Option<Fault>> {
        let plan = FaultPlan::new(seed, FaultRates::SOAK);
        plan.arm(true);
        (0..20_000)
            .map(|i| plan.decide(if i % 2 == 0 { "store.put" } else { "queue.ack" }))
            .collect()
    }

    #[test]
    fn one_seed_gives_one_schedule_and_another_seed_another() {
        assert_eq!(schedule(7), schedule(7));
        assert_ne!(schedule(7), schedule(8));
    }

    #[test]
    fn faults_come_at_their_rates() {
        let plan = FaultPlan::new(42, FaultRates::SOAK);
        plan.arm(true);
        for _ in 0..200_000 {
            plan.decide("store.get");
        }
        let by_kind = plan.injected_by_kind();
        // 200,000 calls: 200 errors, 200 throttles, 100 timeouts, 600 slow, 10 crashes
        // expected; within a generous band so the test is about the rates, not luck.
        let around = |kind: &str, expected: f64| {
            let got = *by_kind.get(kind).unwrap_or(&0) as f64;
            assert!(
                (expected * 0.7..=expected * 1.3).contains(&got),
                "{kind}: {got} against {expected}"
            );
        };
        around("error", 200.0);
        around("throttle", 200.0);
        around("timeout", 100.0);
        around("slow", 600.0);
        assert!(by_kind.get("crash").is_some_and(|n| (2..30).contains(n)));
        assert!(plan.crashed());
        plan.restarted();
        assert!(!plan.crashed());
    }

    #[test]
    fn nothing_is_injected_unless_armed() {
        let plan = FaultPlan::new(1, FaultRates::SOAK);
        assert!((0..10_000).all(|_| plan.decide("store.put").is_none()));
        assert_eq!(plan.calls(), 0);
    }
}
