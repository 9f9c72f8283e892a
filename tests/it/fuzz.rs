//! Property tests (proptest) for every parser that takes network input:
//! authorization and token parameters, Graph JSON bodies, conditional-access
//! policy JSON, `$filter`, cookies and JWT-shaped bearer tokens. Whatever
//! arrives, Gatepass never panics, never answers 5xx, and always answers in
//! the shape the protocol promises (an OAuth error, a Graph error).
//!
//! Requests go through the real router in process (`oneshot`), so each case
//! costs a fraction of a millisecond; inputs are built from the protocols'
//! own parameter and property names so they reach deep into the parsers,
//! not only the first check.

use crate::graph_client::automation;
use crate::harness::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use gatepass::clock::Clock;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use tower::ServiceExt;

/// Cases per property (each is one in-process request); more with
/// `GATEPASS_TEST_FUZZ_CASES` for a longer hunt than CI's.
const CASES: u32 = 200;

fn runner() -> TestRunner {
    let cases = std::env::var("GATEPASS_TEST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A Gatepass to fuzz and a runtime to drive it from proptest's loop.
struct Target {
    rt: tokio::runtime::Runtime,
    app: TestApp,
    token: String,
}

impl Target {
    fn new() -> Target {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (app, token) = rt.block_on(async {
            let app = TestApp::spawn().await;
            app.create_user("fuzz@contoso.com", Some("fuzz password 1"))
                .await;
            let token = automation(&app).await;
            (app, token)
        });
        Target { rt, app, token }
    }

    /// Sends `request` through the router; status, content type, body.
    fn send(&self, request: Request<Body>) -> (StatusCode, String, Value) {
        let router = gatepass::router(self.app.state.clone());
        self.rt.block_on(async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, content_type, body)
        })
    }
}

/// Never a 5xx; a 4xx is JSON whose error has the API's shape.
fn error_shaped(
    what: &str,
    (status, content_type, body): &(StatusCode, String, Value),
    shape: &str,
    has_shape: impl Fn(&Value) -> bool,
) -> Result<(), TestCaseError> {
    prop_assert!(!status.is_server_error(), "{what}: {status} {body}");
    if status.is_client_error() {
        prop_assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        prop_assert!(has_shape(body), "{what}: not {shape}: {body}");
    }
    Ok(())
}

/// Never a 5xx; a 4xx on a JSON API is an OAuth error.
fn oauth_shaped(what: &str, answer: &(StatusCode, String, Value)) -> Result<(), TestCaseError> {
    error_shaped(what, answer, "an OAuth error", |b| b["error"].is_string())
}

/// Never a 5xx; a 4xx is a Graph error `{"error":{"code","message"}}`.
fn graph_shaped(what: &str, answer: &(StatusCode, String, Value)) -> Result<(), TestCaseError> {
    error_shaped(what, answer, "a Graph error", |b| {
        b["error"]["code"].is_string() && b["error"]["message"].is_string()
    })
}

/// Text from the parts parsers choke on: separators, escapes, quotes,
/// control characters, non-ASCII, very long runs.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 %&=+;,'\"\\\\/:.?#\\[\\]{}()<>\\x00-\\x1f\u{7f}é€🔑-]{0,64}",
        Just(String::new()),
        (1usize..5000).prop_map(|n| "a".repeat(n)),
    ]
}

/// A query string or form body of known and unknown parameters.
fn params(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        4 => proptest::sample::select(names).prop_map(str::to_owned),
        1 => nasty_text(),
    ];
    proptest::collection::vec((name, nasty_text(), any::<bool>()), 0..12).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, encode)| {
                if encode {
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair(&k, &v)
                        .finish()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// JSON built from Graph's and conditional access's property names.
fn graph_json() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "userPrincipalName",
        "displayName",
        "mail",
        "accountEnabled",
        "passwordProfile",
        "password",
        "forceChangePasswordNextSignIn",
        "id",
        "@odata.type",
        "isUsableOnce",
        "startDateTime",
        "lifetimeInMinutes",
        "perUserMfaState",
        "state",
        "conditions",
        "users",
        "includeUsers",
        "excludeUsers",
        "includeGroups",
        "includeRoles",
        "applications",
        "includeApplications",
        "includeUserActions",
        "clientAppTypes",
        "locations",
        "platforms",
        "grantControls",
        "operator",
        "builtInControls",
        "authenticationStrength",
        "sessionControls",
        "signInFrequency",
        "value",
        "type",
        "isEnabled",
        "allowedCombinations",
        "ipRanges",
        "cidrAddress",
        "principalId",
        "roleDefinitionId",
        "directoryScopeId",
        "@odata.id",
        "includeTargets",
        "excludeTargets",
        "defaultLength",
        "signInIdentity",
        "signInContext",
        "userId",
        "authenticationMethods",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        nasty_text().prop_map(Value::from),
        proptest::sample::select(
            &[
                "All",
                "enabled",
                "block",
                "mfa",
                "OR",
                "AND",
                "None",
                "urn:user:registersecurityinfo",
                "10.0.0.0/8",
                "2024-01-01T00:00:00Z",
                "00000000-0000-0000-0000-000000000002"
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(KEYS).prop_map(str::to_owned),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Strings shaped like compact JWTs: three base64url segments of JSON-ish
/// or random bytes, with DPoP-ish and hostile headers.
fn jwt_like() -> impl Strategy<Value = String> {
    use base64::Engine as _;
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = prop_oneof![
        graph_json().prop_map(|v| v.to_string().into_bytes()),
        proptest::sample::select(&[
            r#"{"alg":"none","typ":"at+jwt"}"#,
            r#"{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}"#,
            r#"{"alg":"HS256","kid":"../../etc/passwd"}"#,
            r#"{"alg":"RS256","kid":"0","jku":"http://evil.example/jwks"}"#,
            r#"{"alg":"EdDSA","crit":["exp"]}"#,
        ][..])
        .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    let claims = prop_oneof![
        graph_json().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..128),
    ];
    (
        header,
        claims,
        proptest::collection::vec(any::<u8>(), 0..96),
        0usize..4,
    )
        .prop_map(move |(h, c, sig, dots)| {
            let mut token = format!("{}.{}.{}", b64(h), b64(c), b64(sig));
            token.push_str(&".x".repeat(dots));
            token
        })
}

const AUTHORIZE_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "claims",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
    "registration",
    "id_token_hint",
];
const TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "token",
    "token_type_hint",
];

#[test]
fn fuzz_authorize_parameters_never_fail_the_server() {
    let t = Target::new();
    // Half the cases carry the registered client and redirect URI, so the
    // rest of the request is parsed too.
    let known = format!(
        "client_id={RP_ID}&redirect_uri={}&",
        url::form_urlencoded::byte_serialize(RP_REDIRECT.as_bytes()).collect::<String>()
    );
    runner()
        .run(
            &(params(AUTHORIZE_PARAMS), any::<bool>()),
            |(query, anchored)| {
                let query = if anchored {
                    format!("{known}{query}")
                } else {
                    query
                };
                for request in [
                    Request::get(format!("/authorize?{query}")).body(Body::empty()),
                    Request::post("/authorize")
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Body::from(query.clone())),
                    Request::get(format!("/logout?{query}")).body(Body::empty()),
                ] {
                    // A query the HTTP layer cannot parse never reaches Gatepass.
                    let Ok(request) = request else { continue };
                    let (status, _, _) = t.send(request);
                    prop_assert!(!status.is_server_error(), "{status} for {query:?}");
                }
                // The parser itself, with and without a registered client.
                if let Ok(p) = gatepass::protocol::params::Params::parse(&query) {
                    let client = t.app.state.settings.client(RP_ID);
                    let _ = gatepass::protocol::authorize::validate(&p, client);
                    let _ = gatepass::protocol::authorize::validate(&p, None);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_token_introspection_and_revocation_answer_oauth_errors() {
    let t = Target::new();
    runner()
        .run(
            &(params(TOKEN_PARAMS), any::<bool>()),
            |(body, authenticated)| {
                for path in ["/token", "/introspect", "/revoke"] {
                    let mut request = Request::post(path)
                        .header("content-type", "application/x-www-form-urlencoded");
                    if authenticated {
                        request = request
                            .header("authorization", "Basic cnA6cnAtc2VjcmV0LTAxMjM0NTY3ODk=");
                    }
                    let answer = t.send(request.body(Body::from(body.clone())).unwrap());
                    oauth_shaped(&format!("{path} {body:?}"), &answer)?;
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_graph_json_bodies_answer_graph_errors() {
    let t = Target::new();
    let user =
        t.rt.block_on(
            t.app
                .state
                .directory
                .user_by_upn("fuzz@contoso.com", t.app.clock.now()),
        )
        .unwrap()
        .unwrap();
    let uid = user.id.to_string();
    let endpoints: Vec<(&str, String)> = vec![
        ("POST", "/v1.0/users".into()),
        ("PATCH", format!("/v1.0/users/{uid}")),
        ("POST", format!("/v1.0/users/{uid}/authentication/temporaryAccessPassMethods")),
        ("PATCH", format!("/v1.0/users/{uid}/authentication/requirements")),
        ("PATCH", "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass".into()),
        ("POST", "/v1.0/identity/conditionalAccess/policies".into()),
        ("POST", "/v1.0/identity/conditionalAccess/namedLocations".into()),
        ("POST", "/v1.0/identity/conditionalAccess/authenticationStrength/policies".into()),
        ("POST", "/v1.0/identity/conditionalAccess/evaluate".into()),
        ("POST", "/v1.0/roleManagement/directory/roleAssignments".into()),
        ("POST", "/v1.0/groups".into()),
    ];
    runner()
        .run(
            &(graph_json(), proptest::sample::select(endpoints)),
            |(body, (method, path))| {
                let request = Request::builder()
                    .method(method)
                    .uri(&path)
                    .header("authorization", format!("Bearer {}", t.token))
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap();
                graph_shaped(&format!("{method} {path} {body}"), &t.send(request))
            },
        )
        .unwrap();
}

#[test]
fn fuzz_graph_raw_bodies_and_odata_queries_answer_graph_errors() {
    let t = Target::new();
    let query_names: &'static [&'static str] = &[
        "$filter",
        "$top",
        "$skiptoken",
        "$select",
        "$count",
        "$orderby",
        "$expand",
        "$search",
    ];
    let filter = prop_oneof![
        nasty_text(),
        (nasty_text(), nasty_text()).prop_map(|(p, v)| format!("{p} eq '{v}'")),
    ];
    runner()
        .run(
            &(params(query_names), filter, nasty_text()),
            |(query, filter, raw_body)| {
                let filtered = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("$filter", &filter)
                    .finish();
                for path in [
                    format!("/v1.0/users?{query}"),
                    format!("/v1.0/users?{filtered}"),
                    format!("/v1.0/auditLogs/signIns?{query}"),
                    format!("/beta/auditLogs/directoryAudits?{filtered}"),
                    format!("/v1.0/groups?{query}"),
                    format!("/v1.0/roleManagement/directory/roleAssignments?{filtered}"),
                ] {
                    let request = Request::get(&path)
                        .header("authorization", format!("Bearer {}", t.token))
                        .body(Body::empty());
                    // An unparsable URI is refused by the HTTP layer itself.
                    let Ok(request) = request else { continue };
                    graph_shaped(&path, &t.send(request))?;
                }
                let request = Request::post("/v1.0/users")
                    .header("authorization", format!("Bearer {}", t.token))
                    .header("content-type", "application/json")
                    .body(Body::from(raw_body.clone()))
                    .unwrap();
                graph_shaped(&format!("raw body {raw_body:?}"), &t.send(request))?;
                let _ = gatepass::graph::ListQuery::parse(Some(&query));
                let _ = gatepass::graph::ListQuery::parse_paged(Some(&filtered));
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_conditional_access_json_never_panics_the_engine() {
    use gatepass::policy::conditional_access::{
        SignInContext, StrengthSet, Target as CaTarget, evaluate, load_locations, load_policies,
        load_strengths,
    };
    runner()
        .run(
            &(graph_json(), graph_json(), graph_json()),
            |(policy, strength, location)| {
                let now = gatepass::clock::SystemClock.now();
                let policies = load_policies(&policy.to_string()).unwrap_or_default();
                let strengths = load_strengths(&strength.to_string()).unwrap_or_default();
                let locations = load_locations(&location.to_string()).unwrap_or_default();
                let set = StrengthSet::with_custom(strengths.clone());
                for p in &policies {
                    let _ = p.validate(&set, &locations);
                }
                for s in &strengths {
                    let _ = s.validate();
                }
                for l in &locations {
                    let _ = l.validate();
                }
                let mut context = SignInContext::live("fuzz", CaTarget::application("app"))
                    .with_methods(&[gatepass::authn::AuthMethod::Password]);
                context.ip_address = Some("10.1.2.3".parse().unwrap());
                let _ = evaluate(&policies, &set, &locations, &context, now);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn fuzz_cookies_and_bearer_tokens_are_refused_cleanly() {
    let t = Target::new();
    let cookie = prop_oneof![
        nasty_text(),
        (nasty_text(), nasty_text())
            .prop_map(|(a, b)| format!("gp_session={a}; gp_binding={b}; __Host-gp_session={a}")),
    ];
    runner()
        .run(
            &(jwt_like(), cookie, nasty_text()),
            |(jwt, cookie, scheme)| {
                for authorization in [
                    format!("Bearer {jwt}"),
                    format!("DPoP {jwt}"),
                    format!("{scheme} {jwt}"),
                ] {
                    for path in ["/userinfo", "/v1.0/me", "/v1.0/users"] {
                        let Ok(request) = Request::get(path)
                            .header("authorization", authorization.as_str())
                            .body(Body::empty())
                        else {
                            continue;
                        };
                        let (status, _, body) = t.send(request);
                        prop_assert!(
                            status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
                            "{path} with {authorization:?}: {status} {body}"
                        );
                    }
                }
                // An ID token hint is a JWT from the network too.
                let _ = t.app.state.tokens.check_id_token_hint(&jwt);
                for path in [
                    "/account/security-info",
                    "/signin/password?flow=x",
                    "/authorize",
                ] {
                    let Ok(request) = Request::get(path)
                        .header("cookie", cookie.as_str())
                        .body(Body::empty())
                    else {
                        continue;
                    };
                    let (status, _, _) = t.send(request);
                    prop_assert!(
                        !status.is_server_error(),
                        "{path} with cookie {cookie:?}: {status}"
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    // Nothing above signed anyone in.
    let log =
        t.rt.block_on(t.app.state.audit.sign_ins(t.app.clock.now()))
            .unwrap();
    assert!(log.iter().all(|e| e.status.error_code != 0));
}
