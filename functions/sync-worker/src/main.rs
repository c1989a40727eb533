//! sync-worker Lambda (SQS `sync.fifo`: messages and statuses into the tenant's Bitrix24 Open Line.
//! Built once at cold start (`Services`); partial batch failures are reported, so only the
//! records that failed come back.

use wappline::app::runtime::Error;
use wappline::app::{run_sqs, Services};
use wappline::queue::platform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_sqs(services.sync_worker()?, &services, platform::SYNC).await
}
