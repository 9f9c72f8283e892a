//! Configuration: `config/gatepass.toml` plus `GATEPASS_*` environment
//! overrides, validated into [`Settings`].
//!
//! Start-up refuses any doubt: an unknown key, a value of the wrong type or
//! out of range, or an unknown `GATEPASS_*` variable stops the process with a
//! message that names the key and what is allowed. A typo in a security
//! setting must never silently fall back to a default.
//!
//! Environment overrides name a key path with `__` between levels:
//! `GATEPASS_ISSUER`, `GATEPASS_STORE__PATH`, `GATEPASS_KEYS__ALGORITHM`.

use crate::authn::tap::{MethodState, MethodTarget, TapPolicy};
use crate::authn::throttle::ThrottleSettings;
use crate::keys::Algorithm;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// Why the configuration was refused. Messages name the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuer: String,
    listen: String,
    workers: Option<usize>,
    store: RawStore,
    keys: RawKeys,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    password_hashing: RawPasswordHashing,
    #[serde(default)]
    tap: RawTap,
    #[serde(default)]
    throttling: RawThrottling,
    #[serde(default)]
    conditional_access: RawConditionalAccess,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    demo: RawDemo,
    #[serde(default)]
    passkeys: RawPasskeys,
    #[serde(default)]
    par: crate::protocol::par::RawPar,
    #[serde(default)]
    backchannel_logout: crate::logout::settings::RawBackchannelLogout,
    #[serde(default)]
    registration: RawRegistration,
}

/// `[registration]`: dynamic client registration (RFC 7591).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRegistration {
    /// Bearer tokens that may register clients; empty: registration is off.
    initial_access_tokens: Vec<String>,
}

/// Shortest initial access token accepted: it is a password that lets its
/// holder register clients, so it must not be guessable.
pub const MIN_INITIAL_ACCESS_TOKEN_LEN: usize = 16;

/// `[registration]`, validated: the digests of the initial access tokens.
#[derive(Clone, Default)]
pub struct RegistrationSettings {
    initial_access_tokens: Vec<crate::ids::SecretDigest>,
}

impl RegistrationSettings {
    /// Registration is on: `/register` is served and advertised, and
    /// registered clients are served.
    pub fn enabled(&self) -> bool {
        !self.initial_access_tokens.is_empty()
    }

    /// Whether `presented` is one of the initial access tokens. Compares
    /// against every digest in constant time, without stopping at a match.
    pub fn accepts(&self, presented: &str) -> bool {
        let given = crate::ids::SecretDigest::of(presented);
        self.initial_access_tokens.iter().fold(false, |found, d| {
            found | crate::ids::secrets_equal(given.as_str(), d.as_str())
        })
    }
}

impl std::fmt::Debug for RegistrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests of tokens a person may have chosen: left out.
        f.debug_struct("RegistrationSettings")
            .field("initial_access_tokens", &self.initial_access_tokens.len())
            .finish()
    }
}

fn validate_registration(raw: RawRegistration) -> Result<RegistrationSettings, ConfigError> {
    let mut digests = Vec::with_capacity(raw.initial_access_tokens.len());
    for (i, token) in raw.initial_access_tokens.iter().enumerate() {
        if token.chars().count() < MIN_INITIAL_ACCESS_TOKEN_LEN {
            return Err(invalid(
                format!("registration.initial_access_tokens[{i}]"),
                format!("must be at least {MIN_INITIAL_ACCESS_TOKEN_LEN} characters"),
            ));
        }
        if token.trim() != token || token.chars().any(char::is_control) {
            return Err(invalid(
                format!("registration.initial_access_tokens[{i}]"),
                "must not have surrounding spaces or control characters (it is sent in an HTTP header)",
            ));
        }
        digests.push(crate::ids::SecretDigest::of(token));
    }
    Ok(RegistrationSettings {
        initial_access_tokens: digests,
    })
}

/// `[passkeys]`: what the passkey policy needs from the server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPasskeys {
    /// PEM file of attestation root certificates: `isAttestationEnforced`
    /// accepts authenticators whose attestation chains to one of them.
    attestation_roots: Option<PathBuf>,
    /// JSON file of authenticator names (`{"<aaguid>": {"name": ...}}`)
    /// added to, and overriding, the shipped `assets/aaguids.json`.
    authenticator_names: Option<PathBuf>,
}

/// `[passkeys]`, validated.
#[derive(Debug, Clone, Default)]
pub struct PasskeySettings {
    /// Roots that vouch for authenticator attestation; `None`: attestation
    /// cannot be enforced on this server.
    pub attestation_roots: Option<webauthn_rs::prelude::AttestationCaList>,
    pub authenticators: crate::authn::authenticators::Authenticators,
}

/// `[demo]`: the built-in demo relying party at `/demo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDemo {
    /// Absent: on for a local issuer (localhost, 127.0.0.1, ::1), off
    /// otherwise.
    enabled: Option<bool>,
}

/// The built-in demo relying party's client id (`[demo]`).
pub const DEMO_CLIENT_ID: &str = "gatepass-demo";

/// `[metrics]`: where Prometheus scrapes `/metrics`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// Its own address (e.g. `127.0.0.1:9464`), so the public listener
    /// does not serve it; absent, `/metrics` is on the main listener.
    listen: Option<String>,
}

/// `[server]`: connection limits and the reverse proxies to trust.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    trusted_proxies: Vec<String>,
    header_read_timeout_seconds: i64,
    body_read_timeout_seconds: i64,
    request_timeout_seconds: i64,
    max_connections: i64,
    shutdown_grace_seconds: i64,
}

impl Default for RawServer {
    fn default() -> Self {
        let d = ServerSettings::default();
        Self {
            trusted_proxies: Vec::new(),
            header_read_timeout_seconds: d.header_read_timeout.as_secs().try_into().unwrap_or(10),
            body_read_timeout_seconds: d.body_read_timeout.as_secs().try_into().unwrap_or(10),
            request_timeout_seconds: d.request_timeout.as_secs().try_into().unwrap_or(30),
            max_connections: d.max_connections.try_into().unwrap_or(1024),
            shutdown_grace_seconds: d.shutdown_grace.as_secs().try_into().unwrap_or(10),
        }
    }
}

/// Files that seed the conditional-access objects on first start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConditionalAccess {
    policies: Option<PathBuf>,
    strengths: Option<PathBuf>,
    named_locations: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTap {
    enabled: bool,
    minimum_lifetime_minutes: u32,
    maximum_lifetime_minutes: u32,
    default_lifetime_minutes: u32,
    default_length: u32,
    is_usable_once: bool,
    include_groups: Vec<String>,
    exclude_groups: Vec<String>,
}

impl Default for RawTap {
    fn default() -> Self {
        let p = TapPolicy::default();
        Self {
            enabled: true,
            minimum_lifetime_minutes: p.minimum_lifetime_in_minutes,
            maximum_lifetime_minutes: p.maximum_lifetime_in_minutes,
            default_lifetime_minutes: p.default_lifetime_in_minutes,
            default_length: p.default_length,
            is_usable_once: p.is_usable_once,
            include_groups: vec![crate::authn::tap::ALL_USERS.to_owned()],
            exclude_groups: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawThrottling {
    max_flows_per_source_per_minute: i64,
    max_ceremonies_per_source_per_minute: i64,
    max_user_codes_per_source_per_minute: i64,
    max_failures: i64,
    max_failures_per_source: i64,
    window_minutes: i64,
    lockout_minutes: i64,
    max_lockout_minutes: i64,
}

impl Default for RawThrottling {
    fn default() -> Self {
        let t = ThrottleSettings::default();
        Self {
            max_flows_per_source_per_minute: t.max_flows_per_source_per_minute,
            max_ceremonies_per_source_per_minute: t.max_ceremonies_per_source_per_minute,
            max_user_codes_per_source_per_minute: t.max_user_codes_per_source_per_minute,
            max_failures: t.max_failures,
            max_failures_per_source: t.max_failures_per_source,
            window_minutes: t.window.whole_minutes(),
            lockout_minutes: t.lockout.whole_minutes(),
            max_lockout_minutes: t.max_lockout.whole_minutes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    backend: String,
    path: Option<PathBuf>,
    url: Option<String>,
    key_prefix: Option<String>,
    cache_mb: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    dir: PathBuf,
    #[serde(default = "default_algorithm")]
    algorithm: String,
}

fn default_algorithm() -> String {
    "ES256".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    client_secret: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default = "default_grant_types")]
    grant_types: Vec<String>,
    #[serde(default)]
    app_permissions: Vec<String>,
    #[serde(default)]
    delegated_permissions: Vec<String>,
    display_name: Option<String>,
    #[serde(default)]
    introspect_all_tokens: bool,
    token_endpoint_auth_method: Option<String>,
    /// A JWK Set (TOML inline table) for `private_key_jwt`.
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
    #[serde(default)]
    dpop_bound_access_tokens: bool,
}

fn default_grant_types() -> Vec<String> {
    vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSession {
    lifetime_minutes: i64,
    registration_window_minutes: i64,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            lifetime_minutes: 480,
            registration_window_minutes: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTokens {
    access_token_lifetime_minutes: i64,
    id_token_lifetime_minutes: i64,
    refresh_token_lifetime_days: i64,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            access_token_lifetime_minutes: 10,
            id_token_lifetime_minutes: 10,
            refresh_token_lifetime_days: 14,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPasswordHashing {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    /// Hashes at once; default from cores and memory (see `validate`).
    max_concurrent: Option<usize>,
    /// Hashes waiting for a slot before requests are refused (503).
    max_queued: Option<usize>,
}

impl Default for RawPasswordHashing {
    fn default() -> Self {
        Self {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: None,
            max_queued: None,
        }
    }
}

/// Where state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// One redb file; for a single instance. `cache_mb`: redb's page cache
    /// (`None`: redb's default, 1 GiB).
    Embedded {
        path: PathBuf,
        cache_mb: Option<u64>,
    },
    /// A Redis server shared by any number of instances.
    Redis { url: String, key_prefix: String },
}

/// An OAuth grant type a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8628: a device without a browser polls while the user signs in
    /// elsewhere (`/device`).
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A registered relying party.
#[derive(Clone)]
pub struct Client {
    pub client_id: String,
    pub display_name: String,
    /// SHA-256 of the secret; `None` for a public client (PKCE required).
    pub secret_digest: Option<crate::ids::SecretDigest>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: BTreeSet<GrantType>,
    pub app_permissions: BTreeSet<String>,
    pub delegated_permissions: BTreeSet<String>,
    /// A resource server that may introspect tokens issued to any client
    /// (RFC 7662); otherwise a client introspects only its own tokens.
    pub introspect_all_tokens: bool,
    /// How the client authenticates. `None` when not configured: a client
    /// with a secret may then use `client_secret_basic` or
    /// `client_secret_post`, one without uses `none`.
    pub token_endpoint_auth_method: Option<crate::protocol::client_assertion::ClientAuthMethod>,
    /// A `private_key_jwt` client's public keys (`jwks` or `jwks_uri`).
    pub jwks: Option<crate::protocol::client_assertion::ClientJwks>,
    /// RFC 9126 §5: `/authorize` only with a pushed request's `request_uri`.
    pub require_pushed_authorization_requests: bool,
    /// OpenID Connect Back-Channel Logout: where logout tokens are POSTed.
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in logout tokens (Gatepass always sends it).
    pub backchannel_logout_session_required: bool,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof, so every
    /// access token is sender-constrained.
    pub dpop_bound_access_tokens: bool,
}

impl Client {
    /// A client that cannot authenticate: no secret and no keys.
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none() && self.jwks.is_none()
    }

    /// Whether the client may authenticate with `method` (it may use only
    /// its configured one; see [`Client::token_endpoint_auth_method`]).
    pub fn accepts(&self, method: crate::protocol::client_assertion::ClientAuthMethod) -> bool {
        use crate::protocol::client_assertion::ClientAuthMethod as M;
        match self.token_endpoint_auth_method {
            Some(configured) => configured == method,
            None if self.secret_digest.is_some() => {
                matches!(method, M::ClientSecretBasic | M::ClientSecretPost)
            }
            None => method == M::None,
        }
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret digest is left out on purpose: it is a password verifier.
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("public", &self.is_public())
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .finish_non_exhaustive()
    }
}

/// Token lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub access_token: time::Duration,
    pub id_token: time::Duration,
    pub refresh_token: time::Duration,
}

/// argon2id cost parameters and the bound on hashes in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashing {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes running at once.
    pub max_concurrent: usize,
    /// Hashes waiting for a slot; beyond, requests get 503.
    pub max_queued: usize,
}

/// Memory all concurrent hashes may hold by default (`max_concurrent` is
/// the number of cores, but no more than fit in this).
pub const DEFAULT_HASHING_MEMORY_KIB: u64 = 256 * 1024;

impl PasswordHashing {
    /// The default number of concurrent hashes: one per core, within
    /// [`DEFAULT_HASHING_MEMORY_KIB`] (at least one).
    pub fn default_concurrency(memory_kib: u32) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let fit = DEFAULT_HASHING_MEMORY_KIB / u64::from(memory_kib.max(1));
        cores.min(usize::try_from(fit).unwrap_or(usize::MAX)).max(1)
    }
}

/// How the HTTP server protects itself, and whom it believes about client
/// addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Reverse proxies whose `X-Forwarded-For` is believed; the client is
    /// the right-most hop not in these ranges. Empty: the TCP peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A request's headers must arrive within this; an idle keep-alive
    /// connection is closed after it too.
    pub header_read_timeout: std::time::Duration,
    /// A request's body must arrive within this.
    pub body_read_timeout: std::time::Duration,
    /// A request must be answered within this (408 otherwise).
    pub request_timeout: std::time::Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// On SIGTERM, in-flight requests get this long; then connections are
    /// closed and the store is saved.
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer, without a trailing slash; every URL Gatepass emits is
    /// derived from it, whatever the request's Host header says.
    pub issuer: String,
    pub listen: SocketAddr,
    pub workers: Option<usize>,
    pub store: StoreSettings,
    pub keys_dir: PathBuf,
    pub key_algorithm: Algorithm,
    pub clients: HashMap<String, Client>,
    pub session_lifetime: time::Duration,
    /// How long after a one-time TAP sign-in passkeys may be registered.
    pub registration_window: time::Duration,
    pub tokens: TokenLifetimes,
    pub password_hashing: PasswordHashing,
    /// Seeds the stored TAP policy on first start (the Graph API owns it later).
    pub tap_policy: TapPolicy,
    pub throttling: ThrottleSettings,
    /// Graph JSON objects that seed conditional access on first start.
    pub conditional_access_seed: ConditionalAccessSeed,
    pub server: ServerSettings,
    /// `[metrics] listen`: `/metrics` on its own address instead of the
    /// main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// `[demo] enabled`: the demo relying party at `/demo` (registered as
    /// the public client [`DEMO_CLIENT_ID`]).
    pub demo: bool,
    pub passkeys: PasskeySettings,
    /// `[par]`: pushed authorization requests (RFC 9126).
    pub par: crate::protocol::par::ParSettings,
    /// `[backchannel_logout]`: delivery of logout tokens.
    pub backchannel_logout: crate::logout::BackchannelSettings,
    /// `[registration]`: dynamic client registration (RFC 7591/7592).
    pub registration: RegistrationSettings,
}

/// Conditional-access objects from `[conditional_access]` files, validated
/// at start-up, stored on first start (the Graph API owns them after).
#[derive(Debug, Clone, Default)]
pub struct ConditionalAccessSeed {
    pub policies: Vec<serde_json::Value>,
    pub strengths: Vec<serde_json::Value>,
    pub named_locations: Vec<serde_json::Value>,
}

impl Settings {
    /// Whether cookies must carry `Secure`.
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The audience of access tokens for the Graph-compatible API.
    pub fn graph_audience(&self) -> String {
        format!("{}/graph", self.issuer)
    }

    /// A configured client. Serving code asks the registry instead
    /// ([`crate::clients::Clients::get`]), which also knows the clients
    /// registered through RFC 7591.
    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.get(client_id)
    }

    /// What `check-config` and start-up warn about: the configuration
    /// works, but is not fit to be exposed as it is.
    pub fn warnings(&self) -> Vec<String> {
        let demo = crate::ids::SecretDigest::of(DEMO_CLIENT_SECRET);
        let mut out: Vec<String> = self
            .clients
            .values()
            .filter(|c| {
                c.secret_digest
                    .as_ref()
                    .is_some_and(|d| crate::ids::secrets_equal(d.as_str(), demo.as_str()))
            })
            .map(|c| {
                format!(
                    "client {:?} uses the demo secret from config/gatepass.toml; set a secret of your own before exposing Gatepass",
                    c.client_id
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// The secret of the default config's demo client: fine on a laptop, never
/// in a deployment.
const DEMO_CLIENT_SECRET: &str = "demo-app-secret-change-me";

/// Environment variables that belong to tooling, not to the configuration.
const NON_CONFIG_VARS: &[&str] = &[
    "GATEPASS_LOG",
    "GATEPASS_REQUIRE_REDIS",
    "GATEPASS_REQUIRE_BROWSER",
    "GATEPASS_REQUIRE_NGINX",
];
const NON_CONFIG_PREFIXES: &[&str] = &["GATEPASS_TEST_", "GATEPASS_BENCH_"];

/// The type of an overridable setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Text,
    Integer,
}

/// Scalar keys that may be overridden from the environment.
const OVERRIDABLE: &[(&str, Scalar)] = &[
    ("issuer", Scalar::Text),
    ("listen", Scalar::Text),
    ("workers", Scalar::Integer),
    ("store.backend", Scalar::Text),
    ("store.path", Scalar::Text),
    ("store.url", Scalar::Text),
    ("store.key_prefix", Scalar::Text),
    ("store.cache_mb", Scalar::Integer),
    ("keys.dir", Scalar::Text),
    ("keys.algorithm", Scalar::Text),
    ("session.lifetime_minutes", Scalar::Integer),
    ("session.registration_window_minutes", Scalar::Integer),
    ("tokens.access_token_lifetime_minutes", Scalar::Integer),
    ("tokens.id_token_lifetime_minutes", Scalar::Integer),
    ("tokens.refresh_token_lifetime_days", Scalar::Integer),
    ("password_hashing.memory_kib", Scalar::Integer),
    ("password_hashing.iterations", Scalar::Integer),
    ("password_hashing.parallelism", Scalar::Integer),
    ("password_hashing.max_concurrent", Scalar::Integer),
    ("password_hashing.max_queued", Scalar::Integer),
    (
        "throttling.max_flows_per_source_per_minute",
        Scalar::Integer,
    ),
    (
        "throttling.max_ceremonies_per_source_per_minute",
        Scalar::Integer,
    ),
    (
        "throttling.max_user_codes_per_source_per_minute",
        Scalar::Integer,
    ),
    ("throttling.max_failures", Scalar::Integer),
    ("par.request_uri_lifetime_seconds", Scalar::Integer),
    ("throttling.max_failures_per_source", Scalar::Integer),
    ("throttling.window_minutes", Scalar::Integer),
    ("throttling.lockout_minutes", Scalar::Integer),
    ("throttling.max_lockout_minutes", Scalar::Integer),
    ("server.header_read_timeout_seconds", Scalar::Integer),
    ("server.body_read_timeout_seconds", Scalar::Integer),
    ("server.request_timeout_seconds", Scalar::Integer),
    ("server.max_connections", Scalar::Integer),
    ("server.shutdown_grace_seconds", Scalar::Integer),
    ("passkeys.attestation_roots", Scalar::Text),
    ("passkeys.authenticator_names", Scalar::Text),
];

/// Graph application/delegated permission names a client may hold.
pub const GRAPH_PERMISSIONS: &[&str] = &[
    "User.Read",
    "User.Read.All",
    "User.ReadWrite.All",
    "User-PasswordProfile.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "UserAuthMethod-TAP.Read.All",
    "UserAuthMethod-TAP.ReadWrite.All",
    "Policy.Read.All",
    "Policy.Read.AuthenticationMethod",
    "Policy.ReadWrite.AuthenticationMethod",
    "Policy.Read.ConditionalAccess",
    "Policy.ReadWrite.ConditionalAccess",
    "RoleManagement.Read.Directory",
    "RoleManagement.ReadWrite.Directory",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "AuditLog.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

impl Settings {
    /// Reads `path`, applies `GATEPASS_*` overrides from `env`, validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, env)
    }

    /// Like [`Settings::load`] on text already read; `origin` names it in errors.
    pub fn from_toml(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin.to_owned(),
                    message: e.to_string(),
                })?;
        apply_env_overrides(&mut table, env)?;
        let mut raw =
            RawConfig::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
                path: origin.to_owned(),
                message: e.to_string(),
            })?;
        if let Some(base) = origin.parent() {
            raw.resolve_paths(base);
        }
        validate(raw)
    }
}

impl RawConfig {
    /// Relative paths (the store file, the keys directory, conditional
    /// access seed files) are relative to the configuration file, not to
    /// the working directory: `--config /etc/gatepass/gatepass.toml` from
    /// anywhere is the same deployment.
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.store.path.as_mut() {
            resolve(p);
        }
        resolve(&mut self.keys.dir);
        let ca = &mut self.conditional_access;
        for p in [&mut ca.policies, &mut ca.strengths, &mut ca.named_locations]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
    }
}

fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("GATEPASS_"))
        .filter(|(k, _)| !NON_CONFIG_VARS.contains(&k.as_str()))
        .filter(|(k, _)| !NON_CONFIG_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();
    vars.sort();
    for (var, value) in vars {
        let path = var["GATEPASS_".len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        let Some(&(_, kind)) = OVERRIDABLE.iter().find(|(key, _)| *key == path) else {
            return Err(ConfigError::Env {
                var,
                message: format!(
                    "not a Gatepass setting; overridable keys are {}",
                    OVERRIDABLE
                        .iter()
                        .map(|(k, _)| format!(
                            "GATEPASS_{}",
                            k.to_ascii_uppercase().replace('.', "__")
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let parsed = if kind == Scalar::Integer {
            toml::Value::Integer(value.trim().parse().map_err(|_| ConfigError::Env {
                var: var.clone(),
                message: format!("`{path}` must be an integer, got {value:?}"),
            })?)
        } else {
            toml::Value::String(value)
        };
        let mut node = &mut *table;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_owned(), parsed.clone());
                break;
            }
            let entry = node
                .entry(part.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Env {
                        var: var.clone(),
                        message: format!("`{part}` is not a table in the config file"),
                    });
                }
            };
        }
    }
    Ok(())
}

fn validate(raw: RawConfig) -> Result<Settings, ConfigError> {
    let issuer = validate_issuer(&raw.issuer)?;
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        invalid(
            "listen",
            format!(
                "{:?} is not an address:port such as 127.0.0.1:8080",
                raw.listen
            ),
        )
    })?;
    if let Some(w) = raw.workers {
        if w == 0 || w > 1024 {
            return Err(invalid("workers", "must be between 1 and 1024"));
        }
    }
    let store = match raw.store.backend.as_str() {
        "embedded" => StoreSettings::Embedded {
            path: raw
                .store
                .path
                .ok_or_else(|| invalid("store.path", "required when backend = \"embedded\""))?,
            cache_mb: match raw.store.cache_mb {
                Some(mb) if !(16..=1_048_576).contains(&mb) => {
                    return Err(invalid(
                        "store.cache_mb",
                        format!("must be between 16 and 1048576 (MiB), got {mb}"),
                    ));
                }
                mb => mb,
            },
        },
        "redis" => {
            if raw.store.cache_mb.is_some() {
                return Err(invalid(
                    "store.cache_mb",
                    "applies to backend = \"embedded\" only (Redis keeps its data in memory)",
                ));
            }
            let url = raw.store.url.clone().ok_or_else(|| {
                invalid(
                    "store.url",
                    "required when backend = \"redis\" (e.g. redis://127.0.0.1:6379/0)",
                )
            })?;
            let parsed = Url::parse(&url).map_err(|_| {
                invalid(
                    "store.url",
                    "must be a Redis URL such as redis://[:password@]host:6379/0 or rediss://...",
                )
            })?;
            if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                return Err(invalid(
                    "store.url",
                    format!(
                        "scheme {:?} is not a Redis scheme; use redis:// or rediss://",
                        parsed.scheme()
                    ),
                ));
            }
            let key_prefix = raw
                .store
                .key_prefix
                .clone()
                .unwrap_or_else(|| "gatepass".to_owned());
            if key_prefix.is_empty()
                || key_prefix.len() > 64
                || key_prefix.contains(['{', '}', ' '])
            {
                return Err(invalid(
                    "store.key_prefix",
                    "must be 1–64 characters without braces or spaces",
                ));
            }
            StoreSettings::Redis { url, key_prefix }
        }
        other => {
            return Err(invalid(
                "store.backend",
                format!("{other:?} is not supported; allowed: \"embedded\", \"redis\""),
            ));
        }
    };
    if matches!(store, StoreSettings::Embedded { .. })
        && (raw.store.url.is_some() || raw.store.key_prefix.is_some())
    {
        return Err(invalid(
            "store.url",
            "url and key_prefix apply only to backend = \"redis\"",
        ));
    }
    let key_algorithm: Algorithm = raw.keys.algorithm.parse().map_err(|_| {
        invalid(
            "keys.algorithm",
            format!(
                "{:?}: allowed values are ES256, RS256, EdDSA",
                raw.keys.algorithm
            ),
        )
    })?;
    let backchannel_logout = crate::logout::settings::validate(&raw.backchannel_logout)?;
    let registration = validate_registration(raw.registration.clone())?;
    let mut clients = HashMap::new();
    for (i, c) in raw.clients.into_iter().enumerate() {
        let client = validate_client(i, c)?;
        if client.backchannel_logout_uri.is_some() && !backchannel_logout.enabled {
            return Err(invalid(
                format!("clients[{i}].backchannel_logout_uri"),
                "back-channel logout is off ([backchannel_logout] enabled = false)",
            ));
        }
        if clients.contains_key(&client.client_id) {
            return Err(invalid(
                format!("clients[{i}].client_id"),
                format!("{:?} is registered twice", client.client_id),
            ));
        }
        clients.insert(client.client_id.clone(), client);
    }
    let local_issuer = url::Url::parse(&issuer).ok().is_some_and(|u| {
        matches!(u.host(), Some(url::Host::Domain("localhost")))
            || matches!(u.host(), Some(url::Host::Ipv4(a)) if a.is_loopback())
            || matches!(u.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
    });
    let demo = raw.demo.enabled.unwrap_or(local_issuer);
    if demo {
        if clients.contains_key(DEMO_CLIENT_ID) {
            return Err(invalid(
                "clients",
                format!(
                    "{DEMO_CLIENT_ID:?} is the built-in demo client's id; rename the client, or set [demo] enabled = false"
                ),
            ));
        }
        clients.insert(
            DEMO_CLIENT_ID.to_owned(),
            Client {
                client_id: DEMO_CLIENT_ID.to_owned(),
                display_name: "Gatepass demo app".to_owned(),
                secret_digest: None,
                redirect_uris: vec![format!("{issuer}/demo/callback")],
                post_logout_redirect_uris: vec![format!("{issuer}/demo")],
                grant_types: [GrantType::AuthorizationCode].into_iter().collect(),
                app_permissions: BTreeSet::new(),
                delegated_permissions: BTreeSet::new(),
                introspect_all_tokens: false,
                token_endpoint_auth_method: None,
                jwks: None,
                require_pushed_authorization_requests: false,
                backchannel_logout_uri: None,
                backchannel_logout_session_required: false,
                dpop_bound_access_tokens: false,
            },
        );
    }
    let minutes = |key: &str, v: i64, min: i64, max: i64| {
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(invalid(
                key,
                format!("must be between {min} and {max}, got {v}"),
            ))
        }
    };
    let session_lifetime = time::Duration::minutes(minutes(
        "session.lifetime_minutes",
        raw.session.lifetime_minutes,
        1,
        60 * 24 * 90,
    )?);
    let registration_window = time::Duration::minutes(minutes(
        "session.registration_window_minutes",
        raw.session.registration_window_minutes,
        1,
        24 * 60,
    )?);
    let tokens = TokenLifetimes {
        access_token: time::Duration::minutes(minutes(
            "tokens.access_token_lifetime_minutes",
            raw.tokens.access_token_lifetime_minutes,
            1,
            24 * 60,
        )?),
        id_token: time::Duration::minutes(minutes(
            "tokens.id_token_lifetime_minutes",
            raw.tokens.id_token_lifetime_minutes,
            1,
            24 * 60,
        )?),
        refresh_token: time::Duration::days(minutes(
            "tokens.refresh_token_lifetime_days",
            raw.tokens.refresh_token_lifetime_days,
            1,
            365,
        )?),
    };
    let ph = raw.password_hashing;
    argon2::Params::new(ph.memory_kib, ph.iterations, ph.parallelism, None).map_err(|e| {
        invalid(
            "password_hashing",
            format!("invalid argon2id parameters ({e}); memory_kib must be at least 8 × parallelism, iterations ≥ 1, parallelism 1–16777215"),
        )
    })?;
    let max_concurrent = ph
        .max_concurrent
        .unwrap_or_else(|| PasswordHashing::default_concurrency(ph.memory_kib));
    if !(1..=1024).contains(&max_concurrent) {
        return Err(invalid(
            "password_hashing.max_concurrent",
            "must be between 1 and 1024",
        ));
    }
    // A short queue by default: a burst waits a moment, a flood is refused.
    let max_queued = ph.max_queued.unwrap_or(4 * max_concurrent);
    if max_queued > 100_000 {
        return Err(invalid(
            "password_hashing.max_queued",
            "must be at most 100000",
        ));
    }
    let server = validate_server(&raw.server)?;
    let metrics_listen = match &raw.metrics.listen {
        None => None,
        Some(a) => {
            let addr: SocketAddr = a.parse().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!("{a:?} is not an address:port such as 127.0.0.1:9464"),
                )
            })?;
            if addr == listen {
                return Err(invalid(
                    "metrics.listen",
                    "must differ from `listen` (leave it out to serve /metrics on the main listener)",
                ));
            }
            Some(addr)
        }
    };
    let tap_policy = validate_tap(&raw.tap)?;
    let passkeys = load_passkeys(&raw.passkeys)?;
    let conditional_access_seed = load_ca_seed(&raw.conditional_access)?;
    let th = &raw.throttling;
    for (key, v, min, max) in [
        (
            "throttling.max_flows_per_source_per_minute",
            th.max_flows_per_source_per_minute,
            1,
            1_000_000,
        ),
        (
            "throttling.max_ceremonies_per_source_per_minute",
            th.max_ceremonies_per_source_per_minute,
            1,
            1_000_000,
        ),
        (
            "throttling.max_user_codes_per_source_per_minute",
            th.max_user_codes_per_source_per_minute,
            1,
            1_000_000,
        ),
        ("throttling.max_failures", th.max_failures, 1, 1000),
        (
            "throttling.max_failures_per_source",
            th.max_failures_per_source,
            1,
            100_000,
        ),
        ("throttling.window_minutes", th.window_minutes, 1, 24 * 60),
        ("throttling.lockout_minutes", th.lockout_minutes, 1, 24 * 60),
        (
            "throttling.max_lockout_minutes",
            th.max_lockout_minutes,
            th.lockout_minutes,
            7 * 24 * 60,
        ),
    ] {
        minutes(key, v, min, max)?;
    }
    let throttling = ThrottleSettings {
        max_flows_per_source_per_minute: th.max_flows_per_source_per_minute,
        max_ceremonies_per_source_per_minute: th.max_ceremonies_per_source_per_minute,
        max_user_codes_per_source_per_minute: th.max_user_codes_per_source_per_minute,
        max_failures: th.max_failures,
        max_failures_per_source: th.max_failures_per_source,
        window: time::Duration::minutes(th.window_minutes),
        lockout: time::Duration::minutes(th.lockout_minutes),
        max_lockout: time::Duration::minutes(th.max_lockout_minutes),
    };
    let par = raw
        .par
        .validate()
        .map_err(|(key, message)| invalid(key, message))?;
    Ok(Settings {
        par,
        backchannel_logout,
        registration,
        passkeys,
        server,
        metrics_listen,
        demo,
        conditional_access_seed,
        tap_policy,
        throttling,
        issuer,
        listen,
        workers: raw.workers,
        store,
        keys_dir: raw.keys.dir,
        key_algorithm,
        clients,
        session_lifetime,
        registration_window,
        tokens,
        password_hashing: PasswordHashing {
            memory_kib: ph.memory_kib,
            iterations: ph.iterations,
            parallelism: ph.parallelism,
            max_concurrent,
            max_queued,
        },
    })
}

fn load_passkeys(raw: &RawPasskeys) -> Result<PasskeySettings, ConfigError> {
    let read = |key: &str, path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
    };
    let attestation_roots = match &raw.attestation_roots {
        None => None,
        Some(path) => {
            const KEY: &str = "passkeys.attestation_roots";
            let pem = read(KEY, path)?;
            let bad = |e: &dyn std::fmt::Display| invalid(KEY, format!("{}: {e}", path.display()));
            let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(bad(&"holds no PEM certificate"));
            }
            let mut roots = webauthn_rs::prelude::AttestationCaList::default();
            for cert in certs {
                let one = cert.to_pem().map_err(|e| bad(&e))?;
                let list = webauthn_rs::prelude::AttestationCaList::try_from(one.as_slice())
                    .map_err(|e| bad(&e))?;
                roots.union(&list);
            }
            Some(roots)
        }
    };
    let authenticators = match &raw.authenticator_names {
        None => crate::authn::authenticators::Authenticators::load(None)
            .map_err(|e| invalid("passkeys.authenticator_names", e))?,
        Some(path) => {
            const KEY: &str = "passkeys.authenticator_names";
            let text = String::from_utf8(read(KEY, path)?)
                .map_err(|_| invalid(KEY, format!("{}: not UTF-8 text", path.display())))?;
            crate::authn::authenticators::Authenticators::load(Some(&text))
                .map_err(|e| invalid(KEY, format!("{}: {e}", path.display())))?
        }
    };
    Ok(PasskeySettings {
        attestation_roots,
        authenticators,
    })
}

fn load_ca_seed(
    raw: &RawConditionalAccess,
) -> Result<ConditionalAccessSeed, ConditionalAccessSeedError> {
    use crate::policy::conditional_access::{
        StrengthSet, load_locations, load_policies, load_strengths,
    };
    let read = |key: &str, path: &PathBuf| {
        std::fs::read_to_string(path)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
    };
    let bad = |key: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        invalid(key, format!("{}: {e}", path.display()))
    };
    let mut seed = ConditionalAccessSeed::default();
    let mut strengths = Vec::new();
    if let Some(path) = &raw.strengths {
        let text = read("conditional_access.strengths", path)?;
        strengths =
            load_strengths(&text).map_err(|e| bad("conditional_access.strengths", path, &e))?;
        for s in &strengths {
            s.validate().map_err(|e| {
                bad(
                    "conditional_access.strengths",
                    path,
                    &format!("{}: {}", e.field, e.message),
                )
            })?;
        }
        seed.strengths = strengths
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect();
    }
    let mut locations = Vec::new();
    if let Some(path) = &raw.named_locations {
        let text = read("conditional_access.named_locations", path)?;
        locations = load_locations(&text)
            .map_err(|e| bad("conditional_access.named_locations", path, &e))?;
        for l in &locations {
            l.validate().map_err(|e| {
                bad(
                    "conditional_access.named_locations",
                    path,
                    &format!("{}: {}", e.field, e.message),
                )
            })?;
        }
        seed.named_locations = locations
            .iter()
            .filter_map(|l| serde_json::to_value(l).ok())
            .collect();
    }
    if let Some(path) = &raw.policies {
        let text = read("conditional_access.policies", path)?;
        let policies =
            load_policies(&text).map_err(|e| bad("conditional_access.policies", path, &e))?;
        let set = StrengthSet::with_custom(strengths);
        for p in &policies {
            if p.id.is_empty() {
                return Err(bad(
                    "conditional_access.policies",
                    path,
                    &"every policy needs an id",
                ));
            }
            p.validate(&set, &locations).map_err(|e| {
                bad(
                    "conditional_access.policies",
                    path,
                    &format!("policy {:?}: {}: {}", p.display_name, e.field, e.message),
                )
            })?;
        }
        seed.policies = policies
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
    }
    Ok(seed)
}

type ConditionalAccessSeedError = ConfigError;

fn validate_tap(t: &RawTap) -> Result<TapPolicy, ConfigError> {
    let target = |id: &String| MethodTarget {
        id: id.clone(),
        target_type: "group".to_owned(),
        is_registration_required: false,
    };
    let policy = TapPolicy {
        state: if t.enabled {
            MethodState::Enabled
        } else {
            MethodState::Disabled
        },
        include_targets: t.include_groups.iter().map(target).collect(),
        exclude_targets: t.exclude_groups.iter().map(target).collect(),
        minimum_lifetime_in_minutes: t.minimum_lifetime_minutes,
        maximum_lifetime_in_minutes: t.maximum_lifetime_minutes,
        default_lifetime_in_minutes: t.default_lifetime_minutes,
        default_length: t.default_length,
        is_usable_once: t.is_usable_once,
    };
    policy.validate().map_err(|v| {
        let key = match v.field {
            "minimumLifetimeInMinutes" => "tap.minimum_lifetime_minutes",
            "maximumLifetimeInMinutes" => "tap.maximum_lifetime_minutes",
            "defaultLifetimeInMinutes" => "tap.default_lifetime_minutes",
            "defaultLength" => "tap.default_length",
            "includeTargets" => "tap.include_groups",
            "excludeTargets" => "tap.exclude_groups",
            _ => "tap",
        };
        invalid(key, v.message)
    })?;
    Ok(policy)
}

fn validate_server(raw: &RawServer) -> Result<ServerSettings, ConfigError> {
    let seconds = |key: &str, v: i64, min: i64, max: i64| {
        if (min..=max).contains(&v) {
            Ok(std::time::Duration::from_secs(v.unsigned_abs()))
        } else {
            Err(invalid(
                format!("server.{key}"),
                format!("must be between {min} and {max} seconds, got {v}"),
            ))
        }
    };
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
        // A bare address is a one-address range.
        let net = cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                invalid(
                    format!("server.trusted_proxies[{i}]"),
                    format!("{cidr:?} is not an IP address or CIDR range such as 10.0.0.0/8"),
                )
            })?;
        trusted_proxies.push(net.trunc());
    }
    if !(1..=1_000_000).contains(&raw.max_connections) {
        return Err(invalid(
            "server.max_connections",
            "must be between 1 and 1000000",
        ));
    }
    Ok(ServerSettings {
        trusted_proxies,
        header_read_timeout: seconds(
            "header_read_timeout_seconds",
            raw.header_read_timeout_seconds,
            1,
            300,
        )?,
        body_read_timeout: seconds(
            "body_read_timeout_seconds",
            raw.body_read_timeout_seconds,
            1,
            300,
        )?,
        request_timeout: seconds(
            "request_timeout_seconds",
            raw.request_timeout_seconds,
            1,
            600,
        )?,
        max_connections: usize::try_from(raw.max_connections).unwrap_or(1024),
        shutdown_grace: seconds("shutdown_grace_seconds", raw.shutdown_grace_seconds, 0, 600)?,
    })
}

fn validate_issuer(raw: &str) -> Result<String, ConfigError> {
    let url = Url::parse(raw)
        .map_err(|e| invalid("issuer", format!("{raw:?} is not an absolute URL ({e})")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(invalid(
            "issuer",
            "must use https (or http for local development)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "issuer",
            "must not have a query or fragment (OpenID Connect Discovery §3)",
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid("issuer", "must have a host"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// `token_endpoint_auth_method` with `client_secret`, `jwks`, `jwks_uri`:
/// one consistent way for the client to authenticate.
#[allow(clippy::type_complexity)]
fn validate_client_auth(
    key: &dyn Fn(&str) -> String,
    c: &RawClient,
    has_secret: bool,
) -> Result<
    (
        Option<crate::protocol::client_assertion::ClientAuthMethod>,
        Option<crate::protocol::client_assertion::ClientJwks>,
    ),
    ConfigError,
> {
    use crate::protocol::client_assertion::{self as ca, ClientAuthMethod as M, ClientJwks};
    let method = match &c.token_endpoint_auth_method {
        None => None,
        Some(m) => Some(M::parse(m).ok_or_else(|| {
            invalid(
                key("token_endpoint_auth_method"),
                format!(
                    "{m:?}: allowed values are {}",
                    M::ALL.map(M::as_str).join(", ")
                ),
            )
        })?),
    };
    let keys_given = c.jwks.is_some() || c.jwks_uri.is_some();
    match method {
        Some(M::PrivateKeyJwt) => {
            if has_secret {
                return Err(invalid(
                    key("client_secret"),
                    "a private_key_jwt client has no client_secret; remove it",
                ));
            }
        }
        Some(M::ClientSecretBasic | M::ClientSecretPost) if !has_secret => {
            return Err(invalid(
                key("client_secret"),
                "required with token_endpoint_auth_method = \"client_secret_basic\" or \"client_secret_post\"",
            ));
        }
        Some(M::None) if has_secret => {
            return Err(invalid(
                key("client_secret"),
                "a client with token_endpoint_auth_method = \"none\" is public and has no secret",
            ));
        }
        _ if keys_given => {
            let field = if c.jwks.is_some() { "jwks" } else { "jwks_uri" };
            return Err(invalid(
                key(field),
                "only for token_endpoint_auth_method = \"private_key_jwt\"",
            ));
        }
        _ => return Ok((method, None)),
    }
    let jwks = match (&c.jwks, &c.jwks_uri) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                key("jwks_uri"),
                "give either jwks or jwks_uri, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                key("jwks"),
                "private_key_jwt needs the client's public keys: jwks (a JWK Set) or jwks_uri",
            ));
        }
        (Some(set), None) => ClientJwks::Inline(std::sync::Arc::new(
            ca::parse_jwks(set).map_err(|m| invalid(key("jwks"), m))?,
        )),
        (None, Some(uri)) => {
            ClientJwks::Uri(ca::parse_jwks_uri(uri).map_err(|m| invalid(key("jwks_uri"), m))?)
        }
    };
    Ok((method, Some(jwks)))
}

fn validate_client(i: usize, c: RawClient) -> Result<Client, ConfigError> {
    let key = |field: &str| format!("clients[{i}].{field}");
    if c.client_id.trim().is_empty() || c.client_id.len() > 255 {
        return Err(invalid(key("client_id"), "must be 1–255 characters"));
    }
    let secret_digest = match c.client_secret.clone() {
        Some(s) if s.len() < 16 => {
            return Err(invalid(
                key("client_secret"),
                "must be at least 16 characters",
            ));
        }
        Some(s) => Some(crate::ids::SecretDigest::of(&s)),
        None => None,
    };
    client_from_raw(&key, c, secret_digest)
}

/// A client registered through RFC 7591, in the configuration's terms:
/// the fields registration may set (never permissions or
/// `introspect_all_tokens`).
#[derive(Debug, Clone)]
pub struct RegistrableClient {
    pub client_id: String,
    pub display_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub require_pushed_authorization_requests: bool,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub dpop_bound_access_tokens: bool,
}

/// Builds a registered client by the rules a `[[clients]]` entry follows
/// (errors name the metadata field, without a `clients[i].` prefix).
/// `secret_digest` is the digest of the secret Gatepass issued, if any.
pub fn registered_client(
    c: RegistrableClient,
    secret_digest: Option<crate::ids::SecretDigest>,
) -> Result<Client, ConfigError> {
    let raw = RawClient {
        client_id: c.client_id,
        client_secret: None,
        redirect_uris: c.redirect_uris,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        grant_types: c.grant_types,
        app_permissions: Vec::new(),
        delegated_permissions: Vec::new(),
        display_name: c.display_name,
        introspect_all_tokens: false,
        token_endpoint_auth_method: Some(c.token_endpoint_auth_method),
        jwks: c.jwks,
        jwks_uri: c.jwks_uri,
        require_pushed_authorization_requests: c.require_pushed_authorization_requests,
        backchannel_logout_uri: c.backchannel_logout_uri,
        backchannel_logout_session_required: c.backchannel_logout_session_required,
        dpop_bound_access_tokens: c.dpop_bound_access_tokens,
    };
    client_from_raw(&|field: &str| field.to_owned(), raw, secret_digest)
}

/// The rules every client follows, configured or registered; `key` names
/// a field in errors.
fn client_from_raw(
    key: &dyn Fn(&str) -> String,
    c: RawClient,
    secret_digest: Option<crate::ids::SecretDigest>,
) -> Result<Client, ConfigError> {
    let mut grant_types = BTreeSet::new();
    for g in &c.grant_types {
        let grant = GrantType::parse(g).ok_or_else(|| {
            invalid(
                key("grant_types"),
                format!(
                    "{g:?}: allowed values are {}",
                    GrantType::ALL.map(GrantType::as_str).join(", ")
                ),
            )
        })?;
        grant_types.insert(grant);
    }
    if grant_types.is_empty() {
        return Err(invalid(
            key("grant_types"),
            "must list at least one grant type",
        ));
    }
    let (token_endpoint_auth_method, jwks) =
        validate_client_auth(key, &c, secret_digest.is_some())?;
    if secret_digest.is_none()
        && jwks.is_none()
        && grant_types.contains(&GrantType::ClientCredentials)
    {
        return Err(invalid(
            key("grant_types"),
            "client_credentials needs a client_secret or private_key_jwt (a public client cannot authenticate)",
        ));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
        return Err(invalid(
            key("redirect_uris"),
            "authorization_code needs at least one redirect URI",
        ));
    }
    for (field, uris) in [
        ("redirect_uris", &c.redirect_uris),
        ("post_logout_redirect_uris", &c.post_logout_redirect_uris),
    ] {
        for uri in uris {
            let url = Url::parse(uri)
                .map_err(|_| invalid(key(field), format!("{uri:?} is not an absolute URL")))?;
            if url.fragment().is_some() {
                return Err(invalid(
                    key(field),
                    format!("{uri:?} must not have a fragment (RFC 6749 §3.1.2)"),
                ));
            }
        }
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        crate::logout::settings::validate_uri(&key("backchannel_logout_uri"), uri)?;
    }
    for (field, perms) in [
        ("app_permissions", &c.app_permissions),
        ("delegated_permissions", &c.delegated_permissions),
    ] {
        for p in perms {
            if !GRAPH_PERMISSIONS.contains(&p.as_str()) {
                return Err(invalid(
                    key(field),
                    format!(
                        "{p:?} is not a known Graph permission; known: {}",
                        GRAPH_PERMISSIONS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(Client {
        display_name: c.display_name.unwrap_or_else(|| c.client_id.clone()),
        client_id: c.client_id,
        secret_digest,
        redirect_uris: c.redirect_uris,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        grant_types,
        app_permissions: c.app_permissions.into_iter().collect(),
        delegated_permissions: c.delegated_permissions.into_iter().collect(),
        introspect_all_tokens: c.introspect_all_tokens,
        token_endpoint_auth_method,
        jwks,
        require_pushed_authorization_requests: c.require_pushed_authorization_requests,
        backchannel_logout_uri: c.backchannel_logout_uri,
        backchannel_logout_session_required: c.backchannel_logout_session_required,
        dpop_bound_access_tokens: c.dpop_bound_access_tokens,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MINIMAL: &str = r#"
issuer = "http://localhost:8080"
listen = "127.0.0.1:8080"
[store]
backend = "embedded"
path = "data/gatepass.redb"
[keys]
dir = "keys"
"#;

    #[test]
    fn store_cache_is_validated_and_embedded_only() {
        let with = |extra: &str| load(&MINIMAL.replace("[keys]", &format!("{extra}\n[keys]")), &[]);
        let s = with("cache_mb = 4096").unwrap();
        assert!(matches!(
            s.store,
            StoreSettings::Embedded {
                cache_mb: Some(4096),
                ..
            }
        ));
        let s = load(MINIMAL, &[("GATEPASS_STORE__CACHE_MB", "2048")]).unwrap();
        assert!(matches!(
            s.store,
            StoreSettings::Embedded {
                cache_mb: Some(2048),
                ..
            }
        ));
        for bad in ["cache_mb = 0", "cache_mb = 2000000"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("store.cache_mb"), "{bad}: {e}");
        }
        let redis = MINIMAL.replace(
            "backend = \"embedded\"\npath = \"data/gatepass.redb\"",
            "backend = \"redis\"\nurl = \"redis://127.0.0.1/\"\ncache_mb = 64",
        );
        let e = load(&redis, &[]).unwrap_err().to_string();
        assert!(
            e.contains("store.cache_mb") && e.contains("embedded"),
            "{e}"
        );
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_toml(
            text,
            Path::new("test.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_demo_app_is_on_for_a_local_issuer_and_off_for_others() {
        let local = load(MINIMAL, &[]).unwrap();
        assert!(local.demo && local.client(DEMO_CLIENT_ID).is_some());
        let public = load(
            &MINIMAL.replace("http://localhost:8080", "https://login.example.com"),
            &[],
        )
        .unwrap();
        assert!(!public.demo && public.client(DEMO_CLIENT_ID).is_none());
        let forced = load(&format!("{MINIMAL}\n[demo]\nenabled = false\n"), &[]).unwrap();
        assert!(!forced.demo && forced.client(DEMO_CLIENT_ID).is_none());
    }

    #[test]
    fn relative_paths_start_at_the_configuration_file() {
        let s = Settings::from_toml(
            MINIMAL,
            Path::new("/etc/gatepass/gatepass.toml"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(s.keys_dir, Path::new("/etc/gatepass/keys"));
        assert!(
            matches!(&s.store, StoreSettings::Embedded { path, .. }
                if path == Path::new("/etc/gatepass/data/gatepass.redb")),
            "{:?}",
            s.store
        );
        let absolute = MINIMAL.replace("dir = \"keys\"", "dir = \"/var/lib/gatepass/keys\"");
        let s = Settings::from_toml(
            &absolute,
            Path::new("/etc/gatepass/gatepass.toml"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(s.keys_dir, Path::new("/var/lib/gatepass/keys"));
    }

    #[test]
    fn config_minimal_gets_documented_defaults() {
        let s = load(MINIMAL, &[]).unwrap();
        assert_eq!(s.issuer, "http://localhost:8080");
        assert_eq!(s.key_algorithm, Algorithm::Es256);
        assert_eq!(
            s.password_hashing,
            PasswordHashing {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1,
                max_concurrent: PasswordHashing::default_concurrency(19456),
                max_queued: 4 * PasswordHashing::default_concurrency(19456),
            }
        );
        // One hash per core by default, within 256 MiB of hashing memory.
        assert!(PasswordHashing::default_concurrency(19456) >= 1);
        assert_eq!(PasswordHashing::default_concurrency(256 * 1024), 1);
        assert_eq!(s.tokens.access_token, time::Duration::minutes(10));
    }

    #[test]
    fn config_default_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gatepass.toml");
        let s = Settings::load(&path, std::iter::empty()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert!(s.client("demo-app").is_some());
    }

    #[test]
    fn config_unknown_key_is_named() {
        let err = load(
            &format!("{MINIMAL}\n[session]\nlifetime_minutez = 3\n"),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("lifetime_minutez"), "{err}");
    }

    #[test]
    fn config_env_override_applies_and_unknown_env_is_refused() {
        let s = load(
            MINIMAL,
            &[
                ("GATEPASS_STORE__PATH", "/tmp/x.redb"),
                ("GATEPASS_SESSION__LIFETIME_MINUTES", "5"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.store,
            StoreSettings::Embedded {
                path: "/tmp/x.redb".into(),
                cache_mb: None,
            }
        );
        assert_eq!(s.session_lifetime, time::Duration::minutes(5));
        let err = load(MINIMAL, &[("GATEPASS_ISUER", "x")]).unwrap_err();
        assert!(err.to_string().contains("GATEPASS_ISUER"), "{err}");
        let err = load(MINIMAL, &[("GATEPASS_WORKERS", "many")]).unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        // tooling variables are not configuration
        load(
            MINIMAL,
            &[
                ("GATEPASS_REQUIRE_REDIS", "1"),
                ("GATEPASS_TEST_REDIS_URL", "redis://x"),
            ],
        )
        .unwrap();
    }

    #[test]
    fn config_conditional_access_seed_files_load_and_bad_ones_name_the_key() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let text = format!(
            "{MINIMAL}[conditional_access]\npolicies = \"{}\"\nstrengths = \"{}\"\nnamed_locations = \"{}\"\n",
            dir.join("ca-recommended-tap-registration.json").display(),
            dir.join("ca-strengths.json").display(),
            dir.join("named-locations.json").display()
        );
        let s = load(&text, &[]).unwrap();
        assert_eq!(s.conditional_access_seed.policies.len(), 2);
        assert!(!s.conditional_access_seed.strengths.is_empty());
        // A policy file referring to strengths that were not given.
        let text = format!(
            "{MINIMAL}[conditional_access]\npolicies = \"{}\"\n",
            dir.join("ca-recommended-tap-registration.json").display()
        );
        let err = load(&text, &[]).unwrap_err();
        assert!(
            err.to_string().contains("conditional_access.policies"),
            "{err}"
        );
        let err = load(
            &format!("{MINIMAL}[conditional_access]\npolicies = \"/nonexistent.json\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("conditional_access.policies"),
            "{err}"
        );
    }

    #[test]
    fn config_invalid_values_name_the_key() {
        let cases = [
            (
                MINIMAL.replace("http://localhost:8080", "localhost"),
                "issuer",
            ),
            (MINIMAL.replace("127.0.0.1:8080", "nowhere"), "listen"),
            (
                MINIMAL.replace("\"embedded\"", "\"mongo\""),
                "store.backend",
            ),
            (
                format!("{MINIMAL}algorithm = \"HS256\"\n"),
                "keys.algorithm",
            ),
            (
                format!("{MINIMAL}[session]\nlifetime_minutes = 0\n"),
                "session.lifetime_minutes",
            ),
            (
                format!("{MINIMAL}[[clients]]\nclient_id = \"a\"\nredirect_uris = [\"/cb\"]\n"),
                "clients[0].redirect_uris",
            ),
            (
                format!(
                    "{MINIMAL}[[clients]]\nclient_id = \"a\"\ngrant_types = [\"client_credentials\"]\n"
                ),
                "clients[0].grant_types",
            ),
            (
                format!(
                    "{MINIMAL}[[clients]]\nclient_id = \"a\"\nclient_secret = \"0123456789abcdef\"\ngrant_types = [\"implicit\"]\n"
                ),
                "clients[0].grant_types",
            ),
            (
                format!(
                    "{MINIMAL}[[clients]]\nclient_id = \"a\"\nclient_secret = \"0123456789abcdef\"\ngrant_types = [\"client_credentials\"]\napp_permissions = [\"Everything.All\"]\n"
                ),
                "clients[0].app_permissions",
            ),
            (
                format!("{MINIMAL}[password_hashing]\nmemory_kib = 1\n"),
                "password_hashing",
            ),
            (
                format!("{MINIMAL}[tap]\ndefault_length = 4\n"),
                "tap.default_length",
            ),
            (
                format!("{MINIMAL}[tap]\ndefault_lifetime_minutes = 5000\n"),
                "tap.default_lifetime_minutes",
            ),
            (
                format!("{MINIMAL}[tap]\ninclude_groups = [\"staff\"]\n"),
                "tap.include_groups",
            ),
            (
                format!("{MINIMAL}[throttling]\nmax_failures = 0\n"),
                "throttling.max_failures",
            ),
        ];
        for (text, key) in cases {
            let err = load(&text, &[]).unwrap_err();
            assert!(err.to_string().contains(key), "expected {key} in: {err}");
        }
    }

    #[test]
    fn config_dpop_bound_access_tokens_is_read_and_a_bad_value_names_the_key() {
        let client = "[[clients]]\nclient_id = \"a\"\nclient_secret = \"0123456789abcdef\"\ngrant_types = [\"client_credentials\"]\n";
        let on = load(
            &format!("{MINIMAL}{client}dpop_bound_access_tokens = true\n"),
            &[],
        )
        .unwrap();
        assert!(on.client("a").unwrap().dpop_bound_access_tokens);
        let off = load(&format!("{MINIMAL}{client}"), &[]).unwrap();
        assert!(!off.client("a").unwrap().dpop_bound_access_tokens);
        let err = load(
            &format!("{MINIMAL}{client}dpop_bound_access_tokens = \"yes\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("dpop_bound_access_tokens"),
            "expected the key in: {err}"
        );
    }
}
