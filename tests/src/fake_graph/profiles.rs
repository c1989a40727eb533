//! Instagram's User Profile API ("Instagram Platform > Instagram API with Instagram Login >
//! Messaging > User Profile"; the same on `graph.facebook.com` for Page-linked accounts):
//! `GET /{version}/{IGSID}?fields=name,username,profile_pic,...` with the account's token
//! answers the requested fields of a user who messaged the account, plus `id`:
//! `{"name": "Peter Chang", "username": "peter.chang.35", "profile_pic":
//! "https://...", "id": "<IGSID>"}`. The profile is available only once the user has sent the
//! account a message (consent); otherwise, or for an unknown IGSID, Meta answers error 230
//! "User consent is required to access user profile". `profile_pic` is a CDN URL that expires.

use serde_json::{json, Map, Value};

use super::{invalid_token, json_answer, meta_error, query_pairs, Answer, FakeGraph, State};

/// A profile the fake serves for an IGSID ([`FakeGraph::set_instagram_profile`]).
#[derive(Debug, Clone, Default)]
pub struct FakeProfile {
    pub name: Option<String>,
    pub username: Option<String>,
    pub profile_pic: Option<String>,
}

impl FakeGraph {
    /// Lets `igsid`'s profile be read (the user has messaged the account), or changes it.
    pub fn set_instagram_profile(&self, igsid: &str, profile: FakeProfile) {
        self.state().profiles.insert(igsid.to_owned(), profile);
    }

    /// How many profile reads the fake answered with a profile.
    pub fn profile_reads(&self) -> usize {
        self.state().profile_reads
    }
}

/// `GET /{version}/{id}` for an IGSID with a profile; None for any other id (the caller
/// routes it on).
pub(super) fn route(
    s: &mut State,
    id: &str,
    query: Option<&str>,
    bearer: Option<&str>,
) -> Option<Answer> {
    let pairs = query_pairs(query);
    // The comma arrives percent-encoded from an encoding client.
    let fields = pairs.get("fields")?.replace("%2C", ",").replace("%2c", ",");
    let fields = fields.as_str();
    if !fields
        .split(',')
        .any(|f| f == "username" || f == "profile_pic")
    {
        return None;
    }
    if !bearer.is_some_and(|t| s.instagram_tokens.contains_key(t)) {
        return Some(invalid_token());
    }
    let Some(profile) = s.profiles.get(id).cloned() else {
        return Some(meta_error(
            400,
            230,
            None,
            "OAuthException",
            "(#230) User consent is required to access user profile",
        ));
    };
    s.profile_reads += 1;
    let mut out = Map::new();
    for field in fields.split(',') {
        let value = match field.trim() {
            "name" => profile.name.clone(),
            "username" => profile.username.clone(),
            "profile_pic" => profile.profile_pic.clone(),
            _ => None,
        };
        if let Some(v) = value {
            out.insert(field.trim().to_owned(), json!(v));
        }
    }
    out.insert("id".into(), json!(id));
    Some(json_answer(200, &Value::Object(out)))
}
