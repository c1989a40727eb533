//! WhatsApp message templates for operators (decision 0050).
//!
//! - [`TemplateBook`]: each tenant's copy of its WhatsApp Business Accounts' templates, one
//!   item per (WABA, name, language) in the tenant's partition, and the routes-table index
//!   ([`INDEX_PARTITION`]) that says which tenants hold a number of which WABA: the schedule
//!   walks it, and Meta's template webhooks (addressed to the WABA) find their tenants in it.
//! - [`sync`]: the copy is read from `GET /{waba}/message_templates` when a number connects and
//!   on the account-maintenance schedule.
//! - [`webhook`]: `message_template_status_update`, `template_category_update` and
//!   `message_template_quality_update` keep it current between syncs.
//! - [`command`]: an operator's `/template <name> [params]` in a Bitrix24 chat becomes a
//!   template message, its parameters checked against the stored definition first.
//!
//! Templates are the business's own texts, not personal data: they are stored in clear.

pub mod command;
pub mod sync;
pub mod webhook;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::MessageTemplate;
use crate::ids::{TenantId, WabaId};
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, SK};

/// Sort-key prefix of a tenant's templates.
pub const TEMPLATE_SK_PREFIX: &str = "TEMPLATE#";
/// Routes-table partition: one entry per (WABA, tenant) whose templates are kept.
pub const INDEX_PARTITION: &str = "TEMPLATESYNC";
/// Status of a template that may be sent.
pub const APPROVED: &str = "APPROVED";
/// The category Meta routes through the Marketing Messages API.
pub const MARKETING: &str = "MARKETING";

/// One template as the tenant's copy keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub waba: String,
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub language: String,
    pub status: String,
    pub category: String,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`, from the quality webhook.
    #[serde(default)]
    pub quality: Option<String>,
    /// `NAMED` or `POSITIONAL` (absent: positional).
    #[serde(default)]
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub components: Vec<Value>,
}

impl Template {
    pub fn from_graph(waba: &WabaId, t: MessageTemplate) -> Self {
        Template {
            waba: waba.as_str().to_owned(),
            id: t.id,
            name: t.name,
            language: t.language,
            status: t.status.to_ascii_uppercase(),
            category: t.category.to_ascii_uppercase(),
            quality: None,
            parameter_format: t.parameter_format.map(|f| f.to_ascii_uppercase()),
            components: t.components,
        }
    }

    pub fn is_approved(&self) -> bool {
        self.status == APPROVED
    }

    pub fn is_marketing(&self) -> bool {
        self.category == MARKETING
    }

    fn sk(waba: &str, name: &str, language: &str) -> String {
        format!("{TEMPLATE_SK_PREFIX}{waba}#{name}#{language}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored template could not be read: {0}")]
    Corrupt(String),
}

/// A tenant's templates and the WABA index. Cheap to clone.
#[derive(Clone)]
pub struct TemplateBook {
    store: Arc<dyn TableStore>,
}

fn index_key(waba: &str, tenant: &TenantId) -> Key {
    Key::new(INDEX_PARTITION, format!("{waba}#{}", tenant.as_str()))
}

impl TemplateBook {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        TemplateBook { store }
    }

    /// Every template the tenant holds (all WABAs, every status), by WABA, name, language.
    pub async fn all(&self, tenant: &TenantId) -> Result<Vec<Template>, TemplateError> {
        let mut out = Vec::new();
        let mut query = Query::partition(tenant.partition())
            .begins_with(TEMPLATE_SK_PREFIX)
            .limit(100);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            for item in &page.items {
                let json = item.get_s("template").unwrap_or_default();
                out.push(
                    serde_json::from_str(json)
                        .map_err(|e| TemplateError::Corrupt(e.to_string()))?,
                );
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(out),
            }
        }
    }

    /// The approved templates of `waba`, by name then language.
    pub async fn approved(
        &self,
        tenant: &TenantId,
        waba: &str,
    ) -> Result<Vec<Template>, TemplateError> {
        Ok(self
            .all(tenant)
            .await?
            .into_iter()
            .filter(|t| t.waba == waba && t.is_approved())
            .collect())
    }

    /// The template `name` in `language` of `waba`, whatever its status.
    pub async fn find(
        &self,
        tenant: &TenantId,
        waba: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<Template>, TemplateError> {
        let key = Key::new(tenant.partition(), Template::sk(waba, name, language));
        match self.store.get(Table::Data, &key).await? {
            Some(item) => serde_json::from_str(item.get_s("template").unwrap_or_default())
                .map(Some)
                .map_err(|e| TemplateError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    pub async fn put(&self, tenant: &TenantId, t: &Template) -> Result<(), TemplateError> {
        let key = Key::new(
            tenant.partition(),
            Template::sk(&t.waba, &t.name, &t.language),
        );
        let json = serde_json::to_string(t).expect("templates serialise");
        self.store
            .put(Table::Data, Item::new(&key).with("template", json), None)
            .await?;
        Ok(())
    }

    pub async fn remove(
        &self,
        tenant: &TenantId,
        waba: &str,
        name: &str,
        language: &str,
    ) -> Result<(), TemplateError> {
        let key = Key::new(tenant.partition(), Template::sk(waba, name, language));
        self.store.delete(Table::Data, &key, None).await?;
        Ok(())
    }

    /// Replaces the tenant's copy of `waba`'s templates by `fresh` (templates deleted at Meta
    /// disappear, quality scores learnt from webhooks are kept).
    pub async fn replace(
        &self,
        tenant: &TenantId,
        waba: &WabaId,
        fresh: Vec<Template>,
    ) -> Result<(), TemplateError> {
        let old: Vec<Template> = self
            .all(tenant)
            .await?
            .into_iter()
            .filter(|t| t.waba == waba.as_str())
            .collect();
        for mut t in fresh.iter().cloned() {
            if let Some(o) = old
                .iter()
                .find(|o| o.name == t.name && o.language == t.language)
            {
                t.quality = t.quality.or_else(|| o.quality.clone());
            }
            self.put(tenant, &t).await?;
        }
        for o in old {
            if !fresh
                .iter()
                .any(|t| t.name == o.name && t.language == o.language)
            {
                self.remove(tenant, &o.waba, &o.name, &o.language).await?;
            }
        }
        Ok(())
    }

    /// Enters (`waba`, `tenant`) in the index, due for its next sync at `due_at`.
    pub async fn track(
        &self,
        tenant: &TenantId,
        waba: &WabaId,
        due_at: i64,
    ) -> Result<(), TemplateError> {
        let item = Item::new(&index_key(waba.as_str(), tenant))
            .with("tenant_id", tenant.as_str())
            .with("waba_id", waba.as_str())
            .with("due_at", due_at);
        self.store.put(Table::Routes, item, None).await?;
        Ok(())
    }

    /// Forgets (`waba`, `tenant`) in the index (no number of the WABA is connected any more),
    /// if its entry is still the one read, due at `due_at`; false when a sync entered it again
    /// since (a number of the WABA connected meanwhile, decision 0119).
    pub async fn untrack(
        &self,
        tenant: &TenantId,
        waba: &str,
        due_at: i64,
    ) -> Result<bool, TemplateError> {
        let seen = Condition::number_unchanged("due_at", Some(due_at));
        match self
            .store
            .delete(Table::Routes, &index_key(waba, tenant), Some(seen))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every (tenant, WABA, due_at) in the index; of one WABA only with `waba`.
    pub async fn tracked(
        &self,
        waba: Option<&str>,
    ) -> Result<Vec<(TenantId, WabaId, i64)>, TemplateError> {
        let mut query = Query::partition(INDEX_PARTITION).limit(100);
        if let Some(w) = waba {
            query = query.begins_with(format!("{w}#"));
        }
        let mut out = Vec::new();
        loop {
            let page = self.store.query(Table::Routes, &query).await?;
            for item in &page.items {
                let parsed = (|| {
                    let sk = item.get_s(SK)?;
                    let (w, t) = sk.split_once('#')?;
                    Some((TenantId::parse(t).ok()?, WabaId::parse(w).ok()?))
                })();
                if let Some((t, w)) = parsed {
                    out.push((t, w, item.get_n("due_at").unwrap_or(0)));
                }
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(out),
            }
        }
    }
}
