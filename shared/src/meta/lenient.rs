//! Deserialisers that accept the variations Meta's payloads show in practice (a timestamp as
//! `"1749416383"` or `1749416383`, a count as a string), so one odd field never costs a
//! message.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An integer given as a JSON number or a string of digits; anything else reads as absent.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A non-negative integer, as [`int`].
pub(crate) fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(int(d)?.and_then(|v| u64::try_from(v).ok()))
}

/// A float given as a number or a numeric string (coordinates).
pub(crate) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A boolean given as `true`/`false` or `"true"`/`"false"`; absent or anything else is false.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    })
}

/// A string, or a number written as its decimal text (ids Meta sometimes sends unquoted).
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// An array whose elements are kept as raw JSON, so each can be parsed (and fail) alone.
pub(crate) fn items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(v)) => v,
        _ => Vec::new(),
    })
}

/// An array of typed elements; elements that do not parse are dropped, not fatal.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(items(d)?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// Instagram timestamps are milliseconds, WhatsApp's seconds: anything past the year 5138 in
/// seconds is taken as milliseconds.
pub(crate) fn to_unix_seconds(t: i64) -> i64 {
    if t > 100_000_000_000 {
        t / 1000
    } else {
        t
    }
}

/// A name from a payload (a webhook field, a message type) made safe for counters and logs:
/// lower-case ASCII letters, digits, `_` and `.`, at most 48 characters.
pub(crate) fn label(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(48)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "int")]
        t: Option<i64>,
        #[serde(default, deserialize_with = "flag")]
        f: bool,
    }

    #[test]
    fn integers_from_numbers_or_strings() {
        let p = |s: &str| serde_json::from_str::<T>(s).unwrap().t;
        assert_eq!(p(r#"{"t":"1749416383"}"#), Some(1749416383));
        assert_eq!(p(r#"{"t":1749416383}"#), Some(1749416383));
        assert_eq!(p(r#"{"t":"x"}"#), None);
        assert_eq!(p(r#"{"t":null}"#), None);
        assert_eq!(p(r#"{}"#), None);
        assert!(serde_json::from_str::<T>(r#"{"f":"true"}"#).unwrap().f);
        assert_eq!(to_unix_seconds(1_569_262_485_349), 1_569_262_485);
        assert_eq!(to_unix_seconds(1_749_416_383), 1_749_416_383);
        assert_eq!(label("Smb Message Echoes!"), "smb_message_echoes_");
        assert_eq!(label(""), "none");
    }
}
