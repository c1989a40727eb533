//! `wappline-ops`: operator commands. `redrive` puts a platform queue's dead-lettered
//! messages back on it (`wappline::queue::redrive`, decision 0024), on AWS or in the local
//! server's data dir. Runbook: docs/operations/redrive.md.
//!
//! It prints message ids, group ids and counts; never a message body (bodies hold personal
//! data identifiers).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use wappline::app::Settings;
use wappline::queue::embedded::{self, EmbeddedQueue};
use wappline::queue::redrive::{redrive, DeadLetter, RedriveOptions, RedriveReport};
use wappline::queue::sqs::SqsQueue;
use wappline::queue::{platform, Queue, QueueName};

#[derive(Debug, Parser)]
#[command(name = "wappline-ops", version, about = "Wappline operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Move a queue's dead-lettered messages back to it: each is sent to the queue, then
    /// deleted from the DLQ; FIFO groups keep their order.
    ///
    /// On AWS (without --data-dir) the queue URLs come from the same variables the functions
    /// read: QUEUE_URL_<QUEUE> and QUEUE_URL_<QUEUE>_DLQ (the stack outputs
    /// <Queue>QueueUrl and <Queue>DlqUrl); credentials and region from the usual AWS
    /// variables or profile.
    Redrive {
        /// The platform queue: inbound, sync, outbound, erasure or exports.
        #[arg(value_parser = parse_queue)]
        queue: QueueName,
        /// Move at most this many messages.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// List the message ids and groups that would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// The local server's data dir (its --data-dir): use the embedded queues there
        /// instead of SQS. Stop the local server first: the queue file is locked while it runs.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// A platform queue by its short name (`sync`) or its full one (`sync.fifo`).
fn parse_queue(arg: &str) -> Result<QueueName, String> {
    let specs = platform::specs();
    specs
        .iter()
        .map(|spec| spec.name.clone())
        .find(|name| name.as_str() == arg || name.as_str().strip_suffix(".fifo") == Some(arg))
        .ok_or_else(|| {
            let names: Vec<&str> = specs
                .iter()
                .map(|s| {
                    let name = s.name.as_str();
                    name.strip_suffix(".fifo").unwrap_or(name)
                })
                .collect();
            format!("not a platform queue; one of: {}", names.join(", "))
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    wappline::logging::init_text();
    match Cli::parse().command {
        Command::Redrive {
            queue,
            max,
            dry_run,
            data_dir,
        } => {
            let options = RedriveOptions {
                max: max.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                dry_run,
            };
            let adapter = match data_dir {
                Some(dir) => open_embedded(&dir),
                None => open_sqs(&queue).await,
            };
            match adapter {
                Ok(adapter) => run_redrive(adapter.as_ref(), &queue, &options).await,
                Err(e) => {
                    eprintln!("wappline-ops: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The local server's queues, from a data dir it has created (never a new, empty one).
fn open_embedded(dir: &Path) -> Result<Arc<dyn Queue>, String> {
    let file = dir.join(embedded::FILE_NAME);
    if !file.is_file() {
        return Err(format!(
            "{} not found: is {} the local server's --data-dir?",
            file.display(),
            dir.display()
        ));
    }
    let queue = EmbeddedQueue::open(dir, platform::specs()).map_err(|e| {
        format!(
            "cannot open the queues in {}: {e} (stop the local server using it first)",
            dir.display()
        )
    })?;
    Ok(Arc::new(queue))
}

/// SQS, with the queue URLs the settings read (the functions' variables).
async fn open_sqs(queue: &QueueName) -> Result<Arc<dyn Queue>, String> {
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let missing: Vec<String> = [queue.clone(), queue.dead_letter()]
        .iter()
        .filter(|q| !settings.queue_urls.contains_key(q))
        .map(SqsQueue::url_env_var)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} not set (or pass --data-dir for the local server's queues)",
            missing.join(" and ")
        ));
    }
    let sdk = wappline::app::aws_sdk_config().await;
    Ok(Arc::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        settings.queue_urls,
    )))
}

async fn run_redrive(queue: &dyn Queue, source: &QueueName, options: &RedriveOptions) -> ExitCode {
    let outcome = redrive(queue, source, options).await;
    let report = match &outcome {
        Ok(report) => report,
        Err(e) => &e.done,
    };
    print_report(report);
    // SQS's counts are approximate and lag by up to a minute; still the best "what is left".
    let dlq = source.dead_letter();
    match queue.approximate_depth(&dlq).await {
        Ok(depth) => {
            println!(
                "{dlq} now holds about {} message(s), {} of them in flight",
                depth.total(),
                depth.in_flight
            );
            if report.dry_run && source.is_fifo() && (report.messages.len() as u64) < depth.total()
            {
                println!(
                    "(a FIFO queue lists only each group's first messages until those are moved)"
                );
            }
        }
        Err(e) => eprintln!("wappline-ops: could not count what is left in {dlq}: {e}"),
    }
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wappline-ops: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(report: &RedriveReport) {
    let (source, dlq) = (&report.source, &report.dead_letter);
    if report.dry_run {
        println!(
            "dry run: nothing moved; {} message(s) of {dlq} listed, they would go to {source}",
            report.messages.len()
        );
    } else {
        println!("moved {} message(s) from {dlq} to {source}", report.moved());
    }
    for m in &report.messages {
        println!("  {}", line(m));
    }
}

/// One message: its id, group and receive count (no body).
fn line(m: &DeadLetter) -> String {
    match &m.group_id {
        Some(group) => format!(
            "{}  group {group}  receives {}",
            m.message_id, m.receive_count
        ),
        None => format!("{}  receives {}", m.message_id, m.receive_count),
    }
}
