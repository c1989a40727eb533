//! The second pass of a contact erasure (decision 0137): one lease after the erasure
//! completed, its conversations are erased again with the same cut. What a stage wrote into
//! the erased conversation after the erasure's own pass and could not remove again (an
//! operator's reply whose removal failed) goes then, instead of at the tenant's retention;
//! a conversation the person began after the cut is kept.

use std::sync::Arc;
use std::time::Duration;

use wappline::clock::Clock;
use wappline::conversation::{ConversationId, Conversations, Direction};
use wappline::erasure::ContactErasure;
use wappline::ids::TenantId;
use wappline::meta::CustomerRef;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};

use crate::backends::Backend;
use crate::erasure::{account, one_conversation, text};
use crate::erasure_batches::ManualClock;
use crate::on_both_backends;

const SWEEP_AFTER: Duration = Duration::from_secs(180);

/// One erasure of a customer who wrote twice, completed by its first pass, with the clock it
/// reads (from the real time: its cut is the end of this second).
struct Erased {
    c: Conversations,
    t: TenantId,
    alice: CustomerRef,
    conv: ConversationId,
    erasure: ContactErasure,
    request: String,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn erased(b: &Backend, (user, phone): (&str, &str)) -> Erased {
    let (envelope, t, c, alice, conv) =
        one_conversation(b, (user, phone), ("S", "please forget me", 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap());
    let clock = ManualClock::at(wappline::clock::now_millis());
    let erasure = ContactErasure::new(b.store.clone(), envelope, queue)
        .with_clock(clock.clone())
        .with_sweep_after(SWEEP_AFTER);
    let request = erasure
        .request(&t, account(), alice.id.clone(), "platform_admin")
        .await
        .unwrap();
    assert_eq!(
        erasure.process(&t, &request).await.unwrap(),
        Some(SWEEP_AFTER),
        "completed, its second pass one lease later"
    );
    assert_eq!(
        erasure.status(&t, &request).await.unwrap().state,
        "completed"
    );
    assert!(c.meta(&conv).await.unwrap().is_none());
    Erased {
        c,
        t,
        alice,
        conv,
        erasure,
        request,
        clock,
        _dir: dir,
    }
}

impl Erased {
    async fn second_pass(&self) -> Option<Duration> {
        self.erasure.process(&self.t, &self.request).await.unwrap()
    }
}

async fn what_the_first_pass_could_not_see_goes_in_the_second(b: Backend) {
    let e = erased(&b, ("US.888888888888888888", "16505550008")).await;
    // An operator's reply stored into the conversation after the first pass read it, whose
    // own removal failed: the first pass could not see it.
    e.c.store_message(
        &account(),
        &e.conv,
        text(
            "bx:1:7100",
            "we will call you tomorrow",
            1_500,
            Direction::Outbound,
        ),
        90,
    )
    .await
    .unwrap();
    let left = || async { e.c.find_message(&account(), "bx:1:7100").await.unwrap() };

    // Not yet due: nothing runs.
    e.clock.sleep(SWEEP_AFTER - Duration::from_secs(1)).await;
    assert_eq!(e.second_pass().await, Some(Duration::from_secs(1)));
    assert!(left().await.is_some());

    let status = e.erasure.status(&e.t, &e.request).await.unwrap();
    assert_eq!(status.second_pass_at, None);
    e.clock.sleep(Duration::from_secs(1)).await;
    assert_eq!(e.second_pass().await, None);
    assert!(left().await.is_none(), "the reply left behind is erased");
    let status = e.erasure.status(&e.t, &e.request).await.unwrap();
    assert_eq!(
        status.second_pass_at,
        Some(e.clock.now_millis().div_euclid(1000)),
        "the admins see when it ran"
    );
    let (messages, _) = e.c.messages(&e.conv, None, 100).await.unwrap();
    assert!(messages.is_empty(), "{messages:?}");
    // Once: the job's next delivery finds it done.
    assert_eq!(e.second_pass().await, None);
}

async fn the_second_pass_keeps_a_conversation_begun_after_the_cut(b: Backend) {
    let e = erased(&b, ("US.999999999999999999", "16505550009")).await;
    // Alice writes again, after the cut's second: a new conversation, under the same id.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let new =
        e.c.record_customer(&account(), &e.alice, Some(2), 90)
            .await
            .unwrap();
    assert_eq!(new, e.conv);
    e.c.store_message(
        &account(),
        &new,
        text("wamid.AFTER", "hello again", 5_000, Direction::Inbound),
        90,
    )
    .await
    .unwrap();
    e.clock.sleep(SWEEP_AFTER).await;
    assert_eq!(e.second_pass().await, None);
    assert!(e.c.meta(&new).await.unwrap().is_some(), "kept");
    assert!(e
        .c
        .find_message(&account(), "wamid.AFTER")
        .await
        .unwrap()
        .is_some());
}

on_both_backends!(
    what_the_first_pass_could_not_see_goes_in_the_second,
    the_second_pass_keeps_a_conversation_begun_after_the_cut,
);
