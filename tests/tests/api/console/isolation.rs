//! Tenant isolation through the console's routes, as a property (the admin API's is
//! `isolation.rs`): random interleavings of three tenants' owners using the console, each
//! also naming the other tenants' resources (a number to disconnect, an export to download, a
//! channel to erase a contact on, an erasure request to read), never show a tenant anything
//! of another's and never change another's data.
//!
//! - Every page a tenant's owner gets is searched for every identifier the other tenants own
//!   (tenant id and name, owner email, number, WABA, export id, erasure request id).
//! - Another tenant's export or erasure request reads exactly like one that does not exist.
//! - Another tenant's number cannot be disconnected (it stays connected, nothing is called at
//!   the provider) nor used for a contact erasure.
//! - Retention changes land on the actor's tenant only (a model of each tenant's value).
//! - The connect flows (decision 0046): another tenant's number posted through the
//!   Embedded Signup route, with a token that proves it (409) or one that does not (422),
//!   stays the other tenant's; another tenant's Instagram sign-in state is refused (400).
//! - Users, invitations and API keys: another tenant's user (a new role, removal), its
//!   pending invitation (withdrawal) and its API key (revocation) read exactly like ids that
//!   do not exist (404); their users, roles, invitations and keys stay as they were. The
//!   users, API keys, usage, audit and Bitrix24 pages (each tenant has a portal) show only
//!   the tenant's own; its own new API keys and Bitrix24 install links land on it alone.
//!
//! - Fenced (decision 0037): after the session check every page and form acts for the
//!   session's tenant, so the local server's ports refuse any key of another tenant; a
//!   witness under the fence checks after each step that every store call on a tenant's
//!   data acted for that tenant (module `fence_witness` names the exceptions).
//!
//! The console takes the tenant from the session only: no route names one.
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` change the number of cases and the seed.

use std::cell::RefCell;
use std::time::Duration;

use super::fence_witness::FenceWitness;
use e2e_tests::console::{add_user, ConsoleClient, Page};
use e2e_tests::fake_bitrix::FakeBitrix;
use e2e_tests::fake_graph::wire_self_service;
use e2e_tests::harness::Harness;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::queue::platform;

const TENANTS: usize = 3;
const NAMES: [&str; TENANTS] = [
    "Console Alpha Cafe",
    "Console Bravo Tyres",
    "Console Charlie Books",
];
const NUMBERS: [&str; TENANTS] = ["110000000000001", "120000000000002", "130000000000003"];
const WABAS: [&str; TENANTS] = ["210000000000001", "220000000000002", "230000000000003"];
const PAGES: [&str; 10] = [
    "/app/channels",
    "/app/retention",
    "/app/exports",
    "/app/erasure",
    "/app/account",
    "/app/users",
    "/app/api-keys",
    "/app/usage",
    "/app/audit",
    "/app/bitrix24",
];
/// Each tenant's Bitrix24 portal (connected at the fake), and its member id.
const DOMAINS: [&str; TENANTS] = [
    "console-alpha.bitrix24.com",
    "console-bravo.bitrix24.com",
    "console-charlie.bitrix24.com",
];
const MEMBERS: [&str; TENANTS] = [
    "c0a1000000000000000000000000000a",
    "c0b2000000000000000000000000000b",
    "c0c3000000000000000000000000000c",
];
/// An export id and an erasure request id of the right shape that no tenant has.
const NO_EXPORT: &str = "ex_000000000000000000000000";
const NO_REQUEST: &str = "er_000000000000000000000000";

struct Tenant {
    id: String,
    email: String,
    browser: ConsoleClient,
    export: String,
    request: String,
    retention: u32,
    /// The signed state of an Instagram sign-in this tenant's owner started.
    ig_state: String,
    /// An agent of the tenant: its user id and email.
    agent: String,
    agent_email: String,
    /// A pending invitation: its id and the invitee's email.
    invitation: String,
    invited_email: String,
    /// The tenant's first API key (never revoked) and its name.
    key: String,
    key_name: String,
    /// How many API keys the tenant has (its owner creates more).
    keys: usize,
}

impl Tenant {
    /// Everything of this tenant another must never see.
    fn identifiers(&self, i: usize) -> Vec<String> {
        vec![
            self.id.clone(),
            NAMES[i].to_owned(),
            self.email.clone(),
            NUMBERS[i].to_owned(),
            WABAS[i].to_owned(),
            self.export.clone(),
            self.request.clone(),
            self.agent.clone(),
            self.agent_email.clone(),
            self.invitation.clone(),
            self.invited_email.clone(),
            self.key.clone(),
            self.key_name.clone(),
            DOMAINS[i].to_owned(),
            MEMBERS[i].to_owned(),
        ]
    }
}

/// An id of the same shape as `id` that nobody has: its last hex digit changed.
fn unknown_like(id: &str) -> String {
    let (head, last) = id.split_at(id.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

#[derive(Clone, Debug)]
enum Op {
    View {
        t: usize,
        page: usize,
    },
    SetRetention {
        t: usize,
        days: u32,
    },
    DisconnectOther {
        t: usize,
        other: usize,
    },
    DownloadOther {
        t: usize,
        other: usize,
    },
    EraseOnOther {
        t: usize,
        other: usize,
    },
    ReadOtherRequest {
        t: usize,
        other: usize,
    },
    ConnectOther {
        t: usize,
        other: usize,
        proven: bool,
    },
    InstagramStateOfOther {
        t: usize,
        other: usize,
    },
    SetRoleOfOther {
        t: usize,
        other: usize,
    },
    RemoveOtherUser {
        t: usize,
        other: usize,
    },
    WithdrawOtherInvitation {
        t: usize,
        other: usize,
    },
    RevokeOtherKey {
        t: usize,
        other: usize,
    },
    CreateKey {
        t: usize,
    },
    InstallLink {
        t: usize,
        line: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    let other = 1..TENANTS;
    prop_oneof![
        (t.clone(), 0..PAGES.len()).prop_map(|(t, page)| Op::View { t, page }),
        (t.clone(), 1u32..400).prop_map(|(t, days)| Op::SetRetention { t, days }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::DisconnectOther { t, other }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::DownloadOther { t, other }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::EraseOnOther { t, other }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::ReadOtherRequest { t, other }),
        (t.clone(), other.clone(), any::<bool>()).prop_map(|(t, other, proven)| Op::ConnectOther {
            t,
            other,
            proven
        }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::InstagramStateOfOther { t, other }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::SetRoleOfOther { t, other }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::RemoveOtherUser { t, other }),
        (t.clone(), other.clone()).prop_map(|(t, other)| Op::WithdrawOtherInvitation { t, other }),
        (t.clone(), other).prop_map(|(t, other)| Op::RevokeOtherKey { t, other }),
        t.clone().prop_map(|t| Op::CreateKey { t }),
        (t, 1u32..50).prop_map(|(t, line)| Op::InstallLink { t, line }),
    ]
}

/// The page shows nothing of any tenant but `t`. The audit log's entries of the tenant's
/// own refused connects are left out: they name the number its user posted (as the answer
/// to the post did) and the refusal the answer gave.
fn own_only(tenants: &[Tenant], t: usize, page: &Page) -> Result<(), String> {
    let body: String = page
        .body
        .split("<tr>")
        .filter(|row| !row.contains("<td>channel_connect_refused</td>"))
        .collect::<Vec<_>>()
        .join("<tr>");
    for (i, other) in tenants.iter().enumerate().filter(|(i, _)| *i != t) {
        for id in other.identifiers(i) {
            if body.contains(&id) {
                return Err(format!("tenant {t} was shown {id:?} of tenant {i}"));
            }
        }
    }
    Ok(())
}

fn expect(page: &Page, status: StatusCode, what: &str) -> Result<(), String> {
    if page.status == status {
        Ok(())
    } else {
        Err(format!("{what}: {} instead of {status}", page.status))
    }
}

async fn step(h: &Harness, tenants: &mut [Tenant], op: &Op) -> Result<(), String> {
    let (t, page) = match *op {
        Op::View { t, page } => (t, tenants[t].browser.get(PAGES[page]).await),
        Op::SetRetention { t, days } => {
            let r = tenants[t]
                .browser
                .submit(
                    "/app/retention",
                    "/app/retention",
                    &[("retention_days", &days.to_string())],
                )
                .await;
            expect(&r, StatusCode::SEE_OTHER, "own retention")?;
            tenants[t].retention = days;
            (t, tenants[t].browser.get("/app/retention").await)
        }
        Op::DisconnectOther { t, other } => {
            let o = (t + other) % TENANTS;
            let r = tenants[t]
                .browser
                .submit(
                    "/app/channels",
                    "/app/channels/disconnect",
                    &[("kind", "whatsapp"), ("id", NUMBERS[o])],
                )
                .await;
            expect(&r, StatusCode::NOT_FOUND, "another tenant's number")?;
            (t, r)
        }
        Op::DownloadOther { t, other } => {
            let o = (t + other) % TENANTS;
            let path = |id: &str| format!("/app/exports/download?id={id}&file=export.json");
            let theirs = tenants[t]
                .browser
                .get(&path(&tenants[o].export.clone()))
                .await;
            let none = tenants[t].browser.get(&path(NO_EXPORT)).await;
            if (theirs.status, &theirs.body) != (none.status, &none.body) {
                return Err("another tenant's export reads unlike a missing one".into());
            }
            expect(&theirs, StatusCode::NOT_FOUND, "another tenant's export")?;
            (t, theirs)
        }
        Op::EraseOnOther { t, other } => {
            let o = (t + other) % TENANTS;
            let channel = format!("whatsapp:{}", NUMBERS[o]);
            let r = tenants[t]
                .browser
                .submit(
                    "/app/erasure",
                    "/app/erasure",
                    &[("channel", &channel), ("customer", "+16505551234")],
                )
                .await;
            expect(
                &r,
                StatusCode::BAD_REQUEST,
                "erasure on another tenant's number",
            )?;
            (t, r)
        }
        Op::ReadOtherRequest { t, other } => {
            let o = (t + other) % TENANTS;
            let theirs = tenants[t]
                .browser
                .get(&format!(
                    "/app/erasure?request={}",
                    tenants[o].request.clone()
                ))
                .await;
            let none = tenants[t]
                .browser
                .get(&format!("/app/erasure?request={NO_REQUEST}"))
                .await;
            if (theirs.status, &theirs.body) != (none.status, &none.body) {
                return Err("another tenant's erasure request reads unlike a missing one".into());
            }
            expect(
                &theirs,
                StatusCode::NOT_FOUND,
                "another tenant's erasure request",
            )?;
            (t, theirs)
        }
        Op::ConnectOther { t, other, proven } => {
            let o = (t + other) % TENANTS;
            // A code Meta would exchange for a token of this tenant's own making: one that
            // really grants the other's WABA (a second admin of that business), or one that
            // grants nothing.
            let code = if proven {
                h.graph
                    .issue_signup_code(&format!("EAAattacker{t}TOKEN"), WABAS[o], NUMBERS[o])
            } else {
                h.graph.issue_code_for(
                    &format!("EAAunknown{t}TOKEN"),
                    wappline::clock::now_secs() as u64 + 300,
                )
            };
            let r = tenants[t]
                .browser
                .submit(
                    "/app/channels",
                    "/app/onboarding/whatsapp",
                    &[
                        ("event", "FINISH"),
                        ("code", &code),
                        ("waba_id", WABAS[o]),
                        ("phone_number_id", NUMBERS[o]),
                    ],
                )
                .await;
            if proven {
                expect(&r, StatusCode::CONFLICT, "another tenant's number, proven")?;
            } else {
                expect(
                    &r,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "another tenant's number, unproven",
                )?;
            }
            // The page says what the user posted back to them, nothing more: drop their own
            // input before looking for the other tenant's identifiers.
            let mut page = r;
            page.body = page.body.replace(NUMBERS[o], "").replace(WABAS[o], "");
            (t, page)
        }
        Op::InstagramStateOfOther { t, other } => {
            let o = (t + other) % TENANTS;
            let state = tenants[o].ig_state.clone();
            let r = tenants[t]
                .browser
                .get(&format!(
                    "/app/onboarding/instagram/callback?code=AQBisolation&state={state}"
                ))
                .await;
            expect(
                &r,
                StatusCode::BAD_REQUEST,
                "another tenant's Instagram state",
            )?;
            (t, r)
        }
        Op::SetRoleOfOther { t, other } => {
            let o = (t + other) % TENANTS;
            let theirs = tenants[o].agent.clone();
            let r = foreign_post(
                &mut tenants[t].browser,
                "/app/users",
                "/app/users/role",
                "user",
                &theirs,
                &[("role", "viewer")],
            )
            .await?;
            (t, r)
        }
        Op::RemoveOtherUser { t, other } => {
            let o = (t + other) % TENANTS;
            let theirs = tenants[o].agent.clone();
            let r = foreign_post(
                &mut tenants[t].browser,
                "/app/users",
                "/app/users/remove",
                "user",
                &theirs,
                &[],
            )
            .await?;
            (t, r)
        }
        Op::WithdrawOtherInvitation { t, other } => {
            let o = (t + other) % TENANTS;
            let theirs = tenants[o].invitation.clone();
            let r = foreign_post(
                &mut tenants[t].browser,
                "/app/users",
                "/app/users/withdraw",
                "invitation",
                &theirs,
                &[],
            )
            .await?;
            (t, r)
        }
        Op::RevokeOtherKey { t, other } => {
            let o = (t + other) % TENANTS;
            let theirs = tenants[o].key.clone();
            let r = foreign_post(
                &mut tenants[t].browser,
                "/app/api-keys",
                "/app/api-keys/revoke",
                "key",
                &theirs,
                &[],
            )
            .await?;
            (t, r)
        }
        Op::CreateKey { t } => {
            let name = format!("own key {}", tenants[t].keys);
            let r = tenants[t]
                .browser
                .submit("/app/api-keys", "/app/api-keys", &[("name", &name)])
                .await;
            expect(&r, StatusCode::CREATED, "own API key")?;
            tenants[t].keys += 1;
            (t, r)
        }
        Op::InstallLink { t, line } => {
            let r = tenants[t]
                .browser
                .submit(
                    "/app/bitrix24",
                    "/app/bitrix24",
                    &[("line_id", &line.to_string())],
                )
                .await;
            if !r.status.is_success() {
                return Err(format!("own install link: {}", r.status));
            }
            (t, r)
        }
    };
    own_only(tenants, t, &page)?;
    verify(h, tenants).await
}

/// Posts another tenant's `theirs` as `field` (with `extra`), and the same with an id of its
/// shape nobody has: both must be 404 and read the same. The answer for `theirs`.
async fn foreign_post(
    browser: &mut ConsoleClient,
    from: &str,
    path: &str,
    field: &str,
    theirs: &str,
    extra: &[(&str, &str)],
) -> Result<Page, String> {
    let none = unknown_like(theirs);
    let mut answers = Vec::new();
    for id in [theirs, none.as_str()] {
        let mut fields = vec![(field, id)];
        fields.extend_from_slice(extra);
        answers.push(browser.submit(from, path, &fields).await);
    }
    let none = answers.pop().unwrap();
    let r = answers.pop().unwrap();
    if (r.status, &r.body) != (none.status, &none.body) {
        return Err(format!(
            "{path}: another tenant's {field} reads unlike a missing one ({} / {})",
            r.status, none.status
        ));
    }
    expect(
        &r,
        StatusCode::NOT_FOUND,
        &format!("{path}: another tenant's {field}"),
    )?;
    Ok(r)
}

/// The tenant's users (`email=role`), pending invitation ids and API keys (`id`, revoked)
/// as the admin API lists them.
async fn team(h: &Harness, tenant: &str) -> (Vec<String>, Vec<String>, Vec<(String, bool)>) {
    let list = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    let v = h.admin_get(&format!("/admin/tenants/{tenant}/users")).await;
    let mut users: Vec<String> = list(&v, "users")
        .iter()
        .map(|u| {
            format!(
                "{}={}",
                u["email"].as_str().unwrap(),
                u["role"].as_str().unwrap()
            )
        })
        .collect();
    users.sort();
    let v = h
        .admin_get(&format!("/admin/tenants/{tenant}/invitations"))
        .await;
    let invitations = list(&v, "invitations")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let v = h
        .admin_get(&format!("/admin/tenants/{tenant}/api-keys"))
        .await;
    let keys = list(&v, "api_keys")
        .iter()
        .map(|k| (k["id"].as_str().unwrap().to_owned(), k["revoked"] == true))
        .collect();
    (users, invitations, keys)
}

/// Every tenant still has its number, its retention as the model says, its users with their
/// roles, its invitation and its unrevoked keys, and nothing was revoked at the provider.
async fn verify(h: &Harness, tenants: &[Tenant]) -> Result<(), String> {
    for (i, t) in tenants.iter().enumerate() {
        let (users, invitations, keys) = team(h, &t.id).await;
        let mut want = vec![
            format!("{}=agent", t.agent_email),
            format!("{}=owner", t.email),
        ];
        want.sort();
        if users != want {
            return Err(format!("tenant {i}: users {users:?} instead of {want:?}"));
        }
        if invitations != [t.invitation.clone()] {
            return Err(format!("tenant {i}: invitations {invitations:?}"));
        }
        if keys.len() != t.keys || keys.iter().any(|(_, revoked)| *revoked) {
            return Err(format!(
                "tenant {i}: API keys {keys:?}, {} expected, none revoked",
                t.keys
            ));
        }
        if !keys.iter().any(|(id, _)| *id == t.key) {
            return Err(format!("tenant {i}: its first API key is gone"));
        }
        let v: Value = h.admin_get(&format!("/admin/tenants/{}", t.id)).await;
        if v["retention_days"] != json!(t.retention) {
            return Err(format!(
                "tenant {i}: retention {} instead of {}",
                v["retention_days"], t.retention
            ));
        }
        let mut numbers: Vec<&str> = v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        // The number and the portal (digits sort before the member id's letters).
        numbers.sort();
        if numbers != [NUMBERS[i], MEMBERS[i]] {
            return Err(format!("tenant {i}: channels {numbers:?}"));
        }
    }
    if h.graph.calls().iter().any(|c| c.method == "DELETE") {
        return Err("something was revoked at the provider".into());
    }
    Ok(())
}

async fn setup(h: &Harness, bitrix: &FakeBitrix) -> Vec<Tenant> {
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let created = h
            .admin(
                "POST",
                "/admin/tenants",
                json!({"name": NAMES[i], "retention_days": 30}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        h.connect_whatsapp(&id, NUMBERS[i], WABAS[i], &format!("EAAconsole{i}TOKEN"))
            .await;
        let email = format!("owner{i}@console-isolation.test");
        add_user(h, &id, &email, "owner").await;
        let mut browser = ConsoleClient::new(&h.base);
        browser.sign_in(&id, &email).await;
        let channel = format!("whatsapp:{}", NUMBERS[i]);
        let r = browser
            .submit(
                "/app/erasure",
                "/app/erasure",
                &[("channel", &channel), ("customer", "+16505550000")],
            )
            .await;
        let request = r.location.unwrap().rsplit('=').next().unwrap().to_owned();
        // A contact erasure withdraws the tenant's exports: it runs first.
        h.drain(platform::ERASURE, Duration::from_secs(10)).await;
        let r = browser.submit("/app/exports", "/app/exports", &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = browser
            .submit("/app/channels", "/app/onboarding/instagram", &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let to = r.location.unwrap();
        let ig_state = to
            .split('&')
            .find_map(|p| p.strip_prefix("state="))
            .unwrap()
            .to_owned();
        // An agent, a pending invitation, an API key and a portal of its own.
        let agent_email = format!("agent{i}@console-isolation.test");
        add_user(h, &id, &agent_email, "agent").await;
        let v = h.admin_get(&format!("/admin/tenants/{id}/users")).await;
        let agent = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == agent_email.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let invited_email = format!("invited{i}@console-isolation.test");
        let v = h
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/invitations"),
                json!({"email": invited_email, "role": "viewer"}),
            )
            .await;
        let invitation = v["id"].as_str().unwrap().to_owned();
        let key_name = format!("{} bridge", NAMES[i]);
        let v = h
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/api-keys"),
                json!({"name": key_name}),
            )
            .await;
        let key = v["id"].as_str().unwrap().to_owned();
        bitrix.add_portal(DOMAINS[i], MEMBERS[i]);
        h.store_portal(&id, bitrix, DOMAINS[i], MEMBERS[i], 1).await;
        tenants.push(Tenant {
            id,
            email,
            browser,
            export: String::new(),
            request,
            retention: 30,
            ig_state,
            agent,
            agent_email,
            invitation,
            invited_email,
            key,
            key_name,
            keys: 1,
        });
    }
    // Each tenant's export, once written.
    for t in &mut tenants {
        for _ in 0..200 {
            let v = h
                .admin_get(&format!("/admin/tenants/{}/exports", t.id))
                .await;
            let e = &v["exports"][0];
            if e["state"] == "completed" {
                t.export = e["id"].as_str().unwrap().to_owned();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!t.export.is_empty(), "export not completed");
    }
    tenants
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_console_route_shows_or_changes_another_tenants_data() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let witness = FenceWitness::new();
    // Self-service onboarding configured against the fake Graph API (decision 0040).
    let bitrix = rt.block_on(FakeBitrix::start());
    let h = rt.block_on(Harness::start(|c| {
        bitrix.wire_into(c);
        c.store_hook = Some(witness.hook());
        // The schedules sweep every tenant without acting for one: kept out of the steps.
        c.schedule_secs = 3600;
        wire_self_service(c);
    }));
    let tenants = RefCell::new(rt.block_on(setup(&h, &bitrix)));
    witness.clear();
    let config = Config {
        cases: env_or("PROPTEST_CASES", 16),
        rng_seed: RngSeed::Fixed(u64::from(env_or("PROPTEST_RNG_SEED", 0x0c0_501e))),
        failure_persistence: None,
        max_shrink_iters: 100,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 3..12), |ops| {
        let mut t = tenants.borrow_mut();
        rt.block_on(async {
            for (k, op) in ops.iter().enumerate() {
                step(&h, &mut t, op)
                    .await
                    .map_err(|e| format!("op #{k} {op:?}: {e}"))?;
                let unfenced = witness.unfenced();
                if !unfenced.is_empty() {
                    return Err(format!("op #{k} {op:?}: outside the fence: {unfenced:#?}"));
                }
            }
            Ok::<(), String>(())
        })
        .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("console isolation broken: {e}");
    }
    rt.block_on(h.server.shutdown());
}
