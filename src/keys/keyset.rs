//! The loaded key set: sign, verify, JWKS, reload.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::keydir::{self, KeyMeta, StoredKey};
use super::material::KeyMaterial;
use super::rotation::plan;
use super::{Algorithm, KeyError};

/// Tokens longer than this are rejected before any parsing. Ours are well
/// under 4 KiB; the bound keeps a hostile header from costing much.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A token whose signature checked out against one of our published keys.
///
/// Only the signature, `kid` and `alg` have been checked: `exp`, `nbf`,
/// `iss`, `aud` and `typ` are the caller's to validate (see
/// [`KeySet::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken<T> {
    pub alg: Algorithm,
    pub kid: String,
    /// The JOSE header `typ`, e.g. `"JWT"` or `"at+jwt"`.
    pub typ: Option<String>,
    pub claims: T,
}

/// A published key, parsed once and shared by every snapshot that keeps it.
struct LoadedKey {
    material: KeyMaterial,
    /// SHA-256 of the PKCS#8 document, so a reload reuses the parsed key only
    /// if the file still holds the very same key.
    der_digest: Vec<u8>,
    /// Built once: jsonwebtoken's `Validation` owns a few hash sets.
    validation: Validation,
}

/// The keys as of the last load; replaced whole on reload.
struct Snapshot {
    signer: Arc<LoadedKey>,
    /// The signer first, then newest first. A handful of keys at most, so a
    /// linear search by kid beats hashing.
    published: Vec<Arc<LoadedKey>>,
    jwks: serde_json::Value,
}

struct Inner {
    dir: PathBuf,
    algorithm: Algorithm,
    retention: Duration,
    current: RwLock<Arc<Snapshot>>,
}

/// The signing and verification keys of this issuer.
///
/// Cheap to clone (one `Arc`) and safe to share across tasks. Signing and
/// verification take the read lock only long enough to clone an `Arc`, so a
/// concurrent [`reload`](KeySet::reload) never waits on cryptography and
/// vice versa.
#[derive(Clone)]
pub struct KeySet {
    inner: Arc<Inner>,
}

impl KeySet {
    /// Same as [`keys::load_or_create`](super::load_or_create): loads the keys
    /// in `dir`, creating the directory and a first key if needed.
    pub fn load_or_create(
        dir: &Path,
        algorithm: Algorithm,
        now: OffsetDateTime,
        retention: Duration,
    ) -> Result<KeySet, KeyError> {
        super::load_or_create(dir, algorithm, now, retention)
    }

    /// Loads the keys in `dir` without creating any. Fails with
    /// `keys.no_signing_key` if there is no key of `algorithm`; most callers
    /// want [`load_or_create`](super::load_or_create).
    pub fn load(
        dir: &Path,
        algorithm: Algorithm,
        now: OffsetDateTime,
        retention: Duration,
    ) -> Result<KeySet, KeyError> {
        let stored = keydir::scan(dir)?;
        KeySet::from_stored(dir, algorithm, now, retention, stored)
    }

    pub(super) fn from_stored(
        dir: &Path,
        algorithm: Algorithm,
        now: OffsetDateTime,
        retention: Duration,
        stored: Vec<StoredKey>,
    ) -> Result<KeySet, KeyError> {
        let snapshot = build_snapshot(dir, algorithm, now, retention, stored, None)?;
        Ok(KeySet {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                algorithm,
                retention,
                current: RwLock::new(Arc::new(snapshot)),
            }),
        })
    }

    /// Re-reads the key directory, so a key added by `gatepass keys rotate`
    /// (in any process) becomes the signer and keys past retention leave the
    /// JWKS. Publication is decided at load time: call this periodically
    /// (about once a minute) with the current time.
    ///
    /// On error the previous keys stay in use.
    pub fn reload(&self, now: OffsetDateTime) -> Result<(), KeyError> {
        let previous = self.snapshot();
        let stored = keydir::scan(&self.inner.dir)?;
        let next = build_snapshot(
            &self.inner.dir,
            self.inner.algorithm,
            now,
            self.inner.retention,
            stored,
            Some(&previous),
        )?;
        if next.signer.material.kid() != previous.signer.material.kid() {
            tracing::info!(kid = %next.signer.material.kid(), "switched to a new signing key");
        }
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(next);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // The lock only guards an `Arc` swap, which cannot leave it
        // inconsistent, so a poisoned lock is safe to use.
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Signs `claims` as a compact JWS ([RFC 7515 §7.1]) with header
    /// `{"alg", "kid", "typ"}`: `typ` is `"JWT"` for ID tokens and `"at+jwt"`
    /// for access tokens ([RFC 9068 §2.1]). `claims` must serialize to a JSON
    /// object.
    ///
    /// [RFC 7515 §7.1]: https://www.rfc-editor.org/rfc/rfc7515#section-7.1
    /// [RFC 9068 §2.1]: https://www.rfc-editor.org/rfc/rfc9068#section-2.1
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            kid: &'a str,
            typ: &'a str,
        }

        let signer = Arc::clone(&self.snapshot().signer);
        let key = &signer.material;
        let header = serde_json::to_vec(&Header {
            alg: key.algorithm().as_str(),
            kid: key.kid(),
            typ,
        })
        .map_err(|_| KeyError::Sign {
            reason: "header could not be serialized",
        })?;
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign {
            reason: "claims could not be serialized to JSON",
        })?;
        if payload.first() != Some(&b'{') {
            return Err(KeyError::Sign {
                reason: "claims must serialize to a JSON object",
            });
        }

        // 4/3 for base64, plus room for the largest (RSA-2048) signature.
        let mut jws = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 352);
        URL_SAFE_NO_PAD.encode_string(&header, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jws);
        let signature = key.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jws);
        Ok(jws)
    }

    /// Verifies a compact JWS signed by one of our published keys and
    /// deserializes its claims.
    ///
    /// Accepted only if the header names a published `kid` and its `alg` is
    /// exactly that key's algorithm, so `alg: none`, HS256 keyed with our
    /// public key, and tokens of other issuers or retired keys all fail.
    /// Never panics, whatever the input.
    ///
    /// This checks the signature and nothing else. jsonwebtoken's own
    /// `exp`/`nbf` checks read the system clock, and in Gatepass only
    /// `clock::Clock` reads time, so they are switched off here (as are its
    /// `aud`/`iss`/required-claim checks): **the caller must validate `exp`,
    /// `iss`, `aud` (and `typ`, or use [`verify_typed`](Self::verify_typed))
    /// against its own `now`.**
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<VerifiedToken<T>, KeyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(KeyError::InvalidToken {
                reason: "token is too long",
            });
        }
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(KeyError::InvalidToken {
                reason: "not a compact JWS (three dot-separated parts)",
            });
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| KeyError::InvalidToken {
            reason: "header is not a supported JWS header",
        })?;
        // RFC 7515 §4.1.11: we understand no extensions, so any `crit` is fatal.
        if header.crit.is_some() {
            return Err(KeyError::InvalidToken {
                reason: "header has a crit parameter",
            });
        }
        let kid = header.kid.ok_or(KeyError::InvalidToken {
            reason: "header has no kid",
        })?;

        let snapshot = self.snapshot();
        let key = snapshot
            .published
            .iter()
            .find(|k| k.material.kid() == kid)
            .map(Arc::clone)
            .ok_or(KeyError::UnknownKid)?;
        drop(snapshot);
        let alg = key.material.algorithm();
        if header.alg != alg.to_jsonwebtoken() {
            return Err(KeyError::AlgorithmMismatch);
        }

        let data = jsonwebtoken::decode::<T>(token, key.material.decoding_key(), &key.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => KeyError::InvalidSignature,
            ErrorKind::InvalidAlgorithm => KeyError::AlgorithmMismatch,
            // After the signature checked out, only the claims can fail
            // to parse. The serde message is dropped: it may quote them.
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => KeyError::InvalidClaims,
            _ => KeyError::InvalidToken {
                reason: "token could not be decoded",
            },
        })?;
        Ok(VerifiedToken {
            alg,
            kid,
            typ: data.header.typ,
            claims: data.claims,
        })
    }

    /// [`verify`](Self::verify), then require the header `typ` to be
    /// `expected` (e.g. `"at+jwt"`), so an ID token can never pass as an
    /// access token ([RFC 8725 §3.11]). Media types compare case-insensitively
    /// and may carry the `application/` prefix ([RFC 7515 §4.1.9]).
    ///
    /// [RFC 8725 §3.11]: https://www.rfc-editor.org/rfc/rfc8725#section-3.11
    /// [RFC 7515 §4.1.9]: https://www.rfc-editor.org/rfc/rfc7515#section-4.1.9
    pub fn verify_typed<T: DeserializeOwned>(
        &self,
        token: &str,
        expected: &str,
    ) -> Result<VerifiedToken<T>, KeyError> {
        let verified = self.verify::<T>(token)?;
        let matches = verified.typ.as_deref().is_some_and(|typ| {
            let typ = match typ.get(..12) {
                Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
                _ => typ,
            };
            typ.eq_ignore_ascii_case(expected)
        });
        if !matches {
            return Err(KeyError::UnexpectedType {
                expected: expected.to_owned(),
            });
        }
        Ok(verified)
    }

    /// The JWK Set ([RFC 7517 §5]) of every published key, the signer first.
    ///
    /// [RFC 7517 §5]: https://www.rfc-editor.org/rfc/rfc7517#section-5
    pub fn jwks(&self) -> serde_json::Value {
        self.snapshot().jwks.clone()
    }

    /// The configured algorithm, which is always the signer's.
    pub fn signing_algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// The kid of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.snapshot().signer.material.kid().to_owned()
    }

    /// The kids in the JWKS, the signer first.
    pub fn published_kids(&self) -> Vec<String> {
        self.snapshot()
            .published
            .iter()
            .map(|k| k.material.kid().to_owned())
            .collect()
    }

    /// The key directory this set was loaded from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("dir", &self.inner.dir)
            .field("algorithm", &self.inner.algorithm)
            .field("signing_kid", &self.signing_kid())
            .field("published_kids", &self.published_kids())
            .finish_non_exhaustive()
    }
}

fn build_snapshot(
    dir: &Path,
    algorithm: Algorithm,
    now: OffsetDateTime,
    retention: Duration,
    stored: Vec<StoredKey>,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, KeyError> {
    let metas: Vec<KeyMeta> = stored.iter().map(|k| k.meta.clone()).collect();
    let plan = plan(&metas, algorithm, now, retention).ok_or_else(|| KeyError::NoSigningKey {
        dir: dir.to_owned(),
        algorithm,
    })?;
    let mut published = Vec::with_capacity(plan.published.len());
    for &i in &plan.published {
        published.push(load_key(&stored[i], previous)?);
    }
    let jwks = serde_json::json!({
        "keys": published.iter().map(|k| k.material.jwk()).collect::<Vec<_>>(),
    });
    let signer = published
        .first()
        .map(Arc::clone)
        .ok_or_else(|| KeyError::NoSigningKey {
            dir: dir.to_owned(),
            algorithm,
        })?;
    Ok(Snapshot {
        signer,
        published,
        jwks,
    })
}

/// Parses a stored key, or reuses the parsed key of the previous snapshot if
/// the file holds the same one.
fn load_key(stored: &StoredKey, previous: Option<&Snapshot>) -> Result<Arc<LoadedKey>, KeyError> {
    let der_digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &stored.pkcs8.0)
        .as_ref()
        .to_vec();
    let reusable = previous.and_then(|snapshot| {
        snapshot.published.iter().find(|k| {
            k.material.kid() == stored.meta.kid
                && k.material.algorithm() == stored.meta.algorithm
                && k.der_digest == der_digest
        })
    });
    if let Some(key) = reusable {
        return Ok(Arc::clone(key));
    }

    let material = KeyMaterial::from_pkcs8(stored.meta.algorithm, &stored.pkcs8.0)
        .map_err(|reason| KeyError::corrupt(&stored.path, reason))?;
    if material.kid() != stored.meta.kid {
        return Err(KeyError::corrupt(
            &stored.path,
            "kid is not the thumbprint of the key (was the file edited?)",
        ));
    }
    Ok(Arc::new(LoadedKey {
        validation: validation_for(material.algorithm()),
        material,
        der_digest,
    }))
}

/// Signature-only validation for one key's algorithm.
fn validation_for(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm.to_jsonwebtoken());
    // jsonwebtoken's exp/nbf checks read the system clock; Gatepass reads
    // time only through `clock::Clock`, so callers check exp/nbf/iss/aud
    // with their own `now`. Disable every claim check here.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.iss = None;
    validation.aud = None;
    validation.sub = None;
    validation
}
