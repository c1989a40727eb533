//! The media proxy works for one tenant per signed link (issue 15, decision 0037): the
//! scenario's media fetch reads the link's tenant (channel, token, data key) through that
//! tenant's session of the tenant-data role, and only through it.

use std::collections::BTreeSet;

use super::recorder::Recorded;
use super::template::{self, Node};
use super::{findings, report, run, template_resources, Finding, TENANT_ROLE};

/// The media proxy reads the link's tenant only through that tenant's session (decision
/// 0037): the scenario's media fetch needs the role's `AssumeRole` grant and the tenant-data
/// role's trust, and without them it is refused; its own role reaches no tenant data.
#[tokio::test]
async fn the_media_proxy_reaches_the_links_tenant_only_through_its_session() {
    let run = run().await;
    let media = |found: &BTreeSet<Finding>| -> BTreeSet<(String, String)> {
        found
            .iter()
            .filter(|f| f.function == "MediaProxyFunction")
            .map(|f| (f.action.clone(), f.resource.clone()))
            .collect()
    };
    let tenant_role = run.physical.atts[&format!("{TENANT_ROLE}.Arn")].clone();
    // Without the grant to assume the tenant-data role: its AssumeRole is refused.
    let mut template = run.template.clone();
    template::remove_grant(
        &mut template,
        "MediaProxyRole",
        "tenant-data-role",
        "AssumeForOneTenant",
        "sts:AssumeRole",
    );
    let found = findings(&template, &run.physical, &run.recorded);
    assert_eq!(
        media(&found),
        BTreeSet::from([("sts:AssumeRole".to_owned(), tenant_role.clone())]),
        "{}",
        report(&found)
    );
    // Without its place in the tenant-data role's trust: refused too (the trust covers the
    // tag as well).
    let mut template = run.template.clone();
    let media_role = run.physical.atts["MediaProxyRole.Arn"].clone();
    let trust = template::trust_statements(&template, TENANT_ROLE, &run.physical);
    assert!(
        trust.iter().any(|s| s
            .principals
            .as_ref()
            .is_some_and(|p| p.contains(&media_role))),
        "the media proxy's role is not trusted by {TENANT_ROLE}"
    );
    remove_trusted_role(&mut template, "MediaProxyRole");
    let found = findings(&template, &run.physical, &run.recorded);
    assert_eq!(
        media(&found),
        BTreeSet::from([
            ("sts:AssumeRole".to_owned(), tenant_role.clone()),
            ("sts:TagSession".to_owned(), tenant_role)
        ]),
        "{}",
        report(&found)
    );
    // Every read of tenant data (channel, token, data key) went through a session.
    let atts = &run.physical.atts;
    let tenant_data = [
        atts["DataTable.Arn"].as_str(),
        atts["KeysTable.Arn"].as_str(),
        atts["TenantKey.Arn"].as_str(),
    ];
    let fetched: Vec<&Recorded> = run
        .recorded
        .iter()
        .filter(|r| r.function == "MediaProxyFunction")
        .collect();
    for (action, resource) in [
        ("dynamodb:GetItem", atts["DataTable.Arn"].as_str()),
        ("dynamodb:GetItem", atts["KeysTable.Arn"].as_str()),
        ("kms:Decrypt", atts["TenantKey.Arn"].as_str()),
    ] {
        assert!(
            fetched.iter().any(|r| r.session.is_some()
                && r.request.action == action
                && r.request.resource == resource),
            "the media proxy made no {action} on {resource} with a tenant's session"
        );
    }
    let outside: Vec<String> = fetched
        .iter()
        .filter(|r| r.session.is_none() && tenant_data.contains(&r.request.resource.as_str()))
        .map(|r| format!("{} on {}", r.request.action, r.request.resource))
        .collect();
    assert!(outside.is_empty(), "{outside:#?}");
}

/// Takes `role` out of the tenant-data role's trust policy (`!GetAtt <role>.Arn`).
fn remove_trusted_role(template: &mut Node, role: &str) {
    fn walk(node: &mut Node, arn: &str) -> bool {
        match node {
            Node::Seq(items) => {
                let before = items.len();
                items.retain(|i| {
                    !matches!(i, Node::Map(e) if e.len() == 1
                        && e[0].0 == "Fn::GetAtt"
                        && matches!(&e[0].1, Node::Str(s) if s == arn))
                });
                let removed = before != items.len();
                removed | items.iter_mut().any(|i| walk(i, arn))
            }
            Node::Map(entries) => entries.iter_mut().any(|(_, v)| walk(v, arn)),
            Node::Str(_) => false,
        }
    }
    let Node::Map(resources) = template_resources(template) else {
        unreachable!()
    };
    let (_, tenant_role) = resources
        .iter_mut()
        .find(|(k, _)| k == TENANT_ROLE)
        .expect("the tenant-data role");
    let Node::Map(entries) = tenant_role else {
        panic!("a mapping")
    };
    let (_, properties) = entries
        .iter_mut()
        .find(|(k, _)| k == "Properties")
        .expect("Properties");
    let Node::Map(properties) = properties else {
        panic!("a mapping")
    };
    let (_, trust) = properties
        .iter_mut()
        .find(|(k, _)| k == "AssumeRolePolicyDocument")
        .expect("its trust policy");
    assert!(
        walk(trust, &format!("{role}.Arn")),
        "{role} in the trust policy"
    );
}
