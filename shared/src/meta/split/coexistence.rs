//! The Coexistence fields that are not messages: `history` (past chats, one event per
//! message and one progress event per chunk) and `smb_app_state_sync` (the business's app
//! contacts). Formats: see [`crate::meta::coexistence`].

use sha2::{Digest, Sha256};

use crate::ids::{BodyText, PhoneNumberId};
use crate::meta::coexistence as coex;
use crate::meta::event::{AccountRef, CustomerId, CustomerRef, EventKind, Party};
use crate::meta::ids::{WhatsAppPhone, WhatsAppUserId};
use crate::meta::item::Item;
use crate::meta::lenient::label;
use crate::meta::whatsapp as wa;

use super::whatsapp::wa_content;
use super::{event, message_id, non_empty, WebhookBatch};

/// Reads one `history` or `smb_app_state_sync` change.
pub(super) fn coexistence_change<'a, S: BodyText<'a>>(
    field: &str,
    value: Option<&Item<'a, Box<wa::ChangeValue<'a>>>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(value) = value.and_then(Item::ok) else {
        batch.ignored.add("whatsapp:malformed_change");
        return;
    };
    let account = value
        .metadata
        .as_ref()
        .and_then(|m| m.phone_number_id.as_ref())
        .and_then(PhoneNumberId::from_body);
    let Some(account) = account else {
        batch.ignored.add("whatsapp:missing_phone_number_id");
        return;
    };
    let account = AccountRef::WhatsApp(account);
    if field == "history" {
        for chunk in &value.history {
            history_chunk(&account, chunk, batch);
        }
    } else {
        for item in &value.state_sync {
            state_sync(&account, item, batch);
        }
    }
}

fn history_chunk<'a, S: BodyText<'a>>(
    account: &AccountRef<S>,
    chunk: &Item<'a, coex::HistoryChunk<'a>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(chunk) = chunk.ok() else {
        batch.ignored.add("whatsapp:malformed_history");
        return;
    };
    for thread in &chunk.threads {
        let Some(thread) = thread.ok() else {
            batch.ignored.add("whatsapp:malformed_history");
            continue;
        };
        let thread_phone = thread.id.as_ref().and_then(WhatsAppPhone::from_body);
        for m in &thread.messages {
            history_message(account, thread_phone.as_ref(), m, batch);
        }
    }
    let declined = chunk.errors.iter().any(|e| e.ok().is_some());
    let p = chunk.metadata.unwrap_or_default();
    let provider = S::from_string(format!(
        "wa:history:{}:{}:{}:{}",
        p.phase.unwrap_or(-1),
        p.chunk_order.unwrap_or(-1),
        p.progress.unwrap_or(-1),
        if declined { "declined" } else { "shared" }
    ));
    batch.events.push(event(
        account,
        provider,
        None,
        EventKind::HistoryProgress {
            phase: p.phase,
            chunk_order: p.chunk_order,
            progress: p.progress,
            declined,
        },
    ));
}

fn history_message<'a, S: BodyText<'a>>(
    account: &AccountRef<S>,
    thread_phone: Option<&WhatsAppPhone<S>>,
    item: &Item<'a, wa::Message<'a>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(m) = item.ok() else {
        batch.ignored.add("whatsapp:malformed_history_message");
        return;
    };
    let Some(id) = message_id::<S>(m.id.as_ref()) else {
        batch.ignored.add("whatsapp:malformed_history_message");
        return;
    };
    // Reactions, edits and revokes change other messages: the import posts messages only.
    if let Some(kind @ ("reaction" | "edit" | "revoke")) = m.kind.as_deref() {
        batch
            .ignored
            .add(format!("whatsapp:history_message:{}", label(kind)));
        return;
    }
    let from = m.from.as_ref().and_then(WhatsAppPhone::from_body);
    // Meta's reference: `to` is present only on the business's own messages; `from` is
    // then the business's number, not the thread's.
    let by_business = m.to.is_some() || (from.is_some() && from.as_ref() != thread_phone);
    let (phone, user_id) = if by_business {
        (
            m.to.as_ref()
                .and_then(WhatsAppPhone::from_body)
                .or_else(|| thread_phone.cloned()),
            m.to_user_id.as_ref(),
        )
    } else {
        (
            from.or_else(|| thread_phone.cloned()),
            m.from_user_id.as_ref(),
        )
    };
    let user_id = user_id.and_then(WhatsAppUserId::from_body);
    let id_of = match (&user_id, &phone) {
        (Some(u), _) => CustomerId::WhatsAppUser(u.clone()),
        (None, Some(p)) => CustomerId::WhatsAppPhone(p.clone()),
        (None, None) => {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        }
    };
    let mut customer = CustomerRef::new(id_of);
    customer.phone = phone;
    let kind = EventKind::HistoryMessage {
        customer,
        message_id: id.clone(),
        content: wa_content(m, &m.errors),
        by: if by_business {
            Party::Business
        } else {
            Party::Customer
        },
    };
    batch.events.push(event(
        account,
        S::from_string(format!("wa:hist:{id}")),
        m.timestamp,
        kind,
    ));
}

fn state_sync<'a, S: BodyText<'a>>(
    account: &AccountRef<S>,
    item: &Item<'a, coex::StateSync<'a>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(s) = item.ok() else {
        batch.ignored.add("whatsapp:malformed_state_sync");
        return;
    };
    let kind = s.kind.as_deref().unwrap_or_default();
    if kind != "contact" {
        batch
            .ignored
            .add(format!("whatsapp:state_sync:{}", label(kind)));
        return;
    }
    let contact = s.contact.as_ref();
    let Some(phone) = contact
        .and_then(|c| c.phone_number.as_ref())
        .and_then(WhatsAppPhone::from_body)
    else {
        batch.ignored.add("whatsapp:malformed_state_sync");
        return;
    };
    let action = s.action.as_deref().unwrap_or_default();
    let name = match action {
        "add" => {
            let c = contact.expect("checked above");
            let Some(name) = non_empty::<S>(&c.full_name).or_else(|| non_empty(&c.first_name))
            else {
                batch.ignored.add("whatsapp:malformed_state_sync");
                return;
            };
            Some(name)
        }
        "remove" => None,
        other => {
            batch
                .ignored
                .add(format!("whatsapp:state_sync_action:{}", label(other)));
            return;
        }
    };
    let at = s.metadata.and_then(|m| m.timestamp);
    // Meta gives no id: the change itself is the key, so a redelivery dedupes and a later
    // edit does not. Digested: the phone and the name stay out of the key.
    let mut digest = Sha256::new();
    for part in [
        phone.as_str(),
        action,
        name.as_ref().map_or("", AsRef::as_ref),
        &at.unwrap_or_default().to_string(),
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let provider = S::from_string(format!(
        "wa:contact:{}",
        hex::encode(&digest.finalize()[..16])
    ));
    let mut customer = CustomerRef::new(CustomerId::WhatsAppPhone(phone.clone()));
    customer.phone = Some(phone);
    batch.events.push(event(
        account,
        provider,
        at,
        EventKind::ContactSync { customer, name },
    ));
}
