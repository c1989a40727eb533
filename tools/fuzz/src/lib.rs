//! Fuzzing of every parser of untrusted input (decision 0042).
//!
//! Each [`targets::Target`] is fed inputs from a proptest strategy: structure-aware ones
//! built from the real shapes ([`json`]) and byte-level mutations of valid ones ([`bytes`]).
//! [`run`] executes a target a given number of times on several threads, catches every
//! panic, and saves each crashing input. The command (`src/main.rs`) runs millions; the
//! smoke tests (`tests/smoke.rs`) run a few thousand per target in CI.

pub mod bytes;
pub mod json;
pub mod targets;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sha2::{Digest, Sha256};

/// Mutated variants run after each input drawn from a target's strategy.
pub const VARIANTS: u64 = 3;

/// What one run of a target did.
#[derive(Debug)]
pub struct Stats {
    pub target: &'static str,
    pub execs: u64,
    /// Inputs the parser accepted: how deep the generated inputs reach.
    pub accepted: u64,
    pub crashes: u64,
    pub elapsed: Duration,
    /// The first panic message of each distinct crash (by its location), at most ten.
    pub messages: Vec<String>,
    /// The crashing inputs saved (one file per distinct input).
    pub saved: Vec<PathBuf>,
}

thread_local! {
    /// The last panic's message on this thread (the hook records it instead of printing).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is running a parser under [`run`] or [`replay`].
    static FUZZING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a parser) with its panic caught and its message recorded, not printed.
fn caught<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    FUZZING.with(|x| x.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    FUZZING.with(|x| x.set(false));
    outcome.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    })
}

/// Installs a panic hook that records the message of a parser's panic for [`run`] (a run
/// may catch thousands, and the report lists them instead); any other panic goes to the
/// hook that was there before.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(Cell::get) {
                return previous(info);
            }
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{at}: {message}")));
        }));
    });
}

/// The seed of thread `thread` of a run seeded `seed`.
fn rng(seed: u64, thread: usize) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(thread as u64).to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs target `name` `execs` times over `threads` threads, from `seed` (the same seed gives
/// the same inputs). Crashing inputs go to `crash_dir` when given, as
/// `<target>-<sha256 prefix>.bin`.
///
/// Panics if `name` is not a target.
pub fn run(name: &str, execs: u64, threads: usize, seed: u64, crash_dir: Option<&Path>) -> Stats {
    if targets::target(name).is_none() {
        panic!("no target named {name}");
    }
    let make = || targets::target(name).expect("checked above");
    run_target(&make, execs, threads, seed, crash_dir)
}

/// [`run`], for a target made by `make` (called once per thread).
pub fn run_target(
    make: &(dyn Fn() -> targets::Target + Sync),
    execs: u64,
    threads: usize,
    seed: u64,
    crash_dir: Option<&Path>,
) -> Stats {
    let target_name = make().name;
    quiet_panics();
    if let Some(dir) = crash_dir {
        std::fs::create_dir_all(dir).expect("the crash folder can be made");
    }
    let threads = threads.max(1);
    let done = AtomicU64::new(0);
    let crashes = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    let messages = Mutex::new(Vec::<String>::new());
    let saved = Mutex::new(Vec::<PathBuf>::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let share = execs / threads as u64 + u64::from((t as u64) < execs % threads as u64);
            let (done, accepted, crashes) = (&done, &accepted, &crashes);
            let (messages, saved) = (&messages, &saved);
            scope.spawn(move || {
                let target = make();
                let havoc = bytes::mutations();
                let mut runner = TestRunner::new_with_rng(Config::default(), rng(seed, t));
                let mut base = Vec::new();
                for i in 0..share {
                    // A fresh input from the target's strategy, then VARIANTS mutations of it:
                    // drawing a structured input costs several times a parse, a mutation
                    // far less (AFL's havoc stage works the same way).
                    let input = if i % (VARIANTS + 1) == 0 {
                        base = target
                            .inputs
                            .new_tree(&mut runner)
                            .expect("the strategies reject nothing")
                            .current();
                        base.clone()
                    } else {
                        let m = havoc
                            .new_tree(&mut runner)
                            .expect("the strategies reject nothing")
                            .current();
                        bytes::apply(base.clone(), &m, &target.seeds)
                    };
                    let outcome = caught(|| (target.run)(&input));
                    if outcome.as_ref().is_ok_and(|ok| *ok) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(message) = outcome {
                        crashes.fetch_add(1, Ordering::Relaxed);
                        let mut m = messages.lock().unwrap_or_else(|e| e.into_inner());
                        let at = message.split(": ").next().unwrap_or_default().to_owned();
                        if m.len() < 10 && !m.iter().any(|x| x.starts_with(&at)) {
                            m.push(message);
                        }
                        if let Some(dir) = crash_dir {
                            let hash = hex::encode(&Sha256::digest(&input)[..8]);
                            let path = dir.join(format!("{target_name}-{hash}.bin"));
                            let mut s = saved.lock().unwrap_or_else(|e| e.into_inner());
                            if !s.contains(&path) {
                                std::fs::write(&path, &input).expect("a crash is saved");
                                s.push(path);
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Stats {
        target: target_name,
        execs: done.load(Ordering::Relaxed),
        accepted: accepted.load(Ordering::Relaxed),
        crashes: crashes.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        messages: messages.into_inner().unwrap_or_else(|e| e.into_inner()),
        saved: saved.into_inner().unwrap_or_else(|e| e.into_inner()),
    }
}

/// Runs one saved input through target `name` and returns its panic message, if it panics.
pub fn replay(name: &str, input: &[u8]) -> Option<String> {
    let target = targets::target(name).unwrap_or_else(|| panic!("no target named {name}"));
    quiet_panics();
    caught(|| (target.run)(input)).err()
}
