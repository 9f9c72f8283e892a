//! Users: the list and search, a new user, a user's page (sessions,
//! sign-in, deletion, password, per-user MFA, authentication methods) and
//! **Add authentication method** → **Temporary Access Pass**.

use super::{Chrome, Console, Form, Refusal, done, enc, notice_text, query_of, refused, show};
use crate::app::AppState;
use crate::authn::tap::{IssueRequest, UsabilityReason};
use crate::directory::authority::{UserAction, access};
use crate::directory::{PerUserMfaState, User};
use crate::graph::{fido2, methods, requirements, users as ops};
use crate::web::error::PageError;
use crate::web::when;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

const PAGE: usize = 25;

pub struct UserRow {
    pub id: String,
    pub display_name: String,
    pub upn: String,
    pub enabled: bool,
    pub roles: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    search: String,
    rows: Vec<UserRow>,
    /// Back to the first page (pages are read forward from a position).
    first: Option<String>,
    next: Option<String>,
    can_create: bool,
    notice: Option<&'static str>,
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let query = query_of(q.as_deref());
    let search = query.get("search").unwrap_or("").trim().to_owned();
    let after = query.get("after").filter(|a| !a.is_empty());
    console
        .caller
        .require(&access::USERS_READ)
        .map_err(refused)?;
    // Read through the userPrincipalName index a page at a time (one more
    // than shown, to know whether there is a next page): never the whole
    // directory.
    let mut users = state
        .directory
        .users_by_upn(&search, after, PAGE + 1, now)
        .await?;
    let more = users.len() > PAGE;
    users.truncate(PAGE);
    let last = users.last().map(|(key, _)| key.clone());
    let mut rows = Vec::with_capacity(users.len());
    for (_, u) in users {
        let roles = state.directory.roles_of(u.id, now).await?;
        rows.push(UserRow {
            roles: roles
                .iter()
                .map(|r| r.display_name())
                .collect::<Vec<_>>()
                .join(", "),
            id: u.id.to_string(),
            display_name: u.display_name,
            upn: u.user_principal_name,
            enabled: u.account_enabled,
        });
    }
    let link = |after: Option<&str>| {
        let mut l = format!("/admin/users?search={}", enc(&search));
        if let Some(a) = after {
            l.push_str(&format!("&after={}", enc(a)));
        }
        l
    };
    Ok(show(
        StatusCode::OK,
        &UsersPage {
            chrome: console.chrome("users"),
            first: after.is_some().then(|| link(None)),
            next: last.filter(|_| more).map(|k| link(Some(&k))),
            search,
            rows,
            can_create: console.may(&access::USERS_WRITE),
            notice: notice_text(query.get("done")),
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/user_new.html")]
struct NewUserPage {
    chrome: Chrome,
    display_name: String,
    upn: String,
    alert: Option<String>,
    field: Option<String>,
}

pub async fn new_form(console: Console) -> Result<Response, PageError> {
    console
        .caller
        .require(&access::USERS_WRITE)
        .map_err(refused)?;
    Ok(show(
        StatusCode::OK,
        &NewUserPage {
            chrome: console.chrome("users"),
            display_name: String::new(),
            upn: String::new(),
            alert: None,
            field: None,
        },
    ))
}

pub async fn create(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let display_name = form.get("displayName").unwrap_or("").to_owned();
    let upn = form.get("userPrincipalName").unwrap_or("").to_owned();
    let input = ops::CreateUser {
        user_principal_name: upn.clone(),
        display_name: display_name.clone(),
        account_enabled: true,
        mail: None,
        password_profile: form
            .get("password")
            .map(|p| ops::PasswordProfile::new(p.to_owned())),
    };
    match ops::create_user(&state, &console.caller, input, state.clock.now()).await {
        Ok(user) => Ok(done(&format!("/admin/users/{}", user.id), "created")),
        Err(e) => {
            let r = Refusal::from(e);
            Ok(show(
                r.status,
                &NewUserPage {
                    chrome: console.chrome("users"),
                    display_name,
                    upn,
                    alert: Some(r.message),
                    field: r.field,
                },
            ))
        }
    }
}

pub struct MethodRow {
    pub kind: &'static str,
    pub detail: String,
    /// The form value that deletes it, when the rules allow deleting it.
    pub delete: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    chrome: Chrome,
    user: User,
    id: String,
    created: String,
    roles: String,
    mfa: Option<&'static str>,
    can_mfa: bool,
    can_revoke: bool,
    can_enable: bool,
    can_delete: bool,
    can_password: bool,
    can_issue: bool,
    methods: Option<Vec<MethodRow>>,
    methods_refused: Option<String>,
    notice: Option<&'static str>,
    alert: Option<String>,
}

/// The user in the path, or a 404 page.
async fn target(state: &AppState, id: &str) -> Result<User, PageError> {
    state
        .directory
        .find_user(id, state.clock.now())
        .await?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "Not found", "No such user."))
}

async fn user_page(
    state: &AppState,
    console: &Console,
    user: User,
    notice: Option<&'static str>,
    alert: Option<Refusal>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let t = now.unix_timestamp();
    let caller = &console.caller;
    caller.require(&access::USERS_READ).map_err(refused)?;
    let target_roles = state.directory.roles_of(user.id, now).await?;
    let mfa = requirements::mfa_state_of(state, caller, &user, now)
        .await
        .ok()
        .map(requirements::state_name);
    let (methods, methods_refused) = match methods::methods_of(state, caller, &user, now).await {
        Ok(m) => {
            let mut rows = Vec::new();
            if let Some(p) = &m.pass {
                let reason = p.usability(t);
                rows.push(MethodRow {
                    kind: "Temporary Access Pass",
                    detail: format!(
                        "{} · {} · {}",
                        if p.pass.is_usable_once {
                            "One-time"
                        } else {
                            "Multi-use"
                        },
                        when::span(p.pass.start_at, p.pass.end_at(), t),
                        usability_words(reason)
                    ),
                    delete: console
                        .may_on(UserAction::DeleteTap, &user, &target_roles)
                        .then(|| format!("tap:{}", p.pass.id)),
                });
            }
            for k in &m.passkeys {
                rows.push(MethodRow {
                    kind: "Passkey",
                    detail: format!(
                        "{} · added {}{}",
                        k.display_name,
                        when::readable(k.created_at, t),
                        authenticator(&k.aaguid, &state.settings.passkeys.authenticators)
                    ),
                    delete: console
                        .may_on(UserAction::DeletePasskey, &user, &target_roles)
                        .then(|| format!("passkey:{}", k.id)),
                });
            }
            if m.password {
                rows.push(MethodRow {
                    kind: "Password",
                    detail: "Set".into(),
                    delete: None,
                });
            }
            (Some(rows), None)
        }
        Err(e) => (None, Some(Refusal::from(e).message)),
    };
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    let page = UserPage {
        chrome: console.chrome("users"),
        id: user.id.to_string(),
        created: when::readable(user.created_date_time.unix_timestamp(), t),
        roles: target_roles
            .iter()
            .map(|r| r.display_name())
            .collect::<Vec<_>>()
            .join(", "),
        mfa,
        can_mfa: console.may_on(UserAction::SetMfaState, &user, &target_roles),
        can_revoke: console.may_on(UserAction::RevokeSessions, &user, &target_roles),
        can_enable: console.may_on(UserAction::SetAccountEnabled, &user, &target_roles),
        can_delete: console.may_on(UserAction::Delete, &user, &target_roles),
        can_password: console.may_on(UserAction::ResetPassword, &user, &target_roles),
        can_issue: console.may_on(UserAction::IssueTap, &user, &target_roles),
        methods,
        methods_refused,
        notice,
        alert: alert.map(|a| a.message),
        user,
    };
    Ok(show(status, &page))
}

fn usability_words(r: UsabilityReason) -> &'static str {
    match r {
        UsabilityReason::EnabledByPolicy => "usable",
        UsabilityReason::DisabledByPolicy => "not usable: the pass policy is off for this user",
        UsabilityReason::Expired => "expired",
        UsabilityReason::NotYetValid => "not valid yet",
        UsabilityReason::OneTimeUsed => "used",
    }
}

/// The authenticator's model: its name when the AAGUID is a known one,
/// else the AAGUID (nothing for a zero AAGUID: the authenticator did not
/// say).
fn authenticator(aaguid: &str, names: &crate::authn::authenticators::Authenticators) -> String {
    let Ok(id) = uuid::Uuid::parse_str(aaguid) else {
        return String::new();
    };
    match names.name(id) {
        Some(name) => format!(" · {name} (AAGUID {id})"),
        None if id.is_nil() => String::new(),
        None => format!(" · AAGUID {id}"),
    }
}

pub async fn user(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let user = target(&state, &id).await?;
    let notice = notice_text(query_of(q.as_deref()).get("done"));
    user_page(&state, &console, user, notice, None).await
}

/// Every button on a user's page posts here with `action` naming it.
pub async fn act(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, PageError> {
    let path = format!("/admin/users/{}", enc(&id));
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let user = target(&state, &id).await?;
    let now = state.clock.now();
    let caller = &console.caller;
    let action = form.get("action").unwrap_or("");
    let outcome = match action {
        "revoke" => ops::revoke_sessions(&state, caller, user.clone(), now)
            .await
            .map(|()| "revoked"),
        "disable" | "enable" => {
            let patch = ops::UpdateUser {
                account_enabled: Some(action == "enable"),
                ..Default::default()
            };
            ops::update_user(&state, caller, &user, patch, now)
                .await
                .map(|()| {
                    if action == "enable" {
                        "enabled"
                    } else {
                        "disabled"
                    }
                })
        }
        "delete" => match ops::delete_user(&state, caller, &user, now).await {
            Ok(()) => return Ok(done("/admin/users", "deleted")),
            Err(e) => Err(e),
        },
        "password" => {
            let patch = ops::UpdateUser {
                password_profile: Some(ops::PasswordProfile::new(
                    form.get("password").unwrap_or("").to_owned(),
                )),
                ..Default::default()
            };
            ops::update_user(&state, caller, &user, patch, now)
                .await
                .map(|()| "password")
        }
        "mfa" => {
            let mfa = match form.get("perUserMfaState") {
                Some("enabled") => PerUserMfaState::Enabled,
                Some("enforced") => PerUserMfaState::Enforced,
                _ => PerUserMfaState::Disabled,
            };
            requirements::set_mfa_state(&state, caller, &user, mfa, now)
                .await
                .map(|()| "mfa")
        }
        "delete-method" => {
            let method = form.get("method").unwrap_or("");
            let uid = user.id.to_string();
            let result = if let Some(pass) = method.strip_prefix("tap:") {
                methods::delete_pass_for(&state, caller, Some(&uid), pass)
                    .await
                    .map(|_| ())
            } else if let Some(key) = method.strip_prefix("passkey:") {
                fido2::delete_for(&state, caller, Some(&uid), key)
                    .await
                    .map(|_| ())
            } else {
                return Err(PageError::bad_request("Unknown authentication method."));
            };
            result.map(|()| "deleted")
        }
        _ => return Err(PageError::bad_request("Unknown action.")),
    };
    match outcome {
        Ok(notice) => Ok(done(&path, notice)),
        Err(e) => {
            let user = target(&state, &id).await?;
            user_page(&state, &console, user, None, Some(Refusal::from(e))).await
        }
    }
}

#[derive(Template)]
#[template(path = "admin/method_new.html")]
struct NewMethodPage {
    chrome: Chrome,
    user: User,
    id: String,
    lifetime: String,
    start: String,
    one_time: bool,
    alert: Option<String>,
    field: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/pass_issued.html")]
struct PassIssuedPage {
    chrome: Chrome,
    user: User,
    id: String,
    secret: String,
    validity: String,
    one_time: bool,
}

pub async fn new_method(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let user = target(&state, &id).await?;
    let policy = state
        .taps
        .policy(state.clock.now().unix_timestamp())
        .await?;
    Ok(show(
        StatusCode::OK,
        &NewMethodPage {
            chrome: console.chrome("users"),
            id: user.id.to_string(),
            user,
            lifetime: policy.default_lifetime_in_minutes.to_string(),
            start: String::new(),
            one_time: policy.is_usable_once,
            alert: None,
            field: None,
        },
    ))
}

/// `<input type="datetime-local">` (taken as UTC, as the page says).
fn parse_local(s: &str) -> Option<i64> {
    let with_seconds =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(s, &with_seconds)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &minutes))
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

pub async fn add_method(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let user = target(&state, &id).await?;
    let now = state.clock.now();
    let lifetime_text = form.get("lifetime").unwrap_or("").to_owned();
    let start_text = form.get("start").unwrap_or("").to_owned();
    let one_time = form.checked_box("oneTime");
    let again = |alert: String, field: Option<&str>, status: StatusCode| {
        show(
            status,
            &NewMethodPage {
                chrome: console.chrome("users"),
                id: user.id.to_string(),
                user: user.clone(),
                lifetime: lifetime_text.clone(),
                start: start_text.clone(),
                one_time,
                alert: Some(alert),
                field: field.map(str::to_owned),
            },
        )
    };
    if form.get("method") != Some("temporaryAccessPass") {
        return Ok(again(
            "Choose a method to add.".into(),
            Some("method"),
            StatusCode::BAD_REQUEST,
        ));
    }
    let lifetime = match form.get("lifetime").map(str::parse::<u32>) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => {
            return Ok(again(
                "Activation duration must be a whole number of minutes.".into(),
                Some("lifetimeInMinutes"),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let start_at = match form.get("start").map(parse_local) {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            return Ok(again(
                "Delayed start must be a date and time.".into(),
                Some("startDateTime"),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let request = IssueRequest {
        is_usable_once: Some(one_time),
        start_at,
        lifetime_in_minutes: lifetime,
    };
    match methods::issue_pass(&state, &console.caller, &user, &request, now).await {
        Ok(issued) => {
            let t = now.unix_timestamp();
            Ok(show(
                StatusCode::CREATED,
                &PassIssuedPage {
                    chrome: console.chrome("users"),
                    id: user.id.to_string(),
                    user: user.clone(),
                    secret: issued.secret.expose().to_owned(),
                    validity: when::span(issued.pass.start_at, issued.pass.end_at(), t),
                    one_time: issued.pass.is_usable_once,
                },
            ))
        }
        Err(e) => {
            let r = Refusal::from(e);
            Ok(again(r.message, r.field.as_deref(), r.status))
        }
    }
}
