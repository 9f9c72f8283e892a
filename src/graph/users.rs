//! `/users`, `/users/{id | userPrincipalName}`, `/me`.

use super::GraphPath;
use super::auth::{self, Caller};
use super::error::{GraphError, parse_json};
use super::{ApiVersion, ListQuery, page_body, record_change};
use crate::app::AppState;
use crate::audit::TargetResource;
use crate::authn::password::{Password, PasswordError};
use crate::directory::authority::UserAction;
use crate::directory::{NewUser, User, UserPatch};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id.to_string(),
        "userPrincipalName": u.user_principal_name,
        "displayName": u.display_name,
        "mail": u.mail,
        "accountEnabled": u.account_enabled,
        "createdDateTime": u.created_date_time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}

/// Graph's `passwordProfile`. The password never reaches a log or error.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordProfile {
    #[schema(min_length = 1)]
    pub password: String,
    #[serde(default)]
    #[allow(dead_code)] // accepted for compatibility; Gatepass has no forced change yet
    force_change_password_next_sign_in: bool,
}

impl PasswordProfile {
    pub fn new(password: String) -> Self {
        Self {
            password,
            force_change_password_next_sign_in: false,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    pub user_principal_name: String,
    pub display_name: String,
    #[serde(default = "default_true")]
    pub account_enabled: bool,
    pub mail: Option<String>,
    pub password_profile: Option<PasswordProfile>,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUser {
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mail: Option<Option<String>>,
    pub password_profile: Option<PasswordProfile>,
}

impl UpdateUser {
    /// The directory actions this patch performs. A patch that changes
    /// nothing still writes the user and the audit: a profile update.
    fn actions(&self) -> Vec<UserAction> {
        let mut actions = Vec::new();
        if self.display_name.is_some() {
            actions.push(UserAction::UpdateProfile);
        }
        if self.user_principal_name.is_some() || self.mail.is_some() {
            actions.push(UserAction::UpdateIdentity);
        }
        if self.account_enabled.is_some() {
            actions.push(UserAction::SetAccountEnabled);
        }
        if self.password_profile.is_some() {
            actions.push(UserAction::ResetPassword);
        }
        if actions.is_empty() {
            actions.push(UserAction::UpdateProfile);
        }
        actions
    }
}

/// Distinguishes `"mail": null` (clear) from an absent `mail` (keep).
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn hash_password(state: &AppState, profile: &PasswordProfile) -> Result<String, GraphError> {
    let password = Password::new(profile.password.clone());
    password.validate_new().map_err(|e| match e {
        PasswordError::TooShort | PasswordError::TooLong => GraphError::bad_request(format!(
            "Invalid value specified for property 'passwordProfile.password': {e}."
        )),
        PasswordError::Busy => GraphError::busy(),
        PasswordError::Hashing => GraphError::internal(e.code(), "hashing failed", false),
    })?;
    state
        .hasher
        .hash(password.expose())
        .await
        .map_err(|e| match e {
            PasswordError::Busy => GraphError::busy(),
            other => GraphError::internal(other.code(), "hashing failed", false),
        })
}

pub async fn find(
    state: &AppState,
    id: &str,
    now: time::OffsetDateTime,
) -> Result<User, GraphError> {
    state
        .directory
        .find_user(id, now)
        .await?
        .ok_or_else(|| GraphError::not_found(id))
}

#[utoipa::path(post,
    path = "/v1.0/users",
    operation_id = "users.create",
    tag = "users",
    request_body(content = CreateUser, content_type = "application/json"),
    responses((status = 201, description = "Created", body = crate::openapi::schemas::User)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::USERS_WRITE)?;
    let input: CreateUser = parse_json(&headers, body)?;
    let user = create_user(&state, &caller, input, now).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

/// Creates a user (User Administrator or above), audited.
pub async fn create_user(
    state: &AppState,
    caller: &Caller,
    input: CreateUser,
    now: time::OffsetDateTime,
) -> Result<User, GraphError> {
    caller.require(&auth::USERS_WRITE)?;
    let password_hash = match &input.password_profile {
        Some(p) => Some(hash_password(state, p).await?),
        None => None,
    };
    let user = state
        .directory
        .create_user(
            NewUser {
                user_principal_name: input.user_principal_name,
                display_name: input.display_name,
                mail: input.mail,
                account_enabled: input.account_enabled,
                password_hash,
            },
            now,
        )
        .await?;
    record_change(
        state,
        caller,
        "Add user",
        "UserManagement",
        TargetResource::user(&user),
        vec![],
        now,
    )
    .await;
    Ok(user)
}

#[utoipa::path(get,
    path = "/v1.0/users",
    operation_id = "users.list",
    tag = "users",
    params(crate::openapi::ListParams),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::User>)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::USERS_READ)?;
    let query = ListQuery::parse_paged(q.as_deref())?;
    // A userPrincipalName is looked up in its index; anything else is read
    // a page at a time in object-id order (`$skiptoken` is the last id).
    if let Some((_, upn)) = query
        .filter
        .as_ref()
        .filter(|(p, _)| p.eq_ignore_ascii_case("userPrincipalName"))
    {
        let found = state.directory.find_user(upn, now).await?;
        let items = found.iter().map(user_json).collect();
        return Ok(Json(page_body(
            &state, version, "users", items, None, &query,
        )));
    }
    let read = |after: Option<String>, n| {
        let directory = state.directory.clone();
        async move { directory.users_page(after.as_deref(), n, now).await }
    };
    let body = super::store_collection(&state, version, "users", &query, read, user_json);
    Ok(Json(body.await?))
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}",
    operation_id = "users.get",
    tag = "users",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::User)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::USERS_READ)?;
    Ok(Json(user_json(&find(&state, &id, now).await?)))
}

#[utoipa::path(patch,
    path = "/v1.0/users/{id}",
    operation_id = "users.update",
    tag = "users",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    request_body(content = UpdateUser, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    body: Body,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = find(&state, &id, now).await?;
    let input: UpdateUser = parse_json(&headers, body)?;
    update_user(&state, &caller, &user, input, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a patch to `user`. Every property it touches is its own action
/// under the directory's rules; all must be allowed before anything is
/// written.
pub async fn update_user(
    state: &AppState,
    caller: &Caller,
    user: &User,
    input: UpdateUser,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller
        .authorize_all(state, &input.actions(), user, now)
        .await?;
    let password_hash = match &input.password_profile {
        Some(p) => Some(hash_password(state, p).await?),
        None => None,
    };
    let changed_password = password_hash.is_some();
    let updated = state
        .directory
        .update_user(
            user.id,
            UserPatch {
                user_principal_name: input.user_principal_name,
                display_name: input.display_name,
                mail: input.mail,
                account_enabled: input.account_enabled,
                password_hash,
            },
            now,
        )
        .await?;
    record_change(
        state,
        caller,
        "Update user",
        "UserManagement",
        TargetResource::user(&updated),
        vec![],
        now,
    )
    .await;
    if changed_password {
        record_change(
            state,
            caller,
            "Reset user password",
            "UserManagement",
            TargetResource::user(&updated),
            vec![],
            now,
        )
        .await;
    }
    Ok(())
}

#[utoipa::path(delete,
    path = "/v1.0/users/{id}",
    operation_id = "users.delete",
    tag = "users",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 204, description = "Done")))]
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = find(&state, &id, now).await?;
    delete_user(&state, &caller, &user, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes `user` under the directory's rules, audited.
pub async fn delete_user(
    state: &AppState,
    caller: &Caller,
    user: &User,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller
        .authorize_on(state, UserAction::Delete, user, now)
        .await?;
    let deleted = state.directory.delete_user(user.id, now).await?;
    record_change(
        state,
        caller,
        "Delete user",
        "UserManagement",
        TargetResource::user(&deleted),
        vec![],
        now,
    )
    .await;
    Ok(())
}

#[utoipa::path(post,
    path = "/v1.0/users/{id}/revokeSignInSessions",
    operation_id = "users.revokeSignInSessions",
    tag = "users",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::BooleanValue)))]
pub async fn revoke_sign_in_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = find(&state, &id, now).await?;
    revoke_sessions(&state, &caller, user, now).await?;
    Ok(Json(json!({"value": true})))
}

/// Ends `user`'s sessions and refresh tokens under the directory's rules.
pub async fn revoke_sessions(
    state: &AppState,
    caller: &Caller,
    user: User,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller
        .authorize_on(state, UserAction::RevokeSessions, &user, now)
        .await?;
    revoke(state, caller, user, now).await
}

async fn revoke(
    state: &AppState,
    caller: &Caller,
    user: User,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    let user = state.directory.revoke_sessions(user.id, now).await?;
    record_change(
        state,
        caller,
        "Revoke sign-in sessions",
        "UserManagement",
        TargetResource::user(&user),
        vec![],
        now,
    )
    .await;
    Ok(())
}

fn delegated_user(caller: &Caller) -> Result<&User, GraphError> {
    match caller {
        Caller::User { user, scopes, .. } => {
            const ME: [&str; 4] = [
                "User.Read",
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
            ];
            if ME.iter().any(|s| scopes.contains(*s)) {
                Ok(user)
            } else {
                Err(GraphError::forbidden(
                    "Insufficient privileges to complete the operation: requires the scope User.Read.",
                ))
            }
        }
        Caller::Console { user, .. } => Ok(user),
        // Graph answers exactly this (code and message) to an app token.
        Caller::App { .. } => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )),
    }
}

#[utoipa::path(get,
    path = "/v1.0/me",
    operation_id = "me.get",
    tag = "users",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::User)))]
pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    Ok(Json(user_json(delegated_user(&caller)?)))
}

/// A user may always end their own sessions.
#[utoipa::path(post,
    path = "/v1.0/me/revokeSignInSessions",
    operation_id = "me.revokeSignInSessions",
    tag = "users",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::BooleanValue)))]
pub async fn revoke_my_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = delegated_user(&caller)?.clone();
    revoke(&state, &caller, user, now).await?;
    Ok(Json(json!({"value": true})))
}
