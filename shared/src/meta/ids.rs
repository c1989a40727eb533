//! Identifiers that only Meta webhooks carry. Each validates (and, for phone numbers,
//! normalises) on construction, so an id taken from a payload is never junk: no whitespace,
//! no control characters, bounded length.

use crate::ids::{digits, text_id};

/// Longest BSUID suffix Meta documents ("up to 128 alphanumeric characters").
const BSUID_MAX_SUFFIX: usize = 128;
/// Longest message id we accept; Meta's are ~60 (wamid) to ~200 (Instagram mid) characters.
const MESSAGE_ID_MAX: usize = 1024;

text_id!(
    /// A WhatsApp business-scoped user id (BSUID, from 2026): an ISO 3166 alpha-2 country
    /// code, a period, optionally `ENT.` (a parent BSUID), then up to 128 letters and digits,
    /// e.g. `US.13491208655302741918`. With usernames the phone may be absent, so this is the
    /// customer's identity within the business portfolio.
    WhatsAppUserId,
    "WhatsApp business-scoped user id",
    check = bsuid
);

/// `s` as a [`WhatsAppUserId`] holds it, if it is one.
fn bsuid(s: &str) -> Result<&str, String> {
    let bad = || "must look like US.13491208655302741918".to_string();
    let (country, rest) = s.split_once('.').ok_or_else(bad)?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let suffix = rest.strip_prefix("ENT.").unwrap_or(rest);
    if suffix.is_empty()
        || suffix.len() > BSUID_MAX_SUFFIX
        || !suffix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad());
    }
    Ok(s)
}

impl<S: crate::ids::Text> WhatsAppUserId<S> {
    /// True for a parent BSUID (`CC.ENT.…`), shared across enrolled business portfolios.
    pub fn is_parent(&self) -> bool {
        self.as_str().get(2..7) == Some(".ENT.")
    }
}

text_id!(
    /// A WhatsApp user's phone number (`wa_id`, `from`, `to`, `recipient_id`), normalised to
    /// digits only: Meta writes it with or without a leading `+` depending on the payload.
    WhatsAppPhone,
    "WhatsApp phone number",
    check = phone
);

/// `s` as a [`WhatsAppPhone`] holds it (without a leading `+`), if it is one.
fn phone(s: &str) -> Result<&str, String> {
    let d = s.strip_prefix('+').unwrap_or(s);
    digits(d, 6, 20)?;
    Ok(d)
}

/// What [`WhatsAppUserId::parse`] would hold for `s`, borrowed from `s`: two ids are the
/// same exactly when their keys are, so candidates are compared without copying them.
pub(crate) fn bsuid_key(s: &str) -> Option<&str> {
    bsuid(s).ok()
}

/// What [`WhatsAppPhone::parse`] would hold for `s`, borrowed from `s` (see [`bsuid_key`]).
pub(crate) fn phone_key(s: &str) -> Option<&str> {
    phone(s).ok()
}

text_id!(
    /// An Instagram-scoped user id (IGSID): the customer's id as one Instagram professional
    /// account sees it. Digits.
    InstagramUserId,
    "Instagram-scoped user id",
    check = |s| digits(s, 5, 24).map(|()| s)
);

text_id!(
    /// A Meta message id (WhatsApp `wamid.…`, Instagram `mid`). Opaque: printable ASCII
    /// without spaces, 1 to 1024 bytes.
    MessageId,
    "Meta message id",
    check = |s| {
        if s.is_empty() || s.len() > MESSAGE_ID_MAX {
            return Err(format!("must be 1 to {MESSAGE_ID_MAX} bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        Ok(s)
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_parse_holds() {
        for s in [
            "16505551234",
            "+16505551234",
            "++16505551234",
            "016505551234",
            "12345",
            "1650555123x",
            "",
            "US.13491208655302741918",
            "US.ENT.11815799212886844830",
            "us.123",
            "US.",
            "US.12#3",
        ] {
            assert_eq!(
                phone_key(s),
                WhatsAppPhone::parse(s)
                    .ok()
                    .as_ref()
                    .map(WhatsAppPhone::as_str),
                "{s:?}"
            );
            assert_eq!(
                bsuid_key(s),
                WhatsAppUserId::parse(s)
                    .ok()
                    .as_ref()
                    .map(WhatsAppUserId::as_str),
                "{s:?}"
            );
        }
    }

    #[test]
    fn bsuids_validate() {
        let id = WhatsAppUserId::parse("US.13491208655302741918").unwrap();
        assert!(!id.is_parent());
        let parent = WhatsAppUserId::parse("US.ENT.11815799212886844830").unwrap();
        assert!(parent.is_parent());
        assert!(WhatsAppUserId::parse(&format!("BR.{}", "a".repeat(128))).is_ok());
        for bad in [
            "",
            "US",
            "US.",
            "us.123",
            "USA.123",
            "US.12 3",
            "US.12#3",
            "US.ENT.",
            "16505551234",
            &format!("BR.{}", "a".repeat(129)),
        ] {
            assert!(WhatsAppUserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn phones_normalise_to_digits() {
        assert_eq!(
            WhatsAppPhone::parse("+16505551234").unwrap().as_str(),
            "16505551234"
        );
        assert_eq!(
            WhatsAppPhone::parse("16505551234").unwrap(),
            WhatsAppPhone::parse("+16505551234").unwrap()
        );
        for bad in [
            "",
            "+",
            "++16505551234",
            "0650555",
            "1650 5551234",
            "12345",
            "x1234567",
        ] {
            assert!(WhatsAppPhone::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Deserialising normalises too.
        let p: WhatsAppPhone = serde_json::from_str("\"+16505551234\"").unwrap();
        assert_eq!(p.as_str(), "16505551234");
    }

    #[test]
    fn message_ids_validate() {
        assert!(
            MessageId::parse("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=")
                .is_ok()
        );
        assert!(MessageId::parse("").is_err());
        assert!(MessageId::parse("a b").is_err());
        assert!(MessageId::parse("a\nb").is_err());
        assert!(MessageId::parse("é").is_err());
        assert!(MessageId::parse(&"a".repeat(1025)).is_err());
        assert!(InstagramUserId::parse("1254459154682919").is_ok());
        assert!(InstagramUserId::parse("IGSID").is_err());
    }
}
