//! Key material: generation, parsing, the public JWK and the raw signature.
//!
//! Keys are generated as PKCS#8 (ES256 and EdDSA with *ring*, RS256 with
//! aws-lc-rs, which *ring* cannot generate) and parsed once, with aws-lc-rs,
//! into a key pair that signs without re-parsing. That matters: jsonwebtoken's
//! `encode` re-parses its `EncodingKey` on every call (and for RSA re-runs the
//! private-key consistency check), so the signer here builds the compact JWS
//! itself and only the verifier goes through jsonwebtoken.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::json;

use super::{Algorithm, KeyError};

/// A PKCS#8 private key document. Deliberately neither `Debug` nor `Serialize`.
pub(super) struct Pkcs8Der(pub(super) Vec<u8>);

/// Generates a fresh private key for `algorithm`.
pub(super) fn generate(algorithm: Algorithm) -> Result<Pkcs8Der, KeyError> {
    let failed = || KeyError::Generate { algorithm };
    let der = match algorithm {
        Algorithm::Es256 => {
            let rng = ring::rand::SystemRandom::new();
            ring::signature::EcdsaKeyPair::generate_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map_err(|_| failed())?
            .as_ref()
            .to_vec()
        }
        Algorithm::EdDsa => {
            let rng = ring::rand::SystemRandom::new();
            ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| failed())?
                .as_ref()
                .to_vec()
        }
        Algorithm::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| failed())?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                pair.as_der().map_err(|_| failed())?;
            der.as_ref().to_vec()
        }
    };
    Ok(Pkcs8Der(der))
}

/// The public half of a key, as the raw values of its JWK members.
#[derive(Clone, PartialEq, Eq)]
enum PublicParts {
    /// P-256 affine coordinates, 32 bytes each.
    Ec { x: Vec<u8>, y: Vec<u8> },
    /// Ed25519 public key, 32 bytes.
    Okp { x: Vec<u8> },
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

enum Signer {
    Es256(lc::EcdsaKeyPair),
    Rs256(lc::RsaKeyPair),
    EdDsa(lc::Ed25519KeyPair),
}

/// A parsed key: ready to sign, with its public JWK and verifier precomputed.
pub(super) struct KeyMaterial {
    algorithm: Algorithm,
    kid: String,
    signer: Signer,
    public: PublicParts,
    decoding: DecodingKey,
}

impl KeyMaterial {
    /// Parses a PKCS#8 private key of `algorithm`. The error is a short reason
    /// (never key bytes) for the caller to attach to the file path.
    pub(super) fn from_pkcs8(algorithm: Algorithm, der: &[u8]) -> Result<Self, &'static str> {
        let (signer, public) = match algorithm {
            Algorithm::Es256 => {
                let pair = lc::EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| "private key is not a PKCS#8 P-256 key")?;
                // An uncompressed SEC1 point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let public = match point {
                    [0x04, xy @ ..] if xy.len() == 64 => {
                        let (x, y) = xy.split_at(32);
                        PublicParts::Ec {
                            x: x.to_vec(),
                            y: y.to_vec(),
                        }
                    }
                    _ => return Err("P-256 public key is not an uncompressed point"),
                };
                (Signer::Es256(pair), public)
            }
            Algorithm::EdDsa => {
                let pair = lc::Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| "private key is not a PKCS#8 Ed25519 key")?;
                let public = PublicParts::Okp {
                    x: pair.public_key().as_ref().to_vec(),
                };
                (Signer::EdDsa(pair), public)
            }
            Algorithm::Rs256 => {
                let pair = lc::RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| "private key is not a PKCS#8 RSA key")?;
                if pair.public_modulus_len() < 256 {
                    return Err("RSA key is shorter than 2048 bits");
                }
                let public_key = pair.public_key();
                let public = PublicParts::Rsa {
                    n: public_key
                        .modulus()
                        .big_endian_without_leading_zero()
                        .to_vec(),
                    e: public_key
                        .exponent()
                        .big_endian_without_leading_zero()
                        .to_vec(),
                };
                (Signer::Rs256(pair), public)
            }
        };
        let decoding = match &public {
            PublicParts::Ec { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                DecodingKey::from_ec_der(&point)
            }
            PublicParts::Okp { x } => DecodingKey::from_ed_der(x),
            PublicParts::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
        };
        Ok(KeyMaterial {
            algorithm,
            kid: thumbprint(&public),
            signer,
            public,
            decoding,
        })
    }

    pub(super) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The RFC 7638 thumbprint of the public key.
    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature
    /// in JWS form: `r || s` for ES256 (RFC 7518 §3.4), not DER.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.signer {
            Signer::Es256(pair) => pair
                .sign(&rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::Sign {
                    reason: "ECDSA signing failed",
                }),
            Signer::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Rs256(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&lc::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign {
                        reason: "RSA signing failed",
                    })?;
                Ok(sig)
            }
        }
    }

    /// The public JWK ([RFC 7517 §4]) as published in the JWKS.
    ///
    /// [RFC 7517 §4]: https://www.rfc-editor.org/rfc/rfc7517#section-4
    pub(super) fn jwk(&self) -> serde_json::Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let alg = self.algorithm.as_str();
        match &self.public {
            PublicParts::Ec { x, y } => json!({
                "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y),
                "kid": self.kid, "alg": alg, "use": "sig",
            }),
            PublicParts::Okp { x } => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(x),
                "kid": self.kid, "alg": alg, "use": "sig",
            }),
            PublicParts::Rsa { n, e } => json!({
                "kty": "RSA", "n": b64(n), "e": b64(e),
                "kid": self.kid, "alg": alg, "use": "sig",
            }),
        }
    }
}

/// The JWK SHA-256 thumbprint ([RFC 7638 §3]), base64url: the hash of the
/// required public members in lexicographic order with no whitespace. It
/// depends only on the public key, so every instance derives the same `kid`
/// and two different keys never share one.
///
/// [RFC 7638 §3]: https://www.rfc-editor.org/rfc/rfc7638#section-3
fn thumbprint(public: &PublicParts) -> String {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    // base64url values need no JSON escaping, so plain formatting is canonical.
    let canonical = match public {
        PublicParts::Ec { x, y } => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(x),
            b64(y)
        ),
        PublicParts::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        PublicParts::Rsa { n, e } => {
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
        }
    };
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let public = PublicParts::Rsa {
            n: URL_SAFE_NO_PAD.decode(n).unwrap(),
            e: URL_SAFE_NO_PAD.decode("AQAB").unwrap(),
        };
        assert_eq!(
            thumbprint(&public),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037 Appendix A.3.
        let public = PublicParts::Okp {
            x: URL_SAFE_NO_PAD
                .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                .unwrap(),
        };
        assert_eq!(
            thumbprint(&public),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn thumbprint_matches_jsonwebtoken_for_ec_and_rsa() {
        // Not EdDSA: jsonwebtoken 10.3 omits the quotes around `crv` in its
        // OKP thumbprint input, so its Ed25519 thumbprints are not RFC 7638's.
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let der = generate(alg).unwrap();
            let key = KeyMaterial::from_pkcs8(alg, &der.0).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
            assert_eq!(
                jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
                key.kid(),
                "{alg}"
            );
        }
    }

    #[test]
    fn generated_key_with_wrong_algorithm_is_rejected() {
        let ec = generate(Algorithm::Es256).unwrap();
        assert!(KeyMaterial::from_pkcs8(Algorithm::EdDsa, &ec.0).is_err());
        assert!(KeyMaterial::from_pkcs8(Algorithm::Rs256, &ec.0).is_err());
        assert!(KeyMaterial::from_pkcs8(Algorithm::Es256, b"not a key").is_err());
    }
}
