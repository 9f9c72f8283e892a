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
//! keys sort by their UTF-8 bytes, which is `String` order, so a scan is one
//! range read.
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
//! redb is synchronous, so each call runs on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{Durability, Precondition, Record, Store, StoreError, StoreResult, Table, Txn, Write};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The next version to hand out.
const NEXT_VERSION: &str = "next_version";
/// Every version handed out so far is below this; only raised durably.
const VERSION_CEILING: &str = "version_ceiling";
/// How far one durable commit raises the ceiling.
const VERSION_BLOCK: u64 = 1 << 16;

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 18;

/// A [`Store`] in one local redb file. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating missing parent
    /// directories. Fails if another process or another `EmbeddedStore`
    /// already has the file open.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let cannot_open = |reason: String| {
            StoreError::Unavailable(format!(
                "cannot open store file {}: {reason}",
                path.display()
            ))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| cannot_open(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                cannot_open("already open in this or another process".to_owned())
            }
            other => cannot_open(other.to_string()),
        })?;
        prepare(&db).map_err(|e| cannot_open(e.to_string()))?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = Arc::clone(&self.db);
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
        let key = record_key(table, key);
        self.run(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let records = txn.open_table(RECORDS).map_err(backend)?;
            let found = records.get(key.as_slice()).map_err(backend)?;
            Ok(found
                .map(|v| decode_record(v.value()))
                .transpose()?
                .filter(|r| is_live(r, now)))
        })
        .await
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
        self.run(move |db| write(db, durability, |w| w.put(&key, &value, expires_at)))
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
        self.run(move |db| {
            let seen = { let txn = db.begin_read().map_err(backend)?; let r = txn.open_table(RECORDS).map_err(backend)?; let x = r.get(key.as_slice()).map_err(backend)?.is_some(); x };
            write(db, durability, |w| {
                if seen {
                    return Ok(None);
                }
                w.put(&key, &value, expires_at).map(Some)
            })
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
        self.run(move |db| {
            write(db, durability, |w| {
                Ok(w.remove(&key)?.filter(|r| is_live(r, now)))
            })
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
        self.run(move |db| {
            write(db, durability, |w| {
                match w.live(&key, now)? {
                    Some(current) if current.version == expected => {}
                    _ => return Ok(None),
                }
                match new_value {
                    Some(value) => w.put(&key, &value, expires_at).map(Some),
                    None => w.remove(&key).map(|_| Some(0)),
                }
            })
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
        self.run(move |db| {
            write(db, durability, |w| {
                Ok(w.remove(&key)?.is_some_and(|r| is_live(&r, now)))
            })
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
        self.run(move |db| {
            write(db, Durability::Durable, |w| {
                let (current, expires_at) = match w.live(&key, now)? {
                    Some(record) => (parse_counter(&record.value, table)?, record.expires_at),
                    None => (0, expires_at),
                };
                let next = current.saturating_add(delta);
                w.put(&key, next.to_string().as_bytes(), expires_at)?;
                Ok(next)
            })
        })
        .await
    }

    async fn commit(&self, txn: Txn, now: i64) -> StoreResult<bool> {
        self.run(move |db| {
            write(db, txn.durability, |w| {
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
        })
        .await
    }

    async fn scan(&self, table: Table, now: i64) -> StoreResult<Vec<(String, Record)>> {
        let prefix = record_key(table, "");
        self.run(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let records = txn.open_table(RECORDS).map_err(backend)?;
            let mut live = Vec::new();
            for entry in records.range(prefix.as_slice()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                let Some(key) = k.value().strip_prefix(prefix.as_slice()) else {
                    break;
                };
                let record = decode_record(v.value())?;
                if is_live(&record, now) {
                    let key = String::from_utf8(key.to_vec()).map_err(|_| {
                        StoreError::Corrupt(format!("non-UTF-8 key in table {table}"))
                    })?;
                    live.push((key, record));
                }
            }
            Ok(live)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.run(move |db| {
            write(db, Durability::Durable, |w| {
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
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|db| {
            let txn = db.begin_read().map_err(backend)?;
            txn.open_table(RECORDS).map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// The open tables of one write transaction, plus what the transaction has
/// done so far.
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

/// Runs `op` in one write transaction. Commits only if `op` succeeded and
/// changed something; an error or a no-op rolls back and skips the fsync.
fn write<T>(
    db: &Database,
    durability: Durability,
    op: impl FnOnce(&mut Writer<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut txn = db.begin_write().map_err(backend)?;
    let (out, changed, must_persist) = {
        let mut writer = Writer {
            records: txn.open_table(RECORDS).map_err(backend)?,
            meta: txn.open_table(META).map_err(backend)?,
            versions: None,
            changed: false,
            must_persist: false,
        };
        let out = op(&mut writer)?;
        writer.save_versions()?;
        (out, writer.changed, writer.must_persist)
    };
    if !changed {
        txn.abort().map_err(backend)?;
        return Ok(out);
    }
    txn.set_durability(match (durability, must_persist) {
        (Durability::Durable, _) | (Durability::Ephemeral, true) => redb::Durability::Immediate,
        (Durability::Ephemeral, false) => redb::Durability::None,
    });
    txn.commit().map_err(backend)?;
    Ok(out)
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

    #[test]
    fn counter_rejects_non_decimal_without_echoing_it() {
        let err = parse_counter(b"secret-value", "t").unwrap_err();
        assert!(!err.to_string().contains("secret-value"));
    }
}
