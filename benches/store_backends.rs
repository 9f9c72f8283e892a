//! The Redis backend next to the embedded backend, in one run (issues:
//! Redis backend, Scale). Target: Redis ≥ 0.7 of the embedded figure for
//!
//! * **code redemption** — `POST /token` with `authorization_code` at 32
//!   concurrent clients (codes issued beforehand);
//! * **a full TAP sign-in flow** — at 32 concurrent browsers, each flow
//!   `GET /authorize` (`prompt=login`), `POST /signin/username`, the TAP
//!   page, `POST /signin/tap`, the redirects back to the client, and the
//!   code's redemption at `/token`: every store step a real sign-in makes
//!   (flow state, throttle, user, policy, pass, session, code, grant).
//!   Measured twice: with the default argon2id cost (what a deployment
//!   pays) and with a token one (m=64 KiB, t=1), which leaves the store and
//!   HTTP work in view.
//!
//! Redis comes from `GATEPASS_TEST_REDIS_URL`, else `redis://127.0.0.1:6379/`;
//! each measurement uses its own random key prefix and deletes its keys
//! afterwards. The load generator runs in this process, on the same cores
//! as the server and Redis.
//!
//! Run: `cargo bench --bench store_backends` (GATEPASS_BENCH_SECONDS per
//! measurement, default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatepass::app::AppState;
use gatepass::authn::tap::IssueRequest;
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use gatepass::directory::NewUser;
use gatepass::store::Store;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;
const CLIENT: &str = "bench";
const SECRET: &str = "bench-secret-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// What is measured.
#[derive(Clone, Copy)]
enum Case {
    Redemption,
    TapFlow { cheap_hash: bool },
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Redemption => "code redemption",
            Case::TapFlow { cheap_hash: false } => "TAP sign-in flow (default argon2id)",
            Case::TapFlow { cheap_hash: true } => "TAP sign-in flow (argon2id m=64 KiB t=1)",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Case::Redemption => "redemptions/s",
            Case::TapFlow { .. } => "sign-ins/s",
        }
    }
}

/// A Gatepass on `store`, listening, with the bench client configured.
async fn start(
    store: Arc<dyn Store>,
    dir: &Path,
    case: Case,
) -> (AppState, tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    // 32 browsers sign in at once: the hashing queue holds them all (by
    // default it turns a burst past 4 per slot away with 503).
    let hashing = match case {
        Case::TapFlow { cheap_hash: true } => {
            "[password_hashing]\nmemory_kib = 64\niterations = 1\nmax_queued = 64\n"
        }
        _ => "[password_hashing]\nmax_queued = 64\n",
    };
    // One source (127.0.0.1) runs every flow: its per-source limits are
    // raised out of the way; per-account limits stay as shipped.
    let config = format!(
        "issuer = \"{issuer}\"\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"embedded\"\npath = \"{}\"\n[keys]\ndir = \"{}\"\n\
         {hashing}[throttling]\nmax_flows_per_source_per_minute = 1000000\nmax_failures_per_source = 100000\n\
         [[clients]]\nclient_id = \"{CLIENT}\"\nclient_secret = \"{SECRET}\"\nredirect_uris = [\"{REDIRECT}\"]\n",
        dir.join("unused.redb").display(),
        dir.join("keys").display()
    );
    let settings =
        Settings::from_toml(&config, Path::new("bench.toml"), std::iter::empty()).unwrap();
    let state = AppState::with_store(settings, Arc::new(SystemClock), store).unwrap();
    (state, listener, issuer)
}

/// Runs `case` against a fresh Gatepass on `store` for `duration`; the rate.
async fn rate(store: Arc<dyn Store>, dir: &Path, case: Case, duration: Duration) -> f64 {
    let (state, listener, issuer) = start(store, dir, case).await;
    let done = Arc::new(AtomicUsize::new(0));
    let (tasks, start) = match case {
        Case::Redemption => redemptions(&state, &issuer, done.clone(), duration).await,
        Case::TapFlow { .. } => tap_flows(&state, &issuer, done.clone(), duration).await,
    };
    let server = tokio::spawn(gatepass::server::serve_on(
        listener,
        state,
        std::future::pending(),
    ));
    // The clock starts when the server does.
    *start.lock().unwrap() = Some(Instant::now());
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.lock().unwrap().unwrap().elapsed();
    server.abort();
    done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

type Started = Arc<std::sync::Mutex<Option<Instant>>>;

/// Waits for the start signal; then whether the measurement is still on.
async fn running(start: &Started, duration: Duration) -> bool {
    loop {
        if let Some(at) = *start.lock().unwrap() {
            return at.elapsed() < duration;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn redemptions(
    state: &AppState,
    issuer: &str,
    done: Arc<AtomicUsize>,
    duration: Duration,
) -> (Vec<tokio::task::JoinHandle<()>>, Started) {
    let now = SystemClock.now();
    let user = state
        .directory
        .bootstrap_admin("admin", None, now)
        .await
        .unwrap()
        .unwrap();
    let mut codes = Vec::new();
    for _ in 0..40_000 {
        let authorization = support::password_authorization(
            user.id,
            CLIENT,
            REDIRECT,
            "openid",
            None,
            now.unix_timestamp(),
        );
        let code = state.grants.issue_code(authorization, now).await.unwrap();
        codes.push(code.expose().to_owned());
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let codes = Arc::new(std::sync::Mutex::new(codes));
    let start: Started = Arc::default();
    let tasks = (0..CONCURRENCY)
        .map(|_| {
            let (http, codes, done, start) =
                (http.clone(), codes.clone(), done.clone(), start.clone());
            let url = format!("{issuer}/token");
            tokio::spawn(async move {
                while running(&start, duration).await {
                    let Some(code) = codes.lock().unwrap().pop() else {
                        break;
                    };
                    redeem(&http, &url, &code).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (tasks, start)
}

/// One user per browser, each with a multi-use pass: the flows never
/// share an account's throttle counter.
async fn tap_flows(
    state: &AppState,
    issuer: &str,
    done: Arc<AtomicUsize>,
    duration: Duration,
) -> (Vec<tokio::task::JoinHandle<()>>, Started) {
    let now = SystemClock.now();
    let policy = state.taps.policy(now.unix_timestamp()).await.unwrap();
    let start: Started = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..CONCURRENCY {
        let upn = format!("bench-{i}@contoso.com");
        let user = state
            .directory
            .create_user(
                NewUser {
                    user_principal_name: upn.clone(),
                    display_name: format!("Bench {i}"),
                    mail: None,
                    account_enabled: true,
                    password_hash: None,
                },
                now,
            )
            .await
            .unwrap();
        let request = IssueRequest {
            is_usable_once: Some(false),
            start_at: None,
            lifetime_in_minutes: Some(policy.maximum_lifetime_in_minutes),
        };
        let issued = state
            .taps
            .issue(
                &state.hasher,
                user.id,
                &policy,
                true,
                &request,
                now.unix_timestamp(),
            )
            .await
            .unwrap();
        let tap = issued.secret.expose().to_owned();
        let (issuer, done, start) = (issuer.to_owned(), done.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let browser = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            while running(&start, duration).await {
                tap_flow(&browser, &issuer, &upn, &tap).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    (tasks, start)
}

/// One sign-in, from the client's redirect to the tokens.
async fn tap_flow(browser: &reqwest::Client, issuer: &str, upn: &str, tap: &str) {
    let authorize = format!(
        "{issuer}/authorize?response_type=code&client_id={CLIENT}&redirect_uri={}&scope=openid&state=s&nonce=n&prompt=login",
        urlencode(REDIRECT)
    );
    let first = page(browser.get(&authorize)).await;
    let flow = hidden(&first.1, "flow");
    let next = page(browser.post(format!("{issuer}/signin/username")).form(&[
        ("flow", flow.as_str()),
        ("csrf", hidden(&first.1, "csrf").as_str()),
        ("username", upn),
    ]))
    .await;
    let tap_page = page(browser.get(absolute(issuer, &next.0.expect("to the TAP page")))).await;
    let mut at = page(browser.post(format!("{issuer}/signin/tap")).form(&[
        ("flow", flow.as_str()),
        ("csrf", hidden(&tap_page.1, "csrf").as_str()),
        ("tap", tap),
    ]))
    .await;
    let mut hops = 0;
    let code = loop {
        let location =
            at.0.unwrap_or_else(|| panic!("signed in, but no redirect: {}", at.1));
        if location.starts_with(REDIRECT) {
            let url = url::Url::parse(&location).unwrap();
            break url
                .query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .into_owned();
        }
        hops += 1;
        assert!(hops < 5, "too many redirects");
        at = page(browser.get(absolute(issuer, &location))).await;
    };
    redeem(browser, &format!("{issuer}/token"), &code).await;
}

/// Redeems `code` at the token endpoint `url` as the bench client.
async fn redeem(http: &reqwest::Client, url: &str, code: &str) {
    let r = http
        .post(url)
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn page(request: reqwest::RequestBuilder) -> (Option<String>, String) {
    let r = request.send().await.unwrap();
    assert!(r.status().as_u16() < 400, "{}", r.status());
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (location, r.text().await.unwrap())
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

fn absolute(issuer: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{issuer}{location}")
    } else {
        location.to_owned()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn random_prefix() -> String {
    let mut bytes = [0u8; 6];
    gatepass::ids::fill_random(&mut bytes).unwrap();
    format!(
        "gpbench-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Deletes one measurement's keys (never FLUSH a shared server).
async fn remove_keys(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{{{prefix}}}:*");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("UNLINK").arg(chunk).query_async(&mut conn).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let secs = std::env::var("GATEPASS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
        let duration = Duration::from_secs(secs);
        let url = std::env::var("GATEPASS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
        println!("gatepass store backends benchmark: {CONCURRENCY} concurrent clients, {secs}s per backend and case");
        let cases = [
            Case::Redemption,
            Case::TapFlow { cheap_hash: false },
            Case::TapFlow { cheap_hash: true },
        ];
        let mut summary = Vec::new();
        for case in cases {
            println!("\n{}", case.name());
            let dir = tempfile::tempdir().unwrap();
            let embedded: Arc<dyn Store> = Arc::new(gatepass::store::embedded::EmbeddedStore::open(&dir.path().join("bench.redb")).unwrap());
            let embedded_rate = rate(embedded, dir.path(), case, duration).await;
            println!("  embedded (redb):  {embedded_rate:>8.0} {}", case.unit());

            let prefix = random_prefix();
            let redis = match gatepass::store::redis::RedisStore::connect(&url, &prefix).await {
                Ok(r) => r,
                Err(e) => {
                    println!("  redis: not measured ({e})");
                    return;
                }
            };
            let dir = tempfile::tempdir().unwrap();
            let redis_rate = rate(Arc::new(redis), dir.path(), case, duration).await;
            remove_keys(&url, &prefix).await;
            println!("  redis:            {redis_rate:>8.0} {}", case.unit());
            summary.push((case, redis_rate / embedded_rate));
        }
        println!();
        for (case, ratio) in summary {
            println!(
                "{:<42} redis at {ratio:.2} of embedded (target >= 0.70): {}",
                case.name(),
                if ratio >= 0.7 { "MET" } else { "NOT MET" }
            );
        }
    });
}
