//! Reads of Instagram @mentions (Meta, Instagram Graph API reference, IG User "Mentioned
//! Comment" and "Mentioned Media"), by the account whose token asks:
//!
//! - `GET /{version}/{ig-user-id}?fields=mentioned_comment.comment_id({comment-id}){fields}`
//!   answers `{"mentioned_comment": {<the asked fields>}, "id": "<ig-user-id>"}`; the
//!   comment's fields are `id`, `like_count`, `media` (IG Media fields by field expansion,
//!   such as `media{id,permalink}`), `text`, `timestamp`;
//! - `GET /{version}/{ig-user-id}?fields=mentioned_media.media_id({media-id}){fields}` answers
//!   `{"mentioned_media": {<the asked fields>}, "id"}`; the media's fields are `caption`,
//!   `comments`, `comments_count`, `id`, `like_count`, `media_type`, `media_url`, `owner`,
//!   `timestamp`, `username`.
//!
//! Only what was registered for that account ([`FakeGraph::add_mentioned_comment`],
//! [`FakeGraph::add_mentioned_media`]) is found; anything else is Meta's unknown-object
//! error (100), as for an id the account was not mentioned in. A field the reference does
//! not list is refused (100), so the client cannot drift from the documented names.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{invalid_token, json_answer, no_such_object, query_pairs, Answer, FakeGraph, State};

/// The mentions each account can read: (account, id) → the fields' values.
#[derive(Default)]
pub(super) struct Mentions {
    comments: HashMap<(String, String), Map<String, Value>>,
    media: HashMap<(String, String), Map<String, Value>>,
}

const COMMENT_FIELDS: &[&str] = &["id", "like_count", "media", "text", "timestamp"];
const MEDIA_FIELDS: &[&str] = &[
    "caption",
    "comments",
    "comments_count",
    "id",
    "like_count",
    "media_type",
    "media_url",
    "owner",
    "timestamp",
    "username",
];
/// IG Media fields the fake knows for the field expansion of a comment's `media`.
const EXPANDED_MEDIA_FIELDS: &[&str] = &["id", "media_type", "media_url", "permalink"];

impl FakeGraph {
    /// `account_id` was @mentioned in comment `comment_id`, made on media `media_id` whose
    /// permalink is `permalink`.
    pub fn add_mentioned_comment(
        &self,
        account_id: &str,
        comment_id: &str,
        media_id: &str,
        text: &str,
        permalink: &str,
    ) {
        let fields = json!({
            "id": comment_id,
            "like_count": 0,
            "text": text,
            "timestamp": "2026-01-01T10:00:00+0000",
            "media": {"id": media_id, "permalink": permalink, "media_type": "IMAGE"},
        });
        self.state().mentions.comments.insert(
            (account_id.to_owned(), comment_id.to_owned()),
            fields.as_object().cloned().unwrap_or_default(),
        );
    }

    /// `account_id` was @mentioned in the caption of `username`'s media `media_id`.
    pub fn add_mentioned_media(
        &self,
        account_id: &str,
        media_id: &str,
        username: &str,
        caption: &str,
        media_url: &str,
    ) {
        let fields = json!({
            "id": media_id,
            "caption": caption,
            "comments_count": 0,
            "like_count": 0,
            "media_type": "IMAGE",
            "media_url": media_url,
            "timestamp": "2026-01-01T10:00:00+0000",
            "username": username,
        });
        self.state().mentions.media.insert(
            (account_id.to_owned(), media_id.to_owned()),
            fields.as_object().cloned().unwrap_or_default(),
        );
    }
}

/// Decodes a percent-encoded query value.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A top-level field asked for, with its field expansion (`media{id,permalink}`).
type Asked<'a> = (&'a str, Option<&'a str>);

/// `edge.key(id){a,b,c{d,e}}` → (edge, key, id, the top-level fields with their expansion).
fn parse(fields: &str) -> Option<(&str, &str, &str, Vec<Asked<'_>>)> {
    let (edge, rest) = fields.split_once('.')?;
    let (key, rest) = rest.split_once('(')?;
    let (id, rest) = rest.split_once(')')?;
    let inner = rest.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    let bytes = inner.as_bytes();
    for i in 0..=bytes.len() {
        match bytes.get(i) {
            Some(b'{') => depth += 1,
            Some(b'}') => depth -= 1,
            Some(b',') | None if depth == 0 => {
                let field = &inner[start..i];
                out.push(match field.split_once('{') {
                    Some((name, sub)) => (name, Some(sub.strip_suffix('}')?)),
                    None => (field, None),
                });
                start = i + 1;
            }
            _ => {}
        }
    }
    Some((edge, key, id, out))
}

/// The mention reads; None for any other `GET /{version}/{id}`.
pub(super) fn route(
    s: &mut State,
    segments: &[&str],
    query: Option<&str>,
    bearer: Option<&str>,
) -> Option<Answer> {
    let [version, ig_user] = segments else {
        return None;
    };
    if !super::is_version(version) {
        return None;
    }
    let fields = decode(query_pairs(query).get("fields")?);
    if !fields.starts_with("mentioned_comment.") && !fields.starts_with("mentioned_media.") {
        return None;
    }
    let Some((account, _)) = bearer.and_then(|b| s.instagram_tokens.get(b)).cloned() else {
        return Some(invalid_token());
    };
    if account != *ig_user {
        return Some(no_such_object(ig_user));
    }
    let Some((edge, key, id, asked)) = parse(&fields) else {
        return Some(super::invalid_parameter("malformed fields"));
    };
    let (known, store) = match (edge, key) {
        ("mentioned_comment", "comment_id") => (COMMENT_FIELDS, &s.mentions.comments),
        ("mentioned_media", "media_id") => (MEDIA_FIELDS, &s.mentions.media),
        _ => return Some(super::invalid_parameter("unknown mention edge")),
    };
    for (name, sub) in &asked {
        let sub_ok = match sub {
            None => true,
            Some(sub) => {
                *name == "media"
                    && edge == "mentioned_comment"
                    && sub.split(',').all(|f| EXPANDED_MEDIA_FIELDS.contains(&f))
            }
        };
        if !known.contains(name) || !sub_ok {
            return Some(super::invalid_parameter(&format!(
                "(#100) Tried accessing nonexisting field ({name})"
            )));
        }
    }
    let Some(all) = store.get(&(account.clone(), id.to_owned())) else {
        return Some(no_such_object(id));
    };
    let mut answer = Map::new();
    for (name, sub) in asked {
        let Some(value) = all.get(name) else { continue };
        let value = match (sub, value) {
            (Some(sub), Value::Object(o)) => Value::Object(
                sub.split(',')
                    .filter_map(|f| o.get(f).map(|v| (f.to_owned(), v.clone())))
                    .collect(),
            ),
            _ => value.clone(),
        };
        answer.insert(name.to_owned(), value);
    }
    Some(json_answer(200, &json!({ edge: answer, "id": account })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_with_their_expansion() {
        let (edge, key, id, fields) =
            parse("mentioned_comment.comment_id(17){id,text,media{id,permalink}}").unwrap();
        assert_eq!((edge, key, id), ("mentioned_comment", "comment_id", "17"));
        assert_eq!(
            fields,
            vec![
                ("id", None),
                ("text", None),
                ("media", Some("id,permalink"))
            ]
        );
        assert_eq!(decode("a%28b%29%7Bc%2Cd%7D"), "a(b){c,d}");
    }
}
