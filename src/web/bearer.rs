//! Bearer access tokens (RFC 6750): from the header to a live principal.
//!
//! A token is good only if its signature, type, issuer and expiry check out
//! *and* nothing behind it has been revoked: its `jti` (RFC 7009), its
//! client (a registered client deleted through RFC 7592), its grant (code
//! replay, refresh reuse), its user (disabled, deleted, signed out
//! everywhere) and, for grants without `offline_access`, its browser session.

use crate::app::AppState;
use crate::directory::User;
use crate::ids::GrantId;
use crate::tokens::{AccessTokenClaims, IdentityType, TokenError};
use axum::http::{HeaderMap, header};
use time::OffsetDateTime;

/// Why a bearer token was refused. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("no bearer token was presented")]
    Missing,
    #[error("the Authorization header is not a Bearer token")]
    Malformed,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("the token has been revoked")]
    Revoked,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A verified, live access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: AccessTokenClaims,
    /// The signed-in user, for delegated (user) tokens.
    pub user: Option<User>,
    /// How and when that user signed in (the grant's methods and
    /// `auth_time`), for rules that ask for a fresh strong sign-in.
    pub sign_in: Option<SignInFacts>,
}

/// The sign-in a delegated token rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFacts {
    pub methods: Vec<crate::authn::AuthMethod>,
    pub auth_time: i64,
}

/// Extracts the token from `Authorization: Bearer …`.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(BearerError::Missing)?;
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(BearerError::Malformed);
    }
    Ok(token.trim())
}

fn store_err(e: impl std::fmt::Display, unavailable: bool) -> BearerError {
    if unavailable {
        BearerError::Unavailable(e.to_string())
    } else {
        BearerError::Internal(e.to_string())
    }
}

/// The user of a grant's authorization, if the grant's tokens may still be used at all: the
/// user exists and is enabled, has not signed out everywhere since, and —
/// for a TAP sign-in — the pass is still the user's current, unexpired
/// pass. The one place this rule lives: the token endpoint, bearer
/// authentication and introspection all ask it.
pub async fn grant_user(
    state: &AppState,
    authorization: &crate::tokens::grants::Authorization,
    now: OffsetDateTime,
) -> Result<Option<User>, crate::store::StoreError> {
    use crate::directory::DirectoryError;
    use crate::store::StoreError;
    let user = match state.directory.user(authorization.user_id, now).await {
        Ok(u) => u,
        Err(DirectoryError::Store(e)) => return Err(e),
        Err(other) => return Err(StoreError::Corrupt(other.to_string())),
    };
    let Some(user) = user.filter(|u| u.account_enabled && u.session_epoch == authorization.epoch)
    else {
        return Ok(None);
    };
    if let Some(tap) = &authorization.tap_id {
        if !state
            .taps
            .binding_is_live(user.id, tap, now.unix_timestamp())
            .await?
        {
            return Ok(None);
        }
    }
    Ok(Some(user))
}

/// Verifies `token` and checks everything behind it is still live.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Principal, BearerError> {
    use crate::store::StoreError;
    use crate::tokens::grants::GrantError;
    let claims = state.tokens.check_access_token(token, now)?;
    let grant_err = |e: GrantError| {
        let unavailable = matches!(e, GrantError::Store(StoreError::Unavailable(_)));
        store_err(e, unavailable)
    };
    if state
        .grants
        .is_access_token_revoked(&claims.jti, now)
        .await
        .map_err(grant_err)?
    {
        return Err(BearerError::Revoked);
    }
    // Every token names a client that must still be known: a deleted
    // registered client's tokens, app or user, stop working at once.
    let client = state.clients.get(&claims.client_id).await.map_err(|e| {
        let unavailable = matches!(e, StoreError::Unavailable(_));
        store_err(e, unavailable)
    })?;
    if client.is_none() {
        return Err(BearerError::Revoked);
    }
    match claims.idtyp {
        IdentityType::App => Ok(Principal {
            claims,
            user: None,
            sign_in: None,
        }),
        IdentityType::User => {
            let grant_id = claims
                .grant
                .as_deref()
                .and_then(|g| uuid::Uuid::parse_str(g).ok())
                .map(GrantId)
                .ok_or(BearerError::Revoked)?;
            let grant = state
                .grants
                .grant(grant_id, now)
                .await
                .map_err(grant_err)?
                .ok_or(BearerError::Revoked)?;
            if grant.authorization.user_id.to_string() != claims.sub {
                return Err(BearerError::Revoked);
            }
            let user = grant_user(state, &grant.authorization, now)
                .await
                .map_err(|e| {
                    let unavailable = matches!(e, StoreError::Unavailable(_));
                    store_err(e, unavailable)
                })?
                .ok_or(BearerError::Revoked)?;
            if !grant.offline
                && !state
                    .sessions
                    .is_live_for(&grant.authorization.session, &user, now)
                    .await
                    .map_err(|e| store_err(e, false))?
            {
                return Err(BearerError::Revoked);
            }
            let sign_in = SignInFacts {
                methods: grant.authorization.methods,
                auth_time: grant.authorization.auth_time,
            };
            Ok(Principal {
                claims,
                user: Some(user),
                sign_in: Some(sign_in),
            })
        }
    }
}
