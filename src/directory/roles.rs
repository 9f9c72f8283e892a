//! Entra ID's built-in directory roles that Gatepass understands.
//!
//! `roleDefinitionId` accepts either Entra's role template id (so scripts
//! exported from Entra work unchanged) or the role's display name.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BuiltinRole {
    GlobalAdministrator,
    PrivilegedAuthenticationAdministrator,
    AuthenticationAdministrator,
    AuthenticationPolicyAdministrator,
    ConditionalAccessAdministrator,
    GlobalReader,
    UserAdministrator,
    GroupsAdministrator,
    PrivilegedRoleAdministrator,
    SecurityAdministrator,
    SecurityReader,
    ReportsReader,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 12] = [
        BuiltinRole::GlobalAdministrator,
        BuiltinRole::PrivilegedAuthenticationAdministrator,
        BuiltinRole::AuthenticationAdministrator,
        BuiltinRole::AuthenticationPolicyAdministrator,
        BuiltinRole::ConditionalAccessAdministrator,
        BuiltinRole::GlobalReader,
        BuiltinRole::UserAdministrator,
        BuiltinRole::GroupsAdministrator,
        BuiltinRole::PrivilegedRoleAdministrator,
        BuiltinRole::SecurityAdministrator,
        BuiltinRole::SecurityReader,
        BuiltinRole::ReportsReader,
    ];

    /// Entra's role template id (the `roleDefinitionId` of built-in roles).
    pub fn template_id(self) -> &'static str {
        match self {
            BuiltinRole::GlobalAdministrator => "62e90394-69f5-4237-9190-012177145e10",
            BuiltinRole::PrivilegedAuthenticationAdministrator => {
                "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
            }
            BuiltinRole::AuthenticationAdministrator => "c4e39bd9-1100-46d3-8c65-fb160da0071f",
            BuiltinRole::AuthenticationPolicyAdministrator => {
                "0526716b-113d-4c15-b2c8-68e3c22b9f80"
            }
            BuiltinRole::ConditionalAccessAdministrator => "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
            BuiltinRole::GlobalReader => "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
            BuiltinRole::UserAdministrator => "fe930be7-5e62-47db-91af-98c3a49a38b1",
            BuiltinRole::GroupsAdministrator => "fdd7a751-b60b-444a-984c-02652fe8fa1c",
            BuiltinRole::PrivilegedRoleAdministrator => "e8611ab8-c189-46e8-94e1-60213ab1f814",
            BuiltinRole::SecurityAdministrator => "194ae4cb-b126-40b2-bd5b-6091b380977d",
            BuiltinRole::SecurityReader => "5d6b6bb7-de71-4623-b4af-96380a352509",
            BuiltinRole::ReportsReader => "4a5d8f65-41da-4de4-8968-e035b65339cf",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            BuiltinRole::GlobalAdministrator => "Global Administrator",
            BuiltinRole::PrivilegedAuthenticationAdministrator => {
                "Privileged Authentication Administrator"
            }
            BuiltinRole::AuthenticationAdministrator => "Authentication Administrator",
            BuiltinRole::AuthenticationPolicyAdministrator => "Authentication Policy Administrator",
            BuiltinRole::ConditionalAccessAdministrator => "Conditional Access Administrator",
            BuiltinRole::GlobalReader => "Global Reader",
            BuiltinRole::UserAdministrator => "User Administrator",
            BuiltinRole::GroupsAdministrator => "Groups Administrator",
            BuiltinRole::PrivilegedRoleAdministrator => "Privileged Role Administrator",
            BuiltinRole::SecurityAdministrator => "Security Administrator",
            BuiltinRole::SecurityReader => "Security Reader",
            BuiltinRole::ReportsReader => "Reports Reader",
        }
    }

    /// Looks a role up by template id or display name (case-insensitive).
    pub fn resolve(id_or_name: &str) -> Option<BuiltinRole> {
        Self::ALL.into_iter().find(|r| {
            r.template_id().eq_ignore_ascii_case(id_or_name)
                || r.display_name().eq_ignore_ascii_case(id_or_name)
        })
    }

    /// Whether holding this role makes a user an "admin" for the TAP role
    /// matrix (DESIGN §3: Authentication Administrators act only on users
    /// without an admin role).
    pub fn is_privileged(self) -> bool {
        !matches!(self, BuiltinRole::ReportsReader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_resolves_by_template_id_and_display_name() {
        for r in BuiltinRole::ALL {
            assert_eq!(BuiltinRole::resolve(r.template_id()), Some(r));
            assert_eq!(
                BuiltinRole::resolve(&r.display_name().to_uppercase()),
                Some(r)
            );
        }
        assert_eq!(BuiltinRole::resolve("Supreme Leader"), None);
    }
}
