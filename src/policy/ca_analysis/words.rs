//! Findings in words: who, what, with which methods, from where — the way a
//! security engineer would say it ("Users in Break-glass can reach every
//! app with a password only").

use super::space::{CLIENT_APPS, METHOD_SETS, PLATFORMS, REGISTER_SECURITY_INFO, Space};

/// A list in prose: "a", "a and b", "a, b and 3 more".
pub fn join(items: &[String]) -> String {
    match items {
        [] => "nobody".to_owned(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// Every item: "a, b and c".
pub fn join_all(items: &[String]) -> String {
    match items {
        [] => "nobody".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The users of a finding: a directory group when they are exactly its
/// members (or everyone outside it), "every user", or their names.
pub fn users(space: &Space<'_>, ids: &[String]) -> String {
    let directory = space.directory;
    if ids.len() == directory.users.len() {
        return "Every user".to_owned();
    }
    for (group, name) in &directory.group_names {
        let (inside, outside): (Vec<&str>, Vec<&str>) = directory
            .users
            .iter()
            .partition_map_ids(|u| u.groups.iter().any(|g| g.eq_ignore_ascii_case(group)));
        let same = |set: &[&str]| {
            !set.is_empty()
                && set.len() == ids.len()
                && set.iter().all(|m| ids.iter().any(|i| i == m))
        };
        if same(&inside) {
            return format!("Users in {name}");
        }
        if same(&outside) {
            return format!("Every user outside {name}");
        }
    }
    let names: Vec<String> = ids
        .iter()
        .map(|id| {
            directory
                .user(id)
                .map_or_else(|| id.clone(), |u| u.user_principal_name.clone())
        })
        .collect();
    join(&names)
}

/// The targets of a finding: "every app", "security-info registration", or
/// the apps' names.
pub fn targets(space: &Space<'_>, ids: &[String]) -> String {
    let apps = space.directory.applications.len();
    let rsi = ids.iter().any(|t| t == REGISTER_SECURITY_INFO);
    let app_ids: Vec<&String> = ids
        .iter()
        .filter(|t| *t != REGISTER_SECURITY_INFO)
        .collect();
    let app_part = if apps > 0 && app_ids.len() == apps {
        Some("every app".to_owned())
    } else if app_ids.is_empty() {
        None
    } else {
        let names: Vec<String> = app_ids
            .iter()
            .map(|id| {
                space
                    .directory
                    .applications
                    .iter()
                    .find(|a| &&a.client_id == id)
                    .map_or_else(|| (*id).clone(), |a| a.display_name.clone())
            })
            .collect();
        Some(join(&names))
    };
    match (app_part, rsi) {
        (Some(a), true) => format!("{a} and security-info registration"),
        (Some(a), false) => a,
        (None, true) => "security-info registration".to_owned(),
        (None, false) => "nothing".to_owned(),
    }
}

/// Splits users' ids by a test.
trait PartitionIds<'a> {
    fn partition_map_ids(
        self,
        test: impl Fn(&super::inputs::DirectoryUser) -> bool,
    ) -> (Vec<&'a str>, Vec<&'a str>);
}

impl<'a, I: Iterator<Item = &'a super::inputs::DirectoryUser>> PartitionIds<'a> for I {
    fn partition_map_ids(
        self,
        test: impl Fn(&super::inputs::DirectoryUser) -> bool,
    ) -> (Vec<&'a str>, Vec<&'a str>) {
        let (a, b): (Vec<_>, Vec<_>) = self.partition(|u| test(u));
        (
            a.into_iter().map(|u| u.id.as_str()).collect(),
            b.into_iter().map(|u| u.id.as_str()).collect(),
        )
    }
}

/// A method set in words.
pub fn method_set(names: &[&'static str]) -> String {
    let word = |n: &&'static str| -> &'static str {
        match *n {
            "password" => "a password",
            "temporaryAccessPassOneTime" => "a one-time Temporary Access Pass",
            "temporaryAccessPassMultiUse" => "a multi-use Temporary Access Pass",
            "fido2" => "a passkey",
            other => other,
        }
    };
    match names {
        [one] if *one == "password" => "a password only".to_owned(),
        _ => names.iter().map(word).collect::<Vec<_>>().join(" and "),
    }
}

/// Method-set indices in words: "a password only or a passkey", "any
/// method", "any method but a password only".
pub fn methods(indices: &[u32]) -> String {
    let all = METHOD_SETS.len();
    if indices.len() == all {
        return "any method".to_owned();
    }
    if indices.len() + 1 == all {
        if let Some(missing) = (0..all).find(|m| !indices.contains(&(*m as u32))) {
            return format!("any method but {}", method_set(METHOD_SETS[missing]));
        }
    }
    indices
        .iter()
        .map(|&m| method_set(METHOD_SETS[m as usize]))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Where, unless everywhere: " on android and iOS from Head office in browser".
pub fn context(
    space: &Space<'_>,
    platforms: &[u32],
    locations: &[u32],
    client_apps: &[u32],
) -> String {
    let mut out = String::new();
    if platforms.len() < PLATFORMS.len() {
        let names: Vec<String> = platforms
            .iter()
            .map(|&p| match PLATFORMS[p as usize] {
                Some(platform) => platform.as_str().to_owned(),
                None => "a platform the browser does not tell".to_owned(),
            })
            .collect();
        out.push_str(&format!(" on {}", join_all(&names)));
    }
    if locations.len() < space.locations.len() {
        let names: Vec<String> = locations
            .iter()
            .map(|&l| space.locations[l as usize].name.clone())
            .collect();
        out.push_str(&format!(" from {}", join_all(&names)));
    }
    if client_apps.len() < CLIENT_APPS.len() {
        let names: Vec<String> = client_apps
            .iter()
            .map(|&c| CLIENT_APPS[c as usize].as_str().to_owned())
            .collect();
        out.push_str(&format!(" in {}", join_all(&names)));
    }
    out
}
