//! `/session.json` and `/login.json` through HTTP, every error path included.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{encode, token_of, TestApi};
use control_api::domain::signature;
use serde_json::json;

#[tokio::test]
async fn app_session_has_the_sdk_shape_and_expiration_header() {
    let api = TestApi::new().await;
    let response = api.session_for(&api.app.clone(), &[]).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let session = &response.body["session"];
    assert_eq!(session["application_id"], json!(api.app.id.0));
    assert_eq!(session["user_id"], json!(0));
    assert_eq!(session["nonce"], json!(4711));
    assert_eq!(session["_id"].as_str().unwrap().len(), 24);
    assert!(session["token"].as_str().unwrap().len() >= 32);
    assert_eq!(session["created_at"], json!("2026-11-25T12:00:00Z"));
    // Two hours after creation, in the only format the SDK parses.
    assert_eq!(
        response.headers["qb-token-expirationdate"],
        "2026-11-25 14:00:00 UTC"
    );
}

#[tokio::test]
async fn sha256_signatures_are_accepted() {
    let api = TestApi::new().await;
    let app = api.app.clone();
    let mut params = vec![
        ("application_id".to_string(), app.id.to_string()),
        ("auth_key".to_string(), app.auth_key.clone()),
        ("nonce".to_string(), "1".to_string()),
        (
            "timestamp".to_string(),
            api.clock_now().unix_timestamp().to_string(),
        ),
    ];
    let signed = signature::signed_string(&params);
    params.push((
        "signature".into(),
        signature::sign_sha256(&app.auth_secret, &signed),
    ));
    let response = api
        .form(Method::POST, "/session.json", None, &encode(&params))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
}

#[tokio::test]
async fn a_session_request_signed_with_the_wrong_secret_gets_unexpected_signature() {
    let api = TestApi::new().await;
    let mut forged = api.app.clone();
    forged.auth_secret = "not-the-secret".into();
    let response = api.session_for(&forged, &[]).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body,
        json!({"errors": {"base": ["Unexpected signature"]}})
    );
}

#[tokio::test]
async fn wrong_auth_key_or_unknown_application_is_a_bad_signature() {
    let api = TestApi::new().await;
    let mut wrong_key = api.app.clone();
    wrong_key.auth_key = "other".into();
    assert_eq!(
        api.session_for(&wrong_key, &[]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut unknown = api.app.clone();
    unknown.id.0 = 999;
    let response = api.session_for(&unknown, &[]).await;
    assert_eq!(
        response.body,
        json!({"errors": {"base": ["Unexpected signature"]}})
    );
}

#[tokio::test]
async fn tampered_parameters_break_the_signature() {
    let api = TestApi::new().await;
    let body = api
        .signed_session_body(&api.app.clone(), &[])
        .replace("nonce=4711", "nonce=4712");
    let response = api.form(Method::POST, "/session.json", None, &body).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn missing_parameters_are_named() {
    let api = TestApi::new().await;
    let response = api
        .form(Method::POST, "/session.json", None, "application_id=1")
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.body["errors"]["auth_key"].is_array(),
        "{}",
        response.text
    );
    let response = api
        .form(
            Method::POST,
            "/session.json",
            None,
            "application_id=x&auth_key=k&nonce=1&timestamp=1&signature=ab",
        )
        .await;
    assert!(
        response.body["errors"]["application_id"].is_array(),
        "{}",
        response.text
    );
}

#[tokio::test]
async fn a_stale_timestamp_is_refused() {
    let api = TestApi::new().await;
    let body = api.signed_session_body(&api.app.clone(), &[]);
    api.clock.advance(Duration::from_secs(2 * 3600));
    let response = api.form(Method::POST, "/session.json", None, &body).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.body["errors"]["timestamp"].is_array(),
        "{}",
        response.text
    );
}

#[tokio::test]
async fn json_session_requests_work_like_forms() {
    let api = TestApi::new().await;
    let app = api.app.clone();
    let ts = api.clock_now().unix_timestamp().to_string();
    let params = vec![
        ("application_id".to_string(), app.id.to_string()),
        ("auth_key".to_string(), app.auth_key.clone()),
        ("nonce".to_string(), "9".to_string()),
        ("timestamp".to_string(), ts.clone()),
    ];
    let signature = signature::sign_sha1(&app.auth_secret, &signature::signed_string(&params));
    let body = json!({"application_id": app.id.0, "auth_key": app.auth_key, "nonce": 9, "timestamp": ts, "signature": signature});
    let response = api.json(Method::POST, "/session.json", None, &body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
}

#[tokio::test]
async fn user_sessions_by_login_or_email_and_wrong_passwords() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let alice = api.sign_up(&token, "alice", "").await;
    let app = api.app.clone();

    let by_login = api
        .session_for(
            &app,
            &[
                ("user[login]", "alice"),
                ("user[password]", "alice-password"),
            ],
        )
        .await;
    assert_eq!(by_login.status, StatusCode::CREATED);
    assert_eq!(by_login.body["session"]["user_id"], alice["id"]);

    let by_email = api
        .session_for(
            &app,
            &[
                ("user[email]", "ALICE@example.com"),
                ("user[password]", "alice-password"),
            ],
        )
        .await;
    assert_eq!(by_email.body["session"]["user_id"], alice["id"]);

    for (field, who) in [
        ("user[login]", "alice"),
        ("user[login]", "nobody"),
        ("user[email]", "alice@example.com"),
    ] {
        let wrong = api
            .session_for(&app, &[(field, who), ("user[password]", "wrong-password")])
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{field}={who}");
        assert_eq!(wrong.body, json!({"errors": ["Unauthorized"]}));
    }
}

#[tokio::test]
async fn get_and_delete_session() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let response = api
        .form(Method::GET, "/session.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["session"]["token"], json!(token));

    let response = api
        .form(Method::DELETE, "/session.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let response = api
        .form(Method::GET, "/session.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.body,
        json!({"errors": ["Required session does not exist"]})
    );
}

#[tokio::test]
async fn requests_without_a_token_are_told_so() {
    let api = TestApi::new().await;
    for (method, path) in [
        (Method::GET, "/session.json"),
        (Method::GET, "/users.json"),
        (Method::POST, "/login.json"),
    ] {
        let response = api.form(method, path, None, "").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.body, json!({"errors": ["Token is required"]}));
    }
}

#[tokio::test]
async fn sessions_expire_two_hours_after_the_last_request() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let almost = Duration::from_secs(2 * 3600 - 60);
    for _ in 0..3 {
        // Each request slides the expiry, so the session outlives its first two hours.
        api.clock.advance(almost);
        let response = api
            .form(Method::GET, "/session.json", Some(&token), "")
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    api.clock.advance(Duration::from_secs(2 * 3600 + 1));
    let response = api
        .form(Method::GET, "/session.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.body,
        json!({"errors": ["Required session does not exist"]})
    );
}

#[tokio::test]
async fn login_upgrades_and_logout_downgrades_the_session() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let bob = api.sign_up(&token, "bob", "").await;

    let response = api.log_in(&token, "login=bob&password=bob-password").await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    assert_eq!(response.body["user"]["id"], bob["id"]);
    assert!(response.body["user"]["last_request_at"].is_string());
    let session = api
        .form(Method::GET, "/session.json", Some(&token), "")
        .await;
    assert_eq!(session.body["session"]["user_id"], bob["id"]);

    let response = api
        .form(Method::DELETE, "/login.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let session = api
        .form(Method::GET, "/session.json", Some(&token), "")
        .await;
    assert_eq!(session.body["session"]["user_id"], json!(0));

    // Logging out of an application session is not a thing.
    let response = api
        .form(Method::DELETE, "/login.json", Some(&token), "")
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_errors() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    api.sign_up(&token, "carol", "").await;
    let wrong = api.log_in(&token, "login=carol&password=nope-nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let by_email = api
        .log_in(&token, "email=carol%40example.com&password=carol-password")
        .await;
    assert_eq!(by_email.status, StatusCode::ACCEPTED);
    let neither = api.log_in(&token, "password=carol-password").await;
    assert_eq!(neither.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(neither.body["errors"]["login"].is_array());
}

#[tokio::test]
async fn a_session_of_one_app_is_a_session_of_that_app_only() {
    let api = TestApi::new().await;
    let other = api.control.create_app("other").await.unwrap();
    let token = api.app_token_for(&other).await;
    let session = api
        .form(Method::GET, "/session.json", Some(&token), "")
        .await;
    assert_eq!(session.body["session"]["application_id"], json!(other.id.0));
    let _ = token_of(&session);
    let _ = encode(&[]);
}
