//! The Bitrix24 side of a conversation as the sync worker writes it: the customer as a
//! Bitrix24 user (never a phone number as the id), the chat's name, notes, and the failure
//! classes its metrics name.

use crate::bitrix::{CrmChat, CrmUser, OutgoingCrmMessage};
use crate::conversation::{ConversationMeta, Conversations, StoredMessage};
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
    // The channel's profile (Instagram) names the customer when the webhook does not.
    let profile = meta.profile.as_ref();
    let full_name = meta
        .customer
        .name
        .as_deref()
        .or_else(|| profile.and_then(|p| p.name.as_deref()));
    let username = meta
        .customer
        .username
        .clone()
        .or_else(|| profile.and_then(|p| p.username.clone()));
    let (name, last_name) = match full_name.map(str::trim) {
        Some(full) if !full.is_empty() => match full.split_once(' ') {
            Some((first, rest)) => (Some(first.to_owned()), Some(rest.trim().to_owned())),
            None => (Some(full.to_owned()), None),
        },
        _ => (
            username
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
    let instagram = meta.account.channel() == ChannelKind::Instagram;
    CrmUser {
        id: crm_user_id(meta),
        name,
        last_name,
        picture_url: profile.and_then(|p| p.picture_url.clone()),
        // The username, which Bitrix24's name fields cannot hold (digits, dots), as the
        // profile link.
        profile_url: username
            .filter(|u| {
                instagram
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            })
            .map(|u| format!("https://www.instagram.com/{u}")),
        skip_phone_validate: digits.as_deref().is_some_and(|d| !e164_plausible(d)),
        phone: digits.map(|d| format!("+{d}")),
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
    let profile = meta.profile.as_ref();
    let who = meta
        .customer
        .name
        .clone()
        .or_else(|| meta.customer.username.clone())
        .or_else(|| profile.and_then(|p| p.username.as_ref().map(|u| format!("@{u}"))))
        .or_else(|| profile.and_then(|p| p.name.clone()))
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
    const KNOWN: [&str; 11] = [
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
        // A staged operation that killed its flushers (decision 0091).
        crate::crm_sync::outbox::KILLED_ITS_WORKER,
    ];
    KNOWN.into_iter().find(|k| *k == kind).unwrap_or("other")
}

/// `text` under Bitrix24's quote of the message it answers: `who`, when (UTC) and an excerpt
/// of what it said (`bitrix::quote`).
pub(super) fn quoted_reply(who: &str, at_ms: i64, quoted: &str, text: &str) -> String {
    let secs = at_ms.div_euclid(1000);
    let (y, m, d) = crate::clock::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let when = format!(
        "{d:02}.{m:02}.{y} {:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    );
    let quoted: String = quoted.chars().take(200).collect();
    crate::bitrix::quote::quote_block(who, &when, &quoted, text)
}

/// Who wrote a quoted message, as the operator knows them.
pub(super) fn author_of(meta: &ConversationMeta, origin: crate::conversation::Origin) -> String {
    use crate::conversation::Origin;
    match origin {
        Origin::Customer => meta
            .customer
            .name
            .clone()
            .or_else(|| meta.customer.username.clone())
            .unwrap_or_else(|| channel_label(&meta.account).to_owned()),
        Origin::Operator => "Operator".to_owned(),
        _ => "Business".to_owned(),
    }
}

/// A reply's text under Bitrix24's quote of the message it answers (issue 16 item 11):
/// the quoted message is found by the provider's id (a customer's wamid or mid, or the id
/// Meta gave an operator message we sent). None when the message answers nothing or
/// something we do not have: it is relayed without a quote.
pub(super) async fn reply_quote(
    conversations: &Conversations,
    meta: &ConversationMeta,
    message: &StoredMessage,
) -> Option<String> {
    let quoted_id = message.reply_to.as_deref()?;
    let quoted = match conversations.find_message(&meta.account, quoted_id).await {
        Ok(Some(at)) => conversations.message(&at).await,
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let quoted = match quoted {
        Ok(Some(q)) => q,
        Ok(None) => {
            tracing::info!("reply to a message we do not have: relayed without a quote");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "quoted message unreadable: relayed without a quote");
            return None;
        }
    };
    let said = quoted
        .content
        .as_ref()
        .map(Content::text_for_crm)
        .unwrap_or_else(|| "[message deleted]".into());
    let text = message
        .content
        .as_ref()
        .map(Content::text_for_crm)
        .unwrap_or_default();
    Some(quoted_reply(
        &author_of(meta, quoted.origin),
        quoted.at_ms,
        &said,
        &text,
    ))
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
            profile: None,
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
