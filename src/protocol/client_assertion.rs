//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID
//! Connect Core §9): the client proves who it is with a JWT signed by a key
//! whose public half it registered (`jwks` inline or at `jwks_uri`).
//!
//! This module is pure: it parses and checks key sets, reads an assertion's
//! claimed subject, and verifies signature and claims against keys and a
//! `now` handed in. Fetching a `jwks_uri` and remembering a `jti` (so an
//! assertion works once, across every instance) are I/O and live in
//! [`crate::authn::client_keys`].
//!
//! Misuse this module guards against:
//! * symmetric keys and `alg: none` / `HS*`: only asymmetric algorithms are
//!   accepted, and a key is used only with the algorithm family of its type
//!   (an EC P-256 key verifies ES256 and nothing else);
//! * an assertion for another server: every `aud` value must name this
//!   server (its issuer, its token endpoint or the endpoint called), so an
//!   assertion minted for several audiences cannot be replayed here;
//! * long-lived assertions: `exp` is required and at most
//!   [`MAX_LIFETIME_SECS`] ahead, so the replay cache stays small.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT assertion.
pub const ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Signing algorithms accepted on client assertions (all asymmetric).
pub const SIGNING_ALGS: [&str; 9] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

/// `token_endpoint_auth_method` (OpenID Connect Dynamic Client
/// Registration §2, RFC 7591 §2): how a client authenticates at the token,
/// PAR, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl ClientAuthMethod {
    pub const ALL: [ClientAuthMethod; 4] = [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::PrivateKeyJwt,
        ClientAuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
            ClientAuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where a `private_key_jwt` client's public keys are.
#[derive(Debug, Clone)]
pub enum ClientJwks {
    /// `jwks`: a JWK Set in the configuration.
    Inline(std::sync::Arc<JwkSet>),
    /// `jwks_uri`: fetched, cached, refetched on an unknown `kid`.
    Uri(url::Url),
}

/// How far in the future `exp` may be: an assertion is meant for one
/// request, and its `jti` is remembered until it expires.
pub const MAX_LIFETIME_SECS: i64 = 600;

/// Tolerated clock difference for `iat` and `nbf` in the future.
pub const MAX_SKEW_SECS: i64 = 60;

/// Longest `jti` accepted (it is hashed before it is stored).
pub const MAX_JTI_LEN: usize = 256;

/// Longest assertion accepted, before any parsing.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// Most keys in one client key set.
pub const MAX_KEYS: usize = 20;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Why an assertion was refused. The messages go to the client (as the
/// `error_description` of `invalid_client`) and to the log; they never
/// carry the assertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("client_assertion is not a JWT")]
    Malformed,
    #[error(
        "client_assertion is signed with an unsupported algorithm; use one of the asymmetric algorithms in token_endpoint_auth_signing_alg_values_supported"
    )]
    UnsupportedAlgorithm,
    #[error("client_assertion is not signed by a key registered for this client")]
    BadSignature,
    #[error("client_assertion iss and sub must both be the client_id (RFC 7523 §3)")]
    WrongSubject,
    #[error("client_assertion aud must be this server's issuer or the endpoint's URL")]
    WrongAudience,
    #[error("client_assertion has expired")]
    Expired,
    #[error("client_assertion exp is required and at most 600 seconds ahead")]
    BadExpiry,
    #[error("client_assertion is not valid yet (iat or nbf in the future)")]
    NotYetValid,
    #[error("client_assertion needs a jti of at most 256 characters")]
    BadJti,
    #[error("client_assertion was already used (its jti is accepted once)")]
    Replayed,
    #[error("the client's jwks_uri could not be fetched")]
    KeysUnavailable,
}

impl AssertionError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AssertionError::Malformed => "client_assertion.malformed",
            AssertionError::UnsupportedAlgorithm => "client_assertion.unsupported_alg",
            AssertionError::BadSignature => "client_assertion.bad_signature",
            AssertionError::WrongSubject => "client_assertion.wrong_subject",
            AssertionError::WrongAudience => "client_assertion.wrong_audience",
            AssertionError::Expired => "client_assertion.expired",
            AssertionError::BadExpiry => "client_assertion.bad_expiry",
            AssertionError::NotYetValid => "client_assertion.not_yet_valid",
            AssertionError::BadJti => "client_assertion.bad_jti",
            AssertionError::Replayed => "client_assertion.replayed",
            AssertionError::KeysUnavailable => "client_assertion.keys_unavailable",
        }
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

/// What a verified assertion leaves for the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    /// Unix seconds; the `jti` must be remembered until then.
    pub exp: i64,
}

/// The parts of an assertion that pick the keys, read before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads `alg` and `kid`; refuses anything but the asymmetric algorithms.
pub fn header(assertion: &str) -> Result<AssertionHeader, AssertionError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionError::Malformed);
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    if !SIGNING_ALGS.contains(&alg_name(header.alg)) {
        return Err(AssertionError::UnsupportedAlgorithm);
    }
    Ok(AssertionHeader {
        alg: header.alg,
        kid: header.kid,
    })
}

/// The client an assertion claims to come from (its `sub`), *unverified*:
/// only for finding the client whose keys then verify it (RFC 7521 §4.2
/// makes `client_id` optional beside an assertion).
pub fn claimed_client(assertion: &str) -> Option<String> {
    use base64::Engine as _;
    if assertion.len() > MAX_ASSERTION_LEN {
        return None;
    }
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: AssertionClaims = serde_json::from_slice(&bytes).ok()?;
    claims.sub
}

/// Verifies `assertion` for `client_id`: a signature by one of `keys` (with
/// `header`'s algorithm), `iss` = `sub` = `client_id`, every `aud` value in
/// `audiences`, `exp` in the future and at most [`MAX_LIFETIME_SECS`] away,
/// `iat`/`nbf` not in the future, and a `jti`.
pub fn verify(
    assertion: &str,
    header: &AssertionHeader,
    keys: &JwkSet,
    client_id: &str,
    audiences: &[String],
    now: i64,
) -> Result<VerifiedAssertion, AssertionError> {
    let claims = verify_signature(assertion, header, keys)?;
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err(AssertionError::WrongSubject);
    }
    let aud: Vec<String> = match claims.aud {
        Some(Audience::One(a)) => vec![a],
        Some(Audience::Many(a)) => a,
        None => Vec::new(),
    };
    if aud.is_empty() || !aud.iter().all(|a| audiences.contains(a)) {
        return Err(AssertionError::WrongAudience);
    }
    let exp = claims.exp.ok_or(AssertionError::BadExpiry)?;
    if exp <= now {
        return Err(AssertionError::Expired);
    }
    if exp > now + MAX_LIFETIME_SECS + MAX_SKEW_SECS {
        return Err(AssertionError::BadExpiry);
    }
    if [claims.iat, claims.nbf]
        .into_iter()
        .flatten()
        .any(|t| t > now + MAX_SKEW_SECS)
    {
        return Err(AssertionError::NotYetValid);
    }
    match claims.jti {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => {
            Ok(VerifiedAssertion { jti, exp })
        }
        _ => Err(AssertionError::BadJti),
    }
}

/// Tries each key that fits the header; the claims of the first that
/// verifies.
fn verify_signature(
    assertion: &str,
    header: &AssertionHeader,
    keys: &JwkSet,
) -> Result<AssertionClaims, AssertionError> {
    let mut validation = Validation::new(header.alg);
    // jsonwebtoken's time checks read the system clock; `verify` checks
    // exp/iat/nbf itself with the `now` it is given (see `keys::keyset`).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    for jwk in candidates(keys, header) {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
            return Ok(data.claims);
        }
    }
    Err(AssertionError::BadSignature)
}

/// The keys of `keys` that may have signed a JWT with `header`: the `kid`
/// matches (when both name one), the key type fits the algorithm, and the
/// key's own `alg`, if any, is the header's.
pub fn candidates<'k>(
    keys: &'k JwkSet,
    header: &'k AssertionHeader,
) -> impl Iterator<Item = &'k Jwk> + 'k {
    keys.keys.iter().filter(move |k| {
        let kid_ok = match (&header.kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        let alg_ok = k
            .common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == alg_name(header.alg));
        kid_ok && alg_ok && key_fits(k, header.alg)
    })
}

/// Whether `keys` names the key id `kid` (a miss makes a `jwks_uri` worth
/// fetching again: the client may have rotated).
pub fn has_kid(keys: &JwkSet, kid: &str) -> bool {
    keys.keys
        .iter()
        .any(|k| k.common.key_id.as_deref() == Some(kid))
}

fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm as A;
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, A::ES256) | (EllipticCurve::P384, A::ES384)
        ),
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == A::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => false,
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    use Algorithm as A;
    match alg {
        A::HS256 => "HS256",
        A::HS384 => "HS384",
        A::HS512 => "HS512",
        A::ES256 => "ES256",
        A::ES384 => "ES384",
        A::RS256 => "RS256",
        A::RS384 => "RS384",
        A::RS512 => "RS512",
        A::PS256 => "PS256",
        A::PS384 => "PS384",
        A::PS512 => "PS512",
        A::EdDSA => "EdDSA",
    }
}

/// Private-key members of a JWK (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2):
/// a key set that carries one was pasted from the wrong file.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Reads a client's JWK Set (the `jwks` setting, or a `jwks_uri` response)
/// and keeps it only if every key is a usable public signing key: EC P-256
/// or P-384, RSA of at least 2048 bits, or Ed25519. The message names the
/// offending key by position.
pub fn parse_jwks(value: &serde_json::Value) -> Result<JwkSet, String> {
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("must be a JWK Set: { keys = [ { kty = \"EC\", crv = \"P-256\", x = \"…\", y = \"…\" } ] }")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("must hold 1 to {MAX_KEYS} keys"));
    }
    let mut parsed = Vec::with_capacity(keys.len());
    for (i, raw) in keys.iter().enumerate() {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| raw.get(**m).is_some()) {
            return Err(format!(
                "keys[{i}] holds a private key (`{m}`); configure only the public key"
            ));
        }
        if raw
            .get("use")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            return Err(format!("keys[{i}]: `use` must be \"sig\""));
        }
        let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| {
            format!("keys[{i}] is not a JWK this server can use ({e}); use EC P-256/P-384, RSA or Ed25519")
        })?;
        check_key(&jwk).map_err(|m| format!("keys[{i}]: {m}"))?;
        parsed.push(jwk);
    }
    Ok(JwkSet { keys: parsed })
}

fn check_key(jwk: &Jwk) -> Result<(), String> {
    use base64::Engine as _;
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            if !matches!(ec.curve, EllipticCurve::P256 | EllipticCurve::P384) {
                return Err("EC keys must use the curve P-256 or P-384".to_owned());
            }
        }
        AlgorithmParameters::RSA(rsa) => {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|_| "RSA `n` is not base64url".to_owned())?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA keys need at least {MIN_RSA_BITS} bits"));
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("OKP keys must use the curve Ed25519".to_owned());
            }
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric keys (kty \"oct\") are not allowed; private_key_jwt needs a public key"
                    .to_owned(),
            );
        }
    }
    if let Some(alg) = jwk.common.key_algorithm {
        if !SIGNING_ALGS.contains(&format!("{alg:?}").as_str()) {
            return Err(format!(
                "`alg` {alg:?} is not an accepted signing algorithm"
            ));
        }
    }
    DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key ({e})"))?;
    Ok(())
}

/// Validates a `jwks_uri`: https, or http on a loopback host (development).
pub fn parse_jwks_uri(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|_| format!("{raw:?} is not an absolute URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "{raw:?} must use https (http only on a loopback host)"
            ));
        }
    }
    if url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const CLIENT: &str = "pkj";
    const ISSUER: &str = "https://idp.example";

    /// A fresh P-256 key pair: the signing key and its public JWK.
    fn p256(kid: &str) -> (EncodingKey, serde_json::Value) {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn sign(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(now: i64) -> serde_json::Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "iat": now,
               "exp": now + 60, "jti": "j1"})
    }

    fn check(assertion: &str, set: &JwkSet, now: i64) -> Result<VerifiedAssertion, AssertionError> {
        let h = header(assertion)?;
        verify(
            assertion,
            &h,
            set,
            CLIENT,
            &[ISSUER.to_owned(), format!("{ISSUER}/token")],
            now,
        )
    }

    #[test]
    fn client_assertion_refusals_cover_each_rule() {
        let now = 1_700_000_000;
        let (key, jwk) = p256("k1");
        let set = parse_jwks(&json!({"keys": [jwk]})).unwrap();
        let ok = check(&sign(&key, "k1", claims(now)), &set, now).unwrap();
        assert_eq!(
            ok,
            VerifiedAssertion {
                jti: "j1".into(),
                exp: now + 60
            }
        );
        // An array audience is fine when every value is ours.
        let mut c = claims(now);
        c["aud"] = json!([ISSUER, format!("{ISSUER}/token")]);
        assert!(check(&sign(&key, "k1", c), &set, now).is_ok());

        let (other, _) = p256("k1");
        let cases: Vec<(serde_json::Value, Option<&EncodingKey>, AssertionError)> = vec![
            (claims(now), Some(&other), AssertionError::BadSignature),
            (
                json!({"aud": "https://elsewhere"}),
                None,
                AssertionError::WrongAudience,
            ),
            (
                json!({"aud": [ISSUER, "https://elsewhere"]}),
                None,
                AssertionError::WrongAudience,
            ),
            (json!({"sub": "other"}), None, AssertionError::WrongSubject),
            (json!({"iss": "other"}), None, AssertionError::WrongSubject),
            (json!({"exp": now}), None, AssertionError::Expired),
            (json!({"exp": now + 3600}), None, AssertionError::BadExpiry),
            (json!({"exp": null}), None, AssertionError::BadExpiry),
            (json!({"iat": now + 600}), None, AssertionError::NotYetValid),
            (json!({"nbf": now + 600}), None, AssertionError::NotYetValid),
            (json!({"jti": null}), None, AssertionError::BadJti),
            (
                json!({"jti": "x".repeat(300)}),
                None,
                AssertionError::BadJti,
            ),
        ];
        for (patch, signer, want) in cases {
            let mut c = claims(now);
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            let got = check(&sign(signer.unwrap_or(&key), "k1", c.clone()), &set, now);
            assert_eq!(got, Err(want), "{c}");
        }
    }

    #[test]
    fn client_assertion_symmetric_and_none_algs_are_refused() {
        let now = 1_700_000_000;
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(now),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(header(&hs), Err(AssertionError::UnsupportedAlgorithm));
        // alg "none": jsonwebtoken cannot even parse it as a header.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJwa2oifQ.";
        assert!(header(none).is_err());
        assert_eq!(claimed_client(&hs).as_deref(), Some(CLIENT));
    }

    #[test]
    fn client_jwks_with_private_or_symmetric_keys_is_refused() {
        let (_, mut jwk) = p256("k");
        jwk["d"] = json!("AAAA");
        assert!(
            parse_jwks(&json!({"keys": [jwk]}))
                .unwrap_err()
                .contains("private key")
        );
        let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(parse_jwks(&oct).unwrap_err().contains("symmetric"));
        assert!(parse_jwks(&json!({"keys": []})).is_err());
        assert!(parse_jwks(&json!([1])).is_err());
    }

    #[test]
    fn client_auth_method_round_trips() {
        for m in ClientAuthMethod::ALL {
            assert_eq!(ClientAuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(ClientAuthMethod::parse("client_secret_jwt"), None);
    }

    #[test]
    fn client_jwks_uri_must_be_https_unless_loopback() {
        assert!(parse_jwks_uri("https://rp.example/jwks").is_ok());
        assert!(parse_jwks_uri("http://127.0.0.1:9000/jwks").is_ok());
        assert!(parse_jwks_uri("http://localhost/jwks").is_ok());
        assert!(parse_jwks_uri("http://rp.example/jwks").is_err());
        assert!(parse_jwks_uri("file:///etc/passwd").is_err());
    }
}
