//! Tenants and their channel connections.
//!
//! [`TenantDirectory`] holds what crosses tenants by design: creating a tenant, listing
//! tenants (platform admin), and resolving an exact external id to its one tenant.
//! [`TenantScope`] is the tenant-scoped repository: it cannot be built without a
//! [`TenantId`], and every key it reads or writes is derived from that id.
//!
//! Data layout (docs/data-model.md):
//! - `data`   `T#<tenant>` / `PROFILE`             name, retention, status, created_at
//! - `data`   `T#<tenant>` / `CH#<kind>#<id>`      channel details; secrets encrypted
//! - `routes` `ROUTE#<kind>#<id>` / `ROUTE`       tenant_id: exact id → one tenant
//! - `routes` `TENANTS` / `<tenant>`               the tenant directory
//! - `routes` `AUTHBY#<meta user>` / `<kind>#<id>` tenant_id: the channels a Meta user
//!   authorised, so a Meta data-deletion request for that user can be honoured
//! - `data`   `T#<tenant>` / `LINE#<member>#<line>` channel: the one channel attached to
//!   that Open Line ([`lines`], decision 0043)

pub mod channel;
pub mod index_backfill;
pub mod lines;
pub mod meta_account;
mod scope;
pub mod token_health;

use std::sync::Arc;

use serde::Serialize;

pub use crate::secret::Secret;
pub use channel::{
    ChannelHealth, ChannelKind, ChannelRef, ChannelSummary, Connection, CrmLink, CrmLinkState,
};
pub use lines::{LineError, OpenLineAttachment};
pub use scope::{RetentionChange, TenantScope, RETENTION_VERSION_ATTR};
pub use token_health::{ReadToken, TokenHealth, TokenStatus};

use crate::clock::now_secs;
use crate::crypto::{CryptoError, Envelope};
use crate::ids::{MetaUserId, TenantId};
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp};

/// Sort key of the tenant's profile item in its partition.
pub const PROFILE_SK: &str = "PROFILE";
/// Profile attribute holding the status (`active` / `suspended`).
pub const STATUS_ATTR: &str = "status";
const SUSPENDED_AT_ATTR: &str = "suspended_at";
const SUSPENSION_REASON_ATTR: &str = "suspension_reason";
const RESUMED_AT_ATTR: &str = "resumed_at";
/// Longest suspension reason, in characters.
pub const MAX_SUSPENSION_REASON: usize = 500;
pub(crate) const DIRECTORY_PK: &str = "TENANTS";
/// Default message retention for a new tenant.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Longest retention a tenant may choose (10 years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant not found")]
    TenantNotFound,
    #[error("{0} is not connected to this tenant")]
    ChannelNotFound(String),
    /// The external id already belongs to another tenant.
    #[error("{0} is already connected to another tenant")]
    ChannelTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A tenant's display name: 1-200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(s: &str) -> Result<Self, TenantError> {
        let t = s.trim();
        if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
            return Err(TenantError::Invalid(
                "name: must be 1 to 200 characters without control characters".into(),
            ));
        }
        Ok(TenantName(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Days messages are kept: 1..=3650.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub fn new(days: u32) -> Result<Self, TenantError> {
        if days == 0 || days > MAX_RETENTION_DAYS {
            return Err(TenantError::Invalid(format!(
                "retention_days: must be 1 to {MAX_RETENTION_DAYS}"
            )));
        }
        Ok(RetentionDays(days))
    }
    pub fn days(self) -> u32 {
        self.0
    }
}

impl Default for RetentionDays {
    fn default() -> Self {
        RetentionDays(DEFAULT_RETENTION_DAYS)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantProfile {
    pub id: TenantId,
    pub name: String,
    pub retention_days: u32,
    pub status: TenantStatus,
    pub created_at: i64,
    /// When the platform admin suspended the tenant (Unix seconds), while it is suspended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<i64>,
    /// The admin's reason for the suspension, while it is suspended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspension_reason: Option<String>,
}

impl TenantProfile {
    fn from_item(id: TenantId, item: &Item) -> Self {
        TenantProfile {
            id,
            name: item.get_s("name").unwrap_or_default().to_owned(),
            retention_days: item
                .get_n("retention_days")
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(DEFAULT_RETENTION_DAYS),
            status: match item.get_s(STATUS_ATTR) {
                Some("suspended") => TenantStatus::Suspended,
                _ => TenantStatus::Active,
            },
            created_at: item.get_n("created_at").unwrap_or(0),
            suspended_at: item.get_n(SUSPENDED_AT_ATTR),
            suspension_reason: item.get_s(SUSPENSION_REASON_ATTR).map(str::to_owned),
        }
    }

    pub fn is_suspended(&self) -> bool {
        self.status == TenantStatus::Suspended
    }
}

/// What [`TenantDirectory::suspend`] / [`TenantDirectory::resume`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    pub profile: TenantProfile,
    /// False when the tenant already had that status (nothing written, no audit entry).
    pub changed: bool,
}

/// A tenant's settings as shown to admins: profile and channels, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantSettings {
    #[serde(flatten)]
    pub profile: TenantProfile,
    pub channels: Vec<ChannelSummary>,
}

/// A page of the tenant directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantPage {
    pub tenants: Vec<TenantListEntry>,
    /// Pass as `after` to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantListEntry {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

/// Cross-tenant operations, by design: the platform admin's and the router's.
#[derive(Clone)]
pub struct TenantDirectory {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
}

impl TenantDirectory {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        TenantDirectory { store, envelope }
    }

    /// Creates a tenant with a fresh id: its profile and its directory entry, atomically.
    pub async fn create(
        &self,
        name: TenantName,
        retention: RetentionDays,
    ) -> Result<TenantProfile, TenantError> {
        let id = TenantId::generate();
        let now = now_secs();
        let profile = Item::new(&Key::new(id.partition(), PROFILE_SK))
            .with("name", name.as_str())
            .with("retention_days", i64::from(retention.days()))
            .with(STATUS_ATTR, "active")
            .with("created_at", now);
        let entry = Item::new(&Key::new(DIRECTORY_PK, id.as_str()))
            .with("tenant_id", id.as_str())
            .with("name", name.as_str())
            .with("created_at", now);
        self.store
            .transact_write(vec![
                WriteOp::Put {
                    table: Table::Data,
                    item: profile.clone(),
                    condition: Some(Condition::NotExists),
                },
                WriteOp::Put {
                    table: Table::Routes,
                    item: entry,
                    condition: Some(Condition::NotExists),
                },
            ])
            .await?;
        Ok(TenantProfile::from_item(id, &profile))
    }

    /// Lists tenants in id order, `limit` per page, after the given id.
    pub async fn list(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<TenantPage, TenantError> {
        let page = self
            .store
            .query(
                Table::Routes,
                &Query::partition(DIRECTORY_PK)
                    .limit(limit)
                    .start_after(after.map(|t| Key::new(DIRECTORY_PK, t.as_str()))),
            )
            .await?;
        let tenants = page
            .items
            .iter()
            .filter_map(|i| {
                Some(TenantListEntry {
                    id: TenantId::parse(i.get_s("tenant_id")?).ok()?,
                    name: i.get_s("name").unwrap_or_default().to_owned(),
                    created_at: i.get_n("created_at").unwrap_or(0),
                })
            })
            .collect();
        Ok(TenantPage {
            tenants,
            next: page.next.map(|k| k.sk),
        })
    }

    /// The tenant that owns exactly this external id, if any.
    pub async fn resolve(&self, channel: &ChannelRef) -> Result<Option<TenantId>, TenantError> {
        let item = self.store.get(Table::Routes, &channel.route_key()).await?;
        Ok(item
            .as_ref()
            .and_then(|i| i.get_s("tenant_id"))
            .and_then(|t| TenantId::parse(t).ok()))
    }

    /// Every channel the Meta user authorised, with the tenant that holds it (from the
    /// `AUTHBY#` index written with each connection).
    pub async fn channels_authorized_by(
        &self,
        user: &MetaUserId,
    ) -> Result<Vec<(TenantId, ChannelRef)>, TenantError> {
        let mut out = Vec::new();
        let mut query = Query::partition(channel::authorized_by_partition(user)).limit(100);
        loop {
            let page = self.store.query(Table::Routes, &query).await?;
            out.extend(page.items.iter().filter_map(|i| {
                let tenant = TenantId::parse(i.get_s("tenant_id")?).ok()?;
                let channel = ChannelRef::from_index_sk(i.get_s(crate::store::SK)?)?;
                Some((tenant, channel))
            }));
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => break,
            }
        }
        Ok(out)
    }

    /// Removes one entry of the `AUTHBY#` index if it still names `tenant`: for an entry left
    /// behind by a channel item that is already gone (written before the index existed, or
    /// removed by other means). Removing nothing is not an error.
    pub async fn forget_authorization(
        &self,
        user: &MetaUserId,
        tenant: &TenantId,
        channel: &ChannelRef,
    ) -> Result<(), TenantError> {
        match self
            .store
            .delete(
                Table::Routes,
                &channel.authorized_by_key(user),
                Some(Condition::Equals(
                    "tenant_id".into(),
                    tenant.as_str().into(),
                )),
            )
            .await
        {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's profile (one read), None when there is no such tenant.
    pub async fn profile(&self, tenant: &TenantId) -> Result<Option<TenantProfile>, TenantError> {
        Ok(self
            .store
            .get(Table::Data, &Key::new(tenant.partition(), PROFILE_SK))
            .await?
            .map(|i| TenantProfile::from_item(tenant.clone(), &i)))
    }

    /// The table store the directory reads and writes (services built on the directory,
    /// such as the held events of suspended tenants, share it).
    pub fn store(&self) -> &Arc<dyn TableStore> {
        &self.store
    }

    /// The envelope that seals the tenants' secrets.
    pub fn envelope(&self) -> &Arc<Envelope> {
        &self.envelope
    }

    /// Marks the tenant suspended (with the time and the admin's reason) and audits it.
    /// Idempotent: an already suspended tenant keeps its first date and reason, and nothing
    /// is written. The webhooks hold its events from then on; use
    /// the hold module's `Suspension`, which also releases them on resume.
    pub async fn suspend(
        &self,
        tenant: &TenantId,
        reason: &str,
        actor: &str,
    ) -> Result<StatusChange, TenantError> {
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > MAX_SUSPENSION_REASON
            || reason.chars().any(char::is_control)
        {
            return Err(TenantError::Invalid(format!(
                "reason: must be 1 to {MAX_SUSPENSION_REASON} characters without control characters"
            )));
        }
        self.set_status(tenant, TenantStatus::Suspended, reason, actor)
            .await
    }

    /// Marks the tenant active again and audits it; idempotent. This only flips the status:
    /// The hold module's `Suspension::resume` also releases what was held.
    pub async fn resume(
        &self,
        tenant: &TenantId,
        actor: &str,
    ) -> Result<StatusChange, TenantError> {
        self.set_status(tenant, TenantStatus::Active, "", actor)
            .await
    }

    async fn set_status(
        &self,
        tenant: &TenantId,
        to: TenantStatus,
        reason: &str,
        actor: &str,
    ) -> Result<StatusChange, TenantError> {
        let key = Key::new(tenant.partition(), PROFILE_SK);
        // Conditional on the status read, so two concurrent calls audit one change.
        for _ in 0..5 {
            let item = self
                .store
                .get(Table::Data, &key)
                .await?
                .ok_or(TenantError::TenantNotFound)?;
            let current = TenantProfile::from_item(tenant.clone(), &item);
            if current.status == to {
                return Ok(StatusChange {
                    profile: current,
                    changed: false,
                });
            }
            let was = match item.get_s(STATUS_ATTR) {
                Some(s) => Condition::Equals(STATUS_ATTR.into(), s.into()),
                None => Condition::AttrNotExists(STATUS_ATTR.into()),
            };
            let now = now_secs();
            let (update, action, details) = match to {
                TenantStatus::Suspended => (
                    Update::new()
                        .set(STATUS_ATTR, "suspended")
                        .set(SUSPENDED_AT_ATTR, now)
                        .set(SUSPENSION_REASON_ATTR, reason)
                        .remove(RESUMED_AT_ATTR),
                    crate::audit::AuditAction::TenantSuspended,
                    vec![("reason", reason)],
                ),
                TenantStatus::Active => (
                    Update::new()
                        .set(STATUS_ATTR, "active")
                        .set(RESUMED_AT_ATTR, now)
                        .remove(SUSPENDED_AT_ATTR)
                        .remove(SUSPENSION_REASON_ATTR),
                    crate::audit::AuditAction::TenantResumed,
                    Vec::new(),
                ),
            };
            match self
                .store
                .update(
                    Table::Data,
                    &key,
                    update,
                    Some(Condition::And(vec![Condition::Exists, was])),
                )
                .await
            {
                Ok(updated) => {
                    crate::audit::AuditLog::new(self.store.clone())
                        .record(tenant, action, actor, &details)
                        .await?;
                    return Ok(StatusChange {
                        profile: TenantProfile::from_item(tenant.clone(), &updated),
                        changed: true,
                    });
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TenantError::Store(StoreError::Unavailable(
            "status changed concurrently; try again".into(),
        )))
    }

    /// The scoped repository of an existing tenant (None when there is no such tenant).
    pub async fn scope(&self, tenant: &TenantId) -> Result<Option<TenantScope>, TenantError> {
        let scope = TenantScope::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        Ok(scope.profile().await?.map(|_| scope))
    }

    /// Like [`TenantDirectory::scope`], for one invocation of a relay worker: the profile
    /// read here and the channels read later are served from the scope for the rest of the
    /// job (decision 0058). Drop it with the job.
    pub async fn scope_for_invocation(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<TenantScope>, TenantError> {
        let scope = TenantScope::new(tenant.clone(), self.store.clone(), self.envelope.clone())
            .for_invocation();
        Ok(scope.profile().await?.map(|_| scope))
    }
}
