//! Tenant isolation as a property (issue 6): random interleavings of operations by three
//! tenants' users (and by the platform admin on their behalf) never show a tenant anything
//! of another's. The operations connect and disconnect WhatsApp numbers, create and revoke
//! API keys, invite users, change retention and plans, request and download exports, and
//! relay customers' messages to a tenant's numbers (signed Meta webhooks).
//!
//! Every response a tenant's principal sees, and every export file it downloads, is searched
//! for every identifier the other tenants own (tenant id and name, user ids and emails,
//! invitations, numbers, WABA ids, key ids and names, export ids, customers' numbers, names,
//! messages); no secret (channel token, API key, invitation token) is ever shown again.
//! Another tenant's paths are the generic 404, exactly as for a tenant that does not exist;
//! another tenant's ids under one's own path are a 404 that reads exactly like one for an id
//! that does not exist; and every read (settings and channels, API keys, users, audit log,
//! usage and plan, exports, export files) matches a model of what that tenant did.
//!
//! The local server's ports are fenced (decision 0037): every tenant route of the admin API,
//! every API send, worker job and export runs acting for its tenant, and a key, data key or
//! export file of another tenant is refused, so a flow that reached one would fail the case.
//!
//! One local server serves every case: the model carries over from case to case (and
//! through shrinking), as the server's state does. Users sign in once, up front (bcrypt).
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` change the number of cases and the seed. The same
//! property through the web console's routes is `console::isolation`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e_tests::harness::{Harness, ADMIN};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::queue::platform;

const PW: &str = "correct horse battery staple";
const TENANTS: usize = 3;
const NAMES: [&str; TENANTS] = [
    "Isolation Alpha Bakery",
    "Isolation Bravo Garage",
    "Isolation Charlie Florist",
];
const SLUGS: [&str; TENANTS] = ["alpha", "bravo", "charlie"];
const ROLES: [&str; 3] = ["admin", "agent", "viewer"];
const FILES: [&str; 5] = [
    "export.json",
    "settings.json",
    "contacts.csv",
    "conversations.csv",
    "messages.csv",
];

/// Who makes a tenant's request: one of its two signed-in users, or the platform admin.
#[derive(Clone, Copy, Debug)]
enum Actor {
    Owner,
    Admin,
    Platform,
}

#[derive(Clone, Copy, Debug)]
enum Read {
    Settings,
    ApiKeys,
    Users,
    Audit,
    Usage,
    Exports,
}

const READS: [Read; 6] = [
    Read::Settings,
    Read::ApiKeys,
    Read::Users,
    Read::Audit,
    Read::Usage,
    Read::Exports,
];

/// One step of a case. `t` is the acting tenant, `other` (1 or 2) picks the tenant
/// `(t + other) % 3` a cross attempt aims at, `pick` an existing resource by position.
#[derive(Clone, Debug)]
enum Op {
    Connect {
        t: usize,
        by: Actor,
        salt: u16,
    },
    Disconnect {
        t: usize,
        by: Actor,
        pick: usize,
    },
    CreateKey {
        t: usize,
        by: Actor,
        salt: u16,
    },
    RevokeKey {
        t: usize,
        by: Actor,
        pick: usize,
    },
    Invite {
        t: usize,
        by: Actor,
        role: usize,
        salt: u16,
    },
    Retention {
        t: usize,
        by: Actor,
        days: u32,
    },
    SetPlan {
        t: usize,
        outbound: Option<u64>,
    },
    ClearPlan {
        t: usize,
    },
    Export {
        t: usize,
        by: Actor,
    },
    /// A customer writes to one of tenant t's numbers (a signed Meta webhook).
    Inbound {
        t: usize,
        pick: usize,
        salt: u16,
    },
    Download {
        t: usize,
        pick: usize,
        file: usize,
    },
    Read {
        t: usize,
        by: Actor,
        what: Read,
    },
    /// Tenant t's user against tenant j's own paths.
    CrossPath {
        t: usize,
        by: Actor,
        other: usize,
        what: usize,
    },
    /// Tenant j's ids under tenant t's own path.
    CrossId {
        t: usize,
        by: Actor,
        other: usize,
        what: usize,
    },
    /// Tenant t connects a number tenant j has connected.
    ClaimForeign {
        t: usize,
        by: Actor,
        other: usize,
        pick: usize,
    },
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        Just(Actor::Owner),
        Just(Actor::Admin),
        Just(Actor::Platform)
    ]
}

fn user() -> impl Strategy<Value = Actor> {
    prop_oneof![Just(Actor::Owner), Just(Actor::Admin)]
}

fn op() -> impl Strategy<Value = Op> {
    let t = || 0..TENANTS;
    let other = || 1..TENANTS;
    prop_oneof![
        3 => (t(), actor(), any::<u16>()).prop_map(|(t, by, salt)| Op::Connect { t, by, salt }),
        1 => (t(), actor(), any::<usize>()).prop_map(|(t, by, pick)| Op::Disconnect { t, by, pick }),
        3 => (t(), actor(), any::<u16>()).prop_map(|(t, by, salt)| Op::CreateKey { t, by, salt }),
        2 => (t(), actor(), any::<usize>()).prop_map(|(t, by, pick)| Op::RevokeKey { t, by, pick }),
        2 => (t(), actor(), 0..ROLES.len(), any::<u16>())
            .prop_map(|(t, by, role, salt)| Op::Invite { t, by, role, salt }),
        1 => (t(), actor(), 1..=3650u32).prop_map(|(t, by, days)| Op::Retention { t, by, days }),
        1 => (t(), proptest::option::of(0..100_000u64))
            .prop_map(|(t, outbound)| Op::SetPlan { t, outbound }),
        1 => t().prop_map(|t| Op::ClearPlan { t }),
        2 => (t(), actor()).prop_map(|(t, by)| Op::Export { t, by }),
        2 => (t(), any::<usize>(), any::<u16>())
            .prop_map(|(t, pick, salt)| Op::Inbound { t, pick, salt }),
        3 => (t(), any::<usize>(), 0..FILES.len())
            .prop_map(|(t, pick, file)| Op::Download { t, pick, file }),
        4 => (t(), user(), proptest::sample::select(READS.to_vec()))
            .prop_map(|(t, by, what)| Op::Read { t, by, what }),
        4 => (t(), user(), other(), any::<usize>())
            .prop_map(|(t, by, other, what)| Op::CrossPath { t, by, other, what }),
        3 => (t(), user(), other(), any::<usize>())
            .prop_map(|(t, by, other, what)| Op::CrossId { t, by, other, what }),
        1 => (t(), user(), other(), any::<usize>())
            .prop_map(|(t, by, other, pick)| Op::ClaimForeign { t, by, other, pick }),
    ]
}

/// What one tenant has, as far as the test knows.
struct Tenant {
    id: String,
    name: String,
    slug: &'static str,
    owner_token: String,
    admin_token: String,
    /// User id → email.
    users: BTreeMap<String, String>,
    invited: BTreeSet<String>,
    /// Connected WhatsApp numbers → WABA id; `channels_ever` keeps disconnected ones.
    channels: BTreeMap<String, String>,
    channels_ever: BTreeMap<String, String>,
    /// Numbers this tenant tried to claim and was refused (its audit log names them: the
    /// tenant typed them itself, so they tell it nothing).
    claimed: BTreeSet<String>,
    /// Key id → revoked.
    keys: BTreeMap<String, bool>,
    key_names: BTreeSet<String>,
    /// Export id → the message texts the tenant had when it was requested.
    exports: BTreeMap<String, Vec<String>>,
    /// Customers who wrote to the tenant: (what, value) of their numbers, names, texts and
    /// message ids.
    customers: Vec<(&'static str, String)>,
    /// Message texts relayed to the tenant, and how many messages arrived.
    texts: Vec<String>,
    inbound: u64,
    retention: u32,
    /// `None`: the default plan; else the monthly outbound quota set (`None`: unlimited).
    plan: Option<Option<u64>>,
}

impl Tenant {
    /// Every identifier that is this tenant's and no one else's, with what it is.
    fn owned(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("tenant id", self.id.as_str()), ("tenant name", &self.name)];
        for (id, email) in &self.users {
            out.push(("user id", id));
            out.push(("user email", email));
        }
        out.extend(self.invited.iter().map(|e| ("invited email", e.as_str())));
        for (phone, waba) in &self.channels_ever {
            out.push(("WhatsApp number", phone));
            out.push(("WABA id", waba));
        }
        out.extend(self.keys.keys().map(|k| ("API key id", k.as_str())));
        out.extend(self.key_names.iter().map(|k| ("API key name", k.as_str())));
        out.extend(self.exports.keys().map(|e| ("export id", e.as_str())));
        out.extend(self.customers.iter().map(|(w, v)| (*w, v.as_str())));
        out
    }

    fn token(&self, by: Actor) -> &str {
        match by {
            Actor::Owner => &self.owner_token,
            Actor::Admin => &self.admin_token,
            Actor::Platform => ADMIN,
        }
    }

    fn user_ids(&self) -> BTreeSet<String> {
        self.users.keys().cloned().collect()
    }
}

struct Model {
    tenants: Vec<Tenant>,
    /// Channel access tokens, API keys and invitation tokens: never in any later response.
    secrets: Vec<String>,
    /// Makes every generated number, email and name unique across cases and replays.
    seq: u64,
    ops: u64,
    /// Cross-tenant attempts made, and export files checked that held messages.
    cross: u64,
    files_with_messages: u64,
}

impl Model {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
}

async fn call(
    h: &Harness,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Reply, String> {
    let mut req = h
        .http
        .request(method.parse().unwrap(), format!("{}{path}", h.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, body, text })
}

/// The identifiers of tenants other than `viewer` that `text` holds (ignoring those the
/// request itself named: echoing the caller's own input tells them nothing), and any secret.
fn leaks(m: &Model, viewer: usize, request: &str, text: &str) -> Vec<String> {
    let mut out = vec![];
    for (j, other) in m.tenants.iter().enumerate() {
        if j == viewer {
            continue;
        }
        for (what, id) in other.owned() {
            let typed_by_viewer = m.tenants[viewer].claimed.contains(id);
            if text.contains(id) && !request.contains(id) && !typed_by_viewer {
                out.push(format!("tenant {j} ({})'s {what} {id}", other.name));
            }
        }
    }
    for s in &m.secrets {
        if text.contains(s.as_str()) {
            out.push(format!("the secret {s}"));
        }
    }
    out
}

/// A request tenant `t`'s principal makes; fails if the answer shows anything of another
/// tenant's.
async fn as_tenant(
    h: &Harness,
    m: &Model,
    t: usize,
    by: Actor,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Reply, String> {
    let r = call(h, Some(m.tenants[t].token(by)), method, path, body.as_ref()).await?;
    let request = format!("{path} {}", body.unwrap_or(Value::Null));
    let found = leaks(m, t, &request, &r.text);
    if !found.is_empty() {
        return Err(format!(
            "{method} {path} as tenant {t}'s {by:?} ({}) leaked {}: {}",
            r.status,
            found.join(", "),
            r.text
        ));
    }
    Ok(r)
}

fn expect(r: &Reply, status: StatusCode, what: &str) -> Result<(), String> {
    if r.status == status {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {status}, got {} {}",
            r.status, r.text
        ))
    }
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, the model says {want:?}"))
    }
}

/// An id of the same shape (prefix kept, the rest reversed) that exists nowhere.
fn fake_of(id: &str) -> String {
    let (prefix, rest) = match id.rfind('_') {
        Some(i) => id.split_at(i + 1),
        None => ("", id),
    };
    let mut rest: String = rest.chars().rev().collect();
    if rest == id[prefix.len()..] {
        // A palindrome: change one character within its class.
        let last = rest.pop().unwrap();
        rest.push(if last == '1' { '2' } else { '1' });
    }
    format!("{prefix}{rest}")
}

fn generic_404() -> Value {
    json!({"error": {"code": "not_found", "message": "tenant not found"}})
}

/// Reads one thing as tenant `t`'s user and checks it against the model.
async fn read(h: &Harness, m: &Model, t: usize, by: Actor, what: Read) -> Result<(), String> {
    let me = &m.tenants[t];
    let base = format!("/admin/tenants/{}", me.id);
    match what {
        Read::Settings => {
            let r = as_tenant(h, m, t, by, "GET", &base, None).await?;
            expect(&r, StatusCode::OK, "settings")?;
            check_settings(me, &r.body)
        }
        Read::ApiKeys => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/api-keys"), None).await?;
            expect(&r, StatusCode::OK, "api keys")?;
            let got: BTreeMap<String, bool> = r.body["api_keys"]
                .as_array()
                .ok_or_else(|| format!("api keys: {}", r.text))?
                .iter()
                .map(|k| {
                    (
                        k["id"].as_str().unwrap_or_default().to_owned(),
                        k["revoked"].as_bool().unwrap_or_default(),
                    )
                })
                .collect();
            same("api keys (id → revoked)", &got, &me.keys)
        }
        Read::Users => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/users"), None).await?;
            expect(&r, StatusCode::OK, "users")?;
            let got: BTreeMap<String, String> = r.body["users"]
                .as_array()
                .ok_or_else(|| format!("users: {}", r.text))?
                .iter()
                .map(|u| {
                    (
                        u["id"].as_str().unwrap_or_default().to_owned(),
                        u["email"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            same("users (id → email)", &got, &me.users)
        }
        Read::Audit => check_audit(h, m, t, by).await,
        Read::Usage => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/usage"), None).await?;
            expect(&r, StatusCode::OK, "usage")?;
            same(
                "usage inbound whatsapp",
                r.body["inbound"]["whatsapp"].as_u64(),
                Some(me.inbound),
            )?;
            match me.plan {
                None => same("usage default_plan", &r.body["default_plan"], &json!(true)),
                Some(outbound) => {
                    same("usage default_plan", &r.body["default_plan"], &json!(false))?;
                    same(
                        "usage plan",
                        &r.body["plan"],
                        &json!({"monthly_outbound": outbound, "monthly_inbound": null}),
                    )
                }
            }
        }
        Read::Exports => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/exports"), None).await?;
            expect(&r, StatusCode::OK, "exports")?;
            let got: BTreeSet<String> = r.body["exports"]
                .as_array()
                .ok_or_else(|| format!("exports: {}", r.text))?
                .iter()
                .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            same("export ids", &got, &me.exports.keys().cloned().collect())
        }
    }
}

fn check_settings(me: &Tenant, body: &Value) -> Result<(), String> {
    same("settings id", body["id"].as_str(), Some(me.id.as_str()))?;
    same(
        "settings name",
        body["name"].as_str(),
        Some(me.name.as_str()),
    )?;
    same(
        "settings retention_days",
        body["retention_days"].as_u64(),
        Some(u64::from(me.retention)),
    )?;
    let got: BTreeMap<String, String> = body["channels"]
        .as_array()
        .ok_or_else(|| format!("settings without channels: {body}"))?
        .iter()
        .map(|c| {
            (
                format!(
                    "{}:{}",
                    c["kind"].as_str().unwrap_or("?"),
                    c["id"].as_str().unwrap_or("?")
                ),
                c["details"]["waba_id"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = me
        .channels
        .iter()
        .map(|(p, w)| (format!("whatsapp:{p}"), w.clone()))
        .collect();
    same("settings channels (kind:id → waba)", &got, &want)
}

/// Every page of the audit log: actors and every id in the details are the tenant's own,
/// and the keys created and channels connected are exactly the model's.
async fn check_audit(h: &Harness, m: &Model, t: usize, by: Actor) -> Result<(), String> {
    let me = &m.tenants[t];
    let mut entries = vec![];
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/admin/tenants/{}/audit?limit=200", me.id);
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let r = as_tenant(h, m, t, by, "GET", &path, None).await?;
        expect(&r, StatusCode::OK, "audit")?;
        entries.extend(r.body["entries"].as_array().cloned().unwrap_or_default());
        match r.body["next"].as_str() {
            Some(n) => before = Some(n.to_owned()),
            None => break,
        }
    }
    let users = me.user_ids();
    let mut created = BTreeSet::new();
    let mut connected = BTreeSet::new();
    for e in &entries {
        let actor = e["actor"].as_str().unwrap_or_default();
        let ours = actor == "platform_admin"
            || actor == "system"
            || actor.starts_with("system:")
            || actor
                .strip_prefix("user:")
                .is_some_and(|u| users.contains(u));
        if !ours {
            return Err(format!("audit entry by someone not of tenant {t}: {e}"));
        }
        let detail = |k: &str| e["details"][k].as_str().map(str::to_owned);
        if let Some(k) = detail("key_id") {
            if !me.keys.contains_key(&k) {
                return Err(format!("audit names a key not of tenant {t}: {e}"));
            }
            if e["action"] == "api_key_created" {
                created.insert(k);
            }
        }
        if let Some(c) = detail("channel") {
            let refused_claim = e["action"] == "channel_connect_refused" && me.claimed.contains(&c);
            if !me.channels_ever.contains_key(&c) && !refused_claim {
                return Err(format!("audit names a channel not of tenant {t}: {e}"));
            }
            if e["action"] == "channel_connected" {
                connected.insert(c);
            }
        }
        if let Some(x) = detail("export_id") {
            if !me.exports.contains_key(&x) {
                return Err(format!("audit names an export not of tenant {t}: {e}"));
            }
        }
        if let Some(u) = detail("user_id") {
            if !users.contains(&u) {
                return Err(format!("audit names a user not of tenant {t}: {e}"));
            }
        }
    }
    same(
        "audit: keys created",
        &created,
        &me.keys.keys().cloned().collect(),
    )?;
    same(
        "audit: channels connected",
        &connected,
        &me.channels_ever.keys().cloned().collect(),
    )
}

/// Everything tenant `t` can read matches the model.
async fn verify_tenant(h: &Harness, m: &Model, t: usize) -> Result<(), String> {
    for what in READS {
        read(h, m, t, Actor::Owner, what)
            .await
            .map_err(|e| format!("tenant {t} {what:?}: {e}"))?;
    }
    Ok(())
}

fn pick<T: Clone>(items: impl IntoIterator<Item = T>, n: usize) -> Option<T> {
    let v: Vec<T> = items.into_iter().collect();
    if v.is_empty() {
        None
    } else {
        Some(v[n % v.len()].clone())
    }
}

async fn wait_completed(h: &Harness, m: &Model, t: usize, id: &str) -> Result<(), String> {
    let path = format!("/admin/tenants/{}/exports/{id}", m.tenants[t].id);
    let started = Instant::now();
    loop {
        let r = as_tenant(h, m, t, Actor::Owner, "GET", &path, None).await?;
        expect(&r, StatusCode::OK, "export")?;
        if r.body["state"] == "completed" {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("export {id} not completed: {}", r.text));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn step(h: &Harness, m: &mut Model, op: &Op) -> Result<(), String> {
    m.ops += 1;
    match *op {
        Op::Connect { t, by, salt } => {
            let n = m.next();
            let phone = format!("7{n:08}{salt:05}1");
            let waba = format!("8{n:08}{salt:05}3");
            let secret = format!("EAAisolation{n}x{salt}secret");
            let path = format!("/admin/tenants/{}/channels/whatsapp", m.tenants[t].id);
            let body = json!({"phone_number_id": phone, "waba_id": waba, "access_token": secret});
            h.graph.add_whatsapp_business(&secret, &waba, &phone);
            m.secrets.push(secret);
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::CREATED, "connect")?;
            same("connected id", r.body["id"].as_str(), Some(phone.as_str()))?;
            let me = &mut m.tenants[t];
            me.channels.insert(phone.clone(), waba.clone());
            me.channels_ever.insert(phone, waba);
        }
        Op::Disconnect { t, by, pick: p } => {
            let Some(phone) = pick(m.tenants[t].channels.keys().cloned(), p) else {
                return Ok(());
            };
            let path = format!(
                "/admin/tenants/{}/channels/whatsapp/{phone}",
                m.tenants[t].id
            );
            let r = as_tenant(h, m, t, by, "DELETE", &path, None).await?;
            expect(&r, StatusCode::NO_CONTENT, "disconnect")?;
            m.tenants[t].channels.remove(&phone);
        }
        Op::CreateKey { t, by, salt } => {
            let n = m.next();
            let name = format!("{} key {n}x{salt}", m.tenants[t].slug);
            // The name is the tenant's from here on (it is in the request, so no false leak).
            m.tenants[t].key_names.insert(name.clone());
            let path = format!("/admin/tenants/{}/api-keys", m.tenants[t].id);
            let r = as_tenant(h, m, t, by, "POST", &path, Some(json!({"name": name}))).await?;
            expect(&r, StatusCode::CREATED, "create key")?;
            let id = r.body["id"].as_str().ok_or("key without id")?.to_owned();
            let key = r.body["key"]
                .as_str()
                .ok_or("key without secret")?
                .to_owned();
            m.tenants[t].keys.insert(id, false);
            m.secrets.push(key);
        }
        Op::RevokeKey { t, by, pick: p } => {
            let Some(id) = pick(m.tenants[t].keys.keys().cloned(), p) else {
                return Ok(());
            };
            let path = format!("/admin/tenants/{}/api-keys/{id}", m.tenants[t].id);
            let r = as_tenant(h, m, t, by, "DELETE", &path, None).await?;
            expect(&r, StatusCode::NO_CONTENT, "revoke key")?;
            m.tenants[t].keys.insert(id, true);
        }
        Op::Invite { t, by, role, salt } => {
            let n = m.next();
            let email = format!("invitee{n}x{salt}@{}.isolation.test", m.tenants[t].slug);
            m.tenants[t].invited.insert(email.clone());
            let path = format!("/admin/tenants/{}/invitations", m.tenants[t].id);
            let body = json!({"email": email, "role": ROLES[role]});
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::CREATED, "invite")?;
            same(
                "invited email",
                r.body["email"].as_str(),
                Some(email.as_str()),
            )?;
            let token = r.body["token"].as_str().ok_or("invitation without token")?;
            m.secrets.push(token.to_owned());
        }
        Op::Retention { t, by, days } => {
            let path = format!("/admin/tenants/{}/settings", m.tenants[t].id);
            let body = json!({"retention_days": days});
            let r = as_tenant(h, m, t, by, "PATCH", &path, Some(body)).await?;
            expect(&r, StatusCode::OK, "retention")?;
            m.tenants[t].retention = days;
            check_settings(&m.tenants[t], &r.body)?;
        }
        Op::SetPlan { t, outbound } => {
            let path = format!("/admin/tenants/{}/plan", m.tenants[t].id);
            let body = json!({"monthly_outbound": outbound, "monthly_inbound": null});
            let r = as_tenant(h, m, t, Actor::Platform, "PUT", &path, Some(body)).await?;
            expect(&r, StatusCode::OK, "set plan")?;
            m.tenants[t].plan = Some(outbound);
        }
        Op::ClearPlan { t } => {
            let path = format!("/admin/tenants/{}/plan", m.tenants[t].id);
            let r = as_tenant(h, m, t, Actor::Platform, "DELETE", &path, None).await?;
            expect(&r, StatusCode::OK, "clear plan")?;
            m.tenants[t].plan = None;
        }
        Op::Export { t, by } => {
            let path = format!("/admin/tenants/{}/exports", m.tenants[t].id);
            let body = json!({"scope": "tenant"});
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::ACCEPTED, "export")?;
            let id = r.body["id"].as_str().ok_or("export without id")?;
            let texts = m.tenants[t].texts.clone();
            m.tenants[t].exports.insert(id.to_owned(), texts);
        }
        Op::Inbound { t, pick: p, salt } => {
            let Some((phone, waba)) = pick(m.tenants[t].channels.clone(), p) else {
                return Ok(());
            };
            let n = m.next();
            let slug = m.tenants[t].slug;
            let customer = format!("1555{n:07}");
            let name = format!("Customer {slug} {n}x{salt}");
            let text = format!("isolation {slug} message {n}x{salt}");
            let wamid = format!("wamid.ISO{n}X{salt}");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let payload = json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone},
                    "contacts": [{"profile": {"name": name}, "wa_id": customer}],
                    "messages": [{"from": customer, "id": wamid, "timestamp": now.to_string(),
                        "type": "text", "text": {"body": text}}]
                }}]}]
            });
            let me = &mut m.tenants[t];
            me.customers.extend([
                ("customer number", customer),
                ("customer name", name),
                ("message text", text.clone()),
                ("message id", wamid),
            ]);
            let (status, body) = h.post_signed(payload.to_string().as_bytes()).await;
            if status != StatusCode::OK {
                return Err(format!("webhook: {status} {body}"));
            }
            h.drain(platform::INBOUND, Duration::from_secs(30)).await;
            me.texts.push(text);
            me.inbound += 1;
        }
        Op::Download { t, pick: p, file } => {
            // Preferably an export that should hold messages, so the search means something.
            let exports = &m.tenants[t].exports;
            let with: Vec<String> = exports
                .iter()
                .filter(|(_, texts)| !texts.is_empty())
                .map(|(id, _)| id.clone())
                .collect();
            let any = if with.is_empty() {
                pick(exports.keys().cloned(), p)
            } else {
                pick(with, p)
            };
            let Some(id) = any else {
                return Ok(());
            };
            wait_completed(h, m, t, &id).await?;
            let path = format!("/admin/tenants/{}/exports/{id}/links", m.tenants[t].id);
            let body = json!({"file": FILES[file]});
            let r = as_tenant(h, m, t, Actor::Owner, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::CREATED, "export link")?;
            let url = r.body["url"].as_str().ok_or("link without url")?;
            let resp = h.http.get(url).send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            if status != StatusCode::OK {
                return Err(format!("download {}: {status} {text}", FILES[file]));
            }
            let found = leaks(m, t, "", &text);
            if !found.is_empty() {
                return Err(format!(
                    "tenant {t}'s export {id} {} holds {}: {text}",
                    FILES[file],
                    found.join(", ")
                ));
            }
            if matches!(FILES[file], "export.json" | "messages.csv") {
                let had = &m.tenants[t].exports[&id];
                m.files_with_messages += u64::from(!had.is_empty());
                if let Some(missing) = had.iter().find(|x| !text.contains(x.as_str())) {
                    return Err(format!(
                        "tenant {t}'s export {id} {} lacks its message {missing:?}: {text}",
                        FILES[file]
                    ));
                }
            }
            if FILES[file].ends_with(".json") && !text.contains(m.tenants[t].id.as_str()) {
                return Err(format!(
                    "tenant {t}'s export {id} {} does not name the tenant: {text}",
                    FILES[file]
                ));
            }
        }
        Op::Read { t, by, what } => read(h, m, t, by, what).await?,
        Op::CrossPath { t, by, other, what } => {
            let j = (t + other) % TENANTS;
            m.cross += 1;
            let them = &m.tenants[j];
            let n = m.seq + 1;
            let key = pick(them.keys.keys().cloned(), what).unwrap_or("0123456789abcdef".into());
            let export =
                pick(them.exports.keys().cloned(), what).unwrap_or("ex_0000000000000000".into());
            let user = pick(them.users.keys().cloned(), what).unwrap();
            let phone =
                pick(them.channels.keys().cloned(), what).unwrap_or("7000000000000001".into());
            let attempts: Vec<(&str, String, Option<Value>)> = vec![
                ("GET", String::new(), None),
                ("GET", "/api-keys".into(), None),
                ("GET", "/users".into(), None),
                ("GET", "/audit".into(), None),
                ("GET", "/usage".into(), None),
                ("GET", "/exports".into(), None),
                ("GET", format!("/exports/{export}"), None),
                (
                    "POST",
                    format!("/exports/{export}/links"),
                    Some(json!({"file": "export.json"})),
                ),
                ("POST", "/exports".into(), Some(json!({"scope": "tenant"}))),
                (
                    "PATCH",
                    "/settings".into(),
                    Some(json!({"retention_days": 1})),
                ),
                ("POST", "/api-keys".into(), Some(json!({"name": "steal"}))),
                ("DELETE", format!("/api-keys/{key}"), None),
                (
                    "POST",
                    "/channels/whatsapp".into(),
                    Some(
                        json!({"phone_number_id": format!("6{n:013}1"), "waba_id": "9", "access_token": "EAAsteal"}),
                    ),
                ),
                ("DELETE", format!("/channels/whatsapp/{phone}"), None),
                (
                    "POST",
                    "/invitations".into(),
                    Some(json!({"email": "spy@spy.test", "role": "owner"})),
                ),
                (
                    "PATCH",
                    format!("/users/{user}"),
                    Some(json!({"role": "viewer"})),
                ),
                ("DELETE", format!("/users/{user}"), None),
                (
                    "PUT",
                    "/plan".into(),
                    Some(json!({"monthly_outbound": 1, "monthly_inbound": 1})),
                ),
                ("GET", "/erasure".into(), None),
                ("POST", "/erasure/contacts".into(), Some(json!({}))),
            ];
            let (method, rest, body) = attempts[what % attempts.len()].clone();
            let path = format!("/admin/tenants/{}{rest}", them.id);
            let r = as_tenant(h, m, t, by, method, &path, body.clone()).await?;
            if r.status != StatusCode::NOT_FOUND || r.body != generic_404() {
                return Err(format!(
                    "tenant {t}'s {by:?} {method} {path} (tenant {j}'s): {} {}",
                    r.status, r.text
                ));
            }
            // Exactly what naming a tenant that does not exist gets.
            let nowhere = format!("/admin/tenants/{}{rest}", fake_of(&them.id));
            let r2 = as_tenant(h, m, t, by, method, &nowhere, body).await?;
            if (r2.status, &r2.text) != (r.status, &r.text) {
                return Err(format!(
                    "{method} {path} (tenant {j}'s) answers {} {}, but {nowhere} {} {}",
                    r.status, r.text, r2.status, r2.text
                ));
            }
            verify_tenant(h, m, j).await?;
        }
        Op::CrossId { t, by, other, what } => {
            let j = (t + other) % TENANTS;
            m.cross += 1;
            let them = &m.tenants[j];
            let mine = format!("/admin/tenants/{}", m.tenants[t].id);
            let mut attempts: Vec<(&str, String, String, Option<Value>)> = vec![];
            if let Some(k) = pick(them.keys.keys().cloned(), what) {
                attempts.push(("DELETE", k.clone(), format!("{mine}/api-keys/{k}"), None));
            }
            if let Some(x) = pick(them.exports.keys().cloned(), what) {
                attempts.push(("GET", x.clone(), format!("{mine}/exports/{x}"), None));
                attempts.push((
                    "POST",
                    x.clone(),
                    format!("{mine}/exports/{x}/links"),
                    Some(json!({"file": "export.json"})),
                ));
            }
            let u = pick(them.users.keys().cloned(), what).unwrap();
            attempts.push((
                "PATCH",
                u.clone(),
                format!("{mine}/users/{u}"),
                Some(json!({"role": "viewer"})),
            ));
            attempts.push(("DELETE", u.clone(), format!("{mine}/users/{u}"), None));
            if let Some(p) = pick(them.channels.keys().cloned(), what) {
                attempts.push((
                    "DELETE",
                    p.clone(),
                    format!("{mine}/channels/whatsapp/{p}"),
                    None,
                ));
            }
            let (method, id, path, body) = attempts[what % attempts.len()].clone();
            let r = as_tenant(h, m, t, by, method, &path, body.clone()).await?;
            if r.status != StatusCode::NOT_FOUND {
                return Err(format!(
                    "tenant {t}'s {by:?} {method} {path} (tenant {j}'s id): {} {}",
                    r.status, r.text
                ));
            }
            let fake = fake_of(&id);
            let r2 = as_tenant(h, m, t, by, method, &path.replace(&id, &fake), body).await?;
            let a = r.text.replace(&id, "{id}");
            let b = r2.text.replace(&fake, "{id}");
            if (r.status, &a) != (r2.status, &b) {
                return Err(format!(
                    "{method} {path} (tenant {j}'s id) answers {} {}, an id that does not exist {} {}",
                    r.status, r.text, r2.status, r2.text
                ));
            }
            verify_tenant(h, m, j).await?;
        }
        Op::ClaimForeign {
            t,
            by,
            other,
            pick: p,
        } => {
            let j = (t + other) % TENANTS;
            m.cross += 1;
            let Some(phone) = pick(m.tenants[j].channels.keys().cloned(), p) else {
                return Ok(());
            };
            let n = m.next();
            let secret = format!("EAAclaim{n}secret");
            let path = format!("/admin/tenants/{}/channels/whatsapp", m.tenants[t].id);
            let waba = format!("5{n:013}1");
            let body = json!({"phone_number_id": phone, "waba_id": waba, "access_token": secret});
            m.secrets.push(secret.clone());
            m.tenants[t].claimed.insert(phone.clone());
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            // The token proves nothing: refused before the number's route is even looked
            // at, with the very answer a number nobody holds gets (decision 0032).
            expect(
                &r,
                StatusCode::UNPROCESSABLE_ENTITY,
                "claiming another tenant's number without its token",
            )?;
            let free = fake_of(&phone);
            m.tenants[t].claimed.insert(free.clone());
            let body = json!({"phone_number_id": free, "waba_id": waba, "access_token": secret});
            let r2 = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            if (r.status, &r.text) != (r2.status, &r2.text) {
                return Err(format!(
                    "a claim on tenant {j}'s number answers {} {}, on a free number {} {}",
                    r.status, r.text, r2.status, r2.text
                ));
            }
            verify_tenant(h, m, j).await?;
            verify_tenant(h, m, t).await?;
        }
    }
    Ok(())
}

/// Creates a tenant with a signed-in owner and admin.
async fn setup_tenant(h: &Harness, i: usize) -> Tenant {
    let created = h
        .admin(
            "POST",
            "/admin/tenants",
            json!({"name": NAMES[i], "retention_days": 30}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut users = BTreeMap::new();
    let mut tokens = vec![];
    for role in ["owner", "admin"] {
        let email = format!("{role}@{}.isolation.test", SLUGS[i]);
        let inv = h
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/invitations"),
                json!({"email": email, "role": role}),
            )
            .await;
        let r = call(
            h,
            None,
            "POST",
            "/auth/invitations/accept",
            Some(&json!({"token": inv["token"], "password": PW})),
        )
        .await
        .unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        users.insert(r.body["user"]["id"].as_str().unwrap().to_owned(), email);
        tokens.push(r.body["access_token"].as_str().unwrap().to_owned());
    }
    Tenant {
        id,
        name: NAMES[i].to_owned(),
        slug: SLUGS[i],
        admin_token: tokens.pop().unwrap(),
        owner_token: tokens.pop().unwrap(),
        users,
        invited: BTreeSet::new(),
        channels: BTreeMap::new(),
        channels_ever: BTreeMap::new(),
        claimed: BTreeSet::new(),
        keys: BTreeMap::new(),
        key_names: BTreeSet::new(),
        exports: BTreeMap::new(),
        customers: vec![],
        texts: vec![],
        inbound: 0,
        retention: 30,
        plan: None,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn interleaved_operations_of_several_tenants_never_cross_tenants() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Harness::start(|_| {}));
    let tenants = rt.block_on(async {
        let mut v = vec![];
        for i in 0..TENANTS {
            v.push(setup_tenant(&h, i).await);
        }
        v
    });
    let model = Model {
        tenants,
        secrets: vec![],
        seq: 0,
        ops: 0,
        cross: 0,
        files_with_messages: 0,
    };
    // The starting state is what the model says, for each tenant.
    rt.block_on(async {
        for t in 0..TENANTS {
            verify_tenant(&h, &model, t).await.unwrap();
        }
    });
    let model = RefCell::new(model);

    let cases = env_or("PROPTEST_CASES", 24);
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(env_or("PROPTEST_RNG_SEED", 0x15_01a7e)),
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    // The server's state outlives a case, so a shrunk case may fail on what earlier cases
    // left: the first failure, as it happened, is kept and reported too.
    let first_failure: RefCell<Option<String>> = RefCell::new(None);
    let result = runner.run(&proptest::collection::vec(op(), 5..25), |ops| {
        let mut m = model.borrow_mut();
        let outcome = rt.block_on(async {
            for (k, op) in ops.iter().enumerate() {
                step(&h, &mut m, op)
                    .await
                    .map_err(|e| format!("op #{k} {op:?}: {e}"))?;
            }
            // After the case, everything every tenant sees is still exactly its own.
            for t in 0..TENANTS {
                verify_tenant(&h, &m, t)
                    .await
                    .map_err(|e| format!("after the case: {e}"))?;
            }
            Ok::<(), String>(())
        });
        outcome.map_err(|e| {
            first_failure
                .borrow_mut()
                .get_or_insert_with(|| format!("{e}\nin the case: {ops:#?}"));
            TestCaseError::fail(e)
        })
    });
    let m = model.borrow();
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => panic!(
            "isolation broken: {why}\nminimal failing case: {ops:#?}\nfirst failure: {}",
            first_failure.borrow().as_deref().unwrap_or("?")
        ),
        Err(e) => panic!("{e}"),
    }
    let sizes: Vec<String> = m
        .tenants
        .iter()
        .map(|t| {
            format!(
                "{}: {} channels ({} ever), {} keys, {} invitations, {} exports, {} messages",
                t.slug,
                t.channels.len(),
                t.channels_ever.len(),
                t.keys.len(),
                t.invited.len(),
                t.exports.len(),
                t.inbound
            )
        })
        .collect();
    eprintln!(
        "isolation: {} ops ({} cross-tenant attempts, {} export files with messages) in {:?}; {}",
        m.ops,
        m.cross,
        m.files_with_messages,
        started.elapsed(),
        sizes.join("; ")
    );
    // The generator did reach every kind of resource (else the property says little).
    if cases >= 24 {
        assert!(
            m.tenants.iter().all(|t| !t.keys.is_empty()
                && !t.channels_ever.is_empty()
                && !t.exports.is_empty()
                && t.inbound > 0),
            "some tenant never got a key, a channel, an export or a message: {}",
            sizes.join("; ")
        );
    }
}
