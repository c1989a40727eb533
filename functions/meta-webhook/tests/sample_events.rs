//! The sample API Gateway events in events/meta-webhook/lambda/ go through lambda_http's own
//! event parsing into the handler, as in Lambda: the subscription handshake answers the
//! challenge, and the signed delivery is queued for the tenant that owns the number.

use std::collections::BTreeMap;
use std::sync::Arc;

use lambda_http::Body;
use meta_webhook::MetaWebhook;
use wappline::app::Platform;
use wappline::inbound::intake::{VerifyToken, WebhookIntake};
use wappline::meta::AppSecret;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

fn event(name: &str) -> lambda_http::Request {
    let path = format!(
        "{}/../../events/meta-webhook/lambda/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(body: &Body) -> String {
    String::from_utf8(body.as_ref().to_vec()).unwrap()
}

#[tokio::test]
async fn sample_events_run_through_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    let tenant = platform
        .tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap();
    let scope = platform.tenants.scope(&tenant.id).await.unwrap().unwrap();
    let mut secrets = BTreeMap::new();
    secrets.insert("access_token", Secret::parse("t", "EAAtoken").unwrap());
    scope
        .connect(Connection {
            channel: ChannelRef::parse(ChannelKind::WhatsApp, "106540352242922").unwrap(),
            details: BTreeMap::new(),
            secrets,
            authorized_by: None,
        })
        .await
        .unwrap();
    let webhook = MetaWebhook::new(WebhookIntake::new(
        vec![AppSecret::new("local-dev-app-secret").unwrap()],
        VerifyToken::new("local-dev-verify-token").unwrap(),
        platform.tenants.clone(),
        Arc::new(queue.clone()),
        platform::name(platform::INBOUND),
    ));

    let resp = webhook.handle(event("subscribe.json")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(text(resp.body()), "1158201444");

    let resp = webhook.handle(event("deliver-whatsapp-text.json")).await;
    assert_eq!(resp.status(), 200, "{}", text(resp.body()));
    assert_eq!(
        queue
            .depth(&platform::name(platform::INBOUND))
            .await
            .unwrap(),
        1
    );

    // The same event with the body changed is refused.
    let mut forged = event("deliver-whatsapp-text.json");
    *forged.body_mut() = Body::from(text(forged.body()).replace("sneakers", "sandals"));
    let resp = webhook.handle(forged).await;
    assert_eq!(resp.status(), 401);
}
