//! The client registry: which relying party a `client_id` names.
//!
//! Two sources, one answer. The configuration's `[[clients]]` (and the demo
//! client) are held in memory and answered first; clients registered through
//! RFC 7591 live in the store (`registered_clients`, keyed by client id),
//! so every instance sharing a store knows them the moment they are
//! registered and forgets them the moment they are deleted — nothing is
//! cached. Every interface that takes a client id (`/authorize`, the token,
//! PAR, device, revocation and introspection endpoints, bearer tokens at
//! userinfo and the Graph API, back-channel logout) asks [`Clients::get`].
//!
//! Registered clients:
//! * get random ids (UUIDs, like Entra's application ids), never one a
//!   configured client has, so registration can neither shadow nor take
//!   over a configured client; the RFC 7592 endpoints never touch a
//!   configured client either;
//! * keep only digests of their `client_secret` and
//!   `registration_access_token` (each shown once, in the answer that
//!   issued it), compared in constant time;
//! * are served only while registration is on (`[registration]
//!   initial_access_tokens` non-empty): turning it off is a kill switch for
//!   every registered client at once, and turning it on again restores
//!   them.
//!
//! ```text
//!  POST /register ──insert-if-absent {id}──▶ registered
//!  PUT  /register/{id} ──CAS(version)──▶ registered (metadata replaced)
//!  DELETE /register/{id} ──CAS delete──▶ gone: token requests, /authorize
//!                                          and its tokens are refused
//! ```

use crate::clock::Clock;
use crate::config::{Client, Settings};
use crate::ids::{OpaqueSecret, SecretDigest, secrets_equal};
use crate::protocol::registration::{ClientMetadata, MetadataError};
use crate::store::{Durability, Store, StoreError, StoreResult, Table, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Registered clients, keyed by client id.
pub const REGISTERED: Table = "registered_clients";

/// A registered client as stored: its metadata and the digests of its
/// secrets (never the secrets).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Registered {
    metadata: ClientMetadata,
    secret_digest: Option<SecretDigest>,
    registration_token: SecretDigest,
    issued_at: i64,
}

/// A registered client as its registration access token shows it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub metadata: ClientMetadata,
    pub issued_at: i64,
    pub has_secret: bool,
}

/// What registering (or replacing, when it issues a new secret) hands out
/// once: the plaintext secrets, beside the client.
pub struct Issued {
    pub client: RegisteredClient,
    /// The new `client_secret`, when one was issued.
    pub client_secret: Option<OpaqueSecret>,
    /// The `registration_access_token` (on registration only).
    pub registration_access_token: Option<OpaqueSecret>,
}

/// Why a registration step was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Unknown client, a configured client, or the wrong registration
    /// access token: one answer, so existence is not revealed.
    #[error("the registration access token is not valid for this client")]
    Unauthorized,
    #[error("client_id in the body must be the client's id (RFC 7592 §2.2)")]
    ClientIdMismatch,
    #[error("client_secret in the body must be the client's current secret (RFC 7592 §2.2)")]
    SecretMismatch,
    #[error("the random source failed")]
    Random,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistrationError {
    /// A stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::Metadata(m) => m.code(),
            RegistrationError::Unauthorized => "registration.unauthorized",
            RegistrationError::ClientIdMismatch => "registration.client_id_mismatch",
            RegistrationError::SecretMismatch => "registration.secret_mismatch",
            RegistrationError::Random => "registration.random",
            RegistrationError::Store(e) => e.code(),
        }
    }
}

/// Rounds of compare-and-swap before a contended update gives up.
const ATTEMPTS: usize = 8;

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    configured: HashMap<String, Arc<Client>>,
    /// Registration is on: registered clients are served and managed.
    registration: bool,
}

impl Clients {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: &Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                configured: settings
                    .clients
                    .iter()
                    .map(|(id, c)| (id.clone(), Arc::new(c.clone())))
                    .collect(),
                registration: settings.registration.enabled(),
            }),
        }
    }

    /// The client `client_id` names: a configured one, else a registered
    /// one (while registration is on).
    pub async fn get(&self, client_id: &str) -> StoreResult<Option<Arc<Client>>> {
        if let Some(c) = self.inner.configured.get(client_id) {
            return Ok(Some(c.clone()));
        }
        if !self.may_be_registered(client_id) {
            return Ok(None);
        }
        let Some(record) = self.load(client_id).await? else {
            return Ok(None);
        };
        record
            .metadata
            .to_client(client_id, record.secret_digest)
            .map(|c| Some(Arc::new(c)))
            // Stored metadata was checked when it was written; failing now
            // means the rules changed or the record was altered.
            .map_err(|e| StoreError::Corrupt(format!("{REGISTERED}: {client_id}: {e}")))
    }

    /// The configured clients (not the registered ones).
    pub fn configured(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.inner.configured.values()
    }

    /// Every client: the configured ones and, while registration is on,
    /// the registered ones; ordered by client id.
    pub async fn list(&self) -> StoreResult<Vec<Arc<Client>>> {
        let mut all: Vec<Arc<Client>> = self.configured().cloned().collect();
        if self.inner.registration {
            let now = self.inner.clock.now().unix_timestamp();
            for (id, record) in self.inner.store.scan(REGISTERED, now).await? {
                if self.inner.configured.contains_key(&id) {
                    continue;
                }
                let r: Registered = decode(REGISTERED, &record.value)?;
                match r.metadata.to_client(&id, r.secret_digest) {
                    Ok(c) => all.push(Arc::new(c)),
                    Err(e) => {
                        tracing::warn!(client = %id, error = %e, "unusable registered client skipped")
                    }
                }
            }
        }
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(all)
    }

    /// Whether clients may be registered (and registered ones are served).
    pub fn registration_enabled(&self) -> bool {
        self.inner.registration
    }

    /// Registered ids are UUIDs and never a configured id: anything else
    /// is answered without a store read.
    fn may_be_registered(&self, client_id: &str) -> bool {
        self.inner.registration
            && !self.inner.configured.contains_key(client_id)
            && uuid::Uuid::parse_str(client_id).is_ok()
    }

    async fn load(&self, client_id: &str) -> StoreResult<Option<Registered>> {
        let now = self.inner.clock.now().unix_timestamp();
        match self.inner.store.get(REGISTERED, client_id, now).await? {
            Some(r) => decode(REGISTERED, &r.value).map(Some),
            None => Ok(None),
        }
    }

    /// A registered client may not go by a configured client's name or id:
    /// users read the name on the sign-in and device-confirmation pages as
    /// the application's identity.
    fn check_name(&self, metadata: &ClientMetadata) -> Result<(), RegistrationError> {
        let Some(name) = metadata.client_name.as_deref() else {
            return Ok(());
        };
        let taken = |other: &str| other.trim().eq_ignore_ascii_case(name.trim());
        if self
            .inner
            .configured
            .values()
            .any(|c| taken(&c.display_name) || taken(&c.client_id))
        {
            return Err(MetadataError::InvalidClientMetadata(
                "client_name is the name of a configured application; choose another".into(),
            )
            .into());
        }
        Ok(())
    }

    /// Registers a client with checked `metadata` (RFC 7591 §3.2.1):
    /// a fresh id, a secret when its method needs one, and a registration
    /// access token.
    pub async fn register(
        &self,
        metadata: ClientMetadata,
        now: i64,
    ) -> Result<Issued, RegistrationError> {
        self.check_name(&metadata)?;
        let secret = if metadata.has_secret() {
            Some(OpaqueSecret::generate().map_err(|_| RegistrationError::Random)?)
        } else {
            None
        };
        let token = OpaqueSecret::generate().map_err(|_| RegistrationError::Random)?;
        let record = Registered {
            metadata,
            secret_digest: secret.as_ref().map(OpaqueSecret::digest),
            registration_token: token.digest(),
            issued_at: now,
        };
        let value = encode(&record)?;
        for _ in 0..ATTEMPTS {
            let id = crate::ids::random_uuid()
                .map_err(|_| RegistrationError::Random)?
                .to_string();
            // A configured client's id is never handed out (one that is a
            // UUID could, in theory, be drawn).
            if self.inner.configured.contains_key(&id) {
                continue;
            }
            let created = self
                .inner
                .store
                .insert(
                    REGISTERED,
                    &id,
                    value.clone(),
                    None,
                    Durability::Durable,
                    now,
                )
                .await?;
            if created.is_some() {
                return Ok(Issued {
                    client: RegisteredClient {
                        client_id: id,
                        metadata: record.metadata,
                        issued_at: now,
                        has_secret: secret.is_some(),
                    },
                    client_secret: secret,
                    registration_access_token: Some(token),
                });
            }
        }
        Err(RegistrationError::Store(StoreError::Unavailable(
            "could not draw an unused client id; retry".into(),
        )))
    }

    /// The registered client `client_id`, if `token` is its registration
    /// access token (RFC 7592 §2.1).
    pub async fn read(
        &self,
        client_id: &str,
        token: &str,
    ) -> Result<RegisteredClient, RegistrationError> {
        let (_, record) = self.authorized(client_id, token).await?;
        Ok(view(client_id, record))
    }

    /// Replaces the metadata of `client_id` (RFC 7592 §2.2). A client whose
    /// new method needs a secret keeps its secret, or gets one if it had
    /// none; a client whose method no longer needs one loses it.
    pub async fn replace(
        &self,
        client_id: &str,
        token: &str,
        metadata: ClientMetadata,
        presented_secret: Option<&str>,
        now: i64,
    ) -> Result<Issued, RegistrationError> {
        self.check_name(&metadata)?;
        for _ in 0..ATTEMPTS {
            let (version, current) = self.authorized(client_id, token).await?;
            if let Some(given) = presented_secret {
                let matches = current
                    .secret_digest
                    .as_ref()
                    .is_some_and(|d| secrets_equal(SecretDigest::of(given).as_str(), d.as_str()));
                if !matches {
                    return Err(RegistrationError::SecretMismatch);
                }
            }
            let (secret_digest, issued) = match (metadata.has_secret(), current.secret_digest) {
                (true, Some(d)) => (Some(d), None),
                (true, None) => {
                    let s = OpaqueSecret::generate().map_err(|_| RegistrationError::Random)?;
                    (Some(s.digest()), Some(s))
                }
                (false, _) => (None, None),
            };
            let record = Registered {
                metadata: metadata.clone(),
                secret_digest,
                registration_token: current.registration_token,
                issued_at: current.issued_at,
            };
            let swapped = self
                .inner
                .store
                .compare_and_swap(
                    REGISTERED,
                    client_id,
                    version,
                    Some(encode(&record)?),
                    None,
                    Durability::Durable,
                    now,
                )
                .await?;
            if swapped.is_some() {
                return Ok(Issued {
                    client: view(client_id, record),
                    client_secret: issued,
                    registration_access_token: None,
                });
            }
        }
        Err(RegistrationError::Store(StoreError::Unavailable(
            "too much contention updating the client; retry".into(),
        )))
    }

    /// Deletes `client_id` (RFC 7592 §2.3); from then on it is unknown
    /// everywhere, and its tokens are refused.
    pub async fn delete(
        &self,
        client_id: &str,
        token: &str,
        now: i64,
    ) -> Result<(), RegistrationError> {
        for _ in 0..ATTEMPTS {
            let (version, _) = self.authorized(client_id, token).await?;
            let deleted = self
                .inner
                .store
                .compare_and_swap(
                    REGISTERED,
                    client_id,
                    version,
                    None,
                    None,
                    Durability::Durable,
                    now,
                )
                .await?;
            if deleted.is_some() {
                return Ok(());
            }
        }
        Err(RegistrationError::Store(StoreError::Unavailable(
            "too much contention deleting the client; retry".into(),
        )))
    }

    /// The stored record and its version, if `token` is the client's
    /// registration access token. Unknown, configured and wrong-token all
    /// answer [`RegistrationError::Unauthorized`].
    async fn authorized(
        &self,
        client_id: &str,
        token: &str,
    ) -> Result<(u64, Registered), RegistrationError> {
        if !self.may_be_registered(client_id) {
            return Err(RegistrationError::Unauthorized);
        }
        let now = self.inner.clock.now().unix_timestamp();
        let Some(record) = self.inner.store.get(REGISTERED, client_id, now).await? else {
            return Err(RegistrationError::Unauthorized);
        };
        let r: Registered = decode(REGISTERED, &record.value)?;
        if !secrets_equal(
            SecretDigest::of(token).as_str(),
            r.registration_token.as_str(),
        ) {
            return Err(RegistrationError::Unauthorized);
        }
        Ok((record.version, r))
    }
}

fn view(client_id: &str, r: Registered) -> RegisteredClient {
    RegisteredClient {
        client_id: client_id.to_owned(),
        has_secret: r.secret_digest.is_some(),
        metadata: r.metadata,
        issued_at: r.issued_at,
    }
}
