//! Accounts and access: a tenant's people (users with roles), how they sign in (bcrypt
//! passwords, signed access tokens, revocable refresh tokens), and what each role may do.
//!
//! Everything a user owns lives in the tenant's own partition (`T#<tenant>`), so erasing the
//! tenant erases its users and sessions with the rest; sign-in names the tenant (the
//! "account id") together with the email, so an email address is only ever looked up inside
//! one tenant and nothing tells whether it is known in another.
//!
//! | item                         | sort key                          | holds                         |
//! |------------------------------|-----------------------------------|-------------------------------|
//! | user                         | `USER#<user id>`                  | email, role, bcrypt hash, epoch |
//! | email index                  | `EMAIL#<email>`                   | the user id                   |
//! | invitation (TTL)             | `INVITE#<sha256 of the secret>`   | email, role, who invited      |
//! | session (TTL)                | `SESSION#<user id>#<session id>`  | sha256 of the refresh secret  |
//! | password reset (TTL)         | `RESET#<sha256 of the secret>`    | the user id                   |
//! | email change (TTL)           | `EMAILCHANGE#<sha256 of secret>`  | user id, old and new email    |
//! | known device (TTL)           | `DEVICE#<user id>#<keyed hash>`   | when first seen               |
//!
//! Failed sign-ins are counted in the dedupe table under hashed keys (see [`throttle`]).

pub mod form_token;
pub mod invitations;
pub mod mailer;
pub mod password;
pub mod password_reset;
pub mod policy;
pub mod profile;
pub mod security;
pub mod service;
pub mod sessions;
pub mod throttle;
pub mod token;
pub mod users;

use std::fmt;

use serde::Serialize;

use crate::ids::TenantId;

pub use form_token::FormBinding;
pub use mailer::{Mail, MailError, Mailer, OutboxMailer, SesMailer};
pub use password::{Password, PasswordHasher, MIN_BCRYPT_COST};
pub use security::SignInDevice;
pub use service::{Accounts, AccountsConfig, SignedIn, UserInfo};
pub use throttle::SignInThrottle;
pub use token::{AccessClaims, SessionKey};

/// A user id: `usr_` followed by 20 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

const USER_ID_PREFIX: &str = "usr_";
const USER_ID_HEX: usize = 20;

impl UserId {
    pub fn parse(s: &str) -> Result<Self, AccountError> {
        let ok = s.strip_prefix(USER_ID_PREFIX).is_some_and(|h| {
            h.len() == USER_ID_HEX && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if ok {
            Ok(UserId(s.to_owned()))
        } else {
            Err(AccountError::Invalid(format!(
                "user id: must be {USER_ID_PREFIX:?} followed by {USER_ID_HEX} lowercase hex digits"
            )))
        }
    }

    pub fn generate() -> Result<Self, AccountError> {
        Ok(UserId(format!(
            "{USER_ID_PREFIX}{}",
            random_hex(USER_ID_HEX / 2)?
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lower-cased, so one mailbox is one user within a tenant.
/// Checked for shape only (one `@`, a dotted domain, no spaces or control characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, AccountError> {
        let s = s.trim().to_ascii_lowercase();
        let bad =
            || AccountError::Invalid("email: must be an address like name@example.com".into());
        if s.len() > 254
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#')
        {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if local.is_empty() || local.len() > 64 || domain.contains('@') || !labels_ok {
            return Err(bad());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role within one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Agent,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Agent, Role::Viewer];

    pub fn parse(s: &str) -> Result<Self, AccountError> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            "viewer" => Ok(Role::Viewer),
            _ => Err(AccountError::Invalid(
                "role: must be owner, admin, agent or viewer".into(),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }

    /// The permission matrix (docs/access.md shows it as a table). Deny unless listed.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => !matches!(permission, EraseAccount),
            Role::Agent => matches!(permission, ReadSettings),
            Role::Viewer => matches!(permission, ReadSettings | ReadUsage),
        }
    }

    /// Whether a user of this role may give `target` to someone (invite with it, or change
    /// a user to or from it). Only owners make or unmake owners.
    pub fn may_assign(self, target: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => target != Role::Owner,
            Role::Agent | Role::Viewer => false,
        }
    }
}

/// What an admin-API request needs. Each route names exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See the tenant's profile and connected channels (never secrets).
    ReadSettings,
    /// Connect and disconnect channels; issue Bitrix24 connection codes.
    ManageChannels,
    /// Change retention and other settings.
    ChangeSettings,
    /// Request, list and download exports of the tenant's data.
    Export,
    /// Request the erasure of one contact.
    EraseContact,
    /// Request or cancel the erasure of the whole account.
    EraseAccount,
    /// Invite, list, re-role and remove users.
    ManageUsers,
    /// Create, list and revoke API keys.
    ManageApiKeys,
    /// Read the month's usage and the plan's quotas.
    ReadUsage,
    /// Read the audit log.
    ReadAudit,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::ReadSettings,
        Permission::ManageChannels,
        Permission::ChangeSettings,
        Permission::Export,
        Permission::EraseContact,
        Permission::EraseAccount,
        Permission::ManageUsers,
        Permission::ManageApiKeys,
        Permission::ReadUsage,
        Permission::ReadAudit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::ReadSettings => "read_settings",
            Permission::ManageChannels => "manage_channels",
            Permission::ChangeSettings => "change_settings",
            Permission::Export => "export",
            Permission::EraseContact => "erase_contact",
            Permission::EraseAccount => "erase_account",
            Permission::ManageUsers => "manage_users",
            Permission::ManageApiKeys => "manage_api_keys",
            Permission::ReadUsage => "read_usage",
            Permission::ReadAudit => "read_audit",
        }
    }
}

/// Who is making a request, as established by authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator of the whole platform (its own token): every tenant, every permission,
    /// plus the platform routes (create, suspend, plan).
    Platform,
    /// A signed-in user of one tenant.
    User(UserPrincipal),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrincipal {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: Role,
    pub session: String,
}

impl Principal {
    /// The name written to the audit log for changes this principal makes.
    pub fn actor(&self) -> String {
        match self {
            Principal::Platform => "platform_admin".to_owned(),
            Principal::User(u) => format!("user:{}", u.user),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Bad input; the message says what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Wrong email or password, or no such user: the same answer for all three.
    #[error("invalid email or password")]
    BadCredentials,
    /// A token that is malformed, forged, expired, used or revoked.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Too many failed sign-ins for this account or address.
    #[error("too many failed sign-ins; retry after {retry_after_secs} s")]
    Throttled { retry_after_secs: i64 },
    #[error("this account is suspended")]
    Suspended,
    #[error("no such user")]
    UserNotFound,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("email is not configured")]
    MailNotConfigured,
    #[error("mail not sent: {0}")]
    Mail(#[from] MailError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("crypto failure: {0}")]
    Crypto(String),
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> Result<String, AccountError> {
    let mut b = vec![0u8; n];
    crate::crypto::random_bytes(&mut b).map_err(|e| AccountError::Crypto(e.to_string()))?;
    Ok(hex::encode(b))
}

/// A 256-bit random secret, base64url without padding (43 characters).
pub(crate) fn random_secret() -> Result<String, AccountError> {
    use base64::Engine;
    let mut b = [0u8; 32];
    crate::crypto::random_bytes(&mut b).map_err(|e| AccountError::Crypto(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// SHA-256 as lowercase hex: how one-time secrets are stored and looked up.
pub(crate) fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_junk_refused() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "a@b@example.com",
            "a#b@example.com",
            "alice@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn user_ids_round_trip_and_junk_is_refused() {
        let id = UserId::generate().unwrap();
        assert_eq!(UserId::parse(id.as_str()).unwrap(), id);
        for bad in [
            "",
            "usr_",
            "usr_ABCDEF0123456789abcd",
            "usr_0123",
            "tn_0123456789abcdef0123",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_permission_matrix() {
        use Permission::*;
        // Owners may do everything; admins everything but erasing the account.
        for p in Permission::ALL {
            assert!(Role::Owner.allows(p));
            assert_eq!(Role::Admin.allows(p), p != EraseAccount, "{p:?}");
        }
        let agent: Vec<_> = Permission::ALL
            .into_iter()
            .filter(|p| Role::Agent.allows(*p))
            .collect();
        assert_eq!(agent, vec![ReadSettings]);
        let viewer: Vec<_> = Permission::ALL
            .into_iter()
            .filter(|p| Role::Viewer.allows(*p))
            .collect();
        assert_eq!(viewer, vec![ReadSettings, ReadUsage]);
    }

    #[test]
    fn only_owners_make_owners() {
        assert!(Role::Owner.may_assign(Role::Owner));
        assert!(!Role::Admin.may_assign(Role::Owner));
        assert!(Role::Admin.may_assign(Role::Admin));
        assert!(Role::Admin.may_assign(Role::Viewer));
        assert!(!Role::Agent.may_assign(Role::Viewer));
        assert!(!Role::Viewer.may_assign(Role::Viewer));
    }
}
