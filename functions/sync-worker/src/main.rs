//! sync-worker Lambda (SQS `sync.fifo`: messages and statuses into the tenant's Bitrix24 Open Line.
//! Built once at cold start (`Services`); partial batch failures are reported, so only the
//! records that failed come back. The scheduled EventBridge event probes parked portals and
//! releases their work when they answer again (decision 0025), and retries the pending steps
//! of disconnected channels' revocations (decision 0036).

use std::sync::Arc;

use wappline::app::runtime::Error;
use wappline::app::{run_sqs_or_schedule, Services};
use wappline::queue::platform;

/// Revocations one scheduled run attempts (each is a few provider calls).
const REVOCATION_BUDGET: usize = 200;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let probe = Arc::new(services.portal_probe()?);
    let revocations = Arc::new(services.revocations()?);
    let worker = services.sync_worker()?;
    run_sqs_or_schedule(worker, &services, platform::SYNC, move || {
        let (probe, revocations) = (probe.clone(), revocations.clone());
        async move {
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
    })
    .await
}
