//! `/auditLogs/signIns` and `/auditLogs/directoryAudits`, newest first.

use super::auth::{self, Caller};
use super::error::GraphError;
use super::{ApiVersion, ListQuery, page_body};
use crate::app::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::Value;

/// Most log entries one request reads while looking for `$top` entries
/// that pass a `$filter`; past it the page ends early, with a next link.
const MAX_SCANNED: usize = 5_000;

/// One page of a log, read from the store a batch at a time until `$top`
/// entries pass the filter, the log ends, or [`MAX_SCANNED`] were read —
/// never the whole log.
pub async fn log_page<T, F, Fut>(
    top: usize,
    after: Option<String>,
    keep: impl Fn(&Value) -> bool,
    read: F,
) -> Result<LogPage, GraphError>
where
    T: serde::Serialize,
    F: Fn(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, T)>, crate::store::StoreError>>,
{
    let mut items = Vec::with_capacity(top);
    let mut cursor = after;
    let mut scanned = 0;
    let next = loop {
        let batch = read(cursor.clone(), top).await?;
        let full = batch.len() == top;
        for (key, entry) in batch {
            scanned += 1;
            cursor = Some(key);
            let value = serde_json::to_value(entry)
                .map_err(|e| GraphError::internal("audit.encode", &e.to_string(), false))?;
            if keep(&value) {
                items.push(value);
                if items.len() == top {
                    break;
                }
            }
        }
        if items.len() == top || (full && scanned >= MAX_SCANNED) {
            break cursor;
        }
        if !full {
            break None;
        }
    };
    Ok(LogPage { items, next })
}

/// One page of a log: entries newest first, and the cursor of the next.
pub struct LogPage {
    pub items: Vec<Value>,
    pub next: Option<String>,
}

/// A page of the sign-in log for a caller who may read the logs.
pub async fn sign_ins_page(
    state: &AppState,
    caller: &Caller,
    top: usize,
    after: Option<String>,
    keep: impl Fn(&Value) -> bool,
) -> Result<LogPage, GraphError> {
    caller.require(&auth::AUDIT_READ)?;
    let now = state.clock.now();
    log_page(top, after, keep, |after, n| {
        let audit = state.audit.clone();
        async move { audit.sign_in_page(after.as_deref(), n, now).await }
    })
    .await
}

/// A page of the directory audit log for a caller who may read the logs.
pub async fn directory_audits_page(
    state: &AppState,
    caller: &Caller,
    top: usize,
    after: Option<String>,
    keep: impl Fn(&Value) -> bool,
) -> Result<LogPage, GraphError> {
    caller.require(&auth::AUDIT_READ)?;
    let now = state.clock.now();
    log_page(top, after, keep, |after, n| {
        let audit = state.audit.clone();
        async move { audit.directory_audit_page(after.as_deref(), n, now).await }
    })
    .await
}

fn graph_page(
    state: &AppState,
    version: ApiVersion,
    entity_set: &str,
    page: LogPage,
    query: &ListQuery,
) -> Json<Value> {
    Json(page_body(
        state,
        version,
        entity_set,
        page.items,
        page.next.as_deref(),
        query,
    ))
}

#[utoipa::path(get,
    path = "/v1.0/auditLogs/signIns",
    operation_id = "auditLogs.signIns.list",
    tag = "audit logs",
    params(crate::openapi::ListParams),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::SignIn>)))]
pub async fn sign_ins(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::AUDIT_READ)?;
    let query = ListQuery::parse_paged(q.as_deref())?;
    let page = sign_ins_page(
        &state,
        &caller,
        query.page_size(),
        query.skip_token.clone(),
        |v| query.matches(v),
    )
    .await?;
    Ok(graph_page(
        &state,
        version,
        "auditLogs/signIns",
        page,
        &query,
    ))
}

#[utoipa::path(get,
    path = "/v1.0/auditLogs/directoryAudits",
    operation_id = "auditLogs.directoryAudits.list",
    tag = "audit logs",
    params(crate::openapi::ListParams),
    responses((status = 200, description = "OK", body = crate::openapi::schemas::Collection<crate::openapi::schemas::DirectoryAudit>)))]
pub async fn directory_audits(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::AUDIT_READ)?;
    let query = ListQuery::parse_paged(q.as_deref())?;
    let page = directory_audits_page(
        &state,
        &caller,
        query.page_size(),
        query.skip_token.clone(),
        |v| query.matches(v),
    )
    .await?;
    Ok(graph_page(
        &state,
        version,
        "auditLogs/directoryAudits",
        page,
        &query,
    ))
}
