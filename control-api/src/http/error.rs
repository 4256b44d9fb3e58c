//! One mapping from errors to QuickBlox's status codes and `{"errors": ...}` bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The body or query could not be parsed at all.
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("account key is required")]
    AccountKeyRequired,
    /// An owner-only endpoint (class management) without `Authorization: ApiKey <key>`.
    #[error("the application's API key is required")]
    ApiKeyRequired,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl ApiError {
    fn status_and_body(&self) -> (StatusCode, Value) {
        match self {
            ApiError::Domain(e) => domain_status_and_body(e),
            ApiError::Malformed(why) => (StatusCode::BAD_REQUEST, base_errors(why)),
            ApiError::AccountKeyRequired => (
                StatusCode::UNAUTHORIZED,
                json!({"errors": ["QB-Account-Key header is required"]}),
            ),
            ApiError::ApiKeyRequired => (
                StatusCode::UNAUTHORIZED,
                json!({"errors": ["Authorization: ApiKey <the application's API key> is required"]}),
            ),
            ApiError::RouteNotFound => (
                StatusCode::NOT_FOUND,
                json!({"errors": ["Resource not found"]}),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"errors": ["Method not allowed for this resource"]}),
            ),
        }
    }
}

fn domain_status_and_body(error: &DomainError) -> (StatusCode, Value) {
    match error {
        DomainError::BadSignature => (
            StatusCode::UNPROCESSABLE_ENTITY,
            base_errors("Unexpected signature"),
        ),
        DomainError::TokenRequired => (
            StatusCode::UNAUTHORIZED,
            json!({"errors": ["Token is required"]}),
        ),
        // The SDK's session-expired hook looks for exactly "session does not exist".
        DomainError::SessionNotFound => (
            StatusCode::UNAUTHORIZED,
            json!({"errors": ["Required session does not exist"]}),
        ),
        DomainError::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            json!({"errors": ["Unauthorized"]}),
        ),
        DomainError::Forbidden(why) => (StatusCode::FORBIDDEN, json!({"errors": [why]})),
        DomainError::NotFound => (
            StatusCode::NOT_FOUND,
            base_errors("Entity you are looking for was not found"),
        ),
        DomainError::Validation(fields) => {
            let mut errors = Map::new();
            for (field, message) in fields {
                let entry = errors
                    .entry(field.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    list.push(Value::String(message.clone()));
                }
            }
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "errors": errors }),
            )
        }
        DomainError::TooLarge(max) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            base_errors(&format!("File is too large (maximum is {max} bytes)")),
        ),
        DomainError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": ["Service temporarily unavailable"]}),
        ),
        DomainError::Store(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errors": ["Internal server error"]}),
        ),
    }
}

fn base_errors(message: &str) -> Value {
    json!({"errors": {"base": [message]}})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        if status.is_server_error() {
            // Internals go to the log, never to the client.
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
