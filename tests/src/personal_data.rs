//! What Meta webhook deliveries say about people, as byte strings to look for in stored
//! bytes (queue files, queue message bodies): message texts and captions, contact names and
//! usernames, media links, phone numbers in plain digits and in the base64 form they take
//! inside WhatsApp message ids (a wamid is base64 of the sender's number and more), and the
//! message ids themselves; and values the test itself knows to be secret or personal (access
//! and refresh tokens, what an operator wrote), in clear and in base64. [`scan_dir`] reads
//! every file under a directory for them.
//!
//! Also included by the domain tests of the `wappline` crate (by path), so it depends on
//! `serde_json` and `base64` only.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

/// One thing that must not be found, and what it is (for the failure message).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Needle {
    pub what: &'static str,
    pub bytes: Vec<u8>,
}

/// Shorter strings could occur by chance in ciphertext rendered as base64.
const MIN_LEN: usize = 6;

fn push(out: &mut Vec<Needle>, what: &'static str, s: &str) {
    if s.len() >= MIN_LEN {
        out.push(Needle {
            what,
            bytes: s.as_bytes().to_vec(),
        });
    }
}

fn is_number(s: &str) -> bool {
    s.len() >= 8 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The base64 text that encodes `bytes` wherever it starts in an encoded stream: one form per
/// alignment (0, 1 or 2 bytes before it), keeping only the characters `bytes` fully decide.
pub fn base64_forms(bytes: &[u8]) -> Vec<String> {
    (0..3)
        .map(|offset| {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(bytes);
            let encoded = STANDARD_NO_PAD.encode(&padded);
            let first = (8 * offset).div_ceil(6);
            let end = (8 * (offset + bytes.len())) / 6;
            encoded[first..end].to_owned()
        })
        .collect()
}

/// Digit runs of 8 or more inside a decoded message id (the number it was made from).
fn numbers_in(decoded: &[u8]) -> Vec<String> {
    decoded
        .split(|b| !b.is_ascii_digit())
        .filter(|run| run.len() >= 8)
        .map(|run| String::from_utf8_lossy(run).into_owned())
        .collect()
}

fn walk(key: &str, v: &Value, phones: &mut Vec<String>, out: &mut Vec<Needle>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                walk(k, v, phones, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(key, v, phones, out);
            }
        }
        Value::String(s) => match key {
            "body" | "caption" | "text" | "title" | "description" | "payload" => {
                push(out, "message text", s)
            }
            "name" | "username" | "first_name" | "last_name" | "formatted_name" => {
                push(out, "contact name", s)
            }
            "url" | "link" => push(out, "media link", s),
            "from" | "wa_id" | "recipient_id" | "phone" | "new_wa_id" if is_number(s) => {
                phones.push(s.clone())
            }
            "id" | "mid" if s.starts_with("wamid.") => {
                push(out, "message id", s);
                let encoded = &s["wamid.".len()..];
                if let Ok(decoded) = STANDARD.decode(encoded) {
                    phones.extend(numbers_in(&decoded));
                }
            }
            "mid" => {
                push(out, "message id", s);
                if let Ok(decoded) = URL_SAFE_NO_PAD.decode(s) {
                    phones.extend(numbers_in(&decoded));
                }
            }
            // An Instagram user's id (sender or recipient).
            "id" if is_number(s) => phones.push(s.clone()),
            _ => {}
        },
        _ => {}
    }
}

/// Every needle of the deliveries, without repeats. `skip` are values that are not personal
/// data and legitimately appear in clear (the business's own account ids).
pub fn needles(deliveries: &[&[u8]], skip: &[&str]) -> Vec<Needle> {
    let mut out = Vec::new();
    let mut phones = Vec::new();
    for body in deliveries {
        let v: Value = serde_json::from_slice(body).expect("a delivery is JSON");
        walk("", &v, &mut phones, &mut out);
    }
    phones.sort();
    phones.dedup();
    for phone in phones {
        push(&mut out, "phone number or user id", &phone);
        for form in base64_forms(phone.as_bytes()) {
            push(&mut out, "phone number in base64", &form);
        }
    }
    out.retain(|n| {
        !skip.iter().any(|s| {
            n.bytes == s.as_bytes()
                || base64_forms(s.as_bytes())
                    .iter()
                    .any(|f| n.bytes == f.as_bytes())
        })
    });
    out.sort();
    out.dedup();
    out
}

/// Needles for values a test knows (tokens the tenant connected with or a fake issued, texts
/// an operator wrote): each in clear and in its base64 forms, so a value stored inside a
/// base64 payload is found too.
pub fn values(what: &'static str, values: &[&str]) -> Vec<Needle> {
    let mut out = Vec::new();
    for value in values {
        assert!(
            value.len() >= MIN_LEN,
            "{what} {value:?} is too short to look for"
        );
        push(&mut out, what, value);
        for form in base64_forms(value.as_bytes()) {
            push(&mut out, what, &form);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every regular file under `dir`, recursively, with the needles its raw bytes hold (free
/// pages, logs and anything else the file keeps included); files that hold none are left out.
pub fn scan_dir<'a>(
    needles: &'a [Needle],
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, Vec<&'a Needle>)> {
    files_under(dir)
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let found = found_in(needles, &bytes);
            (!found.is_empty()).then_some((path, found))
        })
        .collect()
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The needles found in `haystack`.
pub fn found_in<'a>(needles: &'a [Needle], haystack: &[u8]) -> Vec<&'a Needle> {
    // One pass over the haystack, looking up each position's first bytes: whole data files
    // are megabytes and there are hundreds of needles.
    let mut by_prefix: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut hit = vec![false; needles.len()];
    for (i, n) in needles.iter().enumerate() {
        if n.bytes.len() >= MIN_LEN {
            by_prefix.entry(&n.bytes[..MIN_LEN]).or_default().push(i);
        } else {
            hit[i] = haystack.windows(n.bytes.len()).any(|w| w == n.bytes);
        }
    }
    for (at, window) in haystack.windows(MIN_LEN).enumerate() {
        if let Some(ids) = by_prefix.get(window) {
            for &i in ids {
                hit[i] |= haystack[at..].starts_with(&needles[i].bytes);
            }
        }
    }
    needles
        .iter()
        .zip(hit)
        .filter_map(|(n, hit)| hit.then_some(n))
        .collect()
}

/// For a failure message: what was found, readable.
pub fn describe(found: &[&Needle]) -> String {
    found
        .iter()
        .map(|n| format!("{}: {}", n.what, String::from_utf8_lossy(&n.bytes)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_inside_a_wamid_is_found_in_its_base64_form() {
        let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ1NzgyQjE4Njg3RTZDRjhBNDgyRgA=";
        let forms = base64_forms(b"16505551234");
        assert!(
            forms.iter().any(|f| wamid.contains(f.as_str())),
            "{forms:?}"
        );
        let body = format!(r#"{{"messages":[{{"id":"{wamid}"}}]}}"#);
        let got = needles(&[body.as_bytes()], &[]);
        assert!(got.iter().any(|n| n.bytes == b"16505551234"), "{got:?}");
    }
}
