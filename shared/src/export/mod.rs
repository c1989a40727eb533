//! Exports (right of access and portability): a whole tenant, or one contact (a customer on
//! one business account), as JSON and as CSV in the object store, fetched through
//! short-lived signed links.
//!
//! - [`Exports::request`] records the export (`T#<t>#EXPORTS` / `<export id>`, state
//!   `requested`) and audits it; the caller enqueues an [`ExportJob`] for a worker.
//! - [`Exports::run`] writes `exports/<tenant>/<export id>/` + each [`ExportFile`], streaming
//!   conversation by conversation and message page by message page (never a whole tenant in
//!   memory), records each file's size as it completes (a rerun after a crash skips finished
//!   files and rewrites the unfinished one from the start), then marks the export completed
//!   and audits it. Running a completed export again does nothing.
//! - [`Exports::link`] signs a download link (15 minutes by default) and [`Exports::open`]
//!   checks one and streams the file.
//!
//! The record's scope (which customer, for a contact export) is encrypted like every other
//! personal field; records and files expire after [`EXPORT_RETENTION_SECS`] (record TTL here;
//! a bucket lifecycle rule in AWS).

pub mod csv;
pub mod link;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditAction, AuditLog};
use crate::clock::now_secs;
use crate::conversation::{
    ConversationError, ConversationId, ConversationMeta, Conversations, Direction, MessageStatus,
    Origin, StoredMessage, TemplateMessage,
};
use crate::crypto::{CryptoError, Envelope, FieldRef};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content, CustomerId};
use crate::objects::{ObjectBody, ObjectError, ObjectKey, ObjectStore, ObjectWriter};
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update, TTL_ATTR};
use crate::tenant::{TenantError, TenantScope};

pub use link::{ExportLinkError, ExportLinkKey};

/// How long export files and records are kept (the bucket's lifecycle rule matches).
pub const EXPORT_RETENTION_SECS: i64 = 7 * 86_400;
/// Default lifetime of a download link.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest lifetime a download link may be given.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Lifetime of the presigned object-store URL a valid link redirects to.
pub const REDIRECT_TTL: Duration = Duration::from_secs(60);
/// Messages (and conversations) read per page.
pub const DEFAULT_PAGE_SIZE: usize = 200;
/// Bytes gathered before they are handed to the object writer.
const FLUSH_BYTES: usize = 256 * 1024;
const FORMAT: &str = "wappline-export";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export not found")]
    NotFound,
    #[error("export is not completed yet")]
    NotReady,
    #[error("download link refused: {0}")]
    Link(#[from] ExportLinkError),
    #[error("invalid export request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("stored export record is unreadable: {0}")]
    Corrupt(String),
}

/// An export's id: `ex_` + 24 lowercase hex digits, random.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExportId(String);

impl ExportId {
    pub fn generate() -> Result<Self, ExportError> {
        let mut b = [0u8; 12];
        crate::crypto::random_bytes(&mut b)?;
        Ok(ExportId(format!("ex_{}", hex::encode(b))))
    }

    pub fn parse(s: &str) -> Result<Self, ExportError> {
        let ok = s.len() == 27
            && s.starts_with("ex_")
            && s[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ExportId(s.to_owned()))
        } else {
            Err(ExportError::Invalid(
                "export id must be ex_ followed by 24 lowercase hex digits".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExportId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ExportId::parse(&s).map_err(|e| e.to_string())
    }
}
impl From<ExportId> for String {
    fn from(e: ExportId) -> String {
        e.0
    }
}
impl fmt::Display for ExportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportScope {
    /// Everything of the tenant.
    Tenant,
    /// One customer on one business account (a data subject's access request).
    Contact {
        account: AccountRef,
        customer: CustomerId,
    },
}

impl ExportScope {
    pub fn kind(&self) -> &'static str {
        match self {
            ExportScope::Tenant => "tenant",
            ExportScope::Contact { .. } => "contact",
        }
    }
}

/// The files of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFile {
    /// Everything: settings, conversations, every message decrypted (text and structure).
    ExportJson,
    ContactsCsv,
    ConversationsCsv,
    MessagesCsv,
    /// The tenant's settings without secrets.
    SettingsJson,
}

impl ExportFile {
    pub const ALL: [ExportFile; 5] = [
        ExportFile::ExportJson,
        ExportFile::ContactsCsv,
        ExportFile::ConversationsCsv,
        ExportFile::MessagesCsv,
        ExportFile::SettingsJson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExportFile::ExportJson => "export.json",
            ExportFile::ContactsCsv => "contacts.csv",
            ExportFile::ConversationsCsv => "conversations.csv",
            ExportFile::MessagesCsv => "messages.csv",
            ExportFile::SettingsJson => "settings.json",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        ExportFile::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFile::ExportJson | ExportFile::SettingsJson => "application/json",
            _ => "text/csv; charset=utf-8; header=present",
        }
    }

    fn size_attr(self) -> String {
        format!("size_{}", self.name().replace('.', "_"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    Requested,
    Running,
    Completed,
}

impl ExportState {
    fn code(self) -> &'static str {
        match self {
            ExportState::Requested => "requested",
            ExportState::Running => "running",
            ExportState::Completed => "completed",
        }
    }
}

/// A finished file's name and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportFileInfo {
    pub name: &'static str,
    pub size: u64,
}

/// An export as the admin API shows it: never the customer it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportRecord {
    pub id: ExportId,
    pub scope: &'static str,
    pub state: ExportState,
    pub requested_at: i64,
    pub requested_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// Files finished so far (all of them once completed).
    pub files: Vec<ExportFileInfo>,
    /// When the record and its files are removed.
    pub expires_at: i64,
}

/// The queue message that asks a worker to run an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    pub tenant: TenantId,
    pub export_id: ExportId,
}

impl ExportJob {
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("plain struct serializes")
    }
    pub fn parse(body: &str) -> Result<Self, ExportError> {
        serde_json::from_str(body).map_err(|e| ExportError::Invalid(e.to_string()))
    }
}

/// A signed download link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportLink {
    pub url: String,
    pub expires_at: i64,
}

/// A file opened through a link.
#[derive(Debug)]
pub struct ExportDownload {
    pub tenant: TenantId,
    pub export: ExportId,
    pub file: ExportFile,
    pub content_type: &'static str,
    /// Suggested attachment name: `wappline-<export id>-<file>`.
    pub filename: String,
    pub body: ObjectBody,
}

/// Where an export's file lives: `exports/<tenant>/<export id>/<file>`.
pub fn object_key(tenant: &TenantId, id: &ExportId, file: ExportFile) -> ObjectKey {
    ObjectKey::parse(&format!("exports/{tenant}/{id}/{}", file.name()))
        .expect("tenant and export ids are key-safe")
}

/// The prefix of every export object of a tenant (for erasure): `exports/<tenant>/`.
pub fn tenant_prefix(tenant: &TenantId) -> String {
    format!("exports/{tenant}/")
}

/// Exports of every tenant: requests, runs, links.
#[derive(Clone)]
pub struct Exports {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    objects: Arc<dyn ObjectStore>,
    audit: AuditLog,
    keys: Vec<ExportLinkKey>,
    download_base: String,
    page_size: usize,
}

impl Exports {
    /// `download_base` is the public URL that a token is appended to, e.g.
    /// `https://api.example.com/exports/download`.
    pub fn new(
        store: Arc<dyn TableStore>,
        envelope: Arc<Envelope>,
        objects: Arc<dyn ObjectStore>,
        link_key: ExportLinkKey,
        download_base: impl Into<String>,
    ) -> Self {
        Exports {
            audit: AuditLog::new(store.clone()),
            store,
            envelope,
            objects,
            keys: vec![link_key],
            download_base: download_base.into().trim_end_matches('/').to_owned(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Also accepts links signed with `key` (a key being retired).
    pub fn with_previous_key(mut self, key: ExportLinkKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Reads `n` items per page (tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, crate::store::MAX_PAGE_SIZE);
        self
    }

    fn record_key(tenant: &TenantId, id: &ExportId) -> Key {
        Key::new(tenant.sub_partition("EXPORTS"), id.as_str())
    }

    /// Records a new export and audits the request. Enqueue an [`ExportJob`] next.
    pub async fn request(
        &self,
        tenant: &TenantId,
        scope: ExportScope,
        actor: &str,
    ) -> Result<ExportId, ExportError> {
        let id = ExportId::generate()?;
        let key = Self::record_key(tenant, &id);
        let scope_json = zeroize::Zeroizing::new(
            serde_json::to_vec(&scope).map_err(|e| ExportError::Corrupt(e.to_string()))?,
        );
        let sealed = self
            .envelope
            .encrypt(
                FieldRef::new(tenant, Table::Data, &key, "scope"),
                &scope_json,
            )
            .await?;
        let now = now_secs();
        let item = Item::new(&key)
            .with("state", ExportState::Requested.code())
            .with("kind", scope.kind())
            .with("scope", sealed)
            .with("requested_at", now)
            .with("requested_by", actor)
            .with(TTL_ATTR, now + EXPORT_RETENTION_SECS);
        self.store
            .put(Table::Data, item, Some(Condition::NotExists))
            .await?;
        self.audit
            .record(
                tenant,
                AuditAction::ExportRequested,
                actor,
                &[("export_id", id.as_str()), ("scope", scope.kind())],
            )
            .await?;
        Ok(id)
    }

    /// The export's record, `None` if there is none (or it expired).
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &ExportId,
    ) -> Result<Option<ExportRecord>, ExportError> {
        let item = self
            .store
            .get(Table::Data, &Self::record_key(tenant, id))
            .await?;
        Ok(item.map(|i| record_from_item(id.clone(), &i)))
    }

    /// The tenant's exports, newest id order is not guaranteed (ids are random): all of them,
    /// since records expire after a week.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ExportRecord>, ExportError> {
        let pk = tenant.sub_partition("EXPORTS");
        let mut out = Vec::new();
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .store
                .query(
                    Table::Data,
                    &Query::partition(pk.clone()).limit(100).start_after(after),
                )
                .await?;
            for item in &page.items {
                if let Some(id) = item.key().and_then(|k| ExportId::parse(&k.sk).ok()) {
                    out.push(record_from_item(id, item));
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.requested_at));
        Ok(out)
    }

    /// Produces the export's files. Idempotent (a completed export is returned as it is) and
    /// resumable per file (finished files are kept, the rest written again).
    pub async fn run(&self, tenant: &TenantId, id: &ExportId) -> Result<ExportRecord, ExportError> {
        let key = Self::record_key(tenant, id);
        let item = self
            .store
            .get(Table::Data, &key)
            .await?
            .ok_or(ExportError::NotFound)?;
        let record = record_from_item(id.clone(), &item);
        if record.state == ExportState::Completed {
            return Ok(record);
        }
        let blob = item
            .get_b("scope")
            .ok_or_else(|| ExportError::Corrupt("export without scope".into()))?;
        let scope_json = zeroize::Zeroizing::new(
            self.envelope
                .decrypt(FieldRef::new(tenant, Table::Data, &key, "scope"), blob)
                .await?,
        );
        let scope: ExportScope =
            serde_json::from_slice(&scope_json).map_err(|e| ExportError::Corrupt(e.to_string()))?;
        self.update(
            &key,
            Update::new().set("state", ExportState::Running.code()),
        )
        .await?;
        let run = Run {
            exports: self,
            tenant,
            id,
            scope: &scope,
            conversations: Conversations::new(
                tenant.clone(),
                self.store.clone(),
                self.envelope.clone(),
            ),
        };
        let mut total: u64 = 0;
        for file in ExportFile::ALL {
            if let Some(size) = item.get_n(&file.size_attr()) {
                total += u64::try_from(size).unwrap_or(0);
                continue;
            }
            let mut sink = Sink::open(&*self.objects, &object_key(tenant, id, file)).await?;
            let written = match run.write(file, &mut sink).await {
                Ok(()) => sink.finish().await?,
                Err(e) => {
                    sink.abort().await;
                    return Err(e);
                }
            };
            total += written;
            self.update(
                &key,
                Update::new().set(
                    &file.size_attr(),
                    i64::try_from(written).unwrap_or(i64::MAX),
                ),
            )
            .await?;
        }
        let now = now_secs();
        self.update(
            &key,
            Update::new()
                .set("state", ExportState::Completed.code())
                .set("completed_at", now)
                .set(TTL_ATTR, now + EXPORT_RETENTION_SECS),
        )
        .await?;
        let bytes = total.to_string();
        self.audit
            .record(
                tenant,
                AuditAction::ExportCompleted,
                "system",
                &[("export_id", id.as_str()), ("bytes", &bytes)],
            )
            .await?;
        self.get(tenant, id).await?.ok_or(ExportError::NotFound)
    }

    async fn update(&self, key: &Key, update: Update) -> Result<(), ExportError> {
        match self
            .store
            .update(Table::Data, key, update, Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(ExportError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// A signed link to one file of a completed export, valid for `ttl` (default 15 minutes,
    /// at most a day).
    pub async fn link(
        &self,
        tenant: &TenantId,
        id: &ExportId,
        file: ExportFile,
        ttl: Option<Duration>,
    ) -> Result<ExportLink, ExportError> {
        let record = self.get(tenant, id).await?.ok_or(ExportError::NotFound)?;
        if record.state != ExportState::Completed {
            return Err(ExportError::NotReady);
        }
        let ttl = ttl.unwrap_or(DEFAULT_LINK_TTL).min(MAX_LINK_TTL);
        let expires_at = now_secs() + i64::try_from(ttl.as_secs()).unwrap_or(0).max(1);
        let token = link::sign(
            &self.keys[0],
            &link::ExportClaims {
                tenant: tenant.clone(),
                export: id.clone(),
                file,
                expires_at,
            },
        );
        Ok(ExportLink {
            url: format!("{}/{token}", self.download_base),
            expires_at,
        })
    }

    /// Opens the file a link's token names, after checking its signature (constant time), its
    /// expiry and that its tenant's export is completed.
    pub async fn open(&self, token: &str) -> Result<ExportDownload, ExportError> {
        self.open_at(token, now_secs()).await
    }

    /// [`Exports::open`] as of `now` (Unix seconds).
    pub async fn open_at(&self, token: &str, now: i64) -> Result<ExportDownload, ExportError> {
        let keys: Vec<&ExportLinkKey> = self.keys.iter().collect();
        let claims = link::verify(&keys, token, now)?;
        let record = self
            .get(&claims.tenant, &claims.export)
            .await?
            .ok_or(ExportError::NotFound)?;
        if record.state != ExportState::Completed {
            return Err(ExportError::NotReady);
        }
        let body = self
            .objects
            .get(
                &object_key(&claims.tenant, &claims.export, claims.file),
                None,
            )
            .await?
            .ok_or(ExportError::NotFound)?;
        Ok(ExportDownload {
            filename: format!("wappline-{}-{}", claims.export, claims.file.name()),
            content_type: claims.file.content_type(),
            tenant: claims.tenant,
            export: claims.export,
            file: claims.file,
            body,
        })
    }

    /// Checks a token as [`Exports::open`] does and, when the object store can hand out
    /// direct links (S3), returns a presigned URL valid for [`REDIRECT_TTL`] to redirect the
    /// client to: Lambda responses behind API Gateway are limited to a few MB, so in AWS the
    /// bytes go from S3 directly. `None` means stream through [`Exports::open`] instead.
    pub async fn redirect(&self, token: &str) -> Result<Option<String>, ExportError> {
        let keys: Vec<&ExportLinkKey> = self.keys.iter().collect();
        let claims = link::verify(&keys, token, now_secs())?;
        let record = self
            .get(&claims.tenant, &claims.export)
            .await?
            .ok_or(ExportError::NotFound)?;
        if record.state != ExportState::Completed {
            return Err(ExportError::NotReady);
        }
        let key = object_key(&claims.tenant, &claims.export, claims.file);
        let filename = format!("wappline-{}-{}", claims.export, claims.file.name());
        Ok(self
            .objects
            .presigned_get(&key, REDIRECT_TTL, claims.file.content_type(), &filename)
            .await?)
    }

    /// Deletes an export's files and record (erasure, or an owner's request).
    pub async fn delete(&self, tenant: &TenantId, id: &ExportId) -> Result<(), ExportError> {
        self.objects
            .delete_prefix(&format!("exports/{tenant}/{id}/"))
            .await?;
        self.store
            .delete(Table::Data, &Self::record_key(tenant, id), None)
            .await?;
        Ok(())
    }
}

impl Exports {
    /// Deletes every export of a tenant, files and records; returns how many records. For
    /// erasure: account erasure, and contact erasure too (a tenant export holds every
    /// customer).
    pub async fn delete_all(&self, tenant: &TenantId) -> Result<usize, ExportError> {
        self.objects.delete_prefix(&tenant_prefix(tenant)).await?;
        let records = self.list(tenant).await?;
        for r in &records {
            self.store
                .delete(Table::Data, &Self::record_key(tenant, &r.id), None)
                .await?;
        }
        Ok(records.len())
    }
}

fn record_from_item(id: ExportId, item: &Item) -> ExportRecord {
    let files = ExportFile::ALL
        .into_iter()
        .filter_map(|f| {
            item.get_n(&f.size_attr()).map(|s| ExportFileInfo {
                name: f.name(),
                size: u64::try_from(s).unwrap_or(0),
            })
        })
        .collect();
    ExportRecord {
        id,
        scope: match item.get_s("kind") {
            Some("contact") => "contact",
            _ => "tenant",
        },
        state: match item.get_s("state") {
            Some("completed") => ExportState::Completed,
            Some("running") => ExportState::Running,
            _ => ExportState::Requested,
        },
        requested_at: item.get_n("requested_at").unwrap_or(0),
        requested_by: item.get_s("requested_by").unwrap_or_default().to_owned(),
        completed_at: item.get_n("completed_at"),
        files,
        expires_at: item.get_n(TTL_ATTR).unwrap_or(0),
    }
}

/// Bytes on their way to an object: gathered up to [`FLUSH_BYTES`], then written.
struct Sink {
    writer: Option<Box<dyn ObjectWriter>>,
    buf: Vec<u8>,
}

impl Sink {
    async fn open(objects: &dyn ObjectStore, key: &ObjectKey) -> Result<Self, ExportError> {
        Ok(Sink {
            writer: Some(objects.writer(key).await?),
            buf: Vec::with_capacity(FLUSH_BYTES),
        })
    }

    async fn maybe_flush(&mut self) -> Result<(), ExportError> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ExportError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(&self.buf).await?;
        }
        self.buf.clear();
        Ok(())
    }

    fn json<T: Serialize>(&mut self, value: &T) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.buf, value).map_err(|e| ExportError::Corrupt(e.to_string()))
    }

    async fn finish(mut self) -> Result<u64, ExportError> {
        self.flush().await?;
        let w = self
            .writer
            .take()
            .ok_or_else(|| ExportError::Corrupt("sink closed".into()))?;
        Ok(w.finish().await?.size)
    }

    async fn abort(mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.abort().await;
        }
    }
}

/// One message as exported.
#[derive(Serialize)]
struct MessageOut<'a> {
    conversation_id: &'a str,
    message_id: &'a str,
    at_ms: i64,
    direction: Direction,
    origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<MessageStatus>,
    /// Plain text as the CRM shows it (`[image]`, a caption, a location, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The structured content; absent once the message was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a Content>,
    deleted: bool,
    edited: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a TemplateMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_provider_id: Option<&'a str>,
}

impl<'a> MessageOut<'a> {
    fn of(m: &'a StoredMessage) -> Self {
        MessageOut {
            conversation_id: m.at.conversation.as_str(),
            message_id: &m.provider_message_id,
            at_ms: m.at_ms,
            direction: m.direction,
            origin: m.origin,
            status: m.status,
            text: m.content.as_ref().map(Content::text_for_crm),
            content: m.content.as_ref(),
            deleted: m.deleted,
            edited: m.edited,
            reaction: m.reaction.as_deref(),
            reply_to: m.reply_to.as_deref(),
            template: m.template.as_ref(),
            sent_provider_id: m.sent_provider_id.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct ConversationOut<'a> {
    id: &'a str,
    account: &'a AccountRef,
    customer: &'a crate::meta::CustomerRef,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_inbound_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crm_chat_id: Option<&'a str>,
}

impl<'a> ConversationOut<'a> {
    fn of(c: &'a ConversationMeta) -> Self {
        ConversationOut {
            id: c.id.as_str(),
            account: &c.account,
            customer: &c.customer,
            created_at: c.created_at,
            last_inbound_at: c.last_inbound_at,
            crm_chat_id: c.crm_chat_id.as_deref(),
        }
    }
}

/// The conversations of a scope, read a page at a time.
struct ConversationCursor {
    pending: VecDeque<ConversationId>,
    after: Option<Key>,
    done: bool,
}

struct Run<'a> {
    exports: &'a Exports,
    tenant: &'a TenantId,
    id: &'a ExportId,
    scope: &'a ExportScope,
    conversations: Conversations,
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Run<'_> {
    fn cursor(&self) -> ConversationCursor {
        match self.scope {
            ExportScope::Tenant => ConversationCursor {
                pending: VecDeque::new(),
                after: None,
                done: false,
            },
            ExportScope::Contact { account, customer } => ConversationCursor {
                pending: VecDeque::from([ConversationId::derive(self.tenant, account, customer)]),
                after: None,
                done: true,
            },
        }
    }

    /// The next conversation of the scope that still exists, with its details.
    async fn next_conversation(
        &self,
        cursor: &mut ConversationCursor,
    ) -> Result<Option<ConversationMeta>, ExportError> {
        loop {
            if let Some(id) = cursor.pending.pop_front() {
                if let Some(meta) = self.conversations.meta(&id).await? {
                    return Ok(Some(meta));
                }
                continue;
            }
            if cursor.done {
                return Ok(None);
            }
            let pk = self.tenant.sub_partition("CONVS");
            let page = self
                .exports
                .store
                .query(
                    Table::Data,
                    &Query::partition(pk)
                        .limit(self.exports.page_size)
                        .start_after(cursor.after.take()),
                )
                .await?;
            for item in &page.items {
                if let Some(id) = item.key().and_then(|k| ConversationId::parse(&k.sk).ok()) {
                    cursor.pending.push_back(id);
                }
            }
            cursor.after = page.next;
            cursor.done = cursor.after.is_none();
        }
    }

    /// Calls `each` on every message of a conversation, a page at a time.
    async fn for_each_message(
        &self,
        conversation: &ConversationId,
        sink: &mut Sink,
        mut each: impl FnMut(&mut Sink, &StoredMessage) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self
                .conversations
                .messages(conversation, after.as_deref(), self.exports.page_size)
                .await?;
            for m in &page {
                each(sink, m)?;
            }
            sink.maybe_flush().await?;
            match next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    async fn settings_json(&self) -> Result<serde_json::Value, ExportError> {
        Ok(match self.scope {
            ExportScope::Tenant => {
                let scope = TenantScope::new(
                    self.tenant.clone(),
                    self.exports.store.clone(),
                    self.exports.envelope.clone(),
                );
                let mut settings = serde_json::to_value(scope.settings().await?)
                    .map_err(|e| ExportError::Corrupt(e.to_string()))?;
                // The tenant's users are its data too (emails, roles; never password hashes).
                let users =
                    crate::accounts::service::list_users(self.exports.store.as_ref(), self.tenant)
                        .await
                        .map_err(|e| match e {
                            crate::accounts::AccountError::Store(e) => ExportError::Store(e),
                            e => ExportError::Corrupt(e.to_string()),
                        })?;
                settings["users"] =
                    serde_json::to_value(users).map_err(|e| ExportError::Corrupt(e.to_string()))?;
                settings
            }
            // A contact's export is given to that customer: it names the account only.
            ExportScope::Contact { account, .. } => serde_json::json!({ "account": account }),
        })
    }

    async fn write(&self, file: ExportFile, sink: &mut Sink) -> Result<(), ExportError> {
        match file {
            ExportFile::SettingsJson => {
                let settings = self.settings_json().await?;
                sink.json(&settings)?;
            }
            ExportFile::ExportJson => self.export_json(sink).await?,
            ExportFile::ContactsCsv => {
                csv::push_row(
                    &mut sink.buf,
                    &[
                        "customer_id_type",
                        "customer_id",
                        "name",
                        "phone",
                        "username",
                        "parent_user_id",
                    ],
                );
                // One row per customer (a customer may write to several accounts): only their
                // keys are remembered, never a page of messages.
                let mut seen = HashSet::new();
                let mut cursor = self.cursor();
                while let Some(c) = self.next_conversation(&mut cursor).await? {
                    if !seen.insert(c.customer.id.key()) {
                        continue;
                    }
                    let id_type = match &c.customer.id {
                        CustomerId::WhatsAppUser(_) => "whatsapp_user",
                        CustomerId::WhatsAppPhone(_) => "whatsapp_phone",
                        CustomerId::Instagram(_) => "instagram",
                    };
                    csv::push_row(
                        &mut sink.buf,
                        &[
                            id_type.to_owned(),
                            c.customer.id.as_str().to_owned(),
                            opt(c.customer.name.as_deref()),
                            opt(c.customer.phone.as_ref().map(|p| p.as_str())),
                            opt(c.customer.username.as_deref()),
                            opt(c.customer.parent_user_id.as_ref().map(|p| p.as_str())),
                        ],
                    );
                    sink.maybe_flush().await?;
                }
            }
            ExportFile::ConversationsCsv => {
                csv::push_row(
                    &mut sink.buf,
                    &[
                        "conversation_id",
                        "channel",
                        "account_id",
                        "customer_id",
                        "created_at",
                        "last_inbound_at",
                        "crm_chat_id",
                    ],
                );
                let mut cursor = self.cursor();
                while let Some(c) = self.next_conversation(&mut cursor).await? {
                    csv::push_row(
                        &mut sink.buf,
                        &[
                            c.id.to_string(),
                            c.account.channel().name().to_owned(),
                            c.account.id().to_owned(),
                            c.customer.id.as_str().to_owned(),
                            c.created_at.to_string(),
                            opt(c.last_inbound_at),
                            opt(c.crm_chat_id.as_deref()),
                        ],
                    );
                    sink.maybe_flush().await?;
                }
            }
            ExportFile::MessagesCsv => {
                csv::push_row(
                    &mut sink.buf,
                    &[
                        "conversation_id",
                        "message_id",
                        "at_ms",
                        "direction",
                        "origin",
                        "status",
                        "type",
                        "text",
                        "deleted",
                        "edited",
                        "reaction",
                        "reply_to",
                    ],
                );
                let mut cursor = self.cursor();
                while let Some(c) = self.next_conversation(&mut cursor).await? {
                    self.for_each_message(&c.id, sink, |sink, m| {
                        let out = MessageOut::of(m);
                        let code = |v: &dyn erased::Code| v.code_str();
                        csv::push_row(
                            &mut sink.buf,
                            &[
                                out.conversation_id.to_owned(),
                                out.message_id.to_owned(),
                                out.at_ms.to_string(),
                                code(&out.direction),
                                code(&out.origin),
                                out.status.map(|s| s.code().to_owned()).unwrap_or_default(),
                                out.content.map(content_type).unwrap_or_default().to_owned(),
                                out.text.unwrap_or_default(),
                                out.deleted.to_string(),
                                out.edited.to_string(),
                                opt(out.reaction),
                                opt(out.reply_to),
                            ],
                        );
                        Ok(())
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn export_json(&self, sink: &mut Sink) -> Result<(), ExportError> {
        let settings = self.settings_json().await?;
        sink.buf.extend_from_slice(b"{\"format\":");
        sink.json(&FORMAT)?;
        sink.buf.extend_from_slice(b",\"version\":");
        sink.json(&FORMAT_VERSION)?;
        sink.buf.extend_from_slice(b",\"export_id\":");
        sink.json(&self.id)?;
        sink.buf.extend_from_slice(b",\"tenant_id\":");
        sink.json(self.tenant)?;
        sink.buf.extend_from_slice(b",\"scope\":");
        sink.json(self.scope)?;
        sink.buf.extend_from_slice(b",\"generated_at\":");
        sink.json(&now_secs())?;
        sink.buf.extend_from_slice(b",\"settings\":");
        sink.json(&settings)?;
        sink.buf.extend_from_slice(b",\"conversations\":[");
        let mut cursor = self.cursor();
        let mut first = true;
        while let Some(c) = self.next_conversation(&mut cursor).await? {
            if !first {
                sink.buf.push(b',');
            }
            first = false;
            // The conversation's fields, then its messages streamed into the same object.
            let head = serde_json::to_value(ConversationOut::of(&c))
                .map_err(|e| ExportError::Corrupt(e.to_string()))?;
            let head =
                serde_json::to_string(&head).map_err(|e| ExportError::Corrupt(e.to_string()))?;
            sink.buf
                .extend_from_slice(head.strip_suffix('}').unwrap_or(&head).as_bytes());
            sink.buf.extend_from_slice(b",\"messages\":[");
            let mut first_message = true;
            self.for_each_message(&c.id, sink, |sink, m| {
                if !first_message {
                    sink.buf.push(b',');
                }
                first_message = false;
                sink.json(&MessageOut::of(m))
            })
            .await?;
            sink.buf.extend_from_slice(b"]}");
            sink.maybe_flush().await?;
        }
        sink.buf.extend_from_slice(b"]}");
        Ok(())
    }
}

/// The content's `type` tag (`text`, `media`, `location`, …).
fn content_type(c: &Content) -> &'static str {
    match c {
        Content::Text { .. } => "text",
        Content::Media(_) => "media",
        Content::Location(_) => "location",
        Content::Contacts { .. } => "contacts",
        Content::InteractiveReply { .. } => "interactive_reply",
        Content::Button { .. } => "button",
        Content::Order(_) => "order",
        Content::System { .. } => "system",
        _ => "other",
    }
}

mod erased {
    //! Serde names of small enums, as CSV cells.
    pub trait Code {
        fn code_str(&self) -> String;
    }
    impl<T: serde::Serialize> Code for T {
        fn code_str(&self) -> String {
            match serde_json::to_value(self) {
                Ok(serde_json::Value::String(s)) => s,
                _ => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_files_jobs_and_keys() {
        let id = ExportId::generate().unwrap();
        assert_eq!(ExportId::parse(id.as_str()).unwrap(), id);
        for bad in [
            "",
            "ex_",
            "ex_0123456789ABCDEF01234567",
            "xx_0123456789abcdef01234567",
        ] {
            assert!(ExportId::parse(bad).is_err(), "{bad:?}");
        }
        for f in ExportFile::ALL {
            assert_eq!(ExportFile::from_name(f.name()), Some(f));
        }
        assert_eq!(ExportFile::from_name("../etc/passwd"), None);
        let tenant = TenantId::generate();
        let job = ExportJob {
            tenant: tenant.clone(),
            export_id: id.clone(),
        };
        assert_eq!(ExportJob::parse(&job.to_body()).unwrap(), job);
        assert!(ExportJob::parse("{\"tenant\":\"x\"}").is_err());
        assert_eq!(
            object_key(&tenant, &id, ExportFile::MessagesCsv).as_str(),
            format!("exports/{tenant}/{id}/messages.csv")
        );
        assert!(object_key(&tenant, &id, ExportFile::ExportJson)
            .as_str()
            .starts_with(&tenant_prefix(&tenant)));
    }
}

/// The export-worker handler: runs queued exports; a failure is retried by the queue (files
/// already written are kept and skipped), dead-lettered after the receive limit.
#[derive(Clone)]
pub struct ExportWorker {
    exports: Exports,
}

impl ExportWorker {
    pub fn new(exports: Exports) -> Self {
        ExportWorker { exports }
    }
}

#[async_trait::async_trait]
impl crate::consumer::RecordHandler for ExportWorker {
    async fn handle(&self, record: &crate::consumer::QueueRecord) -> crate::consumer::Outcome {
        use crate::consumer::Outcome;
        let job = match ExportJob::parse(&record.body) {
            Ok(job) => job,
            Err(_) => {
                tracing::error!(message_id = %record.message_id, "unreadable export job");
                return Outcome::Failed;
            }
        };
        match self.exports.run(&job.tenant, &job.export_id).await {
            Ok(_) | Err(ExportError::NotFound) => Outcome::Done,
            Err(e) => {
                tracing::warn!(message_id = %record.message_id, error = %e, "export failed; will be retried");
                Outcome::Failed
            }
        }
    }
}
