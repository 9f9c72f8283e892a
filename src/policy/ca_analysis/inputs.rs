//! The files the analyses read, loaded strictly: any malformed file is one
//! error naming the file, where in it, and the property (exit status 2).
//!
//! Policies, strengths and named locations are Graph JSON as `ca what-if`
//! reads them (one object, an array, or `{"value": [...]}`), and every
//! policy passes the same validation as a policy written through the API
//! (its strengths and locations must exist). The directory file is
//! Gatepass's own:
//!
//! ```json
//! { "users": [ { "id": "…", "userPrincipalName": "ada@contoso.com",
//!                "groups": ["<group id or name>"], "roles": ["Global Administrator"] } ],
//!   "applications": [ { "clientId": "hr-portal", "displayName": "HR portal" } ],
//!   "groups": [ { "id": "…", "displayName": "Break-glass" } ] }
//! ```
//!
//! `groups` is optional and names groups in reports; a user's `groups` may
//! give a group's id or its display name from that list. `roles` take
//! Entra's role template ids or display names.

use crate::directory::roles::BuiltinRole;
use crate::policy::conditional_access::{
    NamedLocation, Policy, StrengthSet, load_locations, load_policies, load_strengths,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Why an input file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {at}: {message}", file.display())]
pub struct InputError {
    pub file: PathBuf,
    /// Where: a property path (`value[2].conditions.users`) or, for a file
    /// that is not JSON, the line and column.
    pub at: String,
    pub message: String,
}

impl InputError {
    pub fn new(file: &Path, at: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            at: at.into(),
            message: message.into(),
        }
    }
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, ".", format!("cannot read: {e}")))
}

/// Reads a JSON file into `T`; an error names the property (`users[3].roles`)
/// or, for broken JSON, the line and column.
pub fn read_strict<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text = read(path)?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        let at = if inner.is_syntax() || inner.is_eof() {
            format!("line {} column {}", inner.line(), inner.column())
        } else {
            at
        };
        InputError::new(path, at, inner.to_string())
    })
}

/// A policy set with its strengths and named locations, validated.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    /// In the order the server evaluates them (display name, then id).
    pub policies: Vec<Policy>,
    pub strengths: StrengthSet,
    pub locations: Vec<NamedLocation>,
}

impl PolicyFiles {
    pub fn load(
        policies: &Path,
        strengths: Option<&Path>,
        locations: Option<&Path>,
    ) -> Result<PolicyFiles, InputError> {
        let custom = match strengths {
            Some(path) => {
                let loaded = load_strengths(&read(path)?)
                    .map_err(|e| InputError::new(path, e.path, e.message))?;
                for (i, s) in loaded.iter().enumerate() {
                    s.validate().map_err(|e| {
                        InputError::new(path, format!("[{i}].{}", e.field), e.message)
                    })?;
                }
                loaded
            }
            None => Vec::new(),
        };
        let strengths = StrengthSet::with_custom(custom);
        let locations = match locations {
            Some(path) => {
                let loaded = load_locations(&read(path)?)
                    .map_err(|e| InputError::new(path, e.path, e.message))?;
                for (i, l) in loaded.iter().enumerate() {
                    l.validate().map_err(|e| {
                        InputError::new(path, format!("[{i}].{}", e.field), e.message)
                    })?;
                }
                loaded
            }
            None => Vec::new(),
        };
        let mut loaded = load_policies(&read(policies)?)
            .map_err(|e| InputError::new(policies, e.path, e.message))?;
        for (i, p) in loaded.iter().enumerate() {
            p.validate(&strengths, &locations).map_err(|e| {
                InputError::new(
                    policies,
                    format!("[{i}] ({:?}).{}", p.display_name, e.field),
                    e.message,
                )
            })?;
        }
        loaded.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
        Ok(PolicyFiles {
            policies: loaded,
            strengths,
            locations,
        })
    }

    /// A policy's name for people: its display name, else its id.
    pub fn name_of(&self, id: &str) -> String {
        self.policies
            .iter()
            .find(|p| p.id == id)
            .map(|p| {
                if p.display_name.is_empty() {
                    p.id.clone()
                } else {
                    p.display_name.clone()
                }
            })
            .unwrap_or_else(|| id.to_owned())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    applications: Vec<RawApp>,
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawUser {
    id: String,
    user_principal_name: String,
    #[serde(default)]
    display_name: Option<String>,
    /// Graph's `userType`: `Member` (the default) or `Guest`.
    #[serde(default)]
    user_type: Option<UserType>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Graph's `userType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UserType {
    Member,
    Guest,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawApp {
    client_id: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawGroup {
    id: String,
    display_name: String,
}

/// A user of the directory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub id: String,
    pub user_principal_name: String,
    /// Group ids.
    pub groups: Vec<String>,
    /// Role template ids.
    pub roles: Vec<String>,
    /// `userType: Guest` (policies on guests and external users).
    pub is_guest: bool,
}

/// An application of the directory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryApp {
    pub client_id: String,
    pub display_name: String,
}

/// The users and applications an analysis ranges over.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub users: Vec<DirectoryUser>,
    pub applications: Vec<DirectoryApp>,
    /// Group id → display name, for reports.
    pub group_names: BTreeMap<String, String>,
}

impl Directory {
    pub fn load(path: &Path) -> Result<Directory, InputError> {
        let raw: DirectoryFile = read_strict(path)?;
        let mut group_names: BTreeMap<String, String> = BTreeMap::new();
        let mut seen_groups = HashSet::new();
        for (i, g) in raw.groups.iter().enumerate() {
            if g.id.trim().is_empty() || !seen_groups.insert(g.id.to_ascii_lowercase()) {
                return Err(InputError::new(
                    path,
                    format!("groups[{i}].id"),
                    "missing or not unique",
                ));
            }
            group_names.insert(g.id.clone(), g.display_name.clone());
        }
        let mut seen_ids = HashSet::new();
        let mut seen_upns = HashSet::new();
        let mut users = Vec::with_capacity(raw.users.len());
        for (i, u) in raw.users.into_iter().enumerate() {
            let at = |field: &str| format!("users[{i}].{field}");
            if u.id.trim().is_empty() || !seen_ids.insert(u.id.to_ascii_lowercase()) {
                return Err(InputError::new(path, at("id"), "missing or not unique"));
            }
            if u.user_principal_name.trim().is_empty()
                || !seen_upns.insert(u.user_principal_name.to_ascii_lowercase())
            {
                return Err(InputError::new(
                    path,
                    at("userPrincipalName"),
                    "missing or not unique",
                ));
            }
            let mut groups = Vec::with_capacity(u.groups.len());
            for (j, g) in u.groups.iter().enumerate() {
                let at = format!("users[{i}].groups[{j}]");
                if g.trim().is_empty() {
                    return Err(InputError::new(path, at, "empty group"));
                }
                // With a `groups` list, a user's group is one of its ids or
                // display names: a typo must not quietly leave the group.
                let id = resolve_group(&group_names, g)
                    .map_err(|message| InputError::new(path, at, message))?;
                groups.push(id);
            }
            let mut roles = Vec::with_capacity(u.roles.len());
            for (j, r) in u.roles.iter().enumerate() {
                roles.push(role_template_id(r).map_err(|message| {
                    InputError::new(path, format!("users[{i}].roles[{j}]"), message)
                })?);
            }
            groups.sort();
            groups.dedup();
            roles.sort();
            roles.dedup();
            let _ = u.display_name;
            users.push(DirectoryUser {
                id: u.id,
                user_principal_name: u.user_principal_name,
                groups,
                roles,
                is_guest: u.user_type == Some(UserType::Guest),
            });
        }
        let mut seen_apps = HashSet::new();
        let mut applications = Vec::with_capacity(raw.applications.len());
        for (i, a) in raw.applications.into_iter().enumerate() {
            // Policies name apps case-insensitively; so must the directory.
            if a.client_id.trim().is_empty() || !seen_apps.insert(a.client_id.to_ascii_lowercase())
            {
                return Err(InputError::new(
                    path,
                    format!("applications[{i}].clientId"),
                    "missing or not unique",
                ));
            }
            applications.push(DirectoryApp {
                display_name: a.display_name.unwrap_or_else(|| a.client_id.clone()),
                client_id: a.client_id,
            });
        }
        Ok(Directory {
            users,
            applications,
            group_names,
        })
    }

    /// A group's id from its id or display name (as given if the directory
    /// lists no groups); an error says why not.
    pub fn group_id(&self, id_or_name: &str) -> Result<String, String> {
        resolve_group(&self.group_names, id_or_name)
    }

    pub fn user(&self, id_or_upn: &str) -> Option<&DirectoryUser> {
        self.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(id_or_upn)
                || u.user_principal_name.eq_ignore_ascii_case(id_or_upn)
        })
    }
}

/// A group's id from its id or display name: as given when no groups are
/// listed. An id wins over a display name; a display name several groups
/// share names none of them.
fn resolve_group(names: &BTreeMap<String, String>, id_or_name: &str) -> Result<String, String> {
    if names.is_empty() {
        return Ok(id_or_name.to_owned());
    }
    if names.contains_key(id_or_name) {
        return Ok(id_or_name.to_owned());
    }
    if let Some(id) = names.keys().find(|id| id.eq_ignore_ascii_case(id_or_name)) {
        return Ok(id.clone());
    }
    let named: Vec<&String> = names
        .iter()
        .filter(|(_, name)| name.eq_ignore_ascii_case(id_or_name))
        .map(|(id, _)| id)
        .collect();
    match named[..] {
        [id] => Ok(id.clone()),
        [] => Err(format!(
            "{id_or_name:?} is neither the id nor the display name of a listed group"
        )),
        _ => Err(format!(
            "{} groups are named {id_or_name:?}; use the group's id",
            named.len()
        )),
    }
}

/// A role's template id, as policies name roles: a built-in role's display
/// name or any template id (a GUID: Entra has roles Gatepass does not).
pub fn role_template_id(role: &str) -> Result<String, String> {
    if let Some(builtin) = BuiltinRole::resolve(role) {
        return Ok(builtin.template_id().to_owned());
    }
    match uuid::Uuid::parse_str(role) {
        Ok(id) => Ok(id.to_string()),
        Err(_) => Err(format!(
            "{role:?} is not a role template id (a GUID) or a built-in role: {}",
            BuiltinRole::ALL
                .iter()
                .map(|r| r.display_name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
