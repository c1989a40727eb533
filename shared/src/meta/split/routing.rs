//! WhatsApp Conversation Routing → events (decision 0065): what Meta's Business Agent (or
//! another responder) does in a conversation it holds reaches us on `standby`, and who holds
//! it changes on `messaging_handovers` (models and references: `crate::meta::routing`).
//!
//! - A standby customer message becomes a customer message, exactly as on `messages` (same
//!   provider id `wa:msg:<wamid>`, so a copy seen on both fields is one message), preceded
//!   by a `Handover` `standby` event (`wa:standby:<wamid>`): the conversation is held by
//!   another responder, which the inbound worker records (and tells the operators when that
//!   changed). Meta sends no handover notification when its routing gives an idle
//!   conversation to the agent, so this is how we learn it.
//! - A standby echo (the holder's reply) becomes a business echo (`wa:echo:<wamid>`), as a
//!   Coexistence echo (decision 0052): shown in Bitrix24 as sent by the business, never
//!   sent again.
//! - Standby statuses are the holder's (counted, not relayed).
//! - `control_passed` (to us: we are the new owner) and `control_taken` (to us: we held it
//!   and the escalation partner took it) become `Handover` events with `ours` set, keyed
//!   `wa:handover:<type>:<customer>:<timestamp>` so that Meta's redeliveries dedupe.

use crate::ids::{BodyText, PhoneNumberId};
use crate::meta::event::{AccountRef, EventKind, Party};
use crate::meta::item::Item;
use crate::meta::lenient::{event_text, label};
use crate::meta::routing::{HandoverControl, StandbyEcho};
use crate::meta::whatsapp as wa;

use super::whatsapp::{wa_content, wa_reply_to, WaChange};
use super::{event, message_id, WebhookBatch};

pub(super) fn routing_change<'a, S: BodyText<'a>>(
    field: &str,
    value: Option<&Item<'a, Box<wa::ChangeValue<'a>>>>,
    batch: &mut WebhookBatch<S>,
) {
    let reason = if field == "standby" {
        "whatsapp:malformed_standby"
    } else {
        "whatsapp:malformed_handover"
    };
    let Some(value) = value.and_then(Item::ok) else {
        batch.ignored.add(reason);
        return;
    };
    let metadata = if field == "standby" {
        value.metadata.as_ref()
    } else {
        value.recipient.as_deref()
    };
    let account = metadata
        .and_then(|m| m.phone_number_id.as_ref())
        .and_then(PhoneNumberId::from_body);
    let Some(account) = account else {
        batch.ignored.add("whatsapp:missing_phone_number_id");
        return;
    };
    let account = AccountRef::WhatsApp(account);
    if field == "standby" {
        standby(account, value, batch);
    } else {
        handover(account, value, batch);
    }
}

fn standby<'a, S: BodyText<'a>>(
    account: AccountRef<S>,
    value: &wa::ChangeValue<'a>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(standby) = value.standby.as_ref() else {
        batch.ignored.add("whatsapp:malformed_standby");
        return;
    };
    let ctx = WaChange {
        account,
        contacts: &standby.contacts,
    };
    for m in &standby.messages {
        if let Some(msg) = m.ok() {
            let customer = ctx.customer(
                msg.from_user_id.as_ref(),
                msg.from.as_ref(),
                msg.from_parent_user_id.as_ref(),
            );
            if let (Some(customer), Some(id), None) =
                (customer, message_id::<S>(msg.id.as_ref()), &msg.group_id)
            {
                let kind = EventKind::Handover {
                    customer,
                    action: S::from_string("standby".into()),
                    new_owner_app_id: None,
                    previous_owner_app_id: None,
                    ours: Some(false),
                };
                batch.events.push(event(
                    &ctx.account,
                    S::from_string(format!("wa:standby:{id}")),
                    msg.timestamp,
                    kind,
                ));
            }
        }
        ctx.message(m, batch);
    }
    for e in &standby.message_echoes {
        echo(&ctx, e, batch);
    }
    if !standby.statuses.is_empty() {
        let n = u32::try_from(standby.statuses.len()).unwrap_or(u32::MAX);
        batch.ignored.add_n("whatsapp:standby_status", n);
    }
}

/// The holder's reply, read from the Send API body it sent.
fn echo<'a, S: BodyText<'a>>(
    ctx: &WaChange<'_, 'a, S>,
    item: &Item<'a, StandbyEcho<'a>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some((echo, body)) = item.ok().and_then(|e| Some((e, e.message.as_deref()?))) else {
        batch.ignored.add("whatsapp:malformed_echo");
        return;
    };
    let Some(id) = message_id::<S>(echo.id.as_ref()) else {
        batch.ignored.add("whatsapp:malformed_echo");
        return;
    };
    let Some(customer) = ctx.customer(body.recipient.as_ref(), body.to.as_ref(), None) else {
        batch.ignored.add("whatsapp:unidentified_customer");
        return;
    };
    // Reactions the holder sends are effects on a message, as for Coexistence echoes.
    let kind = match body.kind.as_deref() {
        Some("reaction") => body.reaction.as_ref().and_then(|r| {
            Some(EventKind::Reaction {
                customer: customer.clone(),
                message_id: message_id(r.message_id.as_ref())?,
                emoji: r
                    .emoji
                    .as_ref()
                    .filter(|e| !e.trim().is_empty())
                    .map(|e| S::from_cow(e.clone())),
                by: Party::Business,
            })
        }),
        _ => None,
    };
    let kind = kind.unwrap_or_else(|| EventKind::BusinessEcho {
        customer,
        message_id: id.clone(),
        content: wa_content(body, &[]),
        reply_to: wa_reply_to(body.context.as_deref()),
        app_id: None,
        from_agent: true,
    });
    batch.events.push(event(
        &ctx.account,
        S::from_string(format!("wa:echo:{id}")),
        echo.timestamp,
        kind,
    ));
}

fn handover<'a, S: BodyText<'a>>(
    account: AccountRef<S>,
    value: &wa::ChangeValue<'a>,
    batch: &mut WebhookBatch<S>,
) {
    let notification = value.kind.as_deref().unwrap_or_default();
    let (ours, control): (bool, Option<&HandoverControl<'_>>) = match notification {
        "control_passed" => (true, value.control_passed.as_deref()),
        "control_taken" => (false, value.control_taken.as_deref()),
        other => {
            batch
                .ignored
                .add(format!("whatsapp:handover:{}", label(other)));
            return;
        }
    };
    let ctx = WaChange {
        account,
        contacts: &[],
    };
    let phone = value.sender.as_ref().and_then(|s| s.phone_number.as_ref());
    let Some(customer) = ctx.customer(None, phone, None) else {
        batch.ignored.add("whatsapp:handover_without_customer");
        return;
    };
    let provider = S::from_string(format!(
        "wa:handover:{notification}:{}:{}",
        customer.id.as_str(),
        value.timestamp.unwrap_or_default()
    ));
    let kind = EventKind::Handover {
        customer,
        action: S::from_string(notification.to_owned()),
        new_owner_app_id: control.and_then(|c| event_text(&c.new_owner_app_id)),
        previous_owner_app_id: control.and_then(|c| event_text(&c.previous_owner_app_id)),
        ours: Some(ours),
    };
    batch
        .events
        .push(event(&ctx.account, provider, value.timestamp, kind));
}
