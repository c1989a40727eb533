//! Runs the real binary, kills it without warning, starts it again on the same data dir:
//! what the admin API acknowledged is still there.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

const TOKEN: &str = "crash-test-admin-token";

fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("WAPPLINE_ADMIN_TOKEN", TOKEN)
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
    let (mut child, url) = start(dir.path());
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
    let body = json!({"phone_number_id": "106540352242922", "waba_id": "102290129340398", "access_token": "EAAGtoken"});
    let (s, _) = call(
        &url,
        reqwest::Method::POST,
        &format!("/admin/tenants/{tenant}/channels/whatsapp"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201);
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();

    let (mut child, url) = start(dir.path());
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
