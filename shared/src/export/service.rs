//! The [`Exports`] service: records a requested export, runs it (file by file, resumable),
//! lists them, signs and checks download links, and deletes exports (erasure).

use std::sync::Arc;
use std::time::Duration;

use super::link::{self, ExportLinkKey};
use super::model::{
    object_key, record_from_item, tenant_prefix, ExportDownload, ExportError, ExportFile, ExportId,
    ExportLink, ExportRecord, ExportScope, ExportState,
};
use super::writer::{Run, Sink};
use super::{
    DEFAULT_LINK_TTL, DEFAULT_PAGE_SIZE, EXPORT_RETENTION_SECS, MAX_LINK_TTL, REDIRECT_TTL,
};
use crate::audit::{AuditAction, AuditLog};
use crate::clock::now_secs;
use crate::conversation::Conversations;
use crate::crypto::{Envelope, FieldRef};
use crate::ids::TenantId;
use crate::objects::ObjectStore;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update, TTL_ATTR};

/// Exports of every tenant: requests, runs, links.
#[derive(Clone)]
pub struct Exports {
    pub(super) store: Arc<dyn TableStore>,
    pub(super) envelope: Arc<Envelope>,
    objects: Arc<dyn ObjectStore>,
    audit: AuditLog,
    keys: Vec<ExportLinkKey>,
    download_base: String,
    pub(super) page_size: usize,
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
        Key::new(tenant.sub_partition(super::EXPORTS_SUFFIX), id.as_str())
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
        let pk = tenant.sub_partition(super::EXPORTS_SUFFIX);
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
        let tenant = claims.tenant.clone();
        crate::acting::acting_for(&tenant, self.open_verified(claims)).await
    }

    async fn open_verified(
        &self,
        claims: link::ExportClaims,
    ) -> Result<ExportDownload, ExportError> {
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
        // The signed link names its tenant: its scoped credentials (decision 0037).
        let tenant = claims.tenant.clone();
        crate::acting::acting_for(&tenant, self.redirect_verified(claims)).await
    }

    async fn redirect_verified(
        &self,
        claims: link::ExportClaims,
    ) -> Result<Option<String>, ExportError> {
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
