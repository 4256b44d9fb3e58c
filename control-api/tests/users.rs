//! `/users.json` and friends through HTTP, every error path included.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use serde_json::{json, Value};

fn logins(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["user"]["login"].as_str().unwrap().to_string())
        .collect()
}

/// Three users (ann, ben, cat) signed up through an application session.
async fn three_users(api: &TestApi) -> (String, Vec<Value>) {
    let token = api.app_token().await;
    let users = vec![
        api.sign_up(&token, "ann", "red,blue").await,
        api.sign_up(&token, "ben", "blue").await,
        api.sign_up(&token, "cat", "green").await,
    ];
    (token, users)
}

#[tokio::test]
async fn sign_up_returns_the_user_without_its_password() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let body = "user[login]=dora&user[password]=dora-password&user[email]=Dora%40Example.com&user[full_name]=Dora&\
                user[tag_list]=a,%20b,a&user[custom_data]=%7B%22x%22%3A1%7D&user[external_user_id]=77&user[phone]=123";
    let response = api
        .form(Method::POST, "/users.json", Some(&token), body)
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let user = &response.body["user"];
    assert_eq!(user["login"], json!("dora"));
    assert_eq!(user["email"], json!("dora@example.com"));
    assert_eq!(user["user_tags"], json!("a,b"));
    assert_eq!(user["custom_data"], json!("{\"x\":1}"));
    assert_eq!(user["external_user_id"], json!(77));
    assert_eq!(user["phone"], json!("123"));
    assert_eq!(user["created_at"], json!("2026-11-25T12:00:00Z"));
    assert!(!response.text.contains("password"), "{}", response.text);
}

#[tokio::test]
async fn sign_up_validation_errors_name_their_fields() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    api.sign_up(&token, "eve", "").await;
    let cases = [
        ("user[login]=x1", "password"),
        ("user[login]=x2&user[password]=short", "password"),
        ("user[password]=long-enough", "base"),
        (
            "user[login]=x3&user[password]=long-enough&user[email]=not-an-email",
            "email",
        ),
        ("user[login]=eve&user[password]=long-enough", "login"),
        (
            "user[login]=x4&user[password]=long-enough&user[email]=eve%40example.com",
            "email",
        ),
        (
            "user[login]=x5&user[password]=long-enough&user[external_user_id]=abc",
            "external_user_id",
        ),
    ];
    for (body, field) in cases {
        let response = api
            .form(Method::POST, "/users.json", Some(&token), body)
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.text
        );
        assert!(
            response.body["errors"][field].is_array(),
            "{body}: {}",
            response.text
        );
    }
}

#[tokio::test]
async fn json_sign_up_bodies_work_like_forms() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let body =
        json!({"user": {"login": "fay", "password": "fay-password", "tag_list": ["x", "y"]}});
    let response = api
        .json(Method::POST, "/users.json", Some(&token), &body)
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.body["user"]["user_tags"], json!("x,y"));
}

#[tokio::test]
async fn list_users_with_filters_order_and_pages() {
    let api = TestApi::new().await;
    let (token, users) = three_users(&api).await;
    let ids = format!("{},{}", users[0]["id"], users[2]["id"]);

    let all = api.form(Method::GET, "/users.json", Some(&token), "").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["total_entries"], json!(3));
    assert_eq!(all.body["current_page"], json!(1));
    assert_eq!(all.body["per_page"], json!(10));
    assert_eq!(logins(&all.body), ["ann", "ben", "cat"]);

    let path = format!("/users.json?filter[]=number%20id%20in%20{ids}");
    assert_eq!(
        logins(&api.form(Method::GET, &path, Some(&token), "").await.body),
        ["ann", "cat"]
    );

    // The SDK joins several filters into one value.
    let path = format!("/users.json?filter[]=number%20id%20in%20{ids},string%20login%20eq%20cat");
    assert_eq!(
        logins(&api.form(Method::GET, &path, Some(&token), "").await.body),
        ["cat"]
    );

    let path = "/users.json?filter[]=string%20login%20ne%20ben&order=desc%20string%20login";
    assert_eq!(
        logins(&api.form(Method::GET, path, Some(&token), "").await.body),
        ["cat", "ann"]
    );

    let path =
        "/users.json?filter[]=date%20created_at%20lte%202026-11-25T12:00:00Z&per_page=1&page=2";
    let page = api.form(Method::GET, path, Some(&token), "").await.body;
    assert_eq!(logins(&page), ["ben"]);
    assert_eq!(page["total_entries"], json!(3));
    assert_eq!(page["current_page"], json!(2));

    let clamped = api
        .form(Method::GET, "/users.json?per_page=1000", Some(&token), "")
        .await;
    assert_eq!(clamped.body["per_page"], json!(100));
}

#[tokio::test]
async fn bad_list_parameters_are_422_not_500() {
    let api = TestApi::new().await;
    let (token, _) = three_users(&api).await;
    for query in [
        "filter[]=number%20password%20eq%201",
        "filter[]=number%20id%20like%201",
        "filter[]=number%20id%20eq%20one",
        "filter[]=garbage",
        "order=sideways%20string%20login",
        "page=0",
        "per_page=-5",
        "page=abc",
    ] {
        let response = api
            .form(
                Method::GET,
                &format!("/users.json?{query}"),
                Some(&token),
                "",
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            response.text
        );
        assert!(response.body["errors"].is_object(), "{query}");
    }
}

#[tokio::test]
async fn find_users_by_id_login_email_tags_and_name() {
    let api = TestApi::new().await;
    let (token, users) = three_users(&api).await;
    let ann_id = users[0]["id"].clone();
    let get = |path: String| {
        let api = &api;
        let token = token.clone();
        async move { api.form(Method::GET, &path, Some(&token), "").await }
    };
    assert_eq!(
        get(format!("/users/{ann_id}.json")).await.body["user"]["login"],
        json!("ann")
    );
    assert_eq!(
        get("/users/by_login.json?login=ben".into()).await.body["user"]["login"],
        json!("ben")
    );
    assert_eq!(
        get("/users/by_email.json?email=CAT%40example.com".into())
            .await
            .body["user"]["login"],
        json!("cat")
    );
    assert_eq!(
        logins(&get("/users/by_tags.json?tags=blue".into()).await.body),
        ["ann", "ben"]
    );
    assert_eq!(
        logins(&get("/users/by_tags.json?tags=green,red".into()).await.body),
        ["ann", "cat"]
    );
    assert_eq!(
        logins(
            &get("/users/by_full_name.json?full_name=BEN%20ex".into())
                .await
                .body
        ),
        ["ben"]
    );

    for path in [
        "/users/9999.json",
        "/users/not-a-number.json",
        "/users/by_login.json?login=nobody",
        "/users/by_email.json?email=nobody%40example.com",
        "/users/by_facebook_id.json?facebook_id=1",
        "/users/by_twitter_id.json?twitter_id=1",
        "/users/phone.json?phone=1",
        "/users/external/1.json",
        "/users/external/abc.json",
    ] {
        let response = get(path.into()).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert!(response.body["errors"].is_object(), "{path}");
    }
    for path in [
        "/users/by_login.json",
        "/users/by_tags.json",
        "/users/by_full_name.json",
    ] {
        assert_eq!(
            get(path.into()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}"
        );
    }
}

#[tokio::test]
async fn users_are_found_by_external_id_phone_and_social_ids() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let body =
        "user[login]=gus&user[password]=gus-password&user[external_user_id]=42&user[phone]=%2B100&\
                user[facebook_id]=fb1&user[twitter_id]=tw1";
    assert_eq!(
        api.form(Method::POST, "/users.json", Some(&token), body)
            .await
            .status,
        StatusCode::CREATED
    );
    for path in [
        "/users/external/42.json",
        "/users/phone.json?phone=%2B100",
        "/users/by_facebook_id.json?facebook_id=fb1",
        "/users/by_twitter_id.json?twitter_id=tw1",
    ] {
        let response = api.form(Method::GET, path, Some(&token), "").await;
        assert_eq!(response.body["user"]["login"], json!("gus"), "{path}");
    }
}

#[tokio::test]
async fn users_update_their_own_profile_only() {
    let api = TestApi::new().await;
    let (app_token, users) = three_users(&api).await;
    let ann = api.user_token("ann", "ann-password").await;
    let ann_path = format!("/users/{}.json", users[0]["id"]);
    let ben_path = format!("/users/{}.json", users[1]["id"]);

    let response = api
        .form(
            Method::PUT,
            &ann_path,
            Some(&ann),
            "user[full_name]=Ann%20B&user[tag_list]=x%2Cy&user[website]=",
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["user"]["full_name"], json!("Ann B"));
    assert_eq!(response.body["user"]["user_tags"], json!("x,y"));
    assert_eq!(response.body["user"]["login"], json!("ann"));
    let by_tag = api
        .form(Method::GET, "/users/by_tags.json?tags=red", Some(&ann), "")
        .await;
    assert_eq!(by_tag.body["total_entries"], json!(0), "old tags are gone");

    let json_update = json!({"user": {"custom_data": "hello"}});
    let response = api
        .json(Method::PUT, &ann_path, Some(&ann), &json_update)
        .await;
    assert_eq!(response.body["user"]["custom_data"], json!("hello"));

    let other = api
        .form(Method::PUT, &ben_path, Some(&ann), "user[full_name]=Hacked")
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.body["errors"].is_array());
    let app_session = api
        .form(
            Method::PUT,
            &ann_path,
            Some(&app_token),
            "user[full_name]=X",
        )
        .await;
    assert_eq!(app_session.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app_session.body,
        json!({"errors": ["Forbidden. Need user."]})
    );

    let taken = api
        .form(Method::PUT, &ann_path, Some(&ann), "user[login]=ben")
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body["errors"]["login"].is_array());
    let bad_email = api
        .form(Method::PUT, &ann_path, Some(&ann), "user[email]=nope")
        .await;
    assert!(bad_email.body["errors"]["email"].is_array());
    let no_identity = api
        .form(
            Method::PUT,
            &ann_path,
            Some(&ann),
            "user[login]=&user[email]=",
        )
        .await;
    assert_eq!(no_identity.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn password_change_needs_the_old_password() {
    let api = TestApi::new().await;
    let (_, users) = three_users(&api).await;
    let ann = api.user_token("ann", "ann-password").await;
    let path = format!("/users/{}.json", users[0]["id"]);

    let missing = api
        .form(
            Method::PUT,
            &path,
            Some(&ann),
            "user[password]=new-password",
        )
        .await;
    assert!(
        missing.body["errors"]["old_password"].is_array(),
        "{}",
        missing.text
    );
    let wrong = api
        .form(
            Method::PUT,
            &path,
            Some(&ann),
            "user[password]=new-password&user[old_password]=wrong-one",
        )
        .await;
    assert!(wrong.body["errors"]["old_password"].is_array());
    let short = api
        .form(
            Method::PUT,
            &path,
            Some(&ann),
            "user[password]=short&user[old_password]=ann-password",
        )
        .await;
    assert!(short.body["errors"]["password"].is_array());
    let ok = api
        .form(
            Method::PUT,
            &path,
            Some(&ann),
            "user[password]=new-password&user[old_password]=ann-password",
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    api.user_token("ann", "new-password").await;
    let app = api.app.clone();
    let old = api
        .session_for(
            &app,
            &[("user[login]", "ann"), ("user[password]", "ann-password")],
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_delete_their_own_account_only() {
    let api = TestApi::new().await;
    let (app_token, users) = three_users(&api).await;
    let ann = api.user_token("ann", "ann-password").await;
    let ben = api.user_token("ben", "ben-password").await;
    let ann_path = format!("/users/{}.json", users[0]["id"]);

    assert_eq!(
        api.form(Method::DELETE, &ann_path, Some(&ben), "")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.form(Method::DELETE, &ann_path, Some(&app_token), "")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let response = api.form(Method::DELETE, &ann_path, Some(&ann), "").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text, "");

    assert_eq!(
        api.form(Method::GET, &ann_path, Some(&ben), "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The deleted user's sessions went with them.
    assert_eq!(
        api.form(Method::GET, "/session.json", Some(&ann), "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.form(Method::DELETE, "/users/9999.json", Some(&ben), "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_by_external_id() {
    let api = TestApi::new().await;
    let token = api.app_token().await;
    let body = "user[login]=hal&user[password]=hal-password&user[external_user_id]=5";
    api.form(Method::POST, "/users.json", Some(&token), body)
        .await;
    let hal = api.user_token("hal", "hal-password").await;
    assert_eq!(
        api.form(Method::DELETE, "/users/external/5.json", Some(&hal), "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.form(Method::GET, "/users/external/5.json", Some(&token), "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn applications_never_see_each_others_users() {
    let api = TestApi::new().await;
    let (_, users) = three_users(&api).await;
    let other = api.control.create_app("other").await.unwrap();
    let token = api.app_token_for(&other).await;

    let list = api.form(Method::GET, "/users.json", Some(&token), "").await;
    assert_eq!(list.body["total_entries"], json!(0));
    let path = format!("/users/{}.json", users[0]["id"]);
    assert_eq!(
        api.form(Method::GET, &path, Some(&token), "").await.status,
        StatusCode::NOT_FOUND
    );
    let by_tags = api
        .form(
            Method::GET,
            "/users/by_tags.json?tags=blue",
            Some(&token),
            "",
        )
        .await;
    assert_eq!(by_tags.body["total_entries"], json!(0));

    // The same login is free in another application, and its credentials stay apart.
    api.sign_up(&token, "ann", "").await;
    let wrong_app = api
        .session_for(
            &other,
            &[("user[login]", "ben"), ("user[password]", "ben-password")],
        )
        .await;
    assert_eq!(wrong_app.status, StatusCode::UNAUTHORIZED);
}
