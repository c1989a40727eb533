//! The audit log: an append-only, tenant-scoped record of what was done to a tenant's
//! connections, settings and data (connections, disconnections, exports, erasure requests and
//! their completion, settings changes, suspension and resumption, the CRM link to the
//! Bitrix24 portal lost and found again). Readable by the tenant's owner; entries are never
//! updated. They carry ids and kinds (and the platform admin's suspension reason), never
//! message content, tokens or customer details.
//!
//! Entries live in `T#<t>#AUDIT` with sort key `<ms, 13 digits>#<8 hex>`, so a query reads them
//! in time order, newest first with `descending`. Erasing a tenant removes its log with the
//! rest of its data; the platform keeps its own record of that erasure (see the erasure
//! module).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::now_millis;

/// The audit log's sub-partition, `T#<t>#AUDIT`.
pub const AUDIT_SUFFIX: &str = "AUDIT";
use crate::crypto::random_bytes;
use crate::ids::TenantId;
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, WriteOp,
};

/// What happened. Stable names: they are the log's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    ChannelConnected,
    /// A connect refused: the token did not prove ownership, the provider could not tell,
    /// or the id is held elsewhere (`reason`; decision 0032). Never the token.
    ChannelConnectRefused,
    ChannelDisconnected,
    SettingsChanged,
    ApiKeyCreated,
    ApiKeyRevoked,
    ExportRequested,
    ExportCompleted,
    ErasureRequested,
    ErasureCancelled,
    ErasureCompleted,
    RetentionApplied,
    TenantSuspended,
    TenantResumed,
    UserInvited,
    InvitationWithdrawn,
    UserRoleChanged,
    UserRemoved,
    PlanChanged,
    /// The CRM sync found the tenant's Bitrix24 portal unreachable and parked its work.
    CrmLinkUnreachable,
    /// A probe reached the parked portal again; its held work resumes.
    CrmLinkReachable,
    /// A disconnect recorded the provider steps that revoke our access (decision 0036).
    RevocationStarted,
    /// An attempt left a step pending (the provider failed); retried later, tokens held.
    RevocationPending,
    /// Every step done or skipped; our copies of the tokens are deleted.
    RevocationCompleted,
    /// The attempts are spent: pending steps are `failed`, the tokens deleted anyway.
    RevocationGivenUp,
    /// A channel's expiring token was renewed by the refresh job (issue 14).
    ChannelTokenRefreshed,
    /// Renewing a channel's token failed; the tenant's owners and admins were told.
    ChannelTokenRefreshFailed,
}

impl AuditAction {
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::ChannelConnected => "channel_connected",
            AuditAction::ChannelConnectRefused => "channel_connect_refused",
            AuditAction::ChannelDisconnected => "channel_disconnected",
            AuditAction::SettingsChanged => "settings_changed",
            AuditAction::ApiKeyCreated => "api_key_created",
            AuditAction::ApiKeyRevoked => "api_key_revoked",
            AuditAction::ExportRequested => "export_requested",
            AuditAction::ExportCompleted => "export_completed",
            AuditAction::ErasureRequested => "erasure_requested",
            AuditAction::ErasureCancelled => "erasure_cancelled",
            AuditAction::ErasureCompleted => "erasure_completed",
            AuditAction::RetentionApplied => "retention_applied",
            AuditAction::TenantSuspended => "tenant_suspended",
            AuditAction::TenantResumed => "tenant_resumed",
            AuditAction::UserInvited => "user_invited",
            AuditAction::InvitationWithdrawn => "invitation_withdrawn",
            AuditAction::UserRoleChanged => "user_role_changed",
            AuditAction::UserRemoved => "user_removed",
            AuditAction::PlanChanged => "plan_changed",
            AuditAction::CrmLinkUnreachable => "crm_link_unreachable",
            AuditAction::CrmLinkReachable => "crm_link_reachable",
            AuditAction::RevocationStarted => "revocation_started",
            AuditAction::RevocationPending => "revocation_pending",
            AuditAction::RevocationCompleted => "revocation_completed",
            AuditAction::RevocationGivenUp => "revocation_given_up",
            AuditAction::ChannelTokenRefreshed => "channel_token_refreshed",
            AuditAction::ChannelTokenRefreshFailed => "channel_token_refresh_failed",
        }
    }
}

/// One entry as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub action: String,
    /// Who did it: `platform_admin`, `api_key:<id>`, `meta`, `system`, later a user id.
    pub actor: String,
    /// Ids and kinds only (channel kind and id, export id, erasure id, setting names).
    pub details: BTreeMap<String, String>,
}

/// A page of entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass back as `before` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Writes and reads one tenant's audit log.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn TableStore>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        AuditLog { store }
    }

    fn partition(tenant: &TenantId) -> String {
        tenant.sub_partition(AUDIT_SUFFIX)
    }

    /// Appends an entry (never overwrites one: the write is conditional on a fresh key).
    pub async fn record(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        actor: &str,
        details: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let WriteOp::Put {
            table,
            item,
            condition,
        } = Self::entry_write(tenant, action, actor, details)?
        else {
            unreachable!("an entry is a put");
        };
        self.store.put(table, item, condition).await
    }

    /// The write that appends an entry, for a change that records itself in the same
    /// transaction: the entry then cannot be missing, nor land after what the change set off
    /// (a retention change and the re-stamp a schedule runs at once).
    pub fn entry_write(
        tenant: &TenantId,
        action: AuditAction,
        actor: &str,
        details: &[(&str, &str)],
    ) -> Result<WriteOp, StoreError> {
        let mut suffix = [0u8; 4];
        random_bytes(&mut suffix).map_err(|e| StoreError::Backend(e.to_string()))?;
        let at = now_millis();
        let key = Key::new(
            Self::partition(tenant),
            format!("{at:013}#{}", hex::encode(suffix)),
        );
        let details: BTreeMap<String, AttrValue> = details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::S((*v).to_owned())))
            .collect();
        let item = Item::new(&key)
            .with("at", at)
            .with("action", action.name())
            .with("actor", actor)
            .with("details", AttrValue::M(details));
        Ok(WriteOp::Put {
            table: Table::Data,
            item,
            condition: Some(Condition::NotExists),
        })
    }

    /// Entries newest first, `limit` per page, older than `before` (a previous page's `next`).
    pub async fn read(
        &self,
        tenant: &TenantId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let pk = Self::partition(tenant);
        let page = self
            .store
            .query(
                Table::Data,
                &Query::partition(pk.clone())
                    .descending()
                    .limit(limit)
                    .start_after(before.map(|sk| Key::new(pk.clone(), sk))),
            )
            .await?;
        let entries = page
            .items
            .iter()
            .map(|i| AuditEntry {
                at: i.get_n("at").unwrap_or(0),
                action: i.get_s("action").unwrap_or_default().to_owned(),
                actor: i.get_s("actor").unwrap_or_default().to_owned(),
                details: match i.get("details") {
                    Some(AttrValue::M(m)) => m
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_s()?.to_owned())))
                        .collect(),
                    _ => BTreeMap::new(),
                },
            })
            .collect();
        Ok(AuditPage {
            entries,
            next: page.next.map(|k| k.sk),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn entries_read_back_newest_first_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
        let (a, b) = (TenantId::generate(), TenantId::generate());
        log.record(
            &a,
            AuditAction::ChannelConnected,
            "platform_admin",
            &[("kind", "whatsapp")],
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        log.record(
            &a,
            AuditAction::ExportRequested,
            "platform_admin",
            &[("export_id", "x1")],
        )
        .await
        .unwrap();
        log.record(&b, AuditAction::SettingsChanged, "platform_admin", &[])
            .await
            .unwrap();
        let page = log.read(&a, None, 1).await.unwrap();
        assert_eq!(page.entries[0].action, "export_requested");
        let older = log.read(&a, page.next.as_deref(), 10).await.unwrap();
        assert_eq!(older.entries.len(), 1);
        assert_eq!(older.entries[0].action, "channel_connected");
        assert_eq!(older.entries[0].details["kind"], "whatsapp");
        assert_eq!(log.read(&b, None, 10).await.unwrap().entries.len(), 1);
    }
}
