//! admin-api Lambda: the admin API, `/auth`, and export downloads. Built once at cold start
//! (`Services`), the same way the local server builds it.

use admin_api::AdminApi;
use lambda_http::Error;
use wappline::app::{run_http, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_http(AdminApi::from_services(&services)?, &services).await
}
