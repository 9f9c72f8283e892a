//! Passkeys (WebAuthn) through webauthn-rs.
//!
//! * The relying-party id is the issuer's host and the only accepted origin
//!   is the issuer's origin, so a credential minted for another site (or a
//!   phishing origin) never verifies.
//! * User verification is required for registration and assertion: a
//!   passkey sign-in is phishing-resistant MFA on its own.
//! * Ceremony state (the challenge) lives in the store under a random id
//!   with a short expiry and is *taken* when finished, so an assertion can be
//!   replayed at most zero times. It never travels in a cookie.
//! * Every credential id belongs to exactly one user (a unique index written
//!   in the same transaction as the credential).
//! * Signature counters must increase; a regression is refused and logged as
//!   a possible cloned authenticator.

use super::passkey_policy::{Fido2Policy, Refusal};
use crate::ids::UserId;
use crate::store::{Durability, Precondition, Store, StoreError, Txn, decode, encode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use url::Url;
use webauthn_rs::prelude::{
    AttestationCaList, AttestedPasskeyRegistration, CreationChallengeResponse,
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

pub const PASSKEYS: &str = "passkey";
pub const CREDENTIAL_INDEX: &str = "passkey_credential";
pub const CEREMONIES: &str = "webauthn_ceremony";
/// How long a started ceremony may take.
pub const CEREMONY_LIFETIME: time::Duration = time::Duration::minutes(5);

/// A registered passkey as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPasskey {
    /// Graph `fido2AuthenticationMethod.id`.
    pub id: String,
    pub user_id: UserId,
    pub display_name: String,
    pub created_at: i64,
    /// The authenticator model (lower-case hyphenated AAGUID) from the
    /// attested credential data; all zeros when the authenticator hides it.
    pub aaguid: String,
    /// Registered with an attestation that chained to a configured root
    /// (Graph `attestationLevel: attested`).
    #[serde(default)]
    pub attested: bool,
    /// The credential id, base64url.
    pub credential_id: String,
    /// The last signature counter seen (0: the authenticator keeps none).
    #[serde(default)]
    pub sign_count: u32,
    pub passkey: Passkey,
}

/// Server-side state of a started ceremony.
#[derive(Serialize, Deserialize)]
pub enum Ceremony {
    Registration {
        user_id: UserId,
        /// Digest of the session that started it; finish must come from it.
        session: String,
        state: PasskeyRegistration,
    },
    /// A registration under `isAttestationEnforced`: webauthn-rs verifies
    /// the attestation chain against the configured roots.
    AttestedRegistration {
        user_id: UserId,
        session: String,
        state: AttestedPasskeyRegistration,
    },
    Authentication {
        user_id: UserId,
        flow: String,
        state: PasskeyAuthentication,
    },
    Discoverable {
        flow: String,
        state: DiscoverableAuthentication,
    },
    /// A username-first start for a name with no passkeys (or no account):
    /// it looks like any other and can never be finished.
    Decoy { flow: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("the passkey ceremony expired or was already used; start again")]
    CeremonyUnknown,
    #[error("the passkey response does not match this ceremony")]
    CeremonyMismatch,
    #[error("the passkey could not be verified")]
    Verification,
    #[error("this passkey is not registered")]
    UnknownCredential,
    #[error("this passkey is already registered")]
    AlreadyRegistered,
    #[error("the authenticator's signature counter went backwards (possible cloned authenticator)")]
    CounterRegression,
    #[error("WebAuthn configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("random source failed")]
    Random,
    #[error("passkeys are off: the issuer is an IP address, and WebAuthn needs a host name")]
    Disabled,
    /// The passkey policy refuses it; the message says why.
    #[error("{}", .0.message())]
    Policy(Refusal),
}

impl PasskeyError {
    pub fn code(&self) -> &'static str {
        match self {
            PasskeyError::CeremonyUnknown => "passkey.ceremony_unknown",
            PasskeyError::CeremonyMismatch => "passkey.ceremony_mismatch",
            PasskeyError::Verification => "passkey.verification",
            PasskeyError::UnknownCredential => "passkey.unknown_credential",
            PasskeyError::AlreadyRegistered => "passkey.already_registered",
            PasskeyError::CounterRegression => "passkey.counter_regression",
            PasskeyError::Config(_) => "passkey.config",
            PasskeyError::Store(e) => e.code(),
            PasskeyError::Random => "passkey.random",
            PasskeyError::Disabled => "passkey.disabled",
            PasskeyError::Policy(r) => r.code(),
        }
    }
}

/// Passkey operations for one relying party (the issuer).
#[derive(Clone)]
pub struct Passkeys {
    /// `None` when passkeys are off: WebAuthn needs the issuer to be a host
    /// name, and it is an IP address.
    webauthn: Option<Arc<Webauthn>>,
    store: Arc<dyn Store>,
    /// The store's decoy secret, once read ([`Passkeys::decoy_key`]).
    decoy_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
    /// `[passkeys] attestation_roots`: what `isAttestationEnforced` checks
    /// attestation against.
    roots: Option<Arc<AttestationCaList>>,
}

/// A passkey's user handle and policy state, to decide whether it may
/// register ([`Passkeys::start_registration`]).
pub struct PolicyFor<'a> {
    pub policy: &'a Fido2Policy,
    /// Whether the policy's targets include the user.
    pub targeted: bool,
}

/// A verified assertion.
pub struct Asserted {
    pub passkey: StoredPasskey,
    /// The assertion's BE flag: a synced (multi-device) passkey.
    pub synced: bool,
}

/// The authenticator's model (AAGUID) from a registration response's
/// authenticator data. `None` when the attestation object is malformed
/// (webauthn-rs then refuses the registration anyway).
fn aaguid_of(response: &RegisterPublicKeyCredential) -> Option<uuid::Uuid> {
    use serde_cbor_2::Value;
    let object: Value =
        serde_cbor_2::from_slice(response.response.attestation_object.as_ref()).ok()?;
    let Value::Map(map) = object else {
        return None;
    };
    let Some(Value::Bytes(auth_data)) = map.get(&Value::Text("authData".to_owned())) else {
        return None;
    };
    // rpIdHash (32) | flags (1) | signCount (4) | AAGUID (16) | …
    const FLAG_AT: u8 = 0x40;
    let flags = *auth_data.get(32)?;
    if flags & FLAG_AT == 0 {
        return None;
    }
    uuid::Uuid::from_slice(auth_data.get(37..53)?).ok()
}

fn cred_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

impl Passkeys {
    /// The RP id is the issuer's host; the origin is the issuer's origin.
    pub fn new(
        issuer: &str,
        store: Arc<dyn Store>,
        roots: Option<AttestationCaList>,
    ) -> Result<Self, PasskeyError> {
        let roots = roots.map(Arc::new);
        let origin = Url::parse(issuer).map_err(|e| PasskeyError::Config(e.to_string()))?;
        let rp_id = match origin.host() {
            None => return Err(PasskeyError::Config("the issuer has no host".into())),
            // An IP-address issuer (a lab, a benchmark): no RP id is
            // possible, so Gatepass runs without passkeys.
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
                return Ok(Self {
                    webauthn: None,
                    store,
                    decoy_key: Arc::default(),
                    roots,
                });
            }
            Some(url::Host::Domain(d)) => d.to_owned(),
        };
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|e| {
                PasskeyError::Config(format!(
                    "{e} (WebAuthn needs the issuer to use a host name, not an IP address)"
                ))
            })?
            .rp_name("Gatepass")
            .build()
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        Ok(Self {
            webauthn: Some(Arc::new(webauthn)),
            store,
            decoy_key: Arc::default(),
            roots,
        })
    }

    /// Whether passkeys can be used at all (the issuer is a host name).
    pub fn enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    /// Whether this server can verify attestation (it has roots).
    pub fn verifies_attestation(&self) -> bool {
        self.roots.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_deref().ok_or(PasskeyError::Disabled)
    }

    async fn save_ceremony(&self, ceremony: &Ceremony, now: i64) -> Result<String, PasskeyError> {
        let id = crate::ids::OpaqueSecret::generate().map_err(|_| PasskeyError::Random)?;
        let expires = now + CEREMONY_LIFETIME.whole_seconds();
        // Ceremony state is cheap to lose (the user presses the button again).
        self.store
            .put(
                CEREMONIES,
                id.expose(),
                encode(ceremony)?,
                Some(expires),
                Durability::Ephemeral,
            )
            .await?;
        Ok(id.expose().to_owned())
    }

    /// Takes a ceremony: it can be finished once.
    pub async fn take_ceremony(&self, id: &str, now: i64) -> Result<Ceremony, PasskeyError> {
        let record = self
            .store
            .take(CEREMONIES, id, Durability::Ephemeral, now)
            .await?
            .ok_or(PasskeyError::CeremonyUnknown)?;
        Ok(decode(CEREMONIES, &record.value)?)
    }

    pub async fn list(&self, user: UserId, now: i64) -> Result<Vec<StoredPasskey>, PasskeyError> {
        let mut out = Vec::new();
        for (_, r) in self
            .store
            .scan_prefix(PASSKEYS, &format!("{user}/"), now)
            .await?
        {
            out.push(decode::<StoredPasskey>(PASSKEYS, &r.value)?);
        }
        out.sort_by_key(|p| p.created_at);
        Ok(out)
    }

    /// Starts registering a passkey for `user` (resident key required, so it
    /// can sign in without a username), if the passkey policy lets them.
    /// Under `isAttestationEnforced` the ceremony asks for, and will verify,
    /// attestation; under key restrictions it asks for direct attestation so
    /// the browser passes the authenticator's AAGUID on. Returns the
    /// ceremony id and options.
    pub async fn start_registration(
        &self,
        user: &crate::directory::User,
        session: &str,
        policy: PolicyFor<'_>,
        now: i64,
    ) -> Result<(String, serde_json::Value), PasskeyError> {
        policy
            .policy
            .may_register(policy.targeted)
            .map_err(PasskeyError::Policy)?;
        let attested = policy.policy.is_attestation_enforced;
        let roots = match (&self.roots, attested) {
            (_, false) => None,
            (Some(roots), true) => Some(roots),
            (None, true) => return Err(PasskeyError::Policy(Refusal::NoAttestationRoots)),
        };
        let existing: Vec<_> = self
            .list(user.id, now)
            .await?
            .into_iter()
            .map(|p| p.passkey.cred_id().clone())
            .collect();
        let config = |e: webauthn_rs::prelude::WebauthnError| PasskeyError::Config(e.to_string());
        let (options, ceremony): (CreationChallengeResponse, _) = match roots {
            None => {
                let (options, state) = self
                    .webauthn()?
                    .start_passkey_registration(
                        user.id.0,
                        &user.user_principal_name,
                        &user.display_name,
                        Some(existing),
                    )
                    .map_err(config)?;
                let ceremony = Ceremony::Registration {
                    user_id: user.id,
                    session: session.to_owned(),
                    state,
                };
                (options, ceremony)
            }
            Some(roots) => {
                let (options, state) = self
                    .webauthn()?
                    .start_attested_passkey_registration(
                        user.id.0,
                        &user.user_principal_name,
                        &user.display_name,
                        Some(existing),
                        (**roots).clone(),
                        None,
                    )
                    .map_err(config)?;
                let ceremony = Ceremony::AttestedRegistration {
                    user_id: user.id,
                    session: session.to_owned(),
                    state,
                };
                (options, ceremony)
            }
        };
        let mut options =
            serde_json::to_value(&options).map_err(|e| PasskeyError::Config(e.to_string()))?;
        if policy.policy.key_restrictions.is_enforced {
            if let Some(public_key) = options.get_mut("publicKey").and_then(|v| v.as_object_mut()) {
                public_key.insert(
                    "attestation".into(),
                    serde_json::Value::String("direct".into()),
                );
            }
        }
        // Discoverable credentials let "Sign in with a passkey" work before
        // a username is typed (WebAuthn L3 residentKey=required).
        if let Some(sel) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|v| v.as_object_mut())
        {
            sel.insert("requireResidentKey".into(), serde_json::Value::Bool(true));
            sel.insert(
                "residentKey".into(),
                serde_json::Value::String("required".into()),
            );
        }
        let id = self.save_ceremony(&ceremony, now).await?;
        Ok((id, options))
    }

    /// Finishes a registration started by `session`; stores the passkey
    /// atomically with its unique credential index, but only if `guards`
    /// still hold (the session, its user and its pass unchanged since the
    /// checks, [`crate::authn::session::Sessions::unchanged`]) — the
    /// decision and the write are one step.
    ///
    /// The passkey policy is asked again with what only the response can
    /// tell — the authenticator's model and whether its attestation was
    /// verified — and a refusal ([`PasskeyError::Policy`]) stores nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_registration(
        &self,
        ceremony: Ceremony,
        session: &str,
        response: &RegisterPublicKeyCredential,
        display_name: &str,
        policy: PolicyFor<'_>,
        guards: Vec<(crate::store::Table, String, Precondition)>,
        now: i64,
    ) -> Result<StoredPasskey, PasskeyError> {
        let rejected = |e: webauthn_rs::prelude::WebauthnError| {
            tracing::info!(error = %e, "passkey registration rejected");
            match e {
                webauthn_rs::prelude::WebauthnError::AttestationNotVerifiable
                | webauthn_rs::prelude::WebauthnError::AttestationTrustFailure
                | webauthn_rs::prelude::WebauthnError::AttestationUntrustedAaguid
                | webauthn_rs::prelude::WebauthnError::AttestationFormatMissingAaguid
                | webauthn_rs::prelude::WebauthnError::AttestationChainNotTrusted(_) => {
                    PasskeyError::Policy(Refusal::AttestationRequired)
                }
                _ => PasskeyError::Verification,
            }
        };
        let (user_id, started_by, passkey, attested) = match ceremony {
            Ceremony::Registration {
                user_id,
                session,
                state,
            } => {
                let passkey = self
                    .webauthn()?
                    .finish_passkey_registration(response, &state)
                    .map_err(rejected)?;
                (user_id, session, passkey, false)
            }
            Ceremony::AttestedRegistration {
                user_id,
                session,
                state,
            } => {
                let passkey = self
                    .webauthn()?
                    .finish_attested_passkey_registration(response, &state)
                    .map_err(rejected)?;
                (user_id, session, Passkey::from(passkey), true)
            }
            _ => return Err(PasskeyError::CeremonyMismatch),
        };
        if !crate::ids::secrets_equal(&started_by, session) {
            return Err(PasskeyError::CeremonyMismatch);
        }
        let aaguid = aaguid_of(response).ok_or(PasskeyError::Verification)?;
        policy
            .policy
            .admits_registration(policy.targeted, aaguid, attested)
            .map_err(PasskeyError::Policy)?;
        let credential_id = cred_key(passkey.cred_id().as_ref());
        let stored = StoredPasskey {
            id: crate::ids::random_uuid()
                .map_err(|_| PasskeyError::Random)?
                .to_string(),
            user_id,
            display_name: display_name.to_owned(),
            created_at: now,
            aaguid: aaguid.hyphenated().to_string(),
            attested,
            credential_id: credential_id.clone(),
            sign_count: 0,
            passkey,
        };
        let mut txn = Txn::new(Durability::Durable);
        for (table, key, pre) in guards {
            txn = txn.require(table, key, pre);
        }
        let txn = txn
            .require(
                CREDENTIAL_INDEX,
                credential_id.clone(),
                Precondition::Absent,
            )
            .put(
                CREDENTIAL_INDEX,
                credential_id.clone(),
                encode(&user_id)?,
                None,
            )
            .put(
                PASSKEYS,
                format!("{user_id}/{}", stored.id),
                encode(&stored)?,
                None,
            );
        if !self.store.commit(txn, now).await? {
            if self
                .store
                .get(CREDENTIAL_INDEX, &credential_id, now)
                .await?
                .is_some()
            {
                return Err(PasskeyError::AlreadyRegistered);
            }
            // The session changed (ended, revoked) between start and finish.
            return Err(PasskeyError::CeremonyMismatch);
        }
        Ok(stored)
    }

    /// Starts a username-first assertion for `username`: the user's passkeys
    /// when they have some, otherwise a decoy — the same answer, naming one
    /// credential id derived from the name with a secret of this store, the
    /// same each time — so the answer does not tell whether the account
    /// exists or has a passkey. A decoy ceremony never finishes.
    pub async fn start_authentication(
        &self,
        username: &str,
        user: Option<UserId>,
        flow: &str,
        now: i64,
    ) -> Result<(String, RequestChallengeResponse), PasskeyError> {
        let creds: Vec<Passkey> = match user {
            Some(user) => self
                .list(user, now)
                .await?
                .into_iter()
                .map(|p| p.passkey)
                .collect(),
            None => Vec::new(),
        };
        let (user, creds) = match user {
            Some(user) if !creds.is_empty() => (user, creds),
            _ => return self.start_decoy(username, flow, now).await,
        };
        let (options, state) = self
            .webauthn()?
            .start_passkey_authentication(&creds)
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        let id = self
            .save_ceremony(
                &Ceremony::Authentication {
                    user_id: user,
                    flow: flow.to_owned(),
                    state,
                },
                now,
            )
            .await?;
        Ok((id, options))
    }

    async fn start_decoy(
        &self,
        username: &str,
        flow: &str,
        now: i64,
    ) -> Result<(String, RequestChallengeResponse), PasskeyError> {
        let key = self.decoy_key(now).await?;
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
            username.trim().to_lowercase().as_bytes(),
        );
        let (mut options, _) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        // Shaped like a username-first request: no autofill, no extensions.
        options.mediation = None;
        options.public_key.extensions = None;
        // webauthn-rs does not export the type; build it from its JSON.
        options.public_key.allow_credentials = vec![
            serde_json::from_value(serde_json::json!({
                "type": "public-key",
                "id": URL_SAFE_NO_PAD.encode(tag.as_ref()),
            }))
            .map_err(|e| PasskeyError::Config(e.to_string()))?,
        ];
        let id = self
            .save_ceremony(
                &Ceremony::Decoy {
                    flow: flow.to_owned(),
                },
                now,
            )
            .await?;
        Ok((id, options))
    }

    /// The store's secret for decoy credential ids: made once, shared by
    /// every instance, so a name's decoy never changes; read from the store
    /// once per process.
    async fn decoy_key(&self, now: i64) -> Result<&[u8], PasskeyError> {
        self.decoy_key
            .get_or_try_init(|| self.load_decoy_key(now))
            .await
            .map(Vec::as_slice)
    }

    async fn load_decoy_key(&self, now: i64) -> Result<Vec<u8>, PasskeyError> {
        const KEY: (&str, &str) = ("meta", "passkey_decoy_key");
        if let Some(r) = self.store.get(KEY.0, KEY.1, now).await? {
            return Ok(r.value);
        }
        let mut fresh = vec![0u8; 32];
        crate::ids::fill_random(&mut fresh).map_err(|_| PasskeyError::Random)?;
        self.store
            .insert(KEY.0, KEY.1, fresh, None, Durability::Durable, now)
            .await?;
        // Whoever inserted first wins; everyone uses that one.
        self.store
            .get(KEY.0, KEY.1, now)
            .await?
            .map(|r| r.value)
            .ok_or_else(|| {
                PasskeyError::Store(StoreError::Corrupt("passkey decoy key vanished".into()))
            })
    }

    /// Starts a discoverable assertion (no username).
    pub async fn start_discoverable(
        &self,
        flow: &str,
        now: i64,
    ) -> Result<(String, RequestChallengeResponse), PasskeyError> {
        let (mut options, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        // A button press is a modal request, not conditional (autofill) UI.
        options.mediation = None;
        let id = self
            .save_ceremony(
                &Ceremony::Discoverable {
                    flow: flow.to_owned(),
                    state,
                },
                now,
            )
            .await?;
        Ok((id, options))
    }

    /// Finishes an assertion for the ceremony taken from the store; returns
    /// the passkey it proves (and so its user). Updates the stored counter
    /// atomically. Whether the passkey policy still admits the passkey is
    /// the caller's next question ([`Fido2Policy::admits_sign_in`]).
    pub async fn finish_authentication(
        &self,
        ceremony: Ceremony,
        flow: &str,
        response: &PublicKeyCredential,
        now: i64,
    ) -> Result<Asserted, PasskeyError> {
        let credential_id = cred_key(response.get_credential_id());
        let owner = match self
            .store
            .get(CREDENTIAL_INDEX, &credential_id, now)
            .await?
        {
            Some(r) => decode::<UserId>(CREDENTIAL_INDEX, &r.value)?,
            None => return Err(PasskeyError::UnknownCredential),
        };
        let (stored, version) = self
            .find(owner, &credential_id, now)
            .await?
            .ok_or(PasskeyError::UnknownCredential)?;
        let result = match ceremony {
            Ceremony::Authentication {
                user_id,
                flow: started_for,
                state,
            } => {
                if user_id != owner || started_for != flow {
                    return Err(PasskeyError::CeremonyMismatch);
                }
                self.webauthn()?
                    .finish_passkey_authentication(response, &state)
            }
            Ceremony::Discoverable {
                flow: started_for,
                state,
            } => {
                if started_for != flow {
                    return Err(PasskeyError::CeremonyMismatch);
                }
                // The user handle must name the credential's owner.
                let (handle, _) = self
                    .webauthn()?
                    .identify_discoverable_authentication(response)
                    .map_err(|_| PasskeyError::Verification)?;
                if handle != owner.0 {
                    return Err(PasskeyError::CeremonyMismatch);
                }
                let key = DiscoverableKey::from(&stored.passkey);
                self.webauthn()?
                    .finish_discoverable_authentication(response, state, &[key])
            }
            Ceremony::Registration { .. }
            | Ceremony::AttestedRegistration { .. }
            | Ceremony::Decoy { .. } => {
                return Err(PasskeyError::CeremonyMismatch);
            }
        }
        .map_err(|e| {
            tracing::info!(error = %e, "passkey assertion rejected");
            PasskeyError::Verification
        })?;
        if !result.user_verified() {
            return Err(PasskeyError::Verification);
        }
        let stored_counter = stored.sign_count;
        if (result.counter() > 0 || stored_counter > 0) && result.counter() <= stored_counter {
            tracing::warn!(user = %owner, credential = %credential_id, "passkey counter regression: possible cloned authenticator");
            return Err(PasskeyError::CounterRegression);
        }
        let mut updated = stored.clone();
        updated.passkey.update_credential(&result);
        updated.sign_count = result.counter();
        // Compare-and-swap: of two concurrent assertions with the same
        // counter value only one can advance it.
        let swapped = self
            .store
            .compare_and_swap(
                PASSKEYS,
                &format!("{owner}/{}", stored.id),
                version,
                Some(encode(&updated)?),
                None,
                Durability::Durable,
                now,
            )
            .await?;
        if swapped.is_none() {
            return Err(PasskeyError::CounterRegression);
        }
        Ok(Asserted {
            synced: result.backup_eligible(),
            passkey: updated,
        })
    }

    async fn find(
        &self,
        user: UserId,
        credential_id: &str,
        now: i64,
    ) -> Result<Option<(StoredPasskey, u64)>, PasskeyError> {
        for (_, r) in self
            .store
            .scan_prefix(PASSKEYS, &format!("{user}/"), now)
            .await?
        {
            let p: StoredPasskey = decode(PASSKEYS, &r.value)?;
            if p.credential_id == credential_id {
                return Ok(Some((p, r.version)));
            }
        }
        Ok(None)
    }

    /// Deletes one of the user's passkeys by its method id.
    pub async fn delete(&self, user: UserId, id: &str, now: i64) -> Result<bool, PasskeyError> {
        let key = format!("{user}/{id}");
        let Some(r) = self.store.get(PASSKEYS, &key, now).await? else {
            return Ok(false);
        };
        let p: StoredPasskey = decode(PASSKEYS, &r.value)?;
        let txn = Txn::new(Durability::Durable)
            .require(PASSKEYS, key.clone(), Precondition::Version(r.version))
            .delete(PASSKEYS, key)
            .delete(CREDENTIAL_INDEX, p.credential_id);
        Ok(self.store.commit(txn, now).await?)
    }
}
