//! `gatepass ca impact --policies DRAFT --sign-ins LOG.json`: a recorded
//! sign-in log replayed against a draft policy set — per policy, the
//! sign-ins it would have blocked or stepped up, with examples.
//!
//! The log is Graph's `GET /auditLogs/signIns` JSON (`{"value": [...]}` or
//! an array), from Gatepass or exported from Entra ID. Read from each entry:
//! `userId`/`userPrincipalName` (groups and roles from `--directory`),
//! `appId`, `ipAddress`, `deviceDetail.operatingSystem`, `clientAppUsed`,
//! and the methods that succeeded in `authenticationDetails` (or, in
//! Entra's beta shape, `authenticationMethodsUsed`). Only sign-ins whose
//! methods succeeded are replayed (those that succeeded, and those
//! conditional access stopped), and of the attempts of one sign-in (one
//! `correlationId`, user and app) only the last of those; every entry not
//! replayed is counted under its reason, with examples — none is dropped
//! silently. A guest is a guest by the directory's or the entry's
//! `userType`.

use super::inputs::{Directory, InputError, PolicyFiles};
use crate::policy::conditional_access::{
    ClientAppType, DevicePlatform, MethodMode, MethodSet, PolicyState, SignInContext, Target,
    Verdict, evaluate,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

/// Examples kept per count.
const EXAMPLES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    pub id: String,
    pub user: String,
    pub app: String,
    pub created_date_time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyImpact {
    pub id: String,
    pub display_name: String,
    pub state: &'static str,
    pub applied: usize,
    pub blocked: usize,
    pub stepped_up: usize,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub reason: String,
    pub count: usize,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpactReport {
    pub entries: usize,
    pub replayed: usize,
    /// The draft's decision over the replayed sign-ins.
    pub decisions: BTreeMap<&'static str, usize>,
    pub policies: Vec<PolicyImpact>,
    pub skipped: Vec<Skipped>,
    /// Replayed sign-ins by users the directory does not know (evaluated
    /// without groups or roles).
    pub users_not_in_directory: usize,
}

impl ImpactReport {
    /// Whether the draft would block or step up any replayed sign-in.
    pub fn has_impact(&self) -> bool {
        self.decisions.iter().any(|(d, n)| *d != "allow" && *n > 0)
    }
}

/// One entry, mapped for the engine.
struct Replay {
    example: Example,
    context: SignInContext,
    known_user: bool,
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Entra's and Gatepass's method names (sign-in log spelling) as modes.
fn method_mode(name: &str, detail: Option<&str>) -> Option<MethodMode> {
    let n = name.trim().to_ascii_lowercase();
    let d = detail.unwrap_or_default().to_ascii_lowercase();
    Some(match n.as_str() {
        "password" | "password hash sync" | "pass-through authentication" => MethodMode::Password,
        "temporary access pass" if d.contains("one") => MethodMode::TemporaryAccessPassOneTime,
        "temporary access pass" => MethodMode::TemporaryAccessPassMultiUse,
        "passkey (fido2)"
        | "fido2 security key"
        | "passkey (device-bound)"
        | "passkey (synced)"
        | "passkey (microsoft authenticator)"
        | "passkey"
        | "fido2" => MethodMode::Fido2,
        "windows hello for business" => MethodMode::WindowsHelloForBusiness,
        "mobile app notification"
        | "microsoft authenticator (push notification)"
        | "microsoft authenticator app" => MethodMode::MicrosoftAuthenticatorPush,
        "passwordless phone sign-in" | "microsoft authenticator (passwordless)" => {
            MethodMode::DeviceBasedPush
        }
        "text message" | "sms" | "sms verification" => MethodMode::Sms,
        "voice call" | "phone call" | "phone call (authentication phone)" => MethodMode::Voice,
        "oath verification code"
        | "microsoft authenticator (verification code)"
        | "mobile app verification code" => MethodMode::SoftwareOath,
        "oath hardware token" | "hardware token" => MethodMode::HardwareOath,
        "email verification code" | "email one-time passcode" => MethodMode::Email,
        // Certificate-based authentication is single- or multi-factor by
        // the tenant's binding rules; only the detail can say which.
        "x.509 certificate" | "certificate-based authentication" if d.contains("multi") => {
            MethodMode::X509CertificateMultiFactor
        }
        "x.509 certificate" | "certificate-based authentication" => {
            MethodMode::X509CertificateSingleFactor
        }
        "qr code" | "qr code pin" => MethodMode::QrCodePin,
        other => return MethodMode::parse(other),
    })
}

fn platform(os: Option<&str>) -> Option<DevicePlatform> {
    let os = os?.to_ascii_lowercase();
    let has = |s: &str| os.contains(s);
    if has("windows phone") {
        Some(DevicePlatform::WindowsPhone)
    } else if has("windows") {
        Some(DevicePlatform::Windows)
    } else if has("ios") || has("iphone") || has("ipad") || has("ipados") {
        Some(DevicePlatform::Ios)
    } else if has("mac") {
        Some(DevicePlatform::MacOs)
    } else if has("android") {
        Some(DevicePlatform::Android)
    } else if has("linux") || has("ubuntu") {
        Some(DevicePlatform::Linux)
    } else {
        // Entra's "unknown platform": matched only by `all`.
        None
    }
}

fn client_app(name: Option<&str>) -> Result<ClientAppType, String> {
    let Some(name) = name else {
        return Err("no clientAppUsed".to_owned());
    };
    let n = name.trim().to_ascii_lowercase();
    Ok(match n.as_str() {
        "browser" => ClientAppType::Browser,
        "mobile apps and desktop clients" | "mobileappsanddesktopclients" => {
            ClientAppType::MobileAppsAndDesktopClients
        }
        "exchange activesync" | "exchangeactivesync" => ClientAppType::ExchangeActiveSync,
        "other clients"
        | "other"
        | "imap4"
        | "pop3"
        | "authenticated smtp"
        | "exchange web services"
        | "mapi over http"
        | "offline address book"
        | "outlook anywhere (rpc over http)"
        | "exchange online powershell"
        | "autodiscover"
        | "reporting web services"
        | "universal outlook" => ClientAppType::Other,
        _ => return Err(format!("unknown clientAppUsed {name:?}")),
    })
}

/// The methods a sign-in proved: the steps of `authenticationDetails`
/// that succeeded, or else Entra's `authenticationMethodsUsed`.
fn methods_used(entry: &Value) -> Result<MethodSet, String> {
    let mut methods = MethodSet::EMPTY;
    let (mut named, mut earlier) = (0, 0);
    let steps = entry
        .get("authenticationDetails")
        .and_then(Value::as_array)
        .filter(|steps| !steps.is_empty());
    if let Some(steps) = steps {
        for step in steps {
            if step.get("succeeded").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let Some(name) = text(step, "/authenticationMethod") else {
                continue;
            };
            // Entra's entry for a requirement an earlier sign-in met: which
            // method did is not in this entry.
            if name.eq_ignore_ascii_case("Previously satisfied") {
                earlier += 1;
                continue;
            }
            let detail = text(step, "/authenticationMethodDetail");
            let mode = method_mode(name, detail)
                .ok_or_else(|| format!("unknown authentication method {name:?}"))?;
            methods = methods.with(mode);
            named += 1;
        }
    } else if let Some(used) = entry
        .get("authenticationMethodsUsed")
        .and_then(Value::as_array)
    {
        for name in used.iter().filter_map(Value::as_str) {
            let mode = method_mode(name, None)
                .ok_or_else(|| format!("unknown authentication method {name:?}"))?;
            methods = methods.with(mode);
            named += 1;
        }
    }
    match (named, earlier) {
        (0, 0) => Err("no authentication method that succeeded".to_owned()),
        (0, _) => Err(
            "only \"Previously satisfied\": the methods were proven by an earlier sign-in"
                .to_owned(),
        ),
        _ => Ok(methods),
    }
}

/// Maps one log entry, or says why it is not replayed.
fn replay(entry: &Value, directory: Option<&Directory>) -> Result<Replay, String> {
    let id = text(entry, "/id").unwrap_or("(no id)").to_owned();
    let error = match entry.pointer("/status/errorCode") {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        // Some exports write the code as a string.
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    }
    .ok_or("status.errorCode is not an error number")?;
    if error != 0 && !crate::audit::is_conditional_access_error(error) {
        return Err(format!(
            "the sign-in failed before conditional access (errorCode {error})"
        ));
    }
    let user = text(entry, "/userId")
        .or_else(|| text(entry, "/userPrincipalName"))
        .ok_or("no userId or userPrincipalName")?;
    let upn = text(entry, "/userPrincipalName").unwrap_or(user);
    let app = text(entry, "/appId").ok_or("no appId")?;
    let ip = match text(entry, "/ipAddress") {
        None => return Err("no ipAddress".to_owned()),
        Some(ip) => ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("ipAddress {ip:?} is not an IP address"))?,
    };
    let client = client_app(text(entry, "/clientAppUsed"))?;
    // The platform as Entra saw it: an empty operating system is an
    // unknown platform; no deviceDetail at all says nothing.
    let os = match entry.get("deviceDetail") {
        Some(Value::Object(detail)) => detail
            .get("operatingSystem")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        _ => return Err("no deviceDetail".to_owned()),
    };
    let methods = methods_used(entry)?;
    let known = directory.and_then(|d| d.user(user).or_else(|| d.user(upn)));
    let mut ctx = SignInContext::live(
        known.map_or_else(|| user.to_owned(), |u| u.id.clone()),
        Target::application(app),
    );
    ctx.user_aliases = vec![upn.to_owned(), user.to_owned()];
    if let Some(u) = known {
        ctx.group_ids = u.groups.clone();
        ctx.role_template_ids = u.roles.clone();
    }
    ctx.is_guest = known.is_some_and(|u| u.is_guest)
        || text(entry, "/userType").is_some_and(|t| t.eq_ignore_ascii_case("guest"));
    ctx.ip_address = Some(ip);
    ctx.device_platform = platform(Some(os));
    ctx.client_app_type = Some(client);
    ctx.methods = Some(methods);
    Ok(Replay {
        example: Example {
            id,
            user: upn.to_owned(),
            app: text(entry, "/appDisplayName").unwrap_or(app).to_owned(),
            created_date_time: text(entry, "/createdDateTime")
                .unwrap_or_default()
                .to_owned(),
        },
        context: ctx,
        known_user: known.is_some(),
    })
}

/// Reads the log: a Graph collection or an array of sign-ins.
pub fn load(path: &Path) -> Result<Vec<Value>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, ".", format!("cannot read: {e}")))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            path,
            format!("line {} column {}", e.line(), e.column()),
            format!("invalid JSON: {e}"),
        )
    })?;
    let entries = match doc {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("value") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(InputError::new(
                    path,
                    "value",
                    "expected {\"value\": [...]} as GET /auditLogs/signIns returns, or an array",
                ));
            }
        },
        _ => return Err(InputError::new(path, ".", "expected an object or an array")),
    };
    for (i, e) in entries.iter().enumerate() {
        if !e.is_object() {
            return Err(InputError::new(
                path,
                format!("value[{i}]"),
                "a sign-in is an object",
            ));
        }
    }
    Ok(entries)
}

/// The sign-in an entry is an attempt of: Entra logs an interrupted
/// attempt (50074: MFA required) and the completed one under one
/// `correlationId`, and so does Gatepass for a step-up. Replaying both
/// would count one sign-in twice, and the interruption as a step-up the
/// draft causes. The user and the app are part of the key: only attempts
/// of one user at one app are one sign-in.
fn sign_in_key(entry: &Value) -> Option<(&str, &str, &str)> {
    Some((
        text(entry, "/correlationId")?,
        text(entry, "/userId").or_else(|| text(entry, "/userPrincipalName"))?,
        text(entry, "/appId")?,
    ))
}

/// When an entry was logged, for ordering attempts (unparsable: earliest).
fn logged_at(entry: &Value) -> OffsetDateTime {
    text(entry, "/createdDateTime")
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Of the replayable attempts of each sign-in, the index of the last: by
/// time, and at the same time (a log's clock is coarse) the one that proved
/// more methods — a step-up's completion proves its interruption's methods
/// and more.
fn last_replayable(
    entries: &[Value],
    mapped: &[Result<Replay, String>],
) -> BTreeMap<(String, String, String), usize> {
    let order = |i: usize| {
        let proven = mapped[i]
            .as_ref()
            .ok()
            .and_then(|r| r.context.methods)
            .map_or(0, |m| m.modes().len());
        (logged_at(&entries[i]), proven)
    };
    let mut last: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let Some((c, u, a)) = sign_in_key(e) else {
            continue;
        };
        if mapped[i].is_err() {
            continue;
        }
        let key = (c.to_owned(), u.to_ascii_lowercase(), a.to_ascii_lowercase());
        if last.get(&key).is_none_or(|&j| order(i) > order(j)) {
            last.insert(key, i);
        }
    }
    last
}

/// Replays `entries` against the draft.
pub fn run(
    draft: &PolicyFiles,
    entries: &[Value],
    directory: Option<&Directory>,
    now: OffsetDateTime,
) -> ImpactReport {
    let mut policies: Vec<PolicyImpact> = draft
        .policies
        .iter()
        .map(|p| PolicyImpact {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
            state: p.state.as_str(),
            applied: 0,
            blocked: 0,
            stepped_up: 0,
            examples: Vec::new(),
        })
        .collect();
    let mut decisions: BTreeMap<&'static str, usize> = [("allow", 0), ("stepUp", 0), ("block", 0)]
        .into_iter()
        .collect();
    let mut skipped: BTreeMap<String, Skipped> = BTreeMap::new();
    let (mut replayed, mut unknown_users) = (0, 0);
    let mapped: Vec<Result<Replay, String>> =
        entries.iter().map(|e| replay(e, directory)).collect();
    let last = last_replayable(entries, &mapped);
    for (i, (entry, mapped)) in entries.iter().zip(mapped).enumerate() {
        let superseded = sign_in_key(entry).is_some_and(|(c, u, a)| {
            last.get(&(c.to_owned(), u.to_ascii_lowercase(), a.to_ascii_lowercase())) != Some(&i)
        });
        let mapped = match mapped {
            Ok(_) if superseded => Err(
                "an earlier attempt of a sign-in whose later attempt is replayed (same correlationId, user and app)".to_owned(),
            ),
            other => other,
        };
        let r = match mapped {
            Ok(r) => r,
            Err(reason) => {
                let s = skipped.entry(reason.clone()).or_insert(Skipped {
                    reason,
                    count: 0,
                    examples: Vec::new(),
                });
                s.count += 1;
                if s.examples.len() < EXAMPLES {
                    s.examples
                        .push(text(entry, "/id").unwrap_or("(no id)").to_owned());
                }
                continue;
            }
        };
        replayed += 1;
        unknown_users += usize::from(directory.is_some() && !r.known_user);
        let decision = evaluate(
            &draft.policies,
            &draft.strengths,
            &draft.locations,
            &r.context,
            now,
        );
        *decisions.entry(decision.outcome.name()).or_default() += 1;
        for (impact, result) in policies.iter_mut().zip(&decision.policies) {
            if !result.applies || result.state == PolicyState::Disabled {
                continue;
            }
            impact.applied += 1;
            let hit = match result.verdict {
                Verdict::Block(_) => {
                    impact.blocked += 1;
                    true
                }
                Verdict::StepUp(_) => {
                    impact.stepped_up += 1;
                    true
                }
                Verdict::Satisfied | Verdict::NotApplied => false,
            };
            if hit && impact.examples.len() < EXAMPLES {
                impact.examples.push(r.example.clone());
            }
        }
    }
    ImpactReport {
        entries: entries.len(),
        replayed,
        decisions,
        policies,
        skipped: skipped.into_values().collect(),
        users_not_in_directory: unknown_users,
    }
}

/// The human report.
pub fn render(report: &ImpactReport) -> String {
    let mut out = format!(
        "Replayed {} of {} sign-ins: {} allowed, {} stepped up, {} blocked.\n",
        report.replayed,
        report.entries,
        report.decisions.get("allow").copied().unwrap_or(0),
        report.decisions.get("stepUp").copied().unwrap_or(0),
        report.decisions.get("block").copied().unwrap_or(0),
    );
    for p in &report.policies {
        let state = if p.state == "enabledForReportingButNotEnforced" {
            " (report-only)"
        } else if p.state == "disabled" {
            " (disabled)"
        } else {
            ""
        };
        out.push_str(&format!(
            "\n{}{state}: applies to {}, would block {}, would step up {}\n",
            if p.display_name.is_empty() {
                &p.id
            } else {
                &p.display_name
            },
            p.applied,
            p.blocked,
            p.stepped_up
        ));
        for e in &p.examples {
            out.push_str(&format!(
                "    e.g. {} {} → {} ({})\n",
                e.created_date_time, e.user, e.app, e.id
            ));
        }
    }
    if report.users_not_in_directory > 0 {
        out.push_str(&format!(
            "\n{} replayed sign-ins are by users the directory does not know (evaluated without groups or roles).\n",
            report.users_not_in_directory
        ));
    }
    if !report.skipped.is_empty() {
        out.push_str("\nNot replayed:\n");
        for s in &report.skipped {
            out.push_str(&format!(
                "  {} × {} (e.g. {})\n",
                s.count,
                s.reason,
                s.examples.join(", ")
            ));
        }
    }
    out
}
