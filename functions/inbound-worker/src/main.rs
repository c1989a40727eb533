//! inbound-worker Lambda (SQS `inbound.fifo`: stores each Meta event and queues its CRM sync.
//! Built once at cold start (`Services`); partial batch failures are reported, so only the
//! records that failed come back.

use wappline::app::runtime::Error;
use wappline::app::{run_sqs, Services};
use wappline::queue::platform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_sqs(services.inbound_worker()?, &services, platform::INBOUND).await
}
