//! The parsers of untrusted input, each with its seeds (the `events/` samples, or the
//! documented shape) and its structure-aware inputs. Each target runs its parser exactly as
//! the function does on a request, up to the first use of storage or the network. Where a
//! signature or a tag guards the parser, the target signs or seals what it generates with a
//! key it holds, so that the parse behind the check is reached, as an attacker holding a
//! leaked key would reach it; mutated tokens exercise the check itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use admin_api::bodies::{self, BodyKind};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use wappline::accounts::token::SessionKey;
use wappline::bitrix::events::{form_encode, parse_form, BitrixEvent};
use wappline::export::link::{self as export_link, ExportLinkKey};
use wappline::media::token::{self as media_token, MediaLinkKey};
use wappline::meta::{
    split_webhook, split_webhook_borrowed, verify_signature, verify_signature_any, AppSecret,
};
use wappline::meta_deletion::signed_request;
use wappline::portal::install::InstallRequest;

use crate::bytes::inputs;
use crate::json::{edited, tree, J};

/// 2026-11-24: the time every target checks expiries against.
pub const NOW: i64 = 1_795_460_400;

/// Runs a parser on one input; true when it accepted it.
pub type Parser = Box<dyn Fn(&[u8]) -> bool>;

/// One parser: its name, the code it runs, and the inputs it is given.
pub struct Target {
    pub name: &'static str,
    /// The entry points it calls, for the report.
    pub entry: &'static str,
    /// Valid inputs, which the parser accepts: the starting points of mutation.
    pub seeds: Vec<Vec<u8>>,
    pub inputs: BoxedStrategy<Vec<u8>>,
    /// Runs the parser; true when it accepted the input.
    pub run: Parser,
}

/// Every target, in a fixed order.
pub const NAMES: &[&str] = &[
    "meta-webhook",
    "meta-signature",
    "bitrix-event",
    "bitrix-install",
    "signed-request",
    "admin-api",
    "public-api",
    "media-token",
    "export-token",
    "access-token",
];

/// Builds the target `name` (each thread builds its own: strategies are not `Send`).
pub fn target(name: &str) -> Option<Target> {
    Some(match name {
        "meta-webhook" => meta_webhook(),
        "meta-signature" => meta_signature(),
        "bitrix-event" => bitrix_event(),
        "bitrix-install" => bitrix_install(),
        "signed-request" => signed_request_target(),
        "admin-api" => admin_api(),
        "public-api" => public_api(),
        "media-token" => media_token_target(),
        "export-token" => export_token(),
        "access-token" => access_token(),
        _ => return None,
    })
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// The JSON files directly in `events/<dir>`, sorted.
fn sample_files(dir: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(events_dir().join(dir))
        .unwrap_or_else(|e| panic!("events/{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("a sample"))
        .collect()
}

/// The request body of the API Gateway event `events/<dir>/<file>`.
fn sample_body(dir: &str, file: &str) -> Vec<u8> {
    let event: Value = serde_json::from_slice(
        &std::fs::read(events_dir().join(dir).join(file)).expect("a sample"),
    )
    .expect("a sample event");
    event["body"].as_str().expect("a body").as_bytes().to_vec()
}

/// The non-empty request bodies of the API Gateway events in `events/<dir>`.
fn sample_bodies(dir: &str) -> Vec<Vec<u8>> {
    sample_files(dir)
        .iter()
        .filter_map(|f| {
            let event: Value = serde_json::from_slice(f).expect("a sample event");
            let body = event.get("body")?.as_str()?;
            (!body.is_empty()).then(|| body.as_bytes().to_vec())
        })
        .collect()
}

fn structured(trees: Vec<J>, finish: impl Fn(J) -> Vec<u8> + 'static) -> BoxedStrategy<Vec<u8>> {
    edited(Arc::new(trees)).prop_map(finish).boxed()
}

fn secret() -> AppSecret {
    AppSecret::new("0123456789abcdef0123456789abcdef").expect("a valid app secret")
}

// --- Meta webhook --------------------------------------------------------------------------

fn meta_trees() -> Vec<J> {
    sample_files("meta-webhook")
        .iter()
        .map(|b| tree(b))
        .collect()
}

/// The intake's steps before routing: the signature (the target signs the body: an unsigned
/// body never reaches the parser), the split with its events borrowed from the body (what
/// the intake seals), the timestamp clamp, and each event's serialization into its job;
/// and the owned split (`split_webhook`, what tests and tools read) must agree with it,
/// byte for byte in every job (decision 0103).
fn meta_webhook() -> Target {
    let secret = secret();
    let seeds = sample_files("meta-webhook");
    Target {
        name: "meta-webhook",
        entry: "meta::verify_signature, meta::split_webhook_borrowed, meta::split_webhook, WebhookBatch::clamp_timestamps, InboundEvent serialization",
        seeds: seeds.clone(),
        inputs: inputs(seeds, structured(meta_trees(), |j| j.to_bytes())),
        run: Box::new(move |body| {
            let header = secret.sign(body);
            verify_signature(&secret, Some(&header), body).expect("signed just now");
            let owned = split_webhook(body);
            let Ok(mut batch) = split_webhook_borrowed(body) else {
                let (Err(borrowed), Err(owned)) = (split_webhook_borrowed(body), owned) else {
                    panic!("the owned split accepted a body the borrowed split refused");
                };
                assert_eq!(borrowed, owned, "both splits refuse a body alike");
                return false;
            };
            let mut owned = owned.expect("the owned split refused a body the borrowed accepted");
            assert_eq!(batch.ignored, owned.ignored, "both splits ignore alike");
            assert_eq!(batch.malformed, owned.malformed, "both splits count alike");
            assert_eq!(batch.account_updates, owned.account_updates);
            assert_eq!(batch.events.len(), owned.events.len());
            batch.clamp_timestamps(NOW);
            owned.clamp_timestamps(NOW);
            for (event, owned) in batch.events.iter().zip(&owned.events) {
                let job = serde_json::to_vec(event).expect("an event serializes");
                let owned_job = serde_json::to_vec(owned).expect("an event serializes");
                assert!(job == owned_job, "a borrowed event's job differs from the owned one's");
            }
            // A real delivery gives events, account updates (routed by the intake) or
            // fields counted as not relayed (template webhooks): something, never nothing.
            !batch.events.is_empty() || !batch.account_updates.is_empty() || !batch.ignored.is_empty()
        }),
    }
}

/// `X-Hub-Signature-256` and the body, as `header \n body`.
fn meta_signature() -> Target {
    let secrets = vec![
        secret(),
        AppSecret::new("fedcba9876543210fedcba9876543210").expect("a valid app secret"),
    ];
    let signer = secret();
    let seeds: Vec<Vec<u8>> = sample_files("meta-webhook")
        .into_iter()
        .map(|b| [signer.sign(&b).into_bytes(), b"\n".to_vec(), b].concat())
        .collect();
    let headers = (structured(meta_trees(), |j| j.to_bytes()), 0u8..6).prop_map(move |(b, how)| {
        let good = signer.sign(&b);
        let header = match how {
            0 | 1 => good,
            2 => good.to_ascii_uppercase(),
            3 => good.trim_start_matches("sha256=").to_owned(),
            4 => good[..good.len() / 2].to_owned(),
            _ => format!("{good},{good}"),
        };
        [header.into_bytes(), b"\n".to_vec(), b].concat()
    });
    Target {
        name: "meta-signature",
        entry: "meta::verify_signature, meta::verify_signature_any",
        seeds: seeds.clone(),
        inputs: inputs(seeds, headers.boxed()),
        run: Box::new(move |input| {
            let (header, body) = match input.iter().position(|&b| b == b'\n') {
                Some(i) => (&input[..i], &input[i + 1..]),
                None => (input, &[][..]),
            };
            // Headers reach the handler as text (http's HeaderValue::to_str).
            let header = std::str::from_utf8(header).ok();
            let one = verify_signature(&secrets[0], header, body).is_ok();
            let any = verify_signature_any(&secrets, header, body).is_ok();
            assert_eq!(one, any, "the first secret alone and both secrets disagree");
            assert!(verify_signature_any(&secrets, None, body).is_err());
            one
        }),
    }
}

// --- Bitrix24 ------------------------------------------------------------------------------

/// A tree as a PHP-style form (`a[b][0]=v&...`), as Bitrix24 posts it; duplicate keys stay.
fn to_form(j: &J) -> Vec<u8> {
    fn walk(prefix: &str, j: &J, out: &mut Vec<String>) {
        let leaf = |v: &str, out: &mut Vec<String>| {
            out.push(format!("{}={}", form_encode(prefix), form_encode(v)))
        };
        match j {
            J::Null => leaf("", out),
            J::Bool(b) => leaf(if *b { "1" } else { "" }, out),
            J::Num(n) => leaf(n, out),
            J::Str(s) => leaf(s, out),
            J::Arr(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&key(prefix, &i.to_string()), v, out);
                }
            }
            J::Obj(o) => {
                for (k, v) in o {
                    walk(&key(prefix, k), v, out);
                }
            }
        }
    }
    fn key(prefix: &str, k: &str) -> String {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}[{k}]")
        }
    }
    let mut pairs = Vec::new();
    walk("", j, &mut pairs);
    pairs.join("&").into_bytes()
}

/// Form bodies as trees, and the inputs made from them: mostly forms, sometimes the JSON
/// body `parse_form` also reads.
fn bitrix_inputs(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let trees: Vec<J> = seeds
        .iter()
        .map(|b| J::from(&parse_form(b).expect("a sample form parses")))
        .collect();
    let shapes = (structured(trees, |j| j.to_bytes()), any::<Index>()).prop_map(|(json, i)| {
        if i.index(4) == 0 {
            json
        } else {
            to_form(&tree_of(&json))
        }
    });
    inputs(seeds, shapes.boxed())
}

/// Back from bytes the structured strategy wrote (always valid JSON).
fn tree_of(json: &[u8]) -> J {
    serde_json::from_slice::<Value>(json)
        .map(|v| J::from(&v))
        .unwrap_or(J::Null)
}

fn bitrix_event() -> Target {
    let seeds: Vec<Vec<u8>> = sample_bodies("bitrix-webhook")
        .into_iter()
        .filter(|b| b.starts_with(b"event="))
        .collect();
    Target {
        name: "bitrix-event",
        entry: "bitrix::events::parse_form, BitrixEvent::parse",
        seeds: seeds.clone(),
        inputs: bitrix_inputs(seeds),
        run: Box::new(|body| BitrixEvent::parse(body).is_ok()),
    }
}

fn bitrix_install() -> Target {
    // The install callback (event form) and the install wizard (page form); not
    // `app-install.json`, the ONAPPINSTALL event sent to the event handler, without tokens.
    let seeds: Vec<Vec<u8>> = ["install-callback.json", "install-wizard.json"]
        .iter()
        .map(|f| sample_body("bitrix-webhook", f))
        .collect();
    Target {
        name: "bitrix-install",
        entry: "bitrix::events::parse_form, portal::install::InstallRequest::from_form",
        seeds: seeds.clone(),
        inputs: bitrix_inputs(seeds),
        run: Box::new(|body| {
            parse_form(body).is_ok_and(|form| InstallRequest::from_form(&form).is_ok())
        }),
    }
}

// --- Meta's signed_request -----------------------------------------------------------------

fn signed_request_target() -> Target {
    let secrets = vec![secret()];
    let signer = secret();
    // The payload Meta documents (developers.facebook.com/docs/development/create-an-app/
    // app-dashboard/data-deletion-callback), and the variants we accept.
    let payloads: Vec<J> = [
        r#"{"algorithm":"HMAC-SHA256","expires":1795464000,"issued_at":1795460400,"user_id":"218471"}"#,
        r#"{"algorithm":"HMAC-SHA256","issued_at":1795460400,"user_id":218471}"#,
    ]
    .iter()
    .map(|s| tree(s.as_bytes()))
    .collect();
    let form = move |j: &J| {
        let value = signed_request::sign(&signer, &String::from_utf8_lossy(&j.to_bytes()));
        format!("signed_request={}", form_encode(&value)).into_bytes()
    };
    let seeds: Vec<Vec<u8>> = payloads.iter().map(&form).collect();
    Target {
        name: "signed-request",
        entry: "meta_deletion::signed_request::verify_form",
        seeds: seeds.clone(),
        inputs: inputs(seeds, structured(payloads, move |j| form(&j))),
        run: Box::new(move |body| signed_request::verify_form(&secrets, body, NOW).is_ok()),
    }
}

// --- Admin and public API bodies -----------------------------------------------------------

/// The first byte picks the route (modulo their number), the rest is the body.
fn admin_api() -> Target {
    let kinds = BodyKind::ALL;
    let mut seeds: Vec<Vec<u8>> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| [vec![i as u8], k.example().as_bytes().to_vec()].concat())
        .collect();
    // The documented samples, with the route each is sent to.
    for body in sample_bodies("admin-api") {
        let j = tree(&body);
        let kind = kinds.iter().position(|k| {
            let keys = |j: &J| match j {
                J::Obj(o) => o.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            keys(&tree(k.example().as_bytes())) == keys(&j)
        });
        if let Some(i) = kind {
            seeds.push([vec![i as u8], body].concat());
        }
    }
    let trees: Vec<J> = kinds.iter().map(|k| tree(k.example().as_bytes())).collect();
    let per_route = (any::<Index>(), crate::json::edits()).prop_map(move |(i, e)| {
        let i = i.index(trees.len());
        let j = crate::json::apply(trees[i].clone(), &e);
        [vec![i as u8], j.to_bytes()].concat()
    });
    Target {
        name: "admin-api",
        entry: "admin_api::bodies::read (edge::parse_json into each request type, and its checks)",
        seeds: seeds.clone(),
        inputs: inputs(seeds, per_route.boxed()),
        run: Box::new(move |input| {
            let Some((&k, body)) = input.split_first() else {
                return false;
            };
            bodies::read(kinds[usize::from(k) % kinds.len()], body).is_ok()
        }),
    }
}

fn public_api() -> Target {
    let examples: Vec<J> = [
        r#"{"channel":"whatsapp","account_id":"106540352242922","to":"16505551234","text":"Your order shipped"}"#,
        r#"{"channel":"instagram","account_id":"17841400008460056","to":"1254459154682919","text":"hi"}"#,
        r#"{"channel":"whatsapp","account_id":"106540352242922","to":"16505551234","template":{"name":"order_update","language":"en_US","components":[{"type":"body","parameters":[{"type":"text","text":"1042"}]}]}}"#,
    ]
    .iter()
    .map(|s| tree(s.as_bytes()))
    .collect();
    let seeds: Vec<Vec<u8>> = examples.iter().map(J::to_bytes).collect();
    Target {
        name: "public-api",
        entry: "public_api::read_send_body",
        seeds: seeds.clone(),
        inputs: inputs(seeds, structured(examples, |j| j.to_bytes())),
        run: Box::new(|body| public_api::read_send_body(body).is_ok()),
    }
}

// --- Tokens --------------------------------------------------------------------------------

/// The media proxy's path (`/media/{token}`), with tokens sealed by the target's key.
fn media_token_target() -> Target {
    let key = MediaLinkKey::from_bytes(&[7; 32]).expect("a 32-byte key");
    let retired = MediaLinkKey::from_bytes(&[8; 32]).expect("a 32-byte key");
    let claims: Vec<J> = [
        r#"{"v":2,"t":"tn_0123456789abcdef01234567","c":"wa","a":"106540352242922","r":"1037543291543636","m":"image/jpeg","n":"photo.jpg","e":1795464000,"s":"c_0123"}"#,
        r#"{"v":2,"t":"tn_0123456789abcdef01234567","c":"ig","a":"17841400008460056","r":"https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1","e":1795464000}"#,
    ]
    .iter()
    .map(|s| tree(s.as_bytes()))
    .collect();
    let seal = {
        let key = MediaLinkKey::from_bytes(&[7; 32]).expect("a 32-byte key");
        move |j: &J| {
            let token = media_token::seal_payload(&key, j.to_bytes()).unwrap_or_default();
            format!("{}{token}", media_proxy::PATH_PREFIX).into_bytes()
        }
    };
    let seeds: Vec<Vec<u8>> = claims.iter().map(&seal).collect();
    Target {
        name: "media-token",
        entry: "media_proxy::token_of, media::token::verify",
        seeds: seeds.clone(),
        inputs: inputs(seeds, structured(claims, move |j| seal(&j))),
        run: Box::new(move |path| {
            let path = String::from_utf8_lossy(path);
            media_proxy::token_of(&path)
                .is_some_and(|token| media_token::verify(&[&key, &retired], token, NOW).is_ok())
        }),
    }
}

fn export_token() -> Target {
    let key = ExportLinkKey::from_bytes(&[9; 32]).expect("a 32-byte key");
    let claims: Vec<J> = [
        r#"{"v":1,"t":"tn_0123456789abcdef01234567","x":"ex_0123456789abcdef01234567","f":"messages.csv","e":1795464000}"#,
    ]
    .iter()
    .map(|s| tree(s.as_bytes()))
    .collect();
    let sign = {
        let key = ExportLinkKey::from_bytes(&[9; 32]).expect("a 32-byte key");
        move |j: &J| export_link::sign_payload(&key, &j.to_bytes()).into_bytes()
    };
    let seeds: Vec<Vec<u8>> = claims.iter().map(&sign).collect();
    Target {
        name: "export-token",
        entry: "export::link::verify",
        seeds: seeds.clone(),
        inputs: inputs(seeds, structured(claims, move |j| sign(&j))),
        run: Box::new(move |token| {
            export_link::verify(&[&key], &String::from_utf8_lossy(token), NOW).is_ok()
        }),
    }
}

fn access_token() -> Target {
    let key = SessionKey::from_bytes(&[10; 32]).expect("a 32-byte key");
    let claims: Vec<J> = [
        r#"{"t":"tn_0123456789abcdef01234567","u":"usr_0123456789abcdef0123","s":"abcd","e":0,"iat":1795460000,"exp":1795461300}"#,
    ]
    .iter()
    .map(|s| tree(s.as_bytes()))
    .collect();
    let sign = {
        let key = SessionKey::from_bytes(&[10; 32]).expect("a 32-byte key");
        move |j: &J| key.sign_payload(&j.to_bytes()).into_bytes()
    };
    let seeds: Vec<Vec<u8>> = claims.iter().map(&sign).collect();
    Target {
        name: "access-token",
        entry: "accounts::token::SessionKey::verify",
        seeds: seeds.clone(),
        inputs: inputs(seeds, structured(claims, move |j| sign(&j))),
        run: Box::new(move |token| {
            key.verify(&String::from_utf8_lossy(token), NOW)
                .is_ok_and(|claims| claims.tenant().is_ok() && claims.user().is_ok())
        }),
    }
}
