//! sync-worker's scheduled run, shared by its `main.rs` and the sample events' test: the
//! pending revocations of disconnected channels are retried (decision 0036), then parked
//! portals are probed and their work released when they answer (decision 0025).

use wappline::app::runtime::Error;
use wappline::crm_sync::PortalProbe;
use wappline::revocation::Revocations;

/// Revocations one scheduled run attempts (each is a few provider calls).
pub const REVOCATION_BUDGET: usize = 200;

/// One scheduled run; its report is the invocation's answer.
pub async fn scheduled(
    probe: &PortalProbe,
    revocations: &Revocations,
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
    Ok(serde_json::to_value(report)?)
}
