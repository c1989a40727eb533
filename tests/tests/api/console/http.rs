//! The console's guards without a browser: a form post without the session's anti-forgery
//! token is 403 and changes nothing; a role without the route's permission is 403 and
//! changes nothing; a page without a session goes to sign-in, a post is 401.

use e2e_tests::console::{add_user, ConsoleClient, PASSWORD};
use e2e_tests::harness::{Harness, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::Value;

async fn retention_of(h: &Harness, tenant: &str) -> i64 {
    let v: Value = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    v["retention_days"].as_i64().unwrap()
}

async fn channel_count(h: &Harness, tenant: &str) -> usize {
    let v: Value = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    v["channels"].as_array().unwrap().len()
}

async fn deletion_requested(h: &Harness, tenant: &str) -> bool {
    let r = h
        .http
        .get(format!("{}/admin/tenants/{tenant}/erasure", h.base))
        .bearer_auth(e2e_tests::harness::ADMIN)
        .send()
        .await
        .unwrap();
    r.status() == StatusCode::OK
}

#[tokio::test]
async fn a_form_without_the_sessions_token_is_refused_and_changes_nothing() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    add_user(&h, &tenant, "owner@acme.test", "owner").await;
    let mut owner = ConsoleClient::new(&h.base);
    owner.sign_in(&tenant, "owner@acme.test").await;
    let before = retention_of(&h, &tenant).await;

    // No token, an empty one, a forged one, and a real token of another session.
    let mut other = ConsoleClient::new(&h.base);
    other.sign_in(&tenant, "owner@acme.test").await;
    let foreign = other.get("/app/retention").await.csrf();
    for token in [
        None,
        Some(""),
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some(foreign.as_str()),
    ] {
        let mut fields = vec![("retention_days", "5")];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        let r = owner.post("/app/retention", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}: {}", r.body);
        let mut fields = vec![("kind", "whatsapp"), ("id", WA_NUMBER)];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        let r = owner.post("/app/channels/disconnect", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = owner
            .post(
                "/app/account/deletion",
                &token.map(|t| vec![("csrf", t)]).unwrap_or_default(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // A JSON client gets the error as JSON.
    let r = h
        .http
        .post(format!("{}/app/retention", h.base))
        .header("accept", "application/json")
        .header(
            "cookie",
            format!("wappline_session={}", owner.cookies["wappline_session"]),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("retention_days=5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_form_token");

    assert_eq!(retention_of(&h, &tenant).await, before);
    assert_eq!(channel_count(&h, &tenant).await, 2);
    assert!(!deletion_requested(&h, &tenant).await);
    assert!(h.graph.calls().iter().all(|c| c.method != "DELETE"));

    // Sign-in: without the nonce cookie the form's token is worthless.
    let mut stranger = ConsoleClient::new(&h.base);
    let token = stranger.get("/app/sign-in").await.csrf();
    stranger.cookies.clear();
    let r = stranger
        .post(
            "/app/sign-in",
            &[
                ("csrf", &token),
                ("account_id", &tenant),
                ("email", "owner@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("wappline_session"));

    // With the page's own token the same change goes through.
    let r = owner
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "5")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(retention_of(&h, &tenant).await, 5);
    h.server.shutdown().await;
}

#[tokio::test]
async fn roles_see_and_change_only_what_the_admin_api_lets_them() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    add_user(&h, &tenant, "viewer@acme.test", "viewer").await;
    add_user(&h, &tenant, "admin@acme.test", "admin").await;
    let before = retention_of(&h, &tenant).await;
    let mut viewer = ConsoleClient::new(&h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;

    // A viewer sees channels and retention, without the controls to change them.
    let page = viewer.get("/app/channels").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(WA_NUMBER));
    assert!(!page.body.contains("/app/channels/disconnect"));
    assert!(!page.body.contains("href=\"/app/exports\""));
    let page = viewer.get("/app/retention").await;
    assert!(page.body.contains("id=\"read-only\""));
    assert!(page.body.contains(" disabled"));
    // ...and is refused every change, with a valid token.
    let r = viewer
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "5")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = viewer
        .submit(
            "/app/channels",
            "/app/channels/disconnect",
            &[("kind", "whatsapp"), ("id", WA_NUMBER)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for page in ["/app/exports", "/app/erasure"] {
        assert_eq!(
            viewer.get(page).await.status,
            StatusCode::FORBIDDEN,
            "{page}"
        );
    }
    let r = viewer.submit("/app/channels", "/app/exports", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(retention_of(&h, &tenant).await, before);
    assert_eq!(channel_count(&h, &tenant).await, 2);
    let exports = h
        .admin_get(&format!("/admin/tenants/{tenant}/exports"))
        .await;
    assert!(exports["exports"].as_array().unwrap().is_empty());

    // An admin changes settings but may not delete the account; only an owner may.
    let mut admin = ConsoleClient::new(&h.base);
    admin.sign_in(&tenant, "admin@acme.test").await;
    let page = admin.get("/app/account").await;
    assert!(!page.body.contains("id=\"delete-account\""));
    let r = admin
        .submit("/app/account", "/app/account/deletion", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!deletion_requested(&h, &tenant).await);
    let r = admin
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "9")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(retention_of(&h, &tenant).await, 9);

    // The company name is corrected on the profile and in the platform's tenant list.
    let r = admin
        .submit(
            "/app/account",
            "/app/account/name",
            &[("name", "Acme Bakery Ltd")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    assert_eq!(v["name"], "Acme Bakery Ltd");
    let list = h.admin_get("/admin/tenants").await;
    assert!(list.to_string().contains("Acme Bakery Ltd"));
    let r = admin
        .submit("/app/account", "/app/account/name", &[("name", " ")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = viewer
        .submit(
            "/app/account",
            "/app/account/name",
            &[("name", "Viewer Co")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let v = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    assert_eq!(v["name"], "Acme Bakery Ltd");

    // Bad input: a 400 with the form again, nothing changes.
    let r = admin
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"error\""));
    assert_eq!(retention_of(&h, &tenant).await, 9);

    // Without a session: pages go to sign-in, posts are 401.
    let mut nobody = ConsoleClient::new(&h.base);
    let r = nobody.get("/app/channels").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/app/sign-in"));
    let r = nobody
        .post("/app/retention", &[("retention_days", "3")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Signing out ends the session: its cookie no longer works.
    let stale = viewer.cookies.clone();
    let r = viewer.submit("/app/channels", "/app/sign-out", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    viewer.cookies = stale;
    assert_eq!(
        viewer.get("/app/channels").await.status,
        StatusCode::SEE_OTHER
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_only_essential_cookies() {
    let h = Harness::start(|_| {}).await;
    let r = h
        .http
        .get(format!("{}/app/sign-in", h.base))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"));
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].starts_with("wappline_visitor="));
    assert!(cookies[0].contains("HttpOnly") && cookies[0].contains("SameSite=Lax"));
    let body = r.text().await.unwrap();
    // No inline script or style, nothing from another origin.
    assert!(!body.contains("<script>") && !body.contains("style="));
    assert!(!body.contains("http://") && !body.contains("https://"));
    assert!(body.contains("<label for=\"password\">"));
    h.server.shutdown().await;
}

/// The sign-in form's visitor nonce has done its job once the visitor is signed in: the
/// sign-in's answer clears it, so the browser keeps only the session's cookies.
#[tokio::test]
async fn signing_in_clears_the_visitor_nonce() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.create_tenant("Acme").await;
    add_user(&h, &tenant, "owner@acme.test", "owner").await;
    let mut browser = ConsoleClient::new(&h.base);
    browser.get("/app/sign-in").await;
    assert!(browser.cookies.contains_key("wappline_visitor"));
    browser.sign_in(&tenant, "owner@acme.test").await;
    assert!(
        !browser.cookies.contains_key("wappline_visitor"),
        "{:?}",
        browser.cookies.keys().collect::<Vec<_>>()
    );
    assert!(browser.cookies.contains_key("wappline_session"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn users_api_keys_and_the_audit_log_through_the_console() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    add_user(&h, &tenant, "admin@acme.test", "admin").await;
    add_user(&h, &tenant, "viewer@acme.test", "viewer").await;
    let mut admin = ConsoleClient::new(&h.base);
    admin.sign_in(&tenant, "admin@acme.test").await;

    // An API key is shown once, on the answer to its creation, never again.
    let r = admin
        .submit("/app/api-keys", "/app/api-keys", &[("name", "CRM bridge")])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let start = r.body.find("id=\"new-key\">").unwrap() + "id=\"new-key\">".len();
    let key = &r.body[start..start + r.body[start..].find('<').unwrap()];
    assert!(key.len() > 20, "{key}");
    let list = admin.get("/app/api-keys").await;
    assert!(list.body.contains("CRM bridge") && !list.body.contains(key));
    // The key works on the public API.
    let sent = h
        .http
        .post(format!("{}/v1/messages", h.base))
        .bearer_auth(key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_ne!(sent.status(), StatusCode::UNAUTHORIZED);

    // Invited: the local server emails the invitation (its outbox), so no token is shown.
    let r = admin
        .submit(
            "/app/users",
            "/app/users/invite",
            &[("email", "new@acme.test"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(!r.body.contains("id=\"invitation-token\""));
    let users = admin.get("/app/users").await;
    assert!(users.body.contains("new@acme.test") && !users.body.contains("invitation-token"));
    // An admin may not make an owner (the accounts service's rule).
    assert!(!users.body.contains("value=\"owner\""));
    let v = h
        .admin_get(&format!("/admin/tenants/{tenant}/invitations"))
        .await;
    assert_eq!(v["invitations"].as_array().unwrap().len(), 1);

    // The audit log shows both changes, by this user.
    let audit = admin.get("/app/audit").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.body.contains("api_key_created") && audit.body.contains("user_invited"));

    // A Bitrix24 install link for line 2, shown once (the code is stored only as a hash).
    let r = admin
        .submit("/app/bitrix24", "/app/bitrix24", &[("line_id", "2")])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body.contains("id=\"install-url\"") && r.body.contains("/bitrix/install"));
    let again = admin.get("/app/bitrix24").await;
    assert!(!again.body.contains("install-url"));
    let r = admin
        .submit("/app/bitrix24", "/app/bitrix24", &[("line_id", "0")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A viewer gets none of these pages nor their changes.
    let mut viewer = ConsoleClient::new(&h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;
    for page in ["/app/users", "/app/api-keys", "/app/audit"] {
        assert_eq!(
            viewer.get(page).await.status,
            StatusCode::FORBIDDEN,
            "{page}"
        );
    }
    let r = viewer
        .submit("/app/channels", "/app/api-keys", &[("name", "sneaky")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The portal page is readable, its link is not for a viewer.
    let page = viewer.get("/app/bitrix24").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"issue-code\""));
    let r = viewer
        .submit("/app/channels", "/app/bitrix24", &[("line_id", "2")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let v = h
        .admin_get(&format!("/admin/tenants/{tenant}/api-keys"))
        .await;
    assert_eq!(v["api_keys"].as_array().unwrap().len(), 1);
    h.server.shutdown().await;
}

#[tokio::test]
async fn the_usage_chart_counts_each_days_messages_against_the_quota() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    h.admin(
        "PUT",
        &format!("/admin/tenants/{tenant}/plan"),
        serde_json::json!({"monthly_outbound": 3100, "monthly_inbound": null}),
    )
    .await;
    add_user(&h, &tenant, "viewer@acme.test", "viewer").await;
    // A customer's message reaches the tenant: one received today.
    let (s, _) = h
        .post_signed(&e2e_tests::harness::sample("whatsapp-text.json"))
        .await;
    assert_eq!(s, StatusCode::OK);
    h.drain(
        wappline::queue::platform::INBOUND,
        std::time::Duration::from_secs(10),
    )
    .await;
    let mut viewer = ConsoleClient::new(&h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;
    let page = viewer.get("/app/usage").await;
    assert_eq!(page.status, StatusCode::OK);
    let today = wappline::usage::day_of_month(wappline::clock::now_secs());
    assert!(
        page.body.contains(&format!(
            "data-day=\"{today}\" data-in=\"1\" data-out=\"0\""
        )),
        "{}",
        page.body
    );
    // Every other day is empty; the quota's daily share is drawn (3100 over the month).
    assert_eq!(page.body.matches("data-in=\"1\"").count(), 1);
    assert!(page.body.contains("id=\"quota-pace\""));
    assert!(page.body.contains("id=\"usage-inbound\">1<"));
    h.server.shutdown().await;
}
