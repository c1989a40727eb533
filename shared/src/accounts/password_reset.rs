//! Setting a new password: changing it (knowing the current one) and resetting it through a
//! single-use emailed link (`RESET#<sha256 of the secret>`, with a TTL). Either way every
//! session of the user ends; reset requests are throttled like failed sign-ins, apart from
//! them, so nobody can flood a mailbox or lock a user out by asking.

use super::mailer::{Mail, MailError};
use super::password::Password;
use super::service::{split_token, user_key, Accounts, SignedIn, StoredUser};
use super::{random_secret, sha256_hex, AccountError, Email, UserId, UserPrincipal};
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, StoreError, Table, Update, TTL_ATTR};

const RESET_PREFIX: &str = "wps1";
/// Where a reset link leads (under the console's base URL): the page that asks for the new
/// password (decision 0073).
pub const RESET_PATH: &str = "/app/password-reset/confirm";

fn reset_key(tenant: &TenantId, secret: &str) -> Key {
    Key::new(tenant.partition(), format!("RESET#{}", sha256_hex(secret)))
}

impl Accounts {
    /// Sets a new password after checking the current one; every session of the user ends.
    pub async fn change_password(
        &self,
        principal: &UserPrincipal,
        current: &str,
        new: &Password,
        source: Option<&str>,
    ) -> Result<(), AccountError> {
        let user = self
            .user_by_id(&principal.tenant, &principal.user)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        let now = now_secs();
        let tenant = principal.tenant.to_string();
        let account = (tenant.as_str(), user.email.as_str());
        self.count_attempt(account, source, now).await?;
        if !self.config.hasher.verify(current, Some(&user.hash)).await {
            return Err(AccountError::BadCredentials);
        }
        self.throttle.succeeded(account, source, now).await?;
        self.set_password(&principal.tenant, &user, new).await
    }

    /// Changes the password as [`Accounts::change_password`] does (every session ends, the
    /// user is mailed), then opens one new session for the caller: the browser that made the
    /// change stays signed in, every other session is out.
    pub async fn change_password_and_sign_in(
        &self,
        principal: &UserPrincipal,
        current: &str,
        new: &Password,
        source: Option<&str>,
    ) -> Result<SignedIn, AccountError> {
        self.change_password(principal, current, new, source)
            .await?;
        // Read again: the session must carry the epoch the change raised.
        let user = self
            .user_by_id(&principal.tenant, &principal.user)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        self.open_session(&principal.tenant, &user).await
    }

    async fn set_password(
        &self,
        tenant: &TenantId,
        user: &StoredUser,
        new: &Password,
    ) -> Result<(), AccountError> {
        let hash = self.config.hasher.hash(new).await?;
        self.store
            .update(
                Table::Data,
                &user_key(tenant, &user.id),
                Update::new()
                    .set("password_hash", hash.as_str())
                    .set("password_changed_at", now_secs())
                    .add("session_epoch", 1),
                Some(Condition::Exists),
            )
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => AccountError::UserNotFound,
                e => e.into(),
            })?;
        self.revoke_all(tenant, &user.id).await?;
        self.mail_password_changed(tenant, user).await;
        Ok(())
    }

    /// Emails a single-use reset link if the email has a user in the account. Answers the
    /// same whether or not it does; requests count against the account's throttle, so the
    /// endpoint cannot be used to flood someone's mailbox.
    pub async fn request_password_reset(
        &self,
        account_id: &str,
        email: &str,
        source: Option<&str>,
    ) -> Result<(), AccountError> {
        let Some(mailer) = &self.mailer else {
            return Err(AccountError::MailNotConfigured);
        };
        let email = Email::parse(email)?;
        let now = now_secs();
        // Counted apart from sign-in failures: requesting resets must not lock the user out.
        let reset_account = format!("reset:{account_id}");
        let account = (reset_account.as_str(), email.as_str());
        self.count_attempt(account, source, now).await?;
        let Ok(tenant) = TenantId::parse(account_id) else {
            return Ok(());
        };
        let Some(user) = self.user_by_email(&tenant, &email).await? else {
            return Ok(());
        };
        let secret = random_secret()?;
        let expires_at = now + self.config.reset_secs;
        self.store
            .put(
                Table::Data,
                Item::new(&reset_key(&tenant, &secret))
                    .with("user_id", user.id.as_str())
                    .with("created_at", now)
                    .with(TTL_ATTR, expires_at),
                Some(Condition::NotExists),
            )
            .await?;
        let token = format!("{RESET_PREFIX}.{tenant}.{secret}");
        let sent = mailer
            .send(&Mail {
                to: email,
                subject: "Reset your Wappline password".into(),
                text: self.reset_text(&token),
            })
            .await;
        // The same answer as for an unknown email, also when mail fails: a 5xx here only
        // for existing accounts would tell who has one. The user can ask again.
        if let Err(e) = sent {
            // Not the error's text: a provider may quote the recipient's address in it.
            let MailError::Delivery(_) = e;
            tracing::error!("password reset mail could not be sent");
        }
        Ok(())
    }

    /// The reset mail: the console's page when its base URL is configured (never a request's
    /// Host), and the API call either way.
    fn reset_text(&self, token: &str) -> String {
        let minutes = self.config.reset_secs / 60;
        let api = format!(
            "POST /auth/password-reset/confirm\n\
             {{\"token\": \"{token}\", \"new_password\": \"...\"}}\n"
        );
        let how = match &self.config.public_base_url {
            Some(base) => format!(
                "open this link and choose a new password:\n{base}{RESET_PATH}?token={token}\n\n\
                 Programs using the API may instead send:\n{api}"
            ),
            None => api,
        };
        format!(
            "Someone asked to reset the password of this Wappline account.\n\
             If it was you, within {minutes} minutes, {how}\
             If it was not you, ignore this message.\n"
        )
    }

    /// Whether a reset token can still be used (for the page that asks for the new password,
    /// so a dead link says so before anything is typed). Reads only: a forged, expired or used
    /// token is `InvalidToken`.
    pub async fn check_password_reset(&self, token: &str) -> Result<(), AccountError> {
        let (tenant, rest) = split_token(token, RESET_PREFIX, 1)?;
        match self
            .store
            .get(Table::Data, &reset_key(&tenant, rest[0]))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(AccountError::InvalidToken),
        }
    }

    /// Sets a new password with a reset token (single use); every session of the user ends.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new: &Password,
    ) -> Result<(), AccountError> {
        let (tenant, rest) = split_token(token, RESET_PREFIX, 1)?;
        let key = reset_key(&tenant, rest[0]);
        let item = self
            .store
            .get(Table::Data, &key)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        // Used up first: a second use with the same token fails even if this one fails later.
        match self
            .store
            .delete(Table::Data, &key, Some(Condition::Exists))
            .await
        {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => return Err(AccountError::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        let user_id = item
            .get_s("user_id")
            .and_then(|u| UserId::parse(u).ok())
            .ok_or(AccountError::InvalidToken)?;
        let user = self
            .user_by_id(&tenant, &user_id)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        self.set_password(&tenant, &user, new).await?;
        let tenant_s = tenant.to_string();
        // A reset proves the user: their sign-in failures are forgotten.
        self.throttle
            .succeeded((&tenant_s, user.email.as_str()), None, now_secs())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::service::fixture::*;
    use crate::accounts::{AccountsConfig, Role};
    use std::sync::Arc;

    #[tokio::test]
    async fn changing_the_password_revokes_every_session() {
        let f = fixture().await;
        let first = user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        let second = f
            .accounts
            .sign_in(&t, "alice@acme.test", PW, None)
            .await
            .unwrap();
        let p = f.accounts.authenticate(&first.access_token).await.unwrap();
        let new = Password::new("a much better passphrase").unwrap();
        assert!(matches!(
            f.accounts
                .change_password(&p, "wrong current pw", &new, None)
                .await,
            Err(AccountError::BadCredentials)
        ));
        f.accounts
            .change_password(&p, PW, &new, None)
            .await
            .unwrap();
        for s in [&first, &second] {
            assert!(f.accounts.authenticate(&s.access_token).await.is_err());
            assert!(f.accounts.refresh(&s.refresh_token).await.is_err());
        }
        assert!(f
            .accounts
            .sign_in(&t, "alice@acme.test", PW, None)
            .await
            .is_err());
        f.accounts
            .sign_in(&t, "alice@acme.test", "a much better passphrase", None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_password_reset_is_mailed_single_use_and_revokes_sessions() {
        let f = fixture().await;
        let s = user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        // Unknown emails answer the same and send nothing.
        f.accounts
            .request_password_reset(&t, "nobody@acme.test", None)
            .await
            .unwrap();
        let before = f.outbox.delivered().unwrap().len();
        f.accounts
            .request_password_reset(&t, "alice@acme.test", None)
            .await
            .unwrap();
        let mails = f.outbox.delivered().unwrap();
        assert_eq!(mails.len(), before + 1);
        let token = mails
            .last()
            .unwrap()
            .split(['"', ' ', '\r', '\n'])
            .find(|w| w.starts_with("wps1."))
            .unwrap()
            .to_owned();
        let new = Password::new("reset passphrase 2026").unwrap();
        f.accounts
            .confirm_password_reset(&token, &new)
            .await
            .unwrap();
        assert!(f
            .accounts
            .confirm_password_reset(&token, &new)
            .await
            .is_err());
        assert!(f.accounts.authenticate(&s.access_token).await.is_err());
        f.accounts
            .sign_in(&t, "alice@acme.test", "reset passphrase 2026", None)
            .await
            .unwrap();
    }

    /// A mailer whose every delivery fails (the provider is down).
    struct DownMailer;

    #[async_trait::async_trait]
    impl crate::accounts::Mailer for DownMailer {
        async fn send(&self, _: &Mail) -> Result<(), MailError> {
            Err(MailError::Delivery("provider down".into()))
        }
    }

    #[tokio::test]
    async fn a_reset_answers_the_same_for_an_existing_account_when_mail_fails() {
        let f = fixture().await;
        user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        let config = AccountsConfig::new(
            crate::accounts::PasswordHasher::new(12).unwrap(),
            crate::accounts::SessionKey::generate().unwrap(),
        );
        let down = Accounts::new(f.platform.store.clone(), f.platform.tenants.clone(), config)
            .with_mailer(Arc::new(DownMailer));
        for email in ["alice@acme.test", "nobody@acme.test"] {
            assert!(
                down.request_password_reset(&t, email, None).await.is_ok(),
                "{email}"
            );
        }
    }

    #[tokio::test]
    async fn reset_requests_are_limited_without_locking_sign_in() {
        let f = fixture().await;
        user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        for _ in 0..5 {
            f.accounts
                .request_password_reset(&t, "alice@acme.test", None)
                .await
                .unwrap();
        }
        assert!(matches!(
            f.accounts
                .request_password_reset(&t, "alice@acme.test", None)
                .await,
            Err(AccountError::Throttled { .. })
        ));
        assert_eq!(
            f.outbox.delivered().unwrap().len(),
            1 + 5,
            "invitation + 5 resets"
        );
        f.accounts
            .sign_in(&t, "alice@acme.test", PW, None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_reset_mail_links_to_the_page_and_the_link_is_checked_without_using_it() {
        let mut f = fixture().await;
        f.accounts.config.public_base_url = Some("https://console.example".into());
        user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        f.accounts
            .request_password_reset(&t, "alice@acme.test", None)
            .await
            .unwrap();
        let mail = f.outbox.delivered().unwrap().pop().unwrap();
        let start = mail.find("?token=").expect("a link") + "?token=".len();
        let token: String = mail[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        assert!(mail.contains(&format!("https://console.example{RESET_PATH}?token=wps1.")));
        f.accounts.check_password_reset(&token).await.unwrap();
        f.accounts.check_password_reset(&token).await.unwrap();
        let new = Password::new("reset passphrase 2026").unwrap();
        f.accounts
            .confirm_password_reset(&token, &new)
            .await
            .unwrap();
        for bad in [token.as_str(), "wps1.x.y", ""] {
            assert!(matches!(
                f.accounts.check_password_reset(bad).await,
                Err(AccountError::InvalidToken)
            ));
        }
    }

    #[tokio::test]
    async fn a_change_that_signs_in_again_ends_every_other_session() {
        let f = fixture().await;
        let other = user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        let this = f
            .accounts
            .sign_in(&t, "alice@acme.test", PW, None)
            .await
            .unwrap();
        let p = f.accounts.authenticate(&this.access_token).await.unwrap();
        let new = Password::new("a much better passphrase").unwrap();
        assert!(matches!(
            f.accounts
                .change_password_and_sign_in(&p, "wrong", &new, None)
                .await,
            Err(AccountError::BadCredentials)
        ));
        let fresh = f
            .accounts
            .change_password_and_sign_in(&p, PW, &new, None)
            .await
            .unwrap();
        for s in [&other, &this] {
            assert!(f.accounts.authenticate(&s.access_token).await.is_err());
        }
        assert_eq!(
            f.accounts
                .authenticate(&fresh.access_token)
                .await
                .unwrap()
                .user,
            p.user
        );
        let mails = f.outbox.delivered().unwrap();
        let last = mails.last().unwrap();
        assert!(last.contains("To: alice@acme.test") && last.contains("password was changed"));
    }
}
