//! The device authorization grant (RFC 8628) through its real interfaces:
//! the `openidconnect` crate's device flow as the relying party, the
//! `/device` pages in a cookie-keeping browser, and the token endpoint's
//! polling answers — including every refusal.

use crate::harness::*;
use gatepass::policy::ca_store::CaKind;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, ClientId, DeviceAuthorizationUrl, IssuerUrl, OAuth2TokenResponse,
    ProviderMetadata, Scope, TokenResponse,
};
use serde_json::{Value, json};

/// A public device client (a TV) and a confidential one (a CLI).
const DEVICE_CLIENTS: &str = r#"
[[clients]]
client_id = "tv"
display_name = "Living-room TV"
grant_types = ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]

[[clients]]
client_id = "cli"
client_secret = "cli-secret-0123456789"
grant_types = ["urn:ietf:params:oauth:grant-type:device_code"]
"#;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Discovery's `device_authorization_endpoint`, which `CoreProviderMetadata`
/// does not model (the crate's own example does the same).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: DeviceAuthorizationUrl,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}
type DeviceProviderMetadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

async fn spawn() -> TestApp {
    TestApp::spawn_with(DEVICE_CLIENTS).await
}

/// A user with a one-time TAP; returns the pass.
async fn tap_user(app: &TestApp, username: &str) -> String {
    let user = app.create_user(username, None).await;
    let created = app
        .issue_tap(
            &user,
            json!({"isUsableOnce": true, "lifetimeInMinutes": 60}),
        )
        .await;
    created["temporaryAccessPass"]
        .as_str()
        .expect("pass")
        .to_owned()
}

/// `POST /device_authorization` as `client_id` (public: no secret).
async fn start(app: &TestApp, client_id: &str, scope: &str) -> reqwest::Response {
    app.http
        .post(app.url("/device_authorization"))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .expect("device authorization request")
}

async fn started(app: &TestApp, client_id: &str, scope: &str) -> Value {
    let r = start(app, client_id, scope).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// One poll of the token endpoint: (status, body).
async fn poll(app: &TestApp, client_id: &str, device_code: &str) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", DEVICE_GRANT),
            ("client_id", client_id),
            ("device_code", device_code),
        ])
        .send()
        .await
        .expect("poll");
    (r.status().as_u16(), r.json().await.expect("json"))
}

fn code(v: &Value, name: &str) -> String {
    v[name].as_str().expect(name).to_owned()
}

/// Opens `url` (the verification URI, maybe complete), checks **Code** and
/// **Next**, and submits `typed`.
async fn enter_code(browser: &Browser, url: &str, typed: &str) -> Page {
    let page = browser.get(url).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.has_label("Code"), "no Code field: {}", page.html);
    assert!(page.has_button("Next"), "no Next button: {}", page.html);
    let csrf = page.hidden("csrf").expect("csrf");
    browser
        .post_form("/device", &[("csrf", &csrf), ("code", typed)])
        .await
}

/// From the username page, through the TAP page, to whatever follows.
async fn sign_in_with_tap(browser: &Browser, username_page: &Page, user: &str, tap: &str) -> Page {
    assert!(
        username_page.has_label("Username"),
        "expected the sign-in page: {}",
        username_page.html
    );
    let (flow, next) = browser.enter_username(username_page, user).await;
    let page = browser.get(&next.location.expect("redirect")).await;
    assert!(page.has_label("Temporary Access Pass"), "{}", page.html);
    let csrf = page.hidden("csrf").expect("csrf");
    browser
        .post_form(
            "/signin/tap",
            &[("flow", &flow), ("csrf", &csrf), ("tap", tap)],
        )
        .await
}

/// Presses **Allow** or **Deny** on the confirmation page.
async fn decide(browser: &Browser, confirm: &Page, button: &str) -> Page {
    assert!(confirm.has_button("Allow"), "{}", confirm.html);
    assert!(confirm.has_button("Deny"), "{}", confirm.html);
    let csrf = confirm.hidden("csrf").expect("csrf");
    let consent = confirm.hidden("consent").expect("consent");
    browser
        .post_form(
            "/device/confirm",
            &[
                ("csrf", &csrf),
                ("consent", &consent),
                ("decision", &button.to_lowercase()),
            ],
        )
        .await
}

/// The whole user side: code, TAP sign-in, the confirmation page, `button`.
async fn answer(app: &TestApp, user_code: &str, user: &str, tap: &str, button: &str) -> Page {
    let browser = app.browser();
    let signin = enter_code(&browser, "/device", user_code).await;
    let confirm = sign_in_with_tap(&browser, &signin, user, tap).await;
    assert!(
        confirm.html.contains("Living-room TV") || confirm.html.contains("cli"),
        "the confirmation names the client: {}",
        confirm.html
    );
    let done = decide(&browser, &confirm, button).await;
    assert_eq!(done.status, 200, "{}", done.html);
    done
}

#[tokio::test]
async fn device_flow_with_tap_sign_in_issues_tokens_to_the_openidconnect_client() {
    let app = spawn().await;
    let tap = tap_user(&app, "tvwatcher").await;
    let metadata = DeviceProviderMetadata::discover_async(
        IssuerUrl::new(app.issuer.clone()).unwrap(),
        &app.http,
    )
    .await
    .expect("discovery");
    let endpoint = metadata
        .additional_metadata()
        .device_authorization_endpoint
        .clone();
    assert!(
        metadata
            .grant_types_supported()
            .is_some_and(|g| g.contains(&CoreGrantType::DeviceCode)),
        "discovery lists the device_code grant"
    );
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("tv".to_owned()), None)
        .set_device_authorization_url(endpoint);
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("offline_access".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .request_async(&app.http)
        .await
        .expect("device authorization");
    assert_eq!(
        details.verification_uri().as_str(),
        app.url("/device"),
        "verification_uri is {{issuer}}/device"
    );
    let user_code = details.user_code().secret().clone();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(details.interval().as_secs(), 5);

    // The crate polls while the user signs in; its sleeps move the
    // server's clock (and yield, so the browser gets on).
    let clock = app.clock.clone();
    let polling = client
        .exchange_device_access_token(&details)
        .expect("token endpoint")
        .request_async(
            &app.http,
            move |d: std::time::Duration| {
                clock.advance(time::Duration::try_from(d).unwrap());
                tokio::time::sleep(std::time::Duration::from_millis(50))
            },
            None,
        );
    let approving = async {
        // verification_uri_complete fills the code in.
        let complete = details
            .verification_uri_complete()
            .expect("verification_uri_complete")
            .secret()
            .clone();
        let browser = app.browser();
        let page = browser.get(&complete).await;
        assert!(page.html.contains(&user_code), "{}", page.html);
        // Typed loosely: lower case, a space instead of the hyphen.
        let typed = user_code.to_lowercase().replace('-', " ");
        let signin = enter_code(&browser, &complete, &typed).await;
        let confirm = sign_in_with_tap(&browser, &signin, "tvwatcher", &tap).await;
        assert!(confirm.html.contains("Living-room TV"), "{}", confirm.html);
        decide(&browser, &confirm, "Allow").await
    };
    let (tokens, done) = tokio::join!(polling, approving);
    assert!(done.html.contains("Device connected"), "{}", done.html);
    let tokens = tokens.expect("tokens after approval");
    assert!(tokens.refresh_token().is_some(), "offline_access was asked");
    let claims = tokens
        .id_token()
        .expect("id_token (openid)")
        .claims(
            &client.id_token_verifier(),
            |_: Option<&openidconnect::Nonce>| Ok(()),
        )
        .expect("verified ID token");
    assert_eq!(amr(claims), ["tap", "otp", "mfa"]);
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "mfa");
    assert_eq!(
        claims.preferred_username().unwrap().as_str(),
        "tvwatcher",
        "profile scope"
    );
}

#[tokio::test]
async fn device_poll_before_approval_is_pending_and_too_fast_is_slow_down() {
    let app = spawn().await;
    let d = started(&app, "tv", "openid").await;
    let dc = code(&d, "device_code");
    let (s, body) = poll(&app, "tv", &dc).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    // At once again: too fast; the interval becomes 10 s.
    let (s, body) = poll(&app, "tv", &dc).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("slow_down")));
    // 6 s later is still too fast for 10 s (and it becomes 15 s).
    app.clock.advance(time::Duration::seconds(6));
    assert_eq!(poll(&app, "tv", &dc).await.1["error"], "slow_down");
    app.clock.advance(time::Duration::seconds(14));
    assert_eq!(poll(&app, "tv", &dc).await.1["error"], "slow_down");
    app.clock.advance(time::Duration::seconds(20));
    assert_eq!(
        poll(&app, "tv", &dc).await.1["error"],
        "authorization_pending"
    );
}

#[tokio::test]
async fn device_denied_by_the_user_answers_access_denied() {
    let app = spawn().await;
    let tap = tap_user(&app, "denier").await;
    let d = started(&app, "tv", "openid").await;
    let done = answer(&app, &code(&d, "user_code"), "denier", &tap, "Deny").await;
    assert!(done.html.contains("Request denied"), "{}", done.html);
    let (s, body) = poll(&app, "tv", &code(&d, "device_code")).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("access_denied")));
    // The code is spent: entering it again finds nothing to approve.
    let again = enter_code(&app.browser(), "/device", &code(&d, "user_code")).await;
    assert_eq!(again.status, 400);
    assert!(!again.has_label("Username"), "{}", again.html);
}

#[tokio::test]
async fn device_code_past_its_lifetime_is_expired_token() {
    let app = spawn().await;
    let d = started(&app, "tv", "openid").await;
    assert_eq!(d["expires_in"], 600);
    app.clock.advance(time::Duration::seconds(601));
    let (s, body) = poll(&app, "tv", &code(&d, "device_code")).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("expired_token")));
    let late = enter_code(&app.browser(), "/device", &code(&d, "user_code")).await;
    assert_eq!(late.status, 400);
    assert!(
        late.html.contains("not found or has expired"),
        "{}",
        late.html
    );
}

#[tokio::test]
async fn device_code_replayed_after_success_is_invalid_grant() {
    let app = spawn().await;
    let tap = tap_user(&app, "replayer").await;
    let d = started(&app, "tv", "openid").await;
    answer(&app, &code(&d, "user_code"), "replayer", &tap, "Allow").await;
    let dc = code(&d, "device_code");
    let (s, tokens) = poll(&app, "tv", &dc).await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens["id_token"].is_string());
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    app.clock.advance(time::Duration::seconds(10));
    let (s, body) = poll(&app, "tv", &dc).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn device_code_of_another_client_is_invalid_grant() {
    let app = spawn().await;
    let d = started(&app, "tv", "openid").await;
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth("cli", Some("cli-secret-0123456789"))
        .form(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", &code(&d, "device_code")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn device_wrong_user_code_is_refused_and_guessing_is_limited_per_source() {
    let app = spawn().await;
    let d = started(&app, "tv", "openid").await;
    let browser = app.browser();
    // Malformed and well-formed wrong codes alike are counted.
    for guess in ["BCDF-GHJK", "nope", "ZZZZ-ZZZZ"] {
        let page = enter_code(&browser, "/device", guess).await;
        assert_eq!(page.status, 400, "{}", page.html);
        assert!(page.html.contains("not found"), "{}", page.html);
    }
    // The default limit is 10 codes a minute per source.
    for _ in 3..10 {
        enter_code(&browser, "/device", "BCDF-GHJK").await;
    }
    let right = code(&d, "user_code");
    let refused = enter_code(&browser, "/device", &right).await;
    assert_eq!(refused.status, 429, "{}", refused.html);
    assert!(!refused.has_label("Username"));
    // A new minute: the right code works.
    app.clock.advance(time::Duration::seconds(60));
    let page = enter_code(&browser, "/device", &right).await;
    assert!(page.has_label("Username"), "{}", page.html);
}

#[tokio::test]
async fn device_flow_is_refused_to_a_client_without_the_grant_type() {
    let app = spawn().await;
    let r = app
        .http
        .post(app.url("/device_authorization"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    // Nor may it poll.
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(RP_ID, Some(RP_SECRET))
        .form(&[("grant_type", DEVICE_GRANT), ("device_code", "x")])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    // A confidential device client must authenticate.
    let r = start(&app, "cli", "openid").await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn device_flow_is_not_advertised_without_a_device_client() {
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
    assert!(doc.get("device_authorization_endpoint").is_none());
    assert!(
        !doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == DEVICE_GRANT)
    );
    let with = spawn().await;
    let doc: Value = with
        .http
        .get(with.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["device_authorization_endpoint"],
        with.url("/device_authorization")
    );
}

#[tokio::test]
async fn device_sign_in_blocked_by_conditional_access_for_the_device_client_shows_no_allow() {
    let app = spawn().await;
    let tap = tap_user(&app, "blocked").await;
    let policy = json!({"id": "block-tv", "displayName": "Block TV", "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["tv"]}, "clientAppTypes": ["all"]},
        "grantControls": {"operator": "OR", "builtInControls": ["block"]}});
    app.state
        .ca
        .put(CaKind::Policy, "block-tv", &policy)
        .await
        .unwrap();
    let d = started(&app, "tv", "openid").await;
    let browser = app.browser();
    let signin = enter_code(&browser, "/device", &code(&d, "user_code")).await;
    let refused = sign_in_with_tap(&browser, &signin, "blocked", &tap).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(!refused.has_button("Allow"));
    assert_eq!(
        poll(&app, "tv", &code(&d, "device_code")).await.1["error"],
        "authorization_pending"
    );
}

#[tokio::test]
async fn device_code_polled_concurrently_after_approval_yields_tokens_once() {
    let app = spawn().await;
    let tap = tap_user(&app, "racer").await;
    let d = started(&app, "tv", "openid offline_access").await;
    answer(&app, &code(&d, "user_code"), "racer", &tap, "Allow").await;
    let dc = code(&d, "device_code");
    let polls = (0..16).map(|_| poll(&app, "tv", &dc));
    let results = futures_util::future::join_all(polls).await;
    let winners: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(winners[0].1["refresh_token"].is_string());
    for (s, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, body["error"].as_str()), (400, Some("invalid_grant")));
    }
}

/// The pending confirmation is bound to the session that saw it: another
/// browser cannot press Allow with its own session.
#[tokio::test]
async fn device_confirmation_from_another_session_is_refused() {
    let app = spawn().await;
    let tap = tap_user(&app, "victim").await;
    let other_tap = tap_user(&app, "other").await;
    let d = started(&app, "tv", "openid").await;
    let browser = app.browser();
    let signin = enter_code(&browser, "/device", &code(&d, "user_code")).await;
    let confirm = sign_in_with_tap(&browser, &signin, "victim", &tap).await;
    let consent = confirm.hidden("consent").expect("consent");

    // Another signed-in browser replays the consent id with its own CSRF.
    let intruder = app.browser();
    let d2 = started(&app, "tv", "openid").await;
    let signin2 = enter_code(&intruder, "/device", &code(&d2, "user_code")).await;
    let confirm2 = sign_in_with_tap(&intruder, &signin2, "other", &other_tap).await;
    let csrf2 = confirm2.hidden("csrf").expect("csrf");
    let page = intruder
        .post_form(
            "/device/confirm",
            &[
                ("csrf", &csrf2),
                ("consent", &consent),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert_eq!(
        poll(&app, "tv", &code(&d, "device_code")).await.1["error"],
        "authorization_pending"
    );
}
