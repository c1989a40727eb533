//! The builder of the message-template sync (decision 0050). A child of the composition
//! root, so it shares its private helpers.

use super::{Services, ServicesError};
use crate::portal::install::PortalSetup;
use crate::portal::providers::MessageProviders;
use crate::templates::sync::TemplateSync;

impl Services {
    /// Reads WhatsApp Business Accounts' templates: at connect time (admin API, Embedded
    /// Signup) and on the account-maintenance schedule (the erasure worker's).
    pub fn template_sync(&self) -> Result<TemplateSync, ServicesError> {
        Ok(TemplateSync::new(
            self.platform.tenants.clone(),
            self.graph_client()?,
        ))
    }

    /// Registers a connected WhatsApp number as a message provider on the tenant's portal
    /// (decision 0050); None on a deployment without the Bitrix24 application.
    pub fn message_providers(&self) -> Option<MessageProviders> {
        const S: &str = "message providers";
        self.settings.bitrix.as_ref()?;
        let client = self.bitrix_client(S).ok()?;
        let endpoint = self.bitrix_endpoint(S).ok()?;
        Some(MessageProviders::new(client, PortalSetup::new(endpoint)))
    }
}
