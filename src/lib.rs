//! Gatepass: an OpenID Connect identity provider in which a Temporary Access
//! Pass is a first-class strong credential.
//!
//! Dependencies point inward: `web` and `graph` (HTTP) use `authn`,
//! `protocol`, `tokens` and `directory`, which use the `store` traits. Only
//! `web` and `graph` know axum; time enters through [`clock::Clock`].

pub mod app;
pub mod audit;
pub mod authn;
pub mod clients;
pub mod clock;
pub mod config;
pub mod directory;
pub mod graph;
pub mod ids;
pub mod import;
pub mod keys;
pub mod logout;
pub mod openapi;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod web;

pub use app::AppState;

/// mimalloc rather than glibc's malloc, for the server and for everything
/// that measures or tests it (declared here, in the library, so the binary,
/// the benchmarks and the tests all run on the same allocator). Under the
/// token endpoint's load, glibc's per-thread arenas lock against each other
/// when one worker frees what another allocated; with mimalloc a code
/// redemption costs 68–81 µs of server CPU instead of 76–109 µs, and a
/// refresh rotation 150 µs instead of 230–270 µs (`cargo bench --bench
/// token_endpoint`, two runs each).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The whole HTTP surface, for `serve` and for in-process tests.
pub fn router(state: AppState) -> axum::Router {
    web::router(state)
}
