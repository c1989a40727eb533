//! The builders of the privacy flows (Meta's deletion callback, exports, contact and
//! account erasure). A child of the composition root, so it shares its private helpers.

use std::sync::Arc;

use super::{invalid, missing, Services, ServicesError};
use crate::app::settings::vars;
use crate::erasure::tenant::TenantErasure;
use crate::erasure::{ContactErasure, ErasureWorker};
use crate::export::{ExportRequests, ExportWorker, Exports};
use crate::meta_deletion::{MetaDeletion, MetaUserErasure};
use crate::queue::platform;

impl Services {
    /// data-deletion: Meta's Data Deletion Callback and its status page.
    pub fn meta_deletion(&self) -> Result<MetaDeletion, ServicesError> {
        const S: &str = "data-deletion";
        MetaDeletion::new(
            self.meta_app_secrets(S)?,
            self.platform.store.clone(),
            self.queue.clone(),
            self.queue_name(S, platform::ERASURE)?,
            self.public_base_url(S)?,
        )
        .map_err(|e| invalid(S, e))
    }

    /// Tenant exports: written to the object store, downloaded through signed links.
    pub fn exports(&self) -> Result<Exports, ServicesError> {
        const S: &str = "exports";
        let objects = self
            .objects
            .clone()
            .ok_or_else(|| missing(S, vars::EXPORT_BUCKET))?;
        let key = self
            .settings
            .export_link_key
            .clone()
            .ok_or_else(|| missing(S, vars::EXPORT_LINK_KEY))?;
        let base = self.public_base_url(S)?;
        let exports = Exports::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            objects,
            key,
            format!("{}/exports/download", base.trim_end_matches('/')),
        );
        Ok(match self.settings.export_link_key_previous.clone() {
            Some(previous) => exports.with_previous_key(previous),
            None => exports,
        })
    }

    /// Export requests, recorded and queued for the export worker (admin API, console).
    pub fn export_requests(&self, service: &'static str) -> Result<ExportRequests, ServicesError> {
        Ok(ExportRequests::new(
            self.exports()?,
            self.queue.clone(),
            self.queue_name(service, platform::EXPORTS)?,
        ))
    }

    pub fn export_worker(&self) -> Result<ExportWorker, ServicesError> {
        Ok(ExportWorker::new(self.exports()?))
    }

    /// Erasure of one contact (requested, then run by the erasure worker).
    pub fn contact_erasure(&self) -> Result<ContactErasure, ServicesError> {
        self.require_queues("contact erasure", &[platform::ERASURE])?;
        let erasure = ContactErasure::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.queue.clone(),
        )
        .with_exports(self.exports()?)
        .with_sweep_after(self.settings.erasure_sweep.unwrap_or(self.lease()));
        // Without a mailer (no `MAIL_FROM`) the completion shows in the request's status only.
        Ok(match &self.mailer {
            Some(mailer) => erasure.with_mailer(mailer.clone()),
            None => erasure,
        })
    }

    /// Erasure of a whole tenant (requested, then swept on a schedule).
    pub fn tenant_erasure(&self) -> Result<TenantErasure, ServicesError> {
        let erasure = TenantErasure::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
        )
        .with_exports(self.exports()?)
        .with_revocations(self.revocations()?);
        Ok(match &self.mailer {
            Some(mailer) => erasure.with_mailer(mailer.clone()),
            None => erasure,
        })
    }

    /// erasure-worker: contact and Meta-user erasure jobs.
    pub fn erasure_worker(&self) -> Result<ErasureWorker, ServicesError> {
        Ok(
            ErasureWorker::new(self.contact_erasure()?).with_meta_users(Arc::new(
                MetaUserErasure::new(
                    self.platform.store.clone(),
                    self.platform.tenants.clone(),
                    self.revocations()?,
                ),
            )),
        )
    }
}
