//! The authentication methods policy: `GET/PATCH
//! /policies/authenticationMethodsPolicy` (the whole policy, and its
//! `registrationEnforcement.authenticationMethodsRegistrationCampaign`) and
//! `GET/PATCH …/authenticationMethodConfigurations/Fido2` (the passkey
//! configuration). The Temporary Access Pass configuration lives in
//! [`super::methods`]. The rules these documents express are
//! [`crate::authn::passkey_policy`]'s; here they are read, checked and
//! stored, each change audited with before and after.

use super::auth::{Caller, METHODS_POLICY_READ, METHODS_POLICY_WRITE};
use super::error::{GraphError, parse_json};
use super::methods::{check_target_groups, tap_configuration_json, target_ids};
use super::{ApiVersion, record_change};
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::authn::passkey_policy::{
    CampaignState, CampaignTarget, Enforcement, ExcludeTarget, Fido2Policy, RegistrationCampaign,
};
use crate::authn::tap::{MethodState, MethodTarget, PolicyViolation};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

const FIDO2_TYPE: &str = "#microsoft.graph.fido2AuthenticationMethodConfiguration";

/// The passkey configuration as Graph's `fido2AuthenticationMethodConfiguration`.
pub fn fido2_configuration_json(p: &Fido2Policy) -> Value {
    json!({
        "@odata.type": FIDO2_TYPE,
        "id": "Fido2",
        "state": p.state,
        "isSelfServiceRegistrationAllowed": p.is_self_service_registration_allowed,
        "isAttestationEnforced": p.is_attestation_enforced,
        "keyRestrictions": p.key_restrictions,
        "includeTargets": p.include_targets,
        "excludeTargets": p.exclude_targets,
    })
}

fn invalid(v: PolicyViolation) -> GraphError {
    GraphError::invalid_property(
        v.field,
        format!("Invalid value for property '{}': {}.", v.field, v.message),
    )
}

/// A method policy as an audit entry's target.
pub(crate) fn policy_target(id: &str, name: &str) -> TargetResource {
    TargetResource {
        id: id.into(),
        kind: "Policy".into(),
        display_name: Some(name.into()),
        user_principal_name: None,
    }
}

/// Audits a change of the methods policy with the documents before and
/// after (each of its parts: the TAP and passkey configurations, the
/// campaign).
pub(crate) async fn audit_change<T: Serialize>(
    state: &AppState,
    caller: &Caller,
    target: TargetResource,
    before: &T,
    after: &T,
    now: OffsetDateTime,
) {
    let details = vec![
        KeyValue::new("before", serde_json::to_string(before).unwrap_or_default()),
        KeyValue::new("after", serde_json::to_string(after).unwrap_or_default()),
    ];
    record_change(
        state,
        caller,
        "Authentication Methods Policy Update",
        "Policy",
        target,
        details,
        now,
    )
    .await;
}

// --- Fido2 ---------------------------------------------------------------

#[utoipa::path(get,
    path = "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2",
    operation_id = "fido2Policy.get",
    tag = "policies",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Fido2Configuration)))]
pub async fn get_fido2(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let policy = fido2_policy(&state, &caller, now).await?;
    let mut out = fido2_configuration_json(&policy);
    out["@odata.context"] = json!(format!(
        "{}/{}/$metadata#authenticationMethodConfigurations/$entity",
        state.settings.issuer, version.0
    ));
    Ok(Json(out))
}

/// The passkey configuration now (anyone who may read policies).
pub async fn fido2_policy(
    state: &AppState,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<Fido2Policy, GraphError> {
    caller.require(&METHODS_POLICY_READ)?;
    Ok(state.passkey_policy.fido2(now.unix_timestamp()).await?)
}

/// Graph `fido2KeyRestrictions` in a PATCH: given properties replace.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRestrictionsPatch {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub is_enforced: Option<bool>,
    #[schema(value_type = Option<crate::openapi::schemas::Fido2Enforcement>)]
    pub enforcement_type: Option<Enforcement>,
    pub aa_guids: Option<Vec<String>>,
}

/// A PATCH of the passkey configuration: only the given properties change.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fido2Patch {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<String>,
    #[schema(value_type = Option<crate::openapi::schemas::MethodState>)]
    pub state: Option<MethodState>,
    pub is_self_service_registration_allowed: Option<bool>,
    pub is_attestation_enforced: Option<bool>,
    pub key_restrictions: Option<KeyRestrictionsPatch>,
    #[schema(value_type = Option<Vec<crate::openapi::schemas::MethodTarget>>)]
    pub include_targets: Option<Vec<MethodTarget>>,
    #[schema(value_type = Option<Vec<crate::openapi::schemas::MethodTarget>>)]
    pub exclude_targets: Option<Vec<MethodTarget>>,
}

#[utoipa::path(patch,
    path = "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2",
    operation_id = "fido2Policy.update",
    tag = "policies",
    request_body(content = Fido2Patch, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn update_fido2(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&METHODS_POLICY_WRITE)?;
    let patch: Fido2Patch = parse_json(&headers, body)?;
    update_fido2_policy(&state, &caller, patch, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies `patch` to the passkey configuration: every value is checked
/// (the first broken rule is a 400 naming the property) before it is
/// stored, audited with before and after. It takes effect at the next
/// registration or passkey sign-in of every instance.
pub async fn update_fido2_policy(
    state: &AppState,
    caller: &Caller,
    patch: Fido2Patch,
    now: OffsetDateTime,
) -> Result<Fido2Policy, GraphError> {
    caller.require(&METHODS_POLICY_WRITE)?;
    if patch.odata_type.as_deref().is_some_and(|t| t != FIDO2_TYPE) {
        return Err(GraphError::bad_request(format!(
            "Invalid value for property '@odata.type': expected {FIDO2_TYPE}."
        )));
    }
    if patch.id.as_deref().is_some_and(|id| id != "Fido2") {
        return Err(GraphError::bad_request(
            "Invalid value for property 'id': it must be Fido2.",
        ));
    }
    let before = state.passkey_policy.fido2(now.unix_timestamp()).await?;
    let mut p = before.clone();
    if let Some(v) = patch.state {
        p.state = v;
    }
    if let Some(v) = patch.is_self_service_registration_allowed {
        p.is_self_service_registration_allowed = v;
    }
    if let Some(v) = patch.is_attestation_enforced {
        p.is_attestation_enforced = v;
    }
    if let Some(r) = patch.key_restrictions {
        if r.odata_type
            .as_deref()
            .is_some_and(|t| t != "#microsoft.graph.fido2KeyRestrictions")
        {
            return Err(GraphError::invalid_property(
                "keyRestrictions",
                "Invalid value for property 'keyRestrictions': @odata.type must be #microsoft.graph.fido2KeyRestrictions.",
            ));
        }
        if let Some(v) = r.is_enforced {
            p.key_restrictions.is_enforced = v;
        }
        if let Some(v) = r.enforcement_type {
            p.key_restrictions.enforcement_type = v;
        }
        if let Some(v) = r.aa_guids {
            p.key_restrictions.aa_guids = v;
        }
    }
    if let Some(v) = patch.include_targets {
        p.include_targets = v;
    }
    if let Some(v) = patch.exclude_targets {
        p.exclude_targets = v;
    }
    p.validate(state.passkeys.verifies_attestation())
        .map_err(invalid)?;
    check_target_groups(
        state,
        &[
            ("includeTargets", target_ids(&p.include_targets)),
            ("excludeTargets", target_ids(&p.exclude_targets)),
        ],
        now,
    )
    .await?;
    state.passkey_policy.set_fido2(&p).await?;
    audit_change(
        state,
        caller,
        policy_target("Fido2", "Passkey (FIDO2)"),
        &before,
        &p,
        now,
    )
    .await;
    Ok(p)
}

// --- the whole policy ----------------------------------------------------

#[utoipa::path(get,
    path = "/v1.0/policies/authenticationMethodsPolicy",
    operation_id = "authenticationMethodsPolicy.get",
    tag = "policies",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::AuthenticationMethodsPolicy)))]
pub async fn get_methods_policy(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&METHODS_POLICY_READ)?;
    let t = now.unix_timestamp();
    let (tap, fido2, campaign) = tokio::try_join!(
        state.taps.policy(t),
        state.passkey_policy.fido2(t),
        state.passkey_policy.campaign(t),
    )?;
    let base = format!("{}/{}/$metadata", state.settings.issuer, version.0);
    Ok(Json(json!({
        "@odata.context": format!("{base}#authenticationMethodsPolicy"),
        "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "policyVersion": "1.5",
        "policyMigrationState": "migrationComplete",
        "registrationEnforcement": {
            "authenticationMethodsRegistrationCampaign": campaign,
        },
        "authenticationMethodConfigurations@odata.context": format!("{base}#policies/authenticationMethodsPolicy/authenticationMethodConfigurations"),
        "authenticationMethodConfigurations": [
            tap_configuration_json(&tap),
            fido2_configuration_json(&fido2),
        ],
    })))
}

/// Graph `authenticationMethodsRegistrationCampaign` in a PATCH.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignPatch {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    #[schema(value_type = Option<crate::openapi::schemas::CampaignState>)]
    pub state: Option<CampaignState>,
    pub snooze_duration_in_days: Option<u32>,
    pub enforce_registration_after_allowed_snoozes: Option<bool>,
    #[schema(value_type = Option<Vec<crate::openapi::schemas::CampaignIncludeTarget>>)]
    pub include_targets: Option<Vec<CampaignTarget>>,
    #[schema(value_type = Option<Vec<crate::openapi::schemas::ExcludeTarget>>)]
    pub exclude_targets: Option<Vec<ExcludeTarget>>,
}

/// Graph `registrationEnforcement`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationEnforcementPatch {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub authentication_methods_registration_campaign: Option<CampaignPatch>,
}

/// A PATCH of the whole policy: Gatepass takes `registrationEnforcement`
/// (method configurations have their own paths).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MethodsPolicyPatch {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<String>,
    pub registration_enforcement: Option<RegistrationEnforcementPatch>,
}

#[utoipa::path(patch,
    path = "/v1.0/policies/authenticationMethodsPolicy",
    operation_id = "authenticationMethodsPolicy.update",
    tag = "policies",
    request_body(content = MethodsPolicyPatch, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn update_methods_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&METHODS_POLICY_WRITE)?;
    let patch: MethodsPolicyPatch = parse_json(&headers, body)?;
    if patch
        .id
        .as_deref()
        .is_some_and(|id| id != "authenticationMethodsPolicy")
    {
        return Err(GraphError::bad_request(
            "Invalid value for property 'id': it must be authenticationMethodsPolicy.",
        ));
    }
    if let Some(campaign) = patch
        .registration_enforcement
        .and_then(|r| r.authentication_methods_registration_campaign)
    {
        update_campaign(&state, &caller, campaign, now).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The ids of the campaign's include (or exclude) targets of `kind`
/// (`group` or `user`), `all_users` left out.
fn campaign_ids<'a>(c: &'a RegistrationCampaign, include: bool, kind: &str) -> Vec<&'a str> {
    let targets: Vec<(&str, &str)> = if include {
        c.include_targets
            .iter()
            .map(|t| (t.target_type.as_str(), t.id.as_str()))
            .collect()
    } else {
        c.exclude_targets
            .iter()
            .map(|t| (t.target_type.as_str(), t.id.as_str()))
            .collect()
    };
    targets
        .into_iter()
        .filter(|(k, id)| *k == kind && *id != crate::authn::tap::ALL_USERS)
        .map(|(_, id)| id)
        .collect()
}

/// Applies `patch` to the registration campaign: checked, stored, audited.
pub async fn update_campaign(
    state: &AppState,
    caller: &Caller,
    patch: CampaignPatch,
    now: OffsetDateTime,
) -> Result<RegistrationCampaign, GraphError> {
    caller.require(&METHODS_POLICY_WRITE)?;
    let before = state.passkey_policy.campaign(now.unix_timestamp()).await?;
    let mut c = before.clone();
    if let Some(v) = patch.state {
        c.state = v;
    }
    if let Some(v) = patch.snooze_duration_in_days {
        c.snooze_duration_in_days = v;
    }
    if let Some(v) = patch.enforce_registration_after_allowed_snoozes {
        c.enforce_registration_after_allowed_snoozes = v;
    }
    if let Some(v) = patch.include_targets {
        c.include_targets = v;
    }
    if let Some(v) = patch.exclude_targets {
        c.exclude_targets = v;
    }
    c.validate().map_err(invalid)?;
    check_target_groups(
        state,
        &[
            ("includeTargets", campaign_ids(&c, true, "group")),
            ("excludeTargets", campaign_ids(&c, false, "group")),
        ],
        now,
    )
    .await?;
    for (field, include) in [("includeTargets", true), ("excludeTargets", false)] {
        for id in campaign_ids(&c, include, "user") {
            let exists = match crate::ids::UserId::parse(id) {
                Some(u) => state.directory.user(u, now).await?.is_some(),
                None => false,
            };
            if !exists {
                return Err(GraphError::invalid_property(
                    field,
                    format!("Invalid value for property '{field}': user {id} does not exist."),
                ));
            }
        }
    }
    state.passkey_policy.set_campaign(&c).await?;
    audit_change(
        state,
        caller,
        policy_target(
            "authenticationMethodsPolicy",
            "Authentication Methods Policy",
        ),
        &before,
        &c,
        now,
    )
    .await;
    Ok(c)
}
