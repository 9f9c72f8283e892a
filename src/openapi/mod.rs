//! The OpenAPI 3.1 description at `GET /openapi.json` (DESIGN §2.10): the
//! Graph API and the OAuth 2.0 / OpenID Connect endpoints.
//!
//! Paths come from the `#[utoipa::path]` attribute on each handler. What an
//! operation needs (its Graph permissions, and the roles a signed-in user
//! must hold) is written in from the same tables the handlers check
//! ([`crate::directory::authority`]), so the description cannot promise a
//! permission the code does not accept. `tests/it/openapi.rs` checks the
//! description against the routers both ways and the live responses against
//! the schemas; `.ci/run` fuzzes the API from it with schemathesis.

pub mod schemas;

use crate::app::AppState;
use crate::directory::authority::{Access, UserAction, access};
use crate::directory::roles::BuiltinRole;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, ResponseBuilder, Server};
use utoipa::{IntoParams, Modify, OpenApi};

/// The OData query options a collection accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the query string; `graph::ListQuery` parses it
pub struct ListParams {
    /// Page size, 1–999 (default 100).
    #[param(rename = "$top", minimum = 1, maximum = 999)]
    top: Option<u32>,
    /// One clause `property eq 'value'`, e.g. `userPrincipalName eq 'ada@example.com'`.
    #[param(rename = "$filter")]
    filter: Option<String>,
    /// The opaque token of the next page, from `@odata.nextLink`.
    #[param(rename = "$skiptoken", max_length = 512)]
    skip_token: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatepass",
        description = "The Graph-compatible management API and the OAuth 2.0 / OpenID Connect \
                       endpoints of Gatepass. Every `/v1.0/` path is also served under `/beta/`. \
                       Graph calls take an access token whose audience is `{issuer}/graph`: an \
                       application token (client credentials) with application permissions, or \
                       a user's token with delegated scopes, where the user's directory roles \
                       also decide (each operation says which).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::graph::batch::batch,
        crate::graph::users::list,
        crate::graph::users::create,
        crate::graph::users::get,
        crate::graph::users::update,
        crate::graph::users::remove,
        crate::graph::users::revoke_sign_in_sessions,
        crate::graph::users::me,
        crate::graph::users::revoke_my_sessions,
        crate::graph::methods::list_methods,
        crate::graph::methods::my_methods,
        crate::graph::methods::list_passes,
        crate::graph::methods::create_pass,
        crate::graph::methods::get_pass,
        crate::graph::methods::delete_pass,
        crate::graph::methods::my_passes,
        crate::graph::methods::my_pass,
        crate::graph::methods::delete_my_pass,
        crate::graph::methods::get_policy,
        crate::graph::methods::update_policy,
        crate::graph::methods_policy::get_methods_policy,
        crate::graph::methods_policy::update_methods_policy,
        crate::graph::methods_policy::get_fido2,
        crate::graph::methods_policy::update_fido2,
        crate::graph::requirements::get,
        crate::graph::requirements::update,
        crate::graph::fido2::list,
        crate::graph::fido2::get,
        crate::graph::fido2::delete,
        crate::graph::fido2::list_mine,
        crate::graph::fido2::get_mine,
        crate::graph::fido2::delete_mine,
        crate::graph::groups::list,
        crate::graph::groups::create,
        crate::graph::groups::get,
        crate::graph::groups::members,
        crate::graph::groups::add_member,
        crate::graph::groups::remove_member,
        crate::graph::roles::list,
        crate::graph::roles::create,
        crate::graph::roles::get,
        crate::graph::roles::remove,
        crate::graph::roles::definitions,
        crate::graph::conditional_access::list_policies,
        crate::graph::conditional_access::create_policy,
        crate::graph::conditional_access::get_policy,
        crate::graph::conditional_access::update_policy,
        crate::graph::conditional_access::delete_policy,
        crate::graph::conditional_access::list_locations,
        crate::graph::conditional_access::create_location,
        crate::graph::conditional_access::get_location,
        crate::graph::conditional_access::update_location,
        crate::graph::conditional_access::delete_location,
        crate::graph::conditional_access::list_strengths,
        crate::graph::conditional_access::create_strength,
        crate::graph::conditional_access::get_strength,
        crate::graph::conditional_access::update_strength,
        crate::graph::conditional_access::delete_strength,
        crate::graph::combination_configurations::list_configurations,
        crate::graph::combination_configurations::create_configuration,
        crate::graph::combination_configurations::get_configuration,
        crate::graph::combination_configurations::update_configuration,
        crate::graph::combination_configurations::delete_configuration,
        crate::graph::conditional_access::evaluate,
        crate::graph::audit_logs::sign_ins,
        crate::graph::audit_logs::directory_audits,
        crate::web::discovery_document,
        crate::web::jwks,
        crate::web::signin::authorize_get,
        crate::web::signin::authorize_post,
        crate::web::token::token,
        crate::web::device::device_authorization,
        crate::web::userinfo::userinfo_get,
        crate::web::userinfo::userinfo_post,
        crate::web::oauth::revoke,
        crate::web::oauth::introspect,
        crate::web::par::push,
        crate::web::registration::register,
        crate::web::registration::read,
        crate::web::registration::update,
        crate::web::registration::delete,
        crate::web::logout::logout,
        crate::web::logout::logout_post,
        crate::web::health::healthz,
        crate::web::health::readyz,
        crate::web::metrics,
        openapi_json,
    ),
    components(schemas(schemas::GraphErrorBody, schemas::OAuthErrorBody)),
    modifiers(&Needs, &Failures),
    tags(
        (name = "batch", description = "Graph JSON batching"),
        (name = "users", description = "Users and their sessions"),
        (name = "authentication methods", description = "Passes, passkeys, the password, per-user MFA"),
        (name = "policies", description = "The Temporary Access Pass method policy"),
        (name = "groups"),
        (name = "roles", description = "Directory role assignments"),
        (name = "conditional access", description = "Policies, named locations, authentication strengths, What If"),
        (name = "audit logs"),
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect"),
        (name = "operations", description = "Health, metrics, this description"),
    )
)]
struct ApiDoc;

/// The description as this deployment serves it: its issuer is the server,
/// its token endpoint the OAuth flow's.
pub fn document(issuer: &str) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![Server::new(issuer)]);
    let components = doc.components.get_or_insert_with(Default::default);
    let scopes = Scopes::from_iter(
        crate::config::GRAPH_PERMISSIONS
            .iter()
            .map(|p| (p.to_string(), p.to_string())),
    );
    components.add_security_scheme(
        APP,
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::ClientCredentials(ClientCredentials::new(
                format!("{issuer}{}", crate::protocol::discovery::paths::TOKEN),
                scopes,
            ))],
            "An application token (client credentials): its `roles` are the application \
             permissions the client was granted in the configuration.",
        )),
    );
    components.add_security_scheme(
        USER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A user's access token for the audience `{issuer}/graph`: its `scp` are \
                     the delegated scopes; the user's directory roles also decide.",
                ))
                .build(),
        ),
    );
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "This description (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    axum::Json(document(&state.settings.issuer)).into_response()
}

const APP: &str = "application";
const USER: &str = "user";

/// What a Graph operation needs, from the tables the handlers check.
enum Need {
    /// A tenant-wide operation.
    Tenant(&'static Access),
    /// An operation on one user, through an administrator's path.
    OnUser(&'static [UserAction]),
    /// The signed-in user's own resources (`/me`): a delegated token.
    Me,
    /// Any Graph token; each request inside needs what it needs alone.
    Each,
}

/// The need of each Graph operation, by operation id. Every Graph
/// operation must be here (a test checks it).
fn need(operation_id: &str) -> Option<Need> {
    use Need::*;
    use UserAction as A;
    Some(match operation_id {
        "batch" => Each,
        "users.list" | "users.get" => Tenant(&access::USERS_READ),
        "users.create" => Tenant(&access::USERS_WRITE),
        "users.update" => OnUser(&[
            A::UpdateProfile,
            A::UpdateIdentity,
            A::SetAccountEnabled,
            A::ResetPassword,
        ]),
        "users.delete" => OnUser(&[A::Delete]),
        "users.revokeSignInSessions" => OnUser(&[A::RevokeSessions]),
        "me.get"
        | "me.revokeSignInSessions"
        | "me.methods.list"
        | "me.passes.list"
        | "me.passes.get"
        | "me.passes.delete"
        | "me.passkeys.list"
        | "me.passkeys.get"
        | "me.passkeys.delete" => Me,
        "users.methods.list" | "users.passkeys.list" | "users.passkeys.get" => {
            OnUser(&[A::ReadMethods])
        }
        "users.passkeys.delete" => OnUser(&[A::DeletePasskey]),
        "users.passes.list" | "users.passes.get" => OnUser(&[A::ViewTap]),
        "users.passes.create" => OnUser(&[A::IssueTap]),
        "users.passes.delete" => OnUser(&[A::DeleteTap]),
        "users.requirements.get" => OnUser(&[A::ReadMfaState]),
        "users.requirements.update" => OnUser(&[A::SetMfaState]),
        "tapPolicy.get" | "fido2Policy.get" | "authenticationMethodsPolicy.get" => {
            Tenant(&access::METHODS_POLICY_READ)
        }
        "tapPolicy.update" | "fido2Policy.update" | "authenticationMethodsPolicy.update" => {
            Tenant(&access::METHODS_POLICY_WRITE)
        }
        "groups.list" | "groups.get" | "groups.members.list" => Tenant(&access::GROUPS_READ),
        "groups.create" | "groups.members.add" | "groups.members.remove" => {
            Tenant(&access::GROUPS_WRITE)
        }
        "roleAssignments.list" | "roleAssignments.get" | "roleDefinitions.list" => {
            Tenant(&access::ROLES_READ)
        }
        "roleAssignments.create" | "roleAssignments.delete" => Tenant(&access::ROLES_WRITE),
        "conditionalAccess.policies.list"
        | "conditionalAccess.policies.get"
        | "conditionalAccess.namedLocations.list"
        | "conditionalAccess.namedLocations.get"
        | "conditionalAccess.authenticationStrengths.list"
        | "conditionalAccess.authenticationStrengths.get"
        | "conditionalAccess.authenticationStrengths.combinationConfigurations.list"
        | "conditionalAccess.authenticationStrengths.combinationConfigurations.get"
        | "conditionalAccess.evaluate" => Tenant(&access::CA_READ),
        "conditionalAccess.policies.create"
        | "conditionalAccess.policies.update"
        | "conditionalAccess.policies.delete"
        | "conditionalAccess.namedLocations.create"
        | "conditionalAccess.namedLocations.update"
        | "conditionalAccess.namedLocations.delete"
        | "conditionalAccess.authenticationStrengths.create"
        | "conditionalAccess.authenticationStrengths.update"
        | "conditionalAccess.authenticationStrengths.delete"
        | "conditionalAccess.authenticationStrengths.combinationConfigurations.create"
        | "conditionalAccess.authenticationStrengths.combinationConfigurations.update"
        | "conditionalAccess.authenticationStrengths.combinationConfigurations.delete" => {
            Tenant(&access::CA_WRITE)
        }
        "auditLogs.signIns.list" | "auditLogs.directoryAudits.list" => Tenant(&access::AUDIT_READ),
        _ => return None,
    })
}

impl Need {
    /// Any one of these permissions, as an application permission or a scope.
    fn permissions(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = match self {
            Need::Tenant(a) => a.permissions.to_vec(),
            Need::OnUser(actions) => actions
                .iter()
                .flat_map(|a| a.permissions())
                .copied()
                .collect(),
            Need::Me | Need::Each => Vec::new(),
        };
        all.sort_unstable();
        all.dedup();
        all
    }

    /// In words, for the operation's description.
    fn describe(&self) -> String {
        let permissions = self.permissions().join("`, `");
        match self {
            Need::Tenant(Access { roles: None, .. }) => format!(
                "**Needs** one of `{permissions}` (application permission or delegated scope)."
            ),
            Need::Tenant(Access {
                roles: Some(roles), ..
            }) => format!(
                "**Needs** one of `{permissions}` (application permission or delegated scope); \
                 a signed-in user also needs one of the roles {}.",
                role_names(roles)
            ),
            Need::OnUser(_) => format!(
                "**Needs** one of `{permissions}` (application permission or delegated scope); \
                 a signed-in user also needs an administrator role that may act on this user \
                 (see the README's role table: acting on an administrator needs a role at \
                 least as privileged)."
            ),
            Need::Me => "**Needs** a user's token (delegated): the signed-in user's own \
                         resources. An application token is refused."
                .to_owned(),
            Need::Each => "**Needs** a valid Graph token; each request in the batch needs what \
                           it needs when sent alone."
                .to_owned(),
        }
    }
}

fn role_names(roles: &[BuiltinRole]) -> String {
    roles
        .iter()
        .map(|r| r.display_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes each Graph operation's permissions into its `security` and its
/// description.
struct Needs;

impl Modify for Needs {
    fn modify(&self, doc: &mut Document) {
        for_each_operation(doc, |path, op| {
            if !path.starts_with("/v1.0/") {
                return;
            }
            let Some(need) = op.operation_id.as_deref().and_then(need) else {
                return;
            };
            let mut security: Vec<SecurityRequirement> = need
                .permissions()
                .into_iter()
                .map(|p| SecurityRequirement::new(APP, [p]))
                .collect();
            if let Need::Each = need {
                security.push(SecurityRequirement::new(APP, Vec::<String>::new()));
            }
            security.push(SecurityRequirement::new(USER, Vec::<String>::new()));
            op.security = Some(security);
            let text = need.describe();
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{text}"),
                None => text,
            });
        });
    }
}

/// Every failure the API can answer, in the shape its clients parse: Graph's
/// `{"error": …}` under `/v1.0/`, OAuth's `{"error", "error_description"}`
/// on the token, revocation, introspection and userinfo endpoints.
struct Failures;

impl Modify for Failures {
    fn modify(&self, doc: &mut Document) {
        for_each_operation(doc, |path, op| {
            let schema = if path.starts_with("/v1.0/") {
                "GraphErrorBody"
            } else if [
                "/token",
                "/revoke",
                "/introspect",
                "/userinfo",
                "/register",
                "/register/{client_id}",
            ]
            .contains(&path)
            {
                "OAuthErrorBody"
            } else {
                return;
            };
            let response = ResponseBuilder::new()
                .description("An error")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            schema,
                        ))))
                        .build(),
                )
                .build();
            op.responses
                .responses
                .entry("default".to_owned())
                .or_insert(RefOr::T(response));
        });
    }
}

fn for_each_operation(doc: &mut Document, mut f: impl FnMut(&str, &mut Operation)) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            f(path, op);
        }
    }
}
