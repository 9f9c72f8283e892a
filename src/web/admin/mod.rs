//! The admin console at `/admin` (DESIGN §2.8): the helpdesk's and the
//! security administrator's pages.
//!
//! Administrators sign in through the ordinary sign-in pages; the console
//! is an application under conditional access like any other
//! ([`super::signin::CONSOLE_APP`]). Each handler parses its form, asks the
//! same operation the Graph API calls (`crate::graph::*::…` with a
//! [`Caller::Console`]), and renders. No rule lives here: whether a control
//! is shown is asked of the same rule functions
//! ([`authority::permits`], [`authority::check`]) that decide whether the
//! action succeeds, so a Global Reader sees no control that changes
//! anything, and a refused request shows the rule's own words.
//!
//! Plain HTML forms with the session's CSRF token; the console keeps no
//! state in the process (everything is in the store), so it works on both
//! backends and behind a load balancer.

mod directory;
mod logs;
mod policy;
mod users;

use super::error::{PageError, render};
pub use super::form::Form;
use super::signin::{FlowTarget, current_session, gate_and_go, new_correlation_id, start_flow};
use crate::app::AppState;
use crate::directory::User;
use crate::directory::authority::{self, Access};
use crate::directory::roles::BuiltinRole;
use crate::graph::auth::Caller;
use crate::graph::error::GraphError;
use crate::web::bearer::SignInFacts;
use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::collections::BTreeSet;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(home))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/new", get(users::new_form))
        .route("/admin/users/{id}", get(users::user).post(users::act))
        .route(
            "/admin/users/{id}/methods/new",
            get(users::new_method).post(users::add_method),
        )
        .route(
            "/admin/groups",
            get(directory::groups).post(directory::create_group),
        )
        .route("/admin/groups/new", get(directory::new_group))
        .route(
            "/admin/groups/{id}",
            get(directory::group).post(directory::group_members),
        )
        .route(
            "/admin/roles",
            get(directory::roles).post(directory::role_change),
        )
        .route("/admin/methods", get(policy::methods))
        .route(
            "/admin/methods/tap",
            get(policy::tap_policy).post(policy::save_tap_policy),
        )
        .route("/admin/ca", get(policy::ca_list).post(policy::ca_create))
        .route("/admin/ca/new", get(policy::ca_new))
        .route(
            "/admin/ca/import",
            get(policy::ca_import_form).post(policy::ca_import),
        )
        .route(
            "/admin/ca/{id}",
            get(policy::ca_show).post(policy::ca_change),
        )
        .route(
            "/admin/what-if",
            get(policy::what_if_form).post(policy::what_if_run),
        )
        .route("/admin/sign-ins", get(logs::sign_ins))
        .route("/admin/audit", get(logs::audits))
}

/// The signed-in administrator, as the rules see them.
pub struct Console {
    pub caller: Caller,
    pub user: User,
    pub roles: BTreeSet<BuiltinRole>,
    pub csrf: String,
}

impl Console {
    /// Whether the rules allow an operation that needs `access`.
    pub fn may(&self, access: &Access) -> bool {
        authority::permits(&self.caller.actor(), access).is_ok()
    }

    /// Whether the rules allow `action` on `target` (whose roles are given).
    pub fn may_on(
        &self,
        action: authority::UserAction,
        target: &User,
        target_roles: &BTreeSet<BuiltinRole>,
    ) -> bool {
        let subject = authority::Subject {
            id: target.id,
            roles: target_roles,
        };
        authority::check(&self.caller.actor(), action, &subject).is_ok()
    }

    /// The page frame: who is signed in, which section is open.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            section,
            who: self.user.display_name.clone(),
            roles: self
                .roles
                .iter()
                .map(|r| r.display_name())
                .collect::<Vec<_>>()
                .join(", "),
            csrf: self.csrf.clone(),
        }
    }
}

/// Every console handler takes the [`Console`]: the request's path is where
/// a sign-in (or step-up) started here comes back to, so every console
/// path answers GET.
impl axum::extract::FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let super::ClientIp(ip) = match super::ClientIp::from_request_parts(parts, state).await {
            Ok(ip) => ip,
            Err(never) => match never {},
        };
        let path = parts.uri.path().to_owned();
        match enter(state, &parts.headers, ip, &path).await {
            Ok(Ok(console)) => Ok(console),
            Ok(Err(response)) => Err(response),
            Err(page) => Err(page.into_response()),
        }
    }
}

/// What every console page shows around its content.
pub struct Chrome {
    pub section: &'static str,
    pub who: String,
    pub roles: String,
    pub csrf: String,
}

impl Chrome {
    /// `aria-current` for the navigation link of `section`.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

#[derive(Template)]
#[template(path = "admin/no_role.html")]
struct NoRolePage<'a> {
    display_name: &'a str,
}

/// Opens the console for a page at `return_to`: the signed-in user with a
/// directory role, past conditional access; otherwise the response that
/// signs them in, asks for more, or says a role is needed.
async fn enter(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    return_to: &str,
) -> Result<Result<Console, Response>, PageError> {
    let now = state.clock.now();
    let target = FlowTarget::Console {
        return_to: return_to.to_owned(),
    };
    let Some((digest, session, user)) = current_session(state, headers, now).await? else {
        return Ok(Err(start_flow(
            state, headers, ip, target, None, false, None,
        )
        .await));
    };
    let gated = gate_and_go(
        state,
        headers,
        &target,
        &session,
        &digest,
        &user,
        ip,
        now,
        super::signin::Arrival::Session,
        new_correlation_id().as_deref(),
    )
    .await?;
    if gated.failure.is_some() {
        return Ok(Err(gated.response));
    }
    let roles = state.directory.roles_of(user.id, now).await?;
    if roles.is_empty() {
        return Ok(Err(render(
            StatusCode::FORBIDDEN,
            &NoRolePage {
                display_name: &user.display_name,
            },
        )));
    }
    let caller = Caller::Console {
        user: user.clone(),
        roles: roles.clone(),
        sign_in: SignInFacts {
            methods: session.methods.clone(),
            auth_time: session.auth_time,
        },
    };
    Ok(Ok(Console {
        caller,
        user,
        roles,
        csrf: session.csrf,
    }))
}

/// A refusal or failure of an operation, as a console page shows it: the
/// rule's message, the status, and the property it is about.
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl From<GraphError> for Refusal {
    fn from(e: GraphError) -> Self {
        // Next to its field, "Invalid value for property 'x': must be …"
        // reads as "Must be …": the field already says which.
        let message = match &e.target {
            Some(property) => {
                let prefixes = [
                    format!("Invalid value for property '{property}': "),
                    format!("Invalid value specified for property '{property}': "),
                ];
                match prefixes
                    .iter()
                    .find_map(|p| e.message.strip_prefix(p.as_str()))
                {
                    Some(rest) => capitalized(rest),
                    None => e.message.clone(),
                }
            }
            None => e.message.clone(),
        };
        let message = match &e.request_id {
            Some(id) => format!("{message} (request id {id})"),
            None => message,
        };
        Refusal {
            status: e.status,
            message,
            field: e.target,
        }
    }
}

impl From<PageError> for Refusal {
    fn from(e: PageError) -> Self {
        Refusal {
            status: e.status,
            message: e.message,
            field: None,
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An operation refused before a page could be drawn: the error page,
/// titled "Not allowed" for a refusal of the rules.
pub fn refused(e: GraphError) -> PageError {
    let r = Refusal::from(e);
    let title = if r.status == StatusCode::FORBIDDEN {
        "Not allowed"
    } else {
        "Admin console"
    };
    PageError::new(r.status, title, r.message)
}

/// Renders `page` with `status`.
pub fn show<T: Template>(status: StatusCode, page: &T) -> Response {
    render(status, page)
}

/// After a change: back to `to` (POST, redirect, GET) with a notice key.
pub fn done(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={notice}")).into_response()
}

/// `?done=` keys and what they say (never reflected text).
pub fn notice_text(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted.",
        "revoked" => "Sessions revoked: the user must sign in again everywhere.",
        "enabled" => "Sign-in enabled.",
        "disabled" => "Sign-in disabled.",
        "password" => "Password reset. The user's sessions were ended.",
        "mfa" => "Per-user MFA state saved.",
        "added" => "Added.",
        "removed" => "Removed.",
        _ => return None,
    })
}

/// `/admin`: the first page an administrator needs.
async fn home() -> Response {
    Redirect::to("/admin/users").into_response()
}

/// Opens a path segment (an id) for display in links.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The query string of a GET page, parsed leniently.
pub fn query_of(raw: Option<&str>) -> Form {
    Form::parse(raw.unwrap_or("").as_bytes())
}
