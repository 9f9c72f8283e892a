//! Who is calling the Graph API, and what they may do.
//!
//! Application callers (`client_credentials`) hold application permissions
//! in `roles`. Delegated callers hold scopes in `scp` *and* act as a signed-in
//! user, so each call needs both a scope and a directory role of that user
//! that allows it — the same double check Microsoft Graph performs.

use super::error::GraphError;
use crate::app::AppState;
use crate::directory::User;
use crate::directory::authority::{self, Actor, Delegation, Subject, UserAction};
use crate::directory::roles::BuiltinRole;
use crate::tokens::IdentityType;
use crate::web::bearer::{self, BearerError};
use axum::http::HeaderMap;
use std::collections::BTreeSet;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub enum Caller {
    App {
        client_id: String,
        permissions: BTreeSet<String>,
    },
    User {
        user: User,
        client_id: String,
        scopes: BTreeSet<String>,
        roles: BTreeSet<BuiltinRole>,
        /// The sign-in the token rests on (methods, `auth_time`).
        sign_in: bearer::SignInFacts,
    },
    /// A signed-in administrator in Gatepass's own console (`/admin`): no
    /// scopes, their directory roles alone decide, under the same rules.
    Console {
        user: User,
        roles: BTreeSet<BuiltinRole>,
        /// The sign-in the console session rests on.
        sign_in: bearer::SignInFacts,
    },
}

/// The rule tables live with the directory's rules, shared by every
/// interface; Graph handlers name them from here.
pub use crate::directory::authority::Access;
pub use crate::directory::authority::access::*;

impl Caller {
    /// Authenticates the Bearer token and loads the caller's privileges.
    pub async fn from_headers(
        state: &AppState,
        headers: &HeaderMap,
        now: OffsetDateTime,
    ) -> Result<Caller, GraphError> {
        // A Bearer token, or a DPoP-bound one with its proof (RFC 9449 §7).
        let principal = crate::web::dpop::authenticate_graph(state, headers, now)
            .await
            .map_err(dpop_error)?;
        let claims = principal.claims;
        if claims.aud != state.settings.graph_audience() {
            return Err(GraphError::unauthenticated(
                "Access token validation failure: the audience is not the Graph API of this issuer.",
            ));
        }
        match (claims.idtyp, principal.user, principal.sign_in) {
            (IdentityType::App, _, _) => Ok(Caller::App {
                client_id: claims.client_id,
                permissions: claims.roles.unwrap_or_default().into_iter().collect(),
            }),
            (IdentityType::User, Some(user), Some(sign_in)) => {
                let roles = state.directory.roles_of(user.id, now).await?;
                Ok(Caller::User {
                    client_id: claims.client_id,
                    scopes: claims
                        .scp
                        .unwrap_or_default()
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    roles,
                    user,
                    sign_in,
                })
            }
            (IdentityType::User, _, _) => Err(GraphError::unauthenticated(
                "Access token validation failure.",
            )),
        }
    }

    /// Checks `access` with the directory's rule; a 403 names what was
    /// missing.
    pub fn require(&self, access: &Access) -> Result<(), GraphError> {
        authority::permits(&self.actor(), access).map_err(denied)
    }

    /// The caller as the directory's authorization rules see it.
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Caller::App { permissions, .. } => Actor::App { permissions },
            Caller::User {
                user,
                scopes,
                roles,
                ..
            } => Actor::User {
                id: user.id,
                roles,
                delegation: Delegation::Scopes(scopes),
            },
            Caller::Console { user, roles, .. } => Actor::User {
                id: user.id,
                roles,
                delegation: Delegation::Console,
            },
        }
    }

    /// May this caller do `action` to `target`? Asks the directory's one
    /// rule ([`authority::check`]) with the target's roles read from the
    /// store; a refusal is a 403 that names the rule.
    pub async fn authorize_on(
        &self,
        state: &AppState,
        action: UserAction,
        target: &User,
        now: OffsetDateTime,
    ) -> Result<(), GraphError> {
        self.authorize_all(state, &[action], target, now).await
    }

    /// [`Caller::authorize_on`] for every one of `actions` (a patch that
    /// touches several properties), reading the target's roles once.
    pub async fn authorize_all(
        &self,
        state: &AppState,
        actions: &[UserAction],
        target: &User,
        now: OffsetDateTime,
    ) -> Result<(), GraphError> {
        let roles = state.directory.roles_of(target.id, now).await?;
        let subject = Subject {
            id: target.id,
            roles: &roles,
        };
        let actor = self.actor();
        for &action in actions {
            authority::check(&actor, action, &subject).map_err(denied)?;
        }
        Ok(())
    }

    /// The directory-audit initiator for this caller.
    pub fn initiator(&self) -> crate::audit::Initiator {
        match self {
            Caller::App { client_id, .. } => crate::audit::Initiator::App {
                app_id: client_id.clone(),
                display_name: client_id.clone(),
            },
            Caller::User { user, .. } | Caller::Console { user, .. } => {
                crate::audit::Initiator::User {
                    id: user.id.to_string(),
                    user_principal_name: user.user_principal_name.clone(),
                }
            }
        }
    }
}

/// A refusal of the directory's rules as Graph words it.
pub fn denied(d: authority::Denial) -> GraphError {
    if d.invalid_request {
        return GraphError::bad_request(d.message);
    }
    GraphError::forbidden(format!(
        "Insufficient privileges to complete the operation: {}",
        d.message
    ))
}

fn dpop_error(e: crate::web::dpop::DpopError) -> GraphError {
    use crate::web::dpop::DpopError;
    match e {
        DpopError::Token(b) => bearer_error(b),
        DpopError::Store(s) => s.into(),
        other => GraphError::unauthenticated(format!("Access token validation failure: {other}.")),
    }
}

fn bearer_error(e: BearerError) -> GraphError {
    match e {
        BearerError::Missing => GraphError::unauthenticated("Access token is empty."),
        BearerError::Unavailable(d) => GraphError::internal("store.unavailable", &d, true),
        BearerError::Internal(d) => GraphError::internal("bearer", &d, false),
        other => GraphError::unauthenticated(format!("Access token validation failure: {other}.")),
    }
}
