//! Runs the real binary, kills it without warning, starts it again on the same data dir:
//! what the admin API acknowledged is still there.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

const TOKEN: &str = "crash-test-admin-token";
const APP_ID: &str = "670843887433847";
const APP_SECRET: &str = "crash-test-app-secret";
const WABA: &str = "102290129340398";
const NUMBER: &str = "106540352242922";

/// A loopback stand-in for the Graph calls that prove a WhatsApp connect (decision 0032), in
/// Meta's documented formats: `debug_token`, asked with the app token, calls any input token
/// valid for the app with both WhatsApp permissions on [`WABA`]; the WABA's `phone_numbers`
/// lists [`NUMBER`]. Its base URL.
fn meta_fake() -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    authorization = line[14..].trim().to_owned();
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or_default();
            let body = if path.contains("/debug_token?")
                && authorization == format!("Bearer {APP_ID}|{APP_SECRET}")
            {
                json!({"data": {"app_id": APP_ID, "type": "SYSTEM_USER", "is_valid": true,
                    "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
                    "granular_scopes": [
                        {"scope": "whatsapp_business_management", "target_ids": [WABA]},
                        {"scope": "whatsapp_business_messaging", "target_ids": [WABA]}]}})
            } else if path.contains(&format!("/{WABA}/phone_numbers")) {
                json!({"data": [{"id": NUMBER, "display_phone_number": "+1 555-0100"}],
                    "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}}})
            } else {
                json!({"error": {"message": "Invalid OAuth access token.",
                    "type": "OAuthException", "code": 190}})
            };
            let status = if body.get("error").is_some() {
                "401 Unauthorized"
            } else {
                "200 OK"
            };
            let body = body.to_string();
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

fn start(data_dir: &std::path::Path, graph: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("WAPPLINE_ADMIN_TOKEN", TOKEN)
        .env("GRAPH_API_BASE_URL", graph)
        .env("META_APP_ID", APP_ID)
        .env("META_APP_SECRET", APP_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start local-server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("readable");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no listen address in {first:?}"))
        .to_owned();
    (child, url)
}

async fn call(url: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("{url}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let graph = meta_fake();
    let (mut child, url) = start(dir.path(), &graph);
    let (s, t) = call(
        &url,
        reqwest::Method::POST,
        "/admin/tenants",
        Some(json!({"name": "Acme"})),
    )
    .await;
    assert_eq!(s, 201);
    let tenant = t["id"].as_str().unwrap().to_owned();
    let (s, t2) = call(
        &url,
        reqwest::Method::POST,
        "/admin/tenants",
        Some(json!({"name": "Other"})),
    )
    .await;
    assert_eq!(s, 201);
    let other = t2["id"].as_str().unwrap().to_owned();
    let body = json!({"phone_number_id": NUMBER, "waba_id": WABA, "access_token": "EAAGtoken"});
    let (s, answer) = call(
        &url,
        reqwest::Method::POST,
        &format!("/admin/tenants/{tenant}/channels/whatsapp"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201, "{answer}");
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();

    let (mut child, url) = start(dir.path(), &graph);
    let (s, settings) = call(
        &url,
        reqwest::Method::GET,
        &format!("/admin/tenants/{tenant}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(settings["channels"][0]["id"], "106540352242922");
    let (s, answer) = call(
        &url,
        reqwest::Method::POST,
        &format!("/admin/tenants/{other}/channels/whatsapp"),
        Some(body),
    )
    .await;
    assert_eq!(s, 409, "{answer}");
    child.kill().unwrap();
    child.wait().unwrap();
}
