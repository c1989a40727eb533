//! Bitrix24 chat BB-code into the formatting of the customer's channel.
//!
//! Operators' replies reach us (`OnImConnectorMessageAdd`, `message.text`) as Bitrix24 chat
//! text: BB-code plus plain newlines. apidocs "Text Formatting (BB Codes)" and "Message
//! Formatting" (api-reference/chat-bots/chat-bots-v2/imbot.v2/messages/message-formatting,
//! api-reference/chats/messages/formatting) list what the chat renders:
//!
//! - `[b]`, `[i]`, `[u]`, `[s]`, `[size=N]`, `[color=#HEX]`;
//! - `[url]...[/url]`, `[url=URL]...[/url]`, `[user=ID]...[/user]`, `[chat=ID]...[/chat]`,
//!   `[context=dialog/message]...[/context]`;
//! - quotes: `>>text` at the start of a line, and a "full quote" block between two lines of
//!   dashes (`------...`); `[code]...[/code]`;
//! - `[img size=SIZE]URL [/img]`, `[icon=URL size=.. title=..]` (no closing tag);
//! - `[put=cmd]text[/put]`, `[send=cmd]text[/send]`, `[call=number]text[/call]`,
//!   `[call]number[/call]`, `[timestamp=UNIX format=..]`, `[disk=ID]`;
//! - line breaks: `[br]`, `#BR#`, `\n`.
//!
//! Older material and other Bitrix24 modules also use `[quote]...[/quote]`, `[list]`/`[*]`,
//! `[font=..]` and alignment tags; they are handled too. Tag names are case-insensitive
//! (`[B]` = `[b]`), as in Bitrix24.
//!
//! Targets:
//! - **WhatsApp** ("Formatting messages", WhatsApp Help Center): `*bold*`, `_italic_`,
//!   `~strikethrough~`, ```` ```monospace``` ````, `> quote` lines, `- item` lists. There is
//!   no underline: `[u]` keeps its text only. Markers must touch the text (`*bold*`, not
//!   `* bold *`) and do not span lines, so they are applied per line around the trimmed text.
//! - **Instagram** (Send API): plain text only; links stay inline as `text (url)`, quotes as
//!   `> ` lines, lists as `- ` lines.
//!
//! Rules for text that is not what Bitrix24 would render: an unknown tag with a matching
//! closing tag (`[foo]x[/foo]`) is stripped and its text kept; a bracket that opens no tag
//! (`[1]`, `[approx]` without `[/approx]`) stays as written, and so does a known tag that is
//! never closed (`[b]` alone, as Bitrix24 shows it); tags crossing each other
//! (`[b]a[i]b[/b]c[/i]`) keep their text and lose the inner formatting; a stray closing tag of
//! a known name is dropped. HTML entities are left as they
//! are (Bitrix24 does not document escaping in connector events).

/// The channel the text is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// WhatsApp's own markup (`*bold*`...).
    WhatsApp,
    /// Plain text (Instagram).
    Plain,
}

/// Converts Bitrix24 BB-code for WhatsApp.
pub fn to_whatsapp(input: &str) -> String {
    convert(input, Flavor::WhatsApp)
}

/// Converts Bitrix24 BB-code to plain text (Instagram).
pub fn to_plain(input: &str) -> String {
    convert(input, Flavor::Plain)
}

/// Deepest tag nesting honoured; deeper tags are dropped (their text is kept).
const MAX_DEPTH: usize = 32;
/// Longest `[...]` looked at as a tag (a URL value can be long).
const MAX_TAG_LEN: usize = 2048;

/// Converts `input` for `flavor`.
pub fn convert(input: &str, flavor: Flavor) -> String {
    let normalized = input
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace("#BR#", "\n");
    let tokens = tokenize(&normalized);
    let nodes = build_tree(tokens);
    let mut out = String::new();
    render_nodes(&nodes, flavor, &Style::default(), &mut out);
    finish(&out)
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Text(String),
    Open {
        name: String,
        value: Option<String>,
        raw: String,
    },
    Close {
        name: String,
        raw: String,
    },
    /// The verbatim inside of `[code]...[/code]` (no tags are read there).
    Code(String),
}

/// Tags Bitrix24 (or other BB-code emitters it embeds) uses. Unknown names are text unless a
/// matching closing tag exists.
const KNOWN: &[&str] = &[
    "b",
    "i",
    "u",
    "s",
    "url",
    "quote",
    "code",
    "br",
    "user",
    "chat",
    "context",
    "icon",
    "img",
    "color",
    "size",
    "font",
    "list",
    "*",
    "send",
    "put",
    "call",
    "timestamp",
    "disk",
    "left",
    "right",
    "center",
    "justify",
    "p",
    "table",
    "tr",
    "td",
    "th",
    "attach",
];

/// Tags that never have a closing tag.
fn is_void(name: &str) -> bool {
    matches!(name, "br" | "*" | "icon" | "timestamp" | "disk" | "attach")
}

fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
}

/// Reads `[name]`, `[name=value]`, `[name attr=..]` or `[/name]` at the start of `s` (which
/// starts with `[`). Returns the token and its length in bytes.
fn read_tag(s: &str) -> Option<(Token, usize)> {
    let end = s[1..]
        .char_indices()
        .take_while(|(i, _)| *i < MAX_TAG_LEN)
        .find(|(_, c)| *c == ']' || *c == '[' || *c == '\n')
        .filter(|(_, c)| *c == ']')
        .map(|(i, _)| i + 1)?;
    let inner = &s[1..end];
    let raw = s[..=end].to_owned();
    if let Some(name) = inner.strip_prefix('/') {
        let name = name.trim();
        if !valid_name(name) {
            return None;
        }
        return Some((
            Token::Close {
                name: name.to_ascii_lowercase(),
                raw,
            },
            end + 1,
        ));
    }
    let split = inner
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(inner.len());
    let name = &inner[..split];
    if !valid_name(name) {
        return None;
    }
    let rest = &inner[split..];
    let value = if let Some(v) = rest.strip_prefix('=') {
        // `[url=https://x]`, `[icon=URL size=20 title=x]`: the value ends at the first space
        // for attribute-style tags; a URL value is kept whole.
        Some(unquote(v.trim()).to_owned())
    } else if rest.trim().is_empty() {
        None
    } else {
        Some(rest.trim().to_owned())
    };
    Some((
        Token::Open {
            name: name.to_ascii_lowercase(),
            value,
            raw,
        },
        end + 1,
    ))
}

fn valid_name(name: &str) -> bool {
    name == "*"
        || (!name.is_empty() && name.len() <= 16 && name.bytes().all(|b| b.is_ascii_alphabetic()))
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Finds `[/code]` (any case) in `s`.
fn find_code_end(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    lower.find("[/code]")
}

fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut rest = input;
    while let Some(pos) = rest.find('[') {
        text.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match read_tag(rest) {
            Some((Token::Open { name, .. }, len)) if name == "code" => {
                if !text.is_empty() {
                    tokens.push(Token::Text(std::mem::take(&mut text)));
                }
                let body = &rest[len..];
                match find_code_end(body) {
                    Some(end) => {
                        tokens.push(Token::Code(body[..end].to_owned()));
                        rest = &body[end + "[/code]".len()..];
                    }
                    None => {
                        // Never closed: the rest is kept as text, unformatted.
                        tokens.push(Token::Text(body.to_owned()));
                        rest = "";
                    }
                }
            }
            Some((token, len)) => {
                if !text.is_empty() {
                    tokens.push(Token::Text(std::mem::take(&mut text)));
                }
                tokens.push(token);
                rest = &rest[len..];
            }
            None => {
                text.push('[');
                rest = &rest[1..];
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    tokens
}

// ---------------------------------------------------------------------------------------
// Tree

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Code(String),
    Element {
        name: String,
        value: Option<String>,
        children: Vec<Node>,
    },
}

struct Frame {
    name: String,
    value: Option<String>,
    children: Vec<Node>,
}

fn push_text(children: &mut Vec<Node>, s: &str) {
    if let Some(Node::Text(t)) = children.last_mut() {
        t.push_str(s);
    } else {
        children.push(Node::Text(s.to_owned()));
    }
}

fn build_tree(tokens: Vec<Token>) -> Vec<Node> {
    // For each opening tag: does a closing tag of the same name follow it?
    let mut close_follows = vec![false; tokens.len()];
    let mut seen = std::collections::HashSet::new();
    for (i, token) in tokens.iter().enumerate().rev() {
        match token {
            Token::Open { name, .. } => close_follows[i] = seen.contains(name.as_str()),
            Token::Close { name, .. } => {
                seen.insert(name.as_str());
            }
            _ => {}
        }
    }
    let mut root: Vec<Node> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    fn top<'a>(stack: &'a mut [Frame], root: &'a mut Vec<Node>) -> &'a mut Vec<Node> {
        match stack.last_mut() {
            Some(f) => &mut f.children,
            None => root,
        }
    }
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Text(t) => push_text(top(&mut stack, &mut root), t),
            Token::Code(c) => top(&mut stack, &mut root).push(Node::Code(c.clone())),
            Token::Open { name, value, raw } => {
                if is_known(name) && is_void(name) {
                    top(&mut stack, &mut root).push(Node::Element {
                        name: name.clone(),
                        value: value.clone(),
                        children: Vec::new(),
                    });
                } else if !close_follows[i] {
                    // Never closed: not a tag, as Bitrix24 would show it.
                    push_text(top(&mut stack, &mut root), raw);
                } else if stack.len() >= MAX_DEPTH {
                    // Too deep: the tag is dropped, its text kept.
                } else {
                    stack.push(Frame {
                        name: name.clone(),
                        value: value.clone(),
                        children: Vec::new(),
                    });
                }
            }
            Token::Close { name, raw } => match stack.iter().rposition(|f| &f.name == name) {
                Some(at) => {
                    // Close it and everything opened inside it that was left open.
                    while stack.len() > at {
                        let frame = stack.pop().expect("len > at");
                        let node = if stack.len() == at {
                            Node::Element {
                                name: frame.name,
                                value: frame.value,
                                children: frame.children,
                            }
                        } else {
                            unclosed(frame)
                        };
                        append(top(&mut stack, &mut root), node);
                    }
                }
                None => {
                    if !is_known(name) {
                        push_text(top(&mut stack, &mut root), raw);
                    }
                    // A stray known closing tag is dropped.
                }
            },
        }
    }
    while let Some(frame) = stack.pop() {
        let node = unclosed(frame);
        append(top(&mut stack, &mut root), node);
    }
    root
}

/// A tag left open when an outer tag closed (crossed tags), or whose closing tag was taken
/// by another: the tag is dropped, its text kept.
fn unclosed(frame: Frame) -> Node {
    Node::Element {
        name: String::new(),
        value: None,
        children: frame.children,
    }
}

fn append(parent: &mut Vec<Node>, node: Node) {
    match node {
        Node::Text(t) => push_text(parent, &t),
        other => parent.push(other),
    }
}

// ---------------------------------------------------------------------------------------
// Rendering

#[derive(Clone, Copy, Default)]
struct Style {
    bold: bool,
    italic: bool,
    strike: bool,
}

fn render_nodes(nodes: &[Node], flavor: Flavor, style: &Style, out: &mut String) {
    for node in nodes {
        render(node, flavor, style, out);
    }
}

fn rendered(nodes: &[Node], flavor: Flavor, style: &Style) -> String {
    let mut s = String::new();
    render_nodes(nodes, flavor, style, &mut s);
    s
}

/// Wraps every non-blank line of `s` in `marker`, outside its leading and trailing spaces.
fn wrap_lines(s: &str, marker: &str) -> String {
    s.split('\n')
        .map(|line| {
            let core = line.trim();
            if core.is_empty() {
                return line.to_owned();
            }
            let start = line.len() - line.trim_start().len();
            let end = start + core.len();
            format!("{}{marker}{core}{marker}{}", &line[..start], &line[end..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ensure_line_start(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn quote_lines(s: &str) -> String {
    s.trim_matches('\n')
        .split('\n')
        .map(|l| {
            if l.trim().is_empty() {
                ">".to_owned()
            } else {
                format!("> {}", l.trim_end())
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn same_url(text: &str, url: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    norm(text) == norm(url)
}

fn render(node: &Node, flavor: Flavor, style: &Style, out: &mut String) {
    let (name, value, children) = match node {
        Node::Text(t) => {
            out.push_str(t);
            return;
        }
        Node::Code(c) => {
            match flavor {
                Flavor::WhatsApp if !c.trim().is_empty() => {
                    out.push_str("```");
                    out.push_str(c);
                    out.push_str("```");
                }
                _ => out.push_str(c),
            }
            return;
        }
        Node::Element {
            name,
            value,
            children,
        } => (name.as_str(), value.as_deref(), children),
    };
    let whatsapp = flavor == Flavor::WhatsApp;
    match name {
        "b" | "i" | "s" if whatsapp => {
            let (active, marker, next) = match name {
                "b" => (
                    style.bold,
                    "*",
                    Style {
                        bold: true,
                        ..*style
                    },
                ),
                "i" => (
                    style.italic,
                    "_",
                    Style {
                        italic: true,
                        ..*style
                    },
                ),
                _ => (
                    style.strike,
                    "~",
                    Style {
                        strike: true,
                        ..*style
                    },
                ),
            };
            let inner = rendered(children, flavor, &next);
            if active {
                out.push_str(&inner);
            } else {
                out.push_str(&wrap_lines(&inner, marker));
            }
        }
        "br" => out.push('\n'),
        "url" => {
            let text = rendered(children, flavor, style);
            let url = value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            match url {
                Some(url) if !text.trim().is_empty() && !same_url(&text, &url) => {
                    out.push_str(text.trim());
                    out.push_str(" (");
                    out.push_str(&url);
                    out.push(')');
                }
                Some(url) => out.push_str(&url),
                None => out.push_str(text.trim()),
            }
        }
        "img" => {
            let url = rendered(children, Flavor::Plain, &Style::default());
            out.push_str(url.trim());
        }
        "call" => {
            let text = rendered(children, flavor, style);
            match value.map(str::trim).filter(|v| !v.is_empty()) {
                Some(number) if !text.trim().is_empty() && text.trim() != number => {
                    out.push_str(text.trim());
                    out.push_str(" (");
                    out.push_str(number);
                    out.push(')');
                }
                Some(number) => out.push_str(number),
                None => out.push_str(text.trim()),
            }
        }
        "quote" => {
            let inner = rendered(children, flavor, style);
            if inner.trim().is_empty() {
                return;
            }
            ensure_line_start(out);
            out.push_str(&quote_lines(&inner));
            out.push('\n');
        }
        "list" => {
            let inner = rendered(children, flavor, style);
            ensure_line_start(out);
            out.push_str(inner.trim_matches('\n'));
            out.push('\n');
        }
        "*" => {
            ensure_line_start(out);
            out.push_str("- ");
        }
        "p" | "left" | "right" | "center" | "justify" | "tr" => {
            let inner = rendered(children, flavor, style);
            ensure_line_start(out);
            out.push_str(inner.trim_matches('\n'));
            out.push('\n');
        }
        "td" | "th" => {
            let inner = rendered(children, flavor, style);
            out.push_str(inner.trim());
            out.push(' ');
        }
        // Void tags with nothing to show in a plain message.
        "icon" | "timestamp" | "disk" | "attach" => {}
        // Everything else keeps its text: [u] (no underline on either channel), [color],
        // [size], [font], [user], [chat], [context], [send], [put], unknown paired tags,
        // dropped unclosed tags, and [b]/[i]/[s] in plain text.
        _ => render_nodes(children, flavor, style, out),
    }
}

/// Line-level rules that are not tags: `>>` quote lines, dash-delimited quote blocks,
/// trailing spaces, and surrounding blank lines.
fn finish(s: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut in_block = false;
    for line in s.split('\n') {
        let trimmed = line.trim();
        if trimmed.len() >= 10 && trimmed.bytes().all(|b| b == b'-') {
            in_block = !in_block;
            continue;
        }
        let line = line.trim_end();
        let line = match line.trim_start().strip_prefix(">>") {
            Some(rest) => format!("> {}", rest.trim_start()),
            None if in_block => {
                if line.is_empty() {
                    ">".to_owned()
                } else {
                    format!("> {line}")
                }
            }
            None => line.to_owned(),
        };
        lines.push(line);
    }
    let joined = lines.join("\n");
    joined.trim_matches('\n').to_owned()
}

#[cfg(test)]
mod tests;
