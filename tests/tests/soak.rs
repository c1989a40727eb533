//! The fault soak of the whole pipeline (issue 17, decision 0053). A short run is part of
//! the normal test suite; the full run is
//! `SOAK_ITEMS=10000 SOAK_SEED=<n> cargo test -p e2e-tests --test soak full_soak -- --ignored --nocapture`.

use e2e_tests::soak::{run, SoakConfig, SoakFigures, SoakReport};

/// What holds under faults today: nothing lost on the way to Bitrix24 and nothing posted
/// there twice, order kept, only the poison dead-lettered, nothing of an erased person back,
/// and each reply and API send reaching Meta once (decision 0055). A first post repeated
/// after its answer was lost (decision 0056) is the gap of `no_repeats_and_no_lost_sends`.
fn assert_clean(r: &SoakReport) {
    let f = &r.figures;
    assert_eq!(f.lost_at_graph, 0, "{r:#?}");
    assert_eq!(f.duplicated_at_graph, 0, "{r:#?}");
    assert_eq!(f.lost_at_bitrix, 0, "{r:#?}");
    // Each status of an operator reply reaches its portal: a retry of the status job queues
    // the sync job its first try owed (lost when the sync queue refused it, issue 17).
    assert_eq!(f.statuses_lost, 0, "{r:#?}");
    // Meta's `delivered` of each reply it accepted reaches the portal, also when it came
    // before the send was recorded (decision 0074).
    assert_eq!(f.replies_not_delivered, 0, "{r:#?}");
    // No status posted more than its moves owe, but after a lost answer or a crash: a sync
    // job is recorded done before its staged status is dropped (decision 0080).
    assert_eq!(f.status_posts_repeated, 0, "{r:#?}");
    assert_eq!(f.out_of_order, 0, "{r:#?}");
    // Nothing posted to Bitrix24 twice (decision 0056).
    assert_eq!(f.duplicated_at_bitrix, 0, "{r:#?}");
    assert_eq!(f.erased_came_back, 0, "{r:#?}");
    // Each erased person's delivery also reached the worker past the queue's deduplication
    // window, or the erasure rule was not asked.
    assert!(
        f.erasures == 0 || f.erased_past_window >= f.erasures,
        "{r:#?}"
    );
    assert_eq!(f.dead_lettered, f.poisoned, "only the poison: {r:#?}");
    assert_eq!(
        f.redriven, 0,
        "nothing dead-lettered during the run: {r:#?}"
    );
}

/// The figures of a seed that do not depend on how the consumers interleave.
fn comparable(r: &SoakReport) -> SoakFigures {
    SoakFigures {
        duplicated_at_bitrix: 0,
        first_posts_repeated_after_lost_answer: 0,
        status_posts_repeated: 0,
        status_posts_repeated_after_lost_answer: 0,
        lost_at_graph: 0,
        duplicated_at_graph: 0,
        resent_after_crash: 0,
        instagram_reads_of_an_earlier_copy: 0,
        instagram_replies_read_with_their_thread: 0,
        ..r.figures.clone()
    }
}

/// Two hundred items with faults, twice from one seed: about a minute, in CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_loses_nothing_on_the_way_to_bitrix24_and_keeps_order() {
    let mut config = SoakConfig::new(200, 20261204);
    // A crash is the point of the short run: at one port call in 4,000 (the full soak's one
    // in 20,000 met none in some seeds once decision 0058 took reads off), its 13,000 or so
    // calls meet a few whatever the pipeline's own count of calls.
    config.rates.crash = 25;
    let first = run(config.clone()).await;
    println!("{first:#?}");
    assert_clean(&first);
    // Faults were met, a crash among them, or the soak proves nothing.
    assert!(first.faults.values().sum::<u64>() > 20, "{first:#?}");
    assert!(first.restarts > 0, "{first:#?}");
    let f = &first.figures;
    assert!(f.erasures > 0 && f.replies > 0 && f.statuses > 0 && f.api_sends > 0);
    // Instagram customers wrote, were answered and read (one in four customers).
    assert!(f.instagram_items > 0, "{first:#?}");
    // The same seed makes the same items and the same figures.
    let second = run(config).await;
    assert_clean(&second);
    assert_eq!(comparable(&first), comparable(&second), "same seed");
}

/// The gaps the soak still finds (decisions 0055 and 0056, docs/performance.md): a
/// conversation's first post to Bitrix24 repeated after its answer was lost on the wire or
/// a crash hid it (Bitrix24 offers no lookup without the chat id its answer carries; about
/// one 200-item run in eight), and a send to Meta whose outcome a crash hid, sent again when
/// Meta's status of its attempt did not come within the reconcile window, and on Instagram a
/// read of such a send's earlier copy, which nothing ties to the message (decision 0114).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails now and then: the first-post repeats of decision 0056 (issue 17)"]
async fn no_repeats_and_no_lost_sends() {
    let r = run(SoakConfig::new(250, 20261204)).await;
    println!("{r:#?}");
    let f = &r.figures;
    let gaps = f.duplicated_at_bitrix
        + f.first_posts_repeated_after_lost_answer
        + f.status_posts_repeated
        + f.lost_at_graph
        + f.duplicated_at_graph
        + f.resent_after_crash
        + f.instagram_reads_of_an_earlier_copy;
    assert_eq!(gaps, 0, "{r:#?}");
}

/// The full soak: `SOAK_ITEMS` items (default 10,000) from seed `SOAK_SEED` (default 1);
/// `SOAK_FAULTS=0` runs the same items without faults, `SOAK_INSTAGRAM=<n>` makes n of each
/// tenant's 4 customers write on Instagram (1 by default; 0 for WhatsApp alone, as before
/// 2026-12-07), `SOAK_CRASH=<n>` crashes at n port
/// calls in 100,000 (the short soak's 25), `SOAK_STEP_WITHIN_SECS=<n>` lets the driver wait
/// n seconds for one step (90 by default; more for a run starved of CPU), `SOAK_LOG=1`
/// prints the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes; run on demand, figures go to docs/performance.md"]
async fn full_soak() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if std::env::var("SOAK_LOG").is_ok() {
        wappline::logging::init_text();
    }
    let mut config = SoakConfig::new(
        var("SOAK_ITEMS").unwrap_or(10_000) as usize,
        var("SOAK_SEED").unwrap_or(1),
    );
    if let Some(crash) = var("SOAK_CRASH") {
        config.rates.crash = crash as u32;
    }
    if let Some(n) = var("SOAK_INSTAGRAM") {
        config.instagram_customers = (n as usize).min(config.customers);
    }
    if let Some(secs) = var("SOAK_STEP_WITHIN_SECS") {
        config.step_within = std::time::Duration::from_secs(secs);
    }
    if var("SOAK_FAULTS") == Some(0) {
        config.rates = wappline::faults::FaultRates::NONE;
        config.http_rates = wappline::faults::FaultRates::NONE;
    }
    let report = run(config).await;
    println!("{report:#?}");
    assert_clean(&report);
}
