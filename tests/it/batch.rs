//! `POST /v1.0/$batch` over HTTP, on both store backends: each inner
//! request answers exactly as it would alone (status, body, authorization),
//! a bad one fails alone, `dependsOn` orders and 424s, and a malformed
//! batch is refused whole before anything runs.

use crate::harness::*;
use crate::redis::on_both_backends;
use serde_json::{Value, json};

async fn batch(app: &TestApp, version: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(&format!("/{version}/$batch")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The same request sent alone: (status, body).
async fn alone(
    app: &TestApp,
    token: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .http
        .request(method, app.url(&format!("/v1.0{url}")))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn by_id<'a>(responses: &'a Value, id: &str) -> &'a Value {
    responses["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response for {id}: {responses:#}"))
}

fn user(upn: &str) -> Value {
    json!({"userPrincipalName": upn, "displayName": upn, "accountEnabled": true})
}

const JSON: &str = "application/json";

async fn runs_each_request_as_if_sent_alone(app: TestApp) {
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let body = json!({"requests": [
        {"id": "create", "method": "POST", "url": "/users", "headers": {"Content-Type": JSON},
         "body": user("alice@example.test")},
        {"id": "read", "method": "GET", "url": "users/alice@example.test", "dependsOn": ["create"]},
        {"id": "rename", "method": "PATCH", "url": "/users/alice@example.test", "dependsOn": ["read"],
         "headers": {"content-type": JSON}, "body": {"displayName": "Alice"}},
        {"id": "bad", "method": "POST", "url": "/users", "headers": {"Content-Type": JSON},
         "body": {"displayName": "no principal name"}},
        {"id": "after-bad", "method": "GET", "url": "/groups", "dependsOn": ["bad"]},
        {"id": "groups", "method": "GET", "url": "/groups?$top=1"},
        {"id": "as-text", "method": "GET", "url": "users?$filter=userPrincipalName eq 'alice@example.test'",
         "dependsOn": ["create"]},
        {"id": "missing", "method": "GET", "url": "/users/nobody@example.test"},
        {"id": "no-type", "method": "POST", "url": "/users", "body": user("bob@example.test")},
        {"id": "nested", "method": "POST", "url": "/$batch", "headers": {"Content-Type": JSON},
         "body": {"requests": []}},
        {"id": "absolute", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"},
        {"id": "versioned", "method": "GET", "url": "/v1.0/users"},
        {"id": "trace", "method": "TRACE", "url": "/users"},
        {"id": "nowhere", "method": "GET", "url": "/not/a/graph/path"},
    ]});
    let (status, responses) = batch(&app, "v1.0", &token, &body).await;
    assert_eq!(status, 200, "{responses:#}");
    let ids: Vec<&str> = responses["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let sent: Vec<&str> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, sent, "one response per request, in their order");

    let created = by_id(&responses, "create");
    assert_eq!(created["status"], 201, "{created:#}");
    assert_eq!(created["body"]["userPrincipalName"], "alice@example.test");
    assert_eq!(created["headers"]["Content-Type"], JSON);
    assert_eq!(
        by_id(&responses, "read")["body"]["id"],
        created["body"]["id"]
    );
    assert_eq!(by_id(&responses, "rename")["status"], 204);
    assert!(by_id(&responses, "rename").get("body").is_none());

    // A bad request fails alone, with the answer it gets alone; what
    // depends on it is not run.
    let bad = by_id(&responses, "bad");
    let solo = alone(
        &app,
        &token,
        "POST",
        "/users",
        Some(&json!({"displayName": "no principal name"})),
    )
    .await;
    assert_eq!(
        (bad["status"].as_u64().unwrap() as u16, bad["body"].clone()),
        solo
    );
    let skipped = by_id(&responses, "after-bad");
    assert_eq!(skipped["status"], 424);
    assert_eq!(skipped["body"]["error"]["code"], "FailedDependency");
    assert_eq!(by_id(&responses, "groups")["status"], 200);
    // A URL written as text, spaces and quotes included, as Graph takes it.
    let as_text = by_id(&responses, "as-text");
    assert_eq!(as_text["status"], 200, "{as_text:#}");
    assert_eq!(
        as_text["body"]["value"][0]["userPrincipalName"],
        "alice@example.test"
    );
    let missing = by_id(&responses, "missing");
    assert_eq!(
        (
            missing["status"].as_u64().unwrap() as u16,
            missing["body"].clone()
        ),
        alone(&app, &token, "GET", "/users/nobody@example.test", None).await
    );
    for (id, target) in [
        ("no-type", "headers"),
        ("nested", "url"),
        ("absolute", "url"),
        ("versioned", "url"),
        ("trace", "method"),
    ] {
        let r = by_id(&responses, id);
        assert_eq!(r["status"], 400, "{id}: {r:#}");
        assert_eq!(r["body"]["error"]["target"], target, "{id}: {r:#}");
    }
    assert_eq!(by_id(&responses, "nowhere")["status"], 400);

    // What ran is there once, audited once; what did not run is not.
    let (_, alice) = alone(&app, &token, "GET", "/users/alice@example.test", None).await;
    assert_eq!(alice["displayName"], "Alice");
    assert_eq!(
        alone(&app, &token, "GET", "/users/bob@example.test", None)
            .await
            .0,
        404
    );
    let (_, audits) = alone(
        &app,
        &token,
        "GET",
        "/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Add%20user'",
        None,
    )
    .await;
    assert_eq!(audits["value"].as_array().unwrap().len(), 1, "{audits:#}");
}

on_both_backends!(runs_each_request_as_if_sent_alone =>
    batch_runs_each_request_as_if_sent_alone_embedded,
    batch_runs_each_request_as_if_sent_alone_redis);

/// Each inner request is authorized with the batch's token as if sent
/// alone: a reader's batch reads, and its writes are refused one by one.
#[tokio::test]
async fn each_inner_request_is_authorized_as_if_sent_alone() {
    let app = TestApp::spawn().await;
    app.create_user("carol@example.test", None).await;
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let requests = [
        ("GET", "/users"),
        ("GET", "/users/carol@example.test"),
        ("DELETE", "/users/carol@example.test"),
        ("GET", "/auditLogs/signIns"),
        ("GET", "/groups"),
        ("GET", "/me"),
    ];
    let body = json!({"requests": requests.iter().enumerate().map(|(i, (m, u))| {
        json!({"id": i.to_string(), "method": m, "url": u})
    }).collect::<Vec<_>>()});
    let (status, responses) = batch(&app, "v1.0", &reader, &body).await;
    assert_eq!(status, 200);
    for (i, (method, url)) in requests.iter().enumerate() {
        let inner = by_id(&responses, &i.to_string());
        let solo = alone(&app, &reader, method, url, None).await;
        assert_eq!(
            inner["status"].as_u64().unwrap() as u16,
            solo.0,
            "{method} {url}"
        );
        if solo.0 != 200 {
            assert_eq!(inner["body"], solo.1, "{method} {url}");
        }
    }
    let statuses: Vec<u64> = (0..requests.len())
        .map(|i| {
            by_id(&responses, &i.to_string())["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, [200, 200, 403, 403, 403, 400]);

    // A signed-in user's batch: `/me` is theirs, and their roles decide.
    app.create_user("dave@example.test", Some("dave password 1"))
        .await;
    let user = app
        .user_tokens(
            "dave@example.test",
            "dave password 1",
            "openid User.ReadWrite.All",
        )
        .await;
    let token = user["access_token"].as_str().unwrap();
    let (_, responses) = batch(
        &app,
        "beta",
        token,
        &json!({"requests": [
            {"id": "me", "method": "GET", "url": "/me"},
            {"id": "delete", "method": "DELETE", "url": "/users/carol@example.test"},
        ]}),
    )
    .await;
    let me = by_id(&responses, "me");
    assert_eq!(me["status"], 200);
    assert_eq!(me["body"]["userPrincipalName"], "dave@example.test");
    assert_eq!(by_id(&responses, "delete")["status"], 403);
    assert_eq!(
        alone(&app, &reader, "GET", "/users/carol@example.test", None)
            .await
            .0,
        200
    );
}

/// `/beta/$batch` runs its requests under `/beta/`.
#[tokio::test]
async fn beta_batch_runs_under_beta() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let (status, responses) = batch(
        &app,
        "beta",
        &token,
        &json!({"requests": [{"id": "1", "method": "GET", "url": "/users"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let context = by_id(&responses, "1")["body"]["@odata.context"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(context.contains("/beta/"), "{context}");
}

/// A malformed batch is refused whole, and nothing in it runs.
#[tokio::test]
async fn a_malformed_batch_is_refused_whole() {
    let app = TestApp::spawn().await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let create = |id: &str, upn: &str| {
        json!({"id": id, "method": "POST", "url": "/users",
               "headers": {"Content-Type": JSON}, "body": user(upn)})
    };
    let twenty_one: Vec<Value> = (0..21)
        .map(|i| create(&i.to_string(), &format!("u{i}@example.test")))
        .collect();
    let mut cycle = vec![create("a", "a@example.test"), create("b", "b@example.test")];
    cycle[0]["dependsOn"] = json!(["b"]);
    cycle[1]["dependsOn"] = json!(["a"]);
    let mut unknown = vec![create("a", "a@example.test")];
    unknown[0]["dependsOn"] = json!(["z"]);
    let cases = [
        ("21 requests", json!({"requests": twenty_one}), "requests"),
        ("no requests", json!({"requests": []}), "requests"),
        (
            "a repeated id",
            json!({"requests": [create("1", "a@example.test"), create("1", "b@example.test")]}),
            "requests.id",
        ),
        ("a cycle", json!({"requests": cycle}), "requests.dependsOn"),
        (
            "an unknown dependency",
            json!({"requests": unknown}),
            "requests.dependsOn",
        ),
    ];
    for (what, body, target) in cases {
        let (status, answer) = batch(&app, "v1.0", &token, &body).await;
        assert_eq!(status, 400, "{what}: {answer:#}");
        assert_eq!(answer["error"]["target"], target, "{what}: {answer:#}");
    }
    let (status, _) = batch(&app, "v1.0", &token, &json!({"value": []})).await;
    assert_eq!(status, 400);
    let (status, answer) = batch(
        &app,
        "v1.0",
        "not a token",
        &json!({"requests": [create("1", "x@example.test")]}),
    )
    .await;
    assert_eq!(status, 401, "{answer:#}");
    let (_, users) = alone(&app, &token, "GET", "/users", None).await;
    assert_eq!(users["value"].as_array().unwrap().len(), 0, "{users:#}");

    // Twenty is the limit, not one less.
    let twenty: Vec<Value> = (0..20)
        .map(|i| create(&i.to_string(), &format!("u{i}@example.test")))
        .collect();
    let (status, answer) = batch(&app, "v1.0", &token, &json!({"requests": twenty})).await;
    assert_eq!(status, 200);
    assert!(
        answer["responses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 201)
    );
}
