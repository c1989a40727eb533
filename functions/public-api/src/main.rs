//! public-api Lambda: the public send API (`POST /v1/messages`, API keys).
//! Settings and clients are built once at cold start (`Services`); the handler is the one the
//! local server serves too.

use lambda_http::Error;
use public_api::PublicApi;
use wappline::app::{run_http, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_http(PublicApi::from_services(&services)?, &services).await
}
