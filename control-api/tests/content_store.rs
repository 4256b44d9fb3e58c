//! The content store (blob metadata) on SQLite and on PostgreSQL (the server named by
//! `SWITCHBOARD_TEST_PG_URL`), one suite for both.

mod common;

use control_api::domain::content::{Blob, ContentStore};
use control_api::domain::model::{AppId, UserId};
use control_api::domain::store::NewApp;
use control_api::{open_store, Store};
use time::macros::datetime;
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    datetime!(2026-11-25 12:00:00 UTC)
}

fn blob(app: AppId, user: i64, uid: &str) -> Blob {
    Blob {
        id: 0,
        app_id: app,
        user_id: UserId(user),
        uid: uid.into(),
        name: "a.txt".into(),
        content_type: "text/plain".into(),
        is_public: false,
        tags: vec!["x".into(), "y".into()],
        size: None,
        stored_size: None,
        checksum: None,
        upload_secret: Some("secret".into()),
        upload_expires_at: Some(t0()),
        completed_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn exercise<S: Store + ContentStore>(store: &S) {
    let app = store
        .insert_app(NewApp {
            name: "content".into(),
            auth_key: "k".into(),
            auth_secret: "s".into(),
            account_key: "a".into(),
            is_default: false,
            created_at: t0(),
        })
        .await
        .unwrap()
        .id;
    let first = store.insert_blob(&blob(app, 1, "u1")).await.unwrap();
    assert!(first.id > 0);
    assert_eq!(first.tags, vec!["x", "y"]);
    assert_eq!(first.upload_expires_at, Some(t0()));
    let second = store.insert_blob(&blob(app, 1, "u2")).await.unwrap();
    store.insert_blob(&blob(app, 2, "u3")).await.unwrap();
    assert!(
        store.insert_blob(&blob(app, 2, "u3")).await.is_err(),
        "uids are unique"
    );

    assert_eq!(
        store.blob(app, first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.blob(AppId(app.0 + 1), first.id).await.unwrap(), None);
    assert_eq!(store.blob_by_uid("u2").await.unwrap(), Some(second.clone()));
    let (page, total) = store.list_blobs(app, UserId(1), 1, 0).await.unwrap();
    assert_eq!((page[0].id, total), (second.id, 2), "newest first");
    let (page, _) = store.list_blobs(app, UserId(1), 10, 1).await.unwrap();
    assert_eq!(
        page.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![first.id]
    );

    let mut done = first.clone();
    done.stored_size = Some(11);
    done.size = Some(11);
    done.checksum = Some("abc".into());
    done.upload_secret = None;
    done.upload_expires_at = None;
    done.completed_at = Some(t0());
    done.is_public = true;
    done.name = "b.txt".into();
    store.update_blob(&done).await.unwrap();
    assert_eq!(store.blob(app, first.id).await.unwrap(), Some(done));
    assert_eq!(store.blob_totals().await.unwrap(), (1, 11));

    assert!(store.delete_blob(app, second.id).await.unwrap());
    assert!(!store.delete_blob(app, second.id).await.unwrap());
    assert!(store.delete_app(app).await.unwrap());
    assert_eq!(
        store.blob_by_uid("u1").await.unwrap(),
        None,
        "blobs go with their app"
    );
}

#[tokio::test]
async fn sqlite_content_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store("sqlite", dir.path()).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_content_store() {
    let Some(db) = common::PgDatabase::create("content").await else {
        return;
    };
    let store = open_store(&db.url, std::path::Path::new("."))
        .await
        .unwrap();
    exercise(&store).await;
    store.close().await;
    db.drop().await;
}
