//! DPoP (RFC 9449) through real HTTP: proofs made here with keys generated
//! here (ring's P-256 and Ed25519), never with Gatepass's own code, so the
//! thumbprint and `ath` are computed independently.

use crate::harness::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde_json::{Value, json};

/// A client-held DPoP key that signs proofs.
enum DpopKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl DpopKey {
    fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        DpopKey::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn eddsa() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        DpopKey::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            DpopKey::Es256(_) => "ES256",
            DpopKey::EdDsa(_) => "EdDSA",
        }
    }

    /// The public JWK, members in RFC 7638 order (so its compact JSON is
    /// also the thumbprint input).
    fn jwk(&self) -> Value {
        match self {
            DpopKey::Es256(k) => {
                let point = k.public_key().as_ref();
                json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": b64(&point[1..33]),
                    "y": b64(&point[33..65]),
                })
            }
            DpopKey::EdDsa(k) => json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": b64(k.public_key().as_ref()),
            }),
        }
    }

    /// The RFC 7638 thumbprint, computed here from the JWK.
    fn jkt(&self) -> String {
        // serde_json keeps keys sorted (no preserve_order), no whitespace.
        let canonical = serde_json::to_string(&self.jwk()).unwrap();
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            DpopKey::Es256(k) => k
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            DpopKey::EdDsa(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    /// A well-formed proof for `htm` `htu` at `iat`, with `ath` when an
    /// access token is given; a fresh `jti`.
    fn proof(&self, htm: &str, htu: &str, access_token: Option<&str>, iat: i64) -> String {
        let mut claims = json!({"jti": random_jti(), "htm": htm, "htu": htu, "iat": iat});
        if let Some(t) = access_token {
            claims["ath"] = json!(ath(t));
        }
        self.proof_with(self.header(), claims)
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// A proof with exactly this header and these claims, signed.
    fn proof_with(&self, header: Value, claims: Value) -> String {
        let input = format!("{}.{}", b64_json(&header), b64_json(&claims));
        format!("{input}.{}", b64(&self.sign(input.as_bytes())))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(v: &Value) -> String {
    b64(serde_json::to_string(v).unwrap().as_bytes())
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).unwrap();
    b64(&bytes)
}

/// `ath`: base64url SHA-256 of the access token.
fn ath(token: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// The payload of a JWT, unverified (the RP would verify; here we only
/// read `cnf`).
fn jwt_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn now(app: &TestApp) -> i64 {
    use gatepass::clock::Clock as _;
    app.clock.now().unix_timestamp()
}

const DPOP_ONLY_ID: &str = "dpop-only";
const DPOP_ONLY_SECRET: &str = "dpop-only-secret-0123456789";

async fn spawn() -> TestApp {
    TestApp::spawn_with(&format!(
        r#"
[[clients]]
client_id = "{DPOP_ONLY_ID}"
client_secret = "{DPOP_ONLY_SECRET}"
grant_types = ["client_credentials"]
app_permissions = ["User.Read.All"]
dpop_bound_access_tokens = true
"#
    ))
    .await
}

/// POST /token as `client` (Basic auth when it has a secret, else
/// `client_id` in the body) with `proofs` as `DPoP` headers.
async fn token_request(
    app: &TestApp,
    client: (&str, Option<&str>),
    form: &[(&str, &str)],
    proofs: &[&str],
) -> (u16, Value) {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.http.post(app.url("/token"));
    match client.1 {
        Some(secret) => req = req.basic_auth(client.0, Some(secret)),
        None => form.push(("client_id", client.0)),
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    let r = req.form(&form).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A client_credentials request by the automation app with one proof.
async fn app_token_with(app: &TestApp, proof: &str) -> (u16, Value) {
    token_request(
        app,
        (AUTOMATION_ID, Some(AUTOMATION_SECRET)),
        &[("grant_type", "client_credentials")],
        &[proof],
    )
    .await
}

/// A DPoP-bound Graph token for the automation app, and its key.
async fn bound_app_token(app: &TestApp) -> (String, DpopKey) {
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(app));
    let (status, body) = app_token_with(app, &proof).await;
    assert_eq!(status, 200, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), key)
}

/// A call to a protected resource: `scheme token` plus optional proofs.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: &str,
    proofs: &[&str],
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("Authorization", authorization);
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    req.send().await.unwrap()
}

fn challenges(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Signs in `upn` for `client_id` (the `rp`, or the public `spa`) and
/// returns the code in the redirect.
async fn sign_in_code(app: &TestApp, client_id: &str, upn: &str, scope: &str) -> String {
    app.create_user(upn, Some("correct horse battery")).await;
    let url = pkce_authorize_url(&app.issuer, scope, PKCE_CHALLENGE, "")
        .replace("?client_id=rp&", &format!("?client_id={client_id}&"));
    let location = app
        .browser()
        .sign_in(&url, upn, "correct horse battery")
        .await
        .unwrap();
    query_param(&location, "code").unwrap()
}

fn code_form(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", RP_REDIRECT),
        ("code_verifier", PKCE_VERIFIER),
    ]
}

#[tokio::test]
async fn discovery_advertises_dpop_algorithms() {
    let app = spawn().await;
    let meta: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "RS256", "EdDSA"])
    );
}

#[tokio::test]
async fn client_credentials_with_proof_gets_bound_token_usable_at_graph() {
    let app = spawn().await;
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let (status, body) = app_token_with(&app, &proof).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(token)["cnf"]["jkt"], key.jkt());

    let proof = key.proof("GET", &app.url("/v1.0/users"), Some(token), now(&app));
    let r = call(
        &app,
        reqwest::Method::GET,
        "/v1.0/users",
        &format!("DPoP {token}"),
        &[&proof],
    )
    .await;
    assert_eq!(r.status(), 200);

    // Introspection reports the binding (RFC 9449 §6.2).
    let r = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(INTROSPECTOR_ID, Some(INTROSPECTOR_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn eddsa_proof_is_accepted() {
    let app = spawn().await;
    let key = DpopKey::eddsa();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let (status, body) = app_token_with(&app, &proof).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        jwt_payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt()
    );
}

#[tokio::test]
async fn request_without_proof_still_gets_bearer_token() {
    let app = spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    assert!(jwt_payload(&token).get("cnf").is_none());
    let r = call(
        &app,
        reqwest::Method::GET,
        "/v1.0/users",
        &format!("Bearer {token}"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn authorization_code_with_proof_then_userinfo_with_dpop() {
    let app = spawn().await;
    let code = sign_in_code(&app, RP_ID, "ada", "openid profile").await;
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let (status, body) =
        token_request(&app, (RP_ID, Some(RP_SECRET)), &code_form(&code), &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(token)["cnf"]["jkt"], key.jkt());

    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let proof = key.proof(
            method.as_str(),
            &app.url("/userinfo"),
            Some(token),
            now(&app),
        );
        let r = call(
            &app,
            method,
            "/userinfo",
            &format!("DPoP {token}"),
            &[&proof],
        )
        .await;
        assert_eq!(r.status(), 200);
        let claims: Value = r.json().await.unwrap();
        assert_eq!(claims["preferred_username"], "ada");
    }
}

#[tokio::test]
async fn bound_token_sent_as_bearer_is_refused() {
    let app = spawn().await;
    let (token, _) = bound_app_token(&app).await;
    let r = call(
        &app,
        reqwest::Method::GET,
        "/v1.0/users",
        &format!("Bearer {token}"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 401);
    let c = challenges(&r);
    assert!(
        c.contains("DPoP algs=\"ES256 RS256 EdDSA\", error=\"invalid_token\""),
        "{c}"
    );

    let code = sign_in_code(&app, RP_ID, "bo", "openid").await;
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let (_, body) =
        token_request(&app, (RP_ID, Some(RP_SECRET)), &code_form(&code), &[&proof]).await;
    let token = body["access_token"].as_str().unwrap();
    let r = call(
        &app,
        reqwest::Method::GET,
        "/userinfo",
        &format!("Bearer {token}"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 401);
    let c = challenges(&r);
    assert!(
        c.starts_with("DPoP algs=") && c.contains("error=\"invalid_token\""),
        "{c}"
    );
}

#[tokio::test]
async fn public_client_refresh_is_bound_to_the_key() {
    let app = spawn().await;
    let code = sign_in_code(&app, SPA_ID, "cy", "openid offline_access").await;
    let key = DpopKey::es256();
    let token_url = app.url("/token");
    let proof = key.proof("POST", &token_url, None, now(&app));
    let (status, body) = token_request(&app, (SPA_ID, None), &code_form(&code), &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let form = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];

    // Another key, or none: refused, and the token is not used up.
    let other = DpopKey::es256();
    let proof = other.proof("POST", &token_url, None, now(&app));
    let (status, body) = token_request(&app, (SPA_ID, None), &form, &[&proof]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = token_request(&app, (SPA_ID, None), &form, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The bound key: a new bound access token and a new refresh token,
    // still bound.
    let proof = key.proof("POST", &token_url, None, now(&app));
    let (status, body) = token_request(&app, (SPA_ID, None), &form, &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        jwt_payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt()
    );
    let rotated = body["refresh_token"].as_str().unwrap();
    let proof = other.proof("POST", &token_url, None, now(&app));
    let form = [("grant_type", "refresh_token"), ("refresh_token", rotated)];
    let (status, _) = token_request(&app, (SPA_ID, None), &form, &[&proof]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn public_client_that_starts_dpop_at_refresh_is_bound_from_then_on() {
    let app = spawn().await;
    let code = sign_in_code(&app, SPA_ID, "ed", "openid offline_access").await;
    // The code is redeemed without a proof: an unbound grant.
    let (status, body) = token_request(&app, (SPA_ID, None), &code_form(&code), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    // The first refresh with a proof binds the grant to that key...
    let key = DpopKey::es256();
    let token_url = app.url("/token");
    let proof = key.proof("POST", &token_url, None, now(&app));
    let form = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    let (status, body) = token_request(&app, (SPA_ID, None), &form, &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    // ... so the new refresh token is useless without it (RFC 9449 §5).
    let form = [("grant_type", "refresh_token"), ("refresh_token", &rotated)];
    let (status, body) = token_request(&app, (SPA_ID, None), &form, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a stolen refresh token without the key"
    );
    let proof = key.proof("POST", &token_url, None, now(&app));
    let (status, body) = token_request(&app, (SPA_ID, None), &form, &[&proof]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn confidential_client_refresh_is_not_bound() {
    let app = spawn().await;
    let code = sign_in_code(&app, RP_ID, "di", "openid offline_access").await;
    let token_url = app.url("/token");
    let key = DpopKey::es256();
    let proof = key.proof("POST", &token_url, None, now(&app));
    let (_, body) =
        token_request(&app, (RP_ID, Some(RP_SECRET)), &code_form(&code), &[&proof]).await;
    let refresh = body["refresh_token"].as_str().unwrap();
    // RFC 9449 §5: the access token follows the key of each request.
    let other = DpopKey::es256();
    let proof = other.proof("POST", &token_url, None, now(&app));
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, body) = token_request(&app, (RP_ID, Some(RP_SECRET)), &form, &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        jwt_payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        other.jkt()
    );
}

#[tokio::test]
async fn dpop_bound_client_without_proof_is_refused() {
    let app = spawn().await;
    let form = [("grant_type", "client_credentials")];
    let client = (DPOP_ONLY_ID, Some(DPOP_ONLY_SECRET));
    let (status, body) = token_request(&app, client, &form, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let (status, body) = token_request(&app, client, &form, &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn malformed_or_mismatched_proofs_are_refused_at_token_endpoint() {
    let app = spawn().await;
    let key = DpopKey::es256();
    let t = now(&app);
    let htu = app.url("/token");
    let claims = || json!({"jti": random_jti(), "htm": "POST", "htu": htu, "iat": t});
    let with_header = |change: &dyn Fn(&mut Value)| {
        let mut h = key.header();
        change(&mut h);
        key.proof_with(h, claims())
    };
    let with_claim = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        key.proof_with(key.header(), c)
    };
    let unsigned = |alg: &str| {
        let h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk()});
        format!("{}.{}.", b64_json(&h), b64_json(&claims()))
    };
    let hs256 = {
        let h = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"0123456789abcdef0123456789abcdef")}});
        let input = format!("{}.{}", b64_json(&h), b64_json(&claims()));
        let mac_key =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef");
        format!(
            "{input}.{}",
            b64(ring::hmac::sign(&mac_key, input.as_bytes()).as_ref())
        )
    };
    // The request's URL as the Host header would spell it: the proof must
    // name the issuer's URL.
    let host_derived = format!("http://{}/token", app.addr);
    let other_key_signature = {
        let p = key.proof("POST", &htu, None, t);
        let q = DpopKey::es256().proof("POST", &htu, None, t);
        format!(
            "{}.{}",
            p.rsplit_once('.').unwrap().0,
            q.rsplit_once('.').unwrap().1
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("typ JWT", with_header(&|h| h["typ"] = json!("JWT"))),
        (
            "no typ",
            with_header(&|h| drop(h.as_object_mut().unwrap().remove("typ"))),
        ),
        ("alg none", unsigned("none")),
        ("alg HS256", hs256),
        (
            "no jwk",
            with_header(&|h| drop(h.as_object_mut().unwrap().remove("jwk"))),
        ),
        (
            "private jwk",
            with_header(&|h| h["jwk"]["d"] = json!(b64(&[7u8; 32]))),
        ),
        ("kty mismatch", with_header(&|h| h["alg"] = json!("EdDSA"))),
        ("wrong signature", other_key_signature),
        ("htm GET", with_claim("htm", json!("GET"))),
        (
            "htu other path",
            with_claim("htu", json!(app.url("/userinfo"))),
        ),
        ("htu host-derived", with_claim("htu", json!(host_derived))),
        ("iat stale", with_claim("iat", json!(t - 120))),
        ("iat future", with_claim("iat", json!(t + 120))),
        // Overflow bait: must be stale, not a panic or a wrapped pass.
        ("iat i64::MIN", with_claim("iat", json!(i64::MIN))),
        ("iat i64::MIN + now", with_claim("iat", json!(i64::MIN + t))),
        ("iat i64::MAX", with_claim("iat", json!(i64::MAX))),
        ("iat string", with_claim("iat", json!(t.to_string()))),
        ("no jti", {
            let mut c = claims();
            c.as_object_mut().unwrap().remove("jti");
            key.proof_with(key.header(), c)
        }),
        ("garbage", "not-a-jws".to_owned()),
    ];
    for (name, proof) in cases {
        let (status, body) = app_token_with(&app, &proof).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{name}: {body}"
        );
    }
    // Two DPoP headers, each fine alone.
    let a = key.proof("POST", &htu, None, t);
    let b = key.proof("POST", &htu, None, t);
    let (status, body) = token_request(
        &app,
        (AUTOMATION_ID, Some(AUTOMATION_SECRET)),
        &[("grant_type", "client_credentials")],
        &[&a, &b],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    // The query is ignored in htu, and iat within the window is fine.
    let proof = with_claim("htu", json!(format!("{htu}?x=1")));
    assert_eq!(app_token_with(&app, &proof).await.0, 200);
    let proof = with_claim("iat", json!(t - 50));
    assert_eq!(app_token_with(&app, &proof).await.0, 200);
}

#[tokio::test]
async fn replayed_proof_is_refused() {
    let app = spawn().await;
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    assert_eq!(app_token_with(&app, &proof).await.0, 200);
    let (status, body) = app_token_with(&app, &proof).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    // Still refused late in the window.
    app.clock.advance(time::Duration::seconds(55));
    assert_eq!(app_token_with(&app, &proof).await.0, 400);
}

#[tokio::test]
async fn concurrent_uses_of_one_proof_accept_exactly_one() {
    let app = spawn().await;
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let attempts = (0..16).map(|_| app_token_with(&app, &proof));
    let results = futures_util::future::join_all(attempts).await;
    let accepted = results.iter().filter(|(s, _)| *s == 200).count();
    let replayed = results
        .iter()
        .filter(|(s, b)| *s == 400 && b["error"] == "invalid_dpop_proof")
        .count();
    assert_eq!((accepted, replayed), (1, 15), "{results:?}");
}

#[tokio::test]
async fn resource_refuses_missing_or_wrong_ath_key_or_target() {
    let app = spawn().await;
    let (token, key) = bound_app_token(&app).await;
    let users = app.url("/v1.0/users");
    let t = now(&app);
    let auth = format!("DPoP {token}");
    let get = reqwest::Method::GET;

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "no ath",
            vec![key.proof("GET", &users, None, t)],
            "invalid_dpop_proof",
        ),
        (
            "ath of another token",
            vec![key.proof("GET", &users, Some("another-token"), t)],
            "invalid_dpop_proof",
        ),
        (
            "proof for another path",
            vec![key.proof("GET", &app.url("/v1.0/groups"), Some(&token), t)],
            "invalid_dpop_proof",
        ),
        (
            "proof for another method",
            vec![key.proof("POST", &users, Some(&token), t)],
            "invalid_dpop_proof",
        ),
        (
            "another key",
            vec![DpopKey::es256().proof("GET", &users, Some(&token), t)],
            "invalid_token",
        ),
        ("no proof", vec![], "invalid_dpop_proof"),
    ];
    for (name, proofs, error) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let r = call(&app, get.clone(), "/v1.0/users", &auth, &proofs).await;
        assert_eq!(r.status(), 401, "{name}");
        let c = challenges(&r);
        assert!(c.contains(&format!("error=\"{error}\"")), "{name}: {c}");
    }

    // A good proof works once.
    let proof = key.proof("GET", &users, Some(&token), t);
    let r = call(&app, get.clone(), "/v1.0/users", &auth, &[&proof]).await;
    assert_eq!(r.status(), 200);
    let r = call(&app, get.clone(), "/v1.0/users", &auth, &[&proof]).await;
    assert_eq!(r.status(), 401);

    // An unbound token with the DPoP scheme is refused too.
    let bearer = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let proof = key.proof("GET", &users, Some(&bearer), t);
    let r = call(
        &app,
        get,
        "/v1.0/users",
        &format!("DPoP {bearer}"),
        &[&proof],
    )
    .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn userinfo_refuses_proof_without_ath_or_by_another_key() {
    let app = spawn().await;
    let code = sign_in_code(&app, RP_ID, "eve", "openid").await;
    let key = DpopKey::es256();
    let proof = key.proof("POST", &app.url("/token"), None, now(&app));
    let (_, body) =
        token_request(&app, (RP_ID, Some(RP_SECRET)), &code_form(&code), &[&proof]).await;
    let token = body["access_token"].as_str().unwrap();
    let userinfo = app.url("/userinfo");
    let t = now(&app);
    for (proof, error) in [
        (key.proof("GET", &userinfo, None, t), "invalid_dpop_proof"),
        (
            DpopKey::es256().proof("GET", &userinfo, Some(token), t),
            "invalid_token",
        ),
    ] {
        let r = call(
            &app,
            reqwest::Method::GET,
            "/userinfo",
            &format!("DPoP {token}"),
            &[&proof],
        )
        .await;
        assert_eq!(r.status(), 401);
        let c = challenges(&r);
        assert!(c.contains(&format!("error=\"{error}\"")), "{c}");
    }
}

#[tokio::test]
async fn batch_inner_requests_share_the_outer_proof() {
    let app = spawn().await;
    let (token, key) = bound_app_token(&app).await;
    let proof = key.proof("POST", &app.url("/v1.0/$batch"), Some(&token), now(&app));
    let r = app
        .http
        .post(app.url("/v1.0/$batch"))
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", &proof)
        .json(&json!({"requests": [
            {"id": "1", "method": "GET", "url": "/users"},
            {"id": "2", "method": "GET", "url": "/users"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let statuses: Vec<&Value> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [&json!(200), &json!(200)], "{body}");
}
