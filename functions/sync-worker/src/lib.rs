//! sync-worker's scheduled run, shared by its `main.rs` and the sample events' test: the
//! pending revocations of disconnected channels are retried (decision 0036), then parked
//! portals are probed and their work released when they answer (decision 0025), then the
//! Coexistence chat history is imported a share at a time (decision 0052), then restrictions
//! that ended without an event are shown on their Open Lines (decision 0066).

use wappline::app::runtime::Error;
use wappline::crm_sync::{HistoryImport, PortalProbe};
use wappline::portal::restriction_ends::RestrictionEnds;
use wappline::revocation::Revocations;

/// Revocations one scheduled run attempts (each is a few provider calls).
pub const REVOCATION_BUDGET: usize = 200;
/// Lines one scheduled run writes a restriction's end on.
pub const RESTRICTION_END_BUDGET: usize = 200;

/// One scheduled run; its report is the invocation's answer.
pub async fn scheduled(
    probe: &PortalProbe,
    revocations: &Revocations,
    history: &HistoryImport,
    restriction_ends: Option<&RestrictionEnds>,
) -> Result<serde_json::Value, Error> {
    // Revocations first: they are independent of the portal probe, and a probe failure
    // must not keep a provider step pending for longer.
    let revoked = revocations.run_due(REVOCATION_BUDGET).await;
    match &revoked {
        Ok(r) => tracing::info!(
            attempted = r.attempted,
            finished = r.finished,
            still_pending = r.still_pending,
            "pending revocations attempted"
        ),
        Err(e) => tracing::warn!(error = %e, "pending revocations not attempted"),
    }
    let report = probe.run_once().await?;
    tracing::info!(
        probed = report.probed,
        reached = report.reached,
        released = report.released,
        finished = report.finished,
        deferred = report.deferred,
        "parked portals probed"
    );
    // The Coexistence history import (decision 0052), a run's share of each backlog; its
    // failure is the next run's to retry, not the probe's answer.
    let mut answer = serde_json::to_value(report)?;
    match history.run_once().await {
        Ok(h) => {
            tracing::info!(
                channels = h.channels,
                queued = h.queued,
                waiting_for_meta = h.waiting_for_meta,
                dropped = h.dropped,
                "chat history import run"
            );
            answer["history"] = serde_json::to_value(h)?;
        }
        Err(e) => tracing::warn!(error = %e, "chat history import failed; next run retries"),
    }
    if let Some(ends) = restriction_ends {
        match ends
            .run_due(wappline::clock::now_secs(), RESTRICTION_END_BUDGET)
            .await
        {
            Ok(r) => answer["restriction_ends"] = serde_json::to_value(r)?,
            Err(e) => tracing::warn!(error = %e, "restriction ends not shown; next run retries"),
        }
    }
    Ok(answer)
}
