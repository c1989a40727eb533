//! CRM sync throughput into one busy portal (a bench binary, not a test): run with
//! `cargo bench -p e2e-tests --bench sync_throughput`; figures go to docs/performance.md.
//!
//! The local server (its real webhook, inbound and sync consumers) relays WhatsApp messages
//! into the Bitrix24 fake, which enforces Bitrix24's documented request limit (2 requests/s
//! after a burst of 50; `503 QUERY_LIMIT_EXCEEDED` beyond it). Customers write at a steady
//! offered rate; the bench reports messages delivered per second, requests per second at the
//! portal, refusals, and the latency from the webhook's answer to the message's arrival in
//! the portal.
//!
//! 1. Batched (decision 0023, `SYNC_BATCH` 50): 60 messages/s offered for 60 s.
//! 2. Baseline in the same run: one operation per request (`SYNC_BATCH` 1), what the worker
//!    did before, 60 messages/s offered for 30 s.
//! 3. Lost answers: every 25th request's answer is lost after the portal took it; duplicates
//!    per 10,000 messages (the residue of decision 0023: first posts of a conversation).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use e2e_tests::fake_bitrix::{FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{Harness, WA_NUMBER};
use e2e_tests::whatsapp_events;

const LINE: u32 = 7;

fn delivery(customer: u64, id: &str, n: usize) -> Vec<u8> {
    whatsapp_events::text(
        &customer.to_string(),
        "Kerry Fisher",
        id,
        1_767_261_600 + n as i64,
        "Hello, is the offer from your campaign still valid for my order?",
    )
}

struct Run {
    offered: usize,
    delivered: usize,
    window: Duration,
    requests: usize,
    refused: usize,
    duplicates: usize,
    /// Duplicates that were their conversation's first post (decision 0023's residue).
    first_post_duplicates: usize,
    latencies_ms: Vec<u64>,
}

async fn run(
    name: &str,
    batch: usize,
    rate: f64,
    offer_for: Duration,
    customers: u64,
    lose_every: Option<usize>,
) -> Run {
    let fake = FakeBitrix::start().await;
    fake.limit_rate(FAKE_DOMAIN, 2.0, 50);
    let h = Harness::start(|c| {
        fake.wire_into(c);
        c.retry_base_ms = 1000;
        c.sync_batch = Some(batch.to_string());
    })
    .await;
    let tenant = h.create_tenant("Busy").await;
    h.connect_whatsapp(&tenant, WA_NUMBER, "102290129340398", "EAAwhatsappTOKEN")
        .await;
    h.connect_portal(&tenant, &fake, FAKE_DOMAIN, FAKE_MEMBER_ID, LINE)
        .await;
    if let Some(n) = lose_every {
        fake.lose_answers(FAKE_DOMAIN, n);
    }

    let total = (rate * offer_for.as_secs_f64()) as usize;
    let started = Instant::now();
    let mut posted_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut arrived_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut seen = 0usize;
    let watch = |arrived_at: &mut HashMap<String, Instant>, seen: &mut usize| {
        let received = fake.messages_received();
        let now = Instant::now();
        for m in &received[*seen..] {
            arrived_at
                .entry(m.external_message_id.clone())
                .or_insert(now);
        }
        *seen = received.len();
    };
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        while Instant::now() < due {
            watch(&mut arrived_at, &mut seen);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let customer = 16_505_550_000 + (n as u64 % customers);
        let id = format!("wamid.bench.{name}.{n:07}");
        let (status, _) = h.post_signed(&delivery(customer, &id, n)).await;
        assert!(status.is_success());
        posted_at.insert(id, Instant::now());
    }
    // Let the backlog drain (bounded: the baseline cannot keep up).
    let drain_until = Instant::now() + Duration::from_secs(if batch > 1 { 120 } else { 0 });
    loop {
        watch(&mut arrived_at, &mut seen);
        if arrived_at.len() >= total || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let window = started.elapsed();
    let mut latencies_ms: Vec<u64> = arrived_at
        .iter()
        .filter_map(|(id, at)| {
            posted_at
                .get(id)
                .map(|p| at.saturating_duration_since(*p).as_millis() as u64)
        })
        .collect();
    latencies_ms.sort_unstable();
    // A duplicate is a first post when its id is the first to arrive in its chat.
    let received = fake.messages_received();
    let mut first_in_chat: HashMap<&str, &str> = HashMap::new();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for m in &received {
        first_in_chat
            .entry(m.external_chat_id.as_str())
            .or_insert(m.external_message_id.as_str());
        *copies.entry(m.external_message_id.as_str()).or_default() += 1;
    }
    let first_post_duplicates = first_in_chat
        .values()
        .map(|id| copies.get(id).copied().unwrap_or(1) - 1)
        .sum();
    let r = Run {
        offered: total,
        delivered: arrived_at.len(),
        window,
        requests: fake
            .calls()
            .iter()
            .filter(|c| c.domain == FAKE_DOMAIN)
            .count(),
        refused: fake.rate_limited_count(),
        duplicates: fake.duplicate_posts(),
        first_post_duplicates,
        latencies_ms,
    };
    h.server.shutdown().await;
    r
}

fn pct(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, r: &Run) {
    let secs = r.window.as_secs_f64();
    println!(
        "{name}: offered {} delivered {} in {:.1} s = {:.1} msg/s; portal requests {} ({:.2}/s), refused {}; duplicates {} (first posts {}); latency webhook->portal ms p50 {} p95 {} p99 {} max {}",
        r.offered,
        r.delivered,
        secs,
        r.delivered as f64 / secs,
        r.requests,
        r.requests as f64 / secs,
        r.refused,
        r.duplicates,
        r.first_post_duplicates,
        pct(&r.latencies_ms, 0.50),
        pct(&r.latencies_ms, 0.95),
        pct(&r.latencies_ms, 0.99),
        r.latencies_ms.last().copied().unwrap_or(0),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let batched = run("batched", 50, 60.0, Duration::from_secs(60), 600, None).await;
    report("batched (50 per request)", &batched);
    let baseline = run("single", 1, 60.0, Duration::from_secs(30), 600, None).await;
    report("baseline (1 per request)", &baseline);
    let lossy = run("lossy", 50, 60.0, Duration::from_secs(60), 600, Some(25)).await;
    report("lost answers (every 25th request)", &lossy);
    println!(
        "duplicates per 10,000 messages with lost answers: {:.1}",
        lossy.duplicates as f64 * 10_000.0 / lossy.offered.max(1) as f64
    );
}
