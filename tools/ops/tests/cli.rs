//! `wappline-ops redrive` run as an operator runs it: the built binary, against a local data
//! dir and against SQS (the moto server scripts/test.sh starts; `MOTO_ENDPOINT`). What it
//! prints must name message ids and groups, never a body or a phone number.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_sqs::config::Credentials;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::sqs::{provision_queues, SqsQueue};
use wappline::queue::{platform, OutgoingMessage, Queue, QueueName, ReceivedMessage, MAX_BATCH};

/// Bodies as a dead-lettered job might hold them: a phone number the output must not show.
const PHONE: &str = "+15550001234";

fn bodies() -> Vec<String> {
    ["first", "second", "third"]
        .iter()
        .map(|n| format!("{{\"job\":\"{n}\",\"from\":\"{PHONE}\"}}"))
        .collect()
}

fn sync() -> QueueName {
    platform::name(platform::SYNC)
}

/// The dead-lettered jobs: two groups, in order.
fn dead_letters() -> Vec<OutgoingMessage> {
    let b = bodies();
    vec![
        OutgoingMessage::new(&b[0]).grouped("t1.c1", "d0"),
        OutgoingMessage::new(&b[1]).grouped("t1.c2", "d1"),
        OutgoingMessage::new(&b[2]).grouped("t1.c1", "d2"),
    ]
}

/// The dead-letter queue's message ids, in order, without changing what it holds.
async fn dead_letter_ids(q: &dyn Queue) -> Vec<String> {
    let dlq = sync().dead_letter();
    let got = q
        .receive(&dlq, MAX_BATCH, Duration::from_secs(60))
        .await
        .expect("receive");
    for m in &got {
        q.change_visibility(&dlq, &m.receipt, Duration::ZERO)
            .await
            .expect("release");
    }
    got.into_iter().map(|m| m.message_id).collect()
}

async fn drain(q: &dyn Queue, name: &QueueName) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let batch = q
            .receive(name, MAX_BATCH, Duration::from_secs(60))
            .await
            .expect("receive");
        if batch.is_empty() {
            return all;
        }
        for m in &batch {
            q.ack(name, &m.receipt).await.expect("ack");
        }
        all.extend(batch);
    }
}

fn ops(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wappline-ops"));
    // Only what the test gives: no developer's AWS profile or queue URLs.
    command.env_clear().args(args).envs(env.iter().copied());
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command.output().expect("run wappline-ops")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_bodies(out: &Output) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert!(!text.contains(PHONE), "a phone number was printed:\n{text}");
    for word in ["first", "second", "third", "\"job\""] {
        assert!(!text.contains(word), "a body was printed:\n{text}");
    }
}

/// Dry run, then the redrive itself; checks the queues after each.
async fn dry_run_then_redrive(
    open: impl Fn() -> Box<dyn Queue>,
    args: &[&str],
    env: &[(&str, &str)],
) {
    let ids = {
        let q = open();
        q.send_batch(&sync().dead_letter(), dead_letters())
            .await
            .expect("send to the dead-letter queue");
        dead_letter_ids(q.as_ref()).await
    };
    assert_eq!(ids.len(), 3);

    let mut dry = vec!["redrive", "sync", "--dry-run"];
    dry.extend_from_slice(args);
    let out = ops(&dry, env);
    assert!(out.status.success(), "dry run failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("dry run: nothing moved; 3 message(s)"),
        "{text}"
    );
    for (id, group) in ids.iter().zip(["t1.c1", "t1.c2", "t1.c1"]) {
        assert!(
            text.contains(&format!("{id}  group {group}")),
            "{id} missing:\n{text}"
        );
    }
    assert_no_bodies(&out);
    {
        let q = open();
        assert!(drain(q.as_ref(), &sync()).await.is_empty(), "dry run sent");
        assert_eq!(dead_letter_ids(q.as_ref()).await, ids, "dry run kept them");
    }

    let mut run = vec!["redrive", "sync"];
    run.extend_from_slice(args);
    let out = ops(&run, env);
    assert!(out.status.success(), "redrive failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("moved 3 message(s) from sync-dlq.fifo to sync.fifo"),
        "{text}"
    );
    assert!(
        text.contains("sync-dlq.fifo now holds about 0 message(s)"),
        "{text}"
    );
    assert_no_bodies(&out);

    let q = open();
    let back = drain(q.as_ref(), &sync()).await;
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for m in back {
        groups
            .entry(m.group_id.expect("group"))
            .or_default()
            .push(m.body);
    }
    let b = bodies();
    assert_eq!(groups["t1.c1"], [b[0].clone(), b[2].clone()], "in order");
    assert_eq!(groups["t1.c2"], [b[1].clone()]);
    assert!(dead_letter_ids(q.as_ref()).await.is_empty(), "DLQ empty");
}

// ---- the local server's data dir ----

fn open_dir(dir: &Path) -> Box<dyn Queue> {
    Box::new(EmbeddedQueue::open(dir, platform::specs()).expect("open queues"))
}

#[tokio::test]
async fn redrives_a_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("utf-8 path").to_owned();
    // Each open is dropped before the tool runs: the file is locked while open.
    dry_run_then_redrive(|| open_dir(dir.path()), &["--data-dir", &path], &[]).await;
}

#[tokio::test]
async fn a_data_dir_without_queues_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = ops(
        &[
            "redrive",
            "sync",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("queues.redb not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "created nothing"
    );
}

#[tokio::test]
async fn a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _held = open_dir(dir.path());
    let out = ops(
        &[
            "redrive",
            "sync",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stop the local server using it first"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn only_platform_queues_are_taken() {
    let out = ops(&["redrive", "sync-dlq", "--data-dir", "."], &[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&out).contains("one of: inbound, sync, outbound, erasure, exports"),
        "{}",
        stderr(&out)
    );
}

// ---- AWS (moto) ----

fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts \
             moto_server on loopback, or start one yourself and export MOTO_ENDPOINT"
        )
    })
}

async fn moto_client() -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// The variables an operator sets: the queue URLs (stack outputs) and AWS access.
fn aws_env(urls: &HashMap<QueueName, String>, endpoint: &str) -> Vec<(String, String)> {
    let sync = sync();
    vec![
        (SqsQueue::url_env_var(&sync), urls[&sync].clone()),
        (
            SqsQueue::url_env_var(&sync.dead_letter()),
            urls[&sync.dead_letter()].clone(),
        ),
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

#[tokio::test]
async fn redrives_sqs_queues_named_by_the_functions_variables() {
    let client = moto_client().await;
    let urls = provision_queues(&client, &unique("ops"), &platform::specs())
        .await
        .expect("provision queues on moto");
    let env = aws_env(&urls, &moto_endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let open = || Box::new(SqsQueue::new(client.clone(), urls.clone())) as Box<dyn Queue>;
    dry_run_then_redrive(open, &[], &env).await;
}

#[tokio::test]
async fn a_missing_queue_url_is_named() {
    let client = moto_client().await;
    let urls = provision_queues(&client, &unique("ops"), &platform::specs())
        .await
        .expect("provision queues on moto");
    let env = aws_env(&urls, &moto_endpoint());
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != "QUEUE_URL_SYNC_DLQ")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = ops(&["redrive", "sync"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("QUEUE_URL_SYNC_DLQ not set"),
        "{}",
        stderr(&out)
    );
}
