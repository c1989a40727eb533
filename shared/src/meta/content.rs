//! A message's content, the same for both products: part of the [`InboundEvent`] every
//! webhook item becomes, and of its JSON shape on the inbound queue.
//!
//! [`InboundEvent`]: super::InboundEvent

use serde::{Deserialize, Serialize};

use super::event::MetaError;
use super::ids::{WhatsAppPhone, WhatsAppUserId};
use crate::ids::Text;

/// A message's content, the same for both products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content<S: Text = String> {
    Text {
        body: S,
    },
    Media(Media<S>),
    Location(Location<S>),
    /// Contact cards the customer shared.
    Contacts {
        contacts: Vec<SharedContact<S>>,
    },
    /// A tap on an interactive message: `button_reply`, `list_reply`, or `nfm_reply` (a
    /// WhatsApp Flow, answers in `response_json`).
    InteractiveReply {
        reply_type: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_json: Option<S>,
    },
    /// A template quick-reply button (WhatsApp) or a quick reply (Instagram).
    Button {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<S>,
    },
    Order(Order<S>),
    /// A WhatsApp system notice: the customer changed their number or their BSUID.
    System {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<S>,
        /// `user_changed_number`, `user_changed_user_id`, …
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system_type: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_phone: Option<WhatsAppPhone<S>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_user_id: Option<WhatsAppUserId<S>>,
        /// The BSUID before the change (2026-08), which finds the customer when `from` has
        /// no phone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_user_id: Option<WhatsAppUserId<S>>,
    },
    /// An Instagram post, reel or link the customer shared (`share`, `ig_reel`, `reel`,
    /// `ig_post`, `fallback`).
    Share {
        share_type: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<S>,
    },
    /// The customer commented on one of the business's Instagram posts, reels or stories
    /// (`comments` field), or on its live video while it was broadcast (`live_comments`). It
    /// does not open the messaging window; the operator's answer goes as a private reply to
    /// `comment_id` (decisions 0062, 0067).
    Comment {
        comment_id: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<S>,
        /// `FEED`, `REELS`, `STORY`, `AD`…
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_product_type: Option<S>,
        /// A comment on a live video during its broadcast (`live_comments`): Meta takes its
        /// private reply only while the broadcast lasts.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    /// The business was @mentioned on Instagram, in a comment or in a media's caption
    /// (`mentions` field, decision 0067), with what the Graph API told of it: the text, who
    /// wrote it (captions only), and a link (the post's permalink for a comment, the media's
    /// URL for a caption). Without the read (refused, not available) the ids only.
    Mention {
        media_id: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment_id: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<S>,
    },
    /// The customer mentioned the business in their Instagram story (the URL expires).
    StoryMention {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<S>,
    },
    /// Several parts in one message (Instagram text plus attachments, several attachments).
    Multiple {
        parts: Vec<Content<S>>,
    },
    /// A type we do not relay, or Meta did not deliver; kept so the CRM shows something.
    Unsupported {
        type_name: S,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<MetaError<S>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
    /// An Instagram file attachment.
    File,
}

impl MediaKind {
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
            MediaKind::File => "file",
        }
    }
}

/// A media attachment: WhatsApp gives a media id (fetched through the Graph API with the
/// tenant's token), Instagram a CDN URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media<S: Text = String> {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<S>,
    /// A voice recording (WhatsApp audio).
    #[serde(default)]
    pub voice: bool,
    #[serde(default)]
    pub animated: bool,
}

impl<S: Text> Media<S> {
    pub fn new(kind: MediaKind) -> Self {
        Media {
            kind,
            media_id: None,
            url: None,
            mime_type: None,
            caption: None,
            filename: None,
            sha256: None,
            voice: false,
            animated: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<S>,
}

/// A shared contact card, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedContact<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<S>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<SharedPhone<S>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<S>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<S>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPhone<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<S>,
    /// Set when the number is on WhatsApp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_type: Option<S>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<S>,
    #[serde(default)]
    pub items: Vec<OrderItem<S>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// Exact as Meta sent it (`7.99`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<S>,
}

impl Content {
    /// Plain text for the CRM chat: the text itself, a caption, or a short bracketed label
    /// saying what arrived. Files travel separately (as URLs), so media gives only words.
    pub fn text_for_crm(&self) -> String {
        fn join(parts: &[Option<&str>], sep: &str) -> String {
            parts
                .iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(sep)
        }
        match self {
            Content::Text { body } => body.clone(),
            Content::Media(m) => match (&m.caption, &m.filename) {
                (Some(c), _) if !c.is_empty() => c.clone(),
                (_, Some(f)) if !f.is_empty() => format!("[{}: {f}]", m.kind.name()),
                _ if m.voice => "[voice message]".into(),
                _ => format!("[{}]", m.kind.name()),
            },
            Content::Location(l) => {
                let coords = match (l.latitude, l.longitude) {
                    (Some(lat), Some(lon)) => Some(format!("{lat}, {lon}")),
                    _ => None,
                };
                let text = join(
                    &[l.name.as_deref(), l.address.as_deref(), coords.as_deref()],
                    " — ",
                );
                format!("[location] {text}").trim_end().to_string()
            }
            Content::Contacts { contacts } => {
                let cards: Vec<String> = contacts
                    .iter()
                    .map(|c| {
                        let phones: Vec<&str> =
                            c.phones.iter().filter_map(|p| p.phone.as_deref()).collect();
                        join(&[c.name.as_deref(), Some(&phones.join(", "))], ": ")
                    })
                    .collect();
                format!("[contact] {}", cards.join("; "))
                    .trim_end()
                    .to_string()
            }
            Content::InteractiveReply {
                title,
                id,
                reply_type,
                ..
            } => title
                .clone()
                .or_else(|| id.clone())
                .unwrap_or_else(|| format!("[{reply_type}]")),
            Content::Button { text, payload } => text
                .clone()
                .or_else(|| payload.clone())
                .unwrap_or_else(|| "[button]".into()),
            Content::Order(o) => {
                let n: u64 = o.items.iter().map(|i| i.quantity.unwrap_or(1)).sum();
                let mut s = format!("[order: {n} item(s)]");
                if let Some(t) = o.text.as_deref().filter(|t| !t.is_empty()) {
                    s.push(' ');
                    s.push_str(t);
                }
                s
            }
            Content::System { body, .. } => body.clone().unwrap_or_else(|| "[system]".into()),
            Content::Share {
                share_type,
                url,
                title,
            } => format!(
                "[{share_type}] {}",
                join(&[title.as_deref(), url.as_deref()], " ")
            )
            .trim_end()
            .to_string(),
            Content::Comment {
                text,
                media_id,
                media_product_type,
                live,
                ..
            } => {
                let on = match media_product_type.as_deref() {
                    _ if *live => "live video",
                    Some("REELS") => "reel",
                    Some("STORY") => "story",
                    Some("AD") => "ad",
                    Some("LIVE") => "live video",
                    _ => "post",
                };
                format!(
                    "[comment on {}] {}",
                    join(&[Some(on), media_id.as_deref()], " "),
                    text.as_deref().unwrap_or_default()
                )
                .trim_end()
                .to_string()
            }
            Content::Mention {
                media_id,
                comment_id,
                text,
                username,
                link,
            } => {
                let place = match comment_id {
                    Some(c) => format!("a comment {c} on media {media_id}"),
                    None => format!("the caption of media {media_id}"),
                };
                let by = username.as_deref().map(|u| format!(" by @{u}"));
                let mut s = format!("[mention in {place}{}]", by.unwrap_or_default());
                for line in [text, link].into_iter().flatten() {
                    s.push('\n');
                    s.push_str(line);
                }
                s
            }
            Content::StoryMention { url } => {
                format!("[story mention] {}", url.as_deref().unwrap_or_default())
                    .trim_end()
                    .to_string()
            }
            Content::Multiple { parts } => parts
                .iter()
                .map(Content::text_for_crm)
                .collect::<Vec<_>>()
                .join("\n"),
            Content::Unsupported { type_name, .. } => format!("[unsupported: {type_name}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_text() {
        let mut m = Media::new(MediaKind::Image);
        assert_eq!(Content::Media(m.clone()).text_for_crm(), "[image]");
        m.caption = Some("look".into());
        assert_eq!(Content::Media(m).text_for_crm(), "look");
        let loc = Content::Location(Location {
            latitude: Some(37.48),
            longitude: Some(-122.15),
            name: Some("Philz Coffee".into()),
            ..Default::default()
        });
        assert_eq!(
            loc.text_for_crm(),
            "[location] Philz Coffee — 37.48, -122.15"
        );
        let u = Content::Unsupported {
            type_name: "poll_creation".into(),
            errors: vec![],
        };
        assert_eq!(u.text_for_crm(), "[unsupported: poll_creation]");
    }
}
