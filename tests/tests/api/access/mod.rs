//! Accounts and access end to end on the local server: invitations by email, sign-in,
//! sessions and their revocation, throttling, the role permission matrix on every admin
//! endpoint, and cross-tenant requests (404, nothing leaked, nothing changed).

mod sign_in;

use e2e_tests::harness::{Harness, ADMIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PW: &str = "correct horse battery";

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

async fn call(
    h: &Harness,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let mut req = h
        .http
        .request(method.parse().unwrap(), format!("{}{path}", h.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

async fn sign_in(h: &Harness, account: &str, email: &str, password: &str) -> Reply {
    call(
        h,
        None,
        "POST",
        "/auth/sign-in",
        Some(&json!({"account_id": account, "email": email, "password": password})),
    )
    .await
}

/// Invites `email` with `role` as the platform admin and accepts; the user's access token.
async fn user(h: &Harness, tenant: &str, email: &str, role: &str) -> (String, Value) {
    let inv = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/invitations"),
            json!({"email": email, "role": role}),
        )
        .await;
    let r = call(
        h,
        None,
        "POST",
        "/auth/invitations/accept",
        Some(&json!({"token": inv["token"], "password": PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (r.body["access_token"].as_str().unwrap().to_owned(), r.body)
}

/// Every admin endpoint, with a body that is harmless to whoever is allowed (invalid, or
/// naming ids that do not exist), so the matrix tests the gate without changing anything.
fn endpoints(t: &str) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    // The last column is who may call it: O owner, A admin, G agent, V viewer; "" = the
    // platform admin only. This is the documented matrix (docs/access.md), written out.
    let bad = Some(json!(["not an object"]));
    vec![
        ("GET", "/admin/tenants".into(), None, ""),
        ("POST", "/admin/tenants".into(), bad.clone(), ""),
        ("GET", format!("/admin/tenants/{t}"), None, "OAGV"),
        (
            "PATCH",
            format!("/admin/tenants/{t}/settings"),
            bad.clone(),
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/exports"),
            bad.clone(),
            "OA",
        ),
        ("GET", format!("/admin/tenants/{t}/exports"), None, "OA"),
        (
            "GET",
            format!("/admin/tenants/{t}/exports/ex_0000000000000000"),
            None,
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/exports/ex_0000000000000000/links"),
            bad.clone(),
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/erasure/contacts"),
            bad.clone(),
            "OA",
        ),
        (
            "GET",
            format!("/admin/tenants/{t}/erasure/contacts/er_0000000000000000"),
            None,
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/erasure"),
            bad.clone(),
            "O",
        ),
        ("GET", format!("/admin/tenants/{t}/erasure"), None, "O"),
        ("DELETE", format!("/admin/tenants/{t}/erasure"), None, "O"),
        ("GET", format!("/admin/tenants/{t}/audit"), None, "OA"),
        (
            "POST",
            format!("/admin/tenants/{t}/channels/whatsapp"),
            bad.clone(),
            "OA",
        ),
        (
            "DELETE",
            format!("/admin/tenants/{t}/channels/whatsapp/999000999"),
            None,
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/bitrix24/connection-codes"),
            bad.clone(),
            "OA",
        ),
        ("GET", format!("/admin/tenants/{t}/onboarding"), None, "OA"),
        (
            "POST",
            format!("/admin/tenants/{t}/onboarding/whatsapp"),
            bad.clone(),
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/onboarding/instagram/authorize"),
            bad.clone(),
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/onboarding/instagram/complete"),
            bad.clone(),
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/api-keys"),
            bad.clone(),
            "OA",
        ),
        ("GET", format!("/admin/tenants/{t}/api-keys"), None, "OA"),
        (
            "DELETE",
            format!("/admin/tenants/{t}/api-keys/0000000000000000"),
            None,
            "OA",
        ),
        ("GET", format!("/admin/tenants/{t}/users"), None, "OA"),
        ("GET", format!("/admin/tenants/{t}/invitations"), None, "OA"),
        (
            "DELETE",
            format!("/admin/tenants/{t}/invitations/0000000000000000"),
            None,
            "OA",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/invitations"),
            bad.clone(),
            "OA",
        ),
        (
            "PATCH",
            format!("/admin/tenants/{t}/users/usr_00000000000000000000"),
            bad.clone(),
            "OA",
        ),
        (
            "DELETE",
            format!("/admin/tenants/{t}/users/usr_00000000000000000000"),
            None,
            "OA",
        ),
        ("GET", format!("/admin/tenants/{t}/usage"), None, "OAV"),
        ("PUT", format!("/admin/tenants/{t}/plan"), bad.clone(), ""),
        ("POST", format!("/admin/tenants/{t}/suspension"), bad, ""),
        ("DELETE", format!("/admin/tenants/{t}/plan"), None, ""),
    ]
}

/// The request got past authentication and authorisation to an endpoint that exists and
/// is configured (its answer may still be a 400 or 404 for the harmless body).
fn reached(r: &Reply) -> bool {
    !matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && r.body["error"]["message"] != "tenant not found"
        && r.body["error"]["message"] != "no such route"
        && r.body["error"]["code"] != "not_configured"
        && r.status != StatusCode::METHOD_NOT_ALLOWED
}

#[tokio::test]
async fn every_role_against_every_admin_endpoint() {
    // Instagram Login configured, so its authorize route answers (decision 0040).
    let h = Harness::start(|c| {
        c.instagram_app_id = Some(e2e_tests::fake_graph::FAKE_IG_APP_ID.into());
        c.instagram_app_secret = Some(e2e_tests::fake_graph::FAKE_IG_APP_SECRET.into());
    })
    .await;
    let t = h.create_tenant("Acme").await;
    let mut tokens = vec![];
    for (code, role) in [
        ('O', "owner"),
        ('A', "admin"),
        ('G', "agent"),
        ('V', "viewer"),
    ] {
        let (token, _) = user(&h, &t, &format!("{role}@acme.test"), role).await;
        tokens.push((code, role, token));
    }
    let mut wrong = vec![];
    for (method, path, body, allowed) in endpoints(&t) {
        for (code, role, token) in &tokens {
            let r = call(&h, Some(token), method, &path, body.as_ref()).await;
            let may = allowed.contains(*code);
            let ok = if may {
                reached(&r)
            } else {
                r.status == StatusCode::FORBIDDEN && r.body["error"]["code"] == "forbidden"
            };
            if !ok {
                wrong.push(format!("{role} {method} {path}: {} {}", r.status, r.text));
            }
        }
        // The platform admin may call everything.
        let r = call(&h, Some(ADMIN), method, &path, body.as_ref()).await;
        if !reached(&r) {
            wrong.push(format!("platform {method} {path}: {} {}", r.status, r.text));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Nothing the matrix sent changed the tenant: still active, four users, no keys.
    let settings = h.admin_get(&format!("/admin/tenants/{t}")).await;
    assert_eq!(settings["status"], "active");
    let users = h.admin_get(&format!("/admin/tenants/{t}/users")).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn another_tenants_credentials_get_404_everywhere_and_change_nothing() {
    let h = Harness::start(|_| {}).await;
    let a = h.tenant_with_channels().await;
    let (a_owner, a_signed) = user(&h, &a, "owner@acme.test", "owner").await;
    let key = h
        .admin(
            "POST",
            &format!("/admin/tenants/{a}/api-keys"),
            json!({"name": "crm"}),
        )
        .await;
    let before_settings = h.admin_get(&format!("/admin/tenants/{a}")).await;
    let before_keys = h.admin_get(&format!("/admin/tenants/{a}/api-keys")).await;
    let before_users = h.admin_get(&format!("/admin/tenants/{a}/users")).await;

    let b = h.create_tenant("Bravo").await;
    let (b_owner, _) = user(&h, &b, "owner@bravo.test", "owner").await;

    // Every endpoint naming tenant A, with B's owner token and real-looking bodies.
    let a_user = a_signed["user"]["id"].as_str().unwrap();
    let a_key = key["id"].as_str().unwrap();
    let mut attempts: Vec<(&str, String, Option<Value>)> = endpoints(&a)
        .into_iter()
        .filter(|(_, path, _, _)| path.starts_with(&format!("/admin/tenants/{a}")))
        .map(|(m, p, b, _)| (m, p, b))
        .collect();
    attempts.extend([
        (
            "PATCH",
            format!("/admin/tenants/{a}/settings"),
            Some(json!({"retention_days": 1})),
        ),
        (
            "POST",
            format!("/admin/tenants/{a}/api-keys"),
            Some(json!({"name": "steal"})),
        ),
        (
            "DELETE",
            format!("/admin/tenants/{a}/api-keys/{a_key}"),
            None,
        ),
        ("DELETE", format!("/admin/tenants/{a}/users/{a_user}"), None),
        (
            "PATCH",
            format!("/admin/tenants/{a}/users/{a_user}"),
            Some(json!({"role": "viewer"})),
        ),
        (
            "POST",
            format!("/admin/tenants/{a}/invitations"),
            Some(json!({"email": "spy@bravo.test", "role": "owner"})),
        ),
        (
            "POST",
            format!("/admin/tenants/{a}/erasure"),
            Some(json!({})),
        ),
        (
            "DELETE",
            format!("/admin/tenants/{a}/channels/whatsapp/106540352242922"),
            None,
        ),
        (
            "POST",
            format!("/admin/tenants/{a}/suspension"),
            Some(json!({"reason": "x"})),
        ),
    ]);
    // A's resources named under B's own path are not found either.
    attempts.extend([
        (
            "DELETE",
            format!("/admin/tenants/{b}/api-keys/{a_key}"),
            None,
        ),
        ("DELETE", format!("/admin/tenants/{b}/users/{a_user}"), None),
        (
            "PATCH",
            format!("/admin/tenants/{b}/users/{a_user}"),
            Some(json!({"role": "viewer"})),
        ),
        (
            "DELETE",
            format!("/admin/tenants/{b}/channels/whatsapp/106540352242922"),
            None,
        ),
    ]);
    for (method, path, body) in &attempts {
        let r = call(&h, Some(&b_owner), method, path, body.as_ref()).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
        for secret in [
            a.as_str(),
            "Acme",
            "owner@acme.test",
            a_user,
            a_key,
            "106540352242922",
        ] {
            if path.contains(secret) {
                continue; // echoing the caller's own path back would tell them nothing
            }
            assert!(
                !r.text.contains(secret),
                "{method} {path} leaked {secret}: {}",
                r.text
            );
        }
    }
    // A is exactly as it was, and A's owner and key still work.
    assert_eq!(
        h.admin_get(&format!("/admin/tenants/{a}")).await,
        before_settings
    );
    assert_eq!(
        h.admin_get(&format!("/admin/tenants/{a}/api-keys")).await,
        before_keys
    );
    assert_eq!(
        h.admin_get(&format!("/admin/tenants/{a}/users")).await,
        before_users
    );
    let r = call(
        &h,
        Some(&a_owner),
        "GET",
        &format!("/admin/tenants/{a}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn the_platform_admin_suspends_and_resumes_and_sets_plans_users_read_usage() {
    let h = Harness::start(|_| {}).await;
    let t = h.tenant_with_channels().await;
    let (owner, _) = user(&h, &t, "owner@acme.test", "owner").await;
    let (viewer, _) = user(&h, &t, "viewer@acme.test", "viewer").await;

    // Plans are the platform's; both fields are required (null: unlimited).
    let r = call(
        &h,
        Some(ADMIN),
        "PUT",
        &format!("/admin/tenants/{t}/plan"),
        Some(&json!({"monthly_outbound": 5})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("monthly_inbound"), "{}", r.text);
    let r = call(
        &h,
        Some(ADMIN),
        "PUT",
        &format!("/admin/tenants/{t}/plan"),
        Some(&json!({"monthly_outbound": 5, "monthly_inbound": null})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &h,
        Some(&owner),
        "PUT",
        &format!("/admin/tenants/{t}/plan"),
        Some(&json!({"monthly_outbound": 500, "monthly_inbound": null})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A viewer reads the month so far with the plan's quota.
    let usage = call(
        &h,
        Some(&viewer),
        "GET",
        &format!("/admin/tenants/{t}/usage"),
        None,
    )
    .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
    assert_eq!(usage.body["plan"]["monthly_outbound"], 5);
    assert_eq!(usage.body["outbound"]["total"], 0);
    assert_eq!(usage.body["outbound_remaining"], 5);
    let bad = call(
        &h,
        Some(&viewer),
        "GET",
        &format!("/admin/tenants/{t}/usage?month=2026-13"),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Suspension: the tenant's users are refused, sign-in too, and its API keys.
    let key = h
        .admin(
            "POST",
            &format!("/admin/tenants/{t}/api-keys"),
            json!({"name": "crm"}),
        )
        .await;
    let r = call(
        &h,
        Some(&owner),
        "POST",
        &format!("/admin/tenants/{t}/suspension"),
        Some(&json!({"reason": "unpaid"})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "only the platform suspends"
    );
    let r = call(
        &h,
        Some(ADMIN),
        "POST",
        &format!("/admin/tenants/{t}/suspension"),
        Some(&json!({"reason": "unpaid invoice"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "suspended");
    let r = call(
        &h,
        Some(&owner),
        "GET",
        &format!("/admin/tenants/{t}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"]["code"], "tenant_suspended");
    let r = sign_in(&h, &t, "owner@acme.test", PW).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"]["code"], "tenant_suspended");
    let send = h
        .http
        .post(format!("{}/v1/messages", h.base))
        .bearer_auth(key["key"].as_str().unwrap())
        .json(&json!({"channel": "whatsapp", "account_id": e2e_tests::harness::WA_NUMBER, "to": "15551234567", "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), StatusCode::FORBIDDEN);
    // The platform admin still sees it; resuming restores access.
    let r = call(
        &h,
        Some(ADMIN),
        "DELETE",
        &format!("/admin/tenants/{t}/suspension"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["profile"]["status"], "active");
    let r = call(
        &h,
        Some(&owner),
        "GET",
        &format!("/admin/tenants/{t}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let audit = h
        .admin_get(&format!("/admin/tenants/{t}/audit"))
        .await
        .to_string();
    for action in ["plan_changed", "tenant_suspended", "tenant_resumed"] {
        assert!(audit.contains(action), "{action} not in {audit}");
    }
}
