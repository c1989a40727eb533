//! WhatsApp Business Account events: the account and its numbers rather than a message.
//!
//! Meta sends them on the WABA (`entry[].id`), not on a phone number, so they carry no
//! `metadata.phone_number_id`: the split returns them apart ([`WabaUpdate`], in
//! `WebhookBatch::account_updates`) and the intake turns each into one event per connected
//! number of that WABA (the number a change names by `display_phone_number`, when it names
//! one). Shapes as Meta's "Webhooks reference" pages document them (WhatsApp Business
//! Platform, updated 2026):
//!
//! - `account_update` (`value.event`): `ACCOUNT_RESTRICTION` with `restriction_info[]`
//!   (`restriction_type`: `RESTRICTED_ADD_PHONE_NUMBER_ACTION`,
//!   `RESTRICTED_BIZ_INITIATED_MESSAGING`, `RESTRICTED_CUSTOMER_INITIATED_MESSAGING`;
//!   `expiration`); `DISABLED_UPDATE` with `ban_info {waba_ban_state: DISABLE |
//!   SCHEDULE_FOR_DISABLE | REINSTATE, waba_ban_date}`; `ACCOUNT_VIOLATION` with
//!   `violation_info {violation_type}`; `PARTNER_APP_INSTALLED` / `PARTNER_APP_UNINSTALLED`
//!   with `waba_info {waba_id, owner_business_id, partner_app_id}`; others (`ACCOUNT_DELETED`,
//!   `ACCOUNT_OFFBOARDED`, `ACCOUNT_RECONNECTED`, `PARTNER_REMOVED`, pricing and verification
//!   events) by name.
//! - `phone_number_quality_update`: `display_phone_number`, `event` (`ONBOARDING`,
//!   `THROUGHPUT_UPGRADE`, `FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`), `old_limit`, and
//!   `max_daily_conversations_per_business` (`current_limit` was removed in February 2026 and
//!   is not read).
//! - `phone_number_name_update`: `display_phone_number`, `decision` (`APPROVED`, `REJECTED`,
//!   `DEFERRED`...), `requested_verified_name`, `rejection_reason`.
//! - `business_capability_update`: `max_daily_conversations_per_business` (a tier such as
//!   `TIER_2K`, or a number), `max_phone_numbers_per_business`, `max_phone_numbers_per_waba`
//!   (`max_daily_conversation_per_phone` was removed in February 2026 and is not read).

use serde::{Deserialize, Serialize};

use super::lenient::event_text;
use super::whatsapp as wa;
use crate::ids::WabaId;

/// The webhook fields whose changes are account and number events.
pub const ACCOUNT_FIELDS: [&str; 4] = [
    "account_update",
    "phone_number_quality_update",
    "phone_number_name_update",
    "business_capability_update",
];

/// One account or number event, as it arrived on a WABA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WabaUpdate {
    pub waba: WabaId,
    /// `entry[].time`, unix seconds.
    pub time: Option<i64>,
    /// The number the change names (`display_phone_number`, or `phone_number` on some
    /// `account_update` events), digits as Meta sent them; None for the whole WABA.
    pub number: Option<String>,
    pub update: AccountUpdate,
}

/// What changed about the account or one of its numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "update", rename_all = "snake_case")]
pub enum AccountUpdate {
    /// `ACCOUNT_RESTRICTION`: what the account may not do, and until when. An empty list
    /// lifts the restriction.
    Restricted { restrictions: Vec<Restriction> },
    /// `DISABLED_UPDATE`: `DISABLE`, `SCHEDULE_FOR_DISABLE` or `REINSTATE`.
    BanState {
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
    },
    /// `ACCOUNT_VIOLATION`.
    Violation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        violation_type: Option<String>,
    },
    /// `PARTNER_APP_INSTALLED` (true) / `PARTNER_APP_UNINSTALLED` (false).
    PartnerApp {
        installed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<String>,
    },
    /// Any other `account_update` event, by name: recorded on the channel only.
    Other { event: String },
    /// `phone_number_quality_update`.
    Quality {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old_limit: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
    },
    /// `phone_number_name_update`: Meta's decision on a display name.
    Name {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejection_reason: Option<String>,
    },
    /// `business_capability_update`.
    Capability {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        messaging_limit: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_numbers_per_business: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_numbers_per_waba: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    pub restriction_type: String,
    /// As Meta sent it (`2026-04-19T13:59:20+0000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

impl AccountUpdate {
    /// A short name for logs and keys: the field and event, never a name or number.
    pub fn label(&self) -> String {
        match self {
            AccountUpdate::Restricted { .. } => "account_restriction".into(),
            AccountUpdate::BanState { state, .. } => format!("ban_state:{state}"),
            AccountUpdate::Violation { .. } => "account_violation".into(),
            AccountUpdate::PartnerApp { installed, .. } => {
                format!(
                    "partner_app:{}",
                    if *installed {
                        "installed"
                    } else {
                        "uninstalled"
                    }
                )
            }
            AccountUpdate::Other { event } => format!("account_update:{event}"),
            AccountUpdate::Quality { event, .. } => {
                format!("quality:{}", event.as_deref().unwrap_or("none"))
            }
            AccountUpdate::Name { decision, .. } => {
                format!("name:{}", decision.as_deref().unwrap_or("none"))
            }
            AccountUpdate::Capability { .. } => "capability".into(),
        }
    }
}

/// The number a change of one of [`ACCOUNT_FIELDS`] names, if any.
pub(super) fn named_number(v: &wa::ChangeValue<'_>) -> Option<String> {
    event_text(&v.display_phone_number).or_else(|| event_text(&v.phone_number))
}

/// The update a change of one of [`ACCOUNT_FIELDS`] holds; None for another field, or an
/// `account_update` without an `event`.
pub(super) fn account_update(field: &str, v: &wa::ChangeValue<'_>) -> Option<AccountUpdate> {
    let a = v;
    let label = |s: &Option<std::borrow::Cow<'_, str>>| code(s.as_deref()?);
    Some(match field {
        "account_update" => {
            let event = label(&a.event)?;
            match event.as_str() {
                "ACCOUNT_RESTRICTION" => AccountUpdate::Restricted {
                    restrictions: a
                        .restriction_info
                        .iter()
                        .filter_map(super::item::Item::ok)
                        .filter_map(|r| {
                            Some(Restriction {
                                restriction_type: label(&r.restriction_type)?,
                                expiration: event_text(&r.expiration),
                            })
                        })
                        .collect(),
                },
                "DISABLED_UPDATE" => {
                    let ban = a.ban_info.as_ref();
                    AccountUpdate::BanState {
                        state: ban
                            .and_then(|b| label(&b.waba_ban_state))
                            .unwrap_or_else(|| "DISABLE".into()),
                        date: ban.and_then(|b| event_text(&b.waba_ban_date)),
                    }
                }
                "ACCOUNT_VIOLATION" => AccountUpdate::Violation {
                    violation_type: a
                        .violation_info
                        .as_ref()
                        .and_then(|i| label(&i.violation_type)),
                },
                "PARTNER_APP_INSTALLED" | "PARTNER_APP_UNINSTALLED" => AccountUpdate::PartnerApp {
                    installed: event == "PARTNER_APP_INSTALLED",
                    app_id: a
                        .waba_info
                        .as_ref()
                        .and_then(|w| event_text(&w.partner_app_id)),
                },
                _ => AccountUpdate::Other { event },
            }
        }
        "phone_number_quality_update" => AccountUpdate::Quality {
            event: label(&a.event),
            old_limit: label(&a.old_limit),
            limit: label(&a.max_daily_conversations_per_business),
        },
        "phone_number_name_update" => AccountUpdate::Name {
            decision: label(&a.decision),
            requested_name: event_text(&a.requested_verified_name),
            rejection_reason: event_text(&a.rejection_reason),
        },
        "business_capability_update" => AccountUpdate::Capability {
            messaging_limit: label(&a.max_daily_conversations_per_business),
            max_numbers_per_business: a.max_phone_numbers_per_business,
            max_numbers_per_waba: a.max_phone_numbers_per_waba,
        },
        _ => return None,
    })
}

/// A Meta code as sent (`ACCOUNT_RESTRICTION`, `TIER_2K`, `2000`): ASCII letters, digits and
/// `_`, at most 64; anything else is not kept (it is stored and logged).
fn code(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| s.to_owned())
}
