//! sync-worker Lambda (SQS `sync.fifo`: messages and statuses into the tenant's Bitrix24 Open Line.
//! Built once at cold start (`Services`); partial batch failures are reported, so only the
//! records that failed come back. The scheduled EventBridge event probes parked portals and
//! releases their work when they answer again (decision 0025), and retries the pending steps
//! of disconnected channels' revocations (decision 0036): [`sync_worker::scheduled`].

use std::sync::Arc;

use wappline::app::runtime::Error;
use wappline::app::{run_sqs_or_schedule, Services};
use wappline::queue::platform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let probe = Arc::new(services.portal_probe()?);
    let revocations = Arc::new(services.revocations()?);
    let history = Arc::new(services.history_import()?);
    let ends = Arc::new(services.restriction_ends());
    let worker = services.sync_worker()?;
    run_sqs_or_schedule(worker, &services, platform::SYNC, move || {
        let (probe, revocations, history) = (probe.clone(), revocations.clone(), history.clone());
        let ends = ends.clone();
        async move {
            sync_worker::scheduled(&probe, &revocations, &history, ends.as_ref().as_ref()).await
        }
    })
    .await
}
