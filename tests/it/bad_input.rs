//! Bad input on every endpoint gives the specified error — an OAuth error
//! (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1), a Graph-shaped error or a 4xx
//! page — and never a 5xx, a panic or an open redirect (DESIGN §7).
//!
//! Each test drives a real server over HTTP. Where a case depends on state
//! (a live code, a flow, a session) the test first shows the good request
//! succeeds, so a rejection is known to come from the one thing made bad.

use crate::harness::*;
use crate::oidc::{jwt_header, jwt_payload};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatepass::clock::Clock;
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE,
};
use serde_json::{Value, json};

const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice password 1";
const VERIFIER: &str = "bad-input-verifier-0123456789-0123456789-0123456789";
const STATE: &str = "st-0123";
const FORM: &str = "application/x-www-form-urlencoded";

/// Client credentials for HTTP Basic, if any.
type Basic<'a> = Option<(&'a str, &'a str)>;
/// Form fields, in order, repeats allowed.
type Form<'a> = Vec<(&'a str, &'a str)>;
/// A Graph body case: name, body, content type, status, property named.
type BodyCase = (
    &'static str,
    String,
    Option<&'static str>,
    u16,
    Option<&'static str>,
);

/// Token-endpoint error codes (RFC 6749 §5.2).
const TOKEN_ERRORS: [&str; 6] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn s256(verifier: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn header_str(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A valid authorization request for `client_id` (PKCE S256, `state`).
fn authorize_pairs(client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", client_id.to_owned()),
        ("redirect_uri", RP_REDIRECT.to_owned()),
        ("response_type", "code".to_owned()),
        ("scope", "openid profile".to_owned()),
        ("state", STATE.to_owned()),
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

/// `base` without the names in `drop`, plus `add`.
fn with(base: &[(&'static str, String)], drop: &[&str], add: &[(&'static str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = base
        .iter()
        .filter(|(k, _)| !drop.contains(k))
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    pairs.extend(add.iter().copied());
    encode(&pairs)
}

/// An OAuth JSON error: status, `Cache-Control: no-store`, a JSON body with
/// `error` = `code` and a string `error_description`; 401 carries
/// `WWW-Authenticate`. Returns the headers and the body.
async fn oauth_error(
    r: reqwest::Response,
    status: u16,
    code: &str,
    ctx: &str,
) -> (HeaderMap, Value) {
    let headers = r.headers().clone();
    let got = r.status();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(got.as_u16(), status, "{ctx}: status (body {text})");
    assert_eq!(
        header_str(&headers, CACHE_CONTROL),
        Some("no-store"),
        "{ctx}: Cache-Control"
    );
    assert!(
        header_str(&headers, CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json")),
        "{ctx}: content type {:?}",
        headers.get(CONTENT_TYPE)
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{ctx}: not JSON ({e}): {text}"));
    assert_eq!(body["error"], code, "{ctx}: {body}");
    assert!(body["error_description"].is_string(), "{ctx}: {body}");
    if status == 401 {
        assert!(
            headers.get(WWW_AUTHENTICATE).is_some(),
            "{ctx}: 401 without WWW-Authenticate"
        );
    }
    (headers, body)
}

/// An HTML error page with `status` and no redirect. Returns the HTML.
async fn error_page(r: reqwest::Response, status: u16, ctx: &str) -> String {
    let got = r.status();
    let headers = r.headers().clone();
    let html = r.text().await.unwrap_or_default();
    assert_eq!(got.as_u16(), status, "{ctx}: status (body {html})");
    assert!(
        headers.get(LOCATION).is_none(),
        "{ctx}: must not redirect, got {:?}",
        headers.get(LOCATION)
    );
    assert!(
        header_str(&headers, CONTENT_TYPE).is_some_and(|c| c.starts_with("text/html")),
        "{ctx}: content type {:?}",
        headers.get(CONTENT_TYPE)
    );
    html
}

/// A Graph error: status, JSON `{"error":{"code","message"}}`. Returns the
/// message.
async fn graph_error(r: reqwest::Response, status: u16, code: Option<&str>, ctx: &str) -> String {
    let got = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(got.as_u16(), status, "{ctx}: status (body {text})");
    assert!(
        header_str(&headers, CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json")),
        "{ctx}: content type {:?} (body {text})",
        headers.get(CONTENT_TYPE)
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{ctx}: not JSON ({e}): {text}"));
    let error_code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: no error.code: {body}"));
    if let Some(code) = code {
        assert_eq!(error_code, code, "{ctx}: {body}");
    }
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: no error.message: {body}"));
    assert!(!message.is_empty(), "{ctx}: empty message");
    message.to_owned()
}

async fn spawn_with_alice() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_user(ALICE, Some(ALICE_PASSWORD)).await;
    app
}

/// Signs `browser` in (or reuses its session) and returns a fresh code for
/// `client_id` with PKCE over [`VERIFIER`].
async fn code_for(app: &TestApp, browser: &Browser, client_id: &str, scope: &str) -> String {
    let mut pairs = authorize_pairs(client_id);
    pairs.retain(|(k, _)| *k != "scope");
    pairs.push(("scope", scope.to_owned()));
    let q = with(&pairs, &[], &[]);
    let location = browser
        .sign_in(
            &format!("{}/authorize?{q}", app.issuer),
            ALICE,
            ALICE_PASSWORD,
        )
        .await
        .expect("sign-in redirect");
    assert!(location.starts_with(RP_REDIRECT), "{location}");
    query_param(&location, "code").expect("code in redirect")
}

async fn token_post(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app.http.post(app.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.expect("token request")
}

// ---------------------------------------------------------------------------
// /authorize
// ---------------------------------------------------------------------------

#[tokio::test]
async fn authorize_invalid_client_or_redirect_uri_shows_page_without_redirect() {
    let app = TestApp::spawn().await;
    let base = authorize_pairs(RP_ID);
    // Control: the unmodified request reaches the sign-in page.
    let ok = app
        .http
        .get(format!(
            "{}?{}",
            app.url("/authorize"),
            with(&base, &[], &[])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains(">Username</label>"));

    let long_state = "s".repeat(4096);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing client_id",
            with(&base, &["client_id"], &[]),
            "invalid_request",
        ),
        (
            "unknown client_id",
            with(&base, &["client_id"], &[("client_id", "nobody")]),
            "invalid_client",
        ),
        (
            "missing redirect_uri",
            with(&base, &["redirect_uri"], &[]),
            "invalid_request",
        ),
        (
            "foreign redirect_uri",
            with(
                &base,
                &["redirect_uri"],
                &[("redirect_uri", "https://evil.example/callback")],
            ),
            "invalid_request",
        ),
        (
            "redirect_uri with a trailing slash",
            with(
                &base,
                &["redirect_uri"],
                &[("redirect_uri", "http://127.0.0.1:9000/callback/")],
            ),
            "invalid_request",
        ),
        (
            "redirect_uri differing in path case",
            with(
                &base,
                &["redirect_uri"],
                &[("redirect_uri", "http://127.0.0.1:9000/Callback")],
            ),
            "invalid_request",
        ),
        (
            "redirect_uri differing in scheme case",
            with(
                &base,
                &["redirect_uri"],
                &[("redirect_uri", "HTTP://127.0.0.1:9000/callback")],
            ),
            "invalid_request",
        ),
        (
            "redirect_uri with an extra query",
            with(
                &base,
                &["redirect_uri"],
                &[("redirect_uri", "http://127.0.0.1:9000/callback?x=1")],
            ),
            "invalid_request",
        ),
        (
            "redirect_uri registered for another client only",
            with(&base, &["client_id"], &[("client_id", AUTOMATION_ID)]),
            "invalid_request",
        ),
        (
            "repeated scope",
            with(&base, &[], &[("scope", "openid")]),
            "invalid_request",
        ),
        (
            "repeated client_id",
            with(&base, &[], &[("client_id", RP_ID)]),
            "invalid_request",
        ),
        (
            "repeated redirect_uri",
            with(&base, &[], &[("redirect_uri", RP_REDIRECT)]),
            "invalid_request",
        ),
        (
            "repeated state",
            with(&base, &[], &[("state", "other")]),
            "invalid_request",
        ),
        (
            "state too long to echo",
            with(&base, &["state"], &[("state", &long_state)]),
            "invalid_request",
        ),
        ("empty query", String::new(), "invalid_request"),
    ];
    for (name, query, code) in cases {
        let r = app
            .http
            .get(format!("{}?{query}", app.url("/authorize")))
            .send()
            .await
            .unwrap();
        let html = error_page(r, 400, &format!("GET /authorize, {name}")).await;
        assert!(
            html.contains(code),
            "GET /authorize, {name}: page does not name {code}: {html}"
        );
    }

    // The same over POST, and a name repeated between query and body.
    let r = app
        .http
        .post(app.url("/authorize"))
        .header(CONTENT_TYPE, FORM)
        .body(with(
            &base,
            &["redirect_uri"],
            &[("redirect_uri", "https://evil.example/callback")],
        ))
        .send()
        .await
        .unwrap();
    error_page(r, 400, "POST /authorize, foreign redirect_uri").await;
    let r = app
        .http
        .post(format!("{}?scope=openid", app.url("/authorize")))
        .header(CONTENT_TYPE, FORM)
        .body(with(&base, &[], &[]))
        .send()
        .await
        .unwrap();
    error_page(r, 400, "POST /authorize, scope in query and body").await;
    let r = app
        .http
        .post(app.url("/authorize"))
        .json(&json!({"client_id": RP_ID}))
        .send()
        .await
        .unwrap();
    error_page(r, 400, "POST /authorize, JSON body").await;
}

#[tokio::test]
async fn authorize_bad_request_after_redirect_uri_redirects_error_with_state() {
    let app = TestApp::spawn().await;
    let rp = authorize_pairs(RP_ID);
    let spa = authorize_pairs(SPA_ID);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing response_type",
            with(&rp, &["response_type"], &[]),
            "invalid_request",
        ),
        (
            "response_type=token",
            with(&rp, &["response_type"], &[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (
            "response_type=code id_token",
            with(
                &rp,
                &["response_type"],
                &[("response_type", "code id_token")],
            ),
            "unsupported_response_type",
        ),
        (
            "unsupported scope",
            with(&rp, &["scope"], &[("scope", "openid admin.everything")]),
            "invalid_scope",
        ),
        (
            "scope with invalid characters",
            with(&rp, &["scope"], &[("scope", "openid \"quoted\"")]),
            "invalid_scope",
        ),
        (
            "Graph scope not delegated to the client",
            with(
                &rp,
                &["scope"],
                &[("scope", "openid Policy.ReadWrite.ConditionalAccess")],
            ),
            "invalid_scope",
        ),
        (
            "PKCE plain",
            with(
                &rp,
                &["code_challenge_method"],
                &[("code_challenge_method", "plain")],
            ),
            "invalid_request",
        ),
        (
            "PKCE method without challenge",
            with(&rp, &["code_challenge"], &[]),
            "invalid_request",
        ),
        (
            "PKCE challenge too short",
            with(&rp, &["code_challenge"], &[("code_challenge", "short")]),
            "invalid_request",
        ),
        (
            "PKCE missing for the public client",
            with(&spa, &["code_challenge", "code_challenge_method"], &[]),
            "invalid_request",
        ),
        (
            "max_age not a number",
            with(&rp, &[], &[("max_age", "abc")]),
            "invalid_request",
        ),
        (
            "max_age negative",
            with(&rp, &[], &[("max_age", "-1")]),
            "invalid_request",
        ),
        (
            "max_age overflowing",
            with(&rp, &[], &[("max_age", "99999999999999999999999")]),
            "invalid_request",
        ),
        (
            "prompt=none login",
            with(&rp, &[], &[("prompt", "none login")]),
            "invalid_request",
        ),
        (
            "unknown prompt",
            with(&rp, &[], &[("prompt", "bogus")]),
            "invalid_request",
        ),
        (
            "prompt=none without a session",
            with(&rp, &[], &[("prompt", "none")]),
            "login_required",
        ),
        (
            "request object",
            with(&rp, &[], &[("request", "eyJhbGciOiJub25lIn0.e30.")]),
            "request_not_supported",
        ),
        (
            "request_uri",
            with(&rp, &[], &[("request_uri", "https://evil.example/req")]),
            "request_uri_not_supported",
        ),
        (
            "response_mode=fragment",
            with(&rp, &[], &[("response_mode", "fragment")]),
            "invalid_request",
        ),
        (
            "claims not JSON",
            with(&rp, &[], &[("claims", "{")]),
            "invalid_request",
        ),
        (
            "nonce too long",
            with(&rp, &[], &[("nonce", &"n".repeat(4096))]),
            "invalid_request",
        ),
    ];
    for (name, query, code) in cases {
        let r = app
            .http
            .get(format!("{}?{query}", app.url("/authorize")))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = header_str(r.headers(), LOCATION).map(str::to_owned);
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{name}: {:?}",
            r.text().await
        );
        let location = location.unwrap_or_else(|| panic!("{name}: no Location"));
        assert!(
            location.starts_with(&format!("{RP_REDIRECT}?")),
            "{name}: redirected to {location}"
        );
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some(code),
            "{name}: {location}"
        );
        assert!(
            query_param(&location, "error_description").is_some(),
            "{name}: {location}"
        );
        assert_eq!(
            query_param(&location, "state").as_deref(),
            Some(STATE),
            "{name}: state not echoed"
        );
        assert_eq!(
            query_param(&location, "iss").as_deref(),
            Some(app.issuer.as_str()),
            "{name}: iss"
        );
        assert!(
            query_param(&location, "code").is_none(),
            "{name}: a code was issued"
        );
    }
}

// ---------------------------------------------------------------------------
// /token
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_malformed_or_unauthenticated_request_gives_rfc6749_error() {
    let app = TestApp::spawn().await;
    let cc = [("grant_type", "client_credentials")];
    let wrong_secret = "wrong-secret-7f3a9c";

    // Control: the well-formed request works.
    assert_eq!(
        token_post(&app, Some((AUTOMATION_ID, AUTOMATION_SECRET)), &cc)
            .await
            .status(),
        200
    );

    let auto = Some((AUTOMATION_ID, AUTOMATION_SECRET));
    let rp = Some((RP_ID, RP_SECRET));
    let cases: Vec<(&str, Basic, Form, u16, &str)> = vec![
        ("missing grant_type", auto, vec![], 400, "invalid_request"),
        (
            "unknown grant_type",
            auto,
            vec![("grant_type", "password")],
            400,
            "unsupported_grant_type",
        ),
        (
            // Supported since the device flow, but not by this client.
            "device grant_type, client without it",
            auto,
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
            400,
            "unauthorized_client",
        ),
        (
            "repeated grant_type",
            auto,
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            400,
            "invalid_request",
        ),
        (
            "unknown client (basic)",
            Some(("nobody", "x")),
            cc.to_vec(),
            401,
            "invalid_client",
        ),
        (
            "unknown client (post)",
            None,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
            401,
            "invalid_client",
        ),
        (
            "no client authentication",
            None,
            cc.to_vec(),
            401,
            "invalid_client",
        ),
        (
            "wrong secret (basic)",
            Some((AUTOMATION_ID, wrong_secret)),
            cc.to_vec(),
            401,
            "invalid_client",
        ),
        (
            "wrong secret (post)",
            None,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", AUTOMATION_ID),
                ("client_secret", wrong_secret),
            ],
            401,
            "invalid_client",
        ),
        (
            "missing secret for a confidential client",
            None,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", AUTOMATION_ID),
            ],
            401,
            "invalid_client",
        ),
        (
            "both client_secret_basic and client_secret_post",
            auto,
            vec![
                ("grant_type", "client_credentials"),
                ("client_secret", AUTOMATION_SECRET),
            ],
            400,
            "invalid_request",
        ),
        (
            "client_id in the body differs from basic",
            auto,
            vec![("grant_type", "client_credentials"), ("client_id", RP_ID)],
            400,
            "invalid_request",
        ),
        (
            "public client presenting a secret (basic)",
            Some((SPA_ID, wrong_secret)),
            vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
            401,
            "invalid_client",
        ),
        (
            "public client presenting a secret (post)",
            None,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", SPA_ID),
                ("client_secret", wrong_secret),
            ],
            401,
            "invalid_client",
        ),
        (
            "client_credentials client using authorization_code",
            auto,
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", RP_REDIRECT),
            ],
            400,
            "unauthorized_client",
        ),
        (
            "code client using client_credentials",
            rp,
            cc.to_vec(),
            400,
            "unauthorized_client",
        ),
        (
            "public client using client_credentials",
            None,
            vec![("grant_type", "client_credentials"), ("client_id", SPA_ID)],
            400,
            "unauthorized_client",
        ),
        (
            "missing code",
            rp,
            vec![
                ("grant_type", "authorization_code"),
                ("redirect_uri", RP_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            400,
            "invalid_request",
        ),
        (
            "bogus code",
            rp,
            vec![
                ("grant_type", "authorization_code"),
                ("code", "bogus-code-that-was-never-issued"),
                ("redirect_uri", RP_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            400,
            "invalid_grant",
        ),
        (
            "missing refresh_token",
            rp,
            vec![("grant_type", "refresh_token")],
            400,
            "invalid_request",
        ),
        (
            "bogus refresh token",
            rp,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "bogus-refresh-token"),
            ],
            400,
            "invalid_grant",
        ),
        (
            "client_credentials with an OIDC scope",
            auto,
            vec![("grant_type", "client_credentials"), ("scope", "openid")],
            400,
            "invalid_scope",
        ),
        (
            "client_credentials with Microsoft's Graph scope",
            auto,
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
            400,
            "invalid_scope",
        ),
        (
            "client_credentials with a permission name as scope",
            auto,
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "User.ReadWrite.All"),
            ],
            400,
            "invalid_scope",
        ),
        (
            "client_credentials with invalid scope characters",
            auto,
            vec![("grant_type", "client_credentials"), ("scope", "\"x\"")],
            400,
            "invalid_scope",
        ),
    ];
    for (name, basic, form, status, code) in cases {
        assert!(TOKEN_ERRORS.contains(&code));
        let r = token_post(&app, basic, &form).await;
        let (headers, body) = oauth_error(r, status, code, name).await;
        let text = body.to_string();
        for secret in [wrong_secret, AUTOMATION_SECRET, RP_SECRET] {
            assert!(!text.contains(secret), "{name}: a secret is echoed: {text}");
        }
        if status == 401 {
            assert!(
                header_str(&headers, WWW_AUTHENTICATE).is_some_and(|w| w.starts_with("Basic")),
                "{name}: {headers:?}"
            );
        }
    }

    // Requests the form helper cannot express.
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request", "JSON body").await;
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request", "no content type").await;
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .header(CONTENT_TYPE, FORM)
        .body(vec![b'g', b'=', 0xFF, 0xFE, 0x80])
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request", "body not UTF-8").await;
    for value in [
        "Basic !!!not-base64!!!",
        "Basic bm9jb2xvbg==",
        "Bearer abc",
        "Basic",
    ] {
        let r = app
            .http
            .post(app.url("/token"))
            .header(AUTHORIZATION, value)
            .form(&cc)
            .send()
            .await
            .unwrap();
        oauth_error(r, 401, "invalid_client", &format!("Authorization: {value}")).await;
    }
}

#[tokio::test]
async fn token_oversized_body_is_413_with_oauth_json() {
    let app = TestApp::spawn().await;
    let body = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .header(CONTENT_TYPE, FORM)
        .body(body)
        .send()
        .await
        .expect("an answer, not a dropped connection");
    oauth_error(r, 413, "invalid_request", "70 KiB body").await;

    // Just under the limit is accepted (the pad is an ignored parameter).
    let body = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(60 * 1024)
    );
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .header(CONTENT_TYPE, FORM)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn token_code_redeemed_with_wrong_binding_is_invalid_grant() {
    let app = spawn_with_alice().await;
    let browser = app.browser();
    let code = code_for(&app, &browser, RP_ID, "openid").await;
    let rp = Some((RP_ID, RP_SECRET));
    let good = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", RP_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // `good` with `name` replaced by `value` (or removed).
    let but = |name: &str, value: Option<&'static str>| -> Vec<(&str, &str)> {
        let mut form: Vec<(&str, &str)> =
            good.iter().copied().filter(|(k, _)| *k != name).collect();
        if let Some(v) = value {
            form.push((
                if name == "code_verifier" {
                    "code_verifier"
                } else {
                    "redirect_uri"
                },
                v,
            ));
        }
        form
    };
    let mut for_spa = good.to_vec();
    for_spa.push(("client_id", SPA_ID));
    let cases: Vec<(&str, Basic, Form, &str)> = vec![
        (
            "wrong PKCE verifier",
            rp,
            but(
                "code_verifier",
                Some("another-verifier-0123456789-0123456789-0123456789-x"),
            ),
            "invalid_grant",
        ),
        (
            "malformed PKCE verifier",
            rp,
            but("code_verifier", Some("short")),
            "invalid_grant",
        ),
        (
            "missing PKCE verifier",
            rp,
            but("code_verifier", None),
            "invalid_grant",
        ),
        (
            "redirect_uri mismatch",
            rp,
            but("redirect_uri", Some("http://127.0.0.1:9000/callback/")),
            "invalid_grant",
        ),
        (
            "missing redirect_uri",
            rp,
            but("redirect_uri", None),
            "invalid_request",
        ),
        (
            "code issued to another client",
            None,
            for_spa,
            "invalid_grant",
        ),
    ];
    for (name, basic, form, code_expected) in cases {
        let r = token_post(&app, basic, &form).await;
        let (_, body) = oauth_error(r, 400, code_expected, name).await;
        assert!(
            !body.to_string().contains(&code),
            "{name}: the code is echoed"
        );
    }

    // None of the failures burned the code: with every binding right it
    // redeems, so each failure above was about the one thing made wrong.
    let r = token_post(&app, rp, &good).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // And now it is spent.
    let r = token_post(&app, rp, &good).await;
    oauth_error(r, 400, "invalid_grant", "replayed code").await;
}

#[tokio::test]
async fn token_code_older_than_60_seconds_is_invalid_grant() {
    let app = spawn_with_alice().await;
    let browser = app.browser();
    let rp = Some((RP_ID, RP_SECRET));

    // Control: a code 59 s old still redeems.
    let fresh = code_for(&app, &browser, RP_ID, "openid").await;
    app.clock.advance(time::Duration::seconds(59));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", fresh.as_str()),
        ("redirect_uri", RP_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(token_post(&app, rp, &form).await.status(), 200);

    let stale = code_for(&app, &browser, RP_ID, "openid").await;
    app.clock.advance(time::Duration::seconds(61));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", stale.as_str()),
        ("redirect_uri", RP_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let r = token_post(&app, rp, &form).await;
    oauth_error(r, 400, "invalid_grant", "expired code").await;
}

// ---------------------------------------------------------------------------
// Bearer tokens at /userinfo and the Graph API
// ---------------------------------------------------------------------------

/// Tokens that must never be accepted, derived from `real` (a genuine
/// access token of ours): unsigned, signed with a foreign key under the
/// real `kid`, HMAC'd with the public JWK, tampered, and plain garbage.
async fn forgeries(app: &TestApp, real: &str) -> Vec<(String, String)> {
    let kid = jwt_header(real)["kid"].as_str().expect("kid").to_owned();
    let mut parts = real.split('.');
    let (real_header, payload, real_sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let jwks: Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the real kid is published")
        .clone();
    let h = |v: Value| b64(v.to_string().as_bytes());

    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let foreign = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let es256 = |header: Value| {
        let input = format!("{}.{payload}", h(header));
        let sig = foreign.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let hs256 = |secret: &[u8]| {
        let input = format!(
            "{}.{payload}",
            h(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}))
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        format!(
            "{input}.{}",
            b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let mut claims = jwt_payload(real);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let tampered = format!(
        "{real_header}.{}.{real_sig}",
        b64(claims.to_string().as_bytes())
    );

    vec![
        (
            "alg none".into(),
            format!("{}.{payload}.", h(json!({"alg": "none", "typ": "at+jwt"}))),
        ),
        (
            "alg none with the real kid".into(),
            format!(
                "{}.{payload}.",
                h(json!({"alg": "none", "typ": "at+jwt", "kid": kid}))
            ),
        ),
        (
            "alg None, real signature".into(),
            format!(
                "{}.{payload}.{real_sig}",
                h(json!({"alg": "None", "typ": "at+jwt", "kid": kid}))
            ),
        ),
        (
            "foreign ES256 key, real kid".into(),
            es256(json!({"alg": "ES256", "typ": "at+jwt", "kid": kid})),
        ),
        (
            "foreign ES256 key, unknown kid".into(),
            es256(json!({"alg": "ES256", "typ": "at+jwt", "kid": "not-a-kid"})),
        ),
        (
            "foreign ES256 key, no kid".into(),
            es256(json!({"alg": "ES256", "typ": "at+jwt"})),
        ),
        (
            "HS256 with the public JWK as secret".into(),
            hs256(jwk.to_string().as_bytes()),
        ),
        (
            "HS256 with the JWK x coordinate as secret".into(),
            hs256(jwk["x"].as_str().unwrap_or("").as_bytes()),
        ),
        ("tampered payload, real signature".into(), tampered),
        (
            "signature stripped".into(),
            format!("{real_header}.{payload}."),
        ),
        (
            "crit header".into(),
            format!(
                "{}.{payload}.{real_sig}",
                h(json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["exp"]}))
            ),
        ),
        ("garbage".into(), "not-a-token".into()),
        ("three garbage parts".into(), "a.b.c".into()),
        ("four parts".into(), format!("{real}.x")),
        (
            "header not JSON".into(),
            format!("{}.{payload}.{real_sig}", b64(b"{")),
        ),
        (
            "oversized".into(),
            format!("{real_header}.{}.{real_sig}", "A".repeat(40 * 1024)),
        ),
    ]
}

/// Authorization headers that carry no usable bearer token.
const MALFORMED_AUTHORIZATION: [&str; 5] = [
    "Basic YWxpY2U6cHc=",
    "Bearer",
    "Token abc",
    "Bearerabc",
    "Bearer    ",
];

#[tokio::test]
async fn userinfo_bad_bearer_token_is_401_invalid_token() {
    let app = spawn_with_alice().await;
    let tokens = app
        .user_tokens(ALICE, ALICE_PASSWORD, "openid profile")
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    // Control: the real token works.
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut bad = forgeries(&app, access).await;
    bad.push(("ID token as access token".into(), id_token.to_owned()));
    for (name, token) in &bad {
        for post in [false, true] {
            let req = if post {
                app.http.post(app.url("/userinfo"))
            } else {
                app.http.get(app.url("/userinfo"))
            };
            let r = req.bearer_auth(token).send().await.unwrap();
            let ctx = format!("userinfo ({}) {name}", if post { "POST" } else { "GET" });
            let (headers, _) = oauth_error(r, 401, "invalid_token", &ctx).await;
            let challenge = header_str(&headers, WWW_AUTHENTICATE).unwrap_or("");
            assert!(
                challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
                "{ctx}: {challenge}"
            );
        }
    }
    for value in MALFORMED_AUTHORIZATION {
        let r = app
            .http
            .get(app.url("/userinfo"))
            .header(AUTHORIZATION, value)
            .send()
            .await
            .unwrap();
        let ctx = format!("userinfo, Authorization: {value}");
        let (headers, _) = oauth_error(r, 401, "invalid_token", &ctx).await;
        assert!(
            header_str(&headers, WWW_AUTHENTICATE).is_some_and(|c| c.starts_with("Bearer")),
            "{ctx}"
        );
    }

    // RFC 6750 §3.1: no credentials at all gets a bare challenge, without
    // an error code.
    let r = app.http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = header_str(r.headers(), WWW_AUTHENTICATE)
        .unwrap_or("")
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no credentials, no error code: {challenge}"
    );
    assert_eq!(header_str(r.headers(), CACHE_CONTROL), Some("no-store"));

    // A valid token without `openid` (an app token) is 403 insufficient_scope,
    // with the challenge RFC 6750 §3 requires.
    let app_token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    let (headers, _) =
        oauth_error(r, 403, "insufficient_scope", "userinfo with an app token").await;
    assert!(
        header_str(&headers, WWW_AUTHENTICATE)
            .is_some_and(|c| c.contains("error=\"insufficient_scope\"")),
        "{headers:?}"
    );
}

#[tokio::test]
async fn graph_bad_bearer_token_is_401_invalid_authentication_token() {
    let app = spawn_with_alice().await;
    let app_token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let delegated = app
        .user_tokens(ALICE, ALICE_PASSWORD, "openid User.Read")
        .await;
    let delegated = delegated["access_token"].as_str().unwrap().to_owned();
    let rp_tokens = app
        .user_tokens(ALICE, ALICE_PASSWORD, "openid profile")
        .await;
    let rp_access = rp_tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(rp_access)["aud"], RP_ID);
    // Controls: the real Graph tokens work on these two endpoints.
    let r = app
        .http
        .get(app.url("/v1.0/users"))
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/beta/me"))
        .bearer_auth(&delegated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let mut bad = forgeries(&app, &app_token).await;
    bad.extend(
        forgeries(&app, &delegated)
            .await
            .into_iter()
            .map(|(n, t)| (format!("{n} (delegated)"), t)),
    );
    bad.push((
        "ID token as access token".into(),
        rp_tokens["id_token"].as_str().unwrap().to_owned(),
    ));
    bad.push((
        "RP access token (aud = client)".into(),
        rp_access.to_owned(),
    ));
    for (name, token) in &bad {
        for path in ["/v1.0/users", "/beta/me"] {
            let r = app
                .http
                .get(app.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            graph_error(
                r,
                401,
                Some("InvalidAuthenticationToken"),
                &format!("GET {path}, {name}"),
            )
            .await;
        }
    }
    for value in MALFORMED_AUTHORIZATION {
        for path in ["/v1.0/users", "/beta/me"] {
            let r = app
                .http
                .get(app.url(path))
                .header(AUTHORIZATION, value)
                .send()
                .await
                .unwrap();
            graph_error(
                r,
                401,
                Some("InvalidAuthenticationToken"),
                &format!("GET {path}, Authorization: {value}"),
            )
            .await;
        }
    }
    for path in ["/v1.0/users", "/beta/me"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        graph_error(
            r,
            401,
            Some("InvalidAuthenticationToken"),
            &format!("GET {path}, no token"),
        )
        .await;
    }
    // A write with an RP token is refused before the body is looked at.
    let r = app
        .http
        .post(app.url("/v1.0/users"))
        .bearer_auth(rp_access)
        .json(&json!({"userPrincipalName": "mallory", "displayName": "Mallory"}))
        .send()
        .await
        .unwrap();
    graph_error(
        r,
        401,
        Some("InvalidAuthenticationToken"),
        "POST /v1.0/users with an RP token",
    )
    .await;
    assert!(
        app.state
            .directory
            .user_by_upn("mallory", app.clock.now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn bearer_expired_access_token_is_401_everywhere() {
    let app = spawn_with_alice().await;
    let app_token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    // offline_access: the grant outlives the access token, so only `exp`
    // can be what fails.
    let tokens = app
        .user_tokens(ALICE, ALICE_PASSWORD, "openid offline_access")
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/v1.0/users"))
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    app.clock
        .advance(time::Duration::minutes(10) + time::Duration::seconds(1));
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let (headers, body) = oauth_error(r, 401, "invalid_token", "userinfo, expired").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    assert!(
        header_str(&headers, WWW_AUTHENTICATE)
            .is_some_and(|c| c.contains("error=\"invalid_token\""))
    );
    for path in ["/v1.0/users", "/beta/me"] {
        let r = app
            .http
            .get(app.url(path))
            .bearer_auth(&app_token)
            .send()
            .await
            .unwrap();
        let message = graph_error(
            r,
            401,
            Some("InvalidAuthenticationToken"),
            &format!("GET {path}, expired"),
        )
        .await;
        assert!(message.contains("expired"), "{message}");
    }
    // The refresh token still works: the failure was the access token's age.
    let r = token_post(
        &app,
        Some((RP_ID, RP_SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------
// Graph API bodies and routes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn graph_malformed_json_body_is_400_naming_the_property() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let post = |body: String, content_type: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url("/v1.0/users"))
            .bearer_auth(&token)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.send()
    };
    let json_ct = Some("application/json");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<BodyCase> = vec![
        ("truncated JSON", "{".into(), json_ct, 400, None),
        ("empty body", String::new(), json_ct, 400, None),
        ("not an object", "[]".into(), json_ct, 400, None),
        ("null", "null".into(), json_ct, 400, None),
        ("deeply nested", deep, json_ct, 400, None),
        (
            "accountEnabled as a string",
            r#"{"userPrincipalName":"bad1","displayName":"Bad","accountEnabled":"yes"}"#.into(),
            json_ct,
            400,
            Some("accountEnabled"),
        ),
        (
            "userPrincipalName as a number",
            r#"{"userPrincipalName":5,"displayName":"Bad"}"#.into(),
            json_ct,
            400,
            Some("userPrincipalName"),
        ),
        (
            "missing userPrincipalName",
            r#"{"displayName":"Bad"}"#.into(),
            json_ct,
            400,
            Some("userPrincipalName"),
        ),
        (
            "missing displayName",
            r#"{"userPrincipalName":"bad2"}"#.into(),
            json_ct,
            400,
            Some("displayName"),
        ),
        (
            "passwordProfile without password",
            r#"{"userPrincipalName":"bad3","displayName":"Bad","passwordProfile":{}}"#.into(),
            json_ct,
            400,
            Some("password"),
        ),
        (
            "wrong content type",
            r#"{"userPrincipalName":"bad4","displayName":"Bad"}"#.into(),
            Some("text/plain"),
            415,
            None,
        ),
        (
            "no content type",
            r#"{"userPrincipalName":"bad5","displayName":"Bad"}"#.into(),
            None,
            415,
            None,
        ),
        (
            "form content type",
            "userPrincipalName=bad6&displayName=Bad".into(),
            Some(FORM),
            415,
            None,
        ),
    ];
    for (name, body, ct, status, property) in cases {
        let r = post(body, ct).await.unwrap();
        let message = graph_error(r, status, None, &format!("POST /v1.0/users, {name}")).await;
        if let Some(p) = property {
            assert!(
                message.contains(p),
                "{name}: message does not name {p}: {message}"
            );
        }
    }

    // PATCH parses the same way.
    let target = app.create_user("target", Some("target password")).await;
    let r = app
        .http
        .patch(app.url(&format!("/v1.0/users/{}", target.id)))
        .bearer_auth(&token)
        .json(&json!({"accountEnabled": "no"}))
        .send()
        .await
        .unwrap();
    let message = graph_error(r, 400, None, "PATCH accountEnabled as a string").await;
    assert!(message.contains("accountEnabled"), "{message}");
    let after = app
        .state
        .directory
        .user(target.id, app.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(after.account_enabled, "a refused PATCH changed nothing");

    // Nothing was half-written.
    let users = app
        .state
        .directory
        .list_users(app.clock.now())
        .await
        .unwrap();
    assert!(
        users
            .iter()
            .all(|u| !u.user_principal_name.starts_with("bad")),
        "{:?}",
        users
            .iter()
            .map(|u| &u.user_principal_name)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn graph_short_password_is_400_naming_the_property_without_echo() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let short = "Zq7#kP2"; // 7 characters
    let r = app
        .http
        .post(app.url("/v1.0/users"))
        .bearer_auth(&token)
        .json(&json!({
            "userPrincipalName": "shorty",
            "displayName": "Shorty",
            "passwordProfile": {"password": short}
        }))
        .send()
        .await
        .unwrap();
    let message = graph_error(r, 400, Some("Request_BadRequest"), "short password").await;
    assert!(message.contains("passwordProfile.password"), "{message}");
    assert!(
        !message.contains(short),
        "the password is echoed: {message}"
    );
    assert!(
        app.state
            .directory
            .user_by_upn("shorty", app.clock.now())
            .await
            .unwrap()
            .is_none()
    );

    // Control: eight characters are enough.
    let r = app
        .http
        .post(app.url("/v1.0/users"))
        .bearer_auth(&token)
        .json(&json!({
            "userPrincipalName": "shorty",
            "displayName": "Shorty",
            "passwordProfile": {"password": "Zq7#kP2x"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);

    // PATCH with a short password is refused the same way.
    let r = app
        .http
        .patch(app.url("/v1.0/users/shorty"))
        .bearer_auth(&token)
        .json(&json!({"passwordProfile": {"password": short}}))
        .send()
        .await
        .unwrap();
    let message = graph_error(r, 400, Some("Request_BadRequest"), "PATCH short password").await;
    assert!(
        message.contains("passwordProfile.password") && !message.contains(short),
        "{message}"
    );
}

#[tokio::test]
async fn graph_password_in_wrong_shape_is_not_echoed() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let secret = "Correct-Horse-Battery-9";
    for profile in [
        json!(secret),
        json!({"password": [secret]}),
        json!({"password": {"value": secret}}),
    ] {
        // serde's type errors quote the value they got; not here.
        let r = app
            .http
            .post(app.url("/v1.0/users"))
            .bearer_auth(&token)
            .json(&json!({"userPrincipalName": "echo", "displayName": "Echo", "passwordProfile": profile}))
            .send()
            .await
            .unwrap();
        let message = graph_error(r, 400, None, "password in the wrong shape").await;
        assert!(message.contains("passwordProfile"), "{message}");
        assert!(
            !message.contains(secret),
            "the password is echoed: {message}"
        );
    }
}

#[tokio::test]
async fn graph_oversized_json_body_is_413_graph_error() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let body =
        json!({"userPrincipalName": "huge", "displayName": "x".repeat(70 * 1024)}).to_string();
    let r = app
        .http
        .post(app.url("/v1.0/users"))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer, not a dropped connection");
    graph_error(r, 413, None, "70 KiB JSON").await;
    assert!(
        app.state
            .directory
            .user_by_upn("huge", app.clock.now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn graph_unknown_route_is_graph_shaped_error() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    for path in [
        "/v1.0/nonexistent",
        "/beta/users/x/y/z",
        "/v1.0/identity/nope",
        "/v1.0/",
    ] {
        for auth in [true, false] {
            let mut req = app.http.get(app.url(path));
            if auth {
                req = req.bearer_auth(&token);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            assert!(matches!(status, 400 | 404), "GET {path}: {status}");
            graph_error(r, status, None, &format!("GET {path}")).await;
        }
    }
    // An unknown user is a Graph 404, not an empty 200.
    let r = app
        .http
        .get(app.url("/v1.0/users/nobody@example.test"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error(r, 404, Some("Request_ResourceNotFound"), "unknown user").await;
    // Bad OData options name the option.
    for (q, needle) in [
        ("$top=0", "$top"),
        ("$top=abc", "$top"),
        ("$bogus=1", "$bogus"),
        ("$filter=nonsense", "$filter"),
    ] {
        let r = app
            .http
            .get(format!("{}?{q}", app.url("/v1.0/users")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let message = graph_error(
            r,
            400,
            Some("Request_BadRequest"),
            &format!("GET /v1.0/users?{q}"),
        )
        .await;
        assert!(message.contains(needle), "{q}: {message}");
    }
}

#[tokio::test]
async fn graph_wrong_method_or_undecodable_path_is_graph_shaped_error() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    for (method, path, status) in [
        (reqwest::Method::PUT, "/v1.0/users", 405),
        (reqwest::Method::DELETE, "/beta/me", 405),
        (reqwest::Method::GET, "/v1.0/users/%FF%FE", 400),
    ] {
        let r = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        graph_error(r, status, None, &format!("{method} {path}")).await;
    }
}

// ---------------------------------------------------------------------------
// /revoke, /introspect
// ---------------------------------------------------------------------------

#[tokio::test]
async fn revoke_and_introspect_bad_request_gives_oauth_error() {
    let app = TestApp::spawn().await;
    for endpoint in ["/revoke", "/introspect"] {
        let post = |basic: Option<(&str, &str)>, form: Vec<(&'static str, &'static str)>| {
            let mut req = app.http.post(app.url(endpoint)).form(&form);
            if let Some((id, s)) = basic {
                req = req.basic_auth(id, Some(s));
            }
            req.send()
        };
        let rp = Some((RP_ID, RP_SECRET));
        let cases: Vec<(&str, Basic, Form, u16, &str)> = vec![
            ("missing token", rp, vec![], 400, "invalid_request"),
            (
                "repeated token",
                rp,
                vec![("token", "a"), ("token", "b")],
                400,
                "invalid_request",
            ),
            (
                "unauthenticated",
                None,
                vec![("token", "x")],
                401,
                "invalid_client",
            ),
            (
                "wrong secret",
                Some((RP_ID, "wrong")),
                vec![("token", "x")],
                401,
                "invalid_client",
            ),
            (
                "unknown client",
                Some(("nobody", "x")),
                vec![("token", "x")],
                401,
                "invalid_client",
            ),
        ];
        for (name, basic, form, status, code) in cases {
            let r = post(basic, form).await.unwrap();
            oauth_error(r, status, code, &format!("{endpoint}, {name}")).await;
        }
        let r = app
            .http
            .post(app.url(endpoint))
            .basic_auth(RP_ID, Some(RP_SECRET))
            .json(&json!({"token": "x"}))
            .send()
            .await
            .unwrap();
        oauth_error(r, 400, "invalid_request", &format!("{endpoint}, JSON body")).await;
    }
    // RFC 7662 §2.1: introspection needs an authenticated confidential client.
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[("client_id", SPA_ID), ("token", "x")])
        .send()
        .await
        .unwrap();
    oauth_error(r, 401, "invalid_client", "/introspect as the public client").await;
    // Controls: the same requests from the right clients succeed.
    let r = app
        .http
        .post(app.url("/revoke"))
        .form(&[("client_id", SPA_ID), ("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "RFC 7009: a public client may revoke");
    let r = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
}

// ---------------------------------------------------------------------------
// /logout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn logout_bad_hint_or_unregistered_uri_shows_page_and_keeps_session() {
    let app = spawn_with_alice().await;
    let browser = app.browser();
    let code = code_for(&app, &browser, RP_ID, "openid").await;
    let r = token_post(
        &app,
        Some((RP_ID, RP_SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let tokens: Value = r.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let forged_hint = {
        let mut p = id_token.split('.');
        let (h, _, s) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        let mut claims = jwt_payload(id_token);
        claims["aud"] = json!(SPA_ID);
        format!("{h}.{}.{s}", b64(claims.to_string().as_bytes()))
    };

    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("garbage id_token_hint", vec![("id_token_hint", "garbage")]),
        (
            "access token as id_token_hint",
            vec![("id_token_hint", access)],
        ),
        (
            "tampered id_token_hint",
            vec![("id_token_hint", &forged_hint)],
        ),
        (
            "unregistered post_logout_redirect_uri with a hint",
            vec![
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        ),
        (
            "unregistered post_logout_redirect_uri with client_id",
            vec![
                ("client_id", RP_ID),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        ),
        (
            "registered uri with a trailing path",
            vec![
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", "http://127.0.0.1:9000/x"),
            ],
        ),
        (
            "post_logout_redirect_uri without a client",
            vec![("post_logout_redirect_uri", RP_LOGOUT_REDIRECT)],
        ),
        (
            "post_logout_redirect_uri of another client",
            vec![
                ("client_id", SPA_ID),
                ("post_logout_redirect_uri", RP_LOGOUT_REDIRECT),
            ],
        ),
        (
            "client_id contradicting the hint",
            vec![("id_token_hint", id_token), ("client_id", SPA_ID)],
        ),
        (
            "repeated id_token_hint",
            vec![("id_token_hint", id_token), ("id_token_hint", id_token)],
        ),
    ];
    for (name, pairs) in &cases {
        let r = browser
            .http
            .get(format!("{}?{}", app.url("/logout"), encode(pairs)))
            .send()
            .await
            .unwrap();
        error_page(r, 400, &format!("GET /logout, {name}")).await;
        let r = browser
            .http
            .post(app.url("/logout"))
            .form(pairs)
            .send()
            .await
            .unwrap();
        error_page(r, 400, &format!("POST /logout, {name}")).await;
    }
    // The session survived every refused logout: single sign-on still works.
    let again = code_for(&app, &browser, RP_ID, "openid").await;
    assert!(!again.is_empty());
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the session-bound token is still live");
}

// ---------------------------------------------------------------------------
// Sign-in form posts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn signin_forged_or_foreign_flow_is_4xx_page() {
    let app = spawn_with_alice().await;
    let browser = app.browser();
    let q = with(&authorize_pairs(RP_ID), &[], &[]);
    let page = browser.get(&format!("/authorize?{q}")).await;
    assert!(page.has_label("Username"));
    let flow = page.hidden("flow").unwrap();
    let csrf = page.hidden("csrf").unwrap();
    let foreign_flow = b64(&[7u8; 32]);
    assert_eq!(foreign_flow.len(), flow.len());
    let stranger = app.browser(); // no binding cookie

    for path in ["/signin/username", "/signin/password"] {
        let cases: Vec<(&str, &Browser, Form, u16)> = vec![
            (
                "missing flow",
                &browser,
                vec![("csrf", &csrf), ("username", ALICE)],
                400,
            ),
            (
                "foreign flow id",
                &browser,
                vec![
                    ("flow", &foreign_flow),
                    ("csrf", &csrf),
                    ("username", ALICE),
                ],
                400,
            ),
            (
                "short flow id",
                &browser,
                vec![("flow", "abc"), ("csrf", &csrf), ("username", ALICE)],
                400,
            ),
            (
                "missing csrf",
                &browser,
                vec![("flow", &flow), ("username", ALICE)],
                400,
            ),
            (
                "wrong csrf",
                &browser,
                vec![("flow", &flow), ("csrf", "wrong"), ("username", ALICE)],
                403,
            ),
            (
                "csrf of length zero",
                &browser,
                vec![("flow", &flow), ("csrf", ""), ("username", ALICE)],
                403,
            ),
            (
                "another browser",
                &stranger,
                vec![("flow", &flow), ("csrf", &csrf), ("username", ALICE)],
                400,
            ),
            (
                "repeated field",
                &browser,
                vec![
                    ("flow", &flow),
                    ("csrf", &csrf),
                    ("username", ALICE),
                    ("username", "admin"),
                ],
                400,
            ),
        ];
        for (name, who, form, status) in cases {
            let r = who
                .http
                .post(app.url(path))
                .form(&form)
                .send()
                .await
                .unwrap();
            error_page(r, status, &format!("POST {path}, {name}")).await;
        }
        let r = browser
            .http
            .post(app.url(path))
            .json(&json!({"flow": flow, "csrf": csrf, "username": ALICE}))
            .send()
            .await
            .unwrap();
        error_page(r, 400, &format!("POST {path}, JSON body")).await;
    }
    for path in ["/signin/password", "/signin/restart"] {
        for (name, who, query) in [
            ("foreign flow", &browser, format!("flow={foreign_flow}")),
            ("another browser", &stranger, format!("flow={flow}")),
            ("no flow", &browser, String::new()),
            ("invalid UTF-8 flow", &browser, "flow=%FF%FE".to_owned()),
        ] {
            let r = who
                .http
                .get(format!("{}?{query}", app.url(path)))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!((400..500).contains(&status), "GET {path}, {name}: {status}");
            assert!(
                r.headers().get(LOCATION).is_none(),
                "GET {path}, {name}: redirected"
            );
        }
    }

    // Control: after all that, the real browser's flow still signs in.
    let done = browser
        .submit_credentials(&page, ALICE, ALICE_PASSWORD)
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert!(done.location.unwrap().starts_with(RP_REDIRECT));
}

// ---------------------------------------------------------------------------
// Sweep: garbage everywhere, never a 5xx
// ---------------------------------------------------------------------------

/// Deterministic noise (xorshift64*), so a failure reproduces.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Writes `request` to a fresh connection and reads the response status.
async fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    // The server may answer (414, 431) and close before reading it all.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&response);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status line (connection dropped?): {line:?}"))
}

#[tokio::test]
async fn every_endpoint_garbage_request_is_never_5xx() {
    let app = spawn_with_alice().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let target = app.create_user("target", Some("target password")).await;
    let user_path = format!("/v1.0/users/{}", target.id);
    let endpoints: Vec<(&str, String)> = [
        ("GET", "/authorize"),
        ("POST", "/authorize"),
        ("POST", "/signin/username"),
        ("GET", "/signin/password"),
        ("POST", "/signin/password"),
        ("GET", "/signin/restart"),
        ("POST", "/token"),
        ("GET", "/token"),
        ("GET", "/userinfo"),
        ("POST", "/userinfo"),
        ("POST", "/revoke"),
        ("POST", "/introspect"),
        ("GET", "/logout"),
        ("POST", "/logout"),
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/jwks"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/static/gatepass.css"),
        ("GET", "/v1.0/users"),
        ("POST", "/v1.0/users"),
        ("PUT", "/v1.0/users"),
        ("GET", "/beta/me"),
        ("POST", "/v1.0/me/revokeSignInSessions"),
        ("POST", "/v1.0/groups"),
        ("POST", "/v1.0/groups/%FF%FE/members/$ref"),
        ("POST", "/v1.0/roleManagement/directory/roleAssignments"),
        ("GET", "/v1.0/auditLogs/signIns"),
        ("GET", "/v1.0/users/%FF%FE"),
        ("DELETE", "/v1.0/users/%FF%FE"),
        ("GET", "/nonexistent"),
    ]
    .into_iter()
    .map(|(m, p)| (m, p.to_owned()))
    .chain([("PATCH", user_path.clone()), ("GET", user_path.clone())])
    .collect();

    let many_params: String = (0..4000).map(|i| format!("k{i}=v&")).collect();
    let bad_escapes =
        "%FF%FE=%FF%FE&client_id=%FF&redirect_uri=%C3%28&flow=%FF&state=%00&scope=%FF&%=%&&&==";
    let mut failures = Vec::new();
    let mut sent = 0;
    for (method, path) in &endpoints {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut variants: Vec<(String, Option<&str>, Vec<u8>, String)> = Vec::new();
        for (i, ct) in [
            Some(FORM),
            Some("application/json"),
            None,
            Some("multipart/form-data; boundary=x"),
        ]
        .into_iter()
        .enumerate()
        {
            variants.push((
                format!("noise body, {ct:?}"),
                ct,
                noise(i as u64 + 1, 4096),
                String::new(),
            ));
        }
        variants.push((
            "4000 parameters".into(),
            None,
            Vec::new(),
            many_params.clone(),
        ));
        variants.push((
            "invalid escapes in query".into(),
            None,
            Vec::new(),
            bad_escapes.to_owned(),
        ));
        variants.push((
            "invalid escapes in form".into(),
            Some(FORM),
            bad_escapes.as_bytes().to_vec(),
            String::new(),
        ));
        variants.push((
            "deep JSON".into(),
            Some("application/json"),
            format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000)).into_bytes(),
            String::new(),
        ));
        variants.push(("JSON of wrong types".into(), Some("application/json"), br#"{"userPrincipalName":[1],"displayName":{},"accountEnabled":"x","principalId":7,"roleDefinitionId":null,"@odata.id":5,"passwordProfile":1}"#.to_vec(), String::new()));
        for (name, ct, body, query) in variants {
            let auths: [Option<Vec<u8>>; 3] = [
                None,
                Some(format!("Bearer {token}").into_bytes()),
                Some(b"Bearer \xff\xfe garbage".to_vec()),
            ];
            for auth in auths {
                let url = if query.is_empty() {
                    app.url(path)
                } else {
                    format!("{}?{query}", app.url(path))
                };
                let mut req = app.http.request(method.clone(), url);
                if let Some(ct) = ct {
                    req = req.header(CONTENT_TYPE, ct);
                }
                if let Some(a) = &auth {
                    req = req.header(
                        AUTHORIZATION,
                        reqwest::header::HeaderValue::from_bytes(a).unwrap(),
                    );
                }
                if !body.is_empty() {
                    req = req.body(body.clone());
                }
                sent += 1;
                let ctx = format!("{method} {path}, {name}, auth {}", auth.is_some());
                match req.send().await {
                    Ok(r) if r.status().is_server_error() => {
                        let status = r.status();
                        failures.push(format!(
                            "{ctx}: {status} {}",
                            r.text().await.unwrap_or_default()
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => failures.push(format!("{ctx}: no response ({e})")),
                }
            }
        }
    }
    // Requests a well-behaved client library refuses to build: a ~100 KiB
    // query (over `http::Uri`'s limit) and raw non-ASCII bytes in the
    // request target. Sent over a bare socket.
    let huge_query = format!("a={}", "x".repeat(100 * 1024));
    for (method, path) in &endpoints {
        for target in [
            format!("{path}?{huge_query}"),
            format!("{path}?flow=\u{fffd}\u{0}&state=\u{e9}"),
        ] {
            sent += 1;
            let head = format!(
                "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            match raw_status(app.addr, head.as_bytes()).await {
                Ok(status) if status >= 500 => failures.push(format!(
                    "raw {method} {path} ({} bytes): {status}",
                    target.len()
                )),
                Ok(_) => {}
                Err(e) => {
                    failures.push(format!("raw {method} {path} ({} bytes): {e}", target.len()))
                }
            }
        }
    }
    assert!(sent > 300, "the sweep ran ({sent} requests)");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The server is still healthy and the target untouched.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let after = app
        .state
        .directory
        .user(target.id, app.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.display_name, target.display_name);
    assert!(after.account_enabled);
}
