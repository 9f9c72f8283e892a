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

/// Built-in "Multifactor authentication".
pub const MULTIFACTOR: &str = "00000000-0000-0000-0000-000000000002";
/// Built-in "Passwordless MFA".
pub const PASSWORDLESS_MFA: &str = "00000000-0000-0000-0000-000000000003";
/// Built-in "Phishing resistant MFA".
pub const PHISHING_RESISTANT_MFA: &str = "00000000-0000-0000-0000-000000000004";

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

/// A strength as a requirement names it, serialized as `{"id",
/// "displayName"}`. Shared and cheap to clone — every evaluation hands them
/// out — and it carries its combinations, so a requirement can be checked
/// even when the strength came inline with an exported policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrengthRef {
    pub id: Arc<str>,
    pub display_name: Arc<str>,
    pub combinations: Arc<[MethodSet]>,
}

impl StrengthRef {
    pub fn new(id: &str, display_name: &str, combinations: Vec<MethodSet>) -> StrengthRef {
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

    /// Whether a session that used `methods` satisfies the strength.
    pub fn is_satisfied_by(&self, methods: MethodSet) -> bool {
        self.combinations.iter().any(|c| c.is_subset_of(methods))
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
        let mut unsupported = Vec::new();
        // combinationConfigurations narrow a combination (e.g. only some
        // FIDO2 AAGUIDs). Gatepass cannot check those restrictions, so the
        // restricted combinations are never satisfied rather than loosened.
        let mut restricted: Vec<String> = Vec::new();
        if let Some(Value::Array(configs)) = policy.extra.get("combinationConfigurations") {
            for config in configs {
                if let Some(Value::Array(applies)) = config.get("appliesToCombinations") {
                    restricted.extend(
                        applies
                            .iter()
                            .filter_map(Value::as_str)
                            .map(normalise_combination),
                    );
                }
            }
            if !configs.is_empty() {
                unsupported.push("combinationConfigurations".to_owned());
            }
        }
        let combinations: Vec<MethodSet> = policy
            .allowed_combinations
            .iter()
            .flatten()
            .map(|c| {
                if restricted.contains(&normalise_combination(c)) {
                    MethodSet(UNKNOWN_MODE)
                } else {
                    MethodSet::parse_combination(c)
                }
            })
            .collect();
        let reference = StrengthRef::new(&policy.id, &policy.display_name, combinations);
        Strength {
            policy,
            reference,
            unsupported,
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

fn normalise_combination(c: &str) -> String {
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

    #[test]
    fn combination_configurations_make_restricted_combinations_unsatisfiable() {
        let mut policy = custom("keys", &["fido2", "temporaryAccessPassOneTime"]);
        policy.extra.insert(
            "combinationConfigurations".to_owned(),
            serde_json::json!([{"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
                "appliesToCombinations": ["fido2"], "allowedAAGUIDs": ["90a3ccdf-635c-4729-a248-9b709135078f"]}]),
        );
        let strength = Strength::new(policy);
        assert!(!strength.is_satisfied_by(MethodSet::from_auth_methods(&[Passkey])));
        assert!(
            strength.is_satisfied_by(MethodSet::from_auth_methods(&[TemporaryAccessPassOneTime]))
        );
        assert_eq!(strength.unsupported, ["combinationConfigurations"]);
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
