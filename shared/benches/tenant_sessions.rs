//! Tenant-scoped credentials (decision 0037): `AssumeRole` calls per 10,000 messages for a
//! realistic mix of tenants, the added latency of a tenant's first request in a warm
//! function, and what a cold start pays. Needs the moto server (`MOTO_ENDPOINT`, as the
//! tests): `cargo bench -p wappline --bench tenant_sessions`; figures go to
//! docs/performance.md.
//!
//! The STS count is measured on the real mechanism (the fenced store over DynamoDB with one
//! `TenantSessions` per simulated warm instance: one `GetItem` per message, acting for its
//! tenant), not computed: it depends only on which instance sees which tenant within a
//! session's hour.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wappline::acting::acting_for;
use wappline::app::{AwsClientOptions, TenantSessions};
use wappline::ids::TenantId;
use wappline::store::dynamo::{provision_tables, DynamoStore, TableNames};
use wappline::store::fence::{FencedStore, TenantStores};
use wappline::store::{Key, Table, TableStore};

// The moto server's SDK configuration, as the AWS adapter tests have it.
#[allow(dead_code)]
#[path = "../tests/conformance/support.rs"]
mod support;

const ROLE: &str = "arn:aws:iam::123456789012:role/bench-tenant-data";

/// A warm instance: its fenced store and its sessions.
struct Instance {
    store: FencedStore,
    sessions: Arc<TenantSessions>,
}

fn instance(sdk: &aws_config::SdkConfig, names: &TableNames) -> Instance {
    let sessions = Arc::new(TenantSessions::new(
        sdk,
        ROLE.into(),
        names.clone(),
        "unused".into(),
        None,
        AwsClientOptions::default(),
    ));
    let base = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), names.clone());
    Instance {
        store: FencedStore::new(
            Arc::new(base),
            Some(sessions.clone() as Arc<dyn TenantStores>),
        ),
        sessions,
    }
}

/// A small deterministic generator (no dependency): xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Tenant indexes drawn from a Zipf(1) distribution over `n` tenants: a few busy tenants, a
/// long tail of quiet ones.
fn zipf(n: usize) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

async fn message(i: &Instance, tenant: &TenantId) {
    let key = Key::new(tenant.partition(), "PROFILE");
    acting_for(tenant, i.store.get(Table::Data, &key))
        .await
        .expect("a tenant's read");
}

/// 10,000 messages within one session hour, each to a random warm instance of one function.
async fn sts_per_10k(
    sdk: &aws_config::SdkConfig,
    names: &TableNames,
    tenants: usize,
    instances: usize,
    uniform: bool,
) -> (u64, usize) {
    let ids: Vec<TenantId> = (0..tenants).map(|_| TenantId::generate()).collect();
    let pool: Vec<Instance> = (0..instances).map(|_| instance(sdk, names)).collect();
    let cdf = zipf(tenants);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let t = if uniform {
            (rng.next() % tenants as u64) as usize
        } else {
            let u = rng.unit();
            cdf.partition_point(|c| *c < u).min(tenants - 1)
        };
        seen.insert(t);
        let i = &pool[(rng.next() % instances as u64) as usize];
        message(i, &ids[t]).await;
    }
    (
        pool.iter().map(|i| i.sessions.assume_calls()).sum(),
        seen.len(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let sdk = support::aws_config().await;
    let names = TableNames::with_prefix(&format!("bench-sessions-{}", std::process::id()));
    provision_tables(&aws_sdk_dynamodb::Client::new(&sdk), &names)
        .await
        .unwrap();

    // Cold start: what building the sessions costs (no network call).
    let started = Instant::now();
    let cold = instance(&sdk, &names);
    println!(
        "cold start: TenantSessions built in {:?}, {} AssumeRole calls",
        started.elapsed(),
        cold.sessions.assume_calls()
    );

    // Memory of the clients kept per tenant (resident set, Linux).
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    };
    let many = instance(&sdk, &names);
    let before = rss();
    for _ in 0..500 {
        many.sessions.store_for(&TenantId::generate());
    }
    println!(
        "memory: {} KiB resident per tenant's cached clients (500 tenants)",
        rss().saturating_sub(before) / 500 / 1024
    );
    drop(many);

    // A tenant's first request in a warm instance against the next ones.
    let warm = instance(&sdk, &names);
    let warmup = TenantId::generate();
    for _ in 0..3 {
        message(&warm, &warmup).await;
    }
    let (mut first, mut next) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let t = TenantId::generate();
        let s = Instant::now();
        message(&warm, &t).await;
        first.push(s.elapsed());
        let s = Instant::now();
        message(&warm, &t).await;
        next.push(s.elapsed());
    }
    first.sort();
    next.sort();
    println!(
        "first request of a tenant: median {:?}, p90 {:?}; later requests: median {:?}, p90 {:?} ({} AssumeRole for 50 tenants)",
        percentile(&first, 0.5),
        percentile(&first, 0.9),
        percentile(&next, 0.5),
        percentile(&next, 0.9),
        warm.sessions.assume_calls() - 1,
    );

    // STS calls per 10,000 messages, one function, within one session hour.
    // 10,000 messages an hour is about 3 a second: a few warm instances carry it (2); 20 is
    // the workers' reserved concurrency, the most that can be warm.
    for (tenants, instances, uniform) in [(500, 2, false), (500, 20, false), (500, 20, true)] {
        let started = Instant::now();
        let (calls, active) = sts_per_10k(&sdk, &names, tenants, instances, uniform).await;
        println!(
            "{tenants} tenants ({}), {instances} warm instances: {calls} AssumeRole per 10,000 messages ({active} tenants wrote; {:?})",
            if uniform { "uniform" } else { "Zipf" },
            started.elapsed()
        );
    }
}
