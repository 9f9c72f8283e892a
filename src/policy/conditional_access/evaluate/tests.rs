//! Table-driven evaluator tests: one table per condition, then grant
//! controls, session controls, report-only, unsupported fields and the
//! outcome across policies.

#![allow(clippy::unwrap_used, clippy::panic, clippy::type_complexity)]

use super::*;
use crate::policy::conditional_access::model::Policy;
use crate::policy::conditional_access::strengths::{
    MULTIFACTOR, PASSWORDLESS_MFA, PHISHING_RESISTANT_MFA,
};
use AuthMethod::*;
use serde_json::{Value, json};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";

const WINDOWS_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const MAC_SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const IPAD_SAFARI: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
const LINUX_FIREFOX: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
const WINDOWS_PHONE_EDGE: &str = "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.14977";
const CHROMEOS: &str = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const CURL: &str = "curl/8.5.0";

/// Deep-merges `patch` into `base` (objects merge, anything else replaces).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// All users, all apps, any client, `mfa` — then `patch`.
fn policy(patch: Value) -> Policy {
    let mut v = json!({
        "id": "p1",
        "displayName": "Policy one",
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"]
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}
    });
    merge(&mut v, patch);
    serde_json::from_value(v).unwrap()
}

fn locations() -> Vec<NamedLocation> {
    serde_json::from_value(json!([
        {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "office", "displayName": "Office",
         "isTrusted": true, "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}]},
        {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "lab-v6", "displayName": "Lab (IPv6)",
         "isTrusted": false, "ipRanges": [{"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8:1::/48"}]},
        {"@odata.type": "#microsoft.graph.countryNamedLocation", "id": "nordics", "displayName": "Nordics",
         "countriesAndRegions": ["NO", "SE"], "includeUnknownCountriesAndRegions": false}
    ]))
    .unwrap()
}

fn ctx() -> SignInContext {
    let mut c = SignInContext::live("u1", Target::application("app1")).with_methods(&[Password]);
    c.user_aliases = vec!["alice@contoso.test".to_owned()];
    c.group_ids = vec!["g1".to_owned()];
    c.ip_address = Some("198.51.100.7".parse().unwrap());
    c.device_platform = platform_from_user_agent(WINDOWS_CHROME);
    c
}

fn eval_one(p: &Policy, c: &SignInContext) -> PolicyResult {
    let d = evaluate(
        std::slice::from_ref(p),
        &StrengthSet::builtin(),
        &locations(),
        c,
        NOW,
    );
    d.policies.into_iter().next().unwrap()
}

fn applies(p: &Policy, c: &SignInContext) -> Result<(), AnalysisReason> {
    let r = eval_one(p, c);
    assert_eq!(
        r.applies,
        r.analysis_reasons == AnalysisReason::NotSet,
        "{r:?}"
    );
    if r.applies {
        Ok(())
    } else {
        Err(r.analysis_reasons)
    }
}

type Tweak = fn(&mut SignInContext);
fn none(_: &mut SignInContext) {}

#[test]
fn users_condition_include_exclude_table() {
    use AnalysisReason::Users;
    let guest: Tweak = |c| c.is_guest = true;
    let admin: Tweak = |c| c.role_template_ids = vec![GLOBAL_ADMIN.to_owned()];
    let table: Vec<(Value, Tweak, Result<(), AnalysisReason>)> = vec![
        (json!({"includeUsers": ["All"]}), none, Ok(())),
        (json!({"includeUsers": ["None"]}), none, Err(Users)),
        (json!({"includeUsers": ["u1"]}), none, Ok(())),
        (json!({"includeUsers": ["U1"]}), none, Ok(())),
        (json!({"includeUsers": ["u2"]}), none, Err(Users)),
        (
            json!({"includeUsers": ["alice@contoso.test"]}),
            none,
            Ok(()),
        ),
        (
            json!({"includeUsers": [], "includeGroups": ["g1"]}),
            none,
            Ok(()),
        ),
        (
            json!({"includeUsers": [], "includeGroups": ["g2"]}),
            none,
            Err(Users),
        ),
        (
            json!({"includeUsers": [], "includeRoles": [GLOBAL_ADMIN]}),
            admin,
            Ok(()),
        ),
        (
            json!({"includeUsers": [], "includeRoles": [GLOBAL_ADMIN]}),
            none,
            Err(Users),
        ),
        (
            json!({"includeUsers": [], "includeGroups": [], "includeRoles": []}),
            none,
            Err(Users),
        ),
        // Exclusions beat inclusions, whatever included the user.
        (
            json!({"includeUsers": ["All"], "excludeUsers": ["u1"]}),
            none,
            Err(Users),
        ),
        (
            json!({"includeUsers": ["u1"], "excludeUsers": ["u1"]}),
            none,
            Err(Users),
        ),
        (
            json!({"includeUsers": ["All"], "excludeGroups": ["g1"]}),
            none,
            Err(Users),
        ),
        (
            json!({"includeRoles": [GLOBAL_ADMIN], "excludeGroups": ["g1"]}),
            admin,
            Err(Users),
        ),
        (
            json!({"includeUsers": ["All"], "excludeRoles": [GLOBAL_ADMIN]}),
            admin,
            Err(Users),
        ),
        (
            json!({"includeUsers": ["All"], "excludeUsers": ["u2"], "excludeGroups": ["g2"]}),
            none,
            Ok(()),
        ),
        (
            json!({"includeUsers": ["GuestsOrExternalUsers"]}),
            none,
            Err(Users),
        ),
        (
            json!({"includeUsers": ["GuestsOrExternalUsers"]}),
            guest,
            Ok(()),
        ),
        (
            json!({"includeUsers": ["All"], "excludeUsers": ["GuestsOrExternalUsers"]}),
            guest,
            Err(Users),
        ),
        (
            json!({"includeUsers": ["All"], "excludeGuestsOrExternalUsers":
                {"guestOrExternalUserTypes": "b2bCollaborationGuest", "externalTenants": {"membershipKind": "all"}}}),
            guest,
            Err(Users),
        ),
        (json!(null), none, Err(Users)),
    ];
    for (users, tweak, want) in table {
        let p = policy(json!({"conditions": {"users": null}}));
        let mut p = serde_json::to_value(p).unwrap();
        p["conditions"]["users"] = users.clone();
        let p: Policy = serde_json::from_value(p).unwrap();
        let mut c = ctx();
        tweak(&mut c);
        assert_eq!(applies(&p, &c), want, "users {users}");
    }
}

#[test]
fn applications_condition_table() {
    use AnalysisReason::{Application, AuthenticationContext, UserActions};
    let app1 = Target::application("app1");
    let security_info = Target::user_action(UserAction::RegisterSecurityInformation);
    let table: Vec<(Value, Target, Result<(), AnalysisReason>)> = vec![
        (
            json!({"includeApplications": ["All"]}),
            app1.clone(),
            Ok(()),
        ),
        (
            json!({"includeApplications": ["app1"]}),
            app1.clone(),
            Ok(()),
        ),
        (
            json!({"includeApplications": ["APP1"]}),
            app1.clone(),
            Ok(()),
        ),
        (
            json!({"includeApplications": ["app2"]}),
            app1.clone(),
            Err(Application),
        ),
        (
            json!({"includeApplications": ["None"]}),
            app1.clone(),
            Err(Application),
        ),
        (
            json!({"includeApplications": ["Office365"]}),
            app1.clone(),
            Err(Application),
        ),
        (
            json!({"includeApplications": ["All"], "excludeApplications": ["app1"]}),
            app1.clone(),
            Err(Application),
        ),
        (
            json!({"includeApplications": ["app1"], "excludeApplications": ["app1"]}),
            app1.clone(),
            Err(Application),
        ),
        (
            json!({"includeApplications": ["All"], "excludeApplications": ["app2"]}),
            app1.clone(),
            Ok(()),
        ),
        (
            json!({"includeApplications": [], "includeUserActions": ["urn:user:registersecurityinfo"]}),
            security_info.clone(),
            Ok(()),
        ),
        (
            json!({"includeApplications": [], "includeUserActions": ["urn:user:registersecurityinfo"]}),
            app1.clone(),
            Err(UserActions),
        ),
        (
            json!({"includeApplications": [], "includeUserActions": ["urn:user:registerdevice"]}),
            security_info.clone(),
            Err(UserActions),
        ),
        // "All resources" does not cover the user action (Entra's registration
        // precedence: the security-info policy decides there).
        (
            json!({"includeApplications": ["All"]}),
            security_info.clone(),
            Err(Application),
        ),
        (
            json!({"includeApplications": [], "includeAuthenticationContextClassReferences": ["c1", "c37"]}),
            Target::authentication_context("c37"),
            Ok(()),
        ),
        (
            json!({"includeApplications": [], "includeAuthenticationContextClassReferences": ["c1"]}),
            Target::authentication_context("c2"),
            Err(AuthenticationContext),
        ),
        (
            json!({"includeApplications": ["app1"], "includeAuthenticationContextClassReferences": ["c1"]}),
            Target {
                applications: vec!["app2".to_owned()],
                user_action: None,
                authentication_contexts: vec!["c1".to_owned()],
            },
            Ok(()),
        ),
        (json!({}), app1.clone(), Err(Application)),
    ];
    for (apps, target, want) in table {
        let mut p = serde_json::to_value(policy(json!({}))).unwrap();
        p["conditions"]["applications"] = apps.clone();
        let p: Policy = serde_json::from_value(p).unwrap();
        let mut c = ctx();
        c.target = target.clone();
        assert_eq!(applies(&p, &c), want, "applications {apps} for {target:?}");
    }
}

#[test]
fn platform_from_user_agent_reads_real_browsers() {
    let table = [
        (WINDOWS_CHROME, Some(DevicePlatform::Windows)),
        (MAC_SAFARI, Some(DevicePlatform::MacOs)),
        (IPHONE_SAFARI, Some(DevicePlatform::Ios)),
        (IPAD_SAFARI, Some(DevicePlatform::Ios)),
        (ANDROID_CHROME, Some(DevicePlatform::Android)),
        (LINUX_FIREFOX, Some(DevicePlatform::Linux)),
        (WINDOWS_PHONE_EDGE, Some(DevicePlatform::WindowsPhone)),
        (CHROMEOS, None),
        (CURL, None),
        ("", None),
    ];
    for (ua, want) in table {
        assert_eq!(platform_from_user_agent(ua), want, "{ua}");
    }
}

#[test]
fn platform_condition_table() {
    use AnalysisReason::DevicePlatform as Reason;
    let table: Vec<(Value, &str, Result<(), AnalysisReason>)> = vec![
        (
            json!({"includePlatforms": ["android"]}),
            ANDROID_CHROME,
            Ok(()),
        ),
        (
            json!({"includePlatforms": ["android"]}),
            IPHONE_SAFARI,
            Err(Reason),
        ),
        (
            json!({"includePlatforms": ["iOS", "macOS"]}),
            IPAD_SAFARI,
            Ok(()),
        ),
        (
            json!({"includePlatforms": ["iOS", "macOS"]}),
            MAC_SAFARI,
            Ok(()),
        ),
        (
            json!({"includePlatforms": ["linux"]}),
            LINUX_FIREFOX,
            Ok(()),
        ),
        (
            json!({"includePlatforms": ["windowsPhone"]}),
            WINDOWS_PHONE_EDGE,
            Ok(()),
        ),
        (
            json!({"includePlatforms": ["all"], "excludePlatforms": ["iOS"]}),
            IPHONE_SAFARI,
            Err(Reason),
        ),
        (
            json!({"includePlatforms": ["all"], "excludePlatforms": ["iOS"]}),
            WINDOWS_CHROME,
            Ok(()),
        ),
        // Entra: an unknown platform is caught by `all`, never by a list.
        (
            json!({"includePlatforms": ["all"], "excludePlatforms": ["iOS"]}),
            CURL,
            Ok(()),
        ),
        (json!({"includePlatforms": ["windows"]}), CURL, Err(Reason)),
        (
            json!({"includePlatforms": ["windows"]}),
            CHROMEOS,
            Err(Reason),
        ),
        (
            json!({"includePlatforms": ["windows"], "excludePlatforms": ["windows"]}),
            WINDOWS_CHROME,
            Err(Reason),
        ),
        (json!(null), CURL, Ok(())),
    ];
    for (platforms, ua, want) in table {
        let p = policy(json!({"conditions": {"platforms": platforms.clone()}}));
        let mut c = ctx();
        c.device_platform = platform_from_user_agent(ua);
        assert_eq!(applies(&p, &c), want, "platforms {platforms} for {ua}");
    }
}

#[test]
fn location_condition_table() {
    use AnalysisReason::{Location, NotEnoughInformation};
    let office = "203.0.113.40";
    let outside = "198.51.100.7";
    let table: Vec<(Value, Option<&str>, Mode, Result<(), AnalysisReason>, usize)> = vec![
        // (locations, ip, mode, result, unsupported notes)
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["office"]}),
            Some(office),
            Mode::Live,
            Err(Location),
            0,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["office"]}),
            Some(outside),
            Mode::Live,
            Ok(()),
            0,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["office"]}),
            Some("::ffff:203.0.113.40"),
            Mode::Live,
            Err(Location),
            0,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}),
            Some(office),
            Mode::Live,
            Err(Location),
            0,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}),
            Some(outside),
            Mode::Live,
            Ok(()),
            0,
        ),
        (
            json!({"includeLocations": ["AllTrusted"]}),
            Some(office),
            Mode::Live,
            Ok(()),
            0,
        ),
        (
            json!({"includeLocations": ["AllTrusted"]}),
            Some(outside),
            Mode::Live,
            Err(Location),
            0,
        ),
        // lab-v6 is not trusted: it never counts as AllTrusted.
        (
            json!({"includeLocations": ["AllTrusted"]}),
            Some("2001:db8:1::5"),
            Mode::Live,
            Err(Location),
            0,
        ),
        (
            json!({"includeLocations": ["lab-v6"]}),
            Some("2001:db8:1::5"),
            Mode::Live,
            Ok(()),
            0,
        ),
        (
            json!({"includeLocations": ["lab-v6"]}),
            Some("2001:db8:2::5"),
            Mode::Live,
            Err(Location),
            0,
        ),
        (
            json!({"includeLocations": ["office", "lab-v6"]}),
            Some(office),
            Mode::Live,
            Ok(()),
            0,
        ),
        (
            json!({"includeLocations": ["lab-v6"], "excludeLocations": ["lab-v6"]}),
            Some("2001:db8:1::5"),
            Mode::Live,
            Err(Location),
            0,
        ),
        // Country locations and unknown ids cannot be checked: fail closed.
        (
            json!({"includeLocations": ["nordics"]}),
            Some(outside),
            Mode::Live,
            Ok(()),
            1,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["nordics"]}),
            Some(outside),
            Mode::Live,
            Ok(()),
            1,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["gone"]}),
            Some(office),
            Mode::Live,
            Ok(()),
            1,
        ),
        (
            json!({"includeLocations": ["gone"]}),
            Some(office),
            Mode::WhatIf,
            Ok(()),
            1,
        ),
        // Missing IP: live fails closed, What-If says so.
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["office"]}),
            None,
            Mode::Live,
            Ok(()),
            0,
        ),
        (
            json!({"includeLocations": ["All"], "excludeLocations": ["office"]}),
            None,
            Mode::WhatIf,
            Err(NotEnoughInformation),
            0,
        ),
        (
            json!({"includeLocations": ["All"]}),
            None,
            Mode::WhatIf,
            Ok(()),
            0,
        ),
        (json!(null), None, Mode::WhatIf, Ok(()), 0),
    ];
    for (locs, ip, mode, want, notes) in table {
        let p = policy(json!({"conditions": {"locations": locs.clone()}}));
        let mut c = ctx();
        c.mode = mode;
        c.ip_address = ip.map(|i| i.parse().unwrap());
        let r = eval_one(&p, &c);
        let got = if r.applies {
            Ok(())
        } else {
            Err(r.analysis_reasons)
        };
        assert_eq!(got, want, "locations {locs} from {ip:?} ({mode:?})");
        assert_eq!(
            r.unsupported.len(),
            notes,
            "notes for {locs}: {:?}",
            r.unsupported
        );
    }
}

#[test]
fn client_app_condition_table() {
    use AnalysisReason::{ClientApps, NotEnoughInformation};
    let table: Vec<(
        Value,
        Option<ClientAppType>,
        Mode,
        Result<(), AnalysisReason>,
    )> = vec![
        (
            json!(["all"]),
            Some(ClientAppType::Browser),
            Mode::Live,
            Ok(()),
        ),
        (
            json!(["browser"]),
            Some(ClientAppType::Browser),
            Mode::Live,
            Ok(()),
        ),
        (
            json!(["mobileAppsAndDesktopClients"]),
            Some(ClientAppType::Browser),
            Mode::Live,
            Err(ClientApps),
        ),
        (
            json!(["browser", "mobileAppsAndDesktopClients"]),
            Some(ClientAppType::MobileAppsAndDesktopClients),
            Mode::Live,
            Ok(()),
        ),
        (
            json!(["exchangeActiveSync"]),
            Some(ClientAppType::EasSupported),
            Mode::Live,
            Ok(()),
        ),
        (
            json!(["other"]),
            Some(ClientAppType::ExchangeActiveSync),
            Mode::Live,
            Err(ClientApps),
        ),
        (json!(["browser"]), None, Mode::Live, Ok(())),
        (
            json!(["browser"]),
            None,
            Mode::WhatIf,
            Err(NotEnoughInformation),
        ),
        (json!([]), None, Mode::WhatIf, Ok(())),
        (json!(null), None, Mode::WhatIf, Ok(())),
    ];
    for (types, client, mode, want) in table {
        let p = policy(json!({"conditions": {"clientAppTypes": types.clone()}}));
        let mut c = ctx();
        c.mode = mode;
        c.client_app_type = client;
        assert_eq!(
            applies(&p, &c),
            want,
            "clientAppTypes {types} for {client:?} ({mode:?})"
        );
    }
}

#[test]
fn risk_conditions_table() {
    use AnalysisReason::{NotEnoughInformation, SignInRisk, UserRisk};
    let table: Vec<(
        &str,
        Value,
        Option<RiskLevel>,
        Mode,
        Result<(), AnalysisReason>,
    )> = vec![
        (
            "signInRiskLevels",
            json!(["high", "medium"]),
            Some(RiskLevel::High),
            Mode::Live,
            Ok(()),
        ),
        (
            "signInRiskLevels",
            json!(["high", "medium"]),
            Some(RiskLevel::Low),
            Mode::Live,
            Err(SignInRisk),
        ),
        // Gatepass detects no risk: a live sign-in is `none`.
        (
            "signInRiskLevels",
            json!(["high"]),
            Some(RiskLevel::None),
            Mode::Live,
            Err(SignInRisk),
        ),
        (
            "signInRiskLevels",
            json!(["high"]),
            None,
            Mode::WhatIf,
            Err(NotEnoughInformation),
        ),
        ("signInRiskLevels", json!([]), None, Mode::WhatIf, Ok(())),
        (
            "userRiskLevels",
            json!(["high"]),
            Some(RiskLevel::High),
            Mode::WhatIf,
            Ok(()),
        ),
        (
            "userRiskLevels",
            json!(["high"]),
            Some(RiskLevel::Medium),
            Mode::WhatIf,
            Err(UserRisk),
        ),
        (
            "userRiskLevels",
            json!(["high"]),
            None,
            Mode::WhatIf,
            Err(NotEnoughInformation),
        ),
        ("userRiskLevels", json!(["high"]), None, Mode::Live, Ok(())),
    ];
    for (field, levels, level, mode, want) in table {
        let p = policy(json!({"conditions": {field: levels.clone()}}));
        let mut c = ctx();
        c.mode = mode;
        if field == "signInRiskLevels" {
            c.sign_in_risk = level;
        } else {
            c.user_risk = level;
        }
        assert_eq!(
            applies(&p, &c),
            want,
            "{field} {levels} for {level:?} ({mode:?})"
        );
    }
}

#[test]
fn first_unmet_condition_is_the_reason() {
    let p = policy(json!({"conditions": {
        "users": {"includeUsers": ["u2"]},
        "applications": {"includeApplications": ["app2"]},
        "platforms": {"includePlatforms": ["android"]}
    }}));
    assert_eq!(applies(&p, &ctx()), Err(AnalysisReason::Users));
    let p = policy(json!({"conditions": {
        "applications": {"includeApplications": ["app2"]},
        "platforms": {"includePlatforms": ["android"]}
    }}));
    assert_eq!(applies(&p, &ctx()), Err(AnalysisReason::Application));
}

/// The kind of verdict, with the strengths a step-up accepts.
#[derive(Debug, PartialEq)]
enum V {
    NotApplied,
    Ok,
    StepUp(Vec<Vec<&'static str>>),
    Block(Vec<&'static str>),
}

fn verdict(r: &PolicyResult) -> V {
    match &r.verdict {
        Verdict::NotApplied => V::NotApplied,
        Verdict::Satisfied => V::Ok,
        Verdict::StepUp(u) => V::StepUp(
            u.iter()
                .map(|u| {
                    u.any_of
                        .iter()
                        .map(|s| match s.id() {
                            MULTIFACTOR => "mfa",
                            PASSWORDLESS_MFA => "passwordless",
                            PHISHING_RESISTANT_MFA => "phishing",
                            _ => "custom",
                        })
                        .collect()
                })
                .collect(),
        ),
        Verdict::Block(b) => V::Block(b.controls.iter().map(|c| &*c.clone().leak()).collect()),
    }
}

#[test]
fn grant_controls_operator_table() {
    let phishing = json!({"id": PHISHING_RESISTANT_MFA});
    let compliant: Tweak = |c| c.device_compliant = true;
    let joined: Tweak = |c| c.device_domain_joined = true;
    let table: Vec<(&str, Value, Value, &[AuthMethod], Tweak, V, Option<bool>)> = vec![
        (
            "OR",
            json!(["mfa"]),
            json!(null),
            &[Password],
            none,
            V::StepUp(vec![vec!["mfa"]]),
            Some(false),
        ),
        (
            "OR",
            json!(["mfa"]),
            json!(null),
            &[TemporaryAccessPassOneTime],
            none,
            V::Ok,
            Some(true),
        ),
        (
            "OR",
            json!(["mfa"]),
            json!(null),
            &[TemporaryAccessPassMultiUse],
            none,
            V::Ok,
            Some(true),
        ),
        (
            "OR",
            json!(["mfa"]),
            json!(null),
            &[Passkey],
            none,
            V::Ok,
            Some(true),
        ),
        (
            "OR",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[Password],
            none,
            V::StepUp(vec![vec!["mfa"]]),
            Some(false),
        ),
        (
            "OR",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[Password],
            compliant,
            V::Ok,
            Some(true),
        ),
        (
            "AND",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[TemporaryAccessPassOneTime],
            none,
            V::Block(vec!["compliantDevice"]),
            Some(false),
        ),
        (
            "AND",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[TemporaryAccessPassOneTime],
            compliant,
            V::Ok,
            Some(true),
        ),
        (
            "AND",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[Password],
            compliant,
            V::StepUp(vec![vec!["mfa"]]),
            Some(false),
        ),
        (
            "AND",
            json!(["domainJoinedDevice"]),
            json!(null),
            &[Password],
            joined,
            V::Ok,
            Some(true),
        ),
        (
            "AND",
            json!(["domainJoinedDevice"]),
            json!(null),
            &[Password],
            compliant,
            V::Block(vec!["domainJoinedDevice"]),
            Some(false),
        ),
        (
            "OR",
            json!(["compliantDevice", "domainJoinedDevice"]),
            json!(null),
            &[Passkey],
            none,
            V::Block(vec!["compliantDevice", "domainJoinedDevice"]),
            Some(false),
        ),
        (
            "OR",
            json!(["compliantDevice", "domainJoinedDevice"]),
            json!(null),
            &[Password],
            joined,
            V::Ok,
            Some(true),
        ),
        (
            "OR",
            json!(["block"]),
            json!(null),
            &[Passkey],
            compliant,
            V::Block(vec!["block"]),
            Some(false),
        ),
        (
            "OR",
            json!([]),
            phishing.clone(),
            &[TemporaryAccessPassOneTime],
            none,
            V::StepUp(vec![vec!["phishing"]]),
            Some(false),
        ),
        (
            "OR",
            json!([]),
            phishing.clone(),
            &[Password, Passkey],
            none,
            V::Ok,
            Some(true),
        ),
        (
            "OR",
            json!([]),
            json!({"id": PASSWORDLESS_MFA}),
            &[TemporaryAccessPassMultiUse],
            none,
            V::StepUp(vec![vec!["passwordless"]]),
            Some(false),
        ),
        // AND of two strengths: each is its own requirement.
        (
            "AND",
            json!(["mfa"]),
            phishing.clone(),
            &[TemporaryAccessPassOneTime],
            none,
            V::StepUp(vec![vec!["phishing"]]),
            Some(false),
        ),
        (
            "AND",
            json!(["mfa"]),
            phishing.clone(),
            &[Password],
            none,
            V::StepUp(vec![vec!["mfa"], vec!["phishing"]]),
            Some(false),
        ),
        (
            "OR",
            json!(["mfa"]),
            phishing.clone(),
            &[Password],
            none,
            V::StepUp(vec![vec!["mfa", "phishing"]]),
            Some(false),
        ),
        (
            "OR",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[Password],
            compliant,
            V::Ok,
            Some(true),
        ),
        // An unknown operator reads as AND (the stricter).
        (
            "SOME",
            json!(["mfa", "compliantDevice"]),
            json!(null),
            &[Passkey],
            none,
            V::Block(vec!["compliantDevice"]),
            Some(false),
        ),
        (
            "AND",
            json!([]),
            json!(null),
            &[Password],
            none,
            V::Ok,
            Some(true),
        ),
    ];
    for (op, builtin, strength, methods, tweak, want, satisfied) in table {
        let p = policy(
            json!({"grantControls": {"operator": op, "builtInControls": builtin.clone(), "authenticationStrength": strength.clone()}}),
        );
        let mut c = ctx().with_methods(methods);
        tweak(&mut c);
        let r = eval_one(&p, &c);
        assert_eq!(
            verdict(&r),
            want,
            "{op} {builtin} {strength} with {methods:?}"
        );
        assert_eq!(
            r.satisfied, satisfied,
            "{op} {builtin} {strength} with {methods:?}"
        );
    }
}

#[test]
fn per_control_satisfaction_is_reported() {
    let p = policy(
        json!({"grantControls": {"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]}}),
    );
    let r = eval_one(&p, &ctx().with_methods(&[TemporaryAccessPassOneTime]));
    let controls: Vec<_> = r
        .requirement
        .controls
        .iter()
        .map(|c| (c.control.as_ref(), c.satisfied))
        .collect();
    assert_eq!(
        controls,
        [("mfa", Some(true)), ("compliantDevice", Some(false))]
    );
    assert_eq!(
        r.requirement.controls[0]
            .authentication_strength
            .as_ref()
            .unwrap()
            .display_name(),
        "Multifactor authentication"
    );
    assert_eq!(r.requirement.operator, "AND");
}

#[test]
fn methods_not_given_leave_satisfied_unknown() {
    let mut c = ctx();
    c.methods = None;
    let r = eval_one(&policy(json!({})), &c);
    assert!(r.applies);
    assert_eq!(r.satisfied, None);
    assert_eq!(r.requirement.controls[0].satisfied, None);
    assert_eq!(
        verdict(&r),
        V::StepUp(vec![vec!["mfa"]]),
        "unknown methods never allow"
    );
    // …but a block is a block, methods or not.
    let r = eval_one(
        &policy(json!({"grantControls": {"builtInControls": ["block"]}})),
        &c,
    );
    assert_eq!(r.satisfied, Some(false));
    let r = eval_one(
        &policy(json!({"conditions": {"users": {"includeUsers": ["None"]}}})),
        &c,
    );
    assert_eq!(r.satisfied, None);
}

#[test]
fn sign_in_frequency_table() {
    let mins = time::Duration::minutes;
    let table: Vec<(Value, Value, Option<time::Duration>, &[AuthMethod], V)> = vec![
        // (signInFrequency, grant, session age, methods, verdict)
        (
            json!({"value": 4, "type": "hours", "isEnabled": true, "frequencyInterval": "timeBased"}),
            json!(null),
            Some(mins(239)),
            &[Password],
            V::Ok,
        ),
        (
            json!({"value": 4, "type": "hours", "isEnabled": true, "frequencyInterval": "timeBased"}),
            json!(null),
            Some(mins(240)),
            &[Password],
            V::Ok,
        ),
        (
            json!({"value": 4, "type": "hours", "isEnabled": true, "frequencyInterval": "timeBased"}),
            json!(null),
            Some(mins(241)),
            &[Password],
            V::StepUp(vec![vec![]]),
        ),
        (
            json!({"value": 1, "type": "days", "isEnabled": true}),
            json!(null),
            Some(mins(23 * 60)),
            &[Password],
            V::Ok,
        ),
        (
            json!({"value": 1, "type": "days", "isEnabled": true}),
            json!(null),
            Some(mins(25 * 60)),
            &[Password],
            V::StepUp(vec![vec![]]),
        ),
        (
            json!({"isEnabled": true, "frequencyInterval": "everyTime", "authenticationType": "primaryAndSecondaryAuthentication"}),
            json!(null),
            Some(mins(4)),
            &[Password],
            V::Ok,
        ),
        (
            json!({"isEnabled": true, "frequencyInterval": "everyTime"}),
            json!(null),
            Some(mins(6)),
            &[Password],
            V::StepUp(vec![vec![]]),
        ),
        (
            json!({"isEnabled": true, "frequencyInterval": "everyTime"}),
            json!(null),
            None,
            &[Password],
            V::Ok,
        ),
        (
            json!({"value": 1, "type": "hours", "isEnabled": false}),
            json!(null),
            Some(mins(100_000)),
            &[Password],
            V::Ok,
        ),
        // A time-based control without a period is read as everyTime.
        (
            json!({"isEnabled": true, "type": "hours"}),
            json!(null),
            Some(mins(6)),
            &[Password],
            V::StepUp(vec![vec![]]),
        ),
        // Stale and too weak: a fresh sign-in with MFA.
        (
            json!({"value": 4, "type": "hours", "isEnabled": true}),
            json!({"operator": "OR", "builtInControls": ["mfa"]}),
            Some(mins(300)),
            &[Password],
            V::StepUp(vec![vec!["mfa"]]),
        ),
        (
            json!({"value": 4, "type": "hours", "isEnabled": true}),
            json!({"operator": "OR", "builtInControls": ["mfa"]}),
            Some(mins(300)),
            &[Passkey],
            V::StepUp(vec![vec!["mfa"]]),
        ),
        (
            json!({"value": 4, "type": "hours", "isEnabled": true}),
            json!({"operator": "OR", "builtInControls": ["mfa"]}),
            Some(mins(30)),
            &[Passkey],
            V::Ok,
        ),
    ];
    for (freq, grant, age, methods, want) in table {
        let mut p = serde_json::to_value(policy(
            json!({"sessionControls": {"signInFrequency": freq.clone()}}),
        ))
        .unwrap();
        p["grantControls"] = grant.clone();
        let p: Policy = serde_json::from_value(p).unwrap();
        let mut c = ctx().with_methods(methods);
        c.auth_time = age.map(|a| NOW - a);
        let r = eval_one(&p, &c);
        assert_eq!(verdict(&r), want, "{freq} {grant} after {age:?}");
        let stale = matches!(&r.verdict, Verdict::StepUp(u) if u.iter().all(|u| u.reauthenticate));
        let freq_req = r
            .requirement
            .sign_in_frequency
            .as_ref()
            .filter(|_| freq["isEnabled"] != json!(false));
        if let Some(f) = freq_req {
            assert_eq!(
                f.reauthentication_required,
                Some(stale),
                "{freq} after {age:?}"
            );
        }
    }
}

#[test]
fn report_only_policies_are_recorded_but_never_enforced() {
    let block = policy(
        json!({"id": "ro", "state": "enabledForReportingButNotEnforced", "grantControls": {"builtInControls": ["block"]}}),
    );
    let mfa = policy(json!({"id": "ro-mfa", "state": "enabledForReportingButNotEnforced"}));
    let d = evaluate(&[block, mfa], &StrengthSet::builtin(), &[], &ctx(), NOW);
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(
        d.policies
            .iter()
            .all(|p| p.report_only && p.applies && p.satisfied == Some(false))
    );
    let log: Vec<_> = d
        .applied_conditional_access_policies()
        .into_iter()
        .map(|a| a.result)
        .collect();
    assert_eq!(log, ["reportOnlyFailure", "reportOnlyInterrupted"]);
}

#[test]
fn disabled_policies_never_apply() {
    let p = policy(json!({"state": "disabled", "grantControls": {"builtInControls": ["block"]}}));
    let d = evaluate(
        std::slice::from_ref(&p),
        &StrengthSet::builtin(),
        &[],
        &ctx(),
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        d.policies[0].analysis_reasons,
        AnalysisReason::PolicyNotEnabled
    );
    assert_eq!(d.policies[0].sign_in_log_result(), "notEnabled");
    assert_eq!(d.policies[0].satisfied, None);
}

#[test]
fn all_enforced_requirements_must_be_met_and_block_wins() {
    let strengths = StrengthSet::builtin();
    let mfa = policy(json!({"id": "mfa", "displayName": "MFA"}));
    let phishing = policy(
        json!({"id": "phish", "displayName": "Phishing", "grantControls": {"builtInControls": [], "authenticationStrength": {"id": PHISHING_RESISTANT_MFA}}}),
    );
    let block = policy(
        json!({"id": "block", "displayName": "Block app2", "conditions": {"applications": {"includeApplications": ["app2"]}}, "grantControls": {"builtInControls": ["block"]}}),
    );
    let policies = [mfa, phishing, block];

    let d = evaluate(
        &policies,
        &strengths,
        &[],
        &ctx().with_methods(&[TemporaryAccessPassOneTime]),
        NOW,
    );
    let Outcome::RequireStrength(unmet) = &d.outcome else {
        panic!("{:?}", d.outcome)
    };
    assert_eq!(
        unmet
            .iter()
            .map(|u| u.policy_id.as_str())
            .collect::<Vec<_>>(),
        ["phish"]
    );
    assert_eq!(unmet[0].any_of[0].display_name(), "Phishing resistant MFA");

    let d = evaluate(
        &policies,
        &strengths,
        &[],
        &ctx().with_methods(&[Password]),
        NOW,
    );
    let Outcome::RequireStrength(unmet) = &d.outcome else {
        panic!("{:?}", d.outcome)
    };
    assert_eq!(
        unmet
            .iter()
            .map(|u| u.policy_id.as_str())
            .collect::<Vec<_>>(),
        ["mfa", "phish"]
    );
    assert_eq!(step_up_methods(unmet, &[Password]), [Passkey]);

    assert_eq!(
        evaluate(
            &policies,
            &strengths,
            &[],
            &ctx().with_methods(&[Passkey]),
            NOW
        )
        .outcome,
        Outcome::Allow
    );

    let mut c = ctx().with_methods(&[Passkey]);
    c.target = Target::application("app2");
    let d = evaluate(&policies, &strengths, &[], &c, NOW);
    let Outcome::Block(blocked) = &d.outcome else {
        panic!("{:?}", d.outcome)
    };
    assert_eq!(blocked[0].policy_id, "block");
    assert_eq!(d.outcome.name(), "block");
    let log: Vec<_> = d
        .applied_conditional_access_policies()
        .into_iter()
        .map(|a| (a.result, a.enforced_grant_controls))
        .collect();
    assert_eq!(
        log,
        [
            ("success", vec!["Mfa".to_owned()]),
            ("success", vec!["RequireAuthenticationStrength".to_owned()]),
            ("failure", vec!["Block".to_owned()])
        ]
    );
}

#[test]
fn no_policies_allow() {
    let d = evaluate(&[], &StrengthSet::builtin(), &[], &ctx(), NOW);
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.policies.is_empty());
}

#[test]
fn unsupported_fields_are_kept_reported_and_fail_closed() {
    let raw = json!({
        "id": "dev", "displayName": "Devices", "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"], "applicationFilter": null},
            "clientAppTypes": ["all"],
            "devices": {"deviceFilter": {"mode": "exclude", "rule": "device.trustType -eq \"ServerAD\""}},
            "insiderRiskLevels": null,
            "servicePrincipalRiskLevels": []
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"], "termsOfUse": [], "customAuthenticationFactors": []},
        "sessionControls": {"persistentBrowser": {"mode": "never", "isEnabled": true}, "signInFrequency": null}
    });
    let p: Policy = serde_json::from_value(raw.clone()).unwrap();
    // Kept: written back as it came.
    let back = serde_json::to_value(&p).unwrap();
    assert_eq!(back["conditions"]["devices"], raw["conditions"]["devices"]);
    assert_eq!(
        back["sessionControls"]["persistentBrowser"],
        raw["sessionControls"]["persistentBrowser"]
    );
    // Reported, and the policy applies although Gatepass cannot check the filter.
    let r = eval_one(&p, &ctx().with_methods(&[Passkey]));
    assert!(r.applies);
    assert_eq!(
        r.unsupported,
        ["conditions.devices", "sessionControls.persistentBrowser"]
    );
    assert_eq!(verdict(&r), V::Ok);

    // A grant control Gatepass cannot verify is never met.
    let tou = policy(
        json!({"grantControls": {"operator": "AND", "builtInControls": ["mfa"], "termsOfUse": ["tou-1"]}}),
    );
    let r = eval_one(&tou, &ctx().with_methods(&[Passkey]));
    assert_eq!(verdict(&r), V::Block(vec!["termsOfUse"]));
    assert_eq!(r.unsupported, ["grantControls.termsOfUse"]);
    assert!(!r.requirement.controls[1].supported);
    for control in [
        "approvedApplication",
        "compliantApplication",
        "passwordChange",
        "somethingNew",
    ] {
        let p = policy(json!({"grantControls": {"operator": "AND", "builtInControls": [control]}}));
        let r = eval_one(&p, &ctx().with_methods(&[Passkey]));
        assert_eq!(
            verdict(&r),
            V::Block(vec![control.to_owned().leak()]),
            "{control}"
        );
        assert_eq!(
            r.unsupported,
            [format!("grantControls.builtInControls.{control}")]
        );
    }
    // …but OR with a supported control still lets that control do.
    let either = policy(
        json!({"grantControls": {"operator": "OR", "builtInControls": ["mfa", "approvedApplication"]}}),
    );
    assert_eq!(
        verdict(&eval_one(&either, &ctx().with_methods(&[Passkey]))),
        V::Ok
    );

    // An unsupported user property could include anyone: the policy applies.
    let agents = policy(
        json!({"conditions": {"users": {"includeUsers": ["None"], "includeAgentIdentities": ["x"]}}}),
    );
    let r = eval_one(&agents, &ctx());
    assert!(r.applies);
    assert_eq!(r.unsupported, ["conditions.users.includeAgentIdentities"]);
}

#[test]
fn unknown_and_exported_strengths() {
    let unknown = policy(
        json!({"grantControls": {"builtInControls": [], "authenticationStrength": {"id": "missing"}}}),
    );
    let r = eval_one(&unknown, &ctx().with_methods(&[Passkey]));
    assert_eq!(verdict(&r), V::Block(vec!["authenticationStrength"]));
    assert!(
        r.unsupported[0].contains("no authentication strength has id 'missing'"),
        "{:?}",
        r.unsupported
    );

    // An Entra export carries the whole strength: used when not in the set.
    let exported = policy(
        json!({"grantControls": {"builtInControls": [], "authenticationStrength": {
        "id": "b0075b7a-0000-4000-8000-000000000001", "displayName": "Bootstrap and recovery", "policyType": "custom",
        "allowedCombinations": ["temporaryAccessPassOneTime", "fido2"], "combinationConfigurations": []}}}),
    );
    let r = eval_one(
        &exported,
        &ctx().with_methods(&[TemporaryAccessPassOneTime]),
    );
    assert_eq!(verdict(&r), V::Ok);
    let r = eval_one(
        &exported,
        &ctx().with_methods(&[TemporaryAccessPassMultiUse]),
    );
    assert_eq!(verdict(&r), V::StepUp(vec![vec!["custom"]]));
    assert_eq!(
        r.requirement.controls[0]
            .authentication_strength
            .as_ref()
            .unwrap()
            .display_name(),
        "Bootstrap and recovery"
    );
}

#[test]
fn step_up_methods_offer_what_meets_every_requirement() {
    let strengths = StrengthSet::builtin();
    let need = |ids: &[&str], reauthenticate: bool| UnmetRequirement {
        policy_id: "p".to_owned(),
        display_name: "p".to_owned(),
        any_of: ids
            .iter()
            .map(|id| match strengths.get(id) {
                Some(s) => s.reference().clone(),
                None => StrengthRef::new(id, "", Vec::new()),
            })
            .collect(),
        reauthenticate,
    };
    let all_tap_and_key = [
        Passkey,
        TemporaryAccessPassOneTime,
        TemporaryAccessPassMultiUse,
    ];
    assert_eq!(
        step_up_methods(&[need(&[MULTIFACTOR], false)], &[Password]),
        all_tap_and_key
    );
    assert_eq!(
        step_up_methods(
            &[need(&[PASSWORDLESS_MFA], false)],
            &[TemporaryAccessPassOneTime]
        ),
        [Passkey]
    );
    assert_eq!(
        step_up_methods(
            &[
                need(&[MULTIFACTOR], false),
                need(&[PHISHING_RESISTANT_MFA], false)
            ],
            &[Password]
        ),
        [Passkey]
    );
    // A fresh sign-in starts from nothing: the password alone is not enough.
    assert_eq!(
        step_up_methods(&[need(&[], true)], &[Passkey]),
        [
            Passkey,
            TemporaryAccessPassOneTime,
            TemporaryAccessPassMultiUse,
            Password
        ]
    );
    assert_eq!(
        step_up_methods(&[need(&[MULTIFACTOR], true)], &[Passkey]),
        all_tap_and_key
    );
    assert!(step_up_methods(&[need(&["missing"], false)], &[Password]).is_empty());
}

#[test]
fn wire_enums_round_trip() {
    for a in [
        UserAction::RegisterSecurityInformation,
        UserAction::RegisterOrJoinDevices,
    ] {
        assert_eq!(UserAction::parse(a.urn()), Some(a));
        assert_eq!(UserAction::parse(a.name()), Some(a));
    }
    for p in DevicePlatform::ALL {
        assert_eq!(DevicePlatform::parse(p.as_str()), Some(p));
    }
    for c in ClientAppType::ALL {
        assert_eq!(ClientAppType::parse(c.as_str()), Some(c));
    }
    for r in RiskLevel::ALL {
        assert_eq!(RiskLevel::parse(r.as_str()), Some(r));
    }
    for reason in [
        AnalysisReason::NotSet,
        AnalysisReason::ClientApps,
        AnalysisReason::DevicePlatform,
        AnalysisReason::PolicyNotEnabled,
    ] {
        assert_eq!(
            serde_json::to_value(reason).unwrap(),
            json!(reason.as_str())
        );
    }
}

const YUBIKEY_5: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
const FEITIAN: &str = "90a3ccdf-635c-4729-a248-9b709135078f";

fn model(aaguid: &str) -> Option<uuid::Uuid> {
    Some(uuid::Uuid::parse_str(aaguid).unwrap())
}

/// The built-ins, "yubikeys" (a passkey, only a YubiKey 5; or a TAP) and
/// "feitian" (a passkey, only a Feitian).
fn restricted_strengths() -> StrengthSet {
    let strength = |id: &str, combinations: Value, aaguids: &[&str]| {
        serde_json::from_value(json!({
            "id": id, "displayName": id, "policyType": "custom",
            "allowedCombinations": combinations,
            "combinationConfigurations": [{
                "@odata.type": "#microsoft.graph.fido2CombinationConfiguration", "id": "c1",
                "appliesToCombinations": ["fido2"], "allowedAAGUIDs": aaguids}]
        }))
        .unwrap()
    };
    StrengthSet::with_custom(vec![
        strength(
            "yubikeys",
            json!(["fido2", "temporaryAccessPassOneTime"]),
            &[YUBIKEY_5],
        ),
        strength("feitian", json!(["fido2"]), &[FEITIAN]),
    ])
}

#[test]
fn restricted_strength_needs_an_allowed_passkey_model() {
    let strengths = restricted_strengths();
    let p = policy(
        json!({"grantControls": {"builtInControls": [], "authenticationStrength": {"id": "yubikeys"}}}),
    );
    let run = |c: SignInContext| {
        let d = evaluate(std::slice::from_ref(&p), &strengths, &locations(), &c, NOW);
        let r = d.policies.into_iter().next().unwrap();
        assert!(r.unsupported.is_empty(), "{:?}", r.unsupported);
        verdict(&r)
    };
    let key = || ctx().with_methods(&[Passkey]);
    assert_eq!(run(key().with_authenticator(model(YUBIKEY_5))), V::Ok);
    assert_eq!(
        run(key().with_authenticator(model(FEITIAN))),
        V::StepUp(vec![vec!["custom"]]),
        "another model"
    );
    assert_eq!(
        run(key()),
        V::StepUp(vec![vec!["custom"]]),
        "a passkey of unknown model"
    );
    // The unrestricted combination needs no passkey at all.
    assert_eq!(
        run(ctx()
            .with_methods(&[TemporaryAccessPassOneTime])
            .with_authenticator(None)),
        V::Ok
    );
    // Built-in strengths do not care about the model.
    let builtin = policy(
        json!({"grantControls": {"builtInControls": [], "authenticationStrength": {"id": PHISHING_RESISTANT_MFA}}}),
    );
    let d = evaluate(
        std::slice::from_ref(&builtin),
        &strengths,
        &locations(),
        &key().with_authenticator(model(FEITIAN)),
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        SignInContext::live("u", Target::application("a")).authenticator,
        None
    );
}

#[test]
fn step_up_methods_offer_a_passkey_when_some_allowed_model_meets_everything() {
    let strengths = restricted_strengths();
    let need = |id: &str| UnmetRequirement {
        policy_id: id.to_owned(),
        display_name: id.to_owned(),
        any_of: vec![strengths.get(id).unwrap().reference().clone()],
        reauthenticate: false,
    };
    let yubikeys = need("yubikeys");
    let feitian = need("feitian");
    // A YubiKey would do, and so would a TAP.
    assert_eq!(
        step_up_methods(std::slice::from_ref(&yubikeys), &[Password]),
        [Passkey, TemporaryAccessPassOneTime]
    );
    // Signed in with the wrong key: asked for a key again (the right one).
    assert_eq!(
        step_up_methods_with(std::slice::from_ref(&feitian), &[Passkey], model(YUBIKEY_5)),
        [Passkey]
    );
    // One sign-in uses one passkey: no single model meets both.
    assert!(step_up_methods(&[yubikeys.clone(), feitian.clone()], &[Password]).is_empty());
    // Signed in with a passkey of unknown model: a (new) YubiKey or the
    // TAP meets it.
    assert_eq!(
        step_up_methods_with(std::slice::from_ref(&yubikeys), &[Passkey], None),
        [Passkey, TemporaryAccessPassOneTime]
    );
}
