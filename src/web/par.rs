//! The pushed authorization request endpoint (RFC 9126) and its half of
//! `/authorize`: turning `client_id` + `request_uri` back into the pushed
//! parameters, once.
//!
//! A `request_uri` is a bearer reference to a request that names a redirect
//! URI, so it is random (256 bits), stored only as a digest, bound to the
//! client that pushed it, short-lived (`[par] request_uri_lifetime_seconds`)
//! and taken from the store atomically on first use — with a shared store,
//! on whichever instance the browser reaches.

use super::error::{OAuthJsonError, PageError};
use super::token::{authenticate_client, form_params};
use crate::app::AppState;
use crate::ids::{OpaqueSecret, SecretDigest};
use crate::protocol::authorize::{self, AuthorizeRejection};
use crate::protocol::discovery::paths;
use crate::protocol::par::{
    self, PushedAuthorizationResponse, PushedRequest, REQUEST_URI_PREFIX, RequestUriRejection,
};
use crate::protocol::params::Params;
use crate::store::{Durability, decode, encode};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

/// Store table of pushed requests, keyed by the digest of the reference.
const PUSHED_REQUESTS: crate::store::Table = "par_requests";

/// `POST /par` (RFC 9126 §2): the client authenticates as at the token
/// endpoint; the parameters are checked by the authorization endpoint's
/// rules; the answer is 201 with a `request_uri` for `/authorize`.
#[utoipa::path(post, path = "/par", operation_id = "oauth.par", tag = "oauth",
    description = "Pushed authorization request (RFC 9126): the client authenticates (as at the token \
                   endpoint, including `private_key_jwt`) and pushes the authorization parameters; \
                   the answer's `request_uri` is then sent to `/authorize` with `client_id`, once, \
                   before it expires.",
    request_body(content = crate::openapi::schemas::PushedAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "The request was stored", body = crate::openapi::schemas::PushedAuthorizationResponse),
        (status = 400, description = "An OAuth error (`invalid_request`, `invalid_scope`, `unauthorized_client`, …)", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 401, description = "Client authentication failed", body = crate::openapi::schemas::OAuthErrorBody),
    ))]
pub async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthJsonError> {
    let now = state.clock.now();
    let body = form_params(&headers, body)?;
    let client =
        authenticate_client(&state, &headers, &body, paths::PUSHED_AUTHORIZATION, now).await?;
    let params =
        par::pushed_params(&body, &client.client_id).map_err(OAuthJsonError::bad_request)?;
    // The authorization endpoint's own rules; every refusal is JSON here
    // (RFC 9126 §2.3), whether `/authorize` would show or redirect it.
    if let Err(rejection) = authorize::validate(&params, Some(&client)) {
        let error = match rejection {
            AuthorizeRejection::Show(e) | AuthorizeRejection::Redirect { error: e, .. } => e,
        };
        return Err(OAuthJsonError::bad_request(error));
    }
    let reference = OpaqueSecret::generate()
        .map_err(|_| OAuthJsonError::internal("random", "random source failed", false))?;
    let lifetime = state.settings.par.request_uri_lifetime;
    let record = PushedRequest {
        client_id: client.client_id.clone(),
        params: form_encode(&params),
    };
    state
        .store
        .put(
            PUSHED_REQUESTS,
            reference.digest().as_str(),
            encode(&record)?,
            Some((now + lifetime).unix_timestamp()),
            // Like an authorization code: lost in a crash, the client pushes again.
            Durability::Ephemeral,
        )
        .await?;
    let response = PushedAuthorizationResponse {
        request_uri: format!("{REQUEST_URI_PREFIX}{}", reference.expose()),
        expires_in: lifetime.whole_seconds(),
    };
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

fn form_encode(params: &Params) -> String {
    let mut pairs: Vec<(&str, &str)> = params.iter().collect();
    pairs.sort_unstable();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The parameters `/authorize` works with: those of the pushed request when
/// `request_uri` is given (RFC 9126 §4: only those, consumed once), else
/// the request's own — unless the client, or the server, requires pushing.
/// Every refusal is a page, never a redirect.
pub async fn authorization_params(
    state: &AppState,
    params: Params,
    now: OffsetDateTime,
) -> Result<Params, PageError> {
    let show = |r: RequestUriRejection| PageError::oauth(&r.error());
    // Any other `request_uri` (a request object by reference) is left to
    // `authorize::validate`, which refuses it as unsupported.
    let pushed = params
        .get("request_uri")
        .filter(|u| u.starts_with(REQUEST_URI_PREFIX));
    let Some(request_uri) = pushed else {
        let client = match params.get("client_id") {
            Some(id) => state.clients.get(id).await.map_err(PageError::from)?,
            None => None,
        };
        let must_push = state.settings.par.require_pushed_authorization_requests
            || client.is_some_and(|c| c.require_pushed_authorization_requests);
        if must_push {
            return Err(show(RequestUriRejection::PushRequired));
        }
        return Ok(params);
    };
    let client_id = params
        .get("client_id")
        .ok_or_else(|| show(RequestUriRejection::MissingClientId))?;
    let reference =
        par::reference(request_uri).ok_or_else(|| show(RequestUriRejection::Unusable))?;
    let record = state
        .store
        .take(
            PUSHED_REQUESTS,
            SecretDigest::of(reference).as_str(),
            Durability::Ephemeral,
            now.unix_timestamp(),
        )
        .await
        .map_err(PageError::from)?
        .ok_or_else(|| show(RequestUriRejection::Unusable))?;
    let pushed: PushedRequest = decode(PUSHED_REQUESTS, &record.value).map_err(PageError::from)?;
    // Taken even when the client differs: a request_uri that leaked to
    // another client is spent, not left for a second try.
    if pushed.client_id != client_id {
        return Err(show(RequestUriRejection::OtherClient));
    }
    Params::parse(&pushed.params).map_err(|e| PageError::oauth(&e))
}
