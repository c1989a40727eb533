//! Typed identifiers. Each validates on construction, so a value of one of these types is
//! always well-formed: it cannot carry a key separator (`#`), whitespace, or another tenant's
//! prefix, and lookups by it are exact.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was rejected. The message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: String,
}

/// `TryFrom<String>` (through `parse`) and `From<Name> for String`: the conversions serde's
/// `try_from`/`into` and the stores use, the same for [`string_id!`] and [`text_id!`].
macro_rules! owned_string_conversions {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = $crate::ids::InvalidId;
            fn try_from(s: String) -> Result<Self, $crate::ids::InvalidId> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}
pub(crate) use owned_string_conversions;

/// `FromStr` through `parse`, for the ids whose text is kept exactly as given.
macro_rules! from_str_by_parse {
    ($name:ident) => {
        impl ::std::str::FromStr for $name {
            type Err = $crate::ids::InvalidId;
            fn from_str(s: &str) -> Result<Self, $crate::ids::InvalidId> {
                $name::parse(s)
            }
        }
    };
}
pub(crate) use from_str_by_parse;

/// Defines a typed string identifier: a newtype over `String` built only through `parse`
/// (also `TryFrom<String>` and serde's `Deserialize`), with `KIND`, `as_str`, `Display` (the
/// value), `Debug` (`Name(value)`), `Serialize` and `From<Name> for String`. A rejected value
/// is an [`InvalidId`] of `KIND` with the rule's reason.
///
/// - `string_id!(Name, "kind", |s| -> Result<(), String>)`: a check; the value is kept exactly
///   as given. Such a type also implements `FromStr`.
/// - `string_id!(Name, "kind", normalize = |s| -> Result<String, String>)`: the value kept is
///   the one the function returns (e.g. a phone number without its `+`). No `FromStr`.
///
/// Used here and by the Meta identifiers (`meta::ids`).
macro_rules! string_id {
    (@type $(#[$meta:meta])* $name:ident, $kind:literal, $normalize:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const KIND: &'static str = $kind;

            pub fn parse(s: &str) -> Result<Self, $crate::ids::InvalidId> {
                let normalize: fn(&str) -> Result<String, String> = $normalize;
                normalize(s)
                    .map($name)
                    .map_err(|reason| $crate::ids::InvalidId { kind: $kind, reason })
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        $crate::ids::owned_string_conversions!($name);

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, $kind:literal, normalize = $normalize:expr) => {
        $crate::ids::string_id!(@type $(#[$meta])* $name, $kind, $normalize);
    };
    ($(#[$meta:meta])* $name:ident, $kind:literal, $validate:expr) => {
        $crate::ids::string_id!(@type $(#[$meta])* $name, $kind, |s| {
            let check: fn(&str) -> Result<(), String> = $validate;
            check(s).map(|()| s.to_owned())
        });

        $crate::ids::from_str_by_parse!($name);
    };
}
pub(crate) use string_id;

/// The text of an id or an event's string: owned (`String`, what a queue job reads back as),
/// or borrowed from the webhook body it was read from (`Cow<str>`, what the intake seals
/// without copying; decision 0103). Both serialise as the same JSON string.
pub trait Text:
    AsRef<str> + Clone + Default + fmt::Debug + PartialEq + Eq + std::hash::Hash + Serialize
{
    /// Built text (a joined provider id, a label).
    fn from_string(s: String) -> Self;
}

impl Text for String {
    fn from_string(s: String) -> Self {
        s
    }
}

impl Text for std::borrow::Cow<'_, str> {
    fn from_string(s: String) -> Self {
        std::borrow::Cow::Owned(s)
    }
}

/// A [`Text`] made from a string of a body that lives `'a`: the owned text copies it, the
/// borrowed one keeps the reference.
pub trait BodyText<'a>: Text {
    fn from_cow(s: std::borrow::Cow<'a, str>) -> Self;

    /// The text of `s` that `check` keeps (a sub-slice of it: a phone without its `+`),
    /// borrowed when `s` is.
    // A `&Cow`, not a `&str`: whether `s` borrows from the body decides what is kept.
    #[allow(clippy::ptr_arg)]
    fn checked<E>(
        s: &std::borrow::Cow<'a, str>,
        check: impl Fn(&str) -> Result<&str, E>,
    ) -> Result<Self, E> {
        use std::borrow::Cow;
        match s {
            Cow::Borrowed(b) => check(b).map(|v| Self::from_cow(Cow::Borrowed(v))),
            Cow::Owned(o) => check(o).map(|v| Self::from_string(v.to_owned())),
        }
    }
}

impl<'a> BodyText<'a> for String {
    fn from_cow(s: std::borrow::Cow<'a, str>) -> Self {
        s.into_owned()
    }
}

impl<'a> BodyText<'a> for std::borrow::Cow<'a, str> {
    fn from_cow(s: std::borrow::Cow<'a, str>) -> Self {
        s
    }
}

/// As [`string_id!`], for the ids a webhook event carries: the type is generic over its
/// [`Text`] (`Name<S = String>`, so `Name` alone is the owned id every other module knows),
/// and the split builds it borrowed from the body with `from_body`, validated by the same
/// check `parse` runs. `check` returns the part of its input the id keeps. `Serialize`
/// writes the text as a string, as the owned id always did; `Deserialize` reads an owned
/// string and validates it.
macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, check = $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name<S = String>(S);

        impl $name {
            pub const KIND: &'static str = $kind;

            pub fn parse(s: &str) -> Result<Self, $crate::ids::InvalidId> {
                Self::check(s).map(|v| $name(v.to_owned()))
            }

            /// The same id held as another [`Text`] (an owned event's id in a borrowed
            /// batch).
            pub fn into_text<T: $crate::ids::Text>(self) -> $name<T> {
                $name(T::from_string(self.0))
            }
        }

        impl<S> $name<S> {
            fn check(s: &str) -> Result<&str, $crate::ids::InvalidId> {
                let check: fn(&str) -> Result<&str, String> = $check;
                check(s).map_err(|reason| $crate::ids::InvalidId { kind: $kind, reason })
            }
        }

        impl<S: $crate::ids::Text> $name<S> {
            pub fn as_str(&self) -> &str {
                self.0.as_ref()
            }

            /// The id read from a body's string, borrowed from it when `S` borrows; None
            /// when `parse` would refuse it.
            #[allow(clippy::ptr_arg)] // a `&Cow`: whether it borrows decides what is kept
            pub(crate) fn from_body<'a>(s: &::std::borrow::Cow<'a, str>) -> Option<Self>
            where
                S: $crate::ids::BodyText<'a>,
            {
                S::checked(s, Self::check).ok().map($name)
            }

            /// The owned id.
            pub fn to_owned_id(&self) -> $name {
                $name(self.as_str().to_owned())
            }
        }

        $crate::ids::owned_string_conversions!($name);

        impl<S: $crate::ids::Text> ::serde::Serialize for $name<S> {
            fn serialize<Z: ::serde::Serializer>(&self, z: Z) -> Result<Z::Ok, Z::Error> {
                z.serialize_str(self.as_str())
            }
        }

        impl<'de, S: $crate::ids::Text> ::serde::Deserialize<'de> for $name<S> {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let v = Self::check(&s).map_err(<D::Error as ::serde::de::Error>::custom)?;
                Ok($name(S::from_string(v.to_owned())))
            }
        }

        impl<S: $crate::ids::Text> ::std::fmt::Display for $name<S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<S: $crate::ids::Text> ::std::fmt::Debug for $name<S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }
    };
}
pub(crate) use text_id;

/// `s` is `min` to `max` ASCII digits, not starting with 0.
pub(crate) fn digits(s: &str, min: usize, max: usize) -> Result<(), String> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("must be {min} to {max} digits"));
    }
    if s.starts_with('0') {
        return Err("must not start with 0".into());
    }
    Ok(())
}

/// Prefix of every tenant id.
pub const TENANT_ID_PREFIX: &str = "tn_";
const TENANT_ID_HEX_LEN: usize = 24;

string_id!(
    /// A tenant: `tn_` followed by 24 lowercase hex digits (96 random bits).
    TenantId,
    "tenant id",
    |s| {
        let hex = s
            .strip_prefix(TENANT_ID_PREFIX)
            .ok_or_else(|| format!("must start with {TENANT_ID_PREFIX:?}"))?;
        if hex.len() != TENANT_ID_HEX_LEN
            || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "must be {TENANT_ID_PREFIX:?} followed by {TENANT_ID_HEX_LEN} lowercase hex digits"
            ));
        }
        Ok(())
    }
);

/// Separator between the parts of a table key.
pub const KEY_SEP: char = '#';

impl TenantId {
    /// The tenant's root partition key, `T#<id>`. Every partition key of tenant data is this
    /// or starts with it followed by `#`.
    pub fn partition(&self) -> String {
        format!("T#{}", self.0)
    }

    /// A sub-partition of the tenant, `T#<id>#<suffix>`.
    pub fn sub_partition(&self, suffix: &str) -> String {
        format!("T#{}#{suffix}", self.0)
    }

    /// True when `pk` is this tenant's partition or one of its sub-partitions (exact
    /// prefix match on the separator, so `tn_a` never matches `tn_ab`).
    pub fn owns_partition(&self, pk: &str) -> bool {
        match pk
            .strip_prefix("T#")
            .and_then(|r| r.strip_prefix(self.0.as_str()))
        {
            Some("") => true,
            Some(rest) => rest.starts_with(KEY_SEP),
            None => false,
        }
    }

    /// A new random tenant id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TENANT_ID_HEX_LEN / 2];
        aws_lc_rs::rand::fill(&mut bytes).expect("system random source");
        TenantId(format!("{TENANT_ID_PREFIX}{}", hex::encode(bytes)))
    }
}

text_id!(
    /// A WhatsApp Cloud API phone number id (`metadata.phone_number_id`): digits.
    PhoneNumberId,
    "WhatsApp phone_number_id",
    check = |s| digits(s, 5, 20).map(|()| s)
);

from_str_by_parse!(PhoneNumberId);

string_id!(
    /// A WhatsApp Business Account id: digits.
    WabaId,
    "WhatsApp Business Account id",
    |s| digits(s, 5, 20)
);

text_id!(
    /// An Instagram professional account id (the webhook's `entry[].id`): digits.
    InstagramAccountId,
    "Instagram account id",
    check = |s| digits(s, 5, 20).map(|()| s)
);

from_str_by_parse!(InstagramAccountId);

string_id!(
    /// A Meta app id (App Dashboard > App settings > Basic): digits.
    MetaAppId,
    "Meta app id",
    |s| digits(s, 1, 24)
);

string_id!(
    /// A Meta (Facebook) user id, app-scoped: digits.
    MetaUserId,
    "Meta user id",
    |s| digits(s, 1, 24)
);

string_id!(
    /// A Bitrix24 portal's `member_id`: 8-64 ASCII letters and digits (32 hex in practice).
    BitrixMemberId,
    "Bitrix24 member_id",
    |s| {
        if s.len() < 8 || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("must be 8 to 64 ASCII letters and digits".into());
        }
        Ok(())
    }
);

string_id!(
    /// A Bitrix24 portal's host name, e.g. `example.bitrix24.com` (no scheme, no path).
    BitrixDomain,
    "Bitrix24 domain",
    |s| {
        let ok_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let host = match s.rsplit_once(':') {
            Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => s,
        };
        if s.len() > 253 || !host.contains('.') && host != "localhost" {
            return Err("must be a host name like example.bitrix24.com".into());
        }
        if !host.split('.').all(ok_label) {
            return Err("must be a host name like example.bitrix24.com".into());
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("must be lower case".into());
        }
        Ok(())
    }
);

/// The kinds of channel a tenant connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    #[serde(rename = "whatsapp")]
    WhatsApp,
    Instagram,
    Bitrix24,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [
        ChannelKind::WhatsApp,
        ChannelKind::Instagram,
        ChannelKind::Bitrix24,
    ];

    /// Short code used inside table keys.
    pub fn code(self) -> &'static str {
        match self {
            ChannelKind::WhatsApp => "wa",
            ChannelKind::Instagram => "ig",
            ChannelKind::Bitrix24 => "b24",
        }
    }

    /// Name used in URLs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::WhatsApp => "whatsapp",
            ChannelKind::Instagram => "instagram",
            ChannelKind::Bitrix24 => "bitrix24",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind a table-key code names.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_validate() {
        let t = TenantId::generate();
        assert_eq!(TenantId::parse(t.as_str()).unwrap(), t);
        for bad in [
            "",
            "tn_",
            "tn_0123456789abcdef0123456",
            "tn_0123456789abcdef012345678",
            "tn_0123456789ABCDEF01234567",
            "xx_0123456789abcdef01234567",
            "tn_0123456789abcdef0123456#",
            "tn_0123456789abcdef01234567#T",
            " tn_0123456789abcdef01234567",
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(TenantId::parse("tn_0123456789abcdef01234567").is_ok());
    }

    #[test]
    fn partitions_match_exactly() {
        let t = TenantId::parse("tn_0123456789abcdef01234567").unwrap();
        assert!(t.owns_partition(&t.partition()));
        assert!(t.owns_partition(&t.sub_partition("CONV#1")));
        assert!(!t.owns_partition("T#tn_0123456789abcdef012345678"));
        assert!(!t.owns_partition("T#tn_0123456789abcdef0123456"));
        assert!(!t.owns_partition("X#tn_0123456789abcdef01234567"));
        assert!(!t.owns_partition("tn_0123456789abcdef01234567"));
    }

    #[test]
    fn channel_ids_validate() {
        assert!(PhoneNumberId::parse("106540352242922").is_ok());
        for bad in [
            "",
            "12a4567",
            "0123456",
            "1234",
            "106540352242922 ",
            "1#23456",
        ] {
            assert!(PhoneNumberId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(InstagramAccountId::parse("17841405822304914").is_ok());
        assert!(BitrixMemberId::parse("a223c6b3710f85df22e9377d6c4f7553").is_ok());
        assert!(BitrixMemberId::parse("a223c6b3#710f85df").is_err());
        assert!(BitrixDomain::parse("example.bitrix24.com").is_ok());
        assert!(BitrixDomain::parse("127.0.0.1:8099").is_ok());
        assert!(BitrixDomain::parse("https://example.bitrix24.com").is_err());
        assert!(BitrixDomain::parse("example.bitrix24.com/rest").is_err());
        assert!(BitrixDomain::parse("Example.bitrix24.com").is_err());
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        let ok: Result<PhoneNumberId, _> = serde_json::from_str("\"106540352242922\"");
        assert!(ok.is_ok());
        let bad: Result<PhoneNumberId, _> = serde_json::from_str("\"x\"");
        assert!(bad.is_err());
    }
}
