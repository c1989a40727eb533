//! meta-webhook Lambda: builds the clients once at cold start, then serves requests.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error, Request};
use meta_webhook::MetaWebhook;
use wappline::app::{aws_sdk_config, Platform};
use wappline::inbound::intake::{VerifyToken, WebhookIntake};
use wappline::meta::AppSecret;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let secrets = app_secrets()?;
    let verify_token = VerifyToken::new(&std::env::var("META_VERIFY_TOKEN")?)?;
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let inbound = platform::name(platform::INBOUND);
    let queue = SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        std::slice::from_ref(&inbound),
    )?;
    let intake = WebhookIntake::new(
        secrets,
        verify_token,
        platform.tenants,
        Arc::new(queue),
        inbound,
    );
    let webhook = Arc::new(MetaWebhook::new(intake));
    run(service_fn(move |req: Request| {
        let webhook = webhook.clone();
        async move { Ok::<_, Error>(webhook.handle(req).await) }
    }))
    .await
}

/// `META_APP_SECRET`, plus `META_APP_SECRET_PREVIOUS` while a secret is being rotated.
fn app_secrets() -> Result<Vec<AppSecret>, Error> {
    let mut secrets = vec![AppSecret::new(&std::env::var("META_APP_SECRET")?)?];
    if let Ok(previous) = std::env::var("META_APP_SECRET_PREVIOUS") {
        if !previous.is_empty() {
            secrets.push(AppSecret::new(&previous)?);
        }
    }
    Ok(secrets)
}
