//! The console in a real browser: headless Chromium (Debian's package) over WebDriver,
//! against the local server on a random port with the loopback Graph API. One session walks
//! the flows an owner uses, by keyboard where a person would: sign in, see the channels,
//! change retention, request and download an export, erase a contact, disconnect a number
//! (and see the revocation call at the fake Graph API), create an API key (shown once), see
//! users, usage and the audit log, request the account's deletion and cancel it, switch to
//! Russian; then a viewer sees settings without being able to change
//! them. The API key's form is used by keyboard only (Tab, typing, Enter). A screenshot of
//! each page goes to the artifacts folder the test prints.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e_tests::console::{add_user, PASSWORD};
use e2e_tests::harness::{Harness, ADMIN, IG_ACCOUNT, WABA, WA_NUMBER};
use e2e_tests::webdriver::{Browser, ENTER};
use reqwest::StatusCode;
use serde_json::Value;

/// `<target dir>/console-artifacts`: the test binary is `<target dir>/debug/deps/api-…`.
pub(super) fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_owned();
    target.join("console-artifacts")
}

async fn admin_get(h: &Harness, path: &str) -> (StatusCode, Value) {
    let r = h
        .http
        .get(format!("{}{path}", h.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Signs in through the sign-in page as a person does, by keyboard; waits for the signed-in
/// page.
pub(super) async fn sign_in(b: &Browser, base: &str, account: &str, email: &str) {
    b.goto(&format!("{base}/app/sign-in")).await;
    b.find("#account_id").await.type_text(account).await;
    b.find("#email").await.type_text(email).await;
    // Enter in the password field submits the form: no mouse needed.
    b.find("#password")
        .await
        .type_text(&format!("{PASSWORD}{ENTER}"))
        .await;
    b.wait_for("#sign-out", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_owner_and_a_viewer_use_the_console_in_a_browser() {
    let started = Instant::now();
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    add_user(&h, &tenant, "owner@acme.test", "owner").await;
    add_user(&h, &tenant, "viewer@acme.test", "viewer").await;
    let shots = artifacts();
    println!("console screenshots: {}", shots.display());
    let b = Browser::start(&shots).await;
    let base = h.base.clone();

    // Sign in.
    b.goto(&format!("{base}/app/channels")).await;
    assert!(b.url().await.ends_with("/app/sign-in"), "{}", b.url().await);
    b.screenshot("01-sign-in").await;
    sign_in(&b, &base, &tenant, "owner@acme.test").await;
    assert!(b.url().await.ends_with("/app/channels"));
    // The session cookies are out of reach of scripts.
    let cookies = b.cookies().await;
    let session = cookies.iter().find(|c| c.0 == "wappline_session").unwrap();
    assert!(session.2, "the session cookie is HttpOnly");

    // Channels, with their status.
    let table = b.find("#channels").await.text().await;
    assert!(
        table.contains(WA_NUMBER) && table.contains(IG_ACCOUNT),
        "{table}"
    );
    assert!(table.contains("Connected"));
    b.screenshot("02-channels").await;

    // Retention.
    b.find("a[href='/app/retention']").await.click().await;
    let days = b.find("#retention_days").await;
    days.clear().await;
    days.type_text("45").await;
    b.find("#save-retention").await.click().await;
    b.wait_text("#notice", "Retention saved.").await;
    assert_eq!(
        b.find("#retention_days")
            .await
            .attr("value")
            .await
            .as_deref(),
        Some("45")
    );
    let (_, settings) = admin_get(&h, &format!("/admin/tenants/{tenant}")).await;
    assert_eq!(settings["retention_days"], 45);
    b.screenshot("03-retention").await;

    // Export: requested, the page refreshes itself until it is ready, then downloaded.
    b.find("a[href='/app/exports']").await.click().await;
    b.find("#request-export").await.click().await;
    b.find("#notice").await;
    b.screenshot("04-export-requested").await;
    let link = b
        .wait_for(
            "a.download[aria-label$='export.json']",
            Duration::from_secs(20),
        )
        .await;
    b.screenshot("05-export-ready").await;
    link.click().await;
    let file = b.downloaded("-export.json", Duration::from_secs(10)).await;
    let export: Value = serde_json::from_slice(&file).unwrap();
    assert!(
        String::from_utf8_lossy(&file).contains(&tenant),
        "the export is this tenant's: {export}"
    );

    // Contact erasure by phone number, after the confirmation prompt.
    b.find("a[href='/app/erasure']").await.click().await;
    b.find(&format!("#channel option[value='whatsapp:{WA_NUMBER}']"))
        .await
        .click()
        .await;
    b.find("#customer").await.type_text("+1 650 555 1234").await;
    b.screenshot("06-erasure").await;
    b.find("#erase-contact").await.click().await;
    assert!(b.accept_prompt().await.contains("cannot be undone"));
    let request = b.find("#erasure-request code").await.text().await;
    let (status, v) = admin_get(
        &h,
        &format!("/admin/tenants/{tenant}/erasure/contacts/{request}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    b.screenshot("07-erasure-requested").await;

    // Disconnect the WhatsApp number: revoked at the fake Graph API, state shown.
    b.find("a[href='/app/channels']").await.click().await;
    b.find(&format!("#disconnect-{WA_NUMBER}"))
        .await
        .click()
        .await;
    b.accept_prompt().await;
    b.wait_text(
        "#notice",
        "The channel is disconnected. Its access is being revoked at the provider.",
    )
    .await;
    let calls: Vec<_> = h
        .graph
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE")
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, format!("/v26.0/{WABA}/subscribed_apps"));
    let revocations = b.find("#revocations").await.text().await;
    assert!(revocations.contains(WA_NUMBER), "{revocations}");
    assert!(
        revocations.contains("WhatsApp webhooks unsubscribed: done"),
        "{revocations}"
    );
    assert!(!b.find("#channels").await.text().await.contains(WA_NUMBER));
    b.screenshot("08-disconnected").await;

    // An API key, shown once; the users, usage and audit pages.
    // Its form by keyboard only: Tab to the name, type it, Enter.
    b.find("a[href='/app/api-keys']").await.click().await;
    b.find("#key-name").await;
    b.tab_to("#key-name").await;
    b.press(&format!("CRM bridge{ENTER}")).await;
    let key = b.find("#new-key").await.text().await;
    assert!(key.len() > 20);
    b.screenshot("09-api-key-created").await;
    b.goto(&format!("{base}/app/api-keys")).await;
    assert!(!b.source().await.contains(&key), "the key is shown once");
    b.find("a[href='/app/users']").await.click().await;
    assert!(b
        .find("#users")
        .await
        .text()
        .await
        .contains("viewer@acme.test"));
    b.screenshot("10-users").await;
    b.find("a[href='/app/usage']").await.click().await;
    b.find("#usage-chart").await;
    b.screenshot("11-usage").await;
    b.find("a[href='/app/bitrix24']").await.click().await;
    b.find("#line_id")
        .await
        .type_text(&format!("2{ENTER}"))
        .await;
    assert!(b
        .find("#install-url")
        .await
        .text()
        .await
        .contains("/bitrix/install"));
    b.screenshot("12-bitrix24-install-link").await;
    b.find("a[href='/app/audit']").await.click().await;
    let audit = b.find("#audit").await.text().await;
    assert!(audit.contains("api_key_created") && audit.contains("channel_disconnected"));
    b.screenshot("12b-audit").await;

    // Account deletion, then its cancellation.
    b.find("a[href='/app/account']").await.click().await;
    b.find("#delete-account").await.click().await;
    b.accept_prompt().await;
    b.text_when("#deletion-state", |t| {
        t.starts_with("The account is scheduled to be erased after")
    })
    .await;
    let (_, v) = admin_get(&h, &format!("/admin/tenants/{tenant}/erasure")).await;
    assert_eq!(v["state"], "pending");
    b.screenshot("13-deletion-scheduled").await;
    b.find("#cancel-deletion").await.click().await;
    b.wait_text("#notice", "Deletion cancelled.").await;
    let (_, v) = admin_get(&h, &format!("/admin/tenants/{tenant}/erasure")).await;
    assert_eq!(v["state"], "cancelled");
    b.screenshot("14-deletion-cancelled").await;

    // Russian, remembered from page to page.
    b.find("#lang-ru").await.click().await;
    b.wait_text("h1", "Аккаунт").await;
    assert!(b.source().await.contains("<html lang=\"ru\">"));
    b.screenshot("15-account-ru").await;
    b.find("a[href='/app/channels']").await.click().await;
    b.wait_text("h1", "Каналы").await;
    b.screenshot("16-channels-ru").await;
    b.find("#sign-out").await.click().await;
    b.wait_for("#sign-in", Duration::from_secs(5)).await;
    b.wait_text("h1", "Вход").await;

    // A viewer sees the settings and cannot change them.
    b.find("#lang-en").await.click().await;
    sign_in(&b, &base, &tenant, "viewer@acme.test").await;
    b.find("a[href='/app/retention']").await.click().await;
    assert!(!b.find("#retention_days").await.enabled().await);
    assert!(b.all("#save-retention").await.is_empty());
    assert!(b.all("a[href='/app/exports']").await.is_empty());
    b.find("#read-only").await;
    b.screenshot("17-viewer-retention").await;
    b.find("a[href='/app/channels']").await.click().await;
    assert!(b.all("button.danger").await.is_empty());
    b.quit().await;
    h.server.shutdown().await;
    println!("browser flows took {:?}", started.elapsed());
}
