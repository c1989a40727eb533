//! For tests of the durability promise with a real kill: the test binary runs one of its own
//! tests as a child process, which prints `acked <value>` for each write it was answered, and
//! kills it (SIGKILL) at an arbitrary point.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::BufRead;

/// Runs the test named `child_test` (exact path) of this test binary in a child process with
/// `env` set (the child test returns at once without it), reads its `acked ...` lines until
/// `acked` of them were printed, kills it, and returns every value it printed as
/// acknowledged before it died.
pub fn acknowledged_before_a_kill(
    child_test: &str,
    env: (&str, &OsStr),
    acked: usize,
) -> HashSet<String> {
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = HashSet::new();
    while seen.len() < acked {
        let line = lines
            .next()
            .expect("the child stopped early")
            .expect("line");
        if let Some(value) = line.strip_prefix("acked ") {
            seen.insert(value.to_owned());
        }
    }
    child.kill().expect("kill");
    // What the child printed before it died was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(value) = line.strip_prefix("acked ") {
            seen.insert(value.to_owned());
        }
    }
    let _ = child.wait();
    seen
}
