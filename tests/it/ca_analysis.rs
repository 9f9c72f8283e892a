//! Conditional access as code (DESIGN §2.9): `gatepass ca test | gaps |
//! diff | impact` run as a user runs them — the built binary on files — on
//! a realistic Entra export (`tests/fixtures/entra`: ten policies in the
//! style Microsoft recommends, a break-glass group, a head-office named
//! location, an Entra-shaped sign-in log) and on `config/examples`; and the
//! grouping checked against brute force.

use gatepass::policy::ca_analysis::gaps;
use gatepass::policy::ca_analysis::inputs::{Directory, DirectoryApp, DirectoryUser, PolicyFiles};
use gatepass::policy::ca_analysis::space::{
    CLIENT_APPS, METHOD_SETS, REGISTER_SECURITY_INFO, platform_name,
};
use gatepass::policy::conditional_access::{
    DevicePlatform, MethodSet, NamedLocation, Outcome, Policy, SignInContext, Target, UserAction,
    evaluate,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/entra");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Runs `gatepass ca …`; exit code, stdout, stderr.
fn ca(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .arg("ca")
        .args(args)
        .output()
        .expect("run gatepass");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `gatepass ca COMMAND` on the Entra fixtures (policies, named
/// locations, directory) with more arguments.
fn on_entra(command: &str, more: &[&str]) -> (i32, String, String) {
    let (policies, locations, directory) = (
        fixture("policies.json"),
        fixture("named-locations.json"),
        fixture("directory.json"),
    );
    let mut args = vec![
        command,
        "--policies",
        &policies,
        "--locations",
        &locations,
        "--directory",
        &directory,
    ];
    args.extend(more);
    ca(&args)
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path.display().to_string()
}

const BG: [&str; 2] = [
    "11111111-0000-4000-8000-000000000001",
    "11111111-0000-4000-8000-000000000002",
];

// --- ca test -------------------------------------------------------------------

#[test]
fn ca_test_on_the_entra_export_passes_and_a_wrong_expectation_exits_1() {
    let (code, out, err) = on_entra("test", &[&fixture("scenarios.json")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("12 scenarios: 12 passed, 0 failed"), "{out}");

    // One expectation the policies do not meet.
    let dir = tempfile::tempdir().unwrap();
    let mut scenarios: Value = fixture_json("scenarios.json");
    scenarios["scenarios"][0]["expect"]["decision"] = json!("block");
    scenarios["scenarios"][1]["expect"]["policies"]["9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1001"]["satisfied"] =
        json!(true);
    let file = write(dir.path(), "scenarios.json", &scenarios);
    for format in ["text", "json", "junit"] {
        let (code, out, err) = on_entra("test", &["--format", format, &file]);
        assert_eq!(code, 1, "{format}: {out}{err}");
        match format {
            "text" => {
                assert!(out.contains("FAIL  Break-glass reaches the CRM with a password only: decision: expected block, got allow"), "{out}");
                assert!(out.contains("expected satisfied=true, got false"), "{out}");
                assert!(out.contains("12 scenarios: 10 passed, 2 failed"), "{out}");
            }
            "json" => {
                let v: Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["failed"], 2);
                assert_eq!(v["scenarios"][0]["passed"], false);
                assert_eq!(v["scenarios"][0]["decision"], "allow");
            }
            _ => {
                assert!(out.starts_with("<?xml"), "{out}");
                assert!(out.contains("tests=\"12\" failures=\"2\""), "{out}");
                assert_eq!(out.matches("<testcase ").count(), 12);
                assert_eq!(out.matches("<failure ").count(), 2);
            }
        }
    }
}

#[test]
fn ca_bad_input_exits_2_naming_the_file_the_position_and_the_property() {
    let dir = tempfile::tempdir().unwrap();
    let mut policies: Value = fixture_json("policies.json");
    policies["value"][2]["state"] = json!("sometimes");
    let bad_policies = write(dir.path(), "bad-policies.json", &policies);
    let (code, _, err) = ca(&[
        "gaps",
        "--policies",
        &bad_policies,
        "--directory",
        &fixture("directory.json"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("bad-policies.json: value[2].state"), "{err}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"users\": [ {\"id\": \"x\",").unwrap();
    let (code, _, err) = ca(&[
        "gaps",
        "--policies",
        &fixture("policies.json"),
        "--locations",
        &fixture("named-locations.json"),
        "--directory",
        &broken.display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.json: line 1 column"), "{err}");

    let directory = write(
        dir.path(),
        "directory.json",
        &json!({"users": [{"id": "u1", "userPrincipalName": "a@x", "roles": ["Supreme Leader"]}]}),
    );
    let (code, _, err) = ca(&[
        "gaps",
        "--policies",
        &fixture("policies.json"),
        "--locations",
        &fixture("named-locations.json"),
        "--directory",
        &directory,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("directory.json: users[0].roles[0]") && err.contains("Supreme Leader"),
        "{err}"
    );

    let scenarios = write(
        dir.path(),
        "scenarios.json",
        &json!({"scenarios": [{"name": "n", "user": "u", "app": "crm", "methods": ["fido3"], "expect": {"decision": "allow"}}]}),
    );
    let (code, _, err) = ca(&[
        "test",
        "--policies",
        &fixture("policies.json"),
        "--locations",
        &fixture("named-locations.json"),
        &scenarios,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("scenarios.json: scenarios[0].methods[0]")
            && err.contains("\"fido3\"")
            && err.contains("temporaryAccessPassOneTime"),
        "{err}"
    );

    let scenarios = write(
        dir.path(),
        "scenarios2.json",
        &json!({"scenarios": [{"name": "n", "user": "u", "app": "crm", "platform": "amiga", "expect": {"decision": "allow"}}]}),
    );
    let (code, _, err) = ca(&[
        "test",
        "--policies",
        &fixture("policies.json"),
        "--locations",
        &fixture("named-locations.json"),
        &scenarios,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("scenarios[0].platform") && err.contains("amiga"),
        "{err}"
    );

    // A directory without users would make every policy "apply to nobody".
    let empty = write(dir.path(), "empty.json", &json!({"users": []}));
    let (policies, locations) = (fixture("policies.json"), fixture("named-locations.json"));
    for args in [
        &["gaps", "--policies", &policies][..],
        &["diff", "--old", &policies, "--new", &policies][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["--locations", &locations, "--directory", &empty]);
        let (code, _, err) = ca(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.contains("empty.json: users: the directory has no users"),
            "{err}"
        );
    }

    // A role by a name instead of its template id would silently match no one.
    let mut policies: Value = fixture_json("policies.json");
    policies["value"][1]["conditions"]["users"]["includeRoles"] = json!(["Global Admin"]);
    let named_role = write(dir.path(), "named-role.json", &policies);
    let (code, _, err) = ca(&[
        "gaps",
        "--policies",
        &named_role,
        "--locations",
        &fixture("named-locations.json"),
        "--directory",
        &fixture("directory.json"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("named-role.json: [1]")
            && err.contains("conditions.users.includeRoles")
            && err.contains("Global Admin"),
        "{err}"
    );

    // A policy naming a location the files do not have.
    let (code, _, err) = ca(&[
        "gaps",
        "--policies",
        &fixture("policies.json"),
        "--directory",
        &fixture("directory.json"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("policies.json") && err.contains("conditions.locations"),
        "{err}"
    );
}

// --- ca gaps -------------------------------------------------------------------

#[test]
fn ca_gaps_on_the_entra_export_finds_the_break_glass_hole_the_lockout_and_the_policy_findings() {
    let (code, out, err) = on_entra("gaps", &["--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();

    // Break-glass: every app and security-info registration with a password.
    let weak = report["weakAllows"].as_array().unwrap();
    let bg = weak
        .iter()
        .find(|f| f["users"] == json!(BG))
        .unwrap_or_else(|| panic!("no break-glass finding: {weak:#?}"));
    assert_eq!(
        bg["targets"],
        json!(["crm", "hr-portal", REGISTER_SECURITY_INFO, "wiki"])
    );
    assert_eq!(bg["methods"], json!([["password"]]));
    assert_eq!(
        bg["platforms"],
        json!([
            "android",
            "iOS",
            "windows",
            "windowsPhone",
            "macOS",
            "linux",
            "unknown"
        ])
    );
    assert_eq!(bg["clientApps"].as_array().unwrap().len(), 4);
    let summary = bg["summary"].as_str().unwrap();
    assert!(summary.starts_with("Users in Break-glass can reach every app and security-info registration with a password only: excluded from CA001"), "{summary}");
    assert!(
        summary.ends_with("and no other policy applies."),
        "{summary}"
    );

    // Everyone else registers security info from the office with a password:
    // Microsoft's pattern, reported as what it is.
    let office = weak
        .iter()
        .find(|f| f["targets"] == json!([REGISTER_SECURITY_INFO]))
        .unwrap();
    assert_eq!(office["users"].as_array().unwrap().len(), 9);
    assert_eq!(
        office["locations"],
        json!(["0d5f6d1c-2b47-4a51-9a43-7c0b6d3f1a01"])
    );
    assert_eq!(
        office["policies"],
        json!(["9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1004"])
    );
    assert!(
        office["summary"]
            .as_str()
            .unwrap()
            .starts_with("Every user outside Break-glass"),
        "{office}"
    );
    assert_eq!(weak.len(), 2, "one finding per hole: {weak:#?}");

    // Sales cannot reach the HR portal at all: CA008 and nothing else.
    assert_eq!(
        report["lockouts"],
        json!([{
            "users": ["11111111-0000-4000-8000-000000000005", "11111111-0000-4000-8000-000000000006"],
            "targets": ["hr-portal"],
            "policies": ["9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1008"],
            "summary": "Users in Sales cannot reach HR portal with any method from anywhere: stopped by CA008: Block the HR portal for Sales."
        }])
    );

    let findings = report["policyFindings"].as_array().unwrap();
    let kinds: BTreeSet<(&str, &str)> = findings
        .iter()
        .flat_map(|f| {
            f["policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |p| (f["kind"].as_str().unwrap(), p.as_str().unwrap()))
        })
        .collect();
    // The guest policy applies to the directory's guest.
    assert!(
        !kinds.iter().any(|(kind, _)| *kind == "appliesToNobody"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            "reportOnlyBlocksEverything",
            "9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1009"
        )),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            "exclusionWithoutFallback",
            "9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1001"
        )),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(_, p)| p.ends_with("1010")),
        "a disabled policy is no finding"
    );

    // Without guests in the directory, the guest policy applies to nobody.
    let dir = tempfile::tempdir().unwrap();
    let mut members: Value = fixture_json("directory.json");
    members["users"]
        .as_array_mut()
        .unwrap()
        .retain(|u| u["userType"] != "Guest");
    let members = write(dir.path(), "members.json", &members);
    let (policies, locations) = (fixture("policies.json"), fixture("named-locations.json"));
    let (code, out, _) = ca(&[
        "gaps",
        "--policies",
        &policies,
        "--locations",
        &locations,
        "--directory",
        &members,
        "--json",
    ]);
    assert_eq!(code, 1);
    let nobody: Vec<Value> = serde_json::from_str::<Value>(&out).unwrap()["policyFindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "appliesToNobody")
        .cloned()
        .collect();
    assert_eq!(nobody.len(), 1, "{nobody:#?}");
    assert_eq!(
        nobody[0]["policies"],
        json!(["9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1006"])
    );

    // The same, in words.
    let (code, text, _) = on_entra("gaps", &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("Weak allows: 2") && text.contains("Lockouts: 1"),
        "{text}"
    );
    assert!(
        text.contains("(report-only) would block every one of the 840 sign-ins"),
        "{text}"
    );
}

#[test]
fn ca_gaps_with_a_higher_minimum_strength_reports_more_and_config_examples_run() {
    let (_, out, _) = on_entra(
        "gaps",
        &["--json", "--min-strength", "phishingResistantMfa"],
    );
    let strict: Value = serde_json::from_str(&out).unwrap();
    let methods: BTreeSet<String> = strict["weakAllows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            f["methods"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
        })
        .collect();
    assert!(
        methods.contains("[\"temporaryAccessPassOneTime\"]"),
        "a pass is weak for phishing resistance: {methods:?}"
    );

    // The shipped examples, with their strengths and locations.
    let dir = tempfile::tempdir().unwrap();
    let directory = write(
        dir.path(),
        "directory.json",
        &json!({
            "users": [
                {"id": "a1", "userPrincipalName": "admin@contoso.com", "roles": ["Global Administrator"]},
                {"id": "u1", "userPrincipalName": "user@contoso.com"}
            ],
            "applications": [{"clientId": "demo-app"}]
        }),
    );
    for policies in [
        "ca-admins-phishing-resistant.json",
        "ca-recommended-tap-registration.json",
    ] {
        let (code, out, err) = ca(&[
            "gaps",
            "--policies",
            &format!("{EXAMPLES}/{policies}"),
            "--strengths",
            &format!("{EXAMPLES}/ca-strengths.json"),
            "--locations",
            &format!("{EXAMPLES}/named-locations.json"),
            "--directory",
            &directory,
            "--json",
        ]);
        assert!(code == 0 || code == 1, "{policies}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["space"]["evaluations"].as_u64().unwrap() > 0,
            "{policies}"
        );
    }
}

// --- ca diff -------------------------------------------------------------------

#[test]
fn ca_diff_names_the_changed_property_and_the_sign_ins_that_now_decide_differently() {
    let dir = tempfile::tempdir().unwrap();
    let mut new: Value = fixture_json("policies.json");
    new["value"][0]["conditions"]["users"]["excludeGroups"] = json!([]);
    let new = write(dir.path(), "new.json", &new);
    let old = fixture("policies.json");
    let locations = fixture("named-locations.json");
    let directory = fixture("directory.json");
    let (code, out, err) = ca(&[
        "diff",
        "--old",
        &old,
        "--new",
        &new,
        "--locations",
        &locations,
        "--directory",
        &directory,
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["changed"][0]["id"],
        "9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1001"
    );
    assert_eq!(
        report["changed"][0]["changes"],
        json!([{"path": "conditions.users.excludeGroups", "old": ["6b1f2c4d-0000-4a7e-9c11-b1eac0000001"], "new": []}])
    );
    let changes = report["decisionChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["from"], "allow");
    assert_eq!(changes[0]["to"], "stepUp");
    assert_eq!(changes[0]["users"], json!(BG));
    assert_eq!(changes[0]["methods"], json!([["password"]]));
    assert_eq!(changes[0]["targets"], json!(["crm", "hr-portal", "wiki"]));

    // No change, no finding.
    let (code, out, _) = ca(&[
        "diff",
        "--old",
        &old,
        "--new",
        &old,
        "--locations",
        &locations,
        "--directory",
        &directory,
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("No policy changed.") && out.contains("No sign-in decides differently."),
        "{out}"
    );

    // `null`, `{}` and `[]` are one setting: rewriting one as another is no
    // change.
    let mut same: Value = fixture_json("policies.json");
    same["value"][0]["sessionControls"] = json!({});
    same["value"][0]["conditions"]["platforms"] = json!({});
    same["value"][0]["conditions"]["users"]["excludeUsers"] = Value::Null;
    let same = write(dir.path(), "same.json", &same);
    let (code, out, _) = ca(&[
        "diff",
        "--old",
        &old,
        "--new",
        &same,
        "--locations",
        &locations,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No policy changed."), "{out}");
}

// --- ca impact -----------------------------------------------------------------

#[test]
fn ca_impact_replays_an_entra_sign_in_log_and_names_what_it_cannot_map() {
    let (code, out, err) = on_entra(
        "impact",
        &["--sign-ins", &fixture("sign-ins.json"), "--json"],
    );
    assert_eq!(code, 1, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    // 16 entries; replayed: the 53001 (device not compliant) sign-in whose
    // methods succeeded, and of the interrupted-then-completed sign-in
    // (one correlationId) only its completion.
    assert_eq!(report["entries"], 16);
    assert_eq!(report["replayed"], 9);
    assert_eq!(
        report["decisions"],
        json!({"allow": 4, "block": 3, "stepUp": 2})
    );
    let policy = |id: &str| {
        report["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()
            .clone()
    };
    let ca001 = policy("9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1001");
    assert_eq!(
        (ca001["applied"].as_u64(), ca001["steppedUp"].as_u64()),
        (Some(8), Some(2))
    );
    let ca002 = policy("9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1002");
    assert_eq!(ca002["steppedUp"], 1, "SMS is not phishing-resistant");
    assert_eq!(ca002["examples"][0]["user"], "admin@contoso.com");
    assert_eq!(
        policy("9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1003")["blocked"],
        1,
        "Exchange ActiveSync"
    );
    assert_eq!(
        policy("9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1005")["blocked"],
        1,
        "HR portal from Lisbon"
    );
    assert_eq!(
        policy("9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1007")["blocked"],
        1,
        "Linux"
    );
    assert_eq!(
        policy("9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1009")["blocked"],
        1,
        "report-only counted too"
    );
    let skipped: Vec<(String, u64)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["reason"].as_str().unwrap().to_owned(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        vec![
            (
                "an earlier attempt of a sign-in whose later attempt is replayed (same correlationId, user and app)".to_owned(),
                1
            ),
            ("no deviceDetail".to_owned(), 1),
            ("no ipAddress".to_owned(), 1),
            (
                "only \"Previously satisfied\": the methods were proven by an earlier sign-in"
                    .to_owned(),
                1
            ),
            (
                // One as a number, one as a string.
                "the sign-in failed before conditional access (errorCode 50126)".to_owned(),
                2
            ),
            (
                "unknown authentication method \"Carrier pigeon\"".to_owned(),
                1
            ),
        ]
    );
}

// --- the grouping, against brute force ---------------------------------------------

/// A tiny deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn ca_gaps_findings_are_disjoint_and_their_union_is_exactly_what_brute_force_finds() {
    let all = PolicyFiles::load(
        Path::new(&fixture("policies.json")),
        None,
        Some(Path::new(&fixture("named-locations.json"))),
    )
    .unwrap();
    // Named locations that nest (the head office inside the WAN) and span
    // both address families, and a policy that tells them apart.
    let mut all = all;
    for (id, name, trusted, ranges) in [
        // Starts where the head office starts: its first address is not
        // the WAN-only part.
        ("wan", "Corporate WAN", false, &["198.51.100.0/22"][..]),
        ("vpn", "VPN", true, &["10.8.0.0/16", "2001:db8:8::/48"][..]),
    ] {
        all.locations.push(
            serde_json::from_value::<NamedLocation>(json!({
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "id": id, "displayName": name, "isTrusted": trusted,
                "ipRanges": ranges.iter().map(|r| json!({"cidrAddress": r})).collect::<Vec<_>>()
            }))
            .unwrap(),
        );
    }
    all.policies.push(
        serde_json::from_value::<Policy>(json!({
            "id": "outside-wan", "displayName": "MFA outside the WAN", "state": "enabled",
            "conditions": {
                "users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
                "locations": {"includeLocations": ["All"], "excludeLocations": ["wan"]}
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}
        }))
        .unwrap(),
    );
    // Probes: the edges of every range, just outside them, and elsewhere.
    let probes = [
        "198.51.100.0",
        "198.51.100.255",
        "198.51.101.0",
        "198.51.103.255",
        "198.51.104.0",
        "198.51.99.255",
        "10.8.0.0",
        "10.8.255.255",
        "10.9.0.0",
        "2001:db8:8::",
        "2001:db8:8:ffff:ffff:ffff:ffff:ffff",
        "2001:db8:9::",
        "203.0.113.77",
    ];
    // A probe's location as findings name it: the ids of the named
    // locations it is in, or "other".
    let label = |files: &PolicyFiles, ip: std::net::IpAddr| -> String {
        let ids: Vec<&str> = files
            .locations
            .iter()
            .filter(|l| l.contains(ip))
            .map(|l| l.id.as_str())
            .collect();
        if ids.is_empty() {
            "other".to_owned()
        } else {
            ids.join("+")
        }
    };
    let platforms: Vec<Option<DevicePlatform>> = DevicePlatform::ALL
        .into_iter()
        .map(Some)
        .chain([None])
        .collect();
    let groups = [
        "6b1f2c4d-0000-4a7e-9c11-b1eac0000001",
        "6b1f2c4d-0000-4a7e-9c11-b1eac0000002",
        "6b1f2c4d-0000-4a7e-9c11-b1eac0000003",
        "6b1f2c4d-0000-4a7e-9c11-b1eac0000004",
        "no-policy-names-me",
    ];
    let roles = [
        "62e90394-69f5-4237-9190-012177145e10",
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    ];
    let now = gatepass::clock::Clock::now(&gatepass::clock::SystemClock);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut weak_total, mut locked_total) = (0, 0);
    for round in 0..12 {
        // A random subset of the policies and a random small directory.
        let mut files = all.clone();
        files.policies.retain(|_| rng.next() % 3 != 0);
        let users: Vec<DirectoryUser> = (0..6)
            .map(|i| DirectoryUser {
                id: format!("u{round}-{i}"),
                user_principal_name: format!("u{i}@contoso.com"),
                groups: (0..rng.next() % 3)
                    .map(|_| (*rng.pick(&groups)).to_owned())
                    .collect(),
                roles: (0..rng.next() % 2)
                    .map(|_| (*rng.pick(&roles)).to_owned())
                    .collect(),
                is_guest: rng.next() % 4 == 0,
            })
            .collect();
        let directory = Directory {
            users,
            applications: ["hr-portal", "crm", "wiki"]
                .iter()
                .map(|a| DirectoryApp {
                    client_id: (*a).to_owned(),
                    display_name: (*a).to_owned(),
                })
                .collect(),
            group_names: Default::default(),
        };
        let min = gaps::min_strength("mfa", &files.strengths).unwrap();
        let report = gaps::run(&files, &directory, &min, now);

        // Brute force: every raw sign-in through the engine.
        let mut targets: Vec<String> = directory
            .applications
            .iter()
            .map(|a| a.client_id.clone())
            .collect();
        targets.push(REGISTER_SECURITY_INFO.to_owned());
        let mut weak = BTreeSet::new();
        let mut reachable = BTreeSet::new();
        for u in &directory.users {
            for t in &targets {
                for (mi, names) in METHOD_SETS.iter().enumerate() {
                    let methods = MethodSet::parse_names(names).unwrap();
                    for &p in &platforms {
                        for ip in probes {
                            let ip: std::net::IpAddr = ip.parse().unwrap();
                            let loc = label(&files, ip);
                            for c in CLIENT_APPS {
                                let target = if t == REGISTER_SECURITY_INFO {
                                    Target::user_action(UserAction::RegisterSecurityInformation)
                                } else {
                                    Target::application(t.clone())
                                };
                                let mut ctx = SignInContext::live(u.id.clone(), target);
                                ctx.user_aliases = vec![u.user_principal_name.clone()];
                                ctx.is_guest = u.is_guest;
                                ctx.group_ids = u.groups.clone();
                                ctx.role_template_ids = u.roles.clone();
                                ctx.methods = Some(methods);
                                ctx.device_platform = p;
                                ctx.ip_address = Some(ip);
                                ctx.client_app_type = Some(c);
                                let d = evaluate(
                                    &files.policies,
                                    &files.strengths,
                                    &files.locations,
                                    &ctx,
                                    now,
                                );
                                if d.outcome == Outcome::Allow {
                                    reachable.insert((u.id.clone(), t.clone()));
                                    if !min.is_satisfied_by(methods) {
                                        weak.insert((
                                            u.id.clone(),
                                            t.clone(),
                                            mi,
                                            platform_name(p),
                                            loc.clone(),
                                            c.as_str(),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // The findings' products, expanded.
        let mut found = Vec::new();
        for f in &report.weak_allows {
            let s = &f.sign_ins;
            for u in &s.users {
                for t in &s.targets {
                    for m in &s.methods {
                        let mi = METHOD_SETS
                            .iter()
                            .position(|names| {
                                names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>() == *m
                            })
                            .unwrap();
                        for p in &s.platforms {
                            for l in &s.locations {
                                for c in &s.client_apps {
                                    let p = platforms
                                        .iter()
                                        .map(|x| platform_name(*x))
                                        .find(|x| x == p)
                                        .unwrap();
                                    let c = CLIENT_APPS
                                        .iter()
                                        .find(|x| x.as_str() == c)
                                        .unwrap()
                                        .as_str();
                                    found.push((u.clone(), t.clone(), mi, p, l.clone(), c));
                                }
                            }
                        }
                    }
                }
            }
        }
        let found_set: BTreeSet<_> = found.iter().cloned().collect();
        assert_eq!(
            found.len(),
            found_set.len(),
            "round {round}: findings overlap"
        );
        assert_eq!(
            found_set, weak,
            "round {round}: weak allows differ from brute force"
        );

        let mut locked_found = Vec::new();
        for l in &report.lockouts {
            for u in &l.users {
                for t in &l.targets {
                    locked_found.push((u.clone(), t.clone()));
                }
            }
        }
        let locked_set: BTreeSet<_> = locked_found.iter().cloned().collect();
        assert_eq!(
            locked_found.len(),
            locked_set.len(),
            "round {round}: lockouts overlap"
        );
        let locked_brute: BTreeSet<(String, String)> = directory
            .users
            .iter()
            .flat_map(|u| targets.iter().map(move |t| (u.id.clone(), t.clone())))
            .filter(|pair| !reachable.contains(pair))
            .collect();
        assert_eq!(
            locked_set, locked_brute,
            "round {round}: lockouts differ from brute force"
        );
        weak_total += weak.len();
        locked_total += locked_brute.len();
    }
    // The rounds exercised both kinds of finding, not only empty reports.
    assert!(
        weak_total > 0 && locked_total > 0,
        "{weak_total} weak, {locked_total} locked"
    );
}

// --- what the space must not merge or miss -----------------------------------------

#[test]
fn ca_inputs_that_would_quietly_test_something_else_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A misspelt group in a directory that lists its groups.
    let mut directory: Value = fixture_json("directory.json");
    directory["users"][0]["groups"] = json!(["Break-glas"]);
    let typo = write(dir.path(), "typo.json", &directory);
    let (policies, locations) = (fixture("policies.json"), fixture("named-locations.json"));
    let (code, _, err) = ca(&[
        "gaps",
        "--policies",
        &policies,
        "--locations",
        &locations,
        "--directory",
        &typo,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("typo.json: users[0].groups[0]") && err.contains("Break-glas"),
        "{err}"
    );

    // A scenario user the directory does not have, and a group by a name
    // the directory does not know.
    for (field, value, at) in [
        ("user", json!("bg1@contoso.co"), "scenarios[0].user"),
        ("groups", json!(["Sails"]), "scenarios[0].groups[0]"),
    ] {
        let mut scenario = json!({"name": "n", "user": "bg1@contoso.com", "app": "crm",
            "methods": ["password"], "expect": {"decision": "allow"}});
        scenario[field] = value;
        let file = write(
            dir.path(),
            "scenarios.json",
            &json!({ "scenarios": [scenario] }),
        );
        let (code, _, err) = on_entra("test", &[&file]);
        assert_eq!(code, 2, "{field}");
        assert!(err.contains(&format!("scenarios.json: {at}")), "{err}");
    }

    // A group given by its display name is the group: Frank in Sales is
    // kept from the HR portal by CA008.
    let file = write(
        dir.path(),
        "scenarios.json",
        &json!({"scenarios": [{"name": "Frank as a Sales member", "user": "frank@contoso.com",
            "groups": ["Sales"], "app": "hr-portal", "ip": "198.51.100.10", "platform": "windows",
            "methods": ["fido2"], "expect": {"decision": "block",
            "policies": {"CA008: Block the HR portal for Sales": {"applies": true}}}}]}),
    );
    let (code, out, err) = on_entra("test", &[&file]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn ca_gaps_tells_apart_what_the_engine_tells_apart() {
    let dir = tempfile::tempdir().unwrap();
    let write_all = |policies: Value, locations: Value, directory: Value| {
        (
            write(dir.path(), "p.json", &policies),
            write(dir.path(), "l.json", &locations),
            write(dir.path(), "d.json", &directory),
        )
    };
    let gaps = |(p, l, d): &(String, String, String)| -> Value {
        let (code, out, err) = ca(&[
            "gaps",
            "--policies",
            p,
            "--locations",
            l,
            "--directory",
            d,
            "--json",
        ]);
        assert!(code == 0 || code == 1, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let policy = |id: &str, conditions: Value, grant: Value| {
        json!({"id": id, "displayName": id, "state": "enabled",
               "conditions": conditions, "grantControls": grant})
    };
    let block = json!({"operator": "OR", "builtInControls": ["block"]});
    let mfa = json!({"operator": "OR", "builtInControls": ["mfa"]});

    // Names that differ beyond ASCII case are different names to the
    // engine, so to the analysis.
    let files = write_all(
        json!([policy(
            "block-équipe",
            json!({"users": {"includeGroups": ["Équipe"]}, "applications": {"includeApplications": ["Äpp"]}}),
            block.clone()
        )]),
        json!([]),
        json!({"users": [
            {"id": "u1", "userPrincipalName": "u1@x", "groups": ["Équipe"]},
            {"id": "u2", "userPrincipalName": "u2@x", "groups": ["équipe"]}],
            "applications": [{"clientId": "Äpp"}, {"clientId": "äpp"}]}),
    );
    let report = gaps(&files);
    let locked: Vec<(Value, Value)> = report["lockouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["users"].clone(), l["targets"].clone()))
        .collect();
    assert_eq!(locked, vec![(json!(["u1"]), json!(["Äpp"]))]);

    // A guest is not a member; a policy only for authentication contexts
    // is not "applies to nobody": sign-ins never ask for a context.
    let files = write_all(
        json!([
            policy(
                "guests",
                json!({"users": {"includeUsers": ["GuestsOrExternalUsers"]},
                "applications": {"includeApplications": ["All"]}}),
                mfa.clone()
            ),
            policy(
                "context",
                json!({"users": {"includeUsers": ["All"]},
                "applications": {"includeAuthenticationContextClassReferences": ["c1"]}}),
                mfa.clone()
            )
        ]),
        json!([]),
        json!({"users": [
            {"id": "member", "userPrincipalName": "m@x"},
            {"id": "guest", "userPrincipalName": "g@x", "userType": "Guest"}],
            "applications": [{"clientId": "app"}]}),
    );
    let report = gaps(&files);
    assert_eq!(report["space"]["notEvaluatedPolicies"], json!(["context"]));
    assert!(
        report["policyFindings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "appliesToNobody"),
        "{report:#}"
    );
    // (Security-info registration is open to both: no policy targets it.)
    let weak_users: BTreeSet<String> = report["weakAllows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["targets"].as_array().unwrap().contains(&json!("app")))
        .flat_map(|f| f["users"].as_array().unwrap().clone())
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(weak_users, BTreeSet::from(["member".to_owned()]));

    // Nested named locations: the WAN around a trusted head office. A
    // password is enough only at an address inside the head office, and a
    // platform the browser does not tell is a platform of its own.
    let files = write_all(
        json!([
            policy(
                "mfa-untrusted",
                json!({"users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
                "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}}),
                mfa.clone()
            ),
            policy(
                "known-platforms",
                json!({"users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
                "platforms": {"includePlatforms": ["all"],
                    "excludePlatforms": ["android", "iOS", "windows", "windowsPhone", "macOS", "linux"]}}),
                block.clone()
            )
        ]),
        json!([
            {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "wan", "displayName": "WAN",
             "isTrusted": false, "ipRanges": [{"cidrAddress": "10.0.0.0/8"}]},
            {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "hq", "displayName": "HQ",
             "isTrusted": true, "ipRanges": [{"cidrAddress": "10.0.0.0/16"}, {"cidrAddress": "192.168.0.0/16"}]}
        ]),
        json!({"users": [{"id": "u", "userPrincipalName": "u@x"}], "applications": [{"clientId": "app"}]}),
    );
    let report = gaps(&files);
    assert_eq!(
        report["space"]["locations"],
        json!(["wan", "wan+hq", "hq", "other"])
    );
    let password_only: Vec<&Value> = report["weakAllows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["targets"] == json!(["app"]))
        .collect();
    assert_eq!(password_only.len(), 1, "{report:#}");
    assert_eq!(password_only[0]["locations"], json!(["wan+hq", "hq"]));
    assert!(
        !password_only[0]["platforms"]
            .as_array()
            .unwrap()
            .contains(&json!("unknown")),
        "{report:#}"
    );
}

#[test]
fn ca_groups_by_name_are_unambiguous_and_mapped_ipv6_does_not_hide_a_region() {
    let dir = tempfile::tempdir().unwrap();
    let (p, l) = (fixture("policies.json"), fixture("named-locations.json"));
    // Two groups share a display name: naming one by it is an error; so is
    // a group id listed twice.
    for (groups, user_groups, at) in [
        (
            json!([{"id": "g1", "displayName": "Sales"}, {"id": "g2", "displayName": "Sales"}]),
            json!(["Sales"]),
            "users[0].groups[0]",
        ),
        (
            json!([{"id": "g1", "displayName": "Sales"}, {"id": "G1", "displayName": "HR"}]),
            json!(["g1"]),
            "groups[1].id",
        ),
    ] {
        let d = write(
            dir.path(),
            "d.json",
            &json!({"groups": groups, "users": [{"id": "u", "userPrincipalName": "u@x", "groups": user_groups}]}),
        );
        let (code, _, err) = ca(&[
            "gaps",
            "--policies",
            &p,
            "--locations",
            &l,
            "--directory",
            &d,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("d.json: {at}")), "{err}");
    }
    // A display name that is another group's id: the id wins.
    let d = write(
        dir.path(),
        "d.json",
        &json!({"groups": [{"id": "6b1f2c4d-0000-4a7e-9c11-b1eac0000002", "displayName": "Sales"},
                           {"id": "g9", "displayName": "6b1f2c4d-0000-4a7e-9c11-b1eac0000002"}],
                "users": [{"id": "u", "userPrincipalName": "u@x", "groups": ["6b1f2c4d-0000-4a7e-9c11-b1eac0000002"]}],
                "applications": [{"clientId": "hr-portal"}]}),
    );
    let (_, out, err) = ca(&[
        "gaps",
        "--policies",
        &p,
        "--locations",
        &l,
        "--directory",
        &d,
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    assert_eq!(
        report["lockouts"][0]["policies"],
        json!(["9a3bd1e0-4c1f-4f0e-8d3e-2a1c0c7b1008"]),
        "the user is in Sales, so CA008 keeps them from the HR portal: {report:#}"
    );

    // A location whose part after the IPv4-mapped block (::ffff:0:0/96)
    // only a boundary after that block finds: S is ::/79, T covers S up
    // to the mapped block.
    let t: Vec<Value> = [
        "::/81",
        "::8000:0:0/82",
        "::c000:0:0/83",
        "::e000:0:0/84",
        "::f000:0:0/85",
        "::f800:0:0/86",
        "::fc00:0:0/87",
        "::fe00:0:0/88",
        "::ff00:0:0/89",
        "::ff80:0:0/90",
        "::ffc0:0:0/91",
        "::ffe0:0:0/92",
        "::fff0:0:0/93",
        "::fff8:0:0/94",
        "::fffc:0:0/95",
        "::fffe:0:0/96",
    ]
    .iter()
    .map(|c| json!({"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": c}))
    .collect();
    let l = write(
        dir.path(),
        "l.json",
        &json!([
            {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "S", "displayName": "S",
             "ipRanges": [{"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "::/79"}]},
            {"@odata.type": "#microsoft.graph.ipNamedLocation", "id": "T", "displayName": "T", "ipRanges": t}
        ]),
    );
    let p = write(
        dir.path(),
        "p.json",
        &json!([{"id": "s-only", "displayName": "Block S outside T", "state": "enabled",
            "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]},
                "locations": {"includeLocations": ["S"], "excludeLocations": ["T"]}},
            "grantControls": {"operator": "OR", "builtInControls": ["block"]}}]),
    );
    let d = write(
        dir.path(),
        "d.json",
        &json!({"users": [{"id": "u", "userPrincipalName": "u@x"}], "applications": [{"clientId": "app"}]}),
    );
    let (_, out, err) = ca(&[
        "gaps",
        "--policies",
        &p,
        "--locations",
        &l,
        "--directory",
        &d,
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    assert_eq!(report["space"]["locations"], json!(["S", "S+T", "other"]));
    assert_eq!(report["policyFindings"], json!([]), "{report:#}");
}

#[test]
fn ca_impact_keeps_one_attempt_per_sign_in_and_knows_guests() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |id: &str, app: &str, at: &str, code: u64, methods: &[&str], correlation: &str| {
        json!({"id": id, "createdDateTime": at, "userId": "u1", "userPrincipalName": "a@x",
            "appId": app, "ipAddress": "192.0.2.1", "clientAppUsed": "Browser",
            "deviceDetail": {"operatingSystem": "Windows"}, "correlationId": correlation,
            "status": {"errorCode": code},
            "authenticationDetails": methods.iter().map(|m| json!({"authenticationMethod": m, "succeeded": true})).collect::<Vec<_>>()})
    };
    let mfa = json!([{"id": "mfa", "displayName": "MFA for app2", "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["app2"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}}]);
    let p = write(dir.path(), "p.json", &mfa);
    let impact = |log: Value, directory: Option<&str>| -> Value {
        let s = write(dir.path(), "s.json", &json!({ "value": log }));
        let mut args = vec!["impact", "--policies", &p, "--sign-ins", &s, "--json"];
        if let Some(d) = directory {
            args.extend(["--directory", d]);
        }
        let (_, out, err) = ca(&args);
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"))
    };
    // One correlationId at two apps: two sign-ins, both replayed.
    let r = impact(
        json!([
            entry("e1", "app2", "2026-01-01T10:00:00Z", 0, &["Password"], "c1"),
            entry("e2", "app1", "2026-01-01T10:00:01Z", 0, &["Password"], "c1"),
        ]),
        None,
    );
    assert_eq!(
        (r["replayed"].as_u64(), r["decisions"]["stepUp"].as_u64()),
        (Some(2), Some(1))
    );
    // Interrupted for MFA, then MFA failed: the interrupted attempt is the
    // one that can be replayed. Times with and without fractions compare
    // as times, not text.
    let r = impact(
        json!([
            entry(
                "e1",
                "app2",
                "2026-01-01T10:00:00.5Z",
                50074,
                &["Password"],
                "c2"
            ),
            entry(
                "e2",
                "app2",
                "2026-01-01T10:00:09Z",
                500121,
                &["Password"],
                "c2"
            ),
        ]),
        None,
    );
    assert_eq!(r["replayed"], 1, "{r:#}");
    assert_eq!(r["policies"][0]["examples"][0]["id"], "e1");
    // As text, "10:00:00Z" would sort after "10:00:00.5Z".
    let r = impact(
        json!([
            entry(
                "e2",
                "app2",
                "2026-01-01T10:00:00.5Z",
                0,
                &["Password", "Mobile app notification"],
                "c3"
            ),
            entry(
                "e1",
                "app2",
                "2026-01-01T10:00:00Z",
                50074,
                &["Password"],
                "c3"
            ),
        ]),
        None,
    );
    assert_eq!(
        (r["replayed"].as_u64(), r["decisions"]["allow"].as_u64()),
        (Some(1), Some(1))
    );

    // A guest (by the directory's userType) meets the guest policy.
    let guests = write(
        dir.path(),
        "g.json",
        &json!([{"id": "guests", "displayName": "Block guests", "state": "enabled",
            "conditions": {"users": {"includeUsers": ["GuestsOrExternalUsers"]}, "applications": {"includeApplications": ["All"]}},
            "grantControls": {"operator": "OR", "builtInControls": ["block"]}}]),
    );
    let d = write(
        dir.path(),
        "d.json",
        &json!({"users": [{"id": "u1", "userPrincipalName": "a@x", "userType": "Guest"}]}),
    );
    let s = write(
        dir.path(),
        "s.json",
        &json!([entry(
            "e1",
            "app1",
            "2026-01-01T10:00:00Z",
            0,
            &["Password"],
            "c4"
        )]),
    );
    let (code, out, _) = ca(&[
        "impact",
        "--policies",
        &guests,
        "--sign-ins",
        &s,
        "--directory",
        &d,
        "--json",
    ]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (code, r["decisions"]["block"].as_u64()),
        (1, Some(1)),
        "{r:#}"
    );
}
