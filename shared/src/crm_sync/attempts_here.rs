//! The flush attempts this process made, and whether each is still going or ended with the
//! process alive (decision 0117).
//!
//! Decision 0091 counts a claim that ran out unsettled as a death of the flusher that held
//! it. That is right for a flusher whose process died (it cannot say otherwise), but a
//! claim also runs out when its flush returned an error after claiming (a store briefly
//! unavailable: the claims are left for the next flush to take over, ambiguous) or when its
//! flush is still going, only slower than its claim. Neither killed anything, and counting
//! them dead-lettered an innocent post in the fault soak (two injected crashes and one lost
//! store answer while it was claimed). The process that made an attempt knows which: it is
//! alive to read the claim.
//!
//! - An attempt **still going here** (and for less than [`ALIVE_FOR_AT_MOST`], past which
//!   it is taken for one that hangs) keeps its operations: they are not taken over, nor is
//!   anything after them in their conversations.
//! - An attempt that **ended here with the process alive** (its flush returned, or failed
//!   with a transient error) is taken over without a death.
//! - Anything else counts as before: an attempt of another process (a Lambda instance, the
//!   local server before a restart), one whose flush panicked or was dropped, one whose
//!   flush failed with an error that is not transient (an operation that fails its flush
//!   every time is stopped by the deaths as before).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::outbox::StagedOp;
use crate::run_guard::ALIVE_FOR_AT_MOST;

/// How long an attempt that ended here is remembered: its claims run out within a claim
/// (30 s by default) and are taken over at the next flush of the portal.
const REMEMBERED_FOR: Duration = Duration::from_secs(3_600);

#[derive(Clone, Copy, Debug)]
enum State {
    Going(Instant),
    EndedAlive(Instant),
}

/// What this process knows of an attempt whose claim ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Here {
    /// Still going here: not dead, only slow.
    Going,
    /// Ended here with the process alive: no death.
    EndedAlive,
    /// Not this process's, or it died (panicked, dropped, hung, failed for good).
    Unknown,
}

/// The attempts of this process: shared by the clones of one flusher.
#[derive(Clone, Default)]
pub struct AttemptsHere(Arc<Mutex<HashMap<String, State>>>);

impl AttemptsHere {
    /// What this process knows of `attempt`.
    pub fn of(&self, attempt: &str) -> Here {
        match self.0.lock().expect("attempts lock").get(attempt) {
            Some(State::Going(since)) if since.elapsed() < ALIVE_FOR_AT_MOST => Here::Going,
            Some(State::EndedAlive(_)) => Here::EndedAlive,
            _ => Here::Unknown,
        }
    }

    /// `ready` without the operations whose run-out claim is an attempt still going here
    /// (slow, not dead), nor anything after them in their conversations; those whose
    /// attempt ended here with the process alive are marked so, and taking them over
    /// counts no death.
    pub fn spare_the_living(&self, ready: Vec<StagedOp>) -> Vec<StagedOp> {
        let mut behind_the_living: HashSet<String> = HashSet::new();
        ready
            .into_iter()
            .filter_map(|mut op| {
                if behind_the_living.contains(op.conversation()) {
                    return None;
                }
                match op.ran_out.as_deref().map(|a| self.of(a)) {
                    Some(Here::Going) => {
                        behind_the_living.insert(op.conversation().to_owned());
                        None
                    }
                    Some(Here::EndedAlive) => {
                        op.ran_out_alive = true;
                        Some(op)
                    }
                    _ => Some(op),
                }
            })
            .collect()
    }

    /// The attempts of one flush, from its first to its end ([`FlushAttempts::end`]).
    pub fn flush(&self) -> FlushAttempts {
        FlushAttempts {
            here: self.clone(),
            attempts: Vec::new(),
            ended: false,
        }
    }
}

/// The attempts one flush made. Dropped without [`FlushAttempts::end`] (the flush panicked
/// or was dropped), they are forgotten: their run-out claims count as deaths.
pub struct FlushAttempts {
    here: AttemptsHere,
    attempts: Vec<String>,
    ended: bool,
}

impl FlushAttempts {
    /// Records that `attempt` is going.
    pub fn start(&mut self, attempt: &str) {
        let mut map = self.here.0.lock().expect("attempts lock");
        map.insert(attempt.to_owned(), State::Going(Instant::now()));
        self.attempts.push(attempt.to_owned());
    }

    /// The flush returned: its attempts ended with the process alive, unless `for_good`
    /// (an error that is not transient), when they count as deaths.
    pub fn end(mut self, for_good: bool) {
        self.ended = true;
        let mut map = self.here.0.lock().expect("attempts lock");
        let now = Instant::now();
        map.retain(|_, s| match s {
            State::EndedAlive(at) => now.duration_since(*at) < REMEMBERED_FOR,
            State::Going(since) => now.duration_since(*since) < ALIVE_FOR_AT_MOST,
        });
        for attempt in self.attempts.drain(..) {
            if for_good {
                map.remove(&attempt);
            } else {
                map.insert(attempt, State::EndedAlive(now));
            }
        }
    }
}

impl Drop for FlushAttempts {
    fn drop(&mut self) {
        if !self.ended {
            let mut map = self.here.0.lock().expect("attempts lock");
            for attempt in &self.attempts {
                map.remove(attempt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_going_then_ended_alive_or_forgotten() {
        let here = AttemptsHere::default();
        let mut flush = here.flush();
        flush.start("a1");
        assert_eq!(here.of("a1"), Here::Going);
        assert_eq!(here.of("elsewhere"), Here::Unknown);
        flush.end(false);
        assert_eq!(here.of("a1"), Here::EndedAlive);

        let mut failed = here.flush();
        failed.start("a2");
        failed.end(true);
        assert_eq!(here.of("a2"), Here::Unknown, "failed for good: a death");

        let mut dropped = here.flush();
        dropped.start("a3");
        drop(dropped);
        assert_eq!(here.of("a3"), Here::Unknown, "panicked or dropped: a death");
    }
}
