//! Conversations and messages on real adapters: stored once, statuses only forward, the
//! customer's last inbound time only forward, content only encrypted, tenants apart.

use std::sync::Arc;
use wappline::clock::now_secs;
use wappline::conversation::{
    ConversationId, Conversations, Direction, MessageStatus, NewMessage, Origin, PushHold,
    HOLD_ON_MESSAGE_MAX_BYTES,
};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppUserId};
use wappline::store::{AttrValue, Key, Table, Update, TTL_ATTR};

use crate::backends::Backend;
use crate::on_both_backends;

fn conversations(b: &Backend, tenant: &TenantId) -> Conversations {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    Conversations::new(tenant.clone(), b.store.clone(), envelope)
}

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn customer(name: Option<&str>) -> CustomerRef {
    let mut c = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse("US.13491208655302741918").unwrap(),
    ));
    c.name = name.map(str::to_owned);
    c
}

fn text(id: &str, body: &str, at_ms: i64) -> NewMessage {
    NewMessage {
        provider_message_id: id.into(),
        direction: Direction::Inbound,
        origin: Origin::Customer,
        content: Content::Text { body: body.into() },
        at_ms,
        reply_to: None,
        crm_im: None,
        template: None,
        written_with: Default::default(),
    }
}

async fn messages_are_stored_once_and_encrypted(b: Backend) {
    let t = TenantId::generate();
    let c = conversations(&b, &t);
    let conv = c
        .record_customer(&account(), &customer(Some("Sheena Nelson")), Some(100), 30)
        .await
        .unwrap();
    let (first, new) = c
        .store_message(
            &account(),
            &conv,
            text("wamid.1", "my secret address is 5 Elm St", 100_000),
            30,
        )
        .await
        .unwrap();
    assert!(new);
    // The same provider id again (a redelivery), even with another time: same place, not new.
    let (again, new) = c
        .store_message(
            &account(),
            &conv,
            text("wamid.1", "my secret address is 5 Elm St", 200_000),
            30,
        )
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again, first);
    let (messages, next) = c.messages(&conv, None, 100).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert!(next.is_none());
    assert_eq!(
        messages[0].content,
        Some(Content::Text {
            body: "my secret address is 5 Elm St".into()
        })
    );
    assert_eq!(
        c.find_message(&account(), "wamid.1").await.unwrap(),
        Some(first.clone())
    );
    // Raw items: no plaintext content, name or user id; TTL from retention.
    let mut next = None;
    loop {
        let page = b.store.scan(Table::Data, next.as_ref(), 100).await.unwrap();
        for item in &page.items {
            let raw = format!("{:?}", item.0);
            for secret in ["5 Elm St", "Sheena", "13491208655302741918"] {
                assert!(!raw.contains(secret), "{secret} in plaintext: {raw}");
            }
            let ttl = item.get_n("expires_at").expect("TTL on every item");
            let days = (ttl - wappline::clock::now_secs()) / 86_400;
            // The list entry (the conversation's id, when it began) is given a day more than
            // its conversation, so most messages need not write it (decision 0105).
            let listed = item.key().is_some_and(|k| k.pk == t.sub_partition("CONVS"));
            let kept = if listed { 30..=31 } else { 29..=30 };
            assert!(kept.contains(&days), "{days} days");
        }
        match page.next {
            Some(k) => next = Some(k),
            None => break,
        }
    }
}

async fn statuses_and_last_inbound_only_move_forward(b: Backend) {
    let t = TenantId::generate();
    let c = conversations(&b, &t);
    let conv = c
        .record_customer(&account(), &customer(None), Some(1_000), 90)
        .await
        .unwrap();
    // An older inbound time (events out of order) does not move the window back.
    c.record_customer(&account(), &customer(Some("Sheena")), Some(500), 90)
        .await
        .unwrap();
    let meta = c.meta(&conv).await.unwrap().unwrap();
    assert_eq!(meta.last_inbound_at, Some(1_000));
    assert_eq!(
        meta.customer.name.as_deref(),
        Some("Sheena"),
        "details merged"
    );
    // A status without a name keeps the name.
    c.record_customer(&account(), &customer(None), None, 90)
        .await
        .unwrap();
    assert_eq!(
        c.meta(&conv)
            .await
            .unwrap()
            .unwrap()
            .customer
            .name
            .as_deref(),
        Some("Sheena")
    );

    let (at, _) = c
        .store_message(&account(), &conv, text("wamid.out", "hello", 2_000_000), 90)
        .await
        .unwrap();
    assert!(c
        .advance_status(&at, MessageStatus::Sent, "job-sent")
        .await
        .unwrap());
    assert!(c
        .advance_status(&at, MessageStatus::Read, "job-read")
        .await
        .unwrap());
    // Late "delivered" and "sent" never overwrite "read"; a repeat is not a move.
    for (status, job) in [
        (MessageStatus::Delivered, "job-delivered"),
        (MessageStatus::Sent, "job-sent"),
        (MessageStatus::Read, "job-read-again"),
        (MessageStatus::Failed, "job-failed"),
    ] {
        assert!(!c.advance_status(&at, status, job).await.unwrap(), "{job}");
    }
    // The retry of the job that moved it moves it again: that job may not be queued yet.
    assert!(c
        .advance_status(&at, MessageStatus::Read, "job-read")
        .await
        .unwrap());
    let m = c.message(&at).await.unwrap().unwrap();
    assert_eq!(m.status, Some(MessageStatus::Read));
}

async fn deletion_erases_content_and_reactions_come_and_go(b: Backend) {
    let t = TenantId::generate();
    let c = conversations(&b, &t);
    let conv = c
        .record_customer(&account(), &customer(None), Some(1), 90)
        .await
        .unwrap();
    let (at, _) = c
        .store_message(
            &account(),
            &conv,
            text("wamid.2", "to be deleted", 1_000),
            90,
        )
        .await
        .unwrap();
    assert!(c.set_reaction(&at, Some("👍")).await.unwrap());
    assert_eq!(
        c.message(&at).await.unwrap().unwrap().reaction.as_deref(),
        Some("👍")
    );
    assert!(c.set_reaction(&at, None).await.unwrap());
    assert_eq!(c.message(&at).await.unwrap().unwrap().reaction, None);
    assert!(c.mark_deleted(&at).await.unwrap());
    let m = c.message(&at).await.unwrap().unwrap();
    assert!(m.deleted);
    assert_eq!(m.content, None);
    let raw = b
        .store
        .get(
            Table::Data,
            &wappline::store::Key::new(c.partition(&conv), at.sk.clone()),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw.get("content").is_none(),
        "content removed, not just flagged"
    );
    assert!(matches!(raw.get("deleted"), Some(AttrValue::Bool(true))));
}

async fn tenants_never_see_each_others_conversations(b: Backend) {
    let (t1, t2) = (TenantId::generate(), TenantId::generate());
    let (c1, c2) = (conversations(&b, &t1), conversations(&b, &t2));
    let conv1 = c1
        .record_customer(&account(), &customer(None), Some(1), 90)
        .await
        .unwrap();
    c1.store_message(
        &account(),
        &conv1,
        text("wamid.3", "tenant one only", 1_000),
        90,
    )
    .await
    .unwrap();
    // The same customer on the same account id is another conversation for another tenant.
    let conv2 = c2
        .record_customer(&account(), &customer(None), Some(1), 90)
        .await
        .unwrap();
    assert_ne!(conv1, conv2);
    assert_eq!(c2.meta(&conv1).await.unwrap(), None);
    assert_eq!(c2.find_message(&account(), "wamid.3").await.unwrap(), None);
    let (msgs, _) = c2.messages(&conv1, None, 10).await.unwrap();
    assert!(msgs.is_empty());
}

/// The conversation id is Bitrix24's chat id and appears in logs (issue 13): it must not be
/// computable from what an outsider knows (tenant id, account, phone number), only with the
/// tenant's key. It is stable for the tenant (erasure and exports find the conversation by
/// recomputing it), and once the tenant's keys are shredded the same person gets an id that
/// cannot be linked to the old one.
async fn conversation_ids_are_keyed_by_the_tenants_secret(b: Backend) {
    let tenant = TenantId::generate();
    let envelope =
        |b: &Backend| Envelope::new(b.store.clone(), b.vault.clone(), CachePolicy::default());
    let id = |e: Envelope| {
        let tenant = tenant.clone();
        async move {
            ConversationId::derive(&e, &tenant, &account(), &customer(None).id)
                .await
                .unwrap()
        }
    };
    let first = id(envelope(&b)).await;
    // Another process with the same store and key vault derives the same id.
    assert_eq!(id(envelope(&b)).await, first);
    assert_eq!(
        conversations(&b, &tenant)
            .record_customer(&account(), &customer(None), Some(1), 90)
            .await
            .unwrap(),
        first
    );
    // The same tenant id, account and customer under another deployment's keys: another id,
    // so nothing outside the tenant's key (an unkeyed hash would be equal here) gives it.
    let elsewhere = crate::backends::embedded().await;
    assert_ne!(id(envelope(&elsewhere)).await, first);
    // Shredding the tenant's keys unlinks the person: a new key gives a new id.
    let shredder = envelope(&b);
    assert!(shredder.shred(&tenant).await.unwrap() >= 1);
    assert_ne!(id(shredder).await, first);
}

/// The conversation list's entry is what the retention re-stamp, the export and the erasures
/// find a conversation by: it must never expire before its conversation. It is given a day
/// more than its conversation when written, and written again only when the conversation's
/// expiry passes its own (decision 0105): a conversation's next message spares the write, and
/// an entry left shorter (as the retention re-stamp leaves it) is pushed past it again.
async fn the_list_entry_is_written_only_when_its_conversation_outgrows_it(b: Backend) {
    let t = TenantId::generate();
    let c = conversations(&b, &t);
    let conv = c
        .record_customer(&account(), &customer(Some("Ann")), Some(100), 30)
        .await
        .unwrap();
    let meta_key = Key::new(t.sub_partition(&format!("CONV#{conv}")), "META");
    let list_key = Key::new(t.sub_partition("CONVS"), conv.as_str());
    let ttl = |key: Key| {
        let store = b.store.clone();
        async move {
            store
                .get(Table::Data, &key)
                .await
                .unwrap()
                .and_then(|i| i.get_n(TTL_ATTR))
                .expect("an expiry")
        }
    };
    let conversation_expires = ttl(meta_key.clone()).await;
    assert!(ttl(list_key.clone()).await >= conversation_expires + 86_400 - 5);

    // Still past the conversation's expiry: the next message leaves the entry alone.
    let unwritten = conversation_expires + 3_600;
    let set_list = |until: i64| {
        let (store, key) = (b.store.clone(), list_key.clone());
        async move {
            store
                .update(Table::Data, &key, Update::new().set(TTL_ATTR, until), None)
                .await
                .unwrap();
        }
    };
    set_list(unwritten).await;
    c.record_customer(&account(), &customer(Some("Ann")), Some(200), 30)
        .await
        .unwrap();
    assert_eq!(ttl(list_key.clone()).await, unwritten);

    // Shorter than the conversation (a re-stamp to a shorter retention, then a message under
    // the longer one): written again, a day past the conversation.
    set_list(now_secs() + 86_400).await;
    c.record_customer(&account(), &customer(Some("Ann")), Some(300), 30)
        .await
        .unwrap();
    let conversation_expires = ttl(meta_key.clone()).await;
    assert!(ttl(list_key.clone()).await >= conversation_expires + 86_400 - 5);

    // Gone while the conversation is not (a crash between the two writes of an older
    // version): written again, with when it began.
    b.store.delete(Table::Data, &list_key, None).await.unwrap();
    c.record_customer(&account(), &customer(Some("Ann")), Some(400), 30)
        .await
        .unwrap();
    let entry = b
        .store
        .get(Table::Data, &list_key)
        .await
        .unwrap()
        .expect("listed again");
    assert!(entry.get_n(TTL_ATTR).unwrap() >= ttl(meta_key).await + 86_400 - 5);
    assert!(entry.get_n("created_at").is_some());
}

/// A message's push held on its own item (decision 0105): one live hold at a time, taken over
/// once its lease ran out; the push recorded only by the delivery still holding it; never on a
/// message already pushed, nor on one that is gone (no item is created for it).
async fn a_messages_push_is_held_and_recorded_on_its_item(b: Backend) {
    let t = TenantId::generate();
    let c = conversations(&b, &t);
    let conv = c
        .record_customer(&account(), &customer(None), Some(100), 30)
        .await
        .unwrap();
    let (at, _) = c
        .store_message(&account(), &conv, text("wamid.push", "hi", 100_000), 30)
        .await
        .unwrap();
    let now = now_secs();
    let (message, bytes) = c.message_sized(&at).await.unwrap().unwrap();
    assert!(message.crm_message_ids.is_empty());
    assert!(bytes <= HOLD_ON_MESSAGE_MAX_BYTES, "{bytes} bytes");

    assert_eq!(
        c.hold_push(&at, "a", now, 180).await.unwrap(),
        PushHold::Held
    );
    // A second delivery while the lease runs: told when to come back.
    assert!(matches!(
        c.hold_push(&at, "b", now + 10, 180).await.unwrap(),
        PushHold::Busy { retry_after } if retry_after.as_secs() == 170
    ));
    // Once the lease ran out, the second delivery takes it over; the first records nothing.
    assert_eq!(
        c.hold_push(&at, "b", now + 181, 180).await.unwrap(),
        PushHold::Held
    );
    assert!(!c.record_pushed_held(&at, &["x".into()], "a").await.unwrap());
    assert!(c
        .message(&at)
        .await
        .unwrap()
        .unwrap()
        .crm_message_ids
        .is_empty());
    // The first's release leaves the second's hold alone.
    c.release_push(&at, "a").await;
    assert!(matches!(
        c.hold_push(&at, "c", now + 182, 180).await.unwrap(),
        PushHold::Busy { .. }
    ));
    assert!(c
        .record_pushed_held(&at, &["crm-1".into()], "b")
        .await
        .unwrap());
    assert_eq!(
        c.message(&at).await.unwrap().unwrap().crm_message_ids,
        vec!["crm-1".to_owned()]
    );
    // Pushed: never held again, whatever the lease says.
    assert_eq!(
        c.hold_push(&at, "d", now + 10_000, 180).await.unwrap(),
        PushHold::Pushed
    );

    // A released hold is free at once.
    let (other, _) = c
        .store_message(&account(), &conv, text("wamid.push2", "hi", 100_001), 30)
        .await
        .unwrap();
    assert_eq!(
        c.hold_push(&other, "a", now, 180).await.unwrap(),
        PushHold::Held
    );
    c.release_push(&other, "a").await;
    assert_eq!(
        c.hold_push(&other, "b", now, 180).await.unwrap(),
        PushHold::Held
    );

    // Gone: no hold, and no item made for it.
    let gone = wappline::conversation::MessageRef {
        conversation: conv.clone(),
        sk: "MSG#0000000000001#0000000000000000".into(),
    };
    assert_eq!(
        c.hold_push(&gone, "a", now, 180).await.unwrap(),
        PushHold::Gone
    );
    assert!(!c
        .record_pushed_held(&gone, &["x".into()], "a")
        .await
        .unwrap());
    c.release_push(&gone, "a").await;
    assert_eq!(c.message_sized(&gone).await.unwrap(), None);
}

on_both_backends!(
    a_messages_push_is_held_and_recorded_on_its_item,
    the_list_entry_is_written_only_when_its_conversation_outgrows_it,
    conversation_ids_are_keyed_by_the_tenants_secret,
    messages_are_stored_once_and_encrypted,
    statuses_and_last_inbound_only_move_forward,
    deletion_erases_content_and_reactions_come_and_go,
    tenants_never_see_each_others_conversations,
);
