//! A Bitrix24 portal that stays down longer than the sync retry span is parked, not
//! dead-lettered (decision 0025): its CRM link shows as unreachable (audited), later jobs are
//! parked without calling Bitrix24, and once the scheduled probe reaches the portal again
//! every parked message is delivered once, in order per conversation. A message Bitrix24
//! refuses still goes to the dead-letter queue, and erasing the tenant removes parked work.
//!
//! The retry policy is the production one in small time units, and the local server's
//! schedules (the probe among them) run every second.

use std::time::{Duration, Instant};
use wappline::metrics::Metrics;

use e2e_tests::fake_bitrix::{
    form_to_json, FailKind, FakeBitrix, ReceivedMessage, FAKE_DOMAIN, FAKE_MEMBER_ID,
};
use e2e_tests::harness::{sample, Harness};
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::queue::platform;
use wappline::store::{Item, Table};

const DRAIN: Duration = Duration::from_secs(30);
const LINE: u32 = 7;
/// Exhausted after 4 failed attempts spanning at least 1 s (N attempts over 24 h, scaled).
const SHORT_SPAN: &str = "100,4,1000";

async fn start(fake: &FakeBitrix) -> Harness {
    start_metered(fake, Metrics::off()).await
}

/// Like [`start`], the flows counting into `metrics`.
async fn start_metered(fake: &FakeBitrix, metrics: Metrics) -> Harness {
    Harness::start(|c| {
        fake.wire_into(c);
        c.retry_base_ms = 50;
        c.sync_retry = Some(SHORT_SPAN.into());
        c.metrics = Some(metrics);
    })
    .await
}

/// One WhatsApp delivery: `texts` as consecutive messages of one customer, the message ids
/// made unique by `batch`.
fn whatsapp(batch: u32, texts: &[&str]) -> Vec<u8> {
    let first_at = 1_767_261_600 + i64::from(batch) * 100;
    whatsapp_events::sample_texts(&format!("B{batch}"), first_at, texts)
}

async fn deliver(h: &Harness, body: &[u8]) {
    let (s, t) = h.post_signed(body).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    h.drain(platform::INBOUND, DRAIN).await;
    h.drain(platform::SYNC, DRAIN).await;
}

async fn wait_for(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dlq() -> String {
    platform::name(platform::SYNC).dead_letter().to_string()
}

/// The tenant's parked jobs (its `PARKED` sub-partition).
async fn parked_items(h: &Harness, tenant: &str) -> Vec<Item> {
    let pk = format!("T#{tenant}#PARKED");
    h.all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| i.get_s("pk") == Some(pk.as_str()))
        .collect()
}

/// The tenant's entry in the index of parked portals.
async fn index_entry(h: &Harness, tenant: &str) -> Option<Item> {
    h.all_items(Table::Routes)
        .await
        .into_iter()
        .find(|i| i.get_s("pk") == Some("PARKED") && i.get_s("sk") == Some(tenant))
}

/// The Bitrix24 channel's `crm_link`, as the admin API shows the tenant.
async fn crm_link(h: &Harness, tenant: &str) -> Value {
    let t = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    t["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "bitrix24")
        .expect("the portal is connected")["crm_link"]
        .clone()
}

async fn audit(h: &Harness, tenant: &str) -> Vec<Value> {
    h.admin_get(&format!("/admin/tenants/{tenant}/audit")).await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

/// The message ids of the `imconnector.send.messages` calls so far.
/// The message ids of every post the worker tried, refused or not: the send commands of
/// each batch request as the worker sent them.
fn send_calls(fake: &FakeBitrix) -> Vec<String> {
    fake.calls_to("batch")
        .iter()
        .flat_map(|c| {
            let cmd = &c.params["cmd"];
            let commands: Vec<Value> = match cmd {
                Value::Array(a) => a.clone(),
                Value::Object(o) => o.values().cloned().collect(),
                _ => Vec::new(),
            };
            commands
        })
        .filter_map(|cmd| {
            let (method, query) = cmd.as_str()?.split_once('?')?;
            (method == "imconnector.send.messages").then(|| form_to_json(query))
        })
        .flat_map(|p| p["MESSAGES"].as_array().cloned().unwrap_or_default())
        .map(|m| m["message"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn texts_in(messages: &[ReceivedMessage], chat: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.external_chat_id == chat)
        .filter_map(|m| m.text.clone())
        .collect()
}

#[tokio::test]
async fn a_portal_down_longer_than_the_span_is_parked_and_resumes_in_order_when_it_is_back() {
    let fake = FakeBitrix::start().await;
    let (metrics, _) = Metrics::in_memory(crate::metrics::NAMESPACE);
    let h = start_metered(&fake, metrics.clone()).await;
    let tenant = h.tenant_on_portal(&fake, LINE).await;
    assert_eq!(crm_link(&h, &tenant).await["state"], "reachable");

    fake.set_down(FAKE_DOMAIN, true);
    let started = Instant::now();
    deliver(&h, &whatsapp(1, &["M1", "M2", "M3"])).await;
    // M1 used up its attempts over the span; nothing is dead-lettered.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(h.depth(&dlq()).await, 0, "nothing dead-lettered");
    let tried = send_calls(&fake);
    assert!(tried.len() >= 4, "M1's own attempts: {tried:?}");
    assert!(
        tried.iter().all(|id| id == &tried[0]),
        "only M1 was tried; M2 and M3 were parked behind it: {tried:?}"
    );
    assert_eq!(parked_items(&h, &tenant).await.len(), 3);
    let entry = index_entry(&h, &tenant).await.expect("indexed as parked");
    assert_eq!(entry.get_s("state"), Some("parked"));
    assert_eq!(entry.get_s("tenant_id"), Some(tenant.as_str()));

    // Shown to people: the link is unreachable since it was parked, and audited.
    let link = crm_link(&h, &tenant).await;
    assert_eq!(link["state"], "unreachable", "{link}");
    assert!(link["since"].as_i64().unwrap() > 1_700_000_000, "{link}");
    assert_eq!(link["last_error"], "unavailable");
    let entries = audit(&h, &tenant).await;
    let lost = entries
        .iter()
        .find(|e| e["action"] == "crm_link_unreachable")
        .expect("audited");
    assert_eq!(lost["actor"], "system");
    assert_eq!(lost["details"]["kind"], "bitrix24");
    assert_eq!(lost["details"]["channel"], FAKE_MEMBER_ID);
    assert_eq!(lost["details"]["error"], "unavailable");
    assert!(
        !lost.to_string().contains("M1"),
        "no content in the audit log"
    );

    // The probe keeps asking the portal, and records that it is still down.
    wait_for("a failed probe", Duration::from_secs(10), async || {
        crm_link(&h, &tenant).await["last_probe_at"].is_i64()
    })
    .await;
    assert!(fake
        .calls_to("app.info")
        .iter()
        .all(|c| c.domain == FAKE_DOMAIN && c.status == 503));
    // Counted (decision 0038): the portal parked once, seen parked by the probe, M1's failed
    // attempts by their class, their redeliveries, and nothing dead-lettered.
    let counted = crate::metrics::totals(&metrics.drain());
    let get = |name: &str, dims: &str| counted.get(&(name.to_owned(), dims.to_owned())).copied();
    assert_eq!(get("PortalsParked", ""), Some((1.0, 1)), "{counted:?}");
    let (parked, probes) = get("ParkedPortals", "").expect("the probe's count");
    assert!(parked >= 1.0 && probes >= 1, "{counted:?}");
    let (failed, _) = get("Failures", "Class=unavailable,Stage=sync").expect("failures");
    assert!(failed >= 4.0, "{counted:?}");
    assert!(get("Retries", "Stage=sync").is_some(), "{counted:?}");
    assert!(
        !counted.keys().any(|(name, _)| name == "DlqArrivals"),
        "{counted:?}"
    );

    // While parked, new jobs (another message of the conversation, another conversation)
    // are parked without calling Bitrix24.
    let before = send_calls(&fake).len();
    deliver(&h, &whatsapp(2, &["M4"])).await;
    deliver(&h, &sample("instagram-text.json")).await;
    assert_eq!(send_calls(&fake).len(), before, "no send while parked");
    assert_eq!(parked_items(&h, &tenant).await.len(), 5);
    assert_eq!(h.depth(&dlq()).await, 0);

    // The portal is back: the probe reaches it and the parked work is delivered.
    fake.set_down(FAKE_DOMAIN, false);
    wait_for(
        "every parked message",
        Duration::from_secs(20),
        async || fake.messages_received().len() == 5,
    )
    .await;
    wait_for(
        "the index entry gone",
        Duration::from_secs(10),
        async || index_entry(&h, &tenant).await.is_none(),
    )
    .await;
    assert!(parked_items(&h, &tenant).await.is_empty());
    h.drain(platform::SYNC, DRAIN).await;
    let received = fake.messages_received();
    assert_eq!(received.len(), 5, "none duplicated");
    let wa_chat = received
        .iter()
        .find(|m| m.text.as_deref() == Some("M1"))
        .unwrap()
        .external_chat_id
        .clone();
    assert_eq!(texts_in(&received, &wa_chat), ["M1", "M2", "M3", "M4"]);
    let mut ids: Vec<&str> = received
        .iter()
        .map(|m| m.external_message_id.as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each message once");
    assert_eq!(h.depth(&dlq()).await, 0);

    let link = crm_link(&h, &tenant).await;
    assert_eq!(link["state"], "reachable", "{link}");
    let found = audit(&h, &tenant)
        .await
        .into_iter()
        .find(|e| e["action"] == "crm_link_reachable")
        .expect("audited");
    assert_eq!(found["actor"], "system");
    assert_eq!(found["details"]["channel"], FAKE_MEMBER_ID);

    // Reachable again: the next message goes straight to the portal.
    deliver(&h, &whatsapp(3, &["M5"])).await;
    assert_eq!(
        texts_in(&fake.messages_received(), &wa_chat),
        ["M1", "M2", "M3", "M4", "M5"]
    );
    assert!(parked_items(&h, &tenant).await.is_empty());
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_message_bitrix24_refuses_is_still_dead_lettered() {
    let fake = FakeBitrix::start().await;
    let (metrics, _) = Metrics::in_memory(crate::metrics::NAMESPACE);
    let h = start_metered(&fake, metrics.clone()).await;
    let tenant = h.tenant_on_portal(&fake, LINE).await;
    fake.fail_next(1_000, FailKind::ArgumentError);
    deliver(&h, &whatsapp(1, &["M1"])).await;
    assert_eq!(h.depth(&dlq()).await, 1, "dead-lettered");
    let counted = crate::metrics::totals(&metrics.drain());
    assert_eq!(
        counted.get(&("DlqArrivals".to_owned(), "Queue=sync.fifo".to_owned())),
        Some(&(1.0, 1)),
        "{counted:?}"
    );
    assert!(
        !counted.keys().any(|(name, _)| name == "PortalsParked"),
        "{counted:?}"
    );
    assert!(send_calls(&fake).len() >= 4);
    assert!(index_entry(&h, &tenant).await.is_none(), "not parked");
    assert!(parked_items(&h, &tenant).await.is_empty());
    assert_eq!(crm_link(&h, &tenant).await["state"], "reachable");
    assert!(!audit(&h, &tenant)
        .await
        .iter()
        .any(|e| e["action"] == "crm_link_unreachable"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn erasing_the_tenant_removes_its_parked_work() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    let tenant = h.tenant_on_portal(&fake, LINE).await;
    fake.set_down(FAKE_DOMAIN, true);
    deliver(&h, &whatsapp(1, &["M1", "M2"])).await;
    deliver(&h, &sample("instagram-text.json")).await;
    assert_eq!(parked_items(&h, &tenant).await.len(), 3);
    assert!(index_entry(&h, &tenant).await.is_some());

    let path = format!("/admin/tenants/{tenant}/erasure");
    h.admin("POST", &path, json!({"grace_days": 0})).await;
    // The channels are disconnected at once; the erasure waits for our connectors to be
    // unregistered from the portal, which is down (decision 0047).
    wait_for("the erasure to wait", Duration::from_secs(15), async || {
        h.admin_get(&path).await["revocations"] == "pending"
    })
    .await;
    // The portal is up again: the revocation is retried, then the erasure completes.
    fake.set_down(FAKE_DOMAIN, false);
    h.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/revocations/retry"),
        json!({}),
    )
    .await;
    wait_for("the erasure", Duration::from_secs(15), async || {
        h.admin_get(&path).await["state"] == "completed"
    })
    .await;
    assert!(parked_items(&h, &tenant).await.is_empty());
    assert!(index_entry(&h, &tenant).await.is_none());
    // Nothing of the erased tenant's parked work reached the portal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(fake.messages_received().is_empty());
    assert_eq!(h.depth(platform::SYNC).await, 0);
    h.server.shutdown().await;
}
