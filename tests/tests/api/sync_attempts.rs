//! CRM sync attempts and backoff on the local server (decision 0022): a job's attempts count
//! only when it was tried, records held back behind a failing head of their conversation are
//! released without penalty, rate limits back off instead of dead-lettering, a job reaches the
//! dead-letter queue only after its own attempts over the policy's span, and one hanging
//! portal does not hold back another tenant's portal.

use std::time::{Duration, Instant};

use e2e_tests::fake_bitrix::{FailKind, FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{sample, Harness, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use wappline::queue::platform;

const DRAIN: Duration = Duration::from_secs(30);
const LINE: u32 = 7;
const OTHER_DOMAIN: &str = "other.bitrix24.com";
const OTHER_MEMBER_ID: &str = "b334d7c4821f96ef33f0488e7d5f8664";

/// `sync_retry`: `max_ms,attempts,min_span_ms` (the production policy in small time units).
async fn start(fake: &FakeBitrix, sync_retry: &str) -> Harness {
    let sync_retry = sync_retry.to_owned();
    Harness::start(|c| {
        fake.wire_into(c);
        c.retry_base_ms = 50;
        c.sync_retry = Some(sync_retry);
    })
    .await
}

async fn connect_portal(h: &Harness, fake: &FakeBitrix, tenant: &str, domain: &str, member: &str) {
    h.connect_portal(tenant, fake, domain, member, LINE).await;
}

/// One WhatsApp delivery with `texts` as consecutive messages of one customer.
fn whatsapp_messages(texts: &[&str]) -> Vec<u8> {
    whatsapp_events::sample_texts("", 1_767_261_600, texts)
}

fn received_texts(fake: &FakeBitrix) -> Vec<String> {
    fake.messages_received()
        .into_iter()
        .filter_map(|m| m.text)
        .collect()
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dlq() -> String {
    platform::name(platform::SYNC).dead_letter().to_string()
}

/// (a) M1 fails more often than the old receive limit (5) while M2 and M3 wait behind it:
/// they are never dead-lettered and arrive in order once M1 succeeds, without waiting out
/// the 180 s visibility timeout.
#[tokio::test]
async fn messages_behind_a_failing_head_are_not_dead_lettered_and_arrive_in_order() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake, "400,40,86400000").await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.fail_next(7, FailKind::Down);
    let (s, _) = h.post_signed(&whatsapp_messages(&["M1", "M2", "M3"])).await;
    assert_eq!(s, StatusCode::OK);
    h.drain(platform::INBOUND, DRAIN).await;
    h.drain(platform::SYNC, DRAIN).await;
    assert_eq!(h.depth(&dlq()).await, 0, "nothing dead-lettered");
    let texts = received_texts(&fake);
    assert!(
        texts.iter().map(String::as_str).eq(["M1", "M2", "M3"]),
        "delivered once each, in order: {texts:?}"
    );
    assert_eq!(fake.calls_to("batch").len(), 7 + 3);
    h.server.shutdown().await;
}

/// (b) A stretch of `QUERY_LIMIT_EXCEEDED` longer than the old receive limit but shorter than
/// the policy's span dead-letters nothing; the job is delivered once the portal answers.
#[tokio::test]
async fn a_stretch_of_rate_limits_dead_letters_nothing() {
    let fake = FakeBitrix::start().await;
    // Attempts are exhausted after 5 failures spanning at least 20 s (24 h scaled down).
    let h = start(&fake, "200,5,20000").await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.fail_next(9, FailKind::QueryLimit);
    let (s, _) = h.post_signed(&whatsapp_messages(&["M1", "M2"])).await;
    assert_eq!(s, StatusCode::OK);
    h.drain(platform::INBOUND, DRAIN).await;
    h.drain(platform::SYNC, DRAIN).await;
    assert_eq!(h.depth(&dlq()).await, 0, "nothing dead-lettered");
    let texts = received_texts(&fake);
    assert!(
        texts.iter().map(String::as_str).eq(["M1", "M2"]),
        "{texts:?}"
    );
    h.server.shutdown().await;
}

/// (b) A job that keeps failing is dead-lettered by the worker, and only after its own
/// attempts (at least N) over at least the policy's span. The failure is Bitrix24 refusing
/// the message: a portal that keeps failing is parked instead (decision 0025, tested in
/// `crm_parking`).
#[tokio::test]
async fn a_job_is_dead_lettered_only_after_its_own_attempts_over_the_span() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake, "100,6,1500").await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.fail_next(100_000, FailKind::ArgumentError);
    let started = Instant::now();
    let (s, _) = h.post_signed(&whatsapp_messages(&["M1"])).await;
    assert_eq!(s, StatusCode::OK);
    h.drain(platform::INBOUND, DRAIN).await;
    h.drain(platform::SYNC, DRAIN).await;
    let elapsed = started.elapsed();
    assert_eq!(h.depth(&dlq()).await, 1, "M1 dead-lettered");
    let attempts = fake.calls_to("batch").len();
    assert!(attempts >= 6, "only after its own attempts: {attempts}");
    assert!(
        elapsed >= Duration::from_millis(1500),
        "only after the span: {elapsed:?}"
    );
    h.server.shutdown().await;
}

/// (c) One tenant's portal hangs for 20 s after taking each call: another tenant's portal
/// still gets its message at once, and the hung message is posted once.
#[tokio::test]
async fn a_hanging_portal_does_not_delay_another_tenants_portal() {
    let fake = FakeBitrix::start().await;
    fake.add_portal(OTHER_DOMAIN, OTHER_MEMBER_ID);
    let h = start(&fake, "3600000,40,86400000").await;
    // Tenant A: the WhatsApp number, on the hanging portal; tenant B: Instagram, on another.
    let a = h.create_tenant("Hanging").await;
    h.connect_whatsapp(&a, WA_NUMBER, "102290129340398", "EAAwhatsappTOKEN")
        .await;
    connect_portal(&h, &fake, &a, FAKE_DOMAIN, FAKE_MEMBER_ID).await;
    let b = h.create_tenant("Healthy").await;
    h.connect_instagram(&b, IG_ACCOUNT, "IGAAinstagramTOKEN")
        .await;
    connect_portal(&h, &fake, &b, OTHER_DOMAIN, OTHER_MEMBER_ID).await;

    // A's chat exists (its first message went through), then A's portal hangs for 20 s
    // after taking each call: as long as the client's whole-request timeout.
    let (s, _) = h.post_signed(&whatsapp_messages(&["A1"])).await;
    assert_eq!(s, StatusCode::OK);
    h.drain(platform::INBOUND, DRAIN).await;
    h.drain(platform::SYNC, DRAIN).await;
    let hang = Duration::from_secs(20);
    fake.hang(FAKE_DOMAIN, hang);
    let hung_at = Instant::now();
    let second = whatsapp_messages(&["A1", "A2"]);
    let (s, _) = h.post_signed(&second).await;
    assert_eq!(s, StatusCode::OK);
    // A's job is in flight (its call hangs) before B's message comes in.
    h.drain(platform::INBOUND, DRAIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (s, _) = h.post_signed(&sample("instagram-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    wait_for("B's message on its portal", Duration::from_secs(4), || {
        fake.messages_received()
            .iter()
            .any(|m| m.domain == OTHER_DOMAIN)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    // A's portal took A2 at once but answers only after 20 s (a timeout here): once it
    // answers again, A2 is found in the chat, not posted a second time.
    wait_for("the hang to pass", hang + Duration::from_secs(2), || {
        hung_at.elapsed() > hang
    })
    .await;
    fake.hang(FAKE_DOMAIN, Duration::ZERO);
    h.drain(platform::SYNC, Duration::from_secs(60)).await;
    let texts: Vec<String> = fake
        .messages_received()
        .into_iter()
        .filter(|m| m.domain == FAKE_DOMAIN)
        .filter_map(|m| m.text)
        .collect();
    assert!(
        texts.iter().map(String::as_str).eq(["A1", "A2"]),
        "A's messages once each, in order: {texts:?}"
    );
    assert_eq!(fake.duplicate_posts(), 0);
    assert_eq!(h.depth(&dlq()).await, 0);
    h.server.shutdown().await;
}

/// A portal that hangs longer than the per-call timeout fails the call; the job is retried
/// after its backoff (not after the visibility timeout) and delivered once the portal answers.
#[tokio::test]
async fn a_call_to_a_hanging_portal_times_out_and_is_retried() {
    let fake = FakeBitrix::start().await;
    let h = Harness::start(|c| {
        fake.wire_into(c);
        c.retry_base_ms = 50;
        c.sync_retry = Some("400,40,86400000".into());
        c.bitrix_timeout_ms = Some("1000".into());
    })
    .await;
    h.tenant_on_portal(&fake, LINE).await;
    fake.delay_portal(FAKE_DOMAIN, Duration::from_secs(60));
    let started = Instant::now();
    let (s, _) = h.post_signed(&whatsapp_messages(&["M1", "M2"])).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    fake.delay_portal(FAKE_DOMAIN, Duration::ZERO);
    wait_for("both messages", Duration::from_secs(10), || {
        received_texts(&fake).len() == 2
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let texts = received_texts(&fake);
    assert!(
        texts.iter().map(String::as_str).eq(["M1", "M2"]),
        "{texts:?}"
    );
    assert_eq!(h.depth(&dlq()).await, 0);
    h.server.shutdown().await;
}
