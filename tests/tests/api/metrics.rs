//! The flows count what happened as CloudWatch Embedded Metric Format documents (decision
//! 0038), on the local server with loopback fakes of Bitrix24 and the Graph API: messages
//! relayed per direction and channel, the webhook-to-Bitrix24 latency, quota refusals, and a
//! parked portal; and the documents have the shape the EMF specification asks for.

use std::collections::BTreeMap;

use e2e_tests::harness::{sample, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::relay_world::RelayWorld;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::ids::TenantId;
use wappline::metrics::Metrics;
use wappline::usage::{Plan, Usage};

const IG_TOKEN: &str = "IGAAinstagramTOKEN";
const CUSTOMER: &str = "US.13491208655302741918";

/// The namespace of the tests' recorders.
pub(crate) const NAMESPACE: &str = "Wappline/test";

/// Every document's metric values, summed per (metric, dimension values), after checking
/// each document against the specification: `_aws` with a millisecond `Timestamp` and one
/// directive whose dimension names and metric names are all members of the root.
pub(crate) fn totals(lines: &[String]) -> BTreeMap<(String, String), (f64, usize)> {
    let mut out = BTreeMap::new();
    for line in lines {
        assert!(!line.contains('\n'), "one document per line: {line}");
        let doc: Value = serde_json::from_str(line).expect("a JSON object");
        let aws = &doc["_aws"];
        assert!(
            aws["Timestamp"].as_i64().unwrap() > 1_700_000_000_000,
            "{line}"
        );
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{line}");
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE, "{line}");
        let dims: Vec<&str> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        let key: Vec<String> = dims
            .iter()
            .map(|d| format!("{d}={}", doc[*d].as_str().expect("a dimension value")))
            .collect();
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()));
            let values: Vec<f64> = match &doc[name] {
                Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
                v => vec![v.as_f64().expect("a number")],
            };
            let entry = out
                .entry((name.to_owned(), key.join(",")))
                .or_insert((0.0, 0));
            entry.0 += values.iter().sum::<f64>();
            entry.1 += values.len();
        }
    }
    out
}

#[tokio::test]
async fn relays_latency_and_quota_refusals_are_counted_as_emf_documents() {
    let (metrics, _) = Metrics::in_memory(NAMESPACE);
    let recorder = metrics.clone();
    let w = RelayWorld::start_with(move |c| c.metrics = Some(recorder)).await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    let tenant = TenantId::parse(&w.installed_tenant().await).unwrap();
    Usage::new(w.h.server.platform().store.clone())
        .set_plan(
            &tenant,
            Plan {
                monthly_outbound: Some(1),
                monthly_inbound: None,
            },
        )
        .await
        .unwrap();

    let mut text: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    text["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(wappline::clock::now_secs().to_string());
    w.customer_writes(&serde_json::to_vec(&text).unwrap()).await;
    w.customer_writes(&sample("instagram-text.json")).await;

    let key =
        w.h.admin(
            "POST",
            &format!("/admin/tenants/{tenant}/api-keys"),
            json!({"name": "CRM bridge", "scope": "send"}),
        )
        .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
    let send = |idem: &'static str| {
        w.h.http
            .post(format!("{}/v1/messages", w.h.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", idem)
            .json(&json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": CUSTOMER, "text": "Shipped"}))
            .send()
    };
    assert_eq!(send("m-1").await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(
        send("m-2").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1);

    let lines = metrics.drain();
    let totals = totals(&lines);
    let get = |name: &str, dims: &str| totals.get(&(name.to_owned(), dims.to_owned())).copied();
    assert_eq!(
        get("MessagesRelayed", "Direction=inbound,Channel=whatsapp"),
        Some((1.0, 1)),
        "{totals:?}"
    );
    assert_eq!(
        get("MessagesRelayed", "Direction=inbound,Channel=instagram"),
        Some((1.0, 1)),
        "{totals:?}"
    );
    assert_eq!(
        get("MessagesRelayed", "Direction=outbound,Channel=whatsapp"),
        Some((1.0, 1)),
        "{totals:?}"
    );
    assert_eq!(
        get("QuotaRefusals", "Quota=monthly_outbound_messages"),
        Some((1.0, 1)),
        "{totals:?}"
    );
    // One latency value per message relayed to Bitrix24, from the webhook to its answer:
    // more than nothing, less than the test took.
    for channel in ["whatsapp", "instagram"] {
        let (sum, n) = get("WebhookToBitrix24Latency", &format!("Channel={channel}"))
            .unwrap_or_else(|| panic!("{channel} latency in {totals:?}"));
        assert_eq!(n, 1, "{totals:?}");
        assert!((0.0..60_000.0).contains(&sum), "{sum}");
    }
    // Nothing about a tenant, an account or a customer is in a document.
    for line in &lines {
        for secret in [tenant.as_str(), WA_NUMBER, IG_ACCOUNT, CUSTOMER, "Shipped"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
}
