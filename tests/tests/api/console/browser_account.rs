//! The account pages of decision 0073 in a real browser (headless Chromium over WebDriver, as
//! in `browser.rs`): a person opens the invitation link from their mail, gives a name and a
//! password and lands signed in; signs out, uses "Forgot your password?", opens the reset
//! link from the mail, sets a new password and signs in with it. The links are read from the
//! local outbox, as a person reads their mail. A screenshot of each page goes to the
//! artifacts folder.

use std::time::{Duration, Instant};

use e2e_tests::harness::Harness;
use e2e_tests::webdriver::{Browser, ENTER};
use serde_json::json;

use super::browser::artifacts;
use e2e_tests::outbox::{link, mails_to};

const FIRST: &str = "first passphrase of nina";
const SECOND: &str = "second passphrase of nina";

#[tokio::test]
async fn an_invitation_is_accepted_and_a_password_reset_in_a_browser() {
    let started = Instant::now();
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme").await;
    h.admin(
        "POST",
        &format!("/admin/tenants/{t}/invitations"),
        json!({"email": "nina@acme.test", "role": "admin"}),
    )
    .await;
    let shots = artifacts();
    println!("account page screenshots: {}", shots.display());
    let b = Browser::start(&shots).await;
    let base = h.base.clone();

    // The invitation's link, from the mail.
    let invitation = link(
        &mails_to(&dir, "nina@acme.test")[0],
        &format!("{base}/app/invitations/accept?token="),
    );
    b.goto(&invitation).await;
    assert_eq!(b.find("#invitation-company").await.text().await, "Acme");
    assert_eq!(b.find("#invitation-role").await.text().await, "admin");
    b.screenshot("account-01-invitation").await;
    b.find("#name").await.type_text("Nina Ray").await;
    b.find("#password").await.type_text(FIRST).await;
    // Enter in the last field submits: no mouse needed.
    b.find("#password2")
        .await
        .type_text(&format!("{FIRST}{ENTER}"))
        .await;
    b.wait_for("#sign-out", Duration::from_secs(10)).await;
    assert!(
        b.url().await.ends_with("/app/channels"),
        "{}",
        b.url().await
    );
    assert_eq!(b.find("#who").await.text().await, "nina@acme.test");
    b.screenshot("account-02-signed-in").await;

    // The link is used up.
    b.find("#sign-out").await.click().await;
    b.wait_for("#sign-in", Duration::from_secs(10)).await;
    b.goto(&invitation).await;
    b.wait_text("#error", "This invitation link is invalid, has expired or was already used. Nothing was changed. Ask the person who invited you for a new one.").await;
    b.screenshot("account-03-invitation-used").await;

    // Forgot the password: the request form from the sign-in page.
    b.goto(&format!("{base}/app/sign-in")).await;
    b.find("#forgot-password").await.click().await;
    b.find("#account_id").await.type_text(&t).await;
    b.find("#email")
        .await
        .type_text(&format!("nina@acme.test{ENTER}"))
        .await;
    b.wait_for("#notice", Duration::from_secs(10)).await;
    b.screenshot("account-04-reset-requested").await;
    let reset = mails_to(&dir, "nina@acme.test")
        .into_iter()
        .filter(|m| m.contains("Reset your Wappline password"))
        .collect::<Vec<_>>();
    assert_eq!(reset.len(), 1);
    let reset = link(
        &reset[0],
        &format!("{base}/app/password-reset/confirm?token="),
    );

    // The reset link: a new password, then sign-in with it.
    b.goto(&reset).await;
    b.screenshot("account-05-new-password").await;
    b.find("#password").await.type_text(SECOND).await;
    b.find("#password2")
        .await
        .type_text(&format!("{SECOND}{ENTER}"))
        .await;
    b.wait_text(
        "#notice",
        "Your new password is set and every session was signed out. Sign in with it.",
    )
    .await;
    assert!(b.url().await.contains("/app/sign-in"));
    b.screenshot("account-06-reset-done").await;
    b.find("#account_id").await.type_text(&t).await;
    b.find("#email").await.type_text("nina@acme.test").await;
    b.find("#password")
        .await
        .type_text(&format!("{SECOND}{ENTER}"))
        .await;
    b.wait_for("#sign-out", Duration::from_secs(10)).await;
    assert!(mails_to(&dir, "nina@acme.test")
        .iter()
        .any(|m| m.contains("Your Wappline password was changed")));
    b.quit().await;
    h.server.shutdown().await;
    println!("account pages in the browser took {:?}", started.elapsed());
}
