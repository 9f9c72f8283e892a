//! Newtypes for every identifier and secret.
//!
//! Identifiers are plain, comparable and serializable. Secrets (codes, refresh
//! tokens, session ids, flow bindings) are a different kind of value: they are
//! shown to their holder once and stored only as a SHA-256 digest, so a leaked
//! store or log never yields a usable credential. Secret types therefore derive
//! neither `Debug` nor `Serialize`; the only way to the plaintext is
//! [`OpaqueSecret::expose`], which is greppable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Failure of the operating system's random source. Fatal for the request.
#[derive(Debug, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// Fills `buf` from ring's `SystemRandom` (the OS CSPRNG).
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(buf).map_err(|_| RandomError)
}

/// A fresh random (version 4) UUID drawn from the OS CSPRNG.
pub fn random_uuid() -> Result<Uuid, RandomError> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn generate() -> Result<Self, RandomError> {
                random_uuid().map(Self)
            }

            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A directory user's object id (Graph `id`).
    UserId
);
uuid_id!(
    /// A group's object id.
    GroupId
);
uuid_id!(
    /// A role assignment's id.
    RoleAssignmentId
);
uuid_id!(
    /// An entry in the sign-in log or the directory audit.
    LogEntryId
);
uuid_id!(
    /// A grant: the family of codes, refresh tokens and access tokens that
    /// one authorization produced. Revoking it ends all of them.
    GrantId
);

/// A relying party's `client_id`, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 digest of a secret, hex-encoded: what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretDigest(String);

impl SecretDigest {
    pub fn of(secret: &str) -> Self {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in d.as_ref() {
            hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            hex.push(char::from_digit(u32::from(b & 0x0f), 16).unwrap_or('0'));
        }
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A random 256-bit bearer secret, base64url-encoded (43 characters).
///
/// Used for authorization codes, refresh tokens, browser session ids, sign-in
/// flow bindings and CSRF tokens. No `Debug`, no `Serialize`: see the module doc.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueSecret(String);

impl OpaqueSecret {
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps a secret presented by a client. Callers only ever hash it.
    pub fn from_presented(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(&self.0)
    }

    /// The plaintext, for the one response or cookie that delivers it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OpaqueSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueSecret(<redacted>)")
    }
}

/// Constant-time equality for secrets compared in place (CSRF tokens, client
/// secrets). Lengths are not secret.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn opaque_secret_debug_is_redacted() {
        let s = OpaqueSecret::from_presented("hunter2-hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn opaque_secret_generate_is_256_bits_base64url() {
        let s = OpaqueSecret::generate().unwrap();
        assert_eq!(s.expose().len(), 43);
        assert!(
            s.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(s, OpaqueSecret::generate().unwrap());
    }

    #[test]
    fn secret_digest_is_sha256_hex() {
        assert_eq!(
            SecretDigest::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_uuid_is_v4() {
        assert_eq!(random_uuid().unwrap().get_version_num(), 4);
    }
}
