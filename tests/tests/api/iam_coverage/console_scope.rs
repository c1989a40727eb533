//! The console acts for the signed-in user's tenant (issue 15, decision 0037): its pages and
//! forms reach tenant data through the tenant's session of the tenant-data role, and its own
//! role keeps only what runs before a tenant is authenticated (sign-in, the session check,
//! the email-change and password-reset links) or spans the routes table (the transactions
//! that claim or release a route with the tenant's items).

use std::collections::BTreeSet;

use super::policy::{decide, Decision};
use super::recorder::Recorded;
use super::template::{self, Node};
use super::{as_session, findings, report, run, TENANT_ROLE};
use wappline::ids::TenantId;

const CONSOLE: &str = "ConsoleFunction";
const CONSOLE_ROLE: &str = "ConsoleRole";

/// The tenant partition a key of a tenant table names: `""` for the tenant's root
/// (`T#<t>`), else the first segment below it (`AUDIT`, `EXPORTS`, `CONV`, ...).
fn partition(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix("T#")?;
    Some(match rest.split_once('#') {
        None => "",
        Some((_, below)) => below.split('#').next().unwrap_or_default(),
    })
}

/// The partitions of the tenant tables a request names (`dynamodb:LeadingKeys`).
fn partitions(r: &Recorded) -> Vec<&str> {
    r.request
        .context
        .get("dynamodb:LeadingKeys")
        .map(|keys| keys.iter().filter_map(|k| partition(k)).collect())
        .unwrap_or_default()
}

/// What the console's own role may reach of tenant data: a failed sign-in counter, a
/// tenant's root partition (users, emails, sessions, devices, links, channels, profile), and
/// in a transaction with the routes table its API keys and revocations.
fn an_exception(r: &Recorded, atts: &std::collections::BTreeMap<String, String>) -> bool {
    let resource = r.request.resource.as_str();
    let keys = r
        .request
        .context
        .get("dynamodb:LeadingKeys")
        .cloned()
        .unwrap_or_default();
    if resource == atts["DedupeTable.Arn"] {
        return !keys.is_empty() && keys.iter().all(|k| k.starts_with("AUTHFAIL#"));
    }
    if resource != atts["DataTable.Arn"] || keys.is_empty() {
        return false;
    }
    let in_route_claim = r.operation == "DynamoDB.TransactWriteItems";
    partitions(r)
        .iter()
        .all(|p| p.is_empty() || (in_route_claim && ["APIKEYS", "REVOKE"].contains(p)))
        && partitions(r).len() == keys.len()
}

#[tokio::test]
async fn the_consoles_pages_and_forms_reach_tenant_data_only_through_the_tenant_session() {
    let run = run().await;
    let atts = &run.physical.atts;
    let console: Vec<&Recorded> = run
        .recorded
        .iter()
        .filter(|r| r.function == CONSOLE)
        .collect();
    // The pages and forms read and wrote with the tenant's session: items, partitions, the
    // tenant's data key.
    let scoped: BTreeSet<&str> = console
        .iter()
        .filter(|r| r.session.is_some())
        .map(|r| r.request.action.as_str())
        .collect();
    for action in [
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "kms:Decrypt",
    ] {
        assert!(
            scoped.contains(action),
            "no {action} in a session: {scoped:?}"
        );
    }
    // Without a session: the exceptions only.
    let tenant_data = [
        atts["DataTable.Arn"].as_str(),
        atts["KeysTable.Arn"].as_str(),
        atts["DedupeTable.Arn"].as_str(),
        atts["TenantKey.Arn"].as_str(),
    ];
    let outside: BTreeSet<String> = console
        .iter()
        .filter(|r| r.session.is_none() && tenant_data.contains(&r.request.resource.as_str()))
        .filter(|r| !an_exception(r, atts))
        .map(|r| {
            format!(
                "{} {} on {} {:?}",
                r.operation,
                r.request.action,
                r.request.resource,
                partitions(r)
            )
        })
        .collect();
    assert!(outside.is_empty(), "{outside:#?}");
    // The console's own role would refuse what its pages read in the session: the tenant's
    // conversations, exports, erasures, audit log, data keys.
    let statements = template::role_statements(&run.template, CONSOLE, &run.physical);
    let refused: BTreeSet<String> = console
        .iter()
        .filter(|r| r.session.is_some())
        .filter(|r| decide(&statements, &r.request) != Decision::Allowed)
        .map(|r| {
            let what = partitions(r).first().map(|p| p.to_string());
            format!("{} {}", r.request.action, what.unwrap_or_default())
        })
        .collect();
    for expected in [
        "kms:Decrypt ",
        "dynamodb:Query AUDIT",
        "dynamodb:Query EXPORTS",
        "dynamodb:PutItem ERASURE",
    ] {
        assert!(
            refused.contains(expected),
            "the console's role allows {expected:?}: {refused:#?}"
        );
    }
    for r in console.iter().filter(|r| r.session.is_some()) {
        if r.request.resource == atts["KeysTable.Arn"] {
            assert_ne!(decide(&statements, &r.request), Decision::Allowed);
        }
    }
}

#[tokio::test]
async fn the_consoles_session_is_refused_another_tenants_data() {
    let run = run().await;
    let statements = template::policy_statements(&run.template, TENANT_ROLE, &run.physical);
    let other = TenantId::generate();
    let console: Vec<&Recorded> = run
        .recorded
        .iter()
        .filter(|r| r.function == CONSOLE && r.session.is_some())
        .collect();
    assert!(console.len() > 20, "{} session requests", console.len());
    for r in console {
        assert_ne!(r.session.as_deref(), Some(other.as_str()));
        // Allowed for its own tenant, refused for another.
        let own = as_session(&r.request, r.session.as_deref().unwrap());
        assert_eq!(decide(&statements, &own), Decision::Allowed, "{r:?}");
        let theirs = as_session(&r.request, other.as_str());
        assert_eq!(
            decide(&statements, &theirs),
            Decision::NotAllowed,
            "another tenant's session may make {} on {} ({:?})",
            r.request.action,
            r.request.resource,
            r.request.context
        );
    }
}

/// The findings of `template` for the recorded run, as (function, action) pairs.
fn named(run: &super::Run, template: &Node) -> BTreeSet<(String, String)> {
    findings(template, &run.physical, &run.recorded)
        .into_iter()
        .map(|f| (f.function, f.action))
        .collect()
}

/// Removes `role`'s ARN from the tenant-data role's trust policy.
fn untrust(template: &mut Node, role: &str) {
    fn walk(node: &mut Node, arn: &str) -> bool {
        match node {
            Node::Seq(items) => {
                let before = items.len();
                items.retain(|i| {
                    !matches!(i, Node::Map(e) if e.len() == 1 && e[0].0 == "Fn::GetAtt" && e[0].1.str() == Some(arn))
                });
                items.len() < before || items.iter_mut().any(|i| walk(i, arn))
            }
            Node::Map(entries) => entries.iter_mut().any(|(_, v)| walk(v, arn)),
            Node::Str(_) => false,
        }
    }
    let trust = template
        .get_mut("Resources")
        .and_then(|r| r.get_mut(TENANT_ROLE))
        .and_then(|r| r.get_mut("Properties"))
        .and_then(|p| p.get_mut("AssumeRolePolicyDocument"))
        .expect("the tenant-data role's trust policy");
    assert!(walk(trust, &format!("{role}.Arn")), "{role} is not trusted");
}

#[tokio::test]
async fn each_grant_the_console_needs_removed_fails_naming_the_console() {
    let run = run().await;
    let console = |action: &str| BTreeSet::from([(CONSOLE.to_owned(), action.to_owned())]);
    // Without the grant to assume the tenant-data role, or without the trust of that role.
    let mut t = run.template.clone();
    template::remove_grant(
        &mut t,
        CONSOLE_ROLE,
        "tenant-data-role",
        "AssumeForOneTenant",
        "sts:AssumeRole",
    );
    assert_eq!(named(run, &t), console("sts:AssumeRole"));
    let mut t = run.template.clone();
    untrust(&mut t, CONSOLE_ROLE);
    let mut refused = console("sts:AssumeRole");
    refused.insert((CONSOLE.to_owned(), "sts:TagSession".to_owned()));
    assert_eq!(named(run, &t), refused);
    // Its own role without the API keys' partition: the key's route transaction is refused.
    let mut t = run.template.clone();
    let statement = template::statement_mut(
        &mut t,
        CONSOLE_ROLE,
        "tables",
        "SignInSessionsAndRouteClaims",
    );
    let narrowed = Node::Seq(
        [
            "T#tn_????????????????????????",
            "T#tn_????????????????????????#REVOKE",
        ]
        .into_iter()
        .map(|p| Node::Str(p.into()))
        .collect(),
    );
    let condition = statement.get_mut("Condition").expect("a condition");
    let like = condition
        .get_mut("ForAllValues:StringLike")
        .expect("ForAllValues:StringLike");
    template::set_entry(like, "dynamodb:LeadingKeys", narrowed);
    assert_eq!(named(run, &t), console("dynamodb:PutItem"));
    // Without its sign-in grants on a tenant's root partition: sign-in and sessions fail.
    let mut t = run.template.clone();
    template::remove_grant(
        &mut t,
        CONSOLE_ROLE,
        "tables",
        "SignInSessionsAndRouteClaims",
        "dynamodb:GetItem",
    );
    let found = findings(&t, &run.physical, &run.recorded);
    assert!(
        !found.is_empty() && found.iter().all(|f| f.function == CONSOLE),
        "{}",
        report(&found)
    );
}
