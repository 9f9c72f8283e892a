//! Sign-in logs and audit logs: newest first, paged, filtered; each entry
//! opens to its details (for a sign-in, the conditional-access policies
//! applied). Entries never hold a secret.

use super::{Chrome, Console, enc, query_of, refused, show};
use crate::app::AppState;
use crate::graph::audit_logs;
use crate::web::error::PageError;
use crate::web::when;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

const PAGE: usize = 50;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn instant(v: &Value, now: i64) -> String {
    v.as_str()
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| when::readable(t.unix_timestamp(), now))
        .unwrap_or_default()
}

pub struct SignInRow {
    pub when: String,
    pub user: String,
    pub app: String,
    pub ip: String,
    pub ok: bool,
    pub status: String,
    pub methods: String,
    pub ca_status: String,
    pub policies: Vec<(String, String)>,
    pub correlation: String,
}

#[derive(Template)]
#[template(path = "admin/sign_ins.html")]
struct SignInsPage {
    chrome: Chrome,
    user: String,
    status: String,
    app: String,
    method: String,
    rows: Vec<SignInRow>,
    next: Option<String>,
}

pub async fn sign_ins(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let query = query_of(q.as_deref());
    let user = query.get("user").unwrap_or("").to_owned();
    let status = query.get("status").unwrap_or("").to_owned();
    let app = query.get("app").unwrap_or("").to_owned();
    let method = query.get("method").unwrap_or("").to_owned();
    let after = query.get("after").map(str::to_owned);
    let (u, st, a, m) = (
        user.to_lowercase(),
        status.clone(),
        app.to_lowercase(),
        method.to_lowercase(),
    );
    let keep = |v: &Value| {
        let field = |k: &str| text(&v[k]).to_lowercase();
        (u.is_empty() || field("userPrincipalName").contains(&u))
            && (a.is_empty() || field("appId").contains(&a) || field("appDisplayName").contains(&a))
            && match st.as_str() {
                "success" => v["status"]["errorCode"].as_i64() == Some(0),
                "failure" => v["status"]["errorCode"].as_i64().is_some_and(|c| c != 0),
                _ => true,
            }
            && (m.is_empty() || v.to_string().to_lowercase().contains(&m))
    };
    let page = audit_logs::sign_ins_page(&state, &console.caller, PAGE, after, keep)
        .await
        .map_err(refused)?;
    let now = state.clock.now().unix_timestamp();
    let rows = page
        .items
        .iter()
        .map(|v| SignInRow {
            when: instant(&v["createdDateTime"], now),
            user: text(&v["userPrincipalName"]),
            app: {
                let name = text(&v["appDisplayName"]);
                if name.is_empty() {
                    text(&v["appId"])
                } else {
                    name
                }
            },
            ip: text(&v["ipAddress"]),
            ok: v["status"]["errorCode"].as_i64() == Some(0),
            status: {
                let reason = text(&v["status"]["failureReason"]);
                if reason.is_empty() {
                    "Success".to_owned()
                } else {
                    reason
                }
            },
            methods: v["authenticationDetails"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|d| d["succeeded"].as_bool() == Some(true))
                        .map(|d| text(&d["authenticationMethod"]))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            ca_status: text(&v["conditionalAccessStatus"]),
            policies: v["appliedConditionalAccessPolicies"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| (text(&p["displayName"]), text(&p["result"])))
                .collect(),
            correlation: text(&v["correlationId"]),
        })
        .collect();
    let next = page.next.map(|n| {
        format!(
            "/admin/sign-ins?user={}&status={}&app={}&method={}&after={}",
            enc(&user),
            enc(&status),
            enc(&app),
            enc(&method),
            enc(&n)
        )
    });
    Ok(show(
        StatusCode::OK,
        &SignInsPage {
            chrome: console.chrome("sign-ins"),
            user,
            status,
            app,
            method,
            rows,
            next,
        },
    ))
}

pub struct AuditRow {
    pub when: String,
    pub activity: String,
    pub category: String,
    pub by: String,
    pub target: String,
    pub details: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditRow>,
    next: Option<String>,
}

pub async fn audits(
    State(state): State<AppState>,
    console: Console,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let query = query_of(q.as_deref());
    let after = query.get("after").map(str::to_owned);
    let page = audit_logs::directory_audits_page(&state, &console.caller, PAGE, after, |_| true)
        .await
        .map_err(refused)?;
    let now = state.clock.now().unix_timestamp();
    let rows = page
        .items
        .iter()
        .map(|v| {
            let by = &v["initiatedBy"];
            AuditRow {
                when: instant(&v["activityDateTime"], now),
                activity: text(&v["activityDisplayName"]),
                category: text(&v["category"]),
                by: {
                    let upn = text(&by["user"]["userPrincipalName"]);
                    if upn.is_empty() {
                        text(&by["app"]["displayName"])
                    } else {
                        upn
                    }
                },
                target: v["targetResources"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|t| {
                                let upn = text(&t["userPrincipalName"]);
                                if upn.is_empty() {
                                    text(&t["displayName"])
                                } else {
                                    upn
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                details: v["additionalDetails"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|d| (text(&d["key"]), text(&d["value"])))
                    .collect(),
            }
        })
        .collect();
    let next = page.next.map(|n| format!("/admin/audit?after={}", enc(&n)));
    Ok(show(
        StatusCode::OK,
        &AuditPage {
            chrome: console.chrome("audit"),
            rows,
            next,
        },
    ))
}
