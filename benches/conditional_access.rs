//! Conditional-access evaluation time for 1, 10, 100 and 1,000 policies
//! (issue 5: it must grow linearly and stay under 100 µs for 100 policies),
//! and `gatepass ca gaps` over 1,000 users × 20 apps (and security-info
//! registration) × 5 method sets × 7 platforms × 4 locations × 4 client apps
//! with 50 policies (issue 13: under 10 s on 2 cores).
//!
//! The policy set is a realistic tenant mix, repeated to size: MFA for all,
//! app- and group-scoped strengths, admin roles, location blocks, platform
//! and device controls, the security-info user action, report-only risk
//! policies, legacy-auth blocks, sign-in frequency, disabled policies and
//! Entra exports full of nulls and unsupported device filters — against 20
//! named locations (IPv4 and IPv6) and a user in 20 groups. Each evaluation
//! is the full `evaluate` call a sign-in makes, per-policy results included.
//!
//! Run: `cargo bench --bench conditional_access` (GATEPASS_BENCH_SECONDS sets
//! the time per size; default 2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatepass::authn::AuthMethod;
use gatepass::policy::ca_analysis::gaps;
use gatepass::policy::ca_analysis::inputs::{Directory, DirectoryApp, DirectoryUser, PolicyFiles};
use gatepass::policy::conditional_access::strengths::{PASSWORDLESS_MFA, PHISHING_RESISTANT_MFA};
use gatepass::policy::conditional_access::{
    AuthenticationStrengthPolicy, DirectoryFacts, NamedLocation, Policy, SignInContext,
    StrengthSet, Target, WhatIfRequest, evaluate, platform_from_user_agent, what_if,
};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn named_locations() -> Vec<NamedLocation> {
    (0..20)
        .map(|i| {
            serde_json::from_value(json!({
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "id": format!("loc-{i}"),
                "displayName": format!("Site {i}"),
                "isTrusted": i % 4 == 0,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": format!("10.{i}.0.0/16")},
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": format!("172.16.{i}.0/24")},
                    {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": format!("2001:db8:{i:x}::/48")}
                ]
            }))
            .unwrap()
        })
        .collect()
}

fn custom_strengths() -> Vec<AuthenticationStrengthPolicy> {
    (0..5)
        .map(|i| {
            serde_json::from_value(json!({
                "id": format!("strength-{i}"),
                "displayName": format!("Custom {i}"),
                "policyType": "custom",
                "allowedCombinations": ["fido2", "temporaryAccessPassOneTime", "password,softwareOath", "windowsHelloForBusiness"]
            }))
            .unwrap()
        })
        .collect()
}

/// The `i`-th policy of the mix.
fn policy(i: usize) -> Policy {
    let users = json!({
        "includeUsers": ["All"], "excludeUsers": ["break-glass-1", "break-glass-2"],
        "includeGroups": [], "excludeGroups": [format!("excluded-{}", i % 7)], "includeRoles": [], "excludeRoles": []
    });
    let all_apps =
        json!({"includeApplications": ["All"], "excludeApplications": [format!("app-{}", i % 13)]});
    let mfa = json!({"operator": "OR", "builtInControls": ["mfa"]});
    let (state, conditions, grant, session): (&str, Value, Value, Value) = match i % 10 {
        0 => (
            "enabled",
            json!({"users": users, "applications": all_apps, "clientAppTypes": ["all"]}),
            mfa,
            Value::Null,
        ),
        1 => (
            "enabled",
            json!({"users": {"includeGroups": [format!("group-{}", i % 50)], "excludeUsers": ["break-glass-1"]},
                   "applications": {"includeApplications": [format!("app-{}", i % 30)]}, "clientAppTypes": ["all"]}),
            json!({"operator": "OR", "authenticationStrength": {"id": PASSWORDLESS_MFA}}),
            Value::Null,
        ),
        2 => (
            "enabled",
            json!({"users": {"includeRoles": ["62e90394-69f5-4237-9190-012177145e10", "194ae4cb-b126-40b2-bd5b-6091b380977d",
                    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9", "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"]},
                   "applications": {"includeApplications": ["All"]}, "clientAppTypes": ["all"]}),
            json!({"operator": "OR", "authenticationStrength": {"id": PHISHING_RESISTANT_MFA}}),
            Value::Null,
        ),
        3 => (
            "enabled",
            json!({"users": users, "applications": {"includeApplications": [format!("app-{}", i % 30)]},
                   "locations": {"includeLocations": ["All"], "excludeLocations": [format!("loc-{}", i % 20), "AllTrusted"]}}),
            json!({"operator": "OR", "builtInControls": ["block"]}),
            Value::Null,
        ),
        4 => (
            "enabled",
            json!({"users": users, "applications": all_apps, "platforms": {"includePlatforms": ["android", "iOS"], "excludePlatforms": []}}),
            json!({"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]}),
            Value::Null,
        ),
        5 => (
            "enabled",
            json!({"users": users, "applications": {"includeUserActions": ["urn:user:registersecurityinfo"]}}),
            json!({"operator": "OR", "authenticationStrength": {"id": format!("strength-{}", i % 5)}}),
            Value::Null,
        ),
        6 => (
            "enabledForReportingButNotEnforced",
            json!({"users": users, "applications": all_apps, "signInRiskLevels": ["high", "medium"]}),
            json!({"operator": "OR", "builtInControls": ["block"]}),
            Value::Null,
        ),
        7 => (
            "enabled",
            json!({"users": users, "applications": all_apps, "clientAppTypes": ["exchangeActiveSync", "other"]}),
            json!({"operator": "OR", "builtInControls": ["block"]}),
            Value::Null,
        ),
        8 => (
            "enabled",
            json!({"users": {"includeGroups": [format!("group-{}", i % 50), "group-3"]}, "applications": {"includeApplications": ["All"]}}),
            mfa,
            json!({"signInFrequency": {"value": 8, "type": "hours", "isEnabled": true, "frequencyInterval": "timeBased"}}),
        ),
        _ => (
            if i % 20 == 9 {
                "disabled"
            } else {
                "enabledForReportingButNotEnforced"
            },
            json!({
                "userRiskLevels": [], "signInRiskLevels": [], "clientAppTypes": ["browser", "mobileAppsAndDesktopClients"],
                "servicePrincipalRiskLevels": [], "insiderRiskLevels": null, "clients": null, "times": null,
                "deviceStates": null, "clientApplications": null, "authenticationFlows": null,
                "platforms": {"includePlatforms": ["all"], "excludePlatforms": ["iOS"]},
                "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
                "devices": {"deviceFilter": {"mode": "exclude", "rule": "device.isCompliant -eq True"}},
                "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [],
                    "includeAuthenticationContextClassReferences": [], "applicationFilter": null},
                "users": {"includeUsers": ["All"], "excludeUsers": ["break-glass-1"], "includeGroups": [], "excludeGroups": [],
                    "includeRoles": [], "excludeRoles": [], "includeGuestsOrExternalUsers": null, "excludeGuestsOrExternalUsers": null}
            }),
            json!({"operator": "OR", "builtInControls": ["compliantDevice", "domainJoinedDevice"], "customAuthenticationFactors": [],
                   "termsOfUse": [], "authenticationStrength": null}),
            json!({"persistentBrowser": {"mode": "never", "isEnabled": true}, "signInFrequency": null}),
        ),
    };
    serde_json::from_value(json!({
        "id": format!("policy-{i}"),
        "displayName": format!("Policy {i}"),
        "templateId": null,
        "createdDateTime": "2025-01-01T00:00:00Z",
        "state": state,
        "conditions": conditions,
        "grantControls": grant,
        "sessionControls": session
    }))
    .unwrap()
}

fn contexts() -> Vec<SignInContext> {
    let methods: [&[AuthMethod]; 3] = [
        &[AuthMethod::Passkey],
        &[AuthMethod::TemporaryAccessPassOneTime],
        &[AuthMethod::Password],
    ];
    methods
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let mut c = SignInContext::live("user-1", Target::application(format!("app-{k}")))
                .with_methods(m);
            c.group_ids = (0..20).map(|g| format!("group-{}", g * 2 + k)).collect();
            c.role_template_ids = vec!["62e90394-69f5-4237-9190-012177145e10".to_owned()];
            c.ip_address = Some(if k == 1 {
                "2001:db8:3::7".parse().unwrap()
            } else {
                "10.3.44.5".parse().unwrap()
            });
            c.device_platform = platform_from_user_agent(UA);
            c.auth_time = Some(NOW - time::Duration::hours(2));
            c
        })
        .collect()
}

/// This thread's CPU time (Linux), so a busy machine does not inflate the
/// figures; `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// Mean wall-clock and CPU time of `f` over at least `budget`, after a
/// short warm-up.
fn measure(budget: Duration, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        f();
    }
    let mut runs = 0u32;
    let cpu_start = thread_cpu();
    let start = Instant::now();
    while start.elapsed() < budget || runs < 100 {
        f();
        runs += 1;
    }
    let wall = start.elapsed() / runs;
    let cpu = cpu_start
        .zip(thread_cpu())
        .map(|(a, b)| b.saturating_sub(a) / runs);
    (wall, cpu)
}

fn us(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn main() {
    let secs = std::env::var("GATEPASS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let budget = Duration::from_secs(secs);
    let locations = named_locations();
    let strengths = StrengthSet::with_custom(custom_strengths());
    let contexts = contexts();
    println!(
        "gatepass conditional-access evaluation benchmark: 20 named locations, 8 strengths, {secs}s per size"
    );
    println!(
        "{:>9}  {:>12}  {:>12}  {:>14}",
        "policies", "µs (CPU)", "µs (wall)", "ns/policy (CPU)"
    );

    let mut per_size = Vec::new();
    for n in [1usize, 10, 100, 1000] {
        let policies: Vec<Policy> = (0..n).map(policy).collect();
        let mut k = 0;
        let (wall, cpu) = measure(budget, || {
            let c = &contexts[k % contexts.len()];
            k += 1;
            black_box(evaluate(
                black_box(&policies),
                &strengths,
                &locations,
                c,
                NOW,
            ));
        });
        let cpu_us = if cpu.is_some() {
            us(cpu)
        } else {
            us(Some(wall))
        };
        println!(
            "{n:>9}  {cpu_us:>12.2}  {:>12.2}  {:>14.0}",
            us(Some(wall)),
            cpu_us * 1e3 / n as f64
        );
        per_size.push((n, cpu_us));
    }

    // What-If adds request parsing and the JSON body.
    let policies: Vec<Policy> = (0..100).map(policy).collect();
    let request: WhatIfRequest = serde_json::from_value(json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "user-1"},
        "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["app-1"]},
        "signInConditions": {"devicePlatform": "windows", "clientAppType": "browser", "ipAddress": "10.3.44.5"},
        "authenticationMethods": ["temporaryAccessPassOneTime"]
    }))
    .unwrap();
    let facts = DirectoryFacts {
        group_ids: (0..20).map(|g| format!("group-{g}")).collect(),
        ..DirectoryFacts::default()
    };
    let (wall, cpu) = measure(budget, || {
        let response = what_if(&request, &policies, &strengths, &locations, &facts, NOW).unwrap();
        black_box(serde_json::to_vec(&response).unwrap());
    });
    println!(
        "what-if with its JSON body, 100 policies: {:.2} µs CPU, {:.2} µs wall",
        us(cpu),
        us(Some(wall))
    );

    gaps_benchmark();

    let at = |n: usize| {
        per_size
            .iter()
            .find(|(m, _)| *m == n)
            .map_or(f64::NAN, |(_, us)| *us)
    };
    let (t100, t1000) = (at(100), at(1000));
    println!();
    println!(
        "100 policies: {t100:.2} µs CPU per evaluation (target < 100 µs): {}",
        if t100 < 100.0 { "MET" } else { "NOT MET" }
    );
    let ratio = t1000 / t100;
    println!(
        "1,000 / 100 policies: {ratio:.2}x (linear = 10x): {}",
        if (7.0..=13.0).contains(&ratio) {
            "LINEAR"
        } else {
            "NOT LINEAR"
        }
    );
}

/// A directory of 1,000 users shaped like a tenant: everyone in one of 50
/// department groups, one in a hundred in a policy exclusion group, one in
/// fifty holding an admin role, one in forty a guest, two break-glass
/// accounts; 20 applications.
fn directory() -> Directory {
    const ROLES: [&str; 2] = [
        "62e90394-69f5-4237-9190-012177145e10",
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
    ];
    let users = (0..1000usize)
        .map(|u| {
            let mut groups = vec![format!("group-{}", u % 50)];
            if u % 100 == 7 {
                groups.push(format!("excluded-{}", u % 7));
            }
            let roles = if u % 50 == 11 {
                vec![ROLES[u % 2].to_owned()]
            } else {
                Vec::new()
            };
            let id = match u {
                0 => "break-glass-1".to_owned(),
                1 => "break-glass-2".to_owned(),
                _ => format!("user-{u}"),
            };
            DirectoryUser {
                user_principal_name: format!("{id}@example.com"),
                id,
                groups,
                roles,
                is_guest: u % 40 == 3,
            }
        })
        .collect();
    let applications = (0..20)
        .map(|a| DirectoryApp {
            client_id: format!("app-{a}"),
            display_name: format!("App {a}"),
        })
        .collect();
    Directory {
        users,
        applications,
        group_names: Default::default(),
    }
}

/// `ca gaps` on the tenant above with the first 50 policies of the mix and
/// three of the named locations (the ones the mix excludes, one trusted):
/// with "other", four locations; 11.8 million sign-ins.
fn gaps_benchmark() {
    let mut policies: Vec<Policy> = (0..50).map(policy).collect();
    policies.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
    let files = PolicyFiles {
        policies,
        strengths: StrengthSet::with_custom(custom_strengths()),
        locations: named_locations()
            .into_iter()
            .filter(|l| ["loc-0", "loc-3", "loc-13"].contains(&l.id.as_str()))
            .collect(),
    };
    let directory = directory();
    let min = gaps::min_strength("mfa", &files.strengths).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!("ca gaps: 1,000 users, 20 apps, 50 policies, {cores} cores");
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let start = Instant::now();
        let report = black_box(gaps::run(&files, &directory, &min, NOW));
        times.push(start.elapsed());
        last = Some(report);
    }
    let report = last.unwrap();
    times.sort();
    let median = times[times.len() / 2];
    let space = &report.space;
    println!(
        "  {} sign-ins; {} user classes × {} target classes → {} distinct evaluations",
        space.sign_ins, space.user_classes, space.target_classes, space.evaluations
    );
    println!(
        "  findings: {} weak allows, {} lockouts, {} policy findings",
        report.weak_allows.len(),
        report.lockouts.len(),
        report.policy_findings.len()
    );
    println!(
        "  wall time: median {:.2} s of 3 runs (min {:.2} s, max {:.2} s)",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
    println!(
        "ca gaps, {:.1} million sign-ins (target < 10 s on 2 cores): {}",
        space.sign_ins as f64 / 1e6,
        if median < Duration::from_secs(10) {
            "MET"
        } else {
            "NOT MET"
        }
    );
}
