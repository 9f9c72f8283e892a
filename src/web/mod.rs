//! HTTP: the router, request plumbing, and the OpenID Connect endpoints.
//!
//! Handlers read `now` once from the clock and pass it down; they parse
//! input into protocol types, call into `authn`/`tokens`/`directory`, and
//! render the outcome. Security headers are set on every response.

pub mod account;
pub mod admin;
pub mod bearer;
pub mod campaign;
pub mod client_auth;
pub mod demo;
pub mod device;
pub mod dpop;
pub mod error;
pub mod form;
pub mod gate;
pub mod health;
pub mod logout;
pub mod oauth;
pub mod par;
pub mod passkey;
pub mod registration;
pub mod signin;
pub mod token;
pub mod userinfo;
pub mod when;

use crate::app::AppState;
use crate::protocol::discovery::{self, paths};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use std::net::{IpAddr, SocketAddr};
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest request body accepted anywhere (forms, JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A page's Content-Security-Policy: forms may post to Gatepass and to the
/// origins of `targets` (where a successful post redirects), nowhere else.
pub fn content_security_policy<'a>(targets: impl Iterator<Item = &'a str>) -> HeaderValue {
    let mut origins: Vec<String> = targets
        .filter_map(|t| url::Url::parse(t).ok())
        .map(|u| u.origin())
        .filter(url::Origin::is_tuple)
        .map(|o| o.ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    // `form-action` comes last in the policy: the origins extend it.
    let mut csp = CSP_SELF.to_owned();
    for origin in origins {
        csp.push(' ');
        csp.push_str(&origin);
    }
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP_SELF))
}

/// The policy of every page that posts only to Gatepass.
const CSP_SELF: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                        connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The whole HTTP surface: OIDC, sign-in pages, Graph API, health.
pub fn router(state: AppState) -> Router {
    let limits = state.settings.server.clone();
    let hsts = state
        .settings
        .is_https()
        .then(|| HeaderValue::from_static("max-age=31536000"));
    // `/metrics` is public on the main listener unless it has its own.
    let metrics_here = state.settings.metrics_listen.is_none();
    let router = api_route_table()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
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
        .route(
            paths::DEVICE,
            get(device::device_page).post(device::device_submit),
        )
        .route(
            "/device/confirm",
            axum::routing::post(device::device_confirm),
        )
        .route("/signin/passkey", get(signin::passkey_page))
        .route("/signin/passkey/start", axum::routing::post(passkey::start))
        .route(
            "/signin/passkey/finish",
            axum::routing::post(passkey::finish),
        )
        .route("/signin/campaign", axum::routing::post(campaign::not_now))
        .route("/signin/campaign/continue", get(campaign::continue_after))
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
        .route("/static/gatepass.css", get(stylesheet))
        .route("/static/admin.js", get(admin_script))
        .route("/demo", get(demo::home))
        .route("/demo/start", get(demo::start))
        .route("/demo/callback", get(demo::callback))
        .route("/", get(root))
        .merge(admin::router())
        .merge(crate::graph::router());
    let router = if metrics_here {
        router.route("/metrics", get(metrics))
    } else {
        router
    };
    router
        // Inside routing, where the matched route template is known.
        .route_layer(axum::middleware::from_fn(remember_route))
        .layer(axum::middleware::from_fn(count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(retry_after_on_unavailable))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_SELF),
        ))
        // HTTPS only from now on, when the issuer is https (RFC 6797).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            hsts,
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
        // Spans name the method and path, never the query: it may carry an
        // id_token_hint, a login_hint or a flow id.
        // A bug must cost one request a 500, never the connection or a
        // worker: the panic is logged once, the client gets a request id.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                error::internal_page("panic", "a request handler panicked", false).into_response()
            },
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path().escape_debug(),
                    )
                },
            ),
        )
        .with_state(state)
}

/// The OAuth 2.0 / OpenID Connect and operations endpoints: with the Graph
/// API's [`crate::graph::route_table`] and `/metrics`, what `/openapi.json`
/// describes (a test holds them to each other). The rest are pages.
pub fn api_route_table() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use axum::routing::post;
    vec![
        (paths::DISCOVERY, get(discovery_document)),
        (paths::JWKS, get(jwks)),
        (
            paths::AUTHORIZE,
            get(signin::authorize_get).post(signin::authorize_post),
        ),
        (paths::TOKEN, post(token::token)),
        (
            paths::DEVICE_AUTHORIZATION,
            post(device::device_authorization),
        ),
        (
            paths::USERINFO,
            get(userinfo::userinfo_get).post(userinfo::userinfo_post),
        ),
        (paths::REVOKE, post(oauth::revoke)),
        (paths::INTROSPECT, post(oauth::introspect)),
        (paths::PUSHED_AUTHORIZATION, post(par::push)),
        (paths::REGISTER, post(registration::register)),
        (
            paths::REGISTERED_CLIENT,
            get(registration::read)
                .put(registration::update)
                .delete(registration::delete),
        ),
        (
            paths::END_SESSION,
            get(logout::logout).post(logout::logout_post),
        ),
        ("/healthz", get(health::healthz)),
        ("/readyz", get(health::readyz)),
        ("/openapi.json", get(crate::openapi::openapi_json)),
    ]
}

/// Just `/metrics`, for `[metrics] listen`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /metrics`: Prometheus' text format ([`crate::telemetry`]).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    description = "Prometheus metrics. Served here unless `[metrics] listen` gives them their own address.",
    responses(
        (status = 200, description = "The metric families", content_type = "text/plain"),
        (status = 503, description = "The recorder is unavailable", content_type = "text/plain"),
    ))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match crate::telemetry::render(&state) {
        Some(text) => {
            let mut r = text.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}

/// The route template a request matched, carried out to [`count_request`].
#[derive(Clone)]
struct RouteTemplate(std::sync::Arc<str>);

async fn remember_route(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(m) = matched {
        response
            .extensions_mut()
            .insert(RouteTemplate(std::sync::Arc::from(m.as_str())));
    }
    response
}

/// Counts every request by route template (`unmatched` for none, never the
/// raw path) and status, and times it.
async fn count_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    static UNMATCHED: std::sync::OnceLock<std::sync::Arc<str>> = std::sync::OnceLock::new();
    let route = match response.extensions().get::<RouteTemplate>() {
        Some(r) => r.0.clone(),
        None => UNMATCHED.get_or_init(|| "unmatched".into()).clone(),
    };
    crate::telemetry::record_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Every 503 (store unreachable, hashing queue full) and 429 (a source's
/// per-minute limit) tells the client when to come back (RFC 9110
/// §10.2.3, RFC 6585 §4), whichever layer produced it.
async fn retry_after_on_unavailable(mut response: Response) -> Response {
    let after = match response.status() {
        axum::http::StatusCode::SERVICE_UNAVAILABLE => "1",
        axum::http::StatusCode::TOO_MANY_REQUESTS => "60",
        _ => return response,
    };
    response
        .headers_mut()
        .entry(header::RETRY_AFTER)
        .or_insert(HeaderValue::from_static(after));
    response
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", operation_id = "oauth.discovery", tag = "oauth",
    responses((status = 200, description = "OpenID Provider metadata", body = crate::openapi::schemas::ProviderMetadata)))]
pub(crate) async fn discovery_document(State(state): State<AppState>) -> Response {
    let mut doc = discovery::provider_metadata(
        &state.settings.issuer,
        state.tokens.algorithm().as_str(),
        state.passkeys.enabled(),
    );
    discovery::backchannel_logout(&mut doc, state.settings.backchannel_logout.enabled);
    crate::protocol::par::advertise(
        &mut doc,
        format!("{}{}", state.settings.issuer, paths::PUSHED_AUTHORIZATION),
        state.settings.par.require_pushed_authorization_requests,
    );
    // Registered clients may list the device grant too.
    if state.clients.registration_enabled()
        || state
            .clients
            .configured()
            .any(|c| c.allows(crate::config::GrantType::DeviceCode))
    {
        discovery::advertise_device_flow(&mut doc, &state.settings.issuer);
    }
    if state.clients.registration_enabled() {
        discovery::advertise_registration(&mut doc, &state.settings.issuer);
    }
    cacheable(axum::Json(doc).into_response(), 300)
}

#[utoipa::path(get, path = "/jwks", operation_id = "oauth.jwks", tag = "oauth",
    responses((status = 200, description = "The keys that sign tokens", body = crate::openapi::schemas::JwkSet)))]
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
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
    javascript(include_str!("../../static/passkey.js"))
}

async fn admin_script() -> Response {
    javascript(include_str!("../../static/admin.js"))
}

fn javascript(source: &'static str) -> Response {
    let mut r = source.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    cacheable(r, 300)
}

/// `/`: somewhere useful — the console for an administrator, the user's
/// security info for anyone else (which signs them in first).
async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let now = state.clock.now();
    let to = match signin::current_session(&state, &headers, now).await {
        Ok(Some((_, _, user))) => match state.directory.roles_of(user.id, now).await {
            Ok(roles) if !roles.is_empty() => "/admin",
            _ => "/account/security-info",
        },
        _ => "/account/security-info",
    };
    axum::response::Redirect::to(to).into_response()
}

fn cacheable(mut response: Response, max_age: u32) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

/// The client's IP for logs, throttling and conditional access: the TCP
/// peer, or — when the peer is one of `[server] trusted_proxies` — the
/// right-most `X-Forwarded-For` hop that is not a trusted proxy
/// ([`client_address`]). A client that is not behind a trusted proxy
/// cannot move itself anywhere by sending the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(ClientIp(client_address(
            peer,
            forwarded,
            &state.settings.server.trusted_proxies,
        )))
    }
}

/// Most `X-Forwarded-For` hops looked at (a longer chain is an attack).
const MAX_FORWARDED_HOPS: usize = 32;

/// The client address behind `peer`: walking `X-Forwarded-For` from the
/// right, each hop was appended by the trusted proxy to its right, so the
/// first hop that is not itself a trusted proxy is the client. Hops further
/// left were written by the client and are never believed. A hop that does
/// not parse stops the walk at the last trusted proxy.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let hops: Vec<&str> = forwarded_for
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev().take(MAX_FORWARDED_HOPS) {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

/// One `X-Forwarded-For` hop: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Gatepass's cookies. With an https issuer their names carry the
/// `__Host-` prefix, which browsers accept only with `Secure`, `Path=/` and
/// no `Domain`: a sibling subdomain can neither plant nor overwrite them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// The browser session (`SameSite=Lax`, `HttpOnly`).
    Session,
    /// Binds sign-in flows to the browser that started them.
    Binding,
}

impl Cookie {
    pub fn name(self, https: bool) -> &'static str {
        match (self, https) {
            (Cookie::Session, false) => "gp_session",
            (Cookie::Session, true) => "__Host-gp_session",
            (Cookie::Binding, false) => "gp_binding",
            (Cookie::Binding, true) => "__Host-gp_binding",
        }
    }
}

/// Reads one of Gatepass's cookies.
pub fn cookie<'a>(state: &AppState, headers: &'a HeaderMap, which: Cookie) -> Option<&'a str> {
    let name = which.name(state.settings.is_https());
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
/// `SameSite=Lax`, `Path=/`, and `Secure` (with the `__Host-` name) when
/// the issuer is https.
pub fn set_cookie(
    state: &AppState,
    which: Cookie,
    value: &str,
    max_age_secs: Option<i64>,
) -> HeaderValue {
    let https = state.settings.is_https();
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        which.name(https)
    );
    if https {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nets(cidrs: &[&str]) -> Vec<ipnet::IpNet> {
        cidrs.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_address_believes_only_trusted_proxies() {
        let proxies = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        let cases: [(&str, &[&str], &str); 9] = [
            // No trusted proxies in front: the header is ignored.
            ("203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            // One proxy: the hop it appended.
            ("10.0.0.5", &["198.51.100.7"], "198.51.100.7"),
            // A spoofed hop left of the real one is not believed.
            ("10.0.0.5", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            // Two proxies in a chain, across two headers.
            ("10.0.0.5", &["198.51.100.7", "192.168.1.1"], "198.51.100.7"),
            // Every hop trusted: the left-most.
            ("10.0.0.5", &["10.1.1.1, 10.2.2.2"], "10.1.1.1"),
            // No header from a trusted proxy: the proxy itself.
            ("10.0.0.5", &[], "10.0.0.5"),
            // Garbage where a proxy's hop should be: stop at the proxy.
            ("10.0.0.5", &["198.51.100.7, not-an-ip"], "10.0.0.5"),
            // Ports and IPv4-mapped IPv6 are understood.
            ("::ffff:10.0.0.5", &["198.51.100.7:5555"], "198.51.100.7"),
            ("10.0.0.5", &["[2001:db8::1]:443"], "2001:db8::1"),
        ];
        for (peer, headers, want) in cases {
            assert_eq!(
                client_address(ip(peer), headers.iter().copied(), &proxies),
                ip(want),
                "{peer} {headers:?}"
            );
        }
        assert_eq!(
            client_address(ip("10.0.0.5"), ["198.51.100.7"].into_iter(), &[]),
            ip("10.0.0.5"),
            "nothing trusted: the peer"
        );
    }
}
