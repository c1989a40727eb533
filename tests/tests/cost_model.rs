//! The cost model (issue 17, decision 0053): inbound WhatsApp messages relayed to Bitrix24 on
//! the embedded adapters, every port call counted as AWS bills it, priced with the list
//! prices of `wappline::costs::prices`. Run with
//! `COST_ITEMS=1000 cargo test -p e2e-tests --test cost_model -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::soak::text_delivery;
use e2e_tests::soak::world::World;
use wappline::costs::{self, prices, Consistency, CostLine, Meter};
use wappline::faults::{FaultPlan, FaultRates};

/// Memory (MB) of each function in template.yaml: its own `MemorySize`, else the global one.
fn memory_sizes() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("yaml");
    let t = &docs[0];
    let global = t["Globals"]["Function"]["MemorySize"]
        .as_i64()
        .expect("global memory") as u64;
    let mut out = BTreeMap::new();
    if let Some(resources) = t["Resources"].as_hash() {
        for (name, r) in resources {
            if r["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let name = name.as_str().unwrap_or_default();
            let memory = r["Properties"]["MemorySize"]
                .as_i64()
                .map_or(global, |m| m as u64);
            out.insert(name.to_owned(), memory);
        }
    }
    out
}

/// `meta-webhook` → `MetaWebhookFunction`.
fn logical_id(function: &str) -> String {
    let mut id: String = function
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

/// The Lambda lines: requests and GB-seconds per function, per message.
fn lambda_lines(meter: &Meter, messages: u64) -> Vec<CostLine> {
    let memory = memory_sizes();
    let per = |x: f64| x / messages as f64;
    let mut lines = Vec::new();
    for (function, (invocations, took)) in meter.invocations() {
        let mb = memory
            .get(&logical_id(&function))
            .copied()
            .unwrap_or_else(|| panic!("{function} not in template.yaml"));
        let gb_s = mb as f64 / 1024.0 * took.as_secs_f64();
        lines.push(CostLine {
            service: "Lambda".into(),
            operation: format!("{function} invocations"),
            requests_per_message: per(invocations as f64),
            units_per_message: per(invocations as f64),
            per_million: per(invocations as f64) * prices::LAMBDA_REQUEST * 1e6,
        });
        lines.push(CostLine {
            service: "Lambda".into(),
            operation: format!("{function} GB-seconds ({mb} MB)"),
            requests_per_message: 0.0,
            units_per_message: per(gb_s),
            per_million: per(gb_s) * prices::LAMBDA_ARM_GB_SECOND * 1e6,
        });
    }
    lines
}

/// What auto scaling's target tracking keeps in use of provisioned DynamoDB capacity (its
/// default target is 70 %); the headroom is what absorbs a burst before it scales up.
const PROVISIONED_UTILISATION: f64 = 0.7;

/// The deployment choices, each as a row next to the measured total (decision 0058): they
/// change the bill, not the code path the table above counts.
fn deployment_options(lines: &[CostLine]) -> String {
    let measured = total(lines);
    let api_gateway: f64 = lines
        .iter()
        .filter(|l| l.service == "API Gateway")
        .map(|l| l.per_million)
        .sum();
    let dynamodb: f64 = lines
        .iter()
        .filter(|l| l.service == "DynamoDB")
        .map(|l| l.per_million)
        .sum();
    let provisioned = costs::dynamodb_provisioned(lines, PROVISIONED_UTILISATION);
    let provisioned_label = format!(
        "DynamoDB provisioned, auto scaling at {:.0} % utilisation",
        PROVISIONED_UTILISATION * 100.0
    );
    let rows = [
        ("as measured: API Gateway, DynamoDB on demand", measured),
        (
            "meta-webhook behind a Lambda function URL instead of API Gateway",
            measured - api_gateway,
        ),
        (
            provisioned_label.as_str(),
            measured - dynamodb + provisioned,
        ),
        ("both", measured - api_gateway - dynamodb + provisioned),
    ];
    let mut out = String::from("| deployment option | US$ per million messages |\n|---|---|\n");
    for (option, cost) in rows {
        out.push_str(&format!("| {option} | {cost:.2} |\n"));
    }
    out
}

/// Where the DynamoDB requests go: per message, by operation and kind of item (table,
/// sub-partition, sort key's first segment; no ids), most first.
fn item_requests_table(meter: &Meter, messages: u64) -> String {
    let mut rows: Vec<_> = meter.item_requests().into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out =
        String::from("| DynamoDB operation | kind of item | per message |\n|---|---|---|\n");
    for ((op, kind), count) in rows {
        out.push_str(&format!(
            "| {op} | {kind} | {:.3} |\n",
            count as f64 / messages as f64
        ));
    }
    out
}

fn total(lines: &[CostLine]) -> f64 {
    lines.iter().map(|l| l.per_million).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints the cost table for docs/performance.md"]
async fn cost_per_million_inbound_messages() {
    let n: u64 = std::env::var("COST_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let meter = Arc::new(Meter::new());
    // No faults: the plan only stands for the process; the meter counts.
    let plan = Arc::new(FaultPlan::new(0, FaultRates::NONE));
    let mut w = World::start_metered(plan, Some(meter.clone())).await;
    let tenants = [w.tenant(0).await, w.tenant(1).await];
    // Warm: each tenant's first message (its data key, its conversation) is not the
    // steady state a million messages are in.
    for (i, t) in tenants.iter().enumerate() {
        let body = text_delivery(t, "16505550100", &format!("wamid.WARM{i}"), "hello");
        w.webhook(&body).await;
    }
    w.drain(Duration::from_secs(120)).await;
    meter.reset();
    // Steady state: 10 customers per tenant, each writing several messages.
    for i in 0..n {
        let t = &tenants[(i % 2) as usize];
        let phone = format!("1650555{:04}", 2000 + (i / 2) % 10);
        let body = text_delivery(
            t,
            &phone,
            &format!("wamid.COST{i}"),
            "Hi! Do you have the blue sneakers in size 42?",
        );
        w.webhook(&body).await;
    }
    w.drain(Duration::from_secs(600)).await;
    let relayed = w
        .bitrix
        .messages_received()
        .iter()
        .filter(|m| m.external_message_id.starts_with("wamid.COST"))
        .count() as u64;
    assert_eq!(relayed, n, "every message relayed once");

    let counts = meter.snapshot();
    let mut lines = costs::report(&counts, n, Consistency::Strong);
    lines.extend(lambda_lines(&meter, n));
    lines.sort_by(|a, b| b.per_million.total_cmp(&a.per_million));
    println!(
        "\n{n} inbound messages relayed to Bitrix24, prices of {}\n",
        prices::PRICES_DATE
    );
    println!("{}", costs::markdown(&lines));
    let strong = total(&lines);
    let mut eventual = costs::report(&counts, n, Consistency::Eventual);
    eventual.extend(lambda_lines(&meter, n));
    println!(
        "total US$ {strong:.2} per million; with every read eventually consistent US$ {:.2}",
        total(&eventual)
    );
    let by_service = lines.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.service.clone()).or_insert(0.0) += l.per_million;
        m
    });
    println!("by service: {by_service:.2?}");
    println!("\n{}", item_requests_table(&meter, n));
    println!("\n{}", deployment_options(&lines));
    w.stop().await;
}
