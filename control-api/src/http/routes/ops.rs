//! `/health` and `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> Response {
    match state.control.store().default_app().await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Store-derived gauges are refreshed at scrape time rather than tracked on every write.
    if let Ok(active) = state.control.active_sessions().await {
        state.metrics.sessions_active.set(active);
    }
    if let Ok(users) = state.control.count_users().await {
        state.metrics.users.set(users);
    }
    if let Ok((blobs, bytes)) = state.control.blob_totals().await {
        state.metrics.content_blobs.set(blobs);
        state.metrics.content_stored_bytes.set(bytes);
    }
    if let Ok(records) = state.control.count_records().await {
        state.metrics.data_records.set(records);
    }
    if let Ok(devices) = state.control.count_subscriptions().await {
        state.metrics.push_subscriptions.set(devices);
    }
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        tracing::error!(error = %e, "encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
