//! Authentication strengths: Graph's `authenticationStrengthPolicy`, the
//! three built-ins, custom strengths, and the test "do these methods satisfy
//! this strength?".
//!
//! A strength is a list of `allowedCombinations`; each combination is a
//! comma-joined list of `authenticationMethodModes` ("password,sms") and is
//! satisfied when the session used *every* mode in it. A strength is
//! satisfied when *any* of its combinations is. Modes are bits, so the test
//! is `combination & !session == 0` — no allocation on the sign-in path.
//!
//! A custom strength may narrow a combination with Graph's
//! `combinationConfigurations`. A `fido2CombinationConfiguration` names the
//! passkey models (`allowedAAGUIDs`) a combination containing `fido2`
//! accepts: the combination is then satisfied only when the session's
//! passkey is one of them — a passkey of unknown model never is. Several
//! configurations on one combination intersect. Every other configuration
//! type (`x509CertificateCombinationConfiguration`, …) is not evaluated: the
//! combinations it narrows are never satisfied (fail closed) and the
//! strength lists it in `unsupported`.
//! (<https://learn.microsoft.com/graph/api/resources/fido2combinationconfiguration>)
//!
//! Gatepass's own methods map onto Graph's modes: password → `password`,
//! passkey → `fido2`, TAP → `temporaryAccessPassOneTime` /
//! `temporaryAccessPassMultiUse`. So a TAP satisfies Multifactor (…0002) but
//! neither Passwordless (…0003) nor Phishing-resistant (…0004), exactly as in
//! Entra (<https://learn.microsoft.com/entra/identity/authentication/concept-authentication-strengths>).

use super::model::AuthenticationStrengthPolicy;
use crate::authn::{Acr, AuthMethod};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Built-in "Multifactor authentication".
pub const MULTIFACTOR: &str = "00000000-0000-0000-0000-000000000002";
/// Built-in "Passwordless MFA".
pub const PASSWORDLESS_MFA: &str = "00000000-0000-0000-0000-000000000003";
/// Built-in "Phishing resistant MFA".
pub const PHISHING_RESISTANT_MFA: &str = "00000000-0000-0000-0000-000000000004";

/// The `@odata.type` of the one configuration type Gatepass evaluates.
pub const FIDO2_COMBINATION_CONFIGURATION: &str = "#microsoft.graph.fido2CombinationConfiguration";

/// Graph's `authenticationMethodModes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodMode {
    Password,
    Voice,
    HardwareOath,
    SoftwareOath,
    Sms,
    Fido2,
    WindowsHelloForBusiness,
    MicrosoftAuthenticatorPush,
    DeviceBasedPush,
    TemporaryAccessPassOneTime,
    TemporaryAccessPassMultiUse,
    Email,
    X509CertificateSingleFactor,
    X509CertificateMultiFactor,
    FederatedSingleFactor,
    FederatedMultiFactor,
    QrCodePin,
}

impl MethodMode {
    pub const ALL: [MethodMode; 17] = [
        MethodMode::Password,
        MethodMode::Voice,
        MethodMode::HardwareOath,
        MethodMode::SoftwareOath,
        MethodMode::Sms,
        MethodMode::Fido2,
        MethodMode::WindowsHelloForBusiness,
        MethodMode::MicrosoftAuthenticatorPush,
        MethodMode::DeviceBasedPush,
        MethodMode::TemporaryAccessPassOneTime,
        MethodMode::TemporaryAccessPassMultiUse,
        MethodMode::Email,
        MethodMode::X509CertificateSingleFactor,
        MethodMode::X509CertificateMultiFactor,
        MethodMode::FederatedSingleFactor,
        MethodMode::FederatedMultiFactor,
        MethodMode::QrCodePin,
    ];

    /// Graph's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodMode::Password => "password",
            MethodMode::Voice => "voice",
            MethodMode::HardwareOath => "hardwareOath",
            MethodMode::SoftwareOath => "softwareOath",
            MethodMode::Sms => "sms",
            MethodMode::Fido2 => "fido2",
            MethodMode::WindowsHelloForBusiness => "windowsHelloForBusiness",
            MethodMode::MicrosoftAuthenticatorPush => "microsoftAuthenticatorPush",
            MethodMode::DeviceBasedPush => "deviceBasedPush",
            MethodMode::TemporaryAccessPassOneTime => "temporaryAccessPassOneTime",
            MethodMode::TemporaryAccessPassMultiUse => "temporaryAccessPassMultiUse",
            MethodMode::Email => "email",
            MethodMode::X509CertificateSingleFactor => "x509CertificateSingleFactor",
            MethodMode::X509CertificateMultiFactor => "x509CertificateMultiFactor",
            MethodMode::FederatedSingleFactor => "federatedSingleFactor",
            MethodMode::FederatedMultiFactor => "federatedMultiFactor",
            MethodMode::QrCodePin => "qrCodePin",
        }
    }

    /// Parses Graph's spelling (case-insensitive). `passkey` is accepted as
    /// Gatepass's name for `fido2`.
    pub fn parse(s: &str) -> Option<MethodMode> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("passkey") {
            return Some(MethodMode::Fido2);
        }
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl From<AuthMethod> for MethodMode {
    fn from(method: AuthMethod) -> MethodMode {
        match method {
            AuthMethod::Password => MethodMode::Password,
            AuthMethod::Passkey => MethodMode::Fido2,
            AuthMethod::TemporaryAccessPassOneTime => MethodMode::TemporaryAccessPassOneTime,
            AuthMethod::TemporaryAccessPassMultiUse => MethodMode::TemporaryAccessPassMultiUse,
        }
    }
}

/// A set of method modes: the methods a session used, or one combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MethodSet(u32);

/// A bit no session ever has: a combination naming a mode Gatepass does not
/// know can never be satisfied (fail closed).
const UNKNOWN_MODE: u32 = 1 << 31;

impl MethodSet {
    pub const EMPTY: MethodSet = MethodSet(0);

    pub fn from_auth_methods(methods: &[AuthMethod]) -> MethodSet {
        methods
            .iter()
            .fold(MethodSet::EMPTY, |set, &m| set.with(m.into()))
    }

    pub fn from_modes(modes: &[MethodMode]) -> MethodSet {
        modes.iter().fold(MethodSet::EMPTY, |set, &m| set.with(m))
    }

    /// Parses a list of Graph mode names; each entry may itself be a
    /// comma-joined combination. The error is the first unknown name.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<MethodSet, String> {
        let mut set = MethodSet::EMPTY;
        for name in names {
            for part in name
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                set = set.with(MethodMode::parse(part).ok_or_else(|| part.to_owned())?);
            }
        }
        Ok(set)
    }

    /// One `allowedCombinations` entry. Unknown modes make it unsatisfiable.
    pub fn parse_combination(combination: &str) -> MethodSet {
        let mut set = MethodSet::EMPTY;
        for part in combination
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            set.0 |= MethodMode::parse(part).map_or(UNKNOWN_MODE, MethodMode::bit);
        }
        set
    }

    #[must_use]
    pub fn with(self, mode: MethodMode) -> MethodSet {
        MethodSet(self.0 | mode.bit())
    }

    #[must_use]
    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    pub fn contains(self, mode: MethodMode) -> bool {
        self.0 & mode.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every mode of `self` is in `session`.
    pub fn is_subset_of(self, session: MethodSet) -> bool {
        self.0 != 0 && self.0 & !session.0 == 0
    }

    /// The modes, in Graph's order.
    pub fn modes(self) -> Vec<MethodMode> {
        MethodMode::ALL
            .into_iter()
            .filter(|m| self.contains(*m))
            .collect()
    }
}

/// What a What-If sign-in used: its modes and, when the input names it
/// (`fido2:<aaguid>`), the model of its passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionMethods {
    pub methods: MethodSet,
    /// `None`: no passkey, or one of unknown model (plain `fido2`).
    pub authenticator: Option<Uuid>,
}

/// An `authenticationMethods` entry Gatepass cannot read; each variant
/// holds the entry as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodNameError {
    #[error("'{0}' is not an authentication method mode")]
    UnknownMode(String),
    #[error("'{0}': the part after ':' must be the passkey's AAGUID (a UUID)")]
    MalformedAaguid(String),
    #[error("'{0}': only fido2 (or passkey) takes a model, as fido2:<aaguid>")]
    ModelOnOtherMode(String),
    #[error("'{0}' names a second passkey model; one sign-in uses one passkey")]
    SecondPasskeyModel(String),
}

impl SessionMethods {
    /// Parses What-If's `authenticationMethods`: Graph mode names (an entry
    /// may be a comma-joined combination) and `fido2:<aaguid>` or
    /// `passkey:<aaguid>` for a passkey of that model — at most one, as a
    /// sign-in uses one passkey. The error comes with the entry's index.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<SessionMethods, (usize, MethodNameError)> {
        let mut session = SessionMethods::default();
        for (i, name) in names.iter().enumerate() {
            for part in name
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                let (mode, model) = match part.split_once(':') {
                    Some((mode, model)) => (mode.trim(), Some(model.trim())),
                    None => (part, None),
                };
                let mode = MethodMode::parse(mode)
                    .ok_or_else(|| (i, MethodNameError::UnknownMode(part.to_owned())))?;
                if let Some(model) = model {
                    if mode != MethodMode::Fido2 {
                        return Err((i, MethodNameError::ModelOnOtherMode(part.to_owned())));
                    }
                    let aaguid = parse_aaguid(model)
                        .ok_or_else(|| (i, MethodNameError::MalformedAaguid(part.to_owned())))?;
                    if session.authenticator.is_some() {
                        return Err((i, MethodNameError::SecondPasskeyModel(part.to_owned())));
                    }
                    session.authenticator = Some(aaguid);
                }
                session.methods = session.methods.with(mode);
            }
        }
        Ok(session)
    }
}

/// One `allowedCombinations` entry: the modes a session must have used,
/// and, when a `fido2CombinationConfiguration` narrows it, the passkey
/// models it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combination {
    pub modes: MethodSet,
    /// `None`: any passkey. `Some`: only a passkey whose AAGUID is listed
    /// (an empty list: none — the configurations on it do not intersect).
    pub allowed_aaguids: Option<Box<[Uuid]>>,
}

impl Combination {
    /// A combination any passkey model satisfies.
    pub fn unrestricted(modes: MethodSet) -> Combination {
        Combination {
            modes,
            allowed_aaguids: None,
        }
    }

    /// Whether a session that used `methods`, with a passkey of model
    /// `authenticator` (`None`: no passkey, or its model is unknown),
    /// satisfies this combination.
    pub fn is_satisfied_with(&self, methods: MethodSet, authenticator: Option<Uuid>) -> bool {
        self.modes.is_subset_of(methods)
            && match &self.allowed_aaguids {
                None => true,
                Some(allowed) => authenticator.is_some_and(|a| allowed.contains(&a)),
            }
    }
}

/// A strength as a requirement names it, serialized as `{"id",
/// "displayName"}`. Shared and cheap to clone — every evaluation hands them
/// out — and it carries its combinations, so a requirement can be checked
/// even when the strength came inline with an exported policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrengthRef {
    pub id: Arc<str>,
    pub display_name: Arc<str>,
    pub combinations: Arc<[Combination]>,
}

impl StrengthRef {
    /// A strength whose combinations no configuration narrows.
    pub fn new(id: &str, display_name: &str, combinations: Vec<MethodSet>) -> StrengthRef {
        StrengthRef::with_combinations(
            id,
            display_name,
            combinations
                .into_iter()
                .map(Combination::unrestricted)
                .collect(),
        )
    }

    pub fn with_combinations(
        id: &str,
        display_name: &str,
        combinations: Vec<Combination>,
    ) -> StrengthRef {
        StrengthRef {
            id: id.into(),
            display_name: display_name.into(),
            combinations: combinations.into(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Whether a session that used `methods` satisfies the strength, not
    /// knowing which passkey model it used: a combination restricted to
    /// some models is never met this way.
    pub fn is_satisfied_by(&self, methods: MethodSet) -> bool {
        self.is_satisfied_with(methods, None)
    }

    /// Whether a session that used `methods`, with a passkey of model
    /// `authenticator` (`None`: no passkey, or an unknown model),
    /// satisfies the strength.
    pub fn is_satisfied_with(&self, methods: MethodSet, authenticator: Option<Uuid>) -> bool {
        self.combinations
            .iter()
            .any(|c| c.is_satisfied_with(methods, authenticator))
    }

    /// Every passkey model a combination of this strength names (repeats
    /// possible): the candidates when planning which passkey would do.
    pub fn allowed_aaguids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.combinations
            .iter()
            .filter_map(|c| c.allowed_aaguids.as_deref())
            .flatten()
            .copied()
    }
}

impl Serialize for StrengthRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("StrengthRef", 2)?;
        s.serialize_field("id", self.id())?;
        s.serialize_field("displayName", self.display_name())?;
        s.end()
    }
}

/// A strength ready for evaluation: the Graph object plus its combinations
/// as bit sets.
#[derive(Debug, Clone)]
pub struct Strength {
    pub policy: AuthenticationStrengthPolicy,
    reference: StrengthRef,
    /// Parts of the strength Gatepass cannot honour (reported, fail closed).
    pub unsupported: Vec<String>,
}

impl Strength {
    pub fn new(policy: AuthenticationStrengthPolicy) -> Strength {
        let restrictions = Restrictions::read(&policy);
        let combinations: Vec<Combination> = policy
            .allowed_combinations
            .iter()
            .flatten()
            .map(|c| restrictions.apply(c))
            .collect();
        let reference =
            StrengthRef::with_combinations(&policy.id, &policy.display_name, combinations);
        Strength {
            policy,
            reference,
            unsupported: restrictions.unsupported,
        }
    }

    pub fn id(&self) -> &str {
        &self.policy.id
    }

    pub fn display_name(&self) -> &str {
        &self.policy.display_name
    }

    /// The strength as requirements name it.
    pub fn reference(&self) -> &StrengthRef {
        &self.reference
    }

    /// Whether a session that used `methods` satisfies this strength.
    pub fn is_satisfied_by(&self, methods: MethodSet) -> bool {
        self.reference.is_satisfied_by(methods)
    }
}

/// A strength's `combinationConfigurations`, read once when the strength
/// is built (never on the sign-in path).
struct Restrictions {
    /// Per restricted combination (normalised): the intersection of the
    /// AAGUID lists of its fido2 configurations.
    fido2: Vec<(String, Vec<Uuid>)>,
    /// Combinations narrowed by a configuration Gatepass cannot check.
    unsatisfiable: Vec<String>,
    unsupported: Vec<String>,
}

impl Restrictions {
    fn read(policy: &AuthenticationStrengthPolicy) -> Restrictions {
        let mut r = Restrictions {
            fido2: Vec::new(),
            unsatisfiable: Vec::new(),
            unsupported: Vec::new(),
        };
        let configs = match policy.extra.get("combinationConfigurations") {
            None | Some(Value::Null) => return r,
            Some(Value::Array(configs)) => configs.as_slice(),
            Some(_) => {
                // Not Graph's shape: which combinations it narrows cannot
                // be told, so none is met (fail closed).
                r.unsatisfiable.extend(
                    super::model::list(&policy.allowed_combinations)
                        .iter()
                        .map(|c| normalise_combination(c)),
                );
                r.unsupported
                    .push("combinationConfigurations (not an array)".to_owned());
                return r;
            }
        };
        for (i, config) in configs.iter().enumerate() {
            let applies: Vec<String> = match config.get("appliesToCombinations") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(normalise_combination)
                    .collect(),
                _ => Vec::new(),
            };
            let odata_type = config
                .get("@odata.type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !is_fido2_configuration(odata_type) {
                r.unsupported.push(format!(
                    "combinationConfigurations[{i}] ({})",
                    if odata_type.is_empty() {
                        "no @odata.type"
                    } else {
                        odata_type
                    }
                ));
                r.unsatisfiable.extend(applies);
                continue;
            }
            let mut allowed = Vec::new();
            for entry in config
                .get("allowedAAGUIDs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // A malformed entry matches no passkey: dropping it
                // narrows the list, it never widens it.
                match entry.as_str().and_then(parse_aaguid) {
                    Some(aaguid) => allowed.push(aaguid),
                    None => r.unsupported.push(format!(
                        "combinationConfigurations[{i}].allowedAAGUIDs ({entry} is not an AAGUID)"
                    )),
                }
            }
            for combination in applies {
                if !combination
                    .split(',')
                    .any(|m| m == "fido2" || m == "passkey")
                {
                    // A passkey restriction on a combination without a
                    // passkey: meaningless, so never met.
                    r.unsupported.push(format!(
                        "combinationConfigurations[{i}] (fido2 models for '{combination}', which has no fido2)"
                    ));
                    r.unsatisfiable.push(combination);
                    continue;
                }
                match r.fido2.iter_mut().find(|(c, _)| *c == combination) {
                    Some((_, existing)) => existing.retain(|a| allowed.contains(a)),
                    None => r.fido2.push((combination, allowed.clone())),
                }
            }
        }
        r
    }

    fn apply(&self, combination: &str) -> Combination {
        let key = normalise_combination(combination);
        if self.unsatisfiable.contains(&key) {
            return Combination::unrestricted(MethodSet(UNKNOWN_MODE));
        }
        Combination {
            modes: MethodSet::parse_combination(combination),
            allowed_aaguids: self
                .fido2
                .iter()
                .find(|(c, _)| *c == key)
                .map(|(_, allowed)| allowed.clone().into_boxed_slice()),
        }
    }
}

/// An AAGUID as Graph writes it: a hyphenated UUID, any case.
pub fn parse_aaguid(s: &str) -> Option<Uuid> {
    let s = s.trim();
    (s.len() == 36).then(|| Uuid::parse_str(s).ok()).flatten()
}

/// Whether an `@odata.type` names `fido2CombinationConfiguration` (with or
/// without the `#`, any case).
pub fn is_fido2_configuration(odata_type: &str) -> bool {
    odata_type
        .trim_start_matches('#')
        .eq_ignore_ascii_case(&FIDO2_COMBINATION_CONFIGURATION[1..])
}

/// The normal form of a combination: its modes, lower case, sorted.
pub fn normalise_combination(c: &str) -> String {
    let mut parts: Vec<String> = c
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.join(",")
}

/// The strengths a tenant has: the three built-ins, then custom ones.
#[derive(Debug, Clone)]
pub struct StrengthSet {
    strengths: Vec<Strength>,
}

impl Default for StrengthSet {
    fn default() -> Self {
        StrengthSet::builtin()
    }
}

impl StrengthSet {
    /// Only the built-ins.
    pub fn builtin() -> StrengthSet {
        StrengthSet {
            strengths: builtin_policies().into_iter().map(Strength::new).collect(),
        }
    }

    /// The built-ins plus `custom`. Entries carrying a built-in id are
    /// skipped: built-ins are read-only (an Entra export lists them too).
    pub fn with_custom(custom: Vec<AuthenticationStrengthPolicy>) -> StrengthSet {
        let mut set = StrengthSet::builtin();
        for policy in custom {
            if set.get(&policy.id).is_none() {
                set.strengths.push(Strength::new(policy));
            }
        }
        set
    }

    pub fn get(&self, id: &str) -> Option<&Strength> {
        self.strengths
            .iter()
            .find(|s| s.id().eq_ignore_ascii_case(id))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Strength> {
        self.strengths.iter()
    }

    /// The custom strengths (what `…/authenticationStrength/policies`
    /// stores; built-ins are always present).
    pub fn custom(&self) -> impl Iterator<Item = &Strength> {
        self.strengths.iter().filter(|s| !is_builtin(s.id()))
    }

    /// Whether `methods` satisfy strength `id`; an unknown id never is.
    pub fn is_satisfied(&self, id: &str, methods: MethodSet) -> bool {
        self.get(id).is_some_and(|s| s.is_satisfied_by(methods))
    }
}

pub fn is_builtin(id: &str) -> bool {
    [MULTIFACTOR, PASSWORDLESS_MFA, PHISHING_RESISTANT_MFA]
        .iter()
        .any(|b| b.eq_ignore_ascii_case(id))
}

/// The strength an `acr` value asks for (`acr_values`, or an essential `acr`
/// in `claims`): `mfa` → Multifactor, `passwordless_mfa` → Passwordless
/// MFA, `phishing_resistant_mfa` → Phishing resistant MFA. `single_factor`
/// asks for nothing, so it gives `None` — as does a value that is not one of
/// Gatepass's four (check with [`Acr::parse`] first to tell them apart).
pub fn acr_strength(acr: &str) -> Option<&'static str> {
    match Acr::parse(acr)? {
        Acr::SingleFactor => None,
        Acr::Mfa => Some(MULTIFACTOR),
        Acr::PasswordlessMfa => Some(PASSWORDLESS_MFA),
        Acr::PhishingResistantMfa => Some(PHISHING_RESISTANT_MFA),
    }
}

/// The three built-ins exactly as `GET /policies/authenticationStrengthPolicies`
/// returns them.
pub fn builtin_policies() -> Vec<AuthenticationStrengthPolicy> {
    let multifactor: &[&str] = &[
        "windowsHelloForBusiness",
        "fido2",
        "x509CertificateMultiFactor",
        "deviceBasedPush",
        "temporaryAccessPassOneTime",
        "temporaryAccessPassMultiUse",
        "password,microsoftAuthenticatorPush",
        "password,softwareOath",
        "password,hardwareOath",
        "password,x509CertificateSingleFactor",
        "password,x509CertificateMultiFactor",
        "password,sms",
        "password,voice",
        "federatedMultiFactor",
        "microsoftAuthenticatorPush,federatedSingleFactor",
        "softwareOath,federatedSingleFactor",
        "hardwareOath,federatedSingleFactor",
        "sms,federatedSingleFactor",
        "voice,federatedSingleFactor",
    ];
    let passwordless: &[&str] = &[
        "windowsHelloForBusiness",
        "fido2",
        "x509CertificateMultiFactor",
        "deviceBasedPush",
    ];
    let phishing_resistant: &[&str] = &[
        "windowsHelloForBusiness",
        "fido2",
        "x509CertificateMultiFactor",
    ];
    [
        (
            MULTIFACTOR,
            "Multifactor authentication",
            "Combinations of methods that satisfy strong authentication, such as a password + SMS",
            multifactor,
        ),
        (
            PASSWORDLESS_MFA,
            "Passwordless MFA",
            "Passwordless methods that satisfy strong authentication, such as Passwordless sign-in with the Microsoft Authenticator",
            passwordless,
        ),
        (
            PHISHING_RESISTANT_MFA,
            "Phishing resistant MFA",
            "Phishing resistant, Passwordless methods for the strongest authentication, such as a FIDO2 security key",
            phishing_resistant,
        ),
    ]
    .into_iter()
    .map(|(id, name, description, combinations)| {
        let mut extra = Map::new();
        extra.insert("createdDateTime".to_owned(), Value::from("2021-12-01T00:00:00Z"));
        extra.insert("modifiedDateTime".to_owned(), Value::from("2021-12-01T00:00:00Z"));
        extra.insert("combinationConfigurations".to_owned(), Value::Array(Vec::new()));
        AuthenticationStrengthPolicy {
            id: id.to_owned(),
            display_name: name.to_owned(),
            description: Some(description.to_owned()),
            policy_type: Some("builtIn".to_owned()),
            requirements_satisfied: Some("mfa".to_owned()),
            allowed_combinations: Some(combinations.iter().map(|c| (*c).to_owned()).collect()),
            extra,
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use AuthMethod::*;

    #[test]
    fn builtin_strengths_against_each_method_combination() {
        let set = StrengthSet::builtin();
        // (methods, multifactor, passwordless, phishing-resistant)
        let table: [(&[AuthMethod], bool, bool, bool); 10] = [
            (&[], false, false, false),
            (&[Password], false, false, false),
            (&[TemporaryAccessPassOneTime], true, false, false),
            (&[TemporaryAccessPassMultiUse], true, false, false),
            (&[Passkey], true, true, true),
            (&[Password, Passkey], true, true, true),
            (&[Password, TemporaryAccessPassOneTime], true, false, false),
            (&[TemporaryAccessPassOneTime, Passkey], true, true, true),
            (
                &[TemporaryAccessPassMultiUse, TemporaryAccessPassOneTime],
                true,
                false,
                false,
            ),
            (&[Password, Password], false, false, false),
        ];
        for (methods, mfa, passwordless, phishing) in table {
            let m = MethodSet::from_auth_methods(methods);
            assert_eq!(
                set.is_satisfied(MULTIFACTOR, m),
                mfa,
                "multifactor {methods:?}"
            );
            assert_eq!(
                set.is_satisfied(PASSWORDLESS_MFA, m),
                passwordless,
                "passwordless {methods:?}"
            );
            assert_eq!(
                set.is_satisfied(PHISHING_RESISTANT_MFA, m),
                phishing,
                "phishing-resistant {methods:?}"
            );
        }
    }

    #[test]
    fn builtin_strengths_accept_graph_only_methods() {
        let set = StrengthSet::builtin();
        let table: [(&[&str], bool, bool, bool); 7] = [
            (&["password", "sms"], true, false, false),
            (&["password,microsoftAuthenticatorPush"], true, false, false),
            (&["sms"], false, false, false),
            (&["windowsHelloForBusiness"], true, true, true),
            (&["deviceBasedPush"], true, true, false),
            (&["x509CertificateSingleFactor"], false, false, false),
            (&["federatedMultiFactor"], true, false, false),
        ];
        for (names, mfa, passwordless, phishing) in table {
            let m = MethodSet::parse_names(names).unwrap();
            assert_eq!(set.is_satisfied(MULTIFACTOR, m), mfa, "{names:?}");
            assert_eq!(
                set.is_satisfied(PASSWORDLESS_MFA, m),
                passwordless,
                "{names:?}"
            );
            assert_eq!(
                set.is_satisfied(PHISHING_RESISTANT_MFA, m),
                phishing,
                "{names:?}"
            );
        }
    }

    #[test]
    fn builtin_strengths_match_graph_ids_names_and_tap_membership() {
        let set = StrengthSet::builtin();
        let names: Vec<_> = set.iter().map(|s| (s.id(), s.display_name())).collect();
        assert_eq!(
            names,
            [
                (MULTIFACTOR, "Multifactor authentication"),
                (PASSWORDLESS_MFA, "Passwordless MFA"),
                (PHISHING_RESISTANT_MFA, "Phishing resistant MFA"),
            ]
        );
        let has_tap = |id: &str| {
            set.get(id)
                .unwrap()
                .policy
                .allowed_combinations
                .iter()
                .flatten()
                .any(|c| c.contains("temporaryAccessPass"))
        };
        assert!(has_tap(MULTIFACTOR));
        assert!(!has_tap(PASSWORDLESS_MFA));
        assert!(!has_tap(PHISHING_RESISTANT_MFA));
        assert_eq!(set.custom().count(), 0);
    }

    fn custom(id: &str, combinations: &[&str]) -> AuthenticationStrengthPolicy {
        AuthenticationStrengthPolicy {
            id: id.to_owned(),
            display_name: format!("custom {id}"),
            description: None,
            policy_type: Some("custom".to_owned()),
            requirements_satisfied: Some("mfa".to_owned()),
            allowed_combinations: Some(combinations.iter().map(|c| (*c).to_owned()).collect()),
            extra: Map::new(),
        }
    }

    #[test]
    fn custom_strength_combinations_are_sets_of_modes() {
        let set = StrengthSet::with_custom(vec![
            custom(
                "bootstrap",
                &[
                    "temporaryAccessPassOneTime",
                    "temporaryAccessPassMultiUse",
                    "fido2",
                ],
            ),
            custom("pwd-and-key", &["password, fido2"]),
            custom("future", &["someFutureMethod"]),
        ]);
        let m = |methods: &[AuthMethod]| MethodSet::from_auth_methods(methods);
        assert!(set.is_satisfied("bootstrap", m(&[TemporaryAccessPassOneTime])));
        assert!(set.is_satisfied("bootstrap", m(&[TemporaryAccessPassMultiUse])));
        assert!(set.is_satisfied("bootstrap", m(&[Passkey])));
        assert!(!set.is_satisfied("bootstrap", m(&[Password])));
        assert!(!set.is_satisfied("pwd-and-key", m(&[Passkey])));
        assert!(!set.is_satisfied("pwd-and-key", m(&[Password])));
        assert!(set.is_satisfied("pwd-and-key", m(&[Password, Passkey])));
        assert!(!set.is_satisfied(
            "future",
            m(&[Password, Passkey, TemporaryAccessPassOneTime])
        ));
        assert!(!set.is_satisfied("no-such-strength", m(&[Passkey])));
    }

    #[test]
    fn custom_strength_with_builtin_id_is_ignored() {
        let set = StrengthSet::with_custom(vec![custom(MULTIFACTOR, &["password"])]);
        assert!(!set.is_satisfied(MULTIFACTOR, MethodSet::from_auth_methods(&[Password])));
        assert_eq!(set.iter().count(), 3);
    }

    const YUBIKEY_5: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    const FEITIAN: &str = "90a3ccdf-635c-4729-a248-9b709135078f";
    const SOLO: &str = "8876631b-d4a0-427f-5773-0ec71c9e0279";

    fn aaguid(s: &str) -> Option<Uuid> {
        Some(Uuid::parse_str(s).unwrap())
    }

    /// Strength "keys": fido2 (narrowed by `configs`), TAP, and
    /// password + fido2 (never narrowed).
    fn restricted(configs: serde_json::Value) -> Strength {
        let mut policy = custom(
            "keys",
            &["fido2", "temporaryAccessPassOneTime", "password,fido2"],
        );
        policy
            .extra
            .insert("combinationConfigurations".to_owned(), configs);
        Strength::new(policy)
    }

    fn fido2_config(applies: &[&str], aaguids: &[&str]) -> serde_json::Value {
        serde_json::json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
            "id": "c", "appliesToCombinations": applies, "allowedAAGUIDs": aaguids})
    }

    #[test]
    fn fido2_configuration_restricts_the_combination_to_the_listed_models() {
        // Written in upper case: AAGUIDs compare as UUIDs.
        let strength = restricted(serde_json::json!([fido2_config(
            &["fido2"],
            &[&YUBIKEY_5.to_ascii_uppercase(), FEITIAN]
        )]));
        let r = strength.reference();
        let key = MethodSet::from_auth_methods(&[Passkey]);
        assert!(r.is_satisfied_with(key, aaguid(YUBIKEY_5)));
        assert!(r.is_satisfied_with(key, aaguid(FEITIAN)));
        assert!(!r.is_satisfied_with(key, aaguid(SOLO)), "another model");
        assert!(
            !r.is_satisfied_with(key, None),
            "a passkey of unknown model"
        );
        assert!(
            !strength.is_satisfied_by(key),
            "is_satisfied_by knows no model"
        );
        assert!(
            strength.unsupported.is_empty(),
            "{:?}",
            strength.unsupported
        );
        assert_eq!(
            r.allowed_aaguids().collect::<Vec<_>>(),
            [aaguid(YUBIKEY_5).unwrap(), aaguid(FEITIAN).unwrap()]
        );
    }

    #[test]
    fn fido2_configuration_leaves_other_combinations_alone() {
        let strength = restricted(serde_json::json!([fido2_config(&["fido2"], &[YUBIKEY_5])]));
        let r = strength.reference();
        let m = |methods: &[AuthMethod]| MethodSet::from_auth_methods(methods);
        // The TAP combination and password + fido2 are not narrowed.
        assert!(r.is_satisfied_with(m(&[TemporaryAccessPassOneTime]), None));
        assert!(r.is_satisfied_with(m(&[Password, Passkey]), None));
        assert!(r.is_satisfied_with(m(&[Password, Passkey]), aaguid(SOLO)));
        assert!(!r.is_satisfied_with(m(&[Password]), aaguid(YUBIKEY_5)));
        // Unrestricted strengths ignore the model entirely.
        let set = StrengthSet::builtin();
        let phishing = set.get(PHISHING_RESISTANT_MFA).unwrap().reference();
        assert!(phishing.is_satisfied_with(m(&[Passkey]), None));
        assert!(phishing.is_satisfied_with(m(&[Passkey]), aaguid(SOLO)));
        assert_eq!(phishing.allowed_aaguids().count(), 0);
    }

    #[test]
    fn fido2_configurations_on_one_combination_intersect() {
        let strength = restricted(serde_json::json!([
            fido2_config(&["fido2"], &[YUBIKEY_5, FEITIAN]),
            fido2_config(&["FIDO2"], &[FEITIAN, SOLO]),
        ]));
        let r = strength.reference();
        let key = MethodSet::from_auth_methods(&[Passkey]);
        assert!(r.is_satisfied_with(key, aaguid(FEITIAN)));
        assert!(!r.is_satisfied_with(key, aaguid(YUBIKEY_5)));
        assert!(!r.is_satisfied_with(key, aaguid(SOLO)));
        // Disjoint lists: no model is left.
        let none = restricted(serde_json::json!([
            fido2_config(&["fido2"], &[YUBIKEY_5]),
            fido2_config(&["fido2"], &[SOLO]),
        ]));
        for model in [YUBIKEY_5, SOLO, FEITIAN] {
            assert!(!none.reference().is_satisfied_with(key, aaguid(model)));
        }
    }

    #[test]
    fn unsupported_configuration_types_still_fail_closed() {
        let strength = restricted(serde_json::json!([
            {"@odata.type": "#microsoft.graph.x509CertificateCombinationConfiguration",
             "id": "x", "appliesToCombinations": ["fido2"], "allowedIssuerSkis": ["a"]},
            {"id": "untyped", "appliesToCombinations": ["temporaryAccessPassOneTime"]}
        ]));
        let m = |methods: &[AuthMethod]| MethodSet::from_auth_methods(methods);
        let r = strength.reference();
        for model in [None, aaguid(YUBIKEY_5)] {
            assert!(!r.is_satisfied_with(m(&[Passkey]), model));
            assert!(!r.is_satisfied_with(m(&[TemporaryAccessPassOneTime]), model));
        }
        assert!(r.is_satisfied_with(m(&[Password, Passkey]), None));
        assert_eq!(
            strength.unsupported,
            [
                "combinationConfigurations[0] (#microsoft.graph.x509CertificateCombinationConfiguration)",
                "combinationConfigurations[1] (no @odata.type)"
            ]
        );
    }

    #[test]
    fn malformed_fido2_configurations_narrow_never_widen() {
        // A malformed AAGUID matches nothing; the valid one still does.
        let strength = restricted(serde_json::json!([fido2_config(
            &["fido2"],
            &["not-a-uuid", YUBIKEY_5]
        )]));
        let key = MethodSet::from_auth_methods(&[Passkey]);
        assert!(
            strength
                .reference()
                .is_satisfied_with(key, aaguid(YUBIKEY_5))
        );
        assert_eq!(strength.unsupported.len(), 1, "{:?}", strength.unsupported);
        // Passkey models on a combination without a passkey: never met.
        let strength = restricted(serde_json::json!([fido2_config(
            &["temporaryAccessPassOneTime"],
            &[YUBIKEY_5]
        )]));
        let tap = MethodSet::from_auth_methods(&[TemporaryAccessPassOneTime, Passkey]);
        assert!(!strength.reference().is_satisfied_with(
            MethodSet::from_auth_methods(&[TemporaryAccessPassOneTime]),
            aaguid(YUBIKEY_5)
        ));
        assert!(
            strength.reference().is_satisfied_with(tap, None),
            "fido2 is untouched"
        );
        // Not an array: nothing configured can be trusted.
        let strength = restricted(serde_json::json!({"fido2": [YUBIKEY_5]}));
        assert!(!strength.is_satisfied_by(MethodSet::from_auth_methods(&[
            Password,
            Passkey,
            TemporaryAccessPassOneTime
        ])));
    }

    #[test]
    fn session_methods_read_passkey_models() {
        let ok = |names: &[&str]| SessionMethods::parse(names).unwrap();
        let s = ok(&["password", &format!("fido2:{YUBIKEY_5}")]);
        assert_eq!(
            s.methods,
            MethodSet::from_auth_methods(&[Password, Passkey])
        );
        assert_eq!(s.authenticator, aaguid(YUBIKEY_5));
        let s = ok(&[&format!("passkey:{}", FEITIAN.to_ascii_uppercase())]);
        assert_eq!(s.authenticator, aaguid(FEITIAN));
        let s = ok(&[&format!("password, fido2 : {SOLO}")]);
        assert_eq!(
            s.methods,
            MethodSet::from_auth_methods(&[Password, Passkey])
        );
        assert_eq!(s.authenticator, aaguid(SOLO));
        // Plain fido2 is a passkey of unknown model.
        let s = ok(&["fido2"]);
        assert_eq!(s.methods, MethodSet::from_auth_methods(&[Passkey]));
        assert_eq!(s.authenticator, None);
        assert_eq!(ok(&[]), SessionMethods::default());

        let err = |names: &[&str]| SessionMethods::parse(names).unwrap_err();
        let table: [(&[&str], usize, MethodNameError); 6] = [
            (
                &["password", "pigeon"],
                1,
                MethodNameError::UnknownMode("pigeon".into()),
            ),
            (
                &["fido2:not-a-uuid"],
                0,
                MethodNameError::MalformedAaguid("fido2:not-a-uuid".into()),
            ),
            (
                &["fido2:"],
                0,
                MethodNameError::MalformedAaguid("fido2:".into()),
            ),
            (
                // The simple form is a UUID, but not how Graph writes one.
                &["fido2:cb69481e8ff7403993ec0a2729a154a8"],
                0,
                MethodNameError::MalformedAaguid("fido2:cb69481e8ff7403993ec0a2729a154a8".into()),
            ),
            (
                &["password:cb69481e-8ff7-4039-93ec-0a2729a154a8"],
                0,
                MethodNameError::ModelOnOtherMode(
                    "password:cb69481e-8ff7-4039-93ec-0a2729a154a8".into(),
                ),
            ),
            (
                &[
                    "fido2:cb69481e-8ff7-4039-93ec-0a2729a154a8",
                    "password",
                    "passkey:90a3ccdf-635c-4729-a248-9b709135078f",
                ],
                2,
                MethodNameError::SecondPasskeyModel(
                    "passkey:90a3ccdf-635c-4729-a248-9b709135078f".into(),
                ),
            ),
        ];
        for (names, index, error) in table {
            assert_eq!(err(names), (index, error), "{names:?}");
        }
    }

    #[test]
    fn acr_values_map_to_builtin_strengths() {
        assert_eq!(acr_strength("single_factor"), None);
        assert_eq!(acr_strength("mfa"), Some(MULTIFACTOR));
        assert_eq!(acr_strength("passwordless_mfa"), Some(PASSWORDLESS_MFA));
        assert_eq!(
            acr_strength("phishing_resistant_mfa"),
            Some(PHISHING_RESISTANT_MFA)
        );
        assert_eq!(acr_strength("gold"), None);
    }

    #[test]
    fn method_modes_round_trip_and_passkey_is_fido2() {
        for m in MethodMode::ALL {
            assert_eq!(MethodMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(MethodMode::parse("passkey"), Some(MethodMode::Fido2));
        assert_eq!(MethodMode::parse("FIDO2"), Some(MethodMode::Fido2));
        assert_eq!(MethodMode::parse("carrier-pigeon"), None);
        assert_eq!(
            MethodSet::parse_names(&["password", "pigeon"]),
            Err("pigeon".to_owned())
        );
        assert_eq!(
            MethodSet::from_auth_methods(&[
                Password,
                Passkey,
                TemporaryAccessPassOneTime,
                TemporaryAccessPassMultiUse
            ])
            .modes(),
            [
                MethodMode::Password,
                MethodMode::Fido2,
                MethodMode::TemporaryAccessPassOneTime,
                MethodMode::TemporaryAccessPassMultiUse
            ]
        );
    }
}
