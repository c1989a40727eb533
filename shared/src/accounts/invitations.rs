//! Invitations: how people join a tenant. An invitation is a single-use secret (stored only
//! as its hash, `INVITE#<sha256>`, with a TTL) that an admin sends to an email address with
//! a role; accepting it creates the user and signs them in, in one transaction.

use serde::Serialize;

use super::mailer::Mail;
use super::password::Password;
use super::service::{email_key, split_token, user_key, Accounts, SignedIn, StoredUser};
use super::{random_secret, sha256_hex, AccountError, Email, Principal, Role, UserId};
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, WriteOp, TTL_ATTR};
use crate::tenant::TenantStatus;

const INVITE_PREFIX: &str = "wpi1";
/// Where an invitation's link leads (under the console's base URL): the page that shows the
/// company and role and asks for a name and a password (decision 0073).
pub const INVITATION_PATH: &str = "/app/invitations/accept";

/// What the invitation page shows before it is accepted: never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationPreview {
    pub tenant: TenantId,
    /// The company's name, as its profile has it.
    pub company: String,
    pub email: Email,
    pub role: Role,
    pub expires_at: i64,
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

fn invite_key(tenant: &TenantId, secret: &str) -> Key {
    Key::new(tenant.partition(), format!("INVITE#{}", sha256_hex(secret)))
}

impl Accounts {
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
                        text: self.invitation_text(role, &token),
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

    /// The invitation mail: the console's page when its base URL is configured (the host is
    /// the configured one, never a request's), and the API call either way.
    fn invitation_text(&self, role: Role, token: &str) -> String {
        let days = self.config.invitation_secs / 86_400;
        let api = format!(
            "POST /auth/invitations/accept\n{{\"token\": \"{token}\", \"password\": \"...\"}}\n"
        );
        match &self.config.public_base_url {
            Some(base) => format!(
                "You have been invited to a Wappline account as {}.\n\n\
                 Accept within {days} days: open this link and choose your name and a password:\n\
                 {base}{INVITATION_PATH}?token={token}\n\n\
                 Programs using the API may accept it instead with:\n{api}",
                role.name()
            ),
            None => format!(
                "You have been invited to a Wappline account as {}.\n\n\
                 Accept within {days} days by choosing a password:\n{api}",
                role.name()
            ),
        }
    }

    /// What an invitation's page shows: the company, the address and the role. A forged,
    /// expired (the store hides it, decision 0004) or used token is `InvalidToken`; a
    /// suspended tenant's is `Suspended`. Reads only.
    pub async fn invitation(&self, token: &str) -> Result<InvitationPreview, AccountError> {
        let (tenant, rest) = split_token(token, INVITE_PREFIX, 1)?;
        let invite = self
            .store
            .get(Table::Data, &invite_key(&tenant, rest[0]))
            .await?
            .ok_or(AccountError::InvalidToken)?;
        let email = Email::parse(invite.get_s("email").unwrap_or_default())
            .map_err(|_| AccountError::InvalidToken)?;
        let role = Role::parse(invite.get_s("role").unwrap_or_default())
            .map_err(|_| AccountError::InvalidToken)?;
        let profile = match self.tenants.profile(&tenant).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(AccountError::InvalidToken),
            Err(crate::tenant::TenantError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(AccountError::Crypto(e.to_string())),
        };
        if profile.status == TenantStatus::Suspended {
            return Err(AccountError::Suspended);
        }
        Ok(InvitationPreview {
            tenant,
            company: profile.name,
            email,
            role,
            expires_at: invite.get_n(TTL_ATTR).unwrap_or(0),
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
        self.accept(token, password, None).await
    }

    /// Accepts an invitation as [`Accounts::accept_invitation`] does, the user's display name
    /// set in the same transaction (the console's page asks for it). A name that is not one
    /// (empty, too long, control characters) is `Invalid` and nothing changes.
    pub async fn accept_invitation_named(
        &self,
        token: &str,
        password: &Password,
        name: &str,
    ) -> Result<SignedIn, AccountError> {
        let name = super::profile::display_name(name)?;
        self.accept(token, password, Some(name)).await
    }

    async fn accept(
        &self,
        token: &str,
        password: &Password,
        name: Option<String>,
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
        let mut user_item = Item::new(&user_key(&tenant, &user))
            .with("email", email.as_str())
            .with("role", role.name())
            .with("password_hash", hash.as_str())
            .with("session_epoch", 0)
            .with("created_at", now)
            .with("password_changed_at", now);
        if let Some(name) = &name {
            user_item = user_item.with("display_name", name.as_str());
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::service::fixture::*;

    #[tokio::test]
    async fn an_invitation_is_emailed_single_use_and_signs_the_user_in() {
        let f = fixture().await;
        let inv = invited(&f, "Owner@Acme.test", Role::Owner).await;
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
            invite_as(&f, &Principal::Platform, "owner@acme.test", Role::Viewer).await,
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
        let owner_inv = invited(&f, "o@acme.test", Role::Owner).await;
        let viewer_inv = invited(&f, "v@acme.test", Role::Viewer).await;
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
        let inv = invited(&f, "late@acme.test", Role::Agent).await;
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
        assert!(matches!(
            invite_as(&f, &principal(&admin, &f), "x@acme.test", Role::Owner).await,
            Err(AccountError::Forbidden(_))
        ));
        assert!(
            invite_as(&f, &principal(&admin, &f), "y@acme.test", Role::Admin)
                .await
                .is_ok()
        );
        assert!(matches!(
            invite_as(&f, &principal(&agent, &f), "z@acme.test", Role::Viewer).await,
            Err(AccountError::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn the_mail_links_to_the_page_which_previews_and_accepts_with_a_name() {
        let mut f = fixture().await;
        f.accounts.config.public_base_url = Some("https://console.example".into());
        let inv = invited(&f, "new@acme.test", Role::Admin).await;
        let mail = f.outbox.delivered().unwrap().pop().unwrap();
        let link = format!(
            "https://console.example{INVITATION_PATH}?token={}",
            inv.token
        );
        assert!(mail.contains(&link), "{mail}");
        let seen = f.accounts.invitation(&inv.token).await.unwrap();
        assert_eq!(seen.tenant, f.tenant);
        assert_eq!(seen.email.as_str(), "new@acme.test");
        assert_eq!(seen.role, Role::Admin);
        assert!(!seen.company.is_empty());
        // A bad name changes nothing: the invitation still works.
        assert!(matches!(
            f.accounts
                .accept_invitation_named(&inv.token, &Password::new(PW).unwrap(), " ")
                .await,
            Err(AccountError::Invalid(_))
        ));
        let signed = f
            .accounts
            .accept_invitation_named(&inv.token, &Password::new(PW).unwrap(), " Nina Ray ")
            .await
            .unwrap();
        let me = f
            .accounts
            .user(&f.tenant, &signed.user.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(me.name.as_deref(), Some("Nina Ray"));
        // Used: the page reads it as invalid, as it does a forged one.
        for bad in [inv.token.as_str(), "wpi1.nope.nope", "junk"] {
            assert!(matches!(
                f.accounts.invitation(bad).await,
                Err(AccountError::InvalidToken)
            ));
        }
    }
}
