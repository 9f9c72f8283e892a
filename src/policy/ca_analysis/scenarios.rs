//! `gatepass ca test`: named sign-ins with expected decisions, checked
//! against a policy set — a test suite for conditional access, for CI.
//!
//! ```json
//! { "scenarios": [ {
//!     "name": "Contractors need MFA for the HR portal",
//!     "user": "ada@contoso.com", "groups": ["contractors"], "roles": [],
//!     "app": "hr-portal",                       // or "userAction": "registerSecurityInformation"
//!     "ip": "203.0.113.9", "platform": "windows", "clientApp": "browser",
//!     "methods": ["password"],
//!     "expect": { "decision": "stepUp",
//!                 "policies": { "CA001": { "applies": true, "satisfied": false } } } } ] }
//! ```
//!
//! Each scenario is evaluated exactly as `ca what-if` (and the What-If API)
//! would evaluate it. The JSON Schema is `docs/ca-scenarios.schema.json`.

use super::inputs::{Directory, InputError, PolicyFiles, UserType, read_strict, role_template_id};
use crate::policy::conditional_access::{
    ClientAppType, DevicePlatform, DirectoryFacts, MethodMode, MethodNameError, SessionMethods,
    UserAction, WhatIfRequest, what_if,
};
use crate::policy::what_if_cli::{WhatIfArgs, request_body};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScenarioFile {
    /// An editor's hint to the JSON Schema; ignored.
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    scenarios: Vec<Scenario>,
}

/// One named sign-in and what it must come to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// A userPrincipalName (or object id).
    pub user: String,
    /// `Guest` for a guest or external user (with `--directory`, the
    /// directory's `userType` counts too).
    #[serde(default)]
    pub user_type: Option<UserType>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub user_action: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub client_app: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub expect: Expectation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    pub decision: ExpectedDecision,
    /// By policy id or display name.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyExpectation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExpectedDecision {
    Allow,
    Block,
    StepUp,
}

impl ExpectedDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedDecision::Allow => "allow",
            ExpectedDecision::Block => "block",
            ExpectedDecision::StepUp => "stepUp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyExpectation {
    #[serde(default)]
    pub applies: Option<bool>,
    #[serde(default)]
    pub satisfied: Option<bool>,
}

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioResult {
    pub name: String,
    pub passed: bool,
    pub expected: &'static str,
    pub decision: &'static str,
    /// What differed, one line each.
    pub failures: Vec<String>,
}

/// The suite's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub scenarios: Vec<ScenarioResult>,
    pub passed: usize,
    pub failed: usize,
}

/// Loads the scenarios, refusing any name the engine or the directory
/// would not know: a typo must fail, not test a different sign-in.
pub fn load(
    path: &Path,
    files: &PolicyFiles,
    directory: Option<&Directory>,
) -> Result<Vec<Scenario>, InputError> {
    let mut file: ScenarioFile = read_strict(path)?;
    for (i, s) in file.scenarios.iter_mut().enumerate() {
        let at = |field: &str| format!("scenarios[{i}].{field}");
        let bad = |field: &str, message: String| InputError::new(path, at(field), message);
        if s.name.trim().is_empty() {
            return Err(bad("name", "is required".into()));
        }
        if let Some(d) = directory {
            if d.user(&s.user).is_none() {
                return Err(bad(
                    "user",
                    format!(
                        "{:?} is no user of the directory (by id or userPrincipalName)",
                        s.user
                    ),
                ));
            }
            for (j, g) in s.groups.iter_mut().enumerate() {
                *g = d
                    .group_id(g)
                    .map_err(|message| bad(&format!("groups[{j}]"), message))?;
            }
        }
        match (&s.app, &s.user_action) {
            (Some(_), None) => {}
            (None, Some(a)) if UserAction::parse(a).is_some() => {}
            (None, Some(a)) => {
                return Err(bad(
                    "userAction",
                    format!(
                        "{a:?} is not a user action; use registerSecurityInformation or registerOrJoinDevices"
                    ),
                ));
            }
            _ => return Err(bad("app", "give exactly one of app and userAction".into())),
        }
        SessionMethods::parse(&s.methods).map_err(|(j, e)| {
            let message = match e {
                MethodNameError::UnknownMode(unknown) => format!(
                    "{unknown:?} is not an authentication method; use one of {} (fido2:<aaguid> for a passkey of that model)",
                    MethodMode::ALL.map(|m| m.as_str()).join(", ")
                ),
                other => other.to_string(),
            };
            bad(&format!("methods[{j}]"), message)
        })?;
        if let Some(p) = &s.platform {
            DevicePlatform::parse(p).ok_or_else(|| {
                bad(
                    "platform",
                    format!(
                        "{p:?} is not a device platform; use one of {}",
                        DevicePlatform::ALL.map(|d| d.as_str()).join(", ")
                    ),
                )
            })?;
        }
        if let Some(c) = &s.client_app {
            ClientAppType::parse(c).ok_or_else(|| {
                bad(
                    "clientApp",
                    format!(
                        "{c:?} is not a client app type; use one of {}",
                        ClientAppType::ALL.map(|d| d.as_str()).join(", ")
                    ),
                )
            })?;
        }
        if let Some(ip) = &s.ip {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| bad("ip", format!("{ip:?} is not an IP address")))?;
        }
        for (j, r) in s.roles.iter_mut().enumerate() {
            *r = role_template_id(r).map_err(|message| bad(&format!("roles[{j}]"), message))?;
        }
        for key in s.expect.policies.keys() {
            if policy_index(files, key).is_none() {
                return Err(bad(
                    "expect.policies",
                    format!("no policy has the id or display name {key:?}"),
                ));
            }
        }
    }
    Ok(file.scenarios)
}

fn policy_index(files: &PolicyFiles, key: &str) -> Option<usize> {
    files
        .policies
        .iter()
        .position(|p| p.id.eq_ignore_ascii_case(key))
        .or_else(|| {
            files
                .policies
                .iter()
                .position(|p| p.display_name.eq_ignore_ascii_case(key))
        })
}

/// Runs every scenario.
pub fn run(
    scenarios: &[Scenario],
    files: &PolicyFiles,
    directory: Option<&Directory>,
    now: OffsetDateTime,
) -> Result<TestReport, String> {
    let mut results = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        let known = directory.and_then(|d| d.user(&s.user));
        let mut groups = s.groups.clone();
        let mut roles = s.roles.clone();
        let mut aliases = vec![s.user.clone()];
        if let Some(u) = known {
            groups.extend(u.groups.iter().cloned());
            roles.extend(u.roles.iter().cloned());
            aliases.extend([u.id.clone(), u.user_principal_name.clone()]);
        }
        let args = WhatIfArgs {
            user: s.user.clone(),
            app: s.app.clone(),
            user_action: s.user_action.clone(),
            ip: s.ip.clone(),
            platform: s.platform.clone(),
            client_app: s.client_app.clone(),
            methods: s.methods.clone(),
            ..WhatIfArgs::default()
        };
        let request: WhatIfRequest = serde_json::from_value(request_body(&args)?)
            .map_err(|e| format!("scenario {:?}: {e}", s.name))?;
        let facts = DirectoryFacts {
            user_aliases: aliases,
            group_ids: groups,
            role_template_ids: roles,
            is_guest: s.user_type == Some(UserType::Guest) || known.is_some_and(|u| u.is_guest),
        };
        let response = what_if(
            &request,
            &files.policies,
            &files.strengths,
            &files.locations,
            &facts,
            now,
        )
        .map_err(|e| format!("scenario {:?}: {}: {}", s.name, e.field, e.message))?;
        let mut failures = Vec::new();
        if response.decision != s.expect.decision.as_str() {
            failures.push(format!(
                "decision: expected {}, got {}",
                s.expect.decision.as_str(),
                response.decision
            ));
        }
        for (key, want) in &s.expect.policies {
            let Some(i) = policy_index(files, key) else {
                continue;
            };
            let got = &response.value[i];
            if let Some(applies) = want.applies {
                if got.policy_applies != applies {
                    failures.push(format!(
                        "{key}: expected applies={applies}, got {} ({})",
                        got.policy_applies,
                        got.analysis_reasons.as_str()
                    ));
                }
            }
            if let Some(satisfied) = want.satisfied {
                if got.satisfied != Some(satisfied) {
                    let shown = got.satisfied.map_or("null".to_owned(), |b| b.to_string());
                    failures.push(format!(
                        "{key}: expected satisfied={satisfied}, got {shown}"
                    ));
                }
            }
        }
        results.push(ScenarioResult {
            name: s.name.clone(),
            passed: failures.is_empty(),
            expected: s.expect.decision.as_str(),
            decision: response.decision,
            failures,
        });
    }
    let passed = results.iter().filter(|r| r.passed).count();
    Ok(TestReport {
        failed: results.len() - passed,
        passed,
        scenarios: results,
    })
}

/// One line per scenario and a total.
pub fn render_text(report: &TestReport) -> String {
    let mut out = String::new();
    for r in &report.scenarios {
        if r.passed {
            out.push_str(&format!("PASS  {} ({})\n", r.name, r.decision));
        } else {
            out.push_str(&format!("FAIL  {}: {}\n", r.name, r.failures.join("; ")));
        }
    }
    out.push_str(&format!(
        "{} scenarios: {} passed, {} failed\n",
        report.scenarios.len(),
        report.passed,
        report.failed
    ));
    out
}

fn xml(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c if c.is_control() && c != '\n' && c != '\t' => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML, as CI systems render it.
pub fn render_junit(report: &TestReport) -> String {
    let total = report.scenarios.len();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"gatepass ca test\" tests=\"{total}\" failures=\"{}\">\n  <testsuite name=\"conditional access\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"0\">\n",
        report.failed, report.failed
    );
    for r in &report.scenarios {
        let name = xml(&r.name);
        if r.passed {
            out.push_str(&format!(
                "    <testcase classname=\"conditional-access\" name=\"{name}\"/>\n"
            ));
        } else {
            out.push_str(&format!(
                "    <testcase classname=\"conditional-access\" name=\"{name}\">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                xml(&format!("expected {}, got {}", r.expected, r.decision)),
                xml(&r.failures.join("\n"))
            ));
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
