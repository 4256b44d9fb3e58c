//! A loopback stand-in of FCM HTTP v1 (plain HTTP: FCM's TLS adds nothing to check) that
//! checks what FCM checks: the service-account assertion's RS256 signature against the
//! account's public key and its claims at the token endpoint, the bearer token it issued,
//! and the message shape; it answers success, `UNREGISTERED` (token `dead`), 503 with
//! `Retry-After` once (token `busy`) and 400 (token `bad`).

// Shared by test crates that each use a part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

pub const PRIVATE_KEY: &str = include_str!("../fixtures/fcm-test-key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/fcm-test-key.pub.pem");
pub const CLIENT_EMAIL: &str = "switchboard@test-project.iam.gserviceaccount.com";
const ACCESS_TOKEN: &str = "ya29.stand-in-token";

#[derive(Default)]
pub struct Seen {
    pub token_requests: usize,
    pub sends: Vec<Value>,
    busy_answered: bool,
    pub errors: Vec<String>,
}

#[derive(Clone)]
pub struct StandIn {
    pub token_uri: String,
    pub seen: Arc<Mutex<Seen>>,
}

async fn token(State(s): State<StandIn>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    s.seen.lock().unwrap().token_requests += 1;
    if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[s.token_uri.as_str()]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    match jsonwebtoken::decode::<Value>(&get("assertion").unwrap_or_default(), &key, &validation) {
        Ok(data)
            if data.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging" =>
        {
            Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
                .into_response()
        }
        Ok(data) => {
            s.seen
                .lock()
                .unwrap()
                .errors
                .push(format!("scope {}", data.claims["scope"]));
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_scope"})),
            )
                .into_response()
        }
        Err(e) => {
            s.seen
                .lock()
                .unwrap()
                .errors
                .push(format!("assertion: {e}"));
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            )
                .into_response()
        }
    }
}

async fn send(
    State(s): State<StandIn>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut seen = s.seen.lock().unwrap();
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {ACCESS_TOKEN}"))
    {
        seen.errors.push("bad bearer".into());
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"status": "UNAUTHENTICATED"}})),
        )
            .into_response();
    }
    let data_ok = body["message"]["data"]
        .as_object()
        .is_some_and(|d| d.values().all(Value::is_string));
    if project != "test-project" || !body["message"]["token"].is_string() || !data_ok {
        seen.errors.push(format!("bad request {project} {body}"));
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"status": "INVALID_ARGUMENT"}})),
        )
            .into_response();
    }
    seen.sends.push(body.clone());
    match body["message"]["token"].as_str().unwrap() {
        "dead" => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
        )
            .into_response(),
        "busy" if !seen.busy_answered => {
            seen.busy_answered = true;
            (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], Json(json!({"error": {"status": "UNAVAILABLE"}})))
                .into_response()
        }
        "bad" => (StatusCode::BAD_REQUEST, Json(json!({"error": {"status": "INVALID_ARGUMENT", "message": "bad token"}})))
            .into_response(),
        _ => Json(json!({"name": "projects/test-project/messages/1"})).into_response(),
    }
}

/// Starts the stand-in; returns it and its base URL (`http://127.0.0.1:PORT`).
pub async fn stand_in() -> (StandIn, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = StandIn {
        token_uri: format!("{base}/token"),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, base)
}
