//! The tenant-scoped repository: every key it reads or writes is derived from its tenant id,
//! so it cannot reach another tenant's items. Profile, channels and their encrypted secrets,
//! retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::channel;
use crate::secret::Secret;

use crate::clock::now_secs;
use crate::crypto::{Envelope, FieldRef};
use crate::ids::{MetaUserId, TenantId};
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp,
};

use super::{
    ChannelRef, ChannelSummary, Connection, RetentionDays, TenantError, TenantName, TenantProfile,
    TenantSettings, PROFILE_SK,
};

/// The tenant-scoped repository: every key is derived from its tenant id.
#[derive(Clone)]
pub struct TenantScope {
    pub(super) tenant: TenantId,
    pub(super) store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    /// The profile and channel items this invocation read (decision 0058); None: every
    /// call reads the store.
    reads: Option<Arc<InvocationReads>>,
}

/// Forgets the invocation's reads when a write through the scope ends.
pub(super) struct Writing<'a>(&'a TenantScope);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.forget_reads();
    }
}

/// What one invocation (one queue job) read of its tenant: the profile and the channel
/// items, each read once, strongly consistent, then served from here for the rest of the
/// job. It lives in the scope the job builds ([`TenantScope::for_invocation`]) and dies with
/// it, so nothing is served across invocations; every write through the scope forgets it.
#[derive(Default)]
struct InvocationReads {
    profile: std::sync::Mutex<Option<Option<Item>>>,
    channels: std::sync::Mutex<Option<Vec<Item>>>,
}

impl TenantScope {
    pub fn new(tenant: TenantId, store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        TenantScope {
            tenant,
            store,
            envelope,
            reads: None,
        }
    }

    /// This scope with a read cache for one invocation: the profile and the channels are
    /// read at most once until a write through it (decision 0058). Build it per job and drop
    /// it with the job.
    pub fn for_invocation(&self) -> Self {
        TenantScope {
            reads: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// This scope without the invocation's cache: reads what the store holds now (a token
    /// pair another process may have refreshed meanwhile).
    pub fn fresh(&self) -> Self {
        TenantScope {
            reads: None,
            ..self.clone()
        }
    }

    /// Marks a write through the scope: the invocation's reads are forgotten now and again
    /// when the returned guard drops (a read made during the write is not kept either).
    pub(super) fn writing(&self) -> Writing<'_> {
        self.forget_reads();
        Writing(self)
    }

    fn forget_reads(&self) {
        if let Some(r) = &self.reads {
            *r.profile.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *r.channels.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The profile item, from the invocation's cache when it holds it.
    async fn profile_item(&self) -> Result<Option<Item>, TenantError> {
        if let Some(r) = &self.reads {
            if let Some(item) = r.profile.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Ok(item);
            }
        }
        let item = self.store.get(Table::Data, &self.profile_key()).await?;
        if let Some(r) = &self.reads {
            *r.profile.lock().unwrap_or_else(|e| e.into_inner()) = Some(item.clone());
        }
        Ok(item)
    }

    /// A channel item of the invocation's cache, when it holds the channels (Some(None):
    /// the channel is not connected).
    fn cached_channel(&self, key: &Key) -> Option<Option<Item>> {
        let r = self.reads.as_ref()?;
        let channels = r.channels.lock().unwrap_or_else(|e| e.into_inner());
        let items = channels.as_ref()?;
        Some(
            items
                .iter()
                .find(|i| i.key().as_ref() == Some(key))
                .cloned(),
        )
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub(crate) fn store(&self) -> &Arc<dyn TableStore> {
        &self.store
    }

    pub(crate) fn envelope(&self) -> &Arc<Envelope> {
        &self.envelope
    }

    /// One connected channel, without secrets (None when it is not connected).
    pub async fn channel(
        &self,
        channel: &ChannelRef,
    ) -> Result<Option<ChannelSummary>, TenantError> {
        let key = channel.channel_key(&self.tenant);
        let item = match self.cached_channel(&key) {
            Some(item) => item,
            None => self.store.get(Table::Data, &key).await?,
        };
        Ok(item.as_ref().and_then(summary_from_item))
    }

    fn profile_key(&self) -> Key {
        Key::new(self.tenant.partition(), PROFILE_SK)
    }

    pub async fn profile(&self) -> Result<Option<TenantProfile>, TenantError> {
        Ok(self
            .profile_item()
            .await?
            .map(|i| TenantProfile::from_item(self.tenant.clone(), &i)))
    }

    /// Profile and connected channels, without secrets.
    pub async fn settings(&self) -> Result<TenantSettings, TenantError> {
        let profile = self.profile().await?.ok_or(TenantError::TenantNotFound)?;
        Ok(TenantSettings {
            profile,
            channels: self.channels().await?,
        })
    }

    pub async fn channels(&self) -> Result<Vec<ChannelSummary>, TenantError> {
        if let Some(r) = &self.reads {
            if let Some(items) = &*r.channels.lock().unwrap_or_else(|e| e.into_inner()) {
                return Ok(items.iter().filter_map(summary_from_item).collect());
            }
        }
        let mut items = Vec::new();
        let mut query = Query::partition(self.tenant.partition())
            .begins_with(channel::CHANNEL_SK_PREFIX)
            .limit(100);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            items.extend(page.items);
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => break,
            }
        }
        let out = items.iter().filter_map(summary_from_item).collect();
        if let Some(r) = &self.reads {
            *r.channels.lock().unwrap_or_else(|e| e.into_inner()) = Some(items);
        }
        Ok(out)
    }

    /// Connects an external id to this tenant. The route is claimed with a conditional write
    /// in the same transaction as the channel item, so an id never belongs to two tenants
    /// and nothing is half-written. Connecting an id this tenant already holds replaces its
    /// details and secrets. Returns the summary and whether the channel is new.
    pub async fn connect(
        &self,
        connection: Connection,
    ) -> Result<(ChannelSummary, bool), TenantError> {
        let _writing = self.writing();
        if self.profile().await?.is_none() {
            return Err(TenantError::TenantNotFound);
        }
        let channel = &connection.channel;
        let channel_key = channel.channel_key(&self.tenant);
        let previous = self.store.get(Table::Data, &channel_key).await?;
        let existed = previous.is_some();
        let previous_authorizer = previous
            .as_ref()
            .and_then(|i| i.get_s("authorized_by"))
            .and_then(|u| MetaUserId::parse(u).ok());
        let now = now_secs();

        let mut item = Item::new(&channel_key)
            .with("kind", channel.kind().name())
            .with("external_id", channel.external_id())
            .with("connected_at", now)
            .with(
                "details",
                AttrValue::M(
                    connection
                        .details
                        .iter()
                        .map(|(k, v)| (k.clone(), AttrValue::S(v.clone())))
                        .collect(),
                ),
            );
        if let Some(user) = &connection.authorized_by {
            item.set("authorized_by", user.as_str());
        }
        // A reconnection of the same portal keeps what the CRM sync knows of it: its parked
        // work is still held until a probe finds the portal again (decision 0025).
        if let Some(link) = previous
            .as_ref()
            .and_then(|p| p.get(channel::CRM_LINK_ATTR))
        {
            item.set(channel::CRM_LINK_ATTR, link.clone());
        }
        // ... and the Open Line the channel was attached to, with its line's claim untouched
        // (decision 0043).
        if let Some(line) = previous
            .as_ref()
            .and_then(|p| p.get(super::lines::OPEN_LINE_ATTR))
        {
            item.set(super::lines::OPEN_LINE_ATTR, line.clone());
        }
        let mut secret_names = Vec::new();
        for (name, secret) in &connection.secrets {
            let field = FieldRef::new(&self.tenant, Table::Data, &channel_key, name);
            let blob = self
                .envelope
                .encrypt(field, secret.expose().as_bytes())
                .await?;
            item.set(&secret_attr(name), blob);
            secret_names.push(AttrValue::S((*name).to_owned()));
        }
        item.set("secrets", AttrValue::L(secret_names));

        let route = Item::new(&channel.route_key())
            .with("tenant_id", self.tenant.as_str())
            .with("kind", channel.kind().name())
            .with("connected_at", now);
        let mut ops = vec![
            WriteOp::ConditionCheck {
                table: Table::Data,
                key: self.profile_key(),
                condition: Condition::Exists,
            },
            WriteOp::Put {
                table: Table::Routes,
                item: route,
                condition: Some(Condition::Or(vec![
                    Condition::NotExists,
                    Condition::Equals("tenant_id".into(), self.tenant.as_str().into()),
                ])),
            },
            WriteOp::Put {
                table: Table::Data,
                item: item.clone(),
                condition: None,
            },
        ];
        // The index of who authorised what moves with the channel item, in the same
        // transaction: a reconnection by another Meta user (or by none) drops the old entry.
        if let Some(old) = previous_authorizer
            .as_ref()
            .filter(|old| connection.authorized_by.as_ref() != Some(*old))
        {
            ops.push(WriteOp::Delete {
                table: Table::Routes,
                key: channel.authorized_by_key(old),
                condition: None,
            });
        }
        if let Some(user) = &connection.authorized_by {
            ops.push(WriteOp::Put {
                table: Table::Routes,
                item: Item::new(&channel.authorized_by_key(user))
                    .with("tenant_id", self.tenant.as_str())
                    .with("kind", channel.kind().name())
                    .with("connected_at", now),
                condition: None,
            });
        }
        // The WABA index moves with the number too (decision 0051).
        ops.extend(super::meta_account::index_on_connect(
            &self.tenant,
            channel,
            &connection.details,
            previous.as_ref(),
        ));
        let result = self.store.transact_write(ops).await;
        match result {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { op_index }) => {
                return Err(match op_index {
                    Some(0) => TenantError::TenantNotFound,
                    Some(_) => TenantError::ChannelTaken(describe(channel)),
                    // The backend did not say which: look.
                    None => match self.store.get(Table::Routes, &channel.route_key()).await? {
                        Some(r) if r.get_s("tenant_id") != Some(self.tenant.as_str()) => {
                            TenantError::ChannelTaken(describe(channel))
                        }
                        _ => TenantError::TenantNotFound,
                    },
                });
            }
            Err(e) => return Err(e.into()),
        }
        let summary = summary_from_item(&item).ok_or_else(|| {
            TenantError::Store(StoreError::Backend("channel item unreadable".into()))
        })?;
        Ok((summary, !existed))
    }

    /// Disconnects a channel: deletes its route, its item (secrets included) and its entry in
    /// the index of who authorised it, atomically, so the id can be connected again, to this
    /// or another tenant.
    pub async fn disconnect(&self, channel: &ChannelRef) -> Result<(), TenantError> {
        self.disconnect_with(channel, Vec::new()).await
    }

    /// [`TenantScope::disconnect`] with more writes in the same transaction (the revocation
    /// record that takes over the tokens still needed at the provider), so the tokens are
    /// never both gone from the channel and not yet in the record, nor in both for long.
    pub async fn disconnect_with(
        &self,
        channel: &ChannelRef,
        extra: Vec<WriteOp>,
    ) -> Result<(), TenantError> {
        let _writing = self.writing();
        let channel_key = channel.channel_key(&self.tenant);
        let current = self.store.get(Table::Data, &channel_key).await?;
        let authorizer = current
            .as_ref()
            .and_then(|i| i.get_s("authorized_by"))
            .and_then(|u| MetaUserId::parse(u).ok());
        let mut ops = vec![
            WriteOp::Delete {
                table: Table::Routes,
                key: channel.route_key(),
                condition: Some(Condition::Equals(
                    "tenant_id".into(),
                    self.tenant.as_str().into(),
                )),
            },
            WriteOp::Delete {
                table: Table::Data,
                key: channel_key,
                // The item read above, unchanged: a concurrent reconnection by another Meta
                // user fails this and is not half-undone.
                condition: Some(match &authorizer {
                    Some(user) => Condition::Equals("authorized_by".into(), user.as_str().into()),
                    None => Condition::And(vec![
                        Condition::Exists,
                        Condition::AttrNotExists("authorized_by".into()),
                    ]),
                }),
            },
        ];
        if let Some(user) = &authorizer {
            ops.push(WriteOp::Delete {
                table: Table::Routes,
                key: channel.authorized_by_key(user),
                condition: None,
            });
        }
        // The channel's Open Line is free again (the claim is written with the attribute,
        // always in one transaction, so it is this channel's).
        if let Some(line) = current.as_ref().and_then(|i| {
            super::lines::OpenLineAttachment::from_attr(i.get(super::lines::OPEN_LINE_ATTR))
        }) {
            ops.push(WriteOp::Delete {
                table: Table::Data,
                key: line.claim_key(&self.tenant),
                condition: None,
            });
        }
        ops.extend(super::meta_account::index_on_disconnect(
            &self.tenant,
            channel,
            current.as_ref(),
        ));
        let first_extra = ops.len();
        ops.extend(extra);
        let result = self.store.transact_write(ops).await;
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed {
                op_index: Some(i), ..
            }) if i >= first_extra => Err(TenantError::Store(StoreError::Backend(
                "a write joined to the disconnect was refused".into(),
            ))),
            Err(StoreError::ConditionFailed { .. }) => {
                Err(TenantError::ChannelNotFound(describe(channel)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces secrets of a connected channel (e.g. a refreshed OAuth pair), encrypted like
    /// at connection time. Fails with `ChannelNotFound` when the channel was disconnected.
    pub async fn replace_secrets(
        &self,
        channel: &ChannelRef,
        secrets: &[(&str, &Secret)],
    ) -> Result<(), TenantError> {
        let _writing = self.writing();
        let key = channel.channel_key(&self.tenant);
        let mut update = Update::new();
        for (name, secret) in secrets {
            let field = FieldRef::new(&self.tenant, Table::Data, &key, name);
            let blob = self
                .envelope
                .encrypt(field, secret.expose().as_bytes())
                .await?;
            update = update.set(&secret_attr(name), blob);
        }
        match self
            .store
            .update(Table::Data, &key, update, Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => {
                Err(TenantError::ChannelNotFound(describe(channel)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records whether the CRM sync reaches the connected channel (a Bitrix24 portal). Fails
    /// with `ChannelNotFound` when the channel was disconnected.
    pub async fn set_crm_link(
        &self,
        channel: &ChannelRef,
        link: &channel::CrmLink,
    ) -> Result<(), TenantError> {
        let _writing = self.writing();
        let key = channel.channel_key(&self.tenant);
        let update = Update::new().set(channel::CRM_LINK_ATTR, link.to_attr());
        match self
            .store
            .update(Table::Data, &key, update, Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => {
                Err(TenantError::ChannelNotFound(describe(channel)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Decrypts one secret of a connected channel (e.g. `access_token`).
    pub async fn channel_secret(
        &self,
        channel: &ChannelRef,
        name: &str,
    ) -> Result<Secret, TenantError> {
        let key = channel.channel_key(&self.tenant);
        let item = match self.cached_channel(&key) {
            Some(item) => item,
            None => self.store.get(Table::Data, &key).await?,
        }
        .ok_or_else(|| TenantError::ChannelNotFound(describe(channel)))?;
        let (secret, _) = self.open_secret(&key, &item, name).await?;
        Ok(secret)
    }

    /// The secret `name` of the channel item `item` (stored at `key`): decrypted, and as
    /// stored (the ciphertext, for a write conditioned on it).
    pub(super) async fn open_secret<'i>(
        &self,
        key: &Key,
        item: &'i Item,
        name: &str,
    ) -> Result<(Secret, &'i [u8]), TenantError> {
        let blob = item
            .get_b(&secret_attr(name))
            .ok_or_else(|| TenantError::Invalid(format!("no {name} stored for this channel")))?;
        let plain = self
            .envelope
            .decrypt_string(FieldRef::new(&self.tenant, Table::Data, key, name), blob)
            .await?;
        Ok((Secret::from_decrypted(plain), blob))
    }
}

/// Attribute holding an encrypted secret.
pub(crate) fn secret_attr(name: &str) -> String {
    format!("enc_{name}")
}

/// A channel in an error's words: its kind and external id (no personal data).
pub(super) fn describe(channel: &ChannelRef) -> String {
    format!("{} {}", channel.kind(), channel.external_id())
}

fn summary_from_item(item: &Item) -> Option<ChannelSummary> {
    let channel = ChannelRef::from_channel_sk(item.get_s(crate::store::SK)?)?;
    let mut details: BTreeMap<String, String> = match item.get("details") {
        Some(AttrValue::M(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_s()?.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    // What Meta last said of the number's account (decision 0051).
    super::meta_account::status_details(item, &mut details, now_secs());
    let secrets_stored = match item.get("secrets") {
        Some(AttrValue::L(l)) => l
            .iter()
            .filter_map(|v| v.as_s().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let connected_at = item.get_n("connected_at").unwrap_or(0);
    let crm_link = (channel.kind() == super::ChannelKind::Bitrix24)
        .then(|| channel::CrmLink::from_attr(item.get(channel::CRM_LINK_ATTR), connected_at));
    Some(ChannelSummary {
        kind: channel.kind(),
        id: channel.external_id().to_owned(),
        connected_at,
        details,
        secrets_stored,
        authorized_by: item.get_s("authorized_by").map(str::to_owned),
        crm_link,
        open_line: super::lines::OpenLineAttachment::from_attr(
            item.get(super::lines::OPEN_LINE_ATTR),
        ),
        token: super::token_health::TokenHealth::from_attr(
            item.get(super::token_health::TOKEN_HEALTH_ATTR),
            now_secs(),
        ),
    })
}

/// Profile attribute counting retention changes: the re-stamper (the retention module) brings a
/// tenant's stored items to this version's retention.
pub const RETENTION_VERSION_ATTR: &str = "retention_version";

/// What [`TenantScope::set_retention`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionChange {
    pub previous_days: u32,
    pub retention_days: u32,
    /// The profile's retention version after the call (0 = never changed since creation).
    pub retention_version: i64,
    /// False when the tenant already had this retention (nothing written, no audit entry).
    pub changed: bool,
}

impl TenantScope {
    /// Sets the tenant's retention. A change bumps the profile's retention version (the
    /// target the scheduled re-stamper applies to items already stored) and appends a
    /// `settings_changed` audit entry; setting the current value changes nothing.
    pub async fn set_retention(
        &self,
        days: RetentionDays,
        actor: &str,
    ) -> Result<RetentionChange, TenantError> {
        let _writing = self.writing();
        let key = self.profile_key();
        // Optimistic: the version read must still be the stored one, so two concurrent
        // changes both bump it and the audit log names each.
        for _ in 0..5 {
            let item = self
                .store
                .get(Table::Data, &key)
                .await?
                .ok_or(TenantError::TenantNotFound)?;
            let previous = TenantProfile::from_item(self.tenant.clone(), &item).retention_days;
            let version = item.get_n(RETENTION_VERSION_ATTR).unwrap_or(0);
            if previous == days.days() {
                return Ok(RetentionChange {
                    previous_days: previous,
                    retention_days: previous,
                    retention_version: version,
                    changed: false,
                });
            }
            let unchanged = match item.get_n(RETENTION_VERSION_ATTR) {
                Some(v) => Condition::Equals(RETENTION_VERSION_ATTR.into(), AttrValue::N(v)),
                None => Condition::AttrNotExists(RETENTION_VERSION_ATTR.into()),
            };
            let version = item.get_n(RETENTION_VERSION_ATTR).unwrap_or(0) + 1;
            let update = Update::new()
                .set("retention_days", i64::from(days.days()))
                .set("retention_changed_at", now_secs())
                .set(RETENTION_VERSION_ATTR, version);
            let condition = Condition::And(vec![Condition::Exists, unchanged]);
            let (from, to, v) = (
                previous.to_string(),
                days.days().to_string(),
                version.to_string(),
            );
            // The change and its audit entry in one transaction: the retention schedule may
            // re-stamp (and record that) as soon as the new version is visible.
            let entry = crate::audit::AuditLog::entry_write(
                &self.tenant,
                crate::audit::AuditAction::SettingsChanged,
                actor,
                &[
                    ("setting", "retention_days"),
                    ("from", &from),
                    ("to", &to),
                    ("retention_version", &v),
                ],
            )?;
            match self
                .store
                .transact_write(vec![
                    WriteOp::Update {
                        table: Table::Data,
                        key: key.clone(),
                        update,
                        condition: Some(condition),
                    },
                    entry,
                ])
                .await
            {
                Ok(()) => {
                    return Ok(RetentionChange {
                        previous_days: previous,
                        retention_days: days.days(),
                        retention_version: version,
                        changed: true,
                    });
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TenantError::Store(StoreError::Unavailable(
            "retention changed concurrently; try again".into(),
        )))
    }

    /// Corrects the tenant's (company) name, on its profile and its directory entry at once,
    /// and appends a `settings_changed` audit entry naming the setting (not the names).
    /// Setting the current name changes nothing; `false` then.
    pub async fn rename(&self, name: &TenantName, actor: &str) -> Result<bool, TenantError> {
        let _writing = self.writing();
        let profile = self.profile().await?.ok_or(TenantError::TenantNotFound)?;
        if profile.name == name.as_str() {
            return Ok(false);
        }
        let directory = Key::new(super::DIRECTORY_PK, self.tenant.as_str());
        self.store
            .transact_write(vec![
                WriteOp::Update {
                    table: Table::Data,
                    key: self.profile_key(),
                    update: Update::new().set("name", name.as_str()),
                    condition: Some(Condition::Exists),
                },
                WriteOp::Update {
                    table: Table::Routes,
                    key: directory,
                    update: Update::new().set("name", name.as_str()),
                    condition: Some(Condition::Exists),
                },
            ])
            .await?;
        crate::audit::AuditLog::new(self.store.clone())
            .record(
                &self.tenant,
                crate::audit::AuditAction::SettingsChanged,
                actor,
                &[("setting", "name")],
            )
            .await?;
        Ok(true)
    }
}
