//! bitrix-webhook Lambda: builds the clients once at cold start, then serves requests.
//!
//! Environment: the platform's (`DATA_TABLE`, ..., `KMS_KEY_ID`), the outbound and sync queues' URLs,
//! `PUBLIC_BASE_URL` (where Bitrix24 reaches this deployment: events are bound to
//! `<PUBLIC_BASE_URL>/bitrix/events`), and the Bitrix24 application's credentials
//! (`WAPPLINE_BITRIX_CLIENT_ID`, `WAPPLINE_BITRIX_CLIENT_SECRET`, optional
//! `WAPPLINE_BITRIX_OAUTH_URL`, `WAPPLINE_BITRIX_PORTAL_BASE_URL`).

use std::sync::Arc;

use bitrix_webhook::BitrixWebhook;
use lambda_http::{run, service_fn, Error, Request};
use wappline::app::{aws_sdk_config, Platform};
use wappline::bitrix::{BitrixClient, BitrixConfig};
use wappline::outbound::OutboundIntake;
use wappline::portal::install::{
    public_base_url, BitrixInstaller, PortalSetup, ENV_PUBLIC_BASE_URL,
};
use wappline::portal_events::PortalEvents;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let client = BitrixClient::new(BitrixConfig::from_lookup(|k| std::env::var(k).ok())?)?;
    let public_base = public_base_url(&std::env::var(ENV_PUBLIC_BASE_URL)?)?;
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    // Operator replies go to the outbound queue; a reply refused for quota becomes a note
    // for the chat on the sync queue.
    let queue = SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        &[
            platform::name(platform::OUTBOUND),
            platform::name(platform::SYNC),
        ],
    )?;
    let intake = OutboundIntake::new(
        platform.store.clone(),
        platform.envelope.clone(),
        Arc::new(queue),
    );
    let events = PortalEvents::new(
        platform.tenants.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
        intake,
        client.clone(),
    );
    let installer = BitrixInstaller::new(
        platform.tenants.clone(),
        platform.store.clone(),
        client,
        PortalSetup::new(public_base),
    );
    let webhook = Arc::new(BitrixWebhook::new(events, installer));
    run(service_fn(move |req: Request| {
        let webhook = webhook.clone();
        async move { Ok::<_, Error>(webhook.handle(req).await) }
    }))
    .await
}
