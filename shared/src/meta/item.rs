//! One pass over the body, and a lenient second pass only for bodies that need it.
//!
//! The body is read straight into borrowed typed structs. Arrays of things that may be
//! malformed one by one (entries, changes, messages, statuses, contacts…) hold [`Item`]s:
//!
//! - the **strict** pass reads every item as its type; a delivery where everything fits
//!   (nearly all of them) is parsed once, with no intermediate tree;
//! - when an item does not fit, the strict pass fails and the **lenient** pass reads the
//!   body again, keeping each item's raw JSON (borrowed, never copied) and reading it on its
//!   own: an item that does not fit is [`Item::Bad`], counted or kept as unsupported by the
//!   splitter, and never costs its neighbours.
//!
//! Both passes read the same structs, so a delivery the strict pass accepts gives exactly
//! what the lenient pass would. The pass in use, and the delivery's budgets, live in a
//! thread-local for the duration of one parse, because serde's derive has no way to hand
//! a context down to nested items.
//!
//! Budgets bound memory by the number of things read, whatever their size: at most
//! [`MAX_EVENTS`] event items (messages, echoes, statuses, messaging and standby items) and
//! [`MAX_ITEMS`] array elements in all per delivery. Past either, the parse stops at once.

use std::cell::Cell;

use serde::de::{self, Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Meta batches at most 1,000 updates in one delivery (Graph API webhooks reference).
pub const MAX_EVENTS: u32 = 1_000;
/// Elements of every array read, in one delivery: events and their contacts, errors,
/// attachments, entries and changes. Meta's largest batches stay far below.
pub const MAX_ITEMS: u32 = 20_000;

/// Why a parse stopped for the whole delivery (not one item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    TooManyEvents,
    TooManyItems,
    DuplicateKey,
}

#[derive(Clone, Copy)]
struct State {
    /// A split is running: budgets apply (the models read on their own have none).
    active: bool,
    lenient: bool,
    events_left: u32,
    items_left: u32,
    abort: Option<Abort>,
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State {
        active: false,
        lenient: false,
        events_left: MAX_EVENTS,
        items_left: MAX_ITEMS,
        abort: None,
    }) };
}

fn update(f: impl FnOnce(&mut State)) -> State {
    STATE.with(|s| {
        let mut st = s.get();
        f(&mut st);
        s.set(st);
        st
    })
}

/// Takes one element from the budgets (and one event when `event`).
pub(crate) fn spend(event: bool) -> Result<(), &'static str> {
    let st = update(|st| {
        if !st.active {
        } else if st.items_left == 0 {
            st.abort.get_or_insert(Abort::TooManyItems);
        } else if event && st.events_left == 0 {
            st.abort.get_or_insert(Abort::TooManyEvents);
        } else {
            st.items_left -= 1;
            if event {
                st.events_left -= 1;
            }
        }
    });
    match st.abort {
        Some(Abort::TooManyItems) => Err("too many items in one delivery"),
        Some(Abort::TooManyEvents) => Err("too many events in one delivery"),
        _ => Ok(()),
    }
}

/// Largest request glibc's per-thread cache serves (`tcache_max_bytes`, 1,032 bytes, the
/// same on the Lambda's Amazon Linux): a larger block takes malloc's general path, with
/// its bins and merging, on both its allocation and its free.
pub(crate) const SMALL_ALLOCATION: usize = 1_032;

/// Pushes `v`, sizing a vector of large elements for exactly one on its first push. A
/// `Vec` reserves four elements at once, which for a message (about 500 bytes) or a status
/// is past [`SMALL_ALLOCATION`]; nearly every array of a delivery holds one element, so one
/// is reserved first and the usual growth follows from there.
pub(crate) fn push<T>(out: &mut Vec<T>, v: T) {
    if out.capacity() == 0 && 4 * std::mem::size_of::<T>() > SMALL_ALLOCATION {
        out.reserve_exact(1);
    }
    out.push(v);
}

/// Parses `body` as `T` in the strict or the lenient pass, with fresh budgets, and counts
/// the event items read (messages, echoes, statuses, messaging and standby items). On
/// error, says whether the whole delivery must be refused (an [`Abort`]).
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    lenient: bool,
) -> Result<(T, usize), (serde_json::Error, Option<Abort>)> {
    update(|st| {
        *st = State {
            active: true,
            lenient,
            events_left: MAX_EVENTS,
            items_left: MAX_ITEMS,
            abort: None,
        }
    });
    // A body that is valid UTF-8 as a whole (every delivery Meta sends) is read as a `str`:
    // serde_json then checks no string's UTF-8 again as it reads it, which was about a
    // twentieth of the split (decision 0079). Any other body is read as bytes, so its error
    // is the one the bytes give.
    let out = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str::<T>(text),
        Err(_) => serde_json::from_slice::<T>(body),
    };
    let st = update(|st| {
        st.active = false;
        st.lenient = false;
    });
    match out {
        Ok(v) => Ok((v, (MAX_EVENTS - st.events_left) as usize)),
        Err(e) => {
            let abort = st.abort.or(is_duplicate(&e).then_some(Abort::DuplicateKey));
            Err((e, abort))
        }
    }
}

/// serde's derive refuses a known field given twice ("duplicate field `id`"); so do the
/// hand-written visitors. Such a body is refused rather than read by its last key.
fn is_duplicate(e: &serde_json::Error) -> bool {
    e.is_data() && e.to_string().starts_with("duplicate field")
}

/// One element of an array read element by element: its typed value, or (lenient pass
/// only) the raw JSON of an element that does not fit, for the splitter to salvage what it
/// can (an id, a sender) or count.
#[derive(Debug)]
pub enum Item<'a, T> {
    Ok(T),
    Bad(&'a RawValue),
}

impl<T> Item<'_, T> {
    pub fn ok(&self) -> Option<&T> {
        match self {
            Item::Ok(v) => Some(v),
            Item::Bad(_) => None,
        }
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Item<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !STATE.with(|s| s.get().lenient) {
            return T::deserialize(d).map(Item::Ok);
        }
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        match serde_json::from_str::<T>(raw.get()) {
            Ok(v) => Ok(Item::Ok(v)),
            Err(e) => {
                let fatal = STATE.with(|s| s.get().abort.is_some()) || is_duplicate(&e);
                if fatal {
                    update(|st| {
                        st.abort.get_or_insert(Abort::DuplicateKey);
                    });
                    Err(de::Error::custom(e))
                } else {
                    Ok(Item::Bad(raw))
                }
            }
        }
    }
}
