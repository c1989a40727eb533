//! Channel connections: which external account (a WhatsApp number, an Instagram account, a
//! Bitrix24 portal) belongs to which tenant.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::ids::ChannelKind;

use crate::ids::{BitrixMemberId, InstagramAccountId, MetaUserId, PhoneNumberId, TenantId};
use crate::meta::AccountRef;
use crate::store::Key;

use crate::secret::Secret;

/// One exact external account id, typed by its kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChannelRef {
    WhatsApp(PhoneNumberId),
    Instagram(InstagramAccountId),
    Bitrix24(BitrixMemberId),
}

impl ChannelRef {
    /// Parses an id of the given kind, with that kind's validation.
    pub fn parse(kind: ChannelKind, id: &str) -> Result<Self, crate::ids::InvalidId> {
        Ok(match kind {
            ChannelKind::WhatsApp => ChannelRef::WhatsApp(PhoneNumberId::parse(id)?),
            ChannelKind::Instagram => ChannelRef::Instagram(InstagramAccountId::parse(id)?),
            ChannelKind::Bitrix24 => ChannelRef::Bitrix24(BitrixMemberId::parse(id)?),
        })
    }

    /// The Meta account a webhook event names, as the routes table knows it (the tenant
    /// lookup).
    pub fn of(account: &AccountRef) -> Self {
        match account {
            AccountRef::WhatsApp(id) => ChannelRef::WhatsApp(id.clone()),
            AccountRef::Instagram(id) => ChannelRef::Instagram(id.clone()),
        }
    }

    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelRef::WhatsApp(_) => ChannelKind::WhatsApp,
            ChannelRef::Instagram(_) => ChannelKind::Instagram,
            ChannelRef::Bitrix24(_) => ChannelKind::Bitrix24,
        }
    }

    pub fn external_id(&self) -> &str {
        match self {
            ChannelRef::WhatsApp(id) => id.as_str(),
            ChannelRef::Instagram(id) => id.as_str(),
            ChannelRef::Bitrix24(id) => id.as_str(),
        }
    }

    /// Key of this id's entry in the global routes table.
    pub fn route_key(&self) -> Key {
        Key::new(
            format!("ROUTE#{}#{}", self.kind().code(), self.external_id()),
            "ROUTE",
        )
    }

    /// Sort key of the tenant's channel item.
    pub fn channel_sk(&self) -> String {
        format!(
            "{}{}#{}",
            CHANNEL_SK_PREFIX,
            self.kind().code(),
            self.external_id()
        )
    }

    /// Key of the tenant's channel item.
    pub fn channel_key(&self, tenant: &TenantId) -> Key {
        Key::new(tenant.partition(), self.channel_sk())
    }

    /// Key of this channel's entry in the index of channels a Meta user authorised
    /// (`AUTHBY#<user>` / `<kind code>#<id>`, routes table).
    pub fn authorized_by_key(&self, user: &MetaUserId) -> Key {
        Key::new(
            authorized_by_partition(user),
            format!("{}#{}", self.kind().code(), self.external_id()),
        )
    }

    /// The channel an `AUTHBY#` index entry's sort key names.
    pub fn from_index_sk(sk: &str) -> Option<Self> {
        let (code, id) = sk.split_once('#')?;
        Self::parse(ChannelKind::from_code(code)?, id).ok()
    }

    /// The channel a channel item's sort key names.
    pub fn from_channel_sk(sk: &str) -> Option<Self> {
        let rest = sk.strip_prefix(CHANNEL_SK_PREFIX)?;
        let (code, id) = rest.split_once('#')?;
        Self::parse(ChannelKind::from_code(code)?, id).ok()
    }
}

/// Partition of the index of channels a Meta user authorised (routes table).
pub fn authorized_by_partition(user: &MetaUserId) -> String {
    format!("AUTHBY#{}", user.as_str())
}

/// Sort-key prefix of channel items in the tenant's root partition.
pub const CHANNEL_SK_PREFIX: &str = "CH#";

/// What connecting a channel stores: public details (shown back to admins) and secrets
/// (stored only encrypted, never shown).
#[derive(Clone, Debug)]
pub struct Connection {
    pub channel: ChannelRef,
    pub details: BTreeMap<String, String>,
    pub secrets: BTreeMap<&'static str, Secret>,
    /// The Meta user who authorised the channel, kept so a Meta data-deletion request for
    /// that user can be honoured.
    pub authorized_by: Option<crate::ids::MetaUserId>,
}

/// A connected channel as shown to admins: never any secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelSummary {
    pub kind: ChannelKind,
    pub id: String,
    pub connected_at: i64,
    pub details: BTreeMap<String, String>,
    /// Names of the secrets held (encrypted) for this channel, so admins can see what is
    /// stored without seeing it.
    pub secrets_stored: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_by: Option<String>,
}
