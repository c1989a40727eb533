//! sync-worker Lambda (SQS `sync.fifo`: messages and statuses into the tenant's Bitrix24 Open Line.
//! Built once at cold start (`Services`); partial batch failures are reported, so only the
//! records that failed come back. The scheduled EventBridge event probes parked portals and
//! releases their work when they answer again (decision 0025).

use std::sync::Arc;

use wappline::app::runtime::Error;
use wappline::app::{run_sqs_or_schedule, Services};
use wappline::queue::platform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let probe = Arc::new(services.portal_probe()?);
    let worker = services.sync_worker()?;
    run_sqs_or_schedule(worker, &services, platform::SYNC, move || {
        let probe = probe.clone();
        async move {
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
