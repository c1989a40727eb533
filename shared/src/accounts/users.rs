//! A tenant's users: listing them (also for exports), changing a role and removing a user,
//! both refused when they would leave the tenant without an owner (checked against a
//! version item, `USERS`, in the same transaction, so concurrent changes cannot race past it).

use super::service::{email_key, user_key, Accounts, StoredUser, UserInfo};
use super::{AccountError, Principal, Role, UserId};
use crate::ids::TenantId;
use crate::store::{Condition, Key, Query, StoreError, Table, TableStore, Update, WriteOp};

/// What [`Accounts::set_role`] and [`Accounts::remove_user`] changed, for the audit log.
pub struct UserChange {
    pub user: UserId,
    pub from: Role,
    pub to: Option<Role>,
}

/// Versioned by every change that can take an owner away (see `keep_an_owner`).
fn users_version_key(tenant: &TenantId) -> Key {
    Key::new(tenant.partition(), "USERS")
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

impl Accounts {
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

    pub(super) fn may_manage(
        actor: &Principal,
        from: Role,
        to: Option<Role>,
    ) -> Result<(), AccountError> {
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
        self.forget_devices(tenant, user).await?;
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
    use crate::accounts::service::fixture::*;

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
}
