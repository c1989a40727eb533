//! template.yaml as CloudFormation reads it: the short-form intrinsics (`!Ref`, `!GetAtt`,
//! `!Sub`, `!If`, ...) kept as their long forms (`{"Ref": ..}`, `{"Fn::GetAtt": ..}`), then
//! resolved against the physical names of one test deployment (the emulator's tables, queues,
//! key and bucket, a fake account and region). yaml_rust2's document loader drops tags, so
//! the document is built here from the parser's events.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, EventReceiver, Parser};

use super::policy::Statement;

/// A YAML node with intrinsics in their long form.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map(entries) => entries,
            _ => &[],
        }
    }

    /// A string or a list of strings, as IAM's `Action` and `Resource` are written.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Node::Str(s) => vec![s.clone()],
            Node::Seq(items) => items
                .iter()
                .map(|i| i.str().expect("a list of strings").to_owned())
                .collect(),
            Node::Map(_) => panic!("expected a string or a list of strings: {self:?}"),
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Builds [`Node`]s from parser events; a tagged node `!X v` becomes `{"Fn::X": v}`
/// (`!Ref v` becomes `{"Ref": v}`).
#[derive(Default)]
struct Builder {
    stack: Vec<(Node, Option<String>, Option<String>)>,
    done: Option<Node>,
}

fn intrinsic(tag: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    let tag = tag?;
    (tag.handle == "!").then(|| match tag.suffix.as_str() {
        "Ref" | "Condition" => tag.suffix.clone(),
        other => format!("Fn::{other}"),
    })
}

impl Builder {
    fn push(&mut self, node: Node, tag: Option<String>) {
        let node = match tag {
            Some(name) => Node::Map(vec![(name, node)]),
            None => node,
        };
        match self.stack.last_mut() {
            None => self.done = Some(node),
            Some((Node::Seq(items), _, _)) => items.push(node),
            Some((Node::Map(entries), _, key)) => match key.take() {
                None => {
                    *key = Some(node.str().expect("string mapping keys").to_owned());
                }
                Some(k) => entries.push((k, node)),
            },
            Some((Node::Str(_), _, _)) => unreachable!("scalars hold nothing"),
        }
    }
}

impl EventReceiver for Builder {
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Scalar(value, _, _, tag) => self.push(Node::Str(value), intrinsic(tag)),
            Event::SequenceStart(_, tag) => {
                self.stack.push((Node::Seq(vec![]), intrinsic(tag), None))
            }
            Event::MappingStart(_, tag) => {
                self.stack.push((Node::Map(vec![]), intrinsic(tag), None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, tag, _) = self.stack.pop().expect("balanced events");
                self.push(node, tag);
            }
            Event::Alias(_) => panic!("template.yaml uses no YAML aliases"),
            _ => {}
        }
    }
}

pub fn load(text: &str) -> Node {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .expect("template.yaml is YAML");
    builder.done.expect("a document")
}

pub fn read() -> Node {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    load(&std::fs::read_to_string(path).expect("template.yaml"))
}

/// What `Ref` and `Fn::GetAtt` give in one deployment: parameters, pseudo parameters and the
/// physical ids and attributes of the template's resources.
#[derive(Default)]
pub struct Physical {
    /// `Ref` of a logical id, parameter or pseudo parameter (`AWS::Region`, ...).
    pub refs: BTreeMap<String, String>,
    /// `Fn::GetAtt`, keyed `Logical.Attribute`.
    pub atts: BTreeMap<String, String>,
    /// The template's conditions, evaluated.
    pub conditions: BTreeMap<String, bool>,
}

impl Physical {
    fn reference(&self, name: &str) -> String {
        if let Some((logical, att)) = name.split_once('.') {
            return self.att(logical, att);
        }
        self.refs
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("Ref {name}: nothing known for it in this test"))
    }

    fn att(&self, logical: &str, att: &str) -> String {
        self.atts
            .get(&format!("{logical}.{att}"))
            .cloned()
            .unwrap_or_else(|| panic!("GetAtt {logical}.{att}: nothing known for it in this test"))
    }

    /// `Fn::Sub` of a template string: `${Name}` and `${Logical.Attr}`; `${!x}` is literal.
    fn sub(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closed ${") + start;
            let name = &rest[start + 2..end];
            match name.strip_prefix('!') {
                Some(literal) => out.push_str(&format!("${{{literal}}}")),
                None => out.push_str(&self.reference(name)),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Evaluates a condition expression (`Fn::Not`, `Fn::Equals`, `Fn::And`, `Fn::Or`,
    /// `Condition`).
    pub fn condition(&self, node: &Node) -> bool {
        let [(f, arg)] = node.entries() else {
            panic!("a condition function: {node:?}")
        };
        let args = || match arg {
            Node::Seq(items) => items.clone(),
            _ => panic!("{f} takes a list"),
        };
        match f.as_str() {
            "Fn::Not" => !self.condition(&args()[0]),
            "Fn::And" => args().iter().all(|c| self.condition(c)),
            "Fn::Or" => args().iter().any(|c| self.condition(c)),
            "Fn::Equals" => {
                let v: Vec<Node> = args().iter().filter_map(|a| self.resolve(a)).collect();
                v[0] == v[1]
            }
            "Condition" => self.conditions[arg.str().expect("a condition name")],
            other => panic!("condition function {other} is not evaluated by this test"),
        }
    }

    /// The node with every intrinsic resolved; `None` for `AWS::NoValue`.
    pub fn resolve(&self, node: &Node) -> Option<Node> {
        match node {
            Node::Str(_) => Some(node.clone()),
            Node::Seq(items) => Some(Node::Seq(
                items.iter().filter_map(|i| self.resolve(i)).collect(),
            )),
            Node::Map(entries) => {
                if let [(f, arg)] = entries.as_slice() {
                    if f == "Ref" || f.starts_with("Fn::") {
                        return self.function(f, arg);
                    }
                }
                Some(Node::Map(
                    entries
                        .iter()
                        .filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v)))
                        .collect(),
                ))
            }
        }
    }

    fn resolved_str(&self, node: &Node) -> String {
        match self.resolve(node) {
            Some(Node::Str(s)) => s,
            other => panic!("expected a string, resolved to {other:?}"),
        }
    }

    fn function(&self, f: &str, arg: &Node) -> Option<Node> {
        let list = || match arg {
            Node::Seq(items) => items.clone(),
            _ => panic!("{f} takes a list: {arg:?}"),
        };
        Some(Node::Str(match f {
            "Ref" => {
                let name = arg.str().expect("Ref of a name");
                if name == "AWS::NoValue" {
                    return None;
                }
                self.reference(name)
            }
            "Fn::GetAtt" => match arg {
                Node::Str(s) => {
                    let (logical, att) = s.split_once('.').expect("Logical.Attribute");
                    self.att(logical, att)
                }
                _ => {
                    let l = list();
                    self.att(&self.resolved_str(&l[0]), &self.resolved_str(&l[1]))
                }
            },
            "Fn::Sub" => match arg {
                Node::Str(s) => self.sub(s),
                _ => panic!("Fn::Sub with a variable map is not used by the template"),
            },
            "Fn::Join" => {
                let l = list();
                let delimiter = self.resolved_str(&l[0]);
                match self.resolve(&l[1]) {
                    Some(Node::Seq(parts)) => parts
                        .iter()
                        .map(|p| p.str().expect("joined strings").to_owned())
                        .collect::<Vec<_>>()
                        .join(&delimiter),
                    other => panic!("Fn::Join of {other:?}"),
                }
            }
            "Fn::If" => {
                let l = list();
                let name = l[0].str().expect("a condition name");
                let chosen = if self.conditions[name] { &l[1] } else { &l[2] };
                return self.resolve(chosen);
            }
            other => panic!("intrinsic {other} is not resolved by this test"),
        }))
    }
}

/// Every `AWS::Serverless::Function` of the template, by logical id.
pub fn functions(template: &Node) -> Vec<(String, &Node)> {
    template
        .get("Resources")
        .expect("Resources")
        .entries()
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Node::str) == Some("AWS::Serverless::Function"))
        .map(|(name, r)| (name.clone(), r))
        .collect()
}

/// The statements of the IAM role a function runs under (its `Role: !GetAtt X.Arn`, an
/// `AWS::IAM::Role` with inline `Policies`), resolved in `physical`.
pub fn role_statements(template: &Node, function: &str, physical: &Physical) -> Vec<Statement> {
    policy_statements(template, &function_role(template, function), physical)
}

/// The logical id of the role `function` runs under.
pub fn function_role(template: &Node, function: &str) -> String {
    let resources = template.get("Resources").expect("Resources");
    let props = resources
        .get(function)
        .and_then(|f| f.get("Properties"))
        .unwrap_or_else(|| panic!("{function}: no such function"));
    for sam_only in ["Policies", "ManagedPolicyArns"] {
        // SAM policy templates would need SAM's expansion; the template uses explicit roles.
        assert!(
            props.get(sam_only).is_none(),
            "{function}: {sam_only} on the function is not evaluated by this test"
        );
    }
    let role = match props.get("Role") {
        Some(Node::Map(e)) if e.len() == 1 && e[0].0 == "Fn::GetAtt" => {
            let target = e[0].1.str().expect("!GetAtt Role.Arn");
            target
                .strip_suffix(".Arn")
                .expect("a role's Arn")
                .to_owned()
        }
        other => panic!("{function}: Role must be !GetAtt <Role>.Arn, is {other:?}"),
    };
    role
}

/// The statements of the trust policy of `role`, resolved in `physical`.
pub fn trust_statements(template: &Node, role: &str, physical: &Physical) -> Vec<Statement> {
    let document = template
        .get("Resources")
        .and_then(|r| r.get(role))
        .and_then(|r| r.get("Properties"))
        .and_then(|p| p.get("AssumeRolePolicyDocument"))
        .unwrap_or_else(|| panic!("{role}: no trust policy"));
    let document = physical.resolve(document).expect("a trust policy");
    let list = match document.get("Statement").expect("statements") {
        Node::Seq(items) => items.clone(),
        single => vec![single.clone()],
    };
    let origin = format!("{role}/trust");
    list.iter()
        .map(|s| Statement::parse_trust(&origin, s))
        .collect()
}

/// The statements of the inline policies of `role`, resolved in `physical`.
pub fn policy_statements(template: &Node, role: &str, physical: &Physical) -> Vec<Statement> {
    let resources = template.get("Resources").expect("Resources");
    let role_node = resources.get(role).expect("the role resource");
    assert_eq!(
        role_node.get("Type").and_then(Node::str),
        Some("AWS::IAM::Role"),
        "{role}"
    );
    let role_props = role_node.get("Properties").expect("role properties");
    assert!(
        role_props.get("ManagedPolicyArns").is_none(),
        "{role}: managed policies are not evaluated by this test"
    );
    let policies = physical
        .resolve(role_props.get("Policies").expect("inline Policies"))
        .expect("policies");
    let Node::Seq(policies) = policies else {
        panic!("{role}: Policies is a list")
    };
    policies
        .iter()
        .flat_map(|p| {
            let name = p
                .get("PolicyName")
                .and_then(Node::str)
                .unwrap_or("?")
                .to_owned();
            let statements = p
                .get("PolicyDocument")
                .and_then(|d| d.get("Statement"))
                .expect("a policy document with statements");
            let list = match statements {
                Node::Seq(items) => items.clone(),
                single => vec![single.clone()],
            };
            let origin = format!("{role}/{name}");
            list.into_iter().map(move |s| Statement::parse(&origin, &s))
        })
        .collect()
}

/// Removes `action` from the statement `sid` of policy `policy` in role `role` of a parsed
/// template (the whole statement when it was its only action). Panics when there is no such
/// statement or action, so a test that uses it cannot silently remove nothing.
pub fn remove_grant(template: &mut Node, role: &str, policy: &str, sid: &str, action: &str) {
    let statements = template
        .get_mut("Resources")
        .and_then(|r| r.get_mut(role))
        .and_then(|r| r.get_mut("Properties"))
        .and_then(|p| p.get_mut("Policies"))
        .and_then(|p| match p {
            Node::Seq(items) => items
                .iter_mut()
                .find(|i| i.get("PolicyName").and_then(Node::str) == Some(policy)),
            _ => None,
        })
        .and_then(|p| p.get_mut("PolicyDocument"))
        .and_then(|d| d.get_mut("Statement"))
        .unwrap_or_else(|| panic!("{role}/{policy}: no statements"));
    let Node::Seq(list) = statements else {
        panic!("statements are a list")
    };
    let at = list
        .iter()
        .position(|s| s.get("Sid").and_then(Node::str) == Some(sid))
        .unwrap_or_else(|| panic!("{role}/{policy}: no statement {sid}"));
    let actions = list[at].get_mut("Action").expect("Action");
    match actions {
        Node::Str(a) if a == action => {
            list.remove(at);
        }
        Node::Seq(items) => {
            let before = items.len();
            items.retain(|i| i.str() != Some(action));
            assert_eq!(
                items.len() + 1,
                before,
                "{role}/{policy}/{sid}: no {action}"
            );
            if items.is_empty() {
                list.remove(at);
            }
        }
        other => panic!("{role}/{policy}/{sid}: {action} not in {other:?}"),
    }
}

/// The statement `sid` of policy `policy` in role `role` of a parsed template, to change it
/// in a test. Panics when there is none.
pub fn statement_mut<'a>(
    template: &'a mut Node,
    role: &str,
    policy: &str,
    sid: &str,
) -> &'a mut Node {
    let statements = template
        .get_mut("Resources")
        .and_then(|r| r.get_mut(role))
        .and_then(|r| r.get_mut("Properties"))
        .and_then(|p| p.get_mut("Policies"))
        .and_then(|p| match p {
            Node::Seq(items) => items
                .iter_mut()
                .find(|i| i.get("PolicyName").and_then(Node::str) == Some(policy)),
            _ => None,
        })
        .and_then(|p| p.get_mut("PolicyDocument"))
        .and_then(|d| d.get_mut("Statement"))
        .unwrap_or_else(|| panic!("{role}/{policy}: no statements"));
    let Node::Seq(list) = statements else {
        panic!("statements are a list")
    };
    list.iter_mut()
        .find(|s| s.get("Sid").and_then(Node::str) == Some(sid))
        .unwrap_or_else(|| panic!("{role}/{policy}: no statement {sid}"))
}

/// Removes the entry `key` of a mapping node; panics when it has none.
pub fn remove_entry(node: &mut Node, key: &str) {
    let Node::Map(entries) = node else {
        panic!("a mapping")
    };
    let before = entries.len();
    entries.retain(|(k, _)| k != key);
    assert_eq!(entries.len() + 1, before, "no {key} to remove");
}

/// Sets the entry `key` of a mapping node.
pub fn set_entry(node: &mut Node, key: &str, value: Node) {
    let Node::Map(entries) = node else {
        panic!("a mapping")
    };
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => entries.push((key.to_owned(), value)),
    }
}
