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
//! reinstatement, with the owners' emails), Meta's data deletion callback, a contact erasure and an account erasure with its key
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
mod logs;
mod policy;
mod recorder;
mod template;
mod tenant_sessions;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::OnceCell;
use wappline::app::HttpFunction;
use wappline::meta::AppSecret;
use wappline::queue::platform;

use e2e_tests::fake_bitrix::{EventBody, EventMessage, FAKE_DOMAIN};
use e2e_tests::harness::{sample, ADMIN, APP_SECRET, WA_NUMBER};
use policy::{decide, decide_trust, Decision};
use recorder::Recorded;
use template::{Node, Physical};
use world::{call, json_body, Deployment};

/// Another number of the scenario's WABA (connected, then disconnected).
const SECOND_NUMBER: &str = "113355779024681";
/// A number connected through Embedded Signup, an account through Instagram Login.
const SIGNUP_NUMBER: &str = "113355779024999";
const LOGIN_ACCOUNT: &str = "17841400000000777";
/// A number connected through the console's Embedded Signup route.
const CONSOLE_NUMBER: &str = "113355779024888";
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
        let capture = logs::Capture::global();
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
const TENANT_SCOPED: [&str; 7] = [
    "InboundWorkerFunction",
    "SyncWorkerFunction",
    "OutboundWorkerFunction",
    "AdminApiFunction",
    "PublicApiFunction",
    "ExportWorkerFunction",
    "ErasureWorkerFunction",
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
    let body = fresh(&sample(name));
    let signature = AppSecret::new(APP_SECRET).unwrap().sign(&body);
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("x-hub-signature-256", signature),
    ];
    let (s, v) = call(meta, "POST", meta_webhook::PATH, &headers, Some(body)).await;
    assert_eq!(s, 200, "{name}: {v}");
}

/// Every function's flows, each through the handler its `main.rs` builds. Returns the
/// secrets it made (an invitation token, a password, an API key).
async fn scenario(d: &Deployment) -> Vec<String> {
    let admin_services = d.services("AdminApiFunction");
    let admin_api = admin_api::AdminApi::from_services(&admin_services).unwrap();
    let meta_services = d.services("MetaWebhookFunction");
    let meta = meta_webhook::MetaWebhook::from_services(&meta_services).unwrap();
    let bitrix_services = d.services("BitrixWebhookFunction");
    let bitrix = bitrix_webhook::BitrixWebhook::from_services(&bitrix_services).unwrap();
    let inbound = d.services("InboundWorkerFunction");
    let inbound_worker = inbound.inbound_worker().unwrap();
    let sync = d.services("SyncWorkerFunction");
    let (sync_worker, probe) = (sync.sync_worker().unwrap(), sync.portal_probe().unwrap());
    let outbound = d.services("OutboundWorkerFunction");
    let outbound_worker = outbound.outbound_worker().unwrap();
    let public_services = d.services("PublicApiFunction");
    let public = public_api::PublicApi::from_services(&public_services).unwrap();
    let media_services = d.services("MediaProxyFunction");
    let media = media_proxy::MediaProxyFunction::from_services(&media_services).unwrap();
    let deletion_services = d.services("DataDeletionFunction");
    let deletion = data_deletion::DataDeletion::from_services(&deletion_services).unwrap();
    let export = d.services("ExportWorkerFunction");
    let export_worker = export.export_worker().unwrap();
    let erasure = d.services("ErasureWorkerFunction");
    let (erasure_worker, sweep) = (
        erasure.erasure_worker().unwrap(),
        erasure.tenant_erasure().unwrap(),
    );
    let console_services = d.services("ConsoleFunction");
    let console = console::Console::from_services(&console_services).unwrap();
    let retention_services = d.services("RetentionFunction");
    let retention_run = retention_services.retention();

    // admin-api: a tenant, its WhatsApp number, an owner invited by email, a failed sign-in
    // (the throttle's counter), an API key and a Bitrix24 connection code.
    let tenant = admin(
        &admin_api,
        "POST",
        "/admin/tenants",
        json!({"name": "Acme"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = format!("/admin/tenants/{tenant}");
    // The connect proves ownership with the token first (decision 0032), then reads the
    // WABA's message templates (decision 0050).
    d.graph
        .add_whatsapp_business(WA_TOKEN, "102290129340398", WA_NUMBER);
    d.graph.set_templates(
        "102290129340398",
        vec![e2e_tests::fake_graph::template(
            "order_confirmation",
            "en_US",
            "UTILITY",
            json!([{"type": "BODY", "text": "Hi {{1}}, your order ships today."}]),
        )],
    );
    admin(
        &admin_api,
        "POST",
        &format!("{t}/channels/whatsapp"),
        json!({"phone_number_id": WA_NUMBER, "waba_id": "102290129340398", "access_token": WA_TOKEN}),
    )
    .await;
    d.graph.add_token(WA_TOKEN, WA_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/invitations"),
        json!({"email": "owner@acme.test", "role": "owner"}),
    )
    .await;
    // The owner accepts an invitation (its token from the test's own, unrecorded access):
    // account erasure emails the owners.
    let setup = d.setup_services("AdminApiFunction").accounts().unwrap();
    let invitation = setup
        .invite(
            &wappline::ids::TenantId::parse(&tenant).unwrap(),
            &wappline::accounts::Principal::Platform,
            wappline::accounts::Email::parse("boss@acme.test").unwrap(),
            wappline::accounts::Role::Owner,
        )
        .await
        .unwrap();
    let token = invitation.token;
    let (headers, body) = json_body(&json!({"token": token, "password": "correct horse battery"}));
    let (status, v) = call(
        &admin_api,
        "POST",
        "/auth/invitations/accept",
        &headers,
        body,
    )
    .await;
    assert!((200..300).contains(&status), "{status} {v}");
    let (headers, body) =
        json_body(&json!({"account_id": tenant, "email": "owner@acme.test", "password": "wrong"}));
    let (status, v) = call(&admin_api, "POST", "/auth/sign-in", &headers, body).await;
    assert_eq!(status, 401, "{v}");
    let key = admin(
        &admin_api,
        "POST",
        &format!("{t}/api-keys"),
        json!({"name": "CRM bridge", "scope": "send"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = admin(
        &admin_api,
        "POST",
        &format!("{t}/bitrix24/connection-codes"),
        json!({"line_id": LINE}),
    )
    .await;
    let install_url = code["install_url"].as_str().unwrap();
    let install_path = &install_url[install_url.find("/bitrix/").unwrap()..];

    // bitrix-webhook: the portal installs the application and sends its token.
    let (s, v) = form(
        &bitrix,
        install_path,
        EventBody::install_wizard(&d.bitrix, FAKE_DOMAIN),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let app_install = EventBody::for_portal(&d.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).app_install();
    let (s, v) = form(&bitrix, "/bitrix/events", app_install).await;
    assert_eq!(s, 200, "{v}");

    // meta-webhook: a customer's text and image.
    d.graph.add_media(
        "1106677706454703",
        WA_NUMBER,
        "image/jpeg",
        b"\xff\xd8 jpeg",
    );
    for name in ["whatsapp-text.json", "whatsapp-image.json"] {
        deliver(&meta, name).await;
    }

    // inbound-worker, then sync-worker into the portal; the probe of parked portals.
    assert_eq!(
        d.consume(
            "InboundWorkerFunction",
            &inbound,
            &inbound_worker,
            platform::INBOUND
        )
        .await,
        2
    );
    assert!(
        d.consume("SyncWorkerFunction", &sync, &sync_worker, platform::SYNC)
            .await
            >= 2
    );
    probe.run_once().await.unwrap();
    let received = d.bitrix.messages_received();
    assert_eq!(received.len(), 2, "both messages reached the portal");
    let chat = received[0].external_chat_id.clone();

    // media-proxy: Bitrix24 downloads the image through its signed link.
    let url = received
        .iter()
        .find_map(|m| m.files.first())
        .and_then(|f| f["url"].as_str())
        .expect("the image's link")
        .to_owned();
    let media_path = &url[url.find(media_proxy::PATH_PREFIX).unwrap()..];
    let (s, _) = call(&media, "GET", media_path, &[], None).await;
    assert_eq!(s, 200);

    // bitrix-webhook: the operator answers; public-api: the tenant's system sends.
    let reply = EventBody::for_portal(&d.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: 5001,
            chat_id: chat.clone(),
            user_id: 1,
            text: Some("Thanks, on its way".into()),
            ..EventMessage::default()
        }],
    );
    let (s, v) = form(&bitrix, "/bitrix/events", reply).await;
    assert_eq!(s, 200, "{v}");
    // bitrix-webhook: a CRM robot sends a template through the number's message provider
    // (decision 0050).
    let (_, robot) = d.bitrix.provider_call(
        FAKE_DOMAIN,
        &format!("wappline_wa_{WA_NUMBER}"),
        "16505551234",
        "order_confirmation Ann",
        APP_TOKEN,
    );
    let (s, v) = form(&bitrix, "/bitrix/messageservice", robot).await;
    assert_eq!(s, 200, "{v}");
    let (mut headers, body) = json_body(&json!({
        "channel": "whatsapp", "account_id": WA_NUMBER,
        "to": "US.13491208655302741918", "text": "Your order has shipped"
    }));
    headers.push(bearer(&key));
    let (s, v) = call(&public, "POST", public_api::MESSAGES_PATH, &headers, body).await;
    assert!((200..300).contains(&s), "{s} {v}");
    // The health route reads the routes table with the function's role (decision 0038).
    let (s, v) = call(&public, "GET", public_api::HEALTH_PATH, &[], None).await;
    assert_eq!(
        (s, &v["checks"]["routes_table"]),
        (200, &json!("ok")),
        "{v}"
    );

    // outbound-worker sends the three; their statuses go to the portal (the robot's with
    // messageservice.message.status.update).
    assert_eq!(
        d.consume(
            "OutboundWorkerFunction",
            &outbound,
            &outbound_worker,
            platform::OUTBOUND
        )
        .await,
        3
    );
    assert_eq!(d.graph.sent().len(), 3);
    d.consume("SyncWorkerFunction", &sync, &sync_worker, platform::SYNC)
        .await;
    assert_eq!(
        d.bitrix
            .calls_to("messageservice.message.status.update")
            .len(),
        1
    );
    // meta-webhook: Meta's template webhooks update the tenant's copy (a known template) or
    // make the account due for a re-read (an unknown one).
    for name in [
        "whatsapp-template-status-update.json",
        "whatsapp-template-category-update.json",
    ] {
        deliver(&meta, name).await;
    }

    // A suspended tenant's delivery is held by meta-webhook; resuming (admin-api) releases it
    // to the inbound queue.
    let suspension = format!("{t}/suspension");
    admin(
        &admin_api,
        "POST",
        &suspension,
        json!({"reason": "unpaid invoice"}),
    )
    .await;
    deliver(&meta, "whatsapp-audio.json").await;
    let resumed = admin(&admin_api, "DELETE", &suspension, Value::Null).await;
    assert_eq!(resumed["released"], 1, "{resumed}");
    assert_eq!(
        d.consume(
            "InboundWorkerFunction",
            &inbound,
            &inbound_worker,
            platform::INBOUND
        )
        .await,
        1
    );
    d.consume("SyncWorkerFunction", &sync, &sync_worker, platform::SYNC)
        .await;

    // Coexistence (decision 0052): admin-api turns the history import on and names the echo
    // author; Meta's history and contact sync reach the workers; the sync worker's schedule
    // imports the history; bitrix-webhook recognises the echo author; turning the import
    // off drops what waits.
    let coexistence = format!("{t}/channels/whatsapp/{WA_NUMBER}/coexistence");
    admin(
        &admin_api,
        "PUT",
        &coexistence,
        json!({"history_import": true, "echo_author_id": 42}),
    )
    .await;
    for name in ["whatsapp-history.json", "whatsapp-smb-app-state-sync.json"] {
        deliver(&meta, name).await;
    }
    d.consume(
        "InboundWorkerFunction",
        &inbound,
        &inbound_worker,
        platform::INBOUND,
    )
    .await;
    let imported = sync.history_import().unwrap().run_once().await.unwrap();
    assert_eq!(imported.queued, 4, "{imported:?}");
    d.consume("SyncWorkerFunction", &sync, &sync_worker, platform::SYNC)
        .await;
    let echo_back = EventBody::for_portal(&d.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: 5002,
            chat_id: chat.clone(),
            user_id: 42,
            text: Some("Yes, sizes S to XL.".into()),
            ..EventMessage::default()
        }],
    );
    let (s, v) = form(&bitrix, "/bitrix/events", echo_back).await;
    assert_eq!((s, &v["skipped"]), (200, &json!(1)), "{v}");
    admin(
        &admin_api,
        "PUT",
        &coexistence,
        json!({"history_import": false, "echo_author_id": null}),
    )
    .await;

    // retention: a shorter retention, re-stamped by the scheduled run.
    admin(
        &admin_api,
        "PATCH",
        &format!("{t}/settings"),
        json!({"retention_days": 30}),
    )
    .await;
    let budget = retention::budget(
        SystemTime::now() + Duration::from_secs(300),
        retention_services.settings.retention_max_items,
    );
    retention::handle(&retention_run, budget).await.unwrap();

    // export-worker writes the tenant's export; admin-api links and serves its download.
    let export_id = admin(
        &admin_api,
        "POST",
        &format!("{t}/exports"),
        json!({"scope": "tenant"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        d.consume(
            "ExportWorkerFunction",
            &export,
            &export_worker,
            platform::EXPORTS
        )
        .await,
        1
    );
    let state = admin(
        &admin_api,
        "GET",
        &format!("{t}/exports/{export_id}"),
        Value::Null,
    )
    .await;
    let file = state["files"][0]["name"]
        .as_str()
        .or_else(|| state["files"][0].as_str())
        .unwrap_or_else(|| panic!("an export file: {state}"))
        .to_owned();
    let link = admin(
        &admin_api,
        "POST",
        &format!("{t}/exports/{export_id}/links"),
        json!({"file": file}),
    )
    .await;
    let link = link["url"].as_str().expect("a download link");
    let (s, _) = call(
        &admin_api,
        "GET",
        &link[link.find("/exports/download/").unwrap()..],
        &[],
        None,
    )
    .await;
    assert!((300..400).contains(&s), "a redirect to S3: {s}");

    // data-deletion: Meta's callback for a user, then its status page.
    let signed = wappline::meta_deletion::signed_request::sign(
        &AppSecret::new(APP_SECRET).unwrap(),
        r#"{"algorithm":"HMAC-SHA256","issued_at":1795460400,"user_id":"1234567890"}"#,
    );
    let (s, v) = form(
        &deletion,
        data_deletion::PATH,
        format!("signed_request={signed}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let status_url = v["url"].as_str().expect("a status URL");
    let status_path = &status_url[status_url.find(data_deletion::STATUS).unwrap()..];
    let (s, _) = call(&deletion, "GET", status_path, &[], None).await;
    assert_eq!(s, 200);

    // A second number of the WABA is disconnected while Meta is down (admin-api records the
    // revocation, pending); the sync worker's schedule retries it later (decision 0036).
    d.graph
        .add_whatsapp_business(WA_TOKEN, "102290129340398", SECOND_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/channels/whatsapp"),
        json!({"phone_number_id": SECOND_NUMBER, "waba_id": "102290129340398", "access_token": WA_TOKEN}),
    )
    .await;
    d.graph
        .fail_next(1, e2e_tests::fake_graph::GraphFailure::Down);
    admin(
        &admin_api,
        "DELETE",
        &format!("{t}/channels/whatsapp/{SECOND_NUMBER}"),
        Value::Null,
    )
    .await;
    let later = wappline::clock::now_secs() + 3600;
    let revoked = sync
        .revocations()
        .unwrap()
        .run_due_as_of(later, 100)
        .await
        .unwrap();
    assert_eq!((revoked.attempted, revoked.finished), (1, 1), "{revoked:?}");

    // admin-api: a number through Embedded Signup, an account through Instagram Login
    // (decision 0040); then the erasure worker's schedule renews the account's token when it
    // is due, and emails the owners when renewing fails.
    let code = d
        .graph
        .issue_signup_code("EAAGsignupTOKEN", "102290129340555", SIGNUP_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/onboarding/whatsapp"),
        json!({"event": "FINISH", "code": code, "waba_id": "102290129340555", "phone_number_id": SIGNUP_NUMBER}),
    )
    .await;
    d.graph.set_instagram_login(
        LOGIN_ACCOUNT,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    let authorization = admin(
        &admin_api,
        "POST",
        &format!("{t}/onboarding/instagram/authorize"),
        json!({}),
    )
    .await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorization["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split(['?', '&', '#'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();
    admin(
        &admin_api,
        "POST",
        &format!("{t}/onboarding/instagram/complete"),
        json!({"code": code, "state": authorization["state"]}),
    )
    .await;
    let refresh = erasure.token_refresh().unwrap();
    let setup = d.setup_services("ErasureWorkerFunction");
    let scope = setup
        .platform
        .tenants
        .scope(&wappline::ids::TenantId::parse(&tenant).unwrap())
        .await
        .unwrap()
        .unwrap();
    let channel = wappline::tenant::ChannelRef::Instagram(
        wappline::ids::InstagramAccountId::parse(LOGIN_ACCOUNT).unwrap(),
    );
    let now = wappline::clock::now_secs();
    let later = now + 50 * 86_400;
    wappline::onboarding::TokenRefresh::track(&scope, &channel, now + 55 * 86_400, now)
        .await
        .unwrap();
    let renewed = refresh.run_due(later, 10).await.unwrap();
    assert_eq!(renewed.refreshed, 1, "{renewed:?}");
    // The same schedule re-reads the WABAs whose copies are due (decision 0050).
    let templates = erasure
        .template_sync()
        .unwrap()
        .run_due(later, 10)
        .await
        .unwrap();
    assert!(templates.synced >= 1, "{templates:?}");
    d.graph.fail_instagram_refresh(true);
    let failed = refresh
        .run_due(later + 60 * 86_400 - 30 * 86_400, 10)
        .await
        .unwrap();
    assert_eq!(failed.failed, 1, "{failed:?}");
    // erasure-worker's schedule: the changed privacy policy is mailed to each user once
    // (decision 0047), reading them under the tenant's session.
    let policy = erasure.policy_mailing().run(100).await.unwrap();
    assert!(policy.mailed >= 1 && policy.complete, "{policy:?}");
    // The same schedule checks the webhook subscriptions (decision 0051): the numbers the
    // admin API connected were never subscribed, so the check subscribes their WABA.
    let subscriptions = erasure
        .subscription_check()
        .unwrap()
        .run_due(now + 2 * 86_400, 100)
        .await
        .unwrap();
    assert!(subscriptions.resubscribed >= 1, "{subscriptions:?}");
    // meta-webhook routes account events from the WABA to its numbers; the inbound worker
    // records them on the channel and emails the owners when Meta bans the number and when
    // it reinstates it (decision 0051).
    for name in [
        "whatsapp-account-disabled.json",
        "whatsapp-account-reinstated.json",
    ] {
        deliver(&meta, name).await;
    }
    assert!(
        d.consume(
            "InboundWorkerFunction",
            &inbound,
            &inbound_worker,
            platform::INBOUND
        )
        .await
            >= 3
    );
    // console: the owner signs in (after a refused attempt), reads the channels, changes
    // retention, asks for an export and its file, erases a contact, disconnects a number,
    // and asks for the account's deletion, then cancels it.
    let mut browser = console_flows::Session::new(&console);
    let r = browser
        .submit(
            "/app/sign-in",
            "/app/sign-in",
            &[
                ("account_id", &tenant),
                ("email", "boss@acme.test"),
                ("password", "wrong"),
            ],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = browser
        .submit(
            "/app/sign-in",
            "/app/sign-in",
            &[
                ("account_id", &tenant),
                ("email", "boss@acme.test"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(browser.get("/app/channels").await.status, 200);
    let r = browser
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "30")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = browser.submit("/app/exports", "/app/exports", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        d.consume(
            "ExportWorkerFunction",
            &export,
            &export_worker,
            platform::EXPORTS
        )
        .await,
        1
    );
    let page = browser.get("/app/exports").await.body;
    let href = &page[page
        .find("/app/exports/download?")
        .expect("a download link")..];
    let href = href[..href.find('"').unwrap()]
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let r = browser.get(&href).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.contains("/exports/download/"));
    let channel = format!("whatsapp:{WA_NUMBER}");
    let r = browser
        .submit(
            "/app/erasure",
            "/app/erasure",
            &[("channel", &channel), ("customer", "+16505559876")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    d.graph
        .add_whatsapp_business(WA_TOKEN, "102290129340398", THIRD_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/channels/whatsapp"),
        json!({"phone_number_id": THIRD_NUMBER, "waba_id": "102290129340398", "access_token": WA_TOKEN}),
    )
    .await;
    let r = browser
        .submit(
            "/app/channels",
            "/app/channels/disconnect",
            &[("kind", "whatsapp"), ("id", THIRD_NUMBER)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // A number connected through the console's Embedded Signup route (decision 0046): the
    // code exchange and proof with the Meta app's secret the console now reads.
    let code = d
        .graph
        .issue_signup_code("EAAGconsoleTOKEN", "102290129340666", CONSOLE_NUMBER);
    let event = [
        ("event", "FINISH"),
        ("code", code.as_str()),
        ("waba_id", "102290129340666"),
        ("phone_number_id", CONSOLE_NUMBER),
    ];
    let r = browser
        .submit("/app/channels", "/app/onboarding/whatsapp", &event)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = browser
        .submit("/app/account", "/app/account/name", &[("name", "Acme Ltd")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // The user's own data (decision 0047): name, policy acknowledgement, an email change link.
    for (path, field, value) in [
        ("/app/account/profile", "name", "The Boss"),
        ("/app/policy/acknowledge", "version", "2026-12-01"),
        ("/app/account/email", "email", "chief@acme.test"),
    ] {
        let r = browser
            .submit("/app/account", path, &[(field, value)])
            .await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
    }
    let r = browser
        .submit("/app/bitrix24", "/app/bitrix24", &[("line_id", "2")])
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = browser
        .submit("/app/account", "/app/account/deletion", &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = browser
        .submit("/app/account", "/app/account/deletion/cancel", &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);

    // erasure-worker: the customer's erasure and Meta's request, then the account erasure
    // (grace 0) by the schedule's sweep: keys shredded, owners emailed.
    admin(
        &admin_api,
        "POST",
        &format!("{t}/erasure/contacts"),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "customer": "+16505551234"}),
    )
    .await;
    assert_eq!(
        d.consume(
            "ErasureWorkerFunction",
            &erasure,
            &erasure_worker,
            platform::ERASURE
        )
        .await,
        3
    );
    admin(
        &admin_api,
        "POST",
        &format!("{t}/erasure"),
        json!({"grace_days": 0}),
    )
    .await;
    // The sweep disconnects the channels and revokes at the providers (decision 0047); the
    // erasure worker has no Bitrix24 application, so the portal's steps wait for the sync
    // worker's schedule, and the sweep for them.
    let report = sweep.run_due(5_000).await.unwrap();
    assert_eq!(report.tenants_waiting, 1, "{report:?}");
    let later = wappline::clock::now_secs() + 3600;
    let revoked = sync
        .revocations()
        .unwrap()
        .run_due_as_of(later, 100)
        .await
        .unwrap();
    assert!(revoked.finished >= 1, "{revoked:?}");
    let report = sweep.run_due(5_000).await.unwrap();
    assert_eq!(report.tenants_completed, 1, "{report:?}");
    vec![token, "correct horse battery".to_owned(), key]
}
