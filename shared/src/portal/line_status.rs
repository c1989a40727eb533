//! A WhatsApp number's Meta status on its own Open Line (decision 0061): when Meta bans or
//! restricts the number, or our app is removed from its account, the channel's name on the
//! line says so; when the state recovers the name is plain again.
//!
//! Written with `imconnector.connector.data.set` (api-reference/imopenlines/imconnector/
//! imconnector-connector-data-set.md: application context, `CONNECTOR`, `LINE` an integer,
//! `DATA {ID, URL, URL_IM, NAME}` written as a whole, `NAME` "the name of the channel for
//! display in the interface"). Not `imconnector.set.error`: it raises the connector's
//! `ERROR_STATUS`, which makes the line's `STATUS` false (api-reference/widgets/
//! setting-connector.md), no documented method lowers it again, and Bitrix24's own
//! implementation treats it as disconnecting the connector; a restriction that ends in a
//! day must not cost the line its customers' messages.
//!
//! Only a channel attached to a line of its own (decision 0043) is shown there: the portal's
//! own line is shared by the channels without one, and its data names the product.

use super::{Connectors, Portal, PortalError, PortalTokens};
use crate::bitrix::{BitrixClient, BitrixError, ConnectorData};
use crate::tenant::{ChannelKind, ChannelRef, ChannelSummary, TenantError, TenantScope};

/// The channel's detail that holds what stops its sends (decision 0051).
const RESTRICTION_DETAIL: &str = "meta_restriction";

/// What showing the status did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Written on this line, with this name.
    OnLine { line: u64, name: String },
    /// The channel has no line of its own on the tenant's portal (or no portal is linked).
    NoOwnLine,
    /// The channel is no longer connected.
    ChannelGone,
    /// Bitrix24 refused for good (revoked tokens, connector removed); logged, not retried.
    Refused,
}

/// A failure worth retrying: the store, or Bitrix24 for now.
#[derive(Debug, thiserror::Error)]
pub enum LineStatusError {
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("Bitrix24: {0}")]
    Bitrix(BitrixError),
}

/// Writes a channel's status on its Open Line. Build once per process.
#[derive(Clone)]
pub struct LineStatus {
    client: BitrixClient,
    connectors: Connectors,
}

impl LineStatus {
    pub fn new(client: BitrixClient, connectors: Connectors) -> Self {
        LineStatus { client, connectors }
    }

    /// Shows `channel`'s current status on its own line (module documentation). Harmless
    /// to repeat: the data is written whole each time.
    pub async fn show(
        &self,
        scope: &TenantScope,
        channel: &ChannelRef,
    ) -> Result<Shown, LineStatusError> {
        self.show_at(scope, channel, crate::clock::now_secs()).await
    }

    /// [`LineStatus::show`] as of `now`: a restriction whose expiry passed no longer
    /// counts. When a restriction shown has an expiry, the channel is put on the
    /// restriction-end index ([`super::restriction_ends`]), so the plain name comes back
    /// when it passes, even if Meta sends no event then.
    pub async fn show_at(
        &self,
        scope: &TenantScope,
        channel: &ChannelRef,
        now: i64,
    ) -> Result<Shown, LineStatusError> {
        let mut portal = match Portal::load(scope).await {
            Ok(p) => p,
            Err(PortalError::NotConnected(_)) => return Ok(Shown::NoOwnLine),
            Err(PortalError::Tenant(e)) => return Err(e.into()),
        };
        let Some(line) = portal.attached.get(channel).copied() else {
            return Ok(Shown::NoOwnLine);
        };
        let Some(summary) = scope
            .channels()
            .await?
            .into_iter()
            .find(|c| c.kind == channel.kind() && c.id == channel.external_id())
        else {
            return Ok(Shown::ChannelGone);
        };
        let mut summary = summary;
        let status = scope.meta_account(channel).await?;
        match status.as_ref().and_then(|s| s.restriction_detail(now)) {
            Some(r) => summary.details.insert(RESTRICTION_DETAIL.to_owned(), r),
            None => summary.details.remove(RESTRICTION_DETAIL),
        };
        let data = channel_line_data(&summary);
        let connector = match channel.kind() {
            ChannelKind::Instagram => &self.connectors.instagram,
            _ => &self.connectors.whatsapp,
        };
        let store = PortalTokens::new(scope.clone(), portal.channel.clone());
        let mut session = self
            .client
            .session(&portal.domain, &mut portal.tokens, &store);
        match session.set_connector_data(connector, line, &data).await {
            Ok(()) => {
                tracing::info!(tenant = %scope.tenant(), line = line.get(),
                    restricted = summary.details.contains_key(RESTRICTION_DETAIL),
                    "channel status shown on its Open Line");
                if let Some(ends) = status.and_then(|s| s.next_expiry(now)) {
                    super::restriction_ends::due_at(scope, channel, ends).await?;
                }
                Ok(Shown::OnLine {
                    line: line.get(),
                    name: data.name.unwrap_or_default(),
                })
            }
            Err(e) if e.is_retryable() => Err(LineStatusError::Bitrix(e)),
            Err(e) => {
                tracing::warn!(tenant = %scope.tenant(), line = line.get(),
                    code = e.code().unwrap_or(""),
                    "Bitrix24 refused the channel status on its Open Line");
                Ok(Shown::Refused)
            }
        }
    }
}

/// What the line should say after the channel's name, from its `meta_restriction` detail
/// (`banned`, the restriction types in force, or `app_uninstalled`); None when sends are
/// free. Short: Bitrix24 shows it in the Contact Center tile and the line's settings.
pub fn status_suffix(restriction: Option<&str>) -> Option<&'static str> {
    let r = restriction?;
    Some(if r == "banned" {
        "disabled by Meta"
    } else if r == "app_uninstalled" {
        "disconnected: our app was removed in Meta"
    } else if r.contains("RESTRICTED_CUSTOMER_INITIATED_MESSAGING") {
        "restricted by Meta: no messages to customers"
    } else if r.contains("RESTRICTED_BIZ_INITIATED_MESSAGING") {
        "restricted by Meta: no new conversations"
    } else {
        "restricted by Meta"
    })
}

/// The number or account as people know it.
pub fn channel_label(c: &ChannelSummary) -> String {
    match c.kind {
        ChannelKind::WhatsApp => c
            .details
            .get("display_phone_number")
            .cloned()
            .unwrap_or_else(|| c.id.clone()),
        ChannelKind::Instagram => c
            .details
            .get("username")
            .map(|u| format!("@{u}"))
            .unwrap_or_else(|| c.id.clone()),
        ChannelKind::Bitrix24 => c.id.clone(),
    }
}

/// `imconnector.connector.data.set` `DATA` for a channel on its own line (`ID` the channel's
/// id in the external system, `URL` a link to it, `URL_IM` the operator's link or `URL`
/// again, `NAME` shown in the interface), its Meta status after the name.
pub fn channel_line_data(c: &ChannelSummary) -> ConnectorData {
    let url = match c.kind {
        ChannelKind::WhatsApp => c.details.get("display_phone_number").and_then(|p| {
            let digits: String = p.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then(|| format!("https://wa.me/{digits}"))
        }),
        ChannelKind::Instagram => c
            .details
            .get("username")
            .filter(|u| {
                u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            })
            .map(|u| format!("https://www.instagram.com/{u}/")),
        ChannelKind::Bitrix24 => None,
    };
    let channel = match c.kind {
        ChannelKind::Instagram => "Instagram",
        _ => "WhatsApp",
    };
    let mut name = format!("{channel} {}", channel_label(c));
    if let Some(suffix) = status_suffix(c.details.get(RESTRICTION_DETAIL).map(String::as_str)) {
        name = format!("{name} ({suffix})");
    }
    ConnectorData {
        id: c.id.clone(),
        url_im: url.clone(),
        url,
        name: Some(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn summary(kind: ChannelKind, id: &str, details: &[(&str, &str)]) -> ChannelSummary {
        ChannelSummary {
            kind,
            id: id.into(),
            connected_at: 0,
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            secrets_stored: vec![],
            authorized_by: None,
            crm_link: None,
            open_line: None,
            token: None,
        }
    }

    #[test]
    fn connector_data_names_the_number_or_account() {
        let wa = summary(
            ChannelKind::WhatsApp,
            "106540352242922",
            &[("display_phone_number", "+1 555-010-0199")],
        );
        let d = channel_line_data(&wa);
        assert_eq!(d.id, "106540352242922");
        assert_eq!(d.name.as_deref(), Some("WhatsApp +1 555-010-0199"));
        assert_eq!(d.url.as_deref(), Some("https://wa.me/15550100199"));
        assert_eq!(d.url_im, d.url);
        let ig = summary(
            ChannelKind::Instagram,
            "17841405822304914",
            &[("username", "acme.shop")],
        );
        let d = channel_line_data(&ig);
        assert_eq!(d.name.as_deref(), Some("Instagram @acme.shop"));
        assert_eq!(
            d.url.as_deref(),
            Some("https://www.instagram.com/acme.shop/")
        );
        let bare = summary(ChannelKind::WhatsApp, "106540352242922", &[]);
        assert_eq!(channel_line_data(&bare).url, None);
        assert_eq!(
            channel_line_data(&bare).name.as_deref(),
            Some("WhatsApp 106540352242922")
        );
    }

    #[test]
    fn the_name_carries_what_stops_sends() {
        let with = |r: &str| {
            channel_line_data(&summary(
                ChannelKind::WhatsApp,
                "106540352242922",
                &[
                    ("display_phone_number", "+1 555-010-0199"),
                    ("meta_restriction", r),
                ],
            ))
            .name
            .unwrap()
        };
        assert_eq!(
            with("banned"),
            "WhatsApp +1 555-010-0199 (disabled by Meta)"
        );
        assert_eq!(
            with("RESTRICTED_BIZ_INITIATED_MESSAGING,RESTRICTED_CUSTOMER_INITIATED_MESSAGING"),
            "WhatsApp +1 555-010-0199 (restricted by Meta: no messages to customers)"
        );
        assert_eq!(
            with("RESTRICTED_BIZ_INITIATED_MESSAGING"),
            "WhatsApp +1 555-010-0199 (restricted by Meta: no new conversations)"
        );
        assert_eq!(
            with("app_uninstalled"),
            "WhatsApp +1 555-010-0199 (disconnected: our app was removed in Meta)"
        );
        assert_eq!(status_suffix(None), None);
    }
}
