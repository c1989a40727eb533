//! `batch`: up to 50 REST calls in one request (apidocs "How to Execute Batch Requests").
//!
//! The request is `{"halt": 0|1, "cmd": [...], "auth": ...}`: each command is a method name
//! and its parameters as a query string, the way a single call would put them in its URL
//! (`<method>?<query>`; apidocs "Data Encoding": nested structures PHP-style,
//! `MESSAGES[0][user][id]=...`, every name and value URL-encoded). Sent as JSON, the command
//! strings are encoded once; only a batch sent as a form would need them encoded twice.
//! Bitrix24 runs the commands one after the other in the order given; with `halt` set it
//! stops at the first that fails.
//!
//! `cmd` may be keyed by names or by position; we send a JSON array (positions 0..n), in the
//! caller's order, and map the positions back to the caller's keys in the answer. A JSON
//! object would not keep the order: serde_json's map (without its `preserve_order` feature)
//! sorts its keys. So a `$result[...]` reference between commands names a position.
//!
//! The answer's `result` is `{"result": {key: result}, "result_error": {key: {"error",
//! "error_description"}}, "result_total": {...}, "result_next": {...}, "result_time":
//! {...}}`, each part `[]` (PHP's empty array) when empty, and a list when its keys are
//! exactly 0..n. A command left out of both `result` and `result_error` was not executed
//! (after a failure under `halt`).
//!
//! For Bitrix24's rate limit the whole batch is one request. It is one HTTP exchange too: an
//! ambiguous failure of the batch ([`BitrixError::is_ambiguous`]) leaves every command
//! executed or not.
//!
//! Bitrix24 replaces `$result[key][field]` in a command's parameters by a field of an earlier
//! command's result (that is how commands are chained). That happens after the query is
//! decoded, so URL-encoding does not protect a value: a parameter that contains such a
//! reference (a message text, say) may be altered by Bitrix24.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::client::check_method;
use super::error::{classify_command, BitrixError};
use super::imconnector::MethodCall;

/// `batch`.
pub const BATCH: &str = "batch";
/// The most commands one batch may carry.
pub const MAX_BATCH_COMMANDS: usize = 50;
/// The longest command key.
const MAX_KEY_LEN: usize = 128;

/// One command of a batch: its key (ours: names its outcome in the [`BatchAnswer`]; not
/// sent), the method and its parameters (a JSON object, or null for none). `Debug` shows the
/// key and the method only.
#[derive(Clone, PartialEq)]
pub struct BatchCommand {
    pub key: String,
    pub method: String,
    pub params: Value,
}

impl fmt::Debug for BatchCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchCommand")
            .field("key", &self.key)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl BatchCommand {
    pub fn new(key: impl Into<String>, method: impl Into<String>, params: Value) -> Self {
        BatchCommand {
            key: key.into(),
            method: method.into(),
            params,
        }
    }

    /// A command for a call built by one of the `*_call` functions.
    pub fn from_call(key: impl Into<String>, call: MethodCall) -> Self {
        BatchCommand::new(key, call.method, call.params)
    }

    /// The command as Bitrix24 takes it: `method?query` (just `method` without parameters).
    pub fn to_cmd(&self) -> Result<String, BitrixError> {
        check_method(&self.method)?;
        if self.method.eq_ignore_ascii_case(BATCH) {
            // Nesting is prohibited since rest 24.0.0.
            return Err(BitrixError::InvalidRequest(
                "a batch cannot contain a batch".into(),
            ));
        }
        let query = php_query(&self.params)?;
        Ok(if query.is_empty() {
            self.method.clone()
        } else {
            format!("{}?{query}", self.method)
        })
    }
}

fn check_key(key: &str) -> Result<(), BitrixError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(BitrixError::InvalidRequest(format!(
            "batch key must be 1 to {MAX_KEY_LEN} bytes"
        )));
    }
    Ok(())
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay, as PHP's
/// `rawurlencode`).
fn encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A JSON object as a query string, the way PHP's `http_build_query` writes it and
/// `parse_str` reads it back: nested objects and arrays as `KEY[sub][0]=v`, names and values
/// percent-encoded (brackets included), `true`/`false` as `1`/`0`, nulls and empty arrays
/// left out. Null is the empty query. Anything else at the top, or a name containing a
/// bracket, is refused.
pub fn php_query(params: &Value) -> Result<String, BitrixError> {
    fn walk(name: &str, v: &Value, out: &mut Vec<String>) -> Result<(), BitrixError> {
        let nested = |key: &str| -> Result<String, BitrixError> {
            if key.contains(['[', ']']) {
                return Err(BitrixError::InvalidRequest(
                    "a parameter name contains a bracket".into(),
                ));
            }
            Ok(if name.is_empty() {
                key.to_owned()
            } else {
                format!("{name}[{key}]")
            })
        };
        let mut pair = |value: &str| {
            let mut p = String::with_capacity(name.len() + value.len() + 1);
            encode(name, &mut p);
            p.push('=');
            encode(value, &mut p);
            out.push(p);
        };
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    walk(&nested(k)?, v, out)?;
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&nested(&i.to_string())?, v, out)?;
                }
            }
            Value::Null => {}
            Value::Bool(b) => pair(if *b { "1" } else { "0" }),
            Value::Number(n) => pair(&n.to_string()),
            Value::String(s) => pair(s),
        }
        Ok(())
    }
    match params {
        Value::Null => Ok(String::new()),
        Value::Object(_) => {
            let mut out = Vec::new();
            walk("", params, &mut out)?;
            Ok(out.join("&"))
        }
        _ => Err(BitrixError::InvalidRequest(
            "params must be a JSON object".into(),
        )),
    }
}

/// The parameters of `batch` for `commands` (1 to [`MAX_BATCH_COMMANDS`], distinct keys):
/// `cmd` a list in the order given.
pub fn batch_params(commands: &[BatchCommand], halt: bool) -> Result<Value, BitrixError> {
    if commands.is_empty() {
        return Err(BitrixError::InvalidRequest(
            "a batch needs a command".into(),
        ));
    }
    if commands.len() > MAX_BATCH_COMMANDS {
        return Err(BitrixError::InvalidRequest(format!(
            "a batch takes at most {MAX_BATCH_COMMANDS} commands, not {}",
            commands.len()
        )));
    }
    let mut keys = std::collections::HashSet::new();
    let mut cmd = Vec::with_capacity(commands.len());
    for c in commands {
        check_key(&c.key)?;
        if !keys.insert(c.key.as_str()) {
            return Err(BitrixError::InvalidRequest(format!(
                "batch key {} is used twice",
                c.key
            )));
        }
        cmd.push(Value::String(c.to_cmd()?));
    }
    Ok(serde_json::json!({ "halt": u8::from(halt), "cmd": cmd }))
}

/// The outcome of each command of a batch that Bitrix24 answered.
#[derive(Clone, Default, PartialEq)]
pub struct BatchAnswer {
    results: BTreeMap<String, Value>,
    errors: BTreeMap<String, BitrixError>,
}

/// Results echo message text: `Debug` shows keys and error kinds only.
impl fmt::Debug for BatchAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchAnswer")
            .field("results", &self.results.keys().collect::<Vec<_>>())
            .field(
                "errors",
                &self
                    .errors
                    .iter()
                    .map(|(k, e)| (k, e.kind(), e.code().unwrap_or("")))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A part of the answer by command position: an object keyed `"0"`, `"1"`..., or a list
/// (PHP's empty array, or keys exactly 0..n), each position turned into the caller's key.
fn keyed(
    part: Option<&Value>,
    name: &str,
    commands: &[BatchCommand],
) -> Result<Vec<(String, Value)>, BitrixError> {
    let key = |position: &str| {
        position
            .parse::<usize>()
            .ok()
            .and_then(|i| commands.get(i))
            .map(|c| c.key.clone())
            .ok_or_else(|| BitrixError::Protocol(format!("batch: {name} names no command we sent")))
    };
    match part {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(o)) => o.iter().map(|(k, v)| Ok((key(k)?, v.clone()))).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| Ok((key(&i.to_string())?, v.clone())))
            .collect(),
        Some(_) => Err(BitrixError::Protocol(format!(
            "batch: {name} is neither an object nor an array"
        ))),
    }
}

impl BatchAnswer {
    /// Reads the `result` of a `batch` call of `commands` (as sent by [`batch_params`]: by
    /// position).
    pub fn parse(result: &Value, commands: &[BatchCommand]) -> Result<BatchAnswer, BitrixError> {
        if !result.is_object() {
            return Err(BitrixError::Protocol(
                "batch: result is not an object".into(),
            ));
        }
        if result.get("result").is_none() && result.get("result_error").is_none() {
            return Err(BitrixError::Protocol(
                "batch: neither result nor result_error".into(),
            ));
        }
        let results = keyed(result.get("result"), "result", commands)?
            .into_iter()
            .collect();
        let errors = keyed(result.get("result_error"), "result_error", commands)?
            .into_iter()
            .map(|(k, e)| (k, classify_command(&e)))
            .collect();
        Ok(BatchAnswer { results, errors })
    }

    /// The `result` of command `key`, as the method would have answered alone; its error,
    /// mapped as a top-level error would be ([`BitrixError::Rejected`] carries status 200,
    /// the batch's). A key in neither part is [`BitrixError::Protocol`]: the command was not
    /// executed (an earlier one failed under `halt`) or the answer is incomplete.
    pub fn result(&self, key: &str) -> Result<&Value, BitrixError> {
        if let Some(e) = self.errors.get(key) {
            return Err(e.clone());
        }
        self.results.get(key).ok_or_else(|| {
            BitrixError::Protocol(format!("batch: no result and no error for command {key}"))
        })
    }

    /// True when Bitrix24 answered for command `key` (with a result or an error).
    pub fn answered(&self, key: &str) -> bool {
        self.errors.contains_key(key) || self.results.contains_key(key)
    }

    /// The commands that succeeded, by key.
    pub fn results(&self) -> &BTreeMap<String, Value> {
        &self.results
    }

    /// The commands that failed, by key.
    pub fn errors(&self) -> &BTreeMap<String, BitrixError> {
        &self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The pairs of a query, sorted: the order of an object's keys is serde_json's.
    fn pairs(q: &str) -> Vec<&str> {
        let mut p: Vec<&str> = q.split('&').collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn php_style_query() {
        // apidocs "Data Encoding": fields[TITLE]=My%20company&fields[PHONE][0][VALUE]=112233...
        let q = php_query(&json!({
            "fields": {
                "TITLE": "My company",
                "PHONE": [
                    {"VALUE": "112233", "VALUE_TYPE": "WORK"},
                    {"VALUE": "555888112", "VALUE_TYPE": "OTHER"}
                ]
            }
        }))
        .unwrap();
        assert_eq!(
            pairs(&q),
            pairs(
                "fields%5BTITLE%5D=My%20company\
                 &fields%5BPHONE%5D%5B0%5D%5BVALUE%5D=112233\
                 &fields%5BPHONE%5D%5B0%5D%5BVALUE_TYPE%5D=WORK\
                 &fields%5BPHONE%5D%5B1%5D%5BVALUE%5D=555888112\
                 &fields%5BPHONE%5D%5B1%5D%5BVALUE_TYPE%5D=OTHER"
            )
        );
        // The "John&Martin" example: a value's '&' must not split the query.
        assert_eq!(
            php_query(&json!({"fields": {"TITLE": "John&Martin"}})).unwrap(),
            "fields%5BTITLE%5D=John%26Martin"
        );
        assert_eq!(
            pairs(
                &php_query(
                    &json!({"A": true, "B": false, "C": null, "D": [], "E": 7, "F": "é+?=%"})
                )
                .unwrap()
            ),
            ["A=1", "B=0", "E=7", "F=%C3%A9%2B%3F%3D%25"]
        );
        assert_eq!(php_query(&Value::Null).unwrap(), "");
        assert!(php_query(&json!([1, 2])).is_err());
        assert!(php_query(&json!({"a]b": 1})).is_err());
    }

    #[test]
    fn commands_and_their_limits() {
        let messages = BatchCommand::new(
            "m10",
            "imconnector.send.messages",
            json!({"CONNECTOR": "wa", "LINE": 107, "MESSAGES": [
                {"user": {"id": "u1"}, "message": {"id": "m1", "text": "a&b=c $x"}, "chat": {"id": "c1"}}
            ]}),
        );
        let params = batch_params(
            &[
                messages.clone(),
                BatchCommand::new("m2", "user.current", Value::Null),
            ],
            true,
        )
        .unwrap();
        assert_eq!(params["halt"], json!(1));
        // A list, in the order given (an object's keys would be sorted: "m10" < "m2").
        let cmd = params["cmd"].as_array().unwrap();
        assert_eq!(cmd.len(), 2);
        let (method, query) = cmd[0].as_str().unwrap().split_once('?').unwrap();
        assert_eq!(method, "imconnector.send.messages");
        assert_eq!(
            pairs(query),
            pairs(
                "CONNECTOR=wa&LINE=107\
                 &MESSAGES%5B0%5D%5Buser%5D%5Bid%5D=u1\
                 &MESSAGES%5B0%5D%5Bmessage%5D%5Bid%5D=m1\
                 &MESSAGES%5B0%5D%5Bmessage%5D%5Btext%5D=a%26b%3Dc%20%24x\
                 &MESSAGES%5B0%5D%5Bchat%5D%5Bid%5D=c1"
            )
        );
        assert_eq!(cmd[1], json!("user.current"));
        assert_eq!(
            batch_params(std::slice::from_ref(&messages), false).unwrap()["halt"],
            json!(0)
        );

        let many: Vec<BatchCommand> = (0..=MAX_BATCH_COMMANDS)
            .map(|i| BatchCommand::new(format!("k{i}"), "user.current", Value::Null))
            .collect();
        assert!(batch_params(&many[..MAX_BATCH_COMMANDS], false).is_ok());
        for bad in [
            batch_params(&many, false),
            batch_params(&[], false),
            batch_params(&[messages.clone(), messages.clone()], false),
            batch_params(&[BatchCommand::new("", "user.current", Value::Null)], false),
            batch_params(&[BatchCommand::new("k", "batch", Value::Null)], false),
            batch_params(&[BatchCommand::new("k", "a?b", Value::Null)], false),
            batch_params(&[BatchCommand::new("k", "user.current", json!("x"))], false),
        ] {
            assert!(
                matches!(bad, Err(BitrixError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        assert!(!format!("{messages:?}").contains("a&b"));
    }

    fn commands(keys: &[&str]) -> Vec<BatchCommand> {
        keys.iter()
            .map(|k| BatchCommand::new(*k, "user.current", Value::Null))
            .collect()
    }

    #[test]
    fn parses_the_documented_answers() {
        // apidocs "How to Execute Batch Requests", successful result (fields cut short), for
        // commands sent by position.
        let sent = commands(&["get_user", "get_department"]);
        let ok = BatchAnswer::parse(
            &json!({
                "result": [
                    {"ID": "1", "NAME": "John", "UF_DEPARTMENT": [1]},
                    [{"ID": "1", "NAME": "DEMO", "SORT": 500}]
                ],
                "result_error": [],
                "result_total": {"1": 1},
                "result_next": [],
                "result_time": [{"start": 1724916859.46156, "duration": 0.003}]
            }),
            &sent,
        )
        .unwrap();
        assert_eq!(ok.result("get_user").unwrap()["NAME"], json!("John"));
        assert_eq!(ok.result("get_department").unwrap()[0]["ID"], json!("1"));
        assert!(ok.errors().is_empty());
        assert!(ok.answered("get_user"));
        assert!(matches!(ok.result("other"), Err(BitrixError::Protocol(_))));

        // Error example (halt = 0): both commands failed.
        let failed = BatchAnswer::parse(
            &json!({
                "result": [],
                "result_error": {
                    "0": {"error": "insufficient_scope", "error_description": ""},
                    "1": {"error": "insufficient_scope", "error_description": ""}
                },
                "result_total": [],
                "result_next": [],
                "result_time": []
            }),
            &sent,
        )
        .unwrap();
        assert!(failed.results().is_empty());
        assert!(matches!(
            failed.result("get_department"),
            Err(BitrixError::Unauthorized { code, .. }) if code == "insufficient_scope"
        ));

        // Error example (halt = 1): the second command was not executed.
        let halted = BatchAnswer::parse(
            &json!({
                "result": [],
                "result_error": [{"error": "insufficient_scope", "error_description": ""}],
                "result_total": [], "result_next": [], "result_time": []
            }),
            &sent,
        )
        .unwrap();
        assert!(halted.answered("get_user"));
        assert!(!halted.answered("get_department"));
        assert!(matches!(
            halted.result("get_department"),
            Err(BitrixError::Protocol(_))
        ));

        // Keys that are not 0..n: an object keyed by position.
        let sent = commands(&["a", "b", "c"]);
        let mixed = BatchAnswer::parse(
            &json!({
                "result": {"1": {"SUCCESS": true}, "2": true},
                "result_error": {"0": {"error": "ERROR_ARGUMENT", "error_description": "Argument 'LINE' is null or empty"}}
            }),
            &sent,
        )
        .unwrap();
        assert_eq!(mixed.result("b").unwrap()["SUCCESS"], json!(true));
        assert_eq!(mixed.result("c").unwrap(), &json!(true));
        assert!(matches!(
            mixed.result("a"),
            Err(BitrixError::Rejected { status: 200, code, .. }) if code == "ERROR_ARGUMENT"
        ));
        let shown = format!("{mixed:?}");
        assert!(shown.contains("ERROR_ARGUMENT") && !shown.contains("SUCCESS"));

        for bad in [
            json!([]),
            json!({"time": {}}),
            json!({"result": "x"}),
            json!({"result": {"3": true}}),
            json!({"result": {"get_user": true}}),
            json!({"result": [1, 2, 3, 4]}),
        ] {
            assert!(
                matches!(
                    BatchAnswer::parse(&bad, &sent),
                    Err(BitrixError::Protocol(_))
                ),
                "{bad}"
            );
        }
    }
}
