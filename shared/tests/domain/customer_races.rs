//! One customer's deliveries recorded at the same time stay one conversation (decision 0115).
//!
//! A WhatsApp customer named by BSUID alone and, in another delivery, by BSUID and phone runs
//! in two inbound FIFO groups (decision 0097), so two workers can record her at once. Each
//! reads her conversation, merges what its delivery says and writes it back; the second write
//! must not undo the first, or her phone is lost and her next phone-only event (a handover, a
//! history message) opens a second conversation and a second Bitrix24 chat.

use std::sync::Arc;

use tokio::task::JoinHandle;
use wappline::conversation::{ConversationError, ConversationId, Conversations, IdentityChange};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};

use crate::backends::Backend;
use crate::hold::HoldNextUpdate;
use crate::on_both_backends;

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn bsuid() -> CustomerId {
    CustomerId::WhatsAppUser(WhatsAppUserId::parse("US.13491208655302741918").unwrap())
}

fn phone() -> WhatsAppPhone {
    WhatsAppPhone::parse("16505551234").unwrap()
}

/// Her by BSUID alone (a username), and by BSUID and phone.
fn by_bsuid_alone() -> CustomerRef {
    let mut c = CustomerRef::new(bsuid());
    c.username = Some("@sheena".into());
    c
}

fn by_bsuid_and_phone() -> CustomerRef {
    let mut c = CustomerRef::new(bsuid());
    c.phone = Some(phone());
    c.name = Some("Sheena Nelson".into());
    c
}

fn by_phone_alone() -> CustomerRef {
    CustomerRef::new(CustomerId::WhatsAppPhone(phone()))
}

/// Conversations of a fresh tenant over `b`'s store, with a hold on writes of `META`.
fn hooked(b: &Backend) -> (Arc<Conversations>, Arc<HoldNextUpdate>) {
    let (store, hook) = HoldNextUpdate::over(b.store.clone(), "META");
    let envelope = Arc::new(Envelope::new(
        store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let conversations = Conversations::new(TenantId::generate(), store, envelope);
    (Arc::new(conversations), hook)
}

/// Her BSUID-alone delivery (written at `at`) recorded in a task of its own; returns once it
/// read her conversation and is held before its write.
async fn bsuid_alone_held(
    conversations: &Arc<Conversations>,
    hook: &HoldNextUpdate,
    at: i64,
) -> JoinHandle<Result<ConversationId, ConversationError>> {
    let held = hook.arm();
    let task = tokio::spawn({
        let c = conversations.clone();
        async move {
            c.record_customer(&account(), &by_bsuid_alone(), Some(at), 30)
                .await
        }
    });
    held.await;
    task
}

/// The BSUID-alone delivery reads (nothing stored yet) and is held before it writes; the
/// BSUID-and-phone delivery is recorded meanwhile; then the first one writes. Her phone must
/// survive, so a later phone-only event finds the same conversation.
async fn a_late_write_keeps_what_a_concurrent_one_added(b: Backend) {
    let (conversations, hook) = hooked(&b);
    let first = bsuid_alone_held(&conversations, &hook, 100).await;
    let second = conversations
        .record_customer(&account(), &by_bsuid_and_phone(), Some(101), 30)
        .await
        .unwrap();
    hook.release();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first, second, "one conversation for both deliveries");

    let stored = conversations.meta(&second).await.unwrap().unwrap().customer;
    assert_eq!(stored.phone, Some(phone()), "her phone was kept");
    assert_eq!(stored.username.as_deref(), Some("@sheena"));
    assert_eq!(stored.name.as_deref(), Some("Sheena Nelson"));
    let third = conversations
        .record_customer(&account(), &by_phone_alone(), None, 30)
        .await
        .unwrap();
    assert_eq!(third, second, "her phone-only event finds her conversation");
}

/// A message read before her change of number and written after it must not bring back the
/// number and BSUID she left (the change runs in her phone's group, a BSUID-alone message in
/// another).
async fn a_late_write_does_not_undo_a_change_of_number(b: Backend) {
    let (conversations, hook) = hooked(&b);
    let id = conversations
        .record_customer(&account(), &by_bsuid_and_phone(), Some(100), 30)
        .await
        .unwrap();
    let late = bsuid_alone_held(&conversations, &hook, 101).await;
    let new_phone = WhatsAppPhone::parse("16505550000").unwrap();
    let new_user = WhatsAppUserId::parse("US.99991208655302741918").unwrap();
    let change = IdentityChange {
        old: vec![bsuid(), CustomerId::WhatsAppPhone(phone())],
        new_user_id: Some(new_user.clone()),
        new_parent_user_id: None,
        new_phone: Some(new_phone.clone()),
    };
    let (moved, _) = conversations
        .rekey(&account(), &change)
        .await
        .unwrap()
        .expect("her conversation moved");
    assert_eq!(moved, id);
    hook.release();
    assert_eq!(
        late.await.unwrap().unwrap(),
        id,
        "the late message in her chat"
    );

    let stored = conversations.meta(&id).await.unwrap().unwrap();
    assert_eq!(stored.customer.id, CustomerId::WhatsAppUser(new_user));
    assert_eq!(stored.customer.phone, Some(new_phone));
    assert!(stored
        .former_ids
        .contains(&CustomerId::WhatsAppPhone(phone())));
    // Her old number no longer leads to her (it may be someone else's now).
    assert_ne!(
        conversations
            .record_customer(&account(), &by_phone_alone(), None, 30)
            .await
            .unwrap(),
        id
    );
}

/// A change of number read before a message and written after it keeps what that message
/// added (her username).
async fn a_late_change_of_number_keeps_a_concurrent_message(b: Backend) {
    let (conversations, hook) = hooked(&b);
    let id = conversations
        .record_customer(&account(), &by_bsuid_and_phone(), Some(100), 30)
        .await
        .unwrap();
    let new_user = WhatsAppUserId::parse("US.99991208655302741918").unwrap();
    let change = IdentityChange {
        old: vec![bsuid(), CustomerId::WhatsAppPhone(phone())],
        new_user_id: Some(new_user.clone()),
        new_parent_user_id: None,
        new_phone: Some(WhatsAppPhone::parse("16505550000").unwrap()),
    };
    let rekey = {
        let c = conversations.clone();
        async move { c.rekey(&account(), &change).await }
    };
    let (rekeyed, _) = hook
        .meanwhile(hook.arm(), rekey, async {
            conversations
                .record_customer(&account(), &by_bsuid_alone(), Some(101), 30)
                .await
                .unwrap()
        })
        .await;
    let (moved, _) = rekeyed.unwrap().expect("her conversation moved");
    assert_eq!(moved, id);
    let stored = conversations.meta(&id).await.unwrap().unwrap().customer;
    assert_eq!(stored.id, CustomerId::WhatsAppUser(new_user));
    assert_eq!(stored.username.as_deref(), Some("@sheena"));
}

/// Her first two deliveries at once, neither finding a conversation: `looking` looks for her
/// (nothing yet), `creating` creates her conversation, then `looking` picks a new
/// conversation's id. Her conversation is taken, not passed over for the next generation (a
/// second Bitrix24 chat): that is kept for a number now someone else's (decision 0118).
async fn first_deliveries_at_once_share_one_conversation(
    b: Backend,
    looking: CustomerRef,
    creating: CustomerRef,
) {
    let (conversations, hook) = hooked(&b);
    let first = {
        let c = conversations.clone();
        async move { c.record_customer(&account(), &looking, Some(100), 30).await }
    };
    // Her `META` is read once while looking for her, once more to pick a fresh id.
    let (first, second) = hook
        .meanwhile(hook.arm_read(2), first, async {
            conversations
                .record_customer(&account(), &creating, Some(101), 30)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(
        first.unwrap(),
        second,
        "one conversation for both deliveries"
    );
    let stored = conversations.meta(&second).await.unwrap().unwrap().customer;
    assert_eq!(stored.phone, Some(phone()));
    assert_eq!(stored.username.as_deref(), Some("@sheena"));
}

/// The BSUID-alone delivery looks first.
async fn a_conversation_created_meanwhile_is_hers_not_taken(b: Backend) {
    first_deliveries_at_once_share_one_conversation(b, by_bsuid_alone(), by_bsuid_and_phone()).await
}

/// The BSUID-and-phone delivery looks first (the order the end-to-end test met).
async fn a_conversation_created_meanwhile_by_bsuid_alone_is_hers(b: Backend) {
    first_deliveries_at_once_share_one_conversation(b, by_bsuid_and_phone(), by_bsuid_alone()).await
}

on_both_backends!(
    a_conversation_created_meanwhile_is_hers_not_taken,
    a_conversation_created_meanwhile_by_bsuid_alone_is_hers,
    a_late_change_of_number_keeps_a_concurrent_message,
    a_late_write_keeps_what_a_concurrent_one_added,
    a_late_write_does_not_undo_a_change_of_number,
);
