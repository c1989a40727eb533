//! The builders of the Bitrix24 side: the portal's events, the install, the settings page
//! and the template picker inside the portal, the console's Open Lines, connection codes. A
//! child of the composition root, so it shares its private helpers.

use super::{invalid, Services, ServicesError};
use crate::bitrix::EndpointUrl;
use crate::portal::install::{public_base_url, BitrixInstaller, ConnectionCodes, PortalSetup};
use crate::portal::placement::{PageTokenKey, PlacementConsole};
use crate::portal_events::PortalEvents;
use crate::queue::platform;

impl Services {
    /// bitrix-webhook: operator replies, connector and app removal.
    pub fn portal_events(&self) -> Result<PortalEvents, ServicesError> {
        const S: &str = "bitrix-webhook";
        // A reply refused for quota becomes a note for the chat on the sync queue.
        self.require_queues(S, &[platform::SYNC])?;
        Ok(PortalEvents::new(
            self.platform.tenants.clone(),
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.outbound_intake()?,
            self.bitrix_client(S)?,
        )
        .with_revocations(self.revocations()?))
    }

    /// Where Bitrix24 reaches us (`PUBLIC_BASE_URL`), as the install flow registers it.
    pub fn bitrix_endpoint(&self, service: &'static str) -> Result<EndpointUrl, ServicesError> {
        public_base_url(self.public_base_url(service)?).map_err(|e| invalid(service, e))
    }

    /// bitrix-webhook: the app install and the portal-to-tenant link.
    pub fn bitrix_installer(&self) -> Result<BitrixInstaller, ServicesError> {
        const S: &str = "bitrix-webhook";
        Ok(BitrixInstaller::new(
            self.platform.tenants.clone(),
            self.platform.store.clone(),
            self.bitrix_client(S)?,
            PortalSetup::new(self.bitrix_endpoint(S)?),
        ))
    }

    /// bitrix-webhook: the template picker in the chat (decision 0061); its page tokens are
    /// signed with a key derived from the settings page's.
    pub fn template_picker(
        &self,
    ) -> Result<crate::portal::placement::picker::TemplatePicker, ServicesError> {
        const S: &str = "bitrix-webhook";
        let client = self.bitrix_client(S)?;
        let key = PageTokenKey::derive(&client.config().client_secret);
        Ok(crate::portal::placement::picker::TemplatePicker::new(
            self.platform.tenants.clone(),
            self.platform.envelope.clone(),
            client,
            &key,
        ))
    }

    /// bitrix-webhook: the connector settings page inside the portal (decision 0043). Its
    /// page tokens are signed with a key derived from the application's client secret.
    pub fn placement_console(&self) -> Result<PlacementConsole, ServicesError> {
        const S: &str = "bitrix-webhook";
        let client = self.bitrix_client(S)?;
        let key = PageTokenKey::derive(&client.config().client_secret);
        Ok(PlacementConsole::new(
            self.platform.tenants.clone(),
            client,
            PortalSetup::new(self.bitrix_endpoint(S)?),
            key,
        ))
    }

    /// Attaching channels to the portal's Open Lines from the console (decision 0072); `None`
    /// when this deployment has no Bitrix24 application or no public base URL.
    pub fn open_lines(
        &self,
        service: &'static str,
    ) -> Result<Option<crate::portal::line_change::OpenLines>, ServicesError> {
        if self.settings.bitrix.is_none() {
            return Ok(None);
        }
        let Ok(endpoint) = self.bitrix_endpoint(service) else {
            return Ok(None);
        };
        Ok(Some(crate::portal::line_change::OpenLines::new(
            self.bitrix_client(service)?,
            PortalSetup::new(endpoint),
            self.audit(),
        )))
    }

    /// The one-time codes that link a portal to a tenant.
    pub fn connection_codes(&self) -> ConnectionCodes {
        ConnectionCodes::new(self.platform.store.clone())
    }
}
