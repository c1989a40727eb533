//! The runtime the local server's background work runs on: the queue consumers (inbound,
//! outbound, export, erasure and CRM sync workers), the schedules and the metrics' flush, on
//! threads of their own that the operating system schedules after the HTTP listener's when
//! both are ready to run (decision 0094).
//!
//! Why: Meta gives a webhook delivery a few seconds and retries it, then disables a webhook
//! that keeps failing; what a delivery starts (the inbound worker's relay, the sync job) has
//! no such deadline, it only has to catch up. On a small machine the two want the same cores
//! at the same time, and within one tokio runtime a webhook's task waits behind whatever
//! worker task holds a thread. With the background on threads of a higher nice value, the
//! kernel runs a ready listener thread first, and the background still gets every cycle the
//! listener leaves (a nice value weighs a thread's share, it does not stop it).

use std::io;

use tokio::runtime::{Handle, Runtime};

/// The default nice increment of the background threads over the server's own.
pub const DEFAULT_NICE: i32 = 10;
/// The largest nice value Linux has (the lowest priority that is still a normal one).
pub const MAX_NICE: i32 = 19;
/// The background runtime's threads, as they appear in `top -H` and `/proc`.
pub const THREAD_NAME: &str = "background";

/// How the background runtime is laid out: checked once, when the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    threads: usize,
    nice: i32,
}

impl Layout {
    /// `threads` worker threads (at least 1), their nice value `nice` above the server's own
    /// (0 to [`MAX_NICE`]; 0 keeps the listener's priority).
    pub fn new(threads: usize, nice: i32) -> Result<Self, String> {
        if threads == 0 {
            return Err("--background-threads must be at least 1".into());
        }
        if !(0..=MAX_NICE).contains(&nice) {
            return Err(format!(
                "--background-nice must be 0 to {MAX_NICE} (added to the server's nice value), not {nice}"
            ));
        }
        Ok(Layout { threads, nice })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn nice(&self) -> i32 {
        self.nice
    }
}

/// The background runtime. Dropping it stops its tasks at their next await (what a stopped
/// process does to them); [`crate::LocalServer::shutdown`] lets them finish first.
pub struct Background {
    runtime: Option<Runtime>,
}

impl Background {
    /// Starts the runtime's threads, each at the calling thread's nice value plus the
    /// layout's (at most [`MAX_NICE`]).
    pub fn start(layout: Layout) -> Result<Self, String> {
        let target = (current_nice().map_err(|e| format!("cannot read the nice value: {e}"))?
            + layout.nice)
            .min(MAX_NICE);
        let lower = layout.nice > 0;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(layout.threads)
            .thread_name(THREAD_NAME)
            .enable_all()
            // Every thread of the runtime, its blocking pool's included: a consumer's blocking
            // work is background work too. Threads inherit their creator's nice value, so the
            // absolute target (not an increment) is set, once per thread.
            .on_thread_start(move || {
                if lower {
                    if let Err(e) = set_current_nice(target) {
                        tracing::warn!(error = %e, "background thread keeps the listener's priority");
                    }
                }
            })
            .build()
            .map_err(|e| format!("cannot start the background runtime: {e}"))?;
        Ok(Background {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until dropped")
            .handle()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Not a blocking shutdown: the server may be dropped inside another runtime's task,
        // where waiting for threads is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn current_nice() -> io::Result<i32> {
    // -1 is a valid answer of getpriority, so errors are told by errno alone.
    // SAFETY: errno is thread-local; getpriority reads the scheduling attributes of this
    // thread (Linux takes a thread id for PRIO_PROCESS and applies it to that thread alone).
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, thread_id());
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(0) => Ok(nice),
            e => Err(e),
        }
    }
}

/// Sets the calling thread's nice value (raising it needs no privilege).
#[cfg(target_os = "linux")]
fn set_current_nice(nice: i32) -> io::Result<()> {
    // SAFETY: a plain system call on this thread's own id.
    match unsafe { libc::setpriority(libc::PRIO_PROCESS, thread_id(), nice) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(target_os = "linux")]
fn thread_id() -> libc::id_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

// Elsewhere (macOS) a nice value belongs to the whole process, so the background threads keep
// the listener's priority there; the runtime is still their own.
#[cfg(not(target_os = "linux"))]
pub fn current_nice() -> io::Result<i32> {
    Ok(0)
}

#[cfg(not(target_os = "linux"))]
fn set_current_nice(_nice: i32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_refuses_no_threads_and_nice_values_outside_0_to_19() {
        let none = Layout::new(0, 10).unwrap_err();
        assert!(none.contains("--background-threads"), "{none}");
        for nice in [-1, 20] {
            let e = Layout::new(2, nice).unwrap_err();
            assert!(
                e.contains("--background-nice") && e.contains(&nice.to_string()),
                "{e}"
            );
        }
        let ok = Layout::new(1, 19).unwrap();
        assert_eq!((ok.threads(), ok.nice()), (1, 19));
        assert_eq!(Layout::new(3, 0).unwrap().nice(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn background_threads_and_their_blocking_pool_run_at_the_raised_nice_value() {
        let own = current_nice().unwrap();
        if own + 7 > MAX_NICE {
            // No room to see a raise by 7 (run without `nice`).
            eprintln!("skipped: this process runs at nice {own}");
            return;
        }
        let expected = own + 7;
        let background = Background::start(Layout::new(2, 7).unwrap()).unwrap();
        let (on_worker, on_blocking) = background.handle().block_on(async {
            let on_worker = tokio::spawn(async { current_nice().unwrap() })
                .await
                .unwrap();
            let on_blocking = tokio::task::spawn_blocking(|| current_nice().unwrap())
                .await
                .unwrap();
            (on_worker, on_blocking)
        });
        assert_eq!(on_worker, expected, "a worker thread");
        assert_eq!(on_blocking, expected, "a blocking-pool thread");
        assert_eq!(
            current_nice().unwrap(),
            own,
            "the starting thread keeps its own"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn nice_0_leaves_the_background_at_the_servers_priority() {
        let own = current_nice().unwrap();
        let background = Background::start(Layout::new(1, 0).unwrap()).unwrap();
        let on_worker = background.handle().block_on(async {
            tokio::spawn(async { current_nice().unwrap() })
                .await
                .unwrap()
        });
        assert_eq!(on_worker, own);
    }
}
