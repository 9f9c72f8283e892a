//! The embedded backend: every table in one crash-safe [redb] file.
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
//! Versions come from one counter for the whole file, advanced in the same
//! write transaction as the record, so a deleted-then-recreated key never
//! sees an old version again. Ephemeral commits can be lost in a crash and
//! take their counter updates with them; to keep versions unique even then,
//! the counter runs below a `version_ceiling` that is only ever raised by a
//! durable commit, and [`EmbeddedStore::open`] restarts the counter at the
//! ceiling. Raising it costs one extra fsync per [`VERSION_BLOCK`] writes.
//!
//! # Durability
//!
//! [`Durability::Durable`] maps to redb's `Immediate` (fsync before commit
//! returns). [`Durability::Ephemeral`] maps to redb's `None`: the commit is
//! visible to every later transaction at once and reaches the disk with the
//! next durable commit. redb only frees pages in durable commits, so a burst
//! of ephemeral writes grows the file until the next durable one;
//! [`Store::purge_expired`] commits durably and so doubles as that flush.
//! Counters ([`Store::increment`]) are written durably: they count failed
//! sign-in attempts, and a crash must not wipe a lockout.
//!
//! # Writes: one writer thread, group commit
//!
//! redb admits one write transaction at a time, and its cost is mostly per
//! transaction, not per key: opening the tables, copying the B-tree path to
//! the root, and on a durable commit an fsync that takes as long for one
//! record as for a hundred. So every write goes to one dedicated thread,
//! the *writer*, which owns all write transactions:
//!
//! ```text
//!  callers ──(op, reply)──▶ queue ──▶ writer: take every queued op (≤ MAX_BATCH)
//!                                       begin one write transaction
//!                                       apply op 1, op 2, … in arrival order
//!                                       commit once ── Durable if any op (or
//!                                       │              the version ceiling) needs it
//!                                       └─▶ reply to each op
//! ```
//!
//! Each op runs against the transaction as the previous ops left it, exactly
//! as if it had run alone right after them, so every op keeps its own
//! atomicity and preconditions; a failed precondition is that op's normal
//! answer and does not touch the others. The commit and its fsync are shared
//! by everything queued while the previous batch committed, which is what
//! lets concurrent requests (and above all durable refresh rotations) stop
//! paying one commit each; the price is that an ephemeral op queued next to
//! a durable one waits for that fsync too. Batching needs no timer: under
//! load, ops pile up while a commit runs; alone, an op is committed at once.
//! Before this design every write was its own `spawn_blocking` call and its
//! own transaction, with up to 32 blocking threads queueing on redb's writer
//! lock. With 32 concurrent callers on the 2-core benchmark machine (random
//! keys, 600-byte values; `benches/token_endpoint.rs`) an ephemeral put cost
//! ~130–290 µs of CPU and a durable commit 6–16 ms; now ~40–50 µs and
//! ~120–150 µs. What remains is redb's own copy-on-write: each write to a
//! random key rewrites a 4 KiB leaf and its branch pages, checksums them and
//! hands them to the kernel with `pwrite` at every commit, durable or not.
//!
//! An op that fails (a redb error, a record that does not decode) may
//! already have written part of its effects, so the batch is rolled back,
//! that op alone gets its error, and the others are applied again in a fresh
//! transaction; nobody has seen their results yet, so their versions may
//! change. If the commit itself fails nothing was written and every op of
//! the batch gets the error. A caller is answered only after the commit, so
//! the write is visible to whatever it does next.
//!
//! A caller that gives up waiting does not cancel its op once queued: the op
//! still commits or rolls back with its batch, so a `take` may consume a
//! record that nobody receives, which fails closed. Dropping the last handle
//! to the store closes the queue and waits for the writer to finish its
//! batch, so the file can be reopened at once. The writer only stops early
//! if redb panics; then every queued and later write, and [`Store::ping`],
//! fail as unavailable instead of hanging.
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
//! [`Store::scan_prefix`] still run on the blocking pool.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{Durability, Precondition, Record, Store, StoreError, StoreResult, Table, Txn, Write};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Every version handed out so far is below this; only raised durably.
const VERSION_CEILING: &str = "version_ceiling";
/// The counter itself, which earlier builds kept in the file; removed on
/// open.
const LEGACY_NEXT_VERSION: &str = "next_version";
/// How far one durable commit raises the ceiling.
const VERSION_BLOCK: u64 = 1 << 16;

/// Most ops the writer applies in one transaction. Bounds how long one
/// batch delays the next, and the work redone if one op fails.
const MAX_BATCH: usize = 256;
/// Ops that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 1024;

/// Most bytes the memory tier holds (see "Memory tier" in the module doc).
pub const MEMORY_BUDGET: usize = 256 << 20;
/// What one memory record costs beyond its key and value bytes (map node,
/// two `Vec` headers), counted against [`MEMORY_BUDGET`].
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
    db: Arc<Database>,
    memory: Arc<Memory>,
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
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
        let db = Database::create(path).map_err(|e| {
            with_path(match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Unavailable("already open in this or another process".to_owned())
                }
                other => backend(other),
            })
        })?;
        let engine = Engine::new(db, MEMORY_BUDGET).map_err(with_path)?;
        let db = Arc::clone(&engine.db);
        let memory = Arc::clone(&engine.memory);
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("gatepass-store-writer".to_owned())
            .spawn(move || run_writer(engine, queue))
            .map_err(|e| with_path(StoreError::Unavailable(format!("writer thread: {e}"))))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                memory,
                jobs: Some(jobs),
                writer: Some(writer),
            }),
        })
    }

    /// Queues `op` for the writer and waits for its committed result. `op`
    /// must be repeatable: it runs again if another op of its batch fails.
    async fn write<T: Send + 'static>(
        &self,
        durability: Durability,
        op: impl Fn(&mut Writer<'_, '_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
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
        op: impl FnOnce(&Database, &Memory) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = Arc::clone(&self.inner.db);
        let memory = Arc::clone(&self.inner.memory);
        tokio::task::spawn_blocking(move || op(&db, &memory))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

/// Creates both tables, so readers never meet a missing one, and returns
/// the version ceiling, where the counter restarts: past any version that
/// was handed out before, including to records a crash took with it.
fn prepare(db: &Database) -> StoreResult<u64> {
    let txn = db.begin_write().map_err(backend)?;
    let ceiling = {
        txn.open_table(RECORDS).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let ceiling = read_meta(&meta, VERSION_CEILING)?.unwrap_or(1);
        meta.insert(VERSION_CEILING, ceiling).map_err(backend)?;
        meta.remove(LEGACY_NEXT_VERSION).map_err(backend)?;
        ceiling
    };
    txn.commit().map_err(backend)?;
    Ok(ceiling)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, table: Table, key: &str, now: i64) -> StoreResult<Option<Record>> {
        // Inline: see "Reads" in the module doc. Memory first: see "Memory
        // tier" for why that order sees every record.
        let key = record_key(table, key);
        let record = match self.inner.memory.record(&key) {
            Some(record) => Some(record?),
            None => {
                let txn = self.inner.db.begin_read().map_err(backend)?;
                let records = txn.open_table(RECORDS).map_err(backend)?;
                let found = records.get(key.as_slice()).map_err(backend)?;
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
        let key = record_key(table, key);
        self.write(durability, move |w| w.put(&key, &value, expires_at))
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
        let key = record_key(table, key);
        self.write(durability, move |w| {
            if w.live(&key, now)?.is_some() {
                return Ok(None);
            }
            w.put(&key, &value, expires_at).map(Some)
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
        let key = record_key(table, key);
        self.write(durability, move |w| {
            Ok(w.remove(&key)?.filter(|r| is_live(r, now)))
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
        let key = record_key(table, key);
        self.write(durability, move |w| {
            match w.live(&key, now)? {
                Some(current) if current.version == expected => {}
                _ => return Ok(None),
            }
            match &new_value {
                Some(value) => w.put(&key, value, expires_at).map(Some),
                None => w.remove(&key).map(|_| Some(0)),
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
        let key = record_key(table, key);
        self.write(durability, move |w| {
            Ok(w.remove(&key)?.is_some_and(|r| is_live(&r, now)))
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
        now: i64,
    ) -> StoreResult<i64> {
        let key = record_key(table, key);
        self.write(Durability::Durable, move |w| {
            let (current, expires_at) = match w.live(&key, now)? {
                Some(record) => (parse_counter(&record.value, table)?, record.expires_at),
                None => (0, expires_at),
            };
            let next = current.saturating_add(delta);
            w.put(&key, next.to_string().as_bytes(), expires_at)?;
            Ok(next)
        })
        .await
    }

    async fn commit(&self, txn: Txn, now: i64) -> StoreResult<bool> {
        self.write(txn.durability, move |w| {
            for (table, key, pre) in &txn.checks {
                let live = w.live(&record_key(table, key), now)?;
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
                        w.put(&record_key(table, key), value, *expires_at)?;
                    }
                    Write::Delete { table, key } => {
                        w.remove(&record_key(table, key))?;
                    }
                }
            }
            Ok(true)
        })
        .await
    }

    async fn scan(&self, table: Table, now: i64) -> StoreResult<Vec<(String, Record)>> {
        self.read_blocking(move |db, memory| scan_range(db, memory, table, "", now))
            .await
    }

    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        let prefix = prefix.to_owned();
        self.read_blocking(move |db, memory| scan_range(db, memory, table, &prefix, now))
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
        let txn = self.inner.db.begin_read().map_err(backend)?;
        txn.open_table(RECORDS).map_err(backend)?;
        Ok(())
    }
}

/// The live records of `table` whose key starts with `prefix`, from both
/// tiers: the memory tier's range, then one range read in the file from the
/// first possible key to the first key past the prefix.
fn scan_range(
    db: &Database,
    memory: &Memory,
    table: Table,
    prefix: &str,
    now: i64,
) -> StoreResult<Vec<(String, Record)>> {
    let table_prefix_len = record_key(table, "").len();
    let start = record_key(table, prefix);
    // Memory first (see "Memory tier"). A record that moved to the file
    // between the two reads is seen twice; the higher version is the newer.
    let mut found = memory.range(&start)?;
    let txn = db.begin_read().map_err(backend)?;
    let records = txn.open_table(RECORDS).map_err(backend)?;
    for entry in records.range(start.as_slice()..).map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let k = k.value();
        // Keys sort bytewise, so the matching ones are contiguous.
        if !k.starts_with(&start) {
            break;
        }
        let record = decode_record(v.value())?;
        match found.entry(k.to_vec()) {
            Entry::Vacant(slot) => {
                slot.insert(record);
            }
            Entry::Occupied(mut slot) => {
                if record.version > slot.get().version {
                    slot.insert(record);
                }
            }
        }
    }
    let mut live = Vec::with_capacity(found.len());
    for (k, record) in found {
        if is_live(&record, now) {
            let key = String::from_utf8(k[table_prefix_len..].to_vec())
                .map_err(|_| StoreError::Corrupt(format!("non-UTF-8 key in table {table}")))?;
            live.push((key, record));
        }
    }
    Ok(live)
}

/// The memory tier: records whose latest write was ephemeral, kept out of
/// the file. Holds encoded records (the file's value format), by full key.
/// A key is never in both tiers at once (see "Memory tier").
#[derive(Default)]
struct Memory {
    state: RwLock<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Sum of [`memory_cost`] over `records`.
    bytes: usize,
}

/// One batch's changes to the memory tier: `Some` writes an encoded
/// record, `None` removes the key.
type MemoryChanges = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

impl Memory {
    /// Only the writer thread takes the write lock, for a few map inserts
    /// that cannot leave the map half-changed, so a poisoned lock (a panic
    /// elsewhere while holding it) still guards a consistent map.
    fn read(&self) -> RwLockReadGuard<'_, MemoryState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The decoded record under `key`, if the tier holds one.
    fn record(&self, key: &[u8]) -> Option<StoreResult<Record>> {
        self.read().records.get(key).map(|v| decode_record(v))
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.read().records.contains_key(key)
    }

    fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Every record whose key starts with `prefix`, decoded.
    fn range(&self, prefix: &[u8]) -> StoreResult<BTreeMap<Vec<u8>, Record>> {
        let state = self.read();
        let mut found = BTreeMap::new();
        for (k, v) in state.records.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            found.insert(k.clone(), decode_record(v)?);
        }
        Ok(found)
    }

    /// The keys of records whose expiry is at or before `now`.
    fn expired(&self, now: i64) -> StoreResult<Vec<Vec<u8>>> {
        let state = self.read();
        let mut expired = Vec::new();
        for (k, v) in &state.records {
            if expires_at(v)?.is_some_and(|at| at <= now) {
                expired.push(k.clone());
            }
        }
        Ok(expired)
    }

    fn apply(&self, changes: MemoryChanges) {
        if changes.is_empty() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for (key, change) in changes {
            if let Some(old) = state.records.remove(&key) {
                state.bytes -= memory_cost(&key, &old);
            }
            if let Some(value) = change {
                state.bytes += memory_cost(&key, &value);
                state.records.insert(key, value);
            }
        }
    }

    fn take_all(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.bytes = 0;
        std::mem::take(&mut state.records)
    }
}

fn memory_cost(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + MEMORY_ENTRY_OVERHEAD
}

/// One queued write: an op, what the writer must do for it, and where its
/// answer goes.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// Applies the op to the batch's transaction and keeps its result.
    fn apply(&mut self, w: &mut Writer<'_, '_>) -> StoreResult<()>;
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
    F: Fn(&mut Writer<'_, '_>) -> StoreResult<T> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn apply(&mut self, w: &mut Writer<'_, '_>) -> StoreResult<()> {
        self.result = Some((self.op)(w)?);
        Ok(())
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
fn run_writer(mut engine: Engine, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        engine.commit_batch(&mut batch);
    }
    engine.save_memory();
}

/// Why a batch did not commit.
enum BatchFailure {
    /// The op at this index failed; the others may still commit.
    Op(usize, StoreError),
    /// The transaction failed as a whole.
    Txn(StoreError),
}

/// The version counter: the next version to hand out, and the durable
/// ceiling every handed-out version stays below.
#[derive(Debug, Clone, Copy)]
struct Versions {
    next: u64,
    ceiling: u64,
}

/// What the writer thread owns: the file, the memory tier, and the version
/// counter as of the last commit.
struct Engine {
    db: Arc<Database>,
    memory: Arc<Memory>,
    /// Most bytes the memory tier may hold; [`MEMORY_BUDGET`] outside tests.
    budget: usize,
    versions: Versions,
}

impl Engine {
    fn new(db: Database, budget: usize) -> StoreResult<Engine> {
        let ceiling = prepare(&db)?;
        Ok(Engine {
            db: Arc::new(db),
            memory: Arc::new(Memory::default()),
            budget,
            versions: Versions {
                next: ceiling,
                ceiling,
            },
        })
    }

    /// Commits `batch` (emptying it) and answers every op in it.
    fn commit_batch(&mut self, batch: &mut Vec<Box<dyn Job>>) {
        while !batch.is_empty() {
            match self.apply_batch(batch) {
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

    /// Applies every op of `batch` in order in one write transaction and
    /// commits it, then publishes the batch's memory-tier changes. Any error
    /// rolls back both.
    fn apply_batch(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), BatchFailure> {
        let whole = BatchFailure::Txn;
        let mut txn = self.db.begin_write().map_err(|e| whole(backend(e)))?;
        let done = {
            let mut writer = Writer {
                records: txn.open_table(RECORDS).map_err(|e| whole(backend(e)))?,
                meta: txn.open_table(META).map_err(|e| whole(backend(e)))?,
                memory: &self.memory,
                changes: MemoryChanges::new(),
                room: self.budget.saturating_sub(self.memory.bytes()),
                durability: Durability::Durable,
                versions: self.versions,
                file_changed: false,
                must_persist: false,
            };
            for (i, job) in batch.iter_mut().enumerate() {
                writer.durability = job.durability();
                // Dropping `txn` and `writer` without committing rolls both
                // back.
                job.apply(&mut writer).map_err(|e| BatchFailure::Op(i, e))?;
            }
            Done {
                changes: writer.changes,
                versions: writer.versions,
                file_changed: writer.file_changed,
                must_persist: writer.must_persist,
            }
        };
        if done.file_changed {
            let durable =
                done.must_persist || batch.iter().any(|j| j.durability() == Durability::Durable);
            txn.set_durability(if durable {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            });
            txn.commit().map_err(|e| whole(backend(e)))?;
        } else {
            // Nothing for the file (every op touched only the memory tier,
            // only read, or failed a precondition): no commit, no fsync.
            txn.abort().map_err(|e| whole(backend(e)))?;
        }
        // Only now, with the file committed: a record that moves from memory
        // to the file is in the file before it leaves memory.
        self.memory.apply(done.changes);
        self.versions = done.versions;
        Ok(())
    }

    /// Moves the memory tier into the file in one durable commit, so a
    /// graceful shutdown loses nothing.
    fn save_memory(&self) {
        let records = self.memory.take_all();
        if records.is_empty() {
            return;
        }
        let saved = (|| {
            let mut txn = self.db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(RECORDS).map_err(backend)?;
                for (key, value) in &records {
                    table
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(backend)?;
                }
            }
            txn.set_durability(redb::Durability::Immediate);
            txn.commit().map_err(backend)
        })();
        if let Err(e) = saved {
            tracing::warn!(error = %e, records = records.len(), "could not save in-memory records at shutdown; they are lost");
        }
    }
}

/// What a batch's ops left to do once they have all applied.
struct Done {
    changes: MemoryChanges,
    versions: Versions,
    file_changed: bool,
    must_persist: bool,
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

/// One batch's view of both tiers: the file's open tables, the memory tier
/// with this batch's changes over it, and what the ops so far have done.
struct Writer<'txn, 'm> {
    records: redb::Table<'txn, &'static [u8], &'static [u8]>,
    meta: redb::Table<'txn, &'static str, u64>,
    memory: &'m Memory,
    /// This batch's memory-tier changes, published after the commit.
    changes: MemoryChanges,
    /// Bytes the memory tier may still take in this batch.
    room: usize,
    /// The durability of the op being applied.
    durability: Durability,
    versions: Versions,
    file_changed: bool,
    /// Set when the ceiling was raised, which must reach the disk.
    must_persist: bool,
}

impl Writer<'_, '_> {
    /// The encoded record under `key` in the memory tier, as this batch has
    /// left it so far.
    fn in_memory(&self, key: &[u8]) -> Option<StoreResult<Record>> {
        match self.changes.get(key) {
            Some(change) => change.as_deref().map(decode_record),
            None => self.memory.record(key),
        }
    }

    fn is_in_memory(&self, key: &[u8]) -> bool {
        match self.changes.get(key) {
            Some(change) => change.is_some(),
            None => self.memory.contains(key),
        }
    }

    /// The record under `key`, live or expired, from whichever tier has it.
    fn stored(&self, key: &[u8]) -> StoreResult<Option<Record>> {
        if let Some(record) = self.in_memory(key) {
            return record.map(Some);
        }
        let found = self.records.get(key).map_err(backend)?;
        found.map(|v| decode_record(v.value())).transpose()
    }

    fn live(&self, key: &[u8], now: i64) -> StoreResult<Option<Record>> {
        Ok(self.stored(key)?.filter(|r| is_live(r, now)))
    }

    /// Writes a record under a fresh version and returns it. An ephemeral
    /// write stays in (or goes to) the memory tier unless the key is already
    /// in the file or the tier is full; a durable write goes to the file and
    /// takes the key out of memory.
    fn put(&mut self, key: &[u8], value: &[u8], expires_at: Option<i64>) -> StoreResult<u64> {
        let version = self.next_version()?;
        let encoded = encode_record(version, expires_at, value);
        let in_memory = self.is_in_memory(key);
        let to_memory = self.durability == Durability::Ephemeral
            && (in_memory
                || (memory_cost(key, &encoded) <= self.room
                    && self.records.get(key).map_err(backend)?.is_none()));
        if to_memory {
            self.room = self.room.saturating_sub(memory_cost(key, &encoded));
            self.changes.insert(key.to_vec(), Some(encoded));
        } else {
            self.records
                .insert(key, encoded.as_slice())
                .map_err(backend)?;
            self.file_changed = true;
            if in_memory {
                self.changes.insert(key.to_vec(), None);
            }
        }
        Ok(version)
    }

    /// Removes whatever is stored, live or expired, and returns it.
    fn remove(&mut self, key: &[u8]) -> StoreResult<Option<Record>> {
        if let Some(record) = self.in_memory(key) {
            let record = record?;
            self.changes.insert(key.to_vec(), None);
            return Ok(Some(record));
        }
        let removed = self.records.remove(key).map_err(backend)?;
        let record = removed.map(|v| decode_record(v.value())).transpose()?;
        self.file_changed |= record.is_some();
        Ok(record)
    }

    /// Removes every record expired at `now` from both tiers; returns how
    /// many. Always commits the file durably, which also flushes earlier
    /// ephemeral commits to disk and frees their pages.
    fn purge(&mut self, now: i64) -> StoreResult<u64> {
        let mut purged = 0;
        for key in self.memory.expired(now)? {
            // An op earlier in this batch may have rewritten it.
            if !self.changes.contains_key(&key) {
                self.changes.insert(key, None);
                purged += 1;
            }
        }
        let before = self.records.len().map_err(backend)?;
        let mut undecodable = false;
        self.records
            .retain(|_, v| match expires_at(v) {
                Ok(at) => at.is_none_or(|at| at > now),
                Err(_) => {
                    undecodable = true;
                    true
                }
            })
            .map_err(backend)?;
        if undecodable {
            return Err(StoreError::Corrupt(
                "undecodable record header found while purging".to_owned(),
            ));
        }
        purged += before - self.records.len().map_err(backend)?;
        self.file_changed = true;
        Ok(purged)
    }

    fn next_version(&mut self) -> StoreResult<u64> {
        let Versions { next, ceiling } = self.versions;
        let exhausted = || StoreError::Corrupt("version counter exhausted".to_owned());
        let after = next.checked_add(1).ok_or_else(exhausted)?;
        if after > ceiling {
            let raised = after.checked_add(VERSION_BLOCK).ok_or_else(exhausted)?;
            self.meta
                .insert(VERSION_CEILING, raised)
                .map_err(backend)?;
            self.versions.ceiling = raised;
            self.file_changed = true;
            self.must_persist = true;
        }
        self.versions.next = after;
        Ok(next)
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

    fn temp_engine_with_budget(budget: usize) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::TempDir::new().unwrap();
        let db = Database::create(dir.path().join("batch.redb")).unwrap();
        (dir, Engine::new(db, budget).unwrap())
    }

    fn temp_engine() -> (tempfile::TempDir, Engine) {
        temp_engine_with_budget(MEMORY_BUDGET)
    }

    type Answer<T> = oneshot::Receiver<StoreResult<T>>;

    fn job<T: Send + 'static>(
        durability: Durability,
        op: impl Fn(&mut Writer<'_, '_>) -> StoreResult<T> + Send + 'static,
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
    fn stored(db: &Database, key: &[u8]) -> Option<Record> {
        let txn = db.begin_read().unwrap();
        let records = txn.open_table(RECORDS).unwrap();
        let found = records.get(key).unwrap();
        found.map(|v| decode_record(v.value()).unwrap())
    }

    fn in_file(engine: &Engine, key: &str) -> Option<Record> {
        stored(&engine.db, &record_key("t", key))
    }

    fn in_memory(engine: &Engine, key: &str) -> Option<Record> {
        engine
            .memory
            .record(&record_key("t", key))
            .transpose()
            .unwrap()
    }

    /// Runs one op alone and returns its answer.
    fn run<T: Send + 'static>(
        engine: &mut Engine,
        durability: Durability,
        op: impl Fn(&mut Writer<'_, '_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (job, reply) = job(durability, op);
        engine.commit_batch(&mut vec![job]);
        answer(reply)
    }

    fn put(engine: &mut Engine, durability: Durability, key: &'static str, value: &'static [u8]) -> u64 {
        run(engine, durability, move |w| {
            w.put(&record_key("t", key), value, None)
        })
        .unwrap()
    }

    fn put_job(key: &'static str, value: &'static [u8]) -> (Box<dyn Job>, Answer<u64>) {
        job(Durability::Ephemeral, move |w| {
            w.put(&record_key("t", key), value, None)
        })
    }

    #[test]
    fn batched_op_sees_the_ops_before_it() {
        let (_dir, mut engine) = temp_engine();
        let (first, first_answer) = put_job("k", b"first");
        let (second, second_answer) = job(Durability::Ephemeral, |w| {
            let key = record_key("t", "k");
            if w.live(&key, 0)?.is_some() {
                return Ok(None);
            }
            w.put(&key, b"second", None).map(Some)
        });
        let mut batch = vec![first, second];
        engine.commit_batch(&mut batch);

        assert!(batch.is_empty());
        let version = answer(first_answer).unwrap();
        assert_eq!(
            answer(second_answer).unwrap(),
            None,
            "insert after a put in the same batch"
        );
        assert_eq!(
            in_memory(&engine, "k"),
            Some(Record {
                value: b"first".to_vec(),
                version,
                expires_at: None
            })
        );
    }

    #[test]
    fn failing_op_leaves_no_partial_write_and_spares_its_batch() {
        let (_dir, mut engine) = temp_engine();
        let (before, before_answer) = put_job("before", b"b");
        // Writes to the file, then fails: its write must not be committed.
        let (failing, failing_answer) = job(Durability::Durable, |w| {
            w.put(&record_key("t", "partial"), b"p", None)?;
            Err::<(), _>(StoreError::Corrupt("boom".to_owned()))
        });
        // Writes to the memory tier, then fails: nothing may show either.
        let (failing_in_memory, failing_in_memory_answer) = job(Durability::Ephemeral, |w| {
            w.put(&record_key("t", "partial-memory"), b"p", None)?;
            w.remove(&record_key("t", "before"))?;
            Err::<(), _>(StoreError::Corrupt("boom".to_owned()))
        });
        let (after, after_answer) = put_job("after", b"a");
        let mut batch = vec![before, failing, failing_in_memory, after];
        engine.commit_batch(&mut batch);

        for failed in [failing_answer, failing_in_memory_answer] {
            assert!(matches!(
                answer(failed),
                Err(StoreError::Corrupt(m)) if m == "boom"
            ));
        }
        let v_before = answer(before_answer).unwrap();
        let v_after = answer(after_answer).unwrap();
        assert_ne!(v_before, v_after);
        assert_eq!(in_file(&engine, "partial"), None);
        assert_eq!(in_memory(&engine, "partial"), None);
        assert_eq!(in_memory(&engine, "partial-memory"), None);
        assert_eq!(in_file(&engine, "partial-memory"), None);
        assert_eq!(
            in_memory(&engine, "before").map(|r| r.version),
            Some(v_before)
        );
        assert_eq!(
            in_memory(&engine, "after").map(|r| r.version),
            Some(v_after)
        );
    }

    /// A copy of the file is what a crash leaves: only durable commits.
    fn after_crash(dir: &tempfile::TempDir, key: &str) -> Option<Record> {
        let copy = dir.path().join(format!("crash-{key}.redb"));
        std::fs::copy(dir.path().join("batch.redb"), &copy).unwrap();
        let crashed = Database::create(&copy).unwrap();
        stored(&crashed, &record_key("t", key))
    }

    #[test]
    fn ephemeral_records_stay_in_memory_until_a_durable_write_moves_them() {
        let (dir, mut engine) = temp_engine();
        let ephemeral = Durability::Ephemeral;
        let v1 = put(&mut engine, ephemeral, "code", b"issued");
        assert_eq!(in_memory(&engine, "code").map(|r| r.version), Some(v1));
        assert_eq!(in_file(&engine, "code"), None);

        let v2 = put(&mut engine, ephemeral, "code", b"again");
        assert_eq!(in_memory(&engine, "code").map(|r| r.version), Some(v2));
        assert_eq!(after_crash(&dir, "code"), None, "never on disk");

        // A durable write moves the key to the file, on disk at once.
        let v3 = put(&mut engine, Durability::Durable, "code", b"redeemed");
        assert_eq!(in_memory(&engine, "code"), None);
        assert_eq!(in_file(&engine, "code").map(|r| r.version), Some(v3));
        assert_eq!(after_crash(&dir, "code").map(|r| r.version), Some(v3));

        // Once in the file, ephemeral writes stay there, so no crash can
        // bring back an older durable value from under a lost memory one.
        let v4 = put(&mut engine, ephemeral, "code", b"later");
        assert_eq!(in_memory(&engine, "code"), None);
        assert_eq!(in_file(&engine, "code").map(|r| r.version), Some(v4));
        assert!(v1 < v2 && v2 < v3 && v3 < v4);

        // Removing it from the file frees the key for the memory tier.
        let removed = run(&mut engine, ephemeral, |w| w.remove(&record_key("t", "code")));
        assert_eq!(removed.unwrap().map(|r| r.version), Some(v4));
        put(&mut engine, ephemeral, "code", b"new");
        assert_eq!(in_file(&engine, "code"), None);
        assert!(in_memory(&engine, "code").is_some());
    }

    #[test]
    fn a_memory_only_batch_leaves_the_file_alone() {
        let (dir, mut engine) = temp_engine();
        // The first write raises the version ceiling, durably.
        put(&mut engine, Durability::Durable, "warm", b"w");
        let file_len = || std::fs::metadata(dir.path().join("batch.redb")).unwrap().len();
        let before = file_len();
        let ceiling = engine.versions.ceiling;
        for _ in 0..100 {
            put(&mut engine, Durability::Ephemeral, "flow", b"f");
        }
        let (take, taken) = job(Durability::Durable, |w| w.remove(&record_key("t", "flow")));
        engine.commit_batch(&mut vec![take]);
        assert!(answer(taken).unwrap().is_some());
        assert_eq!(file_len(), before);
        assert_eq!(engine.versions.ceiling, ceiling);
        assert_eq!(after_crash(&dir, "flow"), None);
    }

    #[test]
    fn one_durable_op_makes_its_batch_durable() {
        let (dir, mut engine) = temp_engine();
        put(&mut engine, Durability::Durable, "file", b"v1");
        // An ephemeral write to a key in the file is an ephemeral commit of
        // the file: visible at once, on disk only with a durable commit.
        let (alone, alone_answer) = put_job("file", b"v2");
        engine.commit_batch(&mut vec![alone]);
        let v2 = answer(alone_answer).unwrap();
        assert_eq!(in_file(&engine, "file").map(|r| r.version), Some(v2));
        assert_ne!(after_crash(&dir, "file").map(|r| r.version), Some(v2));

        let (ephemeral, ephemeral_answer) = put_job("file", b"v3");
        let (durable, durable_answer) = job(Durability::Durable, |w| {
            w.put(&record_key("t", "durable"), b"d", None)
        });
        engine.commit_batch(&mut vec![ephemeral, durable]);
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
        let one = memory_cost(&record_key("t", "a"), &encode_record(0, None, b"value"));
        let (_dir, mut engine) = temp_engine_with_budget(one);
        put(&mut engine, Durability::Ephemeral, "a", b"value");
        put(&mut engine, Durability::Ephemeral, "b", b"value");
        assert!(in_memory(&engine, "a").is_some());
        assert_eq!(in_file(&engine, "a"), None);
        assert!(in_file(&engine, "b").is_some(), "spilled");
        assert_eq!(in_memory(&engine, "b"), None);
        assert_eq!(engine.memory.bytes(), one);

        // Rewriting a record the tier already holds never spills it.
        put(&mut engine, Durability::Ephemeral, "a", b"other");
        assert!(in_memory(&engine, "a").is_some());
        assert_eq!(in_file(&engine, "a"), None);
    }

    #[test]
    fn purge_removes_expired_records_from_both_tiers() {
        let (_dir, mut engine) = temp_engine();
        let expiring = |key: &'static str, at: i64, durability| {
            job(durability, move |w| w.put(&record_key("t", key), b"x", Some(at)))
        };
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for (key, at, durability) in [
            ("memory-old", 10, Durability::Ephemeral),
            ("memory-new", 30, Durability::Ephemeral),
            ("file-old", 10, Durability::Durable),
            ("file-new", 30, Durability::Durable),
        ] {
            let (j, a) = expiring(key, at, durability);
            batch.push(j);
            answers.push(a);
        }
        engine.commit_batch(&mut batch);
        for a in answers {
            answer(a).unwrap();
        }
        assert_eq!(run(&mut engine, Durability::Durable, |w| w.purge(20)).unwrap(), 2);
        assert_eq!(in_memory(&engine, "memory-old"), None);
        assert!(in_memory(&engine, "memory-new").is_some());
        assert_eq!(in_file(&engine, "file-old"), None);
        assert!(in_file(&engine, "file-new").is_some());
    }

    #[test]
    fn shutdown_saves_the_memory_tier_with_its_versions() {
        let (dir, mut engine) = temp_engine();
        let version = put(&mut engine, Durability::Ephemeral, "flow", b"f");
        engine.save_memory();
        assert_eq!(engine.memory.bytes(), 0);
        assert_eq!(after_crash(&dir, "flow").map(|r| r.version), Some(version));
    }

    #[test]
    fn counter_rejects_non_decimal_without_echoing_it() {
        let err = parse_counter(b"secret-value", "t").unwrap_err();
        assert!(!err.to_string().contains("secret-value"));
    }
}
