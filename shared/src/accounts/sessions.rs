//! Sessions: signing in, the tokens a session hands out and how they are checked.
//!
//! A session (`SESSION#<user>#<session id>`, with a TTL) holds the hash of its current
//! refresh secret; the access token is a short-lived signed claim set
//! ([`super::token::AccessClaims`]) checked against the live session and the user's epoch,
//! so signing out, a password change or a removal takes effect at once. Refresh tokens
//! rotate on every use; a rotated-away token presented again ends the session.

use serde::Serialize;
use subtle::ConstantTimeEq;

use super::password::Password;
use super::service::{split_token, user_key, Accounts, StoredUser, UserInfo};
use super::token::{AccessClaims, ACCESS_TOKEN_SECS};
use super::{random_hex, random_secret, sha256_hex, AccountError, Email, UserId, UserPrincipal};
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{AttrValue, Condition, Item, Key, Query, StoreError, Table, Update, TTL_ATTR};
use crate::tenant::TenantStatus;

const REFRESH_PREFIX: &str = "wpr1";

/// The outcome of a sign-in, an accepted invitation or a refresh.
#[derive(Clone, Debug, Serialize)]
pub struct SignedIn {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    /// Unix seconds when the session ends (refresh stops working).
    pub session_expires_at: i64,
    pub user: UserInfo,
    pub tenant_id: TenantId,
}

fn session_prefix(user: &UserId) -> String {
    format!("SESSION#{user}#")
}
fn session_key(tenant: &TenantId, user: &UserId, session: &str) -> Key {
    Key::new(
        tenant.partition(),
        format!("{}{session}", session_prefix(user)),
    )
}

/// A refresh token's parts: `wpr1.<tenant>.<user>.<session>.<secret>`.
struct RefreshToken<'a> {
    tenant: TenantId,
    user: UserId,
    session: &'a str,
    secret: &'a str,
}

impl<'a> RefreshToken<'a> {
    fn parse(token: &'a str) -> Result<Self, AccountError> {
        let (tenant, rest) = split_token(token, REFRESH_PREFIX, 3)?;
        Ok(RefreshToken {
            tenant,
            user: UserId::parse(rest[0]).map_err(|_| AccountError::InvalidToken)?,
            session: rest[1],
            secret: rest[2],
        })
    }
}

/// Whether `secret` is the session's current refresh secret (compared in constant time).
fn refresh_secret_matches(session: &Item, secret: &str) -> bool {
    let stored = session.get_s("refresh_sha256").unwrap_or_default();
    stored
        .as_bytes()
        .ct_eq(sha256_hex(secret).as_bytes())
        .into()
}

/// How many rotated-away refresh secrets a session remembers (their hashes): a refresh every
/// 15 minutes over a working day.
const ROTATED_KEPT: usize = 32;
const ROTATED: &str = "rotated_sha256";

/// The hashes of the session's rotated-away refresh secrets, newest last.
fn rotated_hashes(session: &Item) -> Vec<String> {
    match session.get(ROTATED) {
        Some(AttrValue::L(list)) => list
            .iter()
            .filter_map(|v| v.as_s().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `secret` is one the session really issued and has since rotated away: a copied
/// token. A token that merely looks like one of the session's (its prefix is no secret) is
/// not.
fn was_rotated_away(session: &Item, secret: &str) -> bool {
    let presented = sha256_hex(secret);
    rotated_hashes(session).iter().fold(false, |found, h| {
        found | bool::from(h.as_bytes().ct_eq(presented.as_bytes()))
    })
}

impl Accounts {
    /// Signs in with the account id (tenant), email and password. Unknown accounts, unknown
    /// emails and wrong passwords get the same error after the same bcrypt work; failures
    /// are throttled per account and per source address.
    pub async fn sign_in(
        &self,
        account_id: &str,
        email: &str,
        password: &str,
        source: Option<&str>,
    ) -> Result<SignedIn, AccountError> {
        let email = Email::parse(email)?;
        if password.is_empty() || password.len() > 1024 {
            return Err(AccountError::Invalid("password: required".into()));
        }
        let now = now_secs();
        let account = (account_id, email.as_str());
        self.count_attempt(account, source, now).await?;
        let tenant = TenantId::parse(account_id).ok();
        let user = match &tenant {
            Some(t) => self.user_by_email(t, &email).await?,
            None => None,
        };
        let ok = self
            .config
            .hasher
            .verify(password, user.as_ref().map(|u| u.hash.as_str()))
            .await;
        let (Some(tenant), Some(user), true) = (tenant, user, ok) else {
            return Err(AccountError::BadCredentials);
        };
        self.throttle.succeeded(account, source, now).await?;
        if self.tenant_status(&tenant).await? != Some(TenantStatus::Active) {
            return Err(AccountError::Suspended);
        }
        if self.config.hasher.needs_upgrade(&user.hash) {
            self.upgrade_hash(&tenant, &user, password).await;
        }
        self.open_session(&tenant, &user).await
    }

    /// Re-hashes at the configured cost. A failure leaves the old (valid) hash in place and
    /// is retried at the next sign-in, so it is logged, not returned.
    async fn upgrade_hash(&self, tenant: &TenantId, user: &StoredUser, password: &str) {
        let Ok(password) = Password::new(password) else {
            // Set under an older policy; it still signs in, and is not re-hashed.
            return;
        };
        let result = async {
            let hash = self.config.hasher.hash(&password).await?;
            self.store
                .update(
                    Table::Data,
                    &user_key(tenant, &user.id),
                    Update::new().set("password_hash", hash.as_str()),
                    Some(Condition::Equals(
                        "password_hash".into(),
                        user.hash.as_str().into(),
                    )),
                )
                .await?;
            Ok::<_, AccountError>(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(tenant = %tenant, user = %user.id, cost = self.config.hasher.cost(), "password hash cost raised")
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, user = %user.id, error = %e, "password hash not upgraded")
            }
        }
    }

    pub(super) async fn open_session(
        &self,
        tenant: &TenantId,
        user: &StoredUser,
    ) -> Result<SignedIn, AccountError> {
        let session = random_hex(12)?;
        let secret = random_secret()?;
        let now = now_secs();
        let session_expires_at = now + self.config.session_secs;
        let item = Item::new(&session_key(tenant, &user.id, &session))
            .with("refresh_sha256", sha256_hex(&secret))
            .with("epoch", user.epoch)
            .with("created_at", now)
            .with(TTL_ATTR, session_expires_at);
        self.store
            .put(Table::Data, item, Some(Condition::NotExists))
            .await?;
        Ok(self.signed_in(tenant, user, &session, &secret, session_expires_at, now))
    }

    fn signed_in(
        &self,
        tenant: &TenantId,
        user: &StoredUser,
        session: &str,
        secret: &str,
        session_expires_at: i64,
        now: i64,
    ) -> SignedIn {
        let claims = AccessClaims {
            t: tenant.to_string(),
            u: user.id.to_string(),
            s: session.to_owned(),
            e: user.epoch,
            iat: now,
            exp: (now + ACCESS_TOKEN_SECS).min(session_expires_at),
        };
        SignedIn {
            access_token: self.config.session_key.sign(&claims),
            token_type: "Bearer",
            expires_in: claims.exp - now,
            refresh_token: format!("{REFRESH_PREFIX}.{tenant}.{}.{session}.{secret}", user.id),
            session_expires_at,
            user: user.info(),
            tenant_id: tenant.clone(),
        }
    }

    /// The user behind an access token: signature and expiry first (no store access for a
    /// forged token), then the live session and the user's current role and epoch.
    pub async fn authenticate(&self, access_token: &str) -> Result<UserPrincipal, AccountError> {
        let claims = self.config.verify_access_token(access_token, now_secs())?;
        let tenant = claims.tenant()?;
        let user_id = claims.user()?;
        let user = self
            .user_by_id(&tenant, &user_id)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        if user.epoch != claims.e {
            return Err(AccountError::InvalidToken);
        }
        self.store
            .get(Table::Data, &session_key(&tenant, &user_id, &claims.s))
            .await?
            .ok_or(AccountError::InvalidToken)?;
        Ok(UserPrincipal {
            tenant,
            user: user_id,
            role: user.role,
            session: claims.s,
        })
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (rotation).
    /// Presenting a refresh token that was already rotated away ends the whole session: it
    /// means the token was copied. Any other wrong secret is only refused: the token's prefix
    /// (`wpr1.<tenant>.<user>.<session>`) is not secret, so a guess must not sign anyone out.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, AccountError> {
        let RefreshToken {
            tenant,
            user: user_id,
            session,
            secret,
        } = RefreshToken::parse(refresh_token)?;
        let key = session_key(&tenant, &user_id, session);
        let item = self
            .store
            .get(Table::Data, &key)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        let stored = item.get_s("refresh_sha256").unwrap_or_default().to_owned();
        if !refresh_secret_matches(&item, secret) {
            if was_rotated_away(&item, secret) {
                tracing::warn!(tenant = %tenant, user = %user_id, "rotated refresh token presented again; session ended");
                self.store.delete(Table::Data, &key, None).await?;
            } else {
                tracing::info!(tenant = %tenant, user = %user_id, "refresh token with a wrong secret refused");
            }
            return Err(AccountError::InvalidToken);
        }
        let user = self
            .user_by_id(&tenant, &user_id)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        if item.get_n("epoch") != Some(user.epoch) {
            self.store.delete(Table::Data, &key, None).await?;
            return Err(AccountError::InvalidToken);
        }
        if self.tenant_status(&tenant).await? != Some(TenantStatus::Active) {
            return Err(AccountError::Suspended);
        }
        let next = random_secret()?;
        let mut rotated = rotated_hashes(&item);
        rotated.push(stored.clone());
        let skip = rotated.len().saturating_sub(ROTATED_KEPT);
        let rotated: Vec<AttrValue> = rotated.into_iter().skip(skip).map(AttrValue::S).collect();
        match self
            .store
            .update(
                Table::Data,
                &key,
                Update::new()
                    .set("refresh_sha256", sha256_hex(&next))
                    .set(ROTATED, AttrValue::L(rotated)),
                Some(Condition::Equals("refresh_sha256".into(), stored.into())),
            )
            .await
        {
            Ok(_) => {}
            // A concurrent refresh with the same token won.
            Err(StoreError::ConditionFailed { .. }) => return Err(AccountError::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        let expires_at = item.get_n(TTL_ATTR).unwrap_or(0);
        Ok(self.signed_in(&tenant, &user, session, &next, expires_at, now_secs()))
    }

    /// Ends the session of a principal (its access token stops working at once).
    pub async fn sign_out(&self, principal: &UserPrincipal) -> Result<(), AccountError> {
        self.store
            .delete(
                Table::Data,
                &session_key(&principal.tenant, &principal.user, &principal.session),
                None,
            )
            .await?;
        Ok(())
    }

    /// Ends the session a refresh token belongs to (sign-out with the cookie only).
    pub async fn sign_out_refresh(&self, refresh_token: &str) -> Result<(), AccountError> {
        let token = RefreshToken::parse(refresh_token)?;
        let key = session_key(&token.tenant, &token.user, token.session);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(());
        };
        if !refresh_secret_matches(&item, token.secret) {
            return Err(AccountError::InvalidToken);
        }
        self.store.delete(Table::Data, &key, None).await?;
        Ok(())
    }

    /// Ends every session of a user and invalidates their access tokens (epoch + 1).
    pub(super) async fn revoke_all(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(), AccountError> {
        let mut query = Query::partition(tenant.partition())
            .begins_with(session_prefix(user))
            .limit(100);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            for item in &page.items {
                if let Some(key) = item.key() {
                    self.store.delete(Table::Data, &key, None).await?;
                }
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::service::fixture::*;
    use crate::accounts::{PasswordHasher, Role};

    #[tokio::test]
    async fn sign_in_answers_alike_for_unknown_users_wrong_passwords_and_unknown_accounts() {
        let f = fixture().await;
        user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        let ok = f
            .accounts
            .sign_in(&t, "ALICE@acme.test", PW, Some("10.0.0.1"))
            .await
            .unwrap();
        assert_eq!(ok.user.email.as_str(), "alice@acme.test");
        for (account, email, pw) in [
            (t.as_str(), "alice@acme.test", "wrong password!!"),
            (t.as_str(), "nobody@acme.test", PW),
            ("tn_ffffffffffffffffffffffff", "alice@acme.test", PW),
            ("not-an-account", "alice@acme.test", PW),
        ] {
            let err = f
                .accounts
                .sign_in(account, email, pw, Some("10.0.0.2"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, AccountError::BadCredentials),
                "{account} {email}: {err}"
            );
            assert_eq!(err.to_string(), "invalid email or password");
        }
    }

    #[tokio::test]
    async fn repeated_failures_are_throttled_per_account_even_with_the_right_password() {
        let f = fixture().await;
        user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        for _ in 0..5 {
            assert!(matches!(
                f.accounts
                    .sign_in(&t, "alice@acme.test", "wrong password!!", Some("10.0.0.3"))
                    .await,
                Err(AccountError::BadCredentials)
            ));
        }
        // Locked: the right password from another address is refused too, until the window
        // passes, and an unknown email gets the same treatment after five failures.
        let err = f
            .accounts
            .sign_in(&t, "alice@acme.test", PW, Some("10.0.0.4"))
            .await
            .unwrap_err();
        let AccountError::Throttled { retry_after_secs } = err else {
            panic!("{err}");
        };
        assert!((1..=900).contains(&retry_after_secs));
        for _ in 0..5 {
            let _ = f
                .accounts
                .sign_in(&t, "ghost@acme.test", "x", Some("10.0.0.5"))
                .await;
        }
        assert!(matches!(
            f.accounts
                .sign_in(&t, "ghost@acme.test", "x", Some("10.0.0.5"))
                .await,
            Err(AccountError::Throttled { .. })
        ));
    }

    #[tokio::test]
    async fn a_hash_made_at_a_lower_cost_is_raised_on_the_next_sign_in() {
        let f = fixture_with_cost(12).await;
        let signed = user(&f, "alice@acme.test", Role::Agent).await;
        let key = user_key(&f.tenant, &signed.user.id);
        let before = f
            .platform
            .store
            .get(Table::Data, &key)
            .await
            .unwrap()
            .unwrap();
        assert!(before
            .get_s("password_hash")
            .unwrap()
            .starts_with("$2b$12$"));
        // The configuration grows to 13.
        let mut config = f.accounts.config.clone();
        config.hasher = PasswordHasher::new(13).unwrap();
        let raised = Accounts::new(f.platform.store.clone(), f.platform.tenants.clone(), config);
        raised
            .sign_in(&f.tenant.to_string(), "alice@acme.test", PW, None)
            .await
            .unwrap();
        let after = f
            .platform
            .store
            .get(Table::Data, &key)
            .await
            .unwrap()
            .unwrap();
        let hash = after.get_s("password_hash").unwrap();
        assert!(hash.starts_with("$2b$13$"), "{hash}");
        // And the password still works.
        raised
            .sign_in(&f.tenant.to_string(), "alice@acme.test", PW, None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sign_out_revokes_the_session_and_its_access_token_at_once() {
        let f = fixture().await;
        let s = user(&f, "alice@acme.test", Role::Agent).await;
        let p = f.accounts.authenticate(&s.access_token).await.unwrap();
        f.accounts.sign_out(&p).await.unwrap();
        assert!(f.accounts.authenticate(&s.access_token).await.is_err());
        assert!(f.accounts.refresh(&s.refresh_token).await.is_err());
    }

    #[tokio::test]
    async fn refresh_rotates_and_a_replayed_refresh_token_ends_the_session() {
        let f = fixture().await;
        let s = user(&f, "alice@acme.test", Role::Agent).await;
        let next = f.accounts.refresh(&s.refresh_token).await.unwrap();
        assert_ne!(next.refresh_token, s.refresh_token);
        f.accounts.authenticate(&next.access_token).await.unwrap();
        // The old token again: treated as stolen; the whole session ends.
        assert!(f.accounts.refresh(&s.refresh_token).await.is_err());
        assert!(f.accounts.refresh(&next.refresh_token).await.is_err());
        assert!(f.accounts.authenticate(&next.access_token).await.is_err());
    }

    #[tokio::test]
    async fn a_forged_refresh_secret_is_refused_without_ending_the_session() {
        let f = fixture().await;
        let s = user(&f, "alice@acme.test", Role::Agent).await;
        // Anyone can learn the token's prefix; one character of the secret changed.
        let (prefix, secret) = s.refresh_token.rsplit_once('.').unwrap();
        let mut forged: Vec<char> = secret.chars().collect();
        forged[0] = if forged[0] == 'A' { 'B' } else { 'A' };
        let forged = format!("{prefix}.{}", forged.into_iter().collect::<String>());
        assert!(matches!(
            f.accounts.refresh(&forged).await,
            Err(AccountError::InvalidToken)
        ));
        assert!(f.accounts.sign_out_refresh(&forged).await.is_err());
        // The user stays signed in, and their real tokens keep working.
        f.accounts.authenticate(&s.access_token).await.unwrap();
        let next = f.accounts.refresh(&s.refresh_token).await.unwrap();
        // After several rotations, an old genuine secret still ends the session.
        let mut current = next.refresh_token.clone();
        for _ in 0..3 {
            current = f.accounts.refresh(&current).await.unwrap().refresh_token;
        }
        assert!(f.accounts.refresh(&next.refresh_token).await.is_err());
        assert!(f.accounts.refresh(&current).await.is_err(), "session ended");
    }

    #[tokio::test]
    async fn a_suspended_account_cannot_sign_in() {
        let f = fixture().await;
        user(&f, "alice@acme.test", Role::Owner).await;
        let key = Key::new(f.tenant.partition(), "PROFILE");
        f.platform
            .store
            .update(
                Table::Data,
                &key,
                Update::new().set("status", "suspended"),
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            f.accounts
                .sign_in(&f.tenant.to_string(), "alice@acme.test", PW, None)
                .await,
            Err(AccountError::Suspended)
        ));
    }
}
