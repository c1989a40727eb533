//! The embedded queue's receive index (decision 0054): what a receive may take, kept up to date
//! by every send, receive, visibility change and delete, so a receive costs what it takes and
//! what has become visible since the last one, never the backlog.
//!
//! Every message is in exactly one of two states:
//! - **in flight**: in `IN_FLIGHT` under (queue, visible_at, seq) from the moment it is received
//!   (or its visibility is changed) until a receive finds `visible_at` passed and settles it;
//! - **settled**: not in `IN_FLIGHT`. A settled message without a FIFO group is in `READY`.
//!   A FIFO group's messages are all in `GROUPS` in send order; `GROUP_BUSY` counts the group's
//!   messages in flight, and while that count is 0 the group's first message (its head) is in
//!   `READY`. So a group with a message in flight offers nothing, as SQS FIFO requires.
//!
//! A receive settles what became visible, then walks `READY` in send order, merging in the
//! followers of each group it takes (SQS hands out several messages of one group in order), so
//! it returns exactly the first `max` messages, by send order, of the groups not blocked.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::QueueError;

/// (queue, seq) of settled messages a receive may take: ungrouped ones and free groups' heads.
const READY: TableDefinition<(&str, u64), ()> = TableDefinition::new("queue_ready");
/// (queue, visible_at ms, seq) of messages in flight.
const IN_FLIGHT: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("queue_in_flight");
/// (queue, group, seq) of every message in a FIFO group.
const GROUPS: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("queue_groups");
/// (queue, group) → the group's messages in flight; absent when none.
const GROUP_BUSY: TableDefinition<(&str, &str), u64> = TableDefinition::new("queue_group_busy");
/// queue → messages in it, so depth is one read.
const DEPTH: TableDefinition<&str, u64> = TableDefinition::new("queue_depth");

fn db_err(e: impl Into<redb::Error>) -> QueueError {
    QueueError::Backend(format!("embedded queue index: {}", e.into()))
}

/// Creates the index tables.
pub(super) fn create(txn: &WriteTransaction) -> Result<(), QueueError> {
    txn.open_table(READY).map_err(db_err)?;
    txn.open_table(IN_FLIGHT).map_err(db_err)?;
    txn.open_table(GROUPS).map_err(db_err)?;
    txn.open_table(GROUP_BUSY).map_err(db_err)?;
    txn.open_table(DEPTH).map_err(db_err)?;
    Ok(())
}

/// Builds the index afresh for messages written before it existed: each goes in flight until
/// its `visible_at` (already past for most), and the next receive settles it.
pub(super) fn rebuild<'a>(
    txn: &WriteTransaction,
    messages: impl IntoIterator<Item = (&'a str, u64, i64, Option<&'a str>)>,
) -> Result<(), QueueError> {
    txn.delete_table(READY).map_err(db_err)?;
    txn.delete_table(IN_FLIGHT).map_err(db_err)?;
    txn.delete_table(GROUPS).map_err(db_err)?;
    txn.delete_table(GROUP_BUSY).map_err(db_err)?;
    txn.delete_table(DEPTH).map_err(db_err)?;
    create(txn)?;
    for (queue, seq, visible_at, group) in messages {
        add_depth(txn, queue, 1)?;
        if let Some(g) = group {
            txn.open_table(GROUPS)
                .map_err(db_err)?
                .insert((queue, g, seq), ())
                .map_err(db_err)?;
            set_busy(txn, queue, g, busy(txn, queue, g)? + 1)?;
        }
        txn.open_table(IN_FLIGHT)
            .map_err(db_err)?
            .insert((queue, visible_at, seq), ())
            .map_err(db_err)?;
    }
    Ok(())
}

fn add_depth(txn: &WriteTransaction, queue: &str, delta: i64) -> Result<(), QueueError> {
    let mut t = txn.open_table(DEPTH).map_err(db_err)?;
    let n = t
        .get(queue)
        .map_err(db_err)?
        .map(|g| g.value())
        .unwrap_or(0);
    let n = n.saturating_add_signed(delta);
    if n == 0 {
        t.remove(queue).map_err(db_err)?;
    } else {
        t.insert(queue, n).map_err(db_err)?;
    }
    Ok(())
}

fn busy(txn: &WriteTransaction, queue: &str, group: &str) -> Result<u64, QueueError> {
    Ok(txn
        .open_table(GROUP_BUSY)
        .map_err(db_err)?
        .get((queue, group))
        .map_err(db_err)?
        .map(|g| g.value())
        .unwrap_or(0))
}

fn set_busy(txn: &WriteTransaction, queue: &str, group: &str, n: u64) -> Result<(), QueueError> {
    let mut t = txn.open_table(GROUP_BUSY).map_err(db_err)?;
    if n == 0 {
        t.remove((queue, group)).map_err(db_err)?;
    } else {
        t.insert((queue, group), n).map_err(db_err)?;
    }
    Ok(())
}

/// The group's first message after `after` (exclusive; `None`: from the start).
fn group_next(
    txn: &WriteTransaction,
    queue: &str,
    group: &str,
    after: Option<u64>,
) -> Result<Option<u64>, QueueError> {
    let from = match after {
        Some(s) if s == u64::MAX => return Ok(None),
        Some(s) => s + 1,
        None => 0,
    };
    let t = txn.open_table(GROUPS).map_err(db_err)?;
    let mut range = t
        .range((queue, group, from)..=(queue, group, u64::MAX))
        .map_err(db_err)?;
    let next = match range.next() {
        Some(entry) => Some(entry.map_err(db_err)?.0.value().2),
        None => None,
    };
    Ok(next)
}

fn set_ready(txn: &WriteTransaction, queue: &str, seq: u64, ready: bool) -> Result<(), QueueError> {
    let mut t = txn.open_table(READY).map_err(db_err)?;
    if ready {
        t.insert((queue, seq), ()).map_err(db_err)?;
    } else {
        t.remove((queue, seq)).map_err(db_err)?;
    }
    Ok(())
}

/// A free group's head goes into `READY`.
fn offer_head(txn: &WriteTransaction, queue: &str, group: &str) -> Result<(), QueueError> {
    if let Some(head) = group_next(txn, queue, group, None)? {
        set_ready(txn, queue, head, true)?;
    }
    Ok(())
}

fn is_in_flight(
    txn: &WriteTransaction,
    queue: &str,
    visible_at: i64,
    seq: u64,
) -> Result<bool, QueueError> {
    Ok(txn
        .open_table(IN_FLIGHT)
        .map_err(db_err)?
        .get((queue, visible_at, seq))
        .map_err(db_err)?
        .is_some())
}

/// A new message at the back of `queue`.
pub(super) fn added(
    txn: &WriteTransaction,
    queue: &str,
    seq: u64,
    group: Option<&str>,
) -> Result<(), QueueError> {
    add_depth(txn, queue, 1)?;
    match group {
        None => set_ready(txn, queue, seq, true),
        Some(g) => {
            txn.open_table(GROUPS)
                .map_err(db_err)?
                .insert((queue, g, seq), ())
                .map_err(db_err)?;
            // Only a free group's first message is offered; otherwise its head already is, or
            // the group is blocked.
            if busy(txn, queue, g)? == 0 && group_next(txn, queue, g, None)? == Some(seq) {
                set_ready(txn, queue, seq, true)?;
            }
            Ok(())
        }
    }
}

/// The message leaves `queue` (deleted, or moved to its dead-letter queue).
pub(super) fn removed(
    txn: &WriteTransaction,
    queue: &str,
    seq: u64,
    visible_at: i64,
    group: Option<&str>,
) -> Result<(), QueueError> {
    add_depth(txn, queue, -1)?;
    let in_flight = is_in_flight(txn, queue, visible_at, seq)?;
    if in_flight {
        txn.open_table(IN_FLIGHT)
            .map_err(db_err)?
            .remove((queue, visible_at, seq))
            .map_err(db_err)?;
    } else {
        set_ready(txn, queue, seq, false)?;
    }
    if let Some(g) = group {
        txn.open_table(GROUPS)
            .map_err(db_err)?
            .remove((queue, g, seq))
            .map_err(db_err)?;
        let mut n = busy(txn, queue, g)?;
        if in_flight {
            n = n.saturating_sub(1);
            set_busy(txn, queue, g, n)?;
        }
        if n == 0 {
            offer_head(txn, queue, g)?;
        }
    }
    Ok(())
}

/// The message goes (or stays) in flight until `until`.
pub(super) fn hidden(
    txn: &WriteTransaction,
    queue: &str,
    seq: u64,
    visible_at: i64,
    until: i64,
    group: Option<&str>,
) -> Result<(), QueueError> {
    let mut flight = txn.open_table(IN_FLIGHT).map_err(db_err)?;
    if flight
        .remove((queue, visible_at, seq))
        .map_err(db_err)?
        .is_none()
    {
        // Settled until now: it leaves READY, and its group is blocked from here on.
        match group {
            None => set_ready(txn, queue, seq, false)?,
            Some(g) => {
                let n = busy(txn, queue, g)?;
                if n == 0 {
                    if let Some(head) = group_next(txn, queue, g, None)? {
                        set_ready(txn, queue, head, false)?;
                    }
                }
                set_busy(txn, queue, g, n + 1)?;
            }
        }
    }
    flight.insert((queue, until, seq), ()).map_err(db_err)?;
    Ok(())
}

/// Settles every message of `queue` whose visibility timeout has passed by `now`; `group_of`
/// reads a message's group. Costs what expired, not what waits. True when any had expired.
pub(super) fn settle_expired(
    txn: &WriteTransaction,
    queue: &str,
    now: i64,
    group_of: impl Fn(u64) -> Result<Option<String>, QueueError>,
) -> Result<bool, QueueError> {
    let expired: Vec<(i64, u64)> = {
        let t = txn.open_table(IN_FLIGHT).map_err(db_err)?;
        let range = t
            .range((queue, i64::MIN, 0u64)..=(queue, now, u64::MAX))
            .map_err(db_err)?;
        range
            .map(|e| e.map(|(k, _)| (k.value().1, k.value().2)).map_err(db_err))
            .collect::<Result<_, _>>()?
    };
    let settled = !expired.is_empty();
    for (visible_at, seq) in expired {
        txn.open_table(IN_FLIGHT)
            .map_err(db_err)?
            .remove((queue, visible_at, seq))
            .map_err(db_err)?;
        match group_of(seq)? {
            None => set_ready(txn, queue, seq, true)?,
            Some(g) => {
                let n = busy(txn, queue, &g)?.saturating_sub(1);
                set_busy(txn, queue, &g, n)?;
                if n == 0 {
                    offer_head(txn, queue, &g)?;
                }
            }
        }
    }
    Ok(settled)
}

/// Where a receive's next candidate came from.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum From {
    Ready,
    Group(String),
}

/// Hands `queue`'s candidates to `take` in send order until it has taken `max` (it returns
/// whether it took the message: a message it dead-letters does not count). `group_of` reads a
/// message's group. Call [`settle_expired`] first.
pub(super) fn walk(
    txn: &WriteTransaction,
    queue: &str,
    max: usize,
    group_of: impl Fn(u64) -> Result<Option<String>, QueueError>,
    mut take: impl FnMut(u64) -> Result<bool, QueueError>,
) -> Result<(), QueueError> {
    let next_ready = |after: Option<u64>| -> Result<Option<u64>, QueueError> {
        let from = match after {
            Some(s) if s == u64::MAX => return Ok(None),
            Some(s) => s + 1,
            None => 0,
        };
        let t = txn.open_table(READY).map_err(db_err)?;
        let mut range = t.range((queue, from)..=(queue, u64::MAX)).map_err(db_err)?;
        let next = match range.next() {
            Some(entry) => Some(entry.map_err(db_err)?.0.value().1),
            None => None,
        };
        Ok(next)
    };
    let mut heap: BinaryHeap<Reverse<(u64, From)>> = BinaryHeap::new();
    // Taking or dead-lettering a group's head offers its next message in READY too; the
    // followers come through the group already, so each message is handed over once.
    let mut seen: HashSet<u64> = HashSet::new();
    if let Some(s) = next_ready(None)? {
        heap.push(Reverse((s, From::Ready)));
    }
    let mut taken = 0;
    while taken < max {
        let Some(Reverse((seq, from))) = heap.pop() else {
            break;
        };
        if from == From::Ready {
            if let Some(s) = next_ready(Some(seq))? {
                heap.push(Reverse((s, From::Ready)));
            }
        }
        if !seen.insert(seq) {
            continue;
        }
        if let Some(g) = group_of(seq)? {
            if let Some(s) = group_next(txn, queue, &g, Some(seq))? {
                heap.push(Reverse((s, From::Group(g))));
            }
        }
        if take(seq)? {
            taken += 1;
        }
    }
    Ok(())
}

/// Messages in `queue`, and how many of them are in flight at `now`.
pub(super) fn depth(
    txn: &redb::ReadTransaction,
    queue: &str,
    now: i64,
) -> Result<(u64, u64), QueueError> {
    let total = txn
        .open_table(DEPTH)
        .map_err(db_err)?
        .get(queue)
        .map_err(db_err)?
        .map(|g| g.value())
        .unwrap_or(0);
    let mut in_flight = 0;
    if now < i64::MAX {
        let t = txn.open_table(IN_FLIGHT).map_err(db_err)?;
        for entry in t
            .range((queue, now + 1, 0u64)..=(queue, i64::MAX, u64::MAX))
            .map_err(db_err)?
        {
            entry.map_err(db_err)?;
            in_flight += 1;
        }
    }
    Ok((total, in_flight))
}
