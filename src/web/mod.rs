//! HTTP: the router, request plumbing, and the OpenID Connect endpoints.
//!
//! Handlers read `now` once from the clock and pass it down; they parse
//! input into protocol types, call into `authn`/`tokens`/`directory`, and
//! render the outcome. Security headers are set on every response.

pub mod account;
pub mod bearer;
pub mod error;
pub mod gate;
pub mod health;
pub mod logout;
pub mod oauth;
pub mod passkey;
pub mod signin;
pub mod token;
pub mod userinfo;

use crate::app::AppState;
use crate::protocol::discovery::{self, paths};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::{IpAddr, SocketAddr};
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest request body accepted anywhere (forms, JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self' http: https:; base-uri 'none'; frame-ancestors 'none'";

/// The whole HTTP surface: OIDC, sign-in pages, Graph API, health.
pub fn router(state: AppState) -> Router {
    let limits = state.settings.server.clone();
    Router::new()
        .route(paths::DISCOVERY, get(discovery_document))
        .route(paths::JWKS, get(jwks))
        .route(
            paths::AUTHORIZE,
            get(signin::authorize_get).post(signin::authorize_post),
        )
        .route(
            "/signin/username",
            axum::routing::post(signin::username_submit),
        )
        .route(
            "/signin/password",
            get(signin::password_page).post(signin::password_submit),
        )
        .route(
            "/signin/tap",
            get(signin::tap_page).post(signin::tap_submit),
        )
        .route("/signin/restart", get(signin::restart))
        .route("/signin/passkey", get(signin::passkey_page))
        .route("/signin/passkey/start", axum::routing::post(passkey::start))
        .route(
            "/signin/passkey/finish",
            axum::routing::post(passkey::finish),
        )
        .route("/account/security-info", get(account::security_info))
        .route("/mysecurityinfo", get(account::security_info))
        .route("/account/step-up", get(account::step_up))
        .route(
            "/account/methods/delete",
            axum::routing::post(account::delete_method),
        )
        .route(
            "/account/sign-out-everywhere",
            axum::routing::post(account::sign_out_everywhere),
        )
        .route(
            "/account/passkeys/register/start",
            axum::routing::post(account::register_start),
        )
        .route(
            "/account/passkeys/register/finish",
            axum::routing::post(account::register_finish),
        )
        .route("/static/passkey.js", get(script))
        .route(paths::TOKEN, axum::routing::post(token::token))
        .route(
            paths::USERINFO,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(paths::REVOKE, axum::routing::post(oauth::revoke))
        .route(paths::INTROSPECT, axum::routing::post(oauth::introspect))
        .route(
            paths::END_SESSION,
            get(logout::logout).post(logout::logout_post),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/static/gatepass.css", get(stylesheet))
        .merge(crate::graph::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(retry_after_on_unavailable))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // A body must arrive in time, and every request is answered in time
        // (408), so slow uploads cannot pin connections and memory.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_read_timeout,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Every 503 (store unreachable, hashing queue full) tells the client when
/// to come back (RFC 9110 §10.2.3), whichever layer produced it.
async fn retry_after_on_unavailable(mut response: Response) -> Response {
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static("1"));
    }
    response
}

async fn discovery_document(State(state): State<AppState>) -> Response {
    let doc =
        discovery::provider_metadata(&state.settings.issuer, state.tokens.algorithm().as_str());
    cacheable(axum::Json(doc).into_response(), 300)
}

async fn jwks(State(state): State<AppState>) -> Response {
    // Short max-age: a key added by rotation must reach relying parties fast.
    cacheable(axum::Json(state.tokens.keys().jwks()).into_response(), 60)
}

async fn stylesheet() -> Response {
    let mut r = include_str!("../../static/gatepass.css").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    cacheable(r, 3600)
}

async fn script() -> Response {
    let mut r = include_str!("../../static/passkey.js").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    cacheable(r, 300)
}

fn cacheable(mut response: Response, max_age: u32) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

/// The client's IP for logs, throttling and conditional access: the TCP
/// peer. `X-Forwarded-For` is never trusted blindly (anyone can send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(ip))
    }
}

/// Reads one cookie by name.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with Gatepass's attributes: `HttpOnly`,
/// `SameSite=Lax`, `Path=/`, and `Secure` when the issuer is https.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age_secs: Option<i64>,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if state.settings.is_https() {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("gp_invalid=; Max-Age=0"))
}

/// Whether the request body's media type is `mime` (parameters ignored).
fn content_type_is(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

/// Whether a request body is `application/json`.
pub fn is_json(headers: &HeaderMap) -> bool {
    content_type_is(headers, "application/json")
}

/// Whether a request body is `application/x-www-form-urlencoded`.
pub fn is_form(headers: &HeaderMap) -> bool {
    content_type_is(headers, "application/x-www-form-urlencoded")
}
