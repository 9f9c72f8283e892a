//! Signing in with a Temporary Access Pass: the pages, `amr`/`acr`, the
//! lifecycle against a manual clock, the one-time race, throttling, and
//! that the plaintext pass is never stored or logged.

use crate::harness::*;
use crate::oidc::jwt_payload;
use gatepass::clock::Clock;
use openidconnect::OAuth2TokenResponse;
use serde_json::json;
use std::sync::Arc;

/// Username page → Next; returns the page the browser lands on.
async fn enter_username(browser: &Browser, authorize: &str, username: &str) -> Page {
    let first = browser.get(authorize).await;
    let flow = first.hidden("flow").expect("flow");
    let csrf = first.hidden("csrf").expect("csrf");
    let next = browser
        .post_form(
            "/signin/username",
            &[("flow", &flow), ("csrf", &csrf), ("username", username)],
        )
        .await;
    browser
        .get(&next.location.expect("redirect after username"))
        .await
}

async fn submit_tap(browser: &Browser, page: &Page, tap: &str) -> Page {
    assert!(
        page.has_label("Temporary Access Pass"),
        "expected the TAP prompt: {}",
        page.html
    );
    let flow = page.hidden("flow").expect("flow");
    let csrf = page.hidden("csrf").expect("csrf");
    browser
        .post_form(
            "/signin/tap",
            &[("flow", &flow), ("csrf", &csrf), ("tap", tap)],
        )
        .await
}

fn secret(created: &serde_json::Value) -> String {
    created["temporaryAccessPass"]
        .as_str()
        .expect("secret in create response")
        .to_owned()
}

#[tokio::test]
async fn tap_only_user_signs_in_through_core_client_with_tap_otp_mfa_amr() {
    let app = TestApp::spawn().await;
    let user = app.create_user("newhire", None).await;
    let created = app
        .issue_tap(
            &user,
            json!({"isUsableOnce": true, "lifetimeInMinutes": 60}),
        )
        .await;
    let tap = secret(&created);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &["offline_access"]);
    let browser = app.browser();

    let page = enter_username(&browser, &url, "newhire").await;
    assert!(page.has_button("Sign in"));
    assert!(
        !page.html.contains("Use your password instead"),
        "no password, no password link"
    );
    let done = submit_tap(&browser, &page, &tap).await;
    let location = done.location.expect("redirect to the RP");
    let code = query_param(&location, "code").expect("code");

    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["tap", "otp", "mfa"]);
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "mfa");

    // Tokens end no later than the pass.
    let pass_end = time::OffsetDateTime::parse(
        created["startDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
        + 60 * 60;
    let at = jwt_payload(tokens.access_token().secret());
    assert!(at["exp"].as_i64().unwrap() <= pass_end);
    assert_eq!(at["amr"], json!(["tap", "otp", "mfa"]));
    assert!(tokens.refresh_token().is_some());

    // The sign-in log names the method and its mode.
    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    let detail = &log[0].authentication_details[0];
    assert_eq!(detail.authentication_method, "Temporary Access Pass");
    assert_eq!(
        detail.authentication_method_detail.as_deref(),
        Some("One-time")
    );
    assert!(detail.succeeded);
}

#[tokio::test]
async fn tap_multi_use_gives_tap_mfa_amr_and_works_twice() {
    let app = TestApp::spawn().await;
    let user = app.create_user("contractor", None).await;
    let tap = secret(&app.issue_tap(&user, json!({"isUsableOnce": false})).await);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    for _ in 0..2 {
        let (url, verifier, nonce) = authorize_url(&rp, &[]);
        let browser = app.browser();
        let page = enter_username(&browser, &url, "contractor").await;
        let code = query_param(
            &submit_tap(&browser, &page, &tap).await.location.unwrap(),
            "code",
        )
        .unwrap();
        let tokens = redeem(&app, &rp, code, verifier).await;
        let claims = id_claims(&rp, &tokens, &nonce);
        assert_eq!(amr(&claims), ["tap", "mfa"]);
        assert_eq!(claims.auth_context_ref().unwrap().as_str(), "mfa");
    }
}

#[tokio::test]
async fn tap_and_password_pages_link_to_each_other_only_when_usable() {
    let app = TestApp::spawn().await;
    let user = app.create_user("both", Some("both password")).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);

    // No pass: the password page, and no TAP prompt or link anywhere.
    let browser = app.browser();
    let page = enter_username(&browser, &url, "both").await;
    assert!(page.has_label("Password"));
    assert!(
        !page.html.contains("Temporary Access Pass"),
        "{}",
        page.html
    );

    // A pass that starts in an hour: still no TAP prompt or link.
    let start = (app.clock.now() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let tap = secret(
        &app.issue_tap(&user, json!({"startDateTime": start, "isUsableOnce": true}))
            .await,
    );
    let page = enter_username(&app.browser(), &url, "both").await;
    assert!(page.has_label("Password") && !page.html.contains("Temporary Access Pass"));

    // From its start instant it is asked for first, with a password link.
    app.clock.advance(time::Duration::hours(1));
    let browser = app.browser();
    let tap_page = enter_username(&browser, &url, "both").await;
    assert!(tap_page.has_label("Temporary Access Pass"));
    assert!(tap_page.html.contains(">Use your password instead</a>"));
    let flow = tap_page.hidden("flow").unwrap();
    let password_page = browser.get(&format!("/signin/password?flow={flow}")).await;
    assert!(password_page.has_label("Password"));
    assert!(
        password_page
            .html
            .contains(">Use your Temporary Access Pass instead</a>")
    );
    let back = browser.get(&format!("/signin/tap?flow={flow}")).await;
    assert!(back.has_label("Temporary Access Pass"));

    // Signing in with the password from there still works (pwd amr).
    let csrf = password_page.hidden("csrf").unwrap();
    let done = browser
        .post_form(
            "/signin/password",
            &[
                ("flow", &flow),
                ("csrf", &csrf),
                ("password", "both password"),
            ],
        )
        .await;
    assert!(done.location.unwrap().contains("code="));

    // Once the one-time pass is used, no prompt or link remains.
    let browser = app.browser();
    let page = enter_username(&browser, &url, "both").await;
    let used = submit_tap(&browser, &page, &tap).await;
    assert!(used.location.unwrap().contains("code="));
    let after = enter_username(&app.browser(), &url, "both").await;
    assert!(after.has_label("Password") && !after.html.contains("Temporary Access Pass"));
    // And the TAP page itself refuses to show a prompt.
    let flow = after.hidden("flow").unwrap();
    let forced = app.browser().get(&format!("/signin/tap?flow={flow}")).await;
    assert!(!forced.has_label("Temporary Access Pass"));

    // Expired: no prompt either.
    let tap2 = secret(&app.issue_tap(&user, json!({"lifetimeInMinutes": 60})).await);
    assert!(
        enter_username(&app.browser(), &url, "both")
            .await
            .has_label("Temporary Access Pass")
    );
    app.clock.advance(time::Duration::minutes(60));
    let expired = enter_username(&app.browser(), &url, "both").await;
    assert!(expired.has_label("Password") && !expired.html.contains("Temporary Access Pass"));
    let _ = tap2;
}

#[tokio::test]
async fn tap_wrong_pass_fails_generically_and_expired_pass_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let user = app.create_user("eve", None).await;
    let tap = secret(&app.issue_tap(&user, json!({"lifetimeInMinutes": 60})).await);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let page = enter_username(&browser, &url, "eve").await;
    let wrong = submit_tap(&browser, &page, "WRONGPASS").await;
    assert!(wrong.location.is_none());
    assert!(wrong.html.contains("Sign-in failed"));
    assert!(!wrong.html.contains("WRONGPASS"));

    // The prompt was shown a second before expiry; submitting after expiry fails.
    app.clock
        .advance(time::Duration::minutes(60) - time::Duration::seconds(1));
    let page = enter_username(&browser, &url, "eve").await;
    app.clock.advance(time::Duration::seconds(1));
    let late = submit_tap(&browser, &page, &tap).await;
    assert!(late.location.is_none(), "an expired pass must fail at once");
    assert!(late.html.contains("Sign-in failed"));
}

/// Signs in with a pass and returns the browser (holding the session) and
/// the token response with a refresh token.
async fn tap_session(
    app: &TestApp,
    rp: &Rp,
    username: &str,
    tap: &str,
) -> (Browser, openidconnect::core::CoreTokenResponse) {
    let (url, verifier, _) = authorize_url(rp, &["offline_access"]);
    let browser = app.browser();
    let page = enter_username(&browser, &url, username).await;
    let code = query_param(
        &submit_tap(&browser, &page, tap).await.location.unwrap(),
        "code",
    )
    .unwrap();
    let tokens = redeem(app, rp, code, verifier).await;
    (browser, tokens)
}

async fn session_is_live(app: &TestApp, rp: &Rp, browser: &Browser) -> bool {
    let (url, _, _) = authorize_url(rp, &[]);
    let silent = browser.get(&format!("{url}&prompt=none")).await;
    let loc = silent.location.expect("prompt=none always redirects");
    let live = loc.contains("code=");
    assert!(
        live || query_param(&loc, "error").as_deref() == Some("login_required"),
        "{loc}"
    );
    let _ = app;
    live
}

#[tokio::test]
async fn tap_session_and_refresh_token_end_when_the_pass_expires() {
    let app = TestApp::spawn().await;
    let user = app.create_user("temp", None).await;
    let tap = secret(&app.issue_tap(&user, json!({"lifetimeInMinutes": 60})).await);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (browser, tokens) = tap_session(&app, &rp, "temp", &tap).await;
    assert!(session_is_live(&app, &rp, &browser).await);
    app.clock.advance(time::Duration::minutes(59));
    assert!(session_is_live(&app, &rp, &browser).await);
    let refreshed = rp
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&app.http)
        .await
        .expect("refresh before expiry");
    let exp = jwt_payload(refreshed.access_token().secret())["exp"]
        .as_i64()
        .unwrap();
    assert!(
        exp <= app.clock.now().unix_timestamp() + 60,
        "a refreshed token still ends with the pass"
    );
    app.clock.advance(time::Duration::minutes(1));
    assert!(
        !session_is_live(&app, &rp, &browser).await,
        "the session ends with the pass"
    );
    let after = rp
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&app.http)
        .await;
    assert!(after.is_err(), "the refresh token ends with the pass");
}

#[tokio::test]
async fn tap_replaced_or_deleted_ends_sessions_and_refresh_tokens_derived_from_it() {
    let app = TestApp::spawn().await;
    let user = app.create_user("swap", None).await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let first = secret(
        &app.issue_tap(&user, json!({"lifetimeInMinutes": 120}))
            .await,
    );
    let (browser, tokens) = tap_session(&app, &rp, "swap", &first).await;
    assert!(session_is_live(&app, &rp, &browser).await);

    // Replacing the pass ends what the old one started.
    let second = app
        .issue_tap(&user, json!({"lifetimeInMinutes": 120}))
        .await;
    assert!(!session_is_live(&app, &rp, &browser).await);
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

    // Deleting the new pass ends its sessions too.
    let (browser, tokens) = tap_session(&app, &rp, "swap", &secret(&second)).await;
    assert!(session_is_live(&app, &rp, &browser).await);
    let admin = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .delete(app.url(&format!(
            "/v1.0/users/{}/authentication/temporaryAccessPassMethods/{}",
            user.id,
            second["id"].as_str().unwrap()
        )))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!session_is_live(&app, &rp, &browser).await);
    assert!(
        rp.exchange_refresh_token(tokens.refresh_token().unwrap())
            .unwrap()
            .request_async(&app.http)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tap_one_time_raced_by_50_sign_ins_gives_exactly_one_session() {
    let app = TestApp::spawn().await;
    let user = app.create_user("racer", None).await;
    let tap = secret(&app.issue_tap(&user, json!({"isUsableOnce": true})).await);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);

    // 50 browsers, each at the TAP prompt of its own sign-in.
    let mut ready = Vec::new();
    for _ in 0..50 {
        let browser = app.browser();
        let page = enter_username(&browser, &url, "racer").await;
        assert!(page.has_label("Temporary Access Pass"));
        ready.push((browser, page));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = ready
        .into_iter()
        .map(|(browser, page)| {
            let (barrier, tap) = (barrier.clone(), tap.clone());
            tokio::spawn(async move {
                let flow = page.hidden("flow").unwrap();
                let csrf = page.hidden("csrf").unwrap();
                barrier.wait().await;
                let done = browser
                    .post_form(
                        "/signin/tap",
                        &[("flow", &flow), ("csrf", &csrf), ("tap", &tap)],
                    )
                    .await;
                done.location.is_some_and(|l| l.contains("code="))
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "a one-time pass signs in exactly once");
    let sessions = app
        .state
        .store
        .scan(
            gatepass::authn::session::SESSIONS,
            app.clock.now().unix_timestamp(),
        )
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "exactly one session exists");
    let (pass, _) = app
        .state
        .taps
        .pass(user.id, app.clock.now().unix_timestamp())
        .await
        .unwrap()
        .unwrap();
    assert!(pass.used_at.is_some());
}

#[tokio::test]
async fn tap_repeated_failures_lock_the_account_with_growing_lockouts() {
    let app = TestApp::spawn().await;
    let user = app.create_user("target", None).await;
    let tap = secret(
        &app.issue_tap(&user, json!({"lifetimeInMinutes": 1440}))
            .await,
    );
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();

    for _ in 0..5 {
        let page = enter_username(&browser, &url, "target").await;
        let failed = submit_tap(&browser, &page, "NOTTHEPASS").await;
        assert!(failed.location.is_none());
    }
    // Locked: even the right pass is refused, and the page says only that.
    let page = enter_username(&browser, &url, "target").await;
    let locked = submit_tap(&browser, &page, &tap).await;
    assert!(locked.location.is_none());
    assert!(
        locked.html.contains("temporarily locked"),
        "{}",
        locked.html
    );
    // And for how long.
    assert!(
        locked.html.contains("Try again in 5 minutes."),
        "{}",
        locked.html
    );

    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    assert!(
        log.iter().any(|e| e.status.error_code == 50053),
        "the lockout is in the sign-in log"
    );

    // The first lockout lasts 5 minutes.
    app.clock.advance(time::Duration::minutes(5));
    let page = enter_username(&browser, &url, "target").await;
    let failed = submit_tap(&browser, &page, "NOTTHEPASS").await;
    assert!(failed.html.contains("Sign-in failed"));
    // A second lockout in the same day lasts 10: still locked after 5.
    for _ in 0..4 {
        let page = enter_username(&browser, &url, "target").await;
        submit_tap(&browser, &page, "NOTTHEPASS").await;
    }
    app.clock.advance(time::Duration::minutes(5));
    let page = enter_username(&browser, &url, "target").await;
    assert!(
        submit_tap(&browser, &page, &tap)
            .await
            .html
            .contains("temporarily locked")
    );
    app.clock.advance(time::Duration::minutes(5));
    let page = enter_username(&browser, &url, "target").await;
    let ok = submit_tap(&browser, &page, &tap).await;
    assert!(
        ok.location.is_some_and(|l| l.contains("code=")),
        "unlocked after the escalated lockout"
    );
}

#[tokio::test]
async fn tap_failures_from_one_source_lock_that_source_across_usernames() {
    let app = TestApp::spawn().await;
    let victim = app.create_user("victim", Some("victim password")).await;
    let _ = victim;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    // 20 failures spread over 20 usernames (never 5 on one account).
    for i in 0..20 {
        let browser = app.browser();
        let page = enter_username(&browser, &url, &format!("spray{i}")).await;
        let flow = page.hidden("flow").unwrap();
        let csrf = page.hidden("csrf").unwrap();
        browser
            .post_form(
                "/signin/password",
                &[
                    ("flow", &flow),
                    ("csrf", &csrf),
                    ("password", "guess guess"),
                ],
            )
            .await;
    }
    let browser = app.browser();
    let page = enter_username(&browser, &url, "victim").await;
    let flow = page.hidden("flow").unwrap();
    let csrf = page.hidden("csrf").unwrap();
    let locked = browser
        .post_form(
            "/signin/password",
            &[
                ("flow", &flow),
                ("csrf", &csrf),
                ("password", "victim password"),
            ],
        )
        .await;
    assert!(locked.location.is_none());
    assert!(locked.html.contains("temporarily locked"));
}

#[tokio::test]
async fn tap_plaintext_never_reaches_the_store_file_or_the_logs() {
    // Capture every log line this test's server writes (current-thread
    // runtime: all tasks run on this thread, under this subscriber).
    let buffer = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let buffer = buffer.clone();
        move || CaptureWriter(buffer.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn().await;
    let user = app
        .create_user("secretive", Some("secretive password"))
        .await;
    let created = app
        .issue_tap(
            &user,
            json!({"isUsableOnce": false, "lifetimeInMinutes": 60}),
        )
        .await;
    let tap = secret(&created);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let page = enter_username(&browser, &url, "secretive").await;
    let wrong = submit_tap(&browser, &page, &format!("{tap}x")).await;
    assert!(wrong.location.is_none());
    let page = enter_username(&browser, &url, "secretive").await;
    assert!(submit_tap(&browser, &page, &tap).await.location.is_some());

    // Flush everything to the file with a durable commit, then read it.
    app.state
        .store
        .purge_expired(app.clock.now().unix_timestamp())
        .await
        .unwrap();
    let file = std::fs::read(app.dir.path().join("gatepass.redb")).unwrap();
    let logs = buffer.lock().unwrap().clone();
    assert!(!logs.is_empty(), "the capture saw the server's logs");
    for (haystack, what) in [(&file, "store file"), (&logs, "logs")] {
        for needle in [tap.as_str(), &format!("{tap}x"), "secretive password"] {
            assert!(
                !haystack
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes()),
                "the plaintext appeared in the {what}"
            );
        }
    }
    // The audit log, read through the API, does not carry it either.
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let audits = app
        .http
        .get(app.url("/v1.0/auditLogs/directoryAudits"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audits.contains("Admin registered security info"));
    assert!(!audits.contains(&tap));
}

#[derive(Clone)]
struct CaptureWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn first_start_creates_admin_with_a_one_time_tap_once() {
    let app = TestApp::spawn().await;
    let tap = gatepass::server::bootstrap(&app.state)
        .await
        .unwrap()
        .expect("first start creates admin");
    assert_eq!(tap.len(), 8);
    assert!(
        gatepass::server::bootstrap(&app.state)
            .await
            .unwrap()
            .is_none(),
        "only once"
    );
    let admin = app
        .state
        .directory
        .user_by_upn("admin", app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let roles = app
        .state
        .directory
        .roles_of(admin.id, app.clock.now())
        .await
        .unwrap();
    assert!(roles.contains(&gatepass::directory::roles::BuiltinRole::GlobalAdministrator));

    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let page = enter_username(&browser, &url, "admin").await;
    let code = query_param(
        &submit_tap(&browser, &page, &tap).await.location.unwrap(),
        "code",
    )
    .unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["tap", "otp", "mfa"]);
    // One-time: a second sign-in with it fails.
    let page = enter_username(&app.browser(), &url, "admin").await;
    assert!(!page.has_label("Temporary Access Pass"));
}

#[tokio::test]
async fn tap_deleted_makes_its_refresh_token_inactive_at_introspection() {
    let app = TestApp::spawn().await;
    let user = app.create_user("introspected", None).await;
    let created = app
        .issue_tap(
            &user,
            json!({"isUsableOnce": false, "lifetimeInMinutes": 120}),
        )
        .await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (_, tokens) = tap_session(&app, &rp, "introspected", &secret(&created)).await;
    let introspect = |token: String| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(app.url("/introspect"))
                .basic_auth(RP_ID, Some(RP_SECRET))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()["active"].clone()
        }
    };
    let refresh = tokens.refresh_token().unwrap().secret().clone();
    assert_eq!(introspect(refresh.clone()).await, json!(true));
    let admin = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .delete(app.url(&format!(
            "/v1.0/users/{}/authentication/temporaryAccessPassMethods/{}",
            user.id,
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(introspect(refresh).await, json!(false));
    assert_eq!(
        introspect(tokens.access_token().secret().clone()).await,
        json!(false)
    );
}

/// A pass pasted with spaces or a line break around it signs in, and
/// counts no failure.
#[tokio::test]
async fn tap_pasted_with_surrounding_whitespace_signs_in() {
    let app = TestApp::spawn().await;
    let user = app.create_user("paster", None).await;
    let tap = secret(&app.issue_tap(&user, json!({"isUsableOnce": true})).await);
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let page = enter_username(&browser, &url, "paster").await;
    let done = submit_tap(&browser, &page, &format!("  {tap}\n")).await;
    assert!(
        done.location
            .as_deref()
            .is_some_and(|l| l.contains("code=")),
        "{}",
        done.html
    );
    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    assert!(
        log.iter().all(|e| e.status.error_code == 0),
        "a failure was counted"
    );
}
