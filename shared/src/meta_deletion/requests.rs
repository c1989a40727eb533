//! Erasure requests for Meta users: recorded by the callback, read by the status page and the
//! erasure worker. Cross-tenant by nature (a Meta user may have authorised channels of several
//! tenants), so they live in the routes table:
//!
//! - `MDEL#<request id>` / `REQUEST`: request_id, kind, state, created_at, started_at,
//!   completed_at; while not completed also `meta_user_id` and the worker's progress
//!   (`tenants`, `requested_logged`, `completed_logged`); once completed, `expires_at`
//!   ([`STATUS_KEEP_DAYS`] later).
//! - `MDELCODE#<sha256 hex of the confirmation code>` / `CODE`: request_id, created_at,
//!   expires_at. The code itself is never stored.
//! - `MDELUSER#<meta user id>` / `OPEN`: request_id, created_at: the user's open request, so
//!   repeated callbacks join it; deleted when the request completes.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::now_secs;
use crate::crypto::random_bytes;
use crate::ids::MetaUserId;
use crate::store::{AttrValue, Condition, Item, Key, StoreError, Table, TableStore, WriteOp};

/// How long a completed request's status stays readable.
pub const STATUS_KEEP_DAYS: i64 = 365;
/// A confirmation code's lifetime: the erasure's 30 days plus [`STATUS_KEEP_DAYS`], and some.
pub const CODE_KEEP_DAYS: i64 = 400;
/// Random bytes in a confirmation code (160 bits), shown as 40 lowercase hex digits.
pub const CODE_BYTES: usize = 20;
const DAY: i64 = 86_400;

pub(crate) const REQUEST_SK: &str = "REQUEST";
const CODE_SK: &str = "CODE";
const OPEN_SK: &str = "OPEN";

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    InProgress,
    Completed,
}

impl RequestState {
    pub fn name(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::InProgress => "in_progress",
            RequestState::Completed => "completed",
        }
    }
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RequestState::Pending),
            "in_progress" => Some(RequestState::InProgress),
            "completed" => Some(RequestState::Completed),
            _ => None,
        }
    }
}

/// What the status page may show: the state and its dates, nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestStatus {
    pub state: RequestState,
    /// Unix seconds.
    pub requested_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
}

impl RequestStatus {
    pub(crate) fn from_item(item: &Item) -> Option<Self> {
        Some(RequestStatus {
            state: RequestState::from_name(item.get_s("state")?)?,
            requested_at: item.get_n("created_at")?,
            started_at: item.get_n("started_at"),
            completed_at: item.get_n("completed_at"),
        })
    }
}

/// An erasure request's id: `mdr_` and 24 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);

impl RequestId {
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 12];
        random_bytes(&mut bytes).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(RequestId(format!("mdr_{}", hex::encode(bytes))))
    }
    pub fn parse(s: &str) -> Option<Self> {
        let hex_part = s.strip_prefix("mdr_")?;
        (hex_part.len() == 24
            && hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| RequestId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn key(&self) -> Key {
        Key::new(format!("MDEL#{}", self.0), REQUEST_SK)
    }
}

/// A fresh confirmation code: 160 random bits as 40 lowercase hex digits (alphanumeric, as
/// Meta asks, and URL-safe).
pub fn new_code() -> Result<String, StoreError> {
    let mut bytes = [0u8; CODE_BYTES];
    random_bytes(&mut bytes).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The lookup key of a code (only well-formed codes have one).
fn code_key(code: &str) -> Option<Key> {
    let ok = code.len() == CODE_BYTES * 2
        && code.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| {
        Key::new(
            format!("MDELCODE#{}", hex::encode(Sha256::digest(code.as_bytes()))),
            CODE_SK,
        )
    })
}

fn open_key(user: &MetaUserId) -> Key {
    Key::new(format!("MDELUSER#{}", user.as_str()), OPEN_SK)
}

/// The stored requests.
#[derive(Clone)]
pub struct ErasureRequests {
    store: Arc<dyn TableStore>,
}

/// A request as recorded for a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub request_id: RequestId,
    pub confirmation_code: String,
    /// False when the callback joined the user's open request.
    pub new_request: bool,
}

impl ErasureRequests {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        ErasureRequests { store }
    }

    /// Records an erasure request for `user`, or joins the user's open (pending or in
    /// progress) one, and returns a fresh confirmation code for it. Each call gives a new
    /// code; every code of a request shows the same status.
    pub async fn record(&self, user: &MetaUserId) -> Result<Recorded, StoreError> {
        let now = now_secs();
        for _ in 0..3 {
            let code = new_code()?;
            let code_key = code_key(&code).expect("fresh codes are well-formed");
            if let Some(open) = self.store.get(Table::Routes, &open_key(user)).await? {
                let Some(request_id) = open.get_s("request_id").and_then(RequestId::parse) else {
                    return Err(StoreError::Backend(
                        "open erasure request unreadable".into(),
                    ));
                };
                // Joins it only while it is open: a completed request has dropped its
                // open item (and a crash between the two is finished by the worker).
                let open_state = self
                    .store
                    .get(Table::Routes, &request_id.key())
                    .await?
                    .and_then(|i| i.get_s("state").and_then(RequestState::from_name));
                if matches!(
                    open_state,
                    Some(RequestState::Pending | RequestState::InProgress)
                ) {
                    self.store
                        .put(
                            Table::Routes,
                            code_item(&code_key, &request_id, now),
                            Some(Condition::NotExists),
                        )
                        .await?;
                    return Ok(Recorded {
                        request_id,
                        confirmation_code: code,
                        new_request: false,
                    });
                }
            }
            let request_id = RequestId::generate()?;
            let request = Item::new(&request_id.key())
                .with("request_id", request_id.as_str())
                .with("kind", "meta_user")
                .with("state", RequestState::Pending.name())
                .with("created_at", now)
                .with("meta_user_id", user.as_str());
            let open = Item::new(&open_key(user))
                .with("request_id", request_id.as_str())
                .with("created_at", now);
            let result = self
                .store
                .transact_write(vec![
                    WriteOp::Put {
                        table: Table::Routes,
                        item: open,
                        condition: Some(Condition::NotExists),
                    },
                    WriteOp::Put {
                        table: Table::Routes,
                        item: request,
                        condition: Some(Condition::NotExists),
                    },
                    WriteOp::Put {
                        table: Table::Routes,
                        item: code_item(&code_key, &request_id, now),
                        condition: Some(Condition::NotExists),
                    },
                ])
                .await;
            match result {
                Ok(()) => {
                    return Ok(Recorded {
                        request_id,
                        confirmation_code: code,
                        new_request: true,
                    })
                }
                // Another callback for this user got there first (or a stale open item of a
                // completed request is in the way): look again.
                Err(StoreError::ConditionFailed { .. }) => {
                    if let Some(open) = self.store.get(Table::Routes, &open_key(user)).await? {
                        let stale = match open.get_s("request_id").and_then(RequestId::parse) {
                            Some(id) => matches!(
                                self.state(&id).await?,
                                None | Some(RequestState::Completed)
                            ),
                            None => true,
                        };
                        if stale {
                            self.store
                                .delete(Table::Routes, &open_key(user), None)
                                .await?;
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "erasure request contended; retry".into(),
        ))
    }

    async fn state(&self, id: &RequestId) -> Result<Option<RequestState>, StoreError> {
        Ok(self
            .store
            .get(Table::Routes, &id.key())
            .await?
            .and_then(|i| i.get_s("state").and_then(RequestState::from_name)))
    }

    /// The status a confirmation code shows; None for an unknown or malformed code.
    pub async fn status_by_code(&self, code: &str) -> Result<Option<RequestStatus>, StoreError> {
        let Some(key) = code_key(code.trim()) else {
            return Ok(None);
        };
        let Some(code_item) = self.store.get(Table::Routes, &key).await? else {
            return Ok(None);
        };
        let Some(id) = code_item.get_s("request_id").and_then(RequestId::parse) else {
            return Ok(None);
        };
        self.status(&id).await
    }

    /// A request's status by id.
    pub async fn status(&self, id: &RequestId) -> Result<Option<RequestStatus>, StoreError> {
        Ok(self
            .store
            .get(Table::Routes, &id.key())
            .await?
            .as_ref()
            .and_then(RequestStatus::from_item))
    }

    pub(crate) async fn get(&self, id: &RequestId) -> Result<Option<Item>, StoreError> {
        self.store.get(Table::Routes, &id.key()).await
    }

    /// pending → in_progress (no-op when already past pending).
    pub(crate) async fn start(&self, id: &RequestId) -> Result<(), StoreError> {
        let update = crate::store::Update::new()
            .set("state", RequestState::InProgress.name())
            .set("started_at", now_secs());
        match self
            .store
            .update(
                Table::Routes,
                &id.key(),
                update,
                Some(Condition::Equals(
                    "state".into(),
                    RequestState::Pending.name().into(),
                )),
            )
            .await
        {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Replaces a progress list on an open request.
    pub(crate) async fn set_list(
        &self,
        id: &RequestId,
        name: &str,
        values: &[String],
    ) -> Result<(), StoreError> {
        let list = AttrValue::L(values.iter().cloned().map(AttrValue::S).collect());
        let update = crate::store::Update::new().set(name, list);
        self.store
            .update(
                Table::Routes,
                &id.key(),
                update,
                Some(Condition::Equals(
                    "state".into(),
                    RequestState::InProgress.name().into(),
                )),
            )
            .await
            .map(|_| ())
    }

    /// Marks the request completed and forgets who asked: the user id, the progress lists
    /// and the user's open item go.
    pub(crate) async fn complete(
        &self,
        id: &RequestId,
        user: &MetaUserId,
    ) -> Result<(), StoreError> {
        match self
            .store
            .delete(
                Table::Routes,
                &open_key(user),
                Some(Condition::Equals("request_id".into(), id.as_str().into())),
            )
            .await
        {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
        let now = now_secs();
        let update = crate::store::Update::new()
            .set("state", RequestState::Completed.name())
            .set("completed_at", now)
            .set(crate::store::TTL_ATTR, now + STATUS_KEEP_DAYS * DAY)
            .remove("meta_user_id")
            .remove("tenants")
            .remove("requested_logged")
            .remove("completed_logged");
        match self
            .store
            .update(Table::Routes, &id.key(), update, Some(Condition::Exists))
            .await
        {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn code_item(key: &Key, request_id: &RequestId, now: i64) -> Item {
    Item::new(key)
        .with("request_id", request_id.as_str())
        .with("created_at", now)
        .with(crate::store::TTL_ATTR, now + CODE_KEEP_DAYS * DAY)
}

/// A list attribute's strings.
pub(crate) fn strings(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttrValue::L(l)) => l
            .iter()
            .filter_map(|v| v.as_s().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}
