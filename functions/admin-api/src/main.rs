//! admin-api Lambda: builds the clients once at cold start, then serves requests.

use std::sync::Arc;

use admin_api::{AdminApi, AdminToken};
use lambda_http::{run, service_fn, Error, Request};
use wappline::app::{aws_sdk_config, Platform};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let token = AdminToken::from_sha256_hex(&std::env::var("ADMIN_TOKEN_SHA256")?)?;
    let platform = Platform::from_aws_env(&aws_sdk_config().await).await?;
    let api = Arc::new(AdminApi::new(platform.tenants, token));
    run(service_fn(move |req: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(req).await) }
    }))
    .await
}
