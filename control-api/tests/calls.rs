//! `GET /calls/ice_servers.json`: TURN REST API credentials for logged-in users.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use common::TestApi;
use control_api::domain::ice::IceConfig;
use control_api::{http, open_store, ControlConfig, ControlPlane};
use hmac::{Hmac, Mac};
use prometheus_client::registry::Registry;
use sha1::Sha1;

const SECRET: &[u8] = b"shared-with-the-relay";

fn ice() -> IceConfig {
    IceConfig {
        secret: SECRET.to_vec(),
        stun_urls: vec!["stun:127.0.0.1:3478".into()],
        turn_urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "turn:127.0.0.1:3478?transport=tcp".into(),
            "turns:127.0.0.1:5349?transport=tcp".into(),
        ],
        credential_ttl: Duration::from_secs(3600),
    }
}

/// The test API over its own store, with the relay configured.
async fn api_with_ice() -> (TestApi, tempfile::TempDir) {
    let mut api = TestApi::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open_store("sqlite", dir.path()).await.expect("store"));
    let config = ControlConfig {
        ice: Some(ice()),
        ..api.control.config().clone()
    };
    api.control = ControlPlane::new(store, api.clock.clone(), config);
    api.app = api.control.ensure_default_app().await.expect("app").0;
    api.router = http::app(api.control.clone(), Registry::default());
    (api, dir)
}

async fn logged_in(api: &TestApi) -> (String, i64) {
    let app_token = api.app_token().await;
    let user = api.sign_up(&app_token, "alice", "").await;
    let token = api.user_token("alice", "alice-password").await;
    (token, user["id"].as_i64().expect("user id"))
}

#[tokio::test]
async fn a_user_gets_turn_rest_credentials_and_every_url() {
    let (api, _dir) = api_with_ice().await;
    let (token, user_id) = logged_in(&api).await;
    let r = api
        .form(Method::GET, "/calls/ice_servers.json", Some(&token), "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let expiry = common::start_time().unix_timestamp() + 3600;
    let username = format!("{expiry}:{user_id}");
    let mut mac = Hmac::<Sha1>::new_from_slice(SECRET).unwrap();
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(r.body["username"], username);
    assert_eq!(r.body["credential"], credential);
    assert_eq!(r.body["ttl"], 3600);
    let servers = r.body["ice_servers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"][0], "stun:127.0.0.1:3478");
    assert_eq!(servers[1]["username"], username);
    assert_eq!(servers[1]["credential"], credential);
    let urls: Vec<&str> = servers[1]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3478?transport=tcp",
            "turns:127.0.0.1:5349?transport=tcp"
        ]
    );
}

#[tokio::test]
async fn credentials_are_minted_fresh_by_the_injected_clock() {
    let (api, _dir) = api_with_ice().await;
    let (token, user_id) = logged_in(&api).await;
    api.clock.advance(Duration::from_secs(600));
    let r = api
        .form(Method::GET, "/calls/ice_servers.json", Some(&token), "")
        .await;
    let expiry = common::start_time().unix_timestamp() + 600 + 3600;
    assert_eq!(r.body["username"], format!("{expiry}:{user_id}"));
}

#[tokio::test]
async fn app_sessions_and_anonymous_callers_are_refused() {
    let (api, _dir) = api_with_ice().await;
    let app_token = api.app_token().await;
    let r = api
        .form(Method::GET, "/calls/ice_servers.json", Some(&app_token), "")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = api
        .form(Method::GET, "/calls/ice_servers.json", None, "")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

#[tokio::test]
async fn without_a_relay_the_endpoint_is_404() {
    let api = TestApi::new().await;
    let (token, _) = logged_in(&api).await;
    let r = api
        .form(Method::GET, "/calls/ice_servers.json", Some(&token), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
