//! Self-service onboarding (issue 14 items 1 and 2, decision 0040) on the local server, with
//! Meta faked on loopback in its documented formats: a WhatsApp number through Embedded
//! Signup (the page posts the session-info event and the code), an Instagram account through
//! Instagram Login (authorize URL with a signed state, the redirect's code), and the schedule
//! that renews Instagram tokens. Every failure path answers a clear JSON error with the steps
//! so far and leaves nothing connected.

use std::time::Duration;

use e2e_tests::fake_graph::{
    wire_self_service, BusinessToken, FakeGraph, FAKE_APP_ID, FAKE_IG_APP_ID,
};
use e2e_tests::harness::Harness;
use e2e_tests::outbox::mails_to;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::clock::now_secs;
use wappline::ids::{InstagramAccountId, TenantId};
use wappline::onboarding::refresh::TokenRefresh;
use wappline::store::Table;
use wappline::tenant::ChannelRef;

use crate::connect_setup::{admin_post, audit, nothing_connected, token_never_in_clear};

const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const TOKEN: &str = "EAAGsignupBUSINESStoken";
const IG: &str = "17841405822304914";
const ES_CONFIG: &str = "1234567890123";

pub(crate) async fn start() -> Harness {
    let graph = FakeGraph::start().await;
    let base = graph.base_url();
    let mut h = Harness::start(move |c| {
        c.graph_api_base_url = base.clone();
        wire_self_service(c);
        // A configuration id of our own, to see it is the one the page offers.
        c.meta_es_config_id = Some(ES_CONFIG.into());
    })
    .await;
    h.graph = graph;
    h
}

fn finish(event: &str, code: &str) -> Value {
    json!({"event": event, "code": code, "waba_id": WABA, "phone_number_id": PHONE})
}

/// The steps of an answer (a success's `steps`, an error's `error.steps`) as
/// `name=status` pairs.
fn steps(v: &Value) -> Vec<String> {
    v.get("steps")
        .or_else(|| v["error"].get("steps"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s["step"].as_str().unwrap(),
                s["status"].as_str().unwrap()
            )
        })
        .collect()
}

pub(crate) async fn channels(h: &Harness, t: &str) -> Vec<Value> {
    h.admin_get(&format!("/admin/tenants/{t}")).await["channels"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn embedded_signup_connects_a_number_and_reports_each_step() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let page = h.admin_get(&format!("/admin/tenants/{t}/onboarding")).await;
    assert_eq!(page["meta_app_id"], FAKE_APP_ID);
    assert_eq!(page["es_config_id"], ES_CONFIG);
    assert_eq!(page["instagram_login"], true);

    let code = h.graph.issue_signup_code(TOKEN, WABA, PHONE);
    let (status, v) = admin_post(
        &h,
        &format!("/admin/tenants/{t}/onboarding/whatsapp"),
        finish("FINISH", &code),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["outcome"], "connected");
    assert_eq!(
        steps(&v),
        [
            "exchange_code=ok",
            "verify_ownership=ok",
            "store_and_claim=ok",
            "subscribe_webhooks=ok",
            "register_number=ok"
        ]
    );
    assert!(v["steps"][0]["message"].as_str().unwrap().len() > 10);
    // The exchange sent our app's credentials and the code; the register call a 6-digit PIN.
    let calls = h.graph.calls();
    let exchange = calls
        .iter()
        .find(|c| c.path.ends_with("/oauth/access_token"))
        .unwrap();
    let q = exchange.query.clone().unwrap();
    assert!(
        q.contains(&format!("client_id={FAKE_APP_ID}")) && q.contains(&code),
        "{q}"
    );
    assert!(exchange.bearer.is_none());
    let log = h.graph.onboarding();
    assert_eq!(log.subscribed_wabas, [WABA]);
    assert_eq!(log.registered.len(), 1);
    let (number, pin) = &log.registered[0];
    assert_eq!(number, PHONE);
    assert!(pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()));
    let register = calls
        .iter()
        .find(|c| c.path.ends_with("/register"))
        .unwrap();
    let body: Value = serde_json::from_str(&register.body).unwrap();
    assert_eq!(body["messaging_product"], "whatsapp");
    // Stored: the channel with its token and PIN encrypted, neither in clear anywhere.
    let ch = channels(&h, &t).await;
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0]["id"], PHONE);
    assert_eq!(ch[0]["details"]["waba_id"], WABA);
    assert_eq!(ch[0]["details"]["onboarding"], "embedded_signup");
    // The number as the WABA lists it, for the console's channel list (decision 0062).
    assert_eq!(ch[0]["details"]["display_phone_number"], "+1 555-2922");
    assert_eq!(ch[0]["details"]["verified_name"], "Fake Market");
    assert!(ch[0]["details"].get("coexistence").is_none());
    assert_eq!(
        ch[0]["secrets_stored"],
        json!(["access_token", "two_step_pin"])
    );
    token_never_in_clear(&h, TOKEN).await;
    token_never_in_clear(&h, pin).await;
    let entries = audit(&h, &t).await;
    assert!(entries.iter().any(|e| e["action"] == "channel_connected"
        && e["details"]["via"] == "embedded_signup"
        && e["details"]["channel"] == PHONE));

    // The code was valid once: posting it again is refused and changes nothing.
    let (status, v) = admin_post(
        &h,
        &format!("/admin/tenants/{t}/onboarding/whatsapp"),
        finish("FINISH", &code),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "code_rejected");
    assert_eq!(h.graph.onboarding().subscribed_wabas.len(), 1);
}

#[tokio::test]
async fn a_coexistence_number_is_not_registered_and_is_marked_for_20_per_second() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let code = h.graph.issue_signup_code(TOKEN, WABA, PHONE);
    let (status, v) = admin_post(
        &h,
        &format!("/admin/tenants/{t}/onboarding/whatsapp"),
        finish("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", &code),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(steps(&v)[4], "register_number=skipped");
    assert!(v["steps"][4]["message"]
        .as_str()
        .unwrap()
        .contains("20 messages per second"));
    let log = h.graph.onboarding();
    assert!(
        log.registered.is_empty(),
        "a Coexistence number was registered"
    );
    assert!(!h
        .graph
        .calls()
        .iter()
        .any(|c| c.path.ends_with("/register")));
    assert_eq!(log.subscribed_wabas, [WABA]);
    let ch = channels(&h, &t).await;
    assert_eq!(ch[0]["details"]["coexistence"], "true");
    assert_eq!(ch[0]["secrets_stored"], json!(["access_token"]));
    // A PIN makes no sense for a number that is not registered.
    let code = h.graph.issue_signup_code(TOKEN, WABA, PHONE);
    let mut body = finish("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", &code);
    body["pin"] = json!("123456");
    let (status, _) =
        admin_post(&h, &format!("/admin/tenants/{t}/onboarding/whatsapp"), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_cancelled_or_failed_signup_stores_nothing() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let path = format!("/admin/tenants/{t}/onboarding/whatsapp");
    let (status, v) = admin_post(
        &h,
        &path,
        json!({"event": "CANCEL", "current_step": "PHONE_NUMBER_SETUP"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "cancelled");
    assert_eq!(v["current_step"], "PHONE_NUMBER_SETUP");
    let (status, v) = admin_post(
        &h,
        &path,
        json!({"event": "ERROR", "error_message": "Phone number already registered"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "signup_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was connected"));
    for bad in [
        json!({"event": "FINISH"}),
        json!({"event": "FINISH_ONLY_WABA", "waba_id": WABA}),
        json!({"event": "FINISH", "code": "x", "waba_id": WABA, "phone_number_id": PHONE, "tenant_id": t}),
        json!({"event": "nope"}),
    ] {
        let (status, v) = admin_post(&h, &path, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["error"]["message"].as_str().is_some());
    }
    assert!(h.graph.calls().is_empty(), "Meta was called");
    nothing_connected(&h, PHONE, TOKEN).await;
    assert!(channels(&h, &t).await.is_empty());
}

#[tokio::test]
async fn an_expired_code_or_an_unproven_token_stores_nothing() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let path = format!("/admin/tenants/{t}/onboarding/whatsapp");
    h.graph.add_whatsapp_business(TOKEN, WABA, PHONE);
    let expired = h.graph.issue_expired_signup_code(TOKEN);
    let (status, v) = admin_post(&h, &path, finish("FINISH", &expired)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "code_rejected");
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"));
    assert_eq!(steps(&v), ["exchange_code=failed"]);

    // A token that does not grant the WABA: the proof refuses it before anything is stored.
    let other = "EAAGotherBUSINESStoken";
    h.graph
        .add_business_token(other, BusinessToken::for_waba("102290129340777"));
    let code = h.graph.issue_code_for(other, now_secs() as u64 + 300);
    let (status, v) = admin_post(&h, &path, finish("FINISH", &code)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "ownership_not_proven");
    assert_eq!(steps(&v), ["exchange_code=ok", "verify_ownership=failed"]);
    assert!(h.graph.onboarding().subscribed_wabas.is_empty());
    nothing_connected(&h, PHONE, other).await;
    nothing_connected(&h, PHONE, TOKEN).await;
    let refused = audit(&h, &t)
        .await
        .into_iter()
        .filter(|e| e["action"] == "channel_connect_refused")
        .count();
    assert_eq!(refused, 2);
}

#[tokio::test]
async fn a_step_after_the_claim_that_fails_undoes_the_connection() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let path = format!("/admin/tenants/{t}/onboarding/whatsapp");
    h.graph.fail_register(1);
    let code = h.graph.issue_signup_code(TOKEN, WABA, PHONE);
    let (status, v) = admin_post(&h, &path, finish("FINISH", &code)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "connect_failed");
    assert_eq!(
        steps(&v),
        [
            "exchange_code=ok",
            "verify_ownership=ok",
            "store_and_claim=ok",
            "subscribe_webhooks=ok",
            "register_number=failed",
            "roll_back=ok"
        ]
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was connected"));
    nothing_connected(&h, PHONE, TOKEN).await;
    // Our subscription to the WABA was given up again (no other number uses it).
    assert!(h
        .graph
        .calls()
        .iter()
        .any(|c| c.method == "DELETE" && c.path.ends_with(&format!("{WABA}/subscribed_apps"))));

    // Connected by one tenant, the number cannot be taken by another: 409, nothing more said.
    let code = h.graph.issue_signup_code(TOKEN, WABA, PHONE);
    let (status, _) = admin_post(&h, &path, finish("FINISH", &code)).await;
    assert_eq!(status, StatusCode::CREATED);
    let other = h.create_tenant("Other").await;
    let code = h.graph.issue_signup_code("EAAGsecondTOKEN", WABA, PHONE);
    let (status, v) = admin_post(
        &h,
        &format!("/admin/tenants/{other}/onboarding/whatsapp"),
        finish("FINISH", &code),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "cannot_connect");
    assert_eq!(
        v["error"]["message"],
        "this WhatsApp number cannot be connected"
    );
    assert!(channels(&h, &other).await.is_empty());
    assert_eq!(channels(&h, &t).await.len(), 1);
}

/// Follows the authorization URL at the fake as a browser would and returns the redirect's
/// `code` and `state`.
pub(crate) async fn sign_in(h: &Harness, authorize_url: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(authorize_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/app/onboarding/instagram/callback?", h.base)));
    let query = location.split_once('?').unwrap().1.trim_end_matches("#_");
    let get = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .map(|v| {
                v.replace("%2E", ".")
                    .replace("%2D", "-")
                    .replace("%5F", "_")
            })
            .unwrap()
    };
    (get("code"), get("state"))
}

pub(crate) async fn authorize(h: &Harness, t: &str) -> Value {
    let (status, v) = admin_post(
        h,
        &format!("/admin/tenants/{t}/onboarding/instagram/authorize"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn instagram_login_connects_an_account_with_a_long_lived_token() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let a = authorize(&h, &t).await;
    let url = a["authorize_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/oauth/authorize?", h.graph.base_url())));
    for part in [
        format!("client_id={FAKE_IG_APP_ID}"),
        "response_type=code".to_owned(),
        "scope=instagram_business_basic%2Cinstagram_business_manage_messages".to_owned(),
        "state=".to_owned(),
    ] {
        assert!(url.contains(&part), "{part} not in {url}");
    }
    h.graph.set_instagram_login(
        IG,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    let (code, state) = sign_in(&h, url).await;
    assert_eq!(state, a["state"].as_str().unwrap());
    let path = format!("/admin/tenants/{t}/onboarding/instagram/complete");
    let before = now_secs();
    let (status, v) = admin_post(&h, &path, json!({"code": code, "state": state})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        steps(&v),
        [
            "exchange_code=ok",
            "long_lived_token=ok",
            "verify_ownership=ok",
            "store_and_claim=ok",
            "subscribe_webhooks=ok"
        ]
    );
    assert_eq!(v["channel"]["id"], IG);
    let expires = v["channel"]["token"]["expires_at"].as_i64().unwrap();
    assert!((before + 5183944..=now_secs() + 5183944).contains(&expires));
    assert_eq!(v["channel"]["token"]["status"], "valid");
    // The documented requests: the code exchange as a form with the redirect URI, the
    // long-lived exchange with our secret, the webhook subscription with the fields.
    let calls = h.graph.calls();
    let exchange = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == "/oauth/access_token")
        .unwrap();
    assert!(exchange.body.contains("grant_type=authorization_code"));
    assert!(exchange.body.contains(&format!("code={code}")));
    assert!(exchange.body.contains("redirect_uri="));
    let long = calls.iter().find(|c| c.path == "/access_token").unwrap();
    assert!(long
        .query
        .as_deref()
        .unwrap()
        .contains("grant_type=ig_exchange_token"));
    let subs = h.graph.onboarding().instagram_subscriptions;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].0, IG);
    assert!(subs[0].1.split(',').any(|f| f == "messages"));
    // The long-lived token is stored, encrypted; it is the one that proves the account.
    let long_token = calls
        .iter()
        .find(|c| c.path.ends_with("/me/subscribed_apps"))
        .and_then(|c| c.bearer.clone())
        .unwrap();
    token_never_in_clear(&h, &long_token).await;
    let ch = channels(&h, &t).await;
    assert_eq!(ch[0]["details"]["onboarding"], "instagram_login");
    assert_eq!(ch[0]["secrets_stored"], json!(["access_token"]));

    // The code was valid once.
    let (status, v) = admin_post(&h, &path, json!({"code": code, "state": state})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "code_rejected");
}

#[tokio::test]
async fn instagram_login_refuses_foreign_or_forged_states_and_missing_permissions() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    let other = h.create_tenant("Other").await;
    let path = format!("/admin/tenants/{t}/onboarding/instagram/complete");
    h.graph.set_instagram_login(
        IG,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    // A state issued for another tenant.
    let a = authorize(&h, &other).await;
    let (code, state) = sign_in(&h, a["authorize_url"].as_str().unwrap()).await;
    let (status, v) = admin_post(&h, &path, json!({"code": code, "state": state})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_state");
    // A forged one.
    let (status, v) = admin_post(
        &h,
        &path,
        json!({"code": code, "state": format!("{state}x")}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        !h.graph
            .calls()
            .iter()
            .any(|c| c.path == "/oauth/access_token"),
        "a refused state reached Instagram"
    );
    // The messaging permission not granted.
    h.graph.set_instagram_login(IG, "instagram_business_basic");
    let a = authorize(&h, &t).await;
    let (code, state) = sign_in(&h, a["authorize_url"].as_str().unwrap()).await;
    let (status, v) = admin_post(&h, &path, json!({"code": code, "state": state})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "ownership_not_proven");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("instagram_business_manage_messages"));
    nothing_connected(&h, IG, "IGQshort").await;
    assert!(channels(&h, &t).await.is_empty());
    assert!(channels(&h, &other).await.is_empty());
}

#[tokio::test]
async fn an_instagram_subscription_that_fails_undoes_the_connection() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    h.graph.set_instagram_login(
        IG,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    h.graph.fail_instagram_subscribe(1);
    let a = authorize(&h, &t).await;
    let (code, state) = sign_in(&h, a["authorize_url"].as_str().unwrap()).await;
    let (status, v) = admin_post(
        &h,
        &format!("/admin/tenants/{t}/onboarding/instagram/complete"),
        json!({"code": code, "state": state}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "provider_unavailable");
    assert_eq!(
        steps(&v),
        [
            "exchange_code=ok",
            "long_lived_token=ok",
            "verify_ownership=ok",
            "store_and_claim=ok",
            "subscribe_webhooks=failed",
            "roll_back=ok"
        ]
    );
    let calls = h.graph.calls();
    let long_token = calls
        .iter()
        .find(|c| c.path.ends_with("/me/subscribed_apps"))
        .and_then(|c| c.bearer.clone())
        .unwrap();
    nothing_connected(&h, IG, &long_token).await;
    // The permissions granted a moment ago were given up at Instagram.
    assert!(calls
        .iter()
        .any(|c| c.method == "DELETE" && c.path.ends_with("/me/permissions")));
    assert!(channels(&h, &t).await.is_empty());
}

/// Connects `account` to `t` through Instagram Login; the long-lived token.
pub(crate) async fn connect_instagram(h: &Harness, t: &str, account: &str) -> String {
    h.graph.set_instagram_login(
        account,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    let a = authorize(h, t).await;
    let (code, state) = sign_in(h, a["authorize_url"].as_str().unwrap()).await;
    let (status, v) = admin_post(
        h,
        &format!("/admin/tenants/{t}/onboarding/instagram/complete"),
        json!({"code": code, "state": state}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    h.graph
        .calls()
        .iter()
        .rev()
        .find(|c| c.path.ends_with("/me/subscribed_apps"))
        .and_then(|c| c.bearer.clone())
        .unwrap()
}

/// Makes the channel's token expire in `days` (as if connected long ago).
pub(crate) async fn age(h: &Harness, t: &str, account: &str, days: i64) {
    let scope = h
        .server
        .platform()
        .tenants
        .scope(&TenantId::parse(t).unwrap())
        .await
        .unwrap()
        .unwrap();
    let channel = ChannelRef::Instagram(InstagramAccountId::parse(account).unwrap());
    let now = now_secs();
    TokenRefresh::track(&scope, &channel, now + days * 86_400, now - 30 * 86_400)
        .await
        .unwrap();
    // `track` never schedules sooner than a day ahead (Meta refreshes only day-old tokens):
    // bring the index entry forward as the passing days would.
    let store = &h.server.platform().store;
    let key = wappline::store::Key::new(
        wappline::onboarding::refresh::INDEX_PARTITION,
        format!("{t}#{}", channel.channel_sk()),
    );
    let due = if days * 86_400 <= wappline::onboarding::refresh::REFRESH_WITHIN_SECS {
        now - 1
    } else {
        now + days * 86_400 - wappline::onboarding::refresh::REFRESH_WITHIN_SECS
    };
    store
        .update(
            Table::Routes,
            &key,
            wappline::store::Update::new().set("due_at", due),
            None,
        )
        .await
        .unwrap();
}

async fn token_of(h: &Harness, t: &str, account: &str) -> Value {
    channels(h, t)
        .await
        .into_iter()
        .find(|c| c["id"] == account)
        .unwrap()["token"]
        .clone()
}

pub(crate) async fn wait_for(mut done: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not done within 10 s");
}

#[tokio::test]
async fn the_schedule_refreshes_due_tokens_leaves_others_and_alerts_on_failure() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    // An admin to alert (an invited user who accepted).
    let inv = h
        .admin(
            "POST",
            &format!("/admin/tenants/{t}/invitations"),
            json!({"email": "admin@acme.test", "role": "admin"}),
        )
        .await;
    let (status, _) = admin_post(
        &h,
        "/auth/invitations/accept",
        json!({"token": inv["token"], "password": "correct horse battery"}),
    )
    .await;
    assert!(status.is_success());
    let second = "17841400000000001";
    let due_token = connect_instagram(&h, &t, IG).await;
    let fresh_token = connect_instagram(&h, &t, second).await;
    age(&h, &t, IG, 10).await;
    age(&h, &t, second, 50).await;
    assert_eq!(token_of(&h, &t, IG).await["status"], "valid");

    // The schedule (every second on the test server) renews the due one only.
    wait_for(async || !h.graph.onboarding().refreshed.is_empty()).await;
    wait_for(async || {
        token_of(&h, &t, IG).await["expires_at"].as_i64().unwrap() > now_secs() + 59 * 86_400
    })
    .await;
    let log = h.graph.onboarding();
    assert_eq!(log.refreshed, std::slice::from_ref(&due_token));
    let ig = token_of(&h, &t, IG).await;
    assert_eq!(ig["status"], "valid");
    let other = token_of(&h, &t, second).await;
    let left = other["expires_at"].as_i64().unwrap() - now_secs();
    assert!((49 * 86_400..51 * 86_400).contains(&left), "{other}");
    assert!(!log.refreshed.contains(&fresh_token));
    // The refreshed token is stored (encrypted) and used from now on: the next send or
    // refresh presents it.
    token_never_in_clear(&h, &due_token).await;
    // Audited after the token and its next due date are stored: waited for, not assumed.
    wait_for(async || {
        audit(&h, &t)
            .await
            .iter()
            .any(|e| e["action"] == "channel_token_refreshed" && e["details"]["channel"] == IG)
    })
    .await;

    // When refreshing fails: the status says so, the admin gets an email, it is audited.
    h.graph.fail_instagram_refresh(true);
    age(&h, &t, second, 5).await;
    wait_for(async || token_of(&h, &t, second).await["status"] == "refresh_failed").await;
    let failed = token_of(&h, &t, second).await;
    assert_eq!(failed["refresh_error"], "token_refused");
    wait_for(async || {
        mails_to(h.server.data_dir(), "admin@acme.test")
            .iter()
            .any(|m| m.contains(second) && m.contains("could not be renewed"))
    })
    .await;
    assert!(audit(&h, &t).await.iter().any(|e| {
        e["action"] == "channel_token_refresh_failed" && e["details"]["channel"] == second
    }));
    // Only one attempt a day: the failure is not retried at once.
    let attempts = h
        .graph
        .calls()
        .iter()
        .filter(|c| c.path == "/refresh_access_token")
        .count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = h
        .graph
        .calls()
        .iter()
        .filter(|c| c.path == "/refresh_access_token")
        .count();
    assert_eq!(attempts, after);

    // A disconnected account leaves the renewal index at its next due run.
    h.admin(
        "DELETE",
        &format!("/admin/tenants/{t}/channels/instagram/{second}"),
        json!(null),
    )
    .await;
    age_index(&h, &t, second).await;
    let entry = format!("{t}#{}", instagram(second).channel_sk());
    wait_for(async || {
        !h.all_items(Table::Routes)
            .await
            .iter()
            .any(|i| i.get_s("sk") == Some(entry.as_str()))
    })
    .await;
    assert!(
        h.graph.onboarding().refreshed.len() == 1,
        "nothing more was refreshed"
    );
}

fn instagram(account: &str) -> ChannelRef {
    ChannelRef::Instagram(InstagramAccountId::parse(account).unwrap())
}

/// Makes the channel's renewal index entry due now.
async fn age_index(h: &Harness, t: &str, account: &str) {
    let key = wappline::store::Key::new(
        wappline::onboarding::refresh::INDEX_PARTITION,
        format!("{t}#{}", instagram(account).channel_sk()),
    );
    h.server
        .platform()
        .store
        .update(
            Table::Routes,
            &key,
            wappline::store::Update::new().set("due_at", now_secs() - 1),
            None,
        )
        .await
        .unwrap();
}
