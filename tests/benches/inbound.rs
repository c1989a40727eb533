//! Inbound relay benchmark (a bench binary, not a test): run with
//! `cargo bench -p e2e-tests --bench inbound`; figures go to docs/performance.md.
//!
//! 1. The webhook's own work per delivery: signature check and split, in process.
//! 2. The webhook path with the embedded queue: signature, split, route lookup, enqueue.
//! 3. The whole inbound path on the local server over HTTP: signed deliveries (2,000, or
//!    `INBOUND_BENCH_MESSAGES`) posted by concurrent clients until every message is stored
//!    encrypted and its CRM sync job is queued; messages per second, process CPU time per
//!    message, and the cores that CPU time kept busy.
//! 4. The webhook under `wrk` (if it is installed) at 8 and 64 connections, 10 s each, on a
//!    fresh server: every request a distinct signed delivery (read from a file by a Lua
//!    script, since wrk cannot sign), so none is deduplicated; deliveries/s and p99.
//!
//! `WAPPLINE_BACKGROUND_NICE`, `WAPPLINE_BACKGROUND_THREADS` and `WAPPLINE_INBOUND_CONSUMERS`,
//! when set, lay out the servers' background runtime and inbound loops as they do the local
//! server's (decision 0094), to compare layouts with one binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::harness::Harness;
use e2e_tests::whatsapp_events;
use local_server::LocalConfig;
use wappline::meta::{split_webhook, verify_signature, AppSecret};
use wappline::queue::platform;

const SECRET: &str = "6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b";

/// A WhatsApp text message delivery, unique per `n`, from one of 50 customers, stamped within
/// the last hour as Meta stamps what it delivers at once (the inbound worker treats a message
/// stamped in the last day differently from a late redelivery, decision 0096).
fn delivery(n: usize) -> Vec<u8> {
    let customer = 15550000000u64 + (n % 50) as u64;
    let stamped = wappline::clock::now_secs() - 3_600 + (n % 3_600) as i64;
    whatsapp_events::text(
        &customer.to_string(),
        "Kerry Fisher",
        &format!("wamid.HBgLMTU1NTAxMDAwMDEVAgASGBQz{n:016}"),
        stamped,
        "Hello, I would like to know more about the order I placed yesterday, number 4711.",
    )
}

/// User + system CPU time of this process (Linux /proc), for CPU per message.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 Hz on Linux unless configured otherwise.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The background runtime's layout from the local server's own variables, when set.
fn background_from_env(config: &mut LocalConfig) {
    if let Ok(v) = std::env::var("WAPPLINE_BACKGROUND_NICE") {
        config.background_nice = v.parse().expect("WAPPLINE_BACKGROUND_NICE: a number");
    }
    if let Ok(v) = std::env::var("WAPPLINE_BACKGROUND_THREADS") {
        config.background_threads = Some(v.parse().expect("WAPPLINE_BACKGROUND_THREADS: a number"));
    }
    if let Ok(v) = std::env::var("WAPPLINE_INBOUND_CONSUMERS") {
        config.inbound_consumers = v.parse().expect("WAPPLINE_INBOUND_CONSUMERS: a number");
    }
}

/// The local server's allocator, as its binary sets it (decision 0109).
#[global_allocator]
static ALLOCATOR: local_server::Allocator = local_server::Allocator;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let secret = AppSecret::new(SECRET).unwrap();

    // 1. Signature + split.
    let body = delivery(1);
    let sig = secret.sign(&body);
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        verify_signature(&secret, Some(&sig), &body).unwrap();
        let batch = split_webhook(&body).unwrap();
        assert_eq!(batch.events.len(), 1);
    }
    let per = started.elapsed() / n;
    println!(
        "signature + split of a {} B delivery: {:>8.1} µs/delivery ({n} runs)",
        body.len(),
        per.as_secs_f64() * 1e6
    );

    rt.block_on(async {
        // 3 (and 2 through it). The local server, CRM sync off so jobs stay countable.
        let h = Arc::new(Harness::start(background_from_env).await);
        h.tenant_with_channels().await;
        // 2,000 unless `INBOUND_BENCH_MESSAGES` says otherwise: more makes the figure the
        // sustained rate with a backlog in the queue rather than one burst's.
        let total: usize = std::env::var("INBOUND_BENCH_MESSAGES")
            .map(|v| v.parse().expect("INBOUND_BENCH_MESSAGES: a number"))
            .unwrap_or(2_000);
        let clients = 8;
        let bodies: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
            (0..total)
                .map(|i| {
                    let b = delivery(i + 10);
                    let s = secret.sign(&b);
                    (b, s)
                })
                .collect(),
        );
        let cpu0 = cpu_time();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let h = h.clone();
            let bodies = bodies.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in (c..total).step_by(clients) {
                    let (b, s) = &bodies[i];
                    let t = Instant::now();
                    let (status, _) = h.post(b, Some(s.clone())).await;
                    latencies.push(t.elapsed());
                    assert!(status.is_success());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let accepted = started.elapsed();
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "webhook over HTTP, {clients} clients: {:.0} deliveries/s; latency p50 {:.2} ms, p99 {:.2} ms",
            total as f64 / accepted.as_secs_f64(),
            p(0.5).as_secs_f64() * 1e3,
            p(0.99).as_secs_f64() * 1e3
        );
        loop {
            if h.depth(platform::SYNC).await >= total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let cpu = match (cpu0, cpu_time()) {
            // The cores busy while relaying: the same in every run when the path is bound
            // by CPU, whose cost per message moves with the machine (decision 0108).
            (Some(a), Some(b)) => format!(
                "{:.0} µs CPU/message (webhook + worker + test clients), {:.2} cores busy",
                (b - a).as_secs_f64() * 1e6 / total as f64,
                (b - a).as_secs_f64() / elapsed.as_secs_f64()
            ),
            _ => "CPU time unavailable".into(),
        };
        println!(
            "whole inbound path (webhook → queue → worker → encrypted store → sync job): {total} messages in {:.2} s = {:.0} messages/s; {cpu}",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        // Stopped, not just dropped: a dropped server's consumers would go on beside part 4.
        let h = Arc::into_inner(h).expect("the clients have finished");
        h.server.shutdown().await;
    });

    // 4. wrk, each run on a fresh server (its own data dir), so the first run's backlog in the
    // inbound queue does not weigh on the second.
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("wrk not installed: webhook load test skipped");
        return;
    }
    for connections in [8, 64] {
        rt.block_on(async {
            let h = Harness::start(background_from_env).await;
            h.tenant_with_channels().await;
            let dir = tempfile::tempdir().unwrap();
            let bodies = dir.path().join("bodies.txt");
            let mut lines = String::new();
            // More than 10 s at any rate this server reaches: each request is a new delivery.
            for i in 0..60_000 {
                let b = delivery(1_000_000 * connections + i);
                let sig = secret.sign(&b);
                lines.push_str(&format!("{sig} {}\n", String::from_utf8(b).unwrap()));
            }
            std::fs::write(&bodies, lines).unwrap();
            let script = dir.path().join("post.lua");
            std::fs::write(&script, WRK_SCRIPT).unwrap();
            // Blocking here holds only this thread; the server runs on the runtime's workers.
            let out = std::process::Command::new("wrk")
                .args([
                    "-t2",
                    &format!("-c{connections}"),
                    "-d10s",
                    "--latency",
                    "-s",
                ])
                .arg(&script)
                .arg(format!("{}/webhooks/meta", h.base))
                .arg("--")
                .arg(&bodies)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            let line = |prefix: &str| {
                report
                    .lines()
                    .find(|l| l.trim_start().starts_with(prefix))
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_else(|| format!("{prefix}: missing"))
            };
            println!(
                "webhook under wrk, {connections} connections, 10 s: {}; latency {}, {}, {}",
                line("Requests/sec"),
                line("50%"),
                line("99%"),
                line("Non-2xx").replace("Non-2xx or 3xx responses:", "non-2xx:")
            );
            assert!(
                !report.contains("Non-2xx"),
                "every delivery must be accepted: {report}"
            );
            // The 8-connection run leaves a backlog in its inbound queue: stopped here, its
            // worker does not relay it during the 64-connection run on the next server.
            h.server.shutdown().await;
        });
    }
}

/// wrk script: each thread reads the signed deliveries ("signature body" per line) and posts
/// them in turn, thread `i` of `n` taking lines i, i + n, ...
const WRK_SCRIPT: &str = r#"
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  sigs, bodies = {}, {}
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%S+) (.*)$")
    table.insert(sigs, sig)
    table.insert(bodies, body)
  end
  nthreads = 2
  i = id + 1
end
function request()
  local n = i
  i = i + nthreads
  if i > #bodies then i = id + 1 end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = sigs[n],
  }, bodies[n])
end
"#;
