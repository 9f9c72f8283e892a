//! The embedded backend: every table in one crash-safe [redb] file, with
//! ephemeral records kept beside it in memory.
//!
//! # Layout
//!
//! All logical tables share one redb table, `records`, so a [`Txn`] spanning
//! several logical tables is still one redb write transaction. Its keys are
//!
//! ```text
//! table name length (u64 BE) | table name | key
//! ```
//!
//! The length prefix, rather than a separator byte, keeps tables apart
//! whatever bytes their names hold: `user` and `users` get different
//! prefixes and neither is a prefix of the other's keys. Within one table,
//! keys sort by their UTF-8 bytes, which is `String` order, so a scan, and
//! a [`Store::scan_prefix`], is one range read.
//!
//! Values carry their own metadata, so expiry is data and is checked against
//! the caller's `now` on every read:
//!
//! ```text
//! format (1) | version (u64 BE) | has expiry (0/1) | expires_at (i64 BE) | value
//! ```
//!
//! # Versions
//!
//! Versions come from one counter for the whole store, so a
//! deleted-then-recreated key never sees an old version again. The counter
//! itself lives in memory (`Versions`); only a `version_ceiling` is kept
//! in the file, raised by a durable commit before any version at or above it
//! is handed out, and [`EmbeddedStore::open`] restarts the counter at the
//! ceiling. So versions stay unique even across a crash that lost records
//! written after the last durable commit, at the price of one extra fsync
//! per `VERSION_BLOCK` writes.
//!
//! # Durability and the memory tier
//!
//! [`Durability::Durable`] writes go to the file and map to redb's
//! `Immediate` (fsync before the commit returns). [`Durability::Ephemeral`]
//! records (codes, sign-in flows, ceremonies, grants without refresh tokens)
//! may be lost in a crash, so they skip the file: they live in the *memory
//! tier*, a map in the process beside it. Writing one to redb, even without
//! an fsync, costs a copy-on-write rewrite of a 4 KiB leaf and its branch
//! pages, checksums and a `pwrite` per commit: about 84 µs of a code
//! redemption's 260 µs of server CPU before the tier existed
//! (`benches/token_endpoint.rs`).
//!
//! The rules that keep the two tiers one store:
//!
//! - A key is in at most one tier. An ephemeral write goes to the tier only
//!   if the key is there already, or absent from the file and the tier has
//!   room ([`MEMORY_BUDGET`]); otherwise it is an ephemeral redb commit
//!   (redb's `None` durability: visible at once, on disk with the next
//!   durable commit). So an ephemeral write never shadows a durable value
//!   that a crash could bring back.
//! - A durable write goes to the file and takes the key out of the tier.
//! - A write that moves a key from the tier to the file is committed to the
//!   file before it leaves the tier, and readers look in the tier first, so
//!   no reader ever finds the key in neither. A scan that meets a key in
//!   both keeps the higher version.
//! - Atomicity holds while the process lives; across a crash it holds per
//!   tier. An ephemeral [`Txn`] whose writes landed in both tiers (one key
//!   already in the file, another new) may come back from a crash with only
//!   its file part (see [`Durability::Ephemeral`]).
//! - Closing the store (dropping the last handle) writes the tier to the file
//!   in one durable commit, so a graceful restart loses nothing.
//!   [`Store::purge_expired`] purges both tiers. The file keeps its
//!   expiring records indexed by expiry (table `expiries`, written with
//!   every record), so a purge reads what has expired, never the whole
//!   file: at a million users the users would otherwise be read every
//!   purge, evicting the page cache the requests read from.
//!
//! Counters ([`Store::increment`]) take a durability like any write:
//! lockout *locks* and their episode counts are durable (a crash must not
//! wipe a lockout), attempt counters ephemeral (a crash forgets at most one
//! window of attempts, and each sign-in costs no fsync for them).
//!
//! # Writes: inline for the memory tier, one writer thread for the file
//!
//! An ephemeral op first runs on the calling thread, holding the tier's
//! lock, against a read snapshot of the file (opened under that lock). It
//! completes there if it touches only the tier; if it would write the file,
//! needs the version ceiling raised, or touches a key the writer's current
//! batch holds, it is dropped unapplied and goes to the writer instead. A
//! code redemption without `offline_access` (read the code, then check it,
//! rewrite it and add a grant) so makes no thread hand-off at all.
//!
//! redb admits one write transaction at a time, and its cost is mostly per
//! transaction, not per key: opening the tables, copying the B-tree path to
//! the root, and on a durable commit an fsync that takes as long for one
//! record as for a hundred. So every other write goes to one dedicated
//! thread, the *writer*, which owns all write transactions:
//!
//! ```text
//!  callers ──(op, reply)──▶ queue ──▶ writer: take every queued op (≤ MAX_BATCH)
//!                                       begin one write transaction
//!                                       apply op 1, op 2, … in arrival order
//!                                       commit once ── Durable if any op (or
//!                                       │              the version ceiling) needs it
//!                                       publish the batch's memory-tier changes
//!                                       └─▶ reply to each op
//! ```
//!
//! Each op runs against both tiers as the previous ops left them, exactly as
//! if it had run alone right after them, so every op keeps its own atomicity
//! and preconditions; a failed precondition is that op's normal answer and
//! does not touch the others. Every key a batch touches is marked busy in
//! the tier until the batch is published, so no inline op can change a key
//! between the writer reading it and committing. The commit and its fsync
//! are shared by everything queued while the previous batch committed, which
//! is what lets concurrent requests (and above all durable refresh
//! rotations) stop paying one commit each. Batching needs no timer: under
//! load, ops pile up while a commit runs; alone, an op is committed at once.
//! A batch that changed only the tier skips the commit.
//!
//! An op that fails (a redb error, a record that does not decode) may
//! already have written part of its effects, so the batch is rolled back
//! (file and tier), that op alone gets its error, and the others are applied
//! again in a fresh transaction; nobody has seen their results yet, so their
//! versions may change. If the commit itself fails nothing was written and
//! every op of the batch gets the error. A caller is answered only after the
//! commit and the publication, so the write is visible to whatever it does
//! next.
//!
//! A caller that gives up waiting does not cancel its op once queued: the op
//! still commits or rolls back with its batch, so a `take` may consume a
//! record that nobody receives, which fails closed. Dropping the last handle
//! to the store closes the queue and waits for the writer to finish its
//! batch and save the tier, so the file can be reopened at once. The writer
//! only stops early if redb panics; then every queued and later write, and
//! [`Store::ping`], fail as unavailable instead of hanging.
//!
//! # Reads
//!
//! redb read transactions are MVCC snapshots: they never wait for the writer
//! and, with the data in redb's page cache, a point read costs about a
//! microsecond or two of CPU. Handing it to tokio's blocking pool costs
//! several times the read itself (a thread wake-up, then a task wake-up):
//! the `redb point read` phase of `benches/token_endpoint.rs` measures ~1–2
//! µs inline against ~9–15 µs through `spawn_blocking`, at 32 concurrent
//! readers on 2 cores. So [`Store::get`] and [`Store::ping`] run inline on
//! the calling task, like a short mutex section; on a cold cache that may
//! block a worker for one disk read. `tokio::task::block_in_place` is not
//! used: it panics on the current-thread runtime (the tests' default) and
//! hands the worker's queue to another thread, which costs more than the
//! read. Scans are unbounded in size, so [`Store::scan`] and
//! [`Store::scan_prefix`] still run on the blocking pool. A point read looks
//! in the memory tier first (a hash lookup under its lock), then in the
//! file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{
    Durability, Order, Precondition, Record, Store, StoreError, StoreResult, Table, Txn, Write,
};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The file's records that expire, by expiry: `expiry_key(at, record key)`.
/// A purge reads only what has expired instead of every record.
const EXPIRIES: TableDefinition<&[u8], ()> = TableDefinition::new("expiries");

/// Every version handed out so far is below this; only raised durably.
const VERSION_CEILING: &str = "version_ceiling";
/// The counter itself, which earlier builds kept in the file; removed on
/// open.
const LEGACY_NEXT_VERSION: &str = "next_version";
/// Set once [`EXPIRIES`] indexes every record in the file that expires;
/// files from earlier builds are indexed once, on open.
const EXPIRY_INDEX: &str = "expiry_index";
/// How far one durable commit raises the ceiling.
const VERSION_BLOCK: u64 = 1 << 16;

/// Most ops the writer applies in one transaction. Bounds how long one
/// batch delays the next, and the work redone if one op fails.
const MAX_BATCH: usize = 256;
/// Ops that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 1024;

/// Most bytes the memory tier holds (see "Memory tier" in the module doc).
pub const MEMORY_BUDGET: usize = 256 << 20;
/// What one memory record costs beyond its key and value bytes (map entry,
/// `String` and `Vec` headers), counted against [`MEMORY_BUDGET`].
const MEMORY_ENTRY_OVERHEAD: usize = 64;

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 18;

/// A [`Store`] in one local redb file, with a memory tier for ephemeral
/// records. Cheap to clone; clones share the file, the tier and the writer
/// thread.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
}

/// What callers and the writer thread share.
struct Shared {
    db: Database,
    memory: Mutex<MemoryState>,
    versions: Versions,
    /// Most bytes the memory tier may hold; [`MEMORY_BUDGET`] outside tests.
    budget: usize,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer after its current batch and a
        // last commit of the memory tier; joining it releases redb's file
        // lock before `drop` returns.
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            // A panicked writer has nothing left to release.
            let _ = writer.join();
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating missing parent
    /// directories, and starts its writer thread. Fails if another process
    /// or another `EmbeddedStore` already has the file open.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// [`EmbeddedStore::open`] with redb's page cache at `cache_bytes`
    /// (redb's default: 1 GiB).
    pub fn open_with_cache(
        path: &Path,
        cache_bytes: Option<usize>,
    ) -> Result<EmbeddedStore, StoreError> {
        let shown = path.display();
        let with_path = |e: StoreError| match e {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("cannot open store file {shown}: {m}"))
            }
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("store file {shown}: {m}")),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| with_path(StoreError::Unavailable(e.to_string())))?;
        }
        let mut builder = redb::Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path).map_err(|e| {
            with_path(match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Unavailable("already open in this or another process".to_owned())
                }
                other => backend(other),
            })
        })?;
        let shared = Arc::new(Shared::new(db, MEMORY_BUDGET).map_err(with_path)?);
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("gatepass-store-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run_writer(&shared, queue)
            })
            .map_err(|e| with_path(StoreError::Unavailable(format!("writer thread: {e}"))))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                shared,
                jobs: Some(jobs),
                writer: Some(writer),
            }),
        })
    }

    /// Runs `op` and returns its result once it is visible to every reader:
    /// inline if it is ephemeral and touches only the memory tier (see
    /// "Memory tier"), otherwise through the writer. `op` must be
    /// repeatable: it may run more than once, and only its last run counts.
    async fn write<T: Send + 'static>(
        &self,
        durability: Durability,
        op: impl Fn(&mut Writer<'_>) -> OpResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        if durability == Durability::Ephemeral {
            if let Some(done) = self.inner.shared.try_inline(&op) {
                return done;
            }
        }
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            op,
            durability,
            result: None,
            reply,
        });
        let jobs = self.inner.jobs.as_ref().ok_or_else(writer_stopped)?;
        jobs.send(job).await.map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Runs a read of unbounded size on tokio's blocking pool.
    async fn read_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Shared) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let shared = Arc::clone(&self.inner.shared);
        tokio::task::spawn_blocking(move || op(&shared))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

impl Shared {
    fn new(db: Database, budget: usize) -> StoreResult<Shared> {
        let ceiling = prepare(&db)?;
        Ok(Shared {
            db,
            memory: Mutex::default(),
            versions: Versions {
                next: AtomicU64::new(ceiling),
                ceiling: AtomicU64::new(ceiling),
            },
            budget,
        })
    }

    /// Only ever held for a few map operations, none of which can leave the
    /// tier half-changed, so a lock poisoned by a panic elsewhere still
    /// guards consistent maps.
    fn memory(&self) -> MutexGuard<'_, MemoryState> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs an ephemeral `op` on the calling thread, holding the memory
    /// tier's lock throughout. `None` if it needs the writer: it would
    /// write to the file, or touched a key the writer's current batch holds,
    /// or needs the version ceiling raised. Nothing it did is kept then.
    fn try_inline<T>(&self, op: &dyn Fn(&mut Writer<'_>) -> OpResult<T>) -> Option<StoreResult<T>> {
        let mut state = self.memory();
        let room = self.budget.saturating_sub(state.bytes);
        let file = File::Snapshot {
            db: &self.db,
            records: None,
        };
        let mut writer = Writer::new(self, file, Tier::Locked(&mut state), room);
        writer.durability = Durability::Ephemeral;
        let result = op(&mut writer);
        let changes = writer.finish().changes;
        match result {
            Ok(value) => {
                state.apply(changes);
                Some(Ok(value))
            }
            Err(OpError::Store(e)) => Some(Err(e)),
            Err(OpError::NeedsWriter) => None,
        }
    }
}

/// Creates both tables, so readers never meet a missing one, and returns
/// the version ceiling, where the counter restarts: past any version that
/// was handed out before, including to records a crash took with it.
fn prepare(db: &Database) -> StoreResult<u64> {
    let txn = db.begin_write().map_err(backend)?;
    let ceiling = {
        let records = txn.open_table(RECORDS).map_err(backend)?;
        let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let ceiling = read_meta(&meta, VERSION_CEILING)?.unwrap_or(1);
        meta.insert(VERSION_CEILING, ceiling).map_err(backend)?;
        meta.remove(LEGACY_NEXT_VERSION).map_err(backend)?;
        if read_meta(&meta, EXPIRY_INDEX)?.is_none() {
            index_expiries(&records, &mut expiries)?;
            meta.insert(EXPIRY_INDEX, 1).map_err(backend)?;
        }
        ceiling
    };
    txn.commit().map_err(backend)?;
    Ok(ceiling)
}

/// Indexes every expiring record of a file written before the index
/// existed: the one full read of the file, once. A record whose header
/// cannot be read is left out (and counted in a warning): it never expires
/// then, as before.
fn index_expiries(
    records: &redb::Table<'_, &'static [u8], &'static [u8]>,
    expiries: &mut redb::Table<'_, &'static [u8], ()>,
) -> StoreResult<()> {
    let (mut indexed, mut unreadable) = (0_u64, 0_u64);
    for entry in records.iter().map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        match expires_at(value.value()) {
            Ok(Some(at)) => {
                expiries
                    .insert(expiry_key(at, key.value()).as_slice(), ())
                    .map_err(backend)?;
                indexed += 1;
            }
            Ok(None) => {}
            Err(_) => unreadable += 1,
        }
    }
    if indexed > 0 {
        tracing::info!(
            records = indexed,
            "indexed the store file's expiring records"
        );
    }
    if unreadable > 0 {
        tracing::warn!(
            records = unreadable,
            "store file records with an unreadable header were left out of the expiry index"
        );
    }
    Ok(())
}

/// The [`EXPIRIES`] key of a record expiring at `at`: the time, sign bit
/// flipped so negative times sort first, big-endian, then the record key.
fn expiry_key(at: i64, record_key: &[u8]) -> Vec<u8> {
    let mut time = at.to_be_bytes();
    time[0] ^= 0x80;
    let mut out = Vec::with_capacity(time.len() + record_key.len());
    out.extend_from_slice(&time);
    out.extend_from_slice(record_key);
    out
}

/// The file's two record tables in one write transaction. Every write to
/// [`RECORDS`] goes through here, so [`EXPIRIES`] stays in step with it.
struct FileTables<'txn> {
    records: redb::Table<'txn, &'static [u8], &'static [u8]>,
    expiries: redb::Table<'txn, &'static [u8], ()>,
}

impl<'txn> FileTables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> StoreResult<Self> {
        Ok(FileTables {
            records: txn.open_table(RECORDS).map_err(backend)?,
            expiries: txn.open_table(EXPIRIES).map_err(backend)?,
        })
    }

    fn insert(&mut self, key: &[u8], encoded: &[u8]) -> StoreResult<()> {
        let old = self.records.insert(key, encoded).map_err(backend)?;
        if let Some(at) = old.map(|v| expires_at(v.value())).transpose()?.flatten() {
            self.expiries
                .remove(expiry_key(at, key).as_slice())
                .map_err(backend)?;
        }
        if let Some(at) = expires_at(encoded)? {
            self.expiries
                .insert(expiry_key(at, key).as_slice(), ())
                .map_err(backend)?;
        }
        Ok(())
    }

    /// The encoded record that was under `key`, now removed.
    fn remove(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let Some(old) = self
            .records
            .remove(key)
            .map_err(backend)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(None);
        };
        if let Some(at) = expires_at(&old)? {
            self.expiries
                .remove(expiry_key(at, key).as_slice())
                .map_err(backend)?;
        }
        Ok(Some(old))
    }

    /// Removes every record expired at `now`, reading only the index's
    /// expired range; how many.
    fn purge(&mut self, now: i64) -> StoreResult<u64> {
        let end = expiry_key(now.saturating_add(1), b"");
        let mut due = Vec::new();
        for entry in self.expiries.range(..end.as_slice()).map_err(backend)? {
            due.push(entry.map_err(backend)?.0.value().to_vec());
        }
        let mut purged = 0;
        for index_key in due {
            self.expiries
                .remove(index_key.as_slice())
                .map_err(backend)?;
            let key = &index_key[8..];
            let current = self
                .records
                .get(key)
                .map_err(backend)?
                .map(|v| expires_at(v.value()));
            // The index is written with the record, so it names the
            // record's own expiry; checked anyway before deleting.
            if current.transpose()?.flatten().is_some_and(|at| at <= now) {
                self.records.remove(key).map_err(backend)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn get(&self, table: Table, key: &str, now: i64) -> StoreResult<Option<Record>> {
        // Inline: see "Reads" in the module doc. Memory first: see "Memory
        // tier" for why that order sees every record.
        let shared = &self.inner.shared;
        let in_memory = shared
            .memory()
            .records
            .get(table, key)
            .map(|v| decode_record(v));
        let record = match in_memory {
            Some(record) => Some(record?),
            None => {
                let txn = shared.db.begin_read().map_err(backend)?;
                let records = txn.open_table(RECORDS).map_err(backend)?;
                let found = records
                    .get(record_key(table, key).as_slice())
                    .map_err(backend)?;
                found.map(|v| decode_record(v.value())).transpose()?
            }
        };
        Ok(record.filter(|r| is_live(r, now)))
    }

    async fn put(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        durability: Durability,
    ) -> StoreResult<u64> {
        let key = key.to_owned();
        self.write(durability, move |w| w.put(table, &key, &value, expires_at))
            .await
    }

    async fn insert(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        let key = key.to_owned();
        self.write(durability, move |w| {
            if w.live(table, &key, now)?.is_some() {
                return Ok(None);
            }
            w.put(table, &key, &value, expires_at).map(Some)
        })
        .await
    }

    async fn take(
        &self,
        table: Table,
        key: &str,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<Record>> {
        let key = key.to_owned();
        self.write(durability, move |w| {
            Ok(w.remove(table, &key)?.filter(|r| is_live(r, now)))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        table: Table,
        key: &str,
        expected: u64,
        new_value: Option<Vec<u8>>,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        let key = key.to_owned();
        self.write(durability, move |w| {
            match w.live(table, &key, now)? {
                Some(current) if current.version == expected => {}
                _ => return Ok(None),
            }
            match &new_value {
                Some(value) => w.put(table, &key, value, expires_at).map(Some),
                None => w.remove(table, &key).map(|_| Some(0)),
            }
        })
        .await
    }

    async fn delete(
        &self,
        table: Table,
        key: &str,
        durability: Durability,
        now: i64,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(durability, move |w| {
            Ok(w.remove(table, &key)?.is_some_and(|r| is_live(&r, now)))
        })
        .await
    }

    /// Saturates at `i64::MAX` / `i64::MIN` rather than failing: a counter
    /// that guards a lockout must stay past its limit, not start erroring.
    async fn increment(
        &self,
        table: Table,
        key: &str,
        delta: i64,
        expires_at: Option<i64>,
        durability: Durability,
        now: i64,
    ) -> StoreResult<i64> {
        let key = key.to_owned();
        self.write(durability, move |w| {
            let (current, expires_at) = match w.live(table, &key, now)? {
                Some(record) => (parse_counter(&record.value, table)?, record.expires_at),
                None => (0, expires_at),
            };
            let next = current.saturating_add(delta);
            w.put(table, &key, next.to_string().as_bytes(), expires_at)?;
            Ok(next)
        })
        .await
    }

    async fn commit(&self, txn: Txn, now: i64) -> StoreResult<bool> {
        self.write(txn.durability, move |w| {
            for (table, key, pre) in &txn.checks {
                let live = w.live(table, key, now)?;
                let holds = match (pre, live) {
                    (Precondition::Absent, live) => live.is_none(),
                    (Precondition::Version(v), Some(record)) => record.version == *v,
                    (Precondition::Version(_), None) => false,
                };
                if !holds {
                    return Ok(false);
                }
            }
            for op in &txn.writes {
                match op {
                    Write::Put {
                        table,
                        key,
                        value,
                        expires_at,
                    } => {
                        w.put(table, key, value, *expires_at)?;
                    }
                    Write::Delete { table, key } => {
                        w.remove(table, key)?;
                    }
                }
            }
            Ok(true)
        })
        .await
    }

    async fn scan(&self, table: Table, now: i64) -> StoreResult<Vec<(String, Record)>> {
        self.read_blocking(move |shared| scan_range(shared, table, "", now))
            .await
    }

    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        let prefix = prefix.to_owned();
        self.read_blocking(move |shared| scan_range(shared, table, &prefix, now))
            .await
    }

    async fn scan_page(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        order: Order,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        let (prefix, after) = (prefix.to_owned(), after.map(str::to_owned));
        self.read_blocking(move |shared| {
            page_range(shared, table, &prefix, after.as_deref(), order, limit, now)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.write(Durability::Durable, move |w| w.purge(now)).await
    }

    /// Also fails once the writer thread is gone (it only stops on a
    /// panic), so `/readyz` reports a store that can no longer write.
    async fn ping(&self) -> StoreResult<()> {
        if self.inner.jobs.as_ref().is_none_or(|jobs| jobs.is_closed()) {
            return Err(writer_stopped());
        }
        let txn = self.inner.shared.db.begin_read().map_err(backend)?;
        txn.open_table(RECORDS).map_err(backend)?;
        Ok(())
    }
}

/// The live records of `table` whose key starts with `prefix`, from both
/// tiers: the memory tier's, then one range read in the file from the first
/// possible key to the first key past the prefix.
fn scan_range(
    shared: &Shared,
    table: Table,
    prefix: &str,
    now: i64,
) -> StoreResult<Vec<(String, Record)>> {
    // Memory first (see "Memory tier"). A record that moved to the file
    // between the two reads is seen twice; the higher version is the newer.
    let mut found = BTreeMap::new();
    if let Some(records) = shared.memory().records.table(table) {
        for (key, value) in records.iter().filter(|(k, _)| k.starts_with(prefix)) {
            found.insert(key.clone(), decode_record(value)?);
        }
    }
    let table_prefix_len = record_key(table, "").len();
    let start = record_key(table, prefix);
    let txn = shared.db.begin_read().map_err(backend)?;
    let records = txn.open_table(RECORDS).map_err(backend)?;
    for entry in records.range(start.as_slice()..).map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let k = k.value();
        // Keys sort bytewise, so the matching ones are contiguous.
        if !k.starts_with(&start) {
            break;
        }
        let key = String::from_utf8(k[table_prefix_len..].to_vec())
            .map_err(|_| StoreError::Corrupt(format!("non-UTF-8 key in table {table}")))?;
        let record = decode_record(v.value())?;
        if found
            .get(&key)
            .is_none_or(|seen: &Record| record.version > seen.version)
        {
            found.insert(key, record);
        }
    }
    Ok(found
        .into_iter()
        .filter(|(_, record)| is_live(record, now))
        .collect())
}

/// One page of live records of `table` under `prefix`, beyond `after` in
/// `order`: up to `limit` from each tier, merged, the first `limit` kept.
/// The file is read as one range walk that stops after `limit` live
/// records, so a page costs about `limit` records however large the table.
#[allow(clippy::too_many_arguments)]
fn page_range(
    shared: &Shared,
    table: Table,
    prefix: &str,
    after: Option<&str>,
    order: Order,
    limit: usize,
    now: i64,
) -> StoreResult<Vec<(String, Record)>> {
    let beyond = |key: &str| match (after, order) {
        (None, _) => true,
        (Some(a), Order::Ascending) => key > a,
        (Some(a), Order::Descending) => key < a,
    };
    let mut found: BTreeMap<String, Record> = BTreeMap::new();
    if let Some(records) = shared.memory().records.table(table) {
        for (key, value) in records
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && beyond(k))
        {
            let record = decode_record(value)?;
            if is_live(&record, now) {
                found.insert(key.clone(), record);
            }
        }
    }
    let table_prefix_len = record_key(table, "").len();
    let start = record_key(table, prefix);
    // The first byte string past every key with the prefix.
    let mut end = start.clone();
    end.push(0xFF);
    let txn = shared.db.begin_read().map_err(backend)?;
    let records = txn.open_table(RECORDS).map_err(backend)?;
    let range = match (after, order) {
        (Some(a), Order::Ascending) => {
            let from = record_key(table, a);
            records.range::<&[u8]>((
                std::ops::Bound::Excluded(from.as_slice()),
                std::ops::Bound::Excluded(end.as_slice()),
            ))
        }
        (Some(a), Order::Descending) => {
            let to = record_key(table, a);
            records.range::<&[u8]>((
                std::ops::Bound::Included(start.as_slice()),
                std::ops::Bound::Excluded(to.as_slice()),
            ))
        }
        (None, _) => records.range::<&[u8]>(start.as_slice()..end.as_slice()),
    }
    .map_err(backend)?;
    let entries: Box<dyn Iterator<Item = _>> = match order {
        Order::Ascending => Box::new(range),
        Order::Descending => Box::new(range.rev()),
    };
    let mut from_file = 0;
    for entry in entries {
        let (k, v) = entry.map_err(backend)?;
        let k = k.value();
        if !k.starts_with(&start) {
            continue;
        }
        let key = String::from_utf8(k[table_prefix_len..].to_vec())
            .map_err(|_| StoreError::Corrupt(format!("non-UTF-8 key in table {table}")))?;
        let record = decode_record(v.value())?;
        if is_live(&record, now)
            && found
                .get(&key)
                .is_none_or(|seen: &Record| record.version > seen.version)
        {
            found.insert(key, record);
            from_file += 1;
            if from_file >= limit {
                break;
            }
        }
    }
    let page: Vec<(String, Record)> = match order {
        Order::Ascending => found.into_iter().take(limit).collect(),
        Order::Descending => found.into_iter().rev().take(limit).collect(),
    };
    Ok(page)
}

/// Values by table and key, so a lookup by `(table, &str)` allocates
/// nothing.
#[derive(Debug)]
struct Keyed<V>(HashMap<Table, HashMap<String, V>>);

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed(HashMap::new())
    }
}

impl<V> Keyed<V> {
    fn get(&self, table: Table, key: &str) -> Option<&V> {
        self.0.get(table)?.get(key)
    }

    fn contains(&self, table: Table, key: &str) -> bool {
        self.get(table, key).is_some()
    }

    fn insert(&mut self, table: Table, key: &str, value: V) -> Option<V> {
        self.0
            .entry(table)
            .or_default()
            .insert(key.to_owned(), value)
    }

    fn remove(&mut self, table: Table, key: &str) -> Option<V> {
        self.0.get_mut(table)?.remove(key)
    }

    fn table(&self, table: Table) -> Option<&HashMap<String, V>> {
        self.0.get(table)
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(HashMap::is_empty)
    }

    fn into_entries(self) -> impl Iterator<Item = (Table, String, V)> {
        self.0
            .into_iter()
            .flat_map(|(table, keys)| keys.into_iter().map(move |(k, v)| (table, k, v)))
    }
}

/// The memory tier: records whose latest write was ephemeral, kept out of
/// the file, as encoded records (the file's value format). A key is never
/// in both tiers once a change is published (see "Memory tier").
#[derive(Default)]
struct MemoryState {
    records: Keyed<Vec<u8>>,
    /// Sum of [`memory_cost`] over `records`.
    bytes: usize,
    /// Keys the writer's current batch has touched: until it publishes,
    /// inline ops leave them to the writer.
    busy: Keyed<()>,
}

/// Changes to the memory tier: `Some` writes an encoded record, `None`
/// removes the key.
type MemoryChanges = Keyed<Option<Vec<u8>>>;

impl MemoryState {
    fn apply(&mut self, changes: MemoryChanges) {
        for (table, key, change) in changes.into_entries() {
            if let Some(old) = self.records.remove(table, &key) {
                self.bytes -= memory_cost(table, &key, &old);
            }
            if let Some(value) = change {
                self.bytes += memory_cost(table, &key, &value);
                self.records.insert(table, &key, value);
            }
        }
    }

    fn release(&mut self, claimed: Keyed<()>) {
        for (table, key, ()) in claimed.into_entries() {
            self.busy.remove(table, &key);
        }
    }
}

fn memory_cost(table: Table, key: &str, value: &[u8]) -> usize {
    table.len() + key.len() + value.len() + MEMORY_ENTRY_OVERHEAD
}

/// The version counter, shared by inline ops and the writer: the next
/// version to hand out, and the durable ceiling every handed-out version
/// stays below (see "Versions").
struct Versions {
    next: AtomicU64,
    ceiling: AtomicU64,
}

/// Why an op did not complete.
enum OpError {
    Store(StoreError),
    /// Only from an inline run: the op must go to the writer.
    NeedsWriter,
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

type OpResult<T> = Result<T, OpError>;

/// One queued write: an op, what the writer must do for it, and where its
/// answer goes.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// Applies the op to the batch's transaction and keeps its result.
    fn apply(&mut self, w: &mut Writer<'_>) -> StoreResult<()>;
    /// Answers the caller: the kept result if the batch committed.
    fn reply(self: Box<Self>, committed: StoreResult<()>);
}

struct Pending<T, F> {
    op: F,
    durability: Durability,
    result: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&mut Writer<'_>) -> OpResult<T> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn apply(&mut self, w: &mut Writer<'_>) -> StoreResult<()> {
        match (self.op)(w) {
            Ok(result) => {
                self.result = Some(result);
                Ok(())
            }
            Err(OpError::Store(e)) => Err(e),
            // The writer can do everything; see `Writer::needs_writer`.
            Err(OpError::NeedsWriter) => Err(StoreError::Corrupt(
                "store op asked the writer for the writer".to_owned(),
            )),
        }
    }

    fn reply(self: Box<Self>, committed: StoreResult<()>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => Ok(result),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::Unavailable(
                "store write was not applied".to_owned(),
            )),
        };
        // The caller may have stopped waiting; the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: applies queued ops in batches until every handle to
/// the store is gone, then commits the memory tier to the file.
fn run_writer(shared: &Shared, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        commit_batch(shared, &mut batch);
    }
    save_memory(shared);
}

/// Why a batch did not commit.
enum BatchFailure {
    /// The op at this index failed; the others may still commit.
    Op(usize, StoreError),
    /// The transaction failed as a whole.
    Txn(StoreError),
}

/// Commits `batch` (emptying it) and answers every op in it.
fn commit_batch(shared: &Shared, batch: &mut Vec<Box<dyn Job>>) {
    while !batch.is_empty() {
        match apply_batch(shared, batch) {
            Ok(()) => {
                for job in batch.drain(..) {
                    job.reply(Ok(()));
                }
            }
            // Roll back, answer the failed op, redo the rest without it.
            Err(BatchFailure::Op(i, e)) => batch.remove(i).reply(Err(e)),
            Err(BatchFailure::Txn(e)) => {
                for job in batch.drain(..) {
                    job.reply(Err(same_error(&e)));
                }
            }
        }
    }
}

/// Applies every op of `batch` in order in one write transaction, commits
/// it, then publishes the batch's memory-tier changes and releases the keys
/// it held. Any error rolls back both tiers.
fn apply_batch(shared: &Shared, batch: &mut [Box<dyn Job>]) -> Result<(), BatchFailure> {
    let whole = BatchFailure::Txn;
    let mut txn = shared.db.begin_write().map_err(|e| whole(backend(e)))?;
    let file = File::Txn {
        records: Box::new(FileTables::open(&txn).map_err(whole)?),
        meta: txn.open_table(META).map_err(|e| whole(backend(e)))?,
    };
    let tier = Tier::Claiming {
        memory: &shared.memory,
        claimed: Keyed::default(),
    };
    let room = shared.budget.saturating_sub(shared.memory().bytes);
    let mut writer = Writer::new(shared, file, tier, room);
    let mut failed = None;
    for (i, job) in batch.iter_mut().enumerate() {
        writer.durability = job.durability();
        if let Err(e) = job.apply(&mut writer) {
            failed = Some(BatchFailure::Op(i, e));
            break;
        }
    }
    let done = writer.finish();
    let outcome = match failed {
        // Dropping `txn` without committing rolls it back.
        Some(failure) => Err(failure),
        None if done.file_changed => {
            let durable =
                done.must_persist || batch.iter().any(|j| j.durability() == Durability::Durable);
            txn.set_durability(if durable {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            });
            txn.commit().map_err(|e| whole(backend(e)))
        }
        // Nothing for the file (every op touched only the memory tier, only
        // read, or failed a precondition): no commit, no fsync.
        None => txn.abort().map_err(|e| whole(backend(e))),
    };
    // Only now, with the file committed: a record that moves from memory to
    // the file is in the file before it leaves memory.
    let mut state = shared.memory();
    if outcome.is_ok() {
        state.apply(done.changes);
        shared
            .versions
            .ceiling
            .fetch_max(done.ceiling, Ordering::Release);
    }
    state.release(done.claimed);
    outcome
}

/// What an op's or a batch's view left to do once it has applied.
struct Done {
    changes: MemoryChanges,
    claimed: Keyed<()>,
    ceiling: u64,
    file_changed: bool,
    must_persist: bool,
}

/// Moves the memory tier into the file in one durable commit, so a
/// graceful shutdown loses nothing.
fn save_memory(shared: &Shared) {
    let records = {
        let mut state = shared.memory();
        state.bytes = 0;
        std::mem::take(&mut state.records)
    };
    if records.is_empty() {
        return;
    }
    let mut saved = 0_usize;
    let result = (|| {
        let mut txn = shared.db.begin_write().map_err(backend)?;
        {
            let mut file = FileTables::open(&txn)?;
            for (name, key, value) in records.into_entries() {
                file.insert(record_key(name, &key).as_slice(), value.as_slice())?;
                saved += 1;
            }
        }
        txn.set_durability(redb::Durability::Immediate);
        txn.commit().map_err(backend)
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, records = saved, "could not save in-memory store records at shutdown; they are lost");
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("store writer has stopped".to_owned())
}

/// A copy of `e` for each op of a failed batch.
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
    }
}

/// The file as an op sees it.
enum File<'txn> {
    /// On the writer thread: the batch's write transaction.
    Txn {
        records: Box<FileTables<'txn>>,
        meta: redb::Table<'txn, &'static str, u64>,
    },
    /// Inline: committed state, read-only, opened on first use (under the
    /// memory lock, so no batch can commit a key the op has seen as free).
    Snapshot {
        db: &'txn Database,
        records: Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>,
    },
}

/// The memory tier as an op sees it.
enum Tier<'a> {
    /// Inline: the op holds the lock for its whole run.
    Locked(&'a mut MemoryState),
    /// On the writer thread: locked per access; every key touched is marked
    /// busy until the batch is published, so no inline op can change it
    /// under the batch.
    Claiming {
        memory: &'a Mutex<MemoryState>,
        claimed: Keyed<()>,
    },
}

/// One op's (inline) or one batch's (writer) view of both tiers, and what
/// it has done so far. The methods are the whole vocabulary of ops.
struct Writer<'a> {
    file: File<'a>,
    tier: Tier<'a>,
    /// Memory-tier changes so far, applied only if everything succeeds.
    changes: MemoryChanges,
    /// Bytes the memory tier may still take.
    room: usize,
    /// The durability of the op being applied.
    durability: Durability,
    versions: &'a Versions,
    /// The ceiling, as raised by this batch (only the writer raises it).
    ceiling: u64,
    file_changed: bool,
    /// Set when the ceiling was raised, which must reach the disk.
    must_persist: bool,
}

impl<'a> Writer<'a> {
    /// A view for one inline op or one batch; `room` is what the memory tier
    /// may still take. Durability starts `Durable` and is set per op.
    fn new(shared: &'a Shared, file: File<'a>, tier: Tier<'a>, room: usize) -> Writer<'a> {
        Writer {
            file,
            tier,
            changes: Keyed::default(),
            room,
            durability: Durability::Durable,
            versions: &shared.versions,
            ceiling: shared.versions.ceiling.load(Ordering::Acquire),
            file_changed: false,
            must_persist: false,
        }
    }

    /// Ends the view (releasing the file's tables) and returns what is left
    /// to do: publish the changes, release the claimed keys, commit or not.
    fn finish(self) -> Done {
        let claimed = match self.tier {
            Tier::Claiming { claimed, .. } => claimed,
            Tier::Locked(_) => Keyed::default(),
        };
        Done {
            changes: self.changes,
            claimed,
            ceiling: self.ceiling,
            file_changed: self.file_changed,
            must_persist: self.must_persist,
        }
    }

    /// The encoded memory record under the key, as this op or batch has
    /// left it. On the writer thread the key is claimed first; inline, a
    /// key the writer holds sends the op to the writer.
    fn in_memory(&mut self, table: Table, key: &str) -> OpResult<Option<Vec<u8>>> {
        if let Some(change) = self.changes.get(table, key) {
            return Ok(change.clone());
        }
        match &mut self.tier {
            Tier::Locked(state) => {
                if state.busy.contains(table, key) {
                    return Err(OpError::NeedsWriter);
                }
                Ok(state.records.get(table, key).cloned())
            }
            Tier::Claiming { memory, claimed } => {
                let mut state = memory.lock().unwrap_or_else(PoisonError::into_inner);
                if !claimed.contains(table, key) {
                    claimed.insert(table, key, ());
                    state.busy.insert(table, key, ());
                }
                Ok(state.records.get(table, key).cloned())
            }
        }
    }

    /// The encoded file record under the key (only for keys not in memory).
    fn in_file(&mut self, table: Table, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = record_key(table, key);
        match &mut self.file {
            File::Txn { records, .. } => Ok(records
                .records
                .get(key.as_slice())
                .map_err(backend)?
                .map(|v| v.value().to_vec())),
            File::Snapshot { db, records } => {
                let records = match records {
                    Some(records) => records,
                    None => {
                        let txn = db.begin_read().map_err(backend)?;
                        records.insert(txn.open_table(RECORDS).map_err(backend)?)
                    }
                };
                Ok(records
                    .get(key.as_slice())
                    .map_err(backend)?
                    .map(|v| v.value().to_vec()))
            }
        }
    }

    fn live(&mut self, table: Table, key: &str, now: i64) -> OpResult<Option<Record>> {
        let stored = match self.in_memory(table, key)? {
            Some(bytes) => Some(bytes),
            None => self.in_file(table, key)?,
        };
        let record = stored.map(|v| decode_record(&v)).transpose()?;
        Ok(record.filter(|r| is_live(r, now)))
    }

    /// The file's write transaction, or [`OpError::NeedsWriter`] inline.
    fn file_txn(&mut self) -> OpResult<&mut FileTables<'a>> {
        match &mut self.file {
            File::Txn { records, .. } => Ok(records),
            File::Snapshot { .. } => Err(OpError::NeedsWriter),
        }
    }

    /// Writes a record under a fresh version and returns it. An ephemeral
    /// write stays in (or goes to) the memory tier unless the key is already
    /// in the file or the tier is full; a durable write goes to the file and
    /// takes the key out of memory.
    fn put(
        &mut self,
        table: Table,
        key: &str,
        value: &[u8],
        expires_at: Option<i64>,
    ) -> OpResult<u64> {
        let in_memory = self.in_memory(table, key)?.is_some();
        let version = self.next_version()?;
        let encoded = encode_record(version, expires_at, value);
        let cost = memory_cost(table, key, &encoded);
        let to_memory = self.durability == Durability::Ephemeral
            && (in_memory || (cost <= self.room && self.in_file(table, key)?.is_none()));
        if to_memory {
            self.room = self.room.saturating_sub(cost);
            self.changes.insert(table, key, Some(encoded));
        } else {
            self.file_txn()?
                .insert(record_key(table, key).as_slice(), encoded.as_slice())?;
            self.file_changed = true;
            if in_memory {
                self.changes.insert(table, key, None);
            }
        }
        Ok(version)
    }

    /// Removes whatever is stored, live or expired, and returns it.
    fn remove(&mut self, table: Table, key: &str) -> OpResult<Option<Record>> {
        if let Some(bytes) = self.in_memory(table, key)? {
            let record = decode_record(&bytes)?;
            self.changes.insert(table, key, None);
            return Ok(Some(record));
        }
        if let File::Snapshot { .. } = self.file {
            // Inline: nothing to remove is fine; anything else needs the
            // writer.
            return match self.in_file(table, key)? {
                Some(_) => Err(OpError::NeedsWriter),
                None => Ok(None),
            };
        }
        let removed = self
            .file_txn()?
            .remove(record_key(table, key).as_slice())?
            .map(|v| decode_record(&v))
            .transpose()?;
        self.file_changed |= removed.is_some();
        Ok(removed)
    }

    /// Removes every record expired at `now` from both tiers; returns how
    /// many. Runs on the writer only, and always commits the file durably,
    /// which also flushes earlier ephemeral commits to disk and frees their
    /// pages.
    fn purge(&mut self, now: i64) -> OpResult<u64> {
        let Tier::Claiming { memory, claimed } = &mut self.tier else {
            return Err(OpError::NeedsWriter);
        };
        let mut expired = Vec::new();
        {
            let mut state = memory.lock().unwrap_or_else(PoisonError::into_inner);
            let MemoryState { records, busy, .. } = &mut *state;
            for (&table, keys) in &records.0 {
                for (key, value) in keys {
                    // An op earlier in this batch may have rewritten it.
                    if self.changes.contains(table, key) {
                        continue;
                    }
                    if expires_at(value)?.is_some_and(|at| at <= now) {
                        if !claimed.contains(table, key) {
                            claimed.insert(table, key, ());
                            busy.insert(table, key, ());
                        }
                        expired.push((table, key.clone()));
                    }
                }
            }
        }
        let mut purged = expired.len() as u64;
        for (table, key) in expired {
            self.changes.insert(table, &key, None);
        }
        purged += self.file_txn()?.purge(now)?;
        self.file_changed = true;
        Ok(purged)
    }

    /// A fresh version. Inline ops use versions below the durable ceiling
    /// only; the writer raises the ceiling, durably, when it runs out.
    fn next_version(&mut self) -> OpResult<u64> {
        let version = self.versions.next.fetch_add(1, Ordering::Relaxed);
        if version >= u64::MAX - VERSION_BLOCK {
            return Err(StoreError::Corrupt("version counter exhausted".to_owned()).into());
        }
        if version < self.ceiling {
            return Ok(version);
        }
        let File::Txn { meta, .. } = &mut self.file else {
            return Err(OpError::NeedsWriter);
        };
        let raised = version + 1 + VERSION_BLOCK;
        meta.insert(VERSION_CEILING, raised).map_err(backend)?;
        self.ceiling = raised;
        self.file_changed = true;
        self.must_persist = true;
        Ok(version)
    }
}

fn read_meta(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> StoreResult<Option<u64>> {
    Ok(meta.get(name).map_err(backend)?.map(|v| v.value()))
}

fn is_live(record: &Record, now: i64) -> bool {
    record.expires_at.is_none_or(|at| at > now)
}

fn record_key(table: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + table.len() + key.len());
    out.extend_from_slice(&(table.len() as u64).to_be_bytes());
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

fn encode_record(version: u64, expires_at: Option<i64>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.push(FORMAT);
    out.extend_from_slice(&version.to_be_bytes());
    out.push(u8::from(expires_at.is_some()));
    out.extend_from_slice(&expires_at.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The version and expiry from an encoded record's header.
fn header(bytes: &[u8]) -> StoreResult<(u64, Option<i64>)> {
    let corrupt = || StoreError::Corrupt("record header is malformed".to_owned());
    let header = bytes.get(..HEADER_LEN).ok_or_else(corrupt)?;
    if header[0] != FORMAT {
        return Err(StoreError::Corrupt(format!(
            "record format {} is unknown",
            header[0]
        )));
    }
    let version = u64::from_be_bytes(header[1..9].try_into().map_err(|_| corrupt())?);
    let at = i64::from_be_bytes(header[10..18].try_into().map_err(|_| corrupt())?);
    let expires_at = match header[9] {
        0 => None,
        1 => Some(at),
        _ => return Err(corrupt()),
    };
    Ok((version, expires_at))
}

fn expires_at(bytes: &[u8]) -> StoreResult<Option<i64>> {
    header(bytes).map(|(_, at)| at)
}

fn decode_record(bytes: &[u8]) -> StoreResult<Record> {
    let (version, expires_at) = header(bytes)?;
    Ok(Record {
        value: bytes[HEADER_LEN..].to_vec(),
        version,
        expires_at,
    })
}

/// Never echoes the stored bytes: a counter's table may hold secrets if a
/// caller mixed it up with a record.
fn parse_counter(value: &[u8], table: &str) -> StoreResult<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("counter in table {table} is not an integer")))
}

/// Maps a redb error. Only redb's own messages are kept; they name tables
/// and I/O failures, never stored values.
fn backend(err: impl Into<redb::Error>) -> StoreError {
    match err.into() {
        e @ (redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)) => StoreError::Corrupt(e.to_string()),
        // redb's answer to a file that is not a redb database.
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::Corrupt(format!("not a store file: {e}"))
        }
        e => StoreError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrips_through_encoding() {
        for expires_at in [None, Some(-5), Some(0), Some(i64::MAX)] {
            let bytes = encode_record(42, expires_at, b"{\"a\":1}");
            let record = decode_record(&bytes).unwrap();
            assert_eq!(
                record,
                Record {
                    value: b"{\"a\":1}".to_vec(),
                    version: 42,
                    expires_at,
                }
            );
        }
    }

    #[test]
    fn truncated_record_is_corrupt() {
        let bytes = encode_record(1, None, b"");
        assert!(matches!(
            decode_record(&bytes[..HEADER_LEN - 1]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn unknown_format_is_corrupt() {
        let mut bytes = encode_record(1, None, b"x");
        bytes[0] = 9;
        assert!(matches!(decode_record(&bytes), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn table_prefixes_do_not_nest() {
        let user = record_key("user", "");
        let users_key = record_key("users", "x");
        assert!(!users_key.starts_with(&user));
        // A key that begins with the other table's suffix stays apart too.
        assert_ne!(record_key("user", "sx"), record_key("users", "x"));
    }

    fn temp_store_with_budget(budget: usize) -> (tempfile::TempDir, Shared) {
        let dir = tempfile::TempDir::new().unwrap();
        let db = Database::create(dir.path().join("batch.redb")).unwrap();
        (dir, Shared::new(db, budget).unwrap())
    }

    fn temp_store() -> (tempfile::TempDir, Shared) {
        temp_store_with_budget(MEMORY_BUDGET)
    }

    type Answer<T> = oneshot::Receiver<StoreResult<T>>;

    fn job<T: Send + 'static>(
        durability: Durability,
        op: impl Fn(&mut Writer<'_>) -> OpResult<T> + Send + 'static,
    ) -> (Box<dyn Job>, Answer<T>) {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            op,
            durability,
            result: None,
            reply,
        };
        (Box::new(job), answer)
    }

    fn answer<T>(mut answer: Answer<T>) -> StoreResult<T> {
        // `commit_batch` answers every op before it returns.
        answer.try_recv().unwrap()
    }

    /// The record under `key` in the file alone.
    fn stored(db: &Database, key: &str) -> Option<Record> {
        let txn = db.begin_read().unwrap();
        let records = txn.open_table(RECORDS).unwrap();
        let found = records.get(record_key("t", key).as_slice()).unwrap();
        found.map(|v| decode_record(v.value()).unwrap())
    }

    fn in_file(shared: &Shared, key: &str) -> Option<Record> {
        stored(&shared.db, key)
    }

    fn in_memory(shared: &Shared, key: &str) -> Option<Record> {
        shared
            .memory()
            .records
            .get("t", key)
            .map(|v| decode_record(v).unwrap())
    }

    fn nothing_busy(shared: &Shared) -> bool {
        shared.memory().busy.is_empty()
    }

    /// Runs one op alone on the writer and returns its answer.
    fn run<T: Send + 'static>(
        shared: &Shared,
        durability: Durability,
        op: impl Fn(&mut Writer<'_>) -> OpResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (job, reply) = job(durability, op);
        commit_batch(shared, &mut vec![job]);
        answer(reply)
    }

    fn put(
        shared: &Shared,
        durability: Durability,
        key: &'static str,
        value: &'static [u8],
    ) -> u64 {
        run(shared, durability, move |w| w.put("t", key, value, None)).unwrap()
    }

    fn put_job(key: &'static str, value: &'static [u8]) -> (Box<dyn Job>, Answer<u64>) {
        job(Durability::Ephemeral, move |w| w.put("t", key, value, None))
    }

    /// An inline ephemeral put: `None` if it needs the writer.
    fn put_inline(shared: &Shared, key: &'static str, value: &'static [u8]) -> Option<u64> {
        shared
            .try_inline(&move |w: &mut Writer<'_>| w.put("t", key, value, None))
            .map(|r| r.unwrap())
    }

    #[test]
    fn batched_op_sees_the_ops_before_it() {
        let (_dir, shared) = temp_store();
        let (first, first_answer) = put_job("k", b"first");
        let (second, second_answer) = job(Durability::Ephemeral, |w| {
            if w.live("t", "k", 0)?.is_some() {
                return Ok(None);
            }
            w.put("t", "k", b"second", None).map(Some)
        });
        let mut batch = vec![first, second];
        commit_batch(&shared, &mut batch);

        assert!(batch.is_empty());
        let version = answer(first_answer).unwrap();
        assert_eq!(
            answer(second_answer).unwrap(),
            None,
            "insert after a put in the same batch"
        );
        assert_eq!(
            in_memory(&shared, "k"),
            Some(Record {
                value: b"first".to_vec(),
                version,
                expires_at: None
            })
        );
        assert!(nothing_busy(&shared));
    }

    #[test]
    fn failing_op_leaves_no_partial_write_and_spares_its_batch() {
        let (_dir, shared) = temp_store();
        let (before, before_answer) = put_job("before", b"b");
        // Writes to the file, then fails: its write must not be committed.
        let (failing, failing_answer) = job(Durability::Durable, |w| {
            w.put("t", "partial", b"p", None)?;
            Err::<(), _>(StoreError::Corrupt("boom".to_owned()).into())
        });
        // Writes to the memory tier, then fails: nothing may show either.
        let (failing_in_memory, failing_in_memory_answer) = job(Durability::Ephemeral, |w| {
            w.put("t", "partial-memory", b"p", None)?;
            w.remove("t", "before")?;
            Err::<(), _>(StoreError::Corrupt("boom".to_owned()).into())
        });
        let (after, after_answer) = put_job("after", b"a");
        let mut batch = vec![before, failing, failing_in_memory, after];
        commit_batch(&shared, &mut batch);

        for failed in [failing_answer, failing_in_memory_answer] {
            assert!(matches!(
                answer(failed),
                Err(StoreError::Corrupt(m)) if m == "boom"
            ));
        }
        let v_before = answer(before_answer).unwrap();
        let v_after = answer(after_answer).unwrap();
        assert_ne!(v_before, v_after);
        for partial in ["partial", "partial-memory"] {
            assert_eq!(in_file(&shared, partial), None);
            assert_eq!(in_memory(&shared, partial), None);
        }
        assert_eq!(
            in_memory(&shared, "before").map(|r| r.version),
            Some(v_before)
        );
        assert_eq!(
            in_memory(&shared, "after").map(|r| r.version),
            Some(v_after)
        );
        assert!(
            nothing_busy(&shared),
            "a rolled-back batch releases its keys"
        );
    }

    /// A copy of the file is what a crash leaves: only durable commits.
    fn after_crash(dir: &tempfile::TempDir, key: &str) -> Option<Record> {
        let copy = dir.path().join(format!("crash-{key}.redb"));
        std::fs::copy(dir.path().join("batch.redb"), &copy).unwrap();
        let crashed = Database::create(&copy).unwrap();
        stored(&crashed, key)
    }

    #[test]
    fn ephemeral_records_stay_in_memory_until_a_durable_write_moves_them() {
        let (dir, shared) = temp_store();
        let ephemeral = Durability::Ephemeral;
        let v1 = put(&shared, ephemeral, "code", b"issued");
        assert_eq!(in_memory(&shared, "code").map(|r| r.version), Some(v1));
        assert_eq!(in_file(&shared, "code"), None);

        let v2 = put_inline(&shared, "code", b"again").unwrap();
        assert_eq!(in_memory(&shared, "code").map(|r| r.version), Some(v2));
        assert_eq!(after_crash(&dir, "code"), None, "never on disk");

        // A durable write moves the key to the file, on disk at once.
        let v3 = put(&shared, Durability::Durable, "code", b"redeemed");
        assert_eq!(in_memory(&shared, "code"), None);
        assert_eq!(in_file(&shared, "code").map(|r| r.version), Some(v3));
        assert_eq!(after_crash(&dir, "code").map(|r| r.version), Some(v3));

        // Once in the file, ephemeral writes stay there, so no crash can
        // bring back an older durable value from under a lost memory one;
        // inline, that means handing the op to the writer.
        assert_eq!(put_inline(&shared, "code", b"later"), None);
        assert_eq!(in_file(&shared, "code").map(|r| r.version), Some(v3));
        let v4 = put(&shared, ephemeral, "code", b"later");
        assert_eq!(in_memory(&shared, "code"), None);
        assert_eq!(in_file(&shared, "code").map(|r| r.version), Some(v4));
        assert!(v1 < v2 && v2 < v3 && v3 < v4);

        // Removing it from the file frees the key for the memory tier.
        let removed = run(&shared, ephemeral, |w| w.remove("t", "code"));
        assert_eq!(removed.unwrap().map(|r| r.version), Some(v4));
        assert!(put_inline(&shared, "code", b"new").is_some());
        assert_eq!(in_file(&shared, "code"), None);
        assert!(in_memory(&shared, "code").is_some());
    }

    #[test]
    fn inline_ops_leave_keys_held_by_a_batch_to_the_writer() {
        let (_dir, shared) = temp_store();
        put(&shared, Durability::Ephemeral, "warm", b"w");
        put(&shared, Durability::Ephemeral, "held", b"v1");
        let before = in_memory(&shared, "held");
        // What the writer does while it applies a batch that reads "held".
        shared.memory().busy.insert("t", "held", ());
        assert_eq!(put_inline(&shared, "held", b"v2"), None);
        assert_eq!(in_memory(&shared, "held"), before, "nothing applied");
        assert!(put_inline(&shared, "free", b"v").is_some());
        shared.memory().busy.remove("t", "held");
        assert!(put_inline(&shared, "held", b"v2").is_some());
    }

    #[test]
    fn inline_ops_only_use_versions_below_the_durable_ceiling() {
        let (dir, shared) = temp_store();
        // A fresh file: the counter starts at the ceiling, which only the
        // writer may raise.
        assert_eq!(put_inline(&shared, "k", b"v"), None);
        let first = put(&shared, Durability::Ephemeral, "k", b"v");
        assert!(first < shared.versions.ceiling.load(Ordering::Acquire));
        let inline = put_inline(&shared, "k", b"w").unwrap();
        assert!(inline > first);
        // The ceiling that covers `inline` is on disk.
        let copy = dir.path().join("copy.redb");
        std::fs::copy(dir.path().join("batch.redb"), &copy).unwrap();
        let ceiling = prepare(&Database::create(&copy).unwrap()).unwrap();
        assert!(inline < ceiling);
    }

    #[test]
    fn a_memory_only_batch_leaves_the_file_alone() {
        let (dir, shared) = temp_store();
        // The first write raises the version ceiling, durably.
        put(&shared, Durability::Durable, "warm", b"w");
        let file_len = || {
            std::fs::metadata(dir.path().join("batch.redb"))
                .unwrap()
                .len()
        };
        let before = file_len();
        let ceiling = shared.versions.ceiling.load(Ordering::Acquire);
        for _ in 0..100 {
            put(&shared, Durability::Ephemeral, "flow", b"f");
        }
        assert!(in_memory(&shared, "flow").is_some());
        assert_eq!(in_file(&shared, "flow"), None);
        let taken = run(&shared, Durability::Durable, |w| w.remove("t", "flow"));
        assert!(taken.unwrap().is_some());
        assert_eq!(file_len(), before);
        assert_eq!(shared.versions.ceiling.load(Ordering::Acquire), ceiling);
        assert_eq!(after_crash(&dir, "flow"), None);
    }

    #[test]
    fn one_durable_op_makes_its_batch_durable() {
        let (dir, shared) = temp_store();
        put(&shared, Durability::Durable, "file", b"v1");
        // An ephemeral write to a key in the file is an ephemeral commit of
        // the file: visible at once, on disk only with a durable commit.
        let v2 = put(&shared, Durability::Ephemeral, "file", b"v2");
        assert_eq!(in_file(&shared, "file").map(|r| r.version), Some(v2));
        assert_ne!(after_crash(&dir, "file").map(|r| r.version), Some(v2));

        let (ephemeral, ephemeral_answer) = put_job("file", b"v3");
        let (durable, durable_answer) =
            job(Durability::Durable, |w| w.put("t", "durable", b"d", None));
        commit_batch(&shared, &mut vec![ephemeral, durable]);
        let v3 = answer(ephemeral_answer).unwrap();
        answer(durable_answer).unwrap();
        assert!(after_crash(&dir, "durable").is_some());
        assert_eq!(
            after_crash(&dir, "file").map(|r| r.version),
            Some(v3),
            "committed with the durable op"
        );
    }

    #[test]
    fn a_full_memory_tier_sends_ephemeral_writes_to_the_file() {
        let one = memory_cost("t", "a", &encode_record(0, None, b"value"));
        let (_dir, shared) = temp_store_with_budget(one);
        put(&shared, Durability::Ephemeral, "a", b"value");
        assert_eq!(put_inline(&shared, "b", b"value"), None, "no room");
        put(&shared, Durability::Ephemeral, "b", b"value");
        assert!(in_memory(&shared, "a").is_some());
        assert_eq!(in_file(&shared, "a"), None);
        assert!(in_file(&shared, "b").is_some(), "spilled");
        assert_eq!(in_memory(&shared, "b"), None);
        assert_eq!(shared.memory().bytes, one);

        // Rewriting a record the tier already holds never spills it.
        assert!(put_inline(&shared, "a", b"other").is_some());
        assert!(in_memory(&shared, "a").is_some());
        assert_eq!(in_file(&shared, "a"), None);
    }

    /// The expiry index as (expiry, record key) pairs, in index order.
    fn indexed(db: &Database) -> Vec<(i64, String)> {
        let txn = db.begin_read().unwrap();
        let index = txn.open_table(EXPIRIES).unwrap();
        index
            .iter()
            .unwrap()
            .map(|e| {
                let key = e.unwrap().0.value().to_vec();
                let mut time: [u8; 8] = key[..8].try_into().unwrap();
                time[0] ^= 0x80;
                let record = String::from_utf8(key[8..].to_vec()).unwrap();
                (i64::from_be_bytes(time), record)
            })
            .collect()
    }

    #[test]
    fn the_expiry_index_follows_every_file_write() {
        let (_dir, shared) = temp_store();
        let durable = |key: &'static str, at: Option<i64>| {
            run(&shared, Durability::Durable, move |w| {
                w.put("t", key, b"x", at)
            })
            .unwrap();
        };
        durable("a", Some(10));
        durable("b", Some(-5));
        durable("forever", None);
        let k = |key: &str| String::from_utf8(record_key("t", key)).unwrap();
        // Only what expires, earliest first (a negative time sorts first).
        assert_eq!(indexed(&shared.db), vec![(-5, k("b")), (10, k("a"))]);
        // A rewrite moves the entry; dropping the expiry drops it.
        durable("a", Some(30));
        durable("b", None);
        assert_eq!(indexed(&shared.db), vec![(30, k("a"))]);
        durable("forever", Some(40));
        run(&shared, Durability::Durable, |w| w.remove("t", "a")).unwrap();
        assert_eq!(indexed(&shared.db), vec![(40, k("forever"))]);
        // A purge removes the record and its entry, and nothing later.
        durable("soon", Some(20));
        assert_eq!(
            run(&shared, Durability::Durable, |w| w.purge(39)).unwrap(),
            1
        );
        assert_eq!(in_file(&shared, "soon"), None);
        assert_eq!(indexed(&shared.db), vec![(40, k("forever"))]);
        assert_eq!(
            run(&shared, Durability::Durable, |w| w.purge(40)).unwrap(),
            1
        );
        assert!(indexed(&shared.db).is_empty());
        assert!(in_file(&shared, "b").is_some(), "b no longer expires");
    }

    #[test]
    fn a_file_from_before_the_expiry_index_is_indexed_once_on_open() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("legacy.redb");
        {
            // As an earlier build left it: records, no index.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut records = txn.open_table(RECORDS).unwrap();
                for (key, at) in [("old", Some(10)), ("new", Some(30)), ("user", None)] {
                    let encoded = encode_record(1, at, b"x");
                    records
                        .insert(record_key("t", key).as_slice(), encoded.as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let db = Database::create(&path).unwrap();
        prepare(&db).unwrap();
        let k = |key: &str| String::from_utf8(record_key("t", key)).unwrap();
        assert_eq!(indexed(&db), vec![(10, k("old")), (30, k("new"))]);
        let shared = Shared::new(db, MEMORY_BUDGET).unwrap();
        assert_eq!(
            run(&shared, Durability::Durable, |w| w.purge(20)).unwrap(),
            1
        );
        assert_eq!(in_file(&shared, "old"), None);
        assert!(in_file(&shared, "new").is_some());
        assert!(in_file(&shared, "user").is_some());
    }

    #[test]
    fn purge_removes_expired_records_from_both_tiers() {
        let (_dir, shared) = temp_store();
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for (key, at, durability) in [
            ("memory-old", 10, Durability::Ephemeral),
            ("memory-new", 30, Durability::Ephemeral),
            ("file-old", 10, Durability::Durable),
            ("file-new", 30, Durability::Durable),
        ] {
            let (j, a) = job(durability, move |w| w.put("t", key, b"x", Some(at)));
            batch.push(j);
            answers.push(a);
        }
        commit_batch(&shared, &mut batch);
        for a in answers {
            answer(a).unwrap();
        }
        assert_eq!(
            run(&shared, Durability::Durable, |w| w.purge(20)).unwrap(),
            2
        );
        assert_eq!(in_memory(&shared, "memory-old"), None);
        assert!(in_memory(&shared, "memory-new").is_some());
        assert_eq!(in_file(&shared, "file-old"), None);
        assert!(in_file(&shared, "file-new").is_some());
        assert!(nothing_busy(&shared));
    }

    #[test]
    fn shutdown_saves_the_memory_tier_with_its_versions() {
        let (dir, shared) = temp_store();
        let version = put(&shared, Durability::Ephemeral, "flow", b"f");
        save_memory(&shared);
        assert_eq!(shared.memory().bytes, 0);
        assert_eq!(after_crash(&dir, "flow").map(|r| r.version), Some(version));
    }

    #[test]
    fn counter_rejects_non_decimal_without_echoing_it() {
        let err = parse_counter(b"secret-value", "t").unwrap_err();
        assert!(!err.to_string().contains("secret-value"));
    }
}
