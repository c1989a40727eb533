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
//!
//! Layout: [`model`] holds the types (ids, scopes, files, records, jobs, links) and the
//! object keys; [`service`] the [`Exports`] service (request, run, list, link, open, delete);
//! [`writer`] how each file is produced (streaming JSON, CSV through the `csv` crate with
//! formula-injection guards) into the object store; [`worker`] the queue handler; [`link`]
//! the signed download tokens.

/// The sub-partition of a tenant's exports, `T#<t>#EXPORTS`.
pub const EXPORTS_SUFFIX: &str = "EXPORTS";

pub mod link;
mod model;
mod requests;
mod service;
mod worker;
mod writer;

use std::time::Duration;

pub use link::{ExportLinkError, ExportLinkKey};
pub use model::{
    object_key, tenant_prefix, ExportDownload, ExportError, ExportFile, ExportFileInfo, ExportId,
    ExportJob, ExportLink, ExportRecord, ExportScope, ExportState,
};
pub use requests::ExportRequests;
pub use service::Exports;
pub use worker::ExportWorker;

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
