//! Meta webhook parsing against pywa (issue 17, item 4), on the same deliveries in one run:
//! the WhatsApp samples of `events/meta-webhook/` (pywa reads WhatsApp only), each signed
//! as Meta signs it. Per delivery, ours is the signature check plus [`split_webhook`] (every
//! event of the delivery, typed); pywa's is its signature check plus
//! `webhook_update_handler` (json.loads and the typed update of the delivery's first item),
//! timed by `scripts/bench/pywa_parse.py` with the project's `.venv` (pywa from
//! `scripts/requirements-bench.txt`).
//!
//! Run with `cargo bench -p wappline --bench meta_parse`; figures go to docs/performance.md.
//! Without pywa installed, only our figures are printed.
//!
//! `-- --only ours|split|signature|signature-rekeyed --rounds N` runs only that part of our side, N times over
//! every sample, untimed: for counting instructions, which shared machines leave repeatable
//! where timings are not. Per delivery = (count at N - count at 0) / (N × samples).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wappline::meta::{split_webhook, verify_signature, AppSecret};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const RUNS: u32 = 3_000;
const PYWA_RUNS: u32 = 300;

fn samples(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .collect();
    files.sort();
    files
}

/// Microseconds per delivery of `f` over every body, best of three rounds of `RUNS`.
fn time(bodies: &[(Vec<u8>, String)], mut f: impl FnMut(&[u8], &str) -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut events = 0;
        for _ in 0..RUNS {
            for (body, header) in bodies {
                events += f(body, header);
            }
        }
        std::hint::black_box(events);
        let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(RUNS) / bodies.len() as f64;
        best = best.min(per);
    }
    best
}

fn pywa(files: &[PathBuf]) -> Option<f64> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let out = Command::new(python)
        .arg(root.join("scripts/bench/pywa_parse.py"))
        .arg(SECRET)
        .arg(PYWA_RUNS.to_string())
        .args(files)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "pywa run failed (install scripts/requirements-bench.txt into .venv): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// What `--only` runs: one part of our side, for an instruction counter.
#[derive(Clone, Copy)]
enum Only {
    Ours,
    Split,
    Signature,
    /// The signature keyed per delivery, as before decision 0079 (`AppSecret` now holds the
    /// keyed HMAC): the comparison in one binary.
    SignatureRekeyed,
}

/// `--only <part> --rounds <n>` from the command line (cargo adds `--bench`, ignored).
fn only_mode() -> Option<(Only, u32)> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let only = match value("--only")?.as_str() {
        "ours" => Only::Ours,
        "split" => Only::Split,
        "signature" => Only::Signature,
        "signature-rekeyed" => Only::SignatureRekeyed,
        other => panic!("--only {other}: expected ours, split, signature or signature-rekeyed"),
    };
    let rounds = value("--rounds").map_or(1, |n| n.parse().expect("--rounds <n>"));
    Some((only, rounds))
}

/// Runs `only` over every body `rounds` times, untimed.
#[inline(never)]
fn run_only(secret: &AppSecret, bodies: &[(Vec<u8>, String)], only: Only, rounds: u32) {
    let mut events = 0;
    for _ in 0..rounds {
        for (body, header) in bodies {
            let body = std::hint::black_box(body.as_slice());
            if matches!(only, Only::Ours | Only::Signature) {
                verify_signature(secret, Some(header), body).unwrap();
            }
            if matches!(only, Only::SignatureRekeyed) {
                let hex = header.strip_prefix("sha256=").unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(body);
                mac.verify_slice(&hex::decode(hex).unwrap()).unwrap();
            }
            if matches!(only, Only::Ours | Only::Split) {
                events += split_webhook(body).unwrap().events.len();
            }
        }
    }
    std::hint::black_box(events);
}

fn main() {
    let secret = AppSecret::new(SECRET).unwrap();
    let load = |files: &[PathBuf]| -> Vec<(Vec<u8>, String)> {
        files
            .iter()
            .map(|p| {
                let body = std::fs::read(p).unwrap();
                let header = secret.sign(&body);
                (body, header)
            })
            .collect()
    };
    let wa_files = samples("whatsapp-");
    let wa = load(&wa_files);
    if let Some((only, rounds)) = only_mode() {
        run_only(&secret, &wa, only, rounds);
        return;
    }
    let ig = load(&samples("instagram-"));
    let bytes: usize = wa.iter().map(|(b, _)| b.len()).sum();
    let events: usize = wa
        .iter()
        .map(|(b, _)| split_webhook(b).unwrap().events.len())
        .sum();
    println!(
        "{} WhatsApp deliveries, {:.0} bytes and {:.2} events per delivery on average",
        wa.len(),
        bytes as f64 / wa.len() as f64,
        events as f64 / wa.len() as f64
    );

    let ours = time(&wa, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        split_webhook(body).unwrap().events.len()
    });
    let split_only = time(&wa, |body, _| split_webhook(body).unwrap().events.len());
    let hmac_only = time(&wa, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        1
    });
    // The floor read as the split reads: the body's UTF-8 checked once, then the text.
    let json_floor = time(&wa, |body, _| {
        let text = std::str::from_utf8(body).unwrap();
        serde_json::from_str::<serde::de::IgnoredAny>(text).unwrap();
        1
    });
    let ig_ours = time(&ig, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        split_webhook(body).unwrap().events.len()
    });
    println!("ours  signature + split          {ours:8.3} µs/delivery");
    println!("        split alone              {split_only:8.3} µs/delivery");
    println!("        signature alone          {hmac_only:8.3} µs/delivery");
    println!(
        "        JSON validation alone    {json_floor:8.3} µs/delivery (serde_json, no output)"
    );
    println!(
        "ours  Instagram samples ({:2})     {ig_ours:8.3} µs/delivery (pywa has no Instagram)",
        ig.len()
    );
    match pywa(&wa_files) {
        Some(p) => {
            println!("pywa  signature + update         {p:8.3} µs/delivery");
            println!("ratio pywa / ours                {:8.1}x", p / ours);
        }
        None => println!("pywa  not measured"),
    }
}
