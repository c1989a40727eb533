//! data-deletion Lambda: Meta's Data Deletion Callback and its status page.
//! Settings and clients are built once at cold start (`Services`); the handler is the one the
//! local server serves too.

use data_deletion::DataDeletion;
use lambda_http::Error;
use wappline::app::{run_http, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_http(DataDeletion::from_services(&services)?, &services).await
}
