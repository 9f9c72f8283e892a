//! `/groups`, `/groups/{id}/members`, `/groups/{id}/members/$ref`.

use super::GraphPath;
use super::auth::{self, Caller};
use super::error::{GraphError, parse_json};
use super::{ApiVersion, ListQuery, collection, record_change};
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::directory::Group;
use crate::ids::{GroupId, UserId};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id.to_string(),
        "displayName": g.display_name,
        "description": g.description,
        "mailNickname": g.mail_nickname,
        "mailEnabled": false,
        "securityEnabled": g.security_enabled,
        "groupTypes": [],
        "createdDateTime": g.created_date_time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}

fn group_target(g: &Group) -> TargetResource {
    TargetResource {
        id: g.id.to_string(),
        kind: "Group".to_owned(),
        display_name: Some(g.display_name.clone()),
        user_principal_name: None,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroup {
    display_name: String,
    description: Option<String>,
    mail_nickname: Option<String>,
    #[serde(default)]
    mail_enabled: bool,
    #[serde(default = "yes")]
    security_enabled: bool,
}

fn yes() -> bool {
    true
}

pub async fn find(
    state: &AppState,
    id: &str,
    now: time::OffsetDateTime,
) -> Result<Group, GraphError> {
    let gid = GroupId::parse(id).ok_or_else(|| GraphError::not_found(id))?;
    state
        .directory
        .group(gid, now)
        .await?
        .ok_or_else(|| GraphError::not_found(id))
}

#[utoipa::path(post,
    path = "/v1.0/groups",
    operation_id = "groups.create",
    tag = "groups",
    request_body(content = CreateGroup, content_type = "application/json"),
    responses((status = 201, description = "Created", body = crate::openapi::schemas::Group)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::GROUPS_WRITE)?;
    let input: CreateGroup = parse_json(&headers, body)?;
    if input.mail_enabled || !input.security_enabled {
        return Err(GraphError::bad_request(
            "Only security groups are supported: set mailEnabled to false and securityEnabled to true.",
        ));
    }
    let group = create_group(
        &state,
        &caller,
        input.display_name,
        input.description,
        input.mail_nickname,
        now,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(group_json(&group))).into_response())
}

/// Creates a security group, audited.
pub async fn create_group(
    state: &AppState,
    caller: &Caller,
    display_name: String,
    description: Option<String>,
    mail_nickname: Option<String>,
    now: time::OffsetDateTime,
) -> Result<Group, GraphError> {
    caller.require(&auth::GROUPS_WRITE)?;
    let group = state
        .directory
        .create_group(display_name, description, mail_nickname, now)
        .await?;
    record_change(
        state,
        caller,
        "Add group",
        "GroupManagement",
        group_target(&group),
        vec![],
        now,
    )
    .await;
    Ok(group)
}

#[utoipa::path(get,
    path = "/v1.0/groups",
    operation_id = "groups.list",
    tag = "groups",
    params(crate::openapi::ListParams),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::Group>)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::GROUPS_READ)?;
    let query = ListQuery::parse_paged(q.as_deref())?;
    let read = |after: Option<String>, n| {
        let directory = state.directory.clone();
        async move { directory.groups_page(after.as_deref(), n, now).await }
    };
    let body = super::store_collection(&state, version, "groups", &query, read, group_json);
    Ok(Json(body.await?))
}

#[utoipa::path(get,
    path = "/v1.0/groups/{id}",
    operation_id = "groups.get",
    tag = "groups",
    params(("id" = String, Path, description = "The group's object id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Group)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::GROUPS_READ)?;
    Ok(Json(group_json(&find(&state, &id, now).await?)))
}

#[utoipa::path(get,
    path = "/v1.0/groups/{id}/members",
    operation_id = "groups.members.list",
    tag = "groups",
    params(("id" = String, Path, description = "The group's object id"), crate::openapi::ListParams),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::User>)))]
pub async fn members(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::GROUPS_READ)?;
    let query = ListQuery::parse(q.as_deref())?;
    let group = find(&state, &id, now).await?;
    let items = state
        .directory
        .members(group.id, now)
        .await?
        .iter()
        .map(|u| {
            let mut v = super::users::user_json(u);
            v["@odata.type"] = json!("#microsoft.graph.user");
            v
        })
        .collect();
    Ok(Json(collection(
        &state,
        version,
        &format!("groups/{id}/members"),
        items,
        &query,
    )))
}

/// `{"@odata.id": "{issuer}/v1.0/directoryObjects/{id}"}` (or `…/users/{id}`).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct MemberRef {
    #[serde(rename = "@odata.id")]
    odata_id: String,
}

#[utoipa::path(post,
    path = "/v1.0/groups/{id}/members/$ref",
    operation_id = "groups.members.add",
    tag = "groups",
    params(("id" = String, Path, description = "The group's object id")),
    request_body(content = MemberRef, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn add_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    body: Body,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::GROUPS_WRITE)?;
    let group = find(&state, &id, now).await?;
    let input: MemberRef = parse_json(&headers, body)?;
    // Graph sends ".../directoryObjects/{id}"; the id is the last segment.
    let member = input
        .odata_id
        .rsplit('/')
        .next()
        .and_then(UserId::parse)
        .ok_or_else(|| GraphError::bad_request("Invalid value for property '@odata.id': expected a URL ending in /directoryObjects/{id}."))?;
    add_member_to(&state, &caller, &group, member, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a user to a group, audited.
pub async fn add_member_to(
    state: &AppState,
    caller: &Caller,
    group: &Group,
    member: UserId,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller.require(&auth::GROUPS_WRITE)?;
    state.directory.add_member(group.id, member, now).await?;
    record_change(
        state,
        caller,
        "Add member to group",
        "GroupManagement",
        group_target(group),
        vec![KeyValue::new("memberId", member.to_string())],
        now,
    )
    .await;
    Ok(())
}

#[utoipa::path(delete,
    path = "/v1.0/groups/{id}/members/{member}/$ref",
    operation_id = "groups.members.remove",
    tag = "groups",
    params(("id" = String, Path, description = "The group's object id"), ("member" = String, Path, description = "The member's object id")),
    responses((status = 204, description = "Done")))]
pub async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, member)): GraphPath<(String, String)>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::GROUPS_WRITE)?;
    let group = find(&state, &id, now).await?;
    let member = UserId::parse(&member).ok_or_else(|| GraphError::not_found(&member))?;
    remove_member_from(&state, &caller, &group, member, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a group, audited.
pub async fn remove_member_from(
    state: &AppState,
    caller: &Caller,
    group: &Group,
    member: UserId,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller.require(&auth::GROUPS_WRITE)?;
    state.directory.remove_member(group.id, member, now).await?;
    record_change(
        state,
        caller,
        "Remove member from group",
        "GroupManagement",
        group_target(group),
        vec![KeyValue::new("memberId", member.to_string())],
        now,
    )
    .await;
    Ok(())
}
