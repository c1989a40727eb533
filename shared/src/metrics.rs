//! Operational metrics as CloudWatch Embedded Metric Format (EMF) log lines (decision 0038).
//!
//! The flows call a tiny recorder ([`Metrics`]): "a message was relayed", "a duplicate was
//! suppressed", "a portal was parked". They know nothing of CloudWatch. The recorder adds the
//! facts up in memory; [`Metrics::flush`] writes what was added since the last flush as EMF
//! documents, one JSON line per set of dimension values (usually one per flush), and the
//! runners flush after every invocation. CloudWatch Logs turns each line of a function's log
//! into metric data points; no API call, no IAM grant and no latency on the request path.
//!
//! The format is the one of the specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//!
//! ```text
//! {"_aws":{"Timestamp":1767261600000,"CloudWatchMetrics":[{"Namespace":"Wappline",
//!   "Dimensions":[["Direction","Channel"]],"Metrics":[{"Name":"MessagesRelayed","Unit":"Count"}]}]},
//!  "Direction":"inbound","Channel":"whatsapp","MessagesRelayed":3}
//! ```
//!
//! Every dimension value is a `&'static str` chosen in code (a direction, a channel kind, a
//! stage, a failure class, a queue name): no tenant id, account id or anything a request
//! carries can become a dimension, which keeps the metric count (and its cost) fixed and
//! the lines free of personal data.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// The namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "Wappline";

/// The metrics' names, as the dashboard and the alarms of template.yaml name them.
pub mod names {
    /// Messages delivered to the other side (dimensions `Direction`, `Channel`).
    pub const MESSAGES_RELAYED: &str = "MessagesRelayed";
    /// From Meta's webhook reaching us to Bitrix24 accepting the message (`Channel`).
    pub const WEBHOOK_TO_BITRIX24: &str = "WebhookToBitrix24Latency";
    /// A step that did not complete (`Stage`, `Class`).
    pub const FAILURES: &str = "Failures";
    /// A queue record delivered again after a failure (`Stage`).
    pub const RETRIES: &str = "Retries";
    /// A redelivered or repeated item recognised and not applied twice (`Stage`).
    pub const DUPLICATES: &str = "DuplicatesSuppressed";
    /// A portal's work parked because it stayed unreachable (no dimension).
    pub const PORTALS_PARKED: &str = "PortalsParked";
    /// Portals found parked by the scheduled probe (no dimension).
    pub const PARKED_PORTALS: &str = "ParkedPortals";
    /// A queue record that went to its dead-letter queue (`Queue`).
    pub const DLQ_ARRIVALS: &str = "DlqArrivals";
    /// A send or a message refused because the tenant's quota is used up (`Quota`).
    pub const QUOTA_REFUSALS: &str = "QuotaRefusals";
    /// Meta's status of a send not recorded yet: kept on the send's progress (`Step`
    /// `held`), or moved on by the send worker once it recorded the send (`applied`)
    /// (decision 0074).
    pub const EARLY_STATUSES: &str = "EarlyStatuses";
}

/// The relay directions (the `Direction` dimension).
pub mod direction {
    /// Customer to Bitrix24.
    pub const INBOUND: &str = "inbound";
    /// Operator (or API) to the customer.
    pub const OUTBOUND: &str = "outbound";
}

/// CloudWatch accepts at most 100 values of one metric in one document.
const MAX_VALUES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The dimension values of a document, in a fixed order.
type Dims = Vec<(&'static str, &'static str)>;

#[derive(Default)]
struct State {
    /// Per set of dimension values: each metric's unit and values (a counter has one value,
    /// its sum; a latency keeps each observation, up to the flush).
    pending: BTreeMap<Dims, BTreeMap<&'static str, (Unit, Vec<f64>)>>,
}

/// Where the documents go.
#[derive(Clone)]
pub enum Sink {
    /// A Lambda function's stdout: CloudWatch Logs reads each line as one log event.
    Stdout,
    /// The local server's log (stderr, beside its tracing lines).
    Stderr,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

struct Inner {
    namespace: String,
    sink: Sink,
    state: Mutex<State>,
    clock: fn() -> i64,
}

/// The recorder the flows call. Cheap to clone (one shared state per process); a recorder
/// built by [`Metrics::off`] (the default) records nothing.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

impl Metrics {
    /// Records into documents of `namespace`, written to `sink` at each flush.
    pub fn new(namespace: impl Into<String>, sink: Sink) -> Self {
        Metrics {
            inner: Some(Arc::new(Inner {
                namespace: namespace.into(),
                sink,
                state: Mutex::new(State::default()),
                clock: crate::clock::now_millis,
            })),
        }
    }

    /// Records nothing (tests that do not look at metrics, a local server run without them).
    pub fn off() -> Self {
        Metrics { inner: None }
    }

    /// A recorder keeping its documents in memory, and the lines it flushed (tests).
    pub fn in_memory(namespace: &str) -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Self::new(namespace, Sink::Memory(lines.clone())), lines)
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    fn add(&self, dims: Dims, name: &'static str, unit: Unit, value: f64, sum: bool) {
        let Some(inner) = &self.inner else { return };
        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let (_, values) = state
            .pending
            .entry(dims)
            .or_default()
            .entry(name)
            .or_insert((unit, Vec::new()));
        match (sum, values.first_mut()) {
            (true, Some(total)) => *total += value,
            _ => values.push(value),
        }
    }

    fn count(&self, dims: Dims, name: &'static str) {
        self.add(dims, name, Unit::Count, 1.0, true);
    }

    /// A message was delivered to the other side: Bitrix24 accepted it (`inbound`), or the
    /// provider accepted the send (`outbound`). `channel` is a channel kind's code.
    pub fn relayed(&self, direction: &'static str, channel: &'static str) {
        self.count(
            vec![("Direction", direction), ("Channel", channel)],
            names::MESSAGES_RELAYED,
        );
    }

    /// The time from the webhook reaching us to Bitrix24 accepting the message.
    pub fn webhook_to_bitrix24(&self, channel: &'static str, elapsed_ms: i64) {
        self.add(
            vec![("Channel", channel)],
            names::WEBHOOK_TO_BITRIX24,
            Unit::Milliseconds,
            elapsed_ms.max(0) as f64,
            false,
        );
    }

    /// A step of `stage` did not complete, for a reason of `class` (an error kind, never an
    /// error message).
    pub fn failure(&self, stage: &'static str, class: &'static str) {
        self.count(vec![("Class", class), ("Stage", stage)], names::FAILURES);
    }

    /// A queue record of `stage` delivered again.
    pub fn retry(&self, stage: &'static str) {
        self.count(vec![("Stage", stage)], names::RETRIES);
    }

    /// A repeated item of `stage` recognised and not applied twice.
    pub fn duplicate(&self, stage: &'static str) {
        self.count(vec![("Stage", stage)], names::DUPLICATES);
    }

    /// A portal's work was parked (decision 0025).
    pub fn portal_parked(&self) {
        self.count(Vec::new(), names::PORTALS_PARKED);
    }

    /// How many portals the scheduled probe found parked (0 included: the alarm needs it).
    pub fn parked_portals(&self, count: usize) {
        self.add(
            Vec::new(),
            names::PARKED_PORTALS,
            Unit::Count,
            count as f64,
            false,
        );
    }

    /// A record of `queue` went to its dead-letter queue.
    pub fn dlq_arrival(&self, queue: &'static str) {
        self.count(vec![("Queue", queue)], names::DLQ_ARRIVALS);
    }

    /// Something was refused because the tenant's `quota` is used up.
    pub fn quota_refusal(&self, quota: &'static str) {
        self.count(vec![("Quota", quota)], names::QUOTA_REFUSALS);
    }

    /// A status Meta reported before its send was recorded went through `step`: `held` on
    /// the send's progress, or `applied` to the message (decision 0074).
    pub fn early_status(&self, step: &'static str) {
        self.count(vec![("Step", step)], names::EARLY_STATUSES);
    }

    /// The documents of what was recorded since the last flush (none when nothing was),
    /// without writing them.
    pub fn drain(&self) -> Vec<String> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let pending = {
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut state.pending)
        };
        let now = (inner.clock)();
        let mut lines = Vec::new();
        for (dims, metrics) in pending {
            // A latency with more than 100 values goes over several documents.
            let chunks = metrics
                .values()
                .map(|(_, v)| v.len().div_ceil(MAX_VALUES))
                .max()
                .unwrap_or(0);
            for chunk in 0..chunks {
                lines.push(document(&inner.namespace, now, &dims, &metrics, chunk));
            }
        }
        lines
    }

    /// Writes the documents of what was recorded since the last flush to the sink.
    pub fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let lines = self.drain();
        if lines.is_empty() {
            return;
        }
        match &inner.sink {
            Sink::Stdout => write_lines(&mut std::io::stdout().lock(), &lines),
            Sink::Stderr => write_lines(&mut std::io::stderr().lock(), &lines),
            Sink::Memory(kept) => kept.lock().unwrap_or_else(|p| p.into_inner()).extend(lines),
        }
    }
}

fn write_lines(out: &mut dyn Write, lines: &[String]) {
    // One write per line, so a line is never interleaved with a log line.
    for line in lines {
        let _ = out.write_all(format!("{line}\n").as_bytes());
    }
    let _ = out.flush();
}

/// One EMF document: the metadata, the dimension values and the metrics' values (a single
/// value as a number, several as an array, as the specification allows).
fn document(
    namespace: &str,
    now_ms: i64,
    dims: &Dims,
    metrics: &BTreeMap<&'static str, (Unit, Vec<f64>)>,
    chunk: usize,
) -> String {
    use serde_json::{json, Map, Value};
    let mut root = Map::new();
    let mut definitions = Vec::new();
    for (name, (unit, values)) in metrics {
        let part: Vec<f64> = values
            .iter()
            .skip(chunk * MAX_VALUES)
            .take(MAX_VALUES)
            .copied()
            .collect();
        let value = match part.as_slice() {
            [] => continue,
            [one] => json!(one),
            many => json!(many),
        };
        definitions.push(json!({"Name": name, "Unit": unit.as_str()}));
        root.insert((*name).to_owned(), value);
    }
    for (key, value) in dims {
        root.insert((*key).to_owned(), Value::from(*value));
    }
    let dimension_set: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimension_set],
                "Metrics": definitions,
            }],
        }),
    );
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn counts_add_up_per_dimension_values_into_one_document_each() {
        let (m, _) = Metrics::in_memory("Test");
        m.relayed(direction::INBOUND, "whatsapp");
        m.relayed(direction::INBOUND, "whatsapp");
        m.relayed(direction::OUTBOUND, "instagram");
        let docs = parse(&m.drain());
        assert_eq!(docs.len(), 2, "{docs:?}");
        let inbound = docs
            .iter()
            .find(|d| d["Direction"] == "inbound")
            .expect("the inbound document");
        assert_eq!(inbound["MessagesRelayed"], 2.0);
        assert_eq!(inbound["Channel"], "whatsapp");
        let directive = &inbound["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Test");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Direction", "Channel"]])
        );
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "MessagesRelayed", "Unit": "Count"}])
        );
        assert!(inbound["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        // Drained: the next flush has nothing.
        assert!(m.drain().is_empty());
    }

    #[test]
    fn latencies_keep_each_value_and_split_past_one_hundred() {
        let (m, lines) = Metrics::in_memory("Test");
        for ms in 0..150 {
            m.webhook_to_bitrix24("whatsapp", ms);
        }
        m.flush();
        let docs = parse(&lines.lock().unwrap());
        assert_eq!(docs.len(), 2);
        let values: Vec<f64> = docs
            .iter()
            .flat_map(|d| match &d["WebhookToBitrix24Latency"] {
                Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
                v => vec![v.as_f64().unwrap()],
            })
            .collect();
        assert_eq!(values.len(), 150);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
    }

    #[test]
    fn metrics_without_dimensions_name_an_empty_dimension_set() {
        let (m, _) = Metrics::in_memory("Test");
        m.portal_parked();
        m.parked_portals(3);
        let docs = parse(&m.drain());
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["PortalsParked"], 1.0);
        assert_eq!(docs[0]["ParkedPortals"], 3.0);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([[]])
        );
    }

    /// The log bytes a relayed inbound message costs in the sync worker's invocation: its
    /// count and its latency, alone and in a batch of 10 (docs/performance.md).
    #[test]
    fn emf_bytes_per_relayed_message() {
        let (m, _) = Metrics::in_memory("Wappline/wappline-prod");
        let bytes = |n: i64| {
            for i in 0..n {
                m.relayed(direction::INBOUND, "whatsapp");
                m.webhook_to_bitrix24("whatsapp", 180 + i);
            }
            m.drain().iter().map(|l| l.len() + 1).sum::<usize>()
        };
        let (one, ten) = (bytes(1), bytes(10));
        println!(
            "EMF bytes: 1 message {one} ({} per message), batch of 10 {ten} ({} per message)",
            one,
            ten / 10
        );
        assert!(one < 600 && ten / 10 < 100, "{one} {ten}");
    }

    #[test]
    fn an_off_recorder_records_nothing() {
        let m = Metrics::off();
        m.failure("sync", "timeout");
        assert!(m.drain().is_empty());
        m.flush();
    }
}
