//! Stored conditional-access objects: policies, named locations and custom
//! authentication strengths, kept as the Graph JSON they were written in
//! (so fields Gatepass does not interpret survive a round trip).
//!
//! Every sign-in evaluates the whole set, so [`CaObjects::policy_set`] keeps
//! the typed set in memory, keyed by the version of one *generation*
//! record. Every write here rewrites that record in the same transaction
//! as the object, so one point read per sign-in tells whether the cached
//! set is current, on this instance and on every other instance sharing
//! the store.

use crate::store::{Durability, Precondition, Store, StoreError, Txn, decode, encode};
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};

/// `includeUsers` / `excludeUsers` values that name no single user.
const USER_KEYWORDS: [&str; 3] = ["All", "None", "GuestsOrExternalUsers"];

/// A policy named a user by a `userPrincipalName` that no user has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no user has the userPrincipalName {name:?}; name users by object id or by an existing userPrincipalName"
)]
pub struct UnknownUser {
    /// `conditions.users.includeUsers` or `conditions.users.excludeUsers`.
    pub field: &'static str,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Unknown(#[from] UnknownUser),
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
}

/// Rewrites every user a policy names by `userPrincipalName` (in
/// `conditions.users.includeUsers` and `excludeUsers`) to that user's
/// object id, *when the policy is written*. Live evaluation matches users by
/// id only, so renaming a user can never make them inherit another user's
/// inclusion or exclusion. Object ids and the keywords (`All`, `None`,
/// `GuestsOrExternalUsers`) are kept as they are.
pub async fn resolve_user_names(
    policy: &mut Value,
    directory: &crate::directory::Directory,
    now: time::OffsetDateTime,
) -> Result<(), ResolveError> {
    for (member, field) in [
        ("includeUsers", "conditions.users.includeUsers"),
        ("excludeUsers", "conditions.users.excludeUsers"),
    ] {
        let Some(entries) = policy
            .pointer_mut(&format!("/conditions/users/{member}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for entry in entries.iter_mut() {
            let Some(name) = entry.as_str() else { continue };
            if USER_KEYWORDS.contains(&name) || crate::ids::UserId::parse(name).is_some() {
                continue;
            }
            let user = directory
                .user_by_upn(name, now)
                .await?
                .ok_or_else(|| UnknownUser {
                    field,
                    name: name.to_owned(),
                })?;
            *entry = Value::String(user.id.to_string());
        }
    }
    Ok(())
}

/// The record whose version changes with every conditional-access write.
const GENERATION: &str = "ca_generation";
const GENERATION_KEY: &str = "current";

/// The three kinds of object, each its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    Policy,
    NamedLocation,
    Strength,
}

impl CaKind {
    pub fn table(self) -> &'static str {
        match self {
            CaKind::Policy => "ca_policy",
            CaKind::NamedLocation => "ca_named_location",
            CaKind::Strength => "ca_strength",
        }
    }
}

/// Store access for conditional-access objects.
#[derive(Clone)]
pub struct CaObjects {
    store: Arc<dyn Store>,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The typed set as of one version of the generation record (`None`: no
/// conditional-access write yet).
#[derive(Clone)]
struct Cached {
    generation: Option<u64>,
    set: Arc<PolicySet>,
}

impl CaObjects {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// A durable transaction that starts with the generation bump; the
    /// caller adds the object's write.
    fn bump_generation() -> Txn {
        Txn::new(Durability::Durable).put(GENERATION, GENERATION_KEY, Vec::new(), None)
    }

    pub async fn list(&self, kind: CaKind, now: i64) -> Result<Vec<Value>, StoreError> {
        self.store
            .scan(kind.table(), now)
            .await?
            .into_iter()
            .map(|(_, r)| decode::<Value>(kind.table(), &r.value))
            .collect()
    }

    pub async fn get(&self, kind: CaKind, id: &str, now: i64) -> Result<Option<Value>, StoreError> {
        match self.store.get(kind.table(), id, now).await? {
            Some(r) => Ok(Some(decode(kind.table(), &r.value)?)),
            None => Ok(None),
        }
    }

    pub async fn put(&self, kind: CaKind, id: &str, value: &Value) -> Result<(), StoreError> {
        let txn = Self::bump_generation().put(kind.table(), id, encode(value)?, None);
        // No preconditions, so the commit's clock is never consulted.
        self.store.commit(txn, 0).await.map(|_| ())
    }

    /// The object and its version, for [`CaObjects::replace`].
    pub async fn get_versioned(
        &self,
        kind: CaKind,
        id: &str,
        now: i64,
    ) -> Result<Option<(Value, u64)>, StoreError> {
        match self.store.get(kind.table(), id, now).await? {
            Some(r) => Ok(Some((decode(kind.table(), &r.value)?, r.version))),
            None => Ok(None),
        }
    }

    /// Writes the object only if it is still at `version` (read with
    /// [`CaObjects::get_versioned`]); `false` if someone wrote or deleted
    /// it in between — read again and redo the change, or a concurrent
    /// edit (a new restriction, say) would be lost.
    pub async fn replace(
        &self,
        kind: CaKind,
        id: &str,
        value: &Value,
        version: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let txn = Self::bump_generation()
            .require(kind.table(), id, Precondition::Version(version))
            .put(kind.table(), id, encode(value)?, None);
        self.store.commit(txn, now).await
    }

    /// Creates only if absent; `false` if the id exists.
    pub async fn insert(
        &self,
        kind: CaKind,
        id: &str,
        value: &Value,
        now: i64,
    ) -> Result<bool, StoreError> {
        let txn = Self::bump_generation()
            .require(kind.table(), id, Precondition::Absent)
            .put(kind.table(), id, encode(value)?, None);
        self.store.commit(txn, now).await
    }

    /// Deletes the object; `true` if it existed.
    pub async fn delete(&self, kind: CaKind, id: &str, now: i64) -> Result<bool, StoreError> {
        loop {
            let Some(current) = self.store.get(kind.table(), id, now).await? else {
                return Ok(false);
            };
            let txn = Self::bump_generation()
                .require(kind.table(), id, Precondition::Version(current.version))
                .delete(kind.table(), id);
            if self.store.commit(txn, now).await? {
                return Ok(true);
            }
            // Changed in between: look again.
        }
    }
}

/// Everything an evaluation needs, typed.
pub struct PolicySet {
    pub policies: Vec<super::conditional_access::Policy>,
    pub strengths: super::conditional_access::StrengthSet,
    pub locations: Vec<super::conditional_access::NamedLocation>,
}

impl CaObjects {
    /// Every stored object, typed; from memory while no conditional-access
    /// write has happened since it was loaded (one point read to know).
    pub async fn policy_set(&self, now: i64) -> Result<Arc<PolicySet>, StoreError> {
        let generation = self
            .store
            .get(GENERATION, GENERATION_KEY, now)
            .await?
            .map(|r| r.version);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(cached) = cached.filter(|c| c.generation == generation) {
            return Ok(cached.set);
        }
        // Loaded after reading the generation, so it holds at least every
        // write up to that generation; a later write changes the version.
        let set = Arc::new(self.load(now).await?);
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            generation,
            set: Arc::clone(&set),
        });
        Ok(set)
    }

    /// Loads and types every stored object. They were validated when
    /// written, so a failure here is corruption.
    async fn load(&self, now: i64) -> Result<PolicySet, StoreError> {
        fn typed<T: serde::de::DeserializeOwned>(
            kind: CaKind,
            values: Vec<Value>,
        ) -> Result<Vec<T>, StoreError> {
            values
                .into_iter()
                .map(|v| {
                    serde_json::from_value(v)
                        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", kind.table())))
                })
                .collect()
        }
        let mut policies: Vec<super::conditional_access::Policy> =
            typed(CaKind::Policy, self.list(CaKind::Policy, now).await?)?;
        policies.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
        let locations = typed(
            CaKind::NamedLocation,
            self.list(CaKind::NamedLocation, now).await?,
        )?;
        let custom = typed(CaKind::Strength, self.list(CaKind::Strength, now).await?)?;
        Ok(PolicySet {
            policies,
            strengths: super::conditional_access::StrengthSet::with_custom(custom),
            locations,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    const POLICY: &str = include_str!("../../config/examples/ca-admins-phishing-resistant.json");

    fn two_instances() -> (tempfile::TempDir, CaObjects, CaObjects) {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("ca.redb")).unwrap());
        // Two caches over one store: what two instances sharing Redis see.
        (
            dir,
            CaObjects::new(Arc::clone(&store)),
            CaObjects::new(store),
        )
    }

    #[tokio::test]
    async fn policy_set_is_reused_until_any_instance_writes() {
        let (_dir, a, b) = two_instances();
        let policy: Value = serde_json::from_str(POLICY).unwrap();
        let id = policy["id"].as_str().unwrap();

        let first = a.policy_set(0).await.unwrap();
        assert!(first.policies.is_empty());
        assert!(
            Arc::ptr_eq(&first, &a.policy_set(0).await.unwrap()),
            "cached"
        );

        assert!(b.insert(CaKind::Policy, id, &policy, 0).await.unwrap());
        let after_insert = a.policy_set(0).await.unwrap();
        assert_eq!(after_insert.policies.len(), 1, "B's write reached A");

        let mut renamed = policy.clone();
        renamed["displayName"] = Value::from("Renamed");
        b.put(CaKind::Policy, id, &renamed).await.unwrap();
        assert_eq!(
            a.policy_set(0).await.unwrap().policies[0].display_name,
            "Renamed"
        );

        assert!(b.delete(CaKind::Policy, id, 0).await.unwrap());
        assert!(!b.delete(CaKind::Policy, id, 0).await.unwrap());
        assert!(a.policy_set(0).await.unwrap().policies.is_empty());

        assert!(a.insert(CaKind::Policy, id, &policy, 0).await.unwrap());
        assert!(
            !b.insert(CaKind::Policy, id, &policy, 0).await.unwrap(),
            "the id exists"
        );
    }
}
