//! Behaviour of the key set as a whole: files, races, rotation, tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Barrier};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

const T0: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);
const RETENTION: Duration = Duration::hours(1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
}

fn claims() -> Claims {
    Claims {
        sub: "user-1".into(),
        // Long expired: verify must not look at the clock.
        exp: 1,
    }
}

fn fresh(algorithm: Algorithm) -> (TempDir, KeySet) {
    let dir = TempDir::new().unwrap();
    let keys = load_or_create(dir.path(), algorithm, T0, RETENTION).unwrap();
    (dir, keys)
}

fn key_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn b64json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`, which is
/// what jsonwebtoken's `EncodingKey::from_rsa_der` expects.
fn pkcs8_to_pkcs1(der: &[u8]) -> Vec<u8> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = match input[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let count = (n & 0x7f) as usize;
                let len = input[2..2 + count]
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | b as usize);
                (len, 2 + count)
            }
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (tag, info, _) = tlv(der);
    assert_eq!(tag, 0x30);
    let (version, _, rest) = tlv(info);
    assert_eq!(version, 0x02);
    let (alg_id, _, rest) = tlv(rest);
    assert_eq!(alg_id, 0x30);
    let (octets, key, _) = tlv(rest);
    assert_eq!(octets, 0x04);
    key.to_vec()
}

fn signer_der(dir: &Path, kid: &str) -> Vec<u8> {
    keydir::scan(dir)
        .unwrap()
        .into_iter()
        .find(|k| k.meta.kid == kid)
        .unwrap()
        .pkcs8
        .0
}

#[test]
fn keyset_is_cheaply_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<KeySet>();
}

#[test]
fn sign_then_verify_round_trips_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let (_dir, keys) = fresh(alg);
        assert_eq!(keys.signing_algorithm(), alg);
        let token = keys.sign("JWT", &claims()).unwrap();

        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_part(parts[0]),
            json!({"alg": alg.as_str(), "kid": keys.signing_kid(), "typ": "JWT"}),
            "{alg}"
        );

        let verified = keys.verify::<Claims>(&token).unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.alg, alg);
        assert_eq!(verified.kid, keys.signing_kid());
        assert_eq!(verified.typ.as_deref(), Some("JWT"));
    }
}

#[test]
fn jwks_has_the_public_members_of_each_algorithm() {
    for alg in Algorithm::ALL {
        let (_dir, keys) = fresh(alg);
        let jwks = keys.jwks();
        let list = jwks["keys"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        let jwk = list[0].as_object().unwrap();
        assert_eq!(jwk["kid"], json!(keys.signing_kid()));
        assert_eq!(jwk["alg"], json!(alg.as_str()));
        assert_eq!(jwk["use"], json!("sig"));
        let len = |member: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[member].as_str().unwrap())
                .unwrap()
                .len()
        };
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        match alg {
            Algorithm::Es256 => {
                assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
                assert_eq!(jwk["kty"], json!("EC"));
                assert_eq!(jwk["crv"], json!("P-256"));
                assert_eq!((len("x"), len("y")), (32, 32));
            }
            Algorithm::EdDsa => {
                assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);
                assert_eq!(jwk["kty"], json!("OKP"));
                assert_eq!(jwk["crv"], json!("Ed25519"));
                assert_eq!(len("x"), 32);
            }
            Algorithm::Rs256 => {
                assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
                assert_eq!(jwk["kty"], json!("RSA"));
                assert_eq!(jwk["e"], json!("AQAB"));
                assert_eq!(len("n"), 256);
            }
        }
    }
}

#[test]
fn jwks_key_verifies_the_signature_independently() {
    for alg in Algorithm::ALL {
        let (_dir, keys) = fresh(alg);
        let token = keys.sign("at+jwt", &claims()).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(keys.jwks()["keys"][0].clone()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(alg.to_jsonwebtoken());
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims, claims());
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    }
}

#[test]
fn jsonwebtoken_encoding_key_accepts_the_stored_der() {
    for alg in Algorithm::ALL {
        let (dir, keys) = fresh(alg);
        let pkcs8 = signer_der(dir.path(), &keys.signing_kid());
        let encoding = match alg {
            Algorithm::Es256 => EncodingKey::from_ec_der(&pkcs8),
            Algorithm::EdDsa => EncodingKey::from_ed_der(&pkcs8),
            Algorithm::Rs256 => EncodingKey::from_rsa_der(&pkcs8_to_pkcs1(&pkcs8)),
        };
        // Same public key as ours, as jsonwebtoken derives it (it cannot
        // derive Ed25519 JWKs; the signature check below covers those).
        if alg != Algorithm::EdDsa {
            let derived =
                jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg.to_jsonwebtoken())
                    .unwrap();
            assert_eq!(
                derived.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
                keys.signing_kid()
            );
        }
        let mut header = Header::new(alg.to_jsonwebtoken());
        header.kid = Some(keys.signing_kid());
        let token = jsonwebtoken::encode(&header, &claims(), &encoding).unwrap();
        assert_eq!(
            keys.verify::<Claims>(&token).unwrap().claims,
            claims(),
            "{alg}"
        );
    }
}

#[test]
fn tampered_token_is_rejected() {
    for alg in Algorithm::ALL {
        let (_dir, keys) = fresh(alg);
        let token = keys.sign("JWT", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        let forged_payload = b64json(&json!({"sub": "admin", "exp": 1}));
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            keys.verify::<Claims>(&forged).unwrap_err().code(),
            "keys.invalid_signature"
        );

        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[5] ^= 0x01;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(
            keys.verify::<Claims>(&forged).unwrap_err().code(),
            "keys.invalid_signature"
        );

        let truncated = &token[..token.len() - 4];
        assert!(keys.verify::<Claims>(truncated).is_err());
    }
}

#[test]
fn alg_none_token_is_rejected() {
    let (_dir, keys) = fresh(Algorithm::Es256);
    let header = b64json(&json!({"alg": "none", "kid": keys.signing_kid(), "typ": "JWT"}));
    let payload = b64json(&json!({"sub": "admin", "exp": 1}));
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        let err = keys.verify::<Claims>(&token).unwrap_err();
        assert_eq!(err.code(), "keys.invalid_token", "{err}");
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    for alg in Algorithm::ALL {
        let (_dir, keys) = fresh(alg);
        let jwk = keys.jwks()["keys"][0].clone();
        let member = if alg == Algorithm::Rs256 { "n" } else { "x" };
        let public = URL_SAFE_NO_PAD
            .decode(jwk[member].as_str().unwrap())
            .unwrap();
        for secret in [public.as_slice(), jwk.to_string().as_bytes()] {
            let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(keys.signing_kid());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            assert_eq!(
                keys.verify::<Claims>(&token).unwrap_err().code(),
                "keys.algorithm_mismatch"
            );
        }
    }
}

#[test]
fn token_claiming_another_algorithm_for_our_kid_is_rejected() {
    let (_dir, es) = fresh(Algorithm::Es256);
    let (_other, rs) = fresh(Algorithm::Rs256);
    let token = rs.sign("JWT", &claims()).unwrap();
    // Re-label the RS256 token with our ES256 kid.
    let parts: Vec<&str> = token.split('.').collect();
    let header = b64json(&json!({"alg": "RS256", "kid": es.signing_kid(), "typ": "JWT"}));
    let relabelled = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_eq!(
        es.verify::<Claims>(&relabelled).unwrap_err().code(),
        "keys.algorithm_mismatch"
    );
}

#[test]
fn token_with_unknown_or_missing_kid_is_rejected() {
    let (_dir, keys) = fresh(Algorithm::Es256);
    let token = keys.sign("JWT", &claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let unknown = b64json(&json!({"alg": "ES256", "kid": "not-ours", "typ": "JWT"}));
    let token_unknown = format!("{unknown}.{}.{}", parts[1], parts[2]);
    assert_eq!(
        keys.verify::<Claims>(&token_unknown).unwrap_err().code(),
        "keys.unknown_kid"
    );
    let missing = b64json(&json!({"alg": "ES256", "typ": "JWT"}));
    let token_missing = format!("{missing}.{}.{}", parts[1], parts[2]);
    assert_eq!(
        keys.verify::<Claims>(&token_missing).unwrap_err().code(),
        "keys.invalid_token"
    );
}

#[test]
fn token_signed_by_another_directory_is_rejected() {
    for alg in Algorithm::ALL {
        let (_a, ours) = fresh(alg);
        let (_b, theirs) = fresh(alg);
        let token = theirs.sign("JWT", &claims()).unwrap();
        assert_eq!(
            ours.verify::<Claims>(&token).unwrap_err().code(),
            "keys.unknown_kid"
        );

        // Even when the foreign token borrows our kid.
        let parts: Vec<&str> = token.split('.').collect();
        let header =
            b64json(&json!({"alg": alg.as_str(), "kid": ours.signing_kid(), "typ": "JWT"}));
        let borrowed = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            ours.verify::<Claims>(&borrowed).unwrap_err().code(),
            "keys.invalid_signature"
        );
    }
}

#[test]
fn crit_header_is_rejected() {
    let (dir, keys) = fresh(Algorithm::Es256);
    let encoding = EncodingKey::from_ec_der(&signer_der(dir.path(), &keys.signing_kid()));
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(keys.signing_kid());
    header.crit = Some(vec!["exp".into()]);
    let token = jsonwebtoken::encode(&header, &claims(), &encoding).unwrap();
    assert_eq!(
        keys.verify::<Claims>(&token).unwrap_err().code(),
        "keys.invalid_token"
    );
}

#[test]
fn malformed_input_is_rejected_without_panicking() {
    let (_dir, keys) = fresh(Algorithm::Es256);
    let token = keys.sign("JWT", &claims()).unwrap();
    let long = "a".repeat(100_000);
    let fixed = [
        "",
        ".",
        "..",
        "...",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "é.é.é",
        "eyJ.eyJ.eyJ",
        "\0.\0.\0",
        long.as_str(),
    ];
    for input in fixed {
        let err = keys.verify::<Value>(input).unwrap_err();
        assert!(err.is_token_rejection(), "{input:?}: {err}");
    }
    // Every truncation and every single-byte change of a valid token.
    let bytes = token.as_bytes();
    for cut in 0..bytes.len() {
        assert!(keys.verify::<Value>(&token[..cut]).is_err());
    }
    for i in 0..bytes.len() {
        for replacement in [b'A', b'.', b'-', b'_', b'=', b' '] {
            if bytes[i] == replacement {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = replacement;
            let changed = String::from_utf8(changed).unwrap();
            if let Ok(verified) = keys.verify::<Value>(&changed) {
                // Only a change that base64url-decodes to the same bytes
                // (the padding bits of the last character) may pass.
                assert_eq!(verified.claims, serde_json::to_value(claims()).unwrap());
            }
        }
    }
}

#[test]
fn claims_of_the_wrong_shape_are_rejected_after_the_signature() {
    let (_dir, keys) = fresh(Algorithm::EdDsa);
    let token = keys.sign("JWT", &json!({"sub": 42})).unwrap();
    let err = keys.verify::<Claims>(&token).unwrap_err();
    assert_eq!(err.code(), "keys.invalid_claims");
    assert!(!err.to_string().contains("42"));
}

#[test]
fn sign_rejects_claims_that_are_not_an_object() {
    let (_dir, keys) = fresh(Algorithm::Es256);
    for claims in [json!([1, 2]), json!("sub"), json!(null)] {
        assert_eq!(keys.sign("JWT", &claims).unwrap_err().code(), "keys.sign");
    }
}

#[test]
fn verify_typed_requires_the_media_type() {
    let (_dir, keys) = fresh(Algorithm::Es256);
    let access = keys.sign("at+jwt", &claims()).unwrap();
    let id = keys.sign("JWT", &claims()).unwrap();
    let prefixed = keys.sign("application/AT+JWT", &claims()).unwrap();
    assert!(keys.verify_typed::<Claims>(&access, "at+jwt").is_ok());
    assert!(keys.verify_typed::<Claims>(&prefixed, "at+jwt").is_ok());
    assert_eq!(
        keys.verify_typed::<Claims>(&id, "at+jwt")
            .unwrap_err()
            .code(),
        "keys.unexpected_type"
    );
    assert!(keys.verify_typed::<Claims>(&id, "JWT").is_ok());
}

#[test]
fn racing_starts_on_an_empty_dir_agree_on_one_key() {
    for round in 0..5 {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("keys");
        let threads = 6;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let path = path.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let keys = load_or_create(&path, Algorithm::Es256, T0, RETENTION).unwrap();
                    (keys.signing_kid(), keys.published_kids())
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let (kid, published) = &results[0];
        assert!(
            results.iter().all(|(k, p)| k == kid && p == published),
            "round {round}: {results:?}"
        );
        assert_eq!(published, &vec![kid.clone()]);
        assert_eq!(key_files(&path), ["key-000001.json"], "round {round}");
    }
}

#[test]
fn load_or_create_on_an_existing_dir_keeps_the_key() {
    let (dir, first) = fresh(Algorithm::Es256);
    let again =
        load_or_create(dir.path(), Algorithm::Es256, T0 + Duration::DAY, RETENTION).unwrap();
    assert_eq!(first.signing_kid(), again.signing_kid());
    assert_eq!(key_files(dir.path()), ["key-000001.json"]);
}

#[test]
fn load_or_create_adds_a_key_when_the_algorithm_changes() {
    let (dir, es) = fresh(Algorithm::Es256);
    let later = T0 + Duration::minutes(5);
    let ed = load_or_create(dir.path(), Algorithm::EdDsa, later, RETENTION).unwrap();
    assert_ne!(ed.signing_kid(), es.signing_kid());
    // The ES256 key keeps verifying its tokens for the retention period.
    assert_eq!(ed.published_kids(), [ed.signing_kid(), es.signing_kid()]);
    let token = es.sign("JWT", &claims()).unwrap();
    assert!(ed.verify::<Claims>(&token).is_ok());
    let much_later = later + RETENTION;
    ed.reload(much_later).unwrap();
    assert_eq!(ed.published_kids(), [ed.signing_kid()]);
}

#[test]
fn rotate_switches_signer_and_retires_old_key_after_retention() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa] {
        let (dir, keys) = fresh(alg);
        let old = keys.signing_kid();
        let old_token = keys.sign("JWT", &claims()).unwrap();

        let t1 = T0 + Duration::minutes(10);
        let report = rotate(dir.path(), alg, t1, RETENTION).unwrap();
        assert_ne!(report.new_kid, old);
        assert_eq!(report.published, [report.new_kid.clone(), old.clone()]);
        assert!(report.removed.is_empty());
        assert_eq!(
            report.to_string(),
            format!(
                "new signing key: {new}\npublished keys:  {new}, {old}\nremoved keys:    (none)",
                new = report.new_kid
            )
        );

        keys.reload(t1).unwrap();
        assert_eq!(keys.signing_kid(), report.new_kid);
        let new_token = keys.sign("JWT", &claims()).unwrap();
        assert_eq!(
            keys.verify::<Claims>(&new_token).unwrap().kid,
            report.new_kid
        );
        // Within retention the old key still verifies and is published.
        keys.reload(t1 + RETENTION - Duration::SECOND).unwrap();
        assert_eq!(keys.published_kids(), [report.new_kid.clone(), old.clone()]);
        assert_eq!(keys.verify::<Claims>(&old_token).unwrap().kid, old);

        // Past retention it leaves the JWKS and verification at once...
        keys.reload(t1 + RETENTION).unwrap();
        assert_eq!(keys.published_kids(), [report.new_kid.as_str()]);
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1);
        assert_eq!(
            keys.verify::<Claims>(&old_token).unwrap_err().code(),
            "keys.unknown_kid"
        );
        assert_eq!(key_files(dir.path()).len(), 2);

        // ...and the next rotation deletes its file.
        let t2 = t1 + RETENTION;
        let second = rotate(dir.path(), alg, t2, RETENTION).unwrap();
        assert_eq!(second.removed, [old.as_str()]);
        assert_eq!(
            second.published,
            [second.new_kid.clone(), report.new_kid.clone()]
        );
        assert_eq!(
            key_files(dir.path()),
            ["key-000002.json", "key-000003.json"]
        );
    }
}

#[test]
fn rotate_with_clock_behind_the_newest_key_still_makes_the_new_key_signer() {
    let (dir, keys) = fresh(Algorithm::Es256);
    let report = rotate(dir.path(), Algorithm::Es256, T0 - Duration::HOUR, RETENTION).unwrap();
    keys.reload(T0).unwrap();
    assert_eq!(keys.signing_kid(), report.new_kid);
}

#[test]
fn reload_picks_up_a_key_created_by_another_keyset() {
    let (dir, ours) = fresh(Algorithm::Es256);
    let theirs = KeySet::load(dir.path(), Algorithm::Es256, T0, RETENTION).unwrap();
    assert_eq!(ours.signing_kid(), theirs.signing_kid());

    let t1 = T0 + Duration::minutes(1);
    let report = rotate(theirs.dir(), Algorithm::Es256, t1, RETENTION).unwrap();
    theirs.reload(t1).unwrap();
    let token = theirs.sign("JWT", &claims()).unwrap();
    // Not known before reload...
    assert_eq!(
        ours.verify::<Claims>(&token).unwrap_err().code(),
        "keys.unknown_kid"
    );
    // ...known after, and now our signer too.
    ours.reload(t1).unwrap();
    assert_eq!(ours.verify::<Claims>(&token).unwrap().kid, report.new_kid);
    assert_eq!(ours.signing_kid(), report.new_kid);
    assert_eq!(ours.jwks(), theirs.jwks());
}

#[test]
fn reload_failure_keeps_the_previous_keys() {
    let (dir, keys) = fresh(Algorithm::Es256);
    let kid = keys.signing_kid();
    std::fs::write(dir.path().join("key-000009.json"), "{ not json").unwrap();
    let err = keys.reload(T0).unwrap_err();
    assert_eq!(err.code(), "keys.corrupt");
    assert!(err.to_string().contains("key-000009.json"), "{err}");
    assert_eq!(keys.signing_kid(), kid);
    assert!(keys.sign("JWT", &claims()).is_ok());
}

#[test]
fn key_file_is_private_and_holds_the_documented_fields() {
    let (dir, keys) = fresh(Algorithm::Es256);
    let path = dir.path().join("key-000001.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    assert_eq!(key_files(dir.path()), ["key-000001.json"]);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["kid"], json!(keys.signing_kid()));
    assert_eq!(file["alg"], json!("ES256"));
    assert_eq!(file["created_at"], json!("2025-06-01T12:00:00Z"));
    // The private key is base64 PKCS#8 DER (an ASN.1 SEQUENCE, tag 0x30).
    let der = base64::engine::general_purpose::STANDARD
        .decode(file["private_key_pkcs8"].as_str().unwrap())
        .unwrap();
    assert_eq!(der[0], 0x30);
}

#[test]
fn edited_key_file_is_reported_without_its_contents() {
    let (dir, _keys) = fresh(Algorithm::Es256);
    let path = dir.path().join("key-000001.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let private_key = file["private_key_pkcs8"].as_str().unwrap().to_owned();
    file["kid"] = json!("chosen-kid");
    std::fs::write(&path, file.to_string()).unwrap();

    let err = KeySet::load(dir.path(), Algorithm::Es256, T0, RETENTION).unwrap_err();
    assert_eq!(err.code(), "keys.corrupt");
    let msg = err.to_string();
    assert!(msg.contains("key-000001.json"), "{msg}");
    let body = &private_key[..private_key.len().min(64)];
    assert!(!msg.contains(body));

    // A private key of the wrong type for the declared algorithm.
    file["kid"] = json!(_keys.signing_kid());
    file["alg"] = json!("RS256");
    std::fs::write(&path, file.to_string()).unwrap();
    let err = KeySet::load(dir.path(), Algorithm::Rs256, T0, RETENTION).unwrap_err();
    assert_eq!(err.code(), "keys.corrupt");
    assert!(!err.to_string().contains(body));
}

#[test]
fn load_without_keys_or_dir_names_the_problem() {
    let dir = TempDir::new().unwrap();
    let err = KeySet::load(dir.path(), Algorithm::Es256, T0, RETENTION).unwrap_err();
    assert_eq!(err.code(), "keys.no_signing_key");

    let missing = dir.path().join("missing");
    let err = KeySet::load(&missing, Algorithm::Es256, T0, RETENTION).unwrap_err();
    assert_eq!(err.code(), "keys.io");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn debug_output_holds_no_key_material() {
    let (dir, keys) = fresh(Algorithm::Es256);
    let debug = format!("{keys:?}");
    assert!(debug.contains(&keys.signing_kid()));
    let der = signer_der(dir.path(), &keys.signing_kid());
    assert!(!debug.contains(&base64::engine::general_purpose::STANDARD.encode(&der)[..40]));
    assert!(!debug.contains("PRIVATE"));
}

#[test]
fn token_hash_matches_known_vectors() {
    // Computed with: printf %s TOKEN | openssl dgst -sha256 -binary | head -c16 | basenc --base64url
    // (-sha512 and head -c32 for EdDSA).
    let token = "jHkWEdUXMU1BwAsC4vtUsZwnNtMgEtg4";
    assert_eq!(
        token_hash(Algorithm::Es256, token),
        "cNA9u1hk-xJgy_WfCml-cg"
    );
    assert_eq!(
        token_hash(Algorithm::Rs256, token),
        "cNA9u1hk-xJgy_WfCml-cg"
    );
    assert_eq!(
        token_hash(Algorithm::EdDsa, token),
        "IMV4QcYfb6Oa7TnKAOmt7qgKx9r-XYyqjoQ1dj_DEps"
    );
    let code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";
    assert_eq!(token_hash(Algorithm::Rs256, code), "LDktKdoQak3Pk0cnXxCltA");
}

#[test]
fn token_hash_agrees_with_openidconnect() {
    use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};
    use openidconnect::{AccessToken, AccessTokenHash};
    for (alg, core_alg) in [
        (Algorithm::Es256, CoreJwsSigningAlgorithm::EcdsaP256Sha256),
        (
            Algorithm::Rs256,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        ),
        (Algorithm::EdDsa, CoreJwsSigningAlgorithm::EdDsa),
    ] {
        let (_dir, keys) = fresh(alg);
        let jwk: CoreJsonWebKey = serde_json::from_value(keys.jwks()["keys"][0].clone()).unwrap();
        let token = "an-opaque-or-jwt-access-token";
        let expected =
            AccessTokenHash::from_token(&AccessToken::new(token.into()), &core_alg, &jwk).unwrap();
        assert_eq!(token_hash(alg, token), expected.to_string(), "{alg}");
    }
}
