//! Erasure wins against work in flight (issue 13): after a contact's erasure, a Meta retry of
//! an old delivery, a redrive of the inbound dead-letter queue, and a held event released on
//! resume store nothing of that person and post nothing to Bitrix24; a message the person
//! writes after the erasure is a new conversation. Once an erasure has begun (its marker is
//! written), a sync job posts nothing and a send job sends nothing of that person.

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::harness::WA_NUMBER;
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use serde_json::Value;
use wappline::hold::Suspension;
use wappline::ids::TenantId;
use wappline::queue::redrive::{redrive, RedriveOptions};
use wappline::queue::{platform, OutgoingMessage, Queue, ReceivedMessage};
use wappline::store::Table;

const PHONE: &str = "16505550123";

/// A WhatsApp text from [`PHONE`] sent `ago` seconds ago.
fn text(id: &str, body: &str, ago: i64) -> Vec<u8> {
    text_from(PHONE, id, body, ago)
}

fn text_from(phone: &str, id: &str, body: &str, ago: i64) -> Vec<u8> {
    let stamped = wappline::clock::now_secs() - ago;
    whatsapp_events::text(phone, "Erin Erased", id, stamped, body)
}

/// Posts a delivery from [`PHONE`] and catches its inbound job as the webhook queued it,
/// before the local server's consumer (which polls every 50 ms) takes it; tried with fresh
/// message ids until caught. The job is left hidden; returns its message id and the job.
async fn post_and_catch(w: &RelayWorld, tag: &str, body: &str) -> (String, ReceivedMessage) {
    let queue = w.h.server.queue();
    let inbound = platform::name(platform::INBOUND);
    for attempt in 0..20 {
        let id = format!("wamid.ERASED.{tag}{attempt}");
        let (s, _) = w.h.post_signed(&text(&id, body, 120)).await;
        assert_eq!(s, StatusCode::OK);
        if let Some(m) = queue
            .receive(&inbound, 1, Duration::from_secs(600))
            .await
            .unwrap()
            .pop()
        {
            return (id, m);
        }
        w.drain().await;
    }
    panic!("no inbound job caught before the consumer");
}

async fn erase_contact(w: &RelayWorld, tenant: &str) {
    erase_customer(w, tenant, &format!("+{PHONE}")).await;
}

/// Asks for `customer`'s erasure on the WhatsApp number and waits until it completed.
async fn erase_customer(w: &RelayWorld, tenant: &str, customer: &str) {
    w.h.erase_contact(tenant, "whatsapp", WA_NUMBER, customer)
        .await;
}

/// Stored messages whose (encrypted) item is about one of `ids`: by the provider-id index.
async fn stored_messages(w: &RelayWorld) -> usize {
    w.h.all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .count()
}

fn posted(w: &RelayWorld, id: &str) -> usize {
    w.bitrix
        .messages_received()
        .iter()
        .filter(|m| m.domain == FAKE_DOMAIN && m.external_message_id == id)
        .count()
}

#[tokio::test]
async fn a_meta_retry_after_erasure_stores_and_posts_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let queue = w.h.server.queue().clone();
    let inbound = platform::name(platform::INBOUND);
    let (id, job) = post_and_catch(&w, "RETRY", "my secret address").await;
    queue
        .change_visibility(&inbound, &job.receipt, Duration::ZERO)
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(posted(&w, &id), 1);
    let before = stored_messages(&w).await;

    erase_contact(&w, &tenant).await;
    assert!(stored_messages(&w).await < before);
    let after_erasure = stored_messages(&w).await;

    // Meta delivers the same webhook again after the queue's 5-minute deduplication window
    // (Meta retries for up to 7 days): the same job, accepted again by the queue.
    queue
        .send_batch(
            &inbound,
            vec![OutgoingMessage::new(job.body.clone()).grouped(
                job.group_id.clone().unwrap_or_default(),
                format!("{}-retry", job.message_id),
            )],
        )
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(stored_messages(&w).await, after_erasure, "not stored again");
    assert_eq!(posted(&w, &id), 1, "not posted again");

    // The person writes again after the erasure: that is a new conversation.
    let (s, _) =
        w.h.post_signed(&text("wamid.ERASED.NEW1", "hello again", -5))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(posted(&w, "wamid.ERASED.NEW1"), 1);
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_dead_letter_redrive_after_erasure_stores_and_posts_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let queue = w.h.server.queue().clone();
    let inbound = platform::name(platform::INBOUND);
    let (id, kept) = post_and_catch(&w, "DLQ", "my card number").await;
    // It reached the worker once (stored, posted) and the copy sits in the DLQ.
    let (group, dedup) = (kept.group_id.clone(), format!("{}-kept", kept.message_id));
    queue
        .send_batch(
            &inbound.dead_letter(),
            vec![OutgoingMessage::new(kept.body.clone()).grouped(group.unwrap_or_default(), dedup)],
        )
        .await
        .unwrap();
    queue
        .change_visibility(&inbound, &kept.receipt, Duration::ZERO)
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(posted(&w, &id), 1);

    erase_contact(&w, &tenant).await;
    let after_erasure = stored_messages(&w).await;

    let q: Arc<dyn Queue> = Arc::new(queue.clone());
    let report = redrive(q.as_ref(), &inbound, &RedriveOptions::default())
        .await
        .unwrap();
    assert_eq!(report.moved(), 1);
    w.drain().await;
    assert_eq!(stored_messages(&w).await, after_erasure, "not stored again");
    assert_eq!(posted(&w, &id), 1, "not posted again");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_hold_released_after_erasure_stores_and_posts_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let id = TenantId::parse(&tenant).unwrap();
    let suspension = Suspension::new(
        w.h.server.platform().tenants.clone(),
        Arc::new(w.h.server.queue().clone()),
    );
    suspension
        .suspend(&id, "invoice overdue", "platform_admin")
        .await
        .unwrap();
    let (s, _) =
        w.h.post_signed(&text("wamid.ERASED.HELD1", "held secret", 60))
            .await;
    assert_eq!(s, StatusCode::OK);
    // Another customer writes meanwhile: held too, and kept.
    let other = text_from("16505550999", "wamid.KEPT.HELD1", "someone else", 30);
    let (s, _) = w.h.post_signed(&other).await;
    assert_eq!(s, StatusCode::OK);
    let before = stored_messages(&w).await;
    assert_eq!(suspension.held_count(&id).await.unwrap(), 2);

    // The erasure purges the person's held event; resuming releases only the other's.
    erase_contact(&w, &tenant).await;
    assert_eq!(
        suspension.held_count(&id).await.unwrap(),
        1,
        "held event purged"
    );
    let resumed = suspension.resume(&id, "platform_admin").await.unwrap();
    assert_eq!(resumed.released, 1);
    w.drain().await;
    assert_eq!(
        posted(&w, "wamid.KEPT.HELD1"),
        1,
        "the other customer's message flows"
    );
    assert_eq!(
        stored_messages(&w).await,
        before + 1,
        "only the other's stored"
    );
    assert_eq!(posted(&w, "wamid.ERASED.HELD1"), 0, "not posted");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_media_link_used_after_erasure_is_refused() {
    let w = RelayWorld::start_with(|c| c.retry_base_ms = 50).await;
    let tenant = w.installed_tenant().await;
    let jpeg = b"\xff\xd8\xff\xe0 erased person's photo";
    w.graph
        .add_media("1106677706454703", WA_NUMBER, "image/jpeg", jpeg);
    let (s, _) =
        w.h.post_signed(&e2e_tests::harness::sample("whatsapp-image.json"))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let received = w.bitrix.messages_received();
    let url = received
        .iter()
        .find_map(|m| m.files.first().and_then(|f| f["url"].as_str()))
        .expect("a linked file")
        .to_owned();
    assert_eq!(
        w.h.http.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    // The sample's sender is erased: the link still within its lifetime no longer serves.
    erase_customer(&w, &tenant, "+16505551234").await;
    let resp = w.h.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    w.h.server.shutdown().await;
}

/// Runs `act` (with a fresh attempt number) until a job it caused is caught on `queue` before
/// the local server's consumer takes it; the job is left hidden.
async fn act_and_catch<F, Fut>(w: &RelayWorld, queue: &str, mut act: F) -> ReceivedMessage
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let q = w.h.server.queue();
    let name = platform::name(queue);
    for attempt in 0..20 {
        act(attempt).await;
        for _ in 0..100 {
            if let Some(m) = q
                .receive(&name, 1, Duration::from_secs(600))
                .await
                .unwrap()
                .pop()
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w.drain().await;
    }
    panic!("no {queue} job caught before the consumer");
}

/// What a contact erasure does first (decision 0029), the subject's marker, then the caught
/// `job` is released to its `queue`'s workers and everything drains: work that starts
/// between the marker and the deletion of the conversations must already stop.
async fn erasure_begins_then_release(
    w: &RelayWorld,
    tenant: &str,
    queue: &str,
    job: &ReceivedMessage,
) {
    let body: Value = serde_json::from_str(&job.body).unwrap();
    let conversation =
        wappline::conversation::ConversationId::parse(body["conversation"].as_str().unwrap())
            .unwrap();
    let platform = w.h.server.platform();
    wappline::conversation::erased::ErasedSubjects::new(platform.store.clone())
        .mark(
            &TenantId::parse(tenant).unwrap(),
            &conversation,
            wappline::clock::now_millis(),
        )
        .await
        .unwrap();
    w.h.server
        .queue()
        .change_visibility(&platform::name(queue), &job.receipt, Duration::ZERO)
        .await
        .unwrap();
    w.drain().await;
}

#[tokio::test]
async fn a_sync_job_of_a_subject_being_erased_posts_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let job = act_and_catch(&w, platform::SYNC, |n| {
        let w = &w;
        async move {
            let (s, _) =
                w.h.post_signed(&text(&format!("wamid.ERASING.{n}"), "my new address", 60))
                    .await;
            assert_eq!(s, StatusCode::OK);
        }
    })
    .await;
    let stored = stored_messages(&w).await;
    assert!(stored >= 1);
    // Earlier attempts, whose jobs the consumer took first, were posted; the caught one not yet.
    let posted_before = w.bitrix.messages_received().len();

    erasure_begins_then_release(&w, &tenant, platform::SYNC, &job).await;
    assert_eq!(
        w.bitrix.messages_received().len(),
        posted_before,
        "nothing of the subject posted to Bitrix24"
    );
    assert_eq!(
        stored_messages(&w).await,
        stored,
        "the marker, not a deletion, stopped it"
    );
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_send_job_of_a_subject_being_erased_sends_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let chat = w
        .customer_writes(&text("wamid.ERASING.SEND", "please call me", 60))
        .await;
    let job = act_and_catch(&w, platform::OUTBOUND, |n| {
        let (w, chat) = (&w, chat.clone());
        async move {
            let reply = w.reply(&chat, 7000 + u64::from(n), "We will call you", APP_TOKEN);
            let (s, body) = w.event(reply).await;
            assert_eq!(s, StatusCode::OK, "{body}");
        }
    })
    .await;
    let sent_before = w.graph.sent().len();

    erasure_begins_then_release(&w, &tenant, platform::OUTBOUND, &job).await;
    assert_eq!(
        w.graph.sent().len(),
        sent_before,
        "nothing sent to the person"
    );
    w.h.server.shutdown().await;
}

/// The person of `chat` is being erased from now: the erasure's marker written, its deletions
/// not run yet.
async fn erasure_begins(w: &RelayWorld, tenant: &str, chat: &str) {
    wappline::conversation::erased::ErasedSubjects::new(w.h.server.platform().store.clone())
        .mark(
            &TenantId::parse(tenant).unwrap(),
            &wappline::conversation::ConversationId::parse(chat).unwrap(),
            wappline::clock::now_millis(),
        )
        .await
        .unwrap();
}

/// An operator's reply that comes while the person's erasure is under way (its marker
/// written, its deletions not run yet) is neither kept nor sent (decision 0124): stored after
/// the erasure's query of the conversation, it would have stayed until its retention ran out.
#[tokio::test]
async fn an_operator_reply_to_a_person_being_erased_is_not_kept() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let chat = w
        .customer_writes(&text("wamid.ERASING.KEPT", "please forget me", 60))
        .await;
    let stored_before = stored_messages(&w).await;
    let usage = || async {
        w.h.admin(
            "GET",
            &format!("/admin/tenants/{tenant}/usage"),
            Value::Null,
        )
        .await["outbound"]
            .clone()
    };
    let counted_before = usage().await;
    erasure_begins(&w, &tenant, &chat).await;
    let sent_before = w.graph.sent().len();
    let (s, body) = w
        .event(w.reply(&chat, 7100, "We will call you tomorrow", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert_eq!(
        w.graph.sent().len(),
        sent_before,
        "nothing sent to the person"
    );
    assert_eq!(
        stored_messages(&w).await,
        stored_before,
        "the operator's reply is not kept"
    );
    assert_eq!(counted_before["total"], 0, "{counted_before}");
    assert_eq!(
        usage().await,
        counted_before,
        "a reply never sent is not counted in the month's usage (decision 0130)"
    );
    w.h.server.shutdown().await;
}

/// A send through the public API to a person whose erasure is under way is refused with a
/// 409 that says why, and writes nothing (decision 0125): no message, and the person's
/// conversation as it was, so the send cannot bring back what the erasure is deleting. Once
/// the erasure has completed, the same send is accepted, a new conversation's first message.
#[tokio::test]
async fn an_api_send_to_a_person_being_erased_is_refused_and_keeps_nothing() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let chat = w
        .customer_writes(&text("wamid.ERASING.API", "please forget me", 60))
        .await;
    let created =
        w.h.admin(
            "POST",
            &format!("/admin/tenants/{tenant}/api-keys"),
            serde_json::json!({"name": "CRM bridge", "scope": "send"}),
        )
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    erasure_begins(&w, &tenant, &chat).await;
    w.drain().await;
    // Every item but the key's list entry, which records when the key was last used.
    let data = || async {
        let keys = format!("#{}", wappline::api_keys::LIST_SUFFIX);
        let mut items = w.h.all_items(Table::Data).await;
        items.retain(|i| !i.get_s("pk").is_some_and(|pk| pk.ends_with(&keys)));
        items
    };
    let data_before = data().await;
    let sent_before = w.graph.sent().len();
    let send = || async {
        let resp =
            w.h.http
                .post(format!("{}/v1/messages", w.h.base))
                .bearer_auth(&key)
                .header("Idempotency-Key", "erasing-1")
                .json(
                    &serde_json::json!({"channel": "whatsapp", "account_id": WA_NUMBER,
                    "to": PHONE, "text": "Your order has shipped"}),
                )
                .send()
                .await
                .unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (s, body) = send().await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "subject_being_erased", "{body}");
    w.drain().await;
    assert_eq!(
        w.graph.sent().len(),
        sent_before,
        "nothing sent to the person"
    );
    assert_eq!(
        data().await,
        data_before,
        "nothing written: no message, the conversation untouched"
    );

    // The erasure runs to its end; the business may then write to the number again.
    erase_contact(&w, &tenant).await;
    let (s, body) = send().await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["duplicate"], false, "{body}");
    w.h.server.shutdown().await;
}

/// What a stage left in the erased conversation after the erasure's own pass (an operator's
/// reply whose removal failed, written here directly) goes with the erasure's second pass,
/// one lease after it completed: its job comes back on the local server's queue (decision
/// 0137).
#[tokio::test]
async fn what_the_erasure_could_not_see_goes_with_its_second_pass() {
    let w = RelayWorld::start_with(|c| c.erasure_sweep_secs = Some(3)).await;
    let tenant = w.installed_tenant().await;
    let chat = w
        .customer_writes(&text("wamid.SWEPT", "please forget me", 60))
        .await;
    let done =
        w.h.erase_contact(&tenant, "whatsapp", WA_NUMBER, &format!("+{PHONE}"))
            .await;
    assert!(done["second_pass_at"].is_null(), "{done}");
    assert_eq!(stored_messages(&w).await, 0);
    let platform = w.h.server.platform();
    let conversations = wappline::conversation::Conversations::new(
        TenantId::parse(&tenant).unwrap(),
        platform.store.clone(),
        platform.envelope.clone(),
    );
    let left = wappline::conversation::NewMessage {
        provider_message_id: "bx:903:7200".into(),
        direction: wappline::conversation::Direction::Outbound,
        origin: wappline::conversation::Origin::Operator,
        content: wappline::meta::Content::Text {
            body: "We will call you tomorrow".into(),
        },
        at_ms: wappline::clock::now_millis(),
        reply_to: None,
        crm_im: None,
        template: None,
        written_with: Default::default(),
    };
    conversations
        .store_message(
            &wappline::meta::AccountRef::WhatsApp(
                wappline::ids::PhoneNumberId::parse(WA_NUMBER).unwrap(),
            ),
            &wappline::conversation::ConversationId::parse(&chat).unwrap(),
            left,
            90,
        )
        .await
        .unwrap();
    assert_eq!(stored_messages(&w).await, 1, "left behind");
    w.h.drain(platform::ERASURE, Duration::from_secs(30)).await;
    assert_eq!(stored_messages(&w).await, 0, "erased by the second pass");
    let status =
        w.h.admin_get(&format!(
            "/admin/tenants/{tenant}/erasure/contacts/{}",
            done["request_id"].as_str().unwrap()
        ))
        .await;
    assert!(status["second_pass_at"].is_i64(), "{status}");
    w.h.server.shutdown().await;
}
