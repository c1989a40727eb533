//! Meta webhook parsing against pywa (issue 17, item 4), on the same deliveries in one run:
//! the WhatsApp samples of `events/meta-webhook/` (pywa reads WhatsApp only), each signed
//! as Meta signs it. Per delivery, ours is the signature check plus
//! [`split_webhook_borrowed`] (every event of the delivery, typed, its strings borrowed from
//! the body: what the webhook seals, decision 0103; `split, owned events` times
//! [`split_webhook`] in the same run); pywa's is its signature check plus
//! `webhook_update_handler` (json.loads and the typed update of the delivery's first item),
//! timed by `scripts/bench/pywa_parse.py` with the project's `.venv` (pywa from
//! `scripts/requirements-bench.txt`).
//!
//! Run with `cargo bench -p wappline --bench meta_parse`; figures go to docs/performance.md.
//! Without pywa installed, only our figures are printed.
//!
//! The samples are pretty-printed, as Meta's documentation shows them; Meta posts them
//! compact (no whitespace between tokens, decision 0089). A second measurement runs both
//! sides again on the same samples in that wire form (whitespace outside strings removed,
//! every string and number byte for byte the same), each signed, in the same run.
//!
//! `-- --only ours|split|split-owned|signature|signature-rekeyed --rounds N` runs only that part of our side, N times over
//! every sample, untimed: for counting instructions, which shared machines leave repeatable
//! where timings are not. Per delivery = (count at N - count at 0) / (N × samples). With
//! `--wire`, over the samples' wire form instead of the samples as stored.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wappline::meta::{split_webhook, split_webhook_borrowed, verify_signature, AppSecret};

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

/// `body` as Meta puts it on the wire: no whitespace between tokens, and every character
/// outside ASCII in a string escaped as `\uXXXX` with lowercase hex digits (Meta's
/// documentation on validating payloads says it signs that escaped form). Everything else
/// (other escapes, numbers, key order) is kept byte for byte; in valid JSON, whitespace
/// outside strings only separates tokens that punctuation separates too, so the value read
/// is the same (checked by the caller on every sample).
fn compact(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("the samples are UTF-8");
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if !c.is_ascii() {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
                continue;
            }
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out.into_bytes()
}

/// Each sample's compact form in a file of its own under the system's temporary directory,
/// for pywa to read exactly the bytes ours reads.
fn write_compact(files: &[PathBuf], bodies: &[(Vec<u8>, String)]) -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!("meta_parse_compact_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    files
        .iter()
        .zip(bodies)
        .map(|(file, (body, _))| {
            let path = dir.join(file.file_name().unwrap());
            std::fs::write(&path, body).unwrap();
            path
        })
        .collect()
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
    /// The split into owned events (`split_webhook`), as before decision 0103.
    SplitOwned,
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
        "split-owned" => Only::SplitOwned,
        "signature" => Only::Signature,
        "signature-rekeyed" => Only::SignatureRekeyed,
        other => panic!(
            "--only {other}: expected ours, split, split-owned, signature or signature-rekeyed"
        ),
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
                events += split_webhook_borrowed(body).unwrap().events.len();
            }
            if matches!(only, Only::SplitOwned) {
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
        let bodies = if std::env::args().any(|a| a == "--wire") {
            wa.iter()
                .map(|(body, _)| {
                    let body = compact(body);
                    let header = secret.sign(&body);
                    (body, header)
                })
                .collect()
        } else {
            wa
        };
        run_only(&secret, &bodies, only, rounds);
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
        split_webhook_borrowed(body).unwrap().events.len()
    });
    let split_only = time(&wa, |body, _| {
        split_webhook_borrowed(body).unwrap().events.len()
    });
    let split_owned = time(&wa, |body, _| split_webhook(body).unwrap().events.len());
    let hmac_only = time(&wa, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        1
    });
    let json_floor = time(&wa, json_validation);
    let ig_ours = time(&ig, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        split_webhook_borrowed(body).unwrap().events.len()
    });
    println!("ours  signature + split          {ours:8.3} µs/delivery");
    println!("        split alone              {split_only:8.3} µs/delivery");
    println!("        split, owned events      {split_owned:8.3} µs/delivery (split_webhook)");
    println!("        signature alone          {hmac_only:8.3} µs/delivery");
    println!(
        "        JSON validation alone    {json_floor:8.3} µs/delivery (serde_json, no output)"
    );
    println!(
        "ours  Instagram samples ({:2})     {ig_ours:8.3} µs/delivery (pywa has no Instagram)",
        ig.len()
    );
    let pywa_pretty = pywa(&wa_files);
    match pywa_pretty {
        Some(p) => {
            println!("pywa  signature + update         {p:8.3} µs/delivery");
            println!("ratio pywa / ours                {:8.1}x", p / ours);
        }
        None => println!("pywa  not measured"),
    }

    // The same deliveries as Meta posts them: compact, each signed over its own bytes.
    let wire: Vec<(Vec<u8>, String)> = wa
        .iter()
        .map(|(body, _)| {
            let body = compact(body);
            let header = secret.sign(&body);
            (body, header)
        })
        .collect();
    for ((pretty, _), (body, _)) in wa.iter().zip(&wire) {
        assert_eq!(
            split_webhook(pretty).unwrap(),
            split_webhook(body).unwrap(),
            "a sample's compact form must give the same events"
        );
    }
    let wire_bytes: usize = wire.iter().map(|(b, _)| b.len()).sum();
    let wire_ours = time(&wire, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        split_webhook_borrowed(body).unwrap().events.len()
    });
    let wire_split = time(&wire, |body, _| {
        split_webhook_borrowed(body).unwrap().events.len()
    });
    let wire_split_owned = time(&wire, |body, _| split_webhook(body).unwrap().events.len());
    let wire_hmac = time(&wire, |body, header| {
        verify_signature(&secret, Some(header), body).unwrap();
        1
    });
    let wire_json = time(&wire, json_validation);
    // What the split's owned events cost: the split, then one more copy of its events
    // (every string allocated and copied again, and dropped). Borrowing the events from the
    // body would save about the difference from `split alone` (decision 0093).
    let wire_split_copied = time(&wire, |body, _| {
        let batch = split_webhook(body).unwrap();
        let copy = std::hint::black_box(batch.events.clone());
        copy.len()
    });
    println!(
        "compact (wire) form of the same samples, {:.0} bytes per delivery on average",
        wire_bytes as f64 / wire.len() as f64
    );
    println!("ours  signature + split          {wire_ours:8.3} µs/delivery");
    println!("        split alone              {wire_split:8.3} µs/delivery");
    println!("        split, owned events      {wire_split_owned:8.3} µs/delivery (split_webhook)");
    println!("        signature alone          {wire_hmac:8.3} µs/delivery");
    println!(
        "        JSON validation alone    {wire_json:8.3} µs/delivery (serde_json, no output)"
    );
    println!("        split, events copied     {wire_split_copied:8.3} µs/delivery (what owned events cost)");
    let wire_files = write_compact(&wa_files, &wire);
    let pywa_wire = pywa(&wire_files);
    if let Some(dir) = wire_files.first().and_then(|p| p.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    match pywa_wire {
        Some(p) => {
            println!("pywa  signature + update         {p:8.3} µs/delivery");
            println!("ratio pywa / ours                {:8.1}x", p / wire_ours);
        }
        None => println!("pywa  not measured"),
    }
}

/// The floor read as the split reads: the body's UTF-8 checked once, then the text.
fn json_validation(body: &[u8], _header: &str) -> usize {
    let text = std::str::from_utf8(body).unwrap();
    serde_json::from_str::<serde::de::IgnoredAny>(text).unwrap();
    1
}
