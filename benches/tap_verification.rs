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
//! the total per side; default 12, in 6 alternating rounds).

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
        .unwrap_or(12);
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
        "gatepass TAP verification benchmark: {cores} cores, argon2id m={} KiB t={} p={}, {secs}s per side in 6 alternating rounds",
        cost.memory_kib, cost.iterations, cost.parallelism
    );

    // The two sides alternate in short rounds, so background load on a
    // shared machine falls on both alike instead of on whichever phase
    // happened to run while something else was busy.
    let rounds = 6;
    let slice = duration / rounds;
    let (mut raw_n, mut raw_t, mut tap_n, mut tap_t) = (0usize, 0f64, 0usize, 0f64);
    for _ in 0..rounds {
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
                    while start.elapsed() < slice {
                        assert!(hasher.verify_blocking(&tap, &phc));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        raw_n += count.load(Ordering::Relaxed);
        raw_t += start.elapsed().as_secs_f64();

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
                while start.elapsed() < slice {
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
        tap_n += count.load(Ordering::Relaxed);
        tap_t += start.elapsed().as_secs_f64();
    }
    let raw = raw_n as f64 / raw_t;
    let via_tap = tap_n as f64 / tap_t;
    println!(
        "raw argon2id verification:       {raw:>8.1} verifications/s  ({raw_n} in {raw_t:.1}s)"
    );
    println!(
        "TAP sign-in verification:        {via_tap:>8.1} sign-ins/s       ({tap_n} in {tap_t:.1}s)"
    );
    let ratio = via_tap / raw;
    println!();
    println!(
        "TAP verification runs at {ratio:.3} of raw argon2id (target >= 0.90): {}",
        if ratio >= 0.9 { "MET" } else { "NOT MET" }
    );
}
