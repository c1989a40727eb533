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

mod reads;
mod step;

use reads::{check_settings, read, verify_tenant};
use step::step;

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
