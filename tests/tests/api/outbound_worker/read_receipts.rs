//! Read receipts and typing for an operator's reply (decision 0044): before the reply goes
//! out, the customer's newest message is marked read with the typing bubble (WhatsApp) or
//! `mark_seen` then `typing_on` (Instagram). API sends mark nothing, and a failing receipt
//! never holds the reply back.

use e2e_tests::fake_graph::{GraphFailure, SenderAction};
use e2e_tests::harness::{IG_ACCOUNT, WA_NUMBER};
use wappline::conversation::{ConversationId, Direction, NewMessage, Origin};
use wappline::graph::DEFAULT_VERSION;
use wappline::meta::{AccountRef, Content, CustomerId, WhatsAppUserId};
use wappline::outbound::ApiMessage;

use super::{ig, now, operator, wa, world, World, BSUID, HOUR, IGSID};

/// The customer's message `wamid` arrived `ago` seconds ago.
async fn customer_said(w: &World, conv: &ConversationId, account: &AccountRef, id: &str, ago: i64) {
    w.conversations()
        .store_message(
            account,
            conv,
            NewMessage::from_provider(
                id,
                Direction::Inbound,
                Origin::Customer,
                Content::Text {
                    body: "is it in stock?".into(),
                },
                now() - ago,
                None,
            ),
            90,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_operator_reply_marks_the_newest_customer_message_read_with_typing() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    customer_said(&w, &conv, &wa(), "wamid.CUSTOMEROLDER", 120).await;
    customer_said(&w, &conv, &wa(), "wamid.CUSTOMERNEWEST", 60).await;
    w.reply(&conv, operator("Yes, we have it.", vec![], 1))
        .await;
    assert_eq!(w.run().await.len(), 1);

    assert_eq!(
        w.graph.sender_actions(),
        vec![SenderAction {
            product: "whatsapp",
            path: format!("/{DEFAULT_VERSION}/{WA_NUMBER}/messages"),
            action: "read+typing".into(),
            target: "wamid.CUSTOMERNEWEST".into(),
        }]
    );
    assert_eq!(w.graph.sent().len(), 1, "the reply itself went out");
    // One receipt and one send: nothing else was posted.
    let calls = w.graph.calls();
    let posts: Vec<_> = calls.iter().filter(|c| c.method == "POST").collect();
    assert_eq!(posts.len(), 2);
}

#[tokio::test]
async fn instagram_replies_mark_seen_then_type() {
    let w = world().await;
    let conv = w.ig_customer(HOUR).await;
    customer_said(&w, &conv, &ig(), "aWdfZAG1faXRlbToxOkNVU1RPTUVS", 60).await;
    w.reply(&conv, operator("Hi there", vec![], 1)).await;
    assert_eq!(w.run().await.len(), 1);

    let actions = w.graph.sender_actions();
    let names: Vec<_> = actions.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(names, ["mark_seen", "typing_on"]);
    assert!(actions
        .iter()
        .all(|a| a.product == "instagram" && a.target == IGSID));
    assert!(
        actions.iter().all(|a| !a.path.contains(WA_NUMBER)
            && (a.path.contains("/me/") || a.path.contains(IG_ACCOUNT))),
        "{actions:?}"
    );
    assert_eq!(w.graph.sent().len(), 1);
}

#[tokio::test]
async fn api_sends_and_conversations_without_customer_messages_mark_nothing() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    // No stored customer message: nothing to point a receipt at.
    w.reply(&conv, operator("Following up", vec![], 1)).await;
    assert_eq!(w.run().await.len(), 1);
    assert!(w.graph.sender_actions().is_empty());
    customer_said(&w, &conv, &wa(), "wamid.CUSTOMERLATER", 30).await;
    // A public-API send is the business's system, not a person reading.
    let to = CustomerId::WhatsAppUser(WhatsAppUserId::parse(BSUID).unwrap());
    w.intake
        .accept_api_message(
            &w.platform.tenants,
            &w.tenant,
            &wa(),
            to,
            ApiMessage::Text("Your order shipped".into()),
            "req-1",
        )
        .await
        .unwrap();
    while !w.run().await.is_empty() {}
    assert!(
        w.graph.sender_actions().is_empty(),
        "{:?}",
        w.graph.sender_actions()
    );
    assert_eq!(w.graph.sent().len(), 2);
}

#[tokio::test]
async fn a_failing_receipt_never_holds_the_reply_back() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    customer_said(&w, &conv, &wa(), "wamid.CUSTOMERNEWEST", 60).await;
    // The next request (the receipt) fails with a server error.
    w.graph.fail_next(1, GraphFailure::ServerError);
    w.reply(&conv, operator("Yes, we have it.", vec![], 1))
        .await;
    assert_eq!(w.run().await.len(), 1);
    assert!(w.graph.sender_actions().is_empty());
    assert_eq!(w.graph.sent().len(), 1, "the reply went out anyway, once");
}
