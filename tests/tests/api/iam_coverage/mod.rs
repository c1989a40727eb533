//! Every AWS call a function makes is allowed by the IAM role template.yaml gives it
//! (issue 13, decision 0031).
//!
//! moto does not enforce IAM, so a missing grant passes every other test and fails only in
//! AWS, with AccessDenied. Here each function of the template is composed as its `main.rs`
//! composes it (`Services` from the environment the template gives it, resolved against a
//! deployment on the moto server), with an AWS SDK interceptor on every client that records
//! what the function puts on the wire, labelled with the function's name. One scenario drives
//! every function's flows through their handlers: tenants, channels, a Bitrix24 install, a
//! customer's text and image, CRM sync and the parked-portal probe, the media proxy, an
//! operator reply and an API send, outbound sends, retention, an export and its download
//! link, self-service onboarding (Embedded Signup, Instagram Login) and the renewal of
//! Instagram tokens, the webhook-subscription check, Meta's account events (a ban and its
//! reinstatement, with the owners' emails; a restriction with an expiry on a number attached
//! to its own Open Line, which the inbound worker shows there and puts on the restriction-end
//! index), Meta's data deletion callback, a contact erasure and an account erasure with its key
//! shredding and completion email. Each recorded request is then evaluated against the
//! function's role: the template's inline policies with `Ref`, `GetAtt`, `Sub`, `Join` and
//! `If` resolved to this deployment's ARNs.
//!
//! What is evaluated (module `policy`): `Allow` and `Deny` statements; `Action` and
//! `Resource` with `*`/`?` wildcards; conditions `StringEquals`, `StringLike`,
//! `StringNotEquals`, `StringNotLike`, `ArnEquals`, `ArnLike`, `Bool` (with `ForAllValues:`,
//! `ForAnyValue:`, `...IfExists`) and `Null`, over the context keys the recorder derives from
//! each request: `dynamodb:LeadingKeys` (the partition key of every item, transaction item
//! and query), `kms:EncryptionContextKeys` and `kms:EncryptionContext:<key>`, and
//! `ses:FromAddress`.
//!
//! What is not: any other condition operator or key (a statement using one panics, so it
//! cannot pass unnoticed; a key the recorder does not derive is absent, as IAM treats a key
//! missing from the request); `NotAction`, `NotResource`, SAM policy templates and managed
//! policies (the template uses none; their presence panics); resource policies other than
//! the role's (the KMS key policy delegates to IAM, the bucket policy only denies plain HTTP);
//! the calls Lambda itself makes with the role outside our code (CloudWatch Logs, X-Ray); the
//! SQS event source's `GetQueueAttributes` (the test's event source receives and deletes with
//! the function's role, as Lambda does, but does not poll attributes).

mod console_flows;
mod console_scope;
mod logs;
mod media_scope;
mod policy;
mod recorder;
mod scenario;
mod template;
mod tenant_sessions;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::OnceCell;
use wappline::app::HttpFunction;
use wappline::logging::MemoryLog;
use wappline::meta::AppSecret;
use wappline::queue::platform;

use e2e_tests::fake_bitrix::{EventBody, EventMessage, FAKE_DOMAIN};
use e2e_tests::harness::{sample, ADMIN, APP_SECRET, WA_NUMBER};
use policy::{decide, decide_trust, Decision};
use recorder::Recorded;
use scenario::scenario;
use template::{Node, Physical};
use world::{call, json_body, Deployment};

/// Another number of the scenario's WABA (connected, then disconnected).
const SECOND_NUMBER: &str = "113355779024681";
/// A number connected through Embedded Signup, an account through Instagram Login.
const SIGNUP_NUMBER: &str = "113355779024999";
const LOGIN_ACCOUNT: &str = "17841400000000777";
/// A number connected through the console's Embedded Signup route.
const CONSOLE_NUMBER: &str = "113355779024888";
/// An Instagram account connected through the console's Instagram Login.
const CONSOLE_INSTAGRAM: &str = "17841400000000888";
/// A third number of the WABA, disconnected through the console.
const THIRD_NUMBER: &str = "114466880035792";

const LINE: u64 = 7;
const APP_TOKEN: &str = "831c76b092f9f135d9b6b36c3a720757";
const WA_TOKEN: &str = "EAAwhatsappTOKEN";

/// What the scenario recorded, and the deployment's resolved names; run once per test binary.
struct Run {
    recorded: Vec<Recorded>,
    template: Node,
    physical: Physical,
    /// What the functions logged during the scenario, as their JSON lines (module `logs`).
    logs: String,
    /// Secrets the scenario made or was given: tokens, keys, a password.
    secrets: Vec<String>,
}

static RUN: OnceCell<Run> = OnceCell::const_new();

async fn run() -> &'static Run {
    RUN.get_or_init(|| async {
        let d = Deployment::start().await;
        let capture = MemoryLog::global(logs::LEVEL);
        let start = capture.len();
        let mut secrets = scenario(&d).await;
        secrets.extend(d.bitrix.issued_tokens());
        let recorded = d.log.lock().unwrap().clone();
        Run {
            recorded,
            template: d.template,
            physical: d.physical,
            logs: capture.text_from(start),
            secrets,
        }
    })
    .await
}

/// A request a function made that its role does not allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    function: String,
    action: String,
    resource: String,
    why: String,
}

/// The role a function assumes for its work for one tenant (decision 0037).
const TENANT_ROLE: &str = "TenantDataRole";

/// The functions whose work for one tenant runs under that tenant's session.
const TENANT_SCOPED: [&str; 9] = [
    "InboundWorkerFunction",
    "MediaProxyFunction",
    "SyncWorkerFunction",
    "OutboundWorkerFunction",
    "AdminApiFunction",
    "PublicApiFunction",
    "ExportWorkerFunction",
    "ErasureWorkerFunction",
    "ConsoleFunction",
];

/// `request` as a session of the tenant-data role tagged `tenant_id = tenant` makes it: the
/// tag is the principal's (`aws:PrincipalTag/tenant_id`).
fn as_session(request: &policy::Request, tenant: &str) -> policy::Request {
    let mut r = request.clone();
    r.context
        .insert("aws:PrincipalTag/tenant_id".into(), vec![tenant.to_owned()]);
    r
}

/// Every recorded request the role that signed it (in `template`) does not allow: the
/// function's role, or the tenant-data role for a tenant's session. An `AssumeRole` must also
/// be allowed by the assumed role's trust policy for the function's role.
fn findings(template: &Node, physical: &Physical, recorded: &[Recorded]) -> BTreeSet<Finding> {
    let mut roles = BTreeMap::new();
    for (function, _) in template::functions(template) {
        let statements = template::role_statements(template, &function, physical);
        roles.insert(function, statements);
    }
    let tenant_role = template::policy_statements(template, TENANT_ROLE, physical);
    let trust = template::trust_statements(template, TENANT_ROLE, physical);
    let tenant_role_arn = &physical.atts[&format!("{TENANT_ROLE}.Arn")];
    recorded
        .iter()
        .filter_map(|r| {
            let statements = roles
                .get(&r.function)
                .unwrap_or_else(|| panic!("{}: not a function of the template", r.function));
            let decision = match &r.session {
                Some(tenant) => decide(&tenant_role, &as_session(&r.request, tenant)),
                None => match decide(statements, &r.request) {
                    Decision::Allowed if r.request.action.starts_with("sts:") => {
                        let role = template::function_role(template, &r.function);
                        if &r.request.resource == tenant_role_arn {
                            decide_trust(&trust, &physical.atts[&format!("{role}.Arn")], &r.request)
                        } else {
                            Decision::NotAllowed
                        }
                    }
                    other => other,
                },
            };
            let why = match decision {
                Decision::Allowed => return None,
                Decision::NotAllowed => "no statement allows it".to_owned(),
                Decision::Denied(by) => format!("denied by {by}"),
            };
            let why = match &r.session {
                Some(_) => format!("{TENANT_ROLE} session: {why}"),
                None => why,
            };
            Some(Finding {
                function: r.function.clone(),
                action: r.request.action.clone(),
                resource: r.request.resource.clone(),
                why: format!("{why} (context {:?})", r.request.context),
            })
        })
        .collect()
}

fn report(findings: &BTreeSet<Finding>) -> String {
    findings
        .iter()
        .map(|f| format!("{}: {} on {}: {}", f.function, f.action, f.resource, f.why))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn every_aws_call_of_every_function_is_allowed_by_its_role() {
    let run = run().await;
    let found = findings(&run.template, &run.physical, &run.recorded);
    assert!(
        found.is_empty(),
        "calls the template's roles do not allow:\n{}",
        report(&found)
    );
    // Every function of the template ran and made AWS calls.
    let functions: BTreeSet<_> = template::functions(&run.template)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let seen: BTreeSet<_> = run.recorded.iter().map(|r| r.function.clone()).collect();
    assert_eq!(seen, functions, "functions whose flows made no AWS call");
    // The flows the issue names reached the calls that prove them.
    let made = |function: &str, action: &str| {
        run.recorded
            .iter()
            .any(|r| r.function == function && r.request.action == action)
    };
    for (function, action) in [
        ("MetaWebhookFunction", "sqs:SendMessage"),
        ("MetaWebhookFunction", "dynamodb:ConditionCheckItem"),
        ("InboundWorkerFunction", "dynamodb:PutItem"),
        ("SyncWorkerFunction", "kms:Decrypt"),
        ("OutboundWorkerFunction", "sqs:SendMessage"),
        ("PublicApiFunction", "sqs:SendMessage"),
        ("BitrixWebhookFunction", "sqs:SendMessage"),
        ("MediaProxyFunction", "kms:Decrypt"),
        ("ExportWorkerFunction", "s3:PutObject"),
        ("AdminApiFunction", "s3:GetObject"),
        ("AdminApiFunction", "ses:SendEmail"),
        ("ConsoleFunction", "sqs:SendMessage"),
        ("ConsoleFunction", "dynamodb:UpdateItem"),
        ("DataDeletionFunction", "sqs:SendMessage"),
        ("RetentionFunction", "dynamodb:Query"),
        ("ErasureWorkerFunction", "sqs:DeleteMessage"),
        ("ErasureWorkerFunction", "s3:DeleteObject"),
        ("ErasureWorkerFunction", "ses:SendEmail"),
        ("InboundWorkerFunction", "ses:SendEmail"),
        ("MetaWebhookFunction", "dynamodb:Query"),
    ] {
        assert!(made(function, action), "{function} never made {action}");
    }
    // Account erasure shreds the tenant's keys: a delete on the keys table.
    let keys_table = &run.physical.atts["KeysTable.Arn"];
    assert!(
        run.recorded
            .iter()
            .any(|r| r.function == "ErasureWorkerFunction"
                && r.request.action == "dynamodb:DeleteItem"
                && &r.request.resource == keys_table),
        "the account erasure deleted no data key"
    );
    // No function scans a table (decision 0027).
    assert!(
        !run.recorded
            .iter()
            .any(|r| r.request.action == "dynamodb:Scan"),
        "a Scan was made"
    );
}

#[tokio::test]
async fn a_grant_removed_from_the_template_fails_naming_the_function_action_and_resource() {
    let run = run().await;
    let mut template = run.template.clone();
    template::remove_grant(
        &mut template,
        "ErasureWorkerRole",
        "tables",
        "EraseItems",
        "dynamodb:Query",
    );
    let found = findings(&template, &run.physical, &run.recorded);
    assert!(!found.is_empty(), "removing the grant was not noticed");
    let named: BTreeSet<_> = found
        .iter()
        .map(|f| (f.function.as_str(), f.action.as_str()))
        .collect();
    assert_eq!(
        named,
        BTreeSet::from([("ErasureWorkerFunction", "dynamodb:Query")]),
        "{}",
        report(&found)
    );
    // The worklists of the routes table: the tenant's own partitions are queried with its
    // session (decision 0037), whose role keeps the grant.
    assert!(
        found
            .iter()
            .any(|f| f.resource == run.physical.atts["RoutesTable.Arn"]),
        "{}",
        report(&found)
    );
    let message = report(&found);
    assert!(
        message.contains("ErasureWorkerFunction: dynamodb:Query on arn:aws:dynamodb:"),
        "{message}"
    );
    // The inbound worker's put on the restriction-end index (decision 0066) is the scenario's
    // restriction shown on the number's own line, and only its `RESTRICTIONENDS` grant
    // allows it.
    let mut template = run.template.clone();
    template::remove_grant(
        &mut template,
        "InboundWorkerRole",
        "tables",
        "RestrictionEnds",
        "dynamodb:PutItem",
    );
    let found = findings(&template, &run.physical, &run.recorded);
    let named: BTreeSet<_> = found
        .iter()
        .map(|f| (f.function.as_str(), f.action.as_str(), f.resource.as_str()))
        .collect();
    assert_eq!(
        named,
        BTreeSet::from([(
            "InboundWorkerFunction",
            "dynamodb:PutItem",
            run.physical.atts["RoutesTable.Arn"].as_str()
        )]),
        "{}",
        report(&found)
    );
    // A condition removed is noticed too: without the AUTHFAIL# prefix check the admin
    // API's sign-in throttle is still allowed, but with a wrong prefix it is not.
    let mut template = run.template.clone();
    narrow_leading_keys(&mut template);
    let found = findings(&template, &run.physical, &run.recorded);
    let named: BTreeSet<_> = found
        .iter()
        .map(|f| (f.function.as_str(), f.action.as_str()))
        .collect();
    assert!(
        named.contains(&("AdminApiFunction", "dynamodb:UpdateItem"))
            && named.iter().all(|(f, _)| *f == "AdminApiFunction"),
        "{}",
        report(&found)
    );
}

/// Changes the admin API's sign-in throttle condition to a prefix no key has.
fn narrow_leading_keys(template: &mut Node) {
    fn walk(node: &mut Node) -> bool {
        match node {
            Node::Str(s) if s == "AUTHFAIL#*" => {
                *s = "NOSUCH#*".into();
                true
            }
            Node::Str(_) => false,
            Node::Seq(items) => items.iter_mut().any(walk),
            Node::Map(entries) => entries.iter_mut().any(|(_, v)| walk(v)),
        }
    }
    let Node::Map(resources) = template_resources(template) else {
        unreachable!()
    };
    let role = resources
        .iter_mut()
        .find(|(k, _)| k == "AdminApiRole")
        .expect("AdminApiRole");
    assert!(walk(&mut role.1), "the AUTHFAIL# condition");
}

fn template_resources(template: &mut Node) -> &mut Node {
    let Node::Map(entries) = template else {
        panic!("a mapping")
    };
    &mut entries
        .iter_mut()
        .find(|(k, _)| k == "Resources")
        .expect("Resources")
        .1
}

/// The sample with its timestamps set to now: the customer wrote within WhatsApp's 24-hour
/// window, so the replies are sent rather than refused.
fn fresh(sample: &[u8]) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut text = String::from_utf8(sample.to_vec()).unwrap();
    let marker = "\"timestamp\": \"";
    let mut from = 0;
    while let Some(at) = text[from..].find(marker) {
        let start = from + at + marker.len();
        let end = start + text[start..].find('"').unwrap();
        text.replace_range(start..end, &now.to_string());
        from = end;
    }
    text.into_bytes()
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn admin(f: &dyn HttpFunction, method: &str, path: &str, body: Value) -> Value {
    let (mut headers, body) = json_body(&body);
    headers.push(bearer(ADMIN));
    let (status, answer) = call(f, method, path, &headers, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

async fn form(f: &dyn HttpFunction, path: &str, body: String) -> (u16, Value) {
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    call(f, "POST", path, &headers, Some(body.into_bytes())).await
}

/// Meta delivers the sample `name` (fresh timestamps, signed) to the meta-webhook function.
async fn deliver(meta: &dyn HttpFunction, name: &str) {
    deliver_body(meta, name, &sample(name)).await
}

/// Meta delivers `body` (fresh timestamps, signed; `name` says what it is) to the
/// meta-webhook function.
async fn deliver_body(meta: &dyn HttpFunction, name: &str, body: &[u8]) {
    let body = fresh(body);
    let signature = AppSecret::new(APP_SECRET).unwrap().sign(&body);
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("x-hub-signature-256", signature),
    ];
    let (s, v) = call(meta, "POST", meta_webhook::PATH, &headers, Some(body)).await;
    assert_eq!(s, 200, "{name}: {v}");
}
