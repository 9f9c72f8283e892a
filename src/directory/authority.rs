//! Who may do what to whom: the one home of the rules on acting on a user.
//!
//! Every interface that touches a user — the Graph API, the admin portal,
//! the command line — describes the caller as an [`Actor`], the target as a
//! [`Subject`], and asks [`check`]. No handler re-implements a rule; a new
//! interface is a new caller of this function, never a copy of its table.
//!
//! The rules follow Entra ID's "who can perform sensitive actions": acting
//! on a user who holds any directory role (an *administrator*) needs a role
//! at least as privileged, so a lower administrator can never take over a
//! higher one.
//!
//! Delegated callers (a signed-in user), by target:
//!
//! | action | member | administrator | own account |
//! | --- | --- | --- | --- |
//! | update profile (`displayName`) | GA, UA | GA, UA | GA, UA |
//! | change identity (UPN, `mail`), enable/disable, delete | GA, UA | GA | identity: GA; never disable or delete |
//! | reset the password | GA, PAA, UA, AA | GA, PAA | never (not through the admin API) |
//! | revoke sessions | GA, PAA, UA, AA | GA, PAA | anyone |
//! | read per-user MFA state | GA, PAA, AA, GR | GA, PAA, AA, GR | same |
//! | set per-user MFA state | GA, PAA, AA | GA, PAA | never |
//! | read methods (list, passkeys) | GA, PAA, AA, GR | GA, PAA, GR | anyone |
//! | Temporary Access Pass: issue, view, delete | GA, PAA, AA (view: + GR) | GA, PAA (view: + GR) | never (view and delete through `/me`) |
//! | delete a passkey | GA, PAA, AA | GA, PAA | through `/me` only |
//!
//! (GA Global Administrator, PAA Privileged Authentication Administrator,
//! UA User Administrator, AA Authentication Administrator, GR Global Reader.)
//! Each action also needs its Graph permission as a delegated scope.
//!
//! Application callers (`client_credentials`) hold no role; their
//! application permissions decide:
//! - a password is set only with `User-PasswordProfile.ReadWrite.All`, and
//!   **never** on an administrator;
//! - changing the identity or enablement of an administrator, deleting one
//!   or ending their sessions also needs `RoleManagement.ReadWrite.Directory`
//!   (an app holding it can already make any user an administrator, so this
//!   gives it nothing new);
//! - authentication-method permissions (`UserAuthenticationMethod.*`,
//!   `UserAuthMethod-TAP.*`) reach every user, administrators included, as
//!   in Entra ID: they are tier-0 permissions, to be granted like Global
//!   Administrator.

use super::roles::BuiltinRole::{self, *};
use crate::ids::UserId;
use std::collections::BTreeSet;

/// Who is acting.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An application acting as itself, with its application permissions.
    App { permissions: &'a BTreeSet<String> },
    /// A signed-in user acting with their directory roles, within what
    /// they delegated to the client they use.
    User {
        id: UserId,
        roles: &'a BTreeSet<BuiltinRole>,
        delegation: Delegation<'a>,
    },
}

/// What a signed-in user let the acting client do for them.
#[derive(Debug, Clone, Copy)]
pub enum Delegation<'a> {
    /// The Graph scopes of the access token (`scp`).
    Scopes(&'a BTreeSet<String>),
    /// Gatepass's own console: no scopes, the user's roles alone decide.
    Console,
}

/// The user acted on, as the rules see them.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub id: UserId,
    /// The target's directory roles; any role makes them an administrator.
    pub roles: &'a BTreeSet<BuiltinRole>,
}

impl Subject<'_> {
    pub fn is_admin(&self) -> bool {
        !self.roles.is_empty()
    }
}

/// What is done to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// Non-sensitive profile properties (`displayName`).
    UpdateProfile,
    /// `userPrincipalName` or `mail`: what the user signs in and is known by.
    UpdateIdentity,
    SetAccountEnabled,
    ResetPassword,
    Delete,
    RevokeSessions,
    ReadMfaState,
    SetMfaState,
    /// The list of methods, passkeys (never a secret).
    ReadMethods,
    /// A Temporary Access Pass, through an administrator's path.
    IssueTap,
    ViewTap,
    DeleteTap,
    /// A passkey, through an administrator's path.
    DeletePasskey,
    /// The caller's own methods through `/me`. Deleting one is further
    /// bound by [`crate::policy::session_limiter::admit_removal`] (the last
    /// strong method, the only method).
    ViewOwnMethods,
    DeleteOwnTap,
    DeleteOwnPasskey,
}

impl UserAction {
    /// Graph permissions that allow the action (any one; as an application
    /// permission or a delegated scope).
    pub fn permissions(self) -> &'static [&'static str] {
        use UserAction::*;
        match self {
            UpdateProfile | UpdateIdentity | SetAccountEnabled | Delete => {
                &["User.ReadWrite.All", "Directory.ReadWrite.All"]
            }
            // A delegated administrator resets through the user write
            // scope; an application needs the dedicated permission.
            ResetPassword => &[
                "User-PasswordProfile.ReadWrite.All",
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            RevokeSessions => &[
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            ReadMfaState | ReadMethods => &[
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
            ],
            SetMfaState | DeletePasskey | DeleteOwnPasskey => {
                &["UserAuthenticationMethod.ReadWrite.All"]
            }
            ViewTap | ViewOwnMethods => &[
                "UserAuthenticationMethod.Read.All",
                "UserAuthenticationMethod.ReadWrite.All",
                "UserAuthMethod-TAP.Read.All",
                "UserAuthMethod-TAP.ReadWrite.All",
            ],
            IssueTap | DeleteTap | DeleteOwnTap => &[
                "UserAuthenticationMethod.ReadWrite.All",
                "UserAuthMethod-TAP.ReadWrite.All",
            ],
        }
    }

    fn is_self_service(self) -> bool {
        matches!(
            self,
            UserAction::ViewOwnMethods | UserAction::DeleteOwnTap | UserAction::DeleteOwnPasskey
        )
    }

    /// Roles that may act on a member (a user without a directory role).
    fn member_roles(self) -> &'static [BuiltinRole] {
        use UserAction::*;
        match self {
            UpdateProfile | UpdateIdentity | SetAccountEnabled | Delete => {
                &[GlobalAdministrator, UserAdministrator]
            }
            ResetPassword | RevokeSessions => &[
                GlobalAdministrator,
                PrivilegedAuthenticationAdministrator,
                UserAdministrator,
                AuthenticationAdministrator,
            ],
            ReadMfaState | ReadMethods | ViewTap => &[
                GlobalAdministrator,
                PrivilegedAuthenticationAdministrator,
                AuthenticationAdministrator,
                GlobalReader,
            ],
            SetMfaState | IssueTap | DeleteTap | DeletePasskey => &[
                GlobalAdministrator,
                PrivilegedAuthenticationAdministrator,
                AuthenticationAdministrator,
            ],
            ViewOwnMethods | DeleteOwnTap | DeleteOwnPasskey => &[],
        }
    }

    /// Roles that may act on an administrator: at least as privileged.
    fn admin_roles(self) -> &'static [BuiltinRole] {
        use UserAction::*;
        match self {
            UpdateProfile => &[GlobalAdministrator, UserAdministrator],
            UpdateIdentity | SetAccountEnabled | Delete => &[GlobalAdministrator],
            ResetPassword | RevokeSessions | SetMfaState | IssueTap | DeleteTap | DeletePasskey => {
                &[GlobalAdministrator, PrivilegedAuthenticationAdministrator]
            }
            ReadMfaState => &[
                GlobalAdministrator,
                PrivilegedAuthenticationAdministrator,
                AuthenticationAdministrator,
                GlobalReader,
            ],
            ReadMethods | ViewTap => &[
                GlobalAdministrator,
                PrivilegedAuthenticationAdministrator,
                GlobalReader,
            ],
            ViewOwnMethods | DeleteOwnTap | DeleteOwnPasskey => &[],
        }
    }

    /// What acting on oneself allows: `None` when the action is refused on
    /// one's own account whatever the roles, with the reason.
    fn on_self(self) -> SelfRule {
        use UserAction::*;
        match self {
            UpdateProfile | UpdateIdentity | ReadMfaState => SelfRule::AsOnOthers,
            ReadMethods | RevokeSessions | ViewOwnMethods | DeleteOwnTap | DeleteOwnPasskey => {
                SelfRule::Allowed
            }
            // Not a matter of privilege: no one may lock themselves out.
            SetAccountEnabled => SelfRule::Invalid("You cannot disable your own account."),
            Delete => SelfRule::Invalid("You cannot delete your own account."),
            ResetPassword => SelfRule::Refused(
                "You cannot reset your own password through the administration API; another administrator must do it.",
            ),
            SetMfaState => SelfRule::Refused(
                "You cannot change your own per-user MFA state; another administrator must do it.",
            ),
            IssueTap => SelfRule::Refused(
                "You cannot issue a Temporary Access Pass for yourself; another administrator must do it.",
            ),
            ViewTap => SelfRule::Refused(
                "You cannot view a Temporary Access Pass for yourself through an administrator's path; use /me.",
            ),
            DeleteTap => SelfRule::Refused(
                "You cannot delete a Temporary Access Pass for yourself through an administrator's path; use /me.",
            ),
            DeletePasskey => SelfRule::Refused(
                "You cannot delete your own passkey through an administrator's path; use /me or your security info page.",
            ),
        }
    }

    /// What an application additionally needs when the target is an
    /// administrator (`Err`: never allowed to an application).
    fn app_on_admin(self) -> Result<Option<&'static str>, &'static str> {
        use UserAction::*;
        match self {
            ResetPassword => Err(
                "an application never sets the password of a user who holds a directory role; a Global Administrator or Privileged Authentication Administrator must do it",
            ),
            UpdateIdentity | SetAccountEnabled | Delete | RevokeSessions => {
                Ok(Some(ROLE_MANAGEMENT))
            }
            UpdateProfile | ReadMfaState | SetMfaState | ReadMethods | IssueTap | ViewTap
            | DeleteTap | DeletePasskey => Ok(None),
            ViewOwnMethods | DeleteOwnTap | DeleteOwnPasskey => {
                Err("/me request is only valid with delegated authentication flow")
            }
        }
    }
}

const ROLE_MANAGEMENT: &str = "RoleManagement.ReadWrite.Directory";
/// The application permission that sets passwords (Graph's name).
pub const PASSWORD_PROFILE_PERMISSION: &str = "User-PasswordProfile.ReadWrite.All";

enum SelfRule {
    /// The same role rules as on anyone else.
    AsOnOthers,
    /// Always allowed on oneself (with the permission).
    Allowed,
    Refused(&'static str),
    /// Refused as a malformed request rather than a lack of privilege.
    Invalid(&'static str),
}

/// Why an action was refused; the message names the rule and is safe to
/// show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    pub message: String,
    /// The request can never succeed for anyone (acting on oneself in a way
    /// nobody may), as opposed to this caller lacking a privilege.
    pub invalid_request: bool,
}

impl Denial {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            invalid_request: false,
        }
    }
}

fn holds_any(held: &BTreeSet<String>, wanted: &[&str]) -> bool {
    wanted.iter().any(|p| held.contains(*p))
}

fn role_names(roles: &[BuiltinRole]) -> String {
    roles
        .iter()
        .map(|r| r.display_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// May `actor` do `action` to `subject`? The one rule every interface asks.
pub fn check(actor: &Actor<'_>, action: UserAction, subject: &Subject<'_>) -> Result<(), Denial> {
    let permissions = action.permissions();
    match actor {
        Actor::App { permissions: held } => {
            if action == UserAction::ResetPassword && !held.contains(PASSWORD_PROFILE_PERMISSION) {
                return Err(Denial::new(format!(
                    "requires the application permission {PASSWORD_PROFILE_PERMISSION} to set a password."
                )));
            }
            if !holds_any(held, permissions) {
                return Err(Denial::new(format!(
                    "requires the application permission {}.",
                    permissions.join(" or ")
                )));
            }
            if subject.is_admin() {
                match action.app_on_admin() {
                    Err(why) => return Err(Denial::new(format!("{why}."))),
                    Ok(Some(extra)) if !held.contains(extra) => {
                        return Err(Denial::new(format!(
                            "the user holds a directory role; an application also needs the application permission {extra} to change their identity, sign-in or sessions, or delete them."
                        )));
                    }
                    Ok(_) => {}
                }
            }
            Ok(())
        }
        Actor::User {
            id,
            roles,
            delegation,
        } => {
            if let Delegation::Scopes(scopes) = delegation {
                if !holds_any(scopes, permissions) {
                    return Err(Denial::new(format!(
                        "requires the delegated permission (scope) {}.",
                        permissions.join(" or ")
                    )));
                }
            }
            if *id == subject.id {
                match action.on_self() {
                    SelfRule::Allowed => return Ok(()),
                    SelfRule::Refused(why) => return Err(Denial::new(why)),
                    SelfRule::Invalid(why) => {
                        return Err(Denial {
                            message: why.to_owned(),
                            invalid_request: true,
                        });
                    }
                    SelfRule::AsOnOthers => {}
                }
            } else if action.is_self_service() {
                return Err(Denial::new(
                    "only the signed-in user may act on their own methods.",
                ));
            }
            let allowed = if subject.is_admin() {
                action.admin_roles()
            } else {
                action.member_roles()
            };
            if allowed.iter().any(|r| roles.contains(r)) {
                return Ok(());
            }
            Err(Denial::new(denial_message(action, subject, roles, allowed)))
        }
    }
}

/// The refusal for a delegated caller whose roles do not reach `subject`.
fn denial_message(
    action: UserAction,
    subject: &Subject<'_>,
    roles: &BTreeSet<BuiltinRole>,
    allowed: &[BuiltinRole],
) -> String {
    use UserAction::*;
    let reaches_members = action.member_roles().iter().any(|r| roles.contains(r));
    let tap = matches!(action, IssueTap | ViewTap | DeleteTap);
    if tap && roles.contains(&GlobalReader) && action != ViewTap {
        return "Global Readers may view Temporary Access Pass details but not issue or delete passes.".to_owned();
    }
    if subject.is_admin() && reaches_members {
        let need = role_names(allowed);
        return if tap {
            format!(
                "Authentication Administrators may manage Temporary Access Passes only for users without an administrator role; this user holds a directory role, so this needs {need}."
            )
        } else {
            format!("the user holds a directory role, so this needs one of the roles {need}.")
        };
    }
    if tap {
        return "Managing Temporary Access Passes needs the Global Administrator, Privileged Authentication Administrator or Authentication Administrator role.".to_owned();
    }
    format!(
        "the signed-in user needs one of the roles {}.",
        role_names(action.member_roles())
    )
}

/// What an operation that is not on one user needs (reading the directory,
/// managing groups, roles, policies, logs): any one of `permissions` (as an
/// application permission or a delegated scope) and, for a signed-in user,
/// any one of `roles` (`None`: any signed-in user may).
#[derive(Debug)]
pub struct Access {
    pub permissions: &'static [&'static str],
    pub roles: Option<&'static [BuiltinRole]>,
}

/// The tenant-wide operations, by what they need. Every interface asks
/// [`permits`] with one of these; none keeps its own table.
pub mod access {
    use super::Access;
    use crate::directory::roles::BuiltinRole::*;

    pub const USERS_READ: Access = Access {
        permissions: &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        roles: None,
    };
    pub const USERS_WRITE: Access = Access {
        permissions: &["User.ReadWrite.All", "Directory.ReadWrite.All"],
        roles: Some(&[GlobalAdministrator, UserAdministrator]),
    };
    pub const GROUPS_READ: Access = Access {
        permissions: &[
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        roles: None,
    };
    pub const GROUPS_WRITE: Access = Access {
        permissions: &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
        roles: Some(&[GlobalAdministrator, GroupsAdministrator, UserAdministrator]),
    };
    pub const ROLES_READ: Access = Access {
        permissions: &[
            "RoleManagement.Read.Directory",
            "RoleManagement.ReadWrite.Directory",
            "Directory.Read.All",
        ],
        roles: Some(&[
            GlobalAdministrator,
            PrivilegedRoleAdministrator,
            GlobalReader,
            SecurityAdministrator,
            SecurityReader,
        ]),
    };
    pub const ROLES_WRITE: Access = Access {
        permissions: &["RoleManagement.ReadWrite.Directory"],
        roles: Some(&[GlobalAdministrator, PrivilegedRoleAdministrator]),
    };
    pub const AUDIT_READ: Access = Access {
        permissions: &["AuditLog.Read.All"],
        roles: Some(&[
            GlobalAdministrator,
            GlobalReader,
            SecurityAdministrator,
            SecurityReader,
            ReportsReader,
        ]),
    };
    /// The authentication methods policy (the Temporary Access Pass's).
    pub const METHODS_POLICY_READ: Access = Access {
        permissions: &[
            "Policy.Read.All",
            "Policy.Read.AuthenticationMethod",
            "Policy.ReadWrite.AuthenticationMethod",
        ],
        roles: Some(&[
            GlobalAdministrator,
            AuthenticationPolicyAdministrator,
            GlobalReader,
            SecurityAdministrator,
            SecurityReader,
        ]),
    };
    pub const METHODS_POLICY_WRITE: Access = Access {
        permissions: &["Policy.ReadWrite.AuthenticationMethod"],
        roles: Some(&[GlobalAdministrator, AuthenticationPolicyAdministrator]),
    };
    /// Conditional-access policies, named locations, strengths, What If.
    pub const CA_READ: Access = Access {
        permissions: &[
            "Policy.Read.All",
            "Policy.Read.ConditionalAccess",
            "Policy.ReadWrite.ConditionalAccess",
        ],
        roles: Some(&[
            GlobalAdministrator,
            ConditionalAccessAdministrator,
            SecurityAdministrator,
            SecurityReader,
            GlobalReader,
        ]),
    };
    pub const CA_WRITE: Access = Access {
        permissions: &["Policy.ReadWrite.ConditionalAccess"],
        roles: Some(&[
            GlobalAdministrator,
            ConditionalAccessAdministrator,
            SecurityAdministrator,
        ]),
    };
}

/// May `actor` perform an operation that needs `access`? The tenant-wide
/// counterpart of [`check`].
pub fn permits(actor: &Actor<'_>, access: &Access) -> Result<(), Denial> {
    let (held, kind) = match actor {
        Actor::App { permissions } => (Some(*permissions), "application permission"),
        Actor::User {
            delegation: Delegation::Scopes(scopes),
            ..
        } => (Some(*scopes), "delegated permission (scope)"),
        Actor::User {
            delegation: Delegation::Console,
            ..
        } => (None, ""),
    };
    if let Some(held) = held {
        if !holds_any(held, access.permissions) {
            return Err(Denial::new(format!(
                "requires the {kind} {}.",
                access.permissions.join(" or ")
            )));
        }
    }
    if let (Actor::User { roles, .. }, Some(allowed)) = (actor, access.roles) {
        if !allowed.iter().any(|r| roles.contains(r)) {
            return Err(Denial::new(format!(
                "the signed-in user needs one of the roles {}.",
                role_names(allowed)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
        items.iter().cloned().collect()
    }

    fn id(n: u8) -> UserId {
        UserId(uuid::Uuid::from_bytes([n; 16]))
    }

    const ALL_ACTIONS: [UserAction; 16] = [
        UserAction::UpdateProfile,
        UserAction::UpdateIdentity,
        UserAction::SetAccountEnabled,
        UserAction::ResetPassword,
        UserAction::Delete,
        UserAction::RevokeSessions,
        UserAction::ReadMfaState,
        UserAction::SetMfaState,
        UserAction::ReadMethods,
        UserAction::IssueTap,
        UserAction::ViewTap,
        UserAction::DeleteTap,
        UserAction::DeletePasskey,
        UserAction::ViewOwnMethods,
        UserAction::DeleteOwnTap,
        UserAction::DeleteOwnPasskey,
    ];

    /// Every permission any action names, as a console would hold them.
    fn every_scope() -> BTreeSet<String> {
        ALL_ACTIONS
            .iter()
            .flat_map(|a| a.permissions())
            .map(|p| (*p).to_owned())
            .collect()
    }

    fn may(roles: &[BuiltinRole], action: UserAction, target_roles: &[BuiltinRole]) -> bool {
        let roles = set(roles);
        let scopes = every_scope();
        let target_roles = set(target_roles);
        let actor = Actor::User {
            id: id(1),
            roles: &roles,
            delegation: Delegation::Scopes(&scopes),
        };
        check(
            &actor,
            action,
            &Subject {
                id: id(2),
                roles: &target_roles,
            },
        )
        .is_ok()
    }

    #[test]
    fn authority_lower_administrators_never_reach_a_global_administrator() {
        let ga = [GlobalAdministrator];
        for actor in [
            UserAdministrator,
            AuthenticationAdministrator,
            GlobalReader,
            GroupsAdministrator,
            PrivilegedRoleAdministrator,
        ] {
            for action in [
                UserAction::ResetPassword,
                UserAction::SetAccountEnabled,
                UserAction::UpdateIdentity,
                UserAction::Delete,
                UserAction::IssueTap,
                UserAction::DeleteTap,
                UserAction::DeletePasskey,
                UserAction::SetMfaState,
                UserAction::RevokeSessions,
            ] {
                assert!(!may(&[actor], action, &ga), "{actor:?} {action:?} on GA");
            }
        }
        for action in [
            UserAction::ResetPassword,
            UserAction::SetAccountEnabled,
            UserAction::Delete,
            UserAction::RevokeSessions,
        ] {
            assert!(may(&[GlobalAdministrator], action, &ga), "{action:?}");
        }
        // Credentials: a Privileged Authentication Administrator suffices.
        assert!(may(
            &[PrivilegedAuthenticationAdministrator],
            UserAction::ResetPassword,
            &ga
        ));
        assert!(!may(
            &[PrivilegedAuthenticationAdministrator],
            UserAction::Delete,
            &ga
        ));
    }

    #[test]
    fn authority_user_administrator_manages_members_only() {
        for action in [
            UserAction::ResetPassword,
            UserAction::SetAccountEnabled,
            UserAction::UpdateIdentity,
            UserAction::Delete,
            UserAction::RevokeSessions,
        ] {
            assert!(may(&[UserAdministrator], action, &[]), "{action:?}");
            assert!(
                !may(&[UserAdministrator], action, &[ReportsReader]),
                "{action:?} on any administrator"
            );
        }
        assert!(may(
            &[UserAdministrator],
            UserAction::UpdateProfile,
            &[GlobalAdministrator]
        ));
    }

    #[test]
    fn authority_nobody_changes_their_own_mfa_state_or_password() {
        let roles = set(&[GlobalAdministrator, PrivilegedAuthenticationAdministrator]);
        let scopes = every_scope();
        let me = id(7);
        let actor = Actor::User {
            id: me,
            roles: &roles,
            delegation: Delegation::Scopes(&scopes),
        };
        let subject = Subject {
            id: me,
            roles: &roles,
        };
        for action in [
            UserAction::SetMfaState,
            UserAction::ResetPassword,
            UserAction::Delete,
            UserAction::SetAccountEnabled,
            UserAction::IssueTap,
        ] {
            assert!(check(&actor, action, &subject).is_err(), "{action:?}");
        }
        for action in [
            UserAction::RevokeSessions,
            UserAction::ReadMethods,
            UserAction::ViewOwnMethods,
            UserAction::DeleteOwnPasskey,
            UserAction::UpdateProfile,
        ] {
            assert!(check(&actor, action, &subject).is_ok(), "{action:?}");
        }
    }

    #[test]
    fn authority_apps_never_set_an_administrators_password() {
        let target_admin = set(&[GlobalReader]);
        let nobody = BTreeSet::new();
        let all: BTreeSet<String> = every_scope()
            .into_iter()
            .chain([ROLE_MANAGEMENT.to_owned()])
            .collect();
        let app = Actor::App { permissions: &all };
        let admin = Subject {
            id: id(3),
            roles: &target_admin,
        };
        let member = Subject {
            id: id(4),
            roles: &nobody,
        };
        assert!(check(&app, UserAction::ResetPassword, &admin).is_err());
        assert!(check(&app, UserAction::ResetPassword, &member).is_ok());
        // Without the password permission, User.ReadWrite.All sets no password.
        let plain = set(&["User.ReadWrite.All".to_owned()]);
        let app = Actor::App {
            permissions: &plain,
        };
        let denied = check(&app, UserAction::ResetPassword, &member).unwrap_err();
        assert!(denied.message.contains(PASSWORD_PROFILE_PERMISSION));
        // ... nor disables or deletes an administrator.
        for action in [
            UserAction::SetAccountEnabled,
            UserAction::Delete,
            UserAction::UpdateIdentity,
        ] {
            assert!(check(&app, action, &member).is_ok(), "{action:?}");
            let denied = check(&app, action, &admin).unwrap_err();
            assert!(denied.message.contains(ROLE_MANAGEMENT), "{action:?}");
        }
    }

    #[test]
    fn authority_console_delegation_needs_no_scope_but_the_role() {
        let roles = set(&[AuthenticationAdministrator]);
        let nobody = BTreeSet::new();
        let actor = Actor::User {
            id: id(1),
            roles: &roles,
            delegation: Delegation::Console,
        };
        let member = Subject {
            id: id(2),
            roles: &nobody,
        };
        assert!(check(&actor, UserAction::IssueTap, &member).is_ok());
        assert!(check(&actor, UserAction::Delete, &member).is_err());
    }

    #[test]
    fn authority_refusals_name_a_rule() {
        for action in ALL_ACTIONS {
            for target in [&[][..], &[GlobalAdministrator][..]] {
                let roles = set(&[ReportsReader]);
                let scopes = every_scope();
                let target_roles = set(target);
                let actor = Actor::User {
                    id: id(1),
                    roles: &roles,
                    delegation: Delegation::Scopes(&scopes),
                };
                let subject = Subject {
                    id: id(2),
                    roles: &target_roles,
                };
                let denied = check(&actor, action, &subject).unwrap_err();
                assert!(denied.message.len() > 20, "{action:?}: {denied}");
            }
        }
    }
}
