//! Errors of the key store, the signer and the verifier.

use std::io;
use std::path::PathBuf;

use super::Algorithm;

/// Everything that can go wrong with keys or tokens.
///
/// Messages name the file for I/O and format problems, but never contain key
/// material, claims or the token itself: the caller may log them as they are.
/// A token rejected by [`KeySet::verify`](super::KeySet::verify) is one of
/// `InvalidToken`, `UnknownKid`, `AlgorithmMismatch`, `InvalidSignature`,
/// `InvalidClaims` or `UnexpectedType`; all of them mean "not a token of ours"
/// and map to the same protocol error (`invalid_token`, `invalid_grant`, …).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown signing algorithm {value:?}; allowed values are ES256, RS256, EdDSA")]
    UnknownAlgorithm { value: String },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("key file {} is not a valid Gatepass key: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },

    #[error("generating a new {algorithm} key failed")]
    Generate { algorithm: Algorithm },

    #[error("no {algorithm} signing key in {}", dir.display())]
    NoSigningKey { dir: PathBuf, algorithm: Algorithm },

    #[error("could not create a key file in {} after {attempts} attempts (other writers kept winning)", dir.display())]
    Contention { dir: PathBuf, attempts: u32 },

    #[error("signing failed: {reason}")]
    Sign { reason: &'static str },

    #[error("malformed token: {reason}")]
    InvalidToken { reason: &'static str },

    #[error("token was not signed by a published key of this issuer (unknown kid)")]
    UnknownKid,

    #[error("token header alg does not match the algorithm of its key")]
    AlgorithmMismatch,

    #[error("token signature is invalid")]
    InvalidSignature,

    #[error("token claims do not have the expected shape")]
    InvalidClaims,

    #[error("token typ is not {expected:?}")]
    UnexpectedType { expected: String },
}

impl KeyError {
    /// A stable, machine-readable code (`"keys.io"`, `"keys.unknown_kid"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::UnknownAlgorithm { .. } => "keys.unknown_algorithm",
            KeyError::Io { .. } => "keys.io",
            KeyError::Corrupt { .. } => "keys.corrupt",
            KeyError::Generate { .. } => "keys.generate",
            KeyError::NoSigningKey { .. } => "keys.no_signing_key",
            KeyError::Contention { .. } => "keys.contention",
            KeyError::Sign { .. } => "keys.sign",
            KeyError::InvalidToken { .. } => "keys.invalid_token",
            KeyError::UnknownKid => "keys.unknown_kid",
            KeyError::AlgorithmMismatch => "keys.algorithm_mismatch",
            KeyError::InvalidSignature => "keys.invalid_signature",
            KeyError::InvalidClaims => "keys.invalid_claims",
            KeyError::UnexpectedType { .. } => "keys.unexpected_type",
        }
    }

    /// True when the error is about a presented token (the caller's input),
    /// false when it is about our own keys or files (a server problem).
    pub fn is_token_rejection(&self) -> bool {
        match self {
            KeyError::InvalidToken { .. }
            | KeyError::UnknownKid
            | KeyError::AlgorithmMismatch
            | KeyError::InvalidSignature
            | KeyError::InvalidClaims
            | KeyError::UnexpectedType { .. } => true,
            KeyError::UnknownAlgorithm { .. }
            | KeyError::Io { .. }
            | KeyError::Corrupt { .. }
            | KeyError::Generate { .. }
            | KeyError::NoSigningKey { .. }
            | KeyError::Contention { .. }
            | KeyError::Sign { .. } => false,
        }
    }

    pub(super) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KeyError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(super) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        KeyError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
