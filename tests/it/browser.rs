//! The onboarding journey in a real browser: headless Chromium with a CDP
//! virtual authenticator (ctap2, internal transport, resident keys, user
//! verification), driven over the DevTools protocol.
//!
//! An RP starts the code flow → the user signs in with a one-time TAP →
//! Add passkey on the security-info page → signs out → signs in again with
//! the passkey (no username) → the RP receives an ID token with
//! `amr: ["pop","mfa"]`.
//!
//! Chromium is found through `GATEPASS_CHROMIUM` or on PATH (`chromium`,
//! `chromium-browser`, `google-chrome`). Without it the test says it was
//! skipped — unless `GATEPASS_REQUIRE_BROWSER=1` (set by `.ci/run`), where a
//! missing browser is a failure.

use crate::harness::*;
use futures_util::{SinkExt, StreamExt};
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{ClientId, ClientSecret, CsrfToken, Nonce, PkceCodeChallenge, RedirectUrl};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("GATEPASS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A minimal DevTools-protocol client over one WebSocket.
pub(crate) struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.try_call(method, params).await;
        answer.unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    /// One DevTools call: its result, or the error DevTools answered with.
    pub(crate) async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("cdp send");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("cdp answer in time")
                .expect("cdp open")
                .expect("cdp frame");
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).expect("cdp json");
            if value["id"] == json!(id) {
                return match value.get("error") {
                    Some(_) => Err(value),
                    None => Ok(value["result"].clone()),
                };
            }
        }
    }

    /// Evaluates JavaScript in the page (as a user gesture); returns its value.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true, "userGesture": true}))
            .await;
        r["result"]["value"].clone()
    }

    /// Waits until `condition` (a JS expression) is true. A poll that
    /// meets a navigation ("Inspected target navigated or closed") counts
    /// as not yet: the next poll runs in the new page.
    pub(crate) async fn wait_for(&mut self, condition: &str, what: &str) {
        for _ in 0..200 {
            let poll = format!(
                "(() => {{ try {{ return !!({condition}); }} catch (_) {{ return false; }} }})()"
            );
            let answer = self
                .try_call(
                    "Runtime.evaluate",
                    json!({"expression": poll, "returnByValue": true}),
                )
                .await;
            if answer.is_ok_and(|r| r["result"]["value"] == json!(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let html = self.eval("document.documentElement.outerHTML").await;
        panic!("timed out waiting for {what}; page: {html}");
    }

    pub(crate) async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }
}

/// Headless Chromium with its DevTools endpoint on an ephemeral port.
pub(crate) struct Chromium {
    child: tokio::process::Child,
    ws_url: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium for `test`; `None` (the test is skipped, and says
    /// so) when there is none — unless `GATEPASS_REQUIRE_BROWSER=1`.
    pub(crate) async fn launch(test: &str) -> Option<Chromium> {
        let Some(chromium) = find_chromium() else {
            if std::env::var("GATEPASS_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                panic!(
                    "GATEPASS_REQUIRE_BROWSER=1 but Chromium was not found (install chromium or set GATEPASS_CHROMIUM)"
                );
            }
            eprintln!(
                "SKIPPED {test}: Chromium not found (set GATEPASS_CHROMIUM or install chromium)"
            );
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(&chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ws_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited before opening DevTools");
        })
        .await
        .expect("chromium started in time");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Chromium {
            child,
            ws_url,
            _profile: profile,
        })
    }

    /// A new browser context: its own cookies, as a second browser would be.
    pub(crate) async fn new_context(&self) -> String {
        let mut cdp = self.connect().await;
        let created = cdp.call("Target.createBrowserContext", json!({})).await;
        created["browserContextId"].as_str().unwrap().to_owned()
    }

    async fn connect(&self) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(&self.ws_url)
            .await
            .expect("connect to DevTools");
        Cdp {
            ws,
            next_id: 0,
            session: None,
        }
    }

    /// A new tab (in `context`, or the default one), attached and enabled.
    pub(crate) async fn page(&self, context: Option<&str>) -> Cdp {
        let mut cdp = self.connect().await;
        let mut params = json!({"url": "about:blank"});
        if let Some(c) = context {
            params["browserContextId"] = json!(c);
        }
        let target = cdp.call("Target.createTarget", params).await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        cdp.call("Page.enable", json!({})).await;
        cdp.call("Runtime.enable", json!({})).await;
        cdp
    }

    pub(crate) async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A Gatepass with the client `browser-rp`, whose redirect URI is a local
/// callback server; the callback's hits.
pub(crate) async fn app_with_browser_rp() -> (TestApp, CallbackHits) {
    app_with_browser_rp_and("").await
}

/// [`app_with_browser_rp`] with `extra` configuration appended.
pub(crate) async fn app_with_browser_rp_and(extra: &str) -> (TestApp, CallbackHits) {
    let (cb_base, hits) = callback_server().await;
    let app = TestApp::spawn_with(&format!(
        "[[clients]]\nclient_id = \"browser-rp\"\nclient_secret = \"browser-rp-secret-0123456789\"\nredirect_uris = [\"{cb_base}/callback\"]\npost_logout_redirect_uris = [\"{cb_base}/\"]\n{extra}"
    ))
    .await;
    (app, hits)
}

/// The AAGUID of Chromium's virtual CTAP2 authenticator (DevTools
/// `WebAuthn.addVirtualAuthenticator`).
const CHROMIUM_VIRTUAL_AAGUID: &str = "01020304-0506-0708-0102-030405060708";

/// The relying party `browser-rp`, configured from discovery.
pub(crate) async fn browser_rp(app: &TestApp, hits: &CallbackHits) -> Rp {
    let metadata = openidconnect::core::CoreProviderMetadata::discover_async(
        openidconnect::IssuerUrl::new(app.issuer.clone()).unwrap(),
        &app.http,
    )
    .await
    .unwrap();
    openidconnect::core::CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("browser-rp".into()),
        Some(ClientSecret::new("browser-rp-secret-0123456789".into())),
    )
    .set_redirect_uri(RedirectUrl::new(hits.redirect.clone()).unwrap())
}

/// What the callback server received, and its redirect URI.
pub(crate) struct CallbackHits {
    pub(crate) redirect: String,
    queries: Arc<Mutex<Vec<String>>>,
}

/// The RP's redirect target: records every query it receives.
pub(crate) async fn callback_server() -> (String, CallbackHits) {
    let hits = Arc::new(Mutex::new(Vec::<String>::new()));
    let store = hits.clone();
    let app = axum::Router::new()
        .route(
            "/callback",
            axum::routing::get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push(q.unwrap_or_default());
                    "signed in"
                }
            }),
        )
        .route("/", axum::routing::get(|| async { "signed out" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let hits = CallbackHits {
        redirect: format!("{base}/callback"),
        queries: hits,
    };
    (base, hits)
}

pub(crate) async fn wait_for_callback(hits: &CallbackHits, count: usize) -> String {
    for _ in 0..200 {
        if let Some(q) = hits.queries.lock().unwrap().get(count - 1) {
            return q.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relying party's callback was not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_onboarding_tap_then_passkey_gives_pop_mfa() {
    let Some(chromium) =
        Chromium::launch("browser_onboarding_tap_then_passkey_gives_pop_mfa").await
    else {
        return;
    };
    // The virtual authenticator is in no public list: name it the way an
    // operator names their fleet's models.
    let names = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        names.path(),
        format!(r#"{{"{CHROMIUM_VIRTUAL_AAGUID}": {{"name": "Chromium virtual authenticator"}}}}"#),
    )
    .unwrap();
    let (app, hits) = app_with_browser_rp_and(&format!(
        "\n[passkeys]\nauthenticator_names = \"{}\"\n",
        names.path().display()
    ))
    .await;
    let user = app.create_user("newbie", None).await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut cdp = chromium.page(None).await;
    cdp.call("WebAuthn.enable", json!({"enableUI": false}))
        .await;
    let authenticator = cdp.call(
        "WebAuthn.addVirtualAuthenticator",
        json!({"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "automaticPresenceSimulation": true
        }}),
    )
    .await;

    let rp = browser_rp(&app, &hits).await;

    // 1. The RP starts the code flow; the user signs in with the one-time TAP.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    cdp.navigate(url.as_str()).await;
    cdp.wait_for("document.getElementById('username')", "the Username field")
        .await;
    cdp.eval("document.getElementById('username').value = 'newbie'; [...document.querySelectorAll('button')].find(b => b.textContent === 'Next').click(); true").await;
    cdp.wait_for(
        "document.getElementById('tap')",
        "the Temporary Access Pass field",
    )
    .await;
    cdp.eval(&format!("document.getElementById('tap').value = '{tap}'; [...document.querySelectorAll('button')].find(b => b.textContent === 'Sign in').click(); true")).await;
    let first = wait_for_callback(&hits, 1).await;
    assert!(first.contains("code="), "{first}");

    // 2. Security info: Add passkey (the virtual authenticator answers).
    cdp.navigate(&app.url("/account/security-info")).await;
    // The button, and passkey.js (deferred) listening: a click before the
    // script ran would do nothing.
    cdp.wait_for(
        "document.readyState === 'complete' && [...document.querySelectorAll('button')].some(b => b.textContent === 'Add passkey')",
        "Add passkey",
    )
    .await;
    cdp.eval("document.getElementById('passkey-name').value = 'Virtual key'; document.querySelector('[data-register]').click(); true").await;
    cdp.wait_for(
        "document.body.innerText.includes('Virtual key · Chromium virtual authenticator, added')",
        "the new passkey, with its authenticator's name, in the list",
    )
    .await;
    let creds = cdp
        .call(
            "WebAuthn.getCredentials",
            json!({"authenticatorId": authenticator["authenticatorId"]}),
        )
        .await;
    let creds = creds["credentials"].as_array().expect("credentials");
    assert_eq!(creds.len(), 1, "one passkey on the authenticator");
    assert_eq!(
        creds[0]["isResidentCredential"],
        json!(true),
        "registered as a discoverable credential"
    );
    assert_eq!(creds[0]["rpId"], "localhost");

    // 3. Sign out (RP-initiated logout, confirmed on the page).
    cdp.navigate(&app.url("/logout")).await;
    cdp.wait_for(
        "[...document.querySelectorAll('button')].some(b => b.textContent === 'Sign out')",
        "the Sign out button",
    )
    .await;
    cdp.eval("[...document.querySelectorAll('button')].find(b => b.textContent === 'Sign out').click(); true").await;
    cdp.wait_for(
        "document.body.innerText.includes('You have signed out')",
        "the signed-out page",
    )
    .await;

    // 4. The RP starts again; the user picks "Sign in with a passkey".
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    cdp.navigate(url.as_str()).await;
    cdp.wait_for("document.readyState === 'complete' && [...document.querySelectorAll('button')].some(b => b.textContent === 'Sign in with a passkey')", "Sign in with a passkey").await;
    cdp.eval("[...document.querySelectorAll('button')].find(b => b.textContent === 'Sign in with a passkey').click(); true").await;
    let second = wait_for_callback(&hits, 2).await;
    let code = url::form_urlencoded::parse(second.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");

    // 5. The RP redeems the code and verifies the ID token independently.
    let tokens = redeem(&app, &rp, code, verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(amr(&claims), ["pop", "mfa"]);
    assert_eq!(
        claims.auth_context_ref().unwrap().as_str(),
        "phishing_resistant_mfa"
    );
    assert_eq!(claims.subject().as_str(), user.id.to_string());
    chromium.close().await;
}
