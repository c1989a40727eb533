//! Parked portals (decision 0025) on both adapter families, driven step by step as the sync
//! worker and the probe drive them: jobs parked in order, the CRM link unreachable and
//! audited, released conversation by conversation in parked order, parked again in place
//! when the portal fails during the release, a job that was waiting on the queue ahead of
//! released copies parked behind them, and the index entry gone once everything is settled.

use std::collections::BTreeMap;
use std::time::Duration;

use wappline::app::Platform;
use wappline::audit::AuditLog;
use wappline::consumer::{Outcome, QueueRecord};
use wappline::conversation::ConversationId;
use wappline::crm_sync::parking::{Gate, MARKER};
use wappline::crm_sync::{ParkState, Parking, SyncAction, SyncJob};
use wappline::ids::TenantId;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::tenant::{
    ChannelKind, ChannelRef, Connection, CrmLinkState, RetentionDays, Secret, TenantName,
};

use crate::backends::Backend;
use crate::on_both_backends;

const CONV_A: &str = "c_0123456789abcdef0123456789abcdef";
const CONV_B: &str = "c_fedcba9876543210fedcba9876543210";
const MEMBER: &str = "a223c6b3710f85df22e9377d6c4f7553";

fn job(tenant: &TenantId, conversation: &str, n: u32) -> SyncJob {
    SyncJob::new(
        tenant.clone(),
        ConversationId::parse(conversation).unwrap(),
        SyncAction::PushMessage {
            message_sk: format!("MSG#{n:04}"),
        },
        &format!("wamid.{n}"),
    )
}

/// The queue record of a job as first enqueued.
fn record(job: &SyncJob) -> QueueRecord {
    let m = job.to_message();
    QueueRecord {
        message_id: format!("m-{}", job.effect),
        body: m.body,
        receive_count: 1,
        group_id: m.group_id,
    }
}

/// What the sync queue delivers next (one message; FIFO order per group), acknowledged.
async fn next(queue: &EmbeddedQueue) -> Option<(SyncJob, QueueRecord)> {
    let sync = platform::name(platform::SYNC);
    let got = queue
        .receive(&sync, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let m = got.into_iter().next()?;
    queue.ack(&sync, &m.receipt).await.unwrap();
    let job: SyncJob = serde_json::from_str(&m.body).unwrap();
    Some((
        job,
        QueueRecord {
            message_id: m.message_id,
            body: m.body,
            receive_count: m.receive_count,
            group_id: m.group_id,
        },
    ))
}

/// Everything on the sync queue, in delivery order: (job's message sk, whether it is a
/// released copy).
async fn drain(queue: &EmbeddedQueue) -> Vec<(SyncJob, QueueRecord)> {
    let mut out = Vec::new();
    while let Some(m) = next(queue).await {
        out.push(m);
    }
    out
}

fn sk(job: &SyncJob) -> &str {
    match &job.action {
        SyncAction::PushMessage { message_sk } => message_sk,
        _ => unreachable!("push jobs only"),
    }
}

async fn actions(b: &Backend, tenant: &TenantId) -> Vec<String> {
    AuditLog::new(b.store.clone())
        .read(tenant, None, 50)
        .await
        .unwrap()
        .entries
        .into_iter()
        .rev()
        .map(|e| {
            assert_eq!(e.actor, "system");
            e.action
        })
        .collect()
}

async fn portal_is_parked_and_released_in_order(b: Backend) {
    let p = Platform::new(b.store.clone(), b.vault.clone());
    let dir = tempfile::tempdir().unwrap();
    let queue = std::sync::Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap());
    let parking = Parking::new(b.store.clone(), p.envelope.clone(), queue.clone());
    let tenant = p
        .tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let scope = p.tenants.scope(&tenant).await.unwrap().unwrap();
    let portal = ChannelRef::parse(ChannelKind::Bitrix24, MEMBER).unwrap();
    scope
        .connect(Connection {
            channel: portal.clone(),
            details: BTreeMap::from([("domain".to_owned(), "acme.bitrix24.com".to_owned())]),
            secrets: BTreeMap::from([
                (
                    "access_token",
                    Secret::parse("access_token", "a0123456789").unwrap(),
                ),
                (
                    "refresh_token",
                    Secret::parse("refresh_token", "r0123456789").unwrap(),
                ),
            ]),
            authorized_by: None,
        })
        .await
        .unwrap();
    let link = || async {
        scope
            .channels()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.kind == ChannelKind::Bitrix24)
            .unwrap()
            .crm_link
            .unwrap()
    };
    let (a1, a2, b3) = (
        job(&tenant, CONV_A, 1),
        job(&tenant, CONV_A, 2),
        job(&tenant, CONV_B, 3),
    );

    // Not parked: jobs run.
    assert_eq!(parking.gate(&a1, &record(&a1)).await, Gate::Run(None));
    assert_eq!(link().await.state, CrmLinkState::Reachable);

    // A1 exhausted by the portal: parked, and the portal with it.
    let parked = parking
        .park_exhausted(&a1, &record(&a1), None, "unavailable")
        .await;
    assert_eq!(parked, Outcome::Done);
    let entry = parking.portal(&tenant).await.unwrap().unwrap();
    assert_eq!(
        (entry.state, entry.error.as_str()),
        (ParkState::Parked, "unavailable")
    );
    let l = link().await;
    assert_eq!(l.state, CrmLinkState::Unreachable);
    assert_eq!(l.last_error.as_deref(), Some("unavailable"));
    assert_eq!(actions(&b, &tenant).await, ["crm_link_unreachable"]);
    // Later jobs are parked without running.
    for j in [&a2, &b3] {
        assert_eq!(parking.gate(j, &record(j)).await, Gate::Held(Outcome::Done));
    }
    assert_eq!(parking.parked_jobs(&tenant).await.unwrap(), 3);
    assert!(drain(&queue).await.is_empty(), "nothing sent while parked");

    // A failed probe is recorded; the state stays.
    parking
        .record_probe_failure(&tenant, "timeout")
        .await
        .unwrap();
    let entry = parking.portal(&tenant).await.unwrap().unwrap();
    assert_eq!(entry.probe_error.as_deref(), Some("timeout"));
    assert!(entry.probed_at_ms.is_some());
    let l = link().await;
    assert_eq!(l.state, CrmLinkState::Unreachable);
    assert_eq!(l.last_error.as_deref(), Some("timeout"));
    assert!(l.last_probe_at.is_some());

    // The probe reaches it: releasing, reachable (audited once), jobs back in order.
    assert!(parking.resume(&tenant).await.unwrap());
    assert!(!parking.resume(&tenant).await.unwrap(), "once");
    assert_eq!(link().await.state, CrmLinkState::Reachable);
    assert_eq!(
        actions(&b, &tenant).await,
        ["crm_link_unreachable", "crm_link_reachable"]
    );
    assert_eq!(parking.release_all(&tenant).await.unwrap(), 3);
    assert_eq!(parking.release_all(&tenant).await.unwrap(), 0, "not twice");
    let copies = drain(&queue).await;
    let order: Vec<&str> = copies.iter().map(|(j, _)| sk(j)).collect();
    let a_order: Vec<&str> = order.iter().copied().filter(|s| *s != "MSG#0003").collect();
    assert_eq!(a_order, ["MSG#0001", "MSG#0002"]);
    assert!(order.contains(&"MSG#0003"));
    for (j, r) in &copies {
        assert!(r.body.contains(&format!("\"{MARKER}\"")), "a marked copy");
        assert_eq!(r.group_id, j.to_message().group_id, "its own group");
    }
    let copy = |n: &str| copies.iter().find(|(j, _)| sk(j) == n).unwrap().clone();

    // A1's copy runs (the oldest of its conversation), and the portal fails again: A1 is
    // parked in its place, and so is A2's copy; the portal is parked again (audited).
    let (j1, r1) = copy("MSG#0001");
    let Gate::Run(Some(released)) = parking.gate(&j1, &r1).await else {
        panic!("the oldest copy runs");
    };
    assert_eq!(
        parking
            .park_exhausted(&j1, &r1, Some(&released), "rate_limited")
            .await,
        Outcome::Done
    );
    assert_eq!(
        parking.portal(&tenant).await.unwrap().unwrap().state,
        ParkState::Parked
    );
    let (j2, r2) = copy("MSG#0002");
    assert_eq!(parking.gate(&j2, &r2).await, Gate::Held(Outcome::Done));
    let (j3, r3) = copy("MSG#0003");
    assert_eq!(parking.gate(&j3, &r3).await, Gate::Held(Outcome::Done));
    assert_eq!(
        parking.parked_jobs(&tenant).await.unwrap(),
        3,
        "no copy lost, none added"
    );
    // A new job of A is parked behind them.
    let a4 = job(&tenant, CONV_A, 4);
    assert_eq!(
        parking.gate(&a4, &record(&a4)).await,
        Gate::Held(Outcome::Done)
    );
    assert_eq!(
        actions(&b, &tenant).await,
        [
            "crm_link_unreachable",
            "crm_link_reachable",
            "crm_link_unreachable"
        ]
    );

    // Reached again. A job of B that was on the queue ahead of B's released copy is parked
    // behind it, and released when the copy is done.
    assert!(parking.resume(&tenant).await.unwrap());
    let b5 = job(&tenant, CONV_B, 5);
    assert_eq!(parking.release_all(&tenant).await.unwrap(), 4);
    assert_eq!(
        parking.gate(&b5, &record(&b5)).await,
        Gate::Held(Outcome::Done)
    );
    let mut delivered = Vec::new();
    let mut rounds = 0;
    loop {
        let batch = drain(&queue).await;
        if batch.is_empty() {
            break;
        }
        for (j, r) in batch {
            let Gate::Run(released) = parking.gate(&j, &r).await else {
                panic!("{}: copies run once the portal answers", sk(&j));
            };
            delivered.push((j.conversation.as_str().to_owned(), sk(&j).to_owned()));
            parking.settle(&released.expect("a released copy")).await;
        }
        rounds += 1;
        assert!(rounds < 5);
    }
    let of = |c: &str| -> Vec<String> {
        delivered
            .iter()
            .filter(|(conv, _)| conv == c)
            .map(|(_, s)| s.clone())
            .collect()
    };
    assert_eq!(of(CONV_A), ["MSG#0001", "MSG#0002", "MSG#0004"]);
    assert_eq!(of(CONV_B), ["MSG#0003", "MSG#0005"]);

    // All settled: the portal is no longer parked, and jobs run again.
    assert_eq!(parking.parked_jobs(&tenant).await.unwrap(), 0);
    assert!(parking.portal(&tenant).await.unwrap().is_none());
    assert!(parking.parked_portals().await.unwrap().is_empty());
    let a6 = job(&tenant, CONV_A, 6);
    assert_eq!(parking.gate(&a6, &record(&a6)).await, Gate::Run(None));
}

on_both_backends!(portal_is_parked_and_released_in_order);
