//! The FCM HTTP v1 client against the loopback stand-in (`stand_ins/fcm.rs`) that checks
//! what FCM checks: the service-account assertion's RS256 signature against the account's
//! public key and its claims, the bearer token it issued, and the message shape; it answers
//! success, `UNREGISTERED`, 503 with `Retry-After` and 400 as scripted per device token.

mod stand_ins;

use std::time::Duration;

use control_api::domain::push::{Channel, PushMessage, PushOutcome, PushSender};
use control_api::push::{FcmConfig, FcmSender, ServiceAccount};
use serde_json::{json, Map};
use stand_ins::fcm::{stand_in, CLIENT_EMAIL, PRIVATE_KEY};

fn message(token: &str) -> PushMessage {
    let mut data = Map::new();
    data.insert("ios_badge".into(), json!(3));
    data.insert("thread".into(), json!("t1"));
    PushMessage {
        channel: Channel::Gcm,
        token: token.into(),
        environment: "production".into(),
        bundle_id: None,
        alert: "hello".into(),
        data,
    }
}

#[tokio::test]
async fn fcm_v1_exchanges_a_signed_assertion_and_sends_data_messages() {
    let (stand_in, base) = stand_in().await;
    let sender = FcmSender::new(FcmConfig {
        account: ServiceAccount {
            project_id: "test-project".into(),
            client_email: CLIENT_EMAIL.into(),
            private_key: PRIVATE_KEY.into(),
            token_uri: stand_in.token_uri.clone(),
        },
        endpoint: base,
    })
    .expect("sender");

    assert_eq!(
        sender.send(&message("device-1")).await,
        PushOutcome::Delivered
    );
    assert_eq!(
        sender.send(&message("dead")).await,
        PushOutcome::Unregistered
    );
    assert_eq!(
        sender.send(&message("busy")).await,
        PushOutcome::Retry(Some(Duration::ZERO))
    );
    assert_eq!(sender.send(&message("busy")).await, PushOutcome::Delivered);
    assert!(matches!(
        sender.send(&message("bad")).await,
        PushOutcome::Failed(_)
    ));

    let seen = stand_in.seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert_eq!(seen.token_requests, 1, "the access token is cached");
    assert_eq!(
        seen.sends[0],
        json!({"message": {"token": "device-1", "data": {"message": "hello", "ios_badge": "3", "thread": "t1"}}})
    );
}

#[tokio::test]
async fn a_bad_service_account_key_is_refused_up_front() {
    let config = FcmConfig {
        account: ServiceAccount {
            project_id: "p".into(),
            client_email: CLIENT_EMAIL.into(),
            private_key: "not a key".into(),
            token_uri: "http://127.0.0.1:9/token".into(),
        },
        endpoint: "http://127.0.0.1:9".into(),
    };
    assert!(FcmSender::new(config).is_err());
}
