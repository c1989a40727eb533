//! How the route table answers what is not a plain call of an endpoint: unknown paths (404,
//! after authentication except under `/auth/`), unknown paths under a resource (its rule
//! first), wrong methods (405, after the tenant on the routes that read it first), empty
//! path segments and trailing slashes.

use super::common;

use admin_api::AdminApi;
use lambda_http::http::Method;
use lambda_http::Body;
use serde_json::{json, Value};
use wappline::app::Platform;

const ADMIN: &str = "local-dev-admin-token";
const MISSING: &str = "tn_000000000000000000000000";

async fn call(api: &AdminApi, m: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    call_with(api, m, path, token, Value::Null).await
}

async fn call_with(
    api: &AdminApi,
    m: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut b = lambda_http::http::Request::builder().method(m).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = if body.is_null() {
        Body::Empty
    } else {
        Body::from(body.to_string())
    };
    let resp = api.handle(b.body(body).unwrap()).await;
    let value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
    (resp.status().as_u16(), value)
}

/// The status, error code and message of an answer.
fn said(answer: &(u16, Value)) -> (u16, &str, &str) {
    let error = &answer.1["error"];
    (
        answer.0,
        error["code"].as_str().unwrap_or_default(),
        error["message"].as_str().unwrap_or_default(),
    )
}

async fn tenant(api: &AdminApi, name: &str) -> String {
    let (s, v) = call_with(
        api,
        Method::POST,
        "/admin/tenants",
        Some(ADMIN),
        json!({ "name": name }),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// A signed-in user of `tenant` with `role`: their access token.
async fn user(api: &AdminApi, tenant: &str, role: &str) -> String {
    let (s, inv) = call_with(
        api,
        Method::POST,
        &format!("/admin/tenants/{tenant}/invitations"),
        Some(ADMIN),
        json!({ "email": format!("{role}@example.test"), "role": role }),
    )
    .await;
    assert_eq!(s, 201, "{inv}");
    let (s, signed) = call_with(
        api,
        Method::POST,
        "/auth/invitations/accept",
        None,
        json!({ "token": inv["token"], "password": "correct horse battery staple" }),
    )
    .await;
    assert_eq!(s, 201, "{signed}");
    signed["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn unknown_paths_methods_and_odd_segments() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let api = AdminApi::new(common::services(&platform, dir.path(), ADMIN));
    let t = tenant(&api, "Acme").await;
    let other = tenant(&api, "Bravo").await;
    let viewer = user(&api, &t, "viewer").await;

    const NO_ROUTE: (u16, &str, &str) = (404, "not_found", "no such route");
    const NO_TENANT: (u16, &str, &str) = (404, "not_found", "tenant not found");

    // Unknown paths: 404 after authentication, except under /auth/ (public).
    for path in [
        "/nope",
        "/admin",
        "/admin/tenants/x/y/z",
        "/exports/download/x",
    ] {
        let r = call(&api, Method::GET, path, None).await;
        assert_eq!(r.0, 401, "{path}");
        let r = call(&api, Method::GET, path, Some(ADMIN)).await;
        assert_eq!(said(&r), NO_ROUTE, "{path}");
    }
    for path in ["/auth/nope", "/auth/", "/auth//me", "/auth/me/x"] {
        let r = call(&api, Method::GET, path, None).await;
        assert_eq!(said(&r), NO_ROUTE, "{path}");
    }
    let r = call(&api, Method::DELETE, "/auth/me", None).await;
    assert_eq!(r.0, 405);
    let r = call(&api, Method::GET, "/auth/me/", None).await;
    assert_eq!(r.0, 401, "a trailing slash is the same route");

    // Wrong methods: 405; the routes that read the tenant first say 404 for a missing one.
    let r = call(
        &api,
        Method::GET,
        &format!("/admin/tenants/{MISSING}/settings"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(r.0, 405);
    for path in [
        "plan",
        "suspension",
        "exports",
        "users/usr_00000000000000000000",
    ] {
        let path = format!("/admin/tenants/{MISSING}/{path}");
        let r = call(&api, Method::HEAD, &path, Some(ADMIN)).await;
        assert_eq!(said(&r), NO_TENANT, "{path}");
        let r = call(&api, Method::HEAD, &path.replace(MISSING, &t), Some(ADMIN)).await;
        assert_eq!(r.0, 405, "{path}");
    }
    // The account erasure only parses the tenant id first (the tenant may be gone).
    let r = call(
        &api,
        Method::PUT,
        "/admin/tenants/nope/erasure",
        Some(ADMIN),
    )
    .await;
    assert_eq!(r.0, 400);
    let r = call(
        &api,
        Method::PUT,
        &format!("/admin/tenants/{MISSING}/erasure"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(r.0, 405);

    // Unknown paths under a resource are checked with its rule, then 404.
    for path in [
        "exports/ex_0/links/x",
        "exports/ex_0/other",
        "channels",
        "channels/whatsapp/1/x",
    ] {
        let own = format!("/admin/tenants/{t}/{path}");
        let r = call(&api, Method::GET, &own, Some(&viewer)).await;
        assert_eq!(r.0, 403, "{own}: {}", r.1);
        let r = call(&api, Method::GET, &own, Some(ADMIN)).await;
        assert_eq!(said(&r), NO_ROUTE, "{own}");
        let foreign = format!("/admin/tenants/{other}/{path}");
        let r = call(&api, Method::GET, &foreign, Some(&viewer)).await;
        assert_eq!(said(&r), NO_TENANT, "{foreign}");
    }
    // Elsewhere an unknown path is just not there.
    for path in ["settings/x", "erasure/x", "bitrix24", "nope"] {
        let own = format!("/admin/tenants/{t}/{path}");
        let r = call(&api, Method::GET, &own, Some(&viewer)).await;
        assert_eq!(said(&r), NO_ROUTE, "{own}");
    }

    // Trailing slashes are ignored; an empty segment is an empty value.
    let r = call(
        &api,
        Method::GET,
        &format!("/admin/tenants/{t}//"),
        Some(&viewer),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(&api, Method::GET, "/admin/tenants//", Some(ADMIN)).await;
    assert_eq!(r.0, 200, "{}", r.1);
    let r = call(&api, Method::PATCH, "/admin/tenants//settings", Some(ADMIN)).await;
    assert_eq!(
        (r.0, r.1["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let r = call(
        &api,
        Method::PATCH,
        "/admin/tenants//settings",
        Some(&viewer),
    )
    .await;
    assert_eq!(said(&r), NO_TENANT);
    let path = format!("/admin/tenants/{t}/channels//999000999");
    let r = call(&api, Method::DELETE, &path, Some(ADMIN)).await;
    assert_eq!(
        said(&r),
        (
            404,
            "not_found",
            "unknown channel kind: use whatsapp, instagram or bitrix24"
        )
    );
}
