//! The sample API Gateway events in events/data-deletion/ go through lambda_http's own event
//! parsing into the handler, as in Lambda: the valid callback is recorded and queued and its
//! status page answers; the forged one is refused with nothing recorded.

use std::sync::Arc;

use data_deletion::DataDeletion;
use lambda_http::http::header;
use lambda_http::Body;
use wappline::meta::AppSecret;
use wappline::meta_deletion::MetaDeletion;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;
use wappline::store::embedded::EmbeddedStore;
use wappline::store::{Table, TableStore};

fn event(name: &str) -> lambda_http::Request {
    let path = format!(
        "{}/../../events/data-deletion/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(body: &Body) -> String {
    String::from_utf8(body.as_ref().to_vec()).unwrap()
}

async fn count(store: &dyn TableStore) -> usize {
    let mut n = 0;
    for table in Table::ALL {
        n += store.scan(table, None, 1000).await.unwrap().items.len();
    }
    n
}

fn get(uri: &str, accept: &str) -> lambda_http::Request {
    let mut req = lambda_http::http::Request::builder()
        .method("GET")
        .uri(uri)
        .header(header::ACCEPT, accept)
        .body(Body::Empty)
        .unwrap();
    // lambda_http reads query parameters from its own extension, as API Gateway fills it.
    let query: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    req = lambda_http::RequestExt::with_query_string_parameters(req, query);
    req
}

#[tokio::test]
async fn sample_events_run_through_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    let erasure = platform::name(platform::ERASURE);
    let function = DataDeletion::new(
        MetaDeletion::new(
            vec![AppSecret::new("local-dev-app-secret").unwrap()],
            store.clone(),
            Arc::new(queue.clone()),
            erasure.clone(),
            "https://wappline.example",
        )
        .unwrap(),
    );

    // Forged: refused, nothing recorded or queued.
    let resp = function.handle(event("callback-forged.json")).await;
    assert_eq!(resp.status(), 403, "{}", text(resp.body()));
    assert!(text(resp.body()).contains("invalid_signature"));
    assert_eq!(count(store.as_ref()).await, 0);
    assert_eq!(queue.depth(&erasure).await.unwrap(), 0);

    // Valid: Meta's documented answer, one job queued.
    let resp = function.handle(event("callback-valid.json")).await;
    assert_eq!(resp.status(), 200, "{}", text(resp.body()));
    let answer: serde_json::Value = serde_json::from_str(&text(resp.body())).unwrap();
    let code = answer["confirmation_code"].as_str().unwrap().to_owned();
    let url = answer["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("https://wappline.example/data-deletion/status?code={code}")
    );
    assert_eq!(queue.depth(&erasure).await.unwrap(), 1);

    // Its status page, as HTML and as JSON, by query and by path.
    let resp = function
        .handle(get(
            &format!("/data-deletion/status?code={code}"),
            "text/html",
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let html = text(resp.body());
    assert!(html.contains("pending"), "{html}");
    assert!(!html.contains("10158376200385746"));
    let resp = function
        .handle(get(
            &format!("/data-deletion/status/{code}"),
            "application/json",
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let status: serde_json::Value = serde_json::from_str(&text(resp.body())).unwrap();
    assert_eq!(status["state"], "pending");
    assert!(status.get("requested_at").is_some());
    assert_eq!(status.as_object().unwrap().len(), 2, "{status}");

    // Unknown code: 404.
    let resp = function.handle(event("status-unknown.json")).await;
    assert_eq!(resp.status(), 404);
    let resp = function
        .handle(get("/data-deletion/status?code=nope", "application/json"))
        .await;
    assert_eq!(resp.status(), 404);

    // Wrong method, wrong path.
    let resp = function.handle(get("/data-deletion", "*/*")).await;
    assert_eq!(resp.status(), 405);
}
