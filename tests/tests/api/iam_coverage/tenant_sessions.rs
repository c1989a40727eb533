//! Proof of tenant isolation in IAM (issue 15 item 2, decision 0037): every request a
//! function made with a tenant's session of the tenant-data role is allowed for that tenant
//! (the coverage test) and refused, replayed with another tenant's session, by the exact
//! policies template.yaml gives the role. moto's IAM enforcement matches actions only (no
//! `Resource`, no `Condition` except `sts:ExternalId` in trust policies), so it cannot prove
//! this; the evaluator here reads the template's policies and evaluates `dynamodb:LeadingKeys`,
//! `kms:EncryptionContext:tenant_id`, `s3:prefix` and the S3 resource with the
//! `${aws:PrincipalTag/tenant_id}` policy variable.

use std::collections::BTreeSet;

use super::policy::{decide, decide_trust, Decision, Request};
use super::recorder::Recorded;
use super::template::{self, Node, Physical};
use super::{as_session, findings, report, run, TENANT_ROLE, TENANT_SCOPED};
use wappline::ids::TenantId;

/// The requests a tenant's session made that the tenant-data role of `template` would allow to
/// a session of another tenant, described one per line.
fn cross_tenant_allowed(
    template: &Node,
    physical: &Physical,
    recorded: &[Recorded],
) -> Vec<String> {
    let statements = template::policy_statements(template, TENANT_ROLE, physical);
    let other = TenantId::generate();
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    for r in recorded.iter().filter(|r| r.session.is_some()) {
        let owner = r.session.as_deref().unwrap();
        assert_ne!(owner, other.as_str());
        if decide(&statements, &as_session(&r.request, other.as_str())) == Decision::Allowed {
            allowed.insert(format!(
                "{}: {} on {} ({:?})",
                r.function, r.request.action, r.request.resource, r.request.context
            ));
        }
    }
    allowed.into_iter().collect()
}

fn actions_of(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_tenant_session_is_refused_every_request_it_made_when_replayed_for_another_tenant() {
    let run = run().await;
    let scoped: Vec<&Recorded> = run
        .recorded
        .iter()
        .filter(|r| r.session.is_some())
        .collect();
    // Each function that works for one tenant did so with the tenant's session.
    for function in TENANT_SCOPED {
        assert!(
            scoped.iter().any(|r| r.function == function),
            "{function} made no request with a tenant's session"
        );
    }
    // The proof covers reading and writing items, querying partitions, unwrapping and
    // generating data keys, and the export files.
    let made: BTreeSet<&str> = scoped.iter().map(|r| r.request.action.as_str()).collect();
    for action in [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
    ] {
        assert!(
            made.contains(action),
            "no {action} with a tenant's session: {made:?}"
        );
    }
    // Allowed for the session's own tenant (the coverage test checks all findings; here only
    // the sessions', so this test stands on its own).
    let own: Vec<Recorded> = scoped.iter().map(|r| (*r).clone()).collect();
    let found = findings(&run.template, &run.physical, &own);
    assert!(found.is_empty(), "{}", report(&found));
    // Refused for any other tenant.
    let leaked = cross_tenant_allowed(&run.template, &run.physical, &run.recorded);
    assert!(
        leaked.is_empty(),
        "another tenant's session is allowed:\n{}",
        leaked.join("\n")
    );
}

#[tokio::test]
async fn each_condition_of_the_tenant_data_role_is_what_refuses_another_tenant() {
    let run = run().await;
    let policy = "own-tenant";
    // (statement, change, the actions another tenant then gets)
    type Change = fn(&mut Node);
    let cases: [(&str, Change, &[&str]); 4] = [
        (
            "OwnPartitions",
            |s| template::remove_entry(s, "Condition"),
            &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        ),
        (
            "OwnDataKeys",
            |s| template::remove_entry(s, "Condition"),
            &["kms:Decrypt", "kms:GenerateDataKey"],
        ),
        (
            "OwnExports",
            |s| {
                let widened = Node::Map(vec![(
                    "Fn::Sub".into(),
                    Node::Str("${ExportsBucket.Arn}/exports/*".into()),
                )]);
                template::set_entry(s, "Resource", widened)
            },
            &["s3:PutObject", "s3:GetObject"],
        ),
        (
            "ListOwnExports",
            |s| template::remove_entry(s, "Condition"),
            &["s3:ListBucket"],
        ),
    ];
    for (sid, change, opened) in cases {
        let mut changed = run.template.clone();
        change(template::statement_mut(
            &mut changed,
            TENANT_ROLE,
            policy,
            sid,
        ));
        let leaked = cross_tenant_allowed(&changed, &run.physical, &run.recorded);
        let actions = actions_of(&leaked);
        for action in opened {
            assert!(
                actions.contains(*action),
                "{sid} changed, yet {action} of another tenant stays refused: {actions:?}"
            );
        }
        // Only that statement's service opens: each condition fences its own requests.
        let service = opened[0].split(':').next().unwrap();
        assert!(
            actions.iter().all(|a| a.starts_with(service)),
            "{sid}: {actions:?}"
        );
    }
}

#[tokio::test]
async fn only_the_listed_function_roles_may_assume_the_tenant_data_role_and_only_with_a_tenant_tag()
{
    let run = run().await;
    let trust = template::trust_statements(&run.template, TENANT_ROLE, &run.physical);
    let assumes: Vec<&Recorded> = run
        .recorded
        .iter()
        .filter(|r| r.request.action == "sts:AssumeRole")
        .collect();
    assert!(!assumes.is_empty(), "no AssumeRole was made");
    let role_arn = |function: &str| {
        let role = template::function_role(&run.template, function);
        run.physical.atts[&format!("{role}.Arn")].clone()
    };
    let request = &assumes[0].request;
    let own = role_arn(&assumes[0].function);
    assert_eq!(decide_trust(&trust, &own, request), Decision::Allowed);
    // Exactly the functions that work for one tenant may; one that works for no single
    // tenant may not.
    for (function, _) in template::functions(&run.template) {
        let expected = if TENANT_SCOPED.contains(&function.as_str()) {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        };
        assert_eq!(
            decide_trust(&trust, &role_arn(&function), request),
            expected,
            "{function}"
        );
    }
    // Without the tag, with a tag that is no tenant id (a wildcard would widen every
    // condition that reads it), or with another tag beside it: refused.
    let with_tags = |tags: &[(&str, &str)]| {
        let mut r: Request = request.clone();
        r.context
            .retain(|k, _| !k.starts_with("aws:RequestTag/") && k != "aws:TagKeys");
        for (k, v) in tags {
            r.context
                .insert(format!("aws:RequestTag/{k}"), vec![(*v).to_owned()]);
        }
        if !tags.is_empty() {
            r.context.insert(
                "aws:TagKeys".into(),
                tags.iter().map(|(k, _)| (*k).to_owned()).collect(),
            );
        }
        decide_trust(&trust, &own, &r)
    };
    assert_eq!(with_tags(&[]), Decision::NotAllowed);
    assert_eq!(with_tags(&[("tenant_id", "*")]), Decision::NotAllowed);
    assert_eq!(with_tags(&[("tenant_id", "tn_*")]), Decision::NotAllowed);
    assert_eq!(
        with_tags(&[
            ("tenant_id", TenantId::generate().as_str()),
            ("role", "admin")
        ]),
        Decision::NotAllowed
    );
    assert_eq!(
        with_tags(&[("tenant_id", TenantId::generate().as_str())]),
        Decision::Allowed
    );
}

/// The workers whose every request works for the one tenant of its job.
const ONLY_THROUGH_SESSIONS: [&str; 3] = [
    "InboundWorkerFunction",
    "OutboundWorkerFunction",
    "ExportWorkerFunction",
];

#[tokio::test]
async fn the_relay_and_export_workers_reach_tenant_data_only_through_a_tenant_session() {
    let run = run().await;
    let atts = &run.physical.atts;
    let tenant_data = [
        atts["DataTable.Arn"].as_str(),
        atts["KeysTable.Arn"].as_str(),
        atts["DedupeTable.Arn"].as_str(),
        atts["TenantKey.Arn"].as_str(),
    ];
    let bucket = &atts["ExportsBucket.Arn"];
    let outside: BTreeSet<String> = run
        .recorded
        .iter()
        .filter(|r| ONLY_THROUGH_SESSIONS.contains(&r.function.as_str()) && r.session.is_none())
        .filter(|r| {
            tenant_data.contains(&r.request.resource.as_str())
                || r.request.resource.starts_with(bucket.as_str())
        })
        .map(|r| {
            format!(
                "{}: {} on {}",
                r.function, r.request.action, r.request.resource
            )
        })
        .collect();
    assert!(outside.is_empty(), "{outside:#?}");
    // Their own roles hold no grant on tenant data at all: a request their code made
    // outside a session would be refused in AWS (and by the coverage test).
    for function in ONLY_THROUGH_SESSIONS {
        let statements = template::role_statements(&run.template, function, &run.physical);
        for s in &statements {
            for resource in &s.resources {
                assert!(
                    !tenant_data.contains(&resource.as_str())
                        && !resource.starts_with(bucket.as_str()),
                    "{function}: {} grants {resource}",
                    s.origin
                );
            }
        }
    }
}
