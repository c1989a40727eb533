//! The Bitrix24 side of a conversation as the sync worker writes it: the customer as a
//! Bitrix24 user (never a phone number as the id), the chat's name, notes, and the failure
//! classes its metrics name.

use crate::bitrix::{CrmChat, CrmUser, OutgoingCrmMessage};
use crate::conversation::ConversationMeta;
use crate::meta::{AccountRef, Content, Media};
use crate::tenant::ChannelKind;

/// A note in the chat (a reaction, a failed delivery), with an id stable per effect so a
/// redelivery is recognised.
pub(super) fn note_message(
    meta: &ConversationMeta,
    effect: &str,
    note: String,
) -> OutgoingCrmMessage {
    OutgoingCrmMessage {
        user: crm_user(meta),
        chat: CrmChat {
            id: meta.id.as_str().to_owned(),
            name: Some(chat_name(meta)),
            url: None,
        },
        message_id: format!("note.{}", &effect[..32.min(effect.len())]),
        date: crate::clock::now_secs(),
        text: Some(note),
        files: Vec::new(),
        disable_crm: true,
    }
}

pub(super) fn media_of(content: &Content) -> Vec<&Media> {
    match content {
        Content::Media(m) => vec![m],
        Content::Multiple { parts } => parts.iter().flat_map(media_of).collect(),
        _ => Vec::new(),
    }
}

/// The customer's stable external user id in Bitrix24: the conversation id (one customer on
/// one account), never a phone number.
pub(super) fn crm_user_id(meta: &ConversationMeta) -> String {
    format!("u_{}", &meta.id.as_str()[2..])
}

pub(super) fn crm_user(meta: &ConversationMeta) -> CrmUser {
    let (name, last_name) = match meta.customer.name.as_deref().map(str::trim) {
        Some(full) if !full.is_empty() => match full.split_once(' ') {
            Some((first, rest)) => (Some(first.to_owned()), Some(rest.trim().to_owned())),
            None => (Some(full.to_owned()), None),
        },
        _ => (
            meta.customer
                .username
                .clone()
                .or_else(|| Some(channel_label(&meta.account).to_owned())),
            None,
        ),
    };
    // A customer known only by a WhatsApp BSUID or username has no phone: none is sent
    // (never the BSUID in its place).
    let digits = meta
        .customer
        .phone
        .as_ref()
        .map(|p| p.as_str().trim_start_matches('+').to_owned());
    CrmUser {
        id: crm_user_id(meta),
        name,
        last_name,
        skip_phone_validate: digits.as_deref().is_some_and(|d| !e164_plausible(d)),
        phone: digits.map(|d| format!("+{d}")),
        ..CrmUser::default()
    }
}

/// Whether Bitrix24's phone validation can accept `digits` as an international number: E.164
/// allows at most 15 digits and no country code begins with 0. Meta's `wa_id` is the number
/// WhatsApp registered, which may fall outside that; such a phone is sent with
/// `skip_phone_validate: "Y"` (`imconnector.send.messages`, user fields) rather than dropped.
fn e164_plausible(digits: &str) -> bool {
    (8..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn channel_label(account: &AccountRef) -> &'static str {
    match account.channel() {
        ChannelKind::Instagram => "Instagram",
        _ => "WhatsApp",
    }
}

pub(super) fn chat_name(meta: &ConversationMeta) -> String {
    let who = meta
        .customer
        .name
        .clone()
        .or_else(|| meta.customer.username.clone())
        .or_else(|| meta.customer.phone.as_ref().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| "customer".into());
    format!("{}: {who}", channel_label(&meta.account))
}

pub(super) fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// A failure's class as a metric dimension: the Bitrix24 error kinds and ours, a fixed set.
pub(super) fn failure_class(kind: &str) -> &'static str {
    const KNOWN: [&str; 10] = [
        "expired_token",
        "unauthorized",
        "rate_limited",
        "unavailable",
        "rejected",
        "invalid_request",
        "protocol",
        "token_store",
        "not_connected",
        "internal",
    ];
    KNOWN.into_iter().find(|k| *k == kind).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::ConversationId;
    use crate::ids::PhoneNumberId;
    use crate::meta::{CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};

    fn meta(customer: CustomerRef) -> ConversationMeta {
        ConversationMeta {
            id: ConversationId::parse("c_0123456789abcdef0123456789abcdef").unwrap(),
            account: AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap()),
            customer,
            created_at: 0,
            created_at_ms: 0,
            last_inbound_at: None,
            crm_chat_id: None,
            former_ids: Vec::new(),
        }
    }

    #[test]
    fn the_customer_goes_to_bitrix24_without_a_phone_when_there_is_none() {
        let bsuid = WhatsAppUserId::parse("US.13491208655302741918").unwrap();
        let mut c = CustomerRef::new(CustomerId::WhatsAppUser(bsuid));
        c.username = Some("@sheena".into());
        let user = crm_user(&meta(c.clone()));
        assert_eq!(user.phone, None);
        assert!(!user.skip_phone_validate);
        assert_eq!(user.name.as_deref(), Some("@sheena"));

        c.phone = Some(WhatsAppPhone::parse("16505551234").unwrap());
        let user = crm_user(&meta(c.clone()));
        assert_eq!(user.phone.as_deref(), Some("+16505551234"));
        assert!(!user.skip_phone_validate);

        // Longer than E.164 allows: kept, and Bitrix24 told not to validate it.
        c.phone = Some(WhatsAppPhone::parse("1650555123400001").unwrap());
        let user = crm_user(&meta(c));
        assert_eq!(user.phone.as_deref(), Some("+1650555123400001"));
        assert!(user.skip_phone_validate);
    }
}
