//! The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6) and client
//! authentication (§2.3).

use super::error::OAuthJsonError;
use crate::app::AppState;
use crate::config::{Client, GRAPH_PERMISSIONS, GrantType};
use crate::directory::User;
use crate::protocol::discovery::paths;
use crate::protocol::dpop::Jkt;
use crate::protocol::params::Params;
use crate::protocol::scope::Scope;
use crate::protocol::{ErrorCode, OAuthError};
use crate::tokens::grants::{Grant, GrantError, Issued, Redemption};
use crate::tokens::{AccessTokenClaims, Confirmation, IdTokenClaims, IdentityType};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Reads a form body into duplicate-free parameters.
pub fn form_params(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Params, OAuthJsonError> {
    let body = body.map_err(|e| {
        let mut err = OAuthJsonError::bad_request(OAuthError::invalid_request(
            "request body is too large or unreadable",
        ));
        err.status = e.status();
        err
    })?;
    if !super::is_form(headers) {
        return Err(OAuthJsonError::bad_request(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        )));
    }
    let text = std::str::from_utf8(&body).map_err(|_| {
        OAuthJsonError::bad_request(OAuthError::invalid_request("the body is not UTF-8"))
    })?;
    Params::parse(text).map_err(OAuthJsonError::bad_request)
}

pub use super::client_auth::authenticate_client;

/// Reads HTTP Basic client credentials (RFC 6749 §2.3.1).
pub(super) fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
    let unescape = |s: &str| -> Option<String> {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[utoipa::path(post, path = "/token", operation_id = "oauth.token", tag = "oauth",
    description = "The token endpoint (RFC 6749 §3.2): redeems a code, rotates a refresh token, \
                   or issues an application token. The client authenticates with HTTP Basic \
                   (`client_secret_basic`), in the body (`client_secret_post`), or not at all \
                   (public clients, with PKCE).",
    request_body(content = crate::openapi::schemas::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Tokens", body = crate::openapi::schemas::TokenResponse)))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::ClientIp(ip): super::ClientIp,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthJsonError> {
    let mut client_id = None;
    let result = token_for(&state, &headers, ip, body, &mut client_id).await;
    // Every refusal is logged for the operator (a wrong secret, an expired
    // code, a redirect mismatch): the client, the error and why — never a
    // secret, a code or a token (descriptions never carry them).
    if let Err(e) = &result {
        tracing::info!(
            client = client_id.as_deref().unwrap_or("(unknown client)"),
            error = e.error.code.as_str(),
            reason = %e.error.description.escape_debug(),
            status = e.status.as_u16(),
            "token request refused"
        );
    }
    result
}

/// The client a token request names, if it is a known one (an arbitrary
/// name from the request is never logged).
async fn named_client(state: &AppState, headers: &HeaderMap, params: &Params) -> Option<String> {
    let claimed = match headers.get(header::AUTHORIZATION).and_then(parse_basic) {
        Some((id, _)) => id,
        None => params.get("client_id")?.to_owned(),
    };
    state
        .clients
        .get(&claimed)
        .await
        .ok()
        .flatten()
        .map(|c| c.client_id.clone())
}

async fn token_for(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    client_id: &mut Option<String>,
) -> Result<Response, OAuthJsonError> {
    let now = state.clock.now();
    let params = form_params(headers, body)?;
    let client = match authenticate_client(state, headers, &params, paths::TOKEN, now).await {
        Ok(c) => c,
        Err(e) => {
            *client_id = named_client(state, headers, &params).await;
            return Err(e);
        }
    };
    *client_id = Some(client.client_id.clone());
    let client = client.as_ref();
    let grant_type = params
        .require("grant_type")
        .map_err(OAuthJsonError::bad_request)?;
    let grant = GrantType::parse(grant_type).ok_or_else(|| {
        OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type {grant_type:?} is not supported"),
        ))
    })?;
    if !client.allows(grant) {
        return Err(OAuthJsonError::bad_request(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client may not use the {} grant", grant.as_str()),
        )));
    }
    // RFC 9449 §5: a proof, when sent or required, is checked before the
    // grant is touched, so a bad proof spends no code or refresh token.
    let dpop = super::dpop::token_request_key(state, headers, client, now).await?;
    let dpop = dpop.as_ref();
    let response = match grant {
        GrantType::AuthorizationCode => {
            authorization_code_bound(state, client, &params, dpop, now).await?
        }
        GrantType::RefreshToken => {
            refresh_token(state, client, &params, headers, ip, dpop, now).await?
        }
        GrantType::ClientCredentials => client_credentials(state, client, &params, dpop, now)?,
        GrantType::DeviceCode => {
            super::device::device_code_grant(state, client, &params, dpop, now).await?
        }
    };
    let mut r = Json(response).into_response();
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

pub(crate) fn grant_error(e: GrantError) -> OAuthJsonError {
    match e {
        GrantError::Store(s) => s.into(),
        GrantError::Random => OAuthJsonError::internal("random", "random source failed", false),
        other => OAuthJsonError::bad_request(OAuthError::invalid_grant(other.to_string())),
    }
}

pub(crate) async fn authorization_code(
    state: &AppState,
    client: &Client,
    params: &Params,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthJsonError> {
    authorization_code_bound(state, client, params, None, now).await
}

/// [`authorization_code`] with the DPoP key the request proved: the access
/// token is bound to it, and so is a public client's grant (RFC 9449 §5).
async fn authorization_code_bound(
    state: &AppState,
    client: &Client,
    params: &Params,
    dpop: Option<&Jkt>,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthJsonError> {
    let code = params
        .require("code")
        .map_err(OAuthJsonError::bad_request)?;
    let redirect_uri = params
        .require("redirect_uri")
        .map_err(OAuthJsonError::bad_request)?;
    let redemption = Redemption {
        client_id: &client.client_id,
        redirect_uri: Some(redirect_uri),
        code_verifier: params.get("code_verifier"),
        // Confidential clients authenticate every refresh, so their refresh
        // tokens need no binding (RFC 9449 §5).
        dpop_jkt: dpop.filter(|_| client.is_public()),
    };
    let (issued, user) = state
        .grants
        .redeem_code_alongside(code, redemption, now, async |authorization| {
            super::bearer::grant_user(state, authorization, now).await
        })
        .await
        .map_err(grant_error)?;
    let user = require_live(state, &issued.grant, user?, now).await?;
    let scope = issued.grant.authorization.scope.clone();
    mint_user_tokens_bound(state, issued, &user, &scope, true, dpop, now)
}

async fn refresh_token(
    state: &AppState,
    client: &Client,
    params: &Params,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    dpop: Option<&Jkt>,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthJsonError> {
    let token = params
        .require("refresh_token")
        .map_err(OAuthJsonError::bad_request)?;
    let issued = state
        .grants
        .rotate_refresh(token, &client.client_id, dpop, client.is_public(), now)
        .await
        .map_err(grant_error)?;
    let user = live_user(state, &issued.grant, now).await?;
    still_allowed(state, &issued.grant, &user, headers, ip, now).await?;
    // RFC 6749 §6: a refresh may narrow the scope, never widen it.
    let original = &issued.grant.authorization.scope;
    let scope = match params.get("scope") {
        None => original.clone(),
        Some(s) => {
            let requested = Scope::parse(s).ok_or_else(|| {
                OAuthJsonError::bad_request(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope has invalid characters",
                ))
            })?;
            if !requested.is_subset(original) {
                return Err(OAuthJsonError::bad_request(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "a refresh cannot add scopes beyond the original grant",
                )));
            }
            requested
        }
    };
    mint_user_tokens_bound(state, issued, &user, &scope, false, dpop, now)
}

/// The grant's user, if still allowed tokens: exists, enabled, and not
/// signed out everywhere since. Otherwise the grant is revoked.
async fn live_user(
    state: &AppState,
    grant: &Grant,
    now: OffsetDateTime,
) -> Result<User, OAuthJsonError> {
    let user = super::bearer::grant_user(state, &grant.authorization, now).await?;
    require_live(state, grant, user, now).await
}

/// The user [`super::bearer::grant_user`] found for `grant`, or — when it
/// found none — the grant revoked and `invalid_grant`.
pub(crate) async fn require_live(
    state: &AppState,
    grant: &Grant,
    user: Option<User>,
    now: OffsetDateTime,
) -> Result<User, OAuthJsonError> {
    match user {
        Some(u) => Ok(u),
        None => {
            state
                .grants
                .revoke(grant.id, now)
                .await
                .map_err(grant_error)?;
            Err(OAuthJsonError::bad_request(OAuthError::invalid_grant(
                "the user's sessions were revoked, the account is disabled, or the Temporary Access Pass used to sign in has ended",
            )))
        }
    }
}

/// Conditional access again, as at sign-in: a policy added, a per-user MFA
/// requirement or a sign-in frequency since then can end a grant at its next
/// refresh. A block or an unmet requirement revokes the grant and answers
/// `invalid_grant`, saying why; the user signs in again interactively.
async fn still_allowed(
    state: &AppState,
    grant: &Grant,
    user: &User,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    now: OffsetDateTime,
) -> Result<(), OAuthJsonError> {
    use crate::policy::conditional_access::Outcome;
    let a = &grant.authorization;
    let target = super::gate::GateTarget::App {
        client_id: &a.client_id,
        acr_values: &[],
        essential_acr: None,
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let decision = super::gate::decide(
        state,
        user,
        super::gate::Proof {
            methods: &a.methods,
            auth_time: a.auth_time,
            passkey: a.passkey,
        },
        &target,
        Some(ip),
        user_agent,
        now,
    )
    .await
    .map_err(|e| match e {
        super::gate::GateError::Store(s) => s.into(),
        super::gate::GateError::Directory(d) => {
            OAuthJsonError::internal(d.code(), &d.to_string(), false)
        }
    })?;
    let why = match decision.outcome {
        Outcome::Allow => return Ok(()),
        Outcome::Block(blocked) => format!(
            "access is blocked by the conditional access policy {}",
            super::gate::policy_names(blocked.iter().map(|b| b.display_name.as_str()))
        ),
        Outcome::RequireStrength(unmet) => format!(
            "the conditional access policy {} now requires more than this sign-in proved; sign in again",
            super::gate::policy_names(unmet.iter().map(|u| u.display_name.as_str()))
        ),
    };
    state
        .grants
        .revoke(grant.id, now)
        .await
        .map_err(grant_error)?;
    Err(OAuthJsonError::bad_request(OAuthError::invalid_grant(why)))
}

fn graph_scopes(scope: &Scope) -> Vec<&str> {
    scope
        .iter()
        .filter(|s| GRAPH_PERMISSIONS.contains(s))
        .collect()
}

/// Mints the tokens of a user grant: the access token, an ID token when
/// `openid` was granted (with the nonce when `with_nonce`), the refresh
/// token when issued; the access token is bound to `dpop` when given
/// (`cnf.jkt`, `token_type: DPoP`; RFC 9449 §5, §6.1).
#[allow(clippy::too_many_arguments)]
pub(crate) fn mint_user_tokens_bound(
    state: &AppState,
    issued: Issued,
    user: &User,
    scope: &Scope,
    with_nonce: bool,
    dpop: Option<&Jkt>,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthJsonError> {
    let grant = &issued.grant;
    let a = &grant.authorization;
    let iat = now.unix_timestamp();
    let mut exp = (now + state.settings.tokens.access_token).unix_timestamp();
    exp = exp.min(grant.expires_at.max(iat + 1));
    if let Some(limit) = a.not_after.filter(|_| !grant.offline) {
        exp = exp.min(limit);
    }
    let amr: Vec<String> = crate::authn::methods::amr(&a.methods)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let acr = crate::authn::methods::acr(&a.methods).as_str().to_owned();
    let graph = graph_scopes(scope);
    let jti = crate::ids::random_uuid()
        .map_err(|_| OAuthJsonError::internal("random", "random source failed", false))?
        .simple()
        .to_string();
    let access = AccessTokenClaims {
        iss: state.settings.issuer.clone(),
        sub: user.id.to_string(),
        aud: if graph.is_empty() {
            a.client_id.clone()
        } else {
            state.settings.graph_audience()
        },
        exp,
        iat,
        jti,
        client_id: a.client_id.clone(),
        scope: scope.to_string(),
        idtyp: IdentityType::User,
        auth_time: Some(a.auth_time),
        acr: Some(acr.clone()),
        amr: Some(amr.clone()),
        sid: Some(a.sid.clone()),
        scp: (!graph.is_empty()).then(|| graph.join(" ")),
        roles: None,
        grant: Some(grant.id.to_string()),
        cnf: confirmation(dpop),
    };
    let access_token = state
        .tokens
        .sign_access_token(&access)
        .map_err(signing_error)?;
    let id_token = if scope.contains("openid") {
        let id_exp = (now + state.settings.tokens.id_token).unix_timestamp();
        let claims = IdTokenClaims {
            iss: state.settings.issuer.clone(),
            sub: user.id.to_string(),
            aud: a.client_id.clone(),
            exp: id_exp,
            iat,
            auth_time: a.auth_time,
            nonce: if with_nonce { a.nonce.clone() } else { None },
            amr,
            acr,
            sid: a.sid.clone(),
            at_hash: Some(state.tokens.at_hash(&access_token)),
            name: scope.contains("profile").then(|| user.display_name.clone()),
            preferred_username: scope
                .contains("profile")
                .then(|| user.user_principal_name.clone()),
            email: if scope.contains("email") {
                user.mail.clone()
            } else {
                None
            },
        };
        Some(state.tokens.sign_id_token(&claims).map_err(signing_error)?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: token_type(dpop),
        expires_in: exp - iat,
        scope: scope.to_string(),
        id_token,
        refresh_token: issued.refresh_token.map(|t| t.expose().to_owned()),
    })
}

fn confirmation(dpop: Option<&Jkt>) -> Option<Confirmation> {
    dpop.map(|jkt| Confirmation { jkt: jkt.clone() })
}

/// RFC 9449 §5: a DPoP-bound access token is of type `DPoP`.
fn token_type(dpop: Option<&Jkt>) -> &'static str {
    if dpop.is_some() { "DPoP" } else { "Bearer" }
}

fn signing_error(e: crate::tokens::TokenError) -> OAuthJsonError {
    OAuthJsonError::internal(e.code(), &e.to_string(), false)
}

/// RFC 6749 §4.4: the client acts for itself. With no scope, or the Graph
/// `.default` scope, the token is for the Graph API and carries the client's
/// application permissions as `roles`.
fn client_credentials(
    state: &AppState,
    client: &Client,
    params: &Params,
    dpop: Option<&Jkt>,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthJsonError> {
    let default_scope = format!("{}/.default", state.settings.graph_audience());
    if let Some(scope) = params.get("scope") {
        let requested = Scope::parse(scope).unwrap_or_default();
        if requested.iter().any(|s| s != default_scope) || requested.is_empty() {
            return Err(OAuthJsonError::bad_request(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("client_credentials accepts no scope or {default_scope}"),
            )));
        }
    }
    let iat = now.unix_timestamp();
    let exp = (now + state.settings.tokens.access_token).unix_timestamp();
    let claims = AccessTokenClaims {
        iss: state.settings.issuer.clone(),
        sub: client.client_id.clone(),
        aud: state.settings.graph_audience(),
        exp,
        iat,
        jti: crate::ids::random_uuid()
            .map_err(|_| OAuthJsonError::internal("random", "random source failed", false))?
            .simple()
            .to_string(),
        client_id: client.client_id.clone(),
        scope: default_scope.clone(),
        idtyp: IdentityType::App,
        auth_time: None,
        acr: None,
        amr: None,
        sid: None,
        scp: None,
        roles: Some(client.app_permissions.iter().cloned().collect()),
        grant: None,
        cnf: confirmation(dpop),
    };
    Ok(TokenResponse {
        access_token: state
            .tokens
            .sign_access_token(&claims)
            .map_err(signing_error)?,
        token_type: token_type(dpop),
        expires_in: exp - iat,
        scope: default_scope,
        id_token: None,
        refresh_token: None,
    })
}
