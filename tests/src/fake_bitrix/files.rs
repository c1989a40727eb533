//! The files of `imconnector.send.messages`: Bitrix24 takes each `message.files[].url`
//! ("a link available to the account", api-reference/imopenlines/imconnector/
//! imconnector-send-messages.md) and stores the file with the chat message. The page gives no
//! later download and no retry: the message the method creates, whose ids it answers with,
//! holds the file. So the fake downloads each file while it runs the call, before it answers
//! (for a batch: while it runs the command), once, and records what it got.
//!
//! A file it cannot download: the page says only that the link "must be accessible from
//! Bitrix24" (the current page's `message.files`), and documents no error for it; the
//! per-message `SUCCESS`/`ERRORS` are for missing user, chat or data. What it shows is its
//! response example: a request with one file (`https://example.com/files/spec.pdf`) answered
//! `SUCCESS: true` with the message's text and `"files": []` ("message data after
//! processing"). So the fake keeps the message and its text, without the file, and lists in
//! the answer's `message.files` only the files it stored.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::form::form_to_json;

/// One download of a posted file ([`super::FakeBitrix::file_downloads`]).
#[derive(Debug, Clone)]
pub struct FileDownload {
    pub url: String,
    /// The HTTP status, or None when nothing answered.
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
    /// When the request carrying the file arrived, and when the download started (Unix ms).
    pub request_ms: i64,
    pub fetched_ms: i64,
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The file URLs of a `send.messages` call, or of the `send.messages` commands of a batch.
pub(super) fn posted_file_urls(method: &str, params: &Value) -> Vec<String> {
    match method {
        "imconnector.send.messages" => urls_of(params),
        "batch" => {
            let commands: Vec<&Value> = match params.get("cmd") {
                Some(Value::Object(m)) => m.values().collect(),
                Some(Value::Array(a)) => a.iter().collect(),
                _ => Vec::new(),
            };
            commands
                .into_iter()
                .filter_map(Value::as_str)
                .filter_map(|c| c.split_once('?'))
                .filter(|(m, _)| m.trim().trim_end_matches(".json") == "imconnector.send.messages")
                .flat_map(|(_, query)| urls_of(&form_to_json(query)))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn urls_of(params: &Value) -> Vec<String> {
    let messages: Vec<&Value> = match params.get("MESSAGES") {
        Some(Value::Array(a)) => a.iter().collect(),
        // PHP-style form keys `MESSAGES[0][...]` arrive as an object keyed by index.
        Some(Value::Object(m)) => m.values().collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for m in messages {
        let files: Vec<&Value> = match m.get("message").and_then(|x| x.get("files")) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(Value::Object(o)) => o.values().collect(),
            _ => Vec::new(),
        };
        out.extend(
            files
                .into_iter()
                .filter_map(|f| f.get("url").and_then(Value::as_str))
                .map(str::to_owned),
        );
    }
    out
}

/// Downloads `url` as a portal would (no redirects followed beyond reqwest's default, 10 s).
pub(super) async fn download(url: &str, request_ms: i64) -> FileDownload {
    let fetched_ms = now_ms();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    match client.get(url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            FileDownload {
                url: url.to_owned(),
                status: Some(status),
                content_type,
                bytes,
                request_ms,
                fetched_ms,
            }
        }
        Err(_) => FileDownload {
            url: url.to_owned(),
            status: None,
            content_type: None,
            bytes: Vec::new(),
            request_ms,
            fetched_ms,
        },
    }
}

/// Removes the files at `failed` URLs from every `message.files` list of an answer (a call's
/// `DATA.RESULT[]`, or a batch's per-command results), as the portal lists only the files it
/// stored.
pub(super) fn drop_undownloaded(answer: &mut Value, failed: &HashSet<String>) {
    match answer {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "files" {
                    if let Value::Array(list) = value {
                        list.retain(|f| {
                            f.get("url")
                                .and_then(Value::as_str)
                                .is_none_or(|u| !failed.contains(u))
                        });
                        continue;
                    }
                }
                drop_undownloaded(value, failed);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_undownloaded(v, failed)),
        _ => {}
    }
}
