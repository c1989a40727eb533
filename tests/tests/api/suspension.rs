//! Suspension on the local server, with loopback fakes of Bitrix24 and the Graph API: a
//! suspended tenant's Meta webhooks are acknowledged and held (encrypted, nothing reaches its
//! portal) while another tenant's keep flowing; an operator's reply is held the same way;
//! resuming releases everything once, in arrival order.

use std::sync::Arc;

use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::harness::{contains_bytes, sample, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::hold::{Suspension, HELD_PREFIX};
use wappline::ids::TenantId;
use wappline::queue::platform;
use wappline::store::{Item, Table};
use wappline::tenant::TenantStatus;

/// The other tenant's WhatsApp number and Bitrix24 portal.
const OTHER_NUMBER: &str = "106540352242999";
const OTHER_DOMAIN: &str = "other.bitrix24.com";
const OTHER_MEMBER: &str = "b223c6b3710f85df22e9377d6c4f7553";

/// What only the suspension tests ask of the world.
trait SuspensionWorld {
    /// What the admin API's suspension routes call.
    fn suspension(&self) -> Suspension;
    /// The installed tenant of [`RelayWorld::installed_tenant`], as a tenant id.
    async fn installed_tenant_id(&self) -> TenantId;
    /// Another tenant: its own WhatsApp number and its own portal.
    async fn other_tenant(&self) -> TenantId;
    /// Message ids the portal at `domain` received, in order.
    fn received_on(&self, domain: &str) -> Vec<String>;
    /// The tenant's held items, raw.
    async fn held_items(&self, tenant: &TenantId) -> Vec<Item>;
}

impl SuspensionWorld for RelayWorld {
    fn suspension(&self) -> Suspension {
        Suspension::new(
            self.h.server.platform().tenants.clone(),
            Arc::new(self.h.server.queue().clone()),
        )
    }

    async fn installed_tenant_id(&self) -> TenantId {
        TenantId::parse(&self.installed_tenant().await).unwrap()
    }

    async fn other_tenant(&self) -> TenantId {
        let id = self.h.create_tenant("Other").await;
        self.h
            .connect_whatsapp(&id, OTHER_NUMBER, "102290129340399", "EAAotherTOKEN")
            .await;
        let tokens = self.bitrix.add_portal(OTHER_DOMAIN, OTHER_MEMBER);
        self.h
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/channels/bitrix24"),
                json!({"member_id": OTHER_MEMBER, "domain": OTHER_DOMAIN,
                       "access_token": tokens.access_token,
                       "refresh_token": tokens.refresh_token, "line_id": LINE}),
            )
            .await;
        TenantId::parse(&id).unwrap()
    }

    fn received_on(&self, domain: &str) -> Vec<String> {
        self.bitrix
            .messages_received()
            .into_iter()
            .filter(|m| m.domain == domain)
            .map(|m| m.external_message_id)
            .collect()
    }

    async fn held_items(&self, tenant: &TenantId) -> Vec<Item> {
        self.h
            .all_items(Table::Data)
            .await
            .into_iter()
            .filter(|i| {
                i.get_s("pk") == Some(tenant.partition().as_str())
                    && i.get_s("sk").is_some_and(|sk| sk.starts_with(HELD_PREFIX))
            })
            .collect()
    }
}

/// A WhatsApp delivery to `number` with one text message per (id, text), a minute ago.
fn whatsapp_texts(number: &str, messages: &[(&str, &str)]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let value = &mut v["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(number);
    let template = value["messages"][0].clone();
    let at = wappline::clock::now_secs() - 60;
    value["messages"] = Value::Array(
        messages
            .iter()
            .map(|(id, text)| {
                let mut m = template.clone();
                m["id"] = json!(id);
                m["text"]["body"] = json!(text);
                m["timestamp"] = json!(at.to_string());
                m
            })
            .collect(),
    );
    serde_json::to_vec(&v).unwrap()
}

fn wamid(n: u32) -> String {
    format!("wamid.SUSPENDED{n:04}")
}

#[tokio::test]
async fn a_suspended_tenants_webhooks_are_held_and_released_once_in_order_on_resume() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant_id().await;
    let other = w.other_tenant().await;

    let change = w
        .suspension()
        .suspend(&tenant, "invoice overdue", "platform_admin")
        .await
        .unwrap();
    assert!(change.changed);
    assert_eq!(change.profile.status, TenantStatus::Suspended);

    // Three deliveries of one message, then one delivery of two: all acknowledged.
    let ids: Vec<String> = (1..=5).map(wamid).collect();
    for (i, id) in ids.iter().take(3).enumerate() {
        let body = whatsapp_texts(WA_NUMBER, &[(id, &format!("held secret {i}"))]);
        let (s, text) = w.h.post_signed(&body).await;
        assert_eq!(s, StatusCode::OK, "{text}");
    }
    let body = whatsapp_texts(
        WA_NUMBER,
        &[(&ids[3], "held secret 3"), (&ids[4], "held secret 4")],
    );
    let (s, text) = w.h.post_signed(&body).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(w.h.depth(platform::INBOUND).await, 0, "nothing enqueued");

    // The other tenant's messages flow meanwhile.
    let (s, _) =
        w.h.post_signed(&whatsapp_texts(OTHER_NUMBER, &[("wamid.OTHER1", "hello")]))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.received_on(OTHER_DOMAIN), vec!["wamid.OTHER1"]);
    assert!(
        w.received_on(FAKE_DOMAIN).is_empty(),
        "nothing reaches the suspended tenant's portal"
    );

    // Held, encrypted: neither the text nor the message id is stored in clear.
    let held = w.held_items(&tenant).await;
    assert_eq!(held.len(), 5);
    for item in &held {
        assert_eq!(item.get_s("queue"), Some(platform::INBOUND));
        assert!(item.get_b("payload").is_some());
        for v in item.0.values() {
            assert!(!contains_bytes(v, b"held secret"), "text in clear");
            assert!(!contains_bytes(v, b"SUSPENDED"), "message id in clear");
        }
    }
    assert!(w.held_items(&other).await.is_empty());

    let resumed = w
        .suspension()
        .resume(&tenant, "platform_admin")
        .await
        .unwrap();
    assert!(resumed.changed);
    assert_eq!(resumed.released, 5);
    assert_eq!(resumed.profile.status, TenantStatus::Active);
    w.drain().await;
    assert_eq!(
        w.received_on(FAKE_DOMAIN),
        ids,
        "each once, in arrival order"
    );
    assert!(w.held_items(&tenant).await.is_empty());

    // Active again: a new message goes straight through; resuming again releases nothing.
    let (s, _) =
        w.h.post_signed(&whatsapp_texts(WA_NUMBER, &[(&wamid(6), "after")]))
            .await;
    assert_eq!(s, StatusCode::OK);
    let again = w
        .suspension()
        .resume(&tenant, "platform_admin")
        .await
        .unwrap();
    assert_eq!((again.changed, again.released), (false, 0));
    w.drain().await;
    let mut want = ids.clone();
    want.push(wamid(6));
    assert_eq!(w.received_on(FAKE_DOMAIN), want);
    assert_eq!(w.received_on(OTHER_DOMAIN), vec!["wamid.OTHER1"]);
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn an_operator_reply_of_a_suspended_tenant_is_sent_once_after_resume() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant_id().await;
    let (s, _) =
        w.h.post_signed(&whatsapp_texts(WA_NUMBER, &[(&wamid(1), "do you ship?")]))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let chat = w.bitrix.messages_received()[0].external_chat_id.clone();

    w.suspension()
        .suspend(&tenant, "invoice overdue", "platform_admin")
        .await
        .unwrap();
    let reply = w.reply(&chat, 5001, "We ship tomorrow", APP_TOKEN);
    let (s, body) = w.event(reply.clone()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(w.h.depth(platform::OUTBOUND).await, 0, "nothing queued");
    w.drain().await;
    assert!(w.graph.sent().is_empty(), "nothing sent while suspended");
    let held = w.held_items(&tenant).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].get_s("queue"), Some(platform::OUTBOUND));
    assert_eq!(w.suspension().held_count(&tenant).await.unwrap(), 1);

    let resumed = w
        .suspension()
        .resume(&tenant, "platform_admin")
        .await
        .unwrap();
    assert_eq!(resumed.released, 1);
    w.drain().await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["text"]["body"], "We ship tomorrow");

    // Bitrix24 delivers the same event again after the resume: not sent twice.
    let (s, _) = w.event(reply).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1);
    w.h.server.shutdown().await;
}
