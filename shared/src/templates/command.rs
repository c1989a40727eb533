//! The operator's template command, typed in the Bitrix24 chat like any reply:
//!
//! ```text
//! /template <name>[@<language>] [<parameter> | <parameter> | ...]
//! ```
//!
//! Parameters are separated by `|` and fill the template's placeholders in the order the
//! definition shows them: the header's, then the body's, then each URL button's suffix.
//! A media header (image, video, document) takes an `https://` link as its parameter.
//! Without `@<language>` the template's only approved language is used.
//!
//! Before anything is sent the parameters are checked against the stored definition (Meta,
//! "Send template messages" and the template components reference): their count, text
//! parameters without line breaks, tabs or more than 4 consecutive spaces, a header text
//! parameter of at most 60 characters, URL suffixes without spaces. Meta's message for a
//! mismatch (132000, 132012, ...) would come only after a send was tried; ours names the
//! part that is wrong.

use serde_json::{json, Value};

use super::Template;
use crate::graph::TemplateMessage;

/// What starts a template command.
pub const PREFIX: &str = "/template";
/// The command's syntax, for the operator's notes.
pub const SYNTAX: &str = "/template <name>[@<language>] <parameter 1> | <parameter 2> | ...";
/// Longest header text parameter (Meta: 60 characters).
pub const HEADER_PARAM_MAX: usize = 60;
/// Longest body parameter we accept (the whole body may not exceed 1,024 characters).
pub const BODY_PARAM_MAX: usize = 1024;

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub language: Option<String>,
    pub params: Vec<String>,
}

/// The command in an operator's text, if the text is one (`None`: an ordinary reply).
/// `Err` when it starts like a command but names no template.
pub fn parse(text: &str) -> Option<Result<Command, String>> {
    let t = text.trim();
    let rest = t.strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let rest = rest.trim_start();
    let (head, params) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    if head.is_empty() {
        return Some(Err(format!("name a template: {SYNTAX}")));
    }
    let (name, language) = match head.split_once('@') {
        Some((n, l)) => (n, Some(l.to_owned()).filter(|l| !l.is_empty())),
        None => (head, None),
    };
    let params = if params.is_empty() {
        Vec::new()
    } else {
        params.split('|').map(|p| p.trim().to_owned()).collect()
    };
    Some(Ok(Command {
        name: name.to_owned(),
        language,
        params,
    }))
}

/// The placeholders of a text (`{{1}}` or `{{name}}`), each once, in order of appearance.
fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let p = after[..end].trim().to_owned();
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
        rest = &after[end + 2..];
    }
    out
}

/// One slot to fill, from the definition; the template picker names it to the operator in
/// the portal's language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    HeaderText(String),
    HeaderMedia(&'static str),
    Body(String),
    UrlButton(usize),
}

fn upper(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn slots(t: &Template) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for c in &t.components {
        match upper(c, "type").as_str() {
            "HEADER" => match upper(c, "format").as_str() {
                "TEXT" | "" => {
                    let text = c.get("text").and_then(Value::as_str).unwrap_or_default();
                    out.extend(placeholders(text).into_iter().map(Slot::HeaderText));
                }
                "IMAGE" => out.push(Slot::HeaderMedia("image")),
                "VIDEO" => out.push(Slot::HeaderMedia("video")),
                "DOCUMENT" => out.push(Slot::HeaderMedia("document")),
                other => {
                    return Err(format!(
                        "template {}: a {} header cannot be filled from the chat",
                        t.name,
                        other.to_ascii_lowercase()
                    ))
                }
            },
            "BODY" => {
                let text = c.get("text").and_then(Value::as_str).unwrap_or_default();
                out.extend(placeholders(text).into_iter().map(Slot::Body));
            }
            "BUTTONS" => {
                let buttons = c.get("buttons").and_then(Value::as_array);
                for (i, b) in buttons.into_iter().flatten().enumerate() {
                    let url = b.get("url").and_then(Value::as_str).unwrap_or_default();
                    if upper(b, "type") == "URL" && url.contains("{{") {
                        out.push(Slot::UrlButton(i));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn check_text(what: &str, p: &str, max: usize) -> Result<(), String> {
    if p.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if p.contains(['\n', '\r', '\t']) {
        return Err(format!("{what} may not contain line breaks or tabs"));
    }
    if p.contains("     ") {
        return Err(format!(
            "{what} may not contain more than 4 spaces in a row"
        ));
    }
    if p.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    Ok(())
}

/// The template message for `command` with the definition `t`; `Err` tells the operator
/// what is wrong, and nothing is sent.
pub fn build(t: &Template, command: &Command) -> Result<TemplateMessage, String> {
    let slots = slots(t)?;
    if command.params.len() != slots.len() {
        let (mut header, mut body, mut buttons) = (0, 0, 0);
        for s in &slots {
            match s {
                Slot::HeaderText(_) | Slot::HeaderMedia(_) => header += 1,
                Slot::Body(_) => body += 1,
                Slot::UrlButton(_) => buttons += 1,
            }
        }
        return Err(format!(
            "template {} takes {} parameter(s) (header {header}, body {body}, buttons {buttons}), \
             {} given; separate parameters with |",
            t.name,
            slots.len(),
            command.params.len()
        ));
    }
    let named = t.parameter_format.as_deref() == Some("NAMED");
    let text_param = |name: &str, value: &str| {
        if named {
            json!({"type": "text", "parameter_name": name, "text": value})
        } else {
            json!({"type": "text", "text": value})
        }
    };
    let mut header = Vec::new();
    let mut body = Vec::new();
    let mut buttons = Vec::new();
    for (i, (slot, p)) in slots.iter().zip(&command.params).enumerate() {
        let what = format!("parameter {}", i + 1);
        match slot {
            Slot::HeaderText(name) => {
                check_text(&format!("{what} (header)"), p, HEADER_PARAM_MAX)?;
                header.push(text_param(name, p));
            }
            Slot::HeaderMedia(kind) => {
                let ok = p.starts_with("https://")
                    && p.len() > "https://".len()
                    && !p.contains(char::is_whitespace);
                if !ok {
                    return Err(format!(
                        "{what} (header) must be an https:// link to the {kind}"
                    ));
                }
                header.push(json!({"type": kind, *kind: {"link": p}}));
            }
            Slot::Body(name) => {
                check_text(&format!("{what} (body)"), p, BODY_PARAM_MAX)?;
                body.push(text_param(name, p));
            }
            Slot::UrlButton(index) => {
                if p.is_empty() || p.contains(char::is_whitespace) {
                    return Err(format!(
                        "{what} (button {}) must be a URL suffix without spaces",
                        index + 1
                    ));
                }
                buttons.push(json!({
                    "type": "button", "sub_type": "url", "index": index.to_string(),
                    "parameters": [{"type": "text", "text": p}]
                }));
            }
        }
    }
    let mut components = Vec::new();
    if !header.is_empty() {
        components.push(json!({"type": "header", "parameters": header}));
    }
    if !body.is_empty() {
        components.push(json!({"type": "body", "parameters": body}));
    }
    components.extend(buttons);
    Ok(TemplateMessage {
        name: t.name.clone(),
        language: t.language.clone(),
        components: if components.is_empty() {
            Value::Null
        } else {
            Value::Array(components)
        },
        // The stored copy's category: an authentication template is refused up front for a
        // BSUID-only customer (decision 0049).
        category: Some(t.category.clone()),
    })
}

/// Picks the approved template the command names among `approved`.
pub fn choose<'a>(approved: &'a [Template], command: &Command) -> Result<&'a Template, String> {
    let named: Vec<&Template> = approved.iter().filter(|t| t.name == command.name).collect();
    if named.is_empty() {
        return Err(format!(
            "there is no approved template named {}; {}",
            command.name,
            listing(approved)
        ));
    }
    match &command.language {
        Some(l) => named
            .iter()
            .find(|t| t.language.eq_ignore_ascii_case(l))
            .copied()
            .ok_or_else(|| {
                format!(
                    "template {} is not approved in {l}; its languages: {}",
                    command.name,
                    languages(&named)
                )
            }),
        None if named.len() == 1 => Ok(named[0]),
        None => Err(format!(
            "template {} exists in several languages ({}): write /template {}@<language> ...",
            command.name,
            languages(&named),
            command.name
        )),
    }
}

fn languages(ts: &[&Template]) -> String {
    ts.iter()
        .map(|t| t.language.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What each parameter of `t` fills, in the command's order (`header {{1}}`, `body
/// {{order}}`, `header image link`, `button 1 link suffix`), for the template picker.
pub fn parameter_labels(t: &Template) -> Result<Vec<String>, String> {
    Ok(slots(t)?.iter().map(Slot::to_string).collect())
}

/// What each parameter of `t` fills, in the command's order; `Err` when the template
/// cannot be filled from the chat.
pub fn parameter_slots(t: &Template) -> Result<Vec<Slot>, String> {
    slots(t)
}

impl std::fmt::Display for Slot {
    /// The English label.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::HeaderText(p) => write!(f, "header {{{{{p}}}}}"),
            Slot::HeaderMedia(kind) => write!(f, "header {kind} link (https://...)"),
            Slot::Body(p) => write!(f, "body {{{{{p}}}}}"),
            Slot::UrlButton(i) => write!(f, "button {} link suffix", i + 1),
        }
    }
}

/// The command text for `name@language` with `params`, as an operator would type it;
/// `Err` when a parameter holds the separator `|`, which the command cannot carry.
pub fn command_text(name: &str, language: &str, params: &[String]) -> Result<String, String> {
    if let Some(i) = params.iter().position(|p| p.contains('|')) {
        return Err(format!("parameter {} may not contain \"|\"", i + 1));
    }
    let mut text = format!("{PREFIX} {name}@{language}");
    if !params.is_empty() {
        text.push(' ');
        text.push_str(&params.join(" | "));
    }
    Ok(text)
}

/// The approved templates and the command's syntax, for the operator.
pub fn listing(approved: &[Template]) -> String {
    if approved.is_empty() {
        return "no approved templates are available for this number".to_owned();
    }
    let mut names: Vec<String> = approved
        .iter()
        .map(|t| {
            let n = slots(t).map(|s| s.len()).unwrap_or(0);
            match n {
                0 => format!("{}@{}", t.name, t.language),
                1 => format!("{}@{} (1 parameter)", t.name, t.language),
                n => format!("{}@{} ({n} parameters)", t.name, t.language),
            }
        })
        .collect();
    names.sort();
    format!(
        "approved templates: {}. Pick one with the \"WhatsApp templates\" button above the \
         message field, or send one with {SYNTAX}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_update() -> Template {
        Template {
            waba: "102290129340398".into(),
            id: "1".into(),
            name: "order_update".into(),
            language: "en_US".into(),
            status: "APPROVED".into(),
            category: "UTILITY".into(),
            quality: None,
            parameter_format: None,
            components: vec![
                json!({"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"}),
                json!({"type": "BODY", "text": "Hi {{1}}, your order ships on {{2}}. {{1}}!"}),
                json!({"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Stop"},
                    {"type": "URL", "text": "Track", "url": "https://example.com/t/{{1}}"}
                ]}),
            ],
        }
    }

    fn cmd(s: &str) -> Command {
        parse(s).unwrap().unwrap()
    }

    #[test]
    fn parses_the_command() {
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("/templates x"), None);
        assert!(parse("/template").unwrap().is_err());
        assert_eq!(
            cmd("/template order_update@es  A 1 | next Monday |x"),
            Command {
                name: "order_update".into(),
                language: Some("es".into()),
                params: vec!["A 1".into(), "next Monday".into(), "x".into()],
            }
        );
    }

    #[test]
    fn builds_components_in_definition_order() {
        let t = order_update();
        let m = build(&t, &cmd("/template order_update 42 | Ann | May 3 | abc")).unwrap();
        assert_eq!(
            m.components,
            json!([
                {"type": "header", "parameters": [{"type": "text", "text": "42"}]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Ann"}, {"type": "text", "text": "May 3"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "abc"}]}
            ])
        );
        assert_eq!(m.language, "en_US");
    }

    #[test]
    fn refuses_bad_parameters() {
        let t = order_update();
        let e = build(&t, &cmd("/template order_update 42 | Ann")).unwrap_err();
        assert!(e.contains("takes 4 parameter(s)"), "{e}");
        let long = "x".repeat(61);
        let e = build(
            &t,
            &cmd(&format!("/template order_update {long} | a | b | c")),
        )
        .unwrap_err();
        assert!(e.contains("header") && e.contains("60"), "{e}");
        let e = build(&t, &cmd("/template order_update 1 | a      b | c | d")).unwrap_err();
        assert!(e.contains("4 spaces"), "{e}");
        let e = build(&t, &cmd("/template order_update 1 | a | c | d e")).unwrap_err();
        assert!(e.contains("button"), "{e}");
        let mut img = order_update();
        img.components[0] = json!({"type": "HEADER", "format": "IMAGE"});
        let e = build(&img, &cmd("/template order_update http://x | a | b | c")).unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let ok = build(
            &img,
            &cmd("/template order_update https://x/y.png | a | b | c"),
        )
        .unwrap();
        assert_eq!(
            ok.components[0]["parameters"][0]["image"]["link"],
            "https://x/y.png"
        );
    }

    #[test]
    fn named_parameters_carry_their_names() {
        let mut t = order_update();
        t.parameter_format = Some("NAMED".into());
        t.components = vec![json!({"type": "BODY", "text": "Hi {{first_name}}"})];
        let m = build(&t, &cmd("/template order_update Ann")).unwrap();
        assert_eq!(
            m.components[0]["parameters"][0],
            json!({"type": "text", "parameter_name": "first_name", "text": "Ann"})
        );
    }

    #[test]
    fn chooses_by_name_and_language_and_lists() {
        let a = order_update();
        let mut b = order_update();
        b.language = "es".into();
        let all = vec![a, b];
        assert!(choose(&all, &cmd("/template order_update x")).is_err());
        assert_eq!(
            choose(&all, &cmd("/template order_update@es"))
                .unwrap()
                .language,
            "es"
        );
        let e = choose(&all, &cmd("/template nope")).unwrap_err();
        assert!(e.contains("order_update@en_US (4 parameters)"), "{e}");
        assert!(listing(&[]).contains("no approved templates"));
    }

    #[test]
    fn the_picker_labels_each_parameter_and_writes_the_command() {
        assert_eq!(
            parameter_labels(&order_update()).unwrap(),
            [
                "header {{1}}",
                "body {{1}}",
                "body {{2}}",
                "button 2 link suffix"
            ]
        );
        let params: Vec<String> = ["A-17", "Ann", "Monday", "a17"].map(String::from).to_vec();
        let text = command_text("order_update", "en_US", &params).unwrap();
        assert_eq!(
            text,
            "/template order_update@en_US A-17 | Ann | Monday | a17"
        );
        // What the picker writes is what the send worker reads back.
        assert_eq!(
            cmd(&text),
            Command {
                name: "order_update".into(),
                language: Some("en_US".into()),
                params,
            }
        );
        assert_eq!(
            command_text("welcome", "en", &[]).unwrap(),
            "/template welcome@en"
        );
        assert!(command_text("x", "en", &["a|b".into()]).is_err());
    }
}
