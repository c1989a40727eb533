//! The channels page says in words each status a channel can be in besides connected
//! (issue 14 item 6, decision 0039), each condition set up through the writes the product
//! makes: an Instagram Login token that expires soon or has expired (as connecting records
//! it), one whose renewal Meta refused (the scheduled refresh, decision 0040), a WhatsApp
//! number Meta restricted (the `account_update` webhook, decision 0051) and a Bitrix24
//! portal the sync could not reach for longer than its retry span (decision 0025).

use std::time::Duration;

use e2e_tests::console::{add_user, ConsoleClient, Page};
use e2e_tests::fake_bitrix::{FakeBitrix, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::fake_graph::wire_self_service;
use e2e_tests::harness::{sample, Harness, IG_ACCOUNT, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::Value;
use wappline::clock::now_secs;
use wappline::ids::{InstagramAccountId, TenantId};
use wappline::onboarding::refresh::TokenRefresh;
use wappline::queue::platform;
use wappline::tenant::ChannelRef;

use crate::onboarding::{age, connect_instagram, wait_for};

const DRAIN: Duration = Duration::from_secs(30);
/// Instagram accounts connected through Instagram Login, one per token state.
const FRESH: &str = "17841400000000101";
const EXPIRING: &str = "17841400000000102";
const EXPIRED: &str = "17841400000000103";
const RENEWAL_FAILED: &str = "17841400000000104";

async fn start(fake: &FakeBitrix) -> Harness {
    Harness::start(|c| {
        fake.wire_into(c);
        // The production retry policy in small units: exhausted after 4 attempts over 1 s,
        // then the portal is parked.
        c.retry_base_ms = 50;
        c.sync_retry = Some("100,4,1000".into());
        wire_self_service(c);
    })
    .await
}

/// The row of channel `id` on the channels page, markup included.
fn row<'a>(page: &'a Page, id: &str) -> &'a str {
    let start = page
        .body
        .find(&format!("<tr data-channel=\"{id}\">"))
        .unwrap_or_else(|| panic!("no row for {id}: {}", page.body));
    let end = page.body[start..].find("</tr>").unwrap() + start;
    &page.body[start..end]
}

/// The words of the row's status.
fn status_of(page: &Page, id: &str) -> String {
    let r = row(page, id);
    let start = r.find("<span class=\"status ").expect("a status") + 1;
    let start = r[start..].find('>').unwrap() + start + 1;
    let end = r[start..].find("</span>").unwrap() + start;
    r[start..end].to_owned()
}

async fn channels(h: &Harness, t: &str) -> Vec<Value> {
    h.admin_get(&format!("/admin/tenants/{t}")).await["channels"]
        .as_array()
        .cloned()
        .unwrap()
}

/// Records the Instagram account's token as expiring at `expires_at`, as connecting (or a
/// renewal) records what Meta answered; the renewal stays scheduled a day ahead or more.
async fn token_expires(h: &Harness, t: &str, account: &str, expires_at: i64) {
    let scope = h
        .server
        .platform()
        .tenants
        .scope(&TenantId::parse(t).unwrap())
        .await
        .unwrap()
        .unwrap();
    let channel = ChannelRef::Instagram(InstagramAccountId::parse(account).unwrap());
    TokenRefresh::track(&scope, &channel, expires_at, now_secs())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_channels_page_words_every_status_besides_connected() {
    let fake = FakeBitrix::start().await;
    let h = start(&fake).await;

    // Tokens: one fresh, one expiring in three days, one expired, one Meta refused to renew.
    let t = h.create_tenant("Tokens").await;
    for account in [FRESH, EXPIRING, EXPIRED, RENEWAL_FAILED] {
        connect_instagram(&h, &t, account).await;
    }
    token_expires(&h, &t, EXPIRING, now_secs() + 3 * 86_400).await;
    token_expires(&h, &t, EXPIRED, now_secs() - 60).await;
    h.graph.fail_instagram_refresh(true);
    // Due for renewal in 20 days' time: the schedule (every second here) tries and fails.
    age(&h, &t, RENEWAL_FAILED, 20).await;
    wait_for(async || {
        channels(&h, &t)
            .await
            .iter()
            .any(|c| c["id"] == RENEWAL_FAILED && c["token"]["status"] == "refresh_failed")
    })
    .await;
    add_user(&h, &t, "owner@tokens.test", "owner").await;
    let mut owner = ConsoleClient::new(&h.base);
    owner.sign_in(&t, "owner@tokens.test").await;
    let page = owner.get("/app/channels").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(status_of(&page, FRESH), "Connected");
    assert_eq!(status_of(&page, EXPIRING), "Access token expires soon");
    assert_eq!(status_of(&page, EXPIRED), "Access token expired");
    // Still weeks to run, but only a reconnect renews it: not "expires soon".
    assert_eq!(
        status_of(&page, RENEWAL_FAILED),
        "Access token renewal failed — reconnect"
    );
    owner.cookies.insert("wappline_lang".into(), "ru".into());
    let page = owner.get("/app/channels").await;
    assert_eq!(status_of(&page, EXPIRING), "Токен доступа скоро истечёт");
    assert_eq!(status_of(&page, EXPIRED), "Токен доступа истёк");
    assert_eq!(
        status_of(&page, RENEWAL_FAILED),
        "Не удалось продлить токен доступа — подключите заново"
    );

    // Meta restricts the WABA of the tenant's number (the sample event, in force until
    // 2099), and its portal stays down longer than the sync's retry span.
    let relay = h.tenant_with_channels().await;
    h.connect_portal(&relay, &fake, FAKE_DOMAIN, FAKE_MEMBER_ID, 7)
        .await;
    add_user(&h, &relay, "owner@relay.test", "owner").await;
    let mut owner = ConsoleClient::new(&h.base);
    owner.sign_in(&relay, "owner@relay.test").await;
    let page = owner.get("/app/channels").await;
    assert_eq!(status_of(&page, WA_NUMBER), "Connected");
    assert_eq!(status_of(&page, IG_ACCOUNT), "Connected");

    let restriction = String::from_utf8(sample("whatsapp-account-restriction.json"))
        .unwrap()
        .replace("2026-01-31T10:00:00+0000", "2099-01-31T10:00:00+0000");
    let (s, body) = h.post_signed(restriction.as_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    h.drain(platform::INBOUND, DRAIN).await;
    let page = owner.get("/app/channels").await;
    assert_eq!(status_of(&page, WA_NUMBER), "Restricted by Meta");
    assert_eq!(status_of(&page, IG_ACCOUNT), "Connected");

    fake.set_down(FAKE_DOMAIN, true);
    let (s, body) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    h.drain(platform::INBOUND, DRAIN).await;
    h.drain(platform::SYNC, DRAIN).await;
    let portal = channels(&h, &relay)
        .await
        .into_iter()
        .find(|c| c["kind"] == "bitrix24")
        .unwrap();
    assert_eq!(portal["crm_link"]["state"], "unreachable", "{portal}");
    let page = owner.get("/app/channels").await;
    let portal_id = portal["id"].as_str().unwrap();
    assert_eq!(status_of(&page, portal_id), "Bitrix24 unreachable");
    assert_eq!(status_of(&page, WA_NUMBER), "Restricted by Meta");
    assert_eq!(status_of(&page, IG_ACCOUNT), "Connected");
    owner.cookies.insert("wappline_lang".into(), "ru".into());
    let page = owner.get("/app/channels").await;
    assert_eq!(status_of(&page, WA_NUMBER), "Ограничен Meta");
    assert_eq!(status_of(&page, portal_id), "Битрикс24 недоступен");
    h.server.shutdown().await;
}
