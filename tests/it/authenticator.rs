//! `KeyAuthenticator`: a software WebAuthn authenticator (and the client
//! around it) whose AAGUID, attestation and backup flags the test chooses.
//!
//! The harness's `SoftAuthenticator` wraps webauthn-authenticator-rs's
//! `SoftPasskey`, which always reports the all-zero AAGUID and self
//! attestation, so a server policy keyed on AAGUIDs or on attestation (allow
//! lists, block lists, "attestation enforced") cannot be told apart from "no
//! policy" with it. This one is written from WebAuthn Level 3: it builds
//! authenticator data (§6.1), the attestation object (§6.5) in the "none"
//! or "packed" format (§8.2, §8.7), and the client data JSON (§5.8.1) itself,
//! and signs with a P-256 key (ES256), so the server verifies exactly what
//! it would from real hardware of the chosen model.
//!
//! Like a browser with a platform authenticator it answers the options JSON
//! the server sends (`{"publicKey": {...}}`) with the JSON a page posts back.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatepass::clock::{Clock, SystemClock};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, BigNumContext, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::sha::sha256;
use openssl::sign::Signer;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Extension, X509Name, X509NameBuilder, X509NameRef};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AttestationCaList, AttestationMetadata, AttestedPasskey, DiscoverableKey,
    ParsedAttestationData, Passkey, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// COSE algorithm ES256 (ECDSA on P-256 with SHA-256): the one algorithm
/// this authenticator has, and the one every relying party must accept.
const ES256: i64 = -7;

/// Authenticator data flags (WebAuthn L3 §6.1): user present, user
/// verified, backup eligible, backup state, attested credential data.
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;

/// id-fido-gen-ce-aaguid (WebAuthn L3 §8.2.1): names the authenticator
/// model inside its attestation certificate.
const FIDO_GEN_CE_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

/// Validity of the generated certificates: from yesterday (so clock skew
/// between the test and OpenSSL's verification never makes them "not yet
/// valid") for ten years.
const ONE_DAY_SECS: i64 = 24 * 60 * 60;
const VALIDITY_DAYS: i64 = 3653;

/// What the authenticator proves about itself at registration.
pub enum Attestation {
    /// Format "none" with an empty statement: the server learns the AAGUID
    /// from authenticator data but nothing vouches for it.
    None,
    /// Format "packed", signed by the credential key itself (no `x5c`):
    /// proves possession of the key, not the model.
    SelfAttested,
    /// Format "packed" with `x5c = [leaf]`, the leaf issued by this CA for
    /// the authenticator's AAGUID: what a certified security key sends.
    Certified(AttestationCa),
}

/// A vendor's attestation root: tests trust it (through
/// [`AttestationCa::pem`]) or deliberately trust another one.
#[derive(Clone)]
pub struct AttestationCa {
    key: PKey<Private>,
    cert: X509,
}

impl AttestationCa {
    /// A fresh self-signed P-256 root (basicConstraints CA:TRUE).
    pub fn generate() -> Self {
        Self::build().expect("generate the attestation CA")
    }

    /// The root certificate in PEM, as a relying party's trust list takes it.
    pub fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().expect("PEM-encode the CA")).expect("PEM is ASCII")
    }

    fn build() -> Result<Self, ErrorStack> {
        let key = p256_key()?;
        let name = x509_name(&[
            ("C", "SE"),
            ("O", "Gatepass Tests"),
            ("CN", "Gatepass Test Attestation Root"),
        ])?;
        let mut builder = certificate_builder(&name, &name, &key)?;
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
        builder.append_extension(ski)?;
        builder.sign(&key, MessageDigest::sha256())?;
        Ok(Self {
            key,
            cert: builder.build(),
        })
    }

    /// Issues an attestation certificate for the model `aaguid` meeting
    /// WebAuthn L3 §8.2.1; returns its key and DER.
    fn issue(&self, aaguid: Uuid) -> Result<(PKey<Private>, Vec<u8>), ErrorStack> {
        let key = p256_key()?;
        let subject = x509_name(&[
            ("C", "SE"),
            ("O", "Gatepass Tests"),
            ("OU", "Authenticator Attestation"),
            ("CN", "Gatepass Test Authenticator"),
        ])?;
        let mut builder = certificate_builder(&subject, self.cert.subject_name(), &key)?;
        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&self.cert), None))?;
        builder.append_extension(aki)?;
        // The extension's value is an OCTET STRING holding the 16 AAGUID
        // bytes; `new_from_der` takes that value's DER encoding.
        let mut value = vec![0x04, 16];
        value.extend_from_slice(aaguid.as_bytes());
        let oid = Asn1Object::from_str(FIDO_GEN_CE_AAGUID)?;
        let value = Asn1OctetString::new_from_bytes(&value)?;
        builder.append_extension(X509Extension::new_from_der(&oid, false, &value)?)?;
        builder.sign(&self.key, MessageDigest::sha256())?;
        Ok((key, builder.build().to_der()?))
    }
}

/// The credential the authenticator holds. It is discoverable (a resident
/// key), so the authenticator can answer a request that names no credential.
struct Credential {
    id: Vec<u8>,
    key: PKey<Private>,
}

/// A software authenticator of a chosen model, acting for a browser at
/// `origin`. It holds one credential at a time: registering again replaces
/// it, as registering the same account again on a phone does.
///
/// It always performs user verification and ignores the server's
/// attestation conveyance preference, so the server sees the configured
/// attestation whatever it asked for and its own policy decides.
pub struct KeyAuthenticator {
    pub origin: url::Url,
    /// The registered user's handle (`user.id`), base64url.
    pub user_handle: Option<String>,
    /// The registered credential's id, base64url.
    pub credential_id: Option<String>,
    aaguid: Uuid,
    attestation: Attestation,
    backup_eligible: bool,
    credential: Option<Credential>,
    counter: u32,
}

impl KeyAuthenticator {
    /// A device-bound authenticator of model `aaguid` sending no attestation.
    pub fn new(origin: &str, aaguid: Uuid) -> Self {
        Self {
            origin: url::Url::parse(origin).expect("origin"),
            user_handle: None,
            credential_id: None,
            aaguid,
            attestation: Attestation::None,
            backup_eligible: false,
            credential: None,
            counter: 0,
        }
    }

    pub fn with_attestation(mut self, attestation: Attestation) -> Self {
        self.attestation = attestation;
        self
    }

    /// A synced passkey: backup eligible and backed up (BE and BS set),
    /// which servers may treat differently from a device-bound key.
    pub fn synced(mut self) -> Self {
        self.backup_eligible = true;
        self
    }

    pub fn aaguid(&self) -> Uuid {
        self.aaguid
    }

    /// Answers `navigator.credentials.create` options: creates a resident
    /// ES256 credential and returns the `RegisterPublicKeyCredential` JSON.
    pub fn register(&mut self, options: Value) -> Value {
        let public_key = &options["publicKey"];
        let offers_es256 = public_key["pubKeyCredParams"]
            .as_array()
            .is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p["type"] == "public-key" && p["alg"] == ES256)
            });
        assert!(
            offers_es256,
            "the server does not accept ES256: {}",
            public_key["pubKeyCredParams"]
        );
        if let Some(held) = &self.credential {
            // A credential the server already has for this account: the
            // authenticator refuses rather than register it twice (L3
            // §6.3.2 step 3, InvalidStateError in the browser).
            assert!(
                !descriptor_ids(public_key, "excludeCredentials").contains(&held.id),
                "this authenticator's credential is excluded (already registered)"
            );
        }
        let rp_id_hash = self.rp_id_hash(required_str(public_key, "/rp/id"));
        let user_handle = required_str(public_key, "/user/id").to_owned();
        let client_data =
            self.client_data("webauthn.create", required_str(public_key, "/challenge"));

        let key = p256_key().expect("generate the credential key");
        let mut id = vec![0; 32];
        openssl::rand::rand_bytes(&mut id).expect("random credential id");
        let mut auth_data = self.auth_data(&rp_id_hash, FLAG_AT, 0);
        auth_data.extend_from_slice(self.aaguid.as_bytes());
        auth_data.extend_from_slice(
            &u16::try_from(id.len())
                .expect("credential id length")
                .to_be_bytes(),
        );
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key));

        let signed = [auth_data.as_slice(), &sha256(client_data.as_bytes())];
        let (fmt, statement) = match &self.attestation {
            Attestation::None => ("none", BTreeMap::new()),
            Attestation::SelfAttested => ("packed", packed_statement(es256(&key, &signed))),
            Attestation::Certified(ca) => {
                let (leaf_key, leaf) = ca
                    .issue(self.aaguid)
                    .expect("issue the attestation certificate");
                let mut statement = packed_statement(es256(&leaf_key, &signed));
                statement.insert(text("x5c"), Cbor::Array(vec![Cbor::Bytes(leaf)]));
                ("packed", statement)
            }
        };
        let attestation_object = serde_cbor_2::to_vec(&Cbor::Map(BTreeMap::from([
            (text("fmt"), text(fmt)),
            (text("attStmt"), Cbor::Map(statement)),
            (text("authData"), Cbor::Bytes(auth_data)),
        ])))
        .expect("CBOR-encode the attestation object");

        let id_b64 = URL_SAFE_NO_PAD.encode(&id);
        self.credential = Some(Credential { id, key });
        self.credential_id = Some(id_b64.clone());
        self.user_handle = Some(user_handle);
        self.counter = 0;
        json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(attestation_object),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
            },
            "extensions": {},
        })
    }

    /// Answers `navigator.credentials.get` options with an assertion by the
    /// held credential, returning the `PublicKeyCredential` JSON. With no
    /// `allowCredentials` the request is discoverable and the held
    /// credential answers; the user handle is returned either way, as a
    /// resident-key authenticator returns it.
    pub fn authenticate(&mut self, options: Value) -> Value {
        let public_key = &options["publicKey"];
        let credential = self
            .credential
            .as_ref()
            .expect("authenticate before any registration");
        let allowed = descriptor_ids(public_key, "allowCredentials");
        assert!(
            allowed.is_empty() || allowed.contains(&credential.id),
            "the server asked for other credentials than this authenticator's"
        );
        let rp_id_hash = self.rp_id_hash(required_str(public_key, "/rpId"));
        let client_data = self.client_data("webauthn.get", required_str(public_key, "/challenge"));
        self.counter = self.counter.checked_add(1).expect("signature counter");
        let auth_data = self.auth_data(&rp_id_hash, 0, self.counter);
        let signature = es256(
            &credential.key,
            &[auth_data.as_slice(), &sha256(client_data.as_bytes())],
        );
        let id = URL_SAFE_NO_PAD.encode(&credential.id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "signature": URL_SAFE_NO_PAD.encode(signature),
                "userHandle": self.user_handle,
            },
            "extensions": {},
        })
    }

    /// SHA-256 of the RP id, after the browser's check that the RP id is
    /// the origin's host or a parent domain of it (L3 §5.1.3 step 8).
    fn rp_id_hash(&self, rp_id: &str) -> [u8; 32] {
        let host = self.origin.host_str().unwrap_or_default();
        assert!(
            host == rp_id || host.ends_with(&format!(".{rp_id}")),
            "RP id {rp_id:?} is not valid for the origin {}",
            self.origin
        );
        sha256(rp_id.as_bytes())
    }

    /// The client data JSON in the spec's serialization order (L3
    /// §5.8.1.1), so a server's limited verification also accepts it.
    fn client_data(&self, kind: &str, challenge: &str) -> String {
        let origin = self.origin.origin().ascii_serialization();
        format!(
            r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
            Value::from(kind),
            Value::from(challenge),
            Value::from(origin),
        )
    }

    /// Authenticator data up to (not including) attested credential data:
    /// rpIdHash, flags (UP and UV always, BE|BS for a synced passkey, plus
    /// `extra`), and the big-endian signature counter.
    fn auth_data(&self, rp_id_hash: &[u8; 32], extra: u8, counter: u32) -> Vec<u8> {
        let backup = if self.backup_eligible {
            FLAG_BE | FLAG_BS
        } else {
            0
        };
        let mut data = rp_id_hash.to_vec();
        data.push(FLAG_UP | FLAG_UV | backup | extra);
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }
}

/// A string the options must carry, at a JSON pointer.
fn required_str<'a>(public_key: &'a Value, pointer: &str) -> &'a str {
    public_key
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("the options have no publicKey{pointer}"))
}

/// The credential ids in a list of credential descriptors (absent: none).
fn descriptor_ids(public_key: &Value, field: &str) -> Vec<Vec<u8>> {
    public_key[field]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let id = d["id"].as_str().expect("descriptor id");
            URL_SAFE_NO_PAD
                .decode(id)
                .expect("descriptor id is base64url")
        })
        .collect()
}

fn p256_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// The credential public key as a COSE_Key (RFC 9053): EC2, ES256, P-256,
/// with 32-byte x and y.
fn cose_key(key: &PKeyRef<Private>) -> Vec<u8> {
    let ec = key.ec_key().expect("an EC key");
    let (mut x, mut y) = (BigNum::new().expect("bn"), BigNum::new().expect("bn"));
    let mut ctx = BigNumContext::new().expect("bn context");
    ec.public_key()
        .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
        .expect("public key coordinates");
    let coordinate = |n: &BigNum| Cbor::Bytes(n.to_vec_padded(32).expect("32-byte coordinate"));
    let map = BTreeMap::from([
        (Cbor::Integer(1), Cbor::Integer(2)),
        (Cbor::Integer(3), Cbor::Integer(ES256.into())),
        (Cbor::Integer(-1), Cbor::Integer(1)),
        (Cbor::Integer(-2), coordinate(&x)),
        (Cbor::Integer(-3), coordinate(&y)),
    ]);
    serde_cbor_2::to_vec(&Cbor::Map(map)).expect("CBOR-encode the COSE key")
}

/// An ES256 signature (DER-encoded ECDSA, as WebAuthn carries it) over the
/// concatenation of `parts`.
fn es256(key: &PKeyRef<Private>, parts: &[&[u8]]) -> Vec<u8> {
    let mut signer = Signer::new(MessageDigest::sha256(), key).expect("signer");
    for part in parts {
        signer.update(part).expect("sign");
    }
    signer.sign_to_vec().expect("sign")
}

/// A "packed" statement without `x5c`: `{alg: -7, sig}`.
fn packed_statement(sig: Vec<u8>) -> BTreeMap<Cbor, Cbor> {
    BTreeMap::from([
        (text("alg"), Cbor::Integer(ES256.into())),
        (text("sig"), Cbor::Bytes(sig)),
    ])
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

fn x509_name(entries: &[(&str, &str)]) -> Result<X509Name, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    for (field, value) in entries {
        name.append_entry_by_text(field, value)?;
    }
    Ok(name.build())
}

/// A v3 certificate for `key` with a random serial and the shared validity,
/// ready for extensions and signing.
fn certificate_builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKeyRef<Private>,
) -> Result<X509Builder, ErrorStack> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(subject)?;
    builder.set_issuer_name(issuer)?;
    builder.set_pubkey(key)?;
    let from = SystemClock.now().unix_timestamp() - ONE_DAY_SECS;
    let until = from + VALIDITY_DAYS * ONE_DAY_SECS;
    let not_before = Asn1Time::from_unix(from)?;
    let not_after = Asn1Time::from_unix(until)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    Ok(builder)
}

// ---- The authenticator against webauthn-rs, as Gatepass configures it.

const ORIGIN: &str = "https://localhost:8443";
const USER: Uuid = Uuid::from_u128(0x0b5e_55ed_0000_4000_8000_0000_0000_0001);
/// An arbitrary model id, nothing like the all-zero one `SoftPasskey`
/// reports.
const AAGUID: Uuid = Uuid::from_u128(0x9c83_5346_796b_4c27_8898_d603_2f51_5cc5);

/// Built as `Passkeys::new` builds it for the issuer `ORIGIN`.
fn webauthn() -> Webauthn {
    let origin = url::Url::parse(ORIGIN).expect("origin");
    WebauthnBuilder::new("localhost", &origin)
        .expect("builder")
        .rp_name("Gatepass")
        .build()
        .expect("webauthn")
}

/// Creation options as Gatepass sends them (residentKey required).
fn passkey_options(webauthn: &Webauthn) -> (Value, webauthn_rs::prelude::PasskeyRegistration) {
    let (ccr, state) = webauthn
        .start_passkey_registration(USER, "ada", "Ada", None)
        .expect("start registration");
    let mut options = serde_json::to_value(ccr).expect("json");
    options["publicKey"]["authenticatorSelection"]["residentKey"] = json!("required");
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(true);
    (options, state)
}

fn register_passkey(webauthn: &Webauthn, auth: &mut KeyAuthenticator) -> Passkey {
    let (options, state) = passkey_options(webauthn);
    let reg = serde_json::from_value(auth.register(options)).expect("registration JSON");
    webauthn
        .finish_passkey_registration(&reg, &state)
        .expect("passkey registration")
}

/// An attested registration trusting only `trusted`.
fn register_attested(
    auth: &mut KeyAuthenticator,
    trusted: &AttestationCa,
) -> Result<AttestedPasskey, WebauthnError> {
    let webauthn = webauthn();
    let cas = AttestationCaList::try_from(trusted.pem().as_bytes()).expect("CA list");
    let (ccr, state) = webauthn
        .start_attested_passkey_registration(USER, "ada", "Ada", None, cas, None)
        .expect("start attested registration");
    let reg = serde_json::from_value(auth.register(serde_json::to_value(ccr).expect("json")))
        .expect("registration JSON");
    webauthn.finish_attested_passkey_registration(&reg, &state)
}

/// Signs in with `passkey` (allow-list request); the result.
fn sign_in(
    webauthn: &Webauthn,
    auth: &mut KeyAuthenticator,
    passkey: &Passkey,
) -> webauthn_rs::prelude::AuthenticationResult {
    let (rcr, state) = webauthn
        .start_passkey_authentication(std::slice::from_ref(passkey))
        .expect("start authentication");
    let assertion = auth.authenticate(serde_json::to_value(rcr).expect("json"));
    let credential = serde_json::from_value(assertion).expect("assertion JSON");
    webauthn
        .finish_passkey_authentication(&credential, &state)
        .expect("passkey authentication")
}

#[test]
fn passkey_registers_and_signs_in_with_every_attestation() {
    let webauthn = webauthn();
    for attestation in [
        Attestation::None,
        Attestation::SelfAttested,
        Attestation::Certified(AttestationCa::generate()),
    ] {
        let mut auth = KeyAuthenticator::new(ORIGIN, AAGUID).with_attestation(attestation);
        let mut passkey = register_passkey(&webauthn, &mut auth);
        assert_eq!(
            auth.credential_id.as_deref(),
            Some(
                URL_SAFE_NO_PAD
                    .encode(passkey.cred_id().as_slice())
                    .as_str()
            )
        );
        for expected in 1..=2 {
            let result = sign_in(&webauthn, &mut auth, &passkey);
            assert!(result.user_verified());
            assert_eq!(result.counter(), expected);
            assert!(!result.backup_eligible() && !result.backup_state());
            assert_eq!(passkey.update_credential(&result), Some(true));
        }
    }
}

#[test]
fn synced_passkey_reports_backup_flags() {
    let webauthn = webauthn();
    let mut auth = KeyAuthenticator::new(ORIGIN, AAGUID).synced();
    let passkey = register_passkey(&webauthn, &mut auth);
    let result = sign_in(&webauthn, &mut auth, &passkey);
    assert!(result.backup_eligible() && result.backup_state());
}

#[test]
fn attested_registration_needs_a_certificate_from_the_trusted_ca() {
    let ca = AttestationCa::generate();
    let mut certified =
        KeyAuthenticator::new(ORIGIN, AAGUID).with_attestation(Attestation::Certified(ca.clone()));
    let passkey = register_attested(&mut certified, &ca).expect("certified registration");

    // The attested passkey signs in too, counter and all.
    let webauthn = webauthn();
    let (rcr, state) = webauthn
        .start_attested_passkey_authentication(std::slice::from_ref(&passkey))
        .expect("start");
    let assertion = certified.authenticate(serde_json::to_value(rcr).expect("json"));
    let result = webauthn
        .finish_attested_passkey_authentication(
            &serde_json::from_value(assertion).expect("assertion JSON"),
            &state,
        )
        .expect("attested authentication");
    assert_eq!(result.counter(), 1);

    for attestation in [Attestation::None, Attestation::SelfAttested] {
        let mut auth = KeyAuthenticator::new(ORIGIN, AAGUID).with_attestation(attestation);
        assert!(matches!(
            register_attested(&mut auth, &ca),
            Err(WebauthnError::AttestationNotVerifiable)
        ));
    }

    let mut other = KeyAuthenticator::new(ORIGIN, AAGUID)
        .with_attestation(Attestation::Certified(AttestationCa::generate()));
    assert!(matches!(
        register_attested(&mut other, &ca),
        Err(WebauthnError::AttestationChainNotTrusted(_))
    ));

    // webauthn-rs's attested registration refuses synced passkeys even
    // with a trusted certificate.
    let mut synced = KeyAuthenticator::new(ORIGIN, AAGUID)
        .with_attestation(Attestation::Certified(ca.clone()))
        .synced();
    assert!(matches!(
        register_attested(&mut synced, &ca),
        Err(WebauthnError::CredentialMayNotBeHardwareBound)
    ));
}

#[test]
fn certified_registration_reports_the_configured_aaguid() {
    let ca = AttestationCa::generate();
    let mut auth =
        KeyAuthenticator::new(ORIGIN, AAGUID).with_attestation(Attestation::Certified(ca.clone()));
    assert_eq!(auth.aaguid(), AAGUID);
    let passkey = register_attested(&mut auth, &ca).expect("certified registration");
    let attestation = passkey.attestation();
    assert!(matches!(
        attestation.metadata,
        AttestationMetadata::Packed { aaguid } if aaguid == AAGUID
    ));

    // The certificate the server kept names the model too, in a
    // non-critical id-fido-gen-ce-aaguid extension: OID, then (no
    // `critical` BOOLEAN) the extnValue OCTET STRING wrapping an OCTET
    // STRING of the 16 AAGUID bytes.
    let ParsedAttestationData::Basic(chain) = &attestation.data else {
        panic!("not a basic attestation");
    };
    let leaf = chain[0].to_der().expect("DER");
    let mut extension = vec![0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xe5, 0x1c];
    extension.extend_from_slice(&[0x01, 0x01, 0x04, 0x04, 0x12, 0x04, 0x10]);
    extension.extend_from_slice(AAGUID.as_bytes());
    assert!(leaf.windows(extension.len()).any(|w| w == extension));
}

#[test]
fn discoverable_request_returns_the_user_handle() {
    let webauthn = webauthn();
    let mut auth = KeyAuthenticator::new(ORIGIN, AAGUID);
    let passkey = register_passkey(&webauthn, &mut auth);
    let (rcr, state) = webauthn
        .start_discoverable_authentication()
        .expect("start discoverable");
    let options = serde_json::to_value(rcr).expect("json");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    let assertion = auth.authenticate(options);
    assert_eq!(
        assertion["response"]["userHandle"].as_str(),
        Some(URL_SAFE_NO_PAD.encode(USER.as_bytes()).as_str())
    );
    let credential = serde_json::from_value(assertion).expect("assertion JSON");
    let (user, cred_id) = webauthn
        .identify_discoverable_authentication(&credential)
        .expect("user handle");
    assert_eq!(user, USER);
    assert_eq!(cred_id, passkey.cred_id().as_slice());
    let result = webauthn
        .finish_discoverable_authentication(&credential, state, &[DiscoverableKey::from(&passkey)])
        .expect("discoverable authentication");
    assert_eq!(result.counter(), 1);
}

#[test]
#[should_panic(expected = "excluded")]
fn excluded_credential_is_refused() {
    let webauthn = webauthn();
    let mut auth = KeyAuthenticator::new(ORIGIN, AAGUID);
    let passkey = register_passkey(&webauthn, &mut auth);
    let (ccr, _) = webauthn
        .start_passkey_registration(USER, "ada", "Ada", Some(vec![passkey.cred_id().clone()]))
        .expect("start registration");
    auth.register(serde_json::to_value(ccr).expect("json"));
}

#[test]
#[should_panic(expected = "other credentials")]
fn request_for_another_credential_is_refused() {
    let webauthn = webauthn();
    let mut ours = KeyAuthenticator::new(ORIGIN, AAGUID);
    register_passkey(&webauthn, &mut ours);
    let mut theirs = KeyAuthenticator::new(ORIGIN, AAGUID);
    let their_passkey = register_passkey(&webauthn, &mut theirs);
    let (rcr, _) = webauthn
        .start_passkey_authentication(&[their_passkey])
        .expect("start authentication");
    ours.authenticate(serde_json::to_value(rcr).expect("json"));
}
