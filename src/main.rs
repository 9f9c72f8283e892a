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
enum CaCommand {
    /// Evaluate conditional-access policies offline (Graph JSON files: one
    /// object, an array, or {"value": [...]}) for one sign-in, including the
    /// authentication methods used. Prints a table, or the API's JSON.
    WhatIf {
        #[arg(long)]
        policies: PathBuf,
        #[arg(long)]
        strengths: Option<PathBuf>,
        #[arg(long)]
        locations: Option<PathBuf>,
        /// The user's userPrincipalName (or object id, as the files name it).
        #[arg(long)]
        user: String,
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Role template ids or display names.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(
            long,
            conflicts_with = "user_action",
            required_unless_present = "user_action"
        )]
        app: Option<String>,
        /// e.g. registerSecurityInformation
        #[arg(long)]
        user_action: Option<String>,
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        client_app: Option<String>,
        /// e.g. temporaryAccessPassOneTime,fido2
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        #[arg(long)]
        json: bool,
    },
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

fn load(config: &std::path::Path) -> Result<Settings, ExitCode> {
    Settings::load(config, std::env::vars()).map_err(|e| {
        eprintln!("gatepass: configuration refused: {e}");
        ExitCode::from(2)
    })
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GATEPASS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GATEPASS_LOG").is_ok_and(|v| v.contains("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        Command::Ca {
            command:
                CaCommand::WhatIf {
                    policies,
                    strengths,
                    locations,
                    user,
                    groups,
                    roles,
                    app,
                    user_action,
                    ip,
                    platform,
                    client_app,
                    methods,
                    json,
                },
        } => {
            let args = gatepass::policy::what_if_cli::WhatIfArgs {
                policies,
                strengths,
                locations,
                user,
                groups,
                roles,
                app,
                user_action,
                ip,
                platform,
                client_app,
                methods,
                json,
            };
            match gatepass::policy::what_if_cli::run(&args, SystemClock.now()) {
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
        Command::IssueTap {
            config,
            user,
            lifetime,
            multi_use,
        } => {
            let settings = match load(&config) {
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
                let state = match AppState::build(settings, Arc::new(SystemClock)) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("gatepass: cannot open the store: {e}");
                        return ExitCode::FAILURE;
                    }
                };
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
                match gatepass::server::serve(state).await {
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
