//! DPoP proofs (RFC 9449): checking one, and the key thumbprint it binds
//! tokens to.
//!
//! A DPoP proof is a JWS the client signs with a key of its own, whose
//! public half travels in the proof's header. Checking it (§4.3) proves the
//! sender holds that key *for this request*: the method (`htm`), the URL
//! (`htu`), the moment (`iat`) and, at a resource, the access token (`ath`)
//! are all under the signature. Tokens are then bound to the key by its
//! RFC 7638 thumbprint (`cnf.jkt`, §6.1).
//!
//! This module is pure: it never reads the clock or the store. What is left
//! to the caller is the one stateful rule, "a `jti` is accepted once"
//! (§11.1): record [`VerifiedProof::jti`] with an insert-if-absent that
//! lives at least [`VerifiedProof::replay_window_end`], and refuse the proof
//! when it was already there.
//!
//! Misuse warnings:
//! * `htu` must be the URL derived from the configured issuer, never one
//!   built from the request's `Host` header — otherwise a proof made for
//!   another host would verify here.
//! * The `jwk` is attacker-chosen. It is only ever used to check this very
//!   proof; what makes it meaningful is the token's `cnf.jkt`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The proof's media type (§4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// The signature algorithms Gatepass verifies proofs with, as discovery
/// advertises them (`dpop_signing_alg_values_supported`). Asymmetric only:
/// a MAC would need a secret shared with us, which defeats the point.
pub const SIGNING_ALGS: [&str; 3] = ["ES256", "RS256", "EdDSA"];

/// How far a proof's `iat` may be from our clock, either way (§11.1
/// leaves the window to the server; 60 s tolerates ordinary clock skew).
pub const IAT_WINDOW_SECS: i64 = 60;

/// Bounds on attacker-supplied sizes: a proof is a small JWS.
const MAX_PROOF_LEN: usize = 8 * 1024;
const MAX_JTI_LEN: usize = 256;
/// RSA keys below 2048 bits are refused (RFC 7518 §3.3).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Members that only a private JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC
/// 8037 §2). A proof carrying any of them is refused: the client leaked its
/// key, and it must not be taken for a public one.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A JWK SHA-256 thumbprint (RFC 7638), base64url: the `jkt` tokens are
/// bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Jkt(String);

impl Jkt {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Jkt {
    fn from(s: String) -> Self {
        Jkt(s)
    }
}

impl std::fmt::Display for Jkt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the request the proof came with looks like, as the server sees it.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The HTTP method, e.g. `POST`.
    pub htm: &'a str,
    /// The request URL built from the configured issuer (any query is
    /// ignored on both sides).
    pub htu: &'a str,
    /// The access token presented beside the proof, at a resource; `None`
    /// at the token endpoint.
    pub access_token: Option<&'a str>,
    /// Unix seconds, read once by the caller.
    pub now: i64,
}

/// A proof that checked out, except for the `jti`-once rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The thumbprint of the key that signed the proof.
    pub jkt: Jkt,
    pub jti: String,
    pub iat: i64,
}

impl VerifiedProof {
    /// Until when the proof would still be accepted, so until when its
    /// `jti` must be remembered (one second of margin).
    pub fn replay_window_end(&self) -> i64 {
        self.iat.saturating_add(IAT_WINDOW_SECS + 1)
    }
}

/// Why a proof was refused. Messages are safe to show the client: they
/// never quote the proof or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the DPoP proof is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("more than one DPoP header was sent")]
    Multiple,
    #[error("the DPoP proof's typ must be dpop+jwt")]
    WrongType,
    #[error("the DPoP proof's alg is not one of ES256, RS256, EdDSA")]
    UnsupportedAlgorithm,
    #[error("the DPoP proof's jwk is not a usable public key for its alg: {0}")]
    BadKey(&'static str),
    #[error("the DPoP proof's jwk contains private key material")]
    PrivateKey,
    #[error("the DPoP proof's signature does not verify with its jwk")]
    BadSignature,
    #[error("the DPoP proof's claims are missing or malformed: {0}")]
    BadClaims(&'static str),
    #[error("the DPoP proof's htm does not match the request method")]
    HtmMismatch,
    #[error("the DPoP proof's htu does not match the request URL")]
    HtuMismatch,
    #[error("the DPoP proof's iat is outside the accepted window")]
    Stale,
    #[error("the DPoP proof has no ath, but an access token was presented")]
    AthMissing,
    #[error("the DPoP proof's ath does not match the access token")]
    AthMismatch,
    #[error("the DPoP proof's jti was already used")]
    Replayed,
}

impl ProofError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Malformed(_) => "dpop.malformed",
            ProofError::Multiple => "dpop.multiple",
            ProofError::WrongType => "dpop.wrong_type",
            ProofError::UnsupportedAlgorithm => "dpop.unsupported_alg",
            ProofError::BadKey(_) => "dpop.bad_key",
            ProofError::PrivateKey => "dpop.private_key",
            ProofError::BadSignature => "dpop.bad_signature",
            ProofError::BadClaims(_) => "dpop.bad_claims",
            ProofError::HtmMismatch => "dpop.htm_mismatch",
            ProofError::HtuMismatch => "dpop.htu_mismatch",
            ProofError::Stale => "dpop.stale",
            ProofError::AthMissing => "dpop.ath_missing",
            ProofError::AthMismatch => "dpop.ath_mismatch",
            ProofError::Replayed => "dpop.replayed",
        }
    }
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: String,
    jwk: Option<Map<String, Value>>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
}

/// `ath` for an access token (§4.2): base64url SHA-256 of its ASCII.
pub fn access_token_hash(access_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Checks a proof against the request (RFC 9449 §4.3 steps 2–11, all but
/// the `jti` record and the server nonce).
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<VerifiedProof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed("too long"));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed("not three dot-separated parts"));
    };
    let header: ProofHeader = decode_json(header_b64).ok_or(ProofError::Malformed("header"))?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYP))
    {
        return Err(ProofError::WrongType);
    }
    // RFC 7515 §4.1.11: no extension is understood here.
    if header.crit.is_some() {
        return Err(ProofError::Malformed("crit is not supported"));
    }
    let alg = match header.alg.as_str() {
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "RS256" => jsonwebtoken::Algorithm::RS256,
        "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
        _ => return Err(ProofError::UnsupportedAlgorithm),
    };
    let jwk = header.jwk.ok_or(ProofError::BadKey("no jwk header"))?;
    let key = PublicKey::from_jwk(&jwk, alg)?;
    let message = &proof[..header_b64.len() + 1 + claims_b64.len()];
    // `verify` answers Err for an undecodable signature and Ok(false) for
    // a wrong one; both are the same refusal.
    if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.decoding, alg)
        .unwrap_or(false)
    {
        return Err(ProofError::BadSignature);
    }

    let claims: ProofClaims = decode_json(claims_b64).ok_or(ProofError::BadClaims(
        "jti, htm, htu (strings) and iat (an integer) are required",
    ))?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::BadClaims("jti must be 1–256 characters"));
    }
    if claims.htm != expected.htm {
        return Err(ProofError::HtmMismatch);
    }
    if !same_target_uri(&claims.htu, expected.htu) {
        return Err(ProofError::HtuMismatch);
    }
    // `iat` is the client's number: compare without overflow (an `iat`
    // near i64::MIN must be stale, not a panic or a wrap-around pass).
    if claims.iat.abs_diff(expected.now) > IAT_WINDOW_SECS.unsigned_abs() {
        return Err(ProofError::Stale);
    }
    if let Some(token) = expected.access_token {
        let ath = claims.ath.as_deref().ok_or(ProofError::AthMissing)?;
        // Not secret (a hash the client computed), so a plain comparison.
        if ath != access_token_hash(token) {
            return Err(ProofError::AthMismatch);
        }
    }
    Ok(VerifiedProof {
        jkt: key.thumbprint,
        jti: claims.jti,
        iat: claims.iat,
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// §4.3 step 9: `htu` matches ignoring query and fragment. Both sides are
/// parsed as URLs, so case in scheme and host and a default port written
/// out do not matter (RFC 3986 §6.2.2, §6.2.3).
fn same_target_uri(htu: &str, expected: &str) -> bool {
    let strip = |s: &str| {
        url::Url::parse(s).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    match (strip(htu), strip(expected)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A proof's public key, ready to verify, with its thumbprint.
struct PublicKey {
    decoding: jsonwebtoken::DecodingKey,
    thumbprint: Jkt,
}

impl PublicKey {
    fn from_jwk(
        jwk: &Map<String, Value>,
        alg: jsonwebtoken::Algorithm,
    ) -> Result<Self, ProofError> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(ProofError::PrivateKey);
        }
        let member = |name: &'static str| -> Result<&str, ProofError> {
            jwk.get(name)
                .and_then(Value::as_str)
                .ok_or(ProofError::BadKey("a required member is missing"))
        };
        let decoded_len = |name: &'static str| -> Result<usize, ProofError> {
            URL_SAFE_NO_PAD
                .decode(member(name)?)
                .map(|b| b.len())
                .map_err(|_| ProofError::BadKey("a member is not base64url"))
        };
        let kty = member("kty")?;
        // Each alg names exactly one key type (and curve); the canonical
        // members, in lexicographic order, form the RFC 7638 input.
        let (decoding, canonical) = match (alg, kty) {
            (jsonwebtoken::Algorithm::ES256, "EC") => {
                if member("crv")? != "P-256" {
                    return Err(ProofError::BadKey("ES256 needs a P-256 key"));
                }
                let (x, y) = (member("x")?, member("y")?);
                if decoded_len("x")? != 32 || decoded_len("y")? != 32 {
                    return Err(ProofError::BadKey("P-256 coordinates are 32 bytes"));
                }
                let key = jsonwebtoken::DecodingKey::from_ec_components(x, y)
                    .map_err(|_| ProofError::BadKey("not a P-256 point"))?;
                (
                    key,
                    canonical_json(&[("crv", "P-256"), ("kty", "EC"), ("x", x), ("y", y)]),
                )
            }
            (jsonwebtoken::Algorithm::RS256, "RSA") => {
                let (n, e) = (member("n")?, member("e")?);
                if decoded_len("n")? < MIN_RSA_MODULUS_BYTES {
                    return Err(ProofError::BadKey("RSA keys need at least 2048 bits"));
                }
                let key = jsonwebtoken::DecodingKey::from_rsa_components(n, e)
                    .map_err(|_| ProofError::BadKey("not an RSA public key"))?;
                (key, canonical_json(&[("e", e), ("kty", "RSA"), ("n", n)]))
            }
            (jsonwebtoken::Algorithm::EdDSA, "OKP") => {
                if member("crv")? != "Ed25519" {
                    return Err(ProofError::BadKey("EdDSA needs an Ed25519 key"));
                }
                let x = member("x")?;
                if decoded_len("x")? != 32 {
                    return Err(ProofError::BadKey("an Ed25519 key is 32 bytes"));
                }
                let key = jsonwebtoken::DecodingKey::from_ed_components(x)
                    .map_err(|_| ProofError::BadKey("not an Ed25519 key"))?;
                (
                    key,
                    canonical_json(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", x)]),
                )
            }
            _ => return Err(ProofError::BadKey("kty does not match alg")),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        Ok(PublicKey {
            decoding,
            thumbprint: Jkt(URL_SAFE_NO_PAD.encode(digest.as_ref())),
        })
    }
}

/// RFC 7638 §3.3: the required members only, sorted, no whitespace.
fn canonical_json(members: &[(&str, &str)]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(*v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprint_of_rfc_7638_example_matches() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let json = canonical_json(&[("e", "AQAB"), ("kty", "RSA"), ("n", n)]);
        let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(digest.as_ref()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn htu_ignores_query_fragment_and_default_port() {
        assert!(same_target_uri(
            "https://Server.example.com:443/token?x=1#f",
            "https://server.example.com/token"
        ));
        assert!(!same_target_uri(
            "https://server.example.com/token2",
            "https://server.example.com/token"
        ));
        assert!(!same_target_uri(
            "not a url",
            "https://server.example.com/token"
        ));
    }

    #[test]
    fn ath_is_base64url_sha256() {
        // RFC 9449 §7.1's example token and its ath.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn proof_with_private_member_is_refused() {
        let mut jwk = Map::new();
        jwk.insert("kty".into(), "EC".into());
        jwk.insert("d".into(), "AAAA".into());
        assert_eq!(
            PublicKey::from_jwk(&jwk, jsonwebtoken::Algorithm::ES256).err(),
            Some(ProofError::PrivateKey)
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let e = Expected {
            htm: "POST",
            htu: "https://a.example/token",
            access_token: None,
            now: 0,
        };
        for junk in ["", ".", "..", "a.b.c", "a.b.c.d", "eyJ9.e30.", "é.é.é"] {
            assert!(verify(junk, &e).is_err(), "{junk:?}");
        }
    }
}
