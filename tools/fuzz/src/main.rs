//! `wappline-fuzz`: runs every parser of untrusted input (or those named) a given number of
//! times and prints, per parser, the executions, the crashes (panics) and the time taken.
//! Exits non-zero when anything crashed; crashing inputs are saved to `--crashes`.
//!
//! ```text
//! cargo run --profile fuzz -p wappline-fuzz -- --execs 10000000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wappline_fuzz::targets::NAMES;

#[derive(Parser)]
#[command(about = "Fuzzes every parser of untrusted input")]
struct Args {
    /// Executions per parser.
    #[arg(long, default_value_t = 10_000_000)]
    execs: u64,
    /// Threads per parser (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the inputs (the same seed gives the same inputs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where crashing inputs are saved.
    #[arg(long, default_value = "fuzz-crashes")]
    crashes: PathBuf,
    /// Only these parsers (default: all).
    targets: Vec<String>,
    /// Replays one saved input through the first parser named, instead of fuzzing.
    #[arg(long)]
    replay: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let names: Vec<&str> = if args.targets.is_empty() {
        NAMES.to_vec()
    } else {
        args.targets.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = names.iter().find(|n| !NAMES.contains(n)) {
        eprintln!("unknown parser {unknown}; parsers: {}", NAMES.join(", "));
        return ExitCode::from(2);
    }
    if let Some(path) = args.replay {
        let input = std::fs::read(&path).expect("the input can be read");
        return match wappline_fuzz::replay(names[0], &input) {
            Some(message) => {
                println!("{}: panics: {message}", names[0]);
                ExitCode::FAILURE
            }
            None => {
                println!("{}: no panic", names[0]);
                ExitCode::SUCCESS
            }
        };
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "{:<16} {:>12} {:>9} {:>8} {:>9} {:>9}",
        "parser", "executions", "accepted", "crashes", "seconds", "µs/exec"
    );
    let mut crashed = false;
    for name in names {
        let s = wappline_fuzz::run(name, args.execs, threads, args.seed, Some(&args.crashes));
        let secs = s.elapsed.as_secs_f64();
        println!(
            "{:<16} {:>12} {:>8.1}% {:>8} {:>9.1} {:>9.2}",
            s.target,
            s.execs,
            100.0 * s.accepted as f64 / s.execs.max(1) as f64,
            s.crashes,
            secs,
            secs * 1e6 * threads as f64 / s.execs.max(1) as f64
        );
        for m in &s.messages {
            println!("    panic at {m}");
        }
        for p in &s.saved {
            println!("    saved {}", p.display());
        }
        crashed |= s.crashes > 0;
    }
    println!("threads per parser: {threads}, seed: {}", args.seed);
    if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
