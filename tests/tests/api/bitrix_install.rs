//! Linking a Bitrix24 portal through the application's installation, against a loopback fake
//! of Bitrix24, on the embedded store: the domain (`BitrixInstaller`) and the HTTP handler
//! (`/bitrix/install`).
//!
//! A valid code links the portal, registers and activates both connectors on the code's
//! line, sets their data and binds our events; tokens are stored only encrypted; a code works
//! once and not after it expired; a portal of another tenant is refused with nothing
//! written; forged portals are refused; a failed set-up leaves the code for a retry.

use std::sync::Arc;
use std::time::Duration;

use bitrix_webhook::BitrixWebhook;
use e2e_tests::fake_bitrix::{EventBody, FailKind, FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::contains_bytes;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Body, RequestExt};
use wappline::app::Platform;
use wappline::bitrix::events::parse_form;
use wappline::bitrix::OpenLineId;
use wappline::ids::TenantId;
use wappline::outbound::OutboundIntake;
use wappline::portal::install::{
    public_base_url, BitrixInstaller, ConnectionCodes, InstallError, InstallFlow, InstallRequest,
    IssuedCode, PortalSetup,
};
use wappline::portal_events::PortalEvents;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;
use wappline::store::{Item, Table};
use wappline::tenant::{ChannelKind, ChannelRef, RetentionDays, TenantName};

use crate::bitrix_client::client;

const PUBLIC: &str = "https://wappline.example";
const LINE: u64 = 7;
const OTHER_DOMAIN: &str = "other.bitrix24.com";
const OTHER_MEMBER: &str = "0b1d2c3e4f5a69788796a5b4c3d2e1f0";

struct Env {
    _dir: tempfile::TempDir,
    platform: Platform,
    fake: FakeBitrix,
    installer: BitrixInstaller,
    webhook: BitrixWebhook,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    let fake = FakeBitrix::start().await;
    fake.add_portal(OTHER_DOMAIN, OTHER_MEMBER);
    let client = client(&fake);
    let installer = BitrixInstaller::new(
        platform.tenants.clone(),
        platform.store.clone(),
        client.clone(),
        PortalSetup::new(public_base_url(PUBLIC).unwrap()),
    );
    let events = PortalEvents::new(
        platform.tenants.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
        OutboundIntake::new(
            platform.store.clone(),
            platform.envelope.clone(),
            Arc::new(queue),
        ),
        client,
    );
    Env {
        webhook: BitrixWebhook::new(events, installer.clone()),
        installer,
        fake,
        platform,
        _dir: dir,
    }
}

impl Env {
    async fn tenant(&self, name: &str) -> TenantId {
        self.platform
            .tenants
            .create(TenantName::parse(name).unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id
    }

    async fn code(&self, tenant: &TenantId) -> IssuedCode {
        self.installer
            .codes()
            .issue(tenant, OpenLineId::new(LINE).unwrap())
            .await
            .unwrap()
    }

    async fn all_items(&self) -> Vec<Item> {
        let mut out = Vec::new();
        for table in [Table::Data, Table::Routes, Table::Keys, Table::Dedupe] {
            let mut next = None;
            loop {
                let page = self
                    .platform
                    .store
                    .scan(table, next.as_ref(), 500)
                    .await
                    .unwrap();
                out.extend(page.items);
                match page.next {
                    Some(k) => next = Some(k),
                    None => break,
                }
            }
        }
        out
    }

    async fn assert_nowhere_in_plaintext(&self, needle: &str) {
        for item in self.all_items().await {
            for (name, value) in &item.0 {
                assert!(
                    !contains_bytes(value, needle.as_bytes()),
                    "{needle:?} found in plaintext in attribute {name} of {:?}",
                    item.key()
                );
            }
        }
    }

    async fn post_install(&self, code: &str, body: String) -> (u16, String) {
        let mut req = lambda_http::Request::new(Body::from(body));
        *req.method_mut() = lambda_http::http::Method::POST;
        *req.uri_mut() = format!("/bitrix/install?code={code}").parse().unwrap();
        let query: QueryMap = format!("code={code}").parse().unwrap();
        let req = req.with_query_string_parameters(query);
        let resp = self.webhook.handle(req).await;
        let status = resp.status().as_u16();
        let text = String::from_utf8(resp.body().as_ref().to_vec()).unwrap();
        (status, text)
    }
}

fn request(body: &str) -> InstallRequest {
    InstallRequest::from_form(&parse_form(body.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn install_links_the_portal_and_sets_up_the_open_line() {
    let env = env().await;
    let tenant = env.tenant("Acme").await;
    let issued = env.code(&tenant).await;
    assert!(issued
        .install_url(&public_base_url(PUBLIC).unwrap())
        .starts_with("https://wappline.example/bitrix/install?code=wlb24_"));
    let posted = env.fake.valid_tokens();

    let (status, page) = env
        .post_install(
            issued.code.expose(),
            EventBody::install_wizard(&env.fake, FAKE_DOMAIN),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("example.bitrix24.com is connected"), "{page}");
    assert!(
        page.contains("BX24.installFinish()"),
        "the wizard must finish: {page}"
    );
    assert!(!page.contains(issued.code.expose()));

    // The portal was verified with the OAuth server (the posted refresh token exchanged).
    let oauth = env.fake.oauth_requests();
    assert_eq!(oauth.len(), 1);
    assert_eq!(oauth[0].params["refresh_token"], posted.refresh_token);

    // Both connectors registered (as documented), active on the line, with data.
    let connectors = env.fake.connectors(FAKE_DOMAIN);
    for id in ["wappline_whatsapp", "wappline_instagram"] {
        let c = &connectors[id];
        assert_eq!(c.registration["ID"], id);
        assert_eq!(
            c.registration["PLACEMENT_HANDLER"],
            "https://wappline.example/bitrix/placement"
        );
        assert_eq!(c.registration["CHAT_GROUP"], "N");
        assert_eq!(c.registration["EDIT_INTERNAL_MESSAGES"], "N");
        assert_eq!(c.registration["DEL_INTERNAL_MESSAGES"], "N");
        assert!(c.registration["ICON"]["DATA_IMAGE"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml"));
        assert_eq!(c.active_lines, vec![LINE.to_string()]);
        assert_eq!(c.data[&LINE.to_string()]["ID"], format!("{id}_line{LINE}"));
    }
    // Our events bound to our handler, and OnAppInstall to bring the application token.
    let bindings = env.fake.bindings(FAKE_DOMAIN);
    for event in [
        "ONIMCONNECTORMESSAGEADD",
        "ONIMCONNECTORMESSAGEUPDATE",
        "ONIMCONNECTORMESSAGEDELETE",
        "ONIMCONNECTORSTATUSDELETE",
        "ONIMCONNECTORLINEDELETE",
        "ONAPPUNINSTALL",
        "ONAPPINSTALL",
    ] {
        assert!(
            bindings.contains(&(
                event.into(),
                "https://wappline.example/bitrix/events".into()
            )),
            "{event} not bound: {bindings:?}"
        );
    }
    // Every REST call used the fresh token, never the posted (now retired) one.
    let current = env.fake.valid_tokens();
    assert!(env
        .fake
        .calls()
        .iter()
        .all(|c| c.auth.as_deref() == Some(current.access_token.as_str())));

    // The portal is the tenant's, its tokens stored encrypted and readable.
    let channel = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    assert_eq!(
        env.platform.tenants.resolve(&channel).await.unwrap(),
        Some(tenant.clone())
    );
    let scope = env.platform.tenants.scope(&tenant).await.unwrap().unwrap();
    assert_eq!(
        scope
            .channel_secret(&channel, "access_token")
            .await
            .unwrap()
            .expose(),
        current.access_token
    );
    assert_eq!(
        scope
            .channel_secret(&channel, "refresh_token")
            .await
            .unwrap()
            .expose(),
        current.refresh_token
    );
    let settings = scope.settings().await.unwrap();
    let b24 = settings
        .channels
        .iter()
        .find(|c| c.kind == ChannelKind::Bitrix24)
        .unwrap();
    assert_eq!(b24.details["domain"], FAKE_DOMAIN);
    assert_eq!(b24.details["line_id"], LINE.to_string());
    for token in [
        &current.access_token,
        &current.refresh_token,
        &posted.access_token,
        &posted.refresh_token,
        issued.code.expose(),
    ] {
        env.assert_nowhere_in_plaintext(token).await;
    }

    // The code worked once.
    let again = env
        .installer
        .install(
            issued.code.expose(),
            request(&EventBody::install_wizard(&env.fake, FAKE_DOMAIN)),
        )
        .await;
    assert!(matches!(again, Err(InstallError::InvalidCode)), "{again:?}");
    let (status, page) = env
        .post_install(
            issued.code.expose(),
            EventBody::install_wizard(&env.fake, FAKE_DOMAIN),
        )
        .await;
    assert_eq!(status, 403);
    assert!(page.contains("not valid"), "{page}");
}

#[tokio::test]
async fn the_install_callback_brings_the_application_token() {
    let env = env().await;
    let tenant = env.tenant("Acme").await;
    let issued = env.code(&tenant).await;
    let installed = env
        .installer
        .install(
            issued.code.expose(),
            request(&EventBody::install_callback(
                &env.fake,
                FAKE_DOMAIN,
                "51856fefc120afa4b628cc82d3935cce",
            )),
        )
        .await
        .unwrap();
    assert_eq!(installed.flow, InstallFlow::Callback);
    assert!(installed.application_token_stored);
    assert!(!installed.reinstalled);
    let channel = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    let scope = env.platform.tenants.scope(&tenant).await.unwrap().unwrap();
    assert_eq!(
        scope
            .channel_secret(&channel, "application_token")
            .await
            .unwrap()
            .expose(),
        "51856fefc120afa4b628cc82d3935cce"
    );
    env.assert_nowhere_in_plaintext("51856fefc120afa4b628cc82d3935cce")
        .await;
    // No OnAppInstall binding needed.
    assert!(!env
        .fake
        .bindings(FAKE_DOMAIN)
        .iter()
        .any(|(e, _)| e == "ONAPPINSTALL"));
}

#[tokio::test]
async fn expired_and_malformed_codes_are_refused() {
    let env = env().await;
    let tenant = env.tenant("Acme").await;
    let expired = ConnectionCodes::new(env.platform.store.clone()).with_ttl(Duration::ZERO);
    let issued = expired
        .issue(&tenant, OpenLineId::new(LINE).unwrap())
        .await
        .unwrap();
    let result = env
        .installer
        .install(
            issued.code.expose(),
            request(&EventBody::install_wizard(&env.fake, FAKE_DOMAIN)),
        )
        .await;
    assert!(
        matches!(result, Err(InstallError::InvalidCode)),
        "{result:?}"
    );
    for bad in [
        "",
        "wlb24_zz",
        "nonsense",
        &issued.code.expose().to_uppercase(),
    ] {
        let (status, _) = env
            .post_install(bad, EventBody::install_wizard(&env.fake, FAKE_DOMAIN))
            .await;
        assert_eq!(status, 403, "{bad}");
    }
    // Nothing was called on the portal or the OAuth server.
    assert!(env.fake.calls().is_empty());
    assert!(env.fake.oauth_requests().is_empty());
    let channel = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    assert_eq!(env.platform.tenants.resolve(&channel).await.unwrap(), None);
}

#[tokio::test]
async fn a_portal_of_another_tenant_is_refused_with_nothing_written() {
    let env = env().await;
    let acme = env.tenant("Acme").await;
    let globex = env.tenant("Globex").await;
    let code_a = env.code(&acme).await;
    env.installer
        .install(
            code_a.code.expose(),
            request(&EventBody::install_wizard(&env.fake, FAKE_DOMAIN)),
        )
        .await
        .unwrap();
    let code_b = env.code(&globex).await;
    env.fake.clear_records();
    let before = env.all_items().await.len();

    let (status, page) = env
        .post_install(
            code_b.code.expose(),
            EventBody::install_wizard(&env.fake, FAKE_DOMAIN),
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("already connected to another account"),
        "{page}"
    );
    // Nothing written, nothing called, and code B still usable for the right portal.
    assert_eq!(env.all_items().await.len(), before);
    assert!(env.fake.calls().is_empty());
    assert!(env.fake.oauth_requests().is_empty());
    let channel = ChannelRef::parse(ChannelKind::Bitrix24, FAKE_MEMBER_ID).unwrap();
    assert_eq!(
        env.platform.tenants.resolve(&channel).await.unwrap(),
        Some(acme)
    );
    let globex_scope = env.platform.tenants.scope(&globex).await.unwrap().unwrap();
    assert!(globex_scope.channels().await.unwrap().is_empty());
    assert!(env
        .installer
        .codes()
        .peek(code_b.code.expose())
        .await
        .unwrap()
        .is_some());
    let other = env
        .installer
        .install(
            code_b.code.expose(),
            request(&EventBody::install_wizard(&env.fake, OTHER_DOMAIN)),
        )
        .await
        .unwrap();
    assert_eq!(other.member_id.as_str(), OTHER_MEMBER);
}

#[tokio::test]
async fn forged_portals_are_not_linked() {
    let env = env().await;
    let tenant = env.tenant("Acme").await;
    let issued = env.code(&tenant).await;
    // Tokens of the other portal, claiming the first portal's member_id.
    let mut form =
        parse_form(EventBody::install_wizard(&env.fake, OTHER_DOMAIN).as_bytes()).unwrap();
    form["member_id"] = FAKE_MEMBER_ID.into();
    let result = env
        .installer
        .install(
            issued.code.expose(),
            InstallRequest::from_form(&form).unwrap(),
        )
        .await;
    assert!(
        matches!(result, Err(InstallError::NotVerified(_))),
        "{result:?}"
    );
    // The right member_id with the wrong domain.
    let mut form =
        parse_form(EventBody::install_wizard(&env.fake, OTHER_DOMAIN).as_bytes()).unwrap();
    form["DOMAIN"] = "evil.example.com".into();
    let result = env
        .installer
        .install(
            issued.code.expose(),
            InstallRequest::from_form(&form).unwrap(),
        )
        .await;
    assert!(
        matches!(result, Err(InstallError::NotVerified(_))),
        "{result:?}"
    );
    // A made-up refresh token.
    let mut form =
        parse_form(EventBody::install_wizard(&env.fake, FAKE_DOMAIN).as_bytes()).unwrap();
    form["REFRESH_ID"] = "made-up-refresh-token".into();
    let result = env
        .installer
        .install(
            issued.code.expose(),
            InstallRequest::from_form(&form).unwrap(),
        )
        .await;
    assert!(
        matches!(result, Err(InstallError::NotVerified(_))),
        "{result:?}"
    );
    // Nothing linked; the code is still valid.
    for (member, _) in [(FAKE_MEMBER_ID, ()), (OTHER_MEMBER, ())] {
        let channel = ChannelRef::parse(ChannelKind::Bitrix24, member).unwrap();
        assert_eq!(env.platform.tenants.resolve(&channel).await.unwrap(), None);
    }
    assert!(env
        .installer
        .codes()
        .peek(issued.code.expose())
        .await
        .unwrap()
        .is_some());
    assert!(env.fake.calls().is_empty());
}

#[tokio::test]
async fn a_failed_set_up_can_be_retried_with_the_same_code() {
    let env = env().await;
    let tenant = env.tenant("Acme").await;
    let issued = env.code(&tenant).await;
    env.fake.fail_next(1, FailKind::InternalError);
    let (status, page) = env
        .post_install(
            issued.code.expose(),
            EventBody::install_wizard(&env.fake, FAKE_DOMAIN),
        )
        .await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("Reinstall the application"), "{page}");
    assert!(!page.contains("BX24.installFinish"));
    // Linked, the code still valid: reinstalling (Bitrix24 posts the same URL) completes.
    assert!(env
        .installer
        .codes()
        .peek(issued.code.expose())
        .await
        .unwrap()
        .is_some());
    let installed = env
        .installer
        .install(
            issued.code.expose(),
            request(&EventBody::install_wizard(&env.fake, FAKE_DOMAIN)),
        )
        .await
        .unwrap();
    assert!(installed.reinstalled);
    assert_eq!(env.fake.connectors(FAKE_DOMAIN).len(), 2);
    // Bindings made by the first attempt are not duplicated ("Handler already binded").
    let bindings = env.fake.bindings(FAKE_DOMAIN);
    let mut unique = bindings.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), bindings.len());
    assert!(env
        .installer
        .codes()
        .peek(issued.code.expose())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn one_tenant_one_portal() {
    let env = env().await;
    let tenant = env.tenant("Acme").await;
    let first = env.code(&tenant).await;
    env.installer
        .install(
            first.code.expose(),
            request(&EventBody::install_wizard(&env.fake, FAKE_DOMAIN)),
        )
        .await
        .unwrap();
    let second = env.code(&tenant).await;
    let result = env
        .installer
        .install(
            second.code.expose(),
            request(&EventBody::install_wizard(&env.fake, OTHER_DOMAIN)),
        )
        .await;
    assert!(
        matches!(&result, Err(InstallError::TenantHasOtherPortal(d)) if d == FAKE_DOMAIN),
        "{result:?}"
    );
}
