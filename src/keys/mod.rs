//! Signing keys: generation, the key directory, rotation, JWKS, and the JWS
//! signer and verifier every token of Gatepass goes through.
//!
//! # The key directory
//!
//! Keys live in one directory (`[keys] dir`, `keys/` by default), shared by
//! every instance of a deployment. Each key is one file, mode 0600:
//!
//! ```text
//! keys/
//!   key-000001.json   {"kid": "…", "alg": "ES256",
//!   key-000002.json    "created_at": "2025-01-01T00:00:00Z",
//!                      "private_key_pkcs8": "MIGHAgEA…"}
//! ```
//!
//! `private_key_pkcs8` is the PKCS#8 DER document in standard base64 (so
//! `jq -r .private_key_pkcs8 key-000001.json | base64 -d | openssl pkey -inform DER -noout -text`
//! works).
//! `kid` is the RFC 7638 JWK thumbprint of the public key: it is derived, not
//! chosen, so every instance computes the same one and loading checks that
//! it still matches the key. Other files in the directory are ignored.
//!
//! # Create-exclusive start
//!
//! A key file is written under a hidden temporary name, flushed, and then
//! hard-linked to the next sequence number. The link fails if that name
//! exists, so when several instances start on an empty directory they all
//! race for `key-000001.json`, exactly one wins, and the losers re-read the
//! directory and load the winner's key. Nobody ever reads a partial file.
//!
//! # Rotation and retention
//!
//! The signer is the newest key (by `created_at`, ties by `kid`) of the
//! configured algorithm. `gatepass keys rotate` ([`rotate`]) adds a newer key;
//! each instance switches to it on its next [`KeySet::reload`] (about once a
//! minute). A superseded key stays in the JWKS and verifies tokens for
//! `retention` — the longest token lifetime — after its successor was created,
//! because tokens it signed may be valid that long; then it leaves the JWKS,
//! and the next rotation deletes its file.
//!
//! ```text
//!  time ──────────────────────────────────────────────────────────────▶
//!  K1   ├── signs ─────────┤······ published ······┤ (dropped; file deleted by the next rotate)
//!  K2                      ├── signs ─────────────────────────────▶
//!                          ▲ rotate                ▲ rotate time + retention
//! ```
//!
//! # Tokens
//!
//! [`KeySet::sign`] builds the compact JWS itself with a key parsed once at
//! load (jsonwebtoken's `encode` would re-parse the key on every call);
//! [`KeySet::verify`] uses jsonwebtoken with a pinned algorithm per `kid`,
//! and checks signatures only: callers validate `exp`, `iss` and `aud` with
//! the `now` from their `Clock`.

mod algorithm;
mod error;
mod keydir;
mod keyset;
mod material;
mod rotation;

#[cfg(test)]
mod tests;

pub use algorithm::Algorithm;
pub use error::KeyError;
pub use keyset::{KeySet, VerifiedToken};
pub use rotation::{RotationReport, load_or_create, rotate};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The OpenID Connect token hash (`at_hash`, and `c_hash` for codes) of
/// [Core §3.1.3.6] / [§3.3.2.11]: the left-most half of the hash of the ASCII
/// `token`, base64url without padding.
///
/// The hash is the one of the ID token's `alg`: SHA-256 for ES256 and RS256;
/// for EdDSA with Ed25519, SHA-512, as the OpenID Foundation errata and
/// relying parties such as openidconnect-rs do.
///
/// [Core §3.1.3.6]: https://openid.net/specs/openid-connect-core-1_0.html#CodeIDToken
/// [§3.3.2.11]: https://openid.net/specs/openid-connect-core-1_0.html#HybridIDToken
pub fn token_hash(algorithm: Algorithm, token: &str) -> String {
    let digest_algorithm = match algorithm {
        Algorithm::Es256 | Algorithm::Rs256 => &aws_lc_rs::digest::SHA256,
        Algorithm::EdDsa => &aws_lc_rs::digest::SHA512,
    };
    let digest = aws_lc_rs::digest::digest(digest_algorithm, token.as_bytes());
    let digest = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}
