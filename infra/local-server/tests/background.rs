//! The background runtime (decision 0094): a wrong layout stops the start with a clear error;
//! the schedules (and the consumers, spawned the same way) run on threads of their own at the
//! raised nice value, while the listener's requests run at the server's own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use local_server::background::{current_nice, MAX_NICE, THREAD_NAME};
use local_server::{LocalConfig, LocalServer};
use wappline::faults::hooked::{FnHook, SharedHook, StoreCall, Verdict};

const TOKEN: &str = "background-test-admin-token";

#[tokio::test]
async fn a_wrong_background_layout_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalConfig::for_tests(dir.path(), TOKEN);
    config.background_nice = 20;
    let e = LocalServer::start(config.clone())
        .await
        .err()
        .expect("nice 20");
    assert!(e.contains("--background-nice") && e.contains("20"), "{e}");
    config.background_nice = -5;
    let e = LocalServer::start(config.clone())
        .await
        .err()
        .expect("nice -5");
    assert!(e.contains("--background-nice"), "{e}");
    config.background_nice = 10;
    config.background_threads = Some(0);
    let e = LocalServer::start(config.clone())
        .await
        .err()
        .expect("no threads");
    assert!(e.contains("--background-threads"), "{e}");
    config.background_threads = None;
    config.inbound_consumers = 0;
    let e = LocalServer::start(config)
        .await
        .err()
        .expect("no inbound loops");
    assert!(e.contains("--inbound-consumers"), "{e}");
}

/// The inbound loops are set from the flag or the environment, 1 to 256, 32 by default.
#[test]
fn inbound_loops_come_from_the_flag_within_their_range() {
    use clap::Parser;
    let parse = |args: &[&str]| LocalConfig::try_parse_from([&["local-server"], args].concat());
    assert_eq!(parse(&[]).unwrap().inbound_consumers, 32);
    assert_eq!(
        parse(&["--inbound-consumers", "48"])
            .unwrap()
            .inbound_consumers,
        48
    );
    for wrong in ["0", "257", "many"] {
        let e = parse(&["--inbound-consumers", wrong]).unwrap_err();
        assert!(
            e.to_string().contains("--inbound-consumers"),
            "{wrong}: {e}"
        );
    }
}

/// One store call as the hook saw it: the thread's name and nice value.
#[derive(Debug, Clone)]
struct Seen {
    thread: String,
    nice: i32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_run_on_the_background_threads_at_the_raised_nice_and_requests_do_not() {
    let own = current_nice().unwrap();
    const RAISE: i32 = 5;
    if own + RAISE > MAX_NICE {
        // A nice value above 14 leaves no room to see a raise by 5 (run without `nice`).
        eprintln!("skipped: this process runs at nice {own}");
        return;
    }
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let hook = SharedHook(Arc::new(FnHook(move |_call: &StoreCall<'_>| {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        let nice = current_nice().unwrap();
        record.lock().unwrap().push(Seen { thread, nice });
        Verdict::Run
    })));
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalConfig::for_tests(dir.path(), TOKEN);
    config.background_nice = RAISE;
    config.background_threads = Some(2);
    config.store_hook = Some(hook);
    let server = LocalServer::start(config).await.unwrap();

    // A request: the admin API writes the tenant on the listener's runtime (this test's).
    let answer = reqwest::Client::new()
        .post(format!("http://{}/admin/tenants", server.addr()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"name": "Acme Bakery", "retention_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let by_request = seen.lock().unwrap().clone();
    assert!(!by_request.is_empty());

    // The schedules run every second (`for_tests`) and read the store each time.
    let started = Instant::now();
    let on_background = loop {
        let background: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.thread == THREAD_NAME)
            .cloned()
            .collect();
        if !background.is_empty() {
            break background;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no store call from a background thread: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.shutdown().await;

    assert!(
        on_background.iter().all(|s| s.nice == own + RAISE),
        "background calls at nice {}: {on_background:?}",
        own + RAISE
    );
    let request_calls: Vec<&Seen> = by_request
        .iter()
        .filter(|s| s.thread != THREAD_NAME)
        .collect();
    assert!(
        !request_calls.is_empty() && request_calls.iter().all(|s| s.nice == own),
        "the request's calls on the listener's threads at nice {own}: {by_request:?}"
    );
}
