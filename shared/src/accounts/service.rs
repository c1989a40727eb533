//! The accounts service: what its parts share. [`Accounts`] itself (its store, tenants,
//! configuration, throttle and mailer), its configuration, the stored user and how users are
//! looked up, and the token format that invitations, sessions and resets have in common.
//!
//! The operations live next to the items they own: [`super::invitations`] (invite, list,
//! withdraw, accept), [`super::sessions`] (sign-in, tokens, refresh, sign-out),
//! [`super::password_reset`] (change and reset a password) and [`super::users`] (list,
//! re-role, remove). Their public types are re-exported here, so `accounts::service::*`
//! paths keep working.

use std::sync::Arc;

use serde::Serialize;

use super::mailer::Mailer;
use super::password::PasswordHasher;
use super::throttle::{SignInThrottle, ThrottlePolicy};
use super::token::SessionKey;
use super::{AccountError, Email, Role, UserId};
use crate::ids::TenantId;
use crate::store::{Item, Key, Table, TableStore};
use crate::tenant::{TenantDirectory, TenantStatus};

pub use super::invitations::{Invitation, PendingInvitation};
pub use super::sessions::SignedIn;
pub use super::users::{list_users, UserChange};

/// Lifetimes and policies; the defaults are what production runs with.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    pub hasher: PasswordHasher,
    pub session_key: SessionKey,
    /// A key being retired: access tokens it signed are still accepted (they live 15
    /// minutes), none is signed with it. Lets the key rotate without signing anyone out.
    pub previous_session_key: Option<SessionKey>,
    pub throttle: ThrottlePolicy,
    /// How long an invitation can be accepted.
    pub invitation_secs: i64,
    /// How long a session (its refresh token) lasts from sign-in, however often it is used.
    pub session_secs: i64,
    /// How long a password-reset link works.
    pub reset_secs: i64,
    /// How long an email-change link works (decision 0047).
    pub email_change_secs: i64,
    /// Where the console is served (`https://app.example.com`): the base of the links we
    /// mail. Never taken from a request's Host header, which the sender controls.
    pub public_base_url: Option<String>,
    /// The privacy policy's current version (a setting); users who have not acknowledged it
    /// get a notice in the console and, once per version, an email (decision 0047).
    pub policy_version: Option<String>,
}

impl AccountsConfig {
    pub fn new(hasher: PasswordHasher, session_key: SessionKey) -> Self {
        AccountsConfig {
            hasher,
            session_key,
            previous_session_key: None,
            throttle: ThrottlePolicy::default(),
            invitation_secs: 7 * 86_400,
            session_secs: 30 * 86_400,
            reset_secs: 3_600,
            email_change_secs: 24 * 3_600,
            public_base_url: None,
            policy_version: None,
        }
    }

    /// The base of mailed links; the privacy policy's current version.
    pub fn with_public_base_url(mut self, url: Option<String>) -> Self {
        self.public_base_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    pub fn with_policy_version(mut self, version: Option<String>) -> Self {
        self.policy_version = version.filter(|v| !v.trim().is_empty());
        self
    }

    /// Also accepts access tokens signed with `key` (a key being retired).
    pub fn with_previous_session_key(mut self, key: Option<SessionKey>) -> Self {
        self.previous_session_key = key;
        self
    }

    /// The claims of an access token signed with the current key or the previous one.
    pub fn verify_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<super::AccessClaims, AccountError> {
        match (
            self.session_key.verify(token, now),
            &self.previous_session_key,
        ) {
            (Err(_), Some(previous)) => previous.verify(token, now),
            (result, _) => result,
        }
    }
}

/// A user as shown to the tenant's admins: never the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub id: UserId,
    pub email: Email,
    pub role: Role,
    pub created_at: i64,
    /// The user's own display name, when they gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The privacy-policy version the user last acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_seen: Option<String>,
}

pub(super) fn user_key(tenant: &TenantId, user: &UserId) -> Key {
    Key::new(tenant.partition(), format!("USER#{user}"))
}
pub(super) fn email_key(tenant: &TenantId, email: &Email) -> Key {
    Key::new(tenant.partition(), format!("EMAIL#{}", email.as_str()))
}

/// Splits `<prefix>.<tenant>.<rest...>` into the tenant and `n` further parts.
pub(super) fn split_token<'a>(
    token: &'a str,
    prefix: &str,
    n: usize,
) -> Result<(TenantId, Vec<&'a str>), AccountError> {
    if token.len() > 512 {
        return Err(AccountError::InvalidToken);
    }
    let mut parts = token.split('.');
    if parts.next() != Some(prefix) {
        return Err(AccountError::InvalidToken);
    }
    let tenant = parts
        .next()
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or(AccountError::InvalidToken)?;
    let rest: Vec<&str> = parts.collect();
    if rest.len() != n || rest.iter().any(|p| p.is_empty()) {
        return Err(AccountError::InvalidToken);
    }
    Ok((tenant, rest))
}

/// A user item as stored, password hash included: never leaves the accounts module.
pub(super) struct StoredUser {
    pub(super) id: UserId,
    pub(super) email: Email,
    pub(super) role: Role,
    pub(super) hash: String,
    pub(super) epoch: i64,
    pub(super) created_at: i64,
    pub(super) name: Option<String>,
    pub(super) policy_seen: Option<String>,
}

impl StoredUser {
    pub(super) fn from_item(item: &Item) -> Option<Self> {
        let sk = item.get_s(crate::store::SK)?;
        Some(StoredUser {
            id: UserId::parse(sk.strip_prefix("USER#")?).ok()?,
            email: Email::parse(item.get_s("email")?).ok()?,
            role: Role::parse(item.get_s("role")?).ok()?,
            hash: item.get_s("password_hash")?.to_owned(),
            epoch: item.get_n("session_epoch").unwrap_or(0),
            created_at: item.get_n("created_at").unwrap_or(0),
            name: item.get_s("display_name").map(str::to_owned),
            policy_seen: item.get_s("policy_seen").map(str::to_owned),
        })
    }
    pub(super) fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id.clone(),
            email: self.email.clone(),
            role: self.role,
            created_at: self.created_at,
            name: self.name.clone(),
            policy_seen: self.policy_seen.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Accounts {
    pub(super) store: Arc<dyn TableStore>,
    pub(super) tenants: TenantDirectory,
    pub(super) config: AccountsConfig,
    pub(super) throttle: SignInThrottle,
    pub(super) mailer: Option<Arc<dyn Mailer>>,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn TableStore>,
        tenants: TenantDirectory,
        config: AccountsConfig,
    ) -> Self {
        let throttle = SignInThrottle::new(store.clone(), config.throttle);
        Accounts {
            store,
            tenants,
            config,
            throttle,
            mailer: None,
        }
    }

    /// Invitations and password resets are emailed through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    pub(super) async fn user_by_id(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<StoredUser>, AccountError> {
        Ok(self
            .store
            .get(Table::Data, &user_key(tenant, user))
            .await?
            .as_ref()
            .and_then(StoredUser::from_item))
    }

    pub(super) async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Option<StoredUser>, AccountError> {
        let Some(index) = self
            .store
            .get(Table::Data, &email_key(tenant, email))
            .await?
        else {
            return Ok(None);
        };
        let Some(id) = index.get_s("user_id").and_then(|u| UserId::parse(u).ok()) else {
            return Ok(None);
        };
        self.user_by_id(tenant, &id).await
    }

    pub(super) async fn tenant_status(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<TenantStatus>, AccountError> {
        match self.tenants.profile(tenant).await {
            Ok(profile) => Ok(profile.map(|p| p.status)),
            Err(crate::tenant::TenantError::Store(e)) => Err(e.into()),
            Err(e) => Err(AccountError::Crypto(e.to_string())),
        }
    }

    /// Counts the attempt before its password is checked; refuses it when the account or
    /// the address is over its limit.
    pub(super) async fn count_attempt(
        &self,
        account: (&str, &str),
        source: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        self.throttle
            .begin(account, source, now)
            .await?
            .map_err(|wait| AccountError::Throttled {
                retry_after_secs: wait,
            })
    }
}

/// What the accounts tests share: a tenant on embedded adapters, and users joining it.
#[cfg(test)]
pub(super) mod fixture {
    use super::*;
    use crate::accounts::{OutboxMailer, Password, Principal, UserPrincipal};
    use crate::app::Platform;
    use crate::tenant::{RetentionDays, TenantName};

    pub(crate) const PW: &str = "correct horse battery";

    pub(crate) struct Fixture {
        pub(crate) _dir: tempfile::TempDir,
        pub(crate) platform: Platform,
        pub(crate) accounts: Accounts,
        pub(crate) outbox: Arc<OutboxMailer>,
        pub(crate) tenant: TenantId,
    }

    pub(crate) async fn fixture_with_cost(cost: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::embedded(dir.path()).unwrap();
        let outbox =
            Arc::new(OutboxMailer::new(dir.path().join("outbox"), "no-reply@localhost").unwrap());
        let config = AccountsConfig::new(
            PasswordHasher::new(cost).unwrap(),
            SessionKey::generate().unwrap(),
        );
        let accounts = Accounts::new(platform.store.clone(), platform.tenants.clone(), config)
            .with_mailer(outbox.clone());
        let tenant = platform
            .tenants
            .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        Fixture {
            _dir: dir,
            platform,
            accounts,
            outbox,
            tenant,
        }
    }

    pub(crate) async fn fixture() -> Fixture {
        fixture_with_cost(12).await
    }

    /// `inviter` invites `email` to the fixture's tenant as `role`.
    pub(crate) async fn invite_as(
        f: &Fixture,
        inviter: &Principal,
        email: &str,
        role: Role,
    ) -> Result<Invitation, AccountError> {
        f.accounts
            .invite(&f.tenant, inviter, Email::parse(email).unwrap(), role)
            .await
    }

    /// The platform (the operator) invites `email` as `role`.
    pub(crate) async fn invited(f: &Fixture, email: &str, role: Role) -> Invitation {
        invite_as(f, &Principal::Platform, email, role)
            .await
            .unwrap()
    }

    pub(crate) async fn user(f: &Fixture, email: &str, role: Role) -> SignedIn {
        let inv = invited(f, email, role).await;
        f.accounts
            .accept_invitation(&inv.token, &Password::new(PW).unwrap())
            .await
            .unwrap()
    }

    pub(crate) fn principal(s: &SignedIn, f: &Fixture) -> Principal {
        Principal::User(UserPrincipal {
            tenant: f.tenant.clone(),
            user: s.user.id.clone(),
            role: s.user.role,
            session: String::new(),
        })
    }
}
