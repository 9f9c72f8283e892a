//! `/roleManagement/directory/roleAssignments` and `roleDefinitions`.

use super::GraphPath;
use super::auth::{self, Caller};
use super::error::{GraphError, parse_json};
use super::{ApiVersion, ListQuery, collection, record_change};
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::directory::RoleAssignment;
use crate::directory::roles::BuiltinRole;
use crate::ids::{RoleAssignmentId, UserId};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

fn assignment_json(a: &RoleAssignment) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "id": a.id.to_string(),
        "roleDefinitionId": a.role.template_id(),
        "principalId": a.principal_id.to_string(),
        "directoryScopeId": a.directory_scope_id,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAssignment {
    role_definition_id: String,
    principal_id: String,
    #[serde(default = "root_scope")]
    directory_scope_id: String,
}

fn root_scope() -> String {
    "/".to_owned()
}

#[utoipa::path(post,
    path = "/v1.0/roleManagement/directory/roleAssignments",
    operation_id = "roleAssignments.create",
    tag = "roles",
    request_body(content = CreateAssignment, content_type = "application/json"),
    responses((status = 201, description = "Created", body = crate::openapi::schemas::RoleAssignment)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::ROLES_WRITE)?;
    let input: CreateAssignment = parse_json(&headers, body)?;
    let role = BuiltinRole::resolve(&input.role_definition_id).ok_or_else(|| {
        GraphError::bad_request(format!(
            "Invalid value specified for property 'roleDefinitionId': '{}' is not a built-in role template id or display name.",
            input.role_definition_id
        ))
    })?;
    if input.directory_scope_id != "/" {
        return Err(GraphError::bad_request(
            "Invalid value specified for property 'directoryScopeId': only the tenant-wide scope '/' is supported.",
        ));
    }
    let principal = UserId::parse(&input.principal_id).ok_or_else(|| {
        GraphError::bad_request(
            "Invalid value specified for property 'principalId': expected a user id.",
        )
    })?;
    let assignment = assign_role(&state, &caller, role, principal, now).await?;
    Ok((StatusCode::CREATED, Json(assignment_json(&assignment))).into_response())
}

/// Gives `principal` a directory role, audited.
pub async fn assign_role(
    state: &AppState,
    caller: &Caller,
    role: BuiltinRole,
    principal: UserId,
    now: time::OffsetDateTime,
) -> Result<RoleAssignment, GraphError> {
    caller.require(&auth::ROLES_WRITE)?;
    let assignment = state.directory.assign_role(role, principal, now).await?;
    let target = state.directory.user(principal, now).await?;
    record_change(
        state,
        caller,
        "Add member to role",
        "RoleManagement",
        TargetResource {
            id: principal.to_string(),
            kind: "User".into(),
            display_name: target.as_ref().map(|u| u.display_name.clone()),
            user_principal_name: target.map(|u| u.user_principal_name),
        },
        vec![KeyValue::new("Role.DisplayName", role.display_name())],
        now,
    )
    .await;
    Ok(assignment)
}

#[utoipa::path(get,
    path = "/v1.0/roleManagement/directory/roleAssignments",
    operation_id = "roleAssignments.list",
    tag = "roles",
    params(crate::openapi::ListParams),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::RoleAssignment>)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::ROLES_READ)?;
    let query = ListQuery::parse_paged(q.as_deref())?;
    let read = |after: Option<String>, n| {
        let directory = state.directory.clone();
        async move {
            directory
                .role_assignments_page(after.as_deref(), n, now)
                .await
        }
    };
    let body = super::store_collection(
        &state,
        version,
        "roleManagement/directory/roleAssignments",
        &query,
        read,
        assignment_json,
    );
    Ok(Json(body.await?))
}

async fn find(
    state: &AppState,
    id: &str,
    now: time::OffsetDateTime,
) -> Result<RoleAssignment, GraphError> {
    let rid = RoleAssignmentId::parse(id).ok_or_else(|| GraphError::not_found(id))?;
    state
        .directory
        .role_assignment(rid, now)
        .await?
        .ok_or_else(|| GraphError::not_found(id))
}

#[utoipa::path(get,
    path = "/v1.0/roleManagement/directory/roleAssignments/{id}",
    operation_id = "roleAssignments.get",
    tag = "roles",
    params(("id" = String, Path, description = "The assignment's id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::RoleAssignment)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::ROLES_READ)?;
    Ok(Json(assignment_json(&find(&state, &id, now).await?)))
}

#[utoipa::path(delete,
    path = "/v1.0/roleManagement/directory/roleAssignments/{id}",
    operation_id = "roleAssignments.delete",
    tag = "roles",
    params(("id" = String, Path, description = "The assignment's id")),
    responses((status = 204, description = "Done")))]
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::ROLES_WRITE)?;
    let assignment = find(&state, &id, now).await?;
    remove_assignment(&state, &caller, assignment.id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends a role assignment, audited.
pub async fn remove_assignment(
    state: &AppState,
    caller: &Caller,
    id: RoleAssignmentId,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller.require(&auth::ROLES_WRITE)?;
    let removed = state.directory.delete_role_assignment(id, now).await?;
    record_change(
        state,
        caller,
        "Remove member from role",
        "RoleManagement",
        TargetResource {
            id: removed.principal_id.to_string(),
            kind: "User".into(),
            display_name: None,
            user_principal_name: None,
        },
        vec![KeyValue::new(
            "Role.DisplayName",
            removed.role.display_name(),
        )],
        now,
    )
    .await;
    Ok(())
}

#[utoipa::path(get,
    path = "/v1.0/roleManagement/directory/roleDefinitions",
    operation_id = "roleDefinitions.list",
    tag = "roles",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::RoleDefinition>)))]
pub async fn definitions(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::ROLES_READ)?;
    let items = BuiltinRole::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.template_id(),
                "templateId": r.template_id(),
                "displayName": r.display_name(),
                "isBuiltIn": true,
                "isEnabled": true,
            })
        })
        .collect();
    Ok(Json(collection(
        &state,
        version,
        "roleManagement/directory/roleDefinitions",
        items,
        &ListQuery::default(),
    )))
}
