//! export-worker Lambda (SQS `exports`: writes tenant exports (JSON and CSV) to the export bucket.
//! Built once at cold start (`Services`); partial batch failures are reported, so only the
//! records that failed come back.

use wappline::app::runtime::Error;
use wappline::app::{run_sqs, Services};
use wappline::queue::platform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_sqs(services.export_worker()?, &services, platform::EXPORTS).await
}
