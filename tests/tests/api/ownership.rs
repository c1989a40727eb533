//! Ownership proof on the admin API's direct connects (decision 0032): a WhatsApp number, an
//! Instagram account or a Bitrix24 portal is claimed only when the supplied token proves its
//! holder controls it, at the loopback fakes of Meta and Bitrix24. A refused claim answers a
//! clear JSON error, stores nothing (no route, no channel, no token) and is audited as
//! `channel_connect_refused` without the token; an id another tenant holds answers 409 that
//! says only that it cannot be connected.

use e2e_tests::fake_bitrix::FakeBitrix;
use e2e_tests::fake_graph::{BusinessToken, GraphFailure};
use e2e_tests::harness::{contains_bytes, Harness, IG_ACCOUNT, WABA, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::store::Table;

use crate::connect_setup::{admin_post, audit, nothing_connected};

const OTHER_WABA: &str = "102290129340777";

/// POSTs a connect; status and JSON answer.
async fn connect(h: &Harness, tenant: &str, kind: &str, body: Value) -> (StatusCode, Value) {
    admin_post(h, &format!("/admin/tenants/{tenant}/channels/{kind}"), body).await
}

fn wa(phone: &str, waba: &str, token: &str) -> Value {
    json!({"phone_number_id": phone, "waba_id": waba, "access_token": token})
}

/// A refusal: the status and code, a message naming what is wrong, nothing stored, and the
/// newest audit entry `channel_connect_refused` with `reason` (never the token).
#[allow(clippy::too_many_arguments)]
async fn refused(
    h: &Harness,
    tenant: &str,
    answer: (StatusCode, Value),
    status: StatusCode,
    code: &str,
    says: &str,
    id: &str,
    token: &str,
    reason: &str,
) {
    let (s, v) = answer;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{message}");
    assert!(!message.contains(token) && !message.contains("another tenant"));
    nothing_connected(h, id, token).await;
    let entries = audit(h, tenant).await;
    let e = &entries[0];
    assert_eq!(e["action"], "channel_connect_refused", "{entries:?}");
    assert_eq!(e["details"]["channel"], id);
    assert_eq!(e["details"]["reason"], reason);
    assert!(!entries
        .iter()
        .any(|e| e["action"] == "channel_connected" && e["details"]["channel"] == id));
    assert!(!Value::Array(entries).to_string().contains(token));
}

#[tokio::test]
async fn whatsapp_is_connected_only_with_a_token_of_our_app_for_the_waba_and_number() {
    let h = Harness::start(|_| {}).await;
    let t = h.create_tenant("Acme").await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;

    // Not a token Meta knows.
    let answer = connect(&h, &t, "whatsapp", wa(WA_NUMBER, WABA, "EAAjunk")).await;
    refused(
        &h,
        &t,
        answer,
        unprocessable,
        "ownership_not_proven",
        "Meta does not accept the access token",
        WA_NUMBER,
        "EAAjunk",
        "token_not_valid",
    )
    .await;

    // A valid token with both permissions on the WABA, issued for another app.
    h.graph.add_business_token(
        "EAAotherAPP",
        BusinessToken {
            app_id: "1234567890".into(),
            ..BusinessToken::for_waba(WABA)
        },
    );
    h.graph.add_waba(WABA, &[WA_NUMBER]);
    let answer = connect(&h, &t, "whatsapp", wa(WA_NUMBER, WABA, "EAAotherAPP")).await;
    refused(
        &h,
        &t,
        answer,
        unprocessable,
        "ownership_not_proven",
        "not issued for this platform's Meta app",
        WA_NUMBER,
        "EAAotherAPP",
        "token_of_another_app",
    )
    .await;

    // Our app's token, granted on another WABA only; then with management but no messaging.
    h.graph
        .add_business_token("EAAotherWABA", BusinessToken::for_waba(OTHER_WABA));
    let answer = connect(&h, &t, "whatsapp", wa(WA_NUMBER, WABA, "EAAotherWABA")).await;
    refused(
        &h,
        &t,
        answer,
        unprocessable,
        "ownership_not_proven",
        "does not grant whatsapp_business_management and whatsapp_business_messaging",
        WA_NUMBER,
        "EAAotherWABA",
        "waba_not_granted",
    )
    .await;
    h.graph.add_business_token(
        "EAAmanageONLY",
        BusinessToken {
            messaging: vec![],
            ..BusinessToken::for_waba(WABA)
        },
    );
    let answer = connect(&h, &t, "whatsapp", wa(WA_NUMBER, WABA, "EAAmanageONLY")).await;
    refused(
        &h,
        &t,
        answer,
        unprocessable,
        "ownership_not_proven",
        "does not grant",
        WA_NUMBER,
        "EAAmanageONLY",
        "waba_not_granted",
    )
    .await;

    // Our app's token on the WABA, but the number is not one of the WABA's.
    h.graph
        .add_business_token("EAAwabaTOKEN", BusinessToken::for_waba(WABA));
    let stranger = "106540352299999";
    let answer = connect(&h, &t, "whatsapp", wa(stranger, WABA, "EAAwabaTOKEN")).await;
    refused(
        &h,
        &t,
        answer,
        unprocessable,
        "ownership_not_proven",
        "not a number of this WhatsApp Business Account",
        stranger,
        "EAAwabaTOKEN",
        "number_not_in_waba",
    )
    .await;

    // Meta down or failing: 503, nothing stored, and the claim can be made again.
    for failure in [GraphFailure::Down, GraphFailure::ServerError] {
        h.graph.fail_next(1, failure);
        let answer = connect(&h, &t, "whatsapp", wa(WA_NUMBER, WABA, "EAAwabaTOKEN")).await;
        refused(
            &h,
            &t,
            answer,
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_unavailable",
            "nothing was stored",
            WA_NUMBER,
            "EAAwabaTOKEN",
            "provider_unavailable",
        )
        .await;
    }

    // The same token now proves the number: connected, audited, and the debug_token call
    // carried our app token, never the business token as the credential.
    let (s, v) = connect(&h, &t, "whatsapp", wa(WA_NUMBER, WABA, "EAAwabaTOKEN")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["id"], WA_NUMBER);
    assert_eq!(audit(&h, &t).await[0]["action"], "channel_connected");
    let debug = h
        .graph
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.path.ends_with("/debug_token") && c.status == 200)
        .expect("debug_token was asked");
    assert_eq!(
        debug.bearer.as_deref(),
        Some(
            format!(
                "{}|{}",
                e2e_tests::fake_graph::FAKE_APP_ID,
                e2e_tests::fake_graph::FAKE_APP_SECRET
            )
            .as_str()
        )
    );
    assert!(h
        .graph
        .calls()
        .iter()
        .any(|c| c.path.ends_with(&format!("/{WABA}/phone_numbers"))
            && c.bearer.as_deref() == Some("EAAwabaTOKEN")));
}

#[tokio::test]
async fn instagram_is_connected_only_when_the_token_is_the_accounts() {
    let h = Harness::start(|_| {}).await;
    let t = h.create_tenant("Acme").await;
    // A token of another Instagram account: /me answers that account's id.
    h.graph
        .add_instagram_token("IGAAelsewhere", "17841400000000001", None);
    let body = json!({"account_id": IG_ACCOUNT, "access_token": "IGAAelsewhere"});
    let answer = connect(&h, &t, "instagram", body).await;
    refused(
        &h,
        &t,
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ownership_not_proven",
        "belongs to another Instagram account",
        IG_ACCOUNT,
        "IGAAelsewhere",
        "account_mismatch",
    )
    .await;
    // A token Instagram does not know.
    let body = json!({"account_id": IG_ACCOUNT, "access_token": "IGAAjunk"});
    let answer = connect(&h, &t, "instagram", body).await;
    refused(
        &h,
        &t,
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ownership_not_proven",
        "does not accept",
        IG_ACCOUNT,
        "IGAAjunk",
        "token_not_valid",
    )
    .await;
    // Through a Page: the token must be that Page's, and the Page's account the claimed one.
    let body = json!({"account_id": IG_ACCOUNT, "page_id": "104102228512371", "access_token": "EAApageOTHER"});
    h.graph
        .add_instagram_token("EAApageOTHER", "17841400000000001", Some("104102228512371"));
    let answer = connect(&h, &t, "instagram", body).await;
    refused(
        &h,
        &t,
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ownership_not_proven",
        "another Instagram account",
        IG_ACCOUNT,
        "EAApageOTHER",
        "account_mismatch",
    )
    .await;

    h.graph.add_instagram_token("IGAAmine", IG_ACCOUNT, None);
    let body = json!({"account_id": IG_ACCOUNT, "access_token": "IGAAmine"});
    let (s, v) = connect(&h, &t, "instagram", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let me = h
        .graph
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.path.ends_with("/me"))
        .unwrap();
    assert_eq!(me.query.as_deref(), Some("fields=user_id%2Cusername"));
}

#[tokio::test]
async fn a_portal_is_connected_only_with_its_own_tokens() {
    let fake = FakeBitrix::start().await;
    let h = Harness::start(|c| {
        fake.wire_into(c);
    })
    .await;
    let t = h.create_tenant("Acme").await;
    let victim = "b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6";
    fake.add_portal("victim.bitrix24.com", victim);
    let mine = fake.add_portal("mine.bitrix24.com", "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
    // The victim's member_id (and domain) with the caller's own portal's tokens: the OAuth
    // exchange names another member_id.
    let claim = |domain: &str, member: &str| {
        json!({"member_id": member, "domain": domain,
               "access_token": mine.access_token, "refresh_token": mine.refresh_token})
    };
    let answer = connect(&h, &t, "bitrix24", claim("victim.bitrix24.com", victim)).await;
    refused(
        &h,
        &t,
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ownership_not_proven",
        "these tokens belong to this member_id and domain",
        victim,
        &mine.refresh_token,
        "portal_not_confirmed",
    )
    .await;
    // The exchange retired the posted pair: the caller's portal is connected with the pair
    // the fake issued then, through the same proof.
    let mine = fake.valid_tokens_for("mine.bitrix24.com");
    let body = json!({"member_id": mine.member_id, "domain": "mine.bitrix24.com",
                      "access_token": mine.access_token, "refresh_token": mine.refresh_token});
    let (s, v) = connect(&h, &t, "bitrix24", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let fresh = fake.valid_tokens_for("mine.bitrix24.com");
    assert_ne!(
        fresh.refresh_token, mine.refresh_token,
        "the proof exchanged the pair"
    );
}

#[tokio::test]
async fn an_id_another_tenant_holds_cannot_be_connected_and_says_no_more() {
    let h = Harness::start(|_| {}).await;
    let a = h.create_tenant("Holder").await;
    let b = h.create_tenant("Claimant").await;
    h.connect_whatsapp(&a, WA_NUMBER, WABA, "EAAholder").await;
    // B proves the number with a valid token of its own: still refused, 409, in words that
    // say only that the number cannot be connected.
    h.graph
        .add_whatsapp_business("EAAclaimant", WABA, WA_NUMBER);
    let (s, v) = connect(&h, &b, "whatsapp", wa(WA_NUMBER, WABA, "EAAclaimant")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v,
        json!({"error": {"code": "cannot_connect", "message": "this WhatsApp number cannot be connected"}})
    );
    let entries = audit(&h, &b).await;
    assert_eq!(entries[0]["action"], "channel_connect_refused");
    assert_eq!(entries[0]["details"]["reason"], "held_by_another_tenant");
    assert!(!Value::Array(entries).to_string().contains(&a));
    // A keeps the number and its token; B holds nothing.
    let settings = h
        .admin("GET", &format!("/admin/tenants/{b}"), json!({}))
        .await;
    assert_eq!(settings["channels"], json!([]));
    let settings = h
        .admin("GET", &format!("/admin/tenants/{a}"), json!({}))
        .await;
    assert_eq!(settings["channels"][0]["id"], WA_NUMBER);
    for item in h.all_items(Table::Data).await {
        for v in item.0.values() {
            assert!(
                !contains_bytes(v, b"EAAclaimant"),
                "the claimant's token is stored"
            );
        }
    }
}
