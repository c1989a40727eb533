//! Bitrix24's events for a linked portal, through the bitrix-webhook handler (`POST
//! /bitrix/events`) on the embedded store and queue, with a loopback fake of Bitrix24.
//!
//! A wrong or missing application token is a 401 and enqueues nothing; an operator reply for
//! a known conversation is stored encrypted and queued once (a redelivery is a duplicate with
//! the same deduplication id); another tenant's chat id queues nothing; the application
//! token arrives with ONAPPINSTALL; edits and deletions apply only to replies not yet sent;
//! connector removal, line deletion and uninstall disconnect the portal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bitrix_webhook::BitrixWebhook;
use e2e_tests::fake_bitrix::{EventBody, EventMessage, FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::contains_bytes;
use lambda_http::Body;
use serde_json::Value;
use wappline::app::Platform;
use wappline::conversation::{ConversationId, Conversations};
use wappline::graph::{GraphClient, GraphConfig};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppUserId};
use wappline::outbound::OutboundJob;
use wappline::portal::install::{public_base_url, BitrixInstaller, PortalSetup};
use wappline::portal_events::PortalEvents;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::revocation::{Revocations, StepState};
use wappline::store::Table;
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

use crate::bitrix_client::client;

const LINE: u64 = 7;
const APP_TOKEN: &str = "831c76b092f9f135d9b6b36c3a720757";
const WA_NUMBER: &str = "106540352242922";
const REPLY: &str = "[b]Samantha Johnson:[/b] [br]Your order ships tomorrow";

struct Env {
    _dir: tempfile::TempDir,
    platform: Platform,
    queue: EmbeddedQueue,
    fake: FakeBitrix,
    webhook: BitrixWebhook,
    revocations: Revocations,
}

async fn env_with(install_window: Duration) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let setup = PortalSetup::new(public_base_url("https://wappline.example").unwrap());
    // Meta is never called for a portal: the default Graph client is only a placeholder.
    let graph = GraphClient::new(GraphConfig::default()).unwrap();
    let revocations = Revocations::new(platform.tenants.clone(), graph.clone(), graph)
        .with_bitrix(client.clone(), setup.events_url());
    let events = PortalEvents::new(
        platform.tenants.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
        wappline::outbound::OutboundIntake::new(
            platform.store.clone(),
            platform.envelope.clone(),
            Arc::new(queue.clone()),
        ),
        client.clone(),
    )
    .with_install_window(install_window)
    .with_revocations(revocations.clone());
    let installer = BitrixInstaller::new(
        platform.tenants.clone(),
        platform.store.clone(),
        client,
        setup,
    );
    Env {
        webhook: BitrixWebhook::new(events, installer),
        revocations,
        _dir: dir,
        platform,
        queue,
        fake,
    }
}

async fn env() -> Env {
    env_with(Duration::from_secs(3600)).await
}

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap())
}

impl Env {
    /// A tenant with the WhatsApp number, one customer conversation, and (when
    /// `application_token`) the fake portal linked on [`LINE`].
    async fn tenant(
        &self,
        name: &str,
        portal: bool,
        application_token: Option<&str>,
    ) -> (TenantId, ConversationId) {
        let tenant = self
            .platform
            .tenants
            .create(TenantName::parse(name).unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let scope = self.platform.tenants.scope(&tenant).await.unwrap().unwrap();
        if portal {
            let tokens = self.fake.valid_tokens();
            let mut details = BTreeMap::new();
            details.insert("domain".to_owned(), FAKE_DOMAIN.to_owned());
            details.insert("line_id".to_owned(), LINE.to_string());
            let mut secrets = BTreeMap::new();
            secrets.insert(
                "access_token",
                Secret::parse("a", &tokens.access_token).unwrap(),
            );
            secrets.insert(
                "refresh_token",
                Secret::parse("r", &tokens.refresh_token).unwrap(),
            );
            if let Some(t) = application_token {
                secrets.insert("application_token", Secret::parse("t", t).unwrap());
            }
            scope
                .connect(Connection {
                    channel: ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap(),
                    details,
                    secrets,
                    authorized_by: None,
                })
                .await
                .unwrap();
        }
        let conversations = Conversations::new(
            tenant.clone(),
            self.platform.store.clone(),
            self.platform.envelope.clone(),
        );
        let customer = CustomerRef::new(CustomerId::WhatsAppUser(
            WhatsAppUserId::parse(&format!("US.1349120865530274{:04}", name.len())).unwrap(),
        ));
        let conversation = conversations
            .record_customer(&account(), &customer, Some(1_700_000_000), 30)
            .await
            .unwrap();
        (tenant, conversation)
    }

    fn body(&self, application_token: Option<&str>) -> EventBody {
        EventBody::for_portal(&self.fake, FAKE_DOMAIN, application_token)
    }

    async fn post(&self, body: String) -> (u16, Value) {
        let mut req = lambda_http::Request::new(Body::from(body));
        *req.method_mut() = lambda_http::http::Method::POST;
        *req.uri_mut() = "/bitrix/events".parse().unwrap();
        req.headers_mut().insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let resp = self.webhook.handle(req).await;
        let status = resp.status().as_u16();
        let json = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
        (status, json)
    }

    async fn outbound_depth(&self) -> usize {
        self.queue
            .depth(&platform::name(platform::OUTBOUND))
            .await
            .unwrap()
    }

    fn conversations(&self, tenant: &TenantId) -> Conversations {
        Conversations::new(
            tenant.clone(),
            self.platform.store.clone(),
            self.platform.envelope.clone(),
        )
    }
}

fn reply(conversation: &ConversationId, message_id: u64) -> EventMessage {
    EventMessage {
        im_chat_id: 1807,
        im_message_id: message_id,
        chat_id: conversation.as_str().to_owned(),
        user_id: 27,
        text: Some(REPLY.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn wrong_or_missing_application_token_is_refused_and_nothing_is_queued() {
    let env = env().await;
    let (_, conversation) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let msg = [reply(&conversation, 86497)];
    for token in [Some("00000000000000000000000000000000"), Some("831c"), None] {
        let (status, body) = env
            .post(env.body(token).message_add("wappline_whatsapp", LINE, &msg))
            .await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // The right token from another domain.
    let mut other = env.body(Some(APP_TOKEN));
    other.domain = "evil.bitrix24.com".into();
    let (status, _) = env
        .post(other.message_add("wappline_whatsapp", LINE, &msg))
        .await;
    assert_eq!(status, 401);
    // An unknown portal.
    let mut unknown = env.body(Some(APP_TOKEN));
    unknown.member_id = "ffffffffffffffffffffffffffffffff".into();
    let (status, _) = env
        .post(unknown.message_add("wappline_whatsapp", LINE, &msg))
        .await;
    assert_eq!(status, 401);
    // Garbage.
    let (status, _) = env.post("not an event".into()).await;
    assert!(status == 400 || status == 401, "{status}");
    assert_eq!(env.outbound_depth().await, 0);
}

#[tokio::test]
async fn an_operator_reply_is_stored_encrypted_and_queued_once() {
    let env = env().await;
    let (tenant, conversation) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let body = env.body(Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[reply(&conversation, 86497)],
    );
    let (status, json) = env.post(body.clone()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "queued");
    assert_eq!(json["accepted"], 1);
    assert_eq!(env.outbound_depth().await, 1);

    // Stored as written (BB-code is converted per channel when sent), in this conversation.
    let (messages, _) = env
        .conversations(&tenant)
        .messages(&conversation, None, 100)
        .await
        .unwrap();
    let stored: Vec<_> = messages.iter().filter(|m| m.crm_im.is_some()).collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].content,
        Some(Content::Text { body: REPLY.into() })
    );
    assert_eq!(stored[0].crm_im.unwrap().message_id, 86497);
    // Only encrypted.
    for table in [Table::Data, Table::Routes, Table::Dedupe] {
        let page = env.platform.store.scan(table, None, 1000).await.unwrap();
        for item in page.items {
            for value in item.0.values() {
                assert!(!contains_bytes(value, b"ships tomorrow"));
                assert!(!contains_bytes(value, APP_TOKEN.as_bytes()));
            }
        }
    }
    // The job carries keys only.
    let received = env
        .queue
        .receive(
            &platform::name(platform::OUTBOUND),
            10,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert!(!received[0].body.contains("ships"));
    let job: OutboundJob = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(job.tenant_id, tenant);
    assert_eq!(job.conversation, conversation);

    // Redelivered: a duplicate, no second message, no second job.
    let (status, json) = env.post(body).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["accepted"], 0);
    assert_eq!(json["duplicates"], 1);
    let (messages, _) = env
        .conversations(&tenant)
        .messages(&conversation, None, 100)
        .await
        .unwrap();
    assert_eq!(messages.iter().filter(|m| m.crm_im.is_some()).count(), 1);
    let again = env
        .queue
        .receive(
            &platform::name(platform::OUTBOUND),
            10,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(again.is_empty(), "the same job was queued twice");
}

#[tokio::test]
async fn another_tenants_chat_id_queues_nothing() {
    let env = env().await;
    let (_acme, _) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let (globex, globex_conversation) = env.tenant("Globex Corporation", false, None).await;
    let (status, json) = env
        .post(env.body(Some(APP_TOKEN)).message_add(
            "wappline_whatsapp",
            LINE,
            &[
                reply(&globex_conversation, 1),
                EventMessage {
                    chat_id: "not-a-conversation".into(),
                    ..reply(&globex_conversation, 2)
                },
            ],
        ))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["accepted"], 0);
    assert_eq!(json["skipped"], 2);
    assert_eq!(env.outbound_depth().await, 0);
    let (messages, _) = env
        .conversations(&globex)
        .messages(&globex_conversation, None, 100)
        .await
        .unwrap();
    assert!(messages.is_empty());
}

#[tokio::test]
async fn only_our_connectors_are_accepted() {
    let env = env().await;
    let (_, conversation) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let (status, json) = env
        .post(env.body(Some(APP_TOKEN)).message_add(
            "telegrambot",
            LINE,
            &[reply(&conversation, 1)],
        ))
        .await;
    assert_eq!(status, 400, "{json}");
    assert_eq!(env.outbound_depth().await, 0);
    // Instagram's connector is ours too.
    let (status, json) = env
        .post(env.body(Some(APP_TOKEN)).message_add(
            "wappline_instagram",
            LINE,
            &[reply(&conversation, 2)],
        ))
        .await;
    assert_eq!(status, 200, "{json}");
}

#[tokio::test]
async fn the_application_token_arrives_with_onappinstall() {
    let env = env().await;
    let (_, conversation) = env.tenant("Acme", true, None).await;
    let msg = [reply(&conversation, 1)];
    // No token stored: every event is refused.
    let (status, _) = env
        .post(
            env.body(Some(APP_TOKEN))
                .message_add("wappline_whatsapp", LINE, &msg),
        )
        .await;
    assert_eq!(status, 401);
    // ONAPPINSTALL with a working access token stores it.
    let (status, json) = env.post(env.body(Some(APP_TOKEN)).app_install()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "application_token_stored");
    assert!(env.fake.calls_to("app.info").len() == 1);
    let (status, json) = env
        .post(
            env.body(Some(APP_TOKEN))
                .message_add("wappline_whatsapp", LINE, &msg),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    // The same ONAPPINSTALL again changes nothing.
    let (status, json) = env.post(env.body(Some(APP_TOKEN)).app_install()).await;
    assert_eq!(status, 200);
    assert_eq!(json["outcome"], "ignored");
    // A different token with an access token that does not work is refused.
    let mut forged = env.body(Some("99999999999999999999999999999999"));
    forged.access_token = Some("forgedaccesstoken000".into());
    let (status, _) = env.post(forged.app_install()).await;
    assert_eq!(status, 401);
    let (status, _) = env
        .post(env.body(Some(APP_TOKEN)).message_add(
            "wappline_whatsapp",
            LINE,
            &[reply(&conversation, 2)],
        ))
        .await;
    assert_eq!(status, 200, "the stored token still works");
    // The settings list the token as stored (never its value).
    let tenant = env
        .platform
        .tenants
        .resolve(&ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap())
        .await
        .unwrap()
        .unwrap();
    let settings = env
        .platform
        .tenants
        .scope(&tenant)
        .await
        .unwrap()
        .unwrap()
        .settings()
        .await
        .unwrap();
    let b24 = settings
        .channels
        .iter()
        .find(|c| c.kind == ChannelKind::Bitrix24)
        .unwrap();
    assert!(b24.secrets_stored.contains(&"application_token".to_owned()));
}

/// Issue 15: whoever knows a portal's `member_id` and domain (neither is secret) tries to
/// plant their own application token right after the portal was linked, to forge events
/// later. Without an access token that works on the portal, nothing is stored, and the real
/// portal's token is then accepted.
#[tokio::test]
async fn a_planted_application_token_is_refused_even_right_after_linking() {
    let env = env().await;
    let (_, conversation) = env.tenant("Acme", true, None).await;
    const PLANTED: &str = "99999999999999999999999999999999";
    let mut no_proof = env.body(Some(PLANTED));
    no_proof.access_token = None;
    let (status, _) = env.post(no_proof.app_install()).await;
    assert_eq!(status, 401);
    let mut forged = env.body(Some(PLANTED));
    forged.access_token = Some("attackerportaltoken0".into());
    let (status, _) = env.post(forged.app_install()).await;
    assert_eq!(status, 401);
    // The planted token does not open the door to forged operator messages.
    let (status, _) = env
        .post(env.body(Some(PLANTED)).message_add(
            "wappline_whatsapp",
            LINE,
            &[reply(&conversation, 1)],
        ))
        .await;
    assert_eq!(status, 401);
    // The real install, with an access token that works on the portal, is accepted.
    let (status, json) = env.post(env.body(Some(APP_TOKEN)).app_install()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "application_token_stored");
}

#[tokio::test]
async fn edits_and_deletions_apply_only_to_replies_not_yet_sent() {
    let env = env().await;
    let (tenant, conversation) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let body = env.body(Some(APP_TOKEN));
    for id in [10, 11, 12] {
        let (status, _) = env
            .post(body.message_add("wappline_whatsapp", LINE, &[reply(&conversation, id)]))
            .await;
        assert_eq!(status, 200);
    }
    let conversations = env.conversations(&tenant);
    let find = |id: u64| {
        let conversations = conversations.clone();
        let conversation = conversation.clone();
        async move {
            let (messages, _) = conversations
                .messages(&conversation, None, 100)
                .await
                .unwrap();
            messages
                .into_iter()
                .find(|m| m.crm_im.is_some_and(|im| im.message_id == id))
                .unwrap()
        }
    };
    // Message 12 was sent already (the send worker recorded the provider's id).
    let sent = find(12).await;
    conversations
        .record_provider_id(&account(), &sent.at, "wamid.SENT12", 30)
        .await
        .unwrap();

    let edit = |id: u64, text: &str| EventMessage {
        text: Some(text.into()),
        external_ids: vec![format!("b24:1807:{id}")],
        ..reply(&conversation, id)
    };
    let (status, json) = env
        .post(body.message_update(
            "wappline_whatsapp",
            LINE,
            &[edit(10, "edited text"), edit(12, "too late")],
        ))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "recorded");
    assert_eq!(json["applied"], 1);
    assert_eq!(json["not_possible"], 1);
    let m10 = find(10).await;
    assert!(m10.edited);
    assert_eq!(
        m10.content,
        Some(Content::Text {
            body: "edited text".into()
        })
    );
    assert_eq!(
        find(12).await.content,
        Some(Content::Text { body: REPLY.into() })
    );

    let (status, json) = env
        .post(body.message_delete("wappline_whatsapp", LINE, &[edit(11, ""), edit(12, "")]))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["applied"], 1);
    assert_eq!(json["not_possible"], 1);
    let m11 = find(11).await;
    assert!(m11.deleted);
    assert_eq!(m11.content, None);
    assert!(!find(12).await.deleted);
}

async fn assert_disconnected(env: &Env, tenant: &TenantId) {
    let channel = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    assert_eq!(
        env.platform.tenants.resolve(&channel).await.unwrap(),
        None,
        "route not freed"
    );
    let scope = env.platform.tenants.scope(tenant).await.unwrap().unwrap();
    assert!(scope
        .channels()
        .await
        .unwrap()
        .iter()
        .all(|c| c.kind != ChannelKind::Bitrix24));
    let page = env
        .platform
        .store
        .scan(Table::Data, None, 1000)
        .await
        .unwrap();
    assert!(
        page.items.iter().all(
            |i| i.get("enc_access_token").is_none() && i.get("enc_application_token").is_none()
        ),
        "tokens left behind"
    );
    // The portal's later events are refused.
    let (status, _) = env.post(env.body(Some(APP_TOKEN)).line_delete(LINE)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn uninstall_disconnects_the_portal() {
    let env = env().await;
    let (tenant, _) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let (status, json) = env
        .post(env.body(Some(APP_TOKEN)).app_uninstall(true))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "disconnected");
    assert_disconnected(&env, &tenant).await;
    // The app is gone from the portal: nothing is called there (decision 0036).
    assert!(env.fake.calls_to("imconnector.unregister").is_empty());
    assert!(env.fake.calls_to("event.unbind").is_empty());
    let r = env.revocations.list(&tenant).await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].revocation, "done");
    assert!(r[0].steps.iter().all(|s| s.state == StepState::Skipped));
    assert!(!r[0].tokens_held);
}

/// The app reinstalled on the portal (a new application token), then the uninstall event of
/// the earlier installation arrives late: it carries the old token and is refused, and the
/// portal stays connected with its revocation never started.
#[tokio::test]
async fn a_late_uninstall_of_an_earlier_installation_leaves_the_portal_connected() {
    let env = env().await;
    let reinstalled = "fedcba9876543210fedcba9876543210";
    let (tenant, _) = env.tenant("Acme", true, Some(reinstalled)).await;
    let (status, json) = env
        .post(env.body(Some(APP_TOKEN)).app_uninstall(true))
        .await;
    assert_eq!(status, 401, "{json}");
    let channel = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    assert_eq!(
        env.platform.tenants.resolve(&channel).await.unwrap(),
        Some(tenant.clone()),
        "the portal is still connected"
    );
    assert!(env.revocations.list(&tenant).await.unwrap().is_empty());
    // The installation of now is heard.
    let (status, json) = env
        .post(env.body(Some(reinstalled)).app_uninstall(true))
        .await;
    assert_eq!(
        (status, json["outcome"].clone()),
        (200, "disconnected".into())
    );
}

#[tokio::test]
async fn line_deletion_and_connector_removal_disconnect_the_portal() {
    let env = env().await;
    let (tenant, _) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let body = env.body(Some(APP_TOKEN));
    // Another line, another connector: nothing happens.
    let (status, json) = env.post(body.line_delete(LINE + 1)).await;
    assert_eq!((status, json["outcome"].clone()), (200, "ignored".into()));
    let (status, json) = env.post(body.status_delete("telegrambot", LINE)).await;
    assert_eq!((status, json["outcome"].clone()), (200, "ignored".into()));
    let (status, json) = env
        .post(body.status_delete("wappline_whatsapp", LINE + 1))
        .await;
    assert_eq!((status, json["outcome"].clone()), (200, "ignored".into()));
    // Our connector switched off on our line.
    let (status, json) = env
        .post(body.status_delete("wappline_whatsapp", LINE))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "disconnected");
    assert_disconnected(&env, &tenant).await;
    // The app is still installed: our connectors and handlers are removed from the portal.
    assert_eq!(env.fake.calls_to("imconnector.unregister").len(), 2);
    assert!(!env.fake.calls_to("event.unbind").is_empty());
    let r = env.revocations.list(&tenant).await.unwrap();
    assert_eq!(r[0].revocation, "done");

    // Linked again, then the line is deleted.
    let env = env_with(Duration::from_secs(3600)).await;
    let (tenant, _) = env.tenant("Acme", true, Some(APP_TOKEN)).await;
    let (status, json) = env.post(env.body(Some(APP_TOKEN)).line_delete(LINE)).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "disconnected");
    assert_disconnected(&env, &tenant).await;
}

#[tokio::test]
async fn install_then_events_end_to_end() {
    // Install through the wizard, then ONAPPINSTALL brings the token, then a reply flows.
    let env = env().await;
    let (tenant, conversation) = env.tenant("Acme", false, None).await;
    let issued = {
        let codes = wappline::portal::install::ConnectionCodes::new(env.platform.store.clone());
        codes
            .issue(&tenant, wappline::bitrix::OpenLineId::new(LINE).unwrap())
            .await
            .unwrap()
    };
    let mut req = lambda_http::Request::new(Body::from(EventBody::install_wizard(
        &env.fake,
        FAKE_DOMAIN,
    )));
    *req.method_mut() = lambda_http::http::Method::POST;
    *req.uri_mut() = "/bitrix/install".parse().unwrap();
    let query: lambda_http::aws_lambda_events::query_map::QueryMap =
        format!("code={}", issued.code.expose()).parse().unwrap();
    let req = lambda_http::RequestExt::with_query_string_parameters(req, query);
    let resp = env.webhook.handle(req).await;
    assert_eq!(resp.status(), 200);

    let (status, _) = env
        .post(env.body(Some(APP_TOKEN)).message_add(
            "wappline_whatsapp",
            LINE,
            &[reply(&conversation, 5)],
        ))
        .await;
    assert_eq!(status, 401, "no application token yet");
    let (status, json) = env.post(env.body(Some(APP_TOKEN)).app_install()).await;
    assert_eq!(status, 200, "{json}");
    let (status, json) = env
        .post(env.body(Some(APP_TOKEN)).message_add(
            "wappline_whatsapp",
            LINE,
            &[reply(&conversation, 5)],
        ))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["accepted"], 1);
    assert_eq!(env.outbound_depth().await, 1);
}
