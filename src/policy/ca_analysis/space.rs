//! The input space of the analyses (DESIGN §2.9), and evaluating it.
//!
//! A point is one hypothetical sign-in: a user, a target (an application or
//! the register-security-info action), a method set, a device platform, a
//! location and a client app type. The space is their product — for 1,000
//! users and 20 apps, eight million points — but most users are alike to
//! every policy: what a policy sees of a user is which of the groups, roles
//! and user names *it mentions* the user has. Users with the same answer
//! for every group, role and name any policy mentions form one *class*, and
//! apps that no policy names apart form one class too; each class is
//! evaluated once, with the engine's own [`evaluate`], and its answer holds
//! for every member. The classes are exact, not an approximation.
//!
//! Evaluation runs on every core; on a terminal, stderr shows progress.

use super::inputs::{Directory, DirectoryUser, PolicyFiles};
use crate::policy::conditional_access::model::{LocationKind, list};
use crate::policy::conditional_access::{
    ClientAppType, Decision, DevicePlatform, MethodSet, Policy, SignInContext, Target, UserAction,
    evaluate,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::net::IpAddr;
use time::OffsetDateTime;

/// The method sets every analysis tries, by What-If name.
pub const METHOD_SETS: [&[&str]; 5] = [
    &["password"],
    &["temporaryAccessPassOneTime"],
    &["temporaryAccessPassMultiUse"],
    &["fido2"],
    &["password", "fido2"],
];

/// The device platforms every analysis tries; `None` is a platform the
/// User-Agent does not tell (curl, ChromeOS, …), as live sign-ins see it.
pub const PLATFORMS: [Option<DevicePlatform>; 7] = [
    Some(DevicePlatform::Android),
    Some(DevicePlatform::Ios),
    Some(DevicePlatform::Windows),
    Some(DevicePlatform::WindowsPhone),
    Some(DevicePlatform::MacOs),
    Some(DevicePlatform::Linux),
    None,
];

/// A platform's name in findings: Graph's, or `unknown`.
pub fn platform_name(platform: Option<DevicePlatform>) -> &'static str {
    platform.map_or("unknown", DevicePlatform::as_str)
}

/// The client app types every analysis tries.
pub const CLIENT_APPS: [ClientAppType; 4] = [
    ClientAppType::Browser,
    ClientAppType::MobileAppsAndDesktopClients,
    ClientAppType::ExchangeActiveSync,
    ClientAppType::Other,
];

/// The id findings give the register-security-info target.
pub const REGISTER_SECURITY_INFO: &str = "registerSecurityInformation";

/// The id findings give a sign-in from no named location.
pub const OTHER_LOCATION: &str = "other";

/// A target: an application of the directory (by index), or the
/// register-security-info user action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetRef {
    App(usize),
    RegisterSecurityInformation,
}

/// A location of the space: the addresses inside exactly one set of IP
/// named locations — usually one location; `a+b` where ranges nest or
/// repeat (an address in both); "other" for addresses in none. Every
/// address of a location is alike to every policy, so one (`ip`) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    pub name: String,
    pub ip: IpAddr,
}

/// The axes, their sizes, and the classes of users and targets.
#[derive(Debug)]
pub struct Space<'a> {
    pub files: &'a PolicyFiles,
    pub directory: &'a Directory,
    /// Each class: indices into `directory.users`, all alike to every policy.
    pub user_classes: Vec<Vec<usize>>,
    pub target_classes: Vec<Vec<TargetRef>>,
    pub methods: Vec<MethodSet>,
    pub locations: Vec<Location>,
    /// Country named locations (not evaluated: no IP-to-country data).
    pub skipped_locations: Vec<String>,
}

/// One point, by axis index: user class, target class, method set,
/// platform, location, client app.
pub type Point = [u32; 6];

impl<'a> Space<'a> {
    pub fn new(files: &'a PolicyFiles, directory: &'a Directory) -> Space<'a> {
        let methods = METHOD_SETS
            .iter()
            .map(|names| MethodSet::parse_names(names).unwrap_or(MethodSet::EMPTY))
            .collect();
        let (locations, skipped_locations) = locations_of(files);
        Space {
            user_classes: user_classes(&files.policies, directory),
            target_classes: target_classes(&files.policies, directory),
            files,
            directory,
            methods,
            locations,
            skipped_locations,
        }
    }

    /// The number of points of one (user class, target class) pair.
    pub fn contexts(&self) -> usize {
        self.methods.len() * PLATFORMS.len() * self.locations.len() * CLIENT_APPS.len()
    }

    /// The number of points evaluated: classes × contexts.
    pub fn len(&self) -> usize {
        self.user_classes.len() * self.target_classes.len() * self.contexts()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The axis sizes, in [`Point`] order.
    pub fn dims(&self) -> [usize; 6] {
        [
            self.user_classes.len(),
            self.target_classes.len(),
            self.methods.len(),
            PLATFORMS.len(),
            self.locations.len(),
            CLIENT_APPS.len(),
        ]
    }

    pub fn point(&self, mut index: usize) -> Point {
        let dims = self.dims();
        let mut p = [0u32; 6];
        for axis in (0..6).rev() {
            let size = dims[axis].max(1);
            p[axis] = u32::try_from(index % size).unwrap_or(u32::MAX);
            index /= size;
        }
        p
    }

    pub fn index(&self, p: &Point) -> usize {
        let dims = self.dims();
        let mut index = 0usize;
        for axis in 0..6 {
            index = index * dims[axis] + p[axis] as usize;
        }
        index
    }

    /// The user a class is evaluated as (any member answers for all).
    pub fn representative(&self, class: u32) -> &DirectoryUser {
        &self.directory.users[self.user_classes[class as usize][0]]
    }

    /// The sign-in a point describes, for [`evaluate`].
    pub fn context(&self, p: &Point) -> SignInContext {
        let user = self.representative(p[0]);
        let target = match self.target_classes[p[1] as usize][0] {
            TargetRef::App(i) => {
                Target::application(self.directory.applications[i].client_id.clone())
            }
            TargetRef::RegisterSecurityInformation => {
                Target::user_action(UserAction::RegisterSecurityInformation)
            }
        };
        let mut ctx = SignInContext::live(user.id.clone(), target);
        ctx.user_aliases = vec![user.user_principal_name.clone()];
        ctx.is_guest = user.is_guest;
        ctx.group_ids = user.groups.clone();
        ctx.role_template_ids = user.roles.clone();
        ctx.methods = Some(self.methods[p[2] as usize]);
        ctx.device_platform = PLATFORMS[p[3] as usize];
        ctx.ip_address = Some(self.locations[p[4] as usize].ip);
        ctx.client_app_type = Some(CLIENT_APPS[p[5] as usize]);
        ctx
    }

    /// Evaluates a policy set (its policies, with its strengths and named
    /// locations) at every point with the engine, on every core, keeping
    /// what `keep` takes from each decision; indexed like [`Space::index`].
    pub fn evaluate<T: Send>(
        &self,
        files: &PolicyFiles,
        now: OffsetDateTime,
        keep: impl Fn(&Point, Decision) -> T + Sync,
    ) -> Vec<T> {
        let total = self.len();
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 64);
        let chunk = total.div_ceil(workers).max(1);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let progress = Progress::new(total);
        let keep = &keep;
        let done = &done;
        let progress = &progress;
        let mut parts: Vec<Vec<T>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    scope.spawn(move || {
                        let start = w * chunk;
                        let end = ((w + 1) * chunk).min(total);
                        let mut out = Vec::with_capacity(end.saturating_sub(start));
                        for i in start..end {
                            let p = self.point(i);
                            let decision = evaluate(
                                &files.policies,
                                &files.strengths,
                                &files.locations,
                                &self.context(&p),
                                now,
                            );
                            out.push(keep(&p, decision));
                            if i % 4096 == 0 {
                                let n = done.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
                                progress.show(n);
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                // A worker that panicked lost its part: never report without it.
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        progress.finish();
        let mut all = Vec::with_capacity(total);
        for part in &mut parts {
            all.append(part);
        }
        all
    }

    /// The users of some user classes, as ids (sorted).
    pub fn user_ids(&self, classes: &[u32]) -> Vec<String> {
        let mut ids: Vec<String> = classes
            .iter()
            .flat_map(|&c| self.user_classes[c as usize].iter())
            .map(|&i| self.directory.users[i].id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The targets of some target classes, as ids (client ids, or
    /// `registerSecurityInformation`).
    pub fn target_ids(&self, classes: &[u32]) -> Vec<String> {
        let mut ids: Vec<String> = classes
            .iter()
            .flat_map(|&c| self.target_classes[c as usize].iter())
            .map(|t| match t {
                TargetRef::App(i) => self.directory.applications[*i].client_id.clone(),
                TargetRef::RegisterSecurityInformation => REGISTER_SECURITY_INFO.to_owned(),
            })
            .collect();
        ids.sort();
        ids
    }

    /// Every target id of the space.
    pub fn all_target_count(&self) -> usize {
        self.target_classes.iter().map(Vec::len).sum()
    }
}

/// Progress on stderr, only when stderr is a terminal.
struct Progress {
    total: usize,
    on: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            on: std::io::stderr().is_terminal() && total > 50_000,
        }
    }

    fn show(&self, done: usize) {
        if self.on {
            let pct = done.min(self.total) * 100 / self.total.max(1);
            eprint!("\revaluating {done}/{} sign-ins ({pct}%)", self.total);
        }
    }

    fn finish(&self) {
        if self.on {
            eprintln!("\revaluated {} sign-ins            ", self.total);
        }
    }
}

/// The groups, roles and user names any policy mentions, folded as the
/// engine compares them (ASCII case-insensitive).
#[derive(Default)]
struct Mentioned {
    groups: BTreeSet<String>,
    roles: BTreeSet<String>,
    users: BTreeSet<String>,
    apps: BTreeSet<String>,
}

fn mentioned(policies: &[Policy]) -> Mentioned {
    let mut m = Mentioned::default();
    let add = |set: &mut BTreeSet<String>, values: &[String]| {
        set.extend(values.iter().map(|v| v.to_ascii_lowercase()));
    };
    for p in policies {
        if let Some(u) = &p.conditions.users {
            add(&mut m.groups, list(&u.include_groups));
            add(&mut m.groups, list(&u.exclude_groups));
            add(&mut m.roles, list(&u.include_roles));
            add(&mut m.roles, list(&u.exclude_roles));
            add(&mut m.users, list(&u.include_users));
            add(&mut m.users, list(&u.exclude_users));
        }
        if let Some(a) = &p.conditions.applications {
            add(&mut m.apps, list(&a.include_applications));
            add(&mut m.apps, list(&a.exclude_applications));
        }
    }
    m
}

/// Users alike to every policy share a class: the same mentioned groups,
/// mentioned roles and mentioned names, and guests apart from members.
fn user_classes(policies: &[Policy], directory: &Directory) -> Vec<Vec<usize>> {
    let m = mentioned(policies);
    // All a policy can tell users by.
    type Key = (Vec<String>, Vec<String>, Vec<String>, bool);
    let mut classes: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, u) in directory.users.iter().enumerate() {
        let pick = |values: &[String], set: &BTreeSet<String>| -> Vec<String> {
            let mut picked: Vec<String> = values
                .iter()
                .map(|v| v.to_ascii_lowercase())
                .filter(|v| set.contains(v))
                .collect();
            picked.sort();
            picked.dedup();
            picked
        };
        let names = pick(&[u.id.clone(), u.user_principal_name.clone()], &m.users);
        let key = (
            pick(&u.groups, &m.groups),
            pick(&u.roles, &m.roles),
            names,
            u.is_guest,
        );
        classes.entry(key).or_default().push(i);
    }
    classes.into_values().collect()
}

/// Apps no policy names apart share a class; each named app is its own;
/// the register-security-info action is its own.
fn target_classes(policies: &[Policy], directory: &Directory) -> Vec<Vec<TargetRef>> {
    let m = mentioned(policies);
    let mut classes: BTreeMap<Option<String>, Vec<TargetRef>> = BTreeMap::new();
    for (i, a) in directory.applications.iter().enumerate() {
        let id = a.client_id.to_ascii_lowercase();
        let key = m.apps.contains(&id).then_some(id);
        classes.entry(key).or_default().push(TargetRef::App(i));
    }
    let mut out: Vec<Vec<TargetRef>> = classes.into_values().collect();
    out.push(vec![TargetRef::RegisterSecurityInformation]);
    out
}

/// The locations of the space (see [`Location`]), then "other" if some
/// address is in no named location; and the country locations, which are
/// not evaluated.
///
/// The ranges cut each address family into intervals in which every
/// address is inside the same named locations; the start of each interval
/// stands for it, and intervals inside the same locations are one.
fn locations_of(files: &PolicyFiles) -> (Vec<Location>, Vec<String>) {
    let mut named = Vec::new();
    let mut skipped = Vec::new();
    for l in &files.locations {
        match l.kind() {
            LocationKind::Ip => named.push(l),
            LocationKind::Country | LocationKind::Unknown => skipped.push(l.display_name.clone()),
        }
    }
    // Addresses outside every range read well in reports: try these first.
    let mut candidates: Vec<IpAddr> = [
        "203.0.113.77",
        "198.51.100.77",
        "192.0.2.77",
        "2001:db8::77",
    ]
    .iter()
    .filter_map(|c| c.parse().ok())
    .collect();
    let mut starts: BTreeSet<IpAddr> = BTreeSet::new();
    for cidr in named
        .iter()
        .flat_map(|l| l.ip_ranges.iter().flatten())
        .filter_map(|r| r.cidr())
    {
        let (first, last) = cidr.bounds();
        starts.insert(first);
        if let Some(after) = next_address(last) {
            starts.insert(after);
        }
        // The start of the family, which may be outside every range.
        match first {
            IpAddr::V4(_) => {
                starts.insert(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            }
            IpAddr::V6(_) => {
                starts.insert(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
                // IPv4-mapped addresses (::ffff:0:0/96) are compared as
                // IPv4: an interval starting inside that block does not
                // stand for the IPv6 addresses after it.
                starts.insert(IpAddr::V6(std::net::Ipv6Addr::new(0, 0, 0, 0, 1, 0, 0, 0)));
            }
        }
    }
    candidates.extend(starts);
    // By the set of locations an address is in (indices into `named`).
    let mut regions: BTreeMap<Vec<usize>, IpAddr> = BTreeMap::new();
    for ip in candidates {
        let inside: Vec<usize> = (0..named.len())
            .filter(|&i| named[i].contains(ip))
            .collect();
        regions.entry(inside).or_insert(ip);
    }
    let other = regions.remove(&Vec::new());
    let mut out: Vec<Location> = regions
        .into_iter()
        .map(|(inside, ip)| {
            let ids: Vec<&str> = inside.iter().map(|&i| named[i].id.as_str()).collect();
            let names: Vec<&str> = inside
                .iter()
                .map(|&i| named[i].display_name.as_str())
                .collect();
            Location {
                id: ids.join("+"),
                name: if names.len() == 1 {
                    names.concat()
                } else {
                    format!("{} (an address in all of them)", names.join(" + "))
                },
                ip,
            }
        })
        .collect();
    if let Some(ip) = other {
        out.push(Location {
            id: OTHER_LOCATION.to_owned(),
            name: "any other location".to_owned(),
            ip,
        });
    }
    (out, skipped)
}

/// The address after `ip`, if there is one.
fn next_address(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}
