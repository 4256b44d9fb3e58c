//! `GET /account_settings.json`: where the SDK learns this server's endpoints.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/account_settings", get(show))
}

async fn show(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let key = headers
        .get("qb-account-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::AccountKeyRequired)?;
    let app = state.control.app_by_account_key(key).await?;
    let config = state.control.config();
    Ok(Json(json!({
        "account_id": app.id,
        "api_endpoint": config.public_api_url,
        "chat_endpoint": config.chat_endpoint,
    })))
}
