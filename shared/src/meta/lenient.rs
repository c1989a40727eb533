//! Deserialisers that accept the variations Meta's payloads show in practice (a timestamp as
//! `"1749416383"` or `1749416383`, a count as a string), so one odd field never costs a
//! message. They read straight from the body (strings are borrowed when they have no
//! escapes) and skip a value of another type without building it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::item::{self, Item};

/// What a scalar field turned out to be; anything else (objects, arrays, null, booleans
/// where a number is expected) reads as absent.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    // Skipped without building anything (serde_json skips nested junk iteratively).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// An integer given as a JSON number or a string of digits; anything else reads as absent.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::I64(v) => Some(v),
        Scalar::U64(v) => Some(i64::try_from(v).unwrap_or(v as f64 as i64)),
        Scalar::F64(f) => Some(f as i64),
        Scalar::Str(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A non-negative integer, as [`int`].
pub(crate) fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(int(d)?.and_then(|v| u64::try_from(v).ok()))
}

/// A float given as a number or a numeric string (coordinates).
pub(crate) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::I64(v) => Some(v as f64),
        Scalar::U64(v) => Some(v as f64),
        Scalar::F64(f) => Some(f),
        Scalar::Str(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A boolean given as `true`/`false` or `"true"`/`"false"`; absent or anything else is false.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Bool(b) => b,
        Scalar::Str(s) => s == "true",
        _ => false,
    })
}

/// A string, or a number written as its decimal text (ids Meta sometimes sends unquoted).
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Str(s) => Some(s),
        Scalar::I64(v) => Some(Cow::Owned(v.to_string())),
        Scalar::U64(v) => Some(Cow::Owned(v.to_string())),
        Scalar::F64(f) => serde_json::Number::from_f64(f).map(|n| Cow::Owned(n.to_string())),
        _ => None,
    })
}

/// A string only; anything else reads as absent (a message `type` must be a name).
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Str(s) => Some(s),
        _ => None,
    })
}

/// A string or `null`, as serde reads `Option<Cow<str>>`, but borrowed from the body when
/// it has no escapes: serde's derive borrows a `Cow<str>` field, not one inside an
/// `Option`, which allocated a `String` for every string of every delivery. Any other
/// value is an error, as before (the item is then read leniently, on its own).
pub(crate) fn opt_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(V)
}

/// An array whose elements are each read on their own ([`Item`]); anything else is an empty
/// list. Every element counts against the delivery's item budget.
pub(crate) fn items<'de, D, T>(d: D) -> Result<Vec<Item<'de, T>>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    d.deserialize_any(ItemsVisitor::<T> {
        events: false,
        marker: std::marker::PhantomData,
    })
}

/// As [`items`], for arrays whose elements are events (messages, echoes, statuses, messaging
/// items): each also counts against the delivery's event cap.
pub(crate) fn events<'de, D, T>(d: D) -> Result<Vec<Item<'de, T>>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    d.deserialize_any(ItemsVisitor::<T> {
        events: true,
        marker: std::marker::PhantomData,
    })
}

struct ItemsVisitor<T> {
    events: bool,
    marker: std::marker::PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for ItemsVisitor<T> {
    type Value = Vec<Item<'de, T>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Item<'de, T>>()? {
            item::spend(self.events).map_err(de::Error::custom)?;
            item::push(&mut out, v);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
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

/// An optional string of the body, as the events hold it: owned (they outlive the body) or
/// borrowed when the events borrow from the body (decision 0103).
pub(crate) fn event_text<'a, S: crate::ids::BodyText<'a>>(s: &Option<Cow<'a, str>>) -> Option<S> {
    s.as_ref().map(|s| S::from_cow(s.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T<'a> {
        #[serde(default, deserialize_with = "int")]
        t: Option<i64>,
        #[serde(default, deserialize_with = "flag")]
        f: bool,
        #[serde(default, borrow, deserialize_with = "text")]
        s: Option<Cow<'a, str>>,
    }

    #[test]
    fn integers_from_numbers_or_strings() {
        let p = |s: &str| serde_json::from_str::<T>(s).unwrap().t;
        assert_eq!(p(r#"{"t":"1749416383"}"#), Some(1749416383));
        assert_eq!(p(r#"{"t":1749416383}"#), Some(1749416383));
        assert_eq!(p(r#"{"t":"x"}"#), None);
        assert_eq!(p(r#"{"t":null}"#), None);
        assert_eq!(p(r#"{"t":[[[1]]]}"#), None);
        assert_eq!(p(r#"{}"#), None);
        assert!(serde_json::from_str::<T>(r#"{"f":"true"}"#).unwrap().f);
        assert_eq!(to_unix_seconds(1_569_262_485_349), 1_569_262_485);
        assert_eq!(to_unix_seconds(1_749_416_383), 1_749_416_383);
        assert_eq!(label("Smb Message Echoes!"), "smb_message_echoes_");
        assert_eq!(label(""), "none");
    }

    #[derive(Deserialize)]
    struct S<'a> {
        #[serde(default, borrow, deserialize_with = "opt_str")]
        s: Option<Cow<'a, str>>,
    }

    #[test]
    fn opt_str_borrows_and_refuses_what_option_cow_refuses() {
        let s = |b: &'static str| serde_json::from_str::<S>(b).map(|t| t.s);
        assert!(matches!(
            s(r#"{"s":"plain"}"#),
            Ok(Some(Cow::Borrowed("plain")))
        ));
        assert!(matches!(s(r#"{"s":"a\"b"}"#), Ok(Some(Cow::Owned(ref v))) if v == "a\"b"));
        assert!(matches!(s(r#"{"s":null}"#), Ok(None)));
        assert!(matches!(s(r#"{}"#), Ok(None)));
        // As serde reads an `Option<Cow<str>>`: anything but a string or null is an error
        // (the item is then read leniently), never a silent None.
        for bad in [r#"{"s":5}"#, r#"{"s":true}"#, r#"{"s":[]}"#, r#"{"s":{}}"#] {
            assert!(s(bad).is_err(), "{bad} accepted");
            #[derive(Deserialize)]
            struct Plain {
                #[allow(dead_code)]
                s: Option<String>,
            }
            assert!(serde_json::from_str::<Plain>(bad).is_err());
        }
    }

    #[test]
    fn text_borrows_unless_escaped() {
        let body = r#"{"s":"plain"}"#;
        let t = serde_json::from_str::<T>(body).unwrap();
        assert!(matches!(t.s, Some(Cow::Borrowed("plain"))));
        let t = serde_json::from_str::<T>(r#"{"s":"a\"b"}"#).unwrap();
        assert!(matches!(t.s, Some(Cow::Owned(ref s)) if s == "a\"b"));
        let t = serde_json::from_str::<T>(r#"{"s":12345}"#).unwrap();
        assert_eq!(t.s.as_deref(), Some("12345"));
    }
}
