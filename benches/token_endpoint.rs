//! Load benchmark for the token endpoint (issue: foundation).
//!
//! In one run, on one machine, against a real Gatepass on the embedded store:
//!
//! 1. the CPU cost of one ES256 signature (`KeySet::sign`, one thread; timed
//!    again right before and after the redemption phase, whose ratio uses
//!    the mean of those two), and the signing rate with one thread per core;
//! 2. the embedded store's raw operations, in process (no HTTP);
//! 3. for discovery, `client_credentials`, authorization-code redemption
//!    (for `openid`, and for `openid offline_access`) and refresh-token
//!    rotation: requests/s at 32 concurrent clients over loopback HTTP (wall
//!    clock), **and** the server's CPU time per request.
//!
//! Target: a code redemption (two signatures: access token + ID token) costs
//! the server less than 3× the CPU of those two signatures, i.e. signing, not
//! plumbing, dominates. The verdict is for the `openid` redemption, whose
//! grant (no refresh token) is as short-lived as the code and so, like it,
//! lives in the store's memory tier. An `offline_access` redemption must
//! make its grant and refresh token durable before answering (a shared
//! fsync); its ratio is printed beside it.
//!
//! # How the server's CPU is told apart from the client's
//!
//! The load generator (reqwest) would otherwise share the process, so the
//! server re-executes this binary as a child with `GATEPASS_BENCH_ROLE=client`
//! for every HTTP phase; codes and refresh tokens are handed over in a temp
//! file (`GATEPASS_BENCH_ITEMS`), and the child prints how many requests it
//! made and in how long. The parent (now only the server) reads its own CPU
//! time, user + system over all its threads, exited ones included, from
//! `/proc/self/stat` (`utime`/`stime`, in clock ticks of `getconf CLK_TCK`,
//! normally 10 ms: a 4 s phase on 2 cores is ~800 ticks) before and after
//! the phase. Single-thread figures (signing) use the thread's own
//! nanosecond run time from `/proc/thread-self/schedstat`. Client and server
//! still share the cores, so the wall-clock rates include the client's cost;
//! the CPU figures do not. Neither includes the kernel's background
//! writeback of the store file's dirty pages (kernel threads, not ours);
//! an fsync's writeback is counted, as the calling thread pays for it.
//!
//! Codes are minted through the library (the sign-in pages are not what is
//! measured).
//!
//! DPoP (RFC 9449): the `client_credentials` and refresh phases run again
//! with a fresh ES256 proof per request (made by the load generator, so not
//! in the server's CPU), bound tokens and, for refresh, a public client's
//! key-bound grant; the difference per request is the cost of DPoP.
//!
//! Run: `cargo bench --bench token_endpoint` (set GATEPASS_BENCH_SECONDS to
//! change the per-phase duration; default 4). Linux only (`/proc`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatepass::app::AppState;
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use gatepass::store::embedded::EmbeddedStore;
use gatepass::store::{Durability, Precondition, Store, Txn};
use gatepass::tokens::grants::Redemption;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;
const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret-0123456789";
const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

/// Set to `client` in the child that generates the load.
const ROLE: &str = "GATEPASS_BENCH_ROLE";
/// Which phase the child runs (see [`Phase`]).
const PHASE: &str = "GATEPASS_BENCH_PHASE";
/// The server's base URL, for the child.
const ISSUER: &str = "GATEPASS_BENCH_ISSUER";
/// A file of codes or refresh tokens, one per line, for the child.
const ITEMS: &str = "GATEPASS_BENCH_ITEMS";
/// The DPoP key (PKCS#8, base64url) the child signs proofs with.
const DPOP_KEY: &str = "GATEPASS_BENCH_DPOP_KEY";
/// A public client whose refresh tokens are DPoP-bound.
const PUBLIC_CLIENT_ID: &str = "bench-public";

fn config(dir: &Path, issuer: &str) -> String {
    format!(
        r#"
issuer = "{issuer}"
listen = "127.0.0.1:0"
[store]
backend = "embedded"
path = "{}"
[keys]
dir = "{}"
[[clients]]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
app_permissions = ["User.Read.All"]
[[clients]]
client_id = "{PUBLIC_CLIENT_ID}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "refresh_token"]
"#,
        dir.join("bench.redb").display(),
        dir.join("keys").display()
    )
}

fn phase_duration() -> Duration {
    let secs = std::env::var("GATEPASS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    Duration::from_secs(secs)
}

fn main() {
    let client = std::env::var(ROLE).is_ok_and(|r| r == "client");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if client {
        runtime.block_on(client_main());
    } else {
        runtime.block_on(server_main());
    }
}

// ---------------------------------------------------------------- CPU clocks

/// Clock ticks per second for `/proc/*/stat`.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of this whole process (all threads, including
/// exited ones), from `/proc/self/stat`.
fn process_cpu(ticks_per_second: f64) -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux only)");
    // `comm` (field 2) may hold spaces; fields after its ')' start at 3.
    let rest = &stat[stat.rfind(')').expect("stat format") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[14 - 3].parse().unwrap();
    let stime: u64 = fields[15 - 3].parse().unwrap();
    Duration::from_secs_f64((utime + stime) as f64 / ticks_per_second)
}

/// Run time of the calling thread, in nanoseconds of resolution.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = stat.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// Measures the server's CPU time around `work`.
struct CpuMeter {
    ticks: f64,
}

impl CpuMeter {
    async fn measure<T>(&self, work: impl std::future::Future<Output = T>) -> (T, Duration) {
        let before = process_cpu(self.ticks);
        let out = work.await;
        (out, process_cpu(self.ticks).saturating_sub(before))
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ------------------------------------------------------------------- signing

fn bench_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "http://localhost", "sub": "00000000-0000-0000-0000-000000000000",
        "aud": "bench", "exp": 2_000_000_000, "iat": 1_700_000_000, "amr": ["pwd"], "acr": "single_factor"
    })
}

/// CPU time of one signature on one thread.
fn signing_cpu(state: &AppState, duration: Duration) -> Duration {
    let keys = state.tokens.keys().clone();
    let claims = bench_claims();
    std::thread::spawn(move || {
        // Warm up (first use initialises the key).
        for _ in 0..100 {
            keys.sign("JWT", &claims).unwrap();
        }
        let start = Instant::now();
        let cpu = thread_cpu();
        let mut n = 0u32;
        while start.elapsed() < duration {
            keys.sign("JWT", &claims).unwrap();
            n += 1;
        }
        (thread_cpu() - cpu) / n
    })
    .join()
    .unwrap()
}

/// Signatures per second with one thread per core, like the server's workers.
fn raw_signing_rate(state: &AppState, threads: usize, duration: Duration) -> f64 {
    let claims = bench_claims();
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let count = count.clone();
            let keys = state.tokens.keys().clone();
            let claims = claims.clone();
            s.spawn(move || {
                while start.elapsed() < duration {
                    keys.sign("JWT", &claims).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

// --------------------------------------------------------------- store ops

/// Runs `op(i)` from 32 tasks for `duration`; returns (ops/s, CPU per op).
async fn store_load<F, Fut>(meter: &CpuMeter, duration: Duration, op: F) -> (f64, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let ((), cpu) = meter
        .measure(async {
            let mut tasks = tokio::task::JoinSet::new();
            for t in 0..CONCURRENCY {
                let (op, done) = (op.clone(), done.clone());
                tasks.spawn(async move {
                    let mut i = t;
                    while start.elapsed() < duration {
                        op(i).await;
                        i += CONCURRENCY;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            while let Some(t) = tasks.join_next().await {
                t.unwrap();
            }
        })
        .await;
    let n = done.load(Ordering::Relaxed).max(1);
    (n as f64 / start.elapsed().as_secs_f64(), cpu / n as u32)
}

fn print_store_op(name: &str, (rate, cpu): (f64, Duration)) {
    println!(
        "  {name:<46} {rate:>9.0} ops/s  {:>7.1} µs CPU/op",
        micros(cpu)
    );
}

/// A key that sorts randomly, like the digests that key codes and tokens.
fn key(i: usize) -> String {
    // splitmix64
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}{:016x}", z ^ (z >> 31), i)
}

/// The embedded store's operations at 32 concurrent tasks, in process.
async fn store_ops(meter: &CpuMeter, dir: &Path, duration: Duration) {
    const KEYS: usize = 10_000;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.join("ops.redb")).unwrap());
    let now = SystemClock.now().unix_timestamp();
    let value = vec![b'x'; 600];
    for i in 0..KEYS {
        store
            .put("ops", &key(i), value.clone(), None, Durability::Ephemeral)
            .await
            .unwrap();
    }
    println!(
        "embedded store, {CONCURRENCY} concurrent tasks, random 32-character keys, 600-byte values:"
    );
    let s = store.clone();
    print_store_op(
        "get (memory tier)",
        store_load(meter, duration, move |i| {
            let s = s.clone();
            async move {
                s.get("ops", &key(i % KEYS), now).await.unwrap().unwrap();
            }
        })
        .await,
    );
    let (s, v) = (store.clone(), value.clone());
    print_store_op(
        "put (ephemeral: memory tier)",
        store_load(meter, duration, move |i| {
            let (s, v) = (s.clone(), v.clone());
            async move {
                s.put(
                    "ops-put",
                    &key(i),
                    v,
                    Some(now + 3600),
                    Durability::Ephemeral,
                )
                .await
                .unwrap();
            }
        })
        .await,
    );
    // Every record written here expires within the hour: purging "two hours
    // from now" empties the memory tier, so each phase starts with it empty.
    let later = now + 7200;
    store.purge_expired(later).await.unwrap();
    // The shape of a code redemption: a version check and two puts.
    let (s, v) = (store.clone(), value.clone());
    print_store_op(
        "commit (ephemeral: memory tier, check + 2 puts)",
        store_load(meter, duration, move |i| {
            let (s, v) = (s.clone(), v.clone());
            async move {
                let key = key(i);
                let txn = Txn::new(Durability::Ephemeral)
                    .require("ops-commit", key.clone(), Precondition::Absent)
                    .put("ops-commit", key.clone(), v.clone(), Some(now + 3600))
                    .put("ops-grant", key, v, Some(now + 3600));
                assert!(s.commit(txn, now).await.unwrap());
            }
        })
        .await,
    );
    store.purge_expired(later).await.unwrap();
    let (s, v) = (store.clone(), value.clone());
    print_store_op(
        "commit (durable, check + 2 puts)",
        store_load(meter, duration, move |i| {
            let (s, v) = (s.clone(), v.clone());
            async move {
                let key = key(i);
                let txn = Txn::new(Durability::Durable)
                    .require("ops-durable", key.clone(), Precondition::Absent)
                    .put("ops-durable", key.clone(), v.clone(), Some(now + 3600))
                    .put("ops-grant", key, v, Some(now + 3600));
                assert!(s.commit(txn, now).await.unwrap());
            }
        })
        .await,
    );
    // This store is not used again; leave nothing for its close to save.
    store.purge_expired(later).await.unwrap();
}

/// A point read straight from redb, inline on the task versus handed to
/// tokio's blocking pool: the measurement behind the embedded store running
/// `get` inline.
async fn redb_reads(meter: &CpuMeter, dir: &Path, duration: Duration) {
    const KEYS: u64 = 10_000;
    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
    let db = Arc::new(redb::Database::create(dir.join("reads.redb")).unwrap());
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(T).unwrap();
        for k in 0..KEYS {
            t.insert(k, [b'x'; 400].as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    fn read(db: &redb::Database, k: u64) -> usize {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        t.get(k).unwrap().unwrap().value().len()
    }
    let d = db.clone();
    print_store_op(
        "redb point read, inline",
        store_load(meter, duration, move |i| {
            let d = d.clone();
            async move {
                assert_eq!(read(&d, i as u64 % KEYS), 400);
            }
        })
        .await,
    );
    let d = db.clone();
    print_store_op(
        "redb point read, spawn_blocking",
        store_load(meter, duration, move |i| {
            let d = d.clone();
            async move {
                let n = tokio::task::spawn_blocking(move || read(&d, i as u64 % KEYS))
                    .await
                    .unwrap();
                assert_eq!(n, 400);
            }
        })
        .await,
    );
}

// -------------------------------------------------------------------- HTTP

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovery,
    ClientCredentials,
    Redeem,
    Refresh,
    DpopClientCredentials,
    DpopRefresh,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Discovery => "discovery",
            Phase::ClientCredentials => "client_credentials",
            Phase::Redeem => "redeem",
            Phase::Refresh => "refresh",
            Phase::DpopClientCredentials => "dpop_client_credentials",
            Phase::DpopRefresh => "dpop_refresh",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "discovery" => Phase::Discovery,
            "client_credentials" => Phase::ClientCredentials,
            "redeem" => Phase::Redeem,
            "refresh" => Phase::Refresh,
            "dpop_client_credentials" => Phase::DpopClientCredentials,
            "dpop_refresh" => Phase::DpopRefresh,
            other => panic!("unknown phase {other}"),
        }
    }
}

/// What one HTTP phase measured.
struct Measured {
    requests: usize,
    per_second: f64,
    server_cpu_per_request: Duration,
}

/// Runs one phase in a child process and measures this (server) process.
async fn http_phase(
    meter: &CpuMeter,
    issuer: &str,
    phase: Phase,
    items: Option<&Path>,
) -> Measured {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child
        .env(ROLE, "client")
        .env(PHASE, phase.name())
        .env(ISSUER, issuer)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    if let Some(items) = items {
        child.env(ITEMS, items);
    }
    child.env(DPOP_KEY, dpop_key().pkcs8);
    let (output, cpu) = meter.measure(child.output()).await;
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "load generator failed in phase {}",
        phase.name()
    );
    let report = String::from_utf8(output.stdout).unwrap();
    let mut fields = report.split_whitespace();
    let requests: usize = fields.next().unwrap().parse().unwrap();
    let seconds: f64 = fields.next().unwrap().parse().unwrap();
    assert!(requests > 0, "phase {} made no requests", phase.name());
    Measured {
        requests,
        per_second: requests as f64 / seconds,
        server_cpu_per_request: cpu / requests as u32,
    }
}

fn print_phase(name: &str, m: &Measured) {
    println!(
        "{name:<32} {:>8.0} requests/s   server CPU {:>6.1} µs/request   ({} requests)",
        m.per_second,
        micros(m.server_cpu_per_request),
        m.requests
    );
}

/// What [`mint`] hands the load generator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mint {
    /// Codes for `openid`: their grants have no refresh token.
    Codes,
    /// Codes for `openid offline_access`: redeeming one stores a durable
    /// grant and refresh token.
    OfflineCodes,
    /// Refresh tokens, each from a redeemed `offline_access` code.
    RefreshTokens,
    /// Refresh tokens of the public client, bound to [`dpop_key`].
    DpopRefreshTokens,
}

/// Mints `count` items of `kind` from 32 tasks; writes them to `path`, one
/// per line.
async fn mint(
    state: &AppState,
    user: gatepass::ids::UserId,
    count: usize,
    kind: Mint,
    path: &Path,
) {
    let now = SystemClock.now();
    let scope = match kind {
        Mint::Codes => "openid",
        Mint::OfflineCodes | Mint::RefreshTokens | Mint::DpopRefreshTokens => {
            "openid offline_access"
        }
    };
    let refresh = matches!(kind, Mint::RefreshTokens | Mint::DpopRefreshTokens);
    let (client_id, jkt) = match kind {
        Mint::DpopRefreshTokens => (
            PUBLIC_CLIENT_ID,
            Some(gatepass::protocol::dpop::Jkt::from(dpop_key().jkt)),
        ),
        _ => (CLIENT_ID, None),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENCY {
        let grants = state.grants.clone();
        let jkt = jkt.clone();
        let n = count / CONCURRENCY + usize::from(t < count % CONCURRENCY);
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let code = grants
                    .issue_code(
                        support::password_authorization(
                            user,
                            client_id,
                            REDIRECT_URI,
                            scope,
                            Some("n"),
                            now.unix_timestamp(),
                        ),
                        now,
                    )
                    .await
                    .unwrap();
                if !refresh {
                    out.push(code.expose().to_owned());
                    continue;
                }
                let redemption = Redemption {
                    client_id,
                    redirect_uri: Some(REDIRECT_URI),
                    code_verifier: None,
                    dpop_jkt: jkt.as_ref(),
                };
                let issued = grants
                    .redeem_code(code.expose(), redemption, now)
                    .await
                    .unwrap();
                out.push(issued.refresh_token.unwrap().expose().to_owned());
            }
            out
        });
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    while let Some(items) = tasks.join_next().await {
        for item in items.unwrap() {
            writeln!(file, "{item}").unwrap();
        }
    }
    file.flush().unwrap();
}

async fn server_main() {
    let duration = phase_duration();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let meter = CpuMeter {
        ticks: clock_ticks(),
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let settings = Settings::from_toml(
        &config(dir.path(), &issuer),
        Path::new("bench.toml"),
        std::iter::empty(),
    )
    .unwrap();
    let state = AppState::build(settings, Arc::new(SystemClock)).unwrap();
    let user = state
        .directory
        .bootstrap_admin("admin", None, SystemClock.now())
        .await
        .unwrap()
        .unwrap();

    println!(
        "gatepass token endpoint benchmark: {cores} cores, {CONCURRENCY} concurrent clients, {}s per phase",
        duration.as_secs()
    );
    println!(
        "raw ES256 signing (1 thread):   {:>8.1} µs CPU/signature",
        micros(signing_cpu(&state, duration))
    );
    let sign_rate = raw_signing_rate(&state, cores, duration);
    println!("raw ES256 signing ({cores} threads):  {sign_rate:>8.0} signatures/s");
    println!();

    let quick = duration / 4;
    store_ops(&meter, dir.path(), quick).await;
    redb_reads(&meter, dir.path(), quick).await;
    println!();

    // The server `gatepass serve` runs, limits and timeouts included.
    tokio::spawn(gatepass::server::serve_on(
        listener,
        state.clone(),
        std::future::pending(),
    ));

    println!("HTTP, load generator in a child process ({CONCURRENCY} concurrent clients):");
    let discovery = http_phase(&meter, &issuer, Phase::Discovery, None).await;
    print_phase("discovery:", &discovery);
    let cc = http_phase(&meter, &issuer, Phase::ClientCredentials, None).await;
    print_phase("client_credentials (1 signature):", &cc);
    let dpop_cc = http_phase(&meter, &issuer, Phase::DpopClientCredentials, None).await;
    print_phase("client_credentials, DPoP-bound:", &dpop_cc);

    // Enough codes for the whole phase: a redemption takes at least as long
    // as a client_credentials request.
    let codes_path: PathBuf = dir.path().join("codes.txt");
    let budget = ((cc.per_second * duration.as_secs_f64() * 1.5) as usize + 1000).min(400_000);
    mint(&state, user.id, budget, Mint::Codes, &codes_path).await;
    // The machine's speed drifts (other load, frequency), so the signatures
    // the ratio is measured against are timed right around the phase.
    let sign_before = signing_cpu(&state, duration / 2);
    let redeem = http_phase(&meter, &issuer, Phase::Redeem, Some(&codes_path)).await;
    let sign_after = signing_cpu(&state, duration / 2);
    let per_signature = (sign_before + sign_after) / 2;
    print_phase("code redemption (2 signatures):", &redeem);
    if redeem.requests >= budget {
        println!("  (ran out of codes before the phase ended)");
    }
    println!(
        "  ES256 signing (1 thread) just before / after: {:.1} / {:.1} µs CPU/signature",
        micros(sign_before),
        micros(sign_after)
    );

    // The same request for an `offline_access` code: the grant and its
    // refresh token are credentials the client keeps, so they are durable
    // before the response (one fsync, shared by whatever commits with it).
    let offline_path: PathBuf = dir.path().join("offline-codes.txt");
    let durable_budget =
        ((redeem.per_second * duration.as_secs_f64() * 1.2) as usize + 1000).min(budget);
    mint(
        &state,
        user.id,
        durable_budget,
        Mint::OfflineCodes,
        &offline_path,
    )
    .await;
    let offline = http_phase(&meter, &issuer, Phase::Redeem, Some(&offline_path)).await;
    print_phase("code redemption, offline_access:", &offline);
    if offline.requests >= durable_budget {
        println!("  (ran out of codes before the phase ended)");
    }

    // Refresh tokens: one offline grant per request, rotated once each.
    let tokens_path: PathBuf = dir.path().join("refresh.txt");
    mint(
        &state,
        user.id,
        durable_budget,
        Mint::RefreshTokens,
        &tokens_path,
    )
    .await;
    let refresh = http_phase(&meter, &issuer, Phase::Refresh, Some(&tokens_path)).await;
    print_phase("refresh rotation (durable):", &refresh);
    if refresh.requests >= durable_budget {
        println!("  (ran out of refresh tokens before the phase ended)");
    }
    let dpop_tokens_path: PathBuf = dir.path().join("dpop-refresh.txt");
    mint(
        &state,
        user.id,
        durable_budget,
        Mint::DpopRefreshTokens,
        &dpop_tokens_path,
    )
    .await;
    let dpop_refresh =
        http_phase(&meter, &issuer, Phase::DpopRefresh, Some(&dpop_tokens_path)).await;
    print_phase("refresh rotation, DPoP-bound:", &dpop_refresh);
    if dpop_refresh.requests >= durable_budget {
        println!("  (ran out of refresh tokens before the phase ended)");
    }
    let overhead = |dpop: &Measured, bearer: &Measured| {
        micros(dpop.server_cpu_per_request) - micros(bearer.server_cpu_per_request)
    };
    println!(
        "DPoP overhead, server CPU per request: client_credentials {:+.1} µs, refresh {:+.1} µs (one ES256 proof verification + one jti insert; ES256 signing is {:.1} µs)",
        overhead(&dpop_cc, &cc),
        overhead(&dpop_refresh, &refresh),
        micros(per_signature)
    );

    // Cost of one redemption in units of "its two signatures".
    let ratio = redeem.server_cpu_per_request.as_secs_f64() / (2.0 * per_signature.as_secs_f64());
    println!();
    println!(
        "code redemption costs {ratio:.2}x its two signatures (server CPU per redemption {:.1} µs / (2 × {:.1} µs CPU per signature, mean of before/after)); target < 3.00x: {}",
        micros(redeem.server_cpu_per_request),
        micros(per_signature),
        if ratio < 3.0 { "MET" } else { "NOT MET" }
    );
    println!(
        "with offline_access (durable grant and refresh token): {:.2}x",
        offline.server_cpu_per_request.as_secs_f64() / (2.0 * per_signature.as_secs_f64())
    );
}

// ------------------------------------------------------------ load generator

/// The child: runs one phase's requests from 32 tasks until the phase time
/// passes or the items run out, then prints `<requests> <seconds>`.
async fn client_main() {
    let duration = phase_duration();
    let phase = Phase::parse(&std::env::var(PHASE).unwrap());
    let issuer = std::env::var(ISSUER).unwrap();
    let items: Option<Vec<String>> = std::env::var(ITEMS).ok().map(|path| {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().map(str::to_owned).collect()
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let token_url = format!("{issuer}/token");
    let dpop = dpop_key();
    let discovery_url = format!("{issuer}/.well-known/openid-configuration");

    let items = Arc::new(Mutex::new(items));
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (items, done, http) = (items.clone(), done.clone(), http.clone());
        let dpop = dpop.clone();
        let (token_url, discovery_url) = (token_url.clone(), discovery_url.clone());
        tasks.spawn(async move {
            while start.elapsed() < duration {
                let item = {
                    let mut guard = items.lock().unwrap();
                    match guard.as_mut() {
                        Some(v) => match v.pop() {
                            Some(i) => Some(i),
                            None => break,
                        },
                        None => None,
                    }
                };
                let request = match phase {
                    Phase::Discovery => http.get(&discovery_url),
                    Phase::ClientCredentials => http
                        .post(&token_url)
                        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                        .form(&[("grant_type", "client_credentials")]),
                    Phase::Redeem => http
                        .post(&token_url)
                        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                        .form(&[
                            ("grant_type", "authorization_code"),
                            ("code", item.as_deref().unwrap()),
                            ("redirect_uri", REDIRECT_URI),
                        ]),
                    Phase::Refresh => http
                        .post(&token_url)
                        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", item.as_deref().unwrap()),
                        ]),
                    Phase::DpopClientCredentials => http
                        .post(&token_url)
                        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                        .header("DPoP", dpop.proof(&token_url))
                        .form(&[("grant_type", "client_credentials")]),
                    Phase::DpopRefresh => http
                        .post(&token_url)
                        .header("DPoP", dpop.proof(&token_url))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("client_id", PUBLIC_CLIENT_ID),
                            ("refresh_token", item.as_deref().unwrap()),
                        ]),
                };
                let response = request.send().await.unwrap();
                let status = response.status();
                // Read the body so the connection goes back to the pool.
                let body = response.bytes().await.unwrap();
                assert_eq!(status, 200, "benchmark request failed: {body:?}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!("{} {elapsed}", done.load(Ordering::Relaxed));
}

// -------------------------------------------------------------------- DPoP

/// The load generator's DPoP key: made once by the server process and
/// handed to the child in [`DPOP_KEY`], so the server can bind grants to it.
#[derive(Clone)]
struct DpopKey {
    pair: Arc<ring::signature::EcdsaKeyPair>,
    pkcs8: String,
    jkt: String,
    header: String,
}

fn dpop_key() -> DpopKey {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    static KEY: std::sync::OnceLock<DpopKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = match std::env::var(DPOP_KEY) {
            Ok(k) => URL_SAFE_NO_PAD.decode(k).unwrap(),
            Err(_) => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let point = pair.public_key().as_ref();
        // RFC 7638 order; serde_json sorts keys, so this is the thumbprint input.
        let jwk = serde_json::json!({
            "crv": "P-256", "kty": "EC",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let canonical = serde_json::to_string(&jwk).unwrap();
        let jkt = URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        DpopKey {
            pair: Arc::new(pair),
            pkcs8: URL_SAFE_NO_PAD.encode(&pkcs8),
            jkt,
            header: URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        }
    })
    .clone()
}

impl DpopKey {
    /// A fresh proof for `POST htu`.
    fn proof(&self, htu: &str) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        static JTI: AtomicUsize = AtomicUsize::new(0);
        let claims = serde_json::json!({
            "jti": format!("{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::Relaxed)),
            "htm": "POST",
            "htu": htu,
            "iat": SystemClock.now().unix_timestamp(),
        });
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let signature = self
            .pair
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}
