//! The account pages of decision 0073 on the local server, over HTTP: an invitation accepted
//! from its emailed link (company and role shown, name and password asked, signed in); a
//! password reset asked for on the page (the same answer for unknown accounts) and set from
//! the emailed link (every session ends, the user is mailed); a password changed while signed
//! in (the current one required, the other sessions end, this one goes on, the user is
//! mailed). Forged, expired and used links, forms without their anti-forgery token and bad
//! passwords change nothing. The API's endpoints keep working beside the pages.

use e2e_tests::console::{add_user, ConsoleClient, Page, PASSWORD};
use e2e_tests::harness::Harness;
use e2e_tests::outbox::{link, mails_to, token_of};
use reqwest::StatusCode;
use serde_json::json;
use wappline::store::{Table, Update, TTL_ATTR};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

async fn api_sign_in(h: &Harness, t: &str, email: &str, password: &str) -> StatusCode {
    h.http
        .post(format!("{}/auth/sign-in", h.base))
        .json(&json!({"account_id": t, "email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

/// Makes the data item `matches` picks expire now (the store hides it, decision 0004).
async fn expire(h: &Harness, matches: impl Fn(&str) -> bool) {
    let platform = h.server.platform();
    let mut n = 0;
    for item in h.all_items(Table::Data).await {
        let key = item.key().unwrap();
        if matches(&key.sk) {
            let past = wappline::clock::now_secs() - 1;
            platform
                .store
                .update(Table::Data, &key, Update::new().set(TTL_ATTR, past), None)
                .await
                .unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 1, "one item expired");
}

/// Posts `fields` to the public page `path` with a fresh form token (and its nonce cookie),
/// as a browser does from a page it just loaded.
async fn post_form(b: &mut ConsoleClient, path: &str, fields: &[(&str, &str)]) -> Page {
    let csrf = b.get("/app/password-reset").await.csrf();
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post(path, &all).await
}

#[tokio::test]
async fn an_invitation_is_accepted_on_its_page_with_a_name_and_signs_in() {
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme & Sons").await;
    h.admin(
        "POST",
        &format!("/admin/tenants/{t}/invitations"),
        json!({"email": "nina@acme.test", "role": "admin"}),
    )
    .await;
    // The mail links to the page, on the configured base URL.
    let mail = &mails_to(&dir, "nina@acme.test")[0];
    let url = link(mail, &format!("{}/app/invitations/accept?token=", h.base));
    let token = token_of(&url);
    let path = &url[h.base.len()..];

    let mut b = ConsoleClient::new(&h.base);
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for shown in [
        "Acme &#38; Sons",
        "nina@acme.test",
        "id=\"invitation-role\">admin<",
        "for=\"name\"",
        "for=\"password2\"",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(page.csp.as_deref().unwrap().contains("script-src 'self'"));

    // Without the form's token, or with a bad password or name: refused, still usable.
    let r = b
        .post(
            "/app/invitations/accept",
            &[
                ("token", &token),
                ("name", "Nina"),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (name, first, second) in [
        ("Nina", PASSWORD, "another password 123"),
        ("Nina", "short", "short"),
        ("   ", PASSWORD, PASSWORD),
    ] {
        let r = post_form(
            &mut b,
            "/app/invitations/accept",
            &[
                ("token", &token),
                ("name", name),
                ("password", first),
                ("password2", second),
            ],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{name} {first}: {}",
            r.body
        );
        assert!(r.body.contains("role=\"alert\""));
        assert!(!b.cookies.contains_key("wappline_session"));
    }
    assert_eq!(
        api_sign_in(&h, &t, "nina@acme.test", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );

    // Accepted: signed in, with the name given.
    let r = post_form(
        &mut b,
        "/app/invitations/accept",
        &[
            ("token", &token),
            ("name", " Nina Ray "),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.location.as_deref(), Some("/app/channels"), "{}", r.body);
    // The form's visitor nonce is used up: cleared with the sign-in.
    assert!(!b.cookies.contains_key("wappline_visitor"));
    let account = b.get("/app/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("value=\"Nina Ray\""));
    assert!(account.body.contains("nina@acme.test"));
    assert_eq!(
        api_sign_in(&h, &t, "nina@acme.test", PASSWORD).await,
        StatusCode::OK
    );

    // Used: a clear page, and a second post creates nothing.
    let mut other = ConsoleClient::new(&h.base);
    let page = other.get(path).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page
        .body
        .contains("invalid, has expired or was already used"));
    assert!(!page.body.contains("name=\"password\""));
    let r = post_form(
        &mut other,
        "/app/invitations/accept",
        &[
            ("token", &token),
            ("name", "X"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!other.cookies.contains_key("wappline_session"));

    // Forged, and expired: the same page, nothing created.
    let forged = format!(
        "/app/invitations/accept?token=wpi1.{t}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );
    let r = other.get(&forged).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    h.admin(
        "POST",
        &format!("/admin/tenants/{t}/invitations"),
        json!({"email": "late@acme.test", "role": "viewer"}),
    )
    .await;
    let late = link(
        &mails_to(&dir, "late@acme.test")[0],
        "/app/invitations/accept?token=",
    );
    expire(&h, |sk| sk.starts_with("INVITE#")).await;
    let page = other.get(&late).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let r = post_form(
        &mut other,
        "/app/invitations/accept",
        &[
            ("token", &token_of(&late)),
            ("name", "Late"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api_sign_in(&h, &t, "late@acme.test", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );

    // Russian.
    let mut r = ConsoleClient::new(&h.base);
    r.cookies.insert("wappline_lang".into(), "ru".into());
    let page = r.get(&forged).await;
    assert!(page.body.contains("Ссылка приглашения недействительна"));
}

#[tokio::test]
async fn a_password_is_reset_through_the_pages_and_every_session_ends() {
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme").await;
    add_user(&h, &t, "ann@acme.test", "agent").await;
    let mut signed_in = ConsoleClient::new(&h.base);
    signed_in.sign_in(&t, "ann@acme.test").await;
    let reset_mails = || {
        mails_to(&dir, "ann@acme.test")
            .into_iter()
            .filter(|m| m.contains("Reset your Wappline password"))
            .collect::<Vec<_>>()
    };

    // "Forgot your password?" on the sign-in page leads to the request form.
    let mut b = ConsoleClient::new(&h.base);
    let sign_in = b.get("/app/sign-in").await;
    assert!(sign_in.body.contains("href=\"/app/password-reset\""));
    let form = b.get("/app/password-reset").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("for=\"account_id\"") && form.body.contains("for=\"email\""));

    // Without the token: refused, nothing mailed. A bad address: the form again.
    let r = b
        .post(
            "/app/password-reset",
            &[("account_id", &t), ("email", "ann@acme.test")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(
        &mut b,
        "/app/password-reset",
        &[("account_id", &t), ("email", "not an address")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(reset_mails().is_empty());

    // The same answer whether the user exists or not; only a user is mailed.
    let mut answers = Vec::new();
    for email in ["nobody@acme.test", "ann@acme.test"] {
        let r = post_form(
            &mut b,
            "/app/password-reset",
            &[("account_id", &t), ("email", email)],
        )
        .await;
        answers.push((r.status, r.location));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0].1.as_deref(),
        Some("/app/password-reset?done=sent")
    );
    assert!(b
        .get("/app/password-reset?done=sent")
        .await
        .body
        .contains("a link to set a new password is on its way"));
    assert!(mails_to(&dir, "nobody@acme.test").is_empty());
    let mails = reset_mails();
    assert_eq!(mails.len(), 1);
    let url = link(
        &mails[0],
        &format!("{}/app/password-reset/confirm?token=", h.base),
    );
    let token = token_of(&url);
    let path = &url[h.base.len()..];

    // The link's page; a forged one says it is dead and offers to ask again.
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("for=\"password\"") && page.body.contains("for=\"password2\""));
    let forged = b
        .get(&format!("/app/password-reset/confirm?token=wps1.{t}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.body.contains("id=\"ask-again\""));

    // Refused posts leave the link working and the password as it was.
    let r = b
        .post(
            "/app/password-reset/confirm",
            &[
                ("token", &token),
                ("password", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(
        &mut b,
        "/app/password-reset/confirm",
        &[
            ("token", &token),
            ("password", NEW_PASSWORD),
            ("password2", "something else 123"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get(path).await.status, StatusCode::OK);
    assert_eq!(
        api_sign_in(&h, &t, "ann@acme.test", PASSWORD).await,
        StatusCode::OK
    );

    // Set: every session ends, the user is told, the new password signs in.
    let r = post_form(
        &mut b,
        "/app/password-reset/confirm",
        &[
            ("token", &token),
            ("password", NEW_PASSWORD),
            ("password2", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/app/sign-in?done=password_reset"),
        "{}",
        r.body
    );
    assert!(b
        .get("/app/sign-in?done=password_reset")
        .await
        .body
        .contains("Your new password is set"));
    let r = signed_in.get("/app/channels").await;
    assert_eq!(
        r.location.as_deref(),
        Some("/app/sign-in"),
        "the old session ended"
    );
    let told = mails_to(&dir, "ann@acme.test");
    assert!(told
        .last()
        .unwrap()
        .contains("Your Wappline password was changed"));
    assert_eq!(
        api_sign_in(&h, &t, "ann@acme.test", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_sign_in(&h, &t, "ann@acme.test", NEW_PASSWORD).await,
        StatusCode::OK
    );

    // Used, and expired: the dead-link page, nothing changes.
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let r = post_form(
        &mut b,
        "/app/password-reset/confirm",
        &[
            ("token", &token),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    post_form(
        &mut b,
        "/app/password-reset",
        &[("account_id", &t), ("email", "ann@acme.test")],
    )
    .await;
    let late = link(
        reset_mails().last().unwrap(),
        "/app/password-reset/confirm?token=",
    );
    expire(&h, |sk| sk.starts_with("RESET#")).await;
    assert_eq!(b.get(&late).await.status, StatusCode::BAD_REQUEST);
    let r = post_form(
        &mut b,
        "/app/password-reset/confirm",
        &[
            ("token", &token_of(&late)),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api_sign_in(&h, &t, "ann@acme.test", NEW_PASSWORD).await,
        StatusCode::OK
    );

    // The API's endpoints still work, with the token of the same mail.
    post_form(
        &mut b,
        "/app/password-reset",
        &[("account_id", &t), ("email", "ann@acme.test")],
    )
    .await;
    let api_token = token_of(&link(
        reset_mails().last().unwrap(),
        "/app/password-reset/confirm?token=",
    ));
    let r = h
        .http
        .post(format!("{}/auth/password-reset/confirm", h.base))
        .json(&json!({"token": api_token, "new_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        api_sign_in(&h, &t, "ann@acme.test", PASSWORD).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_signed_in_user_changes_the_password_and_only_the_other_sessions_end() {
    let h = Harness::start(|_| {}).await;
    let dir = h.server.data_dir().to_owned();
    let t = h.create_tenant("Acme").await;
    // A viewer: one's own password needs no permission.
    add_user(&h, &t, "vic@acme.test", "viewer").await;
    let mut here = ConsoleClient::new(&h.base);
    here.sign_in(&t, "vic@acme.test").await;
    let mut elsewhere = ConsoleClient::new(&h.base);
    elsewhere.sign_in(&t, "vic@acme.test").await;
    let changed_mails = || {
        mails_to(&dir, "vic@acme.test")
            .into_iter()
            .filter(|m| m.contains("Your Wappline password was changed"))
            .count()
    };

    let account = here.get("/app/account").await;
    assert!(account.body.contains("href=\"/app/account/password\""));
    let page = here.get("/app/account/password").await;
    assert_eq!(page.status, StatusCode::OK);
    for label in ["for=\"current\"", "for=\"password\"", "for=\"password2\""] {
        assert!(page.body.contains(label), "{label}");
    }

    // Without the token, with a wrong current password, with a mismatch: nothing changes.
    let r = here
        .post(
            "/app/account/password",
            &[
                ("current", PASSWORD),
                ("password", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (current, first, second) in [
        ("not the password", NEW_PASSWORD, NEW_PASSWORD),
        (PASSWORD, NEW_PASSWORD, "differs from it 1234"),
        (PASSWORD, "short", "short"),
    ] {
        let r = here
            .submit(
                "/app/account/password",
                "/app/account/password",
                &[
                    ("current", current),
                    ("password", first),
                    ("password2", second),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{current} {first}");
        assert!(r.body.contains("role=\"alert\""));
    }
    assert_eq!(changed_mails(), 0);
    assert_eq!(elsewhere.get("/app/account").await.status, StatusCode::OK);
    assert_eq!(
        api_sign_in(&h, &t, "vic@acme.test", PASSWORD).await,
        StatusCode::OK
    );

    // Changed: this browser goes on, the other session is out, the user is mailed. The
    // access cookie is gone (as when it ran out), so the request is renewed with the refresh
    // cookie first: the answer must keep the new session, not the renewed old one.
    let csrf = here.get("/app/account/password").await.csrf();
    here.cookies.remove("wappline_session");
    let r = here
        .post(
            "/app/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("password", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/app/account?done=password_changed"),
        "{}",
        r.body
    );
    let account = here.get("/app/account?done=password_changed").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Your password was changed"));
    assert_eq!(
        elsewhere.get("/app/account").await.location.as_deref(),
        Some("/app/sign-in")
    );
    assert_eq!(changed_mails(), 1);
    assert_eq!(
        api_sign_in(&h, &t, "vic@acme.test", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_sign_in(&h, &t, "vic@acme.test", NEW_PASSWORD).await,
        StatusCode::OK
    );
}
