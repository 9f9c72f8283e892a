//! Device authorizations (RFC 8628): the record a device polls while its
//! user signs in elsewhere.
//!
//! ```text
//!   POST /device_authorization ──▶ Pending ──user Allows──▶ Approved ──poll──▶ Redeemed{grant}
//!                                     │   └──user Denies──▶ Denied
//!                                     └── (expires_at passes) ⇒ expired_token
//! ```
//!
//! Two secrets name a device authorization: the `device_code` the device
//! holds (256 random bits) and the short `user_code` the user types. The
//! store keeps only their digests: the record under the device code's
//! digest, and an index from the user code's digest to that key. Every
//! transition is one versioned store step, so of concurrent polls of an
//! approved code exactly one creates a grant, and a user's Allow cannot
//! race a Deny.
//!
//! A user code has 20⁸ ≈ 2.6·10¹⁰ values (RFC 8628 §6.1's consonant
//! alphabet, no vowels so no words, no digits so no 0/O or 1/I confusions);
//! what keeps guessing hopeless is the per-source limit on codes entered
//! (`throttling.max_user_codes_per_source_per_minute`) and the short life.

use crate::ids::{GrantId, OpaqueSecret, SecretDigest, fill_random};
use crate::protocol::scope::Scope;
use crate::store::{Durability, Precondition, Store, StoreError, Txn, decode, encode};
use crate::tokens::grants::Authorization;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

/// Device authorizations, by the digest of the device code.
pub const DEVICE_CODES: &str = "device_code";
/// Digest of a normalised user code → the device code's digest.
pub const USER_CODES: &str = "device_user_code";

/// How long a device authorization waits for its user (RFC 8628 §3.2
/// `expires_in`).
pub const LIFETIME: time::Duration = time::Duration::minutes(10);
/// The initial polling interval in seconds (RFC 8628 §3.2 `interval`).
pub const INTERVAL_SECS: i64 = 5;
/// RFC 8628 §3.5: each `slow_down` adds this much to the interval.
const SLOW_DOWN_SECS: i64 = 5;
/// How long a finished or expired record is kept, so a late poll is told
/// `expired_token` or that the code was used rather than "unknown".
const MEMORY: time::Duration = time::Duration::hours(1);

/// RFC 8628 §6.1: 20 consonants, no vowels (no words), no look-alikes.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// What the user has done with the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DeviceState {
    Pending,
    Approved {
        authorization: Box<Authorization>,
    },
    Denied,
    /// Tokens were issued; the code is spent.
    Redeemed {
        grant: GrantId,
    },
}

/// One device authorization request as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    pub client_id: String,
    pub scope: Scope,
    pub expires_at: i64,
    /// The current polling interval (seconds); `slow_down` raises it.
    pub interval: i64,
    pub last_poll: Option<i64>,
    /// The index entry to remove once the user has answered.
    pub user_code: SecretDigest,
    pub state: DeviceState,
}

/// A device authorization request just made: the secrets, shown once.
pub struct Started {
    pub device_code: OpaqueSecret,
    /// As displayed: `XXXX-XXXX`.
    pub user_code: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A pending request found by its user code.
pub struct Found {
    /// The record's key (the device code's digest): not a secret, only a
    /// name; approving needs a signed-in session besides.
    pub key: String,
    pub request: DeviceAuthorization,
}

/// What a poll of the token endpoint gets.
pub enum Poll {
    /// Approved and now spent: mint tokens for this grant.
    Approved {
        key: String,
        version: u64,
        authorization: Box<Authorization>,
    },
    Pending,
    SlowDown,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device_code is invalid")]
    Unknown,
    #[error("device_code was issued to another client")]
    ClientMismatch,
    #[error("the device code has expired")]
    Expired,
    #[error("the user denied the request")]
    Denied,
    #[error("the device code was already used")]
    Used,
    #[error("the code was not found or has expired")]
    UserCodeUnknown,
    #[error("this code has already been answered")]
    Answered,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("random source failed")]
    Random,
}

impl DeviceError {
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::Unknown => "device.unknown",
            DeviceError::ClientMismatch => "device.client_mismatch",
            DeviceError::Expired => "device.expired",
            DeviceError::Denied => "device.denied",
            DeviceError::Used => "device.used",
            DeviceError::UserCodeUnknown => "device.user_code_unknown",
            DeviceError::Answered => "device.answered",
            DeviceError::Store(e) => e.code(),
            DeviceError::Random => "device.random",
        }
    }
}

impl From<crate::ids::RandomError> for DeviceError {
    fn from(_: crate::ids::RandomError) -> Self {
        DeviceError::Random
    }
}

/// The canonical form of a typed user code: letters upper-cased, hyphens
/// and white space dropped. `None` if anything else remains or the length
/// is wrong (so no store lookup is spent on it).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `XXXXXXXX` → `XXXX-XXXX`.
fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(USER_CODE_LEN / 2);
    format!("{a}-{b}")
}

fn generate_user_code() -> Result<String, crate::ids::RandomError> {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        let mut b = [0u8; 16];
        fill_random(&mut b)?;
        // Rejection sampling: 240 = 12 × 20, so every letter is equally likely.
        for byte in b.iter().filter(|&&x| x < 240) {
            if code.len() == USER_CODE_LEN {
                break;
            }
            code.push(char::from(ALPHABET[usize::from(*byte % 20)]));
        }
    }
    Ok(code)
}

/// The device-flow records of one store.
#[derive(Clone)]
pub struct DeviceAuthorizations {
    store: Arc<dyn Store>,
}

impl DeviceAuthorizations {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Stores a new pending request for `client_id`.
    pub async fn start(
        &self,
        client_id: &str,
        scope: Scope,
        now: OffsetDateTime,
    ) -> Result<Started, DeviceError> {
        let t = now.unix_timestamp();
        let expires_at = (now + LIFETIME).unix_timestamp();
        let device_code = OpaqueSecret::generate()?;
        let key = device_code.digest();
        // A user code must name one live request: create-if-absent, and
        // draw again on the (rare) collision.
        for _ in 0..8 {
            let user_code = generate_user_code()?;
            let user_digest = SecretDigest::of(&user_code);
            let record = DeviceAuthorization {
                client_id: client_id.to_owned(),
                scope: scope.clone(),
                expires_at,
                interval: INTERVAL_SECS,
                last_poll: None,
                user_code: user_digest.clone(),
                state: DeviceState::Pending,
            };
            let txn = Txn::new(Durability::Ephemeral)
                .require(USER_CODES, user_digest.as_str(), Precondition::Absent)
                .put(
                    USER_CODES,
                    user_digest.as_str(),
                    key.as_str().as_bytes().to_vec(),
                    Some(expires_at),
                )
                .put(
                    DEVICE_CODES,
                    key.as_str(),
                    encode(&record)?,
                    Some((now + LIFETIME + MEMORY).unix_timestamp()),
                );
            if self.store.commit(txn, t).await? {
                return Ok(Started {
                    device_code,
                    user_code: display_user_code(&user_code),
                    expires_in: LIFETIME.whole_seconds(),
                    interval: INTERVAL_SECS,
                });
            }
        }
        Err(DeviceError::Random)
    }

    /// The pending request a typed user code names.
    pub async fn find_by_user_code(
        &self,
        typed: &str,
        now: OffsetDateTime,
    ) -> Result<Found, DeviceError> {
        let t = now.unix_timestamp();
        let code = normalize_user_code(typed).ok_or(DeviceError::UserCodeUnknown)?;
        let index = self
            .store
            .get(USER_CODES, SecretDigest::of(&code).as_str(), t)
            .await?
            .ok_or(DeviceError::UserCodeUnknown)?;
        let key = String::from_utf8(index.value)
            .map_err(|_| StoreError::Corrupt(format!("{USER_CODES}: key")))?;
        let (request, _) = self
            .get(&key, t)
            .await?
            .ok_or(DeviceError::UserCodeUnknown)?;
        if t >= request.expires_at {
            return Err(DeviceError::UserCodeUnknown);
        }
        match request.state {
            DeviceState::Pending => Ok(Found { key, request }),
            _ => Err(DeviceError::Answered),
        }
    }

    /// The live request under `key`, with its version.
    pub async fn get(
        &self,
        key: &str,
        t: i64,
    ) -> Result<Option<(DeviceAuthorization, u64)>, DeviceError> {
        match self.store.get(DEVICE_CODES, key, t).await? {
            Some(r) => Ok(Some((decode(DEVICE_CODES, &r.value)?, r.version))),
            None => Ok(None),
        }
    }

    /// The user's answer: `Some(authorization)` approves, `None` denies.
    /// One atomic step from `Pending`; the user code stops working.
    pub async fn answer(
        &self,
        key: &str,
        authorization: Option<Authorization>,
        now: OffsetDateTime,
    ) -> Result<(), DeviceError> {
        let t = now.unix_timestamp();
        // A poll may rewrite the record (its last-poll time) between the
        // read and the write: then read again; only a record that is no
        // longer pending is "already answered".
        loop {
            let (mut request, version) = self.get(key, t).await?.ok_or(DeviceError::Expired)?;
            if t >= request.expires_at {
                return Err(DeviceError::Expired);
            }
            if !matches!(request.state, DeviceState::Pending) {
                return Err(DeviceError::Answered);
            }
            request.state = match &authorization {
                Some(a) => DeviceState::Approved {
                    authorization: Box::new(a.clone()),
                },
                None => DeviceState::Denied,
            };
            let txn = Txn::new(Durability::Ephemeral)
                .require(DEVICE_CODES, key, Precondition::Version(version))
                .put(
                    DEVICE_CODES,
                    key,
                    encode(&request)?,
                    Some((now + MEMORY).unix_timestamp()),
                )
                .delete(USER_CODES, request.user_code.as_str());
            if self.store.commit(txn, t).await? {
                return Ok(());
            }
        }
    }

    /// A poll by `client_id` with `device_code` (RFC 8628 §3.4–3.5). An
    /// approved request is handed back with its version; the caller spends
    /// it with [`DeviceAuthorizations::redeemed`] in the step that creates
    /// the grant.
    pub async fn poll(
        &self,
        device_code: &str,
        client_id: &str,
        now: OffsetDateTime,
    ) -> Result<Poll, DeviceError> {
        let t = now.unix_timestamp();
        let key = SecretDigest::of(device_code);
        let (mut request, version) = self
            .get(key.as_str(), t)
            .await?
            .ok_or(DeviceError::Unknown)?;
        if request.client_id != client_id {
            return Err(DeviceError::ClientMismatch);
        }
        match request.state {
            DeviceState::Redeemed { .. } => return Err(DeviceError::Used),
            _ if t >= request.expires_at => return Err(DeviceError::Expired),
            DeviceState::Denied => return Err(DeviceError::Denied),
            DeviceState::Approved { authorization } => {
                return Ok(Poll::Approved {
                    key: key.as_str().to_owned(),
                    version,
                    authorization,
                });
            }
            DeviceState::Pending => {}
        }
        // Still pending: enforce the interval (RFC 8628 §3.5). A poll
        // sooner than `interval` after the last one is `slow_down`, and
        // the interval grows for this and every later poll.
        let too_soon = request.last_poll.is_some_and(|p| t - p < request.interval);
        if too_soon {
            request.interval += SLOW_DOWN_SECS;
        }
        request.last_poll = Some(t);
        let swapped = self
            .store
            .compare_and_swap(
                DEVICE_CODES,
                key.as_str(),
                version,
                Some(encode(&request)?),
                Some((now + LIFETIME + MEMORY).unix_timestamp()),
                Durability::Ephemeral,
                t,
            )
            .await?;
        // Losing the race means another poll of this code just happened:
        // this one came too soon after it.
        Ok(if too_soon || swapped.is_none() {
            Poll::SlowDown
        } else {
            Poll::Pending
        })
    }

    /// The stored value of a spent device code (for
    /// [`crate::tokens::grants::Grants::grant_replacing`]).
    pub fn redeemed(
        request_client: &str,
        scope: &Scope,
        grant: GrantId,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError> {
        encode(&DeviceAuthorization {
            client_id: request_client.to_owned(),
            scope: scope.clone(),
            expires_at: now.unix_timestamp(),
            interval: INTERVAL_SECS,
            last_poll: Some(now.unix_timestamp()),
            user_code: SecretDigest::of(""),
            state: DeviceState::Redeemed { grant },
        })
    }

    /// How long a spent record is remembered.
    pub fn memory_until(now: OffsetDateTime) -> i64 {
        (now + MEMORY).unix_timestamp()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn user_code_typed_loosely_normalizes() {
        assert_eq!(
            normalize_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code(" BCDF GHJK ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(normalize_user_code("ABCD-EFGH"), None, "vowels never occur");
        assert_eq!(normalize_user_code("BCDF-GHJ1"), None);
    }

    #[test]
    fn generated_user_code_uses_the_alphabet_and_displays_with_a_hyphen() {
        for _ in 0..50 {
            let code = generate_user_code().unwrap();
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
            let shown = display_user_code(&code);
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
        }
    }
}
