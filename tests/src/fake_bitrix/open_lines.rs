//! The portal's Open Lines as `imopenlines.config.get` describes them (apidocs
//! api-reference/imopenlines/openlines/imopenlines-config-get.md, scope `imopenlines`):
//! `CONFIG_ID` (an integer) names the line; the answer's `result` is an object of the line's
//! settings (`ID` and `LINE_NAME` strings, `ACTIVE` `Y`/`N`, and many more, of which the fake
//! gives a few), or `false` when no line has that id. Every line id up to
//! [`FAKE_LINE_COUNT`] exists, named "Open Line <id>" unless [`FakeBitrix::name_line`] named it.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::rest::Reply;
use super::{text_of, FakeBitrix, State};

/// Lines 1 to this exist on every fake portal.
pub const FAKE_LINE_COUNT: u64 = 10;

/// Names given to lines, by (domain, line).
pub(super) type LineNames = HashMap<(String, u64), String>;

impl FakeBitrix {
    /// Names `line` of `domain` (its `LINE_NAME`).
    pub fn name_line(&self, domain: &str, line: u64, name: &str) {
        self.state()
            .line_names
            .insert((domain.to_owned(), line), name.to_owned());
    }
}

pub(super) fn call(s: &mut State, domain: &str, method: &str, params: &Value) -> Option<Reply> {
    if method != "imopenlines.config.get" {
        return None;
    }
    let Some(id) = text_of(params.get("CONFIG_ID")) else {
        return Some(Reply::Err {
            status: 400,
            code: "CONFIG_ID_EMPTY".into(),
            description: "Config ID can't be empty".into(),
        });
    };
    let line = id
        .parse::<u64>()
        .ok()
        .filter(|l| (1..=FAKE_LINE_COUNT).contains(l));
    Some(Reply::Ok(match line {
        None => json!(false),
        Some(line) => {
            let name = s
                .line_names
                .get(&(domain.to_owned(), line))
                .cloned()
                .unwrap_or_else(|| format!("Open Line {line}"));
            json!({
                "ID": line.to_string(),
                "ACTIVE": "Y",
                "LINE_NAME": name,
                "CRM": "Y",
                "QUEUE_TYPE": "evenly",
                "LANGUAGE_ID": "en",
                "TEMPORARY": "N"
            })
        }
    }))
}
