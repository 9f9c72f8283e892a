//! `/auditLogs/signIns` and `/auditLogs/directoryAudits`, newest first.

use super::auth::{self, Caller};
use super::error::GraphError;
use super::{ApiVersion, ListQuery, collection};
use crate::app::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::Value;

fn to_values<T: serde::Serialize>(items: Vec<T>) -> Result<Vec<Value>, GraphError> {
    items
        .into_iter()
        .map(|i| {
            serde_json::to_value(i)
                .map_err(|e| GraphError::internal("audit.encode", &e.to_string(), false))
        })
        .collect()
}

pub async fn sign_ins(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::AUDIT_READ)?;
    let query = ListQuery::parse(q.as_deref())?;
    let items = to_values(state.audit.sign_ins(now).await?)?
        .into_iter()
        .filter(|v| query.matches(v))
        .collect();
    Ok(Json(collection(
        &state,
        version,
        "auditLogs/signIns",
        items,
        &query,
    )))
}

pub async fn directory_audits(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let now = state.clock.now();
    let caller = Caller::from_headers(&state, &headers, now).await?;
    caller.require(&auth::AUDIT_READ)?;
    let query = ListQuery::parse(q.as_deref())?;
    let items = to_values(state.audit.directory_audits(now).await?)?
        .into_iter()
        .filter(|v| query.matches(v))
        .collect();
    Ok(Json(collection(
        &state,
        version,
        "auditLogs/directoryAudits",
        items,
        &query,
    )))
}
