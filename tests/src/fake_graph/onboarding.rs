//! The fake's sign-up endpoints, in the formats Meta documents (sources cited in the Graph
//! client's onboarding module, `shared/src/graph/onboarding.rs`):
//!
//! Embedded Signup (graph.facebook.com):
//! - `GET /{version}/oauth/access_token?client_id&client_secret&code`: the fake app's
//!   credentials ([`super::FAKE_APP_ID`], [`super::FAKE_APP_SECRET`]; others: `400` code
//!   101) and a code issued by [`FakeGraph::issue_signup_code`], valid once and for 5 minutes:
//!   `{"access_token", "token_type": "bearer"}`. A used code is `400` code 100 subcode 36009
//!   "This authorization code has been used.", an expired one subcode 36007, an unknown one
//!   code 100 "Invalid verification code format.".
//! - `POST /{version}/{waba-id}/subscribed_apps` with a business token granted on the WABA:
//!   `{"success": true}`.
//! - `POST /{version}/{phone-number-id}/register` with `{"messaging_product": "whatsapp",
//!   "pin": "<6 digits>"}` and a business token whose WABA lists the number: `{"success":
//!   true}`; a PIN other than the number's existing one is `400` code 133005.
//!
//! Instagram Login (api.instagram.com, graph.instagram.com, www.instagram.com):
//! - `GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope&state`: `302` to
//!   `redirect_uri?code=…&state=…` for the account [`FakeGraph::set_instagram_login`] named
//!   (what a user signing in and allowing would get).
//! - `POST /oauth/access_token` (form `client_id`, `client_secret`, `grant_type=
//!   authorization_code`, `redirect_uri`, `code`) with the fake Instagram app
//!   ([`FAKE_IG_APP_ID`], [`FAKE_IG_APP_SECRET`]): `{"data": [{"access_token", "user_id",
//!   "permissions"}]}`; a code used, expired, unknown or issued for another redirect URI:
//!   `400 {"error_type": "OAuthException", "code": 400, "error_message": "Matching code was
//!   not found or was already used"}`.
//! - `GET /access_token?grant_type=ig_exchange_token&client_secret&access_token`: the
//!   long-lived token, `{"access_token", "token_type": "bearer", "expires_in": 5183944}`.
//! - `GET /refresh_access_token?grant_type=ig_refresh_token&access_token`: a new long-lived
//!   token (`expires_in` 5184000); [`FakeGraph::fail_instagram_refresh`] makes it `400` code
//!   190.
//! - `POST /{version}/me/subscribed_apps?subscribed_fields=…` with an Instagram token:
//!   `{"success": true}`.
//!
//! Each request's body is kept in [`super::GraphCall::body`]; [`FakeGraph::onboarding`]
//! lists what was subscribed and registered.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::ownership::decode;
use super::{
    invalid_token, is_version, json_answer, meta_error, now_secs, query_pairs, Answer, FakeGraph,
    ReadRequest, State, FAKE_APP_ID, FAKE_APP_SECRET,
};

/// The fake Instagram app (Instagram Login has its own id and secret).
pub const FAKE_IG_APP_ID: &str = "990602627938098";
pub const FAKE_IG_APP_SECRET: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// How long the fake's codes live.
pub const CODE_SECS: u64 = 300;

struct SignupCode {
    token: String,
    expires: u64,
    used: bool,
}

struct InstagramCode {
    account: String,
    permissions: String,
    redirect_uri: String,
    expires: u64,
    used: bool,
}

/// What the sign-up endpoints did, for assertions.
#[derive(Clone, Debug, Default)]
pub struct OnboardingLog {
    /// WABAs our app was subscribed to, in order.
    pub subscribed_wabas: Vec<String>,
    /// `(phone_number_id, pin)` registrations, in order.
    pub registered: Vec<(String, String)>,
    /// `(instagram account, subscribed_fields)`, in order.
    pub instagram_subscriptions: Vec<(String, String)>,
    /// Long-lived Instagram tokens refreshed (the old token each time).
    pub refreshed: Vec<String>,
}

#[derive(Default)]
pub(super) struct Onboarding {
    codes: HashMap<String, SignupCode>,
    ig_codes: HashMap<String, InstagramCode>,
    /// Short-lived Instagram token → account.
    ig_short: HashMap<String, String>,
    /// The account the next `/oauth/authorize` grants, with its permissions.
    next_login: Option<(String, String)>,
    /// Number → its two-step PIN, once set.
    pins: HashMap<String, String>,
    fail_subscribe: usize,
    fail_register: usize,
    fail_refresh: bool,
    fail_ig_subscribe: usize,
    log: OnboardingLog,
}

impl FakeGraph {
    /// A business that finished Embedded Signup with `phone` on `waba`: the token Meta will
    /// issue (valid, of the fake's app, both permissions on the WABA, which lists the
    /// number) and the code the browser got for it, valid once for [`CODE_SECS`].
    pub fn issue_signup_code(&self, token: &str, waba: &str, phone: &str) -> String {
        self.add_whatsapp_business(token, waba, phone);
        self.issue_code_for(token, now_secs() + CODE_SECS)
    }

    /// A code for `token` (registered separately) that expired already.
    pub fn issue_expired_signup_code(&self, token: &str) -> String {
        self.issue_code_for(token, now_secs().saturating_sub(1))
    }

    /// A code for `token` as it stands (register it with [`FakeGraph::add_business_token`]
    /// to shape what `debug_token` says).
    pub fn issue_code_for(&self, token: &str, expires: u64) -> String {
        issue_code(&mut self.state(), token, expires)
    }

    /// The account the next Instagram authorization grants (with `permissions`,
    /// comma-separated, as Instagram reports them).
    pub fn set_instagram_login(&self, account: &str, permissions: &str) {
        self.state().onboarding.next_login = Some((account.to_owned(), permissions.to_owned()));
    }

    /// A code for `account`, as Instagram's authorization window gives it, for
    /// `redirect_uri`.
    pub fn issue_instagram_code(
        &self,
        account: &str,
        permissions: &str,
        redirect_uri: &str,
    ) -> String {
        issue_ig_code(&mut self.state(), account, permissions, redirect_uri)
    }

    /// The next `n` subscriptions of a WABA fail with Meta's `500` transient error.
    pub fn fail_subscribe(&self, n: usize) {
        self.state().onboarding.fail_subscribe = n;
    }

    /// The next `n` registrations fail (`400` code 133005, PIN mismatch).
    pub fn fail_register(&self, n: usize) {
        self.state().onboarding.fail_register = n;
    }

    /// The next `n` Instagram webhook subscriptions fail with Meta's `500` transient error.
    pub fn fail_instagram_subscribe(&self, n: usize) {
        self.state().onboarding.fail_ig_subscribe = n;
    }

    /// From now on refreshing an Instagram token fails (`400` code 190) or works again.
    pub fn fail_instagram_refresh(&self, fail: bool) {
        self.state().onboarding.fail_refresh = fail;
    }

    /// What was subscribed, registered and refreshed.
    pub fn onboarding(&self) -> OnboardingLog {
        self.state().onboarding.log.clone()
    }
}

/// A sign-up code for `token`, valid once until `expires` (also handed out by the fake
/// sign-up window, sdk.rs).
pub(super) fn issue_code(s: &mut State, token: &str, expires: u64) -> String {
    s.seq += 1;
    let code = format!("AQDsignup{:06}", s.seq);
    s.onboarding.codes.insert(
        code.clone(),
        SignupCode {
            token: token.to_owned(),
            expires,
            used: false,
        },
    );
    code
}

impl State {
    /// What was subscribed so far (read by the subscription reads, subscriptions.rs).
    pub(super) fn onboarding_log(&self) -> &OnboardingLog {
        &self.onboarding.log
    }
}

impl FakeGraph {
    /// `account`'s webhook subscription holds `fields`, as a connect of an earlier release
    /// made it (the scheduled check's tests).
    pub fn subscribe_instagram_with(&self, account: &str, fields: &[&str]) {
        self.state()
            .onboarding
            .log
            .instagram_subscriptions
            .push((account.to_owned(), fields.join(",")));
    }
}

fn issue_ig_code(s: &mut State, account: &str, permissions: &str, redirect_uri: &str) -> String {
    s.seq += 1;
    let code = format!("AQBigcode{:06}", s.seq);
    s.onboarding.ig_codes.insert(
        code.clone(),
        InstagramCode {
            account: account.to_owned(),
            permissions: permissions.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            expires: now_secs() + CODE_SECS,
            used: false,
        },
    );
    code
}

fn form_pairs(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(&v.replace('+', " "))))
        .collect()
}

fn oauth_code_error(subcode: i64, message: &str) -> Answer {
    meta_error(400, 100, Some(subcode), "OAuthException", message)
}

fn instagram_oauth_error(message: &str) -> Answer {
    json_answer(
        400,
        &json!({"error_type": "OAuthException", "code": 400, "error_message": message}),
    )
}

/// Meta's transient server error.
fn transient() -> Answer {
    json_answer(
        500,
        &json!({"error": {"message": "An unknown error has occurred.", "type": "OAuthException",
            "code": 1, "is_transient": true, "fbtrace_id": "AfakeTraceId0123456789"}}),
    )
}

fn success() -> Answer {
    json_answer(200, &json!({"success": true}))
}

/// The sign-up answers, or None for other requests.
pub(super) fn route(s: &mut State, r: &ReadRequest<'_>, segments: &[&str]) -> Option<Answer> {
    let pairs: HashMap<String, String> = query_pairs(r.query)
        .into_iter()
        .map(|(k, v)| (k, decode(&v)))
        .collect();
    Some(match (r.method, segments) {
        ("GET", [v, "oauth", "access_token"]) if is_version(v) => exchange_signup_code(s, &pairs),
        ("POST", [v, "me", "subscribed_apps"]) if is_version(v) => {
            let Some((account, _)) = r.bearer.and_then(|b| s.instagram_tokens.get(b)).cloned()
            else {
                return Some(invalid_token());
            };
            if s.onboarding.fail_ig_subscribe > 0 {
                s.onboarding.fail_ig_subscribe -= 1;
                return Some(transient());
            }
            let fields = pairs.get("subscribed_fields").cloned().unwrap_or_default();
            if fields.is_empty() {
                return Some(meta_error(
                    400,
                    100,
                    None,
                    "OAuthException",
                    "(#100) The parameter subscribed_fields is required.",
                ));
            }
            s.onboarding
                .log
                .instagram_subscriptions
                .push((account, fields));
            success()
        }
        ("POST", [v, waba, "subscribed_apps"]) if is_version(v) => subscribe(s, waba, r.bearer),
        ("POST", [v, phone, "register"]) if is_version(v) => register(s, phone, r.bearer, r.body),
        ("GET", ["oauth", "authorize"]) => authorize(s, &pairs),
        ("POST", ["oauth", "access_token"]) => exchange_instagram_code(s, r.body),
        ("GET", ["access_token"]) => long_lived(s, &pairs),
        ("GET", ["refresh_access_token"]) => refresh(s, &pairs),
        _ => return None,
    })
}

fn exchange_signup_code(s: &mut State, pairs: &HashMap<String, String>) -> Answer {
    if pairs.get("client_id").map(String::as_str) != Some(FAKE_APP_ID)
        || pairs.get("client_secret").map(String::as_str) != Some(FAKE_APP_SECRET)
    {
        return meta_error(
            400,
            101,
            None,
            "OAuthException",
            "Error validating application. Invalid application ID.",
        );
    }
    let code = pairs.get("code").cloned().unwrap_or_default();
    let Some(entry) = s.onboarding.codes.get_mut(&code) else {
        return meta_error(
            400,
            100,
            None,
            "OAuthException",
            "Invalid verification code format.",
        );
    };
    if entry.used {
        return oauth_code_error(36009, "This authorization code has been used.");
    }
    if entry.expires <= now_secs() {
        return oauth_code_error(36007, "This authorization code has expired.");
    }
    entry.used = true;
    json_answer(
        200,
        &json!({"access_token": entry.token, "token_type": "bearer"}),
    )
}

fn subscribe(s: &mut State, waba: &str, bearer: Option<&str>) -> Answer {
    let granted = bearer
        .and_then(|b| s.ownership.token(b))
        .is_some_and(|t| t.is_valid && t.management.iter().any(|w| w == waba));
    if !granted {
        return invalid_token();
    }
    if s.onboarding.fail_subscribe > 0 {
        s.onboarding.fail_subscribe -= 1;
        return transient();
    }
    s.onboarding.log.subscribed_wabas.push(waba.to_owned());
    success()
}

fn register(s: &mut State, phone: &str, bearer: Option<&str>, body: &[u8]) -> Answer {
    let Some(token) = bearer.and_then(|b| s.ownership.token(b)).cloned() else {
        return invalid_token();
    };
    let listed = token
        .management
        .iter()
        .any(|w| s.ownership.numbers(w).iter().any(|n| n == phone));
    if !listed {
        return super::no_such_object(phone);
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let pin = body["pin"].as_str().unwrap_or_default().to_owned();
    if body["messaging_product"] != "whatsapp"
        || pin.len() != 6
        || !pin.bytes().all(|b| b.is_ascii_digit())
    {
        return meta_error(400, 100, None, "OAuthException", "(#100) Invalid parameter");
    }
    let mismatch = s
        .onboarding
        .pins
        .get(phone)
        .is_some_and(|existing| *existing != pin);
    if mismatch || s.onboarding.fail_register > 0 {
        s.onboarding.fail_register = s.onboarding.fail_register.saturating_sub(1);
        return meta_error(
            400,
            133005,
            None,
            "OAuthException",
            "(#133005) Two step verification PIN Mismatch",
        );
    }
    s.onboarding.pins.insert(phone.to_owned(), pin.clone());
    s.onboarding.log.registered.push((phone.to_owned(), pin));
    success()
}

fn authorize(s: &mut State, pairs: &HashMap<String, String>) -> Answer {
    let (Some(redirect), Some((account, permissions))) =
        (pairs.get("redirect_uri"), s.onboarding.next_login.clone())
    else {
        return instagram_oauth_error("Invalid redirect_uri or no user signed in");
    };
    let code = issue_ig_code(s, &account, &permissions, redirect);
    let state = pairs.get("state").cloned().unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    hyper::Response::builder()
        .status(302)
        .header(
            "location",
            format!("{redirect}{sep}code={code}&state={}#_", encode(&state)),
        )
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .expect("valid response")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn exchange_instagram_code(s: &mut State, body: &[u8]) -> Answer {
    let form = form_pairs(body);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("client_id") != FAKE_IG_APP_ID || field("client_secret") != FAKE_IG_APP_SECRET {
        return instagram_oauth_error("Invalid platform app");
    }
    if field("grant_type") != "authorization_code" {
        return instagram_oauth_error("Invalid grant_type");
    }
    let now = now_secs();
    let Some(entry) = s
        .onboarding
        .ig_codes
        .get_mut(field("code"))
        .filter(|c| !c.used && c.expires > now && c.redirect_uri == field("redirect_uri"))
    else {
        return instagram_oauth_error("Matching code was not found or was already used");
    };
    entry.used = true;
    let (account, permissions) = (entry.account.clone(), entry.permissions.clone());
    s.seq += 1;
    let token = format!("IGQshort{:06}", s.seq);
    s.onboarding.ig_short.insert(token.clone(), account.clone());
    json_answer(
        200,
        &json!({"data": [{"access_token": token, "user_id": account, "permissions": permissions}]}),
    )
}

fn long_lived(s: &mut State, pairs: &HashMap<String, String>) -> Answer {
    if pairs.get("grant_type").map(String::as_str) != Some("ig_exchange_token")
        || pairs.get("client_secret").map(String::as_str) != Some(FAKE_IG_APP_SECRET)
    {
        return meta_error(400, 100, None, "OAuthException", "(#100) Invalid parameter");
    }
    let short = pairs.get("access_token").cloned().unwrap_or_default();
    let Some(account) = s.onboarding.ig_short.remove(&short) else {
        return invalid_token();
    };
    s.seq += 1;
    let token = format!("IGAAlong{:06}", s.seq);
    s.instagram_tokens.insert(token.clone(), (account, None));
    json_answer(
        200,
        &json!({"access_token": token, "token_type": "bearer", "expires_in": 5183944}),
    )
}

fn refresh(s: &mut State, pairs: &HashMap<String, String>) -> Answer {
    if pairs.get("grant_type").map(String::as_str) != Some("ig_refresh_token") {
        return meta_error(400, 100, None, "OAuthException", "(#100) Invalid parameter");
    }
    let old = pairs.get("access_token").cloned().unwrap_or_default();
    let Some(account) = s.instagram_tokens.get(&old).cloned() else {
        return invalid_token();
    };
    if s.onboarding.fail_refresh {
        return meta_error(
            400,
            190,
            None,
            "OAuthException",
            "Error validating access token: The session has been invalidated.",
        );
    }
    s.seq += 1;
    let token = format!("IGAArefreshed{:06}", s.seq);
    s.instagram_tokens.insert(token.clone(), account);
    s.onboarding.log.refreshed.push(old);
    json_answer(
        200,
        &json!({"access_token": token, "token_type": "bearer", "expires_in": 5184000}),
    )
}
