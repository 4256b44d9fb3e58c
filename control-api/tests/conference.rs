//! `POST /calls/conference/token.json`: grants for occupants only, with the SFU's claims.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::TestApi;
use control_api::domain::conference::ConferenceConfig;
use serde_json::{json, Value};

const SECRET: &[u8] = b"conference-test-secret";

async fn api() -> TestApi {
    TestApi::with_config(|config| {
        config.conference = Some(ConferenceConfig {
            grant_secret: SECRET.to_vec(),
            grant_ttl: Duration::from_secs(300),
            janus_url: "wss://127.0.0.1:8443/janus".into(),
        })
    })
    .await
}

fn claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET),
        &validation,
    )
    .expect("a grant signed with the shared secret")
    .claims
}

#[tokio::test]
async fn occupants_get_a_grant_for_their_dialog_and_others_do_not() {
    let api = api().await;
    let app_token = api.app_token().await;
    let ann = api.sign_up(&app_token, "ann", "").await;
    let bob = api.sign_up(&app_token, "bob", "").await;
    api.sign_up(&app_token, "eve", "").await;
    let ann_token = api.user_token("ann", "ann-password").await;
    let body = format!("type=2&name=standup&occupants_ids={}", bob["id"]);
    let dialog = api
        .form(Method::POST, "/chat/Dialog.json", Some(&ann_token), &body)
        .await;
    assert_eq!(dialog.status, StatusCode::CREATED, "{}", dialog.text);
    let room = dialog.body["_id"].as_str().unwrap().to_string();

    let response = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&ann_token),
            &format!("room={room}"),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.body["role"], json!("publisher"));
    let token = response.body["token"].as_str().unwrap();
    let server = response.body["server"].as_str().unwrap();
    assert_eq!(server, format!("wss://127.0.0.1:8443/janus?token={token}"));
    let c = claims(token);
    assert_eq!(c["iss"], json!("switchboard"));
    assert_eq!(c["app"], json!(api.app.id.0));
    assert_eq!(c["sub"], json!(ann["id"].to_string()));
    assert_eq!(c["room"], json!(room));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);

    let bob_token = api.user_token("bob", "bob-password").await;
    let subscriber = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&bob_token),
            &format!("dialog_id={room}&role=subscriber"),
        )
        .await;
    assert_eq!(
        claims(subscriber.body["token"].as_str().unwrap())["role"],
        json!("subscriber")
    );

    let eve_token = api.user_token("eve", "eve-password").await;
    let refused = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&eve_token),
            &format!("room={room}"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
}

#[tokio::test]
async fn grants_need_a_user_session_a_room_and_a_known_role() {
    let api = api().await;
    let app_token = api.app_token().await;
    let app_only = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&app_token),
            "room=abc",
        )
        .await;
    assert_eq!(app_only.status, StatusCode::FORBIDDEN);
    api.sign_up(&app_token, "ann", "").await;
    let ann = api.user_token("ann", "ann-password").await;
    let no_room = api
        .form(Method::POST, "/calls/conference/token.json", Some(&ann), "")
        .await;
    assert_eq!(no_room.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_role = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&ann),
            "room=abc&role=king",
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&ann),
            "room=0123456789abcdef01234567",
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_an_sfu_grants_are_unavailable() {
    let api = TestApi::new().await;
    let app_token = api.app_token().await;
    api.sign_up(&app_token, "ann", "").await;
    let ann = api.user_token("ann", "ann-password").await;
    let response = api
        .form(
            Method::POST,
            "/calls/conference/token.json",
            Some(&ann),
            "room=abc",
        )
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}
