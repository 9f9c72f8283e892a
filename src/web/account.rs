//! The security-info page (`/account/security-info`, alias `/mysecurityinfo`):
//! the user's methods, **Add passkey**, **Delete** per method, and
//! **Sign out everywhere** (DESIGN §2.5, §4).
//!
//! Adding a passkey asks the session limiter first
//! ([`crate::policy::session_limiter`]); a refused session is sent through
//! a step-up sign-in that accepts only a passkey or a Temporary Access Pass
//! and keeps the earlier methods. Registration commits only if the session
//! record is unchanged since the check, so a session ended in between (sign
//! out everywhere, pass deleted) cannot register anything.

use super::error::{PageError, render};
use super::form::Form;
use super::passkey::{JsonError, json_body, passkey_error};
use super::signin::{FlowTarget, PriorSession, current_session, start_flow};
use super::when::{duration, readable, rfc3339};
use super::{Cookie, set_cookie};
use crate::app::AppState;
use crate::audit::{DirectoryAudit, Initiator, KeyValue, TargetResource};
use crate::authn::passkey::{PasskeyError, PolicyFor};
use crate::authn::session::Session;
use crate::authn::throttle::Work;
use crate::directory::User;
use crate::ids::{SecretDigest, secrets_equal};
use crate::policy::session_limiter::{
    Admission, Removal, RemovalRefusal, StepUpReason, admit, admit_removal,
};
use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

const SECURITY_INFO: &str = "/account/security-info";

/// An instant as the page shows it: "today 14:13" in a `<time>` that
/// carries the RFC 3339 value.
struct PageTime {
    text: String,
    datetime: String,
}

impl PageTime {
    fn at(unix: i64, now: i64) -> Self {
        PageTime {
            text: readable(unix, now),
            datetime: rfc3339(unix),
        }
    }
}

struct MethodRow {
    /// "Password", "Temporary Access Pass" or "Passkey".
    kind: &'static str,
    /// "One-time pass", or the passkey's name (empty for the password).
    name: String,
    /// A passkey's authenticator, by name when its AAGUID is a known one.
    model: Option<String>,
    /// A passkey's registration.
    added: Option<PageTime>,
    /// A pass's validity: its start and how long it lasts.
    valid: Option<(PageTime, String)>,
    /// A badge: its class (`on`, `off` or empty) and text.
    status: Option<(&'static str, &'static str)>,
    /// The Delete button's description.
    title: String,
    key: String,
}

/// "You can add a passkey until …": the window's end and length.
struct WindowNote {
    until: PageTime,
    length: String,
}

#[derive(Template)]
#[template(path = "account/security_info.html")]
struct AccountSecurityInfoPage<'a> {
    csrf: &'a str,
    display_name: &'a str,
    upn: &'a str,
    methods: Vec<MethodRow>,
    notice: Option<&'a str>,
    /// The notice says what was refused (shown as a warning).
    notice_refused: bool,
    window_note: Option<WindowNote>,
    step_up_reason: Option<String>,
    /// Whether any time is shown (the page then says they are UTC).
    shows_times: bool,
    /// Passkeys are on (the issuer is a host name): the section and the
    /// script. Off, the page says nothing about passkeys.
    passkeys: bool,
    /// A sign-in the registration campaign paused: where **Continue** goes.
    campaign_continue: Option<String>,
}

#[derive(Template)]
#[template(path = "account/signed_out.html")]
struct AccountSignedOutPage;

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// A pass's state as a badge: (class, text).
fn usability_badge(reason: crate::authn::tap::UsabilityReason) -> (&'static str, &'static str) {
    use crate::authn::tap::UsabilityReason as R;
    match reason {
        R::EnabledByPolicy => ("on", "Usable"),
        R::NotYetValid => ("", "Not valid yet"),
        R::Expired => ("off", "Expired"),
        R::OneTimeUsed => ("off", "Used"),
        R::DisabledByPolicy => ("off", "Turned off by policy"),
    }
}

/// Notices the page may show, by key (never reflected text), and whether
/// the notice tells of a refusal.
fn notice_text(key: &str) -> Option<(&'static str, bool)> {
    match key {
        "passkey-added" => Some((
            "Your passkey was added. You can now sign in with it.",
            false,
        )),
        "deleted" => Some(("The sign-in method was deleted.", false)),
        "last-strong" => Some((
            RemovalRefusal::LastStrongMethod(StepUpReason::NoStrongMethod).message(),
            true,
        )),
        "last-method" => Some((RemovalRefusal::OnlyMethod.message(), true)),
        _ => None,
    }
}

pub async fn security_info(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
    query: Result<Query<NoticeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let Some((digest, session, user)) = current_session(&state, &headers, now).await? else {
        let target = FlowTarget::Account {
            return_to: SECURITY_INFO.to_owned(),
        };
        return Ok(start_flow(&state, &headers, ip, target, None, false, None).await);
    };
    // The page is the `registersecurityinfo` user action: conditional
    // access may ask for more (or refuse) before it opens.
    let target = FlowTarget::Account {
        return_to: SECURITY_INFO.to_owned(),
    };
    let gated = super::signin::gate_and_go(
        &state,
        &headers,
        &target,
        &session,
        &digest,
        &user,
        ip,
        now,
        super::signin::Arrival::Session,
        super::signin::new_correlation_id().as_deref(),
    )
    .await?;
    if gated.failure.is_some() {
        return Ok(gated.response);
    }
    let t = now.unix_timestamp();
    let mut methods = Vec::new();
    if state
        .directory
        .password_hash(user.id, now)
        .await
        .map_err(PageError::from)?
        .is_some()
    {
        methods.push(MethodRow {
            kind: "Password",
            name: String::new(),
            model: None,
            added: None,
            valid: None,
            status: None,
            title: "Delete your password".into(),
            key: "password".into(),
        });
    }
    if let Some((pass, _)) = state.taps.pass(user.id, t).await? {
        let (policy, targeted) = super::signin::verifier(&state)
            .tap_policy_for(&user, now)
            .await
            .map_err(|e| {
                super::error::internal_page("verify", &e.to_string(), e.is_unavailable())
            })?;
        let reason = pass.usability(&policy, targeted, t);
        methods.push(MethodRow {
            kind: "Temporary Access Pass",
            name: if pass.is_usable_once {
                "One-time pass"
            } else {
                "Multi-use pass"
            }
            .into(),
            model: None,
            added: None,
            valid: Some((
                PageTime::at(pass.start_at, t),
                duration(pass.end_at() - pass.start_at),
            )),
            status: Some(usability_badge(reason)),
            title: "Delete your Temporary Access Pass".into(),
            key: "tap".into(),
        });
    }
    let passkeys = if state.passkeys.enabled() {
        state.passkeys.list(user.id, t).await.map_err(pk_page_err)?
    } else {
        Vec::new()
    };
    let (passkey_policy, targeted) = state
        .passkey_policy
        .fido2_for(&state.directory, &user, now)
        .await?;
    let names = &state.settings.passkeys.authenticators;
    for p in passkeys {
        let aaguid = uuid::Uuid::parse_str(&p.aaguid).unwrap_or_default();
        // A passkey the policy no longer admits stays listed (so it can be
        // deleted) and says why it no longer signs in.
        let status = passkey_policy
            .admits_sign_in(targeted, aaguid)
            .is_err()
            .then_some(("off", "Not allowed by policy"));
        methods.push(MethodRow {
            kind: "Passkey",
            title: format!("Delete the passkey {}", p.display_name),
            name: p.display_name,
            // An all-zero AAGUID: the authenticator did not say.
            model: match names.name(aaguid) {
                Some(name) => Some(name.to_owned()),
                None if aaguid.is_nil() => None,
                None => Some(format!("Authenticator {aaguid}")),
            },
            added: Some(PageTime::at(p.created_at, t)),
            valid: None,
            status,
            key: format!("passkey:{}", p.id),
        });
    }
    let window = state.settings.registration_window;
    let (window_note, step_up_reason) = match admit(&session.methods, session.auth_time, t, window)
    {
        Admission::Allowed
            if session
                .methods
                .contains(&crate::authn::AuthMethod::TemporaryAccessPassOneTime) =>
        {
            (
                Some(WindowNote {
                    until: PageTime::at(session.auth_time + window.whole_seconds(), t),
                    length: duration(window.whole_seconds()),
                }),
                None,
            )
        }
        Admission::Allowed => (None, None),
        Admission::StepUpRequired(reason) => (None, Some(reason.message())),
    };
    let notice = query
        .ok()
        .and_then(|Query(q)| q.notice)
        .and_then(|k| notice_text(&k));
    Ok(render(
        StatusCode::OK,
        &AccountSecurityInfoPage {
            csrf: &session.csrf,
            display_name: &user.display_name,
            upn: &user.user_principal_name,
            shows_times: window_note.is_some()
                || methods
                    .iter()
                    .any(|m| m.added.is_some() || m.valid.is_some()),
            methods,
            notice: notice.map(|(text, _)| text),
            notice_refused: notice.is_some_and(|(_, refused)| refused),
            window_note: window_note.filter(|_| state.passkeys.enabled()),
            step_up_reason,
            passkeys: state.passkeys.enabled(),
            campaign_continue: super::campaign::pending(&state, &user, now).await?,
        },
    ))
}

fn pk_page_err(e: crate::authn::passkey::PasskeyError) -> PageError {
    super::error::internal_page(e.code(), &e.to_string(), false)
}

/// A fresh strong sign-in for the current user (step-up): passkey or TAP
/// only; the session's earlier methods are kept.
pub async fn step_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let target = FlowTarget::Account {
        return_to: SECURITY_INFO.to_owned(),
    };
    let Some((_, session, user)) = current_session(&state, &headers, now).await? else {
        return Ok(start_flow(&state, &headers, ip, target, None, false, None).await);
    };
    let prior = PriorSession {
        user_id: user.id,
        methods: session.methods,
        passkey: session.passkey,
    };
    Ok(start_flow(
        &state,
        &headers,
        ip,
        target,
        Some(user.user_principal_name),
        true,
        Some(prior),
    )
    .await)
}

async fn audit(
    state: &AppState,
    user: &User,
    activity: &str,
    details: Vec<KeyValue>,
    now: OffsetDateTime,
) {
    record(state, user, activity, details, None, now).await;
}

/// Audits `activity` by `user` on themselves; `refused` is why it failed.
async fn record(
    state: &AppState,
    user: &User,
    activity: &str,
    details: Vec<KeyValue>,
    refused: Option<&str>,
    now: OffsetDateTime,
) {
    let initiator = Initiator::User {
        id: user.id.to_string(),
        user_principal_name: user.user_principal_name.clone(),
    };
    let target = TargetResource::user(user);
    let entry = match refused {
        None => {
            DirectoryAudit::success(activity, "UserManagement", initiator, target, details, now)
        }
        Some(reason) => DirectoryAudit::failure(
            activity,
            "UserManagement",
            initiator,
            target,
            details,
            reason,
            now,
        ),
    };
    let Ok(entry) = entry else {
        return;
    };
    if let Err(e) = state.audit.record_directory(&entry).await {
        tracing::error!(error = %e, "could not write the directory audit");
    }
}

/// The passkey policy as it applies to `user` now.
async fn passkey_policy_for(
    state: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> Result<(crate::authn::passkey_policy::Fido2Policy, bool), JsonError> {
    state
        .passkey_policy
        .fido2_for(&state.directory, user, now)
        .await
        .map_err(|e| PageError::from(e).into())
}

fn back(notice: &str) -> Response {
    Redirect::to(&format!("{SECURITY_INFO}?notice={notice}")).into_response()
}

pub async fn delete_method(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let Some((_, session, user)) = current_session(&state, &headers, now).await? else {
        return Ok(Redirect::to(SECURITY_INFO).into_response());
    };
    let form = Form::checked(&headers, &body, &session.csrf)?;
    // The page's gate, on the action too: back to the page, which asks
    // for the step-up or says why not.
    if security_info_gate(&state, &headers, ip, &session, &user, now)
        .await?
        .is_some()
    {
        return Ok(Redirect::to(SECURITY_INFO).into_response());
    }
    let method = form.get("method").unwrap_or("");

    let removing = match method {
        "password" => Removal::Password,
        "tap" => Removal::Pass,
        m if m.starts_with("passkey:") => Removal::Passkey,
        _ => return Err(PageError::bad_request("Unknown sign-in method.")),
    };
    let inventory = super::signin::verifier(&state)
        .inventory(&state.passkeys, &state.passkey_policy, &user, now)
        .await
        .map_err(|e| {
            super::error::internal_page("inventory", &e.to_string(), e.is_unavailable())
        })?;
    if let Err(refusal) = admit_removal(
        inventory,
        removing,
        &session.methods,
        session.auth_time,
        t,
        state.settings.registration_window,
    ) {
        return Ok(back(match refusal {
            RemovalRefusal::OnlyMethod => "last-method",
            RemovalRefusal::LastStrongMethod(_) => "last-strong",
        }));
    }
    let pass = state.taps.pass(user.id, t).await?;
    let (deleted, detail) = match method {
        "password" => (
            state
                .directory
                .remove_password(user.id, now)
                .await
                .map_err(PageError::from)?,
            "Password",
        ),
        "tap" => match &pass {
            Some((p, _)) => (
                state.taps.delete(user.id, &p.id, t).await?,
                "TemporaryAccessPass",
            ),
            None => (false, "TemporaryAccessPass"),
        },
        m => match m.strip_prefix("passkey:") {
            Some(id) => (
                state
                    .passkeys
                    .delete(user.id, id, t)
                    .await
                    .map_err(pk_page_err)?,
                "Fido2",
            ),
            None => return Err(PageError::bad_request("Unknown sign-in method.")),
        },
    };
    if !deleted {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Security info",
            "That sign-in method no longer exists.",
        ));
    }
    audit(
        &state,
        &user,
        "User deleted security info",
        vec![KeyValue::new("methodType", detail)],
        now,
    )
    .await;
    Ok(back("deleted"))
}

pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let Some((_, session, user)) = current_session(&state, &headers, now).await? else {
        return Ok(Redirect::to(SECURITY_INFO).into_response());
    };
    Form::checked(&headers, &body, &session.csrf)?;
    state
        .directory
        .revoke_sessions(user.id, now)
        .await
        .map_err(PageError::from)?;
    audit(&state, &user, "Revoke sign-in sessions", vec![], now).await;
    let mut response = render(StatusCode::OK, &AccountSignedOutPage);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, Cookie::Session, "", Some(0)),
    );
    Ok(response)
}

/// Session + CSRF header check for the JSON endpoints.
async fn json_session(
    state: &AppState,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<(SecretDigest, Session, User), JsonError> {
    let Some((digest, session, user)) = current_session(state, headers, now).await? else {
        return Err(JsonError {
            status: StatusCode::UNAUTHORIZED,
            code: "session.required",
            message: "Sign in again to manage your security info.".into(),
        });
    };
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if session.csrf.is_empty() || !secrets_equal(token, &session.csrf) {
        return Err(JsonError {
            status: StatusCode::FORBIDDEN,
            code: "csrf",
            message: "The request could not be verified. Reload the page.".into(),
        });
    }
    Ok((digest, session, user))
}

fn step_up_required(session: &Session, now: i64, window: time::Duration) -> Option<Response> {
    match admit(&session.methods, session.auth_time, now, window) {
        Admission::Allowed => None,
        Admission::StepUpRequired(reason) => Some(
            (
                StatusCode::FORBIDDEN,
                Json(json!({"error": reason.code(), "message": reason.message(), "step_up": "/account/step-up"})),
            )
                .into_response(),
        ),
    }
}

pub async fn register_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
) -> Result<Response, JsonError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let (digest, session, user) = json_session(&state, &headers, now).await?;
    if let Some(refused) = step_up_required(&session, t, state.settings.registration_window) {
        return Ok(refused);
    }
    if let Some(refused) = security_info_refusal(&state, &headers, ip, &session, &user, now).await?
    {
        return Ok(refused);
    }
    if !state
        .throttle
        .admit_work(Work::PasskeyCeremony, ip, t)
        .await?
    {
        return Err(PageError::too_many_requests().into());
    }
    let (policy, targeted) = passkey_policy_for(&state, &user, now).await?;
    let started = state
        .passkeys
        .start_registration(
            &user,
            digest.as_str(),
            PolicyFor {
                policy: &policy,
                targeted,
            },
            t,
        )
        .await;
    let (ceremony, options) = match started {
        Ok(started) => started,
        Err(PasskeyError::Policy(refusal)) => {
            return Err(refused_registration(&state, &user, refusal, now).await);
        }
        Err(e) => return Err(passkey_error(e)),
    };
    Ok(Json(json!({"ceremony": ceremony, "options": options})).into_response())
}

#[derive(Deserialize)]
pub struct RegisterFinish {
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

pub async fn register_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, JsonError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    // What the checks below see must still hold when the passkey is
    // written: take the versions first, commit only if they are unchanged.
    let guards = match super::cookie(&state, &headers, Cookie::Session) {
        Some(cookie) => state
            .sessions
            .unchanged(&SecretDigest::of(cookie), now)
            .await
            .map_err(|e| JsonError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "session",
                message: e.to_string(),
            })?,
        None => None,
    };
    let (digest, session, user) = json_session(&state, &headers, now).await?;
    let guards = guards.ok_or(JsonError {
        status: StatusCode::UNAUTHORIZED,
        code: "session.required",
        message: "Your session ended. Sign in again.".into(),
    })?;
    let input: RegisterFinish = json_body(&headers, body)?;
    // The window may have closed since the ceremony started.
    if let Some(refused) = step_up_required(&session, t, state.settings.registration_window) {
        return Ok(refused);
    }
    if let Some(refused) = security_info_refusal(&state, &headers, ip, &session, &user, now).await?
    {
        return Ok(refused);
    }
    let name = input.name.trim();
    let name = if name.is_empty() { "Passkey" } else { name };
    if name.chars().count() > 64 {
        return Err(JsonError {
            status: StatusCode::BAD_REQUEST,
            code: "request.invalid",
            message: "A passkey name has at most 64 characters.".into(),
        });
    }
    let ceremony = state
        .passkeys
        .take_ceremony(&input.ceremony, t)
        .await
        .map_err(passkey_error)?;
    let (policy, targeted) = passkey_policy_for(&state, &user, now).await?;
    let finished = state
        .passkeys
        .finish_registration(
            ceremony,
            digest.as_str(),
            &input.credential,
            name,
            PolicyFor {
                policy: &policy,
                targeted,
            },
            guards,
            t,
        )
        .await;
    let stored = match finished {
        Ok(stored) => stored,
        Err(PasskeyError::Policy(refusal)) => {
            return Err(refused_registration(&state, &user, refusal, now).await);
        }
        Err(e) => return Err(passkey_error(e)),
    };
    audit(
        &state,
        &user,
        "User registered security info",
        vec![
            KeyValue::new("methodType", "Fido2"),
            KeyValue::new("methodId", stored.id.clone()),
            KeyValue::new("aaGuid", stored.aaguid.clone()),
        ],
        now,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": stored.id, "displayName": stored.display_name, "notice": "passkey-added"}),
        ),
    )
        .into_response())
}

/// A registration the passkey policy refused: audited as a failed
/// registration with the reason, and answered with that reason (the page
/// shows it in an alert).
async fn refused_registration(
    state: &AppState,
    user: &User,
    refusal: crate::authn::passkey_policy::Refusal,
    now: OffsetDateTime,
) -> JsonError {
    let refusal = refusal.named(&state.settings.passkeys.authenticators);
    let mut details = vec![
        KeyValue::new("methodType", "Fido2"),
        KeyValue::new("reason", refusal.code()),
    ];
    if let crate::authn::passkey_policy::Refusal::ModelRestricted { aaguid, .. } = &refusal {
        details.push(KeyValue::new("aaGuid", aaguid.to_string()));
    }
    let message = refusal.message();
    record(
        state,
        user,
        "User registered security info",
        details,
        Some(&message),
        now,
    )
    .await;
    JsonError {
        status: StatusCode::FORBIDDEN,
        code: refusal.code(),
        message,
    }
}

/// Conditional access for "register security information", on an action
/// of the page (not only when it opens): a policy added, or a session that
/// no longer satisfies it, stops the action. `Some(refusal)` for the
/// script; the page itself offers the step-up.
async fn security_info_refusal(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    session: &Session,
    user: &User,
    now: OffsetDateTime,
) -> Result<Option<Response>, JsonError> {
    match security_info_gate(state, headers, ip, session, user, now).await? {
        None => Ok(None),
        Some(message) => Ok(Some(
            (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "conditional_access", "message": message, "step_up": SECURITY_INFO})),
            )
                .into_response(),
        )),
    }
}

/// What conditional access says about this session doing something on the
/// security-info page: `None` when allowed, else why not.
async fn security_info_gate(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    session: &Session,
    user: &User,
    now: OffsetDateTime,
) -> Result<Option<String>, PageError> {
    use crate::policy::conditional_access::Outcome;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let decision = super::gate::decide(
        state,
        user,
        super::gate::Proof::of(session),
        &super::gate::GateTarget::SecurityInfo,
        Some(ip),
        user_agent,
        now,
    )
    .await?;
    use super::gate::policy_names as names;
    Ok(match decision.outcome {
        Outcome::Allow => None,
        Outcome::Block(blocked) => Some(format!(
            "Conditional access blocks this: {}.",
            names(blocked.iter().map(|b| b.display_name.as_str()))
        )),
        Outcome::RequireStrength(unmet) => Some(format!(
            "Conditional access asks for a stronger sign-in first: {}. Reload the page to continue.",
            names(unmet.iter().map(|u| u.display_name.as_str()))
        )),
    })
}
