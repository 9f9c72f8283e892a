//! Per-request cost from a thousand to a million users (issue: scale).
//!
//! For each backend and each directory size, loads the users (one group per
//! 50 users, each user in one; one in 1,000 holds a role) with `gatepass
//! import`, then measures, at 32 concurrent requests:
//!
//! - `lookup`: `GET /v1.0/users/{upn}`;
//! - `filter`: `GET /v1.0/users?$filter=userPrincipalName eq '…'`;
//! - `page`: `GET /v1.0/users?$top=100&$skiptoken=…` from a random user on;
//! - `tap path`: a Temporary Access Pass sign-in's store reads (the throttle,
//!   the user by UPN, the pass, the policy) — argon2 aside;
//! - `redeem`: code redemption at the token endpoint;
//! - `ca gate`: the conditional-access decision for a user in 50 groups,
//!   with a policy that names a group.
//!
//! The server's CPU per request is the CPU of its own threads (the server
//! runtime `gp-server*` and the embedded store's writer) — the load
//! generator runs on other threads — plus, on Redis, `redis-server`'s
//! (`INFO cpu`). Also stated: the import rate, memory per user (process RSS,
//! the redb file, Redis `used_memory`) and the start-up time on a loaded
//! store. Target: every per-request figure at 1 M within 1.3× of 1 k.
//!
//! `cargo bench --bench scale`. `GATEPASS_SCALE_SIZES` (default
//! `1000,100000,1000000`), `GATEPASS_BENCH_SECONDS` per operation (default
//! 3), `GATEPASS_SCALE_BACKENDS` (`embedded,redis`), `GATEPASS_SCALE_CACHE_MB`
//! (redb's page cache in MiB, as `[store] cache_mb`; default redb's 1 GiB). Redis comes from
//! `GATEPASS_TEST_REDIS_URL`, else `redis://127.0.0.1:6379/`; the run uses
//! its own key prefix and removes its keys afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatepass::app::AppState;
use gatepass::authn::AuthMethod;
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use gatepass::directory::Group;
use gatepass::graph::auth::Caller;
use gatepass::store::Store;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;
const USERS_PER_GROUP: usize = 50;
const SAMPLE: usize = 1000;
/// The groups of the user the CA gate is measured for.
const GATE_GROUPS: usize = 50;
const CLIENT: &str = "bench";
const SECRET: &str = "bench-secret-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

// --- measuring ---------------------------------------------------------------

/// CPU time of this process's server-side threads: the server runtime and
/// the embedded store's writer.
fn server_cpu() -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("gp-server") || comm.starts_with("gatepass-store") {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

async fn redis_info(url: &str, section: &str, field: &str) -> Option<f64> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
}

async fn redis_cpu(url: &str) -> f64 {
    redis_info(url, "cpu", "used_cpu_user").await.unwrap_or(0.0)
        + redis_info(url, "cpu", "used_cpu_sys").await.unwrap_or(0.0)
}

#[derive(Clone, Copy, Default)]
struct Figure {
    per_second: f64,
    cpu_us: f64,
    p50_us: f64,
    p99_us: f64,
}

// --- one directory -------------------------------------------------------------

enum Backend {
    Embedded(PathBuf),
    Redis { url: String, prefix: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            Backend::Redis { .. } => "redis",
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Embedded(path) => {
                // The previous handle's writer may still be letting go.
                for attempt in 0..100 {
                    // redb's default unless the run says otherwise.
                    let cache = std::env::var("GATEPASS_SCALE_CACHE_MB")
                        .ok()
                        .and_then(|m| m.parse::<usize>().ok())
                        .map(|m| m << 20);
                    if attempt == 0 && cache.is_some() {
                        eprintln!("(redb page cache {} MiB)", cache.unwrap_or(0) >> 20);
                    }
                    if let Ok(s) =
                        gatepass::store::embedded::EmbeddedStore::open_with_cache(path, cache)
                    {
                        return Arc::new(s);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("cannot reopen {}", path.display());
            }
            Backend::Redis { url, prefix } => Arc::new(
                gatepass::store::redis::RedisStore::connect(url, prefix)
                    .await
                    .unwrap(),
            ),
        }
    }

    async fn footprint(&self) -> (String, f64) {
        match self {
            Backend::Embedded(path) => (
                "redb file".to_owned(),
                std::fs::metadata(path)
                    .map(|m| m.len() as f64)
                    .unwrap_or(0.0),
            ),
            Backend::Redis { url, .. } => (
                "Redis used_memory".to_owned(),
                redis_info(url, "memory", "used_memory")
                    .await
                    .unwrap_or(0.0),
            ),
        }
    }

    async fn clean(&self) {
        if let Backend::Redis { url, prefix } = self {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{{{prefix}}}:*"))
                    .arg("COUNT")
                    .arg(10_000)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                if !keys.is_empty() {
                    let _: () = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}

fn settings(dir: &Path, issuer: &str) -> Settings {
    let config = format!(
        "issuer = \"{issuer}\"\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"embedded\"\npath = \"{}\"\n\
         [keys]\ndir = \"{}\"\n[password_hashing]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n\
         \
         [[clients]]\nclient_id = \"{CLIENT}\"\nclient_secret = \"{SECRET}\"\nredirect_uris = [\"{REDIRECT}\"]\n\
         grant_types = [\"authorization_code\", \"client_credentials\"]\n\
         app_permissions = [\"User.ReadWrite.All\", \"Group.ReadWrite.All\", \"Policy.ReadWrite.ConditionalAccess\", \"UserAuthenticationMethod.ReadWrite.All\"]\n",
        dir.join("unused.redb").display(),
        dir.join("keys").display()
    );
    Settings::from_toml(&config, Path::new("bench.toml"), std::iter::empty()).unwrap()
}

fn upn(i: usize) -> String {
    format!("user{i:07}@scale.test")
}

fn admin() -> Caller {
    Caller::App {
        client_id: CLIENT.to_owned(),
        permissions: [
            "User.ReadWrite.All",
            "Group.ReadWrite.All",
            "Policy.ReadWrite.ConditionalAccess",
            "UserAuthenticationMethod.ReadWrite.All",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect(),
    }
}

/// Loads `n` users; returns the import rate (users/s).
async fn load(state: &AppState, n: usize) -> f64 {
    let now = SystemClock.now();
    let groups: Vec<Group> = {
        // At least the 50 groups the CA-gate user joins, at every size.
        let count = n.div_ceil(USERS_PER_GROUP).max(GATE_GROUPS);
        let mut made = Vec::with_capacity(count);
        for chunk in (0..count).collect::<Vec<_>>().chunks(CONCURRENCY) {
            let futures = chunk.iter().map(|i| {
                state
                    .directory
                    .create_group(format!("Group {i:06}"), None, None, now)
            });
            for g in futures_util::future::join_all(futures).await {
                made.push(g.unwrap());
            }
        }
        made
    };
    let mut file = Vec::with_capacity(n * 120);
    for i in 0..n {
        let group = &groups[i / USERS_PER_GROUP];
        let roles = if i % 1000 == 999 {
            "[\"Global Reader\"]"
        } else {
            "[]"
        };
        file.extend_from_slice(
            format!(
                "{{\"userPrincipalName\":\"{}\",\"displayName\":\"User {i}\",\"groups\":[\"{}\"],\"roles\":{roles}}}\n",
                upn(i),
                group.id
            )
            .as_bytes(),
        );
    }
    let start = Instant::now();
    let summary = gatepass::import::users(
        state,
        file.as_slice(),
        gatepass::import::Format::JsonLines,
        &Default::default(),
        &mut (),
    )
    .await
    .unwrap();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(summary.created as usize, n, "{:?}", summary.bad.first());
    rate
}

/// What the measured operations need: sample users with passes, a user in
/// 50 groups and a policy naming one of them, codes to redeem.
struct Fixtures {
    sample: Vec<(String, String)>,
    gate_user: gatepass::directory::User,
    codes: std::sync::Mutex<Vec<String>>,
    token: String,
}

async fn fixtures(
    state: &AppState,
    n: usize,
    http: &reqwest::Client,
    issuer: &str,
    seconds: u64,
) -> Fixtures {
    let now = SystemClock.now();
    let caller = admin();
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut sample = Vec::with_capacity(SAMPLE);
    for _ in 0..SAMPLE {
        let upn = upn((next() % n as u64) as usize);
        let user = state.directory.find_user(&upn, now).await.unwrap().unwrap();
        sample.push((upn, user.id.to_string()));
    }
    for (upn, _) in sample.iter().take(200) {
        let user = state.directory.find_user(upn, now).await.unwrap().unwrap();
        let request = gatepass::authn::tap::IssueRequest {
            is_usable_once: Some(false),
            start_at: None,
            lifetime_in_minutes: Some(480),
        };
        let _ = gatepass::graph::methods::issue_pass(state, &caller, &user, &request, now).await;
    }
    let gate_user = state
        .directory
        .create_user(
            gatepass::directory::NewUser {
                user_principal_name: "gate@scale.test".into(),
                display_name: "Gate".into(),
                mail: None,
                account_enabled: true,
                password_hash: None,
            },
            now,
        )
        .await
        .unwrap();
    let groups = state
        .directory
        .groups_page(None, GATE_GROUPS, now)
        .await
        .unwrap();
    assert_eq!(groups.len(), GATE_GROUPS);
    for (_, g) in &groups {
        state
            .directory
            .add_member(g.id, gate_user.id, now)
            .await
            .unwrap();
    }
    let policy = json!({
        "displayName": "Group 0 needs MFA",
        "state": "enabled",
        "conditions": {
            "users": {"includeGroups": [groups[0].1.id.to_string()]},
            "applications": {"includeApplications": ["All"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    });
    gatepass::graph::conditional_access::create_object(
        state,
        &caller,
        gatepass::policy::ca_store::CaKind::Policy,
        policy,
        false,
    )
    .await
    .unwrap();
    // Enough codes for the redemption phase at any rate seen here.
    let mut codes = Vec::new();
    let user = state
        .directory
        .find_user(&sample[0].0, now)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..(12_000 * seconds as usize) {
        let authorization = support::password_authorization(
            user.id,
            CLIENT,
            REDIRECT,
            "openid",
            None,
            now.unix_timestamp(),
        );
        codes.push(
            state
                .grants
                .issue_code(authorization, now)
                .await
                .unwrap()
                .expose()
                .to_owned(),
        );
    }
    let r: serde_json::Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Fixtures {
        sample,
        gate_user,
        codes: std::sync::Mutex::new(codes),
        token: r["access_token"].as_str().unwrap().to_owned(),
    }
}

/// Runs `op` from `CONCURRENCY` tasks for `duration`; `op(i)` is request
/// number `i`. Latency is measured around each call.
async fn measure<F, Fut>(
    redis_url: Option<&str>,
    duration: Duration,
    spawn: &tokio::runtime::Handle,
    op: F,
) -> Figure
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicUsize::new(0));
    let cpu_before = server_cpu();
    let redis_before = match redis_url {
        Some(u) => redis_cpu(u).await,
        None => 0.0,
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.push(spawn.spawn(async move {
            let mut latencies = Vec::new();
            while start.elapsed() < duration {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if !op(i).await {
                    break;
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server_cpu().saturating_sub(cpu_before).as_secs_f64();
    let redis = match redis_url {
        Some(u) => redis_cpu(u).await - redis_before,
        None => 0.0,
    };
    latencies.sort();
    let count = latencies.len().max(1);
    let at = |q: f64| {
        latencies
            .get(((count as f64 * q) as usize).min(count - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Figure {
        per_second: count as f64 / elapsed,
        cpu_us: (cpu + redis) / count as f64 * 1e6,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

/// The URL of request number `i`.
type UrlOf = Box<dyn Fn(&Fixtures, usize) -> String + Send + Sync>;

const OPS: [&str; 6] = ["lookup", "filter", "page", "tap path", "redeem", "ca gate"];

struct SizeReport {
    n: usize,
    import_rate: f64,
    startup_ms: f64,
    rss_per_user: f64,
    footprint: (String, f64),
    figures: BTreeMap<&'static str, Figure>,
}

async fn run_size(
    backend: &Backend,
    n: usize,
    seconds: u64,
    server_rt: &tokio::runtime::Runtime,
) -> SizeReport {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let issuer = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let redis_url = match backend {
        Backend::Redis { url, .. } => Some(url.clone()),
        Backend::Embedded(_) => None,
    };
    let footprint_before = backend.footprint().await.1;
    let rss_before = rss_bytes();

    // Load, then start again on the loaded store: start-up at this size.
    let import_rate = {
        let store = backend.open().await;
        let state =
            AppState::with_store(settings(dir.path(), &issuer), Arc::new(SystemClock), store)
                .unwrap();
        server_rt
            .spawn(async move { load(&state, n).await })
            .await
            .unwrap()
    };
    // The load's dirty pages are written back before anything is timed.
    let _ = std::process::Command::new("sync").status();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = Instant::now();
    let store = backend.open().await;
    let state =
        AppState::with_store(settings(dir.path(), &issuer), Arc::new(SystemClock), store).unwrap();
    state.store.ping().await.unwrap();
    let startup_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_per_user = rss_bytes().saturating_sub(rss_before) as f64 / n as f64;
    let footprint = backend.footprint().await;
    let footprint = (footprint.0, (footprint.1 - footprint_before) / n as f64);

    // Stopped when this size is done, so the next size runs without this
    // one's server, connections and open store beside it.
    let server_state = state.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server_rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let stopped = async {
            let _ = stopped.await;
        };
        gatepass::server::serve_on(listener, server_state, stopped).await
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let fixtures = Arc::new(fixtures(&state, n, &http, &issuer, seconds).await);
    let duration = Duration::from_secs(seconds);
    let client = tokio::runtime::Handle::current();
    let server = server_rt.handle().clone();
    let mut figures = BTreeMap::new();
    let redis = redis_url.as_deref();
    // Redis's own CPU while no request runs: its figures include all of
    // `redis-server`'s CPU, background work too.
    if let Some(url) = redis {
        let before = redis_cpu(url).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = (redis_cpu(url).await - before) / 3.0;
        println!("    (redis-server idle: {:.1} % of a core)", idle * 100.0);
    }

    let get = |url_of: UrlOf| {
        let (http, fixtures, issuer) = (http.clone(), fixtures.clone(), issuer.clone());
        move |i: usize| {
            let url = format!("{issuer}{}", url_of(&fixtures, i));
            let (http, token) = (http.clone(), fixtures.token.clone());
            async move {
                let r = http.get(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                true
            }
        }
    };
    figures.insert(
        "lookup",
        measure(
            redis,
            duration,
            &client,
            get(Box::new(|f, i| {
                format!("/v1.0/users/{}", f.sample[i % SAMPLE].0)
            })),
        )
        .await,
    );
    figures.insert(
        "filter",
        measure(
            redis,
            duration,
            &client,
            get(Box::new(|f, i| {
                format!(
                    "/v1.0/users?$filter=userPrincipalName%20eq%20'{}'",
                    f.sample[i % SAMPLE].0
                )
            })),
        )
        .await,
    );
    figures.insert(
        "page",
        measure(
            redis,
            duration,
            &client,
            get(Box::new(|f, i| {
                format!("/v1.0/users?$top=100&$skiptoken={}", f.sample[i % SAMPLE].1)
            })),
        )
        .await,
    );
    {
        let (state, fixtures) = (state.clone(), fixtures.clone());
        figures.insert(
            "tap path",
            measure(redis, duration, &server, move |i| {
                let (state, fixtures) = (state.clone(), fixtures.clone());
                async move {
                    let now = SystemClock.now();
                    let upn = &fixtures.sample[i % 200].0;
                    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i % 250) as u8, 1));
                    state
                        .throttle
                        .admit(upn, ip, now.unix_timestamp())
                        .await
                        .unwrap();
                    let user = state.directory.find_user(upn, now).await.unwrap().unwrap();
                    let pass = state
                        .taps
                        .pass(user.id, now.unix_timestamp())
                        .await
                        .unwrap();
                    assert!(pass.is_some());
                    state.taps.policy(now.unix_timestamp()).await.unwrap();
                    true
                }
            })
            .await,
        );
    }
    {
        let (http, fixtures, url) = (http.clone(), fixtures.clone(), format!("{issuer}/token"));
        figures.insert(
            "redeem",
            measure(redis, duration, &client, move |_| {
                let (http, fixtures, url) = (http.clone(), fixtures.clone(), url.clone());
                async move {
                    let Some(code) = fixtures.codes.lock().unwrap().pop() else {
                        return false;
                    };
                    let r = http
                        .post(url)
                        .basic_auth(CLIENT, Some(SECRET))
                        .form(&[
                            ("grant_type", "authorization_code"),
                            ("code", code.as_str()),
                            ("redirect_uri", REDIRECT),
                        ])
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    true
                }
            })
            .await,
        );
    }
    {
        let (state, fixtures) = (state.clone(), fixtures.clone());
        figures.insert(
            "ca gate",
            measure(redis, duration, &server, move |_| {
                let (state, fixtures) = (state.clone(), fixtures.clone());
                async move {
                    let now = SystemClock.now();
                    let target = gatepass::web::gate::GateTarget::App {
                        client_id: CLIENT,
                        acr_values: &[],
                        essential_acr: None,
                    };
                    let decision = gatepass::web::gate::decide(
                        &state,
                        &fixtures.gate_user,
                        gatepass::web::gate::Proof {
                            methods: &[AuthMethod::Password],
                            auth_time: now.unix_timestamp(),
                            passkey: None,
                        },
                        &target,
                        None,
                        None,
                        now,
                    )
                    .await
                    .unwrap();
                    // The policy names a group the user is in: MFA is due.
                    assert!(!format!("{decision:?}").contains("Allow"), "{decision:?}");
                    true
                }
            })
            .await,
        );
    }
    let _ = stop.send(());
    serving.await.unwrap();
    SizeReport {
        n,
        import_rate,
        startup_ms,
        rss_per_user,
        footprint,
        figures,
    }
}

fn main() {
    let seconds: u64 = std::env::var("GATEPASS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let sizes: Vec<usize> = std::env::var("GATEPASS_SCALE_SIZES")
        .unwrap_or_else(|_| "1000,100000,1000000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let backends =
        std::env::var("GATEPASS_SCALE_BACKENDS").unwrap_or_else(|_| "embedded,redis".to_owned());
    let redis_url = std::env::var("GATEPASS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gp-server")
        // Blocking threads must not exit mid-measurement: the CPU meter
        // sums live threads.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gp-client")
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
        .unwrap();
    println!(
        "gatepass scale benchmark: sizes {sizes:?}, {seconds}s per operation, {CONCURRENCY} concurrent"
    );
    client_rt.block_on(async {
        for name in backends.split(',') {
            let mut reports = Vec::new();
            for &n in &sizes {
                let dir = tempfile::tempdir().unwrap();
                let backend = match name.trim() {
                    "embedded" => Backend::Embedded(dir.path().join("scale.redb")),
                    "redis" => {
                        let mut bytes = [0u8; 6];
                        gatepass::ids::fill_random(&mut bytes).unwrap();
                        let prefix = format!("gpscale-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
                        Backend::Redis { url: redis_url.clone(), prefix }
                    }
                    other => panic!("unknown backend {other}"),
                };
                if let Backend::Redis { url, prefix } = &backend {
                    if let Err(e) = gatepass::store::redis::RedisStore::connect(url, prefix).await {
                        println!("redis: not measured ({e})");
                        break;
                    }
                }
                let report = run_size(&backend, n, seconds, &server_rt).await;
                println!(
                    "{} {:>9} users: import {:>6.0} users/s, start-up {:>6.1} ms, RSS {:>5.0} B/user, {} {:>5.0} B/user",
                    backend.name(), n, report.import_rate, report.startup_ms, report.rss_per_user, report.footprint.0, report.footprint.1
                );
                for op in OPS {
                    let f = report.figures[op];
                    println!(
                        "    {op:<9} {:>8.0} req/s  server CPU {:>7.1} µs/req  p50 {:>7.0} µs  p99 {:>7.0} µs",
                        f.per_second, f.cpu_us, f.p50_us, f.p99_us
                    );
                }
                backend.clean().await;
                // Let Redis free what was unlinked and the kernel drop the
                // file before the next size is timed.
                drop(dir);
                let _ = std::process::Command::new("sync").status();
                tokio::time::sleep(Duration::from_secs(5)).await;
                reports.push(report);
            }
            if let (Some(first), Some(last)) = (reports.first(), reports.last()) {
                if first.n != last.n {
                    println!("{name}: server CPU per request at {} users / at {} users (target <= 1.30):", last.n, first.n);
                    for op in OPS {
                        let ratio = last.figures[op].cpu_us / first.figures[op].cpu_us;
                        println!("    {op:<9} {ratio:>5.2}  {}", if ratio <= 1.3 { "MET" } else { "NOT MET" });
                    }
                }
            }
        }
    });
}
