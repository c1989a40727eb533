//! What Meta webhook deliveries say about people, as byte strings to look for in stored
//! bytes (queue files, queue message bodies): message texts and captions, contact names and
//! usernames, media links, phone numbers in plain digits and in the base64 form they take
//! inside WhatsApp message ids (a wamid is base64 of the sender's number and more), and the
//! message ids themselves.
//!
//! Also included by the domain tests of the `wappline` crate (by path), so it depends on
//! `serde_json` and `base64` only.

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

/// The needles found in `haystack`.
pub fn found_in<'a>(needles: &'a [Needle], haystack: &[u8]) -> Vec<&'a Needle> {
    needles
        .iter()
        .filter(|n| haystack.windows(n.bytes.len()).any(|w| w == n.bytes))
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
