//! One customer's events keep their order on `inbound.fifo` whatever identity a delivery names
//! them by (decision 0063). Meta names a WhatsApp customer by BSUID and phone in their
//! messages, but a change of number or of BSUID comes as a `system` message from the phone
//! alone; the intake grouped that notice under the phone, so the queue handed it out while the
//! customer's earlier message was still in flight, and an inbound worker could move the
//! customer before that message had opened their conversation: a second conversation (and
//! Bitrix24 chat), its posts out of order with the first's. Run on the embedded queue and on
//! SQS (moto), with the real intake and worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wappline::app::Platform;
use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::inbound::intake::{VerifyToken, WebhookIntake};
use wappline::inbound::worker::InboundWorker;
use wappline::meta::AppSecret;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::sqs::{provision_queues, SqsQueue};
use wappline::queue::{platform, Queue, ReceivedMessage};
use wappline::store::Table;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

use crate::backends::{aws, embedded, Backend};
use crate::support::{aws_config, unique};

const WA_NUMBER: &str = "106540352242922";
/// Longer than the test: a received job stays in flight until it is acknowledged.
const HELD: Duration = Duration::from_secs(120);

fn sample(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook");
    std::fs::read(dir.join(name)).unwrap()
}

async fn case(backend: Backend, queue: Arc<dyn Queue>) {
    let p = Platform::new(backend.store.clone(), backend.vault.clone());
    let tenant = p
        .tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let scope = p.tenants.scope(&tenant).await.unwrap().unwrap();
    let mut secrets = BTreeMap::new();
    secrets.insert("access_token", Secret::parse("a", "EAAtoken").unwrap());
    scope
        .connect(Connection {
            channel: ChannelRef::parse(ChannelKind::WhatsApp, WA_NUMBER).unwrap(),
            details: BTreeMap::new(),
            secrets,
            authorized_by: None,
        })
        .await
        .unwrap();
    let secret = AppSecret::new("6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b").unwrap();
    let inbound = platform::name(platform::INBOUND);
    let intake = WebhookIntake::new(
        vec![secret.clone()],
        VerifyToken::new("verify").unwrap(),
        p.tenants.clone(),
        queue.clone(),
        inbound.clone(),
    );
    // Sheena's first message (BSUID and phone), then her change of number and her change of
    // BSUID (each from her old phone alone), as Meta delivers them.
    for name in [
        "whatsapp-audio.json",
        "whatsapp-system-number-changed.json",
        "whatsapp-system-user-id-changed.json",
    ] {
        let body = sample(name);
        let accepted = intake.accept(Some(&secret.sign(&body)), &body).await;
        assert_eq!(accepted.unwrap().enqueued, 1, "{name}");
    }

    // A consumer takes her first message and is still at it.
    let first = queue.receive(&inbound, 1, HELD).await.unwrap();
    assert_eq!(first.len(), 1);
    // Nothing else of hers may be handed out meanwhile: another consumer would move her to
    // her new number before this message has opened her conversation.
    let meanwhile = queue.receive(&inbound, 10, HELD).await.unwrap();
    assert!(
        meanwhile.is_empty(),
        "{} of her later events handed out while her first message is in flight",
        meanwhile.len()
    );

    // Everything in the order the queue allows: one conversation, and its three posts queued
    // for Bitrix24 in one FIFO group, so in the order the worker stored them.
    let worker = InboundWorker::new(
        p.store.clone(),
        p.envelope.clone(),
        p.tenants.clone(),
        queue.clone(),
    );
    let handle = |m: ReceivedMessage| {
        let worker = &worker;
        let queue = &queue;
        let inbound = &inbound;
        async move {
            let record = QueueRecord {
                message_id: m.message_id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
                group_id: m.group_id.clone(),
            };
            assert_eq!(worker.handle(&record).await, Outcome::Done);
            queue.ack(inbound, &m.receipt).await.unwrap();
        }
    };
    for m in first {
        handle(m).await;
    }
    for _ in 0..10 {
        let got = queue.receive(&inbound, 10, HELD).await.unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            handle(m).await;
        }
    }
    let mut conversations = 0;
    let mut next = None;
    loop {
        let page = p.store.scan(Table::Data, next.as_ref(), 500).await.unwrap();
        conversations += page
            .items
            .iter()
            .filter(|i| {
                i.get_s("sk") == Some("META")
                    && i.get_s("pk").is_some_and(|pk| pk.contains("#CONV#"))
            })
            .count();
        match page.next {
            Some(k) => next = Some(k),
            None => break,
        }
    }
    assert_eq!(conversations, 1, "one customer, one conversation");
    let sync = platform::name(platform::SYNC);
    let jobs = queue.receive(&sync, 10, HELD).await.unwrap();
    assert_eq!(jobs.len(), 3, "three posts for Bitrix24, in one FIFO group");
    assert!(jobs.iter().all(|j| j.group_id == jobs[0].group_id));
}

#[tokio::test]
async fn embedded_a_change_of_identity_waits_behind_the_customers_message_in_flight() {
    let backend = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    case(backend, Arc::new(queue)).await;
}

#[tokio::test]
async fn sqs_a_change_of_identity_waits_behind_the_customers_message_in_flight() {
    let config = aws_config().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let urls = provision_queues(&client, &unique("order"), &platform::specs())
        .await
        .unwrap();
    case(aws().await, Arc::new(SqsQueue::new(client, urls))).await;
}
