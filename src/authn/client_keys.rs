//! `private_key_jwt` clients: their public keys, and assertions accepted once.
//!
//! [`ClientAssertions::verify`] is the one entry point: it finds the keys of
//! the client (inline `jwks`, or `jwks_uri` through [`JwksCache`]), checks
//! the assertion with the pure rules of
//! [`crate::protocol::client_assertion`], and only then records its `jti`
//! with the store's atomic create-if-absent, expiring with the assertion:
//! of any number of requests carrying one assertion, on any number of
//! instances sharing a store, exactly one is accepted. A refused assertion
//! writes nothing.
//!
//! `jwks_uri` keys are fetched with a timeout and a size cap, cached for
//! [`JWKS_TTL_SECS`], and fetched again when an assertion names a `kid` the
//! cached set lacks (the client rotated) — at most once per
//! [`MIN_REFETCH_SECS`] per client, since the `kid` is chosen by whoever
//! sends the request. Fetches for one client are single-flight.

use crate::config::Client;
use crate::ids::SecretDigest;
use crate::protocol::client_assertion::{
    self as rules, AssertionError, AssertionHeader, ClientJwks, VerifiedAssertion,
};
use crate::store::{Durability, Store};
use jsonwebtoken::jwk::JwkSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

/// Store table of accepted assertion `jti`s (keys are digests).
const JTI_TABLE: crate::store::Table = "client_assertion_jti";

/// How long fetched keys are used before they are fetched again.
pub const JWKS_TTL_SECS: i64 = 300;
/// Least time between two fetches of one client's keys for an unknown `kid`.
pub const MIN_REFETCH_SECS: i64 = 10;
/// A `jwks_uri` must answer within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest `jwks_uri` response read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Why a client assertion could not be checked or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error(transparent)]
    Assertion(#[from] AssertionError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

#[derive(Clone)]
struct Fetched {
    keys: Arc<JwkSet>,
    /// Unix seconds of the fetch (clock time, so tests can move past TTLs).
    at: i64,
}

/// One client's cache slot; its lock is held while fetching.
/// What is known of one client's `jwks_uri`: the last keys fetched, and
/// when a fetch last failed.
#[derive(Default)]
struct Known {
    fetched: Option<Fetched>,
    /// A failed fetch counts against the refetch limit like a successful
    /// one: otherwise requests with made-up `kid`s (no signature needed to
    /// name one) would each send a request to the client's server and hold
    /// its lock for the fetch timeout.
    failed_at: Option<i64>,
}

type Slot = Arc<tokio::sync::Mutex<Known>>;

/// Keys fetched from clients' `jwks_uri`, per client.
#[derive(Clone, Default)]
pub struct JwksCache {
    /// One async lock per client: a fetch in progress makes the others wait
    /// for its result rather than fetch too.
    entries: Arc<Mutex<HashMap<String, Slot>>>,
    http: Arc<OnceLock<Option<reqwest::Client>>>,
}

impl JwksCache {
    fn http(&self) -> Option<&reqwest::Client> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(FETCH_TIMEOUT)
                    // A redirect could lead anywhere; the configured URL is the one.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| tracing::error!(error = %e, "cannot build the HTTP client for jwks_uri"))
                    .ok()
            })
            .as_ref()
    }

    fn entry(&self, client_id: &str) -> Slot {
        let mut entries = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.entry(client_id.to_owned()).or_default().clone()
    }

    /// The keys at `uri` for `client_id`: cached, or fetched when the cache
    /// is stale or lacks `kid`.
    pub async fn keys(
        &self,
        client_id: &str,
        uri: &url::Url,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<JwkSet>, AssertionError> {
        // Per client *and* URI: a registered client that moves its
        // `jwks_uri` (RFC 7592 update) must not keep the old URI's keys.
        let entry = self.entry(&format!("{client_id} {uri}"));
        let mut slot = entry.lock().await;
        let failed_recently = slot.failed_at.is_some_and(|t| now < t + MIN_REFETCH_SECS);
        if let Some(f) = slot.fetched.as_ref() {
            let fresh = now < f.at + JWKS_TTL_SECS;
            let knows_kid = kid.is_none_or(|k| rules::has_kid(&f.keys, k));
            let recently = now < f.at + MIN_REFETCH_SECS;
            if fresh && (knows_kid || recently || failed_recently) {
                return Ok(f.keys.clone());
            }
        }
        if failed_recently {
            return Err(AssertionError::KeysUnavailable);
        }
        let keys = match self.fetch(client_id, uri).await {
            Ok(keys) => Arc::new(keys),
            Err(e) => {
                slot.failed_at = Some(now);
                return Err(e);
            }
        };
        slot.fetched = Some(Fetched {
            keys: keys.clone(),
            at: now,
        });
        slot.failed_at = None;
        Ok(keys)
    }

    async fn fetch(&self, client_id: &str, uri: &url::Url) -> Result<JwkSet, AssertionError> {
        let fail = |why: &str| {
            tracing::warn!(client = client_id, jwks_uri = %uri, reason = why, "cannot fetch the client's keys");
            AssertionError::KeysUnavailable
        };
        let http = self.http().ok_or_else(|| fail("no HTTP client"))?;
        let mut response = http
            .get(uri.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| fail(&e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(&format!("status {}", response.status())));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(fail("response too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(&e.to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(fail("response too large"));
            }
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| fail("not JSON"))?;
        rules::parse_jwks(&value).map_err(|m| fail(&m))
    }
}

/// Verifies client assertions and remembers their `jti`s.
#[derive(Clone)]
pub struct ClientAssertions {
    store: Arc<dyn Store>,
    cache: JwksCache,
}

impl ClientAssertions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: JwksCache::default(),
        }
    }

    /// Accepts `assertion` as `client`'s authentication, once. `audiences`
    /// are the values `aud` may take (issuer, token endpoint, the endpoint
    /// called).
    pub async fn verify(
        &self,
        client: &Client,
        assertion: &str,
        audiences: &[String],
        now: OffsetDateTime,
    ) -> Result<(), ClientAuthError> {
        let t = now.unix_timestamp();
        let header = rules::header(assertion)?;
        let verified = match &client.jwks {
            Some(ClientJwks::Inline(keys)) => {
                rules::verify(assertion, &header, keys, &client.client_id, audiences, t)?
            }
            Some(ClientJwks::Uri(uri)) => {
                self.verify_fetched(client, uri, assertion, &header, audiences, t)
                    .await?
            }
            None => return Err(AssertionError::BadSignature.into()),
        };
        // RFC 7523 §3 item 7: the jti once, until the assertion expires.
        let key = SecretDigest::of(&format!("{}\n{}", client.client_id, verified.jti));
        let first = self
            .store
            .insert(
                JTI_TABLE,
                key.as_str(),
                b"1".to_vec(),
                Some(verified.exp),
                Durability::Durable,
                t,
            )
            .await?;
        match first {
            Some(_) => Ok(()),
            None => Err(AssertionError::Replayed.into()),
        }
    }

    async fn verify_fetched(
        &self,
        client: &Client,
        uri: &url::Url,
        assertion: &str,
        header: &AssertionHeader,
        audiences: &[String],
        now: i64,
    ) -> Result<VerifiedAssertion, AssertionError> {
        let keys = self
            .cache
            .keys(&client.client_id, uri, header.kid.as_deref(), now)
            .await?;
        rules::verify(assertion, header, &keys, &client.client_id, audiences, now)
    }
}
