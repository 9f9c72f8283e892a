//! `/users/{id}/authentication/fido2Methods` (and `/me/...`): the user's
//! passkeys as Graph `fido2AuthenticationMethod`s. Who may read and delete
//! them is the directory's rule ([`crate::directory::authority`]); a user
//! deleting their own through `/me` is held to the rule on the last strong
//! method, as on the security-info page.

use super::ApiVersion;
use super::GraphPath;
use super::auth::Caller;
use super::error::GraphError;
use super::record_change;
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::authn::authenticators::Authenticators;
use crate::authn::passkey::StoredPasskey;
use crate::directory::User;
use crate::directory::authority::UserAction;
use crate::policy::session_limiter::Removal;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A passkey as Graph's `fido2AuthenticationMethod`: `model` is the
/// authenticator's name when the AAGUID is a known one.
pub fn fido2_json(p: &StoredPasskey, names: &Authenticators) -> Value {
    let model = uuid::Uuid::parse_str(&p.aaguid)
        .ok()
        .and_then(|a| names.name(a));
    let created = OffsetDateTime::from_unix_timestamp(p.created_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    json!({
        "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
        "id": p.id,
        "displayName": p.display_name,
        "createdDateTime": created,
        "aaGuid": p.aaguid,
        "model": model,
        "attestationCertificates": [],
        "attestationLevel": if p.attested { "attested" } else { "notAttested" },
    })
}

/// The path user (or the caller for `/me`), once the directory's rules
/// allow `action` on them.
async fn subject(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    write: bool,
    now: OffsetDateTime,
) -> Result<User, GraphError> {
    let user = match (id, caller) {
        (Some(id), _) => super::users::find(state, id, now).await?,
        (None, Caller::User { user, .. } | Caller::Console { user, .. }) => user.clone(),
        (None, Caller::App { .. }) => {
            return Err(GraphError::bad_request(
                "/me request is only valid with delegated authentication flow.",
            ));
        }
    };
    let action = match (id.is_some(), write) {
        (true, false) => UserAction::ReadMethods,
        (true, true) => UserAction::DeletePasskey,
        (false, false) => UserAction::ViewOwnMethods,
        (false, true) => UserAction::DeleteOwnPasskey,
    };
    caller.authorize_on(state, action, &user, now).await?;
    Ok(user)
}

async fn list_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    version: ApiVersion,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let user = subject(state, caller, id, false, now).await?;
    let items: Vec<Value> = state
        .passkeys
        .list(user.id, now.unix_timestamp())
        .await
        .map_err(|e| GraphError::internal(e.code(), &e.to_string(), false))?
        .iter()
        .map(|p| fido2_json(p, &state.settings.passkeys.authenticators))
        .collect();
    Ok(Json(json!({
        "@odata.context": format!("{}/{}/$metadata#users('{}')/authentication/fido2Methods", state.settings.issuer, version.0, user.id),
        "value": items,
    })))
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}/authentication/fido2Methods",
    operation_id = "users.passkeys.list",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::Fido2Method>)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    list_for(&state, &caller, Some(&id), version).await
}

#[utoipa::path(get,
    path = "/v1.0/me/authentication/fido2Methods",
    operation_id = "me.passkeys.list",
    tag = "authentication methods",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::Fido2Method>)))]
pub async fn list_mine(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    list_for(&state, &caller, None, version).await
}

async fn get_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    method: &str,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let user = subject(state, caller, id, false, now).await?;
    let keys = state
        .passkeys
        .list(user.id, now.unix_timestamp())
        .await
        .map_err(|e| GraphError::internal(e.code(), &e.to_string(), false))?;
    keys.iter()
        .find(|p| p.id == method)
        .map(|p| Json(fido2_json(p, &state.settings.passkeys.authenticators)))
        .ok_or_else(|| GraphError::not_found(method))
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}/authentication/fido2Methods/{method}",
    operation_id = "users.passkeys.get",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName"), ("method" = String, Path, description = "The method's id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Fido2Method)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, method)): GraphPath<(String, String)>,
) -> Result<Json<Value>, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    get_for(&state, &caller, Some(&id), &method).await
}

#[utoipa::path(get,
    path = "/v1.0/me/authentication/fido2Methods/{method}",
    operation_id = "me.passkeys.get",
    tag = "authentication methods",
    params(("method" = String, Path, description = "The method's id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Fido2Method)))]
pub async fn get_mine(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(method): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    get_for(&state, &caller, None, &method).await
}

pub async fn delete_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    method: &str,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let user = subject(state, caller, id, true, now).await?;
    if id.is_none() {
        super::methods::admit_own_removal(state, caller, &user, Removal::Passkey, now).await?;
    }
    let deleted = state
        .passkeys
        .delete(user.id, method, now.unix_timestamp())
        .await
        .map_err(|e| GraphError::internal(e.code(), &e.to_string(), false))?;
    if !deleted {
        return Err(GraphError::not_found(method));
    }
    let target = TargetResource::user(&user);
    let activity = if id.is_none() {
        "User deleted security info"
    } else {
        "Admin deleted security info"
    };
    let details = vec![
        KeyValue::new("methodType", "Fido2"),
        KeyValue::new("methodId", method.to_owned()),
    ];
    record_change(
        state,
        caller,
        activity,
        "UserManagement",
        target,
        details,
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete,
    path = "/v1.0/users/{id}/authentication/fido2Methods/{method}",
    operation_id = "users.passkeys.delete",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName"), ("method" = String, Path, description = "The method's id")),
    responses((status = 204, description = "Done")))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, method)): GraphPath<(String, String)>,
) -> Result<StatusCode, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    delete_for(&state, &caller, Some(&id), &method).await
}

#[utoipa::path(delete,
    path = "/v1.0/me/authentication/fido2Methods/{method}",
    operation_id = "me.passkeys.delete",
    tag = "authentication methods",
    params(("method" = String, Path, description = "The method's id")),
    responses((status = 204, description = "Done")))]
pub async fn delete_mine(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(method): GraphPath<String>,
) -> Result<StatusCode, GraphError> {
    let caller = Caller::from_headers(&state, &headers, state.clock.now()).await?;
    delete_for(&state, &caller, None, &method).await
}
