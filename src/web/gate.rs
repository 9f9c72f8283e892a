//! Conditional access on every sign-in (DESIGN §5), after the first factor
//! and on single sign-on.
//!
//! The session exists (authentication succeeded, as in Entra ID); the gate
//! decides whether *this target* — a relying party, or the security-info
//! page (the `registersecurityinfo` user action) — may be reached with the
//! session's methods:
//!
//! ```text
//!  evaluate(stored policies + per-user MFA + requested acr)
//!      ├─ allow ─────────────▶ proceed (code / page)
//!      ├─ step up ──▶ methods the user has that would satisfy it?
//!      │                  ├─ yes ─▶ strong-only flow offering exactly those
//!      │                  └─ no ──▶ refusal page naming the policy
//!      └─ block ─────────────▶ refusal page naming the policy
//! ```
//!
//! Every evaluation's per-policy results (report-only included) go to the
//! sign-in log as `appliedConditionalAccessPolicies`.

use super::error::PageError;
use crate::app::AppState;
use crate::authn::AuthMethod;
use crate::directory::{PerUserMfaState, User};
use crate::policy::conditional_access::{
    ConditionalAccessUsers, Decision, Outcome, Policy, SignInContext, Target, UnmetRequirement,
    UserAction, acr_strength, evaluate, passkey_meets, platform_from_user_agent,
    step_up_methods_with,
};
use serde_json::{Value, json};
use std::net::IpAddr;
use time::OffsetDateTime;

/// What the gate decided.
pub enum Gate {
    Allow,
    /// Offer these methods (non-empty) in a step-up; `message` says why.
    StepUp {
        offer: Vec<AuthMethod>,
        fresh: bool,
        message: String,
    },
    /// Refused: blocked (`blocked`), or nothing the user has can satisfy
    /// what is required.
    Refuse {
        message: String,
        blocked: bool,
    },
}

/// The gate's verdict plus what the sign-in log records.
pub struct GateResult {
    pub gate: Gate,
    pub applied: Vec<Value>,
    /// Graph `conditionalAccessStatus`: success, failure, notApplied.
    pub status: &'static str,
}

/// What is being reached.
pub enum GateTarget<'a> {
    App {
        client_id: &'a str,
        acr_values: &'a [String],
        essential_acr: Option<&'a [String]>,
    },
    SecurityInfo,
}

fn synthetic(id: &str, name: &str, user: &User, grant: Value) -> Option<Policy> {
    serde_json::from_value(json!({
        "id": id,
        "displayName": name,
        "state": "enabled",
        "conditions": {"users": {"includeUsers": [user.id.to_string()]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": grant,
    }))
    .ok()
}

/// The strength an authorization request asks for, if any: an essential
/// `acr` (any of its values; the weakest is required) or the first
/// recognised voluntary `acr_values` entry.
fn requested_strength(acr_values: &[String], essential: Option<&[String]>) -> Option<&'static str> {
    use crate::authn::Acr;
    let pick = |values: &[String]| {
        let mut acrs: Vec<Acr> = values.iter().filter_map(|v| Acr::parse(v)).collect();
        acrs.sort();
        acrs.first().copied()
    };
    let acr = match essential {
        Some(values) => pick(values),
        None => acr_values.iter().find_map(|v| Acr::parse(v)),
    }?;
    acr_strength(acr.as_str())
}

/// Policy names for a message: `'A', 'B'`.
pub fn policy_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why conditional access could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
}

impl From<GateError> for PageError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Store(s) => s.into(),
            GateError::Directory(d) => d.into(),
        }
    }
}

/// What a session (or the grant made from it) proved: its methods, when,
/// and the model of the passkey among them (strengths may name models).
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    pub methods: &'a [AuthMethod],
    pub auth_time: i64,
    pub passkey: Option<uuid::Uuid>,
}

impl<'a> Proof<'a> {
    pub fn of(session: &'a crate::authn::session::Session) -> Proof<'a> {
        Proof {
            methods: &session.methods,
            auth_time: session.auth_time,
            passkey: session.passkey.map(|p| p.aaguid),
        }
    }
}

/// The conditional-access decision for `user` reaching `target` with a
/// session that proved `proof`: the stored policies, plus
/// per-user MFA and any strength the request asks for. The one evaluation
/// behind every entry point — the sign-in pages, single sign-on, the
/// security-info actions and token refresh.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    state: &AppState,
    user: &User,
    proof: Proof<'_>,
    target: &GateTarget<'_>,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
    now: OffsetDateTime,
) -> Result<Decision, GateError> {
    let t = now.unix_timestamp();
    let set = state.ca.policy_set(t).await?;
    // The stored policies, plus any this request adds for itself.
    let mut policies = std::borrow::Cow::Borrowed(set.policies.as_slice());
    let ca_target = match target {
        GateTarget::App {
            client_id,
            acr_values,
            essential_acr,
        } => {
            if state.directory.mfa_state(user.id, now).await? == PerUserMfaState::Enforced {
                policies.to_mut().extend(synthetic(
                    "gatepass-per-user-mfa",
                    "Per-user MFA (enforced)",
                    user,
                    json!({"operator": "OR", "builtInControls": ["mfa"]}),
                ));
            }
            if let Some(strength) = requested_strength(acr_values, *essential_acr) {
                policies.to_mut().extend(synthetic(
                    "gatepass-requested-acr",
                    "Authentication strength requested by the application (acr)",
                    user,
                    json!({"operator": "OR", "authenticationStrength": {"id": strength}}),
                ));
            }
            Target::application(*client_id)
        }
        GateTarget::SecurityInfo => Target::user_action(UserAction::RegisterSecurityInformation),
    };
    // Users are matched by object id only (policies are stored with ids),
    // so a rename cannot inherit someone else's exclusion.
    let mut context = SignInContext::live(user.id.to_string(), ca_target)
        .with_methods(proof.methods)
        .with_authenticator(proof.passkey);
    // The user's groups and roles are read only if a policy asks about
    // them: most tenants' policies don't, and every refresh comes here.
    let users = || policies.iter().filter_map(|p| p.conditions.users.as_ref());
    if users().any(ConditionalAccessUsers::names_groups) {
        context.group_ids = state
            .directory
            .groups_of(user.id, now)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
    }
    if users().any(ConditionalAccessUsers::names_roles) {
        context.role_template_ids = state
            .directory
            .roles_of(user.id, now)
            .await?
            .iter()
            .map(|r| r.template_id().to_owned())
            .collect();
    }
    context.ip_address = ip;
    context.device_platform = user_agent.and_then(platform_from_user_agent);
    context.auth_time = OffsetDateTime::from_unix_timestamp(proof.auth_time).ok();
    Ok(evaluate(
        &policies,
        &set.strengths,
        &set.locations,
        &context,
        now,
    ))
}

/// [`decide`], then what a page does about it: proceed, a step-up flow
/// offering the methods the user has that would satisfy it, or a refusal.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    state: &AppState,
    user: &User,
    proof: Proof<'_>,
    target: &GateTarget<'_>,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
    now: OffsetDateTime,
) -> Result<GateResult, PageError> {
    let decision = decide(state, user, proof, target, ip, user_agent, now).await?;
    let applied: Vec<Value> = decision
        .applied_conditional_access_policies()
        .into_iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .collect();
    let any_applied = decision
        .policies
        .iter()
        .any(|p| p.applies && !p.report_only);
    let (gate, status) = match decision.outcome {
        Outcome::Allow => (
            Gate::Allow,
            if any_applied { "success" } else { "notApplied" },
        ),
        Outcome::Block(blocked) => {
            let names: Vec<&str> = blocked.iter().map(|b| b.display_name.as_str()).collect();
            (
                Gate::Refuse {
                    message: format!(
                        "Access is blocked by the conditional access policy: {}.",
                        names.join(", ")
                    ),
                    blocked: true,
                },
                "failure",
            )
        }
        Outcome::RequireStrength(unmet) => {
            (step_up(state, user, proof, &unmet, now).await?, "failure")
        }
    };
    let decision = match &gate {
        Gate::Allow => "allow",
        Gate::StepUp { .. } => "step_up",
        Gate::Refuse { .. } => "block",
    };
    metrics::counter!("gatepass_ca_decisions_total", "decision" => decision).increment(1);
    Ok(GateResult {
        gate,
        applied,
        status,
    })
}

async fn step_up(
    state: &AppState,
    user: &User,
    proof: Proof<'_>,
    unmet: &[UnmetRequirement],
    now: OffsetDateTime,
) -> Result<Gate, PageError> {
    let t = now.unix_timestamp();
    let fresh = unmet.iter().any(|u| u.reauthenticate);
    let wanted: Vec<String> = unmet
        .iter()
        .map(|u| {
            let strengths: Vec<&str> = u.any_of.iter().map(|s| s.display_name()).collect();
            if strengths.is_empty() {
                format!("a fresh sign-in ({})", u.display_name)
            } else {
                format!("{} ({})", strengths.join(" or "), u.display_name)
            }
        })
        .collect();
    let candidates = step_up_methods_with(unmet, proof.methods, proof.passkey);
    // A passkey is offered only if the user has one that could both sign in
    // under the passkey policy and meet the requirements (a strength may
    // name authenticator models): otherwise the step-up would only fail.
    let (passkey_policy, targeted) = state
        .passkey_policy
        .fido2_for(&state.directory, user, now)
        .await?;
    let has_passkey = state
        .passkeys
        .list(user.id, t)
        .await
        .map_err(|e| super::error::internal_page(e.code(), &e.to_string(), false))?
        .iter()
        .filter_map(|p| uuid::Uuid::parse_str(&p.aaguid).ok())
        .any(|model| {
            passkey_policy.admits_sign_in(targeted, model).is_ok()
                && passkey_meets(unmet, proof.methods, model)
        });
    let pass = super::signin::verifier(state)
        .usable_pass(user, now)
        .await
        .map_err(|e| super::error::internal_page("verify", &e.to_string(), e.is_unavailable()))?;
    let has_password = state
        .directory
        .password_hash(user.id, now)
        .await
        .map_err(PageError::from)?
        .is_some();
    let offer: Vec<AuthMethod> = candidates
        .into_iter()
        .filter(|m| match m {
            AuthMethod::Passkey => has_passkey,
            AuthMethod::TemporaryAccessPassOneTime | AuthMethod::TemporaryAccessPassMultiUse => {
                pass.as_ref().is_some_and(|p| p.method() == *m)
            }
            AuthMethod::Password => has_password && fresh,
        })
        .collect();
    let requirement = wanted.join("; and ");
    if offer.is_empty() {
        return Ok(Gate::Refuse {
            message: format!(
                "This requires {requirement}, and your account has no sign-in method that satisfies it. Add a passkey on your security info page, or ask an administrator for help."
            ),
            blocked: false,
        });
    }
    Ok(Gate::StepUp {
        offer,
        fresh,
        message: format!(
            "This requires {requirement}. Sign in again with a method that satisfies it."
        ),
    })
}
