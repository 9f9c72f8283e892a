//! The UserInfo endpoint (OpenID Connect Core §5.3).

use super::bearer::BearerError;
use super::error::OAuthJsonError;
use crate::app::AppState;
use crate::protocol::{ErrorCode, OAuthError};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub fn bearer_error(e: BearerError) -> OAuthJsonError {
    match e {
        BearerError::Unavailable(d) => OAuthJsonError::internal("store.unavailable", &d, true),
        BearerError::Internal(d) => OAuthJsonError::internal("bearer", &d, false),
        BearerError::Missing => {
            // RFC 6750 §3.1: no error code in the challenge when no
            // credentials were sent; `OAuthJsonError` renders a 401 Bearer
            // `invalid_request` as a bare challenge. The JSON body keeps it.
            let mut e = OAuthJsonError::invalid_token("an access token is required");
            e.error = OAuthError::new(ErrorCode::InvalidRequest, "an access token is required");
            e
        }
        other => OAuthJsonError::invalid_token(other.to_string()),
    }
}

#[utoipa::path(get, path = "/userinfo", operation_id = "oauth.userinfo", tag = "oauth",
    security(("user" = [])),
    responses((status = 200, description = "Claims about the signed-in user", body = crate::openapi::schemas::UserInfo)))]
pub async fn userinfo_get(
    state: State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthJsonError> {
    userinfo(state, headers, "GET").await
}

/// OIDC Core §5.3.1: the endpoint must accept POST too.
#[utoipa::path(post, path = "/userinfo", operation_id = "oauth.userinfoPost", tag = "oauth",
    security(("user" = [])),
    responses((status = 200, description = "Claims about the signed-in user", body = crate::openapi::schemas::UserInfo)))]
pub async fn userinfo_post(
    state: State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthJsonError> {
    userinfo(state, headers, "POST").await
}

/// `method` is the request's, for a DPoP proof's `htm`.
async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: &str,
) -> Result<Response, OAuthJsonError> {
    let now = state.clock.now();
    let principal = super::dpop::authenticate_userinfo(&state, &headers, method, now).await?;
    let scope = crate::protocol::scope::Scope::parse(&principal.claims.scope).unwrap_or_default();
    let Some(user) = principal.user.filter(|_| scope.contains("openid")) else {
        return Err(OAuthJsonError {
            status: StatusCode::FORBIDDEN,
            error: OAuthError::new(
                ErrorCode::InsufficientScope,
                "the token was not granted the openid scope",
            ),
            challenge: Some("Bearer"),
        });
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id.to_string()));
    if scope.contains("profile") {
        claims.insert("name".into(), json!(user.display_name));
        claims.insert("preferred_username".into(), json!(user.user_principal_name));
    }
    if scope.contains("email") {
        if let Some(mail) = &user.mail {
            claims.insert("email".into(), json!(mail));
            // Addresses are set by administrators, not verified by mail.
            claims.insert("email_verified".into(), json!(false));
        }
    }
    Ok(Json(Value::Object(claims)).into_response())
}
