//! The Redis backend: one Redis shared by any number of Gatepass instances.
//!
//! Every instance behind a load balancer points at the same Redis (and the
//! same `keys/` directory) and then behaves as part of one provider: a code
//! issued by one instance is redeemed at another, a one-time TAP raced
//! across instances is consumed once, a refresh token reused anywhere
//! revokes its family everywhere. That holds because every atomic
//! [`Store`] primitive is **one Lua script** (or one read-only command), and
//! Redis runs a script without interleaving any other command.
//!
//! # Key layout
//!
//! With `key_prefix = P`, every key starts with the hash tag `{P}`:
//!
//! ```text
//! {P}:r:<len(table)>:<table>:<key>   hash: one record (fields below)
//! {P}:i:<len(table)>:<table>         sorted set: the table's keys (score 0)
//! {P}:expiries                       sorted set: <len(table)>:<table>:<key>
//!                                    of every record that expires, scored
//!                                    by its expires_at
//! {P}:version                        string: the version counter (INCR)
//! {P}:tables                         set: tables written by builds before
//!                                    {P}:expiries (read once, then deleted)
//! ```
//!
//! The decimal table-name length keeps tables apart whatever their names
//! hold: `user` vs `users`, or `sep` plus key `x:k` vs `sep:x` plus key `k`,
//! never share a prefix of the other's keys.
//!
//! A record is a hash with three fields, so it stays readable with
//! `redis-cli HGETALL`:
//!
//! | field | content |
//! | --- | --- |
//! | `v` | the value bytes, as given |
//! | `ver` | the version, decimal |
//! | `exp` | `expires_at` (Unix seconds), decimal; absent: never expires |
//!
//! # One hash slot
//!
//! Redis Cluster assigns a key to a slot by the part inside its first
//! `{…}`. All of Gatepass's keys share the tag `{P}`, so they share one slot:
//! every script's keys are in one slot, which Cluster requires, and a
//! [`Txn`] may span any tables and keys. The price is that one deployment's
//! data lives on one shard (plus its replicas): the backend is
//! cluster-*ready*, not sharded. Sharding would need a tag per aggregate
//! (per user, per refresh-token family) and a `Txn` narrowed to one
//! aggregate; Gatepass's data is small (users, credentials, short-lived
//! codes and flows), so one shard goes a long way. Several deployments can
//! share a cluster under different prefixes, each on its own slot.
//!
//! Every script names all the keys it touches in `KEYS`, as Cluster expects.
//!
//! # Scripts
//!
//! | method | script | atomic step |
//! | --- | --- | --- |
//! | `get` | — (`HMGET`) | one command |
//! | `put` | `PUT` | write record + index |
//! | `insert` | `INSERT` | check absent-or-expired, write |
//! | `take` | `TAKE` | read, delete record + index entry |
//! | `compare_and_swap` | `SWAP` | compare `ver`, write or delete |
//! | `delete` | `DELETE` | delete, report whether it was live |
//! | `increment` | `INCREMENT` | `HINCRBY` (exact 64-bit, saturating) or restart |
//! | `commit` | `COMMIT` | every precondition, then every write |
//! | `scan`/`scan_prefix` | — | `ZRANGEBYLEX`, then `HMGET`s in one pipeline |
//! | `purge_expired` | `PURGE` | per chunk of `expiries` entries due |
//!
//! Scripts are sent as `EVALSHA` and loaded on `NOSCRIPT` (after a Redis
//! restart, or on first use). A script checks everything that can fail
//! before its first write: Redis does not roll back a script that fails
//! half-way, so a `commit` first reads every precondition and checks every
//! key it will write holds the right type (or nothing).
//!
//! A scan is not one snapshot: it reads the index, then the records, so a
//! record written in between may or may not appear. Each record returned is
//! read whole, was live at the `now` given, and the listing is in key order,
//! which is all [`Store::scan_prefix`] promises.
//!
//! # Versions
//!
//! Every write takes `INCR {P}:version` inside the same script, so versions
//! are unique and never reused, even across deleted-then-recreated keys.
//! They stay exact below 2^53 (Lua numbers are doubles), a bound no
//! deployment reaches.
//!
//! # Expiry
//!
//! Expiry is data: scripts compare `exp` with the caller's `now`, never with
//! Redis's clock, so a record is absent from the second it expires whatever
//! Redis does, and tests drive time with a manual clock. As a garbage
//! collection backstop only, a record with an expiry also gets
//!
//! ```text
//! EXPIREAT max(expires_at, Redis TIME) + 1 day
//! ```
//!
//! The day of grace means Redis never drops a record the caller's clock
//! still considers live, even if Gatepass's clock runs behind Redis's (a
//! test clock, or skew) by up to a day; the `max` keeps a record written
//! already expired (a manual clock in the past) from vanishing before the
//! caller reads it back. Redis dropping a key can leave its index entry
//! behind; scans skip such entries and [`Store::purge_expired`] removes
//! them. `purge_expired` also deletes every record expired by the caller's
//! `now`, so memory does not wait for the backstop. It finds both through
//! `{P}:expiries`, which every write script keeps in step with the record
//! (an entry when the record expires, none when it does not), reading only
//! the entries due by `now`: never a table, so a million users cost a purge
//! nothing. Data written before `expiries` existed is walked table by table
//! once, by the first purge, which indexes what it finds. (An `expires_at` past
//! the year 5000 gets no TTL: Redis would refuse it, and it changes
//! nothing in practice.)
//!
//! # Durability
//!
//! Redis applies a script in memory and then answers; what survives a Redis
//! crash is Redis's persistence setting. Gatepass never acknowledges a
//! write Redis has not applied. Run Redis with `appendonly yes` and
//! `appendfsync everysec` (at most about a second of writes lost in a power
//! failure) or `appendfsync always` (none, slower), and a replica for
//! failover. [`Durability`] maps to nothing here: durable and ephemeral
//! writes are the same script.
//!
//! # Faults
//!
//! One multiplexed [`ConnectionManager`] carries every request (it is
//! cloned, never re-dialled per request) and reconnects by itself. Each
//! round trip has a deadline ([`ROUND_TRIP`]); connecting has
//! [`CONNECT_TIMEOUT`] and is not retried inside a call, so while Redis is
//! down every call fails within seconds with [`StoreError::Unavailable`]
//! (the web layer answers 503), and the next call after Redis returns
//! reconnects. A call that times out may still have been applied: a `take`
//! may consume a record nobody receives, which fails closed.
//!
//! Errors never carry record values: only the Redis address (never the
//! password), the failure's kind, and Redis's own message.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script, Value};
use tokio::sync::OnceCell;

use super::{
    Durability, Order, Precondition, Record, Store, StoreError, StoreResult, Table, Txn, Write,
};

/// Deadline for establishing a connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline for Redis to answer one command, script or pipeline.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline for one round trip as the caller sees it, including waiting
/// for a reconnection in progress.
pub const ROUND_TRIP: Duration = Duration::from_secs(3);

/// Index entries read (and records fetched) per round trip in scans and
/// purges, so no single reply or script holds Redis up for long.
const CHUNK: usize = 512;

/// A Redis error code only Gatepass's scripts raise.
const CORRUPT_CODE: &str = "GATEPASS_CORRUPT";

/// A [`Store`] on a Redis server. Cheap to clone; clones share one
/// multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Established on first use (see [`RedisStore::open`]), then reused.
    conn: OnceCell<ConnectionManager>,
    keys: Keys,
    /// `host:port/db`, for messages; never the password.
    target: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("key_prefix", &self.inner.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Checks `url` and `key_prefix` without touching the network; the
    /// connection is made by the first call (and again by any call after a
    /// failed attempt). For callers that cannot await, such as
    /// [`AppState::build`](crate::app::AppState::build); the first call
    /// must run inside the tokio runtime that will serve every later one.
    pub fn open(url: &str, key_prefix: &str) -> Result<RedisStore, StoreError> {
        if key_prefix.is_empty() || key_prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                "redis key prefix must be non-empty and free of braces".to_owned(),
            ));
        }
        // The crate's message may quote the URL, which may hold a password.
        let client = Client::open(url).map_err(|e| {
            StoreError::Unavailable(format!(
                "redis URL is not usable ({}); expected redis://[:password@]host:port/db or rediss://…",
                e.category()
            ))
        })?;
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr, info.redis.db);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                keys: Keys::new(key_prefix),
                target,
            }),
        })
    }

    /// [`RedisStore::open`], then connects and pings, so an unreachable
    /// Redis or a wrong password is reported now.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisStore, StoreError> {
        let store = Self::open(url, key_prefix)?;
        store.ping().await?;
        Ok(store)
    }

    /// The shared connection, dialling it if this is the first use.
    async fn conn(&self) -> StoreResult<ConnectionManager> {
        let inner = &self.inner;
        let dial = || async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT)
                // Callers fail fast and retry; a reconnect loop inside a
                // call would hold every request for its whole backoff.
                .set_number_of_retries(0);
            ConnectionManager::new_with_config(inner.client.clone(), config).await
        };
        let dialled = tokio::time::timeout(
            ROUND_TRIP,
            inner
                .conn
                .get_or_try_init(|| async { dial().await.map_err(|e| self.error(e)) }),
        );
        match dialled.await {
            Ok(conn) => conn.cloned(),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Runs one round trip with the [`ROUND_TRIP`] deadline.
    async fn round_trip<F, Fut>(&self, op: F) -> StoreResult<Value>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<Value, RedisError>>,
    {
        let conn = self.conn().await?;
        match tokio::time::timeout(ROUND_TRIP, op(conn)).await {
            Ok(result) => result.map_err(|e| self.error(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    async fn command(&self, cmd: redis::Cmd) -> StoreResult<Value> {
        self.round_trip(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    async fn script(&self, invocation: redis::ScriptInvocation<'_>) -> StoreResult<Value> {
        self.round_trip(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    async fn pipeline(&self, pipe: redis::Pipeline) -> StoreResult<Value> {
        self.round_trip(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "redis at {} did not answer within {}s",
            self.inner.target,
            ROUND_TRIP.as_secs()
        ))
    }

    /// Maps a Redis error. Connection trouble, a Redis that is loading,
    /// read-only, out of memory or refusing the password is `Unavailable`
    /// (retry later); a reply Gatepass cannot make sense of is `Corrupt`.
    fn error(&self, e: RedisError) -> StoreError {
        let target = &self.inner.target;
        let message = redact(&e.to_string());
        let corrupt = match e.kind() {
            ErrorKind::TypeError => true,
            ErrorKind::ExtensionError => {
                matches!(e.code(), Some(CORRUPT_CODE) | Some("WRONGTYPE"))
            }
            // A Lua runtime error: a script met data it cannot handle.
            ErrorKind::ResponseError => {
                message.contains("user_script") || message.contains("Error running script")
            }
            _ => false,
        };
        if corrupt {
            StoreError::Corrupt(format!("redis at {target}: {message}"))
        } else {
            StoreError::Unavailable(format!("redis at {target}: {}: {message}", e.category()))
        }
    }

    /// Reads `members` of `table` (in order) and keeps the live records.
    async fn fetch(
        &self,
        table: Table,
        members: Vec<Vec<u8>>,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        let mut live = Vec::with_capacity(members.len());
        for chunk in members.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for member in chunk {
                pipe.cmd("HMGET")
                    .arg(self.inner.keys.record_bytes(table, member))
                    .arg(&["v", "ver", "exp"]);
            }
            let replies = match self.pipeline(pipe).await? {
                Value::Array(replies) if replies.len() == chunk.len() => replies,
                _ => return Err(corrupt(table, "scan reply has the wrong shape")),
            };
            for (member, reply) in chunk.iter().zip(replies) {
                // `None`: the index entry outlived its record (Redis's
                // backstop expiry); purge_expired removes it.
                if let Some(record) = decode_fields(table, reply)?.filter(|r| is_live(r, now)) {
                    let key = String::from_utf8(member.clone())
                        .map_err(|_| corrupt(table, "a key is not UTF-8"))?;
                    live.push((key, record));
                }
            }
        }
        Ok(live)
    }

    /// Data written by a build before `expiries`: walks every table that
    /// build recorded, once, deleting what has expired and indexing what
    /// still will, then forgets the list. Nothing to do on data written
    /// since.
    async fn purge_legacy(&self, now: i64) -> StoreResult<u64> {
        let keys = &self.inner.keys;
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(&keys.tables);
        let tables = byte_strings("(tables)", self.command(cmd).await?)?;
        let mut purged = 0u64;
        for table in &tables {
            let table = std::str::from_utf8(table)
                .map_err(|_| corrupt("(tables)", "a table name is not UTF-8"))?;
            let index = keys.index(table);
            // Walk the index by key, resuming after the last key seen, so
            // deletions behind the cursor do not shift it.
            let mut min = b"-".to_vec();
            loop {
                let mut cmd = redis::cmd("ZRANGEBYLEX");
                cmd.arg(&index)
                    .arg(&min)
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(CHUNK);
                let members = byte_strings(table, self.command(cmd).await?)?;
                let Some(last) = members.last() else { break };
                let mut next = b"(".to_vec();
                next.extend_from_slice(last);
                let mut call = SCRIPTS.purge_legacy.prepare_invoke();
                call.key(&keys.expiries).key(&index).arg(now);
                for member in &members {
                    let key = std::str::from_utf8(member)
                        .map_err(|_| corrupt(table, "a key is not UTF-8"))?;
                    call.key(keys.record(table, key))
                        .arg(key)
                        .arg(keys.member(table, key));
                }
                let n: u64 = decimal(table, &self.script(call).await?, "purge count")?;
                purged = purged.saturating_add(n);
                if members.len() < CHUNK {
                    break;
                }
                min = next;
            }
        }
        if !tables.is_empty() {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(&keys.tables);
            self.command(cmd).await?;
        }
        Ok(purged)
    }

    /// Every index entry of `table` in `[min, max]` (ZRANGEBYLEX syntax).
    async fn members(&self, table: Table, min: Vec<u8>, max: Vec<u8>) -> StoreResult<Vec<Vec<u8>>> {
        let mut cmd = redis::cmd("ZRANGEBYLEX");
        cmd.arg(self.inner.keys.index(table)).arg(min).arg(max);
        byte_strings(table, self.command(cmd).await?)
    }
}

/// Key names under one prefix; see "Key layout" in the module doc.
struct Keys {
    prefix: String,
    /// `{prefix}:`
    base: String,
    version: String,
    /// Sorted set: every expiring record's member, scored by its expiry.
    expiries: String,
    /// Set: the tables earlier builds wrote; see [`RedisStore::purge_legacy`].
    tables: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        let base = format!("{{{prefix}}}:");
        Keys {
            prefix: prefix.to_owned(),
            version: format!("{base}version"),
            expiries: format!("{base}expiries"),
            tables: format!("{base}tables"),
            base,
        }
    }

    fn record(&self, table: &str, key: &str) -> Vec<u8> {
        self.record_bytes(table, key.as_bytes())
    }

    fn record_bytes(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let mut out = format!("{}r:{}:{table}:", self.base, table.len()).into_bytes();
        out.extend_from_slice(key);
        out
    }

    /// A record's member in `expiries`: its record key without the
    /// `{prefix}:r:` in front, `<len(table)>:<table>:<key>`.
    fn member(&self, table: &str, key: &str) -> Vec<u8> {
        let mut out = format!("{}:{table}:", table.len()).into_bytes();
        out.extend_from_slice(key.as_bytes());
        out
    }

    /// The table and key a member of `expiries` names.
    fn parse_member(member: &[u8]) -> Option<(&str, &[u8])> {
        let colon = member.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&member[..colon]).ok()?.parse().ok()?;
        let table = member.get(colon + 1..colon + 1 + len)?;
        let rest = member.get(colon + 1 + len..)?;
        let key = rest.strip_prefix(b":")?;
        Some((std::str::from_utf8(table).ok()?, key))
    }

    fn index(&self, table: &str) -> String {
        format!("{}i:{}:{table}", self.base, table.len())
    }
}

/// `ZRANGEBYLEX` bounds selecting exactly the members that start with
/// `prefix`. UTF-8 never contains the byte 0xFF, so every key starting with
/// `prefix` sorts below `prefix ++ 0xFF`, and any key between the two
/// bounds starts with `prefix`.
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        return (b"-".to_vec(), b"+".to_vec());
    }
    let mut min = b"[".to_vec();
    min.extend_from_slice(prefix.as_bytes());
    let mut max = b"(".to_vec();
    max.extend_from_slice(prefix.as_bytes());
    max.push(0xFF);
    (min, max)
}

/// Keeps Redis's message but drops the echo of arguments some errors
/// carry ("unknown command …, with args beginning with: …"), which could
/// quote a record value.
fn redact(message: &str) -> String {
    match message.find("with args beginning with") {
        Some(at) => format!("{}…", &message[..at]),
        None => message.to_owned(),
    }
}

fn corrupt(table: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis table {table}: {what}"))
}

fn is_live(record: &Record, now: i64) -> bool {
    record.expires_at.is_none_or(|at| at > now)
}

fn as_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Parses a decimal reply. Never echoes it: the caller names the field.
fn decimal<T: std::str::FromStr>(table: &str, value: &Value, what: &str) -> StoreResult<T> {
    match value {
        Value::Int(i) => i.to_string().parse().ok(),
        other => as_bytes(other)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok()),
    }
    .ok_or_else(|| corrupt(table, &format!("{what} is not a decimal number")))
}

/// A record from `[v, ver, exp]` (an `HMGET` or a script's reply); `None`
/// when the hash does not exist.
fn decode_fields(table: &str, reply: Value) -> StoreResult<Option<Record>> {
    let Value::Array(fields) = reply else {
        return Err(corrupt(table, "record reply is not an array"));
    };
    let [v, ver, exp]: [Value; 3] = fields
        .try_into()
        .map_err(|_| corrupt(table, "record reply does not have three fields"))?;
    if matches!((&v, &ver, &exp), (Value::Nil, Value::Nil, Value::Nil)) {
        return Ok(None);
    }
    let value = match v {
        Value::BulkString(b) => b,
        _ => return Err(corrupt(table, "record has no value")),
    };
    if ver == Value::Nil {
        return Err(corrupt(table, "record has no version"));
    }
    let version = decimal(table, &ver, "record version")?;
    let expires_at = match exp {
        Value::Nil => None,
        other => Some(decimal(table, &other, "record expiry")?),
    };
    Ok(Some(Record {
        value,
        version,
        expires_at,
    }))
}

/// A version from a write script: `Some` for a decimal, `None` for nil.
fn decode_version(table: &str, reply: Value) -> StoreResult<Option<u64>> {
    match reply {
        Value::Nil => Ok(None),
        other => decimal(table, &other, "version").map(Some),
    }
}

fn decode_flag(table: &str, reply: Value) -> StoreResult<bool> {
    match reply {
        Value::Int(0) | Value::Nil => Ok(false),
        Value::Int(1) => Ok(true),
        _ => Err(corrupt(table, "script answered neither 0 nor 1")),
    }
}

fn byte_strings(table: &str, reply: Value) -> StoreResult<Vec<Vec<u8>>> {
    let Value::Array(items) = reply else {
        return Err(corrupt(table, "listing is not an array"));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::BulkString(b) => Ok(b),
            _ => Err(corrupt(table, "listing entry is not a string")),
        })
        .collect()
}

fn expiry_arg(expires_at: Option<i64>) -> String {
    expires_at.map(|at| at.to_string()).unwrap_or_default()
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, table: Table, key: &str, now: i64) -> StoreResult<Option<Record>> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.inner.keys.record(table, key))
            .arg(&["v", "ver", "exp"]);
        Ok(decode_fields(table, self.command(cmd).await?)?.filter(|r| is_live(r, now)))
    }

    async fn put(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        _durability: Durability,
    ) -> StoreResult<u64> {
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.put.prepare_invoke();
        call.key(&keys.version)
            .key(&keys.expiries)
            .key(keys.record(table, key))
            .key(keys.index(table))
            .arg(keys.member(table, key))
            .arg(key)
            .arg(value)
            .arg(expiry_arg(expires_at));
        decode_version(table, self.script(call).await?)?
            .ok_or_else(|| corrupt(table, "put wrote no version"))
    }

    async fn insert(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<i64>,
        _durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.insert.prepare_invoke();
        call.key(&keys.version)
            .key(&keys.expiries)
            .key(keys.record(table, key))
            .key(keys.index(table))
            .arg(keys.member(table, key))
            .arg(key)
            .arg(value)
            .arg(expiry_arg(expires_at))
            .arg(now);
        decode_version(table, self.script(call).await?)
    }

    async fn take(
        &self,
        table: Table,
        key: &str,
        _durability: Durability,
        now: i64,
    ) -> StoreResult<Option<Record>> {
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.take.prepare_invoke();
        call.key(&keys.expiries)
            .key(keys.record(table, key))
            .key(keys.index(table))
            .arg(keys.member(table, key))
            .arg(key)
            .arg(now);
        match self.script(call).await? {
            Value::Nil => Ok(None),
            // The script returns only a live record, but check anyway.
            reply => Ok(decode_fields(table, reply)?.filter(|r| is_live(r, now))),
        }
    }

    async fn compare_and_swap(
        &self,
        table: Table,
        key: &str,
        expected: u64,
        new_value: Option<Vec<u8>>,
        expires_at: Option<i64>,
        _durability: Durability,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.swap.prepare_invoke();
        call.key(&keys.version)
            .key(&keys.expiries)
            .key(keys.record(table, key))
            .key(keys.index(table))
            .arg(keys.member(table, key))
            .arg(key)
            .arg(expected)
            .arg(now);
        match new_value {
            Some(value) => call.arg("put").arg(value).arg(expiry_arg(expires_at)),
            None => call.arg("delete").arg("").arg(""),
        };
        decode_version(table, self.script(call).await?)
    }

    async fn delete(
        &self,
        table: Table,
        key: &str,
        _durability: Durability,
        now: i64,
    ) -> StoreResult<bool> {
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.delete.prepare_invoke();
        call.key(&keys.expiries)
            .key(keys.record(table, key))
            .key(keys.index(table))
            .arg(keys.member(table, key))
            .arg(key)
            .arg(now);
        decode_flag(table, self.script(call).await?)
    }

    /// Saturates at `i64::MAX` / `i64::MIN` like the embedded backend; the
    /// arithmetic is Redis's `HINCRBY`, exact over all of `i64`.
    async fn increment(
        &self,
        table: Table,
        key: &str,
        delta: i64,
        expires_at: Option<i64>,
        _durability: Durability,
        now: i64,
    ) -> StoreResult<i64> {
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.increment.prepare_invoke();
        call.key(&keys.version)
            .key(&keys.expiries)
            .key(keys.record(table, key))
            .key(keys.index(table))
            .arg(keys.member(table, key))
            .arg(key)
            .arg(delta)
            .arg(expiry_arg(expires_at))
            .arg(now);
        decimal(table, &self.script(call).await?, "counter")
    }

    async fn commit(&self, txn: Txn, now: i64) -> StoreResult<bool> {
        if txn.checks.is_empty() && txn.writes.is_empty() {
            return Ok(true);
        }
        let keys = &self.inner.keys;
        let mut call = SCRIPTS.commit.prepare_invoke();
        call.key(&keys.version)
            .key(&keys.expiries)
            .arg(now)
            .arg(txn.checks.len())
            .arg(txn.writes.len());
        for (table, key, pre) in &txn.checks {
            call.key(keys.record(table, key));
            match pre {
                Precondition::Absent => call.arg(""),
                Precondition::Version(v) => call.arg(*v),
            };
        }
        for write in &txn.writes {
            match write {
                Write::Put {
                    table,
                    key,
                    value,
                    expires_at,
                } => {
                    call.key(keys.record(table, key))
                        .key(keys.index(table))
                        .arg("put")
                        .arg(keys.member(table, key))
                        .arg(key.as_str())
                        .arg(value.as_slice())
                        .arg(expiry_arg(*expires_at));
                }
                Write::Delete { table, key } => {
                    call.key(keys.record(table, key))
                        .key(keys.index(table))
                        .arg("delete")
                        .arg(keys.member(table, key))
                        .arg(key.as_str())
                        .arg("")
                        .arg("");
                }
            }
        }
        decode_flag("(transaction)", self.script(call).await?)
    }

    async fn scan(&self, table: Table, now: i64) -> StoreResult<Vec<(String, Record)>> {
        self.scan_prefix(table, "", now).await
    }

    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Record)>> {
        let (min, max) = prefix_range(prefix);
        let members = self.members(table, min, max).await?;
        self.fetch(table, members, now).await
    }

    /// Gatepass keeps users, credentials and lockouts in Redis: an eviction
    /// policy other than `noeviction` would silently delete them when Redis
    /// fills up. Managed Redis services that hide `CONFIG` are not judged.
    async fn startup_warnings(&self) -> Vec<String> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("maxmemory-policy");
        let Ok(Value::Array(reply)) = self.command(cmd).await else {
            return Vec::new();
        };
        match reply.get(1).and_then(as_bytes) {
            Some(b"noeviction") | None => Vec::new(),
            Some(policy) => vec![format!(
                "Redis at {} has maxmemory-policy {}: when it fills up it will evict Gatepass's users, credentials and lockouts. Set maxmemory-policy noeviction (writes then fail with a clear error instead).",
                self.inner.target,
                String::from_utf8_lossy(policy)
            )],
        }
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
        let (mut min, mut max) = prefix_range(prefix);
        let exclusive = |key: &[u8]| {
            let mut bound = b"(".to_vec();
            bound.extend_from_slice(key);
            bound
        };
        if let Some(after) = after {
            match order {
                Order::Ascending => min = exclusive(after.as_bytes()),
                Order::Descending => max = exclusive(after.as_bytes()),
            }
        }
        // Index entries may outlive their records (backstop expiry), so a
        // batch can come back short: read on from the last member seen.
        let mut page = Vec::new();
        while page.len() < limit {
            let want = (limit - page.len()).min(CHUNK);
            let mut cmd = match order {
                Order::Ascending => {
                    let mut c = redis::cmd("ZRANGEBYLEX");
                    c.arg(self.inner.keys.index(table)).arg(&min).arg(&max);
                    c
                }
                Order::Descending => {
                    let mut c = redis::cmd("ZREVRANGEBYLEX");
                    c.arg(self.inner.keys.index(table)).arg(&max).arg(&min);
                    c
                }
            };
            cmd.arg("LIMIT").arg(0).arg(want);
            let members = byte_strings(table, self.command(cmd).await?)?;
            let Some(last) = members.last().cloned() else {
                break;
            };
            let exhausted = members.len() < want;
            let members: Vec<Vec<u8>> = members
                .into_iter()
                .filter(|m| m.starts_with(prefix.as_bytes()))
                .collect();
            page.extend(self.fetch(table, members, now).await?);
            if exhausted {
                break;
            }
            match order {
                Order::Ascending => min = exclusive(&last),
                Order::Descending => max = exclusive(&last),
            }
        }
        page.truncate(limit);
        Ok(page)
    }

    /// Reads only `expiries`' entries due by `now` (see "Expiry"), a chunk
    /// per round trip, never a table.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let keys = &self.inner.keys;
        let mut purged = self.purge_legacy(now).await?;
        loop {
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(&keys.expiries)
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(CHUNK);
            let members = byte_strings("(expiries)", self.command(cmd).await?)?;
            if members.is_empty() {
                break;
            }
            let mut call = SCRIPTS.purge.prepare_invoke();
            call.key(&keys.expiries).arg(now);
            for member in &members {
                let (table, key) = Keys::parse_member(member)
                    .ok_or_else(|| corrupt("(expiries)", "an entry names no table and key"))?;
                call.key(keys.record_bytes(table, key))
                    .key(keys.index(table))
                    .arg(member.as_slice())
                    .arg(key);
            }
            let n: u64 = decimal("(expiries)", &self.script(call).await?, "purge count")?;
            purged = purged.saturating_add(n);
            // Each entry read was removed or moved past `now`: the next
            // read starts on new ones.
            if members.len() < CHUNK {
                break;
            }
        }
        Ok(purged)
    }

    async fn ping(&self) -> StoreResult<()> {
        match self.command(redis::cmd("PING")).await? {
            Value::SimpleString(_) | Value::BulkString(_) | Value::Okay => Ok(()),
            _ => Err(corrupt("(ping)", "PING answered something other than PONG")),
        }
    }
}

/// The scripts, hashed once per process.
struct Scripts {
    put: Script,
    insert: Script,
    take: Script,
    swap: Script,
    delete: Script,
    increment: Script,
    commit: Script,
    purge: Script,
    purge_legacy: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    put: Script::new(PUT),
    insert: Script::new(INSERT),
    take: Script::new(TAKE),
    swap: Script::new(SWAP),
    delete: Script::new(DELETE),
    increment: Script::new(INCREMENT),
    commit: Script::new(COMMIT),
    purge: Script::new(PURGE),
    purge_legacy: Script::new(PURGE_LEGACY),
});

/// Helpers every write script starts with.
///
/// `load(key, now)`: the live record as `{v, ver, exp}`, or nil when absent
/// or expired at `now` (the caller's clock, not Redis's).
///
/// `store(...)`: writes a record under a fresh version and indexes it;
/// returns the version as a decimal string (never a Lua number, which
/// `tostring` would round past 10^14).
macro_rules! prelude {
    () => {
        r#"
local GRACE = 86400
local function load(key, now)
  local r = redis.call('HMGET', key, 'v', 'ver', 'exp')
  if not r[2] then
    if r[1] or r[3] then error({err = 'GATEPASS_CORRUPT a record has no version'}) end
    return nil
  end
  if r[3] and tonumber(r[3]) <= now then return nil end
  return r
end
local function store(vkey, xkey, rkey, ikey, member, key, value, exp)
  local ver = string.format('%d', redis.call('INCR', vkey))
  redis.call('DEL', rkey)
  if exp == '' then
    redis.call('HSET', rkey, 'v', value, 'ver', ver)
    redis.call('ZREM', xkey, member)
  else
    redis.call('HSET', rkey, 'v', value, 'ver', ver, 'exp', exp)
    local at = math.max(tonumber(exp), tonumber(redis.call('TIME')[1])) + GRACE
    if at < 1e11 then redis.call('EXPIREAT', rkey, string.format('%d', at)) end
    redis.call('ZADD', xkey, exp, member)
  end
  redis.call('ZADD', ikey, 0, key)
  return ver
end
local function drop(xkey, rkey, ikey, member, key)
  redis.call('DEL', rkey)
  redis.call('ZREM', ikey, key)
  redis.call('ZREM', xkey, member)
end
"#
    };
}

/// KEYS: version, expiries, record, index. ARGV: member, key, value, exp.
const PUT: &str = concat!(
    prelude!(),
    r#"
return store(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"#
);

/// KEYS: version, expiries, record, index. ARGV: member, key, value, exp, now.
const INSERT: &str = concat!(
    prelude!(),
    r#"
if load(KEYS[3], tonumber(ARGV[5])) then return false end
return store(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"#
);

/// KEYS: expiries, record, index. ARGV: member, key, now. Removes the
/// record even if expired; returns `{v, ver, exp}` only if it was live.
const TAKE: &str = concat!(
    prelude!(),
    r#"
local r = load(KEYS[2], tonumber(ARGV[3]))
drop(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
if not r then return false end
return {r[1], r[2], r[3]}
"#
);

/// KEYS: version, expiries, record, index.
/// ARGV: member, key, expected version, now, "put" | "delete", value, exp.
/// Versions are compared as strings: exact, no Lua number in between.
const SWAP: &str = concat!(
    prelude!(),
    r#"
local r = load(KEYS[3], tonumber(ARGV[4]))
if not r or r[2] ~= ARGV[3] then return false end
if ARGV[5] == 'delete' then
  drop(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
  return '0'
end
return store(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[6], ARGV[7])
"#
);

/// KEYS: expiries, record, index. ARGV: member, key, now. 1 if a live
/// record was deleted.
const DELETE: &str = concat!(
    prelude!(),
    r#"
local r = load(KEYS[2], tonumber(ARGV[3]))
drop(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
if r then return 1 end
return 0
"#
);

/// KEYS: version, expiries, record, index. ARGV: member, key, delta, exp, now.
/// Returns the new value as a decimal string. `HINCRBY` does the sum in
/// exact 64-bit arithmetic and refuses to overflow; the script then
/// saturates, as the embedded backend does.
const INCREMENT: &str = concat!(
    prelude!(),
    r#"
local r = load(KEYS[3], tonumber(ARGV[5]))
if not r then
  store(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  return ARGV[3]
end
local sum = redis.pcall('HINCRBY', KEYS[3], 'v', ARGV[3])
local value
if type(sum) == 'table' and sum.err then
  if not string.find(sum.err, 'overflow') then
    return redis.error_reply('GATEPASS_CORRUPT counter is not an integer')
  end
  if string.sub(ARGV[3], 1, 1) == '-' then value = '-9223372036854775808'
  else value = '9223372036854775807' end
else
  value = redis.call('HGET', KEYS[3], 'v')
end
store(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], value, r[3] or '')
return value
"#
);

/// KEYS: version, expiries, then one record per check, then record and
/// index per write.
/// ARGV: now, #checks, #writes, then per check the required version (""
/// for absent), then per write "put" | "delete", member, key, value, exp.
/// Reads every precondition and checks every write target's type before
/// the first write, so the writes cannot fail half-way.
const COMMIT: &str = concat!(
    prelude!(),
    r#"
local now = tonumber(ARGV[1])
local nc = tonumber(ARGV[2])
local nw = tonumber(ARGV[3])
for i = 1, nc do
  local r = load(KEYS[2 + i], now)
  local want = ARGV[3 + i]
  if want == '' then
    if r then return 0 end
  elseif not r or r[2] ~= want then
    return 0
  end
end
local function expect(key, kind)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= kind then
    error({err = 'GATEPASS_CORRUPT a key holds a ' .. t .. ' where a ' .. kind .. ' belongs'})
  end
end
for j = 1, nw do
  expect(KEYS[2 + nc + 2 * j - 1], 'hash')
  expect(KEYS[2 + nc + 2 * j], 'zset')
end
local a = 4 + nc
for j = 1, nw do
  local rkey = KEYS[2 + nc + 2 * j - 1]
  local ikey = KEYS[2 + nc + 2 * j]
  if ARGV[a] == 'put' then
    store(KEYS[1], KEYS[2], rkey, ikey, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  else
    drop(KEYS[2], rkey, ikey, ARGV[a + 1], ARGV[a + 2])
  end
  a = a + 5
end
return 1
"#
);

/// KEYS: expiries, then record and index per entry. ARGV: now, then
/// member and key per entry (entries of `expiries` due by `now`).
/// Deletes records expired at `now`, drops the entries of records already
/// gone (Redis's backstop expiry), and re-scores an entry that does not
/// match its record; returns how many records it deleted.
const PURGE: &str = r#"
local now = tonumber(ARGV[1])
local purged = 0
for i = 1, (#KEYS - 1) / 2 do
  local rkey, ikey = KEYS[2 * i], KEYS[2 * i + 1]
  local member, key = ARGV[2 * i], ARGV[2 * i + 1]
  local r = redis.call('HMGET', rkey, 'ver', 'exp')
  if not r[1] and not r[2] then
    redis.call('ZREM', ikey, key)
    redis.call('ZREM', KEYS[1], member)
  elseif r[2] and tonumber(r[2]) <= now then
    redis.call('DEL', rkey)
    redis.call('ZREM', ikey, key)
    redis.call('ZREM', KEYS[1], member)
    purged = purged + 1
  elseif r[2] then
    redis.call('ZADD', KEYS[1], r[2], member)
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return purged
"#;

/// For data written before `expiries` existed (see "Expiry"): KEYS:
/// expiries, index, then one record per entry. ARGV: now, then key and
/// member per entry. As [`PURGE`], and indexes each live record that
/// expires.
const PURGE_LEGACY: &str = r#"
local now = tonumber(ARGV[1])
local purged = 0
for i = 3, #KEYS do
  local key, member = ARGV[2 * i - 4], ARGV[2 * i - 3]
  local r = redis.call('HMGET', KEYS[i], 'ver', 'exp')
  if not r[1] and not r[2] then
    redis.call('ZREM', KEYS[2], key)
  elseif r[2] and tonumber(r[2]) <= now then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[2], key)
    purged = purged + 1
  elseif r[2] then
    redis.call('ZADD', KEYS[1], r[2], member)
  end
end
return purged
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_one_hash_tag() {
        let keys = Keys::new("gp");
        for key in [
            keys.record("users", "a"),
            keys.index("users").into_bytes(),
            keys.version.clone().into_bytes(),
            keys.tables.clone().into_bytes(),
            keys.expiries.clone().into_bytes(),
        ] {
            assert!(
                key.starts_with(b"{gp}:"),
                "{}",
                String::from_utf8_lossy(&key)
            );
        }
    }

    #[test]
    fn an_expiries_member_names_its_table_and_key_whatever_they_hold() {
        let keys = Keys::new("p");
        for (table, key) in [
            ("t", "k"),
            ("sep:x", "k"),
            ("sep", "x:k"),
            ("codes", ""),
            ("a", ":"),
        ] {
            let member = keys.member(table, key);
            assert_eq!(
                Keys::parse_member(&member),
                Some((table, key.as_bytes())),
                "{table} {key}"
            );
            let mut record = b"{p}:r:".to_vec();
            record.extend_from_slice(&member);
            assert_eq!(record, keys.record(table, key));
        }
        for bad in [&b""[..], b"x:t:k", b"9:t:k", b"1:tk", b"1:t"] {
            assert_eq!(Keys::parse_member(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn similar_tables_never_share_a_key() {
        let keys = Keys::new("p");
        let user = keys.record("user", "");
        assert!(!keys.record("users", "x").starts_with(&user));
        assert_ne!(keys.record("sep", "x:k"), keys.record("sep:x", "k"));
        assert_ne!(keys.record("sep", "x/k"), keys.record("sep/x", "k"));
        assert_ne!(keys.index("user"), keys.index("users"));
    }

    #[test]
    fn prefix_range_brackets_exactly_the_prefixed_keys() {
        let (min, max) = prefix_range("a/");
        let inside = |k: &str| {
            let k = k.as_bytes();
            k >= &min[1..] && k < &max[1..]
        };
        assert!(inside("a/"));
        assert!(inside("a/1"));
        assert!(inside("a/\u{10FFFF}"));
        assert!(!inside("a"));
        assert!(!inside("ab/1"));
        assert!(!inside("a0"));
        assert_eq!(prefix_range(""), (b"-".to_vec(), b"+".to_vec()));
    }

    #[test]
    fn decoding_a_bad_record_never_echoes_it() {
        let reply = Value::Array(vec![
            Value::BulkString(b"secret-value".to_vec()),
            Value::BulkString(b"secret-version".to_vec()),
            Value::Nil,
        ]);
        let err = decode_fields("t", reply).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)));
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn missing_hash_decodes_as_absent() {
        let reply = Value::Array(vec![Value::Nil, Value::Nil, Value::Nil]);
        assert_eq!(decode_fields("t", reply).unwrap(), None);
    }

    #[test]
    fn record_decodes_with_and_without_expiry() {
        let reply = |exp: Value| {
            Value::Array(vec![
                Value::BulkString(b"{}".to_vec()),
                Value::BulkString(b"42".to_vec()),
                exp,
            ])
        };
        assert_eq!(
            decode_fields("t", reply(Value::Nil)).unwrap(),
            Some(Record {
                value: b"{}".to_vec(),
                version: 42,
                expires_at: None
            })
        );
        assert_eq!(
            decode_fields("t", reply(Value::BulkString(b"-5".to_vec())))
                .unwrap()
                .and_then(|r| r.expires_at),
            Some(-5)
        );
    }

    #[test]
    fn argument_echo_is_cut_from_messages() {
        let shown = redact("ERR unknown command 'EVALSHA', with args beginning with: 'secret'");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.starts_with("ERR unknown command"));
    }

    #[test]
    fn open_rejects_a_prefix_that_would_break_the_hash_tag() {
        for prefix in ["", "a{b", "a}b"] {
            assert!(RedisStore::open("redis://127.0.0.1:6379/", prefix).is_err());
        }
    }

    #[test]
    fn open_accepts_tls_and_unix_socket_urls() {
        for url in [
            "rediss://cache.example:6380/0",
            "rediss://:pw@cache.example:6380/1#insecure",
            "redis+unix:///run/redis.sock?db=2",
        ] {
            assert!(RedisStore::open(url, "p").is_ok(), "{url}");
        }
    }

    #[test]
    fn open_never_echoes_the_url() {
        let err = RedisStore::open("redis://:hunter2@[bad", "p").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_shows_the_address_but_not_the_password() {
        let store = RedisStore::open("redis://:hunter2@127.0.0.1:6379/3", "p").unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains("127.0.0.1:6379/3"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
