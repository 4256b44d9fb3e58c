//! The custom-object store and the owner's API key on SQLite and on PostgreSQL (the server
//! named by `SWITCHBOARD_TEST_PG_URL`), one suite for both: classes updated, deletion down
//! `_parent_id` chains at any depth (a cycle included) and across classes, in one
//! transaction, answering every record deleted.

mod common;

use control_api::domain::data::{
    Access, DataClass, DataStore, FieldDef, FieldType, Permissions, Record,
};
use control_api::domain::model::{AppId, UserId};
use control_api::domain::store::NewApp;
use control_api::{open_store, Store};
use serde_json::{json, Map};
use time::macros::datetime;
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    datetime!(2026-11-25 12:00:00 UTC)
}

fn class(app: AppId, name: &str) -> DataClass {
    DataClass {
        id: 0,
        app_id: app,
        name: name.into(),
        fields: vec![FieldDef {
            name: "label".into(),
            kind: FieldType::parse("string").unwrap(),
        }],
        permissions: Permissions::default(),
        create_allowed: true,
        created_at: t0(),
    }
}

fn record(app: AppId, class: &DataClass, id: &str, parent: Option<&str>) -> Record {
    let mut fields = Map::new();
    fields.insert("label".into(), json!(id));
    Record {
        id: id.into(),
        app_id: app,
        class_id: class.id,
        user_id: UserId(1),
        parent_id: parent.map(str::to_string),
        fields,
        permissions: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

async fn exercise<S: Store + DataStore>(store: &S) {
    let app = store
        .insert_app(NewApp {
            name: "data".into(),
            auth_key: "k".into(),
            auth_secret: "s".into(),
            account_key: "a".into(),
            is_default: false,
            created_at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(app.api_key, None, "the key is set apart from the insert");
    assert!(store.set_app_api_key(app.id, "owner-key").await.unwrap());
    assert!(!store.set_app_api_key(AppId(999_999), "x").await.unwrap());
    let found = store.app_by_api_key("owner-key").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.api_key.as_deref()),
        (app.id, Some("owner-key"))
    );
    assert!(store.app_by_api_key("other").await.unwrap().is_none());
    let app = app.id;

    let mut car = store.insert_class(&class(app, "Car")).await.unwrap();
    let part = store.insert_class(&class(app, "Part")).await.unwrap();
    car.fields.push(FieldDef {
        name: "year".into(),
        kind: FieldType::parse("integer").unwrap(),
    });
    car.permissions.read = Access::OpenForUsersIds {
        ids: vec![UserId(7)],
    };
    car.create_allowed = false;
    store.update_class(&car).await.unwrap();
    assert_eq!(store.class(app, "Car").await.unwrap().unwrap(), car);

    // car1 ← p1 ← p2 ← p3 (across classes, three levels), car2 alone, and a cycle
    // c1 ⇄ c2 hanging below car3.
    for (class, id, parent) in [
        (&car, "car1", None),
        (&part, "p1", Some("car1")),
        (&part, "p2", Some("p1")),
        (&part, "p3", Some("p2")),
        (&car, "car2", None),
        (&car, "car3", None),
        (&part, "c1", Some("c2")),
        (&part, "c2", Some("c1")),
        (&part, "c3", Some("car3")),
    ] {
        store
            .insert_record(&record(app, class, id, parent))
            .await
            .unwrap();
    }
    let deleted = store.delete_records(app, &["car1".into()]).await.unwrap();
    assert_eq!(ids(&deleted), ["car1", "p1", "p2", "p3"]);
    let left = store.records(app, part.id, None).await.unwrap();
    assert_eq!(ids(&left), ["c1", "c2", "c3"]);

    // The cycle: deleting c1 takes c2 (its child) and stops there.
    let deleted = store.delete_records(app, &["c1".into()]).await.unwrap();
    assert_eq!(ids(&deleted), ["c1", "c2"]);
    // Unknown ids delete nothing (but would take orphans naming them).
    let deleted = store.delete_records(app, &["nope".into()]).await.unwrap();
    assert!(deleted.is_empty());

    // Deleting a class answers its records and their descendants in other classes.
    let deleted = store.delete_class(app, "Car").await.unwrap().unwrap();
    assert_eq!(ids(&deleted), ["c3", "car2", "car3"]);
    assert!(store.class(app, "Car").await.unwrap().is_none());
    assert!(store.delete_class(app, "Car").await.unwrap().is_none());
    assert!(store.records(app, part.id, None).await.unwrap().is_empty());
    assert_eq!(store.count_records().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_data_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store("sqlite", dir.path()).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_data_store() {
    let Some(db) = common::PgDatabase::create("data").await else {
        return;
    };
    let store = open_store(&db.url, std::path::Path::new("."))
        .await
        .unwrap();
    exercise(&store).await;
    store.close().await;
    db.drop().await;
}
