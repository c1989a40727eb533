//! The outbound relay end to end on the local server, with loopback fakes of Bitrix24 and the
//! Graph API: the admin issues a connection code, the Bitrix24 app is installed with it
//! (connectors registered, events bound), a customer writes, the operator answers in the Open
//! Line, and the answer reaches WhatsApp exactly once; Meta's statuses reach the portal;
//! windows, rate limits, permanent errors and forged events behave as the operator needs.

use std::time::Duration;

use e2e_tests::fake_bitrix::{
    EventBody, EventMessage, FakeBitrix, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_DOMAIN,
};
use e2e_tests::fake_graph::{FakeGraph, GraphFailure};
use e2e_tests::harness::{sample, Harness, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::queue::platform;

const DRAIN: Duration = Duration::from_secs(30);
const LINE: u64 = 7;
const APP_TOKEN: &str = "831c76b092f9f135d9b6b36c3a720757";
const WA_TOKEN: &str = "EAAwhatsappTOKEN";

struct World {
    h: Harness,
    bitrix: FakeBitrix,
    graph: FakeGraph,
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
        World { h, bitrix, graph }
    }

    async fn drain(&self) {
        for _ in 0..3 {
            for q in [platform::INBOUND, platform::SYNC, platform::OUTBOUND] {
                self.h.drain(q, DRAIN).await;
            }
        }
    }

    /// A tenant with the sample channels whose Bitrix24 portal is installed through a
    /// connection code, with the application token delivered by ONAPPINSTALL.
    async fn installed_tenant(&self) -> String {
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
        assert!(install_url.starts_with(&self.h.base), "{install_url}");
        let resp = self
            .h
            .http
            .post(&install_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(EventBody::install_wizard(&self.bitrix, FAKE_DOMAIN))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
        let app_install =
            EventBody::for_portal(&self.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).app_install();
        let (s, body) = self.event(app_install).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        tenant
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

    /// The customer writes; returns our chat id for them, as the portal saw it.
    async fn customer_writes(&self, body: &[u8]) -> String {
        let (s, t) = self.h.post_signed(body).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        self.drain().await;
        self.bitrix
            .messages_received()
            .last()
            .expect("the customer's message reached the portal")
            .external_chat_id
            .clone()
    }

    fn reply(&self, chat: &str, im_message_id: u64, text: &str, token: &str) -> String {
        EventBody::for_portal(&self.bitrix, FAKE_DOMAIN, Some(token)).message_add(
            "wappline_whatsapp",
            LINE,
            &[EventMessage {
                im_chat_id: 901,
                im_message_id,
                chat_id: chat.to_owned(),
                user_id: 1,
                text: Some(text.to_owned()),
                ..EventMessage::default()
            }],
        )
    }

    /// Status deliveries the portal received for Bitrix24 message `im_message_id`.
    fn statuses_for(&self, method: &str, im_message_id: u64) -> Vec<Value> {
        self.bitrix
            .calls_to(method)
            .into_iter()
            .flat_map(|c| c.params["MESSAGES"].as_array().cloned().unwrap_or_default())
            .filter(|m| m["im"]["message_id"] == json!(im_message_id))
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        self.bitrix
            .messages_received()
            .iter()
            .filter(|m| m.external_message_id.starts_with("note."))
            .filter_map(|m| m.text.clone())
            .collect()
    }
}

/// The text sample, with the customer writing `ago` seconds ago.
fn customer_text_at(ago: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let at = wappline::clock::now_secs() - ago;
    v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(at.to_string());
    serde_json::to_vec(&v).unwrap()
}

fn status_webhook(wamid: &str, status: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-status-delivered.json")).unwrap();
    let s = &mut v["entry"][0]["changes"][0]["value"]["statuses"][0];
    s["id"] = json!(wamid);
    s["status"] = json!(status);
    s["timestamp"] = json!(wappline::clock::now_secs().to_string());
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn install_then_reply_reaches_whatsapp_once_and_statuses_come_back() {
    let w = World::start().await;
    w.installed_tenant().await;
    // The app set itself up on the portal.
    let connectors = w.bitrix.connectors(FAKE_DOMAIN);
    assert!(
        connectors.contains_key("wappline_whatsapp"),
        "{:?}",
        connectors.keys()
    );
    assert!(connectors.contains_key("wappline_instagram"));
    let bound: Vec<String> = w
        .bitrix
        .bindings(FAKE_DOMAIN)
        .into_iter()
        .map(|(event, _)| event.to_ascii_uppercase())
        .collect();
    for event in [
        "ONIMCONNECTORMESSAGEADD",
        "ONAPPUNINSTALL",
        "ONIMCONNECTORLINEDELETE",
    ] {
        assert!(
            bound.contains(&event.to_owned()),
            "{event} not bound: {bound:?}"
        );
    }

    let chat = w.customer_writes(&customer_text_at(60)).await;
    let reply = w.reply(&chat, 5001, "[b]Yes![/b] Size 42 is in stock.", APP_TOKEN);
    let (s, body) = w.event(reply.clone()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;

    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1, "exactly one send");
    assert_eq!(sent[0].path, format!("/v26.0/{WA_NUMBER}/messages"));
    assert_eq!(sent[0].bearer.as_deref(), Some(WA_TOKEN));
    assert_eq!(sent[0].body["messaging_product"], "whatsapp");
    assert_eq!(sent[0].body["type"], "text");
    assert_eq!(sent[0].body["text"]["body"], "*Yes!* Size 42 is in stock.");
    // Meta accepted it: the operator sees it delivered.
    assert_eq!(
        w.statuses_for("imconnector.send.status.delivery", 5001)
            .len(),
        1
    );

    // Bitrix24 delivers the same event again: nothing is sent twice.
    let (s, _) = w.event(reply).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1);

    // The customer reads it: Meta's statuses reach the portal, and a late "delivered" after
    // "read" changes nothing.
    let wamid = sent[0].id.clone();
    for status in ["delivered", "read", "delivered"] {
        let (s, _) = w.h.post_signed(&status_webhook(&wamid, status)).await;
        assert_eq!(s, StatusCode::OK);
        w.drain().await;
    }
    assert_eq!(
        w.statuses_for("imconnector.send.status.reading", 5001)
            .len(),
        1
    );
    assert_eq!(
        w.statuses_for("imconnector.send.status.delivery", 5001)
            .len(),
        2,
        "accepted by Meta, then delivered; the late delivered is ignored"
    );
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_reply_outside_the_window_is_not_sent_and_the_operator_is_told() {
    let w = World::start().await;
    w.installed_tenant().await;
    let chat = w.customer_writes(&customer_text_at(25 * 3600)).await;
    let (s, _) = w
        .event(w.reply(&chat, 5002, "Hello again", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert!(w.graph.sent().is_empty(), "nothing sent outside the window");
    let notes = w.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("24-hour") && n.contains("template")),
        "{notes:?}"
    );
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn rate_limits_are_retried_and_permanent_errors_reported() {
    let w = World::start().await;
    w.installed_tenant().await;
    let chat = w.customer_writes(&customer_text_at(60)).await;

    w.graph.fail_sends(1, GraphFailure::Code(130429));
    let (s, _) = w.event(w.reply(&chat, 5003, "First", APP_TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1, "delivered on the retry");
    assert_eq!(
        w.statuses_for("imconnector.send.status.delivery", 5003)
            .len(),
        1
    );

    w.graph.fail_sends(1, GraphFailure::Code(131026));
    let (s, _) = w.event(w.reply(&chat, 5004, "Second", APP_TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1, "a permanent error is not retried");
    let notes = w.notes();
    assert!(notes.iter().any(|n| n.contains("131026")), "{notes:?}");
    assert!(w
        .statuses_for("imconnector.send.status.delivery", 5004)
        .is_empty());
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn forged_events_are_refused_and_queue_nothing() {
    let w = World::start().await;
    w.installed_tenant().await;
    let chat = w.customer_writes(&customer_text_at(60)).await;
    let (s, body) = w
        .event(w.reply(&chat, 5005, "Hi", "0000000000000000000000000000dead"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, _) = w.event("not=a&bitrix=event".into()).await;
    assert!(s.is_client_error());
    w.drain().await;
    assert!(w.graph.sent().is_empty());
    w.h.server.shutdown().await;
}
