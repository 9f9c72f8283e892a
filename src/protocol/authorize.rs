//! The authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1).
//!
//! Validation order matters for security: until `client_id` and the exact
//! `redirect_uri` are established, an error must be *shown* to the user and
//! never redirected (RFC 6749 §4.1.2.1), or Gatepass would become an open
//! redirector. After that, errors go back to the client with `state`.

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::pkce;
use super::scope::Scope;
use crate::config::{Client, GrantType};
use serde::{Deserialize, Serialize};

/// Longest `state`/`nonce` we keep; they are echoed and stored.
const MAX_ECHOED_LEN: usize = 2048;

/// Longest value of any authorization parameter: a request is stored with
/// its sign-in flow before anyone signs in, so every part of it is bounded.
pub const MAX_PARAM_LEN: usize = 2048;
/// `claims` is JSON and may be longer.
pub const MAX_CLAIMS_LEN: usize = 4096;
/// Longest parameter name.
const MAX_PARAM_NAME_LEN: usize = 64;
/// Most parameters in one authorization request.
pub const MAX_PARAMS: usize = 40;
/// Longest `login_hint` in bytes: a username (`userPrincipalName`) is at
/// most this (`directory::validate_upn`).
pub const MAX_LOGIN_HINT_LEN: usize = 113;
/// Most space-separated `acr_values`.
const MAX_ACR_VALUES: usize = 8;

/// Scopes with a meaning in OpenID Connect.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The `prompt` values we honour (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    /// Clients are first-party: there is no consent page, so `consent` and
    /// `select_account` are satisfied by signing in.
    pub consent: bool,
    pub select_account: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Scope,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    /// Seconds; the session's `auth_time` must be at most this old.
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// Voluntary `acr` values, most preferred first.
    pub acr_values: Vec<String>,
    /// Acceptable `acr` values when the `claims` parameter marks `acr`
    /// essential; the request fails rather than give a weaker one.
    pub essential_acr: Option<Vec<String>>,
}

impl AuthorizationRequest {
    /// Whether an ID token will be issued.
    pub fn is_openid(&self) -> bool {
        self.scope.contains("openid")
    }
}

/// Why an authorization request was refused, and how to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeRejection {
    /// Before the redirect URI was validated: render an error page.
    Show(OAuthError),
    /// After: redirect to the client with `error`, `error_description`, `state`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Validates `params` against the registered `client` (looked up by the
/// caller from `client_id`; `None` when unknown).
pub fn validate(
    params: &Params,
    client: Option<&Client>,
) -> Result<AuthorizationRequest, AuthorizeRejection> {
    let show = |m: &str| AuthorizeRejection::Show(OAuthError::invalid_request(m));
    let client_id = params
        .get("client_id")
        .ok_or_else(|| show("missing parameter `client_id`"))?;
    let client = client.ok_or_else(|| {
        AuthorizeRejection::Show(OAuthError::new(
            ErrorCode::InvalidClient,
            "unknown client_id: this application is not registered with Gatepass",
        ))
    })?;
    if client.client_id != client_id {
        return Err(show("client_id does not match the registered client"));
    }
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| show("missing parameter `redirect_uri` (OpenID Connect requires it)"))?;
    // Exact string match (RFC 9700 §4.1.3): no prefix, wildcard or
    // normalisation, which have each been the root of token-theft bugs.
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(show(
            "redirect_uri is not registered for this client (exact match required)",
        ));
    }
    let state = params.get("state").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > MAX_ECHOED_LEN) {
        // Too long to echo back safely; show rather than redirect a huge URL.
        return Err(show("state is too long"));
    }
    let redirect = |error: OAuthError| AuthorizeRejection::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
    };
    let err = |code: ErrorCode, m: &str| redirect(OAuthError::new(code, m));
    // Every parameter is bounded before any of it is kept (a request is
    // stored with its sign-in flow before anyone signs in). The client and
    // its exact redirect URI are established above, so this redirects.
    if params.len() > MAX_PARAMS {
        return Err(err(
            ErrorCode::InvalidRequest,
            &format!("too many parameters (at most {MAX_PARAMS})"),
        ));
    }
    for (name, value) in params.iter() {
        let max = if name == "claims" {
            MAX_CLAIMS_LEN
        } else {
            MAX_PARAM_LEN
        };
        if value.len() > max || name.len() > MAX_PARAM_NAME_LEN {
            return Err(err(
                ErrorCode::InvalidRequest,
                &format!(
                    "parameter `{}` is too long (at most {max} bytes)",
                    name.chars().take(MAX_PARAM_NAME_LEN).collect::<String>()
                ),
            ));
        }
    }

    if params.contains("request") {
        return Err(err(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.contains("request_uri") {
        return Err(err(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    if params.contains("registration") {
        return Err(err(
            ErrorCode::RegistrationNotSupported,
            "registration is not supported",
        ));
    }
    match params.get("response_type") {
        None => {
            return Err(err(
                ErrorCode::InvalidRequest,
                "missing parameter `response_type`",
            ));
        }
        Some("code") => {}
        Some(_) => {
            return Err(err(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if let Some(mode) = params.get("response_mode") {
        if mode != "query" {
            return Err(err(
                ErrorCode::InvalidRequest,
                "only response_mode=query is supported",
            ));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(err(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        ));
    }

    let requested = params
        .get("scope")
        .map(Scope::parse)
        .unwrap_or_else(|| Some(Scope::default()))
        .ok_or_else(|| err(ErrorCode::InvalidScope, "scope has invalid characters"))?;
    let mut granted = Vec::new();
    for token in requested.iter() {
        if token == "offline_access" && !client.allows(GrantType::RefreshToken) {
            // OpenID Connect Core §11: the OP may ignore offline_access.
            continue;
        }
        if OIDC_SCOPES.contains(&token) || client.delegated_permissions.contains(token) {
            granted.push(token);
        } else {
            return Err(redirect(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope `{token}` is not available to this client"),
            )));
        }
    }
    let scope = Scope::from_tokens(granted);

    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) if client.is_public() => {
            return Err(err(
                ErrorCode::InvalidRequest,
                "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
            ));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err(err(
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(_), None) | (Some(_), Some("plain")) => {
            return Err(err(
                ErrorCode::InvalidRequest,
                "only code_challenge_method=S256 is supported",
            ));
        }
        (Some(c), Some("S256")) => {
            if !pkce::is_valid_verifier_or_challenge(c) {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "code_challenge is malformed (RFC 7636 §4.2)",
                ));
            }
            Some(c.to_owned())
        }
        (Some(_), Some(_)) => {
            return Err(err(
                ErrorCode::InvalidRequest,
                "unsupported code_challenge_method; use S256",
            ));
        }
    };

    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHOED_LEN) {
        return Err(err(ErrorCode::InvalidRequest, "nonce is too long"));
    }
    let login_hint = params.get("login_hint").map(str::to_owned);
    if login_hint
        .as_ref()
        .is_some_and(|h| h.len() > MAX_LOGIN_HINT_LEN || h.chars().any(char::is_control))
    {
        return Err(err(
            ErrorCode::InvalidRequest,
            "login_hint is not a username: at most 113 bytes, no control characters",
        ));
    }

    let mut prompt = Prompt::default();
    if let Some(p) = params.get("prompt") {
        for value in p.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => prompt.select_account = true,
                _ => return Err(err(ErrorCode::InvalidRequest, "unknown prompt value")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent || prompt.select_account) {
            return Err(err(
                ErrorCode::InvalidRequest,
                "prompt=none cannot be combined with other values",
            ));
        }
    }

    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            err(
                ErrorCode::InvalidRequest,
                "max_age must be a non-negative integer",
            )
        })?),
    };

    let acr_values: Vec<String> = params
        .get("acr_values")
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if acr_values.len() > MAX_ACR_VALUES {
        return Err(err(
            ErrorCode::InvalidRequest,
            "too many acr_values (at most 8)",
        ));
    }
    let essential_acr = match params.get("claims") {
        None => None,
        Some(c) => parse_essential_acr(c).map_err(|m| err(ErrorCode::InvalidRequest, &m))?,
    };

    Ok(AuthorizationRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
        acr_values,
        essential_acr,
    })
}

/// Reads an essential `acr` request from the `claims` parameter
/// (OpenID Connect Core §5.5.1.1), in the ID token or userinfo member.
fn parse_essential_acr(claims: &str) -> Result<Option<Vec<String>>, String> {
    let value: serde_json::Value =
        serde_json::from_str(claims).map_err(|_| "claims is not valid JSON".to_owned())?;
    let Some(obj) = value.as_object() else {
        return Err("claims must be a JSON object".to_owned());
    };
    let mut acceptable: Option<Vec<String>> = None;
    for member in ["id_token", "userinfo"] {
        let Some(acr) = obj.get(member).and_then(|m| m.get("acr")) else {
            continue;
        };
        if acr.get("essential").and_then(serde_json::Value::as_bool) != Some(true) {
            continue;
        }
        let mut values = Vec::new();
        if let Some(v) = acr.get("value").and_then(serde_json::Value::as_str) {
            values.push(v.to_owned());
        }
        if let Some(vs) = acr.get("values").and_then(serde_json::Value::as_array) {
            values.extend(vs.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
        if values.is_empty() {
            return Err("an essential acr claim must name value or values".to_owned());
        }
        acceptable.get_or_insert_with(Vec::new).extend(values);
    }
    Ok(acceptable)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::collections::BTreeSet;

    fn client(public: bool) -> Client {
        Client {
            client_id: "app".into(),
            display_name: "App".into(),
            secret_digest: (!public).then(|| crate::ids::SecretDigest::of("secret")),
            redirect_uris: vec!["https://rp.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: [GrantType::AuthorizationCode].into_iter().collect(),
            app_permissions: BTreeSet::new(),
            delegated_permissions: ["User.Read".to_owned()].into_iter().collect(),
            introspect_all_tokens: false,
            token_endpoint_auth_method: None,
            jwks: None,
            require_pushed_authorization_requests: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            dpop_bound_access_tokens: false,
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn run(q: &str, public: bool) -> Result<AuthorizationRequest, AuthorizeRejection> {
        let c = client(public);
        validate(&Params::parse(q).unwrap(), Some(&c))
    }

    fn redirected(q: &str, public: bool) -> ErrorCode {
        match run(q, public) {
            Err(AuthorizeRejection::Redirect { error, state, .. }) => {
                assert_eq!(state.as_deref(), Some("s"));
                error.code
            }
            other => panic!("expected redirect, got {other:?}"),
        }
    }

    const BASE: &str = "client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&state=s";

    #[test]
    fn authorize_valid_request_is_accepted() {
        let r = run(&format!("{BASE}&response_type=code&scope=openid%20offline_access%20User.Read&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256&max_age=0&prompt=login"), true).unwrap();
        // offline_access is dropped: the client may not refresh.
        assert_eq!(r.scope.to_string(), "User.Read openid");
        assert_eq!(r.max_age, Some(0));
        assert!(r.prompt.login);
    }

    #[test]
    fn authorize_unvalidated_redirect_is_shown_not_redirected() {
        for q in [
            "redirect_uri=https%3A%2F%2Frp.example%2Fcb&response_type=code",
            "client_id=app&response_type=code",
            "client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&response_type=code",
            "client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb%2F&response_type=code",
        ] {
            assert!(
                matches!(run(q, false), Err(AuthorizeRejection::Show(_))),
                "{q}"
            );
        }
        let unknown = validate(&Params::parse("client_id=x&redirect_uri=y").unwrap(), None);
        assert!(
            matches!(unknown, Err(AuthorizeRejection::Show(e)) if e.code == ErrorCode::InvalidClient)
        );
    }

    #[test]
    fn authorize_errors_after_redirect_validation_are_redirected() {
        let cases = [
            (BASE.to_owned(), ErrorCode::InvalidRequest),
            (
                format!("{BASE}&response_type=token"),
                ErrorCode::UnsupportedResponseType,
            ),
            (
                format!("{BASE}&response_type=code&scope=admin"),
                ErrorCode::InvalidScope,
            ),
            (
                format!("{BASE}&response_type=code&code_challenge={CHALLENGE}"),
                ErrorCode::InvalidRequest,
            ),
            (
                format!(
                    "{BASE}&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=plain"
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                format!(
                    "{BASE}&response_type=code&code_challenge=short&code_challenge_method=S256"
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                format!("{BASE}&response_type=code&prompt=none%20login"),
                ErrorCode::InvalidRequest,
            ),
            (
                format!("{BASE}&response_type=code&max_age=-1"),
                ErrorCode::InvalidRequest,
            ),
            (
                format!("{BASE}&response_type=code&request=x"),
                ErrorCode::RequestNotSupported,
            ),
            (
                format!("{BASE}&response_type=code&claims=nope"),
                ErrorCode::InvalidRequest,
            ),
        ];
        for (q, code) in cases {
            assert_eq!(redirected(&q, false), code, "{q}");
        }
        assert_eq!(
            redirected(&format!("{BASE}&response_type=code"), true),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn authorize_essential_acr_is_parsed_from_claims() {
        let claims =
            r#"{"id_token":{"acr":{"essential":true,"values":["mfa","phishing_resistant_mfa"]}}}"#;
        let q = format!(
            "{BASE}&response_type=code&claims={}",
            url::form_urlencoded::byte_serialize(claims.as_bytes()).collect::<String>()
        );
        let r = run(&q, false).unwrap();
        assert_eq!(
            r.essential_acr,
            Some(vec!["mfa".to_owned(), "phishing_resistant_mfa".to_owned()])
        );
    }
}
