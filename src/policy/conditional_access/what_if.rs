//! What-If: Graph's `POST /identity/conditionalAccess/evaluate` body in,
//! a `whatIfAnalysisResult` collection out — plus what Entra's What-If
//! cannot do: the `authenticationMethods` a sign-in would use, whether they
//! satisfy each policy, and an overall `decision`.
//!
//! One function serves the Graph endpoint and `gatepass ca what-if`, so
//! both give the same JSON for the same input. The response:
//!
//! ```json
//! { "value": [ { <the policy as stored>, "policyApplies": true,
//!                "analysisReasons": "notSet", "reportOnly": false,
//!                "requirement": { "operator": "OR", "controls": [ { "control": "authenticationStrength",
//!                    "authenticationStrength": { "id": "…", "displayName": "…" },
//!                    "supported": true, "satisfied": false } ],
//!                  "signInFrequency": { … } },
//!                "satisfied": false, "unsupportedFields": [] } ],
//!   "decision": "stepUp",
//!   "unmetRequirements": [ { "policyId": "…", "displayName": "…", "anyOf": [ … ], "reauthenticate": false } ],
//!   "blockedBy": [] }
//! ```
//!
//! Reference: <https://learn.microsoft.com/graph/api/conditionalaccessroot-evaluate?view=graph-rest-beta>.

use super::evaluate::{
    AnalysisReason, BlockedBy, ClientAppType, DevicePlatform, Mode, Outcome, Requirement,
    RiskLevel, SignInContext, Target, UnmetRequirement, UserAction, evaluate,
};
use super::model::{InvalidField, NamedLocation, Policy};
use super::strengths::{MethodNameError, SessionMethods, StrengthSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use time::OffsetDateTime;

/// The evaluate request body, plus Gatepass's `authenticationMethods` and
/// `authenticatedDateTime`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfRequest {
    #[serde(default)]
    pub sign_in_identity: SignInIdentity,
    #[serde(default)]
    pub sign_in_context: SignInContextBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_conditions: Option<SignInConditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_policies_only: Option<bool>,
    /// Graph `authenticationMethodModes` the sign-in uses, e.g.
    /// `["temporaryAccessPassOneTime"]` or `["password", "fido2"]`; a
    /// passkey of a known model is `fido2:<aaguid>` (or `passkey:<aaguid>`),
    /// at most one — plain `fido2` is a passkey of unknown model, which no
    /// model-restricted combination accepts.
    /// Absent: `satisfied` is `null` wherever it depends on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_methods: Option<Vec<String>>,
    /// When the session signed in (for `signInFrequency`); absent = now.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub authenticated_date_time: Option<OffsetDateTime>,
}

/// `signInIdentity`: only `#microsoft.graph.userSignIn` is evaluated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInIdentity {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `signInContext`: `applicationContext` (`includeApplications`),
/// `userActionContext` (`userAction`) or `authContext`
/// (`authenticationContextValue`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInContextBody {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_applications: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_context_value: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SignInContextBody {
    pub fn application(client_id: impl Into<String>) -> SignInContextBody {
        SignInContextBody {
            odata_type: Some("#microsoft.graph.applicationContext".to_owned()),
            include_applications: Some(vec![client_id.into()]),
            ..SignInContextBody::default()
        }
    }

    pub fn user_action(action: UserAction) -> SignInContextBody {
        SignInContextBody {
            odata_type: Some("#microsoft.graph.userActionContext".to_owned()),
            user_action: Some(action.name().to_owned()),
            ..SignInContextBody::default()
        }
    }

    pub fn authentication_context(class_reference: impl Into<String>) -> SignInContextBody {
        SignInContextBody {
            odata_type: Some("#microsoft.graph.authContext".to_owned()),
            authentication_context_value: Some(class_reference.into()),
            ..SignInContextBody::default()
        }
    }
}

/// `signInConditions`. `country`, `insiderRiskLevel`,
/// `servicePrincipalRiskLevel` and `authenticationFlow` are accepted; no
/// supported condition reads them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_app_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insider_risk_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_risk_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_risk_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_risk_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<DeviceInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `deviceInfo`: `isCompliant` meets `compliantDevice`; `trustType`
/// `ServerAd` (hybrid joined) meets `domainJoinedDevice`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_compliant: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the caller knows about the user from the directory (the API reads
/// the store; the CLI takes `--groups`/`--roles`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryFacts {
    /// Other names for `signInIdentity.userId` (e.g. the UPN and the object
    /// id), matched against `includeUsers`/`excludeUsers`.
    pub user_aliases: Vec<String>,
    pub group_ids: Vec<String>,
    pub role_template_ids: Vec<String>,
    pub is_guest: bool,
}

/// One policy in the response: the policy as stored, then the analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfAnalysisResult {
    #[serde(flatten)]
    pub policy: Policy,
    pub policy_applies: bool,
    pub analysis_reasons: AnalysisReason,
    pub report_only: bool,
    pub requirement: Requirement,
    pub satisfied: Option<bool>,
    pub unsupported_fields: Vec<String>,
}

/// The response body of What-If, for the API and for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfResponse {
    pub value: Vec<WhatIfAnalysisResult>,
    /// `allow`, `stepUp` or `block`.
    pub decision: &'static str,
    pub unmet_requirements: Vec<UnmetRequirement>,
    pub blocked_by: Vec<BlockedBy>,
}

/// Properties the analysis writes; a stored policy that carries them (an
/// earlier What-If output loaded as policies) must not repeat them.
const ANALYSIS_PROPERTIES: [&str; 6] = [
    "policyApplies",
    "analysisReasons",
    "reportOnly",
    "requirement",
    "satisfied",
    "unsupportedFields",
];

fn odata_is(odata_type: &Option<String>, name: &str) -> bool {
    odata_type.as_deref().is_some_and(|t| {
        t.trim_start_matches('#')
            .eq_ignore_ascii_case(&format!("microsoft.graph.{name}"))
    })
}

fn bad(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField::new(field, message)
}

/// Turns the request into a [`SignInContext`].
pub fn sign_in_context(
    request: &WhatIfRequest,
    facts: &DirectoryFacts,
) -> Result<SignInContext, InvalidField> {
    let identity = &request.sign_in_identity;
    if identity.odata_type.is_some() && !odata_is(&identity.odata_type, "userSignIn") {
        return Err(bad(
            "signInIdentity.@odata.type",
            "only #microsoft.graph.userSignIn is supported",
        ));
    }
    let user_id = identity
        .user_id
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| bad("signInIdentity.userId", "is required"))?;

    let body = &request.sign_in_context;
    let kind = match body.odata_type.as_deref() {
        Some(_) if odata_is(&body.odata_type, "applicationContext") => "application",
        Some(_) if odata_is(&body.odata_type, "userActionContext") => "userAction",
        Some(_) if odata_is(&body.odata_type, "authContext") => "authContext",
        Some(other) => {
            return Err(bad(
                "signInContext.@odata.type",
                format!("'{other}' is not applicationContext, userActionContext or authContext"),
            ));
        }
        None if body.include_applications.is_some() => "application",
        None if body.user_action.is_some() => "userAction",
        None if body.authentication_context_value.is_some() => "authContext",
        None => {
            return Err(bad(
                "signInContext",
                "give includeApplications, userAction or authenticationContextValue",
            ));
        }
    };
    let target = match kind {
        "application" => {
            let apps: Vec<String> = body
                .include_applications
                .iter()
                .flatten()
                .filter(|a| !a.trim().is_empty())
                .cloned()
                .collect();
            if apps.is_empty() {
                return Err(bad(
                    "signInContext.includeApplications",
                    "needs at least one application id",
                ));
            }
            Target {
                applications: apps,
                ..Target::default()
            }
        }
        "userAction" => {
            let raw = body.user_action.as_deref().unwrap_or_default();
            let action = UserAction::parse(raw).ok_or_else(|| {
                bad(
                    "signInContext.userAction",
                    format!("'{raw}' is not registerSecurityInformation or registerOrJoinDevices"),
                )
            })?;
            Target::user_action(action)
        }
        _ => {
            let value = body
                .authentication_context_value
                .as_deref()
                .unwrap_or_default();
            if !super::model::is_authentication_context(value) {
                return Err(bad(
                    "signInContext.authenticationContextValue",
                    format!("'{value}' is not an authentication context (c1 … c99)"),
                ));
            }
            Target::authentication_context(value)
        }
    };

    let conditions = request.sign_in_conditions.clone().unwrap_or_default();
    let client_app_type = match conditions.client_app_type.as_deref() {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("all") => None,
        Some(t) => Some(ClientAppType::parse(t).ok_or_else(|| {
            bad(
                "signInConditions.clientAppType",
                format!("'{t}' is not a client app type"),
            )
        })?),
    };
    let device_platform = match conditions.device_platform.as_deref() {
        None => None,
        Some(p) if p.eq_ignore_ascii_case("all") => None,
        Some(p) => Some(DevicePlatform::parse(p).ok_or_else(|| {
            bad(
                "signInConditions.devicePlatform",
                format!("'{p}' is not a device platform"),
            )
        })?),
    };
    let ip_address = match conditions.ip_address.as_deref() {
        None => None,
        Some(ip) => Some(ip.trim().parse().map_err(|_| {
            bad(
                "signInConditions.ipAddress",
                format!("'{ip}' is not an IPv4 or IPv6 address"),
            )
        })?),
    };
    let risk = |field: &str, value: &Option<String>| -> Result<Option<RiskLevel>, InvalidField> {
        match value.as_deref() {
            None => Ok(None),
            Some(r) => RiskLevel::parse(r)
                .map(Some)
                .ok_or_else(|| bad(field, format!("'{r}' is not a risk level"))),
        }
    };
    let session = match &request.authentication_methods {
        None => None,
        Some(names) => Some(SessionMethods::parse(names).map_err(|(i, e)| {
            let hint = match e {
                MethodNameError::UnknownMode(_) => {
                    let known: Vec<&str> = super::strengths::MethodMode::ALL
                        .iter()
                        .map(|m| m.as_str())
                        .collect();
                    format!("; the modes are {}", known.join(", "))
                }
                MethodNameError::MalformedAaguid(_)
                | MethodNameError::ModelOnOtherMode(_)
                | MethodNameError::SecondPasskeyModel(_) => String::new(),
            };
            bad("authenticationMethods", format!("entry {i}: {e}{hint}"))
        })?),
    };
    let device = conditions.device_info.unwrap_or_default();

    Ok(SignInContext {
        mode: Mode::WhatIf,
        user_id: user_id.to_owned(),
        user_aliases: facts.user_aliases.clone(),
        group_ids: facts.group_ids.clone(),
        role_template_ids: facts.role_template_ids.clone(),
        is_guest: facts.is_guest,
        target,
        ip_address,
        device_platform,
        client_app_type,
        sign_in_risk: risk(
            "signInConditions.signInRiskLevel",
            &conditions.sign_in_risk_level,
        )?,
        user_risk: risk(
            "signInConditions.userRiskLevel",
            &conditions.user_risk_level,
        )?,
        device_compliant: device.is_compliant == Some(true),
        device_domain_joined: device
            .trust_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("ServerAd")),
        methods: session.map(|s| s.methods),
        authenticator: session.and_then(|s| s.authenticator),
        auth_time: request.authenticated_date_time,
    })
}

/// Evaluates `policies` for the request. Every policy is listed, a disabled
/// one with `policyNotEnabled`; with `appliedPoliciesOnly`, only those that
/// apply.
pub fn what_if(
    request: &WhatIfRequest,
    policies: &[Policy],
    strengths: &StrengthSet,
    locations: &[NamedLocation],
    facts: &DirectoryFacts,
    now: OffsetDateTime,
) -> Result<WhatIfResponse, InvalidField> {
    let context = sign_in_context(request, facts)?;
    let decision = evaluate(policies, strengths, locations, &context, now);
    let applied_only = request.applied_policies_only == Some(true);
    let value = policies
        .iter()
        .zip(decision.policies)
        .filter(|(_, r)| !applied_only || r.applies)
        .map(|(p, r)| {
            let mut policy = p.clone();
            for key in ANALYSIS_PROPERTIES {
                policy.extra.remove(key);
            }
            WhatIfAnalysisResult {
                policy,
                policy_applies: r.applies,
                analysis_reasons: r.analysis_reasons,
                report_only: r.report_only,
                requirement: r.requirement,
                satisfied: r.satisfied,
                unsupported_fields: r.unsupported,
            }
        })
        .collect();
    let (unmet_requirements, blocked_by) = match &decision.outcome {
        Outcome::Allow => (Vec::new(), Vec::new()),
        Outcome::RequireStrength(u) => (u.clone(), Vec::new()),
        Outcome::Block(b) => (Vec::new(), b.clone()),
    };
    Ok(WhatIfResponse {
        value,
        decision: decision.outcome.name(),
        unmet_requirements,
        blocked_by,
    })
}

fn describe_requirement(r: &Requirement) -> String {
    let controls: Vec<String> = r
        .controls
        .iter()
        .map(|c| {
            let name = match &c.authentication_strength {
                Some(s) if c.control == "mfa" => format!("mfa ({})", s.display_name()),
                Some(s) => s.display_name().to_owned(),
                None => c.control.clone().into_owned(),
            };
            if c.supported {
                name
            } else {
                format!("{name} [unsupported]")
            }
        })
        .collect();
    let mut out = controls.join(if r.operator == "OR" { " OR " } else { " AND " });
    if let Some(f) = &r.sign_in_frequency {
        if !out.is_empty() {
            out.push_str("; ");
        }
        match (f.value, &f.frequency_type) {
            (Some(v), Some(t)) => {
                let _ = write!(out, "sign in every {v} {t}");
            }
            _ => out.push_str("sign in every time"),
        }
    }
    if out.is_empty() { "-".to_owned() } else { out }
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

/// The CLI's default output: one row per policy, then the decision.
pub fn render_table(response: &WhatIfResponse) -> String {
    let header = [
        "POLICY",
        "STATE",
        "APPLIES",
        "REASON",
        "REQUIRES",
        "SATISFIED",
    ];
    let rows: Vec<[String; 6]> = response
        .value
        .iter()
        .map(|r| {
            let state = if r.report_only {
                "report-only"
            } else {
                r.policy.state.as_str()
            };
            [
                if r.policy.display_name.is_empty() {
                    r.policy.id.clone()
                } else {
                    r.policy.display_name.clone()
                },
                state.to_owned(),
                if r.policy_applies { "yes" } else { "no" }.to_owned(),
                if r.policy_applies {
                    "-".to_owned()
                } else {
                    r.analysis_reasons.as_str().to_owned()
                },
                describe_requirement(&r.requirement),
                yes_no(r.satisfied).to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(no policies)\n");
    }
    for r in response
        .value
        .iter()
        .filter(|r| !r.unsupported_fields.is_empty())
    {
        let _ = writeln!(
            out,
            "note: '{}' uses what Gatepass does not evaluate (it applies regardless): {}",
            r.policy.display_name,
            r.unsupported_fields.join(", ")
        );
    }
    let _ = writeln!(out, "\nDecision: {}", response.decision);
    for u in &response.unmet_requirements {
        let names: Vec<&str> = u.any_of.iter().map(|s| s.display_name()).collect();
        let mut need = if names.is_empty() {
            String::new()
        } else {
            format!("one of: {}", names.join(", "))
        };
        if u.reauthenticate {
            need = if need.is_empty() {
                "a fresh sign-in".to_owned()
            } else {
                format!("a fresh sign-in with {need}")
            };
        }
        let _ = writeln!(out, "  '{}' requires {need}", u.display_name);
    }
    for b in &response.blocked_by {
        let _ = writeln!(
            out,
            "  '{}' blocks access ({})",
            b.display_name,
            b.controls.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::policy::conditional_access::strengths::PASSWORDLESS_MFA;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn policies() -> Vec<Policy> {
        serde_json::from_value(json!([
            {"id": "reg", "displayName": "Security info: TAP ok", "state": "enabled",
             "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeUserActions": ["urn:user:registersecurityinfo"]}},
             "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}},
            {"id": "apps", "displayName": "Apps: passwordless", "state": "enabled", "templateId": null,
             "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
             "grantControls": {"operator": "OR", "authenticationStrength": {"id": PASSWORDLESS_MFA}}},
            {"id": "off", "displayName": "Disabled", "state": "disabled",
             "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
             "grantControls": {"operator": "OR", "builtInControls": ["block"]}}
        ]))
        .unwrap()
    }

    fn request(body: serde_json::Value) -> WhatIfRequest {
        serde_json::from_value(body).unwrap()
    }

    fn run(body: serde_json::Value) -> Result<WhatIfResponse, InvalidField> {
        what_if(
            &request(body),
            &policies(),
            &StrengthSet::builtin(),
            &[],
            &DirectoryFacts::default(),
            NOW,
        )
    }

    #[test]
    fn what_if_json_shape_for_a_tap_user_at_an_app() {
        let response = run(json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "u1"},
            "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["rp"]},
            "signInConditions": {"devicePlatform": "windows", "clientAppType": "browser", "ipAddress": "203.0.113.9"},
            "authenticationMethods": ["temporaryAccessPassOneTime"]
        }))
        .unwrap();
        let body = serde_json::to_value(&response).unwrap();
        assert_eq!(
            body,
            json!({
                "value": [
                    {"id": "reg", "displayName": "Security info: TAP ok", "state": "enabled",
                     "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeUserActions": ["urn:user:registersecurityinfo"]}},
                     "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
                     "policyApplies": false, "analysisReasons": "userActions", "reportOnly": false,
                     "requirement": {"operator": "OR", "controls": [
                         {"control": "mfa", "authenticationStrength": {"id": "00000000-0000-0000-0000-000000000002", "displayName": "Multifactor authentication"},
                          "supported": true, "satisfied": null}]},
                     "satisfied": null, "unsupportedFields": []},
                    {"id": "apps", "displayName": "Apps: passwordless", "state": "enabled", "templateId": null,
                     "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
                     "grantControls": {"operator": "OR", "authenticationStrength": {"id": PASSWORDLESS_MFA}},
                     "policyApplies": true, "analysisReasons": "notSet", "reportOnly": false,
                     "requirement": {"operator": "OR", "controls": [
                         {"control": "authenticationStrength", "authenticationStrength": {"id": PASSWORDLESS_MFA, "displayName": "Passwordless MFA"},
                          "supported": true, "satisfied": false}]},
                     "satisfied": false, "unsupportedFields": []},
                    {"id": "off", "displayName": "Disabled", "state": "disabled",
                     "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
                     "grantControls": {"operator": "OR", "builtInControls": ["block"]},
                     "policyApplies": false, "analysisReasons": "policyNotEnabled", "reportOnly": false,
                     "requirement": {"operator": "OR", "controls": [{"control": "block", "supported": true, "satisfied": null}]},
                     "satisfied": null, "unsupportedFields": []}
                ],
                "decision": "stepUp",
                "unmetRequirements": [{"policyId": "apps", "displayName": "Apps: passwordless",
                    "anyOf": [{"id": PASSWORDLESS_MFA, "displayName": "Passwordless MFA"}], "reauthenticate": false}],
                "blockedBy": []
            })
        );
    }

    #[test]
    fn what_if_user_action_and_applied_policies_only() {
        let response = run(json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "u1"},
            "signInContext": {"@odata.type": "#microsoft.graph.userActionContext", "userAction": "registerSecurityInformation"},
            "signInConditions": {},
            "appliedPoliciesOnly": true,
            "authenticationMethods": ["temporaryAccessPassMultiUse"]
        }))
        .unwrap();
        assert_eq!(response.decision, "allow");
        let ids: Vec<_> = response
            .value
            .iter()
            .map(|r| (r.policy.id.as_str(), r.satisfied))
            .collect();
        assert_eq!(ids, [("reg", Some(true))]);
    }

    #[test]
    fn what_if_accepts_graph_documentation_examples() {
        // Example 1 of the evaluate API reference, verbatim but for the ids.
        let response = run(json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "15dc174b-f34c-4588-ac45-61d6e05dce93"},
            "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["00000003-0000-0ff1-ce00-000000000000"]},
            "signInConditions": {"devicePlatform": "android", "clientAppType": "browser", "signInRiskLevel": "high",
                "userRiskLevel": "high", "country": "US", "ipAddress": "40.77.182.32", "insiderRiskLevel": "elevated",
                "authenticationFlow": {"transferMethod": "deviceCodeFlow"}, "deviceInfo": {"isCompliant": true}},
            "appliedPoliciesOnly": true
        }))
        .unwrap();
        // No methods given: the app policy applies, satisfaction unknown.
        assert_eq!(response.value.len(), 1);
        assert_eq!(response.value[0].satisfied, None);
        assert_eq!(response.decision, "stepUp");
        let response = run(json!({
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "u"},
            "signInContext": {"@odata.type": "#microsoft.graph.authContext", "authenticationContextValue": "c37"},
            "signInConditions": {"devicePlatform": "windows", "clientAppType": "mobileAppsAndDesktopClients",
                "deviceInfo": {"profileType": "Standard"}, "servicePrincipalRiskLevel": "none"},
            "appliedPoliciesOnly": true
        }))
        .unwrap();
        assert!(response.value.is_empty());
        assert_eq!(response.decision, "allow");
    }

    #[test]
    fn what_if_request_errors_name_the_field() {
        let user = json!({"@odata.type": "#microsoft.graph.userSignIn", "userId": "u1"});
        let app = json!({"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["rp"]});
        let table = [
            (
                json!({"signInIdentity": {"@odata.type": "#microsoft.graph.servicePrincipalSignIn", "servicePrincipalId": "x"}, "signInContext": app}),
                "signInIdentity.@odata.type",
            ),
            (
                json!({"signInIdentity": {}, "signInContext": app}),
                "signInIdentity.userId",
            ),
            (
                json!({"signInIdentity": user, "signInContext": {}}),
                "signInContext",
            ),
            (
                json!({"signInIdentity": user, "signInContext": {"@odata.type": "#microsoft.graph.nothing"}}),
                "signInContext.@odata.type",
            ),
            (
                json!({"signInIdentity": user, "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": []}}),
                "signInContext.includeApplications",
            ),
            (
                json!({"signInIdentity": user, "signInContext": {"userAction": "dance"}}),
                "signInContext.userAction",
            ),
            (
                json!({"signInIdentity": user, "signInContext": {"authenticationContextValue": "c100"}}),
                "signInContext.authenticationContextValue",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "signInConditions": {"ipAddress": "300.1.1.1"}}),
                "signInConditions.ipAddress",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "signInConditions": {"devicePlatform": "amiga"}}),
                "signInConditions.devicePlatform",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "signInConditions": {"clientAppType": "fax"}}),
                "signInConditions.clientAppType",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "signInConditions": {"signInRiskLevel": "extreme"}}),
                "signInConditions.signInRiskLevel",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "signInConditions": {"userRiskLevel": "extreme"}}),
                "signInConditions.userRiskLevel",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "authenticationMethods": ["password", "carrierPigeon"]}),
                "authenticationMethods",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "authenticationMethods": ["fido2:yubikey"]}),
                "authenticationMethods",
            ),
            (
                json!({"signInIdentity": user, "signInContext": app, "authenticationMethods": [
                    "fido2:cb69481e-8ff7-4039-93ec-0a2729a154a8", "fido2:90a3ccdf-635c-4729-a248-9b709135078f"]}),
                "authenticationMethods",
            ),
        ];
        for (body, field) in table {
            let err = run(body.clone()).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
    }

    #[test]
    fn what_if_reads_device_info_and_session_age() {
        let p: Vec<Policy> = serde_json::from_value(json!([
            {"id": "dev", "displayName": "Compliant or joined", "state": "enabled",
             "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
             "grantControls": {"operator": "AND", "builtInControls": ["compliantDevice", "domainJoinedDevice"]},
             "sessionControls": {"signInFrequency": {"value": 1, "type": "hours", "isEnabled": true, "frequencyInterval": "timeBased"}}}
        ]))
        .unwrap();
        let go = |device: serde_json::Value, at: &str| {
            let r = request(json!({
                "signInIdentity": {"userId": "u"}, "signInContext": {"includeApplications": ["rp"]},
                "signInConditions": {"deviceInfo": device}, "authenticatedDateTime": at
            }));
            what_if(
                &r,
                &p,
                &StrengthSet::builtin(),
                &[],
                &DirectoryFacts::default(),
                NOW,
            )
            .unwrap()
        };
        assert_eq!(
            go(
                json!({"isCompliant": true, "trustType": "ServerAd"}),
                "2026-03-01T11:30:00Z"
            )
            .decision,
            "allow"
        );
        assert_eq!(
            go(json!({"isCompliant": true}), "2026-03-01T11:30:00Z").decision,
            "block"
        );
        let stale = go(
            json!({"isCompliant": true, "trustType": "ServerAd"}),
            "2026-03-01T10:30:00Z",
        );
        assert_eq!(stale.decision, "stepUp");
        assert!(stale.unmet_requirements[0].reauthenticate);
        assert_eq!(
            stale.value[0]
                .requirement
                .sign_in_frequency
                .as_ref()
                .unwrap()
                .reauthentication_required,
            Some(true)
        );
    }

    #[test]
    fn what_if_matches_users_by_alias_group_and_role() {
        let p: Vec<Policy> = serde_json::from_value(json!([
            {"id": "a", "displayName": "By UPN", "state": "enabled",
             "conditions": {"users": {"includeUsers": ["alice@contoso.test"]}, "applications": {"includeApplications": ["All"]}}},
            {"id": "b", "displayName": "By group", "state": "enabled",
             "conditions": {"users": {"includeGroups": ["g1"]}, "applications": {"includeApplications": ["All"]}}},
            {"id": "c", "displayName": "By role", "state": "enabled",
             "conditions": {"users": {"includeRoles": ["r1"]}, "applications": {"includeApplications": ["All"]}}}
        ]))
        .unwrap();
        let r = request(
            json!({"signInIdentity": {"userId": "object-id"}, "signInContext": {"includeApplications": ["rp"]}}),
        );
        let facts = DirectoryFacts {
            user_aliases: vec!["alice@contoso.test".to_owned()],
            group_ids: vec!["g1".to_owned()],
            role_template_ids: vec!["r1".to_owned()],
            is_guest: false,
        };
        let response = what_if(&r, &p, &StrengthSet::builtin(), &[], &facts, NOW).unwrap();
        assert!(response.value.iter().all(|v| v.policy_applies));
        let response = what_if(
            &r,
            &p,
            &StrengthSet::builtin(),
            &[],
            &DirectoryFacts::default(),
            NOW,
        )
        .unwrap();
        assert!(
            response
                .value
                .iter()
                .all(|v| !v.policy_applies && v.analysis_reasons == AnalysisReason::Users)
        );
    }

    #[test]
    fn what_if_output_loaded_back_as_policies_does_not_repeat_analysis() {
        let first = run(json!({"signInIdentity": {"userId": "u"}, "signInContext": {"includeApplications": ["rp"]}})).unwrap();
        let text = serde_json::to_string(&first).unwrap();
        let again = crate::policy::conditional_access::load_policies(&text).unwrap();
        let second = what_if(
            &request(json!({"signInIdentity": {"userId": "u"}, "signInContext": {"includeApplications": ["rp"]}})),
            &again,
            &StrengthSet::builtin(),
            &[],
            &DirectoryFacts::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&second).unwrap(), text);
    }

    #[test]
    fn render_table_lists_policies_and_the_decision() {
        let response = run(json!({
            "signInIdentity": {"userId": "u1"},
            "signInContext": {"includeApplications": ["rp"]},
            "authenticationMethods": ["password"]
        }))
        .unwrap();
        let table = render_table(&response);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("POLICY") && lines[0].ends_with("SATISFIED"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("Security info: TAP ok") && lines[1].contains("userActions"),
            "{table}"
        );
        assert!(
            lines[2].contains("Passwordless MFA") && lines[2].ends_with("no"),
            "{table}"
        );
        assert!(
            lines[3].contains("disabled") && lines[3].contains("policyNotEnabled"),
            "{table}"
        );
        assert!(table.contains("Decision: stepUp"), "{table}");
        assert!(
            table.contains("'Apps: passwordless' requires one of: Passwordless MFA"),
            "{table}"
        );
    }
}
