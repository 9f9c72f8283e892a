//! TAP sign-in verification throughput next to raw argon2id verification
//! (issue: Temporary Access Pass).
//!
//! Both run with one worker per core and the default argon2id cost
//! (m=19456 KiB, t=2, p=1). The TAP side is the real sign-in path,
//! `authn::verify::Verifier::verify`: throttle check, user lookup, policy,
//! pass lookup by key, one argon2id verification, throttle bookkeeping —
//! against the embedded store. Target: ≥ 0.9 of raw (one hash per attempt,
//! no scans).
//!
//! Run: `cargo bench --bench tap_verification` (GATEPASS_BENCH_SECONDS sets
//! the per-phase duration; default 6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatepass::app::AppState;
use gatepass::authn::tap::IssueRequest;
use gatepass::authn::verify::{Credential, Verdict, Verifier};
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let secs = std::env::var("GATEPASS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let duration = Duration::from_secs(secs);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "issuer = \"http://localhost:8080\"\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"embedded\"\npath = \"{}\"\n[keys]\ndir = \"{}\"\n",
        dir.path().join("bench.redb").display(),
        dir.path().join("keys").display()
    );
    let settings =
        Settings::from_toml(&config, Path::new("bench.toml"), std::iter::empty()).unwrap();
    let cost = settings.password_hashing;
    let state = AppState::build(settings, Arc::new(SystemClock)).unwrap();
    let now = SystemClock.now();
    let user = state
        .directory
        .bootstrap_admin("bench-user", None, now)
        .await
        .unwrap()
        .unwrap();
    let policy = state.taps.policy(now.unix_timestamp()).await.unwrap();
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
    let phc = issued.pass.hash.clone();

    println!(
        "gatepass TAP verification benchmark: {cores} cores, argon2id m={} KiB t={} p={}, {secs}s per phase",
        cost.memory_kib, cost.iterations, cost.parallelism
    );

    // Raw: one thread per core, nothing but argon2id verification.
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            let (count, hasher, tap, phc) = (
                count.clone(),
                state.hasher.clone(),
                tap.clone(),
                phc.clone(),
            );
            s.spawn(move || {
                while start.elapsed() < duration {
                    assert!(hasher.verify_blocking(&tap, &phc));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let raw = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("raw argon2id verification:       {raw:>8.1} verifications/s");

    // TAP sign-in verification: one task per core through the real path.
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..cores {
        let (count, state, tap) = (count.clone(), state.clone(), tap.clone());
        tasks.push(tokio::spawn(async move {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, u8::try_from(i + 1).unwrap_or(1)));
            let verifier = Verifier {
                directory: &state.directory,
                taps: &state.taps,
                throttle: &state.throttle,
                hasher: &state.hasher,
            };
            while start.elapsed() < duration {
                let verdict = verifier
                    .verify(
                        "bench-user",
                        ip,
                        Credential::TemporaryAccessPass(&tap),
                        state.clock.now(),
                    )
                    .await
                    .unwrap();
                assert!(
                    matches!(verdict, Verdict::Accepted { .. }),
                    "verification failed: {verdict:?}"
                );
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let via_tap = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("TAP sign-in verification:        {via_tap:>8.1} sign-ins/s");
    let ratio = via_tap / raw;
    println!();
    println!(
        "TAP verification runs at {ratio:.3} of raw argon2id (target >= 0.90): {}",
        if ratio >= 0.9 { "MET" } else { "NOT MET" }
    );
}
