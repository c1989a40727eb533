//! Inbound queue jobs carry no personal data in clear (decision 0026), checked on the bytes
//! of the local server's queue file: every sample delivery is posted while the inbound
//! worker cannot take its jobs yet (each event's idempotency record is held by "another
//! worker" for a few seconds, so every job waits on the queue), the whole file is read,
//! freed pages included, and none of the deliveries' texts, captions, names, links, phone
//! numbers (plain or in base64 as inside wamids) or message ids is in it. Then the jobs are
//! processed, and the file is read again.

use std::time::Duration;

use e2e_tests::harness::{samples, Harness, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::personal_data::{describe, found_in, needles, Needle};
use reqwest::StatusCode;
use wappline::idempotency::{Begin, Idempotency};
use wappline::ids::TenantId;
use wappline::inbound::InboundJob;
use wappline::meta::split_webhook;
use wappline::queue::platform;
use wappline::store::Table;

/// How long the stand-in "other worker" holds every event's idempotency record.
const HELD_FOR: Duration = Duration::from_secs(4);

fn queue_file(h: &Harness) -> Vec<u8> {
    std::fs::read(h.server.data_dir().join("queues.redb")).expect("the queue file")
}

fn assert_clean(needles: &[Needle], bytes: &[u8], when: &str) {
    let found = found_in(needles, bytes);
    assert!(
        found.is_empty(),
        "{when}: {} of {} personal values in the queue file:\n{}",
        found.len(),
        needles.len(),
        describe(&found)
    );
}

#[tokio::test]
async fn the_queue_file_holds_no_personal_data_while_jobs_wait_nor_after() {
    let h = Harness::start(|_| {}).await;
    let tenant = TenantId::parse(&h.tenant_with_channels().await).unwrap();
    let samples = samples();
    let bodies: Vec<&[u8]> = samples.iter().map(|(_, b)| b.as_slice()).collect();
    let needles = needles(&bodies, &[WA_NUMBER, IG_ACCOUNT, "102290129340398"]);
    for what in [
        "message text",
        "contact name",
        "phone number or user id",
        "phone number in base64",
        "message id",
    ] {
        assert!(
            needles.iter().filter(|n| n.what == what).count() >= 3,
            "few needles of kind {what}"
        );
    }

    // Every event's record is held elsewhere: the worker answers "retry later" and the jobs
    // stay on the queue.
    let records = Idempotency::new(h.server.platform().store.clone(), "IN", HELD_FOR);
    let mut events = 0;
    for body in &bodies {
        for event in split_webhook(body).unwrap().events {
            if event.account.id() != WA_NUMBER && event.account.id() != IG_ACCOUNT {
                continue;
            }
            let key = InboundJob::new(tenant.clone(), event).idempotency_key();
            if let Begin::Started(_) = records.begin(&tenant, &key).await.unwrap() {
                events += 1;
            }
        }
    }
    assert!(events >= 40, "{events} events");
    for (name, body) in &samples {
        let (s, text) = h.post_signed(body).await;
        assert_eq!(s, StatusCode::OK, "{name}: {text}");
    }
    let waiting = h.depth(platform::INBOUND).await;
    let bytes = queue_file(&h);
    assert!(
        waiting * 10 >= events * 9,
        "only {waiting} of {events} jobs still queued: the scan would not see them waiting"
    );
    assert_clean(&needles, &bytes, "jobs waiting");

    // Once the records are free, the same jobs are opened, stored and synced.
    h.drain(platform::INBOUND, HELD_FOR + Duration::from_secs(30))
        .await;
    let stored = h
        .all_items(Table::Data)
        .await
        .iter()
        .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .count();
    assert!(
        stored >= 25,
        "{stored} messages stored from the sealed jobs"
    );
    assert!(h.depth(platform::SYNC).await >= stored);
    assert_eq!(
        h.depth(&platform::name(platform::INBOUND).dead_letter().to_string())
            .await,
        0
    );
    assert_clean(&needles, &queue_file(&h), "after the run");
    h.server.shutdown().await;
}
