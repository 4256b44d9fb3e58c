//! Pushes the XMPP server starts: a chat message (1:1 or group) to a user with no online
//! resource, and an incoming call for an offline callee (VoIP push through the push module).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{Server, READ_LIMIT};
use control_api::domain::calls::PushVoipPusher;
use control_api::domain::chat::{DialogType, NewDialog};
use control_api::domain::model::UserId;
use control_api::domain::push::{Channel, NewSubscription, PushMessage, PushOutcome, PushSender};
use signaling::XmppConfig;
use tokio::sync::mpsc;

/// Hands every push to the test as it is sent.
struct ChannelSender(mpsc::UnboundedSender<PushMessage>);

#[async_trait]
impl PushSender for ChannelSender {
    async fn send(&self, message: &PushMessage) -> PushOutcome {
        let _ = self.0.send(message.clone());
        PushOutcome::Delivered
    }
}

async fn server() -> (Server, mpsc::UnboundedReceiver<PushMessage>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::start_with_push(
        XmppConfig {
            max_stanza_bytes: common::MAX_STANZA,
            ..XmppConfig::default()
        },
        Arc::new(ChannelSender(tx)),
    )
    .await;
    (server, rx)
}

async fn subscribe(server: &Server, user: UserId, channel: &str, token: &str) {
    server
        .control
        .create_subscription(
            server.app.id,
            user,
            NewSubscription {
                channel: channel.into(),
                platform: "ios".into(),
                udid: format!("{token}-device"),
                token: token.into(),
                environment: "production".into(),
                bundle_id: None,
            },
        )
        .await
        .unwrap();
}

async fn next_push(rx: &mut mpsc::UnboundedReceiver<PushMessage>) -> PushMessage {
    tokio::time::timeout(READ_LIMIT, rx.recv())
        .await
        .expect("a push within the read limit")
        .expect("sender alive")
}

#[tokio::test]
async fn a_chat_message_to_an_offline_user_is_pushed_to_their_alert_devices() {
    let (server, mut pushes) = server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    // Subscribed first, so a wrongly chosen VoIP device would be pushed first.
    subscribe(&server, bob, "apns_voip", "bob-voip").await;
    subscribe(&server, bob, "apns", "bob-phone").await;
    let mut a = server.client(alice, "alice-password").await;
    a.send(&format!(
        "<message to='{}' type='chat' id='6b051f5767de101fc1000001'><body>are you there?</body>\
         <extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>",
        server.jid(bob)
    ))
    .await;
    let push = next_push(&mut pushes).await;
    assert_eq!(push.token, "bob-phone");
    assert_eq!(push.channel, Channel::Apns);
    assert_eq!(push.alert, "alice: are you there?");
    assert_eq!(push.data["message_id"], "6b051f5767de101fc1000001");
    assert!(push.data["dialog_id"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn a_group_message_is_pushed_to_occupants_with_no_resource_online() {
    let (server, mut pushes) = server().await;
    let (alice, bob, carol) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("carol").await,
    );
    // Carol's device first: were she pushed wrongly, hers would be the first push.
    subscribe(&server, carol, "gcm", "carol-android").await;
    subscribe(&server, bob, "gcm", "bob-android").await;
    let (dialog, _) = server
        .control
        .create_dialog(
            server.app.id,
            alice,
            NewDialog {
                kind: DialogType::Group,
                occupants: vec![bob, carol],
                name: Some("team".into()),
                photo: None,
                data: None,
                is_join_required: None,
            },
        )
        .await
        .unwrap();
    // Carol is online (not in the room): she reads it from history, no push.
    let _carol = server.client(carol, "carol-password").await;
    let mut a = server.client(alice, "alice-password").await;
    let room = format!("{}_{}@muc.localhost", server.app.id.0, dialog.id);
    a.send(&format!(
        "<presence id='j1' to='{room}/{}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>",
        alice.0
    ))
    .await;
    a.until("presence").await;
    a.send(&format!(
        "<message to='{room}' type='groupchat' id='g1'><body>standup in 5</body>\
         <extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>"
    ))
    .await;
    let push = next_push(&mut pushes).await;
    assert_eq!(push.token, "bob-android");
    assert_eq!(push.alert, "alice: standup in 5");
    assert_eq!(push.data["dialog_id"], dialog.id.as_str());
}

#[tokio::test]
async fn an_incoming_call_for_an_offline_user_is_a_voip_push() {
    let (server, mut pushes) = server().await;
    server
        .ctx
        .calls
        .set_voip_pusher(Arc::new(PushVoipPusher::new(server.control.clone())));
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    // The alert device first: it must be skipped for a call.
    subscribe(&server, bob, "apns", "bob-phone").await;
    subscribe(&server, bob, "apns_voip", "bob-voip").await;
    let mut a = server.client(alice, "alice-password").await;
    a.send(&format!(
        "<message id='c1' to='{}' type='headline' xmlns='jabber:client'>\
         <extraParams xmlns='jabber:client'><sessionID>call-1</sessionID><callType>2</callType>\
         <callerID>{}</callerID><opponentsIDs><opponentID>{}</opponentID></opponentsIDs>\
         <sdp>v=0</sdp><platform>web</platform><moduleIdentifier>WebRTCVideoChat</moduleIdentifier>\
         <signalType>call</signalType></extraParams></message>",
        server.jid(bob),
        alice.0,
        bob.0
    ))
    .await;
    let push = next_push(&mut pushes).await;
    assert_eq!(push.token, "bob-voip");
    assert_eq!(push.channel, Channel::ApnsVoip);
    assert_eq!(push.data["sessionID"], "call-1");
    assert_eq!(push.data["conferenceType"], "2");
    assert_eq!(push.alert, "Incoming call from alice");
}
