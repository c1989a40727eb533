//! Inbound jobs on the queue adapters (decision 0026): every sample delivery goes through the
//! webhook intake onto `inbound.fifo`, and the message bodies and group ids the queue hands
//! out hold none of the deliveries' texts, captions, names, links, phone numbers (plain or in
//! base64 as inside wamids) or message ids. On SQS (moto) that is what sits on the queue and,
//! moved unchanged, on its dead-letter queue. Then the inbound worker opens and stores every
//! job it received.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wappline::app::Platform;
use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::faults::hooked::StoreCall;
use wappline::inbound::intake::{VerifyToken, WebhookIntake};
use wappline::inbound::worker::InboundWorker;
use wappline::meta::AppSecret;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue, QueueName, ReceivedMessage};
use wappline::store::{Item, Table};
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

use crate::backends::{aws, embedded, sqs_platform_queues, Backend};
use crate::personal_data::{describe, found_in, needles};

const WA_NUMBER: &str = "106540352242922";
const IG_ACCOUNT: &str = "17841405822304914";
const WABA: &str = "102290129340398";

fn samples() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Whether `call` is the inbound worker's record of its own run or attempt (`INRUN`,
/// `INTRY`): a fault hook that breaks the job's writes spares these, so the worker can count
/// the failed attempt as it would after a real outage.
pub(crate) fn is_attempt_bookkeeping(call: &StoreCall<'_>) -> bool {
    call.targets()
        .iter()
        .any(|(_, key)| key.sk == "INRUN" || key.sk == "INTRY")
}

/// A tenant with `channels` connected (a token each), the webhook intake onto
/// `inbound.fifo` and the inbound worker: what the inbound queue tests run against.
pub(crate) struct InboundWorld {
    pub p: Platform,
    pub secret: AppSecret,
    pub inbound: QueueName,
    pub intake: WebhookIntake,
    pub worker: InboundWorker,
}

pub(crate) async fn inbound_world(
    backend: &Backend,
    queue: &Arc<dyn Queue>,
    channels: &[(ChannelKind, &str)],
) -> InboundWorld {
    let p = Platform::new(backend.store.clone(), backend.vault.clone());
    let tenant = p
        .tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let scope = p.tenants.scope(&tenant).await.unwrap().unwrap();
    for &(kind, id) in channels {
        let mut secrets = BTreeMap::new();
        secrets.insert("access_token", Secret::parse("a", "EAAtoken").unwrap());
        scope
            .connect(Connection {
                channel: ChannelRef::parse(kind, id).unwrap(),
                details: BTreeMap::new(),
                secrets,
                authorized_by: None,
            })
            .await
            .unwrap();
    }
    let secret = AppSecret::new("6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b").unwrap();
    let inbound = platform::name(platform::INBOUND);
    let intake = WebhookIntake::new(
        vec![secret.clone()],
        VerifyToken::new("verify").unwrap(),
        p.tenants.clone(),
        queue.clone(),
        inbound.clone(),
    );
    let worker = InboundWorker::new(
        p.store.clone(),
        p.envelope.clone(),
        p.tenants.clone(),
        queue.clone(),
    );
    InboundWorld {
        p,
        secret,
        inbound,
        intake,
        worker,
    }
}

impl InboundWorld {
    /// The worker handles `m` as the consumer would, which must succeed, then it is
    /// acknowledged.
    pub(crate) async fn work(&self, queue: &Arc<dyn Queue>, m: &ReceivedMessage) {
        let record = QueueRecord::from(m);
        assert_eq!(self.worker.handle(&record).await, Outcome::Done);
        queue.ack(&self.inbound, &m.receipt).await.unwrap();
    }

    /// How many items of the data table `keep` keeps, over every page of a scan.
    pub(crate) async fn count_data(&self, keep: impl Fn(&Item) -> bool) -> usize {
        let mut count = 0;
        let mut next = None;
        loop {
            let page = self
                .p
                .store
                .scan(Table::Data, next.as_ref(), 500)
                .await
                .unwrap();
            count += page.items.iter().filter(|i| keep(i)).count();
            match page.next {
                Some(k) => next = Some(k),
                None => return count,
            }
        }
    }
}

async fn case(backend: Backend, queue: Arc<dyn Queue>) {
    let w = inbound_world(
        &backend,
        &queue,
        &[
            (ChannelKind::WhatsApp, WA_NUMBER),
            (ChannelKind::Instagram, IG_ACCOUNT),
        ],
    )
    .await;
    let samples = samples();
    let mut enqueued = 0;
    for body in &samples {
        enqueued += w
            .intake
            .accept(Some(&w.secret.sign(body)), body)
            .await
            .unwrap()
            .enqueued;
    }
    assert!(enqueued >= 40, "{enqueued} jobs");

    let bodies: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let needles = needles(&bodies, &[WA_NUMBER, IG_ACCOUNT, WABA]);
    assert!(needles.len() >= 100, "{} needles", needles.len());
    // Everything the queue holds, as a consumer receives it (a FIFO group's next job comes
    // once the one before it is acknowledged): checked, then opened and stored by the worker.
    let mut received = 0;
    for _ in 0..200 {
        let got = queue
            .receive(&w.inbound, 10, Duration::from_secs(120))
            .await
            .unwrap();
        if got.is_empty() && received >= enqueued {
            break;
        }
        for m in got {
            received += 1;
            let mut on_queue = m.body.clone().into_bytes();
            on_queue.extend_from_slice(m.group_id.as_deref().unwrap_or_default().as_bytes());
            let found = found_in(&needles, &on_queue);
            assert!(
                found.is_empty(),
                "{} personal values on the queue:\n{}",
                found.len(),
                describe(&found)
            );
            w.work(&queue, &m).await;
        }
    }
    assert_eq!(received, enqueued, "every job received once");
    let stored = w
        .count_data(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .await;
    assert!(stored >= 25, "{stored} messages stored from sealed jobs");
}

#[tokio::test]
async fn sqs_bodies_hold_no_personal_data_and_open_in_the_worker() {
    case(aws().await, sqs_platform_queues("sealed").await).await;
}

#[tokio::test]
async fn embedded_queue_bodies_hold_no_personal_data_and_open_in_the_worker() {
    let backend = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    case(backend, Arc::new(queue)).await;
}
