//! Disconnecting a channel revokes our access at the provider (decision 0036), as the
//! privacy policy promises:
//!
//! 1. At once, in one transaction: the route, the channel item and its secrets are deleted
//!    (no more message flows), and a revocation record is written holding the steps to do
//!    and the tokens they need, encrypted under the record's own field reference.
//! 2. The steps run right away, and again from the schedule while any is pending:
//!    - WhatsApp: our app's subscription to the WABA is removed (`DELETE
//!      /{waba-id}/subscribed_apps`), unless a number of that WABA still has a route (any
//!      tenant's: routes are global). The WABA's numbers are read from Meta
//!      (`/{waba-id}/phone_numbers`), so a number connected before this record existed counts.
//!    - Instagram: with a Page, the Page's subscription is removed; an Instagram Login
//!      account's permissions are revoked (`DELETE /me/permissions` on the Instagram host).
//!    - Bitrix24: our connectors are unregistered (`imconnector.unregister`) and our event
//!      handlers unbound (`event.unbind`), with the portal's tokens, refreshed if expired.
//!      After the app was uninstalled nothing is called: the portal already dropped both.
//! 3. The tokens are deleted when every step is done (or skipped), or when the bounded number
//!    of attempts ([`DEFAULT_MAX_ATTEMPTS`]) is spent: then the pending steps are `failed`.
//!
//! Every stage is audited (steps and states, never a token); the admin API lists the records.

pub mod record;
mod steps;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::{AuditAction, AuditLog};
use crate::bitrix::BitrixClient;
use crate::clock::now_secs;
use crate::crypto::{Envelope, FieldRef};
use crate::graph::GraphClient;
use crate::ids::TenantId;
use crate::portal::Connectors;
use crate::secret::Secret;
use crate::store::{
    Condition, Item, Query, StoreError, Table, TableStore, Update, WriteOp, TTL_ATTR,
};
use crate::tenant::{ChannelKind, ChannelRef, TenantDirectory, TenantError, TenantScope};

pub use record::{Revocation, Step, StepKind, StepState};

/// Attempts before pending steps are given up and the tokens deleted anyway.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Delay after the first failed attempt; doubles per attempt up to [`MAX_DELAY_SECS`]
/// (about a day and a half in all with the default attempts).
pub const FIRST_DELAY_SECS: i64 = 300;
pub const MAX_DELAY_SECS: i64 = 6 * 3600;

/// The channel details a revocation keeps (the steps' targets).
const STEP_DETAILS: &[&str] = &["waba_id", "page_id", "domain"];

/// Actor named in the audit entries of scheduled attempts.
pub const SYSTEM_ACTOR: &str = "system";

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("revocation record: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// What a scheduled run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub attempted: usize,
    pub finished: usize,
    pub still_pending: usize,
}

/// A tenant's revocations after [`Revocations::settle_tenant`]: how many are still pending,
/// and how many steps ended in each state (`whatsapp_subscription=done` → 1), with no
/// channel id: this summary outlives an erased tenant in its erasure request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TenantRevocations {
    pub pending: usize,
    pub steps: BTreeMap<String, usize>,
}

impl TenantRevocations {
    /// `step=state:count` pairs, comma separated (empty when the tenant had no channel).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.steps.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        parts.join(",")
    }
}

/// Disconnects channels and revokes our access at the providers. Build once per process.
#[derive(Clone)]
pub struct Revocations {
    tenants: TenantDirectory,
    audit: AuditLog,
    graph: GraphClient,
    instagram: GraphClient,
    bitrix: Option<(BitrixClient, String)>,
    connectors: Connectors,
    max_attempts: u32,
}

impl Revocations {
    /// `graph` on `graph.facebook.com`, `instagram` on the Instagram Login host.
    pub fn new(tenants: TenantDirectory, graph: GraphClient, instagram: GraphClient) -> Self {
        Revocations {
            audit: AuditLog::new(tenants.store().clone()),
            tenants,
            graph,
            instagram,
            bitrix: None,
            connectors: Connectors::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The Bitrix24 application and the events handler URL we bound (`PortalSetup::events_url`).
    /// Without it a portal's steps stay pending (and are given up in the end).
    pub fn with_bitrix(mut self, client: BitrixClient, events_url: String) -> Self {
        self.bitrix = Some((client, events_url));
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    fn store(&self) -> &Arc<dyn TableStore> {
        self.tenants.store()
    }

    fn envelope(&self) -> &Arc<Envelope> {
        self.tenants.envelope()
    }

    /// Disconnects `channel` (route and channel item gone at once), records its revocation
    /// and makes the first attempt. `app_uninstalled`: the Bitrix24 portal removed our app, so
    /// its steps are skipped. `ChannelNotFound` when it was not connected.
    pub async fn disconnect(
        &self,
        scope: &TenantScope,
        channel: &ChannelRef,
        actor: &str,
        app_uninstalled: bool,
    ) -> Result<Revocation, RevocationError> {
        let tenant = scope.tenant().clone();
        let details: BTreeMap<String, String> = scope
            .channels()
            .await?
            .into_iter()
            .find(|c| c.kind == channel.kind() && c.id == channel.external_id())
            .map(|c| c.details)
            .unwrap_or_default()
            .into_iter()
            // Only what the steps need: no display phone number, no user name kept.
            .filter(|(k, _)| STEP_DETAILS.contains(&k.as_str()))
            .collect();
        let mut tokens = Vec::new();
        for name in record::token_names(channel.kind()) {
            if let Ok(secret) = scope.channel_secret(channel, name).await {
                tokens.push((*name, secret));
            }
        }
        let mut steps = initial_steps(channel.kind(), &details, app_uninstalled, tokens.is_empty());
        // A WhatsApp number of a tenant with a portal was registered there as a message
        // provider (decision 0050): it is removed with the portal's own tokens.
        if channel.kind() == ChannelKind::WhatsApp
            && scope
                .channels()
                .await?
                .iter()
                .any(|c| c.kind == ChannelKind::Bitrix24)
        {
            steps.push(Step::pending(StepKind::Bitrix24MessageProvider));
        }
        let now_ms = crate::clock::now_millis();
        let now = now_ms / 1000;
        let id = record::record_id(channel, now_ms);
        let pending = Revocation::overall(&steps) == "pending";
        let item = record::new_item(
            self.envelope(),
            &tenant,
            &id,
            channel,
            &details,
            &steps,
            if pending { &tokens } else { &[] },
            now,
        )
        .await?;
        let mut ops = vec![WriteOp::Put {
            table: Table::Data,
            item,
            condition: Some(Condition::NotExists),
        }];
        if pending {
            ops.push(WriteOp::Put {
                table: Table::Routes,
                item: Item::new(&record::pending_key(&tenant, &id))
                    .with("tenant_id", tenant.as_str())
                    .with("record", id.as_str()),
                condition: None,
            });
        }
        drop(tokens);
        scope.disconnect_with(channel, ops).await?;
        self.record_audit(
            &tenant,
            AuditAction::RevocationStarted,
            actor,
            channel.kind(),
            channel.external_id(),
            &steps,
            &[("tokens", if pending { "held" } else { "deleted" })],
        )
        .await;
        if pending {
            if let Some(r) = self.attempt(&tenant, &id, actor).await? {
                return Ok(r);
            }
        }
        self.get(&tenant, &id)
            .await?
            .ok_or_else(|| StoreError::Backend("revocation record vanished".into()).into())
    }

    /// A person disconnects `channel` (the admin API, the console): [`Self::disconnect`],
    /// then the `channel_disconnected` entry in the tenant's audit log. The channel is gone
    /// by then, so a failure to write the entry is logged loudly, not returned.
    pub async fn disconnect_by(
        &self,
        scope: &TenantScope,
        channel: &ChannelRef,
        actor: &str,
    ) -> Result<Revocation, RevocationError> {
        let revocation = self.disconnect(scope, channel, actor, false).await?;
        let details = [
            ("kind", channel.kind().name()),
            ("channel", channel.external_id()),
        ];
        if let Err(e) = self
            .audit
            .record(
                scope.tenant(),
                AuditAction::ChannelDisconnected,
                actor,
                &details,
            )
            .await
        {
            tracing::error!(target: "admin_api", tenant = %scope.tenant(), action = AuditAction::ChannelDisconnected.name(), error = %e, "audit entry not written");
        }
        Ok(revocation)
    }

    /// One record.
    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Revocation>, StoreError> {
        let item = self
            .store()
            .get(Table::Data, &record::record_key(tenant, id))
            .await?;
        Ok(item.as_ref().and_then(record::from_item))
    }

    /// The tenant's revocation records, oldest first (at most 200).
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Revocation>, StoreError> {
        let page = self
            .store()
            .query(
                Table::Data,
                &Query::partition(record::partition(tenant)).limit(200),
            )
            .await?;
        Ok(page.items.iter().filter_map(record::from_item).collect())
    }

    /// Attempts every pending revocation of `tenant` now, whatever its next attempt time
    /// (an operator's retry once the provider is back).
    pub async fn retry_tenant(
        &self,
        tenant: &TenantId,
        actor: &str,
    ) -> Result<Vec<Revocation>, RevocationError> {
        let mut out = Vec::new();
        for r in self.list(tenant).await? {
            if r.is_pending() {
                if let Some(done) = self.attempt(tenant, &r.id, actor).await? {
                    out.push(done);
                }
            }
        }
        Ok(out)
    }

    /// Attempts the pending revocations of `tenant` whose next attempt is due at `now`, and
    /// says what is left: an account erasure waits on it before shredding the tenant's keys,
    /// which would destroy the tokens the steps still need (decision 0047). The backoff is the
    /// records' own, so a provider that is down is not hammered by the erasure's schedule.
    pub async fn settle_tenant(
        &self,
        tenant: &TenantId,
        now: i64,
        actor: &str,
    ) -> Result<TenantRevocations, RevocationError> {
        let mut out = TenantRevocations::default();
        for r in self.list(tenant).await? {
            let r = if r.is_pending() && r.next_attempt_at.unwrap_or(0) <= now {
                match self.attempt(tenant, &r.id, actor).await? {
                    Some(r) => r,
                    None => continue,
                }
            } else {
                r
            };
            if r.is_pending() {
                out.pending += 1;
            }
            for step in &r.steps {
                *out.steps
                    .entry(format!("{}={}", step.step.name(), step.state.name()))
                    .or_default() += 1;
            }
        }
        Ok(out)
    }

    /// Disconnects every channel of `scope` through [`Self::disconnect`] (each with its
    /// revocation record); channels already gone are skipped. The number disconnected.
    pub async fn disconnect_all(
        &self,
        scope: &TenantScope,
        actor: &str,
    ) -> Result<usize, RevocationError> {
        let mut n = 0;
        for channel in scope.channels().await? {
            let Ok(r) = ChannelRef::parse(channel.kind, &channel.id) else {
                continue;
            };
            match self.disconnect(scope, &r, actor, false).await {
                Ok(_) => n += 1,
                Err(RevocationError::Tenant(TenantError::ChannelNotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// The schedule: attempts the due pending revocations of every tenant (at most `budget`).
    pub async fn run_due(&self, budget: usize) -> Result<SweepReport, RevocationError> {
        self.run_due_as_of(now_secs(), budget).await
    }

    /// [`Revocations::run_due`] as if the time were `now` (Unix seconds): records whose next
    /// attempt is at or before it are due.
    pub async fn run_due_as_of(
        &self,
        now: i64,
        budget: usize,
    ) -> Result<SweepReport, RevocationError> {
        let mut report = SweepReport::default();
        let mut start = None;
        loop {
            let page = self
                .store()
                .query(
                    Table::Routes,
                    &Query::partition(record::PENDING_PARTITION)
                        .limit(100)
                        .start_after(start.take()),
                )
                .await?;
            for entry in &page.items {
                if report.attempted >= budget {
                    return Ok(report);
                }
                let (Some(tenant), Some(id)) = (
                    entry
                        .get_s("tenant_id")
                        .and_then(|t| TenantId::parse(t).ok()),
                    entry.get_s("record"),
                ) else {
                    continue;
                };
                match self.get(&tenant, id).await? {
                    Some(r) if r.is_pending() && r.next_attempt_at.unwrap_or(0) > now => continue,
                    _ => {}
                }
                report.attempted += 1;
                match self.attempt(&tenant, id, SYSTEM_ACTOR).await? {
                    Some(r) if r.is_pending() => report.still_pending += 1,
                    _ => report.finished += 1,
                }
            }
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(report),
            }
        }
    }

    /// One attempt of a record's pending steps; finishes it (tokens deleted) when nothing is
    /// pending any more or the attempts are spent. `None` when the record is gone.
    async fn attempt(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &str,
    ) -> Result<Option<Revocation>, RevocationError> {
        let key = record::record_key(tenant, id);
        let Some(item) = self.store().get(Table::Data, &key).await? else {
            self.store()
                .delete(Table::Routes, &record::pending_key(tenant, id), None)
                .await?;
            return Ok(None);
        };
        let Some(mut r) = record::from_item(&item) else {
            return Err(StoreError::Backend("revocation record unreadable".into()).into());
        };
        if !r.is_pending() {
            self.store()
                .delete(Table::Routes, &record::pending_key(tenant, id), None)
                .await?;
            return Ok(Some(r));
        }
        let mut tokens: BTreeMap<&str, Secret> = BTreeMap::new();
        for name in record::token_names(r.kind) {
            let attr = record::token_attr(name);
            if let Some(blob) = item.get_b(&attr) {
                let plain = self
                    .envelope()
                    .decrypt_string(FieldRef::new(tenant, Table::Data, &key, &attr), blob)
                    .await?;
                tokens.insert(name, Secret::from_decrypted(plain));
            }
        }
        let context = steps::Context {
            store: self.store(),
            envelope: self.envelope(),
            tenant,
            key: &key,
            graph: &self.graph,
            instagram: &self.instagram,
            bitrix: self.bitrix.as_ref(),
            connectors: &self.connectors,
        };
        for step in r.steps.iter_mut().filter(|s| s.state == StepState::Pending) {
            match steps::run(&context, step.step, r.kind, &r.channel, &r.details, &tokens).await {
                Ok(steps::Outcome::Done) => {
                    step.state = StepState::Done;
                    step.last_error = None;
                }
                Ok(steps::Outcome::Skipped(why)) => {
                    step.state = StepState::Skipped;
                    step.last_error = None;
                    step.note = Some(why);
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, step = step.step.name(), error = %e, "revocation step failed; retried later");
                    step.last_error = Some(e);
                }
            }
        }
        drop(tokens);
        let attempts = r.attempts + 1;
        let given_up = Revocation::overall(&r.steps) == "pending" && attempts >= self.max_attempts;
        if given_up {
            for step in r.steps.iter_mut().filter(|s| s.state == StepState::Pending) {
                step.state = StepState::Failed;
            }
        }
        let now = now_secs();
        let finished = Revocation::overall(&r.steps) != "pending";
        let mut update = Update::new()
            .set("steps", serde_json::to_string(&r.steps).unwrap_or_default())
            .set("attempts", i64::from(attempts))
            .set("updated_at", now);
        if finished {
            update = update.set(TTL_ATTR, now + record::RECORD_DAYS * 86_400);
            for name in record::token_names(r.kind) {
                update = update.remove(&record::token_attr(name));
            }
        } else {
            update = update.set("next_attempt_at", now + backoff(attempts));
        }
        // Only the attempt that read this state writes: a concurrent one leaves it alone.
        let written = self
            .store()
            .update(
                Table::Data,
                &key,
                update,
                Some(Condition::Equals(
                    "attempts".into(),
                    i64::from(r.attempts).into(),
                )),
            )
            .await;
        match written {
            Ok(_) => {}
            Err(StoreError::ConditionFailed { .. }) => return Ok(self.get(tenant, id).await?),
            Err(e) => return Err(e.into()),
        }
        if finished {
            self.store()
                .delete(Table::Routes, &record::pending_key(tenant, id), None)
                .await?;
        }
        r.attempts = attempts;
        let action = match (finished, given_up) {
            (true, true) => AuditAction::RevocationGivenUp,
            (true, false) => AuditAction::RevocationCompleted,
            _ => AuditAction::RevocationPending,
        };
        let attempt = attempts.to_string();
        let tokens = if finished { "deleted" } else { "held" };
        self.record_audit(
            tenant,
            action,
            actor,
            r.kind,
            &r.channel,
            &r.steps,
            &[("attempt", attempt.as_str()), ("tokens", tokens)],
        )
        .await;
        Ok(self.get(tenant, id).await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_audit(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        actor: &str,
        kind: ChannelKind,
        channel: &str,
        steps: &[Step],
        extra: &[(&str, &str)],
    ) {
        let states: Vec<String> = steps
            .iter()
            .map(|s| format!("{}={}", s.step.name(), s.state.name()))
            .collect();
        let states = states.join(",");
        let mut details = vec![
            ("kind", kind.name()),
            ("channel", channel),
            ("steps", states.as_str()),
        ];
        details.extend_from_slice(extra);
        if let Err(e) = self.audit.record(tenant, action, actor, &details).await {
            tracing::warn!(tenant = %tenant, error = %e, "revocation audit entry not written");
        }
    }
}

/// Delay before the next attempt after `attempts` failed ones.
fn backoff(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_DELAY_SECS << doublings).min(MAX_DELAY_SECS)
}

/// The steps a disconnect of `kind` owes the provider.
fn initial_steps(
    kind: ChannelKind,
    details: &BTreeMap<String, String>,
    app_uninstalled: bool,
    no_token: bool,
) -> Vec<Step> {
    let kinds: Vec<StepKind> = match kind {
        ChannelKind::WhatsApp => vec![StepKind::WhatsAppSubscription],
        ChannelKind::Instagram if details.contains_key("page_id") => {
            vec![StepKind::InstagramPageSubscription]
        }
        ChannelKind::Instagram => vec![StepKind::InstagramPermissions],
        ChannelKind::Bitrix24 => vec![StepKind::Bitrix24Connectors, StepKind::Bitrix24Events],
    };
    kinds
        .into_iter()
        .map(|k| {
            let skip = |why: &str| Step {
                state: StepState::Skipped,
                note: Some(why.into()),
                ..Step::pending(k)
            };
            if app_uninstalled && kind == ChannelKind::Bitrix24 {
                skip("the application was uninstalled from the portal")
            } else if no_token {
                skip("no token was held for the channel")
            } else {
                Step::pending(k)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), 300);
        assert_eq!(backoff(2), 600);
        assert_eq!(backoff(4), 2400);
        assert_eq!(backoff(9), MAX_DELAY_SECS);
        assert_eq!(backoff(40), MAX_DELAY_SECS);
    }

    #[test]
    fn uninstalled_portals_owe_nothing_and_instagram_depends_on_the_page() {
        let none = BTreeMap::new();
        let steps = initial_steps(ChannelKind::Bitrix24, &none, true, false);
        assert_eq!(Revocation::overall(&steps), "done");
        assert!(steps.iter().all(|s| s.state == StepState::Skipped));
        let steps = initial_steps(ChannelKind::Bitrix24, &none, false, false);
        assert_eq!(Revocation::overall(&steps), "pending");
        assert_eq!(steps.len(), 2);
        let page = BTreeMap::from([("page_id".to_owned(), "1".to_owned())]);
        assert_eq!(
            initial_steps(ChannelKind::Instagram, &page, false, false)[0].step,
            StepKind::InstagramPageSubscription
        );
        assert_eq!(
            initial_steps(ChannelKind::Instagram, &none, false, false)[0].step,
            StepKind::InstagramPermissions
        );
    }
}
