//! Structure-aware generation: real JSON shapes (the samples and fixtures) with a few edits
//! each, made by proptest strategies. The tree is our own rather than `serde_json::Value`
//! because a `Value` cannot hold what hostile input holds: a key given twice, or a number
//! written in a way no `f64`/`i64` keeps (`1e999`, `-0`, thirty digits).

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

/// A JSON document as written: object members in order, duplicates allowed, numbers as text.
#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl From<&Value> for J {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.to_string()),
            Value::String(s) => J::Str(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from).collect()),
            Value::Object(o) => J::Obj(o.iter().map(|(k, v)| (k.clone(), J::from(v))).collect()),
        }
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("a string serializes");
}

impl J {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            J::Null => out.extend_from_slice(b"null"),
            J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            J::Num(n) => out.extend_from_slice(n.as_bytes()),
            J::Str(s) => write_str(s, out),
            J::Arr(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
            J::Obj(o) => {
                out.push(b'{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(k, out);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }

    fn count(&self) -> usize {
        1 + match self {
            J::Arr(a) => a.iter().map(J::count).sum(),
            J::Obj(o) => o.iter().map(|(_, v)| v.count()).sum(),
            _ => 0,
        }
    }

    /// The `n`th node in pre-order.
    fn nth(&self, n: usize) -> Option<&J> {
        let mut left = n;
        fn walk<'a>(j: &'a J, left: &mut usize) -> Option<&'a J> {
            if *left == 0 {
                return Some(j);
            }
            *left -= 1;
            match j {
                J::Arr(a) => a.iter().find_map(|v| walk(v, left)),
                J::Obj(o) => o.iter().find_map(|(_, v)| walk(v, left)),
                _ => None,
            }
        }
        walk(self, &mut left)
    }
}

/// Numbers that parsers get wrong: out of every integer type, negative where a count or a
/// time is meant, floats where integers are meant, and forms no float keeps.
const ODD_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1.5",
    "-1.5",
    "1e999",
    "-1e999",
    "1e-999",
    "0.0000001",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "-99999999999",
    "99999999999999999999999999999999",
    "1E+2",
];

/// Strings that look like the values they replace, or break what reads them.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "-99999999999",
    "99999999999999999999999",
    "1.5",
    "1e999",
    "NaN",
    "null",
    "true",
    "0",
    "\u{0}",
    "\u{feff}",
    "\u{202e}abc",
    "\u{1f600}\u{1f600}",
    "e\u{301}",
    "\r\n",
    "%00%ff",
    "a[b]",
    "data[MESSAGES][0][im]",
    "sha256=",
    "wamid.",
    "text",
    "image",
    "unsupported",
    "messages",
    "whatsapp_business_account",
    "instagram",
    "HMAC-SHA256",
    "hmac-sha256",
    "tn_0123456789abcdef01234567",
    "tn_",
    "usr_0123456789abcdef0123",
    "wa",
    "ig",
    "106540352242922",
    "+16505551234",
    "US.13491208655302741918",
    "ONIMCONNECTORMESSAGEADD",
    "onappinstall",
    "https://example.com/x",
    "javascript:alert(1)",
    "../../etc/passwd",
    "<script>",
];

fn deep(depth: usize, object: bool) -> J {
    (0..depth).fold(J::Null, |inner, _| {
        if object {
            J::Obj(vec![("a".into(), inner)])
        } else {
            J::Arr(vec![inner])
        }
    })
}

/// An odd value: a number, string, other type or nesting where the shape expects something
/// else.
pub fn odd_value() -> impl Strategy<Value = J> + Clone {
    prop_oneof![
        4 => proptest::sample::select(ODD_NUMBERS).prop_map(|s| J::Num(s.into())),
        2 => any::<i64>().prop_map(|n| J::Num(n.to_string())),
        1 => any::<u64>().prop_map(|n| J::Num(n.to_string())),
        2 => any::<f64>().prop_map(|f| J::Num(if f.is_finite() {
            format!("{f:e}")
        } else {
            "1e999".into()
        })),
        4 => proptest::sample::select(ODD_STRINGS).prop_map(|s| J::Str(s.into())),
        3 => any::<String>().prop_map(J::Str),
        2 => any::<i64>().prop_map(|n| J::Str(n.to_string())),
        1 => (0usize..20_000, any::<char>()).prop_map(|(n, c)| J::Str(c.to_string().repeat(n))),
        1 => any::<bool>().prop_map(J::Bool),
        1 => Just(J::Null),
        1 => Just(J::Arr(Vec::new())),
        1 => Just(J::Obj(Vec::new())),
        1 => (1usize..300, any::<bool>()).prop_map(|(d, o)| deep(d, o)),
    ]
}

fn odd_key() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        proptest::sample::select(ODD_STRINGS).prop_map(String::from),
        any::<String>(),
    ]
}

/// One change to a tree, at a node chosen by an [`Index`].
#[derive(Clone, Debug)]
pub enum Edit {
    /// The node becomes an odd value (wrong type, odd number, odd string, deep nesting).
    Replace(J),
    /// The node leaves its object or array (a missing field or element).
    Remove,
    /// The node's key appears again with another value (or the element again, in an array).
    Duplicate(J),
    /// The node's key is renamed.
    Rename(String),
    /// The node is wrapped `depth` times in arrays or objects.
    Wrap(usize, bool),
    /// The node is replaced by a copy of another node of the tree (a real shape in the wrong
    /// place).
    Transplant(Index),
    /// An array's elements are repeated until it holds `n` times as many.
    Repeat(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        5 => odd_value().prop_map(Edit::Replace),
        3 => Just(Edit::Remove),
        2 => odd_value().prop_map(Edit::Duplicate),
        1 => odd_key().prop_map(Edit::Rename),
        1 => (1usize..200, any::<bool>()).prop_map(|(d, o)| Edit::Wrap(d, o)),
        2 => any::<Index>().prop_map(Edit::Transplant),
        1 => (2usize..40).prop_map(Edit::Repeat),
    ]
}

/// One to four edits, each at a node chosen among the tree's nodes at that moment.
pub fn edits() -> impl Strategy<Value = Vec<(Index, Edit)>> {
    proptest::collection::vec((any::<Index>(), edit()), 1..5)
}

/// Applies `edits` in order.
pub fn apply(mut tree: J, edits: &[(Index, Edit)]) -> J {
    for (at, edit) in edits {
        let n = at.index(tree.count());
        let edit = match edit {
            Edit::Transplant(from) => Edit::Replace(
                tree.nth(from.index(tree.count()))
                    .cloned()
                    .unwrap_or(J::Null),
            ),
            other => other.clone(),
        };
        if n == 0 {
            tree = self_edit(tree, &edit);
        } else {
            let mut left = n - 1;
            child_edit(&mut tree, &mut left, &edit);
        }
    }
    tree
}

/// An edit of a node that its parent does not take part in.
fn self_edit(node: J, edit: &Edit) -> J {
    match edit {
        Edit::Replace(v) => v.clone(),
        Edit::Remove | Edit::Duplicate(_) | Edit::Rename(_) | Edit::Transplant(_) => node,
        Edit::Wrap(depth, object) => (0..*depth).fold(node, |inner, _| {
            if *object {
                J::Obj(vec![("a".into(), inner)])
            } else {
                J::Arr(vec![inner])
            }
        }),
        Edit::Repeat(times) => match node {
            J::Arr(a) if !a.is_empty() => {
                let n = a.len();
                J::Arr(a.into_iter().cycle().take(n * times).collect())
            }
            other => other,
        },
    }
}

/// Finds the child numbered `left` (pre-order, below `node`) and edits it; true once done.
fn child_edit(node: &mut J, left: &mut usize, edit: &Edit) -> bool {
    match node {
        J::Arr(a) => {
            for i in 0..a.len() {
                if *left == 0 {
                    match edit {
                        Edit::Remove => {
                            a.remove(i);
                        }
                        Edit::Duplicate(v) => a.insert(i + 1, v.clone()),
                        _ => {
                            let old = std::mem::replace(&mut a[i], J::Null);
                            a[i] = self_edit(old, edit);
                        }
                    }
                    return true;
                }
                *left -= 1;
                if child_edit(&mut a[i], left, edit) {
                    return true;
                }
            }
            false
        }
        J::Obj(o) => {
            for i in 0..o.len() {
                if *left == 0 {
                    match edit {
                        Edit::Remove => {
                            o.remove(i);
                        }
                        Edit::Duplicate(v) => {
                            let key = o[i].0.clone();
                            o.insert(i + 1, (key, v.clone()));
                        }
                        Edit::Rename(k) => o[i].0 = k.clone(),
                        _ => {
                            let old = std::mem::replace(&mut o[i].1, J::Null);
                            o[i].1 = self_edit(old, edit);
                        }
                    }
                    return true;
                }
                *left -= 1;
                if child_edit(&mut o[i].1, left, edit) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

/// A seed tree with one to four edits.
pub fn edited(seeds: Arc<Vec<J>>) -> impl Strategy<Value = J> {
    (any::<Index>(), edits())
        .prop_map(move |(pick, e)| apply(seeds[pick.index(seeds.len())].clone(), &e))
}

/// Reads `text` as JSON into a tree (for seeds, which are valid).
pub fn tree(text: &[u8]) -> J {
    J::from(&serde_json::from_slice::<Value>(text).expect("a seed is valid JSON"))
}
