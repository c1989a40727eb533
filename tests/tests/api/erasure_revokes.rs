//! Account erasure and Meta's data-deletion callback revoke our access at the providers as a
//! disconnect does (decisions 0036, 0047), on the local server with the loopback Graph API and
//! Bitrix24: the calls show at the fakes; while a provider is down the step stays pending
//! with its tokens, and an account erasure waits for it (the keys, which would destroy the
//! tokens, are not shredded) until a retry completes it.

use std::time::Duration;

use e2e_tests::fake_bitrix::{FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::fake_graph::{GraphCall, GraphFailure};
use e2e_tests::harness::{Harness, ADMIN, IG_TOKEN, WABA, WA_NUMBER, WA_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::store::Table;

const USER: &str = "10158376200385746";

async fn get(h: &Harness, path: &str) -> (StatusCode, Value) {
    let resp = h
        .http
        .get(format!("{}{path}", h.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls the erasure request until `done` holds (the local server's schedule runs every
/// second).
async fn wait_until(h: &Harness, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let (s, v) = get(h, path).await;
        if s == StatusCode::OK && done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never got there: {:?}", get(h, path).await);
}

fn revoking(calls: &[GraphCall]) -> Vec<GraphCall> {
    calls
        .iter()
        .filter(|c| {
            c.method == "DELETE"
                && c.status == 200
                && (c.path.ends_with("/subscribed_apps") || c.path.ends_with("/me/permissions"))
        })
        .cloned()
        .collect()
}

async fn revocations(h: &Harness, tenant: &str) -> Vec<Value> {
    let (s, v) = get(h, &format!("/admin/tenants/{tenant}/revocations")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["revocations"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_account_erasure_revokes_at_the_providers_and_waits_while_one_is_down() {
    let fake = FakeBitrix::start().await;
    let h = Harness::start(|c| fake.wire_into(c)).await;
    let t = h.tenant_with_channels().await;
    h.connect_portal(&t, &fake, FAKE_DOMAIN, FAKE_MEMBER_ID, 1)
        .await;
    fake.clear_records();
    // Meta and the portal are down when the erasure starts.
    h.graph.fail_next(2, GraphFailure::Down);
    fake.set_down(FAKE_DOMAIN, true);
    let path = format!("/admin/tenants/{t}/erasure");
    h.admin("POST", &path, json!({"grace_days": 0})).await;

    // The schedule disconnects every channel and waits on the pending revocations.
    let waiting = wait_until(&h, &path, |v| v["revocations"] == "pending").await;
    assert_eq!(waiting["state"], "in_progress");
    let pending = revocations(&h, &t).await;
    assert_eq!(pending.len(), 3, "{pending:?}");
    assert!(
        pending.iter().all(|r| r["revocation"] == "pending"),
        "{pending:?}"
    );
    assert!(pending.iter().all(|r| r["tokens_held"] == true));
    assert!(revoking(&h.graph.calls()).is_empty());
    // Several scheduled runs later it still waits: the keys that hold the tokens are kept.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, still) = get(&h, &path).await;
    assert_eq!(still["state"], "in_progress", "{still}");
    let (s, _) = get(&h, &format!("/admin/tenants/{t}")).await;
    assert_eq!(s, StatusCode::OK, "the tenant is not erased yet");

    // The providers are back: a retry completes the revocations, then the erasure.
    fake.set_down(FAKE_DOMAIN, false);
    h.admin(
        "POST",
        &format!("/admin/tenants/{t}/revocations/retry"),
        json!({}),
    )
    .await;
    let done = wait_until(&h, &path, |v| v["state"] == "completed").await;
    let summary = done["revocations"].as_str().unwrap();
    for step in [
        "whatsapp_subscription=done:1",
        "instagram_permissions=done:1",
        "bitrix24_connectors=done:1",
        "bitrix24_events=done:1",
    ] {
        assert!(summary.contains(step), "{step} in {summary}");
    }
    assert!(!summary.contains(WA_NUMBER) && !summary.contains(FAKE_MEMBER_ID));

    let calls = revoking(&h.graph.calls());
    let by = |suffix: &str| {
        calls
            .iter()
            .find(|c| c.path.ends_with(suffix))
            .and_then(|c| c.bearer.clone())
    };
    assert_eq!(
        by(&format!("/{WABA}/subscribed_apps")).as_deref(),
        Some(WA_TOKEN)
    );
    assert_eq!(by("/me/permissions").as_deref(), Some(IG_TOKEN));
    let unregistered = fake.calls_to("imconnector.unregister");
    assert!(
        unregistered
            .iter()
            .any(|c| c.params.get("ID").and_then(Value::as_str) == Some("wappline_whatsapp")),
        "{unregistered:?}"
    );
    let unbound = fake.calls_to("event.unbind");
    for event in wappline::portal::install::BOUND_EVENTS {
        assert!(
            unbound
                .iter()
                .any(|c| c.params["event"].as_str() == Some(event)),
            "{event} unbound"
        );
    }
    // The revocation records went with the tenant; none is left pending.
    for table in Table::ALL {
        for item in h.all_items(table).await {
            let pk = item.get_s("pk").unwrap_or_default().to_owned();
            assert!(!pk.starts_with(&format!("T#{t}")), "{table}: {pk}");
            assert!(
                !(pk == "REVOKE#PENDING" && item.get_s("tenant_id") == Some(t.as_str())),
                "pending entry left"
            );
        }
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn metas_deletion_callback_revokes_the_users_channels_and_retries_while_meta_is_down() {
    let h = Harness::start(|_| {}).await;
    let t = h.create_tenant("Acme").await;
    h.graph.add_whatsapp_business(WA_TOKEN, WABA, WA_NUMBER);
    h.admin(
        "POST",
        &format!("/admin/tenants/{t}/channels/whatsapp"),
        json!({"phone_number_id": WA_NUMBER, "waba_id": WABA, "access_token": WA_TOKEN, "authorized_by": USER}),
    )
    .await;

    // Meta is down when the erasure worker disconnects the user's number.
    h.graph.fail_next(1, GraphFailure::Down);
    h.deletion_callback(USER).await;
    let mut r = revocations(&h, &t).await;
    for _ in 0..200 {
        if !r.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = revocations(&h, &t).await;
    }
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["revocation"], "pending");
    assert_eq!(r[0]["tokens_held"], true);
    assert!(revoking(&h.graph.calls()).is_empty());
    // The number was disconnected at once all the same: its route is free.
    let number =
        wappline::tenant::ChannelRef::parse(wappline::tenant::ChannelKind::WhatsApp, WA_NUMBER)
            .unwrap();
    assert_eq!(
        h.server.platform().tenants.resolve(&number).await.unwrap(),
        None
    );

    // Meta is back: the retry revokes with the user's token, which is then deleted.
    let retried = h
        .admin(
            "POST",
            &format!("/admin/tenants/{t}/revocations/retry"),
            json!({}),
        )
        .await;
    assert_eq!(retried["revocations"][0]["revocation"], "done", "{retried}");
    let calls = revoking(&h.graph.calls());
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, format!("/v26.0/{WABA}/subscribed_apps"));
    assert_eq!(calls[0].bearer.as_deref(), Some(WA_TOKEN));
    assert_eq!(revocations(&h, &t).await[0]["tokens_held"], false);
    // The tenant's audit log has the revocation, by Meta's request.
    let (_, audit) = get(&h, &format!("/admin/tenants/{t}/audit")).await;
    let text = audit.to_string();
    assert!(text.contains("revocation_completed"), "{text}");
    assert!(!text.contains(USER) && !text.contains(WA_TOKEN));
    h.server.shutdown().await;
}
