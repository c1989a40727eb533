//! A read of a customer's thread (decision 0116) on real adapters: which of our messages it
//! reaches (sent or delivered, newest first, up to one already read) and which it may move
//! (never one that failed or was not sent).

use std::sync::Arc;

use wappline::conversation::{
    read_bound_at, Conversations, Direction, MessageRef, MessageStatus, NewMessage, Origin,
};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::{InstagramAccountId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, InstagramUserId};

use crate::backends::Backend;
use crate::on_both_backends;

const T0: i64 = 1_796_000_000_000;

fn account() -> AccountRef {
    AccountRef::Instagram(InstagramAccountId::parse("17841405822304914").unwrap())
}

fn message(id: &str, direction: Direction, at_ms: i64) -> NewMessage {
    NewMessage {
        provider_message_id: id.into(),
        direction,
        origin: match direction {
            Direction::Outbound => Origin::Operator,
            Direction::Inbound => Origin::Customer,
        },
        content: Content::Text { body: id.into() },
        at_ms,
        reply_to: None,
        crm_im: None,
        template: None,
        written_with: Default::default(),
    }
}

async fn our_messages_before_a_read_are_found_up_to_one_already_read(b: Backend) {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let c = Conversations::new(TenantId::generate(), b.store.clone(), envelope);
    let customer = CustomerRef::new(CustomerId::Instagram(
        InstagramUserId::parse("1254459154682919").unwrap(),
    ));
    let conv = c
        .record_customer(&account(), &customer, Some(1), 30)
        .await
        .unwrap();
    // Oldest first: read, sent, failed, the customer's, not sent yet, delivered, sent (the
    // one read now), and one after it.
    let shapes: [(Direction, Option<MessageStatus>); 8] = [
        (Direction::Outbound, Some(MessageStatus::Read)),
        (Direction::Outbound, Some(MessageStatus::Sent)),
        (Direction::Outbound, Some(MessageStatus::Failed)),
        (Direction::Inbound, None),
        (Direction::Outbound, None),
        (Direction::Outbound, Some(MessageStatus::Delivered)),
        (Direction::Outbound, Some(MessageStatus::Sent)),
        (Direction::Outbound, Some(MessageStatus::Sent)),
    ];
    let mut at: Vec<MessageRef> = Vec::new();
    for (i, (direction, status)) in shapes.iter().enumerate() {
        let m = message(&format!("mid.{i}"), *direction, T0 + 1_000 * i as i64);
        let (r, _) = c.store_message(&account(), &conv, m, 30).await.unwrap();
        if let Some(s) = status {
            assert!(c.advance_status(&r, *s, "setup").await.unwrap());
        }
        at.push(r);
    }

    let none = |_: &str| String::new();
    let found = c.unread_before(&conv, &at[6].sk, none).await.unwrap();
    assert_eq!(
        found,
        vec![at[5].clone(), at[1].clone()],
        "newest first, to the read one"
    );
    // A time as the bound: the messages of that millisecond and before.
    let found = c
        .unread_before(&conv, &read_bound_at(T0 + 6_000), none)
        .await
        .unwrap();
    assert_eq!(found, vec![at[6].clone(), at[5].clone(), at[1].clone()]);

    // Moved only from sent or delivered, once per job.
    assert!(c.read_by_thread(&at[5], "job-1").await.unwrap());
    assert!(
        c.read_by_thread(&at[5], "job-1").await.unwrap(),
        "its retry"
    );
    assert!(!c.read_by_thread(&at[5], "job-2").await.unwrap());
    assert!(!c.read_by_thread(&at[2], "job-1").await.unwrap(), "failed");
    assert!(
        !c.read_by_thread(&at[4], "job-1").await.unwrap(),
        "not sent"
    );
    let status = |i: usize| {
        let (c, r) = (&c, at[i].clone());
        async move { c.message(&r).await.unwrap().unwrap().status }
    };
    assert_eq!(status(5).await, Some(MessageStatus::Read));
    assert_eq!(status(2).await, Some(MessageStatus::Failed));
    assert_eq!(status(4).await, None);
    // Now read, it ends the next look back; but not that of the read that moved it (its
    // redelivery), which finds it again and goes on.
    let found = c.unread_before(&conv, &at[7].sk, none).await.unwrap();
    assert_eq!(found, vec![at[6].clone()]);
    let job_1 = |_: &str| "job-1".to_owned();
    let found = c.unread_before(&conv, &at[7].sk, job_1).await.unwrap();
    assert_eq!(found, vec![at[6].clone(), at[5].clone(), at[1].clone()]);
}

on_both_backends!(our_messages_before_a_read_are_found_up_to_one_already_read);
