//! `gatepass import users FILE`: bulk-loads users (with their groups and
//! roles) from JSON lines or CSV, through the same operations as the Graph
//! API, on either store backend.
//!
//! The file is read a row at a time. Each row is checked whole (its roles
//! known, its groups found) before anything of it is written, so a bad row
//! is reported with its line number and leaves nothing behind. Re-running
//! an import is safe: a user whose userPrincipalName exists is not created
//! again, and only the group memberships and role assignments the user
//! lacks are added (which also completes a row an interrupted run left
//! half-done).
//!
//! The importer acts as the application `gatepass-cli` holding
//! `User.ReadWrite.All`, `Group.ReadWrite.All` and
//! `RoleManagement.ReadWrite.Directory`: whoever runs it holds the store,
//! and the directory's rules and audit log see an application like any
//! other. Accounts are created without passwords (users onboard with a
//! Temporary Access Pass), so an import file holds no secrets.

use crate::app::AppState;
use crate::directory::Group;
use crate::directory::roles::BuiltinRole;
use crate::graph::auth::Caller;
use crate::graph::error::GraphError;
use crate::graph::users::CreateUser;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufRead;

/// The client id the importer acts as (in the audit log).
pub const IMPORTER: &str = "gatepass-cli";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// A header row, then one user per row; `groups` and `roles` are
    /// `;`-separated.
    Csv,
}

impl Format {
    /// From the file name: `.csv` is CSV, `.jsonl`, `.ndjson` and `.json`
    /// are JSON lines.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Create a group named in the file that does not exist (by display
    /// name). Off: such a row is refused, so a typo cannot make a group.
    pub create_groups: bool,
}

/// One row of the file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Row {
    user_principal_name: String,
    display_name: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default = "yes")]
    account_enabled: bool,
    /// Group object ids or display names.
    #[serde(default)]
    groups: Vec<String>,
    /// Role display names or template ids.
    #[serde(default)]
    roles: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A CSV row: the same columns, lists `;`-separated.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CsvRow {
    user_principal_name: String,
    display_name: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    account_enabled: Option<String>,
    #[serde(default)]
    groups: Option<String>,
    #[serde(default)]
    roles: Option<String>,
}

impl CsvRow {
    fn into_row(self) -> Result<Row, String> {
        let list = |s: Option<String>| -> Vec<String> {
            s.unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let account_enabled = match self.account_enabled.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(format!("accountEnabled must be true or false, not {v:?}")),
        };
        Ok(Row {
            user_principal_name: self.user_principal_name,
            display_name: self.display_name,
            mail: self.mail.filter(|m| !m.trim().is_empty()),
            account_enabled,
            groups: list(self.groups),
            roles: list(self.roles),
        })
    }
}

/// A row that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub created: u64,
    /// Users whose userPrincipalName already existed (not created again).
    pub existing: u64,
    pub groups_created: u64,
    pub memberships_added: u64,
    pub roles_assigned: u64,
    pub bad: Vec<BadRow>,
}

/// Why an import stopped before the end of the file (a bad row does not
/// stop it).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error(
        "the store failed at line {line}: {message} (re-run the import: rows already done are skipped)"
    )]
    Store { line: u64, message: String },
}

/// Reports progress: called with the rows done and the bytes read so far.
pub trait Progress {
    fn update(&mut self, rows: u64, bytes: u64);
}

impl Progress for () {
    fn update(&mut self, _: u64, _: u64) {}
}

/// Imports every row of `input`.
pub async fn users(
    state: &AppState,
    input: impl BufRead,
    format: Format,
    options: &Options,
    progress: &mut (dyn Progress + Send),
) -> Result<Summary, ImportError> {
    let mut importer = Importer::new(state, options).await?;
    let mut counted = CountingReader {
        inner: input,
        bytes: 0,
    };
    let result = match format {
        Format::JsonLines => json_lines(&mut importer, &mut counted, progress).await,
        Format::Csv => csv_rows(&mut importer, &mut counted, progress).await,
    };
    // Rows in flight finish (or fail) before the import answers.
    let finished = importer.drain(0).await;
    result.and(finished)?;
    importer.summary.bad.sort_by_key(|b| b.line);
    Ok(importer.summary)
}

async fn json_lines<R: BufRead>(
    importer: &mut Importer<'_>,
    input: &mut CountingReader<R>,
    progress: &mut (dyn Progress + Send),
) -> Result<(), ImportError> {
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = input
            .read_line(&mut line)
            .map_err(|e| ImportError::Read(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str::<Row>(&line).map_err(|e| e.to_string());
        importer.row(number, row).await?;
        progress.update(importer.summary.rows, input.bytes);
    }
}

async fn csv_rows<R: BufRead>(
    importer: &mut Importer<'_>,
    input: &mut CountingReader<R>,
    progress: &mut (dyn Progress + Send),
) -> Result<(), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Read(e.to_string()))?
        .clone();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                let row = record
                    .deserialize::<CsvRow>(Some(&headers))
                    .map_err(|e| e.to_string())
                    .and_then(CsvRow::into_row);
                importer.row(line, row).await?;
            }
            Err(e) => {
                // A malformed record (e.g. an unclosed quote) is that
                // row's fault; the reader goes on after it.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(ImportError::Read(e.to_string()));
                }
                let line = e.position().map_or(0, csv::Position::line);
                importer.row(line, Err(e.to_string())).await?;
            }
        }
        progress.update(importer.summary.rows, reader.position().byte());
    }
}

struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: BufRead> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.bytes += amt as u64;
        self.inner.consume(amt);
    }
}

/// Rows written at once. The embedded store commits every write queued
/// while it commits the previous batch together (one fsync for many), and
/// Redis pipelines them, so rows in flight amortise the store's round
/// trips; each row is still its own operations, audited alone.
const IN_FLIGHT: usize = 32;

/// What a checked row needs written besides the user.
struct Needs {
    roles: BTreeSet<BuiltinRole>,
    groups: Vec<Group>,
    /// Groups to create first (`--create-groups`).
    missing: Vec<String>,
}

/// What writing one row did.
#[derive(Default)]
struct Done {
    created: bool,
    groups_created: Vec<Group>,
    memberships_added: u64,
    roles_assigned: u64,
}

type Writing<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (u64, String, Result<Done, Refusal>)> + Send + 'a>,
>;

struct Importer<'a> {
    state: &'a AppState,
    caller: Caller,
    options: &'a Options,
    /// Every group, by id and by lower-cased display name (groups are few
    /// next to users; read once).
    by_id: HashMap<String, Group>,
    by_name: HashMap<String, Vec<Group>>,
    /// Rows being written, and their userPrincipalNames (lower-cased).
    writing: FuturesUnordered<Writing<'a>>,
    upns: HashSet<String>,
    summary: Summary,
}

impl<'a> Importer<'a> {
    async fn new(state: &'a AppState, options: &'a Options) -> Result<Importer<'a>, ImportError> {
        let groups = state
            .directory
            .list_groups(state.clock.now())
            .await
            .map_err(|e| ImportError::Store {
                line: 0,
                message: e.to_string(),
            })?;
        let mut importer = Importer {
            state,
            caller: Caller::App {
                client_id: IMPORTER.to_owned(),
                permissions: [
                    "User.ReadWrite.All",
                    "Group.ReadWrite.All",
                    "RoleManagement.ReadWrite.Directory",
                ]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            },
            options,
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            writing: FuturesUnordered::new(),
            upns: HashSet::new(),
            summary: Summary::default(),
        };
        for g in groups {
            importer.remember(g);
        }
        Ok(importer)
    }

    fn remember(&mut self, g: Group) {
        self.by_name
            .entry(g.display_name.to_lowercase())
            .or_default()
            .push(g.clone());
        self.by_id.insert(g.id.to_string(), g);
    }

    /// One row: checked whole, then written. A bad row is recorded; only a
    /// store failure stops the import.
    async fn row(&mut self, line: u64, row: Result<Row, String>) -> Result<(), ImportError> {
        self.summary.rows += 1;
        let row = match row {
            Ok(row) => row,
            Err(reason) => return self.account(line, Err(Refusal::Bad(reason))),
        };
        let mut needs = self.check(&row);
        let upn = row.user_principal_name.to_lowercase();
        // A row that makes a group, or names a user a row in flight names,
        // waits for every row before it and is checked again: the second
        // row sees what the first wrote.
        let makes_groups = needs.as_ref().is_ok_and(|n| !n.missing.is_empty());
        if makes_groups || self.upns.contains(&upn) {
            self.drain(0).await?;
            needs = self.check(&row);
        }
        let needs = match needs {
            Ok(needs) => needs,
            Err(refusal) => return self.account(line, Err(refusal)),
        };
        if !needs.missing.is_empty() {
            // Written alone, so the next row finds the groups it made.
            let done = write(self.state, &self.caller, row, needs).await;
            return self.account(line, done);
        }
        self.drain(IN_FLIGHT - 1).await?;
        self.upns.insert(upn.clone());
        let state = self.state;
        let caller = self.caller.clone();
        self.writing.push(Box::pin(async move {
            let done = write(state, &caller, row, needs).await;
            (line, upn, done)
        }));
        Ok(())
    }

    /// Waits until at most `left` rows are in flight.
    async fn drain(&mut self, left: usize) -> Result<(), ImportError> {
        while self.writing.len() > left {
            let Some((line, upn, done)) = self.writing.next().await else {
                break;
            };
            self.upns.remove(&upn);
            self.account(line, done)?;
        }
        Ok(())
    }

    fn account(&mut self, line: u64, done: Result<Done, Refusal>) -> Result<(), ImportError> {
        match done {
            Ok(done) => {
                if done.created {
                    self.summary.created += 1;
                } else {
                    self.summary.existing += 1;
                }
                self.summary.groups_created += done.groups_created.len() as u64;
                self.summary.memberships_added += done.memberships_added;
                self.summary.roles_assigned += done.roles_assigned;
                for g in done.groups_created {
                    self.remember(g);
                }
                Ok(())
            }
            Err(Refusal::Bad(reason)) => {
                self.summary.bad.push(BadRow { line, reason });
                Ok(())
            }
            Err(Refusal::Store(message)) => Err(ImportError::Store { line, message }),
        }
    }

    /// Everything about the row that can be known before writing: its
    /// roles exist, its groups exist (or will be made).
    fn check(&self, row: &Row) -> Result<Needs, Refusal> {
        if row.user_principal_name.trim().is_empty() {
            return Err(Refusal::Bad("userPrincipalName is empty".to_owned()));
        }
        let roles = row
            .roles
            .iter()
            .map(|r| {
                BuiltinRole::resolve(r).ok_or_else(|| Refusal::Bad(format!("unknown role {r:?}")))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let mut groups = Vec::new();
        let mut missing = Vec::new();
        for name in &row.groups {
            match self.group(name)? {
                Some(g) => groups.push(g),
                None if self.options.create_groups => missing.push(name.clone()),
                None => {
                    return Err(Refusal::Bad(format!(
                        "no group {name:?} (create it first, or import with --create-groups)"
                    )));
                }
            }
        }
        Ok(Needs {
            roles,
            groups,
            missing,
        })
    }

    /// A group by id or display name; an ambiguous name is the row's fault.
    fn group(&self, name: &str) -> Result<Option<Group>, Refusal> {
        if let Some(g) = self.by_id.get(name) {
            return Ok(Some(g.clone()));
        }
        match self.by_name.get(&name.to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([g]) => Ok(Some(g.clone())),
            Some(_) => Err(Refusal::Bad(format!(
                "more than one group is named {name:?}: name it by its id"
            ))),
        }
    }
}

/// Writes a checked row: the user (unless it exists), then the groups it
/// makes, the memberships and roles it lacks.
async fn write(state: &AppState, caller: &Caller, row: Row, needs: Needs) -> Result<Done, Refusal> {
    let now = state.clock.now();
    let Needs {
        roles,
        mut groups,
        missing,
    } = needs;
    let mut done = Done::default();
    let existing = state
        .directory
        .find_user(&row.user_principal_name, now)
        .await
        .map_err(|e| Refusal::Store(e.to_string()))?;
    let user = match existing {
        Some(user) => user,
        None => {
            let input = CreateUser {
                user_principal_name: row.user_principal_name,
                display_name: row.display_name,
                account_enabled: row.account_enabled,
                mail: row.mail,
                password_profile: None,
            };
            done.created = true;
            crate::graph::users::create_user(state, caller, input, now)
                .await
                .map_err(Refusal::from)?
        }
    };
    for name in missing {
        let g = crate::graph::groups::create_group(state, caller, name, None, None, now)
            .await
            .map_err(Refusal::store)?;
        done.groups_created.push(g.clone());
        groups.push(g);
    }
    let member_of = state
        .directory
        .groups_of(user.id, now)
        .await
        .map_err(|e| Refusal::Store(e.to_string()))?;
    for g in groups.iter().filter(|g| !member_of.contains(&g.id)) {
        crate::graph::groups::add_member_to(state, caller, g, user.id, now)
            .await
            .map_err(Refusal::store)?;
        done.memberships_added += 1;
    }
    let held = state
        .directory
        .roles_of(user.id, now)
        .await
        .map_err(|e| Refusal::Store(e.to_string()))?;
    for &role in roles.iter().filter(|r| !held.contains(r)) {
        crate::graph::roles::assign_role(state, caller, role, user.id, now)
            .await
            .map_err(Refusal::store)?;
        done.roles_assigned += 1;
    }
    Ok(done)
}

enum Refusal {
    /// The row's fault: reported, skipped.
    Bad(String),
    /// The store's: the import stops (a re-run resumes).
    Store(String),
}

impl Refusal {
    /// A write after the row was checked: anything but a refusal of the
    /// row's own data is the store's fault.
    fn store(e: GraphError) -> Refusal {
        Refusal::Store(e.message)
    }
}

impl From<GraphError> for Refusal {
    /// Creating the user: a 4xx is the row's (an invalid or taken
    /// userPrincipalName), a 5xx the store's.
    fn from(e: GraphError) -> Refusal {
        if e.status.is_client_error() {
            Refusal::Bad(e.message)
        } else {
            Refusal::Store(e.message)
        }
    }
}
