//! The evaluator: which policies apply to a sign-in, what they require, and
//! whether the session's methods meet it. Pure: no clock, no store.
//!
//! ```text
//!  for each policy:
//!    disabled? ──yes──▶ not applied (policyNotEnabled)
//!       │no
//!    users ▶ applications / user action / auth context ▶ device platform
//!    ▶ location ▶ client app ▶ sign-in risk ▶ user risk
//!       │ first condition not met ──▶ not applied (analysisReasons = it)
//!       │ all met
//!    grant controls (AND / OR) + signInFrequency, against the methods
//!       ├─ met ─────────────────────▶ satisfied
//!       ├─ a strength could meet it ─▶ step-up (acceptable strengths)
//!       └─ nothing the user can do ──▶ block (block, device, unsupported)
//!
//!  outcome, over enforced (not report-only) applying policies:
//!    any block ▶ Block   else any step-up ▶ RequireStrength   else Allow
//! ```
//!
//! Exclusions beat inclusions. Every applying requirement must be met (AND
//! across policies). Report-only policies are evaluated and recorded but
//! never change the outcome.
//!
//! Failing closed: a property Gatepass does not evaluate (a device filter,
//! terms of use, a country location, an unknown location or strength id)
//! never stops a policy from applying, and a grant control Gatepass cannot
//! verify is never met; the result lists them in `unsupported`. A missing
//! input (no IP address, say) also counts as matching in a live sign-in; a
//! What-If request instead reports `notEnoughInformation`, as Graph does.

use super::model::{
    ConditionalAccessApplications, ConditionalAccessLocations, ConditionalAccessPlatforms,
    ConditionalAccessUsers, LocationKind, NamedLocation, Policy, PolicyState, list,
};
pub use super::strengths::StrengthRef;
use super::strengths::{MULTIFACTOR, MethodSet, Strength, StrengthSet};
use crate::authn::AuthMethod;
use serde::Serialize;
use std::borrow::Cow;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

/// `everyTime` sign-in frequency tolerates five minutes, as Entra does, so
/// a user who just signed in is not asked again at once.
pub const EVERY_TIME_SKEW: time::Duration = time::Duration::minutes(5);

/// Live sign-in or What-If: they differ only on missing inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A missing input counts as matching (fail closed).
    Live,
    /// A missing input makes the policy not apply, `notEnoughInformation`.
    WhatIf,
}

/// The two user actions conditional access can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserAction {
    /// `urn:user:registersecurityinfo` — Gatepass's security-info page.
    RegisterSecurityInformation,
    /// `urn:user:registerdevice`.
    RegisterOrJoinDevices,
}

impl UserAction {
    /// The policy's spelling (`includeUserActions`).
    pub fn urn(self) -> &'static str {
        match self {
            UserAction::RegisterSecurityInformation => {
                super::model::USER_ACTION_REGISTER_SECURITY_INFO
            }
            UserAction::RegisterOrJoinDevices => super::model::USER_ACTION_REGISTER_DEVICE,
        }
    }

    /// What-If's spelling (`userActionContext.userAction`).
    pub fn name(self) -> &'static str {
        match self {
            UserAction::RegisterSecurityInformation => "registerSecurityInformation",
            UserAction::RegisterOrJoinDevices => "registerOrJoinDevices",
        }
    }

    /// Accepts either spelling.
    pub fn parse(s: &str) -> Option<UserAction> {
        [
            UserAction::RegisterSecurityInformation,
            UserAction::RegisterOrJoinDevices,
        ]
        .into_iter()
        .find(|a| a.urn().eq_ignore_ascii_case(s) || a.name().eq_ignore_ascii_case(s))
    }
}

/// What the sign-in is for: an application (client id), a user action,
/// and/or authentication contexts (`c1`…). A policy applies when it targets
/// any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub applications: Vec<String>,
    pub user_action: Option<UserAction>,
    pub authentication_contexts: Vec<String>,
}

impl Target {
    pub fn application(client_id: impl Into<String>) -> Target {
        Target {
            applications: vec![client_id.into()],
            ..Target::default()
        }
    }

    pub fn user_action(action: UserAction) -> Target {
        Target {
            user_action: Some(action),
            ..Target::default()
        }
    }

    pub fn authentication_context(class_reference: impl Into<String>) -> Target {
        Target {
            authentication_contexts: vec![class_reference.into()],
            ..Target::default()
        }
    }
}

/// `conditionalAccessDevicePlatform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevicePlatform {
    Android,
    Ios,
    Windows,
    WindowsPhone,
    MacOs,
    Linux,
}

impl DevicePlatform {
    pub const ALL: [DevicePlatform; 6] = [
        DevicePlatform::Android,
        DevicePlatform::Ios,
        DevicePlatform::Windows,
        DevicePlatform::WindowsPhone,
        DevicePlatform::MacOs,
        DevicePlatform::Linux,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DevicePlatform::Android => "android",
            DevicePlatform::Ios => "iOS",
            DevicePlatform::Windows => "windows",
            DevicePlatform::WindowsPhone => "windowsPhone",
            DevicePlatform::MacOs => "macOS",
            DevicePlatform::Linux => "linux",
        }
    }

    pub fn parse(s: &str) -> Option<DevicePlatform> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// The name Entra's sign-in log gives it (`deviceDetail.operatingSystem`).
    pub fn operating_system(self) -> &'static str {
        match self {
            DevicePlatform::Android => "Android",
            DevicePlatform::Ios => "iOS",
            DevicePlatform::Windows => "Windows",
            DevicePlatform::WindowsPhone => "Windows Phone",
            DevicePlatform::MacOs => "MacOs",
            DevicePlatform::Linux => "Linux",
        }
    }
}

/// The device platform a `User-Agent` names, `None` when it names none
/// Entra knows (curl, ChromeOS, …). Like Entra, this trusts the header: the
/// platform condition is a convenience, not a security boundary, and an
/// unknown platform is still caught by a policy that includes `all`.
pub fn platform_from_user_agent(user_agent: &str) -> Option<DevicePlatform> {
    let ua = user_agent.to_ascii_lowercase();
    let has = |needle: &str| ua.contains(needle);
    // Order matters: Windows Phone UAs also say "Android", Android UAs say
    // "Linux", and iOS UAs say "like Mac OS X".
    if has("windows phone") {
        Some(DevicePlatform::WindowsPhone)
    } else if has("android") {
        Some(DevicePlatform::Android)
    } else if has("iphone") || has("ipad") || has("ipod") || has("like mac os x") {
        Some(DevicePlatform::Ios)
    } else if has("windows") {
        Some(DevicePlatform::Windows)
    } else if has("macintosh") || has("mac os x") {
        Some(DevicePlatform::MacOs)
    } else if has("linux") && !has("cros") {
        Some(DevicePlatform::Linux)
    } else {
        None
    }
}

/// `conditionalAccessClientApp` (`all` is "not given").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAppType {
    Browser,
    MobileAppsAndDesktopClients,
    ExchangeActiveSync,
    EasSupported,
    Other,
}

impl ClientAppType {
    pub const ALL: [ClientAppType; 5] = [
        ClientAppType::Browser,
        ClientAppType::MobileAppsAndDesktopClients,
        ClientAppType::ExchangeActiveSync,
        ClientAppType::EasSupported,
        ClientAppType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAppType::Browser => "browser",
            ClientAppType::MobileAppsAndDesktopClients => "mobileAppsAndDesktopClients",
            ClientAppType::ExchangeActiveSync => "exchangeActiveSync",
            ClientAppType::EasSupported => "easSupported",
            ClientAppType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<ClientAppType> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// `riskLevel`. Gatepass detects no risk: live sign-ins are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskLevel {
    None,
    Low,
    Medium,
    High,
    Hidden,
}

impl RiskLevel {
    pub const ALL: [RiskLevel; 5] = [
        RiskLevel::None,
        RiskLevel::Low,
        RiskLevel::Medium,
        RiskLevel::High,
        RiskLevel::Hidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Hidden => "hidden",
        }
    }

    pub fn parse(s: &str) -> Option<RiskLevel> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// Everything the evaluator knows about one sign-in. `None` means "not
/// known" (see [`Mode`]); `device_platform: None` is Entra's "unknown
/// platform", matched only by `all`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInContext {
    pub mode: Mode,
    /// The user's object id.
    pub user_id: String,
    /// Other names the user goes by in policies (e.g. the UPN, for offline
    /// What-If on hand-written files). Matched case-insensitively.
    pub user_aliases: Vec<String>,
    /// Every group the user is in, transitively.
    pub group_ids: Vec<String>,
    /// Role template ids of the user's directory roles.
    pub role_template_ids: Vec<String>,
    pub is_guest: bool,
    pub target: Target,
    pub ip_address: Option<IpAddr>,
    pub device_platform: Option<DevicePlatform>,
    pub client_app_type: Option<ClientAppType>,
    pub sign_in_risk: Option<RiskLevel>,
    pub user_risk: Option<RiskLevel>,
    /// What-If input only: Gatepass has no device management.
    pub device_compliant: bool,
    pub device_domain_joined: bool,
    /// The methods the session has used so far; `None` = not given.
    pub methods: Option<MethodSet>,
    /// The AAGUID (model) of the passkey the session used; `None` when it
    /// used none or the model is unknown. A combination that a
    /// `fido2CombinationConfiguration` narrows is met only by a listed one.
    pub authenticator: Option<Uuid>,
    /// When the session signed in; `None` = a sign-in happening now.
    pub auth_time: Option<OffsetDateTime>,
}

impl SignInContext {
    /// A live sign-in through Gatepass's pages: a browser, no detected
    /// risk, nothing proven yet. Set the other fields as they become known.
    pub fn live(user_id: impl Into<String>, target: Target) -> SignInContext {
        SignInContext {
            mode: Mode::Live,
            user_id: user_id.into(),
            user_aliases: Vec::new(),
            group_ids: Vec::new(),
            role_template_ids: Vec::new(),
            is_guest: false,
            target,
            ip_address: None,
            device_platform: None,
            client_app_type: Some(ClientAppType::Browser),
            sign_in_risk: Some(RiskLevel::None),
            user_risk: Some(RiskLevel::None),
            device_compliant: false,
            device_domain_joined: false,
            methods: Some(MethodSet::EMPTY),
            authenticator: None,
            auth_time: None,
        }
    }

    /// Sets the session's methods from Gatepass's own.
    #[must_use]
    pub fn with_methods(mut self, methods: &[AuthMethod]) -> SignInContext {
        self.methods = Some(MethodSet::from_auth_methods(methods));
        self
    }

    /// Sets the AAGUID of the passkey the session used (`None`: no passkey,
    /// or its model is not known — then no model-restricted combination is
    /// met).
    #[must_use]
    pub fn with_authenticator(mut self, aaguid: Option<Uuid>) -> SignInContext {
        self.authenticator = aaguid;
        self
    }
}

/// Graph's `whatIfAnalysisReasons`: why a policy does not apply (`notSet`
/// when it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AnalysisReason {
    NotSet,
    NotEnoughInformation,
    InvalidCondition,
    Users,
    WorkloadIdentities,
    Application,
    UserActions,
    AuthenticationContext,
    DevicePlatform,
    Devices,
    ClientApps,
    Location,
    SignInRisk,
    EmptyPolicy,
    InvalidPolicy,
    PolicyNotEnabled,
    UserRisk,
    Time,
    InsiderRisk,
    AuthenticationFlow,
}

impl AnalysisReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisReason::NotSet => "notSet",
            AnalysisReason::NotEnoughInformation => "notEnoughInformation",
            AnalysisReason::InvalidCondition => "invalidCondition",
            AnalysisReason::Users => "users",
            AnalysisReason::WorkloadIdentities => "workloadIdentities",
            AnalysisReason::Application => "application",
            AnalysisReason::UserActions => "userActions",
            AnalysisReason::AuthenticationContext => "authenticationContext",
            AnalysisReason::DevicePlatform => "devicePlatform",
            AnalysisReason::Devices => "devices",
            AnalysisReason::ClientApps => "clientApps",
            AnalysisReason::Location => "location",
            AnalysisReason::SignInRisk => "signInRisk",
            AnalysisReason::EmptyPolicy => "emptyPolicy",
            AnalysisReason::InvalidPolicy => "invalidPolicy",
            AnalysisReason::PolicyNotEnabled => "policyNotEnabled",
            AnalysisReason::UserRisk => "userRisk",
            AnalysisReason::Time => "time",
            AnalysisReason::InsiderRisk => "insiderRisk",
            AnalysisReason::AuthenticationFlow => "authenticationFlow",
        }
    }
}

/// One grant control of a policy, and whether it is met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequiredControl {
    /// Graph's name: a `builtInControls` value, `authenticationStrength`,
    /// `termsOfUse` or `customAuthenticationFactors`.
    pub control: Cow<'static, str>,
    /// The strength `mfa` or `authenticationStrength` stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_strength: Option<StrengthRef>,
    /// False when Gatepass cannot verify it (it is then never met).
    pub supported: bool,
    /// `None` when the policy does not apply or the methods are not given.
    pub satisfied: Option<bool>,
}

/// `signInFrequency` as a requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrequencyRequirement {
    /// `timeBased` or `everyTime`.
    pub frequency_interval: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub frequency_type: Option<String>,
    /// Whether the session is too old and must sign in again.
    pub reauthentication_required: Option<bool>,
}

/// What a policy requires: its grant controls and session controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// `AND` or `OR`.
    pub operator: &'static str,
    pub controls: Vec<RequiredControl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_frequency: Option<FrequencyRequirement>,
}

/// A requirement the session has not met but a sign-in could.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnmetRequirement {
    pub policy_id: String,
    pub display_name: String,
    /// Any one of these strengths meets it; empty when only a fresh
    /// sign-in is needed.
    pub any_of: Vec<StrengthRef>,
    /// `signInFrequency`: the session must sign in again (a fresh sign-in,
    /// not an added method).
    pub reauthenticate: bool,
}

/// A policy that blocks, and the controls that cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedBy {
    pub policy_id: String,
    pub display_name: String,
    pub controls: Vec<String>,
}

/// A policy's effect on this sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    NotApplied,
    Satisfied,
    StepUp(Vec<UnmetRequirement>),
    Block(BlockedBy),
}

/// One policy's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult {
    pub policy_id: String,
    pub display_name: String,
    pub state: PolicyState,
    pub applies: bool,
    /// `NotSet` when it applies; else the first condition not met.
    pub analysis_reasons: AnalysisReason,
    pub requirement: Requirement,
    /// Whether the methods meet the requirement; `None` when the policy does
    /// not apply or the answer depends on methods not given.
    pub satisfied: Option<bool>,
    pub report_only: bool,
    /// Properties used but not evaluated (Graph paths, with a note).
    pub unsupported: Vec<String>,
    pub verdict: Verdict,
}

impl PolicyResult {
    /// Graph's `appliedConditionalAccessPolicy.result` for the sign-in log.
    pub fn sign_in_log_result(&self) -> &'static str {
        match (self.state, &self.verdict) {
            (PolicyState::Disabled, _) => "notEnabled",
            (PolicyState::Enabled, Verdict::NotApplied) => "notApplied",
            (PolicyState::Enabled, Verdict::Satisfied) => "success",
            (PolicyState::Enabled, Verdict::StepUp(_) | Verdict::Block(_)) => "failure",
            (PolicyState::EnabledForReportingButNotEnforced, Verdict::NotApplied) => {
                "reportOnlyNotApplied"
            }
            (PolicyState::EnabledForReportingButNotEnforced, Verdict::Satisfied) => {
                "reportOnlySuccess"
            }
            (PolicyState::EnabledForReportingButNotEnforced, Verdict::StepUp(_)) => {
                "reportOnlyInterrupted"
            }
            (PolicyState::EnabledForReportingButNotEnforced, Verdict::Block(_)) => {
                "reportOnlyFailure"
            }
        }
    }
}

/// The sum of all enforced policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// Sign in with a stronger method (or again): every entry must be met.
    RequireStrength(Vec<UnmetRequirement>),
    /// No sign-in can satisfy these policies.
    Block(Vec<BlockedBy>),
}

impl Outcome {
    /// What-If's `decision`: `allow`, `stepUp` or `block`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::RequireStrength(_) => "stepUp",
            Outcome::Block(_) => "block",
        }
    }
}

/// The evaluator's answer: the outcome, and one result per policy in the
/// order the policies were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub policies: Vec<PolicyResult>,
}

/// Graph's `appliedConditionalAccessPolicy`, for `GET /auditLogs/signIns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedConditionalAccessPolicy {
    pub id: String,
    pub display_name: String,
    pub enforced_grant_controls: Vec<String>,
    pub enforced_session_controls: Vec<String>,
    pub result: &'static str,
}

impl Decision {
    /// Every policy's entry for the sign-in log, report-only included.
    pub fn applied_conditional_access_policies(&self) -> Vec<AppliedConditionalAccessPolicy> {
        self.policies
            .iter()
            .map(|p| {
                let (grant, session) = if p.applies {
                    let grant = p
                        .requirement
                        .controls
                        .iter()
                        .map(|c| log_control_name(&c.control))
                        .collect();
                    let session = p
                        .requirement
                        .sign_in_frequency
                        .iter()
                        .map(|_| "SignInFrequency".to_owned())
                        .collect();
                    (grant, session)
                } else {
                    (Vec::new(), Vec::new())
                };
                AppliedConditionalAccessPolicy {
                    id: p.policy_id.clone(),
                    display_name: p.display_name.clone(),
                    enforced_grant_controls: grant,
                    enforced_session_controls: session,
                    result: p.sign_in_log_result(),
                }
            })
            .collect()
    }
}

/// The sign-in log's spelling of a grant control (as Entra writes it).
fn log_control_name(control: &str) -> String {
    match control {
        "block" => "Block",
        "mfa" => "Mfa",
        "authenticationStrength" => "RequireAuthenticationStrength",
        "compliantDevice" => "RequireCompliantDevice",
        "domainJoinedDevice" => "RequireDomainJoinedDevice",
        "approvedApplication" => "RequireApprovedApp",
        "compliantApplication" => "RequireCompliantApp",
        "passwordChange" => "RequirePasswordChange",
        "termsOfUse" => "TermsOfUse",
        other => other,
    }
    .to_owned()
}

/// The Gatepass methods that, used now, would meet every unmet requirement:
/// added to `current`, or alone when a requirement asks for a fresh
/// sign-in. The step-up page offers these (passkey, TAP); empty means no
/// Gatepass method can. The session's passkey model is taken as unknown;
/// see [`step_up_methods_with`].
pub fn step_up_methods(unmet: &[UnmetRequirement], current: &[AuthMethod]) -> Vec<AuthMethod> {
    step_up_methods_with(unmet, current, None)
}

/// [`step_up_methods`] for a session whose passkey so far was of model
/// `authenticator` (`None`: none, or unknown). A passkey is offered when a
/// passkey of *some* model would meet every requirement — one a
/// combination allows — so a user who signed in with the wrong key is
/// still asked for a key (the right one); one sign-in uses one passkey,
/// so a single model must meet them all.
pub fn step_up_methods_with(
    unmet: &[UnmetRequirement],
    current: &[AuthMethod],
    authenticator: Option<Uuid>,
) -> Vec<AuthMethod> {
    let fresh = unmet.iter().any(|u| u.reauthenticate);
    let (base, authenticator) = if fresh {
        (MethodSet::EMPTY, None)
    } else {
        (MethodSet::from_auth_methods(current), authenticator)
    };
    let meets_all = |methods: MethodSet, model: Option<Uuid>| {
        unmet.iter().all(|u| {
            u.any_of.is_empty() || u.any_of.iter().any(|s| s.is_satisfied_with(methods, model))
        })
    };
    [
        AuthMethod::Passkey,
        AuthMethod::TemporaryAccessPassOneTime,
        AuthMethod::TemporaryAccessPassMultiUse,
        AuthMethod::Password,
    ]
    .into_iter()
    .filter(|&m| {
        let methods = base.with(m.into());
        if m != AuthMethod::Passkey {
            return meets_all(methods, authenticator);
        }
        // A new passkey: any model (unrestricted combinations), else one
        // of the models the requirements name.
        meets_all(methods, None)
            || unmet
                .iter()
                .flat_map(|u| u.any_of.iter())
                .flat_map(StrengthRef::allowed_aaguids)
                .any(|model| meets_all(methods, Some(model)))
    })
    .collect()
}

/// Whether a passkey of model `aaguid`, used now on top of `current`
/// (alone when a requirement asks for a fresh sign-in), would meet every
/// unmet requirement: which of a user's passkeys a step-up can use.
pub fn passkey_meets(unmet: &[UnmetRequirement], current: &[AuthMethod], aaguid: Uuid) -> bool {
    let fresh = unmet.iter().any(|u| u.reauthenticate);
    let base = if fresh {
        MethodSet::EMPTY
    } else {
        MethodSet::from_auth_methods(current)
    };
    let methods = base.with(AuthMethod::Passkey.into());
    unmet.iter().all(|u| {
        u.any_of.is_empty()
            || u.any_of
                .iter()
                .any(|s| s.is_satisfied_with(methods, Some(aaguid)))
    })
}

/// Evaluates every policy against one sign-in at `now`.
pub fn evaluate(
    policies: &[Policy],
    strengths: &StrengthSet,
    locations: &[NamedLocation],
    context: &SignInContext,
    now: OffsetDateTime,
) -> Decision {
    let network = Network::resolve(locations, context.ip_address);
    let results: Vec<PolicyResult> = policies
        .iter()
        .map(|p| evaluate_policy(p, strengths, &network, context, now))
        .collect();
    let mut blocked = Vec::new();
    let mut unmet = Vec::new();
    for r in results.iter().filter(|r| r.state == PolicyState::Enabled) {
        match &r.verdict {
            Verdict::Block(b) => blocked.push(b.clone()),
            Verdict::StepUp(u) => unmet.extend(u.iter().cloned()),
            Verdict::NotApplied | Verdict::Satisfied => {}
        }
    }
    let outcome = if !blocked.is_empty() {
        Outcome::Block(blocked)
    } else if !unmet.is_empty() {
        Outcome::RequireStrength(unmet)
    } else {
        Outcome::Allow
    };
    Decision {
        outcome,
        policies: results,
    }
}

/// The sign-in's IP resolved against the named locations once, not per
/// policy.
struct Network<'a> {
    locations: &'a [NamedLocation],
    ip: Option<IpAddr>,
    /// Ids of the IP locations containing the address.
    inside: Vec<&'a str>,
    in_trusted: bool,
}

/// A location reference, resolved.
enum Place {
    Inside,
    Outside,
    /// Unknown id or a country location: cannot tell.
    Undetermined(String),
}

impl<'a> Network<'a> {
    fn resolve(locations: &'a [NamedLocation], ip: Option<IpAddr>) -> Network<'a> {
        let inside: Vec<&str> = match ip {
            Some(ip) => locations
                .iter()
                .filter(|l| l.contains(ip))
                .map(|l| l.id.as_str())
                .collect(),
            None => Vec::new(),
        };
        let in_trusted = locations
            .iter()
            .any(|l| l.trusted() && inside.contains(&l.id.as_str()));
        Network {
            locations,
            ip,
            inside,
            in_trusted,
        }
    }

    fn place(&self, id: &str) -> Place {
        if id.eq_ignore_ascii_case("All") {
            return Place::Inside;
        }
        if id.eq_ignore_ascii_case("AllTrusted") {
            return if self.in_trusted {
                Place::Inside
            } else {
                Place::Outside
            };
        }
        match self
            .locations
            .iter()
            .find(|l| l.id.eq_ignore_ascii_case(id))
        {
            None => Place::Undetermined(format!(
                "conditions.locations: no named location has id '{id}'"
            )),
            Some(l) => match l.kind() {
                LocationKind::Ip if self.inside.iter().any(|i| i.eq_ignore_ascii_case(id)) => {
                    Place::Inside
                }
                LocationKind::Ip => Place::Outside,
                LocationKind::Country => Place::Undetermined(format!(
                    "conditions.locations: '{}' is a countryNamedLocation (not evaluated)",
                    l.display_name
                )),
                LocationKind::Unknown => Place::Undetermined(format!(
                    "conditions.locations: '{}' is not an IP named location",
                    l.display_name
                )),
            },
        }
    }
}

fn contains_ci(haystack: &[String], needle: &str) -> bool {
    haystack.iter().any(|h| h.eq_ignore_ascii_case(needle))
}

fn any_in(haystack: &[String], needles: &[String]) -> bool {
    needles.iter().any(|n| contains_ci(haystack, n))
}

fn missing(context: &SignInContext) -> Result<(), AnalysisReason> {
    match context.mode {
        Mode::Live => Ok(()),
        Mode::WhatIf => Err(AnalysisReason::NotEnoughInformation),
    }
}

/// How a policy's users condition sees a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserScope {
    /// Not in the policy's users at all.
    NotIncluded,
    /// Included, then excluded (an exclusion is what keeps them out).
    Excluded,
    Included,
}

/// The users condition of a policy for the sign-in's user: the one rule
/// the evaluator and the offline analyses (`gatepass ca gaps`) share.
pub fn user_scope(users: Option<&ConditionalAccessUsers>, ctx: &SignInContext) -> UserScope {
    let Some(u) = users else {
        return UserScope::NotIncluded;
    };
    let is_user = |ids: &[String]| contains_ci(ids, &ctx.user_id) || any_in(ids, &ctx.user_aliases);
    let guest_keyword = |ids: &[String]| ctx.is_guest && contains_ci(ids, "GuestsOrExternalUsers");
    let guest_object = |v: &Option<serde_json::Value>| {
        ctx.is_guest && v.as_ref().is_some_and(super::model::is_set)
    };

    let include_users = list(&u.include_users);
    let included = contains_ci(include_users, "All")
        || is_user(include_users)
        || guest_keyword(include_users)
        || any_in(list(&u.include_groups), &ctx.group_ids)
        || any_in(list(&u.include_roles), &ctx.role_template_ids)
        || guest_object(&u.include_guests_or_external_users)
        // An unsupported user property could include anyone: fail closed.
        || super::model::extra_in_use(&u.extra);
    let exclude_users = list(&u.exclude_users);
    let excluded = is_user(exclude_users)
        || guest_keyword(exclude_users)
        || any_in(list(&u.exclude_groups), &ctx.group_ids)
        || any_in(list(&u.exclude_roles), &ctx.role_template_ids)
        || guest_object(&u.exclude_guests_or_external_users);
    match (included, excluded) {
        (false, _) => UserScope::NotIncluded,
        (true, true) => UserScope::Excluded,
        (true, false) => UserScope::Included,
    }
}

fn users_match(
    users: Option<&ConditionalAccessUsers>,
    ctx: &SignInContext,
) -> Result<(), AnalysisReason> {
    match user_scope(users, ctx) {
        UserScope::Included => Ok(()),
        UserScope::NotIncluded | UserScope::Excluded => Err(AnalysisReason::Users),
    }
}

fn applications_match(
    apps: Option<&ConditionalAccessApplications>,
    target: &Target,
) -> Result<(), AnalysisReason> {
    let Some(a) = apps else {
        return Err(AnalysisReason::Application);
    };
    let include = list(&a.include_applications);
    let exclude = list(&a.exclude_applications);
    let app_filter_in_use = super::model::extra_in_use(&a.extra);
    let app_matches = target.applications.iter().any(|id| {
        // `Office365` and `MicrosoftAdminPortals` name Microsoft's apps,
        // never a Gatepass client, so only `All` and exact ids match.
        let included = contains_ci(include, "All") || contains_ci(include, id) || app_filter_in_use;
        let excluded = contains_ci(exclude, id) || contains_ci(exclude, "All");
        included && !excluded
    });
    let action_matches = target
        .user_action
        .is_some_and(|action| contains_ci(list(&a.include_user_actions), action.urn()));
    let context_matches = any_in(
        list(&a.include_authentication_context_class_references),
        &target.authentication_contexts,
    );
    if app_matches || action_matches || context_matches {
        Ok(())
    } else if !include.is_empty() {
        Err(AnalysisReason::Application)
    } else if !list(&a.include_user_actions).is_empty() {
        Err(AnalysisReason::UserActions)
    } else if !list(&a.include_authentication_context_class_references).is_empty() {
        Err(AnalysisReason::AuthenticationContext)
    } else {
        Err(AnalysisReason::Application)
    }
}

fn platforms_match(
    platforms: Option<&ConditionalAccessPlatforms>,
    platform: Option<DevicePlatform>,
) -> bool {
    let Some(p) = platforms else { return true };
    if super::model::extra_in_use(&p.extra) {
        return true;
    }
    let include = list(&p.include_platforms);
    let exclude = list(&p.exclude_platforms);
    // Entra: an unknown platform is included by `all` and never excluded.
    let included = include.is_empty()
        || contains_ci(include, "all")
        || platform.is_some_and(|p| contains_ci(include, p.as_str()));
    let excluded = platform.is_some_and(|p| contains_ci(exclude, p.as_str()));
    included && !excluded
}

fn locations_match(
    locations: Option<&ConditionalAccessLocations>,
    network: &Network<'_>,
    ctx: &SignInContext,
    unsupported: &mut Vec<String>,
) -> Result<(), AnalysisReason> {
    let Some(l) = locations else { return Ok(()) };
    let include = list(&l.include_locations);
    let exclude = list(&l.exclude_locations);
    if include.iter().all(|i| i.eq_ignore_ascii_case("All")) && exclude.is_empty() {
        return Ok(());
    }
    if network.ip.is_none() {
        return missing(ctx);
    }
    let mut included = include.is_empty();
    for id in include {
        match network.place(id) {
            Place::Inside => included = true,
            Place::Outside => {}
            Place::Undetermined(why) => {
                unsupported.push(why);
                included = true;
            }
        }
    }
    let mut excluded = false;
    for id in exclude {
        match network.place(id) {
            Place::Inside => excluded = true,
            Place::Outside => {}
            // An exclusion that cannot be checked does not exclude.
            Place::Undetermined(why) => unsupported.push(why),
        }
    }
    if included && !excluded {
        Ok(())
    } else {
        Err(AnalysisReason::Location)
    }
}

fn client_app_matches(types: &[String], ctx: &SignInContext) -> Result<(), AnalysisReason> {
    if types.is_empty() || contains_ci(types, "all") {
        return Ok(());
    }
    let Some(t) = ctx.client_app_type else {
        return missing(ctx);
    };
    let eas = matches!(
        t,
        ClientAppType::ExchangeActiveSync | ClientAppType::EasSupported
    ) && (contains_ci(types, "exchangeActiveSync") || contains_ci(types, "easSupported"));
    if contains_ci(types, t.as_str()) || eas {
        Ok(())
    } else {
        Err(AnalysisReason::ClientApps)
    }
}

fn risk_matches(
    levels: &[String],
    level: Option<RiskLevel>,
    ctx: &SignInContext,
    reason: AnalysisReason,
) -> Result<(), AnalysisReason> {
    if levels.is_empty() {
        return Ok(());
    }
    let Some(level) = level else {
        return missing(ctx);
    };
    if contains_ci(levels, level.as_str()) {
        Ok(())
    } else {
        Err(reason)
    }
}

fn conditions_match(
    policy: &Policy,
    network: &Network<'_>,
    ctx: &SignInContext,
    unsupported: &mut Vec<String>,
) -> Result<(), AnalysisReason> {
    let c = &policy.conditions;
    users_match(c.users.as_ref(), ctx)?;
    applications_match(c.applications.as_ref(), &ctx.target)?;
    if !platforms_match(c.platforms.as_ref(), ctx.device_platform) {
        return Err(AnalysisReason::DevicePlatform);
    }
    locations_match(c.locations.as_ref(), network, ctx, unsupported)?;
    client_app_matches(list(&c.client_app_types), ctx)?;
    risk_matches(
        list(&c.sign_in_risk_levels),
        ctx.sign_in_risk,
        ctx,
        AnalysisReason::SignInRisk,
    )?;
    risk_matches(
        list(&c.user_risk_levels),
        ctx.user_risk,
        ctx,
        AnalysisReason::UserRisk,
    )?;
    Ok(())
}

/// A control's state against this sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ControlState {
    Met,
    /// A sign-in with the right method would meet it.
    Unmet,
    /// Methods not given: cannot tell.
    Unknown,
    /// Nothing the user can do meets it.
    Impossible,
}

fn resolve_strength(
    strengths: &StrengthSet,
    id: &str,
    inline: Option<&super::model::AuthenticationStrengthPolicy>,
    unsupported: &mut Vec<String>,
) -> Option<StrengthRef> {
    let exported;
    let strength = match strengths.get(id) {
        Some(s) => Some(s),
        // An exported policy carries the whole strength; use it when the
        // tenant's list does not have it.
        None => match inline.filter(|p| !list(&p.allowed_combinations).is_empty()) {
            Some(p) => {
                exported = Strength::new(p.clone());
                Some(&exported)
            }
            None => None,
        },
    };
    match strength {
        None => unsupported.push(format!(
            "grantControls.authenticationStrength: no authentication strength has id '{id}'"
        )),
        Some(s) => unsupported.extend(s.unsupported.iter().map(|u| {
            format!(
                "grantControls.authenticationStrength.{u} ('{}')",
                s.display_name()
            )
        })),
    }
    strength.map(|s| s.reference().clone())
}

/// Known control names without an allocation per evaluation.
fn static_name(name: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = [
        "block",
        "mfa",
        "compliantDevice",
        "domainJoinedDevice",
        "approvedApplication",
        "compliantApplication",
        "passwordChange",
    ];
    match KNOWN.iter().find(|k| **k == name) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(name.to_owned()),
    }
}

/// The policy's grant controls, not yet checked (`satisfied: None`).
fn required_controls(
    policy: &Policy,
    strengths: &StrengthSet,
    unsupported: &mut Vec<String>,
) -> Vec<RequiredControl> {
    let Some(g) = &policy.grant_controls else {
        return Vec::new();
    };
    let control =
        |name: Cow<'static, str>, strength: Option<StrengthRef>, supported: bool| RequiredControl {
            control: name,
            authentication_strength: strength,
            supported,
            satisfied: None,
        };
    let mut out = Vec::new();
    for name in list(&g.built_in_controls) {
        let (strength, supported) = match name.as_str() {
            "mfa" => (
                resolve_strength(strengths, MULTIFACTOR, None, unsupported),
                true,
            ),
            "block" | "compliantDevice" | "domainJoinedDevice" => (None, true),
            _ => (None, false),
        };
        out.push(control(static_name(name), strength, supported));
    }
    if let Some(s) = &g.authentication_strength {
        let strength = resolve_strength(strengths, &s.id, Some(s), unsupported);
        let supported = strength.is_some();
        out.push(control(
            Cow::Borrowed("authenticationStrength"),
            strength,
            supported,
        ));
    }
    for (field, values) in [
        ("termsOfUse", &g.terms_of_use),
        (
            "customAuthenticationFactors",
            &g.custom_authentication_factors,
        ),
    ] {
        if !list(values).is_empty() {
            out.push(control(Cow::Borrowed(field), None, false));
        }
    }
    out
}

fn control_state(
    control: &RequiredControl,
    ctx: &SignInContext,
    methods: Option<MethodSet>,
) -> ControlState {
    if !control.supported {
        return ControlState::Impossible;
    }
    match control.control.as_ref() {
        "block" => ControlState::Impossible,
        "compliantDevice" if ctx.device_compliant => ControlState::Met,
        "domainJoinedDevice" if ctx.device_domain_joined => ControlState::Met,
        "compliantDevice" | "domainJoinedDevice" => ControlState::Impossible,
        _ => match (&control.authentication_strength, methods) {
            (None, _) => ControlState::Impossible,
            (Some(_), None) => ControlState::Unknown,
            (Some(s), Some(m)) if s.is_satisfied_with(m, ctx.authenticator) => ControlState::Met,
            (Some(_), Some(_)) => ControlState::Unmet,
        },
    }
}

fn frequency(
    policy: &Policy,
    ctx: &SignInContext,
    now: OffsetDateTime,
) -> Option<(FrequencyRequirement, bool)> {
    let f = policy
        .session_controls
        .as_ref()?
        .sign_in_frequency
        .as_ref()
        .filter(|f| f.enabled())?;
    // A time-based control without a valid period is read as everyTime.
    let period = if f.is_every_time() { None } else { f.period() };
    let age = ctx.auth_time.map_or(time::Duration::ZERO, |t| now - t);
    let stale = age > period.unwrap_or(EVERY_TIME_SKEW);
    let requirement = FrequencyRequirement {
        frequency_interval: if period.is_some() {
            "timeBased"
        } else {
            "everyTime"
        },
        value: period.and(f.value),
        frequency_type: period.and(f.frequency_type.clone()),
        reauthentication_required: None,
    };
    Some((requirement, stale))
}

fn evaluate_policy(
    policy: &Policy,
    strengths: &StrengthSet,
    network: &Network<'_>,
    ctx: &SignInContext,
    now: OffsetDateTime,
) -> PolicyResult {
    let mut unsupported = policy.unsupported_fields();
    let mut controls = required_controls(policy, strengths, &mut unsupported);
    let freq = frequency(policy, ctx, now);
    let applies = if policy.state == PolicyState::Disabled {
        Err(AnalysisReason::PolicyNotEnabled)
    } else {
        conditions_match(policy, network, ctx, &mut unsupported)
    };
    let operator = match &policy.grant_controls {
        Some(g) if g.is_or() => "OR",
        _ => "AND",
    };
    let mut result = PolicyResult {
        policy_id: policy.id.clone(),
        display_name: policy.display_name.clone(),
        state: policy.state,
        applies: applies.is_ok(),
        analysis_reasons: applies.err().unwrap_or(AnalysisReason::NotSet),
        requirement: Requirement {
            operator,
            controls: Vec::new(),
            sign_in_frequency: None,
        },
        satisfied: None,
        report_only: policy.state == PolicyState::EnabledForReportingButNotEnforced,
        unsupported,
        verdict: Verdict::NotApplied,
    };
    let reauthenticate = result.applies && freq.as_ref().is_some_and(|(_, stale)| *stale);
    result.requirement.sign_in_frequency = freq.map(|(mut f, _)| {
        f.reauthentication_required = result.applies.then_some(reauthenticate);
        f
    });
    if !result.applies {
        result.requirement.controls = controls;
        return result;
    }

    let mut unknown = false;
    for c in &mut controls {
        let state = control_state(c, ctx, ctx.methods);
        unknown |= state == ControlState::Unknown;
        c.satisfied = match state {
            ControlState::Met => Some(true),
            ControlState::Unmet | ControlState::Impossible => Some(false),
            ControlState::Unknown => None,
        };
    }
    // A stale session counts for nothing: the fresh sign-in must meet the
    // grant on its own.
    let methods = if reauthenticate {
        Some(MethodSet::EMPTY)
    } else {
        ctx.methods
    };
    let state = |c: &RequiredControl| control_state(c, ctx, methods);
    let grant_met = controls.iter().all(|c| state(c) == ControlState::Met)
        || (operator == "OR" && controls.iter().any(|c| state(c) == ControlState::Met));
    let impossible = || -> Vec<String> {
        controls
            .iter()
            .filter(|c| state(c) == ControlState::Impossible)
            .map(|c| c.control.clone().into_owned())
            .collect()
    };
    let pending = || {
        controls
            .iter()
            .filter(|c| matches!(state(c), ControlState::Unmet | ControlState::Unknown))
    };
    let blocked_by = |names: Vec<String>| BlockedBy {
        policy_id: policy.id.clone(),
        display_name: policy.display_name.clone(),
        controls: names,
    };
    let unmet = |any_of: Vec<StrengthRef>| UnmetRequirement {
        policy_id: policy.id.clone(),
        display_name: policy.display_name.clone(),
        any_of,
        reauthenticate,
    };
    let strengths_of = |cs: &mut dyn Iterator<Item = &RequiredControl>| -> Vec<StrengthRef> {
        let mut refs: Vec<StrengthRef> = Vec::new();
        for s in cs.filter_map(|c| c.authentication_strength.as_ref()) {
            if !refs.iter().any(|r| r.id == s.id) {
                refs.push(s.clone());
            }
        }
        refs
    };

    result.verdict = if controls.iter().any(|c| c.control == "block") {
        Verdict::Block(blocked_by(vec!["block".to_owned()]))
    } else if controls.is_empty() || grant_met {
        // Met — or, for a stale session, met by any fresh sign-in.
        if reauthenticate {
            Verdict::StepUp(vec![unmet(Vec::new())])
        } else {
            Verdict::Satisfied
        }
    } else if operator == "OR" {
        // Any one control would do: a strength is the way out, if any.
        match strengths_of(&mut pending()) {
            any_of if any_of.is_empty() => Verdict::Block(blocked_by(impossible())),
            any_of => Verdict::StepUp(vec![unmet(any_of)]),
        }
    } else if controls
        .iter()
        .any(|c| state(c) == ControlState::Impossible)
    {
        Verdict::Block(blocked_by(impossible()))
    } else {
        // AND: each unmet strength is its own requirement.
        Verdict::StepUp(
            pending()
                .map(|c| unmet(strengths_of(&mut std::iter::once(c))))
                .collect(),
        )
    };
    result.satisfied = match &result.verdict {
        Verdict::Satisfied => Some(true),
        Verdict::Block(_) => Some(false),
        Verdict::StepUp(_) if unknown && !reauthenticate => None,
        Verdict::StepUp(_) | Verdict::NotApplied => Some(false),
    };
    result.requirement.controls = controls;
    result
}

#[cfg(test)]
mod tests;
