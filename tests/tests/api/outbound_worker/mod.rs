//! The send worker on the domain APIs: an embedded store and queue in a temp dir, real
//! encryption, a loopback fake of the Graph API. Operator replies and API sends are accepted
//! by the outbound intake, the worker runs over the outbound queue, and what reached the fake
//! (bodies, uploads) and what was queued for Bitrix24 (status jobs) is checked. Meta's status
//! webhooks then move the sent messages forward through the inbound worker.

mod instagram;

mod retries;

mod service_window;

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::embedded_tenant::{connection, EmbeddedTenant, WA_TOKEN};
use e2e_tests::fake_graph::{FakeGraph, GraphFailure};
use e2e_tests::harness::{sample, IG_ACCOUNT, WABA, WA_NUMBER};
use serde_json::{json, Value};
use wappline::app::Platform;
use wappline::bitrix::ImRef;
use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::conversation::{
    ConversationId, Conversations, Direction, MessageRef, MessageStatus, NewMessage, Origin,
    StoredMessage, TemplateMessage,
};
use wappline::crm_sync::{SyncAction, SyncJob};
use wappline::graph::GraphConfig;
use wappline::idempotency::Idempotency;
use wappline::ids::{InstagramAccountId, PhoneNumberId, TenantId};
use wappline::inbound::worker::InboundWorker;
use wappline::inbound::InboundJob;
use wappline::meta::{
    split_webhook, AccountRef, Content, CustomerId, CustomerRef, InstagramUserId, WhatsAppPhone,
    WhatsAppUserId,
};
use wappline::outbound::{
    window, OutboundClients, OutboundConfig, OutboundRetryPolicy, OutboundWorker,
};
use wappline::outbound::{ApiMessage, OperatorFile, OperatorMessage, OutboundIntake, OutboundJob};
use wappline::pacing::PacingConfig;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, OutgoingMessage, Queue, QueueName};
use wappline::store::{Table, TableStore};
use wappline::tenant::{ChannelRef, TenantScope};

const IG_TOKEN: &str = "IGAAinstagramTokenOfTheTenant0123456789";
const PHONE: &str = "16505551234";
const BSUID: &str = "US.13491208655302741918";
const BSUID_ONLY: &str = "US.17360490192548863021";
const IGSID: &str = "1254459154682919";
const HOUR: i64 = 3600;
const JPEG: &[u8] = b"\xff\xd8\xff\xe0fake jpeg bytes\xff\xd9";
const PDF: &[u8] = b"%PDF-1.4 fake terms %%EOF";
/// The wamid in events/meta-webhook/whatsapp-status-{delivered,read}.json.
const SAMPLE_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRGNDRDMzBEMDdEMzMxQzZGRjZBRQA=";

/// A tenant with the WhatsApp number and the Instagram account connected (their tokens known
/// to the Graph API fake), its send worker and the outbound intake; the send-fault tests use
/// it too, with a worker of their own.
pub(crate) struct World {
    pub(crate) platform: Platform,
    pub(crate) queue: Arc<EmbeddedQueue>,
    pub(crate) graph: FakeGraph,
    pub(crate) worker: OutboundWorker,
    intake: OutboundIntake,
    pub(crate) tenant: TenantId,
    pub(crate) scope: TenantScope,
    _dir: tempfile::TempDir,
}

fn now() -> i64 {
    wappline::clock::now_secs()
}

fn outbound() -> QueueName {
    platform::name(platform::OUTBOUND)
}

fn sync() -> QueueName {
    platform::name(platform::SYNC)
}

pub(crate) fn wa() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap())
}

pub(crate) fn ig() -> AccountRef {
    AccountRef::Instagram(InstagramAccountId::parse(IG_ACCOUNT).unwrap())
}

/// Quick retries, and pacing that never gets in the way unless a test asks for it.
pub(crate) fn test_config() -> OutboundConfig {
    let mut config = OutboundConfig {
        retry: OutboundRetryPolicy::immediate(),
        ..OutboundConfig::default()
    };
    config.pacing.recipient = PacingConfig {
        rate_per_sec: 1000.0,
        burst: 45.0,
        max_wait: Duration::from_millis(50),
    };
    config
}

/// The send worker of a world over `store` (the platform's, or one wrapped around it).
pub(crate) fn worker_over(
    store: Arc<dyn TableStore>,
    platform: &Platform,
    queue: &Arc<EmbeddedQueue>,
    clients: OutboundClients,
    config: OutboundConfig,
) -> OutboundWorker {
    OutboundWorker::new(
        store,
        platform.envelope.clone(),
        platform.tenants.clone(),
        queue.clone(),
        clients,
    )
    .with_config(config)
}

async fn world_with(config: OutboundConfig, ig_page: Option<&str>) -> World {
    World::start(ig_page, |platform, queue, clients| {
        worker_over(platform.store.clone(), platform, queue, clients, config)
            .with_dead_letter_queue(Some(queue.clone()))
    })
    .await
}

async fn world() -> World {
    world_with(test_config(), None).await
}

pub(crate) fn operator(text: &str, files: Vec<OperatorFile>, message_id: u64) -> OperatorMessage {
    OperatorMessage {
        im: ImRef {
            chat_id: 4242,
            message_id,
        },
        text: (!text.is_empty()).then(|| text.to_owned()),
        files,
        at: now(),
    }
}

impl World {
    /// Starts the world; `worker` builds its send worker from the platform, the queue and the
    /// Graph API fake's clients.
    pub(crate) async fn start(
        ig_page: Option<&str>,
        worker: impl FnOnce(&Platform, &Arc<EmbeddedQueue>, OutboundClients) -> OutboundWorker,
    ) -> World {
        let mut ig_details = Vec::new();
        if let Some(page) = ig_page {
            ig_details.push(("page_id", page));
        }
        let EmbeddedTenant {
            platform,
            queue,
            tenant,
            scope,
            dir,
        } = EmbeddedTenant::start([connection(
            ChannelRef::Instagram(InstagramAccountId::parse(IG_ACCOUNT).unwrap()),
            IG_TOKEN,
            &ig_details,
        )])
        .await;
        let graph = FakeGraph::start().await;
        graph.add_token(WA_TOKEN, WA_NUMBER);
        graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, ig_page);
        let graph_config = GraphConfig::default()
            .with_base_url(&graph.base_url())
            .unwrap();
        let clients = OutboundClients::new(graph_config.clone(), graph_config).unwrap();
        let worker = worker(&platform, &queue, clients);
        let intake = OutboundIntake::new(
            platform.store.clone(),
            platform.envelope.clone(),
            queue.clone(),
        );
        World {
            platform,
            queue,
            graph,
            worker,
            intake,
            tenant,
            scope,
            _dir: dir,
        }
    }

    pub(crate) fn conversations(&self) -> Conversations {
        Conversations::new(
            self.tenant.clone(),
            self.platform.store.clone(),
            self.platform.envelope.clone(),
        )
    }

    /// The customer wrote `ago` seconds ago.
    pub(crate) async fn customer(
        &self,
        account: &AccountRef,
        customer: CustomerRef,
        ago: i64,
    ) -> ConversationId {
        self.conversations()
            .record_customer(account, &customer, Some(now() - ago), 90)
            .await
            .unwrap()
    }

    async fn wa_customer(&self, ago: i64) -> ConversationId {
        let mut c = CustomerRef::new(CustomerId::WhatsAppUser(
            WhatsAppUserId::parse(BSUID).unwrap(),
        ));
        c.phone = Some(WhatsAppPhone::parse(PHONE).unwrap());
        self.customer(&wa(), c, ago).await
    }

    async fn ig_customer(&self, ago: i64) -> ConversationId {
        let c = CustomerRef::new(CustomerId::Instagram(
            InstagramUserId::parse(IGSID).unwrap(),
        ));
        self.customer(&ig(), c, ago).await
    }

    pub(crate) async fn reply(
        &self,
        conversation: &ConversationId,
        message: OperatorMessage,
    ) -> MessageRef {
        self.intake
            .accept_operator_message(&self.tenant, conversation, message, 90)
            .await
            .unwrap()
            .message
    }

    /// Stores an outbound message directly (for shapes the intake does not make) and queues
    /// its job.
    async fn store_and_queue(
        &self,
        conversation: &ConversationId,
        account: &AccountRef,
        message: NewMessage,
    ) -> MessageRef {
        let (at, _) = self
            .conversations()
            .store_message(account, conversation, message, 90)
            .await
            .unwrap();
        let job = OutboundJob::new(self.tenant.clone(), &at);
        self.queue
            .send_batch(&outbound(), vec![job.to_message()])
            .await
            .unwrap();
        at
    }

    /// One pass over the visible outbound jobs: each handled, acknowledged when done, made
    /// visible again at once otherwise (the retry delay itself is the worker's answer).
    async fn run(&self) -> Vec<Outcome> {
        self.run_at_most(10).await
    }

    /// [`World::run`] over at most `max` jobs.
    pub(crate) async fn run_at_most(&self, max: usize) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let received = self
            .queue
            .receive(&outbound(), max, Duration::from_secs(60))
            .await
            .unwrap();
        for m in received {
            let record = QueueRecord::from(&m);
            let outcome = self.worker.handle(&record).await;
            if outcome.is_done() {
                self.queue.ack(&outbound(), &m.receipt).await.unwrap();
            } else {
                self.queue
                    .change_visibility(&outbound(), &m.receipt, Duration::ZERO)
                    .await
                    .unwrap();
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Takes every queued sync job off the sync queue.
    pub(crate) async fn sync_jobs(&self) -> Vec<SyncJob> {
        let mut jobs = Vec::new();
        loop {
            let received = self
                .queue
                .receive(&sync(), 10, Duration::from_secs(60))
                .await
                .unwrap();
            if received.is_empty() {
                return jobs;
            }
            for m in received {
                jobs.push(serde_json::from_str(&m.body).unwrap());
                self.queue.ack(&sync(), &m.receipt).await.unwrap();
            }
        }
    }

    pub(crate) async fn message(&self, at: &MessageRef) -> StoredMessage {
        self.conversations().message(at).await.unwrap().unwrap()
    }

    /// Deletes the send job of `at`'s idempotency record: a crash after the job's effects,
    /// before it was recorded done, so that its next delivery runs it again.
    pub(crate) async fn forget_done(&self, at: &MessageRef) {
        let job = OutboundJob::new(self.tenant.clone(), at);
        let done = Idempotency::new(self.platform.store.clone(), "OUT", platform::VISIBILITY)
            .key_for(&self.tenant, &job.effect);
        self.platform
            .store
            .delete(Table::Dedupe, &done, None)
            .await
            .unwrap();
    }

    /// Feeds a Meta webhook sample, as the webhook would have split it, to the inbound worker.
    async fn meta_webhook(&self, name: &str, replace: &str, with: &str) {
        let raw = String::from_utf8(sample(name))
            .unwrap()
            .replace(replace, with);
        self.inbound_webhook(raw.as_bytes()).await;
    }

    /// Feeds a Meta webhook's body, as the webhook would have split it, to the inbound worker.
    pub(crate) async fn inbound_webhook(&self, body: &[u8]) {
        let batch = split_webhook(body).unwrap();
        assert!(!batch.events.is_empty());
        let inbound = InboundWorker::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.queue.clone(),
        );
        for event in batch.events {
            let job = InboundJob::new(self.tenant.clone(), event);
            assert_eq!(inbound.process(&job).await.unwrap(), Outcome::Done);
        }
    }
}

pub(crate) fn statuses(jobs: &[SyncJob]) -> Vec<(MessageStatus, Option<String>)> {
    jobs.iter()
        .filter_map(|j| match &j.action {
            SyncAction::Status {
                status, failure, ..
            } => Some((*status, failure.clone())),
            _ => None,
        })
        .collect()
}

fn sends(fake: &FakeGraph) -> Vec<Value> {
    fake.sent().into_iter().map(|s| s.body).collect()
}

#[tokio::test]
async fn operator_reply_goes_out_once_with_the_documented_body() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let at = w
        .reply(
            &conv,
            operator("[b]Hello[/b], see https://example.com", vec![], 1),
        )
        .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);

    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].path,
        format!("/{}/{WA_NUMBER}/messages", wappline::graph::DEFAULT_VERSION)
    );
    assert_eq!(sent[0].bearer.as_deref(), Some(WA_TOKEN));
    // The send attempt's tag (decision 0055), echoed by Meta in the message's statuses.
    let tag = sent[0].body["biz_opaque_callback_data"].as_str().unwrap();
    assert!(tag.starts_with("wl1.") && tag.ends_with(".0.1"), "{tag}");
    assert_eq!(
        sent[0].body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": PHONE,
            "biz_opaque_callback_data": tag,
            "type": "text",
            "text": {"preview_url": true, "body": "*Hello*, see https://example.com"}
        })
    );
    let stored = w.message(&at).await;
    assert_eq!(
        stored.sent_provider_id.as_deref(),
        Some(sent[0].id.as_str())
    );
    assert_eq!(stored.status, Some(MessageStatus::Sent));
    // Bitrix24 hears that it went out.
    assert_eq!(
        statuses(&w.sync_jobs().await),
        vec![(MessageStatus::Sent, None)]
    );

    // The same job delivered again (a new queue message, as after a lost acknowledgement).
    let job = OutboundJob::new(w.tenant.clone(), &at);
    let again = OutgoingMessage::new(serde_json::to_string(&job).unwrap())
        .grouped("redelivery", "redelivery-1");
    w.queue.send_batch(&outbound(), vec![again]).await.unwrap();
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert_eq!(
        w.graph.sent().len(),
        1,
        "a redelivered job must not send twice"
    );

    // Even without its idempotency record (a crash after the send was recorded, before the
    // job was acknowledged), the recorded provider id stops a second send.
    w.forget_done(&at).await;
    let redelivered = QueueRecord {
        message_id: "redelivery-2".into(),
        body: serde_json::to_string(&job).unwrap(),
        receive_count: 2,
        group_id: Some("redelivery".into()),
    };
    assert_eq!(w.worker.process(&job, &redelivered).await, Outcome::Done);
    assert_eq!(w.graph.sent().len(), 1);
}

#[tokio::test]
async fn reply_context_and_customers_known_only_by_bsuid() {
    let w = world().await;
    let customer = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse(BSUID_ONLY).unwrap(),
    ));
    let conv = w.customer(&wa(), customer, HOUR).await;
    w.store_and_queue(
        &conv,
        &wa(),
        NewMessage {
            provider_message_id: "b24:4242:7".into(),
            direction: Direction::Outbound,
            origin: Origin::Operator,
            content: Content::Text {
                body: "Yes, that one.".into(),
            },
            at_ms: now() * 1000,
            reply_to: Some("wamid.CUSTOMERQUESTION".into()),
            crm_im: Some(ImRef {
                chat_id: 4242,
                message_id: 7,
            }),
            template: None,
            written_with: Default::default(),
        },
    )
    .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let body = &sends(&w.graph)[0];
    assert_eq!(body["recipient"], BSUID_ONLY);
    assert!(body.get("to").is_none(), "{body}");
    assert_eq!(
        body["context"],
        json!({"message_id": "wamid.CUSTOMERQUESTION"})
    );
    assert_eq!(body["text"]["preview_url"], false);
}

#[tokio::test]
async fn files_are_downloaded_uploaded_and_sent_by_media_id() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let photo = w.graph.add_cdn("photo.jpg", "image/jpeg", JPEG);
    let terms = w.graph.add_cdn("terms", "application/octet-stream", PDF);

    // Text and one image: the text is the image's caption.
    w.reply(
        &conv,
        operator(
            "[i]our[/i] new shop",
            vec![OperatorFile {
                url: photo.clone(),
                name: Some("photo.jpg".into()),
                mime_type: Some("image/jpeg".into()),
            }],
            1,
        ),
    )
    .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let uploads = w.graph.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].bytes, JPEG);
    assert_eq!(uploads[0].mime_type, "image/jpeg");
    assert_eq!(uploads[0].part_content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(uploads[0].filename.as_deref(), Some("photo.jpg"));
    assert_eq!(uploads[0].messaging_product.as_deref(), Some("whatsapp"));
    let body = &sends(&w.graph)[0];
    assert_eq!(body["type"], "image");
    assert_eq!(
        body["image"],
        json!({"id": uploads[0].media_id, "caption": "_our_ new shop"})
    );
    assert!(body.get("link").is_none() && body["image"].get("link").is_none());

    // Text and two files: the text first, then each file; the PDF (served as an octet
    // stream) goes as a document with its name.
    w.reply(
        &conv,
        operator(
            "two files",
            vec![
                OperatorFile {
                    url: photo,
                    name: Some("photo.jpg".into()),
                    mime_type: Some("image/jpeg".into()),
                },
                OperatorFile {
                    url: terms,
                    name: Some("terms.pdf".into()),
                    mime_type: None,
                },
            ],
            2,
        ),
    )
    .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let bodies = sends(&w.graph);
    assert_eq!(bodies.len(), 4);
    assert_eq!(bodies[1]["text"]["body"], "two files");
    assert_eq!(bodies[2]["type"], "image");
    assert_eq!(bodies[3]["type"], "document");
    assert_eq!(bodies[3]["document"]["filename"], "terms.pdf");
    let uploads = w.graph.uploads();
    assert_eq!(uploads[2].mime_type, "application/pdf");
    assert_eq!(uploads[2].bytes, PDF);
}

#[tokio::test]
async fn a_file_that_cannot_be_downloaded_is_reported_not_sent() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let missing = format!("{}/cdn/nothing-here.jpg", w.graph.base_url());
    let at = w
        .reply(
            &conv,
            operator(
                "",
                vec![OperatorFile {
                    url: missing,
                    name: Some("x.jpg".into()),
                    mime_type: Some("image/jpeg".into()),
                }],
                1,
            ),
        )
        .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert!(w.graph.sent().is_empty());
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Failed));
    let s = statuses(&w.sync_jobs().await);
    assert_eq!(s.len(), 1);
    assert!(
        s[0].1.as_deref().unwrap().contains("HTTP 404"),
        "{:?}",
        s[0].1
    );
}

#[tokio::test]
async fn echoes_of_the_business_app_are_never_sent() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    w.store_and_queue(
        &conv,
        &wa(),
        NewMessage {
            provider_message_id: "wamid.ECHOFROMTHEAPP".into(),
            direction: Direction::Outbound,
            origin: Origin::BusinessApp,
            content: Content::Text {
                body: "sent from the phone".into(),
            },
            at_ms: now() * 1000,
            reply_to: None,
            crm_im: None,
            template: None,
            written_with: Default::default(),
        },
    )
    .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert!(w.graph.sent().is_empty());
    assert!(w.sync_jobs().await.is_empty());
}
#[tokio::test]
async fn meta_statuses_move_sent_messages_forward_to_bitrix24() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let at = w.reply(&conv, operator("on its way", vec![], 1)).await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let wamid = w.graph.sent()[0].id.clone();
    assert_eq!(
        statuses(&w.sync_jobs().await),
        vec![(MessageStatus::Sent, None)]
    );

    // Meta's "sent" adds nothing; "delivered" and "read" move it forward, once each.
    w.meta_webhook("whatsapp-status-sent.json", SAMPLE_WAMID, &wamid)
        .await;
    w.meta_webhook("whatsapp-status-delivered.json", SAMPLE_WAMID, &wamid)
        .await;
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Delivered));
    w.meta_webhook("whatsapp-status-read.json", SAMPLE_WAMID, &wamid)
        .await;
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Read));
    // A late "delivered" does not move it back.
    w.meta_webhook("whatsapp-status-delivered.json", SAMPLE_WAMID, &wamid)
        .await;
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Read));
    let jobs = w.sync_jobs().await;
    assert!(jobs.iter().all(|j| j.conversation == conv));
    assert!(jobs.iter().all(|j| matches!(&j.action,
        SyncAction::Status { message_sk, .. } if *message_sk == at.sk)));
    assert_eq!(
        statuses(&jobs),
        vec![
            (MessageStatus::Delivered, None),
            (MessageStatus::Read, None)
        ]
    );

    // Instagram's read receipt names our message id.
    let ig_conv = w.ig_customer(HOUR).await;
    let ig_at = w.reply(&ig_conv, operator("seen?", vec![], 2)).await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let mid = w.graph.sent()[1].id.clone();
    w.sync_jobs().await;
    let sample_mid = "aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODkwMzY5NzgyODA3NjIwNjQ4NDI3NDg4NjgwODMxOA";
    w.meta_webhook("instagram-read.json", sample_mid, &mid)
        .await;
    assert_eq!(w.message(&ig_at).await.status, Some(MessageStatus::Read));
    assert_eq!(
        statuses(&w.sync_jobs().await),
        vec![(MessageStatus::Read, None)]
    );
}

#[tokio::test]
async fn a_disconnected_channel_fails_the_message_with_a_note() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let at = w.reply(&conv, operator("hello", vec![], 1)).await;
    w.scope
        .disconnect(&ChannelRef::WhatsApp(
            PhoneNumberId::parse(WA_NUMBER).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert!(w.graph.sent().is_empty());
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Failed));
    assert_eq!(statuses(&w.sync_jobs().await).len(), 1);
}

#[tokio::test]
async fn a_coexistence_number_is_paced_at_its_own_twenty_per_second() {
    // Meta fixes a Coexistence number's throughput at 20 messages per second (decision 0040).
    let defaults = OutboundConfig::default().pacing.whatsapp_coexistence;
    assert_eq!((defaults.rate_per_sec, defaults.burst), (20.0, 20.0));
    // Shrunk so a test sees the bucket: 2 at once, then one per 6 s, never waited for.
    let mut config = test_config();
    config.pacing.whatsapp_coexistence = PacingConfig {
        rate_per_sec: 1.0 / 6.0,
        burst: 2.0,
        max_wait: Duration::ZERO,
    };
    let w = world_with(config, None).await;
    let conv = w.wa_customer(HOUR).await;
    // An ordinary number goes on at its own (80/s) rate.
    for i in 1..=3 {
        w.reply(&conv, operator(&format!("plain {i}"), vec![], i))
            .await;
    }
    assert_eq!(w.run().await, vec![Outcome::Done; 3]);
    // The same number connected through Coexistence (Embedded Signup marks it).
    w.scope
        .connect(connection(
            ChannelRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap()),
            WA_TOKEN,
            &[("waba_id", WABA), ("coexistence", "true")],
        ))
        .await
        .unwrap();
    for i in 4..=6 {
        w.reply(&conv, operator(&format!("shared {i}"), vec![], i))
            .await;
    }
    let outcomes = w.run().await;
    assert_eq!(
        outcomes[..2],
        [Outcome::Done, Outcome::Done],
        "{outcomes:?}"
    );
    match &outcomes[2..] {
        [Outcome::RetryAfter(wait)] => {
            assert!(*wait > Duration::from_secs(5) && *wait <= Duration::from_secs(6))
        }
        other => panic!("the third send was not paced: {other:?}"),
    }
    assert_eq!(w.graph.sent().len(), 5);
}

// A public API send as the person's erasure begins (decision 0125).
mod api_send_erasure;
mod read_receipts;
