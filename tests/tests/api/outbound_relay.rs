//! The outbound relay end to end on the local server, with loopback fakes of Bitrix24 and the
//! Graph API: the admin issues a connection code, the Bitrix24 app is installed with it
//! (connectors registered, events bound), a customer writes, the operator answers in the Open
//! Line, and the answer reaches WhatsApp exactly once; Meta's statuses reach the portal;
//! windows, rate limits, permanent errors and forged events behave as the operator needs.

use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::fake_graph::GraphFailure;
use e2e_tests::harness::{sample, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, WA_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// What only these tests ask of the world.
trait Statuses {
    /// Status deliveries the portal received for Bitrix24 message `im_message_id`.
    fn statuses_for(&self, method: &str, im_message_id: u64) -> Vec<Value>;
}

impl Statuses for RelayWorld {
    fn statuses_for(&self, method: &str, im_message_id: u64) -> Vec<Value> {
        self.bitrix
            .calls_to(method)
            .into_iter()
            .flat_map(|c| c.params["MESSAGES"].as_array().cloned().unwrap_or_default())
            // A batch command's parameters arrive form-encoded: numbers as strings.
            .filter(|m| {
                let id = &m["im"]["message_id"];
                *id == json!(im_message_id) || *id == json!(im_message_id.to_string())
            })
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
    let w = RelayWorld::start().await;
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
    let w = RelayWorld::start().await;
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
    let w = RelayWorld::start().await;
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
    let w = RelayWorld::start().await;
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
