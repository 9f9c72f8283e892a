//! Authentication methods (the Temporary Access Pass policy), conditional
//! access (policies, import of an Entra export) and What If.

use super::{Chrome, Console, Form, Refusal, done, enc, notice_text, query_of, refused, show};
use crate::app::AppState;
use crate::authn::tap::{ALL_USERS, MethodState, MethodTarget, TapPolicy};
use crate::directory::Group;
use crate::directory::authority::access;
use crate::graph::conditional_access as ca;
use crate::graph::methods;
use crate::policy::ca_store::CaKind;
use crate::policy::conditional_access::WhatIfRequest;
use crate::web::error::PageError;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

#[derive(Template)]
#[template(path = "admin/methods.html")]
struct MethodsPage {
    chrome: Chrome,
    tap_state: &'static str,
}

pub async fn methods(
    State(state): State<AppState>,
    console: Console,
) -> Result<Response, PageError> {
    let policy = methods::tap_policy(&state, &console.caller, state.clock.now())
        .await
        .map_err(refused)?;
    Ok(show(
        StatusCode::OK,
        &MethodsPage {
            chrome: console.chrome("methods"),
            tap_state: match policy.state {
                MethodState::Enabled => "Enabled",
                MethodState::Disabled => "Disabled",
            },
        },
    ))
}

/// A number field of the policy form and the property it sets.
pub struct NumberField {
    pub id: &'static str,
    pub label: &'static str,
    pub property: &'static str,
    pub value: String,
    pub hint: &'static str,
}

pub struct GroupChoice {
    pub id: String,
    pub name: String,
    pub included: bool,
    pub excluded: bool,
}

#[derive(Template)]
#[template(path = "admin/tap_policy.html")]
struct TapPolicyPage {
    chrome: Chrome,
    enabled: bool,
    numbers: Vec<NumberField>,
    one_time: bool,
    all_users: bool,
    groups: Vec<GroupChoice>,
    can_write: bool,
    notice: Option<&'static str>,
    alert: Option<String>,
    field: Option<String>,
}

impl TapPolicyPage {
    /// The error text for `property`, when the refusal is about it.
    fn error_for(&self, property: &str) -> Option<&str> {
        (self.field.as_deref() == Some(property))
            .then_some(self.alert.as_deref())
            .flatten()
    }
}

fn choices(
    groups: &[Group],
    include: &[MethodTarget],
    exclude: &[MethodTarget],
) -> Vec<GroupChoice> {
    groups
        .iter()
        .map(|g| {
            let id = g.id.to_string();
            GroupChoice {
                included: include.iter().any(|t| t.id == id),
                excluded: exclude.iter().any(|t| t.id == id),
                name: g.display_name.clone(),
                id,
            }
        })
        .collect()
}

/// The policy page for `p`; `typed` keeps, by field id, text that was not
/// a number.
async fn tap_page(
    state: &AppState,
    console: &Console,
    p: &TapPolicy,
    typed: &[(&str, String)],
    notice: Option<&'static str>,
    alert: Option<Refusal>,
) -> Result<Response, PageError> {
    let groups = state.directory.list_groups(state.clock.now()).await?;
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    let shown = |id: &str, value: u32| {
        typed
            .iter()
            .find(|(f, _)| *f == id)
            .map_or_else(|| value.to_string(), |(_, text)| text.clone())
    };
    let (alert, field) = match alert {
        Some(a) => (Some(a.message), a.field),
        None => (None, None),
    };
    Ok(show(
        status,
        &TapPolicyPage {
            chrome: console.chrome("methods"),
            enabled: p.state == MethodState::Enabled,
            numbers: vec![
                NumberField {
                    id: "minimum",
                    label: "Minimum lifetime",
                    property: "minimumLifetimeInMinutes",
                    value: shown("minimum", p.minimum_lifetime_in_minutes),
                    hint: "Minutes, 10 to 43200 (30 days).",
                },
                NumberField {
                    id: "maximum",
                    label: "Maximum lifetime",
                    property: "maximumLifetimeInMinutes",
                    value: shown("maximum", p.maximum_lifetime_in_minutes),
                    hint: "Minutes, 10 to 43200 (30 days).",
                },
                NumberField {
                    id: "default",
                    label: "Default lifetime",
                    property: "defaultLifetimeInMinutes",
                    value: shown("default", p.default_lifetime_in_minutes),
                    hint: "Minutes, from the minimum to the maximum.",
                },
                NumberField {
                    id: "length",
                    label: "Length",
                    property: "defaultLength",
                    value: shown("length", p.default_length),
                    hint: "Characters, 8 to 48.",
                },
            ],
            one_time: p.is_usable_once,
            all_users: p.include_targets.iter().any(|t| t.id == ALL_USERS),
            groups: choices(&groups, &p.include_targets, &p.exclude_targets),
            can_write: console.may(&access::METHODS_POLICY_WRITE),
            notice,
            alert,
            field,
        },
    ))
}

pub async fn tap_policy(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let p = methods::tap_policy(&state, &console.caller, state.clock.now())
        .await
        .map_err(refused)?;
    tap_page(
        &state,
        &console,
        &p,
        &[],
        notice_text(query_of(q.as_deref()).get("done")),
        None,
    )
    .await
}

fn target(id: &str) -> MethodTarget {
    MethodTarget {
        id: id.to_owned(),
        target_type: "group".into(),
        is_registration_required: false,
    }
}

pub async fn save_tap_policy(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let now = state.clock.now();
    let current = methods::tap_policy(&state, &console.caller, now)
        .await
        .map_err(refused)?;
    // What was typed, shown again when a value is refused.
    let mut typed = current.clone();
    let mut refusal = None;
    let fields = [
        (
            "minimum",
            "minimumLifetimeInMinutes",
            &mut typed.minimum_lifetime_in_minutes,
        ),
        (
            "maximum",
            "maximumLifetimeInMinutes",
            &mut typed.maximum_lifetime_in_minutes,
        ),
        (
            "default",
            "defaultLifetimeInMinutes",
            &mut typed.default_lifetime_in_minutes,
        ),
        ("length", "defaultLength", &mut typed.default_length),
    ];
    let mut texts = Vec::new();
    for (name, property, slot) in fields {
        let text = form.get(name).unwrap_or("");
        match text.parse::<u32>() {
            Ok(v) => *slot = v,
            Err(_) => {
                texts.push((name, text.to_owned()));
                refusal.get_or_insert(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    message: format!(
                        "Enter a whole number of {} (you entered {text:?}).",
                        if name == "length" {
                            "characters"
                        } else {
                            "minutes"
                        }
                    ),
                    field: Some(property.to_owned()),
                });
            }
        }
    }
    let include: Vec<MethodTarget> = if form.get("targets") == Some("all") {
        vec![MethodTarget {
            id: ALL_USERS.to_owned(),
            target_type: "group".into(),
            is_registration_required: false,
        }]
    } else {
        form.all("include").into_iter().map(target).collect()
    };
    let exclude: Vec<MethodTarget> = form.all("exclude").into_iter().map(target).collect();
    typed.state = if form.checked_box("enabled") {
        MethodState::Enabled
    } else {
        MethodState::Disabled
    };
    typed.is_usable_once = form.checked_box("oneTime");
    typed.include_targets = include.clone();
    typed.exclude_targets = exclude.clone();
    if let Some(r) = refusal {
        return tap_page(&state, &console, &typed, &texts, None, Some(r)).await;
    }
    let patch = methods::PolicyPatch {
        state: Some(typed.state),
        minimum_lifetime_in_minutes: Some(typed.minimum_lifetime_in_minutes),
        maximum_lifetime_in_minutes: Some(typed.maximum_lifetime_in_minutes),
        default_lifetime_in_minutes: Some(typed.default_lifetime_in_minutes),
        default_length: Some(typed.default_length),
        is_usable_once: Some(typed.is_usable_once),
        include_targets: Some(include),
        exclude_targets: Some(exclude),
        ..Default::default()
    };
    match methods::update_tap_policy(&state, &console.caller, patch, now).await {
        Ok(()) => Ok(done("/admin/methods/tap", "saved")),
        Err(e) => tap_page(&state, &console, &typed, &[], None, Some(e.into())).await,
    }
}

// --- conditional access ----------------------------------------------------

pub struct PolicyRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub state_class: &'static str,
}

fn state_words(state: Option<&str>) -> (&'static str, &'static str) {
    match state {
        Some("enabled") => ("On", "on"),
        Some("enabledForReportingButNotEnforced") => ("Report-only", "report"),
        _ => ("Off", "off"),
    }
}

pub struct ImportLine {
    pub kind: &'static str,
    pub name: String,
    pub outcome: String,
    pub created: bool,
}

#[derive(Template)]
#[template(path = "admin/ca_list.html")]
struct CaListPage {
    chrome: Chrome,
    policies: Vec<PolicyRow>,
    locations: Vec<String>,
    strengths: Vec<String>,
    can_write: bool,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "admin/ca_new.html")]
struct CaNewPage {
    chrome: Chrome,
    json: String,
    alert: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/ca_import.html")]
struct CaImportPage {
    chrome: Chrome,
    alert: Option<String>,
    imported: Vec<ImportLine>,
}

impl CaImportPage {
    fn created(&self) -> usize {
        self.imported.iter().filter(|l| l.created).count()
    }
    fn refused(&self) -> usize {
        self.imported.len() - self.created()
    }
}

fn name_of(v: &Value) -> String {
    v.get("displayName")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_owned()
}

async fn ca_page(
    state: &AppState,
    console: &Console,
    notice: Option<&'static str>,
) -> Result<Response, PageError> {
    let caller = &console.caller;
    let mut policies: Vec<PolicyRow> = ca::list_objects(state, caller, CaKind::Policy)
        .await
        .map_err(refused)?
        .iter()
        .map(|p| {
            let (words, class) = state_words(p.get("state").and_then(Value::as_str));
            PolicyRow {
                id: p.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                name: name_of(p),
                state: words,
                state_class: class,
            }
        })
        .collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    let locations = ca::list_objects(state, caller, CaKind::NamedLocation)
        .await
        .map_err(refused)?
        .iter()
        .map(name_of)
        .collect();
    let strengths = ca::list_objects(state, caller, CaKind::Strength)
        .await
        .map_err(refused)?
        .iter()
        .map(name_of)
        .collect();
    Ok(show(
        StatusCode::OK,
        &CaListPage {
            chrome: console.chrome("ca"),
            policies,
            locations,
            strengths,
            can_write: console.may(&access::CA_WRITE),
            notice,
        },
    ))
}

/// The **New policy** page, with what was typed and why it was refused.
fn new_policy_page(console: &Console, json: String, alert: Option<Refusal>) -> Response {
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    show(
        status,
        &CaNewPage {
            chrome: console.chrome("ca"),
            json,
            alert: alert.map(|a| a.message),
        },
    )
}

pub async fn ca_new(console: Console) -> Result<Response, PageError> {
    console.caller.require(&access::CA_WRITE).map_err(refused)?;
    Ok(new_policy_page(&console, String::new(), None))
}

/// The **Import** page; after an import, the summary of what happened.
fn import_page(console: &Console, alert: Option<Refusal>, imported: Vec<ImportLine>) -> Response {
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    show(
        status,
        &CaImportPage {
            chrome: console.chrome("ca"),
            alert: alert.map(|a| a.message),
            imported,
        },
    )
}

pub async fn ca_import_form(console: Console) -> Result<Response, PageError> {
    console.caller.require(&access::CA_WRITE).map_err(refused)?;
    Ok(import_page(&console, None, Vec::new()))
}

pub async fn ca_list(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let notice = notice_text(query_of(q.as_deref()).get("done"));
    ca_page(&state, &console, notice).await
}

/// **New policy**: a policy from its Graph JSON.
pub async fn ca_create(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let text = form.get("policy").unwrap_or("").to_owned();
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let r = Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!("The policy is not valid JSON: {e}."),
                field: None,
            };
            return Ok(new_policy_page(&console, text, Some(r)));
        }
    };
    match ca::create_object(&state, &console.caller, CaKind::Policy, value, false).await {
        Ok(created) => {
            let id = created.get("id").and_then(Value::as_str).unwrap_or("");
            Ok(done(&format!("/admin/ca/{}", enc(id)), "created"))
        }
        Err(e) => Ok(new_policy_page(&console, text, Some(e.into()))),
    }
}

/// The objects of an Entra export, by kind: a Graph collection
/// (`{"value": [...]}`), a bare array, one object, or a bundle with
/// `policies`, `namedLocations` and `authenticationStrengths` (or
/// `authenticationStrengthPolicies`).
fn export_objects(v: Value) -> Vec<(CaKind, Value)> {
    fn kind_of(o: &Value) -> CaKind {
        let ty = o.get("@odata.type").and_then(Value::as_str).unwrap_or("");
        if ty.contains("NamedLocation")
            || o.get("ipRanges").is_some()
            || o.get("countriesAndRegions").is_some()
        {
            CaKind::NamedLocation
        } else if ty.contains("authenticationStrengthPolicy")
            || o.get("allowedCombinations").is_some()
        {
            CaKind::Strength
        } else {
            CaKind::Policy
        }
    }
    let mut out = Vec::new();
    let take = |items: Value, out: &mut Vec<(CaKind, Value)>| match items {
        Value::Array(a) => out.extend(a.into_iter().map(|o| (kind_of(&o), o))),
        Value::Object(mut m) => match m.remove("value") {
            Some(Value::Array(a)) => out.extend(a.into_iter().map(|o| (kind_of(&o), o))),
            _ => {
                let o = Value::Object(m);
                out.push((kind_of(&o), o));
            }
        },
        _ => {}
    };
    match v {
        Value::Object(mut m)
            if [
                "policies",
                "namedLocations",
                "authenticationStrengths",
                "authenticationStrengthPolicies",
            ]
            .iter()
            .any(|k| m.contains_key(*k)) =>
        {
            for key in [
                "namedLocations",
                "authenticationStrengths",
                "authenticationStrengthPolicies",
                "policies",
            ] {
                if let Some(items) = m.remove(key) {
                    take(items, &mut out);
                }
            }
        }
        other => take(other, &mut out),
    }
    // Locations and strengths first: policies refer to them.
    out.sort_by_key(|(k, _)| match k {
        CaKind::NamedLocation => 0,
        CaKind::Strength => 1,
        CaKind::Policy => 2,
    });
    out
}

/// The `multipart/form-data` parts of an upload: field name → bytes.
fn multipart_fields(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    if !ct.starts_with("multipart/form-data") {
        return None;
    }
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let name = head
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("name="))
            .map(|n| n.trim_matches('"').to_owned())?;
        parts.push((name, content[..end].to_vec()));
        rest = &content[end + 2..];
    }
    Some(parts)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// **Import**: every location, strength and policy of an Entra export, each
/// through the same create as the Graph API, with a line per object.
pub async fn ca_import(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let Ok(bytes) = &body else {
        return Err(PageError::bad_request(
            "The upload is too large or unreadable.",
        ));
    };
    let Some(parts) = multipart_fields(&headers, bytes) else {
        return Err(PageError::bad_request("Expected a file upload."));
    };
    let mut form = Form::parse(b"");
    let mut file = None;
    for (name, value) in parts {
        if name == "file" {
            file = Some(value);
        } else {
            form = Form::parse(
                format!("{}={}", enc(&name), enc(&String::from_utf8_lossy(&value))).as_bytes(),
            )
            .merged(form);
        }
    }
    form.check_csrf(&console.csrf)?;
    let report_only = form.checked_box("reportOnly");
    let parsed: Result<Value, _> = serde_json::from_slice(file.as_deref().unwrap_or(b""));
    let objects = match parsed {
        Ok(v) => export_objects(v),
        Err(e) => {
            let r = Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!("The file is not a JSON export: {e}."),
                field: None,
            };
            return Ok(import_page(&console, Some(r), Vec::new()));
        }
    };
    let mut lines = Vec::new();
    for (kind, mut value) in objects {
        let name = name_of(&value);
        if kind == CaKind::Policy
            && report_only
            && value.get("state").and_then(Value::as_str) == Some("enabled")
        {
            value["state"] = json!("enabledForReportingButNotEnforced");
        }
        let outcome = ca::create_object(&state, &console.caller, kind, value, true).await;
        lines.push(ImportLine {
            kind: match kind {
                CaKind::Policy => "Policy",
                CaKind::NamedLocation => "Named location",
                CaKind::Strength => "Authentication strength",
            },
            name,
            created: outcome.is_ok(),
            outcome: match outcome {
                Ok(_) => "Created".into(),
                Err(e) => format!("Refused: {}", e.message),
            },
        });
    }
    if lines.is_empty() {
        let r = Refusal {
            status: StatusCode::BAD_REQUEST,
            message: "The file holds no policies, named locations or strengths.".into(),
            field: None,
        };
        return Ok(import_page(&console, Some(r), Vec::new()));
    }
    Ok(import_page(&console, None, lines))
}

#[derive(Template)]
#[template(path = "admin/ca_policy.html")]
struct CaPolicyPage {
    chrome: Chrome,
    id: String,
    name: String,
    state: &'static str,
    json: String,
    can_write: bool,
    notice: Option<&'static str>,
    alert: Option<String>,
}

async fn policy_page(
    state: &AppState,
    console: &Console,
    id: &str,
    notice: Option<&'static str>,
    alert: Option<Refusal>,
) -> Result<Response, PageError> {
    let axum::Json(p) = ca::get_one(state, &console.caller, CaKind::Policy, id)
        .await
        .map_err(refused)?;
    let status = alert.as_ref().map_or(StatusCode::OK, |a| a.status);
    Ok(show(
        status,
        &CaPolicyPage {
            chrome: console.chrome("ca"),
            id: id.to_owned(),
            name: name_of(&p),
            state: state_words(p.get("state").and_then(Value::as_str)).1,
            json: serde_json::to_string_pretty(&p).unwrap_or_default(),
            can_write: console.may(&access::CA_WRITE),
            notice,
            alert: alert.map(|a| a.message),
        },
    ))
}

pub async fn ca_show(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    policy_page(
        &state,
        &console,
        &id,
        notice_text(query_of(q.as_deref()).get("done")),
        None,
    )
    .await
}

/// **State** → **Save**, and **Delete**.
pub async fn ca_change(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, PageError> {
    let path = format!("/admin/ca/{}", enc(&id));
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let outcome = match form.get("action") {
        Some("delete") => {
            match ca::delete_object(&state, &console.caller, CaKind::Policy, &id).await {
                Ok(()) => return Ok(done("/admin/ca", "deleted")),
                Err(e) => Err(e),
            }
        }
        Some("state") => {
            let graph_state = match form.get("state") {
                Some("on") => "enabled",
                Some("report") => "enabledForReportingButNotEnforced",
                Some("off") => "disabled",
                _ => return Err(PageError::bad_request("Choose a state.")),
            };
            let mut patch = Map::new();
            patch.insert("state".into(), json!(graph_state));
            ca::update_object(&state, &console.caller, CaKind::Policy, &id, patch).await
        }
        _ => return Err(PageError::bad_request("Unknown action.")),
    };
    match outcome {
        Ok(()) => Ok(done(&path, "saved")),
        Err(e) => policy_page(&state, &console, &id, None, Some(e.into())).await,
    }
}

// --- What If ----------------------------------------------------------------

/// Why a policy applies or not, for people: Graph's `analysisReasons`
/// names the first condition not met.
fn reason_words(applies: bool, reason: &str) -> String {
    if applies {
        return "All conditions met".to_owned();
    }
    let condition = match reason {
        "users" => "the user is not included, or is excluded",
        "application" => "the application is not included, or is excluded",
        "userActions" => "the user action does not match",
        "devicePlatform" => "the device platform does not match",
        "location" => "the location does not match",
        "clientApps" => "the client app does not match",
        "policyNotEnabled" => "the policy is off",
        "notEnoughInformation" => "not enough information to decide",
        other => return format!("Not applied: {other}"),
    };
    format!("Not applied: {condition}")
}

/// A policy's requirement, for people: its controls (by display name)
/// joined by the policy's operator.
fn requirement_words(requirement: &Value) -> String {
    let Some(controls) = requirement["controls"].as_array() else {
        return String::new();
    };
    let names: Vec<String> = controls
        .iter()
        .map(|c| {
            match (
                c["control"].as_str(),
                c["authenticationStrength"]["displayName"].as_str(),
            ) {
                (Some("block"), _) => "Block access".to_owned(),
                (_, Some(strength)) => strength.to_owned(),
                (Some(other), None) => other.to_owned(),
                (None, None) => String::new(),
            }
        })
        .collect();
    let joiner = if requirement["operator"] == "AND" {
        " and "
    } else {
        " or "
    };
    names.join(joiner)
}

pub struct WhatIfRow {
    pub name: String,
    pub state: &'static str,
    pub applies: bool,
    pub reason: String,
    pub requires: String,
    pub satisfied: &'static str,
}

#[derive(Template)]
#[template(path = "admin/what_if.html")]
struct WhatIfPage {
    chrome: Chrome,
    user: String,
    app: String,
    action: String,
    ip: String,
    platform: String,
    methods: Vec<String>,
    rows: Vec<WhatIfRow>,
    decision: Option<String>,
    alert: Option<String>,
    apps: Vec<String>,
}

impl WhatIfPage {
    fn platform_is(&self, p: &str) -> bool {
        self.platform == p
    }

    fn has(&self, m: &str) -> bool {
        self.methods.iter().any(|x| x == m)
    }
}

async fn blank_what_if(console: &Console, state: &AppState) -> Result<WhatIfPage, PageError> {
    // Configured and registered clients, ordered by id.
    let apps = state
        .clients
        .list()
        .await?
        .iter()
        .map(|c| c.client_id.clone())
        .collect();
    Ok(WhatIfPage {
        chrome: console.chrome("what-if"),
        user: String::new(),
        app: String::new(),
        action: String::new(),
        ip: String::new(),
        platform: String::new(),
        methods: Vec::new(),
        rows: Vec::new(),
        decision: None,
        alert: None,
        apps,
    })
}

pub async fn what_if_form(
    State(state): State<AppState>,
    console: Console,
) -> Result<Response, PageError> {
    console.caller.require(&access::CA_READ).map_err(refused)?;
    Ok(show(
        StatusCode::OK,
        &blank_what_if(&console, &state).await?,
    ))
}

pub async fn what_if_run(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = Form::checked(&headers, &body, &console.csrf)?;
    let mut page = blank_what_if(&console, &state).await?;
    page.user = form.get("user").unwrap_or("").to_owned();
    page.app = form.get("app").unwrap_or("").to_owned();
    page.action = form.get("action").unwrap_or("").to_owned();
    page.ip = form.get("ip").unwrap_or("").to_owned();
    page.platform = form.get("platform").unwrap_or("").to_owned();
    page.methods = form.all("method").into_iter().map(str::to_owned).collect();
    let context = if page.action.is_empty() {
        json!({"@odata.type": "#microsoft.graph.applicationContext",
               "includeApplications": [if page.app.is_empty() { "All" } else { page.app.as_str() }]})
    } else {
        json!({"@odata.type": "#microsoft.graph.userActionContext", "userAction": page.action})
    };
    let mut conditions = Map::new();
    if !page.ip.is_empty() {
        conditions.insert("ipAddress".into(), json!(page.ip));
    }
    if !page.platform.is_empty() {
        conditions.insert("devicePlatform".into(), json!(page.platform));
    }
    let request = json!({
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": page.user},
        "signInContext": context,
        "signInConditions": conditions,
        "authenticationMethods": page.methods,
    });
    let outcome = match serde_json::from_value::<WhatIfRequest>(request) {
        Ok(r) => ca::evaluate_for(&state, &console.caller, r, state.clock.now())
            .await
            .map_err(Refusal::from),
        Err(e) => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
            field: None,
        }),
    };
    let response = match outcome.and_then(|r| {
        serde_json::to_value(r).map_err(|e| Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
            field: None,
        })
    }) {
        Ok(v) => v,
        Err(r) => {
            let status = r.status;
            page.alert = Some(r.message);
            return Ok(show(status, &page));
        }
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    page.rows = response["value"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| WhatIfRow {
            name: name_of(p),
            state: state_words(p.get("state").and_then(Value::as_str)).0,
            applies: p["policyApplies"].as_bool().unwrap_or(false),
            reason: reason_words(
                p["policyApplies"].as_bool().unwrap_or(false),
                &text(&p["analysisReasons"]),
            ),
            requires: requirement_words(&p["requirement"]),
            satisfied: match p["satisfied"].as_bool() {
                Some(true) => "Yes",
                Some(false) => "No",
                None => "—",
            },
        })
        .collect();
    page.decision = Some(match response["decision"].as_str() {
        Some("allow") => "Allow".to_owned(),
        Some("stepUp") => "Step-up: a stronger sign-in is required".to_owned(),
        Some("block") => "Block".to_owned(),
        other => other.unwrap_or("").to_owned(),
    });
    Ok(show(StatusCode::OK, &page))
}
