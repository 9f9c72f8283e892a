//! Passkeys through the real endpoints, signed by a software authenticator:
//! registration after a TAP sign-in, username-first and discoverable
//! sign-in, the refusals (wrong origin, replay, counter regression, another
//! user's credential), the session limiter, and sign out everywhere.

use crate::harness::*;
use gatepass::clock::Clock;
use openidconnect::OAuth2TokenResponse;
use serde_json::{Value, json};

/// Signs a browser in to the security-info page with a TAP; returns the page.
pub async fn account_sign_in_with_tap(
    app: &TestApp,
    browser: &Browser,
    username: &str,
    tap: &str,
) -> Page {
    let first = browser.get("/account/security-info").await;
    assert!(
        first.has_label("Username"),
        "not signed in: the sign-in page first"
    );
    let flow = first.hidden("flow").unwrap();
    let csrf = first.hidden("csrf").unwrap();
    let next = browser
        .post_form(
            "/signin/username",
            &[("flow", &flow), ("csrf", &csrf), ("username", username)],
        )
        .await;
    let tap_page = browser.get(&next.location.unwrap()).await;
    assert!(
        tap_page.has_label("Temporary Access Pass"),
        "{}",
        tap_page.html
    );
    let done = browser
        .post_form(
            "/signin/tap",
            &[
                ("flow", &flow),
                ("csrf", &tap_page.hidden("csrf").unwrap()),
                ("tap", tap),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/account/security-info"));
    let _ = app;
    browser.get("/account/security-info").await
}

/// Starts a passkey ceremony from a sign-in page; returns the options.
pub async fn passkey_start(
    app: &TestApp,
    browser: &Browser,
    page: &Page,
    mode: &str,
) -> (u16, Value) {
    let flow = page.hidden("flow").expect("flow");
    let csrf = page.hidden("csrf").expect("csrf");
    post_json(
        browser,
        app,
        "/signin/passkey/start",
        None,
        json!({"flow": flow, "csrf": csrf, "mode": mode}),
    )
    .await
}

pub async fn passkey_finish(
    app: &TestApp,
    browser: &Browser,
    page: &Page,
    ceremony: &Value,
    credential: Value,
) -> (u16, Value) {
    let flow = page.hidden("flow").expect("flow");
    let csrf = page.hidden("csrf").expect("csrf");
    post_json(
        browser,
        app,
        "/signin/passkey/finish",
        None,
        json!({"flow": flow, "csrf": csrf, "ceremony": ceremony, "credential": credential}),
    )
    .await
}

/// A user onboarded the DESIGN way: TAP → security info → Add passkey.
pub async fn onboard(
    app: &TestApp,
    username: &str,
) -> (gatepass::directory::User, SoftAuthenticator) {
    let user = app.create_user(username, None).await;
    let created = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let browser = app.browser();
    account_sign_in_with_tap(
        app,
        &browser,
        username,
        created["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let mut auth = SoftAuthenticator::new(&app.issuer);
    let (status, body) = add_passkey(app, &browser, &mut auth, "Laptop").await;
    assert_eq!(status, 201, "{body}");
    (user, auth)
}

#[tokio::test]
async fn passkey_onboarding_then_discoverable_and_username_first_sign_in_give_pop_mfa() {
    let app = TestApp::spawn().await;
    let (user, mut auth) = onboard(&app, "onboardee").await;

    let listed = app
        .state
        .passkeys
        .list(user.id, app.clock.now().unix_timestamp())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].display_name, "Laptop");

    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    // Discoverable: no username typed.
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    assert!(first.has_button("Sign in with a passkey"));
    let (status, start) = passkey_start(&app, &browser, &first, "discoverable").await;
    assert_eq!(status, 200, "{start}");
    assert!(
        start["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    assert_eq!(
        start["options"]["publicKey"]["userVerification"],
        "required"
    );
    let assertion = auth.authenticate(start["options"].clone());
    let (status, done) =
        passkey_finish(&app, &browser, &first, &start["ceremony"], assertion).await;
    assert_eq!(status, 200, "{done}");
    let code = query_param(done["redirect"].as_str().unwrap(), "code").unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["pop", "mfa"]);
    assert_eq!(
        claims.auth_context_ref().unwrap().as_str(),
        "phishing_resistant_mfa"
    );

    // Username-first: the method page links to the passkey.
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    let next = browser
        .post_form(
            "/signin/username",
            &[
                ("flow", &first.hidden("flow").unwrap()),
                ("csrf", &first.hidden("csrf").unwrap()),
                ("username", "onboardee"),
            ],
        )
        .await;
    let method_page = browser.get(&next.location.unwrap()).await;
    assert!(
        method_page.html.contains(">Sign in with a passkey</a>"),
        "{}",
        method_page.html
    );
    let (status, start) = passkey_start(&app, &browser, &method_page, "username").await;
    assert_eq!(status, 200);
    assert_eq!(
        start["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let assertion = auth.authenticate(start["options"].clone());
    let (status, done) =
        passkey_finish(&app, &browser, &method_page, &start["ceremony"], assertion).await;
    assert_eq!(status, 200, "{done}");
    let code = query_param(done["redirect"].as_str().unwrap(), "code").unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["pop", "mfa"]);
}

#[tokio::test]
async fn passkey_from_wrong_origin_replayed_or_of_another_user_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut auth) = onboard(&app, "alice").await;
    let (_, mut bobs) = onboard(&app, "bob").await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);

    // Wrong origin: a site on the same host but another port (so the
    // authenticator's RP-id check passes) relays the challenge; the client
    // data names that origin and Gatepass must refuse it.
    let browser = app.browser();
    let page = browser.get(&url).await;
    let (_, start) = passkey_start(&app, &browser, &page, "discoverable").await;
    let real_origin = std::mem::replace(
        &mut auth.origin,
        url::Url::parse("http://localhost:1").unwrap(),
    );
    let forged = auth.authenticate(start["options"].clone());
    auth.origin = real_origin;
    let (status, _) = passkey_finish(&app, &browser, &page, &start["ceremony"], forged).await;
    assert_eq!(status, 400, "an assertion for another origin must fail");

    // Replay: the same assertion twice; the second finds no ceremony.
    let (_, start) = passkey_start(&app, &browser, &page, "discoverable").await;
    let assertion = auth.authenticate(start["options"].clone());
    let browser2 = app.browser();
    let page2 = browser2.get(&url).await;
    let (status, _) =
        passkey_finish(&app, &browser, &page, &start["ceremony"], assertion.clone()).await;
    assert_eq!(status, 200);
    let (status, _) =
        passkey_finish(&app, &browser, &page, &start["ceremony"], assertion.clone()).await;
    assert_eq!(status, 400, "a ceremony finishes once");
    // ...and against a fresh ceremony (different challenge) it fails too.
    let (_, fresh) = passkey_start(&app, &browser2, &page2, "discoverable").await;
    let (status, _) = passkey_finish(&app, &browser2, &page2, &fresh["ceremony"], assertion).await;
    assert_eq!(
        status, 400,
        "a replayed assertion does not match a new challenge"
    );

    // Another user's credential in alice's username-first ceremony.
    let browser = app.browser();
    let first = browser.get(&url).await;
    let next = browser
        .post_form(
            "/signin/username",
            &[
                ("flow", &first.hidden("flow").unwrap()),
                ("csrf", &first.hidden("csrf").unwrap()),
                ("username", "alice"),
            ],
        )
        .await;
    let method_page = browser.get(&next.location.unwrap()).await;
    let (_, start) = passkey_start(&app, &browser, &method_page, "username").await;
    let mut options = start["options"].clone();
    options["publicKey"]["allowCredentials"] = json!([]);
    let bobs_assertion = bobs.authenticate(options);
    let (status, _) = passkey_finish(
        &app,
        &browser,
        &method_page,
        &start["ceremony"],
        bobs_assertion,
    )
    .await;
    assert_eq!(status, 400, "bob's passkey cannot finish alice's ceremony");
}

#[tokio::test]
async fn passkey_counter_regression_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut auth) = onboard(&app, "carol").await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser_a = app.browser();
    let page_a = browser_a.get(&url).await;
    let browser_b = app.browser();
    let page_b = browser_b.get(&url).await;
    let (_, start_a) = passkey_start(&app, &browser_a, &page_a, "discoverable").await;
    let (_, start_b) = passkey_start(&app, &browser_b, &page_b, "discoverable").await;
    let older = auth.authenticate(start_a["options"].clone()); // counter n
    let newer = auth.authenticate(start_b["options"].clone()); // counter n + 1
    let (status, _) = passkey_finish(&app, &browser_b, &page_b, &start_b["ceremony"], newer).await;
    assert_eq!(status, 200);
    let (status, body) =
        passkey_finish(&app, &browser_a, &page_a, &start_a["ceremony"], older).await;
    assert_eq!(
        status, 400,
        "a counter that goes backwards means a cloned key: {body}"
    );
}

#[tokio::test]
async fn limiter_one_time_tap_window_then_step_up_and_password_session_must_step_up() {
    let app = TestApp::spawn().await;
    let user = app.create_user("late", Some("late password")).await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let browser = app.browser();
    let page = account_sign_in_with_tap(
        &app,
        &browser,
        "late",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    assert!(page.html.contains("You can add a passkey until"));

    // Inside the window (exactly at its end): allowed.
    app.clock.advance(time::Duration::minutes(10));
    let csrf = meta_csrf(&page);
    let (status, _) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/start",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    // One second later: a fresh strong sign-in is needed, and the page says why.
    app.clock.advance(time::Duration::seconds(1));
    let (status, body) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/start",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "limiter.window_closed");
    assert_eq!(body["step_up"], "/account/step-up");
    let page = browser.get("/account/security-info").await;
    assert!(
        page.html.contains("only within 10 minutes"),
        "{}",
        page.html
    );

    // Step up: a strong-only sign-in. The one-time pass is used and there
    // is no passkey yet, so the page says what is needed — never a password.
    let step = browser.get("/account/step-up").await;
    let passkey_page = browser
        .get(&step.location.expect("step-up goes to the method page"))
        .await;
    assert!(
        passkey_page
            .html
            .contains("Ask an administrator for a Temporary Access Pass"),
        "{}",
        passkey_page.html
    );
    assert!(!passkey_page.has_label("Password"));
    // The admin issues a new pass (which ends the session the old one started);
    // the user signs in with it and is inside a fresh window.
    let tap2 = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let page = account_sign_in_with_tap(
        &app,
        &browser,
        "late",
        tap2["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    assert!(page.html.contains("You can add a passkey until"));
    let mut auth = SoftAuthenticator::new(&app.issuer);
    let (status, body) = add_passkey(&app, &browser, &mut auth, "Phone").await;
    assert_eq!(status, 201, "{body}");

    // A password-only session must step up first.
    let pw = app.browser();
    let first = pw.get("/account/security-info").await;
    let flow = first.hidden("flow").unwrap();
    let next = pw
        .post_form(
            "/signin/username",
            &[
                ("flow", &flow),
                ("csrf", &first.hidden("csrf").unwrap()),
                ("username", "late"),
            ],
        )
        .await;
    let password_page = pw.get(&next.location.unwrap()).await;
    assert!(password_page.has_label("Password"));
    let done = pw
        .post_form(
            "/signin/password",
            &[
                ("flow", &flow),
                ("csrf", &password_page.hidden("csrf").unwrap()),
                ("password", "late password"),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/account/security-info"));
    let page = pw.get("/account/security-info").await;
    let (status, body) = post_json(
        &pw,
        &app,
        "/account/passkeys/register/start",
        Some(&meta_csrf(&page)),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "limiter.no_strong_method");

    // Password + passkey step-up gives pwd pop mfa to relying parties.
    let step = pw.get("/account/step-up").await;
    let passkey_page = pw.get(&step.location.unwrap()).await;
    assert!(
        passkey_page.has_button("Sign in with a passkey"),
        "{}",
        passkey_page.html
    );
    let (_, start) = passkey_start(&app, &pw, &passkey_page, "username").await;
    let assertion = auth.authenticate(start["options"].clone());
    let (status, done) =
        passkey_finish(&app, &pw, &passkey_page, &start["ceremony"], assertion).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["redirect"], "/account/security-info");
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let sso = pw.get(&url).await;
    let code = query_param(&sso.location.unwrap(), "code").unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["pwd", "pop", "mfa"]);
}

#[tokio::test]
async fn limiter_pass_deleted_mid_ceremony_registers_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user("midway", None).await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let browser = app.browser();
    let page = account_sign_in_with_tap(
        &app,
        &browser,
        "midway",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let csrf = meta_csrf(&page);
    let (status, start) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/start",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    // The admin deletes the pass: the session it started ends.
    let admin = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .delete(app.url(&format!(
            "/v1.0/users/{}/authentication/temporaryAccessPassMethods/{}",
            user.id,
            tap["id"].as_str().unwrap()
        )))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let mut auth = SoftAuthenticator::new(&app.issuer);
    let credential = auth.register(start["options"].clone());
    let (status, _) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/finish",
        Some(&csrf),
        json!({"ceremony": start["ceremony"], "name": "x", "credential": credential}),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        app.state
            .passkeys
            .list(user.id, app.clock.now().unix_timestamp())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn limiter_tap_expiry_mid_session_ends_the_session() {
    let app = TestApp::spawn().await;
    let user = app.create_user("brief", None).await;
    let tap = app
        .issue_tap(
            &user,
            json!({"isUsableOnce": false, "lifetimeInMinutes": 60}),
        )
        .await;
    let browser = app.browser();
    let page = account_sign_in_with_tap(
        &app,
        &browser,
        "brief",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let csrf = meta_csrf(&page);
    // A multi-use pass has no registration window, but ends with the pass.
    app.clock.advance(time::Duration::minutes(30));
    let (status, _) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/start",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    app.clock.advance(time::Duration::minutes(30));
    let (status, _) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/start",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 401, "the session ended with the pass");
    assert!(
        browser
            .get("/account/security-info")
            .await
            .has_label("Username")
    );
}

#[tokio::test]
async fn sign_out_everywhere_ends_sessions_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    let user = app.create_user("leaver", Some("leaver password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    // A refresh token from an RP sign-in in another browser.
    let (url, verifier, _) = authorize_url(&rp, &["offline_access"]);
    let other = app.browser();
    let loc = other
        .sign_in(&url, "leaver", "leaver password")
        .await
        .unwrap();
    let tokens = redeem(&app, &rp, query_param(&loc, "code").unwrap(), verifier).await;
    // This browser: security info, then Sign out everywhere.
    let tap = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
    let browser = app.browser();
    let page = account_sign_in_with_tap(
        &app,
        &browser,
        "leaver",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    assert!(page.has_button("Sign out everywhere"));
    let form_csrf = page.hidden("csrf").unwrap();
    let out = browser
        .post_form("/account/sign-out-everywhere", &[("csrf", &form_csrf)])
        .await;
    assert_eq!(out.status, 200);
    assert!(out.html.contains("signed out everywhere"));
    assert!(
        browser
            .get("/account/security-info")
            .await
            .has_label("Username"),
        "this session ended"
    );
    let (url, _, _) = authorize_url(&rp, &[]);
    let silent = other.get(&format!("{url}&prompt=none")).await;
    assert_eq!(
        query_param(&silent.location.unwrap(), "error").as_deref(),
        Some("login_required"),
        "the other browser's session ended"
    );
    assert!(
        rp.exchange_refresh_token(tokens.refresh_token().unwrap())
            .unwrap()
            .request_async(&app.http)
            .await
            .is_err(),
        "refresh tokens ended"
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
async fn security_info_lists_methods_and_deletes_with_the_last_strong_rule() {
    let app = TestApp::spawn().await;
    let user = app.create_user("lister", Some("lister password")).await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let browser = app.browser();
    account_sign_in_with_tap(
        &app,
        &browser,
        "lister",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let mut auth = SoftAuthenticator::new(&app.issuer);
    assert_eq!(add_passkey(&app, &browser, &mut auth, "Yubi").await.0, 201);
    let page = browser.get("/account/security-info").await;
    assert!(
        page.html.contains("Password")
            && page.html.contains("Temporary Access Pass")
            && page.html.contains("Yubi, added")
    );
    assert!(page.has_button("Delete"));
    let _ = tap;
    // After the window, deleting the only passkey needs a fresh strong sign-in.
    app.clock.advance(time::Duration::minutes(11));
    let key = app
        .state
        .passkeys
        .list(user.id, app.clock.now().unix_timestamp())
        .await
        .unwrap()[0]
        .id
        .clone();
    let form_csrf = page.hidden("csrf").unwrap();
    let r = browser
        .post_form(
            "/account/methods/delete",
            &[("csrf", &form_csrf), ("method", &format!("passkey:{key}"))],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/account/security-info?notice=last-strong")
    );
    assert_eq!(
        app.state
            .passkeys
            .list(user.id, app.clock.now().unix_timestamp())
            .await
            .unwrap()
            .len(),
        1
    );
    // The password can go (a passkey remains); a forged form cannot.
    let forged = browser
        .post_form(
            "/account/methods/delete",
            &[("csrf", "nope"), ("method", "password")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let r = browser
        .post_form(
            "/account/methods/delete",
            &[("csrf", &form_csrf), ("method", "password")],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/account/security-info?notice=deleted")
    );
    assert!(
        app.state
            .directory
            .password_hash(user.id, app.clock.now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn graph_fido2_methods_list_and_delete_passkeys() {
    let app = TestApp::spawn().await;
    let (user, mut auth) = onboard(&app, "graphed").await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let list: Value = app
        .http
        .get(app.url(&format!(
            "/v1.0/users/{}/authentication/fido2Methods",
            user.id
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["value"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["@odata.type"],
        "#microsoft.graph.fido2AuthenticationMethod"
    );
    assert_eq!(items[0]["displayName"], "Laptop");
    assert!(items[0]["aaGuid"].is_string() && items[0]["createdDateTime"].is_string());
    let methods: Value = app
        .http
        .get(app.url(&format!(
            "/beta/users/{}/authentication/methods",
            user.user_principal_name
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        methods["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["@odata.type"] == "#microsoft.graph.fido2AuthenticationMethod")
    );

    let id = items[0]["id"].as_str().unwrap();
    let r = app
        .http
        .delete(app.url(&format!(
            "/v1.0/users/{}/authentication/fido2Methods/{id}",
            user.id
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The deleted passkey no longer signs in.
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let page = browser.get(&url).await;
    let (_, start) = passkey_start(&app, &browser, &page, "discoverable").await;
    let assertion = auth.authenticate(start["options"].clone());
    let (status, _) = passkey_finish(&app, &browser, &page, &start["ceremony"], assertion).await;
    assert_eq!(status, 400);
    // A reader-only app may not delete.
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let r = app
        .http
        .delete(app.url(&format!(
            "/v1.0/users/{}/authentication/fido2Methods/{id}",
            user.id
        )))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// An IP-address issuer (a lab, a benchmark) starts: passkeys are off, and
/// nothing offers them — discovery, the sign-in pages, security info —
/// while passes and passwords work as before.
#[tokio::test]
async fn an_ip_address_issuer_starts_without_passkeys_and_offers_none() {
    let app = TestApp::spawn_ip_issuer().await;
    assert!(
        app.issuer.starts_with("http://127.0.0.1:"),
        "{}",
        app.issuer
    );
    assert!(!app.state.passkeys.enabled());
    let discovery: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acrs = discovery["acr_values_supported"].as_array().unwrap();
    assert!(acrs.contains(&json!("mfa")), "{acrs:?}");
    assert!(!acrs.contains(&json!("phishing_resistant_mfa")), "{acrs:?}");

    let user = app
        .create_user("lab@contoso.com", Some("lab password 123"))
        .await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = app.browser();
    let first = browser.get("/account/security-info").await;
    let first = match &first.location {
        Some(to) => browser.get(to).await,
        None => first,
    };
    assert!(first.has_label("Username"), "{}", first.html);
    assert!(
        !first.html.to_lowercase().contains("passkey"),
        "{}",
        first.html
    );
    let (flow, next) = browser.enter_username(&first, "lab@contoso.com").await;
    let tap_page = browser.get(&next.location.unwrap()).await;
    assert!(
        !tap_page.html.to_lowercase().contains("passkey"),
        "{}",
        tap_page.html
    );
    let csrf = tap_page.hidden("csrf").unwrap();
    let done = browser
        .post_form(
            "/signin/tap",
            &[("flow", &flow), ("csrf", &csrf), ("tap", &tap)],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/account/security-info"));
    let info = browser.get("/account/security-info").await;
    assert_eq!(info.status, reqwest::StatusCode::OK, "{}", info.html);
    assert!(info.html.contains("Temporary Access Pass"));
    assert!(
        !info.html.to_lowercase().contains("passkey"),
        "{}",
        info.html
    );
    // The endpoints say passkeys are not available here.
    let r = app
        .http
        .post(app.url("/signin/passkey/start"))
        .json(&json!({"flow": flow}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}
