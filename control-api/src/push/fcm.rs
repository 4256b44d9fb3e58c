//! FCM HTTP v1: a service-account JWT (RS256) is exchanged for an OAuth2 access token at the
//! account's `token_uri`, cached until shortly before it expires, and used as the bearer of
//! `POST {endpoint}/v1/projects/{project_id}/messages:send`.
//!
//! Payload (QuickBlox's mapping for `gcm`): `data.message` = the alert, `data.<key>` = the
//! other payload keys, every value a string as FCM requires. Answers: 200 delivered;
//! `UNREGISTERED` (404) a dead token; 429 and 5xx retryable (with `Retry-After`); anything
//! else refused.

use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use super::providers::client_builder;
use crate::domain::push::{PushMessage, PushOutcome, PushSender};

/// The OAuth2 scope FCM sends need.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Lifetime asked for the assertion (Google's maximum: one hour).
const ASSERTION_TTL: i64 = 3600;
/// A cached access token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// Per-request timeout towards FCM (arbitrary; its sends answer within a second).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The fields of a Google service-account key file that FCM needs.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    pub token_uri: String,
}

#[derive(Clone, Debug)]
pub struct FcmConfig {
    pub account: ServiceAccount,
    /// `https://fcm.googleapis.com`, or a stand-in's URL in tests.
    pub endpoint: String,
}

impl FcmConfig {
    /// Reads a service-account JSON key file.
    pub fn from_file(path: &std::path::Path, endpoint: Option<String>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading FCM service account {}: {e}", path.display()))?;
        let account: ServiceAccount = serde_json::from_str(&text)
            .map_err(|e| format!("parsing FCM service account {}: {e}", path.display()))?;
        Ok(Self {
            account,
            endpoint: endpoint.unwrap_or_else(|| "https://fcm.googleapis.com".into()),
        })
    }
}

pub struct FcmSender {
    config: FcmConfig,
    key: EncodingKey,
    http: reqwest::Client,
    token: Mutex<Option<(String, std::time::Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl FcmSender {
    pub fn new(config: FcmConfig) -> Result<Self, String> {
        Self::with_roots(config, &[])
    }

    /// `extra_roots`: CA certificates trusted besides the system's (a private CA, a test).
    pub fn with_roots(
        config: FcmConfig,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<Self, String> {
        let key = EncodingKey::from_rsa_pem(config.account.private_key.as_bytes())
            .map_err(|e| format!("FCM service account private key: {e}"))?;
        let http = client_builder(extra_roots)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            key,
            http,
            token: Mutex::new(None),
        })
    }

    /// `fcm (project X)`, for the startup banner.
    pub fn describe(&self) -> String {
        format!("fcm (project {})", self.config.account.project_id)
    }

    /// A valid access token, from the cache or a fresh exchange.
    async fn access_token(&self) -> Result<String, PushOutcome> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if std::time::Instant::now() + RENEW_BEFORE < *until {
                return Ok(token.clone());
            }
        }
        let account = &self.config.account;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": account.client_email,
            "scope": SCOPE,
            "aud": account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_TTL,
        });
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| PushOutcome::Failed(format!("signing the FCM assertion: {e}")))?;
        let answer = self
            .http
            .post(&account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "FCM token request failed");
                PushOutcome::Retry(None)
            })?;
        let status = answer.status();
        if !status.is_success() {
            return Err(classify(status, None, "token exchange"));
        }
        let token: TokenAnswer = answer
            .json()
            .await
            .map_err(|e| PushOutcome::Failed(format!("FCM token answer: {e}")))?;
        let until = std::time::Instant::now() + Duration::from_secs(token.expires_in);
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }
}

#[async_trait]
impl PushSender for FcmSender {
    async fn send(&self, message: &PushMessage) -> PushOutcome {
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.endpoint.trim_end_matches('/'),
            self.config.account.project_id
        );
        let answer = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(&body(message))
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "FCM send failed");
                return PushOutcome::Retry(None);
            }
        };
        let status = answer.status();
        if status.is_success() {
            return PushOutcome::Delivered;
        }
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        if status.is_server_error() || status.as_u16() == 429 {
            return PushOutcome::Retry(retry_after);
        }
        let error: Value = answer.json().await.unwrap_or(Value::Null);
        if is_unregistered(&error) {
            return PushOutcome::Unregistered;
        }
        classify(status, Some(&error), "send")
    }
}

/// `{"message":{"token":..,"data":{"message":..,"k":"v"}}}`.
pub fn body(message: &PushMessage) -> Value {
    let mut data = Map::new();
    data.insert("message".into(), Value::String(message.alert.clone()));
    for (key, value) in &message.data {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        data.insert(key.clone(), Value::String(text));
    }
    json!({"message": {"token": message.token, "data": data}})
}

/// FCM's `UNREGISTERED` (HTTP 404), from `error.details[].errorCode` or `error.status`.
fn is_unregistered(error: &Value) -> bool {
    let details = error["error"]["details"].as_array();
    details.is_some_and(|d| d.iter().any(|x| x["errorCode"] == "UNREGISTERED"))
        || error["error"]["status"] == "NOT_FOUND"
}

fn classify(status: reqwest::StatusCode, error: Option<&Value>, what: &str) -> PushOutcome {
    if status.is_server_error() || status.as_u16() == 429 {
        return PushOutcome::Retry(None);
    }
    let detail = error
        .map(|e| e["error"]["message"].to_string())
        .unwrap_or_default();
    PushOutcome::Failed(format!("FCM {what}: HTTP {status} {detail}"))
}
