//! One suite, run against both engines: SQLite in a temp dir and the PostgreSQL named by
//! `SWITCHBOARD_TEST_PG_URL` (a fresh database per run, dropped afterwards).

use std::time::Duration;

use control_api::domain::model::{AppId, UserId, UserProfile};
use control_api::domain::store::{NewApp, NewSession};
use control_api::domain::user_query::{parse_filter, parse_order, UserLookup, UserQuery};
use control_api::{open_store, Store, StoreError};
use sqlx::{Connection, Executor};
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-11-25 12:00:00 UTC)
}

fn new_app(name: &str, is_default: bool) -> NewApp {
    NewApp {
        name: name.into(),
        auth_key: format!("{name}-key"),
        auth_secret: format!("{name}-secret"),
        account_key: format!("{name}-account"),
        is_default,
        created_at: t0(),
    }
}

fn profile(login: &str, tags: &[&str]) -> UserProfile {
    UserProfile {
        login: Some(login.into()),
        email: Some(format!("{login}@example.com")),
        full_name: Some(format!("{login} Example")),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..UserProfile::default()
    }
}

fn session(token: &str, app: AppId, user: Option<UserId>, expires_in: Duration) -> NewSession {
    NewSession {
        oid: "0123456789abcdef01234567".into(),
        token: token.into(),
        app_id: app,
        user_id: user,
        nonce: 1,
        ts: t0().unix_timestamp(),
        now: t0(),
        expires_at: t0() + expires_in,
    }
}

async fn exercise(store: &dyn Store) {
    // Applications.
    let default = store.insert_app(new_app("main", true)).await.unwrap();
    let other = store.insert_app(new_app("other", false)).await.unwrap();
    assert_eq!(store.default_app().await.unwrap().unwrap(), default);
    assert_eq!(store.app(other.id).await.unwrap().unwrap().name, "other");
    assert_eq!(
        store
            .app_by_account_key("other-account")
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );
    assert_eq!(store.list_apps().await.unwrap().len(), 2);
    assert!(store.app(AppId(999)).await.unwrap().is_none());

    // Users, uniqueness per application, tags.
    let ann = store
        .insert_user(
            default.id,
            &profile("ann", &["red", "blue"]),
            "hash-a",
            t0(),
        )
        .await
        .unwrap();
    let ben = store
        .insert_user(default.id, &profile("ben", &["blue"]), "hash-b", t0())
        .await
        .unwrap();
    let _ = store
        .insert_user(other.id, &profile("ann", &["red"]), "hash-c", t0())
        .await
        .unwrap();
    assert_eq!(ann.profile.tags, ["red", "blue"]);
    assert_eq!(ann.created_at, t0());
    let mut same_login = profile("ann", &[]);
    same_login.email = None;
    let duplicate = store.insert_user(default.id, &same_login, "h", t0()).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict { field: "login" })),
        "{duplicate:?}"
    );
    let mut same_email = profile("zed", &[]);
    same_email.email = Some("ben@example.com".into());
    let duplicate = store.insert_user(default.id, &same_email, "h", t0()).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict { field: "email" })),
        "{duplicate:?}"
    );

    let found = store
        .user(default.id, &UserLookup::Login("ben".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, ben);
    let (_, hash) = store
        .user_credentials(default.id, &UserLookup::Email("ann@example.com".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash, "hash-a");
    assert!(store
        .user(other.id, &UserLookup::Id(ben.id))
        .await
        .unwrap()
        .is_none());

    // Listing: filters, tags, name search, order, pages; scoped to the application.
    let query = UserQuery {
        tags_any: vec!["blue".into()],
        ..UserQuery::default()
    };
    let (page, total) = store.list_users(default.id, &query).await.unwrap();
    assert_eq!((page.len(), total), (2, 2));
    let query = UserQuery {
        conditions: vec![parse_filter("string login in ann,ben").unwrap()],
        order: parse_order("desc string login").unwrap(),
        limit: 1,
        offset: 1,
        ..UserQuery::default()
    };
    let (page, total) = store.list_users(default.id, &query).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(page[0].profile.login.as_deref(), Some("ann"));
    let query = UserQuery {
        full_name_contains: Some("BEN EX".into()),
        ..UserQuery::default()
    };
    assert_eq!(store.list_users(default.id, &query).await.unwrap().1, 1);
    let query = UserQuery {
        full_name_contains: Some("%".into()),
        ..UserQuery::default()
    };
    assert_eq!(
        store.list_users(default.id, &query).await.unwrap().1,
        0,
        "LIKE wildcards are escaped"
    );
    let query = UserQuery {
        conditions: vec![parse_filter("number id between 0,999999").unwrap()],
        ..UserQuery::default()
    };
    assert_eq!(store.list_users(other.id, &query).await.unwrap().1, 1);

    // Update replaces profile and tags, keeps or replaces the password.
    let mut changed = ann.profile.clone();
    changed.full_name = Some("Ann B".into());
    changed.tags = vec!["green".into()];
    let later = t0() + Duration::from_secs(60);
    let updated = store
        .update_user(default.id, ann.id, &changed, None, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.profile.full_name.as_deref(), Some("Ann B"));
    assert_eq!(updated.updated_at, later);
    let by_red = UserQuery {
        tags_any: vec!["red".into()],
        ..UserQuery::default()
    };
    assert_eq!(store.list_users(default.id, &by_red).await.unwrap().1, 0);
    let (_, hash) = store
        .user_credentials(default.id, &UserLookup::Id(ann.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash, "hash-a");
    store
        .update_user(default.id, ann.id, &changed, Some("hash-new"), later)
        .await
        .unwrap();
    let (_, hash) = store
        .user_credentials(default.id, &UserLookup::Id(ann.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash, "hash-new");
    let mut clash = changed.clone();
    clash.login = Some("ben".into());
    let result = store
        .update_user(default.id, ann.id, &clash, None, later)
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict { field: "login" })),
        "{result:?}"
    );
    assert!(store
        .update_user(other.id, ann.id, &changed, None, later)
        .await
        .unwrap()
        .is_none());
    store.touch_user(default.id, ann.id, later).await.unwrap();
    let touched = store
        .user(default.id, &UserLookup::Id(ann.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.last_request_at, Some(later));

    // Sessions: lookup, user switch, extension, expiry.
    let hour = Duration::from_secs(3600);
    store
        .insert_session(session("tok-app", default.id, None, hour))
        .await
        .unwrap();
    store
        .insert_session(session("tok-ann", default.id, Some(ann.id), hour))
        .await
        .unwrap();
    store
        .insert_session(session("tok-old", default.id, None, Duration::from_secs(1)))
        .await
        .unwrap();
    let s = store.session_by_token("tok-app").await.unwrap().unwrap();
    assert_eq!((s.app_id, s.user_id), (default.id, None));
    store
        .set_session_user("tok-app", Some(ben.id), later)
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_token("tok-app")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        Some(ben.id)
    );
    store
        .extend_session("tok-app", later, later + 2 * hour)
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_token("tok-app")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        later + 2 * hour
    );
    assert_eq!(
        store
            .count_active_sessions(t0() + Duration::from_secs(2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .delete_expired_sessions(t0() + Duration::from_secs(2))
            .await
            .unwrap(),
        1
    );
    assert!(store.delete_session("tok-app").await.unwrap());
    assert!(!store.delete_session("tok-app").await.unwrap());

    // Deleting a user takes their sessions; deleting an app takes everything it owns.
    assert!(store.delete_user(default.id, ann.id).await.unwrap());
    assert!(store.session_by_token("tok-ann").await.unwrap().is_none());
    assert!(!store.delete_user(default.id, ann.id).await.unwrap());
    assert_eq!(store.count_users().await.unwrap(), 2);
    store
        .insert_session(session("tok-other", other.id, None, hour))
        .await
        .unwrap();
    assert!(store.delete_app(other.id).await.unwrap());
    assert!(store.session_by_token("tok-other").await.unwrap().is_none());
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(!store.delete_app(other.id).await.unwrap());
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store("sqlite", dir.path()).await.unwrap();
    exercise(&store).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = open_store(
        &format!("sqlite://{}", dir.path().join("switchboard.db").display()),
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 1);
    store.close().await;
}

#[tokio::test]
async fn sqlite_uses_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store("sqlite", dir.path()).await.unwrap();
    store.close().await;
    // Header bytes 18 and 19 (file format write/read versions) are 2 in WAL mode.
    let header = std::fs::read(dir.path().join("switchboard.db")).unwrap();
    assert_eq!(&header[18..20], &[2, 2]);
}

#[tokio::test]
async fn unsupported_store_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let result = open_store("mysql://localhost/x", dir.path()).await;
    assert!(matches!(result, Err(StoreError::UnsupportedUrl(_))));
}

#[tokio::test]
async fn postgres_store() {
    let Some(admin_url) = std::env::var("SWITCHBOARD_TEST_PG_URL").ok() else {
        // A skipped PostgreSQL suite must not pass silently in CI.
        assert!(
            std::env::var("CI").is_err(),
            "CI must set SWITCHBOARD_TEST_PG_URL"
        );
        eprintln!("SWITCHBOARD_TEST_PG_URL unset: PostgreSQL store suite skipped");
        return;
    };
    let database = format!(
        "switchboard_test_{}_{}",
        std::process::id(),
        t0().unix_timestamp() % 1000
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {database}").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {database} TEMPLATE template0").as_str())
        .await
        .unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("SWITCHBOARD_TEST_PG_URL must name a database"),
    };
    let store = open_store(&url, std::path::Path::new(".")).await.unwrap();
    exercise(&store).await;
    store.close().await;
    admin
        .execute(format!("DROP DATABASE {database}").as_str())
        .await
        .unwrap();
}
