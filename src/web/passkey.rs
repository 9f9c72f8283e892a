//! Passkey sign-in endpoints, called by `static/passkey.js`.
//!
//! `POST /signin/passkey/start` → `{ceremony, options}`;
//! `POST /signin/passkey/finish` → `{redirect}` plus the session cookie.
//! Both carry the flow id and its CSRF token and need the flow's browser
//! binding cookie, exactly like the form steps.

use super::error::PageError;
use super::signin::{
    Attempt, Flow, Proven, finish_sign_in, load_flow, record_sign_in, record_sign_in_with_ca,
};
use super::{ClientIp, is_json};
use crate::app::AppState;
use crate::authn::AuthMethod;
use crate::authn::passkey::PasskeyError;
use crate::authn::passkey_policy::Refusal;
use crate::authn::session::PasskeyUse;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::PublicKeyCredential;

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// A JSON error for the script: a stable code and a message for the user.
pub struct JsonError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<PageError> for JsonError {
    fn from(e: PageError) -> Self {
        JsonError {
            status: e.status,
            code: "sign_in.page",
            message: e.message,
        }
    }
}

impl From<crate::store::StoreError> for JsonError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::from(e).into()
    }
}

pub fn passkey_error(e: PasskeyError) -> JsonError {
    let (status, message) = match &e {
        PasskeyError::CeremonyUnknown => (StatusCode::BAD_REQUEST, e.to_string()),
        PasskeyError::CeremonyMismatch
        | PasskeyError::Verification
        | PasskeyError::UnknownCredential
        | PasskeyError::CounterRegression => (
            StatusCode::BAD_REQUEST,
            "Sign-in with this passkey failed.".to_owned(),
        ),
        PasskeyError::AlreadyRegistered => (StatusCode::CONFLICT, e.to_string()),
        PasskeyError::Policy(refusal) => (StatusCode::FORBIDDEN, refusal.message()),
        PasskeyError::Disabled => (
            StatusCode::NOT_FOUND,
            "Passkeys are not available on this server.".to_owned(),
        ),
        PasskeyError::Config(_) | PasskeyError::Random => {
            let id = super::error::log_internal(e.code(), &e.to_string());
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal error (request id {id})."),
            )
        }
        PasskeyError::Store(s) => {
            let unavailable = matches!(s, crate::store::StoreError::Unavailable(_));
            let id = super::error::log_internal(e.code(), &e.to_string());
            let status = if unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, format!("Service problem (request id {id})."))
        }
    };
    JsonError {
        status,
        code: e.code(),
        message,
    }
}

/// Parses a JSON body (content type checked, size limited upstream).
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, JsonError> {
    let bad = |m: &str| JsonError {
        status: StatusCode::BAD_REQUEST,
        code: "request.invalid",
        message: m.to_owned(),
    };
    let body = body.map_err(|_| bad("The request body is too large or unreadable."))?;
    if !is_json(headers) {
        return Err(JsonError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "request.content_type",
            message: "Send JSON.".into(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| bad(&format!("Invalid request: {e}")))
}

#[derive(Deserialize)]
pub struct StartRequest {
    flow: String,
    csrf: String,
    mode: String,
}

pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, JsonError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let input: StartRequest = json_body(&headers, body)?;
    let flow = load_flow(&state, &headers, &input.flow, Some(&input.csrf), now).await?;
    // Ceremony state is stored before anyone signs in: limited per source.
    if !state
        .throttle
        .admit_work(crate::authn::throttle::Work::PasskeyCeremony, ip, t)
        .await?
    {
        return Err(PageError::too_many_requests().into());
    }
    let (ceremony, options) = match (input.mode.as_str(), flow.username.as_deref()) {
        ("username", Some(username)) => {
            // Unknown users and users without passkeys get the same answer
            // as everyone else (see `Passkeys::start_authentication`).
            let user = state
                .directory
                .user_by_upn(username, now)
                .await
                .map_err(|e| JsonError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: e.code(),
                    message: "Service problem.".into(),
                })?;
            state
                .passkeys
                .start_authentication(username, user.map(|u| u.id), &input.flow, t)
                .await
                .map_err(passkey_error)?
        }
        ("discoverable", _) | ("username", None) => state
            .passkeys
            .start_discoverable(&input.flow, t)
            .await
            .map_err(passkey_error)?,
        _ => {
            return Err(JsonError {
                status: StatusCode::BAD_REQUEST,
                code: "request.invalid",
                message: "mode must be username or discoverable".into(),
            });
        }
    };
    Ok(Json(json!({"ceremony": ceremony, "options": options})).into_response())
}

/// The sign-in log's error code for a passkey the passkey policy refuses.
/// Gatepass's own number (documented in the README): Entra ID publishes no
/// code for it that tools could match on.
pub const PASSKEY_POLICY_ERROR: u32 = 135_011;

/// Where users manage their methods.
const SECURITY_INFO: &str = "/account/security-info";

/// Whether the passkey policy admits `asserted` for `user` now.
async fn passkey_admitted(
    state: &AppState,
    user: &crate::directory::User,
    used: PasskeyUse,
    now: time::OffsetDateTime,
) -> Result<Result<(), Refusal>, JsonError> {
    let (policy, targeted) = state
        .passkey_policy
        .fido2_for(&state.directory, user, now)
        .await
        .map_err(|e| JsonError::from(PageError::from(e)))?;
    Ok(policy.admits_sign_in(targeted, used.aaguid))
}

#[derive(Deserialize)]
pub struct FinishRequest {
    flow: String,
    csrf: String,
    ceremony: String,
    credential: PublicKeyCredential,
}

pub async fn finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, JsonError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let input: FinishRequest = json_body(&headers, body)?;
    let flow: Flow = load_flow(&state, &headers, &input.flow, Some(&input.csrf), now).await?;
    let ip_text = ip.to_string();
    let attempted = flow.username.clone().unwrap_or_default();
    let outcome = match state.passkeys.take_ceremony(&input.ceremony, t).await {
        Ok(ceremony) => {
            state
                .passkeys
                .finish_authentication(ceremony, &input.flow, &input.credential, t)
                .await
        }
        Err(e) => Err(e),
    };
    let asserted = match outcome {
        Ok(asserted) => asserted,
        Err(e) => {
            let reason = e.to_string();
            let attempt = Attempt {
                client_id: flow.client_id(),
                user: None,
                username: &attempted,
                ip: &ip_text,
                headers: &headers,
                correlation_id: flow.correlation_id.as_deref(),
            };
            record_sign_in(
                &state,
                &attempt,
                AuthMethod::Passkey,
                Some((50126, reason.as_str())),
                now,
            )
            .await;
            return Err(passkey_error(e));
        }
    };
    let user = state
        .directory
        .user(asserted.passkey.user_id, now)
        .await
        .map_err(|e| JsonError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: e.code(),
            message: "Service problem.".into(),
        })?;
    let user = match user {
        Some(u) if u.account_enabled => u,
        other => {
            let upn = other
                .as_ref()
                .map(|u| u.user_principal_name.clone())
                .unwrap_or_default();
            let attempt = Attempt {
                client_id: flow.client_id(),
                user: other.as_ref(),
                username: &upn,
                ip: &ip_text,
                headers: &headers,
                correlation_id: flow.correlation_id.as_deref(),
            };
            record_sign_in(
                &state,
                &attempt,
                AuthMethod::Passkey,
                Some((50057, "User account is disabled")),
                now,
            )
            .await;
            return Err(JsonError {
                status: StatusCode::FORBIDDEN,
                code: "sign_in.failed",
                message: "Sign-in failed.".into(),
            });
        }
    };
    // The passkey policy may have changed since the passkey was registered:
    // a model now restricted (or the method off, or the user no longer
    // targeted) signs nobody in, and the user is told how to get an allowed
    // one.
    let used = PasskeyUse {
        aaguid: uuid::Uuid::parse_str(&asserted.passkey.aaguid).unwrap_or_default(),
        synced: asserted.synced,
    };
    if let Err(refusal) = passkey_admitted(&state, &user, used, now).await? {
        let refusal = refusal.named(&state.settings.passkeys.authenticators);
        let reason = refusal.message();
        let attempt = Attempt {
            client_id: flow.client_id(),
            user: Some(&user),
            username: &user.user_principal_name,
            ip: &ip_text,
            headers: &headers,
            correlation_id: flow.correlation_id.as_deref(),
        };
        record_sign_in_with_ca(
            &state,
            &attempt,
            &[(AuthMethod::Passkey, Proven::Now)],
            Some(used),
            Some((PASSKEY_POLICY_ERROR, reason.as_str())),
            None,
            now,
        )
        .await;
        return Err(JsonError {
            status: StatusCode::FORBIDDEN,
            code: refusal.code(),
            message: format!(
                "{reason} Sign in another way (a Temporary Access Pass from your administrator, or your password), then add an allowed passkey on your security info page ({SECURITY_INFO})."
            ),
        });
    }
    // Username-first: the passkey must belong to the user who was named.
    if let Some(named) = flow.username.as_deref() {
        if !named.eq_ignore_ascii_case(&user.user_principal_name) && flow.strong_only {
            return Err(JsonError {
                status: StatusCode::BAD_REQUEST,
                code: "passkey.wrong_user",
                message: "This passkey belongs to another account.".into(),
            });
        }
    }
    let response = finish_sign_in(
        &state,
        &headers,
        &input.flow,
        &flow,
        &user,
        AuthMethod::Passkey,
        None,
        Some(used),
        ip,
        now,
    )
    .await?;
    if response.status() == StatusCode::FORBIDDEN {
        let mut refused = JsonError {
            status: StatusCode::FORBIDDEN,
            code: "conditional_access.refused",
            message: "You signed in, but a conditional access policy does not allow this application right now.".into(),
        }
        .into_response();
        for cookie in response.headers().get_all(header::SET_COOKIE) {
            refused
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        return Ok(refused);
    }
    // The script navigates; hand it the redirect instead of following one
    // (a cross-origin redirect would be blocked by fetch).
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/account/security-info")
        .to_owned();
    let mut out = Json(json!({"redirect": location})).into_response();
    for cookie in response.headers().get_all(header::SET_COOKIE) {
        out.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    Ok(out)
}
