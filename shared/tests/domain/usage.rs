//! Usage counters and quotas on both adapter families: the counter increment rides in the
//! message's transaction with its quota condition (DynamoDB `ADD` under `attribute_not_exists
//! OR <`), a refusal is told apart from a duplicate by the failed operation, redeliveries
//! count once, and inbound over quota is stored and flagged.

use std::sync::Arc;

use wappline::clock::now_secs;
use wappline::conversation::{
    ConversationId, Conversations, Direction, IndexLookup, NewMessage, Origin,
};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::{InstagramAccountId, PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone};
use wappline::usage::{CountError, Plan, QuotaExceeded, Usage, UsageMonth, OUTBOUND_QUOTA};

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

async fn ctx(b: Backend) -> Ctx {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let tenant = TenantId::generate();
    let conversations = Conversations::new(tenant.clone(), b.store.clone(), envelope);
    let customer = CustomerRef::new(CustomerId::WhatsAppPhone(
        WhatsAppPhone::parse("16505551234").unwrap(),
    ));
    let conversation = conversations
        .record_customer(&wa(), &customer, None, 30)
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
    async fn send(&self, id: &str) -> Result<bool, CountError> {
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
            .map(|(_, new)| new)
    }

    async fn receive(&self, account: &AccountRef, id: &str) -> bool {
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
            .1
    }
}

async fn outbound_stops_at_the_limit_and_counts_once(b: Backend) {
    let c = ctx(b).await;
    c.usage
        .set_plan(
            &c.tenant,
            Plan {
                monthly_outbound: Some(2),
                monthly_inbound: None,
            },
        )
        .await
        .unwrap();
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
    c.usage
        .set_plan(
            &c.tenant,
            Plan {
                monthly_outbound: None,
                monthly_inbound: Some(1),
            },
        )
        .await
        .unwrap();
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

on_both_backends!(
    outbound_stops_at_the_limit_and_counts_once,
    inbound_over_quota_is_kept_and_flagged,
);
