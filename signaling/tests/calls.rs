//! QuickBlox WebRTC mesh call signaling over real loopback XMPP connections: routing to
//! every resource, call tracking and history, the mesh limit, refusals, VoIP push intents
//! for offline callees, and XEP-0215 ICE servers.

mod common;

use std::sync::{Arc, Mutex};

use common::{Client, Server};
use control_api::domain::calls::{CallOutcome, VoipIntent, VoipPusher};
use control_api::domain::model::UserId;
use minidom::Element;
use signaling::core::framing::NS_CLIENT;
use signaling::XmppConfig;

const SESSION: &str = "66f30993-2f1b-44ec-a298-ba149ea484b9";

/// A signal as the SDK sends it (PROTOCOLS.md §7), to one opponent.
fn signal(
    to: &str,
    id: &str,
    kind: &str,
    caller: UserId,
    opponents: &[UserId],
    session: &str,
) -> String {
    let opponents: String = opponents
        .iter()
        .map(|o| format!("<opponentID>{}</opponentID>", o.0))
        .collect();
    let sdp = if matches!(kind, "call" | "accept") {
        "<sdp>v=0\r\no=- 1 2 IN IP4 127.0.0.1</sdp>"
    } else {
        ""
    };
    format!(
        "<message id='{id}' to='{to}' type='headline' xmlns='jabber:client'>\
         <extraParams xmlns='jabber:client'><sessionID>{session}</sessionID><callType>1</callType>\
         <callerID>{}</callerID><opponentsIDs>{opponents}</opponentsIDs>{sdp}\
         <moduleIdentifier>WebRTCVideoChat</moduleIdentifier><signalType>{kind}</signalType>\
         <platform>web</platform></extraParams></message>",
        caller.0
    )
}

fn signal_type(message: &Element) -> Option<String> {
    common::extra(message, "signalType")
}

fn error_condition(stanza: &Element) -> Option<String> {
    stanza
        .get_child("error", NS_CLIENT)?
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_string())
}

/// A ping round trip: everything the client sent before it has been handled.
async fn settle(client: &mut Client) -> Vec<Element> {
    client
        .send("<iq type='get' id='settle'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let mut seen = Vec::new();
    loop {
        let element = client.until_any().await;
        if element.name() == "iq" && element.attr("id") == Some("settle") {
            return seen;
        }
        seen.push(element);
    }
}

#[derive(Default)]
struct RecordingPusher(Mutex<Vec<VoipIntent>>);

impl VoipPusher for RecordingPusher {
    fn incoming_call(&self, intent: VoipIntent) {
        self.0.lock().unwrap().push(intent);
    }
}

#[tokio::test]
async fn signals_reach_every_resource_live_and_the_call_is_tracked_to_history() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client_on(alice, "web").await;
    let mut phone = server.client_on(bob, "phone").await;
    let mut laptop = server.client_on(bob, "laptop").await;

    let call = signal(
        &server.jid(bob),
        "6b05207e591e616f75000001",
        "call",
        alice,
        &[bob],
        SESSION,
    );
    a.send(&call).await;
    for device in [&mut phone, &mut laptop] {
        let got = device.until("message").await;
        assert_eq!(got.attr("type"), Some("headline"));
        assert_eq!(got.attr("id"), Some("6b05207e591e616f75000001"));
        assert_eq!(got.attr("from"), Some(a.jid.as_str()));
        assert_eq!(signal_type(&got).as_deref(), Some("call"));
        assert!(got.get_child("delay", "urn:xmpp:delay").is_none());
        assert!(common::extra(&got, "sdp").unwrap().starts_with("v=0"));
    }
    assert_eq!(server.ctx.calls.live(), 1);

    // The caller re-sends `call` until answered: routed again, still one call.
    a.send(&call.replace("75000001", "75000002")).await;
    for device in [&mut phone, &mut laptop] {
        assert_eq!(
            signal_type(&device.until("message").await).as_deref(),
            Some("call")
        );
    }
    assert_eq!(server.ctx.calls.live(), 1);

    laptop
        .send(&signal(
            &server.jid(alice),
            "6b05207e591e616f75000003",
            "accept",
            alice,
            &[bob],
            SESSION,
        ))
        .await;
    assert_eq!(
        signal_type(&a.until("message").await).as_deref(),
        Some("accept")
    );
    a.send(&signal(
        &server.jid(bob),
        "6b05207e591e616f75000004",
        "iceCandidates",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    assert_eq!(
        signal_type(&laptop.until("message").await).as_deref(),
        Some("iceCandidates")
    );
    a.send(&signal(
        &server.jid(bob),
        "6b05207e591e616f75000005",
        "hangUp",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    assert_eq!(
        signal_type(&laptop.until("message").await).as_deref(),
        Some("hangUp")
    );
    assert_eq!(server.ctx.calls.live(), 0);

    // The finished call is in both users' history, and never in the chat history.
    for user in [alice, bob] {
        let (calls, total) = server
            .control
            .call_history(server.app.id, user, 10, 0)
            .await
            .unwrap();
        assert_eq!(total, 1);
        assert_eq!(calls[0].session_id, SESSION);
        assert_eq!(calls[0].caller, alice);
        assert_eq!(calls[0].opponents, vec![bob]);
        assert_eq!(calls[0].outcome, CallOutcome::Ended);
        assert!(calls[0].answered_at.is_some());
    }
    // Signals are never stored for later: Bob logging in again gets nothing queued.
    let mut later = server.client_on(bob, "tablet").await;
    assert!(settle(&mut later)
        .await
        .iter()
        .all(|e| e.name() != "message"));

    let metrics = server.metrics();
    for line in [
        "switchboard_calls_started_total 1",
        "switchboard_calls_answered_total 1",
        "switchboard_calls_ended_total 1",
        "switchboard_calls_duration_seconds_count 1",
        "switchboard_calls_signals_total{signal_type=\"call\"} 2",
        "switchboard_calls_signals_total{signal_type=\"hangUp\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn rejected_calls_are_recorded_as_rejected() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client_on(alice, "web").await;
    let mut b = server.client_on(bob, "web").await;
    a.send(&signal(
        &server.jid(bob),
        "c1",
        "call",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    b.until("message").await;
    b.send(&signal(
        &server.jid(alice),
        "r1",
        "reject",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    assert_eq!(
        signal_type(&a.until("message").await).as_deref(),
        Some("reject")
    );
    let (calls, _) = server
        .control
        .call_history(server.app.id, alice, 10, 0)
        .await
        .unwrap();
    assert_eq!(calls[0].outcome, CallOutcome::Rejected);
    assert_eq!(calls[0].duration_secs(), 0);
    assert!(server
        .metrics()
        .contains("switchboard_calls_rejected_total 1"));
}

#[tokio::test]
async fn the_mesh_limit_refuses_big_calls_with_a_clear_error() {
    let server = Server::start().await;
    let alice = server.user("alice").await;
    let mut others = Vec::new();
    for login in ["bob", "carol", "dave", "erin"] {
        others.push(server.user(login).await);
    }
    let mut a = server.client_on(alice, "web").await;
    let mut b = server.client_on(others[0], "web").await;

    // Caller + 4 opponents: refused, routed to nobody.
    a.send(&signal(
        &server.jid(others[0]),
        "big1",
        "call",
        alice,
        &others,
        "mesh-5",
    ))
    .await;
    let error = a.until("message").await;
    assert_eq!(error.attr("type"), Some("error"));
    assert_eq!(error.attr("id"), Some("big1"));
    assert_eq!(error_condition(&error).as_deref(), Some("policy-violation"));
    let text = error
        .get_child("error", NS_CLIENT)
        .and_then(|e| e.get_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas"))
        .map(Element::text)
        .unwrap_or_default();
    assert!(text.contains("3 opponents"), "{text}");
    assert!(settle(&mut b).await.is_empty());
    assert_eq!(server.ctx.calls.live(), 0);

    // Caller + 3 is a mesh call.
    a.send(&signal(
        &server.jid(others[0]),
        "ok1",
        "call",
        alice,
        &others[..3],
        "mesh-4",
    ))
    .await;
    assert_eq!(
        signal_type(&b.until("message").await).as_deref(),
        Some("call")
    );
    assert_eq!(server.ctx.calls.live(), 1);
    assert!(server
        .metrics()
        .contains("switchboard_calls_refused_signals_total{reason=\"mesh_limit\"} 1"));
}

#[tokio::test]
async fn the_mesh_limit_is_configurable() {
    let mut config = XmppConfig::default();
    config.calls.max_opponents = 1;
    let server = Server::start_with(config).await;
    let (alice, bob, carol) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("carol").await,
    );
    let mut a = server.client_on(alice, "web").await;
    a.send(&signal(
        &server.jid(bob),
        "g1",
        "call",
        alice,
        &[bob, carol],
        "group",
    ))
    .await;
    let error = a.until("message").await;
    assert_eq!(error_condition(&error).as_deref(), Some("policy-violation"));
}

#[tokio::test]
async fn signals_to_other_apps_or_unknown_users_get_errors() {
    let server = Server::start().await;
    let alice = server.user("alice").await;
    let mut a = server.client_on(alice, "web").await;

    a.send(&signal(
        "5-999@localhost",
        "x1",
        "call",
        alice,
        &[UserId(5)],
        "s-x1",
    ))
    .await;
    let error = a.until("message").await;
    assert_eq!(error.attr("type"), Some("error"));
    assert_eq!(error.attr("id"), Some("x1"));
    assert_eq!(
        error_condition(&error).as_deref(),
        Some("service-unavailable")
    );

    let nobody = format!("424242-{}@localhost", server.app.id.0);
    a.send(&signal(
        &nobody,
        "x2",
        "call",
        alice,
        &[UserId(424242)],
        "s-x2",
    ))
    .await;
    let error = a.until("message").await;
    assert_eq!(error.attr("id"), Some("x2"));
    assert_eq!(error_condition(&error).as_deref(), Some("item-not-found"));

    // A call signal the server cannot read is refused rather than routed.
    a.send(&format!(
        "<message id='x3' to='{}' type='headline'><extraParams xmlns='jabber:client'>\
         <moduleIdentifier>WebRTCVideoChat</moduleIdentifier><signalType>call</signalType>\
         </extraParams></message>",
        server.jid(alice)
    ))
    .await;
    let error = a.until("message").await;
    assert_eq!(error.attr("id"), Some("x3"));
    assert_eq!(error_condition(&error).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn an_offline_callee_gets_one_voip_push_intent_per_call() {
    let server = Server::start().await;
    let pusher = Arc::new(RecordingPusher::default());
    server.ctx.calls.set_voip_pusher(pusher.clone());
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client_on(alice, "web").await;
    for n in 0..3 {
        a.send(&signal(
            &server.jid(bob),
            &format!("c{n}"),
            "call",
            alice,
            &[bob],
            SESSION,
        ))
        .await;
    }
    // No error for an existing user who is offline.
    assert!(settle(&mut a).await.is_empty());
    let intents = pusher.0.lock().unwrap().clone();
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!((intents[0].caller, intents[0].callee), (alice, bob));
    assert_eq!(intents[0].session_id, SESSION);

    // The caller gives up: a missed call.
    a.send(&signal(
        &server.jid(bob),
        "h1",
        "hangUp",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    settle(&mut a).await;
    let (calls, _) = server
        .control
        .call_history(server.app.id, bob, 10, 0)
        .await
        .unwrap();
    assert_eq!(calls[0].outcome, CallOutcome::Missed);
    let metrics = server.metrics();
    assert!(
        metrics.contains("switchboard_calls_voip_push_intents_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_calls_missed_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_caller_disconnecting_ends_the_call() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client_on(alice, "web").await;
    let mut b = server.client_on(bob, "web").await;
    a.send(&signal(
        &server.jid(bob),
        "c1",
        "call",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    b.until("message").await;
    b.send(&signal(
        &server.jid(alice),
        "a1",
        "accept",
        alice,
        &[bob],
        SESSION,
    ))
    .await;
    a.until("message").await;
    drop(a);
    for _ in 0..100 {
        if server.ctx.calls.live() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(server.ctx.calls.live(), 0);
}

#[tokio::test]
async fn extdisco_lists_stun_and_turn_with_fresh_rest_credentials() {
    let server = Server::start().await;
    let alice = server.user("alice").await;
    let mut a = server.client_on(alice, "web").await;
    a.send("<iq type='get' id='d1' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>")
        .await;
    let result = a.until("iq").await;
    assert_eq!(result.attr("type"), Some("result"));
    assert_eq!(result.attr("id"), Some("d1"));
    let services: Vec<&Element> = result
        .get_child("services", "urn:xmpp:extdisco:2")
        .expect("services")
        .children()
        .collect();
    assert_eq!(services.len(), 3);
    assert_eq!(services[0].attr("type"), Some("stun"));
    assert_eq!(services[0].attr("port"), Some("3478"));
    assert!(services[0].attr("username").is_none());
    let expected = server.control.ice_servers(alice).unwrap();
    for turn in &services[1..] {
        assert_eq!(turn.attr("type"), Some("turn"));
        assert_eq!(turn.attr("host"), Some("127.0.0.1"));
        assert_eq!(turn.attr("username"), Some(expected.username.as_str()));
        assert_eq!(turn.attr("password"), Some(expected.credential.as_str()));
        assert!(turn.attr("expires").is_some());
    }
    assert_eq!(services[2].attr("transport"), Some("tcp"));
    assert!(expected.username.ends_with(&format!(":{}", alice.0)));

    // Filtered by type.
    a.send("<iq type='get' id='d2' to='localhost'><services xmlns='urn:xmpp:extdisco:2' type='stun'/></iq>")
        .await;
    let result = a.until("iq").await;
    let services = result.get_child("services", "urn:xmpp:extdisco:2").unwrap();
    assert_eq!(services.children().count(), 1);

    // Advertised in disco#info.
    a.send("<iq type='get' id='d3' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let info = a.until("iq").await;
    let features: Vec<String> = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_string))
        .collect();
    assert!(
        features.iter().any(|f| f == "urn:xmpp:extdisco:2"),
        "{features:?}"
    );
}
