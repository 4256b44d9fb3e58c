//! Extractors: QuickBlox parameters from query and body, and the calling session.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;
use crate::domain::sessions::{expiration_header, Caller};
use crate::domain::users::UserParams;
use crate::domain::DomainError;

pub const TOKEN_HEADER: &str = "qb-token";
pub const EXPIRATION_HEADER: &str = "qb-token-expirationdate";

/// All request parameters, decoded, in order: the query string first, then the body
/// (form-encoded, or JSON flattened to the same `key[sub]` names).
#[derive(Clone, Debug, Default)]
pub struct QbParams(pub Vec<(String, String)>);

impl QbParams {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A present, non-empty value.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The members of `prefix[...]`, keyed by member name (the last value wins).
    pub fn object(&self, prefix: &str) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let member = k
                    .strip_prefix(prefix)?
                    .strip_prefix('[')?
                    .strip_suffix(']')?;
                Some((member.to_string(), v.clone()))
            })
            .collect()
    }

    pub fn user_params(&self) -> UserParams {
        UserParams(self.object("user"))
    }

    /// A positive integer parameter, or `default` when absent.
    pub fn positive(&self, key: &str, default: i64) -> Result<i64, ApiError> {
        match self.value(key) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| DomainError::invalid(key, "must be a positive integer").into()),
        }
    }
}

/// A request's decoded query pairs, whether its body is JSON, and the body.
pub(crate) struct RawParams {
    pub query: Vec<(String, String)>,
    pub is_json: bool,
    pub body: Bytes,
}

impl RawParams {
    pub async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Self, ApiError> {
        let query = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Malformed(e.body_text()))?;
        Ok(Self {
            query,
            is_json,
            body,
        })
    }

    pub fn body_is_blank(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }
}

impl<S: Send + Sync> FromRequest<S> for QbParams {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawParams::read(req, state).await?;
        let (mut pairs, is_json, body) = (raw.query, raw.is_json, raw.body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(pairs));
        }
        if is_json {
            let value: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::Malformed(format!("invalid JSON body: {e}")))?;
            let Value::Object(members) = value else {
                return Err(ApiError::Malformed(
                    "the JSON body must be an object".into(),
                ));
            };
            for (key, member) in members {
                flatten_json(key, &member, &mut pairs);
            }
        } else {
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Self(pairs))
    }
}

/// `{"user":{"login":"a"},"ids":[1,2]}` → `user[login]=a`, `ids=1,2`.
fn flatten_json(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) => {
            for (member, inner) in members {
                flatten_json(format!("{key}[{member}]"), inner, out);
            }
        }
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().map(scalar_text).collect();
            out.push((key, joined.join(",")));
        }
        other => out.push((key, scalar_text(other))),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What the session middleware found for this request's `QB-Token`.
#[derive(Clone)]
enum SessionLookup {
    NoToken,
    Invalid,
    Failed,
    Valid(Caller),
}

/// Resolves `QB-Token` once per request (sliding its expiry) and stamps
/// `QB-Token-ExpirationDate` on the response.
pub async fn resolve_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let lookup = match token {
        None => SessionLookup::NoToken,
        Some(token) => match state.control.authenticate(token).await {
            Ok(caller) => SessionLookup::Valid(caller),
            Err(DomainError::SessionNotFound) => SessionLookup::Invalid,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                SessionLookup::Failed
            }
        },
    };
    let expires_at = match &lookup {
        SessionLookup::Valid(caller) => Some(caller.session.expires_at),
        _ => None,
    };
    req.extensions_mut().insert(lookup);
    let mut response = next.run(req).await;
    if let Some(expires_at) = expires_at {
        let headers = response.headers_mut();
        if !headers.contains_key(EXPIRATION_HEADER) {
            if let Ok(value) = HeaderValue::from_str(&expiration_header(expires_at)) {
                headers.insert(EXPIRATION_HEADER, value);
            }
        }
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<SessionLookup>() {
            Some(SessionLookup::Valid(caller)) => Ok(caller.clone()),
            Some(SessionLookup::Invalid) => Err(DomainError::SessionNotFound.into()),
            Some(SessionLookup::Failed) => Err(DomainError::Unavailable.into()),
            Some(SessionLookup::NoToken) | None => Err(DomainError::TokenRequired.into()),
        }
    }
}
