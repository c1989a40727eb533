//! Invitations by email, sign-in, sessions and their revocation, throttling, forged tokens.

use super::*;

#[tokio::test]
async fn invitation_email_sign_in_sessions_and_revocation() {
    let h = Harness::start(|_| {}).await;
    let t = h.create_tenant("Acme").await;
    let inv = h
        .admin(
            "POST",
            &format!("/admin/tenants/{t}/invitations"),
            json!({"email": "Alice@Acme.test", "role": "admin"}),
        )
        .await;
    assert_eq!(inv["emailed"], true);
    assert_eq!(inv["email"], "alice@acme.test");
    // The invitation went out by email (the local outbox) with its token.
    let mails = e2e_tests::outbox::mails_to(h.server.data_dir(), "alice@acme.test");
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains(inv["token"].as_str().unwrap()));

    // A weak password is refused and the invitation is still usable.
    let weak = call(
        &h,
        None,
        "POST",
        "/auth/invitations/accept",
        Some(&json!({"token": inv["token"], "password": "short"})),
    )
    .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at least 12"));
    let accepted = call(
        &h,
        None,
        "POST",
        "/auth/invitations/accept",
        Some(&json!({"token": inv["token"], "password": PW})),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::CREATED);
    let again = call(
        &h,
        None,
        "POST",
        "/auth/invitations/accept",
        Some(&json!({"token": inv["token"], "password": PW})),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // Sign in: tokens in the body, the refresh token also in a locked-down cookie.
    let signed = sign_in(&h, &t, "alice@acme.test", PW).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    let cookie = signed.headers[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attr in [
        "__Host-wappline_refresh=",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert_eq!(signed.body["expires_in"], 900);
    let access = signed.body["access_token"].as_str().unwrap().to_owned();
    let refresh = signed.body["refresh_token"].as_str().unwrap().to_owned();
    let me = call(&h, Some(&access), "GET", "/auth/me", None).await;
    assert_eq!(me.body["user"]["role"], "admin");
    assert!(me.body["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("manage_users")));
    assert!(!me.body["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("erase_account")));
    assert!(!signed.text.contains("password_hash"));

    // Refresh with the cookie only; the old refresh token is then dead.
    let refreshed = h
        .http
        .post(format!("{}/auth/refresh", h.base))
        .header("cookie", format!("__Host-wappline_refresh={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let replay = call(
        &h,
        None,
        "POST",
        "/auth/refresh",
        Some(&json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    // Replaying a rotated token ended that session: its newest access token is dead too.
    let r = call(
        &h,
        Some(&access2),
        "GET",
        &format!("/admin/tenants/{t}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Sign-out ends the session at once.
    let s = sign_in(&h, &t, "alice@acme.test", PW).await;
    let token = s.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &h,
            Some(&token),
            "GET",
            &format!("/admin/tenants/{t}"),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let out = call(&h, Some(&token), "POST", "/auth/sign-out", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.headers[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        call(
            &h,
            Some(&token),
            "GET",
            &format!("/admin/tenants/{t}"),
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    // A password change ends every session, including the one that made it.
    let s1 = sign_in(&h, &t, "alice@acme.test", PW).await;
    let s2 = sign_in(&h, &t, "alice@acme.test", PW).await;
    let t1 = s1.body["access_token"].as_str().unwrap().to_owned();
    let t2 = s2.body["access_token"].as_str().unwrap().to_owned();
    let changed = call(
        &h,
        Some(&t1),
        "PUT",
        "/auth/password",
        Some(&json!({"current_password": PW, "new_password": "another long passphrase"})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    for tok in [&t1, &t2] {
        assert_eq!(
            call(&h, Some(tok), "GET", &format!("/admin/tenants/{t}"), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = call(
        &h,
        None,
        "POST",
        "/auth/refresh",
        Some(&json!({"refresh_token": s2.body["refresh_token"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = sign_in(&h, &t, "alice@acme.test", "another long passphrase").await;
    assert_eq!(r.status, StatusCode::OK);

    let alice = r;
    // A pending invitation is listed (never its token) and can be withdrawn; its token is
    // then dead. Another tenant's admin cannot see or withdraw it.
    let pending = h
        .admin(
            "POST",
            &format!("/admin/tenants/{t}/invitations"),
            json!({"email": "bob@acme.test", "role": "viewer"}),
        )
        .await;
    let listed = h
        .admin_get(&format!("/admin/tenants/{t}/invitations"))
        .await;
    assert_eq!(
        listed["invitations"][0]["email"], "bob@acme.test",
        "{listed}"
    );
    assert_eq!(listed["invitations"][0]["id"], pending["id"]);
    assert!(!listed
        .to_string()
        .contains(pending["token"].as_str().unwrap()));
    let other = h.create_tenant("Other").await;
    let (other_owner, _) = user(&h, &other, "owner@other.test", "owner").await;
    let id = pending["id"].as_str().unwrap();
    for path in [
        format!("/admin/tenants/{t}/invitations/{id}"),
        format!("/admin/tenants/{other}/invitations/{id}"),
    ] {
        let r = call(&h, Some(&other_owner), "DELETE", &path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let r = call(
        &h,
        Some(&other_owner),
        "GET",
        &format!("/admin/tenants/{other}/invitations"),
        None,
    )
    .await;
    assert!(!r.text.contains("bob@acme.test"));
    let r = call(
        &h,
        Some(ADMIN),
        "DELETE",
        &format!("/admin/tenants/{t}/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &h,
        None,
        "POST",
        "/auth/invitations/accept",
        Some(&json!({"token": pending["token"], "password": PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &h,
        Some(ADMIN),
        "DELETE",
        &format!("/admin/tenants/{t}/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Removing a user ends their access.
    let uid = alice.body["user"]["id"].as_str().unwrap().to_owned();
    let tok = alice.body["access_token"].as_str().unwrap().to_owned();
    h.admin_get(&format!("/admin/tenants/{t}/users")).await;
    let del = call(
        &h,
        Some(ADMIN),
        "DELETE",
        &format!("/admin/tenants/{t}/users/{uid}"),
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    assert_eq!(
        call(&h, Some(&tok), "GET", &format!("/admin/tenants/{t}"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // And the audit log names who did what, never a secret.
    let audit = h.admin_get(&format!("/admin/tenants/{t}/audit")).await;
    let text = audit.to_string();
    assert!(
        text.contains("user_invited")
            && text.contains("user_removed")
            && text.contains("invitation_withdrawn"),
        "{text}"
    );
    assert!(!text.contains(PW));
}

#[tokio::test]
async fn sign_in_failures_look_alike_and_are_throttled() {
    let h = Harness::start(|_| {}).await;
    let t = h.create_tenant("Acme").await;
    user(&h, &t, "alice@acme.test", "agent").await;
    let attempt = |email: &'static str, password: &'static str| {
        let t = t.clone();
        let h = &h;
        async move { sign_in(h, &t, email, password).await }
    };
    let wrong = attempt("alice@acme.test", "not the password").await;
    let unknown = attempt("nobody@acme.test", PW).await;
    let other_account = sign_in(&h, "tn_ffffffffffffffffffffffff", "alice@acme.test", PW).await;
    for r in [&wrong, &unknown, &other_account] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.text, wrong.text, "every failure reads the same");
    }
    // Four more failures for alice (five in all), then even the right password is refused
    // with 429 and Retry-After.
    for _ in 0..4 {
        assert_eq!(
            attempt("alice@acme.test", "not the password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = attempt("alice@acme.test", PW).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text
    );
    assert_eq!(locked.body["error"]["code"], "too_many_attempts");
    let wait: i64 = locked.headers[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait));
    // Malformed input is a 400 that says what is wrong, not a failed attempt.
    let bad = sign_in(&h, &t, "not-an-email", "x").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("email"));
    let extra = call(
        &h,
        None,
        "POST",
        "/auth/sign-in",
        Some(
            &json!({"account_id": t, "email": "a@acme.test", "password": "x", "tenant_id": "tn_x"}),
        ),
    )
    .await;
    assert_eq!(extra.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_forged_or_foreign_token_is_refused() {
    let h = Harness::start(|_| {}).await;
    let t = h.create_tenant("Acme").await;
    let (token, _) = user(&h, &t, "owner@acme.test", "owner").await;
    // Claims edited to another tenant, signature kept.
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
    let other = h.create_tenant("Other").await;
    let forged_claims = claims.replace(&t, &other);
    let forged = format!("{head}.{}.{sig}", engine.encode(forged_claims));
    for bad in [forged.as_str(), "wpa1.e30.AAAA", "garbage"] {
        let r = call(
            &h,
            Some(bad),
            "GET",
            &format!("/admin/tenants/{other}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    // A user token never reaches the platform routes.
    let r = call(
        &h,
        Some(&token),
        "POST",
        "/admin/tenants",
        Some(&json!({"name": "Mine"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
