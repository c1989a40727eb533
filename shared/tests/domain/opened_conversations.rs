//! A conversation a stage opened, then found its person's erasure begun, is removed again
//! whole while it is still only what that stage wrote (decision 0131): `META`, list entry
//! and aliases in one transaction, on condition no other delivery wrote it since. One that
//! holds a message, was written again, or was opened anew by someone else is kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use wappline::clock::now_secs;
use wappline::conversation::{
    ConversationId, Conversations, Direction, NewMessage, Opened, Origin, ALIAS_SK, ALIAS_TARGET,
};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::faults::hooked::{HookedStore, SharedHook, StoreCall, StoreHook, Verdict};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};
use wappline::store::{Key, StoreError, Table, TableStore};

use crate::backends::Backend;
use crate::on_both_backends;

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn phone() -> WhatsAppPhone {
    WhatsAppPhone::parse("16505551234").unwrap()
}

/// Named by BSUID with her phone: her conversation has an alias for the phone.
fn customer() -> CustomerRef {
    let mut c = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse("US.13491208655302741918").unwrap(),
    ));
    c.phone = Some(phone());
    c.name = Some("Sheena Nelson".into());
    c
}

/// A customer's "hello" under provider id `pid`, sent at `at` (Unix seconds).
fn hello(pid: &str, at: i64) -> NewMessage {
    NewMessage::from_provider(
        pid,
        Direction::Inbound,
        Origin::Customer,
        Content::Text {
            body: "hello".into(),
        },
        at,
        None,
    )
}

struct Ctx {
    conversations: Conversations,
    tenant: TenantId,
    b: Backend,
}

fn ctx(b: Backend) -> Ctx {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let tenant = TenantId::generate();
    Ctx {
        conversations: Conversations::new(tenant.clone(), b.store.clone(), envelope),
        tenant,
        b,
    }
}

impl Ctx {
    /// What is left of conversation `id`: its `META`, its list entry, and the conversation
    /// her phone leads to.
    async fn left(&self, id: &ConversationId) -> (bool, bool, Option<ConversationId>) {
        let list = Key::new(self.tenant.sub_partition("CONVS"), id.as_str());
        (
            self.conversations.meta(id).await.unwrap().is_some(),
            self.b
                .store
                .get(Table::Data, &list)
                .await
                .unwrap()
                .is_some(),
            self.conversations
                .conversation_of_phone(&account(), &phone())
                .await
                .unwrap(),
        )
    }
}

async fn a_conversation_opened_and_left_empty_is_forgotten_whole(b: Backend) {
    let c = ctx(b);
    let (id, opened) = c
        .conversations
        .open_customer(&account(), &customer(), None, 30)
        .await
        .unwrap();
    let opened = opened.expect("her first conversation is opened");
    assert_eq!(c.left(&id).await, (true, true, Some(id.clone())));
    assert!(c
        .conversations
        .forget_opened(&account(), &id, &opened, &customer())
        .await
        .unwrap());
    assert_eq!(
        c.left(&id).await,
        (false, false, None),
        "nothing of her left"
    );
    // Gone already: nothing more to do.
    assert!(!c
        .conversations
        .forget_opened(&account(), &id, &opened, &customer())
        .await
        .unwrap());
}

impl Ctx {
    async fn open(&self) -> (ConversationId, Option<Opened>) {
        self.conversations
            .open_customer(&account(), &customer(), None, 30)
            .await
            .unwrap()
    }

    async fn forget(&self, id: &ConversationId, opened: &Opened) -> bool {
        self.conversations
            .forget_opened(&account(), id, opened, &customer())
            .await
            .unwrap()
    }

    /// Deletes her conversation's `META`, as an erasure does last.
    async fn meta_deleted(&self, id: &ConversationId) {
        let meta = Key::new(self.conversations.partition(id), "META");
        self.b.store.delete(Table::Data, &meta, None).await.unwrap();
    }
}

async fn a_conversation_written_again_since_is_kept(b: Backend) {
    let c = ctx(b);
    let (id, opened) = c.open().await;
    let (again, reopened) = c.open().await;
    assert_eq!((&again, reopened), (&id, None), "refreshed, not opened");
    assert!(!c.forget(&id, &opened.unwrap()).await);
    assert_eq!(c.left(&id).await, (true, true, Some(id.clone())));
}

async fn a_conversation_holding_a_message_is_kept(b: Backend) {
    let c = ctx(b);
    let (id, opened) = c.open().await;
    let message = hello("wamid.KEPT", now_secs());
    c.conversations
        .store_message(&account(), &id, message, 30)
        .await
        .unwrap();
    assert!(!c.forget(&id, &opened.unwrap()).await);
    assert_eq!(c.left(&id).await, (true, true, Some(id.clone())));
}

/// Her conversation deleted after this stage opened it (an erasure) and opened anew by
/// another delivery: the later one's, not this stage's to remove.
async fn a_conversation_opened_anew_by_another_is_kept(b: Backend) {
    let c = ctx(b);
    let (id, first) = c.open().await;
    c.meta_deleted(&id).await;
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let (_, second) = c.open().await;
    assert!(second.is_some(), "opened again once gone");
    assert!(!c.forget(&id, &first.unwrap()).await);
    assert_eq!(c.left(&id).await, (true, true, Some(id.clone())));
}

/// Fails the next transaction once it is armed, as throttling does.
struct ThrottleNextTransaction(AtomicBool);

#[async_trait]
impl StoreHook for ThrottleNextTransaction {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if matches!(call, StoreCall::Transact { .. }) && self.0.swap(false, Ordering::SeqCst) {
            return Verdict::Fail(StoreError::Unavailable("throttled".into()));
        }
        Verdict::Run
    }
}

/// Throttled, the removal is tried again: the job that called it is not retried up to it
/// (its redelivery stops at the erasure's first check, decision 0132).
async fn a_throttled_removal_is_tried_again(b: Backend) {
    let hook = Arc::new(ThrottleNextTransaction(AtomicBool::new(false)));
    let store: Arc<dyn TableStore> =
        Arc::new(HookedStore::new(b.store.clone(), SharedHook(hook.clone())));
    let envelope = Arc::new(Envelope::new(
        store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let tenant = TenantId::generate();
    let c = Ctx {
        conversations: Conversations::new(tenant.clone(), store, envelope),
        tenant,
        b,
    };
    let (id, opened) = c.open().await;
    hook.0.store(true, Ordering::SeqCst);
    assert!(c.forget(&id, &opened.unwrap()).await);
    assert!(
        !hook.0.load(Ordering::SeqCst),
        "the first try was throttled"
    );
    assert_eq!(c.left(&id).await, (false, false, None));
}

/// Her phone's alias taken since by another conversation of hers: not this stage's to
/// delete, so the conversation is kept rather than its alias removed from under the other.
async fn an_alias_another_conversation_took_is_kept(b: Backend) {
    let c = ctx(b);
    let (id, opened) = c.open().await;
    let other = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse("US.99991208655302741918").unwrap(),
    ));
    let (other_id, _) = c
        .conversations
        .open_customer(&account(), &other, None, 30)
        .await
        .unwrap();
    let mut after = None;
    let mut alias = loop {
        let page =
            c.b.store
                .scan(Table::Data, after.as_ref(), 500)
                .await
                .unwrap();
        let found = page.items.into_iter().find(|i| {
            i.get_s("sk") == Some(ALIAS_SK) && i.get_s(ALIAS_TARGET) == Some(id.as_str())
        });
        if let Some(alias) = found {
            break alias;
        }
        after = Some(page.next.expect("her phone's alias"));
    };
    alias.set(ALIAS_TARGET, other_id.as_str());
    let key = alias.key().unwrap();
    c.b.store.put(Table::Data, alias, None).await.unwrap();
    assert!(!c.forget(&id, &opened.unwrap()).await);
    let (meta, listed, _) = c.left(&id).await;
    assert!(meta && listed, "her conversation is kept");
    let kept = c.b.store.get(Table::Data, &key).await.unwrap();
    assert_eq!(
        kept.as_ref().and_then(|a| a.get_s(ALIAS_TARGET)),
        Some(other_id.as_str()),
        "the alias the other conversation took is kept"
    );
}

/// The message and the conversation its delivery opened go in one write (decision 0133),
/// and what that delivery wrote is on the message for a later one to read.
async fn a_message_and_the_conversation_it_opened_go_together(b: Backend) {
    let c = ctx(b);
    let (id, opened) = c.open().await;
    let opened = opened.unwrap();
    let mut message = hello("wamid.ONLY", now_secs());
    message.written_with.opened = Some(opened);
    let (at, _) = c
        .conversations
        .store_message(&account(), &id, message, 30)
        .await
        .unwrap();
    let (with, sent) = c.conversations.written_with(&at).await.unwrap().unwrap();
    assert_eq!((with.opened, with.count, sent), (Some(opened), None, false));
    let removed = c
        .conversations
        .unstore_opened(
            &account(),
            &at,
            "wamid.ONLY",
            Vec::new(),
            &opened,
            &customer(),
        )
        .await
        .unwrap();
    assert!(removed);
    assert_eq!(
        c.left(&id).await,
        (false, false, None),
        "nothing of her left"
    );
    assert!(c.conversations.written_with(&at).await.unwrap().is_none());
    assert!(c
        .conversations
        .find_message(&account(), "wamid.ONLY")
        .await
        .unwrap()
        .is_none());
}

/// A conversation holding another message too: the message goes, the conversation stays.
async fn a_message_beside_another_goes_alone(b: Backend) {
    let c = ctx(b);
    let (id, opened) = c.open().await;
    let opened = opened.unwrap();
    let mut ats = Vec::new();
    for (n, pid) in ["wamid.FIRST", "wamid.SECOND"].into_iter().enumerate() {
        let message = hello(pid, now_secs() + n as i64);
        let (at, _) = c
            .conversations
            .store_message(&account(), &id, message, 30)
            .await
            .unwrap();
        ats.push(at);
    }
    assert!(c
        .conversations
        .unstore_opened(
            &account(),
            &ats[0],
            "wamid.FIRST",
            Vec::new(),
            &opened,
            &customer()
        )
        .await
        .unwrap());
    assert_eq!(c.left(&id).await, (true, true, Some(id.clone())));
    assert!(c.conversations.message(&ats[1]).await.unwrap().is_some());
}

on_both_backends!(
    an_alias_another_conversation_took_is_kept,
    a_message_and_the_conversation_it_opened_go_together,
    a_message_beside_another_goes_alone,
    a_throttled_removal_is_tried_again,
    a_conversation_opened_and_left_empty_is_forgotten_whole,
    a_conversation_written_again_since_is_kept,
    a_conversation_holding_a_message_is_kept,
    a_conversation_opened_anew_by_another_is_kept,
);
