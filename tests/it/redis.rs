//! The Redis backend: the store conformance suite, what only Redis can show
//! (layout, backstop expiry, exactness, foreign data), two Gatepass
//! instances acting as one provider, and Redis going away and coming back.
//!
//! Which Redis: `GATEPASS_TEST_REDIS_URL` if set (`.ci/run` starts a
//! private one); else a private `redis-server` started per test on a free
//! port if one is on PATH; else the test says it was skipped — unless
//! `GATEPASS_REQUIRE_REDIS=1`, where no Redis is a failure. Every test works
//! under its own random key prefix and removes its keys when it ends, so a
//! shared Redis is safe (nothing here flushes a database). The fault tests
//! always start their own `redis-server`, since they stop it.

use crate::harness::*;
use gatepass::app::AppState;
use gatepass::clock::{Clock, ManualClock, SystemClock};
use gatepass::config::Settings;
use gatepass::store::conformance::{self, NOW};
use gatepass::store::redis::RedisStore;
use gatepass::store::{Durability, Precondition, Store, StoreError, StoreResult, Txn};
use openidconnect::{AuthorizationCode, OAuth2TokenResponse, TokenUrl};
use reqwest::StatusCode;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

// --- which Redis --------------------------------------------------------------

/// A Redis to test against, alive as long as this value.
pub struct TestRedis {
    pub url: String,
    _server: Option<PrivateRedis>,
}

/// The Redis for `test`, or `None` after saying why it was skipped. Panics
/// instead when `GATEPASS_REQUIRE_REDIS=1`.
pub async fn redis_for(test: &str) -> Option<TestRedis> {
    if let Some(url) = std::env::var("GATEPASS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(TestRedis { url, _server: None });
    }
    match PrivateRedis::start(false).await {
        Ok(server) => Some(TestRedis {
            url: server.url(),
            _server: Some(server),
        }),
        Err(why) => no_redis(test, &why),
    }
}

/// A Gatepass on a namespace of its own in the test Redis (kept alive by
/// the returned [`TestRedis`]), or `None` after saying why `test` was
/// skipped.
/// `extra_config` is TOML appended to the config.
pub async fn app_on_redis_with(test: &str, extra_config: &str) -> Option<(TestApp, TestRedis)> {
    let redis = redis_for(test).await?;
    let store = Namespace::new(&redis.url).store().await;
    let app = TestApp::spawn_on(
        Arc::new(store),
        tempfile::tempdir().expect("tempdir"),
        extra_config,
    )
    .await;
    Some((app, redis))
}

/// Two tests running `$check(app: TestApp)`: one on an embedded store, one
/// on its own Redis namespace (skipped, saying why, without a Redis);
/// optionally with extra TOML in both configs.
macro_rules! on_both_backends {
    ($check:ident => $embedded:ident, $redis:ident) => {
        $crate::redis::on_both_backends!($check => $embedded, $redis, config = "");
    };
    ($check:ident => $embedded:ident, $redis:ident, config = $config:expr) => {
        #[tokio::test]
        async fn $embedded() {
            $check($crate::harness::TestApp::spawn_with($config).await).await;
        }

        #[tokio::test]
        async fn $redis() {
            let Some((app, _redis)) =
                $crate::redis::app_on_redis_with(stringify!($redis), $config).await
            else {
                return;
            };
            $check(app).await;
        }
    };
}
pub(crate) use on_both_backends;

/// A private `redis-server` for a test that must stop and start it.
async fn private_redis_for(test: &str, durable: bool) -> Option<PrivateRedis> {
    match PrivateRedis::start(durable).await {
        Ok(server) => Some(server),
        Err(why) => no_redis(test, &why),
    }
}

fn no_redis<T>(test: &str, why: &str) -> Option<T> {
    if std::env::var("GATEPASS_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!("{test}: GATEPASS_REQUIRE_REDIS=1 but no Redis is available: {why}");
    }
    eprintln!("SKIPPED {test}: no Redis ({why})");
    None
}

/// A `redis-server` child process on a free loopback port, killed on drop.
pub struct PrivateRedis {
    binary: PathBuf,
    port: u16,
    durable: bool,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one; `durable` turns on `appendonly` with `appendfsync
    /// always`, so an acknowledged write survives a kill.
    async fn start(durable: bool) -> Result<PrivateRedis, String> {
        let binary = find_on_path("redis-server")
            .ok_or("GATEPASS_TEST_REDIS_URL is unset and redis-server is not on PATH")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut server = PrivateRedis {
            binary,
            port: free_port(),
            durable,
            dir,
            child: None,
        };
        let mut last = String::new();
        // Another process may take the free port between probe and bind.
        for _ in 0..5 {
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
            server.port = free_port();
        }
        Err(format!("redis-server would not start: {last}"))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Runs `redis-server` on `self.port` and waits until it answers PING.
    async fn launch(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self
            .dir
            .path()
            .to_str()
            .ok_or("temp dir is not UTF-8")?
            .to_owned();
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            &dir,
        ]);
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("exited with {status} (port {port} taken?)"));
            }
            if answers_ping(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop();
        Err("did not answer PING within 10 s".to_owned())
    }

    /// Kills the server (SIGKILL: no chance to save anything on the way out).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `kill -<signal>` to the server (`STOP`, `CONT`).
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts it again on the same port, over the same data directory.
    async fn restart(&mut self) {
        self.launch()
            .await
            .expect("redis-server restarts on its port");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("addr").port()
}

async fn answers_ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut reply = [0u8; 5];
    stream.write_all(b"PING\r\n").await.is_ok()
        && stream.read_exact(&mut reply).await.is_ok()
        && &reply == b"+PONG"
}

// --- one namespace per test ---------------------------------------------------

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    SystemRandom::new().fill(&mut bytes).expect("random");
    format!("{:016x}", u64::from_be_bytes(bytes))
}

/// A random key prefix on one Redis; [`Namespace::remove`] deletes its keys.
pub(crate) struct Namespace {
    url: String,
    pub(crate) prefix: String,
}

impl Namespace {
    pub(crate) fn new(url: &str) -> Namespace {
        Namespace {
            url: url.to_owned(),
            prefix: format!("gatepass-test-{}", random_hex()),
        }
    }

    pub(crate) async fn store(&self) -> RedisStore {
        RedisStore::connect(&self.url, &self.prefix)
            .await
            .expect("connect to the test Redis")
    }

    /// A plain connection for poking at the raw keys.
    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }

    /// Every key of this namespace (SCAN, never KEYS or FLUSH*).
    async fn keys(&self) -> Vec<String> {
        let mut conn = self.raw().await;
        let mut cursor = 0u64;
        let mut all = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{{{}}}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            all.extend(batch);
            if next == 0 {
                return all;
            }
            cursor = next;
        }
    }

    pub(crate) async fn remove(self) {
        let keys = self.keys().await;
        let mut conn = self.raw().await;
        for chunk in keys.chunks(500) {
            let _: () = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .expect("UNLINK");
        }
    }
}

// --- the conformance suite ----------------------------------------------------

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() -> StoreResult<()> {
            let Some(redis) = redis_for(concat!("redis::", stringify!($check))).await else { return Ok(()) };
            let ns = Namespace::new(&redis.url);
            conformance::$check(&ns.store().await).await?;
            ns.remove().await;
            Ok(())
        }
    )*};
}

macro_rules! race {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() -> StoreResult<()> {
            let Some(redis) = redis_for(concat!("redis::", stringify!($check))).await else { return Ok(()) };
            let ns = Namespace::new(&redis.url);
            conformance::$check(Arc::new(ns.store().await)).await?;
            ns.remove().await;
            Ok(())
        }
    )*};
}

conformance!(
    put_then_get_roundtrips,
    versions_are_fresh_and_never_reused,
    insert_creates_only_when_absent,
    take_returns_record_once,
    compare_and_swap_requires_current_version,
    delete_reports_live_record,
    increment_counts_and_keeps_first_expiry,
    expired_counter_restarts,
    commit_applies_every_write,
    commit_writes_nothing_when_a_precondition_fails,
    commit_absent_accepts_expired_record,
    scan_returns_live_records_in_key_order,
    scan_isolates_tables,
    similar_table_names_stay_apart,
    scan_prefix_matches_only_keys_with_the_prefix,
    scan_prefix_empty_is_whole_table,
    scan_prefix_returns_only_live_records,
    scan_page_walks_every_live_record_once_in_both_orders,
    purge_expired_removes_only_expired,
    durability_changes_keep_one_record,
    ping_succeeds,
);

race!(
    concurrent_takes_have_one_winner,
    concurrent_compare_and_swaps_have_one_winner,
    concurrent_inserts_have_one_winner,
    concurrent_commits_have_one_winner,
    concurrent_deletes_have_one_winner,
    concurrent_increments_are_exact,
    concurrent_mixed_durability_commits_have_one_winner,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_full_suite_passes() -> StoreResult<()> {
    let Some(redis) = redis_for("redis_store_full_suite_passes").await else {
        return Ok(());
    };
    let ns = Namespace::new(&redis.url);
    conformance::run_all(Arc::new(ns.store().await)).await?;
    ns.remove().await;
    Ok(())
}

/// Two stores on one Redis and one prefix are one store: what the
/// two-instance tests below rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_stores_on_one_prefix_share_every_race() -> StoreResult<()> {
    let Some(redis) = redis_for("redis_two_stores_on_one_prefix_share_every_race").await else {
        return Ok(());
    };
    let ns = Namespace::new(&redis.url);
    let (a, b) = (ns.store().await, ns.store().await);
    let v = a
        .put(
            "t",
            "code",
            b"c".to_vec(),
            Some(NOW + 60),
            Durability::Ephemeral,
        )
        .await?;
    assert_eq!(b.get("t", "code", NOW).await?.map(|r| r.version), Some(v));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { store.take("t", "code", Durability::Ephemeral, NOW).await });
    }
    let mut winners = 0;
    while let Some(taken) = tasks.join_next().await {
        winners += usize::from(taken.expect("task")?.is_some());
    }
    assert_eq!(winners, 1);
    ns.remove().await;
    Ok(())
}

// --- what only Redis shows ----------------------------------------------------

#[tokio::test]
async fn redis_layout_is_one_hash_tag_with_hashes_and_sorted_set_indexes() {
    let Some(redis) =
        redis_for("redis_layout_is_one_hash_tag_with_hashes_and_sorted_set_indexes").await
    else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let store = ns.store().await;
    let v = store
        .put(
            "user",
            "ann",
            b"{\"n\":1}".to_vec(),
            Some(NOW + 5),
            Durability::Durable,
        )
        .await
        .unwrap();
    store
        .put("users", "bob", b"x".to_vec(), None, Durability::Durable)
        .await
        .unwrap();

    let tag = format!("{{{}}}:", ns.prefix);
    let mut keys = ns.keys().await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{tag}expiries"),
            format!("{tag}i:4:user"),
            format!("{tag}i:5:users"),
            format!("{tag}r:4:user:ann"),
            format!("{tag}r:5:users:bob"),
            format!("{tag}version"),
        ]
    );
    let mut raw = ns.raw().await;
    let fields: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(format!("{tag}r:4:user:ann"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(fields["v"], b"{\"n\":1}");
    assert_eq!(fields["ver"], v.to_string().into_bytes());
    assert_eq!(fields["exp"], (NOW + 5).to_string().into_bytes());
    let members = zrange(&mut raw, format!("{tag}i:4:user")).await;
    assert_eq!(members, ["ann"]);
    ns.remove().await;
}

/// The backstop TTL sits a day past the record's expiry (or past Redis's
/// clock), and reads follow the caller's `now` alone: a record whose
/// `expires_at` is decades in Redis's past is still live at an earlier
/// `now`.
#[tokio::test]
async fn redis_expiry_follows_the_callers_clock_not_redis() {
    let Some(redis) = redis_for("redis_expiry_follows_the_callers_clock_not_redis").await else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let store = ns.store().await;
    let tag = format!("{{{}}}:", ns.prefix);
    let mut raw = ns.raw().await;

    store
        .put("t", "past", b"p".to_vec(), Some(1_000), Durability::Durable)
        .await
        .unwrap();
    assert!(
        store.get("t", "past", 999).await.unwrap().is_some(),
        "live at a now before 1970+1000s"
    );
    assert!(store.get("t", "past", 1_000).await.unwrap().is_none());
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{tag}r:1:t:past"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        (86_000..=86_400).contains(&ttl),
        "a day of grace from Redis's now: {ttl}"
    );

    store
        .put("t", "future", b"f".to_vec(), Some(NOW), Durability::Durable)
        .await
        .unwrap();
    let at: i64 = redis::cmd("EXPIRETIME")
        .arg(format!("{tag}r:1:t:future"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(at, NOW + 86_400);

    store
        .put("t", "future", b"f".to_vec(), None, Durability::Durable)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{tag}r:1:t:future"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "a record that never expires has no TTL");

    // An index entry whose record Redis already dropped is skipped, then
    // purged. (Redis drops a record a day after its expiry, so by then the
    // entry is due: the purge finds it through `expiries`.)
    store
        .put(
            "t",
            "dropped",
            b"d".to_vec(),
            Some(1_500),
            Durability::Durable,
        )
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{tag}r:1:t:dropped"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let listed: Vec<String> = store
        .scan("t", 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, ["future", "past"]);
    assert_eq!(
        store.purge_expired(2_000).await.unwrap(),
        1,
        "only `past` had expired"
    );
    let members = zrange(&mut raw, format!("{tag}i:1:t")).await;
    assert_eq!(members, ["future"], "the dangling entry is gone too");
    ns.remove().await;
}

/// A sorted set's members, in order.
async fn zrange(raw: &mut redis::aio::MultiplexedConnection, key: String) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(raw)
        .await
        .unwrap()
}

/// A sorted set's members with their scores, in order.
async fn zrange_scored(
    raw: &mut redis::aio::MultiplexedConnection,
    key: String,
) -> Vec<(String, i64)> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(raw)
        .await
        .unwrap()
}

/// `expiries` holds exactly the records that expire, scored by when, through
/// every write script; a purge reads it, not the tables.
#[tokio::test]
async fn redis_expiries_index_every_expiring_record_and_drive_the_purge() {
    let Some(redis) =
        redis_for("redis_expiries_index_every_expiring_record_and_drive_the_purge").await
    else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let store = ns.store().await;
    let tag = format!("{{{}}}:", ns.prefix);
    let mut raw = ns.raw().await;
    let d = Durability::Durable;
    let expiries = async |raw: &mut redis::aio::MultiplexedConnection| {
        zrange_scored(raw, format!("{tag}expiries")).await
    };
    store
        .put("users", "ann", b"u".to_vec(), None, d)
        .await
        .unwrap();
    store
        .put("t", "a", b"a".to_vec(), Some(10), d)
        .await
        .unwrap();
    store
        .insert("t", "b:c", b"b".to_vec(), Some(-5), d, 0)
        .await
        .unwrap();
    store.increment("n", "k", 1, Some(20), d, 0).await.unwrap();
    assert_eq!(
        expiries(&mut raw).await,
        [
            ("1:t:b:c".to_owned(), -5),
            ("1:t:a".to_owned(), 10),
            ("1:n:k".to_owned(), 20)
        ],
        "a table name or key with a colon stays one member; what never expires is not there"
    );
    // A rewrite moves the entry; dropping the expiry drops it; every kind
    // of delete removes it.
    store
        .put("t", "a", b"a".to_vec(), Some(30), d)
        .await
        .unwrap();
    let v = store.get("n", "k", 0).await.unwrap().unwrap().version;
    store
        .compare_and_swap("n", "k", v, Some(b"2".to_vec()), None, d, 0)
        .await
        .unwrap();
    store.take("t", "b:c", d, -10).await.unwrap();
    assert_eq!(expiries(&mut raw).await, [("1:t:a".to_owned(), 30)]);
    let txn = gatepass::store::Txn::new(d)
        .put("t", "x", b"x".to_vec(), Some(40))
        .delete("t", "a");
    assert!(store.commit(txn, 0).await.unwrap());
    assert_eq!(expiries(&mut raw).await, [("1:t:x".to_owned(), 40)]);
    store
        .put("t", "y", b"y".to_vec(), Some(35), d)
        .await
        .unwrap();
    store.delete("t", "y", d, 0).await.unwrap();
    assert_eq!(expiries(&mut raw).await, [("1:t:x".to_owned(), 40)]);

    // Due entries only: `x` expires at 40, and a record Redis dropped
    // (backstop) leaves its entries to the purge.
    store
        .put("t", "gone", b"g".to_vec(), Some(12), d)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{tag}r:1:t:gone"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        store.purge_expired(39).await.unwrap(),
        0,
        "gone was already gone"
    );
    assert_eq!(expiries(&mut raw).await, [("1:t:x".to_owned(), 40)]);
    assert_eq!(store.purge_expired(40).await.unwrap(), 1);
    assert!(expiries(&mut raw).await.is_empty());
    assert!(store.get("users", "ann", 0).await.unwrap().is_some());
    let index = zrange(&mut raw, format!("{tag}i:1:t")).await;
    assert!(index.is_empty(), "{index:?}");
    ns.remove().await;
}

/// Data from a build before `expiries` (records, indexes and the `tables`
/// set, no `expiries`): the first purge walks those tables once, deletes
/// what expired, indexes what will, and forgets the list.
#[tokio::test]
async fn redis_data_from_before_expiries_is_walked_once_then_indexed() {
    let Some(redis) =
        redis_for("redis_data_from_before_expiries_is_walked_once_then_indexed").await
    else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let store = ns.store().await;
    let tag = format!("{{{}}}:", ns.prefix);
    let mut raw = ns.raw().await;
    let d = Durability::Durable;
    store
        .put("t", "old", b"o".to_vec(), Some(10), d)
        .await
        .unwrap();
    store
        .put("t", "new", b"n".to_vec(), Some(30), d)
        .await
        .unwrap();
    store
        .put("users", "ann", b"u".to_vec(), None, d)
        .await
        .unwrap();
    // Back to the old layout.
    let _: () = redis::cmd("DEL")
        .arg(format!("{tag}expiries"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(format!("{tag}tables"))
        .arg("t")
        .arg("users")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(store.purge_expired(20).await.unwrap(), 1);
    assert!(store.get("t", "old", 0).await.unwrap().is_none());
    assert!(store.get("users", "ann", 0).await.unwrap().is_some());
    let indexed = zrange_scored(&mut raw, format!("{tag}expiries")).await;
    assert_eq!(indexed, [("1:t:new".to_owned(), 30)]);
    let legacy: bool = redis::cmd("EXISTS")
        .arg(format!("{tag}tables"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!legacy, "the list is read once");
    assert_eq!(
        store.purge_expired(30).await.unwrap(),
        1,
        "then the index does the work"
    );
    ns.remove().await;
}

#[tokio::test]
async fn redis_values_keys_versions_and_counters_are_exact() {
    let Some(redis) = redis_for("redis_values_keys_versions_and_counters_are_exact").await else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let store = ns.store().await;
    let d = Durability::Durable;

    // Any bytes, any UTF-8 key, in byte order.
    let every_byte: Vec<u8> = (0..=255).collect();
    let keys = ["é/1", "a b", "a\u{0}b", "a:b", "{x}", "\u{10FFFF}"];
    for key in keys {
        store
            .put("bin", key, every_byte.clone(), None, d)
            .await
            .unwrap();
    }
    let scanned = store.scan("bin", NOW).await.unwrap();
    let mut sorted = keys.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(
        scanned.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        sorted
    );
    assert!(scanned.iter().all(|(_, r)| r.value == every_byte));
    assert_eq!(store.scan_prefix("bin", "é", NOW).await.unwrap().len(), 1);

    // Versions past 10^14 come back exact (no Lua number formatting).
    let mut raw = ns.raw().await;
    let _: () = redis::cmd("SET")
        .arg(format!("{{{}}}:version", ns.prefix))
        .arg(9_007_199_254_740_000u64)
        .query_async(&mut raw)
        .await
        .unwrap();
    let v = store
        .put("bin", "big", b"b".to_vec(), None, d)
        .await
        .unwrap();
    assert_eq!(v, 9_007_199_254_740_001);
    assert_eq!(
        store
            .get("bin", "big", NOW)
            .await
            .unwrap()
            .map(|r| r.version),
        Some(v)
    );
    assert_eq!(
        store
            .compare_and_swap("bin", "big", v, Some(b"c".to_vec()), None, d, NOW)
            .await
            .unwrap(),
        Some(v + 1)
    );

    // Counters use all of i64 and saturate like the embedded backend.
    assert_eq!(
        store
            .increment("n", "max", i64::MAX - 1, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        i64::MAX - 1
    );
    assert_eq!(
        store
            .increment("n", "max", 1, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        i64::MAX
    );
    assert_eq!(
        store
            .increment("n", "max", 5, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        i64::MAX
    );
    assert_eq!(
        store.get("n", "max", NOW).await.unwrap().unwrap().value,
        i64::MAX.to_string().into_bytes()
    );
    assert_eq!(
        store
            .increment("n", "min", i64::MIN, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        i64::MIN
    );
    assert_eq!(
        store
            .increment("n", "min", -1, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        i64::MIN
    );
    assert_eq!(
        store
            .increment("n", "min", 3, None, Durability::Durable, NOW)
            .await
            .unwrap(),
        i64::MIN + 3
    );
    ns.remove().await;
}

/// Data Gatepass did not write is `Corrupt`, the message never quotes it,
/// and a transaction that meets it writes nothing.
#[tokio::test]
async fn redis_foreign_data_is_corrupt_and_blocks_the_whole_transaction() {
    let Some(redis) =
        redis_for("redis_foreign_data_is_corrupt_and_blocks_the_whole_transaction").await
    else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let store = ns.store().await;
    let tag = format!("{{{}}}:", ns.prefix);
    let mut raw = ns.raw().await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{tag}r:1:t:nover"))
        .arg("v")
        .arg("secret-value")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{tag}r:1:t:string"))
        .arg("secret-value")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{tag}r:1:t:counter"))
        .arg("v")
        .arg("secret-value")
        .arg("ver")
        .arg("1")
        .query_async(&mut raw)
        .await
        .unwrap();

    for key in ["nover", "string"] {
        let err = store.get("t", key, NOW).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{key}: {err}");
        assert!(!err.to_string().contains("secret-value"), "{err}");
        let err = store
            .insert("t", key, b"x".to_vec(), None, Durability::Durable, NOW)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{key}: {err}");
    }
    let err = store
        .increment("t", "counter", 1, None, Durability::Durable, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(!err.to_string().contains("secret-value"), "{err}");

    let txn = Txn::new(Durability::Durable)
        .require("t", "fresh", Precondition::Absent)
        .put("t", "fresh", b"f".to_vec(), None)
        .put("t", "string", b"overwrite".to_vec(), None);
    let err = store.commit(txn, NOW).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(
        store.get("t", "fresh", NOW).await.unwrap(),
        None,
        "nothing written"
    );
    ns.remove().await;
}

/// Connecting to a port where nothing listens fails at once with
/// `Unavailable`, naming the address and never the password.
#[tokio::test]
async fn redis_connect_to_a_dead_port_is_unavailable_quickly() {
    let port = free_port();
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://:hunter2@127.0.0.1:{port}/0"), "gp")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let shown = err.to_string();
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

// --- two instances on one Redis -----------------------------------------------

/// A second Gatepass on its own port that shares A's Redis prefix, keys
/// directory and issuer, built from a `backend = "redis"` config through
/// `AppState::build` like `gatepass serve`.
pub(crate) struct Instance {
    state: AppState,
    pub(crate) base: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Instance {
    async fn spawn_beside(a: &TestApp, url: &str, prefix: &str) -> Instance {
        Self::spawn_beside_with(a, url, prefix, "").await
    }

    /// [`Instance::spawn_beside`] with extra TOML in B's config.
    pub(crate) async fn spawn_beside_with(
        a: &TestApp,
        url: &str,
        prefix: &str,
        extra_config: &str,
    ) -> Instance {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!(
            "http://localhost:{}",
            listener.local_addr().expect("addr").port()
        );
        let settings = Settings::from_toml(
            &format!(
                "{}\n{extra_config}",
                redis_config(&a.issuer, a.dir.path(), url, prefix)
            ),
            Path::new("b.toml"),
            std::iter::empty(),
        )
        .expect("B's config");
        let state = AppState::build(settings, Arc::new(ManualClock::new(SystemClock.now())))
            .expect("B builds on Redis");
        let server = tokio::spawn(gatepass::server::serve_on(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http");
        Instance {
            state,
            base,
            http,
            server,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The harness's config with the `[store]` section pointed at Redis.
fn redis_config(issuer: &str, dir: &Path, url: &str, prefix: &str) -> String {
    let embedded = format!(
        "backend = \"embedded\"\npath = \"{}\"",
        dir.join("gatepass.redb").display()
    );
    let text = config_text(issuer, dir);
    assert!(text.contains(&embedded), "the harness config changed shape");
    text.replace(
        &embedded,
        &format!("backend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\""),
    )
}

pub(crate) struct Pair {
    pub(crate) a: TestApp,
    b: Instance,
    ns: Namespace,
    _redis: TestRedis,
}

/// A on its own port with A's issuer, B on another port with the same
/// issuer, store prefix and `keys/`.
pub(crate) async fn two_instances(test: &str) -> Option<Pair> {
    let redis = redis_for(test).await?;
    let ns = Namespace::new(&redis.url);
    let a = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().expect("tempdir"),
        "",
    )
    .await;
    let b = Instance::spawn_beside(&a, &redis.url, &ns.prefix).await;
    Some(Pair {
        a,
        b,
        ns,
        _redis: redis,
    })
}

impl Pair {
    /// `url` (one of A's) as the same URL at B.
    pub(crate) fn at_b(&self, url: &str) -> String {
        url.replacen(&self.a.issuer, &self.b.base, 1)
    }
}

async fn refresh_at(
    http: &reqwest::Client,
    token_url: &str,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(token_url)
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("token request");
    (r.status(), r.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_instances_share_the_signing_key_and_discovery() {
    let Some(pair) = two_instances("redis_instances_share_the_signing_key_and_discovery").await
    else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    for path in ["/jwks", "/.well-known/openid-configuration"] {
        let at_a: Value = a
            .http
            .get(a.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let at_b: Value = b
            .http
            .get(b.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(at_a, at_b, "{path}");
    }
    let ready = b.http.get(b.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    pair.ns.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_code_issued_by_a_is_redeemed_at_b_once() {
    let Some(pair) = two_instances("redis_code_issued_by_a_is_redeemed_at_b_once").await else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    let user = a.create_user("ann", Some("ann password 1")).await;
    let rp = a.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &["offline_access"]);
    let location = a
        .browser()
        .sign_in(&url, "ann", "ann password 1")
        .await
        .expect("signed in at A");
    let code = query_param(&location, "code").expect("code from A");

    // The relying party, unchanged but for its token endpoint, redeems at B
    // and verifies B's ID token (signature, issuer, audience, nonce) itself.
    let rp_b = rp
        .clone()
        .set_token_uri(TokenUrl::new(b.url("/token")).unwrap());
    let tokens = rp_b
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&b.http)
        .await
        .expect("A's code redeems at B");
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(claims.subject().as_str(), user.id.to_string());

    // B's access token works at A.
    let userinfo_at_a = async || {
        a.http
            .get(a.url("/userinfo"))
            .bearer_auth(tokens.access_token().secret())
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(userinfo_at_a().await, StatusCode::OK);

    // Once: A refuses the same code now, and treats it as the replay it
    // is, revoking the grant B issued (RFC 6749 §4.1.2).
    let again = a
        .http
        .post(a.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(userinfo_at_a().await, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh_at(
        &b.http,
        &b.url("/token"),
        tokens.refresh_token().unwrap().secret(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the grant is revoked at B too"
    );
    pair.ns.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_one_time_tap_raced_across_two_instances_signs_in_once() {
    let Some(pair) =
        two_instances("redis_one_time_tap_raced_across_two_instances_signs_in_once").await
    else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    let user = a.create_user("racer", None).await;
    let created = a.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let tap = created["temporaryAccessPass"]
        .as_str()
        .expect("pass")
        .to_owned();
    let rp = a.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);

    // 50 browsers, alternately at A and B, each at the TAP prompt.
    let mut ready = Vec::new();
    for i in 0..50 {
        let (base, authorize) = if i % 2 == 0 {
            (a.issuer.clone(), url.clone())
        } else {
            (b.base.clone(), pair.at_b(&url))
        };
        let browser = Browser::new(base);
        let first = browser.get(&authorize).await;
        let flow = first.hidden("flow").expect("flow");
        let csrf = first.hidden("csrf").expect("csrf");
        let next = browser
            .post_form(
                "/signin/username",
                &[("flow", &flow), ("csrf", &csrf), ("username", "racer")],
            )
            .await;
        let page = browser
            .get(&next.location.expect("redirect after username"))
            .await;
        assert!(page.has_label("Temporary Access Pass"), "{}", page.html);
        ready.push((browser, page));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(ready.len()));
    let tasks: Vec<_> = ready
        .into_iter()
        .map(|(browser, page)| {
            let (barrier, tap) = (barrier.clone(), tap.clone());
            tokio::spawn(async move {
                let flow = page.hidden("flow").unwrap();
                let csrf = page.hidden("csrf").unwrap();
                barrier.wait().await;
                let done = browser
                    .post_form(
                        "/signin/tap",
                        &[("flow", &flow), ("csrf", &csrf), ("tap", &tap)],
                    )
                    .await;
                assert!(!done.status.is_server_error(), "{}", done.status);
                done.location.is_some_and(|l| l.contains("code="))
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(
        winners, 1,
        "a one-time pass signs in exactly once across instances"
    );
    let now = a.clock.now().unix_timestamp();
    let sessions = b
        .state
        .store
        .scan(gatepass::authn::session::SESSIONS, now)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "exactly one session, seen from B");
    let (pass, _) = b.state.taps.pass(user.id, now).await.unwrap().unwrap();
    assert!(pass.used_at.is_some());
    pair.ns.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_sign_out_everywhere_at_a_ends_the_session_at_b() {
    let Some(pair) = two_instances("redis_sign_out_everywhere_at_a_ends_the_session_at_b").await
    else {
        return;
    };
    let a = &pair.a;
    let user = a.create_user("sam", Some("sam password 1")).await;
    let rp = a.rp(RP_ID, Some(RP_SECRET)).await;
    let browser = a.browser();
    let (url, _, _) = authorize_url(&rp, &[]);
    browser
        .sign_in(&url, "sam", "sam password 1")
        .await
        .expect("signed in at A");

    // Cookies do not depend on the port, so this browser carries its A
    // session cookie to B.
    let silent = |at: String| {
        let browser = &browser;
        async move {
            let page = browser.get(&format!("{at}&prompt=none")).await;
            page.location.expect("prompt=none redirects")
        }
    };
    let (fresh, _, _) = authorize_url(&rp, &[]);
    let at_b = silent(pair.at_b(&fresh)).await;
    assert!(at_b.contains("code="), "B sees A's session: {at_b}");

    let token = a.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = a
        .http
        .post(a.url(&format!("/v1.0/users/{}/revokeSignInSessions", user.id)))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (fresh, _, _) = authorize_url(&rp, &[]);
    let at_b = silent(pair.at_b(&fresh)).await;
    assert_eq!(
        query_param(&at_b, "error").as_deref(),
        Some("login_required"),
        "{at_b}"
    );
    let (fresh, _, _) = authorize_url(&rp, &[]);
    let at_a = silent(fresh).await;
    assert_eq!(
        query_param(&at_a, "error").as_deref(),
        Some("login_required"),
        "{at_a}"
    );
    pair.ns.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_refresh_token_rotated_at_a_and_reused_at_b_revokes_the_family() {
    let Some(pair) =
        two_instances("redis_refresh_token_rotated_at_a_and_reused_at_b_revokes_the_family").await
    else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    a.create_user("rae", Some("rae password 1")).await;
    let tokens = a
        .user_tokens("rae", "rae password 1", "openid offline_access")
        .await;
    let first = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();

    let (status, rotated) = refresh_at(&a.http, &a.url("/token"), &first).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["refresh_token"]
        .as_str()
        .expect("rotated refresh token")
        .to_owned();
    assert_ne!(first, second);

    let (status, reuse) = refresh_at(&b.http, &b.url("/token"), &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reuse}");
    assert_eq!(reuse["error"], "invalid_grant");

    let (status, after) = refresh_at(&a.http, &a.url("/token"), &second).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the newest token of a reused family fails: {after}"
    );
    assert_eq!(after["error"], "invalid_grant");
    pair.ns.remove().await;
}

// --- faults -------------------------------------------------------------------

/// One request as a load balancer's client sees it: status, JSON body and
/// how long it took. Never a transport error: Gatepass always answers.
async fn probe(request: reqwest::RequestBuilder) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let r = request
        .send()
        .await
        .expect("Gatepass answers even when Redis is down");
    let status = r.status();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

async fn graph_users(app: &TestApp, token: &str) -> (StatusCode, Value, Duration) {
    probe(app.http.get(app.url("/v1.0/users")).bearer_auth(token)).await
}

async fn readyz(app: &TestApp) -> (StatusCode, Value, Duration) {
    probe(app.http.get(app.url("/readyz"))).await
}

async fn client_credentials(app: &TestApp) -> (StatusCode, Value, Duration) {
    let request = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .form(&[("grant_type", "client_credentials")]);
    probe(request).await
}

/// A code redemption: the token endpoint must reach the store for it (a
/// client-credentials grant needs only the configuration and still works).
async fn redeem_unknown_code(app: &TestApp) -> (StatusCode, Value, Duration) {
    let request = app
        .http
        .post(app.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "no-such-code-0123456789"),
            ("redirect_uri", RP_REDIRECT),
        ]);
    probe(request).await
}

/// Waits (bounded) for `/readyz` to pass, as a load balancer would.
async fn until_ready(app: &TestApp) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if readyz(app).await.0 == StatusCode::OK {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz did not recover within 15 s of Redis returning");
}

fn assert_unavailable(what: &str, (status, body, took): &(StatusCode, Value, Duration)) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(*took < Duration::from_secs(5), "{what} took {took:?}");
}

/// Redis killed under traffic: every request answers 503 with a JSON
/// error within seconds, `/readyz` fails, nothing panics; Redis started
/// again on its port (with its append-only file) → the same app serves
/// again, and what was acknowledged before the kill is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_traffic_answers_503_then_recovers_without_restart() {
    let test = "redis_stopped_mid_traffic_answers_503_then_recovers_without_restart";
    let Some(mut redis) = private_redis_for(test, true).await else {
        return;
    };
    let ns = Namespace::new(&redis.url());
    let app = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().expect("tempdir"),
        "",
    )
    .await;
    let user = app.create_user("kept", Some("kept password 1")).await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    assert_eq!(graph_users(&app, &token).await.0, StatusCode::OK);

    // Background traffic across the whole outage: only 200s and 503s.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (http, url, token, stop) = (
            app.http.clone(),
            app.url(&format!("/v1.0/users/{}", user.id)),
            token.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, _, _) = probe(http.get(&url).bearer_auth(&token)).await;
                seen.push(status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    redis.stop();
    let graph = graph_users(&app, &token).await;
    assert_unavailable("Graph", &graph);
    assert_eq!(
        graph.1["error"]["code"], "serviceNotAvailable",
        "{}",
        graph.1
    );
    let oauth = redeem_unknown_code(&app).await;
    assert_unavailable("token endpoint", &oauth);
    assert_eq!(oauth.1["error"], "temporarily_unavailable", "{}", oauth.1);
    let ready = readyz(&app).await;
    assert_unavailable("/readyz", &ready);
    assert_eq!(ready.1["store"], "unreachable");
    let page = app.browser().get(&format!("/authorize?client_id={RP_ID}&response_type=code&redirect_uri={RP_REDIRECT}&scope=openid")).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "sign-in page: {}",
        page.html
    );
    // A burst while down: all 503, all quick.
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let (http, url, token) = (app.http.clone(), app.url("/v1.0/users"), token.clone());
            tokio::spawn(async move { probe(http.get(url).bearer_auth(token)).await })
        })
        .collect();
    for r in burst {
        assert_unavailable("burst", &r.await.unwrap());
    }

    redis.restart().await;
    let recovered_in = until_ready(&app).await;
    eprintln!("redis fault test: ready again {recovered_in:?} after Redis restarted");
    let (status, body, _) = graph_users(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert!(
        ids.contains(&user.id.to_string().as_str()),
        "the user written before the kill survived: {body}"
    );
    let (status, body, _) = redeem_unknown_code(&app).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
        "{body}"
    );
    assert!(app.browser().sign_in(&format!("{}/authorize?client_id={RP_ID}&response_type=code&redirect_uri={RP_REDIRECT}&scope=openid", app.issuer), "kept", "kept password 1").await.is_ok());

    // A probe that started during the outage may still be waiting out its
    // timeout (up to ~3 s); let it drain so the samples end after recovery.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = traffic.await.expect("background traffic never panicked");
    assert!(
        seen.iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{seen:?}"
    );
    assert!(
        seen.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the traffic saw the outage"
    );
    assert_eq!(seen.last(), Some(&StatusCode::OK), "and its end");
    drop(app);
    ns.remove().await;
}

/// An app started while Redis is down (the store connects lazily, as
/// `AppState::build` does) answers 503 and serves once Redis comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_answers_503_then_serves_when_it_comes_up() {
    let test = "redis_down_at_start_answers_503_then_serves_when_it_comes_up";
    let Some(mut redis) = private_redis_for(test, false).await else {
        return;
    };
    redis.stop();
    let ns = Namespace::new(&redis.url());
    let store = RedisStore::open(&ns.url, &ns.prefix).expect("a valid URL opens without Redis");
    let app = TestApp::spawn_on(Arc::new(store), tempfile::tempdir().expect("tempdir"), "").await;

    assert_unavailable("/readyz", &readyz(&app).await);
    assert_unavailable("token endpoint", &redeem_unknown_code(&app).await);
    // Tokens that need no store still work: the app is up, not wedged.
    let (status, body, _) = client_credentials(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_unavailable("Graph", &graph_users(&app, &token).await);

    redis.restart().await;
    until_ready(&app).await;
    assert_eq!(graph_users(&app, &token).await.0, StatusCode::OK);
    drop(app);
    ns.remove().await;
}

/// Redis frozen (SIGSTOP: connections stay open, nothing answers): requests
/// time out into 503s within seconds instead of hanging, and the same
/// connection serves again once Redis thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_answers_503_within_seconds_then_recovers() {
    let test = "redis_frozen_answers_503_within_seconds_then_recovers";
    let Some(redis) = private_redis_for(test, false).await else {
        return;
    };
    let ns = Namespace::new(&redis.url());
    let app = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().expect("tempdir"),
        "",
    )
    .await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    redis.signal("STOP");
    assert_unavailable("/readyz", &readyz(&app).await);
    assert_unavailable("token endpoint", &redeem_unknown_code(&app).await);
    redis.signal("CONT");
    until_ready(&app).await;
    assert_eq!(redeem_unknown_code(&app).await.0, StatusCode::BAD_REQUEST);
    drop(app);
    ns.remove().await;
}
