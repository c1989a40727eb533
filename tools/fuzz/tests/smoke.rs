//! The CI smoke of the fuzzer: every parser of untrusted input, a few thousand generated
//! inputs each (see [`CASES`]), no panic. The full runs are `wappline-fuzz --execs N`
//! (`docs/performance.md`).

use std::path::Path;

use wappline_fuzz::targets::{self, Target, NAMES};
use wappline_fuzz::{replay, run, run_target};

/// Cases per parser: 10,000 optimised; in a debug build, where every case costs about ten
/// times as much, 2,000, so that the whole smoke stays within a few seconds.
const CASES: u64 = if cfg!(debug_assertions) {
    2_000
} else {
    10_000
};

fn smoke(name: &str) {
    let stats = run(name, CASES, 1, 42, None);
    assert_eq!(stats.execs, CASES);
    assert_eq!(stats.crashes, 0, "{name} panicked: {:#?}", stats.messages);
    // The generated inputs must reach past the first check now and then, or the parser
    // behind it is not being fuzzed.
    assert!(
        stats.accepted * 100 >= stats.execs,
        "{name}: only {} of {} inputs accepted",
        stats.accepted,
        stats.execs
    );
    println!(
        "{name}: {} cases, {} accepted, {:?}",
        stats.execs, stats.accepted, stats.elapsed
    );
}

#[test]
fn meta_webhook() {
    smoke("meta-webhook");
}

#[test]
fn meta_signature() {
    smoke("meta-signature");
}

#[test]
fn bitrix_event() {
    smoke("bitrix-event");
}

#[test]
fn bitrix_install() {
    smoke("bitrix-install");
}

#[test]
fn signed_request() {
    smoke("signed-request");
}

#[test]
fn admin_api() {
    smoke("admin-api");
}

#[test]
fn public_api() {
    smoke("public-api");
}

#[test]
fn media_token() {
    smoke("media-token");
}

#[test]
fn export_token() {
    smoke("export-token");
}

#[test]
fn access_token() {
    smoke("access-token");
}

#[test]
fn every_target_has_a_smoke_test() {
    let source = include_str!("smoke.rs");
    for name in NAMES {
        assert!(
            source.contains(&format!("smoke(\"{name}\")")),
            "no smoke test for {name}"
        );
    }
}

/// The seeds are real, valid inputs: each parser accepts every one of them.
#[test]
fn every_seed_is_accepted() {
    for name in NAMES {
        let target = targets::target(name).unwrap();
        assert!(!target.seeds.is_empty(), "{name}: no seeds");
        for (i, seed) in target.seeds.iter().enumerate() {
            assert!(
                (target.run)(seed),
                "{name}: seed {i} refused: {}",
                String::from_utf8_lossy(seed)
            );
        }
    }
}

/// The engine finds a crash that needs a mutation to reach, counts it, and saves the input;
/// the saved input panics again.
#[test]
fn a_crash_is_caught_counted_and_saved() {
    let make = || {
        let real = targets::target("public-api").unwrap();
        Target {
            name: "planted",
            entry: "a parser that panics on a quote inside a string value",
            seeds: real.seeds,
            inputs: real.inputs,
            run: Box::new(|input| {
                let text = String::from_utf8_lossy(input);
                if text.contains("\\\"") {
                    panic!("planted");
                }
                true
            }),
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let stats = run_target(&make, 3_000, 2, 7, Some(dir.path()));
    assert_eq!(stats.execs, 3_000);
    assert!(stats.crashes > 0, "{stats:?}");
    assert!(
        stats.messages[0].contains("planted"),
        "{:?}",
        stats.messages
    );
    assert!(!stats.saved.is_empty());
    for path in &stats.saved {
        let input = std::fs::read(path).unwrap();
        assert!(String::from_utf8_lossy(&input).contains("\\\""));
    }
}

/// Every crasher the fuzzer ever found (`regressions/<parser>/`) runs without a panic now.
#[test]
fn saved_crashers_no_longer_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut n = 0;
    for name in NAMES {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            assert_eq!(replay(name, &input), None, "{}", path.display());
            n += 1;
        }
    }
    println!("{n} saved crashers replayed");
}
