//! Bad input is handled per event, not per delivery (issue 17, item 3): a signed delivery
//! whose middle message is too large for the queue (over SQS's 256 KiB once sealed) is
//! acknowledged; its neighbours reach the operator in Bitrix24 as usual, and the large one
//! reaches them as an unsupported message (its id, sender and time kept, its content not),
//! instead of the whole delivery answering 503 on every retry for 7 days.

use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::relay_world::RelayWorld;
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use serde_json::json;
use wappline::queue::Queue;

fn text(id: &str, body: &str) -> serde_json::Value {
    json!({
        "from": "16505550177",
        "id": id,
        "timestamp": (wappline::clock::now_secs() - 30).to_string(),
        "type": "text",
        "text": {"body": body}
    })
}

#[tokio::test]
async fn an_event_too_large_for_the_queue_does_not_hold_back_its_neighbours() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let huge = "x".repeat(300 * 1024);
    let delivery = whatsapp_events::from_customer(
        "16505550177",
        "Olive Oversize",
        vec![
            text("wamid.SIZE.BEFORE", "first, a normal message"),
            text("wamid.SIZE.HUGE", &huge),
            text("wamid.SIZE.AFTER", "then another normal one"),
        ],
    );
    let (status, body) = w.h.post_signed(&delivery).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    w.drain().await;

    let received = w.bitrix.messages_received();
    let text_of = |id: &str| {
        let posted: Vec<_> = received
            .iter()
            .filter(|m| m.domain == FAKE_DOMAIN && m.external_message_id == id)
            .collect();
        assert_eq!(posted.len(), 1, "{id} posted once");
        posted[0].text.clone().unwrap_or_default()
    };
    assert_eq!(text_of("wamid.SIZE.BEFORE"), "first, a normal message");
    assert_eq!(text_of("wamid.SIZE.AFTER"), "then another normal one");
    let large = text_of("wamid.SIZE.HUGE");
    assert!(large.contains("too_large"), "{large}");
    assert!(!large.contains("xxxxxxxx"), "none of its content");
    // Nothing was dead-lettered.
    for q in [
        wappline::queue::platform::INBOUND,
        wappline::queue::platform::SYNC,
    ] {
        let dlq = wappline::queue::platform::name(q).dead_letter();
        let depth = w.h.server.queue().approximate_depth(&dlq).await.unwrap();
        assert_eq!(depth.visible + depth.in_flight, 0, "{q} dead letters");
    }
    w.h.server.shutdown().await;
}
