//! Connecting channels from the console in a real browser (issue 14, items 1, 2 and 5;
//! decision 0046): headless Chromium over WebDriver against the local server, with loopback
//! fakes of Meta's JavaScript SDK and Embedded Signup window, of Instagram's authorization
//! window and Graph API, and of a Bitrix24 portal.
//!
//! One owner, one browser:
//! - a sign-up cancelled in the popup, one whose code has expired, one whose token does not
//!   prove the number and an error reported in Meta's window each show their message and
//!   store nothing;
//! - a message forged by a script of the console's own origin is ignored;
//! - a number connects through the popup (and one kept in the WhatsApp Business app, not
//!   registered), an Instagram account through Instagram's window, each with its steps;
//! - the portal's admin opens the connector settings for Open Line 2 and attaches the number
//!   there (a user who is not an admin and a forged `AUTH_ID` are refused, nothing changes);
//! - a customer's message reaches line 2, the operator's answer goes out with the number's
//!   new token;
//! - disconnecting the channels and the portal revokes them at the fake Graph API and the
//!   fake portal.
//!
//! The connect buttons are used by keyboard only (Tab to them, Enter).
//!
//! A screenshot of each page goes to the artifacts folder the test prints.

use std::time::Duration;

use e2e_tests::console::{add_user, ConsoleClient};
use e2e_tests::fake_bitrix::{parse_pairs, EventBody, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::fake_graph::{wire_self_service, BusinessToken, FAKE_ES_CONFIG_ID};
use e2e_tests::harness::{sample, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use e2e_tests::webdriver::{Browser, ENTER};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::browser::{artifacts, sign_in};

/// The number, WABA and business token the popup's sign-up hands out.
const PHONE: &str = "106540352249001";
const WABA: &str = "102290129349001";
const TOKEN: &str = "EAAGembeddedSIGNUPtoken";
/// A token that does not grant [`WABA`] (it grants another one).
const UNPROVEN: &str = "EAAGsomeoneELSEtoken";
/// A number that stays in the WhatsApp Business app (Coexistence), on its own WABA.
const CX_PHONE: &str = "106540352249002";
const CX_WABA: &str = "102290129349002";
const CX_TOKEN: &str = "EAAGcoexistenceTOKEN";
const IG: &str = "17841400000009001";
const IG_SCOPES: &str = "instagram_business_basic,instagram_business_manage_messages";
const WHATSAPP: &str = "wappline_whatsapp";
const WAIT: Duration = Duration::from_secs(10);

/// The relay world with self-service onboarding pointed at the fakes: the SDK and the
/// sign-up window at the fake Graph API, whose origin stands in for Facebook's.
async fn world() -> RelayWorld {
    RelayWorld::start_with(|c| {
        wire_self_service(c);
        let graph = c.graph_api_base_url.clone();
        c.meta_sdk_url = Some(format!("{graph}/en_US/sdk.js"));
        c.meta_login_origins = Some(graph);
    })
    .await
}

async fn channel_ids(w: &RelayWorld, tenant: &str) -> Vec<String> {
    let v = w.h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Opens the sign-up window from the channels page with `button`, shoots it, clicks `choice`
/// in it and comes back to the console's window once the popup has closed.
async fn sign_up(b: &Browser, button: &str, choice: &str, shot: &str) {
    let main = b.window().await;
    b.wait_for(&format!("{button}:not([disabled])"), WAIT).await;
    // By keyboard only: Tab to the button, Enter opens Meta's window.
    b.tab_to(button).await;
    b.press(ENTER).await;
    b.switch_to_new_window(std::slice::from_ref(&main), WAIT)
        .await;
    b.find("#finish").await;
    b.screenshot(shot).await;
    b.find(choice).await.click().await;
    b.wait_windows(1, WAIT).await;
    b.switch_to(&main).await;
}

/// Waits until the browser is on a page whose address ends with `suffix` (after a form
/// post, before reading the new page: the old one's elements would go stale).
async fn wait_url(b: &Browser, suffix: &str) {
    let started = std::time::Instant::now();
    while !b.url().await.ends_with(suffix) {
        assert!(
            started.elapsed() < WAIT,
            "not on …{suffix}: {}",
            b.url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outcome(b: &Browser) -> String {
    b.wait_for("#connect-outcome", WAIT).await.text().await
}

/// The steps the result page lists, as `step=status`.
async fn steps(b: &Browser) -> Vec<String> {
    let mut out = Vec::new();
    for li in b.all("#connect-steps li").await {
        let step = li.attr("data-step").await.unwrap_or_default();
        let status = li.attr("data-status").await.unwrap_or_default();
        out.push(format!("{step}={status}"));
    }
    out
}

/// A page of the fake portal that posts the connector settings form, as Bitrix24 posts
/// `SETTING_CONNECTOR` to the application's handler; the test presses its button.
fn placement_launcher(base: &str, auth_id: &str, line: u64) -> String {
    let form =
        EventBody::setting_connector(FAKE_DOMAIN, FAKE_MEMBER_ID, auth_id, WHATSAPP, line, "en");
    let inputs: String = parse_pairs(&form)
        .into_iter()
        .map(|(k, v)| {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
            };
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(&k),
                esc(&v)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Portal</title><form method=\"post\" action=\"{base}/bitrix/placement\">{inputs}<button id=\"open-settings\">Open the connector settings</button></form>"
    );
    let encoded: String = html
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("data:text/html;charset=utf-8,{encoded}")
}

async fn open_placement(b: &Browser, base: &str, auth_id: &str, shot: &str) -> String {
    b.goto(&placement_launcher(base, auth_id, 2)).await;
    b.find("#open-settings").await.click().await;
    wait_url(b, "/bitrix/placement").await;
    b.screenshot(shot).await;
    b.find("main").await.text().await
}

#[tokio::test]
async fn an_owner_connects_whatsapp_and_instagram_in_a_browser_and_uses_them() {
    let w = world().await;
    let tenant = w.installed_tenant().await;
    add_user(&w.h, &tenant, "owner@acme.test", "owner").await;
    let base = w.h.base.clone();
    let graph = w.graph.clone();
    let shots = artifacts().join("connect");
    println!("console connect screenshots: {}", shots.display());
    let b = Browser::start(&shots).await;
    sign_in(&b, &base, &tenant, "owner@acme.test").await;
    let before = channel_ids(&w, &tenant).await;

    // The user leaves the sign-up: nothing is stored, the page says so.
    graph.prepare_signup(TOKEN, WABA, PHONE);
    graph.add_whatsapp_business(TOKEN, WABA, PHONE);
    b.goto(&format!("{base}/app/channels")).await;
    b.screenshot("c01-channels-connect").await;
    sign_up(&b, "#connect-whatsapp", "#cancel", "c02-signup-window").await;
    assert_eq!(
        outcome(&b).await,
        "The sign-up was cancelled; nothing was connected."
    );
    assert!(b
        .find("#connect-detail")
        .await
        .text()
        .await
        .contains("PHONE_NUMBER_SETUP"));
    b.screenshot("c03-signup-cancelled").await;
    assert_eq!(channel_ids(&w, &tenant).await, before);

    // A code that has expired: refused by Meta, nothing stored.
    b.goto(&format!("{base}/app/channels")).await;
    graph.expire_next_signup_code();
    sign_up(&b, "#connect-whatsapp", "#finish", "c04-signup-window").await;
    assert_eq!(
        outcome(&b).await,
        "The sign-up code has expired or was already used; nothing was connected. Start the sign-up again."
    );
    assert_eq!(steps(&b).await, ["exchange_code=failed"]);
    b.screenshot("c05-code-expired").await;
    assert_eq!(channel_ids(&w, &tenant).await, before);

    // A token that does not grant the WABA: the ownership proof fails, nothing stored.
    graph.add_business_token(UNPROVEN, BusinessToken::for_waba("102290129349999"));
    graph.prepare_signup(UNPROVEN, WABA, PHONE);
    b.goto(&format!("{base}/app/channels")).await;
    sign_up(&b, "#connect-whatsapp", "#finish", "c06-signup-window").await;
    assert_eq!(
        outcome(&b).await,
        "The account could not be proven to be yours; nothing was connected."
    );
    assert_eq!(
        steps(&b).await,
        ["exchange_code=ok", "verify_ownership=failed"]
    );
    b.screenshot("c07-not-proven").await;
    assert_eq!(channel_ids(&w, &tenant).await, before);
    assert!(graph.onboarding().subscribed_wabas.is_empty());

    // An error the user reported in Meta's window: said, with Meta's words, nothing stored.
    b.goto(&format!("{base}/app/channels")).await;
    sign_up(
        &b,
        "#connect-whatsapp",
        "#report-error",
        "c07b-signup-window",
    )
    .await;
    assert_eq!(
        outcome(&b).await,
        "Meta reported an error during the sign-up; nothing was connected."
    );
    assert!(b
        .find("#connect-detail")
        .await
        .text()
        .await
        .contains("The display name was not approved"));
    b.screenshot("c07c-signup-error").await;
    assert_eq!(channel_ids(&w, &tenant).await, before);

    // The sign-up that works. A script of the console's own origin posting a session-info
    // message first is ignored: only the configured Facebook origin speaks for the sign-up.
    graph.prepare_signup(TOKEN, WABA, PHONE);
    b.goto(&format!("{base}/app/channels")).await;
    let main = b.window().await;
    b.wait_for("#connect-whatsapp:not([disabled])", WAIT).await;
    b.tab_to("#connect-whatsapp").await;
    b.press(ENTER).await;
    b.switch_to_new_window(std::slice::from_ref(&main), WAIT)
        .await;
    let popup = b.window().await;
    b.switch_to(&main).await;
    let forged = json!({"type": "WA_EMBEDDED_SIGNUP", "event": "CANCEL",
        "data": {"current_step": "FORGED"}})
    .to_string();
    b.execute(
        "window.postMessage(arguments[0], window.location.origin);",
        json!([forged]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        b.url().await.ends_with("/app/channels"),
        "the forged message was acted on"
    );
    assert!(b.all("#connect-outcome").await.is_empty());
    b.switch_to(&popup).await;
    b.find("#finish").await.click().await;
    b.wait_windows(1, WAIT).await;
    b.switch_to(&main).await;
    let said = outcome(&b).await;
    assert!(
        said.starts_with("Connected:") && said.contains(PHONE),
        "{said}"
    );
    assert_eq!(
        steps(&b).await,
        [
            "exchange_code=ok",
            "verify_ownership=ok",
            "store_and_claim=ok",
            "subscribe_webhooks=ok",
            "register_number=ok"
        ]
    );
    // The address no longer carries anything to repeat.
    assert!(b.url().await.ends_with("/app/channels"));
    b.screenshot("c08-whatsapp-connected").await;
    // The window was opened as Meta documents Embedded Signup v4.
    let dialog = graph.signup_dialogs().pop().unwrap();
    assert_eq!(dialog["config_id"], FAKE_ES_CONFIG_ID);
    assert_eq!(dialog["response_type"], "code");
    assert_eq!(dialog["override_default_response_type"], "true");
    assert_eq!(dialog["extras"]["sessionInfoVersion"], "3");
    assert_eq!(dialog["extras"]["featureType"], "");
    assert_eq!(dialog["extras"]["version"], "v4");
    assert!(channel_ids(&w, &tenant).await.contains(&PHONE.to_owned()));
    assert_eq!(graph.onboarding().subscribed_wabas, [WABA]);
    assert_eq!(graph.onboarding().registered.len(), 1);

    // A number kept in the WhatsApp Business app: the window is asked for Coexistence, the
    // number is not registered (the app keeps it), the report says why.
    graph.add_whatsapp_business(CX_TOKEN, CX_WABA, CX_PHONE);
    graph.prepare_signup(CX_TOKEN, CX_WABA, CX_PHONE);
    b.goto(&format!("{base}/app/channels")).await;
    sign_up(
        &b,
        "#connect-coexistence",
        "#finish",
        "c08b-signup-window-coexistence",
    )
    .await;
    let said = outcome(&b).await;
    assert!(said.contains(CX_PHONE), "{said}");
    assert_eq!(
        steps(&b).await.last().map(String::as_str),
        Some("register_number=skipped")
    );
    let dialog = graph.signup_dialogs().pop().unwrap();
    assert_eq!(
        dialog["extras"]["featureType"],
        "whatsapp_business_app_onboarding"
    );
    assert_eq!(graph.onboarding().registered.len(), 1, "not registered");
    b.screenshot("c08c-coexistence-connected").await;

    // Russian: the same flow says its outcome in Russian.
    b.goto(&format!("{base}/app/channels")).await;
    b.find("#lang-ru").await.click().await;
    sign_up(&b, "#connect-whatsapp", "#cancel", "c09-signup-window-ru").await;
    assert_eq!(
        outcome(&b).await,
        "Регистрация отменена; ничего не подключено."
    );
    b.screenshot("c10-signup-cancelled-ru").await;
    b.find("#lang-en").await.click().await;

    // Instagram through Instagram's window and back.
    graph.set_instagram_login(IG, IG_SCOPES);
    b.goto(&format!("{base}/app/channels")).await;
    b.tab_to("#connect-instagram").await;
    b.press(ENTER).await;
    let said = outcome(&b).await;
    assert!(
        said.starts_with("Connected:") && said.contains(IG),
        "{said}"
    );
    assert_eq!(
        steps(&b).await,
        [
            "exchange_code=ok",
            "long_lived_token=ok",
            "verify_ownership=ok",
            "store_and_claim=ok",
            "subscribe_webhooks=ok"
        ]
    );
    assert!(
        b.url().await.ends_with("/app/channels"),
        "code and state are gone"
    );
    b.screenshot("c11-instagram-connected").await;
    assert_eq!(graph.onboarding().instagram_subscriptions.len(), 1);
    assert_eq!(graph.onboarding().instagram_subscriptions[0].0, IG);

    // The connector settings inside the portal, for Open Line 2: refused to a user who is
    // not an admin and to a forged AUTH_ID, nothing changed; an admin attaches the number.
    let bx = &w.bitrix;
    bx.clear_records();
    let not_admin = bx.user_token(FAKE_DOMAIN, 9, "Oleg Operator", false);
    let text = open_placement(&b, &base, &not_admin, "c12-placement-not-admin").await;
    assert!(
        text.contains("Only Bitrix24 administrators can change these settings"),
        "{text}"
    );
    assert!(b.all("form button").await.is_empty());
    let text = open_placement(&b, &base, "forgedauthid0123456789", "c13-placement-forged").await;
    assert!(
        text.contains("Bitrix24 did not confirm who opened this page"),
        "{text}"
    );
    assert!(bx.calls_to("imconnector.activate").is_empty());
    let admin = bx.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let text = open_placement(&b, &base, &admin, "c14-placement-line-2").await;
    assert!(
        // The number as the WABA lists it (the fake: `+1 555-` and the id's last 4 digits).
        text.contains("WhatsApp on Open Line 2") && text.contains("+1 555-9001"),
        "{text}"
    );
    b.find(&format!("form:has(input[value='whatsapp:{PHONE}']) button"))
        .await
        .click()
        .await;
    wait_url(&b, "/bitrix/placement/attach").await;
    let text = b.find("main").await.text().await;
    assert!(text.contains("is attached to this line"), "{text}");
    b.screenshot("c15-placement-attached").await;
    let activate = bx.calls_to("imconnector.activate");
    assert_eq!(activate.len(), 1);
    assert_eq!(
        activate[0].params["LINE"],
        json!(2),
        "{:?}",
        activate[0].params
    );

    // One message each way: the customer's reaches line 2, the operator's answer goes out
    // from the number with the token the sign-up stored.
    // Written now, so the customer service window is open for the answer.
    let mut inbound: Value = serde_json::from_str(
        &String::from_utf8(sample("whatsapp-text.json"))
            .unwrap()
            .replace(WA_NUMBER, PHONE)
            .replace("102290129340398", WABA),
    )
    .unwrap();
    inbound["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(wappline::clock::now_secs().to_string());
    let inbound = inbound.to_string().into_bytes();
    let chat = w.customer_writes(&inbound).await;
    let arrived = bx.messages_received().pop().unwrap();
    assert_eq!(arrived.line, "2");
    let (s, body) = w
        .event(w.reply(&chat, 7001, "Hello from line 2", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    let sent = graph.sent().pop().unwrap_or_else(|| {
        let calls: Vec<_> = graph
            .calls()
            .into_iter()
            .map(|c| (c.method, c.path, c.status))
            .collect();
        panic!(
            "the operator's answer was not sent: {calls:?} {:?}",
            bx.messages_received()
        );
    });
    assert_eq!(sent.path, format!("/v26.0/{PHONE}/messages"));
    assert_eq!(sent.bearer.as_deref(), Some(TOKEN));
    assert_eq!(sent.body["text"]["body"], "Hello from line 2");

    // Disconnecting revokes at Meta and at the portal, and the page shows it.
    for id in [PHONE, CX_PHONE, IG, FAKE_MEMBER_ID] {
        b.goto(&format!("{base}/app/channels")).await;
        b.find(&format!("#disconnect-{id}")).await.click().await;
        b.accept_prompt().await;
        wait_url(&b, "/app/channels?done=disconnected").await;
        b.find("#notice").await;
    }
    // The portal's connectors are unregistered and our events unbound.
    assert!(!bx.calls_to("imconnector.unregister").is_empty());
    assert!(!bx.calls_to("event.unbind").is_empty());
    let deletes: Vec<String> = graph
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path)
        .collect();
    assert!(
        deletes.contains(&format!("/v26.0/{WABA}/subscribed_apps")),
        "{deletes:?}"
    );
    assert!(
        deletes.iter().any(|p| p.ends_with("/me/permissions")),
        "{deletes:?}"
    );
    let revocations = b.find("#revocations").await.text().await;
    assert!(
        revocations.contains(PHONE) && revocations.contains(IG),
        "{revocations}"
    );
    b.screenshot("c16-disconnected").await;
    let left = channel_ids(&w, &tenant).await;
    assert!(
        !left
            .iter()
            .any(|c| [PHONE, CX_PHONE, IG, FAKE_MEMBER_ID].contains(&c.as_str())),
        "{left:?}"
    );
    b.quit().await;
    w.h.server.shutdown().await;
}

/// The channels page's policy names exactly the SDK's origin, the Facebook origin and
/// Instagram's window, and only for those who may connect; other pages keep the console's.
#[tokio::test]
async fn only_the_channels_page_of_an_admin_lets_meta_s_sdk_in() {
    let w = world().await;
    let tenant = w.h.tenant_with_channels().await;
    add_user(&w.h, &tenant, "owner@acme.test", "owner").await;
    add_user(&w.h, &tenant, "viewer@acme.test", "viewer").await;
    let graph = w.graph.base_url();
    let mut owner = ConsoleClient::new(&w.h.base);
    owner.sign_in(&tenant, "owner@acme.test").await;
    let page = owner.get("/app/channels").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.csp.clone().unwrap();
    assert!(
        csp.contains(&format!("script-src 'self' {graph};")),
        "{csp}"
    );
    assert!(csp.contains(&format!("frame-src {graph};")), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' {graph};")),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("form-action 'self' {graph};")),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(page.body.contains(&format!("src=\"{graph}/en_US/sdk.js\"")));
    assert!(page.body.contains("src=\"/app/static/connect.js\""));
    for other in ["/app/retention", "/app/account"] {
        let p = owner.get(other).await;
        assert!(!p.csp.unwrap().contains(&graph), "{other}");
        assert!(!p.body.contains("sdk.js"));
    }
    let script = owner.get("/app/static/connect.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.body.contains("WA_EMBEDDED_SIGNUP"));

    let mut viewer = ConsoleClient::new(&w.h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;
    let page = viewer.get("/app/channels").await;
    assert!(!page.csp.as_deref().unwrap().contains(&graph));
    assert!(!page.body.contains("sdk.js") && !page.body.contains("connect-instagram"));
    // Neither may connect: the viewer's role, and a post without the session's token.
    let csrf = page.csrf();
    let r = viewer
        .post(
            "/app/onboarding/whatsapp",
            &[("csrf", &csrf), ("event", "CANCEL")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = owner
        .post("/app/onboarding/instagram", &[("csrf", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The owner's start goes to Instagram's window with a signed state.
    let r = owner
        .submit("/app/channels", "/app/onboarding/instagram", &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to = r.location.unwrap();
    assert!(to.starts_with(&format!("{graph}/oauth/authorize?")), "{to}");
    assert!(to.contains("state=igs1."), "{to}");
    // A callback with a state of nobody's making stores nothing.
    let r = owner
        .get("/app/onboarding/instagram/callback?code=AQBxyz&state=igs1.forged.sig")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r
        .body
        .contains("This Instagram sign-in has expired or was started by someone else"));
    let v = w.h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    assert_eq!(v["channels"].as_array().unwrap().len(), 2);
}

/// `META_LOGIN_ORIGINS` holds origins: https (http on loopback only), no path; absent, the
/// origins Meta's guide names.
#[test]
fn the_facebook_origins_setting_takes_origins_only() {
    use wappline::app::settings::vars::META_LOGIN_ORIGINS;
    use wappline::app::Settings;
    let read = |v: Option<&str>| {
        Settings::from_lookup(|k| {
            (k == META_LOGIN_ORIGINS)
                .then(|| v.map(str::to_owned))
                .flatten()
        })
    };
    let origins = |v| read(v).unwrap().onboarding.login_origins;
    assert_eq!(
        origins(None),
        ["https://www.facebook.com", "https://web.facebook.com"]
    );
    assert_eq!(
        origins(Some("https://www.facebook.com/, http://127.0.0.1:9")),
        ["https://www.facebook.com", "http://127.0.0.1:9"]
    );
    for bad in [
        "http://www.facebook.com",
        "https://www.facebook.com/dialog",
        "www.facebook.com",
        " , ",
    ] {
        let e = read(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(META_LOGIN_ORIGINS), "{bad}: {e}");
    }
}

/// The channel list shows a WhatsApp number as people write it, with its verified name, both
/// recorded at connect from the WABA's list of numbers the ownership proof reads (decision
/// 0062).
#[tokio::test]
async fn the_channel_list_shows_the_number_as_written_and_its_verified_name() {
    let w = world().await;
    let tenant = w.h.tenant_with_channels().await;
    add_user(&w.h, &tenant, "owner@acme.test", "owner").await;
    let mut owner = ConsoleClient::new(&w.h.base);
    owner.sign_in(&tenant, "owner@acme.test").await;
    let page = owner.get("/app/channels").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("+1 555-2922 · Fake Market"),
        "{}",
        page.body
    );
}
