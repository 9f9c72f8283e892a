//! The authorization endpoint and the sign-in pages (DESIGN §2.5).
//!
//! ```text
//! GET /authorize ──validate──▶ session good enough? ──yes──▶ 303 redirect_uri?code
//!                                   │ no
//!                                   ▼
//!                 Username page ──POST──▶ Password page ──POST──▶ session + code
//! ```
//!
//! Everything between pages lives in the store (a *flow*, keyed by a random
//! id), so a sign-in may hop between Gatepass instances. A flow is bound to
//! the browser that started it: the `gp_binding` cookie's digest is in the
//! flow, and every form also carries a per-flow CSRF token. The pages work
//! without JavaScript.

use super::error::{PageError, render};
use super::{ClientIp, Cookie, cookie, set_cookie};
use crate::app::AppState;
use crate::audit::{AuthenticationDetail, DeviceDetail, SignIn, SignInStatus};
use crate::authn::AuthMethod;
use crate::authn::session::PasskeyUse;
use crate::authn::session::Session;
use crate::authn::tap::TemporaryAccessPass;
use crate::authn::throttle::{Locked, Work};
use crate::authn::verify::{Credential, Verdict, Verifier, VerifyError};
use crate::directory::User;
use crate::ids::{LogEntryId, OpaqueSecret, SecretDigest, secrets_equal};
use crate::protocol::authorize::{self, AuthorizationRequest, AuthorizeRejection};
use crate::protocol::params::Params;
use crate::protocol::{ErrorCode, OAuthError};
use crate::store::{Durability, decode, encode};
use crate::tokens::grants::Authorization;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;

pub const FLOWS: &str = "signin_flow";
const FLOW_LIFETIME: time::Duration = time::Duration::minutes(15);

/// What the user sees for any failed credential: never which part failed.
const SIGN_IN_FAILED: &str = "Sign-in failed. Check your username and password and try again.";
/// The same, on the pass page (the pass, not a password, was asked for).
const SIGN_IN_FAILED_TAP: &str =
    "Sign-in failed. Check your username and Temporary Access Pass and try again.";

/// A sign-in in progress (stored between pages, bound to the browser).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub target: FlowTarget,
    pub csrf: String,
    pub binding: SecretDigest,
    pub username: Option<String>,
    /// A step-up: only a passkey or a Temporary Access Pass will do.
    #[serde(default)]
    pub strong_only: bool,
    /// The session this step-up started from: its methods are kept when the
    /// same user signs in again (password + passkey → `pwd pop mfa`).
    #[serde(default)]
    pub prior: Option<PriorSession>,
    /// A conditional-access step-up: only these methods satisfy it.
    #[serde(default)]
    pub allowed: Option<Vec<AuthMethod>>,
    /// Why this step is asked for (shown on the method page).
    #[serde(default)]
    pub notice: Option<String>,
    /// The sign-in's `correlationId` in the log: a step-up continues the
    /// sign-in it interrupted, so a replay counts them as one.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// A conditional-access step-up: the flow offers only `offer`, says why
/// (`notice`), and continues the interrupted sign-in's correlation.
pub struct StepUpFlow {
    pub offer: Vec<AuthMethod>,
    pub notice: String,
    pub correlation_id: Option<String>,
}

/// A new sign-in's `correlationId` (none if the random source fails: the
/// log entry is still written).
pub fn new_correlation_id() -> Option<String> {
    crate::ids::random_uuid().ok().map(|u| u.to_string())
}

impl Flow {
    fn allows(&self, method: AuthMethod) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.contains(&method))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PriorSession {
    pub user_id: crate::ids::UserId,
    pub methods: Vec<AuthMethod>,
    /// The passkey among `methods`, when the session knew it.
    #[serde(default)]
    pub passkey: Option<PasskeyUse>,
}

/// Where a finished sign-in goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FlowTarget {
    /// Back to a relying party with a code.
    Authorize(Box<AuthorizationRequest>),
    /// Back to one of Gatepass's own account pages.
    Account { return_to: String },
    /// Back to the admin console (`/admin`), an application under
    /// conditional access like any other.
    Console { return_to: String },
    /// On to the device flow's confirmation page (RFC 8628): `device` is
    /// the device authorization's store key, `client_id` the device's
    /// client (conditional access judges the sign-in for it).
    Device { client_id: String, device: String },
}

/// The client id the account pages log sign-ins under.
pub const ACCOUNT_APP: &str = "gatepass-account";
/// The client id of the admin console, for sign-in logs and conditional
/// access (a policy may name it, or cover it with `All`).
pub const CONSOLE_APP: &str = "gatepass-admin";

impl Flow {
    pub fn client_id(&self) -> &str {
        match &self.target {
            FlowTarget::Authorize(r) => &r.client_id,
            FlowTarget::Account { .. } => ACCOUNT_APP,
            FlowTarget::Console { .. } => CONSOLE_APP,
            FlowTarget::Device { client_id, .. } => client_id,
        }
    }
}

#[derive(Template)]
#[template(path = "signin/username.html")]
struct SigninUsernamePage<'a> {
    flow: &'a str,
    csrf: &'a str,
    username: &'a str,
    client_name: Option<&'a str>,
    error: Option<&'a str>,
    /// **Sign in with a passkey** (off with an IP-address issuer).
    passkeys: bool,
}

#[derive(Template)]
#[template(path = "signin/password.html")]
struct SigninPasswordPage<'a> {
    flow: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    /// Offer "Use your Temporary Access Pass instead".
    has_tap: bool,
    /// Offer "Sign in with a passkey" (username-first).
    has_passkey: bool,
}

#[derive(Template)]
#[template(path = "signin/tap.html")]
struct SigninTapPage<'a> {
    flow: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    /// Offer "Use your password instead".
    has_password: bool,
    /// Offer "Sign in with a passkey" (username-first).
    has_passkey: bool,
    /// Why a step-up asks for this (conditional access).
    notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signin/passkey.html")]
struct SigninPasskeyPage<'a> {
    flow: &'a str,
    csrf: &'a str,
    username: Option<&'a str>,
    /// `username` (allow-list of the user's passkeys) or `discoverable`.
    mode: &'a str,
    message: Option<&'a str>,
    has_tap: bool,
    /// Offer "Sign in with a passkey": never to a known account without
    /// one (the ceremony could not succeed).
    offer_passkey: bool,
}

#[utoipa::path(get, path = "/authorize", operation_id = "oauth.authorize", tag = "oauth",
    description = "The authorization endpoint (OIDC Core §3.1.2): starts a sign-in in the browser.",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query),
        ("redirect_uri" = String, Query, description = "Exactly one of the client's registered URIs"),
        ("scope" = String, Query, description = "`openid` and any of `profile`, `email`, `offline_access`, Graph scopes"),
        ("state" = Option<String>, Query),
        ("nonce" = Option<String>, Query),
        ("code_challenge" = Option<String>, Query, description = "PKCE (S256); required for public clients"),
        ("code_challenge_method" = Option<String>, Query, description = "`S256`"),
        ("prompt" = Option<String>, Query, description = "`none`, `login`"),
        ("max_age" = Option<u32>, Query),
        ("login_hint" = Option<String>, Query),
        ("acr_values" = Option<String>, Query),
        ("id_token_hint" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A sign-in page", content_type = "text/html"),
        (status = 303, description = "On to the next sign-in step, or back to the client with a code or an error"),
        (status = 400, description = "A request that cannot be sent back to the client (unknown client or redirect URI): an error page", content_type = "text/html"),
    ))]
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Response {
    match Params::parse(query.as_deref().unwrap_or("")) {
        Ok(params) => authorize(state, headers, params, ip).await,
        Err(e) => PageError::oauth(&e).into_response(),
    }
}

/// OpenID Connect Core §3.1.2.1: the endpoint must accept POST forms too.
#[utoipa::path(post, path = "/authorize", operation_id = "oauth.authorizePost", tag = "oauth",
    description = "The authorization endpoint with the request as a form (OIDC Core §3.1.2.1).",
    request_body(content = crate::openapi::schemas::AuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A sign-in page", content_type = "text/html"),
        (status = 303, description = "On to the next sign-in step, or back to the client with a code or an error"),
        (status = 400, description = "A request that cannot be sent back to the client (unknown client or redirect URI): an error page", content_type = "text/html"),
    ))]
pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return PageError::bad_request("The request body is too large or unreadable.")
            .into_response();
    };
    if !super::is_form(&headers) {
        return PageError::bad_request("Send the authorization request as a form.").into_response();
    }
    let parsed = Params::parse(query.as_deref().unwrap_or(""))
        .and_then(|q| Params::parse(&String::from_utf8_lossy(&body)).and_then(|b| q.merge(b)));
    match parsed {
        Ok(params) => authorize(state, headers, params, ip).await,
        Err(e) => PageError::oauth(&e).into_response(),
    }
}

fn target_client(target: &FlowTarget) -> &str {
    match target {
        FlowTarget::Authorize(r) => &r.client_id,
        FlowTarget::Account { .. } => ACCOUNT_APP,
        FlowTarget::Console { .. } => CONSOLE_APP,
        FlowTarget::Device { client_id, .. } => client_id,
    }
}

async fn authorize(
    state: AppState,
    headers: HeaderMap,
    params: Params,
    ip: std::net::IpAddr,
) -> Response {
    let now = state.clock.now();
    // RFC 9126 §4: a pushed request's parameters replace the query's.
    let params = match super::par::authorization_params(&state, params, now).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let client = match params.get("client_id") {
        Some(id) => match state.clients.get(id).await {
            Ok(c) => c,
            Err(e) => return PageError::from(e).into_response(),
        },
        None => None,
    };
    let request = match authorize::validate(&params, client.as_deref()) {
        Ok(r) => r,
        Err(AuthorizeRejection::Show(e)) => return PageError::oauth(&e).into_response(),
        Err(AuthorizeRejection::Redirect {
            redirect_uri,
            state: st,
            error,
        }) => {
            return error_redirect(&state, &redirect_uri, st.as_deref(), &error);
        }
    };

    let session = match current_session(&state, &headers, now).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let fresh_enough = |s: &Session| {
        request
            .max_age
            .is_none_or(|max| now.unix_timestamp() - s.auth_time <= max)
    };
    match session {
        Some((secret, session, user)) if !request.prompt.login && fresh_enough(&session) => {
            // Single sign-on still passes conditional access for this app.
            let target = FlowTarget::Authorize(Box::new(request));
            let correlation = new_correlation_id();
            return match gate_and_go(
                &state,
                &headers,
                &target,
                &session,
                &secret,
                &user,
                ip,
                now,
                Arrival::Session,
                correlation.as_deref(),
            )
            .await
            {
                Ok(gated) => {
                    if gated.failure.is_some() {
                        let attempt = Attempt {
                            client_id: target_client(&target),
                            user: Some(&user),
                            username: &user.user_principal_name,
                            ip: &ip.to_string(),
                            headers: &headers,
                            correlation_id: correlation.as_deref(),
                        };
                        let steps: Vec<(AuthMethod, Proven)> = session
                            .methods
                            .iter()
                            .map(|m| (*m, Proven::Earlier))
                            .collect();
                        record_sign_in_with_ca(
                            &state,
                            &attempt,
                            &steps,
                            session.passkey,
                            gated.failure,
                            Some(&gated.result),
                            now,
                        )
                        .await;
                    }
                    gated.response
                }
                Err(e) => e.into_response(),
            };
        }
        _ if request.prompt.none => {
            return error_redirect(
                &state,
                &request.redirect_uri,
                request.state.as_deref(),
                &OAuthError::new(ErrorCode::LoginRequired, "the user must sign in"),
            );
        }
        _ => {}
    }
    let hint = request.login_hint.clone();
    start_flow(
        &state,
        &headers,
        ip,
        FlowTarget::Authorize(Box::new(request)),
        hint,
        false,
        None,
    )
    .await
}

/// The live session from the cookie: (cookie digest, session, user).
pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<Option<(SecretDigest, Session, User)>, PageError> {
    let Some(cookie) = cookie(state, headers, Cookie::Session) else {
        return Ok(None);
    };
    let digest = SecretDigest::of(cookie);
    match state.sessions.resume_digest(&digest, now).await {
        Ok(Some((s, u))) => Ok(Some((digest, s, u))),
        Ok(None) => Ok(None),
        Err(e) => Err(super::error::internal_page(
            "session",
            &e.to_string(),
            is_unavailable(&e),
        )),
    }
}

fn is_unavailable(e: &crate::authn::session::SessionError) -> bool {
    use crate::authn::session::SessionError;
    matches!(
        e,
        SessionError::Store(crate::store::StoreError::Unavailable(_))
            | SessionError::Directory(crate::directory::DirectoryError::Store(
                crate::store::StoreError::Unavailable(_)
            ))
    )
}

/// Starts a sign-in flow and shows its first page: the username page, or for
/// a step-up (known user, strong methods only) the TAP or passkey page.
#[allow(clippy::too_many_arguments)]
pub async fn start_flow(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    target: FlowTarget,
    username: Option<String>,
    strong_only: bool,
    prior: Option<PriorSession>,
) -> Response {
    start_flow_with(
        state,
        headers,
        ip,
        target,
        username,
        strong_only,
        prior,
        None,
    )
    .await
}

/// [`start_flow`] for a conditional-access step-up: only `allowed` methods
/// are offered, and the page says why (`notice`).
#[allow(clippy::too_many_arguments)]
pub async fn start_flow_with(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    target: FlowTarget,
    username: Option<String>,
    strong_only: bool,
    prior: Option<PriorSession>,
    step_up: Option<StepUpFlow>,
) -> Response {
    let now = state.clock.now();
    // A flow is stored before anyone signs in: limited per source.
    match state
        .throttle
        .admit_work(Work::SignInFlow, ip, now.unix_timestamp())
        .await
    {
        Ok(true) => {}
        Ok(false) => return PageError::too_many_requests().into_response(),
        Err(e) => return PageError::from(e).into_response(),
    }
    let (flow_id, csrf) = match (OpaqueSecret::generate(), OpaqueSecret::generate()) {
        (Ok(f), Ok(c)) => (f, c),
        _ => {
            return super::error::internal_page("random", "random source failed", false)
                .into_response();
        }
    };
    // Reuse the browser's binding cookie, or mint one.
    let (binding_value, new_binding) = match cookie(state, headers, Cookie::Binding) {
        Some(v) if v.len() == 43 => (v.to_owned(), false),
        _ => match OpaqueSecret::generate() {
            Ok(b) => (b.expose().to_owned(), true),
            Err(_) => {
                return super::error::internal_page("random", "random source failed", false)
                    .into_response();
            }
        },
    };
    let flow = Flow {
        target,
        username,
        csrf: csrf.expose().to_owned(),
        binding: SecretDigest::of(&binding_value),
        strong_only,
        prior,
        allowed: step_up.as_ref().map(|s| s.offer.clone()),
        notice: step_up.as_ref().map(|s| s.notice.clone()),
        correlation_id: step_up
            .and_then(|s| s.correlation_id)
            .or_else(new_correlation_id),
    };
    if let Err(e) = save_flow(state, flow_id.expose(), &flow, now).await {
        return PageError::from(e).into_response();
    }
    let client_name = match &flow.target {
        FlowTarget::Authorize(r) => match display_name(state, &r.client_id).await {
            Ok(name) => name,
            Err(e) => return PageError::from(e).into_response(),
        },
        FlowTarget::Account { .. } => Some("your account".to_owned()),
        FlowTarget::Console { .. } => Some("the Gatepass admin console".to_owned()),
        FlowTarget::Device { client_id, .. } => match display_name(state, client_id).await {
            Ok(name) => name,
            Err(e) => return PageError::from(e).into_response(),
        },
    };
    let client_name = client_name.as_deref();
    let mut response = if strong_only && flow.username.is_some() {
        let next = match step_after_username(state, &flow, now).await {
            Ok(step) => step,
            Err(e) => return e.into_response(),
        };
        Redirect::to(&format!("/signin/{next}?flow={}", flow_id.expose())).into_response()
    } else {
        with_csp(
            render(
                StatusCode::OK,
                &SigninUsernamePage {
                    flow: flow_id.expose(),
                    csrf: &flow.csrf,
                    username: flow.username.as_deref().unwrap_or(""),
                    client_name,
                    error: None,
                    passkeys: state.passkeys.enabled(),
                },
            ),
            &flow_csp(state, &flow.target).await,
        )
    };
    if new_binding {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, Cookie::Binding, &binding_value, None),
        );
    }
    response
}

pub(crate) async fn save_flow(
    state: &AppState,
    id: &str,
    flow: &Flow,
    now: OffsetDateTime,
) -> Result<(), crate::store::StoreError> {
    // Sign-in state is cheap to lose (the user starts again): ephemeral.
    state
        .store
        .put(
            FLOWS,
            id,
            encode(flow)?,
            Some((now + FLOW_LIFETIME).unix_timestamp()),
            Durability::Ephemeral,
        )
        .await
        .map(|_| ())
}

/// Loads the flow and checks it belongs to this browser (and, for form
/// posts, that the CSRF token matches).
pub(crate) async fn load_flow(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    csrf: Option<&str>,
    now: OffsetDateTime,
) -> Result<Flow, PageError> {
    if id.len() != 43 {
        return Err(PageError::flow_expired());
    }
    let record = state
        .store
        .get(FLOWS, id, now.unix_timestamp())
        .await?
        .ok_or_else(PageError::flow_expired)?;
    let flow: Flow = decode(FLOWS, &record.value)?;
    let bound = cookie(state, headers, Cookie::Binding)
        .is_some_and(|b| secrets_equal(SecretDigest::of(b).as_str(), flow.binding.as_str()));
    if !bound {
        return Err(PageError::flow_expired());
    }
    if let Some(csrf) = csrf {
        if !secrets_equal(csrf, &flow.csrf) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Sign-in problem",
                "The form could not be verified. Reload the page and try again.",
            ));
        }
    }
    Ok(flow)
}

/// Parses a sign-in form body (duplicate fields refused).
fn form(
    headers: &HeaderMap,
    body: &Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<HashMap<String, String>, PageError> {
    let Ok(body) = body else {
        return Err(PageError::bad_request(
            "The form is too large or unreadable.",
        ));
    };
    if !super::is_form(headers) {
        return Err(PageError::bad_request("Expected a form submission."));
    }
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(PageError::bad_request(format!(
                "The field `{k}` was sent twice."
            )));
        }
    }
    Ok(out)
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, PageError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| PageError::bad_request(format!("The form is missing `{name}`.")))
}

pub async fn username_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let form = form(&headers, &body)?;
    let flow_id = field(&form, "flow")?;
    let mut flow = load_flow(&state, &headers, flow_id, Some(field(&form, "csrf")?), now).await?;
    let username = form.get("username").map(|u| u.trim()).unwrap_or("");
    // No userPrincipalName is longer or holds control characters.
    if username.is_empty()
        || username.len() > authorize::MAX_LOGIN_HINT_LEN
        || username.chars().any(char::is_control)
    {
        let page = SigninUsernamePage {
            flow: flow_id,
            csrf: &flow.csrf,
            username,
            client_name: None,
            error: Some("Enter your username."),
            passkeys: state.passkeys.enabled(),
        };
        return Ok(with_csp(
            render(StatusCode::OK, &page),
            &flow_csp(&state, &flow.target).await,
        ));
    }
    flow.username = Some(username.to_owned());
    save_flow(&state, flow_id, &flow, now).await?;
    // A usable Temporary Access Pass is asked for first (Entra's
    // system-preferred order). Otherwise the password page, also for
    // unknown users, so this step does not reveal which accounts exist.
    let step = step_after_username(&state, &flow, now).await?;
    Ok(Redirect::to(&format!("/signin/{step}?flow={flow_id}")).into_response())
}

/// The page after the username: a usable Temporary Access Pass first, then
/// a passkey (for step-ups, which refuse passwords), then the password.
async fn step_after_username(
    state: &AppState,
    flow: &Flow,
    now: OffsetDateTime,
) -> Result<&'static str, PageError> {
    let (user, offer) = flow_user(state, flow, now).await?;
    if offer.tap {
        return Ok("tap");
    }
    if flow.strong_only || !flow.allows(AuthMethod::Password) {
        return Ok("passkey");
    }
    let _ = user;
    Ok("password")
}

/// The user's pass if it would be accepted right now.
async fn usable_pass(
    state: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> Result<Option<TemporaryAccessPass>, PageError> {
    verifier(state)
        .usable_pass(user, now)
        .await
        .map_err(verify_page_error)
}

#[derive(Deserialize)]
pub struct FlowQuery {
    flow: String,
}

/// `?flow=…` on the method pages; anything else is an expired sign-in page.
pub struct FlowParam(FlowQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for FlowParam {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<FlowQuery>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| FlowParam(q))
            .map_err(|_| PageError::flow_expired())
    }
}

/// What the method pages may offer the flow's user.
#[derive(Debug, Clone, Copy, Default)]
struct Offer {
    password: bool,
    tap: bool,
    passkey: bool,
}

/// The flow's user (if the username exists) and the methods they have.
/// Unknown users get an empty offer (the password page, no links).
async fn flow_user(
    state: &AppState,
    flow: &Flow,
    now: OffsetDateTime,
) -> Result<(Option<User>, Offer), PageError> {
    let Some(username) = flow.username.as_deref() else {
        return Err(PageError::flow_expired());
    };
    let Some(user) = state
        .directory
        .user_by_upn(username, now)
        .await
        .map_err(PageError::from)?
    else {
        return Ok((None, Offer::default()));
    };
    let pass = usable_pass(state, &user, now).await?;
    let offer = Offer {
        password: !flow.strong_only
            && flow.allows(AuthMethod::Password)
            && state
                .directory
                .password_hash(user.id, now)
                .await
                .map_err(PageError::from)?
                .is_some(),
        tap: pass.is_some_and(|p| flow.allows(p.method())),
        passkey: state.passkeys.enabled()
            && flow.allows(AuthMethod::Passkey)
            && !state
                .passkeys
                .list(user.id, now.unix_timestamp())
                .await
                .map_err(|e| super::error::internal_page(e.code(), &e.to_string(), false))?
                .is_empty(),
    };
    Ok((Some(user), offer))
}

pub async fn password_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    FlowParam(q): FlowParam,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let flow = load_flow(&state, &headers, &q.flow, None, now).await?;
    let (_, offer) = flow_user(&state, &flow, now).await?;
    let username = flow.username.as_deref().unwrap_or_default();
    let error = flow.strong_only.then_some(STRONG_NEEDED);
    Ok(failure_or_page(
        &flow_csp(&state, &flow.target).await,
        Step::Password,
        &q.flow,
        &flow.csrf,
        username,
        error,
        offer,
    ))
}

pub async fn tap_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    FlowParam(q): FlowParam,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let flow = load_flow(&state, &headers, &q.flow, None, now).await?;
    let (_, offer) = flow_user(&state, &flow, now).await?;
    if !offer.tap {
        // No usable pass (expired, deleted, used): never show a TAP prompt.
        let next = if flow.strong_only {
            "passkey"
        } else {
            "password"
        };
        return Ok(Redirect::to(&format!("/signin/{next}?flow={}", q.flow)).into_response());
    }
    let username = flow.username.as_deref().unwrap_or_default();
    Ok(failure_or_page_with(
        &flow_csp(&state, &flow.target).await,
        Step::Tap,
        &q.flow,
        &flow.csrf,
        username,
        None,
        offer,
        flow.notice.as_deref(),
    ))
}

/// "Sign in as a different user": back to the username page, same flow.
pub async fn restart(
    State(state): State<AppState>,
    headers: HeaderMap,
    FlowParam(q): FlowParam,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let mut flow = load_flow(&state, &headers, &q.flow, None, now).await?;
    flow.username = None;
    save_flow(&state, &q.flow, &flow, now).await?;
    Ok(with_csp(
        render(
            StatusCode::OK,
            &SigninUsernamePage {
                flow: &q.flow,
                csrf: &flow.csrf,
                username: "",
                client_name: None,
                error: None,
                passkeys: state.passkeys.enabled(),
            },
        ),
        &flow_csp(&state, &flow.target).await,
    ))
}

/// Which credential page a failure re-renders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Password,
    Tap,
}

/// What a locked attempt tells the user: that sign-in is temporarily
/// locked and for how long; never which part was wrong.
fn locked_message(locked: Locked, now: i64) -> String {
    let until = match locked {
        Locked::Account { until } | Locked::Source { until } => until,
    };
    // Whole minutes, rounded up: "1 minute" rather than "0 minutes".
    let minutes = ((until - now).max(1) + 59) / 60;
    format!(
        "Sign-in is temporarily locked after repeated failed attempts. Try again in {}.",
        super::when::duration(minutes * 60)
    )
}

pub async fn password_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    credential_submit(state, headers, ip, body, Step::Password).await
}

pub async fn tap_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PageError> {
    credential_submit(state, headers, ip, body, Step::Tap).await
}

async fn credential_submit(
    state: AppState,
    headers: HeaderMap,
    ip: std::net::IpAddr,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    step: Step,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let form = form(&headers, &body)?;
    let flow_id = field(&form, "flow")?;
    let flow = load_flow(&state, &headers, flow_id, Some(field(&form, "csrf")?), now).await?;
    let username = flow.username.clone().ok_or_else(PageError::flow_expired)?;
    if flow.strong_only && step == Step::Password {
        return Ok(failure_or_page(
            &flow_csp(&state, &flow.target).await,
            step,
            flow_id,
            &flow.csrf,
            &username,
            Some(STRONG_NEEDED),
            Offer::default(),
        ));
    }
    let (credential, method) = match step {
        Step::Password => (
            Credential::Password(form.get("password").map(String::as_str).unwrap_or("")),
            AuthMethod::Password,
        ),
        Step::Tap => (
            // A pass pasted with surrounding whitespace (as usernames are,
            // it is trimmed): the pass alphabet has no spaces.
            Credential::TemporaryAccessPass(form.get("tap").map_or("", |t| t.trim())),
            AuthMethod::TemporaryAccessPassOneTime,
        ),
    };
    let ip_text = ip.to_string();
    let client_id = flow.client_id().to_owned();
    // This attempt, for the sign-in log (the account, when known).
    let attempt = |user| Attempt {
        client_id: &client_id,
        user,
        username: &username,
        ip: &ip_text,
        headers: &headers,
        correlation_id: flow.correlation_id.as_deref(),
    };
    let verdict = match verifier(&state)
        .verify(&username, ip, credential, now)
        .await
    {
        Ok(verdict) => verdict,
        // Too many sign-ins at once: the same page, to submit again in a
        // moment (503; the router adds Retry-After). Nothing was counted.
        Err(VerifyError::Busy) => {
            let (_, offer) = flow_user(&state, &flow, now).await?;
            let mut page = failure_or_page(
                &flow_csp(&state, &flow.target).await,
                step,
                flow_id,
                &flow.csrf,
                &username,
                Some(BUSY),
                offer,
            );
            *page.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(page);
        }
        Err(e) => return Err(verify_page_error(e)),
    };

    let (user, pass) = match verdict {
        Verdict::Accepted { user, pass } => (user, pass),
        Verdict::Locked(refused) => {
            // One log entry per lockout: later refusals are only counted,
            // so a flood of attempts at a locked account writes nothing.
            if refused.first {
                let reason = match refused.locked {
                    Locked::Account { .. } => {
                        "Account is temporarily locked after repeated failed sign-ins; further attempts during this lockout are counted, not logged one by one"
                    }
                    Locked::Source { .. } => {
                        "Source address is temporarily locked after repeated failed sign-ins; further attempts during this lockout are counted, not logged one by one"
                    }
                };
                let user = state
                    .directory
                    .user_by_upn(&username, now)
                    .await
                    .map_err(PageError::from)?;
                record_sign_in(
                    &state,
                    &attempt(user.as_ref()),
                    method,
                    Some((50053, reason)),
                    now,
                )
                .await;
            }
            return Ok(failure_or_page(
                &flow_csp(&state, &flow.target).await,
                step,
                flow_id,
                &flow.csrf,
                &username,
                Some(&locked_message(refused.locked, now.unix_timestamp())),
                Offer::default(),
            ));
        }
        Verdict::Failed {
            user,
            reason,
            error_code,
            lockouts,
        } => {
            record_sign_in(
                &state,
                &attempt(user.as_ref()),
                method,
                Some((error_code, reason)),
                now,
            )
            .await;
            for l in lockouts {
                let what = match l.locked {
                    Locked::Account { .. } => "Account locked after repeated failed sign-ins",
                    Locked::Source { .. } => "Source address locked after repeated failed sign-ins",
                };
                tracing::warn!(user = %username.escape_debug(), ip = %ip_text, seconds = l.duration_secs, "{what}");
                record_sign_in(
                    &state,
                    &attempt(user.as_ref()),
                    method,
                    Some((50053, what)),
                    now,
                )
                .await;
            }
            // A pass that stopped being usable (used, expired, deleted) has
            // nothing left to ask for: the password page takes over.
            let (_, offer) = flow_user(&state, &flow, now).await?;
            let step = if step == Step::Tap && !offer.tap {
                Step::Password
            } else {
                step
            };
            return Ok(failure_or_page(
                &flow_csp(&state, &flow.target).await,
                step,
                flow_id,
                &flow.csrf,
                &username,
                Some(if step == Step::Tap {
                    SIGN_IN_FAILED_TAP
                } else {
                    SIGN_IN_FAILED
                }),
                offer,
            ));
        }
    };

    let method = pass
        .as_ref()
        .map_or(AuthMethod::Password, TemporaryAccessPass::method);
    finish_sign_in(
        &state,
        &headers,
        flow_id,
        &flow,
        &user,
        method,
        pass.as_ref(),
        None,
        ip,
        now,
    )
    .await
}

/// What a sign-in refused for lack of hashing capacity says.
const BUSY: &str = "Gatepass is handling many sign-ins right now. Sign in again in a moment.";

/// A step-up flow refuses the password: it exists to prove more than that.
const STRONG_NEEDED: &str = "This step needs a passkey or a Temporary Access Pass.";

/// The first factor is proven: start the session (keeping a step-up's
/// earlier methods), let conditional access gate the target, log it, and
/// send the browser on.
#[allow(clippy::too_many_arguments)]
pub async fn finish_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    flow_id: &str,
    flow: &Flow,
    user: &User,
    method: AuthMethod,
    pass: Option<&TemporaryAccessPass>,
    passkey: Option<PasskeyUse>,
    ip: std::net::IpAddr,
    now: OffsetDateTime,
) -> Result<Response, PageError> {
    let mut methods = vec![method];
    let mut passkey = passkey;
    if let Some(prior) = flow.prior.as_ref().filter(|p| p.user_id == user.id) {
        for m in &prior.methods {
            if !methods.contains(m) {
                methods.push(*m);
            }
        }
        methods.sort();
        passkey = passkey.or(prior.passkey);
    }
    // A step-up keeps the pass binding of the session it started from only
    // through the new method; a TAP-bound session stays capped by its pass.
    let (secret, session) = state
        .sessions
        .start(
            user,
            methods,
            now,
            state.settings.session_lifetime,
            pass,
            passkey,
        )
        .await
        .map_err(|e| super::error::internal_page("session", &e.to_string(), is_unavailable(&e)))?;
    state
        .store
        .delete(FLOWS, flow_id, Durability::Ephemeral, now.unix_timestamp())
        .await?;
    let cookie = set_cookie(state, Cookie::Session, secret.expose(), None);
    let digest = secret.digest();
    let correlation = flow.correlation_id.clone().or_else(new_correlation_id);
    let gated = gate_and_go(
        state,
        headers,
        &flow.target,
        &session,
        &digest,
        user,
        ip,
        now,
        Arrival::SignIn,
        correlation.as_deref(),
    )
    .await?;
    let attempt = Attempt {
        client_id: flow.client_id(),
        user: Some(user),
        username: &user.user_principal_name,
        ip: &ip.to_string(),
        headers,
        correlation_id: correlation.as_deref(),
    };
    // This flow proved `method`; a step-up's earlier methods were proven
    // before it (in the flow it interrupted, or by single sign-on).
    let steps: Vec<(AuthMethod, Proven)> = session
        .methods
        .iter()
        .map(|&m| {
            (
                m,
                if m == method {
                    Proven::Now
                } else {
                    Proven::Earlier
                },
            )
        })
        .collect();
    record_sign_in_with_ca(
        state,
        &attempt,
        &steps,
        session.passkey,
        gated.failure,
        Some(&gated.result),
        now,
    )
    .await;
    let mut response = gated.response;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// How a browser reached [`gate_and_go`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// It has just signed in.
    SignIn,
    /// With the session it already had (single sign-on, an account page).
    Session,
    /// Back from the registration campaign's interrupt, which it answered:
    /// not interrupted again.
    CampaignAnswered,
}

/// What [`gate_and_go`] did.
pub struct Gated {
    pub response: Response,
    pub result: super::gate::GateResult,
    /// For the sign-in log when conditional access stopped the sign-in.
    pub failure: Option<(u32, &'static str)>,
}

/// Runs conditional access for `target` with `session`, then issues the
/// code / opens the page, starts a step-up flow (continuing
/// `correlation_id`), or refuses.
#[allow(clippy::too_many_arguments)]
pub async fn gate_and_go(
    state: &AppState,
    headers: &HeaderMap,
    target: &FlowTarget,
    session: &Session,
    digest: &SecretDigest,
    user: &User,
    ip: std::net::IpAddr,
    now: OffsetDateTime,
    arrival: Arrival,
    correlation_id: Option<&str>,
) -> Result<Gated, PageError> {
    use super::gate::{Gate, GateTarget};
    let gate_target = match target {
        FlowTarget::Authorize(r) => GateTarget::App {
            client_id: &r.client_id,
            acr_values: &r.acr_values,
            essential_acr: r.essential_acr.as_deref(),
        },
        FlowTarget::Account { .. } => GateTarget::SecurityInfo,
        FlowTarget::Console { .. } => GateTarget::App {
            client_id: CONSOLE_APP,
            acr_values: &[],
            essential_acr: None,
        },
        FlowTarget::Device { client_id, .. } => GateTarget::App {
            client_id,
            acr_values: &[],
            essential_acr: None,
        },
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let result = super::gate::check(
        state,
        user,
        super::gate::Proof::of(session),
        &gate_target,
        Some(ip),
        user_agent,
        now,
    )
    .await?;
    // `prompt=none` never shows a page (OpenID Connect Core §3.1.2.6): a
    // needed step-up is `interaction_required`, a block `access_denied`.
    let silent = match target {
        FlowTarget::Authorize(request) if request.prompt.none => Some(request),
        _ => None,
    };
    let (response, failure) = match (&result.gate, silent) {
        (Gate::StepUp { .. } | Gate::Refuse { blocked: false, .. }, Some(request)) => (
            error_redirect(
                state,
                &request.redirect_uri,
                request.state.as_deref(),
                &OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "conditional access requires the user to sign in again",
                ),
            ),
            Some((
                50074,
                "Conditional access requires a stronger authentication method",
            )),
        ),
        (Gate::Refuse { blocked: true, .. }, Some(request)) => (
            error_redirect(
                state,
                &request.redirect_uri,
                request.state.as_deref(),
                &OAuthError::new(
                    ErrorCode::AccessDenied,
                    "access is blocked by conditional access",
                ),
            ),
            Some((
                53003,
                "Access has been blocked by conditional access policies",
            )),
        ),
        (Gate::Allow, _) => {
            // An interactive visit may first meet the registration campaign
            // (single sign-on too, or ignoring the interrupt and reloading
            // the application would skip an enforced one; never a silent
            // request: `prompt=none` shows no page).
            let campaign_applies = silent.is_none()
                && match (arrival, target) {
                    (Arrival::SignIn, _)
                    | (Arrival::Session, FlowTarget::Authorize(_) | FlowTarget::Device { .. }) => {
                        true
                    }
                    // A console page view, the security-info page, or an
                    // answered interrupt.
                    (Arrival::Session | Arrival::CampaignAnswered, _) => false,
                };
            let interrupt = if campaign_applies {
                super::campaign::interrupt(state, target, session, user, now).await?
            } else {
                None
            };
            let response = match (interrupt, target) {
                (Some(page), _) => page,
                (None, FlowTarget::Authorize(request)) => {
                    complete(state, request, session, digest, user, now, None).await
                }
                (None, FlowTarget::Device { client_id, device }) => {
                    super::device::consent_page(
                        state, client_id, device, session, digest, user, now,
                    )
                    .await?
                }
                (None, FlowTarget::Account { return_to } | FlowTarget::Console { return_to }) => {
                    if arrival == Arrival::SignIn {
                        Redirect::to(return_to).into_response()
                    } else {
                        // Already on the page: the caller renders it.
                        StatusCode::NO_CONTENT.into_response()
                    }
                }
            };
            (response, None)
        }
        (
            Gate::StepUp {
                offer,
                fresh,
                message,
            },
            None,
        ) => {
            let prior = (!fresh).then(|| PriorSession {
                user_id: user.id,
                methods: session.methods.clone(),
                passkey: session.passkey,
            });
            let strong_only = !offer.contains(&AuthMethod::Password);
            let response = start_flow_with(
                state,
                headers,
                ip,
                target.clone(),
                Some(user.user_principal_name.clone()),
                strong_only,
                prior,
                Some(StepUpFlow {
                    offer: offer.clone(),
                    notice: message.clone(),
                    correlation_id: correlation_id.map(str::to_owned),
                }),
            )
            .await;
            (
                response,
                Some((
                    50074,
                    "Conditional access requires a stronger authentication method",
                )),
            )
        }
        (Gate::Refuse { message, .. }, None) => {
            let page = PageError::new(
                StatusCode::FORBIDDEN,
                "You cannot access this right now",
                message.clone(),
            );
            (
                page.into_response(),
                Some((
                    53003,
                    "Access has been blocked by conditional access policies",
                )),
            )
        }
    };
    Ok(Gated {
        response,
        result,
        failure,
    })
}

pub fn verifier(state: &AppState) -> Verifier<'_> {
    Verifier {
        directory: &state.directory,
        taps: &state.taps,
        throttle: &state.throttle,
        hasher: &state.hasher,
    }
}

fn verify_page_error(e: VerifyError) -> PageError {
    match e {
        VerifyError::Busy => PageError::busy(),
        other => super::error::internal_page("verify", &other.to_string(), other.is_unavailable()),
    }
}

/// A client's display name, if the client is known.
async fn display_name(
    state: &AppState,
    client_id: &str,
) -> Result<Option<String>, crate::store::StoreError> {
    Ok(state
        .clients
        .get(client_id)
        .await?
        .map(|c| c.display_name.clone()))
}

/// The Content-Security-Policy of a sign-in page: its forms may post to
/// Gatepass and, because a successful post redirects there, to the origins
/// of the flow's client's registered redirect URIs — nowhere else. (If the
/// client cannot be read, only Gatepass: the sign-in then fails closed.)
async fn flow_csp(state: &AppState, target: &FlowTarget) -> HeaderValue {
    let client = match target {
        FlowTarget::Authorize(r) => state.clients.get(&r.client_id).await.ok().flatten(),
        FlowTarget::Account { .. } | FlowTarget::Console { .. } | FlowTarget::Device { .. } => None,
    };
    let uris = client
        .as_ref()
        .map(|c| c.redirect_uris.as_slice())
        .unwrap_or_default();
    super::content_security_policy(uris.iter().map(String::as_str))
}

fn with_csp(mut response: Response, csp: &HeaderValue) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    response
}

/// Renders a credential page, with an error message after a failure.
fn failure_or_page(
    csp: &HeaderValue,
    step: Step,
    flow: &str,
    csrf: &str,
    username: &str,
    error: Option<&str>,
    offer: Offer,
) -> Response {
    failure_or_page_with(csp, step, flow, csrf, username, error, offer, None)
}

#[allow(clippy::too_many_arguments)]
fn failure_or_page_with(
    csp: &HeaderValue,
    step: Step,
    flow: &str,
    csrf: &str,
    username: &str,
    error: Option<&str>,
    offer: Offer,
    notice: Option<&str>,
) -> Response {
    let page = match step {
        Step::Password => render(
            StatusCode::OK,
            &SigninPasswordPage {
                flow,
                csrf,
                username,
                error,
                has_tap: offer.tap,
                has_passkey: offer.passkey,
            },
        ),
        Step::Tap => render(
            StatusCode::OK,
            &SigninTapPage {
                flow,
                csrf,
                username,
                error,
                has_password: offer.password,
                has_passkey: offer.passkey,
                notice,
            },
        ),
    };
    with_csp(page, csp)
}

/// `GET /signin/passkey?flow=`: the passkey step (step-ups, and browsers
/// that followed the link without running the script).
pub async fn passkey_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    FlowParam(q): FlowParam,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let flow = load_flow(&state, &headers, &q.flow, None, now).await?;
    // A named user gets the button only with a passkey the flow accepts
    // (username mode); before a username, the browser offers any
    // discoverable passkey.
    let (offer, mode, offer_passkey) = match flow.username {
        Some(_) => {
            let (_, offer) = flow_user(&state, &flow, now).await?;
            (offer, "username", offer.passkey)
        }
        None => (
            Offer::default(),
            "discoverable",
            state.passkeys.enabled() && flow.allows(AuthMethod::Passkey),
        ),
    };
    let message = if flow.strong_only && !offer.passkey && !offer.tap {
        Some(
            "This step needs a passkey or a Temporary Access Pass, and this account has neither. Ask an administrator for a Temporary Access Pass.",
        )
    } else {
        flow.notice.as_deref()
    };
    Ok(with_csp(
        render(
            StatusCode::OK,
            &SigninPasskeyPage {
                flow: &q.flow,
                csrf: &flow.csrf,
                username: flow.username.as_deref(),
                mode,
                message,
                has_tap: offer.tap,
                offer_passkey,
            },
        ),
        &flow_csp(&state, &flow.target).await,
    ))
}

/// Issues the code and redirects back to the client.
async fn complete(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
    session_digest: &SecretDigest,
    user: &User,
    now: OffsetDateTime,
    set_session_cookie: Option<axum::http::HeaderValue>,
) -> Response {
    if let Some(acceptable) = &request.essential_acr {
        if !acceptable.iter().any(|a| a == session.acr().as_str()) {
            return error_redirect(
                state,
                &request.redirect_uri,
                request.state.as_deref(),
                &OAuthError::new(
                    ErrorCode::UnmetAuthenticationRequirements,
                    "the session does not satisfy the requested acr",
                ),
            );
        }
    }
    let authorization = Authorization {
        user_id: user.id,
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        auth_time: session.auth_time,
        methods: session.methods.clone(),
        sid: session.sid.clone(),
        session: session_digest.clone(),
        epoch: session.epoch,
        // A TAP sign-in caps every token at the pass's end; other sessions
        // let offline grants outlive the browser session.
        not_after: session.tap_id.as_ref().map(|_| session.expires_at),
        tap_id: session.tap_id.clone(),
        passkey: session.passkey.map(|p| p.aaguid),
    };
    // Back-channel logout reaches the clients this session signed in to.
    // Recorded before the code exists: a session ended in between then
    // still tells this client (at worst about a code it never redeemed),
    // where recording after could leave a record nobody fans out.
    if let Err(e) = state
        .backchannel
        .participate(session, &request.client_id, now.unix_timestamp())
        .await
    {
        let unavailable = matches!(e, crate::store::StoreError::Unavailable(_));
        return super::error::internal_page(e.code(), &e.to_string(), unavailable).into_response();
    }
    let code = match state.grants.issue_code(authorization, now).await {
        Ok(c) => c,
        Err(e) => {
            let unavailable = matches!(
                &e,
                crate::tokens::grants::GrantError::Store(crate::store::StoreError::Unavailable(_))
            );
            return super::error::internal_page(e.code(), &e.to_string(), unavailable)
                .into_response();
        }
    };
    let mut pairs = vec![("code", code.expose().to_owned())];
    if let Some(s) = &request.state {
        pairs.push(("state", s.clone()));
    }
    // RFC 9207: tell the client which issuer answered (mix-up defence).
    pairs.push(("iss", state.settings.issuer.clone()));
    let mut response = redirect_with(&request.redirect_uri, &pairs);
    if let Some(c) = set_session_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Redirects an OAuth error to a validated redirect URI (RFC 6749 §4.1.2.1).
fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    st: Option<&str>,
    error: &OAuthError,
) -> Response {
    let mut pairs = vec![
        ("error", error.code.as_str().to_owned()),
        ("error_description", error.description.clone()),
    ];
    if let Some(s) = st {
        pairs.push(("state", s.to_owned()));
    }
    pairs.push(("iss", state.settings.issuer.clone()));
    redirect_with(redirect_uri, &pairs)
}

fn redirect_with(uri: &str, pairs: &[(&str, String)]) -> Response {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            Redirect::to(url.as_str()).into_response()
        }
        // Unreachable for registered URIs (validated at start-up).
        Err(_) => {
            PageError::bad_request("The application's redirect URI is invalid.").into_response()
        }
    }
}

/// One sign-in attempt, as the sign-in log records it.
pub struct Attempt<'a> {
    pub client_id: &'a str,
    /// The account, when known.
    pub user: Option<&'a User>,
    /// As typed (or the account's userPrincipalName).
    pub username: &'a str,
    pub ip: &'a str,
    /// For `deviceDetail` (the `User-Agent`).
    pub headers: &'a HeaderMap,
    /// The sign-in this attempt is part of (a flow and its step-ups).
    pub correlation_id: Option<&'a str>,
}

/// When a logged method was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proven {
    /// By this attempt.
    Now,
    /// Before it: earlier in the sign-in a step-up continues, or by the
    /// session that single sign-on uses.
    Earlier,
}

/// Writes one sign-in log entry for `method`; `failure` is the Entra-style
/// error code and reason. A logging failure never fails the sign-in but is
/// itself logged.
pub async fn record_sign_in(
    state: &AppState,
    attempt: &Attempt<'_>,
    method: AuthMethod,
    failure: Option<(u32, &str)>,
    now: OffsetDateTime,
) {
    record_sign_in_with_ca(
        state,
        attempt,
        &[(method, Proven::Now)],
        None,
        failure,
        None,
        now,
    )
    .await;
}

/// [`record_sign_in`] for a session's methods (`steps`; `passkey` is the
/// passkey among them, when known), with the sign-in's conditional-access
/// results, in Entra ID's shape: each method is one `authenticationDetail`
/// (the first the primary step, the others multi-factor steps), and the
/// entry says which methods were used and whether the sign-in was
/// multifactor. Conditional access refusing the sign-in does not make a
/// verified method fail (replaying the log needs what was proven).
#[allow(clippy::too_many_arguments)]
pub async fn record_sign_in_with_ca(
    state: &AppState,
    attempt: &Attempt<'_>,
    steps: &[(AuthMethod, Proven)],
    passkey: Option<PasskeyUse>,
    failure: Option<(u32, &str)>,
    ca: Option<&super::gate::GateResult>,
    now: OffsetDateTime,
) {
    let Ok(id) = LogEntryId::generate() else {
        return;
    };
    let verified = failure.is_none_or(|(code, _)| crate::audit::is_conditional_access_error(code));
    let user = attempt.user;
    let user_agent = attempt
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let operating_system = user_agent
        .and_then(crate::policy::conditional_access::platform_from_user_agent)
        .map_or("", |p| p.operating_system());
    let names = &state.settings.passkeys.authenticators;
    let method_name = |m: AuthMethod| -> String {
        match (m, passkey) {
            (AuthMethod::Passkey, Some(p)) if p.synced => "Passkey (synced)".to_owned(),
            (AuthMethod::Passkey, Some(_)) => "Passkey (device-bound)".to_owned(),
            (m, _) => m.display_name().to_owned(),
        }
    };
    let method_detail = |m: AuthMethod| -> Option<String> {
        match (m, passkey) {
            (AuthMethod::Passkey, Some(p)) => match names.name(p.aaguid) {
                Some(name) => Some(name.to_owned()),
                // All zeros: the authenticator did not say.
                None if p.aaguid.is_nil() => None,
                None => Some(format!("AAGUID {}", p.aaguid)),
            },
            (m, _) => m.log_detail().map(str::to_owned),
        }
    };
    let methods: Vec<AuthMethod> = steps.iter().map(|(m, _)| *m).collect();
    let entry = SignIn {
        id,
        created_date_time: now,
        user_id: user.map(|u| u.id),
        user_principal_name: attempt.username.to_owned(),
        user_display_name: user.map(|u| u.display_name.clone()),
        app_id: attempt.client_id.to_owned(),
        app_display_name: display_name(state, attempt.client_id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| attempt.client_id.to_owned()),
        ip_address: attempt.ip.to_owned(),
        device_detail: Some(DeviceDetail {
            operating_system: operating_system.to_owned(),
            browser: user_agent.map(crate::audit::browser_from_user_agent),
        }),
        client_app_used: "Browser".to_owned(),
        status: SignInStatus {
            error_code: failure.map_or(0, |(code, _)| code),
            failure_reason: failure.map(|(_, reason)| reason.to_owned()),
        },
        correlation_id: attempt.correlation_id.map(str::to_owned),
        authentication_details: steps
            .iter()
            .enumerate()
            .map(|(i, &(m, proven))| AuthenticationDetail {
                authentication_method: method_name(m),
                authentication_method_detail: match (proven, method_detail(m)) {
                    (Proven::Now, detail) => detail,
                    (Proven::Earlier, None) => Some("Previously satisfied".to_owned()),
                    (Proven::Earlier, Some(mode)) => Some(format!("{mode}; previously satisfied")),
                },
                succeeded: verified,
                authentication_step_date_time: now,
                authentication_step_requirement: Some(
                    if i == 0 {
                        "Primary authentication"
                    } else {
                        "Multi-factor authentication"
                    }
                    .to_owned(),
                ),
            })
            .collect(),
        authentication_methods_used: if verified {
            steps.iter().map(|&(m, _)| method_name(m)).collect()
        } else {
            Vec::new()
        },
        authentication_requirement: Some(
            if crate::authn::methods::acr(&methods) >= crate::authn::Acr::Mfa {
                "multiFactorAuthentication"
            } else {
                "singleFactorAuthentication"
            }
            .to_owned(),
        ),
        conditional_access_status: ca.map_or("notApplied", |c| c.status).to_owned(),
        applied_conditional_access_policies: ca.map(|c| c.applied.clone()).unwrap_or_default(),
    };
    if let Err(e) = state.audit.record_sign_in(&entry).await {
        tracing::error!(error = %e, "could not write the sign-in log");
    }
    let (username, client_id, ip) = (attempt.username, attempt.client_id, attempt.ip);
    match failure {
        None => {
            let method = steps
                .iter()
                .find(|(_, proven)| *proven == Proven::Now)
                .map_or("previously satisfied", |(m, _)| m.display_name());
            // As typed: escaped, so a username cannot forge log lines.
            tracing::info!(user = %username.escape_debug(), client = %client_id, %ip, method, "sign-in succeeded")
        }
        Some((_, reason)) => {
            tracing::info!(user = %username.escape_debug(), client = %client_id, %ip, reason, "sign-in failed")
        }
    }
}
