//! OpenID Connect flows with `openidconnect`'s `CoreClient` as the relying
//! party: it verifies discovery, signatures, nonce and claims on its own.

use crate::harness::*;
use gatepass::clock::Clock;
use openidconnect::core::{CoreAuthenticationFlow, CoreTokenResponse};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, CsrfToken, EndSessionUrl, IntrospectionUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PostLogoutRedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use serde_json::Value;

/// Runs the code flow with PKCE through the browser; returns the token
/// response and the nonce.
async fn code_flow(
    app: &TestApp,
    rp: &Rp,
    username: &str,
    password: &str,
    scopes: &[&str],
) -> (CoreTokenResponse, Nonce) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_owned()));
    }
    let (url, csrf, nonce) = req.url();
    let browser = app.browser();
    let location = browser
        .sign_in(url.as_str(), username, password)
        .await
        .expect("signed in");
    assert!(location.starts_with(RP_REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(app.issuer.as_str())
    );
    let code = query_param(&location, "code").expect("code");
    let tokens = redeem(app, rp, code, verifier).await;
    (tokens, nonce)
}

#[tokio::test]
async fn discovery_lists_endpoints_from_issuer_and_contract_values() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], app.issuer.as_str());
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
    ] {
        assert!(
            doc[key].as_str().unwrap().starts_with(&app.issuer),
            "{key} not from issuer"
        );
    }
    assert_eq!(
        doc["acr_values_supported"],
        serde_json::json!([
            "single_factor",
            "mfa",
            "passwordless_mfa",
            "phishing_resistant_mfa"
        ])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}

#[tokio::test]
async fn code_flow_password_sign_in_gives_verified_id_token_with_pwd_amr() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("alice", Some("correct horse battery"))
        .await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (tokens, nonce) = code_flow(
        &app,
        &rp,
        "alice",
        "correct horse battery",
        &["profile", "email"],
    )
    .await;

    let id_token = tokens.id_token().expect("id_token");
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies (signature, iss, aud, nonce, exp)");
    assert_eq!(claims.subject().as_str(), user.id.to_string());
    let amr: Vec<String> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(amr, ["pwd"]);
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "single_factor");
    assert!(claims.auth_time().is_some());
    // at_hash binds the access token to the ID token.
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected));
    assert_eq!(claims.preferred_username().unwrap().as_str(), "alice");

    // The raw payload carries sid too.
    let payload = jwt_payload(&id_token.to_string());
    assert!(payload["sid"].as_str().is_some_and(|s| !s.is_empty()));

    // The access token is an RFC 9068 JWT for the client.
    let header = jwt_header(tokens.access_token().secret());
    assert_eq!(header["typ"], "at+jwt");
    let at = jwt_payload(tokens.access_token().secret());
    assert_eq!(at["aud"], RP_ID);
    assert_eq!(at["client_id"], RP_ID);
    assert_eq!(at["sub"], user.id.to_string());

    let info: openidconnect::core::CoreUserInfoClaims = rp
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&app.http)
        .await
        .expect("userinfo");
    assert_eq!(info.email().unwrap().as_str(), "alice@example.test");
    assert!(
        tokens.refresh_token().is_none(),
        "no offline_access, no refresh token"
    );
}

pub fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

pub fn jwt_payload(token: &str) -> Value {
    jwt_part(token, 1)
}

#[tokio::test]
async fn public_client_uses_pkce_and_no_secret() {
    let app = TestApp::spawn().await;
    app.create_user("bob", Some("bob password 1")).await;
    let rp = app.rp(SPA_ID, None).await;
    let (tokens, nonce) = code_flow(&app, &rp, "bob", "bob password 1", &["offline_access"]).await;
    tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert!(tokens.refresh_token().is_some());
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    app.create_user("carol", Some("carol password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (tokens, _) = code_flow(&app, &rp, "carol", "carol password", &["offline_access"]).await;
    let first = tokens.refresh_token().unwrap().clone();

    let rotated = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&app.http)
        .await
        .expect("refresh");
    let second = rotated.refresh_token().unwrap().clone();
    assert_ne!(first.secret(), second.secret());
    let refreshed_id = rotated.id_token().expect("id token on refresh");
    let claims = refreshed_id
        .claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(claims.auth_method_refs().unwrap()[0].as_str(), "pwd");

    // Reusing the rotated token is theft: the whole family dies.
    let reuse = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&app.http)
        .await;
    assert!(reuse.is_err(), "reused refresh token must fail");
    let after = rp
        .exchange_refresh_token(&second)
        .unwrap()
        .request_async(&app.http)
        .await;
    assert!(
        after.is_err(),
        "the newest token of a revoked family must fail too"
    );
    // And the access token from the family is dead at userinfo.
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(rotated.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn code_replay_fails_and_revokes_what_the_first_redemption_issued() {
    let app = TestApp::spawn().await;
    app.create_user("dave", Some("dave password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let location = app
        .browser()
        .sign_in(url.as_str(), "dave", "dave password")
        .await
        .unwrap();
    let code = query_param(&location, "code").unwrap();
    let verifier_secret = verifier.secret().clone();
    let first = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&app.http)
        .await
        .expect("first redemption");
    let second = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new(verifier_secret))
        .request_async(&app.http)
        .await;
    assert!(second.is_err(), "a code is single-use");
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(first.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the replay revoked the first access token");
    let refresh = rp
        .exchange_refresh_token(first.refresh_token().unwrap())
        .unwrap()
        .request_async(&app.http)
        .await;
    assert!(
        refresh.is_err(),
        "the replay revoked the first refresh token"
    );
}

#[tokio::test]
async fn client_credentials_gives_a_graph_token_with_app_roles() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let claims = jwt_payload(&token);
    assert_eq!(claims["aud"], format!("{}/graph", app.issuer));
    assert_eq!(claims["idtyp"], "app");
    assert!(
        claims["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "User.ReadWrite.All")
    );

    // Also through CoreClient, with client_secret_post-less basic auth.
    let rp = app.rp(AUTOMATION_ID, Some(AUTOMATION_SECRET)).await;
    let t = rp
        .exchange_client_credentials()
        .unwrap()
        .request_async(&app.http)
        .await
        .expect("client credentials");
    assert!(t.refresh_token().is_none());
}

/// RFC 7009 revocation as the RP sends it. (oauth2-rs refuses to send a
/// revocation request to a non-https URL, and the test server is plain
/// http on loopback, so this one request is built by hand.)
async fn revoke(app: &TestApp, token: &str, hint: Option<&str>) {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    let r = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "RFC 7009 §2.2: revocation answers 200");
}

#[tokio::test]
async fn revocation_of_refresh_token_ends_the_grant() {
    let app = TestApp::spawn().await;
    app.create_user("erin", Some("erin password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (tokens, _) = code_flow(&app, &rp, "erin", "erin password", &["offline_access"]).await;
    revoke(
        &app,
        tokens.refresh_token().unwrap().secret(),
        Some("refresh_token"),
    )
    .await;
    assert!(
        rp.exchange_refresh_token(tokens.refresh_token().unwrap())
            .unwrap()
            .request_async(&app.http)
            .await
            .is_err()
    );
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn revocation_of_access_token_and_introspection_agree() {
    let app = TestApp::spawn().await;
    app.create_user("frank", Some("frank password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (tokens, _) = code_flow(&app, &rp, "frank", "frank password", &[]).await;
    let rp = rp.set_introspection_url(IntrospectionUrl::new(app.url("/introspect")).unwrap());
    let live = rp
        .introspect(tokens.access_token())
        .request_async(&app.http)
        .await
        .expect("introspect");
    assert!(live.active());
    assert_eq!(live.client_id().unwrap().as_str(), RP_ID);
    assert_eq!(live.username(), Some("frank"));

    revoke(&app, tokens.access_token().secret(), None).await;
    let dead = rp
        .introspect(tokens.access_token())
        .request_async(&app.http)
        .await
        .unwrap();
    assert!(!dead.active());
    let garbage = rp
        .introspect(&AccessToken::new("not-a-token".into()))
        .request_async(&app.http)
        .await
        .unwrap();
    assert!(!garbage.active());
}

#[tokio::test]
async fn logout_ends_the_session_and_redirects_to_registered_uri() {
    let app = TestApp::spawn().await;
    app.create_user("gina", Some("gina password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let browser = app.browser();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let location = browser
        .sign_in(url.as_str(), "gina", "gina password")
        .await
        .unwrap();
    let code = query_param(&location, "code").unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;

    // Single sign-on: a second authorization needs no credentials.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (again, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let sso = browser.get(again.as_str()).await;
    assert!(sso.location.unwrap().contains("code="));

    let logout = LogoutRequest::from(EndSessionUrl::new(app.url("/logout")).unwrap())
        .set_id_token_hint(tokens.id_token().unwrap())
        .set_post_logout_redirect_uri(
            PostLogoutRedirectUrl::new(RP_LOGOUT_REDIRECT.into()).unwrap(),
        )
        .set_state(CsrfToken::new("bye".into()))
        .http_get_url();
    let out = browser.get(logout.as_str()).await;
    assert_eq!(
        out.location.as_deref(),
        Some(format!("{RP_LOGOUT_REDIRECT}?state=bye").as_str())
    );

    // The session is gone: prompt=none now fails with login_required, and
    // the session-bound access token is dead.
    let none = browser
        .get(&format!("{}&prompt=none", again.as_str()))
        .await;
    assert_eq!(
        query_param(none.location.as_deref().unwrap(), "error").as_deref(),
        Some("login_required")
    );
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An unregistered post_logout_redirect_uri is never followed.
    let bad = browser
        .get(&format!(
            "/logout?client_id={RP_ID}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
        ))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.location.is_none());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike_and_disabled_user_cannot_sign_in() {
    let app = TestApp::spawn().await;
    let henry = app.create_user("henry", Some("henry password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let wrong = app
        .browser()
        .sign_in(url.as_str(), "henry", "nope nope nope")
        .await
        .unwrap_err();
    let unknown = app
        .browser()
        .sign_in(url.as_str(), "nobody", "nope nope nope")
        .await
        .unwrap_err();
    for page in [&wrong, &unknown] {
        assert!(page.html.contains("Sign-in failed"), "{}", page.html);
        assert!(page.has_label("Password"));
    }
    app.state
        .directory
        .update_user(
            henry.id,
            gatepass::directory::UserPatch {
                account_enabled: Some(false),
                ..Default::default()
            },
            app.clock.now(),
        )
        .await
        .unwrap();
    let disabled = app
        .browser()
        .sign_in(url.as_str(), "henry", "henry password")
        .await
        .unwrap_err();
    assert!(disabled.html.contains("Sign-in failed"));

    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.status.error_code != 0).count(), 3);
    assert!(log.iter().all(|e| e.ip_address == "127.0.0.1"));
}

#[tokio::test]
async fn prompt_login_and_max_age_force_a_fresh_sign_in() {
    let app = TestApp::spawn().await;
    app.create_user("iris", Some("iris password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let browser = app.browser();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    browser
        .sign_in(url.as_str(), "iris", "iris password")
        .await
        .unwrap();
    let silent = browser.get(&format!("{}&prompt=none", url.as_str())).await;
    assert!(silent.location.unwrap().contains("code="));

    let login = browser.get(&format!("{}&prompt=login", url.as_str())).await;
    assert!(
        login.has_label("Username"),
        "prompt=login shows the sign-in page"
    );

    app.clock.advance(time::Duration::minutes(5));
    let aged = browser.get(&format!("{}&max_age=60", url.as_str())).await;
    assert!(
        aged.has_label("Username"),
        "auth_time older than max_age forces sign-in"
    );
    let aged_none = browser
        .get(&format!("{}&max_age=60&prompt=none", url.as_str()))
        .await;
    assert_eq!(
        query_param(aged_none.location.as_deref().unwrap(), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn jwks_publishes_the_signing_kid() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let kid = jwt_header(&token)["kid"].as_str().unwrap().to_owned();
    let jwks: Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str())
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn key_rotation_publishes_both_keys_and_old_tokens_keep_verifying() {
    let app = TestApp::spawn().await;
    app.create_user("rotor", Some("rotor password")).await;
    let before = app.user_tokens("rotor", "rotor password", "openid").await;
    let old_kid = jwt_header(before["access_token"].as_str().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // `gatepass keys rotate` on the shared keys dir; the instance picks the
    // new key up on its next reload (the upkeep task runs it every 30 s).
    let now = app.clock.now();
    let report = gatepass::keys::rotate(
        &app.dir.path().join("keys"),
        gatepass::keys::Algorithm::Es256,
        now,
        time::Duration::minutes(20),
    )
    .unwrap();
    app.state.tokens.keys().reload(now).unwrap();
    let jwks: Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&report.new_kid.as_str()),
        "{kids:?}"
    );

    let after = app.user_tokens("rotor", "rotor password", "openid").await;
    assert_eq!(
        jwt_header(after["access_token"].as_str().unwrap())["kid"],
        report.new_kid.as_str()
    );
    // A token signed with the old key still works while it is published.
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(before["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Past retention the old key is gone from the JWKS and its tokens fail.
    let later = now + time::Duration::minutes(21);
    app.clock.set(later);
    gatepass::keys::rotate(
        &app.dir.path().join("keys"),
        gatepass::keys::Algorithm::Es256,
        later,
        time::Duration::minutes(20),
    )
    .unwrap();
    app.state.tokens.keys().reload(later).unwrap();
    let jwks: Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old_kid.as_str())
    );
}

/// The built-in demo relying party: /demo → Sign in → the ordinary pages
/// → back at /demo/callback, which redeems the code with its PKCE verifier
/// and shows the ID token's amr and acr, with a sign-out link.
#[tokio::test]
async fn demo_app_runs_the_code_flow_and_shows_how_the_user_signed_in() {
    let app = TestApp::spawn().await;
    let user = app.create_user("demo-user@contoso.com", None).await;
    let tap = app
        .issue_tap(&user, serde_json::json!({"isUsableOnce": true}))
        .await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = app.browser();
    let home = browser.get("/demo").await;
    assert_eq!(home.status, reqwest::StatusCode::OK);
    assert!(home.html.contains(">Sign in</a>"), "{}", home.html);
    let start = browser.get("/demo/start").await;
    let authorize = start.location.expect("to /authorize");
    assert!(authorize.starts_with("/authorize?"), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256"));
    let back = browser
        .sign_in_with_tap(&authorize, "demo-user@contoso.com", &tap)
        .await
        .expect("redirect back");
    assert!(back.contains("/demo/callback?"), "{back}");
    let shown = browser.get(&back).await;
    assert_eq!(shown.status, reqwest::StatusCode::OK, "{}", shown.html);
    assert!(
        shown.html.contains("<code>[tap, otp, mfa]</code>"),
        "{}",
        shown.html
    );
    assert!(shown.html.contains("<code>mfa</code>"), "{}", shown.html);
    assert!(shown.html.contains("demo-user@contoso.com"));
    assert!(shown.html.contains("/logout?id_token_hint="));
    // The same callback again: the sign-in is spent.
    let again = browser.get(&back).await;
    assert_eq!(again.status, reqwest::StatusCode::BAD_REQUEST);

    let off = TestApp::spawn_with("[demo]\nenabled = false\n").await;
    assert_eq!(
        off.browser().get("/demo").await.status,
        reqwest::StatusCode::NOT_FOUND
    );
}
