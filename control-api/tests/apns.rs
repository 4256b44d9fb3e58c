//! The APNs client against a loopback HTTP/2 + TLS stand-in (`stand_ins/apns.rs`) that
//! verifies what Apple verifies, directly and through the REST API (events reaching devices,
//! dead tokens losing their subscription, retries, metrics).

mod common;
mod stand_ins;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use common::TestApi;
use control_api::domain::push::{Channel, PushMessage, PushOutcome, PushSender};
use control_api::push::{ApnsConfig, ApnsSender, ProviderSender};
use control_api::{http, Clock, ManualClock};
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};
use stand_ins::apns::{Answer, ApnsStandIn, Expect};

const KEY: &str = include_str!("fixtures/apns-test-key.p8");
const PUBLIC_KEY: &str = include_str!("fixtures/apns-test-key.pub.pem");
const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "DEF123GHIJ";
const BUNDLE: &str = "com.example.chat";

/// A device token as iOS hands it out: 32 bytes in hex.
fn device(n: u8) -> String {
    hex::encode([n; 32])
}

/// A stand-in whose clock is `clock` plus `skew` seconds.
async fn stand_in(clock: Arc<ManualClock>, skew: Arc<AtomicI64>) -> ApnsStandIn {
    ApnsStandIn::start(Expect {
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        bundle_ids: vec![BUNDLE.into()],
        public_key_pem: PUBLIC_KEY.into(),
        now: Box::new(move || clock.now().unix_timestamp() + skew.load(Ordering::SeqCst)),
    })
    .await
}

fn config(stand_in: &ApnsStandIn, topic: Option<&str>, key: &str) -> ApnsConfig {
    ApnsConfig {
        key_pem: key.into(),
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        topic: topic.map(str::to_string),
        production_endpoint: stand_in.url.clone(),
        development_endpoint: stand_in.url.clone(),
    }
}

fn sender(stand_in: &ApnsStandIn, topic: Option<&str>, clock: Arc<ManualClock>) -> ApnsSender {
    let root = reqwest::Certificate::from_pem(stand_in.ca_pem.as_bytes()).unwrap();
    ApnsSender::new(config(stand_in, topic, KEY), &[root])
        .expect("sender")
        .with_clock(clock)
}

fn message(channel: Channel, token: &str, alert: &str, data: Value) -> PushMessage {
    PushMessage {
        channel,
        token: token.into(),
        environment: "production".into(),
        bundle_id: None,
        alert: alert.into(),
        data: data.as_object().cloned().unwrap_or_else(Map::new),
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(common::start_time()))
}

#[tokio::test]
async fn pushes_go_over_http2_with_a_reused_es256_provider_token_and_apple_headers() {
    let clock = clock();
    let apns = stand_in(clock.clone(), Arc::default()).await;
    let sender = sender(&apns, Some(BUNDLE), clock.clone());
    let now = clock.now().unix_timestamp();

    let mut alert = message(
        Channel::Apns,
        &device(1),
        "hello",
        json!({"ios_badge": 3, "ios_sound": "default", "dialog_id": "d1"}),
    );
    alert.bundle_id = Some(BUNDLE.into());
    assert_eq!(sender.send(&alert).await, PushOutcome::Delivered);
    let voip = message(
        Channel::ApnsVoip,
        &device(2),
        "Alice calls",
        json!({"call": "c1"}),
    );
    assert_eq!(sender.send(&voip).await, PushOutcome::Delivered);
    let silent = message(
        Channel::Apns,
        &device(3),
        "",
        json!({"ios_content_available": 1}),
    );
    assert_eq!(sender.send(&silent).await, PushOutcome::Delivered);

    let received = apns.received();
    assert_eq!(apns.errors(), Vec::<String>::new());
    assert_eq!(received.len(), 3);
    let (a, v, s) = (&received[0], &received[1], &received[2]);
    assert_eq!(a.device, device(1));
    assert_eq!(
        (a.topic.as_str(), a.push_type.as_str(), a.priority.as_str()),
        (BUNDLE, "alert", "10")
    );
    assert_eq!(a.expiration, now + 24 * 3600);
    assert_eq!(
        a.payload,
        json!({"aps": {"alert": "hello", "badge": 3, "sound": "default"}, "dialog_id": "d1"})
    );
    assert_eq!(
        (v.topic.as_str(), v.push_type.as_str()),
        ("com.example.chat.voip", "voip")
    );
    assert_eq!(
        v.expiration,
        now + 60,
        "a call push is stale after a minute"
    );
    assert_eq!(
        v.payload,
        json!({"aps": {"alert": "Alice calls"}, "call": "c1"})
    );
    assert_eq!(
        (s.push_type.as_str(), s.priority.as_str()),
        ("background", "5")
    );

    // One provider token for all, issued now; still reused at 49 minutes, replaced at 50.
    assert_eq!(apns.tokens().len(), 1);
    assert_eq!(a.token_iat, now);
    clock.advance(Duration::from_secs(49 * 60));
    assert_eq!(sender.send(&alert).await, PushOutcome::Delivered);
    assert_eq!(apns.tokens().len(), 1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(sender.send(&alert).await, PushOutcome::Delivered);
    let tokens = apns.tokens();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[1].1, now + 50 * 60);
    assert_eq!(apns.errors(), Vec::<String>::new());
}

#[tokio::test]
async fn answers_map_to_dead_tokens_retries_and_refusals() {
    let clock = clock();
    let apns = stand_in(clock.clone(), Arc::default()).await;
    let sender = sender(&apns, Some(BUNDLE), clock.clone());
    let send = |token: String| {
        let m = message(Channel::Apns, &token, "hi", json!({}));
        let sender = &sender;
        async move { sender.send(&m).await }
    };

    apns.script(&device(1), &[Answer::Unregistered]);
    assert_eq!(send(device(1)).await, PushOutcome::Unregistered);
    apns.script(&device(2), &[Answer::BadRequest("BadDeviceToken")]);
    assert_eq!(send(device(2)).await, PushOutcome::Unregistered);
    apns.script(&device(3), &[Answer::BadRequest("DeviceTokenNotForTopic")]);
    assert_eq!(send(device(3)).await, PushOutcome::Unregistered);
    apns.script(
        &device(4),
        &[Answer::Busy(503, None), Answer::Busy(429, Some(7))],
    );
    assert_eq!(send(device(4)).await, PushOutcome::Retry(None));
    assert_eq!(
        send(device(4)).await,
        PushOutcome::Retry(Some(Duration::from_secs(7)))
    );
    assert_eq!(send(device(4)).await, PushOutcome::Delivered);
    apns.script(&device(5), &[Answer::BadRequest("BadCollapseId")]);
    assert_eq!(
        send(device(5)).await,
        PushOutcome::Failed("APNs HTTP 400 BadCollapseId".into())
    );
    // The `<hex with spaces>` of old apps is normalised; a token that is not hex never
    // leaves (APNs would call it BadDeviceToken).
    let spaced = format!("<{} {}>", &device(6)[..8].to_uppercase(), &device(6)[8..]);
    assert_eq!(send(spaced).await, PushOutcome::Delivered);
    assert_eq!(send("../../x?y".into()).await, PushOutcome::Unregistered);

    let devices: Vec<String> = apns.received().iter().map(|r| r.device.clone()).collect();
    let expected = [1, 2, 3, 4, 4, 4, 5, 6].map(device);
    assert_eq!(devices, expected);
    assert_eq!(apns.errors(), Vec::<String>::new());
}

#[tokio::test]
async fn an_expired_provider_token_is_replaced_and_a_foreign_key_refused() {
    let clock = clock();
    let skew = Arc::new(AtomicI64::new(0));
    let apns = stand_in(clock.clone(), skew.clone()).await;
    let sender = sender(&apns, Some(BUNDLE), clock.clone());
    let alert = message(Channel::Apns, &device(1), "hi", json!({}));
    assert_eq!(sender.send(&alert).await, PushOutcome::Delivered);

    // APNs' clock says the token is over an hour old: retry, with a fresh token, which
    // the sender signs although its own clock says the cached one is only 21 minutes old.
    skew.store(3601, Ordering::SeqCst);
    assert_eq!(sender.send(&alert).await, PushOutcome::Retry(None));
    assert!(
        apns.errors()[0].contains("ExpiredProviderToken"),
        "{:?}",
        apns.errors()
    );
    skew.store(0, Ordering::SeqCst);
    clock.advance(Duration::from_secs(21 * 60));
    assert_eq!(sender.send(&alert).await, PushOutcome::Delivered);
    assert_eq!(apns.tokens().len(), 2);

    // A P-256 key that is not the team's: the signature does not verify.
    let foreign = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let root = reqwest::Certificate::from_pem(apns.ca_pem.as_bytes()).unwrap();
    let impostor = ApnsSender::new(config(&apns, Some(BUNDLE), &foreign), &[root])
        .unwrap()
        .with_clock(clock.clone());
    assert_eq!(
        impostor.send(&alert).await,
        PushOutcome::Failed("APNs HTTP 403 InvalidProviderToken".into())
    );
    assert!(apns
        .errors()
        .last()
        .unwrap()
        .contains("InvalidProviderToken"));
}

#[tokio::test]
async fn the_stand_in_refuses_http1_and_an_unconfigured_topic_never_leaves() {
    let clock = clock();
    let apns = stand_in(clock.clone(), Arc::default()).await;
    let root = reqwest::Certificate::from_pem(apns.ca_pem.as_bytes()).unwrap();
    let http1 = reqwest::Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap();
    let refused = http1
        .post(format!("{}/3/device/{}", apns.url, device(1)))
        .send()
        .await;
    assert!(refused.is_err(), "ALPN offers h2 only: {refused:?}");

    let sender = sender(&apns, None, clock);
    let outcome = sender
        .send(&message(Channel::Apns, &device(1), "hi", json!({})))
        .await;
    assert!(
        matches!(&outcome, PushOutcome::Failed(why) if why.contains("no apns-topic")),
        "{outcome:?}"
    );
    assert!(apns.received().is_empty());
    assert!(
        ApnsSender::new(config(&apns, None, "not a key"), &[]).is_err(),
        "a bad key is refused up front"
    );
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn subscribe(api: &TestApi, token: &str, channel: &str, udid: &str, push_token: &str) {
    let body = format!(
        "device[platform]=ios&device[udid]={udid}&notification_channel={channel}\
         &push_token[client_identification_sequence]={push_token}\
         &push_token[environment]=production&push_token[bundle_identifier]={BUNDLE}"
    );
    let r = api
        .form(Method::POST, "/subscriptions.json", Some(token), &body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn rest_events_reach_apns_devices_and_dead_tokens_lose_their_subscription() {
    let mut api = TestApi::new().await;
    let apns = stand_in(api.clock.clone(), Arc::default()).await;
    let providers = ProviderSender::new(None, Some(sender(&apns, None, api.clock.clone())));
    assert_eq!(
        providers.describe(),
        format!("apns (team {TEAM_ID}, key {KEY_ID})")
    );
    api.control = api.control.clone().with_push_sender(Arc::new(providers));
    api.router = http::app(api.control.clone(), Registry::default());
    let app_token = api.app_token().await;
    let bob = api.sign_up(&app_token, "bob", "").await["id"]
        .as_i64()
        .unwrap();
    let bob_token = api.user_token("bob", "bob-password").await;
    subscribe(&api, &bob_token, "apns", "phone", &device(1)).await;
    subscribe(&api, &bob_token, "apns_voip", "phone", &device(2)).await;
    subscribe(&api, &bob_token, "apns", "old-pad", &device(3)).await;
    subscribe(&api, &bob_token, "apns", "flaky-pad", &device(4)).await;
    subscribe(&api, &bob_token, "gcm", "android", "fcm-token").await;
    apns.script(&device(3), &[Answer::Unregistered]);
    apns.script(&device(4), &[Answer::Busy(500, Some(0))]);

    let message = b64(&json!({"message": "dinner?", "ios_badge": "2", "thread": "t1"}).to_string());
    let r = api
        .json(
            Method::POST,
            "/events.json",
            Some(&bob_token),
            &json!({"event": {"notification_type": "push", "environment": "production",
                              "user": {"ids": [bob]}, "message": message}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["event"]["sent"], 3, "{}", r.text);
    assert_eq!(r.body["event"]["failed"], 2, "{}", r.text);

    assert_eq!(apns.errors(), Vec::<String>::new());
    let mut received = apns.received();
    received.sort_by(|a, b| a.device.cmp(&b.device));
    let devices: Vec<&str> = received.iter().map(|r| r.device.as_str()).collect();
    let (d1, d2, d3, d4) = (device(1), device(2), device(3), device(4));
    assert_eq!(devices, [&d1, &d2, &d3, &d4, &d4], "the 500 was retried");
    let alert = json!({"aps": {"alert": "dinner?", "badge": 2}, "thread": "t1"});
    assert_eq!(received[0].payload, alert);
    assert_eq!(received[0].topic, BUNDLE);
    assert_eq!(received[1].topic, format!("{BUNDLE}.voip"));
    assert_eq!(received[1].push_type, "voip");

    // The dead token's subscription is gone; the others stay.
    let r = api
        .form(Method::GET, "/subscriptions.json", Some(&bob_token), "")
        .await;
    let udids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscription"]["device"]["udid"].as_str().unwrap())
        .collect();
    assert_eq!(udids.len(), 4, "{}", r.text);
    assert!(!udids.contains(&"old-pad"), "{udids:?}");

    let metrics = api.request_raw(Method::GET, "/metrics", &[]).await.text;
    for line in [
        "switchboard_push_sent_total{provider=\"apns\",result=\"delivered\"} 3",
        "switchboard_push_sent_total{provider=\"apns\",result=\"unregistered\"} 1",
        "switchboard_push_sent_total{provider=\"fcm\",result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in {metrics}");
    }
}
