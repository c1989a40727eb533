//! The sample API Gateway events in events/bitrix-webhook/ go through lambda_http's own event
//! parsing into the handler, as in Lambda: operator replies are queued for the portal's
//! tenant, a forged application token is refused, edits and deletions of unsent replies are
//! applied, the install handler refuses an unknown code with a page, and removing our
//! connector from the line disconnects the portal.

use std::collections::BTreeMap;
use std::sync::Arc;

use bitrix_webhook::BitrixWebhook;
use lambda_http::Body;
use serde_json::Value;
use wappline::app::Platform;
use wappline::bitrix::{BitrixClient, BitrixConfig};
use wappline::conversation::Conversations;
use wappline::ids::PhoneNumberId;
use wappline::meta::{AccountRef, CustomerId, CustomerRef, WhatsAppUserId};
use wappline::outbound::OutboundIntake;
use wappline::portal::install::{public_base_url, BitrixInstaller, PortalSetup};
use wappline::portal::placement::picker::TemplatePicker;
use wappline::portal::placement::{PageTokenKey, PlacementConsole};
use wappline::portal_events::PortalEvents;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

/// The chat id the samples carry; replaced by the test's conversation.
const SAMPLE_CHAT: &str = "c_00000000000000000000000000000000";

fn event(name: &str, chat: Option<&str>) -> lambda_http::Request {
    let path = format!(
        "{}/../../events/bitrix-webhook/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Some(chat) = chat {
        let body = String::from_utf8(req.body().as_ref().to_vec()).unwrap();
        assert!(body.contains(SAMPLE_CHAT), "{name}");
        *req.body_mut() = Body::from(body.replace(SAMPLE_CHAT, chat));
    }
    req
}

fn json(resp: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null)
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
        .unwrap()
        .id;
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();
    let mut details = BTreeMap::new();
    details.insert("domain".to_owned(), "example.bitrix24.com".to_owned());
    details.insert("line_id".to_owned(), "7".to_owned());
    let mut secrets = BTreeMap::new();
    for (name, value) in [
        ("access_token", "storedaccesstoken0001"),
        ("refresh_token", "storedrefreshtoken0001"),
        ("application_token", "51856fefc120afa4b628cc82d3935cce"),
    ] {
        secrets.insert(name, Secret::parse(name, value).unwrap());
    }
    scope
        .connect(Connection {
            channel: ChannelRef::parse(ChannelKind::Bitrix24, "a223c6b3710f85df22e9377d6c4f7553")
                .unwrap(),
            details,
            secrets,
            authorized_by: None,
        })
        .await
        .unwrap();
    let conversation = Conversations::new(
        tenant.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
    )
    .record_customer(
        &AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap()),
        &CustomerRef::new(CustomerId::WhatsAppUser(
            WhatsAppUserId::parse("US.13491208655302741918").unwrap(),
        )),
        Some(1_795_460_000),
        30,
    )
    .await
    .unwrap();
    let chat = Some(conversation.as_str());

    // A client that is never called: the samples need no Bitrix24 round trip.
    let client = BitrixClient::new(
        BitrixConfig::new("local.app.1", Secret::parse("s", "unused-secret").unwrap())
            .unwrap()
            .with_oauth_url("http://127.0.0.1:9/oauth/token/")
            .unwrap()
            .with_portal_base_url("http://127.0.0.1:9")
            .unwrap(),
    )
    .unwrap();
    let webhook = BitrixWebhook::new(
        PortalEvents::new(
            platform.tenants.clone(),
            platform.store.clone(),
            platform.envelope.clone(),
            OutboundIntake::new(
                platform.store.clone(),
                platform.envelope.clone(),
                Arc::new(queue.clone()),
            ),
            client.clone(),
        ),
        BitrixInstaller::new(
            platform.tenants.clone(),
            platform.store.clone(),
            client.clone(),
            PortalSetup::new(public_base_url("https://wappline.example").unwrap()),
        ),
    )
    .with_placement(PlacementConsole::new(
        platform.tenants.clone(),
        client.clone(),
        PortalSetup::new(public_base_url("https://wappline.example").unwrap()),
        PageTokenKey::from_bytes([7; 32]),
    ))
    .with_picker(TemplatePicker::new(
        platform.tenants.clone(),
        platform.envelope.clone(),
        client,
        &PageTokenKey::from_bytes([7; 32]),
    ));
    let outbound = platform::name(platform::OUTBOUND);

    let resp = webhook.handle(event("message-add.json", chat)).await;
    assert_eq!(resp.status(), 200, "{}", json(&resp));
    assert_eq!(json(&resp)["accepted"], 1);
    let resp = webhook.handle(event("message-add-file.json", chat)).await;
    assert_eq!(resp.status(), 200, "{}", json(&resp));
    assert_eq!(json(&resp)["accepted"], 1);
    assert_eq!(queue.depth(&outbound).await.unwrap(), 2);

    let resp = webhook
        .handle(event("message-add-wrong-token.json", chat))
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(queue.depth(&outbound).await.unwrap(), 2);

    // Not sent yet: the edit and the deletion apply to the stored reply.
    let resp = webhook.handle(event("message-update.json", chat)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(&resp)["applied"], 1);
    let resp = webhook.handle(event("message-delete.json", chat)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(&resp)["applied"], 1);

    // The token is already stored: ONAPPINSTALL changes nothing.
    let resp = webhook.handle(event("app-install.json", None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(&resp)["outcome"], "ignored");

    // The install handler answers pages; the samples' code was never issued.
    for name in ["install-wizard.json", "install-callback.json"] {
        let resp = webhook.handle(event(name, None)).await;
        assert_eq!(resp.status(), 403, "{name}");
        let page = String::from_utf8(resp.body().as_ref().to_vec()).unwrap();
        assert!(page.contains("<html"), "{name}");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    }
    // The settings page checks AUTH_ID on the linked portal, which this test's client cannot
    // reach: a page that says to try again, framed by the portal only.
    let resp = webhook.handle(event("placement.json", None)).await;
    assert_eq!(resp.status(), 503);
    let page = String::from_utf8(resp.body().as_ref().to_vec()).unwrap();
    assert!(page.contains("try again"), "{page}");
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors http://127.0.0.1:9;"));

    // The template picker checks AUTH_ID on the linked portal too: the same answer.
    let resp = webhook.handle(event("template-picker.json", None)).await;
    assert_eq!(resp.status(), 503);
    let page = String::from_utf8(resp.body().as_ref().to_vec()).unwrap();
    assert!(page.contains("try again"), "{page}");
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors http://127.0.0.1:9;"));

    // Our Instagram connector switched off on the line: the portal is disconnected, and its
    // later events are refused.
    let resp = webhook.handle(event("status-delete.json", None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(&resp)["outcome"], "disconnected");
    for name in ["line-delete.json", "app-uninstall.json"] {
        let resp = webhook.handle(event(name, None)).await;
        assert_eq!(resp.status(), 401, "{name}");
    }
}
