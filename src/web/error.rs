//! How failures become HTTP responses.
//!
//! Three audiences, three shapes:
//! * a person in a browser gets a page ([`PageError`]);
//! * an OAuth client at a JSON endpoint gets `{"error","error_description"}`
//!   ([`OAuthJsonError`]), with `WWW-Authenticate` on 401 (RFC 6749 §5.2);
//! * anything unexpected is logged once with a request id, and the caller
//!   sees only that id ([`internal`]).

use crate::protocol::{ErrorCode, OAuthError};
use crate::store::StoreError;
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    code: Option<&'a str>,
    request_id: Option<&'a str>,
}

/// Renders a template, falling back to plain text if rendering fails.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            let id = log_internal("template", &e.to_string());
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error (request id {id})"),
            )
                .into_response()
        }
    }
}

/// An error shown to a person.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
    pub code: Option<&'static str>,
    pub request_id: Option<String>,
}

impl PageError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            code: None,
            request_id: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Sign-in problem", message)
    }

    pub fn flow_expired() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page has expired or was opened in another browser. Return to the application and start again.",
        )
    }

    pub fn oauth(e: &OAuthError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Sign-in request rejected",
            message: e.description.clone(),
            code: Some(e.code.as_str()),
            request_id: None,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        render(
            self.status,
            &ErrorPage {
                title: self.title,
                message: &self.message,
                code: self.code,
                request_id: self.request_id.as_deref(),
            },
        )
    }
}

impl PageError {
    /// Too many sign-ins are being checked at once: 503 (the router adds
    /// `Retry-After`). Not an internal error: nothing is logged per request.
    pub fn busy() -> Self {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Gatepass is handling many sign-ins right now. Try again in a moment.",
        )
    }
}

impl PageError {
    /// This source started too much sign-in work this minute: 429 (the
    /// router adds `Retry-After`).
    pub fn too_many_requests() -> Self {
        PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins",
            "Too many sign-ins were started from your network. Wait a minute and try again.",
        )
    }
}

/// Logs an unexpected failure once and returns the id the user sees.
pub fn log_internal(kind: &str, detail: &str) -> String {
    let id = crate::ids::random_uuid()
        .map(|u| u.simple().to_string())
        .unwrap_or_else(|_| "unavailable".to_owned());
    tracing::error!(request_id = %id, kind, detail, "internal error");
    id
}

/// A failure of a dependency, for a page.
pub fn internal_page(kind: &str, detail: &str, unavailable: bool) -> PageError {
    let id = log_internal(kind, detail);
    let (status, message) = if unavailable {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Gatepass cannot reach its store right now. Try again in a moment.",
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side.",
        )
    };
    PageError {
        status,
        title: "Service problem",
        message: message.to_owned(),
        code: None,
        request_id: Some(id),
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        let unavailable = matches!(e, StoreError::Unavailable(_));
        internal_page(e.code(), &e.to_string(), unavailable)
    }
}

impl From<crate::directory::DirectoryError> for PageError {
    fn from(e: crate::directory::DirectoryError) -> Self {
        let unavailable = matches!(
            &e,
            crate::directory::DirectoryError::Store(StoreError::Unavailable(_))
        );
        internal_page(e.code(), &e.to_string(), unavailable)
    }
}

/// An OAuth error at a JSON endpoint (token, revocation, introspection,
/// userinfo).
#[derive(Debug)]
pub struct OAuthJsonError {
    pub status: StatusCode,
    pub error: OAuthError,
    /// `WWW-Authenticate` scheme to challenge with on 401.
    pub challenge: Option<&'static str>,
}

impl OAuthJsonError {
    pub fn bad_request(error: OAuthError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            challenge: None,
        }
    }

    /// RFC 6749 §5.2: invalid client authentication answers 401.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: OAuthError::invalid_client(description),
            challenge: Some("Basic"),
        }
    }

    /// RFC 6750 §3.1.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: OAuthError::new(ErrorCode::InvalidToken, description),
            challenge: Some("Bearer"),
        }
    }

    pub fn internal(kind: &str, detail: &str, unavailable: bool) -> Self {
        let id = log_internal(kind, detail);
        let (status, code, message) = if unavailable {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                "the store is unavailable; retry shortly",
            )
        } else {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::ServerError,
                "internal error",
            )
        };
        Self {
            status,
            error: OAuthError::new(code, format!("{message} (request id {id})")),
            challenge: None,
        }
    }
}

impl From<StoreError> for OAuthJsonError {
    fn from(e: StoreError) -> Self {
        let unavailable = matches!(e, StoreError::Unavailable(_));
        Self::internal(e.code(), &e.to_string(), unavailable)
    }
}

impl IntoResponse for OAuthJsonError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error.code.as_str(),
            "error_description": self.error.description,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // RFC 6750 §3: a protected resource challenges on 401 and also on
        // 403 insufficient_scope; the token endpoint (Basic) only on 401.
        let challenged = match self.challenge {
            Some("Bearer") => matches!(
                self.status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            Some(_) => self.status == StatusCode::UNAUTHORIZED,
            None => false,
        };
        if let (true, Some(scheme)) = (challenged, self.challenge) {
            let value = match scheme {
                // RFC 6750 §3.1: a request without credentials gets a bare
                // challenge, no error code. It is the only 401 Bearer error
                // coded invalid_request (see `userinfo::bearer_error`).
                "Bearer"
                    if self.status == StatusCode::UNAUTHORIZED
                        && self.error.code == ErrorCode::InvalidRequest =>
                {
                    "Bearer realm=\"gatepass\"".to_owned()
                }
                "Bearer" => format!(
                    "Bearer realm=\"gatepass\", error=\"{}\", error_description=\"{}\"",
                    self.error.code.as_str(),
                    self.error.description.replace('"', "'")
                ),
                // RFC 9449 §7.1: a refusal of DPoP names the algorithms.
                "DPoP" => format!(
                    "DPoP algs=\"{}\", error=\"{}\", error_description=\"{}\"",
                    super::dpop::algs(),
                    self.error.code.as_str(),
                    self.error.description.replace('"', "'")
                ),
                _ => format!("{scheme} realm=\"gatepass\""),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
            // RFC 9449 §7.1: a resource accepting both schemes challenges
            // with both, so a client learns it may use DPoP.
            if scheme == "Bearer" && self.status == StatusCode::UNAUTHORIZED {
                let dpop = format!("DPoP algs=\"{}\"", super::dpop::algs());
                if let Ok(v) = HeaderValue::from_str(&dpop) {
                    headers.append(header::WWW_AUTHENTICATE, v);
                }
            }
        }
        response
    }
}
