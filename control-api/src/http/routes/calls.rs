//! `GET /calls/ice_servers.json`: the relay's STUN/TURN URLs with fresh TURN REST API
//! credentials, for a logged-in user. The body's `ice_servers` is an RTCIceServer list a
//! browser can pass straight to `new RTCPeerConnection({iceServers})`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::domain::sessions::Caller;
use crate::http::error::ApiResult;
use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/calls/ice_servers", get(ice_servers))
}

async fn ice_servers(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let servers = state.control.ice_servers(user)?;
    let now = state.control.now();
    let ttl = (servers.expires_at - now).whole_seconds().max(0);
    Ok(Json(json!({
        "ice_servers": [
            { "urls": servers.stun_urls },
            {
                "urls": servers.turn_urls,
                "username": servers.username,
                "credential": servers.credential,
            },
        ],
        "username": servers.username,
        "credential": servers.credential,
        "ttl": ttl,
        "expires_at": servers.expires_at.unix_timestamp(),
    })))
}
