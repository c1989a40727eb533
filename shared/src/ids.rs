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

        impl ::std::str::FromStr for $name {
            type Err = $crate::ids::InvalidId;
            fn from_str(s: &str) -> Result<Self, $crate::ids::InvalidId> {
                $name::parse(s)
            }
        }
    };
}
pub(crate) use string_id;

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

string_id!(
    /// A WhatsApp Cloud API phone number id (`metadata.phone_number_id`): digits.
    PhoneNumberId,
    "WhatsApp phone_number_id",
    |s| digits(s, 5, 20)
);

string_id!(
    /// A WhatsApp Business Account id: digits.
    WabaId,
    "WhatsApp Business Account id",
    |s| digits(s, 5, 20)
);

string_id!(
    /// An Instagram professional account id (the webhook's `entry[].id`): digits.
    InstagramAccountId,
    "Instagram account id",
    |s| digits(s, 5, 20)
);

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
