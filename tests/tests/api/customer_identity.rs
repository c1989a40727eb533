//! One customer across WhatsApp's identities (issue 16 item 1, decision 0049), on the local
//! server into the fake Bitrix24: a customer writes first by phone (payloads before the BSUID
//! rollout), then with their business-scoped user id beside the phone, then by BSUID alone
//! (a username adopted), then changes number (`user_changed_number`, a new BSUID with it) and
//! BSUID (`user_changed_user_id`), writing after each, and a message sent before the changes
//! arrives last. The portal sees one chat and one user
//! throughout, the store holds one conversation, and an erasure by the number they had at the
//! start still finds them.
//!
//! Payload shapes: WhatsApp "messages" webhook reference (`contacts[].wa_id`, `user_id`,
//! `profile.username`; `messages[].from`, `from_user_id`) and "System messages webhook
//! reference" with the changelog of 2026-08-11 (`system.wa_id`, `user_id`,
//! `previous_user_id`).

use std::collections::BTreeSet;
use std::time::Duration;

use e2e_tests::fake_bitrix::{FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{Harness, WA_NUMBER};
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::queue::platform;
use wappline::store::Table;

const DRAIN: Duration = Duration::from_secs(30);
const PHONE: &str = "16505551234";
const NEW_PHONE: &str = "16505550000";
const BSUID: &str = "US.13491208655302741918";
const BSUID_AFTER_NUMBER: &str = "US.30583650948274618402";
const BSUID_AFTER_CHANGE: &str = "US.20450793116847239503";

fn change(contacts: Option<Value>, message: Value) -> Vec<u8> {
    let mut value = json!({"messages": [message]});
    if let Some(c) = contacts {
        value["contacts"] = c;
    }
    whatsapp_events::delivery(value)
}

/// A text from the customer, named by phone, BSUID or both.
fn text(n: u64, phone: Option<&str>, user_id: Option<&str>, body: &str) -> Vec<u8> {
    let mut contact = json!({"profile": {"name": "Sheena Nelson"}});
    let mut message = json!({
        "id": format!("wamid.identity{n}"),
        "timestamp": (now() - 600 + n).to_string(),
        "type": "text",
        "text": {"body": body},
    });
    if let Some(p) = phone {
        contact["wa_id"] = json!(p);
        message["from"] = json!(p);
    }
    if let Some(u) = user_id {
        contact["user_id"] = json!(u);
        contact["profile"]["username"] = json!("@realsheenanelson");
        message["from_user_id"] = json!(u);
    }
    change(Some(json!([contact])), message)
}

/// A `system` notice; system messages carry no `contacts`.
fn system(n: u64, from: &str, system: Value) -> Vec<u8> {
    change(
        None,
        json!({
            "from": from,
            "id": format!("wamid.identity{n}"),
            "timestamp": (now() - 600 + n).to_string(),
            "type": "system",
            "system": system,
        }),
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn relay(h: &Harness, body: &[u8]) {
    let (s, text) = h.post_signed(body).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    for _ in 0..2 {
        h.drain(platform::INBOUND, DRAIN).await;
        h.drain(platform::SYNC, DRAIN).await;
    }
}

/// The conversations stored: one `META` item each.
async fn conversations(h: &Harness) -> usize {
    h.all_items(Table::Data)
        .await
        .iter()
        .filter(|i| {
            i.get_s("sk") == Some("META") && i.get_s("pk").is_some_and(|pk| pk.contains("#CONV#"))
        })
        .count()
}

#[tokio::test]
async fn phone_then_bsuid_then_new_number_stay_one_customer_and_one_chat() {
    let fake = FakeBitrix::start().await;
    let h = Harness::start(|c| {
        fake.wire_into(c);
        c.retry_base_ms = 50;
    })
    .await;
    let tenant = h.tenant_with_channels().await;
    let tokens = fake.valid_tokens();
    h.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/channels/bitrix24"),
        json!({
            "member_id": FAKE_MEMBER_ID,
            "domain": FAKE_DOMAIN,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "line_id": 7,
        }),
    )
    .await;

    let steps: Vec<(&str, Vec<u8>)> = vec![
        ("by phone", text(1, Some(PHONE), None, "Hello")),
        (
            "by BSUID beside the phone",
            text(2, Some(PHONE), Some(BSUID), "Is it in stock?"),
        ),
        (
            "by BSUID alone",
            text(3, None, Some(BSUID), "In blue, please"),
        ),
        (
            "number changed",
            system(
                4,
                PHONE,
                json!({
                    "body": format!("User Sheena Nelson changed from {PHONE} to {NEW_PHONE}"),
                    "wa_id": NEW_PHONE,
                    "user_id": BSUID_AFTER_NUMBER,
                    "previous_user_id": BSUID,
                    "type": "user_changed_number",
                }),
            ),
        ),
        (
            "from the new number",
            text(
                5,
                Some(NEW_PHONE),
                Some(BSUID_AFTER_NUMBER),
                "My new number",
            ),
        ),
        (
            "BSUID changed",
            system(
                6,
                NEW_PHONE,
                json!({
                    "body": "User Sheena Nelson changed their business-scoped user id",
                    "user_id": BSUID_AFTER_CHANGE,
                    "previous_user_id": BSUID_AFTER_NUMBER,
                    "type": "user_changed_user_id",
                }),
            ),
        ),
        (
            "by the new BSUID alone",
            text(7, None, Some(BSUID_AFTER_CHANGE), "Thanks!"),
        ),
        // Sent before the changes, delivered after them (Meta retries out of order): the
        // same chat, and the customer's current number stays.
        (
            "late, under the first BSUID",
            text(8, Some(PHONE), Some(BSUID), "Sent from the old phone"),
        ),
    ];
    for (step, body) in &steps {
        relay(&h, body).await;
        let received = fake.messages_received();
        let chats: BTreeSet<&str> = received
            .iter()
            .map(|m| m.external_chat_id.as_str())
            .collect();
        let users: BTreeSet<&str> = received
            .iter()
            .map(|m| m.external_user_id.as_str())
            .collect();
        let portal_chats: BTreeSet<u64> = received.iter().map(|m| m.chat_id).collect();
        assert_eq!(chats.len(), 1, "after {step}: chats {chats:?}");
        assert_eq!(users.len(), 1, "after {step}: users {users:?}");
        assert_eq!(portal_chats.len(), 1, "after {step}");
        assert_eq!(conversations(&h).await, 1, "after {step}: one customer");
    }
    let received = fake.messages_received();
    assert_eq!(received.len(), steps.len(), "every message once");
    // The phone Bitrix24 is given follows the number change; never a BSUID in its place.
    let phone_of = |i: usize| received[i].raw["user"]["phone"].as_str().map(str::to_owned);
    assert_eq!(phone_of(0).as_deref(), Some("+16505551234"));
    assert_eq!(phone_of(4).as_deref(), Some("+16505550000"));
    assert_eq!(phone_of(7).as_deref(), Some("+16505550000"));
    for m in &received {
        assert!(!m.raw["user"].to_string().contains("US."), "{}", m.raw);
    }

    // An erasure by the number the customer had at the start still finds them.
    let done = h
        .erase_contact(&tenant, "whatsapp", WA_NUMBER, &format!("+{PHONE}"))
        .await;
    assert_eq!(done["conversations_erased"], 1);
    assert_eq!(conversations(&h).await, 0);
    // Nothing routes any identity to the erased customer any more.
    let aliases = h
        .all_items(Table::Data)
        .await
        .iter()
        .filter(|i| i.get_s("pk").is_some_and(|pk| pk.contains("#CUST#")))
        .count();
    assert_eq!(aliases, 0);
    h.server.shutdown().await;
}
