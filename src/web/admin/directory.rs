//! Groups (create, members) and directory role assignments.

use super::{Chrome, Console, Form, Refusal, done, enc, notice_text, query_of, refused, show};
use crate::app::AppState;
use crate::directory::authority::access;
use crate::directory::roles::BuiltinRole;
use crate::directory::{Group, User};
use crate::graph::{groups as group_ops, roles as role_ops};
use crate::ids::RoleAssignmentId;
use crate::web::error::PageError;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// A user named by UPN or object id, or a refusal naming the field.
async fn user_named(state: &AppState, name: Option<&str>) -> Result<User, Refusal> {
    let name = name.unwrap_or("");
    state
        .directory
        .find_user(name, state.clock.now())
        .await
        .map_err(|e| Refusal::from(crate::graph::error::GraphError::from(e)))?
        .ok_or_else(|| Refusal {
            status: StatusCode::BAD_REQUEST,
            message: format!("No user {name:?}: give a user principal name or object ID."),
            field: Some("user".into()),
        })
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<Group>,
    can_write: bool,
    notice: Option<&'static str>,
}

pub async fn groups(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    groups_page(
        &state,
        &console,
        notice_text(query_of(q.as_deref()).get("done")),
    )
    .await
}

async fn groups_page(
    state: &AppState,
    console: &super::Console,
    notice: Option<&'static str>,
) -> Result<Response, PageError> {
    console
        .caller
        .require(&access::GROUPS_READ)
        .map_err(refused)?;
    let mut groups = state.directory.list_groups(state.clock.now()).await?;
    groups.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    Ok(show(
        StatusCode::OK,
        &GroupsPage {
            chrome: console.chrome("groups"),
            groups,
            can_write: console.may(&access::GROUPS_WRITE),
            notice,
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/group_new.html")]
struct NewGroupPage {
    chrome: Chrome,
    name: String,
    alert: Option<String>,
}

pub async fn new_group(console: Console) -> Result<Response, PageError> {
    console
        .caller
        .require(&access::GROUPS_WRITE)
        .map_err(refused)?;
    Ok(show(
        StatusCode::OK,
        &NewGroupPage {
            chrome: console.chrome("groups"),
            name: String::new(),
            alert: None,
        },
    ))
}

pub async fn create_group(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let name = form.get("name").unwrap_or("").to_owned();
    match group_ops::create_group(
        &state,
        &console.caller,
        name.clone(),
        None,
        None,
        state.clock.now(),
    )
    .await
    {
        Ok(g) => Ok(done(&format!("/admin/groups/{}", g.id), "created")),
        Err(e) => {
            let r = Refusal::from(e);
            Ok(show(
                r.status,
                &NewGroupPage {
                    chrome: console.chrome("groups"),
                    name,
                    alert: Some(r.message),
                },
            ))
        }
    }
}

#[derive(Template)]
#[template(path = "admin/group.html")]
struct GroupPage {
    chrome: Chrome,
    group: Group,
    id: String,
    members: Vec<User>,
    can_write: bool,
    notice: Option<&'static str>,
    alert: Option<String>,
}

async fn group_page(
    state: &AppState,
    console: &super::Console,
    id: &str,
    notice: Option<&'static str>,
    alert: Option<Refusal>,
) -> Result<Response, PageError> {
    console
        .caller
        .require(&access::GROUPS_READ)
        .map_err(refused)?;
    let now = state.clock.now();
    let group = group_ops::find(state, id, now).await.map_err(refused)?;
    let mut members = state.directory.members(group.id, now).await?;
    members.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    Ok(show(
        status,
        &GroupPage {
            chrome: console.chrome("groups"),
            id: group.id.to_string(),
            group,
            members,
            can_write: console.may(&access::GROUPS_WRITE),
            notice,
            alert: alert.map(|a| a.message),
        },
    ))
}

pub async fn group(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let notice = notice_text(query_of(q.as_deref()).get("done"));
    group_page(&state, &console, &id, notice, None).await
}

/// **Add member** and **Remove** on a group's page.
pub async fn group_members(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, PageError> {
    let path = format!("/admin/groups/{}", enc(&id));
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let now = state.clock.now();
    let group = group_ops::find(&state, &id, now).await.map_err(refused)?;
    let outcome: Result<&str, Refusal> = match form.get("action") {
        Some("add") => match user_named(&state, form.get("user")).await {
            Ok(user) => group_ops::add_member_to(&state, &console.caller, &group, user.id, now)
                .await
                .map(|()| "added")
                .map_err(Refusal::from),
            Err(r) => Err(r),
        },
        Some("remove") => match user_named(&state, form.get("user")).await {
            Ok(user) => {
                group_ops::remove_member_from(&state, &console.caller, &group, user.id, now)
                    .await
                    .map(|()| "removed")
                    .map_err(Refusal::from)
            }
            Err(r) => Err(r),
        },
        _ => return Err(PageError::bad_request("Unknown action.")),
    };
    match outcome {
        Ok(n) => Ok(done(&path, n)),
        Err(r) => group_page(&state, &console, &id, None, Some(r)).await,
    }
}

pub struct AssignmentRow {
    pub id: String,
    pub user: String,
    pub user_id: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "admin/roles.html")]
struct RolesPage {
    chrome: Chrome,
    rows: Vec<AssignmentRow>,
    roles: Vec<&'static str>,
    can_write: bool,
    notice: Option<&'static str>,
    alert: Option<String>,
}

async fn roles_page(
    state: &AppState,
    console: &super::Console,
    notice: Option<&'static str>,
    alert: Option<Refusal>,
) -> Result<Response, PageError> {
    console
        .caller
        .require(&access::ROLES_READ)
        .map_err(refused)?;
    let now = state.clock.now();
    // Assignments are few (administrators); their users are read one by
    // one, never the whole directory.
    let mut rows = Vec::new();
    for a in state.directory.role_assignments(now).await? {
        let user = state.directory.user(a.principal_id, now).await?;
        rows.push(AssignmentRow {
            id: a.id.to_string(),
            user: user
                .map(|u| format!("{} ({})", u.display_name, u.user_principal_name))
                .unwrap_or_else(|| a.principal_id.to_string()),
            user_id: a.principal_id.to_string(),
            role: a.role.display_name(),
        });
    }
    rows.sort_by(|a, b| a.role.cmp(b.role).then(a.user.cmp(&b.user)));
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    Ok(show(
        status,
        &RolesPage {
            chrome: console.chrome("roles"),
            rows,
            roles: BuiltinRole::ALL.iter().map(|r| r.display_name()).collect(),
            can_write: console.may(&access::ROLES_WRITE),
            notice,
            alert: alert.map(|a| a.message),
        },
    ))
}

pub async fn roles(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    roles_page(
        &state,
        &console,
        notice_text(query_of(q.as_deref()).get("done")),
        None,
    )
    .await
}

/// **Add assignment** and **Remove**.
pub async fn role_change(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let now = state.clock.now();
    let outcome: Result<&str, Refusal> = match form.get("action") {
        Some("add") => {
            let role = form.get("role").and_then(BuiltinRole::resolve);
            match (role, user_named(&state, form.get("user")).await) {
                (None, _) => Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    message: "Choose a role.".into(),
                    field: Some("role".into()),
                }),
                (_, Err(r)) => Err(r),
                (Some(role), Ok(user)) => {
                    role_ops::assign_role(&state, &console.caller, role, user.id, now)
                        .await
                        .map(|_| "added")
                        .map_err(Refusal::from)
                }
            }
        }
        Some("remove") => match form.get("assignment").and_then(RoleAssignmentId::parse) {
            Some(id) => role_ops::remove_assignment(&state, &console.caller, id, now)
                .await
                .map(|()| "removed")
                .map_err(Refusal::from),
            None => return Err(PageError::bad_request("Unknown role assignment.")),
        },
        _ => return Err(PageError::bad_request("Unknown action.")),
    };
    match outcome {
        Ok(n) => Ok(done("/admin/roles", n)),
        Err(r) => roles_page(&state, &console, None, Some(r)).await,
    }
}
