//! Call history: the call store on SQLite and PostgreSQL (`SWITCHBOARD_TEST_PG_URL`), and
//! `GET /calls/history.json` over HTTP.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use control_api::domain::calls::{CallOutcome, CallRecord, CallStore, CallType};
use control_api::domain::model::{AppId, UserId};
use control_api::domain::store::NewApp;
use control_api::{open_store, Store};
use time::OffsetDateTime;

fn call(app: AppId, session: &str, caller: i64, opponents: &[i64], minute: i64) -> CallRecord {
    let started_at = common::start_time() + time::Duration::minutes(minute);
    CallRecord {
        app,
        session_id: session.into(),
        caller: UserId(caller),
        opponents: opponents.iter().copied().map(UserId).collect(),
        call_type: CallType::Video,
        outcome: CallOutcome::Ended,
        started_at,
        answered_at: Some(started_at + time::Duration::seconds(5)),
        ended_at: started_at + time::Duration::seconds(65),
    }
}

async fn exercise<S: Store + CallStore>(store: &S) {
    let app = store
        .insert_app(NewApp {
            name: "calls".into(),
            auth_key: "k".into(),
            auth_secret: "s".into(),
            account_key: "a".into(),
            is_default: false,
            created_at: common::start_time(),
        })
        .await
        .unwrap()
        .id;
    let first = call(app, "s1", 1, &[2, 3], 0);
    let mut second = call(app, "s2", 2, &[1], 1);
    second.outcome = CallOutcome::Missed;
    second.answered_at = None;
    second.call_type = CallType::Audio;
    store.insert_call(&first).await.unwrap();
    store.insert_call(&second).await.unwrap();
    // Writing the same call again replaces it.
    store.insert_call(&first).await.unwrap();

    let (calls, total) = store.list_calls(app, UserId(1), 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(calls, vec![second.clone(), first.clone()], "newest first");
    let (calls, total) = store.list_calls(app, UserId(3), 10, 0).await.unwrap();
    assert_eq!((calls, total), (vec![first.clone()], 1));
    let (page, _) = store.list_calls(app, UserId(1), 1, 1).await.unwrap();
    assert_eq!(page, vec![first.clone()]);
    let (none, total) = store.list_calls(app, UserId(4), 10, 0).await.unwrap();
    assert!(none.is_empty() && total == 0);
    let (other_app, _) = store
        .list_calls(AppId(app.0 + 1), UserId(1), 10, 0)
        .await
        .unwrap();
    assert!(other_app.is_empty());
    assert!(store.delete_app(app).await.unwrap());
    let (gone, _) = store.list_calls(app, UserId(1), 10, 0).await.unwrap();
    assert!(gone.is_empty(), "calls go with their app");
}

#[tokio::test]
async fn sqlite_call_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store("sqlite", dir.path()).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_call_store() {
    let Some(db) = common::PgDatabase::create("calls").await else {
        return;
    };
    let store = open_store(&db.url, std::path::Path::new("."))
        .await
        .unwrap();
    exercise(&store).await;
    store.close().await;
    db.drop().await;
}

#[tokio::test]
async fn users_read_their_own_call_history() {
    let api = TestApi::new().await;
    let app_token = api.app_token().await;
    let alice = api.sign_up(&app_token, "alice", "").await["id"]
        .as_i64()
        .unwrap();
    let bob = api.sign_up(&app_token, "bob", "").await["id"]
        .as_i64()
        .unwrap();
    api.sign_up(&app_token, "carol", "").await;
    api.control
        .record_call(&call(api.app.id, "s1", alice, &[bob], 0))
        .await
        .unwrap();

    let token = api.user_token("bob", "bob-password").await;
    let r = api
        .form(Method::GET, "/calls/history.json", Some(&token), "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total_entries"], 1);
    let item = &r.body["items"][0];
    assert_eq!(item["session_id"], "s1");
    assert_eq!(item["caller_id"], alice);
    assert_eq!(item["opponents_ids"][0], bob);
    assert_eq!(item["call_type"], 1);
    assert_eq!(item["state"], "ended");
    assert_eq!(item["duration"], 60);
    let start: OffsetDateTime = common::start_time();
    assert_eq!(item["started_at"], start.unix_timestamp());

    // Someone else's calls are not visible.
    let token = api.user_token("carol", "carol-password").await;
    let r = api
        .form(Method::GET, "/calls/history.json", Some(&token), "")
        .await;
    assert_eq!(r.body["total_entries"], 0, "{}", r.text);

    // Bad paging and application sessions are refused.
    let r = api
        .form(Method::GET, "/calls/history.json?limit=0", Some(&token), "")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = api
        .form(
            Method::GET,
            "/calls/history.json?limit=500",
            Some(&token),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = api
        .form(Method::GET, "/calls/history.json", Some(&app_token), "")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}
