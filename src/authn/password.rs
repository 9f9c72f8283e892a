//! Password hashing with argon2id (RFC 9106), in PHC string format.
//!
//! Hashing is deliberately slow (≈ tens of ms at the defaults), so it runs on
//! tokio's blocking pool, never on a request worker. Verifying against an
//! unknown user still burns one hash (`verify_dummy`) so response time does
//! not reveal whether a username exists.

use crate::config::PasswordHashing;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shortest password a `passwordProfile` may set (DESIGN §6).
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("password must be at most 256 characters")]
    TooLong,
    #[error("password hashing failed")]
    Hashing,
}

impl PasswordError {
    pub fn code(&self) -> &'static str {
        match self {
            PasswordError::TooShort => "password.too_short",
            PasswordError::TooLong => "password.too_long",
            PasswordError::Hashing => "password.hashing",
        }
    }
}

/// A plaintext password on its way to the hasher. No `Debug`, no `Serialize`.
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Checks the length rules for a new password.
    pub fn validate_new(&self) -> Result<(), PasswordError> {
        let n = self.0.chars().count();
        if n < MIN_PASSWORD_LEN {
            Err(PasswordError::TooShort)
        } else if n > 256 {
            Err(PasswordError::TooLong)
        } else {
            Ok(())
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// argon2id hasher with the configured cost.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    /// A hash of a random value, verified against when the user is unknown.
    dummy: Arc<String>,
    /// Verifications run so far (real and dummy), for metrics and for
    /// tests that prove lockout keeps guesses away from the verifier.
    verifications: Arc<AtomicU64>,
}

impl PasswordHasher {
    pub fn new(cost: PasswordHashing) -> Result<Self, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|_| PasswordError::Hashing)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 24];
        crate::ids::fill_random(&mut random).map_err(|_| PasswordError::Hashing)?;
        let dummy = hash_with(&argon, &random)?;
        Ok(Self {
            argon: Arc::new(argon),
            dummy: Arc::new(dummy),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Hashes a new secret (password or TAP) into a PHC string.
    pub async fn hash(&self, secret: &str) -> Result<String, PasswordError> {
        let argon = self.argon.clone();
        let bytes = secret.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || hash_with(&argon, &bytes))
            .await
            .map_err(|_| PasswordError::Hashing)?
    }

    /// Verifies `secret` against a PHC string in constant time. Parameters
    /// come from the stored hash, so raising the cost later keeps old hashes
    /// verifiable.
    pub async fn verify(&self, secret: &str, phc: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let argon = self.argon.clone();
        let bytes = secret.as_bytes().to_vec();
        let phc = phc.to_owned();
        tokio::task::spawn_blocking(move || verify_with(&argon, &bytes, &phc))
            .await
            .unwrap_or(false)
    }

    /// Burns the same time as a real verification; always `false`.
    pub async fn verify_dummy(&self, secret: &str) -> bool {
        let dummy = self.dummy.clone();
        let _ = self.verify(secret, &dummy).await;
        false
    }

    /// How many verifications (real and dummy) this hasher has started.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Synchronous verification, for benchmarks.
    pub fn verify_blocking(&self, secret: &str, phc: &str) -> bool {
        verify_with(&self.argon, secret.as_bytes(), phc)
    }
}

fn hash_with(argon: &Argon2<'_>, secret: &[u8]) -> Result<String, PasswordError> {
    let mut salt_bytes = [0u8; 16];
    crate::ids::fill_random(&mut salt_bytes).map_err(|_| PasswordError::Hashing)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| PasswordError::Hashing)?;
    argon
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

fn verify_with(argon: &Argon2<'_>, secret: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon.verify_password(secret, &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordHashing {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn password_hash_verifies_and_wrong_password_fails() {
        let h = cheap();
        let phc = h.hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!phc.contains("correct horse"));
        assert!(h.verify("correct horse", &phc).await);
        assert!(!h.verify("correct hors", &phc).await);
        assert!(!h.verify("x", "not a phc string").await);
        assert!(!h.verify_dummy("correct horse").await);
    }

    #[test]
    fn password_new_length_rules() {
        assert!(Password::new("short").validate_new().is_err());
        assert!(Password::new("eightch!").validate_new().is_ok());
    }
}
