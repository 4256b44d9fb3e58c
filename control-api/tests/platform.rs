//! Account settings, CORS, health, metrics and malformed input.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use serde_json::json;

#[tokio::test]
async fn account_settings_name_this_servers_endpoints() {
    let api = TestApi::new().await;
    let key = api.app.account_key.clone();
    let response = api
        .request(
            Method::GET,
            "/account_settings.json",
            &[("qb-account-key", &key)],
            "",
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body,
        json!({"account_id": api.app.id.0, "api_endpoint": "https://127.0.0.1:8443", "chat_endpoint": "localhost"})
    );
    let missing = api
        .request(Method::GET, "/account_settings.json", &[], "")
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(missing.body["errors"].is_array());
    let unknown = api
        .request(
            Method::GET,
            "/account_settings.json",
            &[("qb-account-key", "nope")],
            "",
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_preflights_are_answered_and_headers_exposed() {
    let api = TestApi::new().await;
    let preflight = api
        .request(
            Method::OPTIONS,
            "/users.json",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "qb-token,content-type"),
            ],
            "",
        )
        .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
    let allowed = preflight.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("qb-token"), "{allowed}");

    let token = api.app_token().await;
    let response = api
        .request(
            Method::GET,
            "/session.json",
            &[("origin", "https://app.example.com"), ("qb-token", &token)],
            "",
        )
        .await;
    assert_eq!(response.headers["access-control-allow-origin"], "*");
    let exposed = response.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("qb-token-expirationdate"));
    assert!(response.headers.contains_key("qb-token-expirationdate"));
}

#[tokio::test]
async fn malformed_input_gets_a_json_error_never_a_500() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let cases: Vec<(Method, &str, &str, &str)> = vec![
        (Method::POST, "/users.json", "application/json", "{not json"),
        (Method::POST, "/users.json", "application/json", "[1,2]"),
        (Method::POST, "/session.json", "application/json", "\"str\""),
        (
            Method::POST,
            "/users.json",
            "application/x-www-form-urlencoded",
            "%%%&&==&user[login]",
        ),
        (
            Method::PUT,
            "/users/1.json",
            "application/json",
            "{\"user\": 5}",
        ),
        (Method::GET, "/users.json?page=%FF", "text/plain", ""),
        (
            Method::POST,
            "/session.json",
            "application/x-www-form-urlencoded",
            "signature=zz&timestamp=99999999999999999999",
        ),
    ];
    for (method, path, content_type, body) in cases {
        let response = api
            .request(
                method.clone(),
                path,
                &[("content-type", content_type), ("qb-token", &token)],
                body,
            )
            .await;
        assert!(
            response.status.is_client_error(),
            "{method} {path} {body:?} -> {} {}",
            response.status,
            response.text
        );
        assert!(
            response.body["errors"].is_object() || response.body["errors"].is_array(),
            "{}",
            response.text
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let api = TestApi::new().await;
    let response = api
        .request(Method::GET, "/no/such/thing.json", &[], "")
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.body, json!({"errors": ["Resource not found"]}));
    let response = api.request(Method::PATCH, "/users.json", &[], "").await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.body["errors"].is_array());
}

#[tokio::test]
async fn health_and_metrics() {
    let api = TestApi::new().await;
    let health = api.request(Method::GET, "/health", &[], "").await;
    assert_eq!(health.body, json!({"status": "ok"}));

    let token = api.app_token().await;
    api.sign_up(&token, "ivy", "").await;
    api.form(Method::GET, "/users/123.json", Some(&token), "")
        .await;

    let text = metrics_text(&api).await;
    assert!(
        text.contains(
            r#"switchboard_http_requests_total{method="POST",route="/users",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"switchboard_http_requests_total{method="GET",route="/users/{id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"switchboard_http_request_duration_seconds_count{method="POST",route="/session"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("switchboard_sessions_active 1"), "{text}");
    assert!(text.contains("switchboard_users 1"), "{text}");
}

async fn metrics_text(api: &TestApi) -> String {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
