//! Bitrix24's "full quote": a block between two lines of dashes, whose first line names the
//! author and the time ("Message Formatting", api-reference/chats/messages/formatting; the
//! chat renders it as a quote). The operator's "Quote" action puts one at the start of the
//! reply, and Bitrix24's own connector module writes a customer's reply the same way
//! (`imconnector` `ReceivingMessage::receiving`: the line, "Name [date]", the text, the line).

/// The line Bitrix24 draws a quote between: 54 hyphens.
pub const QUOTE_LINE: &str = "------------------------------------------------------";

/// `text` under a quote of `quoted`, written by `author` at `when`.
pub fn quote_block(author: &str, when: &str, quoted: &str, text: &str) -> String {
    format!("{QUOTE_LINE}\n{author} [{when}]\n{quoted}\n{QUOTE_LINE}\n{text}")
}

/// A quote at the start of a message and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadingQuote {
    /// The "Name [date]" line, when there is one.
    pub header: Option<String>,
    /// The quoted text, its lines joined by `\n`.
    pub quoted: String,
    /// The message after the block (trimmed).
    pub rest: String,
}

fn is_dash_line(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 10 && t.bytes().all(|b| b == b'-')
}

/// The quote block `text` starts with, if it starts with a closed one.
pub fn leading_quote(text: &str) -> Option<LeadingQuote> {
    let text = text.replace("\r\n", "\n");
    let mut lines = text.trim_start().split('\n');
    if !is_dash_line(lines.next()?) {
        return None;
    }
    let mut inside = Vec::new();
    let mut closed = false;
    for line in lines.by_ref() {
        if is_dash_line(line) {
            closed = true;
            break;
        }
        inside.push(line.trim_end());
    }
    if !closed {
        return None;
    }
    let rest = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
    let header = inside
        .first()
        .filter(|l| l.trim_end().ends_with(']') && l.contains(" ["))
        .map(|l| l.trim().to_owned());
    let body = if header.is_some() {
        &inside[1..]
    } else {
        &inside[..]
    };
    Some(LeadingQuote {
        header,
        quoted: body.join("\n").trim().to_owned(),
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips() {
        let text = quote_block(
            "John Doe",
            "08.04.2016 13:06:49",
            "Hello everyone!",
            "Hi John",
        );
        assert_eq!(
            text,
            "------------------------------------------------------\n\
             John Doe [08.04.2016 13:06:49]\nHello everyone!\n\
             ------------------------------------------------------\nHi John"
        );
        assert_eq!(
            leading_quote(&text),
            Some(LeadingQuote {
                header: Some("John Doe [08.04.2016 13:06:49]".into()),
                quoted: "Hello everyone!".into(),
                rest: "Hi John".into(),
            })
        );
    }

    #[test]
    fn only_a_closed_block_at_the_start_counts() {
        assert_eq!(leading_quote("Hi\n----------\nx\n----------\n"), None);
        assert_eq!(leading_quote("----------\nnot closed"), None);
        assert_eq!(leading_quote("plain"), None);
        let q = leading_quote("----------\nline one\nline two\n----------\r\nanswer").unwrap();
        assert_eq!(q.header, None);
        assert_eq!(q.quoted, "line one\nline two");
        assert_eq!(q.rest, "answer");
    }
}
