//! `GET/PATCH /users/{id}/authentication/requirements`: Graph's
//! `strongAuthenticationRequirements` (`perUserMfaState`: disabled, enabled,
//! enforced). `enforced` makes every sign-in of the user require MFA.

use super::GraphPath;
use super::auth::{Access, Caller};
use super::error::{GraphError, parse_json};
use super::record_change;
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::directory::PerUserMfaState;
use crate::directory::roles::BuiltinRole::*;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

const READ: Access = Access {
    permissions: &[
        "UserAuthenticationMethod.Read.All",
        "UserAuthenticationMethod.ReadWrite.All",
    ],
    roles: Some(&[
        GlobalAdministrator,
        PrivilegedAuthenticationAdministrator,
        AuthenticationAdministrator,
        GlobalReader,
    ]),
};
const WRITE: Access = Access {
    permissions: &["UserAuthenticationMethod.ReadWrite.All"],
    roles: Some(&[
        GlobalAdministrator,
        PrivilegedAuthenticationAdministrator,
        AuthenticationAdministrator,
    ]),
};

fn state_name(s: PerUserMfaState) -> &'static str {
    match s {
        PerUserMfaState::Disabled => "disabled",
        PerUserMfaState::Enabled => "enabled",
        PerUserMfaState::Enforced => "enforced",
    }
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&READ)?;
    let user = super::users::find(&state, &id, now).await?;
    let mfa = state.directory.mfa_state(user.id, now).await?;
    Ok(Json(json!({
        "@odata.context": format!("{}/beta/$metadata#users('{}')/authentication/requirements", state.settings.issuer, user.id),
        "perUserMfaState": state_name(mfa),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    per_user_mfa_state: PerUserMfaState,
}

pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&WRITE)?;
    let user = super::users::find(&state, &id, now).await?;
    if let Caller::User {
        roles, user: me, ..
    } = &caller
    {
        let target_is_admin = !state.directory.roles_of(user.id, now).await?.is_empty();
        if me.id != user.id
            && target_is_admin
            && !(roles.contains(&GlobalAdministrator)
                || roles.contains(&PrivilegedAuthenticationAdministrator))
        {
            return Err(GraphError::forbidden(
                "Insufficient privileges to complete the operation: changing an administrator's MFA requirement needs a Privileged Authentication Administrator.",
            ));
        }
    }
    let patch: Patch = parse_json(&headers, body)?;
    state
        .directory
        .set_mfa_state(user.id, patch.per_user_mfa_state, now)
        .await?;
    let target = TargetResource::user(&user);
    let details = vec![KeyValue::new(
        "perUserMfaState",
        state_name(patch.per_user_mfa_state),
    )];
    record_change(
        &state,
        &caller,
        "Update per-user multifactor authentication state",
        "UserManagement",
        target,
        details,
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
