//! Instagram comments and private replies end to end on the local server (decision 0062): a
//! customer's comment on the business's reel reaches Bitrix24 as a message of their chat;
//! the operator's answer goes as the comment's one private reply (`recipient: {comment_id}`),
//! which the fake Graph API accepts once per comment and within 7 days, as Meta documents;
//! a second answer, or one to a comment older than 7 days, is not sent and the operator is
//! told why. Once the customer writes, answers go as direct messages again.

use e2e_tests::fake_bitrix::{EventBody, EventMessage, FAKE_DOMAIN};
use e2e_tests::harness::{sample, IG_ACCOUNT};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, IG_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const IGSID: &str = "1254459154682919";
const COMMENT: &str = "17865799348089039";
const DAY_MS: i64 = 86_400_000;

/// The comment sample, sent `age_ms` ago, with comment id `id`.
fn comment(id: &str, age_ms: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("instagram-comment.json")).unwrap();
    v["entry"][0]["time"] = json!(wappline::clock::now_secs() * 1000 - age_ms);
    v["entry"][0]["changes"][0]["value"]["id"] = json!(id);
    serde_json::to_vec(&v).unwrap()
}

/// A direct message from the commenter, now.
fn direct_message() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("instagram-text.json")).unwrap();
    v["entry"][0]["messaging"][0]["timestamp"] = json!(wappline::clock::now_secs() * 1000);
    serde_json::to_vec(&v).unwrap()
}

fn operator_reply(w: &RelayWorld, chat: &str, id: u64, text: &str) -> String {
    EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_instagram",
        LINE,
        &[EventMessage {
            im_chat_id: 903,
            im_message_id: id,
            chat_id: chat.to_owned(),
            user_id: 1,
            text: Some(text.to_owned()),
            ..EventMessage::default()
        }],
    )
}

async fn answer(w: &RelayWorld, chat: &str, id: u64, text: &str) {
    let (s, body) = w.event(operator_reply(w, chat, id, text)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
}

/// Direct messages sent to the customer (not private replies).
fn direct_sends(w: &RelayWorld) -> Vec<Value> {
    w.graph
        .sent()
        .into_iter()
        .filter(|m| m.product == "instagram" && m.body["recipient"].get("id").is_some())
        .map(|m| m.body)
        .collect()
}

#[tokio::test]
async fn a_comment_reaches_bitrix24_and_the_answer_is_its_one_private_reply() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.graph.add_comment(IG_ACCOUNT, COMMENT, IGSID, 60);
    w.installed_tenant().await;

    let chat = w.customer_writes(&comment(COMMENT, 60_000)).await;
    let posted = w.bitrix.messages_received();
    let shown = posted.last().unwrap();
    assert_eq!(
        shown.text.as_deref(),
        Some("[comment on reel 18068923945123456] How much is the linen shirt?")
    );
    assert_eq!(shown.external_message_id, COMMENT);
    // A redelivery is the same message.
    let (s, _) = w.h.post_signed(&comment(COMMENT, 60_000)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.bitrix.messages_received().len(), posted.len());

    // The customer never wrote a direct message: the answer is the comment's private reply.
    answer(&w, &chat, 8101, "Hi! It is 49 EUR, in stock.").await;
    let replies = w.graph.private_replies();
    assert_eq!(replies.len(), 1, "{:?}", w.graph.calls());
    assert_eq!(
        replies[0].body,
        json!({"recipient": {"comment_id": COMMENT},
               "message": {"text": "Hi! It is 49 EUR, in stock."}})
    );
    assert!(
        replies[0].path.ends_with("/me/messages"),
        "{}",
        replies[0].path
    );
    assert_eq!(replies[0].bearer.as_deref(), Some(IG_TOKEN));
    assert!(direct_sends(&w).is_empty());

    // A second answer: Meta allows one private reply per comment, so it is not sent.
    answer(&w, &chat, 8102, "Shall I reserve one?").await;
    assert_eq!(w.graph.private_replies().len(), 1);
    assert!(direct_sends(&w).is_empty());
    let notes = w.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("Instagram allows one private reply per comment")),
        "the operator is told why: {notes:?}"
    );

    // A new comment takes its own private reply.
    let second = "17865799348089040";
    w.graph.add_comment(IG_ACCOUNT, second, IGSID, 30);
    let (s, _) = w.h.post_signed(&comment(second, 30_000)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    answer(&w, &chat, 8103, "Thanks for asking again!").await;
    let replies = w.graph.private_replies();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1].body["recipient"]["comment_id"], second);

    // The customer writes: answers are direct messages again.
    let (s, _) = w.h.post_signed(&direct_message()).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    answer(&w, &chat, 8104, "Welcome to our DMs").await;
    assert_eq!(w.graph.private_replies().len(), 2);
    let direct = direct_sends(&w);
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["recipient"]["id"], IGSID);
    assert_eq!(direct[0]["message"]["text"], "Welcome to our DMs");
}

#[tokio::test]
async fn a_comment_older_than_seven_days_is_not_answered_privately() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.graph.add_comment(IG_ACCOUNT, COMMENT, IGSID, 8 * 86_400);
    w.installed_tenant().await;

    let chat = w.customer_writes(&comment(COMMENT, 8 * DAY_MS)).await;
    answer(&w, &chat, 8201, "Sorry for the late answer").await;
    assert!(w.graph.private_replies().is_empty());
    assert!(direct_sends(&w).is_empty());
    assert!(
        !w.graph
            .calls()
            .iter()
            .any(|c| c.path.ends_with("/messages")),
        "nothing was tried at Meta: {:?}",
        w.graph.calls()
    );
    let notes = w.notes();
    assert!(
        notes.iter().any(|n| n.contains("more than 7 days old")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn quoting_a_comment_inside_the_window_answers_it_privately() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.graph.add_comment(IG_ACCOUNT, COMMENT, IGSID, 60);
    w.installed_tenant().await;
    let chat = w.customer_writes(&direct_message()).await;
    w.customer_writes(&comment(COMMENT, 60_000)).await;

    // The operator quotes the comment (Bitrix24's "Quote" action) and answers it.
    let quoted = "[comment on reel 18068923945123456] How much is the linen shirt?";
    let text = wappline::bitrix::quote::quote_block(
        "sheena.nelson",
        "04.12.2026 10:15:00",
        quoted,
        "49 EUR",
    );
    answer(&w, &chat, 8301, &text).await;
    let replies = w.graph.private_replies();
    assert_eq!(replies.len(), 1, "{:?}", w.graph.calls());
    assert_eq!(
        replies[0].body,
        json!({"recipient": {"comment_id": COMMENT}, "message": {"text": "49 EUR"}})
    );

    // Quoting it again: its private reply is taken, the window is open, so a direct
    // message without a reply context (a comment is no message to reply to).
    let text = wappline::bitrix::quote::quote_block(
        "sheena.nelson",
        "04.12.2026 10:16:00",
        quoted,
        "Still 49 EUR",
    );
    answer(&w, &chat, 8302, &text).await;
    assert_eq!(w.graph.private_replies().len(), 1);
    let direct = direct_sends(&w);
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["message"]["text"], "Still 49 EUR");
    assert!(direct[0].get("reply_to").is_none(), "{}", direct[0]);
}

const LIVE_MEDIA: &str = "18072244157163512";
const LIVE_COMMENT: &str = "17874592131055623";

/// The live comment sample, sent now, with comment id `id`.
fn live_comment(id: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("instagram-live-comment.json")).unwrap();
    v["entry"][0]["time"] = json!(wappline::clock::now_secs() * 1000);
    v["entry"][0]["changes"][0]["value"]["id"] = json!(id);
    serde_json::to_vec(&v).unwrap()
}

/// A comment on the business's live video (`live_comments`, decision 0067) reaches Bitrix24
/// like any comment, marked as made on a live video; the operator's answer is its private
/// reply while the broadcast lasts. Once the broadcast ended Meta refuses it, and the
/// operator is told why.
#[tokio::test]
async fn a_live_comment_is_answered_privately_only_during_the_broadcast() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.graph
        .add_live_comment(IG_ACCOUNT, LIVE_MEDIA, LIVE_COMMENT, IGSID);
    w.installed_tenant().await;

    let chat = w.customer_writes(&live_comment(LIVE_COMMENT)).await;
    let shown = w.bitrix.messages_received().last().cloned().unwrap();
    assert_eq!(
        shown.text.as_deref(),
        Some("[comment on live video 18072244157163512] Is the blue one still available?")
    );
    assert_eq!(shown.external_message_id, LIVE_COMMENT);

    // During the broadcast: the comment's private reply.
    answer(&w, &chat, 8401, "Yes! Two left in size M.").await;
    let replies = w.graph.private_replies();
    assert_eq!(replies.len(), 1, "{:?}", w.graph.calls());
    assert_eq!(
        replies[0].body,
        json!({"recipient": {"comment_id": LIVE_COMMENT},
               "message": {"text": "Yes! Two left in size M."}})
    );

    // Another live comment; the broadcast ends before the operator answers it.
    let later = "17874592131055624";
    w.graph
        .add_live_comment(IG_ACCOUNT, LIVE_MEDIA, later, IGSID);
    let (s, _) = w.h.post_signed(&live_comment(later)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    w.graph.end_broadcast(LIVE_MEDIA);
    answer(&w, &chat, 8402, "And the red one too.").await;
    assert_eq!(w.graph.private_replies().len(), 1, "Meta refused it");
    assert!(direct_sends(&w).is_empty());
    let tried = w
        .graph
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/messages") && c.body.contains("\"comment_id\""))
        .count();
    assert_eq!(tried, 2, "the second reply was tried at Meta");
    let notes = w.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("only while the live broadcast lasts")),
        "the operator is told why: {notes:?}"
    );
}

/// A contact's erasure deletes the inbound idempotency record of each of the customer's
/// comments (`ig:comment:<id>`, decision 0062): that key holds the comment id, and nothing
/// else derived from the message names it.
#[tokio::test]
async fn a_contact_erasure_deletes_the_comment_event_record() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    let tenant = w.installed_tenant().await;
    w.customer_writes(&comment(COMMENT, 60_000)).await;

    // The record as the inbound worker keys it (`InboundJob::idempotency_key`).
    let store = w.h.server.platform().store.clone();
    let record = wappline::idempotency::Idempotency::new(
        store.clone(),
        "IN",
        wappline::queue::platform::VISIBILITY,
    )
    .key_for(
        &wappline::ids::TenantId::parse(&tenant).unwrap(),
        &format!("ig:{IG_ACCOUNT}:ig:comment:{COMMENT}"),
    );
    let table = wappline::store::Table::Dedupe;
    assert!(
        store.get(table, &record).await.unwrap().is_some(),
        "the worker wrote the comment's record"
    );

    let done =
        w.h.erase_contact(&tenant, "instagram", IG_ACCOUNT, IGSID)
            .await;
    assert_eq!(done["conversations_erased"], 1);
    assert!(
        store.get(table, &record).await.unwrap().is_none(),
        "the comment's inbound record is erased with the contact"
    );
}
