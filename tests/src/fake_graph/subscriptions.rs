//! The fake's reads of webhook subscriptions, in the formats Meta documents (sources cited
//! in `shared/src/graph/subscriptions.rs`):
//!
//! - `GET /{version}/{waba-id}/subscribed_apps` with a business token granted on the WABA:
//!   `{"data": [{"whatsapp_business_api_data": {"id": <the fake app>, "name", "link"}}]}`
//!   while our app is subscribed (a `POST` since the last [`FakeGraph::drop_waba_subscription`]),
//!   else `{"data": []}`.
//! - `GET /{version}/me/subscribed_apps` with an Instagram token: `{"data":
//!   [{"subscribed_fields": [...]}]}` with the fields of the account's last `POST` (none after
//!   [`FakeGraph::drop_instagram_subscription`]), else `{"data": []}`.
//! - Handover Protocol: `POST /{version}/{me-or-page-id}/take_thread_control` with
//!   `{"recipient": {"id"}, "metadata"}` and an Instagram (or Page) token: `{"success": true}`;
//!   without a recipient `400` code 100. The request is kept in the calls log.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;

use super::{invalid_token, is_version, json_answer, Answer, FakeGraph, ReadRequest, State};

/// How many subscriptions of each WABA / Instagram account were dropped: an account is
/// subscribed while the onboarding log holds more `POST`s for it than that.
#[derive(Default)]
pub(super) struct Dropped {
    wabas: HashMap<String, usize>,
    instagram: HashMap<String, usize>,
}

impl FakeGraph {
    /// Meta no longer has our app subscribed to `waba` (the business removed it).
    pub fn drop_waba_subscription(&self, waba: &str) {
        unsubscribed(&mut self.state(), waba);
    }

    /// Whether our app is subscribed to `waba` now (a `POST` since its last drop or `DELETE`).
    pub fn waba_subscribed(&self, waba: &str) -> bool {
        waba_subscribed(&self.state(), waba)
    }

    /// The next `DELETE …/subscribed_apps` waits, before it is answered, until the returned
    /// hold is released: what is done meanwhile happens between a caller's decision to
    /// unsubscribe and Meta's answer.
    pub fn hold_next_unsubscribe(&self) -> Arc<HeldCall> {
        let hold = Arc::new(HeldCall::default());
        self.state().unsubscribe_hold = Some(hold.clone());
        hold
    }

    /// The Instagram account's webhook subscription is gone.
    pub fn drop_instagram_subscription(&self, account: &str) {
        let mut s = self.state();
        let n = s
            .onboarding_log()
            .instagram_subscriptions
            .iter()
            .filter(|(a, _)| a == account)
            .count();
        s.dropped_subscriptions
            .instagram
            .insert(account.to_owned(), n);
    }
}

fn count(list: &[String], item: &str) -> usize {
    list.iter().filter(|w| *w == item).count()
}

/// Our app's subscription to `waba` is gone (dropped by Meta, or deleted by us).
pub(super) fn unsubscribed(s: &mut State, waba: &str) {
    let n = count(&s.onboarding_log().subscribed_wabas, waba);
    s.dropped_subscriptions.wabas.insert(waba.to_owned(), n);
}

fn waba_subscribed(s: &State, waba: &str) -> bool {
    let posts = count(&s.onboarding_log().subscribed_wabas, waba);
    posts
        > s.dropped_subscriptions
            .wabas
            .get(waba)
            .copied()
            .unwrap_or(0)
}

/// A request held before it is answered (see [`FakeGraph::hold_next_unsubscribe`]).
#[derive(Default)]
pub struct HeldCall {
    held: Notify,
    release: Notify,
}

impl HeldCall {
    /// Resolves once the request has arrived and is held.
    pub async fn arrived(&self) {
        self.held.notified().await
    }

    /// Lets the held request be answered.
    pub fn release(&self) {
        self.release.notify_one();
    }

    /// Called by the fake with the request: waits for [`Self::release`].
    pub(super) async fn hold(&self) {
        self.held.notify_one();
        self.release.notified().await;
    }
}

/// The subscription reads, or None for other requests.
pub(super) fn route(s: &mut State, r: &ReadRequest<'_>, segments: &[&str]) -> Option<Answer> {
    Some(match (r.method, segments) {
        ("GET", [v, "me", "subscribed_apps"]) if is_version(v) => {
            let Some((account, _)) = r.bearer.and_then(|b| s.instagram_tokens.get(b)).cloned()
            else {
                return Some(invalid_token());
            };
            let posts: Vec<&String> = s
                .onboarding_log()
                .instagram_subscriptions
                .iter()
                .filter(|(a, _)| *a == account)
                .map(|(_, f)| f)
                .collect();
            let dropped = s
                .dropped_subscriptions
                .instagram
                .get(&account)
                .copied()
                .unwrap_or(0);
            match posts.last() {
                Some(fields) if posts.len() > dropped => json_answer(
                    200,
                    &json!({"data": [{"subscribed_fields": fields.split(',').collect::<Vec<_>>()}]}),
                ),
                _ => json_answer(200, &json!({"data": []})),
            }
        }
        ("POST", [v, _owner, "take_thread_control"]) if is_version(v) => {
            if !r
                .bearer
                .is_some_and(|b| s.instagram_tokens.contains_key(b) || s.tokens.contains_key(b))
            {
                return Some(invalid_token());
            }
            let body: serde_json::Value = serde_json::from_slice(r.body).unwrap_or_default();
            if body["recipient"]["id"].as_str().is_none() {
                return Some(super::meta_error(
                    400,
                    100,
                    None,
                    "OAuthException",
                    "(#100) The parameter recipient is required",
                ));
            }
            json_answer(200, &json!({"success": true}))
        }
        ("GET", [v, waba, "subscribed_apps"]) if is_version(v) => {
            let granted = r
                .bearer
                .and_then(|b| s.ownership.token(b))
                .is_some_and(|t| t.is_valid && t.management.iter().any(|w| w == waba));
            if !granted {
                return Some(invalid_token());
            }
            if waba_subscribed(s, waba) {
                let app = super::FAKE_APP_ID;
                json_answer(
                    200,
                    &json!({"data": [{"whatsapp_business_api_data": {"id": app,
                        "name": "Wappline", "link": format!("https://www.facebook.com/games/?app_id={app}")}}]}),
                )
            } else {
                json_answer(200, &json!({"data": []}))
            }
        }
        _ => return None,
    })
}
