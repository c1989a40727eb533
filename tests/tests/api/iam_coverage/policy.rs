//! An evaluator of identity-based IAM policy statements, for the requests the functions make:
//! an explicit `Deny` wins, else some `Allow` must match the action, the resource and every
//! condition. Actions match case-insensitively with `*` and `?` wildcards, resources (ARNs)
//! case-sensitively with the same wildcards. The condition operators it knows are listed in
//! [`Condition::holds`]; any other one panics, so a new kind of condition fails the test
//! instead of being taken as satisfied.

use std::collections::BTreeMap;

use super::template::Node;

/// One request as IAM authorises it: an action on a resource, with the request's context
/// keys (`dynamodb:LeadingKeys`, `kms:EncryptionContext:tenant_id`, ...).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug)]
pub struct Condition {
    /// The operator as written (`ForAllValues:StringLike`, `Null`, ...).
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Statement {
    /// `Role/PolicyName/Sid`, for messages.
    pub origin: String,
    /// A trust policy's `Principal` (`AWS` ARNs); None in an identity policy.
    pub principals: Option<Vec<String>>,
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: Vec<Condition>,
}

/// IAM's wildcard match: `*` any run of characters, `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Statement {
    /// A resolved statement of an identity policy document.
    pub fn parse(policy: &str, node: &Node) -> Statement {
        assert!(
            node.get("Principal").is_none(),
            "{policy}: Principal in an identity policy"
        );
        Self::parse_any(policy, node)
    }

    /// A resolved statement of a role's trust policy: `Principal: {AWS: [role ARNs]}`, and no
    /// `Resource` (the role itself is the resource).
    pub fn parse_trust(policy: &str, node: &Node) -> Statement {
        let principal = node
            .get("Principal")
            .expect("a trust statement's Principal");
        let arns = principal
            .get("AWS")
            .unwrap_or_else(|| panic!("{policy}: only AWS principals are evaluated by this test"))
            .strings();
        assert_eq!(
            principal.entries().len(),
            1,
            "{policy}: one kind of principal"
        );
        let mut node = node.clone();
        if let Node::Map(entries) = &mut node {
            entries.retain(|(k, _)| k != "Principal");
            entries.push(("Resource".into(), Node::Str("*".into())));
        }
        let mut statement = Self::parse_any(policy, &node);
        statement.principals = Some(arns);
        statement
    }

    fn parse_any(policy: &str, node: &Node) -> Statement {
        let sid = node.get("Sid").and_then(Node::str).unwrap_or("-");
        let origin = format!("{policy}/{sid}");
        for unsupported in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(
                node.get(unsupported).is_none(),
                "{origin}: {unsupported} is not evaluated by this test"
            );
        }
        let effect = match node.get("Effect").and_then(Node::str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => panic!("{origin}: Effect {other:?}"),
        };
        let mut conditions = Vec::new();
        if let Some(block) = node.get("Condition") {
            for (operator, keys) in block.entries() {
                for (key, values) in keys.entries() {
                    conditions.push(Condition {
                        operator: operator.clone(),
                        key: key.clone(),
                        values: values.strings(),
                    });
                }
            }
        }
        Statement {
            effect,
            principals: None,
            actions: node.get("Action").expect("Action").strings(),
            resources: node.get("Resource").expect("Resource").strings(),
            conditions,
            origin,
        }
    }

    fn applies(&self, request: &Request) -> bool {
        let action = request.action.to_ascii_lowercase();
        self.actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action))
            && self
                .resources
                .iter()
                .any(|r| substitute(r, request).is_some_and(|r| glob(&r, &request.resource)))
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

/// A pattern with its policy variables (`${aws:PrincipalTag/tenant_id}`, ...) replaced by the
/// request's values. None when a variable has no single value: IAM then matches nothing
/// (a missing variable never widens a statement). The template uses no `${*}`-style escapes;
/// one would panic here.
pub fn substitute(pattern: &str, request: &Request) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        let key = &rest[start + 2..end];
        assert!(
            !matches!(key, "*" | "?" | "$"),
            "policy escape ${{{key}}} is not evaluated by this test"
        );
        match request.context.get(key).map(Vec::as_slice) {
            Some([value]) => out.push_str(value),
            _ => return None,
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

impl Condition {
    /// The operators evaluated: `StringEquals`, `StringLike`, `StringNotEquals`,
    /// `StringNotLike`, `ArnEquals`, `ArnLike`, `Bool`, each with `ForAllValues:` /
    /// `ForAnyValue:` and `...IfExists`, and `Null`.
    pub fn holds(&self, request: &Request) -> bool {
        let present = request.context.get(&self.key).filter(|v| !v.is_empty());
        if self.operator == "Null" {
            let want_absent = match self.values.as_slice() {
                [v] if v == "true" => true,
                [v] if v == "false" => false,
                other => panic!("Null takes true or false, not {other:?}"),
            };
            return present.is_none() == want_absent;
        }
        let (set, rest) = match self.operator.split_once(':') {
            Some((q @ ("ForAllValues" | "ForAnyValue"), op)) => (Some(q), op),
            _ => (None, self.operator.as_str()),
        };
        let (op, if_exists) = match rest.strip_suffix("IfExists") {
            Some(op) => (op, true),
            None => (rest, false),
        };
        let matches: fn(&str, &str) -> bool = match op {
            "StringEquals" | "ArnEquals" | "Bool" => |p, v| p == v,
            "StringLike" | "ArnLike" => glob,
            "StringNotEquals" => |p, v| p != v,
            "StringNotLike" => |p, v| !glob(p, v),
            other => panic!(
                "condition operator {} ({other}) is not evaluated by this test",
                self.operator
            ),
        };
        let negated = op.contains("Not");
        // The condition's values with their policy variables replaced; a value whose
        // variable is missing matches nothing.
        let patterns: Vec<String> = self
            .values
            .iter()
            .filter_map(|p| substitute(p, request))
            .collect();
        // A negated operator holds when the value matches none of the patterns.
        let value_matches = |v: &str| {
            if negated {
                patterns.iter().all(|p| matches(p, v))
            } else {
                patterns.iter().any(|p| matches(p, v))
            }
        };
        match (set, present) {
            // ForAllValues holds for an absent or empty key (hence the templates' Null checks).
            (Some("ForAllValues"), None) => true,
            (Some("ForAllValues"), Some(values)) => values.iter().all(|v| value_matches(v)),
            (Some(_), None) => false,
            (Some(_), Some(values)) => values.iter().any(|v| value_matches(v)),
            (None, None) => if_exists,
            (None, Some(values)) => values.iter().any(|v| value_matches(v)),
        }
    }
}

/// The decision for `request` under `statements`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allows it.
    NotAllowed,
    /// A `Deny` statement matches (its origin).
    Denied(String),
}

/// The decision of a role's trust policy for `principal` (a role ARN) making `request`.
pub fn decide_trust(statements: &[Statement], principal: &str, request: &Request) -> Decision {
    let own: Vec<Statement> = statements
        .iter()
        .filter(|s| {
            s.principals
                .as_ref()
                .expect("trust statements")
                .iter()
                .any(|p| p == principal)
        })
        .cloned()
        .collect();
    decide(&own, request)
}

pub fn decide(statements: &[Statement], request: &Request) -> Decision {
    if let Some(deny) = statements
        .iter()
        .find(|s| s.effect == Effect::Deny && s.applies(request))
    {
        return Decision::Denied(deny.origin.clone());
    }
    if statements
        .iter()
        .any(|s| s.effect == Effect::Allow && s.applies(request))
    {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam_coverage::template::load;

    fn statements(yaml: &str) -> Vec<Statement> {
        match load(yaml) {
            Node::Seq(items) => items.iter().map(|s| Statement::parse("p", s)).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn request(action: &str, resource: &str, context: &[(&str, &[&str])]) -> Request {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: context
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/t";

    #[test]
    fn wildcards_match_actions_case_insensitively_and_resources_exactly() {
        assert!(glob("dynamodb:*", "dynamodb:getitem"));
        assert!(glob(
            "arn:aws:s3:::b/exports/*",
            "arn:aws:s3:::b/exports/t/x.json"
        ));
        assert!(!glob("arn:aws:s3:::b/exports/*", "arn:aws:s3:::b/other/x"));
        assert!(glob("tn_?", "tn_1") && !glob("tn_?", "tn_12"));
        let s = statements(
            "- {Effect: Allow, Action: 'DynamoDB:Get*', Resource: 'arn:aws:dynamodb:*:*:table/t'}",
        );
        assert_eq!(
            decide(&s, &request("dynamodb:GetItem", TABLE, &[])),
            Decision::Allowed
        );
        let other = format!("{TABLE}x");
        assert_eq!(
            decide(&s, &request("dynamodb:GetItem", &other, &[])),
            Decision::NotAllowed
        );
        assert_eq!(
            decide(&s, &request("dynamodb:PutItem", TABLE, &[])),
            Decision::NotAllowed
        );
    }

    #[test]
    fn leading_keys_and_encryption_context_conditions_are_evaluated() {
        let s = statements(
            "- Effect: Allow\n  Action: dynamodb:GetItem\n  Resource: '*'\n  Condition:\n    ForAllValues:StringLike:\n      dynamodb:LeadingKeys: ['AUTHFAIL#*']\n- Effect: Allow\n  Action: kms:Decrypt\n  Resource: '*'\n  Condition:\n    ForAllValues:StringEquals: {kms:EncryptionContextKeys: [tenant_id]}\n    'Null': {kms:EncryptionContextKeys: 'false'}\n    StringLike: {kms:EncryptionContext:tenant_id: tn_*}\n",
        );
        let get = |pk: &str| {
            request(
                "dynamodb:GetItem",
                TABLE,
                &[("dynamodb:LeadingKeys", &[pk])],
            )
        };
        assert_eq!(decide(&s, &get("AUTHFAIL#abc")), Decision::Allowed);
        assert_eq!(decide(&s, &get("T#tn_1")), Decision::NotAllowed);
        let decrypt = |ctx: &[(&str, &[&str])]| decide(&s, &request("kms:Decrypt", "k", ctx));
        assert_eq!(
            decrypt(&[
                ("kms:EncryptionContextKeys", &["tenant_id"]),
                ("kms:EncryptionContext:tenant_id", &["tn_1"]),
            ]),
            Decision::Allowed
        );
        // No context at all: the Null check refuses what ForAllValues alone would allow.
        assert_eq!(decrypt(&[]), Decision::NotAllowed);
        assert_eq!(
            decrypt(&[
                ("kms:EncryptionContextKeys", &["tenant_id", "other"]),
                ("kms:EncryptionContext:tenant_id", &["tn_1"]),
            ]),
            Decision::NotAllowed
        );
    }

    #[test]
    fn an_explicit_deny_wins() {
        let s = statements(
            "- {Effect: Allow, Action: 's3:*', Resource: '*'}\n- {Sid: NoDelete, Effect: Deny, Action: s3:DeleteObject, Resource: '*'}",
        );
        assert_eq!(
            decide(&s, &request("s3:GetObject", "arn:aws:s3:::b/k", &[])),
            Decision::Allowed
        );
        assert_eq!(
            decide(&s, &request("s3:DeleteObject", "arn:aws:s3:::b/k", &[])),
            Decision::Denied("p/NoDelete".into())
        );
    }
}
