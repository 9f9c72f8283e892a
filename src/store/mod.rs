//! Persistence: the `Store` trait and its backends.
//!
//! The store is a namespaced key-value space of small JSON records with
//! *expiry as data*: every record may carry `expires_at` (Unix seconds), and a
//! record whose `expires_at <= now` is treated as absent by every method, even
//! before a sweeper physically removes it. Callers pass `now` (from the
//! [`Clock`](crate::clock::Clock)), so expiry is testable without sleeping.
//!
//! Every security-critical read-modify-write in Gatepass (redeem a code,
//! rotate a refresh token, consume a one-time TAP, count failed attempts,
//! create the first admin) is expressed as **one** call to one of the atomic
//! primitives below, never as get-check-put in the caller:
//!
//! | primitive | atomic step |
//! | --- | --- |
//! | [`Store::insert`] | create if absent (or expired) |
//! | [`Store::take`] | read and delete (take-once) |
//! | [`Store::compare_and_swap`] | replace or delete iff the version is unchanged |
//! | [`Store::increment`] | add to a counter, creating it with an expiry |
//! | [`Store::commit`] | several preconditions, then several writes, all or nothing |
//!
//! Versions are opaque: every write gives a record a fresh version, and a
//! deleted-then-recreated record never reuses an old one (no ABA).
//!
//! Durability is chosen per write: [`Durability::Durable`] records (users,
//! credentials, TAPs, policies, role assignments, grants with refresh tokens)
//! are on disk before the call returns; [`Durability::Ephemeral`] records
//! (authorization codes, grants without refresh tokens, sign-in flow and
//! ceremony state) may be lost in a crash, which only forces a user to start
//! that sign-in again.

pub mod conformance;
pub mod embedded;
pub mod metered;
pub mod redis;

use async_trait::async_trait;

/// A logical table. Keys are unique within a table.
pub type Table = &'static str;

/// A stored record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: Vec<u8>,
    /// Opaque; changes on every write. Pass it to `compare_and_swap`/`commit`.
    pub version: u64,
    /// Unix seconds after which the record is gone. `None`: never expires.
    pub expires_at: Option<i64>,
}

/// How hard a write must be persisted before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage before returning (fsync on the embedded backend).
    Durable,
    /// Visible at once to every reader, but may be lost if the process or
    /// machine crashes (the embedded backend keeps such records in memory
    /// until it closes). A crash may keep some of an ephemeral [`Txn`]'s
    /// writes and lose others; each lost write is as if it never happened.
    /// Gatepass's one multi-write ephemeral transaction, a code redemption
    /// without a refresh token, fails closed either way: a redeemed code
    /// without its grant, or a grant whose code is gone.
    Ephemeral,
}

/// Which way [`Store::scan_page`] walks the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// What a [`Txn`] requires of a key before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No live record (absent or expired).
    Absent,
    /// A live record with exactly this version.
    Version(u64),
}

/// One write in a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        table: Table,
        key: String,
        value: Vec<u8>,
        expires_at: Option<i64>,
    },
    Delete {
        table: Table,
        key: String,
    },
}

/// A multi-key atomic step: if every precondition holds, every write is
/// applied; otherwise nothing is written. Builder-style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub checks: Vec<(Table, String, Precondition)>,
    pub writes: Vec<Write>,
    pub durability: Durability,
}

impl Txn {
    pub fn new(durability: Durability) -> Self {
        Self {
            checks: Vec::new(),
            writes: Vec::new(),
            durability,
        }
    }

    pub fn require(mut self, table: Table, key: impl Into<String>, pre: Precondition) -> Self {
        self.checks.push((table, key.into(), pre));
        self
    }

    pub fn put(
        mut self,
        table: Table,
        key: impl Into<String>,
        value: Vec<u8>,
        expires_at: Option<i64>,
    ) -> Self {
        self.writes.push(Write::Put {
            table,
            key: key.into(),
            value,
            expires_at,
        });
        self
    }

    pub fn delete(mut self, table: Table, key: impl Into<String>) -> Self {
        self.writes.push(Write::Delete {
            table,
            key: key.into(),
        });
        self
    }
}

/// Why a store call failed. Never carries record values (they may be secret
/// digests or personal data).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or answered with an I/O error. Callers
    /// answer 503; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend holds data Gatepass cannot read (corruption, a bug).
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "store.unavailable",
            StoreError::Corrupt(_) => "store.corrupt",
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The persistence contract every backend implements with identical
/// semantics; `conformance` checks that they do.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The live record under `key`, if any.
    async fn get(&self, table: Table, key: &str, now: i64) -> StoreResult<Option<Record>>;

    /// Unconditionally writes `value`; returns the new version.
    async fn put(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        durability: Durability,
    ) -> StoreResult<u64>;

    /// Writes `value` only if no live record exists. `Some(version)` if this
    /// call created it, `None` if a live record was already there.
    async fn insert(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>>;

    /// Reads and deletes the live record in one step. Of many concurrent
    /// callers, exactly one gets `Some`.
    async fn take(
        &self,
        table: Table,
        key: &str,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<Record>>;

    /// If the live record's version is `expected`, replaces it with
    /// `new_value` (or deletes it when `None`) and returns the new version
    /// (`Some(0)` after a delete). `None` when the version did not match or
    /// the record is gone: the caller lost a race.
    #[allow(clippy::too_many_arguments)]
    async fn compare_and_swap(
        &self,
        table: Table,
        key: &str,
        expected: u64,
        new_value: Option<Vec<u8>>,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>>;

    /// Deletes the record; `true` if a live one existed.
    async fn delete(
        &self,
        table: Table,
        key: &str,
        durability: Durability,
        now: i64,
    ) -> StoreResult<bool>;

    /// Adds `delta` to the counter under `key` and returns the new value. A
    /// missing or expired counter starts from 0 and takes `expires_at`; an
    /// existing one keeps its expiry. Counters read through `get` hold their
    /// value as ASCII decimal.
    #[allow(clippy::too_many_arguments)]
    async fn increment(
        &self,
        table: Table,
        key: &str,
        delta: i64,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<i64>;

    /// Applies a [`Txn`] atomically. `true` if it was applied, `false` if a
    /// precondition failed (and nothing was written).
    async fn commit(&self, txn: Txn, now: i64) -> StoreResult<bool>;

    /// Every live record of `table`, ordered by key.
    async fn scan(&self, table: Table, now: i64) -> StoreResult<Vec<(String, Record)>>;

    /// Every live record of `table` whose key starts with `prefix`, ordered
    /// by key; the empty prefix is the whole table. The prefix is plain
    /// bytes: `"a/"` does not match `"ab/x"`, but `"a"` does. A backend reads
    /// only the matching key range, never the whole table, so this suits
    /// per-owner listings (`"{user_id}/"`) in large tables.
    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>>;

    /// One page of [`Store::scan_prefix`]: at most `limit` live records
    /// whose key starts with `prefix`, in key order (or reverse key order),
    /// strictly after the key `after` (before it, descending). The cost is
    /// that of the page, not of the table: listing a large table reads it a
    /// page at a time, resuming after the last key it returned.
    #[allow(clippy::too_many_arguments)]
    async fn scan_page(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        order: Order,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>>;

    /// Physically removes expired records; returns how many. Semantics never
    /// depend on it having run.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Deployment problems worth a warning at start-up (a setting of the
    /// backend that can lose Gatepass's data). Empty when all is well.
    async fn startup_warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// The backend's name, for metrics (`embedded`, `redis`).
    fn backend(&self) -> &'static str {
        "other"
    }
}

/// Serializes a record value. Values are JSON: small, debuggable, and
/// readable by both backends.
pub fn encode<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

/// Deserializes a record value written by [`encode`].
pub fn decode<T: serde::de::DeserializeOwned>(table: Table, bytes: &[u8]) -> StoreResult<T> {
    // The serde error names the field and position, never the value.
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{table}: {e}")))
}
