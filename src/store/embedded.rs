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

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{Durability, Precondition, Record, Store, StoreError, StoreResult, Table, Txn, Write};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The next version to hand out.
const NEXT_VERSION: &str = "next_version";
/// Every version handed out so far is below this; only raised durably.
const VERSION_CEILING: &str = "version_ceiling";
/// How far one durable commit raises the ceiling.
const VERSION_BLOCK: u64 = 1 << 16;

/// Most ops the writer applies in one transaction. Bounds how long one
/// batch delays the next, and the work redone if one op fails.
const MAX_BATCH: usize = 256;
/// Ops that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 1024;

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 18;

/// A [`Store`] in one local redb file. Cheap to clone; clones share the file
/// and its writer thread.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
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
        // Closing the queue ends the writer after its current batch; joining
        // it releases redb's file lock before `drop` returns.
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
        prepare(&db).map_err(with_path)?;
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("gatepass-store-writer".to_owned())
            .spawn({
                let db = Arc::clone(&db);
                move || run_writer(&db, queue)
            })
            .map_err(|e| with_path(StoreError::Unavailable(format!("writer thread: {e}"))))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
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
        op: impl Fn(&mut Writer<'_>) -> StoreResult<T> + Send + 'static,
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
        op: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = Arc::clone(&self.inner.db);
        tokio::task::spawn_blocking(move || op(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

/// Creates both tables, so readers never meet a missing one, and restarts
/// the version counter at the ceiling, skipping any versions that ephemeral
/// commits lost in a crash may have handed out.
fn prepare(db: &Database) -> StoreResult<()> {
    let txn = db.begin_write().map_err(backend)?;
    {
        txn.open_table(RECORDS).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let ceiling = read_meta(&meta, VERSION_CEILING)?.unwrap_or(1);
        meta.insert(NEXT_VERSION, ceiling).map_err(backend)?;
        meta.insert(VERSION_CEILING, ceiling).map_err(backend)?;
    }
    txn.commit().map_err(backend)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, table: Table, key: &str, now: i64) -> StoreResult<Option<Record>> {
        // Inline: see "Reads" in the module doc.
        let txn = self.inner.db.begin_read().map_err(backend)?;
        let records = txn.open_table(RECORDS).map_err(backend)?;
        let found = records
            .get(record_key(table, key).as_slice())
            .map_err(backend)?;
        Ok(found
            .map(|v| decode_record(v.value()))
            .transpose()?
            .filter(|r| is_live(r, now)))
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
        self.read_blocking(move |db| scan_range(db, table, "", now))
            .await
    }

    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        let prefix = prefix.to_owned();
        self.read_blocking(move |db| scan_range(db, table, &prefix, now))
            .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.write(Durability::Durable, move |w| {
            let before = w.records.len().map_err(backend)?;
            let mut undecodable = false;
            w.records
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
            let purged = before - w.records.len().map_err(backend)?;
            // Committing even when nothing expired flushes earlier
            // ephemeral commits to disk and frees their pages.
            w.changed = true;
            Ok(purged)
        })
        .await
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

/// The live records of `table` whose key starts with `prefix`: one range
/// read from the first possible key to the first key past the prefix.
fn scan_range(
    db: &Database,
    table: Table,
    prefix: &str,
    now: i64,
) -> StoreResult<Vec<(String, Record)>> {
    let table_prefix_len = record_key(table, "").len();
    let start = record_key(table, prefix);
    let txn = db.begin_read().map_err(backend)?;
    let records = txn.open_table(RECORDS).map_err(backend)?;
    let mut live = Vec::new();
    for entry in records.range(start.as_slice()..).map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let k = k.value();
        // Keys sort bytewise, so the matching ones are contiguous.
        if !k.starts_with(&start) {
            break;
        }
        let record = decode_record(v.value())?;
        if is_live(&record, now) {
            let key = String::from_utf8(k[table_prefix_len..].to_vec())
                .map_err(|_| StoreError::Corrupt(format!("non-UTF-8 key in table {table}")))?;
            live.push((key, record));
        }
    }
    Ok(live)
}

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
    F: Fn(&mut Writer<'_>) -> StoreResult<T> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn apply(&mut self, w: &mut Writer<'_>) -> StoreResult<()> {
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
/// the store is gone.
fn run_writer(db: &Database, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        commit_batch(db, &mut batch);
    }
}

/// Why a batch did not commit.
enum BatchFailure {
    /// The op at this index failed; the others may still commit.
    Op(usize, StoreError),
    /// The transaction failed as a whole.
    Txn(StoreError),
}

/// Commits `batch` (emptying it) and answers every op in it.
fn commit_batch(db: &Database, batch: &mut Vec<Box<dyn Job>>) {
    while !batch.is_empty() {
        match apply_batch(db, batch) {
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

/// Applies every op of `batch` in order in one write transaction and commits
/// it. Any error rolls the whole transaction back.
fn apply_batch(db: &Database, batch: &mut [Box<dyn Job>]) -> Result<(), BatchFailure> {
    let whole = BatchFailure::Txn;
    let mut txn = db.begin_write().map_err(|e| whole(backend(e)))?;
    let (changed, must_persist) = {
        let mut writer = Writer {
            records: txn.open_table(RECORDS).map_err(|e| whole(backend(e)))?,
            meta: txn.open_table(META).map_err(|e| whole(backend(e)))?,
            versions: None,
            changed: false,
            must_persist: false,
        };
        for (i, job) in batch.iter_mut().enumerate() {
            // Dropping `txn` without committing rolls it back.
            job.apply(&mut writer).map_err(|e| BatchFailure::Op(i, e))?;
        }
        writer.save_versions().map_err(whole)?;
        (writer.changed, writer.must_persist)
    };
    if !changed {
        // Nothing to persist (every op was a read or a failed precondition):
        // skip the commit and its fsync.
        return txn.abort().map_err(|e| whole(backend(e)));
    }
    let durable = must_persist || batch.iter().any(|j| j.durability() == Durability::Durable);
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    });
    txn.commit().map_err(|e| whole(backend(e)))
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

/// The open tables of one write transaction, plus what the ops applied so
/// far have done.
struct Writer<'txn> {
    records: redb::Table<'txn, &'static [u8], &'static [u8]>,
    meta: redb::Table<'txn, &'static str, u64>,
    /// `(next, ceiling)`, read on the first allocation.
    versions: Option<(u64, u64)>,
    changed: bool,
    /// Set when the ceiling was raised, which must reach the disk.
    must_persist: bool,
}

impl Writer<'_> {
    fn live(&self, key: &[u8], now: i64) -> StoreResult<Option<Record>> {
        let found = self.records.get(key).map_err(backend)?;
        Ok(found
            .map(|v| decode_record(v.value()))
            .transpose()?
            .filter(|r| is_live(r, now)))
    }

    /// Writes a record under a fresh version and returns it.
    fn put(&mut self, key: &[u8], value: &[u8], expires_at: Option<i64>) -> StoreResult<u64> {
        let version = self.next_version()?;
        let encoded = encode_record(version, expires_at, value);
        self.records
            .insert(key, encoded.as_slice())
            .map_err(backend)?;
        self.changed = true;
        Ok(version)
    }

    /// Removes whatever is stored, live or expired, and returns it.
    fn remove(&mut self, key: &[u8]) -> StoreResult<Option<Record>> {
        let removed = self.records.remove(key).map_err(backend)?;
        let record = removed.map(|v| decode_record(v.value())).transpose()?;
        self.changed |= record.is_some();
        Ok(record)
    }

    fn next_version(&mut self) -> StoreResult<u64> {
        let (next, mut ceiling) = match self.versions {
            Some(state) => state,
            None => {
                let next = read_meta(&self.meta, NEXT_VERSION)?;
                let ceiling = read_meta(&self.meta, VERSION_CEILING)?;
                next.zip(ceiling)
                    .ok_or_else(|| StoreError::Corrupt("version counter missing".to_owned()))?
            }
        };
        let exhausted = || StoreError::Corrupt("version counter exhausted".to_owned());
        let after = next.checked_add(1).ok_or_else(exhausted)?;
        if after > ceiling {
            ceiling = after.checked_add(VERSION_BLOCK).ok_or_else(exhausted)?;
            self.must_persist = true;
        }
        self.versions = Some((after, ceiling));
        Ok(next)
    }

    fn save_versions(&mut self) -> StoreResult<()> {
        if let Some((next, ceiling)) = self.versions {
            self.meta.insert(NEXT_VERSION, next).map_err(backend)?;
            self.meta
                .insert(VERSION_CEILING, ceiling)
                .map_err(backend)?;
        }
        Ok(())
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

    fn temp_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::TempDir::new().unwrap();
        let db = Database::create(dir.path().join("batch.redb")).unwrap();
        prepare(&db).unwrap();
        (dir, db)
    }

    type Answer<T> = oneshot::Receiver<StoreResult<T>>;

    fn job<T: Send + 'static>(
        durability: Durability,
        op: impl Fn(&mut Writer<'_>) -> StoreResult<T> + Send + 'static,
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

    fn stored(db: &Database, key: &[u8]) -> Option<Record> {
        let txn = db.begin_read().unwrap();
        let records = txn.open_table(RECORDS).unwrap();
        let found = records.get(key).unwrap();
        found.map(|v| decode_record(v.value()).unwrap())
    }

    fn put_job(key: &'static str, value: &'static [u8]) -> (Box<dyn Job>, Answer<u64>) {
        job(Durability::Ephemeral, move |w| {
            w.put(&record_key("t", key), value, None)
        })
    }

    #[test]
    fn batched_op_sees_the_ops_before_it() {
        let (_dir, db) = temp_db();
        let (first, first_answer) = put_job("k", b"first");
        let (second, second_answer) = job(Durability::Ephemeral, |w| {
            let key = record_key("t", "k");
            if w.live(&key, 0)?.is_some() {
                return Ok(None);
            }
            w.put(&key, b"second", None).map(Some)
        });
        let mut batch = vec![first, second];
        commit_batch(&db, &mut batch);

        assert!(batch.is_empty());
        let version = answer(first_answer).unwrap();
        assert_eq!(
            answer(second_answer).unwrap(),
            None,
            "insert after a put in the same batch"
        );
        assert_eq!(
            stored(&db, &record_key("t", "k")),
            Some(Record {
                value: b"first".to_vec(),
                version,
                expires_at: None
            })
        );
    }

    #[test]
    fn failing_op_leaves_no_partial_write_and_spares_its_batch() {
        let (_dir, db) = temp_db();
        let (before, before_answer) = put_job("before", b"b");
        // Writes, then fails: its write must not be committed.
        let (failing, failing_answer) = job(Durability::Durable, |w| {
            w.put(&record_key("t", "partial"), b"p", None)?;
            Err::<(), _>(StoreError::Corrupt("boom".to_owned()))
        });
        let (after, after_answer) = put_job("after", b"a");
        let mut batch = vec![before, failing, after];
        commit_batch(&db, &mut batch);

        assert!(matches!(
            answer(failing_answer),
            Err(StoreError::Corrupt(m)) if m == "boom"
        ));
        let v_before = answer(before_answer).unwrap();
        let v_after = answer(after_answer).unwrap();
        assert_ne!(v_before, v_after);
        assert_eq!(stored(&db, &record_key("t", "partial")), None);
        assert_eq!(
            stored(&db, &record_key("t", "before")).map(|r| r.version),
            Some(v_before)
        );
        assert_eq!(
            stored(&db, &record_key("t", "after")).map(|r| r.version),
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
    fn one_durable_op_makes_its_batch_durable() {
        let (dir, db) = temp_db();
        // The first write after `prepare` raises the version ceiling, which
        // is durable by itself; use it up first.
        let (warm, warm_answer) = job(Durability::Durable, |w| {
            w.put(&record_key("t", "warm"), b"w", None)
        });
        commit_batch(&db, &mut vec![warm]);
        answer(warm_answer).unwrap();

        let (alone, alone_answer) = put_job("alone", b"e");
        commit_batch(&db, &mut vec![alone]);
        answer(alone_answer).unwrap();
        assert_eq!(
            after_crash(&dir, "alone"),
            None,
            "an ephemeral batch is not on disk"
        );

        let (ephemeral, ephemeral_answer) = put_job("ephemeral", b"e");
        let (durable, durable_answer) = job(Durability::Durable, |w| {
            w.put(&record_key("t", "durable"), b"d", None)
        });
        commit_batch(&db, &mut vec![ephemeral, durable]);
        answer(ephemeral_answer).unwrap();
        answer(durable_answer).unwrap();
        assert!(after_crash(&dir, "durable").is_some());
        assert!(
            after_crash(&dir, "ephemeral").is_some(),
            "committed with the durable op"
        );
    }

    #[test]
    fn counter_rejects_non_decimal_without_echoing_it() {
        let err = parse_counter(b"secret-value", "t").unwrap_err();
        assert!(!err.to_string().contains("secret-value"));
    }
}
