//! A staged operation whose post kills the flusher every time (decision 0091): posted alone
//! after its first death, settled as killed after the limit, its job dead-lettered, while
//! the operations that died beside it once, its conversation's next one and the other
//! conversations' go out.
//!
//! The death is a panic of the flush task at the deadly post (its media link, made just
//! before the request): a stand-in for a post that runs its process out of memory or time.
//! The task is spawned, so the panic ends it alone, as a process death ends the flusher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::harness::WA_NUMBER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::bitrix::CrmFile;
use wappline::crm_sync::deaths::DEATH_LIMIT;
use wappline::crm_sync::outbox::{killed_outcome, CrmOp, FileToLink, OpState, Outbox, PARTITION};
use wappline::crm_sync::{FlushConfig, MediaLinker, PortalFlusher, SyncWorker};
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Media, MediaKind};
use wappline::metrics::Metrics;
use wappline::queue::platform;
use wappline::store::{Key, TableStore};
use wappline::tenant::TenantScope;

use super::{batch_commands, delivery, names_a_staged_operation, staged_post, Rig};

/// The WhatsApp media id of the post that kills its flusher.
const DEADLY: &str = "900000666";

/// Links no media (the file goes as a text label), and panics on the deadly media.
struct DiesOnDeadlyMedia;

#[async_trait]
impl MediaLinker for DiesOnDeadlyMedia {
    async fn link(&self, _: &TenantId, _: &AccountRef, media: &Media) -> Option<CrmFile> {
        if media.media_id.as_deref() == Some(DEADLY) {
            panic!("the deadly post killed its flusher");
        }
        None
    }
}

/// A post of `conversation`'s customer with our message id `id`, as a sync job stages it;
/// `deadly`: with the file that kills the flusher.
fn post(conversation: &str, id: &str, deadly: bool) -> CrmOp {
    let mut media = Media::new(MediaKind::Image);
    media.media_id = Some(DEADLY.to_owned());
    let files = if deadly {
        vec![FileToLink {
            account: AccountRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap()),
            conversation: conversation.to_owned(),
            media,
        }]
    } else {
        Vec::new()
    };
    staged_post(conversation, id, files)
}

/// The number of commands of each `batch` request that carried the message `id`.
fn requests_carrying(rig: &Rig, id: &str) -> Vec<usize> {
    batch_commands(rig)
        .iter()
        .filter(|commands| commands.iter().any(|c| c.contains(id)))
        .map(Vec::len)
        .collect()
}

/// One flush in a task of its own; true when it died.
async fn flush_dies(flusher: &PortalFlusher, scope: &TenantScope) -> bool {
    let (flusher, scope) = (flusher.clone(), scope.clone());
    match tokio::spawn(async move { flusher.flush(&scope).await }).await {
        Ok(flushed) => {
            flushed.unwrap();
            false
        }
        Err(e) => {
            assert!(e.is_panic(), "{e}");
            true
        }
    }
}

/// Conversation X has its deadly post and a later one staged, Y one post. The first flush
/// carries the three and dies; each of them has a death on record. From then on each goes
/// out alone: Y's innocent post first (fewer deaths than the deadly one after the next
/// death) and once; the deadly post dies alone until the limit, then is settled as killed,
/// never posted; X's later post goes out after it, alone, once.
#[tokio::test]
async fn a_post_that_kills_its_flushers_is_isolated_then_retired_and_the_others_go_out() {
    let rig = Rig::start().await;
    let platform = rig.h.server.platform();
    let tenant = TenantId::parse(&rig.tenant).unwrap();
    let outbox = Outbox::new(platform.store.clone(), platform.envelope.clone());
    let (x, y) = (
        format!("c_{}", "d".repeat(32)),
        format!("c_{}", "e".repeat(32)),
    );
    let staged: Vec<(Key, &str, CrmOp)> = vec![
        (
            Outbox::key(&tenant, &x, "x1"),
            "wamid.deadly.x1",
            post(&x, "wamid.deadly.x1", true),
        ),
        (
            Outbox::key(&tenant, &x, "x2"),
            "wamid.deadly.x2",
            post(&x, "wamid.deadly.x2", false),
        ),
        (
            Outbox::key(&tenant, &y, "y1"),
            "wamid.deadly.y1",
            post(&y, "wamid.deadly.y1", false),
        ),
    ];
    let now = rig.now.load(Ordering::SeqCst);
    for (i, (key, _, op)) in staged.iter().enumerate() {
        outbox
            .stage(&tenant, key, op, now + i as i64)
            .await
            .unwrap();
    }
    let clock = rig.now.clone();
    let flusher = PortalFlusher::new(
        outbox.clone(),
        platform.store.clone(),
        crate::bitrix_client::client(&rig.fake),
        FlushConfig {
            budget: Duration::from_secs(3),
            ..FlushConfig::default()
        },
        Arc::new(move || clock.load(Ordering::SeqCst)),
    )
    .with_media_links(Some(Arc::new(DiesOnDeadlyMedia)));
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();

    assert!(flush_dies(&flusher, &scope).await, "the first flush died");
    assert!(rig.fake.calls_to("batch").is_empty(), "nothing went out");
    let mut deaths = 1;
    let mut flushes = 1;
    let deadly = &staged[0].0;
    while outbox.state(deadly).await.unwrap() != Some(OpState::Done(killed_outcome())) {
        flushes += 1;
        assert!(flushes <= 2 * DEATH_LIMIT, "not stopped: {deaths} deaths");
        // Every claim and the dead flusher's lease run out.
        rig.advance(FlushConfig::default().claim + Duration::from_secs(1));
        if flush_dies(&flusher, &scope).await {
            deaths += 1;
        }
        if outbox.state(deadly).await.unwrap() != Some(OpState::Done(killed_outcome())) {
            assert_eq!(
                rig.fake.posts_of(FAKE_DOMAIN, "wamid.deadly.x2"),
                0,
                "X's later post waits while the deadly one is unsettled"
            );
        }
    }
    assert_eq!(deaths, DEATH_LIMIT, "stopped at the limit");
    // The flush that retired it posted what was left.
    assert_eq!(rig.fake.posts_of(FAKE_DOMAIN, "wamid.deadly.x1"), 0);
    for id in ["wamid.deadly.y1", "wamid.deadly.x2"] {
        assert_eq!(rig.fake.posts_of(FAKE_DOMAIN, id), 1, "{id} posted once");
        assert_eq!(requests_carrying(&rig, id), [1], "{id} went out alone");
    }
    assert_eq!(rig.fake.duplicate_posts(), 0);
    // Y's went out first, in a flush that the deadly post then killed.
    let order: Vec<String> = rig
        .fake
        .messages_received()
        .into_iter()
        .map(|m| m.external_message_id)
        .collect();
    assert_eq!(order, ["wamid.deadly.y1", "wamid.deadly.x2"]);
    assert!(flushes > DEATH_LIMIT, "Y's post had a flush of its own");
    rig.h.server.shutdown().await;
}

/// Counts the updates of staged operations (claims, renewals, give-backs, outcomes) and
/// every other call that names one.
#[derive(Default)]
struct CountsOperationCalls {
    updates: AtomicUsize,
    others: AtomicUsize,
    /// Queries of the outbox's partition (the ready operations).
    queries: AtomicUsize,
}

#[async_trait]
impl StoreHook for CountsOperationCalls {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if call.partition().is_some_and(|p| p.contains(PARTITION)) {
            self.queries.fetch_add(1, Ordering::SeqCst);
        }
        if names_a_staged_operation(call) {
            match call {
                StoreCall::Update { .. } => self.updates.fetch_add(1, Ordering::SeqCst),
                _ => self.others.fetch_add(1, Ordering::SeqCst),
            };
        }
        Verdict::Run
    }
}

/// Without a death, a flush asks the store what it asked before decision 0091: one claim
/// and one outcome per operation, and every operation of the portal in one request.
#[tokio::test]
async fn a_flush_without_a_death_asks_the_store_nothing_more() {
    let rig = Rig::start().await;
    let platform = rig.h.server.platform();
    let tenant = TenantId::parse(&rig.tenant).unwrap();
    let outbox = Outbox::new(platform.store.clone(), platform.envelope.clone());
    let now = rig.now.load(Ordering::SeqCst);
    let mut ids = Vec::new();
    for i in 0..6 {
        let conversation = format!("c_{}{i}", "f".repeat(31));
        let id = format!("wamid.clean.{i}");
        let key = Outbox::key(&tenant, &conversation, &format!("e{i}"));
        outbox
            .stage(&tenant, &key, &post(&conversation, &id, false), now + i)
            .await
            .unwrap();
        ids.push(id);
    }
    let counted = Arc::new(HookedStore::new(
        platform.store.clone(),
        CountsOperationCalls::default(),
    ));
    let store: Arc<dyn TableStore> = counted.clone();
    let clock = rig.now.clone();
    let flusher = PortalFlusher::new(
        Outbox::new(store.clone(), platform.envelope.clone()),
        store,
        crate::bitrix_client::client(&rig.fake),
        FlushConfig::default(),
        Arc::new(move || clock.load(Ordering::SeqCst)),
    );
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();
    let report = flusher.flush(&scope).await.unwrap();
    assert_eq!((report.requests, report.sent), (1, 6), "{report:?}");
    assert_eq!(requests_carrying(&rig, &ids[0]), [6]);
    assert_eq!(counted.hook().updates.load(Ordering::SeqCst), 2 * 6);
    assert_eq!(
        counted.hook().queries.load(Ordering::SeqCst),
        2,
        "the ready operations, then none"
    );
    assert_eq!(
        counted.hook().others.load(Ordering::SeqCst),
        0,
        "no read or write of a staged operation but its claim and outcome"
    );
    rig.h.server.shutdown().await;
}

/// A WhatsApp image from customer `c` with message id `id`, the media `media_id`.
fn image(c: usize, id: &str, n: usize, media_id: &str) -> Vec<u8> {
    let mut photo: Value = serde_json::from_slice(&delivery(c, id, n)).unwrap();
    photo["entry"][0]["changes"][0]["value"]["messages"][0] = json!({
        "from": (16_505_550_000u64 + c as u64).to_string(), "id": id,
        "timestamp": (1_767_261_600 + n as i64).to_string(), "type": "image",
        "image": {"mime_type": "image/jpeg", "sha256": "c2hh", "id": media_id}
    });
    serde_json::to_vec(&photo).unwrap()
}

/// One round of the sync queue in a task of its own, as a consumer would run it; true when
/// its task died (its records come back after `visibility`).
async fn round_dies(rig: &Rig, worker: &SyncWorker, visibility: Duration) -> bool {
    rig.round_in_task(worker, visibility).await.is_none()
}

/// Customer 0 sends an image whose post kills the flusher, then a text; customer 1 a text.
/// The sync job of the image dies with every flush that posts it, until its operation is
/// settled as killed: the job is dead-lettered with the failure class `killed_its_worker`,
/// its operation dropped, and customer 0's text and customer 1's go out once each.
#[tokio::test]
async fn a_job_whose_post_kills_its_worker_is_dead_lettered_and_its_conversation_goes_on() {
    let rig = Rig::start().await;
    let (metrics, _) = Metrics::in_memory(crate::metrics::NAMESPACE);
    let worker = rig
        .worker(rig.h.server.platform().store.clone())
        .with_media_links(Arc::new(DiesOnDeadlyMedia))
        .with_metrics(metrics.clone());
    // Both chats exist: the deadly post, ambiguous after its first death, is looked up.
    let known = rig.customers_write(2, 1, "known").await;
    while rig.sync_depth().await > 0 {
        rig.round(&worker).await;
    }
    let deadly = "wamid.kills.0.1";
    for body in [
        image(0, deadly, 1, DEADLY),
        delivery(0, "wamid.kills.0.2", 2),
        delivery(1, "wamid.kills.1.1", 1),
    ] {
        let (s, text) = rig.h.post_signed(&body).await;
        assert_eq!(s, StatusCode::OK, "{text}");
    }
    rig.h
        .drain(platform::INBOUND, Duration::from_secs(30))
        .await;
    let visibility = Duration::from_millis(200);
    let (mut rounds, mut deaths) = (0, 0);
    while rig.sync_depth().await > 0 {
        rounds += 1;
        assert!(rounds < 40, "does not converge: {deaths} deaths");
        if round_dies(&rig, &worker, visibility).await {
            deaths += 1;
            // The dead round's records come back; every hold, lease and claim runs out.
            tokio::time::sleep(visibility + Duration::from_millis(50)).await;
            rig.advance(Duration::from_secs(600));
        } else {
            rig.advance(Duration::from_secs(1));
        }
    }
    assert_eq!(deaths, DEATH_LIMIT as usize, "stopped at the limit");
    assert_eq!(rig.dead_lettered().await, 1, "the image's job, visibly");
    assert_eq!(rig.fake.posts_of(FAKE_DOMAIN, deadly), 0);
    rig.assert_delivered_once_in_order(&[
        vec![known[0][0].clone(), "wamid.kills.0.2".to_owned()],
        vec![known[1][0].clone(), "wamid.kills.1.1".to_owned()],
    ]);
    let tenant = TenantId::parse(&rig.tenant).unwrap();
    let outbox = Outbox::new(
        rig.h.server.platform().store.clone(),
        rig.h.server.platform().envelope.clone(),
    );
    assert!(
        outbox.staged_ops(&tenant).await.unwrap().is_empty(),
        "the killed operation dropped with its job"
    );
    let lines = metrics.drain().join("\n");
    assert!(
        lines.contains("\"killed_its_worker\""),
        "counted as a failure of its class: {lines}"
    );
    rig.h.server.shutdown().await;
}
