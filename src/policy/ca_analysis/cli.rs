//! The `gatepass ca test | gaps | diff | impact` commands: files in, a
//! report out, and an exit status — 0 all good, 1 a finding (a failed
//! expectation, a gap, a changed decision, an impact), 2 unusable input.

use super::inputs::{Directory, InputError, PolicyFiles};
use super::{diff, gaps, impact, scenarios};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The policy files every command takes.
#[derive(Debug, Clone, Default)]
pub struct PolicyArgs {
    pub policies: PathBuf,
    pub strengths: Option<PathBuf>,
    pub locations: Option<PathBuf>,
}

impl PolicyArgs {
    fn load(&self) -> Result<PolicyFiles, InputError> {
        PolicyFiles::load(
            &self.policies,
            self.strengths.as_deref(),
            self.locations.as_deref(),
        )
    }
}

/// `gaps` and `diff` range over the directory's users: with none, every
/// policy would "apply to nobody" and nothing would change — a wrong file,
/// not a finding.
fn has_users(directory: &Directory, path: &Path) -> Result<(), String> {
    if directory.users.is_empty() {
        return Err(format!(
            "{}: users: the directory has no users, so there is nothing to evaluate",
            path.display()
        ));
    }
    Ok(())
}

fn directory(path: Option<&PathBuf>) -> Result<Option<Directory>, InputError> {
    path.map(|p| Directory::load(p)).transpose()
}

/// What a command printed, and whether it found something (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub output: String,
    pub findings: bool,
}

/// `ca test`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Junit,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "junit" => Some(Format::Junit),
            _ => None,
        }
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

pub fn test(
    files: &PolicyArgs,
    directory_file: Option<&PathBuf>,
    scenarios_file: &Path,
    format: Format,
    now: OffsetDateTime,
) -> Result<Report, String> {
    let loaded = files.load().map_err(|e| e.to_string())?;
    let dir = directory(directory_file).map_err(|e| e.to_string())?;
    let list = scenarios::load(scenarios_file, &loaded, dir.as_ref()).map_err(|e| e.to_string())?;
    let report = scenarios::run(&list, &loaded, dir.as_ref(), now)?;
    let output = match format {
        Format::Text => scenarios::render_text(&report),
        Format::Json => json(&report)?,
        Format::Junit => scenarios::render_junit(&report),
    };
    Ok(Report {
        output,
        findings: report.failed > 0,
    })
}

pub fn gaps(
    files: &PolicyArgs,
    directory_file: &Path,
    min_strength: &str,
    as_json: bool,
    now: OffsetDateTime,
) -> Result<Report, String> {
    let loaded = files.load().map_err(|e| e.to_string())?;
    let dir = Directory::load(directory_file).map_err(|e| e.to_string())?;
    has_users(&dir, directory_file)?;
    let min = gaps::min_strength(min_strength, &loaded.strengths)?;
    let report = gaps::run(&loaded, &dir, &min, now);
    Ok(Report {
        output: if as_json {
            json(&report)?
        } else {
            gaps::render(&report)
        },
        findings: report.has_findings(),
    })
}

pub fn diff(
    old: &PolicyArgs,
    new: &PolicyArgs,
    directory_file: Option<&PathBuf>,
    as_json: bool,
    now: OffsetDateTime,
) -> Result<Report, String> {
    let before = old.load().map_err(|e| e.to_string())?;
    let after = new.load().map_err(|e| e.to_string())?;
    let dir = directory(directory_file).map_err(|e| e.to_string())?;
    if let Some((d, path)) = dir.as_ref().zip(directory_file) {
        has_users(d, path)?;
    }
    let report = diff::run(&before, &after, dir.as_ref(), now);
    Ok(Report {
        output: if as_json {
            json(&report)?
        } else {
            diff::render(&report)
        },
        findings: report.has_changes(),
    })
}

pub fn impact(
    draft: &PolicyArgs,
    sign_ins: &Path,
    directory_file: Option<&PathBuf>,
    as_json: bool,
    now: OffsetDateTime,
) -> Result<Report, String> {
    let loaded = draft.load().map_err(|e| e.to_string())?;
    let dir = directory(directory_file).map_err(|e| e.to_string())?;
    let entries = impact::load(sign_ins).map_err(|e| e.to_string())?;
    let report = impact::run(&loaded, &entries, dir.as_ref(), now);
    Ok(Report {
        output: if as_json {
            json(&report)?
        } else {
            impact::render(&report)
        },
        findings: report.has_impact(),
    })
}
