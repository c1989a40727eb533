//! Byte-level mutation of valid inputs, as AFL and libFuzzer do it (bit flips, interesting
//! bytes, insertion, deletion, truncation, duplication, splicing with another input). The
//! random choices are proptest strategies; what is hand-written is applying them.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;

/// Byte strings that sit on the parsers' edges: JSON, form and token syntax, escapes that
/// decode to nothing valid, UTF-8 that is not, and numbers out of range.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b".",
    b"-",
    b"+",
    b"=",
    b"&",
    b"%",
    b"%0",
    b"%00",
    b"%ff",
    b"%5B",
    b"%5D",
    b"[]",
    b"[99999999]",
    b"[-1]",
    b"[a][b][c][d][e][f][g][h][i][j][k]",
    b"\\u0000",
    b"\\ud800",
    b"\\udfff",
    b"\\u",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x80",
    b"\xf0\x9f\x98\x80",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":{\"a\":",
    b"sha256=",
    b"==",
    b"\r\n",
    b" ",
];

#[derive(Clone, Debug)]
pub enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Insert(Index, Index),
    Overwrite(Index, Index),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize),
    /// Replaces everything from one position on with the tail of another input.
    Splice(Index, Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, w)| Mutation::Insert(i, w)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, w)| Mutation::Overwrite(i, w)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1usize..256).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(o, i, j)| Mutation::Splice(o, i, j)),
    ]
}

/// One to six mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..7)
}

/// Applies `mutations` to `data`; `pool` holds the inputs splicing takes tails from.
pub fn apply(mut data: Vec<u8>, mutations: &[Mutation], pool: &[Vec<u8>]) -> Vec<u8> {
    for m in mutations {
        // A position inside the data, or its end (an empty input has only its end).
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::FlipBit(i, bit) if !data.is_empty() => {
                let p = i.index(data.len());
                data[p] ^= 1 << bit;
            }
            Mutation::SetByte(i, b) if !data.is_empty() => {
                let p = i.index(data.len());
                data[p] = *b;
            }
            Mutation::Insert(i, w) => {
                let p = at(i, data.len());
                let word = INTERESTING[w.index(INTERESTING.len())];
                data.splice(p..p, word.iter().copied());
            }
            Mutation::Overwrite(i, w) if !data.is_empty() => {
                let p = i.index(data.len());
                let word = INTERESTING[w.index(INTERESTING.len())];
                let end = (p + word.len()).min(data.len());
                data.splice(p..end, word.iter().copied());
            }
            Mutation::Delete(i, n) if !data.is_empty() => {
                let p = i.index(data.len());
                let end = (p + n).min(data.len());
                data.drain(p..end);
            }
            Mutation::Truncate(i) => {
                let p = at(i, data.len());
                data.truncate(p);
            }
            Mutation::Duplicate(i, n) if !data.is_empty() => {
                let p = i.index(data.len());
                let end = (p + n).min(data.len());
                let copy = data[p..end].to_vec();
                data.splice(end..end, copy);
            }
            Mutation::Splice(other, i, j) if !pool.is_empty() => {
                let other = &pool[other.index(pool.len())];
                let p = at(i, data.len());
                let q = at(j, other.len());
                data.truncate(p);
                data.extend_from_slice(&other[q..]);
            }
            _ => {}
        }
    }
    data
}

/// A seed with one to six mutations.
pub fn mutated(seeds: Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Vec<u8>> {
    (any::<Index>(), mutations())
        .prop_map(move |(pick, m)| apply(seeds[pick.index(seeds.len())].clone(), &m, &seeds))
}

/// What `structured` makes, with one to six mutations.
pub fn mutated_from(
    structured: BoxedStrategy<Vec<u8>>,
    seeds: Arc<Vec<Vec<u8>>>,
) -> impl Strategy<Value = Vec<u8>> {
    (structured, mutations()).prop_map(move |(data, m)| apply(data, &m, &seeds))
}

/// Every parser's inputs: structured (valid-looking, odd values), mutated seeds, mutated
/// structured inputs, and the seeds themselves now and then.
pub fn inputs(seeds: Vec<Vec<u8>>, structured: BoxedStrategy<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    assert!(!seeds.is_empty(), "a target needs at least one seed");
    let seeds = Arc::new(seeds);
    let plain = {
        let seeds = seeds.clone();
        any::<Index>().prop_map(move |i| seeds[i.index(seeds.len())].clone())
    };
    prop_oneof![
        4 => structured.clone(),
        4 => mutated(seeds.clone()),
        2 => mutated_from(structured, seeds),
        1 => plain,
    ]
    .boxed()
}
