//! The scheduled probe of parked portals (decision 0025): the sync-worker function runs it
//! every 5 minutes (an EventBridge schedule in AWS, a timer in the local server).
//!
//! For each portal in the index of parked portals, least recently probed first: a parked
//! one is asked for `app.info` through its session (an expired token is refreshed and the
//! new pair stored, as for any call). On success the portal turns to releasing, its CRM
//! link to reachable (audited), and its parked jobs go back to the sync queue; on failure
//! the probe's time and failure kind are kept. A releasing portal gets whatever was left
//! to release, and its index entry goes once nothing is parked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

use super::parking::{ParkState, ParkedPortal, Parking, ParkingError};
use crate::bitrix::{BitrixClient, APP_INFO};
use crate::ids::TenantId;
use crate::portal::{Portal, PortalError, PortalTokens};
use crate::tenant::TenantDirectory;

/// Portals probed at once.
const CONCURRENCY: usize = 8;
/// A probe that takes longer fails as `timeout` (a hanging portal must not use up the run).
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);
/// No new probes are started after this much of a run (the function has 30 s).
const RUN_BUDGET: Duration = Duration::from_secs(15);

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// Parked portals asked.
    pub probed: usize,
    /// Of those, reached again.
    pub reached: usize,
    /// Jobs sent back to the sync queue.
    pub released: usize,
    /// Portals whose parked work is all delivered (index entry removed).
    pub finished: usize,
    /// Portals left for the next run (the run's budget was used up).
    pub deferred: usize,
}

/// Probes parked portals and releases their work. Build once per process.
#[derive(Clone)]
pub struct PortalProbe {
    inner: Arc<Inner>,
}

struct Inner {
    parking: Parking,
    tenants: TenantDirectory,
    client: BitrixClient,
}

impl PortalProbe {
    pub fn new(parking: Parking, tenants: TenantDirectory, client: BitrixClient) -> Self {
        PortalProbe {
            inner: Arc::new(Inner {
                parking,
                tenants,
                client,
            }),
        }
    }

    /// One scheduled run over every parked portal. One portal's failure is logged and does
    /// not stop the others.
    pub async fn run_once(&self) -> Result<ProbeReport, ParkingError> {
        let started = Instant::now();
        let mut portals = self.inner.parking.parked_portals().await?;
        // Every run reports the count, 0 included: the alarm on it needs data points.
        self.inner.parking.metrics().parked_portals(portals.len());
        // Least recently probed first, so a backlog of hanging portals cannot starve any.
        portals.sort_by_key(|p| p.probed_at_ms.unwrap_or(0));
        let mut report = ProbeReport::default();
        let mut rest = portals.as_slice();
        while !rest.is_empty() {
            if started.elapsed() >= RUN_BUDGET {
                report.deferred = rest.len();
                break;
            }
            let (now, later) = rest.split_at(rest.len().min(CONCURRENCY));
            let mut visits = JoinSet::new();
            for portal in now {
                let (inner, portal) = (self.inner.clone(), portal.clone());
                visits.spawn(async move { inner.visit(&portal).await });
            }
            while let Some(done) = visits.join_next().await {
                match done {
                    Ok(Ok(visit)) => {
                        report.probed += usize::from(visit.probed);
                        report.reached += usize::from(visit.reached);
                        report.released += visit.released;
                        report.finished += usize::from(visit.finished);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "parked portal not handled"),
                    Err(e) => tracing::error!(error = %e, "parked portal probe panicked"),
                }
            }
            rest = later;
        }
        Ok(report)
    }
}

#[derive(Default)]
struct Visit {
    probed: bool,
    reached: bool,
    released: usize,
    finished: bool,
}

impl Inner {
    async fn visit(&self, portal: &ParkedPortal) -> Result<Visit, ParkingError> {
        let tenant = &portal.tenant;
        let mut visit = Visit::default();
        if portal.state == ParkState::Parked {
            visit.probed = true;
            let answer = tokio::time::timeout(PROBE_TIMEOUT, self.probe(tenant))
                .await
                .unwrap_or(Err("timeout"));
            if let Err(kind) = answer {
                tracing::info!(%tenant, kind, "parked portal still unreachable");
                self.parking.record_probe_failure(tenant, kind).await?;
                return Ok(visit);
            }
            visit.reached = self.parking.resume(tenant).await?;
        }
        visit.released = self.parking.release_all(tenant).await?;
        visit.finished = self.parking.finish(tenant).await?;
        Ok(visit)
    }

    /// Asks the tenant's portal for `app.info` ("Show Application Information app.info":
    /// scope `basic`, any user may call it): the cheapest documented call that proves the
    /// portal answers and accepts our tokens. Err: the failure's kind.
    async fn probe(&self, tenant: &TenantId) -> Result<(), &'static str> {
        let scope = match self.tenants.scope(tenant).await {
            Ok(Some(scope)) => scope,
            Ok(None) => return Err("tenant_gone"),
            Err(_) => return Err("internal"),
        };
        let mut portal = Portal::load(&scope).await.map_err(|e| match e {
            PortalError::NotConnected(_) => "not_connected",
            PortalError::Tenant(_) => "internal",
        })?;
        let tokens = PortalTokens::new(scope.clone(), portal.channel.clone());
        let domain = portal.domain.clone();
        let mut session = self.client.session(&domain, &mut portal.tokens, &tokens);
        session
            .call(APP_INFO, Value::Null)
            .await
            .map(drop)
            .map_err(|e| e.kind())
    }
}
