//! The conditional-access engine on real files: the examples shipped in
//! `config/examples/` and a policy set exported from Entra ID (unknown
//! properties, nulls and all), evaluated for the sign-ins issue 5 names.

use gatepass::authn::AuthMethod::{self, *};
use gatepass::policy::conditional_access::strengths::{MULTIFACTOR, PHISHING_RESISTANT_MFA};
use gatepass::policy::conditional_access::{
    AnalysisReason, DirectoryFacts, Mode, NamedLocation, Outcome, Policy, SignInContext,
    StrengthSet, Target, UserAction, WhatIfRequest, acr_strength, evaluate, load_locations,
    load_policies, load_strengths, platform_from_user_agent, render_table, step_up_methods,
    what_if,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);
const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
const HEAD_OFFICE: &str = "904ee059-6240-4711-834b-e5280abd4f41";
const APP: &str = "demo-app";
const EDGE_ON_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51";

/// An example file, its policies switched on: the examples ship in
/// report-only (posting one cannot lock anyone out); these tests evaluate
/// them as an operator does once the report-only results look right.
fn example(name: &str) -> String {
    let path = format!("{}/config/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace(REPORT_ONLY, "\"enabled\"")
}

const REPORT_ONLY: &str = "\"enabledForReportingButNotEnforced\"";

#[test]
fn example_policies_ship_in_report_only() {
    for file in [
        "ca-recommended-tap-registration.json",
        "ca-admins-phishing-resistant.json",
        "ca-block-outside-named-location.json",
    ] {
        let path = format!("{}/config/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        for p in load_policies(&text).unwrap() {
            assert_eq!(
                serde_json::to_value(p.state).unwrap(),
                "enabledForReportingButNotEnforced",
                "{file}"
            );
        }
    }
}

fn strengths() -> StrengthSet {
    StrengthSet::with_custom(load_strengths(&example("ca-strengths.json")).unwrap())
}

fn locations() -> Vec<NamedLocation> {
    load_locations(&example("named-locations.json")).unwrap()
}

/// A live browser sign-in by `user` at `target` from `ip`.
fn sign_in(user: &str, target: Target, ip: &str, methods: &[AuthMethod]) -> SignInContext {
    let mut c = SignInContext::live(user, target).with_methods(methods);
    c.ip_address = Some(ip.parse().unwrap());
    c.device_platform = platform_from_user_agent(EDGE_ON_WINDOWS);
    c
}

fn app() -> Target {
    Target::application(APP)
}

fn security_info() -> Target {
    Target::user_action(UserAction::RegisterSecurityInformation)
}

fn unmet_names(outcome: &Outcome) -> Vec<Vec<String>> {
    match outcome {
        Outcome::RequireStrength(unmet) => unmet
            .iter()
            .map(|u| {
                u.any_of
                    .iter()
                    .map(|s| s.display_name.to_string())
                    .collect()
            })
            .collect(),
        other => panic!("expected a step-up, got {other:?}"),
    }
}

#[test]
fn example_files_load_and_validate() {
    let strengths = strengths();
    let locations = locations();
    for file in [
        "ca-recommended-tap-registration.json",
        "ca-admins-phishing-resistant.json",
        "ca-block-outside-named-location.json",
    ] {
        let policies = load_policies(&example(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!policies.is_empty(), "{file}");
        for p in &policies {
            p.validate(&strengths, &locations)
                .unwrap_or_else(|e| panic!("{file} '{}': {e}", p.display_name));
            assert!(
                p.unsupported_fields().is_empty(),
                "{file}: {:?}",
                p.unsupported_fields()
            );
        }
    }
    for l in &locations {
        l.validate().unwrap();
    }
    for s in strengths.custom() {
        s.policy.validate().unwrap();
    }
    assert_eq!(strengths.custom().count(), 2);
}

#[test]
fn recommended_pattern_lets_a_tap_register_a_passkey_but_not_reach_apps() {
    // With the strengths file, and without it (the policies carry the
    // strengths inline, as Entra exports them): the same answers.
    let policies = load_policies(&example("ca-recommended-tap-registration.json")).unwrap();
    for strengths in [strengths(), StrengthSet::builtin()] {
        let eval = |target: Target, methods: &[AuthMethod]| {
            evaluate(
                &policies,
                &strengths,
                &[],
                &sign_in("new-hire", target, "192.0.2.10", methods),
                NOW,
            )
        };

        // A one-time TAP reaches the security-info page…
        let d = eval(security_info(), &[TemporaryAccessPassOneTime]);
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(
            (d.policies[0].applies, d.policies[0].satisfied),
            (true, Some(true))
        );
        assert_eq!(d.policies[1].analysis_reasons, AnalysisReason::Application);
        assert_eq!(
            eval(security_info(), &[TemporaryAccessPassMultiUse]).outcome,
            Outcome::Allow
        );

        // …but not the app: step up to the passkey it just registered.
        let d = eval(app(), &[TemporaryAccessPassOneTime]);
        assert_eq!(unmet_names(&d.outcome), [["MFA without TAP"]]);
        let Outcome::RequireStrength(unmet) = &d.outcome else {
            unreachable!()
        };
        assert_eq!(
            step_up_methods(unmet, &[TemporaryAccessPassOneTime]),
            [Passkey]
        );
        assert_eq!(d.policies[0].analysis_reasons, AnalysisReason::UserActions);

        // With the passkey, both are fine.
        assert_eq!(
            eval(app(), &[TemporaryAccessPassOneTime, Passkey]).outcome,
            Outcome::Allow
        );
        assert_eq!(eval(app(), &[Passkey]).outcome, Outcome::Allow);
        assert_eq!(eval(security_info(), &[Passkey]).outcome, Outcome::Allow);

        // A password alone reaches neither.
        let d = eval(security_info(), &[Password]);
        assert_eq!(
            unmet_names(&d.outcome),
            [["Bootstrap and recovery (TAP or passkey)"]]
        );
        let Outcome::RequireStrength(unmet) = &d.outcome else {
            unreachable!()
        };
        assert_eq!(
            step_up_methods(unmet, &[Password]),
            [
                Passkey,
                TemporaryAccessPassOneTime,
                TemporaryAccessPassMultiUse
            ]
        );
        assert_eq!(
            unmet_names(&eval(app(), &[Password]).outcome),
            [["MFA without TAP"]]
        );
    }
}

#[test]
fn admins_signing_in_with_a_password_must_use_a_phishing_resistant_method() {
    let policies = load_policies(&example("ca-admins-phishing-resistant.json")).unwrap();
    let strengths = StrengthSet::builtin();
    let admin = |methods: &[AuthMethod]| {
        let mut c = sign_in("admin", app(), "192.0.2.10", methods);
        c.role_template_ids = vec![GLOBAL_ADMIN.to_owned()];
        evaluate(&policies, &strengths, &[], &c, NOW)
    };
    let d = admin(&[Password]);
    assert_eq!(unmet_names(&d.outcome), [["Phishing resistant MFA"]]);
    let Outcome::RequireStrength(unmet) = &d.outcome else {
        unreachable!()
    };
    assert_eq!(step_up_methods(unmet, &[Password]), [Passkey]);
    // A TAP is MFA, but not phishing-resistant.
    assert_eq!(
        unmet_names(&admin(&[TemporaryAccessPassOneTime]).outcome),
        [["Phishing resistant MFA"]]
    );
    assert_eq!(admin(&[Password, Passkey]).outcome, Outcome::Allow);

    // A member with a password is not in scope.
    let d = evaluate(
        &policies,
        &strengths,
        &[],
        &sign_in("member", app(), "192.0.2.10", &[Password]),
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.policies[0].analysis_reasons, AnalysisReason::Users);

    // acr_values=phishing_resistant_mfa asks for the same strength.
    let wanted = acr_strength("phishing_resistant_mfa").unwrap();
    assert_eq!(wanted, PHISHING_RESISTANT_MFA);
    let methods =
        |m: &[AuthMethod]| gatepass::policy::conditional_access::MethodSet::from_auth_methods(m);
    assert!(!strengths.is_satisfied(wanted, methods(&[Password])));
    assert!(!strengths.is_satisfied(wanted, methods(&[TemporaryAccessPassOneTime])));
    assert!(strengths.is_satisfied(wanted, methods(&[Password, Passkey])));
    assert_eq!(acr_strength("mfa"), Some(MULTIFACTOR));
}

#[test]
fn sign_ins_from_outside_the_named_location_are_blocked() {
    let policies = load_policies(&example("ca-block-outside-named-location.json")).unwrap();
    let strengths = StrengthSet::builtin();
    let locations = locations();
    let table = [
        ("203.0.113.10", "allow"),
        ("::ffff:203.0.113.10", "allow"),
        ("2001:db8:100::1", "allow"),
        ("2001:db8:200::1", "block"),
        ("198.51.100.20", "block"), // the branch VPN is a named location, but not excluded
        ("192.0.2.1", "block"),
    ];
    for (ip, want) in table {
        let d = evaluate(
            &policies,
            &strengths,
            &locations,
            &sign_in("u", app(), ip, &[Passkey]),
            NOW,
        );
        assert_eq!(d.outcome.name(), want, "from {ip}");
        if want == "block" {
            let Outcome::Block(blocked) = &d.outcome else {
                unreachable!()
            };
            assert_eq!(
                blocked[0].display_name,
                "Block sign-ins from outside the head office"
            );
        } else {
            assert_eq!(d.policies[0].analysis_reasons, AnalysisReason::Location);
        }
    }
    // Live, an unknown address fails closed; What-If says it needs one.
    let mut c = sign_in("u", app(), "192.0.2.1", &[Passkey]);
    c.ip_address = None;
    assert_eq!(
        evaluate(&policies, &strengths, &locations, &c, NOW)
            .outcome
            .name(),
        "block"
    );
    c.mode = Mode::WhatIf;
    let d = evaluate(&policies, &strengths, &locations, &c, NOW);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        d.policies[0].analysis_reasons,
        AnalysisReason::NotEnoughInformation
    );
    // Without the named location, the exclusion cannot be checked: fail closed.
    let d = evaluate(
        &policies,
        &strengths,
        &[],
        &sign_in("u", app(), "203.0.113.10", &[Passkey]),
        NOW,
    );
    assert_eq!(d.outcome.name(), "block");
    assert!(
        d.policies[0].unsupported[0].contains(HEAD_OFFICE),
        "{:?}",
        d.policies[0].unsupported
    );
}

/// `GET /identity/conditionalAccess/policies` from an Entra tenant: every
/// property Graph writes, most of them null, some Gatepass does not model.
const ENTRA_EXPORT: &str = r#"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies",
  "value": [
    {
      "id": "4aa7d105-d92b-4c07-9834-0e810ddb89ac",
      "templateId": null,
      "displayName": "CA001: All users, all resources: require MFA",
      "createdDateTime": "2022-03-29T20:39:24.3899939Z",
      "modifiedDateTime": "2025-03-27T21:40:19.6686701Z",
      "state": "enabled",
      "partialEnablementStrategy": null,
      "sessionControls": null,
      "conditions": {
        "userRiskLevels": [],
        "signInRiskLevels": [],
        "clientAppTypes": ["all"],
        "servicePrincipalRiskLevels": [],
        "insiderRiskLevels": null,
        "clients": null,
        "platforms": null,
        "locations": null,
        "times": null,
        "deviceStates": null,
        "devices": null,
        "clientApplications": null,
        "authenticationFlows": null,
        "applications": {
          "includeApplications": ["All"],
          "excludeApplications": [],
          "includeUserActions": [],
          "includeAuthenticationContextClassReferences": [],
          "applicationFilter": null,
          "networkAccess": null,
          "globalSecureAccess": null
        },
        "users": {
          "includeUsers": ["All"],
          "excludeUsers": ["f7ca74b0-8562-4083-b66c-0476f942cfd0"],
          "includeGroups": [],
          "excludeGroups": [],
          "includeRoles": [],
          "excludeRoles": [],
          "includeGuestsOrExternalUsers": null,
          "excludeGuestsOrExternalUsers": null
        }
      },
      "grantControls": {
        "operator": "OR",
        "builtInControls": ["mfa"],
        "customAuthenticationFactors": [],
        "termsOfUse": [],
        "authenticationStrength@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies('4aa7d105-d92b-4c07-9834-0e810ddb89ac')/grantControls/authenticationStrength/$entity",
        "authenticationStrength": null
      }
    },
    {
      "id": "e897c693-c0e6-4386-abc3-f46dee5940fb",
      "templateId": "76c03f19-ea37-4656-a772-a183b4ddb81d",
      "displayName": "CA002: Admins: phishing-resistant MFA",
      "createdDateTime": "2023-07-10T17:27:37.9735926Z",
      "modifiedDateTime": null,
      "state": "enabled",
      "partialEnablementStrategy": null,
      "sessionControls": {
        "disableResilienceDefaults": null,
        "applicationEnforcedRestrictions": null,
        "cloudAppSecurity": null,
        "persistentBrowser": null,
        "continuousAccessEvaluation": null,
        "secureSignInSession": null,
        "networkAccessSecurity": null,
        "globalSecureAccessFilteringProfile": null,
        "signInFrequency": {
          "value": 12,
          "type": "hours",
          "authenticationType": "primaryAndSecondaryAuthentication",
          "frequencyInterval": "timeBased",
          "isEnabled": true
        }
      },
      "conditions": {
        "userRiskLevels": [],
        "signInRiskLevels": [],
        "clientAppTypes": ["all"],
        "servicePrincipalRiskLevels": [],
        "insiderRiskLevels": null,
        "clients": null,
        "platforms": null,
        "locations": null,
        "times": null,
        "deviceStates": null,
        "devices": null,
        "clientApplications": null,
        "authenticationFlows": null,
        "applications": {
          "includeApplications": ["All"],
          "excludeApplications": [],
          "includeUserActions": [],
          "includeAuthenticationContextClassReferences": [],
          "applicationFilter": null
        },
        "users": {
          "includeUsers": [],
          "excludeUsers": ["f7ca74b0-8562-4083-b66c-0476f942cfd0"],
          "includeGroups": [],
          "excludeGroups": [],
          "includeRoles": ["62e90394-69f5-4237-9190-012177145e10", "194ae4cb-b126-40b2-bd5b-6091b380977d"],
          "excludeRoles": [],
          "includeGuestsOrExternalUsers": null,
          "excludeGuestsOrExternalUsers": null
        }
      },
      "grantControls": {
        "operator": "OR",
        "builtInControls": [],
        "customAuthenticationFactors": [],
        "termsOfUse": [],
        "authenticationStrength": {
          "id": "00000000-0000-0000-0000-000000000004",
          "createdDateTime": "2021-12-01T08:00:00Z",
          "modifiedDateTime": "2021-12-01T08:00:00Z",
          "displayName": "Phishing-resistant MFA",
          "description": "Phishing-resistant, Passwordless methods for the strongest authentication, such as a FIDO2 security key",
          "policyType": "builtIn",
          "requirementsSatisfied": "mfa",
          "allowedCombinations": ["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"],
          "combinationConfigurations@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies('e897c693-c0e6-4386-abc3-f46dee5940fb')/grantControls/authenticationStrength/combinationConfigurations",
          "combinationConfigurations": []
        }
      }
    },
    {
      "id": "1b1d5e2e-6a52-4c5b-9a3c-2b0c3f2d6e11",
      "templateId": null,
      "displayName": "CA003: Block legacy authentication",
      "createdDateTime": "2022-04-01T18:55:43.1454565Z",
      "modifiedDateTime": "2025-03-27T21:42:26.951558Z",
      "state": "enabledForReportingButNotEnforced",
      "partialEnablementStrategy": null,
      "sessionControls": null,
      "conditions": {
        "userRiskLevels": [],
        "signInRiskLevels": [],
        "clientAppTypes": ["exchangeActiveSync", "other"],
        "servicePrincipalRiskLevels": [],
        "platforms": null,
        "locations": null,
        "devices": null,
        "clientApplications": null,
        "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [], "includeAuthenticationContextClassReferences": []},
        "users": {"includeUsers": ["All"], "excludeUsers": [], "includeGroups": [], "excludeGroups": [], "includeRoles": [], "excludeRoles": []}
      },
      "grantControls": {"operator": "OR", "builtInControls": ["block"], "customAuthenticationFactors": [], "termsOfUse": [], "authenticationStrength": null}
    },
    {
      "id": "9d2b0f59-3e0b-4f43-8f3c-6a5e9b7e2c44",
      "templateId": null,
      "displayName": "CA004: Unmanaged Windows devices need a compliant device (report-only)",
      "createdDateTime": "2024-10-16T15:06:45.0788027Z",
      "modifiedDateTime": "2025-03-27T20:08:22.6064571Z",
      "state": "enabledForReportingButNotEnforced",
      "partialEnablementStrategy": null,
      "sessionControls": {"persistentBrowser": {"mode": "never", "isEnabled": true}, "signInFrequency": null},
      "conditions": {
        "userRiskLevels": [],
        "signInRiskLevels": [],
        "clientAppTypes": ["browser", "mobileAppsAndDesktopClients"],
        "servicePrincipalRiskLevels": [],
        "platforms": {"includePlatforms": ["windows"], "excludePlatforms": []},
        "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
        "devices": {"deviceFilter": {"mode": "exclude", "rule": "device.trustType -eq \"ServerAD\" -or device.isCompliant -eq True"}},
        "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [], "includeAuthenticationContextClassReferences": []},
        "users": {"includeUsers": ["All"], "excludeUsers": ["f7ca74b0-8562-4083-b66c-0476f942cfd0"], "includeGroups": [], "excludeGroups": [], "includeRoles": [], "excludeRoles": []}
      },
      "grantControls": {"operator": "OR", "builtInControls": ["compliantDevice", "domainJoinedDevice"], "customAuthenticationFactors": [], "termsOfUse": [], "authenticationStrength": null}
    },
    {
      "id": "0c6f3f0e-1d4d-4bfa-9b1c-3f2f8d1e7a55",
      "templateId": null,
      "displayName": "CA005: Old pilot (disabled)",
      "createdDateTime": "2021-01-01T00:00:00Z",
      "modifiedDateTime": null,
      "state": "disabled",
      "partialEnablementStrategy": null,
      "sessionControls": null,
      "conditions": {
        "clientAppTypes": ["all"],
        "applications": {"includeApplications": ["All"]},
        "users": {"includeUsers": ["All"]}
      },
      "grantControls": {"operator": "OR", "builtInControls": ["block"], "customAuthenticationFactors": [], "termsOfUse": [], "authenticationStrength": null}
    }
  ]
}"#;

const BREAK_GLASS: &str = "f7ca74b0-8562-4083-b66c-0476f942cfd0";

/// Drops nulls: Gatepass writes an unset modelled property as absent.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[test]
fn entra_export_loads_unchanged() {
    let policies = load_policies(ENTRA_EXPORT).unwrap();
    assert_eq!(policies.len(), 5);
    let original: Value = serde_json::from_str(ENTRA_EXPORT).unwrap();
    for (policy, raw) in policies.iter().zip(original["value"].as_array().unwrap()) {
        assert_eq!(
            without_nulls(serde_json::to_value(policy).unwrap()),
            without_nulls(raw.clone()),
            "{}",
            policy.display_name
        );
    }
    // Unknown properties are kept even when null (written back as Graph had them).
    let back = serde_json::to_value(&policies[0]).unwrap();
    assert_eq!(back["templateId"], Value::Null);
    assert!(
        back.as_object()
            .unwrap()
            .contains_key("partialEnablementStrategy")
    );
    assert_eq!(
        back["conditions"]["applications"]["globalSecureAccess"],
        Value::Null
    );
    assert!(
        back["conditions"]["applications"]
            .as_object()
            .unwrap()
            .contains_key("globalSecureAccess")
    );

    let unsupported: Vec<Vec<String>> = policies.iter().map(Policy::unsupported_fields).collect();
    assert_eq!(
        unsupported,
        [
            vec![],
            vec![],
            vec![],
            vec![
                "conditions.devices".to_owned(),
                "sessionControls.persistentBrowser".to_owned()
            ],
            vec![]
        ]
    );
}

#[test]
fn entra_export_evaluates_the_scenarios() {
    let policies = load_policies(ENTRA_EXPORT).unwrap();
    let strengths = StrengthSet::builtin();
    let eval = |c: &SignInContext| evaluate(&policies, &strengths, &[], c, NOW);
    let member = |methods: &[AuthMethod]| sign_in("member", app(), "192.0.2.10", methods);

    // A member with a password: MFA; with a TAP, fine.
    let d = eval(&member(&[Password]));
    assert_eq!(unmet_names(&d.outcome), [["Multifactor authentication"]]);
    let d = eval(&member(&[TemporaryAccessPassOneTime]));
    assert_eq!(d.outcome, Outcome::Allow);
    let results: Vec<_> = d
        .applied_conditional_access_policies()
        .into_iter()
        .map(|a| (a.display_name, a.result))
        .collect();
    assert_eq!(
        results.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        [
            "success",
            "notApplied",
            "reportOnlyNotApplied",
            "reportOnlyFailure",
            "notEnabled"
        ]
    );
    // CA004 applied despite its device filter (fail closed), reported, and
    // only recorded: it is report-only.
    assert!(d.policies[3].applies);
    assert_eq!(
        d.policies[3].unsupported,
        ["conditions.devices", "sessionControls.persistentBrowser"]
    );

    // The break-glass account is excluded everywhere.
    assert_eq!(
        eval(&sign_in(BREAK_GLASS, app(), "192.0.2.10", &[Password])).outcome,
        Outcome::Allow
    );

    // An admin with a TAP: MFA is met, phishing-resistant is not.
    let mut admin = sign_in("admin", app(), "192.0.2.10", &[TemporaryAccessPassOneTime]);
    admin.role_template_ids = vec![GLOBAL_ADMIN.to_owned()];
    // Gatepass's built-in (Graph's name) wins over the export's inline copy.
    assert_eq!(
        unmet_names(&eval(&admin).outcome),
        [["Phishing resistant MFA"]]
    );
    admin = admin.with_methods(&[Passkey]);
    admin.auth_time = Some(NOW - time::Duration::hours(11));
    assert_eq!(eval(&admin).outcome, Outcome::Allow);
    // After 12 hours the admin signs in again, with a phishing-resistant method.
    admin.auth_time = Some(NOW - time::Duration::hours(13));
    let Outcome::RequireStrength(unmet) = eval(&admin).outcome else {
        panic!("stale admin session allowed")
    };
    assert!(
        unmet
            .iter()
            .any(|u| u.reauthenticate && u.any_of.iter().any(|s| s.id() == PHISHING_RESISTANT_MFA))
    );
}

#[test]
fn what_if_on_the_examples() {
    let mut policies = load_policies(&example("ca-recommended-tap-registration.json")).unwrap();
    policies.extend(load_policies(&example("ca-admins-phishing-resistant.json")).unwrap());
    policies.extend(load_policies(&example("ca-block-outside-named-location.json")).unwrap());
    let (strengths, locations) = (strengths(), locations());
    let ask = |body: Value, facts: &DirectoryFacts| {
        let request: WhatIfRequest = serde_json::from_value(body).unwrap();
        what_if(&request, &policies, &strengths, &locations, facts, NOW).unwrap()
    };
    let member = DirectoryFacts::default();

    let at_security_info = ask(
        json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "new-hire"},
            "signInContext": {"@odata.type": "#microsoft.graph.userActionContext", "userAction": "registerSecurityInformation"},
            "signInConditions": {"devicePlatform": "windows", "clientAppType": "browser", "ipAddress": "203.0.113.10"},
            "authenticationMethods": ["temporaryAccessPassOneTime"]
        }),
        &member,
    );
    assert_eq!(at_security_info.decision, "allow");
    let applied: Vec<_> = at_security_info
        .value
        .iter()
        .filter(|v| v.policy_applies)
        .map(|v| v.policy.display_name.as_str())
        .collect();
    assert_eq!(
        applied,
        ["Register security info with a Temporary Access Pass or a passkey"]
    );

    let at_app = ask(
        json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "new-hire"},
            "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [APP]},
            "signInConditions": {"ipAddress": "203.0.113.10"},
            "authenticationMethods": ["temporaryAccessPassOneTime"]
        }),
        &member,
    );
    assert_eq!(at_app.decision, "stepUp");
    assert_eq!(
        at_app.unmet_requirements[0].any_of[0].display_name(),
        "MFA without TAP"
    );
    let table = render_table(&at_app);
    assert!(
        table.contains("requires one of: MFA without TAP"),
        "{table}"
    );

    let from_outside = ask(
        json!({
            "signInIdentity": {"userId": "new-hire"},
            "signInContext": {"includeApplications": [APP]},
            "signInConditions": {"ipAddress": "192.0.2.1"},
            "authenticationMethods": ["fido2"]
        }),
        &member,
    );
    assert_eq!(from_outside.decision, "block");
    assert_eq!(
        from_outside.blocked_by[0].policy_id,
        "e90b3fd1-1b33-4d28-9558-e66cf93bdc40"
    );

    let admin = DirectoryFacts {
        role_template_ids: vec![GLOBAL_ADMIN.to_owned()],
        ..DirectoryFacts::default()
    };
    let admin_with_password = ask(
        json!({
            "signInIdentity": {"userId": "admin"},
            "signInContext": {"includeApplications": [APP]},
            "signInConditions": {"ipAddress": "203.0.113.10"},
            "authenticationMethods": ["password"]
        }),
        &admin,
    );
    assert_eq!(admin_with_password.decision, "stepUp");
    let names: Vec<Vec<&str>> = admin_with_password
        .unmet_requirements
        .iter()
        .map(|u| u.any_of.iter().map(|s| s.display_name.as_ref()).collect())
        .collect();
    assert_eq!(
        names,
        [vec!["MFA without TAP"], vec!["Phishing resistant MFA"]]
    );
}
