//! Meta's agent and the Instagram Handover Protocol end to end on the local server (decision
//! 0051): while Meta's agent holds a conversation its messages still reach Bitrix24
//! (`standby`), each change of control is a note in the chat, and an operator's reply takes
//! the conversation back (`take_thread_control`) before it is sent.

use e2e_tests::fake_bitrix::{EventBody, EventMessage, FAKE_DOMAIN};
use e2e_tests::harness::{sample, IG_ACCOUNT};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, IG_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const IGSID: &str = "1254459154682919";
/// Meta's agent, as the samples name it.
const AGENT_APP: &str = "1217981644879628";

/// A sample with its Instagram times moved to now.
fn now(name: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample(name)).unwrap();
    let ms = wappline::clock::now_secs() * 1000;
    for list in ["messaging", "standby"] {
        if let Some(items) = v["entry"][0][list].as_array_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                item["timestamp"] = json!(ms + i as i64);
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

/// Control passes back to our app (`take_thread_control` by us, as Meta reports it).
fn taken_back(app: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&now("instagram-handover.json")).unwrap();
    let item = &mut v["entry"][0]["messaging"][0];
    item["timestamp"] = json!(wappline::clock::now_secs() * 1000 + 10);
    item.as_object_mut().unwrap().remove("pass_thread_control");
    item["take_thread_control"] =
        json!({"previous_owner_app_id": AGENT_APP, "new_owner_app_id": app, "metadata": "back"});
    serde_json::to_vec(&v).unwrap()
}

fn operator_reply(w: &RelayWorld, chat: &str, id: u64, text: &str) -> String {
    EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_instagram",
        LINE,
        &[EventMessage {
            im_chat_id: 902,
            im_message_id: id,
            chat_id: chat.to_owned(),
            user_id: 1,
            text: Some(text.to_owned()),
            ..EventMessage::default()
        }],
    )
}

fn texts(w: &RelayWorld) -> Vec<String> {
    w.bitrix
        .messages_received()
        .iter()
        .filter_map(|m| m.text.clone())
        .collect()
}

#[tokio::test]
async fn the_agents_conversation_reaches_bitrix24_and_a_reply_takes_it_back() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.installed_tenant().await;
    let chat = w.customer_writes(&now("instagram-text.json")).await;

    // The tenant turned on Meta's agent: control passes to it, then the customer's message
    // and the agent's reply arrive on standby.
    for name in ["instagram-handover.json", "instagram-standby.json"] {
        let (s, body) = w.h.post_signed(&now(name)).await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        w.drain().await;
    }
    let seen = texts(&w);
    assert!(
        seen.iter()
            .any(|t| t.contains("Meta's AI agent (or another app) now answers")),
        "a note says who answers: {seen:?}"
    );
    assert!(
        seen.iter().any(|t| t == "Do you deliver on Sundays?"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|t| t.contains("Yes, we deliver every day from 9 to 21.")),
        "the agent's reply is in the chat: {seen:?}"
    );
    // The same handover again adds no second note.
    let notes = |w: &RelayWorld| {
        texts(w)
            .iter()
            .filter(|t| t.contains("now answers this conversation"))
            .count()
    };
    let (s, _) = w.h.post_signed(&now("instagram-handover.json")).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(notes(&w), 1);

    // The operator answers: control is taken back first, then the reply is sent.
    let (s, body) = w
        .event(operator_reply(&w, &chat, 7001, "Yes, also on Sundays"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    let calls = w.graph.calls();
    let take = calls
        .iter()
        .position(|c| c.method == "POST" && c.path.ends_with("/me/take_thread_control"))
        .expect("control taken back");
    let body: Value = serde_json::from_str(&calls[take].body).unwrap();
    assert_eq!(body["recipient"]["id"], IGSID);
    assert_eq!(calls[take].bearer.as_deref(), Some(IG_TOKEN));
    let send = calls
        .iter()
        .position(|c| c.method == "POST" && c.path.ends_with("/me/messages"))
        .expect("the reply was sent");
    assert!(take < send, "taken back before the send");

    // A second reply: ours already, no second take.
    let (s, _) = w.event(operator_reply(&w, &chat, 7002, "See you")).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let takes = w
        .graph
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/take_thread_control"))
        .count();
    assert_eq!(takes, 1);

    // Meta reports control back with our app: the chat says the operators answer again.
    let app = e2e_tests::fake_graph::FAKE_APP_ID;
    let (s, _) = w.h.post_signed(&taken_back(app)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    // Control was already ours (recorded at the take): no second note.
    assert!(!texts(&w)
        .iter()
        .any(|t| t.contains("The operators answer this conversation again")));
}

/// The `HANDOVER#` records of the tenant's partition (who holds which conversation).
async fn handover_records(w: &RelayWorld) -> usize {
    w.h.all_items(wappline::store::Table::Data)
        .await
        .iter()
        .filter(|i| {
            i.get_s(wappline::store::SK)
                .is_some_and(|sk| sk.starts_with("HANDOVER#"))
        })
        .count()
}

/// A contact's erasure removes the record of who holds their conversation with it (decision
/// 0062; it names the conversation, though it holds app ids only).
#[tokio::test]
async fn a_contact_erasure_removes_who_holds_the_conversation() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    let tenant = w.installed_tenant().await;
    w.customer_writes(&now("instagram-text.json")).await;
    let (s, body) = w.h.post_signed(&now("instagram-handover.json")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert_eq!(handover_records(&w).await, 1);

    let done =
        w.h.erase_contact(&tenant, "instagram", IG_ACCOUNT, IGSID)
            .await;
    assert_eq!(done["conversations_erased"], 1);
    assert_eq!(handover_records(&w).await, 0);
}

/// `instagram-handover.json` (control passed to Meta's agent) stamped at `ms`.
fn passed_at(ms: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("instagram-handover.json")).unwrap();
    v["entry"][0]["messaging"][0]["timestamp"] = json!(ms);
    serde_json::to_vec(&v).unwrap()
}

/// Meta does not promise the order of its webhooks: a change of control stamped before the
/// one recorded, delivered after it, changes nothing. The operators, who took the
/// conversation back, are not told the agent answers again, and their next reply needs no
/// second take.
#[tokio::test]
async fn an_older_change_of_control_delivered_late_changes_nothing() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.installed_tenant().await;
    let chat = w.customer_writes(&now("instagram-text.json")).await;
    let ms = wappline::clock::now_secs() * 1000;
    let agent_notes = |w: &RelayWorld| {
        texts(w)
            .iter()
            .filter(|t| t.contains("Meta's AI agent (or another app) now answers"))
            .count()
    };
    // Passed to the agent two minutes ago, and taken back by the operators' app now.
    for body in [
        passed_at(ms - 120_000),
        taken_back(e2e_tests::fake_graph::FAKE_APP_ID),
    ] {
        let (s, answer) = w.h.post_signed(&body).await;
        assert_eq!(s, StatusCode::OK, "{answer}");
        w.drain().await;
    }
    assert_eq!(agent_notes(&w), 1);
    assert!(texts(&w)
        .iter()
        .any(|t| t.contains("The operators answer this conversation again")));

    // A pass of a minute ago arrives only now.
    let (s, answer) = w.h.post_signed(&passed_at(ms - 60_000)).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
    assert_eq!(agent_notes(&w), 1, "no note that the agent answers again");

    let (s, answer) = w
        .event(operator_reply(
            &w,
            &chat,
            7101,
            "Here is your tracking link",
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
    let calls = w.graph.calls();
    assert!(
        calls.iter().any(|c| c.path.ends_with("/me/messages")),
        "the reply was sent"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.path.ends_with("/take_thread_control")),
        "the conversation is the operators': nothing to take back"
    );
}
