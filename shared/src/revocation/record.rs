//! The stored revocation: one item per disconnected channel in the tenant's `REVOKE`
//! partition (data table), holding the steps' states and, until the revocation is over, the
//! tokens it needs, encrypted under the revocation item's own field reference. While any
//! step is pending, an entry in the routes table's `REVOKE#PENDING` partition lets the
//! scheduled retry find it without scanning tenants.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Envelope, FieldRef};
use crate::ids::TenantId;
use crate::secret::Secret;
use crate::store::{Item, Key, Table, TTL_ATTR};
use crate::tenant::{ChannelKind, ChannelRef};

/// Partition suffix of a tenant's revocations.
pub const REVOKE_SUFFIX: &str = "REVOKE";
/// Routes-table partition listing the revocations with a pending step.
pub const PENDING_PARTITION: &str = "REVOKE#PENDING";
/// A finished revocation record is kept this long (for the admin API and the audit trail),
/// then expires. It holds no token by then.
pub const RECORD_DAYS: i64 = 90;

/// Where one provider step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not yet confirmed by the provider; retried.
    Pending,
    /// The provider confirmed.
    Done,
    /// Deliberately not called (`note` says why: still used by another channel, the app is
    /// already uninstalled).
    Skipped,
    /// Given up after the bounded number of attempts; our tokens were deleted anyway.
    Failed,
}

impl StepState {
    pub fn name(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Done => "done",
            StepState::Skipped => "skipped",
            StepState::Failed => "failed",
        }
    }
}

/// What is revoked at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// `DELETE /{waba-id}/subscribed_apps`, unless another connected number is on the WABA.
    #[serde(rename = "whatsapp_subscription")]
    WhatsAppSubscription,
    /// `DELETE /{page-id}/subscribed_apps` (Instagram connected with its Page).
    InstagramPageSubscription,
    /// `DELETE /me/permissions` on the Instagram Login host.
    InstagramPermissions,
    /// `imconnector.unregister` of our connectors.
    Bitrix24Connectors,
    /// `event.unbind` of the events we bound.
    Bitrix24Events,
    /// `messageservice.sender.delete` of a WhatsApp number's message provider on the
    /// tenant's portal (decision 0050).
    Bitrix24MessageProvider,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::WhatsAppSubscription => "whatsapp_subscription",
            StepKind::InstagramPageSubscription => "instagram_page_subscription",
            StepKind::InstagramPermissions => "instagram_permissions",
            StepKind::Bitrix24Connectors => "bitrix24_connectors",
            StepKind::Bitrix24Events => "bitrix24_events",
            StepKind::Bitrix24MessageProvider => "bitrix24_message_provider",
        }
    }
}

/// One provider step of a revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub step: StepKind,
    pub state: StepState,
    /// The provider's last error, in words (never a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Step {
    pub fn pending(step: StepKind) -> Self {
        Step {
            step,
            state: StepState::Pending,
            last_error: None,
            note: None,
        }
    }
}

/// A disconnected channel's revocation, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// The record's id (sort key), for the audit trail.
    pub id: String,
    pub kind: ChannelKind,
    pub channel: String,
    /// `pending` while a step is pending, then `done` (every step done or skipped) or
    /// `failed` (a step was given up).
    pub revocation: &'static str,
    pub steps: Vec<Step>,
    pub attempts: u32,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// When the scheduled retry tries again (Unix seconds), while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// Whether we still hold the channel's tokens (only while pending).
    pub tokens_held: bool,
    /// Public details of the channel (`waba_id`, `page_id`, `domain`).
    #[serde(skip)]
    pub details: BTreeMap<String, String>,
}

impl Revocation {
    pub fn overall(steps: &[Step]) -> &'static str {
        if steps.iter().any(|s| s.state == StepState::Pending) {
            "pending"
        } else if steps.iter().any(|s| s.state == StepState::Failed) {
            "failed"
        } else {
            "done"
        }
    }

    pub fn is_pending(&self) -> bool {
        self.revocation == "pending"
    }
}

pub fn partition(tenant: &TenantId) -> String {
    tenant.sub_partition(REVOKE_SUFFIX)
}

pub fn record_key(tenant: &TenantId, id: &str) -> Key {
    Key::new(partition(tenant), id)
}

pub fn pending_key(tenant: &TenantId, id: &str) -> Key {
    Key::new(PENDING_PARTITION, format!("{}#{id}", tenant.as_str()))
}

pub fn record_id(channel: &ChannelRef, now_ms: i64) -> String {
    format!(
        "{}#{}#{now_ms:013}",
        channel.kind().code(),
        channel.external_id()
    )
}

/// Attribute of an encrypted token held by a pending revocation.
pub fn token_attr(name: &str) -> String {
    format!("enc_{name}")
}

/// The token names a kind's steps need.
pub fn token_names(kind: ChannelKind) -> &'static [&'static str] {
    match kind {
        ChannelKind::Bitrix24 => &["access_token", "refresh_token"],
        _ => &["access_token"],
    }
}

/// The new record: steps pending, tokens encrypted.
#[allow(clippy::too_many_arguments)]
pub async fn new_item(
    envelope: &Envelope,
    tenant: &TenantId,
    id: &str,
    channel: &ChannelRef,
    details: &BTreeMap<String, String>,
    steps: &[Step],
    tokens: &[(&str, Secret)],
    now: i64,
) -> Result<Item, crate::crypto::CryptoError> {
    let key = record_key(tenant, id);
    let mut item = Item::new(&key)
        .with("kind", channel.kind().name())
        .with("channel", channel.external_id())
        .with(
            "details",
            serde_json::to_string(details).unwrap_or_default(),
        )
        .with("steps", serde_json::to_string(steps).unwrap_or_default())
        .with("attempts", 0i64)
        .with("created_at", now)
        .with("updated_at", now)
        // The disconnect makes the first attempt itself; the schedule only takes over if that
        // one never ran (the process stopped), so the two do not call the provider together.
        .with("next_attempt_at", now + super::FIRST_DELAY_SECS);
    for (name, secret) in tokens {
        let attr = token_attr(name);
        let blob = envelope
            .encrypt(
                FieldRef::new(tenant, Table::Data, &key, &attr),
                secret.expose().as_bytes(),
            )
            .await?;
        item.set(&attr, blob);
    }
    if Revocation::overall(steps) != "pending" {
        item.set(TTL_ATTR, now + RECORD_DAYS * 86_400);
    }
    Ok(item)
}

/// Reads a record back (never its tokens).
pub fn from_item(item: &Item) -> Option<Revocation> {
    let key = item.key()?;
    let kind = ChannelKind::from_name(item.get_s("kind")?)?;
    let steps: Vec<Step> = serde_json::from_str(item.get_s("steps")?).ok()?;
    let details = item
        .get_s("details")
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let revocation = Revocation::overall(&steps);
    Some(Revocation {
        id: key.sk.clone(),
        kind,
        channel: item.get_s("channel")?.to_owned(),
        revocation,
        attempts: item.get_n("attempts").unwrap_or(0).max(0) as u32,
        created_at: item.get_n("created_at").unwrap_or(0),
        updated_at: item.get_n("updated_at").unwrap_or(0),
        next_attempt_at: (revocation == "pending")
            .then(|| item.get_n("next_attempt_at"))
            .flatten(),
        tokens_held: token_names(kind)
            .iter()
            .any(|n| item.get(&token_attr(n)).is_some()),
        steps,
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_the_stored_and_shown_names() {
        for step in [
            StepKind::WhatsAppSubscription,
            StepKind::InstagramPageSubscription,
            StepKind::InstagramPermissions,
            StepKind::Bitrix24Connectors,
            StepKind::Bitrix24Events,
        ] {
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                serde_json::json!(step.name())
            );
        }
    }
}
