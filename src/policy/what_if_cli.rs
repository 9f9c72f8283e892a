//! `gatepass ca what-if`: the What-If evaluator offline, on Graph JSON files
//! (for example policies exported from Entra ID), with no server and no
//! store. It builds the same request body the API takes and calls the same
//! function, so the API and the CLI answer alike.

use super::conditional_access::{
    DirectoryFacts, StrengthSet, WhatIfRequest, load_locations, load_policies, load_strengths,
    render_table, what_if,
};
use crate::directory::roles::BuiltinRole;
use serde_json::{Value, json};
use std::path::PathBuf;
use time::OffsetDateTime;

/// The command's inputs (DESIGN §2.1), as `gatepass ca what-if` takes them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WhatIfArgs {
    /// Conditional access policies: one object, an array, or {"value": [...]}.
    #[arg(long)]
    pub policies: PathBuf,
    /// Custom authentication strengths.
    #[arg(long)]
    pub strengths: Option<PathBuf>,
    /// Named locations.
    #[arg(long)]
    pub locations: Option<PathBuf>,
    /// The user's userPrincipalName (or object id, as the files name it).
    #[arg(long)]
    pub user: String,
    /// Group object ids the user is in.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Role template ids or display names.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// The client id signed in to.
    #[arg(
        long,
        conflicts_with = "user_action",
        required_unless_present = "user_action"
    )]
    pub app: Option<String>,
    /// e.g. registerSecurityInformation
    #[arg(long)]
    pub user_action: Option<String>,
    /// The client's IP address (named locations).
    #[arg(long)]
    pub ip: Option<String>,
    /// android, iOS, windows, windowsPhone, macOS or linux.
    #[arg(long)]
    pub platform: Option<String>,
    /// browser, mobileAppsAndDesktopClients, exchangeActiveSync or other.
    #[arg(long)]
    pub client_app: Option<String>,
    /// Graph method modes, e.g. temporaryAccessPassOneTime,fido2; a passkey of
    /// a known model is fido2:<aaguid>
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Print the What-If API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The Graph `evaluate` body these arguments describe.
pub fn request_body(args: &WhatIfArgs) -> Result<Value, String> {
    let context = match (&args.app, &args.user_action) {
        (Some(app), None) => {
            json!({"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [app]})
        }
        (None, Some(action)) => {
            json!({"@odata.type": "#microsoft.graph.userActionContext", "userAction": action})
        }
        _ => {
            return Err(
                "give exactly one of --app CLIENT_ID or --user-action registerSecurityInformation"
                    .to_owned(),
            );
        }
    };
    let mut conditions = serde_json::Map::new();
    if let Some(ip) = &args.ip {
        conditions.insert("ipAddress".into(), json!(ip));
    }
    if let Some(p) = &args.platform {
        conditions.insert("devicePlatform".into(), json!(p));
    }
    if let Some(c) = &args.client_app {
        conditions.insert("clientAppType".into(), json!(c));
    }
    let mut body = json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": args.user},
        "signInContext": context,
        "signInConditions": Value::Object(conditions),
    });
    if !args.methods.is_empty() {
        body["authenticationMethods"] = json!(args.methods);
    }
    Ok(body)
}

/// Runs the command; returns what to print.
pub fn run(args: &WhatIfArgs, now: OffsetDateTime) -> Result<String, String> {
    let mut policies = load_policies(&read(&args.policies)?)
        .map_err(|e| format!("{}: {e}", args.policies.display()))?;
    // The same order the server evaluates in, so both list results alike.
    policies.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
    let strengths = match &args.strengths {
        Some(p) => StrengthSet::with_custom(
            load_strengths(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?,
        ),
        None => StrengthSet::builtin(),
    };
    let locations = match &args.locations {
        Some(p) => load_locations(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?,
        None => Vec::new(),
    };
    let mut roles = Vec::new();
    for r in &args.roles {
        match BuiltinRole::resolve(r) {
            Some(role) => roles.push(role.template_id().to_owned()),
            None => {
                let known: Vec<&str> = BuiltinRole::ALL.iter().map(|r| r.display_name()).collect();
                return Err(format!(
                    "--roles: {r:?} is not a built-in role template id or display name; the roles are {}",
                    known.join(", ")
                ));
            }
        }
    }
    let request: WhatIfRequest = serde_json::from_value(request_body(args)?)
        .map_err(|e| format!("invalid arguments: {e}"))?;
    let facts = DirectoryFacts {
        user_aliases: vec![args.user.clone()],
        group_ids: args.groups.clone(),
        role_template_ids: roles,
        is_guest: false,
    };
    let response = what_if(&request, &policies, &strengths, &locations, &facts, now)
        .map_err(|e| format!("{}: {}", e.field, e.message))?;
    if args.json {
        serde_json::to_string_pretty(&response).map_err(|e| e.to_string())
    } else {
        Ok(render_table(&response))
    }
}
