//! `POST /calls/conference/token.json`: a join grant for the SFU's Janus API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::domain::conference::ConferenceRole;
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::ApiResult;
use crate::http::extract::QbParams;
use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/calls/conference/token", post(create))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let room = params
        .value("room")
        .or_else(|| params.value("dialog_id"))
        .ok_or_else(|| DomainError::invalid("room", "is required (the dialog id)"))?
        .to_string();
    let role = ConferenceRole::parse(params.get("role"))?;
    let grant = state.control.conference_grant(&caller, &room, role).await?;
    let separator = if grant.janus_url.contains('?') {
        '&'
    } else {
        '?'
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": grant.token,
            "room": grant.room,
            "role": grant.role.as_str(),
            "expires_at": grant.expires_at.unix_timestamp(),
            "janus_url": grant.janus_url,
            // What a stock Janus client (QuickBlox's conference client) takes as its server.
            "server": format!("{}{separator}token={}", grant.janus_url, grant.token),
        })),
    ))
}
