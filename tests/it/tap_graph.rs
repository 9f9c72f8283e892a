//! The Temporary Access Pass over the Graph API (DESIGN §2.6, §3), over real
//! HTTP: `…/authentication/temporaryAccessPassMethods`, the TAP policy at
//! `…/authenticationMethodConfigurations/TemporaryAccessPass`, the role
//! matrix of `graph::methods` cell by cell, application permissions, and
//! the directory audit — with the plaintext pass checked to appear nowhere
//! but the create response.
//!
//! Delegated tokens are obtained before any pass exists for their user: a
//! user with a usable pass is asked for it (not the password) at sign-in.

use crate::graph_client::*;
use crate::harness::*;
use gatepass::clock::Clock;
use gatepass::directory::User;
use gatepass::directory::roles::BuiltinRole;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const POLICY: &str = "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass";
const POLICY_TYPE: &str = "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration";
const PASS_TYPE: &str = "#microsoft.graph.temporaryAccessPassAuthenticationMethod";
const AUDITS: &str = "/v1.0/auditLogs/directoryAudits";
/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "0b9c3a6e-2f1d-4c8b-9a7e-5d4f3c2b1a09";
/// The delegated scope an administrator's script asks for.
const TAP_SCOPE: &str = "openid UserAuthenticationMethod.ReadWrite.All";
/// The exact property set of a pass in every response.
const PASS_KEYS: [&str; 9] = [
    "@odata.type",
    "id",
    "createdDateTime",
    "startDateTime",
    "lifetimeInMinutes",
    "isUsableOnce",
    "isUsable",
    "methodUsabilityReason",
    "temporaryAccessPass",
];

/// A user with a password and, optionally, a directory role.
async fn user_with(app: &TestApp, upn: &str, role: Option<BuiltinRole>) -> User {
    let user = app.create_user(upn, Some(&password_of(upn))).await;
    if let Some(r) = role {
        app.grant_role(&user, r).await;
    }
    user
}

fn password_of(upn: &str) -> String {
    format!("{upn}-password-1")
}

/// A delegated Graph token for `user` (created by [`user_with`]).
async fn delegated(app: &TestApp, user: &User, scope: &str) -> String {
    let upn = &user.user_principal_name;
    let tokens = app.user_tokens(upn, &password_of(upn), scope).await;
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

fn passes_path(base: &str, user: &str) -> String {
    format!("{base}/users/{user}/authentication/temporaryAccessPassMethods")
}

fn pass_path(base: &str, user: &str, id: &str) -> String {
    format!("{}/{id}", passes_path(base, user))
}

/// Creates a pass with `body` and asserts the 201.
async fn issue(app: &TestApp, token: &str, user: &str, body: Value) -> Value {
    let r = post(app, &passes_path("/v1.0", user), token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

/// PATCHes the policy (Graph requires the `@odata.type`) and asserts the 204.
async fn set_policy(app: &TestApp, token: &str, mut change: Value) {
    change["@odata.type"] = json!(POLICY_TYPE);
    let r = patch(app, POLICY, token, change).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

/// Creates a security group through Graph and adds `members`.
async fn group_with(app: &TestApp, token: &str, name: &str, members: &[&User]) -> String {
    let body = json!({"displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true});
    let r = post(app, "/v1.0/groups", token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    for m in members {
        let member = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", m.id)});
        let r = post(
            app,
            &format!("/v1.0/groups/{gid}/members/$ref"),
            token,
            member,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    gid
}

fn group_target(id: &str) -> Value {
    json!([{"id": id, "targetType": "group", "isRegistrationRequired": false}])
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a date-time string"), &Rfc3339).expect("RFC 3339")
}

/// Checks a create response: exactly Graph's keys and a well-formed secret
/// of `len` characters from the unambiguous alphabet. Returns the secret.
fn assert_created(pass: &Value, len: usize) -> String {
    assert_eq!(keys(pass), BTreeSet::from(PASS_KEYS), "{pass}");
    assert_eq!(pass["@odata.type"], PASS_TYPE);
    let secret = pass["temporaryAccessPass"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in the create response: {pass}"))
        .to_owned();
    assert_eq!(secret.chars().count(), len, "{secret:?}");
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)),
        "{secret:?} uses an ambiguous or non-alphanumeric character"
    );
    secret
}

/// A pass as read back: Graph's keys, the secret `null`.
fn assert_read(pass: &Value) {
    assert_eq!(keys(pass), BTreeSet::from(PASS_KEYS), "{pass}");
    assert_eq!(pass["temporaryAccessPass"], Value::Null, "{pass}");
}

/// The pass as the automation app reads it by id.
async fn read_pass(app: &TestApp, user: &str, id: &str) -> Value {
    let token = automation(app).await;
    let r = get(app, &pass_path("/v1.0", user, id), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_read(&r.body);
    r.body
}

fn usability(pass: &Value) -> (bool, &str) {
    (
        pass["isUsable"].as_bool().expect("isUsable"),
        pass["methodUsabilityReason"]
            .as_str()
            .expect("methodUsabilityReason"),
    )
}

/// Directory-audit entries with `activity` whose first target is `target`.
async fn audits(app: &TestApp, activity: &str, target: &str) -> Vec<Value> {
    let token = automation(app).await;
    let r = get(app, AUDITS, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body.get("@odata.nextLink").is_none(),
        "more than a page of audits"
    );
    r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["activityDisplayName"] == activity && e["targetResources"][0]["id"] == target)
        .cloned()
        .collect()
}

fn detail<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry["additionalDetails"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?["value"]
        .as_str()
}

// --- create -----------------------------------------------------------------

#[tokio::test]
async fn tap_create_with_documented_bodies_is_201_with_graph_keys_and_values() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let start = rfc3339(app.clock.now() + Duration::days(2));
    // Microsoft's example body (its start moved into the future), the
    // seed's body, and bodies that leave everything to the policy.
    let cases: [(&str, Value, u64, bool, bool, &str); 2] = [
        (
            "example@contoso.com",
            json!({"startDateTime": start, "lifetimeInMinutes": 60, "isUsableOnce": false}),
            60,
            false,
            false,
            "NotYetValid",
        ),
        (
            "seed@contoso.com",
            json!({"@odata.type": PASS_TYPE, "startDateTime": start, "lifetimeInMinutes": 120, "isUsableOnce": true}),
            120,
            true,
            false,
            "NotYetValid",
        ),
    ];
    for (upn, body, lifetime, once, usable, reason) in cases {
        let user = app.create_user(upn, None).await;
        let pass = issue(&app, &token, &user.id.to_string(), body).await;
        assert_created(&pass, 8);
        assert_eq!(pass["startDateTime"], start.as_str(), "{pass}");
        assert_eq!(pass["lifetimeInMinutes"], lifetime, "{pass}");
        assert_eq!(pass["isUsableOnce"], once, "{pass}");
        assert_eq!(usability(&pass), (usable, reason), "{pass}");
        assert_eq!(
            parse_time(&pass["createdDateTime"]).unix_timestamp(),
            app.clock.now().unix_timestamp()
        );
    }
}

#[tokio::test]
async fn tap_create_with_empty_or_blank_body_uses_policy_defaults() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let now = app.clock.now().unix_timestamp();
    // No body at all, an empty object, and (by UPN) an empty object again.
    let cases: [(&str, Option<&str>, bool); 3] = [
        ("empty@contoso.com", None, false),
        ("object@contoso.com", Some("{}"), false),
        ("byupn@contoso.com", Some("{}"), true),
    ];
    for (upn, body, by_upn) in cases {
        let user = app.create_user(upn, None).await;
        let key = if by_upn {
            upn.to_owned()
        } else {
            user.id.to_string()
        };
        let r = send_raw(
            &app,
            Method::POST,
            &passes_path("/v1.0", &key),
            &token,
            body.map(|b| ("application/json", b)),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{upn}: {}", r.text);
        let pass = &r.body;
        assert_created(pass, 8);
        assert_eq!(pass["lifetimeInMinutes"], 60, "{pass}");
        assert_eq!(pass["isUsableOnce"], false, "{pass}");
        assert_eq!(usability(pass), (true, "EnabledByPolicy"), "{pass}");
        assert_eq!(parse_time(&pass["startDateTime"]).unix_timestamp(), now);
        assert_eq!(pass["startDateTime"], pass["createdDateTime"]);
        // It is the user's pass, found under the user's id.
        read_pass(&app, &user.id.to_string(), pass["id"].as_str().unwrap()).await;
    }
}

#[tokio::test]
async fn tap_with_delayed_start_is_not_yet_valid_then_usable_then_expired() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("later@contoso.com", None).await;
    let uid = user.id.to_string();
    let start = app.clock.now() + Duration::hours(2);
    let pass = issue(
        &app,
        &token,
        &uid,
        json!({"startDateTime": rfc3339(start), "lifetimeInMinutes": 90}),
    )
    .await;
    let id = pass["id"].as_str().unwrap();
    assert_eq!(usability(&pass), (false, "NotYetValid"));
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (false, "NotYetValid")
    );

    // One second before the start it is still not valid; at the start it is.
    app.clock.advance(
        Duration::hours(2)
            - Duration::seconds(1)
            - Duration::nanoseconds(i64::from(app.clock.now().nanosecond())),
    );
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (false, "NotYetValid")
    );
    app.clock.advance(Duration::seconds(1));
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (true, "EnabledByPolicy")
    );

    // It ends exactly start + lifetime.
    app.clock
        .advance(Duration::minutes(90) - Duration::seconds(1));
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (true, "EnabledByPolicy")
    );
    app.clock.advance(Duration::seconds(1));
    let expired = read_pass(&app, &uid, id).await;
    assert_eq!(usability(&expired), (false, "Expired"));
    assert_eq!(expired["startDateTime"], rfc3339(start).as_str());
}

#[tokio::test]
async fn tap_create_with_powershell_start_format_is_read_as_utc() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ps@contoso.com", None).await;
    let uid = user.id.to_string();
    // Near enough to be allowed at today's clock.
    let tomorrow = (app.clock.now() + Duration::days(1))
        .replace_nanosecond(0)
        .unwrap();
    let ps = tomorrow
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap();
    let token = automation(&app).await;
    let pass = issue(&app, &token, &uid, json!({"startDateTime": ps})).await;
    assert_eq!(pass["startDateTime"], rfc3339(tomorrow).as_str(), "{pass}");
    assert_eq!(usability(&pass), (false, "NotYetValid"));

    // The literal a script would send; accepted once it is within reach.
    let target = time::macros::datetime!(2030-01-01 10:00:00 UTC);
    app.clock.set(target - Duration::days(10));
    let token = automation(&app).await;
    let pass = issue(
        &app,
        &token,
        &uid,
        json!({"startDateTime": "2030-01-01 10:00:00"}),
    )
    .await;
    assert_eq!(pass["startDateTime"], "2030-01-01T10:00:00Z", "{pass}");
    assert_eq!(usability(&pass), (false, "NotYetValid"));
}

#[tokio::test]
async fn tap_create_with_start_beyond_thirty_days_is_400_naming_the_limit() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("far@contoso.com", None).await;
    let path = passes_path("/v1.0", &user.id.to_string());
    let far = rfc3339(app.clock.now() + Duration::days(31));
    let r = post(&app, &path, &token, json!({"startDateTime": far})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.error_code(), "badRequest");
    assert!(
        r.error_message().contains("startDateTime") && r.error_message().contains("30 days"),
        "{}",
        r.text
    );
    let r = post(
        &app,
        &path,
        &token,
        json!({"startDateTime": "next tuesday"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error_message().contains("'startDateTime'"), "{}", r.text);
    let list = get(&app, &path, &token).await;
    assert_eq!(
        list.body["value"],
        json!([]),
        "a refused create stored a pass"
    );
}

#[tokio::test]
async fn tap_secret_length_follows_the_policy_default_length() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("long@contoso.com", None).await;
    let uid = user.id.to_string();
    for len in [12_usize, 48] {
        set_policy(&app, &token, json!({"defaultLength": len})).await;
        let pass = issue(&app, &token, &uid, json!({})).await;
        assert_created(&pass, len);
    }
}

#[tokio::test]
async fn tap_routes_under_beta_behave_like_v1() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("beta@contoso.com", None).await;
    let uid = user.id.to_string();
    let r = post(
        &app,
        &passes_path("/beta", &uid),
        &token,
        json!({"lifetimeInMinutes": 120}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let secret = assert_created(&r.body, 8);
    let id = r.body["id"].as_str().unwrap();
    let list = get(&app, &passes_path("/beta", &uid), &token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(
        list.body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/beta/$metadata#"),
        "{}",
        list.text
    );
    assert_eq!(list.body["value"][0]["id"], id);
    assert!(!list.text.contains(&secret));
    // Written under beta, read under v1.0: the same pass.
    assert_eq!(read_pass(&app, &uid, id).await["lifetimeInMinutes"], 120);
    let policy = get(&app, "/beta/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass", &token).await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.text);
    assert_eq!(policy.body["id"], "TemporaryAccessPass");
    assert_eq!(
        delete(&app, &pass_path("/beta", &uid, id), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&app, &pass_path("/v1.0", &uid, id), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

// --- secret exposure ----------------------------------------------------------

#[tokio::test]
async fn tap_secret_never_appears_in_reads_or_the_audit_log() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app
        .create_user("secret@contoso.com", Some("secret user password 1"))
        .await;
    let uid = user.id.to_string();
    let first = issue(&app, &token, &uid, json!({})).await;
    let second = issue(&app, &token, &uid, json!({"isUsableOnce": true})).await;
    let secrets = [assert_created(&first, 8), assert_created(&second, 8)];
    let id = second["id"].as_str().unwrap();

    let mut reads = Vec::new();
    for base in ["/v1.0", "/beta"] {
        let list = get(&app, &passes_path(base, &uid), &token).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        assert_read(&list.body["value"][0]);
        let one = get(&app, &pass_path(base, &uid, id), &token).await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.text);
        assert_read(&one.body);
        let methods = get(
            &app,
            &format!("{base}/users/{uid}/authentication/methods"),
            &token,
        )
        .await;
        assert_eq!(methods.status, StatusCode::OK, "{}", methods.text);
        let tap = methods.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["@odata.type"] == PASS_TYPE)
            .unwrap_or_else(|| panic!("no pass among the methods: {}", methods.text));
        assert_eq!(tap["id"], id);
        assert_read(tap);
        reads.extend([list.text, one.text, methods.text]);
    }
    let audit = get(&app, AUDITS, &token).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(
        audit.text.contains(id),
        "the audit does not mention the pass at all"
    );
    reads.push(audit.text);
    reads.push(get(&app, "/v1.0/auditLogs/signIns", &token).await.text);
    for text in &reads {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "the plaintext pass leaked into {text}"
            );
        }
    }
}

// --- one pass per user --------------------------------------------------------

#[tokio::test]
async fn tap_create_second_replaces_the_first_and_audits_the_replacement() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("twice@contoso.com", None).await;
    let uid = user.id.to_string();
    let first = issue(&app, &token, &uid, json!({})).await;
    let second = issue(&app, &token, &uid, json!({"lifetimeInMinutes": 240})).await;
    let (old, new) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    assert_ne!(old, new);

    let list = get(&app, &passes_path("/v1.0", &uid), &token).await;
    let ids: Vec<&Value> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&json!(new)], "{}", list.text);
    let gone = get(&app, &pass_path("/v1.0", &uid, old), &token).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    assert_eq!(gone.error_code(), "Request_ResourceNotFound");
    // Nor can the old id be deleted any more.
    assert_eq!(
        delete(&app, &pass_path("/v1.0", &uid, old), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(read_pass(&app, &uid, new).await["lifetimeInMinutes"], 240);

    let entries = audits(&app, "Admin registered security info", &uid).await;
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let replacing = entries
        .iter()
        .find(|e| detail(e, "methodId") == Some(new))
        .unwrap_or_else(|| panic!("no audit for the second pass: {entries:#?}"));
    assert!(
        detail(replacing, "StatusReason")
            .unwrap_or_default()
            .contains("replaced"),
        "{replacing}"
    );
    assert_eq!(
        detail(replacing, "replacedMethodId"),
        Some(old),
        "{replacing}"
    );
    let original = entries
        .iter()
        .find(|e| detail(e, "methodId") == Some(old))
        .unwrap();
    assert_eq!(detail(original, "replacedMethodId"), None, "{original}");
    assert!(
        !detail(original, "StatusReason")
            .unwrap_or_default()
            .contains("replaced")
    );
}

// --- delete -------------------------------------------------------------------

#[tokio::test]
async fn tap_delete_is_204_then_404_and_the_list_is_empty() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("gone@contoso.com", None).await;
    let uid = user.id.to_string();
    let pass = issue(&app, &token, &uid, json!({})).await;
    let id = pass["id"].as_str().unwrap();
    let r = delete(&app, &pass_path("/v1.0", &uid, id), &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    let r = get(&app, &pass_path("/v1.0", &uid, id), &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let list = get(&app, &passes_path("/v1.0", &uid), &token).await;
    assert_eq!(list.body["value"], json!([]), "{}", list.text);
    let methods = get(
        &app,
        &format!("/v1.0/users/{uid}/authentication/methods"),
        &token,
    )
    .await;
    assert!(!methods.text.contains(PASS_TYPE), "{}", methods.text);
    // Deleting again, or an id that never existed, is a 404.
    for missing in [id, UNKNOWN_ID] {
        let r = delete(&app, &pass_path("/v1.0", &uid, missing), &token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.error_code(), "Request_ResourceNotFound");
    }
    let audit = audits(&app, "Admin deleted security info", &uid).await;
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(detail(&audit[0], "methodId"), Some(id));
}

#[tokio::test]
async fn tap_delete_of_unknown_id_keeps_the_existing_pass() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("keep@contoso.com", None).await;
    let uid = user.id.to_string();
    let pass = issue(&app, &token, &uid, json!({})).await;
    let r = delete(&app, &pass_path("/v1.0", &uid, UNKNOWN_ID), &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    read_pass(&app, &uid, pass["id"].as_str().unwrap()).await;
    let r = delete(&app, &pass_path("/v1.0", UNKNOWN_ID, UNKNOWN_ID), &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "unknown user: {}", r.text);
}

// --- rules with clear errors --------------------------------------------------

#[tokio::test]
async fn tap_create_with_lifetime_outside_policy_is_400_naming_the_range() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("range@contoso.com", None).await;
    let path = passes_path("/v1.0", &user.id.to_string());
    for (lifetime, ok) in [(59, false), (60, true), (1440, true), (1441, false)] {
        let r = post(&app, &path, &token, json!({"lifetimeInMinutes": lifetime})).await;
        if ok {
            assert_eq!(r.status, StatusCode::CREATED, "{lifetime}: {}", r.text);
            assert_eq!(r.body["lifetimeInMinutes"], lifetime);
        } else {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{lifetime}: {}", r.text);
            assert_eq!(r.error_code(), "badRequest");
            let m = r.error_message();
            assert!(
                m.contains("LifetimeInMinutes") && m.contains("60") && m.contains("1440"),
                "{m}"
            );
        }
    }
    set_policy(&app, &token, json!({"minimumLifetimeInMinutes": 120, "maximumLifetimeInMinutes": 480, "defaultLifetimeInMinutes": 120})).await;
    let r = post(&app, &path, &token, json!({"lifetimeInMinutes": 119})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.error_message().contains("120") && r.error_message().contains("480"),
        "{}",
        r.text
    );
    let r = post(&app, &path, &token, json!({"lifetimeInMinutes": 481})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // The default now comes from the changed policy.
    assert_eq!(
        issue(&app, &token, &user.id.to_string(), json!({})).await["lifetimeInMinutes"],
        120
    );
}

#[tokio::test]
async fn tap_create_under_disabled_policy_is_403_naming_the_policy() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("off@contoso.com", None).await;
    let path = passes_path("/v1.0", &user.id.to_string());
    set_policy(&app, &token, json!({"state": "disabled"})).await;
    let r = post(&app, &path, &token, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.error_code(), "accessDenied");
    assert!(
        r.error_message().contains("policy is disabled"),
        "{}",
        r.text
    );
    assert_eq!(get(&app, &path, &token).await.body["value"], json!([]));
    set_policy(&app, &token, json!({"state": "enabled"})).await;
    issue(&app, &token, &user.id.to_string(), json!({})).await;
}

#[tokio::test]
async fn tap_create_for_user_outside_targeted_group_is_403_and_member_is_201() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let inside = app.create_user("inside@contoso.com", None).await;
    let outside = app.create_user("outside@contoso.com", None).await;
    let gid = group_with(&app, &token, "tap-users", &[&inside]).await;
    set_policy(&app, &token, json!({"includeTargets": group_target(&gid)})).await;
    assert_eq!(
        get(&app, POLICY, &token).await.body["includeTargets"][0]["id"],
        gid.as_str()
    );

    let r = post(
        &app,
        &passes_path("/v1.0", &outside.id.to_string()),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.error_code(), "accessDenied");
    assert!(r.error_message().contains("targets"), "{}", r.text);
    issue(&app, &token, &inside.id.to_string(), json!({})).await;
}

#[tokio::test]
async fn tap_create_for_excluded_member_is_403_even_when_included() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let excluded = app.create_user("excluded@contoso.com", None).await;
    let included = app.create_user("included@contoso.com", None).await;
    let gid = group_with(&app, &token, "no-tap", &[&excluded]).await;
    // Everyone is included; the group is excluded.
    set_policy(&app, &token, json!({"excludeTargets": group_target(&gid)})).await;
    let r = post(
        &app,
        &passes_path("/v1.0", &excluded.id.to_string()),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error_message().contains("excluded"), "{}", r.text);
    issue(&app, &token, &included.id.to_string(), json!({})).await;
    // Included by the same group explicitly as well: exclusion still wins.
    set_policy(&app, &token, json!({"includeTargets": group_target(&gid)})).await;
    let r = post(
        &app,
        &passes_path("/v1.0", &excluded.id.to_string()),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn tap_create_multi_use_under_one_time_policy_is_400_and_default_is_one_time() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("once@contoso.com", None).await;
    let uid = user.id.to_string();
    set_policy(&app, &token, json!({"isUsableOnce": true})).await;
    let r = post(
        &app,
        &passes_path("/v1.0", &uid),
        &token,
        json!({"isUsableOnce": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.error_code(), "badRequest");
    assert!(
        r.error_message().contains("one-time") && r.error_message().contains("isUsableOnce"),
        "{}",
        r.text
    );
    let pass = issue(&app, &token, &uid, json!({})).await;
    assert_eq!(pass["isUsableOnce"], true, "{pass}");
    assert_eq!(usability(&pass), (true, "EnabledByPolicy"));
}

// --- the policy ---------------------------------------------------------------

#[tokio::test]
async fn tap_policy_get_returns_the_design_defaults() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = get(&app, POLICY, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = &r.body;
    assert_eq!(p["@odata.type"], POLICY_TYPE);
    assert_eq!(p["id"], "TemporaryAccessPass");
    assert_eq!(p["state"], "enabled");
    assert_eq!(p["minimumLifetimeInMinutes"], 60);
    assert_eq!(p["maximumLifetimeInMinutes"], 1440);
    assert_eq!(p["defaultLifetimeInMinutes"], 60);
    assert_eq!(p["defaultLength"], 8);
    assert_eq!(p["isUsableOnce"], false);
    assert_eq!(
        p["includeTargets"],
        json!([{"id": "all_users", "targetType": "group", "isRegistrationRequired": false}])
    );
    assert_eq!(p["excludeTargets"], json!([]));
}

#[tokio::test]
async fn tap_policy_patch_is_204_visible_and_audited() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let change = json!({
        "@odata.type": POLICY_TYPE,
        "minimumLifetimeInMinutes": 30,
        "maximumLifetimeInMinutes": 480,
        "defaultLifetimeInMinutes": 45,
        "defaultLength": 10,
        "isUsableOnce": true,
    });
    let r = patch(&app, POLICY, &token, change).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    let p = get(&app, POLICY, &token).await.body;
    assert_eq!(p["minimumLifetimeInMinutes"], 30);
    assert_eq!(p["maximumLifetimeInMinutes"], 480);
    assert_eq!(p["defaultLifetimeInMinutes"], 45);
    assert_eq!(p["defaultLength"], 10);
    assert_eq!(p["isUsableOnce"], true);
    assert_eq!(p["state"], "enabled", "an untouched property changed");

    let entries = audits(
        &app,
        "Authentication Methods Policy Update",
        "TemporaryAccessPass",
    )
    .await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let e = &entries[0];
    assert_eq!(e["targetResources"][0]["type"], "Policy");
    assert_eq!(e["initiatedBy"]["app"]["appId"], AUTOMATION_ID, "{e}");
    assert!(
        detail(e, "before").unwrap().contains("\"defaultLength\":8"),
        "{e}"
    );
    assert!(
        detail(e, "after").unwrap().contains("\"defaultLength\":10"),
        "{e}"
    );
}

#[tokio::test]
async fn tap_policy_invalid_patch_is_400_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let before = get(&app, POLICY, &token).await.body;
    let cases: [(Value, &str); 9] = [
        (
            json!({"minimumLifetimeInMinutes": 9}),
            "minimumLifetimeInMinutes",
        ),
        (
            json!({"maximumLifetimeInMinutes": 43201}),
            "maximumLifetimeInMinutes",
        ),
        (
            json!({"defaultLifetimeInMinutes": 59}),
            "defaultLifetimeInMinutes",
        ),
        (
            json!({"defaultLifetimeInMinutes": 1441}),
            "defaultLifetimeInMinutes",
        ),
        (json!({"defaultLength": 7}), "defaultLength"),
        (json!({"defaultLength": 49}), "defaultLength"),
        (
            json!({"minimumLifetimeInMinutes": 600, "maximumLifetimeInMinutes": 500, "defaultLifetimeInMinutes": 550}),
            "minimumLifetimeInMinutes",
        ),
        (json!({"allowedCharacters": "abc"}), "allowedCharacters"),
        (json!({"state": "paused"}), "state"),
    ];
    for (mut body, field) in cases {
        body["@odata.type"] = json!(POLICY_TYPE);
        // A valid change alongside the invalid one must not be applied either.
        body["isUsableOnce"] = json!(true);
        let r = patch(&app, POLICY, &token, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "Request_BadRequest");
        assert!(r.error_message().contains(field), "{body}: {}", r.text);
    }
    let wrong_type = json!({"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "isUsableOnce": true});
    let r = patch(&app, POLICY, &token, wrong_type).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error_message().contains("@odata.type"), "{}", r.text);
    let r = patch(
        &app,
        POLICY,
        &token,
        json!({"includeTargets": [{"id": "someone", "targetType": "group"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error_message().contains("includeTargets"), "{}", r.text);

    assert_eq!(
        get(&app, POLICY, &token).await.body,
        before,
        "a rejected PATCH changed the policy"
    );
    assert!(
        audits(
            &app,
            "Authentication Methods Policy Update",
            "TemporaryAccessPass"
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn tap_existing_pass_is_disabled_by_policy_when_policy_turns_one_time_or_off() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = app.create_user("multi@contoso.com", None).await;
    let uid = user.id.to_string();
    let pass = issue(&app, &token, &uid, json!({"isUsableOnce": false})).await;
    let id = pass["id"].as_str().unwrap();
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (true, "EnabledByPolicy")
    );

    set_policy(&app, &token, json!({"isUsableOnce": true})).await;
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (false, "DisabledByPolicy")
    );
    set_policy(
        &app,
        &token,
        json!({"isUsableOnce": false, "state": "disabled"}),
    )
    .await;
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (false, "DisabledByPolicy")
    );
    // Untargeting the user has the same effect.
    let gid = group_with(&app, &token, "others", &[]).await;
    set_policy(
        &app,
        &token,
        json!({"state": "enabled", "includeTargets": group_target(&gid)}),
    )
    .await;
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (false, "DisabledByPolicy")
    );
    // The reason is the policy's: restoring it restores the pass.
    set_policy(
        &app,
        &token,
        json!({"includeTargets": group_target("all_users")}),
    )
    .await;
    assert_eq!(
        usability(&read_pass(&app, &uid, id).await),
        (true, "EnabledByPolicy")
    );
}

#[tokio::test]
async fn tap_policy_patch_by_policy_admin_is_allowed_and_by_auth_admin_refused() {
    let app = TestApp::spawn().await;
    let scope = "openid Policy.ReadWrite.AuthenticationMethod";
    let apa = user_with(
        &app,
        "apa@contoso.com",
        Some(BuiltinRole::AuthenticationPolicyAdministrator),
    )
    .await;
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
    let (apa, aa, ga) = (
        delegated(&app, &apa, scope).await,
        delegated(&app, &aa, scope).await,
        delegated(&app, &ga, scope).await,
    );

    let r = patch(
        &app,
        POLICY,
        &aa,
        json!({"@odata.type": POLICY_TYPE, "defaultLength": 20}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.error_code(), "Authorization_RequestDenied");
    assert!(
        r.error_message()
            .contains("Authentication Policy Administrator"),
        "{}",
        r.text
    );
    let token = automation(&app).await;
    assert_eq!(get(&app, POLICY, &token).await.body["defaultLength"], 8);

    set_policy(&app, &apa, json!({"defaultLength": 12})).await;
    assert_eq!(get(&app, POLICY, &token).await.body["defaultLength"], 12);
    set_policy(&app, &ga, json!({"defaultLength": 14})).await;
    assert_eq!(get(&app, POLICY, &token).await.body["defaultLength"], 14);
    let entries = audits(
        &app,
        "Authentication Methods Policy Update",
        "TemporaryAccessPass",
    )
    .await;
    assert!(
        entries
            .iter()
            .any(|e| e["initiatedBy"]["user"]["userPrincipalName"] == "apa@contoso.com"),
        "{entries:#?}"
    );
}

// --- the role matrix (delegated) ------------------------------------------------

use crate::harness::{MatrixTarget as Target, tap_matrix as expected};

#[tokio::test]
async fn tap_role_matrix_every_cell_matches_the_documented_table() {
    let app = TestApp::spawn().await;
    let member = user_with(&app, "member@contoso.com", None).await;
    let admin = user_with(
        &app,
        "useradmin@contoso.com",
        Some(BuiltinRole::UserAdministrator),
    )
    .await;
    let issuers = [
        Some(BuiltinRole::GlobalAdministrator),
        Some(BuiltinRole::PrivilegedAuthenticationAdministrator),
        Some(BuiltinRole::AuthenticationAdministrator),
        Some(BuiltinRole::GlobalReader),
        None,
    ];
    let mut callers = Vec::new();
    for (i, role) in issuers.into_iter().enumerate() {
        let user = user_with(&app, &format!("issuer{i}@contoso.com"), role).await;
        let token = delegated(&app, &user, TAP_SCOPE).await;
        callers.push((role, user, token));
    }
    let automation = automation(&app).await;

    let mut wrong = Vec::new();
    for (role, caller, token) in &callers {
        for target in [Target::Member, Target::Admin, Target::OwnAccount] {
            let subject = match target {
                Target::Member => &member,
                Target::Admin => &admin,
                Target::OwnAccount => caller,
            };
            let uid = subject.id.to_string();
            let (may_issue, may_view, may_delete) = expected(*role, target);
            let cell = format!("{role:?} on {target:?}");
            let mut check = |what: &str, r: &Resp, allowed: bool, ok: StatusCode| {
                let fine = if allowed {
                    r.status == ok
                } else {
                    r.status == StatusCode::FORBIDDEN
                        && r.error_code() == "Authorization_RequestDenied"
                        && (target != Target::OwnAccount || r.error_message().contains("yourself"))
                };
                if !fine {
                    wrong.push(format!("{cell} {what}: {} {}", r.status, r.text));
                }
            };

            let r = post(&app, &passes_path("/v1.0", &uid), token, json!({})).await;
            check("issue", &r, may_issue, StatusCode::CREATED);
            if may_issue && r.status == StatusCode::CREATED {
                assert_created(&r.body, 8);
            }
            // Whoever could not issue gets a pass made by the automation app
            // to view and delete.
            let id = if r.status == StatusCode::CREATED {
                r.body["id"].as_str().unwrap().to_owned()
            } else {
                issue(&app, &automation, &uid, json!({})).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };

            let list = get(&app, &passes_path("/v1.0", &uid), token).await;
            check("list", &list, may_view, StatusCode::OK);
            let one = get(&app, &pass_path("/v1.0", &uid, &id), token).await;
            check("get", &one, may_view, StatusCode::OK);
            if list.status == StatusCode::OK {
                assert_eq!(list.body["value"][0]["id"], id.as_str(), "{cell}");
                assert_read(&list.body["value"][0]);
                assert_read(&one.body);
            }

            let d = delete(&app, &pass_path("/v1.0", &uid, &id), token).await;
            check("delete", &d, may_delete, StatusCode::NO_CONTENT);
            let left = get(&app, &passes_path("/v1.0", &uid), &automation).await;
            let still_there = left.body["value"] != json!([]);
            if still_there == (d.status == StatusCode::NO_CONTENT) {
                wrong.push(format!(
                    "{cell}: delete answered {} but the pass is {}",
                    d.status,
                    if still_there { "still there" } else { "gone" }
                ));
            }
            if still_there {
                assert_eq!(
                    delete(&app, &pass_path("/v1.0", &uid, &id), &automation)
                        .await
                        .status,
                    StatusCode::NO_CONTENT
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that differ from the matrix:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn tap_refusals_name_the_missing_role_or_rule() {
    let app = TestApp::spawn().await;
    let admin = user_with(
        &app,
        "groupadmin@contoso.com",
        Some(BuiltinRole::GroupsAdministrator),
    )
    .await;
    let aa = user_with(
        &app,
        "aa@contoso.com",
        Some(BuiltinRole::AuthenticationAdministrator),
    )
    .await;
    let gr = user_with(&app, "gr@contoso.com", Some(BuiltinRole::GlobalReader)).await;
    let nobody = user_with(&app, "nobody@contoso.com", None).await;
    let (aa_t, gr_t, nobody_t) = (
        delegated(&app, &aa, TAP_SCOPE).await,
        delegated(&app, &gr, TAP_SCOPE).await,
        delegated(&app, &nobody, TAP_SCOPE).await,
    );
    let admin_path = passes_path("/v1.0", &admin.id.to_string());
    let member_path = passes_path("/v1.0", &nobody.id.to_string());
    let cases = [
        (
            post(&app, &admin_path, &aa_t, json!({})).await,
            "Privileged Authentication Administrator",
        ),
        (
            post(&app, &member_path, &gr_t, json!({})).await,
            "Global Readers may view",
        ),
        (
            post(&app, &admin_path, &nobody_t, json!({})).await,
            "Authentication Administrator",
        ),
        (
            get(&app, &admin_path, &nobody_t).await,
            "Authentication Administrator",
        ),
        (
            post(
                &app,
                &passes_path("/v1.0", &aa.id.to_string()),
                &aa_t,
                json!({}),
            )
            .await,
            "yourself",
        ),
    ];
    for (r, needle) in cases {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(
            r.error_message().contains(needle),
            "want {needle:?}: {}",
            r.text
        );
    }
    // A delegated token without a TAP scope is refused for the scope.
    let no_scope = delegated(&app, &aa, "openid User.Read").await;
    let r = post(&app, &member_path, &no_scope, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.error_message()
            .contains("UserAuthMethod-TAP.ReadWrite.All"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn tap_via_me_lists_and_deletes_own_pass_but_cannot_create() {
    let app = TestApp::spawn().await;
    let user = user_with(&app, "self@contoso.com", None).await;
    let token = delegated(&app, &user, TAP_SCOPE).await;
    let automation = automation(&app).await;
    let uid = user.id.to_string();

    let r = post(
        &app,
        "/v1.0/me/authentication/temporaryAccessPassMethods",
        &token,
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    let r = post(&app, &passes_path("/v1.0", &uid), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error_message().contains("yourself"), "{}", r.text);
    assert_eq!(
        get(&app, &passes_path("/v1.0", &uid), &automation)
            .await
            .body["value"],
        json!([])
    );

    let created = issue(&app, &automation, &uid, json!({})).await;
    let secret = assert_created(&created, 8);
    let id = created["id"].as_str().unwrap();
    for base in ["/v1.0", "/beta"] {
        let list = get(
            &app,
            &format!("{base}/me/authentication/temporaryAccessPassMethods"),
            &token,
        )
        .await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        assert_eq!(list.body["value"][0]["id"], id);
        assert_read(&list.body["value"][0]);
        let one = get(
            &app,
            &format!("{base}/me/authentication/temporaryAccessPassMethods/{id}"),
            &token,
        )
        .await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.text);
        let methods = get(&app, &format!("{base}/me/authentication/methods"), &token).await;
        assert_eq!(methods.status, StatusCode::OK, "{}", methods.text);
        for text in [&list.text, &one.text, &methods.text] {
            assert!(!text.contains(&secret), "{text}");
        }
    }
    // Only through /me: the same reads via /users/{own id} are refused.
    let r = get(&app, &passes_path("/v1.0", &uid), &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = delete(&app, &pass_path("/v1.0", &uid, id), &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // The pass is the user's only strong method: removing it needs a
    // fresh strong sign-in (as on the security-info page), which a
    // password sign-in is not.
    let own_pass = format!("/v1.0/me/authentication/temporaryAccessPassMethods/{id}");
    let r = delete(&app, &own_pass, &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error_message().contains("fresh sign-in"), "{}", r.text);
    let strong = app
        .tap_user_tokens(&user.user_principal_name, &secret, TAP_SCOPE)
        .await;
    let strong = strong["access_token"].as_str().unwrap();
    let r = delete(&app, &own_pass, strong).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        get(&app, &passes_path("/v1.0", &uid), &automation)
            .await
            .body["value"],
        json!([])
    );
    let entries = audits(&app, "User deleted security info", &uid).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["initiatedBy"]["user"]["id"], uid.as_str());
    // The user did it, not an administrator.
    let reason = detail(&entries[0], "StatusReason").unwrap_or_default();
    assert!(reason.starts_with("User deleted"), "{reason:?}");
    assert!(
        audits(&app, "Admin deleted security info", &uid)
            .await
            .is_empty()
    );

    let r = get(
        &app,
        "/v1.0/me/authentication/temporaryAccessPassMethods",
        &automation,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "an app has no /me: {}",
        r.text
    );
}

#[tokio::test]
async fn tap_methods_list_follows_the_role_matrix_for_viewing() {
    let app = TestApp::spawn().await;
    let member = user_with(&app, "member@contoso.com", None).await;
    let admin = user_with(
        &app,
        "useradmin@contoso.com",
        Some(BuiltinRole::UserAdministrator),
    )
    .await;
    let automation = automation(&app).await;
    let mut callers = Vec::new();
    for (i, role) in [
        Some(BuiltinRole::GlobalAdministrator),
        Some(BuiltinRole::PrivilegedAuthenticationAdministrator),
        Some(BuiltinRole::AuthenticationAdministrator),
        Some(BuiltinRole::GlobalReader),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let user = user_with(&app, &format!("viewer{i}@contoso.com"), role).await;
        callers.push((role, delegated(&app, &user, TAP_SCOPE).await));
    }
    for target in [&member, &admin] {
        issue(&app, &automation, &target.id.to_string(), json!({})).await;
    }
    // Listing all methods shows the pass's details, so whoever may not view
    // the pass may not list the methods either.
    for (role, token) in &callers {
        for (target, kind) in [(&member, Target::Member), (&admin, Target::Admin)] {
            let (_, may_view, _) = expected(*role, kind);
            let r = get(
                &app,
                &format!("/v1.0/users/{}/authentication/methods", target.id),
                token,
            )
            .await;
            if may_view {
                assert_eq!(r.status, StatusCode::OK, "{role:?} on {kind:?}: {}", r.text);
                let tap = r.body["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["@odata.type"] == PASS_TYPE)
                    .cloned();
                assert_read(&tap.unwrap_or_else(|| panic!("no pass listed: {}", r.text)));
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role:?} on {kind:?}: {}",
                    r.text
                );
                assert!(!r.text.contains(PASS_TYPE), "{}", r.text);
            }
        }
    }
}

// --- application permissions ----------------------------------------------------

#[tokio::test]
async fn tap_app_with_tap_write_permission_creates_lists_and_deletes() {
    let app = TestApp::spawn().await;
    let writer = app.app_token(TAP_WRITER_ID, TAP_WRITER_SECRET).await;
    let user = app.create_user("w@contoso.com", None).await;
    let uid = user.id.to_string();
    let pass = issue(&app, &writer, &uid, json!({"lifetimeInMinutes": 90})).await;
    assert_created(&pass, 8);
    let id = pass["id"].as_str().unwrap();
    let list = get(&app, &passes_path("/v1.0", &uid), &writer).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["value"][0]["id"], id);
    assert_eq!(
        get(&app, &pass_path("/v1.0", &uid, id), &writer)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        delete(&app, &pass_path("/v1.0", &uid, id), &writer)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&app, &passes_path("/v1.0", &uid), &writer).await.body["value"],
        json!([])
    );
}

#[tokio::test]
async fn tap_app_with_tap_read_permission_reads_but_cannot_write() {
    let app = TestApp::spawn().await;
    let reader = app.app_token(TAP_READER_ID, TAP_READER_SECRET).await;
    let token = automation(&app).await;
    let user = app.create_user("r@contoso.com", None).await;
    let uid = user.id.to_string();
    let pass = issue(&app, &token, &uid, json!({})).await;
    let id = pass["id"].as_str().unwrap();
    let list = get(&app, &passes_path("/v1.0", &uid), &reader).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["value"][0]["id"], id);
    assert_read(&list.body["value"][0]);
    let one = get(&app, &pass_path("/v1.0", &uid, id), &reader).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    for r in [
        post(&app, &passes_path("/v1.0", &uid), &reader, json!({})).await,
        delete(&app, &pass_path("/v1.0", &uid, id), &reader).await,
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.error_code(), "Authorization_RequestDenied");
        assert!(
            r.error_message()
                .contains("UserAuthMethod-TAP.ReadWrite.All"),
            "{}",
            r.text
        );
    }
    // Neither write happened.
    assert_eq!(read_pass(&app, &uid, id).await["id"], id);
}

#[tokio::test]
async fn tap_app_with_only_user_read_is_403_on_reads_and_writes() {
    let app = TestApp::spawn().await;
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let token = automation(&app).await;
    let user = app.create_user("u@contoso.com", None).await;
    let uid = user.id.to_string();
    let pass = issue(&app, &token, &uid, json!({})).await;
    let id = pass["id"].as_str().unwrap();
    for (r, needle) in [
        (
            get(&app, &passes_path("/v1.0", &uid), &reader).await,
            "UserAuthMethod-TAP.Read.All",
        ),
        (
            get(&app, &pass_path("/v1.0", &uid, id), &reader).await,
            "UserAuthMethod-TAP.Read.All",
        ),
        (
            post(&app, &passes_path("/v1.0", &uid), &reader, json!({})).await,
            "UserAuthMethod-TAP.ReadWrite.All",
        ),
        (
            delete(&app, &pass_path("/v1.0", &uid, id), &reader).await,
            "UserAuthMethod-TAP.ReadWrite.All",
        ),
        (
            get(&app, POLICY, &reader).await,
            "Policy.Read.AuthenticationMethod",
        ),
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(
            r.error_message().contains(needle),
            "want {needle}: {}",
            r.text
        );
    }
    assert_eq!(read_pass(&app, &uid, id).await["id"], id);
}

#[tokio::test]
async fn tap_policy_patch_by_app_needs_policy_write_permission() {
    let app = TestApp::spawn().await;
    let writer = app.app_token(TAP_WRITER_ID, TAP_WRITER_SECRET).await;
    let token = automation(&app).await;
    let r = patch(
        &app,
        POLICY,
        &writer,
        json!({"@odata.type": POLICY_TYPE, "defaultLength": 16}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.error_message()
            .contains("Policy.ReadWrite.AuthenticationMethod"),
        "{}",
        r.text
    );
    assert_eq!(get(&app, POLICY, &token).await.body["defaultLength"], 8);
    set_policy(&app, &token, json!({"defaultLength": 16})).await;
    assert_eq!(get(&app, POLICY, &token).await.body["defaultLength"], 16);
}

// --- audit ------------------------------------------------------------------------

#[tokio::test]
async fn tap_create_audit_severity_is_high_for_admin_and_medium_for_member() {
    let app = TestApp::spawn().await;
    let issuer = user_with(
        &app,
        "paa@contoso.com",
        Some(BuiltinRole::PrivilegedAuthenticationAdministrator),
    )
    .await;
    let delegated_token = delegated(&app, &issuer, TAP_SCOPE).await;
    let writer = app.app_token(TAP_WRITER_ID, TAP_WRITER_SECRET).await;
    let member = app.create_user("member@contoso.com", None).await;
    let admin = app.create_user("admin@contoso.com", None).await;
    app.grant_role(&admin, BuiltinRole::SecurityReader).await;

    for (token, by_app) in [(&writer, true), (&delegated_token, false)] {
        for (target, severity) in [(&member, "Medium"), (&admin, "High")] {
            let uid = target.id.to_string();
            let pass = issue(&app, token, &uid, json!({})).await;
            let id = pass["id"].as_str().unwrap();
            let entries = audits(&app, "Admin registered security info", &uid).await;
            let e = entries
                .iter()
                .find(|e| detail(e, "methodId") == Some(id))
                .unwrap_or_else(|| panic!("no audit for {id}: {entries:#?}"));
            assert_eq!(detail(e, "severity"), Some(severity), "{e}");
            assert_eq!(e["category"], "UserManagement");
            assert_eq!(e["result"], "success");
            assert_eq!(
                e["targetResources"][0]["userPrincipalName"],
                target.user_principal_name.as_str()
            );
            if by_app {
                assert_eq!(e["initiatedBy"]["app"]["appId"], TAP_WRITER_ID, "{e}");
                assert!(
                    e["initiatedBy"].get("user").is_none_or(Value::is_null),
                    "{e}"
                );
            } else {
                assert_eq!(e["initiatedBy"]["user"]["id"], issuer.id.to_string(), "{e}");
                assert_eq!(
                    e["initiatedBy"]["user"]["userPrincipalName"], "paa@contoso.com",
                    "{e}"
                );
                assert!(
                    e["initiatedBy"].get("app").is_none_or(Value::is_null),
                    "{e}"
                );
            }
        }
    }
}

#[tokio::test]
async fn tap_policy_naming_a_missing_group_or_create_with_unknown_property_is_400() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = patch(
        &app,
        POLICY,
        &token,
        json!({"includeTargets": [{"id": UNKNOWN_ID, "targetType": "group"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.to_string().contains("includeTargets"), "{}", r.body);
    let policy = get(&app, POLICY, &token).await;
    assert_eq!(
        policy.body["includeTargets"][0]["id"], "all_users",
        "the rejected PATCH changed nothing"
    );

    let user = user_with(&app, "typo", None).await;
    let r = post(
        &app,
        &passes_path("/v1.0", &user.id.to_string()),
        &token,
        json!({"lifetimeInMinutez": 60}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.to_string().contains("lifetimeInMinutez"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn per_user_mfa_state_reads_and_updates_with_validation() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let user = user_with(&app, "mfa-user", None).await;
    let path = format!("/beta/users/{}/authentication/requirements", user.id);
    let r = get(&app, &path, &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["perUserMfaState"], "disabled");
    let r = patch(&app, &path, &token, json!({"perUserMfaState": "enforced"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, &path, &token).await.body["perUserMfaState"],
        "enforced"
    );
    let r = patch(&app, &path, &token, json!({"perUserMfaState": "sometimes"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("perUserMfaState"), "{}", r.text);
    let reader = app.app_token(TAP_READER_ID, TAP_READER_SECRET).await;
    assert_eq!(
        patch(&app, &path, &reader, json!({"perUserMfaState": "disabled"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&app, &path, &token).await.body["perUserMfaState"],
        "enforced",
        "the refused PATCH changed nothing"
    );
}

/// `[tap]` seeds the first start only: once the policy is changed (here
/// through the Graph API), the start-up warnings name the section and say
/// where the policy is managed now.
#[tokio::test]
async fn a_tap_section_that_differs_from_the_stored_policy_is_named_at_start_up() {
    let app = TestApp::spawn().await;
    let quiet = gatepass::server::startup_warnings(&app.state).await;
    assert!(!quiet.iter().any(|w| w.contains("`[tap]`")), "{quiet:?}");
    let automation = automation(&app).await;
    let r = patch(
        &app,
        "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass",
        &automation,
        json!({"maximumLifetimeInMinutes": 600}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let warned = gatepass::server::startup_warnings(&app.state).await;
    assert!(
        warned
            .iter()
            .any(|w| w.contains("`[tap]`") && w.contains("admin console")),
        "{warned:?}"
    );
}
