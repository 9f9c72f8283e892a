//! Pushed authorization requests (RFC 9126) through real HTTP: the relying
//! party pushes the parameters `openidconnect` built, the browser carries
//! only `client_id` and `request_uri`, and the RP redeems the code.

use crate::client_auth::{ASSERTION_TYPE, Assertion, PKJ_ID, RpKey, pkj_client, post};
use crate::harness::*;
use gatepass::clock::Clock;
use serde_json::Value;

const USER: &str = "par-user";
const PASSWORD: &str = "correct horse battery";

/// The query of an authorization URL as form pairs.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Pushes `pairs` as the confidential `rp` (HTTP Basic).
async fn push_as_rp(app: &TestApp, pairs: &[(String, String)]) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(pairs)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Pushes the `rp`'s PKCE request; returns the `request_uri` and what the
/// RP needs to finish.
async fn pushed(
    app: &TestApp,
    rp: &Rp,
) -> (
    String,
    openidconnect::PkceCodeVerifier,
    openidconnect::Nonce,
) {
    let (url, verifier, nonce) = authorize_url(rp, &["openid"]);
    let (status, body) = push_as_rp(app, &query_pairs(&url)).await;
    assert_eq!(status, 201, "{body}");
    (
        body["request_uri"].as_str().unwrap().to_owned(),
        verifier,
        nonce,
    )
}

fn authorize_with(app: &TestApp, client_id: &str, request_uri: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .finish();
    app.url(&format!("/authorize?{query}"))
}

/// `/authorize` refused `url` with a page (never a redirect) saying `why`.
async fn assert_shown(app: &TestApp, url: &str, why: &str) {
    let page = app.browser().get(url).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.location.is_none());
    assert!(page.html.contains(why), "{why}: {}", page.html);
}

#[tokio::test]
async fn par_pushed_request_completes_the_code_flow() {
    let app = TestApp::spawn().await;
    app.create_user(USER, Some(PASSWORD)).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &["openid"]);
    let (status, body) = push_as_rp(&app, &query_pairs(&url)).await;
    assert_eq!(status, 201, "{body}");
    let request_uri = body["request_uri"].as_str().unwrap();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((1..=600).contains(&expires_in), "{expires_in}");

    let location = app
        .browser()
        .sign_in(&authorize_with(&app, RP_ID, request_uri), USER, PASSWORD)
        .await
        .expect("redirect to the client");
    assert!(location.starts_with(RP_REDIRECT), "{location}");
    // The state and nonce are the pushed ones; openidconnect checks the nonce.
    let pushed_state = query_pairs(&url)
        .into_iter()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1;
    assert_eq!(query_param(&location, "state"), Some(pushed_state));
    let code = query_param(&location, "code").unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(claims.audiences()[0].as_str(), RP_ID);
}

#[tokio::test]
async fn par_request_uri_is_single_use_short_lived_and_bound_to_its_client() {
    let app = TestApp::spawn().await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;

    // Used once: the second use is refused.
    let (uri, _, _) = pushed(&app, &rp).await;
    let first = app.browser().get(&authorize_with(&app, RP_ID, &uri)).await;
    assert_eq!(first.status, 200, "{}", first.html);
    assert_shown(&app, &authorize_with(&app, RP_ID, &uri), "already used").await;

    // Expired.
    let (uri, _, _) = pushed(&app, &rp).await;
    app.clock.advance(time::Duration::seconds(61));
    assert_shown(&app, &authorize_with(&app, RP_ID, &uri), "expired").await;

    // Another client's: refused, and spent.
    let (uri, _, _) = pushed(&app, &rp).await;
    assert_shown(&app, &authorize_with(&app, SPA_ID, &uri), "another client").await;
    assert_shown(&app, &authorize_with(&app, RP_ID, &uri), "already used").await;

    // Unknown, not ours, or without client_id.
    let forged = "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_shown(&app, &authorize_with(&app, RP_ID, forged), "unknown").await;
    let malformed = "urn:ietf:params:oauth:request_uri:not/ours";
    assert_shown(&app, &authorize_with(&app, RP_ID, malformed), "unknown").await;
    let (uri, _, _) = pushed(&app, &rp).await;
    let no_client = app.url(&format!(
        "/authorize?request_uri={}",
        url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
    ));
    assert_shown(&app, &no_client, "client_id is required").await;
}

#[tokio::test]
async fn par_push_applies_the_authorization_rules_and_client_authentication() {
    let app = TestApp::spawn().await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &["openid"]);
    let good = query_pairs(&url);
    let with = |name: &str, value: &str| {
        let mut pairs: Vec<(String, String)> =
            good.iter().filter(|(k, _)| k != name).cloned().collect();
        pairs.push((name.to_owned(), value.to_owned()));
        pairs
    };
    for (pairs, code) in [
        (
            with("redirect_uri", "https://evil.example/cb"),
            "invalid_request",
        ),
        (with("response_type", "token"), "unsupported_response_type"),
        (with("scope", "openid admin"), "invalid_scope"),
        (with("request_uri", "urn:x"), "invalid_request"),
        (with("code_challenge_method", "plain"), "invalid_request"),
    ] {
        let (status, body) = push_as_rp(&app, &pairs).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, code),
            "{pairs:?}"
        );
    }
    // No or wrong client authentication.
    let r = app
        .http
        .post(app.url("/par"))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth(RP_ID, Some("wrong-secret-0123456789"))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A public client pushes with PKCE and its client_id (method `none`).
    let spa: Vec<(String, String)> = good
        .iter()
        .map(|(k, v)| {
            let v = if k == "client_id" {
                SPA_ID.to_owned()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let r = app
        .http
        .post(app.url("/par"))
        .form(&spa)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn par_required_by_a_client_refuses_plain_authorization_requests() {
    let app = TestApp::spawn_with(&format!(
        "[[clients]]\nclient_id = \"par-only\"\nclient_secret = \"par-only-secret-0123456789\"\n\
         redirect_uris = [\"{RP_REDIRECT}\"]\nrequire_pushed_authorization_requests = true\n"
    ))
    .await;
    let plain = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "")
        .replace(&format!("client_id={RP_ID}"), "client_id=par-only");
    assert_shown(&app, &plain, "must push").await;
    // The others are unaffected, and discovery says pushing is optional.
    let rp_plain = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
    assert_eq!(app.browser().get(&rp_plain).await.status, 200);
    let doc = discovery(&app).await;
    assert_eq!(doc["require_pushed_authorization_requests"], false);
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        app.url("/par")
    );

    // Pushed, the same request goes through.
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth("par-only", Some("par-only-secret-0123456789"))
        .form(&query_pairs(&plain))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let uri = body["request_uri"].as_str().unwrap();
    let page = app
        .browser()
        .get(&authorize_with(&app, "par-only", uri))
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
}

#[tokio::test]
async fn par_required_globally_refuses_every_plain_request_and_is_advertised() {
    let app = TestApp::spawn_with("[par]\nrequire_pushed_authorization_requests = true\n").await;
    let plain = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
    assert_shown(&app, &plain, "must push").await;
    assert_eq!(
        discovery(&app).await["require_pushed_authorization_requests"],
        true
    );
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (uri, _, _) = pushed(&app, &rp).await;
    let page = app.browser().get(&authorize_with(&app, RP_ID, &uri)).await;
    assert_eq!(page.status, 200, "{}", page.html);
}

#[test]
fn par_config_lifetime_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let load = |par: &str| {
        gatepass::config::Settings::from_toml(
            &format!(
                "{}\n[par]\n{par}\n",
                config_text("http://localhost:8080", dir.path())
            ),
            std::path::Path::new("test.toml"),
            std::iter::empty(),
        )
    };
    let s = load("request_uri_lifetime_seconds = 90").unwrap();
    assert_eq!(s.par.request_uri_lifetime, time::Duration::seconds(90));
    for bad in [
        "request_uri_lifetime_seconds = 601",
        "request_uri_lifetime_seconds = 0",
    ] {
        let e = load(bad).unwrap_err().to_string();
        assert!(e.contains("par.request_uri_lifetime_seconds"), "{e}");
    }
    let e = load("required = true").unwrap_err().to_string();
    assert!(e.contains("required"), "{e}");
}

#[tokio::test]
async fn par_with_private_key_jwt_pushes_and_redeems() {
    let key = RpKey::generate("k1");
    let app = TestApp::spawn_with(&pkj_client(&key)).await;
    app.create_user(USER, Some(PASSWORD)).await;
    let now = app.clock.now().unix_timestamp();
    let url = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "").replace(
        &format!("client_id={RP_ID}"),
        &format!("client_id={PKJ_ID}"),
    );
    let mut form = query_pairs(&url);
    // The PAR endpoint's own URL is an accepted audience there (RFC 9126 §2).
    let a = Assertion::new(PKJ_ID, &app.url("/par"), now).sign(&key);
    form.push(("client_assertion_type".into(), ASSERTION_TYPE.into()));
    form.push(("client_assertion".into(), a.clone()));
    let r = app
        .http
        .post(app.url("/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let uri = body["request_uri"].as_str().unwrap();
    // The same assertion again: replayed.
    let r = app
        .http
        .post(app.url("/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let location = app
        .browser()
        .sign_in(&authorize_with(&app, PKJ_ID, uri), USER, PASSWORD)
        .await
        .expect("redirect");
    let code = query_param(&location, "code").unwrap();
    let a = Assertion::new(PKJ_ID, &app.issuer, now).sign(&key);
    let (status, tokens) = post(
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
            ("code_verifier", PKCE_VERIFIER),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["id_token"].is_string());
}

async fn discovery(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
