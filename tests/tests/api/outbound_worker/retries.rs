//! Failures of the Graph API: rate limits retried later, delays that grow, the recipient's pace,
//! permanent errors reported, outages dead-lettered with a note, a failure part way resending only
//! the rest.

use super::*;

#[tokio::test]
async fn rate_limits_are_retried_later_then_delivered() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    for (i, code) in [130429, 131056, 80007, 4].into_iter().enumerate() {
        w.graph.fail_sends(1, GraphFailure::Code(code));
        let at = w
            .reply(
                &conv,
                operator(&format!("message {i}"), vec![], i as u64 + 1),
            )
            .await;
        let first = w.run().await;
        assert!(
            matches!(first.as_slice(), [Outcome::RetryAfter(_)]),
            "{code}: {first:?}"
        );
        assert_eq!(w.message(&at).await.status, None, "{code}");
        assert_eq!(w.run().await, vec![Outcome::Done], "{code}");
        assert_eq!(w.message(&at).await.status, Some(MessageStatus::Sent));
    }
    assert_eq!(w.graph.sent().len(), 4, "each delivered once");
    let attempts = w
        .graph
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/messages"))
        .count();
    assert_eq!(attempts, 8);
    // Only the successes reach Bitrix24, as "sent".
    assert!(statuses(&w.sync_jobs().await)
        .iter()
        .all(|(s, _)| *s == MessageStatus::Sent));
}

#[tokio::test]
async fn retry_delays_grow_and_are_not_a_hot_loop() {
    let w = world_with(
        OutboundConfig {
            retry: OutboundRetryPolicy::default(),
            ..test_config()
        },
        None,
    )
    .await;
    let conv = w.wa_customer(HOUR).await;
    w.reply(&conv, operator("hi", vec![], 1)).await;
    w.graph.fail_sends(1, GraphFailure::Code(130429));
    assert_eq!(
        w.run().await,
        vec![Outcome::RetryAfter(Duration::from_secs(30))]
    );
    w.graph.fail_sends(1, GraphFailure::ServerError);
    assert_eq!(
        w.run().await,
        vec![Outcome::RetryAfter(Duration::from_secs(60))],
        "second receive: 15 s × 4"
    );
    w.graph.fail_sends(1, GraphFailure::Code(131056));
    assert_eq!(
        w.run().await,
        vec![Outcome::RetryAfter(Duration::from_secs(40))],
        "third receive: 10 s × 2²"
    );
}

#[tokio::test]
async fn the_recipient_is_paced_without_asking_meta() {
    let mut config = test_config();
    config.pacing.recipient = PacingConfig {
        rate_per_sec: 1.0 / 6.0,
        burst: 2.0,
        max_wait: Duration::ZERO,
    };
    let w = world_with(config, None).await;
    let conv = w.wa_customer(HOUR).await;
    for i in 1..=3 {
        w.reply(&conv, operator(&format!("part {i}"), vec![], i))
            .await;
    }
    let outcomes = w.run().await;
    assert_eq!(outcomes[..2], [Outcome::Done, Outcome::Done]);
    match &outcomes[2..] {
        [Outcome::RetryAfter(wait)] => {
            assert!(*wait > Duration::from_secs(5) && *wait <= Duration::from_secs(6))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.graph.sent().len(), 2, "the third waits for the pair rate");
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_reported() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let cases = [
        (
            131047,
            "131047: more than 24 hours since the customer's last message",
        ),
        (131026, "131026: message undeliverable"),
        (190, "190: the channel's access token is expired or invalid"),
        (100, "100: invalid parameter"),
    ];
    for (i, (code, reason)) in cases.into_iter().enumerate() {
        w.graph.fail_sends(1, GraphFailure::Code(code));
        let at = w
            .reply(
                &conv,
                operator(&format!("attempt {i}"), vec![], i as u64 + 1),
            )
            .await;
        assert_eq!(w.run().await, vec![Outcome::Done], "{code}");
        assert!(w.run().await.is_empty(), "{code}: nothing left to retry");
        assert_eq!(w.message(&at).await.status, Some(MessageStatus::Failed));
        let s = statuses(&w.sync_jobs().await);
        assert_eq!(s.len(), 1, "{code}");
        assert_eq!(s[0].0, MessageStatus::Failed);
        let failure = s[0].1.clone().unwrap();
        assert!(failure.starts_with(reason), "{code}: {failure}");
        assert!(!failure.contains("attempt"), "never the message text");
    }
    assert!(w.graph.sent().is_empty());
}

#[tokio::test]
async fn meta_outages_are_retried_then_dead_lettered_with_a_note() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    // Down twice, then up: delivered once.
    w.graph.fail_sends(1, GraphFailure::ServerError);
    w.graph.fail_sends(1, GraphFailure::Down);
    let at = w.reply(&conv, operator("first", vec![], 1)).await;
    assert!(matches!(w.run().await.as_slice(), [Outcome::RetryAfter(_)]));
    assert!(matches!(w.run().await.as_slice(), [Outcome::RetryAfter(_)]));
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert_eq!(w.graph.sent().len(), 1);
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Sent));
    w.sync_jobs().await;

    // Down for good: five failed attempts, then the worker moves the job to the dead-letter
    // queue itself (decision 0069), and the operator is told.
    w.graph.fail_sends(10, GraphFailure::ServerError);
    let at = w.reply(&conv, operator("second", vec![], 2)).await;
    for n in 1..=4 {
        assert!(
            matches!(w.run().await.as_slice(), [Outcome::RetryAfter(_)]),
            "attempt {n}"
        );
    }
    assert_eq!(
        w.run().await,
        vec![Outcome::Done],
        "moved, not left to fail"
    );
    assert!(w.run().await.is_empty());
    assert_eq!(w.queue.depth(&outbound().dead_letter()).await.unwrap(), 1);
    let s = statuses(&w.sync_jobs().await);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, MessageStatus::Failed);
    assert!(s[0].1.as_deref().unwrap().contains("after 5 attempts"));
    // Not marked failed: a redrive from the dead-letter queue can still send it.
    assert_eq!(w.message(&at).await.status, None);
}

/// Receives that were no attempt of the job's own (skipped behind a failing head of its
/// group, paced, lost, or cut short by a crash) do not use up its tries: a send delivered six
/// times before its first failure is retried, not dead-lettered (decision 0069; the fault
/// soak found a send that never failed dead-lettered that way, issue 17).
#[tokio::test]
async fn receives_that_were_no_attempt_do_not_use_up_a_sends_tries() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let at = w.reply(&conv, operator("held back", vec![], 1)).await;
    for _ in 0..6 {
        let received = w
            .queue
            .receive(&outbound(), 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(received.len(), 1, "still queued, not dead-lettered");
        w.queue
            .change_visibility(&outbound(), &received[0].receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    // Its first attempt fails: retried, and nobody is told it gave up.
    w.graph.fail_sends(1, GraphFailure::ServerError);
    assert!(matches!(w.run().await.as_slice(), [Outcome::RetryAfter(_)]));
    assert_eq!(w.queue.depth(&outbound().dead_letter()).await.unwrap(), 0);
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert_eq!(w.graph.sent().len(), 1);
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Sent));
    assert!(statuses(&w.sync_jobs().await)
        .iter()
        .all(|(s, _)| *s == MessageStatus::Sent));
}

#[tokio::test]
async fn a_failure_part_way_resends_only_the_rest() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let photo = w.graph.add_cdn("a.jpg", "image/jpeg", JPEG);
    let file = |name: &str| OperatorFile {
        url: photo.clone(),
        name: Some(name.into()),
        mime_type: Some("image/jpeg".into()),
    };
    w.graph.pass_sends(1);
    w.graph.fail_sends(1, GraphFailure::ServerError);
    let at = w
        .reply(
            &conv,
            operator("three parts", vec![file("1.jpg"), file("2.jpg")], 1),
        )
        .await;
    assert!(matches!(w.run().await.as_slice(), [Outcome::RetryAfter(_)]));
    assert_eq!(w.graph.sent().len(), 1);
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let bodies = sends(&w.graph);
    assert_eq!(bodies.len(), 3, "text once, then both images");
    assert_eq!(bodies[0]["type"], "text");
    assert_eq!(bodies[1]["type"], "image");
    assert_eq!(bodies[2]["type"], "image");
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Sent));
    // Every part's id finds the message, for Meta's statuses.
    for s in w.graph.sent() {
        assert_eq!(
            w.conversations().find_message(&wa(), &s.id).await.unwrap(),
            Some(at.clone())
        );
    }
    // The ids of the parts sent (a wamid holds the recipient's number) are kept encrypted,
    // in the send progress and on the message alike (decision 0030).
    for table in [Table::Dedupe, Table::Data] {
        let mut after = None;
        loop {
            let page = w
                .platform
                .store
                .scan(table, after.as_ref(), 500)
                .await
                .unwrap();
            for item in &page.items {
                for s in w.graph.sent() {
                    assert!(
                        !item
                            .0
                            .values()
                            .any(|v| e2e_tests::harness::contains_bytes(v, s.id.as_bytes())),
                        "{} in clear in {table:?}",
                        s.id
                    );
                }
            }
            match page.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
}

/// A send that kills its worker (it runs the instance out of memory or time) never returns a
/// failure to count. Past its trusted receives each run is counted before it starts and taken
/// back when it returns; after a few runs that died it is dead-lettered without running
/// again, not after the queue's 1,000-receive backstop (decision 0081).
#[tokio::test]
async fn a_send_that_kills_its_worker_is_dead_lettered_after_a_few_deaths() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use wappline::faults::hooked::{HookedStore, Verdict};
    use wappline::run_guard::{TRUSTED_RECEIVES, UNRETURNED_LIMIT};

    // While `deadly` is set, the send's first write of its own (any but the worker's records
    // of its runs and attempts) kills the run: a panic in the task running it.
    let deadly = Arc::new(AtomicBool::new(false));
    let deaths = Arc::new(AtomicU32::new(0));
    let (k, n) = (deadly.clone(), deaths.clone());
    let w = World::start(None, move |platform, queue, clients| {
        let store = Arc::new(HookedStore::with(platform.store.clone(), move |c| {
            let bookkeeping = c
                .targets()
                .iter()
                .any(|(_, key)| key.sk == "OUTRUN" || key.sk == "OUTTRY");
            if k.load(Ordering::SeqCst) && c.writes() && !bookkeeping {
                n.fetch_add(1, Ordering::SeqCst);
                panic!("injected: the run kills its instance");
            }
            Verdict::Run
        }));
        worker_over(store, platform, queue, clients, test_config())
            .with_dead_letter_queue(Some(queue.clone()))
    })
    .await;
    let conv = w.wa_customer(HOUR).await;
    let at = w.reply(&conv, operator("deadly", vec![], 1)).await;
    let receive = || async {
        let mut got = w
            .queue
            .receive(&outbound(), 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "the send waits on its queue");
        got.remove(0)
    };
    deadly.store(true, Ordering::SeqCst);
    for _ in 0..TRUSTED_RECEIVES + UNRETURNED_LIMIT {
        let m = receive().await;
        let worker = w.worker.clone();
        let record = QueueRecord::from(&m);
        let ran = tokio::spawn(async move { worker.handle(&record).await });
        assert!(ran.await.is_err(), "the run died");
        // Its visibility timeout, waited out.
        w.queue
            .change_visibility(&outbound(), &m.receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    let deaths_before = deaths.load(Ordering::SeqCst);
    assert_eq!(deaths_before, TRUSTED_RECEIVES + UNRETURNED_LIMIT);
    // The next receive moves it, unchanged, without running it.
    let m = receive().await;
    assert_eq!(w.worker.handle(&QueueRecord::from(&m)).await, Outcome::Done);
    w.queue.ack(&outbound(), &m.receipt).await.unwrap();
    assert_eq!(
        deaths.load(Ordering::SeqCst),
        deaths_before,
        "not run again"
    );
    let dead = w
        .queue
        .receive(&outbound().dead_letter(), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, m.body, "moved unchanged");
    assert!(w.graph.sent().is_empty(), "nothing reached Meta");
    assert_eq!(w.message(&at).await.status, None);
}
