//! Authentication methods: `/users/{id}/authentication/...` and the
//! Temporary Access Pass policy (DESIGN §3).
//!
//! Who may issue, view and delete a pass is the directory's rule
//! ([`crate::directory::authority`]): Global Administrators and Privileged
//! Authentication Administrators for anyone but themselves, Authentication
//! Administrators for users without an administrator role, Global Readers
//! view only. Through `/me` a user may view and delete their own pass (as
//! on the security-info page, and under the same rule on removing the last
//! strong method) but never issue one.

use super::GraphPath;
use super::auth::Caller;
use super::error::{GraphError, parse_json};
use super::{ApiVersion, record_change};
use crate::app::AppState;
use crate::audit::{KeyValue, TargetResource};
use crate::authn::tap::{
    IssueError, IssueFailure, IssueRequest, MethodState, MethodTarget, TapPolicy,
    TemporaryAccessPass,
};
use crate::directory::User;
use crate::directory::authority::UserAction;
use crate::policy::session_limiter::{Removal, admit_removal};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// The fixed id Graph gives every user's password method.
const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";

use super::auth::{METHODS_POLICY_READ as POLICY_READ, METHODS_POLICY_WRITE as POLICY_WRITE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Issue,
    View,
    Delete,
}

/// Asks the directory's rules: through `/me` (`id` absent) the user acts
/// on their own pass; otherwise an administrator on someone's.
async fn authorize(
    state: &AppState,
    caller: &Caller,
    target: &User,
    action: Action,
    via_me: bool,
    now: OffsetDateTime,
) -> Result<(), GraphError> {
    let action = match (action, via_me) {
        (Action::Issue, _) => UserAction::IssueTap,
        (Action::View, false) => UserAction::ViewTap,
        (Action::Delete, false) => UserAction::DeleteTap,
        (Action::View, true) => UserAction::ViewOwnMethods,
        (Action::Delete, true) => UserAction::DeleteOwnTap,
    };
    caller.authorize_on(state, action, target, now).await
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Graph `temporaryAccessPassAuthenticationMethod`; the secret only when given.
pub fn pass_json(
    pass: &TemporaryAccessPass,
    policy: &TapPolicy,
    targeted: bool,
    now: i64,
    secret: Option<&str>,
) -> Value {
    let reason = pass.usability(policy, targeted, now);
    json!({
        "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
        "id": pass.id,
        "createdDateTime": rfc3339(pass.created_at),
        "startDateTime": rfc3339(pass.start_at),
        "lifetimeInMinutes": pass.lifetime_in_minutes,
        "isUsableOnce": pass.is_usable_once,
        "isUsable": reason == crate::authn::tap::UsabilityReason::EnabledByPolicy,
        "methodUsabilityReason": reason.as_str(),
        "temporaryAccessPass": secret,
    })
}

async fn targeted(
    state: &AppState,
    policy: &TapPolicy,
    user: &User,
    now: OffsetDateTime,
) -> Result<bool, GraphError> {
    let groups = if policy.needs_groups() {
        state.directory.groups_of(user.id, now).await?
    } else {
        Default::default()
    };
    Ok(policy.targets(&groups))
}

/// Resolves the path user, or the caller for `/me`.
async fn subject(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    now: OffsetDateTime,
) -> Result<User, GraphError> {
    match id {
        Some(id) => super::users::find(state, id, now).await,
        None => match caller {
            Caller::User { user, .. } | Caller::Console { user, .. } => Ok(user.clone()),
            Caller::App { .. } => Err(GraphError::bad_request(
                "/me request is only valid with delegated authentication flow.",
            )),
        },
    }
}

// --- temporaryAccessPassMethods ------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePass {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    is_usable_once: Option<bool>,
    /// RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC.
    start_date_time: Option<String>,
    lifetime_in_minutes: Option<u32>,
}

/// `startDateTime` as Graph takes it (RFC 3339), or the
/// `YYYY-MM-DD HH:MM:SS` (UTC) that PowerShell scripts commonly send.
fn parse_start(s: &str) -> Result<i64, GraphError> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt)
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| GraphError::bad_request(format!("Invalid value for property 'startDateTime': {s:?} is not an ISO 8601 date and time such as 2022-06-05T00:00:00.000Z.")))
}

fn issue_error(e: IssueFailure) -> GraphError {
    match e {
        IssueFailure::Rule(rule) => {
            let (status, code, property) = match rule {
                IssueError::LifetimeOutOfRange { .. } => (
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    Some("lifetimeInMinutes"),
                ),
                IssueError::MultiUseForbidden => {
                    (StatusCode::BAD_REQUEST, "badRequest", Some("isUsableOnce"))
                }
                IssueError::StartTooLate { .. } => {
                    (StatusCode::BAD_REQUEST, "badRequest", Some("startDateTime"))
                }
                IssueError::PolicyDisabled | IssueError::UserNotTargeted => {
                    (StatusCode::FORBIDDEN, "accessDenied", None)
                }
            };
            let mut e = GraphError::new(status, code, rule.to_string());
            e.target = property.map(str::to_owned);
            e
        }
        IssueFailure::Store(s) => s.into(),
        IssueFailure::Busy => GraphError::busy(),
        IssueFailure::Internal(d) => GraphError::internal("tap.issue", &d, false),
    }
}

#[utoipa::path(post,
    path = "/v1.0/users/{id}/authentication/temporaryAccessPassMethods",
    operation_id = "users.passes.create",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    request_body(content = CreatePass, content_type = "application/json"),
    responses((status = 201, description = "The pass; `temporaryAccessPass` holds it, here only", body = crate::openapi::schemas::TemporaryAccessPassMethod)))]
pub async fn create_pass(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
    body: Body,
) -> Result<Response, GraphError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    let user = subject(&state, &caller, Some(&id), now).await?;
    // Graph accepts an empty body: every field is optional.
    let empty = body
        .as_ref()
        .is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
    let input: CreatePass = if empty {
        CreatePass {
            odata_type: None,
            is_usable_once: None,
            start_date_time: None,
            lifetime_in_minutes: None,
        }
    } else {
        parse_json(&headers, body)?
    };
    if let Some(t) = &input.odata_type {
        if t != "#microsoft.graph.temporaryAccessPassAuthenticationMethod" {
            return Err(GraphError::bad_request(format!(
                "Invalid value for property '@odata.type': expected #microsoft.graph.temporaryAccessPassAuthenticationMethod, got {t:?}."
            )));
        }
    }
    let start_at = input
        .start_date_time
        .as_deref()
        .map(parse_start)
        .transpose()?;
    let request = IssueRequest {
        is_usable_once: input.is_usable_once,
        start_at,
        lifetime_in_minutes: input.lifetime_in_minutes,
    };
    let issued = issue_pass(&state, &caller, &user, &request, now).await?;
    let body = pass_json(
        &issued.pass,
        &issued.policy,
        issued.targeted,
        t,
        Some(issued.secret.expose()),
    );
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A pass just issued: the secret is here once, and nowhere else.
pub struct PassIssued {
    pub pass: TemporaryAccessPass,
    pub secret: crate::authn::tap::TapSecret,
    pub policy: TapPolicy,
    pub targeted: bool,
}

/// Issues a Temporary Access Pass to `user` under the directory's rules
/// and the pass policy, audited (a pass on an administrator is high
/// severity).
pub async fn issue_pass(
    state: &AppState,
    caller: &Caller,
    user: &User,
    request: &IssueRequest,
    now: OffsetDateTime,
) -> Result<PassIssued, GraphError> {
    let t = now.unix_timestamp();
    authorize(state, caller, user, Action::Issue, false, now).await?;
    let policy = state.taps.policy(t).await?;
    let is_targeted = targeted(state, &policy, user, now).await?;
    let issued = state
        .taps
        .issue(&state.hasher, user.id, &policy, is_targeted, request, t)
        .await
        .map_err(issue_error)?;
    let target_is_admin = !state.directory.roles_of(user.id, now).await?.is_empty();
    let mut details = vec![
        KeyValue::new("methodType", "TemporaryAccessPass"),
        KeyValue::new("methodId", issued.pass.id.clone()),
        KeyValue::new("isUsableOnce", issued.pass.is_usable_once.to_string()),
        KeyValue::new(
            "lifetimeInMinutes",
            issued.pass.lifetime_in_minutes.to_string(),
        ),
        // Microsoft rates a TAP on a privileged account as high severity.
        KeyValue::new("severity", if target_is_admin { "High" } else { "Medium" }),
    ];
    let status_reason = match &issued.replaced {
        Some(old) => {
            details.push(KeyValue::new("replacedMethodId", old.id.clone()));
            "Admin replaced temporary access pass method for user"
        }
        None => "Admin registered temporary access pass method for user",
    };
    details.push(KeyValue::new("StatusReason", status_reason));
    record_change(
        state,
        caller,
        "Admin registered security info",
        "UserManagement",
        TargetResource::user(user),
        details,
        now,
    )
    .await;
    tracing::info!(user = %user.user_principal_name.escape_debug(), method_id = %issued.pass.id, replaced = issued.replaced.is_some(), "temporary access pass issued");
    Ok(PassIssued {
        pass: issued.pass,
        secret: issued.secret,
        policy,
        targeted: is_targeted,
    })
}

async fn list_passes_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    version: ApiVersion,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let user = subject(state, caller, id, now).await?;
    authorize(state, caller, &user, Action::View, id.is_none(), now).await?;
    let policy = state.taps.policy(t).await?;
    let is_targeted = targeted(state, &policy, &user, now).await?;
    let items: Vec<Value> = state
        .taps
        .pass(user.id, t)
        .await?
        .map(|(p, _)| pass_json(&p, &policy, is_targeted, t, None))
        .into_iter()
        .collect();
    Ok(Json(json!({
        "@odata.context": format!("{}/{}/$metadata#users('{}')/authentication/temporaryAccessPassMethods", state.settings.issuer, version.0, user.id),
        "value": items,
    })))
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}/authentication/temporaryAccessPassMethods",
    operation_id = "users.passes.list",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::TemporaryAccessPassMethod>)))]
pub async fn list_passes(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    list_passes_for(&state, &caller, Some(&id), version).await
}

#[utoipa::path(get,
    path = "/v1.0/me/authentication/temporaryAccessPassMethods",
    operation_id = "me.passes.list",
    tag = "authentication methods",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::TemporaryAccessPassMethod>)))]
pub async fn my_passes(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    list_passes_for(&state, &caller, None, version).await
}

async fn get_pass_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    method_id: &str,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let user = subject(state, caller, id, now).await?;
    authorize(state, caller, &user, Action::View, id.is_none(), now).await?;
    let policy = state.taps.policy(t).await?;
    let is_targeted = targeted(state, &policy, &user, now).await?;
    match state.taps.pass(user.id, t).await? {
        Some((p, _)) if p.id == method_id => Ok(Json(pass_json(&p, &policy, is_targeted, t, None))),
        _ => Err(GraphError::not_found(method_id)),
    }
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}/authentication/temporaryAccessPassMethods/{method}",
    operation_id = "users.passes.get",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName"), ("method" = String, Path, description = "The method's id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::TemporaryAccessPassMethod)))]
pub async fn get_pass(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, method_id)): GraphPath<(String, String)>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    get_pass_for(&state, &caller, Some(&id), &method_id).await
}

#[utoipa::path(get,
    path = "/v1.0/me/authentication/temporaryAccessPassMethods/{method}",
    operation_id = "me.passes.get",
    tag = "authentication methods",
    params(("method" = String, Path, description = "The method's id")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::TemporaryAccessPassMethod)))]
pub async fn my_pass(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(method_id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    get_pass_for(&state, &caller, None, &method_id).await
}

/// Deletes a pass: an administrator's (`id` given) or the caller's own
/// (`/me`, under the removal rule).
pub async fn delete_pass_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    method_id: &str,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let user = subject(state, caller, id, now).await?;
    authorize(state, caller, &user, Action::Delete, id.is_none(), now).await?;
    if id.is_none() {
        admit_own_removal(state, caller, &user, Removal::Pass, now).await?;
    }
    if !state
        .taps
        .delete(user.id, method_id, now.unix_timestamp())
        .await?
    {
        return Err(GraphError::not_found(method_id));
    }
    // Through `/me` the user removed their own pass; say so, not "Admin".
    let (activity, reason) = if id.is_none() {
        (
            "User deleted security info",
            "User deleted temporary access pass method",
        )
    } else {
        (
            "Admin deleted security info",
            "Admin deleted temporary access pass method for user",
        )
    };
    let details = vec![
        KeyValue::new("methodType", "TemporaryAccessPass"),
        KeyValue::new("methodId", method_id.to_owned()),
        KeyValue::new("StatusReason", reason),
    ];
    record_change(
        state,
        caller,
        activity,
        "UserManagement",
        TargetResource::user(&user),
        details,
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete,
    path = "/v1.0/users/{id}/authentication/temporaryAccessPassMethods/{method}",
    operation_id = "users.passes.delete",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName"), ("method" = String, Path, description = "The method's id")),
    responses((status = 204, description = "Done")))]
pub async fn delete_pass(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath((id, method_id)): GraphPath<(String, String)>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    delete_pass_for(&state, &caller, Some(&id), &method_id).await
}

#[utoipa::path(delete,
    path = "/v1.0/me/authentication/temporaryAccessPassMethods/{method}",
    operation_id = "me.passes.delete",
    tag = "authentication methods",
    params(("method" = String, Path, description = "The method's id")),
    responses((status = 204, description = "Done")))]
pub async fn delete_my_pass(
    State(state): State<AppState>,
    headers: HeaderMap,
    GraphPath(method_id): GraphPath<String>,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    delete_pass_for(&state, &caller, None, &method_id).await
}

// --- authentication/methods ----------------------------------------------

/// The rule on removing one's own method (the same as the security-info
/// page's): never the only one, and the last strong one only after a fresh
/// strong sign-in — judged on the sign-in the caller's token rests on.
pub async fn admit_own_removal(
    state: &AppState,
    caller: &Caller,
    user: &User,
    removing: Removal,
    now: OffsetDateTime,
) -> Result<(), GraphError> {
    let (Caller::User { sign_in, .. } | Caller::Console { sign_in, .. }) = caller else {
        return Ok(());
    };
    let inventory = crate::web::signin::verifier(state)
        .inventory(&state.passkeys, &state.passkey_policy, user, now)
        .await
        .map_err(|e| {
            GraphError::internal("methods.inventory", &e.to_string(), e.is_unavailable())
        })?;
    admit_removal(
        inventory,
        removing,
        &sign_in.methods,
        sign_in.auth_time,
        now.unix_timestamp(),
        state.settings.registration_window,
    )
    .map_err(|refusal| GraphError::forbidden(refusal.message()))
}

/// A user's registered methods, as an administrator sees them (no secret).
pub struct UserMethods {
    pub password: bool,
    pub pass: Option<PassView>,
    pub passkeys: Vec<crate::authn::passkey::StoredPasskey>,
}

/// A pass with what decides whether it can be used now.
pub struct PassView {
    pub pass: TemporaryAccessPass,
    pub policy: TapPolicy,
    pub targeted: bool,
}

impl PassView {
    pub fn usability(&self, now: i64) -> crate::authn::tap::UsabilityReason {
        self.pass.usability(&self.policy, self.targeted, now)
    }
}

/// Reads `user`'s methods; the caller has been authorized to read them.
async fn read_methods(
    state: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> Result<UserMethods, GraphError> {
    let t = now.unix_timestamp();
    let password = state.directory.password_hash(user.id, now).await?.is_some();
    let passkeys = state
        .passkeys
        .list(user.id, t)
        .await
        .map_err(|e| GraphError::internal(e.code(), &e.to_string(), false))?;
    let pass = match state.taps.pass(user.id, t).await? {
        Some((pass, _)) => {
            let policy = state.taps.policy(t).await?;
            let targeted = targeted(state, &policy, user, now).await?;
            Some(PassView {
                pass,
                policy,
                targeted,
            })
        }
        None => None,
    };
    Ok(UserMethods {
        password,
        pass,
        passkeys,
    })
}

/// `user`'s methods for an administrator, under the directory's rules.
pub async fn methods_of(
    state: &AppState,
    caller: &Caller,
    user: &User,
    now: OffsetDateTime,
) -> Result<UserMethods, GraphError> {
    caller
        .authorize_on(state, UserAction::ReadMethods, user, now)
        .await?;
    read_methods(state, user, now).await
}

async fn methods_for(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    version: ApiVersion,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let user = subject(state, caller, id, now).await?;
    let action = if id.is_some() {
        UserAction::ReadMethods
    } else {
        UserAction::ViewOwnMethods
    };
    caller.authorize_on(state, action, &user, now).await?;
    let methods = read_methods(state, &user, now).await?;
    let mut items = Vec::new();
    if methods.password {
        items.push(json!({
            "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
            "id": PASSWORD_METHOD_ID,
            "password": null,
            "createdDateTime": null,
        }));
    }
    for p in &methods.passkeys {
        items.push(super::fido2::fido2_json(
            p,
            &state.settings.passkeys.authenticators,
        ));
    }
    if let Some(pass) = &methods.pass {
        items.push(pass_json(&pass.pass, &pass.policy, pass.targeted, t, None));
    }
    Ok(Json(json!({
        "@odata.context": format!("{}/{}/$metadata#users('{}')/authentication/methods", state.settings.issuer, version.0, user.id),
        "value": items,
    })))
}

#[utoipa::path(get,
    path = "/v1.0/users/{id}/authentication/methods",
    operation_id = "users.methods.list",
    tag = "authentication methods",
    params(("id" = String, Path, description = "The user's object id or userPrincipalName")),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::AuthenticationMethod>)))]
pub async fn list_methods(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    GraphPath(id): GraphPath<String>,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    methods_for(&state, &caller, Some(&id), version).await
}

#[utoipa::path(get,
    path = "/v1.0/me/authentication/methods",
    operation_id = "me.methods.list",
    tag = "authentication methods",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::AuthenticationMethod>)))]
pub async fn my_methods(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    methods_for(&state, &caller, None, version).await
}

// --- the TAP policy --------------------------------------------------------

/// The group ids among method `targets` (`all_users` is no group).
pub(crate) fn target_ids(targets: &[MethodTarget]) -> Vec<&str> {
    targets
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| *id != crate::authn::tap::ALL_USERS)
        .collect()
}

/// Every group a policy target names must exist (a typo must not silently
/// exclude, or fail to include, anyone): `fields` pairs a Graph property
/// with the group ids it names; the first missing group is a 400 naming
/// the property.
pub(crate) async fn check_target_groups(
    state: &AppState,
    fields: &[(&str, Vec<&str>)],
    now: OffsetDateTime,
) -> Result<(), GraphError> {
    for (field, ids) in fields {
        for id in ids {
            let exists = match crate::ids::GroupId::parse(id) {
                Some(g) => state.directory.group(g, now).await?.is_some(),
                None => false,
            };
            if !exists {
                return Err(GraphError::invalid_property(
                    field,
                    format!("Invalid value for property '{field}': group {id} does not exist."),
                ));
            }
        }
    }
    Ok(())
}

fn policy_json(state: &AppState, version: ApiVersion, p: &TapPolicy) -> Value {
    let mut out = tap_configuration_json(p);
    out["@odata.context"] = json!(format!(
        "{}/{}/$metadata#authenticationMethodConfigurations/$entity",
        state.settings.issuer, version.0
    ));
    out
}

/// The pass policy as Graph's `temporaryAccessPassAuthenticationMethodConfiguration`.
pub(crate) fn tap_configuration_json(p: &TapPolicy) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
        "id": "TemporaryAccessPass",
        "state": match p.state { MethodState::Enabled => "enabled", MethodState::Disabled => "disabled" },
        "defaultLifetimeInMinutes": p.default_lifetime_in_minutes,
        "defaultLength": p.default_length,
        "minimumLifetimeInMinutes": p.minimum_lifetime_in_minutes,
        "maximumLifetimeInMinutes": p.maximum_lifetime_in_minutes,
        "isUsableOnce": p.is_usable_once,
        "includeTargets": p.include_targets,
        "excludeTargets": p.exclude_targets,
    })
}

#[utoipa::path(get,
    path = "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass",
    operation_id = "tapPolicy.get",
    tag = "policies",
    responses((status = 200, description = "OK", body = crate::openapi::schemas::TemporaryAccessPassConfiguration)))]
pub async fn get_policy(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&POLICY_READ)?;
    Ok(Json(policy_json(
        &state,
        version,
        &state.taps.policy(now.unix_timestamp()).await?,
    )))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPatch {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: Option<String>,
    #[schema(value_type = Option<crate::openapi::schemas::MethodState>)]
    pub state: Option<MethodState>,
    pub default_lifetime_in_minutes: Option<u32>,
    pub default_length: Option<u32>,
    pub minimum_lifetime_in_minutes: Option<u32>,
    pub maximum_lifetime_in_minutes: Option<u32>,
    pub is_usable_once: Option<bool>,
    #[schema(value_type = Option<Vec<crate::openapi::schemas::MethodTarget>>)]
    pub include_targets: Option<Vec<MethodTarget>>,
    #[schema(value_type = Option<Vec<crate::openapi::schemas::MethodTarget>>)]
    pub exclude_targets: Option<Vec<MethodTarget>>,
}

#[utoipa::path(patch,
    path = "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass",
    operation_id = "tapPolicy.update",
    tag = "policies",
    request_body(content = PolicyPatch, content_type = "application/json"),
    responses((status = 204, description = "Done")))]
pub async fn update_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&POLICY_WRITE)?;
    let patch: PolicyPatch = parse_json(&headers, body)?;
    update_tap_policy(&state, &caller, patch, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The pass policy now (anyone who may read policies).
pub async fn tap_policy(
    state: &AppState,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<TapPolicy, GraphError> {
    caller.require(&POLICY_READ)?;
    Ok(state.taps.policy(now.unix_timestamp()).await?)
}

/// Applies `patch` to the pass policy: every value is checked (the first
/// broken rule is a 400 whose `target` names the property) before it is
/// stored, audited with before and after.
pub async fn update_tap_policy(
    state: &AppState,
    caller: &Caller,
    patch: PolicyPatch,
    now: OffsetDateTime,
) -> Result<(), GraphError> {
    caller.require(&POLICY_WRITE)?;
    let t = now.unix_timestamp();
    if let Some(ty) = &patch.odata_type {
        if ty != "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration" {
            return Err(GraphError::bad_request(format!(
                "Invalid value for property '@odata.type': expected #microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration, got {ty:?}."
            )));
        }
    }
    if patch
        .id
        .as_deref()
        .is_some_and(|id| id != "TemporaryAccessPass")
    {
        return Err(GraphError::bad_request(
            "Invalid value for property 'id': it must be TemporaryAccessPass.",
        ));
    }
    let before = state.taps.policy(t).await?;
    let mut p = before.clone();
    if let Some(v) = patch.state {
        p.state = v;
    }
    if let Some(v) = patch.default_lifetime_in_minutes {
        p.default_lifetime_in_minutes = v;
    }
    if let Some(v) = patch.default_length {
        p.default_length = v;
    }
    if let Some(v) = patch.minimum_lifetime_in_minutes {
        p.minimum_lifetime_in_minutes = v;
    }
    if let Some(v) = patch.maximum_lifetime_in_minutes {
        p.maximum_lifetime_in_minutes = v;
    }
    if let Some(v) = patch.is_usable_once {
        p.is_usable_once = v;
    }
    if let Some(v) = patch.include_targets {
        p.include_targets = v;
    }
    if let Some(v) = patch.exclude_targets {
        p.exclude_targets = v;
    }
    p.validate().map_err(|v| {
        GraphError::invalid_property(
            v.field,
            format!("Invalid value for property '{}': {}.", v.field, v.message),
        )
    })?;
    check_target_groups(
        state,
        &[
            ("includeTargets", target_ids(&p.include_targets)),
            ("excludeTargets", target_ids(&p.exclude_targets)),
        ],
        now,
    )
    .await?;
    state.taps.set_policy(&p).await?;
    super::methods_policy::audit_change(
        state,
        caller,
        super::methods_policy::policy_target("TemporaryAccessPass", "Temporary Access Pass"),
        &before,
        &p,
        now,
    )
    .await;
    Ok(())
}
