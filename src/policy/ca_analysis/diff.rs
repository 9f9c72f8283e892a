//! `gatepass ca diff --old P1 --new P2`: what changed in the policies, and
//! — with a directory — which sign-ins decide differently, old → new,
//! grouped into product sets like `ca gaps`' findings.

use super::gaps::SignIns;
use super::inputs::{Directory, PolicyFiles};
use super::product::boxes;
use super::space::{Point, Space};
use crate::policy::conditional_access::Policy;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One property that changed (`conditions.users.excludeGroups`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyChange {
    pub path: String,
    pub old: Value,
    pub new: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyChange {
    pub id: String,
    pub display_name: String,
    pub changes: Vec<PropertyChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    pub id: String,
    pub display_name: String,
}

/// Sign-ins whose decision changes from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionChange {
    pub from: &'static str,
    pub to: &'static str,
    #[serde(flatten)]
    pub sign_ins: SignIns,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub added: Vec<PolicyRef>,
    pub removed: Vec<PolicyRef>,
    pub changed: Vec<PolicyChange>,
    /// `None` without a directory (nothing to range over).
    pub decision_changes: Option<Vec<DecisionChange>>,
}

impl DiffReport {
    /// Whether any sign-in decides differently (or, without a directory,
    /// any policy changed).
    pub fn has_changes(&self) -> bool {
        match &self.decision_changes {
            Some(changes) => !changes.is_empty(),
            None => !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()),
        }
    }
}

fn reference(p: &Policy) -> PolicyRef {
    PolicyRef {
        id: p.id.clone(),
        display_name: p.display_name.clone(),
    }
}

/// Policies are matched by id, else by display name.
fn same(a: &Policy, b: &Policy) -> bool {
    if !a.id.is_empty() && !b.id.is_empty() {
        a.id.eq_ignore_ascii_case(&b.id)
    } else {
        a.display_name.eq_ignore_ascii_case(&b.display_name)
    }
}

/// Properties that describe the object, not what it does.
const BOOKKEEPING: [&str; 3] = ["modifiedDateTime", "createdDateTime", "@odata.context"];

fn flatten(at: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                if at.is_empty() && BOOKKEEPING.contains(&k.as_str()) {
                    continue;
                }
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        // Lists are compared whole (order aside): a list is one setting.
        Value::Array(items) => {
            let mut sorted = items.clone();
            sorted.sort_by_key(Value::to_string);
            out.insert(at.to_owned(), Value::Array(sorted));
        }
        other => {
            out.insert(at.to_owned(), other.clone());
        }
    }
}

/// The property changes between two versions of one policy (`null`,
/// absent, `[]` and `{}` are the same setting).
fn changes(old: &Policy, new: &Policy) -> Vec<PropertyChange> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(
        "",
        &serde_json::to_value(old).unwrap_or(Value::Null),
        &mut a,
    );
    flatten(
        "",
        &serde_json::to_value(new).unwrap_or(Value::Null),
        &mut b,
    );
    let unset = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.is_null()
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(serde_json::Map::is_empty)
        })
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            if x == y || (unset(x) && unset(y)) {
                return None;
            }
            Some(PropertyChange {
                path: k.clone(),
                old: x.cloned().unwrap_or(Value::Null),
                new: y.cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Compares `old` with `new`; with a directory, also every sign-in of the
/// input space under both.
pub fn run(
    old: &PolicyFiles,
    new: &PolicyFiles,
    directory: Option<&Directory>,
    now: OffsetDateTime,
) -> DiffReport {
    let added = new
        .policies
        .iter()
        .filter(|n| !old.policies.iter().any(|o| same(o, n)))
        .map(reference)
        .collect();
    let removed = old
        .policies
        .iter()
        .filter(|o| !new.policies.iter().any(|n| same(o, n)))
        .map(reference)
        .collect();
    let changed = new
        .policies
        .iter()
        .filter_map(|n| {
            let o = old.policies.iter().find(|o| same(o, n))?;
            let changes = changes(o, n);
            (!changes.is_empty()).then(|| PolicyChange {
                id: n.id.clone(),
                display_name: n.display_name.clone(),
                changes,
            })
        })
        .collect();
    let decision_changes = directory.map(|d| decision_changes(old, new, d, now));
    DiffReport {
        added,
        removed,
        changed,
        decision_changes,
    }
}

fn decision_changes(
    old: &PolicyFiles,
    new: &PolicyFiles,
    directory: &Directory,
    now: OffsetDateTime,
) -> Vec<DecisionChange> {
    // One space for both: classes over the union of what either mentions,
    // so a class is alike to every policy of both sets.
    let mut both = new.clone();
    both.policies.extend(old.policies.iter().cloned());
    // Locations by id from either set (each set is evaluated with its own).
    for l in &old.locations {
        if !both.locations.iter().any(|n| n.id == l.id) {
            both.locations.push(l.clone());
        }
    }
    let space = Space::new(&both, directory);
    let before = space.evaluate(old, now, |_, d| d.outcome.name());
    let after = space.evaluate(new, now, |_, d| d.outcome.name());
    let mut moved: BTreeMap<(&'static str, &'static str), Vec<Point>> = BTreeMap::new();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b != a {
            moved.entry((b, a)).or_default().push(space.point(i));
        }
    }
    let mut out = Vec::new();
    for ((from, to), points) in moved {
        for b in boxes(points) {
            out.push(DecisionChange {
                from,
                to,
                summary: format!(
                    "{}: {from} → {to}.",
                    SignIns::describe(&space, &b, "reaching")
                ),
                sign_ins: SignIns::of(&space, &b),
            });
        }
    }
    out
}

/// The human report.
pub fn render(report: &DiffReport) -> String {
    let mut out = String::new();
    for p in &report.added {
        out.push_str(&format!("+ added {} ({})\n", p.display_name, p.id));
    }
    for p in &report.removed {
        out.push_str(&format!("- removed {} ({})\n", p.display_name, p.id));
    }
    for p in &report.changed {
        out.push_str(&format!("~ changed {} ({})\n", p.display_name, p.id));
        for c in &p.changes {
            out.push_str(&format!("    {}: {} → {}\n", c.path, c.old, c.new));
        }
    }
    if report.added.is_empty() && report.removed.is_empty() && report.changed.is_empty() {
        out.push_str("No policy changed.\n");
    }
    match &report.decision_changes {
        None => out
            .push_str("\nNo --directory: the sign-ins whose decision changes were not computed.\n"),
        Some(changes) if changes.is_empty() => {
            out.push_str("\nNo sign-in decides differently.\n");
        }
        Some(changes) => {
            out.push_str(&format!("\nDecision changes: {}\n", changes.len()));
            for c in changes {
                out.push_str(&format!("  - {}\n", c.summary));
            }
        }
    }
    out
}
