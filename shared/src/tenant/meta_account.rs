//! What Meta says about a connected WhatsApp number's account (decision 0051): the WABA
//! index that routes account events to the numbers, and the account status kept on the
//! channel item, which the console shows (`ChannelSummary::health`), the send path obeys
//! and the inbound worker updates.
//!
//! - **The WABA index** (routes table, `WABA#<waba id>` / `<phone number id>`, with
//!   `tenant_id` and the number's `display_phone_number` when known) is written and removed
//!   in the transactions that connect and disconnect the number, like the `AUTHBY#` index.
//!   Account events arrive on the WABA, not on a number.
//! - **The status** is the channel item's `meta_account` map: the ban state, the restrictions
//!   with their expiry, the last quality event and messaging limit, the last display-name
//!   decision, whether our app was uninstalled. Kinds and Meta's codes only.

use std::collections::BTreeMap;

use serde::Serialize;

use super::channel::{ChannelRef, META_RESTRICTION_DETAIL};
use super::{TenantDirectory, TenantError, TenantScope};
use crate::clock::days_from_civil;
use crate::ids::{PhoneNumberId, TenantId, WabaId};
use crate::meta::account::{AccountUpdate, Restriction};
use crate::store::{AttrValue, Condition, Item, Key, Query, StoreError, Table, Update, WriteOp};

/// The channel detail naming the number's WABA (written by every WhatsApp connect flow).
pub const WABA_ID_DETAIL: &str = "waba_id";
/// The channel detail with the number as people write it (`+1 631-555-5555`).
pub const DISPLAY_NUMBER_DETAIL: &str = "display_phone_number";
/// Attribute of a WhatsApp channel item holding its [`MetaAccountStatus`] (a map).
pub const META_ACCOUNT_ATTR: &str = "meta_account";
/// `waba_ban_state` values that stop every send.
const BANNED_STATES: [&str; 1] = ["DISABLE"];

fn waba_partition(waba: &WabaId) -> String {
    format!("WABA#{}", waba.as_str())
}

/// Key of one number's entry in the WABA index (routes table).
pub fn waba_index_key(waba: &WabaId, number: &PhoneNumberId) -> Key {
    Key::new(waba_partition(waba), number.as_str())
}

/// One connected number of a WABA, from the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WabaNumber {
    pub tenant: TenantId,
    pub number: PhoneNumberId,
    /// Digits only.
    pub display_digits: Option<String>,
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Partition (routes table) of the webhook-subscription index: one entry per connected
/// WhatsApp number and Instagram account (`<tenant>#<channel sk>`, with `due_at`), read by
/// the scheduled subscription check (`crate::onboarding::subscriptions`).
pub const SUBSCRIPTION_INDEX: &str = "WEBHOOKSUBS";
/// How long after a connect (or a check) the subscription is checked again.
pub const SUBSCRIPTION_CHECK_SECS: i64 = 86_400;

/// Key of a channel's entry in the webhook-subscription index.
pub fn subscription_index_key(tenant: &TenantId, channel: &ChannelRef) -> Key {
    Key::new(
        SUBSCRIPTION_INDEX,
        format!("{}#{}", tenant.as_str(), channel.channel_sk()),
    )
}

/// A subscription-index entry due at `due_at`.
pub fn subscription_index_entry(tenant: &TenantId, channel: &ChannelRef, due_at: i64) -> Item {
    Item::new(&subscription_index_key(tenant, channel))
        .with("tenant_id", tenant.as_str())
        .with("due_at", due_at)
}

/// The index writes of connecting `channel` with `details` (none for a Bitrix24 portal): its
/// webhook-subscription entry, and for a number its WABA entry and the removal of an entry
/// under the WABA it had before.
pub(super) fn index_on_connect(
    tenant: &TenantId,
    channel: &ChannelRef,
    details: &BTreeMap<String, String>,
    previous: Option<&Item>,
) -> Vec<WriteOp> {
    let mut ops = Vec::new();
    if matches!(channel, ChannelRef::WhatsApp(_) | ChannelRef::Instagram(_)) {
        ops.push(WriteOp::Put {
            table: Table::Routes,
            item: subscription_index_entry(
                tenant,
                channel,
                crate::clock::now_secs() + SUBSCRIPTION_CHECK_SECS,
            ),
            condition: None,
        });
    }
    let ChannelRef::WhatsApp(number) = channel else {
        return ops;
    };
    let waba = details
        .get(WABA_ID_DETAIL)
        .and_then(|w| WabaId::parse(w).ok());
    if let Some(old) = previous
        .and_then(waba_of)
        .filter(|old| Some(old) != waba.as_ref())
    {
        ops.push(WriteOp::Delete {
            table: Table::Routes,
            key: waba_index_key(&old, number),
            condition: None,
        });
    }
    if let Some(waba) = waba {
        let mut item = Item::new(&waba_index_key(&waba, number)).with("tenant_id", tenant.as_str());
        if let Some(d) = details.get(DISPLAY_NUMBER_DETAIL).map(|d| digits(d)) {
            item.set("display_digits", d);
        }
        ops.push(WriteOp::Put {
            table: Table::Routes,
            item,
            condition: None,
        });
    }
    ops
}

/// The removal of the channel's index entries, when disconnecting its channel item
/// `current`.
pub(super) fn index_on_disconnect(
    tenant: &TenantId,
    channel: &ChannelRef,
    current: Option<&Item>,
) -> Vec<WriteOp> {
    let mut ops = Vec::new();
    if matches!(channel, ChannelRef::WhatsApp(_) | ChannelRef::Instagram(_)) {
        ops.push(WriteOp::Delete {
            table: Table::Routes,
            key: subscription_index_key(tenant, channel),
            condition: None,
        });
    }
    if let (ChannelRef::WhatsApp(number), Some(waba)) = (channel, current.and_then(waba_of)) {
        ops.push(WriteOp::Delete {
            table: Table::Routes,
            key: waba_index_key(&waba, number),
            condition: None,
        });
    }
    ops
}

fn waba_of(item: &Item) -> Option<WabaId> {
    match item.get("details") {
        Some(AttrValue::M(m)) => m
            .get(WABA_ID_DETAIL)
            .and_then(AttrValue::as_s)
            .and_then(|w| WabaId::parse(w).ok()),
        _ => None,
    }
}

impl TenantDirectory {
    /// The connected numbers of `waba` an account event is for: the one whose display number
    /// is `display` when the event names one (else every number of the WABA).
    pub async fn waba_numbers(
        &self,
        waba: &WabaId,
        display: Option<&str>,
    ) -> Result<Vec<WabaNumber>, TenantError> {
        let mut out = Vec::new();
        let mut query = Query::partition(waba_partition(waba)).limit(100);
        loop {
            let page = self.store().query(Table::Routes, &query).await?;
            out.extend(page.items.iter().filter_map(|i| {
                Some(WabaNumber {
                    tenant: TenantId::parse(i.get_s("tenant_id")?).ok()?,
                    number: PhoneNumberId::parse(i.get_s(crate::store::SK)?).ok()?,
                    display_digits: i.get_s("display_digits").map(str::to_owned),
                })
            }));
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => break,
            }
        }
        if let Some(wanted) = display.map(digits).filter(|d| !d.is_empty()) {
            let named: Vec<WabaNumber> = out
                .iter()
                .filter(|n| n.display_digits.as_deref() == Some(wanted.as_str()))
                .cloned()
                .collect();
            // A number connected without its display number still gets the event when it is
            // the WABA's only one.
            if !named.is_empty() || out.len() > 1 {
                return Ok(named);
            }
        }
        Ok(out)
    }
}

/// What Meta last said about the number's account. Shown to admins; obeyed by sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MetaAccountStatus {
    /// `waba_ban_state` of the last `DISABLED_UPDATE` (`DISABLE`, `SCHEDULE_FOR_DISABLE`);
    /// none once reinstated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban_state: Option<String>,
    /// The restrictions of the last `ACCOUNT_RESTRICTION`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<Restriction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messaging_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_decision: Option<String>,
    /// `false` once Meta said the business uninstalled our app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_installed: Option<bool>,
    /// Unix seconds of the last event recorded.
    pub updated_at: i64,
}

/// Why sends on a number stop (or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendBlock {
    /// Banned: nothing goes out.
    Banned,
    /// Replies to customers are restricted (until, as Meta wrote it).
    Replies(Option<String>),
    /// Messages the business starts (templates outside the window) are restricted.
    BusinessInitiated(Option<String>),
}

impl SendBlock {
    /// The note the operator reads when a send stops.
    pub fn reason(&self) -> String {
        let until = |u: &Option<String>| match u {
            Some(u) => format!(" until {u}"),
            None => String::new(),
        };
        match self {
            SendBlock::Banned => "not sent: Meta disabled this WhatsApp Business Account; \
                 nothing can be sent until Meta reinstates it (see WhatsApp Manager)"
                .into(),
            SendBlock::Replies(u) => format!(
                "not sent: Meta restricted this WhatsApp number from messaging customers{}; \
                 sends resume when the restriction is lifted",
                until(u)
            ),
            SendBlock::BusinessInitiated(u) => format!(
                "not sent: Meta restricted this WhatsApp number from starting conversations{}; \
                 replies within 24 hours of the customer's message still go out",
                until(u)
            ),
        }
    }
}

/// Unix seconds of a Meta time (`2026-04-19T13:59:20+0000`, `…Z`, with or without
/// fractions); None when it is not one. The offset is Meta's UTC.
fn parse_meta_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

impl MetaAccountStatus {
    /// The restrictions still in force at `now` (those without an expiry always are).
    pub fn active_restrictions(&self, now: i64) -> impl Iterator<Item = &Restriction> {
        self.restrictions.iter().filter(move |r| {
            r.expiration
                .as_deref()
                .and_then(parse_meta_time)
                .is_none_or(|at| at > now)
        })
    }

    /// When the next restriction in force at `now` ends by itself (Meta's `expiration`),
    /// if one has an expiry: from then the number's status changes without an event.
    pub fn next_expiry(&self, now: i64) -> Option<i64> {
        self.restrictions
            .iter()
            .filter_map(|r| r.expiration.as_deref().and_then(parse_meta_time))
            .filter(|at| *at > now)
            .min()
    }

    pub fn is_banned(&self) -> bool {
        self.ban_state
            .as_deref()
            .is_some_and(|s| BANNED_STATES.contains(&s))
    }

    /// What stops a send at `now`: a ban first, then a restriction on replies, then one on
    /// business-initiated messages.
    pub fn send_block(&self, now: i64) -> Option<SendBlock> {
        if self.is_banned() {
            return Some(SendBlock::Banned);
        }
        let find = |kind: &str| {
            self.active_restrictions(now)
                .find(|r| r.restriction_type == kind)
        };
        if let Some(r) = find("RESTRICTED_CUSTOMER_INITIATED_MESSAGING") {
            return Some(SendBlock::Replies(r.expiration.clone()));
        }
        find("RESTRICTED_BIZ_INITIATED_MESSAGING")
            .map(|r| SendBlock::BusinessInitiated(r.expiration.clone()))
    }

    /// The `meta_restriction` detail the console shows: `banned`, or the restriction types
    /// in force, or `app_uninstalled`; None when sends are free.
    pub fn restriction_detail(&self, now: i64) -> Option<String> {
        if self.is_banned() {
            return Some("banned".into());
        }
        let active: Vec<&str> = self
            .active_restrictions(now)
            .map(|r| r.restriction_type.as_str())
            .collect();
        if !active.is_empty() {
            return Some(active.join(","));
        }
        (self.app_installed == Some(false)).then(|| "app_uninstalled".into())
    }

    /// Applies `update`; true when what stops sends changed (a ban, a restriction, the app).
    pub fn apply(&mut self, update: &AccountUpdate, now: i64) -> bool {
        let before = self.restriction_detail(now);
        match update {
            AccountUpdate::Restricted { restrictions } => self.restrictions = restrictions.clone(),
            AccountUpdate::BanState { state, .. } => {
                self.ban_state = (state != "REINSTATE").then(|| state.clone());
            }
            AccountUpdate::Violation { violation_type } => {
                self.violation = violation_type.clone();
            }
            AccountUpdate::PartnerApp { installed, .. } => self.app_installed = Some(*installed),
            AccountUpdate::Other { .. } => {}
            AccountUpdate::Quality { event, limit, .. } => {
                self.quality_event = event.clone();
                if limit.is_some() {
                    self.messaging_limit = limit.clone();
                }
            }
            AccountUpdate::Name { decision, .. } => self.name_decision = decision.clone(),
            AccountUpdate::Capability {
                messaging_limit, ..
            } => {
                if messaging_limit.is_some() {
                    self.messaging_limit = messaging_limit.clone();
                }
            }
        }
        self.updated_at = now;
        before != self.restriction_detail(now)
    }

    fn to_attr(&self) -> AttrValue {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), AttrValue::S(v.clone()));
            }
        };
        put("ban_state", &self.ban_state);
        put("violation", &self.violation);
        put("quality_event", &self.quality_event);
        put("messaging_limit", &self.messaging_limit);
        put("name_decision", &self.name_decision);
        if let Some(i) = self.app_installed {
            m.insert("app_installed".into(), AttrValue::Bool(i));
        }
        if !self.restrictions.is_empty() {
            let list = self
                .restrictions
                .iter()
                .map(|r| {
                    let mut e = BTreeMap::new();
                    e.insert("type".into(), AttrValue::S(r.restriction_type.clone()));
                    if let Some(x) = &r.expiration {
                        e.insert("expiration".into(), AttrValue::S(x.clone()));
                    }
                    AttrValue::M(e)
                })
                .collect();
            m.insert("restrictions".into(), AttrValue::L(list));
        }
        m.insert("updated_at".into(), AttrValue::N(self.updated_at));
        AttrValue::M(m)
    }

    pub(super) fn from_attr(value: Option<&AttrValue>) -> Option<Self> {
        let Some(AttrValue::M(m)) = value else {
            return None;
        };
        let s = |k: &str| m.get(k).and_then(AttrValue::as_s).map(str::to_owned);
        let restrictions = match m.get("restrictions") {
            Some(AttrValue::L(l)) => l
                .iter()
                .filter_map(|v| match v {
                    AttrValue::M(e) => Some(Restriction {
                        restriction_type: e.get("type")?.as_s()?.to_owned(),
                        expiration: e
                            .get("expiration")
                            .and_then(AttrValue::as_s)
                            .map(str::to_owned),
                    }),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(MetaAccountStatus {
            ban_state: s("ban_state"),
            restrictions,
            violation: s("violation"),
            quality_event: s("quality_event"),
            messaging_limit: s("messaging_limit"),
            name_decision: s("name_decision"),
            app_installed: m.get("app_installed").and_then(AttrValue::as_bool),
            updated_at: m.get("updated_at").and_then(AttrValue::as_n).unwrap_or(0),
        })
    }
}

/// The details a channel item's status adds to its summary: `meta_restriction` (what
/// `ChannelSummary::health` reads) and the number's quality and limit.
pub(super) fn status_details(item: &Item, details: &mut BTreeMap<String, String>, now: i64) {
    let Some(status) = MetaAccountStatus::from_attr(item.get(META_ACCOUNT_ATTR)) else {
        return;
    };
    if let Some(r) = status.restriction_detail(now) {
        details.insert(META_RESTRICTION_DETAIL.to_owned(), r);
    }
    for (k, v) in [
        ("meta_quality", &status.quality_event),
        ("meta_messaging_limit", &status.messaging_limit),
        ("meta_name_decision", &status.name_decision),
    ] {
        if let Some(v) = v {
            details.insert(k.to_owned(), v.clone());
        }
    }
}

impl TenantScope {
    /// The number's account status, None when Meta never reported one (or the channel is
    /// gone).
    pub async fn meta_account(
        &self,
        channel: &ChannelRef,
    ) -> Result<Option<MetaAccountStatus>, TenantError> {
        let item = self
            .store()
            .get(Table::Data, &channel.channel_key(self.tenant()))
            .await?;
        Ok(item.and_then(|i| MetaAccountStatus::from_attr(i.get(META_ACCOUNT_ATTR))))
    }

    /// Records `update` on the channel; the status before and after. Fails with
    /// `ChannelNotFound` when the channel was disconnected.
    pub async fn record_account_update(
        &self,
        channel: &ChannelRef,
        update: &AccountUpdate,
        now: i64,
    ) -> Result<(MetaAccountStatus, MetaAccountStatus), TenantError> {
        let _writing = self.writing();
        let key = channel.channel_key(self.tenant());
        let before = self.meta_account(channel).await?.unwrap_or_default();
        let mut after = before.clone();
        after.apply(update, now);
        let write = Update::new().set(META_ACCOUNT_ATTR, after.to_attr());
        match self
            .store()
            .update(Table::Data, &key, write, Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok((before, after)),
            Err(StoreError::ConditionFailed { .. }) => Err(TenantError::ChannelNotFound(
                channel.external_id().to_owned(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restricted(kind: &str, until: Option<&str>) -> AccountUpdate {
        AccountUpdate::Restricted {
            restrictions: vec![Restriction {
                restriction_type: kind.into(),
                expiration: until.map(str::to_owned),
            }],
        }
    }

    #[test]
    fn meta_times_parse() {
        assert_eq!(parse_meta_time("1970-01-02T00:00:01+0000"), Some(86_401));
        assert_eq!(
            parse_meta_time("2022-12-12T07:09:27.000Z"),
            Some(1_670_828_967)
        );
        assert_eq!(parse_meta_time("October 9, 2023"), None);
    }

    #[test]
    fn bans_and_restrictions_stop_sends_until_lifted() {
        let now = 1_790_000_000;
        let mut s = MetaAccountStatus::default();
        assert_eq!(s.send_block(now), None);
        assert!(s.apply(
            &restricted(
                "RESTRICTED_CUSTOMER_INITIATED_MESSAGING",
                Some("2027-01-01T00:00:00+0000")
            ),
            now
        ));
        assert_eq!(
            s.send_block(now),
            Some(SendBlock::Replies(Some("2027-01-01T00:00:00+0000".into())))
        );
        assert_eq!(
            s.restriction_detail(now).as_deref(),
            Some("RESTRICTED_CUSTOMER_INITIATED_MESSAGING")
        );
        // Expired: sends go again without another event.
        assert_eq!(s.send_block(1_900_000_000), None);
        // Lifted by an empty restriction list.
        assert!(s.apply(
            &AccountUpdate::Restricted {
                restrictions: vec![]
            },
            now
        ));
        assert_eq!(s.send_block(now), None);
        let ban = |state: &str| AccountUpdate::BanState {
            state: state.into(),
            date: None,
        };
        assert!(s.apply(&ban("DISABLE"), now));
        assert_eq!(s.send_block(now), Some(SendBlock::Banned));
        assert!(s.apply(&ban("REINSTATE"), now));
        assert_eq!(s.send_block(now), None);
        // A scheduled disable does not stop sends yet.
        assert!(!s.apply(&ban("SCHEDULE_FOR_DISABLE"), now));
        assert_eq!(s.send_block(now), None);
        let back = MetaAccountStatus::from_attr(Some(&s.to_attr())).unwrap();
        assert_eq!(back, s);
    }
}
