//! A loopback stand-in of the APNs provider API: HTTP/2 over TLS only (ALPN `h2`, a
//! generated certificate the client must trust), checking what Apple checks — the provider
//! token's ES256 signature against the team key's public half, its `kid`, `iss` and `iat`
//! (older than an hour: `ExpiredProviderToken`; replaced within 20 minutes:
//! `TooManyProviderTokenUpdates`), the `apns-*` headers against the payload, the `aps`
//! object and the device token's hex form — and answering from a per-device script.
//! Every request that passes is recorded; every refusal is recorded as an error too, so a
//! test asserts both what arrived and that nothing was refused unexpectedly.

// Shared by test crates that each use a part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// Apple's limits on provider tokens.
const TOKEN_MAX_AGE: i64 = 3600;
const TOKEN_MIN_REFRESH: i64 = 20 * 60;
const APNS_ID: &str = "00000000-0000-4000-8000-000000000000";

/// A scripted answer for one request to a device.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 410 `Unregistered`.
    Unregistered,
    /// 400 with this reason (`BadDeviceToken`, `DeviceTokenNotForTopic`...).
    BadRequest(&'static str),
    /// This status (429 or 5xx) with an optional `Retry-After` in seconds.
    Busy(u16, Option<u64>),
}

/// One request that passed every check.
#[derive(Clone, Debug)]
pub struct Received {
    pub device: String,
    pub topic: String,
    pub push_type: String,
    pub priority: String,
    pub expiration: i64,
    pub payload: Value,
    /// `iat` of the provider token it carried, and the token itself.
    pub token_iat: i64,
    pub jwt: String,
}

#[derive(Default)]
pub struct Seen {
    pub received: Vec<Received>,
    /// Refusals the stand-in's checks made (a correct client causes none).
    pub errors: Vec<String>,
    /// Distinct provider tokens seen, in order.
    pub tokens: Vec<(String, i64)>,
}

/// What the stand-in expects of its client.
pub struct Expect {
    pub key_id: String,
    pub team_id: String,
    /// Bundle ids the team's key may push to (their `.voip` topics are allowed for VoIP).
    pub bundle_ids: Vec<String>,
    /// PEM of the team key's public half.
    pub public_key_pem: String,
    /// The stand-in's "now" in unix seconds (a test's manual clock, or the system's).
    pub now: Box<dyn Fn() -> i64 + Send + Sync>,
}

pub struct Shared {
    expect: Expect,
    pub seen: Mutex<Seen>,
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
}

pub struct ApnsStandIn {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The stand-in's self-signed certificate, to be trusted by the client.
    pub ca_pem: String,
    pub shared: Arc<Shared>,
}

impl ApnsStandIn {
    pub async fn start(expect: Expect) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .expect("stand-in certificate");
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("TLS config");
        // APNs speaks HTTP/2 only: a client offering just http/1.1 fails the handshake.
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let shared = Arc::new(Shared {
            expect,
            seen: Mutex::default(),
            script: Mutex::default(),
        });
        let app = Router::new()
            .route("/3/device/{device}", post(push))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let server =
            axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(tls)));
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        Self {
            url: format!("https://{addr}"),
            ca_pem: certified.cert.pem(),
            shared,
        }
    }

    /// Answers the next requests to `device` with `answers`, then with success.
    pub fn script(&self, device: &str, answers: &[Answer]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .entry(device.to_string())
            .or_default()
            .extend(answers.iter().cloned());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.seen.lock().unwrap().received.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().errors.clone()
    }

    pub fn tokens(&self) -> Vec<(String, i64)> {
        self.shared.seen.lock().unwrap().tokens.clone()
    }
}

fn refuse(shared: &Shared, status: u16, reason: &str, why: String) -> Response {
    shared
        .seen
        .lock()
        .unwrap()
        .errors
        .push(format!("{status} {reason}: {why}"));
    reply(status, reason, None)
}

fn reply(status: u16, reason: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).expect("status");
    let mut response = (
        status,
        [("apns-id", APNS_ID)],
        Json(json!({"reason": reason})),
    )
        .into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the provider token as APNs does; `Err((status, reason, why))` on refusal.
fn check_token(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<(String, i64), (u16, &'static str, String)> {
    let expect = &shared.expect;
    let Some(jwt) = header(headers, "authorization").and_then(|v| v.strip_prefix("bearer ")) else {
        return Err((
            403,
            "MissingProviderToken",
            "no bearer authorization".into(),
        ));
    };
    let invalid = |why: String| (403, "InvalidProviderToken", why);
    let head = jsonwebtoken::decode_header(jwt).map_err(|e| invalid(format!("header: {e}")))?;
    if head.alg != Algorithm::ES256 || head.kid.as_deref() != Some(expect.key_id.as_str()) {
        return Err(invalid(format!("alg {:?} kid {:?}", head.alg, head.kid)));
    }
    let key = DecodingKey::from_ec_pem(expect.public_key_pem.as_bytes()).expect("public key");
    let mut validation = Validation::new(Algorithm::ES256);
    // Provider tokens carry no `exp`: their age is judged by `iat`.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.set_issuer(&[expect.team_id.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|e| invalid(format!("signature or claims: {e}")))?
        .claims;
    let Some(iat) = claims["iat"].as_i64() else {
        return Err(invalid("no iat".into()));
    };
    let now = (expect.now)();
    if now - iat > TOKEN_MAX_AGE {
        return Err((403, "ExpiredProviderToken", format!("iat {iat}, now {now}")));
    }
    if iat > now + 60 {
        return Err(invalid(format!("iat {iat} in the future of {now}")));
    }
    let mut seen = shared.seen.lock().unwrap();
    if !seen.tokens.iter().any(|(t, _)| t == jwt) {
        if let Some((_, last)) = seen.tokens.last() {
            if iat - last < TOKEN_MIN_REFRESH {
                return Err((
                    429,
                    "TooManyProviderTokenUpdates",
                    format!("iat {iat} after {last}"),
                ));
            }
        }
        seen.tokens.push((jwt.to_string(), iat));
    }
    Ok((jwt.to_string(), iat))
}

async fn push(
    State(shared): State<Arc<Shared>>,
    Path(device): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if version != Version::HTTP_2 {
        return refuse(&shared, 400, "BadRequest", format!("{version:?}"));
    }
    if device.is_empty() || device.len() % 2 != 0 || !device.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return refuse(&shared, 400, "BadDeviceToken", device);
    }
    let (jwt, token_iat) = match check_token(&shared, &headers) {
        Ok(token) => token,
        Err((status, reason, why)) => return refuse(&shared, status, reason, why),
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return refuse(&shared, 400, "PayloadEmpty", "not JSON".into());
    };
    let Some(aps) = payload["aps"].as_object() else {
        return refuse(
            &shared,
            400,
            "BadRequest",
            format!("no aps object: {payload}"),
        );
    };
    let push_type = header(&headers, "apns-push-type")
        .unwrap_or_default()
        .to_string();
    let priority = header(&headers, "apns-priority")
        .unwrap_or("10")
        .to_string();
    let Some(topic) = header(&headers, "apns-topic").map(str::to_string) else {
        return refuse(&shared, 400, "MissingTopic", String::new());
    };
    let bundle = match push_type.as_str() {
        "voip" => topic.strip_suffix(".voip"),
        _ => Some(topic.as_str()),
    };
    if !bundle.is_some_and(|b| shared.expect.bundle_ids.iter().any(|id| id == b)) {
        return refuse(
            &shared,
            400,
            "TopicDisallowed",
            format!("{topic} for {push_type}"),
        );
    }
    let visible = ["alert", "badge", "sound"]
        .iter()
        .any(|k| aps.contains_key(*k));
    let type_fits = match push_type.as_str() {
        "alert" => visible,
        "background" => {
            !visible && aps.get("content-available") == Some(&json!(1)) && priority == "5"
        }
        "voip" => true,
        _ => false,
    };
    if !type_fits {
        return refuse(
            &shared,
            400,
            "InvalidPushType",
            format!("{push_type} p{priority} {payload}"),
        );
    }
    if !matches!(priority.as_str(), "5" | "10") {
        return refuse(&shared, 400, "BadPriority", priority);
    }
    let Some(expiration) = header(&headers, "apns-expiration").and_then(|v| v.parse::<i64>().ok())
    else {
        return refuse(&shared, 400, "BadExpirationDate", format!("{headers:?}"));
    };
    shared.seen.lock().unwrap().received.push(Received {
        device: device.clone(),
        topic,
        push_type,
        priority,
        expiration,
        payload,
        token_iat,
        jwt,
    });
    let answer = shared
        .script
        .lock()
        .unwrap()
        .get_mut(&device)
        .and_then(VecDeque::pop_front);
    match answer {
        // Success is headers only.
        None => (StatusCode::OK, [("apns-id", APNS_ID)]).into_response(),
        Some(Answer::Unregistered) => {
            let ms = (shared.expect.now)() * 1000;
            (
                StatusCode::GONE,
                Json(json!({"reason": "Unregistered", "timestamp": ms})),
            )
                .into_response()
        }
        Some(Answer::BadRequest(reason)) => reply(400, reason, None),
        Some(Answer::Busy(status, after)) => {
            let reason = match status {
                429 => "TooManyRequests",
                500 => "InternalServerError",
                _ => "ServiceUnavailable",
            };
            reply(status, reason, after)
        }
    }
}
