//! `/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations`:
//! Graph's `authenticationCombinationConfiguration` objects of a custom
//! strength — in practice `fido2CombinationConfiguration`, which narrows a
//! combination with `fido2` to the passkey models (AAGUIDs) it lists.
//!
//! They are stored inside the strength (its `combinationConfigurations`
//! property), so `GET …/policies/{id}` shows them and every change goes
//! through [`change_object`]: the permission check, the built-in refusal,
//! the strength's validation, a write that cannot lose a concurrent edit,
//! and the audit are the strength's own. Only
//! `fido2CombinationConfiguration` can be created here, as in Graph v1.0.
//!
//! Reference: <https://learn.microsoft.com/graph/api/resources/authenticationcombinationconfiguration>.

use super::auth::Caller;
use super::conditional_access::{change_object, get_one, invalid, new_id, parse_value};
use super::error::{GraphError, parse_json};
use super::{ApiVersion, GraphPath};
use crate::app::AppState;
use crate::policy::ca_store::CaKind;
use crate::policy::conditional_access::AuthenticationStrengthPolicy;
use crate::policy::conditional_access::strengths::{
    FIDO2_COMBINATION_CONFIGURATION, is_fido2_configuration,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

const PROPERTY: &str = "combinationConfigurations";

/// The configurations of strength `id` (a built-in has none).
pub async fn list(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<Value>, GraphError> {
    let Json(strength) = get_one(state, caller, CaKind::Strength, id).await?;
    Ok(strength
        .get(PROPERTY)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// One configuration of strength `id`.
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: &str,
    configuration_id: &str,
) -> Result<Value, GraphError> {
    list(state, caller, id)
        .await?
        .into_iter()
        .find(|c| has_id(c, configuration_id))
        .ok_or_else(|| GraphError::not_found(configuration_id))
}

/// Adds a `fido2CombinationConfiguration` to custom strength `id`, with a
/// system-generated id; returns it as stored.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mut config: Map<String, Value>,
) -> Result<Value, GraphError> {
    let given_type = config.get("@odata.type").cloned();
    // Graph's spelling, whatever case the client wrote.
    config.insert("@odata.type".into(), json!(FIDO2_COMBINATION_CONFIGURATION));
    config.insert("id".into(), json!(new_id()?));
    let config = Value::Object(config);
    change_object(state, caller, CaKind::Strength, id, |strength| {
        // Checked here, after the permission: a caller who may not write
        // learns nothing about the body.
        creatable(given_type.as_ref())?;
        check(strength, &config)?;
        configurations(strength)?.push(config.clone());
        Ok(())
    })
    .await?;
    Ok(config)
}

/// Only `fido2CombinationConfiguration` can be created, as in Graph v1.0.
fn creatable(odata_type: Option<&Value>) -> Result<(), GraphError> {
    let message = match odata_type {
        Some(Value::String(t)) if is_fido2_configuration(t) => return Ok(()),
        Some(Value::String(t)) => {
            format!("only {FIDO2_COMBINATION_CONFIGURATION} can be created, not '{t}'")
        }
        _ => format!("it is required and must be {FIDO2_COMBINATION_CONFIGURATION}"),
    };
    Err(GraphError::invalid_property(
        "@odata.type",
        format!("Invalid value specified for property '@odata.type': {message}."),
    ))
}

/// Merges `patch` into a configuration of strength `id` (its id and type
/// stay).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    configuration_id: &str,
    patch: Map<String, Value>,
) -> Result<(), GraphError> {
    change_object(state, caller, CaKind::Strength, id, |strength| {
        let mut config = configurations(strength)?
            .iter()
            .find(|c| has_id(c, configuration_id))
            .cloned()
            .ok_or_else(|| GraphError::not_found(configuration_id))?;
        let current_type = config
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(fields) = config.as_object_mut() else {
            return Err(GraphError::not_found(configuration_id));
        };
        for (k, v) in &patch {
            match k.as_str() {
                "id" => {}
                "@odata.type" if v.as_str().is_some_and(|t| same_type(t, &current_type)) => {}
                "@odata.type" => {
                    return Err(GraphError::invalid_property(
                        "@odata.type",
                        "Invalid value specified for property '@odata.type': a configuration's type cannot change.",
                    ));
                }
                _ => {
                    fields.insert(k.clone(), v.clone());
                }
            }
        }
        check(strength, &config)?;
        for c in configurations(strength)?.iter_mut() {
            if has_id(c, configuration_id) {
                *c = config.clone();
            }
        }
        Ok(())
    })
    .await
}

/// Removes a configuration from strength `id`.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    id: &str,
    configuration_id: &str,
) -> Result<(), GraphError> {
    change_object(state, caller, CaKind::Strength, id, |strength| {
        let configs = configurations(strength)?;
        let before = configs.len();
        configs.retain(|c| !has_id(c, configuration_id));
        if configs.len() == before {
            return Err(GraphError::not_found(configuration_id));
        }
        Ok(())
    })
    .await
}

fn has_id(config: &Value, id: &str) -> bool {
    config
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case(id))
}

fn same_type(a: &str, b: &str) -> bool {
    a.trim_start_matches('#')
        .eq_ignore_ascii_case(b.trim_start_matches('#'))
}

/// The strength's configurations, created empty if absent.
fn configurations(strength: &mut Map<String, Value>) -> Result<&mut Vec<Value>, GraphError> {
    let slot = strength
        .entry(PROPERTY)
        .or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or_else(|| {
        GraphError::invalid_property(
            PROPERTY,
            "Invalid value specified for property 'combinationConfigurations': the strength's value is not an array.",
        )
    })
}

/// One configuration against the strength it goes into, so an error names
/// the configuration's own property (`allowedAAGUIDs[1]`), not its place
/// in the strength.
fn check(strength: &Map<String, Value>, config: &Value) -> Result<(), GraphError> {
    let policy: AuthenticationStrengthPolicy = parse_value(Value::Object(strength.clone()))?;
    policy.validate_configuration(config).map_err(invalid)
}

fn context(state: &AppState, version: ApiVersion, id: &str) -> String {
    format!(
        "{}/{}/$metadata#identity/conditionalAccess/authenticationStrength/policies('{id}')/{PROPERTY}",
        state.settings.issuer, version.0
    )
}

/// `GET …/authenticationStrength/policies/{id}/combinationConfigurations`.
#[utoipa::path(get,
    path = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations",
    operation_id = "conditionalAccess.authenticationStrengths.combinationConfigurations.list",
    tag = "conditional access",
    params(("id" = String, Path, description = "The authentication strength's id")),
    responses((status = 200, description = "OK",
        body = crate::openapi::schemas::Collection<crate::openapi::schemas::CombinationConfiguration>)))]
pub async fn list_configurations(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    let value = list(&state, &caller, &id).await?;
    Ok(Json(json!({
        "@odata.context": context(&state, version, &id),
        "value": value,
    })))
}

/// `POST …/authenticationStrength/policies/{id}/combinationConfigurations`.
#[utoipa::path(post,
    path = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations",
    operation_id = "conditionalAccess.authenticationStrengths.combinationConfigurations.create",
    tag = "conditional access",
    params(("id" = String, Path, description = "The custom authentication strength's id")),
    request_body(content = crate::openapi::schemas::CombinationConfigurationInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = crate::openapi::schemas::CombinationConfiguration)))]
pub async fn create_configuration(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    body: Body,
) -> Result<Response, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    let config: Map<String, Value> = parse_json(&headers, body)?;
    let created = create(&state, &caller, &id, config).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET …/combinationConfigurations/{configurationId}`.
#[utoipa::path(get,
    path = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations/{configurationId}",
    operation_id = "conditionalAccess.authenticationStrengths.combinationConfigurations.get",
    tag = "conditional access",
    params(("id" = String, Path, description = "The authentication strength's id"),
           ("configurationId" = String, Path, description = "The configuration's id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::CombinationConfiguration)))]
pub async fn get_configuration(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, configuration_id)): GraphPath<(String, String)>,
) -> Result<Json<Value>, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    get(&state, &caller, &id, &configuration_id).await.map(Json)
}

/// `PATCH …/combinationConfigurations/{configurationId}`: 204, as Graph.
#[utoipa::path(patch,
    path = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations/{configurationId}",
    operation_id = "conditionalAccess.authenticationStrengths.combinationConfigurations.update",
    tag = "conditional access",
    params(("id" = String, Path, description = "The custom authentication strength's id"),
           ("configurationId" = String, Path, description = "The configuration's id")),
    request_body(content = crate::openapi::schemas::CombinationConfigurationInput, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn update_configuration(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, configuration_id)): GraphPath<(String, String)>,
    body: Body,
) -> Result<StatusCode, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    let patch: Map<String, Value> = parse_json(&headers, body)?;
    update(&state, &caller, &id, &configuration_id, patch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/combinationConfigurations/{configurationId}`.
#[utoipa::path(delete,
    path = "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations/{configurationId}",
    operation_id = "conditionalAccess.authenticationStrengths.combinationConfigurations.delete",
    tag = "conditional access",
    params(("id" = String, Path, description = "The custom authentication strength's id"),
           ("configurationId" = String, Path, description = "The configuration's id")),
    responses((status = 204, description = "Done")))]
pub async fn delete_configuration(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, configuration_id)): GraphPath<(String, String)>,
) -> Result<StatusCode, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    delete(&state, &caller, &id, &configuration_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
