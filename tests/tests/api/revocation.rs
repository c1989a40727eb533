//! Disconnecting revokes our access at the provider (decision 0036), on the local server with
//! the loopback Graph API and Bitrix24: the WABA subscription goes with the last routed
//! number of any tenant, Instagram Login permissions are revoked, a portal's connectors are
//! unregistered and its events unbound; a provider outage leaves the step pending until a
//! retry completes it, or until the attempts are spent; the tokens are deleted only then, and
//! every stage is audited without a token.

use e2e_tests::fake_bitrix::{FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::fake_graph::{GraphCall, GraphFailure};
use e2e_tests::harness::{Harness, ADMIN, IG_ACCOUNT, IG_TOKEN, WABA, WA_NUMBER, WA_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::connect_setup::admin_post;

const SECOND_NUMBER: &str = "113355779024681";
const SECOND_TOKEN: &str = "EAAsecondNUMBER";

async fn delete(h: &Harness, tenant: &str, kind: &str, id: &str) -> StatusCode {
    h.http
        .delete(format!(
            "{}/admin/tenants/{tenant}/channels/{kind}/{id}",
            h.base
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .status()
}

async fn revocations(h: &Harness, tenant: &str) -> Vec<Value> {
    let v = h
        .admin_get(&format!("/admin/tenants/{tenant}/revocations"))
        .await;
    v["revocations"].as_array().cloned().unwrap_or_default()
}

async fn retry(h: &Harness, tenant: &str) -> Value {
    h.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/revocations/retry"),
        json!({}),
    )
    .await
}

/// The audit entries of `tenant` whose action starts with `revocation_`, oldest first; and the
/// whole log as text.
async fn revocation_audit(h: &Harness, tenant: &str) -> (Vec<Value>, String) {
    let v = h.admin_get(&format!("/admin/tenants/{tenant}/audit")).await;
    let mut entries: Vec<Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("revocation_"))
        .cloned()
        .collect();
    entries.sort_by_key(|e| e["at"].as_i64().unwrap());
    (entries, v.to_string())
}

fn unsubscribes(calls: &[GraphCall]) -> Vec<GraphCall> {
    calls
        .iter()
        .filter(|c| c.method == "DELETE" && c.path.ends_with("/subscribed_apps"))
        .cloned()
        .collect()
}

fn step(r: &Value) -> &Value {
    &r["steps"][0]
}

#[tokio::test]
async fn a_waba_shared_with_another_tenant_keeps_its_subscription_until_its_last_number_goes() {
    let h = Harness::start(|_| {}).await;
    let (a, b) = (h.create_tenant("Acme").await, h.create_tenant("Beta").await);
    h.connect_whatsapp(&a, WA_NUMBER, WABA, WA_TOKEN).await;
    h.connect_whatsapp(&b, SECOND_NUMBER, WABA, SECOND_TOKEN)
        .await;

    // Tenant A's number goes: tenant B's number on the same WABA still needs the webhooks.
    assert_eq!(
        delete(&h, &a, "whatsapp", WA_NUMBER).await,
        StatusCode::NO_CONTENT
    );
    assert!(unsubscribes(&h.graph.calls()).is_empty());
    let r = revocations(&h, &a).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["revocation"], "done");
    assert_eq!(step(&r[0])["step"], "whatsapp_subscription");
    assert_eq!(step(&r[0])["state"], "skipped");
    assert_eq!(r[0]["tokens_held"], false);

    // Tenant B's goes too: now the app is unsubscribed, with B's token.
    assert_eq!(
        delete(&h, &b, "whatsapp", SECOND_NUMBER).await,
        StatusCode::NO_CONTENT
    );
    let calls = unsubscribes(&h.graph.calls());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, format!("/v26.0/{WABA}/subscribed_apps"));
    assert_eq!(calls[0].bearer.as_deref(), Some(SECOND_TOKEN));
    let r = revocations(&h, &b).await;
    assert_eq!(r[0]["revocation"], "done");
    assert_eq!(step(&r[0])["state"], "done");
    assert_eq!(r[0]["tokens_held"], false);
    let (audit, log) = revocation_audit(&h, &b).await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["revocation_started", "revocation_completed"]);
    assert_eq!(audit[1]["details"]["steps"], "whatsapp_subscription=done");
    assert_eq!(audit[1]["details"]["tokens"], "deleted");
    assert!(!log.contains(SECOND_TOKEN) && !log.contains(WA_TOKEN));
    h.server.shutdown().await;
}

/// A number of the same WABA connected through Embedded Signup while the last number's
/// revocation unsubscribes the app (after it read the routes, before Meta took the
/// unsubscribe) keeps its webhooks: the revocation sees the new route once the app is
/// unsubscribed and subscribes it again (decision 0119).
#[tokio::test]
async fn a_number_connected_during_the_unsubscribe_keeps_the_webhooks() {
    let h = crate::onboarding::start().await;
    let (a, b) = (h.create_tenant("Acme").await, h.create_tenant("Beta").await);
    let harness = &h;
    let signup = |tenant: &str, token: &str, phone: &str| {
        let code = harness.graph.issue_signup_code(token, WABA, phone);
        let path = format!("/admin/tenants/{tenant}/onboarding/whatsapp");
        let body =
            json!({"event": "FINISH", "code": code, "waba_id": WABA, "phone_number_id": phone});
        async move {
            let (status, v) = admin_post(harness, &path, body).await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
        }
    };
    signup(&a, WA_TOKEN, WA_NUMBER).await;
    assert!(h.graph.waba_subscribed(WABA));
    // Beta's sign-up is ready (Meta lists its number on the WABA) but not done yet.
    let beta_signup = signup(&b, SECOND_TOKEN, SECOND_NUMBER);

    let hold = h.graph.hold_next_unsubscribe();
    let (status, ()) = tokio::join!(delete(&h, &a, "whatsapp", WA_NUMBER), async {
        hold.arrived().await;
        beta_signup.await;
        hold.release();
    });
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(unsubscribes(&h.graph.calls()).len(), 1);
    assert!(
        h.graph.waba_subscribed(WABA),
        "Beta's number still gets its webhooks"
    );
    let r = revocations(&h, &a).await;
    assert_eq!(r[0]["revocation"], "done");
    assert_eq!(step(&r[0])["state"], "skipped");
    assert!(
        step(&r[0])["note"]
            .as_str()
            .is_some_and(|d| d.contains("subscribed again")),
        "{}",
        r[0]
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_instagram_login_account_has_its_permissions_revoked() {
    let h = Harness::start(|_| {}).await;
    let t = h.tenant_with_channels().await;
    assert_eq!(
        delete(&h, &t, "instagram", IG_ACCOUNT).await,
        StatusCode::NO_CONTENT
    );
    let revoked: Vec<GraphCall> = h
        .graph
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE" && c.path.ends_with("/me/permissions"))
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].bearer.as_deref(), Some(IG_TOKEN));
    assert_eq!(revoked[0].status, 200);
    let r = revocations(&h, &t).await;
    assert_eq!(step(&r[0])["step"], "instagram_permissions");
    assert_eq!(step(&r[0])["state"], "done");
    assert_eq!(r[0]["tokens_held"], false);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_provider_outage_leaves_the_step_pending_with_the_tokens_until_a_retry_completes_it() {
    let h = Harness::start(|_| {}).await;
    let t = h.tenant_with_channels().await;
    h.graph.fail_next(1, GraphFailure::Down);
    assert_eq!(
        delete(&h, &t, "whatsapp", WA_NUMBER).await,
        StatusCode::NO_CONTENT
    );
    // The route is gone at once; the revocation waits, holding the token.
    let r = revocations(&h, &t).await;
    assert_eq!(r[0]["revocation"], "pending");
    assert_eq!(step(&r[0])["state"], "pending");
    assert!(step(&r[0])["last_error"]
        .as_str()
        .unwrap()
        .contains("unavailable"));
    assert_eq!(r[0]["attempts"], 1);
    assert_eq!(r[0]["tokens_held"], true);
    assert!(r[0]["next_attempt_at"].as_i64().is_some());
    assert!(unsubscribes(&h.graph.calls()).is_empty());

    // Meta is back: the retry completes it and the token is deleted.
    let attempted = retry(&h, &t).await;
    assert_eq!(attempted["revocations"][0]["revocation"], "done");
    let calls = unsubscribes(&h.graph.calls());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].bearer.as_deref(), Some(WA_TOKEN));
    let r = revocations(&h, &t).await;
    assert_eq!(r[0]["revocation"], "done");
    assert_eq!(r[0]["attempts"], 2);
    assert_eq!(r[0]["tokens_held"], false);
    // Nothing left to retry.
    assert_eq!(retry(&h, &t).await["revocations"], json!([]));
    assert_eq!(unsubscribes(&h.graph.calls()).len(), 1);

    let (audit, log) = revocation_audit(&h, &t).await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "revocation_started",
            "revocation_pending",
            "revocation_completed"
        ]
    );
    assert_eq!(audit[1]["details"]["tokens"], "held");
    assert_eq!(audit[2]["details"]["tokens"], "deleted");
    assert!(!log.contains(WA_TOKEN));
    h.server.shutdown().await;
}

/// An Instagram account connected again while its revocation waits out an outage keeps the
/// grants of its new connection: `DELETE /me/permissions` would take the new token's too, so
/// the retry skips the step, and the old token the record held is deleted (decision 0119).
#[tokio::test]
async fn a_revocation_retried_after_the_channel_is_connected_again_leaves_its_access() {
    let h = Harness::start(|_| {}).await;
    let t = h.tenant_with_channels().await;
    let revokes = |h: &Harness| {
        h.graph
            .calls()
            .into_iter()
            .filter(|c| c.method == "DELETE" && c.path.ends_with("/me/permissions"))
            .map(|c| c.status)
            .collect::<Vec<u16>>()
    };
    h.graph.fail_next(1, GraphFailure::Down);
    assert_eq!(
        delete(&h, &t, "instagram", IG_ACCOUNT).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(revocations(&h, &t).await[0]["revocation"], "pending");
    assert_eq!(revokes(&h), [503]);

    // The business connects the account again before the retry.
    h.connect_instagram(&t, IG_ACCOUNT, IG_TOKEN).await;
    let attempted = retry(&h, &t).await;
    assert_eq!(attempted["revocations"][0]["revocation"], "done");
    assert_eq!(
        revokes(&h),
        [503],
        "no revocation of the new connection's grants"
    );
    let r = revocations(&h, &t).await;
    assert_eq!(step(&r[0])["step"], "instagram_permissions");
    assert_eq!(step(&r[0])["state"], "skipped");
    assert!(step(&r[0])["note"]
        .as_str()
        .is_some_and(|n| n.contains("connected again")));
    assert_eq!(r[0]["tokens_held"], false);
    // Its token still works at Meta (a revocation would have made it invalid).
    let status = h
        .http
        .get(format!("{}/v26.0/me/subscribed_apps", h.graph.base_url()))
        .bearer_auth(IG_TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_provider_that_stays_down_is_given_up_after_the_bounded_attempts_and_the_tokens_go() {
    let h = Harness::start(|_| {}).await;
    let t = h.tenant_with_channels().await;
    let attempts = wappline::revocation::DEFAULT_MAX_ATTEMPTS;
    h.graph
        .fail_next(attempts as usize + 5, GraphFailure::ServerError);
    assert_eq!(
        delete(&h, &t, "whatsapp", WA_NUMBER).await,
        StatusCode::NO_CONTENT
    );
    for n in 2..attempts {
        let r = &retry(&h, &t).await["revocations"][0];
        assert_eq!(r["revocation"], "pending", "attempt {n}");
        assert_eq!(r["tokens_held"], true);
    }
    let r = &retry(&h, &t).await["revocations"][0];
    assert_eq!(r["revocation"], "failed");
    assert_eq!(r["attempts"], attempts);
    assert_eq!(step(r)["state"], "failed");
    assert_eq!(r["tokens_held"], false);
    let (audit, _) = revocation_audit(&h, &t).await;
    let last = audit.last().unwrap();
    assert_eq!(last["action"], "revocation_given_up");
    assert_eq!(last["details"]["steps"], "whatsapp_subscription=failed");
    assert_eq!(last["details"]["tokens"], "deleted");
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_portal_disconnect_unregisters_our_connectors_and_unbinds_our_events() {
    let fake = FakeBitrix::start().await;
    let h = Harness::start(|c| {
        fake.wire_into(c);
    })
    .await;
    let t = h.create_tenant("Acme").await;
    h.connect_portal(&t, &fake, FAKE_DOMAIN, FAKE_MEMBER_ID, 1)
        .await;
    // The access token expired meanwhile: the revocation refreshes it.
    fake.expire_token_for(FAKE_DOMAIN);
    fake.clear_records();
    assert_eq!(
        delete(&h, &t, "bitrix24", FAKE_MEMBER_ID).await,
        StatusCode::NO_CONTENT
    );
    let unregistered: Vec<String> = fake
        .calls_to("imconnector.unregister")
        .iter()
        .filter(|c| c.params.get("ID").is_some())
        .map(|c| c.params["ID"].as_str().unwrap().to_owned())
        .collect();
    assert!(unregistered.contains(&"wappline_whatsapp".to_owned()));
    assert!(unregistered.contains(&"wappline_instagram".to_owned()));
    let unbound: Vec<(String, String)> = fake
        .calls_to("event.unbind")
        .iter()
        .map(|c| {
            (
                c.params["event"].as_str().unwrap().to_owned(),
                c.params["handler"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for event in wappline::portal::install::BOUND_EVENTS {
        assert!(
            unbound
                .iter()
                .any(|(e, h)| e == event && h.ends_with("/bitrix/events")),
            "{event} unbound: {unbound:?}"
        );
    }
    assert!(
        !fake.oauth_requests().is_empty(),
        "the expired access token was refreshed"
    );
    let r = revocations(&h, &t).await;
    assert_eq!(r[0]["revocation"], "done", "{r:?}");
    let states: Vec<(&str, &str)> = r[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("bitrix24_connectors", "done"), ("bitrix24_events", "done")]
    );
    assert_eq!(r[0]["tokens_held"], false);
    h.server.shutdown().await;
}
