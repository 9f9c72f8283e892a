//! The JWS algorithms Gatepass signs with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::KeyError;

/// A JWS signing algorithm ([RFC 7518 §3.1], [RFC 8037 §3.1]).
///
/// The serde names are the JOSE names, so `[keys] algorithm = "ES256"` in the
/// configuration and the `alg` of a JWK or JWS header use the same spelling.
///
/// [RFC 7518 §3.1]: https://www.rfc-editor.org/rfc/rfc7518#section-3.1
/// [RFC 8037 §3.1]: https://www.rfc-editor.org/rfc/rfc8037#section-3.1
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256; the default.
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key.
    #[serde(rename = "RS256")]
    Rs256,
    /// EdDSA with Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Algorithm {
    /// Every supported algorithm, in the order error messages list them.
    pub const ALL: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Rs256, Algorithm::EdDsa];

    /// The JOSE name (`"ES256"`, `"RS256"`, `"EdDSA"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    pub(super) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    /// Parses the exact JOSE name; JOSE names are case-sensitive
    /// ([RFC 7515 §4.1.1](https://www.rfc-editor.org/rfc/rfc7515#section-4.1.1)).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| KeyError::UnknownAlgorithm {
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_through_str_and_serde() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
            assert_eq!(alg.to_string(), alg.as_str());
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
        }
    }

    #[test]
    fn algorithm_unknown_name_is_rejected_listing_allowed_values() {
        for bad in ["HS256", "es256", "none", "", "EDDSA"] {
            let err = bad.parse::<Algorithm>().unwrap_err();
            assert_eq!(err.code(), "keys.unknown_algorithm");
            let msg = err.to_string();
            assert!(msg.contains("ES256, RS256, EdDSA"), "{msg}");
        }
        assert!(serde_json::from_str::<Algorithm>("\"HS256\"").is_err());
    }
}
