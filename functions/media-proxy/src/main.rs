//! media-proxy Lambda: builds the clients once at cold start, then serves requests.
//!
//! Environment: `MEDIA_LINK_KEY` (hex, at least 32 bytes; `MEDIA_LINK_KEY_PREVIOUS` while
//! rotating), `PUBLIC_BASE_URL` (where `/media/{token}` is served), `GRAPH_API_BASE_URL` and
//! `GRAPH_API_VERSION` (optional), `MEDIA_PROXY_RESPONSE_MODE=stream` for response streaming,
//! `MEDIA_MAX_BYTES` (optional), and the platform's table and key settings.

use std::sync::Arc;

use lambda_http::{run, run_with_streaming_response, service_fn, Error, Request};
use media_proxy::{MediaProxyFunction, BUFFERED_MAX_BYTES, ENV_MAX_BYTES, ENV_RESPONSE_MODE};
use wappline::app::{aws_sdk_config, Platform};
use wappline::graph::{GraphClient, GraphConfig};
use wappline::media::{MediaLinks, MediaProxy, DEFAULT_MAX_BYTES, ENV_PUBLIC_BASE_URL};

/// Stands in for `PUBLIC_BASE_URL` when unset: verification never uses it.
const VERIFY_ONLY_BASE_URL: &str = "https://media-proxy.invalid";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    // The proxy only verifies links; their base URL matters to whoever makes them
    // (sync-worker), so here it may be absent (a function URL cannot name itself).
    let links = MediaLinks::from_lookup(|k| {
        env(k).or_else(|| (k == ENV_PUBLIC_BASE_URL).then(|| VERIFY_ONLY_BASE_URL.to_owned()))
    })?;
    let graph = GraphClient::new(GraphConfig::from_lookup(env)?)?;
    let streaming = env(ENV_RESPONSE_MODE).is_some_and(|m| m.eq_ignore_ascii_case("stream"));
    let max_bytes = match env(ENV_MAX_BYTES) {
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("{ENV_MAX_BYTES} must be a number of bytes"))?,
        None if streaming => DEFAULT_MAX_BYTES,
        None => BUFFERED_MAX_BYTES,
    };
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let proxy = MediaProxy::new(links, platform.tenants, graph).with_max_bytes(max_bytes);
    let function = Arc::new(MediaProxyFunction::new(proxy));
    let handler = service_fn(move |req: Request| {
        let function = function.clone();
        async move { Ok::<_, Error>(function.handle(req).await) }
    });
    if streaming {
        run_with_streaming_response(handler).await
    } else {
        run(handler).await
    }
}
