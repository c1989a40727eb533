//! The builder of the Open Line status of WhatsApp numbers (decision 0061). A child of the
//! composition root, so it shares its private helpers.

use super::Services;
use crate::portal::line_status::LineStatus;
use crate::portal::restriction_ends::RestrictionEnds;
use crate::portal::Connectors;

impl Services {
    /// Shows a number's Meta ban, restriction or removed app on its own Open Line; None on a
    /// deployment without the Bitrix24 application.
    pub fn line_status(&self) -> Option<LineStatus> {
        self.settings.bitrix.as_ref()?;
        let client = self.bitrix_client("the Open Line status").ok()?;
        Some(LineStatus::new(client, Connectors::default()))
    }

    /// The sync worker's scheduled run that shows a restriction's end on the number's Open
    /// Line when Meta sends no event for it (decision 0066); None like [`Services::line_status`].
    pub fn restriction_ends(&self) -> Option<RestrictionEnds> {
        Some(RestrictionEnds::new(
            self.platform.tenants.clone(),
            self.line_status()?,
        ))
    }
}
