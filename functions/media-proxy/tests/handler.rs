//! The HTTP mapping of the media-proxy function: headers of a served media, the JSON errors
//! for bad links, unknown paths and methods. The media comes from a one-shot loopback "CDN".

use std::collections::BTreeMap;

use lambda_http::http::{self, StatusCode};
use lambda_http::{Body, Request};
use media_proxy::MediaProxyFunction;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wappline::app::Platform;
use wappline::crm_sync::MediaLinker;
use wappline::graph::{GraphClient, GraphConfig, HostPolicy};
use wappline::ids::InstagramAccountId;
use wappline::media::{MediaLinkKey, MediaLinks, MediaProxy};
use wappline::meta::{AccountRef, Media, MediaKind};
use wappline::tenant::{ChannelRef, Connection, RetentionDays, Secret, TenantName};

const IG: &str = "17841405822304914";
const BODY: &[u8] = b"%PDF-1.7 fake";

/// Answers every connection with `response` (a whole HTTP/1.1 answer).
async fn serve_once(response: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        }
    });
    format!("http://{addr}")
}

fn request(method: &str, path: &str) -> Request {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap()
}

fn json_of(resp: &http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

#[tokio::test]
async fn serves_media_with_safe_headers_and_refuses_bad_links() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let tenant = platform
        .tenants
        .create(TenantName::parse("Shop").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();
    let account = InstagramAccountId::parse(IG).unwrap();
    scope
        .connect(Connection {
            channel: ChannelRef::Instagram(account.clone()),
            details: BTreeMap::new(),
            secrets: BTreeMap::from([("access_token", Secret::parse("t", "IGQtoken123").unwrap())]),
            authorized_by: None,
        })
        .await
        .unwrap();

    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        BODY.len()
    )
    .into_bytes();
    answer.extend_from_slice(BODY);
    let cdn = serve_once(answer).await;

    let links = MediaLinks::new(
        MediaLinkKey::from_bytes(&[3; 32]).unwrap(),
        "https://api.example.com",
    )
    .unwrap()
    .with_hosts(HostPolicy::meta().with_loopback(true));
    let graph = GraphClient::new(GraphConfig::default().with_base_url(&cdn).unwrap()).unwrap();
    let function = MediaProxyFunction::new(MediaProxy::new(
        links.clone(),
        platform.tenants.clone(),
        graph,
    ));

    let mut media = Media::new(MediaKind::File);
    media.url = Some(format!("{cdn}/cdn/file"));
    media.filename = Some("Счёт \"2026\".pdf".into());
    let file = links
        .link(&tenant, &AccountRef::Instagram(account), &media)
        .await
        .unwrap();
    let path = file.url.strip_prefix("https://api.example.com").unwrap();

    let resp = function.handle(request("GET", path)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["content-length"], BODY.len().to_string().as_str());
    assert_eq!(h["cache-control"], "private, no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"____ 2026.pdf\"; filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82%202026.pdf"
    );
    assert_eq!(resp.body().as_ref(), BODY);

    let resp = function.handle(request("HEAD", path)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.body().as_ref().is_empty());

    // A stage prefix in front of the route (API Gateway stages other than $default).
    let staged = format!("/prod{path}");
    assert_eq!(
        function.handle(request("GET", &staged)).await.status(),
        StatusCode::OK
    );

    // Bad links: 403 with the JSON error shape, never cached.
    let mut altered = path.to_owned();
    altered.pop();
    for p in [altered.as_str(), "/media/abc.def", "/media/x"] {
        let resp = function.handle(request("GET", p)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{p}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(json_of(&resp)["error"]["code"], "forbidden");
    }
    let expired = links.clone().with_ttl(std::time::Duration::ZERO);
    let file = expired
        .link(
            &tenant,
            &AccountRef::Instagram(InstagramAccountId::parse(IG).unwrap()),
            &media,
        )
        .await
        .unwrap();
    let resp = function
        .handle(request(
            "GET",
            file.url.strip_prefix("https://api.example.com").unwrap(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(&resp)["error"]["code"], "link_expired");

    assert_eq!(
        function.handle(request("GET", "/media/")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        function.handle(request("POST", path)).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}
