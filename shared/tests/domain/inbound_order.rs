//! One customer's events keep their order on `inbound.fifo` whatever identity a delivery names
//! them by (decision 0063). Meta names a WhatsApp customer by BSUID and phone in their
//! messages, but a change of number or of BSUID comes as a `system` message from the phone
//! alone; the intake grouped that notice under the phone, so the queue handed it out while the
//! customer's earlier message was still in flight, and an inbound worker could move the
//! customer before that message had opened their conversation: a second conversation (and
//! Bitrix24 chat), its posts out of order with the first's. Likewise a handover of the chat
//! (`messaging_handovers`, which names the customer by phone alone) ran beside their
//! messages, so who held the chat followed arrival order (decision 0097). Run on the embedded
//! queue and on SQS (moto), with the real intake and worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::tenant::ChannelKind;

use crate::backends::{aws, embedded, sqs_platform_queues, Backend};
use crate::sealed_inbound::inbound_world;

const WA_NUMBER: &str = "106540352242922";
/// Longer than the test: a received job stays in flight until it is acknowledged.
const HELD: Duration = Duration::from_secs(120);

fn sample(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook");
    std::fs::read(dir.join(name)).unwrap()
}

/// Sheena's first message (BSUID and phone), then her change of number and her change of
/// BSUID (each from her old phone alone), as Meta delivers them.
const CHANGES_OF_IDENTITY: [&str; 3] = [
    "whatsapp-audio.json",
    "whatsapp-system-number-changed.json",
    "whatsapp-system-user-id-changed.json",
];
/// Sheena's message (BSUID and phone), then her chat passed and taken between apps (each
/// handover naming her by phone alone), as Meta delivers them: two posts, her message and the
/// note of the one change of who answers her.
const HANDOVERS: [&str; 3] = [
    "whatsapp-text.json",
    "whatsapp-messaging-handovers-passed.json",
    "whatsapp-messaging-handovers-taken.json",
];

/// Accepts `samples` in order, holds the first in flight and checks that none of the others
/// is handed out meanwhile; then relays all and expects one conversation whose `posts` posts
/// for Bitrix24 are queued in one FIFO group.
async fn case(backend: Backend, queue: Arc<dyn Queue>, samples: [&str; 3], posts: usize) {
    let w = inbound_world(&backend, &queue, &[(ChannelKind::WhatsApp, WA_NUMBER)]).await;
    for name in samples {
        let body = sample(name);
        let accepted = w.intake.accept(Some(&w.secret.sign(&body)), &body).await;
        assert_eq!(accepted.unwrap().enqueued, 1, "{name}");
    }

    // A consumer takes her first message and is still at it.
    let first = queue.receive(&w.inbound, 1, HELD).await.unwrap();
    assert_eq!(first.len(), 1);
    // Nothing else of hers may be handed out meanwhile: another consumer would move her to
    // her new number before this message has opened her conversation.
    let meanwhile = queue.receive(&w.inbound, 10, HELD).await.unwrap();
    assert!(
        meanwhile.is_empty(),
        "{} of her later events handed out while her first message is in flight",
        meanwhile.len()
    );

    // Everything in the order the queue allows: one conversation, and its posts queued for
    // Bitrix24 in one FIFO group, so in the order the worker stored them.
    for m in &first {
        w.work(&queue, m).await;
    }
    for _ in 0..10 {
        let got = queue.receive(&w.inbound, 10, HELD).await.unwrap();
        if got.is_empty() {
            break;
        }
        for m in &got {
            w.work(&queue, m).await;
        }
    }
    let conversations = w
        .count_data(|i| {
            i.get_s("sk") == Some("META") && i.get_s("pk").is_some_and(|pk| pk.contains("#CONV#"))
        })
        .await;
    assert_eq!(conversations, 1, "one customer, one conversation");
    let sync = platform::name(platform::SYNC);
    let jobs = queue.receive(&sync, 10, HELD).await.unwrap();
    assert_eq!(jobs.len(), posts, "posts for Bitrix24, in one FIFO group");
    assert!(jobs.iter().all(|j| j.group_id == jobs[0].group_id));
}

#[tokio::test]
async fn embedded_a_change_of_identity_waits_behind_the_customers_message_in_flight() {
    let backend = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    case(backend, Arc::new(queue), CHANGES_OF_IDENTITY, 3).await;
}

#[tokio::test]
async fn sqs_a_change_of_identity_waits_behind_the_customers_message_in_flight() {
    let queue = sqs_platform_queues("order").await;
    case(aws().await, queue, CHANGES_OF_IDENTITY, 3).await;
}

#[tokio::test]
async fn embedded_a_handover_waits_behind_the_customers_message_in_flight() {
    let backend = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    case(backend, Arc::new(queue), HANDOVERS, 2).await;
}

#[tokio::test]
async fn sqs_a_handover_waits_behind_the_customers_message_in_flight() {
    let queue = sqs_platform_queues("handover").await;
    case(aws().await, queue, HANDOVERS, 2).await;
}
