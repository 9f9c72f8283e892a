//! `private_key_jwt` client authentication (RFC 7523) through real HTTP: a
//! relying party with its own P-256 key signs client assertions; its keys
//! are in the configuration (`jwks`) or served by a small HTTP server in the
//! test (`jwks_uri`), which can be slow or rotate its key.

use crate::harness::*;
use gatepass::clock::Clock;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A `private_key_jwt` client whose key is in the configuration.
pub const PKJ_ID: &str = "pkj";
/// A `private_key_jwt` client whose keys are at a `jwks_uri`.
pub const PKJ_URI_ID: &str = "pkj-uri";

/// A relying party's signing key: a fresh P-256 pair.
pub struct RpKey {
    pub kid: String,
    encoding: EncodingKey,
    /// The public JWK (with `kid`).
    pub jwk: Value,
}

impl RpKey {
    pub fn generate(kid: &str) -> RpKey {
        use base64::Engine as _;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        RpKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
        }
    }

    /// The key as a TOML inline JWK Set for `jwks = …`.
    pub fn toml_jwks(&self) -> String {
        format!(
            "{{ keys = [ {{ kty = \"EC\", crv = \"P-256\", kid = \"{}\", x = \"{}\", y = \"{}\" }} ] }}",
            self.kid,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        )
    }
}

/// A random `jti`.
pub fn fresh_jti() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client assertion's claims; [`Assertion::sign`] makes the JWT.
#[derive(Clone)]
pub struct Assertion {
    pub claims: Value,
}

impl Assertion {
    /// `iss` = `sub` = `client_id`, `aud` = `aud`, valid for 60 s from
    /// `now`, a fresh `jti`.
    pub fn new(client_id: &str, aud: &str, now: i64) -> Assertion {
        Assertion {
            claims: json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": now,
                           "exp": now + 60, "jti": fresh_jti()}),
        }
    }

    pub fn with(mut self, claim: &str, value: Value) -> Assertion {
        self.claims[claim] = value;
        self
    }

    pub fn sign(&self, key: &RpKey) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &self.claims, &key.encoding).unwrap()
    }
}

/// The extra config for the `pkj` client (client_credentials and the code
/// flow) with `key` inline.
pub fn pkj_client(key: &RpKey) -> String {
    format!(
        "[[clients]]\nclient_id = \"{PKJ_ID}\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
         jwks = {}\nredirect_uris = [\"{RP_REDIRECT}\"]\n\
         grant_types = [\"authorization_code\", \"client_credentials\"]\n",
        key.toml_jwks()
    )
}

/// Posts `form` to `path` (no client authentication beyond the form).
pub async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A client_credentials request authenticated by `assertion`.
pub async fn client_credentials(app: &TestApp, assertion: &str) -> (u16, Value) {
    post(
        app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().unix_timestamp()
}

/// A `jwks_uri` server: serves `keys`, counts fetches, may answer slowly.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

impl JwksServer {
    async fn start(keys: Value) -> JwksServer {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (k, f, d) = (keys.clone(), fetches.clone(), delay.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (k, f, d) = (k.clone(), f.clone(), d.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let wait = *d.lock().unwrap();
                    tokio::time::sleep(wait).await;
                    let body = k.lock().unwrap().clone();
                    axum::Json(body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/jwks",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        JwksServer {
            url,
            keys,
            fetches,
            delay,
        }
    }

    fn serve(&self, keys: &[&RpKey]) {
        *self.keys.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn app_with_uri_client(server: &JwksServer) -> TestApp {
    TestApp::spawn_with(&format!(
        "[[clients]]\nclient_id = \"{PKJ_URI_ID}\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
         jwks_uri = \"{}\"\ngrant_types = [\"client_credentials\"]\n",
        server.url
    ))
    .await
}

#[tokio::test]
async fn private_key_jwt_inline_key_gets_a_token_with_issuer_or_endpoint_audience() {
    let key = RpKey::generate("k1");
    let app = TestApp::spawn_with(&pkj_client(&key)).await;
    for aud in [app.issuer.clone(), app.url("/token")] {
        let a = Assertion::new(PKJ_ID, &aud, now(&app)).sign(&key);
        let (status, body) = client_credentials(&app, &a).await;
        assert_eq!(status, 200, "aud {aud}: {body}");
        assert_eq!(body["token_type"], "Bearer");
    }
    // client_id in the body, naming the same client, is fine too.
    let a = Assertion::new(PKJ_ID, &app.issuer, now(&app)).sign(&key);
    let (status, _) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", PKJ_ID),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn private_key_jwt_bad_assertions_are_refused_with_invalid_client() {
    let key = RpKey::generate("k1");
    let stranger = RpKey::generate("k1");
    let app = TestApp::spawn_with(&pkj_client(&key)).await;
    let t = now(&app);
    let base = || Assertion::new(PKJ_ID, &app.issuer, t);
    let cases: Vec<(&str, String)> = vec![
        ("wrong key", base().sign(&stranger)),
        (
            "wrong aud",
            base()
                .with("aud", json!("https://elsewhere.example"))
                .sign(&key),
        ),
        (
            "aud of another server beside ours",
            base()
                .with("aud", json!([app.issuer, "https://elsewhere.example"]))
                .sign(&key),
        ),
        ("expired", base().with("exp", json!(t - 1)).sign(&key)),
        (
            "exp too far",
            base().with("exp", json!(t + 3600)).sign(&key),
        ),
        ("no exp", base().with("exp", Value::Null).sign(&key)),
        (
            "iat in the future",
            base().with("iat", json!(t + 600)).sign(&key),
        ),
        ("no jti", base().with("jti", Value::Null).sign(&key)),
        (
            "iss not the client",
            base().with("iss", json!(RP_ID)).sign(&key),
        ),
        (
            "HS256 with a guessable secret",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &base().claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap(),
        ),
    ];
    for (why, assertion) in cases {
        let (status, body) = client_credentials(&app, &assertion).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert_eq!(body["error"], "invalid_client", "{why}");
    }
}

#[tokio::test]
async fn private_key_jwt_replayed_jti_is_refused() {
    let key = RpKey::generate("k1");
    let app = TestApp::spawn_with(&pkj_client(&key)).await;
    let a = Assertion::new(PKJ_ID, &app.issuer, now(&app)).sign(&key);
    assert_eq!(client_credentials(&app, &a).await.0, 200);
    let (status, body) = client_credentials(&app, &a).await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // Another assertion with the same jti is the same replay.
    let jti = json!(fresh_jti());
    let first = Assertion::new(PKJ_ID, &app.issuer, now(&app)).with("jti", jti.clone());
    assert_eq!(client_credentials(&app, &first.sign(&key)).await.0, 200);
    let again = first.with("iat", json!(now(&app) - 1)).sign(&key);
    assert_eq!(client_credentials(&app, &again).await.0, 401);
}

#[tokio::test]
async fn private_key_jwt_concurrent_replays_exactly_one_is_accepted() {
    let key = RpKey::generate("k1");
    let app = TestApp::spawn_with(&pkj_client(&key)).await;
    let a = Assertion::new(PKJ_ID, &app.issuer, now(&app)).sign(&key);
    let attempts = (0..16).map(|_| client_credentials(&app, &a));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        15,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn private_key_jwt_client_may_use_only_its_own_method() {
    let key = RpKey::generate("k1");
    let app = TestApp::spawn_with(&format!(
        "{}[[clients]]\nclient_id = \"basic-only\"\nclient_secret = \"basic-only-secret-0123456789\"\n\
         token_endpoint_auth_method = \"client_secret_basic\"\ngrant_types = [\"client_credentials\"]\n",
        pkj_client(&key)
    ))
    .await;
    // A secret presented by a private_key_jwt client.
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(PKJ_ID, Some("guessed-secret-0123456789"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("private_key_jwt"),
        "{body}"
    );
    let (status, _) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", PKJ_ID),
            ("client_secret", "guessed-secret-0123456789"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    // No authentication at all.
    let (status, _) = post(
        &app,
        "/token",
        &[("grant_type", "client_credentials"), ("client_id", PKJ_ID)],
    )
    .await;
    assert_eq!(status, 401);
    // An assertion for the pkj client sent as another client.
    let a = Assertion::new(PKJ_ID, &app.issuer, now(&app)).sign(&key);
    let (status, body) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", AUTOMATION_ID),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // An assertion naming a secret client, signed with the pkj key.
    let forged = Assertion::new(AUTOMATION_ID, &app.issuer, now(&app)).sign(&key);
    let (status, body) = client_credentials(&app, &forged).await;
    assert_eq!(status, 401, "{body}");
    // Two methods at once.
    let a = Assertion::new(PKJ_ID, &app.issuer, now(&app)).sign(&key);
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(PKJ_ID, Some("x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A client_secret_basic client refuses its secret in the body.
    let (status, _) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "basic-only"),
            ("client_secret", "basic-only-secret-0123456789"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        !app.app_token("basic-only", "basic-only-secret-0123456789")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn private_key_jwt_works_at_introspection_and_revocation() {
    let key = RpKey::generate("k1");
    let app = TestApp::spawn_with(&pkj_client(&key)).await;
    let a = Assertion::new(PKJ_ID, &app.issuer, now(&app)).sign(&key);
    let (_, body) = client_credentials(&app, &a).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let call = |path: &'static str| {
        let aud = app.url(path);
        let a = Assertion::new(PKJ_ID, &aud, now(&app)).sign(&key);
        let token = token.clone();
        let app = &app;
        async move {
            post(
                app,
                path,
                &[
                    ("token", token.as_str()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &a),
                ],
            )
            .await
        }
    };
    let (status, body) = call("/introspect").await;
    assert_eq!(
        (status, body["active"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(call("/revoke").await.0, 200);
    let (_, body) = call("/introspect").await;
    assert_eq!(body["active"], json!(false));
    // The endpoint's URL is an audience only at that endpoint.
    let a = Assertion::new(PKJ_ID, &app.url("/revoke"), now(&app)).sign(&key);
    let (status, _) = client_credentials(&app, &a).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn private_key_jwt_jwks_uri_is_cached_and_refetched_after_rotation() {
    let old = RpKey::generate("old");
    let new = RpKey::generate("new");
    let server = JwksServer::start(json!({"keys": [old.jwk]})).await;
    let app = app_with_uri_client(&server).await;
    let sign = |key: &RpKey| Assertion::new(PKJ_URI_ID, &app.issuer, now(&app)).sign(key);

    assert_eq!(client_credentials(&app, &sign(&old)).await.0, 200);
    assert_eq!(client_credentials(&app, &sign(&old)).await.0, 200);
    assert_eq!(server.fetches(), 1, "the second request uses the cache");

    // The client rotates: the new kid is unknown to the cache. Right after
    // a fetch it is not fetched again (the kid is the caller's choice)...
    server.serve(&[&new]);
    assert_eq!(client_credentials(&app, &sign(&new)).await.0, 401);
    assert_eq!(server.fetches(), 1);
    // ...a little later it is, and the new key works, the old one no more.
    app.clock.advance(time::Duration::seconds(11));
    assert_eq!(client_credentials(&app, &sign(&new)).await.0, 200);
    assert_eq!(server.fetches(), 2);
    assert_eq!(client_credentials(&app, &sign(&old)).await.0, 401);
    assert_eq!(
        server.fetches(),
        2,
        "no refetch for a known set and a stale kid"
    );

    // After the cache lifetime the keys are fetched again.
    app.clock.advance(time::Duration::seconds(301));
    assert_eq!(client_credentials(&app, &sign(&new)).await.0, 200);
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn private_key_jwt_slow_jwks_uri_times_out() {
    let key = RpKey::generate("k1");
    let server = JwksServer::start(json!({"keys": [key.jwk]})).await;
    *server.delay.lock().unwrap() = Duration::from_secs(10);
    let app = app_with_uri_client(&server).await;
    let started = std::time::Instant::now();
    let a = Assertion::new(PKJ_URI_ID, &app.issuer, now(&app)).sign(&key);
    let (status, body) = client_credentials(&app, &a).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("jwks_uri"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // A failure counts against the refetch limit: within it, requests are
    // refused at once, without another request to the client's server.
    *server.delay.lock().unwrap() = Duration::ZERO;
    let fetches = server.fetches();
    let started = std::time::Instant::now();
    let a = Assertion::new(PKJ_URI_ID, &app.issuer, now(&app)).sign(&key);
    assert_eq!(client_credentials(&app, &a).await.0, 401);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.fetches(), fetches, "no fetch within the limit");
    // After it, the server answering in time, the same client works.
    app.clock.advance(time::Duration::seconds(11));
    let a = Assertion::new(PKJ_URI_ID, &app.issuer, now(&app)).sign(&key);
    assert_eq!(client_credentials(&app, &a).await.0, 200);
}

#[tokio::test]
async fn private_key_jwt_is_advertised_in_discovery() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        let methods = doc[key].as_array().unwrap();
        assert!(methods.contains(&json!("private_key_jwt")), "{key}");
    }
    for key in [
        "token_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
    ] {
        let algs = doc[key].as_array().unwrap();
        assert!(algs.contains(&json!("ES256")), "{key}");
        assert!(
            !algs.iter().any(|a| a.as_str().unwrap().starts_with("HS")),
            "{key}"
        );
    }
}

#[test]
fn private_key_jwt_config_errors_name_the_key() {
    let key = RpKey::generate("k1");
    let dir = tempfile::tempdir().unwrap();
    let load = |client: &str| {
        gatepass::config::Settings::from_toml(
            &format!(
                "{}\n[[clients]]\nclient_id = \"c\"\ngrant_types = [\"client_credentials\"]\n{client}",
                config_text("http://localhost:8080", dir.path())
            ),
            std::path::Path::new("test.toml"),
            std::iter::empty(),
        )
    };
    let index = config_text("http://localhost:8080", dir.path())
        .matches("[[clients]]")
        .count();
    let jwks = format!("jwks = {}", key.toml_jwks());
    let pkj = "token_endpoint_auth_method = \"private_key_jwt\"";
    assert!(load(&format!("{pkj}\n{jwks}")).is_ok());
    // The README's example key (RFC 7515 A.3's P-256 key).
    let readme = "jwks = { keys = [ { kty = \"EC\", crv = \"P-256\", kid = \"2025-01\", \
                  x = \"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", \
                  y = \"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\" } ] }";
    assert!(load(&format!("{pkj}\n{readme}")).is_ok());
    assert!(load(&format!("{pkj}\njwks_uri = \"https://rp.example/jwks\"")).is_ok());
    let cases = [
        (
            format!("{pkj}\n{jwks}\nclient_secret = \"0123456789abcdef\""),
            "clients[8].client_secret",
        ),
        (pkj.to_owned(), "clients[8].jwks"),
        (
            format!("{pkj}\n{jwks}\njwks_uri = \"https://rp.example/jwks\""),
            "clients[8].jwks_uri",
        ),
        (
            format!("{pkj}\njwks_uri = \"http://rp.example/jwks\""),
            "clients[8].jwks_uri",
        ),
        (
            format!("{pkj}\njwks = {{ keys = [ {{ kty = \"oct\", k = \"c2VjcmV0\" }} ] }}"),
            "clients[8].jwks",
        ),
        (
            format!(
                "{pkj}\njwks = {}",
                key.toml_jwks().replace("x = ", "d = \"AAAA\", x = ")
            ),
            "clients[8].jwks",
        ),
        (
            format!("client_secret = \"0123456789abcdef\"\n{jwks}"),
            "clients[8].jwks",
        ),
        (
            "token_endpoint_auth_method = \"client_secret_jwt\"".to_owned(),
            "clients[8].token_endpoint_auth_method",
        ),
        (
            "token_endpoint_auth_method = \"client_secret_basic\"".to_owned(),
            "clients[8].client_secret",
        ),
    ];
    for (client, key) in cases {
        let e = load(&client).unwrap_err().to_string();
        let key = key.replace("clients[8]", &format!("clients[{index}]"));
        assert!(e.contains(&key), "{client}\n→ {e}");
    }
}
