//! Suspension on the local server, with loopback fakes of Bitrix24 and the Graph API: a
//! suspended tenant's Meta webhooks are acknowledged and held (encrypted, nothing reaches its
//! portal) while another tenant's keep flowing; an operator's reply is held the same way;
//! resuming releases everything once, in arrival order.

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::fake_bitrix::{
    EventBody, EventMessage, FakeBitrix, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_DOMAIN,
};
use e2e_tests::fake_graph::FakeGraph;
use e2e_tests::harness::{contains_bytes, sample, Harness, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::hold::{Suspension, HELD_PREFIX};
use wappline::ids::TenantId;
use wappline::queue::platform;
use wappline::store::{Item, Table};
use wappline::tenant::TenantStatus;

const DRAIN: Duration = Duration::from_secs(30);
const LINE: u64 = 7;
const APP_TOKEN: &str = "831c76b092f9f135d9b6b36c3a720757";
const WA_TOKEN: &str = "EAAwhatsappTOKEN";
/// The other tenant's WhatsApp number and Bitrix24 portal.
const OTHER_NUMBER: &str = "106540352242999";
const OTHER_DOMAIN: &str = "other.bitrix24.com";
const OTHER_MEMBER: &str = "b223c6b3710f85df22e9377d6c4f7553";

struct World {
    h: Harness,
    bitrix: FakeBitrix,
    graph: FakeGraph,
    suspension: Suspension,
}

impl World {
    async fn start() -> World {
        let bitrix = FakeBitrix::start().await;
        let graph = FakeGraph::start().await;
        let (base, oauth, graph_url) = (bitrix.base_url(), bitrix.oauth_url(), graph.base_url());
        let h = Harness::start(move |c| {
            c.bitrix_client_id = Some(FAKE_CLIENT_ID.into());
            c.bitrix_client_secret = Some(FAKE_CLIENT_SECRET.into());
            c.bitrix_oauth_url = Some(oauth);
            c.bitrix_portal_base_url = Some(base);
            c.graph_api_base_url = graph_url;
            c.retry_base_ms = 30;
        })
        .await;
        graph.add_token(WA_TOKEN, WA_NUMBER);
        // What the admin API's suspension routes call.
        let suspension = Suspension::new(
            h.server.platform().tenants.clone(),
            Arc::new(h.server.queue().clone()),
        );
        World {
            h,
            bitrix,
            graph,
            suspension,
        }
    }

    async fn drain(&self) {
        for _ in 0..3 {
            for q in [platform::INBOUND, platform::SYNC, platform::OUTBOUND] {
                self.h.drain(q, DRAIN).await;
            }
        }
    }

    /// A tenant with the sample channels whose portal is installed through a connection
    /// code, with the application token delivered by ONAPPINSTALL.
    async fn installed_tenant(&self) -> TenantId {
        let tenant = self.h.tenant_with_channels().await;
        let code = self
            .h
            .admin(
                "POST",
                &format!("/admin/tenants/{tenant}/bitrix24/connection-codes"),
                json!({"line_id": LINE}),
            )
            .await;
        let install_url = code["install_url"].as_str().unwrap().to_owned();
        let resp = self
            .h
            .http
            .post(&install_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(EventBody::install_wizard(&self.bitrix, FAKE_DOMAIN))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let app_install =
            EventBody::for_portal(&self.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).app_install();
        let (s, body) = self.event(app_install).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        TenantId::parse(&tenant).unwrap()
    }

    /// Another tenant: its own WhatsApp number and its own portal.
    async fn other_tenant(&self) -> TenantId {
        let t = self
            .h
            .admin("POST", "/admin/tenants", json!({"name": "Other"}))
            .await;
        let id = t["id"].as_str().unwrap().to_owned();
        self.h
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/channels/whatsapp"),
                json!({"phone_number_id": OTHER_NUMBER, "waba_id": "102290129340399",
                       "access_token": "EAAotherTOKEN"}),
            )
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

    async fn event(&self, form: String) -> (StatusCode, String) {
        let resp = self
            .h
            .http
            .post(format!("{}/bitrix/events", self.h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// Message ids the portal at `domain` received, in order.
    fn received_on(&self, domain: &str) -> Vec<String> {
        self.bitrix
            .messages_received()
            .into_iter()
            .filter(|m| m.domain == domain)
            .map(|m| m.external_message_id)
            .collect()
    }

    /// The tenant's held items, raw.
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
    let w = World::start().await;
    let tenant = w.installed_tenant().await;
    let other = w.other_tenant().await;

    let change = w
        .suspension
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
        .suspension
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
        .suspension
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
    let w = World::start().await;
    let tenant = w.installed_tenant().await;
    let (s, _) =
        w.h.post_signed(&whatsapp_texts(WA_NUMBER, &[(&wamid(1), "do you ship?")]))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let chat = w.bitrix.messages_received()[0].external_chat_id.clone();

    w.suspension
        .suspend(&tenant, "invoice overdue", "platform_admin")
        .await
        .unwrap();
    let reply = EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: 5001,
            chat_id: chat,
            user_id: 1,
            text: Some("We ship tomorrow".into()),
            ..EventMessage::default()
        }],
    );
    let (s, body) = w.event(reply.clone()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(w.h.depth(platform::OUTBOUND).await, 0, "nothing queued");
    w.drain().await;
    assert!(w.graph.sent().is_empty(), "nothing sent while suspended");
    let held = w.held_items(&tenant).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].get_s("queue"), Some(platform::OUTBOUND));
    assert_eq!(w.suspension.held_count(&tenant).await.unwrap(), 1);

    let resumed = w
        .suspension
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
