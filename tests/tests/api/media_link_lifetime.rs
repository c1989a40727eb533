//! How long a media link has to live (issue 15 item 8, decision 0048). Links are made by the
//! CRM sync's flusher just before the `imconnector.send.messages` request that carries them,
//! and the fake Bitrix24 downloads a post's files while it runs the call, as the method's
//! page implies (the file is part of the message it creates). So a post that waited in the
//! portal outbox longer than the link lifetime still gets its file; the staged operation holds
//! no link at all; a link older than its lifetime is refused. The measurement test prints the
//! time from a link's making to its download (docs/performance.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::fake_bitrix::{FailKind, FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{sample, Harness, WA_NUMBER, WA_TOKEN};
use e2e_tests::relay_world::RelayWorld;
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use serde_json::json;
use wappline::bitrix::CrmFile;
use wappline::clock::now_millis;
use wappline::consumer::{process_batch, Outcome, QueueRecord};
use wappline::crm_sync::outbox::Outbox;
use wappline::crm_sync::{MediaLinker, SyncWorker, WaitConfig};
use wappline::graph::HostPolicy;
use wappline::ids::TenantId;
use wappline::media::{MediaLinkKey, MediaLinks};
use wappline::meta::{AccountRef, Media};
use wappline::queue::{platform, Queue};

const LINE: u32 = 7;
const JPEG: &[u8] = b"\xff\xd8\xff\xe0 fake jpeg bytes of the lifetime test";

/// The sample image's media id.
const SAMPLE_MEDIA: &str = "1106677706454703";

fn outbox(h: &Harness) -> Outbox {
    let p = h.server.platform();
    Outbox::new(p.store.clone(), p.envelope.clone())
}

/// A customer's image sits in the outbox while the portal is down, longer than the link
/// lifetime (2 s here). When the portal is back the post carries a link made at that moment,
/// which Bitrix24 downloads during the call; the staged operation never held a link; once the
/// lifetime has passed, the link is refused.
#[tokio::test]
async fn a_post_that_waited_longer_than_the_link_lifetime_still_gets_its_file() {
    let RelayWorld {
        h,
        bitrix: fake,
        graph,
    } = RelayWorld::start_with(|c| {
        c.retry_base_ms = 50;
        c.media_link_ttl_secs = Some("2".into());
    })
    .await;
    let tenant = TenantId::parse(&h.tenant_on_portal(&fake, LINE).await).unwrap();
    graph.add_media(SAMPLE_MEDIA, WA_NUMBER, "image/jpeg", JPEG);
    fake.outage(FAKE_DOMAIN, FailKind::Down);

    let (s, _) = h.post_signed(&sample("whatsapp-image.json")).await;
    assert_eq!(s, StatusCode::OK);
    h.drain(platform::INBOUND, Duration::from_secs(30)).await;

    // The post is staged: its file is named, not linked.
    let waiting_since = now_millis();
    let staged = loop {
        let ops = outbox(&h).staged_ops(&tenant).await.unwrap();
        if let Some(op) = ops.into_iter().find(|(_, op, _)| !op.files.is_empty()) {
            break op;
        }
        assert!(
            now_millis() - waiting_since < 20_000,
            "no staged post naming its file"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (_, op, staged_ms) = staged;
    assert_eq!(op.method, "imconnector.send.messages");
    assert_eq!(op.files.len(), 1);
    assert_eq!(op.files[0].media.media_id.as_deref(), Some(SAMPLE_MEDIA));
    let stored = serde_json::to_string(&op).unwrap();
    assert!(
        !stored.contains("/media/"),
        "a link in the outbox: {stored}"
    );
    assert!(!stored.contains(&h.base), "a link in the outbox: {stored}");
    assert!(op.params["MESSAGES"][0]["message"].get("files").is_none());

    // Longer than the lifetime in the outbox (the worker keeps retrying into the outage).
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(fake.messages_received().is_empty());
    assert!(
        fake.file_downloads().is_empty(),
        "nothing ran during the outage"
    );
    fake.end_outage(FAKE_DOMAIN);
    h.drain(platform::SYNC, Duration::from_secs(30)).await;

    let received = fake.messages_received();
    assert_eq!(received.len(), 1);
    let url = received[0].files[0]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/media/", h.base)), "{url}");
    let downloads = fake.file_downloads();
    assert_eq!(downloads.len(), 1, "downloaded once, during the call");
    let got = &downloads[0];
    assert_eq!(got.url, url);
    assert_eq!(got.status, Some(200), "the fresh link works");
    assert_eq!(got.bytes, JPEG);
    assert!(
        got.fetched_ms - staged_ms > 2_000,
        "the post waited {} ms, longer than the 2 s lifetime",
        got.fetched_ms - staged_ms
    );

    // Older than its lifetime: refused.
    let left = (got.fetched_ms + 2_500 - now_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(left)).await;
    let status = h.http.get(&url).send().await.unwrap().status();
    assert!(
        status == StatusCode::GONE || status == StatusCode::FORBIDDEN,
        "an expired link answered {status}"
    );
    h.server.shutdown().await;
}

/// Links made by the flusher, recorded with the moment each was made.
struct Recording {
    links: MediaLinks,
    /// url -> (media id, made at, Unix ms)
    made: Mutex<HashMap<String, (String, i64)>>,
}

#[async_trait]
impl MediaLinker for Recording {
    async fn link(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        media: &Media,
    ) -> Option<CrmFile> {
        let file = self.links.link(tenant, account, media).await?;
        self.record(&file, media);
        Some(file)
    }

    async fn link_in(
        &self,
        tenant: &TenantId,
        account: &AccountRef,
        conversation: &str,
        media: &Media,
    ) -> Option<CrmFile> {
        let file = self
            .links
            .link_in(tenant, account, conversation, media)
            .await?;
        self.record(&file, media);
        Some(file)
    }
}

impl Recording {
    fn record(&self, file: &CrmFile, media: &Media) {
        self.made.lock().unwrap().insert(
            file.url.clone(),
            (media.media_id.clone().unwrap_or_default(), now_millis()),
        );
    }
}

fn image(customer: usize, n: usize, media_id: &str) -> Vec<u8> {
    let from = (16_505_550_000u64 + customer as u64).to_string();
    let image = json!({
        "from": from,
        "id": format!("wamid.lifetime.{customer}.{n}"),
        "timestamp": (1_767_261_600 + n).to_string(),
        "type": "image",
        "image": {"mime_type": "image/jpeg", "sha256": "c2hh", "id": media_id}
    });
    whatsapp_events::from_customer(&from, &format!("Customer {customer}"), vec![image])
}

/// Every visible sync record processed once; records not done are made visible again.
async fn round(h: &Harness, worker: &SyncWorker) -> usize {
    let queue = h.server.queue();
    let name = platform::name(platform::SYNC);
    let mut messages = Vec::new();
    loop {
        let got = queue
            .receive(&name, 10, Duration::from_secs(600))
            .await
            .unwrap();
        if got.is_empty() || messages.len() >= 100 {
            break;
        }
        messages.extend(got);
    }
    let records: Vec<QueueRecord> = messages.iter().map(QueueRecord::from).collect();
    for (m, outcome) in messages.iter().zip(process_batch(worker, &records).await) {
        match outcome {
            Outcome::Done => queue.ack(&name, &m.receipt).await.unwrap(),
            _ => queue
                .change_visibility(&name, &m.receipt, Duration::ZERO)
                .await
                .unwrap(),
        }
    }
    messages.len()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// The figure of decision 0048: from a link's making to Bitrix24's download of it, for 100
/// images from 20 customers posted in batches, then for 20 more that wait out a 3 s outage
/// (each attempt makes new links). Run with `-- --nocapture` to see the figures.
#[tokio::test]
async fn mint_to_fetch_is_one_request_long_whatever_the_outbox_wait() {
    let fake = FakeBitrix::start().await;
    // No Bitrix24 settings: the server's own sync consumer is off; the worker runs here.
    let h = Harness::start(|c| c.retry_base_ms = 50).await;
    let tenant = h.tenant_with_channels().await;
    h.graph.add_token(WA_TOKEN, WA_NUMBER);
    h.store_portal(&tenant, &fake, FAKE_DOMAIN, FAKE_MEMBER_ID, LINE)
        .await;
    let key_hex = std::fs::read_to_string(h.server.data_dir().join("media-link.key")).unwrap();
    let links = MediaLinks::new(MediaLinkKey::from_hex(key_hex.trim()).unwrap(), &h.base)
        .unwrap()
        .with_hosts(HostPolicy::meta().with_loopback(true));
    let recording = Arc::new(Recording {
        links,
        made: Mutex::new(HashMap::new()),
    });
    let platform = h.server.platform();
    let worker = SyncWorker::new(
        platform.store.clone(),
        platform.envelope.clone(),
        platform.tenants.clone(),
        crate::bitrix_client::client(&fake),
    )
    .with_wait(WaitConfig {
        poll: Duration::from_millis(5),
        max_wait: Duration::from_secs(5),
    })
    .with_media_links(recording.clone());

    let post = |customer: usize, n: usize| {
        let media_id = format!("{}", 900_000_000 + customer * 1_000 + n);
        h.graph.add_media(&media_id, WA_NUMBER, "image/jpeg", JPEG);
        image(customer, n, &media_id)
    };
    // Phase 1: a healthy portal.
    for n in 0..5 {
        for c in 0..20 {
            let (s, t) = h.post_signed(&post(c, n)).await;
            assert_eq!(s, StatusCode::OK, "{t}");
        }
    }
    h.drain(platform::INBOUND, Duration::from_secs(30)).await;
    while h.depth(platform::SYNC).await > 0 {
        round(&h, &worker).await;
    }
    let healthy = fake.file_downloads().len();
    assert_eq!(healthy, 100);

    // Phase 2: 20 more wait out an outage of 3 s.
    fake.outage(FAKE_DOMAIN, FailKind::Down);
    for c in 0..20 {
        let (s, t) = h.post_signed(&post(c, 5)).await;
        assert_eq!(s, StatusCode::OK, "{t}");
    }
    h.drain(platform::INBOUND, Duration::from_secs(30)).await;
    let outage_from = now_millis();
    while now_millis() - outage_from < 3_000 {
        round(&h, &worker).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fake.end_outage(FAKE_DOMAIN);
    while h.depth(platform::SYNC).await > 0 {
        round(&h, &worker).await;
    }

    let made = recording.made.lock().unwrap().clone();
    let mut first_made: HashMap<String, i64> = HashMap::new();
    for (media, at) in made.values() {
        let e = first_made.entry(media.clone()).or_insert(*at);
        *e = (*e).min(*at);
    }
    let downloads = fake.file_downloads();
    assert_eq!(downloads.len(), 120, "each file downloaded once");
    let (mut lifetime, mut waited) = (Vec::new(), Vec::new());
    for (i, d) in downloads.iter().enumerate() {
        assert_eq!(d.status, Some(200), "{}", d.url);
        assert_eq!(d.bytes, JPEG);
        let (media, at) = made.get(&d.url).expect("a link the flusher made");
        lifetime.push(d.fetched_ms - at);
        if i >= healthy {
            waited.push(d.fetched_ms - first_made[media]);
        }
    }
    lifetime.sort_unstable();
    waited.sort_unstable();
    let links_made = made.len();
    println!(
        "media link, made -> downloaded: n={} p50={} ms p99={} ms max={} ms; \
         links made {links_made} for 120 files; outage posts, first link made -> downloaded: \
         min={} ms max={} ms",
        lifetime.len(),
        percentile(&lifetime, 0.50),
        percentile(&lifetime, 0.99),
        lifetime[lifetime.len() - 1],
        waited[0],
        waited[waited.len() - 1],
    );
    // One request long, far under the 5-minute default, however long the post waited.
    assert!(lifetime[lifetime.len() - 1] < 20_000);
    assert!(waited[0] >= 3_000, "the outage posts waited out the outage");
    assert!(links_made > 120, "each attempt made its own links");
    h.server.shutdown().await;
}
