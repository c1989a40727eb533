//! A stored outbound message as the sends it takes: text split to the channel's limit, files
//! one by one, and on WhatsApp a short text travels as the caption of a single image, video
//! or document instead of as a message of its own.

use super::format;
use crate::conversation::{Direction, Origin, StoredMessage, TemplateMessage};
use crate::graph::{INSTAGRAM_TEXT_MAX_BYTES, WHATSAPP_CAPTION_MAX_CHARS, WHATSAPP_TEXT_MAX_CHARS};
use crate::meta::{Content, Media, MediaKind};
use crate::tenant::ChannelKind;

/// One send.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Media {
        media: Media,
        /// Converted to the channel's formatting already.
        caption: Option<String>,
    },
    Template(TemplateMessage),
}

/// How text is measured against a limit.
#[derive(Clone, Copy)]
enum Measure {
    Chars,
    Bytes,
}

fn measure(m: Measure, s: &str) -> usize {
    match m {
        Measure::Chars => s.chars().count(),
        Measure::Bytes => s.len(),
    }
}

/// Splits `text` into pieces of at most `max` (chars or bytes), preferring to cut after a
/// line break or a space in the second half of a piece.
fn split_text(text: &str, max: usize, m: Measure) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while measure(m, rest) > max {
        // The longest prefix within the limit, on a char boundary.
        let mut end = 0;
        let mut units = 0;
        for (i, c) in rest.char_indices() {
            let w = match m {
                Measure::Chars => 1,
                Measure::Bytes => c.len_utf8(),
            };
            if units + w > max {
                break;
            }
            units += w;
            end = i + c.len_utf8();
        }
        if end == 0 {
            // A limit below one character: one character per piece.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let head = &rest[..end];
        let cut = if rest[end..].starts_with(char::is_whitespace) {
            end
        } else {
            head.rfind('\n')
                .or_else(|| head.rfind(' '))
                .filter(|&i| i >= end / 2 && i > 0)
                .unwrap_or(end)
        };
        let piece = rest[..cut].trim_end();
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

fn takes_caption(kind: MediaKind) -> bool {
    matches!(
        kind,
        MediaKind::Image | MediaKind::Video | MediaKind::Document | MediaKind::File
    )
}

/// The sends for a message; `Err` says why nothing can be sent.
pub fn plan(
    channel: ChannelKind,
    origin: Origin,
    content: &Content,
    template: Option<&TemplateMessage>,
) -> Result<Vec<Part>, String> {
    if let Some(t) = template {
        if channel == ChannelKind::Instagram {
            return Err(super::window::NO_INSTAGRAM_TEMPLATES.into());
        }
        return Ok(vec![Part::Template(t.clone())]);
    }
    let mut texts = Vec::new();
    let mut media = Vec::new();
    collect(content, &mut texts, &mut media)?;
    let text = texts
        .iter()
        .map(|t| format::for_channel(channel, origin, t))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut parts = Vec::new();
    match channel {
        ChannelKind::Instagram => {
            parts.extend(
                split_text(&text, INSTAGRAM_TEXT_MAX_BYTES, Measure::Bytes)
                    .into_iter()
                    .map(Part::Text),
            );
            for m in media {
                let caption = m
                    .caption
                    .as_deref()
                    .map(|c| format::for_channel(channel, origin, c));
                if let Some(c) = caption.filter(|c| !c.trim().is_empty()) {
                    parts.extend(
                        split_text(&c, INSTAGRAM_TEXT_MAX_BYTES, Measure::Bytes)
                            .into_iter()
                            .map(Part::Text),
                    );
                }
                parts.push(Part::Media {
                    media: m,
                    caption: None,
                });
            }
        }
        _ => {
            let single_captionable = media.len() == 1
                && takes_caption(media[0].kind)
                && media[0]
                    .caption
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
                && !text.is_empty()
                && text.chars().count() <= WHATSAPP_CAPTION_MAX_CHARS;
            if single_captionable {
                let m = media.remove(0);
                parts.push(Part::Media {
                    media: m,
                    caption: Some(text),
                });
            } else {
                parts.extend(
                    split_text(&text, WHATSAPP_TEXT_MAX_CHARS, Measure::Chars)
                        .into_iter()
                        .map(Part::Text),
                );
                for m in media {
                    let caption = m
                        .caption
                        .as_deref()
                        .map(|c| format::for_channel(channel, origin, c))
                        .filter(|c| !c.trim().is_empty());
                    match caption {
                        Some(c) if c.chars().count() > WHATSAPP_CAPTION_MAX_CHARS => {
                            parts.extend(
                                split_text(&c, WHATSAPP_TEXT_MAX_CHARS, Measure::Chars)
                                    .into_iter()
                                    .map(Part::Text),
                            );
                            parts.push(Part::Media {
                                media: m,
                                caption: None,
                            });
                        }
                        caption => parts.push(Part::Media { media: m, caption }),
                    }
                }
            }
        }
    }
    if parts.is_empty() {
        return Err("the message has neither text nor files".into());
    }
    Ok(parts)
}

fn collect(
    content: &Content,
    texts: &mut Vec<String>,
    media: &mut Vec<Media>,
) -> Result<(), String> {
    match content {
        Content::Text { body } => texts.push(body.clone()),
        Content::Media(m) => media.push(m.clone()),
        Content::Multiple { parts } => {
            for p in parts {
                collect(p, texts, media)?;
            }
        }
        _ => return Err("this kind of message cannot be sent to the customer".into()),
    }
    Ok(())
}

/// Why a stored message must never be sent, if so.
pub(super) fn never_send(message: &StoredMessage) -> Option<&'static str> {
    if message.direction != Direction::Outbound {
        return Some("not an outbound message");
    }
    match message.origin {
        Origin::Operator | Origin::Api => {}
        // Echoes of the business's own app were sent already, by the app.
        Origin::BusinessApp => return Some("an echo of the business app"),
        Origin::Agent => return Some("a reply of Meta's Business Agent"),
        Origin::Customer => return Some("a customer's message"),
    }
    if message.deleted || message.content.is_none() {
        return Some("deleted before it was sent");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(url: &str) -> Media {
        let mut m = Media::new(MediaKind::Image);
        m.url = Some(url.into());
        m
    }

    fn text(s: &str) -> Content {
        Content::Text { body: s.into() }
    }

    #[test]
    fn splits_at_spaces_within_the_limit() {
        let parts = split_text("aaaa bbbb cccc", 9, Measure::Chars);
        assert_eq!(parts, vec!["aaaa bbbb", "cccc"]);
        let parts = split_text(&"x".repeat(25), 10, Measure::Chars);
        assert_eq!(parts, vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
        // Bytes: never cut inside a character.
        let parts = split_text(&"\u{e9}".repeat(7), 5, Measure::Bytes);
        assert_eq!(
            parts,
            vec!["\u{e9}\u{e9}", "\u{e9}\u{e9}", "\u{e9}\u{e9}", "\u{e9}"]
        );
        assert!(split_text("   ", 5, Measure::Chars).is_empty());
    }

    #[test]
    fn whatsapp_text_with_one_image_is_a_caption() {
        let c = Content::Multiple {
            parts: vec![
                text("[b]look[/b]"),
                Content::Media(image("https://x/1.jpg")),
            ],
        };
        let parts = plan(ChannelKind::WhatsApp, Origin::Operator, &c, None).unwrap();
        assert_eq!(parts.len(), 1);
        match &parts[0] {
            Part::Media { caption, .. } => assert_eq!(caption.as_deref(), Some("*look*")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whatsapp_text_with_two_files_goes_first() {
        let c = Content::Multiple {
            parts: vec![
                text("two files"),
                Content::Media(image("https://x/1.jpg")),
                Content::Media(image("https://x/2.jpg")),
            ],
        };
        let parts = plan(ChannelKind::WhatsApp, Origin::Operator, &c, None).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], Part::Text("two files".into()));
    }

    #[test]
    fn instagram_is_plain_text_then_attachments() {
        let c = Content::Multiple {
            parts: vec![text("[i]hi[/i]"), Content::Media(image("https://x/1.jpg"))],
        };
        let parts = plan(ChannelKind::Instagram, Origin::Operator, &c, None).unwrap();
        assert_eq!(parts[0], Part::Text("hi".into()));
        assert!(matches!(parts[1], Part::Media { caption: None, .. }));
        let long = "word ".repeat(400);
        let parts = plan(ChannelKind::Instagram, Origin::Operator, &text(&long), None).unwrap();
        assert!(parts.len() >= 2);
        for p in parts {
            match p {
                Part::Text(t) => assert!(t.len() <= INSTAGRAM_TEXT_MAX_BYTES),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn api_text_is_not_converted_and_templates_win() {
        let parts = plan(ChannelKind::WhatsApp, Origin::Api, &text("[b]x[/b]"), None).unwrap();
        assert_eq!(parts, vec![Part::Text("[b]x[/b]".into())]);
        let t = TemplateMessage {
            name: "hello".into(),
            language: "en".into(),
            components: serde_json::Value::Null,
            category: None,
        };
        let parts = plan(
            ChannelKind::WhatsApp,
            Origin::Api,
            &text("[template]"),
            Some(&t),
        )
        .unwrap();
        assert_eq!(parts, vec![Part::Template(t.clone())]);
        assert!(plan(ChannelKind::Instagram, Origin::Api, &text("x"), Some(&t)).is_err());
    }

    #[test]
    fn nothing_to_send() {
        assert!(plan(ChannelKind::WhatsApp, Origin::Operator, &text("  "), None).is_err());
        let loc = Content::Location(Default::default());
        assert!(plan(ChannelKind::WhatsApp, Origin::Operator, &loc, None).is_err());
    }
}
