//! Attack tests (issue 10): each one tries, through the real HTTP
//! interfaces, something an attacker did against earlier builds, and
//! checks it is refused with a reason — and that what should still work
//! does.

use crate::graph_client::*;
use crate::harness::*;
use gatepass::clock::Clock;
use gatepass::directory::User;
use gatepass::directory::roles::BuiltinRole;
use reqwest::StatusCode;
use serde_json::{Value, json};

const EVERY_SCOPE: &str = "openid offline_access User.ReadWrite.All UserAuthenticationMethod.ReadWrite.All RoleManagement.ReadWrite.Directory AuditLog.Read.All";

fn password_of(upn: &str) -> String {
    format!("{upn}-password-1")
}

async fn user_with(app: &TestApp, upn: &str, role: Option<BuiltinRole>) -> User {
    let user = app.create_user(upn, Some(&password_of(upn))).await;
    if let Some(r) = role {
        app.grant_role(&user, r).await;
    }
    user
}

/// The token endpoint's JSON for a delegated sign-in of `user`.
async fn sign_in(app: &TestApp, user: &User) -> Value {
    let upn = &user.user_principal_name;
    app.user_tokens(upn, &password_of(upn), EVERY_SCOPE).await
}

async fn access(app: &TestApp, user: &User) -> String {
    sign_in(app, user).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap()
}

/// Whether `user` can still sign in with `password`.
async fn password_works(app: &TestApp, user: &User, password: &str) -> bool {
    let url = format!(
        "{}/authorize?client_id={RP_ID}&response_type=code&scope=openid&redirect_uri={}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        app.issuer,
        url::form_urlencoded::byte_serialize(RP_REDIRECT.as_bytes()).collect::<String>()
    );
    app.browser()
        .sign_in(&url, &user.user_principal_name, password)
        .await
        .is_ok_and(|loc| loc.contains("code="))
}

fn assert_refused(r: &Resp, needle: &str, what: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
    assert_eq!(r.error_code(), "Authorization_RequestDenied", "{what}");
    assert!(
        r.error_message().contains(needle),
        "{what}: want {needle:?} in {}",
        r.text
    );
}

// --- item 1: privileged targets ---------------------------------------------

#[tokio::test]
async fn user_administrator_cannot_take_over_a_global_administrator() {
    let app = TestApp::spawn().await;
    let ga = user_with(
        &app,
        "ga@contoso.com",
        Some(BuiltinRole::GlobalAdministrator),
    )
    .await;
    let ua = user_with(&app, "ua@contoso.com", Some(BuiltinRole::UserAdministrator)).await;
    let member = user_with(&app, "member@contoso.com", None).await;
    let token = access(&app, &ua).await;
    let ga_path = format!("/v1.0/users/{}", ga.id);
    for (what, body) in [
        (
            "password",
            json!({"passwordProfile": {"password": "taken over 123"}}),
        ),
        ("disable", json!({"accountEnabled": false})),
        ("rename", json!({"userPrincipalName": "not-ga@contoso.com"})),
        ("mail", json!({"mail": "attacker@evil.example"})),
    ] {
        let r = patch(&app, &ga_path, &token, body).await;
        assert_refused(&r, "Global Administrator", what);
    }
    assert_refused(
        &delete(&app, &ga_path, &token).await,
        "Global Administrator",
        "delete",
    );
    // Nothing changed: the administrator still signs in as before.
    let after = get(&app, &ga_path, &automation(&app).await).await;
    assert_eq!(after.body["userPrincipalName"], "ga@contoso.com");
    assert_eq!(after.body["accountEnabled"], true);
    assert!(password_works(&app, &ga, &password_of("ga@contoso.com")).await);
    assert!(!password_works(&app, &ga, "taken over 123").await);
    // A harmless property and a member stay within a User Administrator's reach.
    let r = patch(&app, &ga_path, &token, json!({"displayName": "The Boss"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let member_path = format!("/v1.0/users/{}", member.id);
    let r = patch(
        &app,
        &member_path,
        &token,
        json!({"passwordProfile": {"password": "reset by ua 1"}, "accountEnabled": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

#[tokio::test]
async fn app_with_user_write_cannot_set_passwords_or_touch_administrators() {
    let app = TestApp::spawn().await;
    let ga = user_with(
        &app,
        "ga@contoso.com",
        Some(BuiltinRole::GlobalAdministrator),
    )
    .await;
    let member = user_with(&app, "member@contoso.com", None).await;
    let writer = app.app_token(USER_WRITER_ID, USER_WRITER_SECRET).await;
    let ga_path = format!("/v1.0/users/{}", ga.id);
    let member_path = format!("/v1.0/users/{}", member.id);
    let new_password = json!({"passwordProfile": {"password": "taken over 123"}});

    // User.ReadWrite.All sets no password at all.
    for path in [&ga_path, &member_path] {
        let r = patch(&app, path, &writer, new_password.clone()).await;
        assert_refused(&r, "User-PasswordProfile.ReadWrite.All", "password");
    }
    // Nor disables, renames or deletes an administrator.
    for (what, body) in [
        ("disable", json!({"accountEnabled": false})),
        ("rename", json!({"userPrincipalName": "x@contoso.com"})),
    ] {
        let r = patch(&app, &ga_path, &writer, body).await;
        assert_refused(&r, "RoleManagement.ReadWrite.Directory", what);
    }
    assert_refused(
        &delete(&app, &ga_path, &writer).await,
        "RoleManagement.ReadWrite.Directory",
        "delete",
    );
    // A member is fair game for everything but the password.
    let r = patch(
        &app,
        &member_path,
        &writer,
        json!({"accountEnabled": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // Even with the password permission, an app never sets an admin's password.
    let automation = automation(&app).await;
    let r = patch(&app, &ga_path, &automation, new_password.clone()).await;
    assert_refused(&r, "never sets the password", "password by automation");
    let r = patch(&app, &member_path, &automation, new_password).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(password_works(&app, &ga, &password_of("ga@contoso.com")).await);
    assert_eq!(
        get(&app, &ga_path, &automation).await.body["accountEnabled"],
        true
    );
}

#[tokio::test]
async fn password_reset_by_an_administrator_ends_the_users_sessions_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    let ga = user_with(
        &app,
        "ga@contoso.com",
        Some(BuiltinRole::GlobalAdministrator),
    )
    .await;
    let paa = user_with(
        &app,
        "paa@contoso.com",
        Some(BuiltinRole::PrivilegedAuthenticationAdministrator),
    )
    .await;
    let ga_tokens = sign_in(&app, &ga).await;
    let ga_access = ga_tokens["access_token"].as_str().unwrap();
    let ga_refresh = ga_tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        get(&app, "/v1.0/me", ga_access).await.status,
        StatusCode::OK
    );

    // A Privileged Authentication Administrator may reset any password.
    let token = access(&app, &paa).await;
    let r = patch(
        &app,
        &format!("/v1.0/users/{}", ga.id),
        &token,
        json!({"passwordProfile": {"password": "fresh start 123"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        get(&app, "/v1.0/me", ga_access).await.status,
        StatusCode::UNAUTHORIZED,
        "the access token died with the old password"
    );
    let r = refresh(&app, ga_refresh).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert!(password_works(&app, &ga, "fresh start 123").await);
    // But not delete: that needs a Global Administrator.
    assert_refused(
        &delete(&app, &format!("/v1.0/users/{}", ga.id), &token).await,
        "Global Administrator",
        "delete by PAA",
    );
}

// --- item 2: smaller gaps ------------------------------------------------------

#[tokio::test]
async fn authentication_administrator_cannot_change_own_mfa_or_end_an_admins_sessions() {
    let app = TestApp::spawn().await;
    let aa = user_with(
        &app,
        "aa@contoso.com",
        Some(BuiltinRole::AuthenticationAdministrator),
    )
    .await;
    let ga = user_with(
        &app,
        "ga@contoso.com",
        Some(BuiltinRole::GlobalAdministrator),
    )
    .await;
    let member = user_with(&app, "member@contoso.com", None).await;
    let token = access(&app, &aa).await;

    let own = format!("/v1.0/users/{}/authentication/requirements", aa.id);
    let automation = automation(&app).await;
    let r = patch(
        &app,
        &own,
        &automation,
        json!({"perUserMfaState": "enforced"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = patch(&app, &own, &token, json!({"perUserMfaState": "disabled"})).await;
    assert_refused(&r, "your own per-user MFA state", "own MFA");
    assert_eq!(
        get(&app, &own, &automation).await.body["perUserMfaState"],
        "enforced"
    );

    let ga_tokens = sign_in(&app, &ga).await;
    let r = post(
        &app,
        &format!("/v1.0/users/{}/revokeSignInSessions", ga.id),
        &token,
        json!({}),
    )
    .await;
    assert_refused(&r, "Privileged Authentication Administrator", "revoke GA");
    let ga_access = ga_tokens["access_token"].as_str().unwrap();
    assert_eq!(
        get(&app, "/v1.0/me", ga_access).await.status,
        StatusCode::OK
    );

    let r = post(
        &app,
        &format!("/v1.0/users/{}/revokeSignInSessions", member.id),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn me_deleting_the_only_method_is_refused_even_after_a_strong_sign_in() {
    let app = TestApp::spawn().await;
    let user = app.create_user("tap-only@contoso.com", None).await;
    let created = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
    let tap = created["temporaryAccessPass"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let tokens = app
        .tap_user_tokens("tap-only@contoso.com", tap, EVERY_SCOPE)
        .await;
    let token = tokens["access_token"].as_str().unwrap();
    let r = delete(
        &app,
        &format!("/v1.0/me/authentication/temporaryAccessPassMethods/{id}"),
        token,
    )
    .await;
    assert_refused(&r, "only sign-in method", "only method");
    let left = get(
        &app,
        "/v1.0/me/authentication/temporaryAccessPassMethods",
        token,
    )
    .await;
    assert_eq!(left.body["value"][0]["id"], id, "{}", left.text);
}

#[tokio::test]
async fn me_deleting_the_last_passkey_needs_a_fresh_strong_sign_in() {
    let app = TestApp::spawn().await;
    let (user, _auth) = crate::passkey::onboard(&app, "keyholder@contoso.com").await;
    // The user also has a password, and signs in with it alone.
    let hash = app.state.hasher.hash("keyholder password 1").await.unwrap();
    app.state
        .directory
        .update_user(
            user.id,
            gatepass::directory::UserPatch {
                password_hash: Some(hash),
                ..Default::default()
            },
            app.clock.now(),
        )
        .await
        .unwrap();
    let tokens = app
        .user_tokens("keyholder@contoso.com", "keyholder password 1", EVERY_SCOPE)
        .await;
    let token = tokens["access_token"].as_str().unwrap();
    let keys = get(&app, "/v1.0/me/authentication/fido2Methods", token).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
    let key_id = keys.body["value"][0]["id"].as_str().unwrap().to_owned();
    let r = delete(
        &app,
        &format!("/v1.0/me/authentication/fido2Methods/{key_id}"),
        token,
    )
    .await;
    assert_refused(&r, "fresh sign-in", "last passkey");
    let still = get(&app, "/v1.0/me/authentication/fido2Methods", token).await;
    assert_eq!(still.body["value"].as_array().unwrap().len(), 1);
    // The administrator's path is not bound by it, and not the user's own.
    let r = delete(
        &app,
        &format!(
            "/v1.0/users/{}/authentication/fido2Methods/{key_id}",
            user.id
        ),
        token,
    )
    .await;
    assert_refused(&r, "use /me", "own passkey through the admin path");
}

#[tokio::test]
async fn introspection_answers_only_for_the_callers_own_tokens() {
    let app = TestApp::spawn().await;
    let user = user_with(&app, "frank@contoso.com", None).await;
    let tokens = sign_in(&app, &user).await;
    let introspect = |client: &'static str, secret: &'static str, token: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/introspect"))
                .basic_auth(client, Some(secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for kind in ["access_token", "refresh_token"] {
        let token = tokens[kind].as_str().unwrap().to_owned();
        let own = introspect(RP_ID, RP_SECRET, token.clone()).await;
        assert_eq!(own["active"], true, "{kind}: {own}");
        let other = introspect(AUTOMATION_ID, AUTOMATION_SECRET, token.clone()).await;
        assert_eq!(
            other,
            json!({"active": false}),
            "{kind}: another client learns nothing"
        );
        let rs = introspect(INTROSPECTOR_ID, INTROSPECTOR_SECRET, token).await;
        assert_eq!(rs["active"], true, "{kind}: the resource server may: {rs}");
        assert_eq!(rs["client_id"], RP_ID);
    }
}

// --- item 9: atomic lockout ------------------------------------------------------

/// The harness's `[throttling] max_failures`.
const MAX_FAILURES: u64 = 5;

/// A password page for `username` (username entered), in a fresh browser.
async fn password_page(app: &TestApp, username: &str) -> (Browser, String, String) {
    let browser = app.browser();
    let url = format!(
        "{}/authorize?client_id={RP_ID}&response_type=code&scope=openid&redirect_uri={}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        app.issuer,
        url::form_urlencoded::byte_serialize(RP_REDIRECT.as_bytes()).collect::<String>()
    );
    let first = browser.get(&url).await;
    let flow = first.hidden("flow").unwrap();
    let csrf = first.hidden("csrf").unwrap();
    let next = browser
        .post_form(
            "/signin/username",
            &[("flow", &flow), ("csrf", &csrf), ("username", username)],
        )
        .await;
    let page = browser.get(&next.location.unwrap()).await;
    assert!(page.has_label("Password"), "{}", page.html);
    let csrf = page.hidden("csrf").unwrap();
    (browser, flow, csrf)
}

/// Posts `n` wrong passwords at once on one flow; returns the pages.
async fn burst(app: &TestApp, username: &str, n: usize) -> Vec<Page> {
    let (browser, flow, csrf) = password_page(app, username).await;
    let browser = std::sync::Arc::new(browser);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (browser, flow, csrf) = (browser.clone(), flow.clone(), csrf.clone());
        tasks.spawn(async move {
            let guess = format!("wrong guess {i}");
            browser
                .post_form(
                    "/signin/password",
                    &[("flow", &flow), ("csrf", &csrf), ("password", &guess)],
                )
                .await
        });
    }
    let mut pages = Vec::new();
    while let Some(page) = tasks.join_next().await {
        pages.push(page.unwrap());
    }
    pages
}

#[tokio::test]
async fn lockout_concurrent_wrong_guesses_reach_the_verifier_at_most_max_failures_times() {
    let app = TestApp::spawn().await;
    app.create_user("victim@contoso.com", Some("victim password 1"))
        .await;
    let before = app.state.hasher.verifications();
    let pages = burst(&app, "victim@contoso.com", 100).await;
    let verified = app.state.hasher.verifications() - before;
    assert!(
        verified <= MAX_FAILURES,
        "100 concurrent guesses reached the verifier {verified} times (limit {MAX_FAILURES})"
    );
    assert!(
        pages.iter().all(|p| p.location.is_none()),
        "no guess signed in"
    );
    let locked = pages
        .iter()
        .filter(|p| p.html.contains("temporarily locked"))
        .count();
    assert!(
        locked >= 95,
        "{locked} of 100 were told the account is locked"
    );
}

#[tokio::test]
async fn lockout_one_burst_is_one_lockout_of_the_base_duration_and_one_refusal_entry() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("victim@contoso.com", Some("victim password 1"))
        .await;
    burst(&app, "victim@contoso.com", 60).await;
    // More refused attempts while locked: counted, not logged one by one.
    burst(&app, "victim@contoso.com", 20).await;

    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    let lockouts = log
        .iter()
        .filter(|e| {
            e.status
                .failure_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("Account locked"))
        })
        .count();
    assert_eq!(lockouts, 1, "one burst, one lockout");
    let refusals = log
        .iter()
        .filter(|e| {
            e.status
                .failure_reason
                .as_deref()
                .is_some_and(|r| r.contains("temporarily locked"))
        })
        .count();
    assert_eq!(refusals, 1, "refused attempts are counted, not logged each");
    assert!(
        log.len() <= MAX_FAILURES as usize + 2,
        "{} entries for 80 attempts",
        log.len()
    );

    // The first lockout lasts the base 5 minutes, not 2^n of them.
    app.clock.advance(time::Duration::seconds(5 * 60 - 1));
    assert!(
        !password_works(&app, &user, "victim password 1").await,
        "still locked"
    );
    app.clock.advance(time::Duration::seconds(2));
    assert!(
        password_works(&app, &user, "victim password 1").await,
        "the first lockout of a burst is the base lockout"
    );
}
