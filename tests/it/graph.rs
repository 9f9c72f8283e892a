//! The Graph-compatible management API (DESIGN §2.6) over real HTTP: users,
//! groups, role assignments, `/me`, the audit logs and the authorization
//! matrix (application permissions, delegated scopes × directory roles).
//!
//! Application callers use `client_credentials` tokens from the harness;
//! delegated callers sign in through the browser as the confidential `rp`
//! client and ask for Graph scopes, exactly as a script against Microsoft
//! Graph would.

use crate::graph_client::*;
use crate::harness::*;
use gatepass::clock::Clock;
use gatepass::directory::roles::BuiltinRole;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Entra's template id for Global Reader.
const GLOBAL_READER_TEMPLATE: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";
/// Entra's template id for Authentication Administrator.
const AUTH_ADMIN_TEMPLATE: &str = "c4e39bd9-1100-46d3-8c65-fb160da0071f";

/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "0b9c3a6e-2f1d-4c8b-9a7e-5d4f3c2b1a09";

/// Every Graph scope the `rp` client may request for a signed-in user.
const ALL_SCOPES: &str = "openid User.ReadWrite.All Group.ReadWrite.All RoleManagement.ReadWrite.Directory AuditLog.Read.All";

/// A delegated Graph access token for `upn`, obtained through the browser.
async fn delegated(app: &TestApp, upn: &str, password: &str, scope: &str) -> String {
    let tokens = app.user_tokens(upn, password, scope).await;
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A user holding `role` (if any) and a delegated token with every scope.
async fn admin_with(app: &TestApp, upn: &str, role: Option<BuiltinRole>) -> String {
    let password = format!("{upn}-password-1");
    let user = app.create_user(upn, Some(&password)).await;
    if let Some(r) = role {
        app.grant_role(&user, r).await;
    }
    delegated(app, upn, &password, ALL_SCOPES).await
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

/// Whether `upn` can sign in with `password` through the browser.
async fn can_sign_in(app: &TestApp, upn: &str, password: &str) -> bool {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", RP_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", RP_REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        // Any well-formed challenge: the code is never redeemed.
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256")
        .finish();
    match app
        .browser()
        .sign_in(&format!("{}/authorize?{query}", app.issuer), upn, password)
        .await
    {
        Ok(location) => query_param(&location, "code").is_some(),
        Err(page) => {
            assert!(
                page.html.contains("Sign-in failed"),
                "unexpected page: {}",
                page.html
            );
            false
        }
    }
}

/// Microsoft's documented example body for `POST /users`.
fn example_user(upn: &str, password: &str) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": "Adele Vance",
        "mailNickname": "AdeleV",
        "userPrincipalName": upn,
        "passwordProfile": {
            "forceChangePasswordNextSignIn": true,
            "password": password
        }
    })
}

async fn create_user(app: &TestApp, base: &str, token: &str, upn: &str, password: &str) -> Value {
    let r = post(
        app,
        &format!("{base}/users"),
        token,
        example_user(upn, password),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

// --- users ------------------------------------------------------------------

#[tokio::test]
async fn user_created_with_graph_example_body_is_201_and_can_sign_in() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let password = "xWwvJ]6NMw+bWH-d";
    let r = post(
        &app,
        "/v1.0/users",
        &token,
        example_user("AdeleV@contoso.com", password),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The contract: exactly these properties.
    assert_eq!(
        keys(&r.body),
        set(&[
            "id",
            "userPrincipalName",
            "displayName",
            "mail",
            "accountEnabled",
            "createdDateTime"
        ])
    );
    let id = r.body["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id is a GUID: {id}");
    assert_eq!(r.body["userPrincipalName"], "AdeleV@contoso.com");
    assert_eq!(r.body["displayName"], "Adele Vance");
    assert_eq!(r.body["accountEnabled"], true);
    assert!(
        !r.text.contains(password),
        "the create response echoes the password"
    );

    assert!(
        can_sign_in(&app, "AdeleV@contoso.com", password).await,
        "the new user signs in"
    );
    assert!(!can_sign_in(&app, "AdeleV@contoso.com", "not-the-password").await);
}

#[tokio::test]
async fn user_created_disabled_cannot_sign_in() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let mut body = example_user("off@contoso.com", "disabled password 1");
    body["accountEnabled"] = json!(false);
    let r = post(&app, "/v1.0/users", &token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["accountEnabled"], false);
    assert!(!can_sign_in(&app, "off@contoso.com", "disabled password 1").await);
}

#[tokio::test]
async fn user_create_with_duplicate_upn_in_other_case_is_400_naming_upn() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "first password 1",
    )
    .await;
    let r = post(
        &app,
        "/v1.0/users",
        &token,
        example_user("adelev@CONTOSO.com", "second password 2"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // The error contract: {"error":{"code","message"}} and nothing else.
    assert_eq!(keys(&r.body), set(&["error"]));
    assert_eq!(keys(&r.body["error"]), set(&["code", "message"]));
    assert_eq!(r.error_code(), "Request_BadRequest");
    assert!(
        r.error_message().contains("userPrincipalName"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("second password 2"));
    // The first user is untouched: one user with that UPN, original password.
    let list = get(&app, "/v1.0/users", &token).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    assert!(can_sign_in(&app, "AdeleV@contoso.com", "first password 1").await);
}

#[tokio::test]
async fn user_create_with_short_password_is_400_naming_password_profile() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = post(
        &app,
        "/v1.0/users",
        &token,
        example_user("short@contoso.com", "Ab1!"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.error_message().contains("passwordProfile.password"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("Ab1!"));
    assert_eq!(
        get(&app, "/v1.0/users/short@contoso.com", &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn user_create_with_malformed_password_profile_does_not_echo_the_password() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let secret = "Hunter2-Secret-Value";
    let bodies = [
        // A string where the object belongs.
        json!({"accountEnabled": true, "displayName": "M", "userPrincipalName": "m@contoso.com", "passwordProfile": secret}),
        // The whole body a JSON string.
        json!(secret),
    ];
    for body in bodies {
        let r = post(&app, "/v1.0/users", &token, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(
            !r.text.contains(secret),
            "the error echoes the password: {}",
            r.text
        );
    }
    let r = post(
        &app,
        "/v1.0/users",
        &token,
        json!({"displayName": "M", "userPrincipalName": "m@contoso.com", "passwordProfile": secret}),
    )
    .await;
    assert!(
        r.error_message().contains("passwordProfile"),
        "the error still names the property: {}",
        r.text
    );
}

#[tokio::test]
async fn user_get_by_id_and_by_upn_returns_the_same_user() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let by_id = get(&app, &format!("/v1.0/users/{id}"), &token).await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    assert_eq!(by_id.body, created);
    for upn in ["AdeleV@contoso.com", "adelev@contoso.com"] {
        let by_upn = get(&app, &format!("/v1.0/users/{upn}"), &token).await;
        assert_eq!(by_upn.status, StatusCode::OK, "{upn}: {}", by_upn.text);
        assert_eq!(by_upn.body["id"], id);
    }
    let missing = get(&app, "/v1.0/users/nobody@contoso.com", &token).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "Request_ResourceNotFound");
    let missing_id = get(&app, &format!("/v1.0/users/{}", UNKNOWN_ID), &token).await;
    assert_eq!(missing_id.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn user_list_with_top_pages_through_next_link() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    for i in 0..5 {
        app.create_user(&format!("user{i}@contoso.com"), None).await;
    }
    let all = get(&app, "/v1.0/users", &token).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        all.body["@odata.context"],
        format!("{}/v1.0/$metadata#users", app.issuer)
    );
    assert!(
        all.body.get("@odata.nextLink").is_none(),
        "one page needs no nextLink"
    );
    let expected: Vec<Value> = all.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    assert_eq!(expected.len(), 5);

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut next = Some("/v1.0/users?$top=2".to_owned());
    while let Some(url) = next.take() {
        let page = get(&app, &url, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.text);
        let items = page.body["value"].as_array().unwrap();
        assert!(items.len() <= 2, "$top=2 gave {}", items.len());
        seen.extend(items.iter().map(|u| u["id"].clone()));
        pages += 1;
        next = page.body["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(
                link.starts_with(&format!("{}/v1.0/users?", app.issuer)),
                "{link}"
            );
        }
        assert!(pages <= 5, "paging does not terminate");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected, "pages cover every user once, in order");
}

#[tokio::test]
async fn user_list_with_filter_on_upn_returns_only_that_user() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let bob = app.create_user("bob@contoso.com", None).await;
    app.create_user("bobby@contoso.com", None).await;
    app.create_user("carol@contoso.com", None).await;
    let r = app
        .http
        .get(app.url("/v1.0/users"))
        .query(&[("$filter", "userPrincipalName eq 'bob@contoso.com'")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{body}");
    assert_eq!(value[0]["id"], bob.id.to_string());

    let bad = get(
        &app,
        "/v1.0/users?$filter=startswith(displayName,'b')",
        &token,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error_message().contains("$filter"), "{}", bad.text);
}

#[tokio::test]
async fn user_list_with_filter_and_top_keeps_the_filter_in_next_link() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    for upn in ["a@contoso.com", "b@contoso.com", "c@contoso.com"] {
        let mut body = example_user(upn, "shared password 1");
        body["displayName"] = json!("Same Name");
        assert_eq!(
            post(&app, "/v1.0/users", &token, body).await.status,
            StatusCode::CREATED
        );
    }
    app.create_user("other@contoso.com", None).await;
    let first = app
        .http
        .get(app.url("/v1.0/users"))
        .query(&[("$filter", "displayName eq 'Same Name'"), ("$top", "2")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(first["value"].as_array().unwrap().len(), 2, "{first}");
    let link = first["@odata.nextLink"].as_str().expect("a second page");
    let second = get(&app, link, &token).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let rest = second.body["value"].as_array().unwrap();
    assert_eq!(
        rest.len(),
        1,
        "the next page still applies the filter: {}",
        second.text
    );
    assert_eq!(rest[0]["displayName"], "Same Name");
    assert!(second.body.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn user_patch_display_name_is_204_and_visible() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let path = format!("/v1.0/users/{}", created["id"].as_str().unwrap());
    let r = patch(&app, &path, &token, json!({"displayName": "Adele V."})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    let after = get(&app, &path, &token).await;
    assert_eq!(after.body["displayName"], "Adele V.");
    assert_eq!(
        after.body["userPrincipalName"], "AdeleV@contoso.com",
        "other fields unchanged"
    );
    assert_eq!(after.body["accountEnabled"], true);

    let blank = patch(&app, &path, &token, json!({"displayName": "  "})).await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);
    assert!(
        blank.error_message().contains("displayName"),
        "{}",
        blank.text
    );
}

#[tokio::test]
async fn user_patch_account_disabled_blocks_sign_in_and_refuses_existing_token() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let tokens = app
        .user_tokens("AdeleV@contoso.com", "adele password 1", "openid")
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    let before = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), StatusCode::OK, "the token works before");

    let path = format!("/v1.0/users/{}", created["id"].as_str().unwrap());
    let r = patch(&app, &path, &token, json!({"accountEnabled": false})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(get(&app, &path, &token).await.body["accountEnabled"], false);

    let after = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::UNAUTHORIZED,
        "a disabled user's token is dead"
    );
    assert!(!can_sign_in(&app, "AdeleV@contoso.com", "adele password 1").await);

    // Enabling again lets the user sign in, but the old token stays dead.
    let r = patch(&app, &path, &token, json!({"accountEnabled": true})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(can_sign_in(&app, "AdeleV@contoso.com", "adele password 1").await);
    let old = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn user_patch_password_profile_replaces_the_password() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "old password 1",
    )
    .await;
    let path = format!("/v1.0/users/{}", created["id"].as_str().unwrap());
    let r = patch(
        &app,
        &path,
        &token,
        json!({"passwordProfile": {"forceChangePasswordNextSignIn": false, "password": "new password 2"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(
        !can_sign_in(&app, "AdeleV@contoso.com", "old password 1").await,
        "old password stops working"
    );
    assert!(
        can_sign_in(&app, "AdeleV@contoso.com", "new password 2").await,
        "new password works"
    );

    let short = patch(
        &app,
        &path,
        &token,
        json!({"passwordProfile": {"password": "short"}}),
    )
    .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        can_sign_in(&app, "AdeleV@contoso.com", "new password 2").await,
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn user_patch_upn_rename_moves_the_lookup() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let r = patch(
        &app,
        "/v1.0/users/AdeleV@contoso.com",
        &token,
        json!({"userPrincipalName": "adele.vance@contoso.com"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        get(&app, "/v1.0/users/AdeleV@contoso.com", &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let renamed = get(&app, "/v1.0/users/adele.vance@contoso.com", &token).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["id"], id);
    assert_eq!(renamed.body["userPrincipalName"], "adele.vance@contoso.com");
    assert!(can_sign_in(&app, "adele.vance@contoso.com", "adele password 1").await);
    assert!(!can_sign_in(&app, "AdeleV@contoso.com", "adele password 1").await);

    // The freed UPN can be reused; a taken one cannot be renamed onto.
    create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "second adele 1",
    )
    .await;
    let clash = patch(
        &app,
        &format!("/v1.0/users/{id}"),
        &token,
        json!({"userPrincipalName": "ADELEV@contoso.com"}),
    )
    .await;
    assert_eq!(clash.status, StatusCode::BAD_REQUEST, "{}", clash.text);
    assert!(clash.error_message().contains("userPrincipalName"));
    assert_eq!(
        get(&app, &format!("/v1.0/users/{id}"), &token).await.body["userPrincipalName"],
        "adele.vance@contoso.com"
    );
}

#[tokio::test]
async fn user_delete_is_204_then_404() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let path = format!("/v1.0/users/{}", created["id"].as_str().unwrap());
    let r = delete(&app, &path, &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(get(&app, &path, &token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/v1.0/users/AdeleV@contoso.com", &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&app, &path, &token).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!can_sign_in(&app, "AdeleV@contoso.com", "adele password 1").await);
}

#[tokio::test]
async fn user_deleted_with_role_and_membership_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/v1.0",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let group = post(&app, "/v1.0/groups", &token, json!({"displayName": "Sales", "mailEnabled": false, "mailNickname": "sales", "securityEnabled": true})).await;
    let gid = group.body["id"].as_str().unwrap();
    let member =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    assert_eq!(
        post(
            &app,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            &token,
            member
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let role = json!({"principalId": id, "roleDefinitionId": GLOBAL_READER_TEMPLATE, "directoryScopeId": "/"});
    assert_eq!(
        post(
            &app,
            "/v1.0/roleManagement/directory/roleAssignments",
            &token,
            role
        )
        .await
        .status,
        StatusCode::CREATED
    );

    assert_eq!(
        delete(&app, &format!("/v1.0/users/{id}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let members = get(&app, &format!("/v1.0/groups/{gid}/members"), &token).await;
    assert_eq!(members.body["value"], json!([]));
    let assignments = get(
        &app,
        "/v1.0/roleManagement/directory/roleAssignments",
        &token,
    )
    .await;
    assert_eq!(assignments.body["value"], json!([]));
    let uid = gatepass::ids::UserId::parse(id).unwrap();
    let roles = app
        .state
        .directory
        .roles_of(uid, app.clock.now())
        .await
        .unwrap();
    assert!(roles.is_empty(), "a deleted user keeps no role: {roles:?}");
}

#[tokio::test]
async fn user_routes_under_beta_behave_like_v1() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let created = create_user(
        &app,
        "/beta",
        &token,
        "AdeleV@contoso.com",
        "adele password 1",
    )
    .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        get(&app, &format!("/beta/users/{id}"), &token).await.body["userPrincipalName"],
        "AdeleV@contoso.com"
    );
    assert_eq!(
        get(&app, "/beta/users/AdeleV@contoso.com", &token)
            .await
            .body["id"],
        id
    );
    let list = get(
        &app,
        "/beta/users?$filter=userPrincipalName eq 'adelev@contoso.com'",
        &token,
    )
    .await;
    assert_eq!(
        list.body["@odata.context"],
        format!("{}/beta/$metadata#users", app.issuer)
    );
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    let dup = post(
        &app,
        "/beta/users",
        &token,
        example_user("ADELEV@contoso.com", "x password 1"),
    )
    .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    let r = patch(
        &app,
        &format!("/beta/users/{id}"),
        &token,
        json!({"displayName": "Beta Adele", "passwordProfile": {"password": "beta password 2"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        get(&app, &format!("/v1.0/users/{id}"), &token).await.body["displayName"],
        "Beta Adele"
    );
    assert!(can_sign_in(&app, "AdeleV@contoso.com", "beta password 2").await);
    let revoke = post(
        &app,
        &format!("/beta/users/{id}/revokeSignInSessions"),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text);
    assert_eq!(
        delete(&app, &format!("/beta/users/{id}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&app, &format!("/beta/users/{id}"), &token).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn graph_collections_under_both_versions_answer_with_their_context() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    for version in ["v1.0", "beta"] {
        for set in [
            "users",
            "groups",
            "roleManagement/directory/roleAssignments",
            "roleManagement/directory/roleDefinitions",
            "auditLogs/signIns",
            "auditLogs/directoryAudits",
        ] {
            let r = get(&app, &format!("/{version}/{set}"), &token).await;
            assert_eq!(r.status, StatusCode::OK, "/{version}/{set}: {}", r.text);
            assert_eq!(
                r.body["@odata.context"],
                format!("{}/{version}/$metadata#{set}", app.issuer)
            );
            assert!(r.body["value"].is_array());
        }
    }
    let unknown = get(&app, "/v1.0/applications", &token).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.error_code(), "BadRequest");
}

// --- groups -----------------------------------------------------------------

#[tokio::test]
async fn group_create_list_get_round_trip() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let body = json!({
        "description": "Self help community for library",
        "displayName": "Library Assist",
        "groupTypes": [],
        "mailEnabled": false,
        "mailNickname": "library",
        "securityEnabled": true
    });
    let r = post(&app, "/v1.0/groups", &token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["displayName"], "Library Assist");
    assert_eq!(r.body["description"], "Self help community for library");
    assert_eq!(r.body["mailNickname"], "library");
    assert_eq!(r.body["securityEnabled"], true);
    assert_eq!(r.body["mailEnabled"], false);

    let got = get(&app, &format!("/v1.0/groups/{id}"), &token).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, r.body);
    let list = get(&app, "/v1.0/groups", &token).await;
    let ids: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(
        get(&app, &format!("/beta/groups/{id}"), &token)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, &format!("/v1.0/groups/{}", UNKNOWN_ID), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let mail = post(&app, "/v1.0/groups", &token, json!({"displayName": "M365", "mailEnabled": true, "mailNickname": "m", "securityEnabled": false})).await;
    assert_eq!(
        mail.status,
        StatusCode::BAD_REQUEST,
        "only security groups: {}",
        mail.text
    );
}

#[tokio::test]
async fn group_member_ref_add_list_duplicate_and_remove() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("member@contoso.com", None).await;
    let group = post(&app, "/v1.0/groups", &token, json!({"displayName": "Sales", "mailEnabled": false, "mailNickname": "sales", "securityEnabled": true})).await;
    let gid = group.body["id"].as_str().unwrap();
    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", user.id)});

    let added = post(
        &app,
        &format!("/v1.0/groups/{gid}/members/$ref"),
        &token,
        reference.clone(),
    )
    .await;
    assert_eq!(added.status, StatusCode::NO_CONTENT, "{}", added.text);
    let members = get(&app, &format!("/v1.0/groups/{gid}/members"), &token).await;
    assert_eq!(members.status, StatusCode::OK);
    let value = members.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["id"], user.id.to_string());
    assert_eq!(value[0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(value[0]["userPrincipalName"], "member@contoso.com");

    let dup = post(
        &app,
        &format!("/v1.0/groups/{gid}/members/$ref"),
        &token,
        reference,
    )
    .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST, "{}", dup.text);
    assert!(
        dup.error_message().contains("already exist"),
        "{}",
        dup.text
    );

    let unknown = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", UNKNOWN_ID)});
    let r = post(
        &app,
        &format!("/v1.0/groups/{gid}/members/$ref"),
        &token,
        unknown,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "an unknown member: {}",
        r.text
    );

    let removed = delete(
        &app,
        &format!("/v1.0/groups/{gid}/members/{}/$ref", user.id),
        &token,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let members = get(&app, &format!("/v1.0/groups/{gid}/members"), &token).await;
    assert_eq!(members.body["value"], json!([]));
    let again = delete(
        &app,
        &format!("/v1.0/groups/{gid}/members/{}/$ref", user.id),
        &token,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

// --- role assignments -------------------------------------------------------

const ASSIGNMENTS: &str = "/v1.0/roleManagement/directory/roleAssignments";

#[tokio::test]
async fn role_assignment_by_template_id_is_201_and_listed_by_principal() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("reader@contoso.com", None).await;
    let other = app.create_user("other@contoso.com", None).await;
    app.grant_role(&other, BuiltinRole::ReportsReader).await;
    let body = json!({
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "roleDefinitionId": GLOBAL_READER_TEMPLATE,
        "principalId": user.id.to_string(),
        "directoryScopeId": "/"
    });
    let r = post(&app, ASSIGNMENTS, &token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["@odata.type"],
        "#microsoft.graph.unifiedRoleAssignment"
    );
    assert_eq!(r.body["roleDefinitionId"], GLOBAL_READER_TEMPLATE);
    assert_eq!(r.body["principalId"], user.id.to_string());
    assert_eq!(r.body["directoryScopeId"], "/");
    let id = r.body["id"].as_str().unwrap();

    let got = get(&app, &format!("{ASSIGNMENTS}/{id}"), &token).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, r.body);

    let filtered = app
        .http
        .get(app.url(ASSIGNMENTS))
        .query(&[("$filter", format!("principalId eq '{}'", user.id))])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let value = filtered["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{filtered}");
    assert_eq!(value[0]["id"], id);
    let all = get(&app, ASSIGNMENTS, &token).await;
    assert_eq!(
        all.body["value"].as_array().unwrap().len(),
        2,
        "the filter narrowed a longer list"
    );
}

#[tokio::test]
async fn role_assignment_by_display_name_resolves_to_template_id() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("authadmin@contoso.com", None).await;
    let body = json!({"roleDefinitionId": "Authentication Administrator", "principalId": user.id.to_string(), "directoryScopeId": "/"});
    let r = post(&app, ASSIGNMENTS, &token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["@odata.type"],
        "#microsoft.graph.unifiedRoleAssignment"
    );
    assert_eq!(r.body["roleDefinitionId"], AUTH_ADMIN_TEMPLATE);
    let roles = app
        .state
        .directory
        .roles_of(user.id, app.clock.now())
        .await
        .unwrap();
    assert!(roles.contains(&BuiltinRole::AuthenticationAdministrator));
}

#[tokio::test]
async fn role_assignment_duplicate_is_409() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("reader@contoso.com", None).await;
    let by_id = json!({"roleDefinitionId": GLOBAL_READER_TEMPLATE, "principalId": user.id.to_string(), "directoryScopeId": "/"});
    assert_eq!(
        post(&app, ASSIGNMENTS, &token, by_id.clone()).await.status,
        StatusCode::CREATED
    );
    let again = post(&app, ASSIGNMENTS, &token, by_id).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    // The display name names the same role: still a duplicate.
    let by_name = json!({"roleDefinitionId": "global reader", "principalId": user.id.to_string()});
    assert_eq!(
        post(&app, ASSIGNMENTS, &token, by_name).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        get(&app, ASSIGNMENTS, &token).await.body["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn role_assignment_unknown_role_is_400_naming_role_definition_id() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("x@contoso.com", None).await;
    for role in ["Supreme Leader", "00000000-0000-0000-0000-000000000000"] {
        let body = json!({"roleDefinitionId": role, "principalId": user.id.to_string(), "directoryScopeId": "/"});
        let r = post(&app, ASSIGNMENTS, &token, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{role}: {}", r.text);
        assert_eq!(r.error_code(), "Request_BadRequest");
        assert!(r.error_message().contains("roleDefinitionId"), "{}", r.text);
    }
    assert_eq!(
        get(&app, ASSIGNMENTS, &token).await.body["value"],
        json!([])
    );
}

#[tokio::test]
async fn role_assignment_delete_is_204_and_removes_the_role() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("reader@contoso.com", None).await;
    let body = json!({"roleDefinitionId": GLOBAL_READER_TEMPLATE, "principalId": user.id.to_string(), "directoryScopeId": "/"});
    let created = post(&app, ASSIGNMENTS, &token, body.clone()).await;
    let id = created.body["id"].as_str().unwrap();
    let r = delete(&app, &format!("{ASSIGNMENTS}/{id}"), &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        get(&app, &format!("{ASSIGNMENTS}/{id}"), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&app, &format!("{ASSIGNMENTS}/{id}"), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.state
            .directory
            .roles_of(user.id, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    // And the role can be assigned again.
    assert_eq!(
        post(&app, ASSIGNMENTS, &token, body).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn role_definitions_list_the_builtin_roles() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = get(
        &app,
        "/v1.0/roleManagement/directory/roleDefinitions",
        &token,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let value = r.body["value"].as_array().unwrap();
    assert_eq!(value.len(), BuiltinRole::ALL.len());
    for (id, name) in [
        (
            "62e90394-69f5-4237-9190-012177145e10",
            "Global Administrator",
        ),
        (GLOBAL_READER_TEMPLATE, "Global Reader"),
        (AUTH_ADMIN_TEMPLATE, "Authentication Administrator"),
        (
            "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
            "Privileged Authentication Administrator",
        ),
    ] {
        let def = value
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(def["displayName"], name);
        assert_eq!(def["templateId"], id);
        assert_eq!(def["isBuiltIn"], true);
    }
}

// --- /me and revokeSignInSessions -------------------------------------------

#[tokio::test]
async fn me_with_delegated_token_returns_the_signed_in_user() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("adele@contoso.com", Some("adele password 1"))
        .await;
    let token = delegated(
        &app,
        "adele@contoso.com",
        "adele password 1",
        "openid User.Read",
    )
    .await;
    for base in ["/v1.0", "/beta"] {
        let r = get(&app, &format!("{base}/me"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["id"], user.id.to_string());
        assert_eq!(r.body["userPrincipalName"], "adele@contoso.com");
    }
}

#[tokio::test]
async fn me_with_application_token_is_400_with_graph_message() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = get(&app, "/v1.0/me", &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.error_code(), "BadRequest");
    assert_eq!(
        r.error_message(),
        "/me request is only valid with delegated authentication flow."
    );
    let revoke = post(&app, "/v1.0/me/revokeSignInSessions", &token, json!({})).await;
    assert_eq!(revoke.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        revoke.error_message(),
        "/me request is only valid with delegated authentication flow."
    );
}

async fn userinfo_status(app: &TestApp, access: &str) -> StatusCode {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn me_revoke_sign_in_sessions_kills_refresh_and_access_tokens() {
    let app = TestApp::spawn().await;
    app.create_user("adele@contoso.com", Some("adele password 1"))
        .await;
    let tokens = app
        .user_tokens(
            "adele@contoso.com",
            "adele password 1",
            "openid offline_access User.Read",
        )
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");
    assert_eq!(userinfo_status(&app, access).await, StatusCode::OK);

    let r = post(&app, "/v1.0/me/revokeSignInSessions", access, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], true);

    let refreshed = app.refresh(refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&app, "/v1.0/me", access).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The user can sign in again afresh.
    assert!(can_sign_in(&app, "adele@contoso.com", "adele password 1").await);
}

#[tokio::test]
async fn user_revoke_sign_in_sessions_by_app_kills_the_users_tokens() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("adele@contoso.com", Some("adele password 1"))
        .await;
    let bystander = app
        .create_user("bob@contoso.com", Some("bob password 1"))
        .await;
    let tokens = app
        .user_tokens(
            "adele@contoso.com",
            "adele password 1",
            "openid offline_access",
        )
        .await;
    let other = app
        .user_tokens("bob@contoso.com", "bob password 1", "openid")
        .await;
    let token = automation(&app).await;

    let r = post(
        &app,
        &format!("/v1.0/users/{}/revokeSignInSessions", user.id),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], true);
    assert_eq!(
        app.refresh(tokens["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo_status(&app, tokens["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        userinfo_status(&app, other["access_token"].as_str().unwrap()).await,
        StatusCode::OK,
        "{} is not affected",
        bystander.user_principal_name
    );

    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let denied = post(
        &app,
        &format!("/v1.0/users/{}/revokeSignInSessions", bystander.id),
        &reader,
        json!({}),
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        userinfo_status(&app, other["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

// --- audit logs -------------------------------------------------------------

#[tokio::test]
async fn sign_in_log_shows_success_and_failure_without_passwords() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("adele@contoso.com", Some("adele password 1"))
        .await;
    assert!(can_sign_in(&app, "adele@contoso.com", "adele password 1").await);
    assert!(!can_sign_in(&app, "adele@contoso.com", "wrong password 9").await);
    let token = automation(&app).await;

    let r = get(
        &app,
        "/v1.0/auditLogs/signIns?$filter=userPrincipalName eq 'adele@contoso.com'",
        &token,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let entries = r.body["value"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", r.text);
    let ok = entries
        .iter()
        .find(|e| e["status"]["errorCode"] == 0)
        .expect("a successful sign-in");
    let failed = entries
        .iter()
        .find(|e| e["status"]["errorCode"] != 0)
        .expect("a failed sign-in");
    for e in [ok, failed] {
        assert_eq!(e["userPrincipalName"], "adele@contoso.com");
        assert_eq!(e["userId"], user.id.to_string());
        assert_eq!(e["appId"], RP_ID);
        assert_eq!(e["ipAddress"], "127.0.0.1");
        assert_eq!(
            e["authenticationDetails"][0]["authenticationMethod"],
            "Password"
        );
    }
    assert!(failed["status"]["errorCode"].as_u64().unwrap() > 0);
    assert_eq!(ok["authenticationDetails"][0]["succeeded"], true);
    assert_eq!(failed["authenticationDetails"][0]["succeeded"], false);

    let all = get(&app, "/v1.0/auditLogs/signIns", &token).await;
    for secret in ["adele password 1", "wrong password 9"] {
        assert!(
            !all.text.contains(secret),
            "the sign-in log contains a password"
        );
    }
}

/// Finds the directory audit `activity` targeting `target_id`.
fn audit<'a>(entries: &'a [Value], activity: &str, target_id: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| {
            e["activityDisplayName"] == activity && e["targetResources"][0]["id"] == target_id
        })
        .unwrap_or_else(|| panic!("no '{activity}' for {target_id} in {entries:#?}"))
}

#[tokio::test]
async fn directory_audit_records_changes_with_initiator_and_no_passwords() {
    let app = TestApp::spawn().await;
    let app_token = automation(&app).await;
    let admin = app
        .create_user("admin@contoso.com", Some("admin password 1"))
        .await;
    app.grant_role(&admin, BuiltinRole::GlobalAdministrator)
        .await;
    let user_token = delegated(&app, "admin@contoso.com", "admin password 1", ALL_SCOPES).await;

    let mut passwords = vec!["admin password 1".to_owned()];
    let mut targets = Vec::new();
    for (caller, token) in [("app", &app_token), ("user", &user_token)] {
        let upn = format!("{caller}-made@contoso.com");
        let (first, second) = (
            format!("{caller} first password"),
            format!("{caller} second password"),
        );
        let created = create_user(&app, "/v1.0", token, &upn, &first).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/v1.0/users/{id}");
        let r = patch(
            &app,
            &path,
            token,
            json!({"displayName": "Renamed", "passwordProfile": {"password": second}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let role = json!({"roleDefinitionId": GLOBAL_READER_TEMPLATE, "principalId": id, "directoryScopeId": "/"});
        assert_eq!(
            post(&app, ASSIGNMENTS, token, role).await.status,
            StatusCode::CREATED
        );
        assert_eq!(
            delete(&app, &path, token).await.status,
            StatusCode::NO_CONTENT
        );
        passwords.extend([first, second]);
        targets.push((caller, id, upn));
    }

    let r = get(&app, "/v1.0/auditLogs/directoryAudits", &app_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let entries = r.body["value"].as_array().unwrap();
    for (caller, id, upn) in &targets {
        for activity in [
            "Add user",
            "Update user",
            "Add member to role",
            "Delete user",
        ] {
            let e = audit(entries, activity, id);
            assert_eq!(e["result"], "success");
            assert_eq!(e["targetResources"][0]["type"], "User");
            match *caller {
                "app" => {
                    assert_eq!(e["initiatedBy"]["app"]["appId"], AUTOMATION_ID, "{e}");
                    assert!(
                        e["initiatedBy"].get("user").is_none_or(Value::is_null),
                        "{e}"
                    );
                }
                _ => {
                    assert_eq!(
                        e["initiatedBy"]["user"]["userPrincipalName"], "admin@contoso.com",
                        "{e}"
                    );
                    assert_eq!(e["initiatedBy"]["user"]["id"], admin.id.to_string());
                    assert!(
                        e["initiatedBy"].get("app").is_none_or(Value::is_null),
                        "{e}"
                    );
                }
            }
        }
        assert_eq!(
            audit(entries, "Add user", id)["targetResources"][0]["userPrincipalName"],
            upn.as_str()
        );
        assert_eq!(audit(entries, "Add user", id)["category"], "UserManagement");
        let role = audit(entries, "Add member to role", id);
        assert_eq!(role["category"], "RoleManagement");
        assert!(
            role["additionalDetails"]
                .as_array()
                .unwrap()
                .iter()
                .any(|kv| kv["value"] == "Global Reader"),
            "{role}"
        );
    }

    let sign_ins = get(&app, "/v1.0/auditLogs/signIns", &app_token).await;
    for secret in &passwords {
        assert!(
            !r.text.contains(secret.as_str()),
            "a directory audit contains a password"
        );
        assert!(
            !sign_ins.text.contains(secret.as_str()),
            "the sign-in log contains a password"
        );
    }
}

// --- authorization matrix ---------------------------------------------------

#[tokio::test]
async fn users_create_by_app_without_write_permission_is_403_naming_permission() {
    let app = TestApp::spawn().await;
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let r = post(
        &app,
        "/v1.0/users",
        &reader,
        example_user("x@contoso.com", "x password 1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(keys(&r.body["error"]), set(&["code", "message"]));
    assert_eq!(r.error_code(), "Authorization_RequestDenied");
    assert!(
        r.error_message().contains("User.ReadWrite.All"),
        "{}",
        r.text
    );
    let user = app.create_user("y@contoso.com", None).await;
    let path = format!("/v1.0/users/{}", user.id);
    assert_eq!(
        patch(&app, &path, &reader, json!({"displayName": "Z"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(&app, &path, &reader).await.status,
        StatusCode::FORBIDDEN
    );
    // Nothing was written.
    let automation = automation(&app).await;
    assert_eq!(
        get(&app, "/v1.0/users/x@contoso.com", &automation)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &path, &automation).await.body["displayName"],
        "Test y@contoso.com"
    );
    // And other areas need their own permissions.
    let groups = get(&app, "/v1.0/groups", &reader).await;
    assert_eq!(groups.status, StatusCode::FORBIDDEN);
    assert!(
        groups.error_message().contains("Group.Read.All"),
        "{}",
        groups.text
    );
    let audit = get(&app, "/v1.0/auditLogs/signIns", &reader).await;
    assert_eq!(audit.status, StatusCode::FORBIDDEN);
    assert!(
        audit.error_message().contains("AuditLog.Read.All"),
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn users_read_by_reader_app_is_allowed() {
    let app = TestApp::spawn().await;
    let user = app.create_user("y@contoso.com", None).await;
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let list = get(&app, "/v1.0/users", &reader).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["value"][0]["id"], user.id.to_string());
    let one = get(&app, "/v1.0/users/y@contoso.com", &reader).await;
    assert_eq!(one.status, StatusCode::OK);
}

#[tokio::test]
async fn graph_writes_by_delegated_user_without_role_are_403_naming_roles() {
    let app = TestApp::spawn().await;
    let token = admin_with(&app, "nobody@contoso.com", None).await;
    let target = app
        .create_user("target@contoso.com", Some("target password 1"))
        .await;
    let tpath = format!("/v1.0/users/{}", target.id);

    let create = post(
        &app,
        "/v1.0/users",
        &token,
        example_user("x@contoso.com", "x password 1"),
    )
    .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN, "{}", create.text);
    assert_eq!(create.error_code(), "Authorization_RequestDenied");
    for role in ["Global Administrator", "User Administrator"] {
        assert!(create.error_message().contains(role), "{}", create.text);
    }
    for r in [
        patch(&app, &tpath, &token, json!({"displayName": "Hacked"})).await,
        patch(
            &app,
            &tpath,
            &token,
            json!({"passwordProfile": {"password": "taken over 1"}}),
        )
        .await,
        delete(&app, &tpath, &token).await,
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(
            r.error_message().contains("User Administrator"),
            "{}",
            r.text
        );
    }
    let group = post(&app, "/v1.0/groups", &token, json!({"displayName": "G", "mailEnabled": false, "mailNickname": "g", "securityEnabled": true})).await;
    assert_eq!(group.status, StatusCode::FORBIDDEN);
    assert!(
        group.error_message().contains("Groups Administrator"),
        "{}",
        group.text
    );
    let role = json!({"roleDefinitionId": "Global Administrator", "principalId": target.id.to_string(), "directoryScopeId": "/"});
    let escalate = post(&app, ASSIGNMENTS, &token, role).await;
    assert_eq!(escalate.status, StatusCode::FORBIDDEN);
    assert!(
        escalate
            .error_message()
            .contains("Privileged Role Administrator"),
        "{}",
        escalate.text
    );
    let audit = get(&app, "/v1.0/auditLogs/directoryAudits", &token).await;
    assert_eq!(audit.status, StatusCode::FORBIDDEN);
    assert!(
        audit.error_message().contains("Global Reader"),
        "{}",
        audit.text
    );

    // Reading users needs only the scope; nothing above was written.
    let read = get(&app, &tpath, &token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["displayName"], "Test target@contoso.com");
    assert!(can_sign_in(&app, "target@contoso.com", "target password 1").await);
    assert!(
        app.state
            .directory
            .roles_of(target.id, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn users_write_by_delegated_admin_without_scope_is_403_naming_scope() {
    let app = TestApp::spawn().await;
    let admin = app
        .create_user("ga@contoso.com", Some("ga password 1"))
        .await;
    app.grant_role(&admin, BuiltinRole::GlobalAdministrator)
        .await;
    let token = delegated(&app, "ga@contoso.com", "ga password 1", "openid User.Read").await;
    let r = post(
        &app,
        "/v1.0/users",
        &token,
        example_user("x@contoso.com", "x password 1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.error_message().contains("User.ReadWrite.All"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn users_write_by_delegated_global_or_user_administrator_is_allowed() {
    let app = TestApp::spawn().await;
    for (upn, role) in [
        ("ga@contoso.com", BuiltinRole::GlobalAdministrator),
        ("ua@contoso.com", BuiltinRole::UserAdministrator),
    ] {
        let token = admin_with(&app, upn, Some(role)).await;
        let made = format!("made-by-{upn}");
        let created = create_user(&app, "/v1.0", &token, &made, "made password 1").await;
        let path = format!("/v1.0/users/{}", created["id"].as_str().unwrap());
        let r = patch(
            &app,
            &path,
            &token,
            json!({"displayName": "Changed", "accountEnabled": false}),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{upn}: {}", r.text);
        assert_eq!(
            get(&app, &path, &token).await.body["displayName"],
            "Changed"
        );
        assert_eq!(
            delete(&app, &path, &token).await.status,
            StatusCode::NO_CONTENT,
            "{upn}"
        );
        assert_eq!(get(&app, &path, &token).await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn users_delete_of_self_by_delegated_admin_is_refused() {
    let app = TestApp::spawn().await;
    let token = admin_with(
        &app,
        "ga@contoso.com",
        Some(BuiltinRole::GlobalAdministrator),
    )
    .await;
    let r = delete(&app, "/v1.0/users/ga@contoso.com", &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(get(&app, "/v1.0/me", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn global_reader_reads_audit_and_role_assignments_but_cannot_write() {
    let app = TestApp::spawn().await;
    let token = admin_with(&app, "gr@contoso.com", Some(BuiltinRole::GlobalReader)).await;
    let target = app.create_user("target@contoso.com", None).await;
    for path in [
        "/v1.0/auditLogs/signIns",
        "/v1.0/auditLogs/directoryAudits",
        ASSIGNMENTS,
        "/v1.0/roleManagement/directory/roleDefinitions",
        "/v1.0/users",
    ] {
        let r = get(&app, path, &token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let signins = get(&app, "/v1.0/auditLogs/signIns", &token).await;
    assert!(
        signins.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["userPrincipalName"] == "gr@contoso.com"),
        "the reader sees its own sign-in"
    );
    let assignments = get(&app, ASSIGNMENTS, &token).await;
    assert!(
        assignments.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["roleDefinitionId"] == GLOBAL_READER_TEMPLATE),
        "{}",
        assignments.text
    );

    let role = json!({"roleDefinitionId": "Global Administrator", "principalId": target.id.to_string(), "directoryScopeId": "/"});
    let escalate = post(&app, ASSIGNMENTS, &token, role).await;
    assert_eq!(escalate.status, StatusCode::FORBIDDEN, "{}", escalate.text);
    let own = assignments.body["value"][0]["id"].as_str().unwrap();
    assert_eq!(
        delete(&app, &format!("{ASSIGNMENTS}/{own}"), &token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &app,
            "/v1.0/users",
            &token,
            example_user("x@contoso.com", "x password 1")
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        patch(
            &app,
            &format!("/v1.0/users/{}", target.id),
            &token,
            json!({"accountEnabled": false})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        app.state
            .directory
            .roles_of(target.id, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn graph_with_rp_access_token_is_401_invalid_authentication_token() {
    let app = TestApp::spawn().await;
    let admin = app
        .create_user("ga@contoso.com", Some("ga password 1"))
        .await;
    app.grant_role(&admin, BuiltinRole::GlobalAdministrator)
        .await;
    let tokens = app
        .user_tokens("ga@contoso.com", "ga password 1", "openid")
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(crate::oidc::jwt_payload(access)["aud"], RP_ID);
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::OK,
        "the token itself is live"
    );
    for r in [
        get(&app, "/v1.0/users", access).await,
        get(&app, "/v1.0/me", access).await,
        post(
            &app,
            "/v1.0/users",
            access,
            example_user("x@contoso.com", "x password 1"),
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.error_code(), "InvalidAuthenticationToken");
    }
    let none = app.http.get(app.url("/v1.0/users")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let garbage = get(&app, "/v1.0/users", "not-a-token").await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert_eq!(garbage.error_code(), "InvalidAuthenticationToken");
}

#[tokio::test]
async fn graph_with_delegated_token_of_deleted_user_is_401() {
    let app = TestApp::spawn().await;
    let token = admin_with(
        &app,
        "ga@contoso.com",
        Some(BuiltinRole::GlobalAdministrator),
    )
    .await;
    assert_eq!(
        get(&app, "/v1.0/users", &token).await.status,
        StatusCode::OK
    );
    let automation = automation(&app).await;
    assert_eq!(
        delete(&app, "/v1.0/users/ga@contoso.com", &automation)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    for r in [
        get(&app, "/v1.0/users", &token).await,
        get(&app, "/v1.0/me", &token).await,
        post(
            &app,
            "/v1.0/users",
            &token,
            example_user("x@contoso.com", "x password 1"),
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.error_code(), "InvalidAuthenticationToken");
    }
    // A new user with the same UPN does not inherit the old token.
    app.create_user("ga@contoso.com", Some("ga password 2"))
        .await;
    assert_eq!(
        get(&app, "/v1.0/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// The user list is read a page at a time from the store: 250 users come
/// back in three pages of `$top=100`, each user once.
#[tokio::test]
async fn user_list_pages_through_many_users_each_once() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    for i in 0..250 {
        app.create_user(&format!("many{i:03}@contoso.com"), None)
            .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    let mut next = Some("/v1.0/users?$top=100".to_owned());
    while let Some(url) = next.take() {
        let page = get(&app, &url, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.text);
        for u in page.body["value"].as_array().unwrap() {
            assert!(
                seen.insert(u["id"].as_str().unwrap().to_owned()),
                "{u} twice"
            );
        }
        pages += 1;
        next = page.body["@odata.nextLink"].as_str().map(str::to_owned);
        assert!(pages <= 4, "paging does not terminate");
    }
    assert_eq!(seen.len(), 250);
    assert!(pages == 3 || pages == 4, "{pages} pages");
}
