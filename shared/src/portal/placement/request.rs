//! What Bitrix24 posts when it opens the connector's settings page (apidocs
//! api-reference/widgets/setting-connector.md, "What the Handler Receives", and the standard
//! widget data, api-reference/widgets/_includes/widget_data.md): a form with `DOMAIN`,
//! `PROTOCOL`, `LANG`, `APP_SID`, `AUTH_ID`, `AUTH_EXPIRES`, `REFRESH_ID`,
//! `SERVER_ENDPOINT`, `member_id`, `status`, `PLACEMENT` (`SETTING_CONNECTOR`) and
//! `PLACEMENT_OPTIONS`, a JSON string:
//! `{"CONNECTOR":"my_connector","LINE":"3","STATUS":false,"ACTIVE_STATUS":true,
//! "CONNECTION_STATUS":false,"REGISTER_STATUS":false,"ERROR_STATUS":false,"URI":"..."}`.
//! `CONNECTOR` is already lower-cased (as `imconnector.register` stores it); `LINE` is a
//! string.
//!
//! Everything here is client-supplied: the portal is believed only after `AUTH_ID` worked on
//! the portal we linked for `member_id` (see the module above).

use std::fmt;

use serde_json::Value;

use crate::bitrix::events::text_of;
use crate::bitrix::{ConnectorId, OpenLineId};
use crate::ids::{BitrixDomain, BitrixMemberId};
use crate::secret::Secret;

/// The placement code of the connector settings page.
pub const SETTING_CONNECTOR: &str = "SETTING_CONNECTOR";

/// The connector's state as Bitrix24 passed it (`PLACEMENT_OPTIONS`); absent flags are
/// `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// `ACTIVE_STATUS`: the connector is enabled for this line.
    pub active: Option<bool>,
    /// `CONNECTION_STATUS`: the connection to the external service is confirmed.
    pub connection: Option<bool>,
    /// `REGISTER_STATUS`: the channel is registered in the external service.
    pub register: Option<bool>,
    /// `ERROR_STATUS`: the connector has an error.
    pub error: Option<bool>,
    /// `STATUS`: all of the above is in order.
    pub status: Option<bool>,
}

/// `PLACEMENT_OPTIONS` of the connector settings page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementOptions {
    pub connector: ConnectorId,
    pub line: OpenLineId,
    pub status: ConnectorStatus,
}

fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        Value::String(s) => match s.as_str() {
            "Y" | "y" | "true" | "1" => Some(true),
            "N" | "n" | "false" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl PlacementOptions {
    /// Parses the JSON string (or, leniently, an already nested object).
    pub fn parse(raw: &Value) -> Result<Self, String> {
        let parsed;
        let options = match raw {
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|_| "PLACEMENT_OPTIONS is not JSON".to_owned())?;
                &parsed
            }
            other => other,
        };
        if !options.is_object() {
            return Err("PLACEMENT_OPTIONS is not an object".into());
        }
        let connector = text_of(options.get("CONNECTOR"))
            .ok_or("PLACEMENT_OPTIONS has no CONNECTOR")?
            .to_ascii_lowercase();
        let connector = ConnectorId::parse(&connector).map_err(|e| e.to_string())?;
        let line = text_of(options.get("LINE"))
            .ok_or("PLACEMENT_OPTIONS has no LINE")
            .and_then(|l| OpenLineId::parse(&l).map_err(|_| "LINE is not a line id"))?;
        Ok(PlacementOptions {
            connector,
            line,
            status: ConnectorStatus {
                active: flag(options.get("ACTIVE_STATUS")),
                connection: flag(options.get("CONNECTION_STATUS")),
                register: flag(options.get("REGISTER_STATUS")),
                error: flag(options.get("ERROR_STATUS")),
                status: flag(options.get("STATUS")),
            },
        })
    }
}

/// The connector settings page as Bitrix24 opened it.
#[derive(Clone)]
pub struct PlacementRequest {
    pub domain: BitrixDomain,
    pub member_id: BitrixMemberId,
    /// The user's token (`AUTH_ID`), checked on the portal; never stored.
    pub auth_id: Secret,
    pub options: PlacementOptions,
    /// `LANG`: the portal's interface language (`en`, `ru`, ...).
    pub lang: Option<String>,
}

impl fmt::Debug for PlacementRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacementRequest")
            .field("domain", &self.domain)
            .field("member_id", &self.member_id)
            .field("options", &self.options)
            .field("lang", &self.lang)
            .finish_non_exhaustive()
    }
}

/// `LANG` of a form, when it is a plausible language code (for the page of an error too).
pub fn lang_of(form: &Value) -> Option<String> {
    text_of(form.get("LANG"))
        .filter(|l| l.len() <= 8 && l.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
        .map(|l| l.to_ascii_lowercase())
}

impl PlacementRequest {
    /// Reads the form. `Err` names what is missing or malformed, for a 400.
    pub fn from_form(form: &Value) -> Result<Self, String> {
        let placement = text_of(form.get("PLACEMENT")).ok_or("PLACEMENT is missing")?;
        if placement != SETTING_CONNECTOR {
            return Err(format!(
                "this page serves the {SETTING_CONNECTOR} placement only"
            ));
        }
        let domain = text_of(form.get("DOMAIN"))
            .ok_or("DOMAIN is missing")
            .and_then(|d| BitrixDomain::parse(&d).map_err(|_| "DOMAIN is not a host name"))?;
        let member_id = text_of(form.get("member_id"))
            .ok_or("member_id is missing")
            .and_then(|m| BitrixMemberId::parse(&m).map_err(|_| "member_id is malformed"))?;
        let auth_id = text_of(form.get("AUTH_ID"))
            .ok_or("AUTH_ID is missing")
            .and_then(|a| Secret::parse("AUTH_ID", &a).map_err(|_| "AUTH_ID is malformed"))?;
        let options = PlacementOptions::parse(
            form.get("PLACEMENT_OPTIONS")
                .ok_or("PLACEMENT_OPTIONS is missing")?,
        )?;
        Ok(PlacementRequest {
            domain,
            member_id,
            auth_id,
            options,
            lang: lang_of(form),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example of the documentation page, with our connector.
    fn documented() -> Value {
        json!({
            "DOMAIN": "xxx.bitrix24.com", "PROTOCOL": "1", "LANG": "en",
            "APP_SID": "0123456789abcdef0123456789abcdef",
            "AUTH_ID": "6061e72600631fcd00005a4b00000001f0f1076700000000f69dd5fc643d9ce2fdbc1",
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "50e00aa340631fcd00005a4b00000001f0f1071111116580a5b83c2de639ef28c12",
            "SERVER_ENDPOINT": "https://oauth.bitrix.info/rest/",
            "APPLICATION_TOKEN": "5b2f8c1d7e3a9046b8c5d2f1a7e3b904",
            "APPLICATION_SCOPE": "imopenlines,placement",
            "member_id": "da45a03b265edd8787f8a258d793cc5d", "status": "L",
            "PLACEMENT": "SETTING_CONNECTOR",
            "PLACEMENT_OPTIONS": "{\"CONNECTOR\":\"wappline_whatsapp\",\"LINE\":\"3\",\"STATUS\":false,\"ACTIVE_STATUS\":true,\"CONNECTION_STATUS\":false,\"REGISTER_STATUS\":false,\"ERROR_STATUS\":false,\"URI\":\"\\/contact_center\\/connector\\/?ID=wappline_whatsapp&IFRAME=Y&IFRAME_TYPE=SIDE_SLIDER\"}"
        })
    }

    #[test]
    fn the_documented_form_is_read() {
        let r = PlacementRequest::from_form(&documented()).unwrap();
        assert_eq!(r.domain.as_str(), "xxx.bitrix24.com");
        assert_eq!(r.member_id.as_str(), "da45a03b265edd8787f8a258d793cc5d");
        assert_eq!(r.options.connector.as_str(), "wappline_whatsapp");
        assert_eq!(r.options.line.get(), 3);
        assert_eq!(r.options.status.active, Some(true));
        assert_eq!(r.options.status.status, Some(false));
        assert_eq!(r.options.status.register, Some(false));
        assert_eq!(r.lang.as_deref(), Some("en"));
        assert!(!format!("{r:?}").contains("6061e726"));
    }

    #[test]
    fn missing_or_foreign_fields_are_refused() {
        for (field, value) in [
            ("PLACEMENT", json!("CRM_DEAL_DETAIL_TAB")),
            ("PLACEMENT", json!(null)),
            ("DOMAIN", json!("not a host/x")),
            ("member_id", json!("a#b")),
            ("AUTH_ID", json!("")),
            ("PLACEMENT_OPTIONS", json!("{not json")),
            (
                "PLACEMENT_OPTIONS",
                json!("{\"CONNECTOR\":\"wappline_whatsapp\"}"),
            ),
            (
                "PLACEMENT_OPTIONS",
                json!("{\"CONNECTOR\":\"x\",\"LINE\":\"0\"}"),
            ),
        ] {
            let mut form = documented();
            form[field] = value;
            assert!(PlacementRequest::from_form(&form).is_err(), "{field}");
        }
    }
}
