//! Gatepass: an OpenID Connect identity provider in which a Temporary Access
//! Pass is a first-class strong credential.
//!
//! Dependencies point inward: `web` and `graph` (HTTP) use `authn`,
//! `protocol`, `tokens` and `directory`, which use the `store` traits. Only
//! `web` and `graph` know axum; time enters through [`clock::Clock`].

pub mod app;
pub mod audit;
pub mod authn;
pub mod clock;
pub mod config;
pub mod directory;
pub mod graph;
pub mod ids;
pub mod keys;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod store;
pub mod tokens;
pub mod web;

pub use app::AppState;

/// The whole HTTP surface, for `serve` and for in-process tests.
pub fn router(state: AppState) -> axum::Router {
    web::router(state)
}
