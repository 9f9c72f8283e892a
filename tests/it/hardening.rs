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

/// Whether `user` can still sign in with `password`.
async fn password_works(app: &TestApp, user: &User, password: &str) -> bool {
    let url = authorize(app, "");
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

    // An empty patch writes too (the record and the audit): it needs the
    // write permission like any other.
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let r = patch(&app, &member_path, &reader, json!({})).await;
    assert_refused(&r, "User.ReadWrite.All", "empty patch by a reader");
    let r = patch(&app, &member_path, &writer, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

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
    let r = app.refresh(ga_refresh).await;
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
    let first = browser.get(&authorize(app, "")).await;
    let (flow, next) = browser.enter_username(&first, username).await;
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

// --- item 8: bounded hashing --------------------------------------------------------

/// One sign-in flow up to the password page, in the shared `browser`.
async fn flow_at_password_page(
    browser: &Browser,
    issuer: &str,
    username: &str,
) -> (String, String) {
    let first = browser
        .get(&pkce_authorize_url(issuer, "openid", PKCE_CHALLENGE, ""))
        .await;
    let (flow, _) = browser.enter_username(&first, username).await;
    (flow, first.hidden("csrf").expect("csrf"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hashing_flood_of_500_password_posts_keeps_memory_bounded_and_health_answering() {
    // Default argon2id cost (19 MiB a hash); only lockout is out of the way,
    // so every post reaches the hasher.
    let server =
        crate::process::Process::start("[throttling]\nmax_failures_per_source = 100000\nmax_flows_per_source_per_minute = 100000\n", &[])
            .await;
    let baseline = server.memory_kib("VmRSS");
    let browser = std::sync::Arc::new(Browser::new(server.issuer.clone()));
    let mut flows = Vec::new();
    for i in 0..500 {
        flows.push(flow_at_password_page(&browser, &server.issuer, &format!("nobody{i}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (flow, csrf) in flows {
        let browser = browser.clone();
        let url = format!("{}/signin/password", server.issuer);
        tasks.spawn(async move {
            let r = browser
                .http
                .post(url)
                .form(&[
                    ("flow", &flow),
                    ("csrf", &csrf),
                    ("password", &"x".repeat(64)),
                ])
                .send()
                .await
                .expect("password post");
            (r.status(), r.headers().get("retry-after").cloned())
        });
    }
    // While the flood is in: the server still answers its health check.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let health = reqwest::Client::new()
        .get(server.url("/healthz"))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .expect("/healthz during the flood");
    assert!(health.status().is_success());
    let (mut answered, mut busy) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (status, retry_after) = r.unwrap();
        match status.as_u16() {
            200 => answered += 1,
            503 => {
                assert!(retry_after.is_some(), "503 without Retry-After");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let peak = server.memory_kib("VmHWM");
    eprintln!(
        "500 concurrent password posts: {answered} verified, {busy} refused with 503; RSS {} MiB before, peak {} MiB",
        baseline / 1024,
        peak / 1024
    );
    assert!(busy > 0, "a flood beyond the queue is refused");
    assert!(answered >= 2, "the slots and the queue are served");
    assert!(
        peak < 256 * 1024,
        "peak RSS {} MiB: hashing memory must stay bounded",
        peak / 1024
    );
}

// --- item 7: timeouts and shutdown ----------------------------------------------------

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads until the server closes the connection; `None` if it is still
/// open after `within`.
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test]
async fn server_closes_a_connection_that_sends_half_a_header() {
    let app = TestApp::spawn_with("[server]\nheader_read_timeout_seconds = 1\n").await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = closed_within(&mut stream, std::time::Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a half header kept the connection open");
    // An idle keep-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut idle, std::time::Duration::from_secs(5))
        .await
        .expect("idle keep-alive connection closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn server_answers_a_trickling_body_in_time() {
    let app = TestApp::spawn_with(
        "[server]\nbody_read_timeout_seconds = 1\nrequest_timeout_seconds = 2\n",
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(
        head.starts_with("HTTP/1.1 408") || head.starts_with("HTTP/1.1 400"),
        "{head}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[tokio::test]
async fn server_serves_at_most_max_connections_at_once() {
    let app =
        TestApp::spawn_with("[server]\nmax_connections = 2\nheader_read_timeout_seconds = 30\n")
            .await;
    let hog1 = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let hog2 = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let fresh = || {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(700))
            .build()
            .unwrap()
    };
    let third = fresh().get(app.url("/healthz")).send().await;
    assert!(third.is_err(), "a third connection was served: {third:?}");
    drop(hog1);
    let fourth = fresh().get(app.url("/healthz")).send().await;
    assert!(
        fourth.is_ok_and(|r| r.status().is_success()),
        "a freed slot serves again"
    );
    drop(hog2);
}

#[tokio::test]
async fn sigterm_with_a_stalled_connection_stops_within_the_grace_and_keeps_the_memory_tier() {
    let server = crate::process::Process::start(
        "[server]\nshutdown_grace_seconds = 2\nheader_read_timeout_seconds = 60\n[password_hashing]\nmemory_kib = 64\niterations = 1\n",
        &[],
    )
    .await;
    // A sign-in flow lives in the embedded store's memory tier.
    let browser = Browser::new(server.issuer.clone());
    let (flow, _) = flow_at_password_page(&browser, &server.issuer, "someone").await;
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut server = server;
    server.signal("TERM");
    let status = server
        .wait_exit(std::time::Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", server.output()));
    assert!(status.success(), "{status}: {}", server.output());
    // The flow was saved on the way out: the sign-in continues after restart.
    let server = server.restart(&[]).await;
    let page = browser
        .get(&format!("{}/signin/password?flow={flow}", server.issuer))
        .await;
    assert!(page.has_label("Password"), "flow lost: {}", page.html);
}

// --- item 3: conditional access by object id --------------------------------------

#[tokio::test]
async fn ca_exclusion_by_upn_is_stored_by_id_so_a_rename_inherits_nothing() {
    let app = TestApp::spawn().await;
    let bg = user_with(&app, "bg@contoso.com", None).await;
    let alice = user_with(&app, "alice@contoso.com", None).await;
    let token = automation(&app).await;
    let policy = json!({
        "displayName": "Block the app except break-glass",
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"], "excludeUsers": ["bg@contoso.com"]},
            "applications": {"includeApplications": [RP_ID]},
            "clientAppTypes": ["all"]
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]}
    });
    let created = post(
        &app,
        "/v1.0/identity/conditionalAccess/policies",
        &token,
        policy.clone(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let stored = get(
        &app,
        &format!("/v1.0/identity/conditionalAccess/policies/{id}"),
        &token,
    )
    .await;
    assert_eq!(
        stored.body["conditions"]["users"]["excludeUsers"],
        json!([bg.id.to_string()]),
        "stored by object id"
    );

    // A name nobody has is refused, naming it.
    let mut ghost = policy.clone();
    ghost["conditions"]["users"]["excludeUsers"] = json!(["ghost@contoso.com"]);
    let r = post(
        &app,
        "/v1.0/identity/conditionalAccess/policies",
        &token,
        ghost,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.error_message().contains("ghost@contoso.com"),
        "{}",
        r.text
    );
    assert!(r.error_message().contains("excludeUsers"), "{}", r.text);

    // Alice takes the break-glass account's name: she gains nothing.
    for (user, upn) in [(&bg, "bg-old@contoso.com"), (&alice, "bg@contoso.com")] {
        let r = patch(
            &app,
            &format!("/v1.0/users/{}", user.id),
            &token,
            json!({"userPrincipalName": upn}),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let url = authorize(&app, "");
    let blocked = app
        .browser()
        .sign_in(&url, "bg@contoso.com", &password_of("alice@contoso.com"))
        .await;
    let page = blocked.expect_err("alice, renamed to bg@, is still blocked");
    assert!(
        page.html.contains("Block the app except break-glass"),
        "{}",
        page.html
    );
    let allowed = app
        .browser()
        .sign_in(&url, "bg-old@contoso.com", &password_of("bg@contoso.com"))
        .await;
    assert!(
        allowed.is_ok_and(|l| l.contains("code=")),
        "the real break-glass account is excluded"
    );
}

// --- item 4: the gate everywhere it matters ------------------------------------------

#[tokio::test]
async fn ca_for_security_info_stops_register_and_delete_posts_not_only_the_page() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("newhire@contoso.com", Some("newhire password 1"))
        .await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let browser = app.browser();
    let page = crate::passkey::account_sign_in_with_tap(
        &app,
        &browser,
        "newhire@contoso.com",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let csrf = meta_csrf(&page);
    // The page was open; now a policy blocks registering security info.
    app.state
        .ca
        .put(
            gatepass::policy::ca_store::CaKind::Policy,
            "block-registration",
            &json!({
                "id": "block-registration", "displayName": "No registration today", "state": "enabled",
                "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeUserActions": ["urn:user:registersecurityinfo"]}, "clientAppTypes": ["all"]},
                "grantControls": {"operator": "OR", "builtInControls": ["block"]}
            }),
        )
        .await
        .unwrap();
    let (status, body) = post_json(
        &browser,
        &app,
        "/account/passkeys/register/start",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "conditional_access");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("No registration today")
    );

    let r = browser
        .post_form(
            "/account/methods/delete",
            &[("csrf", csrf.as_str()), ("method", "password")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/account/security-info"));
    assert!(
        app.state
            .directory
            .password_hash(user.id, app.clock.now())
            .await
            .unwrap()
            .is_some(),
        "nothing was deleted"
    );
}

#[tokio::test]
async fn registration_commits_only_if_session_user_and_pass_are_unchanged_since_the_check() {
    use gatepass::authn::AuthMethod;
    let app = TestApp::spawn().await;
    let user = app.create_user("racer@contoso.com", None).await;
    let created = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
    let now = app.clock.now();
    let t = now.unix_timestamp();
    let (pass, _) = app.state.taps.pass(user.id, t).await.unwrap().unwrap();
    assert_eq!(pass.id, created["id"].as_str().unwrap());
    let (secret, _) = app
        .state
        .sessions
        .start(
            &user,
            vec![AuthMethod::TemporaryAccessPassMultiUse],
            now,
            time::Duration::hours(1),
            Some(&pass),
            None,
        )
        .await
        .unwrap();
    let digest = secret.digest();
    let policy = gatepass::authn::passkey_policy::Fido2Policy::default();
    let register = |change: &'static str| {
        let app = &app;
        let user = user.clone();
        let digest = digest.clone();
        let policy = &policy;
        async move {
            let admit = || gatepass::authn::passkey::PolicyFor {
                policy,
                targeted: true,
            };
            let mut auth = SoftAuthenticator::new(&app.issuer);
            let (ceremony, options) = app
                .state
                .passkeys
                .start_registration(&user, digest.as_str(), admit(), t)
                .await
                .unwrap();
            let credential: webauthn_rs::prelude::RegisterPublicKeyCredential =
                serde_json::from_value(auth.register(options)).unwrap();
            // The versions are taken when the checks run...
            let guards = app
                .state
                .sessions
                .unchanged(&digest, now)
                .await
                .unwrap()
                .unwrap();
            // ... and something changes before the write.
            match change {
                "user" => {
                    app.state
                        .directory
                        .update_user(
                            user.id,
                            gatepass::directory::UserPatch {
                                display_name: Some("Renamed".into()),
                                ..Default::default()
                            },
                            now,
                        )
                        .await
                        .unwrap();
                }
                "pass" => {
                    app.issue_tap(&user, json!({"isUsableOnce": false})).await;
                }
                _ => {}
            }
            let ceremony = app
                .state
                .passkeys
                .take_ceremony(&ceremony, t)
                .await
                .unwrap();
            app.state
                .passkeys
                .finish_registration(
                    ceremony,
                    digest.as_str(),
                    &credential,
                    "Key",
                    admit(),
                    guards,
                    t,
                )
                .await
        }
    };
    assert!(register("user").await.is_err(), "user changed: refused");
    assert!(
        register("nothing").await.is_ok(),
        "nothing changed: registered"
    );
    assert!(register("pass").await.is_err(), "pass replaced: refused");
}

#[tokio::test]
async fn refresh_reevaluates_conditional_access_and_answers_invalid_grant() {
    let app = TestApp::spawn().await;
    let user = user_with(&app, "worker@contoso.com", None).await;
    let tokens = sign_in(&app, &user).await;
    let first = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let rotated: Value = first.json().await.unwrap();
    // An administrator now enforces MFA for the user; the grant came from
    // a password sign-in.
    let r = patch(
        &app,
        &format!("/v1.0/users/{}/authentication/requirements", user.id),
        &automation(&app).await,
        json!({"perUserMfaState": "enforced"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let second = app
        .refresh(rotated["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Per-user MFA"),
        "{body}"
    );
}

// --- items 5 and 6: logout hints, prompt=none --------------------------------------

/// An authorization URL for the confidential `rp`, with `extra` query
/// parameters.
fn authorize(app: &TestApp, extra: &str) -> String {
    pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, extra)
}

/// Signs `user` in through `browser` and returns their ID token.
async fn id_token_of(app: &TestApp, browser: &Browser, user: &User) -> String {
    let upn = &user.user_principal_name;
    app.user_tokens_in(browser, upn, &password_of(upn), "openid")
        .await["id_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn logout_with_someone_elses_id_token_hint_asks_before_ending_the_session() {
    let app = TestApp::spawn().await;
    let alice = user_with(&app, "alice@contoso.com", None).await;
    let bob = user_with(&app, "bob@contoso.com", None).await;
    let alice_browser = app.browser();
    let alice_token = id_token_of(&app, &alice_browser, &alice).await;
    let bob_token = id_token_of(&app, &app.browser(), &bob).await;
    let logout = |hint: &str| format!("/logout?id_token_hint={hint}");

    // Bob's token, e.g. in a link planted on a page Alice visits.
    let page = alice_browser.get(&logout(&bob_token)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("name=\"confirm\""), "{}", page.html);
    let sso = alice_browser.get(&authorize(&app, "&prompt=none")).await;
    assert!(
        sso.location.as_deref().is_some_and(|l| l.contains("code=")),
        "Alice is still signed in"
    );
    // Her own token ends her session at once.
    let done = alice_browser.get(&logout(&alice_token)).await;
    assert!(!done.html.contains("name=\"confirm\""), "{}", done.html);
    let after = alice_browser.get(&authorize(&app, "&prompt=none")).await;
    assert!(after.location.unwrap().contains("error=login_required"));
}

#[tokio::test]
async fn prompt_none_never_shows_a_page_for_a_step_up_or_a_block() {
    use gatepass::policy::ca_store::CaKind;
    let app = TestApp::spawn().await;
    let user = user_with(&app, "alice@contoso.com", None).await;
    let browser = app.browser();
    id_token_of(&app, &browser, &user).await;
    let policy = |grant: Value| {
        json!({
            "id": "rp-policy", "displayName": "RP policy", "state": "enabled",
            "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": [RP_ID]}, "clientAppTypes": ["all"]},
            "grantControls": grant
        })
    };
    for (grant, error) in [
        (
            json!({"operator": "OR", "builtInControls": ["mfa"]}),
            "interaction_required",
        ),
        (
            json!({"operator": "OR", "builtInControls": ["block"]}),
            "access_denied",
        ),
    ] {
        app.state
            .ca
            .put(CaKind::Policy, "rp-policy", &policy(grant))
            .await
            .unwrap();
        let r = browser.get(&authorize(&app, "&prompt=none")).await;
        let location = r
            .location
            .unwrap_or_else(|| panic!("a page was shown: {}", r.html));
        assert!(location.starts_with(RP_REDIRECT), "{location}");
        assert_eq!(query_param(&location, "error").as_deref(), Some(error));
        assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    }
}

// --- item 10: bounded work for unauthenticated and audit requests ---------------------

/// A store that counts the records its scans hand back, to show a request
/// reads a page and not a whole table.
struct CountingStore {
    inner: std::sync::Arc<dyn gatepass::store::Store>,
    scanned: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl gatepass::store::Store for CountingStore {
    async fn get(
        &self,
        t: &'static str,
        k: &str,
        now: i64,
    ) -> gatepass::store::StoreResult<Option<gatepass::store::Record>> {
        self.inner.get(t, k, now).await
    }
    async fn put(
        &self,
        t: &'static str,
        k: &str,
        v: Vec<u8>,
        e: Option<i64>,
        d: gatepass::store::Durability,
    ) -> gatepass::store::StoreResult<u64> {
        self.inner.put(t, k, v, e, d).await
    }
    async fn insert(
        &self,
        t: &'static str,
        k: &str,
        v: Vec<u8>,
        e: Option<i64>,
        d: gatepass::store::Durability,
        now: i64,
    ) -> gatepass::store::StoreResult<Option<u64>> {
        self.inner.insert(t, k, v, e, d, now).await
    }
    async fn take(
        &self,
        t: &'static str,
        k: &str,
        d: gatepass::store::Durability,
        now: i64,
    ) -> gatepass::store::StoreResult<Option<gatepass::store::Record>> {
        self.inner.take(t, k, d, now).await
    }
    async fn compare_and_swap(
        &self,
        t: &'static str,
        k: &str,
        x: u64,
        v: Option<Vec<u8>>,
        e: Option<i64>,
        d: gatepass::store::Durability,
        now: i64,
    ) -> gatepass::store::StoreResult<Option<u64>> {
        self.inner.compare_and_swap(t, k, x, v, e, d, now).await
    }
    async fn delete(
        &self,
        t: &'static str,
        k: &str,
        d: gatepass::store::Durability,
        now: i64,
    ) -> gatepass::store::StoreResult<bool> {
        self.inner.delete(t, k, d, now).await
    }
    async fn increment(
        &self,
        t: &'static str,
        k: &str,
        n: i64,
        e: Option<i64>,
        d: gatepass::store::Durability,
        now: i64,
    ) -> gatepass::store::StoreResult<i64> {
        self.inner.increment(t, k, n, e, d, now).await
    }
    async fn commit(
        &self,
        txn: gatepass::store::Txn,
        now: i64,
    ) -> gatepass::store::StoreResult<bool> {
        self.inner.commit(txn, now).await
    }
    async fn scan(
        &self,
        t: &'static str,
        now: i64,
    ) -> gatepass::store::StoreResult<Vec<(String, gatepass::store::Record)>> {
        let all = self.inner.scan(t, now).await?;
        self.scanned
            .fetch_add(all.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(all)
    }
    async fn scan_prefix(
        &self,
        t: &'static str,
        p: &str,
        now: i64,
    ) -> gatepass::store::StoreResult<Vec<(String, gatepass::store::Record)>> {
        let all = self.inner.scan_prefix(t, p, now).await?;
        self.scanned
            .fetch_add(all.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(all)
    }
    async fn scan_page(
        &self,
        t: &'static str,
        p: &str,
        a: Option<&str>,
        o: gatepass::store::Order,
        l: usize,
        now: i64,
    ) -> gatepass::store::StoreResult<Vec<(String, gatepass::store::Record)>> {
        let page = self.inner.scan_page(t, p, a, o, l, now).await?;
        self.scanned
            .fetch_add(page.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(page)
    }
    async fn purge_expired(&self, now: i64) -> gatepass::store::StoreResult<u64> {
        self.inner.purge_expired(now).await
    }
    async fn ping(&self) -> gatepass::store::StoreResult<()> {
        self.inner.ping().await
    }
}

#[tokio::test]
async fn audit_log_reads_a_page_from_the_store_not_the_whole_log() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let inner = std::sync::Arc::new(
        gatepass::store::embedded::EmbeddedStore::open(&dir.path().join("gatepass.redb")).unwrap(),
    );
    let scanned = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = std::sync::Arc::new(CountingStore {
        inner,
        scanned: scanned.clone(),
    });
    let app = TestApp::spawn_on(store, dir, "").await;
    let start = app.clock.now();
    for i in 0..1500 {
        let entry = gatepass::audit::SignIn {
            id: gatepass::ids::LogEntryId::generate().unwrap(),
            created_date_time: start + time::Duration::seconds(i),
            user_id: None,
            user_principal_name: if i % 500 == 7 {
                "needle".into()
            } else {
                format!("user{i}")
            },
            user_display_name: None,
            app_id: RP_ID.into(),
            app_display_name: RP_ID.into(),
            ip_address: "192.0.2.1".into(),
            device_detail: None,
            correlation_id: None,
            client_app_used: "Browser".into(),
            status: gatepass::audit::SignInStatus {
                error_code: 50126,
                failure_reason: Some("Invalid username or password".into()),
            },
            authentication_details: vec![],
            authentication_methods_used: vec![],
            authentication_requirement: None,
            conditional_access_status: "notApplied".into(),
            applied_conditional_access_policies: vec![],
        };
        app.state.audit.record_sign_in(&entry).await.unwrap();
    }
    app.clock.advance(time::Duration::seconds(2000));
    let token = automation(&app).await;
    scanned.store(0, Ordering::Relaxed);
    let first = get(&app, "/v1.0/auditLogs/signIns?$top=10", &token).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let read = scanned.load(Ordering::Relaxed);
    assert!(
        read <= 20,
        "one page of 10 read {read} log entries from the store"
    );
    let names: Vec<&str> = first.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["userPrincipalName"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "user1499", "newest first");
    assert_eq!(names.len(), 10);

    // Following the links walks the whole log once, in order.
    let mut seen = names.len();
    let mut next = first.body["@odata.nextLink"].as_str().map(str::to_owned);
    let mut last_time = first.body["value"][9]["createdDateTime"]
        .as_str()
        .unwrap()
        .to_owned();
    while let Some(link) = next {
        let page = get(&app, &link.replace("$top=10", "$top=500"), &token).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for e in page.body["value"].as_array().unwrap() {
            let t = e["createdDateTime"].as_str().unwrap().to_owned();
            assert!(t < last_time, "{t} after {last_time}");
            last_time = t;
            seen += 1;
        }
        next = page.body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 1500);

    // A filter scans on, but stays bounded per request.
    scanned.store(0, Ordering::Relaxed);
    let needles = get(
        &app,
        "/v1.0/auditLogs/signIns?$top=999&$filter=userPrincipalName%20eq%20'needle'",
        &token,
    )
    .await;
    assert_eq!(
        needles.body["value"].as_array().unwrap().len(),
        3,
        "{}",
        needles.text
    );
    assert!(scanned.load(Ordering::Relaxed) <= 1500 + 999);
}

#[tokio::test]
async fn authorization_parameters_are_capped_before_anything_is_stored() {
    let app = TestApp::spawn().await;
    let flows = || async {
        app.state
            .store
            .scan(
                gatepass::web::signin::FLOWS,
                app.clock.now().unix_timestamp(),
            )
            .await
            .unwrap()
            .len()
    };
    let before = flows().await;
    let browser = app.browser();
    for extra in [
        format!("&acr_values={}", "mfa+".repeat(1500)),
        format!("&claims={}", "x".repeat(5000)),
        format!("&x-padding={}", "y".repeat(3000)),
        (0..50).map(|i| format!("&p{i}=1")).collect::<String>(),
        // A login_hint longer than any username.
        format!("&login_hint={}", "a".repeat(114)),
    ] {
        let r = browser.get(&authorize(&app, &extra)).await;
        let location = r.location.expect("an error redirect to the client");
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("invalid_request")
        );
        assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    }
    // An oversized redirect_uri is never used: shown.
    let r = browser
        .get(&authorize(&app, "").replace(
            "redirect_uri=",
            &format!("redirect_uri={}", "h".repeat(3000)),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.location.is_none());
    assert_eq!(flows().await, before, "nothing was stored");
}

#[tokio::test]
async fn sign_in_flows_and_passkey_ceremonies_are_limited_per_source() {
    let app = TestApp::spawn_with(
        "[throttling]\nmax_flows_per_source_per_minute = 5\nmax_ceremonies_per_source_per_minute = 3\n",
    )
    .await;
    let browser = app.browser();
    let mut pages = Vec::new();
    for _ in 0..5 {
        let page = browser.get(&authorize(&app, "")).await;
        assert_eq!(page.status, StatusCode::OK);
        pages.push(page);
    }
    let r = app.http.get(authorize(&app, "")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60");
    // Another client is not affected.
    let other = Browser::from_address(app.issuer.clone(), "127.0.0.2".parse().unwrap());
    assert_eq!(other.get(&authorize(&app, "")).await.status, StatusCode::OK);

    let page = &pages[0];
    let start = || async {
        post_json(
            &browser,
            &app,
            "/signin/passkey/start",
            None,
            json!({"flow": page.hidden("flow").unwrap(), "csrf": page.hidden("csrf").unwrap(), "mode": "discoverable"}),
        )
        .await
        .0
    };
    for _ in 0..3 {
        assert_eq!(start().await, 200);
    }
    assert_eq!(start().await, 429);

    // A minute later the source may start again.
    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        browser.get(&authorize(&app, "")).await.status,
        StatusCode::OK
    );
    assert_eq!(start().await, 200);
}

// --- item 12: hygiene --------------------------------------------------------------

#[tokio::test]
async fn https_issuer_sets_host_prefixed_secure_cookies_and_hsts() {
    let app = TestApp::spawn_https().await;
    let plain = format!("http://{}", app.addr);
    let url = authorize(&app, "").replace(&app.issuer, &plain);
    let r = app.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-gp_binding="), "{cookie}");
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    // Plain http issuers (development) get neither.
    let dev = TestApp::spawn().await;
    let r = dev.http.get(authorize(&dev, "")).send().await.unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("gp_binding=")
    );
    assert!(r.headers().get("strict-transport-security").is_none());
}

#[tokio::test]
async fn sign_in_forms_may_post_only_to_gatepass_and_the_clients_redirect_origin() {
    let app = TestApp::spawn().await;
    let r = app.http.get(authorize(&app, "")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let form_action = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action"))
        .unwrap()
        .to_owned();
    assert_eq!(
        form_action, "form-action 'self' http://127.0.0.1:9000",
        "{csp}"
    );
    // Pages of no client's flow allow Gatepass alone.
    let r = app
        .http
        .get(app.url("/account/security-info"))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(!csp.contains("http:") && !csp.contains("https:"), "{csp}");
}

#[tokio::test]
async fn check_config_warns_about_the_demo_secret_and_the_demo_app_cannot_write_users() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gatepass.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .args(["check-config", "--config", config])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("demo-app") && stderr.contains("demo secret"),
        "{stderr}"
    );
    let settings =
        gatepass::config::Settings::load(std::path::Path::new(config), std::iter::empty()).unwrap();
    let demo = settings.client("demo-app").unwrap();
    assert!(!demo.delegated_permissions.contains("User.ReadWrite.All"));
}

#[tokio::test]
async fn logs_escape_usernames_and_never_hold_hints_codes_or_flow_ids() {
    let server = crate::process::Process::start(
        "[password_hashing]\nmemory_kib = 64\niterations = 1\n",
        &[("GATEPASS_LOG", "debug")],
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token: Value = http
        .post(server.url("/token"))
        .basic_auth("automation", Some("automation-secret-0123456789"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(server.url("/v1.0/users"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"userPrincipalName": "frank", "displayName": "Frank", "passwordProfile": {"password": "frank password 1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // A username that tries to start a log line of its own, by form and by hint.
    let browser = Browser::new(server.issuer.clone());
    let base = pkce_authorize_url(&server.issuer, "openid", PKCE_CHALLENGE, "");
    let hinted = browser
        .get(&format!(
            "{base}&login_hint=evil%0AFORGED%20sign-in%20succeeded"
        ))
        .await;
    if let (Some(flow), Some(csrf)) = (hinted.hidden("flow"), hinted.hidden("csrf")) {
        // Straight to the password step of the hinted flow.
        browser
            .post_form(
                "/signin/password",
                &[("flow", &flow), ("csrf", &csrf), ("password", "x")],
            )
            .await;
    }
    let (flow, csrf) =
        flow_at_password_page(&browser, &server.issuer, "evil\nFORGED sign-in succeeded").await;
    browser
        .post_form(
            "/signin/password",
            &[("flow", &flow), ("csrf", &csrf), ("password", "x")],
        )
        .await;
    let location = browser
        .sign_in(&base, "frank", "frank password 1")
        .await
        .unwrap();
    let code = query_param(&location, "code").unwrap();
    let tokens: Value = http
        .post(server.url("/token"))
        .basic_auth("rp", Some("rp-secret-0123456789"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", RP_REDIRECT),
            ("code_verifier", PKCE_VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    browser
        .get(&format!(
            "{}/logout?id_token_hint={id_token}",
            server.issuer
        ))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = server.output();
    assert!(
        log.contains("sign-in succeeded"),
        "debug logging is on:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a username forged a log line:\n{log}"
    );
    for (what, secret) in [
        ("id_token_hint", id_token),
        ("authorization code", code.as_str()),
        ("flow id", flow.as_str()),
        ("password", "frank password 1"),
    ] {
        assert!(!log.contains(secret), "the log holds the {what}");
    }
}

// --- item 13: passkey sign-in without enumeration ------------------------------------

/// Username page → Next for `username`; then the username-first passkey
/// start, as the page's script calls it.
async fn passkey_start_for(app: &TestApp, username: &str) -> (Browser, Page, u16, Value) {
    let browser = app.browser();
    let first = browser.get(&authorize(app, "")).await;
    let (flow, _) = browser.enter_username(&first, username).await;
    let csrf = first.hidden("csrf").unwrap();
    let (status, body) = post_json(
        &browser,
        app,
        "/signin/passkey/start",
        None,
        json!({"flow": flow, "csrf": csrf, "mode": "username"}),
    )
    .await;
    (browser, first, status, body)
}

/// The JSON's shape: every key path, values left out.
fn shape(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let path = format!("{at}/{k}");
                out.push(path.clone());
                shape(v, &path, out);
            }
        }
        Value::Array(a) => {
            out.push(format!("{at}[{}]", a.len()));
            for v in a {
                shape(v, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn passkey_start_answers_alike_for_unknown_users_users_without_passkeys_and_key_holders() {
    let app = TestApp::spawn().await;
    let (_, mut auth) = crate::passkey::onboard(&app, "keyholder@contoso.com").await;
    app.create_user("nokey@contoso.com", Some("nokey password 1"))
        .await;
    let mut shapes = Vec::new();
    let mut ids = Vec::new();
    for name in [
        "keyholder@contoso.com",
        "nokey@contoso.com",
        "ghost@contoso.com",
        "ghost@contoso.com",
    ] {
        let (_, _, status, body) = passkey_start_for(&app, name).await;
        assert_eq!(status, 200, "{name}: {body}");
        let mut s = Vec::new();
        shape(&body["options"], "", &mut s);
        s.sort();
        let public_key = &body["options"]["publicKey"];
        for scalar in ["timeout", "userVerification", "rpId"] {
            s.push(format!("{scalar}={}", public_key[scalar]));
        }
        shapes.push(s);
        ids.push(body["options"]["publicKey"]["allowCredentials"][0]["id"].clone());
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:#?}");
    assert_eq!(ids[2], ids[3], "a name's decoy is the same every time");
    assert_ne!(ids[1], ids[2], "different names, different decoys");

    // A decoy ceremony never finishes, not even with a real passkey.
    let (browser, page, _, decoy) = passkey_start_for(&app, "ghost@contoso.com").await;
    let mut options = decoy["options"].clone();
    options["publicKey"]["allowCredentials"] = json!([]);
    let assertion = auth.authenticate(options);
    let (status, body) = post_json(
        &browser,
        &app,
        "/signin/passkey/finish",
        None,
        json!({"flow": page.hidden("flow").unwrap(), "csrf": page.hidden("csrf").unwrap(), "ceremony": decoy["ceremony"], "credential": assertion}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Sign-in with this passkey failed.");
}

// --- item 14: crash safety ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_write_burst_loses_no_acknowledged_write() {
    let server = crate::process::Process::start("", &[]).await;
    let http = reqwest::Client::new();
    let app_token = |url: String| {
        let http = http.clone();
        async move {
            let body: Value = http
                .post(url)
                .basic_auth("automation", Some("automation-secret-0123456789"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let token = app_token(server.url("/token")).await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (http, token, url, acknowledged) = (
            http.clone(),
            token.clone(),
            server.url("/v1.0/users"),
            acknowledged.clone(),
        );
        writers.spawn(async move {
            for i in 0.. {
                let upn = format!("w{w}-u{i}@contoso.com");
                let sent = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"userPrincipalName": upn, "displayName": upn}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        acknowledged.lock().unwrap().push(upn);
                    }
                    // The server died mid-request: stop.
                    _ => break,
                }
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.signal("KILL");
    while writers.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 20,
        "the burst wrote only {}",
        acknowledged.len()
    );

    let server = server.restart(&[]).await;
    let token = app_token(server.url("/token")).await;
    let mut missing = Vec::new();
    for upn in &acknowledged {
        let r = http
            .get(server.url(&format!("/v1.0/users/{upn}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            missing.push(upn.clone());
        }
    }
    eprintln!(
        "SIGKILL after {} acknowledged user creations; {} missing after restart",
        acknowledged.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}
