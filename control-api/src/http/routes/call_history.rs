//! `GET /calls/history.json`: the caller's own mesh calls, newest first, one summary per
//! finished call (the XMPP server writes them when a call ends).
//!
//! `limit` (1..=100, default 50) and `skip` page the list; the body is
//! `{"skip","limit","total_entries","items":[{session_id, caller_id, opponents_ids,
//! call_type, state, started_at, answered_at, ended_at, duration}]}`, times in unix seconds.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::domain::calls::CallRecord;
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::ApiResult;
use crate::http::extract::QbParams;
use crate::http::state::AppState;

/// Page size without `limit` (QuickBlox's usual default).
const DEFAULT_LIMIT: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new().route("/calls/history", get(history))
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let limit = params.positive("limit", DEFAULT_LIMIT)?;
    let skip = match params.value("skip") {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| DomainError::invalid("skip", "must not be negative"))?,
    };
    let (calls, total) = state
        .control
        .call_history(caller.app_id(), user, limit, skip)
        .await?;
    Ok(Json(json!({
        "skip": skip,
        "limit": limit,
        "total_entries": total,
        "items": calls.iter().map(item).collect::<Vec<_>>(),
    })))
}

fn item(call: &CallRecord) -> Value {
    json!({
        "session_id": call.session_id,
        "caller_id": call.caller.0,
        "opponents_ids": call.opponents.iter().map(|u| u.0).collect::<Vec<_>>(),
        "call_type": call.call_type.code(),
        "state": call.outcome.as_str(),
        "started_at": call.started_at.unix_timestamp(),
        "answered_at": call.answered_at.map(|t| t.unix_timestamp()),
        "ended_at": call.ended_at.unix_timestamp(),
        "duration": call.duration_secs(),
    })
}
