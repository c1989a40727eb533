//! `POST /admin/tenants/{tenant_id}/bitrix24/connection-codes`: a code shown once, stored
//! only as a hash, valid for the tenant and line it was issued for.

use super::common;

use admin_api::AdminApi;
use lambda_http::http::Method;
use lambda_http::Body;
use serde_json::{json, Value};
use wappline::app::Platform;
use wappline::store::{AttrValue, Table};

const TOKEN: &str = "local-dev-admin-token";

fn request(
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> lambda_http::Request {
    let mut req = lambda_http::Request::new(match body {
        Some(b) => Body::from(b.to_string()),
        None => Body::Empty,
    });
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

fn body_json(resp: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn connection_codes_are_issued_once_and_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let services = common::services(&platform, dir.path(), TOKEN);
    let codes = services.bitrix_codes.0.clone();
    let api = AdminApi::new(services);
    let created = api
        .handle(request(
            Method::POST,
            "/admin/tenants",
            Some(json!({"name": "Acme"})),
            Some(TOKEN),
        ))
        .await;
    let tenant = body_json(&created)["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/tenants/{tenant}/bitrix24/connection-codes");

    let resp = api
        .handle(request(
            Method::POST,
            &path,
            Some(json!({"line_id": 7})),
            Some(TOKEN),
        ))
        .await;
    assert_eq!(resp.status(), 201, "{}", body_json(&resp));
    let issued = body_json(&resp);
    let code = issued["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("wlb24_") && code.len() == 46, "{code}");
    assert_eq!(issued["line_id"], 7);
    assert_eq!(issued["tenant_id"], tenant.as_str());
    assert_eq!(
        issued["install_url"],
        format!("https://wappline.example/bitrix/install?code={code}")
    );
    let now = wappline::clock::now_secs();
    let expires = issued["expires_at"].as_i64().unwrap();
    assert!(
        (now + 86_300..=now + 86_400).contains(&expires),
        "{expires}"
    );

    // The code is valid for this tenant and line; only its hash is stored.
    let pending = codes.peek(&code).await.unwrap().unwrap();
    assert_eq!(pending.tenant.as_str(), tenant);
    assert_eq!(pending.line.get(), 7);
    let routes = platform
        .store
        .scan(Table::Routes, None, 1000)
        .await
        .unwrap();
    for item in &routes.items {
        for value in item.0.values() {
            if let AttrValue::S(s) = value {
                assert!(!s.contains(&code[6..]), "code stored in plaintext");
            }
        }
    }
    // Two codes differ.
    let second = api
        .handle(request(
            Method::POST,
            &path,
            Some(json!({"line_id": 7})),
            Some(TOKEN),
        ))
        .await;
    assert_ne!(body_json(&second)["code"], issued["code"]);

    // Refusals.
    for (body, status) in [
        (json!({"line_id": 0}), 400),
        (json!({"line_id": "7"}), 400),
        (json!({"line": 7}), 400),
        (json!({}), 400),
    ] {
        let resp = api
            .handle(request(
                Method::POST,
                &path,
                Some(body.clone()),
                Some(TOKEN),
            ))
            .await;
        assert_eq!(resp.status(), status, "{body}");
    }
    let resp = api
        .handle(request(
            Method::POST,
            &path,
            Some(json!({"line_id": 7})),
            None,
        ))
        .await;
    assert_eq!(resp.status(), 401);
    let resp = api
        .handle(request(
            Method::POST,
            "/admin/tenants/tn_0123456789abcdef01234567/bitrix24/connection-codes",
            Some(json!({"line_id": 7})),
            Some(TOKEN),
        ))
        .await;
    assert_eq!(resp.status(), 404);
    let resp = api
        .handle(request(Method::GET, &path, None, Some(TOKEN)))
        .await;
    assert_eq!(resp.status(), 405);
}
