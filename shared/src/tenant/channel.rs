//! Channel connections: which external account (a WhatsApp number, an Instagram account, a
//! Bitrix24 portal) belongs to which tenant.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::ids::ChannelKind;

use crate::ids::{BitrixMemberId, InstagramAccountId, MetaUserId, PhoneNumberId, TenantId};
use crate::meta::AccountRef;
use crate::store::{AttrValue, Key};

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

/// The channel detail (`"true"`) of a WhatsApp number shared with the WhatsApp Business app
/// (Coexistence, connected through Embedded Signup): the send path paces it at 20 messages
/// per second.
pub const COEXISTENCE_DETAIL: &str = "coexistence";

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
    /// Bitrix24 portals only: whether the CRM sync can reach the portal (decision 0025).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_link: Option<CrmLink>,
    /// WhatsApp and Instagram only: the Open Line the channel is attached to; none means
    /// the portal's own line (decision 0043).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_line: Option<super::lines::OpenLineAttachment>,
    /// Channels whose token expires (Instagram Login): its expiry and refresh state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<super::token_health::TokenHealth>,
}

/// Whether the CRM sync reaches a connected Bitrix24 portal. Kept on the portal's channel
/// item (attribute [`CRM_LINK_ATTR`]); written by the CRM sync when it parks or resumes the
/// portal's work, shown to admins with the channel. Kinds and times only: never a token or
/// an answer body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrmLink {
    pub state: CrmLinkState,
    /// Unix seconds: since when the link is in this state (the connection time while it was
    /// never found unreachable).
    pub since: i64,
    /// Unix seconds: the last probe of an unreachable portal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_at: Option<i64>,
    /// The kind of the last failure (`unavailable`, `rate_limited`, `unauthorized`,
    /// `not_connected`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmLinkState {
    Reachable,
    Unreachable,
}

/// Attribute of a Bitrix24 channel item holding its [`CrmLink`] (a map).
pub const CRM_LINK_ATTR: &str = "crm_link";

impl CrmLink {
    pub fn reachable(since: i64) -> Self {
        CrmLink {
            state: CrmLinkState::Reachable,
            since,
            last_probe_at: None,
            last_error: None,
        }
    }

    pub fn is_unreachable(&self) -> bool {
        self.state == CrmLinkState::Unreachable
    }

    pub(crate) fn to_attr(&self) -> AttrValue {
        let mut m = BTreeMap::new();
        let state = match self.state {
            CrmLinkState::Reachable => "reachable",
            CrmLinkState::Unreachable => "unreachable",
        };
        m.insert("state".to_owned(), AttrValue::S(state.to_owned()));
        m.insert("since".to_owned(), AttrValue::N(self.since));
        if let Some(at) = self.last_probe_at {
            m.insert("last_probe_at".to_owned(), AttrValue::N(at));
        }
        if let Some(e) = &self.last_error {
            m.insert("last_error".to_owned(), AttrValue::S(e.clone()));
        }
        AttrValue::M(m)
    }

    /// The link a channel item records; a portal without one is reachable since it was
    /// connected.
    pub(crate) fn from_attr(value: Option<&AttrValue>, connected_at: i64) -> Self {
        let Some(AttrValue::M(m)) = value else {
            return CrmLink::reachable(connected_at);
        };
        CrmLink {
            state: match m.get("state").and_then(AttrValue::as_s) {
                Some("unreachable") => CrmLinkState::Unreachable,
                _ => CrmLinkState::Reachable,
            },
            since: m
                .get("since")
                .and_then(AttrValue::as_n)
                .unwrap_or(connected_at),
            last_probe_at: m.get("last_probe_at").and_then(AttrValue::as_n),
            last_error: m
                .get("last_error")
                .and_then(AttrValue::as_s)
                .map(str::to_owned),
        }
    }
}

/// Detail of a channel: Unix seconds when its access token expires, where the connect flow
/// knows it (Instagram's long-lived tokens, 60 days).
pub const TOKEN_EXPIRES_AT_DETAIL: &str = "token_expires_at";
/// Detail of a channel: the account restriction Meta reported for it, where known.
pub const META_RESTRICTION_DETAIL: &str = "meta_restriction";
/// A token this close to expiry is shown as expiring (a refresh is due well before).
pub const TOKEN_EXPIRING_SECS: i64 = 7 * 86_400;

/// What a tenant's people need to know about one channel, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelHealth {
    TokenExpired,
    MetaRestricted,
    Bitrix24Unreachable,
    /// The refresh job's last renewal failed (decision 0040): the token still works until it
    /// expires, but only a reconnect renews it.
    TokenRenewalFailed,
    TokenExpiring,
    Connected,
}

impl ChannelSummary {
    /// The channel's health at `now`, from what is recorded on it: the token's expiry and a
    /// Meta restriction (when the connect flow or a webhook recorded them), and whether the
    /// CRM sync parked the portal (decision 0025).
    pub fn health(&self, now: i64) -> ChannelHealth {
        // Instagram Login tokens carry their expiry and refresh state (decision 0040); other
        // connect flows may record an expiry in the details.
        let expires_at = self.token.as_ref().map(|t| t.expires_at).or_else(|| {
            self.details
                .get(TOKEN_EXPIRES_AT_DETAIL)
                .and_then(|v| v.parse::<i64>().ok())
        });
        let refresh_failed = self
            .token
            .as_ref()
            .is_some_and(|t| t.refresh_error.is_some());
        if expires_at.is_some_and(|at| at <= now) {
            return ChannelHealth::TokenExpired;
        }
        if self.details.contains_key(META_RESTRICTION_DETAIL) {
            return ChannelHealth::MetaRestricted;
        }
        if self.crm_link.as_ref().is_some_and(CrmLink::is_unreachable) {
            return ChannelHealth::Bitrix24Unreachable;
        }
        // A failed renewal needs the tenant now, however long the token still works.
        if refresh_failed {
            return ChannelHealth::TokenRenewalFailed;
        }
        if expires_at.is_some_and(|at| at - now <= TOKEN_EXPIRING_SECS) {
            return ChannelHealth::TokenExpiring;
        }
        ChannelHealth::Connected
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    fn summary(details: &[(&str, &str)], crm_link: Option<CrmLink>) -> ChannelSummary {
        ChannelSummary {
            kind: ChannelKind::Instagram,
            id: "17841405822304914".into(),
            connected_at: 0,
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            secrets_stored: Vec::new(),
            authorized_by: None,
            crm_link,
            open_line: None,
            token: None,
        }
    }

    #[test]
    fn health_reads_expiry_restriction_and_the_portal_link() {
        let now = 1_000_000;
        assert_eq!(summary(&[], None).health(now), ChannelHealth::Connected);
        let soon = (now + 86_400).to_string();
        let later = (now + 30 * 86_400).to_string();
        let past = (now - 1).to_string();
        let at = |v: &str| summary(&[(TOKEN_EXPIRES_AT_DETAIL, v)], None).health(now);
        assert_eq!(at(&soon), ChannelHealth::TokenExpiring);
        assert_eq!(at(&later), ChannelHealth::Connected);
        assert_eq!(at(&past), ChannelHealth::TokenExpired);
        assert_eq!(
            summary(&[(META_RESTRICTION_DETAIL, "policy")], None).health(now),
            ChannelHealth::MetaRestricted
        );
        let parked = CrmLink {
            state: CrmLinkState::Unreachable,
            ..CrmLink::reachable(0)
        };
        assert_eq!(
            summary(&[], Some(parked)).health(now),
            ChannelHealth::Bitrix24Unreachable
        );
        assert_eq!(
            summary(&[], Some(CrmLink::reachable(0))).health(now),
            ChannelHealth::Connected
        );
    }

    /// Instagram Login tokens: the expiry and a failed renewal recorded by the refresh job.
    #[test]
    fn health_reads_the_token_the_refresh_job_keeps() {
        use crate::tenant::token_health::{TokenHealth, TokenStatus};
        let now = 1_000_000;
        let with = |expires_at: i64, refresh_error: Option<&str>| {
            let mut s = summary(&[], None);
            s.token = Some(TokenHealth {
                expires_at,
                status: TokenStatus::Valid,
                renewed_at: 0,
                refresh_error: refresh_error.map(str::to_owned),
                refresh_failed_at: refresh_error.map(|_| now),
            });
            s.health(now)
        };
        assert_eq!(with(now + 50 * 86_400, None), ChannelHealth::Connected);
        assert_eq!(with(now + 86_400, None), ChannelHealth::TokenExpiring);
        assert_eq!(
            with(now + 50 * 86_400, Some("rate_limited")),
            ChannelHealth::TokenRenewalFailed
        );
        assert_eq!(
            with(now + 86_400, Some("rate_limited")),
            ChannelHealth::TokenRenewalFailed
        );
        assert_eq!(with(now - 1, None), ChannelHealth::TokenExpired);
    }
}
