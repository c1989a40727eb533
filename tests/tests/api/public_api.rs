//! The public send API on the local server: tenant API keys, the tenant from the key only,
//! validation, and sends queued for the send worker.

use e2e_tests::harness::{Harness, IG_ACCOUNT, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::store::Table;

/// A key issued through the admin API (shown once).
async fn key_for(h: &Harness, tenant: &str) -> String {
    let created = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/api-keys"),
            json!({"name": "CRM bridge", "scope": "send"}),
        )
        .await;
    assert_eq!(created["scope"], "send");
    created["key"].as_str().unwrap().to_owned()
}

/// Messages stored as sent through the public API (the send worker takes the jobs at once).
async fn api_messages(h: &Harness) -> usize {
    h.all_items(Table::Data)
        .await
        .iter()
        .filter(|i| i.get_s("origin") == Some("api"))
        .count()
}

async fn send(
    h: &Harness,
    key: Option<&str>,
    body: Value,
    idem: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = h.http.post(format!("{}/v1/messages", h.base)).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(i) = idem {
        req = req.header("Idempotency-Key", i);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn sends_are_queued_for_the_keys_tenant_only() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    let other = h.create_tenant("Other").await;
    let key = key_for(&h, &tenant).await;
    let other_key = key_for(&h, &other).await;

    let text = json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "US.13491208655302741918", "text": "Your order has shipped"});
    let (s, v) = send(&h, Some(&key), text.clone(), Some("order-4711")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["duplicate"], false);
    // A retry with the same idempotency key queues nothing new.
    let (s, v) = send(&h, Some(&key), text.clone(), Some("order-4711")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v["duplicate"], true);
    let template = json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "+16505551234",
        "template": {"name": "order_update", "language": "en_US", "components": []}});
    let (s, v) = send(&h, Some(&key), template, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let ig = json!({"channel": "instagram", "account_id": IG_ACCOUNT, "to": "1254459154682919", "text": "Hi!"});
    assert_eq!(send(&h, Some(&key), ig, None).await.0, StatusCode::ACCEPTED);
    assert_eq!(api_messages(&h).await, 3);

    // Another tenant's valid key cannot use these accounts: 404, nothing queued.
    let (s, v) = send(&h, Some(&other_key), text.clone(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // No key, a wrong key: 401.
    assert_eq!(
        send(&h, None, text.clone(), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let wrong = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(
        send(&h, Some(&wrong), text.clone(), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Bad bodies: 400 with a message, nothing queued.
    for bad in [
        json!({"channel": "sms", "account_id": WA_NUMBER, "to": "1", "text": "x"}),
        json!({"channel": "whatsapp", "account_id": "abc", "to": "16505551234", "text": "x"}),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "not a number", "text": "x"}),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "16505551234"}),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "16505551234", "text": "x", "tenant_id": other}),
        json!({"channel": "instagram", "account_id": IG_ACCOUNT, "to": "1254459154682919",
            "template": {"name": "t", "language": "en"}}),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "16505551234", "text": ""}),
    ] {
        let (s, v) = send(&h, Some(&key), bad.clone(), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(api_messages(&h).await, 3);
    h.server.shutdown().await;
}

#[tokio::test]
async fn api_keys_are_listed_without_secrets_and_revocable() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    let key = key_for(&h, &tenant).await;
    let listed = h
        .admin_get(&format!("/admin/tenants/{tenant}/api-keys"))
        .await;
    let keys = listed["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].get("key").is_none(),
        "the secret is shown once only"
    );
    assert!(!listed.to_string().contains(&key[21..]));
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    let text =
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": "16505551234", "text": "Hi"});
    assert_eq!(
        send(&h, Some(&key), text.clone(), None).await.0,
        StatusCode::ACCEPTED
    );
    let resp = h
        .http
        .delete(format!("{}/admin/tenants/{tenant}/api-keys/{id}", h.base))
        .bearer_auth(e2e_tests::harness::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        send(&h, Some(&key), text, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Bad requests.
    let resp = h
        .http
        .post(format!("{}/admin/tenants/{tenant}/api-keys", h.base))
        .bearer_auth(e2e_tests::harness::ADMIN)
        .json(&json!({"name": "x", "scope": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    h.server.shutdown().await;
}

/// `GET /health` (decision 0038): says what it checked, answers fast, needs no key, and
/// reveals nothing about any tenant; other methods are refused.
#[tokio::test]
async fn health_says_what_it_checked_and_nothing_about_tenants() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    let started = std::time::Instant::now();
    let resp = h
        .http
        .get(format!("{}/health", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(
        v["checks"],
        json!({"configuration": "ok", "routes_table": "ok"})
    );
    assert!(v["elapsed_ms"].as_u64().unwrap() < 2_000);
    for private in [tenant.as_str(), WA_NUMBER, IG_ACCOUNT] {
        assert!(!text.contains(private), "{private} in {text}");
    }
    let resp = h
        .http
        .post(format!("{}/health", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    h.server.shutdown().await;
}
