//! `/auditLogs/signIns` and `/auditLogs/directoryAudits`, newest first.

use super::auth::{self, Caller};
use super::error::GraphError;
use super::{ApiVersion, ListQuery, page_body};
use crate::app::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::Value;

/// A page of the sign-in log for a caller who may read the logs.
pub async fn sign_ins_page(
    state: &AppState,
    caller: &Caller,
    top: usize,
    after: Option<String>,
    keep: impl Fn(&Value) -> bool,
) -> Result<super::Page, GraphError> {
    caller.require(&auth::AUDIT_READ)?;
    let now = state.clock.now();
    super::filtered_page(top, after, keep, |after, n| {
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
) -> Result<super::Page, GraphError> {
    caller.require(&auth::AUDIT_READ)?;
    let now = state.clock.now();
    super::filtered_page(top, after, keep, |after, n| {
        let audit = state.audit.clone();
        async move { audit.directory_audit_page(after.as_deref(), n, now).await }
    })
    .await
}

fn graph_page(
    state: &AppState,
    version: ApiVersion,
    entity_set: &str,
    page: super::Page,
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
