//! APNs provider API over HTTP/2 with token-based authentication.
//!
//! Every request carries `authorization: bearer <provider token>`: an ES256 JWT signed with
//! the team's `.p8` key, header `kid` = key id, claims `iss` = team id and `iat`. Apple
//! rejects tokens older than an hour (`ExpiredProviderToken`) and refreshes more often than
//! every 20 minutes (`TooManyProviderTokenUpdates`), so one token is reused and replaced
//! after [`TOKEN_REFRESH`].
//!
//! `POST {endpoint}/3/device/{hex token}` with `apns-topic` (the subscription's bundle id,
//! else the configured topic; `.voip` appended for `apns_voip`), `apns-push-type`,
//! `apns-priority` and `apns-expiration`; the body is `{"aps":{...}, <custom keys>}` mapped
//! from QuickBlox's `ios_*` keys. The client speaks HTTP/2 only (ALPN `h2`), as APNs
//! requires, and keeps its connection open across notifications as Apple asks.
//!
//! Answers: 200 delivered; 410, or 400 `BadDeviceToken`/`DeviceTokenNotForTopic`, a dead
//! token; 429 and 5xx retryable (with `Retry-After`); 403 `ExpiredProviderToken` retryable
//! with a fresh token; anything else refused with Apple's `reason`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::providers::client_builder;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::push::{Channel, PushMessage, PushOutcome, PushSender};

pub const PRODUCTION_ENDPOINT: &str = "https://api.push.apple.com";
pub const DEVELOPMENT_ENDPOINT: &str = "https://api.sandbox.push.apple.com";

/// Age at which the provider token is replaced: Apple refuses tokens older than 60 minutes
/// and refreshes more frequent than every 20; 50 leaves room for clock skew.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(50 * 60);
/// Per-request timeout (arbitrary; APNs answers within a second when healthy).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long APNs keeps an undeliverable alert (arbitrary: a chat notice older than a day
/// is noise; Apple would keep it about 30 days).
const ALERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long APNs keeps an undeliverable VoIP push: a call rings for about a minute
/// (QuickBlox's default answer timeout is 60 s); later it is stale.
const VOIP_TTL: Duration = Duration::from_secs(60);
/// Payload limits of Apple's documentation: 4 KB for notifications, 5 KB for VoIP.
const MAX_PAYLOAD: usize = 4096;
const MAX_VOIP_PAYLOAD: usize = 5120;
/// Device tokens are 32 bytes today; Apple says they may grow, up to 100 bytes.
const MAX_TOKEN_HEX: usize = 200;

#[derive(Clone, Debug)]
pub struct ApnsConfig {
    /// The `.p8` key file's PEM text (PKCS#8, P-256).
    pub key_pem: String,
    /// The key's 10-character id (JWT header `kid`).
    pub key_id: String,
    /// The team id (JWT claim `iss`).
    pub team_id: String,
    /// `apns-topic` for subscriptions without a bundle id.
    pub topic: Option<String>,
    /// Endpoints for `production` and `development` subscriptions.
    pub production_endpoint: String,
    pub development_endpoint: String,
}

impl ApnsConfig {
    /// Reads the `.p8` key; `endpoint` replaces both of Apple's (a stand-in or a proxy).
    pub fn from_file(
        path: &std::path::Path,
        key_id: &str,
        team_id: &str,
        topic: Option<String>,
        endpoint: Option<String>,
    ) -> Result<Self, String> {
        let key_pem = std::fs::read_to_string(path)
            .map_err(|e| format!("reading APNs key {}: {e}", path.display()))?;
        Ok(Self {
            key_pem,
            key_id: key_id.trim().to_string(),
            team_id: team_id.trim().to_string(),
            topic: topic.filter(|t| !t.trim().is_empty()),
            production_endpoint: endpoint
                .clone()
                .unwrap_or_else(|| PRODUCTION_ENDPOINT.into()),
            development_endpoint: endpoint.unwrap_or_else(|| DEVELOPMENT_ENDPOINT.into()),
        })
    }
}

/// What kind of push a payload is (`apns-push-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushType {
    Alert,
    /// `content-available` only: a silent update, which Apple requires at priority 5.
    Background,
    Voip,
}

impl PushType {
    pub fn header(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Voip => "voip",
        }
    }

    fn priority(self) -> &'static str {
        match self {
            PushType::Background => "5",
            PushType::Alert | PushType::Voip => "10",
        }
    }
}

struct ProviderToken {
    jwt: String,
    issued_at: OffsetDateTime,
}

pub struct ApnsSender {
    config: ApnsConfig,
    key: EncodingKey,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    token: Mutex<Option<ProviderToken>>,
}

impl ApnsSender {
    /// `extra_roots`: CA certificates trusted besides the system's (a private CA, a test).
    pub fn new(config: ApnsConfig, extra_roots: &[reqwest::Certificate]) -> Result<Self, String> {
        if config.key_id.is_empty() || config.team_id.is_empty() {
            return Err("APNs needs a key id and a team id".into());
        }
        let key = EncodingKey::from_ec_pem(config.key_pem.as_bytes())
            .map_err(|e| format!("APNs key (a PKCS#8 P-256 .p8 file): {e}"))?;
        // Proves the key signs ES256 now rather than at the first push.
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &json!({}), &key)
            .map_err(|e| format!("APNs key cannot sign ES256: {e}"))?;
        let http = client_builder(extra_roots)
            .http2_prior_knowledge()
            .timeout(REQUEST_TIMEOUT)
            // Apple asks providers to keep connections open (it treats rapid reconnects as
            // an attack); pings notice a connection that died while idle.
            .pool_idle_timeout(None)
            .http2_keep_alive_interval(Some(Duration::from_secs(600)))
            .http2_keep_alive_while_idle(true)
            .build()
            .map_err(|e| format!("APNs HTTP client: {e}"))?;
        Ok(Self {
            config,
            key,
            http,
            clock: Arc::new(SystemClock),
            token: Mutex::new(None),
        })
    }

    /// Replaces the wall clock the provider token's `iat` and age come from (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `apns (team T, key K[, topic X])`, for the startup banner.
    pub fn describe(&self) -> String {
        let topic = match &self.config.topic {
            Some(t) => format!(", topic {t}"),
            None => String::new(),
        };
        format!(
            "apns (team {}, key {}{topic})",
            self.config.team_id, self.config.key_id
        )
    }

    /// The current provider token, signed anew when it is [`TOKEN_REFRESH`] old.
    fn provider_token(&self) -> Result<String, PushOutcome> {
        let now = self.clock.now();
        // A poisoned lock means a panic elsewhere while holding it; the cache is still valid.
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = cached.as_ref() {
            let age = now - token.issued_at;
            if age >= time::Duration::ZERO && age < TOKEN_REFRESH {
                return Ok(token.jwt.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.config.key_id.clone());
        let claims = json!({"iss": self.config.team_id, "iat": now.unix_timestamp()});
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| PushOutcome::Failed(format!("signing the APNs provider token: {e}")))?;
        *cached = Some(ProviderToken {
            jwt: jwt.clone(),
            issued_at: now,
        });
        Ok(jwt)
    }

    /// Drops `jwt` from the cache (APNs called it expired) so the next attempt signs anew.
    fn forget_token(&self, jwt: &str) {
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|t| t.jwt == jwt) {
            *cached = None;
        }
    }

    fn topic(&self, message: &PushMessage) -> Option<String> {
        let base = message
            .bundle_id
            .as_deref()
            .or(self.config.topic.as_deref())?;
        Some(match message.channel {
            Channel::ApnsVoip if !base.ends_with(".voip") => format!("{base}.voip"),
            _ => base.to_string(),
        })
    }

    fn endpoint(&self, environment: &str) -> &str {
        let endpoint = match environment {
            "production" => &self.config.production_endpoint,
            _ => &self.config.development_endpoint,
        };
        endpoint.trim_end_matches('/')
    }
}

#[async_trait]
impl PushSender for ApnsSender {
    async fn send(&self, message: &PushMessage) -> PushOutcome {
        // A token that is not hex is one APNs would answer BadDeviceToken; it must not
        // reach the URL path either.
        let Some(device) = device_token(&message.token) else {
            return PushOutcome::Unregistered;
        };
        let Some(topic) = self.topic(message) else {
            return PushOutcome::Failed(
                "no apns-topic: set push_apns_topic or the subscription's bundle_identifier".into(),
            );
        };
        let (body, push_type) = payload(message);
        let body = body.to_string();
        let limit = match push_type {
            PushType::Voip => MAX_VOIP_PAYLOAD,
            _ => MAX_PAYLOAD,
        };
        if body.len() > limit {
            return PushOutcome::Failed(format!(
                "APNs payload of {} bytes exceeds {limit}",
                body.len()
            ));
        }
        let jwt = match self.provider_token() {
            Ok(jwt) => jwt,
            Err(outcome) => return outcome,
        };
        let ttl = match push_type {
            PushType::Voip => VOIP_TTL,
            _ => ALERT_TTL,
        };
        let expiration = self.clock.now().unix_timestamp() + ttl.as_secs() as i64;
        let url = format!("{}/3/device/{device}", self.endpoint(&message.environment));
        let answer = self
            .http
            .post(url)
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", topic)
            .header("apns-push-type", push_type.header())
            .header("apns-priority", push_type.priority())
            .header("apns-expiration", expiration.to_string())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "APNs request failed");
                return PushOutcome::Retry(None);
            }
        };
        let status = answer.status().as_u16();
        if status == 200 {
            return PushOutcome::Delivered;
        }
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let reason = answer
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or_default();
        match (status, reason.as_str()) {
            (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
                PushOutcome::Unregistered
            }
            (429, _) | (500..=599, _) => PushOutcome::Retry(retry_after),
            (403, "ExpiredProviderToken") => {
                self.forget_token(&jwt);
                PushOutcome::Retry(None)
            }
            _ => PushOutcome::Failed(format!("APNs HTTP {status} {reason}")),
        }
    }
}

/// The token as APNs wants it in the path: lowercase hex. Tolerates the `<abcd ef01 ...>`
/// shape of `NSData.description` that older apps send.
fn device_token(raw: &str) -> Option<String> {
    let token: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '<' && *c != '>')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = !token.is_empty()
        && token.len() % 2 == 0
        && token.len() <= MAX_TOKEN_HEX
        && token.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(token)
}

/// QuickBlox's payload keys mapped to APNs: the alert and `ios_*` keys into `aps`, other
/// keys at the root. Returns the body and its push type.
pub fn payload(message: &PushMessage) -> (Value, PushType) {
    let mut aps = Map::new();
    if !message.alert.is_empty() {
        aps.insert("alert".into(), Value::String(message.alert.clone()));
    }
    let mut root = Map::new();
    for (key, value) in &message.data {
        match key.as_str() {
            "ios_badge" => {
                if let Some(n) = as_integer(value) {
                    aps.insert("badge".into(), n.into());
                }
            }
            "ios_sound" => {
                aps.insert("sound".into(), Value::String(as_text(value)));
            }
            "ios_category" => {
                aps.insert("category".into(), Value::String(as_text(value)));
            }
            "ios_content_available" if is_set(value) => {
                aps.insert("content-available".into(), 1.into());
            }
            "ios_mutable_content" if is_set(value) => {
                aps.insert("mutable-content".into(), 1.into());
            }
            // Control keys (`ios_voip` picks the channel) and a custom `aps`, which would
            // replace ours, stay out of the payload.
            "ios_content_available" | "ios_mutable_content" | "ios_voip" | "aps" => {}
            _ => {
                root.insert(key.clone(), value.clone());
            }
        }
    }
    let silent = !aps.contains_key("alert")
        && !aps.contains_key("badge")
        && !aps.contains_key("sound")
        && aps.contains_key("content-available");
    let push_type = match message.channel {
        Channel::ApnsVoip => PushType::Voip,
        _ if silent => PushType::Background,
        _ => PushType::Alert,
    };
    root.insert("aps".into(), Value::Object(aps));
    (Value::Object(root), push_type)
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// QuickBlox sends flags as `1`, `"1"` or `true`.
fn is_set(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(s.trim(), "1" | "true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: Channel, alert: &str, data: Value) -> PushMessage {
        PushMessage {
            channel,
            token: "ab".into(),
            environment: "development".into(),
            bundle_id: None,
            alert: alert.into(),
            data: data.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn quickblox_keys_map_into_aps_and_custom_keys_stay_at_the_root() {
        let m = message(
            Channel::Apns,
            "hi",
            json!({"ios_badge": "3", "ios_sound": "ping.caf", "ios_category": "chat",
                   "ios_mutable_content": 1, "ios_voip": "1", "dialog_id": "d1", "aps": "x"}),
        );
        let (body, kind) = payload(&m);
        assert_eq!(kind, PushType::Alert);
        assert_eq!(
            body,
            json!({"aps": {"alert": "hi", "badge": 3, "sound": "ping.caf", "category": "chat",
                           "mutable-content": 1}, "dialog_id": "d1"})
        );
    }

    #[test]
    fn content_available_alone_is_a_background_push_and_voip_follows_the_channel() {
        let silent = message(Channel::Apns, "", json!({"ios_content_available": "1"}));
        assert_eq!(
            payload(&silent),
            (
                json!({"aps": {"content-available": 1}}),
                PushType::Background
            )
        );
        let voip = message(Channel::ApnsVoip, "call", json!({}));
        assert_eq!(payload(&voip).1, PushType::Voip);
    }

    #[test]
    fn device_tokens_are_normalised_hex() {
        assert_eq!(device_token("<AB12 cd34>").as_deref(), Some("ab12cd34"));
        assert_eq!(device_token("abc"), None);
        assert_eq!(device_token("../x"), None);
        assert_eq!(device_token(""), None);
    }
}
