//! The export's data: its id, scope, files and states, the record the admin API shows, the
//! queue job, links and downloads, the error type, and where an export's objects live.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::link::ExportLinkError;
use crate::conversation::ConversationError;
use crate::crypto::CryptoError;
use crate::ids::TenantId;
use crate::meta::{AccountRef, CustomerId};
use crate::objects::{ObjectBody, ObjectError, ObjectKey};
use crate::store::{Item, StoreError, TTL_ATTR};
use crate::tenant::TenantError;

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
    /// The export was recorded but its job could not be queued.
    #[error("export job not queued: {0}")]
    Queue(String),
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

    pub(super) fn size_attr(self) -> String {
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
    pub(super) fn code(self) -> &'static str {
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

pub(super) fn record_from_item(id: ExportId, item: &Item) -> ExportRecord {
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
