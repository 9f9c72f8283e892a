//! Token revocation (RFC 7009) and introspection (RFC 7662).

use super::bearer;
use super::error::OAuthJsonError;
use super::token::{authenticate_client, form_params};
use crate::app::AppState;
use crate::protocol::discovery::paths;
use crate::tokens::grants::GrantError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

fn grant_error(e: GrantError) -> OAuthJsonError {
    match e {
        GrantError::Store(s) => s.into(),
        other => OAuthJsonError::internal(other.code(), &other.to_string(), false),
    }
}

/// RFC 7009 §2.1: revokes a refresh token (and its whole grant) or an
/// access token. Answers 200 whether or not the token was valid (§2.2), so
/// the endpoint cannot be used to probe tokens; a token of another client is
/// left alone.
#[utoipa::path(post, path = "/revoke", operation_id = "oauth.revoke", tag = "oauth",
    request_body(content = crate::openapi::schemas::TokenReference, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or not a token of this client (RFC 7009 §2.2)")))]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthJsonError> {
    let now = state.clock.now();
    let params = form_params(&headers, body)?;
    let client = authenticate_client(&state, &headers, &params, paths::REVOKE, now).await?;
    let token = params
        .require("token")
        .map_err(OAuthJsonError::bad_request)?;

    if let Some(grant) = state
        .grants
        .refresh_token_grant(token, now)
        .await
        .map_err(grant_error)?
    {
        if grant.authorization.client_id == client.client_id {
            state
                .grants
                .revoke(grant.id, now)
                .await
                .map_err(grant_error)?;
        }
    } else if let Ok(claims) = state.tokens.check_access_token(token, now) {
        if claims.client_id == client.client_id {
            state
                .grants
                .revoke_access_token(&claims.jti, claims.exp)
                .await
                .map_err(grant_error)?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// RFC 7662 §2: tells an authenticated confidential client whether a token
/// is active, and what it carries. A client learns only about tokens issued
/// to itself, unless it is a resource server configured with
/// `introspect_all_tokens`; any other token is `{"active": false}` (§2.2:
/// "not allowed to introspect this particular token"), never its contents.
#[utoipa::path(post, path = "/introspect", operation_id = "oauth.introspect", tag = "oauth",
    request_body(content = crate::openapi::schemas::TokenReference, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "What the token is", body = crate::openapi::schemas::Introspection)))]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthJsonError> {
    let now = state.clock.now();
    let params = form_params(&headers, body)?;
    let client = authenticate_client(&state, &headers, &params, paths::INTROSPECT, now).await?;
    if client.is_public() {
        return Err(OAuthJsonError::invalid_client(
            "introspection requires a confidential client",
        ));
    }
    let token = params
        .require("token")
        .map_err(OAuthJsonError::bad_request)?;
    let inactive = || Ok(Json(json!({"active": false})).into_response());

    let may_see =
        |token_client: &str| client.introspect_all_tokens || token_client == client.client_id;
    match bearer::authenticate(&state, token, now).await {
        Ok(p) if !may_see(&p.claims.client_id) => return inactive(),
        Ok(p) => {
            let c = p.claims;
            let mut body = json!({
                "active": true,
                // RFC 9449 §6.2: a bound token is of type DPoP, with its cnf.
                "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
                "scope": c.scope,
                "client_id": c.client_id,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "exp": c.exp,
                "iat": c.iat,
                "jti": c.jti,
            });
            if let (Some(cnf), Some(obj)) = (&c.cnf, body.as_object_mut()) {
                obj.insert("cnf".into(), json!(cnf));
            }
            if let (Some(user), Some(obj)) = (p.user, body.as_object_mut()) {
                obj.insert("username".into(), json!(user.user_principal_name));
                if let Some(acr) = c.acr {
                    obj.insert("acr".into(), json!(acr));
                }
                if let Some(amr) = c.amr {
                    obj.insert("amr".into(), json!(amr));
                }
            }
            return Ok(Json(body).into_response());
        }
        Err(bearer::BearerError::Unavailable(d)) => {
            return Err(OAuthJsonError::internal("store.unavailable", &d, true));
        }
        Err(_) => {}
    }
    let Some(grant) = state
        .grants
        .refresh_token_grant(token, now)
        .await
        .map_err(grant_error)?
    else {
        return inactive();
    };
    if !may_see(&grant.authorization.client_id) {
        return inactive();
    }
    // A deleted client's refresh tokens are dead: it can no longer
    // authenticate to use them.
    if state
        .clients
        .get(&grant.authorization.client_id)
        .await?
        .is_none()
    {
        return inactive();
    }
    match super::bearer::grant_user(&state, &grant.authorization, now).await? {
        Some(u) => Ok(Json(json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": grant.authorization.scope.to_string(),
            "client_id": grant.authorization.client_id,
            "sub": u.id.to_string(),
            "username": u.user_principal_name,
            "iss": state.settings.issuer,
            "exp": grant.expires_at,
            "iat": grant.created_at,
        }))
        .into_response()),
        None => inactive(),
    }
}
