//! Meta's Business Agent on WhatsApp end to end on the local server (decision 0065), with
//! loopback fakes of Bitrix24 and the Graph API: while the agent holds a conversation the
//! customer's messages (`standby`) and the agent's replies (standby echoes) reach the Open
//! Line, a note tells the operators who answers, control changes
//! (`messaging_handovers`) are notes too, and an operator's reply is an ordinary send that
//! takes the conversation back, as Meta documents it (no thread control call).

use e2e_tests::fake_bitrix::{manager_of, FakeBitrix};
use e2e_tests::harness::{sample, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::store::Table;

const ECHO_AUTHOR: u64 = 42;
const AGENT_NOTE: &str = "Meta's AI agent (or another app) now answers this conversation";
const OPERATORS_NOTE: &str = "The operators answer this conversation again";

/// `name` with every time in it (messages, echoes, handovers) moved to `ago` seconds before
/// now: inside the customer service window, so an operator's reply may be sent.
fn recent(name: &str, ago: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample(name)).unwrap();
    let at = (wappline::clock::now_secs() - ago).to_string();
    for change in v["entry"][0]["changes"].as_array_mut().unwrap() {
        let value = &mut change["value"];
        if value.get("timestamp").is_some() {
            value["timestamp"] = json!(at);
        }
        for list in ["messages", "message_echoes", "statuses"] {
            if let Some(items) = value["standby"][list].as_array_mut() {
                for m in items {
                    m["timestamp"] = json!(at);
                }
            }
            if let Some(items) = value[list].as_array_mut() {
                for m in items {
                    m["timestamp"] = json!(at);
                }
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

/// The same sample as another message (a new wamid), for a later customer message.
fn another(body: &[u8], suffix: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    let m = &mut v["entry"][0]["changes"][0]["value"]["standby"]["messages"][0];
    let id = format!(
        "{}{suffix}",
        m["id"].as_str().unwrap().trim_end_matches('=')
    );
    m["id"] = json!(id);
    serde_json::to_vec(&v).unwrap()
}

fn notes(fake: &FakeBitrix, chat: &str, note: &str) -> usize {
    fake.messages_received()
        .iter()
        .filter(|m| m.external_chat_id == chat)
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains(note)))
        .count()
}

/// Whether the tenant's record of the conversation says the operators hold it.
async fn ours(w: &RelayWorld) -> Option<bool> {
    let items = w.h.all_items(Table::Data).await;
    let records: Vec<_> = items
        .iter()
        .filter(|i| {
            i.get_s(wappline::store::SK)
                .is_some_and(|sk| sk.starts_with("HANDOVER#"))
        })
        .collect();
    assert!(records.len() <= 1, "one conversation, one record");
    records.first().and_then(|i| i.get_bool("ours"))
}

async fn post(w: &RelayWorld, body: &[u8]) {
    let (s, t) = w.h.post_signed(body).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    w.drain().await;
}

#[tokio::test]
async fn the_agents_conversation_reaches_bitrix24_and_an_operator_reply_takes_it_back() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    w.h.admin(
        "PUT",
        &format!("/admin/tenants/{tenant}/channels/whatsapp/{WA_NUMBER}/coexistence"),
        json!({"history_import": false, "echo_author_id": ECHO_AUTHOR}),
    )
    .await;
    let chat = w.customer_writes(&recent("whatsapp-text.json", 300)).await;

    // The tenant turned on Meta's agent: the customer's next message comes on standby.
    let standby = recent("whatsapp-standby-message.json", 120);
    post(&w, &standby).await;
    let received = w.bitrix.messages_received();
    let customer = received
        .iter()
        .position(|m| m.text.as_deref() == Some("Is my order shipped yet?"))
        .expect("the customer's standby message reached the portal");
    assert_eq!(received[customer].external_chat_id, chat, "same chat");
    assert_eq!(manager_of(&received[customer].raw), None, "customer's side");
    assert_eq!(notes(&w.bitrix, &chat, AGENT_NOTE), 1, "{received:?}");
    assert_eq!(ours(&w).await, Some(false));

    // The agent's reply: on the operator's side, as the echo author, never sent again.
    post(&w, &recent("whatsapp-standby-echo.json", 100)).await;
    let received = w.bitrix.messages_received();
    let echo = received
        .iter()
        .find(|m| {
            m.text
                .as_deref()
                .is_some_and(|t| t.contains("Your order #12345 has shipped."))
        })
        .expect("the agent's reply reached the portal");
    assert_eq!(echo.external_chat_id, chat);
    assert_eq!(manager_of(&echo.raw), Some(ECHO_AUTHOR), "{}", echo.raw);
    // Said to be the agent's, not the business's own from its app.
    let text = echo.text.as_deref().unwrap_or_default();
    assert!(
        text.starts_with("[sent by Meta's Business Agent] ")
            && text.ends_with("\nHello! Your order #12345 has shipped."),
        "{}",
        echo.raw
    );
    assert!(w.graph.sent().is_empty(), "{:?}", w.graph.sent());

    // Meta redelivers the standby message: one post, one note.
    post(&w, &standby).await;
    let posts = w
        .bitrix
        .messages_received()
        .iter()
        .filter(|m| m.text.as_deref() == Some("Is my order shipped yet?"))
        .count();
    assert_eq!(posts, 1);
    assert_eq!(notes(&w.bitrix, &chat, AGENT_NOTE), 1);

    // An operator answers: an ordinary send (the service message takes the conversation
    // back), with no thread control call, and the conversation is the operators' again.
    let (s, body) = w
        .event(w.reply(&chat, 7001, "A colleague here: it left today", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].body["text"]["body"],
        "A colleague here: it left today"
    );
    assert!(
        !w.graph
            .calls()
            .iter()
            .any(|c| c.path.contains("thread_control")),
        "{:?}",
        w.graph.calls()
    );
    assert_eq!(ours(&w).await, Some(true));

    // Later Meta's routing gives the conversation to the agent again: a new note. (Stamped
    // now: one stamped before the reply took the conversation back is older than that, and
    // changes nothing.)
    post(
        &w,
        &another(&recent("whatsapp-standby-message.json", 0), "B"),
    )
    .await;
    assert_eq!(notes(&w.bitrix, &chat, AGENT_NOTE), 2);
    assert_eq!(ours(&w).await, Some(false));
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn control_changes_are_notes_in_the_customers_chat_once_each() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let chat = w.customer_writes(&recent("whatsapp-text.json", 300)).await;

    // The escalation partner took a conversation we held (`control_taken`, to us).
    post(&w, &recent("whatsapp-messaging-handovers-taken.json", 120)).await;
    assert_eq!(notes(&w.bitrix, &chat, AGENT_NOTE), 1);
    assert_eq!(ours(&w).await, Some(false));

    // The agent passes the conversation to us (`control_passed`), twice as Meta redelivers.
    let passed = recent("whatsapp-messaging-handovers-passed.json", 60);
    post(&w, &passed).await;
    post(&w, &passed).await;
    assert_eq!(notes(&w.bitrix, &chat, OPERATORS_NOTE), 1);
    assert_eq!(ours(&w).await, Some(true));
    // Only notes: nothing was sent to the customer.
    assert!(w.graph.sent().is_empty(), "{:?}", w.graph.sent());
    w.h.server.shutdown().await;
}
