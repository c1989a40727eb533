//! The account settings of decision 0047 on the local server, over HTTP: a user corrects
//! their name; their email changes only through the single-use, expiring link mailed to the
//! new address (a bad, expired or used link changes nothing) and the old address is told; a
//! changed privacy policy shows a notice until acknowledged and is mailed to each user once
//! per version; a sign-in from a new device and a password change are mailed.

use std::time::Duration;

use e2e_tests::console::{add_user, ConsoleClient, PASSWORD};
use e2e_tests::harness::{Harness, ADMIN};
use e2e_tests::outbox::{link, mails_to, token_of};
use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::store::{Table, Update, TTL_ATTR};

fn with_subject(mails: &[String], subject: &str) -> usize {
    mails.iter().filter(|m| m.contains(subject)).count()
}

/// The `token=` of the confirmation link in a mail.
fn link_token(mail: &str) -> String {
    token_of(&link(mail, "confirm?token="))
}

/// Signs in through the admin API's `/auth/sign-in` with a User-Agent; the status.
async fn api_sign_in(h: &Harness, t: &str, email: &str, ua: &str) -> (StatusCode, Value) {
    let r = h
        .http
        .post(format!("{}/auth/sign-in", h.base))
        .header("user-agent", ua)
        .json(&json!({"account_id": t, "email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_new_email_takes_effect_only_through_its_link_and_the_old_address_is_told() {
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme").await;
    add_user(&h, &t, "ann@acme.test", "viewer").await;
    add_user(&h, &t, "bob@acme.test", "agent").await;
    let mut ann = ConsoleClient::new(&h.base);
    ann.sign_in(&t, "ann@acme.test").await;

    // The name, by a viewer: it is her own data.
    let r = ann
        .submit(
            "/app/account",
            "/app/account/profile",
            &[("name", " Ann Lee ")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/app/account?done=name_saved"));
    assert!(ann
        .get("/app/account")
        .await
        .body
        .contains("value=\"Ann Lee\""));
    let r = ann
        .submit("/app/account", "/app/account/profile", &[("name", "  ")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(ann
        .get("/app/account")
        .await
        .body
        .contains("value=\"Ann Lee\""));

    // Another user's address, or her own: refused, nothing mailed.
    let r = ann
        .submit(
            "/app/account",
            "/app/account/email",
            &[("email", "bob@acme.test")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = ann
        .submit(
            "/app/account",
            "/app/account/email",
            &[("email", "not an address")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(mails_to(&dir, "bob@acme.test")
        .iter()
        .all(|m| !m.contains("Confirm your new")));

    // The link goes to the new address; until it is followed nothing changes.
    let r = ann
        .submit(
            "/app/account",
            "/app/account/email",
            &[("email", "Ann@New.test")],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/app/account?done=email_link_sent")
    );
    let sent = mails_to(&dir, "ann@new.test");
    assert_eq!(with_subject(&sent, "Confirm your new Wappline email"), 1);
    let token = link_token(&sent[0]);
    assert!(ann.get("/app/account").await.body.contains("ann@acme.test"));

    // A second request, whose link then expires.
    ann.submit(
        "/app/account",
        "/app/account/email",
        &[("email", "ann@late.test")],
    )
    .await;
    let late = link_token(&mails_to(&dir, "ann@late.test")[0]);
    let platform = h.server.platform();
    for item in h.all_items(Table::Data).await {
        if item.get_s("new_email") == Some("ann@late.test") {
            let past = wappline::clock::now_secs() - 1;
            platform
                .store
                .update(
                    Table::Data,
                    &item.key().unwrap(),
                    Update::new().set(TTL_ATTR, past),
                    None,
                )
                .await
                .unwrap();
        }
    }

    // Bad, expired: refused, nothing changes.
    let mut browser = ConsoleClient::new(&h.base);
    let forged = format!("wpe1.{t}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for bad in [forged.as_str(), late.as_str(), "nonsense"] {
        let r = browser
            .post("/app/account/email/confirm", &[("token", bad)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    assert_eq!(
        api_sign_in(&h, &t, "ann@late.test", "x").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Opening the link only shows the button (a mail scanner changes nothing).
    let page = browser
        .get(&format!("/app/account/email/confirm?token={token}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"confirm-email\""));
    assert_eq!(
        api_sign_in(&h, &t, "ann@new.test", "x").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Followed: the new address signs in, the old one no more; the old address is told.
    let r = browser
        .post("/app/account/email/confirm", &[("token", &token)])
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/app/sign-in?done=email_changed"),
        "{}",
        r.body
    );
    assert_eq!(
        api_sign_in(&h, &t, "ann@new.test", "x").await.0,
        StatusCode::OK
    );
    assert_eq!(
        api_sign_in(&h, &t, "ann@acme.test", "x").await.0,
        StatusCode::UNAUTHORIZED
    );
    let told = mails_to(&dir, "ann@acme.test");
    assert_eq!(with_subject(&told, "email address was changed"), 1);
    assert!(told.iter().any(|m| m.contains("ann@new.test")));
    // Used: a second use changes nothing.
    let r = browser
        .post("/app/account/email/confirm", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api_sign_in(&h, &t, "ann@new.test", "x").await.0,
        StatusCode::OK
    );
    // Audited by setting, never with the addresses or the name.
    let audit = h
        .admin_get(&format!("/admin/tenants/{t}/audit"))
        .await
        .to_string();
    for setting in ["user_name", "user_email_change_requested", "user_email"] {
        let entry = format!("\"setting\":\"{setting}\"");
        assert!(audit.contains(&entry), "{setting}: {audit}");
    }
    assert!(!audit.contains("ann@new.test") && !audit.contains("Ann Lee"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_new_device_is_mailed_once_and_a_password_change_is_mailed() {
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme").await;
    add_user(&h, &t, "ann@acme.test", "admin").await;
    let new_device = |n| {
        let mails = mails_to(&dir, "ann@acme.test");
        assert_eq!(with_subject(&mails, "New sign-in"), n, "{mails:?}");
        mails
    };
    new_device(0);
    let (s, signed) = api_sign_in(&h, &t, "ann@acme.test", "Laptop/1.0").await;
    assert_eq!(s, StatusCode::OK);
    new_device(1);
    // The same device again: nothing.
    for _ in 0..2 {
        api_sign_in(&h, &t, "ann@acme.test", "Laptop/1.0").await;
    }
    new_device(1);
    // Another one: mailed, naming the browser; the network only, never the full address.
    api_sign_in(&h, &t, "ann@acme.test", "Phone/2.0").await;
    let mails = new_device(2);
    assert!(mails.iter().any(|m| m.contains("Browser: Phone/2.0")));
    // (The device mails: the invitation's link names the console's host, decision 0073.)
    assert!(!mails
        .iter()
        .filter(|m| m.contains("New sign-in"))
        .any(|m| m.contains("127.0.0.1")));
    // A failed sign-in from a new device mails nothing.
    let r = h
        .http
        .post(format!("{}/auth/sign-in", h.base))
        .header("user-agent", "Stranger/1.0")
        .json(&json!({"account_id": t, "email": "ann@acme.test", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    new_device(2);

    // A password change is mailed.
    let r = h
        .http
        .put(format!("{}/auth/password", h.base))
        .bearer_auth(signed["access_token"].as_str().unwrap())
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mails = mails_to(&dir, "ann@acme.test");
    assert_eq!(with_subject(&mails, "password was changed"), 1);
    h.server.shutdown().await;
}

/// Starts a server on `dir` (a restart after [`LocalServer::shutdown`]) with the policy
/// `version`.
async fn server_with_policy(dir: &std::path::Path, version: &str) -> (LocalServer, String) {
    let mut config = LocalConfig::for_tests(dir, ADMIN);
    config.privacy_policy_version = Some(version.into());
    let server = LocalServer::start(config).await.unwrap();
    let base = format!("http://{}", server.addr());
    (server, base)
}

/// Waits until `n` policy emails of `version` reached `to`, then a few more scheduled runs
/// (every second), and returns how many there are.
async fn policy_mails_after_runs(
    dir: &std::path::Path,
    to: &str,
    version: &str,
    n: usize,
) -> usize {
    let count = || {
        mails_to(dir, to)
            .iter()
            .filter(|m| m.contains("privacy policy has changed") && m.contains(version))
            .count()
    };
    for _ in 0..250 {
        if count() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    count()
}

#[tokio::test]
async fn a_changed_policy_shows_a_notice_until_acknowledged_and_is_mailed_once_per_version() {
    // The users exist before the policy version is set.
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme").await;
    add_user(&h, &t, "ann@acme.test", "owner").await;
    add_user(&h, &t, "vic@acme.test", "viewer").await;
    let mut ann = ConsoleClient::new(&h.base);
    ann.sign_in(&t, "ann@acme.test").await;
    assert!(!ann
        .get("/app/channels")
        .await
        .body
        .contains("id=\"policy-notice\""));
    h.server.shutdown().await;

    // The policy gets a version: each user is mailed once, however many scheduled runs come.
    let (server, base) = server_with_policy(&dir, "2026-12-01").await;
    for who in ["ann@acme.test", "vic@acme.test"] {
        assert_eq!(
            policy_mails_after_runs(&dir, who, "2026-12-01", 1).await,
            1,
            "{who}"
        );
    }
    // The next sign-in shows the notice until it is acknowledged.
    let mut ann = ConsoleClient::new(&base);
    ann.sign_in(&t, "ann@acme.test").await;
    let page = ann.get("/app/channels").await;
    assert!(page.body.contains("id=\"policy-notice\""), "{}", page.body);
    assert!(page.body.contains("2026-12-01"));
    // An old page's form cannot acknowledge another version.
    let r = ann
        .submit(
            "/app/channels",
            "/app/policy/acknowledge",
            &[("version", "2025-01-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(ann
        .get("/app/channels")
        .await
        .body
        .contains("id=\"policy-notice\""));
    let r = ann
        .submit(
            "/app/channels",
            "/app/policy/acknowledge",
            &[("version", "2026-12-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(!ann
        .get("/app/channels")
        .await
        .body
        .contains("id=\"policy-notice\""));
    // The version seen: on the user's own account page, and for the admins on the users
    // page, each user's own.
    let page = ann.get("/app/account").await;
    assert!(
        page.body
            .contains("<span id=\"my-policy\">2026-12-01</span>"),
        "{}",
        page.body
    );
    let users = ann.get("/app/users").await;
    assert_eq!(policy_seen_on(&users.body, "ann@acme.test"), "2026-12-01");
    assert_eq!(policy_seen_on(&users.body, "vic@acme.test"), "none yet");
    // Another user still sees it.
    let mut vic = ConsoleClient::new(&base);
    vic.sign_in(&t, "vic@acme.test").await;
    let page = vic.get("/app/account").await;
    assert!(page.body.contains("id=\"policy-notice\""));
    assert!(page.body.contains("<span id=\"my-policy\">none yet</span>"));
    server.shutdown().await;

    // The policy changes again: a notice for the new version, one more email each.
    let (server, base) = server_with_policy(&dir, "2027-01-01").await;
    let mut ann = ConsoleClient::new(&base);
    ann.sign_in(&t, "ann@acme.test").await;
    let page = ann.get("/app/channels").await;
    assert!(page.body.contains("id=\"policy-notice\""));
    assert!(page.body.contains("2027-01-01"));
    for who in ["ann@acme.test", "vic@acme.test"] {
        assert_eq!(
            policy_mails_after_runs(&dir, who, "2027-01-01", 1).await,
            1,
            "{who}"
        );
        assert_eq!(
            policy_mails_after_runs(&dir, who, "2026-12-01", 1).await,
            1,
            "{who}"
        );
    }
    server.shutdown().await;
}

/// The privacy-policy version the users page shows for `email`.
fn policy_seen_on(body: &str, email: &str) -> String {
    let row = body
        .find(&format!("<tr data-user=\"{email}\">"))
        .unwrap_or_else(|| panic!("no row for {email}: {body}"));
    let marker = "<td class=\"policy-seen\">";
    let start = body[row..].find(marker).unwrap() + row + marker.len();
    let end = body[start..].find("</td>").unwrap() + start;
    body[start..end].to_owned()
}
