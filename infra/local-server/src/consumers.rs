//! In-process queue consumers: what Lambda's SQS event source mapping does in AWS, done by
//! polling loops per queue on the embedded queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use wappline::consumer::{groups_of, run_group, Outcome, QueueRecord, RecordHandler};
use wappline::queue::{Queue, QueueName, ReceivedMessage, MAX_BATCH};

/// Pause between polls of an empty queue.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Pause after the queue itself failed.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A queue and the function that consumes it.
#[derive(Clone)]
pub struct Consumer {
    pub queue: QueueName,
    /// Like the Lambda event source's visibility timeout: how long a batch stays hidden.
    pub visibility: Duration,
    pub handler: Arc<dyn RecordHandler>,
    /// Counts each received batch as one invocation of the function, with its duration (the
    /// cost model, decision 0053).
    pub meter: Option<Arc<wappline::costs::Meter>>,
}

/// Polls the queue until `stop` turns true, with at most [`MAX_BATCH`] records of its own in
/// flight (decision 0095). The message groups of a received batch run concurrently, each as a
/// task of its own, its records in order ([`run_group`]); as soon as a group finishes, its
/// records are settled ([`settle`]). A group is therefore receivable again once its own
/// records are settled, not once the slowest group of its batch is, and the loop receives
/// again for the room a finished group leaves, so a slow group (a hanging portal) holds back
/// neither the other groups of its batch nor the next receives. Several loops run per queue.
/// Once `stop` turns true the loop receives nothing more and returns when its groups have
/// finished and settled.
pub async fn run(queue: Arc<dyn Queue>, consumer: Consumer, mut stop: watch::Receiver<bool>) {
    let mut running = Running::default();
    let mut stopping = false;
    while !stopping && !*stop.borrow() {
        let room = MAX_BATCH - running.records;
        // How long until the next receive unless a group finishes first (`None`: only when
        // one does), and whether a finishing group ends the wait.
        let (mut pause, wake_on_group) = if room == 0 {
            (None, true)
        } else {
            match receive(queue.as_ref(), &consumer, room).await {
                // All it asked for: there may be more, once a group leaves room. Fewer: the
                // queue had no more to offer for now.
                Ok(messages) => {
                    let asked_all = messages.len() == room;
                    running.start(&queue, &consumer, messages);
                    ((!asked_all).then_some(IDLE_POLL), true)
                }
                Err(e) => {
                    tracing::warn!(queue = %consumer.queue, error = %e, "queue poll failed");
                    (Some(ERROR_BACKOFF), false)
                }
            }
        };
        if pause.is_none() && running.is_empty() {
            pause = Some(IDLE_POLL);
        }
        let until = pause.map(|p| tokio::time::Instant::now() + p);
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    stopping = true;
                    break;
                }
                () = running.next(), if !running.is_empty() => {
                    if wake_on_group {
                        break;
                    }
                }
                _ = sleep_until(until), if until.is_some() => break,
            }
        }
        running.reap();
    }
    // Stopping: what was received is finished and settled, as a batch was before a stop.
    while !running.is_empty() {
        running.next().await;
    }
}

async fn sleep_until(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// A loop's group tasks, and how many records they hold.
#[derive(Default)]
struct Running {
    tasks: JoinSet<()>,
    sizes: HashMap<tokio::task::Id, usize>,
    records: usize,
}

impl Running {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for one group task to end (call only when not empty).
    async fn next(&mut self) {
        if let Some(ended) = self.tasks.join_next_with_id().await {
            self.ended(ended);
        }
    }

    /// Takes note of the group tasks that have ended, without waiting.
    fn reap(&mut self) {
        while let Some(ended) = self.tasks.try_join_next_with_id() {
            self.ended(ended);
        }
    }

    /// A task that panicked left its records in flight: they come back after the visibility
    /// timeout, as a failed record does.
    fn ended(&mut self, ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match ended {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "a queue consumer's group task failed");
                e.id()
            }
        };
        self.records -= self.sizes.remove(&id).unwrap_or(0);
    }

    /// Starts one task per message group of `messages`; each settles its records when they
    /// have run.
    fn start(
        &mut self,
        queue: &Arc<dyn Queue>,
        consumer: &Consumer,
        messages: Vec<ReceivedMessage>,
    ) {
        if messages.is_empty() {
            return;
        }
        let records: Vec<QueueRecord> = messages.iter().map(QueueRecord::from).collect();
        let indexes = groups_of(&records);
        let invocation = Arc::new(Invocation {
            started: Instant::now(),
            groups_left: AtomicUsize::new(indexes.len()),
        });
        let mut messages: Vec<Option<ReceivedMessage>> = messages.into_iter().map(Some).collect();
        let mut records: Vec<Option<QueueRecord>> = records.into_iter().map(Some).collect();
        for group in indexes {
            let group: Vec<(ReceivedMessage, QueueRecord)> = group
                .into_iter()
                .filter_map(|i| Some((messages[i].take()?, records[i].take()?)))
                .collect();
            let n = group.len();
            let (queue, consumer, invocation) =
                (queue.clone(), consumer.clone(), invocation.clone());
            let task = self.tasks.spawn(async move {
                let records: Vec<&QueueRecord> = group.iter().map(|(_, r)| r).collect();
                let receipts: Vec<&str> = group.iter().map(|(m, _)| m.receipt.as_str()).collect();
                let running = run_group(consumer.handler.as_ref(), &records);
                let outcomes = kept_hidden(queue.as_ref(), &consumer, &receipts, running).await;
                invocation.group_ended(&consumer);
                let messages: Vec<ReceivedMessage> = group.into_iter().map(|(m, _)| m).collect();
                settle(queue.as_ref(), &consumer.queue, &messages, outcomes).await;
            });
            self.sizes.insert(task.id(), n);
            self.records += n;
        }
    }
}

/// One received batch, counted as one invocation of its function that lasts until its last
/// group has run (the cost model, decision 0053).
struct Invocation {
    started: Instant,
    groups_left: AtomicUsize,
}

impl Invocation {
    fn group_ended(&self, consumer: &Consumer) {
        if self.groups_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(meter) = &consumer.meter {
                meter.invocation(function_of(&consumer.queue), self.started.elapsed());
            }
        }
    }
}

/// Runs a group's records, `running`, keeping its messages hidden while it runs: every half
/// visibility timeout their visibility is set to a whole one again. A run that outlives its
/// visibility timeout would otherwise be received again and run a second time beside itself
/// (two runs of one contact erasure deleted a person's new conversation, decision 0102).
/// Lambda bounds a run by the function's timeout, which the queue's visibility timeout
/// exceeds six times; the local server has no such bound, and a run cut off there would only
/// start again from the top. If the process dies, the hiding stops with it and the messages
/// come back after the timeout, as they do when an instance dies on AWS. Decision 0106.
async fn kept_hidden<T>(
    queue: &dyn Queue,
    consumer: &Consumer,
    receipts: &[&str],
    running: impl std::future::Future<Output = T>,
) -> T {
    let period = consumer.visibility / 2;
    tokio::pin!(running);
    loop {
        tokio::select! {
            out = &mut running => return out,
            () = tokio::time::sleep(period) => {
                tracing::info!(queue = %consumer.queue, records = receipts.len(), "a run outlasts half its visibility timeout; its records are kept hidden");
                for receipt in receipts {
                    if let Err(e) = queue.change_visibility(&consumer.queue, receipt, consumer.visibility).await {
                        // It may come back while this run goes on; the handlers are
                        // idempotent (decision 0009).
                        tracing::warn!(queue = %consumer.queue, error = %e, "could not keep a running record hidden");
                    }
                }
            }
        }
    }
}

async fn receive(
    queue: &dyn Queue,
    consumer: &Consumer,
    max: usize,
) -> Result<Vec<ReceivedMessage>, String> {
    queue
        .receive(&consumer.queue, max, consumer.visibility)
        .await
        .map_err(|e| e.to_string())
}

/// Settles a group's records by their outcomes: done ones are acknowledged, first and in one
/// call (one commit on the embedded queue, as Lambda's event source mapping deletes a batch's
/// successes with `DeleteMessageBatch`); `RetryAfter` ones hidden for their delay; skipped
/// ones (not tried: an earlier record of their group did not succeed) released at once, to
/// come back behind it (the group stays blocked while that record is in flight); failed ones
/// left to reappear after the visibility timeout (the relay workers dead-letter a job
/// themselves after its own attempts, decision 0069; other queues' messages reach it after
/// `max_receives`).
async fn settle(
    queue: &dyn Queue,
    name: &QueueName,
    messages: &[ReceivedMessage],
    outcomes: Vec<Outcome>,
) {
    let (done, rest): (Vec<_>, Vec<_>) = messages
        .iter()
        .zip(outcomes)
        .partition(|(_, outcome)| outcome.is_done());
    if !done.is_empty() {
        let receipts: Vec<String> = done.iter().map(|(m, _)| m.receipt.clone()).collect();
        let results = queue.ack_batch(name, &receipts).await;
        for ((message, _), result) in done.iter().zip(results) {
            if let Err(e) = result {
                // Left in flight: it comes back after the visibility timeout, and the
                // handlers are idempotent (decision 0009).
                tracing::warn!(queue = %name, message_id = %message.message_id, error = %e, "could not acknowledge message");
            }
        }
    }
    for (message, outcome) in rest {
        let result = match outcome {
            Outcome::Done | Outcome::Failed => Ok(()),
            Outcome::RetryAfter(delay) => {
                queue.change_visibility(name, &message.receipt, delay).await
            }
            Outcome::Skipped => {
                queue
                    .change_visibility(name, &message.receipt, Duration::ZERO)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(queue = %name, message_id = %message.message_id, error = %e, "could not settle message");
        }
    }
}

/// The function that consumes `queue` in template.yaml.
fn function_of(queue: &QueueName) -> &'static str {
    match queue.as_str() {
        wappline::queue::platform::INBOUND => "inbound-worker",
        wappline::queue::platform::SYNC => "sync-worker",
        wappline::queue::platform::OUTBOUND => "outbound-worker",
        wappline::queue::platform::ERASURE => "erasure-worker",
        wappline::queue::platform::EXPORTS => "export-worker",
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
