//! The binary delivering pushes through real protocol clients: `serve` configured (TOML,
//! environment and flags) with an FCM stand-in and an APNs stand-in (HTTP/2 over TLS,
//! trusted through `--push-ca-file`), a push event created over REST the way an app does
//! (app session, sign-up, user session, subscriptions, event), and both stand-ins receiving
//! their push. Also the startup errors of a half or broken push configuration.

mod common;
#[path = "../control-api/tests/stand_ins/mod.rs"]
mod stand_ins;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::Server;
use control_api::domain::signature;
use serde_json::{json, Value};
use stand_ins::apns::{ApnsStandIn, Expect};

const APNS_KEY: &str = include_str!("../control-api/tests/fixtures/apns-test-key.p8");
const APNS_PUBLIC_KEY: &str = include_str!("../control-api/tests/fixtures/apns-test-key.pub.pem");
const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "DEF123GHIJ";
const BUNDLE: &str = "com.example.chat";

fn switchboard(args: &[&str]) -> Command {
    let mut command = common::switchboard(args);
    command.env("RUST_LOG", "warn");
    command
}

fn serve_args(dir: &std::path::Path) -> Vec<String> {
    [
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--roles",
        "api",
        "--http-addr",
        "127.0.0.1:0",
        "--https-addr",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `POST /session.json`, signed with the default application's credentials.
async fn session(
    http: &reqwest::Client,
    api: &str,
    server: &Server,
    user: &[(&str, &str)],
) -> String {
    let mut params = vec![
        (
            "application_id".to_string(),
            server.get("application id").to_string(),
        ),
        ("auth_key".to_string(), server.get("auth key").to_string()),
        ("nonce".to_string(), "1".to_string()),
        ("timestamp".to_string(), unix_now().to_string()),
    ];
    params.extend(user.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let signed = signature::signed_string(&params);
    params.push((
        "signature".into(),
        signature::sign_sha1(server.get("auth secret"), &signed),
    ));
    let r = http
        .post(format!("{api}/session.json"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["session"]["token"].as_str().unwrap().to_string()
}

async fn post_form(
    http: &reqwest::Client,
    url: String,
    token: &str,
    form: &[(&str, &str)],
) -> Value {
    let r = http
        .post(url)
        .header("QB-Token", token)
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_a_rest_event_through_fcm_and_apns() {
    let dir = tempfile::tempdir().unwrap();
    let (fcm, fcm_base) = stand_ins::fcm::stand_in().await;
    let apns = ApnsStandIn::start(Expect {
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        bundle_ids: vec![BUNDLE.into()],
        public_key_pem: APNS_PUBLIC_KEY.into(),
        now: Box::new(unix_now),
    })
    .await;

    let account = dir.path().join("service-account.json");
    let account_json = json!({
        "type": "service_account",
        "project_id": "test-project",
        "client_email": stand_ins::fcm::CLIENT_EMAIL,
        "private_key": stand_ins::fcm::PRIVATE_KEY,
        "token_uri": fcm.token_uri,
    });
    std::fs::write(&account, account_json.to_string()).unwrap();
    let key = dir.path().join("AuthKey_ABC123DEFG.p8");
    std::fs::write(&key, APNS_KEY).unwrap();
    let ca = dir.path().join("apns-ca.pem");
    std::fs::write(&ca, &apns.ca_pem).unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "push_fcm_service_account = {:?}\npush_fcm_endpoint = {fcm_base:?}\npush_apns_topic = {BUNDLE:?}\n",
            account.to_str().unwrap()
        ),
    )
    .unwrap();

    let mut args = serve_args(dir.path());
    args.extend(
        [
            "--config",
            config.to_str().unwrap(),
            "--push-apns-key",
            key.to_str().unwrap(),
            "--push-apns-key-id",
            KEY_ID,
            "--push-apns-endpoint",
            &apns.url,
            "--push-ca-file",
            ca.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = switchboard(&args);
    command.env("SWITCHBOARD_PUSH_APNS_TEAM_ID", TEAM_ID);
    let server = Server::start(&mut command);
    assert_eq!(
        server.get("push"),
        format!("fcm (project test-project), apns (team {TEAM_ID}, key {KEY_ID}, topic {BUNDLE})")
    );

    let api = server.get("REST API (HTTP)").to_string();
    let http = reqwest::Client::new();
    let app_token = session(&http, &api, &server, &[]).await;
    let user = post_form(
        &http,
        format!("{api}/users.json"),
        &app_token,
        &[("user[login]", "bob"), ("user[password]", "bob-password")],
    )
    .await;
    let bob = user["user"]["id"].as_i64().unwrap();
    let token = session(
        &http,
        &api,
        &server,
        &[("user[login]", "bob"), ("user[password]", "bob-password")],
    )
    .await;
    let apns_device = "5b".repeat(32);
    let voip_device = "7c".repeat(32);
    for (channel, udid, push_token, bundle) in [
        ("gcm", "pixel", "fcm-registration-token", ""),
        ("apns", "iphone", apns_device.as_str(), BUNDLE),
        ("apns_voip", "iphone", voip_device.as_str(), ""),
    ] {
        post_form(
            &http,
            format!("{api}/subscriptions.json"),
            &token,
            &[
                ("notification_channel", channel),
                (
                    "device[platform]",
                    if channel == "gcm" { "android" } else { "ios" },
                ),
                ("device[udid]", udid),
                ("push_token[client_identification_sequence]", push_token),
                ("push_token[environment]", "production"),
                ("push_token[bundle_identifier]", bundle),
            ],
        )
        .await;
    }

    let message = base64::engine::general_purpose::STANDARD.encode(
        json!({"message": "dinner?", "ios_sound": "default", "dialog_id": "d1"}).to_string(),
    );
    let r = http
        .post(format!("{api}/events.json"))
        .header("QB-Token", &token)
        .json(
            &json!({"event": {"notification_type": "push", "environment": "production",
                                "user": {"ids": [bob]}, "message": message}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let event: Value = r.json().await.unwrap();
    assert_eq!(event["event"]["sent"], 3, "{event}");

    let (fcm_errors, fcm_sends) = {
        let seen = fcm.seen.lock().unwrap();
        (seen.errors.clone(), seen.sends.clone())
    };
    assert!(fcm_errors.is_empty(), "{fcm_errors:?}");
    assert_eq!(
        fcm_sends,
        [json!({"message": {"token": "fcm-registration-token",
                            "data": {"message": "dinner?", "ios_sound": "default", "dialog_id": "d1"}}})]
    );
    assert_eq!(apns.errors(), Vec::<String>::new());
    let mut received = apns.received();
    received.sort_by(|a, b| a.device.cmp(&b.device));
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].device, apns_device);
    assert_eq!(
        (received[0].topic.as_str(), received[0].push_type.as_str()),
        (BUNDLE, "alert")
    );
    assert_eq!(
        received[0].payload,
        json!({"aps": {"alert": "dinner?", "sound": "default"}, "dialog_id": "d1"})
    );
    assert_eq!(received[1].device, voip_device);
    assert_eq!(received[1].topic, format!("{BUNDLE}.voip"));
    assert_eq!(received[1].push_type, "voip");
    assert_eq!(received[0].jwt, received[1].jwt, "one provider token");

    let metrics = http
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "switchboard_push_sent_total{provider=\"apns\",result=\"delivered\"} 2",
        "switchboard_push_sent_total{provider=\"fcm\",result=\"delivered\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?}");
    }
}

fn refused_start(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut args = serve_args(dir.path());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = switchboard(&args).output().expect("run switchboard");
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_half_or_broken_push_configuration_stops_the_start() {
    let half = refused_start(&["--push-apns-key-id", KEY_ID]);
    assert!(
        half.contains("APNs needs push_apns_key, push_apns_key_id and push_apns_team_id together"),
        "{half}"
    );
    let topic_only = refused_start(&["--push-apns-topic", BUNDLE]);
    assert!(
        topic_only.contains("push_apns_topic and push_apns_endpoint need"),
        "{topic_only}"
    );
    let missing = refused_start(&[
        "--push-apns-key",
        "/nonexistent/AuthKey.p8",
        "--push-apns-key-id",
        KEY_ID,
        "--push-apns-team-id",
        TEAM_ID,
    ]);
    assert!(
        missing.contains("reading APNs key /nonexistent/AuthKey.p8"),
        "{missing}"
    );
    let endpoint = refused_start(&["--push-fcm-endpoint", "http://127.0.0.1:9"]);
    assert!(
        endpoint.contains("push_fcm_endpoint needs push_fcm_service_account"),
        "{endpoint}"
    );
}
