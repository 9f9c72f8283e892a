//! Token-endpoint code redemption at 32 concurrent clients on the Redis
//! backend next to the embedded backend, in one run (issue: Redis backend).
//! Target: Redis ≥ 0.7 of the embedded figure.
//!
//! Redis comes from `GATEPASS_TEST_REDIS_URL`, else `redis://127.0.0.1:6379/`;
//! the run uses its own random key prefix and deletes its keys afterwards.
//! Run: `cargo bench --bench store_backends` (GATEPASS_BENCH_SECONDS, default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatepass::app::AppState;
use gatepass::authn::AuthMethod;
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use gatepass::ids::SecretDigest;
use gatepass::protocol::scope::Scope;
use gatepass::store::Store;
use gatepass::tokens::grants::Authorization;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;

async fn redemption_rate(store: Arc<dyn Store>, dir: &Path, duration: Duration) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let config = format!(
        "issuer = \"{issuer}\"\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"embedded\"\npath = \"{}\"\n[keys]\ndir = \"{}\"\n\
         [[clients]]\nclient_id = \"bench\"\nclient_secret = \"bench-secret-0123456789\"\nredirect_uris = [\"http://127.0.0.1:9/cb\"]\n",
        dir.join("unused.redb").display(),
        dir.join("keys").display()
    );
    let settings =
        Settings::from_toml(&config, Path::new("bench.toml"), std::iter::empty()).unwrap();
    let state = AppState::with_store(settings, Arc::new(SystemClock), store).unwrap();
    let now = SystemClock.now();
    let user = state
        .directory
        .bootstrap_admin("admin", None, now)
        .await
        .unwrap()
        .unwrap();
    let mut codes = Vec::new();
    for _ in 0..40_000 {
        let authorization = Authorization {
            user_id: user.id,
            client_id: "bench".into(),
            redirect_uri: "http://127.0.0.1:9/cb".into(),
            scope: Scope::parse("openid").unwrap(),
            nonce: None,
            code_challenge: None,
            auth_time: now.unix_timestamp(),
            methods: vec![AuthMethod::Password],
            sid: "s".into(),
            session: SecretDigest::of("s"),
            epoch: 0,
            not_after: None,
            tap_id: None,
        };
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
    let server = tokio::spawn(gatepass::server::serve_on(
        listener,
        state,
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let codes = Arc::new(std::sync::Mutex::new(codes));
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, codes, done, url) = (
            http.clone(),
            codes.clone(),
            done.clone(),
            format!("{issuer}/token"),
        );
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < duration {
                let Some(code) = codes.lock().unwrap().pop() else {
                    break;
                };
                let r = http
                    .post(&url)
                    .basic_auth("bench", Some("bench-secret-0123456789"))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    server.abort();
    rate
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
        println!("gatepass store backends benchmark: code redemption, {CONCURRENCY} concurrent clients, {secs}s per backend");

        let dir = tempfile::tempdir().unwrap();
        let embedded: Arc<dyn Store> = Arc::new(gatepass::store::embedded::EmbeddedStore::open(&dir.path().join("bench.redb")).unwrap());
        let embedded_rate = redemption_rate(embedded, dir.path(), duration).await;
        println!("embedded (redb):  {embedded_rate:>8.0} redemptions/s");

        let mut bytes = [0u8; 6];
        gatepass::ids::fill_random(&mut bytes).unwrap();
        let prefix = format!("gpbench-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let redis = match gatepass::store::redis::RedisStore::connect(&url, &prefix).await {
            Ok(r) => r,
            Err(e) => {
                println!("redis: not measured ({e})");
                return;
            }
        };
        let dir2 = tempfile::tempdir().unwrap();
        let redis_rate = redemption_rate(Arc::new(redis), dir2.path(), duration).await;
        println!("redis:            {redis_rate:>8.0} redemptions/s");
        // Remove this run's keys (never FLUSH a shared server).
        if let Ok(client) = redis::Client::open(url.as_str()) {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pattern = format!("{{{prefix}}}:*");
                let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap_or_default();
                for chunk in keys.chunks(500) {
                    let _: Result<(), _> = redis::cmd("UNLINK").arg(chunk).query_async(&mut conn).await;
                }
            }
        }
        let ratio = redis_rate / embedded_rate;
        println!();
        println!("redis runs at {ratio:.2} of embedded (target >= 0.70): {}", if ratio >= 0.7 { "MET" } else { "NOT MET" });
    });
}
