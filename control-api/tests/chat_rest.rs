//! `/chat/Dialog.json` and `/chat/Message.json` over HTTP: shapes, filters, receipts,
//! unread counts, deletion, access control and QuickBlox-shaped errors.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use common::{Response, TestApi};
use control_api::domain::chat::{ChatMessage, ChatNotifier, Dialog};
use serde_json::{json, Value};

struct Chat {
    api: TestApi,
    /// User ids and tokens of ann, ben, cat (and dan, in no dialog).
    ids: Vec<i64>,
    tokens: Vec<String>,
}

impl Chat {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let app_token = api.app_token().await;
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        for login in ["ann", "ben", "cat", "dan"] {
            let user = api.sign_up(&app_token, login, "").await;
            ids.push(user["id"].as_i64().unwrap());
            tokens.push(api.user_token(login, &format!("{login}-password")).await);
        }
        Self { api, ids, tokens }
    }

    fn token(&self, who: usize) -> Option<&str> {
        Some(self.tokens[who].as_str())
    }

    async fn create_dialog(&self, who: usize, form: &str) -> Response {
        self.api
            .form(Method::POST, "/chat/Dialog.json", self.token(who), form)
            .await
    }

    async fn group(&self, who: usize, name: &str, occupants: &[usize]) -> String {
        let list: Vec<String> = occupants.iter().map(|o| self.ids[*o].to_string()).collect();
        let r = self
            .create_dialog(
                who,
                &format!("type=2&name={name}&occupants_ids={}", list.join("%2C%20")),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["_id"].as_str().unwrap().to_string()
    }

    async fn post(&self, who: usize, body: Value) -> Response {
        self.api
            .json(Method::POST, "/chat/Message.json", self.token(who), &body)
            .await
    }

    async fn say(&self, who: usize, dialog: &str, text: &str) -> String {
        let r = self
            .post(who, json!({"chat_dialog_id": dialog, "message": text}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["_id"].as_str().unwrap().to_string()
    }

    async fn get(&self, who: usize, path: &str) -> Response {
        self.api.form(Method::GET, path, self.token(who), "").await
    }

    async fn history(&self, who: usize, dialog: &str, extra: &str) -> Response {
        self.get(
            who,
            &format!("/chat/Message.json?chat_dialog_id={dialog}&mark_as_read=0{extra}"),
        )
        .await
    }
}

fn ids_of(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn private_dialogs_are_one_per_pair() {
    let c = Chat::new().await;
    let ben = c.ids[1];
    let r = c
        .create_dialog(0, &format!("type=3&occupants_ids={ben}"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let d = &r.body;
    assert_eq!(d["type"], 3);
    assert_eq!(d["user_id"], c.ids[0]);
    assert_eq!(d["occupants_ids"], json!([c.ids[0], ben]));
    assert_eq!(d["xmpp_room_jid"], Value::Null);
    assert_eq!(d["unread_messages_count"], 0);
    assert_eq!(d["last_message"], Value::Null);
    let id = d["_id"].as_str().unwrap();
    assert_eq!(id.len(), 24);

    // The same pair, from either side: the same dialog.
    let again = c
        .create_dialog(1, &format!("type=3&occupants_ids={}", c.ids[0]))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["_id"], id);

    // Not with oneself, not with two others, not with strangers.
    for form in [
        format!("type=3&occupants_ids={}", c.ids[0]),
        format!("type=3&occupants_ids={ben},{}", c.ids[2]),
        "type=3&occupants_ids=99999".to_string(),
        "type=3".to_string(),
    ] {
        let r = c.create_dialog(0, &form).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{form}: {}",
            r.text
        );
        assert!(r.body["errors"]["occupants_ids"].is_array(), "{}", r.text);
    }
}

#[tokio::test]
async fn group_dialogs_carry_name_data_and_room_jid() {
    let c = Chat::new().await;
    let form = format!(
        "type=2&name=Team&photo=p.png&occupants_ids={}%2C%20{}&data%5Bclass_name%5D=Info&data%5Btopic%5D=x&is_join_required=1",
        c.ids[1], c.ids[2]
    );
    let r = c.create_dialog(0, &form).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let d = &r.body;
    let id = d["_id"].as_str().unwrap();
    assert_eq!(d["occupants_ids"], json!([c.ids[0], c.ids[1], c.ids[2]]));
    assert_eq!(d["name"], "Team");
    assert_eq!(d["photo"], "p.png");
    assert_eq!(d["data"], json!({"class_name": "Info", "topic": "x"}));
    assert_eq!(d["is_join_required"], 1);
    let app = c.api.app.id;
    assert_eq!(d["xmpp_room_jid"], format!("{app}_{id}@muc.localhost"));

    let shown = c.get(1, &format!("/chat/Dialog/{id}.json")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(shown.body["_id"], id);

    // Validation: type, name, occupants.
    for (form, field) in [
        ("name=x", "type"),
        ("type=7&name=x", "type"),
        ("type=2", "name"),
        ("type=2&name=x&occupants_ids=abc", "occupants_ids"),
        ("type=2&name=x&occupants_ids=424242", "occupants_ids"),
        ("type=2&name=x&is_join_required=maybe", "is_join_required"),
    ] {
        let r = c.create_dialog(0, form).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{form}: {}",
            r.text
        );
        assert!(r.body["errors"][field].is_array(), "{form}: {}", r.text);
    }
}

#[tokio::test]
async fn dialogs_list_filters_sorts_counts_and_pages() {
    let c = Chat::new().await;
    let a = c.group(0, "Alpha", &[1]).await;
    c.api.clock.advance(std::time::Duration::from_secs(10));
    let b = c.group(0, "Beta", &[2]).await;
    c.api.clock.advance(std::time::Duration::from_secs(1));
    let p = c
        .create_dialog(0, &format!("type=3&occupants_ids={}", c.ids[3]))
        .await;
    let p = p.body["_id"].as_str().unwrap().to_string();
    let public = c.create_dialog(2, "type=1&name=Lobby").await;
    let public = public.body["_id"].as_str().unwrap().to_string();
    c.say(1, &a, "hello").await;

    let all = c.get(0, "/chat/Dialog.json").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.body["total_entries"], 4);
    assert_eq!(all.body["limit"], 100);
    assert_eq!(all.body["skip"], 0);
    // The one with a message first.
    assert_eq!(ids_of(&all.body["items"])[0], a);
    assert_eq!(all.body["items"][0]["unread_messages_count"], 1);
    assert_eq!(all.body["items"][0]["last_message"], "hello");
    assert_eq!(all.body["items"][0]["last_message_user_id"], c.ids[1]);

    let groups = c
        .get(0, "/chat/Dialog.json?type[in]=2,3&sort_asc=created_at")
        .await;
    assert_eq!(
        ids_of(&groups.body["items"]),
        vec![a.clone(), b.clone(), p.clone()]
    );
    let named = c.get(0, "/chat/Dialog.json?name=Beta").await;
    assert_eq!(ids_of(&named.body["items"]), vec![b.clone()]);
    let ctn = c.get(0, "/chat/Dialog.json?name[ctn]=ph").await;
    assert_eq!(ids_of(&ctn.body["items"]), vec![a.clone()]);
    let later = c.api.clock_now().unix_timestamp() - 5;
    let recent = c
        .get(
            0,
            &format!("/chat/Dialog.json?created_at[gt]={later}&type=2"),
        )
        .await;
    assert_eq!(ids_of(&recent.body["items"]), vec![b.clone()]);
    // The message to Alpha moved its updated_at too.
    let touched = c
        .get(
            0,
            &format!("/chat/Dialog.json?updated_at[gt]={later}&type=2&sort_asc=name"),
        )
        .await;
    assert_eq!(ids_of(&touched.body["items"]), vec![a.clone(), b.clone()]);
    let with_ben = c
        .get(
            0,
            &format!("/chat/Dialog.json?occupants_ids[in]={}", c.ids[1]),
        )
        .await;
    assert_eq!(ids_of(&with_ben.body["items"]), vec![a.clone()]);
    let count = c.get(0, "/chat/Dialog.json?count=1&type=2").await;
    assert_eq!(count.body, json!({"items_count": 2}));
    let paged = c
        .get(
            0,
            "/chat/Dialog.json?sort_desc=created_at&limit=1&skip=1&type[in]=2,3",
        )
        .await;
    assert_eq!(paged.body["limit"], 1);
    assert_eq!(paged.body["total_entries"], 3);
    assert_eq!(paged.body["items"].as_array().unwrap().len(), 1);

    // Dan sees his private dialog and the public one, nothing else.
    let dan = c.get(3, "/chat/Dialog.json?sort_asc=_id").await;
    let mut seen = ids_of(&dan.body["items"]);
    seen.sort();
    let mut expected = vec![p.clone(), public.clone()];
    expected.sort();
    assert_eq!(seen, expected);

    for bad in [
        "/chat/Dialog.json?type[like]=1",
        "/chat/Dialog.json?type=x",
        "/chat/Dialog.json?sort_desc=password",
        "/chat/Dialog.json?limit=-3",
    ] {
        let r = c.get(0, bad).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn dialog_updates_follow_ownership() {
    let c = Chat::new().await;
    let d = c.group(0, "Team", &[1]).await;
    let path = format!("/chat/Dialog/{d}.json");
    let put = |who: usize, body: Value| {
        let path = path.clone();
        let c = &c;
        async move { c.api.json(Method::PUT, &path, c.token(who), &body).await }
    };
    let r = put(
        0,
        json!({"push_all":{"occupants_ids":[c.ids[2], c.ids[3]]},"name":"Renamed","photo":"x.png","data":{"class_name":"I","n":1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "Renamed");
    assert_eq!(r.body["data"], json!({"class_name":"I","n":1}));
    assert_eq!(
        r.body["occupants_ids"],
        json!([c.ids[0], c.ids[1], c.ids[2], c.ids[3]])
    );
    let r = put(0, json!({"pull_all":{"occupants_ids":[c.ids[3]]}})).await;
    assert_eq!(
        r.body["occupants_ids"],
        json!([c.ids[0], c.ids[1], c.ids[2]])
    );
    // Dan is out: he no longer sees it.
    assert_eq!(c.get(3, &path).await.status, StatusCode::NOT_FOUND);

    // Ben is not the owner: no renaming, no adding, no removing others; photo is fine.
    for body in [
        json!({"name":"Mine"}),
        json!({"push_all":{"occupants_ids":[c.ids[3]]}}),
        json!({"pull_all":{"occupants_ids":[c.ids[2]]}}),
    ] {
        let r = put(1, body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.text);
        assert!(r.body["errors"].is_array());
    }
    let r = put(1, json!({"photo":"ben.png"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Ben may leave.
    let r = put(1, json!({"pull_all":{"occupants_ids":[c.ids[1]]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(c.get(1, &path).await.status, StatusCode::NOT_FOUND);

    // Unknown users, blank names, private occupant changes.
    let r = put(0, json!({"push_all":{"occupants_ids":[777777]}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = put(0, json!({"name":"  "})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let p = c
        .create_dialog(0, &format!("type=3&occupants_ids={}", c.ids[1]))
        .await;
    let p = p.body["_id"].as_str().unwrap();
    let r = c
        .api
        .json(
            Method::PUT,
            &format!("/chat/Dialog/{p}.json"),
            c.token(0),
            &json!({"push_all":{"occupants_ids":[c.ids[2]]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Malformed JSON is a 400 with the QuickBlox shape.
    let r = c
        .api
        .request(
            Method::PUT,
            &path,
            &[
                ("content-type", "application/json"),
                ("qb-token", &c.tokens[0]),
            ],
            "{nope",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["errors"].is_object());
}

#[tokio::test]
async fn dialog_deletion_leaves_hides_or_deletes_for_all() {
    let c = Chat::new().await;
    let g = c.group(0, "Team", &[1, 2]).await;
    let p = c
        .create_dialog(0, &format!("type=3&occupants_ids={}", c.ids[1]))
        .await;
    let p = p.body["_id"].as_str().unwrap().to_string();
    let missing = "0123456789abcdef01234567";
    let del = |who: usize, ids: String, form: &'static str| {
        let c = &c;
        async move {
            c.api
                .form(
                    Method::DELETE,
                    &format!("/chat/Dialog/{ids}.json"),
                    c.token(who),
                    form,
                )
                .await
        }
    };
    // Forcing is the owner's.
    let r = del(1, g.clone(), "force=1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Without force, ben leaves the group and hides the private dialog.
    let r = del(1, format!("{g},{p},{missing}"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"SuccessfullyDeleted":{"ids":[g, p]},"NotFound":{"ids":[missing]}})
    );
    let ben = c.get(1, "/chat/Dialog.json").await;
    assert_eq!(ben.body["total_entries"], 0, "{}", ben.text);
    let group = c.get(0, &format!("/chat/Dialog/{g}.json")).await;
    assert_eq!(group.body["occupants_ids"], json!([c.ids[0], c.ids[2]]));
    // A new private message shows the dialog to ben again.
    c.say(0, &p, "still there?").await;
    let ben = c.get(1, "/chat/Dialog.json").await;
    assert_eq!(ids_of(&ben.body["items"]), vec![p.clone()]);
    assert_eq!(ben.body["items"][0]["unread_messages_count"], 1);
    // The owner deletes the group for everyone.
    let r = del(0, g.clone(), "force=1").await;
    assert_eq!(r.body["SuccessfullyDeleted"]["ids"], json!([g]));
    assert_eq!(
        c.get(2, &format!("/chat/Dialog/{g}.json")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn messages_flow_history_receipts_and_unread_counts() {
    let c = Chat::new().await;
    let d = c.group(0, "Team", &[1, 2]).await;
    let r = c
        .post(
            0,
            json!({"chat_dialog_id": d, "message": "hi all", "markable": 1,
                   "attachments": [{"id": "blob1", "type": "image", "url": "https://x/y", "size": 3}],
                   "color": "red", "meta": {"k": [1, 2]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let m = &r.body;
    assert_eq!(m["_id"].as_str().unwrap().len(), 24);
    assert_eq!(m["chat_dialog_id"], d);
    assert_eq!(m["message"], "hi all");
    assert_eq!(m["sender_id"], c.ids[0]);
    assert_eq!(m["recipient_id"], Value::Null);
    assert_eq!(m["markable"], 1);
    assert_eq!(m["read_ids"], json!([c.ids[0]]));
    assert_eq!(m["delivered_ids"], json!([c.ids[0]]));
    assert_eq!(m["date_sent"], c.api.clock_now().unix_timestamp());
    assert_eq!(
        m["attachments"],
        json!([{"id": "blob1", "type": "image", "url": "https://x/y", "size": 3}])
    );
    assert_eq!(m["color"], "red");
    assert_eq!(m["meta"], json!({"k": [1, 2]}));
    let first = m["_id"].as_str().unwrap().to_string();
    c.api.clock.advance(std::time::Duration::from_secs(5));
    let second = c.say(1, &d, "second").await;
    c.api.clock.advance(std::time::Duration::from_secs(5));
    let third = c.say(0, &d, "third").await;

    // Unread: cat has all three, ben one (ann's two minus his own... ann wrote two).
    let unread = c
        .get(2, &format!("/chat/Message/unread.json?chat_dialog_ids={d}"))
        .await;
    assert_eq!(unread.body, json!({"total": 3, d.clone(): 3}));
    let unread = c.get(1, "/chat/Message/unread.json").await;
    assert_eq!(unread.body, json!({"total": 2}));

    // History with mark_as_read=0 leaves counts alone; filters and sort.
    let h = c.history(2, &d, "").await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text);
    assert_eq!(
        ids_of(&h.body["items"]),
        vec![first.clone(), second.clone(), third.clone()]
    );
    assert_eq!(h.body["items"][0]["read"], 0);
    let h = c.history(2, &d, "&sort_desc=date_sent&limit=2").await;
    assert_eq!(
        ids_of(&h.body["items"]),
        vec![third.clone(), second.clone()]
    );
    assert_eq!(h.body["limit"], 2);
    let t = c.api.clock_now().unix_timestamp();
    let h = c.history(2, &d, &format!("&date_sent[lt]={t}")).await;
    assert_eq!(
        ids_of(&h.body["items"]),
        vec![first.clone(), second.clone()]
    );
    let h = c.history(2, &d, &format!("&sender_id={}", c.ids[1])).await;
    assert_eq!(ids_of(&h.body["items"]), vec![second.clone()]);
    let h = c.history(2, &d, "&count=1").await;
    assert_eq!(h.body, json!({"items_count": 3}));

    // Marking one read over PUT, one delivered.
    let r = c
        .api
        .form(
            Method::PUT,
            &format!("/chat/Message/{first}.json"),
            c.token(2),
            &format!("chat_dialog_id={d}&read=1"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.is_empty());
    let r = c
        .api
        .form(
            Method::PUT,
            &format!("/chat/Message/{second}.json"),
            c.token(2),
            "delivered=1",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = c.history(0, &d, "").await;
    let items = h.body["items"].as_array().unwrap();
    assert_eq!(items[0]["read_ids"], json!([c.ids[0], c.ids[2]]));
    assert_eq!(items[1]["delivered_ids"], json!([c.ids[1], c.ids[2]]));
    assert_eq!(items[1]["read_ids"], json!([c.ids[1]]));
    let dialog = c.get(2, &format!("/chat/Dialog/{d}.json")).await;
    assert_eq!(dialog.body["unread_messages_count"], 2);

    // Listing (default mark_as_read) reads the rest, and shows it.
    let h = c
        .get(2, &format!("/chat/Message.json?chat_dialog_id={d}"))
        .await;
    assert!(h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["read"] == 1));
    let unread = c
        .get(2, &format!("/chat/Message/unread.json?chat_dialog_ids={d}"))
        .await;
    assert_eq!(unread.body, json!({"total": 0, d.clone(): 0}));
    let dialog = c.get(2, &format!("/chat/Dialog/{d}.json")).await;
    assert_eq!(dialog.body["last_message"], "third");
    assert_eq!(dialog.body["last_message_id"], third);
    assert_eq!(dialog.body["last_message_date_sent"], t);
}

#[tokio::test]
async fn messages_are_edited_and_deleted_by_their_sender() {
    let c = Chat::new().await;
    let d = c.group(0, "Team", &[1]).await;
    let mine = c.say(0, &d, "typo").await;
    let theirs = c.say(1, &d, "reply").await;
    let put = |who: usize, id: &str, form: &str| {
        let (c, path, form) = (&c, format!("/chat/Message/{id}.json"), form.to_string());
        async move { c.api.form(Method::PUT, &path, c.token(who), &form).await }
    };
    let r = put(0, &mine, "message=fixed").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = put(0, &theirs, "message=hijack").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = put(0, "0123456789abcdef01234567", "read=1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = put(0, &mine, "chat_dialog_id=0123456789abcdef01234567&read=1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = put(0, &mine, "read=sometimes").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let h = c.history(1, &d, "").await;
    assert_eq!(h.body["items"][0]["message"], "fixed");

    let del = |who: usize, ids: String, form: &'static str| {
        let c = &c;
        async move {
            c.api
                .form(
                    Method::DELETE,
                    &format!("/chat/Message/{ids}.json"),
                    c.token(who),
                    form,
                )
                .await
        }
    };
    // Ben cannot delete ann's message for everyone; nothing is deleted.
    let r = del(1, format!("{mine},{theirs}"), "force=1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Ben deletes ann's message for himself.
    let r = del(1, mine.clone(), "").await;
    assert_eq!(
        r.body,
        json!({"SuccessfullyDeleted":{"ids":[mine]},"NotFound":{"ids":[]}})
    );
    assert_eq!(
        ids_of(&c.history(1, &d, "").await.body["items"]),
        vec![theirs.clone()]
    );
    assert_eq!(
        ids_of(&c.history(0, &d, "").await.body["items"]),
        vec![mine.clone(), theirs.clone()]
    );
    // Ben deletes his own for everyone; the dialog's last message falls back.
    let r = del(1, format!("{theirs},nothex"), "force=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"SuccessfullyDeleted":{"ids":[theirs]},"NotFound":{"ids":["nothex"]}})
    );
    assert_eq!(
        ids_of(&c.history(0, &d, "").await.body["items"]),
        vec![mine.clone()]
    );
    let dialog = c.get(0, &format!("/chat/Dialog/{d}.json")).await;
    assert_eq!(dialog.body["last_message_id"], mine);
    assert_eq!(dialog.body["last_message"], "fixed");
}

#[tokio::test]
async fn private_messages_by_recipient_and_validation() {
    let c = Chat::new().await;
    let ben = c.ids[1];
    let r = c
        .post(0, json!({"recipient_id": ben, "message": "psst"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["recipient_id"], ben);
    let dialog = r.body["chat_dialog_id"].as_str().unwrap().to_string();
    let list = c.get(1, "/chat/Dialog.json").await;
    assert_eq!(ids_of(&list.body["items"]), vec![dialog.clone()]);
    assert_eq!(list.body["items"][0]["type"], 3);

    for (body, field) in [
        (json!({"message": "nowhere"}), "chat_dialog_id"),
        (
            json!({"chat_dialog_id": dialog, "message": "  "}),
            "message",
        ),
        (
            json!({"chat_dialog_id": dialog, "message": "x", "attachments": "nope"}),
            "attachments",
        ),
        (
            json!({"chat_dialog_id": dialog, "message": "x", "markable": "yes"}),
            "markable",
        ),
        (
            json!({"recipient_id": "abc", "message": "x"}),
            "recipient_id",
        ),
        (
            json!({"recipient_id": c.ids[0], "message": "x"}),
            "occupants_ids",
        ),
    ] {
        let r = c.post(0, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert!(r.body["errors"][field].is_array(), "{body}: {}", r.text);
    }
    let r = c
        .api
        .request(
            Method::POST,
            "/chat/Message.json",
            &[
                ("content-type", "application/json"),
                ("qb-token", &c.tokens[0]),
            ],
            "[1,2]",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = c.get(0, "/chat/Message.json").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    // A form-encoded create works too.
    let r = c
        .api
        .form(
            Method::POST,
            "/chat/Message.json",
            c.token(1),
            &format!(
                "chat_dialog_id={dialog}&message=form&attachments%5B0%5D%5Btype%5D=audio&mood=ok"
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["attachments"], json!([{"type": "audio"}]));
    assert_eq!(r.body["mood"], "ok");
    assert_eq!(r.body["recipient_id"], c.ids[0]);
}

#[tokio::test]
async fn non_occupants_can_neither_read_nor_post() {
    let c = Chat::new().await;
    let g = c.group(0, "Secret", &[1]).await;
    let m = c.say(0, &g, "for members").await;
    // Dan (same app, not an occupant).
    let checks = [
        c.get(3, &format!("/chat/Dialog/{g}.json")).await,
        c.get(3, &format!("/chat/Message.json?chat_dialog_id={g}"))
            .await,
        c.post(3, json!({"chat_dialog_id": g, "message": "let me in"}))
            .await,
        c.api
            .json(
                Method::PUT,
                &format!("/chat/Dialog/{g}.json"),
                c.token(3),
                &json!({"name": "mine"}),
            )
            .await,
        c.api
            .form(
                Method::PUT,
                &format!("/chat/Message/{m}.json"),
                c.token(3),
                "read=1",
            )
            .await,
    ];
    for r in checks {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert!(r.body["errors"].is_object(), "{}", r.text);
    }
    let r = c
        .api
        .form(
            Method::DELETE,
            &format!("/chat/Message/{m}.json"),
            c.token(3),
            "force=1",
        )
        .await;
    assert_eq!(r.body["NotFound"]["ids"], json!([m]));
    let r = c
        .api
        .form(
            Method::DELETE,
            &format!("/chat/Dialog/{g}.json"),
            c.token(3),
            "force=1",
        )
        .await;
    assert_eq!(r.body["NotFound"]["ids"], json!([g]));
    let unread = c
        .get(3, &format!("/chat/Message/unread.json?chat_dialog_ids={g}"))
        .await;
    assert_eq!(unread.body, json!({"total": 0, g.clone(): 0}));
    // Still there for the members.
    assert_eq!(
        c.history(1, &g, "").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A user of another application sees nothing, even with the ids.
    let other = c.api.control.create_app("Other").await.unwrap();
    let app_token = c.api.app_token_for(&other).await;
    let stranger = c.api.sign_up(&app_token, "eve", "").await;
    assert!(stranger["id"].is_i64());
    let body = c.api.signed_session_body(
        &other,
        &[("user[login]", "eve"), ("user[password]", "eve-password")],
    );
    let session = c.api.form(Method::POST, "/session.json", None, &body).await;
    let eve = common::token_of(&session);
    for path in [
        format!("/chat/Dialog/{g}.json"),
        format!("/chat/Message.json?chat_dialog_id={g}"),
    ] {
        let r = c.api.form(Method::GET, &path, Some(&eve), "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let list = c
        .api
        .form(Method::GET, "/chat/Dialog.json", Some(&eve), "")
        .await;
    assert_eq!(list.body["total_entries"], 0);
    let r = c
        .api
        .json(
            Method::POST,
            "/chat/Dialog.json",
            Some(&eve),
            &json!({"type": 3, "occupants_ids": [c.ids[0]]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

#[tokio::test]
async fn public_dialogs_are_open_to_the_app() {
    let c = Chat::new().await;
    let lobby = c.create_dialog(0, "type=1&name=Lobby").await;
    assert_eq!(lobby.status, StatusCode::CREATED, "{}", lobby.text);
    let lobby = lobby.body["_id"].as_str().unwrap().to_string();
    // Dan is no occupant but may read and post.
    let m = c.say(3, &lobby, "hello lobby").await;
    let h = c
        .get(2, &format!("/chat/Message.json?chat_dialog_id={lobby}"))
        .await;
    assert_eq!(ids_of(&h.body["items"]), vec![m.clone()]);
    assert_eq!(h.body["items"][0]["read_ids"], json!([c.ids[2], c.ids[3]]));
    // Only the owner renames; anyone may join.
    let path = format!("/chat/Dialog/{lobby}.json");
    let r = c
        .api
        .json(Method::PUT, &path, c.token(3), &json!({"name": "Dan's"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = c
        .api
        .json(
            Method::PUT,
            &path,
            c.token(3),
            &json!({"push_all": {"occupants_ids": [c.ids[3]]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["occupants_ids"], json!([c.ids[0], c.ids[3]]));
    // A non-owner who is no occupant cannot delete it.
    let r = c.api.form(Method::DELETE, &path, c.token(2), "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn chat_needs_a_user_session() {
    let c = Chat::new().await;
    let app_token = c.api.app_token().await;
    for (method, path) in [
        (Method::GET, "/chat/Dialog.json"),
        (Method::POST, "/chat/Dialog.json"),
        (
            Method::GET,
            "/chat/Message.json?chat_dialog_id=0123456789abcdef01234567",
        ),
        (Method::POST, "/chat/Message.json"),
        (Method::GET, "/chat/Message/unread.json"),
        (Method::DELETE, "/chat/Dialog/0123456789abcdef01234567.json"),
    ] {
        let r = c.api.form(method.clone(), path, Some(&app_token), "").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert_eq!(r.body, json!({"errors": ["Forbidden. Need user."]}));
        let r = c.api.form(method, path, None, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.text);
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, Vec<i64>)>>);

impl ChatNotifier for Recorder {
    fn message_posted(&self, message: &ChatMessage, dialog: &Dialog) {
        let occupants = dialog.occupants.iter().map(|u| u.0).collect();
        self.0
            .lock()
            .unwrap()
            .push((message.id.clone(), dialog.id.clone(), occupants));
    }
}

#[tokio::test]
async fn send_to_chat_reaches_the_notifier() {
    let c = Chat::new().await;
    let recorder = Arc::new(Recorder::default());
    c.api.control.set_chat_notifier(recorder.clone());
    let d = c.group(0, "Team", &[1]).await;
    c.say(0, &d, "quiet").await;
    let r = c
        .post(
            0,
            json!({"chat_dialog_id": d, "message": "loud", "send_to_chat": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            r.body["_id"].as_str().unwrap().to_string(),
            d,
            vec![c.ids[0], c.ids[1]]
        )]
    );
    // send_to_chat is no custom parameter.
    assert!(r.body.get("send_to_chat").is_none());
}
