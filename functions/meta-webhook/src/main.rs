//! meta-webhook Lambda: Meta's webhook: the subscription handshake and signed deliveries, one inbound job per event.
//! Settings and clients are built once at cold start (`Services`); the handler is the one the
//! local server serves too.

use lambda_http::Error;
use meta_webhook::MetaWebhook;
use wappline::app::{run_http, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_http(MetaWebhook::from_services(&services)?, &services).await
}
