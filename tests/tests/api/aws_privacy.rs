//! No personal data and no credential in clear on the AWS adapters (issue 13; decisions 0026
//! and 0030): the relay runs on DynamoDB, SQS and KMS (the moto server scripts/test.sh starts;
//! `MOTO_ENDPOINT`), wired by the functions' own composition root, and what moto holds is
//! read back raw through the SDK: every attribute of every item of the four tables (`Scan`),
//! and the messages of every queue and dead-letter queue (`ReceiveMessage`), plus every
//! message body and group id any consumer received during the run.
//!
//! The flow is the one of `data_dir_privacy`: a customer writes on WhatsApp and Instagram,
//! the portal goes down (503), every sample delivery is relayed inbound and the operator
//! answers on both channels with files; the tables and queues are read while the CRM sync
//! jobs wait for the portal, then the portal comes back, everything is delivered, and they
//! are read again.
//!
//! A FIFO queue hands out no message of a group while an earlier one of that group is being
//! received, so reading a queue while it is in use sees the first messages of each group;
//! the bodies recorded as the consumers received them cover the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e_tests::fake_bitrix::{
    EventBody, EventMessage, FakeBitrix, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_DOMAIN,
    FAKE_MEMBER_ID,
};
use e2e_tests::fake_graph::FakeGraph;
use e2e_tests::harness::{sample, samples, APP_SECRET, IG_ACCOUNT, VERIFY, WA_NUMBER};
use e2e_tests::personal_data::{describe, found_in, needles, values, Needle};
use e2e_tests::relay_world::{APP_TOKEN, IG_TOKEN, LINE, WA_TOKEN};
use serde_json::{json, Value};
use wappline::app::settings::vars;
use wappline::app::{AwsClientOptions, Services, Settings};
use wappline::consumer::{process_batch, Outcome, QueueRecord, RecordHandler};
use wappline::inbound::intake::WebhookIntake;
use wappline::media::MediaLinkKey;
use wappline::meta::AppSecret;
use wappline::portal_events::PortalEvents;
use wappline::queue::sqs::{provision_queues, SqsQueue};
use wappline::queue::{platform, QueueName};
use wappline::store::dynamo::{provision_tables, TableNames};
use wappline::store::Table;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

const WABA: &str = "102290129340398";
const OPERATOR_TEXTS: [&str; 4] = [
    "Your parcel 4410 leaves the Gdansk warehouse on Friday",
    "Mr Oyelaran, the replacement was approved this morning",
    "The wool coat is back in stock in Porto, size L",
    "Please confirm the address 9 Calle del Olmo for delivery",
];
const FILE_NAMES: [&str; 2] = ["invoice-Oyelaran-2026.pdf", "receipt-Olmo.jpg"];
const PDF: &[u8] = b"%PDF-1.4\n% a small test document\n%%EOF\n";
const JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 0xff, 0xd9,
];

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("scan-{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// What the run received from or holds in moto, as bytes to look in.
struct Aws {
    services: Services,
    tables: TableNames,
    urls: HashMap<QueueName, String>,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    /// Every body and group id the consumers received.
    received: Mutex<Vec<u8>>,
}

impl Aws {
    async fn start(bitrix: &FakeBitrix, graph: &FakeGraph) -> Aws {
        let sdk = e2e_tests::moto::sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let kms = aws_sdk_kms::Client::new(&sdk);
        let prefix = unique_prefix();
        let tables = TableNames::with_prefix(&prefix);
        provision_tables(&dynamo, &tables).await.unwrap();
        let urls = provision_queues(&sqs, &prefix, &platform::specs())
            .await
            .unwrap();
        let key = kms.create_key().send().await.unwrap();
        let key_id = key.key_metadata().unwrap().key_id().to_owned();
        let media_key = MediaLinkKey::generate().unwrap().to_hex().to_string();
        let mut env: HashMap<String, String> = HashMap::from([
            (vars::DATA_TABLE.into(), tables.data.clone()),
            (vars::ROUTES_TABLE.into(), tables.routes.clone()),
            (vars::KEYS_TABLE.into(), tables.keys.clone()),
            (vars::DEDUPE_TABLE.into(), tables.dedupe.clone()),
            (vars::KMS_KEY_ID.into(), key_id),
            (vars::META_APP_SECRET.into(), APP_SECRET.into()),
            (vars::META_VERIFY_TOKEN.into(), VERIFY.into()),
            (
                vars::PUBLIC_BASE_URL.into(),
                "https://relay.example.com".into(),
            ),
            (vars::MEDIA_LINK_KEY.into(), media_key),
            (vars::RETRY_BASE_MS.into(), "30".into()),
            // Short sync retries that never run out: nothing is parked or dead-lettered.
            (vars::SYNC_RETRY.into(), "300,100000,600000".into()),
            (wappline::graph::ENV_BASE_URL.into(), graph.base_url()),
            (
                wappline::bitrix::ENV_CLIENT_ID.into(),
                FAKE_CLIENT_ID.into(),
            ),
            (
                wappline::bitrix::ENV_CLIENT_SECRET.into(),
                FAKE_CLIENT_SECRET.into(),
            ),
            (wappline::bitrix::ENV_OAUTH_URL.into(), bitrix.oauth_url()),
            (
                wappline::bitrix::ENV_PORTAL_BASE_URL.into(),
                bitrix.base_url(),
            ),
        ]);
        for (name, url) in &urls {
            env.insert(SqsQueue::url_env_var(name), url.clone());
        }
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();
        Aws {
            services: Services::aws_with(settings, &sdk, AwsClientOptions::default()).unwrap(),
            tables,
            urls,
            dynamo,
            sqs,
            received: Mutex::new(Vec::new()),
        }
    }

    /// One receive-handle-settle round on `queue`, as Lambda's event source mapping does;
    /// returns how many messages it received.
    async fn poll(&self, queue: &str, handler: &dyn RecordHandler) -> usize {
        let name = platform::name(queue);
        let q = &self.services.queue;
        let messages = q.receive(&name, 10, platform::VISIBILITY).await.unwrap();
        {
            let mut received = self.received.lock().unwrap();
            for m in &messages {
                received.extend_from_slice(m.body.as_bytes());
                received.push(b'\n');
                received.extend_from_slice(m.group_id.as_deref().unwrap_or("").as_bytes());
                received.push(b'\n');
            }
        }
        let records: Vec<QueueRecord> = messages.iter().map(QueueRecord::from).collect();
        for (m, outcome) in messages.iter().zip(process_batch(handler, &records).await) {
            match outcome {
                Outcome::Done => q.ack(&name, &m.receipt).await.unwrap(),
                Outcome::RetryAfter(delay) => {
                    q.change_visibility(&name, &m.receipt, delay).await.unwrap()
                }
                Outcome::Skipped => q
                    .change_visibility(&name, &m.receipt, Duration::ZERO)
                    .await
                    .unwrap(),
                Outcome::Failed => {}
            }
        }
        messages.len()
    }

    async fn depth(&self, queue: &QueueName) -> u64 {
        let d = self.services.queue.approximate_depth(queue).await.unwrap();
        d.visible + d.in_flight
    }

    /// Every attribute name and value of every item of every table, raw: strings and
    /// numbers as text, binaries as their bytes.
    async fn table_bytes(&self) -> (usize, Vec<u8>) {
        let mut out = Vec::new();
        let mut items = 0;
        for table in Table::ALL {
            let mut start = None;
            loop {
                let page = self
                    .dynamo
                    .scan()
                    .table_name(self.tables.name(table))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .unwrap();
                for item in page.items() {
                    items += 1;
                    for (name, value) in item {
                        out.extend_from_slice(name.as_bytes());
                        out.push(b'=');
                        raw(value, &mut out);
                        out.push(b'\n');
                    }
                }
                start = page.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        (items, out)
    }

    /// The bodies, attributes and group ids of the messages every queue and dead-letter
    /// queue hands out now. Each is hidden for a second while read (FIFO order holds a
    /// group's next message back meanwhile), then shown again.
    async fn queue_bytes(&self) -> (usize, Vec<u8>) {
        let mut out = Vec::new();
        let mut count = 0;
        for url in self.urls.values() {
            let mut receipts = Vec::new();
            loop {
                let got = self
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .visibility_timeout(1)
                    .message_system_attribute_names(
                        aws_sdk_sqs::types::MessageSystemAttributeName::All,
                    )
                    .message_attribute_names("All")
                    .send()
                    .await
                    .unwrap();
                let messages = got.messages();
                if messages.is_empty() {
                    break;
                }
                for m in messages {
                    count += 1;
                    out.extend_from_slice(format!("{m:?}").as_bytes());
                    out.extend_from_slice(m.body().unwrap_or_default().as_bytes());
                    out.push(b'\n');
                    receipts.extend(m.receipt_handle().map(str::to_owned));
                }
            }
            for receipt in receipts {
                // Shown again for the consumers; one already back is fine.
                let _ = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
        (count, out)
    }
}

fn raw(v: &AttributeValue, out: &mut Vec<u8>) {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => out.extend_from_slice(s.as_bytes()),
        AttributeValue::B(b) => out.extend_from_slice(b.as_ref()),
        AttributeValue::Ss(l) | AttributeValue::Ns(l) => {
            l.iter().for_each(|s| out.extend_from_slice(s.as_bytes()))
        }
        AttributeValue::Bs(l) => l.iter().for_each(|b| out.extend_from_slice(b.as_ref())),
        AttributeValue::L(l) => l.iter().for_each(|v| raw(v, out)),
        AttributeValue::M(m) => m.iter().for_each(|(k, v)| {
            out.extend_from_slice(k.as_bytes());
            raw(v, out);
        }),
        _ => {}
    }
}

/// The relay on the AWS adapters: the functions' services, driven in-process.
struct Relay {
    aws: Aws,
    bitrix: FakeBitrix,
    graph: FakeGraph,
    intake: WebhookIntake,
    events: PortalEvents,
    handlers: Vec<(&'static str, Box<dyn RecordHandler>)>,
}

impl Relay {
    async fn start() -> Relay {
        let bitrix = FakeBitrix::start().await;
        let graph = FakeGraph::start().await;
        graph.add_token(WA_TOKEN, WA_NUMBER);
        graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
        let aws = Aws::start(&bitrix, &graph).await;
        let s = &aws.services;
        let handlers: Vec<(&'static str, Box<dyn RecordHandler>)> = vec![
            (platform::INBOUND, Box::new(s.inbound_worker().unwrap())),
            (platform::SYNC, Box::new(s.sync_worker().unwrap())),
            (platform::OUTBOUND, Box::new(s.outbound_worker().unwrap())),
        ];
        Relay {
            intake: s.webhook_intake().unwrap(),
            events: s.portal_events().unwrap(),
            handlers,
            aws,
            bitrix,
            graph,
        }
    }

    /// A tenant with the sample WhatsApp number and Instagram account and the fake's portal,
    /// connected as the admin API connects them.
    async fn tenant(&self) {
        let tenants = &self.aws.services.platform.tenants;
        let id = tenants
            .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let scope = tenants.scope(&id).await.unwrap().unwrap();
        let portal = self.bitrix.valid_tokens_for(FAKE_DOMAIN);
        let connections = [
            (
                ChannelKind::WhatsApp,
                WA_NUMBER,
                vec![("waba_id", WABA.to_owned())],
                vec![("access_token", WA_TOKEN)],
            ),
            (
                ChannelKind::Instagram,
                IG_ACCOUNT,
                vec![],
                vec![("access_token", IG_TOKEN)],
            ),
            (
                ChannelKind::Bitrix24,
                FAKE_MEMBER_ID,
                vec![
                    ("domain", FAKE_DOMAIN.to_owned()),
                    ("line_id", LINE.to_string()),
                ],
                vec![
                    ("access_token", portal.access_token.as_str()),
                    ("refresh_token", portal.refresh_token.as_str()),
                    ("application_token", APP_TOKEN),
                ],
            ),
        ];
        for (kind, channel, details, secrets) in connections {
            scope
                .connect(Connection {
                    channel: ChannelRef::parse(kind, channel).unwrap(),
                    details: details
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                    secrets: secrets
                        .into_iter()
                        .map(|(k, v)| (k, Secret::parse(k, v).unwrap()))
                        .collect(),
                    authorized_by: None,
                })
                .await
                .unwrap();
        }
    }

    async fn deliver(&self, body: &[u8]) {
        let signature = AppSecret::new(APP_SECRET).unwrap().sign(body);
        self.intake.accept(Some(&signature), body).await.unwrap();
    }

    /// Runs the consumers until every queue named stays empty (or `within` passes).
    async fn pump(&self, queues: &[&str], within: Duration) {
        let started = Instant::now();
        loop {
            // The three consumers run side by side, as three functions do.
            let poll = |i: usize| async move {
                let (queue, handler) = &self.handlers[i];
                if queues.contains(queue) {
                    self.aws.poll(queue, handler.as_ref()).await
                } else {
                    0
                }
            };
            let (a, b, c) = tokio::join!(poll(0), poll(1), poll(2));
            let received = a + b + c;
            if received == 0 {
                let mut left = 0;
                for q in queues {
                    left += self.aws.depth(&platform::name(q)).await;
                }
                if left == 0 {
                    return;
                }
                assert!(
                    started.elapsed() < within,
                    "{left} messages left on {queues:?} after {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn operator_answers(&self, wa_chat: &str, ig_chat: &str, files: [String; 2]) {
        let answers = [
            ("wappline_whatsapp", wa_chat, OPERATOR_TEXTS[0], None),
            (
                "wappline_whatsapp",
                wa_chat,
                OPERATOR_TEXTS[1],
                Some((FILE_NAMES[0], files[0].clone())),
            ),
            ("wappline_instagram", ig_chat, OPERATOR_TEXTS[2], None),
            (
                "wappline_instagram",
                ig_chat,
                OPERATOR_TEXTS[3],
                Some((FILE_NAMES[1], files[1].clone())),
            ),
        ];
        for (i, (connector, chat, text, file)) in answers.into_iter().enumerate() {
            let form = EventBody::for_portal(&self.bitrix, FAKE_DOMAIN, Some(APP_TOKEN))
                .message_add(
                    connector,
                    LINE,
                    &[EventMessage {
                        im_chat_id: 901,
                        im_message_id: 7001 + i as u64,
                        chat_id: chat.to_owned(),
                        user_id: 1,
                        text: Some(text.to_owned()),
                        files: file
                            .map(|(name, link)| vec![(name.to_owned(), link)])
                            .unwrap_or_default(),
                        ..EventMessage::default()
                    }],
                );
            self.events.handle(form.as_bytes()).await.unwrap();
        }
    }

    /// Tables, queues and everything received, checked for `needles`.
    async fn assert_clean(&self, needles: &[Needle], when: &str) {
        let (items, tables) = self.aws.table_bytes().await;
        let (messages, queues) = self.aws.queue_bytes().await;
        let received = self.aws.received.lock().unwrap().clone();
        assert!(items >= 50, "{when}: only {items} items read");
        for (what, bytes) in [
            ("table items", &tables),
            ("queue messages", &queues),
            ("received messages", &received),
        ] {
            let found = found_in(needles, bytes);
            assert!(
                found.is_empty(),
                "{when}: {} personal values or credentials in clear in the {what} \
                 ({items} items, {messages} queued messages read):\n{}",
                found.len(),
                describe(&found)
            );
        }
    }
}

fn now_sample(name: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample(name)).unwrap();
    let now = wappline::clock::now_secs();
    if let Some(t) = v.pointer_mut("/entry/0/changes/0/value/messages/0/timestamp") {
        *t = json!(now.to_string());
    }
    if let Some(t) = v.pointer_mut("/entry/0/messaging/0/timestamp") {
        *t = json!(now * 1000);
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn no_table_item_or_queue_message_on_aws_holds_personal_data_or_tokens() {
    const ALL: [&str; 3] = [platform::INBOUND, platform::SYNC, platform::OUTBOUND];
    const WITHIN: Duration = Duration::from_secs(30);
    let r = Relay::start().await;
    r.tenant().await;
    for name in ["whatsapp-text.json", "instagram-text.json"] {
        r.deliver(&now_sample(name)).await;
        r.pump(&ALL, WITHIN).await;
    }
    let chats: Vec<String> = r
        .bitrix
        .messages_received()
        .iter()
        .map(|m| m.external_chat_id.clone())
        .collect();
    assert_eq!(chats.len(), 2, "the first messages reached the portal");
    let received_before = chats.len();

    // The portal goes down; everything is relayed inbound and the operator answers.
    r.bitrix.set_down(FAKE_DOMAIN, true);
    let samples = samples();
    for (_, body) in &samples {
        r.deliver(body).await;
    }
    // Every sample's effect first: the account samples ban the number and reinstate it, and
    // a reply sent in between would be stopped (decision 0051).
    r.pump(&[platform::INBOUND], WITHIN).await;
    let files = [
        r.graph.add_cdn(FILE_NAMES[0], "application/pdf", PDF),
        r.graph.add_cdn(FILE_NAMES[1], "image/jpeg", JPEG),
    ];
    r.operator_answers(&chats[0], &chats[1], files.clone())
        .await;
    r.pump(&[platform::INBOUND, platform::OUTBOUND], WITHIN)
        .await;
    assert!(r.graph.sent().len() >= OPERATOR_TEXTS.len() && !r.graph.uploads().is_empty());
    // The sync worker tries once: its jobs fail against the portal and wait to be retried.
    r.aws.poll(platform::SYNC, r.handlers[1].1.as_ref()).await;
    let waiting = r.aws.depth(&platform::name(platform::SYNC)).await;
    assert!(waiting >= 25, "only {waiting} sync jobs waiting");

    let bodies: Vec<&[u8]> = samples.iter().map(|(_, b)| b.as_slice()).collect();
    let mut tokens = vec![WA_TOKEN, IG_TOKEN, APP_TOKEN];
    let issued = r.bitrix.issued_tokens();
    tokens.extend(issued.iter().map(String::as_str));
    let mut operator: Vec<&str> = OPERATOR_TEXTS.to_vec();
    operator.extend(FILE_NAMES);
    operator.extend(files.iter().map(String::as_str));
    let mut all = needles(&bodies, &[WA_NUMBER, IG_ACCOUNT, WABA]);
    all.extend(values("access or refresh token", &tokens));
    all.extend(values("what the operator sent", &operator));
    assert!(all.len() >= 150, "{} needles", all.len());
    // Past the retry delays, the waiting jobs are visible to a read of the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.assert_clean(&all, "while the portal is down").await;

    r.bitrix.set_down(FAKE_DOMAIN, false);
    r.pump(&ALL, WITHIN).await;
    let delivered = r.bitrix.messages_received().len() - received_before;
    assert!(delivered >= 25, "{delivered} messages reached the portal");
    for q in ALL {
        let dlq = platform::name(q).dead_letter();
        assert_eq!(r.aws.depth(&dlq).await, 0, "{dlq}");
    }
    r.assert_clean(&all, "after the run").await;
}
