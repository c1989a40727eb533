//! `PATCH /admin/tenants/{tenant_id}/settings` (retention) and
//! `GET /admin/tenants/{tenant_id}/audit`: validation, the stored value and version, audit
//! entries newest first with paging.

use super::common;

use admin_api::AdminApi;
use lambda_http::http::Method;
use lambda_http::Body;
use serde_json::{json, Value};
use wappline::app::Platform;
use wappline::store::{Key, Table};

const TOKEN: &str = "local-dev-admin-token";

fn request(method: Method, path: &str, body: Option<String>) -> lambda_http::Request {
    let mut req = lambda_http::Request::new(match body {
        Some(b) => Body::from(b),
        None => Body::Empty,
    });
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    req
}

async fn call(api: &AdminApi, method: Method, path: &str, body: Option<String>) -> (u16, Value) {
    let resp = api.handle(request(method, path, body)).await;
    let status = resp.status().as_u16();
    let value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
    (status, value)
}

fn setup(dir: &std::path::Path) -> (Platform, AdminApi) {
    let platform = Platform::embedded(dir).unwrap();
    let api = AdminApi::new(common::services(&platform, dir, TOKEN));
    (platform, api)
}

async fn create(api: &AdminApi) -> String {
    let (s, v) = call(
        api,
        Method::POST,
        "/admin/tenants",
        Some(json!({"name": "Acme", "retention_days": 90}).to_string()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn retention_is_validated_stored_versioned_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, api) = setup(dir.path());
    let tenant = create(&api).await;
    let path = format!("/admin/tenants/{tenant}/settings");

    for bad in [
        json!({"retention_days": 0}).to_string(),
        json!({"retention_days": 4000}).to_string(),
        json!({"retention_days": -5}).to_string(),
        json!({"retention_days": "30"}).to_string(),
        json!({"retention_days": 30.5}).to_string(),
        json!({"retention_days": null}).to_string(),
        json!({"retention_days": 30, "retention": 30}).to_string(),
        json!({"name": "x"}).to_string(),
        json!({}).to_string(),
        "[30]".to_owned(),
        "not json".to_owned(),
    ] {
        let (s, v) = call(&api, Method::PATCH, &path, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} -> {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    }
    let (s, _) = call(&api, Method::PATCH, &path, None).await;
    assert_eq!(s, 400);
    // Nothing changed, nothing audited.
    let (_, settings) = call(&api, Method::GET, &format!("/admin/tenants/{tenant}"), None).await;
    assert_eq!(settings["retention_days"], 90);
    let (s, log) = call(
        &api,
        Method::GET,
        &format!("/admin/tenants/{tenant}/audit"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{log}");
    assert_eq!(log["entries"], json!([]));

    let (s, v) = call(
        &api,
        Method::PATCH,
        &path,
        Some(json!({"retention_days": 30}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["retention_days"], 30);
    assert_eq!(v["retention_version"], 1);
    assert_eq!(v["id"], tenant.as_str());
    assert!(v["channels"].is_array());
    let profile = platform
        .store
        .get(Table::Data, &Key::new(format!("T#{tenant}"), "PROFILE"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.get_n("retention_days"), Some(30));
    assert_eq!(profile.get_n("retention_version"), Some(1));

    // The same value again: 200, no new version, no new entry.
    let (s, v) = call(
        &api,
        Method::PATCH,
        &path,
        Some(json!({"retention_days": 30}).to_string()),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["retention_version"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let (s, v) = call(
        &api,
        Method::PATCH,
        &path,
        Some(json!({"retention_days": 3650}).to_string()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["retention_version"], 2);

    // The audit log: newest first, paged with `before`.
    let audit = format!("/admin/tenants/{tenant}/audit");
    let (s, page) = call(&api, Method::GET, &format!("{audit}?limit=1"), None).await;
    assert_eq!(s, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["action"], "settings_changed");
    assert_eq!(entries[0]["actor"], "platform_admin");
    assert_eq!(entries[0]["details"]["setting"], "retention_days");
    assert_eq!(entries[0]["details"]["from"], "30");
    assert_eq!(entries[0]["details"]["to"], "3650");
    let next = page["next"].as_str().unwrap().to_owned();
    assert!(!next.contains('#'));
    let (s, older) = call(
        &api,
        Method::GET,
        &format!("{audit}?limit=10&before={next}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{older}");
    let entries = older["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["details"]["from"], "90");
    assert_eq!(entries[0]["details"]["to"], "30");
    assert!(older.get("next").is_none(), "{older}");
    // The same cursor with `#` percent-encoded works too.
    let encoded = next.replace('.', "%23");
    let (s, same) = call(
        &api,
        Method::GET,
        &format!("{audit}?before={encoded}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(same["entries"], older["entries"]);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "before=123",
        "before=abc.def",
    ] {
        let (s, v) = call(&api, Method::GET, &format!("{audit}?{bad}"), None).await;
        assert_eq!(s, 400, "{bad} -> {v}");
    }
}

#[tokio::test]
async fn unknown_tenants_and_methods() {
    let dir = tempfile::tempdir().unwrap();
    let (_platform, api) = setup(dir.path());
    let tenant = create(&api).await;
    let missing = "tn_000000000000000000000000";
    let body = Some(json!({"retention_days": 30}).to_string());
    let (s, _) = call(
        &api,
        Method::PATCH,
        &format!("/admin/tenants/{missing}/settings"),
        body.clone(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &api,
        Method::GET,
        &format!("/admin/tenants/{missing}/audit"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &api,
        Method::PATCH,
        "/admin/tenants/nope/settings",
        body.clone(),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &api,
        Method::GET,
        &format!("/admin/tenants/{tenant}/settings"),
        None,
    )
    .await;
    assert_eq!(s, 405);
    let (s, _) = call(
        &api,
        Method::POST,
        &format!("/admin/tenants/{tenant}/audit"),
        None,
    )
    .await;
    assert_eq!(s, 405);
    // Unauthenticated: 401.
    let mut req = request(Method::GET, &format!("/admin/tenants/{tenant}/audit"), None);
    req.headers_mut().remove("authorization");
    assert_eq!(api.handle(req).await.status().as_u16(), 401);
}
