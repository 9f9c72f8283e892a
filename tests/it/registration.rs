//! Dynamic client registration (RFC 7591) and its management (RFC 7592),
//! through real HTTP: a registered client is used by the `openidconnect`
//! relying party exactly like a configured one, on both backends and
//! across two instances sharing Redis; every refusal names its rule; a
//! deleted client is gone everywhere at once.

use crate::backchannel::Receiver;
use crate::harness::*;
use crate::redis::on_both_backends;
use gatepass::clock::Clock;
use openidconnect::OAuth2TokenResponse;
use serde_json::{Value, json};
use std::sync::Arc;

const INITIAL_TOKEN: &str = "initial-access-token-0123456789";
const REGISTRATION: &str =
    "[registration]\ninitial_access_tokens = [\"initial-access-token-0123456789\"]\n";
const PASSWORD: &str = "registration password 1";

/// `POST {base}/register` with `token` as Bearer (if any); status, the
/// `WWW-Authenticate` values, and the JSON body.
async fn post_register(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Vec<String>, Value) {
    let mut req = http.post(format!("{base}/register")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("POST /register");
    let status = r.status().as_u16();
    let challenges = r
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (status, challenges, r.json().await.unwrap_or(Value::Null))
}

/// Registers `body` at `app`; panics unless it answers 201.
async fn register(app: &TestApp, body: Value) -> Value {
    let (status, _, answer) =
        post_register(&app.http, &app.issuer, Some(INITIAL_TOKEN), &body).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// A request to a `registration_client_uri` with `token` as Bearer.
async fn manage(
    http: &reqwest::Client,
    method: reqwest::Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, uri).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("registration_client_uri");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// A client_credentials request with HTTP Basic at `base`.
async fn client_credentials(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
) -> (u16, Value) {
    let r = http
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    app.http
        .post(app.url("/introspect"))
        .basic_auth(INTROSPECTOR_ID, Some(INTROSPECTOR_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn userinfo_status(app: &TestApp, access_token: &str) -> u16 {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// How many clients the store holds as registered.
async fn stored_clients(app: &TestApp) -> usize {
    app.state
        .store
        .scan(
            gatepass::clients::REGISTERED,
            app.clock.now().unix_timestamp(),
        )
        .await
        .unwrap()
        .len()
}

// --- a confidential client: the whole code flow, then deletion ---------------

async fn registered_confidential_client_runs_the_code_flow_until_deleted(app: TestApp) {
    let upn = "dcr-user";
    app.create_user(upn, Some(PASSWORD)).await;
    let reg = register(
        &app,
        json!({
            "redirect_uris": [RP_REDIRECT],
            "post_logout_redirect_uris": [RP_LOGOUT_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Registered Billing",
            "logo_uri": "https://billing.example/logo.png"
        }),
    )
    .await;
    let client_id = str_of(&reg, "client_id").to_owned();
    let secret = str_of(&reg, "client_secret").to_owned();
    let token = str_of(&reg, "registration_access_token").to_owned();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok(), "{client_id}");
    assert_eq!(
        reg["registration_client_uri"],
        app.url(&format!("/register/{client_id}"))
    );
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert!(reg["client_id_issued_at"].as_i64().unwrap() > 0);
    // Defaults are answered (RFC 7591 §3.2.1); unknown metadata is not kept.
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["response_types"], json!(["code"]));
    assert_eq!(reg["client_name"], "Registered Billing");
    assert!(reg.get("logo_uri").is_none(), "{reg}");

    // The relying party, built from discovery, with the issued credentials.
    let rp = app.rp(&client_id, Some(&secret)).await;
    let (url, verifier, nonce) = authorize_url(&rp, &["offline_access"]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    assert!(
        first.html.contains("Registered Billing"),
        "the sign-in page names the registered client"
    );
    let location = browser
        .submit_credentials(&first, upn, PASSWORD)
        .await
        .location
        .expect("redirect back to the client");
    let tokens = redeem(&app, &rp, query_param(&location, "code").unwrap(), verifier).await;
    let claims = id_claims(&rp, &tokens, &nonce);
    assert_eq!(claims.audiences()[0].as_str(), client_id);
    let access = tokens.access_token().secret().to_owned();
    let refresh = tokens
        .refresh_token()
        .expect("refresh token")
        .secret()
        .to_owned();
    assert_eq!(userinfo_status(&app, &access).await, 200);

    // RFC 7592 delete: the client is gone everywhere, at once.
    let uri = str_of(&reg, "registration_client_uri").to_owned();
    let (status, _) = manage(&app.http, reqwest::Method::DELETE, &uri, &token, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        userinfo_status(&app, &access).await,
        401,
        "the deleted client's access token is refused"
    );
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "token requests are refused");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let page = app.browser().get(&authorize_url(&rp, &[]).0).await;
    assert_eq!(page.status, 400, "/authorize no longer knows it");
    assert!(page.html.contains("not registered"), "{}", page.html);
    let (status, _) = manage(&app.http, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(status, 401);
    assert_eq!(stored_clients(&app).await, 0);
}

on_both_backends!(registered_confidential_client_runs_the_code_flow_until_deleted =>
    registration_confidential_client_code_flow_embedded,
    registration_confidential_client_code_flow_redis,
    config = REGISTRATION);

// --- a public client ------------------------------------------------------------

#[tokio::test]
async fn registration_public_client_signs_in_with_pkce() {
    let app = TestApp::spawn_with(REGISTRATION).await;
    app.create_user("dcr-public", Some(PASSWORD)).await;
    let reg = register(
        &app,
        json!({"redirect_uris": [RP_REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert!(reg.get("client_secret").is_none(), "{reg}");
    assert!(reg.get("client_secret_expires_at").is_none(), "{reg}");
    assert_eq!(reg["grant_types"], json!(["authorization_code"]));
    let client_id = str_of(&reg, "client_id");
    let rp = app.rp(client_id, None).await;
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let location = app
        .browser()
        .sign_in(&url, "dcr-public", PASSWORD)
        .await
        .expect("signed in");
    let tokens = redeem(&app, &rp, query_param(&location, "code").unwrap(), verifier).await;
    id_claims(&rp, &tokens, &nonce);
    // Without PKCE, a public client is refused (redirected with an error).
    let no_pkce = format!(
        "{}/authorize?client_id={client_id}&response_type=code&scope=openid&state=s&redirect_uri={}",
        app.issuer,
        urlencode(RP_REDIRECT)
    );
    let page = app.browser().get(&no_pkce).await;
    let location = page.location.expect("error redirect");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    // And it cannot authenticate with a secret-shaped guess.
    let (status, body) =
        client_credentials(&app.http, &app.issuer, client_id, "guess-0123456789").await;
    assert_eq!(status, 401, "{body}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// --- refusals -------------------------------------------------------------------

#[tokio::test]
async fn registration_refusals_name_the_problem_and_store_nothing() {
    let app = TestApp::spawn_with(REGISTRATION).await;
    let good = json!({"redirect_uris": [RP_REDIRECT]});

    // No initial access token: a bare Bearer challenge (RFC 6750 §3.1).
    let (status, challenges, _) = post_register(&app.http, &app.issuer, None, &good).await;
    assert_eq!(status, 401);
    assert_eq!(challenges, vec!["Bearer realm=\"gatepass\"".to_owned()]);
    let (status, challenges, body) = post_register(
        &app.http,
        &app.issuer,
        Some("not-the-initial-token-0123"),
        &good,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(challenges.len(), 1, "Bearer only: {challenges:?}");
    assert!(challenges[0].contains("invalid_token"), "{challenges:?}");
    // A registration access token is not an initial access token.
    let other = register(&app, json!({"grant_types": ["client_credentials"]})).await;
    let (status, _, _) = post_register(
        &app.http,
        &app.issuer,
        Some(str_of(&other, "registration_access_token")),
        &good,
    )
    .await;
    assert_eq!(status, 401);

    let cases: Vec<(Value, &str, &str)> = vec![
        // Posing as a configured application (by its name, here its id,
        // in any case), or hiding text direction tricks in the name.
        (
            json!({"redirect_uris": [RP_REDIRECT], "client_name": format!(" {} ", RP_ID.to_uppercase())}),
            "invalid_client_metadata",
            "configured application",
        ),
        (
            json!({"redirect_uris": [RP_REDIRECT], "client_name": "Pay\u{202E}lanigiro"}),
            "invalid_client_metadata",
            "bidirectional",
        ),
        (
            json!({"redirect_uris": ["http://rp.example/callback"]}),
            "invalid_redirect_uri",
            "loopback",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/callback#frag"]}),
            "invalid_redirect_uri",
            "fragment",
        ),
        (
            json!({"redirect_uris": ["/callback"]}),
            "invalid_redirect_uri",
            "absolute",
        ),
        (
            json!({"redirect_uris": ["myapp:/callback"]}),
            "invalid_redirect_uri",
            "https",
        ),
        (
            json!({}),
            "invalid_redirect_uri",
            "at least one redirect URI",
        ),
        (
            json!({"redirect_uris": [RP_REDIRECT], "response_types": []}),
            "invalid_client_metadata",
            "response_types",
        ),
        (
            json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
            "invalid_client_metadata",
            "grant_types must include authorization_code",
        ),
        (
            json!({"redirect_uris": [RP_REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
            "response_types",
        ),
        (
            json!({"grant_types": ["implicit"], "redirect_uris": [RP_REDIRECT]}),
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            json!({"grant_types": ["refresh_token"]}),
            "invalid_client_metadata",
            "refresh_token",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
            "client_credentials",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "jwks",
        ),
        (
            json!({"grant_types": ["client_credentials"], "jwks_uri": "https://rp.example/jwks"}),
            "invalid_client_metadata",
            "jwks_uri",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                   "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "invalid_client_metadata",
            "symmetric",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            json!({"grant_types": ["client_credentials"], "app_permissions": ["User.ReadWrite.All"]}),
            "invalid_client_metadata",
            "app_permissions",
        ),
        (
            json!({"redirect_uris": [RP_REDIRECT], "delegated_permissions": ["User.Read"]}),
            "invalid_client_metadata",
            "delegated_permissions",
        ),
        (
            json!({"grant_types": ["client_credentials"], "introspect_all_tokens": true}),
            "invalid_client_metadata",
            "introspect_all_tokens",
        ),
        (
            json!({"redirect_uris": [RP_REDIRECT], "backchannel_logout_uri": "http://rp.example/bcl"}),
            "invalid_client_metadata",
            "backchannel_logout_uri",
        ),
        (
            json!({"redirect_uris": "https://rp.example/cb"}),
            "invalid_redirect_uri",
            "array of strings",
        ),
        (
            json!({"redirect_uris": [RP_REDIRECT], "dpop_bound_access_tokens": "yes"}),
            "invalid_client_metadata",
            "dpop_bound_access_tokens",
        ),
        (json!([1, 2]), "invalid_client_metadata", "JSON object"),
    ];
    for (body, error, says) in &cases {
        let (status, _, answer) =
            post_register(&app.http, &app.issuer, Some(INITIAL_TOKEN), body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"], *error, "{body} → {answer}");
        let description = str_of(&answer, "error_description");
        assert!(
            description.contains(says),
            "{body}: {description:?} should say {says:?}"
        );
    }
    // Not JSON at all.
    let r = app
        .http
        .post(app.url("/register"))
        .bearer_auth(INITIAL_TOKEN)
        .form(&[("redirect_uris", RP_REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    // Only the one accepted registration was written.
    assert_eq!(stored_clients(&app).await, 1);
}

// --- RFC 7592: read, replace, delete --------------------------------------------

#[tokio::test]
async fn registration_client_is_read_replaced_and_deleted_with_its_token_only() {
    let app = TestApp::spawn_with(REGISTRATION).await;
    let reg = register(
        &app,
        json!({"grant_types": ["client_credentials"], "client_name": "Nightly job"}),
    )
    .await;
    let id = str_of(&reg, "client_id").to_owned();
    let secret = str_of(&reg, "client_secret").to_owned();
    let token = str_of(&reg, "registration_access_token").to_owned();
    let uri = str_of(&reg, "registration_client_uri").to_owned();
    let (status, app_token) = client_credentials(&app.http, &app.issuer, &id, &secret).await;
    assert_eq!(status, 200, "{app_token}");
    let app_token = str_of(&app_token, "access_token").to_owned();
    assert_eq!(introspect(&app, &app_token).await["active"], true);

    // Read: the metadata, never a secret.
    let (status, read) = manage(&app.http, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["client_id"], id.as_str());
    assert_eq!(read["client_name"], "Nightly job");
    assert_eq!(read["client_secret_expires_at"], 0);
    assert!(read.get("client_secret").is_none(), "{read}");
    assert!(read.get("registration_access_token").is_none(), "{read}");

    // Wrong token, unknown client, a configured client: one answer.
    let unknown = app.url("/register/00000000-0000-4000-8000-000000000000");
    for (what, uri, token) in [
        ("wrong token", uri.as_str(), "wrong-registration-token"),
        ("unknown client", unknown.as_str(), token.as_str()),
        ("initial token", uri.as_str(), INITIAL_TOKEN),
    ] {
        let (status, body) = manage(&app.http, reqwest::Method::GET, uri, token, None).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "invalid_token", "{what}");
    }
    let configured = app.url(&format!("/register/{RP_ID}"));
    let (status, _) = manage(
        &app.http,
        reqwest::Method::DELETE,
        &configured,
        &token,
        None,
    )
    .await;
    assert_eq!(status, 401, "a configured client is never managed here");
    let r = app.http.get(&uri).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");

    // Replace: the full metadata; the secret is kept.
    let replacement = json!({
        "client_id": id,
        "client_secret": secret,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
        "client_name": "Nightly job v2",
        "registration_access_token": "ignored",
    });
    let (status, put) = manage(
        &app.http,
        reqwest::Method::PUT,
        &uri,
        &token,
        Some(replacement.clone()),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["client_name"], "Nightly job v2");
    assert_eq!(put["token_endpoint_auth_method"], "client_secret_post");
    assert!(
        put.get("client_secret").is_none(),
        "the secret is kept, not reissued"
    );
    let (status, _) = client_credentials(&app.http, &app.issuer, &id, &secret).await;
    assert_eq!(status, 401, "client_secret_basic is no longer its method");
    let r = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "client_secret_post with the same secret");

    // Refused replacements change nothing.
    let mut mismatched = replacement.clone();
    mismatched["client_id"] = json!("someone-else");
    let mut wrong_secret = replacement.clone();
    wrong_secret["client_secret"] = json!("not-the-secret-0123456789");
    let mut invalid = replacement.clone();
    invalid["token_endpoint_auth_method"] = json!("none");
    let mut privileged = replacement.clone();
    privileged["app_permissions"] = json!(["User.ReadWrite.All"]);
    for (body, says) in [
        (mismatched, "client_id"),
        (wrong_secret, "client_secret"),
        (invalid, "client_credentials"),
        (privileged, "app_permissions"),
    ] {
        let (status, answer) =
            manage(&app.http, reqwest::Method::PUT, &uri, &token, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "invalid_client_metadata");
        assert!(
            str_of(&answer, "error_description").contains(says),
            "{answer}"
        );
    }
    let (status, _) = manage(
        &app.http,
        reqwest::Method::PUT,
        &uri,
        "wrong-registration-token",
        Some(replacement),
    )
    .await;
    assert_eq!(status, 401);
    let (_, read) = manage(&app.http, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(read["client_name"], "Nightly job v2");

    // Delete: wrong token refused; then gone, and its token with it.
    let (status, _) = manage(
        &app.http,
        reqwest::Method::DELETE,
        &uri,
        "wrong-registration-token",
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = manage(&app.http, reqwest::Method::DELETE, &uri, &token, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        introspect(&app, &app_token).await["active"],
        false,
        "the deleted client's token is dead"
    );
    let (status, body) = client_credentials(&app.http, &app.issuer, &id, &secret).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = manage(&app.http, reqwest::Method::DELETE, &uri, &token, None).await;
    assert_eq!(status, 401, "deleting twice");
}

#[tokio::test]
async fn registration_put_to_a_secret_method_issues_a_secret_once() {
    let app = TestApp::spawn_with(REGISTRATION).await;
    let reg = register(
        &app,
        json!({"redirect_uris": [RP_REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let id = str_of(&reg, "client_id").to_owned();
    let uri = str_of(&reg, "registration_client_uri").to_owned();
    let token = str_of(&reg, "registration_access_token").to_owned();
    let (status, put) = manage(
        &app.http,
        reqwest::Method::PUT,
        &uri,
        &token,
        Some(json!({"client_id": id, "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    let secret = str_of(&put, "client_secret");
    let (status, body) = client_credentials(&app.http, &app.issuer, &id, secret).await;
    assert_eq!(status, 200, "{body}");
    let (_, read) = manage(&app.http, reqwest::Method::GET, &uri, &token, None).await;
    assert!(read.get("client_secret").is_none());
}

// --- on or off ------------------------------------------------------------------

#[tokio::test]
async fn registration_off_is_not_served_nor_advertised() {
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
    assert!(doc.get("registration_endpoint").is_none(), "{doc}");
    let (status, _, body) = post_register(
        &app.http,
        &app.issuer,
        Some(INITIAL_TOKEN),
        &json!({"redirect_uris": [RP_REDIRECT]}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = manage(
        &app.http,
        reqwest::Method::GET,
        &app.url("/register/00000000-0000-4000-8000-000000000000"),
        INITIAL_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 404);

    let on = TestApp::spawn_with(REGISTRATION).await;
    let doc: Value = on
        .http
        .get(on.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["registration_endpoint"], on.url("/register"));
}

#[tokio::test]
async fn registration_initial_access_tokens_are_validated_at_start_up() {
    for (tokens, says) in [
        ("[\"short\"]", "registration.initial_access_tokens[0]"),
        (
            "[\"initial-access-token-0123456789\", \"tiny\"]",
            "registration.initial_access_tokens[1]",
        ),
        ("\"initial-access-token-0123456789\"", "registration"),
        (
            "[\" initial-access-token-0123456789\"]",
            "registration.initial_access_tokens[0]",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n[registration]\ninitial_access_tokens = {tokens}\n",
            config_text("http://localhost:8080", dir.path())
        );
        let e = gatepass::config::Settings::from_toml(
            &text,
            std::path::Path::new("test.toml"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(says), "{tokens}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let e = gatepass::config::Settings::from_toml(
        &format!(
            "{}\n[registration]\ninitial_tokens = []\n",
            config_text("http://localhost:8080", dir.path())
        ),
        std::path::Path::new("test.toml"),
        std::iter::empty(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("initial_tokens"), "{e}");
}

// --- back-channel logout reaches registered clients -----------------------------

#[tokio::test]
async fn registration_registered_client_receives_back_channel_logout() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(REGISTRATION).await;
    let upn = "dcr-bcl";
    app.create_user(upn, Some(PASSWORD)).await;
    let reg = register(
        &app,
        json!({
            "redirect_uris": [RP_REDIRECT],
            "backchannel_logout_uri": format!("{}/bcl/registered", receiver.base),
            "backchannel_logout_session_required": true,
        }),
    )
    .await;
    assert_eq!(reg["backchannel_logout_session_required"], true);
    let client_id = str_of(&reg, "client_id");
    let rp = app.rp(client_id, Some(str_of(&reg, "client_secret"))).await;
    let (url, verifier, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let location = browser
        .sign_in(&url, upn, PASSWORD)
        .await
        .expect("signed in");
    let tokens = redeem(&app, &rp, query_param(&location, "code").unwrap(), verifier).await;
    use openidconnect::TokenResponse;
    let id_token = tokens.id_token().unwrap().to_string();
    let page = browser
        .get(&format!("/logout?id_token_hint={id_token}"))
        .await;
    assert_eq!(page.status, 200);
    let round = app
        .state
        .backchannel
        .deliver_due(&app.state.tokens, app.clock.now().unix_timestamp())
        .await
        .unwrap();
    assert_eq!(round.delivered, 1, "{round:?}");
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].client, "registered");
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(posts[0].logout_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], client_id);
}

// --- two instances on one Redis ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_redis_client_registered_at_one_instance_works_at_the_other() {
    let test = "registration_redis_client_registered_at_one_instance_works_at_the_other";
    let Some(redis) = crate::redis::redis_for(test).await else {
        return;
    };
    let ns = crate::redis::Namespace::new(&redis.url);
    let a = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().unwrap(),
        REGISTRATION,
    )
    .await;
    let b =
        crate::redis::Instance::spawn_beside_with(&a, &redis.url, &ns.prefix, REGISTRATION).await;
    let b_base = b.url("");
    a.create_user("dcr-shared", Some(PASSWORD)).await;

    let reg = register(
        &a,
        json!({"redirect_uris": [RP_REDIRECT], "grant_types": ["authorization_code", "client_credentials"]}),
    )
    .await;
    let id = str_of(&reg, "client_id").to_owned();
    let secret = str_of(&reg, "client_secret").to_owned();
    let token = str_of(&reg, "registration_access_token").to_owned();
    // B knows it at once: a token request and a sign-in at B.
    let (status, body) = client_credentials(&a.http, &b_base, &id, &secret).await;
    assert_eq!(status, 200, "{body}");
    let b_browser = Browser::new(b_base.clone());
    let (url, _, _) = authorize_url(&a.rp(&id, Some(&secret)).await, &[]);
    let page = b_browser.get(&url.replacen(&a.issuer, &b_base, 1)).await;
    assert_eq!(page.status, 200, "B shows the sign-in page for it");
    assert!(page.has_label("Username"));
    // B manages it with the token A issued; deleting at B ends it at A.
    let b_uri = format!("{b_base}/register/{id}");
    let (status, read) = manage(&a.http, reqwest::Method::GET, &b_uri, &token, None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["registration_client_uri"],
        a.url(&format!("/register/{id}"))
    );
    let (status, _) = manage(&a.http, reqwest::Method::DELETE, &b_uri, &token, None).await;
    assert_eq!(status, 204);
    let (status, _) = client_credentials(&a.http, &a.issuer, &id, &secret).await;
    assert_eq!(status, 401, "A no longer knows it");
    drop(b);
    drop(a);
    ns.remove().await;
}

// --- the answers are what /openapi.json describes ---------------------------------

/// Checks `value` against the description of `method path` answering `status`.
fn assert_described(doc: &Value, path: &str, method: &str, status: u16, value: &Value) {
    let schema = crate::openapi::response_schema(doc, path, method, status);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} ({status}) contradicts the description:\n{}\n{value:#}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn registration_answers_match_the_openapi_description() {
    let app = TestApp::spawn_with(REGISTRATION).await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reg = register(
        &app,
        json!({"redirect_uris": [RP_REDIRECT], "client_name": "Described",
               "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}),
    )
    .await;
    assert_described(&doc, "/register", "post", 201, &reg);
    let id = str_of(&reg, "client_id").to_owned();
    let uri = str_of(&reg, "registration_client_uri").to_owned();
    let token = str_of(&reg, "registration_access_token").to_owned();
    let (status, read) = manage(&app.http, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(status, 200);
    assert_described(&doc, "/register/{client_id}", "get", 200, &read);
    let (status, put) = manage(
        &app.http,
        reqwest::Method::PUT,
        &uri,
        &token,
        Some(
            json!({"client_id": id, "token_endpoint_auth_method": "none",
                    "redirect_uris": [RP_REDIRECT]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_described(&doc, "/register/{client_id}", "put", 200, &put);
    let (status, _, refused) = post_register(
        &app.http,
        &app.issuer,
        Some(INITIAL_TOKEN),
        &json!({"redirect_uris": ["http://rp.example/cb"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_described(&doc, "/register", "post", 400, &refused);
    let (status, _, unauthorized) = post_register(&app.http, &app.issuer, None, &json!({})).await;
    assert_eq!(status, 401);
    assert_described(&doc, "/register", "post", 401, &unauthorized);
    let (status, wrong) = manage(&app.http, reqwest::Method::DELETE, &uri, "wrong", None).await;
    assert_eq!(status, 401);
    assert_described(&doc, "/register/{client_id}", "delete", 401, &wrong);
    let off = TestApp::spawn().await;
    let (status, _, not_found) =
        post_register(&off.http, &off.issuer, Some(INITIAL_TOKEN), &json!({})).await;
    assert_eq!(status, 404);
    assert_described(&doc, "/register", "post", 404, &not_found);
}
