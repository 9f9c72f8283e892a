//! The `gatepass` command: args → config → app → serve. Nothing else.

use clap::{Parser, Subcommand};
use gatepass::app::{AppState, key_retention};
use gatepass::clock::{Clock, SystemClock};
use gatepass::config::Settings;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "gatepass",
    version,
    about = "OpenID Connect provider with Temporary Access Pass"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; the size difference between variants is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the identity provider.
    Serve {
        #[arg(long, default_value = "config/gatepass.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and exit.
    CheckConfig {
        #[arg(long, default_value = "config/gatepass.toml")]
        config: PathBuf,
    },
    /// Issue a Temporary Access Pass directly in the store (recovery: e.g.
    /// the first-start pass lapsed unused). Prints the pass once. With the
    /// embedded store, stop the server first (the file is locked while it runs).
    IssueTap {
        #[arg(long, default_value = "config/gatepass.toml")]
        config: PathBuf,
        /// The user's userPrincipalName.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Lifetime in minutes (default: the policy's default).
        #[arg(long)]
        lifetime: Option<u32>,
        /// Issue a multi-use pass (default: one-time).
        #[arg(long)]
        multi_use: bool,
    },
    /// Bulk loading.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Conditional access tools.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Signing-key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Create users (with their groups and roles) from JSON lines or CSV
    /// (columns userPrincipalName, displayName, mail, accountEnabled,
    /// groups, roles; lists `;`-separated in CSV). Re-running skips what
    /// exists; bad rows are reported by line and skipped.
    Users {
        #[arg(long, default_value = "config/gatepass.toml")]
        config: PathBuf,
        /// The file (`.csv`, `.jsonl`, `.ndjson`, `.json`; `-` for standard input with --format).
        file: PathBuf,
        /// Overrides the format the file's extension implies.
        #[arg(long, value_parser = ["csv", "jsonl"])]
        format: Option<String>,
        /// Create groups named in the file that do not exist yet.
        #[arg(long)]
        create_groups: bool,
    },
}

/// The policy files every `ca` analysis takes (Graph JSON).
#[derive(clap::Args, Clone)]
struct CaFiles {
    /// Conditional access policies: one object, an array, or {"value": [...]}.
    #[arg(long)]
    policies: PathBuf,
    /// Custom authentication strengths.
    #[arg(long)]
    strengths: Option<PathBuf>,
    /// Named locations.
    #[arg(long)]
    locations: Option<PathBuf>,
}

impl CaFiles {
    fn args(self) -> gatepass::policy::ca_analysis::cli::PolicyArgs {
        gatepass::policy::ca_analysis::cli::PolicyArgs {
            policies: self.policies,
            strengths: self.strengths,
            locations: self.locations,
        }
    }
}

#[derive(Subcommand)]
enum CaCommand {
    /// Check named sign-ins (a scenarios file) against their expected
    /// decisions; exit 1 if any differs.
    Test {
        #[command(flatten)]
        files: CaFiles,
        /// Users (groups, roles) and applications: see README.
        #[arg(long)]
        directory: Option<PathBuf>,
        /// The scenarios file ({"scenarios": [...]}; docs/ca-scenarios.schema.json).
        scenarios: PathBuf,
        /// text, json or junit (JUnit XML).
        #[arg(long, default_value = "text", value_parser = ["text", "json", "junit"])]
        format: String,
    },
    /// Evaluate every sign-in of the directory and report weak allows,
    /// lockouts and policy findings; exit 1 on any finding.
    Gaps {
        #[command(flatten)]
        files: CaFiles,
        /// Users (groups, roles) and applications: see README.
        #[arg(long)]
        directory: PathBuf,
        /// The least a sign-in must prove: mfa, passwordlessMfa,
        /// phishingResistantMfa, or a strength id.
        #[arg(long, default_value = "mfa")]
        min_strength: String,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What changed between two policy sets and, with --directory, which
    /// sign-ins decide differently; exit 1 if any does.
    Diff {
        /// The policies in force: one object, an array, or {"value": [...]}.
        #[arg(long)]
        old: PathBuf,
        /// The proposed policies, same format.
        #[arg(long)]
        new: PathBuf,
        /// Custom authentication strengths (both sides).
        #[arg(long)]
        strengths: Option<PathBuf>,
        /// Named locations (both sides).
        #[arg(long)]
        locations: Option<PathBuf>,
        /// Users (groups, roles) and applications: with it, the sign-ins
        /// whose decision changes.
        #[arg(long)]
        directory: Option<PathBuf>,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replay a sign-in log (GET /auditLogs/signIns JSON) against a draft
    /// policy set; exit 1 if it would block or step up any sign-in.
    Impact {
        #[command(flatten)]
        files: CaFiles,
        /// The sign-in log: Graph's auditLogs/signIns JSON, from Gatepass
        /// or exported from Entra ID.
        #[arg(long)]
        sign_ins: PathBuf,
        /// Users (groups, roles) and applications; without it, the groups
        /// and roles of a user are unknown and only user ids match.
        #[arg(long)]
        directory: Option<PathBuf>,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate conditional-access policies offline (Graph JSON files: one
    /// object, an array, or {"value": [...]}) for one sign-in, including the
    /// authentication methods used. Prints a table, or the API's JSON.
    WhatIf(gatepass::policy::what_if_cli::WhatIfArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key; old keys stay published until tokens signed
    /// with them have expired, then are removed.
    Rotate {
        #[arg(long, default_value = "config/gatepass.toml")]
        config: PathBuf,
    },
}

/// Runs `work` on the configured store, for a command run beside (or
/// instead of) the server. A locked embedded store gets a hint: stop the
/// server, or `instead`.
fn with_store(
    config: &std::path::Path,
    instead: &str,
    work: impl AsyncFnOnce(AppState) -> ExitCode,
) -> ExitCode {
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatepass: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match AppState::build(settings, Arc::new(SystemClock)) {
            Ok(state) => work(state).await,
            Err(e) => {
                let text = e.to_string();
                eprintln!("gatepass: cannot open the store: {text}");
                if text.to_lowercase().contains("already open") || text.contains("lock") {
                    eprintln!(
                        "gatepass: the embedded store is in use, most likely by a running `gatepass serve`: \
                         stop it first, or {instead}"
                    );
                }
                ExitCode::FAILURE
            }
        }
    })
}

fn run_import(command: ImportCommand) -> ExitCode {
    let ImportCommand::Users {
        config,
        file,
        format,
        create_groups,
    } = command;
    let format = match format.as_deref() {
        Some("csv") => Some(gatepass::import::Format::Csv),
        Some(_) => Some(gatepass::import::Format::JsonLines),
        None => gatepass::import::Format::from_path(&file),
    };
    let Some(format) = format else {
        eprintln!(
            "gatepass: cannot tell the format of {}: name it .csv or .jsonl, or pass --format",
            file.display()
        );
        return ExitCode::FAILURE;
    };
    let (input, size): (Box<dyn std::io::BufRead>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        match std::fs::File::open(&file) {
            Ok(f) => {
                let size = f.metadata().ok().map(|m| m.len());
                (
                    Box::new(std::io::BufReader::with_capacity(1 << 16, f)),
                    size,
                )
            }
            Err(e) => {
                eprintln!("gatepass: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    };
    let instead = "create the users through the running server's Graph API (POST /v1.0/$batch)";
    with_store(&config, instead, async move |state| {
        let options = gatepass::import::Options { create_groups };
        let mut progress = ProgressLine::new(size);
        let result = gatepass::import::users(&state, input, format, &options, &mut progress).await;
        progress.finish();
        match result {
            Ok(summary) => {
                for bad in &summary.bad {
                    eprintln!("line {}: {}", bad.line, bad.reason);
                }
                println!(
                    "{} rows: {} users created, {} already there, {} groups created, \
                     {} memberships added, {} roles assigned, {} bad rows skipped",
                    summary.rows,
                    summary.created,
                    summary.existing,
                    summary.groups_created,
                    summary.memberships_added,
                    summary.roles_assigned,
                    summary.bad.len()
                );
                if summary.bad.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("gatepass: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A one-line progress report on standard error, when it is a terminal.
struct ProgressLine {
    on_terminal: bool,
    size: Option<u64>,
    started: std::time::Instant,
    shown: std::time::Instant,
}

impl ProgressLine {
    fn new(size: Option<u64>) -> ProgressLine {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        ProgressLine {
            on_terminal: std::io::stderr().is_terminal(),
            size,
            started: now,
            shown: now,
        }
    }

    fn finish(&self) {
        if self.on_terminal {
            eprint!("\r\x1b[K");
        }
    }
}

impl gatepass::import::Progress for ProgressLine {
    fn update(&mut self, rows: u64, bytes: u64) {
        if !self.on_terminal || self.shown.elapsed() < std::time::Duration::from_millis(200) {
            return;
        }
        self.shown = std::time::Instant::now();
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let share = match self.size {
            Some(size) if size > 0 => format!(" {:>3}%", bytes.saturating_mul(100) / size),
            _ => String::new(),
        };
        eprint!("\r\x1b[K{rows} rows{share}  {rate:.0} rows/s");
    }
}

fn load(config: &std::path::Path) -> Result<Settings, ExitCode> {
    Settings::load(config, std::env::vars()).map_err(|e| {
        eprintln!("gatepass: configuration refused: {e}");
        ExitCode::from(2)
    })
}

/// `ca what-if`: one sign-in, evaluated offline.
fn run_what_if(
    args: &gatepass::policy::what_if_cli::WhatIfArgs,
    now: time::OffsetDateTime,
) -> ExitCode {
    match gatepass::policy::what_if_cli::run(args, now) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatepass ca what-if: {e}");
            ExitCode::from(2)
        }
    }
}

/// The `ca` commands: exit 0 all good, 1 a finding, 2 unusable input.
fn run_ca(command: CaCommand) -> ExitCode {
    use gatepass::policy::ca_analysis::cli;
    let now = SystemClock.now();
    let (name, result) = match command {
        CaCommand::WhatIf(args) => return run_what_if(&args, now),
        CaCommand::Test {
            files,
            directory,
            scenarios,
            format,
        } => {
            let Some(format) = cli::Format::parse(&format) else {
                eprintln!("gatepass ca test: --format must be text, json or junit");
                return ExitCode::from(2);
            };
            (
                "test",
                cli::test(&files.args(), directory.as_ref(), &scenarios, format, now),
            )
        }
        CaCommand::Gaps {
            files,
            directory,
            min_strength,
            json,
        } => (
            "gaps",
            cli::gaps(&files.args(), &directory, &min_strength, json, now),
        ),
        CaCommand::Diff {
            old,
            new,
            strengths,
            locations,
            directory,
            json,
        } => {
            let side = |policies: PathBuf| cli::PolicyArgs {
                policies,
                strengths: strengths.clone(),
                locations: locations.clone(),
            };
            (
                "diff",
                cli::diff(&side(old), &side(new), directory.as_ref(), json, now),
            )
        }
        CaCommand::Impact {
            files,
            sign_ins,
            directory,
            json,
        } => (
            "impact",
            cli::impact(&files.args(), &sign_ins, directory.as_ref(), json, now),
        ),
    };
    match result {
        Ok(report) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(report.output.as_bytes());
            if !report.output.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            if report.findings {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("gatepass ca {name}: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GATEPASS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GATEPASS_LOG").is_ok_and(|v| v.contains("json"));
    // Colour only on a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load(&config) {
            Ok(settings) => {
                println!("{}: OK", config.display());
                for warning in settings.warnings() {
                    eprintln!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Keys {
            command: KeysCommand::Rotate { config },
        } => {
            let settings = match load(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let now = SystemClock.now();
            match gatepass::keys::rotate(
                &settings.keys_dir,
                settings.key_algorithm,
                now,
                key_retention(&settings),
            ) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatepass: key rotation failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ca { command } => run_ca(command),
        Command::Import { command } => run_import(command),
        Command::IssueTap {
            config,
            user,
            lifetime,
            multi_use,
        } => {
            let instead = "issue the pass through the running server (the admin console at /admin, or the Graph API)";
            with_store(&config, instead, async move |state| {
                match gatepass::server::issue_recovery_tap(&state, &user, lifetime, !multi_use)
                    .await
                {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("gatepass: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Serve { config } => {
            let settings = match load(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            init_tracing();
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(w) = settings.workers {
                runtime.worker_threads(w);
            }
            let runtime = match runtime.enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gatepass: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                // The port first: a second instance on a taken port stops
                // here, before it creates keys, an admin or a pass.
                let listener = match gatepass::server::bind(&settings).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("gatepass: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let state = match AppState::build(settings, Arc::new(SystemClock)) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("gatepass: cannot start: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                if let Err(e) = gatepass::server::bootstrap(&state).await {
                    eprintln!("gatepass: first-start bootstrap failed: {e}");
                    return ExitCode::FAILURE;
                }
                match gatepass::server::serve_listener(listener, state).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("gatepass: server error: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
