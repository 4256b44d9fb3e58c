//! `/session.json` and `/login.json`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::domain::sessions::{expiration_header, Caller, SessionRequest};
use crate::http::error::ApiResult;
use crate::http::extract::{QbParams, EXPIRATION_HEADER};
use crate::http::state::AppState;
use crate::http::wire;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/session", post(create).get(show).delete(destroy))
        .route("/login", post(login).delete(logout))
}

async fn create(State(state): State<AppState>, params: QbParams) -> ApiResult<Response> {
    let request = SessionRequest { params: params.0 };
    let (session, _user) = state.control.create_session(&request).await?;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "session": wire::session(&session) })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&expiration_header(session.expires_at)) {
        response.headers_mut().insert(EXPIRATION_HEADER, value);
    }
    Ok(response)
}

async fn show(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({ "session": wire::session(&caller.session) }))
}

async fn destroy(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state.control.destroy_session(&caller).await?;
    Ok(StatusCode::OK)
}

async fn login(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<impl IntoResponse> {
    let password = params.get("password").unwrap_or_default();
    let user = state
        .control
        .login(
            &caller,
            params.value("login"),
            params.value("email"),
            password,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(wire::wrapped_user(&user))))
}

async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state.control.logout(&caller).await?;
    Ok(StatusCode::OK)
}
