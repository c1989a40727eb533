//! Meta's Data Deletion Callback and the erasure of a Meta user's data.
//!
//! 1. Meta POSTs a `signed_request` when a user removes the app and asks for their data to be
//!    deleted ([`signed_request`]). [`MetaDeletion::accept`] verifies it, records an erasure
//!    request ([`requests`]), queues an `ErasureJob::MetaUser` on the `erasure` queue and
//!    answers `{"url": <status page>, "confirmation_code": <code>}` as Meta documents.
//! 2. The status page ([`MetaDeletion::status`], [`render_status_html`]) shows the request's
//!    state and dates only.
//! 3. The erasure worker runs [`MetaUserErasure`]: every channel the user authorised (the
//!    `AUTHBY#` index written at connection time) is disconnected (route freed) and our access
//!    revoked at Meta as a disconnect does (decision 0036: the revocation record holds the
//!    tokens until its steps are done, retried by the schedule if Meta is down, then deletes
//!    them; decision 0047), each affected tenant's audit log gets `erasure_requested` /
//!    `erasure_completed` and the revocation's entries, and the request is marked completed
//!    without the user id. Idempotent and resumable: a
//!    redelivered job continues where a crashed one stopped.
//!
//! A repeated callback for a user whose request is still open joins that request: it gets a
//! new confirmation code (codes are stored only hashed, so the first cannot be repeated) that
//! shows the same status, and the job is queued again (harmless: the job is idempotent, and
//! it covers a first send that failed).

pub mod requests;
pub mod signed_request;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::audit::{AuditAction, AuditLog};
use crate::clock::{now_secs, rfc3339};
use crate::erasure::ErasureJob;
use crate::ids::{MetaUserId, TenantId};
use crate::meta::AppSecret;
use crate::queue::{Queue, QueueError, QueueName};
use crate::revocation::{RevocationError, Revocations};
use crate::store::{StoreError, TableStore};
use crate::tenant::{ChannelRef, TenantDirectory, TenantError};

pub use requests::{ErasureRequests, Recorded, RequestId, RequestState, RequestStatus};
pub use signed_request::{DeletionRequest, SignedRequestError};

/// The callback's path and the status page's, as template.yaml routes them.
pub const CALLBACK_PATH: &str = "/data-deletion";
pub const STATUS_PATH: &str = "/data-deletion/status";
/// Actor named in tenants' audit logs.
pub const AUDIT_ACTOR: &str = "meta";
/// The `kind` tag of this job on the `erasure` queue.
pub const JOB_KIND: &str = "meta_user";

/// What Meta gets back from the callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallbackAnswer {
    pub url: String,
    pub confirmation_code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The signed request was refused (4xx); nothing was recorded.
    #[error(transparent)]
    Rejected(#[from] SignedRequestError),
    /// Storage or queue failure (5xx): Meta may call again, which joins the same request.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid PUBLIC_BASE_URL: must be an http(s) URL without query or fragment")]
pub struct InvalidBaseUrl;

/// The callback and the status page: what the `data-deletion` function serves.
#[derive(Clone)]
pub struct MetaDeletion {
    secrets: Vec<AppSecret>,
    requests: ErasureRequests,
    queue: Arc<dyn Queue>,
    erasure_queue: QueueName,
    public_base_url: String,
}

impl MetaDeletion {
    /// `secrets`: the app secret, then the previous one during a rotation.
    /// `public_base_url`: where the status page is served (`https://api.example.com`).
    pub fn new(
        secrets: Vec<AppSecret>,
        store: Arc<dyn TableStore>,
        queue: Arc<dyn Queue>,
        erasure_queue: QueueName,
        public_base_url: &str,
    ) -> Result<Self, InvalidBaseUrl> {
        let base = public_base_url.trim().trim_end_matches('/');
        let ok = (base.starts_with("https://") || base.starts_with("http://"))
            && !base.contains(['?', '#', ' '])
            && base.len() > "https://".len();
        if !ok {
            return Err(InvalidBaseUrl);
        }
        Ok(MetaDeletion {
            secrets,
            requests: ErasureRequests::new(store),
            queue,
            erasure_queue,
            public_base_url: base.to_owned(),
        })
    }

    pub fn requests(&self) -> &ErasureRequests {
        &self.requests
    }

    /// Handles the callback's form body: verify, record, queue, answer.
    pub async fn accept(&self, form_body: &[u8]) -> Result<CallbackAnswer, CallbackError> {
        let request = signed_request::verify_form(&self.secrets, form_body, now_secs())?;
        let recorded = self
            .requests
            .record(&request.user_id)
            .await
            .map_err(|e| CallbackError::Unavailable(e.to_string()))?;
        let job = ErasureJob::MetaUser {
            request_id: recorded.request_id.as_str().to_owned(),
        };
        self.queue
            .send_batch(&self.erasure_queue, vec![job.to_message()])
            .await
            .map_err(|e: QueueError| CallbackError::Unavailable(e.to_string()))?;
        tracing::info!(
            request_id = recorded.request_id.as_str(),
            new_request = recorded.new_request,
            "Meta data deletion request recorded"
        );
        Ok(CallbackAnswer {
            url: self.status_url(&recorded.confirmation_code),
            confirmation_code: recorded.confirmation_code,
        })
    }

    /// The status page's URL for a code.
    pub fn status_url(&self, code: &str) -> String {
        format!("{}{STATUS_PATH}?code={code}", self.public_base_url)
    }

    /// The status a code shows (None: unknown code).
    pub async fn status(&self, code: &str) -> Result<Option<RequestStatus>, StoreError> {
        self.requests.status_by_code(code).await
    }
}

/// The status page's JSON: state and dates (RFC 3339, UTC), nothing else.
pub fn status_json(status: &RequestStatus) -> serde_json::Value {
    let mut v = serde_json::json!({
        "state": status.state,
        "requested_at": rfc3339(status.requested_at),
    });
    if let Some(t) = status.started_at {
        v["started_at"] = rfc3339(t).into();
    }
    if let Some(t) = status.completed_at {
        v["completed_at"] = rfc3339(t).into();
    }
    v
}

/// The status page (templates/deletion_status.html): state and dates only.
#[derive(askama::Template)]
#[template(path = "deletion_status.html")]
struct StatusPage {
    explanation: &'static str,
    state: String,
    requested: String,
    started: Option<String>,
    completed: Option<String>,
}

/// The page for an unknown code (templates/deletion_not_found.html).
#[derive(askama::Template)]
#[template(path = "deletion_not_found.html")]
struct NotFoundPage;

/// The status page as a small HTML document: state and dates only.
pub fn render_status_html(status: &RequestStatus) -> String {
    let explanation = match status.state {
        RequestState::Pending => {
            "We received your request. The data will be deleted within 30 days."
        }
        RequestState::InProgress => "Your data is being deleted.",
        RequestState::Completed => {
            "Your data has been deleted: the connections you authorised were disconnected; their access tokens are deleted as soon as our access is revoked at Meta."
        }
    };
    askama::Template::render(&StatusPage {
        explanation,
        state: status.state.name().replace('_', " "),
        requested: rfc3339(status.requested_at),
        started: status.started_at.map(rfc3339),
        completed: status.completed_at.map(rfc3339),
    })
    .expect("the status template only formats strings")
}

/// The page for an unknown code.
pub fn render_not_found_html() -> String {
    askama::Template::render(&NotFoundPage).expect("the not-found template has no fields")
}

/// Why an erasure run stopped.
#[derive(Debug, thiserror::Error)]
pub enum MetaUserErasureError {
    #[error("malformed job: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

/// What an erasure run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The request is completed (now or before).
    Completed { channels_disconnected: usize },
    /// Stopped after the step budget; run the job again to continue.
    Partial { channels_disconnected: usize },
    /// No such request (nothing to do).
    Unknown,
}

/// The Meta-user erasure: disconnects every channel the user authorised.
#[derive(Clone)]
pub struct MetaUserErasure {
    requests: ErasureRequests,
    tenants: TenantDirectory,
    revocations: Revocations,
    audit: AuditLog,
}

impl MetaUserErasure {
    /// `revocations`: how each channel is disconnected (with its revocation at the provider).
    pub fn new(
        store: Arc<dyn TableStore>,
        tenants: TenantDirectory,
        revocations: Revocations,
    ) -> Self {
        MetaUserErasure {
            requests: ErasureRequests::new(store.clone()),
            tenants,
            revocations,
            audit: AuditLog::new(store),
        }
    }

    /// Runs the job to completion.
    pub async fn process(&self, request_id: &str) -> Result<Progress, MetaUserErasureError> {
        self.process_steps(request_id, usize::MAX).await
    }

    /// Runs the job, disconnecting at most `max_channels` channels (then [`Progress::Partial`]):
    /// for a time budget, and to test that a run cut short is finished by the next.
    pub async fn process_steps(
        &self,
        request_id: &str,
        max_channels: usize,
    ) -> Result<Progress, MetaUserErasureError> {
        let id = RequestId::parse(request_id)
            .ok_or_else(|| MetaUserErasureError::Malformed("request_id".into()))?;
        let Some(item) = self.requests.get(&id).await? else {
            tracing::warn!(
                request_id = id.as_str(),
                "erasure request not found; dropped"
            );
            return Ok(Progress::Unknown);
        };
        if item.get_s("state") == Some(RequestState::Completed.name()) {
            return Ok(Progress::Completed {
                channels_disconnected: 0,
            });
        }
        let user = item
            .get_s("meta_user_id")
            .and_then(|u| MetaUserId::parse(u).ok())
            .ok_or_else(|| MetaUserErasureError::Malformed("request has no Meta user id".into()))?;
        self.requests.start(&id).await?;

        // Tenants affected: those recorded by an earlier run (whose channels may be gone
        // already) and those the index names now.
        let channels = self.tenants.channels_authorized_by(&user).await?;
        let mut tenants = requests::strings(&item, "tenants");
        let known = tenants.len();
        for (t, _) in &channels {
            if !tenants.iter().any(|k| k == t.as_str()) {
                tenants.push(t.as_str().to_owned());
            }
        }
        tenants.sort();
        if tenants.len() != known {
            self.requests.set_list(&id, "tenants", &tenants).await?;
        }
        let mut requested_logged = requests::strings(&item, "requested_logged");
        let mut completed_logged = requests::strings(&item, "completed_logged");

        let mut done = 0usize;
        let details = [("erasure_id", id.as_str()), ("subject", JOB_KIND)];
        for tenant_str in &tenants {
            let Ok(tenant) = TenantId::parse(tenant_str) else {
                continue;
            };
            if !requested_logged.contains(tenant_str) {
                self.audit_record(&tenant, AuditAction::ErasureRequested, &details)
                    .await?;
                requested_logged.push(tenant_str.clone());
                self.requests
                    .set_list(&id, "requested_logged", &requested_logged)
                    .await?;
            }
            for (_, channel) in channels.iter().filter(|(t, _)| *t == tenant) {
                if done >= max_channels {
                    return Ok(Progress::Partial {
                        channels_disconnected: done,
                    });
                }
                self.disconnect(&user, &tenant, channel).await?;
                done += 1;
            }
            if !completed_logged.contains(tenant_str) {
                self.audit_record(&tenant, AuditAction::ErasureCompleted, &details)
                    .await?;
                completed_logged.push(tenant_str.clone());
                self.requests
                    .set_list(&id, "completed_logged", &completed_logged)
                    .await?;
            }
        }
        self.requests.complete(&id, &user).await?;
        tracing::info!(
            request_id = id.as_str(),
            channels = done,
            tenants = tenants.len(),
            "Meta user erasure completed"
        );
        Ok(Progress::Completed {
            channels_disconnected: done,
        })
    }

    async fn disconnect(
        &self,
        user: &MetaUserId,
        tenant: &TenantId,
        channel: &ChannelRef,
    ) -> Result<(), MetaUserErasureError> {
        let scope = self.tenants.scope(tenant).await?;
        let result = match &scope {
            Some(scope) => self
                .revocations
                .disconnect(scope, channel, AUDIT_ACTOR, false)
                .await
                .map(|_| ()),
            None => Err(RevocationError::Tenant(TenantError::TenantNotFound)),
        };
        match result {
            Ok(()) => {
                self.audit_record(
                    tenant,
                    AuditAction::ChannelDisconnected,
                    &[
                        ("kind", channel.kind().name()),
                        ("id", channel.external_id()),
                    ],
                )
                .await?;
                Ok(())
            }
            // Already gone: only the index entry is left to drop.
            Err(RevocationError::Tenant(
                TenantError::ChannelNotFound(_) | TenantError::TenantNotFound,
            )) => {
                self.tenants
                    .forget_authorization(user, tenant, channel)
                    .await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn audit_record(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        details: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        self.audit
            .record(tenant, action, AUDIT_ACTOR, details)
            .await
    }
}

/// The erasure worker's dispatch port for `meta_user` jobs.
#[async_trait]
impl crate::erasure::MetaUserErasures for MetaUserErasure {
    async fn process(&self, request_id: &str) -> Result<(), String> {
        match MetaUserErasure::process(self, request_id).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_carries_its_kind() {
        let job = ErasureJob::MetaUser {
            request_id: "mdr_0123456789abcdef01234567".into(),
        };
        let body = job.to_message().body;
        assert_eq!(
            body,
            r#"{"kind":"meta_user","request_id":"mdr_0123456789abcdef01234567"}"#
        );
        assert_eq!(ErasureJob::from_body(&body), Some(job));
    }
}
