//! The whole inbound relay on the local server, into a loopback fake of Bitrix24: signed
//! webhooks of every sample shape → inbound worker → CRM sync → `imconnector.send.messages`
//! on the tenant's portal, exactly once each, in conversation order; plus a portal that is
//! down and then up, rate limits, and an expired access token refreshed and stored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e_tests::fake_bitrix::{FailKind, FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{sample, samples, Harness, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::relay_world::RelayWorld;
use reqwest::StatusCode;
use serde_json::json;
use wappline::ids::TenantId;
use wappline::meta::{split_webhook, CustomerId, EventKind};
use wappline::queue::platform;
use wappline::tenant::{ChannelKind, ChannelRef};

const DRAIN: Duration = Duration::from_secs(30);
const LINE: u32 = 7;

async fn start(fake: &FakeBitrix) -> Harness {
    Harness::start(|c| {
        fake.wire_into(c);
        c.retry_base_ms = 50;
    })
    .await
}

async fn drain_all(h: &Harness) {
    for _ in 0..3 {
        h.drain(platform::INBOUND, DRAIN).await;
        h.drain(platform::SYNC, DRAIN).await;
    }
}

/// Customer messages (and echoes) of the samples for our accounts, as (ordering key, message
/// id) in delivery order. The ordering key is the customer identity the inbound queue orders
/// their events by: the phone when the event names one, else its id (decision 0097). Meta
/// names a customer by BSUID alone only when it withholds their phone (a username, no recent
/// conversation), so the samples' one BSUID-only message is ordered apart from her others.
fn expected_messages(samples: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, body) in samples {
        for event in split_webhook(body).unwrap().events {
            if event.account.id() != WA_NUMBER && event.account.id() != IG_ACCOUNT {
                continue;
            }
            let conversation = event
                .customer()
                .map(|c| {
                    let key = match &c.phone {
                        Some(phone) => CustomerId::WhatsAppPhone(phone.clone()).key(),
                        None => c.id.key(),
                    };
                    format!("{}:{key}", event.account.id())
                })
                .unwrap_or_default();
            match &event.kind {
                EventKind::CustomerMessage { message_id, .. }
                | EventKind::BusinessEcho { message_id, .. } => {
                    out.push((conversation, message_id.as_str().to_owned()))
                }
                EventKind::Postback { message_id, .. } => out.push((
                    conversation,
                    message_id
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or(event.provider_event_id.clone()),
                )),
                _ => {}
            }
        }
    }
    out
}

#[tokio::test]
async fn every_sample_reaches_the_portal_once_and_in_order() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    h.tenant_on_portal(&fake, LINE).await;
    let samples = samples();
    let want = expected_messages(&samples);
    assert!(want.len() >= 25);

    for round in 0..2 {
        for (name, body) in &samples {
            let (s, text) = h.post_signed(body).await;
            assert_eq!(s, StatusCode::OK, "round {round} {name}: {text}");
        }
        drain_all(&h).await;
    }

    let received = fake.messages_received();
    // Exactly once each (notes about reactions, edits and failures are extra, with their
    // own ids).
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for m in &received {
        *seen.entry(m.external_message_id.clone()).or_default() += 1;
    }
    for (_, id) in &want {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "message {id} reached the portal {:?} times",
            seen.get(id)
        );
    }
    // Every message on our line, with our connector per channel.
    for m in &received {
        assert_eq!(m.domain, FAKE_DOMAIN);
        assert_eq!(m.line, LINE.to_string());
        assert!(
            m.connector == "wappline_whatsapp" || m.connector == "wappline_instagram",
            "{}",
            m.connector
        );
        // Posted with text or files (the samples' media are not at the fake Graph API, so
        // the portal keeps none of their files: see fake_bitrix's files.rs).
        assert!(m.text.is_some() || m.raw["message"].get("files").is_some());
    }
    // In order within each conversation: the portal saw each customer's messages in the
    // order Meta delivered them.
    let position: BTreeMap<&str, usize> = received
        .iter()
        .enumerate()
        .map(|(i, m)| (m.external_message_id.as_str(), i))
        .collect();
    let mut by_conversation: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut firsts = BTreeSet::new();
    for (conversation, id) in &want {
        if firsts.insert(id.as_str()) {
            by_conversation
                .entry(conversation.as_str())
                .or_default()
                .push(position[id.as_str()]);
        }
    }
    for (conversation, positions) in by_conversation {
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "conversation {conversation} out of order: {positions:?}"
        );
    }
    // One customer, one chat (decision 0049), however the deliveries named her: by BSUID and
    // phone, by BSUID alone, or by her old phone alone in her changes of number and of BSUID,
    // which the inbound queue keeps behind her earlier messages (decisions 0063, 0097).
    let hers = [
        format!("{WA_NUMBER}:bsuid:US.13491208655302741918"),
        format!("{WA_NUMBER}:phone:16505551234"),
    ];
    // Her messages by the chat they reached, so a failure says which delivery went astray.
    let mut her_chats: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, id) in want.iter().filter(|(c, _)| hers.contains(c)) {
        her_chats
            .entry(received[position[id.as_str()]].external_chat_id.as_str())
            .or_default()
            .push(id.as_str());
    }
    assert_eq!(her_chats.len(), 1, "one customer in {her_chats:#?}");
    // One Bitrix24 chat per conversation: a customer's messages share the external chat id.
    let chats: BTreeSet<&str> = received
        .iter()
        .map(|m| m.external_chat_id.as_str())
        .collect();
    assert!(chats.len() >= 3);
    h.server.shutdown().await;
}

#[tokio::test]
async fn portal_down_then_up_delivers_once() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.fail_next(3, FailKind::Down);
    let (s, _) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    drain_all(&h).await;
    let calls = fake.calls_to("batch");
    assert_eq!(
        calls.len(),
        4,
        "three refused while down, then one delivered"
    );
    assert_eq!(fake.messages_received().len(), 1);
    h.server.shutdown().await;
}

#[tokio::test]
async fn rate_limits_are_retried_later_not_dropped() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.fail_next(2, FailKind::QueryLimit);
    let (s, _) = h.post_signed(&sample("instagram-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    drain_all(&h).await;
    assert_eq!(fake.calls_to("batch").len(), 3);
    assert_eq!(fake.messages_received().len(), 1);
    h.server.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_refreshed_stored_and_the_message_delivered() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    let tenant_id = h.tenant_on_portal(&fake, LINE).await;
    let old = fake.valid_tokens();
    // The connect's ownership proof refreshed once already (decision 0032).
    let refreshes = fake.oauth_requests().len();
    fake.expire_token();
    let (s, _) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    drain_all(&h).await;
    assert_eq!(fake.messages_received().len(), 1);
    assert_eq!(fake.oauth_requests().len(), refreshes + 1, "one refresh");
    // The new pair is what we now hold, encrypted; the old one is gone.
    let new = fake.valid_tokens();
    assert_ne!(new.access_token, old.access_token);
    let platform = h.server.platform();
    let scope = platform
        .tenants
        .scope(&TenantId::parse(&tenant_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let portal = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    let held = scope.channel_secret(&portal, "access_token").await.unwrap();
    assert_eq!(held.expose(), new.access_token);
    let held = scope
        .channel_secret(&portal, "refresh_token")
        .await
        .unwrap();
    assert_eq!(held.expose(), new.refresh_token);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_revoked_portal_is_not_hammered() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.expire_token();
    fake.revoke_refresh_token();
    let (s, _) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    // The job fails for good on each delivery and ends in the dead-letter queue after the
    // queue's receive limit; it is never delivered, and each delivery makes one attempt.
    h.drain(platform::INBOUND, DRAIN).await;
    assert!(fake.messages_received().is_empty());
    let attempts = fake.calls_to("batch").len();
    assert!(attempts <= 1, "{attempts} calls with a dead token");
    h.server.shutdown().await;
}

/// A sample with its JSON changed by `edit`.
fn edited_sample(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&sample(name)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn first_message(v: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut v["entry"][0]["changes"][0]["value"]["messages"][0]
}

#[tokio::test]
async fn reactions_edits_and_deletions_follow_the_message_into_the_portal() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;
    h.tenant_on_portal(&fake, LINE).await;
    let text = sample("whatsapp-text.json");
    let text_id = {
        let mut v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        first_message(&mut v)["id"].as_str().unwrap().to_owned()
    };
    let react = edited_sample("whatsapp-reaction.json", |v| {
        first_message(v)["reaction"]["message_id"] = json!(text_id);
    });
    let unreact = edited_sample("whatsapp-unreact.json", |v| {
        first_message(v)["reaction"]["message_id"] = json!(text_id);
    });
    let edit = edited_sample("whatsapp-edit.json", |v| {
        first_message(v)["edit"]["original_message_id"] = json!(text_id);
    });
    let revoke = edited_sample("whatsapp-revoke.json", |v| {
        first_message(v)["revoke"]["original_message_id"] = json!(text_id);
    });
    for body in [&text, &react, &unreact, &edit, &revoke] {
        let (s, t) = h.post_signed(body).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        drain_all(&h).await;
    }

    let sent = fake.messages_received();
    assert_eq!(sent.len(), 3, "the message and two reaction notes");
    assert_eq!(sent[0].external_message_id, text_id);
    let note_react = sent[1].text.clone().unwrap_or_default();
    assert!(note_react.contains("reaction 👍"), "{note_react}");
    assert!(
        note_react.contains("blue sneakers"),
        "the note quotes the message: {note_react}"
    );
    let note_unreact = sent[2].text.clone().unwrap_or_default();
    assert!(note_unreact.contains("reaction removed"), "{note_unreact}");
    assert_ne!(sent[1].external_message_id, sent[2].external_message_id);
    // All in the same chat as the message.
    assert!(sent
        .iter()
        .all(|m| m.external_chat_id == sent[0].external_chat_id));

    let updates = fake.calls_to("imconnector.update.messages");
    assert_eq!(updates.len(), 1);
    let updated = &updates[0].params["MESSAGES"][0];
    assert_eq!(updated["message"]["id"], json!(text_id));
    assert_eq!(updated["message"]["text"], json!("This one, in blue"));
    assert_eq!(updated["chat"]["id"], json!(sent[0].external_chat_id));

    let deletes = fake.calls_to("imconnector.delete.messages");
    assert_eq!(deletes.len(), 1);
    let deleted = &deletes[0].params["MESSAGES"][0];
    assert_eq!(deleted["message"]["id"], json!(text_id));
    assert_eq!(deleted["user"]["id"], json!(sent[0].external_user_id));
    h.server.shutdown().await;
}

#[tokio::test]
async fn media_reaches_the_portal_as_a_signed_link_that_serves_the_file() {
    // The relay world knows the WhatsApp token of the harness's tenant.
    let RelayWorld {
        h,
        bitrix: fake,
        graph,
    } = RelayWorld::start_with(|c| c.retry_base_ms = 50).await;
    h.tenant_on_portal(&fake, LINE).await;
    // The sample's image, as the Graph API holds it for the number.
    let jpeg = b"\xff\xd8\xff\xe0 fake jpeg bytes";
    graph.add_media("1106677706454703", WA_NUMBER, "image/jpeg", jpeg);

    let (s, _) = h.post_signed(&sample("whatsapp-image.json")).await;
    assert_eq!(s, StatusCode::OK);
    drain_all(&h).await;
    let received = fake.messages_received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].text.as_deref(), Some("This one, in red"));
    let url = received[0].files[0]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/media/", h.base)), "{url}");

    // Bitrix24 downloads it: the bytes come from the Graph API through our proxy.
    let resp = h.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), jpeg);
    // A forged link is refused.
    // One character changed inside the signature (the last one may carry only padding bits).
    let at = url.len() - 5;
    let swap = if &url[at..=at] == "x" { "y" } else { "x" };
    let forged = format!("{}{swap}{}", &url[..at], &url[at + 1..]);
    assert_eq!(
        h.http.get(&forged).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Nothing of the file is stored by us.
    for table in wappline::store::Table::ALL {
        for item in h.all_items(table).await {
            assert!(!item
                .0
                .values()
                .any(|v| e2e_tests::harness::contains_bytes(v, b"fake jpeg bytes")));
        }
    }
    h.server.shutdown().await;
}

/// A tenant on the fake's portal (quick retries) whose customer's sample WhatsApp image Meta
/// no longer has: our link answers an error when Bitrix24 downloads it.
async fn image_gone_at_meta() -> RelayWorld {
    let w = RelayWorld::start_with(|c| c.retry_base_ms = 50).await;
    w.h.tenant_on_portal(&w.bitrix, LINE).await;
    w.graph.add_media(
        "1106677706454703",
        WA_NUMBER,
        "image/jpeg",
        b"\xff\xd8 jpeg",
    );
    w.graph.set_gone("1106677706454703");
    w
}

#[tokio::test]
async fn a_file_the_portal_cannot_download_leaves_the_message_text_without_it() {
    let RelayWorld {
        h,
        bitrix: fake,
        graph: _graph,
    } = image_gone_at_meta().await;

    let (s, _) = h.post_signed(&sample("whatsapp-image.json")).await;
    assert_eq!(s, StatusCode::OK);
    drain_all(&h).await;
    let downloads = fake.file_downloads();
    assert_eq!(downloads.len(), 1, "one download, while the call ran");
    assert!(
        !downloads[0].status.is_some_and(|s| (200..300).contains(&s)),
        "{:?}",
        downloads[0].status
    );
    // As imconnector-send-messages.md's example answers a file it did not store: the
    // message and its text are kept, the file is not, and the post is not repeated.
    let received = fake.messages_received();
    assert_eq!(received.len(), 2, "the message and the note: {received:?}");
    assert_eq!(received[0].text.as_deref(), Some("This one, in red"));
    assert!(received[0].files.is_empty(), "{:?}", received[0].files);
    // The operator is told, in the same chat, once: the file's kind, no content, no number
    // (decision 0066).
    assert_missing_file_note(&received[1], &received[0]);
    assert_eq!(fake.calls_to("imconnector.send.messages").len(), 2);

    // The fake's answer lists only the files it stored.
    let tokens = fake.valid_tokens_for(FAKE_DOMAIN);
    let answer: serde_json::Value = h
        .http
        .post(format!(
            "{}/{FAKE_DOMAIN}/rest/imconnector.send.messages",
            fake.base_url()
        ))
        .json(&json!({
            "auth": tokens.access_token,
            "CONNECTOR": "wappline_whatsapp",
            "LINE": 7,
            "MESSAGES": [{
                "user": {"id": "ext-user-42", "name": "Ivan"},
                "message": {"id": "ext-msg-1001", "date": 1773265993, "text": "Good afternoon",
                    "files": [{"url": format!("{}/media/gone", h.base), "name": "spec.pdf"}]},
                "chat": {"id": "channel-123"}
            }]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = &answer["result"]["DATA"]["RESULT"][0];
    assert_eq!(result["SUCCESS"], true, "{answer}");
    assert_eq!(result["message"]["text"], "Good afternoon");
    assert_eq!(result["message"]["files"], json!([]), "{answer}");
    h.server.shutdown().await;
}

/// `note` is the note of one missing image of the customer's message `post`, in its chat.
fn assert_missing_file_note(
    note: &e2e_tests::fake_bitrix::ReceivedMessage,
    post: &e2e_tests::fake_bitrix::ReceivedMessage,
) {
    assert_eq!(
        note.text.as_deref(),
        Some("[the customer sent 1 file(s) that Bitrix24 could not download: image]"),
        "{note:?}"
    );
    assert!(note.files.is_empty());
    assert!(
        note.external_message_id.starts_with("note.files."),
        "{note:?}"
    );
    assert_eq!(note.external_chat_id, post.external_chat_id);
    assert_eq!(note.chat_id, post.chat_id);
    assert_eq!(note.raw["message"]["disable_crm"], "Y", "{:?}", note.raw);
}

#[tokio::test]
async fn the_note_of_a_missing_file_is_posted_once_when_its_answer_is_lost() {
    let RelayWorld {
        h,
        bitrix: fake,
        graph: _graph,
    } = image_gone_at_meta().await;
    // The customer's post is answered; the note's answer is lost after the portal ran it,
    // so the job fails ambiguously and is delivered again.
    fake.lose_answers(FAKE_DOMAIN, 2);

    let (s, _) = h.post_signed(&sample("whatsapp-image.json")).await;
    assert_eq!(s, StatusCode::OK);
    drain_all(&h).await;
    assert_eq!(fake.lost_answer_count(), 1);
    let received = fake.messages_received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_missing_file_note(&received[1], &received[0]);
    // The retry found the note in the chat (decision 0023) instead of posting it again,
    // and did not post the customer's message again either.
    assert_eq!(
        fake.posts_of(FAKE_DOMAIN, &received[1].external_message_id),
        1
    );
    assert_eq!(
        fake.posts_of(FAKE_DOMAIN, &received[0].external_message_id),
        1
    );
    assert_eq!(fake.duplicate_posts(), 0);
    assert!(
        fake.batch_commands()
            .iter()
            .any(|c| c.method == "im.dialog.messages.get"),
        "the note was looked up"
    );
    h.server.shutdown().await;
}
