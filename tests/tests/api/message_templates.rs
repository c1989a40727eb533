//! WhatsApp message templates end to end on the local server (decision 0050): a connected
//! number's templates are read from the fake Graph API at once (all pages), Meta's template
//! webhooks keep the copy current, the schedule reads an account again when a webhook names
//! a template it does not know, and the operator sends a template from the Bitrix24 chat with
//! `/template`: checked against the definition, marketing templates through the Marketing
//! Messages API, and the note for a reply outside the window lists what can be sent.

use std::time::Duration;

use e2e_tests::fake_graph::template;
use e2e_tests::harness::{sample, WABA, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::store::{Table, SK};
use wappline::templates::Template;

/// The WABA's templates as the fake lists them: three approved (one marketing), one pending.
fn catalogue() -> Vec<Value> {
    let mut pending = template(
        "draft_offer",
        "en_US",
        "MARKETING",
        json!([{"type": "BODY", "text": "Not yet"}]),
    );
    pending["status"] = json!("PENDING");
    vec![
        template(
            "order_confirmation",
            "en_US",
            "UTILITY",
            json!([
                {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                {"type": "BODY", "text": "Hi {{1}}, your order ships on {{2}}."},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Stop"},
                    {"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}"}
                ]}
            ]),
        ),
        template(
            "welcome_template",
            "en_US",
            "UTILITY",
            json!([{"type": "BODY", "text": "Welcome to Fake Market!"}]),
        ),
        template(
            "spring_sale",
            "en_US",
            "MARKETING",
            json!([{"type": "BODY", "text": "{{1}}% off everything this week."}]),
        ),
        pending,
    ]
}

/// The customer's text sample, written `ago` seconds ago.
fn customer_text_at(ago: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let at = wappline::clock::now_secs() - ago;
    v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(at.to_string());
    serde_json::to_vec(&v).unwrap()
}

/// The tenant's stored copy, by name.
async fn stored(w: &RelayWorld) -> Vec<Template> {
    w.h.all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| i.get_s(SK).is_some_and(|s| s.starts_with("TEMPLATE#")))
        .map(|i| serde_json::from_str(i.get_s("template").unwrap()).unwrap())
        .collect()
}

async fn stored_one(w: &RelayWorld, name: &str) -> Template {
    stored(w)
        .await
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} not stored"))
}

/// A world whose WABA has [`catalogue`] (plus `extra`), installed, with a customer who wrote
/// `ago` seconds ago; the chat id.
async fn world(extra: Vec<Value>, ago: i64) -> (RelayWorld, String) {
    let w = RelayWorld::start().await;
    let mut all = catalogue();
    all.extend(extra);
    w.graph.set_templates(WABA, all);
    w.installed_tenant().await;
    let chat = w.customer_writes(&customer_text_at(ago)).await;
    (w, chat)
}

/// The operator writes `text`; drained.
async fn operator(w: &RelayWorld, chat: &str, id: u64, text: &str) {
    let (s, body) = w.event(w.reply(chat, id, text, APP_TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
}

#[tokio::test]
async fn templates_are_read_on_connect_and_kept_current_by_webhooks_and_the_schedule() {
    // 300 more than fit one page of 250: the sync reads both pages.
    let filler: Vec<Value> = (0..300)
        .map(|i| {
            template(
                &format!("filler_{i:03}"),
                "es",
                "UTILITY",
                json!([{"type": "BODY", "text": "x"}]),
            )
        })
        .collect();
    let (w, _) = world(filler, 60).await;
    let reads: Vec<_> = w
        .graph
        .calls()
        .into_iter()
        .filter(|c| c.path == format!("/v26.0/{WABA}/message_templates"))
        .collect();
    assert_eq!(reads.len(), 2, "two pages");
    assert!(reads[0]
        .query
        .as_deref()
        .unwrap()
        .contains("fields=id%2Cname%2Clanguage%2Cstatus%2Ccategory"));
    assert!(reads[1]
        .query
        .as_deref()
        .unwrap()
        .contains("after=cursor250"));
    assert_eq!(stored(&w).await.len(), 304);
    let order = stored_one(&w, "order_confirmation").await;
    assert_eq!(order.status, "APPROVED");
    assert_eq!(order.components.len(), 3);
    assert_eq!(stored_one(&w, "draft_offer").await.status, "PENDING");

    // Meta's three template webhooks, as documented.
    for name in [
        "whatsapp-template-status-update.json",
        "whatsapp-template-category-update.json",
        "whatsapp-template-quality-update.json",
    ] {
        let (s, body) = w.h.post_signed(&sample(name)).await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
    }
    assert_eq!(stored_one(&w, "order_confirmation").await.status, "PAUSED");
    let welcome = stored_one(&w, "welcome_template").await;
    assert_eq!(welcome.category, "MARKETING");
    assert_eq!(welcome.quality.as_deref(), Some("YELLOW"));

    // A template approved since the sync: the webhook cannot describe it, so the schedule
    // reads the account again.
    let mut all = catalogue();
    all.push(template(
        "new_arrivals",
        "en_US",
        "MARKETING",
        json!([{"type": "BODY", "text": "New in!"}]),
    ));
    w.graph.set_templates(WABA, all);
    let mut approved: Value =
        serde_json::from_slice(&sample("whatsapp-template-status-update.json")).unwrap();
    let v = &mut approved["entry"][0]["changes"][0]["value"];
    v["event"] = json!("APPROVED");
    v["message_template_name"] = json!("new_arrivals");
    v["message_template_id"] = json!(1234567890123456u64);
    let (s, _) =
        w.h.post_signed(&serde_json::to_vec(&approved).unwrap())
            .await;
    assert_eq!(s, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = stored(&w).await.into_iter().map(|t| t.name).collect();
        // The account is read whole: the fillers go with Meta's list (one by one, after the
        // new templates are written).
        if names.contains(&"new_arrivals".to_owned()) && names.len() == 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not re-read: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn the_operator_sends_a_template_with_a_command_even_after_the_window() {
    let (w, chat) = world(Vec::new(), 30 * 3600).await;
    operator(
        &w,
        &chat,
        7001,
        "/template order_confirmation A-17 | Ann | Monday, May 4 | A-17",
    )
    .await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1, "{:?}", w.notes());
    assert_eq!(sent[0].path, format!("/v26.0/{WA_NUMBER}/messages"));
    assert_eq!(sent[0].body["type"], "template");
    assert_eq!(
        sent[0].body["template"],
        json!({
            "name": "order_confirmation",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "A-17"}]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Ann"},
                    {"type": "text", "text": "Monday, May 4"}
                ]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "A-17"}]}
            ]
        })
    );

    // A marketing template goes through the Marketing Messages API, as Meta requires.
    operator(&w, &chat, 7002, "/template spring_sale 20").await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 2, "{:?}", w.notes());
    assert_eq!(
        sent[1].path,
        format!("/v26.0/{WA_NUMBER}/marketing_messages")
    );
    assert_eq!(sent[1].body["template"]["name"], "spring_sale");
    assert_eq!(
        sent[1].body["template"]["components"][0]["parameters"][0]["text"],
        "20"
    );
    assert!(w.notes().is_empty(), "{:?}", w.notes());
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn the_window_note_lists_the_approved_templates() {
    let (w, chat) = world(Vec::new(), 25 * 3600).await;
    operator(&w, &chat, 7101, "Are you still interested?").await;
    assert!(w.graph.sent().is_empty());
    let notes = w.notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];
    for expected in [
        "24-hour",
        "order_confirmation@en_US (4 parameters)",
        "spring_sale@en_US (1 parameter)",
        "welcome_template@en_US",
        "/template <name>[@<language>] <parameter 1> | <parameter 2>",
    ] {
        assert!(note.contains(expected), "{expected:?} missing: {note}");
    }
    assert!(!note.contains("draft_offer"), "a pending template: {note}");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn bad_template_commands_are_refused_and_nothing_is_sent() {
    let (w, chat) = world(Vec::new(), 60).await;
    let cases = [
        (7201, "/template order_confirmation A-17 | Ann", "takes 4 parameter(s)"),
        (
            7202,
            "/template order_confirmation A-17-with-a-very-long-header-parameter-beyond-sixty-characters | Ann | Mon | x",
            "longer than 60 characters",
        ),
        (7203, "/template order_confirmation A-17 | Ann | Mon | two words", "without spaces"),
        (7204, "/template no_such_template", "no approved template named no_such_template"),
        (7205, "/template draft_offer", "no approved template named draft_offer"),
        (7206, "/template spring_sale@fr 20", "not approved in fr"),
    ];
    for (id, text, _) in cases {
        operator(&w, &chat, id, text).await;
    }
    assert!(w.graph.sent().is_empty(), "{:?}", w.graph.sent());
    let notes = w.notes();
    for (_, text, expected) in cases {
        assert!(
            notes.iter().any(|n| n.contains(expected)),
            "{text}: {expected:?} not in {notes:?}"
        );
    }
    // A template paused by Meta cannot be sent from then on.
    let (s, _) =
        w.h.post_signed(&sample("whatsapp-template-status-update.json"))
            .await;
    assert_eq!(s, StatusCode::OK);
    operator(
        &w,
        &chat,
        7207,
        "/template order_confirmation A | B | C | D",
    )
    .await;
    assert!(w.graph.sent().is_empty());
    assert!(w
        .notes()
        .iter()
        .any(|n| n.contains("no approved template named order_confirmation")));
    w.h.server.shutdown().await;
}
