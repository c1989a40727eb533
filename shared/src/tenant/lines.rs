//! Which Bitrix24 Open Line a channel's conversations go to (decision 0043).
//!
//! A WhatsApp number or an Instagram account may be attached to one Open Line of the
//! tenant's portal; a line holds at most one attached channel. A channel without an
//! attachment goes to the portal's own line (the one chosen at install), as before.
//!
//! Two items say it, always written in the same transaction:
//! - the channel item's [`OPEN_LINE_ATTR`], a map `{member_id, line}` (the portal is named so
//!   that an attachment never applies to another portal connected later);
//! - the line's claim `T#<tenant>` / `LINE#<member_id>#<line>`, whose conditional write makes
//!   "one channel per line" hold under concurrent attaches.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scope::describe;
use super::{ChannelKind, ChannelRef, TenantError, TenantScope};
use crate::ids::{BitrixMemberId, TenantId};
use crate::store::{AttrValue, Condition, Item, Key, StoreError, Table, Update, WriteOp};

/// Attribute of a channel item naming its Open Line (a map `member_id`, `line`).
pub const OPEN_LINE_ATTR: &str = "open_line";
/// Sort-key prefix of line claims in the tenant's root partition.
pub const LINE_CLAIM_SK_PREFIX: &str = "LINE#";

/// The Open Line a channel is attached to, on which portal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenLineAttachment {
    pub member_id: String,
    pub line: u64,
}

impl OpenLineAttachment {
    pub(crate) fn to_attr(&self) -> AttrValue {
        let mut m = BTreeMap::new();
        m.insert("member_id".to_owned(), AttrValue::S(self.member_id.clone()));
        m.insert("line".to_owned(), AttrValue::N(self.line as i64));
        AttrValue::M(m)
    }

    pub(crate) fn from_attr(value: Option<&AttrValue>) -> Option<Self> {
        let AttrValue::M(m) = value? else {
            return None;
        };
        let line = m.get("line").and_then(AttrValue::as_n)?;
        Some(OpenLineAttachment {
            member_id: m.get("member_id").and_then(AttrValue::as_s)?.to_owned(),
            line: u64::try_from(line).ok().filter(|l| *l > 0)?,
        })
    }

    /// Key of the line's claim.
    pub(crate) fn claim_key(&self, tenant: &TenantId) -> Key {
        Key::new(
            tenant.partition(),
            format!("{LINE_CLAIM_SK_PREFIX}{}#{}", self.member_id, self.line),
        )
    }
}

/// The claim's value naming its channel (`<kind code>#<id>`).
fn claim_owner(channel: &ChannelRef) -> String {
    format!("{}#{}", channel.kind().code(), channel.external_id())
}

/// Why a channel was not attached or detached.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("{0} is not connected to this tenant")]
    ChannelNotFound(String),
    /// Only WhatsApp numbers and Instagram accounts go to Open Lines.
    #[error("a {0} channel cannot be attached to an Open Line")]
    NotAttachable(ChannelKind),
    /// The channel is attached to another line: detach it there first.
    #[error("the channel is attached to Open Line {0}; detach it there first")]
    AttachedElsewhere(u64),
    /// Another channel holds the line (one channel per line).
    #[error("Open Line {line} already carries {holder}; detach it first")]
    LineTaken { line: u64, holder: String },
    /// The channel is not attached to the line named.
    #[error("the channel is not attached to Open Line {0}")]
    NotAttached(u64),
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

impl From<StoreError> for LineError {
    fn from(e: StoreError) -> Self {
        LineError::Tenant(e.into())
    }
}

impl TenantScope {
    /// The Open Line `channel` is attached to (on any portal), if any.
    pub async fn open_line_of(
        &self,
        channel: &ChannelRef,
    ) -> Result<Option<OpenLineAttachment>, TenantError> {
        let item = self
            .store
            .get(Table::Data, &channel.channel_key(&self.tenant))
            .await?
            .ok_or_else(|| TenantError::ChannelNotFound(describe(channel)))?;
        Ok(OpenLineAttachment::from_attr(item.get(OPEN_LINE_ATTR)))
    }

    /// The channel attached to `line` of portal `member`, if any.
    pub async fn channel_on_line(
        &self,
        member: &BitrixMemberId,
        line: u64,
    ) -> Result<Option<ChannelRef>, TenantError> {
        let claim = OpenLineAttachment {
            member_id: member.as_str().to_owned(),
            line,
        };
        Ok(self
            .store
            .get(Table::Data, &claim.claim_key(&self.tenant))
            .await?
            .and_then(|i| i.get_s("channel").and_then(ChannelRef::from_index_sk)))
    }

    /// Attaches `channel` to `line` of portal `member`. Attaching it again to the same line
    /// is a no-op (`Ok(false)`). Refused when the channel is on another line or the line
    /// holds another channel; the conditional transaction is the arbiter of races.
    pub async fn attach_to_line(
        &self,
        channel: &ChannelRef,
        member: &BitrixMemberId,
        line: u64,
    ) -> Result<bool, LineError> {
        let _writing = self.writing();
        if channel.kind() == ChannelKind::Bitrix24 {
            return Err(LineError::NotAttachable(channel.kind()));
        }
        let wanted = OpenLineAttachment {
            member_id: member.as_str().to_owned(),
            line,
        };
        let previous = match self.open_line_of(channel).await {
            Ok(Some(current)) if current == wanted => return Ok(false),
            Ok(Some(current)) if current.member_id == wanted.member_id => {
                return Err(LineError::AttachedElsewhere(current.line))
            }
            // An attachment to a portal no longer connected is replaced below.
            Ok(previous) => previous,
            Err(TenantError::ChannelNotFound(c)) => return Err(LineError::ChannelNotFound(c)),
            Err(e) => return Err(e.into()),
        };
        if let Some(holder) = self.channel_on_line(member, line).await? {
            if &holder != channel {
                return Err(LineError::LineTaken {
                    line,
                    holder: describe(&holder),
                });
            }
        }
        let channel_key = channel.channel_key(&self.tenant);
        let mut ops = vec![
            WriteOp::Update {
                table: Table::Data,
                key: channel_key,
                update: Update::new().set(OPEN_LINE_ATTR, wanted.to_attr()),
                condition: Some(Condition::And(vec![
                    Condition::Exists,
                    match &previous {
                        Some(p) => Condition::Equals(OPEN_LINE_ATTR.into(), p.to_attr()),
                        None => Condition::AttrNotExists(OPEN_LINE_ATTR.into()),
                    },
                ])),
            },
            WriteOp::Put {
                table: Table::Data,
                item: Item::new(&wanted.claim_key(&self.tenant))
                    .with("channel", claim_owner(channel)),
                condition: Some(Condition::NotExists),
            },
        ];
        if let Some(p) = &previous {
            ops.push(WriteOp::Delete {
                table: Table::Data,
                key: p.claim_key(&self.tenant),
                condition: None,
            });
        }
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { op_index }) => Err(match op_index {
                Some(1) => LineError::LineTaken {
                    line,
                    holder: "another channel".into(),
                },
                _ => LineError::Tenant(TenantError::Store(StoreError::Unavailable(
                    "the channel changed meanwhile; try again".into(),
                ))),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Detaches `channel` from `line` of portal `member`: its conversations go to the
    /// portal's own line again. Refused when it is not attached there.
    pub async fn detach_from_line(
        &self,
        channel: &ChannelRef,
        member: &BitrixMemberId,
        line: u64,
    ) -> Result<(), LineError> {
        let _writing = self.writing();
        let expected = OpenLineAttachment {
            member_id: member.as_str().to_owned(),
            line,
        };
        match self.open_line_of(channel).await {
            Ok(Some(current)) if current == expected => {}
            Ok(_) => return Err(LineError::NotAttached(line)),
            Err(TenantError::ChannelNotFound(c)) => return Err(LineError::ChannelNotFound(c)),
            Err(e) => return Err(e.into()),
        }
        let ops = vec![
            WriteOp::Update {
                table: Table::Data,
                key: channel.channel_key(&self.tenant),
                update: Update::new().remove(OPEN_LINE_ATTR),
                condition: Some(Condition::Equals(OPEN_LINE_ATTR.into(), expected.to_attr())),
            },
            WriteOp::Delete {
                table: Table::Data,
                key: expected.claim_key(&self.tenant),
                condition: None,
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(LineError::NotAttached(line)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip_and_refuse_nonsense() {
        let a = OpenLineAttachment {
            member_id: "a223c6b3710f85df22e9377d6c4f7553".into(),
            line: 2,
        };
        assert_eq!(OpenLineAttachment::from_attr(Some(&a.to_attr())), Some(a));
        let mut zero = BTreeMap::new();
        zero.insert("member_id".to_owned(), AttrValue::S("m".into()));
        zero.insert("line".to_owned(), AttrValue::N(0));
        assert_eq!(
            OpenLineAttachment::from_attr(Some(&AttrValue::M(zero))),
            None
        );
        assert_eq!(OpenLineAttachment::from_attr(None), None);
        let channel = ChannelRef::parse(ChannelKind::WhatsApp, "106540352242922").unwrap();
        assert_eq!(
            ChannelRef::from_index_sk(&claim_owner(&channel)),
            Some(channel)
        );
    }
}
