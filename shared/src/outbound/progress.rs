//! Which parts of a multi-part message went out already (text then files, or a long text
//! split in pieces), so a retry after a failure part-way sends only the rest.
//!
//! One item per job in the dedupe table, keyed by tenant and the job's effect, holding the
//! provider id of each part sent (empty while not sent), kept as long as idempotency records.
//! It is written after each part's send and before the job is acknowledged; a crash between
//! Meta's answer and this write is the one window in which a part can go out twice (Meta's
//! send endpoints take no idempotency key).

use std::sync::Arc;

use crate::clock::now_secs;
use crate::idempotency::RETENTION;
use crate::ids::TenantId;
use crate::store::{AttrValue, Item, Key, StoreError, Table, TableStore, TTL_ATTR};

const SCOPE: &str = "OUTP";
const PARTS: &str = "parts";

/// The progress records.
#[derive(Clone)]
pub struct SendProgress {
    store: Arc<dyn TableStore>,
}

/// The progress record of a send job's `effect` (erasure derives it from a stored message).
pub fn key(tenant: &TenantId, effect: &str) -> Key {
    // The effect is already a SHA-256 in hex; bounded here in case it is not.
    let effect: String = effect
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    Key::new(tenant.sub_partition(&format!("{SCOPE}#{effect}")), SCOPE)
}

impl SendProgress {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        SendProgress { store }
    }

    /// Provider ids of the parts sent so far, by part index (`None`: not sent). Empty when
    /// nothing was recorded.
    pub async fn load(
        &self,
        tenant: &TenantId,
        effect: &str,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let item = self.store.get(Table::Dedupe, &key(tenant, effect)).await?;
        Ok(match item.as_ref().and_then(|i| i.get(PARTS)) {
            Some(AttrValue::L(list)) => list
                .iter()
                .map(|v| v.as_s().filter(|s| !s.is_empty()).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        })
    }

    pub async fn save(
        &self,
        tenant: &TenantId,
        effect: &str,
        parts: &[Option<String>],
    ) -> Result<(), StoreError> {
        let list = AttrValue::L(
            parts
                .iter()
                .map(|p| AttrValue::S(p.clone().unwrap_or_default()))
                .collect(),
        );
        let item = Item::new(&key(tenant, effect))
            .with(PARTS, list)
            .with(TTL_ATTR, now_secs() + RETENTION.as_secs() as i64);
        self.store.put(Table::Dedupe, item, None).await
    }
}
