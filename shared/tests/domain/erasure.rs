//! Contact erasure on real adapters: everything of the customer on that account goes (messages,
//! index items, conversation, list entry, derivable idempotency records), nothing of anyone
//! else; a request by phone finds a conversation keyed by the business-scoped user id; running
//! the job again is harmless.

use std::sync::Arc;

use wappline::conversation::{Conversations, Direction, NewMessage, Origin};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::erasure::{ContactErasure, ErasureJob};
use wappline::faults::hooked::{HookedStore, StoreCall, Verdict};
use wappline::idempotency::Idempotency;
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::store::{Item, StoreError, Table};

use crate::backends::Backend;
use crate::on_both_backends;

pub(crate) fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

pub(crate) fn customer(user: &str, phone: &str) -> CustomerRef {
    let mut c = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse(user).unwrap(),
    ));
    c.phone = Some(WhatsAppPhone::parse(phone).unwrap());
    c
}

pub(crate) fn text(id: &str, body: &str, at_ms: i64, direction: Direction) -> NewMessage {
    NewMessage {
        provider_message_id: id.into(),
        direction,
        origin: if direction == Direction::Inbound {
            Origin::Customer
        } else {
            Origin::Operator
        },
        content: Content::Text { body: body.into() },
        at_ms,
        reply_to: None,
        crm_im: None,
        template: None,
        written_with: Default::default(),
    }
}

pub(crate) async fn everything(b: &Backend) -> Vec<(Table, Item)> {
    let mut out = Vec::new();
    for table in Table::ALL {
        let mut next = None;
        loop {
            let page = b.store.scan(table, next.as_ref(), 100).await.unwrap();
            out.extend(page.items.into_iter().map(|i| (table, i)));
            match page.next {
                Some(k) => next = Some(k),
                None => break,
            }
        }
    }
    out
}

async fn contact_erasure_removes_only_that_customer(b: Backend) {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let (t, other_tenant) = (TenantId::generate(), TenantId::generate());
    let c = Conversations::new(t.clone(), b.store.clone(), envelope.clone());
    let c_other = Conversations::new(other_tenant.clone(), b.store.clone(), envelope.clone());
    let alice = customer("US.111111111111111111", "16505550001");
    let bob = customer("US.222222222222222222", "16505550002");

    let conv_a = c
        .record_customer(&account(), &alice, Some(1), 90)
        .await
        .unwrap();
    let (a1, _) = c
        .store_message(
            &account(),
            &conv_a,
            text("wamid.A1", "alice secret one", 1_000, Direction::Inbound),
            90,
        )
        .await
        .unwrap();
    let (a2, _) = c
        .store_message(
            &account(),
            &conv_a,
            text("b24:1:2", "reply to alice", 2_000, Direction::Outbound),
            90,
        )
        .await
        .unwrap();
    c.record_provider_id(&account(), &a2, "wamid.A2", 90)
        .await
        .unwrap();
    let conv_b = c
        .record_customer(&account(), &bob, Some(1), 90)
        .await
        .unwrap();
    c.store_message(
        &account(),
        &conv_b,
        text("wamid.B1", "bob keeps this", 1_000, Direction::Inbound),
        90,
    )
    .await
    .unwrap();
    let conv_other = c_other
        .record_customer(&account(), &alice, Some(1), 90)
        .await
        .unwrap();
    c_other
        .store_message(
            &account(),
            &conv_other,
            text(
                "wamid.A1",
                "other tenant keeps this",
                1_000,
                Direction::Inbound,
            ),
            90,
        )
        .await
        .unwrap();
    // The inbound idempotency record of Alice's message, as the worker writes it.
    let inbound = Idempotency::new(b.store.clone(), "IN", platform::VISIBILITY);
    let idem_key = "wa:106540352242922:wa:msg:wamid.A1";
    if let wappline::idempotency::Begin::Started(held) = inbound.begin(&t, idem_key).await.unwrap()
    {
        inbound.complete(&held).await.unwrap();
    }
    let _ = a1;

    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    let erasure = ContactErasure::new(b.store.clone(), envelope.clone(), Arc::new(queue.clone()));
    // Asked by phone number: the conversation is keyed by the user id, found anyway.
    let request = erasure
        .request(
            &t,
            account(),
            CustomerId::WhatsAppPhone(WhatsAppPhone::parse("+16505550001").unwrap()),
            "platform_admin",
        )
        .await
        .unwrap();
    let queued = queue
        .receive(
            &platform::name(platform::ERASURE),
            10,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    let job: ErasureJob = serde_json::from_str(&queued[0].body).unwrap();
    assert_eq!(
        job,
        ErasureJob::Contact {
            tenant_id: t.clone(),
            request_id: request.clone()
        }
    );
    assert_eq!(erasure.status(&t, &request).await.unwrap().state, "pending");

    erasure.process(&t, &request).await.unwrap();
    erasure.process(&t, &request).await.unwrap();

    let status = erasure.status(&t, &request).await.unwrap();
    assert_eq!(status.state, "completed");
    assert_eq!(status.conversations_erased, Some(1));
    assert!(status.completed_at.is_some());

    let conv_a_pk = c.partition(&conv_a);
    let all = everything(&b).await;
    for (table, item) in &all {
        let pk = item.get_s("pk").unwrap_or_default();
        assert_ne!(
            pk, conv_a_pk,
            "an item of the erased conversation remains in {table}"
        );
        assert_ne!(
            item.get_s("sk"),
            Some(conv_a.as_str()),
            "list entry remains in {table}"
        );
        assert_ne!(
            item.get_s("conversation"),
            Some(conv_a.as_str()),
            "index item remains"
        );
        if item
            .get_s("pk")
            .unwrap_or_default()
            .starts_with(&t.sub_partition("ERASURE"))
        {
            assert!(
                item.get("subject").is_none(),
                "the request keeps no subject"
            );
        }
    }
    assert!(c
        .find_message(&account(), "wamid.A1")
        .await
        .unwrap()
        .is_none());
    assert!(c
        .find_message(&account(), "wamid.A2")
        .await
        .unwrap()
        .is_none());
    assert!(b
        .store
        .get(Table::Dedupe, &inbound.key_for(&t, idem_key))
        .await
        .unwrap()
        .is_none());
    // Bob and the other tenant are untouched.
    assert!(c.meta(&conv_b).await.unwrap().is_some());
    assert!(c
        .find_message(&account(), "wamid.B1")
        .await
        .unwrap()
        .is_some());
    assert!(c_other.meta(&conv_other).await.unwrap().is_some());
    assert!(c_other
        .find_message(&account(), "wamid.A1")
        .await
        .unwrap()
        .is_some());
}

async fn tenant_erasure_after_grace_removes_everything_and_shreds_keys(b: Backend) {
    use std::collections::BTreeMap;
    use std::time::Duration;
    use wappline::app::Platform;
    use wappline::crypto::FieldRef;
    use wappline::erasure::tenant::TenantErasure;
    use wappline::tenant::{
        ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName,
    };

    let p = Platform::new(b.store.clone(), b.vault.clone());
    let create = |name: &'static str| {
        let p = p.clone();
        async move {
            p.tenants
                .create(TenantName::parse(name).unwrap(), RetentionDays::default())
                .await
                .unwrap()
                .id
        }
    };
    let (gone, stays) = (create("Leaving").await, create("Staying").await);
    let number = ChannelRef::parse(ChannelKind::WhatsApp, "106540352242922").unwrap();
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "access_token",
        Secret::parse("t", "EAAleavingTOKEN").unwrap(),
    );
    let scope = p.tenants.scope(&gone).await.unwrap().unwrap();
    scope
        .connect(Connection {
            channel: number.clone(),
            details: BTreeMap::new(),
            secrets,
            authorized_by: None,
        })
        .await
        .unwrap();
    let c = Conversations::new(gone.clone(), b.store.clone(), p.envelope.clone());
    let conv = c
        .record_customer(
            &account(),
            &customer("US.333333333333333333", "16505550003"),
            Some(1),
            90,
        )
        .await
        .unwrap();
    c.store_message(
        &account(),
        &conv,
        text(
            "wamid.G1",
            "leaving tenant secret",
            1_000,
            Direction::Inbound,
        ),
        90,
    )
    .await
    .unwrap();
    let c_stays = Conversations::new(stays.clone(), b.store.clone(), p.envelope.clone());
    let conv_s = c_stays
        .record_customer(
            &account(),
            &customer("US.444444444444444444", "16505550004"),
            Some(1),
            90,
        )
        .await
        .unwrap();
    c_stays
        .store_message(
            &account(),
            &conv_s,
            text(
                "wamid.S1",
                "staying tenant keeps this",
                1_000,
                Direction::Inbound,
            ),
            90,
        )
        .await
        .unwrap();
    // A ciphertext of the leaving tenant saved elsewhere (think: a backup).
    let backup_key = wappline::store::Key::new(gone.sub_partition("X"), "Y");
    let backup = p
        .envelope
        .encrypt(
            FieldRef::new(&gone, Table::Data, &backup_key, "body"),
            b"backed up",
        )
        .await
        .unwrap();

    let erasure = TenantErasure::new(b.store.clone(), p.envelope.clone(), p.tenants.clone());
    let status = erasure
        .request(&gone, Duration::from_secs(3600), "platform_admin")
        .await
        .unwrap();
    assert_eq!(status.state, "pending");
    // Inside the grace period nothing happens, and the owner can cancel.
    let report = erasure.run_due(1000).await.unwrap();
    assert_eq!(report.tenants_completed, 0);
    assert!(c.meta(&conv).await.unwrap().is_some());
    erasure.cancel(&gone, "owner").await.unwrap();
    assert_eq!(
        erasure.status(&gone).await.unwrap().unwrap().state,
        "cancelled"
    );
    // Requested again with no grace: due now. A tiny budget stops part-way; runs resume.
    erasure
        .request(&gone, Duration::ZERO, "platform_admin")
        .await
        .unwrap();
    let mut runs = 0;
    loop {
        runs += 1;
        let report = erasure.run_due(2).await.unwrap();
        if !report.more_work {
            break;
        }
        assert!(runs < 500, "the sweep does not finish");
    }
    assert!(runs > 1, "the budget should have split the work");
    assert_eq!(
        erasure.status(&gone).await.unwrap().unwrap().state,
        "completed"
    );

    // Nothing of the tenant is left in any table but the platform's record of the erasure.
    let all = everything(&b).await;
    for (table, item) in &all {
        let pk = item.get_s("pk").unwrap_or_default();
        assert!(!gone.owns_partition(pk), "{table} still holds {pk}");
        if item.get_s("tenant_id") == Some(gone.as_str()) {
            assert_eq!(
                pk,
                format!("TERASE#{gone}"),
                "{table} still names the tenant in {pk}"
            );
        }
    }
    // Its number is free for another tenant; the staying tenant is intact.
    assert_eq!(p.tenants.resolve(&number).await.unwrap(), None);
    assert!(p.tenants.scope(&gone).await.unwrap().is_none());
    assert!(c_stays
        .find_message(&account(), "wamid.S1")
        .await
        .unwrap()
        .is_some());
    // The saved ciphertext can no longer be decrypted, by any process.
    let fresh = Envelope::new(b.store.clone(), b.vault.clone(), CachePolicy::default());
    assert!(fresh
        .decrypt(
            FieldRef::new(&gone, Table::Data, &backup_key, "body"),
            &backup
        )
        .await
        .is_err());
    assert!(p
        .envelope
        .decrypt(
            FieldRef::new(&gone, Table::Data, &backup_key, "body"),
            &backup
        )
        .await
        .is_err());
}

/// A new tenant whose customer `user`/`phone` wrote `n` texts (`wamid.<prefix><i>`, body
/// `body`) in one conversation: the envelope, the tenant, its conversations, the customer and
/// the conversation.
pub(crate) async fn one_conversation(
    b: &Backend,
    (user, phone): (&str, &str),
    (prefix, body, n): (&str, &str, i64),
) -> (
    Arc<Envelope>,
    TenantId,
    Conversations,
    CustomerRef,
    wappline::conversation::ConversationId,
) {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let t = TenantId::generate();
    let c = Conversations::new(t.clone(), b.store.clone(), envelope.clone());
    let person = customer(user, phone);
    let conv = c
        .record_customer(&account(), &person, Some(1), 90)
        .await
        .unwrap();
    for i in 0..n {
        let m = text(
            &format!("wamid.{prefix}{i}"),
            body,
            1_000 + i,
            Direction::Inbound,
        );
        c.store_message(&account(), &conv, m, 90).await.unwrap();
    }
    (envelope, t, c, person, conv)
}

async fn a_contact_erasure_that_crashed_part_way_finishes_when_run_again(b: Backend) {
    let (envelope, t, c, alice, conv) = one_conversation(
        &b,
        ("US.555555555555555555", "16505550005"),
        ("C", "crash test secret", 5),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap());
    // A store that fails every delete after the first two (batches run one by one): a
    // worker crashing part-way. Only the deletes of the conversation's own items count, so
    // the crash lands among its messages however many pointers each message has.
    let allowed = std::sync::atomic::AtomicUsize::new(2);
    let crashing: Arc<dyn wappline::store::TableStore> = Arc::new(
        HookedStore::with(b.store.clone(), move |call: &StoreCall<'_>| {
            use std::sync::atomic::Ordering;
            match call {
                StoreCall::Delete { key, .. }
                    if key.pk.contains("#CONV#")
                        && allowed
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_err() =>
                {
                    Verdict::Fail(StoreError::Unavailable("injected crash".into()))
                }
                _ => Verdict::Run,
            }
        })
        .one_by_one(),
    );
    let first = ContactErasure::new(crashing, envelope.clone(), queue.clone());
    let request = first
        .request(&t, account(), alice.id.clone(), "platform_admin")
        .await
        .unwrap();
    assert!(
        first.process(&t, &request).await.is_err(),
        "the injected crash stops it"
    );
    // Part of the conversation is gone, part is left.
    let (left, _) = c.messages(&conv, None, 100).await.unwrap();
    assert!(left.len() < 5, "the crash happened part-way");
    // The redelivery goes on from the request's cursor (decision 0057): it does not find
    // and mark again (the marker keeps the first attempt's time).
    let marker = wappline::store::Key::new(
        t.sub_partition(wappline::conversation::erased::PARTITION),
        format!("m#{}", conv.as_str()),
    );
    let marked_at = |item: Option<Item>| item.and_then(|i| i.get_n("erased_at_ms"));
    let first_mark = marked_at(b.store.get(Table::Data, &marker).await.unwrap());
    assert!(first_mark.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The redelivered job runs on a healthy worker and finishes.
    let healthy = ContactErasure::new(b.store.clone(), envelope.clone(), queue);
    healthy.process(&t, &request).await.unwrap();
    assert_eq!(
        healthy.status(&t, &request).await.unwrap().state,
        "completed"
    );
    assert!(c.meta(&conv).await.unwrap().is_none());
    let (left, _) = c.messages(&conv, None, 100).await.unwrap();
    assert!(left.is_empty());
    assert_eq!(
        marked_at(b.store.get(Table::Data, &marker).await.unwrap()),
        first_mark,
        "the retry started over"
    );
    for n in 0..5 {
        assert!(c
            .find_message(&account(), &format!("wamid.C{n}"))
            .await
            .unwrap()
            .is_none());
    }
}

/// A run of a contact erasure that goes on after another run completed the request (the job
/// redelivered while the first run was slow, on the local server where nothing stops a run at
/// its visibility timeout) keeps the conversation the person began after the cut. Their
/// conversation id does not change (generation 0 is free again once the old one is erased),
/// so the late run found it under the id it was erasing, and deleted it: the soak's customer
/// whose first message after an erasure never reached the portal, and an operator's reply
/// to it skipped as "a conversation this tenant does not have".
async fn a_late_run_of_an_erasure_keeps_the_conversation_begun_after_its_cut(b: Backend) {
    let (envelope, t, c, alice, old) = one_conversation(
        &b,
        ("US.666666666666666666", "16505550006"),
        ("O", "before", 3),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap());
    // The late run: it found and marked the conversation, then stalled before deleting any
    // of it (every delete of the conversation's items fails).
    let stalled: Arc<dyn wappline::store::TableStore> = Arc::new(
        HookedStore::with(b.store.clone(), move |call: &StoreCall<'_>| match call {
            StoreCall::Delete { key, .. } if key.pk.contains("#CONV#") => {
                Verdict::Fail(StoreError::Backend("injected stall".into()))
            }
            _ => Verdict::Run,
        })
        .one_by_one(),
    );
    let late = ContactErasure::new(stalled, envelope.clone(), queue.clone());
    let request = late
        .request(&t, account(), alice.id.clone(), "platform_admin")
        .await
        .unwrap();
    assert!(
        late.process(&t, &request).await.is_err(),
        "the late run stalls"
    );
    // What the late run read of its request, before anyone completed it.
    let as_read = b
        .store
        .scan(Table::Data, None, 1000)
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|i| {
            i.get_s("pk").is_some_and(|pk| pk.contains(t.as_str()))
                && i.get_s("state").is_some()
                && i.get_b("subject").is_some()
        })
        .expect("the pending request");
    // The redelivery runs on a healthy worker and completes the request.
    let healthy = ContactErasure::new(b.store.clone(), envelope.clone(), queue.clone());
    healthy.process(&t, &request).await.unwrap();
    assert_eq!(
        healthy.status(&t, &request).await.unwrap().state,
        "completed"
    );
    assert!(c.meta(&old).await.unwrap().is_none());
    // Alice writes again, after the cut (the completed run waited it out): a new
    // conversation, under the same id.
    let new = c
        .record_customer(&account(), &alice, Some(2), 90)
        .await
        .unwrap();
    assert_eq!(new, old, "her conversation id is the same");
    c.store_message(
        &account(),
        &new,
        text("wamid.N0", "after", 5_000, Direction::Inbound),
        90,
    )
    .await
    .unwrap();
    // The late run goes on from what it had read, with the store now answering.
    b.store.put(Table::Data, as_read, None).await.unwrap();
    let resumed = ContactErasure::new(b.store.clone(), envelope.clone(), queue);
    resumed.process(&t, &request).await.unwrap();
    assert!(
        c.meta(&new).await.unwrap().is_some(),
        "the conversation begun after the cut is kept"
    );
    let (kept, _) = c.messages(&new, None, 100).await.unwrap();
    assert_eq!(kept.len(), 1, "with its message");
    assert!(c
        .find_message(&account(), "wamid.N0")
        .await
        .unwrap()
        .is_some());
}

on_both_backends!(
    contact_erasure_removes_only_that_customer,
    tenant_erasure_after_grace_removes_everything_and_shreds_keys,
    a_contact_erasure_that_crashed_part_way_finishes_when_run_again,
    a_late_run_of_an_erasure_keeps_the_conversation_begun_after_its_cut,
);
