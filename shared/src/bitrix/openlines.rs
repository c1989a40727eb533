//! `imopenlines.config.get` (apidocs api-reference/imopenlines/openlines/
//! imopenlines-config-get.md, scope `imopenlines`): `CONFIG_ID`, the line's id; `result` is
//! an object of the line's settings (`ID` and `LINE_NAME` strings, `ACTIVE` `Y`/`N`, ...), or
//! `false` when no line has that id. `400 CONFIG_ID_EMPTY` when the id is missing.

use serde_json::{json, Value};

use super::client::PortalSession;
use super::{BitrixError, OpenLineId};

pub const CONFIG_GET: &str = "imopenlines.config.get";

/// What we read of an Open Line's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenLineConfig {
    pub id: u64,
    pub name: String,
    pub active: bool,
}

pub fn config_get_params(line: OpenLineId) -> Value {
    json!({ "CONFIG_ID": line.get() })
}

/// The answer's `result`: the line, or `None` for `false` (no such line).
pub fn parse_config(result: &Value) -> Result<Option<OpenLineConfig>, BitrixError> {
    let bad = |what: &str| BitrixError::Protocol(format!("{CONFIG_GET}: {what}"));
    match result {
        Value::Bool(false) => Ok(None),
        Value::Object(o) => {
            let id = match o.get("ID") {
                Some(Value::String(s)) => s.parse::<u64>().ok(),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            }
            .ok_or_else(|| bad("no line ID"))?;
            let name = o
                .get("LINE_NAME")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let active = o.get("ACTIVE").and_then(Value::as_str) != Some("N");
            Ok(Some(OpenLineConfig { id, name, active }))
        }
        _ => Err(bad("neither an object nor false")),
    }
}

impl PortalSession<'_> {
    /// `imopenlines.config.get` for one line.
    pub async fn open_line_config(
        &mut self,
        line: OpenLineId,
    ) -> Result<Option<OpenLineConfig>, BitrixError> {
        let result = self.call(CONFIG_GET, config_get_params(line)).await?;
        parse_config(&result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_answers_parse() {
        let line = parse_config(&json!({"ID": "22", "ACTIVE": "Y",
            "LINE_NAME": "Bitrix24 Documentation", "CRM": "N", "QUEUE": ["27", "103"]}))
        .unwrap()
        .unwrap();
        assert_eq!(
            line,
            OpenLineConfig {
                id: 22,
                name: "Bitrix24 Documentation".into(),
                active: true
            }
        );
        assert_eq!(parse_config(&json!(false)).unwrap(), None);
        assert!(parse_config(&json!({"LINE_NAME": "x"})).is_err());
        assert!(parse_config(&json!("22")).is_err());
    }
}
