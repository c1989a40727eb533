//! Attaching one of the tenant's WhatsApp numbers or Instagram accounts to an Open Line of
//! its portal, and detaching it (decision 0043). The one implementation that both the
//! connector settings page inside the portal ([`super::placement`]) and the web console
//! (decision 0072) call; each verifies its caller its own way first and names the actor.
//!
//! - **Attach**: claim the line for the channel (one channel per line, one transaction), then
//!   `imconnector.activate` (ACTIVE=1) and `imconnector.connector.data.set` (the number or
//!   account) on that line with the portal's own tokens, so the Contact Center tile turns
//!   green and names it. If Bitrix24 refuses either, a claim made here is undone: nothing
//!   changed.
//! - **Detach**: the connector goes off on that line (ACTIVE=0), except on the portal's own
//!   line, which every channel without a line uses: there it stays on and its data names the
//!   product again. Then the claim is freed. If Bitrix24 refuses, nothing changes.
//!
//! Each change is in the tenant's audit log (`settings_changed`, setting `open_line`).

use std::collections::BTreeMap;

use crate::audit::{AuditAction, AuditLog};
use crate::bitrix::{BitrixClient, BitrixError, ConnectorData, ConnectorId, OpenLineId};
use crate::ids::BitrixMemberId;
use crate::tenant::{ChannelKind, ChannelRef, ChannelSummary, LineError, TenantError, TenantScope};

use super::install::PortalSetup;
use super::line_status::channel_line_data;
use super::{Portal, PortalTokens};

/// Why a line was not changed. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum LineChangeError {
    /// Refused by the one-channel-per-line rules (404 / 409 for the caller).
    #[error(transparent)]
    Line(LineError),
    /// Bitrix24 refused or failed a call (502).
    #[error("Bitrix24 refused {method}: {error}")]
    Bitrix {
        method: &'static str,
        error: BitrixError,
    },
    /// Our store could not be asked (503): try again.
    #[error("{0}")]
    Unavailable(String),
}

fn line_error(e: LineError) -> LineChangeError {
    match e {
        LineError::Tenant(TenantError::ChannelNotFound(c)) => {
            LineChangeError::Line(LineError::ChannelNotFound(c))
        }
        LineError::Tenant(e) => LineChangeError::Unavailable(e.to_string()),
        other => LineChangeError::Line(other),
    }
}

/// The line changes. Build once per process.
#[derive(Clone)]
pub struct OpenLines {
    client: BitrixClient,
    setup: PortalSetup,
    audit: AuditLog,
}

impl OpenLines {
    pub fn new(client: BitrixClient, setup: PortalSetup, audit: AuditLog) -> Self {
        OpenLines {
            client,
            setup,
            audit,
        }
    }

    pub fn client(&self) -> &BitrixClient {
        &self.client
    }

    pub fn setup(&self) -> &PortalSetup {
        &self.setup
    }

    /// Our connector for channels of `kind` (none for a portal).
    pub fn connector(&self, kind: ChannelKind) -> Option<&ConnectorId> {
        match kind {
            ChannelKind::WhatsApp => Some(&self.setup.connectors.whatsapp),
            ChannelKind::Instagram => Some(&self.setup.connectors.instagram),
            ChannelKind::Bitrix24 => None,
        }
    }

    /// Attaches `channel` (one of the tenant's) to `line` of `portal` (module documentation);
    /// `actor` names the caller in the audit log.
    pub async fn attach(
        &self,
        scope: &TenantScope,
        portal: &mut Portal,
        channel: &ChannelSummary,
        line: OpenLineId,
        actor: &str,
    ) -> Result<(), LineChangeError> {
        let (connector, member, channel_ref) = self.parts(portal, channel)?;
        let newly = scope
            .attach_to_line(&channel_ref, &member, line.get())
            .await
            .map_err(line_error)?;
        let data = channel_line_data(channel);
        if let Err(error) = self
            .activate(scope, portal, &connector, line, true, Some(&data))
            .await
        {
            // Bitrix24 did not take it: the line stays as it was.
            if newly {
                if let Err(e) = scope
                    .detach_from_line(&channel_ref, &member, line.get())
                    .await
                {
                    tracing::error!(tenant = %scope.tenant(), error = %e,
                        "undoing an attachment after a Bitrix24 refusal failed");
                }
            }
            return Err(error);
        }
        self.record(scope, actor, "attached", channel, line).await;
        tracing::info!(tenant = %scope.tenant(), line = line.get(), kind = channel.kind.name(),
            "channel attached to an Open Line");
        Ok(())
    }

    /// Detaches `channel` from `line` of `portal` (module documentation).
    pub async fn detach(
        &self,
        scope: &TenantScope,
        portal: &mut Portal,
        channel: &ChannelSummary,
        line: OpenLineId,
        actor: &str,
    ) -> Result<(), LineChangeError> {
        let (connector, member, channel_ref) = self.parts(portal, channel)?;
        let attached = channel
            .open_line
            .as_ref()
            .is_some_and(|a| a.member_id == member.as_str() && a.line == line.get());
        if !attached {
            return Err(LineChangeError::Line(LineError::NotAttached(line.get())));
        }
        if line == portal.line {
            // The portal's own line carries every channel without a line: keep the connector
            // on, and let the tile name the product again.
            let data = self.setup.default_data(&connector, line);
            self.activate(scope, portal, &connector, line, true, Some(&data))
                .await?;
        } else {
            // Off on this line only: the one channel it carried.
            self.activate(scope, portal, &connector, line, false, None)
                .await?;
        }
        match scope
            .detach_from_line(&channel_ref, &member, line.get())
            .await
        {
            // Turning the connector off may have brought OnImConnectorStatusDelete first,
            // which detached it already.
            Ok(()) | Err(LineError::NotAttached(_)) => {}
            Err(e) => return Err(line_error(e)),
        }
        self.record(scope, actor, "detached", channel, line).await;
        tracing::info!(tenant = %scope.tenant(), line = line.get(), kind = channel.kind.name(),
            "channel detached from an Open Line");
        Ok(())
    }

    /// The channel's connector, the portal's `member_id`, the channel's reference.
    fn parts(
        &self,
        portal: &Portal,
        channel: &ChannelSummary,
    ) -> Result<(ConnectorId, BitrixMemberId, ChannelRef), LineChangeError> {
        let connector = self
            .connector(channel.kind)
            .cloned()
            .ok_or(LineChangeError::Line(LineError::NotAttachable(
                channel.kind,
            )))?;
        let ChannelRef::Bitrix24(member) = &portal.channel else {
            return Err(LineChangeError::Unavailable(
                "the tenant's portal is not a Bitrix24 channel".into(),
            ));
        };
        let channel_ref = ChannelRef::parse(channel.kind, &channel.id)
            .map_err(|_| LineChangeError::Line(LineError::ChannelNotFound(channel.id.clone())))?;
        Ok((connector, member.clone(), channel_ref))
    }

    /// The names of `lines` of `portal` (`imopenlines.config.get`, one call a line, with the
    /// portal's own tokens). Best effort, for display: a line Bitrix24 does not know, or a
    /// failed call, has no name (the failure is logged) and the caller shows its id alone.
    pub async fn line_names(
        &self,
        scope: &TenantScope,
        portal: &mut Portal,
        lines: &[OpenLineId],
    ) -> BTreeMap<u64, String> {
        let store = PortalTokens::new(scope.clone(), portal.channel.clone());
        let mut session = self
            .client
            .session(&portal.domain, &mut portal.tokens, &store);
        let mut names = BTreeMap::new();
        for line in lines {
            if names.contains_key(&line.get()) {
                continue;
            }
            match session.open_line_config(*line).await {
                Ok(Some(config)) if !config.name.trim().is_empty() => {
                    names.insert(line.get(), config.name);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tenant = %scope.tenant(), line = line.get(), code = e.code().unwrap_or(""),
                        "an Open Line's name could not be read");
                    // The portal is down or refuses: the other lines would fare the same.
                    break;
                }
            }
        }
        names
    }

    /// `imconnector.activate` on `line`, then (when given) `imconnector.connector.data.set`,
    /// with the portal's own tokens (refreshed and stored as usual): the methods run in the
    /// application's context.
    async fn activate(
        &self,
        scope: &TenantScope,
        portal: &mut Portal,
        connector: &ConnectorId,
        line: OpenLineId,
        active: bool,
        data: Option<&ConnectorData>,
    ) -> Result<(), LineChangeError> {
        let store = PortalTokens::new(scope.clone(), portal.channel.clone());
        let mut session = self
            .client
            .session(&portal.domain, &mut portal.tokens, &store);
        let refused = |method: &'static str| move |error| LineChangeError::Bitrix { method, error };
        session
            .activate_connector(connector, line, active)
            .await
            .map_err(refused(crate::bitrix::imconnector::ACTIVATE))?;
        if let Some(data) = data {
            session
                .set_connector_data(connector, line, data)
                .await
                .map_err(refused(crate::bitrix::imconnector::CONNECTOR_DATA_SET))?;
        }
        Ok(())
    }

    async fn record(
        &self,
        scope: &TenantScope,
        actor: &str,
        what: &str,
        channel: &ChannelSummary,
        line: OpenLineId,
    ) {
        let line = line.to_string();
        if let Err(e) = self
            .audit
            .record(
                scope.tenant(),
                AuditAction::SettingsChanged,
                actor,
                &[
                    ("setting", "open_line"),
                    ("change", what),
                    ("kind", channel.kind.name()),
                    ("channel", &channel.id),
                    ("line", &line),
                ],
            )
            .await
        {
            tracing::error!(error = %e, "open line change not audited");
        }
    }
}
