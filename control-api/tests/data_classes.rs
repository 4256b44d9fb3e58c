//! Custom-object classes over REST (`/class.json`), managed with the application owner's
//! API key (`Authorization: ApiKey <key>`): create, list, show, update, delete, and every
//! refusal (no key, a wrong or rotated key, another application's key, sessions).

mod common;

use axum::http::{Method, StatusCode};
use common::{encode, Response, TestApi};
use serde_json::{json, Value};

struct ClassApi {
    api: TestApi,
    key: String,
    alice: String,
    bob: String,
}

async fn class_api() -> ClassApi {
    let api = TestApi::new().await;
    let app_token = api.app_token().await;
    api.sign_up(&app_token, "alice", "").await;
    api.sign_up(&app_token, "bob", "").await;
    ClassApi {
        key: api
            .app
            .api_key
            .clone()
            .expect("new applications get an API key"),
        alice: api.user_token("alice", "alice-password").await,
        bob: api.user_token("bob", "bob-password").await,
        api,
    }
}

impl ClassApi {
    /// An owner request with `Authorization: ApiKey <key>` and a JSON body.
    async fn owner(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Response {
        let auth = format!("ApiKey {key}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json; charset=utf-8"),
        ];
        let body = body.map(Value::to_string).unwrap_or_default();
        self.api.request(method, path, &headers, &body).await
    }

    async fn create_car(&self) -> Response {
        let body = json!({
            "name": "Car",
            "fields": {"model": "String", "year": "Integer", "tags": "String_a", "photo": "File"},
            "permissions": {
                "create": {"access": "open"},
                "read": {"access": "open"},
                "update": {"access": "open_for_users_ids", "ids": "1,2"},
            },
        });
        self.owner(Method::POST, "/class.json", &self.key, Some(&body))
            .await
    }
}

#[tokio::test]
async fn the_owner_creates_lists_shows_updates_and_deletes_classes() {
    let c = class_api().await;
    let r = c.create_car().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["name"], "Car");
    assert_eq!(r.body["application_id"], c.api.app.id.0);
    assert_eq!(
        r.body["custom_fields"],
        // A JSON object's members come in name order (the object form has no order).
        json!([
            {"name": "model", "type": "String"},
            {"name": "photo", "type": "File"},
            {"name": "tags", "type": "String", "is_array": "1"},
            {"name": "year", "type": "Integer"},
        ]),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["acl"],
        json!({
            "create": {"access": "open"},
            "read": {"access": "open"},
            "update": {"access": "open_for_users_ids", "users_ids": ["1", "2"]},
            "delete": {"access": "owner"},
        })
    );

    // Users use the class right away.
    let rec = c
        .api
        .json(
            Method::POST,
            "/data/Car.json",
            Some(&c.alice),
            &json!({"model": "civic", "tags": ["a"]}),
        )
        .await;
    assert_eq!(rec.status, StatusCode::CREATED, "{}", rec.text);

    // QuickBlox's form encoding works as well.
    let auth = format!("ApiKey {}", c.key);
    let form = encode(&[
        ("name".into(), "Note".into()),
        ("fields[text]".into(), "String".into()),
        ("permissions[read][access]".into(), "owner".into()),
    ]);
    let r = c
        .api
        .request(
            Method::POST,
            "/class.json",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &form,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["acl"]["read"], json!({"access": "owner"}));

    let r = c.owner(Method::GET, "/class.json", &c.key, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Car", "Note"]);
    let r = c.owner(Method::GET, "/class/Car.json", &c.key, None).await;
    assert_eq!(
        r.body["custom_fields"].as_array().unwrap().len(),
        4,
        "{}",
        r.text
    );

    // Update: add a field (repeating one with its type is fine), tighten permissions.
    let r = c
        .owner(
            Method::PUT,
            "/class/Car.json",
            &c.key,
            Some(&json!({
                "fields": {"model": "String", "price": "Float"},
                "permissions": {"read": {"access": "owner"}, "create": {"access": "not_allowed"}},
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["custom_fields"][4],
        json!({"name": "price", "type": "Float"})
    );
    assert_eq!(r.body["acl"]["read"], json!({"access": "owner"}));
    assert_eq!(
        r.body["acl"]["update"]["access"], "open_for_users_ids",
        "untouched actions stay"
    );
    assert_eq!(r.body["acl"]["create"], json!({"access": "not_allowed"}));
    let r = c
        .api
        .form(Method::GET, "/data/Car.json", Some(&c.bob), "")
        .await;
    assert_eq!(r.body["items"], json!([]), "read: owner now: {}", r.text);
    let r = c
        .api
        .json(
            Method::POST,
            "/data/Car.json",
            Some(&c.alice),
            &json!({"model": "golf", "price": 1.5}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "create: not_allowed now: {}",
        r.text
    );
    let r = c
        .owner(
            Method::PUT,
            "/class/Car.json",
            &c.key,
            Some(&json!({"fields": {"year": "String"}})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a field's type is fixed: {}",
        r.text
    );
    assert!(r.body["errors"]["fields"].is_array(), "{}", r.text);

    let r = c
        .owner(Method::DELETE, "/class/Car.json", &c.key, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = c.owner(Method::GET, "/class/Car.json", &c.key, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = c
        .api
        .form(Method::GET, "/data/Car.json", Some(&c.alice), "")
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "records went with the class"
    );
    let r = c
        .owner(Method::DELETE, "/class/Car.json", &c.key, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let metrics = c.api.request_raw(Method::GET, "/metrics", &[]).await.text;
    for line in [
        "switchboard_data_requests_total{operation=\"class_create\",result=\"ok\"} 2",
        "switchboard_data_requests_total{operation=\"class_update\",result=\"invalid\"} 1",
        "switchboard_data_requests_total{operation=\"class_delete\",result=\"not_found\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn only_the_owners_key_manages_classes() {
    let c = class_api().await;
    c.create_car().await;
    let app_token = c.api.app_token().await;
    let body = json!({"name": "Boat", "fields": {"name": "String"}}).to_string();
    let json_type = ("content-type", "application/json");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode);
    let cases: Vec<Case> = vec![
        ("no credentials", vec![json_type], StatusCode::UNAUTHORIZED),
        (
            "a user session",
            vec![json_type, ("qb-token", c.alice.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (
            "an application session",
            vec![json_type, ("qb-token", app_token.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (
            "a wrong key",
            vec![json_type, ("authorization", "ApiKey not-the-key")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another scheme",
            vec![json_type, ("authorization", "Bearer whatever")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an empty key",
            vec![json_type, ("authorization", "ApiKey ")],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, headers, status) in cases {
        for (method, path) in [
            (Method::POST, "/class.json"),
            (Method::GET, "/class.json"),
            (Method::GET, "/class/Car.json"),
            (Method::PUT, "/class/Car.json"),
            (Method::DELETE, "/class/Car.json"),
        ] {
            let r = c.api.request(method.clone(), path, &headers, &body).await;
            assert_eq!(r.status, status, "{what}, {method} {path}: {}", r.text);
            assert!(
                r.body["errors"].is_array(),
                "{what}: QuickBlox error shape: {}",
                r.text
            );
        }
    }
    let r = c.api.request(Method::GET, "/class.json", &[], "").await;
    assert!(
        r.text.contains("ApiKey"),
        "the refusal says what is needed: {}",
        r.text
    );

    // Another application's key sees only that application's classes.
    let other = c.api.control.create_app("other").await.unwrap();
    let other_key = other.api_key.clone().unwrap();
    assert_ne!(other_key, c.key);
    let r = c
        .owner(Method::GET, "/class/Car.json", &other_key, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = c
        .owner(Method::DELETE, "/class/Car.json", &other_key, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = c.owner(Method::GET, "/class.json", &other_key, None).await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);
    let r = c.owner(Method::GET, "/class/Car.json", &c.key, None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the class is still there: {}",
        r.text
    );

    // Rotating the key retires the old one at once.
    let rotated = c.api.control.rotate_api_key(c.api.app.id).await.unwrap();
    let new_key = rotated.api_key.unwrap();
    assert_ne!(new_key, c.key);
    let r = c.owner(Method::GET, "/class.json", &c.key, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = c.owner(Method::GET, "/class.json", &new_key, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed = c.api.control.list_apps().await.unwrap();
    assert_eq!(listed[0].api_key.as_deref(), Some(new_key.as_str()));
}

#[tokio::test]
async fn bad_class_definitions_are_422_per_field() {
    let c = class_api().await;
    c.create_car().await;
    let cases = [
        ("taken name", json!({"name": "Car"}), "name"),
        ("no name", json!({"fields": {"a": "String"}}), "name"),
        ("bad name", json!({"name": "no spaces"}), "name"),
        (
            "unknown type",
            json!({"name": "X", "fields": {"a": "Money"}}),
            "fields",
        ),
        (
            "reserved field",
            json!({"name": "X", "fields": {"_id": "String"}}),
            "fields",
        ),
        (
            "array of files",
            json!({"name": "X", "fields": {"docs": "File_a"}}),
            "fields",
        ),
        (
            "fields not an object",
            json!({"name": "X", "fields": "a"}),
            "fields",
        ),
        (
            "unknown access",
            json!({"name": "X", "permissions": {"read": {"access": "everyone"}}}),
            "permissions",
        ),
        (
            "unknown action",
            json!({"name": "X", "permissions": {"share": {"access": "open"}}}),
            "permissions",
        ),
        (
            "create owner",
            json!({"name": "X", "permissions": {"create": {"access": "owner"}}}),
            "permissions",
        ),
    ];
    for (what, body, field) in cases {
        let r = c
            .owner(Method::POST, "/class.json", &c.key, Some(&body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            r.text
        );
        assert!(
            r.body["errors"][field].is_array(),
            "{what}: errors on {field}: {}",
            r.text
        );
    }
    let r = c.owner(Method::GET, "/class.json", &c.key, None).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        1,
        "nothing was created: {}",
        r.text
    );
    let r = c
        .owner(
            Method::PUT,
            "/class/Nope.json",
            &c.key,
            Some(&json!({"fields": {"a": "String"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // The array form this API answers with is accepted back.
    let r = c
        .owner(
            Method::POST,
            "/class.json",
            &c.key,
            Some(&json!({"name": "Copy", "custom_fields": [], "fields": [{"name": "tags", "type": "String", "is_array": "1"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["custom_fields"],
        json!([{"name": "tags", "type": "String", "is_array": "1"}])
    );
}
