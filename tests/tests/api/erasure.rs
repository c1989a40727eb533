//! Erasure through the admin API on the local server: a contact's erasure runs on the queue
//! and leaves nothing of that customer; a tenant account's erasure waits for its grace period,
//! can be cancelled, then (run by the in-process schedule) removes the tenant and frees its
//! numbers.

use std::time::Duration;

use e2e_tests::harness::{contains_bytes, sample, Harness, ADMIN, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::queue::platform;
use wappline::store::Table;

async fn call(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = h
        .http
        .request(method.parse().unwrap(), format!("{}{path}", h.base))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn wait_for(h: &Harness, path: &str, state: &str) -> Value {
    for _ in 0..300 {
        let (s, v) = call(h, "GET", path, None).await;
        if s == StatusCode::OK && v["state"] == state {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never reached {state}");
}

#[tokio::test]
async fn a_contact_is_forgotten_and_nobody_else() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    for name in [
        "whatsapp-text.json",
        "whatsapp-image.json",
        "instagram-text.json",
    ] {
        let (s, _) = h.post_signed(&sample(name)).await;
        assert_eq!(s, StatusCode::OK);
    }
    h.drain(platform::INBOUND, Duration::from_secs(20)).await;
    let done = h
        .erase_contact(&tenant, "whatsapp", WA_NUMBER, "+16505551234")
        .await;
    let id = done["request_id"].as_str().unwrap();
    assert_eq!(done["conversations_erased"], 1);
    // The WhatsApp customer's messages are gone; the Instagram customer's stay.
    let messages: Vec<_> = h
        .all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .collect();
    assert!(!messages.is_empty());
    for m in &messages {
        assert!(!h.provider_id_of(m).await.starts_with("wamid."));
    }
    for item in h.all_items(Table::Dedupe).await.iter() {
        assert!(!item.0.values().any(|v| contains_bytes(v, b"wamid.")));
    }
    // Bad requests: 400; another tenant's request id: 404.
    let (s, _) = call(
        &h,
        "POST",
        &format!("/admin/tenants/{tenant}/erasure/contacts"),
        Some(json!({"channel": "sms", "account_id": WA_NUMBER, "customer": "1"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let other = h.create_tenant("Other").await;
    let (s, _) = call(
        &h,
        "GET",
        &format!("/admin/tenants/{other}/erasure/contacts/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_tenant_account_is_erased_after_its_grace_period() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    let (s, _) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    h.drain(platform::INBOUND, Duration::from_secs(20)).await;
    let path = format!("/admin/tenants/{tenant}/erasure");
    // With a grace period: pending, and cancellable.
    let (s, v) = call(&h, "POST", &path, Some(json!({"grace_days": 7}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["state"], "pending");
    let (s, _) = call(&h, "DELETE", &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(call(&h, "GET", &path, None).await.1["state"], "cancelled");
    let (s, _) = call(&h, "POST", &path, Some(json!({"grace_days": 31}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // An export made before the erasure goes with the tenant.
    let (s, v) = call(
        &h,
        "POST",
        &format!("/admin/tenants/{tenant}/exports"),
        Some(json!({"scope": "tenant"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    h.drain(platform::EXPORTS, Duration::from_secs(20)).await;
    let objects = h.server.data_dir().join("objects");
    let files_of_tenant = || {
        fn walk(dir: &std::path::Path, needle: &str, found: &mut usize) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.to_string_lossy().contains(needle) && path.is_file() {
                    *found += 1;
                }
                if path.is_dir() {
                    walk(&path, needle, found);
                }
            }
        }
        let mut found = 0;
        walk(&objects, &tenant, &mut found);
        found
    };
    assert!(
        files_of_tenant() >= 4,
        "the export's files are in the object store"
    );
    // Without one: the schedule erases it.
    let (s, _) = call(&h, "POST", &path, Some(json!({"grace_days": 0}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let done = wait_for(&h, &path, "completed").await;
    assert!(done["completed_at"].is_i64());
    let (s, _) = call(&h, "GET", &format!("/admin/tenants/{tenant}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        files_of_tenant(),
        0,
        "nothing of the tenant is left in the object store"
    );
    // Nothing of the tenant in any table but the platform's record of its erasure.
    for table in Table::ALL {
        for item in h.all_items(table).await {
            let pk = item.get_s("pk").unwrap_or_default().to_owned();
            assert!(!pk.starts_with(&format!("T#{tenant}")), "{table}: {pk}");
        }
    }
    // Its number can be connected again, by another tenant.
    let other = h.create_tenant("Next owner").await;
    h.connect_whatsapp(&other, WA_NUMBER, "102290129340398", "EAAnewOWNER")
        .await;
    h.server.shutdown().await;
}
