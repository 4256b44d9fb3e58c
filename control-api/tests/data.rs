//! Custom objects: records CRUD at `/data/{Class}.json`, the query operators, typed
//! validation and the permission model.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use control_api::domain::data::{Access, FieldDef, FieldType, Permissions};
use serde_json::{json, Value};

struct DataApi {
    api: TestApi,
    alice: String,
    bob: String,
    carol: String,
    ids: [i64; 3],
}

fn fields(specs: &[&str]) -> Vec<FieldDef> {
    specs
        .iter()
        .map(|s| {
            let (name, kind) = s.split_once(':').unwrap();
            FieldDef {
                name: name.into(),
                kind: FieldType::parse(kind).unwrap(),
            }
        })
        .collect()
}

/// Alice, Bob and Carol (tagged `admins`), and a class `Car`.
async fn data_api() -> DataApi {
    let api = TestApi::new().await;
    let app_token = api.app_token().await;
    let a = api.sign_up(&app_token, "alice", "").await;
    let b = api.sign_up(&app_token, "bob", "").await;
    let c = api.sign_up(&app_token, "carol", "admins").await;
    api.control
        .create_class(
            api.app.id,
            "Car",
            fields(&[
                "model:string",
                "year:integer",
                "price:float",
                "used:boolean",
                "tags:string[]",
                "place:location",
                "sold:date",
            ]),
            None,
        )
        .await
        .expect("class");
    DataApi {
        alice: api.user_token("alice", "alice-password").await,
        bob: api.user_token("bob", "bob-password").await,
        carol: api.user_token("carol", "carol-password").await,
        ids: [
            a["id"].as_i64().unwrap(),
            b["id"].as_i64().unwrap(),
            c["id"].as_i64().unwrap(),
        ],
        api,
    }
}

impl DataApi {
    async fn create(&self, token: &str, body: Value) -> Value {
        let r = self
            .api
            .json(Method::POST, "/data/Car.json", Some(token), &body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        // Records list in creation order; a second apart keeps that order exact.
        self.api.clock.advance(std::time::Duration::from_secs(1));
        r.body
    }

    async fn list(&self, token: &str, query: &str) -> Vec<Value> {
        let r = self
            .api
            .form(
                Method::GET,
                &format!("/data/Car.json?{query}"),
                Some(token),
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
        r.body["items"].as_array().cloned().unwrap()
    }

    async fn models(&self, token: &str, query: &str) -> Vec<String> {
        self.list(token, query)
            .await
            .iter()
            .map(|r| r["model"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn fleet(&self) {
        for (model, year, price, tags, place) in [
            ("civic", 2010, 5000.5, "a,b", [13.4, 52.5]),
            ("golf", 2015, 9000.0, "b", [2.35, 48.85]),
            ("model3", 2021, 40000.0, "c,a", [13.41, 52.51]),
        ] {
            self.create(
                &self.alice,
                json!({"model": model, "year": year, "price": price, "tags": tags, "place": place, "used": year < 2020}),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn records_are_created_with_typed_fields() {
    let d = data_api().await;
    let r = d
        .create(
            &d.alice,
            json!({"model": "civic", "year": "2010", "price": 5000, "used": "true", "tags": ["x", "y"],
                   "place": [13.4, 52.5], "sold": 1700000000}),
        )
        .await;
    assert_eq!(r["model"], "civic");
    assert_eq!(r["year"], 2010, "form text is coerced to the field type");
    assert_eq!(r["price"], 5000.0);
    assert_eq!(r["used"], true);
    assert_eq!(r["tags"], json!(["x", "y"]));
    assert_eq!(r["place"], json!([13.4, 52.5]));
    assert_eq!(r["user_id"], d.ids[0]);
    assert_eq!(r["_parent_id"], Value::Null);
    assert_eq!(r["created_at"], common::start_time().unix_timestamp());
    assert!(r["_id"].as_str().unwrap().len() == 24);

    let id = r["_id"].as_str().unwrap();
    let shown = d
        .api
        .form(
            Method::GET,
            &format!("/data/Car/{id}.json"),
            Some(&d.bob),
            "",
        )
        .await;
    assert_eq!(shown.body["model"], "civic", "{}", shown.text);
}

#[tokio::test]
async fn typed_validation_errors_are_422_per_field() {
    let d = data_api().await;
    let r = d
        .api
        .json(
            Method::POST,
            "/data/Car.json",
            Some(&d.alice),
            &json!({"year": "old", "used": "maybe", "place": [200, 0], "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    for field in ["year", "used", "place", "colour"] {
        assert!(r.body["errors"][field].is_array(), "{field}: {}", r.text);
    }
    let r = d
        .api
        .form(Method::GET, "/data/Car.json?colour=red", Some(&d.alice), "")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = d
        .api
        .form(
            Method::GET,
            "/data/Car.json?year[like]=1",
            Some(&d.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = d
        .api
        .form(Method::GET, "/data/Truck.json", Some(&d.alice), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = d
        .api
        .json(Method::POST, "/data/Car.json", None, &json!({"model": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let app_token = d.api.app_token().await;
    let r = d
        .api
        .json(
            Method::POST,
            "/data/Car.json",
            Some(&app_token),
            &json!({"model": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn queries_support_every_operator_sort_paging_and_count() {
    let d = data_api().await;
    d.fleet().await;
    let t = &d.bob;
    assert_eq!(d.models(t, "model=golf").await, ["golf"]);
    assert_eq!(d.models(t, "year[lt]=2015").await, ["civic"]);
    assert_eq!(d.models(t, "year[lte]=2015").await, ["civic", "golf"]);
    assert_eq!(d.models(t, "year[gt]=2015").await, ["model3"]);
    assert_eq!(d.models(t, "year[gte]=2015").await, ["golf", "model3"]);
    assert_eq!(d.models(t, "model[ne]=golf").await, ["civic", "model3"]);
    assert_eq!(d.models(t, "model[in]=golf,civic").await, ["civic", "golf"]);
    assert_eq!(d.models(t, "model[nin]=golf,civic").await, ["model3"]);
    assert_eq!(
        d.models(t, "model[or]=golf,model3").await,
        ["golf", "model3"]
    );
    assert_eq!(d.models(t, "tags[all]=a,b").await, ["civic"]);
    assert_eq!(d.models(t, "tags[in]=c").await, ["model3"]);
    assert_eq!(d.models(t, "model[ctn]=OD").await, ["model3"]);
    assert_eq!(
        d.models(t, "price[between]=5000,10000").await,
        ["civic", "golf"]
    );
    assert_eq!(d.models(t, "used=false").await, ["model3"]);
    // Berlin: two cars within 3 km (2.2 and 1.1 km away), Paris far away.
    assert_eq!(
        d.models(t, "place[near]=13.405,52.52;3000").await,
        ["civic", "model3"]
    );
    assert_eq!(
        d.models(t, "place[near]=13.405,52.52;2000").await,
        ["model3"]
    );
    assert_eq!(
        d.models(t, "year[gt]=2000&price[lt]=10000").await,
        ["civic", "golf"]
    );
    assert_eq!(d.models(t, &format!("user_id={}", d.ids[0])).await.len(), 3);

    assert_eq!(
        d.models(t, "sort_desc=year").await,
        ["model3", "golf", "civic"]
    );
    assert_eq!(
        d.models(t, "sort_asc=price&limit=2").await,
        ["civic", "golf"]
    );
    assert_eq!(
        d.models(t, "sort_asc=price&limit=2&skip=2").await,
        ["model3"]
    );
    let r = d
        .api
        .form(
            Method::GET,
            "/data/Car.json?count=1&year[gt]=2012",
            Some(t),
            "",
        )
        .await;
    assert_eq!(r.body, json!({"class_name": "Car", "items_count": 2}));
    let r = d
        .api
        .form(Method::GET, "/data/Car.json?limit=1", Some(t), "")
        .await;
    assert_eq!(r.body["class_name"], "Car");
    assert_eq!(r.body["limit"], 1);
    assert_eq!(r.body["skip"], 0);
}

#[tokio::test]
async fn a_record_not_readable_by_a_user_never_shows_in_their_queries() {
    let d = data_api().await;
    let private = json!({"read": {"access": "owner"}});
    d.create(&d.alice, json!({"model": "secret", "permissions": private}))
        .await;
    let for_bob = json!({"read": {"access": "open_for_users_ids", "ids": [d.ids[1].to_string()]}});
    let shared = d
        .create(&d.alice, json!({"model": "shared", "permissions": for_bob}))
        .await;
    let admins = json!({"read": {"access": "open_for_groups", "groups": ["admins"]}});
    d.create(&d.alice, json!({"model": "admins", "permissions": admins}))
        .await;
    d.create(&d.alice, json!({"model": "open"})).await;

    assert_eq!(
        d.models(&d.alice, "").await,
        ["secret", "shared", "admins", "open"]
    );
    assert_eq!(d.models(&d.bob, "").await, ["shared", "open"]);
    assert_eq!(d.models(&d.carol, "").await, ["admins", "open"]);
    let r = d
        .api
        .form(Method::GET, "/data/Car.json?count=1", Some(&d.bob), "")
        .await;
    assert_eq!(
        r.body["items_count"], 2,
        "counts skip unreadable records too"
    );
    let app_token = d.api.app_token().await;
    assert_eq!(d.models(&app_token, "").await, ["open"]);
    let id = shared["_id"].as_str().unwrap();
    let r = d
        .api
        .form(
            Method::GET,
            &format!("/data/Car/{id}.json"),
            Some(&d.carol),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        shared["permissions"]["read"]["access"],
        "open_for_users_ids"
    );
}

#[tokio::test]
async fn updates_follow_permissions_and_support_operators() {
    let d = data_api().await;
    let car = d
        .create(
            &d.alice,
            json!({"model": "civic", "year": 2010, "tags": ["a"]}),
        )
        .await;
    let id = car["_id"].as_str().unwrap();
    let path = format!("/data/Car/{id}.json");

    let r = d
        .api
        .json(
            Method::PUT,
            &path,
            Some(&d.bob),
            &json!({"model": "stolen"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "update is the owner's by default"
    );
    let r = d
        .api
        .json(
            Method::PUT,
            &path,
            Some(&d.alice),
            &json!({"_id": id, "model": "civic2", "inc": {"year": 2}, "push": {"tags": "b"},
                    "add_to_set": {"tags": ["a", "c"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["model"], "civic2");
    assert_eq!(r.body["year"], 2012);
    assert_eq!(r.body["tags"], json!(["a", "b", "c"]));
    let r = d
        .api
        .json(
            Method::PUT,
            &path,
            Some(&d.alice),
            &json!({"pull": {"tags": "b"}, "pop": {"tags": 1}}),
        )
        .await;
    assert_eq!(r.body["tags"], json!(["a"]), "{}", r.text);
    let r = d
        .api
        .json(
            Method::PUT,
            &path,
            Some(&d.alice),
            &json!({"inc": {"model": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Opened for Carol's group, she may update it.
    let open =
        json!({"permissions": {"update": {"access": "open_for_groups", "groups": "admins"}}});
    d.api.json(Method::PUT, &path, Some(&d.alice), &open).await;
    let r = d
        .api
        .json(Method::PUT, &path, Some(&d.carol), &json!({"year": 2020}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user_id"], d.ids[0], "the owner stays");
}

#[tokio::test]
async fn multi_record_update_and_delete_by_criteria() {
    let d = data_api().await;
    d.fleet().await;
    let bobs = d
        .create(&d.bob, json!({"model": "bobcar", "year": 1999}))
        .await;
    let r = d
        .api
        .json(
            Method::PUT,
            "/data/Car/by_criteria.json",
            Some(&d.alice),
            &json!({"search_criteria": {"year": {"lt": 2016}}, "used": true, "price": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["total_found"], 2,
        "Bob's car matches but is not Alice's to update"
    );
    assert_eq!(d.models(&d.bob, "price=1").await, ["civic", "golf"]);

    let r = d
        .api
        .form(
            Method::DELETE,
            "/data/Car/by_criteria.json",
            Some(&d.alice),
            "year%5Blt%5D=2016",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"total_deleted": 2}));
    assert_eq!(d.models(&d.alice, "").await, ["model3", "bobcar"]);

    let model3 = d.list(&d.alice, "model=model3").await[0]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_id = bobs["_id"].as_str().unwrap();
    let r = d
        .api
        .form(
            Method::DELETE,
            &format!("/data/Car/{model3},{bob_id},ffffffffffffffffffffffff.json"),
            Some(&d.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"SuccessfullyDeleted": {"ids": [model3]}, "NotFound": {"ids": ["ffffffffffffffffffffffff"]},
               "WrongPermissions": {"ids": [bob_id]}})
    );
    let r = d
        .api
        .form(
            Method::DELETE,
            &format!("/data/Car/{bob_id}.json"),
            Some(&d.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d
        .api
        .form(
            Method::DELETE,
            &format!("/data/Car/{bob_id}.json"),
            Some(&d.bob),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.is_empty());
    let r = d
        .api
        .form(
            Method::DELETE,
            &format!("/data/Car/{bob_id}.json"),
            Some(&d.bob),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn children_go_with_their_parent_and_class_defaults_apply() {
    let d = data_api().await;
    d.api
        .control
        .create_class(
            d.api.app.id,
            "Part",
            fields(&["name:string"]),
            Some(Permissions {
                read: Access::Owner,
                update: Access::Owner,
                delete: Access::NotAllowed,
            }),
        )
        .await
        .unwrap();
    let car = d.create(&d.alice, json!({"model": "civic"})).await;
    let car_id = car["_id"].as_str().unwrap();
    let part = d
        .api
        .json(
            Method::POST,
            "/data/Part.json",
            Some(&d.alice),
            &json!({"name": "wheel", "_parent_id": car_id}),
        )
        .await;
    assert_eq!(part.body["_parent_id"], car_id, "{}", part.text);
    let r = d
        .api
        .form(
            Method::GET,
            &format!("/data/Part.json?_parent_id={car_id}"),
            Some(&d.alice),
            "",
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = d
        .api
        .form(Method::GET, "/data/Part.json", Some(&d.bob), "")
        .await;
    assert_eq!(r.body["items"], json!([]), "class default: read owner");
    let part_id = part.body["_id"].as_str().unwrap();
    let r = d
        .api
        .form(
            Method::DELETE,
            &format!("/data/Part/{part_id}.json"),
            Some(&d.alice),
            "",
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "class says delete not_allowed"
    );

    let r = d
        .api
        .form(
            Method::DELETE,
            &format!("/data/Car/{car_id}.json"),
            Some(&d.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = d
        .api
        .form(Method::GET, "/data/Part.json", Some(&d.alice), "")
        .await;
    assert_eq!(r.body["items"], json!([]), "the child went with its parent");
}

#[tokio::test]
async fn classes_are_managed_per_application_and_counted() {
    let d = data_api().await;
    let err = d
        .api
        .control
        .create_class(d.api.app.id, "Car", vec![], None)
        .await;
    assert!(err.is_err(), "names are unique per application");
    let err = d
        .api
        .control
        .create_class(d.api.app.id, "Bad", fields(&["_id:string"]), None)
        .await;
    assert!(err.is_err(), "reserved field names are refused");
    let other = d.api.control.create_app("other").await.unwrap();
    d.api
        .control
        .create_class(other.id, "Car", vec![], None)
        .await
        .unwrap();
    let names: Vec<_> = d
        .api
        .control
        .list_classes(d.api.app.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Car"]);

    d.create(&d.alice, json!({"model": "civic"})).await;
    let metrics = d.api.request_raw(Method::GET, "/metrics", &[]).await.text;
    let metrics = metrics.replace('\n', " ");
    assert!(metrics.contains("switchboard_data_records 1"), "{metrics}");
    assert!(
        metrics.contains("switchboard_data_requests_total{operation=\"create\",result=\"ok\"} 1"),
        "{metrics}"
    );
    d.api
        .control
        .delete_class(d.api.app.id, "Car")
        .await
        .unwrap();
    let r = d
        .api
        .form(Method::GET, "/data/Car.json", Some(&d.alice), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
