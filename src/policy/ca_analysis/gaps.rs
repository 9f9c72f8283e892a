//! `gatepass ca gaps`: every sign-in of the input space, and what slips
//! through.
//!
//! - **weak allows**: sign-ins allowed with methods weaker than
//!   `--min-strength` (default: multifactor);
//! - **lockouts**: a user who cannot reach a target at all — no method set
//!   is allowed from any platform, location or client app;
//! - **policy findings**: an exclusion with no fallback (its users are
//!   covered by no other policy where the excluding one would apply), a
//!   policy that applies to nobody, a report-only policy that would block
//!   every sign-in it sees.
//!
//! Findings are product sets ([`super::product`]), grouped by *why*: the
//! sign-ins of one finding meet every enforced policy the same way (applied
//! and satisfied, not covering the user, excluding the user, not covering
//! the target, not applying in that context). So one policy hole is one
//! finding, however many sign-ins fall through it, and the union of the
//! findings of a kind is exactly the set of sign-ins of that kind.

use super::inputs::{Directory, PolicyFiles};
use super::product::{Box as ProductBox, boxes};
use super::space::{CLIENT_APPS, METHOD_SETS, PLATFORMS, Point, Space, platform_name};
use super::words;
use crate::policy::conditional_access::{
    AnalysisReason, Outcome, Policy, PolicyState, StrengthRef, StrengthSet, UserScope, Verdict,
    evaluate, user_scope,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// Built-in strengths by the names `--min-strength` takes.
const STRENGTH_NAMES: [(&str, &str); 3] = [
    (
        "mfa",
        crate::policy::conditional_access::strengths::MULTIFACTOR,
    ),
    (
        "passwordlessMfa",
        crate::policy::conditional_access::strengths::PASSWORDLESS_MFA,
    ),
    (
        "phishingResistantMfa",
        crate::policy::conditional_access::strengths::PHISHING_RESISTANT_MFA,
    ),
];

/// Resolves `--min-strength`: `mfa`, `passwordlessMfa`,
/// `phishingResistantMfa`, or any strength id (built-in or custom).
pub fn min_strength(name: &str, strengths: &StrengthSet) -> Result<StrengthRef, String> {
    let id = STRENGTH_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or(name, |(_, id)| *id);
    strengths
        .get(id)
        .map(|s| s.reference().clone())
        .ok_or_else(|| {
            format!(
                "--min-strength {name:?}: not a strength; use mfa, passwordlessMfa, phishingResistantMfa or a strength id"
            )
        })
}

/// A set of sign-ins, as a product of the axes (ids as findings name them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIns {
    pub users: Vec<String>,
    pub targets: Vec<String>,
    /// Each a method set, by What-If method name.
    pub methods: Vec<Vec<String>>,
    pub platforms: Vec<String>,
    pub locations: Vec<String>,
    pub client_apps: Vec<String>,
}

impl SignIns {
    /// The sign-ins of a box of the space.
    pub fn of(space: &Space<'_>, b: &ProductBox<6>) -> SignIns {
        SignIns {
            users: space.user_ids(&b[0]),
            targets: space.target_ids(&b[1]),
            methods: b[2]
                .iter()
                .map(|&m| {
                    METHOD_SETS[m as usize]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                })
                .collect(),
            platforms: b[3]
                .iter()
                .map(|&p| platform_name(PLATFORMS[p as usize]).to_owned())
                .collect(),
            locations: b[4]
                .iter()
                .map(|&l| space.locations[l as usize].id.clone())
                .collect(),
            client_apps: b[5]
                .iter()
                .map(|&c| CLIENT_APPS[c as usize].as_str().to_owned())
                .collect(),
        }
    }

    /// "Users in Sales can reach every app with a password only on android".
    pub fn describe(space: &Space<'_>, b: &ProductBox<6>, verb: &str) -> String {
        format!(
            "{} {verb} {} with {}{}",
            words::users(space, &space.user_ids(&b[0])),
            words::targets(space, &space.target_ids(&b[1])),
            words::methods(&b[2]),
            words::context(space, &b[3], &b[4], &b[5]),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeakAllow {
    #[serde(flatten)]
    pub sign_ins: SignIns,
    /// The policies that explain it (applied and satisfied, excluding these
    /// users, not covering the target or the context).
    pub policies: Vec<String>,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lockout {
    pub users: Vec<String>,
    pub targets: Vec<String>,
    /// The enforced policies that block or ask for more than any method set
    /// gives.
    pub policies: Vec<String>,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyFindingKind {
    ExclusionWithoutFallback,
    AppliesToNobody,
    ReportOnlyBlocksEverything,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFinding {
    pub kind: PolicyFindingKind,
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    pub summary: String,
}

/// What was evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceSummary {
    pub users: usize,
    pub user_classes: usize,
    pub targets: usize,
    pub target_classes: usize,
    pub method_sets: usize,
    pub platforms: usize,
    pub locations: Vec<String>,
    pub client_apps: usize,
    /// Sign-ins the space stands for, and evaluations the classes needed.
    pub sign_ins: usize,
    pub evaluations: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_evaluated_locations: Vec<String>,
    /// Policies that target authentication contexts and applied to none of
    /// the space's sign-ins (which request no context).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_evaluated_policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GapsReport {
    pub min_strength: StrengthRef,
    pub space: SpaceSummary,
    pub weak_allows: Vec<WeakAllow>,
    pub lockouts: Vec<Lockout>,
    pub policy_findings: Vec<PolicyFinding>,
}

impl GapsReport {
    pub fn has_findings(&self) -> bool {
        !(self.weak_allows.is_empty()
            && self.lockouts.is_empty()
            && self.policy_findings.is_empty())
    }
}

/// How an enforced policy met one sign-in: the grouping key of findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Met {
    Satisfied,
    SteppedUp,
    Blocked,
    /// Not about this sign-in: other users, other targets.
    Unrelated,
    /// The user is included, then excluded.
    Excluded,
    /// The target is one the policy explicitly excludes.
    TargetExcluded,
    /// Does not apply in this context (platform, location, client app, risk).
    NotHere,
}

/// What is kept of one evaluated sign-in.
struct Seen {
    allowed: bool,
    /// Per enforced policy, in order.
    key: Vec<Met>,
    /// Per report-only policy: applied, and blocked.
    report_only: Vec<(bool, bool)>,
}

/// Runs the analysis.
pub fn run(
    files: &PolicyFiles,
    directory: &Directory,
    min: &StrengthRef,
    now: OffsetDateTime,
) -> GapsReport {
    let space = Space::new(files, directory);
    let policies = &files.policies;
    let enforced: Vec<usize> = (0..policies.len())
        .filter(|&i| policies[i].state == PolicyState::Enabled)
        .collect();
    let report_only: Vec<usize> = (0..policies.len())
        .filter(|&i| policies[i].state == PolicyState::EnabledForReportingButNotEnforced)
        .collect();
    // The users condition is the engine's; asked once per class.
    let scopes: Vec<Vec<UserScope>> = (0..space.user_classes.len())
        .map(|c| {
            let p: Point = [u32::try_from(c).unwrap_or(u32::MAX), 0, 0, 0, 0, 0];
            let ctx = space.context(&p);
            policies
                .iter()
                .map(|policy| user_scope(policy.conditions.users.as_ref(), &ctx))
                .collect()
        })
        .collect();
    // Which target classes each policy names in excludeApplications.
    let target_excluded: Vec<Vec<bool>> = (0..space.target_classes.len())
        .map(|c| {
            let ids = space.target_ids(&[u32::try_from(c).unwrap_or(u32::MAX)]);
            policies
                .iter()
                .map(|policy| {
                    let excluded = policy
                        .conditions
                        .applications
                        .as_ref()
                        .map(|a| {
                            crate::policy::conditional_access::model::list(&a.exclude_applications)
                        })
                        .unwrap_or_default();
                    ids.iter()
                        .any(|id| excluded.iter().any(|e| e.eq_ignore_ascii_case(id)))
                })
                .collect()
        })
        .collect();
    let seen = space.evaluate(files, now, |p, decision| {
        let met = |i: usize| {
            let r = &decision.policies[i];
            match (&r.verdict, r.analysis_reasons) {
                (Verdict::Satisfied, _) => Met::Satisfied,
                (Verdict::StepUp(_), _) => Met::SteppedUp,
                (Verdict::Block(_), _) => Met::Blocked,
                (Verdict::NotApplied, AnalysisReason::Users) => match scopes[p[0] as usize][i] {
                    UserScope::Excluded => Met::Excluded,
                    UserScope::NotIncluded | UserScope::Included => Met::Unrelated,
                },
                (
                    Verdict::NotApplied,
                    AnalysisReason::Application
                    | AnalysisReason::UserActions
                    | AnalysisReason::AuthenticationContext,
                ) if target_excluded[p[1] as usize][i] => Met::TargetExcluded,
                (
                    Verdict::NotApplied,
                    AnalysisReason::Application
                    | AnalysisReason::UserActions
                    | AnalysisReason::AuthenticationContext,
                ) => Met::Unrelated,
                (Verdict::NotApplied, _) => Met::NotHere,
            }
        };
        Seen {
            allowed: decision.outcome == Outcome::Allow,
            key: enforced.iter().map(|&i| met(i)).collect(),
            report_only: report_only
                .iter()
                .map(|&i| {
                    let r = &decision.policies[i];
                    (r.applies, matches!(r.verdict, Verdict::Block(_)))
                })
                .collect(),
        }
    });

    // Weak allows, grouped by why.
    let weak: Vec<bool> = space
        .methods
        .iter()
        .map(|m| !min.is_satisfied_by(*m))
        .collect();
    let mut weak_points: BTreeMap<&[Met], Vec<Point>> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        let p = space.point(i);
        if s.allowed && weak[p[2] as usize] {
            weak_points.entry(&s.key).or_default().push(p);
        }
    }
    let mut weak_allows = Vec::new();
    for (key, points) in weak_points {
        for b in boxes(points) {
            let (policies, why) = explain(files, &enforced, key);
            weak_allows.push(WeakAllow {
                sign_ins: SignIns::of(&space, &b),
                policies,
                summary: format!("{}: {why}.", SignIns::describe(&space, &b, "can reach")),
            });
        }
    }

    // Lockouts: no allowed sign-in at all for a (user, target).
    let contexts = space.contexts();
    let mut locked: BTreeMap<Vec<String>, Vec<[u32; 2]>> = BTreeMap::new();
    for uc in 0..space.user_classes.len() {
        for tc in 0..space.target_classes.len() {
            let start = space.index(&[uc as u32, tc as u32, 0, 0, 0, 0]);
            let block = &seen[start..start + contexts];
            if block.iter().any(|s| s.allowed) {
                continue;
            }
            // The cause: the policies that stop every one of these sign-ins
            // (say, "block Sales from the HR portal"); failing that, every
            // policy that stopped some.
            let stops = |s: &Seen, k: usize| matches!(s.key[k], Met::Blocked | Met::SteppedUp);
            let always: BTreeSet<String> = (0..enforced.len())
                .filter(|&k| block.iter().all(|s| stops(s, k)))
                .map(|k| policies[enforced[k]].id.clone())
                .collect();
            let stoppers = if always.is_empty() {
                (0..enforced.len())
                    .filter(|&k| block.iter().any(|s| stops(s, k)))
                    .map(|k| policies[enforced[k]].id.clone())
                    .collect()
            } else {
                always
            };
            locked
                .entry(stoppers.into_iter().collect())
                .or_default()
                .push([uc as u32, tc as u32]);
        }
    }
    let mut lockouts = Vec::new();
    for (stoppers, pairs) in locked {
        for b in boxes(pairs) {
            let users = space.user_ids(&b[0]);
            let targets = space.target_ids(&b[1]);
            let names: Vec<String> = stoppers.iter().map(|id| files.name_of(id)).collect();
            let names = words::join_all(&names);
            lockouts.push(Lockout {
                summary: format!(
                    "{} cannot reach {} with any method from anywhere: stopped by {}.",
                    words::users(&space, &users),
                    words::targets(&space, &targets),
                    names
                ),
                users,
                targets,
                policies: stoppers.clone(),
            });
        }
    }

    let mut policy_findings = Vec::new();
    let mut not_evaluated_policies = Vec::new();
    for (i, policy) in policies.iter().enumerate() {
        if policy.state == PolicyState::Disabled {
            continue;
        }
        let applied = seen.iter().any(|s| {
            enforced
                .iter()
                .position(|&e| e == i)
                .map(|k| matches!(s.key[k], Met::Satisfied | Met::SteppedUp | Met::Blocked))
                .or_else(|| {
                    report_only
                        .iter()
                        .position(|&r| r == i)
                        .map(|k| s.report_only[k].0)
                })
                .unwrap_or(false)
        });
        let contexts = policy.conditions.applications.as_ref().is_some_and(|a| {
            !crate::policy::conditional_access::model::list(
                &a.include_authentication_context_class_references,
            )
            .is_empty()
        });
        if !applied && contexts {
            // Sign-ins do not request authentication contexts (What-If
            // does): not applying here says nothing about the policy.
            not_evaluated_policies.push(policy.id.clone());
        } else if !applied {
            policy_findings.push(PolicyFinding {
                kind: PolicyFindingKind::AppliesToNobody,
                policies: vec![policy.id.clone()],
                users: Vec::new(),
                summary: format!(
                    "{} applies to no sign-in of this directory: check its users, targets and conditions.",
                    files.name_of(&policy.id)
                ),
            });
        }
    }
    for (k, &i) in report_only.iter().enumerate() {
        // Counted in sign-ins: a class point stands for all its members.
        let (mut applied, mut blocked) = (0usize, 0usize);
        for (idx, s) in seen.iter().enumerate() {
            let (a, b) = s.report_only[k];
            if a {
                let w = weight(&space, &space.point(idx));
                applied += w;
                blocked += usize::from(b) * w;
            }
        }
        if applied > 0 && applied == blocked {
            policy_findings.push(PolicyFinding {
                kind: PolicyFindingKind::ReportOnlyBlocksEverything,
                policies: vec![policies[i].id.clone()],
                users: Vec::new(),
                summary: format!(
                    "{} (report-only) would block every one of the {applied} sign-ins it applies to: turning it on locks them all out.",
                    files.name_of(&policies[i].id),
                ),
            });
        }
    }
    policy_findings.extend(exclusions_without_fallback(
        &space, &enforced, &scopes, &seen, now,
    ));

    GapsReport {
        min_strength: min.clone(),
        space: SpaceSummary {
            users: directory.users.len(),
            user_classes: space.user_classes.len(),
            targets: space.all_target_count(),
            target_classes: space.target_classes.len(),
            method_sets: space.methods.len(),
            platforms: PLATFORMS.len(),
            locations: space.locations.iter().map(|l| l.id.clone()).collect(),
            client_apps: CLIENT_APPS.len(),
            sign_ins: directory.users.len() * space.all_target_count() * space.contexts(),
            evaluations: space.len(),
            not_evaluated_locations: space.skipped_locations.clone(),
            not_evaluated_policies,
        },
        weak_allows,
        lockouts,
        policy_findings,
    }
}

/// The sign-ins a class point stands for.
fn weight(space: &Space<'_>, p: &Point) -> usize {
    space.user_classes[p[0] as usize].len() * space.target_classes[p[1] as usize].len()
}

/// The policies behind a weak allow and the reason in words.
fn explain(files: &PolicyFiles, enforced: &[usize], key: &[Met]) -> (Vec<String>, String) {
    let mut by: BTreeMap<Met, Vec<String>> = BTreeMap::new();
    let mut ids = Vec::new();
    for (met, &i) in key.iter().zip(enforced) {
        let policy = &files.policies[i];
        if *met != Met::Unrelated {
            ids.push(policy.id.clone());
        }
        by.entry(*met).or_default().push(files.name_of(&policy.id));
    }
    let names = |m: Met| by.get(&m).map(|n| words::join_all(n));
    let mut parts = Vec::new();
    if let Some(n) = names(Met::Satisfied) {
        parts.push(format!("{n} accept it"));
    }
    if let Some(n) = names(Met::Excluded) {
        parts.push(format!("excluded from {n}"));
    }
    if let Some(n) = names(Met::TargetExcluded) {
        parts.push(format!("{n} excluding the target"));
    }
    if let Some(n) = names(Met::NotHere) {
        parts.push(format!("{n} not applying there"));
    }
    let none_applies = !by.contains_key(&Met::Satisfied);
    let why = match (parts.is_empty(), none_applies) {
        (true, _) => "no policy applies".to_owned(),
        (false, true) => format!("{}, and no other policy applies", parts.join("; ")),
        (false, false) => parts.join("; "),
    };
    ids.sort();
    (ids, why)
}

/// An enforced policy with exclusions, whose excluded users are covered by
/// no other enforced policy wherever it would have applied to them.
fn exclusions_without_fallback(
    space: &Space<'_>,
    enforced: &[usize],
    scopes: &[Vec<UserScope>],
    seen: &[Seen],
    now: OffsetDateTime,
) -> Vec<PolicyFinding> {
    let policies = &space.files.policies;
    let mut by_users: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (k, &i) in enforced.iter().enumerate() {
        let excluded: Vec<usize> = (0..space.user_classes.len())
            .filter(|&c| scopes[c][i] == UserScope::Excluded)
            .collect();
        if excluded.is_empty() {
            continue;
        }
        // The policy as if it excluded nobody: where would it apply?
        let mut unexcluding: Policy = policies[i].clone();
        if let Some(u) = unexcluding.conditions.users.as_mut() {
            u.exclude_users = None;
            u.exclude_groups = None;
            u.exclude_roles = None;
            u.exclude_guests_or_external_users = None;
        }
        let alone = std::slice::from_ref(&unexcluding);
        let mut stranded = BTreeSet::new();
        let per_class = space.len() / space.user_classes.len().max(1);
        for &c in &excluded {
            // A class's sign-ins are contiguous in the space.
            let first = c * per_class;
            for (offset, seen_here) in seen[first..first + per_class].iter().enumerate() {
                let p = space.point(first + offset);
                let other_applies = seen_here.key.iter().enumerate().any(|(j, m)| {
                    j != k && matches!(m, Met::Satisfied | Met::SteppedUp | Met::Blocked)
                });
                if other_applies {
                    continue;
                }
                let would = evaluate(
                    alone,
                    &space.files.strengths,
                    &space.files.locations,
                    &space.context(&p),
                    now,
                );
                if would.policies.first().is_some_and(|r| r.applies) {
                    stranded.insert(c);
                    break;
                }
            }
        }
        if stranded.is_empty() {
            continue;
        }
        let classes: Vec<u32> = stranded.iter().map(|&c| c as u32).collect();
        by_users
            .entry(space.user_ids(&classes))
            .or_default()
            .push(policies[i].id.clone());
    }
    // One finding per group of stranded users, naming every policy that
    // excludes them.
    by_users
        .into_iter()
        .map(|(users, ids)| {
            let names: Vec<String> = ids.iter().map(|id| space.files.name_of(id)).collect();
            PolicyFinding {
                kind: PolicyFindingKind::ExclusionWithoutFallback,
                summary: format!(
                    "{}, excluded from {}, fall through: where those would apply to them, no other policy does. Give the excluded accounts a fallback policy (for break-glass accounts, at least a strong method).",
                    words::users(space, &users),
                    words::join_all(&names)
                ),
                policies: ids,
                users,
            }
        })
        .collect()
}

/// The human report.
pub fn render(report: &GapsReport) -> String {
    let mut out = String::new();
    let s = &report.space;
    let n = |count: usize, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    out.push_str(&format!(
        "Evaluated {} ({} in {} × {} in {} × {} × {} × {} × {}) with {}; minimum strength: {}.\n",
        n(s.sign_ins, "sign-in", "sign-ins"),
        n(s.users, "user", "users"),
        n(s.user_classes, "class", "classes"),
        n(s.targets, "target", "targets"),
        n(s.target_classes, "class", "classes"),
        n(s.method_sets, "method set", "method sets"),
        n(s.platforms, "platform", "platforms"),
        n(s.locations.len(), "location", "locations"),
        n(s.client_apps, "client app", "client apps"),
        n(s.evaluations, "evaluation", "evaluations"),
        report.min_strength.display_name()
    ));
    if !s.not_evaluated_locations.is_empty() {
        out.push_str(&format!(
            "Not evaluated (country locations): {}.\n",
            s.not_evaluated_locations.join(", ")
        ));
    }
    if !s.not_evaluated_policies.is_empty() {
        out.push_str(&format!(
            "Not evaluated (they target authentication contexts, which only What-If asks for): {}.\n",
            s.not_evaluated_policies.join(", ")
        ));
    }
    let section = |out: &mut String, title: &str, lines: Vec<&str>| {
        out.push_str(&format!("\n{title}: {}\n", lines.len()));
        for l in lines {
            out.push_str(&format!("  - {l}\n"));
        }
    };
    section(
        &mut out,
        "Weak allows",
        report
            .weak_allows
            .iter()
            .map(|f| f.summary.as_str())
            .collect(),
    );
    section(
        &mut out,
        "Lockouts",
        report.lockouts.iter().map(|f| f.summary.as_str()).collect(),
    );
    section(
        &mut out,
        "Policy findings",
        report
            .policy_findings
            .iter()
            .map(|f| f.summary.as_str())
            .collect(),
    );
    out
}
