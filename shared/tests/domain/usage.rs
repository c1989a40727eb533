//! Usage counters and quotas on both adapter families: the counter increment rides in the
//! message's transaction with its quota condition (DynamoDB `ADD` under `attribute_not_exists
//! OR <`), a refusal is told apart from a duplicate by the failed operation, redeliveries
//! count once, and inbound over quota is stored and flagged.

use std::sync::Arc;

use wappline::clock::now_secs;
use wappline::conversation::{
    ConversationId, Conversations, Direction, IndexLookup, MessageRef, NewMessage, Origin,
};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::{InstagramAccountId, PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone};
use wappline::usage::{
    CountError, Counted, Plan, QuotaExceeded, Usage, UsageMonth, OUTBOUND_QUOTA,
};

use crate::backends::Backend;
use crate::on_both_backends;

struct Ctx {
    usage: Usage,
    conversations: Conversations,
    tenant: TenantId,
    conversation: ConversationId,
    _b: Backend,
}

fn wa() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn ig() -> AccountRef {
    AccountRef::Instagram(InstagramAccountId::parse("17841405822304914").unwrap())
}

/// The person of the tenant's one conversation.
fn customer() -> CustomerRef {
    CustomerRef::new(CustomerId::WhatsAppPhone(
        WhatsAppPhone::parse("16505551234").unwrap(),
    ))
}

async fn ctx(b: Backend) -> Ctx {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let tenant = TenantId::generate();
    let conversations = Conversations::new(tenant.clone(), b.store.clone(), envelope);
    let conversation = conversations
        .record_customer(&wa(), &customer(), None, 30)
        .await
        .unwrap();
    Ctx {
        usage: Usage::new(b.store.clone()),
        conversations,
        tenant,
        conversation,
        _b: b,
    }
}

fn message(id: &str, direction: Direction, origin: Origin) -> NewMessage {
    NewMessage::from_provider(
        id,
        direction,
        origin,
        Content::Text {
            body: "hello".into(),
        },
        now_secs(),
        None,
    )
}

impl Ctx {
    /// Sets the tenant's monthly quotas (None: unlimited).
    async fn plan(&self, outbound: Option<u64>, inbound: Option<u64>) {
        self.usage
            .set_plan(
                &self.tenant,
                Plan {
                    monthly_outbound: outbound,
                    monthly_inbound: inbound,
                },
            )
            .await
            .unwrap();
    }

    async fn send(&self, id: &str) -> Result<bool, CountError> {
        self.store_out(id)
            .await
            .map(|(_, counted)| counted.is_some())
    }

    /// A send stored and counted: its place and what was counted.
    async fn store_out(&self, id: &str) -> Result<(MessageRef, Option<Counted>), CountError> {
        let m = message(id, Direction::Outbound, Origin::Api);
        self.usage
            .store_outbound(
                &self.conversations,
                &wa(),
                &self.conversation,
                m,
                30,
                now_secs(),
            )
            .await
    }

    async fn receive(&self, account: &AccountRef, id: &str) -> bool {
        self.store_in(account, id).await.1.is_some()
    }

    /// A customer's message stored and counted: its place and what was counted.
    async fn store_in(&self, account: &AccountRef, id: &str) -> (MessageRef, Option<Counted>) {
        let m = message(id, Direction::Inbound, Origin::Customer);
        self.usage
            .store_inbound(
                &self.conversations,
                account,
                &self.conversation,
                m,
                30,
                now_secs(),
                IndexLookup::First,
            )
            .await
            .unwrap()
    }

    /// Every count of the month: in and out per channel and in total, over quota, and the
    /// day's in and out.
    async fn counts(&self) -> [u64; 9] {
        let month = UsageMonth::current(now_secs());
        let r = self.usage.report(&self.tenant, month).await.unwrap();
        let today = self
            .usage
            .daily(&self.tenant, month)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.inbound + d.outbound)
            .sum::<u64>();
        [
            r.inbound.whatsapp,
            r.inbound.instagram,
            r.inbound.total,
            r.outbound.whatsapp,
            r.outbound.instagram,
            r.outbound.total,
            r.in_over_quota,
            r.outbound_remaining.unwrap_or(u64::MAX),
            today,
        ]
    }
}

async fn outbound_stops_at_the_limit_and_counts_once(b: Backend) {
    let c = ctx(b).await;
    c.plan(Some(2), None).await;
    assert!(c.send("a").await.unwrap());
    assert!(!c.send("a").await.unwrap(), "a redelivery is a duplicate");
    assert!(c.send("b").await.unwrap());
    // At the limit: a duplicate is still a duplicate, a new message is refused.
    assert!(!c.send("b").await.unwrap());
    let month = UsageMonth::current(now_secs());
    match c.send("c").await {
        Err(CountError::Quota(q)) => assert_eq!(
            q,
            QuotaExceeded {
                quota: OUTBOUND_QUOTA,
                limit: 2,
                used: 2,
                resets_at: month.resets_at(),
            }
        ),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    assert!(c
        .conversations
        .find_message(&wa(), "c")
        .await
        .unwrap()
        .is_none());
    let r = c.usage.report(&c.tenant, month).await.unwrap();
    assert_eq!((r.outbound.whatsapp, r.outbound.total), (2, 2));
    assert_eq!(r.outbound_remaining, Some(0));
}

async fn inbound_over_quota_is_kept_and_flagged(b: Backend) {
    let c = ctx(b).await;
    c.plan(None, Some(1)).await;
    assert!(c.receive(&wa(), "i1").await);
    assert!(c.receive(&ig(), "i2").await);
    assert!(!c.receive(&ig(), "i2").await);
    assert!(c
        .conversations
        .find_message(&ig(), "i2")
        .await
        .unwrap()
        .is_some());
    let r = c
        .usage
        .report(&c.tenant, UsageMonth::current(now_secs()))
        .await
        .unwrap();
    assert_eq!(
        (r.inbound.whatsapp, r.inbound.instagram, r.inbound.total),
        (1, 1, 2)
    );
    assert_eq!(r.in_over_quota, 1);
}

/// A message stored and counted, then removed again because the person's erasure began
/// meanwhile (decision 0130), takes its count back in the transaction that removes it: a
/// send that never went uses none of the quota, and a customer's message removed and
/// relayed after the erasure counts once. Removing it again takes nothing more back.
async fn a_message_removed_again_takes_its_count_back(b: Backend) {
    let c = ctx(b).await;
    c.plan(Some(1), Some(1)).await;
    let before = c.counts().await;
    assert_eq!(before, [0, 0, 0, 0, 0, 0, 0, 1, 0]);
    let (at, counted) = c.store_out("out-1").await.unwrap();
    let counted = counted.expect("a new message is counted");
    assert_eq!(c.counts().await, [0, 0, 0, 1, 0, 1, 0, 0, 1]);
    assert!(c
        .usage
        .unstore(&c.conversations, &wa(), &at, "out-1", &counted)
        .await
        .unwrap());
    assert_eq!(c.counts().await, before, "the send's count taken back");
    assert!(c
        .conversations
        .find_message(&wa(), "out-1")
        .await
        .unwrap()
        .is_none());
    assert!(
        !c.usage
            .unstore(&c.conversations, &wa(), &at, "out-1", &counted)
            .await
            .unwrap(),
        "already removed"
    );
    assert_eq!(c.counts().await, before, "nothing taken back twice");
    // The quota the removed send held is free again.
    assert!(c.send("out-2").await.unwrap());

    // A customer's message over the inbound quota: its over-quota count goes back too.
    assert!(c.receive(&ig(), "in-1").await);
    let (at, counted) = c.store_in(&wa(), "in-2").await;
    assert_eq!(c.counts().await, [1, 1, 2, 1, 0, 1, 1, 0, 3]);
    c.usage
        .unstore(&c.conversations, &wa(), &at, "in-2", &counted.unwrap())
        .await
        .unwrap();
    assert_eq!(c.counts().await, [0, 1, 1, 1, 0, 1, 0, 0, 2]);
}

/// A later delivery that finds the message (decision 0132) knows its count from the
/// message alone (decision 0133): the month, day and quota flag the store wrote down.
async fn a_message_removed_by_a_later_delivery_takes_its_count_back(b: Backend) {
    let c = ctx(b).await;
    c.plan(None, Some(1)).await;
    assert!(c.receive(&wa(), "in-1").await);
    let before = c.counts().await;
    let (at, counted) = c.store_in(&wa(), "in-2").await;
    assert!(counted.is_some());
    assert_eq!(c.counts().await[6], 1, "over the inbound quota");
    // Nothing but the message's place and id, as a redelivery has them.
    assert!(c
        .usage
        .remove_left(&c.conversations, &wa(), &at, "in-2", &customer())
        .await
        .unwrap());
    assert_eq!(
        c.counts().await,
        before,
        "every counter back, the over-quota one too"
    );
    assert!(!c
        .usage
        .remove_left(&c.conversations, &wa(), &at, "in-2", &customer())
        .await
        .unwrap());
    assert_eq!(c.counts().await, before, "nothing taken back twice");
    // The conversation was opened before, not by this store: it stays.
    assert!(c
        .conversations
        .meta(&c.conversation)
        .await
        .unwrap()
        .is_some());
}

/// A send that went out (the provider's id recorded) and is found by a later delivery of
/// an erased person's request is removed, and keeps its count: it was sent (decision 0134).
async fn a_sent_message_removed_by_a_later_delivery_keeps_its_count(b: Backend) {
    let c = ctx(b).await;
    let (at, counted) = c.store_out("api:req-1").await.unwrap();
    assert!(counted.is_some());
    c.conversations
        .record_provider_id(&wa(), &at, "wamid.SENT", 30)
        .await
        .unwrap();
    let sent = c.counts().await;
    assert_eq!(sent[5], 1, "counted once");
    assert!(c
        .usage
        .remove_left(&c.conversations, &wa(), &at, "api:req-1", &customer())
        .await
        .unwrap());
    assert!(
        c.conversations.message(&at).await.unwrap().is_none(),
        "removed"
    );
    assert_eq!(c.counts().await, sent, "its count kept");
}

on_both_backends!(
    a_sent_message_removed_by_a_later_delivery_keeps_its_count,
    a_message_removed_by_a_later_delivery_takes_its_count_back,
    outbound_stops_at_the_limit_and_counts_once,
    inbound_over_quota_is_kept_and_flagged,
    a_message_removed_again_takes_its_count_back,
);
