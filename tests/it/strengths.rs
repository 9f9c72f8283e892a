//! Authentication strengths narrowed to passkey models: Graph's
//! `combinationConfigurations` (`fido2CombinationConfiguration`,
//! `allowedAAGUIDs`) over HTTP — CRUD, validation, built-ins refused — and
//! What-If with `fido2:<aaguid>` through the API and the CLI.

use crate::harness::*;
use serde_json::{Value, json};

/// YubiKey 5 (NFC): the one model the strength allows.
const ALLOWED: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
/// Feitian ePass: a passkey of another model.
const OTHER: &str = "90a3ccdf-635c-4729-a248-9b709135078f";
const THIRD: &str = "ee882879-721c-4913-9775-3dfcce97072a";
const STRENGTHS: &str = "/v1.0/identity/conditionalAccess/authenticationStrength/policies";
const MULTIFACTOR: &str = "00000000-0000-0000-0000-000000000002";
/// An application that may read conditional access, not write it.
const CA_READER: &str = "ca-reader";
const CA_READER_SECRET: &str = "ca-reader-secret-0123456789";

struct Graph {
    app: TestApp,
    token: String,
}

impl Graph {
    async fn new() -> Graph {
        let app = TestApp::spawn_with(&format!(
            "\n[[clients]]\nclient_id = \"{CA_READER}\"\nclient_secret = \"{CA_READER_SECRET}\"\n\
             grant_types = [\"client_credentials\"]\napp_permissions = [\"Policy.Read.All\"]\n"
        ))
        .await;
        let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
        Graph { app, token }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .app
            .http
            .request(method, self.app.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    /// A custom strength: a passkey, or a one-time TAP.
    async fn strength(&self) -> String {
        let (status, created) = self
            .call(
                "POST",
                STRENGTHS,
                Some(json!({
                    "displayName": "Approved security keys",
                    "description": "A YubiKey 5, or a TAP to enrol one",
                    "allowedCombinations": ["fido2", "temporaryAccessPassOneTime"]
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    fn configurations(id: &str) -> String {
        format!("{STRENGTHS}/{id}/combinationConfigurations")
    }

    /// Restricts `fido2` of strength `id` to `aaguids`; the created object.
    async fn restrict(&self, id: &str, aaguids: &[&str]) -> Value {
        let (status, created) = self
            .call(
                "POST",
                &Self::configurations(id),
                Some(json!({
                    "@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
                    "allowedAAGUIDs": aaguids,
                    "appliesToCombinations": ["fido2"]
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created
    }
}

fn error_target(body: &Value) -> &str {
    body["error"]["target"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn combination_configurations_crud_is_stored_in_the_strength() {
    let g = Graph::new().await;
    let id = g.strength().await;
    let path = Graph::configurations(&id);

    // A new custom strength has none.
    let (status, list) = g.call("GET", &path, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"], json!([]));
    assert_eq!(
        list["@odata.context"],
        format!(
            "{}/v1.0/$metadata#identity/conditionalAccess/authenticationStrength/policies('{id}')/combinationConfigurations",
            g.app.issuer
        )
    );

    // Create: 201 with a server-assigned id (an id in the body is ignored),
    // Graph's spelling of the type.
    let (status, created) = g
        .call(
            "POST",
            &path,
            Some(json!({
                "@odata.type": "#microsoft.graph.FIDO2CombinationConfiguration",
                "id": "mine",
                "allowedAAGUIDs": [ALLOWED.to_ascii_uppercase(), OTHER],
                "appliesToCombinations": ["fido2"]
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let config_id = created["id"].as_str().unwrap().to_owned();
    assert_ne!(config_id, "mine");
    assert!(uuid::Uuid::parse_str(&config_id).is_ok(), "{config_id}");
    assert_eq!(
        created,
        json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration", "id": config_id,
               "allowedAAGUIDs": [ALLOWED.to_ascii_uppercase(), OTHER], "appliesToCombinations": ["fido2"]})
    );

    // Read back: alone, in the collection, and inside the strength.
    let item = format!("{path}/{config_id}");
    let (status, got) = g.call("GET", &item, None).await;
    assert_eq!((status, &got), (200, &created));
    let (_, list) = g.call("GET", &path, None).await;
    assert_eq!(list["value"], json!([created]));
    let (_, strength) = g.call("GET", &format!("{STRENGTHS}/{id}"), None).await;
    assert_eq!(strength["combinationConfigurations"], json!([created]));
    assert!(strength["modifiedDateTime"].is_string(), "{strength}");

    // Update: 204, as Graph documents; id and type stay.
    let (status, body) = g
        .call(
            "PATCH",
            &item,
            Some(json!({"allowedAAGUIDs": [ALLOWED], "id": "other-id"})),
        )
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, got) = g.call("GET", &item, None).await;
    assert_eq!(got["allowedAAGUIDs"], json!([ALLOWED]));
    assert_eq!(got["id"], config_id);
    let (status, body) = g
        .call(
            "PATCH",
            &item,
            Some(
                json!({"@odata.type": "#microsoft.graph.x509CertificateCombinationConfiguration"}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_target(&body), "@odata.type");

    // Delete: 204, then gone.
    let (status, body) = g.call("DELETE", &item, None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = g.call("GET", &item, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    for method in ["PATCH", "DELETE"] {
        let (status, body) = g.call(method, &item, Some(json!({}))).await;
        assert_eq!(status, 404, "{method}: {body}");
    }
    let (_, strength) = g.call("GET", &format!("{STRENGTHS}/{id}"), None).await;
    assert_eq!(strength["combinationConfigurations"], json!([]));

    // /beta answers from the same handlers.
    let created = g.restrict(&id, &[ALLOWED]).await;
    let (status, list) = g
        .call(
            "GET",
            &format!("/beta{}", path.trim_start_matches("/v1.0")),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"], json!([created]));

    // Each change is audited as a change of the strength.
    let (_, audits) = g.call("GET", "/v1.0/auditLogs/directoryAudits", None).await;
    let updates = audits["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["activityDisplayName"] == "Update authentication strength"
                && a["targetResources"][0]["id"] == id.as_str()
        })
        .count();
    assert!(updates >= 3, "{audits:#}");
}

#[tokio::test]
async fn combination_configurations_are_validated_and_refused_on_built_ins() {
    let g = Graph::new().await;
    let id = g.strength().await;
    let path = Graph::configurations(&id);
    let body = |applies: Value, aaguids: Value| {
        json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
               "appliesToCombinations": applies, "allowedAAGUIDs": aaguids})
    };
    let table = [
        (
            body(json!(["fido2"]), json!(["yubikey"])),
            "allowedAAGUIDs[0]",
        ),
        (
            body(json!(["fido2"]), json!([ALLOWED, 42])),
            "allowedAAGUIDs[1]",
        ),
        (body(json!(["fido2"]), json!(null)), "allowedAAGUIDs"),
        (
            // Not a combination of this strength.
            body(json!(["password,fido2"]), json!([ALLOWED])),
            "appliesToCombinations[0]",
        ),
        (
            // A combination of this strength, but without a passkey.
            body(json!(["temporaryAccessPassOneTime"]), json!([ALLOWED])),
            "appliesToCombinations[0]",
        ),
        (body(json!([]), json!([ALLOWED])), "appliesToCombinations"),
        (
            json!({"appliesToCombinations": ["fido2"], "allowedAAGUIDs": [ALLOWED]}),
            "@odata.type",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.x509CertificateCombinationConfiguration",
                   "appliesToCombinations": ["fido2"], "allowedIssuerSkis": ["00"]}),
            "@odata.type",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
                   "appliesToCombinations": ["fido2"], "allowedAAGUIDs": [ALLOWED], "colour": "blue"}),
            "colour",
        ),
    ];
    for (request, target) in table {
        let (status, answer) = g.call("POST", &path, Some(request.clone())).await;
        assert_eq!(status, 400, "{request}: {answer}");
        assert_eq!(error_target(&answer), target, "{request}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("'{target}'")),
            "{answer}"
        );
    }
    // Nothing was stored.
    let (_, list) = g.call("GET", &path, None).await;
    assert_eq!(list["value"], json!([]));

    // A PATCH is checked the same way.
    let created = g.restrict(&id, &[ALLOWED]).await;
    let item = format!("{path}/{}", created["id"].as_str().unwrap());
    let (status, answer) = g
        .call("PATCH", &item, Some(json!({"allowedAAGUIDs": ["nope"]})))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(error_target(&answer), "allowedAAGUIDs[0]");
    let (_, got) = g.call("GET", &item, None).await;
    assert_eq!(got, created);

    // The strength itself, created or updated with the property inline.
    let (status, answer) = g
        .call(
            "POST",
            STRENGTHS,
            Some(
                json!({"displayName": "Inline", "allowedCombinations": ["fido2"],
                "combinationConfigurations": [body(json!(["fido2"]), json!(["not-an-aaguid"]))]}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        error_target(&answer),
        "combinationConfigurations[0].allowedAAGUIDs[0]"
    );
    let (status, answer) = g
        .call(
            "PATCH",
            &format!("{STRENGTHS}/{id}"),
            Some(json!({"allowedCombinations": ["temporaryAccessPassOneTime"]})),
        )
        .await;
    assert_eq!(status, 400, "dropping the restricted combination: {answer}");
    assert_eq!(
        error_target(&answer),
        "combinationConfigurations[0].appliesToCombinations[0]"
    );
    // Valid inline configurations get system-generated ids.
    let (status, inline) = g
        .call(
            "POST",
            STRENGTHS,
            Some(
                json!({"displayName": "Inline", "allowedCombinations": ["fido2"],
                "combinationConfigurations": [body(json!(["fido2"]), json!([ALLOWED]))]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{inline}");
    let inline_config = &inline["combinationConfigurations"][0];
    assert!(inline_config["id"].as_str().is_some_and(|i| i.len() == 36));
    let (_, listed) = g
        .call(
            "GET",
            &Graph::configurations(inline["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(listed["value"], json!([inline_config]));

    // Built-ins: listed (empty), never changed.
    let builtin = Graph::configurations(MULTIFACTOR);
    let (status, list) = g.call("GET", &builtin, None).await;
    assert_eq!((status, &list["value"]), (200, &json!([])));
    let (status, answer) = g
        .call(
            "POST",
            &builtin,
            Some(body(json!(["fido2"]), json!([ALLOWED]))),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Built-in authentication strengths cannot be changed"),
        "{answer}"
    );
    let (status, _) = g.call("DELETE", &format!("{builtin}/x"), None).await;
    assert_eq!(status, 400);

    // Unknown strength: 404.
    let nobody = "00000000-0000-4000-8000-000000000000";
    let (status, _) = g.call("GET", &Graph::configurations(nobody), None).await;
    assert_eq!(status, 404);
    let (status, _) = g
        .call(
            "POST",
            &Graph::configurations(nobody),
            Some(body(json!(["fido2"]), json!([ALLOWED]))),
        )
        .await;
    assert_eq!(status, 404);

    // The same permission as the strength itself: a reader may read, not
    // write; an app without a policy permission may do neither.
    let reader = g.app.app_token(CA_READER, CA_READER_SECRET).await;
    let (status, _) = g.call_as(&reader, "GET", &path, None).await;
    assert_eq!(status, 200);
    let (status, _) = g.call_as(&reader, "GET", &item, None).await;
    assert_eq!(status, 200);
    let user_reader = g.app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let (status, _) = g.call_as(&user_reader, "GET", &path, None).await;
    assert_eq!(status, 403);
    for (method, url) in [
        ("POST", path.clone()),
        ("PATCH", item.clone()),
        ("DELETE", item),
    ] {
        let (status, answer) = g
            .call_as(
                &reader,
                method,
                &url,
                Some(body(json!(["fido2"]), json!([ALLOWED]))),
            )
            .await;
        assert_eq!(status, 403, "{method} {url}: {answer}");
    }
}

/// The documented example of `POST …/combinationConfigurations` answers
/// with exactly the documented response's properties.
/// <https://learn.microsoft.com/graph/api/authenticationstrengthpolicy-post-combinationconfigurations>
#[tokio::test]
async fn fido2_combination_configuration_json_matches_the_graph_example() {
    let g = Graph::new().await;
    let id = g.strength().await;
    let request: Value = serde_json::from_str(
        r##"{
          "@odata.type" : "#microsoft.graph.fido2CombinationConfiguration",
          "allowedAAGUIDs": [
            "486c3b50-889c-480a-abc5-c04ef7c873e0",
            "c042882f-a621-40c8-94d3-9cde3a826fed",
            "ec454c08-4c77-4012-9d48-45f7f0fccdfb"
          ],
          "appliesToCombinations": ["fido2"]
        }"##,
    )
    .unwrap();
    let documented: Value = serde_json::from_str(
        r##"{
          "@odata.type" : "#microsoft.graph.fido2CombinationConfiguration",
          "id": "96cb1a17-e45e-4b4f-8b4b-4a9490d63d66",
          "allowedAAGUIDs": [
            "486c3b50-889c-480a-abc5-c04ef7c873e0",
            "c042882f-a621-40c8-94d3-9cde3a826fed",
            "ec454c08-4c77-4012-9d48-45f7f0fccdfb"
          ],
          "appliesToCombinations": ["fido2"]
        }"##,
    )
    .unwrap();
    let (status, created) = g
        .call("POST", &Graph::configurations(&id), Some(request))
        .await;
    assert_eq!(status, 201, "{created}");
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&created), keys(&documented));
    // Everything but the system-generated id is as documented.
    let mut snapshot = created.clone();
    snapshot["id"] = documented["id"].clone();
    assert_eq!(snapshot, documented);
    // The list answers the documented collection shape.
    let (_, list) = g.call("GET", &Graph::configurations(&id), None).await;
    assert_eq!(
        keys(&list),
        ["@odata.context".to_owned(), "value".to_owned()]
    );
    assert_eq!(list["value"], json!([created]));
}

/// A user, the restricted strength, and an enabled policy that requires it
/// for every app; returns the strength id.
async fn restricted_policy(g: &Graph) -> String {
    g.app
        .create_user(
            "keyholder@contoso.com",
            Some("correct horse battery staple"),
        )
        .await;
    let id = g.strength().await;
    g.restrict(&id, &[ALLOWED]).await;
    let (status, body) = g
        .call(
            "POST",
            "/v1.0/identity/conditionalAccess/policies",
            Some(json!({
                "displayName": "Apps: approved security keys",
                "state": "enabled",
                "conditions": {
                    "users": {"includeUsers": ["All"]},
                    "applications": {"includeApplications": ["All"]},
                    "clientAppTypes": ["all"]
                },
                "grantControls": {"operator": "OR", "authenticationStrength": {"id": id}}
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    id
}

fn what_if_body(methods: &[&str]) -> Value {
    json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "keyholder@contoso.com"},
        "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [RP_ID]},
        "authenticationMethods": methods
    })
}

#[tokio::test]
async fn what_if_honours_the_passkey_model() {
    let g = Graph::new().await;
    let strength = restricted_policy(&g).await;
    let evaluate = "/v1.0/identity/conditionalAccess/evaluate";
    let allowed = format!("fido2:{ALLOWED}");
    let allowed_upper = format!("passkey:{}", ALLOWED.to_ascii_uppercase());
    let other = format!("fido2:{OTHER}");
    // (methods, decision, the policy's `satisfied`)
    let table: [(&[&str], &str, bool); 6] = [
        (&[&allowed], "allow", true),
        (&[&allowed_upper], "allow", true),
        (&["password", &allowed], "allow", true),
        (&[&other], "stepUp", false),
        (&["fido2"], "stepUp", false),
        // The unrestricted combination is unaffected.
        (&["temporaryAccessPassOneTime"], "allow", true),
    ];
    for (methods, decision, satisfied) in table {
        let (status, r) = g.call("POST", evaluate, Some(what_if_body(methods))).await;
        assert_eq!(status, 200, "{methods:?}: {r}");
        assert_eq!(r["decision"], decision, "{methods:?}: {r:#}");
        assert_eq!(r["value"][0]["satisfied"], satisfied, "{methods:?}");
        assert_eq!(r["value"][0]["unsupportedFields"], json!([]), "{methods:?}");
        if decision == "stepUp" {
            assert_eq!(
                r["unmetRequirements"][0]["anyOf"][0]["id"],
                strength.as_str(),
                "{r:#}"
            );
        }
    }

    // Malformed input: 400 naming the entry.
    let bad: [(&[&str], &str); 4] = [
        (&["fido2:yubikey"], "fido2:yubikey"),
        (&["password", "fido2:"], "fido2:"),
        (&["sms:cb69481e-8ff7-4039-93ec-0a2729a154a8"], "sms:"),
        (&[&allowed, &format!("fido2:{OTHER}")], "one passkey"),
    ];
    for (methods, needle) in bad {
        let (status, r) = g.call("POST", evaluate, Some(what_if_body(methods))).await;
        assert_eq!(status, 400, "{methods:?}: {r}");
        assert_eq!(error_target(&r), "authenticationMethods", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{methods:?}: {message}");
    }

    // Widening the list to the other model lets it in; deleting the
    // configuration lets any passkey in.
    let (_, configs) = g.call("GET", &Graph::configurations(&strength), None).await;
    let item = format!(
        "{}/{}",
        Graph::configurations(&strength),
        configs["value"][0]["id"].as_str().unwrap()
    );
    let (status, _) = g
        .call(
            "PATCH",
            &item,
            Some(json!({"allowedAAGUIDs": [ALLOWED, OTHER]})),
        )
        .await;
    assert_eq!(status, 204);
    let decide = |methods: Vec<String>| {
        let g = &g;
        async move {
            let refs: Vec<&str> = methods.iter().map(String::as_str).collect();
            let (_, r) = g.call("POST", evaluate, Some(what_if_body(&refs))).await;
            r["decision"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(decide(vec![format!("fido2:{OTHER}")]).await, "allow");
    assert_eq!(decide(vec![format!("fido2:{THIRD}")]).await, "stepUp");
    assert_eq!(decide(vec!["fido2".to_owned()]).await, "stepUp");
    let (status, _) = g.call("DELETE", &item, None).await;
    assert_eq!(status, 204);
    assert_eq!(decide(vec!["fido2".to_owned()]).await, "allow");
}

/// `gatepass ca what-if` and `ca test` read `fido2:<aaguid>` as the API
/// does, on the strengths exported from it; a malformed one exits 2.
#[tokio::test]
async fn cli_what_if_and_scenarios_honour_the_passkey_model() {
    let g = Graph::new().await;
    restricted_policy(&g).await;
    let dir = tempfile::tempdir().unwrap();
    for (file, path) in [
        ("policies.json", "/v1.0/identity/conditionalAccess/policies"),
        ("strengths.json", STRENGTHS),
    ] {
        let (_, body) = g.call("GET", path, None).await;
        std::fs::write(dir.path().join(file), body.to_string()).unwrap();
    }
    let what_if = |methods: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args(["ca", "what-if", "--policies"])
            .arg(dir.path().join("policies.json"))
            .arg("--strengths")
            .arg(dir.path().join("strengths.json"))
            .args([
                "--user",
                "keyholder@contoso.com",
                "--app",
                RP_ID,
                "--methods",
                methods,
                "--json",
            ])
            .output()
            .unwrap()
    };
    for (methods, decision) in [
        (format!("password,fido2:{ALLOWED}"), "allow"),
        (format!("fido2:{OTHER}"), "stepUp"),
        ("fido2".to_owned(), "stepUp"),
    ] {
        let out = what_if(&methods);
        assert!(
            out.status.success(),
            "{methods}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["decision"], decision, "{methods}");
    }
    for methods in [
        "fido2:yubikey".to_owned(),
        format!("fido2:{ALLOWED},fido2:{OTHER}"),
    ] {
        let out = what_if(&methods);
        assert_eq!(out.status.code(), Some(2), "{methods}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("authenticationMethods"), "{stderr}");
    }

    let scenarios = |methods: Value| {
        let file = dir.path().join("scenarios.json");
        std::fs::write(
            &file,
            json!({"scenarios": [{
                "name": "Only the approved key", "user": "keyholder@contoso.com", "app": RP_ID,
                "methods": methods, "expect": {"decision": "allow"}}]})
            .to_string(),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args(["ca", "test", "--policies"])
            .arg(dir.path().join("policies.json"))
            .arg("--strengths")
            .arg(dir.path().join("strengths.json"))
            .arg(&file)
            .output()
            .unwrap()
    };
    assert_eq!(
        scenarios(json!([format!("fido2:{ALLOWED}")])).status.code(),
        Some(0)
    );
    assert_eq!(
        scenarios(json!([format!("fido2:{OTHER}")])).status.code(),
        Some(1),
        "another model is stepped up, not allowed"
    );
    let out = scenarios(json!(["password", "fido2:nope"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("methods[1]") && stderr.contains("fido2:nope"),
        "{stderr}"
    );
}
