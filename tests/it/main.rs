//! Gatepass integration tests: one binary, driven through the real HTTP
//! interfaces (see `harness`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod authenticator;
mod backchannel;
mod bad_input;
mod batch;
mod browser;
mod browser_admin;
mod ca_analysis;
mod ca_engine;
mod ca_flow;
mod campaign;
mod client_auth;
mod device;
mod dpop;
mod fuzz;
mod graph;
mod graph_client;
mod hardening;
mod harness;
mod import;
mod metrics;
mod oidc;
mod openapi;
mod par;
mod passkey;
mod passkey_policy;
mod process;
mod proxy;
mod redis;
mod registration;
mod store;
mod strengths;
mod tap_graph;
mod tap_signin;
