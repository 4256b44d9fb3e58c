//! The session cache (`session_cache_ttl`): what this node changes is seen at once, expiry
//! and its sliding extension are what they are without the cache, and a change made by
//! another node sharing the store is seen within the TTL.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{start_time, TestApi};
use serde_json::json;

/// Longer than a session lives: only invalidation and expiry can end a cached session.
const LONG: Duration = Duration::from_secs(3 * 3600);

async fn api_with_cache_ttl(ttl: Duration) -> TestApi {
    TestApi::with_config(|c| c.session_cache_ttl = ttl).await
}

async fn get_session(api: &TestApi, token: &str) -> common::Response {
    api.form(Method::GET, "/session.json", Some(token), "")
        .await
}

fn assert_refused(response: &common::Response) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        response.text
    );
    assert_eq!(
        response.body,
        json!({"errors": ["Required session does not exist"]})
    );
}

#[tokio::test]
async fn a_destroyed_session_is_refused_at_once() {
    let api = api_with_cache_ttl(LONG).await;
    let token = api.app_token().await;
    assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);

    let response = api
        .form(Method::DELETE, "/session.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_refused(&get_session(&api, &token).await);
}

#[tokio::test]
async fn login_and_logout_are_seen_at_once() {
    let api = api_with_cache_ttl(LONG).await;
    let token = api.app_token().await;
    let bob = api.sign_up(&token, "bob", "").await;
    assert_eq!(
        get_session(&api, &token).await.body["session"]["user_id"],
        json!(0)
    );

    let response = api.log_in(&token, "login=bob&password=bob-password").await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    assert_eq!(
        get_session(&api, &token).await.body["session"]["user_id"],
        bob["id"]
    );

    let response = api
        .form(Method::DELETE, "/login.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        get_session(&api, &token).await.body["session"]["user_id"],
        json!(0)
    );
    // Writes need a user session again.
    let response = api
        .form(Method::DELETE, "/login.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_deleted_user_s_sessions_are_refused_at_once() {
    let api = api_with_cache_ttl(LONG).await;
    let app_token = api.app_token().await;
    let carl = api.sign_up(&app_token, "carl", "").await;
    let first = api.user_token("carl", "carl-password").await;
    let second = api.user_token("carl", "carl-password").await;
    for token in [&first, &second] {
        assert_eq!(get_session(&api, token).await.status, StatusCode::OK);
    }

    let path = format!("/users/{}.json", carl["id"]);
    let response = api.form(Method::DELETE, &path, Some(&first), "").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_refused(&get_session(&api, &first).await);
    assert_refused(&get_session(&api, &second).await);
    // The application session is nobody's and lives on.
    assert_eq!(get_session(&api, &app_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_session_is_refused_though_cached() {
    let api = api_with_cache_ttl(LONG).await;
    let token = api.app_token().await;
    assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);

    api.clock.advance(Duration::from_secs(2 * 3600));
    assert_refused(&get_session(&api, &token).await);
    // And it stays refused: the expired session was deleted.
    assert_refused(&get_session(&api, &token).await);
}

#[tokio::test]
async fn sliding_expiry_extends_through_the_cache() {
    let api = api_with_cache_ttl(LONG).await;
    let token = api.app_token().await;
    let expiry = |r: &common::Response| r.headers["qb-token-expirationdate"].clone();

    // Within a minute of the last extension the expiry stays (no write per request)...
    api.clock.advance(Duration::from_secs(30));
    let response = get_session(&api, &token).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(expiry(&response), "2026-11-25 14:00:00 UTC");
    // ...past it, it slides to two hours after this request, in the store too.
    api.clock.advance(Duration::from_secs(60));
    let response = get_session(&api, &token).await;
    assert_eq!(expiry(&response), "2026-11-25 14:01:30 UTC");
    let stored = api
        .control
        .store()
        .session_by_token(&token)
        .await
        .unwrap()
        .expect("stored session");
    assert_eq!(
        stored.expires_at,
        start_time() + Duration::from_secs(90 + 2 * 3600)
    );

    // So the session outlives its first two hours, request after request.
    for _ in 0..3 {
        api.clock.advance(Duration::from_secs(2 * 3600 - 60));
        assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);
    }
    api.clock.advance(Duration::from_secs(2 * 3600 + 1));
    assert_refused(&get_session(&api, &token).await);
}

#[tokio::test]
async fn a_session_destroyed_by_another_node_is_refused_within_the_cache_ttl() {
    let ttl = Duration::from_secs(5);
    let api = api_with_cache_ttl(ttl).await;
    let token = api.app_token().await;
    assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);

    // Another node sharing the store destroys it; this one learns within the TTL.
    assert!(api.control.store().delete_session(&token).await.unwrap());
    api.clock.advance(ttl - Duration::from_secs(1));
    assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);
    api.clock.advance(Duration::from_secs(1));
    assert_refused(&get_session(&api, &token).await);
}

#[tokio::test]
async fn a_zero_cache_ttl_asks_the_store_every_time() {
    let api = api_with_cache_ttl(Duration::ZERO).await;
    let token = api.app_token().await;
    assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);

    assert!(api.control.store().delete_session(&token).await.unwrap());
    assert_refused(&get_session(&api, &token).await);
}

#[tokio::test]
async fn a_deleted_app_is_refused_at_once() {
    let api = api_with_cache_ttl(LONG).await;
    let other = api.control.create_app("other").await.unwrap();
    // Session creation reads the application (and caches it); the session is cached too.
    let token = api.app_token_for(&other).await;
    assert_eq!(get_session(&api, &token).await.status, StatusCode::OK);

    api.control.delete_app(other.id).await.unwrap();
    assert_refused(&get_session(&api, &token).await);
    let response = api.session_for(&other, &[]).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body,
        json!({"errors": {"base": ["Unexpected signature"]}})
    );
}
