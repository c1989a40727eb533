//! The builder of the message-template sync (decision 0050). A child of the composition
//! root, so it shares its private helpers.

use super::{Services, ServicesError};
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
}
