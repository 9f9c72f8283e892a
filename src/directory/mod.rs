//! The directory: users, groups and role assignments.
//!
//! Every multi-record change (create a user with its unique UPN, rename,
//! delete with memberships and role assignments) is one atomic store
//! [`Txn`], so the UPN index can never point at a missing user or the other
//! way round, even under concurrent requests.

pub mod authority;
pub mod roles;

use crate::ids::{GroupId, RoleAssignmentId, UserId};
use crate::store::{Durability, Order, Precondition, Store, StoreError, Txn, decode, encode};
use roles::BuiltinRole;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use time::OffsetDateTime;

pub const USERS: &str = "user";
pub const UPN_INDEX: &str = "user_upn";
pub const PASSWORDS: &str = "password";
pub const GROUPS: &str = "group";
pub const GROUP_MEMBERS: &str = "group_member";
/// The reverse of [`GROUP_MEMBERS`] (`{user}/{group}`), written in the same
/// transactions, so a user's groups are one prefix read on every sign-in.
pub const USER_GROUPS: &str = "user_group";
pub const ROLE_ASSIGNMENTS: &str = "role_assignment";
pub const MFA_REQUIREMENTS: &str = "mfa_requirement";

/// Graph `strongAuthenticationRequirements.perUserMfaState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PerUserMfaState {
    Disabled,
    Enabled,
    /// Every sign-in of the user must satisfy multifactor authentication.
    Enforced,
}

/// How many times an optimistic update retries after losing a race.
const CAS_RETRIES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub account_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    /// Bumped by "sign out everywhere": sessions and grants minted under an
    /// older epoch are dead.
    pub session_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub display_name: String,
    pub description: Option<String>,
    pub mail_nickname: Option<String>,
    pub security_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub id: RoleAssignmentId,
    pub role: BuiltinRole,
    pub principal_id: UserId,
    pub directory_scope_id: String,
}

/// Fields for a new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub account_enabled: bool,
    /// argon2id PHC string, already hashed by the caller.
    pub password_hash: Option<String>,
}

/// A partial update; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<Option<String>>,
    pub account_enabled: Option<bool>,
    pub password_hash: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("another object with the same value for property userPrincipalName already exists")]
    UpnTaken,
    #[error("invalid value for property {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the principal already holds this role")]
    AlreadyAssigned,
    #[error("the user is already a member of this group")]
    AlreadyMember,
    #[error("too many concurrent changes to this object; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("random source failed")]
    Random,
}

impl DirectoryError {
    pub fn code(&self) -> &'static str {
        match self {
            DirectoryError::NotFound(_) => "directory.not_found",
            DirectoryError::UpnTaken => "directory.upn_taken",
            DirectoryError::Invalid { .. } => "directory.invalid",
            DirectoryError::AlreadyAssigned => "directory.already_assigned",
            DirectoryError::AlreadyMember => "directory.already_member",
            DirectoryError::Contended => "directory.contended",
            DirectoryError::Store(e) => e.code(),
            DirectoryError::Random => "directory.random",
        }
    }
}

impl From<crate::ids::RandomError> for DirectoryError {
    fn from(_: crate::ids::RandomError) -> Self {
        DirectoryError::Random
    }
}

type Result<T> = std::result::Result<T, DirectoryError>;

/// Normalises a UPN for uniqueness: UPNs compare case-insensitively.
fn upn_key(upn: &str) -> String {
    upn.trim().to_lowercase()
}

fn validate_upn(upn: &str) -> Result<()> {
    let invalid = |m: &str| DirectoryError::Invalid {
        field: "userPrincipalName",
        message: m.to_owned(),
    };
    if upn.is_empty() || upn.len() > 113 {
        return Err(invalid("must be 1–113 characters"));
    }
    if upn
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '?' || c == '#')
    {
        return Err(invalid(
            "must not contain spaces, control characters, '/', '?' or '#'",
        ));
    }
    Ok(())
}

fn validate_display_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 256 {
        return Err(DirectoryError::Invalid {
            field: "displayName",
            message: "must be 1–256 characters".to_owned(),
        });
    }
    Ok(())
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Directory operations over a [`Store`].
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    /// Told when a change ends sessions (back-channel logout).
    backchannel: Option<crate::logout::Backchannel>,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            backchannel: None,
        }
    }

    /// Queues back-channel logout tokens whenever a change here ends
    /// sessions (disabling, a password reset, sign out everywhere, delete).
    pub fn with_backchannel(mut self, backchannel: crate::logout::Backchannel) -> Self {
        self.backchannel = Some(backchannel);
        self
    }

    async fn sessions_ended(
        &self,
        id: UserId,
        which: crate::logout::Ended<'_>,
        now: OffsetDateTime,
    ) {
        if let Some(b) = &self.backchannel {
            b.ended(id, which, unix(now)).await;
        }
    }

    pub async fn create_user(&self, new: NewUser, now: OffsetDateTime) -> Result<User> {
        let id = UserId::generate()?;
        self.create_user_with_id(id, new, now).await
    }

    /// Creates a user with a chosen id; fails with `UpnTaken` if the UPN (or
    /// the id) exists. Used by first start to create `admin` exactly once.
    pub async fn create_user_with_id(
        &self,
        id: UserId,
        new: NewUser,
        now: OffsetDateTime,
    ) -> Result<User> {
        validate_upn(&new.user_principal_name)?;
        validate_display_name(&new.display_name)?;
        let user = User {
            id,
            user_principal_name: new.user_principal_name.trim().to_owned(),
            display_name: new.display_name,
            mail: new.mail,
            account_enabled: new.account_enabled,
            created_date_time: now,
            session_epoch: 0,
        };
        let key = id.to_string();
        let upn = upn_key(&user.user_principal_name);
        let mut txn = Txn::new(Durability::Durable)
            .require(UPN_INDEX, upn.clone(), Precondition::Absent)
            .require(USERS, key.clone(), Precondition::Absent)
            .put(USERS, key.clone(), encode(&user)?, None)
            .put(UPN_INDEX, upn, encode(&id)?, None);
        if let Some(hash) = new.password_hash {
            txn = txn.put(PASSWORDS, key, hash.into_bytes(), None);
        }
        if self.store.commit(txn, unix(now)).await? {
            Ok(user)
        } else {
            Err(DirectoryError::UpnTaken)
        }
    }

    pub async fn user(&self, id: UserId, now: OffsetDateTime) -> Result<Option<User>> {
        Ok(self.user_versioned(id, now).await?.map(|(u, _)| u))
    }

    async fn user_versioned(&self, id: UserId, now: OffsetDateTime) -> Result<Option<(User, u64)>> {
        match self.store.get(USERS, &id.to_string(), unix(now)).await? {
            Some(r) => Ok(Some((decode(USERS, &r.value)?, r.version))),
            None => Ok(None),
        }
    }

    pub async fn user_by_upn(&self, upn: &str, now: OffsetDateTime) -> Result<Option<User>> {
        let Some(r) = self.store.get(UPN_INDEX, &upn_key(upn), unix(now)).await? else {
            return Ok(None);
        };
        let id: UserId = decode(UPN_INDEX, &r.value)?;
        self.user(id, now).await
    }

    /// Resolves Graph's `{id | userPrincipalName}` path segment.
    pub async fn find_user(&self, id_or_upn: &str, now: OffsetDateTime) -> Result<Option<User>> {
        match UserId::parse(id_or_upn) {
            Some(id) => self.user(id, now).await,
            None => self.user_by_upn(id_or_upn, now).await,
        }
    }

    /// Every user, by userPrincipalName: for tests and tools, never a
    /// request path (which pages with [`Directory::users_page`] or
    /// [`Directory::users_by_upn`]).
    pub async fn list_users(&self, now: OffsetDateTime) -> Result<Vec<User>> {
        let mut users = self
            .store
            .scan(USERS, unix(now))
            .await?
            .into_iter()
            .map(|(_, r)| decode::<User>(USERS, &r.value))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
        Ok(users)
    }

    /// One page of users in object-id order, strictly after the id `after`:
    /// the cost of the page, never of the directory.
    pub async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, User)>> {
        self.page(USERS, after, limit, now).await
    }

    /// One page of users in userPrincipalName order whose (lower-cased)
    /// userPrincipalName starts with `prefix`, strictly after the index key
    /// `after`: read through the UPN index, the cost of the page.
    pub async fn users_by_upn(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, User)>> {
        let entries = self
            .store
            .scan_page(
                UPN_INDEX,
                &upn_key(prefix),
                after,
                Order::Ascending,
                limit,
                unix(now),
            )
            .await?;
        let mut users = Vec::with_capacity(entries.len());
        for (key, r) in entries {
            let id: UserId = decode(UPN_INDEX, &r.value)?;
            // An index entry whose user is gone (deleted meanwhile) is skipped.
            if let Some(user) = self.user(id, now).await? {
                users.push((key, user));
            }
        }
        Ok(users)
    }

    /// One page of groups in object-id order (as [`Directory::users_page`]).
    pub async fn groups_page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, Group)>> {
        self.page(GROUPS, after, limit, now).await
    }

    /// One page of role assignments in id order (as
    /// [`Directory::users_page`]). The table's per-principal markers sort
    /// after every id (`unique/…`): a page ends where they begin.
    pub async fn role_assignments_page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, RoleAssignment)>> {
        let rows = self
            .store
            .scan_page(
                ROLE_ASSIGNMENTS,
                "",
                after,
                Order::Ascending,
                limit,
                unix(now),
            )
            .await?;
        rows.into_iter()
            .take_while(|(key, _)| !key.starts_with("unique/"))
            .map(|(key, r)| Ok((key, decode(ROLE_ASSIGNMENTS, &r.value)?)))
            .collect()
    }

    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        table: crate::store::Table,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, T)>> {
        self.store
            .scan_page(table, "", after, Order::Ascending, limit, unix(now))
            .await?
            .into_iter()
            .map(|(key, r)| Ok((key, decode(table, &r.value)?)))
            .collect()
    }

    /// Applies `patch` atomically (optimistic concurrency on the user record;
    /// a UPN change moves the index entry in the same transaction).
    pub async fn update_user(
        &self,
        id: UserId,
        patch: UserPatch,
        now: OffsetDateTime,
    ) -> Result<User> {
        if let Some(upn) = &patch.user_principal_name {
            validate_upn(upn)?;
        }
        if let Some(name) = &patch.display_name {
            validate_display_name(name)?;
        }
        for _ in 0..CAS_RETRIES {
            let (mut user, version) = self
                .user_versioned(id, now)
                .await?
                .ok_or(DirectoryError::NotFound("user"))?;
            let epoch_before = user.session_epoch;
            let key = id.to_string();
            let mut txn = Txn::new(Durability::Durable).require(
                USERS,
                key.clone(),
                Precondition::Version(version),
            );
            if let Some(upn) = &patch.user_principal_name {
                let (old, new) = (upn_key(&user.user_principal_name), upn_key(upn));
                if old != new {
                    txn = txn
                        .require(UPN_INDEX, new.clone(), Precondition::Absent)
                        .delete(UPN_INDEX, old)
                        .put(UPN_INDEX, new, encode(&id)?, None);
                }
                user.user_principal_name = upn.trim().to_owned();
            }
            if let Some(name) = &patch.display_name {
                user.display_name = name.clone();
            }
            if let Some(mail) = &patch.mail {
                user.mail = mail.clone();
            }
            if let Some(enabled) = patch.account_enabled {
                if user.account_enabled && !enabled {
                    // Disabling ends every session and grant at once.
                    user.session_epoch += 1;
                }
                user.account_enabled = enabled;
            }
            if let Some(hash) = &patch.password_hash {
                // A password set by an administrator ends every session and
                // refresh token: whoever held the old one is out.
                user.session_epoch += 1;
                txn = txn.put(PASSWORDS, key.clone(), hash.clone().into_bytes(), None);
            }
            let ends_sessions = user.session_epoch != epoch_before;
            txn = txn.put(USERS, key, encode(&user)?, None);
            if self.store.commit(txn, unix(now)).await? {
                if ends_sessions {
                    let ended = crate::logout::Ended::EpochBefore(user.session_epoch);
                    self.sessions_ended(id, ended, now).await;
                }
                return Ok(user);
            }
            // Either the user changed under us (retry) or the new UPN is taken.
            if let Some(upn) = &patch.user_principal_name {
                if let Some(other) = self.user_by_upn(upn, now).await? {
                    if other.id != id {
                        return Err(DirectoryError::UpnTaken);
                    }
                }
            }
        }
        Err(DirectoryError::Contended)
    }

    /// Ends every session and refresh token of the user (revokeSignInSessions).
    pub async fn revoke_sessions(&self, id: UserId, now: OffsetDateTime) -> Result<User> {
        for _ in 0..CAS_RETRIES {
            let (mut user, version) = self
                .user_versioned(id, now)
                .await?
                .ok_or(DirectoryError::NotFound("user"))?;
            user.session_epoch += 1;
            if self
                .store
                .compare_and_swap(
                    USERS,
                    &id.to_string(),
                    version,
                    Some(encode(&user)?),
                    None,
                    Durability::Durable,
                    unix(now),
                )
                .await?
                .is_some()
            {
                let ended = crate::logout::Ended::EpochBefore(user.session_epoch);
                self.sessions_ended(id, ended, now).await;
                return Ok(user);
            }
        }
        Err(DirectoryError::Contended)
    }

    /// Deletes the user with its UPN, password, memberships and role
    /// assignments in one transaction.
    pub async fn delete_user(&self, id: UserId, now: OffsetDateTime) -> Result<User> {
        for _ in 0..CAS_RETRIES {
            let (user, version) = self
                .user_versioned(id, now)
                .await?
                .ok_or(DirectoryError::NotFound("user"))?;
            let key = id.to_string();
            let mut txn = Txn::new(Durability::Durable)
                .require(USERS, key.clone(), Precondition::Version(version))
                .delete(USERS, key.clone())
                .delete(UPN_INDEX, upn_key(&user.user_principal_name))
                .delete(PASSWORDS, key.clone())
                .delete(MFA_REQUIREMENTS, key.clone());
            for (k, _) in self
                .store
                .scan_prefix(USER_GROUPS, &format!("{key}/"), unix(now))
                .await?
            {
                if let Some(group) = k.strip_prefix(&format!("{key}/")) {
                    txn = txn.delete(GROUP_MEMBERS, format!("{group}/{key}"));
                }
                txn = txn.delete(USER_GROUPS, k);
            }
            for a in self.role_assignments(now).await? {
                if a.principal_id == id {
                    // The marker too: `roles_of` reads the markers, so a
                    // leftover one would keep the role alive.
                    txn = txn.delete(ROLE_ASSIGNMENTS, a.id.to_string()).delete(
                        ROLE_ASSIGNMENTS,
                        format!("unique/{id}/{}", a.role.template_id()),
                    );
                }
            }
            if self.store.commit(txn, unix(now)).await? {
                self.sessions_ended(id, crate::logout::Ended::All, now)
                    .await;
                return Ok(user);
            }
        }
        Err(DirectoryError::Contended)
    }

    pub async fn mfa_state(&self, id: UserId, now: OffsetDateTime) -> Result<PerUserMfaState> {
        match self
            .store
            .get(MFA_REQUIREMENTS, &id.to_string(), unix(now))
            .await?
        {
            Some(r) => Ok(decode(MFA_REQUIREMENTS, &r.value)?),
            None => Ok(PerUserMfaState::Disabled),
        }
    }

    pub async fn set_mfa_state(
        &self,
        id: UserId,
        state: PerUserMfaState,
        now: OffsetDateTime,
    ) -> Result<()> {
        let u = self
            .store
            .get(USERS, &id.to_string(), unix(now))
            .await?
            .ok_or(DirectoryError::NotFound("user"))?;
        let txn = Txn::new(Durability::Durable)
            .require(USERS, id.to_string(), Precondition::Version(u.version))
            .put(MFA_REQUIREMENTS, id.to_string(), encode(&state)?, None);
        if self.store.commit(txn, unix(now)).await? {
            Ok(())
        } else {
            Err(DirectoryError::Contended)
        }
    }

    /// Removes the user's password; `true` if there was one.
    pub async fn remove_password(&self, id: UserId, now: OffsetDateTime) -> Result<bool> {
        Ok(self
            .store
            .delete(PASSWORDS, &id.to_string(), Durability::Durable, unix(now))
            .await?)
    }

    pub async fn password_hash(&self, id: UserId, now: OffsetDateTime) -> Result<Option<String>> {
        Ok(self
            .store
            .get(PASSWORDS, &id.to_string(), unix(now))
            .await?
            .and_then(|r| String::from_utf8(r.value).ok()))
    }

    // --- groups -------------------------------------------------------------

    pub async fn create_group(
        &self,
        display_name: String,
        description: Option<String>,
        mail_nickname: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Group> {
        if display_name.trim().is_empty() || display_name.len() > 256 {
            return Err(DirectoryError::Invalid {
                field: "displayName",
                message: "must be 1–256 characters".to_owned(),
            });
        }
        let group = Group {
            id: GroupId::generate()?,
            display_name,
            description,
            mail_nickname,
            security_enabled: true,
            created_date_time: now,
        };
        self.store
            .put(
                GROUPS,
                &group.id.to_string(),
                encode(&group)?,
                None,
                Durability::Durable,
            )
            .await?;
        Ok(group)
    }

    pub async fn group(&self, id: GroupId, now: OffsetDateTime) -> Result<Option<Group>> {
        match self.store.get(GROUPS, &id.to_string(), unix(now)).await? {
            Some(r) => Ok(Some(decode(GROUPS, &r.value)?)),
            None => Ok(None),
        }
    }

    pub async fn list_groups(&self, now: OffsetDateTime) -> Result<Vec<Group>> {
        let mut groups = self
            .store
            .scan(GROUPS, unix(now))
            .await?
            .into_iter()
            .map(|(_, r)| decode::<Group>(GROUPS, &r.value))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        groups.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        Ok(groups)
    }

    /// Adds a member; both must exist (checked inside the transaction).
    pub async fn add_member(
        &self,
        group: GroupId,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<()> {
        let g = self
            .store
            .get(GROUPS, &group.to_string(), unix(now))
            .await?
            .ok_or(DirectoryError::NotFound("group"))?;
        let u = self
            .store
            .get(USERS, &user.to_string(), unix(now))
            .await?
            .ok_or(DirectoryError::NotFound("user"))?;
        let key = format!("{group}/{user}");
        let txn = Txn::new(Durability::Durable)
            .require(GROUPS, group.to_string(), Precondition::Version(g.version))
            .require(USERS, user.to_string(), Precondition::Version(u.version))
            .require(GROUP_MEMBERS, key.clone(), Precondition::Absent)
            .put(GROUP_MEMBERS, key.clone(), Vec::new(), None)
            .put(USER_GROUPS, format!("{user}/{group}"), Vec::new(), None);
        if self.store.commit(txn, unix(now)).await? {
            return Ok(());
        }
        if self
            .store
            .get(GROUP_MEMBERS, &key, unix(now))
            .await?
            .is_some()
        {
            Err(DirectoryError::AlreadyMember)
        } else {
            Err(DirectoryError::Contended)
        }
    }

    pub async fn remove_member(
        &self,
        group: GroupId,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<()> {
        let key = format!("{group}/{user}");
        let Some(membership) = self.store.get(GROUP_MEMBERS, &key, unix(now)).await? else {
            return Err(DirectoryError::NotFound("membership"));
        };
        let txn = Txn::new(Durability::Durable)
            .require(
                GROUP_MEMBERS,
                key.clone(),
                Precondition::Version(membership.version),
            )
            .delete(GROUP_MEMBERS, key)
            .delete(USER_GROUPS, format!("{user}/{group}"));
        if self.store.commit(txn, unix(now)).await? {
            Ok(())
        } else {
            Err(DirectoryError::NotFound("membership"))
        }
    }

    pub async fn members(&self, group: GroupId, now: OffsetDateTime) -> Result<Vec<User>> {
        let prefix = format!("{group}/");
        let mut out = Vec::new();
        for (k, _) in self
            .store
            .scan_prefix(GROUP_MEMBERS, &prefix, unix(now))
            .await?
        {
            if let Some(uid) = k.strip_prefix(&prefix).and_then(UserId::parse) {
                if let Some(u) = self.user(uid, now).await? {
                    out.push(u);
                }
            }
        }
        Ok(out)
    }

    pub async fn groups_of(&self, user: UserId, now: OffsetDateTime) -> Result<BTreeSet<GroupId>> {
        let prefix = format!("{user}/");
        Ok(self
            .store
            .scan_prefix(USER_GROUPS, &prefix, unix(now))
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix).and_then(GroupId::parse))
            .collect())
    }

    // --- roles --------------------------------------------------------------

    pub async fn assign_role(
        &self,
        role: BuiltinRole,
        principal: UserId,
        now: OffsetDateTime,
    ) -> Result<RoleAssignment> {
        let u = self
            .store
            .get(USERS, &principal.to_string(), unix(now))
            .await?
            .ok_or(DirectoryError::NotFound("principal"))?;
        if self.roles_of(principal, now).await?.contains(&role) {
            return Err(DirectoryError::AlreadyAssigned);
        }
        let assignment = RoleAssignment {
            id: RoleAssignmentId::generate()?,
            role,
            principal_id: principal,
            directory_scope_id: "/".to_owned(),
        };
        // One role per principal per definition: a unique marker key makes
        // concurrent duplicate assignments impossible.
        let unique = format!("unique/{principal}/{}", role.template_id());
        let txn = Txn::new(Durability::Durable)
            .require(
                USERS,
                principal.to_string(),
                Precondition::Version(u.version),
            )
            .require(ROLE_ASSIGNMENTS, unique.clone(), Precondition::Absent)
            .put(ROLE_ASSIGNMENTS, unique, encode(&assignment.id)?, None)
            .put(
                ROLE_ASSIGNMENTS,
                assignment.id.to_string(),
                encode(&assignment)?,
                None,
            );
        if self.store.commit(txn, unix(now)).await? {
            Ok(assignment)
        } else {
            Err(DirectoryError::AlreadyAssigned)
        }
    }

    pub async fn role_assignments(&self, now: OffsetDateTime) -> Result<Vec<RoleAssignment>> {
        self.store
            .scan(ROLE_ASSIGNMENTS, unix(now))
            .await?
            .into_iter()
            .filter(|(k, _)| !k.starts_with("unique/"))
            .map(|(_, r)| {
                decode::<RoleAssignment>(ROLE_ASSIGNMENTS, &r.value).map_err(DirectoryError::from)
            })
            .collect()
    }

    pub async fn role_assignment(
        &self,
        id: RoleAssignmentId,
        now: OffsetDateTime,
    ) -> Result<Option<RoleAssignment>> {
        match self
            .store
            .get(ROLE_ASSIGNMENTS, &id.to_string(), unix(now))
            .await?
        {
            Some(r) => Ok(Some(decode(ROLE_ASSIGNMENTS, &r.value)?)),
            None => Ok(None),
        }
    }

    pub async fn delete_role_assignment(
        &self,
        id: RoleAssignmentId,
        now: OffsetDateTime,
    ) -> Result<RoleAssignment> {
        let assignment = self
            .role_assignment(id, now)
            .await?
            .ok_or(DirectoryError::NotFound("role assignment"))?;
        let unique = format!(
            "unique/{}/{}",
            assignment.principal_id,
            assignment.role.template_id()
        );
        let txn = Txn::new(Durability::Durable)
            .delete(ROLE_ASSIGNMENTS, id.to_string())
            .delete(ROLE_ASSIGNMENTS, unique);
        self.store.commit(txn, unix(now)).await?;
        Ok(assignment)
    }

    pub async fn roles_of(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<BTreeSet<BuiltinRole>> {
        // The unique markers double as a per-principal index.
        let prefix = format!("unique/{user}/");
        Ok(self
            .store
            .scan_prefix(ROLE_ASSIGNMENTS, &prefix, unix(now))
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix).and_then(BuiltinRole::resolve))
            .collect())
    }
}

/// Marks that first-start bootstrap has run on this store.
const BOOTSTRAP_MARKER: (&str, &str) = ("meta", "bootstrap");

impl Directory {
    /// On an empty store, creates the first administrator, its Global
    /// Administrator role and (optionally) its password in ONE transaction
    /// guarded by a marker, so instances starting together on one shared
    /// store create exactly one `admin`, and a crash leaves either all of it
    /// or none. `None` if bootstrap already happened.
    pub async fn bootstrap_admin(
        &self,
        upn: &str,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Option<User>> {
        let user = User {
            id: UserId::generate()?,
            user_principal_name: upn.to_owned(),
            display_name: "Administrator".to_owned(),
            mail: None,
            account_enabled: true,
            created_date_time: now,
            session_epoch: 0,
        };
        let role = BuiltinRole::GlobalAdministrator;
        let assignment = RoleAssignment {
            id: RoleAssignmentId::generate()?,
            role,
            principal_id: user.id,
            directory_scope_id: "/".to_owned(),
        };
        let key = user.id.to_string();
        let mut txn = Txn::new(Durability::Durable)
            .require(BOOTSTRAP_MARKER.0, BOOTSTRAP_MARKER.1, Precondition::Absent)
            .require(UPN_INDEX, upn_key(upn), Precondition::Absent)
            .put(
                BOOTSTRAP_MARKER.0,
                BOOTSTRAP_MARKER.1,
                encode(&user.id)?,
                None,
            )
            .put(USERS, key.clone(), encode(&user)?, None)
            .put(UPN_INDEX, upn_key(upn), encode(&user.id)?, None)
            .put(
                ROLE_ASSIGNMENTS,
                format!("unique/{}/{}", user.id, role.template_id()),
                encode(&assignment.id)?,
                None,
            )
            .put(
                ROLE_ASSIGNMENTS,
                assignment.id.to_string(),
                encode(&assignment)?,
                None,
            );
        if let Some(hash) = password_hash {
            txn = txn.put(PASSWORDS, key, hash.into_bytes(), None);
        }
        if self.store.commit(txn, unix(now)).await? {
            Ok(Some(user))
        } else {
            Ok(None)
        }
    }
}
