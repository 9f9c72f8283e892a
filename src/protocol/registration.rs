//! Dynamic client registration metadata (RFC 7591 §2, RFC 7592 §2.2):
//! what a client may say about itself, read and checked into one
//! normalized [`ClientMetadata`] that is stored, answered, and turned into
//! a [`Client`] by the same rules as the configuration's clients.
//!
//! Pure: no I/O, no HTTP. The web layer authenticates the caller and
//! stores the result ([`crate::clients`]).
//!
//! Rules beyond the configuration's (a configured client is trusted; a
//! registered one is whoever holds an initial access token):
//! * redirect URIs are https, or http on a loopback host only (RFC 8252
//!   §7.3), absolute, without a fragment, and matched exactly;
//! * `grant_types` and `response_types` agree: `["code"]` exactly when
//!   `authorization_code` is listed (RFC 7591 §2.1); `refresh_token` only
//!   beside a grant that issues refresh tokens;
//! * privileges are never registrable: Graph `app_permissions` and
//!   `delegated_permissions`, and `introspect_all_tokens`, are refused by
//!   name rather than ignored, so a client that asks for them learns at
//!   once that it did not get them. Other unknown metadata is ignored, as
//!   RFC 7591 §2 says.

use crate::config::{Client, GrantType, RegistrableClient};
use crate::ids::SecretDigest;
use crate::protocol::ErrorCode;
use crate::protocol::client_assertion::ClientAuthMethod;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most redirect URIs (and post-logout redirect URIs) one client may hold.
pub const MAX_URIS: usize = 20;
/// Longest URI accepted in metadata.
pub const MAX_URI_LEN: usize = 2048;
/// Longest `client_name`.
pub const MAX_NAME_LEN: usize = 200;

/// Metadata that grants privileges: a self-registered client must never
/// hold directory access or see other clients' tokens.
const PRIVILEGED: [&str; 3] = [
    "app_permissions",
    "delegated_permissions",
    "introspect_all_tokens",
];

/// Why metadata was refused (RFC 7591 §3.2.2). The description names the
/// field; it never carries a secret (metadata holds none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A `redirect_uris` value is unusable.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// Any other field is unusable, or fields contradict each other.
    #[error("{0}")]
    InvalidClientMetadata(String),
}

impl MetadataError {
    /// A stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            MetadataError::InvalidRedirectUri(_) => "registration.invalid_redirect_uri",
            MetadataError::InvalidClientMetadata(_) => "registration.invalid_client_metadata",
        }
    }

    /// The RFC 7591 §3.2.2 error code.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            MetadataError::InvalidRedirectUri(_) => ErrorCode::InvalidRedirectUri,
            MetadataError::InvalidClientMetadata(_) => ErrorCode::InvalidClientMetadata,
        }
    }
}

/// Unicode format characters that make a name read as something else:
/// bidirectional controls, zero-width characters, the soft hyphen and the
/// byte-order mark (the confirmation pages show `client_name` to users).
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

fn metadata(message: impl Into<String>) -> MetadataError {
    MetadataError::InvalidClientMetadata(message.into())
}

/// A registered client's metadata, normalized: defaults filled in, so what
/// is stored is what is answered (RFC 7591 §3.2.1: the response holds
/// every registered field, defaults included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub dpop_bound_access_tokens: bool,
    pub require_pushed_authorization_requests: bool,
}

impl ClientMetadata {
    /// Reads and checks a registration (or RFC 7592 update) request's
    /// metadata. `backchannel_logout` says whether back-channel logout is
    /// on (else a `backchannel_logout_uri` is refused, as in the config).
    pub fn parse(
        body: &Map<String, Value>,
        backchannel_logout: bool,
    ) -> Result<ClientMetadata, MetadataError> {
        if let Some(field) = PRIVILEGED.iter().find(|f| body.contains_key(**f)) {
            return Err(metadata(format!(
                "{field} cannot be registered: a registered client gets no Graph permissions and \
                 no access to other clients' tokens; ask an administrator to configure such a client"
            )));
        }
        let grant_types = match strings(body, "grant_types")? {
            // RFC 7591 §2: the default is authorization_code.
            None => vec![GrantType::AuthorizationCode.as_str().to_owned()],
            Some(g) => g,
        };
        let mut grants = Vec::with_capacity(grant_types.len());
        for g in &grant_types {
            let grant = GrantType::parse(g).ok_or_else(|| {
                metadata(format!(
                    "grant_types: {g:?} is not supported; supported: {}",
                    GrantType::ALL.map(GrantType::as_str).join(", ")
                ))
            })?;
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        if grants.is_empty() {
            return Err(metadata("grant_types must list at least one grant type"));
        }
        let code_flow = grants.contains(&GrantType::AuthorizationCode);
        let response_types = match strings(body, "response_types")? {
            // Defaulted from the grants, so a client_credentials client
            // need not say `response_types: []`.
            None if code_flow => vec!["code".to_owned()],
            None => Vec::new(),
            Some(r) => r,
        };
        if let Some(other) = response_types.iter().find(|r| r.as_str() != "code") {
            return Err(metadata(format!(
                "response_types: {other:?} is not supported; the only response type is \"code\""
            )));
        }
        match (code_flow, response_types.is_empty()) {
            (true, true) => {
                return Err(metadata(
                    "grant_types lists authorization_code, so response_types must be [\"code\"]",
                ));
            }
            (false, false) => {
                return Err(metadata(
                    "response_types lists \"code\", so grant_types must include authorization_code",
                ));
            }
            _ => {}
        }
        if grants.contains(&GrantType::RefreshToken)
            && !grants.contains(&GrantType::AuthorizationCode)
            && !grants.contains(&GrantType::DeviceCode)
        {
            return Err(metadata(
                "grant_types lists refresh_token, which needs authorization_code or the device \
                 code grant to issue refresh tokens",
            ));
        }
        let redirect_uris = strings(body, "redirect_uris")?.unwrap_or_default();
        for uri in &redirect_uris {
            check_redirect_uri(uri)
                .map_err(|m| MetadataError::InvalidRedirectUri(format!("redirect_uris: {m}")))?;
        }
        if redirect_uris.len() > MAX_URIS {
            return Err(MetadataError::InvalidRedirectUri(format!(
                "redirect_uris: at most {MAX_URIS}"
            )));
        }
        if code_flow && redirect_uris.is_empty() {
            return Err(MetadataError::InvalidRedirectUri(
                "redirect_uris: authorization_code needs at least one redirect URI".to_owned(),
            ));
        }
        let post_logout_redirect_uris =
            strings(body, "post_logout_redirect_uris")?.unwrap_or_default();
        if post_logout_redirect_uris.len() > MAX_URIS {
            return Err(metadata(format!(
                "post_logout_redirect_uris: at most {MAX_URIS}"
            )));
        }
        for uri in &post_logout_redirect_uris {
            check_redirect_uri(uri)
                .map_err(|m| metadata(format!("post_logout_redirect_uris: {m}")))?;
        }
        // RFC 7591 §2: the default is client_secret_basic.
        let method = match string(body, "token_endpoint_auth_method")? {
            None => ClientAuthMethod::ClientSecretBasic,
            Some(m) => ClientAuthMethod::parse(&m).ok_or_else(|| {
                metadata(format!(
                    "token_endpoint_auth_method: {m:?} is not supported; supported: {}",
                    ClientAuthMethod::ALL
                        .map(ClientAuthMethod::as_str)
                        .join(", ")
                ))
            })?,
        };
        if method == ClientAuthMethod::None && grants.contains(&GrantType::ClientCredentials) {
            return Err(metadata(
                "grant_types lists client_credentials, which needs a confidential client: \
                 token_endpoint_auth_method client_secret_basic, client_secret_post or private_key_jwt, not none",
            ));
        }
        let client_name = string(body, "client_name")?;
        if let Some(name) = &client_name {
            if name.trim().is_empty()
                || name.chars().count() > MAX_NAME_LEN
                || name.chars().any(|c| c.is_control() || is_format(c))
            {
                return Err(metadata(format!(
                    "client_name must be 1–{MAX_NAME_LEN} printable characters \
                     (no control, bidirectional or zero-width characters)"
                )));
            }
        }
        let jwks = match body.get("jwks") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => {
                return Err(metadata(
                    "jwks must be a JWK Set object ({\"keys\": [...]})",
                ));
            }
        };
        let jwks_uri = string(body, "jwks_uri")?;
        if jwks_uri.as_ref().is_some_and(|u| u.len() > MAX_URI_LEN) {
            return Err(metadata(format!(
                "jwks_uri: at most {MAX_URI_LEN} characters"
            )));
        }
        let backchannel_logout_uri = string(body, "backchannel_logout_uri")?;
        if backchannel_logout_uri.is_some() && !backchannel_logout {
            return Err(metadata(
                "backchannel_logout_uri: back-channel logout is off on this server",
            ));
        }
        if backchannel_logout_uri
            .as_ref()
            .is_some_and(|u| u.len() > MAX_URI_LEN)
        {
            return Err(metadata(format!(
                "backchannel_logout_uri: at most {MAX_URI_LEN} characters"
            )));
        }
        let parsed = ClientMetadata {
            redirect_uris,
            post_logout_redirect_uris,
            grant_types: grants.iter().map(|g| g.as_str().to_owned()).collect(),
            response_types,
            token_endpoint_auth_method: method.as_str().to_owned(),
            client_name,
            jwks,
            jwks_uri,
            backchannel_logout_uri,
            backchannel_logout_session_required: flag(body, "backchannel_logout_session_required")?,
            dpop_bound_access_tokens: flag(body, "dpop_bound_access_tokens")?,
            require_pushed_authorization_requests: flag(
                body,
                "require_pushed_authorization_requests",
            )?,
        };
        // The configuration's rules for the rest (secret and method agree,
        // keys only and always for private_key_jwt, client_credentials
        // needs a confidential client, the back-channel URI): they ask only
        // whether a secret exists, so a placeholder digest stands in for
        // the one issued later.
        let placeholder = parsed.has_secret().then(|| SecretDigest::of(""));
        parsed.to_client("registration-check", placeholder)?;
        Ok(parsed)
    }

    /// The token endpoint authentication method.
    pub fn auth_method(&self) -> Option<ClientAuthMethod> {
        ClientAuthMethod::parse(&self.token_endpoint_auth_method)
    }

    /// Whether the client authenticates with a secret Gatepass issues
    /// (`client_secret_basic` or `client_secret_post`).
    pub fn has_secret(&self) -> bool {
        matches!(
            self.auth_method(),
            Some(ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost)
        )
    }

    /// The client these metadata describe, with the configuration's rules
    /// (so a registered client behaves exactly like a configured one).
    pub fn to_client(
        &self,
        client_id: &str,
        secret_digest: Option<SecretDigest>,
    ) -> Result<Client, MetadataError> {
        crate::config::registered_client(
            RegistrableClient {
                client_id: client_id.to_owned(),
                display_name: self.client_name.clone(),
                redirect_uris: self.redirect_uris.clone(),
                post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
                grant_types: self.grant_types.clone(),
                token_endpoint_auth_method: self.token_endpoint_auth_method.clone(),
                jwks: self.jwks.clone(),
                jwks_uri: self.jwks_uri.clone(),
                require_pushed_authorization_requests: self.require_pushed_authorization_requests,
                backchannel_logout_uri: self.backchannel_logout_uri.clone(),
                backchannel_logout_session_required: self.backchannel_logout_session_required,
                dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            },
            secret_digest,
        )
        .map_err(|e| match e {
            crate::config::ConfigError::Invalid { key, message } if key == "redirect_uris" => {
                MetadataError::InvalidRedirectUri(format!("{key}: {message}"))
            }
            crate::config::ConfigError::Invalid { key, message } => {
                metadata(format!("{key}: {message}"))
            }
            other => metadata(other.to_string()),
        })
    }
}

/// A redirect URI a registered client may use: absolute, https or http on
/// a loopback host (RFC 8252 §7.3, §8.3), no fragment (RFC 6749 §3.1.2),
/// no user information, bounded.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI_LEN {
        return Err(format!("a URI is longer than {MAX_URI_LEN} characters"));
    }
    let url = url::Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "{uri:?} must not have a fragment (RFC 6749 §3.1.2)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{uri:?} must not carry user information"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{uri:?}: http is allowed only on a loopback host (localhost, 127.0.0.1, ::1); use https"
        )),
        _ => Err(format!("{uri:?} must be an https URL")),
    }
}

/// An optional array of strings.
fn strings(body: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, MetadataError> {
    let invalid = || {
        let message = format!("{field} must be an array of strings");
        if field == "redirect_uris" {
            MetadataError::InvalidRedirectUri(message)
        } else {
            metadata(message)
        }
    };
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() > 4 * MAX_URIS {
                return Err(invalid());
            }
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Some(_) => Err(invalid()),
    }
}

/// An optional string.
fn string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, MetadataError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(metadata(format!("{field} must be a string"))),
    }
}

/// An optional boolean, false when absent.
fn flag(body: &Map<String, Value>, field: &str) -> Result<bool, MetadataError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(metadata(format!("{field} must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<ClientMetadata, MetadataError> {
        ClientMetadata::parse(body.as_object().unwrap(), true)
    }

    #[test]
    fn registration_redirect_uris_are_https_or_loopback_http_without_fragment() {
        for ok in [
            "https://rp.example/cb",
            "https://rp.example:8443/cb?x=1",
            "http://127.0.0.1:9000/cb",
            "http://localhost/cb",
            "http://[::1]:8/cb",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("http://rp.example/cb", "loopback"),
            ("http://10.0.0.1/cb", "loopback"),
            ("https://rp.example/cb#x", "fragment"),
            ("https://user:pw@rp.example/cb", "user information"),
            ("com.example.app:/cb", "https"),
            ("/cb", "absolute"),
        ] {
            let e = check_redirect_uri(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn registration_defaults_follow_rfc_7591() {
        let m = parse(json!({"redirect_uris": ["https://rp.example/cb"]})).unwrap();
        assert_eq!(m.grant_types, ["authorization_code"]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.token_endpoint_auth_method, "client_secret_basic");
        assert!(m.has_secret());
        let m = parse(json!({"grant_types": ["client_credentials"]})).unwrap();
        assert!(
            m.response_types.is_empty(),
            "no code flow, no response type"
        );
        let m = parse(json!({
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "token_endpoint_auth_method": "none"
        }))
        .unwrap();
        assert!(!m.has_secret());
    }

    #[test]
    fn registration_grant_and_response_types_must_agree() {
        let table = [
            (
                json!({"redirect_uris": ["https://rp.example/cb"], "response_types": []}),
                "response_types must be",
            ),
            (
                json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
                "must include authorization_code",
            ),
            (json!({"grant_types": ["refresh_token"]}), "refresh_token"),
            (json!({"grant_types": []}), "at least one"),
            (json!({"grant_types": ["password"]}), "not supported"),
            (
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
                "confidential",
            ),
        ];
        for (body, says) in table {
            let e = parse(body.clone()).unwrap_err();
            assert!(
                matches!(e, MetadataError::InvalidClientMetadata(_)),
                "{body}: {e:?}"
            );
            assert!(e.to_string().contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn registration_privileges_are_refused_by_name() {
        for field in PRIVILEGED {
            let mut body = json!({"grant_types": ["client_credentials"]});
            body[field] = json!(["User.ReadWrite.All"]);
            let e = parse(body).unwrap_err();
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn registration_metadata_turns_into_the_same_client_as_a_configured_one() {
        let m = parse(json!({
            "redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_post",
            "client_name": "Billing",
            "dpop_bound_access_tokens": true,
        }))
        .unwrap();
        let c = m
            .to_client("id-1", Some(SecretDigest::of("s3cret-s3cret-s3cret")))
            .unwrap();
        assert_eq!(c.display_name, "Billing");
        assert!(c.allows(GrantType::RefreshToken));
        assert!(c.accepts(ClientAuthMethod::ClientSecretPost));
        assert!(!c.accepts(ClientAuthMethod::ClientSecretBasic));
        assert!(c.dpop_bound_access_tokens);
        assert!(c.app_permissions.is_empty() && !c.introspect_all_tokens);
        // Round trip through the stored form.
        let back: ClientMetadata =
            serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
