//! The passkey half of the authentication methods policy through the real
//! interfaces (DESIGN §2.11): the Graph shapes of
//! `…/authenticationMethodConfigurations/Fido2` and the whole
//! `authenticationMethodsPolicy`, key restrictions and attestation enforced
//! at registration (a software authenticator with a chosen AAGUID and
//! attestation), a passkey the policy no longer admits refused at sign-in,
//! authenticator names, and the sign-in log in Entra ID's shape.

use crate::authenticator::{Attestation, AttestationCa, KeyAuthenticator};
use crate::graph_client::*;
use crate::harness::*;
use crate::passkey::{account_sign_in_with_tap, passkey_finish, passkey_start};
use gatepass::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const FIDO2: &str =
    "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2";
const METHODS_POLICY: &str = "/v1.0/policies/authenticationMethodsPolicy";
const AUDITS: &str = "/v1.0/auditLogs/directoryAudits";
const SIGN_INS: &str = "/v1.0/auditLogs/signIns";
/// In the shipped name list (`assets/aaguids.json`) as "Windows Hello".
const HELLO: &str = "08987058-cadc-4b81-b6e1-30de50dcbe96";
/// In the shipped list as "Google Password Manager".
const GOOGLE: &str = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";
/// In no list: an authenticator Gatepass has no name for.
const UNKNOWN: &str = "5f0b4a1c-7e2d-4c39-9a8b-1d2e3f4a5b6c";

fn device(app: &TestApp, aaguid: &str) -> KeyAuthenticator {
    KeyAuthenticator::new(&app.issuer, Uuid::parse_str(aaguid).unwrap())
}

/// A user signed in to the security-info page with a one-time pass (the
/// registration window open): the browser.
async fn tap_browser(app: &TestApp, username: &str) -> (gatepass::directory::User, Browser) {
    let user = app.create_user(username, None).await;
    let created = app.issue_tap(&user, json!({"isUsableOnce": true})).await;
    let browser = app.browser();
    account_sign_in_with_tap(
        app,
        &browser,
        username,
        created["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    (user, browser)
}

async fn set_fido2(app: &TestApp, body: Value) -> Resp {
    let token = automation(app).await;
    patch(app, FIDO2, &token, body).await
}

async fn restrict(app: &TestApp, kind: &str, aaguids: &[&str]) {
    let r = set_fido2(
        app,
        json!({"keyRestrictions": {"isEnforced": true, "enforcementType": kind, "aaGuids": aaguids}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

/// Passkey sign-in (discoverable) to the RP; (status, body) of finish.
/// The clock moves a second first, so the sign-in log's newest entry is
/// this sign-in's.
async fn passkey_sign_in(app: &TestApp, auth: &mut KeyAuthenticator) -> (u16, Value) {
    app.clock.advance(time::Duration::seconds(1));
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app
        .browser_with_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36");
    let first = browser.get(&url).await;
    let (status, start) = passkey_start(app, &browser, &first, "discoverable").await;
    assert_eq!(status, 200, "{start}");
    let assertion = auth.authenticate(start["options"].clone());
    passkey_finish(app, &browser, &first, &start["ceremony"], assertion).await
}

#[tokio::test]
async fn fido2_configuration_graph_shape_defaults_patch_and_validation() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = get(&app, FIDO2, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The documented example's property set (Graph v1.0 "Get
    // fido2AuthenticationMethodConfiguration"), with Gatepass's defaults.
    assert_eq!(
        keys(&r.body),
        [
            "@odata.context",
            "@odata.type",
            "excludeTargets",
            "id",
            "includeTargets",
            "isAttestationEnforced",
            "isSelfServiceRegistrationAllowed",
            "keyRestrictions",
            "state",
        ]
        .into()
    );
    assert_eq!(
        r.body["@odata.type"],
        "#microsoft.graph.fido2AuthenticationMethodConfiguration"
    );
    assert_eq!(r.body["id"], "Fido2");
    assert_eq!(r.body["state"], "enabled");
    assert_eq!(r.body["isSelfServiceRegistrationAllowed"], true);
    assert_eq!(r.body["isAttestationEnforced"], false);
    assert_eq!(
        r.body["keyRestrictions"],
        json!({"isEnforced": false, "enforcementType": "block", "aaGuids": []})
    );
    assert_eq!(
        r.body["includeTargets"],
        json!([{"id": "all_users", "targetType": "group", "isRegistrationRequired": false}])
    );

    // PATCH: AAGUIDs normalised (case, duplicates), the rest unchanged.
    let r = patch(
        &app,
        FIDO2,
        &token,
        json!({
            "@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration",
            "keyRestrictions": {"@odata.type": "#microsoft.graph.fido2KeyRestrictions",
                "isEnforced": true, "enforcementType": "allow",
                "aaGuids": [HELLO.to_uppercase(), HELLO]},
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&app, FIDO2, &token).await;
    assert_eq!(
        r.body["keyRestrictions"],
        json!({"isEnforced": true, "enforcementType": "allow", "aaGuids": [HELLO]})
    );
    assert_eq!(r.body["isSelfServiceRegistrationAllowed"], true);

    // Each refusal names its property; nothing is stored.
    for (body, target) in [
        (
            json!({"keyRestrictions": {"aaGuids": ["not-a-uuid"]}}),
            "keyRestrictions",
        ),
        (
            json!({"isAttestationEnforced": true}),
            "isAttestationEnforced",
        ),
        (
            json!({"includeTargets": [{"id": Uuid::nil().to_string(), "targetType": "group"}]}),
            "includeTargets",
        ),
        (
            json!({"excludeTargets": [{"id": "all_users", "targetType": "role"}]}),
            "excludeTargets",
        ),
    ] {
        let r = patch(&app, FIDO2, &token, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["target"], target, "{}", r.text);
    }
    let r = patch(&app, FIDO2, &token, json!({"isEnforced": true})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown property");
    let r = get(&app, FIDO2, &token).await;
    assert_eq!(r.body["isAttestationEnforced"], false);

    // Who may: an app without the policy permission may not even read it.
    let reader = app.app_token(READER_APP_ID, READER_APP_SECRET).await;
    assert_eq!(
        get(&app, FIDO2, &reader).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        patch(&app, FIDO2, &reader, json!({"state": "disabled"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Audited with before and after.
    let audits = get(&app, AUDITS, &token).await;
    let change = audits.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["targetResources"][0]["id"] == "Fido2")
        .expect("the change is audited");
    assert_eq!(
        change["activityDisplayName"],
        "Authentication Methods Policy Update"
    );
    let after = change["additionalDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"] == "after")
        .unwrap();
    assert!(after["value"].as_str().unwrap().contains(HELLO));
}

#[tokio::test]
async fn the_whole_methods_policy_and_its_campaign_in_graph_shape() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let r = get(&app, METHODS_POLICY, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        keys(&r.body),
        [
            "@odata.context",
            "authenticationMethodConfigurations",
            "authenticationMethodConfigurations@odata.context",
            "description",
            "displayName",
            "id",
            "policyMigrationState",
            "policyVersion",
            "registrationEnforcement",
        ]
        .into()
    );
    assert_eq!(r.body["id"], "authenticationMethodsPolicy");
    let ids: Vec<&str> = r.body["authenticationMethodConfigurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["TemporaryAccessPass", "Fido2"]);
    // The documented default campaign, with the passkey as its method.
    assert_eq!(
        r.body["registrationEnforcement"]["authenticationMethodsRegistrationCampaign"],
        json!({
            "state": "default",
            "snoozeDurationInDays": 1,
            "enforceRegistrationAfterAllowedSnoozes": true,
            "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "fido2"}],
            "excludeTargets": [],
        })
    );

    let campaign = |c: Value| json!({"registrationEnforcement": {"authenticationMethodsRegistrationCampaign": c}});
    let r = patch(
        &app,
        METHODS_POLICY,
        &token,
        campaign(json!({"state": "enabled", "snoozeDurationInDays": 3,
            "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "Fido2"}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&app, METHODS_POLICY, &token).await;
    let c = &r.body["registrationEnforcement"]["authenticationMethodsRegistrationCampaign"];
    assert_eq!(c["state"], "enabled");
    assert_eq!(c["snoozeDurationInDays"], 3);
    assert_eq!(c["enforceRegistrationAfterAllowedSnoozes"], true);

    for (body, target) in [
        (json!({"snoozeDurationInDays": 15}), "snoozeDurationInDays"),
        (
            json!({"includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"}]}),
            "includeTargets",
        ),
        (
            json!({"excludeTargets": [{"id": Uuid::nil().to_string(), "targetType": "user"}]}),
            "excludeTargets",
        ),
    ] {
        let r = patch(&app, METHODS_POLICY, &token, campaign(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["target"], target, "{}", r.text);
    }
    let r = get(&app, METHODS_POLICY, &token).await;
    assert_eq!(
        r.body["registrationEnforcement"]["authenticationMethodsRegistrationCampaign"]["snoozeDurationInDays"],
        3,
        "a refused PATCH changes nothing"
    );
}

#[tokio::test]
async fn key_restrictions_decide_registration_by_the_authenticators_aaguid() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    restrict(&app, "allow", &[HELLO]).await;

    // Allowed: registered, named from the shipped list everywhere.
    let (user, browser) = tap_browser(&app, "allowed").await;
    let mut hello = device(&app, HELLO);
    let (status, body) = add_passkey(&app, &browser, &mut hello, "Laptop").await;
    assert_eq!(status, 201, "{body}");
    let listed = get(
        &app,
        &format!("/v1.0/users/{}/authentication/fido2Methods", user.id),
        &token,
    )
    .await;
    let method = &listed.body["value"][0];
    assert_eq!(method["aaGuid"], HELLO);
    assert_eq!(method["model"], "Windows Hello");
    assert_eq!(method["displayName"], "Laptop");
    assert_eq!(method["attestationLevel"], "notAttested");
    let page = browser.get("/account/security-info").await;
    assert!(page.html.contains("Windows Hello"), "{}", page.html);

    // Another model, and one nobody has a name for: refused, saying why,
    // audited as a failed registration; nothing stored.
    for (aaguid, shown) in [(GOOGLE, "Google Password Manager"), (UNKNOWN, UNKNOWN)] {
        let (user, browser) = tap_browser(&app, &format!("refused-{}", &aaguid[..4])).await;
        let (status, body) = add_passkey(&app, &browser, &mut device(&app, aaguid), "Key").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"], "passkey_policy.model_restricted");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("does not allow this authenticator"),
            "{message}"
        );
        assert!(message.contains(shown), "{message}");
        let keys = app
            .state
            .passkeys
            .list(user.id, app.clock.now().unix_timestamp())
            .await
            .unwrap();
        assert!(keys.is_empty());
        let audits = get(&app, AUDITS, &token).await;
        let failed = audits.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["targetResources"][0]["id"] == user.id.to_string() && e["result"] == "failure"
            })
            .unwrap_or_else(|| panic!("no failed registration audited: {}", audits.text));
        assert_eq!(
            failed["activityDisplayName"],
            "User registered security info"
        );
        assert!(failed["resultReason"].as_str().unwrap().contains(shown));
    }

    // A block list admits everything else, the unknown model included.
    restrict(&app, "block", &[GOOGLE]).await;
    let (_, browser) = tap_browser(&app, "blocklisted").await;
    let (status, body) = add_passkey(&app, &browser, &mut device(&app, UNKNOWN), "Key").await;
    assert_eq!(status, 201, "{body}");
    let (_, browser) = tap_browser(&app, "blocked").await;
    let (status, body) = add_passkey(&app, &browser, &mut device(&app, GOOGLE), "Key").await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn self_service_off_or_method_disabled_refuses_add_passkey_before_the_ceremony() {
    let app = TestApp::spawn().await;
    for (body, code) in [
        (
            json!({"isSelfServiceRegistrationAllowed": false}),
            "passkey_policy.no_self_service",
        ),
        (
            json!({"isSelfServiceRegistrationAllowed": true, "state": "disabled"}),
            "passkey_policy.disabled",
        ),
    ] {
        let r = set_fido2(&app, body).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let (_, browser) = tap_browser(&app, code).await;
        let (status, answer) = add_passkey(&app, &browser, &mut device(&app, HELLO), "x").await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(answer["error"], code);
    }
}

#[tokio::test]
async fn attestation_enforced_accepts_only_authenticators_chained_to_the_roots() {
    let ca = AttestationCa::generate();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, ca.pem()).unwrap();
    let app = TestApp::spawn_with(&format!(
        "\n[passkeys]\nattestation_roots = \"{}\"\n",
        roots.display()
    ))
    .await;
    let token = automation(&app).await;
    let r = set_fido2(&app, json!({"isAttestationEnforced": true})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let (user, browser) = tap_browser(&app, "attested").await;
    let mut key = device(&app, HELLO).with_attestation(Attestation::Certified(ca.clone()));
    let (status, body) = add_passkey(&app, &browser, &mut key, "Issued key").await;
    assert_eq!(status, 201, "{body}");
    let listed = get(
        &app,
        &format!("/v1.0/users/{}/authentication/fido2Methods", user.id),
        &token,
    )
    .await;
    assert_eq!(listed.body["value"][0]["attestationLevel"], "attested");
    // The attested passkey signs in.
    let (status, done) = passkey_sign_in(&app, &mut key).await;
    assert_eq!(status, 200, "{done}");

    let stranger = AttestationCa::generate();
    for (name, attestation) in [
        ("none", Attestation::None),
        ("self", Attestation::SelfAttested),
        ("foreign", Attestation::Certified(stranger)),
    ] {
        let (_, browser) = tap_browser(&app, &format!("unattested-{name}")).await;
        let mut key = device(&app, HELLO).with_attestation(attestation);
        let (status, body) = add_passkey(&app, &browser, &mut key, "Key").await;
        assert_eq!(status, 403, "{name}: {body}");
        assert_eq!(
            body["error"], "passkey_policy.attestation_required",
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_passkey_the_policy_no_longer_admits_is_refused_at_sign_in_with_a_way_forward() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let (_, browser) = tap_browser(&app, "changed").await;
    let mut key = device(&app, GOOGLE);
    let (status, body) = add_passkey(&app, &browser, &mut key, "Phone").await;
    assert_eq!(status, 201, "{body}");
    let (status, done) = passkey_sign_in(&app, &mut key).await;
    assert_eq!(status, 200, "before the change: {done}");

    restrict(&app, "block", &[GOOGLE]).await;
    let (status, refused) = passkey_sign_in(&app, &mut key).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "passkey_policy.model_restricted");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("Google Password Manager"), "{message}");
    assert!(message.contains("/account/security-info"), "{message}");
    assert!(refused.get("redirect").is_none(), "no code, no redirect");

    // Logged as a failed passkey sign-in, with the reason.
    let log = get(&app, SIGN_INS, &token).await;
    let entry = &log.body["value"][0];
    assert_eq!(entry["status"]["errorCode"], 135_011, "{}", log.text);
    assert_eq!(entry["authenticationDetails"][0]["succeeded"], false);
    assert!(
        entry["status"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("does not allow")
    );

    // The security-info page says which passkey no longer works.
    let page = browser.get("/account/security-info").await;
    assert!(page.html.contains("Not allowed by policy"), "{}", page.html);

    // Lifting the restriction lets it sign in again.
    restrict(&app, "block", &[]).await;
    let (status, done) = passkey_sign_in(&app, &mut key).await;
    assert_eq!(status, 200, "{done}");
}

#[tokio::test]
async fn sign_in_log_entries_carry_entras_authentication_shape() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    let (_, browser) = tap_browser(&app, "logged").await;
    let mut bound = device(&app, HELLO);
    assert_eq!(
        add_passkey(&app, &browser, &mut bound, "Laptop").await.0,
        201
    );
    let (status, _) = passkey_sign_in(&app, &mut bound).await;
    assert_eq!(status, 200);
    let log = get(&app, SIGN_INS, &token).await;
    let entry = &log.body["value"][0];
    for key in [
        "authenticationDetails",
        "authenticationRequirement",
        "authenticationMethodsUsed",
        "appId",
        "appDisplayName",
        "clientAppUsed",
        "deviceDetail",
        "ipAddress",
        "status",
    ] {
        assert!(entry.get(key).is_some(), "{key} missing: {entry}");
    }
    let step = &entry["authenticationDetails"][0];
    assert_eq!(step["authenticationMethod"], "Passkey (device-bound)");
    assert_eq!(step["authenticationMethodDetail"], "Windows Hello");
    assert_eq!(
        step["authenticationStepRequirement"],
        "Primary authentication"
    );
    assert_eq!(step["succeeded"], true);
    assert_eq!(
        entry["authenticationRequirement"],
        "multiFactorAuthentication"
    );
    assert_eq!(
        entry["authenticationMethodsUsed"],
        json!(["Passkey (device-bound)"])
    );
    assert_eq!(entry["appId"], RP_ID);
    assert_eq!(entry["clientAppUsed"], "Browser");
    assert_eq!(entry["deviceDetail"]["operatingSystem"], "Windows");
    assert_eq!(entry["deviceDetail"]["browser"], "Chrome 131.0.0");
    assert_eq!(entry["status"]["errorCode"], 0);

    // A synced passkey says so.
    let (_, browser) = tap_browser(&app, "synced").await;
    let mut synced = device(&app, GOOGLE).synced();
    assert_eq!(
        add_passkey(&app, &browser, &mut synced, "Phone").await.0,
        201
    );
    let (status, _) = passkey_sign_in(&app, &mut synced).await;
    assert_eq!(status, 200);
    let log = get(&app, SIGN_INS, &token).await;
    let step = &log.body["value"][0]["authenticationDetails"][0];
    assert_eq!(step["authenticationMethod"], "Passkey (synced)");
    assert_eq!(
        step["authenticationMethodDetail"],
        "Google Password Manager"
    );

    // A password alone is single-factor.
    app.create_user("pw-only", Some("correct horse battery"))
        .await;
    app.clock.advance(time::Duration::seconds(1));
    let url = pkce_authorize_url(&app.issuer, "openid", PKCE_CHALLENGE, "");
    app.browser()
        .sign_in(&url, "pw-only", "correct horse battery")
        .await
        .expect("signed in");
    let log = get(&app, SIGN_INS, &token).await;
    let entry = &log.body["value"][0];
    assert_eq!(
        entry["authenticationRequirement"],
        "singleFactorAuthentication"
    );
    assert_eq!(entry["authenticationMethodsUsed"], json!(["Password"]));
    assert_eq!(
        entry["authenticationDetails"][0]["authenticationStepRequirement"],
        "Primary authentication"
    );
}

/// A strength that only a passkey of model `aaguid` (or a one-time pass)
/// meets, required by an enabled policy for the RP; its id.
async fn restricted_strength(app: &TestApp, aaguid: &str) -> String {
    let token = automation(app).await;
    let strengths = "/v1.0/identity/conditionalAccess/authenticationStrength/policies";
    let created = post(
        app,
        strengths,
        &token,
        json!({"displayName": "Issued keys", "allowedCombinations": ["fido2", "temporaryAccessPassOneTime"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let restriction = post(
        app,
        &format!("{strengths}/{id}/combinationConfigurations"),
        &token,
        json!({"@odata.type": "#microsoft.graph.fido2CombinationConfiguration",
               "appliesToCombinations": ["fido2"], "allowedAAGUIDs": [aaguid]}),
    )
    .await;
    assert_eq!(
        restriction.status,
        StatusCode::CREATED,
        "{}",
        restriction.text
    );
    let policy = post(
        app,
        "/v1.0/identity/conditionalAccess/policies",
        &token,
        json!({"displayName": "RP: issued keys", "state": "enabled",
               "conditions": {"users": {"includeUsers": ["All"]},
                              "applications": {"includeApplications": [RP_ID]},
                              "clientAppTypes": ["all"]},
               "grantControls": {"operator": "OR", "authenticationStrength": {"id": id}}}),
    )
    .await;
    assert_eq!(policy.status, StatusCode::CREATED, "{}", policy.text);
    id
}

#[tokio::test]
async fn a_strength_restricted_to_one_model_admits_that_key_steps_up_another_and_what_if_agrees() {
    let app = TestApp::spawn().await;
    let token = automation(&app).await;
    // Both users enrol first (the policy targets the RP, not security info).
    let (allowed_user, browser) = tap_browser(&app, "right-key").await;
    let mut right = device(&app, HELLO);
    assert_eq!(
        add_passkey(&app, &browser, &mut right, "Issued").await.0,
        201
    );
    let (other_user, browser) = tap_browser(&app, "wrong-key").await;
    let mut wrong = device(&app, GOOGLE);
    assert_eq!(add_passkey(&app, &browser, &mut wrong, "Own").await.0, 201);
    restricted_strength(&app, HELLO).await;

    // Live: the issued model gets a code; the other is sent to a step-up.
    let (status, done) = passkey_sign_in(&app, &mut right).await;
    assert_eq!(status, 200, "{done}");
    let redirect = done["redirect"].as_str().unwrap();
    assert!(
        redirect.starts_with(RP_REDIRECT) && redirect.contains("code="),
        "{redirect}"
    );
    // The other model: the decision is a step-up. With nothing that could
    // meet it (its only passkey is the wrong model), the page says so
    // rather than offering a passkey that would fail again...
    let (status, refused) = passkey_sign_in(&app, &mut wrong).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "conditional_access.refused");
    assert!(refused.get("redirect").is_none());
    // ... and with a one-time pass it is sent to a step-up that offers the
    // pass, not the passkey.
    app.issue_tap(&other_user, json!({"isUsableOnce": true}))
        .await;
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, _, _) = authorize_url(&rp, &[]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    app.clock.advance(time::Duration::seconds(1));
    let (_, start) = passkey_start(&app, &browser, &first, "discoverable").await;
    let assertion = wrong.authenticate(start["options"].clone());
    let (status, stepped) =
        passkey_finish(&app, &browser, &first, &start["ceremony"], assertion).await;
    assert_eq!(status, 200, "{stepped}");
    let redirect = stepped["redirect"].as_str().unwrap();
    assert!(!redirect.contains("code="), "no code: {redirect}");
    let step_up = browser.get(redirect).await;
    let step_up = match step_up.location.clone() {
        Some(next) => browser.get(&next).await,
        None => step_up,
    };
    assert!(
        step_up.has_label("Temporary Access Pass"),
        "{}",
        step_up.html
    );
    assert!(
        !step_up.html.contains("Sign in with a passkey"),
        "the wrong model is not offered: {}",
        step_up.html
    );
    let log = get(&app, SIGN_INS, &token).await;
    assert_eq!(
        log.body["value"][0]["status"]["errorCode"], 50074,
        "{}",
        log.text
    );
    assert_eq!(log.body["value"][0]["userId"], other_user.id.to_string());

    // What-If, on the same inputs, says the same.
    for (user, aaguid, decision) in [
        (&allowed_user, HELLO, "allow"),
        (&other_user, GOOGLE, "stepUp"),
    ] {
        let r = post(
            &app,
            "/v1.0/identity/conditionalAccess/evaluate",
            &token,
            json!({
                "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user.id.to_string()},
                "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [RP_ID]},
                "authenticationMethods": [format!("fido2:{aaguid}")],
            }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["decision"], decision, "{aaguid}: {}", r.text);
    }

    // The model is remembered for refresh: the right key's tokens refresh
    // under the restricted strength.
    let rp = app.rp(RP_ID, Some(RP_SECRET)).await;
    let (url, verifier, _) = authorize_url(&rp, &["offline_access"]);
    let browser = app.browser();
    let first = browser.get(&url).await;
    app.clock.advance(time::Duration::seconds(1));
    let (_, start) = passkey_start(&app, &browser, &first, "discoverable").await;
    let assertion = right.authenticate(start["options"].clone());
    let (status, done) =
        passkey_finish(&app, &browser, &first, &start["ceremony"], assertion).await;
    assert_eq!(status, 200, "{done}");
    let code = query_param(done["redirect"].as_str().unwrap(), "code").unwrap();
    let tokens = redeem(&app, &rp, code, verifier).await;
    let refresh = openidconnect::OAuth2TokenResponse::refresh_token(&tokens)
        .expect("a refresh token")
        .secret()
        .clone();
    let refreshed = app.refresh(&refresh).await;
    assert_eq!(
        refreshed.status(),
        200,
        "{}",
        refreshed.text().await.unwrap()
    );
}

#[tokio::test]
async fn a_passkey_the_policy_refuses_does_not_count_as_a_way_to_sign_in_when_removing_the_pass() {
    let app = TestApp::spawn().await;
    let user = app.create_user("careful", None).await;
    let created = app.issue_tap(&user, json!({"isUsableOnce": false})).await;
    let browser = app.browser();
    account_sign_in_with_tap(
        &app,
        &browser,
        "careful",
        created["temporaryAccessPass"].as_str().unwrap(),
    )
    .await;
    let mut key = device(&app, GOOGLE);
    assert_eq!(add_passkey(&app, &browser, &mut key, "Phone").await.0, 201);
    let delete_pass = async || {
        let page = browser.get("/account/security-info").await;
        browser
            .post_form(
                "/account/methods/delete",
                &[("csrf", &page.hidden("csrf").unwrap()), ("method", "tap")],
            )
            .await
    };
    let pass_left = async || {
        app.state
            .taps
            .pass(user.id, app.clock.now().unix_timestamp())
            .await
            .unwrap()
            .is_some()
    };
    // The passkey's model is now refused: the pass is the only way in.
    restrict(&app, "block", &[GOOGLE]).await;
    let refused = delete_pass().await;
    assert!(
        refused
            .location
            .as_deref()
            .is_some_and(|l| l.contains("notice=last-")),
        "{:?}",
        refused.location
    );
    assert!(pass_left().await, "the pass was kept");
    // Admitted again: the passkey counts, and the pass may go.
    restrict(&app, "block", &[]).await;
    let done = delete_pass().await;
    assert!(done.location.is_some(), "{}", done.html);
    assert!(!pass_left().await, "the pass was deleted");
}
