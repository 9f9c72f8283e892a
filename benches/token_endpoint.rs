//! Load benchmark for the token endpoint (issue: foundation).
//!
//! In one run, on one machine: the raw ES256 signing rate, then requests/s
//! at 32 concurrent clients over loopback HTTP for discovery,
//! `client_credentials`, refresh-token rotation and authorization-code
//! redemption, against a real Gatepass on the embedded store.
//!
//! Target: a code redemption (two signatures: ID token + access token) costs
//! less than 3× those two signatures, i.e. redemptions/s > signatures/s ÷ 6.
//!
//! Run: `cargo bench --bench token_endpoint` (set GATEPASS_BENCH_SECONDS to
//! change the per-phase duration; default 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatepass::app::AppState;
use gatepass::authn::AuthMethod;
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use gatepass::ids::SecretDigest;
use gatepass::protocol::scope::Scope;
use gatepass::tokens::grants::{Authorization, Redemption};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;

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
client_id = "bench"
client_secret = "bench-secret-0123456789"
redirect_uris = ["http://127.0.0.1:9/cb"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
app_permissions = ["User.Read.All"]
"#,
        dir.join("bench.redb").display(),
        dir.join("keys").display()
    )
}

fn phase_duration() -> Duration {
    let secs = std::env::var("GATEPASS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    Duration::from_secs(secs)
}

/// Signatures per second with one thread per core, like the server's workers.
fn raw_signing_rate(state: &AppState, threads: usize, duration: Duration) -> f64 {
    let claims = serde_json::json!({
        "iss": "http://localhost", "sub": "00000000-0000-0000-0000-000000000000",
        "aud": "bench", "exp": 2_000_000_000, "iat": 1_700_000_000, "amr": ["pwd"], "acr": "single_factor"
    });
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

/// Runs `make` from 32 tasks until `duration` passes or `items` run out;
/// returns requests/s. Every response must be 200.
async fn load<F, Fut>(duration: Duration, items: Option<Vec<String>>, make: F) -> (f64, usize)
where
    F: Fn(Option<String>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = reqwest::StatusCode> + Send,
{
    let items = Arc::new(std::sync::Mutex::new(items));
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (make, items, done) = (make.clone(), items.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
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
                let status = make(item).await;
                assert_eq!(status, 200, "benchmark request failed");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

fn authorization(user: gatepass::ids::UserId, scope: &str, now: i64) -> Authorization {
    Authorization {
        user_id: user,
        client_id: "bench".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        scope: Scope::parse(scope).unwrap(),
        nonce: Some("n".into()),
        code_challenge: None,
        auth_time: now,
        methods: vec![AuthMethod::Password],
        sid: "bench-session".into(),
        session: SecretDigest::of("bench-session-cookie"),
        epoch: 0,
        not_after: None,
        tap_id: None,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let duration = phase_duration();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let settings = Settings::from_toml(&config(dir.path(), &issuer), Path::new("bench.toml"), std::iter::empty()).unwrap();
    let state = AppState::build(settings, Arc::new(SystemClock)).unwrap();
    let user = state.directory.bootstrap_admin("admin", None, SystemClock.now()).await.unwrap().unwrap();

    println!("gatepass token endpoint benchmark: {cores} cores, {CONCURRENCY} concurrent clients, {}s per phase", duration.as_secs());
    let sign_rate = raw_signing_rate(&state, cores, duration);
    println!("raw ES256 signing ({cores} threads):   {sign_rate:>10.0} signatures/s");

    let app = gatepass::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let token_url = format!("{issuer}/token");

    let (discovery, _) = load(duration, None, {
        let (http, url) = (http.clone(), format!("{issuer}/.well-known/openid-configuration"));
        move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.unwrap().status() }
        }
    })
    .await;
    println!("discovery:                     {discovery:>10.0} requests/s");

    let (cc, _) = load(duration, None, {
        let (http, url) = (http.clone(), token_url.clone());
        move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.post(&url)
                    .basic_auth("bench", Some("bench-secret-0123456789"))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        }
    })
    .await;
    println!("client_credentials:            {cc:>10.0} requests/s");

    // Codes are minted through the library (the sign-in pages are not what
    // is measured); enough for the whole phase.
    let now = SystemClock.now();
    let budget = ((sign_rate / 2.0) * duration.as_secs_f64() * 1.5) as usize + 1000;
    let mut codes = Vec::with_capacity(budget);
    for _ in 0..budget {
        let code = state.grants.issue_code(authorization(user.id, "openid", now.unix_timestamp()), now).await.unwrap();
        codes.push(code.expose().to_owned());
    }
    let (redeem, redeemed) = load(duration, Some(codes), {
        let (http, url) = (http.clone(), token_url.clone());
        move |code| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let code = code.unwrap();
                http.post(&url)
                    .basic_auth("bench", Some("bench-secret-0123456789"))
                    .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9/cb")])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        }
    })
    .await;
    println!("code redemption (2 signatures): {redeem:>9.0} requests/s   ({redeemed} codes)");

    // Refresh tokens: one offline grant per request, rotated once each.
    let mut refresh_tokens = Vec::new();
    let refresh_budget = 20_000usize.min(budget);
    for _ in 0..refresh_budget {
        let code = state.grants.issue_code(authorization(user.id, "openid offline_access", now.unix_timestamp()), now).await.unwrap();
        let issued = state
            .grants
            .redeem_code(code.expose(), Redemption { client_id: "bench", redirect_uri: Some("http://127.0.0.1:9/cb"), code_verifier: None }, now)
            .await
            .unwrap();
        refresh_tokens.push(issued.refresh_token.unwrap().expose().to_owned());
    }
    let (refresh, _) = load(duration, Some(refresh_tokens), {
        let (http, url) = (http.clone(), token_url.clone());
        move |token| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let token = token.unwrap();
                http.post(&url)
                    .basic_auth("bench", Some("bench-secret-0123456789"))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        }
    })
    .await;
    println!("refresh rotation (durable):    {refresh:>10.0} requests/s");

    // Cost of one redemption in units of "its two signatures".
    let ratio = (1.0 / redeem) / (2.0 / sign_rate);
    println!();
    println!("code redemption costs {ratio:.2}x its two signatures (target < 3.00x): {}", if ratio < 3.0 { "MET" } else { "NOT MET" });
}
