//! Staged operations that kill the flusher posting them (decision 0091).
//!
//! A flush that dies (the process runs out of memory or time, a panic, a hang past the
//! function's timeout) leaves the operations it claimed in flight until their claim runs
//! out; the next claim of each counts one death on it ([`super::outbox::Outbox::claim`]).
//! Any of them may be the one that killed it. So an operation with a death on record is
//! posted alone: its innocent neighbours go out in requests of their own and stop dying with
//! it, and only the deadly one keeps dying and counting. One that reaches [`DEATH_LIMIT`]
//! is not posted again ([`super::outbox::Outbox::retire`]): its job ends as a permanent
//! failure (the sync dead-letter queue) and its conversation moves on.

use std::collections::HashSet;

use super::outbox::StagedOp;

/// Deaths of flushes that claimed an operation before it is taken for one that kills its
/// worker: the bound decision 0081 puts on inbound and outbound jobs.
pub const DEATH_LIMIT: u32 = 3;

/// Whether claiming `op` now would count its [`DEATH_LIMIT`]th death: it is settled as
/// killed instead.
pub fn at_limit(op: &StagedOp) -> bool {
    op.counts_a_death() && op.deaths_when_claimed() >= DEATH_LIMIT
}

/// What one request of a flush carries, of `ready` (oldest first, none [`at_limit`]):
/// - the *clean* operations: those without a death, each before any suspect of its own
///   conversation (a conversation's order holds);
/// - or one *suspect* (a death on record or being counted) alone: the head of its
///   conversation among `ready`, the one with fewest deaths first (an innocent that died
///   once beside a deadly one goes before it), then the oldest.
///
/// When both are ready, `suspects_turn` picks; the flush alternates, so that neither a
/// stream of clean operations holds a suspect back nor a row of suspects the clean ones.
/// Returns the request's operations and whether they are a suspect alone.
pub(super) fn next_request(ready: Vec<StagedOp>, suspects_turn: bool) -> (Vec<StagedOp>, bool) {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut behind_a_suspect: HashSet<&str> = HashSet::new();
    let mut clean = Vec::new();
    let mut suspect: Option<usize> = None;
    for (i, op) in ready.iter().enumerate() {
        let conversation = op.conversation();
        let head = seen.insert(conversation);
        if op.deaths_when_claimed() > 0 {
            behind_a_suspect.insert(conversation);
            let better = suspect.is_none_or(|s| {
                let s = &ready[s];
                op.deaths_when_claimed() < s.deaths_when_claimed()
            });
            if head && better {
                suspect = Some(i);
            }
        } else if !behind_a_suspect.contains(conversation) {
            clean.push(i);
        }
    }
    let alone = match suspect {
        Some(s) if clean.is_empty() || suspects_turn => Some(s),
        _ => None,
    };
    let take: Vec<usize> = match alone {
        Some(s) => vec![s],
        None => clean,
    };
    let mut ready: Vec<Option<StagedOp>> = ready.into_iter().map(Some).collect();
    let ops = take.into_iter().filter_map(|i| ready[i].take()).collect();
    (ops, alone.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm_sync::outbox::{CrmOp, Outbox};
    use crate::ids::TenantId;

    fn op(conversation: &str, effect: &str, deaths: u32, ran_out: bool) -> StagedOp {
        let tenant = TenantId::parse("tn_0123456789abcdef01234567").unwrap();
        StagedOp {
            key: Outbox::key(&tenant, conversation, effect),
            op: CrmOp {
                method: "imconnector.send.messages".into(),
                params: serde_json::Value::Null,
                lookup: None,
                files: Vec::new(),
            },
            ambiguous: ran_out,
            staged_ms: 0,
            deaths,
            ran_out: ran_out.then(|| "attempt".to_owned()),
            ran_out_alive: false,
        }
    }

    fn effects(ops: &[StagedOp]) -> Vec<String> {
        ops.iter()
            .map(|o| o.key.sk.rsplit('#').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn without_a_death_every_ready_operation_goes_in_one_request() {
        let ready = vec![op("c_1", "a", 0, false), op("c_2", "b", 0, false)];
        let (ops, alone) = next_request(ready.clone(), false);
        assert_eq!(effects(&ops), ["a", "b"]);
        assert!(!alone);
        // Nothing to alternate with: the turn changes nothing.
        assert_eq!(effects(&next_request(ready, true).0), ["a", "b"]);
    }

    #[test]
    fn a_suspect_goes_alone_and_holds_its_conversations_later_operations() {
        let ready = vec![
            op("c_1", "a", 0, true),
            op("c_1", "b", 0, false),
            op("c_2", "c", 0, false),
        ];
        let (ops, alone) = next_request(ready.clone(), false);
        assert_eq!(
            effects(&ops),
            ["c"],
            "c_1's second waits behind its suspect"
        );
        assert!(!alone);
        let (ops, alone) = next_request(ready, true);
        assert_eq!(effects(&ops), ["a"]);
        assert!(alone);
    }

    #[test]
    fn the_suspect_with_fewest_deaths_goes_first_and_only_a_conversations_head() {
        let ready = vec![
            op("c_1", "a", 2, true),
            op("c_2", "b", 0, true),
            op("c_3", "c", 0, false),
            op("c_3", "d", 1, false),
        ];
        let (ops, alone) = next_request(ready.clone(), true);
        assert_eq!(effects(&ops), ["b"], "the innocent before the deadly one");
        assert!(alone);
        // d has fewer deaths than a but is not its conversation's head: c goes first.
        let ready = vec![
            op("c_1", "a", 2, true),
            op("c_3", "c", 0, false),
            op("c_3", "d", 1, false),
        ];
        assert_eq!(effects(&next_request(ready.clone(), false).0), ["c"]);
        assert_eq!(effects(&next_request(ready, true).0), ["a"]);
    }

    #[test]
    fn the_limit_is_reached_by_the_claim_that_would_count_the_last_death() {
        assert!(!at_limit(&op("c_1", "a", DEATH_LIMIT - 2, true)));
        assert!(at_limit(&op("c_1", "a", DEATH_LIMIT - 1, true)));
        // Given back after its last counted death: one more run-out claim is needed.
        assert!(!at_limit(&op("c_1", "a", DEATH_LIMIT - 1, false)));
    }
}
