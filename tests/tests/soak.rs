//! The fault soak of the whole pipeline (issue 17, decision 0053). A short run is part of
//! the normal test suite; the full run is
//! `SOAK_ITEMS=10000 SOAK_SEED=<n> cargo test -p e2e-tests --release --test soak -- --ignored --nocapture`.

use e2e_tests::soak::{run, SoakConfig, SoakFigures, SoakReport};

/// Everything but sends to Meta made twice (see `nothing_is_sent_to_meta_twice`).
fn assert_clean(r: &SoakReport) {
    let f = &r.figures;
    assert_eq!(f.lost_at_bitrix, 0, "{r:#?}");
    assert_eq!(f.duplicated_at_bitrix, 0, "{r:#?}");
    assert_eq!(f.lost_at_graph, 0, "{r:#?}");
    assert_eq!(f.statuses_lost, 0, "{r:#?}");
    assert_eq!(f.out_of_order, 0, "{r:#?}");
    assert_eq!(f.erased_came_back, 0, "{r:#?}");
    assert_eq!(
        f.dead_lettered, f.poisoned,
        "only the poison is dead-lettered: {r:#?}"
    );
}

fn print(r: &SoakReport) {
    println!("{r:#?}");
}

/// A few hundred items with faults: seconds, in CI. Two runs of one seed give the same
/// figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_loses_nothing_duplicates_nothing_and_keeps_order() {
    let config = SoakConfig::new(250, 20261204);
    let first = run(config.clone()).await;
    print(&first);
    assert_clean(&first);
    // Faults were met, or the soak proves nothing.
    assert!(first.faults.values().sum::<u64>() > 20, "{first:#?}");
    assert!(first.figures.erasures + first.figures.replies + first.figures.statuses > 0);
    // The same seed makes the same items and the same clean figures. (Which step the n-th
    // call of a site is depends on how the consumers interleave, so the sends to Meta made
    // twice, the known gap below, may differ.)
    let second = run(config).await;
    assert_clean(&second);
    let comparable = |r: &SoakReport| SoakFigures {
        duplicated_at_graph: 0,
        resent_after_crash: 0,
        ..r.figures.clone()
    };
    assert_eq!(
        comparable(&first),
        comparable(&second),
        "same seed, same figures"
    );
}

/// The known gap the soak found (decision 0053): when the store write that records a
/// message as sent fails after Meta accepted it (an error, or a crash between the two), the
/// send worker's retry sends it again; the Cloud API has no idempotency key to stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails today: the send worker resends when recording a send fails (issue 17 finding)"]
async fn nothing_is_sent_to_meta_twice() {
    let r = run(SoakConfig::new(250, 20261204)).await;
    print(&r);
    assert_eq!(
        r.figures.duplicated_at_graph + r.figures.resent_after_crash,
        0,
        "{r:#?}"
    );
}

/// The full soak: `SOAK_ITEMS` items (default 10,000) from seed `SOAK_SEED` (default 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes; run on demand, figures go to docs/performance.md"]
async fn full_soak() {
    let items = std::env::var("SOAK_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if std::env::var("SOAK_LOG").is_ok() {
        wappline::logging::init_text();
    }
    let mut config = SoakConfig::new(items, seed);
    // `SOAK_FAULTS=0`: the same items without faults (a baseline).
    if std::env::var("SOAK_FAULTS").is_ok_and(|v| v == "0") {
        config.rates = wappline::faults::FaultRates::NONE;
        config.http_rates = wappline::faults::FaultRates::NONE;
    }
    let report = run(config).await;
    print(&report);
    assert_clean(&report);
    let _: &SoakFigures = &report.figures;
}
