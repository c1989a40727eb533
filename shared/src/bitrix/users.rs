//! Who opened one of the application's pages: the methods an application calls with the
//! user's own token (`AUTH_ID` of a placement or of the install wizard), on the portal's own
//! address.
//!
//! - `user.current` (apidocs api-reference/user/user-current.md): no parameters; "by making
//!   a REST request ... to the domain `DOMAIN` and adding `AUTH_ID` ... you can find out which
//!   user opened the page". Answers the user as an object, `ID` a string.
//! - `user.admin` (api-reference/common/users/user-admin.md): no parameters; `result` is
//!   `true` when the current user may change the portal's settings (cloud: the
//!   `bitrix24_config` operation), `false` otherwise.
//! - `app.info` (api-reference/common/system/app-info.md): no parameters; only in an
//!   application's context (`ACCESS_DENIED` "Application context required" otherwise);
//!   answers `ID`, `CODE`, `VERSION`, `STATUS`, `INSTALLED` (bool)...
//!
//! A forged or stale token is refused by the portal with `401` `invalid_token` /
//! `expired_token` / `NO_AUTH_FOUND` ([`BitrixError::Unauthorized`] /
//! [`BitrixError::ExpiredToken`]). Nothing here refreshes: a user's token is not ours to keep.

use std::fmt;

use serde_json::Value;

use super::client::{BitrixClient, APP_INFO};
use super::error::BitrixError;
use crate::ids::BitrixDomain;
use crate::secret::Secret;

pub const USER_CURRENT: &str = "user.current";
pub const USER_ADMIN: &str = "user.admin";

/// The user a token belongs to. `Debug` shows the id only (names are personal data).
#[derive(Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The portal's user id (`ID`).
    pub id: u64,
    /// `NAME` and `LAST_NAME`, joined, when given.
    pub name: Option<String>,
}

impl fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentUser")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What `app.info` says of the application on the portal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppInfo {
    /// `CODE`: the application's code (a local application's client id).
    pub code: Option<String>,
    /// `INSTALLED`: false until the installation finished.
    pub installed: bool,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads `user.current`'s result.
pub fn parse_current_user(result: &Value) -> Result<CurrentUser, BitrixError> {
    let id = text(result.get("ID"))
        .and_then(|id| id.parse::<u64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| BitrixError::Protocol(format!("{USER_CURRENT}: no user ID")))?;
    let name = [text(result.get("NAME")), text(result.get("LAST_NAME"))]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(CurrentUser {
        id,
        name: (!name.is_empty()).then_some(name),
    })
}

/// Reads `user.admin`'s result: a boolean (older portals: `"Y"`/`"N"`... are read too).
pub fn parse_is_admin(result: &Value) -> Result<bool, BitrixError> {
    match result {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if matches!(s.as_str(), "Y" | "true" | "1") => Ok(true),
        Value::String(s) if matches!(s.as_str(), "N" | "false" | "0" | "") => Ok(false),
        Value::Number(n) => Ok(n.as_u64().is_some_and(|n| n != 0)),
        _ => Err(BitrixError::Protocol(format!(
            "{USER_ADMIN}: result is not a boolean"
        ))),
    }
}

/// Reads `app.info`'s result.
pub fn parse_app_info(result: &Value) -> Result<AppInfo, BitrixError> {
    if !result.is_object() {
        return Err(BitrixError::Protocol(format!(
            "{APP_INFO}: result is not an object"
        )));
    }
    let installed = match result.get("INSTALLED") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "Y" | "true" | "1"),
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        _ => false,
    };
    Ok(AppInfo {
        code: text(result.get("CODE")),
        installed,
    })
}

impl BitrixClient {
    /// `user.current` with `token` on `portal`.
    pub async fn current_user(
        &self,
        portal: &BitrixDomain,
        token: &Secret,
    ) -> Result<CurrentUser, BitrixError> {
        let result = self.call(portal, token, USER_CURRENT, Value::Null).await?;
        parse_current_user(&result)
    }

    /// `user.admin` with `token` on `portal`.
    pub async fn is_admin(
        &self,
        portal: &BitrixDomain,
        token: &Secret,
    ) -> Result<bool, BitrixError> {
        let result = self.call(portal, token, USER_ADMIN, Value::Null).await?;
        parse_is_admin(&result)
    }

    /// `app.info` with `token` on `portal`: answers only for an application's token.
    pub async fn app_info(
        &self,
        portal: &BitrixDomain,
        token: &Secret,
    ) -> Result<AppInfo, BitrixError> {
        let result = self.call(portal, token, APP_INFO, Value::Null).await?;
        parse_app_info(&result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_answers() {
        // The example answers of the pages cited above.
        let user = parse_current_user(&json!({
            "ID": "3", "ACTIVE": true, "NAME": "John", "LAST_NAME": "Doe",
            "EMAIL": "test@gmail.com", "UF_DEPARTMENT": [1]
        }))
        .unwrap();
        assert_eq!(user.id, 3);
        assert_eq!(user.name.as_deref(), Some("John Doe"));
        assert!(!format!("{user:?}").contains("John"));
        assert!(parse_current_user(&json!({"NAME": "x"})).is_err());
        assert!(parse_current_user(&json!({"ID": "0"})).is_err());

        assert!(parse_is_admin(&json!(true)).unwrap());
        assert!(!parse_is_admin(&json!(false)).unwrap());
        assert!(parse_is_admin(&json!({"x": 1})).is_err());

        let info = parse_app_info(&json!({
            "ID": 5, "CODE": "telefum24.kp10", "VERSION": 4, "STATUS": "F",
            "INSTALLED": true, "PAYMENT_EXPIRED": "N", "DAYS": null
        }))
        .unwrap();
        assert_eq!(info.code.as_deref(), Some("telefum24.kp10"));
        assert!(info.installed);
        assert!(
            !parse_app_info(&json!({"INSTALLED": false}))
                .unwrap()
                .installed
        );
        assert!(parse_app_info(&json!(true)).is_err());
    }
}
