//! The tenant's CRM link as the parking sees it: unreachable when a portal is parked,
//! reachable when a probe finds it again, each change audited with actor "system"; the last
//! failed probe kept with it.

use super::{index_key, Parking, ParkingError, ACTOR, PROBED_AT, PROBE_ERROR, STATE};
use crate::audit::AuditAction;
use crate::clock::{now_millis, now_secs};
use crate::ids::TenantId;
use crate::store::{Condition, StoreError, Table, Update};
use crate::tenant::{ChannelKind, ChannelRef, CrmLink, CrmLinkState, TenantError, TenantScope};

impl Parking {
    /// A probe reached the parked portal: releasing from now on, the CRM link reachable
    /// (audited). False when the portal was not parked (any more).
    pub async fn resume(&self, tenant: &TenantId) -> Result<bool, ParkingError> {
        let update = Update::new()
            .set(STATE, "releasing")
            .set(PROBED_AT, now_millis())
            .remove(PROBE_ERROR);
        match self
            .store
            .update(
                Table::Routes,
                &index_key(tenant),
                update,
                Some(Condition::Equals(STATE.into(), "parked".into())),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::ConditionFailed { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let now = now_secs();
        let channel = self
            .update_link(tenant, |_| CrmLink::reachable(now))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(%tenant, error = %e, "could not mark the CRM link reachable");
                None
            });
        let mut details = vec![("kind", ChannelKind::Bitrix24.name())];
        if let Some(c) = &channel {
            details.push(("channel", c.as_str()));
        }
        self.audit
            .record(tenant, AuditAction::CrmLinkReachable, ACTOR, &details)
            .await?;
        tracing::info!(%tenant, "parked portal reachable again: releasing its work");
        Ok(true)
    }

    /// A probe of the parked portal failed with `error` (a kind): kept with the index entry
    /// and the tenant's CRM link.
    pub async fn record_probe_failure(
        &self,
        tenant: &TenantId,
        error: &str,
    ) -> Result<(), ParkingError> {
        let now = now_millis();
        let update = Update::new().set(PROBED_AT, now).set(PROBE_ERROR, error);
        match self
            .store
            .update(
                Table::Routes,
                &index_key(tenant),
                update,
                Some(Condition::Exists),
            )
            .await
        {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.update_link(tenant, |old| {
            let mut link = old
                .filter(CrmLink::is_unreachable)
                .unwrap_or_else(|| unreachable_since(now_secs(), error));
            link.last_probe_at = Some(now / 1000);
            link.last_error = Some(error.to_owned());
            link
        })
        .await?;
        Ok(())
    }

    /// The portal was just parked: the CRM link unreachable, audited. Failures are logged
    /// (the job is parked either way).
    pub(super) async fn mark_unreachable(&self, tenant: &TenantId, error: &str) {
        let now = now_secs();
        let channel = self
            .update_link(tenant, |_| unreachable_since(now, error))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(%tenant, error = %e, "could not mark the CRM link unreachable");
                None
            });
        let mut details = vec![("kind", ChannelKind::Bitrix24.name()), ("error", error)];
        if let Some(c) = &channel {
            details.push(("channel", c.as_str()));
        }
        if let Err(e) = self
            .audit
            .record(tenant, AuditAction::CrmLinkUnreachable, ACTOR, &details)
            .await
        {
            tracing::error!(%tenant, error = %e, "could not audit the CRM link lost");
        }
    }

    /// Writes the tenant's CRM link on its Bitrix24 channel; returns the channel's id, None
    /// when no portal is connected (nothing to write on).
    async fn update_link(
        &self,
        tenant: &TenantId,
        change: impl FnOnce(Option<CrmLink>) -> CrmLink,
    ) -> Result<Option<String>, ParkingError> {
        let scope = TenantScope::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        let Some(summary) = scope
            .channels()
            .await?
            .into_iter()
            .find(|c| c.kind == ChannelKind::Bitrix24)
        else {
            return Ok(None);
        };
        let Ok(channel) = ChannelRef::parse(ChannelKind::Bitrix24, &summary.id) else {
            return Ok(None);
        };
        match scope
            .set_crm_link(&channel, &change(summary.crm_link))
            .await
        {
            Ok(()) => Ok(Some(summary.id)),
            Err(TenantError::ChannelNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn unreachable_since(since: i64, error: &str) -> CrmLink {
    CrmLink {
        state: CrmLinkState::Unreachable,
        since,
        last_probe_at: None,
        last_error: Some(error.to_owned()),
    }
}
