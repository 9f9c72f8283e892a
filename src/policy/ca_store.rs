//! Stored conditional-access objects: policies, named locations and custom
//! authentication strengths, kept as the Graph JSON they were written in
//! (so fields Gatepass does not interpret survive a round trip).

use crate::store::{Durability, Store, StoreError, decode, encode};
use serde_json::Value;
use std::sync::Arc;

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
}

impl CaObjects {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
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
        self.store
            .put(kind.table(), id, encode(value)?, None, Durability::Durable)
            .await
            .map(|_| ())
    }

    /// Creates only if absent; `false` if the id exists.
    pub async fn insert(
        &self,
        kind: CaKind,
        id: &str,
        value: &Value,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .store
            .insert(
                kind.table(),
                id,
                encode(value)?,
                None,
                Durability::Durable,
                now,
            )
            .await?
            .is_some())
    }

    pub async fn delete(&self, kind: CaKind, id: &str, now: i64) -> Result<bool, StoreError> {
        self.store
            .delete(kind.table(), id, Durability::Durable, now)
            .await
    }
}

/// Everything an evaluation needs, typed.
pub struct PolicySet {
    pub policies: Vec<super::conditional_access::Policy>,
    pub strengths: super::conditional_access::StrengthSet,
    pub locations: Vec<super::conditional_access::NamedLocation>,
}

impl CaObjects {
    /// Loads and types every stored object. They were validated when
    /// written, so a failure here is corruption.
    pub async fn policy_set(&self, now: i64) -> Result<PolicySet, StoreError> {
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
