//! The health of a channel's expiring token (Instagram Login's long-lived tokens run 60
//! days): when it expires and whether its last refresh failed. Kept on the channel item
//! (attribute [`TOKEN_HEALTH_ATTR`]), written when the token is stored or refreshed, shown
//! with the channel so the console can say "token expiring / expired / refresh failed".
//! Times and a failure kind only: never a token or an answer body.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scope::describe;
use super::{ChannelRef, TenantError, TenantScope};
use crate::crypto::FieldRef;
use crate::secret::Secret;
use crate::store::{AttrValue, Condition, StoreError, Table, Update};

/// Attribute of a channel item holding its [`TokenHealth`] (a map).
pub const TOKEN_HEALTH_ATTR: &str = "token_health";
/// A token this close to its expiry is shown as expiring (the refresh job starts well before,
/// `crate::onboarding::refresh`).
pub const EXPIRING_WITHIN_SECS: i64 = 7 * 86_400;

/// What the console shows about a channel's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Valid,
    /// Expires within [`EXPIRING_WITHIN_SECS`].
    Expiring,
    Expired,
    /// The last refresh failed; the token still works until it expires.
    RefreshFailed,
}

/// A channel's expiring token, as kept on its item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenHealth {
    /// Unix seconds.
    pub expires_at: i64,
    /// Computed when read (see [`TokenHealth::status_at`]).
    pub status: TokenStatus,
    /// Unix seconds of the last refresh (or of the connection).
    pub renewed_at: i64,
    /// The kind of the last refresh failure, while it stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_failed_at: Option<i64>,
}

impl TokenHealth {
    /// The status at `now`: expired wins, then a failed refresh, then expiring.
    pub fn status_at(expires_at: i64, refresh_error: bool, now: i64) -> TokenStatus {
        if expires_at <= now {
            TokenStatus::Expired
        } else if refresh_error {
            TokenStatus::RefreshFailed
        } else if expires_at - now <= EXPIRING_WITHIN_SECS {
            TokenStatus::Expiring
        } else {
            TokenStatus::Valid
        }
    }

    pub(crate) fn from_attr(value: Option<&AttrValue>, now: i64) -> Option<Self> {
        let Some(AttrValue::M(m)) = value else {
            return None;
        };
        let expires_at = m.get("expires_at").and_then(AttrValue::as_n)?;
        let refresh_error = m
            .get("refresh_error")
            .and_then(AttrValue::as_s)
            .map(str::to_owned);
        Some(TokenHealth {
            expires_at,
            status: Self::status_at(expires_at, refresh_error.is_some(), now),
            renewed_at: m.get("renewed_at").and_then(AttrValue::as_n).unwrap_or(0),
            refresh_failed_at: m.get("refresh_failed_at").and_then(AttrValue::as_n),
            refresh_error,
        })
    }
}

fn renewed(expires_at: i64, now: i64) -> AttrValue {
    let mut m = BTreeMap::new();
    m.insert("expires_at".to_owned(), AttrValue::N(expires_at));
    m.insert("renewed_at".to_owned(), AttrValue::N(now));
    AttrValue::M(m)
}

impl TenantScope {
    /// Records that the channel's token (already stored) expires at `expires_at`; used at
    /// connection time.
    pub async fn set_token_expiry(
        &self,
        channel: &ChannelRef,
        expires_at: i64,
        now: i64,
    ) -> Result<(), TenantError> {
        self.update_channel(
            channel,
            Update::new().set(TOKEN_HEALTH_ATTR, renewed(expires_at, now)),
            None,
        )
        .await
    }

    /// The channel's `access_token` as stored now, for a renewal: what it is, and what a
    /// later write of its state is conditioned on.
    pub async fn read_token(&self, channel: &ChannelRef) -> Result<ReadToken, TenantError> {
        let key = channel.channel_key(self.tenant());
        let item = self
            .store()
            .get(Table::Data, &key)
            .await?
            .ok_or_else(|| TenantError::ChannelNotFound(describe(channel)))?;
        let (secret, sealed) = self.open_secret(&key, &item, "access_token").await?;
        Ok(ReadToken {
            secret,
            sealed: sealed.to_vec(),
        })
    }

    /// Replaces the channel's `access_token` (the one `over` read) with a refreshed one and
    /// its expiry, in one write, clearing a past refresh failure. `ChannelNotFound` when the
    /// channel is gone or holds another token now (connected again meanwhile: its new token
    /// stays, decision 0119).
    pub async fn replace_token(
        &self,
        channel: &ChannelRef,
        over: &ReadToken,
        token: &Secret,
        expires_at: i64,
        now: i64,
    ) -> Result<(), TenantError> {
        let key = channel.channel_key(self.tenant());
        let field = FieldRef::new(self.tenant(), Table::Data, &key, "access_token");
        let blob = self
            .envelope()
            .encrypt(field, token.expose().as_bytes())
            .await?;
        self.update_channel(
            channel,
            Update::new()
                .set(&super::scope::secret_attr("access_token"), blob)
                .set(TOKEN_HEALTH_ATTR, renewed(expires_at, now)),
            Some(over),
        )
        .await
    }

    /// Records a failed refresh of the token `over` read (`error`: a kind, never an answer
    /// body); the expiry stays. `ChannelNotFound` as for [`Self::replace_token`]: a token
    /// connected since is not marked failed.
    pub async fn set_token_refresh_failed(
        &self,
        channel: &ChannelRef,
        over: &ReadToken,
        health: &TokenHealth,
        error: &str,
        now: i64,
    ) -> Result<(), TenantError> {
        let mut m = BTreeMap::new();
        m.insert("expires_at".to_owned(), AttrValue::N(health.expires_at));
        m.insert("renewed_at".to_owned(), AttrValue::N(health.renewed_at));
        m.insert("refresh_error".to_owned(), AttrValue::S(error.to_owned()));
        m.insert("refresh_failed_at".to_owned(), AttrValue::N(now));
        self.update_channel(
            channel,
            Update::new().set(TOKEN_HEALTH_ATTR, AttrValue::M(m)),
            Some(over),
        )
        .await
    }

    /// Updates the channel if it exists and, with `over`, still holds the token read.
    async fn update_channel(
        &self,
        channel: &ChannelRef,
        update: Update,
        over: Option<&ReadToken>,
    ) -> Result<(), TenantError> {
        let _writing = self.writing();
        let key = channel.channel_key(self.tenant());
        let condition = match over {
            None => Condition::Exists,
            Some(read) => Condition::Equals(
                super::scope::secret_attr("access_token"),
                AttrValue::B(read.sealed.clone()),
            ),
        };
        match self
            .store()
            .update(Table::Data, &key, update, Some(condition))
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => {
                Err(TenantError::ChannelNotFound(describe(channel)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A channel's access token as [`TenantScope::read_token`] read it.
pub struct ReadToken {
    pub secret: Secret,
    /// The stored ciphertext: a fresh nonce each time a token is stored, so it tells this
    /// token's record from one stored by a later connection, even of the same token.
    sealed: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_orders_expired_then_failed_then_expiring() {
        let now = 1_000_000;
        assert_eq!(
            TokenHealth::status_at(now, false, now),
            TokenStatus::Expired
        );
        assert_eq!(
            TokenHealth::status_at(now - 1, true, now),
            TokenStatus::Expired
        );
        assert_eq!(
            TokenHealth::status_at(now + 40 * 86_400, true, now),
            TokenStatus::RefreshFailed
        );
        assert_eq!(
            TokenHealth::status_at(now + 86_400, false, now),
            TokenStatus::Expiring
        );
        assert_eq!(
            TokenHealth::status_at(now + 40 * 86_400, false, now),
            TokenStatus::Valid
        );
    }
}
