//! `/identity/conditionalAccess/...`: policies, named locations and
//! authentication strengths in Graph's JSON, and the What-If evaluator
//! (`POST /identity/conditionalAccess/evaluate`), which also takes the
//! authentication methods as input.
//!
//! Writes need `Policy.ReadWrite.ConditionalAccess` and, for delegated
//! callers, the Global Administrator, Conditional Access Administrator or
//! Security Administrator role. Objects are stored as written (unknown
//! fields survive); invalid JSON or an invalid reference answers 400 naming
//! the property.

use super::auth::Caller;
use super::error::{GraphError, parse_json};
use super::{ApiVersion, GraphPath, record_change};
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::policy::ca_store::{CaKind, ResolveError, resolve_user_names};
use crate::policy::conditional_access::{
    AuthenticationStrengthPolicy, DirectoryFacts, InvalidField, NamedLocation, Policy,
    WhatIfRequest, what_if,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

use super::auth::{CA_READ as READ, CA_WRITE as WRITE};

pub(super) fn invalid(e: InvalidField) -> GraphError {
    GraphError::invalid_property(
        &e.field,
        format!(
            "Invalid value specified for property '{}': {}.",
            e.field, e.message
        ),
    )
}

/// What the audit log calls an object of `kind`.
pub fn noun(kind: CaKind) -> &'static str {
    match kind {
        CaKind::NamedLocation => "named location",
        CaKind::Strength => "authentication strength",
        CaKind::Policy => "conditional access policy",
    }
}

fn kind_of(segment: &str) -> (CaKind, &'static str, &'static str) {
    match segment {
        "namedLocations" => (CaKind::NamedLocation, "namedLocations", "named location"),
        "authenticationStrength" => (
            CaKind::Strength,
            "authenticationStrength/policies",
            "authentication strength",
        ),
        _ => (CaKind::Policy, "policies", "conditional access policy"),
    }
}

/// Parses and validates one object of `kind` against the stored set.
async fn validate(
    state: &AppState,
    kind: CaKind,
    value: &Value,
    now: i64,
) -> Result<(), GraphError> {
    let v = value.clone();
    match kind {
        CaKind::Policy => {
            let policy: Policy = parse_value(v)?;
            let set = state.ca.policy_set(now).await?;
            policy
                .validate(&set.strengths, &set.locations)
                .map_err(invalid)
        }
        CaKind::NamedLocation => parse_value::<NamedLocation>(v)?.validate().map_err(invalid),
        CaKind::Strength => parse_value::<AuthenticationStrengthPolicy>(v)?
            .validate()
            .map_err(invalid),
    }
}

/// Users named by UPN become object ids before a policy is stored.
async fn resolve_users(
    state: &AppState,
    kind: CaKind,
    value: &mut Value,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    if kind != CaKind::Policy {
        return Ok(());
    }
    resolve_user_names(value, &state.directory, now)
        .await
        .map_err(|e| match e {
            ResolveError::Unknown(u) => GraphError::bad_request(format!(
                "Invalid value specified for property '{}': {u}.",
                u.field
            )),
            ResolveError::Directory(d) => d.into(),
        })
}

pub(super) fn parse_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, GraphError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        GraphError::bad_request(format!(
            "Invalid value specified for property '{path}': {}.",
            e.into_inner()
        ))
    })
}

fn now_rfc3339(state: &AppState) -> String {
    state
        .clock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn list_kind(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
    set: &str,
    version: ApiVersion,
) -> Result<Json<Value>, GraphError> {
    let items = list_objects(state, caller, kind).await?;
    Ok(Json(json!({
        "@odata.context": format!("{}/{}/$metadata#identity/conditionalAccess/{set}", state.settings.issuer, version.0),
        "value": items,
    })))
}

/// The five handlers of one kind of object, with their OpenAPI operations.
macro_rules! handlers {
    (
        $segment:literal, $set:literal, $item:literal, $schema:ident,
        $list:ident = $list_op:literal,
        $create:ident = $create_op:literal,
        $get:ident = $get_op:literal,
        $update:ident = $update_op:literal,
        $remove:ident = $remove_op:literal $(,)?
    ) => {
        #[utoipa::path(get, path = $set, operation_id = $list_op, tag = "conditional access",
            responses((status = 200, description = "OK",
                body = crate::openapi::schemas::Collection<crate::openapi::schemas::$schema>)))]
        pub async fn $list(
            State(state): State<AppState>,
            Extension(version): Extension<ApiVersion>,
            headers: HeaderMap,
        ) -> Result<Json<Value>, GraphError> {
            let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
            let (kind, set, _) = kind_of($segment);
            list_kind(&state, &caller, kind, set, version).await
        }
        #[utoipa::path(post, path = $set, operation_id = $create_op, tag = "conditional access",
            request_body(content = crate::openapi::schemas::ConditionalAccessObject, content_type = "application/json"),
            responses((status = 201, description = "Created", body = crate::openapi::schemas::$schema)))]
        pub async fn $create(
            State(state): State<AppState>,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Response, GraphError> {
            let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
            caller.require(&WRITE)?;
            let value: Value = parse_json(&headers, body)?;
            let created = create_object(&state, &caller, kind_of($segment).0, value, false).await?;
            Ok((StatusCode::CREATED, Json(created)).into_response())
        }
        #[utoipa::path(get, path = $item, operation_id = $get_op, tag = "conditional access",
            params(("id" = String, Path, description = "The object's id")),
            responses((status = 200, description = "OK", body = crate::openapi::schemas::$schema)))]
        pub async fn $get(
            State(state): State<AppState>,
            headers: HeaderMap,
            GraphPath(id): GraphPath<String>,
        ) -> Result<Json<Value>, GraphError> {
            let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
            get_one(&state, &caller, kind_of($segment).0, &id).await
        }
        #[utoipa::path(patch, path = $item, operation_id = $update_op, tag = "conditional access",
            params(("id" = String, Path, description = "The object's id")),
            request_body(content = crate::openapi::schemas::ConditionalAccessObject, content_type = "application/json"),
            responses((status = 204, description = "Done")))]
        pub async fn $update(
            State(state): State<AppState>,
            headers: HeaderMap,
            GraphPath(id): GraphPath<String>,
            body: Body,
        ) -> Result<StatusCode, GraphError> {
            let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
            caller.require(&WRITE)?;
            let patch: Map<String, Value> = parse_json(&headers, body)?;
            update_object(&state, &caller, kind_of($segment).0, &id, patch).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        #[utoipa::path(delete, path = $item, operation_id = $remove_op, tag = "conditional access",
            params(("id" = String, Path, description = "The object's id")),
            responses((status = 204, description = "Done")))]
        pub async fn $remove(
            State(state): State<AppState>,
            headers: HeaderMap,
            GraphPath(id): GraphPath<String>,
        ) -> Result<StatusCode, GraphError> {
            let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
            delete_object(&state, &caller, kind_of($segment).0, &id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    };
}

handlers!(
    "policies",
    "/v1.0/identity/conditionalAccess/policies",
    "/v1.0/identity/conditionalAccess/policies/{id}",
    ConditionalAccessPolicy,
    list_policies = "conditionalAccess.policies.list",
    create_policy = "conditionalAccess.policies.create",
    get_policy = "conditionalAccess.policies.get",
    update_policy = "conditionalAccess.policies.update",
    delete_policy = "conditionalAccess.policies.delete",
);
handlers!(
    "namedLocations",
    "/v1.0/identity/conditionalAccess/namedLocations",
    "/v1.0/identity/conditionalAccess/namedLocations/{id}",
    NamedLocation,
    list_locations = "conditionalAccess.namedLocations.list",
    create_location = "conditionalAccess.namedLocations.create",
    get_location = "conditionalAccess.namedLocations.get",
    update_location = "conditionalAccess.namedLocations.update",
    delete_location = "conditionalAccess.namedLocations.delete",
);
handlers!(
    "authenticationStrength",
    "/v1.0/identity/conditionalAccess/authenticationStrength/policies",
    "/v1.0/identity/conditionalAccess/authenticationStrength/policies/{id}",
    AuthenticationStrength,
    list_strengths = "conditionalAccess.authenticationStrengths.list",
    create_strength = "conditionalAccess.authenticationStrengths.create",
    get_strength = "conditionalAccess.authenticationStrengths.get",
    update_strength = "conditionalAccess.authenticationStrengths.update",
    delete_strength = "conditionalAccess.authenticationStrengths.delete",
);

/// An id as Graph gives objects: a GUID.
fn is_object_id(id: &str) -> bool {
    id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

fn is_builtin_strength(id: &str) -> bool {
    crate::policy::conditional_access::StrengthSet::builtin()
        .get(id)
        .is_some()
}

/// Creates a policy, named location or strength from its Graph JSON: the
/// id is Gatepass's (or, with `keep_id`, the object's own — an import keeps
/// the ids its policies use to name locations and strengths), users named
/// by UPN are stored by object id, and the object must validate against
/// the stored set. Audited.
pub async fn create_object(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
    mut value: Value,
    keep_id: bool,
) -> Result<Value, GraphError> {
    caller.require(&WRITE)?;
    let noun = noun(kind);
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let Some(obj) = value.as_object_mut() else {
        return Err(GraphError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let own_id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| keep_id && is_object_id(id))
        .map(str::to_owned);
    let id = match own_id {
        Some(id) => id,
        None => new_id()?,
    };
    obj.insert("id".into(), json!(id));
    obj.insert("createdDateTime".into(), json!(now_rfc3339(state)));
    obj.insert("modifiedDateTime".into(), Value::Null);
    if kind == CaKind::Strength {
        obj.insert("policyType".into(), json!("custom"));
        assign_configuration_ids(obj)?;
    }
    resolve_users(state, kind, &mut value, now).await?;
    validate(state, kind, &value, t).await?;
    if !state.ca.insert(kind, &id, &value, t).await? {
        return Err(GraphError::new(
            StatusCode::CONFLICT,
            "Request_Conflict",
            "An object with this id already exists.",
        ));
    }
    audit(state, caller, &format!("Add {noun}"), &id, &value, now).await;
    Ok(value)
}

/// All stored objects of `kind` (strengths: the built-in ones first).
pub async fn list_objects(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
) -> Result<Vec<Value>, GraphError> {
    caller.require(&READ)?;
    let t = state.clock.now().unix_timestamp();
    let mut items = state.ca.list(kind, t).await?;
    if kind == CaKind::Strength {
        let mut all: Vec<Value> = crate::policy::conditional_access::strengths::builtin_policies()
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect();
        all.append(&mut items);
        items = all;
    }
    Ok(items)
}

pub async fn get_one(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
    id: &str,
) -> Result<Json<Value>, GraphError> {
    caller.require(&READ)?;
    let t = state.clock.now().unix_timestamp();
    if kind == CaKind::Strength && is_builtin_strength(id) {
        let builtin = crate::policy::conditional_access::strengths::builtin_policies()
            .into_iter()
            .find(|s| s.id.eq_ignore_ascii_case(id));
        return builtin
            .and_then(|b| serde_json::to_value(b).ok())
            .map(Json)
            .ok_or_else(|| GraphError::not_found(id));
    }
    state
        .ca
        .get(kind, id, t)
        .await?
        .map(Json)
        .ok_or_else(|| GraphError::not_found(id))
}

/// Merges `patch` into a stored object (its id and creation time stay),
/// revalidates, stores, audits.
pub async fn update_object(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
    id: &str,
    patch: Map<String, Value>,
) -> Result<(), GraphError> {
    change_object(state, caller, kind, id, |obj| {
        for (k, v) in &patch {
            if k == "id" || k == "createdDateTime" {
                continue;
            }
            obj.insert(k.clone(), v.clone());
        }
        Ok(())
    })
    .await
}

/// Attempts at a change before giving up on a busy object.
const CHANGE_ATTEMPTS: usize = 8;

/// Changes a stored object: `change` edits its JSON (an error leaves the
/// object as it was), then the object is revalidated, written only if no
/// one wrote it since it was read — else it is read and changed again, so
/// a concurrent edit (a new AAGUID restriction, say) is never lost — and
/// the change is audited. Built-in strengths cannot be changed.
pub async fn change_object<R>(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
    id: &str,
    mut change: impl FnMut(&mut Map<String, Value>) -> Result<R, GraphError>,
) -> Result<R, GraphError> {
    caller.require(&WRITE)?;
    let noun = noun(kind);
    let now = state.clock.now();
    let t = now.unix_timestamp();
    if kind == CaKind::Strength && is_builtin_strength(id) {
        return Err(GraphError::bad_request(
            "Built-in authentication strengths cannot be changed.",
        ));
    }
    for _ in 0..CHANGE_ATTEMPTS {
        let (mut current, version) = state
            .ca
            .get_versioned(kind, id, t)
            .await?
            .ok_or_else(|| GraphError::not_found(id))?;
        let Some(obj) = current.as_object_mut() else {
            return Err(GraphError::internal(
                "ca.corrupt",
                &format!("stored {noun} {id} is not a JSON object"),
                false,
            ));
        };
        let out = change(obj)?;
        obj.insert("modifiedDateTime".into(), json!(now_rfc3339(state)));
        if kind == CaKind::Strength {
            assign_configuration_ids(obj)?;
        }
        resolve_users(state, kind, &mut current, now).await?;
        validate(state, kind, &current, t).await?;
        if state.ca.replace(kind, id, &current, version, t).await? {
            audit(state, caller, &format!("Update {noun}"), id, &current, now).await;
            return Ok(out);
        }
    }
    Err(GraphError::new(
        StatusCode::CONFLICT,
        "Request_Conflict",
        format!("The {noun} is being changed by other requests; retry."),
    ))
}

/// Gives every `combinationConfigurations` entry of a strength that has no
/// id a system-generated one, as Graph does.
pub(super) fn assign_configuration_ids(
    strength: &mut Map<String, Value>,
) -> Result<(), GraphError> {
    let Some(Value::Array(configs)) = strength.get_mut("combinationConfigurations") else {
        return Ok(());
    };
    for config in configs.iter_mut().filter_map(Value::as_object_mut) {
        if !matches!(config.get("id"), Some(Value::String(id)) if !id.is_empty()) {
            config.insert("id".into(), json!(new_id()?));
        }
    }
    Ok(())
}

/// A fresh object id.
pub(super) fn new_id() -> Result<String, GraphError> {
    crate::ids::random_uuid()
        .map(|id| id.to_string())
        .map_err(|_| GraphError::internal("random", "random source failed", false))
}

/// Deletes an object no policy refers to, audited.
pub async fn delete_object(
    state: &AppState,
    caller: &Caller,
    kind: CaKind,
    id: &str,
) -> Result<(), GraphError> {
    caller.require(&WRITE)?;
    let noun = noun(kind);
    let now = state.clock.now();
    let t = now.unix_timestamp();
    if kind == CaKind::Strength && is_builtin_strength(id) {
        return Err(GraphError::bad_request(
            "Built-in authentication strengths cannot be deleted.",
        ));
    }
    // An object a policy still refers to cannot go (it would change what
    // the policy means without anyone editing it).
    if kind != CaKind::Policy {
        for p in state.ca.list(CaKind::Policy, t).await? {
            if p.to_string().contains(&format!("\"{id}\"")) {
                let name = p
                    .get("displayName")
                    .and_then(Value::as_str)
                    .unwrap_or("a policy");
                return Err(GraphError::bad_request(format!(
                    "The {noun} is used by the conditional access policy '{name}'; remove it there first."
                )));
            }
        }
    }
    let existing = state
        .ca
        .get(kind, id, t)
        .await?
        .ok_or_else(|| GraphError::not_found(id))?;
    state.ca.delete(kind, id, t).await?;
    audit(state, caller, &format!("Delete {noun}"), id, &existing, now).await;
    Ok(())
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    activity: &str,
    id: &str,
    value: &Value,
    now: time::OffsetDateTime,
) {
    let target = TargetResource {
        id: id.to_owned(),
        kind: "Policy".into(),
        display_name: value
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        user_principal_name: None,
    };
    let details = vec![KeyValue::new("value", value.to_string())];
    record_change(state, caller, activity, "Policy", target, details, now).await;
}

/// `POST /identity/conditionalAccess/evaluate` (What-If).
#[utoipa::path(post,
    path = "/v1.0/identity/conditionalAccess/evaluate",
    operation_id = "conditionalAccess.evaluate",
    tag = "conditional access",
    request_body(content = crate::openapi::schemas::WhatIfRequest, content_type = "application/json"),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::WhatIfResponse)))]
pub async fn evaluate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&READ)?;
    let request: WhatIfRequest = parse_json(&headers, body)?;
    let response = evaluate_for(&state, &caller, request, now).await?;
    serde_json::to_value(response)
        .map(Json)
        .map_err(|e| GraphError::internal("what_if.encode", &e.to_string(), false))
}

/// What If: the stored policies evaluated for a directory user and the
/// sign-in described, with the user's groups and roles as a live sign-in
/// reads them.
pub async fn evaluate_for(
    state: &AppState,
    caller: &Caller,
    request: WhatIfRequest,
    now: time::OffsetDateTime,
) -> Result<crate::policy::conditional_access::WhatIfResponse, GraphError> {
    caller.require(&READ)?;
    let user_ref = request.sign_in_identity.user_id.clone().unwrap_or_default();
    let user = super::users::find(state, &user_ref, now).await?;
    let facts = DirectoryFacts {
        // As live sign-ins do: stored policies name users by object id.
        user_aliases: vec![user.id.to_string()],
        group_ids: state
            .directory
            .groups_of(user.id, now)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
        role_template_ids: state
            .directory
            .roles_of(user.id, now)
            .await?
            .iter()
            .map(|r| r.template_id().to_owned())
            .collect(),
        is_guest: false,
    };
    let mut request = request;
    request.sign_in_identity.user_id = Some(user.id.to_string());
    let set = state.ca.policy_set(now.unix_timestamp()).await?;
    what_if(
        &request,
        &set.policies,
        &set.strengths,
        &set.locations,
        &facts,
        now,
    )
    .map_err(invalid)
}
