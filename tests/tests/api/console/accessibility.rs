//! Every console page, as an owner and as a viewer (and the pages before sign-in), is
//! checked for what a screen reader needs (issue 14 item 7, decision 0039): the page names
//! its language, every form control a person operates has an accessible name (a
//! `<label for>` of its id, `aria-label`, or `aria-labelledby` naming elements of the page),
//! every button says what it does, every image has `alt` and every SVG drawing a title.
//! The pages are filled first (users, an invitation, an API key, an export, an erasure
//! request, a privacy-policy notice, the connect section) so their controls are there.
//!
//! The markup is read with a small tag scanner: the pages are ours, well-formed and escaped
//! by the templates, so no HTML parser is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e_tests::console::{add_user, ConsoleClient, Page};
use e2e_tests::fake_graph::wire_self_service;
use e2e_tests::harness::{Harness, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::Value;
use wappline::queue::platform;

/// The signed-in pages (some with a query that fills them).
const PAGES: [&str; 11] = [
    "/app/channels",
    "/app/bitrix24",
    "/app/retention",
    "/app/users",
    "/app/api-keys",
    "/app/usage",
    "/app/audit",
    "/app/exports",
    "/app/erasure",
    "/app/account",
    "/app/no-such-page",
];

/// One start tag: its name, its attributes (names lower-cased, values unescaped of
/// nothing: ids and names are plain), and the text up to the matching end tag for the
/// elements whose content names them.
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: BTreeMap<String, String>,
    /// For `button`, `label`, `svg` and `a`: the text content, tags stripped.
    text: String,
    /// For `svg`: whether it has a `<title>` child.
    titled: bool,
}

/// The start tags of `html`.
fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        let mut attrs = BTreeMap::new();
        let mut i = name_end;
        let bytes = rest.as_bytes();
        loop {
            while i < bytes.len() && (bytes[i] as char).is_whitespace() {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                break;
            }
            if bytes[i] == b'/' {
                i += 1;
                continue;
            }
            let key_end = rest[i..]
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
                .map_or(rest.len(), |e| e + i);
            let key = rest[i..key_end].to_ascii_lowercase();
            i = key_end;
            let mut value = String::new();
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                if bytes[i] == b'"' || bytes[i] == b'\'' {
                    let quote = bytes[i] as char;
                    let end = rest[i + 1..].find(quote).unwrap() + i + 1;
                    value = rest[i + 1..end].to_owned();
                    i = end + 1;
                } else {
                    let end = rest[i..]
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .map_or(rest.len(), |e| e + i);
                    value = rest[i..end].to_owned();
                    i = end;
                }
            }
            attrs.insert(key, value);
        }
        let after = &rest[i.min(rest.len())..];
        let (text, titled) = if matches!(name.as_str(), "button" | "label" | "svg" | "a") {
            let close = format!("</{name}>");
            let inner = &after[..after.find(&close).unwrap_or(0)];
            (strip_tags(inner), inner.contains("<title"))
        } else {
            (String::new(), false)
        };
        out.push(Tag {
            name,
            attrs,
            text,
            titled,
        });
    }
    out
}

fn strip_tags(s: &str) -> String {
    let mut text = String::new();
    let mut inside = false;
    for c in s.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

/// What a screen reader would miss on the page, one line each.
fn problems(html: &str) -> Vec<String> {
    let tags = tags(html);
    let mut found = Vec::new();
    let ids: BTreeSet<&str> = tags
        .iter()
        .filter_map(|t| t.attrs.get("id").map(String::as_str))
        .collect();
    let labelled: BTreeSet<&str> = tags
        .iter()
        .filter(|t| t.name == "label" && !t.text.is_empty())
        .filter_map(|t| t.attrs.get("for").map(String::as_str))
        .collect();
    let named_by = |t: &Tag| {
        t.attrs
            .get("aria-label")
            .is_some_and(|l| !l.trim().is_empty())
            || t.attrs.get("aria-labelledby").is_some_and(|l| {
                !l.trim().is_empty() && l.split_whitespace().all(|id| ids.contains(id))
            })
    };
    match tags.iter().find(|t| t.name == "html") {
        Some(t) if t.attrs.get("lang").is_some_and(|l| !l.is_empty()) => {}
        _ => found.push("the page names no language (<html lang>)".to_owned()),
    }
    for t in &tags {
        let describe = || {
            format!(
                "<{} {}>",
                t.name,
                t.attrs
                    .iter()
                    .filter(|(k, _)| *k != "value" && *k != "class")
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        match t.name.as_str() {
            "input" | "select" | "textarea" => {
                let kind = t.attrs.get("type").map(String::as_str).unwrap_or("text");
                if kind == "hidden" {
                    continue;
                }
                if matches!(kind, "submit" | "button" | "reset") {
                    if t.attrs.get("value").is_none_or(|v| v.trim().is_empty()) && !named_by(t) {
                        found.push(format!("{}: a button without words", describe()));
                    }
                    continue;
                }
                let by_label = t
                    .attrs
                    .get("id")
                    .is_some_and(|id| labelled.contains(id.as_str()));
                if !by_label && !named_by(t) {
                    found.push(format!("{}: a control without a name", describe()));
                }
            }
            "button" if t.text.is_empty() && !named_by(t) => {
                found.push(format!("{}: a button without words", describe()));
            }
            "img" if !t.attrs.contains_key("alt") => {
                found.push(format!("{}: an image without alt", describe()));
            }
            "svg" if !t.titled && !named_by(t) && !t.attrs.contains_key("aria-hidden") => {
                found.push(format!("{}: a drawing without a title", describe()));
            }
            "a" if t.text.is_empty() && !named_by(t) => {
                found.push(format!("{}: a link without words", describe()));
            }
            _ => {}
        }
    }
    // A label whose control is not on the page names nothing.
    for id in &labelled {
        if !ids.contains(id) {
            found.push(format!("<label for={id:?}> names no element"));
        }
    }
    found
}

fn check(page: &Page, what: &str, failures: &mut Vec<String>) {
    assert!(
        page.body.contains("</html>"),
        "{what}: not a page ({}): {}",
        page.status,
        page.body
    );
    failures.extend(
        problems(&page.body)
            .into_iter()
            .map(|p| format!("{what}: {p}")),
    );
}

#[test]
fn the_scanner_finds_what_is_missing() {
    let ok = r#"<html lang="en"><label for="a">Days</label><input id="a" name="d">
        <input type="hidden" name="csrf" value="x"><select aria-label="Role of ann">
        <option>x</option></select><span id="h">Name</span><input aria-labelledby="h">
        <button type="submit">Save</button><img src="/x.png" alt="">
        <svg role="img" aria-labelledby="h"></svg></html>"#;
    assert_eq!(problems(ok), Vec::<String>::new());
    let bad = r#"<html><label for="b">Days</label><input id="a" name="d"><select name="r">
        </select><input aria-labelledby="nowhere"><button type="submit"> </button>
        <img src="/x.png"><svg viewBox="0 0 1 1"></svg></html>"#;
    let found = problems(bad);
    assert_eq!(found.len(), 8, "{found:#?}");
}

#[tokio::test]
async fn every_console_page_names_its_controls_images_and_language() {
    let h = Harness::start(|c| {
        wire_self_service(c);
        // Users who have not acknowledged it see the notice and its form.
        c.privacy_policy_version = Some("2026-12-01".into());
    })
    .await;
    let tenant = h.tenant_with_channels().await;
    add_user(&h, &tenant, "owner@acme.test", "owner").await;
    add_user(&h, &tenant, "viewer@acme.test", "viewer").await;
    let mut owner = ConsoleClient::new(&h.base);
    let mut failures = Vec::new();

    // Before sign-in, in both languages.
    for lang in ["en", "ru"] {
        owner.cookies.insert("wappline_lang".into(), lang.into());
        for path in ["/app/sign-in", "/app/account/email/confirm?token=abc"] {
            let page = owner.get(path).await;
            check(&page, &format!("{path} ({lang})"), &mut failures);
        }
    }
    owner.cookies.insert("wappline_lang".into(), "en".into());
    owner.sign_in(&tenant, "owner@acme.test").await;

    // Fill the pages: an invitation, an API key, an export, a contact erasure request.
    let r = owner
        .submit(
            "/app/users",
            "/app/users/invite",
            &[("email", "new@acme.test"), ("role", "agent")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    check(&r, "the invitation's page", &mut failures);
    let r = owner
        .submit("/app/api-keys", "/app/api-keys", &[("name", "CRM bridge")])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    check(&r, "the new API key's page", &mut failures);
    let channel = format!("whatsapp:{WA_NUMBER}");
    let r = owner
        .submit(
            "/app/erasure",
            "/app/erasure",
            &[("channel", &channel), ("customer", "+16505551234")],
        )
        .await;
    let request = r.location.expect("the request's page");
    h.drain(platform::ERASURE, Duration::from_secs(10)).await;
    let r = owner.submit("/app/exports", "/app/exports", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for _ in 0..200 {
        let v: Value = h
            .admin_get(&format!("/admin/tenants/{tenant}/exports"))
            .await;
        if v["exports"][0]["state"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Pages that answer a refused form, and the outcome of a connect flow.
    let r = owner
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    check(&r, "refused retention", &mut failures);
    let r = owner
        .submit(
            "/app/channels",
            "/app/onboarding/whatsapp",
            &[("event", "CANCEL"), ("current_step", "PHONE_NUMBER_SETUP")],
        )
        .await;
    check(&r, "a cancelled sign-up", &mut failures);

    let mut viewer = ConsoleClient::new(&h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;
    for lang in ["en", "ru"] {
        for (who, browser) in [("owner", &mut owner), ("viewer", &mut viewer)] {
            browser.cookies.insert("wappline_lang".into(), lang.into());
            for path in PAGES.iter().copied().chain([request.as_str()]) {
                let page = browser.get(path).await;
                check(&page, &format!("{path} ({who}, {lang})"), &mut failures);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    h.server.shutdown().await;
}
