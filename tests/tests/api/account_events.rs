//! WhatsApp account and number events end to end on the local server (decision 0051): Meta
//! restricts the tenant's WABA, the channel shows it, the owners get an email, an operator's
//! reply stops with the reason instead of reaching Meta, and once Meta lifts the restriction
//! replies go out again. Quality and name events reach only the number they name.

use std::time::Duration;

use e2e_tests::harness::{sample, Harness, WA_NUMBER};
use e2e_tests::outbox::mails_to;
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The restriction sample, in force until 2099.
fn restriction() -> Vec<u8> {
    let body = String::from_utf8(sample("whatsapp-account-restriction.json")).unwrap();
    body.replace("2026-01-31T10:00:00+0000", "2099-01-31T10:00:00+0000")
        .into_bytes()
}

/// Meta lifts the restriction: `ACCOUNT_RESTRICTION` with no restrictions left.
fn lifted() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&restriction()).unwrap();
    v["entry"][0]["time"] = json!(1767265200);
    v["entry"][0]["changes"][0]["value"]["restriction_info"] = json!([]);
    serde_json::to_vec(&v).unwrap()
}

fn customer_text_now() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let at = wappline::clock::now_secs() - 60;
    v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(at.to_string());
    serde_json::to_vec(&v).unwrap()
}

/// The tenant's channel `id` as the admin API shows it.
async fn channel(h: &Harness, tenant: &str, id: &str) -> Value {
    let settings = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    settings["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no channel {id}: {settings}"))
}

async fn invite_admin(h: &Harness, tenant: &str, email: &str) {
    let inv = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/invitations"),
            json!({"email": email, "role": "admin"}),
        )
        .await;
    let resp = h
        .http
        .post(format!("{}/auth/invitations/accept", h.base))
        .json(&json!({"token": inv["token"], "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

/// The outbox mails to `to` that contain `needle`.
async fn mails(h: &Harness, to: &str, needle: &str) -> usize {
    mails_to(h.server.data_dir(), to)
        .iter()
        .filter(|m| m.contains(needle))
        .count()
}

async fn wait_mails(h: &Harness, to: &str, needle: &str, n: usize) {
    for _ in 0..200 {
        if mails(h, to, needle).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {n} mail(s) to {to} with {needle:?}");
}

#[tokio::test]
async fn a_restriction_shows_alerts_stops_replies_and_lifting_resumes_them() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    invite_admin(&w.h, &tenant, "admin@acme.test").await;
    let chat = w.customer_writes(&customer_text_now()).await;

    let (s, body) = w.h.post_signed(&restriction()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    let ch = channel(&w.h, &tenant, WA_NUMBER).await;
    assert_eq!(
        ch["details"]["meta_restriction"],
        "RESTRICTED_BIZ_INITIATED_MESSAGING,RESTRICTED_CUSTOMER_INITIATED_MESSAGING",
        "{ch}"
    );
    wait_mails(&w.h, "admin@acme.test", "messaging customers until 2099", 1).await;

    // The operator answers: stopped with the reason, nothing reaches Meta.
    let (s, body) = w
        .event(w.reply(&chat, 6001, "We are open today", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert!(w.graph.sent().is_empty(), "{:?}", w.graph.sent());
    let failure = w.notes().join("\n");
    assert!(
        failure.contains("Meta restricted this WhatsApp number from messaging customers"),
        "the operator is told why: {failure}"
    );

    // Meta lifts it: the channel is clear, the owners hear, and the next reply goes out.
    let (s, _) = w.h.post_signed(&lifted()).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let ch = channel(&w.h, &tenant, WA_NUMBER).await;
    assert!(ch["details"].get("meta_restriction").is_none(), "{ch}");
    wait_mails(&w.h, "admin@acme.test", "The restriction was lifted", 1).await;
    let (s, _) = w
        .event(w.reply(&chat, 6002, "We are open today", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1, "sends resume");

    // The same delivery again changes nothing (deduplicated by its content and time).
    let (s, _) = w.h.post_signed(&lifted()).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(
        mails(&w.h, "admin@acme.test", "The restriction was lifted").await,
        1
    );
}

#[tokio::test]
async fn a_ban_stops_every_send_until_meta_reinstates_the_account() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let chat = w.customer_writes(&customer_text_now()).await;
    let (s, _) =
        w.h.post_signed(&sample("whatsapp-account-disabled.json"))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(
        channel(&w.h, &tenant, WA_NUMBER).await["details"]["meta_restriction"],
        "banned"
    );
    let (s, _) = w.event(w.reply(&chat, 6101, "Hello", APP_TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert!(w.graph.sent().is_empty());

    let (s, _) =
        w.h.post_signed(&sample("whatsapp-account-reinstated.json"))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert!(channel(&w.h, &tenant, WA_NUMBER).await["details"]
        .get("meta_restriction")
        .is_none());
    let (s, _) = w.event(w.reply(&chat, 6102, "Hello", APP_TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1);
}

#[tokio::test]
async fn number_events_reach_the_number_they_name_and_waba_events_every_number() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    // A second number of the same WABA, connected with its display number.
    let second = "113355779024681";
    h.graph
        .add_whatsapp_business("EAAsecondTOKEN", "102290129340398", second);
    h.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/channels/whatsapp"),
        json!({
            "phone_number_id": second, "waba_id": "102290129340398",
            "access_token": "EAAsecondTOKEN", "display_phone_number": "+1 555-078-3881"
        }),
    )
    .await;
    for name in [
        "whatsapp-phone-number-quality.json",
        "whatsapp-phone-number-name.json",
        "whatsapp-business-capability.json",
    ] {
        let (s, body) = h.post_signed(&sample(name)).await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
    }
    h.drain(wappline::queue::platform::INBOUND, Duration::from_secs(30))
        .await;
    let named = channel(&h, &tenant, second).await;
    assert_eq!(named["details"]["meta_quality"], "FLAGGED", "{named}");
    assert_eq!(named["details"]["meta_name_decision"], "APPROVED");
    assert_eq!(named["details"]["meta_messaging_limit"], "TIER_10K");
    // The first number was not named by the quality and name events; the WABA-wide limit
    // reaches it too.
    let other = channel(&h, &tenant, WA_NUMBER).await;
    assert!(other["details"].get("meta_quality").is_none(), "{other}");
    assert!(other["details"].get("meta_name_decision").is_none());
    assert_eq!(other["details"]["meta_messaging_limit"], "TIER_10K");
    // Disconnecting a number takes it out of the WABA's routing.
    h.admin(
        "DELETE",
        &format!("/admin/tenants/{tenant}/channels/whatsapp/{second}"),
        json!(null),
    )
    .await;
    let index: Vec<_> = h
        .all_items(wappline::store::Table::Routes)
        .await
        .into_iter()
        .filter(|i| i.get_s(wappline::store::PK) == Some("WABA#102290129340398"))
        .map(|i| i.get_s(wappline::store::SK).unwrap().to_owned())
        .collect();
    assert_eq!(index, [WA_NUMBER]);
}
