//! Pushed authorization requests (RFC 9126): the wire shapes and pure rules.
//!
//! A client pushes its authorization parameters to `/par` over an
//! authenticated back channel and gets a short-lived, single-use
//! `request_uri`; the browser then carries only `client_id` and that
//! reference to `/authorize`. The parameters are checked by exactly the
//! rules of [`super::authorize::validate`] — once at the push (so the client
//! learns of a mistake at once, RFC 9126 §2.1) and again when `/authorize`
//! uses them — never by a copy of those rules.
//!
//! ```text
//!   POST /par ──► stored {client_id, params}, expires_at ──► GET /authorize
//!                 key = SHA-256(reference)                    take (once)
//! ```

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use serde::{Deserialize, Serialize};

/// RFC 9126 §2.2: the prefix of every `request_uri` we issue.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Client-authentication parameters a pushed request carries beside the
/// authorization parameters; they are not part of the request we keep.
pub const CLIENT_AUTH_PARAMS: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

/// Longest `request_uri` accepted at `/authorize` (ours are much shorter).
pub const MAX_REQUEST_URI_LEN: usize = 128;

/// `[par]` as written in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPar {
    /// Every client must push (RFC 9126 §5, the server-wide form of the
    /// client setting of the same name).
    pub require_pushed_authorization_requests: bool,
    /// How long a `request_uri` may be used (`expires_in`).
    pub request_uri_lifetime_seconds: i64,
}

impl Default for RawPar {
    fn default() -> Self {
        Self {
            require_pushed_authorization_requests: false,
            request_uri_lifetime_seconds: DEFAULT_LIFETIME_SECS,
        }
    }
}

/// Default `expires_in` of a `request_uri`.
pub const DEFAULT_LIFETIME_SECS: i64 = 60;
/// RFC 9126 §2.2 suggests 5 to 600 seconds; we allow 10 to 600.
pub const LIFETIME_RANGE_SECS: std::ops::RangeInclusive<i64> = 10..=600;

/// Validated `[par]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParSettings {
    pub require_pushed_authorization_requests: bool,
    pub request_uri_lifetime: time::Duration,
}

impl Default for ParSettings {
    fn default() -> Self {
        Self {
            require_pushed_authorization_requests: false,
            request_uri_lifetime: time::Duration::seconds(DEFAULT_LIFETIME_SECS),
        }
    }
}

impl RawPar {
    /// The settings, or the key that is wrong and why.
    pub fn validate(&self) -> Result<ParSettings, (&'static str, String)> {
        if !LIFETIME_RANGE_SECS.contains(&self.request_uri_lifetime_seconds) {
            return Err((
                "par.request_uri_lifetime_seconds",
                format!(
                    "must be between {} and {} (seconds), got {}",
                    LIFETIME_RANGE_SECS.start(),
                    LIFETIME_RANGE_SECS.end(),
                    self.request_uri_lifetime_seconds
                ),
            ));
        }
        Ok(ParSettings {
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            request_uri_lifetime: time::Duration::seconds(self.request_uri_lifetime_seconds),
        })
    }
}

/// What the store keeps for a `request_uri`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRequest {
    /// The authenticated client that pushed it; only it may use it.
    pub client_id: String,
    /// The authorization parameters, form-encoded, as pushed (minus client
    /// authentication).
    pub params: String,
}

/// RFC 9126 §2.2: the 201 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedAuthorizationResponse {
    pub request_uri: String,
    pub expires_in: i64,
}

/// The authorization parameters of a push: every parameter but client
/// authentication, with `client_id` set to the authenticated client (the
/// caller has checked a `client_id` in the body matches). A `request_uri`
/// inside a push is refused (RFC 9126 §2.1).
pub fn pushed_params(body: &Params, client_id: &str) -> Result<Params, OAuthError> {
    if body.contains("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be pushed (RFC 9126 §2.1)",
        ));
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("client_id", client_id);
    for (name, value) in body.iter() {
        if name != "client_id" && !CLIENT_AUTH_PARAMS.contains(&name) {
            form.append_pair(name, value);
        }
    }
    Params::parse(&form.finish())
}

/// The reference inside a `request_uri` we issued, if it is one of ours.
pub fn reference(request_uri: &str) -> Option<&str> {
    if request_uri.len() > MAX_REQUEST_URI_LEN {
        return None;
    }
    request_uri.strip_prefix(REQUEST_URI_PREFIX).filter(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Why `/authorize` refused a `request_uri`. Each is shown to the user,
/// never redirected (RFC 9126 §4): the redirect URI is in the pushed
/// request we could not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestUriRejection {
    /// `client_id` missing beside `request_uri`.
    MissingClientId,
    /// Unknown, expired or already used.
    Unusable,
    /// Pushed by another client.
    OtherClient,
    /// The client must push (`require_pushed_authorization_requests`).
    PushRequired,
}

impl RequestUriRejection {
    pub fn error(self) -> OAuthError {
        match self {
            RequestUriRejection::MissingClientId => {
                OAuthError::invalid_request("client_id is required with request_uri (RFC 9126 §4)")
            }
            RequestUriRejection::Unusable => OAuthError::new(
                ErrorCode::InvalidRequestUri,
                "request_uri is unknown, expired or already used; push the request again",
            ),
            RequestUriRejection::OtherClient => OAuthError::new(
                ErrorCode::InvalidRequestUri,
                "request_uri was pushed by another client",
            ),
            RequestUriRejection::PushRequired => OAuthError::invalid_request(
                "this client must push its authorization request to the pushed_authorization_request_endpoint (RFC 9126) and send only client_id and request_uri",
            ),
        }
    }
}

/// Discovery metadata for PAR (RFC 9126 §5).
pub fn advertise(doc: &mut serde_json::Value, endpoint: String, required: bool) {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "pushed_authorization_request_endpoint".into(),
            endpoint.into(),
        );
        obj.insert(
            "require_pushed_authorization_requests".into(),
            required.into(),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn par_pushed_params_drop_client_auth_and_refuse_request_uri() {
        let body = Params::parse(
            "client_id=a&client_secret=s&client_assertion=x&client_assertion_type=t&scope=openid&state=s1",
        )
        .unwrap();
        let p = pushed_params(&body, "a").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.get("client_id"), Some("a"));
        assert_eq!(p.get("scope"), Some("openid"));
        let with_uri = Params::parse("request_uri=urn:x").unwrap();
        assert!(pushed_params(&with_uri, "a").is_err());
    }

    #[test]
    fn par_reference_accepts_only_our_request_uris() {
        assert_eq!(
            reference(&format!("{REQUEST_URI_PREFIX}abc_-1")),
            Some("abc_-1")
        );
        for bad in [
            "https://rp.example/req",
            REQUEST_URI_PREFIX,
            "urn:ietf:params:oauth:request_uri:a/b",
        ] {
            assert_eq!(reference(bad), None, "{bad}");
        }
        assert_eq!(
            reference(&format!("{REQUEST_URI_PREFIX}{}", "a".repeat(200))),
            None
        );
    }
}
