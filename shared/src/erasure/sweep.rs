//! The second pass of a contact erasure (decision 0137): once the work that may have
//! overlapped the erasure has settled, the erased conversations are erased again.
//!
//! Every stage that writes the person's data reads the erasure's marker after its write and
//! removes what it wrote (decisions 0122-0134). Some of those writes can still be left: an
//! operator's reply whose removal failed (Bitrix24 does not retry the event), a send job's
//! records written after the Graph API call while the erasure ran. They sit in the erased
//! conversation's partition until the tenant's retention, which may be longer than the
//! erasure's 30 days. So the request, once completed, keeps its conversations' ids (keyed
//! hashes: they name no one) and the business account, and its job comes back one lease
//! later (the queue's visibility timeout on AWS: every relay job running as the erasure
//! completed has finished or lost its hold by then). That run erases each conversation again
//! with the same cut, which keeps a conversation the person began after it, and forgets the
//! ids.

use std::time::Duration;

use super::{
    erase_conversation, request_key, ContactErasure, Cursor, ErasureError, CURSOR_TARGETS,
    THROUGH_MS,
};
use crate::conversation::Conversations;
use crate::ids::TenantId;
use crate::meta::AccountRef;
use crate::store::{Table, Update};

/// When the second pass is due (Unix ms); absent once it ran, and on requests completed
/// before it existed.
pub(super) const SWEEP_DUE_MS: &str = "sweep_due_ms";
/// The business account of the erased conversations (JSON), which the derived keys need.
pub(super) const SWEEP_ACCOUNT: &str = "sweep_account";
/// When the second pass ran (Unix seconds).
pub(super) const SWEPT_AT: &str = "swept_at";

impl ContactErasure {
    /// The second pass of a completed request: how long until it is due, or `None` once it
    /// ran (now, or before).
    pub(super) async fn sweep(
        &self,
        tenant: &TenantId,
        request_id: &str,
    ) -> Result<Option<Duration>, ErasureError> {
        let key = request_key(tenant, request_id);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(None);
        };
        let Some(due) = item.get_n(SWEEP_DUE_MS) else {
            return Ok(None);
        };
        let now = self.clock.now_millis();
        if now < due {
            return Ok(Some(Duration::from_millis((due - now) as u64)));
        }
        let through = item
            .get_n(THROUGH_MS)
            .ok_or_else(|| ErasureError::Corrupt("a completed request without its cut".into()))?;
        let account: Option<AccountRef> = item
            .get_s(SWEEP_ACCOUNT)
            .and_then(|a| serde_json::from_str(a).ok());
        let targets = Cursor::ids(&item, CURSOR_TARGETS)?;
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        let mut named = 0;
        for id in &targets {
            named += erase_conversation(
                &self.store,
                &conversations,
                account.as_ref(),
                id,
                Some(through),
            )
            .await?;
        }
        self.save(
            &key,
            Update::new()
                .set(SWEPT_AT, now.div_euclid(1000))
                .remove(SWEEP_DUE_MS)
                .remove(SWEEP_ACCOUNT)
                .remove(CURSOR_TARGETS),
        )
        .await?;
        tracing::info!(
            conversations = targets.len(),
            keys = named,
            "contact erasure swept again once the work it overlapped settled"
        );
        Ok(None)
    }
}
