//! Liveness and readiness.

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

/// Alive: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready: the store answers and a signing key is loaded.
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
