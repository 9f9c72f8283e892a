//! Authentication methods and their `amr` / `acr` (DESIGN §2.4).
//!
//! `amr` values come from RFC 8176 (`pwd`, `pop`, `otp`, `mfa`), plus
//! Gatepass's own `tap`, which RFC 8176 §2 permits and which tells a relying
//! party that a Temporary Access Pass was used.

use serde::{Deserialize, Serialize};

/// A way a user proved who they are in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    Password,
    /// A user-verified WebAuthn assertion.
    Passkey,
    TemporaryAccessPassOneTime,
    TemporaryAccessPassMultiUse,
}

impl AuthMethod {
    /// The name the sign-in log shows (Graph `authenticationMethod`).
    pub fn display_name(self) -> &'static str {
        match self {
            AuthMethod::Password => "Password",
            AuthMethod::Passkey => "Passkey (FIDO2)",
            AuthMethod::TemporaryAccessPassOneTime | AuthMethod::TemporaryAccessPassMultiUse => {
                "Temporary Access Pass"
            }
        }
    }

    /// The sign-in log's `authenticationMethodDetail`: a pass's mode.
    pub fn log_detail(self) -> Option<&'static str> {
        match self {
            AuthMethod::TemporaryAccessPassOneTime => Some("One-time"),
            AuthMethod::TemporaryAccessPassMultiUse => Some("Multi-use"),
            AuthMethod::Password | AuthMethod::Passkey => None,
        }
    }

    fn is_tap(self) -> bool {
        matches!(
            self,
            AuthMethod::TemporaryAccessPassOneTime | AuthMethod::TemporaryAccessPassMultiUse
        )
    }
}

/// Authentication context class, weakest first; the strongest built-in
/// authentication strength the session satisfies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acr {
    SingleFactor,
    Mfa,
    PasswordlessMfa,
    PhishingResistantMfa,
}

impl Acr {
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::SingleFactor => "single_factor",
            Acr::Mfa => "mfa",
            Acr::PasswordlessMfa => "passwordless_mfa",
            Acr::PhishingResistantMfa => "phishing_resistant_mfa",
        }
    }

    pub fn parse(s: &str) -> Option<Acr> {
        [
            Acr::SingleFactor,
            Acr::Mfa,
            Acr::PasswordlessMfa,
            Acr::PhishingResistantMfa,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// The `amr` claim for a set of methods, in the order DESIGN §2.4 lists.
pub fn amr(methods: &[AuthMethod]) -> Vec<&'static str> {
    let has = |m: AuthMethod| methods.contains(&m);
    let mut out = Vec::new();
    if methods.iter().any(|m| m.is_tap()) {
        out.push("tap");
    }
    if has(AuthMethod::Password) {
        out.push("pwd");
    }
    if has(AuthMethod::Passkey) {
        out.push("pop");
    }
    if has(AuthMethod::TemporaryAccessPassOneTime) {
        out.push("otp");
    }
    if acr(methods) >= Acr::Mfa {
        out.push("mfa");
    }
    out
}

/// The strongest built-in strength these methods satisfy.
pub fn acr(methods: &[AuthMethod]) -> Acr {
    if methods.contains(&AuthMethod::Passkey) {
        // A user-verified passkey is phishing-resistant MFA on its own.
        Acr::PhishingResistantMfa
    } else if methods.iter().any(|m| m.is_tap()) {
        // A TAP satisfies Multifactor but neither passwordless strength.
        Acr::Mfa
    } else {
        Acr::SingleFactor
    }
}

#[cfg(test)]
mod tests {
    use super::AuthMethod::*;
    use super::*;

    #[test]
    fn amr_and_acr_match_the_design_table() {
        let table: [(&[AuthMethod], &[&str], Acr); 5] = [
            (&[Password], &["pwd"], Acr::SingleFactor),
            (
                &[Password, Passkey],
                &["pwd", "pop", "mfa"],
                Acr::PhishingResistantMfa,
            ),
            (&[Passkey], &["pop", "mfa"], Acr::PhishingResistantMfa),
            (
                &[TemporaryAccessPassOneTime],
                &["tap", "otp", "mfa"],
                Acr::Mfa,
            ),
            (&[TemporaryAccessPassMultiUse], &["tap", "mfa"], Acr::Mfa),
        ];
        for (methods, want_amr, want_acr) in table {
            assert_eq!(amr(methods), want_amr, "{methods:?}");
            assert_eq!(acr(methods), want_acr, "{methods:?}");
        }
    }

    #[test]
    fn acr_round_trips_and_orders_weakest_first() {
        for a in [
            Acr::SingleFactor,
            Acr::Mfa,
            Acr::PasswordlessMfa,
            Acr::PhishingResistantMfa,
        ] {
            assert_eq!(Acr::parse(a.as_str()), Some(a));
        }
        assert!(Acr::SingleFactor < Acr::Mfa && Acr::Mfa < Acr::PhishingResistantMfa);
        assert_eq!(Acr::parse("gold"), None);
    }
}
