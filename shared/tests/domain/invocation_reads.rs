//! What a relay job asks of the store (decision 0058), counted by the cost model's meter on
//! real adapters: the tenant's profile and channels read once per invocation, and forgotten
//! on a write; the outbox staging without a read and claiming or settling each operation
//! without a transaction, and counting a dead flusher's claim in the claim that takes it
//! over.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use wappline::app::Platform;
use wappline::costs::Meter;
use wappline::crm_sync::deaths::{self, DEATH_LIMIT};
use wappline::crm_sync::outbox::{killed_outcome, CrmOp, OpOutcome, OpState, Outbox};
use wappline::faults::ports::Tap;
use wappline::ids::TenantId;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

use crate::backends::Backend;
use crate::on_both_backends;

/// The backend's store counted by `meter`, and a platform on it.
fn metered(b: &Backend) -> (Arc<Meter>, Platform) {
    let meter = Arc::new(Meter::new());
    let store = Tap::meter(meter.clone()).store(b.store.clone());
    (meter, Platform::new(store, b.vault.clone()))
}

fn requests(meter: &Meter, operation: &str) -> f64 {
    meter
        .snapshot()
        .get(&("DynamoDB".to_owned(), operation.to_owned()))
        .map_or(0.0, |u| u.requests)
}

/// Every DynamoDB request the meter counted.
fn all_requests(meter: &Meter) -> f64 {
    meter
        .snapshot()
        .iter()
        .filter(|((service, _), _)| service == "DynamoDB")
        .map(|(_, u)| u.requests)
        .sum()
}

fn portal() -> ChannelRef {
    ChannelRef::parse(ChannelKind::Bitrix24, "a223c6b3710f85df22e9377d6c4f7500").unwrap()
}

fn secret(value: &str) -> Secret {
    Secret::parse("access_token", value).unwrap()
}

async fn tenant_with_portal(p: &Platform) -> TenantId {
    let t = p
        .tenants
        .create(
            TenantName::parse("Reads").unwrap(),
            RetentionDays::default(),
        )
        .await
        .unwrap()
        .id;
    let scope = p.tenants.scope(&t).await.unwrap().unwrap();
    scope
        .connect(Connection {
            channel: portal(),
            details: BTreeMap::from([("domain".to_owned(), "reads.bitrix24.com".to_owned())]),
            secrets: BTreeMap::from([("access_token", secret("first-token"))]),
            authorized_by: None,
        })
        .await
        .unwrap();
    t
}

async fn a_job_reads_its_profile_and_channels_once(b: Backend) {
    let (meter, p) = metered(&b);
    let t = tenant_with_portal(&p).await;

    // What a job asks: the profile (existence, retention), the channels (the portal), the
    // portal's channel and its token, some of it twice (the worker and the flusher).
    let ask = |scope: wappline::tenant::TenantScope| async move {
        for _ in 0..2 {
            scope.profile().await.unwrap().expect("profile");
            assert_eq!(scope.channels().await.unwrap().len(), 1);
            scope.channel(&portal()).await.unwrap().expect("channel");
            let token = scope.channel_secret(&portal(), "access_token").await;
            assert_eq!(token.unwrap().expose(), "first-token");
        }
    };
    meter.reset();
    ask(p.tenants.scope_for_invocation(&t).await.unwrap().unwrap()).await;
    assert_eq!(requests(&meter, "GetItem"), 1.0, "the profile, once");
    assert_eq!(requests(&meter, "Query"), 1.0, "the channels, once");

    // A scope of every other path reads the store on every call.
    meter.reset();
    ask(p.tenants.scope(&t).await.unwrap().unwrap()).await;
    assert_eq!(requests(&meter, "GetItem"), 1.0 + 2.0 * 3.0);
    assert_eq!(requests(&meter, "Query"), 2.0);
}

async fn a_write_or_a_fresh_scope_sees_what_the_store_holds(b: Backend) {
    let (_, p) = metered(&b);
    let t = tenant_with_portal(&p).await;
    let job = p.tenants.scope_for_invocation(&t).await.unwrap().unwrap();
    let token = |s: wappline::tenant::TenantScope| async move {
        s.channels().await.unwrap();
        s.channel_secret(&portal(), "access_token")
            .await
            .unwrap()
            .expose()
            .to_owned()
    };
    assert_eq!(token(job.clone()).await, "first-token");

    // Another process refreshes the pair: this job keeps what it read at its start...
    let other = p.tenants.scope(&t).await.unwrap().unwrap();
    other
        .replace_secrets(&portal(), &[("access_token", &secret("second-token"))])
        .await
        .unwrap();
    assert_eq!(token(job.clone()).await, "first-token");
    // ...except where it asks for the store's pair (a refresh's conflict).
    assert_eq!(token(job.fresh()).await, "second-token");

    // A write through the job's own scope is seen by its next read.
    job.replace_secrets(&portal(), &[("access_token", &secret("third-token"))])
        .await
        .unwrap();
    assert_eq!(token(job.clone()).await, "third-token");
}

fn op(text: &str) -> CrmOp {
    CrmOp {
        method: "imconnector.send.messages".into(),
        params: json!({"MESSAGES": [{"message": {"text": text}}]}),
        lookup: None,
        files: Vec::new(),
    }
}

async fn the_outbox_stages_and_claims_one_operation_without_extra_units(b: Backend) {
    let (meter, p) = metered(&b);
    let t = tenant_with_portal(&p).await;
    let outbox = Outbox::new(p.store.clone(), p.envelope.clone());
    let first = Outbox::key(&t, "c_1", "e1");
    let second = Outbox::key(&t, "c_2", "e2");
    meter.reset();
    let now = wappline::clock::now_millis();
    assert_eq!(
        outbox.stage(&t, &first, &op("one"), now).await.unwrap(),
        OpState::Pending
    );
    assert_eq!(
        requests(&meter, "GetItem"),
        0.0,
        "a first staging reads nothing"
    );
    assert_eq!(requests(&meter, "PutItem"), 1.0);
    // A redelivery of the job finds its operation staged, and stages nothing new.
    assert_eq!(
        outbox.stage(&t, &first, &op("one"), now).await.unwrap(),
        OpState::Pending
    );
    assert_eq!(outbox.staged_ops(&t).await.unwrap().len(), 1);

    // One operation ready: claimed and settled by conditional updates.
    meter.reset();
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    let claimed = outbox
        .claim(&ready, "attempt-1", now + 30_000, now)
        .await
        .unwrap();
    assert_eq!(claimed, vec![first.clone()]);
    // Claimed: a second claim of the same operation is refused.
    let again = outbox
        .claim(&ready, "attempt-2", now + 30_000, now)
        .await
        .unwrap();
    assert!(again.is_empty(), "claimed twice");
    let sent = OpOutcome::Sent {
        crm_chat_id: Some("7".into()),
        missing: Default::default(),
    };
    let settled = outbox
        .settle("attempt-1", vec![(first.clone(), sent.clone(), false)])
        .await;
    assert!(settled.error.is_none(), "{:?}", settled.error);
    assert_eq!(settled.written, vec![(first.clone(), sent.clone())]);
    assert_eq!(
        outbox.state(&first).await.unwrap(),
        Some(OpState::Done(sent.clone()))
    );
    assert_eq!(requests(&meter, "TransactWriteItems"), 0.0);
    assert_eq!(
        requests(&meter, "UpdateItem"),
        3.0,
        "claim, refused claim, outcome"
    );

    // Two ready: a conditional update each, no transaction (decision 0086).
    outbox.remove(&first).await.unwrap();
    for key in [&first, &second] {
        outbox.stage(&t, key, &op("two"), now).await.unwrap();
    }
    meter.reset();
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    let claimed = outbox
        .claim(&ready, "attempt-3", now + 30_000, now)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(requests(&meter, "TransactWriteItems"), 0.0);
    assert_eq!(requests(&meter, "UpdateItem"), 2.0);
}

/// Conversation c_1 has two operations staged, c_2 one. Another attempt claims c_1's first
/// after this one read them: this claim keeps c_2's only, gives c_1's second back, and the
/// outbox offers nothing of c_1 until its first is settled (decision 0086).
async fn a_claim_stops_at_an_operation_another_attempt_holds(b: Backend) {
    let (_, p) = metered(&b);
    let t = tenant_with_portal(&p).await;
    let outbox = Outbox::new(p.store.clone(), p.envelope.clone());
    let now = wappline::clock::now_millis();
    let keys = [
        Outbox::key(&t, "c_1", "e1"),
        Outbox::key(&t, "c_1", "e2"),
        Outbox::key(&t, "c_2", "e3"),
    ];
    for (i, key) in keys.iter().enumerate() {
        outbox
            .stage(&t, key, &op("x"), now + i as i64)
            .await
            .unwrap();
    }
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    assert_eq!(
        ready.iter().map(|o| &o.key).collect::<Vec<_>>(),
        keys.iter().collect::<Vec<_>>()
    );
    let theirs = outbox
        .claim(&ready[..1], "other", now + 30_000, now)
        .await
        .unwrap();
    assert_eq!(theirs, vec![keys[0].clone()]);
    let ours = outbox
        .claim(&ready, "ours", now + 30_000, now)
        .await
        .unwrap();
    assert_eq!(
        ours,
        vec![keys[2].clone()],
        "c_1's second stays behind its first"
    );
    assert_eq!(
        outbox.state(&keys[1]).await.unwrap(),
        Some(OpState::Pending)
    );
    assert!(
        outbox.ready(&t, now, 50).await.unwrap().is_empty(),
        "c_1's second waits while its first is claimed"
    );
    let sent = OpOutcome::Sent {
        crm_chat_id: None,
        missing: Default::default(),
    };
    let settled = outbox
        .settle("other", vec![(keys[0].clone(), sent, false)])
        .await;
    assert_eq!(settled.written.len(), 1);
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    assert_eq!(
        ready.iter().map(|o| &o.key).collect::<Vec<_>>(),
        vec![&keys[1]]
    );
}

/// A flusher claims an operation and dies with it (decision 0091). Once its claim has run
/// out, the claim that takes it over counts the death in the same conditional update, and
/// nothing more is asked of the store; a flusher that renews its claim before the takeover
/// (slow, not dead) is not counted. The claim that would count the last death settles the
/// operation as killed instead, in one update, and its job's retry does not stage it again.
async fn a_claim_that_takes_over_a_dead_flushers_counts_the_death_in_the_same_update(b: Backend) {
    let (meter, p) = metered(&b);
    let t = tenant_with_portal(&p).await;
    let outbox = Outbox::new(p.store.clone(), p.envelope.clone());
    let key = Outbox::key(&t, "c_1", "e1");
    let claim = 30_000;
    let mut now = wappline::clock::now_millis();
    outbox.stage(&t, &key, &op("deadly"), now).await.unwrap();
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    assert_eq!((ready[0].deaths, ready[0].ran_out.as_deref()), (0, None));
    let mut holder = "first".to_owned();
    outbox
        .claim(&ready, &holder, now + claim, now)
        .await
        .unwrap();

    // A slow flusher renews its claim after it ran out, before anyone took it over: the
    // takeover read before the renewal is refused, and no death is counted.
    now += claim + 1;
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    assert_eq!(ready[0].ran_out.as_deref(), Some(holder.as_str()));
    let renewed = outbox.extend(&ready, &holder, now + claim).await.unwrap();
    assert_eq!(renewed, vec![key.clone()]);
    assert!(outbox
        .claim(&ready, "too-early", now + claim, now)
        .await
        .unwrap()
        .is_empty());

    // It dies now; so does every flusher that takes it over.
    for death in 1..DEATH_LIMIT {
        now += claim + 1;
        let ready = outbox.ready(&t, now, 50).await.unwrap();
        assert_eq!(ready[0].deaths, death - 1);
        assert_eq!(ready[0].ran_out.as_deref(), Some(holder.as_str()));
        assert!(ready[0].ambiguous, "a run-out claim is ambiguous");
        assert!(!deaths::at_limit(&ready[0]));
        holder = format!("taker-{death}");
        meter.reset();
        let claimed = outbox
            .claim(&ready, &holder, now + claim, now)
            .await
            .unwrap();
        assert_eq!(claimed, vec![key.clone()]);
        assert_eq!(
            (requests(&meter, "UpdateItem"), all_requests(&meter)),
            (1.0, 1.0),
            "the death rides on the claim"
        );
    }
    now += claim + 1;
    let ready = outbox.ready(&t, now, 50).await.unwrap();
    assert_eq!(ready[0].deaths, DEATH_LIMIT - 1);
    assert!(deaths::at_limit(&ready[0]));
    meter.reset();
    assert!(outbox.retire(&ready[0], now).await.unwrap());
    assert_eq!(
        (requests(&meter, "UpdateItem"), all_requests(&meter)),
        (1.0, 1.0)
    );
    assert_eq!(
        outbox.state(&key).await.unwrap(),
        Some(OpState::Done(killed_outcome()))
    );
    assert!(outbox.ready(&t, now, 50).await.unwrap().is_empty());
    // Retired once: a second flusher that read it before is refused.
    assert!(!outbox.retire(&ready[0], now).await.unwrap());
    // The job's retry finds it killed and ends on it; nothing staged to post.
    assert_eq!(
        outbox.stage(&t, &key, &op("deadly"), now).await.unwrap(),
        OpState::Done(killed_outcome())
    );
    assert!(outbox.ready(&t, now + claim, 50).await.unwrap().is_empty());
}

on_both_backends!(
    a_job_reads_its_profile_and_channels_once,
    a_write_or_a_fresh_scope_sees_what_the_store_holds,
    the_outbox_stages_and_claims_one_operation_without_extra_units,
    a_claim_stops_at_an_operation_another_attempt_holds,
    a_claim_that_takes_over_a_dead_flushers_counts_the_death_in_the_same_update,
);
