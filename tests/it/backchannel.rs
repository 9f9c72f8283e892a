//! OpenID Connect Back-Channel Logout 1.0 (DESIGN §2.7): every way a
//! session ends sends each client it signed in to exactly one logout token,
//! delivered from the store's queue with retries, across restarts, and with
//! Redis by exactly one of several instances — also when the one delivering
//! is killed mid-delivery.
//!
//! The relying parties are a real HTTP receiver ([`Receiver`]) that records
//! every POST and can be told to fail or to hang. In-process apps run no
//! delivery worker: the tests drive it with `deliver_due` and the manual
//! clock; the process tests run real `gatepass serve` workers.

use crate::harness::*;
use crate::passkey::account_sign_in_with_tap;
use axum::extract::{Path as AxumPath, State};
use axum::http::{HeaderMap, StatusCode};
use gatepass::clock::Clock;
use gatepass::logout::QUEUE;
use gatepass::logout::delivery::{LOGOUT_EVENT, Round};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const A: &str = "bcl-a";
const B: &str = "bcl-b";
const C: &str = "bcl-c";
const SECRET: &str = "bcl-secret-0123456789";
const PASSWORD: &str = "bcl password 1";

// --- the receiver -------------------------------------------------------------

/// One POST a relying party received.
#[derive(Debug, Clone)]
pub struct Post {
    pub client: String,
    pub content_type: String,
    pub logout_token: String,
}

#[derive(Default)]
struct ReceiverState {
    posts: Mutex<Vec<Post>>,
    /// Requests that arrived, answered or not.
    arrived: AtomicUsize,
    /// Answer the next N requests with 503.
    fail: AtomicUsize,
    /// Never answer the next N requests.
    hang: AtomicUsize,
}

/// A relying party's back-channel logout endpoint, `/bcl/{client}`.
pub struct Receiver {
    pub base: String,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        async fn receive(
            State(state): State<Arc<ReceiverState>>,
            AxumPath(client): AxumPath<String>,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            state.arrived.fetch_add(1, Ordering::SeqCst);
            let take = |n: &AtomicUsize| {
                n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            };
            if take(&state.hang) {
                std::future::pending::<()>().await;
            }
            if take(&state.fail) {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let form: BTreeMap<String, String> =
                serde_urlencoded::from_str(&body).expect("form body");
            state.posts.lock().unwrap().push(Post {
                client,
                content_type: headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                logout_token: form.get("logout_token").cloned().unwrap_or_default(),
            });
            StatusCode::OK
        }
        let state = Arc::new(ReceiverState::default());
        let router = axum::Router::new()
            .route("/bcl/{client}", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Receiver {
            base,
            state,
            server,
        }
    }

    pub fn posts(&self) -> Vec<Post> {
        self.state.posts.lock().unwrap().clone()
    }

    pub fn arrived(&self) -> usize {
        self.state.arrived.load(Ordering::SeqCst)
    }

    pub fn fail_next(&self, n: usize) {
        self.state.fail.store(n, Ordering::SeqCst);
    }

    pub fn hang_next(&self, n: usize) {
        self.state.hang.store(n, Ordering::SeqCst);
    }

    /// `[[clients]]` A and B (and C, which nobody signs in to) with their
    /// back-channel URIs here; `session_required` on B.
    pub fn clients_config(&self) -> String {
        let mut out = String::new();
        for c in [A, B, C] {
            out.push_str(&format!(
                "\n[[clients]]\nclient_id = \"{c}\"\nclient_secret = \"{SECRET}\"\nredirect_uris = [\"{RP_REDIRECT}\"]\nbackchannel_logout_uri = \"{}/bcl/{c}\"\nbackchannel_logout_session_required = {}\n",
                self.base,
                c == B
            ));
        }
        out
    }
}

// --- helpers ------------------------------------------------------------------

/// `[backchannel_logout]` for tests: quick retries, few attempts.
const DELIVERY: &str =
    "[backchannel_logout]\ntimeout_seconds = 2\nmax_attempts = 3\nretry_seconds = 10\n";

async fn app_with(receiver: &Receiver) -> TestApp {
    TestApp::spawn_with(&format!("{DELIVERY}{}", receiver.clients_config())).await
}

/// Signs in (or reuses the browser's session) to `client`; the session's
/// `sid` from the verified ID token, and the raw ID token.
async fn sign_in_to(
    app: &TestApp,
    browser: &Browser,
    client: &str,
    user: &str,
) -> (String, String) {
    let rp = app.rp(client, Some(SECRET)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let location = browser
        .sign_in(&url, user, PASSWORD)
        .await
        .expect("signed in");
    let tokens = redeem(app, &rp, query_param(&location, "code").unwrap(), verifier).await;
    let _ = id_claims(&rp, &tokens, &nonce);
    use openidconnect::TokenResponse;
    let raw = tokens.id_token().unwrap().to_string();
    (payload(&raw)["sid"].as_str().unwrap().to_owned(), raw)
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Verifies a logout token against the issuer's published `/jwks` and
/// returns its claims, after checking the header and the claims that do
/// not depend on the session (§2.4, §2.6).
async fn verify(http: &reqwest::Client, issuers: &[&str], jwks_url: &str, post: &Post) -> Value {
    assert_eq!(post.content_type, "application/x-www-form-urlencoded");
    let header = jsonwebtoken::decode_header(&post.logout_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(jwks_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&post.client]);
    validation.set_issuer(issuers);
    // The tests move the provider's clock; `exp - iat` is checked below.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(&post.logout_token, &key, &validation)
        .expect("signature verifies against /jwks")
        .claims;
    assert_eq!(claims["aud"], post.client.as_str());
    assert_eq!(claims["events"], json!({ LOGOUT_EVENT: {} }));
    assert!(
        claims.get("nonce").is_none(),
        "a logout token never has nonce"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 300, "short-lived: {iat}..{exp}");
    assert!(!claims["jti"].as_str().unwrap().is_empty());
    claims
}

/// Runs one delivery round at the app's clock.
async fn deliver(app: &TestApp) -> Round {
    app.state
        .backchannel
        .deliver_due(&app.state.tokens, app.clock.now().unix_timestamp())
        .await
        .unwrap()
}

async fn queued(app: &TestApp) -> usize {
    app.state
        .store
        .scan(QUEUE, app.clock.now().unix_timestamp() + 1_000_000)
        .await
        .unwrap()
        .len()
}

/// Asserts the receiver got exactly one verified token for each of
/// `clients`, each for `sid` (if given) and `sub`.
async fn assert_told(
    app: &TestApp,
    receiver: &Receiver,
    clients: &[&str],
    sid: Option<&str>,
    sub: &str,
) {
    let posts = receiver.posts();
    let mut got: Vec<&str> = posts.iter().map(|p| p.client.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, clients, "one token per participating client");
    for post in &posts {
        let claims = verify(&app.http, &[&app.issuer], &app.url("/jwks"), post).await;
        assert_eq!(claims["sub"], sub);
        match sid {
            Some(sid) => assert_eq!(claims["sid"], sid),
            None => assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty())),
        }
    }
}

/// A user signed in to A and B in one browser session (C and `rp` never).
async fn signed_in_to_a_and_b(
    app: &TestApp,
    upn: &str,
) -> (gatepass::directory::User, Browser, String, String) {
    let user = app.create_user(upn, Some(PASSWORD)).await;
    let browser = app.browser();
    let (sid, id_token) = sign_in_to(app, &browser, A, upn).await;
    let (sid_b, _) = sign_in_to(app, &browser, B, upn).await;
    assert_eq!(sid, sid_b, "single sign-on: one session");
    (user, browser, sid, id_token)
}

// --- configuration and discovery ------------------------------------------------

#[tokio::test]
async fn backchannel_discovery_advertises_it_and_config_errors_name_the_key() {
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
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);

    let off = TestApp::spawn_with("[backchannel_logout]\nenabled = false\n").await;
    let doc: Value = off
        .http
        .get(off.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc.get("backchannel_logout_supported").is_none(),
        "off is not advertised"
    );

    let base = gatepass_config_base();
    for (extra, key) in [
        (
            "backchannel_logout_uri = \"http://rp.example/bcl\"",
            "clients[0].backchannel_logout_uri",
        ),
        (
            "backchannel_logout_uri = \"https://rp.example/bcl#x\"",
            "clients[0].backchannel_logout_uri",
        ),
        (
            "backchannel_logout_uri = \"not a url\"",
            "clients[0].backchannel_logout_uri",
        ),
    ] {
        let text = format!(
            "{base}\n[[clients]]\nclient_id = \"x\"\nredirect_uris = [\"{RP_REDIRECT}\"]\n{extra}\n"
        );
        let e = gatepass::config::Settings::from_toml(
            &text,
            std::path::Path::new("t.toml"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(key), "{e}");
    }
    let text = format!(
        "{base}\n[backchannel_logout]\nenabled = false\n[[clients]]\nclient_id = \"x\"\nredirect_uris = [\"{RP_REDIRECT}\"]\nbackchannel_logout_uri = \"https://rp.example/bcl\"\n"
    );
    let e = gatepass::config::Settings::from_toml(
        &text,
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("clients[0].backchannel_logout_uri"), "{e}");
    let text = format!("{base}\n[backchannel_logout]\ntimeout_seconds = 0\n");
    let e = gatepass::config::Settings::from_toml(
        &text,
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("backchannel_logout.timeout_seconds"), "{e}");
}

fn gatepass_config_base() -> String {
    "issuer = \"http://localhost:8080\"\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"embedded\"\npath = \"x.redb\"\n[keys]\ndir = \"keys\"\n[demo]\nenabled = false\n".to_owned()
}

// --- every trigger ----------------------------------------------------------------

#[tokio::test]
async fn backchannel_rp_initiated_logout_tells_each_client_of_the_session_once() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let (user, browser, sid, id_token) = signed_in_to_a_and_b(&app, "bcl-logout").await;
    // Another session of the same user, at A only: it is not ended.
    let other = app.browser();
    sign_in_to(&app, &other, A, "bcl-logout").await;
    let page = browser
        .get(&format!("/logout?id_token_hint={id_token}"))
        .await;
    assert_eq!(page.status, 200);
    assert!(receiver.posts().is_empty(), "delivery is asynchronous");
    let round = deliver(&app).await;
    assert_eq!(round.delivered, 2);
    assert_told(&app, &receiver, &[A, B], Some(&sid), &user.id.to_string()).await;
    assert_eq!(queued(&app).await, 0);
    // Logging out again (no session) sends nothing more.
    browser
        .get(&format!("/logout?id_token_hint={id_token}"))
        .await;
    assert_eq!(deliver(&app).await, Round::default());
    assert_eq!(receiver.posts().len(), 2);
}

#[tokio::test]
async fn backchannel_sign_out_everywhere_tells_every_session_s_clients() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let user = app.create_user("bcl-everywhere", Some(PASSWORD)).await;
    // Session 1 (password) at A; session 2 (a TAP, on the account page) at B.
    let (sid1, _) = sign_in_to(&app, &app.browser(), A, "bcl-everywhere").await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
    let browser = app.browser();
    let page = account_sign_in_with_tap(
        &app,
        &browser,
        "bcl-everywhere",
        tap["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let (sid2, _) = sign_in_to(&app, &browser, B, "bcl-everywhere").await;
    assert_ne!(sid1, sid2);
    let out = browser
        .post_form(
            "/account/sign-out-everywhere",
            &[("csrf", &page.hidden("csrf").unwrap())],
        )
        .await;
    assert_eq!(out.status, 200);
    assert_eq!(deliver(&app).await.delivered, 2);
    assert_told(&app, &receiver, &[A, B], None, &user.id.to_string()).await;
    let by_client: BTreeMap<String, String> = receiver
        .posts()
        .iter()
        .map(|p| {
            (
                p.client.clone(),
                payload(&p.logout_token)["sid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(by_client[A], sid1);
    assert_eq!(by_client[B], sid2);
}

#[tokio::test]
async fn backchannel_revoke_sign_in_sessions_tells_the_clients() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let (user, _browser, sid, _) = signed_in_to_a_and_b(&app, "bcl-revoke").await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .post(app.url(&format!("/v1.0/users/{}/revokeSignInSessions", user.id)))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(deliver(&app).await.delivered, 2);
    assert_told(&app, &receiver, &[A, B], Some(&sid), &user.id.to_string()).await;
}

#[tokio::test]
async fn backchannel_pass_deleted_or_replaced_tells_the_clients_of_its_sessions() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let user = app.create_user("bcl-tap", Some(PASSWORD)).await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    // A password session at B is not bound to any pass: never told.
    sign_in_to(&app, &app.browser(), B, "bcl-tap").await;
    for replace in [false, true] {
        let tap = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
        let rp = app.rp(A, Some(SECRET)).await;
        let (url, _, _) = authorize_url(&rp, &[]);
        let location = app
            .browser()
            .sign_in_with_tap(
                &url,
                "bcl-tap",
                tap["temporaryAccessPass"].as_str().unwrap(),
            )
            .await
            .expect("TAP sign-in");
        assert!(query_param(&location, "code").is_some());
        if replace {
            app.issue_tap(&user, json!({"isUsableOnce": false})).await;
        } else {
            let r = app
                .http
                .delete(app.url(&format!(
                    "/v1.0/users/{}/authentication/temporaryAccessPassMethods/{}",
                    user.id,
                    tap["id"].as_str().unwrap()
                )))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
        assert_eq!(deliver(&app).await.delivered, 1, "replace: {replace}");
    }
    assert_told(&app, &receiver, &[A, A], None, &user.id.to_string()).await;
}

#[tokio::test]
async fn backchannel_user_disabled_or_deleted_tells_the_clients() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let (user, _b, sid, _) = signed_in_to_a_and_b(&app, "bcl-disabled").await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .patch(app.url(&format!("/v1.0/users/{}", user.id)))
        .bearer_auth(&token)
        .json(&json!({"accountEnabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(deliver(&app).await.delivered, 2);
    assert_told(&app, &receiver, &[A, B], Some(&sid), &user.id.to_string()).await;

    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let (user, _b, sid, _) = signed_in_to_a_and_b(&app, "bcl-deleted").await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let r = app
        .http
        .delete(app.url(&format!("/v1.0/users/{}", user.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(deliver(&app).await.delivered, 2);
    assert_told(&app, &receiver, &[A, B], Some(&sid), &user.id.to_string()).await;
}

// --- retries, bounds, restarts ------------------------------------------------------

#[tokio::test]
async fn backchannel_failed_delivery_retries_with_doubling_backoff() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let user = app.create_user("bcl-retry", Some(PASSWORD)).await;
    sign_in_to(&app, &app.browser(), A, "bcl-retry").await;
    receiver.fail_next(2);
    app.state
        .directory
        .revoke_sessions(user.id, app.clock.now())
        .await
        .unwrap();
    assert_eq!(deliver(&app).await.retrying, 1, "attempt 1 fails");
    assert_eq!(deliver(&app).await, Round::default(), "not due yet");
    app.clock.advance(time::Duration::seconds(9));
    assert_eq!(
        deliver(&app).await,
        Round::default(),
        "first retry after 10 s"
    );
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(deliver(&app).await.retrying, 1, "attempt 2 fails");
    app.clock.advance(time::Duration::seconds(19));
    assert_eq!(
        deliver(&app).await,
        Round::default(),
        "second retry after 20 s"
    );
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(deliver(&app).await.delivered, 1, "attempt 3 succeeds");
    assert_eq!(receiver.arrived(), 3);
    assert_told(&app, &receiver, &[A], None, &user.id.to_string()).await;
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test]
async fn backchannel_attempts_are_bounded_then_dropped() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver).await;
    let user = app.create_user("bcl-bounded", Some(PASSWORD)).await;
    sign_in_to(&app, &app.browser(), A, "bcl-bounded").await;
    receiver.fail_next(usize::MAX);
    app.state
        .directory
        .revoke_sessions(user.id, app.clock.now())
        .await
        .unwrap();
    let mut dropped = 0;
    for _ in 0..10 {
        dropped += deliver(&app).await.dropped;
        app.clock.advance(time::Duration::hours(1));
    }
    assert_eq!(dropped, 1);
    assert_eq!(receiver.arrived(), 3, "max_attempts = 3");
    assert_eq!(queued(&app).await, 0, "dropped from the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_embedded_restart_keeps_pending_deliveries() {
    let receiver = Receiver::start().await;
    let mut app = app_with(&receiver).await;
    let user = app.create_user("bcl-restart", Some(PASSWORD)).await;
    let (sid, _) = sign_in_to(&app, &app.browser(), A, "bcl-restart").await;
    app.state
        .directory
        .revoke_sessions(user.id, app.clock.now())
        .await
        .unwrap();
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    drop(app);
    // The server task lets go of the store once its abort lands.
    let path = dir.path().join("gatepass.redb");
    let store = loop {
        match gatepass::store::embedded::EmbeddedStore::open(&path) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let app = TestApp::spawn_on(
        Arc::new(store),
        dir,
        &format!("{DELIVERY}{}", receiver.clients_config()),
    )
    .await;
    assert_eq!(deliver(&app).await.delivered, 1);
    assert_told(&app, &receiver, &[A], Some(&sid), &user.id.to_string()).await;
}

// --- Redis: many instances, one delivery -------------------------------------------

/// A `gatepass serve` on the test's Redis namespace and keys, delivering.
async fn instance(
    redis_url: &str,
    prefix: &str,
    keys: &std::path::Path,
    receiver: &Receiver,
) -> crate::process::Process {
    crate::process::Process::start(
        &format!("{DELIVERY}{}", receiver.clients_config()),
        &[
            ("GATEPASS_STORE__BACKEND", "redis"),
            ("GATEPASS_STORE__URL", redis_url),
            ("GATEPASS_STORE__KEY_PREFIX", prefix),
            ("GATEPASS_KEYS__DIR", keys.to_str().unwrap()),
            ("RUST_LOG", "info"),
        ],
    )
    .await
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For `test`: the test Redis, a namespace of it, a receiver, and an
/// in-process Gatepass on that namespace whose clients log out to the
/// receiver; `None` (the test skipped, saying why) without a Redis.
async fn on_redis(
    test: &str,
) -> Option<(
    crate::redis::TestRedis,
    crate::redis::Namespace,
    Receiver,
    TestApp,
)> {
    let redis = crate::redis::redis_for(test).await?;
    let ns = crate::redis::Namespace::new(&redis.url);
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().unwrap(),
        &format!("{DELIVERY}{}", receiver.clients_config()),
    )
    .await;
    Some((redis, ns, receiver, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_redis_two_instances_deliver_each_token_once() {
    // The in-process app signs users in (it runs no worker); the two
    // processes share its Redis namespace and keys and do the delivering.
    let Some((redis, ns, receiver, app)) =
        on_redis("backchannel_redis_two_instances_deliver_each_token_once").await
    else {
        return;
    };
    let keys = app.dir.path().join("keys");
    let one = instance(&redis.url, &ns.prefix, &keys, &receiver).await;
    let two = instance(&redis.url, &ns.prefix, &keys, &receiver).await;
    const USERS: usize = 6;
    let mut subs = Vec::new();
    for i in 0..USERS {
        let upn = format!("bcl-two-{i}");
        let (user, _b, _, _) = signed_in_to_a_and_b(&app, &upn).await;
        subs.push(user.id);
    }
    for id in &subs {
        app.state
            .directory
            .revoke_sessions(*id, app.clock.now())
            .await
            .unwrap();
    }
    until("every token delivered", Duration::from_secs(30), || {
        receiver.posts().len() >= 2 * USERS
    })
    .await;
    // Give a duplicate the chance to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = receiver.posts();
    assert_eq!(posts.len(), 2 * USERS, "each token exactly once");
    let mut seen = std::collections::BTreeSet::new();
    for p in &posts {
        let c = verify(&app.http, &[&one.issuer, &two.issuer], &one.url("/jwks"), p).await;
        assert!(
            seen.insert((p.client.clone(), c["sid"].as_str().unwrap().to_owned())),
            "duplicate delivery"
        );
    }
    drop((one, two));
    drop(app);
    ns.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_redis_instance_killed_mid_delivery_another_delivers_after_the_lease() {
    let Some((redis, ns, receiver, app)) =
        on_redis("backchannel_redis_instance_killed_mid_delivery_another_delivers_after_the_lease")
            .await
    else {
        return;
    };
    let keys = app.dir.path().join("keys");
    let (user, _b, sid, _) = signed_in_to_a_and_b(&app, "bcl-killed").await;
    receiver.hang_next(usize::MAX);
    let first = instance(&redis.url, &ns.prefix, &keys, &receiver).await;
    app.state
        .directory
        .revoke_sessions(user.id, app.clock.now())
        .await
        .unwrap();
    // The first instance claims both deliveries and hangs on them: kill it.
    until(
        "both POSTs reach the receiver",
        Duration::from_secs(15),
        || receiver.arrived() >= 2,
    )
    .await;
    let claimed_at = std::time::Instant::now();
    first.signal("KILL");
    drop(first);
    receiver.hang_next(0);
    let second = instance(&redis.url, &ns.prefix, &keys, &receiver).await;
    until(
        "the other instance delivers",
        Duration::from_secs(30),
        || receiver.posts().len() >= 2,
    )
    .await;
    // Not before the lease (timeout 2 s + 5 s) ran out.
    assert!(
        claimed_at.elapsed() >= Duration::from_secs(5),
        "delivered after {:?}",
        claimed_at.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.posts().len(), 2);
    for p in receiver.posts() {
        let claims = verify(&app.http, &[&second.issuer], &second.url("/jwks"), &p).await;
        assert_eq!(claims["sid"], sid.as_str());
        assert_eq!(claims["sub"], user.id.to_string());
    }
    drop(second);
    drop(app);
    ns.remove().await;
}

/// Two instances' delivery rounds racing over the same due records: the
/// claim is one conditional transaction, so each token goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_redis_racing_rounds_claim_each_delivery_once() {
    let Some(redis) =
        crate::redis::redis_for("backchannel_redis_racing_rounds_claim_each_delivery_once").await
    else {
        return;
    };
    let ns = crate::redis::Namespace::new(&redis.url);
    let receiver = Receiver::start().await;
    let config = format!("{DELIVERY}{}", receiver.clients_config());
    let one = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().unwrap(),
        &config,
    )
    .await;
    let two = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().unwrap(),
        &config,
    )
    .await;
    // A full batch: while one round claims record after record, the
    // other's scan comes back with records not yet claimed, and the two
    // race for them claim by claim.
    const USERS: usize = 16;
    for i in 0..USERS {
        let (user, _b, _, _) = signed_in_to_a_and_b(&one, &format!("bcl-race-{i}")).await;
        let now = one.clock.now();
        one.state
            .directory
            .revoke_sessions(user.id, now)
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(deliver(&one), deliver(&two));
    assert_eq!(a.delivered + b.delivered, 2 * USERS, "{a:?} {b:?}");
    assert_eq!(
        receiver.posts().len(),
        2 * USERS,
        "no token delivered twice"
    );
    assert_eq!(queued(&one).await, 0);
    drop((one, two));
    ns.remove().await;
}
