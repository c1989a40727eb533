//! The cost model (issue 17, decision 0053): what the pipeline asks of AWS, counted as AWS
//! bills it, and priced with the list prices of [`prices`].
//!
//! The port decorators of [`crate::faults::ports`] count into a [`Meter`]: every DynamoDB
//! request with its read or write units (item sizes rounded the way DynamoDB rounds them),
//! every SQS request in 64 KB units, every KMS call. The cost command adds what is not a
//! port call: API Gateway requests, Lambda invocations and GB-seconds (memory from
//! template.yaml, durations measured), and prints the table of [`Meter::report`].

pub mod prices;

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::queue::OutgoingMessage;
use crate::store::{AttrValue, Item, Key, Table};

/// DynamoDB's read unit: 4 KB per strongly consistent read.
pub const READ_UNIT_BYTES: usize = 4096;
/// DynamoDB's write unit: 1 KB.
pub const WRITE_UNIT_BYTES: usize = 1024;
/// SQS bills each 64 KB chunk of a request's payload as one request.
pub const SQS_CHUNK_BYTES: usize = 64 * 1024;

/// An item's size as DynamoDB counts it: each attribute's name in UTF-8 bytes plus its value
/// (strings and binaries by length, numbers about one byte per two digits plus one, booleans
/// and null one byte, lists and maps 3 bytes plus their elements, each with one more byte).
/// DynamoDB Developer Guide, "Item sizes and formats":
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>
pub fn item_bytes(item: &Item) -> usize {
    item.0
        .iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

fn value_bytes(v: &AttrValue) -> usize {
    match v {
        AttrValue::S(s) => s.len(),
        AttrValue::B(b) => b.len(),
        AttrValue::N(n) => {
            let digits = n
                .unsigned_abs()
                .checked_ilog10()
                .map_or(1, |d| d as usize + 1);
            digits.div_ceil(2) + 1
        }
        AttrValue::Bool(_) | AttrValue::Null => 1,
        AttrValue::L(l) => 3 + l.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
        AttrValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_bytes(v))
                .sum::<usize>()
        }
    }
}

/// A message's billed payload: its body (the group and deduplication ids are not message
/// attributes and are not billed as payload).
pub fn sqs_message_bytes(m: &OutgoingMessage) -> usize {
    m.body.len()
}

/// Read units of a strongly consistent read of `bytes` (at least one, also for nothing
/// found); an eventually consistent read costs half.
pub fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64
}

/// Write units of a standard write of an item of `bytes` (at least one).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// How reads are billed in a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Every read strongly consistent (what the DynamoDB adapter asks today).
    Strong,
    /// Every read eventually consistent (half the units).
    Eventual,
}

/// One service operation's count: requests and billed units (read or write units for
/// DynamoDB, 64 KB chunks for SQS, requests for the others).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub requests: f64,
    pub units: f64,
}

/// Counts of AWS requests and units, by service and operation.
#[derive(Default)]
pub struct Meter {
    counts: Mutex<BTreeMap<(String, String), Usage>>,
    /// Per function: invocations and their summed duration.
    invocations: Mutex<BTreeMap<String, (u64, std::time::Duration)>>,
    /// DynamoDB item requests by operation and kind of item ([`key_kind`]): where the
    /// requests of the table above go.
    item_requests: Mutex<BTreeMap<(String, String), u64>>,
}

/// The kind of item `key` names, without its ids: the table, the partition key's segments
/// with every id replaced by `*` (`T#<tenant>#CONV#<id>` → `T#*#CONV#*`), and the sort key's
/// first segment. A segment is kept only when it is a label (capitals, `_`, `~`). Ids never
/// reach the cost report.
pub fn key_kind(table: Table, key: &Key) -> String {
    let label = |seg: &str| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c == '~')
    };
    let partition: Vec<&str> = key
        .pk
        .split('#')
        .map(|seg| if label(seg) { seg } else { "*" })
        .collect();
    let sort = key.sk.split('#').next().unwrap_or_default();
    let sort = if label(sort) || sort.len() <= 8 && !sort.chars().any(|c| c.is_ascii_digit()) {
        sort
    } else {
        "*"
    };
    format!("{table} {} {sort}", partition.join("#"))
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `units` (and one request) to `service` `operation`.
    pub fn add(&self, service: &str, operation: &str, requests: f64, units: f64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let u = counts
            .entry((service.to_owned(), operation.to_owned()))
            .or_default();
        u.requests += requests;
        u.units += units;
    }

    /// One request of `service` `operation`, billed per request.
    pub fn count(&self, service: &str, operation: &str, requests: f64) {
        self.add(service, operation, requests, requests);
    }

    /// A GetItem of an item of `bytes` (0: nothing found), strongly consistent.
    pub fn dynamo_read(&self, op: &str, bytes: usize) {
        self.add("DynamoDB", op, 1.0, read_units(bytes));
    }

    /// A Query returning `bytes` in all (DynamoDB sums the items, then rounds up to 4 KB).
    pub fn dynamo_query(&self, bytes: usize) {
        self.add("DynamoDB", "Query", 1.0, read_units(bytes));
    }

    pub fn dynamo_scan(&self, bytes: usize) {
        self.add("DynamoDB", "Scan", 1.0, read_units(bytes));
    }

    /// A PutItem, UpdateItem or DeleteItem of an item of `bytes` (the larger of before and
    /// after).
    pub fn dynamo_write(&self, op: &str, bytes: usize) {
        self.add("DynamoDB", op, 1.0, write_units(bytes));
    }

    /// A TransactWriteItems of items of `sizes`: two write units per KB of each item.
    /// DynamoDB Developer Guide, "Capacity management for transactions":
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling>
    pub fn dynamo_transaction(&self, sizes: &[usize]) {
        let units: f64 = sizes.iter().map(|b| 2.0 * write_units(*b)).sum();
        self.add("DynamoDB", "TransactWriteItems", 1.0, units);
    }

    /// One SendMessageBatch per 10 messages, each billed by its payload in 64 KB chunks.
    pub fn sqs_send(&self, sizes: &[usize]) {
        for batch in sizes.chunks(crate::queue::MAX_BATCH) {
            let bytes: usize = batch.iter().sum();
            self.add(
                "SQS",
                "SendMessageBatch",
                1.0,
                bytes.div_ceil(SQS_CHUNK_BYTES).max(1) as f64,
            );
        }
    }

    /// One ReceiveMessage that returned messages of `sizes` (empty polls are the event
    /// source mapping's fixed cost per queue, not per message, and are not counted).
    pub fn sqs_receive(&self, sizes: &[usize]) {
        if sizes.is_empty() {
            return;
        }
        let bytes: usize = sizes.iter().sum();
        self.add(
            "SQS",
            "ReceiveMessage",
            1.0,
            bytes.div_ceil(SQS_CHUNK_BYTES).max(1) as f64,
        );
        // Lambda's event source mapping deletes a batch's successes with one
        // DeleteMessageBatch; the local consumers acknowledge one by one.
        self.add("SQS", "DeleteMessageBatch", 1.0, 1.0);
    }

    /// An acknowledgement (counted as part of the batch's DeleteMessageBatch).
    pub fn sqs_ack(&self) {
        self.add("SQS", "DeleteMessage (in the batch)", 0.0, 0.0);
    }

    /// One DynamoDB request of `op` (or one item of a transaction) on the item `key` names.
    pub fn item_request(&self, op: &str, table: Table, key: &Key) {
        let mut by = self.item_requests.lock().unwrap_or_else(|e| e.into_inner());
        *by.entry((op.to_owned(), key_kind(table, key))).or_default() += 1;
    }

    /// DynamoDB item requests counted so far, by operation and [`key_kind`].
    pub fn item_requests(&self) -> BTreeMap<(String, String), u64> {
        self.item_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One invocation of `function` that took `took`.
    pub fn invocation(&self, function: &str, took: std::time::Duration) {
        let mut inv = self.invocations.lock().unwrap_or_else(|e| e.into_inner());
        let e = inv.entry(function.to_owned()).or_default();
        e.0 += 1;
        e.1 += took;
    }

    /// Invocations and summed durations, per function.
    pub fn invocations(&self) -> BTreeMap<String, (u64, std::time::Duration)> {
        self.invocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> BTreeMap<(String, String), Usage> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.invocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.item_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// One line of a cost report: a service operation per message and its cost per million.
#[derive(Clone, Debug, PartialEq)]
pub struct CostLine {
    pub service: String,
    pub operation: String,
    pub requests_per_message: f64,
    pub units_per_message: f64,
    /// US$ per million messages.
    pub per_million: f64,
}

/// Prices `counts`, gathered over `messages` messages, into US$ per million messages, with
/// reads billed as `consistency` says. Lines sorted by cost, largest first.
pub fn report(
    counts: &BTreeMap<(String, String), Usage>,
    messages: u64,
    consistency: Consistency,
) -> Vec<CostLine> {
    let per = |x: f64| x / messages.max(1) as f64;
    let mut lines: Vec<CostLine> = counts
        .iter()
        .map(|((service, operation), usage)| {
            let mut units = usage.units;
            let read = service == "DynamoDB" && matches!(operation.as_str(), "GetItem" | "Query");
            if read && consistency == Consistency::Eventual {
                units /= 2.0;
            }
            let unit_price = prices::unit_price(service, operation);
            CostLine {
                service: service.clone(),
                operation: operation.clone(),
                requests_per_message: per(usage.requests),
                units_per_message: per(units),
                per_million: per(units) * unit_price * 1e6,
            }
        })
        .collect();
    lines.sort_by(|a, b| b.per_million.total_cmp(&a.per_million));
    lines
}

/// US$ per million messages of the DynamoDB lines of `lines` on provisioned capacity, with
/// auto scaling keeping `utilisation` (0 to 1) of the provisioned units in use: a unit-hour
/// serves 3,600 units at full use, so each unit consumed costs the unit-hour's price over
/// 3,600 × `utilisation`. The units are those counted (provisioned capacity consumes them
/// the same way: 2 per KB in a transaction, reads as the report bills them).
pub fn dynamodb_provisioned(lines: &[CostLine], utilisation: f64) -> f64 {
    lines
        .iter()
        .filter(|l| l.service == "DynamoDB")
        .map(|l| {
            let hour = match l.operation.as_str() {
                "GetItem" | "Query" | "Scan" => prices::DYNAMODB_RCU_HOUR,
                _ => prices::DYNAMODB_WCU_HOUR,
            };
            l.units_per_message * hour / (3600.0 * utilisation) * 1e6
        })
        .sum()
}

/// The report as a Markdown table, with a total line.
pub fn markdown(lines: &[CostLine]) -> String {
    let mut out = String::from(
        "| service | operation | requests / message | billed units / message | US$ per million messages |\n|---|---|---|---|---|\n",
    );
    for l in lines {
        out.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} |\n",
            l.service, l.operation, l.requests_per_message, l.units_per_message, l.per_million
        ));
    }
    let total: f64 = lines.iter().map(|l| l.per_million).sum();
    out.push_str(&format!("| **total** | | | | **{total:.2}** |\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_requests_are_counted_by_kind_of_item_without_ids() {
        let meter = Meter::new();
        let op = Key::new("T#tenant-1#CRMOUT", "op#conv-9#effect");
        let profile = Key::new("T#tenant-2", "PROFILE");
        let parked = Key::new("PARKED#tn_b03eb057c5765e5be9aa2f8e", "ROUTE");
        let conversation = Key::new("T#tenant-1#CONV#c_fc955d8dca168be1", "META");
        meter.item_request("GetItem", Table::Data, &profile);
        meter.item_request("GetItem", Table::Data, &Key::new("T#tenant-3", "PROFILE"));
        meter.item_request("UpdateItem", Table::Data, &op);
        meter.item_request("GetItem", Table::Routes, &parked);
        meter.item_request("GetItem", Table::Data, &conversation);
        meter.item_request(
            "GetItem",
            Table::Data,
            &Key::new("T#t-9#CONV#c_0a1b", "META"),
        );
        meter.item_request("GetItem", Table::Data, &Key::new("T#t-9", "wamid.HBgL123"));
        let by = meter.item_requests();
        assert_eq!(by[&("GetItem".into(), "data T#* PROFILE".into())], 2);
        assert_eq!(by[&("UpdateItem".into(), "data T#*#CRMOUT op".into())], 1);
        assert_eq!(by[&("GetItem".into(), "routes PARKED#* ROUTE".into())], 1);
        assert_eq!(by[&("GetItem".into(), "data T#*#CONV#* META".into())], 2);
        assert_eq!(by[&("GetItem".into(), "data T#* *".into())], 1);
        assert!(by.keys().all(|(_, kind)| !kind.contains("tenant")
            && !kind.contains("conv")
            && !kind.contains("c_")
            && !kind.contains("tn_")));
        meter.reset();
        assert!(meter.item_requests().is_empty());
    }

    #[test]
    fn item_sizes_are_counted_as_dynamodb_counts_them() {
        // "pk" + 5, "sk" + 3, "n" + 3 digits → 2 + 1 bytes.
        let item = Item::new(&Key::new("T#abc", "MSG"))
            .with("n", 123)
            .with("b", vec![0u8; 10])
            .with("ok", true);
        assert_eq!(
            item_bytes(&item),
            (2 + 5) + (2 + 3) + (1 + 3) + (1 + 10) + (2 + 1)
        );
    }

    #[test]
    fn units_round_up_as_billed() {
        assert_eq!(read_units(0), 1.0);
        assert_eq!(read_units(4096), 1.0);
        assert_eq!(read_units(4097), 2.0);
        assert_eq!(write_units(1), 1.0);
        assert_eq!(write_units(1025), 2.0);
        let meter = Meter::new();
        meter.dynamo_transaction(&[100, 1500, 900]);
        meter.sqs_send(&[70_000, 10]);
        meter.sqs_send(&[1; 11]);
        let counts = meter.snapshot();
        let tx = counts[&("DynamoDB".to_owned(), "TransactWriteItems".to_owned())];
        assert_eq!((tx.requests, tx.units), (1.0, 2.0 + 4.0 + 2.0));
        let send = counts[&("SQS".to_owned(), "SendMessageBatch".to_owned())];
        // 70,010 bytes → two 64 KB chunks; eleven messages → two batches of one chunk.
        assert_eq!((send.requests, send.units), (3.0, 4.0));
    }

    #[test]
    fn provisioned_capacity_prices_units_by_the_hour_at_the_utilisation() {
        let meter = Meter::new();
        for _ in 0..10 {
            meter.dynamo_write("PutItem", 100);
            meter.dynamo_read("GetItem", 100);
        }
        meter.count("SQS", "SendMessageBatch", 10.0);
        let lines = report(&meter.snapshot(), 10, Consistency::Strong);
        // One write unit and one read unit per message; SQS is not DynamoDB's.
        let full = dynamodb_provisioned(&lines, 1.0);
        let expected = (prices::DYNAMODB_WCU_HOUR + prices::DYNAMODB_RCU_HOUR) / 3600.0 * 1e6;
        assert!((full - expected).abs() < 1e-9, "{full} vs {expected}");
        // At half the utilisation each unit costs twice as much.
        assert!((dynamodb_provisioned(&lines, 0.5) - 2.0 * expected).abs() < 1e-9);
        // At auto scaling's 70 % the same units cost about 41 % of on-demand's price.
        let on_demand: f64 = lines
            .iter()
            .filter(|l| l.service == "DynamoDB")
            .map(|l| l.per_million)
            .sum();
        let ratio = dynamodb_provisioned(&lines, 0.7) / on_demand;
        assert!((0.40..0.42).contains(&ratio), "{ratio}");
    }

    #[test]
    fn a_report_prices_units_per_message_and_halves_eventual_reads() {
        let meter = Meter::new();
        for _ in 0..10 {
            meter.dynamo_read("GetItem", 100);
        }
        let strong = report(&meter.snapshot(), 10, Consistency::Strong);
        let eventual = report(&meter.snapshot(), 10, Consistency::Eventual);
        assert_eq!(strong[0].units_per_message, 1.0);
        assert_eq!(eventual[0].units_per_message, 0.5);
        let expected = prices::DYNAMODB_READ_REQUEST_UNIT;
        assert!((strong[0].per_million - expected * 1e6).abs() < 1e-9);
    }
}
