//! WhatsApp Coexistence end to end on the local server (decision 0052), with loopback fakes
//! of Bitrix24 and the Graph API: messages the business sends from the WhatsApp Business app
//! reach the Open Line once, on the operator's side, and never go back out; the chat history
//! is imported only when the tenant opts in, in order, a run's share at a time, and resumes
//! after a crash without duplicates; the business's saved contact names rename customers.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_tests::fake_bitrix::{manager_of, EventBody, EventMessage, FakeBitrix, FAKE_DOMAIN};
use e2e_tests::harness::{sample, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::meta::{split_webhook, EventKind};
use wappline::store::Table;

const ECHO_AUTHOR: u64 = 42;

fn settings_path(tenant: &str) -> String {
    format!("/admin/tenants/{tenant}/channels/whatsapp/{WA_NUMBER}/coexistence")
}

/// `name`, with every WhatsApp timestamp moved to `ago` seconds before now (inside the
/// customer service window, so an operator's reply may be sent).
fn recent(name: &str, ago: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample(name)).unwrap();
    let at = (wappline::clock::now_secs() - ago).to_string();
    let value = &mut v["entry"][0]["changes"][0]["value"];
    for list in ["messages", "message_echoes"] {
        if let Some(items) = value[list].as_array_mut() {
            for m in items {
                m["timestamp"] = json!(at);
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

/// The message ids of the business echoes in a body, in delivery order.
fn echo_ids(body: &[u8]) -> Vec<String> {
    split_webhook(body)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::BusinessEcho { message_id, .. } => Some(message_id.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn history_ids() -> Vec<String> {
    split_webhook(&sample("whatsapp-history.json"))
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HistoryMessage { message_id, .. } => Some(message_id.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// How often each external message id reached the portal.
fn counts(fake: &FakeBitrix) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for m in fake.messages_received() {
        *seen.entry(m.external_message_id).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn echoes_appear_on_the_operator_side_once_in_order_and_never_go_back_out() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let v =
        w.h.admin(
            "PUT",
            &settings_path(&tenant),
            json!({"history_import": false, "echo_author_id": ECHO_AUTHOR}),
        )
        .await;
    assert_eq!(v["echo_author_id"], ECHO_AUTHOR, "{v}");
    assert_eq!(v["history_import"], false, "{v}");

    let chat = w.customer_writes(&recent("whatsapp-text.json", 120)).await;
    let echoes = recent("whatsapp-echo-coexistence.json", 60);
    let ids = echo_ids(&echoes);
    assert_eq!(ids.len(), 2);
    // Meta redelivers the echoes twice.
    for _ in 0..3 {
        let (s, t) = w.h.post_signed(&echoes).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        w.drain().await;
    }

    let received = w.bitrix.messages_received();
    let seen = counts(&w.bitrix);
    let position = |id: &str| {
        received
            .iter()
            .position(|m| m.external_message_id == id)
            .unwrap()
    };
    for id in &ids {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "echo {id} posted {:?} times",
            seen.get(id)
        );
        let m = &received[position(id)];
        // Posted on behalf of the manager the tenant chose, in the customer's chat.
        assert_eq!(manager_of(&m.raw), Some(ECHO_AUTHOR), "{}", m.raw);
        assert_eq!(m.external_chat_id, chat);
        let text = m.text.as_deref().unwrap_or_default();
        assert!(!text.starts_with("[sent by the business"), "{text}");
    }
    // In order with the conversation: the customer's message, then the echoes as sent.
    let customer = received
        .iter()
        .position(|m| m.external_chat_id == chat && manager_of(&m.raw).is_none())
        .unwrap();
    assert!(customer < position(&ids[0]) && position(&ids[0]) < position(&ids[1]));
    // Echoes are never sent to Meta.
    assert!(w.graph.sent().is_empty(), "{:?}", w.graph.sent());

    // Bitrix24 tells the connector of the echo as a message of its manager: not sent out.
    let back = EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: 7001,
            chat_id: chat.clone(),
            user_id: ECHO_AUTHOR,
            text: Some("Thanks! We ship tomorrow.".into()),
            ..EventMessage::default()
        }],
    );
    let (s, body) = w.event(back).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert!(w.graph.sent().is_empty(), "{:?}", w.graph.sent());
    // Another operator's reply in the same chat goes out as usual.
    let (s, body) = w.event(w.reply(&chat, 7002, "On its way", APP_TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].body["text"]["body"], "On its way");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn without_an_echo_author_echoes_stay_labelled_on_the_customer_side() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let echoes = recent("whatsapp-echo-coexistence.json", 60);
    let (s, t) = w.h.post_signed(&echoes).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    w.drain().await;
    for id in echo_ids(&echoes) {
        let m = w
            .bitrix
            .messages_received()
            .into_iter()
            .find(|m| m.external_message_id == id)
            .unwrap();
        assert_eq!(manager_of(&m.raw), None, "{}", m.raw);
        assert!(m
            .text
            .unwrap()
            .starts_with("[sent by the business from the WhatsApp Business app]"));
    }
    w.h.server.shutdown().await;
}

/// Waits until `ids` all reached the portal (or panics after `within`).
async fn wait_for(fake: &FakeBitrix, ids: &[String], within: Duration) {
    let started = std::time::Instant::now();
    loop {
        let seen = counts(fake);
        if ids.iter().all(|id| seen.contains_key(id)) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "history not imported within {within:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `w`'s server stopped and started again on the same data dir, with `per_run` past
/// messages per scheduled run every `every` seconds.
async fn restarted(w: RelayWorld, per_run: usize, every: u64) -> RelayWorld {
    let RelayWorld { h, bitrix, graph } = w;
    let h = h
        .restart(|c| {
            bitrix.wire_into(c);
            c.retry_base_ms = 30;
            c.history_posts_per_run = Some(per_run);
            c.schedule_secs = every;
        })
        .await;
    RelayWorld { h, bitrix, graph }
}

#[tokio::test]
async fn history_is_imported_only_when_opted_in_in_order_paced_and_resumed_after_a_crash() {
    // No scheduled run yet: the test looks at the backlog before the import takes from it.
    let w = RelayWorld::start_with(|c| c.schedule_secs = 3600).await;
    let tenant = w.installed_tenant().await;
    let ids = history_ids();
    assert_eq!(ids.len(), 4);
    let history = sample("whatsapp-history.json");

    // Off (the default): nothing waits, no conversation is opened, nothing is stored.
    let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
    assert_eq!(v["history_import"], false, "{v}");
    let (s, t) = w.h.post_signed(&history).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    w.drain().await;
    let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
    assert_eq!(v["history_waiting"], 0, "{v}");
    // Meta's progress is kept (no personal data): the console shows it.
    assert_eq!(v["history"]["meta_progress"], 100, "{v}");
    let conversations =
        w.h.all_items(Table::Data)
            .await
            .into_iter()
            .filter(|i| i.key().is_some_and(|k| k.sk == "META"))
            .count();
    assert_eq!(
        conversations, 0,
        "history of a tenant that did not opt in was stored"
    );

    // On: Meta's history (sent again for the test) waits for the scheduled import.
    w.h.admin(
        "PUT",
        &settings_path(&tenant),
        json!({"history_import": true, "echo_author_id": ECHO_AUTHOR}),
    )
    .await;
    let (s, t) = w.h.post_signed(&history).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    w.drain().await;
    let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
    assert_eq!(v["history_waiting"], 4, "{v}");
    assert!(w.bitrix.messages_received().is_empty());
    // What a crash between queueing a run's share and recording it would leave: the
    // backlog as it is now.
    let backlog: Vec<_> =
        w.h.all_items(Table::Data)
            .await
            .into_iter()
            .filter(|i| i.key().is_some_and(|k| k.pk.contains("#HISTQ#")))
            .collect();
    assert_eq!(backlog.len(), 4);

    // Paced: a run every 5 s takes two, the oldest; the rest waits for the next run.
    let w = restarted(w, 2, 5).await;
    wait_for(&w.bitrix, &ids[..2], Duration::from_secs(30)).await;
    let first_run = counts(&w.bitrix);
    assert!(
        !first_run.contains_key(&ids[2]) && !first_run.contains_key(&ids[3]),
        "more than a run's share at once: {first_run:?}"
    );

    // The server dies with what it took from the backlog unrecorded, and starts again.
    for item in &backlog {
        w.h.server
            .platform()
            .store
            .put(Table::Data, item.clone(), None)
            .await
            .unwrap();
    }
    let w = restarted(w, 2, 1).await;
    wait_for(&w.bitrix, &ids, Duration::from_secs(60)).await;
    // Let the resumed import finish (it queues again what was posted before the crash).
    for _ in 0..120 {
        let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
        if v["history_waiting"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.drain().await;
    let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
    assert_eq!(v["history_waiting"], 0, "{v}");

    let received = w.bitrix.messages_received();
    let seen = counts(&w.bitrix);
    for id in &ids {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} posted {:?} times",
            seen.get(id)
        );
    }
    // In order within each conversation (oldest first, in its customer's chat); the
    // business's own past message on the operator's side, with its original time.
    let position: Vec<usize> = ids
        .iter()
        .map(|id| {
            received
                .iter()
                .position(|m| &m.external_message_id == id)
                .unwrap()
        })
        .collect();
    assert!(
        position[..3].windows(2).all(|p| p[0] < p[1]),
        "{position:?}"
    );
    let at = |i: usize| &received[position[i]];
    assert_eq!(at(0).external_chat_id, at(1).external_chat_id);
    assert_eq!(at(1).external_chat_id, at(2).external_chat_id);
    assert_ne!(at(2).external_chat_id, at(3).external_chat_id);
    assert_eq!(manager_of(&at(1).raw), Some(ECHO_AUTHOR));
    assert_eq!(manager_of(&at(0).raw), None);
    // (form-encoded inside a `batch`: numbers arrive as strings)
    assert_eq!(at(0).raw["message"]["date"], json!("1758000000"));
    // Nothing of it went to Meta.
    assert!(w.graph.sent().is_empty());
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_saved_contact_name_renames_the_customer_in_bitrix24() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    // Sheena writes (known by BSUID and phone); the business saves her in its app's contacts.
    w.customer_writes(&recent("whatsapp-text.json", 120)).await;
    let first = w.bitrix.messages_received().last().unwrap().clone();
    assert_eq!(first.raw["user"]["name"], "Sheena");
    let (s, t) =
        w.h.post_signed(&sample("whatsapp-smb-app-state-sync.json"))
            .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    w.drain().await;
    // Her next message carries the saved name.
    w.customer_writes(&recent("whatsapp-image.json", 60)).await;
    let next = w.bitrix.messages_received().last().unwrap().clone();
    assert_eq!(next.external_chat_id, first.external_chat_id);
    assert_eq!(next.external_user_id, first.external_user_id);
    assert_eq!(next.raw["user"]["name"], "Sheena", "{}", next.raw);
    assert_eq!(
        next.raw["user"]["last_name"], "Nelson Boutique",
        "{}",
        next.raw
    );
    // The removed contact (a customer we never talked to) left nothing behind.
    let conversations =
        w.h.all_items(Table::Data)
            .await
            .into_iter()
            .filter(|i| i.key().is_some_and(|k| k.sk == "META"))
            .count();
    assert_eq!(conversations, 1);
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn coexistence_settings_refuse_bad_input_and_change_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let path = settings_path(&tenant);
    let put = |path: String, body: &'static str| {
        let h = &w.h;
        async move {
            let resp = h
                .http
                .put(format!("{}{path}", h.base))
                .bearer_auth(e2e_tests::harness::ADMIN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            (status, v)
        }
    };
    for body in [
        r#"{"history_import": true}"#,
        r#"{"history_import": "yes", "echo_author_id": null}"#,
        r#"{"history_import": true, "echo_author_id": 0}"#,
        r#"{"history_import": true, "echo_author_id": -3}"#,
        r#"{"history_import": true, "echo_author_id": null, "tenant_id": "x"}"#,
        r#"[true]"#,
        "not json",
    ] {
        let (s, v) = put(path.clone(), body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["error"].is_string() || v["error"].is_object(),
            "{body}: {v}"
        );
    }
    // A number the tenant does not have, and an Instagram account: 404.
    let (s, _) = put(
        format!("/admin/tenants/{tenant}/channels/whatsapp/113355779024681/coexistence"),
        r#"{"history_import": true, "echo_author_id": null}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = put(
        format!("/admin/tenants/{tenant}/channels/instagram/17841405822304914/coexistence"),
        r#"{"history_import": true, "echo_author_id": null}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing changed.
    let v = w.h.admin("GET", &path, json!({})).await;
    assert_eq!(v["history_import"], false, "{v}");
    assert_eq!(v["echo_author_id"], Value::Null, "{v}");
    assert!(
        coexistence_audit(&w, &tenant).await.is_empty(),
        "a refused change is not audited"
    );
    w.h.server.shutdown().await;
}

/// The tenant's `settings_changed` audit entries about this number's Coexistence settings,
/// oldest first.
async fn coexistence_audit(w: &RelayWorld, tenant: &str) -> Vec<Value> {
    let v =
        w.h.admin_get(&format!("/admin/tenants/{tenant}/audit"))
            .await;
    let mut entries: Vec<Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "settings_changed"
                && e["details"]["channel"] == format!("whatsapp:{WA_NUMBER}")
        })
        .cloned()
        .collect();
    entries.reverse();
    entries
}

/// Decision 0065: who echoes are posted as decides which Bitrix24 user speaks for the
/// business and whose messages are never sent, so each change of it is in the audit log
/// (ids only), once per change, in the same write as the change.
#[tokio::test]
async fn changing_the_echo_author_is_audited_once_per_change() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let path = settings_path(&tenant);
    let set = |author: Value| {
        let (h, path) = (&w.h, path.clone());
        async move {
            h.admin(
                "PUT",
                &path,
                json!({"history_import": false, "echo_author_id": author}),
            )
            .await
        }
    };
    set(json!(ECHO_AUTHOR)).await;
    // The same settings again change nothing, and log nothing.
    set(json!(ECHO_AUTHOR)).await;
    set(json!(77)).await;
    set(Value::Null).await;
    let entries = coexistence_audit(&w, &tenant).await;
    let changes: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let d = &e["details"];
            (
                d["setting"].as_str().unwrap().to_owned(),
                d["from"].as_str().unwrap().to_owned(),
                d["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let change = |from: &str, to: &str| ("echo_author".to_owned(), from.to_owned(), to.to_owned());
    assert_eq!(
        changes,
        [
            change("none", &ECHO_AUTHOR.to_string()),
            change(&ECHO_AUTHOR.to_string(), "77"),
            change("77", "none"),
        ],
        "{entries:?}"
    );
    assert!(
        entries.iter().all(|e| e["actor"] == entries[0]["actor"]
            && e["actor"].as_str().is_some_and(|a| !a.is_empty())),
        "who changed it is named: {entries:?}"
    );
    // Turning the history import on is a change of its own.
    w.h.admin(
        "PUT",
        &path,
        json!({"history_import": true, "echo_author_id": null}),
    )
    .await;
    let last = coexistence_audit(&w, &tenant).await.pop().unwrap();
    assert_eq!(last["details"]["setting"], "history_import", "{last}");
    assert_eq!(last["details"]["to"], "true", "{last}");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn the_console_switches_the_history_import_for_those_who_manage_channels() {
    use e2e_tests::console::{add_user, ConsoleClient};
    let w = RelayWorld::start().await;
    let tenant = w.h.tenant_with_channels().await;
    add_user(&w.h, &tenant, "admin@acme.test", "admin").await;
    add_user(&w.h, &tenant, "viewer@acme.test", "viewer").await;
    let import_of = |v: Value| v["history_import"].as_bool().unwrap();
    let mut admin = ConsoleClient::new(&w.h.base);
    admin.sign_in(&tenant, "admin@acme.test").await;
    let page = admin.get("/app/channels").await;
    assert!(
        page.body.contains(&format!("id=\"history-{WA_NUMBER}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("Import WhatsApp Business app history"));

    // A viewer may not; a value other than on/off is refused; neither changes anything.
    let mut viewer = ConsoleClient::new(&w.h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;
    assert!(!viewer
        .get("/app/channels")
        .await
        .body
        .contains("/app/channels/history"));
    let r = viewer
        .submit(
            "/app/channels",
            "/app/channels/history",
            &[("id", WA_NUMBER), ("import", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = admin
        .submit(
            "/app/channels",
            "/app/channels/history",
            &[("id", WA_NUMBER), ("import", "yes")],
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
    assert!(!import_of(v));

    // On, then off again.
    for (value, want) in [("on", true), ("off", false)] {
        let r = admin
            .submit(
                "/app/channels",
                "/app/channels/history",
                &[("id", WA_NUMBER), ("import", value)],
            )
            .await;
        assert!(r.status.is_redirection(), "{}: {}", r.status, r.body);
        let v = w.h.admin("GET", &settings_path(&tenant), json!({})).await;
        assert_eq!(import_of(v), want);
    }
    w.h.server.shutdown().await;
}
