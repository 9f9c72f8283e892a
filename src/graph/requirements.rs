//! `GET/PATCH /users/{id}/authentication/requirements`: Graph's
//! `strongAuthenticationRequirements` (`perUserMfaState`: disabled, enabled,
//! enforced). `enforced` makes every sign-in of the user require MFA.

use super::GraphPath;
use super::auth::Caller;
use super::error::{GraphError, parse_json};
use super::record_change;
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::directory::PerUserMfaState;
use crate::directory::authority::UserAction;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn state_name(s: PerUserMfaState) -> &'static str {
    match s {
        PerUserMfaState::Disabled => "disabled",
        PerUserMfaState::Enabled => "enabled",
        PerUserMfaState::Enforced => "enforced",
    }
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}/authentication/requirements",
    operation_id = "users.requirements.get",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::AuthenticationRequirements)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = super::users::find(&state, &id, now).await?;
    let mfa = mfa_state_of(&state, &caller, &user, now).await?;
    Ok(Json(json!({
        "@odata.context": format!("{}/beta/$metadata#users('{}')/authentication/requirements", state.settings.issuer, user.id),
        "perUserMfaState": state_name(mfa),
    })))
}

/// `user`'s per-user MFA state, under the directory's rules.
pub async fn mfa_state_of(
    state: &AppState,
    caller: &Caller,
    user: &crate::directory::User,
    now: time::OffsetDateTime,
) -> Result<PerUserMfaState, GraphError> {
    caller
        .authorize_on(state, UserAction::ReadMfaState, user, now)
        .await?;
    Ok(state.directory.mfa_state(user.id, now).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    #[schema(value_type = crate::openapi::schemas::PerUserMfaState)]
    per_user_mfa_state: PerUserMfaState,
}

#[utoipa::path(patch,
    path = "/v1.0/users/{id}/authentication/requirements",
    operation_id = "users.requirements.update",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    request_body(content = Patch, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = super::users::find(&state, &id, now).await?;
    caller
        .authorize_on(&state, UserAction::SetMfaState, &user, now)
        .await?;
    let patch: Patch = parse_json(&headers, body)?;
    set_mfa_state(&state, &caller, &user, patch.per_user_mfa_state, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets `user`'s per-user MFA state under the directory's rules, audited.
pub async fn set_mfa_state(
    state: &AppState,
    caller: &Caller,
    user: &crate::directory::User,
    mfa: PerUserMfaState,
    now: time::OffsetDateTime,
) -> Result<(), GraphError> {
    caller
        .authorize_on(state, UserAction::SetMfaState, user, now)
        .await?;
    state.directory.set_mfa_state(user.id, mfa, now).await?;
    let target = TargetResource::user(user);
    let details = vec![KeyValue::new("perUserMfaState", state_name(mfa))];
    record_change(
        state,
        caller,
        "Update per-user multifactor authentication state",
        "UserManagement",
        target,
        details,
        now,
    )
    .await;
    Ok(())
}
