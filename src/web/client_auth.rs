//! Client authentication (RFC 6749 §2.3, RFC 7521 §4.2, RFC 7523 §2.2) for
//! every endpoint a client calls directly: token, PAR, introspection,
//! revocation. One function, so each endpoint applies the same rules:
//!
//! * exactly one method per request (HTTP Basic, `client_secret` in the
//!   body, or `client_assertion`), or none for a public client;
//! * a client may use only its configured `token_endpoint_auth_method`
//!   (a `private_key_jwt` client's secret-shaped guess is refused, and so
//!   is an assertion from a secret client);
//! * an assertion's `aud` may be the issuer, the token endpoint or the
//!   endpoint called, all derived from the configured issuer.

use super::error::OAuthJsonError;
use super::token::parse_basic;
use crate::app::AppState;
use crate::authn::client_keys::ClientAuthError;
use crate::config::Client;
use crate::ids::{SecretDigest, secrets_equal};
use crate::protocol::OAuthError;
use crate::protocol::client_assertion::{self, ASSERTION_TYPE_JWT_BEARER, ClientAuthMethod};
use crate::protocol::discovery::paths;
use crate::protocol::params::Params;
use axum::http::{HeaderMap, header};
use std::sync::Arc;
use time::OffsetDateTime;

/// Authenticates the client of a request to the endpoint at `endpoint`
/// (a path from [`paths`]). Exactly one method may be used (§2.3).
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    endpoint: &str,
    now: OffsetDateTime,
) -> Result<Arc<Client>, OAuthJsonError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(parse_basic(value).ok_or_else(|| {
            OAuthJsonError::invalid_client(
                "malformed Authorization header; use HTTP Basic with the client credentials",
            )
        })?),
        None => None,
    };
    let assertion = match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (None, None) => None,
        (Some(ASSERTION_TYPE_JWT_BEARER), Some(a)) => Some(a),
        (Some(_), Some(_)) => {
            return Err(OAuthJsonError::invalid_client(format!(
                "unsupported client_assertion_type; use {ASSERTION_TYPE_JWT_BEARER}"
            )));
        }
        _ => {
            return Err(OAuthJsonError::bad_request(OAuthError::invalid_request(
                "client_assertion and client_assertion_type go together",
            )));
        }
    };
    let secret_in_body = params.get("client_secret");
    let presented = [
        basic.is_some(),
        secret_in_body.is_some(),
        assertion.is_some(),
    ]
    .into_iter()
    .filter(|p| *p)
    .count();
    if presented > 1 {
        return Err(OAuthJsonError::bad_request(OAuthError::invalid_request(
            "use exactly one client authentication method",
        )));
    }
    let body_client_id = params.get("client_id");
    let (client_id, method) = match (&basic, assertion, secret_in_body) {
        (Some((id, _)), _, _) => (id.clone(), ClientAuthMethod::ClientSecretBasic),
        (None, Some(a), _) => {
            // The assertion's `sub` names the client (RFC 7521 §4.2: the
            // client_id parameter is optional); its keys then verify it.
            let claimed = client_assertion::claimed_client(a).ok_or_else(|| {
                OAuthJsonError::invalid_client(
                    "client_assertion is not a JWT naming its client in sub",
                )
            })?;
            (claimed, ClientAuthMethod::PrivateKeyJwt)
        }
        (None, None, Some(_)) => (
            body_client_id
                .ok_or_else(|| OAuthJsonError::invalid_client("client authentication is required"))?
                .to_owned(),
            ClientAuthMethod::ClientSecretPost,
        ),
        (None, None, None) => (
            body_client_id
                .ok_or_else(|| OAuthJsonError::invalid_client("client authentication is required"))?
                .to_owned(),
            ClientAuthMethod::None,
        ),
    };
    if body_client_id.is_some_and(|p| p != client_id) {
        return Err(OAuthJsonError::bad_request(OAuthError::invalid_request(
            "client_id in the body differs from the authenticated client",
        )));
    }
    let client = state
        .clients
        .get(&client_id)
        .await?
        .ok_or_else(|| OAuthJsonError::invalid_client("client authentication failed"))?;
    if !client.accepts(method) {
        return Err(wrong_method(&client, method));
    }
    match (method, &basic, secret_in_body, assertion) {
        (ClientAuthMethod::ClientSecretBasic, Some((_, given)), _, _) => {
            check_secret(&client, given)?;
        }
        (ClientAuthMethod::ClientSecretPost, _, Some(given), _) => {
            check_secret(&client, given)?;
        }
        (ClientAuthMethod::PrivateKeyJwt, _, _, Some(a)) => {
            let audiences = audiences(&state.settings.issuer, endpoint);
            state
                .client_assertions
                .verify(&client, a, &audiences, now)
                .await
                .map_err(|e| match e {
                    ClientAuthError::Assertion(a) => OAuthJsonError::invalid_client(a.to_string()),
                    ClientAuthError::Store(s) => s.into(),
                })?;
        }
        (ClientAuthMethod::None, None, None, None) => {}
        // `method` was derived from what was presented above.
        _ => {
            return Err(OAuthJsonError::invalid_client(
                "client authentication failed",
            ));
        }
    }
    Ok(client)
}

fn check_secret(client: &Client, given: &str) -> Result<(), OAuthJsonError> {
    let matches = client
        .secret_digest
        .as_ref()
        .is_some_and(|d| secrets_equal(SecretDigest::of(given).as_str(), d.as_str()));
    if matches {
        Ok(())
    } else {
        Err(OAuthJsonError::invalid_client(
            "client authentication failed",
        ))
    }
}

/// The `aud` values an assertion sent to `endpoint` may carry (RFC 7523
/// §3, RFC 9126 §2): the issuer, the token endpoint, the endpoint itself.
pub fn audiences(issuer: &str, endpoint: &str) -> Vec<String> {
    let mut audiences = vec![issuer.to_owned(), format!("{issuer}{}", paths::TOKEN)];
    let this = format!("{issuer}{endpoint}");
    if !audiences.contains(&this) {
        audiences.push(this);
    }
    audiences
}

/// The refusal when a client presents a method other than its own.
fn wrong_method(client: &Client, presented: ClientAuthMethod) -> OAuthJsonError {
    use ClientAuthMethod as M;
    match (client.token_endpoint_auth_method, presented) {
        (_, M::ClientSecretBasic | M::ClientSecretPost) if client.is_public() => {
            OAuthJsonError::invalid_client("this is a public client; it has no secret")
        }
        (Some(M::PrivateKeyJwt), _) => OAuthJsonError::invalid_client(
            "this client authenticates with private_key_jwt (client_assertion)",
        ),
        (Some(configured), _) => OAuthJsonError::invalid_client(format!(
            "this client authenticates with {}",
            configured.as_str()
        )),
        (None, M::PrivateKeyJwt) => OAuthJsonError::invalid_client(
            "this client authenticates with its client secret, not private_key_jwt",
        ),
        (None, _) => OAuthJsonError::invalid_client("client authentication failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_audiences_are_derived_from_the_issuer() {
        assert_eq!(
            audiences("https://idp", paths::TOKEN),
            vec!["https://idp".to_owned(), "https://idp/token".to_owned()]
        );
        assert_eq!(audiences("https://idp", "/par").len(), 3);
    }
}
