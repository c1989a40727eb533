//! Reply context both ways (issue 16 item 11), on the local server with the fakes of
//! Bitrix24 and the Graph API:
//! - an operator who quotes a customer's message (Bitrix24's quote block at the start of the
//!   reply) answers it: WhatsApp gets `context.message_id`, Instagram `reply_to.mid`, and the
//!   customer gets the reply without the block;
//! - a customer who answers a message (WhatsApp `context.id`, Instagram `reply_to.mid`) shows
//!   in the Open Line under Bitrix24's quote of that message, whether the customer's or the
//!   operator's;
//! - a quote or a reply that names a message we do not have is relayed as it is.

use e2e_tests::fake_bitrix::{EventBody, EventMessage, FAKE_DOMAIN};
use e2e_tests::harness::sample;
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::bitrix::quote::{quote_block, QUOTE_LINE};

/// The text sample's wamid and text.
const CUSTOMER_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5ODJEOUUzRUI5OTZGNTU5RTYzMwA=";
const CUSTOMER_TEXT: &str = "Hi! Do you have the blue sneakers in size 42?";
const IG_MID: &str = "aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODM2ODM5MTU3MDE0NDkyNTgwNDI1Mjc3MzAxNTI4Mw";
const IG_TEXT: &str = "Hi! Is the linen shirt still available?";

/// `name`, sent `ago` seconds ago, with `edit` applied to its first message.
fn sample_now(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample(name)).unwrap();
    let now = wappline::clock::now_secs();
    if v["object"] == "instagram" {
        v["entry"][0]["messaging"][0]["timestamp"] = json!(now * 1000 - 60_000);
        edit(&mut v["entry"][0]["messaging"][0]["message"]);
    } else {
        let m = &mut v["entry"][0]["changes"][0]["value"]["messages"][0];
        m["timestamp"] = json!((now - 60).to_string());
        edit(m);
    }
    serde_json::to_vec(&v).unwrap()
}

fn quoting(quoted: &str, reply: &str) -> String {
    quote_block("Sheena Nelson", "04.12.2026 10:15:00", quoted, reply)
}

async fn operator_says(w: &RelayWorld, connector: &str, chat: &str, im: u64, text: &str) {
    let form = EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        connector,
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: im,
            chat_id: chat.to_owned(),
            user_id: 1,
            text: Some(text.to_owned()),
            ..EventMessage::default()
        }],
    );
    let (s, body) = w.event(form).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
}

#[tokio::test]
async fn an_operator_quote_becomes_the_whatsapp_reply_context() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let chat = w
        .customer_writes(&sample_now("whatsapp-text.json", |_| {}))
        .await;

    // Quoting the customer's message.
    let text = quoting(CUSTOMER_TEXT, "Yes, size 42 is in stock.");
    operator_says(&w, "wappline_whatsapp", &chat, 5001, &text).await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body["context"],
        json!({ "message_id": CUSTOMER_WAMID })
    );
    assert_eq!(sent[0].body["text"]["body"], "Yes, size 42 is in stock.");

    // Quoting the operator's own earlier answer: the wamid Meta gave it.
    let first_wamid = sent[0].id.clone();
    let text = quoting("Yes, size 42 is in stock.", "And in red too.");
    operator_says(&w, "wappline_whatsapp", &chat, 5002, &text).await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].body["context"],
        json!({ "message_id": first_wamid })
    );
    assert_eq!(sent[1].body["text"]["body"], "And in red too.");

    // Quoting something this conversation does not hold: no context, the quote stays.
    let text = quoting("Something said elsewhere", "Noted.");
    operator_says(&w, "wappline_whatsapp", &chat, 5003, &text).await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent[2].body.get("context").is_none(), "{}", sent[2].body);
    let body = sent[2].body["text"]["body"].as_str().unwrap();
    assert!(body.contains("> Something said elsewhere"), "{body}");
    assert!(body.ends_with("Noted."), "{body}");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn an_operator_quote_becomes_the_instagram_reply_to() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    w.graph.add_instagram_token(
        e2e_tests::relay_world::IG_TOKEN,
        e2e_tests::harness::IG_ACCOUNT,
        None,
    );
    let chat = w
        .customer_writes(&sample_now("instagram-text.json", |_| {}))
        .await;
    let text = quoting(IG_TEXT, "It is, in every size.");
    operator_says(&w, "wappline_instagram", &chat, 6001, &text).await;
    let sent: Vec<_> = w
        .graph
        .sent()
        .into_iter()
        .filter(|s| s.product == "instagram" && s.body.get("message").is_some())
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].body["reply_to"], json!({ "mid": IG_MID }));
    assert_eq!(sent[0].body["message"]["text"], "It is, in every size.");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_customer_reply_shows_under_a_quote_in_bitrix24() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let chat = w
        .customer_writes(&sample_now("whatsapp-text.json", |_| {}))
        .await;

    // The customer answers their own message.
    w.customer_writes(&sample_now("whatsapp-text-reply.json", |m| {
        m["context"]["id"] = json!(CUSTOMER_WAMID);
    }))
    .await;
    let got = w.bitrix.messages_received().last().unwrap().text.clone();
    let got = got.unwrap_or_default();
    assert!(got.starts_with(QUOTE_LINE), "{got}");
    assert!(got.contains("Sheena Nelson ["), "{got}");
    assert!(got.contains(CUSTOMER_TEXT), "{got}");
    assert!(
        got.ends_with(&format!("{QUOTE_LINE}\nYes, that one please")),
        "{got}"
    );

    // The customer answers the operator's message, by the wamid Meta gave it.
    operator_says(&w, "wappline_whatsapp", &chat, 5001, "We have it in red.").await;
    let operator_wamid = w.graph.sent()[0].id.clone();
    w.customer_writes(&sample_now("whatsapp-text-reply.json", |m| {
        m["id"] = json!("wamid.reply.to.operator");
        m["context"]["id"] = json!(operator_wamid);
        m["text"]["body"] = json!("Great, I'll take it");
    }))
    .await;
    let got = w
        .bitrix
        .messages_received()
        .into_iter()
        .find(|m| m.external_message_id == "wamid.reply.to.operator")
        .and_then(|m| m.text)
        .unwrap();
    assert!(got.contains("Operator ["), "{got}");
    assert!(got.contains("We have it in red."), "{got}");
    assert!(got.ends_with("Great, I'll take it"), "{got}");

    // A reply to a message we never had: relayed as it is.
    w.customer_writes(&sample_now("whatsapp-text-reply.json", |m| {
        m["id"] = json!("wamid.reply.to.unknown");
    }))
    .await;
    let got = w
        .bitrix
        .messages_received()
        .into_iter()
        .find(|m| m.external_message_id == "wamid.reply.to.unknown")
        .and_then(|m| m.text)
        .unwrap();
    assert_eq!(got, "Yes, that one please");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn an_instagram_reply_shows_under_a_quote_in_bitrix24() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    w.customer_writes(&sample_now("instagram-text.json", |_| {}))
        .await;
    w.customer_writes(&sample_now("instagram-reply.json", |m| {
        m["reply_to"]["mid"] = json!(IG_MID);
    }))
    .await;
    let got = w
        .bitrix
        .messages_received()
        .last()
        .unwrap()
        .text
        .clone()
        .unwrap();
    assert!(got.starts_with(QUOTE_LINE), "{got}");
    assert!(got.contains(IG_TEXT), "{got}");
    assert!(got.ends_with("Yes, size M please"), "{got}");
    w.h.server.shutdown().await;
}

/// The fake Graph API holds the Send API's reply shape (Graph API reference, "Page
/// Messages": `reply_to` is an object beside `recipient`): a `reply_to` put inside `message`,
/// or one that is not `{mid}`, is refused, so the test above would fail if our sender moved
/// it.
#[tokio::test]
async fn the_fake_graph_refuses_any_other_reply_shape() {
    let graph = e2e_tests::fake_graph::FakeGraph::start().await;
    graph.add_instagram_token("ig-token", "17841405822304914", None);
    let http = reqwest::Client::new();
    let url = format!("{}/v25.0/me/messages", graph.base_url());
    let send = |body: Value| http.post(&url).bearer_auth("ig-token").json(&body).send();
    let good = json!({"recipient": {"id": "1254459154682919"}, "messaging_type": "RESPONSE",
        "message": {"text": "Yes"}, "reply_to": {"mid": IG_MID}});
    assert_eq!(send(good).await.unwrap().status(), StatusCode::OK);
    for bad in [
        json!({"recipient": {"id": "1254459154682919"},
               "message": {"text": "Yes", "reply_to": {"mid": IG_MID}}}),
        json!({"recipient": {"id": "1254459154682919"}, "message": {"text": "Yes"},
               "reply_to": IG_MID}),
        json!({"recipient": {"id": "1254459154682919"}, "message": {"text": "Yes"},
               "reply_to": {"message_id": IG_MID}}),
    ] {
        let answer = send(bad.clone()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(graph.sent().len(), 1);
}
