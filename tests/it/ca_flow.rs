//! Conditional access enforced on real sign-ins, managed over Graph, and
//! What-If through the API and the CLI on the same inputs.

use crate::harness::*;
use crate::passkey::account_sign_in_with_tap;
use gatepass::clock::Clock;
use gatepass::policy::ca_store::CaKind;
use openidconnect::Nonce;
use serde_json::{Value, json};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples");

/// An example file with its policies switched on (they ship in
/// report-only, so posting one cannot lock anyone out).
fn example_on(file: &str) -> String {
    std::fs::read_to_string(format!("{EXAMPLES}/{file}"))
        .unwrap()
        .replace("\"enabledForReportingButNotEnforced\"", "\"enabled\"")
}

/// Loads an example file's objects straight into the store (what the
/// `[conditional_access]` seed does on first start).
async fn seed(app: &TestApp, kind: CaKind, file: &str) {
    let text = example_on(file);
    let doc: Value = serde_json::from_str(&text).unwrap();
    // One object, an array, or a Graph collection {"value": [...]}.
    let items = match doc {
        Value::Array(v) => v,
        Value::Object(ref o) if o.get("value").is_some_and(Value::is_array) => {
            o["value"].as_array().unwrap().clone()
        }
        other => vec![other],
    };
    for item in items {
        app.state
            .ca
            .put(kind, item["id"].as_str().unwrap(), &item)
            .await
            .unwrap();
    }
}

/// Appends extra query parameters to an authorization URL.
fn with_query(
    (url, verifier, nonce): (String, openidconnect::PkceCodeVerifier, Nonce),
    extra: &str,
) -> (String, openidconnect::PkceCodeVerifier, Nonce) {
    (format!("{url}{extra}"), verifier, nonce)
}

/// From a passkey method page: run the username-first ceremony; returns
/// the redirect the script would follow.
async fn passkey_on(
    app: &TestApp,
    browser: &Browser,
    page: &Page,
    auth: &mut SoftAuthenticator,
) -> String {
    let flow = page.hidden("flow").expect("flow");
    let csrf = page.hidden("csrf").expect("csrf");
    let (status, start) = post_json(
        browser,
        app,
        "/signin/passkey/start",
        None,
        json!({"flow": flow, "csrf": csrf, "mode": "username"}),
    )
    .await;
    assert_eq!(status, 200, "{start}");
    let assertion = auth.authenticate(start["options"].clone());
    let (status, done) = post_json(
        browser,
        app,
        "/signin/passkey/finish",
        None,
        json!({"flow": flow, "csrf": csrf, "ceremony": start["ceremony"], "credential": assertion}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    done["redirect"].as_str().unwrap().to_owned()
}

async fn exchange(
    app: &TestApp,
    rp: &Rp,
    location: &str,
    verifier: openidconnect::PkceCodeVerifier,
    nonce: &Nonce,
) -> Vec<String> {
    let code = query_param(location, "code").unwrap_or_else(|| panic!("no code in {location}"));
    let tokens = redeem(app, rp, code, verifier).await;
    amr(&id_claims(rp, &tokens, nonce))
}

#[tokio::test]
async fn ca_recommended_pattern_tap_registers_passkey_but_app_needs_the_passkey() {
    let app = TestApp::spawn().await;
    seed(&app, CaKind::Strength, "ca-strengths.json").await;
    seed(&app, CaKind::Policy, "ca-recommended-tap-registration.json").await;
    let user = app.create_user("recruit", None).await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;

    // The TAP signs the user in, but the app needs MFA without TAP: refused.
    let browser = app.browser();
    let (url, _, _) = authorize_url(&rp, &[]);
    let first = browser.get(&url).await;
    let flow = first.hidden("flow").unwrap();
    let next = browser
        .post_form(
            "/signin/username",
            &[
                ("flow", &flow),
                ("csrf", &first.hidden("csrf").unwrap()),
                ("username", "recruit"),
            ],
        )
        .await;
    let tap_page = browser.get(&next.location.unwrap()).await;
    let refused = browser
        .post_form(
            "/signin/tap",
            &[
                ("flow", &flow),
                ("csrf", &tap_page.hidden("csrf").unwrap()),
                ("tap", &tap),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(
        refused.html.contains("MFA without TAP"),
        "the page names what is required: {}",
        refused.html
    );
    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    assert_eq!(log[0].status.error_code, 53003);
    assert!(!log[0].applied_conditional_access_policies.is_empty());

    // The same session reaches security info (TAP allowed there) and adds a passkey.
    let mut auth = SoftAuthenticator::new(&app.issuer);
    assert_eq!(add_passkey(&app, &browser, &mut auth, "Key").await.0, 201);

    // Back at the app: stepped up to the passkey, then let in.
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let step = browser.get(&url).await;
    let method_page = browser.get(&step.location.expect("step-up redirect")).await;
    assert!(
        method_page.has_button("Sign in with a passkey"),
        "{}",
        method_page.html
    );
    assert!(
        method_page.html.contains("MFA without TAP"),
        "the step-up says why"
    );
    let redirect = passkey_on(&app, &browser, &method_page, &mut auth).await;
    let amr = exchange(&app, &rp, &redirect, verifier, &nonce).await;
    assert!(
        amr.contains(&"pop".to_owned()) && amr.contains(&"mfa".to_owned()),
        "{amr:?}"
    );
}

#[tokio::test]
async fn ca_password_at_phishing_resistant_app_is_stepped_up_to_passkey() {
    let app = TestApp::spawn().await;
    let user = app.create_user("boss", Some("boss password")).await;
    // Give the user a passkey first (TAP onboarding).
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    let onboarding = app.browser();
    account_sign_in_with_tap(&app, &onboarding, "boss", &tap).await;
    let mut auth = SoftAuthenticator::new(&app.issuer);
    assert_eq!(
        add_passkey(&app, &onboarding, &mut auth, "Key").await.0,
        201
    );
    // A policy: the RP app requires Phishing-resistant MFA (built-in 0004).
    app.state
        .ca
        .put(
            CaKind::Policy,
            "p-phish",
            &json!({
                "id": "p-phish", "displayName": "RP needs phishing-resistant MFA", "state": "enabled",
                "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": [RP_ID]}, "clientAppTypes": ["all"]},
                "grantControls": {"operator": "OR", "authenticationStrength": {"id": "00000000-0000-0000-0000-000000000004"}}
            }),
        )
        .await
        .unwrap();
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let browser = app.browser();
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let first = browser.get(&url).await;
    let done = browser
        .submit_credentials(&first, "boss", "boss password")
        .await;
    let method_page = browser
        .get(&done.location.expect("a step-up, not a code"))
        .await;
    assert!(method_page.has_button("Sign in with a passkey"));
    assert!(
        !method_page.has_label("Password"),
        "the step-up never offers the password again"
    );
    let redirect = passkey_on(&app, &browser, &method_page, &mut auth).await;
    assert_eq!(
        exchange(&app, &rp, &redirect, verifier, &nonce).await,
        ["pwd", "pop", "mfa"]
    );

    // The log tells one sign-in: the interrupted attempt and its step-up
    // share a correlationId, and the step-up lists the password as proven
    // before it. Replayed against the policy in force, it is one sign-in,
    // allowed: the interruption is not counted as a step-up of its own.
    let token = crate::graph_client::automation(&app).await;
    let log = crate::graph_client::get(
        &app,
        &format!("/v1.0/auditLogs/signIns?$filter=appId eq '{RP_ID}'"),
        &token,
    )
    .await;
    let entries = log.body["value"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", log.text);
    // (The test clock stands still: both have one time; tell them by status.)
    let by_code = |code: u64| {
        entries
            .iter()
            .find(|e| e["status"]["errorCode"] == code)
            .unwrap()
    };
    let (done, interrupted) = (by_code(0), by_code(50074));
    assert_eq!(interrupted["status"]["errorCode"], 50074);
    assert_eq!(done["status"]["errorCode"], 0);
    assert!(done["correlationId"].is_string());
    assert_eq!(done["correlationId"], interrupted["correlationId"]);
    assert_eq!(
        done["authenticationDetails"],
        json!([
            {"authenticationMethod": "Password", "authenticationMethodDetail": "Previously satisfied",
             "succeeded": true, "authenticationStepDateTime": done["createdDateTime"],
             "authenticationStepRequirement": "Primary authentication"},
            // The software authenticator's AAGUID is all zeros: no detail.
            {"authenticationMethod": "Passkey (device-bound)", "authenticationMethodDetail": null,
             "succeeded": true, "authenticationStepDateTime": done["createdDateTime"],
             "authenticationStepRequirement": "Multi-factor authentication"}
        ])
    );
    let policies = app
        .state
        .ca
        .list(CaKind::Policy, app.clock.now().unix_timestamp())
        .await
        .unwrap();
    let (code, report) = ca_impact(&json!(policies), None, &log.text);
    assert_eq!(report["replayed"], 1, "{report:#}");
    assert_eq!(report["decisions"]["allow"], 1);
    assert_eq!(code, Some(0), "{report:#}");
}

/// `gatepass ca impact --json` on `policies` (and named `locations`) and a
/// sign-in log; its exit code and report.
fn ca_impact(policies: &Value, locations: Option<&str>, log: &str) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (p, s) = (dir.path().join("p.json"), dir.path().join("s.json"));
    std::fs::write(&p, policies.to_string()).unwrap();
    std::fs::write(&s, log).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    command
        .args(["ca", "impact", "--json", "--policies"])
        .arg(&p);
    command.arg("--sign-ins").arg(&s);
    if let Some(l) = locations {
        command.args(["--locations", l]);
    }
    let out = command.output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

#[tokio::test]
async fn ca_acr_values_phishing_resistant_steps_up_like_a_policy() {
    let app = TestApp::spawn().await;
    let user = app.create_user("acr-user", Some("acr password")).await;
    let tap = app.issue_tap(&user, json!({"isUsableOnce": true})).await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    let onboarding = app.browser();
    account_sign_in_with_tap(&app, &onboarding, "acr-user", &tap).await;
    let mut auth = SoftAuthenticator::new(&app.issuer);
    assert_eq!(
        add_passkey(&app, &onboarding, &mut auth, "Key").await.0,
        201
    );
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let browser = app.browser();
    let (url, verifier, nonce) = with_query(
        authorize_url(&rp, &[]),
        "&acr_values=phishing_resistant_mfa",
    );
    let first = browser.get(&url).await;
    let done = browser
        .submit_credentials(&first, "acr-user", "acr password")
        .await;
    let method_page = browser.get(&done.location.expect("step-up")).await;
    let redirect = passkey_on(&app, &browser, &method_page, &mut auth).await;
    assert_eq!(
        exchange(&app, &rp, &redirect, verifier, &nonce).await,
        ["pwd", "pop", "mfa"]
    );
    // Without a passkey, the essential acr cannot be met: refused.
    app.create_user("weak", Some("weak password")).await;
    let claims = url::form_urlencoded::byte_serialize(
        br#"{"id_token":{"acr":{"essential":true,"value":"phishing_resistant_mfa"}}}"#,
    )
    .collect::<String>();
    let (url, _, _) = with_query(authorize_url(&rp, &[]), &format!("&claims={claims}"));
    let browser = app.browser();
    let first = browser.get(&url).await;
    let done = browser
        .submit_credentials(&first, "weak", "weak password")
        .await;
    assert_eq!(done.status, 403);
}

/// With the example's named locations and its block-outside policy, a
/// user signs in with a password from 127.0.0.1; the authorize URL and the
/// page the password post lands on.
async fn roamer_signs_in_outside_the_named_location(app: &TestApp) -> (String, Page) {
    app.create_user("roamer", Some("roamer password")).await;
    seed(app, CaKind::NamedLocation, "named-locations.json").await;
    seed(app, CaKind::Policy, "ca-block-outside-named-location.json").await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    let done = browser
        .submit_credentials(&first, "roamer", "roamer password")
        .await;
    (url, done)
}

#[tokio::test]
async fn ca_block_outside_named_location_and_report_only_is_logged_not_enforced() {
    let app = TestApp::spawn().await;
    let (url, done) = roamer_signs_in_outside_the_named_location(&app).await;
    // 127.0.0.1 is outside the example's trusted ranges.
    assert_eq!(done.status, 403, "{}", done.html);
    assert!(done.html.contains("blocked"));

    // The same policy report-only: the sign-in goes through, the log says
    // what would have happened. (A second later, so the log orders them.)
    app.clock.advance(time::Duration::seconds(1));
    let mut policies = app
        .state
        .ca
        .list(CaKind::Policy, app.clock.now().unix_timestamp())
        .await
        .unwrap();
    for p in &mut policies {
        p["state"] = json!("enabledForReportingButNotEnforced");
        app.state
            .ca
            .put(CaKind::Policy, p["id"].as_str().unwrap(), p)
            .await
            .unwrap();
    }
    let browser = app.browser();
    let first = browser.get(&url).await;
    let done = browser
        .submit_credentials(&first, "roamer", "roamer password")
        .await;
    assert!(done.location.unwrap().contains("code="));
    let log = app.state.audit.sign_ins(app.clock.now()).await.unwrap();
    let results: Vec<&str> = log[0]
        .applied_conditional_access_policies
        .iter()
        .filter_map(|p| p["result"].as_str())
        .collect();
    assert!(
        results.iter().any(|r| r.starts_with("reportOnly")),
        "{results:?}"
    );
}

#[tokio::test]
async fn ca_per_user_mfa_enforced_requires_mfa() {
    let app = TestApp::spawn().await;
    let user = app.create_user("strict", Some("strict password")).await;
    app.state
        .directory
        .set_mfa_state(
            user.id,
            gatepass::directory::PerUserMfaState::Enforced,
            app.clock.now(),
        )
        .await
        .unwrap();
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    let done = browser
        .submit_credentials(&first, "strict", "strict password")
        .await;
    assert_eq!(
        done.status, 403,
        "password alone does not satisfy enforced MFA and the user has nothing else"
    );
    // With a usable pass, the step-up offers it, and the pass satisfies MFA.
    let tap = app.issue_tap(&user, json!({"isUsableOnce": false})).await["temporaryAccessPass"]
        .as_str()
        .unwrap()
        .to_owned();
    let (url, verifier, nonce) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    let flow = first.hidden("flow").unwrap();
    let next = browser
        .post_form(
            "/signin/username",
            &[
                ("flow", &flow),
                ("csrf", &first.hidden("csrf").unwrap()),
                ("username", "strict"),
            ],
        )
        .await;
    let tap_page = browser.get(&next.location.unwrap()).await;
    let done = browser
        .post_form(
            "/signin/tap",
            &[
                ("flow", &flow),
                ("csrf", &tap_page.hidden("csrf").unwrap()),
                ("tap", &tap),
            ],
        )
        .await;
    assert_eq!(
        exchange(&app, &rp, &done.location.unwrap(), verifier, &nonce).await,
        ["tap", "mfa"]
    );
}

#[tokio::test]
async fn ca_graph_management_validates_and_what_if_api_matches_the_cli() {
    let app = TestApp::spawn().await;
    let admin = app
        .create_user("ca-admin@contoso.com", Some("ca admin password"))
        .await;
    app.grant_role(
        &admin,
        gatepass::directory::roles::BuiltinRole::GlobalAdministrator,
    )
    .await;
    let token = app.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
    let base = app.url("/v1.0/identity/conditionalAccess");
    // Create the example strengths and policies over Graph.
    let strengths: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{EXAMPLES}/ca-strengths.json")).unwrap(),
    )
    .unwrap();
    let mut strength_ids = std::collections::HashMap::new();
    for s in strengths["value"].as_array().unwrap() {
        let r = app
            .http
            .post(format!("{base}/authenticationStrength/policies"))
            .bearer_auth(&token)
            .json(s)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.unwrap();
        strength_ids.insert(
            s["id"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        );
    }
    let mut policies_text = example_on("ca-recommended-tap-registration.json");
    for (old, new) in &strength_ids {
        policies_text = policies_text.replace(old, new);
    }
    let policies: Value = serde_json::from_str(&policies_text).unwrap();
    for p in policies["value"].as_array().unwrap() {
        let r = app
            .http
            .post(format!("{base}/policies"))
            .bearer_auth(&token)
            .json(p)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // Invalid JSON and an invalid reference: 400 naming the property.
    let r = app
        .http
        .post(format!("{base}/policies"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut bad = policies["value"][0].clone();
    bad["grantControls"]["authenticationStrength"] =
        json!({"id": "11111111-1111-1111-1111-111111111111"});
    let r = app
        .http
        .post(format!("{base}/policies"))
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("authenticationStrength"));
    // A reader app may not write.
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    let r = app
        .http
        .post(format!("{base}/policies"))
        .bearer_auth(&reader)
        .json(&policies["value"][0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // What-If through the API...
    let body = json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "ca-admin@contoso.com"},
        "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [RP_ID]},
        "signInConditions": {"ipAddress": "203.0.113.7", "devicePlatform": "windows", "clientAppType": "browser"},
        "authenticationMethods": ["temporaryAccessPassOneTime"]
    });
    let r = app
        .http
        .post(format!("{base}/evaluate"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let api: Value = r.json().await.unwrap();
    assert_eq!(api["decision"], "stepUp", "{api}");

    // ...and through the CLI, on the policies exported from the API.
    let exported = app
        .http
        .get(format!("{base}/policies"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let strengths_exported = app
        .http
        .get(format!("{base}/authenticationStrength/policies"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.json"), exported).unwrap();
    std::fs::write(dir.path().join("strengths.json"), strengths_exported).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .args(["ca", "what-if", "--policies"])
        .arg(dir.path().join("policies.json"))
        .arg("--strengths")
        .arg(dir.path().join("strengths.json"))
        .args([
            "--user",
            "ca-admin@contoso.com",
            "--roles",
            "Global Administrator",
            "--app",
            RP_ID,
            "--ip",
            "203.0.113.7",
            "--platform",
            "windows",
            "--client-app",
            "browser",
            "--methods",
            "temporaryAccessPassOneTime",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["decision"], api["decision"]);
    let strip = |v: &Value| -> Vec<Value> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                json!([
                    p["id"],
                    p["policyApplies"],
                    p["analysisReasons"],
                    p["satisfied"],
                    p["requirement"]
                ])
            })
            .collect()
    };
    assert_eq!(
        strip(&cli),
        strip(&api),
        "API and CLI agree policy by policy"
    );
    // The table form is readable too.
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .args(["ca", "what-if", "--policies"])
        .arg(dir.path().join("policies.json"))
        .arg("--strengths")
        .arg(dir.path().join("strengths.json"))
        .args([
            "--user",
            "ca-admin@contoso.com",
            "--user-action",
            "registerSecurityInformation",
            "--methods",
            "temporaryAccessPassOneTime",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Decision: allow"), "{text}");
}

/// `gatepass ca impact` on Gatepass's own sign-in log, read through the
/// Graph API: a sign-in conditional access refused is replayed (its method
/// succeeded; the refusal is not the method's failure), with the platform
/// the log recorded.
#[tokio::test]
async fn ca_impact_replays_gatepass_own_log_including_refused_sign_ins() {
    let app = TestApp::spawn().await;
    let (_, done) = roamer_signs_in_outside_the_named_location(&app).await;
    assert_eq!(done.status, 403, "{}", done.html);

    let token = crate::graph_client::automation(&app).await;
    let log = crate::graph_client::get(&app, "/v1.0/auditLogs/signIns", &token).await;
    let entry = &log.body["value"][0];
    assert_eq!(entry["status"]["errorCode"], 53003, "{}", log.text);
    assert_eq!(entry["authenticationDetails"][0]["succeeded"], true);
    assert!(entry["deviceDetail"]["operatingSystem"].is_string());

    let policies: Value =
        serde_json::from_str(&example_on("ca-block-outside-named-location.json")).unwrap();
    let (code, report) = ca_impact(
        &policies,
        Some(&format!("{EXAMPLES}/named-locations.json")),
        &log.text,
    );
    assert_eq!(report["replayed"], 1, "{report:#}");
    assert_eq!(report["skipped"], json!([]));
    assert_eq!(report["decisions"]["block"], 1);
    assert_eq!(code, Some(1), "the draft blocks a sign-in");
}

/// Live sign-ins under policies that name a group and a role: the gate
/// reads a user's groups and roles when a policy asks about them, and
/// only members and role holders are stopped.
#[tokio::test]
async fn ca_policies_on_a_group_and_a_role_stop_exactly_their_members() {
    use gatepass::directory::roles::BuiltinRole;
    let app = TestApp::spawn().await;
    let now = app.clock.now();
    let contractor = app.create_user("contractor", Some("contractor pw 1")).await;
    let reader = app.create_user("reader", Some("reader pw 1")).await;
    app.create_user("employee", Some("employee pw 1")).await;
    let group = app
        .state
        .directory
        .create_group("Contractors".into(), None, None, now)
        .await
        .unwrap();
    app.state
        .directory
        .add_member(group.id, contractor.id, now)
        .await
        .unwrap();
    app.grant_role(&reader, BuiltinRole::GlobalReader).await;
    let block = |id: &str, users: Value| {
        json!({"id": id, "displayName": id, "state": "enabled",
            "conditions": {"users": users, "applications": {"includeApplications": [RP_ID]}},
            "grantControls": {"operator": "OR", "builtInControls": ["block"]}})
    };
    for (id, policy) in [
        (
            "block-contractors",
            block(
                "block-contractors",
                json!({"includeGroups": [group.id.to_string()]}),
            ),
        ),
        (
            "block-readers",
            block(
                "block-readers",
                json!({"includeRoles": [BuiltinRole::GlobalReader.template_id()]}),
            ),
        ),
    ] {
        app.state.ca.put(CaKind::Policy, id, &policy).await.unwrap();
    }
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    for (username, password, blocked) in [
        ("contractor", "contractor pw 1", true),
        ("reader", "reader pw 1", true),
        ("employee", "employee pw 1", false),
    ] {
        let (url, _, _) = authorize_url(&rp, &[]);
        let browser = app.browser();
        let first = browser.get(&url).await;
        let done = browser.submit_credentials(&first, username, password).await;
        if blocked {
            assert_eq!(done.status, 403, "{username}: {}", done.html);
        } else {
            assert!(
                done.location
                    .as_deref()
                    .is_some_and(|l| l.contains("code=")),
                "{username}: {}",
                done.html
            );
        }
    }
}

/// An unknown method or role in `ca what-if` lists the valid names.
#[test]
fn ca_what_if_names_the_valid_methods_and_roles_when_given_an_unknown_one() {
    let policies = format!("{EXAMPLES}/ca-recommended-tap-registration.json");
    let strengths = format!("{EXAMPLES}/ca-strengths.json");
    for (flag, value, listed) in [
        ("--methods", "smartcard", "temporaryAccessPassOneTime"),
        (
            "--roles",
            "Chief Everything Officer",
            "Authentication Administrator",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args([
                "ca",
                "what-if",
                "--policies",
                &policies,
                "--strengths",
                &strengths,
            ])
            .args(["--user", "someone@contoso.com", "--app", "All", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(value), "{said}");
        assert!(said.contains(listed), "{flag}: {said}");
    }
}
