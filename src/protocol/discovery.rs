//! OpenID Provider metadata (OpenID Connect Discovery 1.0 §3, RFC 8414).
//!
//! Every URL is derived from the configured issuer, never from the request's
//! Host header, so any number of instances behind a load balancer publish
//! identical metadata.

use serde_json::{Value, json};

/// Endpoint paths relative to the issuer.
pub mod paths {
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    pub const AUTHORIZE: &str = "/authorize";
    pub const TOKEN: &str = "/token";
    pub const USERINFO: &str = "/userinfo";
    pub const JWKS: &str = "/jwks";
    pub const REVOKE: &str = "/revoke";
    pub const INTROSPECT: &str = "/introspect";
    pub const END_SESSION: &str = "/logout";
    /// RFC 9126: pushed authorization requests.
    pub const PUSHED_AUTHORIZATION: &str = "/par";
    /// RFC 8628 §3.1.
    pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";
    /// RFC 8628 §3.2 `verification_uri`: where the user enters the code.
    pub const DEVICE: &str = "/device";
    /// RFC 7591 §3: the client registration endpoint.
    pub const REGISTER: &str = "/register";
    /// RFC 7592 §1: `registration_client_uri` is this plus `/{client_id}`.
    pub const REGISTERED_CLIENT: &str = "/register/{client_id}";
}

/// The four `acr` values Gatepass issues, weakest first (DESIGN §2.4).
pub const ACR_VALUES: [&str; 4] = [
    "single_factor",
    "mfa",
    "passwordless_mfa",
    "phishing_resistant_mfa",
];

pub const CLIENT_AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// Introspection needs a confidential client: no `none`.
pub const CONFIDENTIAL_CLIENT_AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// Builds the provider metadata document.
///
/// Without passkeys (an IP-address issuer) it offers no `acr` that only a
/// passkey can reach (`phishing_resistant_mfa`).
pub fn provider_metadata(issuer: &str, signing_alg: &str, passkeys: bool) -> Value {
    let url = |p: &str| format!("{issuer}{p}");
    let acr_values: Vec<&str> = ACR_VALUES
        .iter()
        .copied()
        .filter(|a| passkeys || *a != "phishing_resistant_mfa")
        .collect();
    json!({
        "issuer": issuer,
        "authorization_endpoint": url(paths::AUTHORIZE),
        "token_endpoint": url(paths::TOKEN),
        "userinfo_endpoint": url(paths::USERINFO),
        "jwks_uri": url(paths::JWKS),
        "revocation_endpoint": url(paths::REVOKE),
        "introspection_endpoint": url(paths::INTROSPECT),
        "end_session_endpoint": url(paths::END_SESSION),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [signing_alg],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": super::client_assertion::SIGNING_ALGS,
        "revocation_endpoint_auth_signing_alg_values_supported": super::client_assertion::SIGNING_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": super::client_assertion::SIGNING_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": super::dpop::SIGNING_ALGS,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": acr_values,
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
            "at_hash", "name", "preferred_username", "email", "email_verified"
        ],
    })
}

/// OpenID Connect Back-Channel Logout 1.0 §2.1: advertised only while it
/// is on (`[backchannel_logout] enabled`); logout tokens always carry `sid`.
pub fn backchannel_logout(doc: &mut Value, enabled: bool) {
    if let Some(map) = doc.as_object_mut() {
        if enabled {
            map.insert("backchannel_logout_supported".into(), Value::Bool(true));
            map.insert(
                "backchannel_logout_session_supported".into(),
                Value::Bool(true),
            );
        }
    }
}

/// The device authorization grant's grant type (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Advertises the device authorization grant (RFC 8628 §4) in `doc`: the
/// endpoint and the grant type. Called only when some client may use it,
/// so discovery never offers a grant no client can use.
pub fn advertise_device_flow(doc: &mut Value, issuer: &str) {
    if let Some(map) = doc.as_object_mut() {
        map.insert(
            "device_authorization_endpoint".to_owned(),
            Value::String(format!("{issuer}{}", paths::DEVICE_AUTHORIZATION)),
        );
        if let Some(Value::Array(grants)) = map.get_mut("grant_types_supported") {
            grants.push(Value::String(DEVICE_CODE_GRANT.to_owned()));
        }
    }
}

/// Advertises dynamic client registration (RFC 8414 §2
/// `registration_endpoint`). Called only while registration is on.
pub fn advertise_registration(doc: &mut Value, issuer: &str) {
    if let Some(map) = doc.as_object_mut() {
        map.insert(
            "registration_endpoint".to_owned(),
            Value::String(format!("{issuer}{}", paths::REGISTER)),
        );
    }
}
