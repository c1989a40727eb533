//! The sample API Gateway events in events/admin-api/ go through lambda_http's own event
//! parsing into the handler, as in Lambda, and do what their names say.

use super::common;

use admin_api::AdminApi;
use lambda_http::Body;
use wappline::app::Platform;

const SAMPLE_TENANT: &str = "tn_0123456789abcdef01234567";

fn event(name: &str, tenant: &str) -> lambda_http::Request {
    let path = format!(
        "{}/../../events/admin-api/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(SAMPLE_TENANT, tenant);
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn body_json(body: &Body) -> serde_json::Value {
    match body {
        Body::Empty => serde_json::Value::Null,
        other => serde_json::from_slice(other.as_ref()).unwrap(),
    }
}

#[tokio::test]
async fn sample_events_run_through_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let api = AdminApi::new(common::services(
        &platform,
        dir.path(),
        "local-dev-admin-token",
    ));

    let created = api.handle(event("create-tenant.json", SAMPLE_TENANT)).await;
    assert_eq!(created.status(), 201);
    let tenant = body_json(created.body())["id"].as_str().unwrap().to_owned();
    assert_eq!(body_json(created.body())["retention_days"], 30);

    let steps = [
        ("list-tenants.json", 200),
        ("get-tenant.json", 200),
        ("connect-whatsapp.json", 201),
        ("disconnect-whatsapp.json", 204),
        ("disconnect-whatsapp.json", 404),
    ];
    for (name, status) in steps {
        let resp = api.handle(event(name, &tenant)).await;
        assert_eq!(
            resp.status(),
            status,
            "{name}: {:?}",
            body_json(resp.body())
        );
    }
    // The sample tenant id itself does not exist here.
    let resp = api.handle(event("get-tenant.json", SAMPLE_TENANT)).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn the_sign_in_samples_invite_accept_and_sign_in_with_the_callers_address() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let api = AdminApi::new(common::services(
        &platform,
        dir.path(),
        "local-dev-admin-token",
    ));
    let created = api.handle(event("create-tenant.json", SAMPLE_TENANT)).await;
    let tenant = body_json(created.body())["id"].as_str().unwrap().to_owned();

    let invited = api.handle(event("invite-owner.json", &tenant)).await;
    assert_eq!(invited.status(), 201, "{:?}", body_json(invited.body()));
    let token = body_json(invited.body())["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = token.rsplit('.').next().unwrap();
    let accept = event("accept-invitation.json", &tenant);
    let (parts, body) = accept.into_parts();
    let body = String::from_utf8(body.as_ref().to_vec())
        .unwrap()
        .replace("INVITATION-SECRET", secret);
    let accepted = api
        .handle(lambda_http::Request::from_parts(parts, Body::from(body)))
        .await;
    assert_eq!(accepted.status(), 201, "{:?}", body_json(accepted.body()));

    let sign_in = event("sign-in.json", &tenant);
    // API Gateway's requestContext.http.sourceIp is what throttling counts per address.
    assert_eq!(
        admin_api::auth::source_ip(&sign_in).as_deref(),
        Some("203.0.113.7")
    );
    let signed = api.handle(sign_in).await;
    assert_eq!(signed.status(), 200, "{:?}", body_json(signed.body()));
    let cookie = signed.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-wappline_refresh=wpr1."),
        "{cookie}"
    );
    assert_eq!(body_json(signed.body())["user"]["role"], "owner");
}
