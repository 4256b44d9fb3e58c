//! Push notifications: subscriptions, events addressed by user id and tag, delivery
//! through the `PushSender` (a scripted one here), dead-token removal and retries.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use base64::Engine;
use common::TestApi;
use control_api::domain::push::{Channel, PushMessage, PushOutcome, PushSender};
use control_api::{http, ControlPlane};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

/// Records every attempt; answers from a per-token script, `Delivered` once it runs out.
#[derive(Default)]
struct ScriptedSender {
    sent: Mutex<Vec<PushMessage>>,
    script: Mutex<HashMap<String, VecDeque<PushOutcome>>>,
}

#[async_trait]
impl PushSender for ScriptedSender {
    async fn send(&self, message: &PushMessage) -> PushOutcome {
        self.sent.lock().unwrap().push(message.clone());
        self.script
            .lock()
            .unwrap()
            .get_mut(&message.token)
            .and_then(VecDeque::pop_front)
            .unwrap_or(PushOutcome::Delivered)
    }
}

struct PushApi {
    api: TestApi,
    sender: Arc<ScriptedSender>,
    alice: String,
    bob: String,
    carol: String,
    ids: [i64; 3],
}

async fn push_api() -> PushApi {
    let mut api = TestApi::new().await;
    let sender = Arc::new(ScriptedSender::default());
    api.control = api.control.clone().with_push_sender(sender.clone());
    api.router = http::app(api.control.clone(), Registry::default());
    let app_token = api.app_token().await;
    let a = api.sign_up(&app_token, "alice", "").await;
    let b = api.sign_up(&app_token, "bob", "vip,staff").await;
    let c = api.sign_up(&app_token, "carol", "staff").await;
    PushApi {
        alice: api.user_token("alice", "alice-password").await,
        bob: api.user_token("bob", "bob-password").await,
        carol: api.user_token("carol", "carol-password").await,
        ids: [
            a["id"].as_i64().unwrap(),
            b["id"].as_i64().unwrap(),
            c["id"].as_i64().unwrap(),
        ],
        api,
        sender,
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl PushApi {
    async fn subscribe(
        &self,
        token: &str,
        channel: &str,
        udid: &str,
        push_token: &str,
        env: &str,
    ) -> Value {
        let body = format!(
            "device[platform]=android&device[udid]={udid}&notification_channel={channel}\
             &push_token[client_identification_sequence]={push_token}&push_token[environment]={env}"
        );
        let r = self
            .api
            .form(Method::POST, "/subscriptions.json", Some(token), &body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body[0]["subscription"].clone()
    }

    async fn event(&self, token: &str, event: Value) -> (StatusCode, Value) {
        let r = self
            .api
            .json(
                Method::POST,
                "/events.json",
                Some(token),
                &json!({ "event": event }),
            )
            .await;
        (r.status, r.body)
    }

    fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self
            .sender
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.token.clone())
            .collect();
        tokens.sort();
        tokens
    }
}

#[tokio::test]
async fn subscriptions_are_created_listed_replaced_and_deleted() {
    let p = push_api().await;
    let s = p
        .subscribe(&p.bob, "gcm", "u1", "tok1", "development")
        .await;
    assert_eq!(s["notification_channel"]["name"], "gcm");
    assert_eq!(
        s["device"],
        json!({"udid": "u1", "platform": {"name": "android"}})
    );
    // The same device and channel again replaces the token.
    p.subscribe(&p.bob, "gcm", "u1", "tok2", "development")
        .await;
    p.subscribe(&p.bob, "apns", "u2", "tok3", "production")
        .await;
    let r = p
        .api
        .form(Method::GET, "/subscriptions.json", Some(&p.bob), "")
        .await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", r.text);
    let r = p
        .api
        .form(Method::GET, "/subscriptions.json", Some(&p.alice), "")
        .await;
    assert_eq!(r.body, json!([]));

    let id = list[0]["subscription"]["id"].as_i64().unwrap();
    let r = p
        .api
        .form(
            Method::DELETE,
            &format!("/subscriptions/{id}.json"),
            Some(&p.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "only the owner deletes");
    let r = p
        .api
        .form(
            Method::DELETE,
            &format!("/subscriptions/{id}.json"),
            Some(&p.bob),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = p
        .api
        .form(
            Method::POST,
            "/subscriptions.json",
            Some(&p.bob),
            "notification_channel=mpns&push_token[environment]=test",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = p
        .api
        .form(
            Method::POST,
            "/subscriptions.json",
            Some(&p.bob),
            "notification_channel=gcm&push_token[environment]=test",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in [
        "device[udid]",
        "push_token[client_identification_sequence]",
        "push_token[environment]",
    ] {
        assert!(r.body["errors"][field].is_array(), "{field}: {}", r.text);
    }
    let app_token = p.api.app_token().await;
    let r = p
        .api
        .form(Method::GET, "/subscriptions.json", Some(&app_token), "")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn events_reach_the_recipients_devices_in_their_environment() {
    let p = push_api().await;
    p.subscribe(&p.bob, "gcm", "b1", "bob-android", "development")
        .await;
    p.subscribe(&p.bob, "apns", "b2", "bob-iphone", "development")
        .await;
    p.subscribe(&p.bob, "apns", "b3", "bob-prod", "production")
        .await;
    p.subscribe(&p.carol, "gcm", "c1", "carol-android", "development")
        .await;

    let payload = json!({"message": "hello", "ios_badge": 2, "thread": "t1"}).to_string();
    let (status, body) = p
        .event(
            &p.alice,
            json!({"notification_type": "push", "environment": "development",
                                "user": {"ids": [p.ids[1]]}, "message": b64(&payload)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["event"]["sent"], 2);
    assert_eq!(body["event"]["event_type"], "one_shot");
    assert_eq!(body["event"]["notification_channel"]["name"], "universal");
    assert_eq!(p.tokens(), ["bob-android", "bob-iphone"]);
    let sent = p.sender.sent.lock().unwrap().clone();
    assert!(sent.iter().all(|m| m.alert == "hello"));
    assert_eq!(
        sent[0].data,
        json!({"ios_badge": 2, "thread": "t1"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(
        sent.iter()
            .find(|m| m.token == "bob-iphone")
            .unwrap()
            .channel,
        Channel::Apns
    );

    // push_type narrows to one channel; a plain-text message is the alert.
    p.sender.sent.lock().unwrap().clear();
    let (_, body) = p
        .event(&p.alice, json!({"environment": "development", "push_type": "gcm",
                                "user": {"ids": format!("{},{}", p.ids[1], p.ids[2])}, "message": b64("hi")}))
        .await;
    assert_eq!(body["event"]["sent"], 2, "{body}");
    assert_eq!(p.tokens(), ["bob-android", "carol-android"]);
    assert_eq!(p.sender.sent.lock().unwrap()[0].alert, "hi");
}

#[tokio::test]
async fn events_address_users_by_tags() {
    let p = push_api().await;
    p.subscribe(&p.alice, "gcm", "a", "alice-t", "production")
        .await;
    p.subscribe(&p.bob, "gcm", "b", "bob-t", "production").await;
    p.subscribe(&p.carol, "gcm", "c", "carol-t", "production")
        .await;
    let send = |tags: Value| {
        let p = &p;
        async move {
            p.sender.sent.lock().unwrap().clear();
            let (status, body) = p
                .event(&p.alice, json!({"environment": "production", "user": {"tags": tags}, "message": b64("x")}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            p.tokens()
        }
    };
    assert_eq!(send(json!({"any": ["staff"]})).await, ["bob-t", "carol-t"]);
    assert_eq!(send(json!({"all": ["staff", "vip"]})).await, ["bob-t"]);
    assert_eq!(
        send(json!({"any": "staff", "exclude": "vip"})).await,
        ["carol-t"]
    );
}

#[tokio::test]
async fn dead_tokens_are_removed_and_retryable_failures_retried() {
    // A provider's Retry-After, short so the test does not wait (one retry uses the
    // default first backoff instead).
    const SHORT: Duration = Duration::from_millis(5);
    let p = push_api().await;
    p.subscribe(&p.bob, "gcm", "b1", "dead", "development")
        .await;
    p.subscribe(&p.bob, "apns", "b2", "flaky", "development")
        .await;
    p.subscribe(&p.bob, "apns_voip", "b3", "down", "development")
        .await;
    {
        let mut script = p.sender.script.lock().unwrap();
        script.insert("dead".into(), VecDeque::from([PushOutcome::Unregistered]));
        script.insert(
            "flaky".into(),
            VecDeque::from([PushOutcome::Retry(None), PushOutcome::Retry(Some(SHORT))]),
        );
        script.insert(
            "down".into(),
            VecDeque::from(vec![PushOutcome::Retry(Some(SHORT)); 10]),
        );
    }
    let (status, body) = p
        .event(
            &p.alice,
            json!({"environment": "development", "user": {"ids": [p.ids[1]]}, "message": b64("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["event"]["sent"], 1, "{body}");
    assert_eq!(body["event"]["failed"], 2, "{body}");
    let attempts = |token: &str| {
        p.sender
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.token == token)
            .count()
    };
    assert_eq!(attempts("dead"), 1);
    assert_eq!(attempts("flaky"), 3);
    assert_eq!(attempts("down"), 4, "the first attempt and three retries");

    let r = p
        .api
        .form(Method::GET, "/subscriptions.json", Some(&p.bob), "")
        .await;
    let udids: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscription"]["device"]["udid"].clone())
        .collect();
    assert_eq!(
        udids,
        [json!("b2"), json!("b3")],
        "the dead token's subscription is gone"
    );

    let metrics = p.api.request_raw(Method::GET, "/metrics", &[]).await.text;
    for line in [
        "switchboard_push_sent_total{provider=\"fcm\",result=\"unregistered\"} 1",
        "switchboard_push_sent_total{provider=\"apns\",result=\"delivered\"} 1",
        "switchboard_push_sent_total{provider=\"apns\",result=\"retries_exhausted\"} 1",
        "switchboard_push_retries_total 5",
        "switchboard_push_events_total 1",
        "switchboard_push_subscriptions 2",
    ] {
        assert!(metrics.contains(line), "missing {line:?}");
    }
}

#[tokio::test]
async fn events_are_listed_shown_and_deleted_by_their_owner_and_validated() {
    let p = push_api().await;
    let (_, first) = p
        .event(
            &p.alice,
            json!({"environment": "development", "user": {"ids": [p.ids[1]]}, "message": b64("1")}),
        )
        .await;
    p.event(
        &p.alice,
        json!({"environment": "development", "user": {"ids": [p.ids[2]]}, "message": b64("2")}),
    )
    .await;
    let r = p
        .api
        .form(Method::GET, "/events.json", Some(&p.alice), "")
        .await;
    assert_eq!(r.body["total_entries"], 2, "{}", r.text);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let id = first["event"]["id"].as_i64().unwrap();
    let r = p
        .api
        .form(
            Method::GET,
            &format!("/events/{id}.json"),
            Some(&p.alice),
            "",
        )
        .await;
    assert_eq!(r.body["event"]["message"], b64("1"));
    let r = p
        .api
        .form(Method::GET, &format!("/events/{id}.json"), Some(&p.bob), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = p
        .api
        .form(
            Method::DELETE,
            &format!("/events/{id}.json"),
            Some(&p.bob),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = p
        .api
        .form(
            Method::DELETE,
            &format!("/events/{id}.json"),
            Some(&p.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = p
        .api
        .form(Method::GET, "/events.json", Some(&p.alice), "")
        .await;
    assert_eq!(r.body["total_entries"], 1);

    let (status, body) = p
        .event(
            &p.alice,
            json!({"environment": "staging", "event_type": "fixed_date", "push_type": "mpns",
                                "user": {}, "message": "not base64!"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["environment", "date", "push_type", "message", "user"] {
        assert!(body["errors"][field].is_array(), "{field}: {body}");
    }
    let (status, _) = p
        .event(
            &p.carol,
            json!({"environment": "development", "user": {"ids": "x"}, "message": b64("1")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn without_a_provider_pushes_fail_and_are_counted() {
    let api = TestApi::new().await;
    let control: ControlPlane = api.control.clone();
    let app_token = api.app_token().await;
    let bob = api.sign_up(&app_token, "bob", "").await;
    let event = control
        .create_event(
            api.app.id,
            control_api::domain::model::UserId(bob["id"].as_i64().unwrap()),
            control_api::domain::push::NewEvent {
                environment: "development".into(),
                message: b64("x"),
                recipients: control_api::domain::push::Recipients {
                    ids: vec![control_api::domain::model::UserId(
                        bob["id"].as_i64().unwrap(),
                    )],
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (event.sent, event.failed),
        (0, 0),
        "no devices, nothing to do"
    );
}

impl PushApi {
    fn now(&self) -> i64 {
        self.api.clock_now().unix_timestamp()
    }

    async fn show(&self, token: &str, id: i64) -> Value {
        let r = self
            .api
            .form(Method::GET, &format!("/events/{id}.json"), Some(token), "")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["event"].clone()
    }

    fn step(&self, secs: u64) {
        self.api.clock.advance(Duration::from_secs(secs));
    }

    fn messages(&self) -> Vec<PushMessage> {
        self.sender.sent.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_fixed_date_event_is_delivered_once_when_due() {
    let p = push_api().await;
    p.subscribe(&p.bob, "gcm", "b1", "bob-android", "development")
        .await;
    let (status, body) = p
        .event(
            &p.alice,
            json!({"event_type": "fixed_date", "date": p.now() + 60, "name": "reminder",
                   "environment": "development", "user": {"ids": [p.ids[1]]}, "message": b64("later")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["event"]["id"].as_i64().unwrap();
    assert_eq!(body["event"]["active"], true);
    assert_eq!(body["event"]["name"], "reminder");
    assert!(p.messages().is_empty(), "nothing before the date");

    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 0);
    p.step(59);
    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 0);
    p.step(1);
    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 1);
    assert_eq!(p.tokens(), ["bob-android"]);
    assert_eq!(p.messages()[0].alert, "later");
    p.step(3600);
    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 0);
    assert_eq!(p.messages().len(), 1, "delivered once");

    let event = p.show(&p.alice, id).await;
    assert_eq!(event["active"], false);
    assert_eq!(event["occured_count"], 1);
    assert_eq!(
        (event["sent"].as_i64(), event["failed"].as_i64()),
        (Some(1), Some(0))
    );

    // A deleted scheduled event is never delivered.
    let (_, body) = p
        .event(
            &p.alice,
            json!({"event_type": "fixed_date", "date": p.now() + 10,
                   "environment": "development", "user": {"ids": [p.ids[1]]}, "message": b64("never")}),
        )
        .await;
    let id = body["event"]["id"].as_i64().unwrap();
    let r = p
        .api
        .form(
            Method::DELETE,
            &format!("/events/{id}.json"),
            Some(&p.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    p.step(10);
    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 0);
    assert_eq!(p.messages().len(), 1);
}

#[tokio::test]
async fn a_period_date_event_repeats_until_its_end_and_skips_what_an_outage_missed() {
    const DAY: u64 = 86_400;
    let p = push_api().await;
    p.subscribe(&p.bob, "gcm", "b1", "bob-android", "production")
        .await;
    let start = p.now() + 10;
    let (status, body) = p
        .event(
            &p.alice,
            json!({"event_type": "period_date", "date": start, "period": DAY,
                   "end_date": start + 2 * DAY as i64 + 5,
                   "environment": "production", "user": {"ids": [p.ids[1]]}, "message": b64("daily")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["event"]["id"].as_i64().unwrap();
    p.step(10);
    for _ in 0..3 {
        assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 1);
        p.step(DAY);
    }
    assert_eq!(
        p.api.control.deliver_due_events().await.unwrap(),
        0,
        "ended"
    );
    assert_eq!(p.messages().len(), 3);
    // Days passed: the morning's session expired long ago.
    let alice = p.api.user_token("alice", "alice-password").await;
    let event = p.show(&alice, id).await;
    assert_eq!(
        (event["active"].clone(), event["occured_count"].clone()),
        (json!(false), json!(3))
    );

    // Down for five weeks: one delivery on return, the next one a week later.
    let (_, body) = p
        .event(
            &alice,
            json!({"event_type": "period_date", "date": p.now() + 1, "period": 7 * DAY,
                   "environment": "production", "user": {"ids": [p.ids[1]]}, "message": b64("weekly")}),
        )
        .await;
    let id = body["event"]["id"].as_i64().unwrap();
    p.step(35 * DAY + 1);
    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 1);
    assert_eq!(p.api.control.deliver_due_events().await.unwrap(), 0);
    let alice = p.api.user_token("alice", "alice-password").await;
    let event = p.show(&alice, id).await;
    assert_eq!(event["active"], true);
    // The occurrence due right now was the one delivered; the next is a period later.
    assert_eq!(event["date"].as_i64().unwrap(), p.now() + 7 * DAY as i64);
}

#[tokio::test]
async fn concurrent_schedulers_deliver_each_occurrence_once() {
    let p = push_api().await;
    p.subscribe(&p.bob, "gcm", "b1", "bob-android", "development")
        .await;
    for n in 0..5 {
        p.event(
            &p.alice,
            json!({"event_type": "fixed_date", "date": p.now() + 5,
                   "environment": "development", "user": {"ids": [p.ids[1]]}, "message": b64(&n.to_string())}),
        )
        .await;
    }
    p.step(5);
    // Two nodes' schedulers over one database.
    let other_node = p.api.control.clone();
    let (one, two) = tokio::join!(
        p.api.control.deliver_due_events(),
        other_node.deliver_due_events()
    );
    assert_eq!(one.unwrap() + two.unwrap(), 5);
    assert_eq!(p.messages().len(), 5);
}

#[tokio::test]
async fn scheduled_events_are_validated() {
    let p = push_api().await;
    let base = || json!({"environment": "development", "user": {"ids": [1]}, "message": b64("x")});
    let with = |extra: Value| {
        let mut event = base();
        for (k, v) in extra.as_object().unwrap() {
            event[k] = v.clone();
        }
        event
    };
    for (event, field) in [
        (with(json!({"event_type": "fixed_date"})), "date"),
        (
            with(json!({"event_type": "fixed_date", "date": p.now() - 3600})),
            "date",
        ),
        (
            with(json!({"event_type": "fixed_date", "date": "tomorrow"})),
            "date",
        ),
        (
            with(json!({"event_type": "period_date", "date": p.now() + 5, "period": 5})),
            "period",
        ),
        (
            with(
                json!({"event_type": "period_date", "date": p.now() + 50, "period": 86400,
                        "end_date": p.now() + 40}),
            ),
            "end_date",
        ),
        (with(json!({"event_type": "weekly"})), "event_type"),
    ] {
        let (status, body) = p.event(&p.alice, event.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{event}: {body}");
        assert!(body["errors"][field].is_array(), "{field}: {body}");
    }
}

#[tokio::test]
async fn offline_chat_pushes_reach_alert_devices_unless_the_dialog_is_muted() {
    use control_api::domain::push::OfflineChatPush;
    let p = push_api().await;
    p.subscribe(&p.bob, "gcm", "b1", "bob-android", "production")
        .await;
    p.subscribe(&p.bob, "apns_voip", "b2", "bob-voip", "production")
        .await;
    let r = p
        .api
        .form(
            Method::POST,
            "/chat/Dialog.json",
            Some(&p.alice),
            &format!("type=3&occupants_ids={}", p.ids[1]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let dialog = r.body["_id"].as_str().unwrap().to_string();
    let push = |text: &str| OfflineChatPush {
        app: p.api.app.id,
        dialog_id: dialog.clone(),
        message_id: "m1".into(),
        sender: control_api::domain::model::UserId(p.ids[0]),
        recipients: vec![control_api::domain::model::UserId(p.ids[1])],
        text: text.into(),
    };
    let report = p
        .api
        .control
        .push_offline_message(push("hi bob"))
        .await
        .unwrap();
    assert_eq!(report.delivered(), 1);
    let sent = p.messages();
    assert_eq!(p.tokens(), ["bob-android"], "never a VoIP push for chat");
    assert_eq!(
        sent[0].alert, "alice Example: hi bob",
        "the full name first"
    );
    assert_eq!(sent[0].data["dialog_id"], dialog.as_str());
    assert_eq!(sent[0].data["user_id"], p.ids[0].to_string());

    // Notifications are per user and dialog: bob switches them off.
    let path = format!("/chat/Dialog/{dialog}/notifications.json");
    let r = p.api.form(Method::GET, &path, Some(&p.bob), "").await;
    assert_eq!(
        r.body,
        json!({"notifications": {"enabled": 1}}),
        "{}",
        r.text
    );
    let r = p
        .api
        .form(Method::PUT, &path, Some(&p.bob), "enabled=0")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.api.form(Method::GET, &path, Some(&p.bob), "").await;
    assert_eq!(r.body["notifications"]["enabled"], 0);
    let report = p
        .api
        .control
        .push_offline_message(push("muted"))
        .await
        .unwrap();
    assert!(report.outcomes.is_empty());
    assert_eq!(p.messages().len(), 1);

    // Switched on again, JSON this time.
    let r = p
        .api
        .json(Method::PUT, &path, Some(&p.bob), &json!({"enabled": 1}))
        .await;
    assert_eq!(r.body["notifications"]["enabled"], 1, "{}", r.text);
    p.api
        .control
        .push_offline_message(push("again"))
        .await
        .unwrap();
    assert_eq!(p.messages().len(), 2);

    // Not an occupant, or a bad value.
    let r = p.api.form(Method::GET, &path, Some(&p.carol), "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = p
        .api
        .form(Method::PUT, &path, Some(&p.carol), "enabled=0")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = p
        .api
        .form(Method::PUT, &path, Some(&p.bob), "enabled=maybe")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn incoming_calls_reach_voip_devices_only() {
    use control_api::domain::calls::{CallType, VoipIntent};
    use control_api::domain::model::UserId;
    let p = push_api().await;
    p.subscribe(&p.bob, "apns", "b1", "bob-alert", "production")
        .await;
    p.subscribe(&p.bob, "apns_voip", "b2", "bob-voip", "production")
        .await;
    let report = p
        .api
        .control
        .push_incoming_call(VoipIntent {
            app: p.api.app.id,
            session_id: "s-1".into(),
            caller: UserId(p.ids[0]),
            callee: UserId(p.ids[1]),
            call_type: CallType::Video,
        })
        .await
        .unwrap();
    assert_eq!(report.delivered(), 1);
    let sent = p.messages();
    assert_eq!(p.tokens(), ["bob-voip"]);
    assert_eq!(sent[0].channel, Channel::ApnsVoip);
    assert_eq!(sent[0].data["sessionID"], "s-1");
    assert_eq!(sent[0].data["ios_voip"], "1");
    assert_eq!(sent[0].alert, "Incoming call from alice Example");

    let text = p.api.request_raw(Method::GET, "/metrics", &[]).await.text;
    assert!(
        text.contains(r#"switchboard_push_triggers_total{source="call"} 1"#),
        "{text}"
    );
}
