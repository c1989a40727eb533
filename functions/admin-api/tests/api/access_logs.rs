//! What the admin API writes to its log on the access paths: a cross-tenant attempt is
//! logged with the caller's tenant and user (and nothing of the other tenant's), and no
//! password, token or invitation secret ever reaches the log.

use super::common;

use admin_api::AdminApi;
use lambda_http::http::Method;
use lambda_http::{Body, Request};
use wappline::app::Platform;
use wappline::logging::MemoryLog;

const ADMIN: &str = "local-dev-admin-token";
const PW: &str = "correct horse battery staple";

fn request(method: Method, path: &str, token: Option<&str>, body: serde_json::Value) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = if body.is_null() {
        Body::Empty
    } else {
        Body::from(body.to_string())
    };
    b.body(body).unwrap()
}

fn json(resp: &lambda_http::Response<Body>) -> serde_json::Value {
    match resp.body() {
        Body::Empty => serde_json::Value::Null,
        b => serde_json::from_slice(b.as_ref()).unwrap(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn cross_tenant_attempts_are_logged_and_no_secret_is() {
    let captured = MemoryLog::global("debug");

    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let api = AdminApi::new(common::services(&platform, dir.path(), ADMIN));
    let call =
        |m: Method, p: &str, t: Option<&str>, b: serde_json::Value| api.handle(request(m, p, t, b));

    let mut tenants = vec![];
    for name in ["Acme Secret Bakery", "Bravo Garage"] {
        let r = call(
            Method::POST,
            "/admin/tenants",
            Some(ADMIN),
            serde_json::json!({"name": name}),
        )
        .await;
        tenants.push(json(&r)["id"].as_str().unwrap().to_owned());
    }
    let (a, b) = (&tenants[0], &tenants[1]);
    let mut secrets = vec![PW.to_owned()];
    let mut tokens = vec![];
    for (tenant, email) in [(a, "owner@acme.test"), (b, "owner@bravo.test")] {
        let inv = json(
            &call(
                Method::POST,
                &format!("/admin/tenants/{tenant}/invitations"),
                Some(ADMIN),
                serde_json::json!({"email": email, "role": "owner"}),
            )
            .await,
        );
        let token = inv["token"].as_str().unwrap().to_owned();
        let accepted = json(
            &call(
                Method::POST,
                "/auth/invitations/accept",
                None,
                serde_json::json!({"token": token, "password": PW}),
            )
            .await,
        );
        secrets.push(token.rsplit('.').next().unwrap().to_owned());
        let access = accepted["access_token"].as_str().unwrap().to_owned();
        secrets.push(access.clone());
        secrets.push(accepted["refresh_token"].as_str().unwrap().to_owned());
        tokens.push((accepted["user"]["id"].as_str().unwrap().to_owned(), access));
    }
    // A wrong password, and B's owner trying A's settings.
    let r = call(
        Method::POST,
        "/auth/sign-in",
        None,
        serde_json::json!({"account_id": a, "email": "owner@acme.test", "password": "a wrong guess here"}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = call(
        Method::GET,
        &format!("/admin/tenants/{a}"),
        Some(&tokens[1].1),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(r.status(), 404);

    let log = captured.text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cross-tenant request refused") && l.contains(&tokens[1].0))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    // The caller is named (their tenant and user); the other tenant's name is not.
    assert!(
        refused[0].contains(b.as_str()) && refused[0].contains(&tokens[1].0),
        "{}",
        refused[0]
    );
    assert!(!refused[0].contains("Acme Secret Bakery"));
    for secret in secrets
        .iter()
        .chain(["a wrong guess here".to_owned()].iter())
    {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
    assert!(log.contains("sign-in refused"), "{log}");
}
