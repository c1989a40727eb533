//! The account's own data, as the privacy policy promises users can correct it (decision
//! 0047): a user's display name, their email address, and the privacy-policy version they
//! have acknowledged.
//!
//! **Email change** goes through the new address: a request stores
//! `EMAILCHANGE#<sha256 of a random secret>` (user, old and new address, a TTL) and mails the
//! link `<console>/app/account/email/confirm?token=wpe1.<tenant>.<secret>` to the *new*
//! address; nothing else changes. Following the link (a form post, so a mail scanner that
//! opens links changes nothing) uses the record up and, in one transaction, moves the user's
//! address and the account's email index, on condition that the user still has the old
//! address and that the new one is free in the account (the index is per account, as sign-in
//! names the account: decision 0019). The old address is then told. An unknown, expired or
//! used link changes nothing.

use super::mailer::Mail;
use super::service::{email_key, split_token, user_key, Accounts};
use super::{random_secret, sha256_hex, AccountError, Email, UserId, UserPrincipal};
use crate::clock::{now_secs, rfc3339};
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, StoreError, Table, Update, WriteOp, TTL_ATTR};

const EMAIL_CHANGE_PREFIX: &str = "wpe1";
/// Where the link of an email change leads (under the console's base URL).
pub const EMAIL_CONFIRM_PATH: &str = "/app/account/email/confirm";
/// Longest display name kept.
pub const MAX_NAME_CHARS: usize = 100;

fn change_key(tenant: &TenantId, secret: &str) -> Key {
    Key::new(
        tenant.partition(),
        format!("EMAILCHANGE#{}", sha256_hex(secret)),
    )
}

/// What a confirmed email change did.
#[derive(Clone, Debug)]
pub struct EmailChanged {
    pub tenant: TenantId,
    pub user: UserId,
}

#[derive(askama::Template)]
#[template(path = "email_change_confirm.txt")]
struct ConfirmMail<'a> {
    tenant_id: &'a str,
    link: &'a str,
    hours: i64,
}

#[derive(askama::Template)]
#[template(path = "email_change_notice.txt")]
struct NoticeMail<'a> {
    tenant_id: &'a str,
    new_email: &'a str,
    when: String,
}

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub(super) fn display_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(AccountError::Invalid(format!(
            "name: 1 to {MAX_NAME_CHARS} characters, no control characters"
        )));
    }
    Ok(name.to_owned())
}

impl Accounts {
    /// Sets the caller's own display name.
    pub async fn set_display_name(
        &self,
        principal: &UserPrincipal,
        name: &str,
    ) -> Result<(), AccountError> {
        let name = display_name(name)?;
        self.store
            .update(
                Table::Data,
                &user_key(&principal.tenant, &principal.user),
                Update::new().set("display_name", name.as_str()),
                Some(Condition::Exists),
            )
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => AccountError::UserNotFound,
                e => e.into(),
            })?;
        Ok(())
    }

    /// Mails a single-use link to `new_email`; the address changes only when it is followed.
    /// Refused when mail or the console's base URL is not configured, when the address is
    /// the caller's own, or when another user of the account has it.
    pub async fn request_email_change(
        &self,
        principal: &UserPrincipal,
        new_email: &str,
    ) -> Result<(), AccountError> {
        let (Some(mailer), Some(base)) = (&self.mailer, &self.config.public_base_url) else {
            return Err(AccountError::MailNotConfigured);
        };
        let new_email = Email::parse(new_email)?;
        let tenant = &principal.tenant;
        let user = self
            .user_by_id(tenant, &principal.user)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        if user.email == new_email {
            return Err(AccountError::Invalid(
                "email: that is already your address".into(),
            ));
        }
        if self.user_by_email(tenant, &new_email).await?.is_some() {
            return Err(AccountError::Conflict(
                "email: another user of this account has that address".into(),
            ));
        }
        let secret = random_secret()?;
        let now = now_secs();
        self.store
            .put(
                Table::Data,
                Item::new(&change_key(tenant, &secret))
                    .with("user_id", user.id.as_str())
                    .with("old_email", user.email.as_str())
                    .with("new_email", new_email.as_str())
                    .with("created_at", now)
                    .with(TTL_ATTR, now + self.config.email_change_secs),
                Some(Condition::NotExists),
            )
            .await?;
        let token = format!("{EMAIL_CHANGE_PREFIX}.{tenant}.{secret}");
        let link = format!("{base}{EMAIL_CONFIRM_PATH}?token={token}");
        let text = askama::Template::render(&ConfirmMail {
            tenant_id: tenant.as_str(),
            link: &link,
            hours: self.config.email_change_secs / 3600,
        })
        .expect("the template only formats strings");
        mailer
            .send(&Mail {
                to: new_email,
                subject: "Confirm your new Wappline email address".into(),
                text,
            })
            .await?;
        Ok(())
    }

    /// Follows an email-change link: single use, within its lifetime, and only while the
    /// user still has the address the change was asked from. The old address is told.
    pub async fn confirm_email_change(&self, token: &str) -> Result<EmailChanged, AccountError> {
        let (tenant, rest) = split_token(token, EMAIL_CHANGE_PREFIX, 1)?;
        let key = change_key(&tenant, rest[0]);
        // An expired record reads as absent (decision 0004).
        let item = self
            .store
            .get(Table::Data, &key)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        let field = |name: &str| item.get_s(name).and_then(|e| Email::parse(e).ok());
        let (Some(user_id), Some(old), Some(new)) = (
            item.get_s("user_id").and_then(|u| UserId::parse(u).ok()),
            field("old_email"),
            field("new_email"),
        ) else {
            return Err(AccountError::InvalidToken);
        };
        let ops = vec![
            // Used up in the same transaction: a second use finds nothing.
            WriteOp::Delete {
                table: Table::Data,
                key: key.clone(),
                condition: Some(Condition::Exists),
            },
            WriteOp::Update {
                table: Table::Data,
                key: user_key(&tenant, &user_id),
                update: Update::new().set("email", new.as_str()),
                condition: Some(Condition::Equals("email".into(), old.as_str().into())),
            },
            WriteOp::Delete {
                table: Table::Data,
                key: email_key(&tenant, &old),
                condition: None,
            },
            WriteOp::Put {
                table: Table::Data,
                item: Item::new(&email_key(&tenant, &new)).with("user_id", user_id.as_str()),
                condition: Some(Condition::NotExists),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed {
                op_index: Some(3), ..
            }) => {
                return Err(AccountError::Conflict(
                    "email: another user of this account has that address now".into(),
                ))
            }
            Err(StoreError::ConditionFailed { .. }) => return Err(AccountError::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(tenant = %tenant, user = %user_id, "email address changed");
        if let Some(mailer) = &self.mailer {
            let text = askama::Template::render(&NoticeMail {
                tenant_id: tenant.as_str(),
                new_email: new.as_str(),
                when: rfc3339(now_secs()),
            })
            .expect("the template only formats strings");
            let notice = Mail {
                to: old,
                subject: "Your Wappline email address was changed".into(),
                text,
            };
            if mailer.send(&notice).await.is_err() {
                tracing::error!(tenant = %tenant, user = %user_id, "email-change notice could not be sent");
            }
        }
        Ok(EmailChanged {
            tenant,
            user: user_id,
        })
    }

    /// Whether the caller must still acknowledge the current privacy policy: the version,
    /// when one is configured and differs from the one they acknowledged.
    pub async fn policy_notice(
        &self,
        principal: &UserPrincipal,
    ) -> Result<Option<String>, AccountError> {
        let Some(current) = &self.config.policy_version else {
            return Ok(None);
        };
        let user = self.user_by_id(&principal.tenant, &principal.user).await?;
        Ok(match user {
            Some(u) if u.policy_seen.as_deref() != Some(current.as_str()) => Some(current.clone()),
            _ => None,
        })
    }

    /// Records that the caller acknowledged `version`, which must be the current one (an
    /// old page's form cannot acknowledge a newer policy).
    pub async fn acknowledge_policy(
        &self,
        principal: &UserPrincipal,
        version: &str,
    ) -> Result<(), AccountError> {
        match &self.config.policy_version {
            Some(current) if current == version => {}
            _ => {
                return Err(AccountError::Invalid(
                    "version: not the current privacy policy".into(),
                ))
            }
        }
        self.store
            .update(
                Table::Data,
                &user_key(&principal.tenant, &principal.user),
                Update::new()
                    .set("policy_seen", version)
                    .set("policy_seen_at", now_secs()),
                Some(Condition::Exists),
            )
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => AccountError::UserNotFound,
                e => e.into(),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(display_name("  Ann Lee ").unwrap(), "Ann Lee");
        assert!(display_name("   ").is_err());
        assert!(display_name("a\u{7}b").is_err());
        assert!(display_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(display_name(&"ж".repeat(MAX_NAME_CHARS)).is_ok());
    }
}
