//! console Lambda: the tenant web console under `/app`. Built once at cold start
//! (`Services`), the same way the local server builds it.

use console::Console;
use lambda_http::Error;
use wappline::app::{run_http, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    run_http(Console::from_services(&services)?, &services).await
}
