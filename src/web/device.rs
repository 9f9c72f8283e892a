//! The device authorization grant (RFC 8628): the endpoint a device calls,
//! the pages its user visits, and the token endpoint's polling answers.
//!
//! ```text
//! device: POST /device_authorization ──▶ device_code, user_code, verification_uri
//! user:   GET /device ──Code/Next──▶ the ordinary sign-in pages (conditional
//!         access for the device's client) ──▶ confirmation naming the client
//!         ──Allow / Deny──▶ done
//! device: POST /token grant_type=…device_code ──▶ authorization_pending |
//!         slow_down | access_denied | expired_token | tokens (once)
//! ```
//!
//! The confirmation page exists only after conditional access let the user
//! through for the device's client: it is a one-time *consent* record bound
//! to that browser session, and its form carries the session's CSRF token.
//! Knowing a device code (and so its record's key) approves nothing.
//!
//! Device codes and user codes are secrets: they are stored as digests and
//! never logged.

use super::error::{OAuthJsonError, PageError, render};
use super::form::Form;
use super::signin::{Arrival, FlowTarget, current_session, gate_and_go, start_flow};
use super::token::{TokenResponse, authenticate_client, form_params};
use super::{ClientIp, Cookie, cookie, set_cookie};
use crate::app::AppState;
use crate::authn::session::Session;
use crate::authn::throttle::Work;
use crate::config::{Client, GrantType};
use crate::directory::User;
use crate::ids::{OpaqueSecret, SecretDigest, UserId, secrets_equal};
use crate::protocol::authorize::OIDC_SCOPES;
use crate::protocol::discovery::paths;
use crate::protocol::params::Params;
use crate::protocol::scope::Scope;
use crate::protocol::{ErrorCode, OAuthError};
use crate::store::{Durability, decode, encode};
use crate::tokens::device::{DEVICE_CODES, DeviceAuthorizations, DeviceError, Poll};
use crate::tokens::grants::Authorization;
use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Confirmation pages shown, by random id (see the module doc).
pub const CONSENTS: &str = "device_consent";
const CONSENT_LIFETIME: time::Duration = time::Duration::minutes(10);

#[derive(Template)]
#[template(path = "device/code.html")]
struct DeviceCodePage<'a> {
    csrf: &'a str,
    code: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device/confirm.html")]
struct DeviceConfirmPage<'a> {
    consent: &'a str,
    csrf: &'a str,
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<&'a str>,
}

#[derive(Template)]
#[template(path = "device/done.html")]
struct DeviceDonePage<'a> {
    allowed: bool,
    client_name: &'a str,
}

/// A confirmation page's state: which request, for which session.
#[derive(Serialize, Deserialize)]
struct Consent {
    device: String,
    client_id: String,
    user_id: UserId,
    session: SecretDigest,
}

#[derive(Serialize)]
struct DeviceAuthorizationResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    interval: i64,
}

#[utoipa::path(post, path = "/device_authorization", operation_id = "oauth.deviceAuthorization", tag = "oauth",
    description = "The device authorization endpoint (RFC 8628 §3.1): a client that lists \
                   `urn:ietf:params:oauth:grant-type:device_code` in its `grant_types` gets a \
                   `device_code` to poll the token endpoint with and a `user_code` for its user \
                   to enter at `verification_uri`. Client authentication as at the token endpoint.",
    request_body(content = crate::openapi::schemas::DeviceAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A device authorization", body = crate::openapi::schemas::DeviceAuthorizationResponse),
        (status = 400, description = "An OAuth error (`unauthorized_client`, `invalid_scope`, …)", body = crate::openapi::schemas::OAuthErrorBody),
        (status = 401, description = "Client authentication failed", body = crate::openapi::schemas::OAuthErrorBody),
    ))]
pub async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthJsonError> {
    let now = state.clock.now();
    let params = form_params(&headers, body)?;
    let client =
        authenticate_client(&state, &headers, &params, paths::DEVICE_AUTHORIZATION, now).await?;
    if !client.allows(GrantType::DeviceCode) {
        return Err(OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        )));
    }
    let scope = granted_scope(&client, &params)?;
    // A record is stored for the asking: limited per source like a
    // sign-in flow (public clients need no secret to ask).
    if !state
        .throttle
        .admit_work(Work::SignInFlow, ip, now.unix_timestamp())
        .await?
    {
        let mut e = OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::SlowDown,
            "too many device authorization requests from this address; wait a minute",
        ));
        e.status = StatusCode::TOO_MANY_REQUESTS;
        return Err(e);
    }
    let started = devices(&state)
        .start(&client.client_id, scope, now)
        .await
        .map_err(device_json_error)?;
    let verification_uri = format!("{}{}", state.settings.issuer, paths::DEVICE);
    let complete = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("user_code", &started.user_code)
        .finish();
    let body = DeviceAuthorizationResponse {
        device_code: started.device_code.expose().to_owned(),
        verification_uri_complete: format!("{verification_uri}?{complete}"),
        verification_uri,
        user_code: started.user_code,
        expires_in: started.expires_in,
        interval: started.interval,
    };
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// The scopes granted of those requested, as at the authorization endpoint:
/// OpenID scopes and the client's delegated Graph permissions;
/// `offline_access` only for a client that may refresh.
fn granted_scope(client: &Client, params: &Params) -> Result<Scope, OAuthJsonError> {
    let requested = Scope::parse(params.get("scope").unwrap_or("")).ok_or_else(|| {
        OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope has invalid characters",
        ))
    })?;
    let mut granted = Vec::new();
    for token in requested.iter() {
        if token == "offline_access" && !client.allows(GrantType::RefreshToken) {
            continue;
        }
        if OIDC_SCOPES.contains(&token) || client.delegated_permissions.contains(token) {
            granted.push(token);
        } else {
            return Err(OAuthJsonError::bad_request(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope `{token}` is not available to this client"),
            )));
        }
    }
    Ok(Scope::from_tokens(granted))
}

fn devices(state: &AppState) -> DeviceAuthorizations {
    DeviceAuthorizations::new(state.store.clone())
}

fn device_json_error(e: DeviceError) -> OAuthJsonError {
    let code = match &e {
        DeviceError::Store(_) | DeviceError::Random => {
            let unavailable = matches!(
                &e,
                DeviceError::Store(crate::store::StoreError::Unavailable(_))
            );
            return OAuthJsonError::internal(e.code(), &e.to_string(), unavailable);
        }
        DeviceError::Expired => ErrorCode::ExpiredToken,
        DeviceError::Denied => ErrorCode::AccessDenied,
        DeviceError::Unknown
        | DeviceError::ClientMismatch
        | DeviceError::Used
        | DeviceError::UserCodeUnknown
        | DeviceError::Answered => ErrorCode::InvalidGrant,
    };
    OAuthJsonError::bad_request(OAuthError::new(code, e.to_string()))
}

fn device_page_error(e: DeviceError) -> PageError {
    let unavailable = matches!(
        &e,
        DeviceError::Store(crate::store::StoreError::Unavailable(_))
    );
    super::error::internal_page(e.code(), &e.to_string(), unavailable)
}

/// The token endpoint's `urn:ietf:params:oauth:grant-type:device_code`
/// (RFC 8628 §3.4): one poll.
pub(crate) async fn device_code_grant(
    state: &AppState,
    client: &Client,
    params: &Params,
    dpop: Option<&crate::protocol::dpop::Jkt>,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthJsonError> {
    let device_code = params
        .require("device_code")
        .map_err(OAuthJsonError::bad_request)?;
    let polled = devices(state)
        .poll(device_code, &client.client_id, now)
        .await
        .map_err(device_json_error)?;
    let (key, version, authorization) = match polled {
        Poll::Pending => {
            return Err(OAuthJsonError::bad_request(OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the user has not yet approved this device",
            )));
        }
        Poll::SlowDown => {
            return Err(OAuthJsonError::bad_request(OAuthError::new(
                ErrorCode::SlowDown,
                "polling too fast; the interval is now 5 seconds longer",
            )));
        }
        Poll::Approved {
            key,
            version,
            authorization,
        } => (key, version, authorization),
    };
    let scope = authorization.scope.clone();
    let client_id = client.client_id.clone();
    // Spending the code and creating the grant are one step: of any number
    // of concurrent polls, one gets tokens and the rest find it used.
    let issued = state
        .grants
        .grant_replacing(
            *authorization,
            // As for a code: a public client's refresh tokens are bound to
            // the key the poll proved (RFC 9449 §5).
            dpop.filter(|_| client.is_public()),
            DEVICE_CODES,
            &key,
            version,
            |grant| DeviceAuthorizations::redeemed(&client_id, &scope, grant, now),
            Some(DeviceAuthorizations::memory_until(now)),
            now,
        )
        .await
        .map_err(super::token::grant_error)?
        .ok_or_else(|| device_json_error(DeviceError::Used))?;
    let user = super::bearer::grant_user(state, &issued.grant.authorization, now).await?;
    let user = super::token::require_live(state, &issued.grant, user, now).await?;
    super::token::mint_user_tokens_bound(state, issued, &user, &scope, false, dpop, now)
}

/// The code page's CSRF token: a digest of the browser's binding cookie
/// (double submit; the cookie is `HttpOnly`, so another site cannot
/// compute it).
fn code_csrf(binding: &str) -> String {
    SecretDigest::of(&format!("device-code-form:{binding}"))
        .as_str()
        .to_owned()
}

/// Renders the code page, minting the binding cookie when the browser has
/// none.
fn code_page(state: &AppState, headers: &HeaderMap, code: &str, error: Option<&str>) -> Response {
    let (binding, new) = match cookie(state, headers, Cookie::Binding) {
        Some(v) if v.len() == 43 => (v.to_owned(), false),
        _ => match OpaqueSecret::generate() {
            Ok(b) => (b.expose().to_owned(), true),
            Err(_) => {
                return super::error::internal_page("random", "random source failed", false)
                    .into_response();
            }
        },
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = render(
        status,
        &DeviceCodePage {
            csrf: &code_csrf(&binding),
            code,
            error,
        },
    );
    if new {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, Cookie::Binding, &binding, None),
        );
    }
    response
}

/// `GET /device`: **Code** and **Next**; `verification_uri_complete`
/// fills the code in (the user still presses Next, so a link alone
/// approves nothing).
pub async fn device_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let code = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "user_code")
        .map(|(_, v)| v.into_owned())
        .filter(|c| c.len() <= 32)
        .unwrap_or_default();
    code_page(&state, &headers, &code, None)
}

const CODE_NOT_FOUND: &str =
    "That code was not found or has expired. Check the code on your device and try again.";

/// `POST /device`: looks the code up (counted per source first), then
/// signs the user in for the device's client — or, with a session already,
/// goes straight through conditional access to the confirmation page.
pub async fn device_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let Ok(body) = body else {
        return Err(PageError::bad_request(
            "The form is too large or unreadable.",
        ));
    };
    if !super::is_form(&headers) {
        return Err(PageError::bad_request("Expected a form submission."));
    }
    let form = Form::parse(&body);
    let binding = cookie(&state, &headers, Cookie::Binding).unwrap_or("");
    // No binding cookie: the page was not served to this browser. The
    // check of an empty token then fails like any mismatch.
    let expected = if binding.is_empty() {
        String::new()
    } else {
        code_csrf(binding)
    };
    form.check_csrf(&expected)?;
    let typed = form.get("code").unwrap_or("");
    // Counted before the lookup, right or wrong: guessing is bounded per
    // source however many requests run at once.
    if !state
        .throttle
        .admit_work(Work::UserCode, ip, now.unix_timestamp())
        .await?
    {
        return Err(PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many codes",
            "Too many codes were entered from your network. Wait a minute and try again.",
        ));
    }
    let found = match devices(&state).find_by_user_code(typed, now).await {
        Ok(f) => f,
        Err(DeviceError::UserCodeUnknown) => {
            return Ok(code_page(&state, &headers, "", Some(CODE_NOT_FOUND)));
        }
        Err(DeviceError::Answered) => {
            return Ok(code_page(
                &state,
                &headers,
                "",
                Some("That code has already been used. Start again on your device."),
            ));
        }
        Err(e) => return Err(device_page_error(e)),
    };
    let target = FlowTarget::Device {
        client_id: found.request.client_id.clone(),
        device: found.key,
    };
    if let Some((digest, session, user)) = current_session(&state, &headers, now).await? {
        let gated = gate_and_go(
            &state,
            &headers,
            &target,
            &session,
            &digest,
            &user,
            ip,
            now,
            Arrival::Session,
            super::signin::new_correlation_id().as_deref(),
        )
        .await?;
        return Ok(gated.response);
    }
    Ok(start_flow(&state, &headers, ip, target, None, false, None).await)
}

/// The confirmation page, once conditional access let `user` through for
/// the device's client with `session` (called from
/// [`super::signin::gate_and_go`]).
pub(crate) async fn consent_page(
    state: &AppState,
    client_id: &str,
    device: &str,
    session: &Session,
    session_digest: &SecretDigest,
    user: &User,
    now: OffsetDateTime,
) -> Result<Response, PageError> {
    let t = now.unix_timestamp();
    let Some((request, _)) = devices(state)
        .get(device, t)
        .await
        .map_err(device_page_error)?
    else {
        return Err(expired());
    };
    let id = OpaqueSecret::generate()
        .map_err(|_| super::error::internal_page("random", "random source failed", false))?;
    let consent = Consent {
        device: device.to_owned(),
        client_id: client_id.to_owned(),
        user_id: user.id,
        session: session_digest.clone(),
    };
    state
        .store
        .put(
            CONSENTS,
            id.expose(),
            encode(&consent)?,
            Some((now + CONSENT_LIFETIME).unix_timestamp()),
            Durability::Ephemeral,
        )
        .await?;
    Ok(render(
        StatusCode::OK,
        &DeviceConfirmPage {
            consent: id.expose(),
            csrf: &session.csrf,
            client_name: &client_name(state, client_id).await?,
            username: &user.user_principal_name,
            scopes: request.scope.iter().collect(),
        },
    ))
}

/// The client's display name, or its id if it is not known.
async fn client_name(state: &AppState, client_id: &str) -> Result<String, PageError> {
    Ok(state
        .clients
        .get(client_id)
        .await?
        .map_or_else(|| client_id.to_owned(), |c| c.display_name.clone()))
}

fn expired() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This code has expired",
        "Start again on your device to get a new code.",
    )
}

/// `POST /device/confirm`: **Allow** or **Deny**, from the session the
/// confirmation page was shown to.
pub async fn device_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let Some((digest, session, user)) = current_session(&state, &headers, now).await? else {
        return Err(expired());
    };
    let form = Form::checked(&headers, &body, &session.csrf)?;
    let allow = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(PageError::bad_request("Choose Allow or Deny.")),
    };
    let id = form.get("consent").unwrap_or("");
    if id.len() != 43 {
        return Err(expired());
    }
    // Take-once: a confirmation page answers one request, once.
    let Some(record) = state
        .store
        .take(CONSENTS, id, Durability::Ephemeral, t)
        .await?
    else {
        return Err(expired());
    };
    let consent: Consent = decode(CONSENTS, &record.value)?;
    if consent.user_id != user.id || !secrets_equal(consent.session.as_str(), digest.as_str()) {
        return Err(expired());
    }
    let authorization = allow.then(|| authorization(&consent.client_id, &session, &digest));
    let name = client_name(&state, &consent.client_id).await?;
    let scope = match devices(&state).get(&consent.device, t).await {
        Ok(Some((r, _))) => r.scope,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(device_page_error(e)),
    };
    let authorization = authorization.map(|mut a| {
        a.scope = scope;
        a
    });
    if allow {
        // The session now takes part in the device's client: back-channel
        // logout reaches it when the session ends (recorded first, so an
        // approval is never without it).
        state
            .backchannel
            .participate(&session, &consent.client_id, t)
            .await?;
    }
    match devices(&state)
        .answer(&consent.device, authorization, now)
        .await
    {
        Ok(()) => {}
        Err(DeviceError::Expired) => return Err(expired()),
        Err(DeviceError::Answered) => {
            return Err(PageError::new(
                StatusCode::CONFLICT,
                "Already answered",
                "This request was already allowed or denied.",
            ));
        }
        Err(e) => return Err(device_page_error(e)),
    }
    tracing::info!(
        client = consent.client_id.as_str(),
        user = %user.id,
        allowed = allow,
        "device authorization answered"
    );
    Ok(render(
        StatusCode::OK,
        &DeviceDonePage {
            allowed: allow,
            client_name: &name,
        },
    ))
}

/// What the user authorized, from the session that pressed Allow: as an
/// authorization code would carry it, so tokens, `amr`, `acr` and every
/// revocation rule are the same.
fn authorization(client_id: &str, session: &Session, digest: &SecretDigest) -> Authorization {
    Authorization {
        user_id: session.user_id,
        client_id: client_id.to_owned(),
        // No redirect: the device polls instead.
        redirect_uri: String::new(),
        scope: Scope::default(),
        nonce: None,
        code_challenge: None,
        auth_time: session.auth_time,
        methods: session.methods.clone(),
        sid: session.sid.clone(),
        session: digest.clone(),
        epoch: session.epoch,
        not_after: session.tap_id.as_ref().map(|_| session.expires_at),
        tap_id: session.tap_id.clone(),
        passkey: session.passkey.map(|p| p.aaguid),
    }
}
