//! The chat tables, run against both engines like `store.rs` (SQLite in a temp dir, the
//! PostgreSQL named by `SWITCHBOARD_TEST_PG_URL`), then the chat domain functions the XMPP
//! server calls, over the SQLite store with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use control_api::domain::chat::query::{ChatSort, DialogField, MessageField};
use control_api::domain::chat::{
    Attachment, ChatMessage, ChatStore, Dialog, DialogQuery, DialogType, MessageQuery,
    NewChatMessage, Receipt,
};
use control_api::domain::model::{AppId, UserId, UserProfile};
use control_api::domain::store::NewApp;
use control_api::store::SqlStore;
use control_api::{
    open_store, ControlConfig, ControlPlane, DomainError, ManualClock, Store, StoreError,
};
use serde_json::json;
use sqlx::{Connection, Executor};
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-11-26 12:00:00 UTC)
}

async fn user(store: &SqlStore, app: AppId, login: &str) -> UserId {
    let profile = UserProfile {
        login: Some(login.into()),
        ..UserProfile::default()
    };
    store
        .insert_user(app, &profile, "hash", t0())
        .await
        .unwrap()
        .id
}

fn dialog(id: &str, app: AppId, kind: DialogType, occupants: &[UserId]) -> Dialog {
    Dialog {
        id: id.into(),
        app_id: app,
        kind,
        name: Some(format!("dialog {id}")),
        photo: None,
        user_id: occupants[0],
        occupants: occupants.to_vec(),
        data: Some(json!({"class_name": "Info", "n": 1})),
        is_join_required: Some(false),
        created_at: t0(),
        updated_at: t0(),
        last_message: None,
        last_message_date_sent: None,
        last_message_user_id: None,
        last_message_id: None,
    }
}

fn message(id: &str, dialog: &str, sender: UserId, date_sent: i64) -> ChatMessage {
    let mut custom = serde_json::Map::new();
    custom.insert("k".into(), json!("v"));
    ChatMessage {
        id: id.into(),
        dialog_id: dialog.into(),
        sender_id: sender,
        recipient_id: None,
        body: format!("body {id}"),
        attachments: vec![Attachment {
            fields: json!({"type": "image", "id": "b1"})
                .as_object()
                .cloned()
                .unwrap(),
        }],
        custom,
        markable: true,
        date_sent,
        read_ids: vec![sender],
        delivered_ids: vec![sender],
        created_at: t0(),
        updated_at: t0(),
    }
}

fn dialog_query() -> DialogQuery {
    DialogQuery::parse(
        &[],
        ChatSort {
            field: DialogField::CreatedAt,
            descending: false,
        },
    )
    .unwrap()
}

fn message_query() -> MessageQuery {
    MessageQuery::parse(
        &[],
        ChatSort {
            field: MessageField::DateSent,
            descending: false,
        },
    )
    .unwrap()
}

const D1: &str = "aaaaaaaaaaaaaaaaaaaaaaa1";
const D2: &str = "aaaaaaaaaaaaaaaaaaaaaaa2";
const M1: &str = "bbbbbbbbbbbbbbbbbbbbbbb1";
const M2: &str = "bbbbbbbbbbbbbbbbbbbbbbb2";
const M3: &str = "bbbbbbbbbbbbbbbbbbbbbbb3";

async fn exercise(store: &SqlStore) {
    let app = store
        .insert_app(NewApp {
            name: "chat".into(),
            auth_key: "k".into(),
            auth_secret: "s".into(),
            account_key: "a".into(),
            is_default: true,
            created_at: t0(),
        })
        .await
        .unwrap()
        .id;
    let (ann, ben, cat) = (
        user(store, app, "ann").await,
        user(store, app, "ben").await,
        user(store, app, "cat").await,
    );
    assert_eq!(
        store
            .existing_users(app, &[ann, UserId(9999), cat])
            .await
            .unwrap(),
        vec![ann, cat]
    );

    // Dialogs: one private dialog per pair, group occupants in order.
    let group = dialog(D1, app, DialogType::Group, &[ann, ben, cat]);
    store.insert_dialog(&group).await.unwrap();
    let private = dialog(D2, app, DialogType::Private, &[ben, ann]);
    store.insert_dialog(&private).await.unwrap();
    let twin = dialog(
        "aaaaaaaaaaaaaaaaaaaaaaa3",
        app,
        DialogType::Private,
        &[ann, ben],
    );
    assert!(matches!(
        store.insert_dialog(&twin).await,
        Err(StoreError::Conflict {
            field: "occupants_ids"
        })
    ));
    assert_eq!(store.dialog(app, D1).await.unwrap().unwrap(), group);
    assert!(store.dialog(AppId(app.0 + 1), D1).await.unwrap().is_none());
    assert_eq!(
        store
            .private_dialog_of(app, ann, ben)
            .await
            .unwrap()
            .unwrap()
            .id,
        D2
    );
    assert!(store
        .private_dialog_of(app, ann, cat)
        .await
        .unwrap()
        .is_none());
    let (listed, total) = store.list_dialogs(app, cat, &dialog_query()).await.unwrap();
    assert_eq!((listed.len(), total), (1, 1));
    store.hide_dialog(app, D2, ben, true).await.unwrap();
    let (_, total) = store.list_dialogs(app, ben, &dialog_query()).await.unwrap();
    assert_eq!(total, 1);

    // Messages: state rows, last message, unhiding, unread counts.
    store
        .insert_message(app, &message(M1, D1, ann, 100), &[ann, ben, cat])
        .await
        .unwrap();
    store
        .insert_message(app, &message(M2, D1, ben, 101), &[ann, ben, cat])
        .await
        .unwrap();
    store
        .insert_message(app, &message(M3, D2, ann, 102), &[ann, ben])
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_message(app, &message(M1, D1, ann, 103), &[ann])
            .await,
        Err(StoreError::Conflict { field: "_id" })
    ));
    let (_, total) = store.list_dialogs(app, ben, &dialog_query()).await.unwrap();
    assert_eq!(total, 2, "a new message shows the hidden dialog again");
    let d1 = store.dialog(app, D1).await.unwrap().unwrap();
    assert_eq!(d1.last_message_id.as_deref(), Some(M2));
    assert_eq!(d1.last_message_date_sent, Some(101));
    assert_eq!(d1.last_message_user_id, Some(ben));
    let fetched = store.messages(app, &[M1.into()]).await.unwrap();
    let mut expected = message(M1, D1, ann, 100);
    assert_eq!(fetched, vec![expected.clone()]);
    assert_eq!(
        store.unread_counts(app, cat, None).await.unwrap(),
        vec![(D1.to_string(), 2)]
    );
    assert_eq!(
        store.unread_counts(app, ben, None).await.unwrap(),
        vec![(D1.to_string(), 1), (D2.to_string(), 1)]
    );

    // Receipts: delivered, then read; all-in-dialog; upsert for a non-holder.
    let ids = [M1.to_string()];
    store
        .mark_messages(app, cat, D1, Some(&ids), Receipt::Delivered)
        .await
        .unwrap();
    expected.delivered_ids = vec![ann, cat];
    assert_eq!(
        store.messages(app, &ids).await.unwrap(),
        vec![expected.clone()]
    );
    store
        .mark_messages(app, cat, D1, Some(&ids), Receipt::Read)
        .await
        .unwrap();
    expected.read_ids = vec![ann, cat];
    assert_eq!(
        store.messages(app, &ids).await.unwrap(),
        vec![expected.clone()]
    );
    // A delivered receipt never unreads.
    store
        .mark_messages(app, cat, D1, Some(&ids), Receipt::Delivered)
        .await
        .unwrap();
    assert_eq!(
        store.messages(app, &ids).await.unwrap(),
        vec![expected.clone()]
    );
    assert_eq!(
        store
            .mark_messages(app, cat, D1, None, Receipt::Read)
            .await
            .unwrap(),
        1
    );
    assert!(store
        .unread_counts(app, cat, None)
        .await
        .unwrap()
        .is_empty());

    // History as one user sees it, with filters and paging.
    let page = store
        .list_messages(app, ben, D1, &message_query())
        .await
        .unwrap();
    let total = store
        .count_messages(app, ben, D1, &message_query())
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(page[0].id, M1);
    assert_eq!(page[1].id, M2);
    let q = MessageQuery::parse(
        &[
            ("date_sent[gt]".into(), "100".into()),
            ("sort_desc".into(), "date_sent".into()),
        ],
        ChatSort {
            field: MessageField::DateSent,
            descending: false,
        },
    )
    .unwrap();
    let page = store.list_messages(app, ben, D1, &q).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(store.count_messages(app, ben, D1, &q).await.unwrap(), 1);
    assert_eq!(page[0].id, M2);
    store.delete_messages_for(app, ben, &ids).await.unwrap();
    let page = store
        .list_messages(app, ben, D1, &message_query())
        .await
        .unwrap();
    let total = store
        .count_messages(app, ben, D1, &message_query())
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 1));
    let total = store
        .count_messages(app, ann, D1, &message_query())
        .await
        .unwrap();
    assert_eq!(total, 2);

    // Edits and deletion for everyone keep last_message right.
    store
        .update_message_body(app, M2, "edited", t0())
        .await
        .unwrap();
    let d1 = store.dialog(app, D1).await.unwrap().unwrap();
    assert_eq!(d1.last_message.as_deref(), Some("edited"));
    store.delete_messages(app, &[M2.into()]).await.unwrap();
    let d1 = store.dialog(app, D1).await.unwrap().unwrap();
    assert_eq!(d1.last_message_id.as_deref(), Some(M1));
    assert_eq!(
        d1.last_message.as_deref(),
        Some("body bbbbbbbbbbbbbbbbbbbbbbb1")
    );
    assert!(store.messages(app, &[M2.into()]).await.unwrap().is_empty());

    // Occupant changes keep order and drop a leaver's state.
    let mut updated = d1.clone();
    updated.occupants = vec![ann, cat];
    updated.name = Some("renamed".into());
    store.update_dialog(&updated, &[ben]).await.unwrap();
    assert_eq!(store.dialog(app, D1).await.unwrap().unwrap(), updated);
    assert!(store
        .unread_counts(app, ben, Some(&[D1.into()]))
        .await
        .unwrap()
        .is_empty());

    // Offline queue: capped, oldest dropped, taken once.
    for i in 0..5 {
        let dropped = store
            .push_offline(
                app,
                cat,
                &format!("<m{i}/>"),
                t0() + Duration::from_secs(i),
                3,
            )
            .await
            .unwrap();
        assert_eq!(dropped, u64::from(i >= 3));
    }
    let taken = store.take_offline(app, cat).await.unwrap();
    let stanzas: Vec<&str> = taken.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(stanzas, vec!["<m2/>", "<m3/>", "<m4/>"]);
    assert_eq!(taken[0].1, t0() + Duration::from_secs(2));
    assert!(store.take_offline(app, cat).await.unwrap().is_empty());

    // Deleting a dialog takes its messages; deleting the app takes everything.
    assert!(store.delete_dialog(app, D2).await.unwrap());
    assert!(!store.delete_dialog(app, D2).await.unwrap());
    assert!(store.messages(app, &[M3.into()]).await.unwrap().is_empty());
    store
        .push_offline(app, ann, "<x/>", t0(), 10)
        .await
        .unwrap();
    assert!(store.delete_app(app).await.unwrap());
    assert!(store.dialog(app, D1).await.unwrap().is_none());
    assert!(store.take_offline(app, ann).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_chat_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store("sqlite", dir.path()).await.unwrap();
    exercise(&store).await;
    group_commit(&store).await;
    dialog_visibility(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_chat_store() {
    let Some(admin_url) = std::env::var("SWITCHBOARD_TEST_PG_URL").ok() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set SWITCHBOARD_TEST_PG_URL"
        );
        eprintln!("SWITCHBOARD_TEST_PG_URL unset: PostgreSQL chat store suite skipped");
        return;
    };
    let database = format!("switchboard_chat_test_{}", std::process::id());
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
    group_commit(&store).await;
    dialog_visibility(&store).await;
    store.close().await;
    admin
        // FORCE: a pool connection that saw a failed transaction may still be closing.
        .execute(format!("DROP DATABASE {database} WITH (FORCE)").as_str())
        .await
        .unwrap();
}

/// A user's dialog list: the application's public dialogs and the user's own that they did
/// not hide, each once (a public dialog they occupy too), never another application's.
async fn dialog_visibility(store: &SqlStore) {
    let mut apps = Vec::new();
    for name in ["visible", "other"] {
        let app = store
            .insert_app(NewApp {
                name: name.into(),
                auth_key: format!("{name}-k"),
                auth_secret: "s".into(),
                account_key: format!("{name}-a"),
                is_default: false,
                created_at: t0(),
            })
            .await
            .unwrap()
            .id;
        apps.push(app);
    }
    let (app, other) = (apps[0], apps[1]);
    let (ann, ben, cat) = (
        user(store, app, "ann").await,
        user(store, app, "ben").await,
        user(store, app, "cat").await,
    );
    let stranger = user(store, other, "dan").await;
    // Dialog n is "ccc…c{n}"; the list shows each by its last three characters.
    let id = |n: u8| format!("ccccccccccccccccccccccc{n}");
    let dialogs = [
        (1, app, DialogType::Public, vec![ann]),
        (2, app, DialogType::Public, vec![cat]),
        (3, app, DialogType::Group, vec![ann, ben]),
        (4, app, DialogType::Group, vec![ben, cat]),
        (5, app, DialogType::Private, vec![ann, cat]),
        (6, app, DialogType::Private, vec![ann, ben]),
        (7, other, DialogType::Public, vec![stranger]),
    ];
    for (n, app, kind, occupants) in &dialogs {
        store
            .insert_dialog(&dialog(&id(*n), *app, *kind, occupants))
            .await
            .unwrap();
    }
    store.hide_dialog(app, &id(6), ann, true).await.unwrap();
    let (listed, total) = store.list_dialogs(app, ann, &dialog_query()).await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|d| &d.id[21..]).collect();
    ids.sort();
    assert_eq!(ids, ["cc1", "cc2", "cc3", "cc5"]);
    assert_eq!(total, 4);
    let occupants = |id: &str| {
        listed
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .occupants
            .clone()
    };
    assert_eq!(occupants(&id(3)), [ann, ben], "occupants in their order");
    assert_eq!(occupants(&id(2)), [cat]);
    // A page holds its part; the total counts every match, also past the end.
    for (skip, limit, expect_len) in [("1", "2", 2), ("3", "10", 1), ("10", "10", 0)] {
        let q = DialogQuery::parse(
            &[("skip".into(), skip.into()), ("limit".into(), limit.into())],
            ChatSort {
                field: DialogField::CreatedAt,
                descending: false,
            },
        )
        .unwrap();
        let (page, total) = store.list_dialogs(app, ann, &q).await.unwrap();
        assert_eq!(
            (page.len(), total),
            (expect_len, 4),
            "skip {skip} limit {limit}"
        );
    }
    let (listed, total) = store
        .list_dialogs(other, stranger, &dialog_query())
        .await
        .unwrap();
    assert_eq!((listed.len(), total), (1, 1));
    assert_eq!(listed[0].id, id(7));
}

/// Messages posted at once share transactions: each still gets its own outcome (a taken
/// id or a missing dialog fails only that message), and every stored one is complete.
async fn group_commit(store: &SqlStore) {
    let app = store
        .insert_app(NewApp {
            name: "batch".into(),
            auth_key: "k-batch".into(),
            auth_secret: "s".into(),
            account_key: "a-batch".into(),
            is_default: false,
            created_at: t0(),
        })
        .await
        .unwrap()
        .id;
    let (ann, ben) = (user(store, app, "ann").await, user(store, app, "ben").await);
    const DA: &str = "bbbbbbbbbbbbbbbbbbbbbbd1";
    const DB: &str = "bbbbbbbbbbbbbbbbbbbbbbd2";
    const NOWHERE: &str = "bbbbbbbbbbbbbbbbbbbbbbd9";
    for id in [DA, DB] {
        store
            .insert_dialog(&dialog(id, app, DialogType::Group, &[ann, ben]))
            .await
            .unwrap();
    }
    // 40 messages into two dialogs, one id twice, one into a dialog that does not exist.
    let mut planned: Vec<ChatMessage> = (0..40)
        .map(|i| {
            let dialog = if i % 2 == 0 { DA } else { DB };
            message(&format!("cccccccccccccccccccc{i:04}"), dialog, ann, 100 + i)
        })
        .collect();
    planned.push(message("cccccccccccccccccccc0007", DA, ann, 200));
    planned.push(message("cccccccccccccccccccc9999", NOWHERE, ann, 200));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, m) in planned.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move { (i, store.insert_message(app, &m, &[ann, ben]).await) });
    }
    let mut outcomes = vec![None; planned.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, outcome) = done.unwrap();
        outcomes[i] = Some(outcome.map_err(|e| matches!(e, StoreError::Conflict { .. })));
    }
    let outcomes: Vec<Result<(), bool>> = outcomes.into_iter().map(Option::unwrap).collect();
    // Of the two with one id, exactly one is stored; the other is a conflict.
    assert_eq!(
        [&outcomes[7], &outcomes[40]]
            .iter()
            .filter(|o| o.is_ok())
            .count(),
        1
    );
    assert!([&outcomes[7], &outcomes[40]].contains(&&Err(true)));
    assert_eq!(
        outcomes[41],
        Err(false),
        "no dialog: an error, not a conflict"
    );
    for (i, outcome) in outcomes.iter().enumerate().take(40) {
        assert!(i == 7 || outcome.is_ok(), "message {i}: {outcome:?}");
    }
    let ids: Vec<String> = planned[..40].iter().map(|m| m.id.clone()).collect();
    let stored = store.messages(app, &ids).await.unwrap();
    assert_eq!(stored.len(), 40);
    assert!(stored.iter().all(|m| m.read_ids == vec![ann]));
    // The duplicate id lives in DB (message 7) or in DA (the late one), whichever won.
    let late_won = i64::from(outcomes[40].is_ok());
    let unread = store.unread_counts(app, ben, None).await.unwrap();
    assert_eq!(
        unread,
        vec![
            (DA.to_string(), 20 + late_won),
            (DB.to_string(), 20 - late_won)
        ]
    );
    for id in [DA, DB] {
        let d = store.dialog(app, id).await.unwrap().unwrap();
        let last = d.last_message_id.expect("a last message");
        assert!(ids.contains(&last) && stored.iter().any(|m| m.id == last && m.dialog_id == id));
    }
    // After a failed batch the writer takes a fresh connection and goes on.
    let after = message("cccccccccccccccccccc0100", DA, ann, 300);
    store
        .insert_message(app, &after, &[ann, ben])
        .await
        .unwrap();
    let d = store.dialog(app, DA).await.unwrap().unwrap();
    assert_eq!(d.last_message_id.as_deref(), Some(after.id.as_str()));
    assert!(store.delete_app(app).await.unwrap());
}

/// The domain functions the XMPP server calls.
struct Domain {
    control: ControlPlane,
    clock: Arc<ManualClock>,
    app: AppId,
    users: Vec<UserId>,
    _dir: tempfile::TempDir,
}

async fn domain() -> Domain {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store("sqlite", dir.path()).await.unwrap());
    let clock = Arc::new(ManualClock::new(t0()));
    let config = ControlConfig {
        chat_offline_cap: 2,
        ..ControlConfig::default()
    };
    let control = ControlPlane::new(store.clone(), clock.clone(), config);
    let (app, _) = control.ensure_default_app().await.unwrap();
    let mut users = Vec::new();
    for login in ["ann", "ben", "cat"] {
        users.push(user(&store, app.id, login).await);
    }
    Domain {
        control,
        clock,
        app: app.id,
        users,
        _dir: dir,
    }
}

fn text(body: &str) -> NewChatMessage {
    NewChatMessage {
        body: body.into(),
        save_to_history: true,
        ..NewChatMessage::default()
    }
}

#[tokio::test]
async fn xmpp_messages_land_in_history_with_their_ids() {
    let d = domain().await;
    let (ann, ben, cat) = (d.users[0], d.users[1], d.users[2]);
    // 1:1 without a dialog id: the private dialog is created, then reused.
    let first = NewChatMessage {
        id: Some("6b051f5767de101fc1000000".into()),
        recipient_id: Some(ben),
        markable: true,
        ..text("hello")
    };
    let (m, dialog) = d
        .control
        .post_chat_message(d.app, ann, first.clone())
        .await
        .unwrap();
    assert_eq!(m.id, "6b051f5767de101fc1000000");
    assert_eq!(m.recipient_id, Some(ben));
    assert_eq!(m.date_sent, t0().unix_timestamp());
    assert_eq!(dialog.kind, DialogType::Private);
    assert_eq!(dialog.occupants, vec![ann, ben]);
    assert_eq!(dialog.last_message_id.as_deref(), Some(m.id.as_str()));
    // The same client id twice is an error, not a second row.
    let again = d.control.post_chat_message(d.app, ann, first).await;
    assert!(
        matches!(again, Err(DomainError::Validation(_))),
        "{again:?}"
    );
    let bad_id = NewChatMessage {
        id: Some("not-an-object-id".into()),
        recipient_id: Some(ben),
        ..text("x")
    };
    assert!(matches!(
        d.control.post_chat_message(d.app, ann, bad_id).await,
        Err(DomainError::Validation(_))
    ));
    assert_eq!(
        d.control.private_dialog(d.app, ben, ann).await.unwrap().id,
        dialog.id
    );
    // Not saved: returned, not stored.
    d.clock.advance(Duration::from_secs(3));
    let (volatile, _) = d
        .control
        .post_chat_message(
            d.app,
            ben,
            NewChatMessage {
                dialog_id: Some(dialog.id.clone()),
                save_to_history: false,
                date_sent: Some(42),
                ..text("typing-ish")
            },
        )
        .await
        .unwrap();
    assert_eq!(volatile.date_sent, 42);
    let q = message_query();
    let history = d
        .control
        .list_messages(d.app, ben, &dialog.id, &q, false)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, m.id);

    // Receipts from XMPP.
    assert_eq!(
        d.control.unread_counts(d.app, ben, None).await.unwrap(),
        vec![(dialog.id.clone(), 1)]
    );
    d.control
        .mark_delivered(d.app, ben, &dialog.id, std::slice::from_ref(&m.id))
        .await
        .unwrap();
    d.control
        .mark_read(d.app, ben, &dialog.id, &[])
        .await
        .unwrap();
    assert!(d
        .control
        .unread_counts(d.app, ben, None)
        .await
        .unwrap()
        .is_empty());
    let history = d
        .control
        .list_messages(d.app, ann, &dialog.id, &q, false)
        .await
        .unwrap();
    assert_eq!(history[0].read_ids, vec![ann, ben]);

    // Cat is no occupant: cannot see, post or mark.
    assert!(matches!(
        d.control.dialog_for_user(d.app, cat, &dialog.id).await,
        Err(DomainError::NotFound)
    ));
    let intrude = NewChatMessage {
        dialog_id: Some(dialog.id.clone()),
        ..text("hi")
    };
    assert!(matches!(
        d.control.post_chat_message(d.app, cat, intrude).await,
        Err(DomainError::NotFound)
    ));
    assert!(matches!(
        d.control.mark_read(d.app, cat, &dialog.id, &[]).await,
        Err(DomainError::NotFound)
    ));
    assert!(matches!(
        d.control.dialog_for_user(d.app, ann, "../../etc").await,
        Err(DomainError::NotFound)
    ));
}

#[tokio::test]
async fn chat_login_takes_a_token_or_the_password() {
    let d = domain().await;
    let ann = d.users[0];
    let store_user = d.control.chat_user_exists(d.app, ann).await.unwrap();
    assert!(store_user);
    assert!(!d
        .control
        .chat_user_exists(d.app, UserId(4242))
        .await
        .unwrap());
    // Password "hash" is no argon2 hash: a password login fails cleanly.
    assert!(matches!(
        d.control.authenticate_chat_user(d.app, ann, "hash").await,
        Err(DomainError::Unauthorized)
    ));
    assert!(matches!(
        d.control.authenticate_chat_user(d.app, ann, "").await,
        Err(DomainError::Unauthorized)
    ));
}

#[tokio::test]
async fn offline_queue_is_capped_per_user() {
    let d = domain().await;
    let ben = d.users[1];
    for i in 0..3 {
        d.control
            .queue_offline(d.app, ben, format!("<message id='{i}'/>"))
            .await
            .unwrap();
        d.clock.advance(Duration::from_secs(1));
    }
    let taken = d.control.take_offline(d.app, ben).await.unwrap();
    assert_eq!(
        taken,
        vec![
            (
                "<message id='1'/>".to_string(),
                t0() + Duration::from_secs(1)
            ),
            (
                "<message id='2'/>".to_string(),
                t0() + Duration::from_secs(2)
            ),
        ]
    );
    assert!(d.control.take_offline(d.app, ben).await.unwrap().is_empty());
}
