//! The accounts service: invitations, sign-in, sessions, passwords and user management.

use std::sync::Arc;

use serde::Serialize;
use subtle::ConstantTimeEq;

use super::mailer::{Mail, Mailer};
use super::password::{Password, PasswordHasher};
use super::throttle::{SignInThrottle, ThrottlePolicy};
use super::token::{AccessClaims, SessionKey, ACCESS_TOKEN_SECS};
use super::{
    random_hex, random_secret, sha256_hex, AccountError, Email, Principal, Role, UserId,
    UserPrincipal,
};
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{
    Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp, TTL_ATTR,
};
use crate::tenant::{TenantDirectory, TenantStatus};

const INVITE_PREFIX: &str = "wpi1";
const REFRESH_PREFIX: &str = "wpr1";
const RESET_PREFIX: &str = "wps1";

/// Lifetimes and policies; the defaults are what production runs with.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    pub hasher: PasswordHasher,
    pub session_key: SessionKey,
    pub throttle: ThrottlePolicy,
    /// How long an invitation can be accepted.
    pub invitation_secs: i64,
    /// How long a session (its refresh token) lasts from sign-in, however often it is used.
    pub session_secs: i64,
    /// How long a password-reset link works.
    pub reset_secs: i64,
}

impl AccountsConfig {
    pub fn new(hasher: PasswordHasher, session_key: SessionKey) -> Self {
        AccountsConfig {
            hasher,
            session_key,
            throttle: ThrottlePolicy::default(),
            invitation_secs: 7 * 86_400,
            session_secs: 30 * 86_400,
            reset_secs: 3_600,
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
}

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

/// A new invitation: `token` is shown once.
#[derive(Clone, Debug, Serialize)]
pub struct Invitation {
    /// Names the invitation to list or withdraw it (the first 16 hex digits of the hash of
    /// its secret; the secret itself is never stored).
    pub id: String,
    pub email: Email,
    pub role: Role,
    pub expires_at: i64,
    pub token: String,
    /// Whether it was also emailed to the invitee (a mailer is configured).
    pub emailed: bool,
}

/// An invitation as its tenant's admins see it: never its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingInvitation {
    pub id: String,
    pub email: Email,
    pub role: Role,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl PendingInvitation {
    fn from_item(item: &Item) -> Option<Self> {
        let hash = item.get_s(crate::store::SK)?.strip_prefix("INVITE#")?;
        Some(PendingInvitation {
            id: hash.get(..INVITATION_ID_LEN)?.to_owned(),
            email: Email::parse(item.get_s("email")?).ok()?,
            role: Role::parse(item.get_s("role")?).ok()?,
            invited_by: item.get_s("invited_by").unwrap_or_default().to_owned(),
            created_at: item.get_n("created_at").unwrap_or(0),
            expires_at: item.get_n(TTL_ATTR).unwrap_or(0),
        })
    }
}

/// Hex digits of the secret's hash that name an invitation (64 bits: unique within a
/// tenant's handful of pending invitations, and useless for guessing the secret).
const INVITATION_ID_LEN: usize = 16;

fn invitation_id(secret: &str) -> String {
    sha256_hex(secret)[..INVITATION_ID_LEN].to_owned()
}

/// What [`Accounts::set_role`] and [`Accounts::remove_user`] changed, for the audit log.
pub struct UserChange {
    pub user: UserId,
    pub from: Role,
    pub to: Option<Role>,
}

fn user_key(tenant: &TenantId, user: &UserId) -> Key {
    Key::new(tenant.partition(), format!("USER#{user}"))
}
fn email_key(tenant: &TenantId, email: &Email) -> Key {
    Key::new(tenant.partition(), format!("EMAIL#{}", email.as_str()))
}
fn invite_key(tenant: &TenantId, secret: &str) -> Key {
    Key::new(tenant.partition(), format!("INVITE#{}", sha256_hex(secret)))
}
fn reset_key(tenant: &TenantId, secret: &str) -> Key {
    Key::new(tenant.partition(), format!("RESET#{}", sha256_hex(secret)))
}
/// Versioned by every change that can take an owner away (see `keep_an_owner`).
fn users_version_key(tenant: &TenantId) -> Key {
    Key::new(tenant.partition(), "USERS")
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

/// Splits `<prefix>.<tenant>.<rest...>` into the tenant and `n` further parts.
fn split_token<'a>(
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

struct StoredUser {
    id: UserId,
    email: Email,
    role: Role,
    hash: String,
    epoch: i64,
    created_at: i64,
}

impl StoredUser {
    fn from_item(item: &Item) -> Option<Self> {
        let sk = item.get_s(crate::store::SK)?;
        Some(StoredUser {
            id: UserId::parse(sk.strip_prefix("USER#")?).ok()?,
            email: Email::parse(item.get_s("email")?).ok()?,
            role: Role::parse(item.get_s("role")?).ok()?,
            hash: item.get_s("password_hash")?.to_owned(),
            epoch: item.get_n("session_epoch").unwrap_or(0),
            created_at: item.get_n("created_at").unwrap_or(0),
        })
    }
    fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id.clone(),
            email: self.email.clone(),
            role: self.role,
            created_at: self.created_at,
        }
    }
}

/// The tenant's users, in id order (never password hashes). Also read by exports.
pub async fn list_users(
    store: &dyn TableStore,
    tenant: &TenantId,
) -> Result<Vec<UserInfo>, AccountError> {
    let mut out = Vec::new();
    let mut query = Query::partition(tenant.partition())
        .begins_with("USER#")
        .limit(200);
    loop {
        let page = store.query(Table::Data, &query).await?;
        out.extend(
            page.items
                .iter()
                .filter_map(StoredUser::from_item)
                .map(|u| u.info()),
        );
        match page.next {
            Some(next) => query = query.start_after(Some(next)),
            None => return Ok(out),
        }
    }
}

#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn TableStore>,
    tenants: TenantDirectory,
    config: AccountsConfig,
    throttle: SignInThrottle,
    mailer: Option<Arc<dyn Mailer>>,
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

    async fn user_by_id(
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

    async fn user_by_email(
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

    async fn tenant_status(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, AccountError> {
        match self.tenants.profile(tenant).await {
            Ok(profile) => Ok(profile.map(|p| p.status)),
            Err(crate::tenant::TenantError::Store(e)) => Err(e.into()),
            Err(e) => Err(AccountError::Crypto(e.to_string())),
        }
    }

    /// Refuses the attempt while the account or the address is over its failure limit.
    async fn not_throttled(
        &self,
        account: (&str, &str),
        source: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        self.throttle
            .check(account, source, now)
            .await?
            .map_err(|wait| AccountError::Throttled {
                retry_after_secs: wait,
            })
    }

    /// Invites `email` to the tenant with `role`. The inviter must be allowed to give that
    /// role; an email that already has a user in this tenant is a conflict.
    pub async fn invite(
        &self,
        tenant: &TenantId,
        inviter: &Principal,
        email: Email,
        role: Role,
    ) -> Result<Invitation, AccountError> {
        if let Principal::User(u) = inviter {
            if !u.role.may_assign(role) {
                return Err(AccountError::Forbidden(format!(
                    "a {} may not invite a {}",
                    u.role.name(),
                    role.name()
                )));
            }
        }
        if self.user_by_email(tenant, &email).await?.is_some() {
            return Err(AccountError::Conflict(
                "a user with this email already exists".into(),
            ));
        }
        let secret = random_secret()?;
        let now = now_secs();
        let expires_at = now + self.config.invitation_secs;
        let item = Item::new(&invite_key(tenant, &secret))
            .with("email", email.as_str())
            .with("role", role.name())
            .with("invited_by", inviter.actor())
            .with("created_at", now)
            .with(TTL_ATTR, expires_at);
        self.store
            .put(Table::Data, item, Some(Condition::NotExists))
            .await?;
        let token = format!("{INVITE_PREFIX}.{tenant}.{secret}");
        let emailed = match &self.mailer {
            Some(mailer) => {
                let sent = mailer
                    .send(&Mail {
                        to: email.clone(),
                        subject: "You are invited to Wappline".into(),
                        text: format!(
                            "You have been invited to a Wappline account as {}.\n\n\
                             Accept within {} days by choosing a password:\n\
                             POST /auth/invitations/accept\n\
                             {{\"token\": \"{token}\", \"password\": \"...\"}}\n",
                            role.name(),
                            self.config.invitation_secs / 86_400
                        ),
                    })
                    .await;
                if let Err(e) = sent {
                    // Nobody has seen this token: withdraw it rather than leave it valid.
                    self.store
                        .delete(Table::Data, &invite_key(tenant, &secret), None)
                        .await?;
                    return Err(e.into());
                }
                true
            }
            None => false,
        };
        Ok(Invitation {
            id: invitation_id(&secret),
            email,
            role,
            expires_at,
            token,
            emailed,
        })
    }

    /// The tenant's invitations not yet accepted nor expired, oldest first.
    pub async fn pending_invitations(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<PendingInvitation>, AccountError> {
        let mut out = Vec::new();
        let mut query = Query::partition(tenant.partition())
            .begins_with("INVITE#")
            .limit(200);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            out.extend(page.items.iter().filter_map(PendingInvitation::from_item));
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => break,
            }
        }
        out.sort_by_key(|i| i.created_at);
        Ok(out)
    }

    /// Withdraws a pending invitation; its token stops working. The inviter must be allowed
    /// to give the invitation's role.
    pub async fn withdraw_invitation(
        &self,
        tenant: &TenantId,
        actor: &Principal,
        id: &str,
    ) -> Result<PendingInvitation, AccountError> {
        let well_formed = id.len() == INVITATION_ID_LEN
            && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let not_found = || AccountError::NotFound("no such invitation".into());
        if !well_formed {
            return Err(not_found());
        }
        let page = self
            .store
            .query(
                Table::Data,
                &Query::partition(tenant.partition())
                    .begins_with(format!("INVITE#{id}"))
                    .limit(2),
            )
            .await?;
        let [item] = page.items.as_slice() else {
            return Err(not_found());
        };
        let invitation = PendingInvitation::from_item(item).ok_or_else(not_found)?;
        Self::may_manage(actor, invitation.role, None)?;
        let key = item.key().ok_or_else(not_found)?;
        self.store
            .delete(Table::Data, &key, Some(Condition::Exists))
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => not_found(),
                e => e.into(),
            })?;
        Ok(invitation)
    }

    /// Accepts an invitation: the invitation is used up, the user created with `password`,
    /// and signed in; all at once or not at all.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: &Password,
    ) -> Result<SignedIn, AccountError> {
        let (tenant, rest) = split_token(token, INVITE_PREFIX, 1)?;
        let key = invite_key(&tenant, rest[0]);
        let invite = self
            .store
            .get(Table::Data, &key)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        let email = Email::parse(invite.get_s("email").unwrap_or_default())
            .map_err(|_| AccountError::InvalidToken)?;
        let role = Role::parse(invite.get_s("role").unwrap_or_default())
            .map_err(|_| AccountError::InvalidToken)?;
        match self.tenant_status(&tenant).await? {
            None => return Err(AccountError::InvalidToken),
            Some(TenantStatus::Suspended) => return Err(AccountError::Suspended),
            Some(TenantStatus::Active) => {}
        }
        let hash = self.config.hasher.hash(password).await?;
        let user = UserId::generate()?;
        let now = now_secs();
        let user_item = Item::new(&user_key(&tenant, &user))
            .with("email", email.as_str())
            .with("role", role.name())
            .with("password_hash", hash.as_str())
            .with("session_epoch", 0)
            .with("created_at", now)
            .with("password_changed_at", now);
        let result = self
            .store
            .transact_write(vec![
                WriteOp::Delete {
                    table: Table::Data,
                    key,
                    condition: Some(Condition::Exists),
                },
                WriteOp::Put {
                    table: Table::Data,
                    item: Item::new(&email_key(&tenant, &email)).with("user_id", user.as_str()),
                    condition: Some(Condition::NotExists),
                },
                WriteOp::Put {
                    table: Table::Data,
                    item: user_item.clone(),
                    condition: Some(Condition::NotExists),
                },
            ])
            .await;
        match result {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { op_index: Some(1) }) => {
                return Err(AccountError::Conflict(
                    "a user with this email already exists".into(),
                ))
            }
            Err(StoreError::ConditionFailed { .. }) => return Err(AccountError::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        let stored = StoredUser::from_item(&user_item).ok_or(AccountError::InvalidToken)?;
        self.open_session(&tenant, &stored).await
    }

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
        self.not_throttled(account, source, now).await?;
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
            self.throttle.record_failure(account, source, now).await?;
            return Err(AccountError::BadCredentials);
        };
        self.throttle.clear_account(account, now).await?;
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

    async fn open_session(
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
        let claims = self.config.session_key.verify(access_token, now_secs())?;
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
    /// means the token was copied.
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
            tracing::warn!(tenant = %tenant, user = %user_id, "rotated refresh token presented again; session ended");
            self.store.delete(Table::Data, &key, None).await?;
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
        match self
            .store
            .update(
                Table::Data,
                &key,
                Update::new().set("refresh_sha256", sha256_hex(&next)),
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
    async fn revoke_all(&self, tenant: &TenantId, user: &UserId) -> Result<(), AccountError> {
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
        self.not_throttled(account, source, now).await?;
        if !self.config.hasher.verify(current, Some(&user.hash)).await {
            self.throttle.record_failure(account, source, now).await?;
            return Err(AccountError::BadCredentials);
        }
        self.set_password(&principal.tenant, &user, new).await
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
        self.revoke_all(tenant, &user.id).await
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
        self.not_throttled(account, source, now).await?;
        self.throttle.record_failure(account, source, now).await?;
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
        mailer
            .send(&Mail {
                to: email,
                subject: "Reset your Wappline password".into(),
                text: format!(
                    "Someone asked to reset the password of this Wappline account.\n\
                     If it was you, within {} minutes:\n\
                     POST /auth/password-reset/confirm\n\
                     {{\"token\": \"{token}\", \"new_password\": \"...\"}}\n\
                     If it was not you, ignore this message.\n",
                    self.config.reset_secs / 60
                ),
            })
            .await?;
        Ok(())
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
        self.throttle
            .clear_account((&tenant_s, user.email.as_str()), now_secs())
            .await?;
        Ok(())
    }

    /// The tenant's users, in id order.
    pub async fn list_users(&self, tenant: &TenantId) -> Result<Vec<UserInfo>, AccountError> {
        list_users(self.store.as_ref(), tenant).await
    }

    pub async fn user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<UserInfo>, AccountError> {
        Ok(self.user_by_id(tenant, user).await?.map(|u| u.info()))
    }

    /// Refuses a change that would leave the tenant with no owner. Returns the write that
    /// must go into the change's transaction: it bumps the tenant's user-list version only if
    /// nobody changed a role or removed a user since the list was read, so two owners demoting
    /// each other at once cannot both succeed.
    async fn keep_an_owner(
        &self,
        tenant: &TenantId,
        leaving: &UserId,
    ) -> Result<WriteOp, AccountError> {
        let key = users_version_key(tenant);
        let version = self
            .store
            .get(Table::Data, &key)
            .await?
            .and_then(|i| i.get_n("version"));
        let others = self
            .list_users(tenant)
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Owner && &u.id != leaving)
            .count();
        if others == 0 {
            return Err(AccountError::Conflict(
                "the account must keep at least one owner".into(),
            ));
        }
        Ok(WriteOp::Update {
            table: Table::Data,
            key,
            update: Update::new().add("version", 1),
            condition: Some(match version {
                Some(v) => Condition::Equals("version".into(), v.into()),
                None => Condition::AttrNotExists("version".into()),
            }),
        })
    }

    fn may_manage(actor: &Principal, from: Role, to: Option<Role>) -> Result<(), AccountError> {
        let Principal::User(u) = actor else {
            return Ok(());
        };
        let allowed = u.role.may_assign(from) && to.is_none_or(|r| u.role.may_assign(r));
        if allowed {
            Ok(())
        } else {
            Err(AccountError::Forbidden(format!(
                "a {} may not change a {}'s access",
                u.role.name(),
                from.name()
            )))
        }
    }

    /// Changes a user's role. Takes effect on the user's next request (roles are read live).
    pub async fn set_role(
        &self,
        tenant: &TenantId,
        actor: &Principal,
        user: &UserId,
        role: Role,
    ) -> Result<UserChange, AccountError> {
        let current = self
            .user_by_id(tenant, user)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        Self::may_manage(actor, current.role, Some(role))?;
        let mut ops = vec![WriteOp::Update {
            table: Table::Data,
            key: user_key(tenant, user),
            update: Update::new().set("role", role.name()),
            condition: Some(Condition::Equals("role".into(), current.role.name().into())),
        }];
        if current.role == Role::Owner && role != Role::Owner {
            ops.push(self.keep_an_owner(tenant, user).await?);
        }
        self.store.transact_write(ops).await.map_err(|e| match e {
            StoreError::ConditionFailed { .. } => {
                AccountError::Conflict("the user changed meanwhile; retry".into())
            }
            e => e.into(),
        })?;
        Ok(UserChange {
            user: user.clone(),
            from: current.role,
            to: Some(role),
        })
    }

    /// Removes a user: the user, the email index and every session go.
    pub async fn remove_user(
        &self,
        tenant: &TenantId,
        actor: &Principal,
        user: &UserId,
    ) -> Result<UserChange, AccountError> {
        let current = self
            .user_by_id(tenant, user)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        Self::may_manage(actor, current.role, None)?;
        let mut ops = vec![
            WriteOp::Delete {
                table: Table::Data,
                key: user_key(tenant, user),
                condition: Some(Condition::Exists),
            },
            WriteOp::Delete {
                table: Table::Data,
                key: email_key(tenant, &current.email),
                condition: None,
            },
        ];
        if current.role == Role::Owner {
            ops.push(self.keep_an_owner(tenant, user).await?);
        }
        self.store.transact_write(ops).await.map_err(|e| match e {
            StoreError::ConditionFailed { op_index: Some(0) } => AccountError::UserNotFound,
            StoreError::ConditionFailed { .. } => {
                AccountError::Conflict("the users changed meanwhile; retry".into())
            }
            e => e.into(),
        })?;
        self.revoke_all(tenant, user).await?;
        Ok(UserChange {
            user: user.clone(),
            from: current.role,
            to: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::OutboxMailer;
    use crate::app::Platform;
    use crate::tenant::{RetentionDays, TenantName};

    const PW: &str = "correct horse battery";

    struct Fixture {
        _dir: tempfile::TempDir,
        platform: Platform,
        accounts: Accounts,
        outbox: Arc<OutboxMailer>,
        tenant: TenantId,
    }

    async fn fixture_with_cost(cost: u32) -> Fixture {
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

    async fn fixture() -> Fixture {
        fixture_with_cost(12).await
    }

    async fn user(f: &Fixture, email: &str, role: Role) -> SignedIn {
        let inv = f
            .accounts
            .invite(
                &f.tenant,
                &Principal::Platform,
                Email::parse(email).unwrap(),
                role,
            )
            .await
            .unwrap();
        f.accounts
            .accept_invitation(&inv.token, &Password::new(PW).unwrap())
            .await
            .unwrap()
    }

    fn principal(s: &SignedIn, f: &Fixture) -> Principal {
        Principal::User(UserPrincipal {
            tenant: f.tenant.clone(),
            user: s.user.id.clone(),
            role: s.user.role,
            session: String::new(),
        })
    }

    #[tokio::test]
    async fn an_invitation_is_emailed_single_use_and_signs_the_user_in() {
        let f = fixture().await;
        let inv = f
            .accounts
            .invite(
                &f.tenant,
                &Principal::Platform,
                Email::parse("Owner@Acme.test").unwrap(),
                Role::Owner,
            )
            .await
            .unwrap();
        assert!(inv.emailed);
        let mail = &f.outbox.delivered().unwrap()[0];
        assert!(mail.contains("To: owner@acme.test"));
        assert!(mail.contains(&inv.token));
        let signed = f
            .accounts
            .accept_invitation(&inv.token, &Password::new(PW).unwrap())
            .await
            .unwrap();
        assert_eq!(signed.user.role, Role::Owner);
        let p = f.accounts.authenticate(&signed.access_token).await.unwrap();
        assert_eq!(p.tenant, f.tenant);
        assert_eq!(p.role, Role::Owner);
        // Single use.
        assert!(matches!(
            f.accounts
                .accept_invitation(&inv.token, &Password::new(PW).unwrap())
                .await,
            Err(AccountError::InvalidToken)
        ));
        // The same email cannot be invited twice.
        assert!(matches!(
            f.accounts
                .invite(
                    &f.tenant,
                    &Principal::Platform,
                    Email::parse("owner@acme.test").unwrap(),
                    Role::Viewer
                )
                .await,
            Err(AccountError::Conflict(_))
        ));
        // Stored: a bcrypt hash, never the password; the invitation only as a hash.
        let page = f
            .platform
            .store
            .query(Table::Data, &Query::partition(f.tenant.partition()))
            .await
            .unwrap();
        let raw = format!("{:?}", page.items);
        assert!(!raw.contains(PW));
        assert!(raw.contains("$2b$12$"));
        let secret = inv.token.rsplit('.').next().unwrap();
        assert!(!raw.contains(secret));
    }

    #[tokio::test]
    async fn pending_invitations_are_listed_and_withdrawn_by_who_may_give_their_role() {
        let f = fixture().await;
        let admin = user(&f, "admin@acme.test", Role::Admin).await;
        let e = |s: &str| Email::parse(s).unwrap();
        let owner_inv = f
            .accounts
            .invite(
                &f.tenant,
                &Principal::Platform,
                e("o@acme.test"),
                Role::Owner,
            )
            .await
            .unwrap();
        let viewer_inv = f
            .accounts
            .invite(
                &f.tenant,
                &Principal::Platform,
                e("v@acme.test"),
                Role::Viewer,
            )
            .await
            .unwrap();
        let pending = f.accounts.pending_invitations(&f.tenant).await.unwrap();
        let mut ids: Vec<_> = pending.iter().map(|p| p.id.as_str()).collect();
        ids.sort();
        let mut expected = vec![owner_inv.id.as_str(), viewer_inv.id.as_str()];
        expected.sort();
        assert_eq!(ids, expected);
        // An admin may not withdraw an owner's invitation, but may a viewer's.
        assert!(matches!(
            f.accounts
                .withdraw_invitation(&f.tenant, &principal(&admin, &f), &owner_inv.id)
                .await,
            Err(AccountError::Forbidden(_))
        ));
        f.accounts
            .withdraw_invitation(&f.tenant, &principal(&admin, &f), &viewer_inv.id)
            .await
            .unwrap();
        assert!(matches!(
            f.accounts
                .accept_invitation(&viewer_inv.token, &Password::new(PW).unwrap())
                .await,
            Err(AccountError::InvalidToken)
        ));
        for bad in [viewer_inv.id.as_str(), "zz", "", "0123456789abcdef0"] {
            assert!(matches!(
                f.accounts
                    .withdraw_invitation(&f.tenant, &Principal::Platform, bad)
                    .await,
                Err(AccountError::NotFound(_))
            ));
        }
        assert_eq!(
            f.accounts
                .pending_invitations(&f.tenant)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn an_expired_invitation_is_refused() {
        let mut f = fixture().await;
        f.accounts.config.invitation_secs = -1;
        let inv = f
            .accounts
            .invite(
                &f.tenant,
                &Principal::Platform,
                Email::parse("late@acme.test").unwrap(),
                Role::Agent,
            )
            .await
            .unwrap();
        assert!(matches!(
            f.accounts
                .accept_invitation(&inv.token, &Password::new(PW).unwrap())
                .await,
            Err(AccountError::InvalidToken)
        ));
    }

    #[tokio::test]
    async fn admins_cannot_make_owners_and_agents_cannot_invite() {
        let f = fixture().await;
        let admin = user(&f, "admin@acme.test", Role::Admin).await;
        let agent = user(&f, "agent@acme.test", Role::Agent).await;
        let e = |s: &str| Email::parse(s).unwrap();
        assert!(matches!(
            f.accounts
                .invite(
                    &f.tenant,
                    &principal(&admin, &f),
                    e("x@acme.test"),
                    Role::Owner
                )
                .await,
            Err(AccountError::Forbidden(_))
        ));
        assert!(f
            .accounts
            .invite(
                &f.tenant,
                &principal(&admin, &f),
                e("y@acme.test"),
                Role::Admin
            )
            .await
            .is_ok());
        assert!(matches!(
            f.accounts
                .invite(
                    &f.tenant,
                    &principal(&agent, &f),
                    e("z@acme.test"),
                    Role::Viewer
                )
                .await,
            Err(AccountError::Forbidden(_))
        ));
    }

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
    async fn the_last_owner_cannot_leave_and_removed_users_lose_access() {
        let f = fixture().await;
        let owner = user(&f, "owner@acme.test", Role::Owner).await;
        let agent = user(&f, "agent@acme.test", Role::Agent).await;
        assert!(matches!(
            f.accounts
                .set_role(&f.tenant, &Principal::Platform, &owner.user.id, Role::Admin)
                .await,
            Err(AccountError::Conflict(_))
        ));
        assert!(matches!(
            f.accounts
                .remove_user(&f.tenant, &Principal::Platform, &owner.user.id)
                .await,
            Err(AccountError::Conflict(_))
        ));
        // Role changes apply to live tokens.
        f.accounts
            .set_role(
                &f.tenant,
                &principal(&owner, &f),
                &agent.user.id,
                Role::Viewer,
            )
            .await
            .unwrap();
        let p = f.accounts.authenticate(&agent.access_token).await.unwrap();
        assert_eq!(p.role, Role::Viewer);
        f.accounts
            .remove_user(&f.tenant, &principal(&owner, &f), &agent.user.id)
            .await
            .unwrap();
        assert!(f.accounts.authenticate(&agent.access_token).await.is_err());
        let users = f.accounts.list_users(&f.tenant).await.unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].email.as_str(), "owner@acme.test");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
        for round in 0..3 {
            let f = fixture().await;
            let a = user(&f, &format!("a{round}@acme.test"), Role::Owner).await;
            let b = user(&f, &format!("b{round}@acme.test"), Role::Owner).await;
            let (pa, pb) = (principal(&a, &f), principal(&b, &f));
            let (ra, rb) = tokio::join!(
                f.accounts.set_role(&f.tenant, &pa, &b.user.id, Role::Admin),
                f.accounts.set_role(&f.tenant, &pb, &a.user.id, Role::Admin),
            );
            assert_eq!(
                ra.is_ok() as u8 + rb.is_ok() as u8,
                1,
                "round {round}: exactly one demotion may win"
            );
            for r in [ra, rb].into_iter().filter_map(Result::err) {
                assert!(matches!(r, AccountError::Conflict(_)), "{r}");
            }
            let owners = f
                .accounts
                .list_users(&f.tenant)
                .await
                .unwrap()
                .into_iter()
                .filter(|u| u.role == Role::Owner)
                .count();
            assert_eq!(owners, 1);
        }
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
