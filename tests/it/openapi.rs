//! `/openapi.json` against the code: every routed API path is described
//! and every described operation is routed (both ways, method by method);
//! every Graph operation names the permissions it needs, and those
//! permissions are the ones the handlers accept; live responses of every
//! kind validate against the described schemas.

use crate::harness::*;
use gatepass::clock::Clock;
use gatepass::config::GRAPH_PERMISSIONS;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
/// A well-formed id that names nothing.
const NOBODY: &str = "00000000-0000-4000-8000-000000000000";

async fn description(app: &TestApp) -> Value {
    let r = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    r.json().await.unwrap()
}

/// Every API path the routers serve, as the description writes it.
fn routed_paths() -> BTreeSet<String> {
    let graph = gatepass::graph::route_table()
        .into_iter()
        .map(|(p, _)| format!("/v1.0{p}"));
    let api = gatepass::web::api_route_table()
        .into_iter()
        .map(|(p, _)| p.to_owned());
    graph.chain(api).chain(["/metrics".to_owned()]).collect()
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(NOBODY);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn call(app: &TestApp, token: &str, method: &str, path: &str) -> (u16, Value) {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut req = app
        .http
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    if method == Method::POST || method == Method::PATCH || method == Method::PUT {
        req = req.json(&json!({}));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_routed_path_is_described_and_every_described_path_is_routed() {
    let app = TestApp::spawn().await;
    let doc = description(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["servers"][0]["url"], app.issuer);
    let described: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed = routed_paths();
    assert_eq!(
        routed.difference(&described).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routed but not described"
    );
    assert_eq!(
        described.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "described but not routed"
    );
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: operationId {id:?} is missing or repeated"
            );
        }
    }
}

/// Method by method: a described operation is answered by a handler (not
/// 405, not the Graph API's "no such segment"), any other method is 405;
/// `/beta/` answers exactly as `/v1.0/`.
#[tokio::test]
async fn every_described_method_is_routed_and_no_other() {
    let app = TestApp::spawn().await;
    let doc = description(&app).await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    for path in routed_paths() {
        let item = &doc["paths"][&path];
        for method in METHODS {
            let url = concrete(&path);
            let (status, body) = call(&app, &token, method, &url).await;
            if item.get(method).is_some() {
                assert_ne!(status, 405, "{method} {path} is described but not routed");
                let unrouted = body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not part of the Gatepass Graph API"));
                assert!(!unrouted, "{method} {path}: {body}");
                if let Some(v1) = url.strip_prefix("/v1.0") {
                    let (beta, _) = call(&app, &token, method, &format!("/beta{v1}")).await;
                    assert_eq!(beta, status, "{method} /beta{v1}");
                }
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not described");
            }
        }
    }
}

/// One `client_credentials` client per Graph permission, and one with none.
fn permission_clients() -> String {
    let mut config = String::new();
    for p in GRAPH_PERMISSIONS.iter().map(|p| Some(*p)).chain([None]) {
        let (id, permissions) = match p {
            Some(p) => (format!("holds-{p}"), format!("[\"{p}\"]")),
            None => ("holds-nothing".to_owned(), "[]".to_owned()),
        };
        config.push_str(&format!(
            "\n[[clients]]\nclient_id = \"{id}\"\nclient_secret = \"{id}-secret-0123456789\"\n\
             grant_types = [\"client_credentials\"]\napp_permissions = {permissions}\n"
        ));
    }
    config
}

async fn token_holding(app: &TestApp, permission: Option<&str>) -> String {
    let id = match permission {
        Some(p) => format!("holds-{p}"),
        None => "holds-nothing".to_owned(),
    };
    app.app_token(&id, &format!("{id}-secret-0123456789")).await
}

/// The permissions each Graph operation is described with are exactly
/// what its handler checks: every read operation answers a token holding
/// any one of them, and refuses one holding none (403); every operation
/// refuses a token without permissions before it does anything.
#[tokio::test]
async fn each_operation_names_the_permissions_its_handler_accepts() {
    let app = TestApp::spawn_with(&permission_clients()).await;
    let doc = description(&app).await;
    let member = app.create_user("member@example.test", None).await;
    let group = app
        .state
        .directory
        .create_group("Readers".to_owned(), None, None, app.clock.now())
        .await
        .unwrap();
    let nothing = token_holding(&app, None).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(relative) = path.strip_prefix("/v1.0") else {
            continue;
        };
        for (method, op) in item.as_object().unwrap() {
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} does not say what it needs"));
            let permissions: Vec<&str> = security
                .iter()
                .filter_map(|s| s["application"].as_array())
                .flat_map(|scopes| scopes.iter().filter_map(Value::as_str))
                .collect();
            let url = format!("/v1.0{}", relative)
                .replace("/users/{id}", &format!("/users/{}", member.id))
                .replace("/groups/{id}", &format!("/groups/{}", group.id))
                .replace("{method}", NOBODY)
                .replace("{member}", NOBODY)
                .replace("{configurationId}", NOBODY)
                .replace("{id}", NOBODY);
            let (status, body) = call(&app, &nothing, method, &url).await;
            if relative == "/$batch" {
                // Each request inside is checked alone (tests/it/batch.rs).
                assert!(permissions.is_empty(), "$batch needs no permission itself");
                continue;
            }
            if relative.starts_with("/me") {
                assert!(permissions.is_empty(), "{path}: /me needs a user");
                assert_eq!(status, 400, "{method} {path}: {body}");
                continue;
            }
            assert!(
                !permissions.is_empty(),
                "{method} {path} names no permission"
            );
            assert_eq!(status, 403, "{method} {path} without permissions: {body}");
            if method != "get" {
                continue;
            }
            for p in &permissions {
                let token = token_holding(&app, Some(p)).await;
                let (status, body) = call(&app, &token, method, &url).await;
                assert_ne!(status, 403, "{method} {path} refused {p}: {body}");
                assert_ne!(status, 401, "{method} {path} with {p}: {body}");
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} permission checks ran");
}

/// The description's schema for a response, with the components its
/// `$ref`s point into.
pub(crate) fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Value {
    let responses = &doc["paths"][path][method]["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| panic!("{method} {path}: {status} is not described"));
    let mut schema = response["content"]["application/json"]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {path}: {status} has no JSON schema"
    );
    schema["components"] = doc["components"].clone();
    schema
}

struct Checker {
    app: TestApp,
    doc: Value,
    token: String,
    checked: usize,
}

impl Checker {
    /// Sends the request and checks the answer against the description
    /// of `path` (the template) and `method`; returns the body.
    async fn check(
        &mut self,
        method: &str,
        template: &str,
        url: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut req = self
            .app
            .http
            .request(m, self.app.url(url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, expect, "{method} {url}: {text}");
        if text.is_empty() {
            return Value::Null;
        }
        let value: Value = serde_json::from_str(&text).unwrap();
        let schema = response_schema(&self.doc, template, method, status);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {url} ({status}) contradicts the description:\n{}\n{value:#}",
            errors.join("\n")
        );
        self.checked += 1;
        value
    }
}

/// Live answers of every kind of resource, and of failures, validate
/// against their schemas (closed objects: an undocumented property fails).
#[tokio::test]
async fn live_responses_match_the_described_schemas() {
    let app = TestApp::spawn().await;
    let doc = description(&app).await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let mut c = Checker {
        app,
        doc,
        token,
        checked: 0,
    };

    // Users.
    let user = c
        .check(
            "post",
            "/v1.0/users",
            "/v1.0/users",
            Some(
                json!({"userPrincipalName": "ada@example.test", "displayName": "Ada",
                        "passwordProfile": {"password": "correct horse battery staple"}}),
            ),
            201,
        )
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    c.check("get", "/v1.0/users", "/v1.0/users?$top=1", None, 200)
        .await;
    c.check(
        "get",
        "/v1.0/users/{id}",
        &format!("/v1.0/users/{id}"),
        None,
        200,
    )
    .await;
    c.check(
        "patch",
        "/v1.0/users/{id}",
        &format!("/v1.0/users/{id}"),
        Some(json!({"displayName": "Ada L."})),
        204,
    )
    .await;
    c.check(
        "get",
        "/v1.0/users/{id}",
        &format!("/v1.0/users/{NOBODY}"),
        None,
        404,
    )
    .await;
    c.check(
        "post",
        "/v1.0/users",
        "/v1.0/users",
        Some(json!({"displayName": "No UPN"})),
        400,
    )
    .await;

    // Authentication methods: a pass, the password, the requirements.
    let passes = format!("/v1.0/users/{id}/authentication/temporaryAccessPassMethods");
    let pass = c
        .check(
            "post",
            "/v1.0/users/{id}/authentication/temporaryAccessPassMethods",
            &passes,
            Some(json!({"lifetimeInMinutes": 60})),
            201,
        )
        .await;
    assert!(pass["temporaryAccessPass"].is_string());
    c.check(
        "get",
        "/v1.0/users/{id}/authentication/temporaryAccessPassMethods",
        &passes,
        None,
        200,
    )
    .await;
    c.check(
        "get",
        "/v1.0/users/{id}/authentication/temporaryAccessPassMethods/{method}",
        &format!("{passes}/{}", pass["id"].as_str().unwrap()),
        None,
        200,
    )
    .await;
    let methods = c
        .check(
            "get",
            "/v1.0/users/{id}/authentication/methods",
            &format!("/v1.0/users/{id}/authentication/methods"),
            None,
            200,
        )
        .await;
    assert_eq!(methods["value"].as_array().unwrap().len(), 2, "{methods}");
    c.check(
        "get",
        "/v1.0/users/{id}/authentication/fido2Methods",
        &format!("/v1.0/users/{id}/authentication/fido2Methods"),
        None,
        200,
    )
    .await;
    c.check(
        "get",
        "/v1.0/users/{id}/authentication/requirements",
        &format!("/v1.0/users/{id}/authentication/requirements"),
        None,
        200,
    )
    .await;
    let tap_policy = "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass";
    c.check("get", tap_policy, tap_policy, None, 200).await;
    c.check(
        "patch",
        tap_policy,
        tap_policy,
        Some(json!({"defaultLifetimeInMinutes": 5})),
        400,
    )
    .await;
    let fido2 =
        "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2";
    c.check("get", fido2, fido2, None, 200).await;
    c.check(
        "patch",
        fido2,
        fido2,
        Some(json!({"keyRestrictions": {"isEnforced": true, "enforcementType": "block", "aaGuids": []}})),
        204,
    )
    .await;
    c.check(
        "patch",
        fido2,
        fido2,
        Some(json!({"keyRestrictions": {"aaGuids": ["not-an-aaguid"]}})),
        400,
    )
    .await;
    let methods_policy = "/v1.0/policies/authenticationMethodsPolicy";
    c.check("get", methods_policy, methods_policy, None, 200)
        .await;
    c.check(
        "patch",
        methods_policy,
        methods_policy,
        Some(json!({"registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {"snoozeDurationInDays": 2}}})),
        204,
    )
    .await;
    c.check(
        "patch",
        methods_policy,
        methods_policy,
        Some(json!({"registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {"snoozeDurationInDays": 99}}})),
        400,
    )
    .await;

    // Groups and roles.
    let group = c
        .check(
            "post",
            "/v1.0/groups",
            "/v1.0/groups",
            Some(json!({"displayName": "Pilots", "mailEnabled": false, "securityEnabled": true})),
            201,
        )
        .await;
    let gid = group["id"].as_str().unwrap().to_owned();
    c.check(
        "post",
        "/v1.0/groups/{id}/members/$ref",
        &format!("/v1.0/groups/{gid}/members/$ref"),
        Some(json!({"@odata.id": format!("{}/v1.0/directoryObjects/{id}", c.app.issuer)})),
        204,
    )
    .await;
    c.check("get", "/v1.0/groups", "/v1.0/groups", None, 200)
        .await;
    c.check(
        "get",
        "/v1.0/groups/{id}/members",
        &format!("/v1.0/groups/{gid}/members"),
        None,
        200,
    )
    .await;
    let assignments = "/v1.0/roleManagement/directory/roleAssignments";
    let assignment = c
        .check(
            "post",
            assignments,
            assignments,
            Some(
                json!({"roleDefinitionId": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
                        "principalId": id, "directoryScopeId": "/"}),
            ),
            201,
        )
        .await;
    c.check("get", assignments, assignments, None, 200).await;
    c.check(
        "get",
        "/v1.0/roleManagement/directory/roleAssignments/{id}",
        &format!("{assignments}/{}", assignment["id"].as_str().unwrap()),
        None,
        200,
    )
    .await;
    c.check(
        "get",
        "/v1.0/roleManagement/directory/roleDefinitions",
        "/v1.0/roleManagement/directory/roleDefinitions",
        None,
        200,
    )
    .await;

    // Conditional access: a location, the strengths, a policy, What If.
    let ca = "/v1.0/identity/conditionalAccess";
    let locations: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/examples/named-locations.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let location = locations["value"][0].clone();
    c.check(
        "post",
        "/v1.0/identity/conditionalAccess/namedLocations",
        &format!("{ca}/namedLocations"),
        Some(location),
        201,
    )
    .await;
    c.check(
        "get",
        "/v1.0/identity/conditionalAccess/namedLocations",
        &format!("{ca}/namedLocations"),
        None,
        200,
    )
    .await;
    c.check(
        "get",
        "/v1.0/identity/conditionalAccess/authenticationStrength/policies",
        &format!("{ca}/authenticationStrength/policies"),
        None,
        200,
    )
    .await;
    let strengths: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/examples/ca-strengths.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut renamed = Vec::new();
    for strength in strengths["value"].as_array().unwrap() {
        let created = c
            .check(
                "post",
                "/v1.0/identity/conditionalAccess/authenticationStrength/policies",
                &format!("{ca}/authenticationStrength/policies"),
                Some(strength.clone()),
                201,
            )
            .await;
        renamed.push((strength["id"].clone(), created["id"].clone()));
    }
    // A strength's passkey-model restrictions.
    let configurations = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations";
    let configuration = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations/{configurationId}";
    let restricted = renamed[0].1.as_str().unwrap().to_owned();
    let list_url =
        format!("{ca}/authenticationStrength/policies/{restricted}/combinationConfigurations");
    let config = c
        .check(
            "post",
            configurations,
            &list_url,
            Some(
                json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
                "allowedAAGUIDs": ["cb69481e-8ff7-4039-93ec-0a2729a154a8"],
                "appliesToCombinations": ["fido2"]}),
            ),
            201,
        )
        .await;
    c.check("get", configurations, &list_url, None, 200).await;
    let item_url = format!("{list_url}/{}", config["id"].as_str().unwrap());
    c.check("get", configuration, &item_url, None, 200).await;
    c.check(
        "patch",
        configuration,
        &item_url,
        Some(json!({"allowedAAGUIDs": ["not an aaguid"]})),
        400,
    )
    .await;
    c.check("delete", configuration, &item_url, None, 204).await;
    c.check("get", configuration, &item_url, None, 404).await;
    // Created objects get Gatepass's ids: the policy names those.
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/examples/ca-recommended-tap-registration.json"
    ))
    .unwrap();
    for (old, new) in renamed {
        text = text.replace(old.as_str().unwrap(), new.as_str().unwrap());
    }
    let policy: Value = serde_json::from_str(&text).unwrap();
    let created = c
        .check(
            "post",
            "/v1.0/identity/conditionalAccess/policies",
            &format!("{ca}/policies"),
            Some(policy["value"][0].clone()),
            201,
        )
        .await;
    c.check(
        "get",
        "/v1.0/identity/conditionalAccess/policies/{id}",
        &format!("{ca}/policies/{}", created["id"].as_str().unwrap()),
        None,
        200,
    )
    .await;
    c.check(
        "get",
        "/v1.0/identity/conditionalAccess/policies",
        &format!("{ca}/policies"),
        None,
        200,
    )
    .await;
    c.check(
        "post",
        "/v1.0/identity/conditionalAccess/evaluate",
        &format!("{ca}/evaluate"),
        Some(json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": id},
            "signInContext": {"@odata.type": "#microsoft.graph.applicationContext",
                              "includeApplications": ["rp"]},
            "authenticationMethods": ["password"],
        })),
        200,
    )
    .await;

    // The logs: a failed sign-in, a sign-in, and the directory changes above.
    c.app
        .create_user("grace@example.test", Some("correct horse battery staple"))
        .await;
    let browser = c.app.browser();
    let rp = c.app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    assert!(
        browser
            .sign_in(&url, "grace@example.test", "not the password")
            .await
            .is_err()
    );
    c.app
        .user_tokens_in(
            &browser,
            "grace@example.test",
            "correct horse battery staple",
            "openid profile",
        )
        .await;
    let sign_ins = c
        .check(
            "get",
            "/v1.0/auditLogs/signIns",
            "/v1.0/auditLogs/signIns",
            None,
            200,
        )
        .await;
    assert!(!sign_ins["value"].as_array().unwrap().is_empty());
    c.check(
        "get",
        "/v1.0/auditLogs/directoryAudits",
        "/v1.0/auditLogs/directoryAudits?$top=2",
        None,
        200,
    )
    .await;
    c.check(
        "post",
        "/v1.0/users/{id}/revokeSignInSessions",
        &format!("/v1.0/users/{id}/revokeSignInSessions"),
        None,
        200,
    )
    .await;

    // Operations and OAuth.
    for path in [
        "/healthz",
        "/readyz",
        "/jwks",
        "/.well-known/openid-configuration",
    ] {
        c.check("get", path, path, None, 200).await;
    }
    c.check("get", "/v1.0/me", "/v1.0/me", None, 400).await;
    assert!(c.checked >= 35, "only {} responses checked", c.checked);
}

/// The token endpoint's answers (tokens, OAuth errors), introspection and
/// userinfo against their schemas.
#[tokio::test]
async fn oauth_responses_match_the_described_schemas() {
    let app = TestApp::spawn().await;
    let doc = description(&app).await;
    let validate = |path: &str, method: &str, status: u16, value: &Value| {
        let schema = response_schema(&doc, path, method, status);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} ({status}): {errors:?}\n{value:#}"
        );
    };
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some(AUTOMATION_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    validate("/token", "post", 200, &tokens);
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(AUTOMATION_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    validate("/token", "post", 401, &r.json().await.unwrap());

    let introspect = |token: String| {
        app.http
            .post(app.url("/introspect"))
            .basic_auth(INTROSPECTOR_ID, Some(INTROSPECTOR_SECRET))
            .form(&[("token", token)])
            .send()
    };
    let active: Value = introspect(tokens["access_token"].as_str().unwrap().to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
    validate("/introspect", "post", 200, &active);
    let inactive: Value = introspect("garbage".to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    validate("/introspect", "post", 200, &inactive);

    app.create_user("grace@example.test", Some("correct horse battery staple"))
        .await;
    let user = app
        .user_tokens(
            "grace@example.test",
            "correct horse battery staple",
            "openid profile email offline_access",
        )
        .await;
    validate("/token", "post", 200, &user);
    for method in ["get", "post"] {
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let r = app
            .http
            .request(m.clone(), app.url("/userinfo"))
            .bearer_auth(user["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        validate("/userinfo", method, 200, &r.json().await.unwrap());
        let r = app
            .http
            .request(m, app.url("/userinfo"))
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        validate("/userinfo", method, 401, &r.json().await.unwrap());
    }
}
