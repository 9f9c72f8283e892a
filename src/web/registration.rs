//! Dynamic client registration over HTTP: `POST /register` (RFC 7591) and
//! the client configuration endpoint `/register/{client_id}` (RFC 7592:
//! read, replace, delete).
//!
//! Served only while `[registration] initial_access_tokens` is non-empty;
//! otherwise every route answers 404 and discovery does not advertise it.
//!
//! * Registering needs `Authorization: Bearer <initial access token>`,
//!   compared by digest in constant time against every configured token;
//!   the token is checked before the body is read, so an unauthenticated
//!   caller learns nothing about the metadata rules and costs no parsing.
//! * Managing a client needs its `registration_access_token` (issued once,
//!   stored as a digest). An unknown client, a configured client and a
//!   wrong token all answer the same 401, so client ids cannot be probed.
//! * The metadata rules are [`crate::protocol::registration`]'s; the
//!   registry that stores and serves the clients is [`crate::clients`].

use super::bearer::{BearerError, bearer_token};
use super::error::OAuthJsonError;
use crate::app::AppState;
use crate::clients::{Issued, RegisteredClient, RegistrationError};
use crate::protocol::discovery::paths;
use crate::protocol::registration::ClientMetadata;
use crate::protocol::{ErrorCode, OAuthError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// A refusal at the registration endpoints: an OAuth JSON error whose 401
/// challenges only `Bearer` (these endpoints take no DPoP).
pub struct Refusal(OAuthJsonError);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        let bearer_only: Vec<HeaderValue> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter(|v| v.as_bytes().starts_with(b"Bearer"))
            .cloned()
            .collect();
        let headers = response.headers_mut();
        headers.remove(header::WWW_AUTHENTICATE);
        for v in bearer_only {
            headers.append(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

impl From<OAuthJsonError> for Refusal {
    fn from(e: OAuthJsonError) -> Self {
        Refusal(e)
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Self {
        Refusal(e.into())
    }
}

impl From<RegistrationError> for Refusal {
    fn from(e: RegistrationError) -> Self {
        let bad_metadata = |description: String| {
            OAuthJsonError::bad_request(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                description,
            ))
        };
        Refusal(match e {
            RegistrationError::Metadata(m) => {
                OAuthJsonError::bad_request(OAuthError::new(m.error_code(), m.to_string()))
            }
            RegistrationError::Unauthorized => OAuthJsonError::invalid_token(
                "the registration access token is not valid for this client",
            ),
            e @ (RegistrationError::ClientIdMismatch | RegistrationError::SecretMismatch) => {
                bad_metadata(e.to_string())
            }
            RegistrationError::Random => {
                OAuthJsonError::internal("random", "the random source failed", false)
            }
            RegistrationError::Store(s) => s.into(),
        })
    }
}

/// What registration answers (RFC 7591 §3.2.1, RFC 7592 §3): the client's
/// id, secrets only in the answer that issued them, and its metadata.
#[derive(Serialize)]
struct ClientInformation<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    client_id_issued_at: i64,
    /// 0: the secret does not expire. Present when the client has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_access_token: Option<&'a str>,
    registration_client_uri: String,
    #[serde(flatten)]
    metadata: &'a ClientMetadata,
}

fn answer(
    state: &AppState,
    status: StatusCode,
    client: &RegisteredClient,
    issued: Option<&Issued>,
) -> Response {
    let body = ClientInformation {
        client_id: &client.client_id,
        client_secret: issued
            .and_then(|i| i.client_secret.as_ref())
            .map(|s| s.expose()),
        client_id_issued_at: client.issued_at,
        client_secret_expires_at: client.has_secret.then_some(0),
        registration_access_token: issued
            .and_then(|i| i.registration_access_token.as_ref())
            .map(|t| t.expose()),
        registration_client_uri: format!(
            "{}{}/{}",
            state.settings.issuer,
            paths::REGISTER,
            client.client_id
        ),
        metadata: &client.metadata,
    };
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// 404 while registration is off: the endpoints do not exist.
fn require_enabled(state: &AppState) -> Result<(), Refusal> {
    if state.clients.registration_enabled() {
        return Ok(());
    }
    let mut e = OAuthJsonError::bad_request(OAuthError::invalid_request(
        "dynamic client registration is not enabled on this server",
    ));
    e.status = StatusCode::NOT_FOUND;
    Err(Refusal(e))
}

/// The bearer token of the request (RFC 6750 §2.1), or the 401 that asks
/// for one.
fn presented_token<'h>(headers: &'h HeaderMap, what: &str) -> Result<&'h str, Refusal> {
    match bearer_token(headers) {
        Ok(t) => Ok(t),
        // RFC 6750 §3.1: no credentials, a bare challenge.
        Err(BearerError::Missing) => Err(Refusal(OAuthJsonError {
            status: StatusCode::UNAUTHORIZED,
            error: OAuthError::invalid_request(format!(
                "send the {what} as Authorization: Bearer <token>"
            )),
            challenge: Some("Bearer"),
        })),
        Err(_) => Err(Refusal(OAuthJsonError::invalid_token(format!(
            "send the {what} as Authorization: Bearer <token>"
        )))),
    }
}

/// The request's JSON object (RFC 7591 §3.1: `application/json`).
fn metadata_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, Refusal> {
    let refuse = |message: &str| {
        Refusal(OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            message,
        )))
    };
    let body = body.map_err(|e| {
        let mut err = OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body is too large or unreadable",
        ));
        err.status = e.status();
        Refusal(err)
    })?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(refuse(
            "send the client metadata as a JSON object (Content-Type: application/json)",
        ));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        // serde's message names the position, never echoes the value.
        Ok(_) => Err(refuse("the client metadata must be a JSON object")),
        Err(e) => Err(refuse(&format!("the body is not valid JSON ({e})"))),
    }
}

fn client_id_of(path: Result<Path<String>, PathRejection>) -> Result<String, Refusal> {
    // A path that cannot be read names no client: the same 401 as any
    // unknown client.
    path.map(|Path(id)| id).map_err(|_| {
        Refusal(OAuthJsonError::invalid_token(
            "the registration access token is not valid for this client",
        ))
    })
}

/// `POST /register` (RFC 7591 §3.1).
#[utoipa::path(post, path = "/register", operation_id = "oauth.register", tag = "oauth",
    description = "Dynamic client registration (RFC 7591). Needs `Authorization: Bearer <initial access \
                   token>` from `[registration] initial_access_tokens`; answers 404 while that list is \
                   empty. The answer holds the `client_id`, a `client_secret` for `client_secret_basic` / \
                   `client_secret_post` clients, and the `registration_access_token` for \
                   `registration_client_uri` — each secret shown only here. Graph permissions and \
                   `introspect_all_tokens` cannot be registered.",
    request_body(content = crate::openapi::schemas::ClientRegistrationRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The client was registered", body = crate::openapi::schemas::ClientInformation),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`, naming the field", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 401, description = "No or a wrong initial access token", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 404, description = "Registration is off", body = crate::openapi::schemas::OAuthErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let now = state.clock.now().unix_timestamp();
    require_enabled(&state)?;
    let token = presented_token(&headers, "initial access token")?;
    if !state.settings.registration.accepts(token) {
        return Err(Refusal(OAuthJsonError::invalid_token(
            "the initial access token is not valid",
        )));
    }
    let body = metadata_body(&headers, body)?;
    let metadata = ClientMetadata::parse(&body, state.settings.backchannel_logout.enabled)
        .map_err(RegistrationError::from)?;
    let issued = state.clients.register(metadata, now).await?;
    tracing::info!(
        client = issued.client.client_id.as_str(),
        method = issued.client.metadata.token_endpoint_auth_method.as_str(),
        "client registered"
    );
    Ok(answer(
        &state,
        StatusCode::CREATED,
        &issued.client,
        Some(&issued),
    ))
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
#[utoipa::path(get, path = "/register/{client_id}", operation_id = "oauth.registration.read", tag = "oauth",
    description = "A registered client's metadata (RFC 7592 §2.1), with its `registration_access_token` \
                   as Bearer. Never the secret.",
    params(("client_id" = String, Path, description = "The registered client's id")),
    responses(
        (status = 200, description = "The client's registration", body = crate::openapi::schemas::ClientInformation),
        (status = 401, description = "Unknown client or wrong registration access token", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 404, description = "Registration is off", body = crate::openapi::schemas::OAuthErrorBody),
    ))]
pub async fn read(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    require_enabled(&state)?;
    let client_id = client_id_of(path)?;
    let token = presented_token(&headers, "registration access token")?;
    let client = state.clients.read(&client_id, token).await?;
    Ok(answer(&state, StatusCode::OK, &client, None))
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2).
#[utoipa::path(put, path = "/register/{client_id}", operation_id = "oauth.registration.update", tag = "oauth",
    description = "Replaces a registered client's metadata (RFC 7592 §2.2): the body is the full metadata \
                   with `client_id` (and, if sent, the current `client_secret`); fields left out take their \
                   defaults. Validated as at registration. A client that newly needs a secret gets one \
                   in this answer; otherwise the secret is kept.",
    params(("client_id" = String, Path, description = "The registered client's id")),
    request_body(content = crate::openapi::schemas::ClientRegistrationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The client's new registration", body = crate::openapi::schemas::ClientInformation),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`, naming the field", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 401, description = "Unknown client or wrong registration access token", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 404, description = "Registration is off", body = crate::openapi::schemas::OAuthErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let now = state.clock.now().unix_timestamp();
    require_enabled(&state)?;
    let client_id = client_id_of(path)?;
    let token = presented_token(&headers, "registration access token")?;
    // The token first: an outsider learns nothing from the metadata rules.
    state.clients.read(&client_id, token).await?;
    let body = metadata_body(&headers, body)?;
    if body.get("client_id").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(RegistrationError::ClientIdMismatch.into());
    }
    let presented_secret = match body.get("client_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(RegistrationError::SecretMismatch.into()),
    };
    let metadata = ClientMetadata::parse(&body, state.settings.backchannel_logout.enabled)
        .map_err(RegistrationError::from)?;
    let issued = state
        .clients
        .replace(&client_id, token, metadata, presented_secret, now)
        .await?;
    tracing::info!(client = client_id.as_str(), "registered client updated");
    Ok(answer(
        &state,
        StatusCode::OK,
        &issued.client,
        Some(&issued),
    ))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3).
#[utoipa::path(delete, path = "/register/{client_id}", operation_id = "oauth.registration.delete", tag = "oauth",
    description = "Deletes a registered client (RFC 7592 §2.3). At once, on every instance, its token \
                   requests, `/authorize` and its access and refresh tokens are refused.",
    params(("client_id" = String, Path, description = "The registered client's id")),
    responses(
        (status = 204, description = "The client is gone"),
        (status = 401, description = "Unknown client or wrong registration access token", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 404, description = "Registration is off", body = crate::openapi::schemas::OAuthErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let now = state.clock.now().unix_timestamp();
    require_enabled(&state)?;
    let client_id = client_id_of(path)?;
    let token = presented_token(&headers, "registration access token")?;
    state.clients.delete(&client_id, token, now).await?;
    tracing::info!(client = client_id.as_str(), "registered client deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
