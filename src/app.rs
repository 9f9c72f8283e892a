//! Wiring: settings + clock → the shared application state.

use crate::audit::AuditLog;
use crate::authn::passkey::{PasskeyError, Passkeys};
use crate::authn::password::{PasswordError, PasswordHasher};
use crate::authn::session::Sessions;
use crate::authn::tap::Taps;
use crate::authn::throttle::Throttle;
use crate::clock::Clock;
use crate::config::{Settings, StoreSettings};
use crate::directory::Directory;
use crate::keys::KeySet;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::{Store, StoreError};
use crate::tokens::TokenIssuer;
use crate::tokens::grants::Grants;
use std::sync::Arc;

/// Everything a request handler needs. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    /// Which relying party a client id names: configured, then registered.
    pub clients: crate::clients::Clients,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub tokens: TokenIssuer,
    pub directory: Directory,
    pub sessions: Sessions,
    pub grants: Grants,
    pub audit: AuditLog,
    pub hasher: PasswordHasher,
    pub taps: Taps,
    pub throttle: Throttle,
    pub passkeys: Passkeys,
    /// The passkey method configuration and the registration campaign.
    pub passkey_policy: crate::authn::passkey_policy::PasskeyPolicies,
    /// Conditional-access policies, named locations, custom strengths.
    pub ca: crate::policy::ca_store::CaObjects,
    /// `private_key_jwt`: clients' keys and accepted assertion `jti`s.
    pub client_assertions: crate::authn::client_keys::ClientAssertions,
    /// Back-channel logout: which clients each session signed in to, and
    /// the queue of logout tokens to deliver.
    pub backchannel: crate::logout::Backchannel,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    #[error("password hashing: {0}")]
    Password(#[from] PasswordError),
    #[error("passkeys: {0}")]
    Passkeys(#[from] PasskeyError),
    #[error("back-channel logout HTTP client: {0}")]
    Backchannel(#[from] reqwest::Error),
}

/// How long old signing keys stay published after rotation: the longest
/// lifetime of a JWT we sign, plus a margin for clock skew and caches.
pub fn key_retention(settings: &Settings) -> time::Duration {
    settings.tokens.access_token.max(settings.tokens.id_token) + time::Duration::minutes(10)
}

impl AppState {
    /// Opens the configured store and keys.
    pub fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<AppState, BuildError> {
        let store: Arc<dyn Store> = match &settings.store {
            StoreSettings::Embedded { path, cache_mb } => {
                let cache = cache_mb.map(|mb| usize::try_from(mb << 20).unwrap_or(usize::MAX));
                Arc::new(EmbeddedStore::open_with_cache(path, cache)?)
            }
            // Connects on first use, inside the runtime that serves requests
            // (`build` is sync); an unreachable Redis then fails the first
            // store call (e.g. the first-start bootstrap) with a clear error.
            StoreSettings::Redis { url, key_prefix } => {
                Arc::new(RedisStore::open(url, key_prefix)?)
            }
        };
        Self::with_store(settings, clock, store)
    }

    /// Builds on an already-open store (tests, benchmarks).
    pub fn with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Result<AppState, BuildError> {
        crate::telemetry::install();
        let store = crate::store::metered::MeteredStore::wrap(store);
        let now = clock.now();
        let keys = KeySet::load_or_create(
            &settings.keys_dir,
            settings.key_algorithm,
            now,
            key_retention(&settings),
        )?;
        let clients = crate::clients::Clients::new(store.clone(), clock.clone(), &settings);
        let backchannel =
            crate::logout::Backchannel::new(store.clone(), &settings, clients.clone())?;
        let directory = Directory::new(store.clone()).with_backchannel(backchannel.clone());
        let hasher = PasswordHasher::new(settings.password_hashing)?;
        let taps = Taps::new(store.clone(), settings.tap_policy.clone())
            .with_backchannel(backchannel.clone());
        let passkeys = Passkeys::new(
            &settings.issuer,
            store.clone(),
            settings.passkeys.attestation_roots.clone(),
        )?;
        if !passkeys.enabled() {
            tracing::warn!(
                issuer = %settings.issuer,
                "passkeys are off: WebAuthn needs the issuer to be a host name, not an IP address; \
                 set `issuer` to a host name (e.g. http://localhost:8080) to turn them on"
            );
        }
        Ok(AppState {
            tokens: TokenIssuer::new(keys, settings.issuer.clone()),
            sessions: Sessions::new(store.clone(), directory.clone(), taps.clone())
                .with_backchannel(backchannel.clone()),
            backchannel,
            throttle: Throttle::new(store.clone(), settings.throttling),
            passkeys,
            passkey_policy: crate::authn::passkey_policy::PasskeyPolicies::new(store.clone()),
            ca: crate::policy::ca_store::CaObjects::new(store.clone()),
            client_assertions: crate::authn::client_keys::ClientAssertions::new(store.clone()),
            taps,
            grants: Grants::new(
                store.clone(),
                settings.tokens.refresh_token,
                settings.tokens.access_token,
            ),
            audit: AuditLog::new(store.clone()),
            clients,
            directory,
            hasher,
            settings: Arc::new(settings),
            clock,
            store,
        })
    }
}
