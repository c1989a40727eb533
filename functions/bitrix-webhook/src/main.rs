//! bitrix-webhook Lambda: the Bitrix24 application: install, events, placement.
//! Settings and clients are built once at cold start (`Services`); the handler is the one the
//! local server serves too.

use bitrix_webhook::BitrixWebhook;
use lambda_http::Error;
use wappline::app::{run_http, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_http(BitrixWebhook::from_services(&services)?, &services).await
}
