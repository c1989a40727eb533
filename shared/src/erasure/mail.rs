//! Completion emails of erasures (templates/erasure_*_completed.txt): what was deleted and
//! when, naming the account and the request only, never the erased contact.

use crate::accounts::{Email, Mail, Mailer};
use crate::clock::{now_secs, rfc3339};
use crate::ids::TenantId;
use crate::store::{Condition, Key, StoreError, Table, TableStore, Update};

use super::ErasureError;

/// When an erasure record's completion email went out (set once, by whoever sends it).
pub(super) const NOTIFIED_ATTR: &str = "notified_at";

/// Sends `mails` once for the erasure record at `key`: the record is claimed first (its
/// [`NOTIFIED_ATTR`] set only where absent), so concurrent or repeated runs send nothing
/// twice; a failed send releases the claim, so a later run tries again. False when another
/// run had claimed it.
pub(super) async fn send_once(
    store: &dyn TableStore,
    table: Table,
    key: &Key,
    mailer: &dyn Mailer,
    mails: &[Mail],
) -> Result<bool, ErasureError> {
    match store
        .update(
            table,
            key,
            Update::new().set(NOTIFIED_ATTR, now_secs()),
            Some(Condition::AttrNotExists(NOTIFIED_ATTR.into())),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::ConditionFailed { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    for mail in mails {
        if let Err(e) = mailer.send(mail).await {
            store
                .update(table, key, Update::new().remove(NOTIFIED_ATTR), None)
                .await?;
            return Err(ErasureError::Corrupt(format!("completion email: {e}")));
        }
    }
    Ok(true)
}

/// A completion message, before its recipient is known.
pub struct Completion {
    pub subject: String,
    pub text: String,
}

impl Completion {
    pub fn to(&self, to: Email) -> Mail {
        Mail {
            to,
            subject: self.subject.clone(),
            text: self.text.clone(),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "erasure_tenant_completed.txt")]
struct TenantErased<'a> {
    tenant_id: &'a str,
    completed: String,
}

#[derive(askama::Template)]
#[template(path = "erasure_contact_completed.txt")]
struct ContactErased<'a> {
    tenant_id: &'a str,
    request_id: &'a str,
    completed: String,
    conversations: i64,
}

/// To the owners of an erased account.
pub fn tenant_erased(tenant: &TenantId, completed_at: i64) -> Completion {
    Completion {
        subject: "Your Wappline account has been deleted".into(),
        text: askama::Template::render(&TenantErased {
            tenant_id: tenant.as_str(),
            completed: rfc3339(completed_at),
        })
        .expect("the template only formats strings"),
    }
}

/// To the user who asked for a contact's erasure.
pub fn contact_erased(
    tenant: &TenantId,
    request_id: &str,
    completed_at: i64,
    conversations: i64,
) -> Completion {
    Completion {
        subject: "Contact erasure completed".into(),
        text: askama::Template::render(&ContactErased {
            tenant_id: tenant.as_str(),
            request_id,
            completed: rfc3339(completed_at),
            conversations,
        })
        .expect("the template only formats strings"),
    }
}
