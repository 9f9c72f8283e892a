//! Liveness and readiness.

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = crate::openapi::schemas::Health)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready: the store answers and a signing key is loaded.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers and a signing key is loaded", body = crate::openapi::schemas::Health),
        (status = 503, description = "Not ready: which part is missing", body = crate::openapi::schemas::Health),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.ping().await;
    let keys = !state.tokens.keys().published_kids().is_empty();
    match (store, keys) {
        (Ok(()), true) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "store": "ok", "keys": "ok"})),
        ),
        (store, keys) => {
            if let Err(e) = &store {
                tracing::warn!(error = %e, "readiness: store unreachable");
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "store": if store.is_ok() { "ok" } else { "unreachable" },
                    "keys": if keys { "ok" } else { "missing" },
                })),
            )
        }
    }
}
