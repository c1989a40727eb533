//! Tenant API keys for machine access (the public send API).
//!
//! A key reads `wpl_<16 hex id>_<43 base64url secret>`. It is shown once, when created; we
//! keep only the SHA-256 of the secret, in the global routes table under the key id (an exact
//! lookup, so authenticating costs one read), next to the tenant it belongs to, its scope, an
//! optional expiry and whether it was revoked. The tenant's own list of keys (names, scopes,
//! dates; never the secret) lives in its partition.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::now_secs;
use crate::crypto::random_bytes;
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update, TTL_ATTR};

const PREFIX: &str = "wpl_";
const ROUTE_SK: &str = "APIKEY";
/// The tenant's list of its keys, `T#<t>#APIKEYS` (sort key: the key id).
pub const LIST_SUFFIX: &str = "APIKEYS";
/// Revoked and expired keys are kept this long (for the tenant's list) before TTL removes
/// them.
const KEEP_AFTER_END_SECS: i64 = 90 * 86_400;
/// `last_used_at` is written at most this often per key, so a busy key costs no extra write
/// per request.
const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    /// Send messages through the public send API.
    Send,
}

impl ApiKeyScope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "send" => Some(ApiKeyScope::Send),
            _ => None,
        }
    }
    fn code(self) -> &'static str {
        match self {
            ApiKeyScope::Send => "send",
        }
    }
}

/// A key as the tenant's admins see it: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub scope: ApiKeyScope,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

/// A new key: `secret` is the whole key, shown once.
#[derive(Clone, Debug)]
pub struct IssuedKey {
    pub info: ApiKeyInfo,
    pub key: String,
}

/// Who a valid key speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiPrincipal {
    pub tenant: TenantId,
    pub key_id: String,
    pub scope: ApiKeyScope,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Unknown, malformed, wrong, revoked or expired: all look the same to the caller.
    #[error("invalid API key")]
    Invalid,
    #[error("no such API key")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key's route item, `APIKEY#<id>` in the routes table.
pub fn route_key(id: &str) -> Key {
    Key::new(format!("APIKEY#{id}"), ROUTE_SK)
}

fn list_key(tenant: &TenantId, id: &str) -> Key {
    Key::new(tenant.sub_partition(LIST_SUFFIX), id)
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits `wpl_<id>_<secret>`; None when it is not shaped like a key.
fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

fn info_from(item: &Item, id: &str) -> Option<ApiKeyInfo> {
    Some(ApiKeyInfo {
        id: id.to_owned(),
        name: item.get_s("name").unwrap_or_default().to_owned(),
        scope: ApiKeyScope::parse(item.get_s("scope")?)?,
        created_at: item.get_n("created_at").unwrap_or(0),
        expires_at: item.get_n("valid_until"),
        revoked: item.get_bool("revoked").unwrap_or(false),
        last_used_at: item.get_n("last_used_at"),
    })
}

/// Issues, authenticates, lists and revokes API keys.
#[derive(Clone)]
pub struct ApiKeys {
    store: Arc<dyn TableStore>,
}

impl ApiKeys {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        ApiKeys { store }
    }

    /// Issues a key for `tenant`. `name`: 1-100 characters to recognise it by;
    /// `expires_at`: optional end of validity (Unix seconds, in the future).
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        scope: ApiKeyScope,
        expires_at: Option<i64>,
    ) -> Result<IssuedKey, ApiKeyError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ApiKeyError::BadRequest(
                "name: must be 1 to 100 characters without control characters".into(),
            ));
        }
        let now = now_secs();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ApiKeyError::BadRequest(
                "expires_at: must be in the future".into(),
            ));
        }
        let mut id_bytes = [0u8; 8];
        let mut secret_bytes = [0u8; 32];
        random_bytes(&mut id_bytes)
            .map_err(|e| ApiKeyError::Store(StoreError::Backend(e.to_string())))?;
        random_bytes(&mut secret_bytes)
            .map_err(|e| ApiKeyError::Store(StoreError::Backend(e.to_string())))?;
        let id = hex::encode(id_bytes);
        let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
        let mut route = Item::new(&route_key(&id))
            .with("tenant_id", tenant.as_str())
            .with("secret_sha256", digest(&secret).to_vec())
            .with("scope", scope.code())
            .with("created_at", now);
        let mut listed = Item::new(&list_key(tenant, &id))
            .with("name", name)
            .with("scope", scope.code())
            .with("created_at", now);
        if let Some(e) = expires_at {
            route.set("valid_until", e);
            route.set(TTL_ATTR, e.saturating_add(KEEP_AFTER_END_SECS));
            listed.set("valid_until", e);
            listed.set(TTL_ATTR, e.saturating_add(KEEP_AFTER_END_SECS));
        }
        self.store
            .transact_write(vec![
                crate::store::WriteOp::Put {
                    table: Table::Routes,
                    item: route,
                    condition: Some(Condition::NotExists),
                },
                crate::store::WriteOp::Put {
                    table: Table::Data,
                    item: listed.clone(),
                    condition: Some(Condition::NotExists),
                },
            ])
            .await?;
        Ok(IssuedKey {
            info: info_from(&listed, &id).expect("built above"),
            key: format!("{PREFIX}{id}_{secret}"),
        })
    }

    /// The principal of a presented key, or `Invalid` (same answer for every failure).
    pub async fn authenticate(&self, presented: &str) -> Result<ApiPrincipal, ApiKeyError> {
        let (id, secret) = parse(presented.trim()).ok_or(ApiKeyError::Invalid)?;
        let key = route_key(id);
        let item = self.store.get(Table::Routes, &key).await?;
        // Compare against a dummy digest when the key is unknown, so both paths cost the same.
        let stored: [u8; 32] = item
            .as_ref()
            .and_then(|i| i.get_b("secret_sha256"))
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0u8; 32]);
        let matches: bool = digest(secret).ct_eq(&stored).into();
        let item = match item {
            Some(item) if matches => item,
            _ => return Err(ApiKeyError::Invalid),
        };
        let now = now_secs();
        if item.get_bool("revoked").unwrap_or(false)
            || item.get_n("valid_until").is_some_and(|e| e <= now)
        {
            return Err(ApiKeyError::Invalid);
        }
        let tenant = item
            .get_s("tenant_id")
            .and_then(|t| TenantId::parse(t).ok())
            .ok_or(ApiKeyError::Invalid)?;
        let scope = item
            .get_s("scope")
            .and_then(ApiKeyScope::parse)
            .ok_or(ApiKeyError::Invalid)?;
        if item
            .get_n("last_used_at")
            .is_none_or(|t| now - t >= LAST_USED_GRANULARITY_SECS)
        {
            let stamp = Update::new().set("last_used_at", now);
            // Best effort: a failed stamp must not refuse a valid key.
            let _ = self
                .store
                .update(Table::Routes, &key, stamp.clone(), Some(Condition::Exists))
                .await;
            let _ = self
                .store
                .update(
                    Table::Data,
                    &list_key(&tenant, id),
                    stamp,
                    Some(Condition::Exists),
                )
                .await;
        }
        Ok(ApiPrincipal {
            tenant,
            key_id: id.to_owned(),
            scope,
        })
    }

    /// The tenant's keys, newest id order.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyInfo>, ApiKeyError> {
        let mut out = Vec::new();
        let mut query = Query::partition(tenant.sub_partition(LIST_SUFFIX)).limit(100);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            out.extend(
                page.items
                    .iter()
                    .filter_map(|i| info_from(i, i.get_s("sk")?)),
            );
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(out),
            }
        }
    }

    /// Revokes a key of `tenant` at once. A key of another tenant is `NotFound`.
    pub async fn revoke(&self, tenant: &TenantId, id: &str) -> Result<(), ApiKeyError> {
        if !(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(ApiKeyError::NotFound);
        }
        let now = now_secs();
        let ends = now + KEEP_AFTER_END_SECS;
        let ours = Condition::Equals("tenant_id".into(), tenant.as_str().into());
        let revoke = Update::new()
            .set("revoked", true)
            .set("revoked_at", now)
            .set(TTL_ATTR, ends);
        match self
            .store
            .update(Table::Routes, &route_key(id), revoke.clone(), Some(ours))
            .await
        {
            Ok(_) => {}
            Err(StoreError::ConditionFailed { .. }) => return Err(ApiKeyError::NotFound),
            Err(e) => return Err(e.into()),
        }
        let _ = self
            .store
            .update(
                Table::Data,
                &list_key(tenant, id),
                revoke,
                Some(Condition::Exists),
            )
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn keys() -> (ApiKeys, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        (ApiKeys::new(store), dir)
    }

    #[tokio::test]
    async fn a_key_works_until_revoked_and_only_for_its_tenant() {
        let (keys, _dir) = keys();
        let (t1, t2) = (TenantId::generate(), TenantId::generate());
        let issued = keys
            .create(&t1, "CRM bridge", ApiKeyScope::Send, None)
            .await
            .unwrap();
        assert!(issued.key.starts_with("wpl_"));
        let principal = keys.authenticate(&issued.key).await.unwrap();
        assert_eq!(principal.tenant, t1);
        assert_eq!(principal.scope, ApiKeyScope::Send);
        // Another tenant cannot revoke it.
        assert!(matches!(
            keys.revoke(&t2, &issued.info.id).await,
            Err(ApiKeyError::NotFound)
        ));
        keys.authenticate(&issued.key).await.unwrap();
        let listed = keys.list(&t1).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some());
        assert!(keys.list(&t2).await.unwrap().is_empty());
        keys.revoke(&t1, &issued.info.id).await.unwrap();
        assert!(matches!(
            keys.authenticate(&issued.key).await,
            Err(ApiKeyError::Invalid)
        ));
        assert!(keys.list(&t1).await.unwrap()[0].revoked);
    }

    #[tokio::test]
    async fn wrong_malformed_and_expired_keys_are_refused_alike() {
        let (keys, _dir) = keys();
        let t = TenantId::generate();
        let issued = keys.create(&t, "k", ApiKeyScope::Send, None).await.unwrap();
        let mut wrong = issued.key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [wrong.as_str(), "", "wpl_", "Bearer x", &issued.key[..20]] {
            assert!(
                matches!(keys.authenticate(bad).await, Err(ApiKeyError::Invalid)),
                "{bad}"
            );
        }
        assert!(keys
            .create(&t, "k", ApiKeyScope::Send, Some(now_secs() - 1))
            .await
            .is_err());
        // Expiry is checked on use: store a key that expires in two seconds, then wait it out.
        // Two, not one: validity ends at a whole second, and a key that ends at the next one
        // can expire within a millisecond of its creation (a CI run's flake).
        let short = keys
            .create(&t, "short", ApiKeyScope::Send, Some(now_secs() + 2))
            .await
            .unwrap();
        keys.authenticate(&short.key).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
        assert!(matches!(
            keys.authenticate(&short.key).await,
            Err(ApiKeyError::Invalid)
        ));
    }
}
