//! `TableStore::delete_batch` on DynamoDB when `BatchWriteItem` leaves items unprocessed
//! (decision 0057). DynamoDB may process only part of a batch and name the rest in
//! `UnprocessedItems` ("If DynamoDB returns any unprocessed items, you should retry the batch
//! operation on those items", API_BatchWriteItem); moto never does, so a loopback proxy
//! between the SDK and moto plays that part:
//!
//! - `HoldBack(n)`: the first `BatchWriteItem` reaches moto with only its first `n` requests;
//!   the answer names the others as `UnprocessedItems`, which are therefore still stored. The
//!   adapter must send them again: every item ends up deleted, and the second request carries
//!   exactly the held-back ones.
//! - `Never`: every `BatchWriteItem` is answered with all its requests unprocessed, nothing
//!   reaches moto. The adapter must give up after its documented retries with an error, not
//!   report a deletion that did not happen.
//!
//! Every other request (table creation, puts, gets) passes through unchanged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use wappline::store::dynamo::{provision_tables, DynamoStore, TableNames};
use wappline::store::{Item, Key, StoreError, Table, TableStore};

use crate::support::{aws_config_at, moto_endpoint, unique};

/// What the proxy does to `BatchWriteItem`.
#[derive(Clone, Copy)]
enum Mode {
    /// The first one reaches moto with its first `n` requests only, the rest come back
    /// unprocessed; later ones pass through.
    HoldBack(usize),
    /// None reaches moto; each comes back with all its requests unprocessed.
    Never,
}

struct Proxy {
    addr: SocketAddr,
    /// The number of write requests in each `BatchWriteItem` the SDK sent, in order.
    batches: Arc<Mutex<Vec<usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn count(items: &Map<String, Value>) -> usize {
    items
        .values()
        .map(|r| r.as_array().map_or(0, Vec::len))
        .sum()
}

/// Splits `RequestItems` after its first `n` write requests: (forwarded, held back).
fn split(items: &Map<String, Value>, mut n: usize) -> (Map<String, Value>, Map<String, Value>) {
    let (mut sent, mut held) = (Map::new(), Map::new());
    for (table, requests) in items {
        let requests = requests.as_array().cloned().unwrap_or_default();
        let take = n.min(requests.len());
        n -= take;
        if take > 0 {
            sent.insert(table.clone(), Value::Array(requests[..take].to_vec()));
        }
        if take < requests.len() {
            held.insert(table.clone(), Value::Array(requests[take..].to_vec()));
        }
    }
    (sent, held)
}

impl Proxy {
    async fn start(mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let upstream = moto_endpoint();
        let client: Client<_, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let seen = batches.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, upstream, seen) = (client.clone(), upstream.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (client, upstream, seen) =
                            (client.clone(), upstream.clone(), seen.clone());
                        async move {
                            Ok::<_, hyper::Error>(
                                handle(req, &client, &upstream, &seen, mode).await,
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            addr,
            batches,
            task,
        }
    }

    fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }
}

type Upstream = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn handle(
    req: Request<Incoming>,
    client: &Upstream,
    upstream: &str,
    seen: &Mutex<Vec<usize>>,
    mode: Mode,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let mut body = body.collect().await.unwrap().to_bytes();
    let batch_write = parts
        .headers
        .get("x-amz-target")
        .is_some_and(|t| t.as_bytes().ends_with(b".BatchWriteItem"));
    let mut held = None;
    if batch_write {
        let mut request: Value = serde_json::from_slice(&body).unwrap();
        let items = request["RequestItems"].as_object().cloned().unwrap();
        let first = {
            let mut seen = seen.lock().unwrap();
            seen.push(count(&items));
            seen.len() == 1
        };
        match mode {
            Mode::Never => {
                return answer(json!({"UnprocessedItems": items}));
            }
            Mode::HoldBack(n) if first => {
                let (sent, rest) = split(&items, n);
                request["RequestItems"] = Value::Object(sent);
                body = Bytes::from(serde_json::to_vec(&request).unwrap());
                held = Some(rest);
            }
            Mode::HoldBack(_) => {}
        }
    }
    // The body changed length; the SDK's signature does not matter to moto.
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{path}").parse().unwrap();
    let got = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .unwrap();
    let (mut head, body) = got.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let Some(rest) = held else {
        return Response::from_parts(head, Full::new(body));
    };
    let mut out: Value = serde_json::from_slice(&body).unwrap();
    out["UnprocessedItems"] = Value::Object(rest);
    // Moto's checksum was of its own answer.
    head.headers.remove("x-amz-crc32");
    head.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(head, Full::new(Bytes::from(out.to_string())))
}

fn answer(body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn store_behind(proxy: &Proxy) -> DynamoStore {
    let config = aws_config_at(&format!("http://{}", proxy.addr)).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let names = TableNames::with_prefix(&unique("u"));
    provision_tables(&client, &names)
        .await
        .expect("provision tables on moto");
    DynamoStore::new(client, names)
}

async fn put_items(store: &DynamoStore, n: usize) -> Vec<(Table, Key)> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = Key::new("T#u", format!("m{i:02}"));
        store
            .put(Table::Data, Item::new(&key).with("body", "x"), None)
            .await
            .unwrap();
        keys.push((Table::Data, key));
    }
    // One in another table: unprocessed items are named per table.
    let key = Key::new("T#u#IN", "k1");
    store
        .put(Table::Dedupe, Item::new(&key).with("body", "x"), None)
        .await
        .unwrap();
    keys.push((Table::Dedupe, key));
    keys
}

async fn remaining(store: &DynamoStore, keys: &[(Table, Key)]) -> usize {
    let mut n = 0;
    for (table, key) in keys {
        if store.get(*table, key).await.unwrap().is_some() {
            n += 1;
        }
    }
    n
}

/// Items DynamoDB left unprocessed are sent again until every one is deleted.
#[tokio::test]
async fn unprocessed_items_are_sent_again_until_all_are_deleted() {
    let proxy = Proxy::start(Mode::HoldBack(10)).await;
    let store = store_behind(&proxy).await;
    let keys = put_items(&store, 24).await;
    assert_eq!(keys.len(), 25);

    store.delete_batch(keys.clone()).await.unwrap();

    assert_eq!(remaining(&store, &keys).await, 0, "every item is deleted");
    // The first request named all 25, moto deleted 10; the retry named the other 15.
    assert_eq!(proxy.batches(), vec![25, 15]);
}

/// A batch DynamoDB never finishes ends in an error after the documented retries, and the
/// items are still there: no silent success.
#[tokio::test]
async fn a_batch_left_unprocessed_for_good_is_an_error_after_the_retries() {
    let proxy = Proxy::start(Mode::Never).await;
    let store = store_behind(&proxy).await;
    let keys = put_items(&store, 4).await;

    let r = store.delete_batch(keys.clone()).await;

    match r {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("unprocessed"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // The first attempt and six retries (the adapter's UNPROCESSED_RETRIES), each with all
    // the items.
    assert_eq!(proxy.batches(), vec![5; 7]);
    assert_eq!(remaining(&store, &keys).await, keys.len());
}
