//! Minting and checking the JWTs Gatepass issues.
//!
//! * ID tokens (OpenID Connect Core §2): `typ: JWT`, audience = the client.
//! * Access tokens (RFC 9068): `typ: at+jwt`, audience = the client, or the
//!   Graph audience `{issuer}/graph` when Graph scopes or roles were granted,
//!   so an RP's token can never be replayed against the management API.
//!
//! A signature alone never makes an access token good: [`TokenIssuer::check_access_token`]
//! also checks issuer, type and expiry against the caller's `now`, and the
//! web layer checks the grant and session behind it are still live.

pub mod device;
pub mod grants;

use crate::keys::{Algorithm, KeySet};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Clock skew tolerated on `iat` (tokens "from the future").
const MAX_SKEW_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Who an access token speaks for (Entra's `idtyp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityType {
    User,
    App,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub idtyp: IdentityType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Graph delegated permissions (space-separated, Graph's claim name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// Graph application permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The grant this token belongs to; revoking the grant revokes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// Sender constraint (RFC 9449 §6.1): the token is usable only with a
    /// DPoP proof signed by the key with this thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 7800) of a DPoP-bound access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: crate::protocol::dpop::Jkt,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token signature or format is invalid")]
    Invalid,
    #[error("token is not an access token")]
    WrongType,
    #[error("token was issued by another issuer")]
    WrongIssuer,
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token signing failed")]
    Signing,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Invalid => "token.invalid",
            TokenError::WrongType => "token.wrong_type",
            TokenError::WrongIssuer => "token.wrong_issuer",
            TokenError::Expired => "token.expired",
            TokenError::NotYetValid => "token.not_yet_valid",
            TokenError::Signing => "token.signing",
        }
    }
}

/// Signs and checks tokens for one issuer.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: KeySet,
    issuer: String,
}

impl TokenIssuer {
    pub fn new(keys: KeySet, issuer: String) -> Self {
        Self { keys, issuer }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn algorithm(&self) -> Algorithm {
        self.keys.signing_algorithm()
    }

    pub fn sign_id_token(&self, claims: &IdTokenClaims) -> Result<String, TokenError> {
        self.keys
            .sign("JWT", claims)
            .map_err(|_| TokenError::Signing)
    }

    pub fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, TokenError> {
        self.keys
            .sign("at+jwt", claims)
            .map_err(|_| TokenError::Signing)
    }

    /// `at_hash` for an access token under the current signing algorithm.
    pub fn at_hash(&self, access_token: &str) -> String {
        crate::keys::token_hash(self.keys.signing_algorithm(), access_token)
    }

    /// Verifies signature, `typ: at+jwt`, issuer and time; not revocation.
    pub fn check_access_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessTokenClaims, TokenError> {
        let verified = self
            .keys
            .verify::<AccessTokenClaims>(token)
            .map_err(|_| TokenError::Invalid)?;
        let typ = verified.typ.as_deref().unwrap_or("").to_ascii_lowercase();
        // RFC 9068 §4: reject anything not explicitly typed as an access
        // token, so an ID token can never be used as one.
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err(TokenError::WrongType);
        }
        let claims = verified.claims;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let t = now.unix_timestamp();
        if claims.exp <= t {
            return Err(TokenError::Expired);
        }
        if claims.iat > t + MAX_SKEW_SECS {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Verifies an ID token we issued, ignoring expiry (an `id_token_hint`
    /// may be expired, OpenID Connect RP-Initiated Logout §2).
    pub fn check_id_token_hint(&self, token: &str) -> Result<IdTokenClaims, TokenError> {
        let verified = self
            .keys
            .verify::<IdTokenClaims>(token)
            .map_err(|_| TokenError::Invalid)?;
        if verified
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
        {
            return Err(TokenError::WrongType);
        }
        if verified.claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        Ok(verified.claims)
    }
}
