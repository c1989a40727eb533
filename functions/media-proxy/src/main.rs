//! media-proxy Lambda: serves signed media links to Bitrix24, buffered or (with
//! `MEDIA_PROXY_RESPONSE_MODE=stream`) streamed. Built once at cold start (`Services`).

use lambda_http::Error;
use media_proxy::MediaProxyFunction;
use wappline::app::{run_http, run_http_streaming, Services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = Services::from_env().await?;
    let function = MediaProxyFunction::from_services(&services)?;
    if services.settings.media_proxy.streaming {
        run_http_streaming(function, &services).await
    } else {
        run_http(function, &services).await
    }
}
